/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer exec [-i] [-t] [-e K=V] [-u USER] [-w DIR] ID COMMAND...: run
 * COMMAND in a running VM through its run's agent socket (run/agent_mux.h),
 * relay stdin, stdout and stderr apart, exit with the command's status
 * (128+N for signal N; 126/127 when it cannot be started). */
#include "cli.h"

#include "ctrj/agent.h"
#include "run/agent_mux.h"
#include "run/record.h"
#include "run/run.h"
#include "run/runs.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define SESSION 1 /* a client's one session; the run renumbers it */

const struct ctrj_proc *cli_exec_proc;
/* The guest's agent greets within this of the VM's start (TCG included),
 * or it has none (a kernel without virtio_console, say). */
#define HELLO_TIMEOUT_MS 60000

struct exec_opts {
	bool interactive, tty;
	char *env[CTRJ_AGENT_MAX_ENV + 1];
	size_t nenv;
	const char *user, *workdir;
	bool latest;
};

static int opt_i(void *ctx, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct exec_opts *)ctx)->interactive = true;
	return 0;
}

static int opt_t(void *ctx, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct exec_opts *)ctx)->tty = true;
	return 0;
}

static int opt_e(void *ctx, const char *v, const char *what, struct cj_err *err)
{
	struct exec_opts *o = ctx;

	if (!strchr(v, '=') || v[0] == '=')
		return cj_fail(err, EINVAL, "%s %s: give NAME=VALUE", what, v);
	if (o->nenv == CTRJ_AGENT_MAX_ENV)
		return cj_fail(err, E2BIG, "%s: at most %u variables", what, CTRJ_AGENT_MAX_ENV);
	o->env[o->nenv++] = (char *)v;
	return 0;
}

static int opt_u(void *ctx, const char *v, const char *what, struct cj_err *err)
{
	(void)what, (void)err;
	((struct exec_opts *)ctx)->user = v;
	return 0;
}

static int opt_w(void *ctx, const char *v, const char *what, struct cj_err *err)
{
	if (v[0] != '/')
		return cj_fail(err, EINVAL, "%s %s: give an absolute path", what, v);
	((struct exec_opts *)ctx)->workdir = v;
	return 0;
}

static int opt_l(void *ctx, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct exec_opts *)ctx)->latest = true;
	return 0;
}

static const struct cli_opt exec_opts[] = {
    {"latest", 'l', NULL, NULL, opt_l, NULL, "Exec",
     "the live run created last (no ID: a container's HEALTHCHECK reaches its one run)"},
    {"interactive", 'i', NULL, NULL, opt_i, NULL, "Exec", "relay stdin to COMMAND"},
    {"tty", 't', NULL, NULL, opt_t, NULL, "Exec", "give COMMAND a terminal"},
    {"env", 'e', "NAME=VAL", NULL, opt_e, NULL, "Exec",
     "set a variable for COMMAND (over the workload's environment; repeatable)"},
    {"user", 'u', "USER[:GRP]", NULL, opt_u, NULL, "Exec", "run COMMAND as this user"},
    {"workdir", 'w', "DIR", NULL, opt_w, NULL, "Exec", "working directory of COMMAND"},
};

/* ---- finding the run ------------------------------------------------------ */

/* The run named want, or the latest (want NULL). */
static int connect_run(const char *base, const char *want, struct cj_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char id[16];
	int fd;

	if ((want ? cj_runs_find(base, want, id, err) : cj_runs_latest(base, id, err)) < 0)
		return -1;
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s/%s", base, id,
	                     CJ_AGENT_SOCK) >= sizeof sa.sun_path)
		return cj_fail(err, ENAMETOOLONG, "run directory of %s", id);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return cj_fail(err, e, "run %s takes no exec (it is not running, or has no agent)",
		               id);
	}
	return fd;
}

/* ---- the session ------------------------------------------------------------- */

struct session {
	int fd;
	struct ctrj_agent_dec dec;
	struct ctrj_agent_credit in; /* what we may still send of stdin */
	bool stdin_open;
	bool greeted; /* the guest's agent answered */
	bool tty;
	int sig_fd; /* the signals exec passes on (signalfd) */
	bool done;
	int code;
	char msg[CTRJ_AGENT_MSG_MAX + 1];
};

/* Whole buffers to a terminal, a pipe or the run's socket (SIGPIPE is
 * ignored: a reader that is gone is an error here). */
