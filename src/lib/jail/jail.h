/* SPDX-License-Identifier: Apache-2.0 */
/* The jail around the VMM: an empty room (a per-VM root holding only what
 * the VMM needs), its own mount/pid/ipc/uts namespaces, an unprivileged
 * uid/gid, no capabilities, no_new_privs, rlimits, and a cgroup per VM
 * with CPU, memory and pids limits. */
#ifndef CJ_JAIL_H
#define CJ_JAIL_H

#include "host/budget.h"
#include "util/err.h"
#include "util/undo.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CJ_JAIL_MAX_BINDS    128
#define CJ_JAIL_DEFAULT_PIDS 512
/* Each VM's VMM runs as a uid (and gid of the same number) of its own from
 * this range (--jail-uid-range / CTR_JAILER_UID_RANGE): one VMM cannot
 * ptrace, signal or read the memory of another. The default sits above
 * the ranges distributions hand to users, subuid maps (100000+) and
 * systemd-nspawn (up to 0x6FFFFFFF), and below 2^31. */
#define CJ_JAIL_UID_START 2000000000u
#define CJ_JAIL_UID_COUNT 65536u

/* Host-side limits on the VMM's cgroup (0 = unlimited). Firecracker's
 * jailer applies them with --cgroup, ctr-jailer's own jail (QEMU) itself. */
struct cj_vm_limits {
	uint64_t cpu_quota_us; /* CPU time per cpu_period_us */
	uint64_t cpu_period_us;
	uint64_t memory_bytes;
	uint64_t pids;
};

/* What goes into the jail. Each executor decides where and how: QEMU's
 * room binds the kernel and initrd at /boot and inherits each drive as
 * fds; Firecracker's chroot gets files named after them (linked, bound,
 * idmapped, given to the jail user, or copied from an fd). */
enum cj_jail_file_kind { CJ_JAIL_KERNEL, CJ_JAIL_INITRD, CJ_JAIL_DRIVE };

struct cj_jail_file {
	enum cj_jail_file_kind kind;
	const char *name; /* a drive's id; "kernel", "initrd" */
	const char *host; /* host path, or NULL when the file is only an fd */
	int fd;           /* the open file (the control disk's memfd), or -1 */
	bool writable;
};

#define CJ_JAIL_MAX_FILES 32

/* The one jail plan around the VMM, built once from the user's options
 * (cj_jail_resolve, cj_jail_assign_ids) and carried out by the backend:
 * QEMU by the self-jail here (cj_jail_prepare, cj_jail_enter), Firecracker
 * by its jailer in a chroot ctr-jailer lays out (src/lib/jail/layout.c). */
struct cj_jail_plan {
	bool enabled;           /* false: --no-jail */
	const char *jailer_bin; /* absolute path of Firecracker's jailer */
	const char *chroot_base;
	uid_t uid; /* the unprivileged user the VMM runs as */
	gid_t gid;
	const char *netns; /* network namespace to join (path), or NULL */
	struct cj_vm_limits limits;
	const char *cgroup_path; /* the engine's cgroup (cj_jail_spec), or NULL */
	/* What goes in, and the largest file the VMM legitimately writes, its
	 * largest writable drive (0: none): its RLIMIT_FSIZE bounds every file
	 * a compromised VMM could grow. Set by cj_jail_plan_files once the
	 * drives are known. */
	struct cj_jail_file files[CJ_JAIL_MAX_FILES];
	size_t nfiles;
	uint64_t fsize_limit;
};

/* Add a file to the plan (fsize_limit follows the writable ones). */
int cj_jail_plan_add(struct cj_jail_plan *plan, enum cj_jail_file_kind kind, const char *name,
                     const char *host, int fd, bool writable, struct cj_err *err);

