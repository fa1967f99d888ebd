/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jailer-layout executor (layout.h). Ownership: shared read-only
 * files the jail user can already read (the cached kernel, initramfs,
 * base and modules images, mode 0644) are linked as they are: the VMM can
 * read them but, not owning them, never change them, so a compromised VMM
 * cannot poison the cache other VMs boot from. Read-only files it cannot
 * read (volumes attached :ro, which several VMs, each with a uid of its
 * own, may share) keep their owner: the chroot gets an idmapped read-only
 * mount of each, in which the owner appears as the VM's uid
 * (place_idmapped). Files the VMM must write (volumes, the data drive:
 * exclusively locked by this run) are chowned to the jail user for the
 * run; their owner and mode go to the undo log first ("jail.owner") and
 * are restored at teardown, or by gc once every process in the VM's
 * cgroups has ended. Block devices get a node of their own.
 */
#include "layout.h"

#include "idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copy [0, len) of in to out (len 0: until EOF of in). */
static int copy_fd(int in, int out, off_t len, struct cj_err *err)
{
	char buf[65536];
	off_t off = 0;

	for (;;) {
		size_t want = sizeof buf;
		if (len && (off_t)want > len - off)
			want = (size_t)(len - off);
		if (len && want == 0)
			return 0;
		ssize_t n = pread(in, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cj_fail(err, errno, "read");
		if (n == 0)
			return 0;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(out, buf + done, (size_t)(n - done), off + done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return cj_fail(err, w < 0 ? errno : EIO, "write");
			done += w;
		}
		off += n;
	}
}

static int undo_owner(struct cj_layout *l, const char *path, const struct stat *st,
                      struct cj_err *err)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "uid", json_object_new_int64(st->st_uid));
	json_object_object_add(o, "gid", json_object_new_int64(st->st_gid));
	json_object_object_add(o, "mode", json_object_new_int(st->st_mode & 07777));
	return cj_undo_push(l->undo, "jail.owner", o, err);
}

static bool readable_by(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return st->st_mode & S_IRUSR;
	if (st->st_gid == gid)
		return st->st_mode & S_IRGRP;
	return st->st_mode & S_IROTH;
}

