/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest init's PID 1 duties (guest/pid1.c), run on the host: each test
 * forks a supervisor that makes itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER), sets up signals as the init does, forks a
 * workload and runs pid1_supervise on it, then reports the wait status,
 * the exit code it maps to and whether any child (a zombie) is left.
 * No VM: orphans reparent to the supervisor as they would to PID 1.
 */
#include "ctrj/protocol.h"
#include "pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* How long the orphan of leave_orphan(0) lives: long against the time a
 * loaded host takes to reap the workload, so the negative control cannot
 * pass by accident. */
#define ORPHAN_LIFE_MS 1000

/* What the supervisor reports back. */
struct outcome {
	int wstatus;      /* the workload's wait status, from pid1_supervise */
	int code;         /* ctrj_wait_code(wstatus) */
	int no_children;  /* nothing left to reap after pid1_supervise returned */
	int64_t took_ms;  /* time pid1_supervise took */
	int setup_failed; /* pid1_setup_signals or prctl failed */
	int served;       /* calls of the serve hook */
	int reaped;       /* other children the reaped hook was given */
};

/* A workload: runs in the forked child after pid1_child_setup; writes a
 * byte to ready when the test may signal the supervisor. */
typedef void (*workload_fn)(int arg, int ready);

struct scenario {
	workload_fn fn;
	int arg;
	struct pid1_opts opts;
	bool subreaper; /* false only for the negative control */
};

struct run {
	pid_t supervisor;
	int ready;  /* read end: the workload is ready */
	int report; /* read end: struct outcome */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_byte(int fd)
{
	if (write(fd, "x", 1) != 1)
		_exit(200);
}

/* cmocka catches SIGSEGV and friends in the test process; the forked
 * processes die of them as a workload would (exec would reset them). */
static void default_handlers(void)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
}

/* The hooks a service (the exec agent) gives PID 1, counting. serve waits
 * on sig_fd only: PID 1 must wake it for its signals. */
static int hook_served, hook_reaped;

static void serve_hook(void *ctx, int sig_fd, int timeout_ms)
{
	struct pollfd p = {.fd = sig_fd, .events = POLLIN};

	(void)ctx;
	hook_served++;
	poll(&p, 1, timeout_ms);
}

static void reaped_hook(void *ctx, pid_t pid, int wstatus)
{
	(void)ctx, (void)pid, (void)wstatus;
	hook_reaped++;
}

static __attribute__((noreturn)) void supervisor(const struct scenario *sc, int ready, int report)
{
	struct outcome out = {0};
	int64_t t0;
	pid_t child;

	default_handlers();
	if ((sc->subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) || pid1_setup_signals() < 0)
		out.setup_failed = 1;
	child = fork();
	if (child < 0)
		_exit(201);
	if (child == 0) {
		close(report);
		pid1_child_setup();
		prctl(PR_SET_DUMPABLE, 0); /* no core files from the signal deaths */
		sc->fn(sc->arg, ready);
		_exit(0);
	}
	close(ready);
	/* First the workload's pid: on a timeout the test kills its group. */
	if (write(report, &child, sizeof child) != (ssize_t)sizeof child)
		_exit(202);
	t0 = now_ms();
	out.wstatus = pid1_supervise(child, &sc->opts, NULL);
	out.took_ms = now_ms() - t0;
	out.code = ctrj_wait_code(out.wstatus);
	out.no_children = waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
	out.served = hook_served;
	out.reaped = hook_reaped;
	if (write(report, &out, sizeof out) != (ssize_t)sizeof out)
		_exit(202);
	_exit(0);
}

static struct run start(const struct scenario *sc)
{
	int ready[2], report[2];
	struct run r;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	r.supervisor = fork();
	assert_true(r.supervisor >= 0);
	if (r.supervisor == 0) {
		close(ready[0]);
		close(report[0]);
		supervisor(sc, ready[1], report[1]);
	}
	close(ready[1]);
	close(report[1]);
	r.ready = ready[0];
	r.report = report[0];
	return r;
}

/* Read exactly n bytes from fd within 10 s; false on timeout or EOF. */
static bool read_within(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 10000) <= 0)
			return false;
		r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static void wait_ready(const struct run *r)
{
	char c;
	assert_true(read_within(r->ready, &c, 1));
}

