/* SPDX-License-Identifier: Apache-2.0 */
/* The exec agent (agent.h): sessions started on the host's request, their
 * streams relayed under credit, their end reported. Every buffer is bounded:
 * stdin by the window the host may fill, output by reading a child only
 * while the channel's queue is short and the host has given credit. */
#include "agent.h"
#include "deadline.h"
#include "init.h"
#include "pid1.h"
#include "vsock.h"

#include "ctrj/agent.h"
#include "ctrj/protocol.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

#define MAX_SESSIONS 32
#define OUT_HIGH     (64u * 1024u) /* read no child output while the queue is longer */
#define FRAME_BUF    (CTRJ_AGENT_HDR_SIZE + CTRJ_AGENT_DATA_MAX + CTRJ_AGENT_MSG_MAX + 16)

struct session {
	uint32_t id; /* 0: free */
	pid_t pid;
	int in_fd, out_fd, err_fd; /* -1: closed; a terminal's master is in_fd and out_fd */
	bool tty, exited, close_stdin;
	int wstatus;
	struct ctrj_agent_buf in;          /* stdin not yet written to the process */
	struct ctrj_agent_credit out[2];   /* stdout, stderr: what the host lets us send */
	struct ctrj_agent_credit in_taken; /* stdin: what the host may send us */
};

static struct {
	int fd;
	int lfd; /* vsock: the listening socket, -1 on virtio-serial */
	struct ctrj_agent_dec dec;
	struct ctrj_agent_buf out;
	char **base_env;
	const char *user, *workdir; /* the workload's: a request's defaults */
	struct session s[MAX_SESSIONS];
	bool released; /* RELEASE came */
	/* the workload, for CTRJ_AGENT_SIGNAL on the main session with or
	 * without its stdio here: 0 until it runs; what comes before waits */
	pid_t workload;
	bool workload_ended;
	uint64_t pending; /* bit N-1: signal N */
} A = {.fd = -1, .lfd = -1};

static void send_frame(const uint8_t *f, size_t n)
{
	if (n && ctrj_agent_buf_add(&A.out, f, n) < 0)
		guest_say("agent: out of memory for the channel");
}

static void send_exit(uint32_t id, uint32_t kind, uint32_t code, const char *msg)
{
	uint8_t f[FRAME_BUF];
	send_frame(f, ctrj_agent_enc_exit(f, id, kind, code, msg));
}

/* /sys/class/virtio-ports/vportNpM/name holds the port's name. */
static int open_port(void)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int fd = -1;

	while (d && fd < 0 && (e = readdir(d))) {
		char path[300], name[64] = "";
		snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof name, f) && strcmp(name, "ctrj.agent\n") == 0) {
			snprintf(path, sizeof path, "/dev/%s", e->d_name);
			fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return fd;
}

/* The vsock listener, when the VM has a virtio vsock device (its local
 * CID is known) and no agent port: one host connection at a time, on
 * CTRJ_AGENT_VSOCK_PORT. The guest only answers: it never connects. */
