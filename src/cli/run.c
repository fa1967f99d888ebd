/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer run: the one table of its options. getopt_long's table, the
 * grouped --help and the seed's environment variables all come from it. */
#include "run.h"

#include "image/oci.h"
#include "registry/ref.h"
#include "registry/store.h"
#include "run/run.h"
#include "util/progress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define G_WHAT    "What to run"
#define G_ENV     "The command and its environment"
#define G_VM      "The VM"
#define G_STORAGE "Storage"
#define G_NET     "Network"
#define G_VMM     "The VMM and its jail"
#define G_RUNTIME "The runtime"
#define G_LIFE    "Lifecycle"

static const struct cli_opt run_opts[] = {
    {"rootfs", 0, "DIR", NULL, opt_rootfs, NULL, G_WHAT,
     "root filesystem (default " CJ_DEFAULT_ROOTFS ")"},
    {"image", 0, "IMAGE", "CTR_JAILER_IMAGE", opt_image, opt_image_env, G_WHAT,
     "a container image instead: a stored name, a registry reference, oci:DIR[:TAG], "
     "docker-archive:FILE or tar:FILE; its config is honoured and COMMAND, when given, "
     "replaces its Cmd"},
    {"pull", 0, "missing|always|never", NULL, opt_pull, NULL, G_WHAT,
     "pull a registry image when it is not stored (default), every time, or never"},
    {"platform", 0, "OS/ARCH[/VARIANT]", NULL, opt_platform, NULL, G_WHAT,
     "the image a multi-platform index is pulled for (default linux/amd64)"},
    {"creds", 0, "USER:PASS", NULL, opt_creds, NULL, G_WHAT,
     "registry credentials (else CTR_JAILER_REGISTRY_AUTH=HOST=USER:PASS, else "
     "~/.docker/config.json)"},
    {"cert-dir", 0, "DIR", NULL, opt_cert_dir, NULL, G_WHAT,
     "registry TLS material added to the system's CAs: ca.crt, client.cert, client.key in "
     "DIR or DIR/HOST[:PORT]"},
    {"insecure-registry", 0, "HOST[:PORT]", "CTR_JAILER_INSECURE_REGISTRIES", opt_insecure_registry,
     NULL, G_WHAT,
     "pull from this registry over plain HTTP; repeatable, the variable comma-separated"},
    {"entrypoint", 0, "CMD", NULL, opt_entrypoint, NULL, G_WHAT,
     "replace the image's Entrypoint ('' clears it) and its Cmd"},
    {"max-image-size", 0, "SIZE", "CTR_JAILER_MAX_IMAGE_SIZE", opt_max_image_size, NULL, G_WHAT,
     "the most an image may unpack to, and one file per 4 KiB of it (default: 64G or 90% of "
     "the cache's free space, whichever is smaller)"},
    {"cache-max", 0, "SIZE", "CTR_JAILER_CACHE_MAX", opt_cache_max, NULL, G_WHAT,
     "after the run, remove the least recently used cache entries no live run uses until "
     "the cache holds at most SIZE (see 'system df')"},
    {"env", 'e', "NAME[=VAL]", NULL, opt_env, NULL, G_ENV,
     "set a guest environment variable; NAME alone takes this environment's value"},
    {"env-file", 0, "FILE", NULL, opt_env_file, NULL, G_ENV,
     "read NAME=VALUE lines (docker format)"},
    {"env-passthrough", 0, NULL, NULL, opt_passthrough, NULL, G_ENV,
     "pass the runtime's environment to the guest (the default only in the seed's "
     "container mode: no --rootfs or --image)"},
    {"no-env-passthrough", 0, NULL, NULL, opt_no_passthrough, NULL, G_ENV,
     "do not pass the runtime's environment to the guest"},
    {"workdir", 'w', "DIR", NULL, opt_workdir, NULL, G_ENV, "working directory of COMMAND"},
    {"user", 'u', "USER[:GRP]", NULL, opt_user, NULL, G_ENV,
     "user to run COMMAND as (name or id, from the image)"},
    {"hostname", 0, "NAME", NULL, opt_hostname, NULL, G_ENV,
     "guest hostname (default: this host's)"},
    {"secret", 0, "NAME=@FILE|env:VAR", NULL, opt_secret, NULL, G_ENV,
     "/run/secrets/NAME in the guest, held in memory only"},
    {"cpus", 0, "N", "VCPU_COUNT", opt_cpus, NULL, G_VM,
     "vCPUs (default: the host's, within our cgroup quota)"},
    {"memory", 0, "SIZE", "MEM_SIZE_MIB", opt_memory, NULL, G_VM,
     "guest memory, MiB or 2G (default: the host's, within our cgroup limit)"},
    {"kernel", 0, "FILE", "CTR_JAILER_KERNEL", opt_kernel, NULL, G_VM,
     "guest kernel, bzImage or PVH vmlinux (default: the one 'kernel fetch' stored)"},
    {"modules", 0, "DIR", NULL, opt_modules, NULL, G_VM,
     "the lib/modules/<release> tree of that kernel"},
    {"boot-args", 0, "ARGS", "KERNEL_BOOT_ARGS", opt_boot_args, NULL, G_VM,
     "replace the kernel command line"},
    {"cold-boot", 0, NULL, NULL, opt_cold_boot, NULL, G_VM,
     "boot the kernel instead of restoring the machine shape's boot snapshot"},
    {"extra-boot-args", 0, "ARGS", "EXTRA_KERNEL_BOOT_ARGS", opt_extra_boot_args, NULL, G_VM,
     "append to the kernel command line"},
    {"rootfs-size", 0, "SIZE", "ROOTFS_SIZE", opt_rootfs_size, NULL, G_VM,
     "writable space of the ephemeral root (default: half the guest memory)"},
    {"accel", 0, "auto|kvm|tcg", NULL, opt_accel, NULL, G_VM,
     "accelerator (auto falls back to TCG with a notice)"},
    {"stop-timeout", 0, "SECS", NULL, opt_stop_timeout, NULL, G_VM,
     "grace period between the stop signal and SIGKILL (default 10)"},
    {"volume", 'v', "SRC:/PATH[:ro][:size=N]", NULL, opt_volume, NULL, G_STORAGE,
     "named volume, image file, block device or host directory (QEMU)"},
    {"mount", 0, "type=bind|volume|tmpfs,...", NULL, opt_mount, NULL, G_STORAGE,
     "docker's --mount: source=, target=, readonly, tmpfs-size=, tmpfs-mode="},
    {"tmpfs", 0, "/PATH[:size=N,mode=M]", NULL, opt_tmpfs, NULL, G_STORAGE,
     "a tmpfs in the guest (noexec,nosuid,nodev unless exec, suid, dev)"},
    {"read-only", 0, NULL, NULL, opt_read_only, NULL, G_STORAGE,
     "the guest's root is read-only (/tmp and /run stay writable tmpfs)"},
    {"volume-size", 0, "SIZE", NULL, opt_volume_size, NULL, G_STORAGE,
     "size of new volumes (default 1G)"},
    {"volumes-dir", 0, "DIR", "CTR_JAILER_VOLUMES", opt_volumes_dir, NULL, G_STORAGE,
     "where named volumes live (default " CJ_DEFAULT_VOLUMES_DIR ")"},
    {"data", 0, "DIR", NULL, opt_data, NULL, G_STORAGE,
     "the seed's data drive (default " CJ_SEED_DATA_DIR " when it exists)"},
    {"data-mount", 0, "PATH", "DATA_MOUNT", opt_data_mount, NULL, G_STORAGE,
     "where the guest mounts the data drive"},
    {"data-size", 0, "SIZE", "DATAFS_SIZE", opt_data_size, NULL, G_STORAGE,
     "size of the data drive's file system"},
    {"network", 0, "tap|none", "CTR_JAILER_NETWORK", opt_network, NULL, G_NET,
     "networking mode (default tap)"},
    {"publish", 'p', "[IP:]HP:GP[/udp]", "PUBLISH", opt_publish, opt_publish_env, G_NET,
     "publish a guest port; the variable takes a comma-separated list"},
    {"tap-ip", 0, "CIDR", "TAP_IP", opt_tap_ip, NULL, G_NET, "the VM's /30 (host side)"},
    {"host-iface", 0, "IF", "HOST_IFACE", opt_host_iface, NULL, G_NET, "the NAT uplink"},
    {"dns", 0, "IP", NULL, opt_dns, NULL, G_NET, "the guest's resolver (repeatable)"},
    {"firewall", 0, "auto|nft|iptables|iptables-legacy|none", "CTR_JAILER_FIREWALL", opt_firewall,
     NULL, G_NET, "firewall backend"},
    {"egress", 0, "allow|deny", "CTR_JAILER_EGRESS", opt_egress, NULL, G_NET,
     "new connections the guest may open (default allow); deny keeps DNS to the guest's "
     "resolvers, replies to published ports and --allow-egress"},
    {"allow-egress", 0, "CIDR[:PORT[/tcp|/udp]]", "CTR_JAILER_ALLOW_EGRESS", opt_allow_egress,
     opt_allow_egress_env, G_NET,
     "let the guest connect there; repeatable, the variable comma-separated. Giving it "
     "denies the rest: it implies --egress deny and contradicts --egress allow"},
    {"allow-link-local", 0, NULL, "CTR_JAILER_ALLOW_LINK_LOCAL", opt_allow_link_local,
     opt_allow_link_local_env, G_NET,
     "let the guest reach 169.254.0.0/16 (cloud metadata services), dropped by default"},
    {"vmm", 0, "auto|qemu|firecracker", "CTR_JAILER_VMM", opt_vmm, NULL, G_VMM,
     "the VMM (auto: Firecracker when it is installed and KVM can run a guest, else QEMU)"},
    {"qemu", 0, "PATH", NULL, opt_qemu, NULL, G_VMM, "QEMU binary (default qemu-system-x86_64)"},
    {"firecracker", 0, "PATH", "FIRECRACKER_BIN", opt_firecracker, NULL, G_VMM,
     "firecracker binary (default: PATH)"},
    {"jailer", 0, "PATH", "JAILER_BIN", opt_jailer, NULL, G_VMM,
     "Firecracker's jailer (default: PATH, then next to firecracker)"},
    {"chroot-base", 0, "DIR", "CTR_JAILER_CHROOT_BASE", opt_chroot_base, NULL, G_VMM,
     "where the jailer builds jails (default " CJ_DEFAULT_CHROOT_BASE ")"},
    {"no-jail", 0, NULL, NULL, opt_no_jail, NULL, G_VMM,
     "run the VMM as root, unconfined (not recommended)"},
    {"jail-user", 0, "USER", "CTR_JAILER_JAIL_USER", opt_jail_user, NULL, G_VMM,
     "the user jailed VMMs run as (NAME or UID[:GID]; default: a uid of the VM's own)"},
    {"jail-uid-range", 0, "START:COUNT", "CTR_JAILER_UID_RANGE", opt_jail_uid_range, NULL, G_VMM,
     "the uids (= gids) jailed VMMs run as, one per VM (default 2000000000:65536)"},
    {"cpu-quota", 0, "CPUS", "CTR_JAILER_CPU_QUOTA", opt_cpu_quota, NULL, G_VMM,
     "the VMM's CPU limit, e.g. 1.5 (default: none)"},
    {"memory-limit", 0, "SIZE", "CTR_JAILER_MEMORY_LIMIT", opt_memory_limit, NULL, G_VMM,
     "the VMM's memory limit (default: guest memory + 256 MiB)"},
    {"pids-limit", 0, "N", "CTR_JAILER_PIDS_LIMIT", opt_pids_limit, NULL, G_VMM,
     "the VMM's process limit"},
    {"detach", 'd', NULL, NULL, opt_detach, NULL, G_LIFE,
     "run in the background: print the run's id once the VM started; a supervisor "
     "process keeps the VM, its console goes to 'ctr-jailer logs'"},
    {"interactive", 'i', NULL, NULL, opt_interactive, NULL, G_LIFE,
     "keep stdin open: what comes on it goes to the workload's stdin (else /dev/null)"},
    {"tty", 't', NULL, NULL, opt_tty, NULL, G_LIFE,
     "give the workload a terminal in the guest; ours goes raw, its size follows, "
     "Ctrl-C reaches the guest's foreground process"},
    {"console", 0, NULL, NULL, opt_console, NULL, G_LIFE,
     "show the guest's serial console (kernel and init messages) on stderr"},
    {"sig-proxy", 0, "true|false", NULL, opt_sig_proxy, NULL, G_LIFE,
     "without -t, pass INT, HUP, QUIT, USR1, USR2 on to the workload as they come "
     "(default true; false: they stop the VM)"},
    {"name", 0, "NAME", NULL, opt_name, NULL, G_LIFE,
     "name the run (default: a random one); its record is kept once it ended, until 'rm'"},
    {"rm", 0, NULL, NULL, opt_rm, NULL, G_LIFE,
     "keep no record once the run ended (the root is ephemeral either way)"},
    {"restart", 0, "no|on-failure[:N]|always", NULL, opt_restart, NULL, G_LIFE,
     "boot the VM again when it ends (on-failure: with a non-zero exit code, at most N "
     "times); kept by the supervisor; a stop ends it"},
    {"health-cmd", 0, "CMD", NULL, opt_health_cmd, NULL, G_LIFE,
     "check the workload's health: run /bin/sh -c CMD in the guest (as exec does); exit 0 is "
     "healthy; 'ps' and 'inspect' show the state"},
    {"health-interval", 0, "DURATION", NULL, opt_health_interval, NULL, G_LIFE,
     "time between checks (default 30s)"},
    {"health-timeout", 0, "DURATION", NULL, opt_health_timeout, NULL, G_LIFE,
     "a check that runs longer fails (default 30s)"},
    {"health-retries", 0, "N", NULL, opt_health_retries, NULL, G_LIFE,
     "failures in a row that make the run unhealthy (default 3)"},
    {"health-start-period", 0, "DURATION", NULL, opt_health_start_period, NULL, G_LIFE,
     "failures this soon after a boot do not count until a check succeeded (default 0s)"},
    {"no-healthcheck", 0, NULL, NULL, opt_no_healthcheck, NULL, G_LIFE,
     "no health check, not even the image's HEALTHCHECK"},
    {"quiet", 'q', NULL, NULL, opt_quiet, NULL, G_LIFE,
     "do not print the guest's address and published ports at start, nor progress"},
    {"cache-dir", 0, "DIR", "CTR_JAILER_CACHE", opt_cache_dir, NULL, G_RUNTIME,
     "cache of kernels, base images and initramfs (default " CJ_DEFAULT_CACHE ")"},
    {NULL, 0, "DIR", "CTR_JAILER_RUN_DIR", opt_run_dir, NULL, G_RUNTIME,
     "where runs keep their state (default " CJ_DEFAULT_RUN_BASE ")"},
    {"timings", 0, NULL, NULL, opt_timings, NULL, G_RUNTIME,
     "print phase durations as one JSON line on stderr"},
    {"dry-run", 0, NULL, NULL, opt_dry_run, NULL, G_RUNTIME,
     "print the resolved run as JSON and exit, booting nothing; it shows the "
     "guest's environment with values (secrets by name only)"},
};