struct cj_jail_spec {
	bool disabled;         /* --no-jail */
	char *user;            /* NAME or UID[:GID]; NULL: a uid of the VM's own */
	uint32_t uid_start;    /* that uid's range; 0: the default */
	uint32_t uid_count;    /* (CJ_JAIL_UID_START, CJ_JAIL_UID_COUNT) */
	double cpu_quota;      /* cores; 0 = unlimited */
	uint64_t memory_limit; /* bytes; 0 = guest memory + margin */
	uint64_t pids_limit;   /* 0 = default */
	/* The cgroup an engine names for the VMM (runtime mode's cgroupsPath,
	 * in cgroupfs form: "/docker/ID" under each hierarchy's root, or
	 * relative to our own cgroup), or NULL: "ctrj-<id>" under our own.
	 * Missing directories are made; only the leaf, when made by us, goes
	 * on the undo log (its parents are the engine's to share, as runc
	 * leaves them). */
	const char *cgroup_path;
};

struct cj_jail_bind {
	char src[PATH_MAX]; /* host path */
	char dst[PATH_MAX]; /* path inside the jail */
	bool is_dir;
	bool device; /* device node: keep dev, allow writes */
};

struct cj_jail {
	bool active;
	char root[PATH_MAX]; /* run_dir/root */
	/* The child mounts a tmpfs of its own mount namespace over root and
	 * builds the room in it: the host's run_dir/root stays an empty
	 * directory, with no mount points to create on its filesystem nor to
	 * remove at teardown. Off for a caller that placed mounts in root
	 * first (a tool's room, tool.c). */
	bool tmpfs_room;
	uid_t uid;
	gid_t gid;
	gid_t extra_gid; /* kvm group for /dev/kvm, or (gid_t)-1 */
	uint64_t fsize_limit;
	struct cj_jail_bind binds[CJ_JAIL_MAX_BINDS];
	size_t nbinds;
	/* cgroup directories (one for v2, one per controller for v1) */
	char cgroups[4][PATH_MAX];
	size_t ncgroups;
	/* bit i: cgroups[i] existed before the run (an engine's): never
	 * emptied nor removed by the jail */
	unsigned cgroups_kept;
	uint64_t memory_limit;
};

/* The user's options → the backend-neutral jail description: the
 * unprivileged uid/gid of --jail-user, if given, and the cgroup limits
 * (memory default: guest memory + CJ_JAIL_MARGIN_MIB; a limit below
 * guest memory is refused). */
int cj_jail_resolve(const struct cj_jail_spec *spec, uint64_t guest_memory_mib,
                    struct cj_jail_plan *out, struct cj_err *err);
/* "START:COUNT" (decimal) → spec->uid_start, uid_count. what names the
 * option or variable in the error. */
int cj_jail_uid_range_parse(const char *v, const char *what, struct cj_jail_spec *spec,
                            struct cj_err *err);
/* The run's own uid/gid into plan, unless --jail-user named one (or the
 * jail is off): the first of the range, from a random point, that no
 * other run holds (used: the uids of the other runs' records). The caller
 * holds the run base's "jail" lock until the choice is in its record. */
int cj_jail_pick_ids(const struct cj_jail_spec *spec, const uid_t *used, size_t nused,
                     struct cj_jail_plan *plan, struct cj_err *err);
/* Parent side, before the VMM starts: lay out the root, work out what to
 * bind (the VMM binary, its libraries, firmware, device nodes, kernel and
 * initramfs), create the cgroup with its limits (each pushed on undo
 * first). */
int cj_jail_prepare(const struct cj_jail_plan *cfg, const char *run_dir, const char *id,
                    const char *vmm_bin, struct cj_undo *undo, struct cj_jail *jail,
                    struct cj_err *err);
/* Parent side: move the VMM (still waiting) into the cgroup. */
int cj_jail_attach(const struct cj_jail *jail, pid_t pid, struct cj_err *err);
/* Child side, in new namespaces, right before exec: enter and lock the
 * room. keep_fds stay open across exec. Returns -1 with errno set and a
 * static description in *what. */
