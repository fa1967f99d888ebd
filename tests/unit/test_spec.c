/* SPDX-License-Identifier: Apache-2.0 */
/* The run specification: environment handling (docker semantics), sizes and
 * the `run` command line (src/cli/run.c's table), then the inputs stage
 * that reads what the spec names (src/lib/run/inputs.c). */
#include "run.h"
#include "run/inputs.h"
#include "spec/spec.h"
#include "util/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Value of NAME in a "NAME=VALUE" vector, NULL when absent; fails the test
 * when NAME occurs more than once. */
static const char *env_get(const struct cj_strv *env, const char *name)
{
	size_t len = strlen(name);
	const char *found = NULL;

	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], name, len) == 0 && env->v[i][len] == '=') {
			if (found)
				fail_msg("%s occurs twice in the environment", name);
			found = env->v[i] + len + 1;
		}
	}
	if (env->v)
		assert_null(env->v[env->n]);
	return found;
}

static void assert_msg_contains(const struct cj_err *err, const char *needle)
{
	if (!strstr(err->msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
}

/* ---- cj_env_set / cj_strv ----------------------------------------------- */

static void test_env_set_replaces(void **state)
{
	struct cj_strv env = {0};

	assert_int_equal(cj_env_set(&env, "AB=1"), 0);
	assert_int_equal(cj_env_set(&env, "A=2"), 0);
	assert_int_equal(cj_env_set(&env, "ABC=3"), 0);
	assert_int_equal(env.n, 3);
	assert_int_equal(cj_env_set(&env, "A=replaced=x"), 0);
	assert_int_equal(cj_env_set(&env, "ABC="), 0);
	assert_int_equal(env.n, 3);
	/* Replacement keeps the original position. */
	assert_string_equal(env.v[0], "AB=1");
	assert_string_equal(env.v[1], "A=replaced=x");
	assert_string_equal(env.v[2], "ABC=");
	assert_null(env.v[3]);
	assert_string_equal(env_get(&env, "A"), "replaced=x");
	assert_string_equal(env_get(&env, "AB"), "1");
	assert_string_equal(env_get(&env, "ABC"), "");
	cj_strv_free(&env);
	assert_null(env.v);
	assert_int_equal(env.n, 0);
	cj_strv_free(&env); /* idempotent */
}

static void test_env_is_runtime_own(void **state)
{
	static const char *const own[] = {"TAP_IP",
	                                  "HOST_IFACE",
	                                  "VCPU_COUNT",
	                                  "MEM_SIZE_MIB",
	                                  "ROOTFS_SIZE",
	                                  "DATAFS_SIZE",
	                                  "KERNEL_BOOT_ARGS",
	                                  "EXTRA_KERNEL_BOOT_ARGS",
	                                  "DATA_MOUNT",
	                                  "PUBLISH",
	                                  "FIRECRACKER_BIN",
	                                  "JAILER_BIN",
	                                  "PATH",
	                                  "HOME",
	                                  "HOSTNAME",
	                                  "TERM",
	                                  "PWD",
	                                  "OLDPWD",
	                                  "SHLVL",
	                                  "_",
	                                  "CTR_JAILER_",
	                                  "CTR_JAILER_CACHE",
	                                  "CTR_JAILER_anything"};
	static const char *const other[] = {"TAP_IPX", "TAP",  "PAT",        "PATHS",
	                                    "path",    "home", "CTR_JAILER", "CTR_",
	                                    "__",      "FOO",  "MY_PATH",    "X_TAP_IP"};

	for (size_t i = 0; i < ARRAY_LEN(own); i++)
		if (!cli_run_env_is_own(own[i], strlen(own[i])))
			fail_msg("%s should be the runtime's own", own[i]);
	for (size_t i = 0; i < ARRAY_LEN(other); i++)
		if (cli_run_env_is_own(other[i], strlen(other[i])))
			fail_msg("%s should be passed on", other[i]);

	/* The name is given by length inside a "NAME=VALUE" entry. */
	assert_true(cli_run_env_is_own("PATH=/usr/bin", 4));
	assert_false(cli_run_env_is_own("PATHX=/usr/bin", 5));
	assert_false(cli_run_env_is_own("TAP_IP_EXTRA=1", 12));
	assert_false(cli_run_env_is_own("", 0));
}

/* ---- cj_env_file_parse -------------------------------------------------- */

static int parse_env_text(const char *text, char **lookup, struct cj_strv *env, struct cj_err *err)
{
	size_t len = strlen(text);
	char *copy = malloc(len + 1); /* exact size on the heap for ASan */
	int r;

	assert_non_null(copy);
	memcpy(copy, text, len);
	r = cj_env_file_parse(copy, len, "test.env", lookup, env, err);
	free(copy);
	return r;
}

static void test_env_file_semantics(void **state)
{
	char *lookup[] = {"FROM_HOST=host value", "EMPTY_HOST=", "SPACED=  s  ", NULL};
	const char *text = "# a comment\n"
	                   "\n"
	                   "   \t \n"
	                   "A=1\n"
	                   "QUOTED=\"not unquoted\" 'kept'\n"
	                   "TRAIL=x=y \n"
	                   "FROM_HOST\n"
	                   "  SPACED   \n"
	                   "UNSET_ON_HOST\n"
	                   "EMPTY_HOST\n"
	                   "CRLF=windows\r\n"
	                   "  LEAD=leading ws skipped\n"
	                   "\t# indented comment\n"
	                   "#A=commented out\n"
	                   "DOLLAR=$HOME ${X} \\n\n"
	                   "EMPTY=\n"
	                   "UTF=\xc3\xa9\xff\n"
	                   "A=2\n"
	                   "lower.case-ok=1\n"
	                   "LAST=no newline";
	struct cj_strv env = {0};
	struct cj_err err = {0};

	assert_int_equal(parse_env_text(text, lookup, &env, &err), 0);
	assert_string_equal(env_get(&env, "A"), "2");
	assert_string_equal(env_get(&env, "QUOTED"), "\"not unquoted\" 'kept'");
	assert_string_equal(env_get(&env, "TRAIL"), "x=y ");
	assert_string_equal(env_get(&env, "FROM_HOST"), "host value");
	assert_string_equal(env_get(&env, "SPACED"), "  s  ");
	assert_null(env_get(&env, "UNSET_ON_HOST"));
	assert_string_equal(env_get(&env, "EMPTY_HOST"), "");
	assert_string_equal(env_get(&env, "CRLF"), "windows");
	assert_string_equal(env_get(&env, "LEAD"), "leading ws skipped");
	assert_string_equal(env_get(&env, "DOLLAR"), "$HOME ${X} \\n");
	assert_string_equal(env_get(&env, "EMPTY"), "");
	assert_string_equal(env_get(&env, "UTF"), "\xc3\xa9\xff");
	assert_string_equal(env_get(&env, "lower.case-ok"), "1");
	assert_string_equal(env_get(&env, "LAST"), "no newline");
	assert_int_equal(env.n, 13);
	for (size_t i = 0; i < env.n; i++) {
		assert_null(strchr(env.v[i], '\r'));
		assert_null(strchr(env.v[i], '\n'));
		assert_true(env.v[i][0] != '#' && env.v[i][0] != ' ');
	}
	cj_strv_free(&env);
}

static void test_env_file_empty_inputs(void **state)
{
	static const char *const texts[] = {"", "\n", "\r\n", "#\n", "   ", "\n\n\n# x\n\t\n"};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
		struct cj_strv env = {0};
		struct cj_err err = {0};
		assert_int_equal(parse_env_text(texts[i], NULL, &env, &err), 0);
		assert_int_equal(env.n, 0);
		cj_strv_free(&env);
	}
}

static void test_env_file_errors(void **state)
{
	static const struct {
		const char *text;
		const char *line;
	} cases[] = {
	    {"=x\n", "line 1"},
	    {"A=1\n=x\n", "line 2"},
	    {"A B=1\n", "line 1"},
	    {"A=1\n\n# c\nA B=1\n", "line 4"},
	    {"A\tB=1", "line 1"},
	    {"A B\n", "line 1"},
	    {"OK=1\r\nBAD NAME\r\n", "line 2"},
	    {"=\n", "line 1"},
	    {"X =1\n", "line 1"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct cj_strv env = {0};
		struct cj_err err = {0};
		assert_int_equal(parse_env_text(cases[i].text, NULL, &env, &err), -1);
		assert_msg_contains(&err, cases[i].line);
		assert_msg_contains(&err, "test.env");
		cj_strv_free(&env);
	}

	/* A NUL byte anywhere. */
	static const char nul[] = "A=1\nB=x\0y\n";
	struct cj_strv env = {0};
	struct cj_err err = {0};
	assert_int_equal(cj_env_file_parse(nul, sizeof nul - 1, "nul.env", NULL, &env, &err), -1);
	assert_msg_contains(&err, "NUL");
	cj_strv_free(&env);
}

/* Length-bounded: bytes after len are never looked at. */
static void test_env_file_respects_len(void **state)
{
	static const char text[] = "A=1\nB=2\nC=3";
	struct cj_strv env = {0};
	struct cj_err err = {0};

	assert_int_equal(cj_env_file_parse(text, 5, "t", NULL, &env, &err), 0);
	assert_int_equal(env.n, 1);
	assert_string_equal(env_get(&env, "A"), "1");
	cj_strv_free(&env);
	assert_int_equal(cj_env_file_parse(text, 6, "t", NULL, &env, &err), 0);
	assert_int_equal(env.n, 2);
	assert_string_equal(env_get(&env, "B"), "");
	cj_strv_free(&env);
}

/* ---- cj_parse_size ------------------------------------------------------ */

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t unit;
		uint64_t want;
	} good[] = {
	    {"512", 1ull << 20, 512ull << 20},
	    {"512", 1, 512},
	    {"0", 1ull << 20, 0},
	    {"64K", 1, 64ull << 10},
	    {"64k", 1ull << 20, 64ull << 10},
	    {"100M", 1, 100ull << 20},
	    {"2G", 1, 2ull << 30},
	    {"2g", 1, 2ull << 30},
	    {"1T", 1, 1ull << 40},
	    {"2GiB", 1, 2ull << 30},
	    {"2Gi", 1, 2ull << 30},
	    {"2GB", 1, 2ull << 30},
	    {"3KiB", 1, 3ull << 10},
	    {"7B", 1ull << 20, 7},
	    {"7b", 1ull << 20, 7},
	    {"16777215T", 1, 16777215ull << 40},
	    {"17179869183G", 1, 17179869183ull << 30},
	    {"18446744073709551615", 1, UINT64_MAX},
	};
	static const char *const bad[] = {
	    "",
	    "G",
	    "abc",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1X",
	    "1GG",
	    "1Gi B",
	    "1iB",
	    "1Bi",
	    "1BB",
	    "1Gx",
	    "1.5G",
	    "0x10",
	    "1e3",
	    "2GiBs",
	    "1P",
	    "1\n",
	    "16777216T",
	    "17179869184G",
	    "18446744073709551616",
	    "99999999999999999999999",
	};

	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		uint64_t v = 12345;
		if (cj_parse_size(good[i].s, good[i].unit, &v) != 0)
			fail_msg("'%s' should parse", good[i].s);
		if (v != good[i].want)
			fail_msg("'%s' parsed to %llu, want %llu", good[i].s, (unsigned long long)v,
			         (unsigned long long)good[i].want);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		uint64_t v = 12345;
		if (cj_parse_size(bad[i], 1ull << 20, &v) != -1)
			fail_msg("'%s' should be rejected", bad[i]);
		assert_true(v == 12345);
	}
	/* Overflow through the default unit. */
	uint64_t v;
	assert_int_equal(cj_parse_size("17592186044416", 1ull << 20, &v), -1);
	assert_int_equal(cj_parse_size("17592186044415", 1ull << 20, &v), 0);
	assert_int_equal(cj_parse_size(NULL, 1, &v), -1);
}

