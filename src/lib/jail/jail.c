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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* The system accounts we look for by default (our user, the kvm group)
 * are read from /etc/passwd and /etc/group themselves (fgetpwent and
 * fgetgrent), not through NSS: its modules (libnss_systemd and what it
 * pulls in) would stay loaded in every run's supervisor for its life. */
static bool files_user(const char *name, uid_t *uid, gid_t *gid)
{
	FILE *f = fopen("/etc/passwd", "re");
	struct passwd *pw;
	bool found = false;

	while (f && !found && (pw = fgetpwent(f)))
		if (strcmp(pw->pw_name, name) == 0) {
			*uid = pw->pw_uid;
			*gid = pw->pw_gid;
			found = true;
		}
	if (f)
		fclose(f);
	return found;
}

static gid_t files_group(const char *name)
{
	FILE *f = fopen("/etc/group", "re");
	struct group *gr;
	gid_t gid = (gid_t)-1;

	while (f && gid == (gid_t)-1 && (gr = fgetgrent(f)))
		if (strcmp(gr->gr_name, name) == 0)
			gid = gr->gr_gid;
	if (f)
		fclose(f);
	return gid;
}

gid_t cj_jail_kvm_gid(const char *dev)
{
	struct stat st;

	/* the device's own group: what the VMM needs to be in, whatever
	 * database (/etc/group, /usr/lib/group of nss-altfiles, LDAP) names
	 * it; never root's group */
	if (stat(dev, &st) == 0 && S_ISCHR(st.st_mode) && st.st_gid != 0 &&
	    (st.st_mode & (S_IRGRP | S_IWGRP)) == (S_IRGRP | S_IWGRP))
		return st.st_gid;
	return files_group("kvm");
}

