/* SPDX-License-Identifier: Apache-2.0 */
/* Image input: reference parsing, the OCI/docker JSON parsers with hostile
 * input, docker's merge rules, entry-name cleaning, whiteouts, and layer
 * application on a real directory (containment: nothing outside changes),
 * the unpack budget, tree walks deeper than any stack or PATH_MAX, and
 * trees on an overlayfs whose layers sit on different file systems. */
#include "ctrj/protocol.h"
#include "image/base.h"
#include "image/layer.h"
#include "image/oci.h"
#include "image/tree.h"
#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void assert_msg_contains(const struct cj_err *err, const char *needle)
{
	if (!strstr(err->msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
}

/* ---- references ----------------------------------------------------------- */

static void test_ref_parse(void **state)
{
	static const struct {
		const char *in;
		enum cj_image_kind kind;
		const char *path, *tag;
	} ok[] = {
	    {"oci:/img", CJ_IMAGE_OCI, "/img", NULL},
	    {"oci:/img:v1.2", CJ_IMAGE_OCI, "/img", "v1.2"},
	    {"oci:rel/dir:latest", CJ_IMAGE_OCI, "rel/dir", "latest"},
	    {"oci:/a:b/c", CJ_IMAGE_OCI, "/a:b/c", NULL}, /* after the colon: a path */
	    {"oci:/a:b/c:t", CJ_IMAGE_OCI, "/a:b/c", "t"},
	    {"docker-archive:/x.tar", CJ_IMAGE_DOCKER_ARCHIVE, "/x.tar", NULL},
	    {"docker-archive:/x:y.tar", CJ_IMAGE_DOCKER_ARCHIVE, "/x:y.tar", NULL},
	    {"tar:rootfs.tar.gz", CJ_IMAGE_TAR, "rootfs.tar.gz", NULL},
	};
	static const char *const bad[] = {"",           "oci",       "oci:", "docker:/x",
	                                  "/plain/dir", "oci:/img:", "tar:", "docker-archive:",
	                                  "OCI:/x"};
	struct cj_image_ref ref;
	struct cj_err err;

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_image_ref_parse(ok[i].in, &ref, &err), 0);
		assert_int_equal(ref.kind, ok[i].kind);
		assert_string_equal(ref.path, ok[i].path);
		if (ok[i].tag)
			assert_string_equal(ref.tag, ok[i].tag);
		else
			assert_null(ref.tag);
		cj_image_ref_free(&ref);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_image_ref_parse(bad[i], &ref, &err), -1);
		assert_true(err.msg[0] != '\0');
		assert_int_equal(err.exit_code, CJ_EXIT_RUNTIME);
		assert_null(ref.path);
	}
}

/* ---- image config ------------------------------------------------------------ */

static const char full_config[] =
    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{"
    "\"User\":\"app:extra\",\"Env\":[\"PATH=/bin\",\"A=1\",\"B=x=y\",\"A=2\"],"
    "\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hi\"],\"WorkingDir\":\"srv\","
    "\"StopSignal\":\"SIGUSR1\",\"Labels\":{\"z\":\"last\",\"a\":\"first\"},"
    "\"ExposedPorts\":{\"80/tcp\":{}}},"
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]}}";

static void test_config_parse_full(void **state)
{
	struct cj_image_config c;
	struct cj_err err = {0};

	assert_int_equal(cj_image_config_parse(full_config, strlen(full_config), &c, &err), 0);
	assert_true(c.has_entrypoint && c.has_cmd);
	assert_int_equal(c.entrypoint.n, 2);
	assert_string_equal(c.entrypoint.v[1], "-c");
	assert_string_equal(c.cmd.v[0], "echo hi");
	/* later duplicates win, in place */
	assert_int_equal(c.env.n, 3);
	assert_string_equal(c.env.v[1], "A=2");
	assert_string_equal(c.env.v[2], "B=x=y");
	assert_null(c.env.v[3]);
	assert_string_equal(c.workdir, "/srv"); /* relative: against "/" */
	assert_string_equal(c.user, "app:extra");
	assert_string_equal(c.stop_signal, "SIGUSR1");
	assert_int_equal(c.stop_signal_num, 10);
	assert_int_equal(c.label_keys.n, 2);
	assert_string_equal(c.label_keys.v[0], "a"); /* sorted */
	assert_string_equal(c.label_values.v[0], "first");
	assert_int_equal(c.diff_ids.n, 1);
	assert_string_equal(c.os, "linux");
	cj_image_config_free(&c);
}

static void test_config_parse_absent_and_null(void **state)
{
	static const char *const ok[] = {
	    "{}",
	    "{\"config\":null}",
	    "{\"config\":{}}",
	    "{\"config\":{\"Entrypoint\":null,\"Cmd\":null,\"Env\":null,\"User\":\"\","
	    "\"WorkingDir\":\"\",\"StopSignal\":\"\",\"Labels\":null}}",
	    " \n{}\n ",
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		struct cj_image_config c;
		struct cj_err err = {0};
		if (cj_image_config_parse(ok[i], strlen(ok[i]), &c, &err) != 0)
			fail_msg("'%s' refused: %s", ok[i], err.msg);
		assert_false(c.has_entrypoint);
		assert_false(c.has_cmd);
		assert_int_equal(c.env.n, 0);
		assert_null(c.workdir);
		assert_null(c.user);
		assert_null(c.stop_signal);
		cj_image_config_free(&c);
	}
	/* an explicit empty Entrypoint is present (it clears a base image's) */
	struct cj_image_config c;
	struct cj_err err = {0};
	const char empty_ep[] = "{\"config\":{\"Entrypoint\":[]}}";
	assert_int_equal(cj_image_config_parse(empty_ep, strlen(empty_ep), &c, &err), 0);
	assert_true(c.has_entrypoint);
	assert_int_equal(c.entrypoint.n, 0);
	cj_image_config_free(&c);
}

/* HEALTHCHECK as docker writes it: Test and nanoseconds. */
static void test_config_parse_healthcheck(void **state)
{
	static const char json[] =
	    "{\"config\":{\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",\"curl -f localhost\"],"
	    "\"Interval\":5000000000,\"Timeout\":2500000000,\"StartPeriod\":60000000000,"
	    "\"Retries\":4}}}";
	struct cj_image_config c;
	struct cj_err err = {0};

	assert_int_equal(cj_image_config_parse(json, strlen(json), &c, &err), 0);
	assert_int_equal(c.health_test.n, 2);
	assert_string_equal(c.health_test.v[0], "CMD-SHELL");
	assert_string_equal(c.health_test.v[1], "curl -f localhost");
	assert_int_equal(c.health_interval_ms, 5000);
	assert_int_equal(c.health_timeout_ms, 2500);
	assert_int_equal(c.health_start_period_ms, 60000);
	assert_int_equal(c.health_retries, 4);
	cj_image_config_free(&c);
}

