/* SPDX-License-Identifier: Apache-2.0 */
/* Run directories (/run/ctr-jailer/<id>) and their garbage collection.
 * Each holds an "owner" file naming the runtime process (pid + start time)
 * and, once started, a "vmm" file naming the VMM. A directory whose owner
 * is gone is a leftover of a killed runtime: its VMM (if any survived) is
 * killed and the directory removed.
 *
 * The owner's lock on its record is what makes a run alive, so a run
 * directory is only ever seen with that lock held: it is built under a
 * staging name (".new-<id>", which gc leaves alone while it is young),
 * locked, and then renamed into place. */
#include "run.h"

#include "jail/jail.h"
#include "net/net.h"
#include "util/util.h"
#include "vmm/firecracker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

unsigned long long cj_proc_starttime(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may contain spaces and parens: fields restart after the last ')' */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* field 22 is starttime; after ')' comes field 3 */
	int field = 2;
	for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
		if (++field == 22) {
			start = strtoull(tok, NULL, 10);
			break;
		}
	}
	return start;
}

static bool read_pid_file(const char *dir, const char *name, pid_t *pid, unsigned long long *start)
{
	char path[4096];
	FILE *f;
	int p = 0;
	bool ok;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!(f = fopen(path, "re")))
		return false;
	ok = fscanf(f, "%d %llu", &p, start) == 2 && p > 0;
	fclose(f);
	*pid = p;
	return ok;
}

static bool alive(pid_t pid, unsigned long long start)
{
	return start && cj_proc_starttime(pid) == start;
}

/* Alive and not a zombie (which waits for a parent that may not be us). */
static bool running(pid_t pid, unsigned long long start)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	if (!alive(pid, start))
		return false;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	char *p = strrchr(buf, ')'); /* the state follows comm */
	return !(p && p[1] == ' ' && p[2] == 'Z');
}

#define STAGING_PREFIX ".new-"
/* A directory without a held lock is left alone this long after its last
 * change: a run between mkdir and flock (staging), or one that predates
 * the staging rename. */
#define YOUNG_S 60

int cj_run_dir_create(const char *base, char *dir, size_t len, char *id, size_t idlen,
                      struct cj_err *err)
{
	uint8_t rnd[6];
	char staging[PATH_MAX], owner[PATH_MAX + 8], line[64];
	int fd, n;

	if (cj_mkdir_p(base, 0700, err) < 0)
		return cj_err_wrap(err, "run directory");
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return cj_fail(err, errno, "getrandom");
	snprintf(id, idlen, "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
	         rnd[5]);
	if ((size_t)snprintf(dir, len, "%s/%s", base, id) >= len ||
	    (size_t)snprintf(staging, sizeof staging, "%s/" STAGING_PREFIX "%s", base, id) >=
	        sizeof staging)
		return cj_fail(err, ENAMETOOLONG, "run directory in %s", base);
	if (mkdir(staging, 0700) < 0)
		return cj_fail(err, errno, "create %s", staging);
	snprintf(owner, sizeof owner, "%s/owner", staging);
	n = snprintf(line, sizeof line, "%d %llu\n", (int)getpid(), cj_proc_starttime(getpid()));
	fd = open(owner, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || write(fd, line, (size_t)n) != n) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		cj_rm_rf(staging);
		return cj_fail(err, e, "write %s", owner);
	}
	/* Locked: now the run may be seen, never replacing another. Where the
	 * filesystem has no RENAME_NOREPLACE, rename() does as well here: it
	 * fails on a run directory, which is never empty. */
	if (renameat2(AT_FDCWD, staging, AT_FDCWD, dir, RENAME_NOREPLACE) < 0 &&
	    (errno != EINVAL || rename(staging, dir) < 0)) {
		int e = errno;
		close(fd);
		cj_rm_rf(staging);
		return cj_fail(err, e, "create %s", dir);
	}
	return fd;
}

