/* SPDX-License-Identifier: Apache-2.0 */
/* Agent channel protocol: frames round-trip through the streaming decoder
 * whatever the chunking; each direction refuses the other's frames and
 * anything out of bounds; START records; credit accounting. */
#include "ctrj/agent.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAXF 16

struct got {
	size_t n;
	uint16_t type[MAXF];
	uint32_t session[MAXF], a[MAXF], b[MAXF], len[MAXF];
	uint8_t data[MAXF][64];
	char msg[CTRJ_AGENT_MSG_MAX + 1];
};

static int collect(const struct ctrj_agent_frame *f, void *ctx)
{
	struct got *g = ctx;

	assert_true(g->n < MAXF);
	g->type[g->n] = f->type;
	g->session[g->n] = f->session;
	g->a[g->n] = f->a;
	g->b[g->n] = f->b;
	g->len[g->n] = f->len;
	memcpy(g->data[g->n], f->payload, f->len < 64 ? f->len : 64);
	if (f->type == CTRJ_AGENT_EXIT)
		ctrj_agent_exit_msg(f, g->msg);
	g->n++;
	return 0;
}

/* Feeds buf in chunks of `chunk` bytes; returns the decoder's result. */
static int feed(enum ctrj_agent_dir dir, const uint8_t *buf, size_t len, size_t chunk,
                struct got *g)
{
	struct ctrj_agent_dec d;
	char err[128] = "";
	int r = 0;

	memset(g, 0, sizeof *g);
	assert_int_equal(ctrj_agent_dec_init(&d, dir), 0);
	for (size_t off = 0; r == 0 && off < len; off += chunk)
		r = ctrj_agent_dec_feed(&d, buf + off, len - off < chunk ? len - off : chunk,
		                        collect, g, err, sizeof err);
	if (r < 0)
		assert_string_equal(err, "malformed frame on the agent channel");
	ctrj_agent_dec_free(&d);
	return r;
}

static void test_guest_frames_any_chunking(void **state)
{
	uint8_t buf[1024];
	size_t n = 0;
	struct got g;

	(void)state;
	n += ctrj_agent_enc_u32(buf + n, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDOUT, 7, "out", 3);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDERR, 7, "err!", 4);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDOUT, 7, NULL, 0);
	n += ctrj_agent_enc_u32x2(buf + n, CTRJ_AGENT_CREDIT, 7, CTRJ_AGENT_STREAM_STDIN, 100);
	n += ctrj_agent_enc_exit(buf + n, 7, CTRJ_AGENT_START_FAILED, 127, "no such\x1b file");
	for (size_t chunk = 1; chunk <= n; chunk++) {
		assert_int_equal(feed(CTRJ_AGENT_FROM_GUEST, buf, n, chunk, &g), 0);
		assert_int_equal(g.n, 6);
		assert_int_equal(g.type[0], CTRJ_AGENT_HELLO);
		assert_int_equal(g.a[0], CTRJ_AGENT_VERSION);
		assert_int_equal(g.type[1], CTRJ_AGENT_STDOUT);
		assert_int_equal(g.session[1], 7);
		assert_memory_equal(g.data[1], "out", 3);
		assert_int_equal(g.type[2], CTRJ_AGENT_STDERR);
		assert_memory_equal(g.data[2], "err!", 4);
		assert_int_equal(g.len[3], 0);
		assert_int_equal(g.b[4], 100);
		assert_int_equal(g.a[5], CTRJ_AGENT_START_FAILED);
		assert_int_equal(g.b[5], 127);
		assert_string_equal(g.msg, "no such? file");
	}
}

static void test_host_frames(void **state)
{
	uint8_t buf[256];
	size_t n = 0;
	struct got g;

	(void)state;
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDIN, 3, "hi\n", 3);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDIN_CLOSE, 3, NULL, 0);
	n += ctrj_agent_enc_resize(buf + n, 3, 24, 80);
	n += ctrj_agent_enc_u32(buf + n, CTRJ_AGENT_SIGNAL, 3, 15);
	n += ctrj_agent_enc_u32x2(buf + n, CTRJ_AGENT_CREDIT, 3, CTRJ_AGENT_STREAM_STDERR, 5);
	assert_int_equal(feed(CTRJ_AGENT_FROM_HOST, buf, n, 5, &g), 0);
	assert_int_equal(g.n, 5);
	assert_int_equal(g.type[2], CTRJ_AGENT_RESIZE);
	assert_int_equal(g.a[2], 24);
	assert_int_equal(g.b[2], 80);
	assert_int_equal(g.a[3], 15);
	/* the host's decoder refuses every one of them: they are not the guest's to send */
	assert_int_equal(feed(CTRJ_AGENT_FROM_GUEST, buf, 15, 15, &g), -1);
	assert_int_equal(g.n, 0);
}