/* ---- cli_run_parse + cj_inputs_read -------------------------------------- */

static int spec_run(struct cj_spec *spec, char **argv, char **env, struct cj_err *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	memset(err, 0, sizeof *err);
	if (cli_run_parse(spec, argc, argv, env, NULL, NULL, err) != 0)
		return -1;
	if (cj_inputs_read(spec, err) < 0) {
		cj_spec_free(spec);
		return -1;
	}
	return 0;
}

static void expect_spec_error(char **argv, char **env, const char *needle)
{
	struct cj_spec spec;
	struct cj_err err;

	assert_int_equal(spec_run(&spec, argv, env, &err), -1);
	assert_msg_contains(&err, needle);
	assert_int_equal(err.exit_code, CJ_EXIT_RUNTIME);
	assert_null(spec.argv.v);
	/* After an error the spec is already freed and zeroed: a no-op. */
	cj_spec_free(&spec);
}

static void test_spec_defaults(void **state)
{
	char *argv[] = {"run", "/bin/true", NULL};
	char *env[] = {NULL};
	struct cj_spec spec;
	struct cj_err err;

	assert_int_equal(spec_run(&spec, argv, env, &err), 0);
	assert_string_equal(spec.rootfs, CJ_DEFAULT_ROOTFS);
	assert_string_equal(spec.cache_dir, CJ_DEFAULT_CACHE);
	assert_string_equal(spec.run_base, CJ_DEFAULT_RUN_BASE);
	assert_string_equal(spec.qemu_bin, "qemu-system-x86_64");
	assert_int_equal(spec.argv.n, 1);
	assert_string_equal(spec.argv.v[0], "/bin/true");
	assert_null(spec.argv.v[1]);
	/* An empty environment is still a NULL-terminated vector. */
	assert_int_equal(spec.env.n, 0);
	assert_non_null(spec.env.v);
	assert_null(spec.env.v[0]);
	assert_true(spec.cpus >= 1 && spec.cpus <= CJ_MAX_CPUS);
	assert_true(spec.memory_mib >= CJ_MIN_MEMORY_MIB);
	assert_int_equal(spec.stop_timeout_s, 10);
	assert_int_equal(spec.accel, CJ_ACCEL_AUTO);
	assert_false(spec.timings);
	assert_null(spec.workdir);
	assert_null(spec.user);
	assert_null(spec.hostname);
	assert_null(spec.kernel);
	cj_spec_free(&spec);
	cj_spec_free(&spec);

	/* A NULL environment is accepted too. */
	assert_int_equal(spec_run(&spec, argv, NULL, &err), 0);
	cj_spec_free(&spec);
}

