/* SPDX-License-Identifier: Apache-2.0 */
/* The run's exec multiplexer against a scripted guest on a socket pair:
 * clients wait for the guest's greeting, sessions are renumbered both
 * ways, a frame for another session never reaches a client, a guest that
 * sends past a client's credit loses the channel, a client that leaves
 * has its process killed. */
#include "run/agent_mux.h"

#include "ctrj/agent.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

struct world {
	char dir[64];
	int chan[2]; /* [0] the run's end, [1] the guest's */
	struct cj_agent_mux *m;
};

static void pump(struct world *w)
{
	for (int i = 0; i < 20; i++) {
		struct pollfd p[CJ_AGENT_MUX_POLL_MAX];
		int n = cj_agent_mux_pollfds(w->m, p);
		if (poll(p, (nfds_t)n, 10) > 0)
			cj_agent_mux_handle(w->m, p, n);
	}
}

#define MAXF 64

struct frames {
	size_t n;
	uint16_t type[MAXF];
	uint32_t session[MAXF], a[MAXF], len[MAXF];
	bool closed;
};

static int keep(const struct ctrj_agent_frame *f, void *ctx)
{
	struct frames *fr = ctx;

	assert_true(fr->n < MAXF);
	fr->type[fr->n] = f->type;
	fr->session[fr->n] = f->session;
	fr->a[fr->n] = f->a;
	fr->len[fr->n++] = f->len;
	return 0;
}

/* Everything fd holds now, decoded in direction dir. */
static struct frames drain(int fd, enum ctrj_agent_dir dir)
{
	struct ctrj_agent_dec d;
	struct frames fr = {0};
	uint8_t b[65536];
	ssize_t n;

	assert_int_equal(ctrj_agent_dec_init(&d, dir), 0);
	while ((n = recv(fd, b, sizeof b, MSG_DONTWAIT)) > 0)
		assert_int_equal(ctrj_agent_dec_feed(&d, b, (size_t)n, keep, &fr, NULL, 0), 0);
	fr.closed = n == 0;
	ctrj_agent_dec_free(&d);
	return fr;
}

struct exit_seen {
	uint32_t kind, code;
	char msg[CTRJ_AGENT_MSG_MAX + 1];
};

static int keep_exit(const struct ctrj_agent_frame *f, void *ctx)
{
	struct exit_seen *ex = ctx;

	if (f->type == CTRJ_AGENT_EXIT) {
		ex->kind = f->a;
		ex->code = f->b;
		ctrj_agent_exit_msg(f, ex->msg);
	}
	return 0;
}

static void put(int fd, const uint8_t *f, size_t n)
{
	assert_int_equal(write(fd, f, n), (ssize_t)n);
}

static int client(struct world *w)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", w->dir, CJ_AGENT_SOCK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	pump(w);
	return fd;
}

/* A client's START, sent. */
static void send_start(struct world *w, int c)
{
	char *argv[] = {"true", NULL};
	struct ctrj_agent_start st = {.argv = argv, .argc = 1};
	uint8_t *f;
	size_t n;

	assert_int_equal(ctrj_agent_enc_start(&st, 1, &f, &n, NULL, 0), 0);
	put(c, f, n);
	free(f);
	pump(w);
}

/* A client's START; returns the session the guest sees. */
static uint32_t start(struct world *w, int c)
{
	send_start(w, c);
	struct frames g = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.type[0], CTRJ_AGENT_START);
	assert_int_not_equal(g.session[0], 0);
	return g.session[0];
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof *w);
	struct cj_err err = {0};

	snprintf(w->dir, sizeof w->dir, "/tmp/ctrj-mux-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, w->chan), 0);
	w->m = cj_agent_mux_open(w->chan[0], w->dir, &err);
	assert_non_null(w->m);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	char path[128];

	cj_agent_mux_close(w->m);
	snprintf(path, sizeof path, "%s/%s", w->dir, CJ_AGENT_SOCK);
	assert_int_equal(access(path, F_OK), -1); /* the socket is gone */
	close(w->chan[0]);
	close(w->chan[1]);
	rmdir(w->dir);
	free(w);
	return 0;
}

