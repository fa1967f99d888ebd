/* SPDX-License-Identifier: Apache-2.0 */
/* The run specification: everything `ctr-jailer run` needs. The CLI
 * (src/cli/run.c) fills it from command-line flags > the seed's environment
 * variables; cj_spec_resolve fills the defaults from the host's facts,
 * without I/O. What must be read (env files, secret files, the image) is
 * named here and read by the pipeline's first stage (run/inputs.c). */
#ifndef CJ_SPEC_H
#define CJ_SPEC_H

#include "ctrj/protocol.h"
#include "host/budget.h"
#include "host/facts.h"
#include "jail/jail.h"
#include "net/net.h"
#include "registry/pull.h"
#include "util/err.h"
#include "util/strv.h"
#include "volume/share.h"
#include "volume/volume.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CJ_DEFAULT_ROOTFS   "/usr/src/app/rootfs"
#define CJ_DEFAULT_CACHE    "/var/cache/ctr-jailer"
#define CJ_DEFAULT_RUN_BASE "/run/ctr-jailer"
#define CJ_MAX_CPUS         255u

enum cj_accel { CJ_ACCEL_AUTO, CJ_ACCEL_KVM, CJ_ACCEL_TCG };
enum cj_vmm_kind { CJ_VMM_AUTO, CJ_VMM_QEMU, CJ_VMM_FIRECRACKER };

#define CJ_DEFAULT_CHROOT_BASE "/srv/jailer"

struct cj_image;

/* Health checks (docker's HEALTHCHECK): a command run in the guest through
 * the agent every interval; 0 means "not given" (the image's value, else
 * docker's default: cj_health_defaults). */
struct cj_health_spec {
	struct cj_strv test;      /* the command's argv; empty: none */
	bool disabled;            /* --no-healthcheck, or the image's NONE */
	uint64_t interval_ms;     /* between the end of a check and the next */
	uint64_t timeout_ms;      /* a check that runs longer fails */
	uint64_t start_period_ms; /* failures in it do not count until one succeeded */
	unsigned retries;         /* failures in a row that make the run unhealthy */
};
#define CJ_HEALTH_INTERVAL_MS 30000u
#define CJ_HEALTH_TIMEOUT_MS  30000u
#define CJ_HEALTH_RETRIES     3u

/* Whether the runtime's environment passes into the guest. */
enum cj_passthrough {
	CJ_PASSTHROUGH_AUTO, /* the seed's container mode (no --rootfs or --image): all; else none
	                      */
	CJ_PASSTHROUGH_ON,   /* --env-passthrough */
	CJ_PASSTHROUGH_OFF,  /* --no-env-passthrough */
};

struct cj_spec {
	char *rootfs;
	/* --image (CTR_JAILER_IMAGE): a container image instead of rootfs */
	char *image;                  /* "oci:DIR[:TAG]", "docker-archive:FILE", "tar:FILE" or a
	                                 stored name / registry reference */
	struct cj_pull_settings pull; /* --pull, --platform, --creds, ... */
	char *entrypoint;             /* --entrypoint: one argument; "" clears the image's */
	bool has_entrypoint;          /* --entrypoint given */
	uint32_t stop_signal;         /* the image's StopSignal; 0: SIGTERM */
	uint64_t max_image_size;      /* --max-image-size: unpack budget in bytes; 0: default */
	uint64_t cache_max;           /* --cache-max: LRU cap on the cache after the run; 0: none */
	struct cj_image *image_info;  /* the opened image (run/inputs.c), else NULL */

