/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer: the thin front end. Each verb parses its arguments into the
 * engine's structures and calls the library; only this file exits. */
#include "kernel/kernel.h"
#include "run/run.h"
#include "spec/spec.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char usage[] =
    "usage: ctr-jailer run [OPTIONS] [--] [COMMAND [ARG...]]\n"
    "       ctr-jailer kernel fetch\n"
    "       ctr-jailer gc\n"
    "       ctr-jailer version\n"
    "\n"
    "run: boot the container root filesystem as a microVM and run COMMAND in it.\n"
    "  --rootfs DIR          root filesystem (default " CJ_DEFAULT_ROOTFS ")\n"
    "  --kernel FILE         guest kernel (default: the one 'kernel fetch' stored)\n"
    "  --modules DIR         lib/modules/<release> tree of that kernel\n"
    "  --cpus N              vCPUs (VCPU_COUNT; default: host's, within our cgroup)\n"
    "  --memory SIZE         guest memory, MiB or 2G (MEM_SIZE_MIB; default: host's)\n"
    "  -e, --env NAME[=VAL]  set a guest environment variable\n"
    "  --env-file FILE       read NAME=VALUE lines (docker format)\n"
    "  --no-env-passthrough  do not pass the runtime's environment to the guest\n"
    "  -w, --workdir DIR     working directory of COMMAND\n"
    "  -u, --user USER[:GRP] user to run COMMAND as (name or id, from the image)\n"
    "  --hostname NAME       guest hostname (default: this host's)\n"
    "  --rootfs-size SIZE    writable space of the ephemeral root (ROOTFS_SIZE)\n"
    "  --accel auto|kvm|tcg  accelerator (auto falls back to TCG with a notice)\n"
    "  --stop-timeout SECS   grace period between the stop signal and SIGKILL (10)\n"
    "  --boot-args ARGS      replace the kernel command line (KERNEL_BOOT_ARGS)\n"
    "  --extra-boot-args A   append to it (EXTRA_KERNEL_BOOT_ARGS)\n"
    "  --cache-dir DIR       cache (CTR_JAILER_CACHE, default " CJ_DEFAULT_CACHE ")\n"
    "  --qemu PATH           QEMU binary (default qemu-system-x86_64)\n"
    "  --timings             print phase durations as one JSON line on stderr\n"
    "\n"
    "Exit status: the command's own (128+N when killed by signal N); 123 guest\n"
    "setup failed; 124 the VM ended without a status; 125 ctr-jailer could not\n"
    "start the VM; 126 the command cannot be executed; 127 it was not found.\n";

static int report(const struct cj_err *err, int code)
{
	char buf[1200];

	if (err->msg[0])
		fprintf(stderr, "ctr-jailer: %s\n", cj_err_str(err, buf, sizeof buf));
	return code;
}

static int cmd_run(int argc, char **argv)
{
	struct cj_spec spec;
	struct cj_err err = {0};
	int code;

	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
	if (cj_spec_from_args(&spec, argc, argv, environ, &err) < 0)
		return report(&err, CJ_EXIT_RUNTIME);
	code = cj_run_vm(&spec, &err);
	cj_spec_free(&spec);
	return report(&err, code);
}

static const char *cache_dir(void)
{
	const char *c = getenv("CTR_JAILER_CACHE");
	return c && *c ? c : CJ_DEFAULT_CACHE;
}

static const char *run_base(void)
{
	const char *r = getenv("CTR_JAILER_RUN_DIR");
	return r && *r ? r : CJ_DEFAULT_RUN_BASE;
}

int main(int argc, char **argv)
{
	struct cj_err err = {0};

	if (argc < 2) {
		fputs(usage, stderr);
		return CJ_EXIT_RUNTIME;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "kernel") == 0 && argc == 3 && strcmp(argv[2], "fetch") == 0)
		return cj_kernel_fetch(cache_dir(), &err) < 0 ? report(&err, CJ_EXIT_RUNTIME) : 0;
	if (strcmp(argv[1], "gc") == 0) {
		int n = cj_gc(run_base(), true);
		fprintf(stderr, "ctr-jailer: %d leftover run(s) removed\n", n);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("ctr-jailer %s\n", CTRJ_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "ctr-jailer: unknown command '%s' (see 'ctr-jailer --help')\n", argv[1]);
	return CJ_EXIT_RUNTIME;
}
