/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `load -i FILE`: a docker-archive (`docker save`: manifest.json with
 * Config, RepoTags, Layers) or an OCI archive (a tarred image layout:
 * oci-layout, index.json, blobs/) into the store, compressed or not.
 * One pass over the archive writes every regular member as a blob named
 * by the sha256 of its bytes; an OCI member blobs/sha256/<hex> must hash
 * to <hex>. Then the images are named: docker's RepoTags; an OCI entry's
 * io.containerd.image.name, else its org.opencontainers.image.ref.name
 * when that is a full reference (has a '/' or a ':'); else unnamed (its
 * digest finds it). A docker-archive image gets a Docker v2 manifest
 * written for it. Members no image uses are deleted again.
 */
#ifndef CJ_REGISTRY_LOAD_H
#define CJ_REGISTRY_LOAD_H

#include "util/err.h"

#include <stddef.h>

struct cj_load_result {
	char name[512]; /* "" when unnamed */
	char digest[72];
};

/* Load file into the store of cache_dir; *out (caller frees) lists what
 * was loaded. */
int cj_load(const char *cache_dir, const char *file, struct cj_load_result **out, size_t *n,
            struct cj_err *err);

#endif
