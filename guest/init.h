/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest init's pieces and how they meet:
 *   report.c  the one reporting path: console lines, the status record,
 *             guest_fail (report, then stop the VM)
 *   boot.c    first mounts, modules, drives by content, root, volumes
 *   config.c  the control disk's config, user, environment, secrets
 *   net.c     hostname, lo, eth0, resolver files
 *   pid1.c    signals, forwarding, reaping (pid1.h; host-testable)
 *   user.c, envfile.c  parsers of image data (host-testable)
 *   deadline.c  guest_wait_for, the one polling loop (deadline.h; host-testable)
 *   init.c    main: the sequence, and the workload's start
 * Helpers that the host's unit tests run (user.c, envfile.c, pid1.c)
 * return errors; the rest fails through guest_fail, which never returns.
 */
#ifndef CTRJ_GUEST_INIT_H
#define CTRJ_GUEST_INIT_H

#include "ctrj/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GUEST_MAX_GROUPS 64

struct guest_user {
	uint32_t uid;
	uint32_t gid;
	uint32_t groups[GUEST_MAX_GROUPS];
	size_t ngroups;
	char name[256];
	char home[512];
};

/* Resolve against /etc/passwd and /etc/group of the current root. */
int guest_user_resolve(const char *spec, struct guest_user *u, char *err, size_t errlen);
/* The same against <etc>/passwd and <etc>/group (for tests). */
int guest_user_resolve_at(const char *etc, const char *spec, struct guest_user *u, char *err,
                          size_t errlen);

/* Write "export NAME='value'" lines that a POSIX shell sources back to the
 * exact bytes; returns 0 or -1 with errno set. */
int guest_env_write_file(int fd, char *const *envp);

/* ---- procsec.c ---------------------------------------------------------- */

/* The workload's pids cgroup: every process the init starts joins it. */
/* text into the existing file path (sysfs, procfs, cgroupfs): 0 or -1
 * with errno */
int guest_write_text(const char *path, const char *text);
#define GUEST_PIDS_CGROUP "/sys/fs/cgroup/workload"
/* PID 1: make it, with pids.max = limit, joined through a detached mount
 * of cgroup2 of the init's own; /sys/fs/cgroup is then read-only. 0 or
 * -1 with errno. */
int guest_pids_cgroup(uint64_t limit);
/* In a child before exec: the pids cgroup (when made), p's rlimits,
 * oom_score_adj and bounding set, the user u with p's groups (else u's),
 * then p's capability sets and no_new_privs. 0 or -1 with errno. */
int guest_proc_enter(const struct ctrj_proc *p, const struct guest_user *u);

/* ---- report.c ----------------------------------------------------------- */

/* The status record written back at the end. */
struct ctrj_status *guest_status(void);
/* The control disk the status record goes to (before it is known, a
 * failure only reaches the console). */
void guest_report_to(int ctl_fd);
/* A console line "ctr-jailer-init: MESSAGE", non-ASCII bytes escaped. */
void guest_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Record the workload's end (wait status, time reaped). */
void guest_record_end(int wstatus, uint64_t ended_ns);
/* Report a failure before the workload runs (code 0: the init's own
 * setup; 126/127: the command cannot be executed / is missing) on the
 * console and in the status record, then stop the VM. */
__attribute__((noreturn, format(printf, 2, 3))) void guest_fail(int code, const char *fmt, ...);
/* Write the status record, unmount, sync and end the VM (QEMU's exit
 * device under QEMU, else a reboot). */
__attribute__((noreturn)) void guest_finish(void);

/* ---- resume.c ----------------------------------------------------------- */

/* With ctrj.snap=1: stop for the snapshot, then take this boot's seed,
 * clock and MAC from the host's "go" line. */
void resume_wait_go(void);
/* After a restore, once eth0 and the new root exist: the MAC, a fresh
 * /etc/machine-id. */
void resume_identity(bool has_net);
/* Every module, name's devices left to its driver's binding (boot.c);
 * boot_load_modules then binds them. */
void boot_load_modules_but(const char *name, const char *driver);
/* After a restore, the status record's times count from "go" (the host
 * adds them to the time it wrote it), not from the snapshot's boot. */
void resume_rebase_times(struct ctrj_status *st);

/* ---- boot.c ------------------------------------------------------------- */

#define GUEST_MAX_DISKS    32
#define GUEST_DISK_WAIT_MS 10000

struct guest_disk {
	char dev[64];
	uint8_t uuid[16];
	bool is_ext4;
	bool is_control;
};

/* The virtio drives seen so far. */
struct guest_disks {
	struct guest_disk d[GUEST_MAX_DISKS];
	size_t n;
};

void guest_mkdir_p(const char *path, mode_t mode);

void boot_console_raw(void);
void boot_early_mounts(void);
/* Load /modules/order; returns the time it took (ns). */
/* Is word one of the kernel command line's (boot.c)? */
bool guest_cmdline_has(const char *word);
uint64_t boot_load_modules(void);
/* Wait up to GUEST_DISK_WAIT_MS for the drive with this ext4 UUID (the
 * control disk when uuid is NULL), rescanning set; NULL when it never
 * appears. The result points into set. */
const struct guest_disk *boot_wait_disk(struct guest_disks *set, const uint8_t *uuid);
/* The root: the base, the layers above it (read-only, lowest first) and a
 * tmpfs upper under one overlay. */
void boot_mount_root(const struct ctrj_config *cfg, const struct guest_disk *base,
                     struct guest_disks *set);
void boot_switch_root(void);
void boot_mount_api_filesystems(void);
void boot_mount_modules(const struct ctrj_config *cfg, const struct guest_disks *set);
void boot_mount_volumes(const struct ctrj_config *cfg, struct guest_disks *set);
void boot_unmount_volumes(void);
/* Load virtiofs when a host directory is shared (before switch_root). */
void boot_load_share_modules(const struct ctrj_config *cfg);
/* Host directories and tmpfs mounts, after the volumes. */
void boot_mount_shares(const struct ctrj_config *cfg);
/* Files of shared directories bound over theirs (/etc/hosts...), after
 * net_setup wrote the guest's own; the shares then detached. */
void boot_bind_files(const struct ctrj_config *cfg);
/* --read-only: /tmp a tmpfs unless mounted, then the root read-only. */
void boot_seal_root(const struct ctrj_config *cfg);

/* ---- config.c ----------------------------------------------------------- */

/* Read the config from the control disk dev and wipe it there. */
void config_read(const char *dev, struct ctrj_config *cfg);
void config_resolve_user(const struct ctrj_config *cfg, struct guest_user *u);
void config_write_environment(char *const *envp, const struct guest_user *u);
void config_write_secrets(struct ctrj_config *cfg, const struct guest_user *u);
char **config_workload_env(const struct ctrj_config *cfg, const struct guest_user *u);

/* ---- net.c -------------------------------------------------------------- */

/* lo up (net.c); a no-op when it is */
void net_loopback_up(void);
void net_setup(const struct ctrj_config *cfg);

#endif
