/* SPDX-License-Identifier: Apache-2.0 */
/* Registry references (docker's normalization table), WWW-Authenticate
 * challenges, credentials from a docker config, the insecure list, and
 * the store's names and garbage collection — no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "registry/auth.h"
#include "registry/pull.h"
#include "registry/ref.h"
#include "registry/store.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void expect_norm(const char *in, const char *full, bool explicit_ref)
{
	struct cj_reg_ref ref;
	struct cj_err err = {0};
	char out[600];

	if (cj_reg_ref_parse(in, &ref, &err) < 0)
		fail_msg("'%s' refused: %s", in, err.msg);
	cj_reg_ref_str(&ref, out, sizeof out);
	if (strcmp(out, full) != 0)
		fail_msg("'%s' -> '%s', want '%s'", in, out, full);
	assert_int_equal(cj_reg_ref_is_explicit(in), explicit_ref);
}

static void expect_bad(const char *in, const char *why)
{
	struct cj_reg_ref ref;
	struct cj_err err = {0};

	if (cj_reg_ref_parse(in, &ref, &err) == 0)
		fail_msg("'%s' accepted", in);
	if (!strstr(err.msg, why))
		fail_msg("'%s': error '%s' lacks '%s'", in, err.msg, why);
	assert_false(cj_reg_ref_is_explicit(in));
}

static void test_ref_normalization(void **state)
{
	(void)state;
	expect_norm("busybox", "docker.io/library/busybox:latest", false);
	expect_norm("busybox:1.36", "docker.io/library/busybox:1.36", true);
	expect_norm("library/busybox", "docker.io/library/busybox:latest", false);
	expect_norm("user/app", "docker.io/user/app:latest", false);
	expect_norm("docker.io/busybox", "docker.io/library/busybox:latest", true);
	expect_norm("index.docker.io/busybox:x", "docker.io/library/busybox:x", true);
	expect_norm("docker.io/user/app", "docker.io/user/app:latest", true);
	expect_norm("quay.io/org/app:v1", "quay.io/org/app:v1", true);
	expect_norm("localhost/app", "localhost/app:latest", true);
	expect_norm("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t", true);
	expect_norm("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", true);
	expect_norm("busybox@sha256:" HEX_A, "docker.io/library/busybox@sha256:" HEX_A, true);
	expect_norm("r.io/app:v1@sha256:" HEX_A, "r.io/app:v1@sha256:" HEX_A, true);
	expect_norm("a-b_c__d/e.f--g", "docker.io/a-b_c__d/e.f--g:latest", false);
	expect_bad("a_b.c/d", "not a valid registry"); /* a host (it has a dot) */
	expect_norm("app:_T.1-x", "docker.io/library/app:_T.1-x", true);
	/* not images: the seed's commands */
	expect_bad("/bin/echo", "not a valid name");
	expect_bad("./app", "not a valid");
	expect_bad("Busybox", "must be lowercase");
	expect_bad("busybox:", "not a valid tag");
	expect_bad("busybox:-x", "not a valid tag");
	expect_bad("busybox@sha256:abc", "64");
	expect_bad("busybox@md5:" HEX_A, "sha256");
	expect_bad("a//b", "not a valid name");
	expect_bad("a_-b", "not a valid name");
	expect_bad("a___b", "not a valid name");
	expect_bad("-a", "not a valid name");
	expect_bad("", "empty");
	expect_bad("echo hi", "not a valid");
	/* plain words parse but are not explicit */
	assert_false(cj_reg_ref_is_explicit("echo"));
	assert_false(cj_reg_ref_is_explicit("bin/sh"));
	assert_true(cj_reg_ref_is_explicit("debian:bookworm"));
}

