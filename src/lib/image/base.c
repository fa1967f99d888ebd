/* SPDX-License-Identifier: Apache-2.0 */
#include "base.h"

#include "cache/cache.h"
#include "image/delta.h"
#include "image/tree.h"
#include "util/interrupt.h"
#include "util/progress.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bumped whenever the image layout changes, so old cache entries are not reused. */
#define BASE_FORMAT "ext4-ro-v1"

struct walk_state {
	struct cj_hash *hash; /* NULL: only count */
	char *manifest;       /* when set: "path\0rec\0" of every entry (delta.h) */
	size_t mlen, mcap;
	bool want_manifest;
	bool oom;
	const char *dir; /* the tree's path, as the key hashes it */
	bool shallow;
	uint64_t bytes;
	uint64_t inodes;
};

/* The tree as mke2fs -d reads it. mke2fs copies whatever it finds below
 * the directory, mounts included (a bind mount inside a rootfs landed in
 * its image, unsized and outside the key), so where it can ctr-jailer
 * hands it a detached clone of the tree's own mount: nothing mounted
 * inside is in it, and the walk that sizes and keys the image reads the
 * same clone. Cloning needs CAP_SYS_ADMIN; without it the tree is read in
 * place, and a tree with something mounted inside is refused. */
struct tree_view {
	const char *dir; /* the tree's path, for messages */
	int fd;          /* the clone, or the directory itself */
	bool detached;
	char source[64]; /* what mke2fs -d is given for a clone */
};

bool cj_mke2fs_path_ok(size_t len)
{
	/* mke2fs -d (e2fsprogs 1.47.0, Debian 12) keeps the path of the file
	 * it copies, "/a/b" for a/b, in a buffer of 255 bytes doubled when a
	 * longer path comes: it checks "length + 1 > size" but writes length
	 * + 1 bytes, one past the end when the path is exactly as long as the
	 * buffer. glibc rounds every size the buffer takes (255, 510, 1020,
	 * 2040, 4080...) up into slack except 2040 (2040 + 8 is a whole chunk),
	 * where the byte lands on the next chunk's header: "realloc(): invalid
	 * next size", a heap corruption in a root process driven by image names.
	 * A chain of 1020 one-letter directories reaches it; so does any other
	 * path of that length. Refused here, before mke2fs runs. */
	return len + 1 != 2040;
}

static uint64_t round_block(uint64_t n)
{
	return (n + 4095) & ~(uint64_t)4095;
}

/* The data blocks mke2fs gives the entry in a 4 KiB-block ext4: what it
 * takes here, and at least a block for a file with data (compressed or
 * inline data on the source takes less) and for every directory; a
 * symlink longer than 59 bytes is not stored in its inode. */
static uint64_t entry_bytes(const struct stat *st)
{
	uint64_t held = round_block((uint64_t)st->st_blocks * 512);

	if (S_ISREG(st->st_mode))
		return st->st_size > 0 && held < 4096 ? 4096 : held;
	if (S_ISDIR(st->st_mode)) {
		uint64_t size = round_block((uint64_t)st->st_size);
		held = held > size ? held : size;
		return held < 4096 ? 4096 : held;
	}
	if (S_ISLNK(st->st_mode))
		return st->st_size > 59 ? 4096 : 0;
	return 0;
}

static void manifest_add(struct walk_state *ws, const char *path, size_t plen, const char *rec,
                         size_t rlen)
{
	if (ws->mlen + plen + rlen + 2 > ws->mcap) {
		size_t cap = ws->mcap ? 2 * ws->mcap : 1 << 16;
		while (cap < ws->mlen + plen + rlen + 2)
			cap *= 2;
		char *grown = realloc(ws->manifest, cap);
		if (!grown) {
			ws->oom = true;
			return;
		}
		ws->manifest = grown;
		ws->mcap = cap;
	}
	memcpy(ws->manifest + ws->mlen, path, plen);
	ws->manifest[ws->mlen + plen] = '\0';
	ws->mlen += plen + 1;
	memcpy(ws->manifest + ws->mlen, rec, rlen);
	ws->manifest[ws->mlen + rlen] = '\0';
	ws->mlen += rlen + 1;
}

