/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache directory (CTR_JAILER_CACHE): what it holds, what a live run
 * uses, and what may go.
 *
 * An entry is one item directly below a kind's folder: a file (a base
 * image, a vmlinux, an initramfs, a modules image) or a folder (a fetched
 * kernel, a boot snapshot <key>/ of vmm/snapshot.h). Build locks
 * (*.lock) and memo files (ids/) are bookkeeping, not entries; a build's
 * leftovers (*.tmp, *.unpack) are entries of their kind
 * that prune removes once their build lock is free.
 *
 * In use: a run holds a shared flock on every entry it opens
 * (cj_cache_use), from the moment it picks it until the run has ended, in
 * the process that supervises it (a detached run's supervisor too). Prune
 * and the LRU cap take an exclusive flock without waiting before they
 * remove an entry: an entry a live run holds is never removed. A folder
 * entry with a held build lock inside (<entry>/lock: a snapshot being
 * taken) is in use too; prune takes that lock as well. Last use is
 * the entry's access time, which cj_cache_use sets to now (whatever the
 * file system's atime policy).
 *
 * `system prune` removes entries that no live run uses and that were last
 * used more than CJ_CACHE_PRUNE_AGE ago; with --all, every entry no live
 * run uses. The LRU cap (--cache-max SIZE, CTR_JAILER_CACHE_MAX), applied
 * after each run, removes the least recently used entries no live run
 * uses until the whole cache fits. The image store (registry/store.h, with
 * its own rmi and lock) is counted but never removed here.
 */
#ifndef CJ_CACHE_H
#define CJ_CACHE_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CJ_CACHE_PRUNE_AGE (24 * 3600) /* seconds since last use */

struct cj_cache_kind_usage {
	const char *kind;   /* "kernels", "vmlinux", "initramfs", ... */
	const char *folder; /* below the cache dir */
	bool prunable;      /* false: counted only (another part owns it) */
	uint64_t entries, bytes, in_use, in_use_bytes;
};

#define CJ_CACHE_NKINDS 10

struct cj_cache_usage {
	struct cj_cache_kind_usage kinds[CJ_CACHE_NKINDS];
	uint64_t bytes; /* everything below the cache dir (du) */
};

/* Mark the entry holding path (the entry, or a file at any depth inside a
 * folder entry) in use by this process: *fd gets a descriptor holding a
 * shared flock on it (close it when the run is over; -1 when path is not
 * in the cache) and its last use is set to now. An entry that prune
 * removed meanwhile fails with "removed from the cache". */
int cj_cache_use(const char *cache_dir, const char *path, int *fd, struct cj_err *err);

/* What the cache holds, by kind; sizes are allocated bytes, as du counts. */
int cj_cache_usage(const char *cache_dir, struct cj_cache_usage *u, struct cj_err *err);

struct cj_cache_pruned {
	uint64_t entries, bytes;
};

/* Remove the entries no live run uses: all of them (all), or those last
 * used before now - CJ_CACHE_PRUNE_AGE. */
int cj_cache_prune(const char *cache_dir, bool all, struct cj_cache_pruned *out,
                   struct cj_err *err);

/* Remove the least recently used entries no live run uses until the cache
 * holds at most max bytes (what cannot go stays). */
int cj_cache_trim(const char *cache_dir, uint64_t max, struct cj_cache_pruned *out,
                  struct cj_err *err);

/* A content key remembered under a cheap key: the memo
 * <cache>/<folder>/ids/<cheap>. 1 with content filled when known, 0 when
 * not, -1 on error. */
int cj_cache_memo_get(const char *cache_dir, const char *folder, const char *cheap,
                      char content[65]);
void cj_cache_memo_put(const char *cache_dir, const char *folder, const char *cheap,
                       const char *content);

#endif
