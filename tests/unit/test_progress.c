/* SPDX-License-Identifier: Apache-2.0 */
/* Progress lines: silent until set up, one line a step when not a tty,
 * a redrawn line on a tty, guest-controlled labels made safe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/progress.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int pipe_fds[2];

static int setup(void **state)
{
	(void)state;
	if (pipe2(pipe_fds, O_NONBLOCK) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cj_progress_setup(-1, CJ_PROGRESS_QUIET);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	return 0;
}

static char *drain(void)
{
	static char buf[4096];
	ssize_t n = read(pipe_fds[0], buf, sizeof buf - 1);

	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void test_silent_until_set_up(void **state)
{
	(void)state;
	struct cj_progress *p = cj_progress_start("pull", CJ_PROGRESS_BYTES, 10);
	assert_null(p);
	cj_progress_add(p, 5);
	cj_progress_end(p, true);
	assert_string_equal(drain(), "");
}

static void test_lines_mode_writes_start_and_end(void **state)
{
	struct timespec second = {1, 100000000};

	(void)state;
	cj_progress_setup(pipe_fds[1], CJ_PROGRESS_LINES);
	struct cj_progress *p = cj_progress_start("unpack", CJ_PROGRESS_BYTES, 2048);
	assert_non_null(p);
	cj_progress_add(p, 1024);
	assert_string_equal(drain(), ""); /* not yet a second */
	nanosleep(&second, NULL);
	cj_progress_add(p, 1024);
	assert_string_equal(drain(), "ctr-jailer: unpack: 2.0 KiB\n");
	cj_progress_end(p, true);
	char *out = drain();
	assert_non_null(strstr(out, "ctr-jailer: unpack done: 2.0 KiB"));
	assert_null(strchr(out, '\r'));
}

static void test_lines_mode_short_step_is_silent(void **state)
{
	(void)state;
	cj_progress_setup(pipe_fds[1], CJ_PROGRESS_LINES);
	struct cj_progress *p = cj_progress_start("build base image", CJ_PROGRESS_BYTES, 2048);
	assert_non_null(p);
	cj_progress_add(p, 2048);
	cj_progress_end(p, true);
	assert_string_equal(drain(), "");
}

static void test_tty_mode_redraws_and_sums_steps(void **state)
{
	(void)state;
	cj_progress_setup(pipe_fds[1], CJ_PROGRESS_TTY);
	struct cj_progress *a = cj_progress_start("layer a", CJ_PROGRESS_BYTES, 100);
	struct cj_progress *b = cj_progress_start("layer b", CJ_PROGRESS_BYTES, 100);
	char *out = drain();
	assert_non_null(strstr(out, "\r\033[K2 steps: 0 B of 200 B"));
	cj_progress_end(a, false);
	out = drain();
	assert_non_null(strstr(out, "layer a failed"));
	cj_progress_end(b, true);
}

static void test_labels_are_sanitized(void **state)
{
	(void)state;
	cj_progress_setup(pipe_fds[1], CJ_PROGRESS_LINES);
	struct cj_progress *p = cj_progress_start("evil\033]0;x\a", CJ_PROGRESS_FILES, 0);
	struct timespec second = {1, 100000000};
	nanosleep(&second, NULL); /* a long step: its lines are written */
	cj_progress_add(p, 3);
	cj_progress_end(p, true);
	char *out = drain();
	assert_null(strchr(out, '\033'));
	assert_non_null(strstr(out, "3 files"));
}

static void test_sizes(void **state)
{
	char buf[32];
	(void)state;
	cj_progress_fmt_size(930, buf, sizeof buf);
	assert_string_equal(buf, "930 B");
	cj_progress_fmt_size(3u << 20, buf, sizeof buf);
	assert_string_equal(buf, "3.0 MiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_silent_until_set_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lines_mode_writes_start_and_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lines_mode_short_step_is_silent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tty_mode_redraws_and_sums_steps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_labels_are_sanitized, setup, teardown),
	    cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