static int run_main(const struct cli_verb *verb, int argc, char **argv);

const struct cli_verb cli_run_verb = {
    .name = "run",
    .usage = "run [OPTIONS] [IMAGE] [--] [COMMAND [ARG...]]",
    .about = "Boot the container root filesystem as a microVM and run COMMAND in it. Options "
             "override the seed's environment variables named in parentheses.",
    .opts = run_opts,
    .nopts = sizeof run_opts / sizeof *run_opts,
    .epilog = "Exit status: the command's own (128+N when killed by signal N); 123 guest\n"
              "setup failed; 124 the VM ended without a status; 125 ctr-jailer could not\n"
              "start the VM; 126 the command cannot be executed; 127 it was not found.\n",
    .main = run_main,
};

/* Shell noise: not passed on to the guest (PATH and HOME get the guest's
 * defaults there). */
static const char *const shell_noise[] = {"PATH", "HOME",   "HOSTNAME", "TERM",
                                          "PWD",  "OLDPWD", "SHLVL",    "_"};

static bool name_is(const char *want, const char *name, size_t len)
{
	return want && strlen(want) == len && strncmp(want, name, len) == 0;
}

bool cli_run_env_is_own(const char *name, size_t len)
{
	if (len >= 11 && strncmp(name, "CTR_JAILER_", 11) == 0)
		return true;
	for (size_t i = 0; i < sizeof run_opts / sizeof *run_opts; i++)
		if (name_is(run_opts[i].env, name, len))
			return true;
	for (size_t i = 0; i < sizeof shell_noise / sizeof *shell_noise; i++)
		if (name_is(shell_noise[i], name, len))
			return true;
	return false;
}

