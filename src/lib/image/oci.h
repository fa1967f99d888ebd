/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Container images as input (`--image`):
 *
 *   oci:DIR[:TAG]        an OCI image layout (index.json -> manifest -> config
 *                        + layers); TAG matches org.opencontainers.image.ref.name,
 *                        default the first manifest; a nested index is followed
 *                        to its linux/amd64 manifest
 *   docker-archive:FILE  a `docker save` tarball (manifest.json, config, layers)
 *   tar:FILE             a flat root filesystem tarball (`docker export`),
 *                        gzip/zstd/xz/bzip2 compressed or not
 *
 * Every blob is checked against its sha256 digest before use. The layers are
 * applied in order (layer.c) into a temporary tree that becomes the read-only
 * base image, cached under the image's digest (the manifest digest; for
 * docker-archive the config digest, i.e. the image ID; for tar the tarball's
 * sha256), so the next run of the same image neither unpacks nor walks a tree.
 *
 * The image's config is honoured with docker's semantics (Entrypoint, Cmd,
 * Env, WorkingDir, User, StopSignal, Labels); the pure parsers and the merge
 * rules are in ociconfig.c, fuzzed and unit-tested.
 */
#ifndef CJ_IMAGE_OCI_H
#define CJ_IMAGE_OCI_H

#include "ctrj/protocol.h"
#include "image/base.h"
#include "util/err.h"
#include "util/strv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what an image may declare (hostile input). */
#define CJ_IMAGE_JSON_MAX  (4u * 1024u * 1024u) /* index, manifest, config */
#define CJ_IMAGE_MAX_LAYER 1024u
#define CJ_IMAGE_MAX_DESC  4096u /* manifests in an index */
#define CJ_IMAGE_MAX_LABEL 4096u
#define CJ_DIGEST_LEN      71 /* "sha256:" + 64 hex */
/* What unpacking an image may write (struct cj_image's max_size). */
#define CJ_IMAGE_DEFAULT_BUDGET  (64ull << 30) /* and at most 90% of the cache's free space */
#define CJ_IMAGE_BYTES_PER_ENTRY 4096u         /* entries: one per 4 KiB of the budget */

enum cj_image_kind { CJ_IMAGE_OCI = 1, CJ_IMAGE_DOCKER_ARCHIVE, CJ_IMAGE_TAR };

struct cj_image_ref {
	enum cj_image_kind kind;
	char *path;
	char *tag; /* oci: only; NULL = the only/first manifest */
};

/* "oci:DIR[:TAG]" (TAG: after the last ':' when that part has no '/'),
 * "docker-archive:FILE", "tar:FILE". */
int cj_image_ref_parse(const char *s, struct cj_image_ref *ref, struct cj_err *err);
void cj_image_ref_free(struct cj_image_ref *ref);

/* The parts of an image config that decide what runs. Absent fields stay
 * NULL / empty; has_* tell "absent" from "empty" where docker does. */
struct cj_image_config {
	struct cj_strv entrypoint;
	bool has_entrypoint;
	struct cj_strv cmd;
	bool has_cmd;
	struct cj_strv env; /* "NAME=VALUE", unique names, image order */
	char *workdir;      /* NULL: not set */
	char *user;         /* NULL: not set */
	char *stop_signal;  /* as the image spells it; NULL: not set */
	uint32_t stop_signal_num;
	struct cj_strv label_keys, label_values; /* sorted by key */
	char *os, *architecture;                 /* NULL: not given */
	struct cj_strv diff_ids;                 /* rootfs.diff_ids, validated digests */
	/* Healthcheck: Test as the image gives it (["CMD", ...], ["CMD-SHELL",
	 * s], ["NONE"]; empty: inherit), durations in ms (0: not set) */
	struct cj_strv health_test;
	uint64_t health_interval_ms, health_timeout_ms, health_start_period_ms;
	unsigned health_retries;
};

/* An OCI/docker content descriptor. */
struct cj_descriptor {
	char *media_type; /* NULL when absent */
	char digest[CJ_DIGEST_LEN + 1];
	uint64_t size;
	char *ref_name;  /* annotation org.opencontainers.image.ref.name */
	char *os, *arch; /* platform, when given */
	bool is_index;   /* media type names an index / manifest list */
};

struct cj_oci_index {
	struct cj_descriptor *manifests;
	size_t n;
};

struct cj_oci_manifest {
	struct cj_descriptor config;
	struct cj_descriptor *layers;
	size_t nlayers;
};

