/* SPDX-License-Identifier: Apache-2.0 */
/* The local image store (see store.h). */
#include "registry/store.h"

#include "image/oci.h"
#include "registry/ref.h"
#include "run/record.h"
#include "run/runs.h"
#include "util/strv.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define EMPTY_INDEX "{\"schemaVersion\":2,\"manifests\":[]}"

void cj_store_paths(const char *cache_dir, struct cj_store *st)
{
	snprintf(st->dir, sizeof st->dir, "%s/store", cache_dir);
	snprintf(st->lock, sizeof st->lock, "%s/store.lock", cache_dir);
}

/* Write data to path by a temporary file and a rename. */
static int write_atomic(const char *path, const void *data, size_t len, struct cj_err *err)
{
	char tmp[4200];
	cj_autoclose int fd = -1;

	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cj_fail(err, errno, "create %s", tmp);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			unlink(tmp);
			return cj_fail(err, e, "write %s", tmp);
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return cj_fail(err, e, "write %s", path);
	}
	return 0;
}

int cj_store_init(const struct cj_store *st, struct cj_err *err)
{
	char path[4200];

	snprintf(path, sizeof path, "%s/blobs/sha256", st->dir);
	if (cj_mkdir_p(path, 0755, err) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/oci-layout", st->dir);
	if (access(path, F_OK) < 0) {
		static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
		if (write_atomic(path, layout, sizeof layout - 1, err) < 0)
			return -1;
	}
	snprintf(path, sizeof path, "%s/index.json", st->dir);
	if (access(path, F_OK) < 0 && write_atomic(path, EMPTY_INDEX, strlen(EMPTY_INDEX), err) < 0)
		return -1;
	return 0;
}

int cj_store_lock(const struct cj_store *st, bool exclusive, struct cj_err *err)
{
	int fd = open(st->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return cj_fail(err, errno, "open %s", st->lock);
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return cj_fail(err, e, "lock %s", st->lock);
		}
	}
	return fd;
}

void cj_store_blob_path(const struct cj_store *st, const char *digest, char *out, size_t len)
{
	snprintf(out, len, "%s/blobs/sha256/%s", st->dir, digest + 7);
}

bool cj_store_has_blob(const struct cj_store *st, const char *digest, uint64_t size)
{
	char path[4200];
	struct stat s;

	cj_store_blob_path(st, digest, path, sizeof path);
	return stat(path, &s) == 0 && S_ISREG(s.st_mode) && (uint64_t)s.st_size == size;
}

int cj_store_put_blob(const struct cj_store *st, const char *digest, const void *data, size_t len,
                      struct cj_err *err)
{
	char path[4200];

	if (cj_store_has_blob(st, digest, len))
		return 0;
	cj_store_blob_path(st, digest, path, sizeof path);
	return write_atomic(path, data, len, err);
}

static json_object *read_index(const struct cj_store *st, struct cj_err *err)
{
	char path[4200];
	cj_autofree char *text = NULL;
	json_object *root, *m;
	size_t len;

	snprintf(path, sizeof path, "%s/index.json", st->dir);
	if (cj_read_file(path, &text, &len, err) < 0) {
		if (err->errnum != ENOENT)
			return NULL;
		*err = (struct cj_err){0};
		return json_tokener_parse(EMPTY_INDEX);
	}
	root = json_tokener_parse(text);
	if (!root || !json_object_object_get_ex(root, "manifests", &m) ||
	    !json_object_is_type(m, json_type_array)) {
		json_object_put(root);
		cj_fail(err, 0,
		        "%s is damaged (no manifests array); remove the store's entry by hand",
		        path);
		return NULL;
	}
	return root;
}

static int write_index(const struct cj_store *st, json_object *root, struct cj_err *err)
{
	char path[4200];
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);

	snprintf(path, sizeof path, "%s/index.json", st->dir);
	return write_atomic(path, text, strlen(text), err);
}

static void entry_of(json_object *d, struct cj_store_entry *e)
{
	json_object *v, *ann;

	memset(e, 0, sizeof *e);
	if (json_object_object_get_ex(d, "digest", &v) &&
	    cj_digest_valid(json_object_get_string(v)))
		snprintf(e->digest, sizeof e->digest, "%s", json_object_get_string(v));
	if (json_object_object_get_ex(d, "mediaType", &v))
		snprintf(e->media_type, sizeof e->media_type, "%s", json_object_get_string(v));
	if (json_object_object_get_ex(d, "size", &v))
		e->size = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(d, "annotations", &ann) &&
	    json_object_object_get_ex(ann, CJ_STORE_ANNOTATION, &v))
		snprintf(e->name, sizeof e->name, "%s", json_object_get_string(v));
}

int cj_store_list(const struct cj_store *st, struct cj_store_entry **out, size_t *n,
                  struct cj_err *err)
{
	json_object *root = read_index(st, err), *m;
	size_t len;

