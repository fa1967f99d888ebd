/* SPDX-License-Identifier: Apache-2.0 */
/* Firecracker's vsock handshake against a fake Firecracker: a thread
 * listening on a unix socket that answers CONNECT as scripted (OK with the
 * guest's bytes right behind it, garbage, an endless line, a closed
 * connection, silence, a guest listener that comes up late), and the
 * socket's path guarded against symlinks and foreign listeners. */
#include "vmm/fc_vsock.h"

#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

enum mode { GOOD, GARBAGE, LONG_LINE, CLOSE, SILENT, LATE };

struct peer {
	char dir[64], path[96];
	int lfd, dirfd;
	enum mode mode;
	int closes; /* LATE: connections closed before the listener is "up" */
	int accepted;
	int silent_ms; /* SILENT: how long (400 ms when 0) */
	char got[64];  /* the last request */
	pthread_t thread;
};

static void serve_one(struct peer *p, int fd)
{
	char req[64] = "";
	ssize_t n = 0;

	/* the request, up to its newline */
	while (n < (ssize_t)sizeof req - 1 && (n == 0 || req[n - 1] != '\n')) {
		ssize_t r = read(fd, req + n, 1);
		if (r <= 0)
			break;
		n += r;
	}
	memcpy(p->got, req, sizeof req);
	if (p->mode == GOOD || (p->mode == LATE && p->accepted > p->closes)) {
		static const char ok[] = "OK 1073741824\nHELLO";
		send(fd, ok, sizeof ok - 1, MSG_NOSIGNAL);
	} else if (p->mode == GARBAGE) {
		send(fd, "NOPE 1\n", 7, MSG_NOSIGNAL);
	} else if (p->mode == LONG_LINE) {
		char a[200];
		memset(a, 'A', sizeof a);
		send(fd, a, sizeof a, MSG_NOSIGNAL);
	} else if (p->mode == SILENT) {
		usleep(p->silent_ms ? (useconds_t)p->silent_ms * 1000 : 400 * 1000);
	}
	usleep(50 * 1000); /* let the client read before the close */
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	int fd;

	while ((fd = accept(p->lfd, NULL, NULL)) >= 0) {
		p->accepted++;
		serve_one(p, fd);
		close(fd);
	}
	return NULL;
}

