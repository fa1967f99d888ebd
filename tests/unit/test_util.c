/* SPDX-License-Identifier: Apache-2.0 */
/* cj_run: output capture and exit codes; the terminal sanitisers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/sanitize.h"
#include "util/spawn.h"
#include "util/util.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A child filling its stderr pipe before writing stdout must not hang the
 * parent (the unit test times out if it does). */
static void test_run_drains_both_pipes(void **state)
{
	char *argv[] = {"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' e >&2; echo out", NULL};
	struct cj_err err = {0};
	char *out = NULL;
	(void)state;

	assert_int_equal(cj_run(argv, &out, &err), 0);
	assert_string_equal(out, "out\n");
	free(out);
}

static void test_run_code_reports_exit_status(void **state)
{
	char *argv[] = {"sh", "-c", "echo first-line >&2; echo more >&2; exit 3", NULL};
	struct cj_err err = {0};
	int code = -1;
	(void)state;

	assert_int_equal(cj_run_code(argv, NULL, &code, &err), 0);
	assert_int_equal(code, 3);
	assert_non_null(strstr(err.msg, "first-line"));
	assert_null(strstr(err.msg, "more"));
	memset(&err, 0, sizeof err);
	assert_int_equal(cj_run(argv, NULL, &err), -1);
	char *missing[] = {"/no/such/program", NULL};
	assert_int_equal(cj_run_code(missing, NULL, &code, &err), -1);
}

static int fail_step(void *ctx, const char **what)
{
	(void)ctx;
	*what = "the caller's step";
	errno = EPERM;
	return -1;
}

/* The one spawn: a failure before exec comes back with its errno and its
 * step; a kept fd is inherited, any other is closed; PATH lookup. */
static void test_spawn_reports_child_failures(void **state)
{
	char path[PATH_MAX], step[CJ_SPAWN_STEP_MAX];
	char *argv[] = {"sh", "-c", "test -e /proc/self/fd/$KEEP && ! test -e /proc/self/fd/$DROP",
	                NULL};
	struct cj_err err = {0};
	int keep[2], drop[2], st;
	(void)state;

	assert_int_equal(cj_find_in_path("sh", path, sizeof path), 0);
	assert_true(path[0] == '/');
	assert_int_equal(cj_find_in_path("no-such-program-here", path, sizeof path), -1);
	assert_int_equal(cj_find_in_path("/etc/passwd", path, sizeof path),
	                 -1); /* not executable */
	assert_int_equal(cj_find_in_path("sh", path, sizeof path), 0);

	struct cj_spawn s = {.path = "/no/such/program",
	                     .argv = argv,
	                     .stdin_fd = -1,
	                     .stdout_fd = -1,
	                     .stderr_fd = -1};
	assert_int_equal(cj_spawn(&s, step, &err), -1);
	assert_string_equal(step, "exec");
	assert_int_equal(err.errnum, ENOENT);

	s.path = path;
	s.pre_exec = fail_step;
	memset(&err, 0, sizeof err);
	assert_int_equal(cj_spawn(&s, step, &err), -1);
	assert_string_equal(step, "the caller's step");
	assert_int_equal(err.errnum, EPERM);
	assert_non_null(strstr(err.msg, "the caller's step"));

	assert_int_equal(pipe(keep), 0); /* inheritable: still closed unless kept */
	assert_int_equal(pipe(drop), 0);
	char env_keep[32], env_drop[32];
	snprintf(env_keep, sizeof env_keep, "KEEP=%d", keep[0]);
	snprintf(env_drop, sizeof env_drop, "DROP=%d", drop[0]);
	char *envp[] = {env_keep, env_drop, "PATH=/usr/bin:/bin", NULL};
	s.pre_exec = NULL;
	s.envp = envp;
	s.keep = keep;
	s.nkeep = 1;
	s.new_session = true;
	pid_t pid = cj_spawn(&s, step, &err);
	assert_true(pid > 0);
	assert_string_equal(step, "");
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(keep[0]);
	close(keep[1]);
	close(drop[0]);
	close(drop[1]);
}

