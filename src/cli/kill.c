/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer kill: KILL ends the VM at once; TERM (INT, HUP, QUIT) asks
 * for the graceful stop without waiting for it. Other signals need the
 * guest agent to reach the workload. */
#include "lifecycle.h"

#include "run/runs.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct killopt {
	int sig;
};

static const struct {
	const char *name;
	int sig;
} signals[] = {
    {"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT}};

static int opt_signal(void *c, const char *v, const char *what, struct cj_err *err)
{
	const char *name = strncasecmp(v, "SIG", 3) == 0 ? v + 3 : v;
	char *end;
	long n = strtol(v, &end, 10);

	for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
		if (strcasecmp(name, signals[i].name) == 0 ||
		    (*v && !*end && n == signals[i].sig)) {
			((struct killopt *)c)->sig = signals[i].sig;
			return 0;
		}
	return cj_fail(err, 0,
	               "%s '%s' cannot be delivered: without the guest agent a run takes KILL "
	               "(the VM ends at once) or TERM, INT, HUP, QUIT (its graceful stop)",
	               what, v);
}

static const struct cli_opt kill_opts[] = {
    {"signal", 's', "SIG", NULL, opt_signal, NULL, "Options",
     "KILL (default): the VM ends at once; TERM, INT, HUP or QUIT: the graceful stop"},
};

static int kill_one(const char *ref, const char *id, void *ctx, struct cj_err *err)
{
	const struct killopt *k = ctx;

	if (k->sig == SIGKILL ? cli_kill_vm(id, err) < 0
	                      : cj_runs_signal(cli_run_base(), id, SIGTERM, err) < 0)
		return -1;
	printf("%s\n", ref);
	fflush(stdout);
	return 0;
}

static int kill_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct killopt k = {.sig = SIGKILL};

	return cli_refs_main(verb, &k, argc, argv, kill_one);
}

const struct cli_verb cli_kill_verb = {
    .name = "kill",
    .usage = "kill [-s SIG] NAME|ID...",
    .about = "Signal running VMs: KILL (the default) ends the VM at once, TERM starts its "
             "graceful stop. Returns without waiting.",
    .opts = kill_opts,
    .nopts = sizeof kill_opts / sizeof *kill_opts,
    .main = kill_main,
};
