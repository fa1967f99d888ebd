/* SPDX-License-Identifier: Apache-2.0 */
#include "jail.h"

#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CGROUP_ROOT  "/sys/fs/cgroup"
#define DEFAULT_USER "ctr-jailer"
#define NOBODY       65534

/* ---- user ------------------------------------------------------------- */

static int resolve_user(const char *spec, uid_t *uid, gid_t *gid, struct cj_err *err)
{
	struct passwd *pw;
	char buf[256], *colon;

	if (!spec) {
		pw = getpwnam(DEFAULT_USER);
		*uid = pw ? pw->pw_uid : NOBODY;
		*gid = pw ? pw->pw_gid : NOBODY;
		return 0;
	}
	snprintf(buf, sizeof buf, "%s", spec);
	colon = strchr(buf, ':');
	if (colon)
		*colon++ = '\0';
	if ((pw = getpwnam(buf))) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	} else {
		char *end;
		unsigned long v = strtoul(buf, &end, 10);
		if (!*buf || *end || v == 0 || v >= 0xffffffffUL)
			return cj_fail(
			    err, 0,
			    "jail user '%s' is neither a user of this host nor a non-zero "
			    "uid",
			    buf);
		*uid = (uid_t)v;
		*gid = (gid_t)v;
	}
	if (colon) {
		struct group *gr = getgrnam(colon);
		char *end;
		unsigned long v = strtoul(colon, &end, 10);
		if (gr)
			*gid = gr->gr_gid;
		else if (*colon && !*end && v > 0 && v < 0xffffffffUL)
			*gid = (gid_t)v;
		else
			return cj_fail(err, 0, "jail group '%s' is unknown", colon);
	}
	if (*uid == 0 || *gid == 0)
		return cj_fail(err, 0, "the jail user must not be root");
	return 0;
}

/* ---- a uid/gid per VM ------------------------------------------------- */

int cj_jail_uid_range_parse(const char *v, const char *what, struct cj_jail_spec *spec,
                            struct cj_err *err)
{
	unsigned long long start, count;
	char *end;

	/* digits only: strtoull would also take blanks and a minus sign */
	if (!(v[0] >= '0' && v[0] <= '9'))
		goto bad;
	errno = 0;
	start = strtoull(v, &end, 10);
	if (errno || *end != ':' || !(end[1] >= '0' && end[1] <= '9'))
		goto bad;
	count = strtoull(end + 1, &end, 10);
	if (errno || *end)
		goto bad;
	/* uid 0 is root; (uid_t)-1 means "unchanged" to setresuid */
	if (start == 0 || count == 0 || start > 0xfffffffeULL || count > 0xfffffffeULL ||
	    start + count > 0xffffffffULL)
		goto bad;
	spec->uid_start = (uint32_t)start;
	spec->uid_count = (uint32_t)count;
	return 0;
bad:
	return cj_fail(err, 0,
	               "%s '%s' is invalid: give START:COUNT, a range of uids from 1 to "
	               "4294967294 that no user of this host has (default %u:%u)",
	               what, v, CJ_JAIL_UID_START, CJ_JAIL_UID_COUNT);
}

static bool read_ids(const char *run_dir, uid_t *uid, gid_t *gid)
{
	char path[PATH_MAX + 16];
	unsigned u, g;
	FILE *f;
	bool ok;

	snprintf(path, sizeof path, "%s/" CJ_JAIL_ID_FILE, run_dir);
	if (!(f = fopen(path, "re")))
		return false;
	ok = fscanf(f, "%u %u", &u, &g) == 2;
	fclose(f);
	*uid = u;
	*gid = g;
	return ok;
}

/* The uids the other runs under run_base hold (their records). */
static int used_uids(const char *run_base, const char *self, uid_t **out, size_t *n,
                     struct cj_err *err)
{
	DIR *d = opendir(run_base);
	struct dirent *de;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return cj_fail(err, errno, "open %s", run_base);
	while ((de = readdir(d))) {
		char dir[PATH_MAX];
		uid_t uid;
		gid_t gid;
		if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0)
			continue;
		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", run_base, de->d_name) >=
		        sizeof dir ||
		    !read_ids(dir, &uid, &gid))
			continue;
		if (*n == cap) {
			uid_t *grown = realloc(*out, (cap = cap ? 2 * cap : 64) * sizeof *grown);
			if (!grown) {
				closedir(d);
				free(*out);
				*out = NULL;
				return cj_fail(err, ENOMEM, "jail uids");
			}
			*out = grown;
		}
		(*out)[(*n)++] = uid;
	}
	closedir(d);
	return 0;
}

