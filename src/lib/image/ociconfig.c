/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pure parsers for image input: image references, OCI index and manifest,
 * `docker save` manifest.json, image config; and docker's rules for merging
 * the config with the command line. Everything here is hostile input (an
 * image comes from anywhere): JSON goes through json-c in strict mode with a
 * depth limit, every field is type-checked and bounded, digests must be
 * exactly sha256:<64 lowercase hex> (they become file names), strings with
 * NUL bytes are refused. No I/O: fuzzed by tests/fuzz/fuzz_image_config.c.
 */
#include "image/oci.h"

#include "ctrj/protocol.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH 64

/* ---- references ------------------------------------------------------------ */

void cj_image_ref_free(struct cj_image_ref *ref)
{
	free(ref->path);
	free(ref->tag);
	memset(ref, 0, sizeof *ref);
}

int cj_image_ref_parse(const char *s, struct cj_image_ref *ref, struct cj_err *err)
{
	static const struct {
		const char *prefix;
		enum cj_image_kind kind;
	} kinds[] = {
	    {"oci:", CJ_IMAGE_OCI},
	    {"docker-archive:", CJ_IMAGE_DOCKER_ARCHIVE},
	    {"tar:", CJ_IMAGE_TAR},
	};
	const char *rest = NULL;

	memset(ref, 0, sizeof *ref);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strncmp(s, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
			ref->kind = kinds[i].kind;
			rest = s + strlen(kinds[i].prefix);
		}
	if (!rest)
		return cj_fail(err, 0,
		               "image '%s' is invalid: use oci:DIR[:TAG], docker-archive:FILE or "
		               "tar:FILE",
		               s);
	if (ref->kind == CJ_IMAGE_OCI) {
		/* skopeo's rule: the tag follows the last ':', unless that part
		 * names a path (has a '/'). */
		const char *colon = strrchr(rest, ':');
		if (colon && colon != rest && colon[1] && !strchr(colon + 1, '/')) {
			ref->path = strndup(rest, (size_t)(colon - rest));
			ref->tag = strdup(colon + 1);
			if (!ref->path || !ref->tag) {
				cj_image_ref_free(ref);
				return cj_fail(err, ENOMEM, "image reference");
			}
		} else if (colon && !colon[1]) {
			return cj_fail(err, 0, "image '%s' has an empty tag", s);
		}
	}
	if (!ref->path)
		ref->path = strdup(rest);
	if (!ref->path) {
		cj_image_ref_free(ref);
		return cj_fail(err, ENOMEM, "image reference");
	}
	if (!ref->path[0]) {
		cj_image_ref_free(ref);
		return cj_fail(err, 0, "image '%s' names no %s", s,
		               strncmp(s, "oci:", 4) == 0 ? "directory" : "file");
	}
	return 0;
}

/* ---- JSON helpers ------------------------------------------------------------ */

static json_object *parse_json(const char *text, size_t len, const char *what, struct cj_err *err)
{
	json_tokener *tok;
	json_object *obj;
	size_t end;

	if (len > CJ_IMAGE_JSON_MAX) {
		cj_fail(err, 0, "%s is too large (%zu bytes, at most %u)", what, len,
		        CJ_IMAGE_JSON_MAX);
		return NULL;
	}
	/* JSON text never holds a raw NUL; json-c would stop reading there. */
	if (memchr(text, '\0', len)) {
		cj_fail(err, 0, "%s is not JSON (it holds a NUL byte)", what);
		return NULL;
	}
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok) {
		cj_fail(err, ENOMEM, "%s", what);
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (!obj) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		cj_fail(err, 0, "%s is not valid JSON: %s", what,
		        e == json_tokener_continue || e == json_tokener_success
		            ? "it ends too early"
		            : json_tokener_error_desc(e));
		json_tokener_free(tok);
		return NULL;
	}
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (end < len && isspace((unsigned char)text[end]))
		end++;
	if (end != len) {
		json_object_put(obj);
		cj_fail(err, 0, "%s is not valid JSON: unexpected data after the value", what);
		return NULL;
	}
	return obj;
}

/* Parse the JSON document json and read it with fields into out; the JSON
 * is released either way (the caller frees out on failure). */
static int parse_doc(const char *json, size_t len, const char *what,
                     int (*fields)(json_object *root, void *out, struct cj_err *err), void *out,
                     struct cj_err *err)
{
	json_object *root = parse_json(json, len, what, err);
	int r;

