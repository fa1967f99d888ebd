/* SPDX-License-Identifier: Apache-2.0 */
#include "base.h"

#include "image/tree.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bumped whenever the image layout changes, so old cache entries are not reused. */
#define BASE_FORMAT "ext4-ro-v1"

struct walk_state {
	struct cj_hash *hash; /* NULL: only count */
	const char *dir;      /* the tree's path, as the key hashes it */
	bool shallow;
	uint64_t bytes;
	uint64_t inodes;
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

/* Hash and count one entry; the walk is iterative and depth-bounded
 * (tree.c), and visits what nftw(FTW_PHYS | FTW_MOUNT) would, in the same
 * order with the same paths, so the cache keys did not change. */
static int walk_entry(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct walk_state *ws = ctx;
	const struct stat *st = e->st;
	char rec[256];
	int n;

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
	ws->bytes += (uint64_t)st->st_blocks * 512;
	ws->inodes++;
	if (ws->shallow && e->depth >= 1)
		return CJ_TREE_SKIP;
	return CJ_TREE_DESCEND;
}

int cj_ext4_uuid(const char *path, uint8_t uuid[16], struct cj_err *err)
{
	uint8_t sb[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "open image %s", path);
	if (pread(fd, sb, sizeof sb, 1024) != (ssize_t)sizeof sb) {
		close(fd);
		return cj_fail(err, EIO, "read superblock of %s", path);
	}
	close(fd);
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

static int run_mke2fs(const char *dir, const char *tmp, uint64_t size_kib, uint64_t inodes,
                      const char *uuid, struct cj_err *err)
{
	char size_arg[32], inode_arg[32];
	char *argv[] = {"mke2fs",    "-q",        "-F",           "-t", "ext4", "-b",
	                "4096",      "-O",        "^has_journal", "-m", "0",    "-N",
	                inode_arg,   "-U",        (char *)uuid,   "-L", "ctrj", "-d",
	                (char *)dir, (char *)tmp, size_arg,       NULL};

	snprintf(size_arg, sizeof size_arg, "%lluk", (unsigned long long)size_kib);
	snprintf(inode_arg, sizeof inode_arg, "%llu", (unsigned long long)inodes);
	unlink(tmp);
	return cj_run(argv, NULL, err);
}

static int build_image(const char *dir, const char *dest, const struct walk_state *ws,
                       struct cj_err *err)
{
	char tmp[PATH_MAX + 16], uuid_str[37];
	uint8_t uuid[16];
	/* Data plus a fifth for metadata, never below 16 MiB. mke2fs -d cannot
	 * grow the image, so a failure retries with more room. */
	uint64_t size_kib = (ws->bytes + ws->bytes / 5) / 1024 + ws->inodes * 4 + 16 * 1024;
	uint64_t inodes = ws->inodes + ws->inodes / 4 + 64;

	if (getrandom(uuid, sizeof uuid, 0) != (ssize_t)sizeof uuid)
		return cj_fail(err, errno, "getrandom");
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
	format_uuid(uuid, uuid_str);
	snprintf(tmp, sizeof tmp, "%s.tmp", dest);
	for (int attempt = 0;; attempt++) {
		if (run_mke2fs(dir, tmp, size_kib, inodes, uuid_str, err) == 0)
			break;
		if (attempt == 3) {
			unlink(tmp);
			return cj_err_wrap(err, "build filesystem image of %s", dir);
		}
		size_kib *= 2;
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

/* Walk dir; the error names it. */
static int walk(const char *dir, struct walk_state *ws, struct cj_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0)
		return cj_fail(err, errno, "read %s", dir);
	ws->dir = dir;
	r = cj_tree_walk(fd, CJ_TREE_MAX_DEPTH, walk_entry, NULL, ws, err);
	close(fd);
	return r;
}

int cj_tree_image_get(const char *cache_dir, const char *subdir, const char *tag, const char *dir,
                      bool shallow_key, struct cj_fsimage *out, struct cj_err *err)
{
	struct walk_state ws = {.hash = cj_hash_new(), .shallow = shallow_key};
	char key[65], folder[PATH_MAX], lock[PATH_MAX + 80];
	struct stat st;
	int lock_fd, r;

	memset(out, 0, sizeof *out);
	cj_hash_update(ws.hash, BASE_FORMAT, sizeof BASE_FORMAT);
	cj_hash_update(ws.hash, tag, strlen(tag) + 1);
	r = walk(dir, &ws, err);
	cj_hash_final_hex(ws.hash, key);
	ws.hash = NULL;
	if (r != 0)
		return cj_err_wrap(err, "%s", dir);

	snprintf(folder, sizeof folder, "%s/%s", cache_dir, subdir);
	if (cj_mkdir_p(folder, 0700, err) < 0)
		return cj_err_wrap(err, "cache");
	snprintf(out->path, sizeof out->path, "%s/%s.ext4", folder, key);
	if (stat(out->path, &st) == 0)
		return cj_ext4_uuid(out->path, out->uuid, err);

	/* Concurrent starts of the same rootfs build it once. */
	snprintf(lock, sizeof lock, "%s/%s.lock", folder, key);
	lock_fd = cj_lock_file(lock, err);
	if (lock_fd < 0)
		return -1;
	r = 0;
	if (stat(out->path, &st) < 0) {
		if (shallow_key) { /* the key walk did not see everything: size it now */
			ws = (struct walk_state){0};
			if (walk(dir, &ws, err) != 0) {
				unlink(lock);
				close(lock_fd);
				return cj_err_wrap(err, "%s", dir);
			}
		}
		r = build_image(dir, out->path, &ws, err);
		out->built = r == 0;
	}
	unlink(lock);
	close(lock_fd);
	if (r < 0)
		return -1;
	return cj_ext4_uuid(out->path, out->uuid, err);
}

int cj_dir_image_build(const char *dir, const char *dest, struct cj_err *err)
{
	struct walk_state ws = {0};

	if (walk(dir, &ws, err) != 0)
		return -1;
	return build_image(dir, dest, &ws, err);
}

int cj_base_image_get(const char *cache_dir, const char *rootfs, struct cj_fsimage *out,
                      struct cj_err *err)
{
	struct stat st;
	char real[PATH_MAX];

	if (stat(rootfs, &st) < 0)
		return cj_fail(err, errno, "rootfs %s", rootfs);
	if (!S_ISDIR(st.st_mode))
		return cj_fail(err, 0,
		               "rootfs %s is not a directory: give the folder holding the "
		               "container's root filesystem",
		               rootfs);
	if (!realpath(rootfs, real))
		return cj_fail(err, errno, "rootfs %s", rootfs);
	return cj_tree_image_get(cache_dir, "base", real, real, false, out, err);
}
