/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tree walks without recursion (see tree.h). An image decides how deep its
 * tree is: a recursive walk gives it the depth of our stack (base 0181444
 * crashed on a 2040-level chain), and a walk by full paths stops at
 * PATH_MAX (nftw could neither read nor remove a tree below that). Here a
 * directory's names are read at once into one buffer when it is entered,
 * the walk keeps descriptors of the top KEEP_OPEN levels only, and below
 * them it climbs back with "..", checking the device and inode it recorded
 * on the way down, so a tree that changed under it stops the walk instead
 * of steering it elsewhere.
 */
#include "image/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Directories this close to the top keep their descriptor while the walk
 * is below them, so the usual tree is walked with as many system calls as
 * nftw made (statx in place of fstatat); deeper ones are closed and
 * climbed back to with "..". */
#define KEEP_OPEN 64

struct frame {
	char *names; /* the directory's entries, NUL-separated, read on entry */
	size_t len, pos;
	int fd;          /* its descriptor; -1 once closed (deeper than KEEP_OPEN) */
	struct stat st;  /* the directory itself */
	size_t pathlen;  /* length of its path */
	size_t name_off; /* where its own name starts in the path */
};

struct walk {
	struct frame *frames;
	size_t n, cap;
	char *path;
	size_t pathcap;
	char *dents; /* getdents64 buffer */
	/* The root's mount: never left. Known by its mount id; where the
	 * kernel does not tell one (before Linux 5.8), by the device of
	 * directories only (see other_mount). */
	uint64_t mnt_id;
	bool have_mnt_id;
	dev_t dev;
};

#define DENTS_SIZE (32u << 10)

/* stat of name in dirfd (never following it, never triggering an
 * automount) as fstatat gives it, and the id of the mount it is on when
 * the kernel reports one. */
static int entry_stat(int dirfd, const char *name, int flags, struct stat *st, uint64_t *mnt_id,
                      bool *have_mnt_id)
{
	struct statx sx;

	if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
	          STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0)
		return -1;
	memset(st, 0, sizeof *st);
	st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	st->st_ino = sx.stx_ino;
	st->st_mode = sx.stx_mode;
	st->st_nlink = sx.stx_nlink;
	st->st_uid = sx.stx_uid;
	st->st_gid = sx.stx_gid;
	st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
	st->st_size = (off_t)sx.stx_size;
	st->st_blksize = (blksize_t)sx.stx_blksize;
	st->st_blocks = (blkcnt_t)sx.stx_blocks;
	st->st_atim = (struct timespec){sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec};
	st->st_mtim = (struct timespec){sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec};
	st->st_ctim = (struct timespec){sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec};
	*have_mnt_id = (sx.stx_mask & STATX_MNT_ID) != 0;
	*mnt_id = *have_mnt_id ? sx.stx_mnt_id : 0;
	return 0;
}

/* Is the entry on another mount than the walk's root? Not by its device:
 * on an overlayfs whose layers sit on different file systems, every
 * non-directory reports the device of the layer holding it, and a walk by
 * device skipped them all (the base image of such a rootfs was short of
 * inodes, and its cache key blind to its files). By mount id; without one,
 * by the device of directories only, which overlayfs reports as its own. */
static bool other_mount(const struct walk *w, const struct stat *st, uint64_t mnt_id,
                        bool have_mnt_id)
{
	if (w->have_mnt_id && have_mnt_id)
		return mnt_id != w->mnt_id;
	return S_ISDIR(st->st_mode) && st->st_dev != w->dev;
}

/* Read every name of the directory fd (whose offset is at its start). */
static int read_names(struct walk *w, int fd, struct frame *f)
{
	size_t cap = 0;
	ssize_t got;

	f->names = NULL;
	f->len = f->pos = 0;
	while ((got = getdents64(fd, w->dents, DENTS_SIZE)) > 0) {
		for (ssize_t off = 0; off < got;) {
			const struct dirent64 *de = (const struct dirent64 *)(w->dents + off);
			size_t n = strlen(de->d_name) + 1;
			off += de->d_reclen;
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (f->len + n > cap) {
				size_t ncap = cap ? cap * 2 : 256;
				char *nn;
				while (ncap < f->len + n)
					ncap *= 2;
				if (!(nn = realloc(f->names, ncap))) {
					free(f->names);
					f->names = NULL;
					errno = ENOMEM;
					return -1;
				}
				f->names = nn;
				cap = ncap;
			}
			memcpy(f->names + f->len, de->d_name, n);
			f->len += n;
		}
	}
	if (got < 0) {
		int e = errno;
		free(f->names);
		f->names = NULL;
		errno = e;
		return -1;
	}
	return 0;
}

