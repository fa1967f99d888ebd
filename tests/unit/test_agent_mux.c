/* SPDX-License-Identifier: Apache-2.0 */
/* The run's exec multiplexer against a scripted guest on a socket pair:
 * clients wait for the guest's greeting, sessions are renumbered both
 * ways, a frame for another session never reaches a client, a guest that
 * sends past a client's credit loses the channel, a client that leaves
 * has its process killed. */
#include "run/agent_mux.h"

#include "ctrj/agent.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

static int od_lfd = -1; /* the fake Firecracker's vsock listener, if any */
static void od_serve(struct world *w);

/* The loop's turns, as the supervisor gives them: handle after every
 * poll (the mux has timers too). */
static void pump(struct world *w)
{
	for (int i = 0; i < 20; i++) {
		struct pollfd p[CJ_AGENT_MUX_POLL_MAX];
		int n = cj_agent_mux_pollfds(w->m, p);
		poll(p, (nfds_t)n, 10);
		cj_agent_mux_handle(w->m, p, n);
		if (od_lfd >= 0)
			od_serve(w);
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

/* The workload's session: ignored until its stdio is attached, then its
 * output taken (credit back, none of it to clients) and checked against
 * its credit; signals go to it; clients never get its number. */
static void test_workload_session(void **state)
{
	struct world *w = *state;
	struct cj_workload_io io;
	uint8_t f[CTRJ_AGENT_HDR_SIZE + CTRJ_AGENT_DATA_MAX];
	struct frames fr;

	greet(w);
	assert_int_equal(cj_agent_mux_workload_signal(w->m, SIGINT), -1); /* no stdio attached */
	put(w->chan[1], f,
	    ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, CTRJ_AGENT_MAIN_SESSION, "x", 1));
	pump(w);
	assert_int_equal(drain(w->chan[1], CTRJ_AGENT_FROM_HOST).n, 0); /* ignored */

	cj_workload_io_open(&io, false, false, NULL, true); /* output dropped, credit back */
	cj_agent_mux_workload(w->m, &io);
	int c = client(w);
	put(w->chan[1], f,
	    ctrj_agent_enc_data(f, CTRJ_AGENT_STDOUT, CTRJ_AGENT_MAIN_SESSION, "out", 3));
	pump(w);
	assert_int_equal(cj_agent_mux_workload_signal(w->m, SIGINT), 0);
	pump(w);
	fr = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(fr.n, 2);
	assert_int_equal(fr.type[0], CTRJ_AGENT_CREDIT);
	assert_int_equal(fr.session[0], CTRJ_AGENT_MAIN_SESSION);
	assert_int_equal(fr.type[1], CTRJ_AGENT_SIGNAL);
	assert_int_equal(fr.a[1], SIGINT);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 1); /* the greeting only */
	assert_int_not_equal(start(w, c), CTRJ_AGENT_MAIN_SESSION);

	/* a frame its checks refuse (credit for a stream it cannot have):
	 * the channel goes */
	put(w->chan[1], f,
	    ctrj_agent_enc_u32x2(f, CTRJ_AGENT_CREDIT, CTRJ_AGENT_MAIN_SESSION,
	                         CTRJ_AGENT_STREAM_STDOUT, 5));
	pump(w);
	assert_int_equal(cj_agent_mux_workload_signal(w->m, SIGINT), -1);
	close(c);
	cj_workload_io_close(&io);
}

/* `ctr-jailer-runtime start`: a client's RELEASE reaches the guest on
 * session 0, and its leaving (no process of its own) kills nothing; after
 * a START, a RELEASE drops the client. */
static void test_release_goes_to_session_zero(void **state)
{
	struct world *w = *state;
	uint8_t f[64];
	int c = client(w);

	greet(w);
	drain(c, CTRJ_AGENT_FROM_GUEST);
	put(c, f, ctrj_agent_enc_data(f, CTRJ_AGENT_RELEASE, 0, NULL, 0));
	shutdown(c, SHUT_WR);
	pump(w);
	assert_true(drain(c, CTRJ_AGENT_FROM_GUEST).closed);
	struct frames g = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.type[0], CTRJ_AGENT_RELEASE);
	assert_int_equal(g.session[0], 0);
	assert_true(cj_agent_mux_released(w->m));
	close(c);
	c = client(w);
	drain(c, CTRJ_AGENT_FROM_GUEST);
	start(w, c);
	put(c, f, ctrj_agent_enc_data(f, CTRJ_AGENT_RELEASE, 0, NULL, 0));
	pump(w);
	assert_true(drain(c, CTRJ_AGENT_FROM_GUEST).closed);
	g = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(g.n, 1); /* only the kill of its process */
	assert_int_equal(g.type[0], CTRJ_AGENT_SIGNAL);
	close(c);
}

