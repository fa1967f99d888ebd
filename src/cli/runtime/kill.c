/* SPDX-License-Identifier: Apache-2.0 */
/* kill [--all] ID [SIGNAL]: the run's supervisor turns TERM, INT, HUP,
 * QUIT and PWR into the guest's graceful stop (the workload gets its stop
 * signal, then the grace period); KILL ends the VM at once. */
#include "runtime.h"

#include "run/runs.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int o_all(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)v, (void)err;
	return 0; /* every process of the VM goes with it either way */
}

static const struct rt_opt kill_opts[] = {
    {"all", 'a', NULL, o_all, "accepted: the whole VM is the container"},
};

static int parse_signal(const char *s, struct cj_err *err)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {{"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT},    {"HUP", SIGHUP},
	             {"QUIT", SIGQUIT}, {"PWR", SIGPWR},   {"USR1", SIGUSR1},  {"USR2", SIGUSR2},
	             {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH}};
	char *end;
	long n = strtol(s, &end, 10);

	if (*s && !*end && n >= 0 && n <= 64)
		return (int)n;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sig;
	return cj_fail(err, 0, "unknown signal '%s'", s);
}

static int deliver(const char *run, int sig, struct cj_err *err)
{
	const char *base = rt_run_base();

	switch (sig) {
	case 0:
		return 0;
	case SIGKILL: /* the supervisor's second stop signal kills the VM */
		if (cj_runs_signal(base, run, SIGTERM, err) < 0)
			return -1;
		return cj_runs_signal(base, run, SIGINT, err);
	case SIGTERM:
	case SIGINT:
	case SIGHUP:
	case SIGQUIT:
	case SIGPWR:
		return cj_runs_signal(base, run, SIGTERM, err);
	default:
		rt_log("warning", "signal %d has no meaning for the microVM yet; ignored", sig);
		return 0;
	}
}

static int kill_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	json_object *st;
	pid_t pid;
	int first, sig, r = rt_parse(verb, NULL, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	sig = argc - first > 1 ? parse_signal(argv[first + 1], &err) : SIGTERM;
	if (sig < 0 || !(st = rt_state_read(argv[first], &err)))
		return rt_fail(&err);
	if (strcmp(rt_status(st, &pid), "stopped") == 0)
		r = cj_fail(&err, 0, "container not running");
	else
		r = deliver(rt_state_str(st, "run"), sig, &err);
	json_object_put(st);
	return r < 0 ? rt_fail(&err) : 0;
}

const struct rt_verb rt_kill_verb = {
    .name = "kill",
    .usage = "kill [--all] ID [SIGNAL]",
    .opts = kill_opts,
    .nopts = sizeof kill_opts / sizeof *kill_opts,
    .main = kill_main,
};