static int bind_file(const char *src, const char *dst, bool ro, struct cj_err *err)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return cj_fail(err, errno, "create %s", dst);
	close(fd);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return cj_fail(err, errno, "bind %s into the jail", src);
	if (ro &&
	    mount(NULL, dst, NULL,
	          MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return cj_fail(err, errno, "make %s read-only in the jail", dst);
	return 0;
}

/* A read-only file the VMM's uid cannot read (a volume: root's, 0600).
 * Other runs may attach the same volume read-only at the same time (they
 * share its lock), each with a uid of its own, so the host file's owner
 * is never changed: the jail gets an idmapped, read-only mount of it in
 * which its owner appears as this VM's uid. The host file keeps its owner
 * and mode, every VM sharing it keeps its access, and a SIGKILLed run
 * leaves nothing to restore but the mount, which gc removes with the
 * jail. The file is opened once: what is checked is what is mounted. */
static int place_idmapped(const struct cj_layout *l, const char *host, const char *dst,
                          struct cj_err *err)
{
	struct stat st;
	int fd, tree;

	fd = open(host, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return cj_fail(err, errno, "%s", host);
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return cj_fail(err, e, "%s", host);
	}
	if (!(st.st_mode & S_IRUSR)) {
		close(fd);
		return cj_fail(err, 0, "%s is not readable even by its owner: chmod u+r it", host);
	}
	tree = cj_idmap_tree(
	    fd, &st, l->uid, l->gid,
	    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, err);
	close(fd);
	if (tree < 0 && err->errnum == EINVAL)
		return cj_fail(err, 0,
		               "%s is on a filesystem without idmapped mounts, which a read-only "
		               "drive that the VMM's uid cannot read needs: keep it on ext4, xfs, "
		               "btrfs or tmpfs, or attach it read-write",
		               host);
	if (tree < 0)
		return cj_err_wrap(err, "give the VMM read access to %s", host);
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || close(fd) < 0 ||
	    move_mount(tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		int e = errno;
		close(tree);
		return cj_fail(err, e, "mount %s into the jail", host);
	}
	close(tree);
	return 0;
}

/* Make host file `host` visible in the jail as `rel`; see the top comment. */
int cj_layout_place_file(struct cj_layout *l, const char *host, const char *rel, bool ro,
                         struct cj_err *err)
{
	char dst[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(dst, sizeof dst, "%s/%s", l->root, rel) >= sizeof dst)
		return cj_fail(err, ENAMETOOLONG, "jail path for %s", host);
	if (stat(host, &st) < 0)
		return cj_fail(err, errno, "%s", host);
	if (S_ISBLK(st.st_mode)) {
		/* A node of its own: the host's /dev entry keeps its owner. Read-only:
		 * root-owned, group-readable, so the VMM can neither write nor chmod. */
		mode_t mode = ro ? 0440 : 0600;
		if (mknod(dst, S_IFBLK | mode, st.st_rdev) < 0 ||
		    chown(dst, ro ? 0 : l->uid, l->gid) < 0 || chmod(dst, mode) < 0)
			return cj_fail(err, errno, "create %s in the jail", dst);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return cj_fail(err, 0, "%s is neither a regular file nor a block device", host);
	if (ro && readable_by(&st, l->uid, l->gid)) {
		if (linkat(AT_FDCWD, host, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EXDEV)
			return cj_fail(err, errno, "link %s into the jail", host);
		return bind_file(host, dst, true, err);
	}
	if (ro)
		return place_idmapped(l, host, dst, err);
	/* Writable: this run holds the volume's exclusive lock, so no other
	 * run uses the file until teardown (or gc) has restored its owner,
	 * recorded before it changes. */
	mode_t want = (st.st_mode & 07777) | S_IRUSR | S_IWUSR;
	if (st.st_uid != l->uid || st.st_gid != l->gid || (st.st_mode & 07777) != want) {
		if (undo_owner(l, host, &st, err) < 0)
			return -1;
		if (chown(host, l->uid, l->gid) < 0 || chmod(host, want) < 0)
			return cj_fail(err, errno, "give %s to the jail user", host);
	}
	if (linkat(AT_FDCWD, host, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != EXDEV)
		return cj_fail(err, errno, "link %s into the jail", host);
	return bind_file(host, dst, false, err);
}

/* A drive backed by one of our fds (the control disk, a memfd, given as
 * /proc/self/fd/N): the jailer closes every inherited fd, and inside the
 * chroot /proc/self/fd/N would name nothing, so it cannot be passed
 * through. It is copied into the jail's run/ tmpfs instead: the guest's
 * configuration (secrets included) still never reaches persistent storage,
 * and collect() copies what the guest wrote (its status) back into the fd
 * once the VM has ended. */
int cj_layout_place_fd(struct cj_layout *l, int fd, const char *rel, bool writable,
                       struct cj_err *err)
{
	struct cj_layout_copy *c;
	int out;

	if (l->ncopies >= sizeof l->copies / sizeof l->copies[0])
		return cj_fail(err, E2BIG, "too many fd-backed drives");
	char path[PATH_MAX];
	c = &l->copies[l->ncopies];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", l->root, rel) >= sizeof path)
		return cj_fail(err, ENAMETOOLONG, "jail path");
	memcpy(c->path, path, sizeof path);
	out = open(c->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return cj_fail(err, errno, "create %s", c->path);
	if (fchown(out, l->uid, l->gid) < 0) {
		close(out);
		return cj_fail(err, errno, "chown %s", c->path);
	}
	if (copy_fd(fd, out, 0, err) < 0) {
		close(out);
		return cj_err_wrap(err, "copy the control disk into the jail");
	}
	if (close(out) < 0)
		return cj_fail(err, errno, "write %s", c->path);
	c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (c->fd < 0)
		return cj_fail(err, errno, "dup");
	c->writable = writable;
	l->ncopies++;
	return 0;
}

int cj_layout_collect(struct cj_layout *l, struct cj_err *err)
{
	for (size_t i = 0; i < l->ncopies; i++) {
		struct cj_layout_copy *c = &l->copies[i];
		struct stat st, orig;
		int in;

		if (!c->writable)
			continue;
		/* The jail's run/ belongs to the VMM's user: whatever is there is
		 * untrusted. Only a regular file is read, never past the original
		 * size; the status parser checks the rest. */
		in = open(c->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (in < 0)
			return cj_fail(err, errno, "read back %s", c->path);
		if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || fstat(c->fd, &orig) < 0) {
			close(in);
			return cj_fail(err, EINVAL, "read back %s", c->path);
		}
		int r = copy_fd(in, c->fd, orig.st_size, err);
		close(in);
		if (r < 0)
			return cj_err_wrap(err, "read back the control disk");
	}
	return 0;
}

void cj_layout_close(struct cj_layout *l)
{
	for (size_t i = 0; i < l->ncopies; i++)
		close(l->copies[i].fd);
	l->ncopies = 0;
}