static void test_spec_all_options(void **state)
{
	char *argv[] = {"run",
	                "--rootfs",
	                "/r",
	                "--kernel=/k",
	                "--modules",
	                "/m",
	                "--cpus",
	                "4",
	                "--memory",
	                "2G",
	                "-w",
	                "/work dir",
	                "--user",
	                "1000:1000",
	                "--hostname",
	                "h",
	                "--accel",
	                "tcg",
	                "--stop-timeout",
	                "0",
	                "--timings",
	                "--cache-dir",
	                "/c",
	                "--qemu",
	                "/q",
	                "--rootfs-size",
	                "3G",
	                "--boot-args",
	                "console=ttyS0",
	                "--extra-boot-args",
	                "quiet",
	                "-u",
	                "app",
	                "/bin/sh",
	                "-c",
	                "echo hi",
	                NULL};
	char *env[] = {NULL};
	struct cj_spec spec;
	struct cj_err err;

	assert_int_equal(spec_run(&spec, argv, env, &err), 0);
	assert_string_equal(spec.rootfs, "/r");
	assert_string_equal(spec.kernel, "/k");
	assert_string_equal(spec.modules_dir, "/m");
	assert_int_equal(spec.cpus, 4);
	assert_int_equal(spec.memory_mib, 2048);
	assert_string_equal(spec.workdir, "/work dir");
	assert_string_equal(spec.user, "app");
	assert_string_equal(spec.hostname, "h");
	assert_int_equal(spec.accel, CJ_ACCEL_TCG);
	assert_int_equal(spec.stop_timeout_s, 0);
	assert_true(spec.timings);
	assert_string_equal(spec.cache_dir, "/c");
	assert_string_equal(spec.qemu_bin, "/q");
	assert_true(spec.rootfs_size == 3ull << 30);
	assert_string_equal(spec.boot_args, "console=ttyS0");
	assert_string_equal(spec.extra_boot_args, "quiet");
	assert_int_equal(spec.argv.n, 3);
	assert_string_equal(spec.argv.v[0], "/bin/sh");
	assert_string_equal(spec.argv.v[1], "-c");
	assert_string_equal(spec.argv.v[2], "echo hi");
	cj_spec_free(&spec);
}

static void test_spec_errors(void **state)
{
	char *env[] = {NULL};
	{
		char *argv[] = {"run", "--cpus", "0", "/bin/true", NULL};
		expect_spec_error(argv, env, "--cpus '0'");
	}
	{
		char *argv[] = {"run", "--cpus", "256", "/bin/true", NULL};
		expect_spec_error(argv, env, "--cpus");
	}
	{
		char *argv[] = {"run", "--cpus", "2x", "/bin/true", NULL};
		expect_spec_error(argv, env, "--cpus");
	}
	{
		char *argv[] = {"run", "--cpus", "", "/bin/true", NULL};
		expect_spec_error(argv, env, "--cpus");
	}
	{
		char *argv[] = {"run", "--cpus", "-1", "/bin/true", NULL};
		expect_spec_error(argv, env, "--cpus");
	}
	{
		char *argv[] = {"run", "--memory", "1", "/bin/true", NULL};
		expect_spec_error(argv, env, "too small");
	}
	{
		char *argv[] = {"run", "--memory", "63", "/bin/true", NULL};
		expect_spec_error(argv, env, "too small");
	}
	{
		char *argv[] = {"run", "--memory", "lots", "/bin/true", NULL};
		expect_spec_error(argv, env, "--memory 'lots' is invalid");
	}
	{
		char *argv[] = {"run", "--bogus", "/bin/true", NULL};
		expect_spec_error(argv, env, "unknown option '--bogus'");
	}
	{
		char *argv[] = {"run", "-x", "/bin/true", NULL};
		expect_spec_error(argv, env, "unknown option '-x'");
	}
	{
		char *argv[] = {"run", NULL};
		expect_spec_error(argv, env, "no command");
	}
	{
		char *argv[] = {"run", "--cpus", "2", "--", NULL};
		expect_spec_error(argv, env, "no command");
	}
	{
		char *argv[] = {"run", "--cpus", NULL};
		expect_spec_error(argv, env, "needs a value");
	}
	{
		char *argv[] = {"run", "-e", NULL};
		expect_spec_error(argv, env, "needs a value");
	}
	{
		char *argv[] = {"run", "-w", "relative", "/bin/true", NULL};
		expect_spec_error(argv, env, "absolute");
	}
	{
		char *argv[] = {"run", "--hostname", "", "/bin/true", NULL};
		expect_spec_error(argv, env, "--hostname");
	}
	{
		char *argv[] = {"run", "--accel", "xen", "/bin/true", NULL};
		expect_spec_error(argv, env, "--accel");
	}
	{
		char *argv[] = {"run", "--stop-timeout", "3601", "/bin/true", NULL};
		expect_spec_error(argv, env, "--stop-timeout");
	}
	{
		char *argv[] = {"run", "--rootfs-size", "2Q", "/bin/true", NULL};
		expect_spec_error(argv, env, "--rootfs-size");
	}
	{
		char *argv[] = {"run", "-e", "=x", "/bin/true", NULL};
		expect_spec_error(argv, env, "invalid environment variable");
	}
	{
		char *argv[] = {"run", "-e", "A B=1", "/bin/true", NULL};
		expect_spec_error(argv, env, "invalid environment variable");
	}
	{
		char *argv[] = {"run", "--env-file", "/nonexistent/ctrj-test.env", "/bin/true",
		                NULL};
		expect_spec_error(argv, env, "--env-file");
	}
}