static int resolve_user(const char *spec, uid_t *uid, gid_t *gid, struct cj_err *err)
{
	struct passwd *pw;
	char buf[256], *colon;

	if (!spec) {
		if (!files_user(DEFAULT_USER, uid, gid))
			*uid = *gid = NOBODY;
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

int cj_jail_pick_ids(const struct cj_jail_spec *spec, const uid_t *used, size_t nused,
                     struct cj_jail_plan *plan, struct cj_err *err)
{
	uint32_t start = spec->uid_count ? spec->uid_start : CJ_JAIL_UID_START;
	uint32_t count = spec->uid_count ? spec->uid_count : CJ_JAIL_UID_COUNT;
	uint32_t rnd;

	if (!plan->enabled || spec->user)
		return 0; /* root (--no-jail), or the user's own choice */
	if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return cj_fail(err, errno, "getrandom");
	/* From a random point: runs of other run bases sharing the range
	 * (each with its own records) rarely meet. */
	for (uint64_t i = 0; i < count && i <= nused; i++) {
		uid_t cand = (uid_t)(start + (uint32_t)(((uint64_t)rnd + i) % count));
		bool taken = false;
		for (size_t k = 0; k < nused && !taken; k++)
			taken = used[k] == cand;
		if (!taken) {
			plan->uid = cand;
			plan->gid = (gid_t)cand;
			return 0;
		}
	}
	return cj_fail(err, 0,
	               "all %u uids of the jail range %u:%u are taken by running VMs: give a "
	               "larger --jail-uid-range",
	               count, start, count);
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

static bool unified(void)
{
	return access(CGROUP_ROOT "/cgroup.controllers", F_OK) == 0;
}

static int cgroup_set(const char *dir, const char *file, const char *value, struct cj_err *err)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof path, "%s/%s", dir, file);
	if (cj_write_text(path, value) < 0)
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

/* The parents of dir below mnt, made when missing (mkdir -p): an engine's
 * shared directories ("/docker"), left in place as runc leaves them. */
static int make_parents(const char *mnt, const char *dir, struct cj_err *err)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s", dir);
	for (char *s = p + strlen(mnt) + 1; (s = strchr(s, '/')); *s++ = '/') {
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return cj_fail(err, errno, "cgroup: create %s", p);
	}
	return 0;
}

/* Did this run make dir (its "jail.cgroup" undo entry: a helper's join
 * of the engine's cgroup that was missing)? */
static bool made_by_run(const struct cj_undo *undo, const char *dir)
{
	json_object *e, *v;

	for (size_t i = 0; undo && i < json_object_array_length(undo->log); i++)
		if ((e = json_object_array_get_idx(undo->log, i)) &&
		    json_object_object_get_ex(e, "kind", &v) &&
		    strcmp(json_object_get_string(v), "jail.cgroup") == 0 &&
		    json_object_object_get_ex(e, "path", &v) &&
		    strcmp(json_object_get_string(v), dir) == 0)
			return true;
	return false;
}

/* An engine's cgroup that exists already is joined only while no process
 * is in it, as runc refuses a non-empty one: the VM's limits would be set
 * on whatever runs there (a service's cgroup, another container's), and
 * stay after the run. */
static int engine_cgroup_idle(const char *dir, struct cj_err *err)
{
	char path[PATH_MAX + 16], *text = NULL;

	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	if (cj_read_file(path, &text, NULL, err) < 0)
		return cj_err_wrap(err, "cgroup %s", dir);
	bool busy = text[strspn(text, " \n")] != '\0';
	free(text);
	if (busy)
		return cj_fail(err, EBUSY,
		               "cgroupsPath: %s already holds processes: give the container a "
		               "cgroup of its own",
		               dir);
	return 0;
}

/* The VM's cgroup directory under mnt: path (the engine's: under the
 * mount's root when absolute, else under our own cgroup) or "ctrj-<id>"
 * under our own. Pushed on undo before it is made; one that exists
 * already (path only) is joined as it is and set in *kept. */
static int make_cgroup(char (*dirs)[PATH_MAX], size_t *ndirs, const char *mnt,
                       const char *controller, const char *id, const char *path, unsigned *kept,
                       struct cj_undo *undo, struct cj_err *err)
{
	char own[PATH_MAX], leaf[PATH_MAX];
	char *dir = dirs[*ndirs];

	cj_own_cgroup(controller, own, sizeof own);
	snprintf(dir, PATH_MAX, "%s%s", mnt, own);
	/* In a container with its own cgroup namespace view, /proc/self/cgroup
	 * may name a path the mount does not show: nest under the mount's root. */
	if (access(dir, W_OK) < 0 || (path && path[0] == '/'))
		snprintf(own, sizeof own, "/");
	snprintf(leaf, sizeof leaf, "%s", path ? path + (path[0] == '/') : "");
	if (!path)
		snprintf(leaf, sizeof leaf, "ctrj-%s", id);
	snprintf(dir, PATH_MAX, "%s%s%s%s", mnt, own, own[strlen(own) - 1] == '/' ? "" : "/", leaf);
	if (path && make_parents(mnt, dir, err) < 0)
		return -1;
	if (path && access(dir, F_OK) == 0) {
		if (!made_by_run(undo, dir) && engine_cgroup_idle(dir, err) < 0)
			return -1;
		*kept |= 1u << *ndirs;
		(*ndirs)++;
		return 0;
	}
	json_object *entry = json_object_new_object();
	json_object_object_add(entry, "path", json_object_new_string(dir));
	if (cj_undo_push(undo, "jail.cgroup", entry, err) < 0)
		return -1;

	int rc = mkdir(dir, 0755);
	/* In a container the controller is mounted read-only over the
	 * container's own cgroup: remounting it read-write delegates that
	 * subtree to us (CAP_SYS_ADMIN), never the host's. */
	if (rc < 0 && errno == EROFS &&
	    mount(NULL, mount_point(mnt), NULL, MS_REMOUNT | MS_BIND, NULL) == 0)
		rc = mkdir(dir, 0755);
	if (rc < 0)
		return cj_fail(err, errno, "cgroup: create %s", dir);
	(*ndirs)++;
	return 0;
}

/* Are cpu, memory and pids all listed in the subtree_control file? */
static bool controllers_on(const char *sub)
{
	char *text = NULL, *save = NULL;
	struct cj_err ignored = {0};
	int found = 0;

	if (cj_read_file(sub, &text, NULL, &ignored) < 0)
		return false;
	for (char *w = strtok_r(text, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		found +=
		    strcmp(w, "cpu") == 0 || strcmp(w, "memory") == 0 || strcmp(w, "pids") == 0;
	free(text);
	return found == 3;
}

/* cgroup v2: cpu, memory and pids enabled for the children of every
 * cgroup from the root down to dir's parent (already enabled where we
 * may not write is fine). */
static int enable_controllers(const char *dir, struct cj_err *err)
{
	char p[PATH_MAX + 32];
	size_t root = strlen(CGROUP_ROOT);

	snprintf(p, sizeof p, "%s", dir);
	for (char *s = p + root; (s = strchr(s, '/')); *s++ = '/') {
		char sub[PATH_MAX + 64];
		*s = '\0';
		snprintf(sub, sizeof sub, "%s/cgroup.subtree_control", p);
		if (cj_write_text(sub, "+cpu +memory +pids") < 0 && !controllers_on(sub))
			return cj_fail(err, errno,
			               "cgroup: enable cpu, memory and pids in %s (in a container, "
			               "give ctr-jailer a delegated cgroup)",
			               p);
	}
	return 0;
}

static int setup_cgroups_v2(struct cj_jail *j, const struct cj_vm_limits *lim, const char *id,
                            const char *path, struct cj_undo *undo, struct cj_err *err)
{
	uint64_t pids = lim->pids ? lim->pids : CJ_JAIL_DEFAULT_PIDS;
	char v[64];

	if (!path) {
		char own[PATH_MAX], sub[PATH_MAX + 64];
		cj_own_cgroup(NULL, own, sizeof own);
		/* the controllers must be enabled for our children */
		snprintf(sub, sizeof sub, "%s%s/cgroup.subtree_control", CGROUP_ROOT, own);
		if (cj_write_text(sub, "+cpu +memory +pids") < 0)
			return cj_fail(
			    err, errno,
			    "cgroup: enable cpu, memory and pids in %s%s (in a container, "
			    "give ctr-jailer a delegated cgroup)",
			    CGROUP_ROOT, own);
	}
	if (make_cgroup(j->cgroups, &j->ncgroups, CGROUP_ROOT, NULL, id, path, &j->cgroups_kept,
	                undo, err) < 0 ||
	    (path && enable_controllers(j->cgroups[0], err) < 0))
		return -1;
	snprintf(v, sizeof v, "%llu", (unsigned long long)j->memory_limit);
	if (cgroup_set(j->cgroups[0], "memory.max", v, err) < 0)
		return -1;
	{
		/* absent without swap accounting: nothing to turn off */
		struct cj_err ignored = {0};
		cgroup_set(j->cgroups[0], "memory.swap.max", "0", &ignored);
	}
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

static int setup_cgroups(struct cj_jail *j, const struct cj_vm_limits *lim, const char *id,
                         const char *path, struct cj_undo *undo, struct cj_err *err)
{
	uint64_t pids = lim->pids ? lim->pids : CJ_JAIL_DEFAULT_PIDS;
	unsigned *kept = &j->cgroups_kept;
	char v[64];

	if (unified())
		return setup_cgroups_v2(j, lim, id, path, undo, err);
	/* v1 or hybrid: one directory per controller */
	if (make_cgroup(j->cgroups, &j->ncgroups, CGROUP_ROOT "/memory", "memory", id, path, kept,
	                undo, err) < 0)
		return -1;
	snprintf(v, sizeof v, "%llu", (unsigned long long)j->memory_limit);
	if (cgroup_set(j->cgroups[j->ncgroups - 1], "memory.limit_in_bytes", v, err) < 0)
		return -1;
	if (make_cgroup(j->cgroups, &j->ncgroups, CGROUP_ROOT "/pids", "pids", id, path, kept, undo,
	                err) < 0)
		return -1;
	snprintf(v, sizeof v, "%llu", (unsigned long long)pids);
	if (cgroup_set(j->cgroups[j->ncgroups - 1], "pids.max", v, err) < 0)
		return -1;
	if (make_cgroup(j->cgroups, &j->ncgroups, CGROUP_ROOT "/cpu", "cpu", id, path, kept, undo,
	                err) < 0)
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

/* The engine's cgroup, as the jail will join it (setup_cgroups). */
static int join_engine_cgroup(const char *path, struct cj_undo *undo, struct cj_helper_cgroup *out,
                              struct cj_err *err)
{
	static const char *const v1[] = {"memory", "pids", "cpu"};
	unsigned kept = 0;

	out->joined = true;
	if (unified())
		return make_cgroup(out->dirs, &out->n, CGROUP_ROOT, NULL, NULL, path, &kept, undo,
		                   err) < 0 ||
		               enable_controllers(out->dirs[0], err) < 0
		           ? -1
		           : 0;
	for (size_t i = 0; i < 3; i++) {
		char mnt[64];
		snprintf(mnt, sizeof mnt, "%s/%s", CGROUP_ROOT, v1[i]);
		if (make_cgroup(out->dirs, &out->n, mnt, v1[i], NULL, path, &kept, undo, err) < 0)
			return -1;
	}
	return 0;
}

int cj_helper_cgroup_make(const char *id, uint64_t pids, const char *engine_path,
                          struct cj_undo *undo, struct cj_helper_cgroup *out, struct cj_err *err)
{
	char v[32];
	bool v2 = unified();

	memset(out, 0, sizeof *out);
	if (engine_path)
		return join_engine_cgroup(engine_path, undo, out, err);
	snprintf(v, sizeof v, "%llu", (unsigned long long)pids);
	if (v2) {
		char own[PATH_MAX], sub[PATH_MAX + 64];
		cj_own_cgroup(NULL, own, sizeof own);
		snprintf(sub, sizeof sub, "%s%s/cgroup.subtree_control", CGROUP_ROOT, own);
		if (cj_write_text(sub, "+pids") < 0)
			return cj_fail(err, errno, "cgroup: enable pids for the children of %s",
			               own);
	}
	if (make_cgroup(out->dirs, &out->n, v2 ? CGROUP_ROOT : CGROUP_ROOT "/pids",
	                v2 ? NULL : "pids", id, NULL, NULL, undo, err) < 0)
		return -1;
	return cgroup_set(out->dirs[0], "pids.max", v, err);
}

int cj_helper_cgroup_attach(const struct cj_helper_cgroup *cg, pid_t pid, struct cj_err *err)
{
	char v[32];

	snprintf(v, sizeof v, "%d", (int)pid);
	for (size_t i = 0; i < cg->n; i++)
		if (cgroup_set(cg->dirs[i], "cgroup.procs", v, err) < 0)
			return -1;
	return 0;
}

static int cgroup_kill_remove(const char *dir, uint64_t deadline, bool verbose);

void cj_helper_cgroup_remove(struct cj_helper_cgroup *cg)
{
	uint64_t deadline = cj_cgroup_kill_deadline();

	for (size_t i = 0; i < cg->n && !cg->joined; i++)
		cgroup_kill_remove(cg->dirs[i], deadline, true);
	cg->n = 0;
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

int cj_jail_plan_add(struct cj_jail_plan *plan, enum cj_jail_file_kind kind, const char *name,
                     const char *host, int fd, bool writable, struct cj_err *err)
{
	struct stat st;

	if (plan->nfiles >= CJ_JAIL_MAX_FILES)
		return cj_fail(err, E2BIG, "too many files for the jail");
	plan->files[plan->nfiles++] = (struct cj_jail_file){
	    .kind = kind, .name = name, .host = host, .fd = fd, .writable = writable};
	if (writable && (fd >= 0 ? fstat(fd, &st) : stat(host, &st)) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > plan->fsize_limit)
		plan->fsize_limit = (uint64_t)st.st_size;
	return 0;
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
	out->limits.memory_bytes =
	    spec->memory_limit ? spec->memory_limit : (guest_memory_mib + CJ_JAIL_MARGIN_MIB) << 20;
	if (out->limits.memory_bytes < (guest_memory_mib << 20))
		return cj_fail(err, 0,
		               "--memory-limit %lluM is below the guest's memory (%lluM): the VMM "
		               "would be killed as the guest uses it; give at least the guest's "
		               "memory plus %uM",
		               (unsigned long long)(out->limits.memory_bytes >> 20),
		               (unsigned long long)guest_memory_mib, CJ_JAIL_MARGIN_MIB);
	out->limits.pids = spec->pids_limit ? spec->pids_limit : CJ_JAIL_DEFAULT_PIDS;
	out->cgroup_path = spec->cgroup_path;
	if (spec->cpu_quota > 0) {
		out->limits.cpu_period_us = 100000;
		out->limits.cpu_quota_us = (uint64_t)(spec->cpu_quota * 100000);
	}
	return 0;
}

int cj_jail_prepare(const struct cj_jail_plan *cfg, const char *run_dir, const char *id,
                    const char *vmm_bin, struct cj_undo *undo, struct cj_jail *jail,
                    struct cj_err *err)
{
	char bin[PATH_MAX];
	int r = 0;

	/* All but the binds (1 MiB, of which a few are used): zeroing them
	 * would make all of it resident in the supervisor for the run's life */
	memset(jail, 0, offsetof(struct cj_jail, binds));
	memset(&jail->nbinds, 0, sizeof *jail - offsetof(struct cj_jail, nbinds));
	if (!cfg->enabled)
		return 0;
	jail->uid = cfg->uid;
	jail->gid = cfg->gid;
	jail->extra_gid = cj_jail_kvm_gid("/dev/kvm");
	jail->memory_limit = cfg->limits.memory_bytes;
	/* The VMM never needs to grow a file beyond the largest drive. */
	jail->fsize_limit = cfg->fsize_limit ? cfg->fsize_limit : RLIM_INFINITY;

	if (!realpath(vmm_bin, bin))
		return cj_fail(err, errno, "jail: find %s", vmm_bin);
	snprintf(jail->root, sizeof jail->root, "%s/root", run_dir);
	/* The room stays root's: the VMM may traverse it, never create or
	 * replace a name in it that root could later follow. */
	if (mkdir(jail->root, 0755) < 0 || chmod(jail->root, 0755) < 0)
		return cj_fail(err, errno, "jail: create %s", jail->root);
	jail->active = true;
	jail->tmpfs_room = true;
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
	for (size_t i = 0; i < cfg->nfiles; i++) {
		const struct cj_jail_file *f = &cfg->files[i];
		if (f->kind != CJ_JAIL_DRIVE) /* drives come in as fds */
			r |= add_bind(jail, f->host,
			              f->kind == CJ_JAIL_KERNEL ? "/boot/kernel" : "/boot/initrd",
			              false, err);
	}
	if (r < 0 || setup_cgroups(jail, &cfg->limits, id, cfg->cgroup_path, undo, err) < 0) {
		cj_jail_cleanup(jail);
		return -1;
	}
	return 0;
}

void cj_jail_binds_done(struct cj_jail *jail)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = ((uintptr_t)jail->binds + page - 1) & ~(page - 1);
	uintptr_t to = (uintptr_t)(jail->binds + CJ_JAIL_MAX_BINDS) & ~(page - 1);

	jail->nbinds = 0;
	if (to > from) /* whole pages inside the array only: they read as zeros again */
		madvise((void *)from, to - from, MADV_DONTNEED);
}

/* ---- the child's side ------------------------------------------------- */

/* The parents of path. Most binds share theirs with the one before (the
 * libraries' directory): made is the last parent made, which needs
 * nothing more. */
static int mkdirs(const char *path, char *made, size_t len)
{
	char buf[PATH_MAX];
	char *last;

	snprintf(buf, sizeof buf, "%s", path);
	last = strrchr(buf, '/');
	if (!last || last == buf)
		return 0;
	*last = '\0';
	if (strcmp(buf, made) == 0)
		return 0;
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(made, len, "%s", buf);
	return 0;
}

static unsigned long bind_flags(const struct cj_jail_bind *b)
{
	if (b->device)
		return MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC;
	return MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
}

/* The mount point in the room, and the bind, remounted with its flags
 * (bind_flags). */
static int bind_into(const char *root, const struct cj_jail_bind *b, char *made, size_t len)
{
	char dst[PATH_MAX * 2];

	snprintf(dst, sizeof dst, "%s%s", root, b->dst);
	if (mkdirs(dst, made, len) < 0)
		return -1;
	if ((b->is_dir ? mkdir(dst, 0755) : mknod(dst, S_IFREG | 0644, 0)) < 0 && errno != EEXIST)
		return -1;
	if (mount(b->src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	return mount(NULL, dst, NULL, bind_flags(b), NULL);
}

/* Every bind in the room: the files (libraries, firmware...) read-only,
 * nosuid, nodev; the device nodes nosuid, noexec. One remount each: a
 * single mount_setattr over the room would also reach the mounts the
 * caller placed in it before (a tool's image, which stays writable). */
static int bind_all(const struct cj_jail *j)
{
	char made[PATH_MAX * 2] = "";

	for (size_t i = 0; i < j->nbinds; i++)
		if (bind_into(j->root, &j->binds[i], made, sizeof made) < 0)
			return -1;
	return 0;
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
	*what = "mount the jail root";
	if ((j->tmpfs_room ? mount("tmpfs", j->root, "tmpfs", MS_NOSUID | MS_NODEV,
	                           "size=64k,nr_inodes=1024,mode=0755")
	                   : mount(j->root, j->root, NULL, MS_BIND | MS_REC, NULL)) < 0)
		return -1;
	*what = "bind files into the jail";
	if (bind_all(j) < 0)
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

static int cgroup_kill_remove(const char *dir, uint64_t deadline, bool verbose);

void cj_jail_cleanup(struct cj_jail *j)
{
	/* The VMM has exited; anything it left running in its cgroups (a
	 * compromised VMM's children) still has the VM's uid: killed first. */
	uint64_t deadline = cj_cgroup_kill_deadline();

	for (size_t i = 0; i < j->ncgroups; i++)
		if (!(j->cgroups_kept & (1u << i)))
			cgroup_kill_remove(j->cgroups[i], deadline, true);
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

/* SIGKILL every process of the cgroup directory dir (cgroup.kill on v2,
 * every pid of cgroup.procs until none is left on v1) and wait until it
 * is empty or the deadline has passed. 0 when empty or absent; -1 (errno
 * EBUSY) when a process is still there. */
static int cgroup_kill(const char *dir, uint64_t deadline)
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
	v2_kill = cj_write_text(path, "1") == 0;
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

/* Kill what is left in dir and remove it; 0 when it is gone (or was). */
static int cgroup_kill_remove(const char *dir, uint64_t deadline, bool verbose)
{
	int e;

	if (cgroup_kill(dir, deadline) < 0) {
		if (verbose)
			cj_notice("warning: a process of the VM's cgroup %s does not end", dir);
		return -1;
	}
	/* empty, yet the kernel may still be releasing the last one */
	while ((e = rmdir(dir) < 0 ? errno : 0) == EBUSY && cj_now_ns() < deadline)
		usleep(10000);
	if (e && e != ENOENT && e != ENOTDIR) {
		if (verbose)
			cj_notice("warning: remove cgroup %s: %s", dir, strerror(e));
		return -1;
	}
	return 0;
}

/* A cgroup path of an undo entry, checked: under the cgroup mount, no
 * step up. */
static const char *entry_cgroup(json_object *entry)
{
	const char *path = cj_undo_str(entry, "path");

	if (!path || strncmp(path, CGROUP_ROOT "/", sizeof CGROUP_ROOT) != 0 ||
	    strstr(path, "/../") || strstr(path, "/./") || strlen(path) >= PATH_MAX)
		return NULL;
	return path;
}

static bool valid_name(const char *s)
{
	if (!s || !*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > NAME_MAX)
		return false;
	return strchr(s, '/') == NULL;
}

/* The cgroups a jailer makes for a VM, those that exist: v2
 * <mount>/<parent>/<id>, v1 <mount>/<controller>/<parent>/<id>. A
 * controller mounted under two names (cpu -> cpu,cpuacct) may appear
 * twice. */
#define NAMED_CGROUPS_MAX 24
static size_t named_cgroups(const char *parent, const char *id, char (*dirs)[PATH_MAX])
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(path, sizeof path, CGROUP_ROOT "/%s/%s", parent, id);
	if (access(path, F_OK) == 0)
		snprintf(dirs[n++], PATH_MAX, "%s", path);
	if (!(d = opendir(CGROUP_ROOT)))
		return n;
	while ((de = readdir(d)) && n < NAMED_CGROUPS_MAX) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof path, CGROUP_ROOT "/%s/%s/%s", de->d_name, parent,
		                     id) < sizeof path &&
		    access(path, F_OK) == 0)
			snprintf(dirs[n++], PATH_MAX, "%s", path);
	}
	closedir(d);
	return n;
}

/* Kill (and with remove, remove) the cgroups of one entry. */
static int cgroups_of_entry(json_object *entry, bool remove, uint64_t deadline, bool verbose)
{
	const char *kind = cj_undo_str(entry, "kind"), *path;
	char dirs[NAMED_CGROUPS_MAX][PATH_MAX];
	size_t n = 0;
	int r = 0;

	if (kind && strcmp(kind, "jail.cgroup") == 0 && (path = entry_cgroup(entry)))
		snprintf(dirs[n++], PATH_MAX, "%s", path);
	else if (kind && strcmp(kind, "jail.cgroups") == 0) {
		const char *parent = cj_undo_str(entry, "parent"), *id = cj_undo_str(entry, "id");
		if (!valid_name(parent) || !valid_name(id))
			return 0;
		n = named_cgroups(parent, id, dirs);
	}
	for (size_t i = 0; i < n; i++)
		if (remove ? cgroup_kill_remove(dirs[i], deadline, verbose) < 0
		           : cgroup_kill(dirs[i], deadline) < 0)
			r = -1;
	return r;
}

/* "jail.owner": a file given to the jail user gets its owner and mode back. */
static int restore_owner(json_object *entry, bool verbose)
{
	const char *path = cj_undo_str(entry, "path");
	long long uid, gid, mode;

	if (!path || path[0] != '/' || !cj_undo_int(entry, "uid", &uid) ||
	    !cj_undo_int(entry, "gid", &gid) || !cj_undo_int(entry, "mode", &mode))
		return 0;
	/* chown first: it clears set-id bits, which chmod puts back */
	if ((chown(path, (uid_t)uid, (gid_t)gid) < 0 || chmod(path, (mode_t)mode & 07777) < 0) &&
	    errno != ENOENT) {
		if (verbose)
			cj_notice("warning: restore the owner of %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int cj_jail_undo(json_object *entry, bool verbose)
{
	const char *kind = cj_undo_str(entry, "kind");

	if (kind && strcmp(kind, "jail.owner") == 0)
		return restore_owner(entry, verbose);
	return cgroups_of_entry(entry, true, cj_cgroup_kill_deadline(), verbose);
}

int cj_jail_kill_all(json_object *undo_log)
{
	uint64_t deadline = cj_cgroup_kill_deadline();
	int r = 0;

	if (!undo_log || !json_object_is_type(undo_log, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(undo_log); i++)
		if (cgroups_of_entry(json_object_array_get_idx(undo_log, i), false, deadline,
		                     false) < 0)
			r = -1;
	return r;
}

int cj_jail_undo_cgroups(struct cj_undo *undo, const char *parent, const char *id,
                         struct cj_err *err)
{
	json_object *entry = json_object_new_object();

	json_object_object_add(entry, "parent", json_object_new_string(parent));
	json_object_object_add(entry, "id", json_object_new_string(id));
	return cj_undo_push(undo, "jail.cgroups", entry, err);
}

/* ---- shared by both executors ------------------------------------------- */

static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Octal escapes of /proc/self/mountinfo ("\040" for a space) decoded in place. */
static void unescape_mount(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Detach every mount at or below dir, deepest first. */
void cj_unmount_under(const char *dir)
{
	for (int round = 0; round < 64; round++) {
		FILE *f = fopen("/proc/self/mountinfo", "re");
		char *line = NULL, *best = NULL;
		size_t cap = 0, bestlen = 0;

		if (!f)
			return;
		while (getline(&line, &cap, f) > 0) {
			char *save = NULL, *mp = NULL;
			int field = 0;
			for (char *t = strtok_r(line, " ", &save); t;
			     t = strtok_r(NULL, " ", &save))
				if (++field == 5) {
					mp = t;
					break;
				}
			if (!mp)
				continue;
			unescape_mount(mp);
			if (path_under(mp, dir) && strlen(mp) > bestlen) {
				char *copy = strdup(mp);
				if (!copy)
					continue;
				free(best);
				best = copy;
				bestlen = strlen(mp);
			}
		}
		free(line);
		fclose(f);
		if (!best)
			return;
		int r = umount2(best, MNT_DETACH | UMOUNT_NOFOLLOW);
		free(best);
		if (r < 0)
			return;
	}
}

int cj_cgroups_kill_named(const char *parent, const char *id)
{
	char dirs[NAMED_CGROUPS_MAX][PATH_MAX];
	size_t n = valid_name(parent) && valid_name(id) ? named_cgroups(parent, id, dirs) : 0;
	uint64_t deadline = cj_cgroup_kill_deadline();
	int r = 0;

	for (size_t i = 0; i < n; i++)
		if (cgroup_kill(dirs[i], deadline) < 0)
			r = -1;
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
