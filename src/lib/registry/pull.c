/* SPDX-License-Identifier: Apache-2.0 */
/* Pulling into the store (see pull.h): resolve the manifest, then fetch
 * the blobs it names with libcurl's multi interface. */
#include "registry/pull.h"

#include "image/oci.h"
#include "registry/http.h"
#include "registry/store.h"
#include "util/interrupt.h"
#include "util/progress.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCEPT_ALL                                                                                 \
	"Accept: application/vnd.oci.image.index.v1+json, "                                        \
	"application/vnd.docker.distribution.manifest.list.v2+json, "                              \
	"application/vnd.oci.image.manifest.v1+json, "                                             \
	"application/vnd.docker.distribution.manifest.v2+json"
#define MAX_ATTEMPTS 3

static void sha256_of(const void *data, size_t len, char out[72])
{
	struct cj_hash *h = cj_hash_new();

	cj_hash_update(h, data, len);
	memcpy(out, "sha256:", 7);
	cj_hash_final_hex(h, out + 7);
}

struct manifest {
	char *body;
	size_t len;
	char digest[72];
	char media_type[128];
	bool is_index;
};

static bool is_index_type(const char *mt)
{
	return strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
	       strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0;
}

/* GET a manifest by tag or digest; a digest is verified. */
static int get_manifest(struct reg *r, const char *what, const char *want, struct manifest *m,
                        struct cj_err *err)
{
	cj_autofree char *url = NULL;
	struct resp rs;
	json_object *root, *mt;

	if (asprintf(&url, "%s/v2/%s/manifests/%s", r->base, r->ref.path, what) < 0)
		return cj_fail(err, ENOMEM, "url");
	if (reg_get(r, url, ACCEPT_ALL, CJ_IMAGE_JSON_MAX, &rs, err) < 0)
		return -1;
	if (rs.code != 200) {
		char label[600];
		snprintf(label, sizeof label, "image %s/%s:%s", r->ref.host, r->ref.path, what);
		reg_http_fail(r, &rs, label, err);
		free(rs.body);
		return -1;
	}
	m->body = rs.body ? rs.body : strdup("");
	m->len = rs.len;
	sha256_of(m->body, m->len, m->digest);
	if (want && strcmp(want, m->digest) != 0)
		return cj_fail(err, 0,
		               "registry %s: manifest %s does not match its digest (it hashes "
		               "to %s): refused",
		               r->ref.host, want, m->digest);
	root = json_tokener_parse(m->body);
	if (root && json_object_object_get_ex(root, "mediaType", &mt) &&
	    json_object_is_type(mt, json_type_string))
		snprintf(m->media_type, sizeof m->media_type, "%s", json_object_get_string(mt));
	else
		snprintf(m->media_type, sizeof m->media_type, "%s", rs.ctype);
	m->media_type[strcspn(m->media_type, ";")] = '\0';
	m->is_index = is_index_type(m->media_type) ||
	              (root && json_object_object_get_ex(root, "manifests", NULL));
	json_object_put(root);
	return root ? 0
	            : cj_fail(err, 0, "registry %s: manifest %s is not JSON", r->ref.host, what);
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : "";
}

/* The index's entry for os/arch[/variant] (variant checked when given). */
static int pick_platform(const struct manifest *idx, const char *platform, char digest[72],
                         struct cj_err *err)
{
	char os[32] = "linux", arch[32] = "amd64", variant[32] = "";
	json_object *root = json_tokener_parse(idx->body), *ms, *p;
	int ret = -1;

	if (platform && sscanf(platform, "%31[^/]/%31[^/]/%31s", os, arch, variant) < 2)
		return cj_fail(err, 0, "--platform %s: give OS/ARCH[/VARIANT], e.g. linux/amd64",
		               platform);
	if (!root || !json_object_object_get_ex(root, "manifests", &ms) ||
	    !json_object_is_type(ms, json_type_array)) {
		json_object_put(root);
		return cj_fail(err, 0, "image index %s has no manifests", idx->digest);
	}
	for (size_t i = 0; i < json_object_array_length(ms) && ret < 0; i++) {
		json_object *d = json_object_array_get_idx(ms, i);
		if (!json_object_object_get_ex(d, "platform", &p) ||
		    strcmp(str_field(p, "os"), os) != 0 ||
		    strcmp(str_field(p, "architecture"), arch) != 0 ||
		    (variant[0] && strcmp(str_field(p, "variant"), variant) != 0))
			continue;
		if (!cj_digest_valid(str_field(d, "digest")))
			break;
		snprintf(digest, 72, "%s", str_field(d, "digest"));
		ret = 0;
	}
	json_object_put(root);
	if (ret < 0)
		cj_fail(err, 0, "image index %s has no %s/%s%s%s image (--platform)", idx->digest,
		        os, arch, variant[0] ? "/" : "", variant);
	return ret;
}