static void expect_bad(enum ctrj_agent_dir dir, const uint8_t *buf, size_t n)
{
	struct got g;

	for (size_t chunk = 1; chunk <= n; chunk++) {
		assert_int_equal(feed(dir, buf, n, chunk, &g), -1);
		assert_int_equal(g.n, 0);
	}
}

static void test_rejects(void **state)
{
	uint8_t buf[CTRJ_AGENT_HDR_SIZE + CTRJ_AGENT_DATA_MAX + 16];
	size_t n;

	(void)state;
	/* guest frames the host must refuse */
	n = ctrj_agent_enc_exit(buf, 1, CTRJ_AGENT_EXITED, 256, "");
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_exit(buf, 1, CTRJ_AGENT_SIGNALED, 65, "");
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_exit(buf, 1, CTRJ_AGENT_START_FAILED, 1, "");
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_exit(buf, 1, CTRJ_AGENT_EXITED, 0, "ok");
	buf[n - 1] = '\n'; /* a control byte in the message */
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_u32(buf, CTRJ_AGENT_HELLO, 1, 1); /* HELLO outside session 0 */
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_STDOUT, 0, "x", 1); /* data on session 0 */
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_u32x2(buf, CTRJ_AGENT_CREDIT, 1, CTRJ_AGENT_STREAM_STDOUT, 1);
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n); /* the guest credits stdin only */
	n = ctrj_agent_enc_u32x2(buf, CTRJ_AGENT_CREDIT, 1, CTRJ_AGENT_STREAM_STDIN,
	                         CTRJ_AGENT_WINDOW + 1);
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	/* oversized data, a nonzero flags field, a huge length, an unknown type */
	static uint8_t big[CTRJ_AGENT_DATA_MAX + 1];
	memset(big, 'x', sizeof big);
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_STDOUT, 1, big, CTRJ_AGENT_DATA_MAX);
	buf[n] = 'x';
	buf[8] = (uint8_t)(n - CTRJ_AGENT_HDR_SIZE + 1);
	buf[9] = (uint8_t)((n - CTRJ_AGENT_HDR_SIZE + 1) >> 8);
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n + 1);
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_STDOUT, 1, "x", 1);
	buf[2] = 1;
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_STDOUT, 1, "x", 1);
	buf[11] = 0x7f;
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, CTRJ_AGENT_HDR_SIZE);
	n = ctrj_agent_enc_data(buf, 99, 1, "x", 1);
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n);
	/* host frames the guest must refuse */
	n = ctrj_agent_enc_u32(buf, CTRJ_AGENT_SIGNAL, 1, 0);
	expect_bad(CTRJ_AGENT_FROM_HOST, buf, n);
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_STDIN_CLOSE, 1, "x", 1);
	expect_bad(CTRJ_AGENT_FROM_HOST, buf, n);
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_STDOUT, 1, "x", 1);
	expect_bad(CTRJ_AGENT_FROM_HOST, buf, n);
}

/* RELEASE (runtime mode's start): the host's, on session 0, empty. */
static void test_release(void **state)
{
	uint8_t buf[64];
	size_t n = ctrj_agent_enc_data(buf, CTRJ_AGENT_RELEASE, 0, NULL, 0);
	struct got g;

	(void)state;
	assert_int_equal(feed(CTRJ_AGENT_FROM_HOST, buf, n, n, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.type[0], CTRJ_AGENT_RELEASE);
	expect_bad(CTRJ_AGENT_FROM_GUEST, buf, n); /* never the guest's */
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_RELEASE, 3, NULL, 0);
	expect_bad(CTRJ_AGENT_FROM_HOST, buf, n); /* a session's */
	n = ctrj_agent_enc_data(buf, CTRJ_AGENT_RELEASE, 0, "x", 1);
	expect_bad(CTRJ_AGENT_FROM_HOST, buf, n); /* with a payload */
}

