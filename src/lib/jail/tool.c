/* SPDX-License-Identifier: Apache-2.0 */
#include "tool.h"

#include "idmap.h"
#include "jail.h"
#include "util/spawn.h"
#include "util/util.h"

#include "ctrj/protocol.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/keyctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUTPUT_CAP (64u << 10)
/* The room is a tmpfs the child mounts over this directory in its own
 * mount namespace; the host never sees it, so nothing is left behind
 * whatever happens. What goes into the room is bound from O_PATH fds
 * (/proc/self/fd/N), so this mount hiding a host path costs nothing. */
#define ROOM "/tmp"

static char *const tool_env[] = {
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL=C",
    /* the room has no /proc/mounts: e2fsprogs may take the image as
     * unmounted (it is: the guest is not running yet) */
    "EXT2FS_NO_MTAB_OK=1",
    NULL,
};

/* Does the binary need a dynamic loader (and ldd)? */
static bool is_dynamic(const char *bin)
{
	Elf64_Ehdr eh;
	int fd = open(bin, O_RDONLY | O_CLOEXEC);
	bool dyn = true;

	if (fd < 0)
		return true;
	if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh &&
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64) {
		dyn = false;
		for (unsigned i = 0; i < eh.e_phnum && !dyn; i++) {
			Elf64_Phdr ph;
			off_t at = (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize);
			if (pread(fd, &ph, sizeof ph, at) != (ssize_t)sizeof ph)
				dyn = true; /* unreadable: let ldd decide */
			else if (ph.p_type == PT_INTERP)
				dyn = true;
		}
	}
	close(fd);
	return dyn;
}

/* A detached mount of the image file for the room. Where its filesystem
 * allows, the mount is idmapped so that the file's owner appears as the
 * tool's user: the tool opens it by path, read-write, with no privilege,
 * and the host file keeps its owner and mode. Where it does not (overlayfs,
 * e.g. a container's own root; NFS; tmpfs before Linux 6.3), the tool
 * takes the file owner's uid and gid instead (root for the runtime's own
 * images), still without any capability: the one identity that may open
 * the file. */
static int image_mount(int image_fd, const struct stat *st, struct cj_jail *j, struct cj_err *err)
{
	struct mount_attr attr = {
	    .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
	};
	struct cj_err ignore = {0};
	int tree, ns, r, e;

	tree = open_tree(image_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0)
		return cj_fail(err, errno, "clone a mount of the image for the tool");
	ns = cj_idmap_userns(st, j->uid, j->gid, &ignore);
	if (ns >= 0) {
		attr.attr_set |= MOUNT_ATTR_IDMAP;
		attr.userns_fd = (uint64_t)ns;
		r = mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
		close(ns);
		if (r == 0)
			return tree;
		attr.attr_set &= ~(uint64_t)MOUNT_ATTR_IDMAP;
		attr.userns_fd = 0;
	}
	j->uid = st->st_uid;
	j->gid = st->st_gid;
	r = mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
	e = errno;
	if (r < 0) {
		close(tree);
		return cj_fail(err, e, "mount the image for the tool");
	}
	return tree;
}

/* In the child, before the room covers ROOM: each source becomes an O_PATH
 * fd of this mount namespace, bound as /proc/self/fd/N, so the room's
 * mount hides none of them. The fds close at exec. */
static int pin_sources(struct cj_jail *j)
{
	for (size_t i = 0; i < j->nbinds; i++) {
		int fd = open(j->binds[i].src, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return -1;
		snprintf(j->binds[i].src, sizeof j->binds[i].src, "/proc/self/fd/%d", fd);
	}
	return 0;
}

static int build_room(struct cj_jail *j, const char *bin, const char *cache_dir, struct cj_err *err)
{
	snprintf(j->root, sizeof j->root, "%s", ROOM);
	j->extra_gid = (gid_t)-1;
	if (cj_jail_add_bind(j, bin, bin, false, err) < 0)
		return -1;
	if (is_dynamic(bin)) {
		/* without a cache directory, ldd answers every time */
		const char *cache = cache_dir ? cache_dir : "/nonexistent";
		if (cj_jail_add_libraries(j, bin, cache, err) < 0 ||
		    cj_jail_add_bind(j, "/etc/ld.so.cache", "/etc/ld.so.cache", false, err) < 0)
			return -1;
	}
	return cj_jail_add_bind(j, "/dev/null", "/dev/null", true, err);
}

struct child {
	struct cj_jail *jail; /* the child's copy is its own to change */
	const char *bin;
	char *const *argv;
	int tree;        /* idmapped image mount, or -1 */
	dev_t image_dev; /* block device image, or 0 */
	rlim_t as_limit;
};

/* The image's place in the room: the idmapped mount of a file, or a
 * device node of the tool's own for a block device (the host's node would
 * need the device's group or root). The node is a mount of its own, bound
 * onto itself: cj_jail_enter makes the room's root nodev, which must not
 * reach the one node the tool is there to open. The bind stays nosuid and
 * noexec; the tool can create no other node (no CAP_MKNOD, and the room
 * turns read-only). */
static int place_image(const struct child *c)
{
	const char *path = ROOM CJ_TOOL_IMAGE;

	if (c->tree >= 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		close(fd);
		return move_mount(c->tree, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH);
	}
	if (c->image_dev) {
		if (mknod(path, S_IFBLK | 0600, c->image_dev) < 0 ||
		    chown(path, c->jail->uid, c->jail->gid) < 0 ||
		    mount(path, path, NULL, MS_BIND, NULL) < 0)
			return -1;
		return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC, NULL);
	}
	return 0;
}

