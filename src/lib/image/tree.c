/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tree walks without recursion (see tree.h). An image decides how deep its
 * tree is: a recursive walk gives it the depth of our stack (base 0181444
 * crashed on a 2040-level chain), and a walk by full paths stops at
 * PATH_MAX (nftw could neither read nor remove a tree below that). Here a
 * directory's names are read at once into one buffer when it is entered,
 * the walk keeps a descriptor of the current directory only, and it climbs
 * back with "..", checking the device and inode it recorded on the way
 * down, so a tree that changed under it stops the walk instead of steering
 * it elsewhere.
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
#include <unistd.h>

struct frame {
	char *names; /* the directory's entries, NUL-separated, read on entry */
	size_t len, pos;
	struct stat st;  /* the directory itself */
	size_t pathlen;  /* length of its path */
	size_t name_off; /* where its own name starts in the path */
};

struct walk {
	struct frame *frames;
	size_t n, cap;
	char *path;
	size_t pathcap;
	dev_t dev; /* the root's file system: never left */
};

/* Read every name of the directory dirfd (its own file description, so
 * the reading does not move anyone's offset). -1 with errno. */
static int read_names(int dirfd, struct frame *f)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;
	size_t cap = 0;
	struct dirent *de;
	DIR *d;

	f->names = NULL;
	f->len = f->pos = 0;
	if (fd < 0)
		return -1;
	if (!(d = fdopendir(fd))) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	for (errno = 0; (de = readdir(d)); errno = 0) {
		size_t n = strlen(de->d_name) + 1;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (f->len + n > cap) {
			size_t ncap = cap ? cap * 2 : 256;
			char *nn;
			while (ncap < f->len + n)
				ncap *= 2;
			if (!(nn = realloc(f->names, ncap))) {
				errno = ENOMEM;
				break;
			}
			f->names = nn;
			cap = ncap;
		}
		memcpy(f->names + f->len, de->d_name, n);
		f->len += n;
	}
	e = errno;
	closedir(d);
	if (e) {
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

static int push(struct walk *w, int fd, const struct stat *st, size_t pathlen, size_t name_off)
{
	struct frame *f;

	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 16;
		struct frame *nf = realloc(w->frames, ncap * sizeof *nf);
		if (!nf) {
			errno = ENOMEM;
			return -1;
		}
		w->frames = nf;
		w->cap = ncap;
	}
	f = &w->frames[w->n];
	if (read_names(fd, f) < 0)
		return -1;
	f->st = *st;
	f->pathlen = pathlen;
	f->name_off = name_off;
	w->n++;
	return 0;
}

/* Climb from the finished directory at the top of the stack to its parent,
 * which must be the directory it was entered from. Returns the parent's
 * descriptor (cur is closed), or -1 (cur stays open). */
static int climb(struct walk *w, int cur, struct cj_err *err)
{
	const struct frame *parent = &w->frames[w->n - 2];
	struct stat st;
	int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (up < 0 || fstat(up, &st) < 0) {
		int e = errno;
		if (up >= 0)
			close(up);
		return cj_fail(err, e, "walk back up to '/%.200s'", w->path);
	}
	if (st.st_dev != parent->st.st_dev || st.st_ino != parent->st.st_ino) {
		close(up);
		return cj_fail(err, 0, "the tree changed while it was walked (at '/%.200s')",
		               w->path);
	}
	close(cur);
	return up;
}

/* Enter the directory name of cur, which fstatat found as *st. */
static int descend(struct walk *w, int cur, const char *name, const struct stat *st, size_t pathlen,
                   struct cj_err *err)
{
	struct stat got;
	int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "open '/%.200s'", w->path);
	if (fstat(fd, &got) < 0 || got.st_dev != st->st_dev || got.st_ino != st->st_ino) {
		close(fd);
		return cj_fail(err, 0, "the tree changed while it was walked (at '/%.200s')",
		               w->path);
	}
	if (push(w, fd, st, pathlen, pathlen - strlen(name)) < 0) {
		int e = errno;
		close(fd);
		return cj_fail(err, e, "read directory '/%.200s'", w->path);
	}
	close(cur);
	return fd;
}