static int pick_uid(const struct cj_jail_spec *spec, const char *run_base, const char *self,
                    uid_t *uid, struct cj_err *err)
{
	uint32_t start = spec->uid_count ? spec->uid_start : CJ_JAIL_UID_START;
	uint32_t count = spec->uid_count ? spec->uid_count : CJ_JAIL_UID_COUNT;
	uid_t *used = NULL;
	size_t nused = 0;
	uint32_t rnd;

	if (used_uids(run_base, self, &used, &nused, err) < 0)
		return -1;
	if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		free(used);
		return cj_fail(err, errno, "getrandom");
	}
	/* From a random point: runs of other run bases sharing the range
	 * (each with its own records) rarely meet. */
	for (uint64_t i = 0; i < count && i <= nused; i++) {
		uid_t cand = (uid_t)(start + (uint32_t)(((uint64_t)rnd + i) % count));
		bool taken = false;
		for (size_t k = 0; k < nused && !taken; k++)
			taken = used[k] == cand;
		if (!taken) {
			free(used);
			*uid = cand;
			return 0;
		}
	}
	free(used);
	return cj_fail(err, 0,
	               "all %u uids of the jail range %u:%u are taken by running VMs: give a "
	               "larger --jail-uid-range",
	               count, start, count);
}

int cj_jail_assign_ids(const struct cj_jail_spec *spec, const char *run_base, const char *run_dir,
                       struct cj_jail_plan *cfg, struct cj_err *err)
{
	char lock[PATH_MAX + 16], path[PATH_MAX + 16], line[64];
	const char *self = strrchr(run_dir, '/') ? strrchr(run_dir, '/') + 1 : run_dir;
	int lock_fd = -1, fd, n, r = -1;

	if (!cfg->enabled)
		return 0;
	if (!spec->user) {
		snprintf(lock, sizeof lock, "%s/.jail.lock", run_base);
		lock_fd = cj_lock_file(lock, err);
		if (lock_fd < 0)
			return -1;
		if (pick_uid(spec, run_base, self, &cfg->uid, err) < 0)
			goto out;
		cfg->gid = (gid_t)cfg->uid;
	}
	snprintf(path, sizeof path, "%s/" CJ_JAIL_ID_FILE, run_dir);
	n = snprintf(line, sizeof line, "%u %u\n", (unsigned)cfg->uid, (unsigned)cfg->gid);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n) {
		cj_fail(err, errno, "record the jail's uid in %s", path);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (close(fd) < 0) {
		cj_fail(err, errno, "record the jail's uid in %s", path);
		goto out;
	}
	r = 0;
out:
	if (lock_fd >= 0)
		close(lock_fd);
	return r;
}

/* ---- what goes into the room ------------------------------------------ */

static int add_bind(struct cj_jail *j, const char *src, const char *dst, bool device,
                    struct cj_err *err)
{
	struct stat st;

	if (stat(src, &st) < 0)
		return 0; /* optional pieces (e.g. /dev/kvm) may be absent */
	for (size_t i = 0; i < j->nbinds; i++)
		if (strcmp(j->binds[i].dst, dst) == 0)
			return 0;
	if (j->nbinds == CJ_JAIL_MAX_BINDS)
		return cj_fail(err, 0, "jail: too many files to bind");
	struct cj_jail_bind *b = &j->binds[j->nbinds++];
	snprintf(b->src, sizeof b->src, "%s", src);
	snprintf(b->dst, sizeof b->dst, "%s", dst);
	b->is_dir = S_ISDIR(st.st_mode);
	b->device = device;
	return 0;
}

/* The VMM's shared libraries, as the dynamic loader resolves them. ldd
 * costs tens of milliseconds, so its answer is kept next to the run base
 * (tmpfs), keyed by the binary's identity, and reused. */