/* argv under cj_spawn_capture with a 300 ms timeout: killed at once (it
 * and what it started), 137, an error saying so; its stdout. */
static char *timed_out(char **argv)
{
	struct cj_err err = {0};
	char step[CJ_SPAWN_STEP_MAX], *out = NULL;
	int code = -1;
	struct cj_spawn s = {.path = "/bin/sh",
	                     .argv = argv,
	                     .stdin_fd = -1,
	                     .new_session = true,
	                     .timeout_ms = 300};
	uint64_t t0 = cj_now_ns();

	assert_int_equal(cj_spawn_capture(s, 4096, &out, &code, step, &err), 0);
	assert_true(cj_now_ns() - t0 < 5000000000ull);
	assert_int_equal(code, 137);
	assert_non_null(strstr(err.msg, "did not end within 300 ms"));
	return out;
}

/* cj_spawn_capture past its timeout: the child and what it started (which
 * holds the pipes) are killed at once, 137, an error saying so, also when
 * the child let go of its stdout and stderr (a hook that redirects them);
 * within it, the child's own status. */
static void test_spawn_capture_timeout(void **state)
{
	char *slow[] = {"sh", "-c", "sleep 30 & echo started; sleep 30", NULL};
	char *quiet[] = {"sh", "-c", "exec >/dev/null 2>&1; sleep 30", NULL};
	char *quick[] = {"sh", "-c", "echo done", NULL};
	struct cj_err err = {0};
	char step[CJ_SPAWN_STEP_MAX], *out;
	int code = -1;

	(void)state;
	out = timed_out(slow);
	assert_string_equal(out, "started\n");
	free(out);
	free(timed_out(quiet));
	struct cj_spawn s = {.path = "/bin/sh", .argv = quick, .stdin_fd = -1, .timeout_ms = 10000};
	assert_int_equal(cj_spawn_capture(s, 4096, &out, &code, step, &err), 0);
	assert_int_equal(code, 0);
	assert_string_equal(out, "done\n");
	assert_string_equal(err.msg, "");
	free(out);
}

static const char *sanitized(const char *in, size_t inlen)
{
	static char out[1024];

	cj_sanitize(in, inlen, out, sizeof out);
	return out;
}
#define SANITIZED(lit) sanitized(lit, sizeof lit - 1)

