/* SPDX-License-Identifier: Apache-2.0 */
#include "spawn.h"

#include "ctrj/protocol.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* fd copied above 2 (close-on-exec), so that placing one of them on 0-2
 * never overwrites another still to be placed. */
static int high(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* A session of its own, not just a process group: a child that shares the
 * caller's session and holds its terminal can push input into it
 * (TIOCSTI) and have the caller's shell run it. It dies with us. */
static int new_session(void)
{
	sigset_t none;

	if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return -1;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

static int place_stdio(const struct cj_spawn *s)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int in, out, errfd;

	if (null < 0 || (null = high(null)) < 0)
		return -1;
	in = s->stdin_fd >= 0 ? high(s->stdin_fd) : null;
	out = s->stdout_fd >= 0 ? high(s->stdout_fd) : null;
	errfd = s->stderr_fd >= 0 ? high(s->stderr_fd) : null;
	if (in < 0 || out < 0 || errfd < 0)
		return -1;
	/* dup2 leaves 0-2 inheritable; the copies above 2 close at exec */
	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(errfd, STDERR_FILENO) < 0)
		return -1;
	return 0;
}

static __attribute__((noreturn)) void child(const struct cj_spawn *s, int report, int go)
{
	const char *what = "start a session";
	char c;

	if (s->new_session && new_session() < 0)
		goto fail;
	what = "redirect stdio";
	if (place_stdio(s) < 0)
		goto fail;
	what = "keep fds";
	if (!s->inherit && close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
		goto fail;
	for (size_t i = 0; i < s->nkeep; i++)
		if (fcntl(s->keep[i], F_SETFD, 0) < 0)
			goto fail;
	if (go >= 0 && read(go, &c, 1) != 1)
		_exit(127); /* the parent gave up on us */
	if (s->pre_exec && s->pre_exec(s->ctx, &what) < 0)
		goto fail;
	what = "exec";
	execve(s->path, s->argv, s->envp ? s->envp : environ);
fail:;
	int e = errno;
	char msg[160];
	int len = snprintf(msg, sizeof msg, "%d %s", e, what);
	if (write(report, msg, (size_t)len) < 0)
		_exit(127);
	_exit(127);
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* The parent's side once the child exists: release it (after on_fork),
 * then read what it reports; nothing means exec succeeded. */
static pid_t parent(const struct cj_spawn *s, pid_t pid, int report, int go, char *step,
                    struct cj_err *err)
{
	char msg[161];
	ssize_t n;

	if (s->on_fork && s->on_fork(s->ctx, pid, err) < 0) {
		kill(pid, SIGKILL);
		reap(pid);
		return -1;
	}
	if (go >= 0 && write(go, "g", 1) != 1) {
		/* the child is gone; the report tells why */
	}
	do
		n = read(report, msg, sizeof msg - 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return pid;
	msg[n] = '\0';
	reap(pid);
	const char *what = strchr(msg, ' ') ? strchr(msg, ' ') + 1 : "exec";
	if (step)
		snprintf(step, CJ_SPAWN_STEP_MAX, "%s", what);
	return cj_fail(err, atoi(msg), "start %s: %s", s->argv[0], what);
}

pid_t cj_spawn(const struct cj_spawn *s, char *step, struct cj_err *err)
{
	int report[2], go[2] = {-1, -1};
	pid_t pid;

	if (step)
		step[0] = '\0';
	if (pipe2(report, O_CLOEXEC) < 0)
		return cj_fail(err, errno, "pipe");
	if (s->on_fork && pipe2(go, O_CLOEXEC) < 0) {
		int e = errno;
		close(report[0]);
		close(report[1]);
		return cj_fail(err, e, "pipe");
	}
	if (s->clone_flags)
		/* fork-like (no new stack) into new namespaces */
		pid = (pid_t)syscall(SYS_clone, s->clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
	else
		pid = fork();
	if (pid == 0) {
		if (go[1] >= 0)
			close(go[1]);
		child(s, report[1], go[0]);
	}
	int e = errno;
	close(report[1]);
	if (go[0] >= 0)
		close(go[0]);
	if (pid < 0)
		cj_fail(err, e, "start %s", s->argv[0]);
	else
		pid = parent(s, pid, report[0], go[1], step, err);
	close(report[0]);
	if (go[1] >= 0)
		close(go[1]);
	return pid;
}

/* Append what fd has now to a growing, NUL-terminated buffer of at most
 * cap bytes (the rest is read and dropped); false at EOF. */
static bool drain(int fd, size_t cap, char **buf, size_t *len)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof chunk);

	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	size_t keep = *len < cap ? cap - *len : 0;
	if ((size_t)n < keep)
		keep = (size_t)n;
	if (!keep)
		return true;
	char *nb = realloc(*buf, *len + keep + 1);
	if (!nb)
		return true;
	memcpy(nb + *len, chunk, keep);
	*len += keep;
	nb[*len] = '\0';
	*buf = nb;
	return true;
}

/* Read out_fd and err_fd (either -1) to their ends at once, keeping at
 * most cap bytes of each (the rest is read and dropped); texts[i] are
 * NUL-terminated (NULL when nothing came), the caller frees them. False
 * when the deadline (cj_now_ns; 0: none) came first. */
static bool capture(int out_fd, int err_fd, size_t cap, char *texts[2], uint64_t deadline)
{
	/* Both at once: a child that fills one while we wait on the other
	 * would block forever. poll ignores negative fds. */
	struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
	size_t lens[2] = {0, 0};

	texts[0] = texts[1] = NULL;
	while (p[0].fd >= 0 || p[1].fd >= 0) {
		int ms = -1;
		if (deadline) {
			uint64_t now = cj_now_ns();
			if (now >= deadline)
				return false;
			ms = (int)((deadline - now) / 1000000u + 1);
		}
		if (poll(p, 2, ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++)
			if (p[i].fd >= 0 && p[i].revents &&
			    !drain(p[i].fd, cap, &texts[i], &lens[i]))
				p[i].fd = -1;
	}
	return true;
}

/* The first non-empty line of s, printable ASCII only (in place). */
static const char *first_line_printable(char *s)
{
	s += strspn(s, "\n");
	s[strcspn(s, "\n")] = '\0';
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return s;
}

/* Wait for pid; its exit code in *code and, when not 0, err with the
 * first non-empty line of its stderr (texts[1]), printable. texts[0] goes
 * to *out ("" when nothing came) when out is set, else it is freed. */
static void spawn_finish(pid_t pid, const char *name, char *texts[2], char **out, int *code,
                         struct cj_err *err)
{
	int st;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*code = ctrj_wait_code(st);
	if (*code != 0) {
		const char *line = texts[1] ? first_line_printable(texts[1]) : "";
		cj_fail(err, 0, "%s failed (status %d)%s%s", name, *code, *line ? ": " : "", line);
	}
	free(texts[1]);
	if (out && !texts[0])
		texts[0] = calloc(1, 1);
	if (out)
		*out = texts[0];
	else
		free(texts[0]);
}

/* Has pid ended by the deadline (0: none)? It stays a zombie for
 * spawn_finish. Its pipes may have closed long before (a child that
 * redirected its stdout and stderr): the deadline holds for that too. */
static bool ended_by(pid_t pid, uint64_t deadline)
{
	for (;;) {
		siginfo_t si = {0};
		int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || si.si_pid == pid || !deadline)
			return true;
		if (cj_now_ns() >= deadline)
			return false;
		poll(NULL, 0, 10);
	}
}

int cj_spawn_capture(struct cj_spawn s, size_t cap, char **out, int *code, char *step,
                     struct cj_err *err)
{
	int o[2] = {-1, -1}, e[2] = {-1, -1};
	char *texts[2] = {NULL, NULL};
	uint64_t deadline = s.timeout_ms ? cj_now_ns() + s.timeout_ms * 1000000ull : 0;
	bool in_time = true;
	pid_t pid;

	if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
		int en = errno;
		if (o[0] >= 0) {
			close(o[0]);
			close(o[1]);
		}
		return cj_fail(err, en, "pipe");
	}
	s.stdout_fd = o[1];
	s.stderr_fd = e[1];
	pid = cj_spawn(&s, step, err);
	close(o[1]);
	close(e[1]);
	if (pid > 0)
		in_time = capture(o[0], e[0], cap, texts, deadline) && ended_by(pid, deadline);
	if (!in_time) { /* what it started goes too (they may hold the pipes) */
		if (s.new_session)
			kill(-pid, SIGKILL);
		kill(pid, SIGKILL); /* also before its setsid */
	}
	close(o[0]);
	close(e[0]);
	if (pid < 0)
		return -1;
	spawn_finish(pid, s.argv[0], texts, out, code, err);
	if (!in_time)
		cj_fail(err, 0, "%s did not end within %u ms: killed", s.argv[0], s.timeout_ms);
	return 0;
}