int cj_jail_enter(const struct cj_jail *jail, const int *keep_fds, size_t nkeep, const char **what);
/* A cgroup of its own for a helper process of a run (a virtiofsd):
 * "ctrj-<id>" where the VMM's are made, with a pids limit, pushed on undo
 * first as "jail.cgroup" (replay kills what is in it and removes it).
 * With engine_path (cj_jail_spec's cgroup_path) the helper joins the
 * engine's cgroup the VMM joins instead, made (and pushed on undo) when
 * missing, with the VMM's limits set by the jail later: "joined", never
 * emptied nor removed through this handle. */
struct cj_helper_cgroup {
	char dirs[3][PATH_MAX];
	size_t n;
	bool joined;
};
int cj_helper_cgroup_make(const char *id, uint64_t pids, const char *engine_path,
                          struct cj_undo *undo, struct cj_helper_cgroup *out, struct cj_err *err);
/* Move pid (a child waiting before exec) into it. */
int cj_helper_cgroup_attach(const struct cj_helper_cgroup *cg, pid_t pid, struct cj_err *err);
/* Kill what is in it and remove it. */
void cj_helper_cgroup_remove(struct cj_helper_cgroup *cg);
/* Did the cgroup's memory limit kill something? */
bool cj_jail_oom_killed(const struct cj_jail *jail);
/* Kill what is left in the cgroup, then remove it and the root. */
void cj_jail_cleanup(struct cj_jail *jail);
/* The group a jailed VMM gets to open dev (/dev/kvm): the device's own
 * group when it gives that group rw (and is not root's), else "kvm" of
 * /etc/group; (gid_t)-1 without either. */
gid_t cj_jail_kvm_gid(const char *dev);
/* The jailed child has exec'd: the parent needs its binds no more. Their
 * pages are given back (madvise; jail in anonymous memory, as on the heap)
 * so that a detached run's supervisor does not keep them resident. */
void cj_jail_binds_done(struct cj_jail *jail);
/* The run record's kinds "jail.*": "jail.cgroup" {"path"} is a cgroup
 * this jail made (pushed before mkdir), "jail.cgroups" {"parent", "id"}
 * those a jailer makes under every mount (pushed before it starts): replay
 * kills what is left in them and removes them, -1 while a process does
 * not end (the entry stays for the next gc). "jail.owner" {"path", "uid",
 * "gid", "mode"}: a file the layout gave to the jail user (layout.c). */
int cj_jail_undo(json_object *entry, bool verbose);
int cj_jail_undo_cgroups(struct cj_undo *undo, const char *parent, const char *id,
                         struct cj_err *err);
/* SIGKILL every process of the cgroups a jailer made as parent/id (see
 * "jail.cgroups") and wait; -1 when one did not end in time. */
int cj_cgroups_kill_named(const char *parent, const char *id);
/* Detach every mount at or below dir, deepest first. */
void cj_unmount_under(const char *dir);
/* gc, before any replay: SIGKILL every process in the cgroups the undo log
 * names and wait for them to end. -1 when one did not end in time. */
int cj_jail_kill_all(json_object *undo_log);
/* How long the processes of a VM's cgroups are given to end once killed:
 * a deadline (CLOCK_MONOTONIC ns) shared by the cgroups of one VM. */
#define CJ_CGROUP_KILL_WAIT_MS 2000
uint64_t cj_cgroup_kill_deadline(void);

/* Room building for other jails (tool.c): bind src at dst in the room
 * (absent src: nothing to bind); bind a dynamic binary's libraries, with
 * ldd's answer cached in cache_dir. */
int cj_jail_add_bind(struct cj_jail *jail, const char *src, const char *dst, bool device,
                     struct cj_err *err);
int cj_jail_add_libraries(struct cj_jail *jail, const char *bin, const char *cache_dir,
                          struct cj_err *err);

#endif