/* Defaults come from the host's facts, and --memory is checked against them
 * (cj_spec_resolve: no I/O when the facts are given). */
static void test_spec_host_facts(void **state)
{
	const struct cj_host_facts facts = {
	    .cpus = 3, .memory_mib = 4096, .cgroup_memory_mib = 1024};
	char *env[] = {NULL};
	char *plain[] = {"run", "/bin/true", NULL};
	char *big[] = {"run", "--memory", "2000", "/bin/true", NULL};
	char *fits[] = {"run", "--memory", "1G", "/bin/true", NULL};
	char *small[] = {"run", "--memory", "71", "/bin/true", NULL};
	char *least[] = {"run", "--memory", "72", "/bin/true", NULL};
	struct cj_spec spec;
	struct cj_err err = {0};

	assert_int_equal(cli_run_parse(&spec, 2, plain, env, &facts, NULL, &err), 0);
	assert_int_equal(spec.cpus, 3);
	assert_int_equal(spec.memory_mib, 1024 - CJ_GUEST_MARGIN_MIB);
	assert_int_equal(spec.host.memory_mib, 4096);
	cj_spec_free(&spec);
	assert_int_equal(cli_run_parse(&spec, 4, big, env, &facts, NULL, &err), -1);
	assert_msg_contains(&err, "more than this host can give (1024 MiB, our cgroup's limit)");
	assert_int_equal(cli_run_parse(&spec, 4, fits, env, &facts, NULL, &err), 0);
	assert_int_equal(spec.memory_mib, 1024);
	cj_spec_free(&spec);
	memset(&err, 0, sizeof err);
	assert_int_equal(cli_run_parse(&spec, 4, small, env, &facts, NULL, &err), -1);
	assert_msg_contains(&err, "at least 72 MiB");
	assert_int_equal(cli_run_parse(&spec, 4, least, env, &facts, NULL, &err), 0);
	cj_spec_free(&spec);

	/* no cgroup limit: all of the RAM */
	const struct cj_host_facts free_host = {.cpus = 1, .memory_mib = 2048};
	assert_int_equal(cli_run_parse(&spec, 2, plain, env, &free_host, NULL, &err), 0);
	assert_int_equal(spec.memory_mib, 2048);
	cj_spec_free(&spec);
}

static void test_spec_guest_args_not_parsed(void **state)
{
	char *env[] = {"FOO=host", NULL};
	struct cj_spec spec;
	struct cj_err err;

	/* After "--" everything belongs to the guest command. */
	char *argv1[] = {"run", "--cpus", "2", "--", "/bin/sh", "-e", "X=1", "--cpus", "0", NULL};
	assert_int_equal(spec_run(&spec, argv1, env, &err), 0);
	assert_int_equal(spec.cpus, 2);
	assert_int_equal(spec.argv.n, 5);
	assert_string_equal(spec.argv.v[0], "/bin/sh");
	assert_string_equal(spec.argv.v[1], "-e");
	assert_string_equal(spec.argv.v[2], "X=1");
	assert_string_equal(spec.argv.v[3], "--cpus");
	assert_string_equal(spec.argv.v[4], "0");
	assert_null(env_get(&spec.env, "X"));
	cj_spec_free(&spec);

	/* Without "--", option parsing stops at the command. */
	char *argv2[] = {"run", "-e", "A=1", "/bin/echo", "-e", "B=2", "--bogus", NULL};
	assert_int_equal(spec_run(&spec, argv2, env, &err), 0);
	assert_int_equal(spec.argv.n, 4);
	assert_string_equal(spec.argv.v[0], "/bin/echo");
	assert_string_equal(spec.argv.v[1], "-e");
	assert_string_equal(spec.argv.v[2], "B=2");
	assert_string_equal(spec.argv.v[3], "--bogus");
	assert_string_equal(env_get(&spec.env, "A"), "1");
	assert_null(env_get(&spec.env, "B"));
	cj_spec_free(&spec);

	/* A guest argument that is literally "--". */
	char *argv3[] = {"run", "--", "/bin/echo", "--", "x", NULL};
	assert_int_equal(spec_run(&spec, argv3, env, &err), 0);
	assert_int_equal(spec.argv.n, 3);
	assert_string_equal(spec.argv.v[1], "--");
	cj_spec_free(&spec);

	/* Parsing twice in one process (getopt state is reset). */
	assert_int_equal(spec_run(&spec, argv1, env, &err), 0);
	assert_int_equal(spec.argv.n, 5);
	cj_spec_free(&spec);
}

