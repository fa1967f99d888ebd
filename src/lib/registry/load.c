/* SPDX-License-Identifier: Apache-2.0 */
/* Loading image archives into the store (see load.h). */
#include "registry/load.h"

#include "image/layer.h"
#include "image/oci.h"
#include "registry/ref.h"
#include "registry/store.h"
#include "util/strv.h"
#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MEMBERS 65536

struct member {
	char *name; /* cleaned: no "./", no leading '/' */
	char digest[72];
	uint64_t size;
	bool gzip;  /* starts with gzip's magic */
	char *text; /* the bytes, when small JSON-ish (.json, index.json, oci-layout) */
	size_t len;
};

struct load {
	const struct cj_store *st;
	struct member *m;
	size_t n;
	struct cj_load_result *res;
	size_t nres;
};

static bool keep_text(const char *name)
{
	size_t len = strlen(name);
	return (len >= 5 && strcmp(name + len - 5, ".json") == 0) ||
	       strcmp(name, "oci-layout") == 0;
}

/* Copy the current member to a temporary blob file, hashing it; rename it
 * to its digest. */
static int member_to_blob(struct load *l, struct archive *a, struct member *mb, struct cj_err *err)
{
	char tmp[4300], final[4300];
	uint8_t buf[1 << 16];
	struct cj_hash *h = cj_hash_new();
	cj_autoclose int fd = -1;
	ssize_t n;

	snprintf(tmp, sizeof tmp, "%s/blobs/sha256/load-%d.tmp", l->st->dir, (int)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		cj_hash_final_hex(h, (char[65]){0});
		return cj_fail(err, errno, "create %s", tmp);
	}
	while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
		if (mb->size == 0)
			mb->gzip = n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
		bool small = mb->text || (keep_text(mb->name) && mb->size == 0);
		if (small && mb->size + (size_t)n <= CJ_IMAGE_JSON_MAX) {
			char *t = realloc(mb->text, mb->size + (size_t)n + 1);
			if (!t)
				break;
			memcpy(t + mb->size, buf, (size_t)n);
			t[mb->size + (size_t)n] = '\0';
			mb->text = t;
			mb->len = mb->size + (size_t)n;
		}
		cj_hash_update(h, buf, (size_t)n);
		mb->size += (uint64_t)n;
		if (write(fd, buf, (size_t)n) != n) {
			n = -2;
			break;
		}
	}
	memcpy(mb->digest, "sha256:", 7);
	cj_hash_final_hex(h, mb->digest + 7);
	if (n < 0) {
		unlink(tmp);
		return n == -2 ? cj_fail(err, errno, "write %s", tmp)
		               : cj_fail(err, 0, "read %s: %s", mb->name, archive_error_string(a));
	}
	cj_store_blob_path(l->st, mb->digest, final, sizeof final);
	if (rename(tmp, final) < 0) {
		int e = errno;
		unlink(tmp);
		return cj_fail(err, e, "store %s", mb->name);
	}
	return 0;
}

/* One new member: the archive's current regular file. */
static int add_member(struct load *l, struct archive *a, const char *clean, struct cj_err *err)
{
	struct member *nm;

	if (l->n == MAX_MEMBERS)
		return cj_fail(err, 0, "the archive has more than %d files", MAX_MEMBERS);
	if (!(nm = realloc(l->m, (l->n + 1) * sizeof *nm)))
		return cj_fail(err, ENOMEM, "load");
	l->m = nm;
	l->m[l->n] = (struct member){.name = strdup(clean)};
	if (!l->m[l->n].name)
		return cj_fail(err, ENOMEM, "load");
	return member_to_blob(l, a, &l->m[l->n++], err);
}

static int read_all(struct load *l, struct archive *a, const char *file, struct cj_err *err)
{
	struct archive_entry *e;
	char clean[PATH_MAX];
	int hr;

	while ((hr = archive_read_next_header(a, &e)) == ARCHIVE_OK || hr == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);
		if (archive_entry_filetype(e) != AE_IFREG || !name ||
		    cj_layer_clean_path(name, clean, sizeof clean) < 0 || !clean[0])
			continue;
		if (add_member(l, a, clean, err) < 0)
			return -1;
	}
	return hr == ARCHIVE_EOF ? 0
	                         : cj_fail(err, 0, "read %s: %s", file, archive_error_string(a));
}

