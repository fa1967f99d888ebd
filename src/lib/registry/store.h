/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local image store: one OCI image layout at <cache>/store shared by
 * every stored image. blobs/sha256/<hex> hold manifests, configs and
 * layers once however many images use them; index.json lists each image's
 * manifest with its full name in the org.opencontainers.image.ref.name
 * annotation ("docker.io/library/busybox:latest"), so `oci:` code opens
 * them. A download in progress is blobs/sha256/<hex>.partial, resumed by
 * the next pull. Changes to index.json and removals happen under an
 * exclusive flock of <cache>/store.lock and land by rename; a pull holds
 * it from its first download to its naming, so a removal never takes a
 * blob a pull is about to name (and two pulls never write one blob).
 */
#ifndef CJ_REGISTRY_STORE_H
#define CJ_REGISTRY_STORE_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CJ_STORE_ANNOTATION "org.opencontainers.image.ref.name"

struct cj_store {
	char dir[4096];  /* <cache>/store */
	char lock[4096]; /* <cache>/store.lock */
};

void cj_store_paths(const char *cache_dir, struct cj_store *st);
/* Create the layout when absent. */
int cj_store_init(const struct cj_store *st, struct cj_err *err);
/* flock the store (shared or exclusive); returns the fd to close. */
int cj_store_lock(const struct cj_store *st, bool exclusive, struct cj_err *err);

void cj_store_blob_path(const struct cj_store *st, const char *digest, char *out, size_t len);
bool cj_store_has_blob(const struct cj_store *st, const char *digest, uint64_t size);
/* Write a small verified blob (a manifest) by rename. */
int cj_store_put_blob(const struct cj_store *st, const char *digest, const void *data, size_t len,
                      struct cj_err *err);

struct cj_store_entry {
	char name[512];  /* "" for an unnamed entry */
	char digest[72]; /* the manifest's */
	char media_type[128];
	uint64_t size;
};

/* The index's entries (caller frees *out). */
int cj_store_list(const struct cj_store *st, struct cj_store_entry **out, size_t *n,
                  struct cj_err *err);
/* Name a manifest; an entry of the same name is replaced. Takes the
 * exclusive lock itself unless the caller holds it (locked). */
int cj_store_set_name(const struct cj_store *st, const struct cj_store_entry *e, bool locked,
                      struct cj_err *err);
/* What s names in the store: a full name, a user's reference normalized
 * ("busybox" -> docker.io/library/busybox:latest), a manifest digest or
 * a unique prefix of its hex (12 digits or more). Returns 1 with *e
 * filled, 0 when nothing matches, -1 on error. */
int cj_store_find(const struct cj_store *st, const char *s, struct cj_store_entry *e,
                  struct cj_err *err);
/* The bytes an image's blobs take (manifest, config, layers). */
int cj_store_image_size(const struct cj_store *st, const char *digest, uint64_t *size,
                        struct cj_err *err);
/* The manifest digests live runs under run_base use (their records'
 * "image_digest"): is digest one of them? */
bool cj_store_in_use(const char *run_base, const char *digest);

/* Delete the blobs no named manifest references (not .partial files);
 * the caller holds the exclusive lock. *freed grows by their bytes. */
int cj_store_collect(const struct cj_store *st, uint64_t *freed, struct cj_err *err);
/* Remove a name (or every name of a digest) and then the blobs no
 * remaining manifest references; *freed says how many bytes. */
int cj_store_remove(const struct cj_store *st, const struct cj_store_entry *e, uint64_t *freed,
                    struct cj_err *err);

#endif
