/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the image-input parsers (src/lib/image/ociconfig.c): an image comes
 * from anywhere, so whatever the parsers accept must meet the bounds the
 * rest of ctr-jailer relies on (digests that are safe file names, argument
 * and environment counts the control disk carries, NAME=VALUE entries with
 * unique names, absolute working directory, signals 1-64), and whatever
 * they refuse must come with a message. The first input byte picks the
 * parser: image config, OCI index, OCI manifest, docker manifest.json,
 * image reference, signal name. */
#include "fuzz.h"

#include "ctrj/protocol.h"
#include "image/oci.h"

#include <stdbool.h>
#include <string.h>

unsigned long fuzz_accepted;

enum { P_CONFIG, P_INDEX, P_MANIFEST, P_DOCKER, P_REF, P_SIGNAL, P_COUNT };

static void check_strv(const struct cj_strv *sv, size_t max)
{
	FUZZ_CHECK(sv->n <= max);
	if (sv->n)
		FUZZ_CHECK(sv->v && sv->v[sv->n] == NULL);
	for (size_t i = 0; i < sv->n; i++)
		FUZZ_CHECK(strlen(sv->v[i]) <= CTRJ_MAX_STRING);
}

static void check_env(const struct cj_strv *env)
{
	check_strv(env, CTRJ_MAX_ENV);
	for (size_t i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		FUZZ_CHECK(eq && eq != env->v[i]);
		for (size_t j = 0; j < i; j++) {
			size_t klen = (size_t)(eq - env->v[i]);
			FUZZ_CHECK(
			    !(strncmp(env->v[j], env->v[i], klen) == 0 && env->v[j][klen] == '='));
		}
	}
}

static void check_desc(const struct cj_descriptor *d)
{
	FUZZ_CHECK(cj_digest_valid(d->digest));
	FUZZ_CHECK(!strchr(d->digest + 7, '/'));
}

