/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer wait: block until runs end, print their exit codes. */
#include "lifecycle.h"

#include "run/runs.h"

#include <errno.h>

static int wait_one(const char *ref, const char *id, void *ctx, struct cj_err *err)
{
	json_object *rec, *v;

	(void)ctx;
	if (cj_runs_wait(cli_run_base(), id, err) < 0)
		return -1;
	if (!(rec = cj_runs_read(cli_run_base(), id, err)))
		return cj_fail(err, ENOENT,
		               "run %s ended and kept no record (--rm, or neither -d nor "
		               "--name): its exit code is gone",
		               ref);
	if (!json_object_object_get_ex(rec, "exit_code", &v)) {
		json_object_put(rec);
		return cj_fail(err, 0,
		               "run %s ended without an exit code (its supervisor was "
		               "killed); 'ctr-jailer gc' cleans up after it",
		               ref);
	}
	printf("%d\n", json_object_get_int(v));
	fflush(stdout);
	json_object_put(rec);
	return 0;
}

static int wait_main(const struct cli_verb *verb, int argc, char **argv)
{
	return cli_refs_main(verb, NULL, argc, argv, wait_one);
}

const struct cli_verb cli_wait_verb = {
    .name = "wait",
    .usage = "wait NAME|ID...",
    .about = "Wait until each run ends, then print its exit code.",
    .main = wait_main,
};