/* Hash and count one entry; the walk is iterative and depth-bounded
 * (tree.c), and visits what nftw(FTW_PHYS | FTW_MOUNT) would on one file
 * system, in the same order with the same paths, so the cache keys of such
 * trees did not change; on an overlayfs it visits every file, which nftw
 * did not. */
static int walk_entry(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct walk_state *ws = ctx;
	const struct stat *st = e->st;
	char rec[256];
	int n;

	if (cj_interrupted())
		return cj_fail(err, 0, "interrupted");
	if (!cj_mke2fs_path_ok(e->pathlen))
		return cj_fail(err, 0,
		               "the path '/%.60s...' is %zu bytes long, which mke2fs -d "
		               "mishandles (a heap overflow in e2fsprogs 1.47.0): refused",
		               e->path, e->pathlen);
	n = snprintf(rec, sizeof rec, "%o %u %u %llu %lld.%ld %lld.%ld %llu %llu|",
	             (unsigned)st->st_mode, (unsigned)st->st_uid, (unsigned)st->st_gid,
	             (unsigned long long)st->st_size, (long long)st->st_mtim.tv_sec,
	             st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec,
	             (unsigned long long)st->st_ino, (unsigned long long)st->st_rdev);
	if (ws->hash) {
		cj_hash_update(ws->hash, ws->dir, strlen(ws->dir));
		if (e->pathlen) {
			cj_hash_update(ws->hash, "/", 1);
			cj_hash_update(ws->hash, e->path, e->pathlen);
		}
		cj_hash_update(ws->hash, "", 1);
		cj_hash_update(ws->hash, rec, (size_t)n);
	}
	if (ws->want_manifest)
		manifest_add(ws, e->path, e->pathlen, rec, (size_t)n);
	ws->bytes += entry_bytes(st);
	ws->inodes++;
	if (ws->shallow && e->depth >= 1)
		return CJ_TREE_SKIP;
	return CJ_TREE_DESCEND;
}

int cj_ext4_uuid(const char *path, uint8_t uuid[16], struct cj_err *err)
{
	uint8_t sb[256];
	cj_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "open image %s", path);
	if (pread(fd, sb, sizeof sb, 1024) != (ssize_t)sizeof sb)
		return cj_fail(err, EIO, "read superblock of %s", path);
	if (sb[0x38] != 0x53 || sb[0x39] != 0xEF)
		return cj_fail(err, 0, "%s is not an ext4 image", path);
	memcpy(uuid, sb + 0x68, 16);
	return 0;
}

static void format_uuid(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
	         u[13], u[14], u[15]);
}

/* Another file system mounted inside a tree read in place: mke2fs would
 * copy it, unsized and outside the key. */
static int refuse_mount(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	const struct walk_state *ws = ctx;

	return cj_fail(err, 0,
	               "%s has another file system mounted at '/%.200s': its image holds the "
	               "tree's own file system only, which takes CAP_SYS_ADMIN to separate "
	               "(run as root, or unmount it)",
	               ws->dir, e->path);
}

static int view_open(const char *dir, struct tree_view *v, struct cj_err *err)
{
	memset(v, 0, sizeof *v);
	v->dir = dir;
	v->fd = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (v->fd >= 0) {
		v->detached = true;
		snprintf(v->source, sizeof v->source, "/proc/self/fd/%d/.", v->fd);
		return 0;
	}
	/* EPERM: no CAP_SYS_ADMIN; ENOSYS: before Linux 5.2, or a seccomp
	 * filter; EINVAL: an unbindable mount. Read in place. */
	if (errno != EPERM && errno != ENOSYS && errno != EINVAL && errno != EACCES)
		return cj_fail(err, errno, "read %s", dir);
	v->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->fd < 0)
		return cj_fail(err, errno, "read %s", dir);
	return 0;
}

