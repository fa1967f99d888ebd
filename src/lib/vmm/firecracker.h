/* SPDX-License-Identifier: Apache-2.0 */
/* Firecracker backend internals: the pure parts (API request bodies built
 * with json-c, version check, exit statuses, the jailer's command line) are
 * here so that unit tests can reach them; firecracker.c drives the process,
 * the jail and the API socket. */
#ifndef CJ_FIRECRACKER_H
#define CJ_FIRECRACKER_H

#include "vmm.h"

#include <json-c/json.h>
#include <stddef.h>

/* The oldest release this backend drives. Before 1.8 Firecracker described
 * virtio devices only on the kernel command line (virtio_mmio.device=...),
 * which a kernel with virtio_mmio as a module (Debian's cloud kernel, the
 * default guest kernel) never reads: the guest would find no disks. 1.8
 * and later describe them through ACPI. */
#define CJ_FC_MIN_MAJOR   1
#define CJ_FC_MIN_MINOR   8
#define CJ_FC_MIN_PATCH   0
#define CJ_FC_MIN_VERSION "1.8.0"
/* Firecracker's vCPU limit (MachineConfiguration.vcpu_count maximum). */
#define CJ_FC_MAX_VCPUS 32u
/* The API socket inside the jail (the jailer creates /run for it). */
#define CJ_FC_JAIL_API_SOCK "/run/firecracker.socket"

/* Paths as Firecracker sees them: host paths without a jail, paths
 * relative to the jail's root inside one. */
struct cj_fc_paths {
	const char *kernel;
	const char *initrd;
	const char *drives[CJ_MAX_DRIVES]; /* one per cfg->drives[i] */
	const char *log;                   /* logger fifo */
	const char *metrics;               /* metrics fifo */
	/* the agent channel's vsock socket (inside the jail: relative to its
	 * root, "run/agent.vsock"); NULL: no vsock device. The guest agent
	 * listens on CTRJ_AGENT_VSOCK_PORT behind it (fc_vsock.h). */
	const char *vsock;
};

/* The guest's vsock context id (2 is the host; any fixed value >= 3 will
 * do: each VM's vsock is its own device behind its own socket). */
#define CJ_FC_GUEST_CID 3

struct cj_fc_request {
	char path[128];    /* e.g. "/drives/base" */
	json_object *body; /* owned */
};

/* The configuration calls (all PUT), in the order they are made, before
 * PUT /actions InstanceStart: logger, metrics, machine-config, boot-source,
 * one per drive, network-interfaces (only when cfg->tap is set), vsock
 * (only when paths->vsock is set), entropy.
 * vCPUs above CJ_FC_MAX_VCPUS are clamped. Free with cj_fc_plan_free. */
int cj_fc_plan(const struct cj_vm_config *cfg, const struct cj_fc_paths *paths,
               struct cj_fc_request **out, size_t *n, struct cj_err *err);
void cj_fc_plan_free(struct cj_fc_request *reqs, size_t n);
/* {"action_type": type} */
json_object *cj_fc_action(const char *type);

/* "1.7.0", "v1.10.1", "1.17.0-dev" -> v[3]; -1 when unparsable. */
int cj_fc_parse_version(const char *s, unsigned v[3]);
/* 0 when this backend supports version s, else -1 with the reason. */
int cj_fc_check_version(const char *s, struct cj_err *err);
/* Firecracker's wait status in words (its documented exit codes). */
void cj_fc_describe_exit(int wait_status, char *buf, size_t len);
/* A fault_message (or any text from the VMM) made safe for one line of a
 * terminal: control bytes replaced, at most len-1 bytes. */
void cj_fc_sanitize(const char *in, char *out, size_t len);

/* What the jailer is told. */
struct cj_fc_jailer_args {
	const char *jailer_bin;
	const char *exec_file; /* canonical path of the firecracker binary */
	const char *id;
	const char *chroot_base;
	uid_t uid;
	gid_t gid;
	int cgroup_version; /* 1 or 2 */
	const char *netns;  /* or NULL */
	const struct cj_vm_limits *limits;
	uint64_t fsize; /* --resource-limit fsize (bytes), 0: none */
};
/* NULL-terminated argv (free with cj_fc_argv_free); NULL on ENOMEM. */
char **cj_fc_jailer_argv(const struct cj_fc_jailer_args *a);
void cj_fc_argv_free(char **argv);
/* 2 when /sys/fs/cgroup is the unified (v2) hierarchy, else 1. */
int cj_cgroup_version(void);

/* The run record's kinds "firecracker.*" (firecracker.c): the jail's
 * directory and mounts, the owners of drives given to the jail user.
 * Replay is idempotent. */
int cj_firecracker_undo(json_object *entry, bool verbose);

/* Boot snapshots (snapshot.h), as calls with their method. A jailed run
 * restores the snapshot of its machine shape (made by a Firecracker in
 * the run's jail, under the id "<run id>-snap", with empty drive files at
 * the names the run's drives have in its jail); --no-jail runs boot cold. */
struct cj_fc_call {
	const char *method; /* "PUT" or "PATCH" */
	char path[128];
	json_object *body; /* owned */
};
/* Taking one: PATCH /vm Paused, PUT /snapshot/create (Full) of the state
 * and memory files (paths as Firecracker sees them). */
int cj_fc_snapshot_calls(const char *state, const char *mem, struct cj_fc_call **out, size_t *n,
                         struct cj_err *err);
/* Restoring one: PUT /snapshot/load (memory from a File, mapped privately;
 * not resumed; cfg's TAP over the snapshot's), PATCH /drives/ID per drive
 * re-pointing it at this run's file (paths->drives), PATCH /vm Resumed. */
int cj_fc_restore_calls(const struct cj_vm_config *cfg, const struct cj_fc_paths *paths,
                        const char *state, const char *mem, struct cj_fc_call **out, size_t *n,
                        struct cj_err *err);
void cj_fc_calls_free(struct cj_fc_call *calls, size_t n);

#endif
