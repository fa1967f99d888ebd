/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer: the thin front end. Each verb parses its arguments into the
 * engine's structures and calls the library; only this file exits. */
#include "image/oci.h"
#include "kernel/kernel.h"
#include "run/run.h"
#include "spec/spec.h"
#include "util/err.h"
#include "util/sanitize.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char usage[] =
    "usage: ctr-jailer run [OPTIONS] [--] [COMMAND [ARG...]]\n"
    "       ctr-jailer kernel fetch\n"
    "       ctr-jailer inspect IMAGE\n"
    "       ctr-jailer gc\n"
    "       ctr-jailer version\n"
    "\n"
    "run: boot the container root filesystem as a microVM and run COMMAND in it.\n"
    "  --rootfs DIR          root filesystem (default " CJ_DEFAULT_ROOTFS ")\n"
    "  --image IMAGE         a container image instead (CTR_JAILER_IMAGE): oci:DIR[:TAG],\n"
    "                        docker-archive:FILE or tar:FILE; its config is honoured and\n"
    "                        COMMAND, when given, replaces its Cmd\n"
    "  --entrypoint CMD      replace the image's Entrypoint ('' clears it) and its Cmd\n"
    "  --max-image-size SIZE the most an image may unpack to, and one file per 4 KiB of\n"
    "                        it (CTR_JAILER_MAX_IMAGE_SIZE; default: 64G or 90% of the\n"
    "                        cache's free space, whichever is smaller)\n"
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
    "  --vmm auto|qemu|firecracker  the VMM (CTR_JAILER_VMM; auto: Firecracker when\n"
    "                        it is installed and KVM can run a guest, else QEMU)\n"
    "  --firecracker PATH    firecracker binary (FIRECRACKER_BIN; default: PATH)\n"
    "  --jailer PATH         Firecracker's jailer (JAILER_BIN; default: PATH, then\n"
    "                        next to firecracker)\n"
    "  --chroot-base DIR     where the jailer builds jails (CTR_JAILER_CHROOT_BASE,\n"
    "                        default " CJ_DEFAULT_CHROOT_BASE ")\n"
    "  --egress allow|deny   new connections the guest may open (CTR_JAILER_EGRESS;\n"
    "                        default allow); deny keeps DNS to the guest's resolvers,\n"
    "                        replies to published ports and --allow-egress\n"
    "  --allow-egress CIDR[:PORT[/tcp|/udp]]  let the guest connect there; repeatable\n"
    "                        (CTR_JAILER_ALLOW_EGRESS=A,B). Giving it denies the rest:\n"
    "                        it implies --egress deny and contradicts --egress allow\n"
    "  --allow-link-local    let the guest reach 169.254.0.0/16 (cloud metadata\n"
    "                        services), dropped by default\n"
    "                        (CTR_JAILER_ALLOW_LINK_LOCAL=1)\n"
    "  --jail-uid-range START:COUNT  the uids (= gids) jailed VMMs run as, one per VM\n"
    "                        (CTR_JAILER_UID_RANGE, default 2000000000:65536)\n"
    "  --timings             print phase durations as one JSON line on stderr\n"
    "\n"
    "Exit status: the command's own (128+N when killed by signal N); 123 guest\n"
    "setup failed; 124 the VM ended without a status; 125 ctr-jailer could not\n"
    "start the VM; 126 the command cannot be executed; 127 it was not found.\n";

static int report(const struct cj_err *err, int code)
{
	char buf[CJ_ERR_STR_MAX];

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

static json_object *json_strv_or_null(const struct cj_strv *sv, bool present)
{
	json_object *a;

	if (!present)
		return NULL; /* json-c serialises NULL as null */
	a = json_object_new_array();
	for (size_t i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

static json_object *json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* ctr-jailer inspect IMAGE: what `run --image IMAGE` would run, as JSON. */
static int cmd_inspect(int argc, char **argv)
{
	struct cj_err err = {0};
	struct cj_image img;
	struct cj_strv command = {0};
	const struct cj_image_config *c = &img.config;
	json_object *o, *labels;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: ctr-jailer inspect oci:DIR[:TAG] | docker-archive:FILE | "
		                "tar:FILE\n");
		return argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		           ? 0
		           : CJ_EXIT_RUNTIME;
	}
	if (cj_image_open(argv[1], cache_dir(), &img, &err) < 0)
		return report(&err, CJ_EXIT_RUNTIME);
	o = json_object_new_object();
	json_object_object_add(o, "image", json_object_new_string(argv[1]));
	json_object_object_add(o, "digest", json_object_new_string(img.digest));
	json_object_object_add(o, "config_digest",
	                       json_str_or_null(img.has_config ? img.config_digest : NULL));
	json_object_object_add(o, "os", json_str_or_null(c->os));
	json_object_object_add(o, "architecture", json_str_or_null(c->architecture));
	json_object_object_add(o, "entrypoint",
	                       json_strv_or_null(&c->entrypoint, c->has_entrypoint));
	json_object_object_add(o, "cmd", json_strv_or_null(&c->cmd, c->has_cmd));
	/* What would run without arguments; null when the run must give one. */
	{
		struct cj_err ignored = {0};
		bool have = cj_image_command(c, false, NULL, NULL, &command, &ignored) == 0;
		json_object_object_add(o, "command", json_strv_or_null(&command, have));
		cj_strv_free(&command);
	}
	json_object_object_add(o, "env", json_strv_or_null(&c->env, true));
	json_object_object_add(o, "user", json_str_or_null(c->user));
	json_object_object_add(o, "workdir", json_str_or_null(c->workdir));
	json_object_object_add(o, "stop_signal", json_str_or_null(c->stop_signal));
	json_object_object_add(o, "stop_signal_number",
	                       c->stop_signal ? json_object_new_int((int)c->stop_signal_num)
	                                      : NULL);
	labels = json_object_new_object();
	for (size_t i = 0; i < c->label_keys.n; i++)
		json_object_object_add(labels, c->label_keys.v[i],
		                       json_object_new_string(c->label_values.v[i]));
	json_object_object_add(o, "labels", labels);
	json_object_object_add(
	    o, "layers",
	    json_object_new_int((int)(img.ref.kind == CJ_IMAGE_OCI ? img.manifest.nlayers
	                              : img.ref.kind == CJ_IMAGE_DOCKER_ARCHIVE
	                                  ? img.dmanifest.layers.n
	                                  : 1)));
	/* json-c leaves DEL, C1 controls and invalid UTF-8 raw in strings */
	char *out = cj_json_terminal_safe(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	cj_image_free(&img);
	if (!out) {
		cj_fail(&err, ENOMEM, "inspect");
		return report(&err, CJ_EXIT_RUNTIME);
	}
	printf("%s\n", out);
	free(out);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

static const char *run_base(void)
{
	const char *r = getenv("CTR_JAILER_RUN_DIR");
	return r && *r ? r : CJ_DEFAULT_RUN_BASE;
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
	struct cj_err err = {0};

	survive_sigpipe();

	if (argc < 2) {
		fputs(usage, stderr);
		return CJ_EXIT_RUNTIME;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "kernel") == 0 && argc == 3 && strcmp(argv[2], "fetch") == 0)
		return cj_kernel_fetch(cache_dir(), &err) < 0 ? report(&err, CJ_EXIT_RUNTIME) : 0;
	if (strcmp(argv[1], "inspect") == 0)
		return cmd_inspect(argc - 1, argv + 1);
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
	cj_notice("unknown command '%s' (see 'ctr-jailer --help')", argv[1]);
	return CJ_EXIT_RUNTIME;
}
