/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's exec agent (guest/agent.c), run on the host on a socket pair
 * with this test as the host: processes started on request, stdout and
 * stderr apart, the exit status after the output, start failures, stdin,
 * signals, and output held at one window until credit comes back. The
 * test plays PID 1: it serves the agent and reaps for it. */
#include "agent.h"
#include "init.h" /* guest_say, stubbed: no console here */

#include "ctrj/agent.h"
#include "ctrj/protocol.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

void guest_say(const char *fmt, ...)
{
	(void)fmt;
}

static int host = -1, idle_fd = -1; /* our end; a never-readable "signal fd" */
static struct ctrj_agent_dec dec;

struct seen {
	bool hello, exited;
	uint32_t kind, code;
	char msg[CTRJ_AGENT_MSG_MAX + 1];
	size_t out_len, err_len, stdin_credit;
	char out[256], err[256];
	bool data_after_exit;
};

static int on_frame(const struct ctrj_agent_frame *f, void *ctx)
{
	struct seen *s = ctx;

	if (f->type == CTRJ_AGENT_HELLO) {
		s->hello = f->a == CTRJ_AGENT_VERSION;
		return 0;
	}
	if (f->type == CTRJ_AGENT_STDOUT || f->type == CTRJ_AGENT_STDERR) {
		bool out = f->type == CTRJ_AGENT_STDOUT;
		size_t *len = out ? &s->out_len : &s->err_len;
		char *buf = out ? s->out : s->err;
		s->data_after_exit |= s->exited;
		if (*len + f->len < sizeof s->out)
			memcpy(buf + *len, f->payload, f->len);
		*len += f->len;
	} else if (f->type == CTRJ_AGENT_CREDIT) {
		s->stdin_credit += f->b;
	} else if (f->type == CTRJ_AGENT_EXIT) {
		s->exited = true;
		s->kind = f->a;
		s->code = f->b;
		ctrj_agent_exit_msg(f, s->msg);
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Serve and reap for up to ms, or until the session exited. */
static void pump(struct seen *s, int ms)
{
	int64_t end = now_ms() + ms;
	uint8_t b[65536];

	while (now_ms() < end && !s->exited) {
		int st;
		pid_t p;
		ssize_t n;

		agent_serve(NULL, idle_fd, 10);
		while ((p = waitpid(-1, &st, WNOHANG)) > 0)
			agent_reaped(NULL, p, st);
		while ((n = recv(host, b, sizeof b, MSG_DONTWAIT)) > 0)
			assert_int_equal(
			    ctrj_agent_dec_feed(&dec, b, (size_t)n, on_frame, s, NULL, 0), 0);
	}
}

static void put(const uint8_t *f, size_t n)
{
	assert_int_equal(write(host, f, n), (ssize_t)n);
}

static void start(uint32_t id, char **argv, bool close_stdin)
{
	struct ctrj_agent_start st = {.argv = argv};
	uint8_t *f, c[32];
	size_t n;

	while (argv[st.argc])
		st.argc++;
	assert_int_equal(ctrj_agent_enc_start(&st, id, &f, &n, NULL, 0), 0);
	put(f, n);
	free(f);
	if (close_stdin)
		put(c, ctrj_agent_enc_data(c, CTRJ_AGENT_STDIN_CLOSE, id, NULL, 0));
}

static int setup(void **state)
{
	static char *env[] = {"PATH=/usr/bin:/bin", "FROM_BASE=1", NULL};
	int sp[2], pp[2];
	struct seen s = {0};

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	host = sp[1];
	idle_fd = pp[0];
	assert_int_equal(ctrj_agent_dec_init(&dec, CTRJ_AGENT_FROM_GUEST), 0);
	assert_true(agent_open_fd(sp[0], env, NULL, NULL));
	pump(&s, 200);
	assert_true(s.hello);
	return 0;
}

static void test_streams_apart_and_status_last(void **state)
{
	char *argv[] = {"sh", "-c", "echo out$FROM_BASE; echo err >&2; exit 3", NULL};
	struct seen s = {0};

	(void)state;
	start(1, argv, true);
	pump(&s, 10000);
	assert_true(s.exited);
	assert_int_equal(s.kind, CTRJ_AGENT_EXITED);
	assert_int_equal(s.code, 3);
	assert_int_equal(s.out_len, 5);
	assert_memory_equal(s.out, "out1\n", 5);
	assert_int_equal(s.err_len, 4);
	assert_memory_equal(s.err, "err\n", 4);
	assert_false(s.data_after_exit);
}

static void test_start_failures(void **state)
{
	char *missing[] = {"/no/such/command", NULL};
	char *dir[] = {"/", NULL};
	struct seen s = {0};

	(void)state;
	start(2, missing, true);
	pump(&s, 10000);
	assert_int_equal(s.kind, CTRJ_AGENT_START_FAILED);
	assert_int_equal(s.code, 127);
	assert_non_null(strstr(s.msg, "/no/such/command"));
	memset(&s, 0, sizeof s);
	start(3, dir, true);
	pump(&s, 10000);
	assert_int_equal(s.kind, CTRJ_AGENT_START_FAILED);
	assert_int_equal(s.code, 126);
}

static void test_stdin_and_signal(void **state)
{
	char *cat[] = {"cat", NULL};
	char *sleeper[] = {"sleep", "30", NULL};
	struct seen s = {0};
	uint8_t f[64];

	(void)state;
	start(4, cat, false);
	put(f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN, 4, "hello", 5));
	put(f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN_CLOSE, 4, NULL, 0));
	pump(&s, 10000);
	assert_int_equal(s.code, 0);
	assert_int_equal(s.out_len, 5);
	assert_memory_equal(s.out, "hello", 5);
	assert_int_equal(s.stdin_credit, 5); /* what cat took is given back */

	memset(&s, 0, sizeof s);
	start(5, sleeper, true);
	pump(&s, 300);
	assert_false(s.exited);
	put(f, ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, 5, SIGKILL));
	pump(&s, 10000);
	assert_int_equal(s.kind, CTRJ_AGENT_SIGNALED);
	assert_int_equal(s.code, SIGKILL);
}