static void test_config_parse_hostile(void **state)
{
	static const struct {
		const char *json;
		const char *needle;
	} bad[] = {
	    {"", "ends too early"},
	    {"{", "ends too early"},
	    {"[]", "object"},
	    {"{} {}", "not valid JSON"},
	    {"{\"config\":[]}", "must be an object"},
	    {"{\"config\":{\"Entrypoint\":\"/bin/sh\"}}", "Entrypoint must be an array"},
	    {"{\"config\":{\"Cmd\":[1]}}", "Cmd must be a string"},
	    {"{\"config\":{\"Env\":[\"NOEQUALS\"]}}", "not NAME=VALUE"},
	    {"{\"config\":{\"Env\":[\"=value\"]}}", "not NAME=VALUE"},
	    {"{\"config\":{\"Env\":[\"A B=1\"]}}", "not NAME=VALUE"},
	    {"{\"config\":{\"Cmd\":[\"a\\u0000b\"]}}", "NUL"},
	    {"{\"config\":{\"User\":5}}", "User must be a string"},
	    {"{\"config\":{\"Labels\":{\"a\":1}}}", "label"},
	    {"{\"config\":{\"Labels\":[]}}", "Labels"},
	    {"{\"config\":{\"StopSignal\":\"SIGNOPE\"}}", "not a signal"},
	    {"{\"config\":{\"StopSignal\":\"0\"}}", "not a signal"},
	    {"{\"rootfs\":{\"diff_ids\":[\"sha256:abc\"]}}", "not a sha256 digest"},
	    {"{\"rootfs\":{\"diff_ids\":[\"sha512:abc\"]}}", "unsupported digest"},
	    {"{\"rootfs\":{\"diff_ids\":[\"sha256:../../../../etc/passwd\"]}}", "not a sha256"},
	    {"{\"a\":\"\xff\xfe\"}", "JSON"},
	    {"{\"config\":{\"Healthcheck\":[]}}", "Healthcheck must be an object"},
	    {"{\"config\":{\"Healthcheck\":{\"Test\":[\"RUN\",\"x\"]}}}", "CMD-SHELL"},
	    {"{\"config\":{\"Healthcheck\":{\"Interval\":-1}}}", "nanoseconds"},
	    {"{\"config\":{\"Healthcheck\":{\"Timeout\":\"30s\"}}}", "nanoseconds"},
	    {"{\"config\":{\"Healthcheck\":{\"Retries\":-3}}}", "Retries"},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct cj_image_config c;
		struct cj_err err = {0};
		if (cj_image_config_parse(bad[i].json, strlen(bad[i].json), &c, &err) != -1)
			fail_msg("'%s' accepted", bad[i].json);
		assert_msg_contains(&err, bad[i].needle);
		assert_null(c.entrypoint.v);
	}
	/* a raw NUL byte in the text, and nesting past the depth limit */
	{
		const char text[] = "{\"config\":{}}\0garbage";
		struct cj_image_config c;
		struct cj_err err = {0};
		assert_int_equal(cj_image_config_parse(text, sizeof text - 1, &c, &err), -1);
		assert_msg_contains(&err, "NUL");
	}
	{
		char deep[400];
		struct cj_image_config c;
		struct cj_err err = {0};
		memset(deep, '[', 200);
		memset(deep + 200, ']', 200);
		assert_int_equal(cj_image_config_parse(deep, sizeof deep, &c, &err), -1);
	}
	/* more arguments than the control disk carries */
	{
		size_t n = (CTRJ_MAX_ARGS + 1) * 4 + 64, o = 0;
		char *big = malloc(n);
		struct cj_image_config c;
		struct cj_err err = {0};
		assert_non_null(big);
		o += (size_t)snprintf(big + o, n - o, "{\"config\":{\"Cmd\":[");
		for (unsigned i = 0; i <= CTRJ_MAX_ARGS; i++)
			o += (size_t)snprintf(big + o, n - o, "%s\"\"", i ? "," : "");
		o += (size_t)snprintf(big + o, n - o, "]}}");
		assert_int_equal(cj_image_config_parse(big, o, &c, &err), -1);
		assert_msg_contains(&err, "too many");
		free(big);
	}
}

static void test_signal_parse(void **state)
{
	static const struct {
		const char *s;
		int sig;
	} cases[] = {
	    {"SIGUSR1", 10}, {"USR1", 10},     {"sigusr1", 10},  {"10", 10},
	    {"SIGTERM", 15}, {"KILL", 9},      {"SIGRTMIN", 32}, {"SIGRTMIN+3", 35},
	    {"RTMAX", 64},   {"RTMAX-2", 62},  {"64", 64},       {"1", 1},
	    {"0", -1},       {"65", -1},       {"", -1},         {"SIGNOPE", -1},
	    {"SIG", -1},     {"-1", -1},       {"10x", -1},      {"RTMIN+33", -1},
	    {"RTMIN+", -1},  {"RTMAX-40", -1}, {"0010", -1},     {"SIGUSR1 ", -1},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		if (cj_signal_parse(cases[i].s) != cases[i].sig)
			fail_msg("'%s' -> %d, expected %d", cases[i].s, cj_signal_parse(cases[i].s),
			         cases[i].sig);
}

/* ---- index, manifest, manifest.json ------------------------------------------------ */

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_index_and_manifest(void **state)
{
	const char index[] =
	    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
	    "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" D64 "\","
	    "\"size\":349,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}},"
	    "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:" D64
	    "\",\"size\":10,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	const char manifest[] =
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
	    "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" D64 "\","
	    "\"size\":7},\"layers\":[{\"mediaType\":"
	    "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" D64 "\","
	    "\"size\":1234},{\"digest\":\"sha256:" D64 "\",\"size\":0}]}";
	const char dmanifest[] = "[{\"Config\":\"" D64 ".json\",\"RepoTags\":[\"a:b\"],"
	                         "\"Layers\":[\"l1/layer.tar\",\"blobs/sha256/" D64 "\"]}]";
	struct cj_oci_index idx;
	struct cj_oci_manifest m;
	struct cj_docker_manifest dm;
	struct cj_err err = {0};

	assert_int_equal(cj_oci_index_parse(index, strlen(index), &idx, &err), 0);
	assert_int_equal(idx.n, 2);
	assert_string_equal(idx.manifests[0].ref_name, "v1");
	assert_false(idx.manifests[0].is_index);
	assert_true(idx.manifests[1].is_index);
	assert_string_equal(idx.manifests[1].arch, "amd64");
	assert_int_equal(idx.manifests[0].size, 349);
	cj_oci_index_free(&idx);

	assert_int_equal(cj_oci_manifest_parse(manifest, strlen(manifest), &m, &err), 0);
	assert_int_equal(m.nlayers, 2);
	assert_int_equal(m.layers[0].size, 1234);
	assert_string_equal(m.config.digest, "sha256:" D64);
	cj_oci_manifest_free(&m);

	assert_int_equal(cj_docker_manifest_parse(dmanifest, strlen(dmanifest), &dm, &err), 0);
	assert_string_equal(dm.config, D64 ".json");
	assert_int_equal(dm.layers.n, 2);
	cj_docker_manifest_free(&dm);
}

static void test_index_and_manifest_hostile(void **state)
{
	static const char *const bad_index[] = {
	    "{}",
	    "{\"manifests\":[]}",
	    "{\"manifests\":{}}",
	    "{\"manifests\":[{\"size\":1}]}",
	    "{\"manifests\":[{\"digest\":\"sha256:" D64 "\"}]}",
	    "{\"manifests\":[{\"digest\":\"sha256:" D64 "\",\"size\":-1}]}",
	    "{\"manifests\":[{\"digest\":\"sha256:" D64 "\",\"size\":\"1\"}]}",
	    "{\"manifests\":[{\"digest\":\"sha256:/../../../etc/passwd\",\"size\":1}]}",
	    "{\"manifests\":[{\"digest\":\"sha256:" D64 "0\",\"size\":1}]}",
	    "{\"manifests\":[{\"digest\":\"sha256:" D64 "\",\"size\":1,\"annotations\":[]}]}",
	    "{\"manifests\":[{\"digest\":\"SHA256:" D64 "\",\"size\":1}]}",
	};
	static const char *const bad_manifest[] = {
	    "{\"layers\":[]}",
	    "{\"config\":{\"digest\":\"sha256:" D64 "\",\"size\":1}}",
	    "{\"config\":{\"digest\":\"sha256:" D64 "\",\"size\":1},\"layers\":[{}]}",
	    "{\"config\":{\"digest\":\"sha256:" D64 "\",\"size\":1},\"layers\":[{\"mediaType\":"
	    "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" D64
	    "\",\"size\":1}]}",
	    "{\"manifests\":[],\"config\":{}}",
	};
	static const char *const bad_docker[] = {
	    "[]",
	    "{}",
	    "[1]",
	    "[{\"Layers\":[]}]",
	    "[{\"Config\":\"\",\"Layers\":[]}]",
	    "[{\"Config\":\"c.json\"}]",
	    "[{\"Config\":\"c.json\",\"Layers\":[\"\"]}]",
	    "[{\"Config\":\"c.json\",\"Layers\":\"x\"}]",
	};
	struct cj_err err;

	for (size_t i = 0; i < ARRAY_LEN(bad_index); i++) {
		struct cj_oci_index idx;
		memset(&err, 0, sizeof err);
		if (cj_oci_index_parse(bad_index[i], strlen(bad_index[i]), &idx, &err) != -1)
			fail_msg("index '%s' accepted", bad_index[i]);
		assert_true(err.msg[0]);
		assert_null(idx.manifests);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad_manifest); i++) {
		struct cj_oci_manifest m;
		memset(&err, 0, sizeof err);
		if (cj_oci_manifest_parse(bad_manifest[i], strlen(bad_manifest[i]), &m, &err) != -1)
			fail_msg("manifest '%s' accepted", bad_manifest[i]);
		assert_true(err.msg[0]);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad_docker); i++) {
		struct cj_docker_manifest dm;
		memset(&err, 0, sizeof err);
		if (cj_docker_manifest_parse(bad_docker[i], strlen(bad_docker[i]), &dm, &err) != -1)
			fail_msg("manifest.json '%s' accepted", bad_docker[i]);
		assert_true(err.msg[0]);
	}
	assert_true(cj_digest_valid("sha256:" D64));
	assert_false(cj_digest_valid("sha256:" D64 "0"));
	assert_false(
	    cj_digest_valid("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789"
	                    "abcdef"));
	assert_false(cj_digest_valid("sha256:"));
}