static int add_libraries(struct cj_jail *j, const char *bin, const char *cache_dir,
                         struct cj_err *err)
{
	char *argv[] = {"ldd", (char *)bin, NULL};
	char *out = NULL, *save = NULL, cache[PATH_MAX + 64];
	struct stat st;
	size_t len;

	if (stat(bin, &st) < 0)
		return cj_fail(err, errno, "jail: %s", bin);
	snprintf(cache, sizeof cache, "%s/.libs-%llx-%llx-%llx", cache_dir,
	         (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
	         (unsigned long long)st.st_mtim.tv_sec);
	struct cj_err ignore = {0};
	if (cj_read_file(cache, &out, &len, &ignore) < 0) {
		if (cj_run(argv, &out, err) < 0)
			return cj_err_wrap(err, "list the libraries of %s", bin);
		char tmp[PATH_MAX + 80];
		snprintf(tmp, sizeof tmp, "%s.%d", cache, (int)getpid());
		FILE *f = fopen(tmp, "we");
		if (f) {
			fputs(out, f);
			if (fclose(f) == 0)
				rename(tmp, cache);
			else
				unlink(tmp);
		}
	}
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *path = strchr(line, '/');
		if (!path)
			continue;
		path[strcspn(path, " (")] = '\0';
		if (add_bind(j, path, path, false, err) < 0) {
			free(out);
			return -1;
		}
	}
	free(out);
	return 0;
}

/* ---- cgroups ---------------------------------------------------------- */

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, value, strlen(value));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

static bool unified(void)
{
	return access(CGROUP_ROOT "/cgroup.controllers", F_OK) == 0;
}

static int cgroup_set(const char *dir, const char *file, const char *value, struct cj_err *err)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof path, "%s/%s", dir, file);
	if (write_file(path, value) < 0)
		return cj_fail(err, errno, "cgroup: set %s to %s", path, value);
	return 0;
}

/* The mount point holding path (the controller's mount, which may be a
 * symlink such as /sys/fs/cgroup/cpu -> cpu,cpuacct). */
static const char *mount_point(const char *path)
{
	static char real[PATH_MAX];

	if (!realpath(path, real))
		snprintf(real, sizeof real, "%s", path);
	return real;
}

static int make_cgroup(struct cj_jail *j, const char *mnt, const char *controller, const char *id,
                       struct cj_err *err)
{
	char own[PATH_MAX];
	char *dir = j->cgroups[j->ncgroups];

	cj_own_cgroup(controller, own, sizeof own);
	snprintf(dir, PATH_MAX, "%s%s", mnt, own);
	/* In a container with its own cgroup namespace view, /proc/self/cgroup
	 * may name a path the mount does not show: nest under the mount's root. */
	if (access(dir, W_OK) < 0)
		snprintf(own, sizeof own, "/");
	snprintf(dir, PATH_MAX, "%s%s%sctrj-%s", mnt, own, own[strlen(own) - 1] == '/' ? "" : "/",
	         id);

	int rc = mkdir(dir, 0755);
	/* In a container the controller is mounted read-only over the
	 * container's own cgroup: remounting it read-write delegates that
	 * subtree to us (CAP_SYS_ADMIN), never the host's. */
	if (rc < 0 && errno == EROFS &&
	    mount(NULL, mount_point(mnt), NULL, MS_REMOUNT | MS_BIND, NULL) == 0)
		rc = mkdir(dir, 0755);
	if (rc < 0)
		return cj_fail(err, errno, "cgroup: create %s", dir);
	j->ncgroups++;
	return 0;
}

static int setup_cgroups(struct cj_jail *j, const struct cj_vm_limits *lim, const char *id,
                         struct cj_err *err)
{
	uint64_t pids = lim->pids ? lim->pids : CJ_JAIL_DEFAULT_PIDS;
	char v[64];

