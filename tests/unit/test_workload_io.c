/* SPDX-License-Identifier: Apache-2.0 */
/* The host's side of the workload's stdio (run/workload_io.c): the guest's
 * output written to fds 1 and 2 apart, credit given back only for what
 * was written, a guest past its credit refused, a detached run's output
 * in the log by stream, stdin within its credit then its end. */
#include "run/logfile.h"
#include "run/workload_io.h"
#include "util/util.h"

#include "ctrj/agent.h"

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct frames {
	uint32_t credit[3]; /* per stream, given back to the guest */
	size_t stdin_bytes;
	bool stdin_closed;
	uint32_t signo;
};

static int collect(const struct ctrj_agent_frame *f, void *ctx)
{
	struct frames *s = ctx;

	assert_int_equal(f->session, CTRJ_AGENT_MAIN_SESSION);
	if (f->type == CTRJ_AGENT_CREDIT)
		s->credit[f->a] += f->b;
	else if (f->type == CTRJ_AGENT_STDIN)
		s->stdin_bytes += f->len;
	else if (f->type == CTRJ_AGENT_STDIN_CLOSE)
		s->stdin_closed = true;
	else if (f->type == CTRJ_AGENT_SIGNAL)
		s->signo = f->a;
	return 0;
}

/* What the workload_io queued for the guest, decoded (and dropped). */
static struct frames to_guest(struct ctrj_agent_buf *q)
{
	struct ctrj_agent_dec d;
	struct frames s = {0};

	assert_int_equal(ctrj_agent_dec_init(&d, CTRJ_AGENT_FROM_HOST), 0);
	assert_int_equal(ctrj_agent_dec_feed(&d, q->p, q->len, collect, &s, NULL, 0), 0);
	ctrj_agent_dec_free(&d);
	ctrj_agent_buf_drop(q, q->len);
	return s;
}

static int guest_data(struct cj_workload_io *w, uint16_t type, const char *text, size_t n)
{
	struct ctrj_agent_frame f = {.type = type,
	                             .session = CTRJ_AGENT_MAIN_SESSION,
	                             .payload = (const uint8_t *)text,
	                             .len = (uint32_t)n};
	return cj_workload_io_frame(w, &f);
}

/* fd (1 or 2) becomes a pipe's write end for the test; returns its read end. */
static int capture(int fd, int *saved)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	*saved = dup(fd);
	dup2(p[1], fd);
	close(p[1]);
	return p[0];
}

static void restore(int fd, int saved)
{
	dup2(saved, fd);
	close(saved);
}

static void test_output_apart_and_credit_after_the_write(void **state)
{
	struct ctrj_agent_buf q = {0};
	struct cj_workload_io w;
	struct pollfd p[CJ_WORKLOAD_IO_POLL];
	char buf[64] = "";
	int so, se;
	(void)state;

	cj_workload_io_open(&w, false, false, NULL, false);
	w.to_guest = &q;
	assert_int_equal(guest_data(&w, CTRJ_AGENT_STDOUT, "out\n", 4), 0);
	assert_int_equal(guest_data(&w, CTRJ_AGENT_STDERR, "err!\n", 5), 0);
	assert_int_equal(q.len, 0); /* nothing written yet: no credit */
	cj_workload_io_pollfds(&w, p, true);
	assert_int_equal(p[0].fd, -1); /* no -i: stdin is not read */
	assert_int_equal(p[1].fd, 1);
	assert_int_equal(p[2].fd, 2);
	int ro = capture(1, &so), re = capture(2, &se);
	p[1].revents = p[2].revents = POLLOUT;
	cj_workload_io_handle(&w, p);
	restore(1, so);
	restore(2, se);
	assert_int_equal(read(ro, buf, sizeof buf), 4);
	assert_memory_equal(buf, "out\n", 4);
	assert_int_equal(read(re, buf, sizeof buf), 5);
	assert_memory_equal(buf, "err!\n", 5);
	struct frames s = to_guest(&q);
	assert_int_equal(s.credit[CTRJ_AGENT_STREAM_STDOUT], 4);
	assert_int_equal(s.credit[CTRJ_AGENT_STREAM_STDERR], 5);
	close(ro);
	close(re);
	cj_workload_io_close(&w);
	ctrj_agent_buf_free(&q);
}

