/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer kill: KILL ends the VM at once; TERM (INT, HUP, QUIT) asks
 * for the graceful stop without waiting for it. Any other signal goes to
 * the workload through the run's supervisor and the guest's agent, with
 * or without a terminal. */
#include "lifecycle.h"

#include "image/oci.h"
#include "run/runs.h"

#include <signal.h>
#include <string.h>

struct killopt {
	int sig;
};

static int opt_signal(void *c, const char *v, const char *what, struct cj_err *err)
{
	int sig = cj_signal_parse(v);

	if (sig < 0)
		return cj_fail(err, 0,
		               "%s '%s' is not a signal: give a name (TERM, USR1) or a number",
		               what, v);
	((struct killopt *)c)->sig = sig;
	return 0;
}

static const struct cli_opt kill_opts[] = {
    {"signal", 's', "SIG", NULL, opt_signal, NULL, "Options",
     "KILL (default): the VM ends at once; TERM, INT, HUP or QUIT: the graceful stop; any "
     "other (USR1, WINCH, a number): to the workload, through the guest's agent"},
};

static int kill_one(const char *ref, const char *id, void *ctx, struct cj_err *err)
{
	const struct killopt *k = ctx;

	bool stop = k->sig == SIGTERM || k->sig == SIGINT || k->sig == SIGHUP || k->sig == SIGQUIT;
	int r = k->sig == SIGKILL ? cli_kill_vm(id, err)
	        : stop            ? cj_runs_signal(cli_run_base(), id, SIGTERM, err)
	                          : cj_runs_forward(cli_run_base(), id, k->sig, err);

	if (r < 0)
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
             "graceful stop, others (USR1...) go to the workload. Returns without waiting.",
    .opts = kill_opts,
    .nopts = sizeof kill_opts / sizeof *kill_opts,
    .main = kill_main,
};