static char *write_temp(const char *text)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;

	if (asprintf(&path, "%s/ctrj-test-XXXXXX", dir && *dir ? dir : "/tmp") < 0)
		fail();
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_spec_env_layers(void **state)
{
	char *file1 =
	    write_temp("FILE_ONLY=f1\nBOTH=from-file\nOVER=file\nLOOKED\nTAP_IP=9.9.9.9\n");
	char *file2 = write_temp("# second file wins over the first\nOVER=file2\n");
	char *env[] = {"PASS=host",
	               "BOTH=host",
	               "OVER=host",
	               "LOOKED=looked up",
	               "TAP_IP=10.0.0.1",
	               "HOST_IFACE=eth0",
	               "PATH=/usr/bin",
	               "HOME=/root",
	               "HOSTNAME=runner",
	               "TERM=xterm",
	               "SHLVL=1",
	               "_=/usr/bin/ctr-jailer",
	               "CTR_JAILER_CACHE=/tmp/cj-cache",
	               "CTR_JAILER_RUN_DIR=/tmp/cj-run",
	               "VCPU_COUNT=3",
	               "MEM_SIZE_MIB=256",
	               "KERNEL_BOOT_ARGS=ka",
	               "EXTRA_KERNEL_BOOT_ARGS=ea",
	               "ROOTFS_SIZE=1G",
	               "NO_EQUALS_SIGN",
	               "MULTI=a\nb=c",
	               NULL};
	char *argv[] = {"run",         "--env-file", file1,        "--env-file", file2,
	                "-e",          "OVER=flag",  "-e",         "LOOKED",     "--env",
	                "FLAG_ONLY=x", "-e",         "UNSET_NAME", "-e",         "PATH=/guest/bin",
	                "/bin/env",    NULL};
	struct cj_spec spec;
	struct cj_err err;

	assert_int_equal(spec_run(&spec, argv, env, &err), 0);
	assert_string_equal(env_get(&spec.env, "PASS"), "host");
	assert_string_equal(env_get(&spec.env, "BOTH"), "from-file");
	assert_string_equal(env_get(&spec.env, "FILE_ONLY"), "f1");
	assert_string_equal(env_get(&spec.env, "OVER"), "flag");
	assert_string_equal(env_get(&spec.env, "LOOKED"), "looked up");
	assert_string_equal(env_get(&spec.env, "FLAG_ONLY"), "x");
	assert_string_equal(env_get(&spec.env, "MULTI"), "a\nb=c");
	assert_null(env_get(&spec.env, "UNSET_NAME"));
	/* Runtime-own variables are not passed through, but an explicit
	 * setting for the guest (file or -e) is honoured. */
	assert_string_equal(env_get(&spec.env, "TAP_IP"), "9.9.9.9");
	assert_string_equal(env_get(&spec.env, "PATH"), "/guest/bin");
	static const char *const hidden[] = {"HOST_IFACE",
	                                     "HOME",
	                                     "HOSTNAME",
	                                     "TERM",
	                                     "SHLVL",
	                                     "_",
	                                     "CTR_JAILER_CACHE",
	                                     "CTR_JAILER_RUN_DIR",
	                                     "VCPU_COUNT",
	                                     "MEM_SIZE_MIB",
	                                     "KERNEL_BOOT_ARGS",
	                                     "EXTRA_KERNEL_BOOT_ARGS",
	                                     "ROOTFS_SIZE",
	                                     "NO_EQUALS_SIGN"};
	for (size_t i = 0; i < ARRAY_LEN(hidden); i++)
		if (env_get(&spec.env, hidden[i]))
			fail_msg("%s leaked into the guest environment", hidden[i]);
	for (size_t i = 0; i < spec.env.n; i++)
		assert_non_null(strchr(spec.env.v[i], '='));
	assert_int_equal(spec.env.n, 9);

	/* The seed's settings came from the environment. */
	assert_int_equal(spec.cpus, 3);
	assert_int_equal(spec.memory_mib, 256);
	assert_true(spec.rootfs_size == 1ull << 30);
	assert_string_equal(spec.boot_args, "ka");
	assert_string_equal(spec.extra_boot_args, "ea");
	assert_string_equal(spec.cache_dir, "/tmp/cj-cache");
	assert_string_equal(spec.run_base, "/tmp/cj-run");
	cj_spec_free(&spec);

	/* --no-env-passthrough: only files and flags. */
	char *argv2[] = {
	    "run", "--no-env-passthrough", "--env-file", file1, "-e", "LOOKED", "/bin/env", NULL};
	assert_int_equal(spec_run(&spec, argv2, env, &err), 0);
	assert_null(env_get(&spec.env, "PASS"));
	assert_string_equal(env_get(&spec.env, "OVER"), "file");
	assert_string_equal(env_get(&spec.env, "BOTH"), "from-file");
	assert_string_equal(env_get(&spec.env, "LOOKED"), "looked up");
	assert_int_equal(spec.env.n, 5);
	cj_spec_free(&spec);

	/* A malformed env file names its line. */
	char *bad = write_temp("GOOD=1\nBAD LINE=2\n");
	char *argv3[] = {"run", "--env-file", bad, "/bin/true", NULL};
	expect_spec_error(argv3, env, "line 2");

	unlink(file1);
	unlink(file2);
	unlink(bad);
	free(file1);
	free(file2);
	free(bad);
}

/* The passthrough rule: everything in the seed's container mode (no
 * --rootfs, no --image), nothing from a host shell; the flags override
 * either way; -e wins over the passthrough in both. */
static bool passes(char **argv, char **env, const char *name, const char *want)
{
	struct cj_spec spec;
	struct cj_err err = {0};
	int argc = 0;
	bool got;

	while (argv[argc])
		argc++;
	assert_int_equal(cli_run_parse(&spec, argc, argv, env, NULL, NULL, &err), 0);
	const char *v = env_get(&spec.env, name);
	got = v != NULL;
	if (v && want)
		assert_string_equal(v, want);
	assert_string_equal(env_get(&spec.env, "SET"), "flag");
	assert_null(env_get(&spec.env, "CTR_JAILER_CACHE"));
	cj_spec_free(&spec);
	return got;
}

static void test_spec_env_passthrough_rule(void **state)
{
	char *env[] = {"AWS_KEY=host", "SET=host", "CTR_JAILER_CACHE=/c", NULL};
	char *seed[] = {"run", "-e", "SET=flag", "/bin/env", NULL};
	char *seed_off[] = {"run", "--no-env-passthrough", "-e", "SET=flag", "/bin/env", NULL};
	char *shell[] = {"run", "--rootfs", "/r", "-e", "SET=flag", "/bin/env", NULL};
	char *shell_on[] = {"run", "--rootfs", "/r",       "--env-passthrough",
	                    "-e",  "SET=flag", "/bin/env", NULL};
	char *image[] = {"run", "--image", "oci:/nowhere", "-e", "SET=flag", "/bin/env", NULL};
	char *last_wins[] = {
	    "run", "--env-passthrough", "--no-env-passthrough", "-e", "SET=flag", "/bin/env", NULL};

	assert_true(passes(seed, env, "AWS_KEY", "host"));
	assert_false(passes(seed_off, env, "AWS_KEY", NULL));
	assert_false(passes(shell, env, "AWS_KEY", NULL));
	assert_true(passes(shell_on, env, "AWS_KEY", "host"));
	assert_false(passes(image, env, "AWS_KEY", NULL));
	/* a container's CTR_JAILER_IMAGE is still the seed's container mode */
	char *env_image[] = {"AWS_KEY=host", "SET=host", "CTR_JAILER_IMAGE=oci:/i", NULL};
	assert_true(passes(seed, env_image, "AWS_KEY", "host"));
	assert_false(passes(last_wins, env, "AWS_KEY", NULL));
}