	if (!root)
		return -1;
	r = fields(root, out, err);
	json_object_put(root);
	return r;
}

/* A string without NUL bytes, at most CTRJ_MAX_STRING long. */
static int get_string(json_object *o, const char *what, const char **out, struct cj_err *err)
{
	const char *s;
	int len;

	if (!json_object_is_type(o, json_type_string))
		return cj_fail(err, 0, "%s must be a string", what);
	s = json_object_get_string(o);
	len = json_object_get_string_len(o);
	if (len < 0 || strlen(s) != (size_t)len)
		return cj_fail(err, 0, "%s holds a NUL character", what);
	if ((size_t)len > CTRJ_MAX_STRING)
		return cj_fail(err, 0, "%s is too long", what);
	*out = s;
	return 0;
}

/* Optional string member: absent or null leaves *out NULL. */
static int opt_string(json_object *parent, const char *key, const char *what, char **out,
                      struct cj_err *err)
{
	json_object *o;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(parent, key, &o) || json_object_is_type(o, json_type_null))
		return 0;
	if (get_string(o, what, &s, err) < 0)
		return -1;
	*out = strdup(s);
	return *out ? 0 : cj_fail(err, ENOMEM, "%s", what);
}

static int string_array(json_object *o, const char *what, size_t max, struct cj_strv *out,
                        struct cj_err *err)
{
	size_t n;

	if (!json_object_is_type(o, json_type_array))
		return cj_fail(err, 0, "%s must be an array of strings", what);
	n = json_object_array_length(o);
	if (n > max)
		return cj_fail(err, 0, "%s has too many entries (%zu, at most %zu)", what, n, max);
	for (size_t i = 0; i < n; i++) {
		const char *s;
		if (get_string(json_object_array_get_idx(o, i), what, &s, err) < 0)
			return -1;
		if (cj_strv_push(out, s) < 0)
			return cj_fail(err, ENOMEM, "%s", what);
	}
	return 0;
}

/* Optional array of strings; *present tells an explicit [] from absent/null. */
static int opt_string_array(json_object *parent, const char *key, const char *what, size_t max,
                            struct cj_strv *out, bool *present, struct cj_err *err)
{
	json_object *o;

	if (present)
		*present = false;
	if (!json_object_object_get_ex(parent, key, &o) || json_object_is_type(o, json_type_null))
		return 0;
	if (present)
		*present = true;
	return string_array(o, what, max, out, err);
}

