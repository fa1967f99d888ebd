/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Walking and removing directory trees that an image put on the host, at
 * any depth: no recursion (a loop over a stack kept on the heap), no path
 * longer than one name handed to the kernel (every step is relative to a
 * directory descriptor), and at most 64 directory descriptors open (below
 * that the way back up is "..", checked against the device and inode
 * recorded on the way down). Symlinks are never followed and mount points
 * never crossed: an entry belongs to the tree when it is on the root's
 * mount, known by mount id (statx STATX_MNT_ID), not by device, which on
 * an overlayfs differs from file to file.
 */
#ifndef CJ_IMAGE_TREE_H
#define CJ_IMAGE_TREE_H

#include "util/err.h"

#include <stddef.h>
#include <sys/stat.h>

/* The deepest tree ctr-jailer builds a filesystem image from: mke2fs -d
 * copies a tree recursively (it crashed at ~30000 levels here with an 8 MiB
 * stack), and no real image comes near it. Deeper is refused with one line
 * naming this bound. Removal has no bound. */
#define CJ_TREE_MAX_DEPTH 4096u

struct cj_tree_entry {
	int dirfd;        /* the directory holding the entry */
	const char *name; /* its name there; "." for the root of the walk */
	const char *path; /* relative to the root of the walk; "" for the root */
	size_t pathlen;
	unsigned depth; /* 0: the root */
	const struct stat *st;
};

enum cj_tree_next {
	CJ_TREE_DESCEND = 0, /* visit a directory's entries (ignored for other types) */
	CJ_TREE_SKIP = 1,    /* do not; the callback may have removed the entry */
};

/* Returns enum cj_tree_next, or -1 with err filled to stop the walk. */
typedef int (*cj_tree_visit_fn)(const struct cj_tree_entry *e, void *ctx, struct cj_err *err);

/* Visit the tree at root_fd (a directory; O_PATH is fine), parents before
 * their entries, in directory order: what nftw(FTW_PHYS | FTW_MOUNT) visits
 * on one file system, in the same order (on an overlayfs, nftw also skips
 * every file of a layer on another device; this walk does not). post,
 * when given, is called for each directory that was descended into once
 * its entries are done (its return value other than -1 is ignored). An
 * entry deeper than max_depth fails the walk with "nested deeper than
 * <max_depth> levels". */
int cj_tree_walk(int root_fd, unsigned max_depth, cj_tree_visit_fn pre, cj_tree_visit_fn post,
                 void *ctx, struct cj_err *err);

/* The same; mount, when given, is called for each entry that another
 * mount covers (a mount point, directory or file), which the walk never
 * enters; -1 from it stops the walk. Where the kernel reports no mount ids
 * (before Linux 5.8) only directories on another device count as mounts. */
int cj_tree_walk_mounts(int root_fd, unsigned max_depth, cj_tree_visit_fn pre,
                        cj_tree_visit_fn post, cj_tree_visit_fn mount, void *ctx,
                        struct cj_err *err);

/* Remove name in dirfd and everything below it, never following a symlink
 * or leaving its file system. Missing is fine. 0, or -1 with errno set. */
int cj_tree_remove_at(int dirfd, const char *name);

/* The same for a path (absolute, or relative to the working directory). */
int cj_tree_remove(const char *path);

#endif