/* The first image of a `docker save` manifest.json. */
struct cj_docker_manifest {
	char *config;          /* member name of the config */
	struct cj_strv layers; /* member names, base first */
};

/* ---- pure parsers (ociconfig.c): hostile input, one clear error ---------- */
int cj_image_config_parse(const char *json, size_t len, struct cj_image_config *cfg,
                          struct cj_err *err);
void cj_image_config_free(struct cj_image_config *cfg);
int cj_oci_index_parse(const char *json, size_t len, struct cj_oci_index *idx, struct cj_err *err);
void cj_oci_index_free(struct cj_oci_index *idx);
int cj_oci_manifest_parse(const char *json, size_t len, struct cj_oci_manifest *m,
                          struct cj_err *err);
void cj_oci_manifest_free(struct cj_oci_manifest *m);
int cj_docker_manifest_parse(const char *json, size_t len, struct cj_docker_manifest *m,
                             struct cj_err *err);
void cj_docker_manifest_free(struct cj_docker_manifest *m);

/* "sha256:" followed by exactly 64 lowercase hex digits. */
bool cj_digest_valid(const char *s);
/* "SIGUSR1", "USR1", "usr1", "10", "SIGRTMIN+3" -> 1..64; -1 when not a signal. */
int cj_signal_parse(const char *s);

/* docker run's command: the entrypoint (the image's, or entrypoint_override
 * when has_override: one argument, "" clears it) followed by args when any
 * were given, else by the image's Cmd — which --entrypoint discards, as in
 * docker. An empty result is an error. cfg may be NULL (a plain rootfs). */
int cj_image_command(const struct cj_image_config *cfg, bool has_override,
                     const char *entrypoint_override, const struct cj_strv *args,
                     struct cj_strv *out, struct cj_err *err);
/* Environment: the image's Env, then every entry of over on top. */
int cj_image_env(const struct cj_image_config *cfg, const struct cj_strv *over, struct cj_strv *out,
                 struct cj_err *err);

/* ---- reading images (oci.c) ------------------------------------------------ */
struct cj_image {
	struct cj_image_ref ref;
	char *ref_str;
	char digest[CJ_DIGEST_LEN + 1]; /* the image's identity, the cache key */
	char config_digest[CJ_DIGEST_LEN + 1];
	struct cj_image_config config;
	bool has_config;                     /* false for tar: */
	struct cj_oci_manifest manifest;     /* oci: */
	struct cj_docker_manifest dmanifest; /* docker-archive: */
	bool from_store;                     /* a name of the local store (registry/store.h) */
	/* --max-image-size: what unpacking may write, in bytes; 0: the default,
	 * the smaller of CJ_IMAGE_DEFAULT_BUDGET and 90% of the cache's free
	 * space. Entries: one per CJ_IMAGE_BYTES_PER_ENTRY of it. */
	uint64_t max_size;
};

/* Is s one of the file forms (oci:, docker-archive:, tar:)? */
bool cj_image_ref_is_file_form(const char *s);

/* Read and verify the image's metadata (not its layers): cheap, and enough
 * for inspect and for resolving the command. cache_dir may be NULL; with
 * it, a tar: input's digest is remembered by file identity, and a ref that
 * is not a file form names an image of the local store (registry/store.h):
 * a full or short name ("busybox"), a manifest digest or a hex prefix. */
int cj_image_open(const char *ref, const char *cache_dir, struct cj_image *img, struct cj_err *err);
void cj_image_free(struct cj_image *img);

/* The image's read-only base image, from cache_dir/images when present
 * (*unpacked = false), else unpacked, verified and built (*unpacked = true)
 * within img->max_size. A failed unpack leaves nothing in the cache. */
int cj_image_base_get(const char *cache_dir, const struct cj_image *img, struct cj_fsimage *out,
                      bool *unpacked, struct cj_err *err);

/* An image as a stack of read-only layer images (base.h), bottom first,
 * for the guest's overlay: each layer's image is cached under its diff_id
 * in cache_dir/layers and shared by every image that has it. When the
 * image has more layers than max_drives, its lowest layers are merged into
 * one image (cached under the digest of their chain of diff_ids). */
/* 0 and the stack; 1 when the image has no layers of its own to share
 * (tar:, or a config without rootfs.diff_ids): use cj_image_base_get. */
int cj_image_layers_get(const char *cache_dir, const struct cj_image *img, size_t max_drives,
                        struct cj_layer_stack *out, struct cj_err *err);

#endif