static void view_close(struct tree_view *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

/* Walk the view; the error names the tree. */
static int view_walk(const struct tree_view *v, struct walk_state *ws, struct cj_err *err)
{
	ws->dir = v->dir;
	return cj_tree_walk_mounts(v->fd, CJ_TREE_MAX_DEPTH, walk_entry, NULL,
	                           v->detached ? NULL : refuse_mount, ws, err);
}

static int run_mke2fs(const struct tree_view *v, const char *tmp, uint64_t size_kib,
                      uint64_t inodes, const char *uuid, struct cj_err *err)
{
	char size_arg[32], inode_arg[32];
	const char *source = v->detached ? v->source : v->dir;
	char *argv[] = {"mke2fs",       "-q",        "-F",           "-t", "ext4", "-b",
	                "4096",         "-O",        "^has_journal", "-m", "0",    "-N",
	                inode_arg,      "-U",        (char *)uuid,   "-L", "ctrj", "-d",
	                (char *)source, (char *)tmp, size_arg,       NULL};
	int r;

	snprintf(size_arg, sizeof size_arg, "%lluk", (unsigned long long)size_kib);
	snprintf(inode_arg, sizeof inode_arg, "%llu", (unsigned long long)inodes);
	unlink(tmp);
	/* mke2fs reads the clone through its own descriptor table: the
	 * descriptor is inherited for this one spawn. */
	if (v->detached && fcntl(v->fd, F_SETFD, 0) < 0)
		return cj_fail(err, errno, "build filesystem image of %s", v->dir);
	r = cj_run(argv, NULL, err);
	if (v->detached)
		fcntl(v->fd, F_SETFD, FD_CLOEXEC);
	return r;
}

/* mke2fs ran out of inodes or blocks (its words), which more room fixes;
 * any other failure, more room would not. */
static bool out_of_room(const struct cj_err *err)
{
	static const char *const words[] = {
	    "Could not allocate", "No free space in the directory", "Not enough space",
	    "Insufficient space", "too big for a filesystem",       "Ran out of",
	};

	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strstr(err->msg, words[i]))
			return true;
	return false;
}

/* Data plus a fifth for metadata, 4 KiB an inode (its share of the inode
 * table and of a directory block), never below 16 MiB. */
static uint64_t image_kib(uint64_t bytes, uint64_t inodes)
{
	return (bytes + bytes / 5) / 1024 + inodes * 4 + 16 * 1024;
}

/* mke2fs reports nothing while it copies: a thread follows the image's
 * allocated bytes for the progress line. */
struct build_watch {
	const char *tmp;
	struct cj_progress *p;
	uint64_t seen;
	volatile bool stop;
	pthread_t thread;
	bool running;
};

static void *watch_main(void *arg)
{
	struct build_watch *w = arg;
	struct timespec tick = {0, 200000000};
	struct stat st;

	while (!w->stop) {
		if (stat(w->tmp, &st) == 0 && (uint64_t)st.st_blocks * 512 > w->seen) {
			cj_progress_add(w->p, (uint64_t)st.st_blocks * 512 - w->seen);
			w->seen = (uint64_t)st.st_blocks * 512;
		}
		nanosleep(&tick, NULL);
	}
	return NULL;
}

static void watch_start(struct build_watch *w, const char *tmp, const char *dir, uint64_t bytes)
{
	char what[96];

	snprintf(what, sizeof what, "build image of %.60s", dir);
	*w = (struct build_watch){.tmp = tmp};
	if (!(w->p = cj_progress_start(what, CJ_PROGRESS_BYTES, bytes)))
		return;
	w->running = pthread_create(&w->thread, NULL, watch_main, w) == 0;
}

static void watch_end(struct build_watch *w, bool ok)
{
	if (w->running) {
		w->stop = true;
		pthread_join(w->thread, NULL);
	}
	cj_progress_end(w->p, ok);
}

/* The walk sized the image; mke2fs -d cannot grow it, so when the tree
 * still did not fit (it grew since, or its files take more blocks here
 * than where they are, as compressed ones do) the next attempt has four
 * times the inodes (up to 256 times) and at least twice the room (up to
 * 16 times): running out is never the user's error. */
#define BUILD_ATTEMPTS 5