static bool in_list(const struct cj_strv *list, const char *name, size_t len)
{
	for (size_t i = 0; i < list->n; i++)
		if (strlen(list->v[i]) == len && strncmp(list->v[i], name, len) == 0)
			return true;
	return false;
}

/* Environment layers: passthrough < --env-file (read by the inputs stage)
 * < -e, whose names are kept so the files go under them. Whether the
 * passthrough's candidates go in is the spec's rule (cj_spec_passes_env). */
static int build_env(struct run_ctx *ctx, struct cj_err *err)
{
	struct cj_spec *spec = ctx->spec;

	for (size_t i = 0; ctx->env && ctx->env[i]; i++) {
		const char *e = ctx->env[i], *eq = strchr(e, '=');
		size_t len = eq ? (size_t)(eq - e) : 0;
		if (!eq || !cj_env_name_valid(e, len) || cli_run_env_is_own(e, len) ||
		    in_list(&ctx->hidden, e, len))
			continue;
		if (cj_env_set(&spec->passthrough_env, e) < 0)
			return cj_fail(err, ENOMEM, "environment");
	}
	for (size_t i = 0; i < ctx->env_args.n; i++) {
		const char *a = ctx->env_args.v[i], *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		char *name = strndup(a, len);
		int r = name ? 0 : cj_fail(err, ENOMEM, "environment");
		if (r == 0 && (eq || cj_env_lookup(ctx->env, a, len)) &&
		    cj_strv_push(&spec->env_flag_names, name) < 0)
			r = cj_fail(err, ENOMEM, "environment");
		free(name);
		if (r < 0 || cj_env_add(&spec->env, a, ctx->env, err) < 0)
			return -1;
	}
	spec->lookup_env = ctx->env;
	return 0;
}