/* The image's manifest: by tag or digest, through an index to the
 * platform's. */
static int resolve(struct reg *r, const char *platform, struct manifest *m, struct cj_err *err)
{
	const char *what = r->ref.digest[0] ? r->ref.digest : r->ref.tag;
	char want[72];

	if (get_manifest(r, what, r->ref.digest[0] ? r->ref.digest : NULL, m, err) < 0)
		return -1;
	if (!m->is_index)
		return 0;
	if (pick_platform(m, platform, want, err) < 0)
		return -1;
	free(m->body);
	memset(m, 0, sizeof *m);
	if (get_manifest(r, want, want, m, err) < 0)
		return -1;
	return m->is_index ? cj_fail(err, 0, "image index %s nests another index", want) : 0;
}

/* ---- blob downloads ------------------------------------------------------------- */

struct dl {
	struct reg *r;
	const struct cj_store *st;
	const struct cj_descriptor *d;
	char partial[4300], final[4300];
	CURL *h;
	struct curl_slist *hdrs;
	int fd;
	struct cj_hash *hash;
	uint64_t have;  /* bytes in the partial file */
	uint64_t asked; /* the Range start of this attempt */
	bool started, oversize, bad_status, done;
	int attempts;
	long code;
	struct cj_progress *prog;
};

static size_t on_blob(char *p, size_t sz, size_t n, void *ud)
{
	struct dl *b = ud;
	size_t len = sz * n;

	if (!b->started) {
		b->started = true;
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &b->code);
		if (b->code == 200 && b->asked > 0) { /* the Range was not honoured */
			if (ftruncate(b->fd, 0) < 0 || lseek(b->fd, 0, SEEK_SET) < 0)
				return 0;
			cj_hash_final_hex(b->hash, (char[65]){0});
			b->hash = cj_hash_new();
			b->have = 0;
		}
		b->bad_status = b->code != 200 && b->code != 206;
	}
	if (b->bad_status)
		return len; /* an error page: not the blob */
	if (b->have + len > b->d->size) {
		b->oversize = true;
		return 0;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(b->fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 0;
		off += (size_t)w;
	}
	cj_hash_update(b->hash, p, len);
	b->have += len;
	cj_progress_add(b->prog, len);
	return len;
}

/* Open <hex>.partial and hash what an earlier pull left in it. */
static int dl_open_partial(struct dl *b, struct cj_err *err)
{
	struct stat s;
	uint8_t buf[1 << 16];
	ssize_t n;

	b->fd = open(b->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (b->fd < 0 || fstat(b->fd, &s) < 0)
		return cj_fail(err, errno, "open %s", b->partial);
	b->hash = cj_hash_new();
	b->have = 0;
	if ((uint64_t)s.st_size > b->d->size && ftruncate(b->fd, 0) < 0)
		return cj_fail(err, errno, "truncate %s", b->partial);
	while ((n = read(b->fd, buf, sizeof buf)) > 0) {
		cj_hash_update(b->hash, buf, (size_t)n);
		b->have += (uint64_t)n;
	}
	if (n < 0)
		return cj_fail(err, errno, "read %s", b->partial);
	return 0;
}

static int dl_start(struct dl *b, CURLM *multi, struct cj_err *err)
{
	char url[1024], range[64];

	snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", b->r->base, b->r->ref.path, b->d->digest);
	b->hdrs = NULL;
	if (!(b->h = reg_handle(b->r, url, &b->hdrs, err)))
		return -1;
	b->asked = b->have;
	b->started = b->bad_status = false;
	b->code = 0;
	if (b->have > 0) {
		snprintf(range, sizeof range, "%llu-", (unsigned long long)b->have);
		curl_easy_setopt(b->h, CURLOPT_RANGE, range);
	}
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, b->hdrs);
	curl_easy_setopt(b->h, CURLOPT_BUFFERSIZE, 512L * 1024L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, on_blob);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(b->h, CURLOPT_PRIVATE, b);
	b->attempts++;
	if (curl_multi_add_handle(multi, b->h) != CURLM_OK)
		return cj_fail(err, 0, "libcurl: cannot add a transfer");
	return 0;
}