/* kill -s: a signal for the workload goes on the main session whatever
 * its stdio (none here); none before the guest greeted. */
static void test_workload_signal_without_stdio(void **state)
{
	struct world *w = *state;

	assert_false(cj_agent_mux_released(w->m));
	assert_int_equal(cj_agent_mux_signal(w->m, SIGUSR1), -1);
	greet(w);
	assert_int_equal(cj_agent_mux_signal(w->m, SIGUSR1), 0);
	pump(w);
	struct frames g = drain(w->chan[1], CTRJ_AGENT_FROM_HOST);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.type[0], CTRJ_AGENT_SIGNAL);
	assert_int_equal(g.session[0], CTRJ_AGENT_MAIN_SESSION);
	assert_int_equal(g.a[0], SIGUSR1);
}

/* ---- a channel opened on demand (Firecracker's vsock) ------------------ */

/* A fake Firecracker in the run's directory (agent.vsock): served from
 * pump, it answers CONNECT with OK (the guest's end becomes w->chan[1]),
 * closes (no guest listener yet), or answers garbage. */
enum od_mode { OD_OK, OD_CLOSE, OD_GARBAGE, OD_SILENT };
static enum od_mode od_mode;
static int od_calls, od_dirfd = -1, od_silent_fd = -1;

static int od_target(void *ctx, struct cj_fc_vsock_target *t, struct cj_err *err)
{
	(void)err;
	(void)ctx;
	*t = (struct cj_fc_vsock_target){.dirfd = od_dirfd,
	                                 .name = "agent.vsock",
	                                 .uid = geteuid(),
	                                 .pid = getpid(),
	                                 .port = 1024};
	return 0;
}