/* A process writing more than a window: the agent stops at the window
 * until the host gives credit back, then the rest comes. */
static void test_output_held_at_the_window(void **state)
{
	char *argv[] = {"head", "-c", "1000000", "/dev/zero", NULL};
	struct seen s = {0};
	uint8_t f[64];
	size_t credited = 0;

	(void)state;
	start(6, argv, true);
	pump(&s, 1500);
	assert_int_equal(s.out_len, CTRJ_AGENT_WINDOW);
	assert_false(s.exited);
	for (int i = 0; i < 2000 && !s.exited; i++) {
		if (s.out_len > credited) {
			put(f,
			    ctrj_agent_enc_u32x2(f, CTRJ_AGENT_CREDIT, 6, CTRJ_AGENT_STREAM_STDOUT,
			                         (uint32_t)(s.out_len - credited)));
			credited = s.out_len;
		}
		pump(&s, 20);
	}
	assert_true(s.exited);
	assert_int_equal(s.code, 0);
	assert_int_equal(s.out_len, 1000000);
}

/* Pump until what came on stdout contains want (or ms passed). */
static void pump_until(struct seen *s, const char *want, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end && !strstr(s->out, want))
		pump(s, 20);
}

/* The workload's own session: made before the fork, its fds set up in
 * the child, its streams apart, no exit status (the control disk has it),
 * and the drain done once the host gave all credit back. */
static void run_main(uint32_t flags, const char *script, struct seen *s, pid_t *pid)
{
	assert_true(agent_main_open(flags, 0, 0));
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		if (agent_main_child_stdio() < 0)
			_exit(99);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(98);
	}
	agent_main_started(*pid);
	(void)s;
}

static void test_main_session(void **state)
{
	struct seen s = {0};
	uint8_t f[64];
	pid_t pid;

	(void)state;
	run_main(CTRJ_STDIO_AGENT | CTRJ_STDIO_STDIN, "read x; echo out-$x; echo err-$x >&2", &s,
	         &pid);
	put(f, ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN, CTRJ_AGENT_MAIN_SESSION, "hi\n", 3));
	pump_until(&s, "out-hi", 5000);
	pump(&s, 300); /* stderr, and nothing more */
	assert_string_equal(s.out, "out-hi\n");
	assert_string_equal(s.err, "err-hi\n");
	assert_int_equal(s.stdin_credit, 3);
	assert_false(s.exited); /* no EXIT frame for the workload, reaped or not */
	waitpid(pid, NULL, 0);
	/* the host gives the credit back: the drain ends at once */
	put(f, ctrj_agent_enc_u32x2(f, CTRJ_AGENT_CREDIT, CTRJ_AGENT_MAIN_SESSION,
	                            CTRJ_AGENT_STREAM_STDOUT, (uint32_t)s.out_len));
	put(f, ctrj_agent_enc_u32x2(f, CTRJ_AGENT_CREDIT, CTRJ_AGENT_MAIN_SESSION,
	                            CTRJ_AGENT_STREAM_STDERR, (uint32_t)s.err_len));
	int64_t t0 = now_ms();
	agent_main_drain(5000);
	assert_true(now_ms() - t0 < 2000);
}

static void test_main_session_without_stdin_reads_eof_and_drain_times_out(void **state)
{
	struct seen s = {0};
	pid_t pid;

	(void)state;
	run_main(CTRJ_STDIO_AGENT, "cat; echo eof-$?", &s, &pid);
	pump_until(&s, "eof-0", 5000);
	assert_string_equal(s.out, "eof-0\n");
	waitpid(pid, NULL, 0);
	/* no credit back: the drain gives up at its time limit */
	int64_t t0 = now_ms();
	agent_main_drain(300);
	assert_true(now_ms() - t0 >= 250);
}