static void dl_release(struct dl *b, CURLM *multi)
{
	if (b->h) {
		curl_multi_remove_handle(multi, b->h);
		curl_easy_cleanup(b->h);
		b->h = NULL;
	}
	curl_slist_free_all(b->hdrs);
	b->hdrs = NULL;
}

static void dl_close(struct dl *b, CURLM *multi)
{
	dl_release(b, multi);
	if (b->hash)
		cj_hash_final_hex(b->hash, (char[65]){0});
	b->hash = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

/* The blob is whole: check its digest, then rename it into place. */
static int dl_finish(struct dl *b, CURLM *multi, struct cj_err *err)
{
	char got[72];

	memcpy(got, "sha256:", 7);
	cj_hash_final_hex(b->hash, got + 7);
	b->hash = NULL;
	if (strcmp(got, b->d->digest) != 0) {
		dl_close(b, multi);
		unlink(b->partial);
		return cj_fail(err, 0,
		               "registry %s: blob %s does not match its digest (it hashes to %s): "
		               "refused",
		               b->r->ref.host, b->d->digest, got);
	}
	if (fsync(b->fd) < 0 || rename(b->partial, b->final) < 0)
		return cj_fail(err, errno, "store blob %s", b->d->digest);
	dl_close(b, multi);
	b->done = true;
	cj_progress_end(b->prog, true);
	b->prog = NULL;
	return 0;
}

/* A partial file that is already whole: kept when it matches its digest
 * (0), else emptied for a fresh download (1). */
static int dl_complete(struct dl *b, CURLM *multi, struct cj_err *err)
{
	char got[72];
	struct cj_hash *h = b->hash;

	memcpy(got, "sha256:", 7);
	cj_hash_final_hex(h, got + 7);
	b->hash = cj_hash_new();
	if (strcmp(got, b->d->digest) == 0) {
		cj_hash_final_hex(b->hash, (char[65]){0});
		b->hash = NULL;
		if (rename(b->partial, b->final) < 0)
			return cj_fail(err, errno, "store blob %s", b->d->digest);
		dl_close(b, multi);
		b->done = true;
		return 0;
	}
	if (ftruncate(b->fd, 0) < 0 || lseek(b->fd, 0, SEEK_SET) < 0)
		return cj_fail(err, errno, "truncate %s", b->partial);
	b->have = 0;
	return 1;
}

static int dl_done(struct dl *b, CURLM *multi, CURLcode c, struct cj_err *err)
{
	const char *host = b->r->ref.host, *dg = b->d->digest;

	if (!b->started)
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &b->code);
	if (b->oversize) {
		dl_close(b, multi);
		unlink(b->partial);
		return cj_fail(err, 0,
		               "registry %s: blob %s is larger than the %llu bytes its descriptor "
		               "says: refused",
		               host, dg, (unsigned long long)b->d->size);
	}
	if (b->code != 0 && b->code != 200 && b->code != 206) {
		struct resp rs = {.code = b->code};
		char label[120];
		dl_close(b, multi);
		snprintf(label, sizeof label, "blob %s", dg);
		return reg_http_fail(b->r, &rs, label, err);
	}
	if (c == CURLE_OK && b->have == b->d->size)
		return dl_finish(b, multi, err);
	dl_release(b, multi);
	if (b->attempts < MAX_ATTEMPTS &&
	    (c == CURLE_OK || c == CURLE_PARTIAL_FILE || c == CURLE_RECV_ERROR ||
	     c == CURLE_GOT_NOTHING || c == CURLE_OPERATION_TIMEDOUT))
		return dl_start(b, multi, err) < 0 ? -1 : 1;
	dl_close(b, multi);
	if (c != CURLE_OK)
		reg_curl_fail(b->r, c, err);
	else
		cj_fail(err, 0, "the body ended early");
	return cj_err_wrap(err,
	                   "blob %s: cut off after %llu of %llu bytes; pull again to resume the "
	                   "download",
	                   dg, (unsigned long long)b->have, (unsigned long long)b->d->size);
}

