/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry references, with Docker Hub's naming rules:
 *
 *   [HOST[:PORT]/]PATH[:TAG][@sha256:HEX]
 *
 * The first component is a registry host when it has a '.' or a ':' or is
 * "localhost"; otherwise the registry is docker.io and a one-component
 * PATH gets "library/". index.docker.io is docker.io. Without a tag or a
 * digest the tag is "latest". PATH components are lowercase [a-z0-9]
 * separated by '.', '_', "__" or dashes; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]
 * up to 128; the whole name is at most 255 characters.
 */
#ifndef CJ_REGISTRY_REF_H
#define CJ_REGISTRY_REF_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>

#define CJ_REF_NAME_MAX 255
#define CJ_REF_TAG_MAX  128

struct cj_reg_ref {
	char host[256];                 /* "docker.io", "localhost:5000" */
	char path[CJ_REF_NAME_MAX + 1]; /* "library/busybox" */
	char tag[CJ_REF_TAG_MAX + 1];   /* "" with only a digest */
	char digest[72];                /* "sha256:..." or "" */
	bool explicit_host;             /* the reference named its registry */
	bool explicit_tag;              /* it named a tag or a digest */
};

/* Parse and normalize s; -1 with a one-line error when it is not a valid
 * reference. */
int cj_reg_ref_parse(const char *s, struct cj_reg_ref *ref, struct cj_err *err);
/* The full normalized name: "docker.io/library/busybox:latest",
 * "HOST/PATH@sha256:..." (the tag is kept when both were given). */
void cj_reg_ref_str(const struct cj_reg_ref *ref, char *out, size_t len);
/* "HOST/PATH" alone. */
void cj_reg_ref_repo(const struct cj_reg_ref *ref, char *out, size_t len);
/* The registry's API endpoint host: registry-1.docker.io for docker.io. */
const char *cj_reg_ref_endpoint(const struct cj_reg_ref *ref);

/* Would a user mean s as an image (rather than a command) when it is not
 * stored: it names a registry host, a tag or a digest. */
bool cj_reg_ref_is_explicit(const char *s);

#endif
