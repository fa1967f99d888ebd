/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM backends behind one small contract: start, request a graceful
 * stop (Ctrl-Alt-Del to the guest), kill, and the process to wait for. */
#ifndef CJ_VMM_H
#define CJ_VMM_H

#include "util/err.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum cj_drive_role { CJ_DRIVE_CONTROL, CJ_DRIVE_BASE, CJ_DRIVE_MODULES };

struct cj_drive {
	const char *id;
	const char *path;
	bool read_only;
};

#define CJ_MAX_DRIVES 24

/* Host-side limits on the VMM's cgroup (0 = unlimited). Firecracker's
 * jailer applies them with --cgroup, ctr-jailer's own jail (QEMU) itself. */
struct cj_vm_limits {
	uint64_t cpu_quota_us; /* CPU time per cpu_period_us */
	uint64_t cpu_period_us;
	uint64_t memory_bytes;
	uint64_t pids;
};

/* The jail around the VMM (Firecracker: its own `jailer`; QEMU: src/lib/jail).
 * Resolved by the run (cj_jail_resolve) from the user's options. */
struct cj_jail_config {
	bool enabled;           /* false: --no-jail */
	const char *jailer_bin; /* absolute path of Firecracker's jailer */
	const char *chroot_base;
	uid_t uid; /* the unprivileged user the VMM runs as */
	gid_t gid;
	const char *netns; /* network namespace to join (path), or NULL */
	struct cj_vm_limits limits;
};

/* What a VMM needs to boot the guest; backend-neutral. */
struct cj_vm_config {
	const char *kernel;
	const char *initramfs;
	char cmdline[4096];
	unsigned cpus;
	uint64_t memory_mib;
	bool use_kvm;
	struct cj_drive drives[CJ_MAX_DRIVES];
	size_t ndrives;
	const char *run_dir; /* sockets live here */
	const char *tap;     /* TAP device name, NULL: no network */
	uint8_t mac[6];      /* guest MAC */
	int keep_fds[4];     /* inherited by the VMM (drives given as /proc/self/fd/N) */
	size_t nkeep_fds;
	const char *id;      /* the run's id (the jail is named after it) */
	bool has_console_fd; /* the VMM's stdout, the guest console (else /dev/null) */
	int console_fd;
	bool has_stderr_fd; /* the VMM's stderr (else /dev/null) */
	int stderr_fd;
	struct cj_jail_config jail;
};

struct cj_vmm;

/* A backend. start() forks the VMM (which must die with ctr-jailer:
 * PR_SET_PDEATHSIG) through cj_vmm_child_setup (its own session; stdin
 * /dev/null, stdout and stderr the pipes the run relays: no fd or
 * controlling terminal of the caller reaches it) with the environment
 * cj_vmm_envp, and fills vmm->pid; request_stop() asks the guest to
 * shut down (Ctrl-Alt-Del); exit_error() turns the VMM's own wait status
 * into an error when the guest reported nothing; cleanup() removes what
 * start() created outside the run directory (jail, cgroup). collect(),
 * when set, runs once the VMM has exited and before the guest's status is
 * read: it brings back what the guest wrote to copies of drives that the
 * VMM could not open in place (Firecracker's jail). */
struct cj_vmm_ops {
	const char *name;
	int (*start)(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err);
	int (*request_stop)(struct cj_vmm *vmm, struct cj_err *err);
	int (*collect)(struct cj_vmm *vmm, struct cj_err *err);
	void (*exit_error)(const struct cj_vmm *vmm, int wait_status, struct cj_err *err);
	void (*cleanup)(struct cj_vmm *vmm);
};

struct cj_vmm {
	const struct cj_vmm_ops *ops;
	const char *bin;           /* the VMM executable */
	pid_t pid;                 /* the process ctr-jailer waits for */
	char api_socket[PATH_MAX]; /* Firecracker's API socket (QEMU's QMP is an fd) */
	void *priv;                /* backend state */
};

extern const struct cj_vmm_ops cj_qemu_ops;
/* Firecracker through its REST API (libcurl), in its jailer unless
 * cfg->jail.enabled is false; details in firecracker.h. */
extern const struct cj_vmm_ops cj_firecracker_ops;

/* QEMU microvm. argv is built into a NULL-terminated vector (caller frees
 * with cj_qemu_argv_free); exposed for unit tests. QMP is qmp_fd, QEMU's
 * end of a connected socket pair: no path to follow, nothing to connect. */
char **cj_qemu_argv(const char *bin, const struct cj_vm_config *cfg, int qmp_fd);
void cj_qemu_argv_free(char **argv);
void cj_vmm_kill(struct cj_vmm *vmm);

/* The whole environment a VMM (QEMU, Firecracker's jailer or Firecracker)
 * is exec'd with: none of the runtime's, which holds the workload's
 * variables and secrets (/proc/PID/environ is readable by the VMM's uid). */
extern char *const cj_vmm_envp[];
/* In the forked child, before exec (async-signal-safe): a new session
 * (no controlling terminal; the terminal's signals reach only ctr-jailer,
 * which stops the guest gracefully), death with ctr-jailer, no blocked
 * signals, stdin /dev/null, stdout console_fd and stderr stderr_fd (each
 * /dev/null when -1). Returns -1 with errno set. */
int cj_vmm_child_setup(int console_fd, int stderr_fd);

/* Can KVM run a stock guest here? Returns false with a reason when not. */
bool cj_kvm_usable(char *why, size_t len);
/* Host TSC frequency in kHz (0 when unknown). */
unsigned long cj_host_tsc_khz(void);

#endif