/* docker's `run IMAGE [COMMAND...]` next to the seed's `run [--] COMMAND`:
 * the first operand is the image only when no --rootfs, --image or
 * CTR_JAILER_IMAGE chose one, no "--" came before it, and it is an image
 * for sure: a file form (oci:, docker-archive:, tar:), a stored image, or
 * a registry reference naming a registry host, a tag or a digest. A plain
 * word that is not stored stays the seed's command. A "--" right after
 * the image is skipped. */
static int image_operand(struct run_ctx *ctx, int argc, char **argv, int first)
{
	struct cj_spec *spec = ctx->spec;
	const char *s = first < argc ? argv[first] : NULL;
	struct cj_store st;
	struct cj_store_entry e;
	struct cj_err ignored = {0};

	if (!s || ctx->rootfs_flag || spec->image ||
	    (first > 0 && strcmp(argv[first - 1], "--") == 0))
		return first;
	cj_store_paths(spec->cache_dir ? spec->cache_dir : CJ_DEFAULT_CACHE, &st);
	if (!cj_image_ref_is_file_form(s) && !cj_reg_ref_is_explicit(s) &&
	    cj_store_find(&st, s, &e, &ignored) != 1)
		return first;
	if (!(spec->image = strdup(s)))
		return -1;
	spec->what_flag = true; /* docker's form: the host shell's env stays out */
	first++;
	return first < argc && strcmp(argv[first], "--") == 0 ? first + 1 : first;
}

