/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Applying image layers (tar archives, read with libarchive) to a directory
 * tree on the host, with OCI whiteouts, hard links, symlinks, ownership,
 * modes, xattrs and file capabilities preserved, and nothing ever written
 * outside the tree. The containment rule is in layer.c.
 */
#ifndef CJ_IMAGE_LAYER_H
#define CJ_IMAGE_LAYER_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct archive;

/* What unpacking an image may use, all its layers together (see layer.c):
 * bytes of entry data at their apparent size, entries (files, directories,
 * links, whiteouts; directories made for an entry's path count too), and
 * bytes of uncompressed tar stream. Each entry is charged before anything
 * of it is written. */
struct cj_layer_budget {
	uint64_t max_bytes, max_entries, max_stream; /* 0: no limit */
	/* What the budget is and how to raise it: the end of the error line
	 * for bytes (and the stream), and for entries. */
	const char *explain_bytes, *explain_entries;
	uint64_t bytes, entries, stream; /* used so far */
};

struct cj_layer_opts {
	bool whiteouts; /* OCI whiteouts (image layers); false: names taken literally (tar:) */
	/* With whiteouts: write them as overlayfs does (a character device
	 * 0/0 for ".wh.NAME", trusted.overlay.opaque=y on the directory of
	 * ".wh..wh..opq") instead of deleting, for a layer that is its own
	 * filesystem image under the guest's overlay. A hard link to a file
	 * the layer does not hold then fails with errnum EXDEV. */
	bool overlay_whiteouts;
	bool set_owner;                 /* chown to the entries' numeric uid/gid (needs root) */
	struct cj_layer_budget *budget; /* NULL: no limit */
};

struct cj_layer_stats {
	uint64_t entries;
	uint64_t skipped_devices; /* character/block devices and sockets (see layer.c) */
	uint64_t whiteouts;
};

/* A reader for layer archives: tar (ustar, pax, GNU), uncompressed or
 * gzip/zstd/xz/bzip2. NULL on out-of-memory. Open it with archive_read_open*. */
struct archive *cj_layer_reader_new(void);

/* Apply every entry of the opened archive a to the tree whose root directory
 * is root_fd (an O_RDONLY or O_PATH descriptor of a directory). */
int cj_layer_apply(int root_fd, struct archive *a, const struct cj_layer_opts *opts,
                   struct cj_layer_stats *st, struct cj_err *err);

/* "16 MiB", "2 GiB", "9.5 GiB": a budget as the error messages show it. */
void cj_layer_format_size(uint64_t bytes, char *out, size_t len);

/* ---- pure helpers, exposed for the unit tests --------------------------------- */

/* Clean a tar entry name into a path relative to the root ("" is the root
 * itself): leading "/" and "./" dropped, empty and "." components dropped.
 * -1 when a component is ".." (the name can only mean to leave the root or
 * to confuse) or the result does not fit. */
int cj_layer_clean_path(const char *name, char *out, size_t outlen);

enum cj_whiteout {
	CJ_WH_NONE,   /* an ordinary entry */
	CJ_WH_FILE,   /* ".wh.NAME": delete NAME (target = its path) */
	CJ_WH_OPAQUE, /* ".wh..wh..opq": hide the lower content of a directory (target = it) */
	CJ_WH_META,   /* other ".wh..wh." names (aufs bookkeeping): ignored */
	CJ_WH_INVALID /* ".wh." alone, ".wh..", ".wh..." : refused */
};
/* Classify a cleaned path; target receives the path acted on. */
enum cj_whiteout cj_layer_whiteout(const char *clean, char *target, size_t len);

/* Open (O_PATH) the directory rel inside root_fd, resolving every component
 * as if root_fd were "/" (openat2 RESOLVE_IN_ROOT): symlinks, absolute or
 * with "..", cannot leave it. With create, missing directories are made
 * (mode 0755). Returns the fd, or -1 with err filled. */
int cj_open_in_root(int root_fd, const char *rel, bool create, struct cj_err *err);

#endif