	*out = NULL;
	*n = 0;
	if (!root)
		return -1;
	json_object_object_get_ex(root, "manifests", &m);
	len = json_object_array_length(m);
	if (len && !(*out = calloc(len, sizeof **out))) {
		json_object_put(root);
		return cj_fail(err, ENOMEM, "store");
	}
	for (size_t i = 0; i < len; i++)
		entry_of(json_object_array_get_idx(m, i), &(*out)[i]);
	*n = len;
	json_object_put(root);
	return 0;
}

static json_object *descriptor_json(const struct cj_store_entry *e)
{
	json_object *d = json_object_new_object(), *ann = json_object_new_object();

	json_object_object_add(d, "mediaType", json_object_new_string(e->media_type));
	json_object_object_add(d, "digest", json_object_new_string(e->digest));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)e->size));
	json_object_object_add(ann, CJ_STORE_ANNOTATION, json_object_new_string(e->name));
	json_object_object_add(d, "annotations", ann);
	return d;
}

/* Drop the entries called name (every entry of digest when name is ""). */
static void drop_entries(json_object *m, const char *name, const char *digest)
{
	for (size_t i = json_object_array_length(m); i-- > 0;) {
		struct cj_store_entry have;
		entry_of(json_object_array_get_idx(m, i), &have);
		if (name[0] ? strcmp(have.name, name) == 0 : strcmp(have.digest, digest) == 0)
			json_object_array_del_idx(m, i, 1);
	}
}

int cj_store_set_name(const struct cj_store *st, const struct cj_store_entry *e, bool locked,
                      struct cj_err *err)
{
	cj_autoclose int lock = locked ? -2 : cj_store_lock(st, true, err);
	json_object *root, *m;
	int r;

	if (lock == -1 || cj_store_init(st, err) < 0 || !(root = read_index(st, err)))
		return -1;
	json_object_object_get_ex(root, "manifests", &m);
	drop_entries(m, e->name, e->digest);
	json_object_array_add(m, descriptor_json(e));
	r = write_index(st, root, err);
	json_object_put(root);
	return r;
}

static bool hex_prefix(const char *s)
{
	size_t len = strlen(s);

	if (len < 12 || len > 64)
		return false;
	for (const char *q = s; *q; q++)
		if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
			return false;
	return true;
}

/* An entry matches s as a name, as a digest, or by a unique hex prefix. */
static int match_entries(const struct cj_store_entry *v, size_t n, const char *name, const char *s,
                         struct cj_store_entry *e, struct cj_err *err)
{
	const struct cj_store_entry *hit = NULL;
	const char *hex = strncmp(s, "sha256:", 7) == 0 ? s + 7 : s;

	for (size_t i = 0; i < n && !hit; i++)
		if (name[0] && strcmp(v[i].name, name) == 0)
			hit = &v[i];
	for (size_t i = 0; i < n && !hit; i++)
		if (strcmp(v[i].digest, s) == 0)
			hit = &v[i];
	if (!hit && hex_prefix(hex)) {
		for (size_t i = 0; i < n; i++) {
			if (strncmp(v[i].digest + 7, hex, strlen(hex)) != 0)
				continue;
			if (hit && strcmp(hit->digest, v[i].digest) != 0)
				return cj_fail(
				    err, 0, "'%s' is the prefix of several images; give more", s);
			hit = &v[i];
		}
	}
	if (!hit)
		return 0;
	*e = *hit;
	return 1;
}

int cj_store_find(const struct cj_store *st, const char *s, struct cj_store_entry *e,
                  struct cj_err *err)
{
	struct cj_store_entry *v;
	struct cj_reg_ref ref;
	struct cj_err ignored = {0};
	char name[512] = "";
	size_t n;
	int r;

	if (access(st->dir, F_OK) < 0)
		return 0;
	if (cj_reg_ref_parse(s, &ref, &ignored) == 0)
		cj_reg_ref_str(&ref, name, sizeof name);
	if (cj_store_list(st, &v, &n, err) < 0)
		return -1;
	r = match_entries(v, n, name, s, e, err);
	free(v);
	return r;
}

/* ---- removal and garbage collection -------------------------------------------- */

static int mark(struct cj_strv *keep, const char *digest)
{
	return cj_strv_push(keep, digest);
}

/* Every blob a manifest references: itself, its config, its layers; an
 * index's manifests in turn (those it holds: an archive may carry one
 * platform only). */
static int mark_manifest(const struct cj_store *st, const char *digest, struct cj_strv *keep,
                         int depth, struct cj_err *err)
{
	char path[4200];
	cj_autofree char *text = NULL;
	struct cj_oci_manifest m;
	struct cj_oci_index idx;
	size_t len;
	int r = 0;

	if (!cj_digest_valid(digest))
		return 0; /* a damaged entry names nothing */
	if (mark(keep, digest) < 0)
		return cj_fail(err, ENOMEM, "store");
	cj_store_blob_path(st, digest, path, sizeof path);
	if (cj_read_file(path, &text, &len, err) < 0)
		return err->errnum == ENOENT ? (*err = (struct cj_err){0}, 0) : -1;
	if (strstr(text, "\"manifests\"") && depth < 4 &&
	    cj_oci_index_parse(text, len, &idx, err) == 0) {
		for (size_t i = 0; i < idx.n && r == 0; i++)
			r = mark_manifest(st, idx.manifests[i].digest, keep, depth + 1, err);
		cj_oci_index_free(&idx);
		return r;
	}
	if (cj_oci_manifest_parse(text, len, &m, err) < 0)
		return cj_err_wrap(err, "store manifest %s", digest);
	r = mark(keep, m.config.digest);
	for (size_t i = 0; i < m.nlayers && r == 0; i++)
		r = mark(keep, m.layers[i].digest);
	cj_oci_manifest_free(&m);
	return r < 0 ? cj_fail(err, ENOMEM, "store") : 0;
}

