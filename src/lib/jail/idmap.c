/* SPDX-License-Identifier: Apache-2.0 */
#include "idmap.h"

#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

/* The helper's side: a new user namespace, then one byte (0, or the
 * errno) to the parent, then wait until the parent is done with it. */
static void __attribute__((noreturn)) userns_helper(int ready, int done)
{
	unsigned char status = 0;
	char c;

	if (unshare(CLONE_NEWUSER) < 0) {
		/* The kernel refuses user namespaces to a chrooted process (a
		 * runtime started under chroot). A mount namespace of its own
		 * puts this helper at that namespace's root; it opens nothing
		 * and runs nothing, so leaving the chroot gives it nothing. */
		int ns = -1;
		if (errno != EPERM || unshare(CLONE_NEWNS) < 0 ||
		    (ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) < 0 ||
		    setns(ns, CLONE_NEWNS) < 0 || unshare(CLONE_NEWUSER) < 0)
			status = (unsigned char)(errno ? errno : EPERM);
	}
	if (write(ready, &status, 1) != 1 || status)
		_exit(1);
	_exit(read(done, &c, 1) < 0); /* EOF: the parent is done */
}

/* A user namespace mapping (exactly and only) the file's owner and group
 * to uid and gid: the idmapping of the mount. A process holds it while
 * its maps are written and exits right after. */
int cj_idmap_userns(const struct stat *st, uid_t uid, gid_t gid, struct cj_err *err)
{
	char path[64], map[64];
	int ready[2], done[2], fd = -1, e;
	unsigned char status = EIO;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0)
		return cj_fail(err, errno, "pipe");
	if (pipe2(done, O_CLOEXEC) < 0) {
		e = errno;
		close(ready[0]);
		close(ready[1]);
		return cj_fail(err, e, "pipe");
	}
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(done[1]);
		userns_helper(ready[1], done[0]);
	}
	e = errno;
	close(ready[1]);
	close(done[0]);
	if (pid < 0) {
		close(ready[0]);
		close(done[1]);
		return cj_fail(err, e, "start a helper for an idmapped mount");
	}
	e = 0;
	while (read(ready[0], &status, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	if (status)
		e = status;
	snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)st->st_uid, (unsigned)uid);
	if (!e && cj_write_text(path, map) < 0)
		e = errno;
	snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)st->st_gid, (unsigned)gid);
	if (!e && cj_write_text(path, map) < 0)
		e = errno;
	snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
	if (!e && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		e = errno;
	close(done[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (e)
		return cj_fail(err, e, "a user namespace for an idmapped mount");
	return fd;
}

int cj_idmap_tree(int fd, const struct stat *st, uid_t uid, gid_t gid, uint64_t attrs,
                  struct cj_err *err)
{
	struct mount_attr attr = {.attr_set = attrs | MOUNT_ATTR_IDMAP};
	int tree, ns, r, e;

	tree = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0)
		return cj_fail(err, errno, "clone a mount");
	ns = cj_idmap_userns(st, uid, gid, err);
	if (ns < 0) {
		close(tree);
		return -1;
	}
	attr.userns_fd = (uint64_t)ns;
	r = mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
	e = errno;
	close(ns);
	if (r < 0) {
		close(tree);
		return cj_fail(err, e, "idmapped mount");
	}
	return tree;
}
