/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer gc */
#include "cli.h"

#include "run/run.h"

#include <stdlib.h>

static int gc_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	const char *base = getenv("CTR_JAILER_RUN_DIR");
	int first, r = cli_parse_args(verb, NULL, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first != argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	r = cj_gc(base && *base ? base : CJ_DEFAULT_RUN_BASE, true);
	fprintf(stderr, "ctr-jailer: %d leftover run(s) removed\n", r);
	return 0;
}

const struct cli_verb cli_gc_verb = {
    .name = "gc",
    .usage = "gc",
    .about = "Remove what runs whose ctr-jailer was killed left behind (their VMM, network "
             "and run directory under CTR_JAILER_RUN_DIR, default " CJ_DEFAULT_RUN_BASE ").",
    .main = gc_main,
};