static int finish(struct run_ctx *ctx, int argc, char **argv, int first, struct cj_err *err)
{
	struct cj_spec *spec = ctx->spec;

	if ((first = image_operand(ctx, argc, argv, first)) < 0)
		return cj_fail(err, ENOMEM, "image");
	for (int i = first; i < argc; i++)
		if (cj_strv_push(&spec->argv, argv[i]) < 0)
			return cj_fail(err, ENOMEM, "argv");
	if (spec->health.disabled &&
	    (spec->health.test.n || spec->health.interval_ms || spec->health.timeout_ms ||
	     spec->health.start_period_ms || spec->health.retries))
		return cj_fail(err, 0,
		               "--no-healthcheck conflicts with the --health-* options: give one "
		               "or the other");
	if (ctx->rootfs_flag && ctx->image_flag)
		return cj_fail(err, 0, "give --rootfs or --image, not both");
	if (ctx->rootfs_flag && spec->image) { /* the flag wins over CTR_JAILER_IMAGE */
		free(spec->image);
		spec->image = NULL;
	}
	if (spec->argv.n == 0 && !spec->image && !spec->has_entrypoint)
		return cj_fail(err, 0,
		               "no command given: put the guest command after the options, e.g. "
		               "'ctr-jailer run -- /bin/echo hello'");
	return build_env(ctx, err);
}