/* CTRJ_AGENT_SIGNAL on the main session reaches the workload without its
 * stdio on the channel (a terminal on the console): one that comes before
 * the workload runs waits for it; none reaches it once it was reaped. */
static void test_workload_signal_waits_for_the_start(void **state)
{
	struct seen s = {0};
	uint8_t f[64];
	int st;

	(void)state;
	put(f, ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, CTRJ_AGENT_MAIN_SESSION, SIGUSR1));
	pump(&s, 100);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(98);
	}
	agent_workload_started(pid); /* the kept USR1 now */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "1", (char *)NULL);
		_exit(98);
	}
	agent_workload_started(pid);
	put(f, ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, CTRJ_AGENT_MAIN_SESSION, SIGUSR2));
	for (int i = 0; i < 10; i++) /* served, not reaped: pump would reap it */
		agent_serve(NULL, idle_fd, 10);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR2);
	agent_workload_ended();
	put(f, ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, CTRJ_AGENT_MAIN_SESSION, SIGKILL));
	pump(&s, 100); /* dropped: nothing to assert but that we live */
}

/* A connection on a unix listener, as vsock's would come: greeted. */
static void connect_host(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct seen s = {0};

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	host = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(host, (struct sockaddr *)&sa, sizeof sa), 0);
	ctrj_agent_dec_free(&dec);
	assert_int_equal(ctrj_agent_dec_init(&dec, CTRJ_AGENT_FROM_GUEST), 0);
	pump(&s, 300);
	assert_true(s.hello);
}

/* The vsock way (last: it leaves the agent listening): one host at a
 * time, each greeted; a host that leaves takes its sessions with it and
 * the next one starts clean, on the same session numbers. */
static void test_listener_serves_one_host_after_another(void **state)
{
	static char *env[] = {"PATH=/usr/bin:/bin", NULL};
	char *sleeper[] = {"sh", "-c", "echo $$ >/dev/null; exec sleep 30", NULL};
	char *echo[] = {"echo", "again", NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/cj-gagent-XXXXXX";
	struct seen s = {0};
	int lfd;

	(void)state;
	close(host); /* the socket pair's host leaves: the agent drops it */
	pump(&s, 100);
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/agent.sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_true(agent_listen_fd(lfd, env, NULL, NULL));

	connect_host(sa.sun_path);
	start(1, sleeper, true);
	pump(&s, 300);
	assert_false(s.exited);
	close(host); /* mid-session */
	pump(&s, 200);

	connect_host(sa.sun_path);
	memset(&s, 0, sizeof s);
	start(1, echo, true);
	pump(&s, 10000);
	assert_true(s.exited);
	assert_int_equal(s.code, 0);
	assert_int_equal(s.out_len, 6);
	assert_memory_equal(s.out, "again\n", 6);
	close(host);
	pump(&s, 50);
	unlink(sa.sun_path);
	rmdir(dir);
}

/* Before the workload starts with its stdio on a listener (vsock), the
 * host's connection is waited for, bounded: none within the bound is
 * false (the workload keeps the console); one that comes is greeted. */
static void test_wait_host_bounded(void **state)
{
	static char *env[] = {"PATH=/usr/bin:/bin", NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/cj-gagent-XXXXXX";
	struct seen s = {0};
	struct timespec t0, t1;
	int lfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/agent.sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 1), 0);
	pump(&s, 200); /* the last test's host is gone */
	assert_false(agent_up());
	assert_true(agent_listen_fd(lfd, env, NULL, NULL));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_false(agent_wait_host(300));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 300 && ms < 2000);

	/* a stop pending (blocked, as PID 1 has it) ends the wait at once */
	sigset_t term, old;
	int sig;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	assert_int_equal(sigprocmask(SIG_BLOCK, &term, &old), 0);
	raise(SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_false(agent_wait_host(5000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	assert_int_equal(sigwait(&term, &sig), 0);
	assert_int_equal(sig, SIGTERM);
	sigprocmask(SIG_SETMASK, &old, NULL);

	host = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(host, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_true(agent_wait_host(5000));
	assert_true(agent_up());
	ctrj_agent_dec_free(&dec);
	assert_int_equal(ctrj_agent_dec_init(&dec, CTRJ_AGENT_FROM_GUEST), 0);
	pump(&s, 300);
	assert_true(s.hello);
	close(host);
	pump(&s, 50);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_streams_apart_and_status_last),
	    cmocka_unit_test(test_start_failures),
	    cmocka_unit_test(test_stdin_and_signal),
	    cmocka_unit_test(test_output_held_at_the_window),
	    cmocka_unit_test(test_main_session),
	    cmocka_unit_test(test_main_session_without_stdin_reads_eof_and_drain_times_out),
	    cmocka_unit_test(test_workload_signal_waits_for_the_start),
	    cmocka_unit_test(test_listener_serves_one_host_after_another),
	    cmocka_unit_test(test_wait_host_bounded),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("guest_agent", tests, setup, NULL);
}
