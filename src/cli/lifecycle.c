/* SPDX-License-Identifier: Apache-2.0 */
#include "lifecycle.h"

#include "run/runs.h"
#include "spec/spec.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

const char *cli_run_base(void)
{
	const char *b = getenv("CTR_JAILER_RUN_DIR");

	return b && *b ? b : CJ_DEFAULT_RUN_BASE;
}

int cli_each_ref(int argc, char **argv,
                 int (*fn)(const char *ref, const char *id, void *ctx, struct cj_err *err),
                 void *ctx)
{
	int status = 0;

	for (int i = 0; i < argc; i++) {
		struct cj_err err = {0};
		char id[16];
		if (cj_runs_find(cli_run_base(), argv[i], id, &err) < 0 ||
		    fn(argv[i], id, ctx, &err) < 0) {
			cli_print_err(&err);
			status = 1;
		}
	}
	return status;
}

int cli_refs_main(const struct cli_verb *verb, void *ctx, int argc, char **argv,
                  int (*fn)(const char *ref, const char *id, void *ctx, struct cj_err *err))
{
	struct cj_err err = {0};
	int first, r = cli_parse_args(verb, ctx, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first == argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	return cli_each_ref(argc - first, argv + first, fn, ctx);
}

time_t cli_time(json_object *record, const char *key)
{
	json_object *v;
	struct tm tm = {0};

	if (!json_object_object_get_ex(record, key, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !strptime(json_object_get_string(v), "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

void cli_age(time_t since, char *buf, size_t len)
{
	long long s = (long long)(time(NULL) - since);
	static const struct {
		long long secs;
		const char *unit;
	} units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};

	if (s < 1) {
		snprintf(buf, len, "less than a second");
		return;
	}
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (s >= units[i].secs) {
			long long n = s / units[i].secs;
			snprintf(buf, len, "%lld %s%s", n, units[i].unit, n == 1 ? "" : "s");
			return;
		}
}

int cli_kill_vm(const char *id, struct cj_err *err)
{
	/* not TERM then INT: INT comes first out of the signalfd, and it may be
	 * passed on to the workload (--sig-proxy) */
	return cj_runs_forward(cli_run_base(), id, SIGKILL, err);
}