static int setup(void **state)
{
	struct peer *p = calloc(1, sizeof *p);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(p->dir, sizeof p->dir, "/tmp/cj-fcvsock-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof p->path, "%s/v.sock", p->dir);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(p->lfd, 8), 0);
	p->dirfd = open(p->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(p->dirfd >= 0);
	*state = p;
	return 0;
}

static void start(struct peer *p, enum mode mode)
{
	p->mode = mode;
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static int teardown(void **state)
{
	struct peer *p = *state;

	shutdown(p->lfd, SHUT_RDWR); /* ends the thread's accept */
	if (p->thread)
		pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->dirfd);
	unlink(p->path);
	char link[128];
	snprintf(link, sizeof link, "%s/link.sock", p->dir);
	unlink(link);
	rmdir(p->dir);
	free(p);
	return 0;
}

static struct cj_fc_vsock_target target(struct peer *p, const char *name)
{
	return (struct cj_fc_vsock_target){
	    .dirfd = p->dirfd, .name = name, .uid = geteuid(), .pid = getpid(), .port = 1024};
}

static uint64_t ms_since(uint64_t t0)
{
	return (cj_now_ns() - t0) / 1000000u;
}

static void parse_ok(void **state)
{
	uint32_t v = 0;
	(void)state;
	assert_int_equal(cj_fc_vsock_parse_ok("OK 1073741824", 13, &v), 0);
	assert_int_equal(v, 1073741824u);
	assert_int_equal(cj_fc_vsock_parse_ok("OK 4294967295", 13, &v), 0);
	assert_int_equal(v, UINT32_MAX);
	static const char *bad[] = {"OK",     "OK ",    "ok 1", "OK 1 ",         "OK -1",
	                            "OK +1",  "OK 1x",  "KO 1", "OK 4294967296", "OK  1",
	                            "OK 0x1", "OK 1\r", "",     "OK 99999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(cj_fc_vsock_parse_ok(bad[i], strlen(bad[i]), &v), -1);
}

/* OK: the fd is the guest's stream, nothing of it eaten by the handshake. */
static void good_reply(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_err err = {0};
	char buf[16] = "";

	start(p, GOOD);
	int fd = cj_fc_vsock_connect(&t, 2000, &err);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof buf), 5);
	assert_memory_equal(buf, "HELLO", 5);
	assert_string_equal(p->got, "CONNECT 1024\n");
	close(fd);
}

static void fails_fast(struct peer *p, enum mode mode, const char *says)
{
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_err err = {0};
	char msg[CJ_ERR_STR_MAX];
	uint64_t t0 = cj_now_ns();

	start(p, mode);
	assert_int_equal(cj_fc_vsock_connect(&t, 3000, &err), -1);
	assert_true(ms_since(t0) < 1500); /* no retry on a wrong answer */
	assert_int_equal(err.errnum, EPROTO);
	assert_int_equal(p->accepted, 1);
	cj_err_str(&err, msg, sizeof msg);
	assert_non_null(strstr(msg, says));
	assert_null(strchr(msg, '\n'));
}

static void garbage_reply(void **state)
{
	fails_fast(*state, GARBAGE, "with 'NOPE 1'");
}

static void long_line(void **state)
{
	fails_fast(*state, LONG_LINE, "longer than");
}

/* No guest listener, ever: retried, then given up within the bound. */
static void closed_connection(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_err err = {0};
	uint64_t t0 = cj_now_ns();

	start(p, CLOSE);
	assert_int_equal(cj_fc_vsock_connect(&t, 600, &err), -1);
	/* even when the last attempt runs out of time before the close */
	assert_int_equal(err.errnum, ECONNRESET);
	assert_true(ms_since(t0) >= 550 && ms_since(t0) < 1500);
	assert_true(p->accepted >= 2);
}

/* A guest listener that comes up after a few attempts. */
static void slow_listener(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_err err = {0};

	p->closes = 3;
	start(p, LATE);
	int fd = cj_fc_vsock_connect(&t, 5000, &err);
	assert_true(fd >= 0);
	assert_int_equal(p->accepted, 4);
	close(fd);
}

/* Accepted, never answered: bounded. */
static void silent(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_err err = {0};
	uint64_t t0 = cj_now_ns();

	start(p, SILENT);
	assert_int_equal(cj_fc_vsock_connect(&t, 300, &err), -1);
	assert_int_equal(err.errnum, ETIMEDOUT);
	assert_true(ms_since(t0) < 1000);
}

/* A symlink in the socket's place is never followed, whatever it names. */
static void symlink_refused(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "link.sock");
	struct cj_err err = {0};
	char link[128];

	snprintf(link, sizeof link, "%s/link.sock", p->dir);
	assert_int_equal(symlink(p->path, link), 0);
	start(p, GOOD);
	assert_int_equal(cj_fc_vsock_connect(&t, 500, &err), -1);
	assert_int_equal(p->accepted, 0);
	assert_non_null(strstr(err.msg, "not a socket"));
}

/* A listener that is not the VMM (another pid) is refused before CONNECT. */
static void foreign_listener(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_err err = {0};

	t.pid = getpid() + 1;
	start(p, GOOD);
	assert_int_equal(cj_fc_vsock_connect(&t, 500, &err), -1);
	assert_non_null(strstr(err.msg, "refusing to talk"));
}

/* No socket at all: retried (it may not exist yet), bounded. */
static void missing_socket(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "none.sock");
	struct cj_err err = {0};
	uint64_t t0 = cj_now_ns();

	assert_int_equal(cj_fc_vsock_connect(&t, 200, &err), -1);
	assert_int_equal(err.errnum, ENOENT);
	assert_true(ms_since(t0) >= 150 && ms_since(t0) < 1000);
}

/* Step by step, as the supervisor's poll loop drives it: no step waits
 * (the listener is late, then silent for a while, then answers), the
 * loop's waits are bounded by what pollfd says, and the outcome is that
 * of the blocking connect. */
static int drive(struct cj_fc_vsock_conn *c, struct cj_err *err, uint64_t *slowest_ms, int *steps)
{
	int r;

	*slowest_ms = 0;
	*steps = 0;
	for (;;) {
		uint64_t t0 = cj_now_ns();
		r = cj_fc_vsock_conn_step(c, err);
		if (ms_since(t0) > *slowest_ms)
			*slowest_ms = ms_since(t0);
		++*steps;
		if (r != CJ_FC_VSOCK_PENDING)
			return r;
		struct pollfd pf;
		int ms = cj_fc_vsock_conn_pollfd(c, &pf);
		assert_true(ms >= 0);
		poll(&pf, 1, ms);
	}
}

/* The peer in mode, a connection to it driven to its end within
 * timeout_ms: its result; the slowest step in *slowest, how many in *steps. */