static struct outcome finish(struct run *r)
{
	struct outcome out;
	pid_t workload = 0;
	int st;

	if (!read_within(r->report, &workload, sizeof workload) ||
	    !read_within(r->report, &out, sizeof out)) {
		if (workload > 0)
			kill(-workload, SIGKILL); /* the workload and what stayed in its group */
		kill(r->supervisor, SIGKILL);
		waitpid(r->supervisor, NULL, 0);
		fail_msg("the supervisor did not finish within 10 s");
	}
	assert_int_equal(waitpid(r->supervisor, &st, 0), r->supervisor);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(r->ready);
	close(r->report);
	assert_int_equal(out.setup_failed, 0);
	return out;
}

static struct outcome run_scenario(const struct scenario *sc)
{
	struct run r = start(sc);
	return finish(&r);
}

/* ---- workloads ------------------------------------------------------- */

static void exit_with(int code, int ready)
{
	(void)ready;
	_exit(code);
}

static void die_of(int sig, int ready)
{
	(void)ready;
	if (sig == SIGSEGV) {
		/* A real fault, not only a sent signal (on a page of our own,
		 * so that no sanitizer mistakes it for a bug of the test). */
		void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page != MAP_FAILED)
			*(volatile int *)page = 1;
	}
	raise(sig);
	_exit(250);
}

/* Wait for one signal of a set (blocked first), exit 40 + its number. */
static void exit_on_signal(int sig, int ready)
{
	sigset_t set;
	int got = 0;

	sigemptyset(&set);
	sigaddset(&set, sig);
	sigaddset(&set, SIGTSTP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	write_byte(ready);
	if (sigwait(&set, &got) != 0)
		_exit(251);
	_exit(40 + got);
}

static void ignore_term(int arg, int ready)
{
	(void)arg;
	signal(SIGTERM, SIG_IGN);
	write_byte(ready);
	for (;;)
		pause();
}

/* Exit 0 when the workload starts as a workload should: no signal
 * blocked, SIGTTIN/SIGTTOU/SIGTSTP at their defaults, a session leader. */
static void check_child_signals(int arg, int ready)
{
	const int tty[] = {SIGTTIN, SIGTTOU, SIGTSTP};
	sigset_t mask;
	int bad = 0;

	(void)arg;
	(void)ready;
	sigprocmask(SIG_SETMASK, NULL, &mask);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&mask, s) == 1)
			bad |= 1;
	for (size_t i = 0; i < ARRAY_LEN(tty); i++) {
		struct sigaction sa;
		sigaction(tty[i], NULL, &sa);
		if (sa.sa_handler != SIG_DFL)
			bad |= 2;
	}
	if (getsid(0) != getpid())
		bad |= 4;
	_exit(bad);
}

/* Leave a grandchild behind and exit 5 at once. arg: 0, the grandchild
 * leaves the workload's session and exits on its own after ORPHAN_LIFE_MS; 1, it
 * stays in the process group, ignores SIGTERM and never exits. */
static void leave_orphan(int arg, int ready)
{
	int sync[2];
	char c;

	(void)ready;
	if (pipe(sync) < 0)
		_exit(252);
	if (fork() == 0) {
		if (arg == 0) {
			setsid();
		} else {
			signal(SIGTERM, SIG_IGN);
		}
		write_byte(sync[1]);
		if (arg == 0) {
			usleep(ORPHAN_LIFE_MS * 1000);
			_exit(0);
		}
		for (;;)
			pause();
	}
	if (read(sync[0], &c, 1) != 1)
		_exit(253);
	_exit(5);
}

/* ---- tests ----------------------------------------------------------- */

static void test_every_exit_code(void **state)
{
	(void)state;
	for (int code = 0; code <= 255; code++) {
		struct scenario sc = {.fn = exit_with, .arg = code, .subreaper = true};
		struct outcome out = run_scenario(&sc);

		assert_true(WIFEXITED(out.wstatus));
		assert_int_equal(WEXITSTATUS(out.wstatus), code);
		assert_int_equal(out.code, code);
		assert_true(out.no_children);
	}
}