/* Start the next downloads, up to CJ_PULL_PARALLEL at once. */
static int dl_fill(struct dl *v, size_t n, size_t *next, size_t *active, CURLM *multi,
                   struct cj_err *err)
{
	while (*active < CJ_PULL_PARALLEL && *next < n) {
		struct dl *b = &v[(*next)++];
		char label[40];
		bool dup = false;
		for (struct dl *o = v; o < b && !dup; o++)
			dup = strcmp(o->d->digest, b->d->digest) == 0;
		if (dup || cj_store_has_blob(b->st, b->d->digest, b->d->size))
			continue;
		if (dl_open_partial(b, err) < 0)
			return -1;
		if (b->have == b->d->size && b->have > 0) { /* whole, not yet checked */
			int r = dl_complete(b, multi, err);
			if (r < 0)
				return -1;
			if (r == 0)
				continue; /* kept: on to the next blob */
		}
		snprintf(label, sizeof label, "pull %.19s", b->d->digest);
		b->prog = cj_progress_start(label, CJ_PROGRESS_BYTES, b->d->size);
		cj_progress_add(b->prog, b->have);
		if (dl_start(b, multi, err) < 0)
			return -1;
		(*active)++;
	}
	return 0;
}

static int dl_loop(struct dl *v, size_t n, CURLM *multi, const volatile sig_atomic_t *cancel,
                   struct cj_err *err)
{
	size_t next = 0, active = 0;
	CURLMsg *msg;
	int still, q;

	for (;;) {
		if (dl_fill(v, n, &next, &active, multi, err) < 0)
			return -1;
		if (active == 0)
			return 0;
		if (cancel && *cancel)
			return cj_fail(err, EINTR,
			               "pull interrupted (the downloads resume next time)");
		curl_multi_perform(multi, &still);
		while ((msg = curl_multi_info_read(multi, &q))) {
			struct dl *b = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
			int r = dl_done(b, multi, msg->data.result, err);
			if (r < 0)
				return -1;
			if (r == 0)
				active--;
		}
		curl_multi_poll(multi, NULL, 0, 200, NULL);
	}
}

static int download_all(struct reg *r, const struct cj_store *st, const struct cj_descriptor *ds,
                        size_t n, const volatile sig_atomic_t *cancel, struct cj_err *err)
{
	cj_autofree struct dl *v = calloc(n ? n : 1, sizeof *v);
	CURLM *multi = curl_multi_init();
	int ret;

	if (!v || !multi) {
		if (multi)
			curl_multi_cleanup(multi);
		return cj_fail(err, ENOMEM, "downloads");
	}
	for (size_t i = 0; i < n; i++) {
		v[i] = (struct dl){.r = r, .st = st, .d = &ds[i], .fd = -1};
		cj_store_blob_path(st, ds[i].digest, v[i].final, sizeof v[i].final);
		snprintf(v[i].partial, sizeof v[i].partial, "%s.partial", v[i].final);
	}
	ret = dl_loop(v, n, multi, cancel, err);
	for (size_t i = 0; i < n; i++) { /* what is left stays resumable */
		if (v[i].prog)
			cj_progress_end(v[i].prog, false);
		dl_close(&v[i], multi);
	}
	curl_multi_cleanup(multi);
	return ret;
}

/* The manifest's blobs: its config, then its layers. */
static int blobs_of(const struct manifest *m, struct cj_oci_manifest *om,
                    struct cj_descriptor **out, size_t *n, struct cj_err *err)
{
	if (cj_oci_manifest_parse(m->body, m->len, om, err) < 0)
		return cj_err_wrap(err, "manifest %s", m->digest);
	*n = om->nlayers + 1;
	if (!(*out = calloc(*n, sizeof **out)))
		return cj_fail(err, ENOMEM, "manifest");
	(*out)[0] = om->config;
	for (size_t i = 0; i < om->nlayers; i++)
		(*out)[i + 1] = om->layers[i];
	return 0;
}

static int pull_locked(struct reg *r, const struct cj_store *st, const struct cj_pull_opts *o,
                       struct cj_store_entry *e, struct cj_err *err)
{
	struct manifest m = {0};
	struct cj_oci_manifest om = {0};
	cj_autofree struct cj_descriptor *ds = NULL; /* shallow copies of om's */
	size_t n = 0;
	int ret = resolve(r, o->platform, &m, err);

