/* SPDX-License-Identifier: Apache-2.0 */
/* Base image cache: a rootfs directory becomes a read-only ext4 image built
 * with `mke2fs -d` (no root, no loop mount), stored under a key derived from
 * the tree's metadata and reused while the tree is unchanged. */
#ifndef CJ_IMAGE_BASE_H
#define CJ_IMAGE_BASE_H

#include "util/err.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cj_fsimage {
	char path[PATH_MAX];
	uint8_t uuid[16];
	bool built; /* false: taken from the cache */
};

/* Read-only images the guest's overlay stacks, lowest first. */
#define CJ_IMAGE_MAX_LAYER_DRIVES 16u
struct cj_layer_stack {
	struct cj_fsimage layers[CJ_IMAGE_MAX_LAYER_DRIVES];
	size_t n;
	size_t merged; /* image layers in layers[0] (1: none merged) */
	size_t built;  /* images built by this call */
};

/* Build or reuse the image of rootfs (a directory): a full base image in
 * cache_dir/base, or, after a change to a tree built before, the last
 * base with delta images on top (delta.h). out->layers[0] is the base. */
int cj_base_image_get(const char *cache_dir, const char *rootfs, struct cj_layer_stack *out,
                      struct cj_err *err);

/* Build or reuse a read-only ext4 image of dir at cache_dir/subdir/<key>.ext4,
 * with key derived from tag and the tree's metadata. shallow_key looks only
 * at the top level (for trees that change only as a whole, such as a
 * kernel's modules, whose modules.dep depmod rewrites on any change). */
int cj_tree_image_get(const char *cache_dir, const char *subdir, const char *tag, const char *dir,
                      bool shallow_key, struct cj_fsimage *out, struct cj_err *err);

/* The same for a tree that changes only as a whole (a kernel's modules),
 * keyed by its contents (paths, modes, owners, bytes), so every copy of
 * one tree shares one image; the content key is remembered under the
 * shallow metadata key (a memo in cache_dir/subdir/ids), so the contents
 * are read once per copy. */
int cj_tree_image_get_by_content(const char *cache_dir, const char *subdir, const char *tag,
                                 const char *dir, struct cj_fsimage *out, struct cj_err *err);

/* Build a read-only ext4 image of dir at dest (written to dest.tmp, then
 * renamed), with no cache key: for callers that key it themselves, such as
 * images keyed by their digest. Callers serialise builds of one dest (a
 * lock file that stays, as cj_tree_image_get and cj_image_base_get hold). */
int cj_dir_image_build(const char *dir, const char *dest, struct cj_err *err);

/* The same with the walk's estimate of data bytes and inodes replaced by
 * these (exposed for tests: an estimate short of what mke2fs needs). */
int cj_dir_image_build_sized(const char *dir, const char *dest, uint64_t bytes, uint64_t inodes,
                             struct cj_err *err);

/* Read the UUID of an ext4 image's superblock. */
int cj_ext4_uuid(const char *path, uint8_t uuid[16], struct cj_err *err);

/* Can mke2fs -d copy a file whose path below the tree's top is len bytes
 * long? (No for one length: see base.c.) Trees deeper than
 * CJ_TREE_MAX_DEPTH (tree.h) are refused too. */
bool cj_mke2fs_path_ok(size_t len);

#endif
