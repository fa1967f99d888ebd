/* SPDX-License-Identifier: Apache-2.0 */
/* Boot snapshots in the cache (snapshot.h). */
#include "snapshot.h"

#include "ctrj/protocol.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The guest's boot to its snapshot point, under TCG on a loaded host. */
#define POINT_TIMEOUT_MS 120000
#define STOP_POLL_MS     50

static void hash_file(struct cj_hash *h, const char *path)
{
	struct stat st = {0};
	char buf[PATH_MAX + 128];

	stat(path, &st);
	int n = snprintf(buf, sizeof buf, "%s|%llu|%llu|%lld.%ld|", path,
	                 (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
	                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	cj_hash_update(h, buf, (size_t)n);
}

static int shape_key(const struct cj_vmm *vmm, const struct cj_vm_config *cfg, char key[65],
                     struct cj_err *err)
{
	struct cj_hash *h = cj_hash_new();
	char bin[PATH_MAX], buf[128];

	if (!h)
		return cj_fail(err, ENOMEM, "snapshot key");
	if (cj_find_in_path(vmm->bin, bin, sizeof bin) < 0)
		snprintf(bin, sizeof bin, "%s", vmm->bin);
	cj_hash_update(h, "ctrj-snapshot-2|", 16);
	cj_hash_update(h, vmm->ops->name, strlen(vmm->ops->name) + 1);
	hash_file(h, cfg->kernel);
	hash_file(h, cfg->initramfs);
	hash_file(h, bin);
	int n = snprintf(buf, sizeof buf,
	                 "cpus=%u mem=%llu kvm=%d nic=%d jail=%d drives=%zu:", cfg->cpus,
	                 (unsigned long long)cfg->memory_mib, cfg->use_kvm, cfg->tap != NULL,
	                 vmm->ops->snapshot_in_jail && cfg->jail.enabled, cfg->ndrives);
	cj_hash_update(h, buf, (size_t)n);
	for (size_t i = 0; i < cfg->ndrives; i++) {
		/* a jail's file names follow the drives' names */
		n = snprintf(buf, sizeof buf, "%s%s|", cfg->drives[i].read_only ? "r" : "w",
		             cfg->drives[i].id ? cfg->drives[i].id : "");
		cj_hash_update(h, buf, (size_t)n);
	}
	cj_hash_update(h, cfg->cmdline, strlen(cfg->cmdline) + 1);
	cj_hash_final_hex(h, key);
	return 0;
}

int cj_snapshot_go_line(char *buf, size_t len, const uint8_t *mac, struct cj_err *err)
{
	uint8_t seed[32];
	char hex[65], m[13] = "-";
	struct timespec ts;

	if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		return cj_fail(err, errno, "entropy for the restored VM");
	for (size_t i = 0; i < sizeof seed; i++)
		snprintf(hex + 2 * i, 3, "%02x", seed[i]);
	if (mac)
		snprintf(m, sizeof m, "%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3],
		         mac[4], mac[5]);
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, len, "go %s %lld %ld %s\n", hex, (long long)ts.tv_sec, ts.tv_nsec, m);
	explicit_bzero(seed, sizeof seed);
	explicit_bzero(hex, sizeof hex);
	return 0;
}

static bool (*g_stop_asked)(void);

void cj_snapshot_stop_when(bool (*asked)(void))
{
	g_stop_asked = asked;
}

static bool stop_pending(void)
{
	return g_stop_asked && g_stop_asked();
}

static int stopped(struct cj_err *err)
{
	return cj_fail(err, EINTR, "stopped while the boot snapshot was being made");
}

/* dir/lock, waited for in steps so that a stop ends the wait. */
static int lock_stoppable(const char *path, struct cj_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return cj_fail(err, errno, "open lock %s", path);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		if (e != EWOULDBLOCK && e != EINTR) {
			close(fd);
			return cj_fail(err, e, "lock %s", path);
		}
		if (stop_pending()) {
			close(fd);
			return stopped(err);
		}
		usleep(50000);
	}
	return fd;
}