	if (ret == 0)
		ret = blobs_of(&m, &om, &ds, &n, err);
	if (ret == 0)
		ret = download_all(r, st, ds, n, o->cancel, err);
	if (ret == 0)
		ret = cj_store_put_blob(st, m.digest, m.body, m.len, err);
	if (ret == 0) {
		cj_reg_ref_str(&r->ref, e->name, sizeof e->name);
		snprintf(e->digest, sizeof e->digest, "%s", m.digest);
		snprintf(e->media_type, sizeof e->media_type, "%s",
		         m.media_type[0] ? m.media_type
		                         : "application/vnd.oci.image.manifest.v1+json");
		e->size = m.len;
		ret = cj_store_set_name(st, e, true, err);
	}
	cj_oci_manifest_free(&om);
	free(m.body);
	return ret;
}

int cj_pull(const char *ref, const struct cj_pull_opts *o, char name[512], char digest[72],
            struct cj_err *err)
{
	struct cj_store st;
	struct cj_store_entry e = {0};
	cj_autoclose int lock = -1;
	struct reg r;
	int ret;

	if (reg_open(&r, ref, o, err) < 0) {
		reg_close(&r);
		return -1;
	}
	cj_store_paths(o->cache_dir, &st);
	if (cj_mkdir_p(o->cache_dir, 0755, err) < 0 || (lock = cj_store_lock(&st, true, err)) < 0 ||
	    cj_store_init(&st, err) < 0) {
		reg_close(&r);
		return -1;
	}
	ret = pull_locked(&r, &st, o, &e, err);
	reg_close(&r);
	if (ret < 0)
		return cj_err_wrap(err, "pull %s", ref);
	snprintf(name, 512, "%s", e.name);
	snprintf(digest, 72, "%s", e.digest);
	return 0;
}

void cj_pull_settings_free(struct cj_pull_settings *s)
{
	free(s->platform);
	free(s->creds);
	free(s->cert_dir);
	free(s->insecure);
	memset(s, 0, sizeof *s);
}

static const char *env_get(char **env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

void cj_pull_opts_from(const struct cj_pull_settings *s, const char *cache_dir, char **env,
                       struct cj_pull_opts *o)
{
	*o = (struct cj_pull_opts){
	    .cache_dir = cache_dir,
	    .platform = s->platform,
	    .creds = s->creds,
	    .env_auth = env_get(env, "CTR_JAILER_REGISTRY_AUTH"),
	    .home = env_get(env, "HOME"),
	    .docker_config = env_get(env, "DOCKER_CONFIG"),
	    .cert_dir = s->cert_dir,
	    .insecure = s->insecure,
	};
}

int cj_pull_for_run(const char *ref, const struct cj_pull_settings *s, const char *cache_dir,
                    char **env, struct cj_err *err)
{
	struct cj_store st;
	struct cj_store_entry e;
	struct cj_pull_opts o;
	char name[512], digest[72];
	int found;

	struct cj_reg_ref parsed;
	struct cj_err ignored = {0};

	if (cj_image_ref_is_file_form(ref) || cj_reg_ref_parse(ref, &parsed, &ignored) < 0)
		return 0; /* opening it says what is wrong */
	cj_store_paths(cache_dir, &st);
	if ((found = cj_store_find(&st, ref, &e, err)) < 0)
		return -1;
	if (s->policy == CJ_PULL_NEVER || (found && s->policy == CJ_PULL_MISSING))
		return 0;
	/* A stop signal stops the downloads as `pull`'s does: what is whole
	 * is kept, what is not stays resumable (.partial), the store's lock is
	 * let go, and the run ends with 128+N. */
	cj_pull_opts_from(s, cache_dir, env, &o);
	o.cancel = cj_interrupt_flag();
	cj_interrupt_catch();
	int r = cj_pull(ref, &o, name, digest, err);
	cj_interrupt_release();
	int signo = cj_interrupted();
	if (signo)
		return cj_fail_code(err, 128 + signo, 0,
		                    "interrupted by %s while pulling %s (the download resumes "
		                    "next time)",
		                    strsignal(signo), ref);
	return r;
}