	char *kernel;      /* NULL: the fetched default kernel in the cache */
	char *modules_dir; /* lib/modules/<release> tree for the kernel, or NULL */
	struct cj_strv argv;
	struct cj_strv env; /* "NAME=VALUE", unique names */
	/* read by the inputs stage: --env-file FILEs, in order, go between
	 * the passthrough and -e (whose names, env_flag_names, win) */
	struct cj_strv env_files;
	struct cj_strv env_flag_names;
	char **lookup_env; /* borrowed: the runtime's environment, for NAME alone */
	/* the runtime's variables that may pass into the guest (the CLI left
	 * out its own); cj_spec_resolve adds them under the rest or not */
	enum cj_passthrough env_passthrough;
	bool what_flag; /* --rootfs, --image or an image operand on the command line */
	struct cj_strv passthrough_env;
	char *workdir;
	char *user;
	char *hostname;
	unsigned cpus;
	uint64_t memory_mib;
	uint64_t rootfs_size;  /* bytes of writable space for the ephemeral root; 0 = default */
	char *boot_args;       /* KERNEL_BOOT_ARGS: replaces the default line */
	char *extra_boot_args; /* EXTRA_KERNEL_BOOT_ARGS: appended */
	enum cj_accel accel;
	unsigned stop_timeout_s; /* guest grace period before SIGKILL */
	bool timings;
	bool cold_boot; /* --cold-boot: no boot snapshot */
	/* the lifecycle: --name, -d, --rm, -q, --restart */
	char *name;       /* NULL: a random one */
	bool detach;      /* -d: a supervisor keeps the VM; the id is printed */
	bool auto_remove; /* --rm: no record is kept once the run ended */
	bool quiet;       /* -q: no address line at start */
	/* the workload's stdio (on the agent channel where the VMM has one) */
	bool interactive;     /* -i: our stdin goes to the workload's */
	bool tty;             /* -t: a terminal in the guest, ours in raw mode */
	bool console;         /* --console: the serial console on stderr */
	bool no_sig_proxy;    /* --sig-proxy=false: signals stop the VM as before */
	char *restart;        /* the policy as given: "no", "on-failure[:N]", "always" */
	bool restart_always;  /* restart whatever the exit code */
	unsigned restart_max; /* on-failure's N (0: no limit); with neither, no restart */
	bool restart_on_failure;
	/* OCI runtime mode (ctr-jailer-runtime): the workload waits for the
	 * agent's RELEASE; a detached run keeps its stdout (the engine's pipe
	 * or pty): the console there (console_stdout: a terminal), or the
	 * workload's stdout there and its stderr on engine_err_fd, apart from
	 * the console and the notices (engine_stdio) */
	bool hold;
	bool console_stdout;
	struct ctrj_proc proc; /* the workload's privileges and limits (config.json's process) */
	uint64_t pids_limit;   /* the guest's pids cgroup for the workload; 0: none */
	/* files of shared directories bound over the guest's (allocated) */
	struct ctrj_bind_file binds[CTRJ_MAX_BIND_FILES];
	size_t nbinds;
	bool engine_stdio;
	int engine_err_fd;
	struct cj_health_spec health; /* --health-*, merged with the image's Healthcheck */
	char *cache_dir;
	char *run_base;
	char *qemu_bin;
	/* the VMM: --vmm (CTR_JAILER_VMM); Firecracker and its jailer */
	enum cj_vmm_kind vmm;
	char *firecracker_bin; /* --firecracker, FIRECRACKER_BIN; NULL: PATH */
	char *jailer_bin;      /* --jailer, JAILER_BIN; NULL: PATH, then next to firecracker */
	char *chroot_base;     /* --chroot-base, CTR_JAILER_CHROOT_BASE */
	/* persistent drives */
	struct cj_volume_spec *volumes;
	size_t nvolumes;
	char *volumes_dir;
	uint64_t volume_size; /* default size of new volumes */
	char *data_dir;       /* the seed's /jail/data, when present or given */
	char *data_mount;     /* DATA_MOUNT: where the init mounts the data drive */
	uint64_t datafs_size; /* DATAFS_SIZE; 0 = default */
	/* host directories (virtiofs), tmpfs mounts, --read-only */
	struct cj_share_spec *shares;
	size_t nshares;
	struct cj_tmpfs_spec *tmpfs;
	size_t ntmpfs;
	bool read_only;
	/* secrets: values held in memory only */
	struct ctrj_secret *secrets;
	size_t nsecrets;
	char **secret_files; /* per secret: NAME=@FILE's FILE (read by inputs), or NULL */
	/* networking */
	struct cj_net_spec net;
	/* the jail around the VMM and its host-side limits */
	struct cj_jail_spec jail;
	/* what the host gives, gathered once (cj_spec_resolve) */
	struct cj_host_facts host;
};

/* The defaults a parse starts from. */
int cj_spec_init(struct cj_spec *spec, struct cj_err *err);
/* Fill what was not given from the host's facts (cj_host_facts_gather,
 * called by the front end) and check the spec against them; no I/O. */
int cj_spec_resolve(struct cj_spec *spec, const struct cj_host_facts *facts, struct cj_err *err);
void cj_spec_free(struct cj_spec *spec);
/* Does the run have a health check? Fills docker's defaults into the
 * values not given. */
bool cj_health_defaults(struct cj_health_spec *h);
bool cj_health_wanted(const struct cj_health_spec *h);
/* A duration as docker takes it ("30s", "1m30s", "1.5s", "250ms", "1h";
 * a bare number is seconds) in milliseconds; -1 when malformed. */
int cj_duration_parse(const char *s, uint64_t *ms);

/* The seed's container mode: neither --rootfs nor --image on the command
 * line (ctr-jailer as a container's ENTRYPOINT, configured by the
 * container's variables, CTR_JAILER_IMAGE included). */
bool cj_spec_container_mode(const struct cj_spec *spec);
/* Does the runtime's environment pass into the guest (the rule above)? */
bool cj_spec_passes_env(const struct cj_spec *spec);
/* Make the spec's relative host paths absolute under cwd (a detached
 * supervisor leaves its caller's working directory). */
int cj_spec_absolute_paths(struct cj_spec *spec, const char *cwd, struct cj_err *err);

/* -e semantics: NAME=VALUE, or NAME alone taking the value from lookup_env
 * (skipped when unset, like docker). */
int cj_env_add(struct cj_strv *env, const char *arg, char **lookup_env, struct cj_err *err);
/* A variable name: not empty, no '=', NUL or white space. */
bool cj_env_name_valid(const char *s, size_t len);
/* The value of NAME (len bytes) in a NULL-terminated environment, or NULL. */
const char *cj_env_lookup(char **env, const char *name, size_t len);
/* docker --env-file semantics: NAME=VALUE taken literally, NAME alone takes
 * the value from lookup_env, '#' comments and blank lines skipped. */
int cj_env_file_parse(const char *text, size_t len, const char *name, char **lookup_env,
                      struct cj_strv *env, struct cj_err *err);

#endif