static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int on_frame(const struct ctrj_agent_frame *f, void *ctx)
{
	struct session *s = ctx;
	uint8_t c[32];

	switch (f->type) {
	case CTRJ_AGENT_HELLO:
		s->greeted = true;
		return 0;
	case CTRJ_AGENT_STDOUT:
	case CTRJ_AGENT_STDERR:
		/* a reader that went away does not stop the session */
		write_all(f->type == CTRJ_AGENT_STDOUT ? 1 : 2, f->payload, f->len);
		if (f->len == 0)
			return 0;
		/* the credit back; a run that already closed the session after
		 * the exit status is no error (the status is in this same read) */
		write_all(s->fd, c,
		          ctrj_agent_enc_u32x2(c, CTRJ_AGENT_CREDIT, SESSION,
		                               f->type == CTRJ_AGENT_STDOUT
		                                   ? CTRJ_AGENT_STREAM_STDOUT
		                                   : CTRJ_AGENT_STREAM_STDERR,
		                               f->len));
		return 0;
	case CTRJ_AGENT_CREDIT:
		return ctrj_agent_credit_grant(&s->in, f->b);
	case CTRJ_AGENT_EXIT:
		s->done = true;
		if (f->a == CTRJ_AGENT_SIGNALED)
			s->code = 128 + (int)f->b;
		else
			s->code = (int)f->b;
		if (f->a == CTRJ_AGENT_START_FAILED)
			ctrj_agent_exit_msg(f, s->msg);
		return 1;
	}
	return 0;
}

static int send_start(struct session *s, const struct exec_opts *o, char **argv, int argc,
                      struct cj_err *err)
{
	struct ctrj_agent_start st = {.argv = argv,
	                              .argc = (size_t)argc,
	                              .envp = (char **)o->env,
	                              .envc = o->nenv,
	                              .user = (char *)o->user,
	                              .workdir = (char *)o->workdir,
	                              .tty = o->tty};
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	char msg[128];
	uint8_t *frame, c[32];
	size_t len;
	int r;

	if (o->tty && ioctl(0, TIOCGWINSZ, &ws) < 0)
		ws = (struct winsize){.ws_row = 24, .ws_col = 80};
	st.rows = ws.ws_row;
	st.cols = ws.ws_col;
	if (cli_exec_proc)
		st.proc = *cli_exec_proc;
	if (ctrj_agent_enc_start(&st, SESSION, &frame, &len, msg, sizeof msg) < 0)
		return cj_fail(err, EINVAL, "%s", msg);
	r = write_all(s->fd, frame, len);
	free(frame);
	/* a quick command's exit status may already have closed the session:
	 * no error, relay() reads it */
	if (r == 0 && !o->interactive)
		(void)write_all(s->fd, c,
		                ctrj_agent_enc_data(c, CTRJ_AGENT_STDIN_CLOSE, SESSION, NULL, 0));
	return r < 0 ? cj_fail(err, errno, "send the command to the run") : 0;
}

/* One read of our stdin, within the guest's credit. */
static int relay_stdin(struct session *s)
{
	static uint8_t f[CTRJ_AGENT_HDR_SIZE + CTRJ_AGENT_DATA_MAX];
	uint32_t n = ctrj_agent_credit_avail(&s->in);
	ssize_t r;

	if (n > CTRJ_AGENT_DATA_MAX)
		n = CTRJ_AGENT_DATA_MAX;
	r = read(0, f + CTRJ_AGENT_HDR_SIZE, n);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r <= 0) {
		s->stdin_open = false;
		return write_all(s->fd, f,
		                 ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN_CLOSE, SESSION, NULL, 0));
	}
	ctrj_agent_credit_take(&s->in, (uint32_t)r);
	return write_all(
	    s->fd, f,
	    ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN, SESSION, f + CTRJ_AGENT_HDR_SIZE, (size_t)r));
}

/* A signal to exec: the window's new size to the terminal (SIGWINCH, an
 * engine's resize of a new session included), any other to the command;
 * before the guest greeted, any other stops exec (nothing runs yet). */
static int pass_signal(struct session *s, struct cj_err *err)
{
	struct signalfd_siginfo si;
	struct winsize ws;
	uint8_t f[32];
	int r = 0;

	if (read(s->sig_fd, &si, sizeof si) != (ssize_t)sizeof si)
		return 0;
	if (si.ssi_signo != SIGWINCH && !s->greeted)
		return cj_fail(err, 0, "interrupted before the command started");
	if (si.ssi_signo != SIGWINCH)
		r = write_all(s->fd, f,
		              ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, SESSION, si.ssi_signo));
	else if (s->tty && ioctl(0, TIOCGWINSZ, &ws) == 0)
		r = write_all(s->fd, f, ctrj_agent_enc_resize(f, SESSION, ws.ws_row, ws.ws_col));
	return r < 0 ? cj_fail(err, errno, "the run closed the session") : 0;
}