static int build_image(const struct tree_view *v, const char *dest, const struct walk_state *ws,
                       struct cj_err *err)
{
	char tmp[PATH_MAX + 16], uuid_str[37];
	uint8_t uuid[16];
	uint64_t inodes = ws->inodes + ws->inodes / 4 + 64, size_kib = image_kib(ws->bytes, inodes);

	if (getrandom(uuid, sizeof uuid, 0) != (ssize_t)sizeof uuid)
		return cj_fail(err, errno, "getrandom");
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
	format_uuid(uuid, uuid_str);
	snprintf(tmp, sizeof tmp, "%s.tmp", dest);
	for (int attempt = 1;; attempt++) {
		struct build_watch watch;
		watch_start(&watch, tmp, v->dir, ws->bytes);
		int r = run_mke2fs(v, tmp, size_kib, inodes, uuid_str, err);
		watch_end(&watch, r == 0 && !cj_interrupted());
		if (cj_interrupted()) { /* mke2fs got Ctrl-C too, or ran to its end */
			unlink(tmp);
			return cj_fail(err, 0, "build filesystem image of %s: interrupted", v->dir);
		}
		if (r == 0)
			break;
		if (attempt == BUILD_ATTEMPTS || !out_of_room(err)) {
			unlink(tmp);
			return cj_err_wrap(err, "build filesystem image of %s", v->dir);
		}
		inodes *= 4;
		size_kib = image_kib(ws->bytes, inodes) > 2 * size_kib
		               ? image_kib(ws->bytes, inodes)
		               : 2 * size_kib;
	}
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	if (rename(tmp, dest) < 0) {
		int e = errno;
		unlink(tmp);
		return cj_fail(err, e, "store image %s", dest);
	}
	return 0;
}

/* The image at cache_dir/subdir/<key>.ext4, built from the view when
 * missing; ws sizes it (NULL: walk the tree for that first). */
static int image_by_key_as(const char *cache_dir, const char *subdir, const char *key,
                           const struct tree_view *view, const struct walk_state *sized,
                           bool locked, struct cj_fsimage *out, struct cj_err *err)
{
	char folder[PATH_MAX], lock[PATH_MAX + 80];
	struct walk_state ws = {0};
	struct stat st;
	cj_autoclose int lock_fd = -1;

	snprintf(folder, sizeof folder, "%s/%s", cache_dir, subdir);
	if (cj_mkdir_p(folder, 0700, err) < 0)
		return cj_err_wrap(err, "cache");
	snprintf(out->path, sizeof out->path, "%s/%s.ext4", folder, key);
	if (stat(out->path, &st) == 0)
		return cj_ext4_uuid(out->path, out->uuid, err);

	/* Concurrent starts of the same rootfs build it once. The lock file
	 * stays: unlinking it while another start waits on it would let a
	 * third start take a new one and build alongside. */
	snprintf(lock, sizeof lock, "%s/%s.lock", folder, key);
	if (!locked && (lock_fd = cj_lock_file(lock, err)) < 0)
		return -1;
	if (stat(out->path, &st) < 0) {
		if (!sized) { /* the key walk did not see everything: size it now */
			if (view_walk(view, &ws, err) != 0)
				return cj_err_wrap(err, "%s", view->dir);
			sized = &ws;
		}
		if (build_image(view, out->path, sized, err) < 0)
			return -1;
		out->built = true;
	}
	return cj_ext4_uuid(out->path, out->uuid, err);
}

static int image_by_key(const char *cache_dir, const char *subdir, const char *key,
                        const struct tree_view *view, const struct walk_state *sized,
                        struct cj_fsimage *out, struct cj_err *err)
{
	return image_by_key_as(cache_dir, subdir, key, view, sized, false, out, err);
}

/* The metadata key of the view (and its size, in ws). */
static int view_key(const char *tag, const struct tree_view *view, struct walk_state *ws,
                    char key[65], struct cj_err *err)
{
	int r;

	ws->hash = cj_hash_new();
	cj_hash_update(ws->hash, BASE_FORMAT, sizeof BASE_FORMAT);
	cj_hash_update(ws->hash, tag, strlen(tag) + 1);
	r = view_walk(view, ws, err);
	cj_hash_final_hex(ws->hash, key);
	ws->hash = NULL;
	return r != 0 ? cj_err_wrap(err, "%s", view->dir) : 0;
}