static int walk_loop(struct walk *w, int cur, unsigned max_depth, cj_tree_visit_fn pre,
                     cj_tree_visit_fn post, void *ctx, struct cj_err *err)
{
	while (w->n) {
		struct frame *f = &w->frames[w->n - 1];
		struct cj_tree_entry e;
		struct stat st;
		const char *name;
		size_t len;
		int next;

		if (f->pos == f->len) { /* this directory is done */
			free(f->names);
			f->names = NULL;
			if (w->n == 1) {
				w->n = 0;
				break;
			}
			int up = climb(w, cur, err);
			if (up < 0)
				return cur;
			cur = up;
			w->n--;
			e = (struct cj_tree_entry){.dirfd = cur,
			                           .name = w->path + f->name_off,
			                           .path = w->path,
			                           .pathlen = f->pathlen,
			                           .depth = (unsigned)w->n,
			                           .st = &f->st};
			if (post && post(&e, ctx, err) < 0)
				return cur;
			w->path[w->frames[w->n - 1].pathlen] = '\0';
			continue;
		}
		name = f->names + f->pos;
		f->pos += strlen(name) + 1;
		if (fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* gone since the directory was read */
			cj_fail(err, errno, "read '/%.200s%s%.200s'", w->path,
			        f->pathlen ? "/" : "", name);
			return cur;
		}
		if (st.st_dev != w->dev)
			continue; /* another file system mounted here: not this tree's */
		if (w->n > max_depth) {
			cj_fail(err, 0,
			        "the tree is nested deeper than %u levels (below '/%.80s...')",
			        max_depth, w->path);
			return cur;
		}
		if (path_append(w, f->pathlen, name, &len) < 0) {
			cj_fail(err, ENOMEM, "walk");
			return cur;
		}
		e = (struct cj_tree_entry){.dirfd = cur,
		                           .name = name,
		                           .path = w->path,
		                           .pathlen = len,
		                           .depth = (unsigned)w->n,
		                           .st = &st};
		next = pre ? pre(&e, ctx, err) : CJ_TREE_DESCEND;
		if (next < 0)
			return cur;
		if (next == CJ_TREE_DESCEND && S_ISDIR(st.st_mode)) {
			int fd = descend(w, cur, name, &st, len, err);
			if (fd < 0)
				return cur;
			cur = fd;
			continue;
		}
		w->path[f->pathlen] = '\0';
	}
	close(cur);
	return -1;
}

int cj_tree_walk(int root_fd, unsigned max_depth, cj_tree_visit_fn pre, cj_tree_visit_fn post,
                 void *ctx, struct cj_err *err)
{
	struct walk w = {0};
	struct stat st;
	int cur = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), next, left;

	if (cur < 0)
		return cj_fail(err, errno, "open the tree");
	if (fstat(cur, &st) < 0 || !(w.path = calloc(1, w.pathcap = 256))) {
		int e = errno ? errno : ENOMEM;
		close(cur);
		return cj_fail(err, e, "open the tree");
	}
	w.dev = st.st_dev;
	struct cj_tree_entry root = {
	    .dirfd = cur, .name = ".", .path = w.path, .pathlen = 0, .depth = 0, .st = &st};
	next = pre ? pre(&root, ctx, err) : CJ_TREE_DESCEND;
	if (next == CJ_TREE_DESCEND && push(&w, cur, &st, 0, 0) < 0)
		next = cj_fail(err, errno, "read the tree's top directory");
	if (next != CJ_TREE_DESCEND) {
		close(cur);
		free(w.path);
		free(w.frames);
		return next < 0 ? -1 : 0;
	}
	/* walk_loop returns -1 once the walk is complete, else the descriptor
	 * it stopped at, with err filled. */
	left = walk_loop(&w, cur, max_depth, pre, post, ctx, err);
	if (left >= 0)
		close(left);
	for (size_t i = 0; i < w.n; i++)
		free(w.frames[i].names);
	free(w.frames);
	free(w.path);
	return left >= 0 ? -1 : 0;
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
	int fd, r;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &got) < 0 || got.st_dev != st.st_dev || got.st_ino != st.st_ino) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	r = cj_tree_walk(fd, UINT_MAX, remove_pre, remove_post, NULL, &err);
	close(fd);
	if (r < 0) {
		errno = err.errnum ? err.errnum : EIO;
		return -1;
	}
	return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

int cj_tree_remove(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int dfd, r, e;

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
	free(dir);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -1;
	r = cj_tree_remove_at(dfd, slash + 1);
	e = errno;
	close(dfd);
	errno = e;
	return r;
}