static int path_append(struct walk *w, size_t at, const char *name, size_t *len)
{
	size_t n = strlen(name), need = at + (at ? 1 : 0) + n + 1;

	if (need > w->pathcap) {
		size_t ncap = w->pathcap ? w->pathcap * 2 : 256;
		char *np;
		while (ncap < need)
			ncap *= 2;
		if (!(np = realloc(w->path, ncap)))
			return -1;
		w->path = np;
		w->pathcap = ncap;
	}
	if (at)
		w->path[at++] = '/';
	memcpy(w->path + at, name, n + 1);
	*len = at + n;
	return 0;
}

/* Enter the directory fd (owned from here on) found as *st. */
static int push(struct walk *w, int fd, const struct stat *st, size_t pathlen, size_t name_off)
{
	struct frame *f;

	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 16;
		struct frame *nf = realloc(w->frames, ncap * sizeof *nf);
		if (!nf) {
			close(fd);
			errno = ENOMEM;
			return -1;
		}
		w->frames = nf;
		w->cap = ncap;
	}
	f = &w->frames[w->n];
	if (read_names(w, fd, f) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	f->fd = fd;
	f->st = *st;
	f->pathlen = pathlen;
	f->name_off = name_off;
	w->n++;
	/* Deep down, the parent's descriptor goes: ".." finds it again. */
	if (w->n > KEEP_OPEN && w->frames[w->n - 2].fd >= 0) {
		close(w->frames[w->n - 2].fd);
		w->frames[w->n - 2].fd = -1;
	}
	return 0;
}

/* Leave the finished directory at the top of the stack for its parent,
 * reopening the parent with ".." when its descriptor was closed: it must
 * be the directory the walk came from. */