/* cj_tree_image_get on an open view of the tree. */
static int tree_image_get(const char *cache_dir, const char *subdir, const char *tag,
                          const struct tree_view *view, bool shallow_key, struct cj_fsimage *out,
                          struct cj_err *err)
{
	struct walk_state ws = {.shallow = shallow_key};
	char key[65];

	if (view_key(tag, view, &ws, key, err) < 0)
		return -1;
	return image_by_key(cache_dir, subdir, key, view, shallow_key ? NULL : &ws, out, err);
}

/* ---- content keys ------------------------------------------------------------------ */

/* Hash an entry by what an image of it holds: path, type and mode,
 * owner, size, a symlink's target and a file's bytes (not its inode,
 * times or place on the host). */
static int content_entry(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct cj_hash *h = ctx;
	const struct stat *st = e->st;
	char rec[128], buf[1 << 16];
	int n =
	    snprintf(rec, sizeof rec, "%o %u %u %llu|", (unsigned)st->st_mode, (unsigned)st->st_uid,
	             (unsigned)st->st_gid, (unsigned long long)st->st_size);
	ssize_t got;

	cj_hash_update(h, e->path, e->pathlen + 1);
	cj_hash_update(h, rec, (size_t)n);
	if (S_ISLNK(st->st_mode)) {
		got = readlinkat(e->dirfd, e->name, buf, sizeof buf);
		cj_hash_update(h, buf, got > 0 ? (size_t)got : 0);
	} else if (S_ISREG(st->st_mode)) {
		cj_autoclose int fd = openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return cj_fail(err, errno, "read %s", e->path);
		while ((got = read(fd, buf, sizeof buf)) > 0)
			cj_hash_update(h, buf, (size_t)got);
		if (got < 0)
			return cj_fail(err, errno, "read %s", e->path);
	}
	return CJ_TREE_DESCEND;
}

int cj_tree_image_get_by_content(const char *cache_dir, const char *subdir, const char *tag,
                                 const char *dir, struct cj_fsimage *out, struct cj_err *err)
{
	struct walk_state ws = {.shallow = true};
	struct tree_view view;
	char cheap[65], key[65];
	int r;

	memset(out, 0, sizeof *out);
	if (view_open(dir, &view, err) < 0)
		return cj_err_wrap(err, "%s", dir);
	r = view_key(tag, &view, &ws, cheap, err);
	if (r == 0 && cj_cache_memo_get(cache_dir, subdir, cheap, key) != 1) {
		struct cj_hash *h = cj_hash_new();
		cj_hash_update(h, BASE_FORMAT, sizeof BASE_FORMAT);
		cj_hash_update(h, tag, strlen(tag) + 1);
		r = cj_tree_walk(view.fd, CJ_TREE_MAX_DEPTH, content_entry, NULL, h, err);
		cj_hash_final_hex(h, key);
		if (r == 0)
			cj_cache_memo_put(cache_dir, subdir, cheap, key);
		else
			cj_err_wrap(err, "%s", dir);
	}
	if (r == 0)
		r = image_by_key(cache_dir, subdir, key, &view, NULL, out, err);
	view_close(&view);
	return r;
}

int cj_tree_image_get(const char *cache_dir, const char *subdir, const char *tag, const char *dir,
                      bool shallow_key, struct cj_fsimage *out, struct cj_err *err)
{
	struct tree_view view;
	int r;

	memset(out, 0, sizeof *out);
	if (view_open(dir, &view, err) < 0)
		return cj_err_wrap(err, "%s", dir);
	r = tree_image_get(cache_dir, subdir, tag, &view, shallow_key, out, err);
	view_close(&view);
	return r;
}

