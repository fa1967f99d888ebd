/* SPDX-License-Identifier: Apache-2.0 */
/* Run directories (/run/ctr-jailer/<id>) and their garbage collection.
 * Each holds an "owner" file naming the runtime process (pid + start time)
 * and, once started, a "vmm" file naming the VMM. A directory whose owner
 * is gone is a leftover of a killed runtime: its VMM (if any survived) is
 * killed and the directory removed. */
#include "run.h"

#include "jail/jail.h"
#include "net/net.h"
#include "util/util.h"
#include "vmm/firecracker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

int cj_gc(const char *run_base, bool verbose)
{
	DIR *d = opendir(run_base);
	struct dirent *de;
	int removed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char dir[4096];
		pid_t pid;
		unsigned long long start;

		if (de->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof dir, "%s/%s", run_base, de->d_name);
		/* alive while its owner holds the lock on the record */
		char owner[4200];
		snprintf(owner, sizeof owner, "%s/owner", dir);
		int lock = open(owner, O_RDONLY | O_CLOEXEC);
		if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) < 0) {
			close(lock);
			continue;
		}
		if (lock < 0) {
			/* no owner yet: a run being created right now, unless old */
			struct stat st;
			if (stat(dir, &st) == 0 && time(NULL) - st.st_mtime < 60)
				continue;
		}
		if (read_pid_file(dir, "vmm", &pid, &start) && alive(pid, start))
			kill(pid, SIGKILL);
		cj_net_gc(dir);         /* the TAP and exactly the rules that run added */
		cj_jail_gc(de->d_name); /* its cgroups */
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