static int vsock_listen(void)
{
	struct ctrj_sockaddr_vm sa = {.svm_family = AF_VSOCK,
	                              .svm_cid = CTRJ_VMADDR_CID_ANY,
	                              .svm_port = CTRJ_AGENT_VSOCK_PORT};
	unsigned int cid = CTRJ_VMADDR_CID_ANY;
	int dev = open("/dev/vsock", O_RDONLY | O_CLOEXEC), fd;

	if (dev < 0)
		return -1; /* no vsock modules */
	if (ioctl(dev, CTRJ_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0 || cid == CTRJ_VMADDR_CID_ANY) {
		close(dev);
		return -1; /* no device */
	}
	close(dev);
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1) < 0) {
		guest_say("agent: cannot listen on vsock port %u: %s", CTRJ_AGENT_VSOCK_PORT,
		          strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void agent_init(char **base_env, const char *user, const char *workdir)
{
	for (size_t i = 0; i < MAX_SESSIONS; i++)
		A.s[i].in_fd = A.s[i].out_fd = A.s[i].err_fd = -1;
	A.base_env = base_env;
	A.user = user;
	A.workdir = workdir;
}

/* A host connection: a fresh decoder, the greeting first. */
static bool attach(int fd)
{
	uint8_t f[32];

	ctrj_agent_dec_free(&A.dec);
	if (ctrj_agent_dec_init(&A.dec, CTRJ_AGENT_FROM_HOST) < 0) {
		close(fd);
		return false;
	}
	A.fd = fd;
	send_frame(f, ctrj_agent_enc_u32(f, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION));
	return true;
}

bool agent_open(char **base_env, const char *user, const char *workdir, unsigned wait_ms)
{
	uint64_t end = guest_now_ns() + (uint64_t)wait_ms * 1000000ull;
	int fd = open_port();

	/* a vsock device and no port (Firecracker): no port is coming */
	if (fd < 0 && (A.lfd = vsock_listen()) >= 0) {
		agent_init(base_env, user, workdir);
		return true;
	}
	while (fd < 0 && guest_now_ns() < end) { /* the port may come after the driver */
		usleep(10000);
		fd = open_port();
	}
	if (fd >= 0)
		return agent_open_fd(fd, base_env, user, workdir);
	if ((A.lfd = vsock_listen()) < 0)
		return false;
	agent_init(base_env, user, workdir);
	return true;
}

bool agent_open_fd(int fd, char **base_env, const char *user, const char *workdir)
{
	agent_init(base_env, user, workdir);
	return attach(fd);
}

bool agent_listen_fd(int lfd, char **base_env, const char *user, const char *workdir)
{
	A.lfd = lfd;
	agent_init(base_env, user, workdir);
	return true;
}

/* The listener's next host connection (vsock: only the host, CID 2). */
static void accept_host(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int fd = accept4(A.lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (ss.ss_family == AF_VSOCK &&
	    ((struct ctrj_sockaddr_vm *)&ss)->svm_cid != CTRJ_VMADDR_CID_HOST) {
		close(fd);
		return;
	}
	attach(fd);
}

bool agent_wait_host(unsigned wait_ms)
{
	uint64_t end = guest_now_ns() + (uint64_t)wait_ms * 1000000ull;

	while (A.fd < 0 && A.lfd >= 0 && guest_now_ns() < end) {
		struct pollfd p = {.fd = A.lfd, .events = POLLIN};
		sigset_t pending;
		/* a stop (Ctrl-Alt-Del's SIGINT, SIGTERM) is not kept waiting:
		 * PID 1 blocks them until it supervises the workload */
		if (sigpending(&pending) == 0 &&
		    (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM)))
			break;
		if (poll(&p, 1, 100) > 0)
			accept_host();
	}
	return A.fd >= 0;
}

/* ---- sessions ------------------------------------------------------------ */

static struct session *find(uint32_t id)
{
	for (size_t i = 0; i < MAX_SESSIONS; i++)
		if (A.s[i].id == id)
			return &A.s[i];
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void session_free(struct session *s)
{
	close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	ctrj_agent_buf_free(&s->in);
	memset(s, 0, sizeof *s);
	s->in_fd = s->out_fd = s->err_fd = -1;
}

/* Once the process is reaped and its output drained: the exit status. */
static void session_maybe_end(struct session *s)
{
	if (s->id == CTRJ_AGENT_MAIN_SESSION)
		return; /* the workload's status goes on the control disk */
	if (!s->exited || s->out_fd >= 0 || s->err_fd >= 0)
		return;
	if (WIFSIGNALED(s->wstatus))
		send_exit(s->id, CTRJ_AGENT_SIGNALED, (uint32_t)WTERMSIG(s->wstatus), "");
	else
		send_exit(s->id, CTRJ_AGENT_EXITED, (uint32_t)WEXITSTATUS(s->wstatus), "");
	session_free(s);
}

/* Does v set the variable entry ("NAME=...") sets? */
static bool has_key(char *const *v, const char *entry)
{
	size_t klen = strcspn(entry, "=") + 1;

	for (; v && *v; v++)
		if (strncmp(*v, entry, klen) == 0)
			return true;
	return false;
}

/* The workload's environment, then home ("HOME=...", the user's, with -u;
 * or NULL), then the request's variables, each over the one before. */
static char **merge_env(char **req, char *home)
{
	char *mid[2] = {home, NULL};
	size_t nb = 0, nr = 0, n = 0;

	while (A.base_env && A.base_env[nb])
		nb++;
	while (req[nr])
		nr++;
	char **env = calloc(nb + nr + 2, sizeof *env);
	if (!env)
		return NULL;
	for (size_t i = 0; i < nb; i++)
		if (!has_key(mid, A.base_env[i]) && !has_key(req, A.base_env[i]))
			env[n++] = A.base_env[i];
	if (home && !has_key(req, home))
		env[n++] = home;
	for (size_t j = 0; j < nr; j++)
		env[n++] = req[j];
	return env;
}

struct child_io {
	int in, out, err; /* the child's ends (pipes), or -1 */
	const char *pts;  /* the terminal's name, or NULL */
};

/* fd becomes the child's stdio fd to, kept across exec (dup2 onto itself
 * would leave close-on-exec set). */
static void stdio_fd(int fd, int to)
{
	if (fd == to)
		fcntl(fd, F_SETFD, 0);
	else
		dup2(fd, to);
}

/* In the child, a session leader: the terminal (its controlling one) or
 * the pipes become fds 0-2; no stdin pipe is /dev/null. */
static int child_stdio(const struct child_io *io)
{
	if (io->pts) {
		int t = open(io->pts, O_RDWR | O_CLOEXEC);
		if (t < 0 || ioctl(t, TIOCSCTTY, 0) < 0)
			return -1;
		stdio_fd(t, 0), stdio_fd(t, 1), stdio_fd(t, 2);
		return 0;
	}
	int in = io->in >= 0 ? io->in : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	stdio_fd(in, 0), stdio_fd(io->out, 1), stdio_fd(io->err, 2);
	return 0;
}

/* In the child: its stdio, its user and directory, then exec. errno goes
 * back on err_fd (close-on-exec: success closes it silently). */
static __attribute__((noreturn)) void child(const struct ctrj_agent_start *st,
                                            const struct guest_user *u, char **env,
                                            const struct child_io *io, int err_fd)
{
	int msg[2] = {0, 0};

	pid1_child_setup(); /* a session of its own, signals unblocked */
	if (child_stdio(io) < 0)
		goto report;
	if (guest_proc_enter(&st->proc, u) < 0 || chdir(st->workdir ? st->workdir : "/") < 0)
		goto report;
	environ = env;
	msg[0] = 1;
	execvp(st->argv[0], st->argv);
report:
	msg[1] = errno;
	if (write(err_fd, msg, sizeof msg) < 0)
		_exit(127);
	_exit(127);
}

/* The session's fds: a terminal (master here, its name for the child) or
 * three pipes. Returns 0 or an errno. */
static int session_fds(struct session *s, const struct ctrj_agent_start *st, struct child_io *io,
                       char *pts, size_t ptslen)
{
	int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};

	if (st->tty) {
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		struct winsize ws = {.ws_row = st->rows, .ws_col = st->cols};
		if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, pts, ptslen) != 0) {
			int e = errno;
			close_fd(&m);
			return e;
		}
		ioctl(m, TIOCSWINSZ, &ws);
		fcntl(m, F_SETFL, O_NONBLOCK);
		s->out_fd = m;
		s->in_fd = fcntl(m, F_DUPFD_CLOEXEC, 0);
		io->pts = pts;
		return 0;
	}
	for (int i = 0; i < 3; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			int e = errno;
			for (int j = 0; j < i; j++)
				close(p[j][0]), close(p[j][1]);
			return e;
		}
	s->in_fd = p[0][1], io->in = p[0][0];
	s->out_fd = p[1][0], io->out = p[1][1];
	s->err_fd = p[2][0], io->err = p[2][1];
	fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

static void close_child_io(struct child_io *io)
{
	close_fd(&io->in);
	close_fd(&io->out);
	close_fd(&io->err);
}

/* Fork and exec; the exec's failure comes back on a pipe. Returns 0, or
 * fills msg (and *code) when the process could not be started. */
static int spawn(struct session *s, const struct ctrj_agent_start *st, const struct guest_user *u,
                 char **env, struct child_io *io, int *code, char *msg, size_t msglen)
{
	int ep[2], m[2];
	ssize_t r;

	if (pipe2(ep, O_CLOEXEC) < 0)
		return snprintf(msg, msglen, "pipe: %s", strerror(errno)), -1;
	s->pid = fork();
	if (s->pid == 0)
		child(st, u, env, io, ep[1]);
	close(ep[1]);
	close_child_io(io);
	if (s->pid < 0) {
		close(ep[0]);
		return snprintf(msg, msglen, "fork: %s", strerror(errno)), -1;
	}
	do
		r = read(ep[0], m, sizeof m);
	while (r < 0 && errno == EINTR);
	close(ep[0]);
	if (r != (ssize_t)sizeof m)
		return 0;
	*code = (m[0] == 1 && m[1] == ENOENT) ? 127 : 126;
	if (m[0] == 1)
		snprintf(msg, msglen, "exec \"%s\": %s", st->argv[0], strerror(m[1]));
	else
		snprintf(
		    msg, msglen, "cannot become user %s (privileges, limits) in directory %s: %s",
		    st->user ? st->user : "0", st->workdir ? st->workdir : "/", strerror(m[1]));
	return -1; /* the child is reaped by PID 1 (agent_reaped finds no session) */
}

static void session_start(uint32_t id, struct ctrj_agent_start *st)
{
	struct session *s = find(id) ? NULL : find(0);
	struct child_io io = {.in = -1, .out = -1, .err = -1};
	struct guest_user u;
	char msg[CTRJ_AGENT_MSG_MAX + 1], pts[64];
	int code = 126, e;

	if (!s) {
		send_exit(id, CTRJ_AGENT_START_FAILED, 126, "session in use or too many sessions");
		return;
	}
	bool own_user = st->user != NULL; /* -u: its HOME too */
	if (!own_user && A.user)
		st->user = strdup(A.user);
	if (!st->workdir && A.workdir)
		st->workdir = strdup(A.workdir);
	if (guest_user_resolve(st->user, &u, msg, sizeof msg) < 0) {
		send_exit(id, CTRJ_AGENT_START_FAILED, 126, msg);
		return;
	}
	char home[sizeof u.home + 8];
	snprintf(home, sizeof home, "HOME=%s", u.home);
	char **env = merge_env(st->envp, own_user ? home : NULL);
	session_free(s);
	if (!env || (e = session_fds(s, st, &io, pts, sizeof pts)) != 0) {
		snprintf(msg, sizeof msg, "set up the streams: %s", strerror(env ? e : ENOMEM));
		free(env);
		send_exit(id, CTRJ_AGENT_START_FAILED, 126, msg);
		return;
	}
	s->id = id;
	s->tty = st->tty;
	ctrj_agent_credit_init(&s->out[0]);
	ctrj_agent_credit_init(&s->out[1]);
	ctrj_agent_credit_init(&s->in_taken);
	if (spawn(s, st, &u, env, &io, &code, msg, sizeof msg) < 0) {
		send_exit(id, CTRJ_AGENT_START_FAILED, (uint32_t)code, msg);
		session_free(s);
	}
	free(env);
}

void agent_reaped(void *ctx, pid_t pid, int wstatus)
{
	(void)ctx;
	for (size_t i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &A.s[i];
		if (s->id && s->pid == pid && !s->exited) {
			s->exited = true;
			s->wstatus = wstatus;
			session_maybe_end(s); /* or once its output is drained */
		}
	}
}

/* ---- frames from the host ------------------------------------------------ */

static void on_stdin(struct session *s, const struct ctrj_agent_frame *f)
{
	uint8_t c[32];

	if (ctrj_agent_credit_take(&s->in_taken, f->len) < 0) {
		guest_say("agent: the host sent stdin past its credit; ending session %u", s->id);
		if (s->pid > 0 && !s->exited)
			kill(s->pid, SIGKILL);
		return;
	}
	if (s->in_fd < 0 || s->close_stdin) { /* nobody to write to: give the credit back */
		if (f->len)                   /* the host takes an empty credit for a flood */
			send_frame(c, ctrj_agent_enc_u32x2(c, CTRJ_AGENT_CREDIT, s->id,
			                                   CTRJ_AGENT_STREAM_STDIN, f->len));
		ctrj_agent_credit_grant(&s->in_taken, f->len);
		return;
	}
	ctrj_agent_buf_add(&s->in, f->payload, f->len);
}

static void on_session_frame(struct session *s, const struct ctrj_agent_frame *f)
{
	struct winsize ws;

	switch (f->type) {
	case CTRJ_AGENT_STDIN:
		on_stdin(s, f);
		break;
	case CTRJ_AGENT_STDIN_CLOSE:
		s->close_stdin = true;
		if (!s->tty && s->in.len == 0)
			close_fd(&s->in_fd);
		break;
	case CTRJ_AGENT_RESIZE:
		ws = (struct winsize){.ws_row = (unsigned short)f->a,
		                      .ws_col = (unsigned short)f->b};
		if (s->tty && s->out_fd >= 0)
			ioctl(s->out_fd, TIOCSWINSZ, &ws);
		break;
	case CTRJ_AGENT_SIGNAL:
		if (s->pid > 0 && !s->exited)
			kill(s->pid, (int)f->a);
		break;
	case CTRJ_AGENT_CREDIT:
		ctrj_agent_credit_grant(&s->out[f->a == CTRJ_AGENT_STREAM_STDERR], f->b);
		break;
	}
}

/* A signal for the workload: PID 1's child, while it was not reaped
 * (waitid finds it, a zombie included); kept until it runs. */
static void workload_signal(int sig)
{
	siginfo_t si;

	if (sig < 1 || sig > 64 || A.workload_ended)
		return;
	if (A.workload <= 0) {
		A.pending |= 1ull << (sig - 1);
		return;
	}
	if (waitid(P_PID, (id_t)A.workload, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
		kill(A.workload, sig);
}

void agent_workload_started(pid_t pid)
{
	A.workload = pid;
	for (int sig = 1; sig <= 64; sig++)
		if (A.pending & (1ull << (sig - 1)))
			kill(pid, sig);
	A.pending = 0;
}

void agent_workload_ended(void)
{
	A.workload = 0;
	A.workload_ended = true;
}

static int on_frame(const struct ctrj_agent_frame *f, void *ctx)
{
	struct ctrj_agent_start st;
	struct session *s;
	char err[128];

	(void)ctx;
	if (f->type == CTRJ_AGENT_HELLO)
		return f->a == CTRJ_AGENT_VERSION ? 0 : -1;
	if (f->type == CTRJ_AGENT_RELEASE) {
		A.released = true;
		return 0;
	}
	if (f->type == CTRJ_AGENT_START) {
		if (ctrj_agent_start_parse(f, &st, err, sizeof err) < 0) {
			send_exit(f->session, CTRJ_AGENT_START_FAILED, 126, err);
			return 0;
		}
		session_start(f->session, &st);
		ctrj_agent_start_free(&st);
		return 0;
	}
	if (f->type == CTRJ_AGENT_SIGNAL && f->session == CTRJ_AGENT_MAIN_SESSION) {
		workload_signal((int)f->a);
		return 0;
	}
	if ((s = find(f->session)))
		on_session_frame(s, f);
	return 0;
}

bool agent_released(void)
{
	return A.released;
}

bool agent_up(void)
{
	return A.fd >= 0;
}

/* ---- the loop ------------------------------------------------------------ */

/* The host went away or broke the protocol: its sessions end. */
static void channel_down(const char *why)
{
	guest_say("agent: %s; exec sessions end", why);
	for (size_t i = 0; i < MAX_SESSIONS; i++) {
		if (A.s[i].id && A.s[i].pid > 0 && !A.s[i].exited)
			kill(-A.s[i].pid, SIGKILL);
		if (A.s[i].id)
			session_free(&A.s[i]); /* PID 1 reaps the process */
	}
	close_fd(&A.fd);
	if (A.out.len) /* half a frame must not reach the next host */
		ctrj_agent_buf_drop(&A.out, A.out.len);
}

static void channel_read(void)
{
	uint8_t b[16384];
	ssize_t n = read(A.fd, b, sizeof b);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		channel_down("the host closed the channel");
		return;
	}
	if (ctrj_agent_dec_feed(&A.dec, b, (size_t)n, on_frame, NULL, NULL, 0) != 0)
		channel_down("malformed data from the host");
}

static void channel_write(void)
{
	ssize_t n = write(A.fd, A.out.p, A.out.len);

	if (n > 0)
		ctrj_agent_buf_drop(&A.out, (size_t)n);
	else if (n < 0 && errno != EAGAIN && errno != EINTR)
		channel_down("the channel failed");
}

/* One read of stdout (which 0) or stderr (1), within the host's credit. */
static void session_read(struct session *s, int which)
{
	int *fd = which ? &s->err_fd : &s->out_fd;
	uint32_t n = ctrj_agent_credit_avail(&s->out[which]);
	uint8_t f[FRAME_BUF];

	if (n > CTRJ_AGENT_DATA_MAX)
		n = CTRJ_AGENT_DATA_MAX;
	ssize_t r = read(*fd, f + CTRJ_AGENT_HDR_SIZE, n);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) { /* EOF, or EIO from a terminal whose other side is gone */
		close_fd(fd);
		if (s->tty)
			close_fd(&s->in_fd);
		session_maybe_end(s);
		return;
	}
	ctrj_agent_credit_take(&s->out[which], (uint32_t)r);
	send_frame(f, ctrj_agent_enc_data(f, which ? CTRJ_AGENT_STDERR : CTRJ_AGENT_STDOUT, s->id,
	                                  f + CTRJ_AGENT_HDR_SIZE, (size_t)r));
}

static void session_write(struct session *s)
{
	uint8_t c[32];
	ssize_t n = write(s->in_fd, s->in.p, s->in.len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) { /* the reader is gone: drop what is left, keep the credit flowing */
		n = (ssize_t)s->in.len;
		close_fd(&s->in_fd);
	}
	ctrj_agent_buf_drop(&s->in, (size_t)n);
	ctrj_agent_credit_grant(&s->in_taken, (uint32_t)n);
	if (n > 0)
		send_frame(c, ctrj_agent_enc_u32x2(c, CTRJ_AGENT_CREDIT, s->id,
		                                   CTRJ_AGENT_STREAM_STDIN, (uint32_t)n));
	if (s->in.len == 0 && s->close_stdin && !s->tty)
		close_fd(&s->in_fd);
}

/* pollfd slots: the signal fd, the channel, then three per session. */
static nfds_t fill_poll(struct pollfd *p, int sig_fd)
{
	bool room = A.out.len < OUT_HIGH;
	nfds_t n = 2;

	p[0] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
	p[1] = (struct pollfd){.fd = A.fd, .events = POLLIN | (A.out.len ? POLLOUT : 0)};
	for (size_t i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &A.s[i];
		bool on = s->id != 0;
		p[n++] = (struct pollfd){.fd = on && s->in.len ? s->in_fd : -1, .events = POLLOUT};
		p[n++] = (struct pollfd){
		    .fd = on && room && ctrj_agent_credit_avail(&s->out[0]) ? s->out_fd : -1,
		    .events = POLLIN};
		p[n++] = (struct pollfd){
		    .fd = on && room && ctrj_agent_credit_avail(&s->out[1]) ? s->err_fd : -1,
		    .events = POLLIN};
	}
	return n;
}

void agent_serve(void *ctx, int sig_fd, int timeout_ms)
{
	struct pollfd p[2 + 3 * MAX_SESSIONS];
	nfds_t n;

	(void)ctx;
	if (A.fd < 0) {
		p[0] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = A.lfd, .events = POLLIN};
		if (poll(p, 2, timeout_ms) > 0 && (p[1].revents & POLLIN))
			accept_host();
		return;
	}
	n = fill_poll(p, sig_fd);
	if (poll(p, n, timeout_ms) <= 0)
		return;
	if (p[1].revents & POLLOUT)
		channel_write();
	if (A.fd >= 0 && p[1].revents & (POLLIN | POLLHUP | POLLERR))
		channel_read();
	for (size_t i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &A.s[i];
		if (!s->id)
			continue;
		if (p[2 + 3 * i].revents && s->in_fd >= 0)
			session_write(s);
		for (int w = 0; w < 2; w++)
			if (s->id && p[2 + 3 * i + 1 + w].revents)
				session_read(s, w);
	}
}