static int read_members(struct load *l, const char *file, struct cj_err *err)
{
	struct archive *a = cj_layer_reader_new();
	int r;

	if (!a)
		return cj_fail(err, ENOMEM, "libarchive");
	if (archive_read_open_filename(a, file, 1 << 16) != ARCHIVE_OK)
		r = cj_fail(err, 0, "open %s: %s", file, archive_error_string(a));
	else
		r = read_all(l, a, file, err);
	archive_read_free(a);
	return r;
}

static struct member *member(struct load *l, const char *name)
{
	char clean[PATH_MAX];

	if (cj_layer_clean_path(name, clean, sizeof clean) < 0)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->m[i].name, clean) == 0)
			return &l->m[i];
	return NULL;
}

static int named(struct load *l, const char *name, const char *digest, const char *media_type,
                 uint64_t size, struct cj_err *err)
{
	struct cj_store_entry e = {.size = size};
	struct cj_load_result *nr;
	struct cj_reg_ref ref;

	if (name && name[0]) {
		if (cj_reg_ref_parse(name, &ref, err) < 0)
			return -1;
		cj_reg_ref_str(&ref, e.name, sizeof e.name);
	}
	snprintf(e.digest, sizeof e.digest, "%s", digest);
	snprintf(e.media_type, sizeof e.media_type, "%s", media_type);
	if (cj_store_set_name(l->st, &e, true, err) < 0)
		return -1;
	if (!(nr = realloc(l->res, (l->nres + 1) * sizeof *nr)))
		return cj_fail(err, ENOMEM, "load");
	l->res = nr;
	snprintf(nr[l->nres].name, sizeof nr[l->nres].name, "%s", e.name);
	snprintf(nr[l->nres].digest, sizeof nr[l->nres].digest, "%s", digest);
	l->nres++;
	return 0;
}

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : NULL;
}

static json_object *descriptor(const char *media_type, const struct member *m)
{
	json_object *d = json_object_new_object();

	json_object_object_add(d, "mediaType", json_object_new_string(media_type));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)m->size));
	json_object_object_add(d, "digest", json_object_new_string(m->digest));
	return d;
}

/* A Docker v2 manifest for one image of manifest.json, stored. */
static int docker_manifest(struct load *l, json_object *img, char digest[72], size_t *len,
                           struct cj_err *err)
{
	const char *cfg = str_of(img, "Config");
	struct member *c = cfg ? member(l, cfg) : NULL;
	json_object *layers, *m, *arr;
	const char *text;
	struct cj_hash *h;

	if (!c || !json_object_object_get_ex(img, "Layers", &layers) ||
	    !json_object_is_type(layers, json_type_array))
		return cj_fail(err, 0, "manifest.json: an image lacks its Config or Layers");
	m = json_object_new_object();
	arr = json_object_new_array();
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(
	    m, "mediaType",
	    json_object_new_string("application/vnd.docker.distribution.manifest.v2+json"));
	json_object_object_add(m, "config",
	                       descriptor("application/vnd.docker.container.image.v1+json", c));
	for (size_t i = 0; i < json_object_array_length(layers); i++) {
		const char *ln = json_object_get_string(json_object_array_get_idx(layers, i));
		struct member *lm = ln ? member(l, ln) : NULL;
		if (!lm) {
			json_object_put(m);
			json_object_put(arr);
			return cj_fail(err, 0,
			               "manifest.json names layer %s, which the archive lacks",
			               ln ? ln : "?");
		}
		json_object_array_add(
		    arr, descriptor(lm->gzip ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
		                             : "application/vnd.docker.image.rootfs.diff.tar",
		                    lm));
	}
	json_object_object_add(m, "layers", arr);
	text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
	*len = strlen(text);
	h = cj_hash_new();
	cj_hash_update(h, text, *len);
	memcpy(digest, "sha256:", 7);
	cj_hash_final_hex(h, digest + 7);
	int r = cj_store_put_blob(l->st, digest, text, *len, err);
	json_object_put(m);
	return r;
}