bool cj_digest_valid(const char *s)
{
	if (strncmp(s, "sha256:", 7) != 0)
		return false;
	for (int i = 0; i < 64; i++) {
		char c = s[7 + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return s[71] == '\0';
}

static int check_digest(const char *s, const char *what, struct cj_err *err)
{
	if (cj_digest_valid(s))
		return 0;
	if (strchr(s, ':') && strncmp(s, "sha256:", 7) != 0)
		return cj_fail(err, 0,
		               "%s '%.80s' uses an unsupported digest algorithm (only sha256)",
		               what, s);
	return cj_fail(err, 0, "%s '%.80s' is not a sha256 digest", what, s);
}

/* ---- descriptors, index, manifest -------------------------------------------- */

static void descriptor_free(struct cj_descriptor *d)
{
	free(d->media_type);
	free(d->ref_name);
	free(d->os);
	free(d->arch);
	memset(d, 0, sizeof *d);
}

static bool media_type_is_index(const char *mt)
{
	return mt && (strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
	              strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
}

static int descriptor_fields(json_object *o, const char *what, struct cj_descriptor *d,
                             struct cj_err *err)
{
	json_object *v, *ann, *plat;
	const char *s;
	int64_t size;

	if (!json_object_is_type(o, json_type_object))
		return cj_fail(err, 0, "%s must be an object", what);
	if (opt_string(o, "mediaType", what, &d->media_type, err) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "digest", &v))
		return cj_fail(err, 0, "%s has no digest", what);
	if (get_string(v, what, &s, err) < 0 || check_digest(s, what, err) < 0)
		return -1;
	memcpy(d->digest, s, CJ_DIGEST_LEN + 1);
	if (!json_object_object_get_ex(o, "size", &v) || !json_object_is_type(v, json_type_int))
		return cj_fail(err, 0, "%s %s has no valid size", what, d->digest);
	errno = 0;
	size = json_object_get_int64(v);
	if (size < 0 || errno == ERANGE)
		return cj_fail(err, 0, "%s %s has a size out of range", what, d->digest);
	d->size = (uint64_t)size;
	if (json_object_object_get_ex(o, "annotations", &ann) &&
	    !json_object_is_type(ann, json_type_null)) {
		if (!json_object_is_type(ann, json_type_object))
			return cj_fail(err, 0, "%s annotations must be an object", what);
		if (opt_string(ann, "org.opencontainers.image.ref.name", "annotation ref.name",
		               &d->ref_name, err) < 0)
			return -1;
	}
	if (json_object_object_get_ex(o, "platform", &plat) &&
	    !json_object_is_type(plat, json_type_null)) {
		if (!json_object_is_type(plat, json_type_object))
			return cj_fail(err, 0, "%s platform must be an object", what);
		if (opt_string(plat, "os", "platform os", &d->os, err) < 0 ||
		    opt_string(plat, "architecture", "platform architecture", &d->arch, err) < 0)
			return -1;
	}
	return 0;
}

static int parse_descriptor(json_object *o, const char *what, struct cj_descriptor *d,
                            struct cj_err *err)
{
	memset(d, 0, sizeof *d);
	if (descriptor_fields(o, what, d, err) < 0) {
		descriptor_free(d);
		return -1;
	}
	d->is_index = media_type_is_index(d->media_type);
	return 0;
}

void cj_oci_index_free(struct cj_oci_index *idx)
{
	for (size_t i = 0; i < idx->n; i++)
		descriptor_free(&idx->manifests[i]);
	free(idx->manifests);
	memset(idx, 0, sizeof *idx);
}

static int index_fields(json_object *root, void *out, struct cj_err *err)
{
	struct cj_oci_index *idx = out;
	json_object *ms;
	size_t n;

	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "manifests", &ms) ||
	    !json_object_is_type(ms, json_type_array))
		return cj_fail(err, 0, "index has no \"manifests\" array");
	n = json_object_array_length(ms);
	if (n == 0 || n > CJ_IMAGE_MAX_DESC)
		return cj_fail(err, 0, "index lists %zu manifests (expected 1 to %u)", n,
		               CJ_IMAGE_MAX_DESC);
	idx->manifests = calloc(n, sizeof *idx->manifests);
	if (!idx->manifests)
		return cj_fail(err, ENOMEM, "index");
	for (size_t i = 0; i < n; i++) {
		if (parse_descriptor(json_object_array_get_idx(ms, i), "index manifest",
		                     &idx->manifests[i], err) < 0)
			return -1;
		idx->n++;
	}
	return 0;
}

int cj_oci_index_parse(const char *json, size_t len, struct cj_oci_index *idx, struct cj_err *err)
{
	memset(idx, 0, sizeof *idx);
	if (parse_doc(json, len, "index", index_fields, idx, err) < 0) {
		cj_oci_index_free(idx);
		return -1;
	}
	return 0;
}

void cj_oci_manifest_free(struct cj_oci_manifest *m)
{
	descriptor_free(&m->config);
	for (size_t i = 0; i < m->nlayers; i++)
		descriptor_free(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof *m);
}

/* Layer media types we can apply: tar, optionally gzip or zstd compressed
 * (libarchive detects the compression from the content anyway). */
static bool layer_media_type_ok(const char *mt)
{
	static const char *const ok[] = {
	    "application/vnd.oci.image.layer.v1.tar",
	    "application/vnd.oci.image.layer.v1.tar+gzip",
	    "application/vnd.oci.image.layer.v1.tar+zstd",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	    "application/vnd.docker.image.rootfs.diff.tar",
	    "application/vnd.docker.image.rootfs.diff.tar.gzip",
	    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	};
	if (!mt)
		return true; /* optional in old manifests */
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(mt, ok[i]) == 0)
			return true;
	return false;
}