int cj_dir_image_build(const char *dir, const char *dest, struct cj_err *err)
{
	struct walk_state ws = {0};
	struct tree_view view;
	int r;

	if (view_open(dir, &view, err) < 0)
		return -1;
	r = view_walk(&view, &ws, err);
	if (r == 0)
		r = build_image(&view, dest, &ws, err);
	view_close(&view);
	return r;
}

int cj_dir_image_build_sized(const char *dir, const char *dest, uint64_t bytes, uint64_t inodes,
                             struct cj_err *err)
{
	struct walk_state ws = {.bytes = bytes, .inodes = inodes};
	struct tree_view view;
	int r;

	if (view_open(dir, &view, err) < 0)
		return -1;
	r = build_image(&view, dest, &ws, err);
	view_close(&view);
	return r;
}

/* The tree's stack: its full base image, or the delta state of its key,
 * or a new delta on the line's last state, or a new full base (delta.h). */
static int rootfs_stack(const char *cache_dir, const char *real, const struct tree_view *view,
                        struct walk_state *ws, const char *key, struct cj_layer_stack *out,
                        struct cj_err *err)
{
	struct cj_delta_in in = {.cache_dir = cache_dir,
	                         .line = real,
	                         .tree_fd = view->fd,
	                         .key = key,
	                         .manifest = ws->manifest,
	                         .manifest_len = ws->mlen,
	                         .bytes = ws->bytes};
	char folder[PATH_MAX], path[PATH_MAX + 80], lock[PATH_MAX + 80];
	struct stat st;
	cj_autoclose int lock_fd = -1;
	int r;

	memset(out, 0, sizeof *out);
	out->merged = out->n = 1;
	snprintf(folder, sizeof folder, "%s/base", cache_dir);
	if (cj_mkdir_p(folder, 0700, err) < 0)
		return cj_err_wrap(err, "cache");
	snprintf(path, sizeof path, "%s/%s.ext4", folder, key);
	if (stat(path, &st) == 0 || (r = cj_delta_stack_load(cache_dir, key, out, err)) == 1) {
		/* a full base, or none yet: the delta, else a full build, under its lock */
		if (stat(path, &st) < 0) {
			snprintf(lock, sizeof lock, "%s/%s.lock", folder, key);
			if ((lock_fd = cj_lock_file(lock, err)) < 0)
				return -1;
			if (stat(path, &st) == 0) /* a concurrent run built it meanwhile */
				return image_by_key_as(cache_dir, "base", key, view, ws, true,
				                       &out->layers[0], err);
			if (cj_delta_stack_load(cache_dir, key, out, err) == 0)
				return 0;
			if (ws->oom || (r = cj_delta_build(&in, out, err)) == 1) {
				out->n = out->merged = 1;
				r = image_by_key_as(cache_dir, "base", key, view, ws, true,
				                    &out->layers[0], err);
				if (r == 0 && out->layers[0].built && !ws->oom)
					cj_delta_record_full(&in);
				out->built = out->layers[0].built;
			}
			return r;
		}
		return image_by_key(cache_dir, "base", key, view, ws, &out->layers[0], err);
	}
	return r;
}

int cj_base_image_get(const char *cache_dir, const char *rootfs, struct cj_layer_stack *out,
                      struct cj_err *err)
{
	struct stat st;
	char real[PATH_MAX], key[65];
	struct walk_state ws = {.want_manifest = true};
	struct tree_view view;
	int r;

	memset(out, 0, sizeof *out);
	if (stat(rootfs, &st) < 0)
		return cj_fail(err, errno, "rootfs %s", rootfs);
	if (!S_ISDIR(st.st_mode))
		return cj_fail(err, 0,
		               "rootfs %s is not a directory: give the folder holding the "
		               "container's root filesystem",
		               rootfs);
	if (!realpath(rootfs, real))
		return cj_fail(err, errno, "rootfs %s", rootfs);
	if (view_open(real, &view, err) < 0)
		return cj_err_wrap(err, "%s", real);
	r = view_key(real, &view, &ws, key, err);
	if (r == 0)
		r = rootfs_stack(cache_dir, real, &view, &ws, key, out, err);
	free(ws.manifest);
	view_close(&view);
	return r;
}