/* ---- docker's merge rules -------------------------------------------------------- */

static void strv_of(struct cj_strv *sv, const char *const *items)
{
	memset(sv, 0, sizeof *sv);
	for (; *items; items++)
		assert_int_equal(cj_strv_push(sv, *items), 0);
}

static void assert_strv(const struct cj_strv *sv, const char *const *want)
{
	size_t n = 0;
	for (; want[n]; n++) {
		assert_true(n < sv->n);
		assert_string_equal(sv->v[n], want[n]);
	}
	assert_int_equal(sv->n, n);
	assert_null(sv->v[n]);
}

static void test_command_rules(void **state)
{
	struct cj_image_config c = {0};
	struct cj_strv args, none = {0}, out;
	struct cj_err err = {0};

	strv_of(&c.entrypoint, (const char *[]){"/ep", "e1", NULL});
	strv_of(&c.cmd, (const char *[]){"c1", "c2", NULL});
	c.has_entrypoint = c.has_cmd = true;
	strv_of(&args, (const char *[]){"a1", NULL});

	assert_int_equal(cj_image_command(&c, false, NULL, &none, &out, &err), 0);
	assert_strv(&out, (const char *[]){"/ep", "e1", "c1", "c2", NULL});
	cj_strv_free(&out);
	/* arguments replace Cmd */
	assert_int_equal(cj_image_command(&c, false, NULL, &args, &out, &err), 0);
	assert_strv(&out, (const char *[]){"/ep", "e1", "a1", NULL});
	cj_strv_free(&out);
	/* --entrypoint replaces Entrypoint and drops Cmd */
	assert_int_equal(cj_image_command(&c, true, "/x", &none, &out, &err), 0);
	assert_strv(&out, (const char *[]){"/x", NULL});
	cj_strv_free(&out);
	assert_int_equal(cj_image_command(&c, true, "/x", &args, &out, &err), 0);
	assert_strv(&out, (const char *[]){"/x", "a1", NULL});
	cj_strv_free(&out);
	/* --entrypoint '' clears it: the arguments are the command */
	assert_int_equal(cj_image_command(&c, true, "", &args, &out, &err), 0);
	assert_strv(&out, (const char *[]){"a1", NULL});
	cj_strv_free(&out);
	/* ... and without arguments there is nothing to run */
	assert_int_equal(cj_image_command(&c, true, "", &none, &out, &err), -1);
	assert_msg_contains(&err, "no command");
	/* a plain rootfs (no config) */
	assert_int_equal(cj_image_command(NULL, false, NULL, &args, &out, &err), 0);
	assert_strv(&out, (const char *[]){"a1", NULL});
	cj_strv_free(&out);
	cj_strv_free(&args);
	cj_image_config_free(&c);
}

static void test_env_rules(void **state)
{
	struct cj_image_config c = {0};
	struct cj_strv over, out;
	struct cj_err err = {0};

	strv_of(&c.env, (const char *[]){"PATH=/img", "A=image", "B=image", NULL});
	strv_of(&over, (const char *[]){"B=cli", "C=new", NULL});
	assert_int_equal(cj_image_env(&c, &over, &out, &err), 0);
	assert_strv(&out, (const char *[]){"PATH=/img", "A=image", "B=cli", "C=new", NULL});
	cj_strv_free(&out);
	cj_strv_free(&over);
	/* nothing at all: still a valid, empty vector */
	memset(&over, 0, sizeof over);
	cj_image_config_free(&c);
	assert_int_equal(cj_image_env(&c, &over, &out, &err), 0);
	assert_non_null(out.v);
	assert_int_equal(out.n, 0);
	assert_null(out.v[0]);
	cj_strv_free(&out);
}

/* ---- entry names and whiteouts ---------------------------------------------------- */

static void test_clean_path(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"a/b", "a/b"},   {"./a/b", "a/b"},  {"/a//b/", "a/b"},
	    {".", ""},        {"./", ""},        {"/", ""},
	    {"a/./b", "a/b"}, {"...", "..."},    {"..a/b..", "..a/b.."},
	    {"a/.b", "a/.b"}, {"./././/x", "x"},
	};
	static const char *const bad[] = {"..",      "../x",   "a/../b",      "a/..",
	                                  "/../etc", "./../x", "a/b/../../.."};
	char out[64];

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		assert_int_equal(cj_layer_clean_path(ok[i].in, out, sizeof out), 0);
		assert_string_equal(out, ok[i].out);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (cj_layer_clean_path(bad[i], out, sizeof out) != -1)
			fail_msg("'%s' accepted as '%s'", bad[i], out);
	/* too long for the buffer */
	assert_int_equal(cj_layer_clean_path("abcdefgh", out, 8), -1);
	assert_int_equal(cj_layer_clean_path("abcdefg", out, 8), 0);
}

