/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer rm: remove the kept record (and logs) of runs that ended;
 * -f kills a running one first. */
#include "lifecycle.h"

#include "run/runs.h"

struct rm {
	bool force;
};

static int opt_force(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct rm *)c)->force = true;
	return 0;
}

static const struct cli_opt rm_opts[] = {
    {"force", 'f', NULL, NULL, opt_force, NULL, "Options", "kill a running VM, then remove it"},
};

static int rm_one(const char *ref, const char *id, void *ctx, struct cj_err *err)
{
	const struct rm *rm = ctx;
	const char *base = cli_run_base();

	if (rm->force && cj_runs_alive(base, id)) {
		struct cj_err ignored = {0};
		cli_kill_vm(id, &ignored); /* it may end on its own meanwhile */
		if (cj_runs_wait(base, id, err) < 0)
			return -1;
	}
	if (cj_runs_remove(base, id, err) < 0)
		return -1;
	printf("%s\n", ref);
	fflush(stdout);
	return 0;
}

static int rm_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct rm rm = {0};

	return cli_refs_main(verb, &rm, argc, argv, rm_one);
}

const struct cli_verb cli_rm_verb = {
    .name = "rm",
    .usage = "rm [-f] NAME|ID...",
    .about = "Remove runs that ended: their record and logs. A running one is refused "
             "unless -f, which kills its VM first.",
    .opts = rm_opts,
    .nopts = sizeof rm_opts / sizeof *rm_opts,
    .main = rm_main,
};
