/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Incremental root filesystem images (--rootfs DIR).
 *
 * A full build of a tree saves its manifest next to its image
 * (base/<key>.manifest: every entry's path and the metadata its key hashes:
 * mode, owner, size, mtime, ctime, inode, device) and records the tree's
 * last state in base/lines/<digest of the tree's path>. When the tree has
 * changed since (its key is new), the entries whose metadata differ from
 * the last state's manifest, new ones and deleted ones (as overlayfs
 * whiteouts; a directory that was replaced is made opaque) go into a delta
 * image, deltas/<key>.ext4, stacked on the last state's images
 * (deltas/<key>.stack lists them, lowest first). The parent directories of
 * a changed entry go in too, with their own metadata (overlayfs shows the
 * highest layer's directory). A delta is written as a tar with libarchive
 * and applied by layer.c, whose containment and whiteout rules it shares.
 *
 * Compaction: a new full base is built instead when the last state already
 * has CJ_DELTA_MAX deltas, when the delta would hold more than a quarter of
 * the base's bytes, or when not root (owners, whiteouts and trusted.*
 * attributes need it).
 */
#ifndef CJ_IMAGE_DELTA_H
#define CJ_IMAGE_DELTA_H

#include "image/base.h"
#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

#define CJ_DELTA_MAX 4

struct cj_delta_in {
	const char *cache_dir;
	const char *line;     /* the tree's real path */
	int tree_fd;          /* the tree (a detached clone, or the directory) */
	const char *key;      /* the tree's key now */
	const char *manifest; /* "path\0rec\0" pairs, in walk order */
	size_t manifest_len;
	uint64_t bytes; /* the tree's data bytes, as the walk sized them */
};

/* The stack of the state key when it is a delta state: 0 and out filled, 1
 * when there is none (or one of its images is gone). */
int cj_delta_stack_load(const char *cache_dir, const char *key, struct cj_layer_stack *out,
                        struct cj_err *err);

/* Build the delta of the tree against its line's last state: 0 and out
 * filled, 1 when a full build is due instead (see above), -1 on error. */
int cj_delta_build(const struct cj_delta_in *in, struct cj_layer_stack *out, struct cj_err *err);

/* After a full build of key: its manifest, and the line's last state. */
void cj_delta_record_full(const struct cj_delta_in *in);

#endif