static void test_failed_decoder_stays_failed(void **state)
{
	struct ctrj_agent_dec d;
	uint8_t buf[64];
	struct got g = {0};
	size_t n;

	(void)state;
	assert_int_equal(ctrj_agent_dec_init(&d, CTRJ_AGENT_FROM_GUEST), 0);
	n = ctrj_agent_enc_u32(buf, CTRJ_AGENT_SIGNAL, 1, 9);
	assert_int_equal(ctrj_agent_dec_feed(&d, buf, n, collect, &g, NULL, 0), -1);
	n = ctrj_agent_enc_u32(buf, CTRJ_AGENT_HELLO, 0, 1);
	assert_int_equal(ctrj_agent_dec_feed(&d, buf, n, collect, &g, NULL, 0), -1);
	assert_int_equal(g.n, 0);
	ctrj_agent_dec_free(&d);
}

struct start_ctx {
	struct ctrj_agent_start s;
	int r;
};

static int parse_start(const struct ctrj_agent_frame *f, void *ctx)
{
	struct start_ctx *c = ctx;

	assert_int_equal(f->type, CTRJ_AGENT_START);
	assert_int_equal(f->session, 42);
	c->r = ctrj_agent_start_parse(f, &c->s, NULL, 0);
	return 0;
}

static int start_round_trip(const struct ctrj_agent_start *in, struct start_ctx *c)
{
	struct ctrj_agent_dec d;
	uint8_t *frame;
	size_t len;

	memset(c, 0, sizeof *c);
	if (ctrj_agent_enc_start(in, 42, &frame, &len, NULL, 0) < 0)
		return -1;
	assert_int_equal(ctrj_agent_dec_init(&d, CTRJ_AGENT_FROM_HOST), 0);
	for (size_t off = 0; off < len; off += 3)
		assert_int_equal(ctrj_agent_dec_feed(&d, frame + off, len - off < 3 ? len - off : 3,
		                                     parse_start, c, NULL, 0),
		                 0);
	ctrj_agent_dec_free(&d);
	free(frame);
	return c->r;
}

static void test_start_round_trip(void **state)
{
	char *argv[] = {"sh", "-c", "echo $A", NULL};
	char *envp[] = {"A=1", "B=x=y", NULL};
	struct ctrj_agent_start in = {.argv = argv,
	                              .argc = 3,
	                              .envp = envp,
	                              .envc = 2,
	                              .user = "1000:1000",
	                              .workdir = "/tmp",
	                              .tty = true,
	                              .rows = 40,
	                              .cols = 120};
	struct start_ctx c;

	(void)state;
	assert_int_equal(start_round_trip(&in, &c), 0);
	assert_int_equal(c.s.argc, 3);
	assert_string_equal(c.s.argv[2], "echo $A");
	assert_null(c.s.argv[3]);
	assert_int_equal(c.s.envc, 2);
	assert_string_equal(c.s.envp[1], "B=x=y");
	assert_null(c.s.envp[2]);
	assert_string_equal(c.s.user, "1000:1000");
	assert_string_equal(c.s.workdir, "/tmp");
	assert_true(c.s.tty);
	assert_int_equal(c.s.rows, 40);
	assert_int_equal(c.s.cols, 120);
	ctrj_agent_start_free(&c.s);

	/* minimal: no environment (an empty one), no user, no terminal */
	in.envc = 0;
	in.user = in.workdir = NULL;
	in.tty = false;
	assert_int_equal(start_round_trip(&in, &c), 0);
	assert_non_null(c.s.envp);
	assert_null(c.s.envp[0]);
	assert_null(c.s.user);
	assert_false(c.s.tty);
	ctrj_agent_start_free(&c.s);
}

/* An exec's privileges and limits (process.json) round trip; a record
 * out of bounds refuses the START. */