static void greet(struct world *w)
{
	uint8_t f[32];
	put(w->chan[1], f, ctrj_agent_enc_u32(f, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION));
	pump(w);
}

static void test_relay_both_ways(void **state)
{
	struct world *w = *state;
	uint8_t f[64];
	int c = client(w);
	struct frames fr;

	/* no greeting yet: the client hears nothing and is not read */
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 0);
	greet(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.type[0], CTRJ_AGENT_HELLO);

	uint32_t s = start(w, c);
	put(c, f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN, 1, "in", 2));
	pump(w);
	fr = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.session[0], s);

	/* the guest's frames for s reach the client as session 1; others nowhere */
	put(w->chan[1], f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, s, "out", 3));
	put(w->chan[1], f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDERR, s + 7, "other", 5));
	put(w->chan[1], f, ctrj_agent_enc_exit(f, s, CTRJ_AGENT_EXITED, 3, ""));
	pump(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 2);
	assert_int_equal(fr.type[0], CTRJ_AGENT_STDOUT);
	assert_int_equal(fr.session[0], 1);
	assert_int_equal(fr.len[0], 3);
	assert_int_equal(fr.type[1], CTRJ_AGENT_EXIT);
	assert_true(fr.closed); /* the exit status was the last word */
	close(c);
}

static void test_guest_past_credit_loses_channel(void **state)
{
	struct world *w = *state;
	static uint8_t f[CTRJ_AGENT_HDR_SIZE + CTRJ_AGENT_DATA_MAX], data[CTRJ_AGENT_DATA_MAX];
	int c = client(w);

	greet(w);
	uint32_t s = start(w, c);
	/* one window's worth is fine; the byte after it is not */
	for (uint32_t sent = 0; sent < CTRJ_AGENT_WINDOW; sent += CTRJ_AGENT_DATA_MAX) {
		put(w->chan[1], f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, s, data, sizeof data));
		pump(w);
		drain(c, CTRJ_AGENT_FROM_GUEST); /* read, but no credit given back */
	}
	put(w->chan[1], f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, s, data, 1));
	pump(w);
	struct frames fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 0);
	assert_true(fr.closed);
	/* and later clients are turned away */
	int c2 = client(w);
	fr = drain(c2, CTRJ_AGENT_FROM_GUEST);
	assert_true(fr.closed);
	close(c2);
	close(c);
}

/* Frames that cost no credit are bounded as well (found by review: a
 * guest flooding empty STDOUT frames grew the supervisor's heap without
 * bound): one end of stream per stream, no empty credit. */
static void test_guest_flooding_free_frames_loses_channel(void **state)
{
	struct world *w = *state;
	uint8_t f[CTRJ_AGENT_HDR_SIZE + 16];

	for (int kind = 0; kind < 2; kind++) {
		int c = client(w);
		greet(w);
		uint32_t s = start(w, c);
		if (kind == 0) { /* end of stdout, then more of it */
			put(w->chan[1], f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, s, NULL, 0));
			pump(w);
			struct frames fr = drain(c, CTRJ_AGENT_FROM_GUEST);
			/* the end of stream reaches the client (after the greeting) */
			assert_true(fr.n >= 1);
			assert_int_equal(fr.type[fr.n - 1], CTRJ_AGENT_STDOUT);
			assert_int_equal(fr.len[fr.n - 1], 0);
			assert_false(fr.closed);
			put(w->chan[1], f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, s, NULL, 0));
		} else { /* an empty credit */
			put(w->chan[1], f,
			    ctrj_agent_enc_u32x2(f, CTRJ_AGENT_CREDIT, s, CTRJ_AGENT_STREAM_STDIN,
			                         0));
		}
		pump(w);
		assert_true(drain(c, CTRJ_AGENT_FROM_GUEST).closed);
		close(c);
		if (kind == 0) { /* a new world for the second kind */
			teardown(state);
			setup(state);
			w = *state;
		}
	}
}