	if (unified()) {
		char own[PATH_MAX], parent[PATH_MAX + 32];
		cj_own_cgroup(NULL, own, sizeof own);
		snprintf(parent, sizeof parent, "%s%s", CGROUP_ROOT, own);
		/* the controllers must be enabled for our children */
		char sub[PATH_MAX + 64];
		snprintf(sub, sizeof sub, "%s/cgroup.subtree_control", parent);
		if (write_file(sub, "+cpu +memory +pids") < 0)
			return cj_fail(err, errno,
			               "cgroup: enable cpu, memory and pids in %s (in a container, "
			               "give ctr-jailer a delegated cgroup)",
			               parent);
		if (make_cgroup(j, CGROUP_ROOT, NULL, id, err) < 0)
			return -1;
		snprintf(v, sizeof v, "%llu", (unsigned long long)j->memory_limit);
		if (cgroup_set(j->cgroups[0], "memory.max", v, err) < 0)
			return -1;
		cgroup_set(j->cgroups[0], "memory.swap.max", "0", err);
		snprintf(v, sizeof v, "%llu", (unsigned long long)pids);
		if (cgroup_set(j->cgroups[0], "pids.max", v, err) < 0)
			return -1;
		if (lim->cpu_quota_us) {
			snprintf(v, sizeof v, "%llu %llu", (unsigned long long)lim->cpu_quota_us,
			         (unsigned long long)lim->cpu_period_us);
			if (cgroup_set(j->cgroups[0], "cpu.max", v, err) < 0)
				return -1;
		}
		return 0;
	}
	/* v1 or hybrid: one directory per controller */
	if (make_cgroup(j, CGROUP_ROOT "/memory", "memory", id, err) < 0)
		return -1;
	snprintf(v, sizeof v, "%llu", (unsigned long long)j->memory_limit);
	if (cgroup_set(j->cgroups[j->ncgroups - 1], "memory.limit_in_bytes", v, err) < 0)
		return -1;
	if (make_cgroup(j, CGROUP_ROOT "/pids", "pids", id, err) < 0)
		return -1;
	snprintf(v, sizeof v, "%llu", (unsigned long long)pids);
	if (cgroup_set(j->cgroups[j->ncgroups - 1], "pids.max", v, err) < 0)
		return -1;
	if (make_cgroup(j, CGROUP_ROOT "/cpu", "cpu", id, err) < 0)
		return -1;
	if (lim->cpu_quota_us) {
		char period[32];
		snprintf(period, sizeof period, "%llu", (unsigned long long)lim->cpu_period_us);
		snprintf(v, sizeof v, "%llu", (unsigned long long)lim->cpu_quota_us);
		if (cgroup_set(j->cgroups[j->ncgroups - 1], "cpu.cfs_period_us", period, err) < 0 ||
		    cgroup_set(j->cgroups[j->ncgroups - 1], "cpu.cfs_quota_us", v, err) < 0)
			return -1;
	}
	return 0;
}

int cj_jail_attach(const struct cj_jail *jail, pid_t pid, struct cj_err *err)
{
	char v[32];

	snprintf(v, sizeof v, "%d", (int)pid);
	for (size_t i = 0; i < jail->ncgroups; i++)
		if (cgroup_set(jail->cgroups[i], "cgroup.procs", v, err) < 0)
			return -1;
	return 0;
}

bool cj_jail_oom_killed(const struct cj_jail *jail)
{
	for (size_t i = 0; i < jail->ncgroups; i++) {
		const char *files[] = {"memory.events", "memory.oom_control"};
		for (size_t f = 0; f < 2; f++) {
			char path[PATH_MAX + 32], *text = NULL;
			struct cj_err err = {0};
			snprintf(path, sizeof path, "%s/%s", jail->cgroups[i], files[f]);
			if (cj_read_file(path, &text, NULL, &err) < 0)
				continue;
			char *k = strstr(text, "oom_kill ");
			bool killed = k && strtoul(k + 9, NULL, 10) > 0;
			free(text);
			if (killed)
				return true;
		}
	}
	return false;
}