static void test_health_options(void **state)
{
	uint64_t ms;
	static const struct {
		const char *s;
		uint64_t ms;
	} ok[] = {{"30s", 30000},  {"1m30s", 90000}, {"1.5s", 1500}, {"250ms", 250},
	          {"1h", 3600000}, {"2", 2000},      {"0s", 0},      {"1500us", 2}};
	static const char *const bad[] = {"", "s", "-1s", "1x", "1 s", "1s2", "abc", "1e3s"};

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		if (cj_duration_parse(ok[i].s, &ms) < 0)
			fail_msg("'%s' refused", ok[i].s);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (cj_duration_parse(bad[i], &ms) == 0)
			fail_msg("'%s' accepted", bad[i]);

	char *env[] = {NULL};
	char *argv[] = {"run",
	                "--health-cmd",
	                "curl -f localhost",
	                "--health-interval",
	                "5s",
	                "--health-timeout",
	                "1m",
	                "--health-retries",
	                "7",
	                "--health-start-period",
	                "500ms",
	                "/bin/true",
	                NULL};
	struct cj_spec spec;
	struct cj_err err;
	assert_int_equal(spec_run(&spec, argv, env, &err), 0);
	assert_int_equal(spec.health.test.n, 3);
	assert_string_equal(spec.health.test.v[0], "/bin/sh");
	assert_string_equal(spec.health.test.v[2], "curl -f localhost");
	assert_int_equal(spec.health.interval_ms, 5000);
	assert_int_equal(spec.health.timeout_ms, 60000);
	assert_int_equal(spec.health.retries, 7);
	assert_int_equal(spec.health.start_period_ms, 500);
	assert_true(cj_health_wanted(&spec.health));
	cj_spec_free(&spec);
	char *off[] = {"run", "--no-healthcheck", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, off, env, &err), 0);
	assert_false(cj_health_wanted(&spec.health));
	cj_spec_free(&spec);
	char *both[] = {"run", "--health-cmd", "true", "--no-healthcheck", "/bin/true", NULL};
	expect_spec_error(both, env, "conflicts with the --health-* options");
	char *bad_retries[] = {"run", "--health-retries", "-1", "/bin/true", NULL};
	expect_spec_error(bad_retries, env, "give a count");
	char *bad_interval[] = {"run", "--health-interval", "soon", "/bin/true", NULL};
	expect_spec_error(bad_interval, env, "not a duration");
	char *empty[] = {"run", "--health-cmd", "", "/bin/true", NULL};
	expect_spec_error(empty, env, "give a command");
}

static void test_spec_absolute_paths(void **state)
{
	struct cj_spec spec;
	struct cj_err err = {0};
	struct cj_volume_spec vols[2] = {{.source = strdup("named")},
	                                 {.source = strdup("./a.img")}};

	assert_int_equal(cj_spec_init(&spec, &err), 0);
	free(spec.rootfs);
	spec.rootfs = strdup("rootfs");
	spec.kernel = strdup("/abs/vmlinux");
	spec.firecracker_bin = strdup("firecracker"); /* looked up in PATH */
	spec.jailer_bin = strdup("bin/jailer");
	spec.volumes = vols;
	spec.nvolumes = 2;
	assert_int_equal(cj_spec_absolute_paths(&spec, "/home/u", &err), 0);
	assert_string_equal(spec.rootfs, "/home/u/rootfs");
	assert_string_equal(spec.kernel, "/abs/vmlinux");
	assert_string_equal(spec.firecracker_bin, "firecracker");
	assert_string_equal(spec.jailer_bin, "/home/u/bin/jailer");
	assert_string_equal(vols[0].source, "named");
	assert_string_equal(vols[1].source, "/home/u/./a.img");
	free(vols[0].source);
	free(vols[1].source);
	spec.volumes = NULL;
	spec.nvolumes = 0;
	cj_spec_free(&spec);
}

static void test_spec_seed_env_overridden_by_flags(void **state)
{
	char *env[] = {"VCPU_COUNT=3",
	               "MEM_SIZE_MIB=256",
	               "ROOTFS_SIZE=1G",
	               "CTR_JAILER_CACHE=/env-cache",
	               "CTR_JAILER_KERNEL=/env-kernel",
	               NULL};
	char *argv[] = {"run",           "--cpus",    "2",           "--memory",    "1G",
	                "--rootfs-size", "512",       "--cache-dir", "/flag-cache", "--kernel",
	                "/flag-kernel",  "/bin/true", NULL};
	struct cj_spec spec;
	struct cj_err err;

	assert_int_equal(spec_run(&spec, argv, env, &err), 0);
	assert_int_equal(spec.cpus, 2);
	assert_int_equal(spec.memory_mib, 1024);
	assert_true(spec.rootfs_size == 512ull << 20);
	assert_string_equal(spec.cache_dir, "/flag-cache");
	assert_string_equal(spec.kernel, "/flag-kernel");
	cj_spec_free(&spec);

	/* Only the seed's environment. */
	char *argv2[] = {"run", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, argv2, env, &err), 0);
	assert_int_equal(spec.cpus, 3);
	assert_int_equal(spec.memory_mib, 256);
	assert_string_equal(spec.kernel, "/env-kernel");
	cj_spec_free(&spec);

	/* Empty values are ignored. */
	char *empty[] = {"VCPU_COUNT=", "MEM_SIZE_MIB=", NULL};
	assert_int_equal(spec_run(&spec, argv2, empty, &err), 0);
	assert_true(spec.cpus >= 1);
	assert_true(spec.memory_mib >= CJ_MIN_MEMORY_MIB);
	cj_spec_free(&spec);

	/* Invalid seed settings are errors naming the variable. */
	char *bad_cpus[] = {"VCPU_COUNT=0", NULL};
	expect_spec_error(argv2, bad_cpus, "VCPU_COUNT");
	char *bad_cpus2[] = {"VCPU_COUNT=two", NULL};
	expect_spec_error(argv2, bad_cpus2, "VCPU_COUNT");
	char *bad_mem[] = {"MEM_SIZE_MIB=32", NULL};
	expect_spec_error(argv2, bad_mem, "MEM_SIZE_MIB");
	char *bad_mem2[] = {"MEM_SIZE_MIB=1Q", NULL};
	expect_spec_error(argv2, bad_mem2, "MEM_SIZE_MIB");
	char *bad_rootfs[] = {"ROOTFS_SIZE=big", NULL};
	expect_spec_error(argv2, bad_rootfs, "ROOTFS_SIZE");
}

/* `run IMAGE [CMD...]` next to the seed's `run [--] CMD`: which operand
 * is the image (parse only: nothing is opened or pulled). */
static void expect_operands(char **argv, const char *image, const char *cmd0, size_t argc_want)
{
	char *env[] = {"CTR_JAILER_CACHE=/nonexistent/cj-cache", NULL};
	struct cj_spec spec;
	struct cj_err err = {0};
	int argc = 0;

	while (argv[argc])
		argc++;
	assert_int_equal(cli_run_parse(&spec, argc, argv, env, NULL, NULL, &err), 0);
	if (image)
		assert_string_equal(spec.image, image);
	else
		assert_null(spec.image);
	assert_int_equal(spec.argv.n, argc_want);
	if (cmd0)
		assert_string_equal(spec.argv.v[0], cmd0);
	cj_spec_free(&spec);
}