/* A staging directory whose runtime died before it published the run:
 * removed once it is old and its owner's lock is free. Nothing of the
 * host was changed for it yet. */
static bool gc_staging(const char *run_base, const char *name)
{
	char dir[PATH_MAX], owner[PATH_MAX + 8];
	struct stat st;
	int lock;
	bool gone;

	snprintf(dir, sizeof dir, "%s/%s", run_base, name);
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || time(NULL) - st.st_mtime < YOUNG_S)
		return false;
	snprintf(owner, sizeof owner, "%s/owner", dir);
	lock = open(owner, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) < 0) {
		close(lock);
		return false;
	}
	gone = cj_rm_rf(dir) == 0;
	if (lock >= 0)
		close(lock);
	return gone;
}

/* The lock just taken is on the record that is still in place: a run that
 * ended (removing its directory, then unlocking) between our open and
 * flock is not a leftover. */
static bool lock_is_on(int lock, const char *path)
{
	struct stat a, b;

	return fstat(lock, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* Every process of a leftover run's VM killed, and gone: the VMM its
 * record names (an unjailed one has no cgroup), and everything in the
 * VM's cgroups, wherever it was reparented to (a jailed Firecracker has no
 * parent-death signal, and its record may never have been written). Only
 * then may the run directory go: it holds the record of the VM's uid,
 * which the next run could otherwise be given while a process still runs
 * as it. */
static bool vm_gone(const char *dir, const char *id)
{
	pid_t pid;
	unsigned long long start;
	bool gone = true;

	if (read_pid_file(dir, "vmm", &pid, &start) && alive(pid, start)) {
		kill(pid, SIGKILL);
		uint64_t deadline = cj_cgroup_kill_deadline();
		while (running(pid, start) && cj_now_ns() < deadline)
			usleep(10000);
		gone = !running(pid, start);
	}
	if (cj_jail_gc(id) < 0) /* QEMU's jail: its cgroups */
		gone = false;
	if (cj_firecracker_kill(dir) < 0) /* Firecracker's jailer's cgroups */
		gone = false;
	return gone;
}

int cj_gc(const char *run_base, bool verbose)
{
	DIR *d = opendir(run_base);
	struct dirent *de;
	int removed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char dir[4096];

		if (strncmp(de->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)) == 0) {
			if (gc_staging(run_base, de->d_name) && verbose)
				cj_notice("removed a run that never started (%s)", de->d_name);
			continue;
		}
		if (de->d_name[0] == '.')
			continue; /* the runtime's own files: locks, caches */
		snprintf(dir, sizeof dir, "%s/%s", run_base, de->d_name);
		/* alive while its owner holds the lock on the record */
		char owner[4200];
		snprintf(owner, sizeof owner, "%s/owner", dir);
		int lock = open(owner, O_RDONLY | O_CLOEXEC);
		if (lock >= 0 && (flock(lock, LOCK_EX | LOCK_NB) < 0 || !lock_is_on(lock, owner))) {
			close(lock);
			continue;
		}
		if (lock < 0) {
			/* no owner: a run being torn down right now, or from a
			 * version without staging; left alone unless old */
			struct stat st;
			if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
			    time(NULL) - st.st_mtime < YOUNG_S)
				continue;
		}
		if (!vm_gone(dir, de->d_name)) {
			if (lock >= 0)
				close(lock);
			if (verbose)
				cj_notice(
				    "leftover run %s: a process of its VM does not end; the run "
				    "stays for the next gc",
				    de->d_name);
			continue;
		}
		cj_net_gc(dir);         /* the TAP and exactly the rules that run added */
		cj_firecracker_gc(dir); /* Firecracker's jail and the owners it changed */
		int gone = cj_rm_rf(dir);
		if (lock >= 0)
			close(lock);
		if (gone == 0) {
			removed++;
			if (verbose)
				cj_notice("removed leftover run %s", de->d_name);
		}
	}
	closedir(d);
	return removed;
}
