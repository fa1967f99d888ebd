/* SPDX-License-Identifier: Apache-2.0 */
/* A process's privileges and limits (struct ctrj_proc: config.json's
 * process, applied as runc does, as defence in depth behind the VM):
 * in the child between fork and exec, as root still, the pids cgroup,
 * the rlimits, oom_score_adj and the bounding set; then the user and its
 * groups; then exactly the spec's capability sets and no_new_privs.
 * Raw capset(2) with the version 3 header: no libcap in the guest. */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* capset(2)'s ABI (linux/capability.h, which musl's tool chain lacks) */
#define CAP_VERSION_3 0x20080522u
struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t effective, permitted, inheritable;
};

/* The workload's cgroup, reached through a mount of cgroup2 that only
 * this fd still holds (-1: none). Children join by it before exec. */
static int g_pids_dir = -1;

static int write_at(int dir, const char *name, const char *text)
{
	int fd = openat(dir, name, O_WRONLY | O_CLOEXEC), e;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

int guest_write_text(const char *path, const char *text)
{
	return write_at(AT_FDCWD, path, text);
}

int guest_pids_cgroup(uint64_t limit)
{
	const char *mnt = "/run/ctrj-cgroup";
	char max[32];
	int e;

	/* the controller for the root's children, then the workload's group */
	if (guest_write_text("/sys/fs/cgroup/cgroup.subtree_control", "+pids") < 0 ||
	    (mkdir(GUEST_PIDS_CGROUP, 0755) < 0 && errno != EEXIST))
		return -1;
	snprintf(max, sizeof max, "%llu", (unsigned long long)limit);
	if (guest_write_text(GUEST_PIDS_CGROUP "/pids.max", max) < 0)
		return -1;
	/* a writable mount of our own, detached: the one the init and its
	 * children join by; /sys/fs/cgroup then read-only, so that the
	 * workload (without CAP_SYS_ADMIN) can neither raise the limit nor
	 * leave the group */
	if (mkdir(mnt, 0700) < 0 && errno != EEXIST)
		return -1;
	if (mount("cgroup2", mnt, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -1;
	g_pids_dir = open("/run/ctrj-cgroup/workload", O_PATH | O_DIRECTORY | O_CLOEXEC);
	e = errno;
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	if (g_pids_dir < 0)
		return errno = e, -1;
	return mount(NULL, "/sys/fs/cgroup", NULL,
	             MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* The kernel's capabilities as a mask (what PR_CAPBSET_READ knows). */
static uint64_t kernel_caps(void)
{
	uint64_t mask = 0;

	for (int c = 0; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
		mask |= 1ull << c;
	return mask;
}

static int drop_bounding(uint64_t keep, uint64_t known)
{
	for (int c = 0; c < 64; c++)
		if ((known & (1ull << c)) && !(keep & (1ull << c)) &&
		    prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return -1;
	return 0;
}

static int set_caps(const struct ctrj_proc *p, uint64_t known)
{
	struct cap_header h = {.version = CAP_VERSION_3};
	struct cap_data d[2];
	uint64_t eff = p->cap_effective & known, prm = p->cap_permitted & known;
	uint64_t inh = p->cap_inheritable & known;

	for (int i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(eff >> (32 * i));
		d[i].permitted = (uint32_t)(prm >> (32 * i));
		d[i].inheritable = (uint32_t)(inh >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return -1;
	for (int c = 0; c < 64; c++)
		if ((p->cap_ambient & known & (1ull << c)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return -1;
	return 0;
}

/* Before the user changes: what needs root. */
static int as_root(const struct ctrj_proc *p, uint64_t known)
{
	if (g_pids_dir >= 0 && write_at(g_pids_dir, "cgroup.procs", "0") < 0)
		return -1;
	for (uint32_t i = 0; i < p->nrlimits; i++) {
		const struct ctrj_rlimit *rl = &p->rlimits[i];
		struct rlimit r = {
		    .rlim_cur = rl->soft == UINT64_MAX ? RLIM_INFINITY : (rlim_t)rl->soft,
		    .rlim_max = rl->hard == UINT64_MAX ? RLIM_INFINITY : (rlim_t)rl->hard};
		if (setrlimit((int)rl->resource, &r) < 0)
			return -1;
	}
	if (p->flags & CTRJ_PROC_OOM) {
		char v[16];
		snprintf(v, sizeof v, "%d", (int)p->oom_score_adj);
		if (guest_write_text("/proc/self/oom_score_adj", v) < 0)
			return -1;
	}
	if (p->flags & CTRJ_PROC_CAPS) {
		if (drop_bounding(p->cap_bounding, known) < 0)
			return -1;
		/* the permitted set survives the change of user */
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return -1;
	}
	return 0;
}

int guest_proc_enter(const struct ctrj_proc *p, const struct guest_user *u)
{
	uint64_t known = p->flags & CTRJ_PROC_CAPS ? kernel_caps() : 0;
	gid_t groups[CTRJ_MAX_GROUPS > GUEST_MAX_GROUPS ? CTRJ_MAX_GROUPS : GUEST_MAX_GROUPS];
	size_t n = 0;

	if (as_root(p, known) < 0)
		return -1;
	if (p->flags & CTRJ_PROC_GROUPS) /* config.json's groups, exactly */
		for (uint32_t i = 0; i < p->ngroups; i++)
			groups[n++] = p->groups[i];
	else
		for (size_t i = 0; i < u->ngroups; i++)
			groups[n++] = u->groups[i];
	if (setgroups(n, groups) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0)
		return -1;
	if ((p->flags & CTRJ_PROC_CAPS) &&
	    (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 || set_caps(p, known) < 0))
		return -1;
	if ((p->flags & CTRJ_PROC_NO_NEW_PRIVS) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return 0;
}