static void fuzz_config(const char *text, size_t len, struct cj_err *err)
{
	struct cj_image_config c;
	struct cj_strv cmd, env;

	if (cj_image_config_parse(text, len, &c, err) < 0)
		return;
	fuzz_accepted++;
	check_strv(&c.entrypoint, CTRJ_MAX_ARGS);
	check_strv(&c.cmd, CTRJ_MAX_ARGS);
	check_env(&c.env);
	FUZZ_CHECK(!c.workdir || c.workdir[0] == '/');
	FUZZ_CHECK(!c.user || c.user[0]);
	FUZZ_CHECK(!c.stop_signal == !c.stop_signal_num);
	FUZZ_CHECK(c.stop_signal_num <= 64);
	FUZZ_CHECK(c.label_keys.n == c.label_values.n);
	for (size_t i = 1; i < c.label_keys.n; i++)
		FUZZ_CHECK(strcmp(c.label_keys.v[i - 1], c.label_keys.v[i]) < 0);
	for (size_t i = 0; i < c.diff_ids.n; i++)
		FUZZ_CHECK(cj_digest_valid(c.diff_ids.v[i]));
	/* docker's rules on what was accepted: a command exactly when the
	 * image names one; the environment keeps its invariants */
	struct cj_err e2 = {0};
	if (cj_image_command(&c, false, NULL, NULL, &cmd, &e2) == 0) {
		FUZZ_CHECK(cmd.n == c.entrypoint.n + c.cmd.n && cmd.n > 0);
		cj_strv_free(&cmd);
	} else {
		FUZZ_CHECK(c.entrypoint.n + c.cmd.n == 0 ||
		           c.entrypoint.n + c.cmd.n > CTRJ_MAX_ARGS);
		FUZZ_CHECK(e2.msg[0]);
	}
	if (cj_image_env(&c, NULL, &env, &e2) == 0) {
		check_env(&env);
		FUZZ_CHECK(env.v && env.v[env.n] == NULL);
		cj_strv_free(&env);
	}
	cj_image_config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cj_err err;
	const char *text = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	char small[128];

	if (size == 0)
		return 0;
	memset(&err, 0, sizeof err);
	switch (data[0] % P_COUNT) {
	case P_CONFIG:
		fuzz_config(text, len, &err);
		break;
	case P_INDEX: {
		struct cj_oci_index idx;
		if (cj_oci_index_parse(text, len, &idx, &err) < 0)
			break;
		fuzz_accepted++;
		FUZZ_CHECK(idx.n >= 1 && idx.n <= CJ_IMAGE_MAX_DESC);
		for (size_t i = 0; i < idx.n; i++)
			check_desc(&idx.manifests[i]);
		cj_oci_index_free(&idx);
		break;
	}
	case P_MANIFEST: {
		struct cj_oci_manifest m;
		if (cj_oci_manifest_parse(text, len, &m, &err) < 0)
			break;
		fuzz_accepted++;
		check_desc(&m.config);
		FUZZ_CHECK(m.nlayers <= CJ_IMAGE_MAX_LAYER);
		for (size_t i = 0; i < m.nlayers; i++)
			check_desc(&m.layers[i]);
		cj_oci_manifest_free(&m);
		break;
	}
	case P_DOCKER: {
		struct cj_docker_manifest dm;
		if (cj_docker_manifest_parse(text, len, &dm, &err) < 0)
			break;
		fuzz_accepted++;
		FUZZ_CHECK(dm.config && dm.config[0]);
		check_strv(&dm.layers, CJ_IMAGE_MAX_LAYER);
		for (size_t i = 0; i < dm.layers.n; i++)
			FUZZ_CHECK(dm.layers.v[i][0]);
		cj_docker_manifest_free(&dm);
		break;
	}
	case P_REF:
	case P_SIGNAL: {
		/* C strings: up to the first NUL, bounded */
		size_t n = strnlen(text, len < sizeof small - 1 ? len : sizeof small - 1);
		memcpy(small, text, n);
		small[n] = '\0';
		if (data[0] % P_COUNT == P_SIGNAL) {
			int sig = cj_signal_parse(small);
			FUZZ_CHECK(sig == -1 || (sig >= 1 && sig <= 64));
			fuzz_accepted += sig > 0;
			return 0;
		}
		struct cj_image_ref ref;
		if (cj_image_ref_parse(small, &ref, &err) < 0) {
			FUZZ_CHECK(!ref.path && !ref.tag);
			break;
		}
		fuzz_accepted++;
		FUZZ_CHECK(ref.kind >= CJ_IMAGE_OCI && ref.kind <= CJ_IMAGE_TAR);
		FUZZ_CHECK(ref.path && ref.path[0]);
		FUZZ_CHECK(!ref.tag || (ref.tag[0] && !strchr(ref.tag, '/')));
		FUZZ_CHECK(!ref.tag || ref.kind == CJ_IMAGE_OCI);
		cj_image_ref_free(&ref);
		return 0;
	}
	}
	/* refused or accepted, the error is either empty or a message */
	FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------ */

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void emit_text(int parser, const char *text, fuzz_emit_fn emit, void *ctx)
{
	uint8_t buf[2048];
	size_t n = strlen(text);

	FUZZ_CHECK(n + 1 <= sizeof buf);
	buf[0] = (uint8_t)parser;
	memcpy(buf + 1, text, n);
	emit(buf, n + 1, ctx);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	emit_text(P_CONFIG,
	          "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"app\","
	          "\"Env\":[\"PATH=/bin\",\"A=1\",\"A=2\"],\"Entrypoint\":[\"/bin/sh\",\"-c\"],"
	          "\"Cmd\":[\"echo hi\"],\"WorkingDir\":\"/srv\",\"StopSignal\":\"SIGUSR1\","
	          "\"Labels\":{\"b\":\"2\",\"a\":\"1\"}},\"rootfs\":{\"type\":\"layers\","
	          "\"diff_ids\":[\"sha256:" D64 "\"]}}",
	          emit, ctx);
	emit_text(P_CONFIG, "{\"config\":{\"Cmd\":null,\"Entrypoint\":[],\"WorkingDir\":\"rel\"}}",
	          emit, ctx);
	emit_text(P_CONFIG, "{\"config\":{\"Env\":[\"NOEQ\"],\"StopSignal\":\"RTMIN+3\"}}", emit,
	          ctx);
	emit_text(P_CONFIG, "{\"config\":{\"Cmd\":[\"a\\u0000b\"],\"Labels\":{\"x\":1}}}", emit,
	          ctx);
	emit_text(P_CONFIG, "{}", emit, ctx);
	emit_text(P_INDEX,
	          "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
	          "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" D64 "\","
	          "\"size\":349,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"},"
	          "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
	          emit, ctx);
	emit_text(P_INDEX,
	          "{\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
	          "\"digest\":\"sha256:" D64 "\",\"size\":-1}]}",
	          emit, ctx);
	emit_text(P_MANIFEST,
	          "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
	          "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" D64 "\","
	          "\"size\":7},\"layers\":[{\"mediaType\":"
	          "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" D64 "\","
	          "\"size\":1234}]}",
	          emit, ctx);
	emit_text(P_MANIFEST,
	          "{\"config\":{\"digest\":\"sha256:../../etc/passwd\",\"size\":1},\"layers\":[]}",
	          emit, ctx);
	emit_text(P_DOCKER,
	          "[{\"Config\":\"" D64 ".json\",\"RepoTags\":[\"a:b\"],\"Layers\":["
	          "\"l1/layer.tar\",\"blobs/sha256/" D64 "\"]}]",
	          emit, ctx);
	emit_text(P_DOCKER, "[{\"Config\":\"\",\"Layers\":[\"\"]}]", emit, ctx);
	emit_text(P_REF, "oci:/img:tag", emit, ctx);
	emit_text(P_REF, "oci:/a:b/c", emit, ctx);
	emit_text(P_REF, "docker-archive:/x:y.tar", emit, ctx);
	emit_text(P_REF, "tar:rootfs.tar.gz", emit, ctx);
	emit_text(P_REF, "oci:/img:", emit, ctx);
	emit_text(P_SIGNAL, "SIGUSR1", emit, ctx);
	emit_text(P_SIGNAL, "RTMAX-2", emit, ctx);
	emit_text(P_SIGNAL, "64", emit, ctx);
}