static int relay(struct session *s, struct cj_err *err)
{
	uint8_t b[65536];

	while (!s->done) {
		bool in = s->stdin_open && ctrj_agent_credit_avail(&s->in) > 0;
		struct pollfd p[3] = {{.fd = s->fd, .events = POLLIN},
		                      {.fd = in ? 0 : -1, .events = POLLIN},
		                      {.fd = s->sig_fd, .events = POLLIN}};
		int pr = poll(p, 3, s->greeted ? -1 : HELLO_TIMEOUT_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return cj_fail(err, errno, "poll");
		if (pr == 0)
			return cj_fail(err, 0,
			               "the VM's agent does not answer (does its kernel have "
			               "virtio_console?)");
		if (p[2].revents && pass_signal(s, err) < 0)
			return -1;
		if (p[1].revents && relay_stdin(s) < 0)
			return cj_fail(err, errno, "the run closed the session");
		if (!p[0].revents)
			continue;
		ssize_t n = recv(s->fd, b, sizeof b, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return cj_fail(err, 0, "the VM ended before the command did");
		if (ctrj_agent_dec_feed(&s->dec, b, (size_t)n, on_frame, s, NULL, 0) < 0)
			return cj_fail(err, 0, "the run broke the agent protocol");
	}
	return 0;
}

static const int passed[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static int exec_session(int fd, const struct exec_opts *o, char **argv, int argc,
                        struct cj_err *err)
{
	struct session s = {.fd = fd, .stdin_open = o->interactive, .tty = o->tty};
	struct termios saved;
	sigset_t pass, old;
	bool raw = false;
	int r;

	/* Ctrl-C and kill reach the command (once it runs), not only exec */
	sigemptyset(&pass);
	for (size_t i = 0; i < sizeof passed / sizeof *passed; i++)
		sigaddset(&pass, passed[i]);
	sigprocmask(SIG_BLOCK, &pass, &old);
	s.sig_fd = signalfd(-1, &pass, SFD_CLOEXEC);
	if (s.sig_fd < 0 || ctrj_agent_dec_init(&s.dec, CTRJ_AGENT_FROM_GUEST) < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return cj_fail(err, errno, "exec");
	}
	ctrj_agent_credit_init(&s.in);
	r = send_start(&s, o, argv, argc, err);
	if (r == 0 && o->tty && o->interactive && tcgetattr(0, &saved) == 0) {
		struct termios t = saved;
		cfmakeraw(&t);
		raw = tcsetattr(0, TCSANOW, &t) == 0;
	}
	if (r == 0)
		r = relay(&s, err);
	if (raw)
		tcsetattr(0, TCSANOW, &saved);
	ctrj_agent_dec_free(&s.dec);
	close(s.sig_fd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return -1;
	if (s.msg[0])
		fprintf(stderr, "ctr-jailer: %s\n", s.msg);
	return s.code;
}

static int exec_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct exec_opts o = {0};
	const char *base = getenv("CTR_JAILER_RUN_DIR");
	int first, fd, r = cli_parse_args(verb, &o, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	int cmd = first + (o.latest ? 0 : 1); /* --latest takes no ID */
	if (argc - cmd < 1) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	signal(SIGPIPE, SIG_IGN);
	fd = connect_run(base && *base ? base : CJ_DEFAULT_RUN_BASE, o.latest ? NULL : argv[first],
	                 &err);
	if (fd < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	r = exec_session(fd, &o, argv + cmd, argc - cmd, &err);
	close(fd);
	return r < 0 ? cli_report(&err, CJ_EXIT_RUNTIME) : r;
}

const struct cli_verb cli_exec_verb = {
    .name = "exec",
    .usage = "exec [OPTIONS] ID|--latest COMMAND [ARG...]",
    .about = "Run COMMAND in the running VM ID (its id, or a unique prefix of it), beside its "
             "workload; exit with COMMAND's status (128+N when signal N ended it, 126 or 127 "
             "when it could not be started).",
    .opts = exec_opts,
    .nopts = sizeof exec_opts / sizeof *exec_opts,
    .main = exec_main,
};
