/* SPDX-License-Identifier: Apache-2.0 */
/* kill [--all] ID [SIGNAL]: the signal goes to the workload (PID 1's
 * child in the guest) through the run's supervisor and the agent, as runc
 * sends it to the container's init; KILL ends the VM at once (137). Before
 * `start` (or while the VM boots) a signal that would end the workload
 * ends the VM, with 128+N. */
#include "runtime.h"

#include "image/oci.h"
#include "run/runs.h"

#include <signal.h>
#include <string.h>

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
	int sig = strcmp(s, "0") == 0 ? 0 : cj_signal_parse(s);

	return sig < 0 ? cj_fail(err, 0, "unknown signal '%s'", s) : sig;
}

static int deliver(const char *run, int sig, struct cj_err *err)
{
	if (sig == 0)
		return 0; /* the container is running: that is all 0 asks */
	return cj_runs_forward(rt_run_base(), run, sig, err);
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