static void test_signal_deaths(void **state)
{
	const int sigs[] = {SIGKILL, SIGTERM, SIGSEGV, SIGABRT, SIGUSR1, SIGBUS,
	                    SIGFPE,  SIGILL,  SIGHUP,  SIGINT,  SIGQUIT, SIGPIPE};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++) {
		struct scenario sc = {.fn = die_of, .arg = sigs[i], .subreaper = true};
		struct outcome out = run_scenario(&sc);

		assert_true(WIFSIGNALED(out.wstatus));
		assert_int_equal(WTERMSIG(out.wstatus), sigs[i]);
		assert_int_equal(out.code, 128 + sigs[i]);
		assert_true(out.no_children);
	}
}

static void test_forwarded_signal_reaches_workload(void **state)
{
	const int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGWINCH};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++) {
		struct scenario sc = {.fn = exit_on_signal, .arg = sigs[i], .subreaper = true};
		struct run r = start(&sc);

		wait_ready(&r);
		assert_int_equal(kill(r.supervisor, sigs[i]), 0);
		struct outcome out = finish(&r);
		assert_int_equal(out.code, 40 + sigs[i]);
	}
}

/* SIGTSTP is ignored by PID 1 and not forwarded; the supervisor does not
 * stop either, so the next signal still gets through. */
static void test_stop_signals_ignored(void **state)
{
	struct scenario sc = {.fn = exit_on_signal, .arg = SIGUSR1, .subreaper = true};
	struct run r = start(&sc);

	(void)state;
	wait_ready(&r);
	assert_int_equal(kill(r.supervisor, SIGTSTP), 0);
	assert_int_equal(kill(r.supervisor, SIGTTIN), 0);
	assert_int_equal(kill(r.supervisor, SIGTTOU), 0);
	usleep(50 * 1000);
	assert_int_equal(kill(r.supervisor, SIGUSR1), 0);
	struct outcome out = finish(&r);
	assert_int_equal(out.code, 40 + SIGUSR1);
}