static void test_whiteout_kinds(void **state)
{
	static const struct {
		const char *in;
		enum cj_whiteout kind;
		const char *target;
	} cases[] = {
	    {"a/b", CJ_WH_NONE, NULL},
	    {"a/.whx", CJ_WH_NONE, NULL},
	    {"a/wh.b", CJ_WH_NONE, NULL},
	    {"a/.wh.b", CJ_WH_FILE, "a/b"},
	    {".wh.b", CJ_WH_FILE, "b"},
	    {"x/y/.wh..hidden", CJ_WH_FILE, "x/y/.hidden"},
	    {"a/.wh..wh..opq", CJ_WH_OPAQUE, "a"},
	    {".wh..wh..opq", CJ_WH_OPAQUE, ""},
	    {"a/.wh..wh.plnk", CJ_WH_META, NULL},
	    {".wh..wh.aufs", CJ_WH_META, NULL},
	    {"a/.wh.", CJ_WH_INVALID, NULL},
	    {".wh..", CJ_WH_INVALID, NULL},
	    {".wh...", CJ_WH_INVALID, NULL},
	};
	char target[64];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		enum cj_whiteout k = cj_layer_whiteout(cases[i].in, target, sizeof target);
		if (k != cases[i].kind)
			fail_msg("'%s' -> %d, expected %d", cases[i].in, k, cases[i].kind);
		if (cases[i].target)
			assert_string_equal(target, cases[i].target);
	}
}

/* ---- layers applied to a real tree ---------------------------------------------------- */

struct tree {
	char outer[64]; /* a directory around the root: must never change */
	char root[96];
	int root_fd;
};

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof *t);
	assert_non_null(t);
	snprintf(t->outer, sizeof t->outer, "/tmp/ctrj-test-image-XXXXXX");
	assert_non_null(mkdtemp(t->outer));
	snprintf(t->root, sizeof t->root, "%s/root", t->outer);
	assert_int_equal(mkdir(t->root, 0755), 0);
	t->root_fd = open(t->root, O_RDONLY | O_DIRECTORY);
	assert_true(t->root_fd >= 0);
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;
	close(t->root_fd);
	assert_int_equal(cj_tree_remove(t->outer), 0); /* trees here outgrow PATH_MAX */
	free(t);
	return 0;
}

struct tarbuf {
	struct archive *a;
	char buf[1 << 20];
	size_t used;
};

static void tar_begin(struct tarbuf *tb)
{
	tb->a = archive_write_new();
	assert_non_null(tb->a);
	assert_int_equal(archive_write_set_format_pax_restricted(tb->a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(tb->a, tb->buf, sizeof tb->buf, &tb->used),
	                 ARCHIVE_OK);
}

/* kind: 'f' file, 'd' dir, 'l' symlink (data = target), 'h' hard link
 * (data = target), 'c' character device. */
static void tar_add(struct tarbuf *tb, char kind, const char *name, const char *data)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_mtime(e, 1700000000, 0);
	switch (kind) {
	case 'd':
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
		break;
	case 'l':
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_perm(e, 0777);
		archive_entry_set_symlink(e, data);
		break;
	case 'h':
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_hardlink(e, data);
		break;
	case 'c':
		archive_entry_set_filetype(e, AE_IFCHR);
		archive_entry_set_perm(e, 0666);
		archive_entry_set_rdev(e, makedev(1, 3));
		break;
	default:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0640);
		archive_entry_set_size(e, (la_int64_t)strlen(data));
		break;
	}
	assert_int_equal(archive_write_header(tb->a, e), ARCHIVE_OK);
	if (kind == 'f')
		assert_int_equal(archive_write_data(tb->a, data, strlen(data)),
		                 (la_ssize_t)strlen(data));
	archive_entry_free(e);
}

/* Close the tar and apply it within budget (NULL: none); returns
 * cj_layer_apply's result. */
static int tar_apply_budget(struct tree *t, struct tarbuf *tb, bool whiteouts,
                            struct cj_layer_budget *budget, struct cj_err *err,
                            struct cj_layer_stats *st)
{
	struct cj_layer_opts opts = {
	    .whiteouts = whiteouts, .set_owner = geteuid() == 0, .budget = budget};
	struct cj_layer_stats local = {0};
	struct archive *r;
	int rc;

	assert_int_equal(archive_write_close(tb->a), ARCHIVE_OK);
	archive_write_free(tb->a);
	r = cj_layer_reader_new();
	assert_non_null(r);
	assert_int_equal(archive_read_open_memory(r, tb->buf, tb->used), ARCHIVE_OK);
	memset(err, 0, sizeof *err);
	rc = cj_layer_apply(t->root_fd, r, &opts, st ? st : &local, err);
	archive_read_free(r);
	return rc;
}

static int tar_apply(struct tree *t, struct tarbuf *tb, bool whiteouts, struct cj_err *err,
                     struct cj_layer_stats *st)
{
	return tar_apply_budget(t, tb, whiteouts, NULL, err, st);
}

static char *slurp(const char *dir, const char *rel)
{
	char path[512], *text;
	size_t len;
	struct cj_err err = {0};

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	return cj_read_file(path, &text, &len, &err) == 0 ? text : NULL;
}

static bool exists(const char *dir, const char *rel)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

static void assert_file(const char *dir, const char *rel, const char *content)
{
	char *text = slurp(dir, rel);
	if (!text)
		fail_msg("%s/%s is missing", dir, rel);
	assert_string_equal(text, content);
	free(text);
}

static void test_layers_whiteouts_and_opaque(void **state)
{
	struct tree *t = *state;
	struct tarbuf *tb = calloc(1, sizeof *tb);
	struct cj_layer_stats st = {0};
	struct cj_err err;

	assert_non_null(tb);
	tar_begin(tb);
	tar_add(tb, 'd', "d", NULL);
	tar_add(tb, 'f', "d/a", "a");
	tar_add(tb, 'f', "d/b", "b");
	tar_add(tb, 'd', "o/sub", NULL);
	tar_add(tb, 'f', "o/old", "old");
	tar_add(tb, 'f', "o/sub/old", "old");
	tar_add(tb, 'f', "gone/x", "x");
	assert_int_equal(tar_apply(t, tb, true, &err, NULL), 0);

	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'f', "d/.wh.a", "");
	tar_add(tb, 'f', "o/sub/new", "new"); /* this layer's, listed before the marker */
	tar_add(tb, 'f', "o/.wh..wh..opq", "");
	tar_add(tb, 'f', "o/after", "after");
	tar_add(tb, 'f', ".wh.gone", "");
	tar_add(tb, 'f', ".wh.never-existed", "");
	tar_add(tb, 'f', "d/.wh..wh.plnk", ""); /* aufs bookkeeping: ignored */
	assert_int_equal(tar_apply(t, tb, true, &err, &st), 0);
	assert_int_equal(st.whiteouts, 4);
	assert_false(exists(t->root, "d/a"));
	assert_file(t->root, "d/b", "b");
	assert_false(exists(t->root, "o/old"));
	assert_false(exists(t->root, "o/sub/old")); /* hidden below a kept directory too */
	assert_file(t->root, "o/sub/new", "new");
	assert_file(t->root, "o/after", "after");
	assert_false(exists(t->root, "gone"));
	assert_false(exists(t->root, "d/.wh..wh.plnk"));

	/* tar: input: names are literal */
	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'f', "d/.wh.b", "literal");
	assert_int_equal(tar_apply(t, tb, false, &err, NULL), 0);
	assert_file(t->root, "d/b", "b");
	assert_file(t->root, "d/.wh.b", "literal");
	free(tb);
}

