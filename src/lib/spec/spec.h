/* SPDX-License-Identifier: Apache-2.0 */
/* The run specification: everything `ctr-jailer run` needs, resolved from
 * command-line flags > the seed's environment variables > defaults. */
#ifndef CJ_SPEC_H
#define CJ_SPEC_H

#include "ctrj/protocol.h"
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
#define CJ_MIN_MEMORY_MIB   64u
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
	struct cj_image *image_info; /* the opened image: config read, digests verified */

	char *kernel;      /* NULL: the fetched default kernel in the cache */
	char *modules_dir; /* lib/modules/<release> tree for the kernel, or NULL */
	struct cj_strv argv;
	struct cj_strv env; /* "NAME=VALUE", unique names */
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
	/* networking */
	struct cj_net_spec net;
	/* the jail around the VMM and its host-side limits */
	struct cj_jail_spec jail;
};

/* argv starts after "run". env is the runtime's environment (environ). */
int cj_spec_from_args(struct cj_spec *spec, int argc, char **argv, char **env, struct cj_err *err);
void cj_spec_free(struct cj_spec *spec);

/* Helpers exposed for unit tests. */
/* docker --env-file semantics: NAME=VALUE taken literally, NAME alone takes
 * the value from lookup_env, '#' comments and blank lines skipped. */
int cj_env_file_parse(const char *text, size_t len, const char *name, char **lookup_env,
                      struct cj_strv *env, struct cj_err *err);
/* Is NAME one of the runtime's own variables or shell noise (not passed on)? */
bool cj_env_is_runtime_own(const char *name, size_t len);
/* Host defaults honouring the runtime's own cgroup limits. */
unsigned cj_host_cpus(void);
uint64_t cj_host_memory_mib(void);

#endif
