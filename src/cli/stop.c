/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer stop: the supervisor's graceful stop (the guest's stop
 * signal, then its grace period), the VM killed after -t seconds. */
#include "lifecycle.h"

#include "run/runs.h"
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct stop {
	long timeout; /* -1: the run's own grace period */
};

static int opt_time(void *c, const char *v, const char *what, struct cj_err *err)
{
	char *end;
	long t;

	errno = 0;
	t = strtol(v, &end, 10);
	if (errno || end == v || *end || t < 0 || t > 3600)
		return cj_fail(err, 0, "%s '%s' is invalid: give seconds from 0 to 3600", what, v);
	((struct stop *)c)->timeout = t;
	return 0;
}

static const struct cli_opt stop_opts[] = {
    {"time", 't', "SECS", NULL, opt_time, NULL, "Options",
     "seconds to wait for the guest to stop before the VM is killed (default: the run's "
     "--stop-timeout)"},
};

static int stop_one(const char *ref, const char *id, void *ctx, struct cj_err *err)
{
	const struct stop *s = ctx;
	const char *base = cli_run_base();

	if (cj_runs_alive(base, id)) {
		if (cj_runs_signal(base, id, SIGTERM, err) < 0)
			return -1;
		/* -t: the VM is killed once that is over; without it, the
		 * supervisor's own deadline holds */
		uint64_t deadline =
		    cj_now_ns() + (uint64_t)(s->timeout < 0 ? 0 : s->timeout) * 1000000000ull;
		while (s->timeout >= 0 && cj_runs_alive(base, id) && cj_now_ns() < deadline)
			usleep(50000);
		if (s->timeout >= 0 && cj_runs_alive(base, id)) {
			struct cj_err ignored = {0};
			cj_runs_signal(base, id, SIGINT, &ignored);
		}
		if (cj_runs_wait(base, id, err) < 0)
			return -1;
	}
	printf("%s\n", ref);
	fflush(stdout);
	return 0;
}

static int stop_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct stop s = {.timeout = -1};

	return cli_refs_main(verb, &s, argc, argv, stop_one);
}

const struct cli_verb cli_stop_verb = {
    .name = "stop",
    .usage = "stop [-t SECS] NAME|ID...",
    .about = "Stop running VMs gracefully: the workload gets its stop signal and the grace "
             "period, then the VM is killed. Returns once each run has ended.",
    .opts = stop_opts,
    .nopts = sizeof stop_opts / sizeof *stop_opts,
    .main = stop_main,
};