static void test_spec_image_operand(void **state)
{
	(void)state;
	/* the seed's forms: a command, with or without "--" */
	expect_operands((char *[]){"run", "echo", "hi", NULL}, NULL, "echo", 2);
	expect_operands((char *[]){"run", "/bin/echo", "hi", NULL}, NULL, "/bin/echo", 2);
	expect_operands((char *[]){"run", "bin/sh", NULL}, NULL, "bin/sh", 1);
	expect_operands((char *[]){"run", "--", "busybox:1", "x", NULL}, NULL, "busybox:1", 2);
	expect_operands((char *[]){"run", "--rootfs", "/", "busybox:1", NULL}, NULL, "busybox:1",
	                1);
	/* docker's: a tag, a digest, a registry host, a file form */
	expect_operands((char *[]){"run", "busybox:1", "echo", "hi", NULL}, "busybox:1", "echo", 2);
	expect_operands((char *[]){"run", "localhost:5000/app", NULL}, "localhost:5000/app", NULL,
	                0);
	expect_operands((char *[]){"run", "quay.io/x/y", "--", "sh", NULL}, "quay.io/x/y", "sh", 1);
	expect_operands((char *[]){"run", "oci:/l:t", "a", NULL}, "oci:/l:t", "a", 1);
	/* --image (or CTR_JAILER_IMAGE) chose: the operands are the command */
	expect_operands((char *[]){"run", "--image", "oci:/l", "busybox:1", NULL}, "oci:/l",
	                "busybox:1", 1);
}

/* --image / --entrypoint / CTR_JAILER_IMAGE (the image parsing itself is
 * in test_image.c; the runs in tests/integration/test_oci.py). */
static void test_spec_image_options(void **state)
{
	struct cj_spec spec;
	struct cj_err err;
	char *noenv[] = {NULL};

	char *both[] = {"run", "--rootfs", "/", "--image", "oci:/x", "--", "/bin/true", NULL};
	expect_spec_error(both, noenv, "not both");
	char *bogus[] = {"run", "--image", "Bogus:x", "--", "/bin/true", NULL};
	expect_spec_error(bogus, noenv, "oci:DIR");
	/* a registry reference that is not stored, with --pull never */
	char *never[] = {"run", "--pull", "never", "--image", "bogus:x", "--", "/bin/true", NULL};
	expect_spec_error(never, noenv, "ctr-jailer pull bogus:x");
	char *policy[] = {"run", "--pull", "sometimes", "--image", "oci:/x", NULL};
	expect_spec_error(policy, noenv, "missing, always or never");
	char *missing[] = {"run", "--image", "oci:/no/such/layout", NULL};
	expect_spec_error(missing, noenv, "/no/such/layout");

	/* --entrypoint on a plain rootfs: the entrypoint, then the arguments */
	char *ep[] = {"run", "--entrypoint", "/bin/sh", "--", "-c", "echo x", NULL};
	assert_int_equal(spec_run(&spec, ep, noenv, &err), 0);
	assert_int_equal(spec.argv.n, 3);
	assert_string_equal(spec.argv.v[0], "/bin/sh");
	assert_string_equal(spec.argv.v[2], "echo x");
	assert_null(spec.image);
	cj_spec_free(&spec);
	/* ... and alone it is the whole command */
	char *ep_only[] = {"run", "--entrypoint", "/app", NULL};
	assert_int_equal(spec_run(&spec, ep_only, noenv, &err), 0);
	assert_int_equal(spec.argv.n, 1);
	cj_spec_free(&spec);

	/* CTR_JAILER_IMAGE gives way to --rootfs on the command line ... */
	char *img_env[] = {"CTR_JAILER_IMAGE=oci:/no/such/layout", NULL};
	char *rootfs[] = {"run", "--rootfs", "/", "--", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, rootfs, img_env, &err), 0);
	assert_null(spec.image);
	assert_null(spec.image_info);
	cj_spec_free(&spec);
	/* ... but without it, it is the image (and this one is missing) */
	char *plain[] = {"run", "--", "/bin/true", NULL};
	expect_spec_error(plain, img_env, "/no/such/layout");
}

static void test_spec_vmm_options(void **state)
{
	struct cj_spec spec;
	struct cj_err err;
	char *noenv[] = {NULL};

	char *plain[] = {"run", "--", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, plain, noenv, &err), 0);
	assert_int_equal(spec.vmm, CJ_VMM_AUTO);
	assert_null(spec.firecracker_bin);
	assert_null(spec.jailer_bin);
	assert_string_equal(spec.chroot_base, CJ_DEFAULT_CHROOT_BASE);
	cj_spec_free(&spec);

	/* environment, then flags over it; FIRECRACKER_BIN/JAILER_BIN stay
	 * out of the guest's environment */
	char *env[] = {"CTR_JAILER_VMM=qemu", "FIRECRACKER_BIN=/opt/fc/firecracker",
	               "JAILER_BIN=/opt/fc/jailer", "CTR_JAILER_CHROOT_BASE=/var/jail", NULL};
	assert_int_equal(spec_run(&spec, plain, env, &err), 0);
	assert_int_equal(spec.vmm, CJ_VMM_QEMU);
	assert_string_equal(spec.firecracker_bin, "/opt/fc/firecracker");
	assert_string_equal(spec.jailer_bin, "/opt/fc/jailer");
	assert_string_equal(spec.chroot_base, "/var/jail");
	assert_null(env_get(&spec.env, "FIRECRACKER_BIN"));
	assert_null(env_get(&spec.env, "JAILER_BIN"));
	cj_spec_free(&spec);
	char *flags[] = {"run",    "--vmm",    "firecracker", "--firecracker",
	                 "/fc",    "--jailer", "/j",          "--chroot-base",
	                 "/srv/j", "--",       "/bin/true",   NULL};
	assert_int_equal(spec_run(&spec, flags, env, &err), 0);
	assert_int_equal(spec.vmm, CJ_VMM_FIRECRACKER);
	assert_string_equal(spec.firecracker_bin, "/fc");
	assert_string_equal(spec.jailer_bin, "/j");
	assert_string_equal(spec.chroot_base, "/srv/j");
	cj_spec_free(&spec);

	char *bad_vmm[] = {"run", "--vmm", "kvmtool", "--", "/bin/true", NULL};
	expect_spec_error(bad_vmm, noenv, "auto, qemu or firecracker");
	char *bad_env[] = {"CTR_JAILER_VMM=xen", NULL};
	expect_spec_error(plain, bad_env, "CTR_JAILER_VMM");
	char *rel_base[] = {"run", "--chroot-base", "jails", "--", "/bin/true", NULL};
	expect_spec_error(rel_base, noenv, "absolute");
}

