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
#include "util/err.h"
#include "util/strv.h"
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

struct cj_spec {
	char *rootfs;
	/* --image (CTR_JAILER_IMAGE): a container image instead of rootfs */
	char *image;                 /* "oci:DIR[:TAG]", "docker-archive:FILE" or "tar:FILE" */
	char *entrypoint;            /* --entrypoint: one argument; "" clears the image's */
	bool has_entrypoint;         /* --entrypoint given */
	uint32_t stop_signal;        /* the image's StopSignal; 0: SIGTERM */
	uint64_t max_image_size;     /* --max-image-size: unpack budget in bytes; 0: default */
	uint64_t cache_max;          /* --cache-max: LRU cap on the cache after the run; 0: none */
	struct cj_image *image_info; /* the opened image (run/inputs.c), else NULL */

	char *kernel;      /* NULL: the fetched default kernel in the cache */
	char *modules_dir; /* lib/modules/<release> tree for the kernel, or NULL */
	struct cj_strv argv;
	struct cj_strv env; /* "NAME=VALUE", unique names */
	/* read by the inputs stage: --env-file FILEs, in order, go between
	 * the passthrough and -e (whose names, env_flag_names, win) */
	struct cj_strv env_files;
	struct cj_strv env_flag_names;
	char **lookup_env; /* borrowed: the runtime's environment, for NAME alone */
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
	/* the lifecycle: --name, -d, --rm, -q, --restart */
	char *name;           /* NULL: a random one */
	bool detach;          /* -d: a supervisor keeps the VM; the id is printed */
	bool auto_remove;     /* --rm: no record is kept once the run ended */
	bool quiet;           /* -q: no address line at start */
	char *restart;        /* the policy as given: "no", "on-failure[:N]", "always" */
	bool restart_always;  /* restart whatever the exit code */
	unsigned restart_max; /* on-failure's N (0: no limit); with neither, no restart */
	bool restart_on_failure;
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
