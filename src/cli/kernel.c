/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer kernel fetch */
#include "cli.h"

#include "kernel/kernel.h"

#include <string.h>

static int kernel_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	int first, r = cli_parse_args(verb, NULL, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first == argc || strcmp(argv[first], "fetch") != 0 || first + 1 != argc) {
		if (first < argc)
			fprintf(stderr, "ctr-jailer: unknown kernel command '%s'\n", argv[first]);
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	return cj_kernel_fetch(cli_cache_dir(), &err) < 0 ? cli_report(&err, CJ_EXIT_RUNTIME) : 0;
}

const struct cli_verb cli_kernel_verb = {
    .name = "kernel",
    .usage = "kernel fetch",
    .about = "fetch: download Debian's " CJ_KERNEL_PACKAGE " with apt-get (never installed "
             "on the host) into the cache (CTR_JAILER_CACHE) and make it the default kernel.",
    .main = kernel_main,
};