/* --egress, --allow-egress, --allow-link-local and their variables (the
 * parsers themselves: test_net.c; the rules: tests/integration/
 * test_sec_egress.py). */
static void test_spec_egress_options(void **state)
{
	struct cj_spec spec;
	struct cj_err err;
	char *noenv[] = {NULL};

	char *plain[] = {"run", "--", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, plain, noenv, &err), 0);
	assert_int_equal(spec.net.egress, CJ_EGRESS_ALLOW);
	assert_int_equal(spec.net.nallow_egress, 0);
	assert_false(spec.net.allow_link_local);
	cj_spec_free(&spec);

	/* an allow-list alone denies the rest */
	char *list[] = {"run",
	                "--allow-egress",
	                "10.0.0.0/8",
	                "--allow-egress",
	                "192.0.2.7:53/udp",
	                "--allow-link-local",
	                "--",
	                "/bin/true",
	                NULL};
	assert_int_equal(spec_run(&spec, list, noenv, &err), 0);
	assert_int_equal(spec.net.egress, CJ_EGRESS_DENY);
	assert_int_equal(spec.net.nallow_egress, 2);
	assert_int_equal(spec.net.allow_egress[1].port, 53);
	assert_int_equal(spec.net.allow_egress[1].proto, CJ_EGRESS_UDP);
	assert_true(spec.net.allow_link_local);
	cj_spec_free(&spec);

	/* the variables, flags on top (lists add up, as PUBLISH and -p do);
	 * none of them reaches the guest's environment */
	char *env[] = {"CTR_JAILER_EGRESS=deny",
	               "CTR_JAILER_ALLOW_EGRESS=10.0.0.0/8, 192.0.2.7:443",
	               "CTR_JAILER_ALLOW_LINK_LOCAL=1", NULL};
	assert_int_equal(spec_run(&spec, plain, env, &err), 0);
	assert_int_equal(spec.net.egress, CJ_EGRESS_DENY);
	assert_int_equal(spec.net.nallow_egress, 2);
	assert_true(spec.net.allow_link_local);
	assert_null(env_get(&spec.env, "CTR_JAILER_EGRESS"));
	assert_null(env_get(&spec.env, "CTR_JAILER_ALLOW_EGRESS"));
	cj_spec_free(&spec);
	char *more[] = {"run", "--allow-egress", "198.51.100.0/24", "--", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, more, env, &err), 0);
	assert_int_equal(spec.net.nallow_egress, 3);
	cj_spec_free(&spec);
	char *deny_env[] = {"CTR_JAILER_EGRESS=deny", "CTR_JAILER_ALLOW_LINK_LOCAL=no", NULL};
	char *allow[] = {"run", "--egress", "allow", "--", "/bin/true", NULL};
	assert_int_equal(spec_run(&spec, allow, deny_env, &err), 0);
	assert_int_equal(spec.net.egress, CJ_EGRESS_ALLOW);
	assert_false(spec.net.allow_link_local);
	cj_spec_free(&spec);

	/* one clear error each, before anything exists */
	char *bad_mode[] = {"run", "--egress", "block", "--", "/bin/true", NULL};
	expect_spec_error(bad_mode, noenv, "--egress 'block' is invalid: use allow or deny");
	char *bad_cidr[] = {"run", "--allow-egress", "10.0.0.0/33", "--", "/bin/true", NULL};
	expect_spec_error(bad_cidr, noenv, "--allow-egress '10.0.0.0/33' is invalid");
	char *bad_port[] = {"run", "--allow-egress", "10.0.0.0/8:65536", "--", "/bin/true", NULL};
	expect_spec_error(bad_port, noenv, "--allow-egress '10.0.0.0/8:65536' is invalid");
	char *host_bits[] = {"run", "--allow-egress", "10.1.2.3/8", "--", "/bin/true", NULL};
	expect_spec_error(host_bits, noenv, "did you mean 10.0.0.0/8");
	char *both[] = {"run",        "--egress", "allow",     "--allow-egress",
	                "10.0.0.0/8", "--",       "/bin/true", NULL};
	expect_spec_error(both, noenv, "contradicts");
	char *no_fw[] = {"run", "--egress", "deny", "--firewall", "none", "--", "/bin/true", NULL};
	expect_spec_error(no_fw, noenv, "--firewall none");
	char *ll[] = {"run", "--allow-egress", "169.254.169.254", "--", "/bin/true", NULL};
	expect_spec_error(ll, noenv, "--allow-link-local");
	char *bad_env_mode[] = {"CTR_JAILER_EGRESS=closed", NULL};
	expect_spec_error(plain, bad_env_mode, "CTR_JAILER_EGRESS 'closed'");
	char *bad_env_list[] = {"CTR_JAILER_ALLOW_EGRESS=10.0.0.0/8,nonsense", NULL};
	expect_spec_error(plain, bad_env_list, "CTR_JAILER_ALLOW_EGRESS 'nonsense'");
	char *bad_env_ll[] = {"CTR_JAILER_ALLOW_LINK_LOCAL=maybe", NULL};
	expect_spec_error(plain, bad_env_ll, "CTR_JAILER_ALLOW_LINK_LOCAL 'maybe'");
	/* --network none: there is nothing to enforce, and nothing to refuse */
	char *none[] = {"run",      "--network", "none", "--firewall", "none",
	                "--egress", "deny",      "--",   "/bin/true",  NULL};
	assert_int_equal(spec_run(&spec, none, noenv, &err), 0);
	cj_spec_free(&spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_set_replaces),
	    cmocka_unit_test(test_env_is_runtime_own),
	    cmocka_unit_test(test_env_file_semantics),
	    cmocka_unit_test(test_env_file_empty_inputs),
	    cmocka_unit_test(test_env_file_errors),
	    cmocka_unit_test(test_env_file_respects_len),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_spec_defaults),
	    cmocka_unit_test(test_spec_all_options),
	    cmocka_unit_test(test_spec_errors),
	    cmocka_unit_test(test_spec_host_facts),
	    cmocka_unit_test(test_spec_guest_args_not_parsed),
	    cmocka_unit_test(test_spec_env_layers),
	    cmocka_unit_test(test_spec_env_passthrough_rule),
	    cmocka_unit_test(test_spec_absolute_paths),
	    cmocka_unit_test(test_health_options),
	    cmocka_unit_test(test_spec_seed_env_overridden_by_flags),
	    cmocka_unit_test(test_spec_image_options),
	    cmocka_unit_test(test_spec_image_operand),
	    cmocka_unit_test(test_spec_vmm_options),
	    cmocka_unit_test(test_spec_egress_options),
	};
	return cmocka_run_group_tests_name("spec", tests, NULL, NULL);
}