/* Reads the console until the guest says it reached its snapshot point. */
static int wait_point(int fd, struct cj_err *err)
{
	char buf[4096 + sizeof CTRJ_SNAPSHOT_POINT];
	size_t used = 0;
	uint64_t deadline = cj_now_ns() + POINT_TIMEOUT_MS * 1000000ull;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = cj_now_ns();
		if (now >= deadline)
			return cj_fail(err, ETIMEDOUT,
			               "the guest never reached its snapshot point");
		/* a stop is looked for between short waits (stop_pending) */
		if (poll(&p, 1, STOP_POLL_MS) < 0 && errno != EINTR)
			return cj_fail(err, errno, "snapshot: console");
		if (stop_pending())
			return stopped(err);
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return cj_fail(err, 0, "the VM ended before its snapshot point");
		used += (size_t)n;
		buf[used] = '\0';
		if (strstr(buf, CTRJ_SNAPSHOT_POINT))
			return 0;
		/* keep a tail long enough to hold a marker cut in two */
		size_t keep = sizeof CTRJ_SNAPSHOT_POINT;
		if (used > keep) {
			memmove(buf, buf + used - keep, keep);
			used = keep;
		}
	}
}

/* The shape's VM without any of a run's data: drives without backing
 * files (a backend that snapshots in the jail gives them empty files
 * itself) and, for QEMU, a NIC without a backend. A jailed run's is jailed
 * like the run's VMM (its plan: uid, limits, cgroups in the run's undo
 * log), under an id of its own; with a file size limit that lets it write
 * the guest's memory (QEMU's migration stream, Firecracker's memory file).
 * Firecracker's keeps the run's network namespace and TAP: the guest has
 * no network driver yet at the snapshot point. */
static void blank_config(struct cj_vm_config *pc, bool keep_tap, char *id, int console, int fd)
{
	bool jailed = pc->jail.enabled && pc->undo && pc->run_dir && pc->id;

	for (size_t i = 0; i < pc->ndrives; i++) {
		pc->drives[i].path = NULL;
		pc->drives[i].fd = -1;
	}
	if (pc->tap && !keep_tap)
		pc->tap = "";
	if (jailed) {
		uint64_t mem = (pc->memory_mib << 20) + (1u << 20);
		pc->id = id;
		if (pc->jail.fsize_limit && pc->jail.fsize_limit < mem)
			pc->jail.fsize_limit = mem;
	} else {
		pc->jail.enabled = false;
		pc->run_dir = NULL;
		pc->undo = NULL;
	}
	pc->has_console_fd = true;
	pc->console_fd = console;
	pc->has_stderr_fd = false;
	pc->snap.prepare = true;
	pc->snap.restore = false;
	pc->snap.fd = fd;
	pc->snap.path = NULL;
}

/* Boots the shape to its snapshot point and saves it into fd. */
static int take(const struct cj_vmm *tmpl, const struct cj_vm_config *cfg, int fd, int mem_fd,
                struct cj_err *err)
{
	struct cj_vmm vm = {.ops = tmpl->ops, .bin = tmpl->bin};
	struct cj_vm_config *pc = malloc(sizeof *pc);
	char id[80];
	int cons[2], r;

	if (!pc)
		return cj_fail(err, ENOMEM, "snapshot");
	if (pipe2(cons, O_CLOEXEC) < 0) {
		free(pc);
		return cj_fail(err, errno, "snapshot: console pipe");
	}
	*pc = *cfg;
	snprintf(id, sizeof id, "%s-snap", cfg->id ? cfg->id : "");
	blank_config(pc, vm.ops->snapshot_in_jail, id, cons[1], fd);
	pc->snap.mem_fd = mem_fd;
	r = vm.ops->start(&vm, pc, err);
	close(cons[1]);
	if (r == 0)
		r = wait_point(cons[0], err);
	if (r == 0)
		r = vm.ops->snapshot_take(&vm, pc, err);
	close(cons[0]);
	cj_vmm_kill(&vm);
	if (vm.pid > 0)
		waitpid(vm.pid, NULL, 0);
	vm.ops->cleanup(&vm);
	free(pc);
	return r;
}