static void test_ref_limits(void **state)
{
	char name[400];
	struct cj_reg_ref ref;
	struct cj_err err = {0};
	char tag[200];

	(void)state;
	memset(name, 'a', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	assert_int_equal(cj_reg_ref_parse(name, &ref, &err), -1);
	snprintf(tag, sizeof tag, "app:");
	memset(tag + 4, 't', 129);
	tag[133] = '\0';
	assert_int_equal(cj_reg_ref_parse(tag, &ref, &err), -1);
	tag[132] = '\0'; /* 128 characters: fine */
	assert_int_equal(cj_reg_ref_parse(tag, &ref, &err), 0);
	assert_string_equal(cj_reg_ref_endpoint(&ref), "registry-1.docker.io");
}

static void test_challenge(void **state)
{
	struct cj_reg_challenge c;
	struct cj_err err = {0};

	(void)state;
	assert_int_equal(cj_reg_challenge_parse("Bearer realm=\"https://auth.docker.io/token\","
	                                        "service=\"registry.docker.io\",scope=\"repository:"
	                                        "library/busybox:pull\"",
	                                        &c, &err),
	                 0);
	assert_true(c.bearer);
	assert_string_equal(c.realm, "https://auth.docker.io/token");
	assert_string_equal(c.service, "registry.docker.io");
	assert_string_equal(c.scope, "repository:library/busybox:pull");
	/* any order, spaces, token values, escapes, unknown keys */
	assert_int_equal(
	    cj_reg_challenge_parse("bearer  service=svc , Realm=\"http://h/t?a=\\\"b\","
	                           " error=\"insufficient_scope\"",
	                           &c, &err),
	    0);
	assert_string_equal(c.realm, "http://h/t?a=\"b");
	assert_string_equal(c.service, "svc");
	assert_string_equal(c.scope, "");
	assert_int_equal(cj_reg_challenge_parse("Basic realm=\"test\"", &c, &err), 0);
	assert_false(c.bearer);
	assert_int_equal(cj_reg_challenge_parse("Basic", &c, &err), 0);
	/* refused */
	assert_int_equal(cj_reg_challenge_parse("Negotiate abc", &c, &err), -1);
	assert_non_null(strstr(err.msg, "unsupported"));
	assert_int_equal(cj_reg_challenge_parse("Bearer service=\"x\"", &c, &err), -1);
	assert_non_null(strstr(err.msg, "realm"));
	assert_int_equal(cj_reg_challenge_parse("Bearer realm=\"unterminated", &c, &err), -1);
	assert_int_equal(cj_reg_challenge_parse("Bearer =x", &c, &err), -1);
	assert_int_equal(cj_reg_challenge_parse("", &c, &err), -1);
}

static void test_base64(void **state)
{
	char out[64];
	size_t len;

	(void)state;
	assert_int_equal(cj_base64_decode("YWxpY2U6czNjcmV0", out, sizeof out, &len), 0);
	assert_string_equal(out, "alice:s3cret");
	assert_int_equal(cj_base64_decode("YTpi", out, sizeof out, &len), 0);
	assert_string_equal(out, "a:b");
	assert_int_equal(cj_base64_decode("YTpiYw==", out, sizeof out, &len), 0);
	assert_string_equal(out, "a:bc");
	assert_int_equal(cj_base64_decode("YT*i", out, sizeof out, &len), -1);
	assert_int_equal(cj_base64_decode("YQ==YQ", out, sizeof out, &len), -1);
	assert_int_equal(cj_base64_decode("YWxpY2U6czNjcmV0", out, 4, &len), -1);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_creds(void **state)
{
	char home[] = "/tmp/cj-reg-home-XXXXXX", path[200];
	struct cj_err err = {0};
	char *c = NULL;

	(void)state;
	assert_non_null(mkdtemp(home));
	/* no config: none */
	assert_int_equal(cj_reg_creds_find("r.io", NULL, NULL, home, NULL, &c, &err), 0);
	assert_null(c);
	snprintf(path, sizeof path, "%s/.docker", home);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/.docker/config.json", home);
	write_file(path, "{\"auths\":{\"r.io\":{\"auth\":\"YWxpY2U6czNjcmV0\"},"
	                 "\"https://index.docker.io/v1/\":{\"auth\":\"YTpi\"},"
	                 "\"bad.io\":{\"auth\":\"!!\"}},\"credHelpers\":{\"h.io\":\"x\"}}");
	assert_int_equal(cj_reg_creds_find("r.io", NULL, NULL, home, NULL, &c, &err), 0);
	assert_string_equal(c, "alice:s3cret");
	free(c);
	assert_int_equal(cj_reg_creds_find("docker.io", NULL, NULL, home, NULL, &c, &err), 0);
	assert_string_equal(c, "a:b");
	free(c);
	/* --creds, then the variable, win */
	assert_int_equal(cj_reg_creds_find("r.io", "u:p", "e:v", home, NULL, &c, &err), 0);
	assert_string_equal(c, "u:p");
	free(c);
	assert_int_equal(cj_reg_creds_find("r.io", NULL, "e:v", home, NULL, &c, &err), 0);
	assert_string_equal(c, "e:v");
	free(c);
	assert_int_equal(cj_reg_creds_find("r.io", NULL, "novalue", home, NULL, &c, &err), -1);
	assert_int_equal(cj_reg_creds_find("bad.io", NULL, NULL, home, NULL, &c, &err), -1);
	assert_non_null(strstr(err.msg, "base64"));
	c = NULL;
	assert_int_equal(cj_reg_creds_find("h.io", NULL, NULL, home, NULL, &c, &err), 0);
	assert_null(c); /* a helper: a notice, no credentials */
	write_file(path, "{not json");
	assert_int_equal(cj_reg_creds_find("r.io", NULL, NULL, home, NULL, &c, &err), -1);
	cj_rm_rf(home);
}

static void test_insecure_list(void **state)
{
	(void)state;
	assert_true(cj_pull_host_listed("a:5000,b", "a:5000"));
	assert_true(cj_pull_host_listed("a:5000, b", "b"));
	assert_false(cj_pull_host_listed("a:5000,b", "a"));
	assert_false(cj_pull_host_listed("ab", "a"));
	assert_false(cj_pull_host_listed(NULL, "a"));
	assert_false(cj_pull_host_listed("", "a"));
}

static void put(const struct cj_store *st, const char *text, char digest[72])
{
	struct cj_hash *h = cj_hash_new();
	struct cj_err err = {0};

	cj_hash_update(h, text, strlen(text));
	memcpy(digest, "sha256:", 7);
	cj_hash_final_hex(h, digest + 7);
	assert_int_equal(cj_store_put_blob(st, digest, text, strlen(text), &err), 0);
}

/* A manifest over one config and the given layer contents. */
static void image(const struct cj_store *st, const char *name, const char *layer, char mdigest[72],
                  size_t *mlen)
{
	char cfg[72], lay[72], m[600];
	struct cj_store_entry e = {0};
	struct cj_err err = {0};

	put(st, name, cfg); /* a distinct "config" per image */
	put(st, layer, lay);
	snprintf(m, sizeof m,
	         "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/"
	         "vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},\"layers\":[{"
	         "\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
	         "\"size\":%zu}]}",
	         cfg, strlen(name), lay, strlen(layer));
	put(st, m, mdigest);
	*mlen = strlen(m);
	snprintf(e.name, sizeof e.name, "%s", name);
	snprintf(e.digest, sizeof e.digest, "%s", mdigest);
	snprintf(e.media_type, sizeof e.media_type, "application/vnd.oci.image.manifest.v1+json");
	e.size = *mlen;
	assert_int_equal(cj_store_set_name(st, &e, false, &err), 0);
}

static void test_store(void **state)
{
	char cache[] = "/tmp/cj-store-XXXXXX", a[72], b[72], partial[300];
	struct cj_store st;
	struct cj_store_entry e, *v;
	struct cj_err err = {0};
	size_t n, alen, blen;
	uint64_t freed, size;

	(void)state;
	assert_non_null(mkdtemp(cache));
	cj_store_paths(cache, &st);
	assert_int_equal(cj_store_find(&st, "busybox", &e, &err), 0); /* no store yet */
	assert_int_equal(cj_store_init(&st, &err), 0);
	image(&st, "docker.io/library/a:latest", "shared layer", a, &alen);
	image(&st, "docker.io/library/b:latest", "shared layer", b, &blen);
	assert_int_equal(cj_store_list(&st, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	free(v);
	/* by short name, full name, digest, id prefix */
	assert_int_equal(cj_store_find(&st, "a", &e, &err), 1);
	assert_string_equal(e.digest, a);
	assert_int_equal(cj_store_find(&st, "docker.io/library/b:latest", &e, &err), 1);
	assert_string_equal(e.digest, b);
	assert_int_equal(cj_store_find(&st, b, &e, &err), 1);
	assert_int_equal(cj_store_find(&st, a + 7, &e, &err), 1);
	assert_string_equal(e.name, "docker.io/library/a:latest");
	assert_int_equal(cj_store_find(&st, "c", &e, &err), 0);
	assert_int_equal(cj_store_image_size(&st, a, &size, &err), 0);
	assert_int_equal(size,
	                 alen + strlen("docker.io/library/a:latest") + strlen("shared layer"));
	/* a second name of a; renaming over b's name replaces that entry */
	cj_store_find(&st, "a", &e, &err);
	snprintf(e.name, sizeof e.name, "docker.io/library/b:latest");
	assert_int_equal(cj_store_set_name(&st, &e, false, &err), 0);
	assert_int_equal(cj_store_find(&st, "b", &e, &err), 1);
	assert_string_equal(e.digest, a);
	/* b's manifest is unnamed now: removing a's first name keeps a (named b) */
	snprintf(partial, sizeof partial, "%s/store/blobs/sha256/%s.partial", cache, HEX_A);
	FILE *f = fopen(partial, "w");
	fclose(f);
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s/store/blobs/sha256/load-1.tmp", cache);
	f = fopen(tmp, "w");
	fclose(f);
	cj_store_find(&st, "a", &e, &err);
	assert_int_equal(cj_store_remove(&st, &e, &freed, &err), 0);
	assert_true(freed > 0); /* b's old manifest and config */
	assert_false(cj_store_has_blob(&st, b, blen));
	assert_true(cj_store_has_blob(&st, a, alen));
	assert_int_equal(access(partial, F_OK), 0); /* downloads in progress stay */
	assert_int_equal(access(tmp, F_OK), -1);    /* what a killed writer left goes */
	/* the last name: every blob goes */
	cj_store_find(&st, "b", &e, &err);
	e.name[0] = '\0'; /* by digest: every name */
	assert_int_equal(cj_store_remove(&st, &e, &freed, &err), 0);
	assert_false(cj_store_has_blob(&st, a, alen));
	assert_int_equal(cj_store_list(&st, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	cj_rm_rf(cache);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ref_normalization),
	    cmocka_unit_test(test_ref_limits),
	    cmocka_unit_test(test_challenge),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_creds),
	    cmocka_unit_test(test_insecure_list),
	    cmocka_unit_test(test_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