static int manifest_fields(json_object *root, void *out, struct cj_err *err)
{
	struct cj_oci_manifest *m = out;
	json_object *v;
	size_t n;

	if (!json_object_is_type(root, json_type_object))
		return cj_fail(err, 0, "manifest must be a JSON object");
	if (json_object_object_get_ex(root, "manifests", &v))
		return cj_fail(err, 0, "manifest is an index, not an image manifest");
	if (!json_object_object_get_ex(root, "config", &v))
		return cj_fail(err, 0, "manifest has no config");
	if (parse_descriptor(v, "manifest config", &m->config, err) < 0)
		return -1;
	if (!json_object_object_get_ex(root, "layers", &v) ||
	    !json_object_is_type(v, json_type_array))
		return cj_fail(err, 0, "manifest has no \"layers\" array");
	n = json_object_array_length(v);
	if (n > CJ_IMAGE_MAX_LAYER)
		return cj_fail(err, 0, "manifest has %zu layers (at most %u)", n,
		               CJ_IMAGE_MAX_LAYER);
	m->layers = calloc(n ? n : 1, sizeof *m->layers);
	if (!m->layers)
		return cj_fail(err, ENOMEM, "manifest");
	for (size_t i = 0; i < n; i++) {
		char what[48];
		snprintf(what, sizeof what, "manifest layer %zu", i + 1);
		if (parse_descriptor(json_object_array_get_idx(v, i), what, &m->layers[i], err) < 0)
			return -1;
		m->nlayers++;
		if (!layer_media_type_ok(m->layers[i].media_type))
			return cj_fail(
			    err, 0, "manifest layer %zu has media type '%.100s', not a tar layer",
			    i + 1, m->layers[i].media_type);
	}
	return 0;
}

int cj_oci_manifest_parse(const char *json, size_t len, struct cj_oci_manifest *m,
                          struct cj_err *err)
{
	memset(m, 0, sizeof *m);
	if (parse_doc(json, len, "manifest", manifest_fields, m, err) < 0) {
		cj_oci_manifest_free(m);
		return -1;
	}
	return 0;
}

void cj_docker_manifest_free(struct cj_docker_manifest *m)
{
	free(m->config);
	cj_strv_free(&m->layers);
	memset(m, 0, sizeof *m);
}

static int docker_manifest_fields(json_object *root, void *out, struct cj_err *err)
{
	struct cj_docker_manifest *m = out;
	json_object *first, *v;

	if (!json_object_is_type(root, json_type_array) || json_object_array_length(root) == 0)
		return cj_fail(err, 0, "manifest.json must be a non-empty array");
	first = json_object_array_get_idx(root, 0);
	if (!json_object_is_type(first, json_type_object))
		return cj_fail(err, 0, "manifest.json entries must be objects");
	if (opt_string(first, "Config", "manifest.json Config", &m->config, err) < 0)
		return -1;
	if (!m->config || !m->config[0])
		return cj_fail(err, 0, "manifest.json names no Config");
	if (!json_object_object_get_ex(first, "Layers", &v))
		return cj_fail(err, 0, "manifest.json has no Layers");
	if (string_array(v, "manifest.json Layers", CJ_IMAGE_MAX_LAYER, &m->layers, err) < 0)
		return -1;
	for (size_t i = 0; i < m->layers.n; i++)
		if (!m->layers.v[i][0])
			return cj_fail(err, 0, "manifest.json layer %zu has an empty name", i + 1);
	return 0;
}

int cj_docker_manifest_parse(const char *json, size_t len, struct cj_docker_manifest *m,
                             struct cj_err *err)
{
	memset(m, 0, sizeof *m);
	if (parse_doc(json, len, "manifest.json", docker_manifest_fields, m, err) < 0) {
		cj_docker_manifest_free(m);
		return -1;
	}
	return 0;
}

/* ---- image config -------------------------------------------------------------- */

