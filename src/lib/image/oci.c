/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading container images (see oci.h): locate and verify the metadata,
 * then — only when the base image is not cached yet — verify and apply the
 * layers into a temporary tree, build the base image from it, and remove
 * the tree.
 *
 * Verification: every blob is hashed and compared with its digest before
 * it is used (OCI: the manifest against the index, the config and the
 * layers against the manifest; docker-archive: each layer against the
 * config's rootfs.diff_ids, the config against its file name), and the
 * bytes actually applied are hashed again while they stream through
 * libarchive, so a file changed between the check and the use is caught.
 */
#include "image/oci.h"

#include "image/layer.h"
#include "image/tree.h"
#include "registry/ref.h"
#include "registry/store.h"
#include "util/progress.h"
#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Bumped whenever unpacking changes what ends up in the tree, so that old
 * cache entries are not reused. */
#define IMAGE_FORMAT   "v1"
#define MAX_INDEX_NEST 4

static const char *kind_name(enum cj_image_kind k)
{
	return k == CJ_IMAGE_OCI ? "oci" : k == CJ_IMAGE_DOCKER_ARCHIVE ? "docker" : "tar";
}

static void digest_of(struct cj_hash *h, char out[CJ_DIGEST_LEN + 1])
{
	memcpy(out, "sha256:", 7);
	cj_hash_final_hex(h, out + 7);
}

/* ---- byte sources that hash what flows through them ----------------------------- */

struct src {
	int fd;                /* >= 0: a file */
	struct archive *outer; /* else: the current member of an outer archive */
	struct cj_hash *hash;  /* NULL: no hashing */
	struct cj_progress *progress;
	uint64_t bytes;
	uint8_t buf[1 << 16];
};

static ssize_t src_pull(struct src *s, char *msg, size_t msglen)
{
	ssize_t n;

	if (s->outer) {
		n = archive_read_data(s->outer, s->buf, sizeof s->buf);
		if (n < 0)
			snprintf(msg, msglen, "%s", archive_error_string(s->outer));
	} else {
		do
			n = read(s->fd, s->buf, sizeof s->buf);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			snprintf(msg, msglen, "%s", strerror(errno));
	}
	if (n > 0) {
		s->bytes += (uint64_t)n;
		cj_progress_add(s->progress, (uint64_t)n);
		if (s->hash)
			cj_hash_update(s->hash, s->buf, (size_t)n);
	}
	return n;
}

static la_ssize_t src_read(struct archive *a, void *ctx, const void **out)
{
	struct src *s = ctx;
	char msg[256];
	ssize_t n = src_pull(s, msg, sizeof msg);

	if (n < 0) {
		archive_set_error(a, EIO, "%s", msg);
		return -1;
	}
	*out = s->buf;
	return n;
}

/* Read what the archive reader left (tar padding, trailing data). */
static int src_drain(struct src *s, struct cj_err *err)
{
	char msg[256];
	ssize_t n;

	while ((n = src_pull(s, msg, sizeof msg)) > 0)
		;
	return n < 0 ? cj_fail(err, 0, "read: %s", msg) : 0;
}

/* The source is large (its buffer): on the heap. fd >= 0: a file, else
 * the current member of outer. */
static struct src *src_new(int fd, struct archive *outer, struct cj_err *err)
{
	struct src *s = calloc(1, sizeof *s);

	if (!s) {
		cj_fail(err, ENOMEM, "layer");
		return NULL;
	}
	s->fd = fd;
	s->outer = outer;
	return s;
}

static struct archive *outer_reader(const char *path, struct cj_err *err)
{
	struct archive *a = cj_layer_reader_new();

	if (!a) {
		cj_fail(err, ENOMEM, "libarchive");
		return NULL;
	}
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		cj_fail(err, 0, "open %s: %s", path, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* Position a fresh reader of the tar file at path on the member called
 * name (compared after cleaning "./" and "/"), then call fn. Returns fn's
 * result, or 1 when there is no such member. */
static int with_member(const char *path, const char *name,
                       int (*fn)(struct archive *, void *, struct cj_err *), void *ctx,
                       struct cj_err *err)
{
	char want[PATH_MAX], have[PATH_MAX];
	struct archive_entry *e;
	struct archive *a;
	int r = 1;

	if (cj_layer_clean_path(name, want, sizeof want) < 0 || !want[0])
		return cj_fail(err, 0, "member name '%s' is invalid", name);
	if (!(a = outer_reader(path, err)))
		return -1;
	for (;;) {
		int hr = archive_read_next_header(a, &e);
		if (hr == ARCHIVE_EOF)
			break;
		if (hr != ARCHIVE_OK && hr != ARCHIVE_WARN) {
			r = cj_fail(err, 0, "read %s: %s", path, archive_error_string(a));
			break;
		}
		const char *n = archive_entry_pathname(e);
		if (n && archive_entry_filetype(e) == AE_IFREG &&
		    cj_layer_clean_path(n, have, sizeof have) == 0 && strcmp(have, want) == 0) {
			r = fn(a, ctx, err);
			break;
		}
	}
	archive_read_free(a);
	return r;
}

/* ---- small files ----------------------------------------------------------------- */

struct small {
	char *data;
	size_t len;
	char digest[CJ_DIGEST_LEN + 1];
	const char *what;
};

static int read_member_small(struct archive *a, void *ctx, struct cj_err *err)
{
	struct small *sm = ctx;
	struct cj_hash *h = cj_hash_new();
	size_t cap = 1 << 16;
	ssize_t n;

	sm->data = malloc(cap + 1);
	sm->len = 0;
	if (!sm->data) {
		cj_hash_final_hex(h, sm->digest);
		return cj_fail(err, ENOMEM, "%s", sm->what);
	}
	for (;;) {
		if (sm->len == cap) {
			char *nd;
			if (cap >= CJ_IMAGE_JSON_MAX) {
				cj_hash_final_hex(h, sm->digest);
				return cj_fail(err, 0, "%s is larger than %u bytes", sm->what,
				               CJ_IMAGE_JSON_MAX);
			}
			cap *= 2;
			if (!(nd = realloc(sm->data, cap + 1))) {
				cj_hash_final_hex(h, sm->digest);
				return cj_fail(err, ENOMEM, "%s", sm->what);
			}
			sm->data = nd;
		}
		n = archive_read_data(a, sm->data + sm->len, cap - sm->len);
		if (n < 0) {
			cj_hash_final_hex(h, sm->digest);
			return cj_fail(err, 0, "read %s: %s", sm->what, archive_error_string(a));
		}
		if (n == 0)
			break;
		cj_hash_update(h, sm->data + sm->len, (size_t)n);
		sm->len += (size_t)n;
	}
	sm->data[sm->len] = '\0';
	digest_of(h, sm->digest);
	return 0;
}

/* Read exactly len bytes of fd into *out (NUL-terminated, caller frees);
 * errors say "read <label>". */
static int read_exact(int fd, size_t len, const char *what, const char *label, char **out,
                      struct cj_err *err)
{
	cj_autofree char *buf = malloc(len + 1);
	size_t got = 0;

	if (!buf)
		return cj_fail(err, ENOMEM, "%s", what);
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return cj_fail(err, n < 0 ? errno : EIO, "read %s", label);
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = cj_steal_ptr(&buf);
	return 0;
}

/* Read a regular file of at most max bytes. */
static int read_file_max(const char *path, size_t max, const char *what, char **out, size_t *len,
                         struct cj_err *err)
{
	struct stat st;
	cj_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		return cj_fail(err, errno, "%s %s", what, path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
		return cj_fail(err, 0, "%s %s is %s", what, path,
		               S_ISREG(st.st_mode) ? "too large" : "not a regular file");
	if (read_exact(fd, (size_t)st.st_size, what, path, out, err) < 0)
		return -1;
	*len = (size_t)st.st_size;
	return 0;
}

/* ---- OCI layout ------------------------------------------------------------------- */

static void blob_path(const char *dir, const char *digest, char *out, size_t len)
{
	snprintf(out, len, "%s/blobs/sha256/%s", dir, digest + 7);
}

static int mismatch(struct cj_err *err, const char *what, const char *want, const char *got)
{
	return cj_fail(err, 0, "%s %s does not match its digest: its content hashes to %s", what,
	               want, got);
}

/* Open a blob, check its size against the descriptor; returns the fd. */
static int open_blob(const char *dir, const struct cj_descriptor *d, const char *what,
                     struct cj_err *err)
{
	char path[PATH_MAX + 96];
	struct stat st;
	cj_autoclose int fd = -1;

	blob_path(dir, d->digest, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cj_fail(err, errno, "%s %s is missing from the layout", what, d->digest);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return cj_fail(err, 0, "%s %s is not a regular file", what, d->digest);
	if ((uint64_t)st.st_size != d->size)
		return cj_fail(err, 0, "%s %s is %llu bytes, but its descriptor says %llu", what,
		               d->digest, (unsigned long long)st.st_size,
		               (unsigned long long)d->size);
	return cj_steal_fd(&fd);
}

/* Hash an open file to its end. */
static int hash_fd(int fd, char out[CJ_DIGEST_LEN + 1], struct cj_err *err)
{
	cj_autofree struct src *s = src_new(fd, NULL, err);
	int r;

	if (!s)
		return -1;
	s->hash = cj_hash_new();
	r = src_drain(s, err);
	digest_of(s->hash, out);
	return r;
}

/* A small JSON blob, verified. */
static int read_blob(const char *dir, const struct cj_descriptor *d, const char *what, char **out,
                     size_t *len, struct cj_err *err)
{
	char got[CJ_DIGEST_LEN + 1], label[160];
	struct cj_hash *h;
	cj_autofree char *buf = NULL;
	cj_autoclose int fd = -1;

	if (d->size > CJ_IMAGE_JSON_MAX)
		return cj_fail(err, 0, "%s %s is too large (%llu bytes)", what, d->digest,
		               (unsigned long long)d->size);
	if ((fd = open_blob(dir, d, what, err)) < 0)
		return -1;
	snprintf(label, sizeof label, "%s %s", what, d->digest);
	if (read_exact(fd, d->size, what, label, &buf, err) < 0)
		return -1;
	h = cj_hash_new();
	cj_hash_update(h, buf, d->size);
	digest_of(h, got);
	if (strcmp(got, d->digest) != 0)
		return mismatch(err, what, d->digest, got);
	*out = cj_steal_ptr(&buf);
	*len = d->size;
	return 0;
}

static bool is_linux_amd64(const struct cj_descriptor *d)
{
	return d->os && d->arch && strcmp(d->os, "linux") == 0 && strcmp(d->arch, "amd64") == 0;
}

static int select_manifest(const struct cj_oci_index *idx, const char *tag, bool nested,
                           struct cj_descriptor *out, struct cj_err *err)
{
	const struct cj_descriptor *pick = NULL;

	if (nested) {
		for (size_t i = 0; i < idx->n && !pick; i++)
			if (is_linux_amd64(&idx->manifests[i]))
				pick = &idx->manifests[i];
		if (!pick) {
			char have[512] = "";
			size_t o = 0;
			for (size_t i = 0; i < idx->n && i < 8 && o < sizeof have; i++)
				o += (size_t)snprintf(
				    have + o, sizeof have - o, "%s%s/%s", i ? ", " : "",
				    idx->manifests[i].os ? idx->manifests[i].os : "?",
				    idx->manifests[i].arch ? idx->manifests[i].arch : "?");
			return cj_fail(err, 0,
			               "the image index has no linux/amd64 image (it has %s); "
			               "ctr-jailer runs linux/amd64 guests",
			               have);
		}
	} else if (tag) {
		for (size_t i = 0; i < idx->n && !pick; i++)
			if ((idx->manifests[i].ref_name &&
			     strcmp(idx->manifests[i].ref_name, tag) == 0) ||
			    strcmp(idx->manifests[i].digest, tag) == 0) /* the store's pick */
				pick = &idx->manifests[i];
		if (!pick) {
			char have[512] = "";
			size_t o = 0;
			for (size_t i = 0; i < idx->n && o < sizeof have; i++)
				if (idx->manifests[i].ref_name)
					o += (size_t)snprintf(have + o, sizeof have - o, "%s%.60s",
					                      o ? ", " : "",
					                      idx->manifests[i].ref_name);
			return cj_fail(err, 0, "no image tagged '%s' (tags: %s)", tag,
			               have[0] ? have : "none");
		}
	} else {
		pick = &idx->manifests[0];
	}
	memset(out, 0, sizeof *out);
	memcpy(out->digest, pick->digest, sizeof out->digest);
	out->size = pick->size;
	out->is_index = pick->is_index;
	return 0;
}

static int check_platform(const struct cj_image_config *cfg, struct cj_err *err)
{
	if ((cfg->os && strcmp(cfg->os, "linux") != 0) ||
	    (cfg->architecture && strcmp(cfg->architecture, "amd64") != 0))
		return cj_fail(err, 0, "the image is for %s/%s; ctr-jailer runs linux/amd64 guests",
		               cfg->os ? cfg->os : "?",
		               cfg->architecture ? cfg->architecture : "?");
	return 0;
}

/* "oci:DIR:NAME" where NAME itself has a ':' (a full reference, as the
 * store names images: docker.io/library/busybox:latest): when DIR as
 * split at the last ':' does not exist, split at the first ':' that ends
 * an OCI layout's directory instead. */
static int resplit_layout(struct cj_image_ref *ref, struct cj_err *err)
{
	cj_autofree char *whole = NULL;
	char probe[PATH_MAX + 16];
	struct stat st;

	if (!ref->tag || stat(ref->path, &st) == 0 ||
	    asprintf(&whole, "%s:%s", ref->path, ref->tag) < 0)
		return 0;
	for (char *c = strchr(whole, ':'); c; c = strchr(c + 1, ':')) {
		snprintf(probe, sizeof probe, "%.*s/oci-layout", (int)(c - whole), whole);
		if (access(probe, F_OK) < 0)
			continue;
		char *path = strndup(whole, (size_t)(c - whole)), *tag = strdup(c + 1);
		if (!path || !tag) {
			free(path);
			free(tag);
			return cj_fail(err, ENOMEM, "image reference");
		}
		free(ref->path);
		free(ref->tag);
		ref->path = path;
		ref->tag = tag;
		return 0;
	}
	return 0;
}

static int oci_open(struct cj_image *img, struct cj_err *err)
{
	const char *dir;
	char path[PATH_MAX + 32], *text = NULL;
	struct cj_descriptor d;
	struct cj_oci_index idx;
	struct stat st;
	size_t len;
	int r;

	if (resplit_layout(&img->ref, err) < 0)
		return -1;
	dir = img->ref.path;
	if (stat(dir, &st) < 0)
		return cj_fail(err, errno, "%s", dir);
	snprintf(path, sizeof path, "%s/oci-layout", dir);
	if (!S_ISDIR(st.st_mode) || access(path, F_OK) < 0)
		return cj_fail(err, 0, "%s is not an OCI image layout (no oci-layout file)", dir);
	snprintf(path, sizeof path, "%s/index.json", dir);
	if (read_file_max(path, CJ_IMAGE_JSON_MAX, "index", &text, &len, err) < 0)
		return -1;
	r = cj_oci_index_parse(text, len, &idx, err);
	free(text);
	if (r < 0)
		return cj_err_wrap(err, "%s", path);
	r = select_manifest(&idx, img->ref.tag, false, &d, err);
	cj_oci_index_free(&idx);
	if (r < 0)
		return -1;
	/* A multi-platform image: follow the index to linux/amd64. */
	for (int depth = 0; d.is_index; depth++) {
		if (depth == MAX_INDEX_NEST)
			return cj_fail(err, 0, "image indexes nest too deeply");
		if (read_blob(dir, &d, "index", &text, &len, err) < 0)
			return -1;
		r = cj_oci_index_parse(text, len, &idx, err);
		free(text);
		if (r < 0)
			return cj_err_wrap(err, "index %s", d.digest);
		r = select_manifest(&idx, NULL, true, &d, err);
		cj_oci_index_free(&idx);
		if (r < 0)
			return -1;
	}
	memcpy(img->digest, d.digest, sizeof img->digest);
	if (read_blob(dir, &d, "manifest", &text, &len, err) < 0)
		return -1;
	r = cj_oci_manifest_parse(text, len, &img->manifest, err);
	free(text);
	if (r < 0)
		return cj_err_wrap(err, "manifest %s", d.digest);
	if (read_blob(dir, &img->manifest.config, "config", &text, &len, err) < 0)
		return -1;
	memcpy(img->config_digest, img->manifest.config.digest, sizeof img->config_digest);
	r = cj_image_config_parse(text, len, &img->config, err);
	free(text);
	if (r < 0)
		return cj_err_wrap(err, "config %s", img->config_digest);
	img->has_config = true;
	if (img->config.diff_ids.n && img->config.diff_ids.n != img->manifest.nlayers)
		return cj_fail(err, 0, "the config lists %zu layers, the manifest %zu",
		               img->config.diff_ids.n, img->manifest.nlayers);
	return check_platform(&img->config, err);
}

/* ---- docker-archive ------------------------------------------------------------------- */

/* The digest a member's name promises: "<hex>.json" (docker save, skopeo)
 * or "blobs/sha256/<hex>" (docker 25+); NULL when the name promises none. */
static bool name_digest(const char *name, char out[CJ_DIGEST_LEN + 1])
{
	const char *base = strrchr(name, '/');
	size_t blen;

	base = base ? base + 1 : name;
	blen = strlen(base);
	if (!(blen == 64 + 5 && strcmp(base + 64, ".json") == 0) &&
	    !(blen == 64 && base - name >= 7 && strncmp(base - 7, "sha256/", 7) == 0))
		return false;
	snprintf(out, CJ_DIGEST_LEN + 1, "sha256:%.64s", base);
	return cj_digest_valid(out);
}

static int docker_open(struct cj_image *img, struct cj_err *err)
{
	const char *file = img->ref.path;
	struct small sm = {.what = "manifest.json"};
	char promised[CJ_DIGEST_LEN + 1];
	struct stat st;
	int r;

	if (stat(file, &st) < 0)
		return cj_fail(err, errno, "%s", file);
	if (!S_ISREG(st.st_mode))
		return cj_fail(err, 0, "%s is not a file (a docker-archive is a tarball)", file);
	r = with_member(file, "manifest.json", read_member_small, &sm, err);
	if (r == 1)
		cj_fail(err, 0, "%s is not a docker-archive (no manifest.json)", file);
	if (r != 0) {
		free(sm.data);
		return -1;
	}
	r = cj_docker_manifest_parse(sm.data, sm.len, &img->dmanifest, err);
	free(sm.data);
	if (r < 0)
		return cj_err_wrap(err, "%s", file);

	sm = (struct small){.what = "config"};
	r = with_member(file, img->dmanifest.config, read_member_small, &sm, err);
	if (r == 1)
		cj_fail(err, 0, "config %s is missing from %s", img->dmanifest.config, file);
	if (r != 0) {
		free(sm.data);
		return -1;
	}
	if (name_digest(img->dmanifest.config, promised) && strcmp(promised, sm.digest) != 0) {
		free(sm.data);
		return mismatch(err, "config", promised, sm.digest);
	}
	/* The config names every layer by the digest of its content: its own
	 * digest (docker's image ID) identifies the whole image. */
	memcpy(img->digest, sm.digest, sizeof img->digest);
	memcpy(img->config_digest, sm.digest, sizeof img->config_digest);
	r = cj_image_config_parse(sm.data, sm.len, &img->config, err);
	free(sm.data);
	if (r < 0)
		return cj_err_wrap(err, "config %s", img->config_digest);
	img->has_config = true;
	if (img->config.diff_ids.n != img->dmanifest.layers.n)
		return cj_fail(
		    err, 0,
		    "the config lists %zu layer digests (rootfs.diff_ids), manifest.json "
		    "%zu layers",
		    img->config.diff_ids.n, img->dmanifest.layers.n);
	return check_platform(&img->config, err);
}

/* ---- tar ------------------------------------------------------------------------------ */

/* A tarball's digest, remembered under its identity (path, inode, size,
 * mtime, ctime) so that the next run does not read it at all. */
static int tar_open(struct cj_image *img, const char *cache_dir, struct cj_err *err)
{
	char real[PATH_MAX], ident[PATH_MAX + 160], key[65], memo[PATH_MAX + 160];
	char dir[PATH_MAX + 32];
	struct cj_hash *h;
	struct stat st;
	cj_autoclose int fd = open(img->ref.path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "%s", img->ref.path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !realpath(img->ref.path, real))
		return cj_fail(err, 0, "%s is not a file (tar: takes a tarball)", img->ref.path);
	snprintf(ident, sizeof ident, "%s|%llu|%llu|%lld|%lld.%09ld|%lld.%09ld", real,
	         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
	         (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	         (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	h = cj_hash_new();
	cj_hash_update(h, ident, strlen(ident));
	cj_hash_final_hex(h, key);
	snprintf(dir, sizeof dir, "%s/images/" IMAGE_FORMAT "/tar-ids", cache_dir ? cache_dir : "");
	snprintf(memo, sizeof memo, "%s/%s", dir, key);
	if (cache_dir) {
		cj_autofree char *text = NULL;
		size_t len;
		struct cj_err ignored = {0};
		if (read_file_max(memo, 128, "memo", &text, &len, &ignored) == 0) {
			text[strcspn(text, "\n")] = '\0';
			if (cj_digest_valid(text)) {
				memcpy(img->digest, text, sizeof img->digest);
				return 0;
			}
		}
	}
	if (hash_fd(fd, img->digest, err) < 0)
		return cj_err_wrap(err, "read %s", img->ref.path);
	if (cache_dir) { /* best effort: without it the next run hashes again */
		struct cj_err ignored = {0};
		char tmp[PATH_MAX + 200];
		FILE *f;
		snprintf(tmp, sizeof tmp, "%s.%d.tmp", memo, (int)getpid());
		if (cj_mkdir_p(dir, 0700, &ignored) == 0 && (f = fopen(tmp, "we"))) {
			bool ok = fprintf(f, "%s\n", img->digest) > 0;
			if (fclose(f) == 0 && ok)
				ok = rename(tmp, memo) == 0;
			if (!ok)
				unlink(tmp);
		}
	}
	return 0;
}

/* ---- open / free ----------------------------------------------------------------------- */

void cj_image_free(struct cj_image *img)
{
	cj_image_ref_free(&img->ref);
	free(img->ref_str);
	cj_image_config_free(&img->config);
	cj_oci_manifest_free(&img->manifest);
	cj_docker_manifest_free(&img->dmanifest);
	memset(img, 0, sizeof *img);
}

bool cj_image_ref_is_file_form(const char *s)
{
	return strncmp(s, "oci:", 4) == 0 || strncmp(s, "docker-archive:", 15) == 0 ||
	       strncmp(s, "tar:", 4) == 0;
}

/* A stored name or digest: the store's layout, its manifest picked by
 * digest. */
static int store_ref(const char *s, const char *cache_dir, struct cj_image_ref *ref,
                     struct cj_err *err)
{
	struct cj_store st;
	struct cj_store_entry e;
	struct cj_reg_ref parsed;
	int r;

	if (!cache_dir)
		return cj_image_ref_parse(s, ref, err);
	cj_store_paths(cache_dir, &st);
	if ((r = cj_store_find(&st, s, &e, err)) < 0)
		return -1;
	if (r == 0 && cj_reg_ref_parse(s, &parsed, err) < 0)
		return cj_fail(
		    err, 0,
		    "image '%s' is neither stored nor a registry reference: give "
		    "[REGISTRY/]NAME[:TAG], oci:DIR[:TAG], docker-archive:FILE or tar:FILE",
		    s);
	if (r == 0)
		return cj_fail(err, 0,
		               "image '%s' is not stored: pull it ('ctr-jailer pull %s') or give "
		               "oci:DIR[:TAG], docker-archive:FILE or tar:FILE",
		               s, s);
	memset(ref, 0, sizeof *ref);
	ref->kind = CJ_IMAGE_OCI;
	ref->path = strdup(st.dir);
	ref->tag = strdup(e.digest);
	if (!ref->path || !ref->tag) {
		cj_image_ref_free(ref);
		return cj_fail(err, ENOMEM, "image reference");
	}
	return 0;
}

int cj_image_open(const char *ref, const char *cache_dir, struct cj_image *img, struct cj_err *err)
{
	int r;

	memset(img, 0, sizeof *img);
	img->from_store = !cj_image_ref_is_file_form(ref) && cache_dir;
	if ((cj_image_ref_is_file_form(ref) ? cj_image_ref_parse(ref, &img->ref, err)
	                                    : store_ref(ref, cache_dir, &img->ref, err)) < 0)
		return -1;
	/* Unpacking may come later, in a detached supervisor that has left
	 * this working directory: a relative path is taken from here. */
	if (img->ref.path[0] != '/') {
		char cwd[PATH_MAX], *abs = NULL;
		if (!getcwd(cwd, sizeof cwd) || asprintf(&abs, "%s/%s", cwd, img->ref.path) < 0) {
			cj_image_free(img);
			return cj_fail(err, errno ? errno : ENOMEM,
			               "image %s: the working directory", ref);
		}
		free(img->ref.path);
		img->ref.path = abs;
	}
	if (!(img->ref_str = strdup(ref))) {
		cj_image_free(img);
		return cj_fail(err, ENOMEM, "image");
	}
	switch (img->ref.kind) {
	case CJ_IMAGE_OCI:
		r = oci_open(img, err);
		break;
	case CJ_IMAGE_DOCKER_ARCHIVE:
		r = docker_open(img, err);
		break;
	default:
		r = tar_open(img, cache_dir, err);
		break;
	}
	if (r < 0) {
		cj_err_wrap(err, "image %s", ref);
		cj_image_free(img);
		return -1;
	}
	return 0;
}

/* ---- unpacking ----------------------------------------------------------------------------- */

struct unpack {
	const struct cj_image *img;
	struct cj_layer_budget *budget;
	int root_fd;
	struct cj_layer_stats st;
	const char *expect; /* digest the streamed bytes must have */
	char got[CJ_DIGEST_LEN + 1];
	bool whiteouts;
	/* the layers applied: [first, first + count); all when count is 0 */
	size_t first, count;
	bool overlay;            /* whiteouts kept for the guest's overlay (layer.h) */
	const char *expect_diff; /* digest the decompressed tar must have, or NULL */
	char got_diff[CJ_DIGEST_LEN + 1];
};

static bool in_range(const struct unpack *u, size_t i)
{
	return u->count == 0 || (i >= u->first && i < u->first + u->count);
}

/* A reader of one decompressed stream (gzip, zstd, xz, bzip2 or none). */
static struct archive *raw_reader(void)
{
	struct archive *raw = archive_read_new();

	if (raw && (archive_read_support_format_raw(raw) != ARCHIVE_OK ||
	            archive_read_support_filter_gzip(raw) < ARCHIVE_WARN ||
	            archive_read_support_filter_zstd(raw) < ARCHIVE_WARN ||
	            archive_read_support_filter_xz(raw) < ARCHIVE_WARN ||
	            archive_read_support_filter_bzip2(raw) < ARCHIVE_WARN)) {
		archive_read_free(raw);
		return NULL;
	}
	return raw;
}

/* Apply the tar of a layer whose decompressed bytes must hash to
 * u->expect_diff (its diff_id, the key of its cached image): the layer's
 * bytes (s, hashed against u->expect) go through a decompressing raw
 * reader, whose output (hashed too) feeds the tar reader. */
static int apply_decompressed(struct unpack *u, struct src *s, const struct cj_layer_opts *opts,
                              struct cj_err *err)
{
	struct archive *raw = raw_reader(), *a = NULL;
	struct archive_entry *e;
	cj_autofree struct src *inner = src_new(-1, raw, err);
	int r;

	if (!raw || !inner) {
		if (raw)
			archive_read_free(raw);
		return inner ? cj_fail(err, ENOMEM, "libarchive") : -1;
	}
	inner->hash = cj_hash_new();
	if (archive_read_open(raw, s, NULL, src_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(raw, &e) != ARCHIVE_OK) {
		r = cj_fail(err, 0, "%s", archive_error_string(raw));
	} else if (!(a = cj_layer_reader_new())) {
		r = cj_fail(err, ENOMEM, "libarchive");
	} else if (archive_read_open(a, inner, NULL, src_read, NULL) != ARCHIVE_OK) {
		r = cj_fail(err, 0, "%s", archive_error_string(a));
	} else {
		r = cj_layer_apply(u->root_fd, a, opts, &u->st, err);
	}
	if (a)
		archive_read_free(a);
	if (r == 0)
		r = src_drain(inner, err);
	digest_of(inner->hash, u->got_diff);
	archive_read_free(raw);
	if (r == 0 && strcmp(u->got_diff, u->expect_diff) != 0)
		r = cj_fail(err, 0,
		            "its content hashes to %s, not to %s as the image config's "
		            "rootfs.diff_ids says",
		            u->got_diff, u->expect_diff);
	return r;
}

/* Apply the archive that src delivers, hashing every byte of it. */
static int apply_stream(struct unpack *u, struct src *s, struct cj_err *err)
{
	struct cj_layer_opts opts = {.whiteouts = u->whiteouts,
	                             .overlay_whiteouts = u->overlay,
	                             .set_owner = true,
	                             .budget = u->budget};
	struct archive *a = cj_layer_reader_new();
	int r;

	if (!a)
		return cj_fail(err, ENOMEM, "libarchive");
	s->hash = cj_hash_new();
	if (u->expect_diff) {
		archive_read_free(a);
		a = NULL;
		r = apply_decompressed(u, s, &opts, err);
	} else if (archive_read_open(a, s, NULL, src_read, NULL) != ARCHIVE_OK) {
		r = cj_fail(err, 0, "%s", archive_error_string(a));
	} else {
		r = cj_layer_apply(u->root_fd, a, &opts, &u->st, err);
	}
	if (a)
		archive_read_free(a);
	if (r == 0)
		r = src_drain(s, err);
	digest_of(s->hash, u->got);
	s->hash = NULL;
	if (r == 0 && u->expect && strcmp(u->got, u->expect) != 0)
		r = cj_fail(err, 0, "changed while it was read (it hashed to %s before, %s now)",
		            u->expect, u->got);
	return r;
}

static int apply_member(struct archive *outer, void *ctx, struct cj_err *err)
{
	cj_autofree struct src *s = src_new(-1, outer, err);

	return s ? apply_stream(ctx, s, err) : -1;
}

static int apply_fd(struct unpack *u, int fd, struct cj_err *err)
{
	cj_autofree struct src *s = src_new(fd, NULL, err);
	struct stat st;
	int r;

	if (!s)
		return -1;
	s->progress = cj_progress_start("unpack layer", CJ_PROGRESS_BYTES,
	                                fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
	r = apply_stream(u, s, err);
	cj_progress_end(s->progress, r == 0);
	return r;
}

struct member_hash {
	char raw[CJ_DIGEST_LEN + 1];
	char decompressed[CJ_DIGEST_LEN + 1];
	bool want_decompressed;
	const struct cj_layer_budget *budget; /* bounds what decompressing may yield */
};

static int hash_member(struct archive *outer, void *ctx, struct cj_err *err)
{
	struct member_hash *mh = ctx;
	cj_autofree struct src *s = src_new(-1, outer, err);
	struct archive *raw = NULL;
	struct archive_entry *e;
	int r = 0;

	if (!s)
		return -1;
	if (!mh->want_decompressed) {
		s->hash = cj_hash_new();
		r = src_drain(s, err);
		digest_of(s->hash, mh->raw);
		return r;
	}
	/* A compressed layer: diff_ids name the uncompressed tar. */
	struct cj_hash *h = cj_hash_new();
	raw = archive_read_new();
	if (!raw || archive_read_support_format_raw(raw) != ARCHIVE_OK ||
	    archive_read_support_filter_gzip(raw) < ARCHIVE_WARN ||
	    archive_read_support_filter_zstd(raw) < ARCHIVE_WARN ||
	    archive_read_support_filter_xz(raw) < ARCHIVE_WARN ||
	    archive_read_support_filter_bzip2(raw) < ARCHIVE_WARN ||
	    archive_read_open(raw, s, NULL, src_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(raw, &e) != ARCHIVE_OK) {
		r = cj_fail(err, 0, "read layer: %s",
		            raw ? archive_error_string(raw) : "no memory");
	} else {
		const struct cj_layer_budget *b = mh->budget;
		uint8_t buf[1 << 15];
		uint64_t total = 0;
		la_ssize_t n;
		while ((n = archive_read_data(raw, buf, sizeof buf)) > 0) {
			cj_hash_update(h, buf, (size_t)n);
			total += (uint64_t)n;
			/* Hashing a gzip bomb would burn CPU for nothing: no layer
			 * within the budget inflates past its tar stream bound. */
			if (b && b->max_stream && total > b->max_stream) {
				char size[32];
				cj_layer_format_size(b->max_stream, size, sizeof size);
				r = cj_fail(err, 0,
				            "the layer inflates to more than %s of tar data, more "
				            "than the image's size budget allows (%s)",
				            size, b->explain_bytes ? b->explain_bytes : "");
				break;
			}
		}
		if (n < 0)
			r = cj_fail(err, 0, "read layer: %s", archive_error_string(raw));
	}
	digest_of(h, mh->decompressed);
	if (raw)
		archive_read_free(raw);
	return r;
}

static int unpack_oci(struct unpack *u, struct cj_err *err)
{
	const struct cj_oci_manifest *m = &u->img->manifest;
	const char *dir = u->img->ref.path;

	/* Every layer verified before any is applied. */
	for (size_t i = 0; i < m->nlayers; i++) {
		char got[CJ_DIGEST_LEN + 1];
		if (!in_range(u, i))
			continue;
		cj_autoclose int fd = open_blob(dir, &m->layers[i], "layer", err);
		if (fd < 0)
			return cj_err_wrap(err, "layer %zu", i + 1);
		if (hash_fd(fd, got, err) < 0)
			return cj_err_wrap(err, "layer %zu (%s)", i + 1, m->layers[i].digest);
		if (strcmp(got, m->layers[i].digest) != 0)
			return mismatch(err, "layer blob", m->layers[i].digest, got);
	}
	u->whiteouts = true;
	for (size_t i = 0; i < m->nlayers; i++) {
		if (!in_range(u, i))
			continue;
		cj_autoclose int fd = open_blob(dir, &m->layers[i], "layer", err);
		if (fd < 0)
			return -1;
		u->expect = m->layers[i].digest;
		u->expect_diff = u->count ? u->img->config.diff_ids.v[i] : NULL;
		if (apply_fd(u, fd, err) < 0)
			return cj_err_wrap(err, "layer %zu (%s)", i + 1, m->layers[i].digest);
	}
	return 0;
}

static int unpack_docker(struct unpack *u, struct cj_err *err)
{
	const struct cj_docker_manifest *m = &u->img->dmanifest;
	const char *file = u->img->ref.path;
	char(*raw)[CJ_DIGEST_LEN + 1] = calloc(m->layers.n ? m->layers.n : 1, sizeof *raw);
	int r = 0;

	if (!raw)
		return cj_fail(err, ENOMEM, "layers");
	for (size_t i = 0; r == 0 && i < m->layers.n; i++) {
		const char *want = u->img->config.diff_ids.v[i];
		struct member_hash mh = {.budget = u->budget};
		if (!in_range(u, i))
			continue;
		r = with_member(file, m->layers.v[i], hash_member, &mh, err);
		if (r == 0 && strcmp(mh.raw, want) != 0) {
			mh.want_decompressed = true;
			r = with_member(file, m->layers.v[i], hash_member, &mh, err);
			if (r == 0 && strcmp(mh.decompressed, want) != 0)
				r = mismatch(err, "layer", want, mh.decompressed);
		}
		if (r == 1)
			r = cj_fail(err, 0, "layer %s is missing from %s", m->layers.v[i], file);
		if (r < 0)
			cj_err_wrap(err, "layer %zu (%s)", i + 1, m->layers.v[i]);
		memcpy(raw[i], mh.raw, sizeof raw[i]);
	}
	u->whiteouts = true;
	for (size_t i = 0; r == 0 && i < m->layers.n; i++) {
		if (!in_range(u, i))
			continue;
		u->expect = raw[i];
		u->expect_diff = u->count ? u->img->config.diff_ids.v[i] : NULL;
		r = with_member(file, m->layers.v[i], apply_member, u, err);
		if (r == 1)
			r = cj_fail(err, 0, "layer %s disappeared from %s", m->layers.v[i], file);
		if (r < 0)
			cj_err_wrap(err, "layer %zu (%s)", i + 1, m->layers.v[i]);
	}
	free(raw);
	return r;
}

static int unpack_tar(struct unpack *u, struct cj_err *err)
{
	cj_autoclose int fd = open(u->img->ref.path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "%s", u->img->ref.path);
	/* A flat root filesystem: names are taken literally (no whiteouts). */
	u->whiteouts = false;
	u->expect = u->img->digest;
	return apply_fd(u, fd, err);
}

/* Which layers go into one tree: [first, first + count), all when count
 * is 0; overlay: whiteouts kept for the guest's overlay. */
struct layer_range {
	size_t first, count;
	bool overlay;
};

static int unpack(const struct cj_image *img, const char *tree, struct cj_layer_budget *budget,
                  const struct layer_range *range, struct cj_err *err)
{
	struct unpack u = {.img = img,
	                   .budget = budget,
	                   .first = range->first,
	                   .count = range->count,
	                   .overlay = range->overlay};
	int r;

	if (mkdir(tree, 0755) < 0 || chmod(tree, 0755) < 0)
		return cj_fail(err, errno, "create %s", tree);
	u.root_fd = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u.root_fd < 0)
		return cj_fail(err, errno, "open %s", tree);
	switch (img->ref.kind) {
	case CJ_IMAGE_OCI:
		r = unpack_oci(&u, err);
		break;
	case CJ_IMAGE_DOCKER_ARCHIVE:
		r = unpack_docker(&u, err);
		break;
	default:
		r = unpack_tar(&u, err);
		break;
	}
	close(u.root_fd);
	if (r == 0 && u.st.skipped_devices)
		cj_notice("notice: %llu device node(s) in the image were skipped: the guest's "
		          "/dev is a devtmpfs the kernel fills",
		          (unsigned long long)u.st.skipped_devices);
	return r;
}

struct budget_text {
	char bytes[PATH_MAX + 200], entries[200];
};

/* The unpack budget (layer.c): the user's, or the smaller of the default
 * and 90% of what the cache's file system has free now. */
static void image_budget(const struct cj_image *img, const char *dir, struct cj_layer_budget *b,
                         struct budget_text *t)
{
	static const char how[] = "--max-image-size SIZE or CTR_JAILER_MAX_IMAGE_SIZE";
	uint64_t max = img->max_size;
	struct statvfs vfs;
	char size[32];

	memset(b, 0, sizeof *b);
	if (max) {
		snprintf(t->bytes, sizeof t->bytes, "set by %s: raise it there", how);
	} else {
		max = CJ_IMAGE_DEFAULT_BUDGET;
		snprintf(t->bytes, sizeof t->bytes, "the default: raise it with %s", how);
		if (statvfs(dir, &vfs) == 0 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize / 10 * 9 < max) {
			max = (uint64_t)vfs.f_bavail * vfs.f_frsize / 10 * 9;
			snprintf(t->bytes, sizeof t->bytes,
			         "90%% of the free space in %s: free some, or set %s", dir, how);
		}
	}
	b->max_bytes = max ? max : 1; /* 0 would mean no limit */
	b->max_entries = max / CJ_IMAGE_BYTES_PER_ENTRY ? max / CJ_IMAGE_BYTES_PER_ENTRY : 1;
	/* A tar holding that much: the data, plus headers and padding far
	 * below 4 KiB an entry. */
	b->max_stream = b->max_bytes + b->max_entries * CJ_IMAGE_BYTES_PER_ENTRY;
	if (b->max_stream < b->max_bytes)
		b->max_stream = UINT64_MAX;
	cj_layer_format_size(b->max_bytes, size, sizeof size);
	snprintf(t->entries, sizeof t->entries,
	         "one per %u KiB of the %s size budget: raise it with %s",
	         CJ_IMAGE_BYTES_PER_ENTRY / 1024, size, how);
	b->explain_bytes = t->bytes;
	b->explain_entries = t->entries;
}

/* Unpack the range of img's layers into tree within budget and build the
 * image at dest from it; the tree is gone afterwards. */
static int unpack_range_and_build(const struct cj_image *img, const char *tree, const char *dest,
                                  struct cj_layer_budget *budget, const struct layer_range *range,
                                  struct cj_err *err)
{
	int r;

	/* A run killed while unpacking leaves its tree: start afresh. */
	if (cj_tree_remove(tree) < 0)
		return cj_fail(err, errno, "remove the unfinished unpack %s", tree);
	r = unpack(img, tree, budget, range, err);
	if (r == 0)
		r = cj_dir_image_build(tree, dest, err);
	if (r < 0)
		cj_err_wrap(err, "image %s", img->ref_str);
	if (cj_tree_remove(tree) < 0)
		cj_warn("could not remove %s: %s", tree, strerror(errno));
	return r;
}

/* Unpack img into tree and build the base image at dest from it; the tree
 * is gone afterwards, whatever happened (tree.c removes it at any depth). */
static int unpack_and_build(const struct cj_image *img, const char *dir, const char *tree,
                            const char *dest, struct cj_err *err)
{
	struct cj_layer_budget budget;
	cj_autofree struct budget_text *text = malloc(sizeof *text);
	static const struct layer_range all = {0};

	if (!text)
		return cj_fail(err, ENOMEM, "image");
	image_budget(img, dir, &budget, text);
	return unpack_range_and_build(img, tree, dest, &budget, &all, err);
}

int cj_image_base_get(const char *cache_dir, const struct cj_image *img, struct cj_fsimage *out,
                      bool *unpacked, struct cj_err *err)
{
	char dir[PATH_MAX], lock[PATH_MAX + 160], tree[PATH_MAX + 160];
	const char *kind = kind_name(img->ref.kind), *hex = img->digest + 7;
	struct stat st;
	cj_autoclose int lock_fd = -1;

	memset(out, 0, sizeof *out);
	*unpacked = false;
	snprintf(dir, sizeof dir, "%s/images/" IMAGE_FORMAT, cache_dir);
	if (cj_mkdir_p(dir, 0700, err) < 0)
		return cj_err_wrap(err, "cache");
	snprintf(out->path, sizeof out->path, "%s/%s-%s.ext4", dir, kind, hex);
	if (stat(out->path, &st) == 0)
		return cj_ext4_uuid(out->path, out->uuid, err);

	/* Concurrent starts of the same image unpack it once. */
	snprintf(lock, sizeof lock, "%s/%s-%s.lock", dir, kind, hex);
	lock_fd = cj_lock_file(lock, err);
	if (lock_fd < 0)
		return -1;
	/* The lock file stays: unlinking it while another start waits on it
	 * would let a third start take a new one and unpack alongside. */
	if (stat(out->path, &st) < 0) {
		struct cj_store store;
		cj_autoclose int store_lock = -1;
		if (geteuid() != 0)
			return cj_fail(
			    err, 0,
			    "image %s: unpacking an image needs root (to keep its owners and "
			    "file capabilities); once unpacked, it runs without",
			    img->ref_str);
		/* a stored image's blobs stay while they are read (rmi waits) */
		cj_store_paths(cache_dir, &store);
		if (img->from_store && (store_lock = cj_store_lock(&store, false, err)) < 0)
			return -1;
		snprintf(tree, sizeof tree, "%s/%s-%s.unpack", dir, kind, hex);
		if (unpack_and_build(img, dir, tree, out->path, err) < 0)
			return -1;
		*unpacked = out->built = true;
	}
	return cj_ext4_uuid(out->path, out->uuid, err);
}

/* ---- one image per layer ------------------------------------------------------------ */

static size_t image_nlayers(const struct cj_image *img)
{
	return img->ref.kind == CJ_IMAGE_OCI ? img->manifest.nlayers : img->dmanifest.layers.n;
}

/* The cache name of layers [first, first + count): a layer's diff_id, or
 * the digest of the chain of diff_ids that a merged group holds. */
static void layer_name(const struct cj_image *img, size_t first, size_t count, char *out,
                       size_t len)
{
	char hex[65];

	if (count == 1) {
		snprintf(out, len, "%s", img->config.diff_ids.v[first] + 7);
		return;
	}
	struct cj_hash *h = cj_hash_new();
	cj_hash_update(h, "chain-v1", 8);
	for (size_t i = first; i < first + count; i++)
		cj_hash_update(h, img->config.diff_ids.v[i], strlen(img->config.diff_ids.v[i]) + 1);
	cj_hash_final_hex(h, hex);
	snprintf(out, len, "chain-%s", hex);
}

struct layer_job {
	const char *cache_dir;
	const char *dir; /* cache_dir/layers */
	struct cj_layer_budget budget;
	struct budget_text text;
};

/* The image of layers [first, first + count) at layers/<name>.ext4, built
 * when missing under its lock. One layer keeps its whiteouts for the
 * overlay, wherever it sits in a stack (its image is shared); a merged
 * group, always the bottom of its stack, applies them by deleting. */
static int layer_get(const struct cj_image *img, struct layer_job *job, size_t first, size_t count,
                     struct cj_fsimage *out, struct cj_err *err)
{
	char name[80], lock[PATH_MAX + 100], tree[PATH_MAX + 100];
	struct layer_range range = {.first = first, .count = count, .overlay = count == 1};
	struct stat st;
	cj_autoclose int lock_fd = -1;

	memset(out, 0, sizeof *out);
	layer_name(img, first, count, name, sizeof name);
	snprintf(out->path, sizeof out->path, "%s/%s.ext4", job->dir, name);
	if (stat(out->path, &st) == 0)
		return cj_ext4_uuid(out->path, out->uuid, err);
	snprintf(lock, sizeof lock, "%s/%s.lock", job->dir, name);
	if ((lock_fd = cj_lock_file(lock, err)) < 0)
		return -1;
	if (stat(out->path, &st) < 0) {
		struct cj_store store;
		cj_autoclose int store_lock = -1;
		if (geteuid() != 0)
			return cj_fail(err, 0,
			               "image %s: unpacking a layer needs root (to keep its owners "
			               "and file capabilities); once unpacked, it runs without",
			               img->ref_str);
		/* a stored image's blobs stay while they are read (rmi waits) */
		cj_store_paths(job->cache_dir, &store);
		if (img->from_store && (store_lock = cj_store_lock(&store, false, err)) < 0)
			return -1;
		snprintf(tree, sizeof tree, "%s/%s.unpack", job->dir, name);
		if (unpack_range_and_build(img, tree, out->path, &job->budget, &range, err) < 0)
			return -1;
		out->built = true;
	}
	return cj_ext4_uuid(out->path, out->uuid, err);
}

static int layers_get(const struct cj_image *img, struct layer_job *job, size_t max_drives,
                      struct cj_layer_stack *out, struct cj_err *err);

/* A refused image keeps nothing: the layers it built go again. */
static int layers_drop_built(struct cj_layer_stack *out, int r)
{
	for (size_t i = 0; i <= out->n && i < CJ_IMAGE_MAX_LAYER_DRIVES; i++)
		if (out->layers[i].built)
			unlink(out->layers[i].path);
	out->n = out->built = 0;
	return r;
}

int cj_image_layers_get(const char *cache_dir, const struct cj_image *img, size_t max_drives,
                        struct cj_layer_stack *out, struct cj_err *err)
{
	size_t n = image_nlayers(img);
	cj_autofree struct layer_job *job = malloc(sizeof *job);
	char dir[PATH_MAX];

	memset(out, 0, sizeof *out);
	if (img->ref.kind == CJ_IMAGE_TAR || n == 0 || img->config.diff_ids.n != n)
		return 1; /* one flat tree: the base image */
	if (!job)
		return cj_fail(err, ENOMEM, "image");
	if (max_drives > CJ_IMAGE_MAX_LAYER_DRIVES)
		max_drives = CJ_IMAGE_MAX_LAYER_DRIVES;
	if (max_drives == 0)
		max_drives = 1;
	snprintf(dir, sizeof dir, "%s/layers", cache_dir);
	if (cj_mkdir_p(dir, 0700, err) < 0)
		return cj_err_wrap(err, "cache");
	job->dir = dir;
	job->cache_dir = cache_dir;
	image_budget(img, dir, &job->budget, &job->text);
	int r = layers_get(img, job, max_drives, out, err);
	return r == 0 ? 0 : layers_drop_built(out, r);
}

static int layers_get(const struct cj_image *img, struct layer_job *job, size_t max_drives,
                      struct cj_layer_stack *out, struct cj_err *err)
{
	size_t n = image_nlayers(img), merged;

	/* More layers than drives: the lowest ones share one image. */
	merged = n > max_drives ? n - max_drives + 1 : 1;
	out->merged = merged;
	if (layer_get(img, job, 0, merged, &out->layers[0], err) < 0)
		return err->errnum == EXDEV ? 1 : -1;
	out->n = 1;
	out->built += out->layers[0].built;
	for (size_t i = merged; i < n; i++) {
		if (layer_get(img, job, i, 1, &out->layers[out->n], err) < 0) {
			if (err->errnum != EXDEV)
				return -1;
			cj_notice("notice: image %s: layer %zu links to a file of a lower layer: "
			          "the image is flattened into one base image",
			          img->ref_str, i + 1);
			*err = (struct cj_err){0};
			return 1;
		}
		out->built += out->layers[out->n++].built;
	}
	return 0;
}