static void test_start_proc(void **state)
{
	char *argv[] = {"true", NULL};
	struct ctrj_agent_start in = {.argv = argv, .argc = 1};
	struct start_ctx c;
	uint8_t *frame;
	size_t len;

	(void)state;
	in.proc.flags = CTRJ_PROC_CAPS | CTRJ_PROC_GROUPS | CTRJ_PROC_NO_NEW_PRIVS;
	in.proc.cap_bounding = in.proc.cap_effective = in.proc.cap_permitted = 0x3ull;
	in.proc.ngroups = 1;
	in.proc.groups[0] = 1234;
	in.proc.nrlimits = 1;
	in.proc.rlimits[0] = (struct ctrj_rlimit){7, 1000, 1000};
	assert_int_equal(start_round_trip(&in, &c), 0);
	assert_memory_equal(&c.s.proc, &in.proc, sizeof in.proc);
	ctrj_agent_start_free(&c.s);
	in.proc.rlimits[0].resource = 99;
	assert_int_equal(ctrj_agent_enc_start(&in, 42, &frame, &len, NULL, 0), -1);
	/* the same, written by a hostile host past the encoder's check */
	in.proc.rlimits[0].resource = 7;
	assert_int_equal(ctrj_agent_enc_start(&in, 42, &frame, &len, NULL, 0), 0);
	for (size_t off = CTRJ_AGENT_HDR_SIZE; off + 8 <= len; off += 8 + frame[off + 4])
		if (frame[off] == CTRJ_AGENT_REC_RLIMIT)
			frame[off + 8] = 99;
	struct ctrj_agent_frame f = {.type = CTRJ_AGENT_START,
	                             .session = 42,
	                             .payload = frame + CTRJ_AGENT_HDR_SIZE,
	                             .len = (uint32_t)(len - CTRJ_AGENT_HDR_SIZE)};
	assert_int_equal(ctrj_agent_start_parse(&f, &c.s, NULL, 0), -1);
	free(frame);
}

static void test_start_rejects(void **state)
{
	char *argv[] = {"true", NULL};
	char *bad_env[] = {"=x", NULL};
	char *no_eq[] = {"NOEQ", NULL};
	struct ctrj_agent_start in = {.argv = argv, .argc = 1};
	struct start_ctx c;
	uint8_t *frame;
	size_t len;

	(void)state;
	in.workdir = "relative";
	assert_int_equal(start_round_trip(&in, &c), -1);
	in.workdir = NULL;
	in.envp = bad_env;
	in.envc = 1;
	assert_int_equal(start_round_trip(&in, &c), -1);
	in.envp = no_eq;
	assert_int_equal(start_round_trip(&in, &c), -1);
	in.envc = 0;
	in.argc = 0;
	assert_int_equal(ctrj_agent_enc_start(&in, 42, &frame, &len, NULL, 0), -1);
	in.argc = 1;
	assert_int_equal(ctrj_agent_enc_start(&in, 0, &frame, &len, NULL, 0), -1);
	/* too big for one frame */
	char *big = malloc(CTRJ_AGENT_FRAME_MAX);
	assert_non_null(big);
	memset(big, 'a', CTRJ_AGENT_FRAME_MAX - 1);
	big[CTRJ_AGENT_FRAME_MAX - 1] = '\0';
	argv[0] = big;
	assert_int_equal(ctrj_agent_enc_start(&in, 42, &frame, &len, NULL, 0), -1);
	free(big);
}

static void test_credit(void **state)
{
	struct ctrj_agent_credit c;

	(void)state;
	ctrj_agent_credit_init(&c);
	assert_int_equal(ctrj_agent_credit_avail(&c), CTRJ_AGENT_WINDOW);
	assert_int_equal(ctrj_agent_credit_take(&c, CTRJ_AGENT_WINDOW - 10), 0);
	assert_int_equal(ctrj_agent_credit_avail(&c), 10);
	assert_int_equal(ctrj_agent_credit_take(&c, 11), -1); /* past the window */
	assert_int_equal(ctrj_agent_credit_take(&c, 10), 0);
	assert_int_equal(ctrj_agent_credit_avail(&c), 0);
	assert_int_equal(ctrj_agent_credit_grant(&c, 4096), 0);
	assert_int_equal(ctrj_agent_credit_avail(&c), 4096);
	/* granting more than was consumed would open the window past its size */
	assert_int_equal(ctrj_agent_credit_grant(&c, CTRJ_AGENT_WINDOW), -1);
	assert_int_equal(ctrj_agent_credit_avail(&c), 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_guest_frames_any_chunking),
	    cmocka_unit_test(test_host_frames),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_release),
	    cmocka_unit_test(test_failed_decoder_stays_failed),
	    cmocka_unit_test(test_start_round_trip),
	    cmocka_unit_test(test_start_rejects),
	    cmocka_unit_test(test_start_proc),
	    cmocka_unit_test(test_credit),
	};
	return cmocka_run_group_tests_name("agent", tests, NULL, NULL);
}