int cj_jail_resolve(const struct cj_jail_spec *spec, uint64_t guest_memory_mib,
                    struct cj_jail_plan *out, struct cj_err *err)
{
	memset(out, 0, sizeof *out);
	out->enabled = !spec->disabled;
	if (spec->disabled)
		return 0;
	if (resolve_user(spec->user, &out->uid, &out->gid, err) < 0)
		return -1;
	out->limits.memory_bytes = spec->memory_limit
	                               ? spec->memory_limit
	                               : (guest_memory_mib + CJ_MEM_JAIL_MARGIN_MIB) << 20;
	if (out->limits.memory_bytes < (guest_memory_mib << 20))
		return cj_fail(err, 0,
		               "--memory-limit %lluM is below the guest's memory (%lluM): the VMM "
		               "would be killed as the guest uses it; give at least the guest's "
		               "memory plus %uM",
		               (unsigned long long)(out->limits.memory_bytes >> 20),
		               (unsigned long long)guest_memory_mib, CJ_MEM_JAIL_MARGIN_MIB);
	out->limits.pids = spec->pids_limit ? spec->pids_limit : CJ_JAIL_DEFAULT_PIDS;
	if (spec->cpu_quota > 0) {
		out->limits.cpu_period_us = 100000;
		out->limits.cpu_quota_us = (uint64_t)(spec->cpu_quota * 100000);
	}
	return 0;
}

int cj_jail_prepare(const struct cj_jail_plan *cfg, const char *run_dir, const char *id,
                    const char *vmm_bin, const char *kernel, const char *initrd,
                    uint64_t largest_drive, struct cj_jail *jail, struct cj_err *err)
{
	struct group *kvm;
	char bin[PATH_MAX];
	int r = 0;

	memset(jail, 0, sizeof *jail);
	if (!cfg->enabled)
		return 0;
	jail->uid = cfg->uid;
	jail->gid = cfg->gid;
	kvm = getgrnam("kvm");
	jail->extra_gid = kvm ? kvm->gr_gid : (gid_t)-1;
	jail->memory_limit = cfg->limits.memory_bytes;
	/* The VMM never needs to grow a file beyond the largest drive. */
	jail->fsize_limit = largest_drive ? largest_drive : RLIM_INFINITY;

	if (!realpath(vmm_bin, bin))
		return cj_fail(err, errno, "jail: find %s", vmm_bin);
	snprintf(jail->root, sizeof jail->root, "%s/root", run_dir);
	/* The room stays root's: the VMM may traverse it, never create or
	 * replace a name in it that root could later follow. */
	if (mkdir(jail->root, 0755) < 0 || chmod(jail->root, 0755) < 0)
		return cj_fail(err, errno, "jail: create %s", jail->root);
	jail->active = true;
	r |= add_bind(jail, bin, bin, false, err);
	char base[PATH_MAX];
	snprintf(base, sizeof base, "%s", run_dir);
	char *slash = strrchr(base, '/');
	if (slash && slash != base)
		*slash = '\0'; /* the run base: /run/ctr-jailer */
	r |= add_libraries(jail, bin, base, err);
	r |= add_bind(jail, "/etc/ld.so.cache", "/etc/ld.so.cache", false, err);
	r |= add_bind(jail, "/usr/share/qemu", "/usr/share/qemu", false, err);
	r |= add_bind(jail, "/usr/share/seabios", "/usr/share/seabios", false, err);
	r |= add_bind(jail, "/usr/lib/x86_64-linux-gnu/qemu", "/usr/lib/x86_64-linux-gnu/qemu",
	              false, err);
	r |= add_bind(jail, "/dev/null", "/dev/null", true, err);
	r |= add_bind(jail, "/dev/urandom", "/dev/urandom", true, err);
	r |= add_bind(jail, "/dev/kvm", "/dev/kvm", true, err);
	r |= add_bind(jail, kernel, "/boot/kernel", false, err);
	r |= add_bind(jail, initrd, "/boot/initrd", false, err);
	if (r < 0 || setup_cgroups(jail, &cfg->limits, id, err) < 0) {
		cj_jail_cleanup(jail);
		return -1;
	}
	return 0;
}

/* ---- the child's side ------------------------------------------------- */

static int mkdirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	return 0;
}