/* ---- the workload's own stdio -------------------------------------------- */

static struct child_io main_io = {.in = -1, .out = -1, .err = -1};
static char main_pts[64];

bool agent_main_open(uint32_t flags, uint16_t rows, uint16_t cols)
{
	struct ctrj_agent_start st = {.tty = flags & CTRJ_STDIO_TTY, .rows = rows, .cols = cols};
	struct session *s = find(0);

	if (A.fd < 0 || !s)
		return false;
	session_free(s);
	if (session_fds(s, &st, &main_io, main_pts, sizeof main_pts) != 0)
		return false;
	s->id = CTRJ_AGENT_MAIN_SESSION;
	s->tty = st.tty;
	ctrj_agent_credit_init(&s->out[0]);
	ctrj_agent_credit_init(&s->out[1]);
	ctrj_agent_credit_init(&s->in_taken);
	if (!(flags & CTRJ_STDIO_STDIN) && !st.tty) { /* stdin is /dev/null */
		close_fd(&s->in_fd);
		close_fd(&main_io.in);
	}
	return true;
}

int agent_main_child_stdio(void)
{
	return child_stdio(&main_io);
}

void agent_main_started(pid_t pid)
{
	struct session *s = find(CTRJ_AGENT_MAIN_SESSION);

	close_child_io(&main_io);
	if (s)
		s->pid = pid;
}

/* Everything the workload wrote is sent and the host has written it out:
 * it gave all its credit back. */
static bool main_drained(const struct session *s)
{
	return s->out_fd < 0 && s->err_fd < 0 && A.out.len == 0 &&
	       ctrj_agent_credit_avail(&s->out[0]) == CTRJ_AGENT_WINDOW &&
	       ctrj_agent_credit_avail(&s->out[1]) == CTRJ_AGENT_WINDOW;
}

void agent_main_drain(unsigned timeout_ms)
{
	struct session *s = find(CTRJ_AGENT_MAIN_SESSION);
	uint64_t end = guest_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	if (!s)
		return;
	s->pid = 0; /* reaped: no more signals to it */
	s->exited = true;
	ctrj_agent_buf_free(&s->in);
	if (!s->tty)
		close_fd(&s->in_fd);
	while (A.fd >= 0 && !main_drained(s) && guest_now_ns() < end)
		agent_serve(NULL, -1, 100);
	session_free(s);
}