static int pop(struct walk *w, struct cj_err *err)
{
	struct frame *f = &w->frames[w->n - 1], *parent = &w->frames[w->n - 2];

	if (parent->fd < 0) {
		struct stat st;
		int up = openat(f->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (up < 0 || fstat(up, &st) < 0) {
			int e = errno;
			if (up >= 0)
				close(up);
			return cj_fail(err, e, "walk back up from '/%.200s'", w->path);
		}
		if (st.st_dev != parent->st.st_dev || st.st_ino != parent->st.st_ino) {
			close(up);
			return cj_fail(
			    err, 0, "the tree changed while it was walked (at '/%.200s')", w->path);
		}
		parent->fd = up;
	}
	close(f->fd);
	f->fd = -1;
	free(f->names);
	f->names = NULL;
	w->n--;
	return 0;
}

struct visitors {
	cj_tree_visit_fn pre, post, mount;
	void *ctx;
};

/* The entry name in directory dirfd, whose path (w->path) is pathlen long. */
static struct cj_tree_entry entry_at(const struct walk *w, int dirfd, const char *name,
                                     size_t pathlen, const struct stat *st)
{
	return (struct cj_tree_entry){.dirfd = dirfd,
	                              .name = name,
	                              .path = w->path,
	                              .pathlen = pathlen,
	                              .depth = (unsigned)w->n,
	                              .st = st};
}

/* Tell v->mount (when given) about an entry of another mount: its name is
 * appended to the path for the call only. */
static int report_mount(struct walk *w, const struct frame *f, const char *name,
                        const struct stat *st, const struct visitors *v, struct cj_err *err)
{
	struct cj_tree_entry e;
	size_t len;
	int r;

	if (!v->mount)
		return 0;
	if (path_append(w, f->pathlen, name, &len) < 0)
		return cj_fail(err, ENOMEM, "walk");
	e = entry_at(w, f->fd, name, len, st);
	r = v->mount(&e, v->ctx, err);
	w->path[f->pathlen] = '\0';
	return r < 0 ? -1 : 0;
}

static int walk_loop(struct walk *w, unsigned max_depth, const struct visitors *v,
                     struct cj_err *err)
{
	while (w->n) {
		struct frame *f = &w->frames[w->n - 1];
		struct cj_tree_entry e;
		struct stat st;
		const char *name;
		uint64_t mnt_id;
		bool have_mnt_id;
		size_t len;
		int next, fd;

		if (f->pos == f->len) { /* this directory is done */
			if (w->n == 1)
				return 0;
			if (pop(w, err) < 0)
				return -1;
			/* f is the popped frame: its path is still in w->path */
			e = entry_at(w, w->frames[w->n - 1].fd, w->path + f->name_off, f->pathlen,
			             &f->st);
			if (v->post && v->post(&e, v->ctx, err) < 0)
				return -1;
			w->path[w->frames[w->n - 1].pathlen] = '\0';
			continue;
		}
		name = f->names + f->pos;
		f->pos += strlen(name) + 1;
		if (entry_stat(f->fd, name, 0, &st, &mnt_id, &have_mnt_id) < 0) {
			if (errno == ENOENT)
				continue; /* gone since the directory was read */
			return cj_fail(err, errno, "read '/%.200s%s%.200s'", w->path,
			               f->pathlen ? "/" : "", name);
		}
		if (other_mount(w, &st, mnt_id, have_mnt_id)) {
			/* another file system mounted here: not this tree's */
			if (report_mount(w, f, name, &st, v, err) < 0)
				return -1;
			continue;
		}
		if (w->n > max_depth)
			return cj_fail(
			    err, 0, "the tree is nested deeper than %u levels (below '/%.80s...')",
			    max_depth, w->path);
		if (path_append(w, f->pathlen, name, &len) < 0)
			return cj_fail(err, ENOMEM, "walk");
		e = entry_at(w, f->fd, name, len, &st);
		next = v->pre ? v->pre(&e, v->ctx, err) : CJ_TREE_DESCEND;
		if (next < 0)
			return -1;
		if (next != CJ_TREE_DESCEND || !S_ISDIR(st.st_mode)) {
			w->path[f->pathlen] = '\0';
			continue;
		}
		fd = openat(f->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return cj_fail(err, errno, "open '/%.200s'", w->path);
		if (push(w, fd, &st, len, len - strlen(name)) < 0)
			return cj_fail(err, errno, "read directory '/%.200s'", w->path);
	}
	return 0;
}

int cj_tree_walk_mounts(int root_fd, unsigned max_depth, cj_tree_visit_fn pre,
                        cj_tree_visit_fn post, cj_tree_visit_fn mount, void *ctx,
                        struct cj_err *err)
{
	const struct visitors v = {.pre = pre, .post = post, .mount = mount, .ctx = ctx};
	struct walk w = {0};
	struct stat st;
	int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), next, r = -1;

	if (fd < 0)
		return cj_fail(err, errno, "open the tree");
	errno = 0;
	if (entry_stat(fd, "", AT_EMPTY_PATH, &st, &w.mnt_id, &w.have_mnt_id) < 0 ||
	    !(w.path = calloc(1, w.pathcap = 256)) || !(w.dents = malloc(DENTS_SIZE))) {
		int e = errno ? errno : ENOMEM;
		close(fd);
		free(w.path);
		return cj_fail(err, e, "open the tree");
	}
	w.dev = st.st_dev;
	struct cj_tree_entry root = {
	    .dirfd = fd, .name = ".", .path = w.path, .pathlen = 0, .depth = 0, .st = &st};
	next = pre ? pre(&root, ctx, err) : CJ_TREE_DESCEND;
	if (next == CJ_TREE_DESCEND) {
		if (push(&w, fd, &st, 0, 0) < 0)
			cj_fail(err, errno, "read the tree's top directory");
		else
			r = walk_loop(&w, max_depth, &v, err);
	} else {
		close(fd);
		r = next < 0 ? -1 : 0;
	}
	for (size_t i = 0; i < w.n; i++) {
		if (w.frames[i].fd >= 0)
			close(w.frames[i].fd);
		free(w.frames[i].names);
	}
	free(w.frames);
	free(w.path);
	free(w.dents);
	return r;
}

int cj_tree_walk(int root_fd, unsigned max_depth, cj_tree_visit_fn pre, cj_tree_visit_fn post,
                 void *ctx, struct cj_err *err)
{
	return cj_tree_walk_mounts(root_fd, max_depth, pre, post, NULL, ctx, err);
}

/* ---- removal ------------------------------------------------------------------ */

static int remove_pre(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	(void)ctx;
	if (e->depth == 0 || S_ISDIR(e->st->st_mode))
		return CJ_TREE_DESCEND;
	if (unlinkat(e->dirfd, e->name, 0) < 0 && errno != ENOENT)
		return cj_fail(err, errno, "remove '/%.200s'", e->path);
	return CJ_TREE_SKIP;
}

static int remove_post(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	(void)ctx;
	if (unlinkat(e->dirfd, e->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return cj_fail(err, errno, "remove '/%.200s'", e->path);
	return 0;
}

int cj_tree_remove_at(int dirfd, const char *name)
{
	struct cj_err err = {0};
	struct stat st, got;
	cj_autoclose int fd = -1;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &got) < 0 || got.st_dev != st.st_dev || got.st_ino != st.st_ino) {
		errno = ESTALE;
		return -1;
	}
	if (cj_tree_walk(fd, UINT_MAX, remove_pre, remove_post, NULL, &err) < 0) {
		errno = err.errnum ? err.errnum : EIO;
		return -1;
	}
	return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

int cj_tree_remove(const char *path)
{
	const char *slash = strrchr(path, '/');
	cj_autofree char *dir = NULL;
	cj_autoclose int dfd = -1;

	if (!slash)
		return cj_tree_remove_at(AT_FDCWD, path);
	if (!slash[1]) {
		errno = EINVAL; /* name the tree, not "dir/" */
		return -1;
	}
	dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -1;
	return cj_tree_remove_at(dfd, slash + 1); /* cj_closep keeps its errno */
}