int cli_run_parse(struct cj_spec *spec, int argc, char **argv, char **env,
                  const struct cj_host_facts *facts, bool *dry_run, struct cj_err *err)
{
	struct run_ctx ctx = {.spec = spec, .env = env};
	struct cj_host_facts gathered;
	int first = argc, r;

	if (cj_spec_init(spec, err) < 0)
		return -1;
	r = cli_apply_env(&cli_run_verb, &ctx, env, err);
	if (r == 0)
		r = cli_parse_args(&cli_run_verb, &ctx, argc, argv, &first, err);
	if (r == 0)
		r = finish(&ctx, argc, argv, first, err);
	if (r == 0 && !facts) {
		cj_host_facts_gather(&gathered); /* the one read of the host's facts */
		facts = &gathered;
	}
	if (r == 0)
		r = cj_spec_resolve(spec, facts, err);
	cj_strv_free(&ctx.env_args);
	cj_strv_free(&ctx.hidden);
	if (dry_run)
		*dry_run = ctx.dry_run;
	if (r != 0)
		cj_spec_free(spec);
	return r;
}

static int run_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_spec spec;
	struct cj_err err = {0};
	bool dry_run = false;
	int r = cli_run_parse(&spec, argc, argv, environ, NULL, &dry_run, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	cj_progress_setup(2, cj_progress_mode_for(2, spec.quiet));
	if (dry_run) {
		char *json = cli_spec_json(&spec);
		cj_spec_free(&spec);
		if (!json)
			return cli_report(&err, CJ_EXIT_RUNTIME);
		printf("%s\n", json);
		free(json);
		return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
	}
	/* The run's status is its return (err->exit_code when it failed); a
	 * message may come with a workload's own status too. */
	if (spec.detach) {
		char id[16];
		r = cj_run_detached(&spec, id, NULL, &err);
		cj_spec_free(&spec);
		if (r != 0)
			return cli_report(&err, r);
		printf("%s\n", id);
		return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
	}
	r = cj_run_vm(&spec, &err);
	cj_spec_free(&spec);
	cli_print_err(&err);
	return r;
}