static int load_docker(struct load *l, const struct member *mf, struct cj_err *err)
{
	static const char mt[] = "application/vnd.docker.distribution.manifest.v2+json";
	json_object *root = json_tokener_parse(mf->text ? mf->text : ""), *tags;
	int r = 0;

	if (!root || !json_object_is_type(root, json_type_array)) {
		json_object_put(root);
		return cj_fail(err, 0, "manifest.json is not a JSON array");
	}
	for (size_t i = 0; i < json_object_array_length(root) && r == 0; i++) {
		json_object *img = json_object_array_get_idx(root, i);
		char digest[72];
		size_t len = 0, ntags = 0;
		if ((r = docker_manifest(l, img, digest, &len, err)) < 0)
			break;
		if (json_object_object_get_ex(img, "RepoTags", &tags) &&
		    json_object_is_type(tags, json_type_array))
			ntags = json_object_array_length(tags);
		for (size_t t = 0; t < ntags && r == 0; t++)
			r = named(l, json_object_get_string(json_object_array_get_idx(tags, t)),
			          digest, mt, len, err);
		if (r == 0 && ntags == 0)
			r = named(l, NULL, digest, mt, len, err);
	}
	json_object_put(root);
	return r;
}

/* Every blobs/sha256/<hex> member must hash to <hex>. */
static int check_oci_members(struct load *l, struct cj_err *err)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *nm = l->m[i].name;
		if (strncmp(nm, "blobs/sha256/", 13) == 0 &&
		    strcmp(nm + 13, l->m[i].digest + 7) != 0)
			return cj_fail(err, 0,
			               "%s does not match its digest (it hashes to %s): refused",
			               nm, l->m[i].digest);
	}
	return 0;
}

/* The name an OCI index entry gives its image, or NULL. */
static const char *oci_name(json_object *d)
{
	json_object *ann;
	const char *n;

	if (!json_object_object_get_ex(d, "annotations", &ann))
		return NULL;
	if ((n = str_of(ann, "io.containerd.image.name")))
		return n;
	n = str_of(ann, CJ_STORE_ANNOTATION);
	return n && (strchr(n, '/') || strchr(n, ':')) ? n : NULL;
}

static int load_oci(struct load *l, const struct member *idx, struct cj_err *err)
{
	json_object *root = json_tokener_parse(idx->text ? idx->text : ""), *ms;
	int r = check_oci_members(l, err);

	if (r == 0 && (!root || !json_object_object_get_ex(root, "manifests", &ms) ||
	               !json_object_is_type(ms, json_type_array)))
		r = cj_fail(err, 0, "index.json has no manifests array");
	for (size_t i = 0; r == 0 && i < json_object_array_length(ms); i++) {
		json_object *d = json_object_array_get_idx(ms, i), *sz;
		const char *dg = str_of(d, "digest"), *mt = str_of(d, "mediaType");
		if (!dg || !cj_digest_valid(dg) || !json_object_object_get_ex(d, "size", &sz))
			r = cj_fail(err, 0, "index.json: manifest %zu has no valid digest and size",
			            i);
		else if (!cj_store_has_blob(l->st, dg, (uint64_t)json_object_get_int64(sz)))
			r = cj_fail(err, 0, "index.json names %s, which the archive lacks", dg);
		else
			r = named(l, oci_name(d), dg,
			          mt ? mt : "application/vnd.oci.image.manifest.v1+json",
			          (uint64_t)json_object_get_int64(sz), err);
	}
	json_object_put(root);
	return r;
}

int cj_load(const char *cache_dir, const char *file, struct cj_load_result **out, size_t *n,
            struct cj_err *err)
{
	struct cj_store st;
	struct load l = {.st = &st};
	const struct member *idx, *mf;
	cj_autoclose int lock = -1;
	uint64_t freed = 0;
	int r;

	cj_store_paths(cache_dir, &st);
	if (cj_mkdir_p(cache_dir, 0755, err) < 0 || (lock = cj_store_lock(&st, true, err)) < 0 ||
	    cj_store_init(&st, err) < 0)
		return -1;
	r = read_members(&l, file, err);
	idx = member(&l, "index.json");
	mf = member(&l, "manifest.json");
	if (r == 0 && idx && member(&l, "oci-layout"))
		r = load_oci(&l, idx, err);
	else if (r == 0 && mf)
		r = load_docker(&l, mf, err);
	else if (r == 0)
		r = cj_fail(err, 0,
		            "%s is neither a docker-archive (no manifest.json) nor an OCI archive "
		            "(no oci-layout and index.json)",
		            file);
	/* what no image uses (and, after a failure, all that was written) */
	struct cj_err ignored = {0};
	cj_store_collect(&st, &freed, &ignored);
	for (size_t i = 0; i < l.n; i++) {
		free(l.m[i].name);
		free(l.m[i].text);
	}
	free(l.m);
	if (r < 0) {
		free(l.res);
		return cj_err_wrap(err, "load %s", file);
	}
	*out = l.res;
	*n = l.nres;
	return 0;
}