static const struct {
	const char *name;
	int num;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

/* Numbers as the Linux kernel has them (the guest's), not the host libc's
 * SIGRTMIN, which glibc shifts for its own use. */
#define LINUX_SIGRTMIN 32
#define LINUX_SIGRTMAX 64

static int small_number(const char *s, int max)
{
	int v = 0;

	if (!*s || strlen(s) > 3)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= max ? v : -1;
}

int cj_signal_parse(const char *s)
{
	char up[32];
	const char *name;
	size_t n = strlen(s);
	int v;

	if (n == 0 || n >= sizeof up)
		return -1;
	if ((v = small_number(s, LINUX_SIGRTMAX)) >= 0)
		return v >= 1 ? v : -1;
	for (size_t i = 0; i <= n; i++)
		up[i] = (char)toupper((unsigned char)s[i]);
	name = strncmp(up, "SIG", 3) == 0 ? up + 3 : up;
	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
		if (strcmp(name, signals[i].name) == 0)
			return signals[i].num;
	if (strncmp(name, "RTMIN", 5) == 0) {
		if (!name[5])
			return LINUX_SIGRTMIN;
		if (name[5] == '+' && (v = small_number(name + 6, 32)) >= 0 &&
		    LINUX_SIGRTMIN + v <= LINUX_SIGRTMAX)
			return LINUX_SIGRTMIN + v;
		return -1;
	}
	if (strncmp(name, "RTMAX", 5) == 0) {
		if (!name[5])
			return LINUX_SIGRTMAX;
		if (name[5] == '-' && (v = small_number(name + 6, 32)) >= 0 &&
		    LINUX_SIGRTMAX - v >= LINUX_SIGRTMIN)
			return LINUX_SIGRTMAX - v;
	}
	return -1;
}

void cj_image_config_free(struct cj_image_config *cfg)
{
	cj_strv_free(&cfg->entrypoint);
	cj_strv_free(&cfg->cmd);
	cj_strv_free(&cfg->env);
	free(cfg->workdir);
	free(cfg->user);
	free(cfg->stop_signal);
	cj_strv_free(&cfg->label_keys);
	cj_strv_free(&cfg->label_values);
	free(cfg->os);
	free(cfg->architecture);
	cj_strv_free(&cfg->diff_ids);
	cj_strv_free(&cfg->health_test);
	memset(cfg, 0, sizeof *cfg);
}

static int env_name_ok(const char *entry)
{
	const char *eq = strchr(entry, '=');

	if (!eq || eq == entry)
		return 0;
	for (const char *p = entry; p < eq; p++)
		if (isspace((unsigned char)*p))
			return 0;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_labels(json_object *o, struct cj_image_config *cfg, struct cj_err *err)
{
	size_t n = 0;
	char **keys;

	if (json_object_is_type(o, json_type_null))
		return 0;
	if (!json_object_is_type(o, json_type_object))
		return cj_fail(err, 0, "config Labels must be an object of strings");
	if (json_object_object_length(o) > (int)CJ_IMAGE_MAX_LABEL)
		return cj_fail(err, 0, "config has too many Labels (at most %u)",
		               CJ_IMAGE_MAX_LABEL);
	keys = calloc((size_t)json_object_object_length(o) + 1, sizeof *keys);
	if (!keys)
		return cj_fail(err, ENOMEM, "Labels");
	json_object_object_foreach(o, key, unused)
	{
		(void)unused;
		keys[n++] = key;
	}
	/* Sorted by key: inspect's output does not depend on the JSON order. */
	qsort(keys, n, sizeof *keys, cmp_str);
	for (size_t i = 0; i < n; i++) {
		json_object *val;
		const char *s;
		if (strlen(keys[i]) > CTRJ_MAX_STRING) {
			free(keys);
			return cj_fail(err, 0, "config label name is too long");
		}
		json_object_object_get_ex(o, keys[i], &val);
		if (get_string(val, "config label value", &s, err) < 0) {
			cj_err_wrap(err, "label '%.60s'", keys[i]);
			free(keys);
			return -1;
		}
		if (cj_strv_push(&cfg->label_keys, keys[i]) < 0 ||
		    cj_strv_push(&cfg->label_values, s) < 0) {
			free(keys);
			return cj_fail(err, ENOMEM, "Labels");
		}
	}
	free(keys);
	return 0;
}

/* rootfs.diff_ids: each a sha256 digest. */
static int parse_rootfs(json_object *root, struct cj_image_config *cfg, struct cj_err *err)
{
	json_object *v, *ids;

	if (!json_object_object_get_ex(root, "rootfs", &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return cj_fail(err, 0, "config rootfs must be an object");
	if (json_object_object_get_ex(v, "diff_ids", &ids) &&
	    string_array(ids, "config rootfs.diff_ids", CJ_IMAGE_MAX_LAYER, &cfg->diff_ids, err) <
	        0)
		return -1;
	for (size_t i = 0; i < cfg->diff_ids.n; i++)
		if (check_digest(cfg->diff_ids.v[i], "config diff_id", err) < 0)
			return -1;
	return 0;
}

/* Env: NAME=VALUE entries; later duplicates win, as in docker. */
static int parse_env(json_object *c, struct cj_image_config *cfg, struct cj_err *err)
{
	struct cj_strv env = {0};
	int r = opt_string_array(c, "Env", "config Env", CTRJ_MAX_ENV, &env, NULL, err);

	for (size_t i = 0; r == 0 && i < env.n; i++) {
		if (!env_name_ok(env.v[i]))
			r = cj_fail(err, 0, "config Env entry '%.60s' is not NAME=VALUE", env.v[i]);
		else if (cj_env_set(&cfg->env, env.v[i]) < 0)
			r = cj_fail(err, ENOMEM, "config Env");
	}
	cj_strv_free(&env);
	return r;
}

/* An empty string means not set. */
static void drop_empty(char **s)
{
	if (*s && !(*s)[0]) {
		free(*s);
		*s = NULL;
	}
}

/* WorkingDir, User and StopSignal, read as docker reads them. */
static int parse_process(json_object *c, struct cj_image_config *cfg, struct cj_err *err)
{
	if (opt_string(c, "WorkingDir", "config WorkingDir", &cfg->workdir, err) < 0 ||
	    opt_string(c, "User", "config User", &cfg->user, err) < 0 ||
	    opt_string(c, "StopSignal", "config StopSignal", &cfg->stop_signal, err) < 0)
		return -1;
	drop_empty(&cfg->workdir);
	if (cfg->workdir && cfg->workdir[0] != '/') {
		/* docker resolves a relative WorkingDir against "/" */
		char *abs;
		if (asprintf(&abs, "/%s", cfg->workdir) < 0)
			return cj_fail(err, ENOMEM, "config WorkingDir");
		free(cfg->workdir);
		cfg->workdir = abs;
	}
	drop_empty(&cfg->user);
	drop_empty(&cfg->stop_signal);
	if (cfg->stop_signal) {
		int sig = cj_signal_parse(cfg->stop_signal);
		if (sig < 0)
			return cj_fail(err, 0, "config StopSignal '%.40s' is not a signal",
			               cfg->stop_signal);
		cfg->stop_signal_num = (uint32_t)sig;
	}
	return 0;
}

/* A Healthcheck duration: Go's nanoseconds. */
static int health_ns(json_object *h, const char *key, uint64_t *ms, struct cj_err *err)
{
	json_object *v;

	if (!json_object_object_get_ex(h, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return cj_fail(err, 0, "config Healthcheck.%s must be a count of nanoseconds", key);
	*ms = (uint64_t)json_object_get_int64(v) / 1000000u;
	return 0;
}

/* Healthcheck: {Test, Interval, Timeout, StartPeriod, Retries}. */
static int parse_health(json_object *h, struct cj_image_config *cfg, struct cj_err *err)
{
	json_object *v;

	if (json_object_is_type(h, json_type_null))
		return 0;
	if (!json_object_is_type(h, json_type_object))
		return cj_fail(err, 0, "config Healthcheck must be an object");
	if (opt_string_array(h, "Test", "config Healthcheck.Test", CTRJ_MAX_ARGS, &cfg->health_test,
	                     NULL, err) < 0 ||
	    health_ns(h, "Interval", &cfg->health_interval_ms, err) < 0 ||
	    health_ns(h, "Timeout", &cfg->health_timeout_ms, err) < 0 ||
	    health_ns(h, "StartPeriod", &cfg->health_start_period_ms, err) < 0)
		return -1;
	if (cfg->health_test.n && strcmp(cfg->health_test.v[0], "CMD") != 0 &&
	    strcmp(cfg->health_test.v[0], "CMD-SHELL") != 0 &&
	    strcmp(cfg->health_test.v[0], "NONE") != 0)
		return cj_fail(err, 0,
		               "config Healthcheck.Test starts with '%.20s': give CMD, "
		               "CMD-SHELL or NONE",
		               cfg->health_test.v[0]);
	if (json_object_object_get_ex(h, "Retries", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) > 1000000)
			return cj_fail(err, 0, "config Healthcheck.Retries must be a count");
		cfg->health_retries = (unsigned)json_object_get_int64(v);
	}
	return 0;
}

static int config_fields(json_object *root, void *out, struct cj_err *err)
{
	struct cj_image_config *cfg = out;
	json_object *c, *v;

	if (!json_object_is_type(root, json_type_object))
		return cj_fail(err, 0, "image config must be a JSON object");
	if (opt_string(root, "os", "config os", &cfg->os, err) < 0 ||
	    opt_string(root, "architecture", "config architecture", &cfg->architecture, err) < 0 ||
	    parse_rootfs(root, cfg, err) < 0)
		return -1;
	/* No "config" at all is valid: an image that only carries a root. */
	if (!json_object_object_get_ex(root, "config", &c) ||
	    json_object_is_type(c, json_type_null))
		return 0;
	if (!json_object_is_type(c, json_type_object))
		return cj_fail(err, 0, "image config \"config\" must be an object");
	if (opt_string_array(c, "Entrypoint", "config Entrypoint", CTRJ_MAX_ARGS, &cfg->entrypoint,
	                     &cfg->has_entrypoint, err) < 0 ||
	    opt_string_array(c, "Cmd", "config Cmd", CTRJ_MAX_ARGS, &cfg->cmd, &cfg->has_cmd, err) <
	        0 ||
	    parse_env(c, cfg, err) < 0 || parse_process(c, cfg, err) < 0)
		return -1;
	if (json_object_object_get_ex(c, "Labels", &v) && parse_labels(v, cfg, err) < 0)
		return -1;
	if (json_object_object_get_ex(c, "Healthcheck", &v) && parse_health(v, cfg, err) < 0)
		return -1;
	return 0;
}

int cj_image_config_parse(const char *json, size_t len, struct cj_image_config *cfg,
                          struct cj_err *err)
{
	memset(cfg, 0, sizeof *cfg);
	if (parse_doc(json, len, "image config", config_fields, cfg, err) < 0) {
		cj_image_config_free(cfg);
		return -1;
	}
	return 0;
}

/* ---- docker's merge rules -------------------------------------------------------- */

static int push_all(struct cj_strv *out, const struct cj_strv *in)
{
	for (size_t i = 0; i < in->n; i++)
		if (cj_strv_push(out, in->v[i]) < 0)
			return -1;
	return 0;
}

int cj_image_command(const struct cj_image_config *cfg, bool has_override,
                     const char *entrypoint_override, const struct cj_strv *args,
                     struct cj_strv *out, struct cj_err *err)
{
	int r = 0;

	memset(out, 0, sizeof *out);
	if (has_override) {
		if (entrypoint_override && entrypoint_override[0])
			r = cj_strv_push(out, entrypoint_override);
	} else if (cfg) {
		r = push_all(out, &cfg->entrypoint);
	}
	if (r == 0 && args && args->n)
		r = push_all(out, args);
	else if (r == 0 && cfg && !has_override)
		r = push_all(out, &cfg->cmd); /* --entrypoint discards the image's Cmd */
	if (r < 0) {
		cj_strv_free(out);
		return cj_fail(err, ENOMEM, "command");
	}
	if (out->n > CTRJ_MAX_ARGS) {
		cj_strv_free(out);
		return cj_fail(err, 0, "the command has too many arguments (at most %u)",
		               CTRJ_MAX_ARGS);
	}
	if (out->n == 0)
		return cj_fail(err, 0,
		               "no command: the image has no Entrypoint or Cmd; give one after "
		               "'--' (e.g. 'ctr-jailer run --image ... -- /bin/sh')");
	return 0;
}

int cj_image_env(const struct cj_image_config *cfg, const struct cj_strv *over, struct cj_strv *out,
                 struct cj_err *err)
{
	memset(out, 0, sizeof *out);
	if (cfg && push_all(out, &cfg->env) < 0)
		goto oom;
	for (size_t i = 0; over && i < over->n; i++)
		if (cj_env_set(out, over->v[i]) < 0)
			goto oom;
	if (out->n > CTRJ_MAX_ENV) {
		cj_strv_free(out);
		return cj_fail(err, 0, "too many environment variables (at most %u)", CTRJ_MAX_ENV);
	}
	/* Always a valid, NULL-terminated vector, even when empty. */
	if (!out->v) {
		out->v = calloc(1, sizeof *out->v);
		if (!out->v)
			goto oom;
	}
	return 0;
oom:
	cj_strv_free(out);
	return cj_fail(err, ENOMEM, "environment");
}