static void test_supervisor_signal_setup(void **state)
{
	const int never_blocked[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
	const int ignored[] = {SIGTTIN, SIGTTOU, SIGTSTP};
	const int waited[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGCHLD, SIGPWR, SIGRTMIN + 3};
	sigset_t before, mask;
	struct sigaction saved[ARRAY_LEN(ignored)], sa;

	(void)state;
	sigprocmask(SIG_SETMASK, NULL, &before);
	for (size_t i = 0; i < ARRAY_LEN(ignored); i++)
		sigaction(ignored[i], NULL, &saved[i]);
	assert_int_equal(pid1_setup_signals(), 0);
	sigprocmask(SIG_SETMASK, NULL, &mask);
	for (size_t i = 0; i < ARRAY_LEN(never_blocked); i++)
		assert_int_equal(sigismember(&mask, never_blocked[i]), 0);
	for (size_t i = 0; i < ARRAY_LEN(waited); i++)
		assert_int_equal(sigismember(&mask, waited[i]), 1);
	for (size_t i = 0; i < ARRAY_LEN(ignored); i++) {
		sigaction(ignored[i], NULL, &sa);
		assert_true(sa.sa_handler == SIG_IGN);
	}
	sigprocmask(SIG_SETMASK, &before, NULL);
	for (size_t i = 0; i < ARRAY_LEN(ignored); i++)
		sigaction(ignored[i], &saved[i], NULL);
}

static void test_child_signal_setup(void **state)
{
	struct scenario sc = {.fn = check_child_signals, .subreaper = true};
	struct outcome out = run_scenario(&sc);

	(void)state;
	assert_int_equal(out.code, 0);
}

/* SIGTERM to PID 1 is a graceful stop: the stop signal goes to the
 * workload; one that ignores it is killed when the grace period ends. */
static void test_graceful_stop(void **state)
{
	struct scenario ignoring = {
	    .fn = ignore_term, .subreaper = true, .opts = {.grace_ms = 200}};
	struct scenario custom = {.fn = exit_on_signal,
	                          .arg = SIGUSR2,
	                          .subreaper = true,
	                          .opts = {.grace_ms = 5000, .stop_signal = SIGUSR2}};
	struct run r = start(&ignoring);
	struct outcome out;

	(void)state;
	wait_ready(&r);
	assert_int_equal(kill(r.supervisor, SIGTERM), 0);
	out = finish(&r);
	assert_true(WIFSIGNALED(out.wstatus));
	assert_int_equal(WTERMSIG(out.wstatus), SIGKILL);
	assert_int_equal(out.code, 137);
	assert_true(out.took_ms >= 150);

	/* SIGINT (Ctrl-Alt-Del) sends the configured stop signal. */
	r = start(&custom);
	wait_ready(&r);
	assert_int_equal(kill(r.supervisor, SIGINT), 0);
	out = finish(&r);
	assert_int_equal(out.code, 40 + SIGUSR2);
	assert_true(out.took_ms < 4000);
}

/* An orphan in a session of its own is reparented to the subreaper and
 * reaped when it exits: supervision waits for it, and no zombie stays. */
static void test_orphan_reaped(void **state)
{
	struct scenario sc = {
	    .fn = leave_orphan, .arg = 0, .subreaper = true, .opts = {.grace_ms = 5000}};
	struct outcome out = run_scenario(&sc);

	(void)state;
	assert_int_equal(out.code, 5);
	assert_true(out.no_children);
	assert_true(out.took_ms >= ORPHAN_LIFE_MS - 50);
	assert_true(out.took_ms < 9000);
}

/* An orphan that ignores SIGTERM gets SIGKILL after the grace period. */
static void test_orphan_killed_after_grace(void **state)
{
	struct scenario sc = {
	    .fn = leave_orphan, .arg = 1, .subreaper = true, .opts = {.grace_ms = 200}};
	struct outcome out = run_scenario(&sc);

	(void)state;
	assert_int_equal(out.code, 5);
	assert_true(out.no_children);
	assert_true(out.took_ms >= 150);
}

/* Negative control: without PR_SET_CHILD_SUBREAPER the orphan goes to
 * another reaper, so supervision ends with the workload and does not wait
 * for the orphan to end (the test above does). */
static void test_orphan_without_subreaper(void **state)
{
	struct scenario sc = {
	    .fn = leave_orphan, .arg = 0, .subreaper = false, .opts = {.grace_ms = 5000}};
	struct outcome out = run_scenario(&sc);

	(void)state;
	assert_int_equal(out.code, 5);
	assert_true(out.took_ms < ORPHAN_LIFE_MS - 50);
}

/* With a service's hooks: a stop signal still gets through while the
 * service waits (its wait would otherwise last an hour), and an orphan's
 * end goes to the reaped hook, the workload's not. */
static void test_serve_hooks(void **state)
{
	struct pid1_opts hooks = {
	    .grace_ms = 5000, .stop_signal = SIGUSR2, .serve = serve_hook, .reaped = reaped_hook};
	struct scenario custom = {.fn = exit_on_signal, .arg = SIGUSR2, .subreaper = true};
	struct scenario orphan = {.fn = leave_orphan, .arg = 0, .subreaper = true};
	struct run r;
	struct outcome out;

	(void)state;
	custom.opts = hooks;
	r = start(&custom);
	wait_ready(&r);
	assert_int_equal(kill(r.supervisor, SIGINT), 0);
	out = finish(&r);
	assert_int_equal(out.code, 40 + SIGUSR2);
	assert_true(out.took_ms < 4000);
	assert_true(out.served >= 1);
	assert_int_equal(out.reaped, 0);

	orphan.opts = hooks;
	out = run_scenario(&orphan);
	assert_int_equal(out.code, 5);
	assert_true(out.no_children);
	assert_int_equal(out.reaped, 1);
	assert_true(out.took_ms >= ORPHAN_LIFE_MS - 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_exit_code),
	    cmocka_unit_test(test_signal_deaths),
	    cmocka_unit_test(test_forwarded_signal_reaches_workload),
	    cmocka_unit_test(test_stop_signals_ignored),
	    cmocka_unit_test(test_supervisor_signal_setup),
	    cmocka_unit_test(test_child_signal_setup),
	    cmocka_unit_test(test_graceful_stop),
	    cmocka_unit_test(test_orphan_reaped),
	    cmocka_unit_test(test_orphan_killed_after_grace),
	    cmocka_unit_test(test_orphan_without_subreaper),
	    cmocka_unit_test(test_serve_hooks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
