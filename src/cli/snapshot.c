/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer snapshot prepare [RUN OPTIONS] */
#include "cli.h"
#include "run.h"

#include "run/run.h"
#include "spec/spec.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static int snapshot_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct cj_spec spec;
	char path[PATH_MAX];
	char **args;
	int n = 0, r;

	if (argc < 2 || strcmp(argv[1], "prepare") != 0) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	/* the run options that shape a VM, and a command the parse wants */
	if (!(args = calloc((size_t)argc + 3, sizeof *args)))
		return CJ_EXIT_RUNTIME;
	args[n++] = argv[0];
	for (int i = 2; i < argc; i++)
		args[n++] = argv[i];
	args[n++] = "--";
	args[n++] = "/bin/true";
	r = cli_run_parse(&spec, n, args, environ, NULL, NULL, &err);
	free(args);
	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	r = cj_run_snapshot_prepare(&spec, path, sizeof path, &err);
	cj_spec_free(&spec);
	if (r < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	printf("%s\n", path);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_snapshot_verb = {
    .name = "snapshot",
    .usage = "snapshot prepare [--cpus N] [--memory SIZE] [RUN OPTIONS]",
    .about = "Make the boot snapshot of the machine shape that 'run' with these options gets "
             "(vCPUs, memory, kernel, VMM, drives, network), unless it exists, and print its "
             "path. A run makes it on first need too; 'run --cold-boot' does without.",
    .main = snapshot_main,
};