static void od_serve(struct world *w)
{
	char req[32] = "";
	int fd = accept4(od_lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	od_calls++;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_int_equal(recv(fd, req, sizeof req - 1, 0), 13);
	assert_string_equal(req, "CONNECT 1024\n");
	if (od_mode == OD_SILENT) {
		od_silent_fd = fd;
		return;
	}
	if (od_mode == OD_OK)
		assert_int_equal(send(fd, "OK 7\n", 5, 0), 5);
	else if (od_mode == OD_GARBAGE)
		assert_int_equal(send(fd, "NO\n", 3, 0), 3);
	if (od_mode != OD_OK) {
		close(fd);
		return;
	}
	if (w->chan[1] >= 0)
		close(w->chan[1]);
	w->chan[1] = fd;
}

/* The loop's turns for ms, as the supervisor gives them (handle after
 * every poll, its timeout bounded by the mux's); the slowest turn. */
static uint64_t od_pump(struct world *w, int ms)
{
	uint64_t end = cj_now_ns() + (uint64_t)ms * 1000000u, slowest = 0;

	while (cj_now_ns() < end) {
		struct pollfd p[CJ_AGENT_MUX_POLL_MAX + 1];
		int n = cj_agent_mux_pollfds(w->m, p), t = cj_agent_mux_timeout(w->m);
		p[n] = (struct pollfd){.fd = od_lfd, .events = POLLIN};
		poll(p, (nfds_t)n + 1, t < 0 || t > 5 ? 5 : t);
		uint64_t t0 = cj_now_ns();
		cj_agent_mux_handle(w->m, p, n);
		if (cj_now_ns() - t0 > slowest)
			slowest = cj_now_ns() - t0;
		od_serve(w);
	}
	return slowest / 1000000u;
}

static int setup_on_demand(void **state)
{
	struct world *w = calloc(1, sizeof *w);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct cj_err err = {0};

	snprintf(w->dir, sizeof w->dir, "/tmp/ctrj-mux-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	w->chan[0] = w->chan[1] = -1;
	w->m = cj_agent_mux_open(-1, w->dir, &err);
	assert_non_null(w->m);
	cj_agent_mux_on_demand(w->m, od_target, w, 600);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/agent.vsock", w->dir);
	od_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(od_lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(od_lfd, 8), 0);
	od_dirfd = open(w->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	od_calls = 0;
	od_mode = OD_OK;
	*state = w;
	return 0;
}

static int teardown_on_demand(void **state)
{
	struct world *w = *state;
	char path[96];

	close(od_lfd);
	od_lfd = -1;
	close(od_dirfd);
	if (od_silent_fd >= 0)
		close(od_silent_fd);
	od_silent_fd = -1;
	snprintf(path, sizeof path, "%s/agent.vsock", w->dir);
	unlink(path);
	return teardown(state);
}

static struct exit_seen refusal(int c)
{
	struct ctrj_agent_dec d;
	struct exit_seen ex = {0};
	uint8_t b[512];
	ssize_t n = recv(c, b, sizeof b, MSG_DONTWAIT);

	assert_true(n > 0);
	assert_int_equal(ctrj_agent_dec_init(&d, CTRJ_AGENT_FROM_GUEST), 0);
	assert_int_equal(ctrj_agent_dec_feed(&d, b, (size_t)n, keep_exit, &ex, NULL, 0), 0);
	ctrj_agent_dec_free(&d);
	return ex;
}

/* No connection before a client; while the guest does not listen the
 * client waits and the loop goes on (no turn blocks), retried until the
 * bound; then the client's start failure says why. */
static void test_on_demand_channel(void **state)
{
	struct world *w = *state;
	struct frames fr;
	uint8_t b[512];
	int c;

	od_pump(w, 20);
	assert_int_equal(od_calls, 0);
	assert_int_equal(cj_agent_mux_timeout(w->m), -1);
	od_mode = OD_CLOSE;
	c = client(w);
	assert_true(od_pump(w, 150) < 100);
	assert_true(od_calls >= 2);                               /* retried */
	assert_int_equal(recv(c, b, sizeof b, MSG_DONTWAIT), -1); /* waiting */
	od_pump(w, 400);
	struct exit_seen ex = refusal(c);
	assert_int_equal(ex.kind, CTRJ_AGENT_START_FAILED);
	assert_int_equal(ex.code, 126);
	assert_non_null(strstr(ex.msg, "nothing in the guest listens"));
	/* its START, sent meanwhile, goes nowhere and breaks nothing */
	send_start(w, c);
	assert_int_equal(recv(c, b, sizeof b, MSG_DONTWAIT), -1);
	close(c);
	od_pump(w, 20);

	/* the guest listens late: the waiting client is served then */
	int calls = od_calls;
	c = client(w);
	od_pump(w, 60);
	od_mode = OD_OK;
	od_pump(w, 250);
	assert_true(od_calls > calls + 1);
	assert_true(w->chan[1] >= 0);
	assert_int_equal(cj_agent_mux_timeout(w->m), -1);
	greet(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.type[0], CTRJ_AGENT_HELLO);
	start(w, c);

	/* the guest side goes: the session with it; the next client reconnects */
	close(w->chan[1]);
	w->chan[1] = -1;
	od_pump(w, 20);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_true(fr.closed);
	close(c);
	calls = od_calls;
	c = client(w);
	od_pump(w, 30);
	assert_int_equal(od_calls, calls + 1);
	greet(w);
	fr = drain(c, CTRJ_AGENT_FROM_GUEST);
	assert_int_equal(fr.type[0], CTRJ_AGENT_HELLO);
	close(c);
}

/* Garbage for an answer fails at once, not after the bound; a silent
 * Firecracker is given up at the bound; neither blocks a turn. */
static void test_on_demand_garbage_and_silence(void **state)
{
	struct world *w = *state;
	int c;

	od_mode = OD_GARBAGE;
	c = client(w);
	assert_true(od_pump(w, 60) < 100);
	assert_int_equal(od_calls, 1);
	struct exit_seen ex = refusal(c);
	assert_int_equal(ex.code, 126);
	assert_non_null(strstr(ex.msg, "answered CONNECT 1024 with 'NO'"));
	close(c);

	od_mode = OD_SILENT;
	c = client(w);
	uint64_t t0 = cj_now_ns();
	assert_true(od_pump(w, 200) < 100);
	assert_int_equal(recv(c, (uint8_t[8]){0}, 8, MSG_DONTWAIT), -1); /* still waiting */
	od_pump(w, 400);
	ex = refusal(c);
	assert_non_null(strstr(ex.msg, "did not answer"));
	assert_true((cj_now_ns() - t0) / 1000000u < 1000);
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
	    cmocka_unit_test_setup_teardown(test_workload_session, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release_goes_to_session_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_workload_signal_without_stdio, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_demand_channel, setup_on_demand,
	                                    teardown_on_demand),
	    cmocka_unit_test_setup_teardown(test_on_demand_garbage_and_silence, setup_on_demand,
	                                    teardown_on_demand),
	};
	return cmocka_run_group_tests_name("agent_mux", tests, NULL, NULL);
}
