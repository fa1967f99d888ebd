/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer version */
#include "cli.h"

static int version_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	int first, r = cli_parse_args(verb, NULL, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	printf("ctr-jailer %s\n", CTRJ_VERSION);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_version_verb = {
    .name = "version",
    .usage = "version",
    .about = "Print the version.",
    .main = version_main,
};