static void test_layers_contained(void **state)
{
	struct tree *t = *state;
	struct tarbuf *tb = calloc(1, sizeof *tb);
	struct cj_layer_stats st = {0};
	struct cj_err err;
	char victim[128];

	assert_non_null(tb);
	/* a file next to the root that layers aim at */
	snprintf(victim, sizeof victim, "%s/victim", t->outer);
	assert_int_equal(close(open(victim, O_WRONLY | O_CREAT, 0644)), 0);

	tar_begin(tb);
	tar_add(tb, 'l', "abs", "/");
	tar_add(tb, 'l', "rel", "../../../../..");
	tar_add(tb, 'l', "victimlink", "../victim");
	tar_add(tb, 'f', "abs/victim", "via absolute symlink");
	tar_add(tb, 'f', "rel/sub/file", "via relative symlink");
	tar_add(tb, 'f', "victimlink", "replaces the symlink, not its target");
	tar_add(tb, 'h', "hl", "rel/victim");    /* resolves to the image's /victim */
	tar_add(tb, 'f', "rel/.wh.nothing", ""); /* a whiteout through a symlink */
	tar_add(tb, 'c', "null", NULL);
	assert_int_equal(tar_apply(t, tb, true, &err, &st), 0);
	assert_int_equal(st.skipped_devices, 1);
	assert_false(exists(t->root, "null"));
	/* everything landed inside */
	assert_file(t->root, "victim", "via absolute symlink");
	assert_file(t->root, "sub/file", "via relative symlink");
	assert_file(t->root, "victimlink", "replaces the symlink, not its target");
	assert_file(t->root, "hl", "via absolute symlink");
	/* and nothing outside changed */
	assert_file(t->outer, "victim", "");
	assert_false(exists(t->outer, "sub"));

	/* a whiteout through a symlink deletes inside the root */
	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'f', "rel/.wh.victim", "");
	assert_int_equal(tar_apply(t, tb, true, &err, NULL), 0);
	assert_false(exists(t->root, "victim"));
	assert_true(exists(t->outer, "victim"));

	/* ".." in a name or a hard-link target: refused, nothing written */
	static const struct {
		char kind;
		const char *name, *data, *needle;
	} bad[] = {
	    {'f', "../escape", "x", "'..'"},
	    {'f', "a/../../escape", "x", "'..'"},
	    {'h', "escape-link", "../victim", "outside the image"},
	    {'h', "escape-link", "../../../../etc/passwd", "outside the image"},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(tb, 0, sizeof *tb);
		tar_begin(tb);
		tar_add(tb, bad[i].kind, bad[i].name, bad[i].data);
		assert_int_equal(tar_apply(t, tb, true, &err, NULL), -1);
		assert_msg_contains(&err, bad[i].needle);
	}
	assert_false(exists(t->outer, "escape"));
	assert_false(exists(t->root, "escape-link"));
	assert_file(t->outer, "victim", "");
	free(tb);
}

static void test_open_in_root(void **state)
{
	struct tree *t = *state;
	struct cj_err err = {0};
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/up", t->root);
	assert_int_equal(symlink("../..", path), 0);
	fd = cj_open_in_root(t->root_fd, "up/made/here", true, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_true(exists(t->root, "made/here"));
	assert_false(exists(t->outer, "made"));
	/* without create, missing is an error */
	memset(&err, 0, sizeof err);
	assert_int_equal(cj_open_in_root(t->root_fd, "nope/x", false, &err), -1);
	assert_true(err.msg[0] != '\0');
}

/* ---- the unpack budget ---------------------------------------------------------------- */

static bool exists_at(int root_fd, const char *rel)
{
	struct stat st;
	return fstatat(root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void test_format_size(void **state)
{
	static const struct {
		uint64_t in;
		const char *out;
	} cases[] = {
	    {100, "100 bytes"},
	    {1536, "1.5 KiB"},
	    {16ull << 20, "16 MiB"},
	    {64ull << 30, "64 GiB"},
	    {(9ull << 30) / 10 * 9, "8.1 GiB"},
	    {1ull << 40, "1 TiB"},
	};
	char out[32];
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		cj_layer_format_size(cases[i].in, out, sizeof out);
		assert_string_equal(out, cases[i].out);
	}
}

static void test_budget_bytes(void **state)
{
	struct tree *t = *state;
	struct tarbuf *tb = calloc(1, sizeof *tb);
	struct cj_layer_budget b = {.max_bytes = 1000, .explain_bytes = "X-BYTES"};
	char big[601];
	struct cj_err err;

	assert_non_null(tb);
	memset(big, 'z', 600);
	big[600] = '\0';
	tar_begin(tb);
	tar_add(tb, 'f', "a", big);
	tar_add(tb, 'f', "b", big); /* 1200 bytes: past it */
	assert_int_equal(tar_apply_budget(t, tb, true, &b, &err, NULL), -1);
	assert_msg_contains(&err, "more than 1000 bytes");
	assert_msg_contains(&err, "X-BYTES");
	assert_true(exists_at(t->root_fd, "a"));
	assert_false(exists_at(t->root_fd, "b")); /* refused before anything of it was written */

	/* all layers together: 600 now, 600 in the next one */
	cj_tree_remove_at(t->root_fd, "a");
	b = (struct cj_layer_budget){.max_bytes = 1000};
	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'f', "a", big);
	assert_int_equal(tar_apply_budget(t, tb, true, &b, &err, NULL), 0);
	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'f', ".wh.a", ""); /* deleting it gives nothing back */
	tar_add(tb, 'f', "b", big);
	assert_int_equal(tar_apply_budget(t, tb, true, &b, &err, NULL), -1);
	assert_msg_contains(&err, "more than 1000 bytes");
	assert_false(exists_at(t->root_fd, "b"));
	free(tb);
}

static void test_budget_entries(void **state)
{
	struct tree *t = *state;
	struct tarbuf *tb = calloc(1, sizeof *tb);
	struct cj_layer_budget b = {.max_entries = 5, .explain_entries = "X-ENTRIES"};
	struct cj_err err;

	assert_non_null(tb);
	tar_begin(tb);
	tar_add(tb, 'f', "x/y/z/f1", "1"); /* three directories made for it, and itself: 4 */
	tar_add(tb, 'f', "f2", "2");       /* 5 */
	tar_add(tb, 'f', "f3", "3");       /* 6: past it */
	assert_int_equal(tar_apply_budget(t, tb, true, &b, &err, NULL), -1);
	assert_msg_contains(&err, "more than 5 files, directories and other entries");
	assert_msg_contains(&err, "X-ENTRIES");
	assert_true(exists_at(t->root_fd, "f2"));
	assert_false(exists_at(t->root_fd, "f3"));

	/* the directories a single deep name makes count too */
	b = (struct cj_layer_budget){.max_entries = 3};
	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'f', "p/q/r/s/t/u/file", "x");
	assert_int_equal(tar_apply_budget(t, tb, true, &b, &err, NULL), -1);
	assert_msg_contains(&err, "more than 3 files");

	/* the tar stream itself: data nobody writes still has to be inflated */
	b = (struct cj_layer_budget){.max_stream = 8192};
	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	for (int i = 0; i < 20; i++)
		tar_add(tb, 'c', "dev", NULL); /* skipped devices: written nowhere */
	assert_int_equal(tar_apply_budget(t, tb, true, &b, &err, NULL), -1);
	assert_msg_contains(&err, "8 KiB of tar data");
	free(tb);
}

/* ---- tree walks at any depth ---------------------------------------------------------- */

/* top/a/a/.../a (n levels of "a") below root_fd, with a file "leaf" at the
 * bottom, made with *at() calls: its paths outgrow PATH_MAX. */