/* In the child (cj_spawn gave it its own session, stdio and namespaces):
 * the room is a small tmpfs of this namespace; then the VMM's own lock-in
 * (cj_jail_enter: pivot_root, rlimits, close fds, bounding set, uid/gid,
 * parent-death signal, empty capabilities, no_new_privs); then limits only
 * a tool needs, which an unprivileged process may still lower. */
static int lock_in(void *ctx, const char **what)
{
	const struct child *c = ctx;
	struct rlimit core = {0, 0}, nofile = {64, 64}, as = {c->as_limit, c->as_limit};

	*what = "open what goes into the room";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || pin_sources(c->jail) < 0)
		return -1;
	*what = "mount the tool's room";
	if (mount("tmpfs", ROOM, "tmpfs", MS_NOSUID | MS_NOEXEC,
	          "size=256k,nr_inodes=256,mode=0755") < 0)
		return -1;
	*what = "put the image in the room";
	if (place_image(c) < 0)
		return -1;
	if (cj_jail_enter(c->jail, NULL, 0, what) < 0)
		return -1;
	*what = "set the tool's rlimits";
	if (setrlimit(RLIMIT_CORE, &core) < 0 || setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
	    setrlimit(RLIMIT_AS, &as) < 0)
		return -1;
	/* a session keyring of its own: not the caller's, whose keys it would
	 * possess otherwise. ENOSYS (no keyrings in this kernel) and EPERM (a
	 * seccomp filter, such as Docker's default profile, refuses keyctl; the
	 * tool inherits that filter and cannot use keyctl either) leave
	 * nothing to reach. */
	*what = "join a new session keyring";
	if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS &&
	    errno != EPERM)
		return -1;
	return 0;
}

static int image_details(int fd, struct stat *st, uint64_t *size, struct cj_err *err)
{
	if (fstat(fd, st) < 0)
		return cj_fail(err, errno, "image for the tool");
	if (S_ISBLK(st->st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return cj_fail(err, errno, "size of the tool's block device");
		return 0;
	}
	if (!S_ISREG(st->st_mode))
		return cj_fail(err, 0, "the tool's image is neither a file nor a block device");
	*size = (uint64_t)st->st_size;
	return 0;
}

/* Start the tool in new mount, pid, ipc, uts and network namespaces;
 * its stdout and stderr are kept (at most OUTPUT_CAP bytes each, so a
 * chatty tool can neither block nor grow our memory). */
static int run_child(struct child *c, char **outp, int *code, struct cj_err *err)
{
	char step[CJ_SPAWN_STEP_MAX];
	struct cj_spawn s = {.path = c->bin,
	                     .argv = c->argv,
	                     .envp = tool_env,
	                     .stdin_fd = -1,
	                     .new_session = true,
	                     .clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
	                                    CLONE_NEWUTS | CLONE_NEWNET,
	                     .pre_exec = lock_in,
	                     .ctx = c};

	if (cj_spawn_capture(s, OUTPUT_CAP, outp, code, step, err) < 0)
		return step[0] ? cj_fail(err, err->errnum, "jail %s: %s", c->argv[0], step) : -1;
	return 0;
}

int cj_tool_run(const struct cj_tool *tool, char **out, int *code, struct cj_err *err)
{
	char found[PATH_MAX], bin[PATH_MAX];
	cj_autofree struct cj_jail *j = calloc(1, sizeof *j);
	cj_autoclose int tree = -1;
	struct child c = {.jail = j, .bin = bin, .argv = tool->argv, .tree = -1};
	uint64_t size = 0;
	struct stat st;

	if (!j)
		return cj_fail(err, ENOMEM, "jail %s", tool->argv[0]);
	if (tool->uid == 0 || tool->gid == 0)
		return cj_fail(err, EINVAL, "jail %s: no unprivileged user to run it as",
		               tool->argv[0]);
	if (cj_find_in_path(tool->argv[0], found, sizeof found) < 0 || !realpath(found, bin))
		return cj_fail(err, ENOENT, "%s not found in PATH (install e2fsprogs)",
		               tool->argv[0]);
	/* a parser bug in the tool gets what an escaped VMM of this run would
	 * get, nothing more */
	j->uid = tool->uid;
	j->gid = tool->gid;
	j->fsize_limit = RLIM_INFINITY;
	c.as_limit = 1ull << 30;
	if (tool->image_fd >= 0) {
		if (image_details(tool->image_fd, &st, &size, err) < 0)
			return -1;
		/* the tool never needs the file to grow: the caller sizes it */
		if (S_ISREG(st.st_mode))
			j->fsize_limit = size;
		/* e2fsck's maps grow with the filesystem; a hostile one must not
		 * take the host's memory */
		c.as_limit += size / 256;
		if (S_ISBLK(st.st_mode))
			c.image_dev = st.st_rdev;
		else if ((c.tree = tree = image_mount(tool->image_fd, &st, j, err)) < 0)
			return -1;
	}
	if (build_room(j, bin, tool->cache_dir, err) < 0)
		return -1;
	return run_child(&c, out, code, err);
}
