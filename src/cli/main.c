/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer: the thin front end. Each verb (its own file in src/cli/)
 * parses its arguments with its option table and calls the library; only
 * the verbs and this file print and exit. */
#include "cli.h"
#include "runtime/runtime.h"

#include "spec/spec.h"

#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_verb *const verbs[] = {
    &cli_run_verb,  &cli_exec_verb,    &cli_ps_verb,     &cli_stop_verb,     &cli_kill_verb,
    &cli_wait_verb, &cli_rm_verb,      &cli_logs_verb,   &cli_inspect_verb,  &cli_kernel_verb,
    &cli_gc_verb,   &cli_version_verb, &cli_pull_verb,   &cli_images_verb,   &cli_rmi_verb,
    &cli_tag_verb,  &cli_load_verb,    &cli_volume_verb, &cli_snapshot_verb, &cli_system_verb,
};

const char *cli_cache_dir(void)
{
	const char *c = getenv("CTR_JAILER_CACHE");
	return c && *c ? c : CJ_DEFAULT_CACHE;
}

static void usage(FILE *out)
{
	fprintf(out, "usage:");
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
		fprintf(out, "%s ctr-jailer %s\n", i ? "      " : "", verbs[i]->usage);
	fprintf(out, "\n'ctr-jailer VERB --help' describes each.\n");
}

static void on_sigpipe(int signo)
{
	(void)signo; /* the write that raised it fails with EPIPE */
}

/* A reader that goes away (`ctr-jailer run ... | head`) must not kill the
 * runtime mid-run and leave the VM's host state to gc: its writes fail with
 * EPIPE instead and teardown runs. A handler that does nothing rather than
 * SIG_IGN, because exec resets a caught signal to its default but keeps an
 * ignored one ignored: every program the runtime starts (the VMM, e2fsprogs,
 * ldd) gets the default SIGPIPE without each spawn site restoring it. */
static void survive_sigpipe(void)
{
	struct sigaction sa = {.sa_handler = on_sigpipe, .sa_flags = SA_RESTART};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv)
{
	survive_sigpipe();
	if (argc > 0 && strcmp(basename(argv[0]), RT_NAME) == 0)
		return cli_runtime_main(argc, argv); /* runc's role */
	if (argc < 2) {
		usage(stderr);
		return CJ_EXIT_RUNTIME;
	}
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
		if (strcmp(argv[1], verbs[i]->name) == 0)
			return verbs[i]->main(verbs[i], argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return cli_version_verb.main(&cli_version_verb, 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "ctr-jailer: unknown command '%s' (see 'ctr-jailer --help')\n", argv[1]);
	return CJ_EXIT_RUNTIME;
}