static void test_sanitize_escapes_terminal_controls(void **state)
{
	(void)state;
	assert_string_equal(SANITIZED("\x1b[2J"), "\\x1b[2J");
	assert_string_equal(SANITIZED("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
	/* a newline would forge a line of our own */
	assert_string_equal(SANITIZED("a\nctr-jailer: ok\r\t"), "a\\x0actr-jailer: ok\\x0d\\x09");
	assert_string_equal(SANITIZED("del\x7f"), "del\\x7f");
	/* C1 CSI raw (8-bit terminals) and UTF-8 encoded (U+009B) */
	assert_string_equal(SANITIZED("\x9b"
	                              "2J"),
	                    "\\x9b2J");
	assert_string_equal(SANITIZED("\xc2\x9b"
	                              "2J"),
	                    "\\xc2\\x9b2J");
	/* bidirectional override and the line separator */
	assert_string_equal(SANITIZED("a\xe2\x80\xae"
	                              "b\xe2\x80\xa8"),
	                    "a\\xe2\\x80\\xaeb\\xe2\\x80\\xa8");
	/* NUL inside the given length */
	assert_string_equal(sanitized("a\0b", 3), "a\\x00b");
}

static void test_sanitize_keeps_printable_utf8(void **state)
{
	const char *text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xc2\xa0 back\\slash ~";
	(void)state;
	assert_string_equal(sanitized(text, strlen(text)), text);
}

static void test_sanitize_escapes_invalid_utf8(void **state)
{
	(void)state;
	/* overlong '/', surrogate, past U+10FFFF, stray continuation, 0xff */
	assert_string_equal(SANITIZED("\xc0\xaf"), "\\xc0\\xaf");
	assert_string_equal(SANITIZED("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
	assert_string_equal(SANITIZED("\xed\xa0\x80"), "\\xed\\xa0\\x80");
	assert_string_equal(SANITIZED("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
	assert_string_equal(SANITIZED("\x80x\xff"), "\\x80x\\xff");
	/* a sequence cut short, then valid text resumes */
	assert_string_equal(SANITIZED("\xe2\x82z\xc3\xa9"), "\\xe2\\x82z\xc3\xa9");
}

static void test_sanitize_truncates_between_characters(void **state)
{
	char out[8];
	(void)state;
	/* "ab" fits, the escape of ESC (4 bytes) would not */
	assert_int_equal(cj_sanitize("ab\x1b", 3, out, 6), 2);
	assert_string_equal(out, "ab");
	/* a 3-byte character is never cut */
	assert_int_equal(cj_sanitize("ab\xe2\x82\xac", 5, out, 5), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(cj_sanitize("abc", 3, out, 1), 0);
	assert_string_equal(out, "");
	out[0] = 'x';
	assert_int_equal(cj_sanitize("abc", 3, out, 0), 0);
	assert_int_equal(out[0], 'x');
}

/* Messages built from image data go through cj_err_str and cj_notice: no
 * call site has to remember it. */
static void test_error_and_notice_paths_sanitise(void **state)
{
	struct cj_err err = {0};
	char buf[CJ_ERR_STR_MAX], got[512] = "";
	FILE *tmp = tmpfile();
	int saved;
	ssize_t n;
	(void)state;

	cj_fail(&err, 0, "no image tagged '%s'", "\x1b[2J\x1b]0;t\x07");
	cj_err_wrap(&err, "image %s", "oci:/x:\x9b");
	assert_string_equal(cj_err_str(&err, buf, sizeof buf),
	                    "image oci:/x:\\x9b: no image tagged '\\x1b[2J\\x1b]0;t\\x07'");
	/* the stored message stays as it was */
	assert_non_null(strchr(err.msg, '\x1b'));

	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0 && dup2(fileno(tmp), STDERR_FILENO) >= 0);
	cj_notice("label %s", "\x1b[31mred\nforged");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	n = pread(fileno(tmp), got, sizeof got - 1, 0);
	fclose(tmp);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, "ctr-jailer: label \\x1b[31mred\\x0aforged\n");
}

static void test_json_terminal_safe_keeps_meaning(void **state)
{
	/* DEL, C1 (UTF-8), bidi override, an invalid byte and ESC */
	static const char value[] = "a\x7f"
	                            "b\xc2\x9b"
	                            "c\xe2\x80\xae"
	                            "d\xff"
	                            "e\x1b";
	json_object *o = json_object_new_object(), *back, *v;
	char *safe;
	(void)state;

	json_object_object_add(o, "k", json_object_new_string(value));
	safe = cj_json_terminal_safe(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	assert_non_null(safe);
	for (const unsigned char *p = (const unsigned char *)safe; *p; p++)
		assert_true((*p >= 0x20 && *p < 0x7f) || *p == '\n');
	back = json_tokener_parse(safe);
	assert_non_null(back);
	assert_true(json_object_object_get_ex(back, "k", &v));
	/* the same characters; the invalid byte as U+FFFD */
	assert_string_equal(json_object_get_string(v), "a\x7f"
	                                               "b\xc2\x9b"
	                                               "c\xe2\x80\xae"
	                                               "d\xef\xbf\xbd"
	                                               "e\x1b");
	json_object_put(back);
	json_object_put(o);
	free(safe);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_run_drains_both_pipes),
	    cmocka_unit_test(test_run_code_reports_exit_status),
	    cmocka_unit_test(test_sanitize_escapes_terminal_controls),
	    cmocka_unit_test(test_sanitize_keeps_printable_utf8),
	    cmocka_unit_test(test_sanitize_escapes_invalid_utf8),
	    cmocka_unit_test(test_sanitize_truncates_between_characters),
	    cmocka_unit_test(test_error_and_notice_paths_sanitise),
	    cmocka_unit_test(test_json_terminal_safe_keeps_meaning),
	    cmocka_unit_test(test_spawn_reports_child_failures),
	    cmocka_unit_test(test_spawn_capture_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