static int bind_into(const char *root, const struct cj_jail_bind *b)
{
	char dst[PATH_MAX * 2];
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID;

	snprintf(dst, sizeof dst, "%s%s", root, b->dst);
	if (mkdirs(dst) < 0)
		return -1;
	if (b->is_dir) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return -1;
	} else {
		int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -1;
		close(fd);
	}
	if (mount(b->src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	if (b->device)
		flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC;
	else
		flags |= MS_NODEV;
	return mount(NULL, dst, NULL, flags, NULL);
}

/*
 * The one place the VMM is locked in. Runs in the child, which clone() put
 * in new mount, pid, ipc and uts namespaces, after the parent moved it into
 * the VM's cgroup. Each step relies on the privileges the next one drops:
 *  1. mount propagation private: nothing below leaks into the host's mounts;
 *  2. bind the room's contents read-only (nosuid, nodev but for the device
 *     nodes) and pivot_root into it, detaching the old root: the VMM cannot
 *     name a host path any more; the room itself (root's, 0755) becomes a
 *     read-only mount too, so nothing in it can be created or replaced;
 *  3. rlimits (file size, open files) while we may still raise them;
 *  4. every inherited fd but the ones the VMM needs becomes close-on-exec;
 *  5. drop the whole capability bounding set and the ambient set, so no
 *     later exec can regain a capability;
 *  6. setgroups, setresgid, setresuid to the unprivileged user: leaving uid
 *     0 clears the permitted and effective sets (no keepcaps);
 *  7. the parent-death signal again (the uid change cleared it), then
 *     capset to empty anyway, so the state is explicit, not inferred;
 *  8. no_new_privs: setuid binaries and file capabilities are dead for the
 *     VMM and anything it might exec (QEMU's -sandbox also forbids exec).
 */
int cj_jail_enter(const struct cj_jail *j, const int *keep_fds, size_t nkeep, const char **what)
{
	char old[PATH_MAX + 16];
	struct rlimit fsize = {j->fsize_limit, j->fsize_limit};
	struct rlimit nofile = {4096, 4096};
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {{0}};

	*what = "make mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	*what = "bind the jail root";
	if (mount(j->root, j->root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	*what = "bind files into the jail";
	for (size_t i = 0; i < j->nbinds; i++)
		if (bind_into(j->root, &j->binds[i]) < 0)
			return -1;
	*what = "pivot_root";
	snprintf(old, sizeof old, "%s/.old", j->root);
	if ((mkdir(old, 0700) < 0 && errno != EEXIST) || chdir(j->root) < 0)
		return -1;
	if (syscall(SYS_pivot_root, ".", ".old") == 0) {
		if (chdir("/") < 0 || umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0)
			return -1;
	} else {
		/* Docker's default seccomp profile refuses pivot_root: move the
		 * room over / and chroot into it instead. The old root stays
		 * reachable only with capabilities, which the steps below drop
		 * for good (bounding set, no_new_privs), and QEMU's sandbox
		 * forbids chroot and mount. */
		if (errno != EPERM || rmdir(".old") < 0 ||
		    mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
			return -1;
	}
	*what = "make the jail root read-only";
	if (mount(NULL, "/", NULL,
	          MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -1;
	sethostname("ctr-jailer", 10);
	*what = "set rlimits";
	if (setrlimit(RLIMIT_FSIZE, &fsize) < 0 || setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return -1;
	*what = "close inherited fds";
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
		return -1;
	for (size_t i = 0; i < nkeep; i++)
		if (fcntl(keep_fds[i], F_SETFD, 0) < 0)
			return -1;
	*what = "drop the capability bounding set";
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	*what = "switch to the jail user";
	gid_t groups[1] = {j->extra_gid};
	if (setgroups(j->extra_gid != (gid_t)-1 ? 1 : 0, groups) < 0 ||
	    setresgid(j->gid, j->gid, j->gid) < 0 || setresuid(j->uid, j->uid, j->uid) < 0)
		return -1;
	/* a credential change clears the parent-death signal: set it again, so
	 * the VMM still dies with ctr-jailer */
	*what = "set the parent-death signal";
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return -1;
	*what = "clear capabilities";
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -1;
	*what = "set no_new_privs";
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

void cj_jail_cleanup(struct cj_jail *j)
{
	/* The VMM has exited; anything it left running in its cgroups (a
	 * compromised VMM's children) still has the VM's uid: killed first. */
	for (size_t i = 0; i < j->ncgroups; i++) {
		if (cj_cgroup_kill(j->cgroups[i], cj_cgroup_kill_deadline()) < 0)
			fprintf(stderr,
			        "ctr-jailer: a process of the VM's cgroup %s does not end: kill "
			        "it by hand\n",
			        j->cgroups[i]);
		rmdir(j->cgroups[i]);
	}
	j->ncgroups = 0;
	if (j->active && j->root[0])
		cj_rm_rf(j->root); /* FTW_MOUNT: never crosses into a mount */
	j->active = false;
}

/* Are pids listed in dir/cgroup.procs (SIGKILLed when send)? 1 when there
 * are some, 0 when none or the cgroup is gone, -1 when it cannot be read. */
static int cgroup_kill_listed(const char *dir, bool send)
{
	char path[PATH_MAX + 32], *text = NULL, *save = NULL;
	struct cj_err ignore = {0};
	int found = 0;

	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	if (cj_read_file(path, &text, NULL, &ignore) < 0)
		return ignore.errnum == ENOENT || ignore.errnum == ENOTDIR ? 0 : -1;
	for (char *tok = strtok_r(text, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		long pid = strtol(tok, NULL, 10);
		if (pid <= 0)
			continue;
		found = 1;
		if (send)
			kill((pid_t)pid, SIGKILL);
	}
	free(text);
	return found;
}

uint64_t cj_cgroup_kill_deadline(void)
{
	return cj_now_ns() + (uint64_t)CJ_CGROUP_KILL_WAIT_MS * 1000000ull;
}

int cj_cgroup_kill(const char *dir, uint64_t deadline)
{
	char path[PATH_MAX + 32];
	bool v2_kill;
	int r;

	/* cgroup v2 (Linux 5.14+) kills the whole cgroup at once, new forks
	 * included; elsewhere every listed pid gets SIGKILL, round after
	 * round, so that a fork between reading the list and the signal is
	 * caught by the next round (the pids limit bounds how many). A killed
	 * process leaves the list as it exits, before it is reaped. */
	snprintf(path, sizeof path, "%s/cgroup.kill", dir);
	v2_kill = write_file(path, "1") == 0;
	for (;;) {
		r = cgroup_kill_listed(dir, !v2_kill);
		if (r == 0)
			return 0;
		if (cj_now_ns() >= deadline) {
			errno = r < 0 ? EIO : EBUSY;
			return -1;
		}
		usleep(10000);
	}
}

int cj_jail_gc(const char *id)
{
	static const char *const controllers[] = {NULL, "memory", "pids", "cpu"};
	static const char *const mounts[] = {CGROUP_ROOT, CGROUP_ROOT "/memory",
	                                     CGROUP_ROOT "/pids", CGROUP_ROOT "/cpu"};
	uint64_t deadline = cj_cgroup_kill_deadline();
	int r = 0;

	/* First every process of the VM, wherever it was reparented to (a
	 * jailed VMM whose runtime died): while one lives, its cgroups, and
	 * so the run's record of its uid, stay. */
	for (size_t i = 0; i < 4; i++) {
		char own[PATH_MAX], dir[PATH_MAX * 2];
		cj_own_cgroup(controllers[i], own, sizeof own);
		snprintf(dir, sizeof dir, "%s%s%sctrj-%s", mounts[i], own,
		         own[strlen(own) - 1] == '/' ? "" : "/", id);
		if (cj_cgroup_kill(dir, deadline) < 0) {
			r = -1;
			continue;
		}
		/* empty, yet the kernel may still be releasing the last one */
		int e;
		while ((e = rmdir(dir) < 0 ? errno : 0) == EBUSY && cj_now_ns() < deadline)
			usleep(10000);
		if (e && e != ENOENT && e != ENOTDIR)
			r = -1;
	}
	return r;
}

/* ---- for other rooms (src/lib/jail/tool.c) ----------------------------- */

int cj_jail_add_bind(struct cj_jail *jail, const char *src, const char *dst, bool device,
                     struct cj_err *err)
{
	return add_bind(jail, src, dst, device, err);
}

int cj_jail_add_libraries(struct cj_jail *jail, const char *bin, const char *cache_dir,
                          struct cj_err *err)
{
	return add_libraries(jail, bin, cache_dir, err);
}
