/* SPDX-License-Identifier: Apache-2.0 */
/* `ctr-jailer run`: its option table (run.c) and the parsers behind it
 * (run_values.c). */
#ifndef CJ_CLI_RUN_H
#define CJ_CLI_RUN_H

#include "cli.h"
#include "net/net.h"
#include "spec/spec.h"

struct run_ctx {
	struct cj_spec *spec;
	char **env;              /* the runtime's environment */
	struct cj_strv env_args; /* -e, in order */
	struct cj_strv hidden;   /* variables used as secrets: not passed through */
	bool rootfs_flag, image_flag, dry_run;
};

/* Parse `run`'s arguments (argv[0] is "run") and the seed's variables in
 * env into spec, and resolve it (cj_spec_resolve) against facts (NULL:
 * gathered). Returns 1 when --help was printed, 0, or -1 with err. */
int cli_run_parse(struct cj_spec *spec, int argc, char **argv, char **env,
                  const struct cj_host_facts *facts, bool *dry_run, struct cj_err *err);
/* Is NAME (len bytes) the runtime's own, not passed on to the guest: a
 * seed variable of the option table, CTR_JAILER_*, or shell noise? */
bool cli_run_env_is_own(const char *name, size_t len);
/* The resolved spec as JSON (secrets by name only), for --dry-run. */
char *cli_spec_json(const struct cj_spec *spec);

cli_parse_fn opt_rootfs, opt_image, opt_image_env, opt_entrypoint, opt_max_image_size,
    opt_cache_max, opt_env, opt_env_file, opt_passthrough, opt_no_passthrough, opt_workdir,
    opt_user, opt_hostname, opt_secret, opt_cpus, opt_memory, opt_kernel, opt_modules,
    opt_boot_args, opt_extra_boot_args, opt_rootfs_size, opt_accel, opt_stop_timeout, opt_volume,
    opt_volume_size, opt_volumes_dir, opt_data, opt_data_mount, opt_data_size, opt_network,
    opt_publish, opt_publish_env, opt_tap_ip, opt_host_iface, opt_dns, opt_firewall, opt_egress,
    opt_allow_egress, opt_allow_egress_env, opt_allow_link_local, opt_allow_link_local_env, opt_vmm,
    opt_qemu, opt_firecracker, opt_jailer, opt_chroot_base, opt_no_jail, opt_jail_user,
    opt_jail_uid_range, opt_cpu_quota, opt_memory_limit, opt_pids_limit, opt_cache_dir, opt_run_dir,
    opt_timings, opt_dry_run, opt_detach, opt_cold_boot, opt_rm, opt_quiet, opt_interactive,
    opt_tty, opt_console, opt_sig_proxy, opt_name, opt_restart, opt_entrypoint_value, opt_pull,
    opt_platform, opt_creds, opt_cert_dir, opt_insecure_registry, opt_mount, opt_tmpfs,
    opt_read_only;

/* run_health.c */
cli_parse_fn opt_health_cmd, opt_health_interval, opt_health_timeout, opt_health_start_period,
    opt_health_retries, opt_no_healthcheck;

/* A parsed -v (taken): a host directory (run_storage.c), else a volume;
 * a second mount at the same guest path is refused. */
int run_add_volume(struct cj_spec *spec, struct cj_volume_spec *vs, struct cj_err *err);

#endif
