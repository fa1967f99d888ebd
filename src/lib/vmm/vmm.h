/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM backends behind one small contract: start, request a graceful
 * stop (Ctrl-Alt-Del to the guest), kill, and the process to wait for. */
#ifndef CJ_VMM_H
#define CJ_VMM_H

#include "jail/jail.h"
#include "util/err.h"
#include "vmm/fc_vsock.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What a drive is to the guest. The init finds drives by content; the
 * order (base first, then data) is the seed's. */
enum cj_drive_role {
	CJ_DRIVE_BASE,
	CJ_DRIVE_DATA,
	CJ_DRIVE_CONTROL,
	CJ_DRIVE_MODULES,
	CJ_DRIVE_VOLUME,
	CJ_DRIVE_LAYER, /* an image layer above the base, read-only */
};

struct cj_drive {
	enum cj_drive_role role;
	const char *id;   /* its name for the VMM: the role's, "volN" for volume N */
	const char *path; /* host path; NULL when the drive is only an fd */
	int fd;           /* the open drive (the control disk's memfd), or -1 */
	bool read_only;
};

#define CJ_MAX_DRIVES    24
#define CJ_MAX_VM_SHARES 16

/* A host directory the guest mounts by tag: a vhost-user-fs device on a
 * connection to its virtiofsd (QEMU only). */
struct cj_vm_share {
	const char *tag;
	int fd; /* connected to the virtiofsd's socket */
};

/* What a VMM needs to boot the guest; backend-neutral. */
struct cj_vm_config {
	const char *kernel;
	const char *initramfs;
	char cmdline[4096];
	unsigned cpus;
	uint64_t memory_mib;
	bool use_kvm;
	unsigned long tsc_khz; /* the host's TSC frequency (host facts); 0: unknown */
	struct cj_drive drives[CJ_MAX_DRIVES];
	size_t ndrives;
	struct cj_vm_share shares[CJ_MAX_VM_SHARES];
	size_t nshares;      /* any: guest memory from a shareable memfd */
	const char *run_dir; /* sockets live here */
	const char *tap;     /* TAP device name, NULL: no network */
	uint8_t mac[6];      /* guest MAC */
	const char *id;      /* the run's id (the jail is named after it) */
	bool has_console_fd; /* the VMM's stdout, the guest console (else /dev/null) */
	int console_fd;
	bool has_stderr_fd; /* the VMM's stderr (else /dev/null) */
	int stderr_fd;
	struct {
		bool prepare; /* boot to the snapshot point and wait there (snapshot.h) */
		bool restore; /* start from the snapshot in fd, then say "go" */
		int fd;       /* prepare: the file the state goes to; restore: the state */
		/* backends with a memory file (snapshot_in_jail): prepare: the
		 * file the guest memory goes to; restore: -1, and path names the
		 * state file, the memory file "mem" next to it */
		int mem_fd;
		const char *path;
	} snap;
	struct cj_jail_plan jail;
	struct cj_undo *undo; /* the run record's log: pushed before each host change */
};

struct cj_vmm;

/* A backend: it owns its details (its kernel arguments, its probes, its
 * drive naming, its jail executor).
 *  - start() forks the VMM (which must die with ctr-jailer) with cj_spawn
 *    (its own session; stdin /dev/null, stdout and stderr the pipes the
 *    run relays: no fd or controlling terminal of the caller reaches it)
 *    and the environment cj_vmm_envp, and fills vmm->pid; every change
 *    it makes outside the run directory is pushed on cfg->undo first;
 *  - boot_args() appends the backend's kernel arguments to out (with
 *    defaults, the user gave no --boot-args: its part of those too);
 *  - request_stop() asks the guest to shut down (Ctrl-Alt-Del);
 *  - collect(), when set, runs once the VMM has exited and before the
 *    guest's status is read: it brings back what the guest wrote to
 *    copies of drives the VMM could not open in place (Firecracker's jail);
 *  - exit_error() turns the VMM's wait status and its last line on stderr
 *    (vmm_said, printable) into the error when the guest reported nothing,
 *    and returns the exit code: CJ_EXIT_RUNTIME when the VMM itself
 *    failed, CJ_EXIT_VM_LOST when the guest ended without a status;
 *  - agent_fd(), when set, returns the host end of the agent channel
 *    (a stream to the guest init's agent; see ctrj/agent.h), or -1;
 *  - agent_target(), when set instead, says where a connection to the
 *    guest's agent is made (Firecracker's vsock: its socket and the
 *    guest's port; see vmm/fc_vsock.h), or returns -1 with err;
 *  - cleanup() closes what start() holds (the record's undo log takes the
 *    host changes back). */