static void test_guest_past_its_credit_is_refused(void **state)
{
	static char big[CTRJ_AGENT_DATA_MAX];
	struct ctrj_agent_buf q = {0};
	struct cj_workload_io w;
	(void)state;

	cj_workload_io_open(&w, false, false, NULL, false);
	w.to_guest = &q;
	for (uint32_t sent = 0; sent < CTRJ_AGENT_WINDOW; sent += sizeof big)
		assert_int_equal(guest_data(&w, CTRJ_AGENT_STDOUT, big, sizeof big), 0);
	assert_int_equal(guest_data(&w, CTRJ_AGENT_STDOUT, "x", 1), -1);
	assert_int_equal(guest_data(&w, CTRJ_AGENT_STDERR, "x", 1), 0); /* its own window */
	/* credit for stdout or an empty one is no stdin credit */
	struct ctrj_agent_frame c = {.type = CTRJ_AGENT_CREDIT,
	                             .session = CTRJ_AGENT_MAIN_SESSION,
	                             .a = CTRJ_AGENT_STREAM_STDOUT,
	                             .b = 10};
	assert_int_equal(cj_workload_io_frame(&w, &c), -1);
	c.a = CTRJ_AGENT_STREAM_STDIN;
	c.b = 0;
	assert_int_equal(cj_workload_io_frame(&w, &c), -1);
	c.b = 10; /* past what we sent plus a window */
	assert_int_equal(cj_workload_io_frame(&w, &c), -1);
	cj_workload_io_close(&w);
	ctrj_agent_buf_free(&q);
}

static void test_detached_output_goes_to_the_log_by_stream(void **state)
{
	char dir[] = "/tmp/cj-wio-XXXXXX", path[PATH_MAX], *text = NULL;
	struct ctrj_agent_buf q = {0};
	struct cj_workload_io w;
	struct cj_err err = {0};
	struct cj_log log;
	size_t len;
	(void)state;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(cj_log_open(&log, dir, &err), 0);
	cj_workload_io_open(&w, true, false, &log, true);
	assert_int_equal(w.in_fd, -1); /* detached: no stdin */
	w.to_guest = &q;
	assert_int_equal(guest_data(&w, CTRJ_AGENT_STDOUT, "o1\n", 3), 0);
	assert_int_equal(guest_data(&w, CTRJ_AGENT_STDERR, "e1\n", 3), 0);
	struct frames s = to_guest(&q); /* credit at once */
	assert_int_equal(s.credit[CTRJ_AGENT_STREAM_STDOUT], 3);
	assert_int_equal(s.credit[CTRJ_AGENT_STREAM_STDERR], 3);
	cj_log_close(&log);
	snprintf(path, sizeof path, "%s/console.log", dir);
	assert_int_equal(cj_read_file(path, &text, &len, &err), 0);
	assert_non_null(strstr(text, "Z o o1\n"));
	assert_non_null(strstr(text, "Z e e1\n"));
	free(text);
	unlink(path);
	rmdir(dir);
	cj_workload_io_close(&w);
	ctrj_agent_buf_free(&q);
}

static void test_stdin_within_its_credit_then_its_end(void **state)
{
	struct ctrj_agent_buf q = {0};
	struct cj_workload_io w;
	struct pollfd p[CJ_WORKLOAD_IO_POLL];
	int in[2], saved;
	(void)state;

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	saved = dup(0);
	dup2(in[0], 0);
	close(in[0]);
	cj_workload_io_open(&w, true, false, NULL, false);
	w.to_guest = &q;
	assert_int_equal(write(in[1], "abc", 3), 3);
	close(in[1]);
	cj_workload_io_pollfds(&w, p, false); /* the channel not up: not read */
	assert_int_equal(p[0].fd, -1);
	for (int i = 0; i < 2 && w.in_fd >= 0; i++) {
		cj_workload_io_pollfds(&w, p, true);
		assert_int_equal(p[0].fd, 0);
		p[0].revents = POLLIN;
		cj_workload_io_handle(&w, p);
	}
	restore(0, saved);
	assert_int_equal(w.in_fd, -1);
	assert_int_equal(cj_workload_io_signal(&w, 2), 0);
	struct frames s = to_guest(&q);
	assert_int_equal(s.stdin_bytes, 3);
	assert_true(s.stdin_closed);
	assert_int_equal(s.signo, 2);
	cj_workload_io_close(&w);
	ctrj_agent_buf_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_output_apart_and_credit_after_the_write),
	    cmocka_unit_test(test_guest_past_its_credit_is_refused),
	    cmocka_unit_test(test_detached_output_goes_to_the_log_by_stream),
	    cmocka_unit_test(test_stdin_within_its_credit_then_its_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