static int drive_mode(struct peer *p, enum mode mode, int timeout_ms, struct cj_err *err,
                      uint64_t *slowest, int *steps)
{
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_fc_vsock_conn c;

	start(p, mode);
	cj_fc_vsock_conn_init(&c);
	assert_int_equal(cj_fc_vsock_conn_pollfd(&c, &(struct pollfd){0}), -1); /* idle */
	cj_fc_vsock_conn_start(&c, &t, timeout_ms);
	int r = drive(&c, err, slowest, steps);
	assert_false(cj_fc_vsock_conn_active(&c)); /* idle again */
	return r;
}

static void steps_late_listener(void **state)
{
	struct peer *p = *state;
	struct cj_err err = {0};
	uint64_t slowest;
	int steps;
	char b[8] = "";

	p->closes = 3;
	int fd = drive_mode(p, LATE, 5000, &err, &slowest, &steps);
	assert_true(fd >= 0);
	assert_true(slowest < 100); /* no step waits (a loaded machine may pause one) */
	assert_true(steps > 4);     /* retried: the loop had its turns meanwhile */
	assert_int_equal(recv(fd, b, 5, MSG_WAITALL), 5);
	assert_memory_equal(b, "HELLO", 5);
	assert_string_equal(p->got, "CONNECT 1024\n");
	close(fd);
}

static void steps_silent_then_timeout(void **state)
{
	struct cj_err err = {0};
	uint64_t slowest, t0 = cj_now_ns();
	int steps;

	assert_int_equal(drive_mode(*state, SILENT, 200, &err, &slowest, &steps), -1);
	assert_true(slowest < 100); /* no step waits (a loaded machine may pause one) */
	assert_true(ms_since(t0) >= 200 && ms_since(t0) < 1000);
	assert_int_equal(err.errnum, ETIMEDOUT);
}

static void steps_garbage_fails_at_once(void **state)
{
	struct peer *p = *state;
	struct cj_err err = {0};
	uint64_t slowest, t0 = cj_now_ns();
	int steps;

	assert_int_equal(drive_mode(p, GARBAGE, 5000, &err, &slowest, &steps), -1);
	assert_int_equal(err.errnum, EPROTO);
	assert_true(ms_since(t0) < 1000);
	assert_int_equal(p->accepted, 1);
}

/* A Firecracker silent for longer than an attempt's reply bound (2 s)
 * fails the connection then, long before its overall bound, and is not
 * asked again. */
static void steps_silence_bounded_per_attempt(void **state)
{
	struct peer *p = *state;
	struct cj_err err = {0};
	uint64_t slowest, t0 = cj_now_ns();
	int steps;

	p->silent_ms = 3500;
	assert_int_equal(drive_mode(p, SILENT, 30000, &err, &slowest, &steps), -1);
	assert_int_equal(err.errnum, ETIMEDOUT);
	assert_true(ms_since(t0) >= 2000 && ms_since(t0) < 3200);
	assert_int_equal(p->accepted, 1);
}

/* A connection under way, cancelled: its socket closed, idle again. */
static void steps_cancel(void **state)
{
	struct peer *p = *state;
	struct cj_fc_vsock_target t = target(p, "v.sock");
	struct cj_fc_vsock_conn c;
	struct cj_err err = {0};
	struct pollfd pf;

	start(p, SILENT);
	cj_fc_vsock_conn_init(&c);
	cj_fc_vsock_conn_start(&c, &t, 5000);
	assert_int_equal(cj_fc_vsock_conn_step(&c, &err), CJ_FC_VSOCK_PENDING);
	cj_fc_vsock_conn_pollfd(&c, &pf);
	assert_true(pf.fd >= 0);
	cj_fc_vsock_conn_cancel(&c);
	assert_int_equal(fcntl(pf.fd, F_GETFD), -1);
	assert_false(cj_fc_vsock_conn_active(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_ok),
	    cmocka_unit_test_setup_teardown(good_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(garbage_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(long_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(closed_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(slow_listener, setup, teardown),
	    cmocka_unit_test_setup_teardown(silent, setup, teardown),
	    cmocka_unit_test_setup_teardown(symlink_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(foreign_listener, setup, teardown),
	    cmocka_unit_test_setup_teardown(missing_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(steps_late_listener, setup, teardown),
	    cmocka_unit_test_setup_teardown(steps_silent_then_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(steps_garbage_fails_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(steps_silence_bounded_per_attempt, setup, teardown),
	    cmocka_unit_test_setup_teardown(steps_cancel, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
