/* SPDX-License-Identifier: Apache-2.0 */
/* cj_run: output capture and exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_run_drains_both_pipes),
	    cmocka_unit_test(test_run_code_reports_exit_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