static void test_client_leaving_kills_its_process(void **state)
{
	struct world *w = *state;
	int c = client(w);

	greet(w);
	drain(c, CTRJ_AGENT_FROM_GUEST);
	uint32_t s = start(w, c);
	close(c);
	pump(w);
	struct frames g = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.type[0], CTRJ_AGENT_SIGNAL);
	assert_int_equal(g.session[0], s);
	assert_int_equal(g.a[0], 9);
}

static void test_client_must_start_once(void **state)
{
	struct world *w = *state;
	uint8_t f[64];
	int c = client(w);

	greet(w);
	drain(c, CTRJ_AGENT_FROM_GUEST);
	/* stdin before START: the client is dropped, the guest hears nothing */
	put(c, f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN, 1, "x", 1));
	pump(w);
	assert_true(drain(c, CTRJ_AGENT_FROM_GUEST).closed);
	assert_int_equal(drain(w->chan[1], CTRJ_AGENT_FROM_HOST).n, 0);
	close(c);
}

/* ---- a channel opened on demand (Firecracker's vsock) ------------------ */

static int od_calls;
static bool od_fail;

/* The guest's end becomes w->chan[1]; the mux owns the other. */
static int od_connect(void *ctx, struct cj_err *err)
{
	struct world *w = ctx;
	int sp[2];

	od_calls++;
	if (od_fail)
		return cj_fail(err, ECONNRESET, "nothing in the guest listens on vsock port 1024");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	close(w->chan[1]);
	w->chan[0] = -1;
	w->chan[1] = sp[1];
	return sp[0];
}

static int setup_on_demand(void **state)
{
	struct world *w = calloc(1, sizeof *w);
	struct cj_err err = {0};

	snprintf(w->dir, sizeof w->dir, "/tmp/ctrj-mux-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	w->chan[0] = w->chan[1] = -1;
	w->m = cj_agent_mux_open(-1, w->dir, &err);
	assert_non_null(w->m);
	cj_agent_mux_on_demand(w->m, od_connect, w);
	od_calls = 0;
	od_fail = false;
	*state = w;
	return 0;
}

/* No connection before a client; one that fails is the client's start
 * failure, with the reason; one that closes is opened anew for the next. */
static void test_on_demand_channel(void **state)
{
	struct world *w = *state;
	struct ctrj_agent_dec d;
	struct frames fr;
	uint8_t b[512];
	int c;

	pump(w);
	assert_int_equal(od_calls, 0);
	od_fail = true;
	c = client(w);
	assert_int_equal(od_calls, 1);
	ssize_t n = recv(c, b, sizeof b, MSG_DONTWAIT);
	assert_true(n > 0);
	assert_int_equal(ctrj_agent_dec_init(&d, CTRJ_AGENT_FROM_GUEST), 0);
	struct exit_seen ex = {0};
	assert_int_equal(ctrj_agent_dec_feed(&d, b, (size_t)n, keep_exit, &ex, NULL, 0), 0);
	ctrj_agent_dec_free(&d);
	assert_int_equal(ex.kind, CTRJ_AGENT_START_FAILED);
	assert_int_equal(ex.code, 126);
	assert_non_null(strstr(ex.msg, "nothing in the guest listens"));
	/* its START, sent meanwhile, goes nowhere and breaks nothing; the
	 * mux lets it go once it has read the reason and left */
	send_start(w, c);
	assert_int_equal(recv(c, b, sizeof b, MSG_DONTWAIT), -1);
	assert_int_equal(od_calls, 1);
	close(c);
	pump(w);

	od_fail = false;
	c = client(w);
	assert_int_equal(od_calls, 2);
	greet(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.type[0], CTRJ_AGENT_HELLO);
	start(w, c);

	/* the guest side goes: the session with it; the next client reconnects */
	close(w->chan[1]);
	w->chan[1] = -1;
	pump(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_true(fr.closed);
	close(c);
	c = client(w);
	assert_int_equal(od_calls, 3);
	greet(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.type[0], CTRJ_AGENT_HELLO);
	close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_relay_both_ways, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_past_credit_loses_channel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_flooding_free_frames_loses_channel, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_client_leaving_kills_its_process, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_must_start_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_demand_channel, setup_on_demand, teardown),
	};
	return cmocka_run_group_tests_name("agent_mux", tests, NULL, NULL);
}