struct cj_vmm_ops {
	const char *name;
	bool needs_vmlinux;  /* boots only an uncompressed vmlinux */
	bool jail_own_netns; /* jailed, it opens its TAP by name in a netns of its own */
	/* virtio devices the VM can have (drives, network, agent channel):
	 * QEMU 7.2 microvm has 24 virtio-mmio transports (a 25th device is
	 * refused: "No 'virtio-bus' bus found"); Firecracker gives each
	 * virtio device a legacy IRQ of 5-23 on x86_64, 19 in all. */
	unsigned max_devices;
	void (*boot_args)(const struct cj_vm_config *cfg, bool defaults, char *out, size_t len);
	int (*start)(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err);
	int (*request_stop)(struct cj_vmm *vmm, struct cj_err *err);
	int (*collect)(struct cj_vmm *vmm, struct cj_err *err);
	int (*exit_error)(const struct cj_vmm *vmm, int wait_status, const char *vmm_said,
	                  struct cj_err *err);
	int (*agent_fd)(const struct cj_vmm *vmm);
	int (*agent_target)(const struct cj_vmm *vmm, struct cj_fc_vsock_target *t,
	                    struct cj_err *err);
	void (*cleanup)(struct cj_vmm *vmm);
	/* Boot snapshots (NULL: none): on a VM started with cfg->snap.prepare
	 * whose guest reached its snapshot point, pause it and save its state
	 * into cfg->snap.fd; the VM is then killed. A start with
	 * cfg->snap.restore that could not restore sets vmm->restore_failed. */
	int (*snapshot_take)(struct cj_vmm *vmm, const struct cj_vm_config *cfg,
	                     struct cj_err *err);
	/* The snapshot is a state file and a memory file (cfg->snap.mem_fd),
	 * made by a VM in the run's jail (its plan, netns, TAP and undo log,
	 * under an id of its own): jailed runs only. */
	bool snapshot_in_jail;
};

struct cj_vmm {
	const struct cj_vmm_ops *ops;
	const char *bin;           /* the VMM executable */
	pid_t pid;                 /* the process ctr-jailer waits for */
	char api_socket[PATH_MAX]; /* Firecracker's API socket (QEMU's QMP is an fd) */
	void *priv;                /* backend state */
	bool restore_failed;       /* start() failed restoring a snapshot */
};

extern const struct cj_vmm_ops cj_qemu_ops;
/* Firecracker through its REST API (libcurl), in its jailer unless
 * cfg->jail.enabled is false; details in firecracker.h. */
extern const struct cj_vmm_ops cj_firecracker_ops;

/* QEMU microvm. argv is built into a NULL-terminated vector (caller frees
 * with cj_qemu_argv_free); exposed for unit tests. QMP is qmp_fd, QEMU's
 * end of a connected socket pair: no path to follow, nothing to connect. */
char **cj_qemu_argv(const char *bin, const struct cj_vm_config *cfg, int qmp_fd, int agent_fd);
void cj_qemu_argv_free(char **argv);
void cj_vmm_kill(struct cj_vmm *vmm);
/* The host end of the agent channel, or -1 (no channel, or not started). */
int cj_vmm_agent_fd(const struct cj_vmm *vmm);

/* The whole environment a VMM (QEMU, Firecracker's jailer or Firecracker)
 * is exec'd with: none of the runtime's, which holds the workload's
 * variables and secrets (/proc/PID/environ is readable by the VMM's uid). */
extern char *const cj_vmm_envp[];
/* Add a drive (cfg->ndrives < CJ_MAX_DRIVES), named after its role; n
 * numbers volumes. path or fd (-1) says where it is. */
int cj_vm_add_drive(struct cj_vm_config *cfg, enum cj_drive_role role, unsigned n, const char *path,
                    int fd, bool read_only, struct cj_err *err);
/* The jail plan's files: the kernel, the initramfs and the drives, in
 * their order (cfg->drives[i] is the plan's drive i). */
int cj_vm_plan_files(struct cj_vm_config *cfg, struct cj_err *err);
/* Where the VMM, unjailed, opens a drive: its path, or /proc/self/fd/N. */
const char *cj_drive_path(const struct cj_drive *d, char *buf, size_t len);

/* Can KVM run a stock guest here? Returns false with the reason in err. */
bool cj_kvm_usable(struct cj_err *err);
/* Host TSC frequency in kHz (0 when unknown). */

#endif
