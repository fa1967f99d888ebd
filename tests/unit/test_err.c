/* SPDX-License-Identifier: Apache-2.0 */
/* The error contract: cj_fail/cj_fail_code/cj_err_wrap and the notice sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_fail_defaults_to_runtime_exit(void **state)
{
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_fail(&err, ENOENT, "no %s", "thing"), -1);
	assert_int_equal(err.exit_code, CJ_EXIT_RUNTIME);
	assert_int_equal(err.errnum, ENOENT);
	assert_string_equal(err.msg, "no thing");
}

static void test_fail_code_sets_exit_and_wrap_keeps_it(void **state)
{
	struct cj_err err = {0};
	char buf[CJ_ERR_STR_MAX];
	(void)state;

	assert_int_equal(cj_fail_code(&err, CJ_EXIT_NOT_FOUND, ENOENT, "%s: not found", "sh"), -1);
	assert_int_equal(err.exit_code, CJ_EXIT_NOT_FOUND);
	assert_int_equal(cj_err_wrap(&err, "command"), -1);
	assert_int_equal(err.exit_code, CJ_EXIT_NOT_FOUND);
	assert_int_equal(err.errnum, ENOENT);
	assert_string_equal(cj_err_str(&err, buf, sizeof buf),
	                    "command: sh: not found: No such file or directory");

	/* 0 means the default; a plain cj_fail keeps a code set before. */
	memset(&err, 0, sizeof err);
	cj_fail_code(&err, 0, 0, "x");
	assert_int_equal(err.exit_code, CJ_EXIT_RUNTIME);
	err.exit_code = CJ_EXIT_CANNOT_EXEC;
	cj_fail(&err, 0, "y");
	assert_int_equal(err.exit_code, CJ_EXIT_CANNOT_EXEC);
}

struct captured {
	int calls;
	int level;
	char msg[256];
};

static void capture_sink(int level, const char *msg, void *ud)
{
	struct captured *c = ud;

	c->calls++;
	c->level = level;
	snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void test_sink_gets_sanitized_level_and_message(void **state)
{
	struct captured c = {0};
	(void)state;

	cj_set_notice_sink(capture_sink, &c);
	cj_notice("layer %s", "a\nb\x1b[2J");
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.level, CJ_LEVEL_NOTICE);
	assert_string_equal(c.msg, "layer a\\x0ab\\x1b[2J");
	cj_warn("%d left", 3);
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.level, CJ_LEVEL_WARNING);
	assert_string_equal(c.msg, "3 left");
	cj_set_notice_sink(NULL, NULL);
	cj_warn("back to stderr");
	assert_int_equal(c.calls, 2);
}

/* Run fn with stderr sent to a temporary file; return what it wrote. */
static char *stderr_of(void (*fn)(void))
{
	static char out[512];
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, sizeof out - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static void emit_both(void)
{
	cj_notice("notice: kept %d", 1);
	cj_warn("tab\there");
}

static void test_default_sink_writes_one_line_each_to_stderr(void **state)
{
	(void)state;

	cj_set_notice_sink(NULL, NULL);
	assert_string_equal(stderr_of(emit_both), "ctr-jailer: notice: kept 1\n"
	                                          "ctr-jailer: warning: tab\\x09here\n");
}

/* The cleanup helpers release at scope end and keep errno; a stolen value
 * is the caller's. */
static int opened_fd = -1;

static int open_and_keep(bool keep)
{
	cj_autoclose int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cj_autofree char *buf = strdup("x");

	assert_true(fd >= 0);
	assert_non_null(buf);
	opened_fd = fd;
	errno = ENOTDIR;
	return keep ? cj_steal_fd(&fd) : -1;
}

static void test_auto_cleanup_and_steal(void **state)
{
	int fd;
	(void)state;

	errno = 0;
	assert_int_equal(open_and_keep(false), -1);
	assert_int_equal(errno, ENOTDIR); /* kept through close and free */
	assert_int_equal(fcntl(opened_fd, F_GETFD), -1);
	fd = open_and_keep(true);
	assert_int_equal(fd, opened_fd);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);

	cj_autofree char *p = strdup("taken");
	char *mine = cj_steal_ptr(&p);
	assert_null(p);
	assert_string_equal(mine, "taken");
	free(mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fail_defaults_to_runtime_exit),
	    cmocka_unit_test(test_fail_code_sets_exit_and_wrap_keeps_it),
	    cmocka_unit_test(test_sink_gets_sanitized_level_and_message),
	    cmocka_unit_test(test_default_sink_writes_one_line_each_to_stderr),
	    cmocka_unit_test(test_auto_cleanup_and_steal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