static bool kept(const struct cj_strv *keep, const char *hex)
{
	for (size_t i = 0; i < keep->n; i++)
		if (strcmp(keep->v[i] + 7, hex) == 0)
			return true;
	return false;
}

static bool is_tmp(const char *name)
{
	size_t len = strlen(name);
	return len > 4 && strcmp(name + len - 4, ".tmp") == 0;
}

/* Delete the blobs outside keep (not .partial downloads: prune's), and
 * the temporary files an interrupted writer left: every writer holds the
 * exclusive lock the caller holds now. */
static int sweep(const struct cj_store *st, const struct cj_strv *keep, uint64_t *freed,
                 struct cj_err *err)
{
	char dir[4200], path[4300];
	struct dirent *d;
	DIR *dp;

	snprintf(dir, sizeof dir, "%s/blobs/sha256", st->dir);
	if (!(dp = opendir(dir)))
		return errno == ENOENT ? 0 : cj_fail(err, errno, "open %s", dir);
	while ((d = readdir(dp))) {
		struct stat s;
		if (!is_tmp(d->d_name) && (strlen(d->d_name) != 64 || kept(keep, d->d_name)))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
		if (lstat(path, &s) == 0 && unlink(path) == 0)
			*freed += (uint64_t)s.st_size;
	}
	closedir(dp);
	return 0;
}

/* index.json's temporary files an interrupted writer left. */
static void sweep_top(const struct cj_store *st)
{
	char path[4400];
	struct dirent *d;
	DIR *dp = opendir(st->dir);

	while (dp && (d = readdir(dp))) {
		if (!is_tmp(d->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s", st->dir, d->d_name);
		unlink(path);
	}
	if (dp)
		closedir(dp);
}

int cj_store_collect(const struct cj_store *st, uint64_t *freed, struct cj_err *err)
{
	struct cj_strv keep = {0};
	json_object *root, *m;
	int r = 0;

	if (!(root = read_index(st, err)))
		return -1;
	json_object_object_get_ex(root, "manifests", &m);
	for (size_t i = 0; r == 0 && i < json_object_array_length(m); i++) {
		struct cj_store_entry have;
		entry_of(json_object_array_get_idx(m, i), &have);
		if (have.digest[0])
			r = mark_manifest(st, have.digest, &keep, 0, err);
	}
	json_object_put(root);
	if (r == 0)
		r = sweep(st, &keep, freed, err);
	if (r == 0)
		sweep_top(st);
	cj_strv_free(&keep);
	return r;
}

int cj_store_remove(const struct cj_store *st, const struct cj_store_entry *e, uint64_t *freed,
                    struct cj_err *err)
{
	cj_autoclose int lock = cj_store_lock(st, true, err);
	json_object *root, *m;
	int r;

	*freed = 0;
	if (lock < 0 || !(root = read_index(st, err)))
		return -1;
	json_object_object_get_ex(root, "manifests", &m);
	drop_entries(m, e->name, e->digest);
	r = write_index(st, root, err);
	json_object_put(root);
	return r < 0 ? -1 : cj_store_collect(st, freed, err);
}

int cj_store_image_size(const struct cj_store *st, const char *digest, uint64_t *size,
                        struct cj_err *err)
{
	struct cj_strv blobs = {0};
	struct stat s;
	char path[4200];

	*size = 0;
	if (mark_manifest(st, digest, &blobs, 0, err) < 0) {
		cj_strv_free(&blobs);
		return -1;
	}
	for (size_t i = 0; i < blobs.n; i++) {
		cj_store_blob_path(st, blobs.v[i], path, sizeof path);
		if (stat(path, &s) == 0)
			*size += (uint64_t)s.st_size;
	}
	cj_strv_free(&blobs);
	return 0;
}

struct in_use {
	const char *run_base, *digest;
	bool hit;
};

static int check_run(const char *id, json_object *record, void *ctx)
{
	struct in_use *u = ctx;
	json_object *d;

	if (json_object_object_get_ex(record, "image_digest", &d) &&
	    strcmp(json_object_get_string(d), u->digest) == 0 && cj_runs_alive(u->run_base, id))
		u->hit = true;
	return 0;
}

bool cj_store_in_use(const char *run_base, const char *digest)
{
	struct in_use u = {run_base, digest, false};
	struct cj_err ignored = {0};

	cj_record_each(run_base, NULL, check_run, &u, &ignored);
	return u.hit;
}