static void make_chain(int root_fd, const char *top, unsigned n)
{
	int fd, next;

	assert_int_equal(mkdirat(root_fd, top, 0755), 0);
	fd = openat(root_fd, top, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(mkdirat(fd, "a", 0755), 0);
		next = openat(fd, "a", O_RDONLY | O_DIRECTORY);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	next = openat(fd, "leaf", O_WRONLY | O_CREAT, 0644);
	assert_true(next >= 0);
	close(next);
	close(fd);
}

struct counted {
	size_t entries, posts, longest;
	unsigned deepest;
};

static int count_pre(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct counted *c = ctx;
	(void)err;
	c->entries++;
	if (e->depth > c->deepest)
		c->deepest = e->depth;
	if (e->pathlen > c->longest)
		c->longest = e->pathlen;
	assert_int_equal(strlen(e->path), e->pathlen);
	return CJ_TREE_DESCEND;
}

static int count_post(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct counted *c = ctx;
	struct stat st;
	(void)err;
	/* called from the parent, with the directory's own name and stat */
	assert_int_equal(fstatat(e->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_ino, e->st->st_ino);
	c->posts++;
	return 0;
}

static void test_tree_walk_deeper_than_path_max(void **state)
{
	struct tree *t = *state;
	struct counted c = {0};
	struct cj_err err = {0};

	make_chain(t->root_fd, "c", 5000);
	assert_int_equal(cj_tree_walk(t->root_fd, UINT_MAX, count_pre, count_post, &c, &err), 0);
	assert_int_equal(c.entries, 1 + 1 + 5000 + 1); /* the root, c, the chain, leaf */
	assert_int_equal(c.deepest, 5002);
	assert_int_equal(c.posts, 1 + 5000);
	assert_true(c.longest > PATH_MAX);

	/* bounded: one clear error, naming the bound */
	memset(&err, 0, sizeof err);
	assert_int_equal(cj_tree_walk(t->root_fd, CJ_TREE_MAX_DEPTH, count_pre, NULL, &c, &err),
	                 -1);
	assert_msg_contains(&err, "deeper than 4096 levels");

	/* and removed, at any depth */
	assert_int_equal(cj_tree_remove_at(t->root_fd, "c"), 0);
	assert_false(exists_at(t->root_fd, "c"));
	assert_int_equal(cj_tree_remove_at(t->root_fd, "c"), 0); /* missing is fine */
}

static char walked[32][64];
static size_t nwalked;

static int record_walk(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	snprintf(walked[nwalked++ % 32], sizeof walked[0], "%s", path);
	return 0;
}

static int record_tree(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	const char *root = ctx;
	char path[160];
	(void)err;
	snprintf(path, sizeof path, "%s%s%s", root, e->pathlen ? "/" : "", e->path);
	if (strcmp(walked[nwalked++ % 32], path) != 0)
		fail_msg("walk order: %s, nftw had %s", path, walked[(nwalked - 1) % 32]);
	return CJ_TREE_DESCEND;
}

/* The same entries in the same order with the same paths as nftw, which
 * the base image's cache key was computed with: the keys did not move. */
static void test_tree_walk_matches_nftw(void **state)
{
	struct tree *t = *state;
	struct cj_err err = {0};
	size_t n;
	char path[160];
	static const char *const dirs[] = {"d1", "d1/sub", "d2", "d2/x"};
	static const char *const files[] = {"f0", "d1/f1", "d1/sub/f2", "d2/x/f3", "d2/f4"};

	for (size_t i = 0; i < ARRAY_LEN(dirs); i++)
		assert_int_equal(mkdirat(t->root_fd, dirs[i], 0755), 0);
	for (size_t i = 0; i < ARRAY_LEN(files); i++)
		close(openat(t->root_fd, files[i], O_WRONLY | O_CREAT, 0644));
	snprintf(path, sizeof path, "%s/d2/link", t->root);
	assert_int_equal(symlink("../d1", path), 0); /* listed, never followed */
	nwalked = 0;
	assert_int_equal(nftw(t->root, record_walk, 8, FTW_PHYS | FTW_MOUNT), 0);
	n = nwalked;
	assert_int_equal(n, 1 + ARRAY_LEN(dirs) + ARRAY_LEN(files) + 1);
	nwalked = 0;
	assert_int_equal(cj_tree_walk(t->root_fd, 8, record_tree, NULL, t->root, &err), 0);
	assert_int_equal(nwalked, n);
}

static void test_tree_remove_never_follows_links(void **state)
{
	struct tree *t = *state;
	char path[160];

	snprintf(path, sizeof path, "%s/victim", t->outer);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	assert_int_equal(mkdirat(t->root_fd, "x", 0755), 0);
	snprintf(path, sizeof path, "%s/x/out", t->root);
	assert_int_equal(symlink(t->outer, path), 0);
	snprintf(path, sizeof path, "%s/x/file", t->root);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	assert_int_equal(cj_tree_remove_at(t->root_fd, "x"), 0);
	assert_false(exists_at(t->root_fd, "x"));
	assert_true(exists(t->outer, "victim"));
	/* a path, and a plain file */
	snprintf(path, sizeof path, "%s/victim", t->outer);
	assert_int_equal(cj_tree_remove(path), 0);
	assert_false(exists(t->outer, "victim"));
}

/* A chain as deep as a tar name allows in a lower layer, the same chain in
 * the upper one with an opaque whiteout at its top: base 0181444 recursed
 * down it with a PATH_MAX buffer a level and overflowed the stack. */
static void test_opaque_whiteout_over_a_deep_chain(void **state)
{
	struct tree *t = *state;
	struct tarbuf *tb = calloc(1, sizeof *tb);
	struct cj_err err;
	char deep[PATH_MAX], name[PATH_MAX];
	size_t o = 0;

	assert_non_null(tb);
	o += (size_t)snprintf(deep, sizeof deep, "d/bb");
	for (int i = 0; i < 2043; i++)
		o += (size_t)snprintf(deep + o, sizeof deep - o, "/a");
	tar_begin(tb);
	tar_add(tb, 'f', "d/lower-top", "lower");
	snprintf(name, sizeof name, "%s/old", deep);
	tar_add(tb, 'f', name, "lower");
	assert_int_equal(tar_apply(t, tb, true, &err, NULL), 0);

	memset(tb, 0, sizeof *tb);
	tar_begin(tb);
	tar_add(tb, 'd', deep, NULL);
	snprintf(name, sizeof name, "%s/new", deep);
	tar_add(tb, 'f', name, "upper");
	tar_add(tb, 'f', "d/.wh..wh..opq", "");
	assert_int_equal(tar_apply(t, tb, true, &err, NULL), 0);
	assert_false(exists_at(t->root_fd, "d/lower-top"));
	snprintf(name, sizeof name, "%s/old", deep);
	assert_false(exists_at(t->root_fd, name));
	snprintf(name, sizeof name, "%s/new", deep);
	assert_true(exists_at(t->root_fd, name));
	free(tb);
}

static void test_mke2fs_path_guard(void **state)
{
	(void)state;
	assert_false(cj_mke2fs_path_ok(2039)); /* "/" + 2039 bytes: the buffer's 2040 */
	assert_true(cj_mke2fs_path_ok(2038));
	assert_true(cj_mke2fs_path_ok(2040));
	assert_true(cj_mke2fs_path_ok(254)); /* 255: an overrun glibc's slack absorbs */
	assert_true(cj_mke2fs_path_ok(4079));
}

/* ---- trees on an overlayfs, mounts inside a tree ---------------------------------------- */

/* The rest of this process runs in a private mount namespace of its own:
 * what the tests mount there is gone with it. Needs root. */
static bool private_mounts(void)
{
	static int state; /* 0: not tried, 1: yes, -1: no */

	if (!state)
		state = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
		                mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0
		            ? 1
		            : -1;
	return state > 0;
}

struct overlay {
	char lower[160], upper[160], merged[160], outside[160];
	int fd; /* the merged directory */
};

static void write_at(int dirfd, const char *name, const char *content)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

/* An overlay of two tmpfs instances in t->root (xino off, the default:
 * every non-directory reports its layer's device), the lower holding
 * d/{f1,f2,bound/}, top and link -> d, and `many` empty files in many/;
 * and outside/x, a file of another file system. */
static void overlay_mount(struct tree *t, struct overlay *o, unsigned many)
{
	char opts[600], name[32];
	int fd;

	snprintf(o->lower, sizeof o->lower, "%s/lower", t->root);
	snprintf(o->upper, sizeof o->upper, "%s/upper", t->root);
	snprintf(o->merged, sizeof o->merged, "%s/merged", t->root);
	snprintf(o->outside, sizeof o->outside, "%s/outside", t->root);
	for (const char *d = "lower\0upper\0merged\0outside\0"; *d; d += strlen(d) + 1)
		assert_int_equal(mkdirat(t->root_fd, d, 0755), 0);
	assert_int_equal(mount("lower", o->lower, "tmpfs", 0, "size=32m"), 0);
	assert_int_equal(mount("upper", o->upper, "tmpfs", 0, "size=32m"), 0);
	fd = open(o->lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mkdirat(fd, "d", 0755), 0);
	assert_int_equal(mkdirat(fd, "d/bound", 0755), 0);
	assert_int_equal(mkdirat(fd, "many", 0755), 0);
	write_at(fd, "d/f1", "one");
	write_at(fd, "d/f2", "the tree's own");
	write_at(fd, "top", "top");
	assert_int_equal(symlinkat("d", fd, "link"), 0);
	for (unsigned i = 0; i < many; i++) {
		snprintf(name, sizeof name, "many/f%u", i);
		write_at(fd, name, "");
	}
	close(fd);
	fd = open(o->upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mkdirat(fd, "u", 0755), 0);
	assert_int_equal(mkdirat(fd, "w", 0755), 0);
	close(fd);
	snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s/u,workdir=%s/w,xino=off", o->lower,
	         o->upper, o->upper);
	assert_int_equal(mount("overlay", o->merged, "overlay", 0, opts), 0);
	fd = open(o->outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	write_at(fd, "x", "another file system's");
	close(fd);
	o->fd = open(o->merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(o->fd >= 0);
}

/* A directory and a file of another file system mounted inside the tree. */
static void overlay_bind_inside(struct overlay *o)
{
	char src[200], dst[200];

	snprintf(dst, sizeof dst, "%s/d/bound", o->merged);
	assert_int_equal(mount(o->outside, dst, NULL, MS_BIND, NULL), 0);
	snprintf(src, sizeof src, "%s/x", o->outside);
	snprintf(dst, sizeof dst, "%s/d/f2", o->merged);
	assert_int_equal(mount(src, dst, NULL, MS_BIND, NULL), 0);
}

static void overlay_umount(struct overlay *o)
{
	close(o->fd);
	assert_int_equal(umount2(o->merged, MNT_DETACH), 0); /* and what is mounted in it */
	assert_int_equal(umount2(o->lower, 0), 0);
	assert_int_equal(umount2(o->upper, 0), 0);
}

static size_t nftw_seen;

static int nftw_count(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)flag;
	(void)ftw;
	nftw_seen++;
	return 0;
}

/* Every entry of an overlay whose layers are two tmpfs instances is the
 * tree's, files in the lower and in the upper alike: a walk that told
 * mounts apart by device (as nftw's FTW_MOUNT does) saw its directories
 * only. Removal empties such a tree too. */
static void test_tree_walk_overlay(void **state)
{
	struct tree *t = *state;
	struct overlay o;
	struct counted c = {0};
	struct cj_err err = {0};

	if (!private_mounts())
		skip();
	overlay_mount(t, &o, 0);
	write_at(o.fd, "new", "written through the overlay"); /* in the upper */
	assert_int_equal(mkdirat(o.fd, "gone", 0755), 0);
	write_at(o.fd, "gone/a", "a");
	write_at(o.fd, "gone/b", "b");
	/* ".", d, d/f1, d/f2, d/bound, many, top, link, new, gone, gone/a, gone/b */
	assert_int_equal(cj_tree_walk(o.fd, 16, count_pre, NULL, &c, &err), 0);
	assert_int_equal(c.entries, 12);
	/* the premise: by device, the directories only (".", d, d/bound, many, gone) */
	nftw_seen = 0;
	assert_int_equal(nftw(o.merged, nftw_count, 8, FTW_PHYS | FTW_MOUNT), 0);
	assert_int_equal(nftw_seen, 5);
	assert_int_equal(cj_tree_remove_at(o.fd, "gone"), 0);
	assert_false(exists_at(o.fd, "gone"));
	overlay_umount(&o);
}

struct walk_seen {
	struct counted c; /* first: count_pre's context */
	size_t mounts;
	char mount_paths[4][32];
};

static int record_mount(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct walk_seen *w = ctx;
	(void)err;
	if (w->mounts < ARRAY_LEN(w->mount_paths))
		snprintf(w->mount_paths[w->mounts], sizeof w->mount_paths[0], "%s", e->path);
	w->mounts++;
	return 0;
}

/* What is mounted inside the tree, a directory or a single file, is
 * another file system's: reported, never entered or visited. */
static void test_tree_walk_mounts_inside(void **state)
{
	struct tree *t = *state;
	struct overlay o;
	struct walk_seen w = {0};
	struct cj_err err = {0};

	if (!private_mounts())
		skip();
	overlay_mount(t, &o, 0);
	overlay_bind_inside(&o);
	/* ".", d, d/f1, many, top, link; not d/bound (nor its x), not d/f2 */
	assert_int_equal(cj_tree_walk_mounts(o.fd, 16, count_pre, NULL, record_mount, &w, &err), 0);
	assert_int_equal(w.c.entries, 6);
	assert_int_equal(w.mounts, 2);
	assert_true(
	    (strcmp(w.mount_paths[0], "d/f2") == 0 && strcmp(w.mount_paths[1], "d/bound") == 0) ||
	    (strcmp(w.mount_paths[0], "d/bound") == 0 && strcmp(w.mount_paths[1], "d/f2") == 0));
	/* plain cj_tree_walk skips them alike */
	memset(&w, 0, sizeof w);
	assert_int_equal(cj_tree_walk(o.fd, 16, count_pre, NULL, &w.c, &err), 0);
	assert_int_equal(w.c.entries, 6);
	overlay_umount(&o);
}

/* debugfs's answer to one request about an image. */
static char *debugfs(const char *image, const char *request)
{
	char cmd[512], *out = calloc(1, 1 << 20);
	size_t n;
	FILE *p;

	assert_non_null(out);
	snprintf(cmd, sizeof cmd, "debugfs -R '%s' '%s' 2>/dev/null", request, image);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, (1 << 20) - 1, p);
	out[n] = '\0';
	pclose(p);
	return out;
}

/* Entries of a directory in an image, "." and ".." left out. */
static size_t image_dir_entries(const char *image, const char *dir)
{
	char request[128], *out, *save = NULL;
	size_t n = 0;

	snprintf(request, sizeof request, "ls -p %s", dir);
	out = debugfs(image, request);
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (line[0] == '/' && !strstr(line, "/./") && !strstr(line, "/../"))
			n++;
	free(out);
	return n;
}

/* The image of an overlay tree holds all its files (here more than a
 * count of its directories leaves inodes for), and of what is mounted
 * inside it only what the tree itself has there. */
static void test_dir_image_of_overlay(void **state)
{
	struct tree *t = *state;
	struct overlay o;
	struct cj_err err = {0};
	char image[160], *out;

	if (!private_mounts())
		skip();
	overlay_mount(t, &o, 1500);
	overlay_bind_inside(&o);
	snprintf(image, sizeof image, "%s/image.ext4", t->outer);
	if (cj_dir_image_build(o.merged, image, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(image_dir_entries(image, "/many"), 1500);
	assert_int_equal(image_dir_entries(image, "/d/bound"), 0);
	out = debugfs(image, "cat /d/f2");
	assert_string_equal(out, "the tree's own");
	free(out);
	out = debugfs(image, "cat /d/f1");
	assert_string_equal(out, "one");
	free(out);
	overlay_umount(&o);
	unlink(image);
}

/* mke2fs running out of inodes or blocks is never the user's error: an
 * estimate far short of the tree (no data, one inode) still builds. */
static void test_dir_image_short_estimate(void **state)
{
	struct tree *t = *state;
	struct cj_err err = {0};
	char image[160], name[32], data[8193];

	memset(data, 'x', sizeof data - 1);
	data[sizeof data - 1] = '\0';
	assert_int_equal(mkdirat(t->root_fd, "many", 0755), 0);
	for (unsigned i = 0; i < 1200; i++) {
		snprintf(name, sizeof name, "many/f%u", i);
		write_at(t->root_fd, name, i < 1000 ? "" : data);
	}
	snprintf(image, sizeof image, "%s/image.ext4", t->outer);
	if (cj_dir_image_build_sized(t->root, image, 0, 1, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(image_dir_entries(image, "/many"), 1200);
	unlink(image);
}

/* Run build(dir) in a child without CAP_SYS_ADMIN (no detached clone of
 * the tree: it is read in place); its exit status: 0 built, 1 refused
 * with a message naming mount_path, 2 anything else. */
static int build_without_sys_admin(const char *dir, const char *image, const char *mount_path)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	struct cj_err err = {0};
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (syscall(SYS_capget, &hdr, data) < 0)
			_exit(2);
		data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
		if (syscall(SYS_capset, &hdr, data) < 0)
			_exit(2);
		if (cj_dir_image_build(dir, image, &err) == 0)
			_exit(0);
		if (mount_path && strstr(err.msg, mount_path) && strstr(err.msg, "CAP_SYS_ADMIN"))
			_exit(1);
		fprintf(stderr, "%s\n", err.msg);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Without the privilege to clone the tree's mount, a tree read in place
 * is imaged whole when nothing is mounted inside it, and refused, with
 * the mount named, when something is (mke2fs would copy it). */
static void test_dir_image_in_place(void **state)
{
	struct tree *t = *state;
	struct overlay o;
	char image[160];

	if (!private_mounts())
		skip();
	overlay_mount(t, &o, 0);
	snprintf(image, sizeof image, "%s/image.ext4", t->outer);
	assert_int_equal(build_without_sys_admin(o.merged, image, NULL), 0);
	assert_int_equal(image_dir_entries(image, "/d"), 3);
	unlink(image);
	overlay_bind_inside(&o);
	assert_int_equal(build_without_sys_admin(o.merged, image, "mounted at '/d/"), 1);
	assert_false(exists(t->outer, "image.ext4"));
	overlay_umount(&o);
}

/* Several first starts of one rootfs at once (issue 12): one builds its
 * image, the others wait on the key's lock and take it, all see the image
 * that is on disk, and the lock file stays (unlinking it while a start
 * waits on it let a third start take a new lock and build alongside,
 * through the same dest.tmp). */
struct concurrent_result {
	int ok, built;
	uint8_t uuid[16];
};

static void test_tree_image_concurrent_first_builds(void **state)
{
	enum { STARTS = 4 };
	struct tree *t = *state;
	struct concurrent_result res[STARTS];
	struct cj_fsimage img;
	struct cj_layer_stack stack;
	struct cj_err err = {0};
	char cache[160], lock[PATH_MAX + 8];
	int go[2], done[2], built = 0, st;
	uint8_t on_disk[16];

	assert_int_equal(mkdirat(t->root_fd, "etc", 0755), 0);
	write_at(t->root_fd, "etc/hostname", "concurrent");
	snprintf(cache, sizeof cache, "%s/cache", t->outer);
	assert_int_equal(mkdir(cache, 0700), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	for (int i = 0; i < STARTS; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct concurrent_result r = {0};
			char c;

			close(go[1]);
			if (read(go[0], &c, 1) != 0) /* all start when the pipe closes */
				_exit(2);
			r.ok = cj_base_image_get(cache, t->root, &stack, &err) == 0;
			r.built = stack.layers[0].built;
			memcpy(r.uuid, stack.layers[0].uuid, sizeof r.uuid);
			if (!r.ok)
				fprintf(stderr, "%s\n", err.msg);
			_exit(write(done[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 2);
		}
	}
	close(go[0]);
	close(go[1]);
	close(done[1]);
	for (int i = 0; i < STARTS; i++) {
		assert_int_equal(read(done[0], &res[i], sizeof res[i]), (ssize_t)sizeof res[i]);
		assert_true(wait(&st) > 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	close(done[0]);

	if (cj_base_image_get(cache, t->root, &stack, &err) < 0)
		fail_msg("%s", err.msg);
	img = stack.layers[0];
	assert_false(img.built);
	assert_int_equal(cj_ext4_uuid(img.path, on_disk, &err), 0);
	for (int i = 0; i < STARTS; i++) {
		assert_true(res[i].ok);
		built += res[i].built;
		assert_memory_equal(res[i].uuid, on_disk, sizeof on_disk);
	}
	assert_int_equal(built, 1);
	snprintf(lock, sizeof lock, "%.*s.lock", (int)(strlen(img.path) - strlen(".ext4")),
	         img.path);
	assert_int_equal(access(lock, F_OK), 0);
	snprintf(lock, sizeof lock, "%s.tmp", img.path);
	assert_int_equal(access(lock, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ref_parse),
	    cmocka_unit_test(test_config_parse_full),
	    cmocka_unit_test(test_config_parse_absent_and_null),
	    cmocka_unit_test(test_config_parse_hostile),
	    cmocka_unit_test(test_config_parse_healthcheck),
	    cmocka_unit_test(test_signal_parse),
	    cmocka_unit_test(test_index_and_manifest),
	    cmocka_unit_test(test_index_and_manifest_hostile),
	    cmocka_unit_test(test_command_rules),
	    cmocka_unit_test(test_env_rules),
	    cmocka_unit_test(test_clean_path),
	    cmocka_unit_test(test_whiteout_kinds),
	    cmocka_unit_test_setup_teardown(test_layers_whiteouts_and_opaque, tree_setup,
	                                    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_layers_contained, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_open_in_root, tree_setup, tree_teardown),
	    cmocka_unit_test(test_format_size),
	    cmocka_unit_test_setup_teardown(test_budget_bytes, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_budget_entries, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_tree_walk_deeper_than_path_max, tree_setup,
	                                    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_tree_walk_matches_nftw, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_tree_remove_never_follows_links, tree_setup,
	                                    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_opaque_whiteout_over_a_deep_chain, tree_setup,
	                                    tree_teardown),
	    cmocka_unit_test(test_mke2fs_path_guard),
	    cmocka_unit_test_setup_teardown(test_tree_walk_overlay, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_tree_walk_mounts_inside, tree_setup,
	                                    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_dir_image_of_overlay, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_dir_image_short_estimate, tree_setup,
	                                    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_dir_image_in_place, tree_setup, tree_teardown),
	    cmocka_unit_test_setup_teardown(test_tree_image_concurrent_first_builds, tree_setup,
	                                    tree_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