/* Makes dir/vmstate (and, for a backend with a memory file, dir/mem, which
 * is renamed into place first: vmstate says the snapshot is whole). A
 * snapshot in the jail is read by the VMM's uid through a link in its
 * jail, so those files are 0644: they hold only our kernel and init. */
static int make(const char *dir, const struct cj_vmm *vmm, const struct cj_vm_config *cfg,
                const char *path, struct cj_err *err)
{
	bool mem = vmm->ops->snapshot_in_jail;
	mode_t mode = mem ? 0644 : 0600;
	char tmp[PATH_MAX + 16], mtmp[PATH_MAX + 16], mpath[PATH_MAX + 16];
	int wfd, mfd = -1, r = 0;

	snprintf(tmp, sizeof tmp, "%s/vmstate.tmp", dir);
	snprintf(mtmp, sizeof mtmp, "%s/mem.tmp", dir);
	snprintf(mpath, sizeof mpath, "%s/mem", dir);
	if ((wfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0)
		return cj_fail(err, errno, "create %s", tmp);
	if (mem && (mfd = open(mtmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0)
		r = cj_fail(err, errno, "create %s", mtmp);
	if (r == 0 && (fchmod(wfd, mode) < 0 || (mem && fchmod(mfd, mode) < 0)))
		r = cj_fail(err, errno, "chmod the snapshot in %s", dir);
	if (r == 0)
		r = take(vmm, cfg, wfd, mfd, err);
	close(wfd);
	if (mfd >= 0)
		close(mfd);
	if (r == 0 && mem && rename(mtmp, mpath) < 0)
		r = cj_fail(err, errno, "rename %s", mtmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = cj_fail(err, errno, "rename %s", tmp);
	if (r < 0) {
		unlink(tmp);
		unlink(mtmp);
	}
	return r;
}

/* Makes the snapshot under dir/lock unless it is there; opens dir/vmstate. */
static int open_or_make(const char *dir, const struct cj_vmm *vmm, const struct cj_vm_config *cfg,
                        char *path, size_t pathlen, struct cj_err *err)
{
	char lock[PATH_MAX + 8];
	int lfd, fd, r = 0;

	snprintf(path, pathlen, "%s/vmstate", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
		return fd;
	snprintf(lock, sizeof lock, "%s/lock", dir);
	if ((lfd = lock_stoppable(lock, err)) < 0)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) { /* nobody made it meanwhile */
		r = make(dir, vmm, cfg, path, err);
		if (r == 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			r = cj_fail(err, errno, "open %s", path);
	}
	close(lfd);
	return r < 0 ? -1 : fd;
}

void cj_snapshot_remove(const char *path)
{
	char mem[PATH_MAX + 8];
	const char *slash = strrchr(path, '/');

	unlink(path);
	if (slash && snprintf(mem, sizeof mem, "%.*s/mem", (int)(slash - path), path) > 0)
		unlink(mem);
}

int cj_snapshot_open(const char *cache_dir, const struct cj_vmm *vmm,
                     const struct cj_vm_config *cfg, char *path, size_t pathlen, struct cj_err *err)
{
	char key[65], dir[PATH_MAX];

	if (!vmm->ops->snapshot_take)
		return cj_fail(err, ENOTSUP, "%s has no boot snapshots", vmm->ops->name);
	if (vmm->ops->snapshot_in_jail && (!cfg->jail.enabled || !cfg->undo || !cfg->id))
		return cj_fail(err, ENOTSUP,
		               "%s makes its boot snapshots in a run's jail: the first jailed run "
		               "of this machine shape makes it",
		               vmm->ops->name);
	if (shape_key(vmm, cfg, key, err) < 0)
		return -1;
	snprintf(dir, sizeof dir, "%s/snapshots", cache_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cj_fail(err, errno, "create %s", dir);
	snprintf(dir, sizeof dir, "%s/snapshots/%s", cache_dir, key);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cj_fail(err, errno, "create %s", dir);
	return open_or_make(dir, vmm, cfg, path, pathlen, err);
}
