/* SPDX-License-Identifier: Apache-2.0 */
/* The exec sessions' multiplexer (agent_mux.h). Clients' frames go to the
 * guest with their session id rewritten; the guest's go back the same way.
 * Queues are bounded: towards a client by the credit it gives (checked
 * here: a guest that sends past it loses the channel), towards the guest
 * by not reading clients while the channel's queue is long. */
#include "agent_mux.h"

#include "ctrj/agent.h"
#include "vmm/fc_vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define QUEUE_HIGH (CTRJ_AGENT_FRAME_MAX + 64u * 1024u)

/* Above a client's two windows of stream data, what its queue may hold
 * in small frames (credit, end of stream, exit) before the guest counts
 * as flooding. */
#define OUT_SLACK (64u * 1024u)

struct client {
	int fd; /* -1: free slot */
	uint32_t session;
	bool started, ended;
	bool refused; /* told why the guest is out of reach; closed once it leaves */
	bool eos[2];  /* stdout, stderr ended (an empty frame) */
	struct ctrj_agent_dec dec;
	struct ctrj_agent_buf out;        /* frames for the client */
	struct ctrj_agent_credit data[2]; /* stdout, stderr: what the client lets the guest send */
	struct ctrj_agent_credit in;      /* stdin: what the guest lets the client send */
};

struct cj_agent_mux {
	int chan, lfd;
	bool hello, chan_down;
	bool own_chan;             /* chan came from connect: closed here */
	cj_agent_target_fn target; /* NULL: chan is the only channel there is */
	void *target_ctx;
	int connect_ms;               /* how long a connection may take */
	struct cj_fc_vsock_conn conn; /* the connection under way */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctrj_agent_dec dec;
	struct ctrj_agent_buf out; /* frames for the guest */
	uint32_t next_session;
	struct client c[CJ_AGENT_MUX_CLIENTS];
	struct cj_workload_io *io; /* the workload's stdio, or NULL */
	bool io_warned;
	bool released; /* a client sent RELEASE (runtime mode's start) */
};

static int q_add(struct ctrj_agent_buf *q, const uint8_t *hdr, const uint8_t *payload, size_t len)
{
	if (ctrj_agent_buf_add(q, hdr, CTRJ_AGENT_HDR_SIZE) < 0)
		return -1;
	return ctrj_agent_buf_add(q, payload, len);
}

/* A frame f, renumbered to session, queued on q. */
static int q_frame(struct ctrj_agent_buf *q, const struct ctrj_agent_frame *f, uint32_t session)
{
	uint8_t hdr[CTRJ_AGENT_HDR_SIZE + 8];

	/* the header as the encoder writes it, with an empty payload */
	ctrj_agent_enc_data(hdr, f->type, session, NULL, 0);
	hdr[8] = (uint8_t)f->len;
	hdr[9] = (uint8_t)(f->len >> 8);
	hdr[10] = (uint8_t)(f->len >> 16);
	hdr[11] = (uint8_t)(f->len >> 24);
	return q_add(q, hdr, f->payload, f->len);
}

/* Write what q holds; -1 when the peer is gone. */
static int q_flush(struct ctrj_agent_buf *q, int fd)
{
	while (q->len) {
		ssize_t n = send(fd, q->p, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		ctrj_agent_buf_drop(q, (size_t)n);
	}
	return 0;
}

static void client_close(struct cj_agent_mux *m, struct client *c)
{
	uint8_t f[32];

	if (c->started && !c->ended && !m->chan_down) /* its process goes with it */
		q_add(&m->out, f, f + CTRJ_AGENT_HDR_SIZE,
		      ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, c->session, SIGKILL) -
		          CTRJ_AGENT_HDR_SIZE);
	close(c->fd);
	ctrj_agent_dec_free(&c->dec);
	ctrj_agent_buf_free(&c->out);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

/* The agent is up: the client may go on (it waits for this, so that a
 * guest without an agent is an error, not a hang). */
static int greet(struct client *c)
{
	uint8_t f[32];
	size_t n = ctrj_agent_enc_u32(f, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION);
	return q_add(&c->out, f, f + CTRJ_AGENT_HDR_SIZE, n - CTRJ_AGENT_HDR_SIZE);
}

/* ---- the guest's frames --------------------------------------------------- */

static struct client *by_session(struct cj_agent_mux *m, uint32_t session)
{
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++)
		if (m->c[i].fd >= 0 && m->c[i].started && m->c[i].session == session)
			return &m->c[i];
	return NULL;
}

static int from_guest(const struct ctrj_agent_frame *f, void *ctx)
{
	struct cj_agent_mux *m = ctx;
	struct client *c;

	if (f->type == CTRJ_AGENT_HELLO) {
		if (m->hello || f->a != CTRJ_AGENT_VERSION)
			return -1;
		m->hello = true;
		for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++)
			if (m->c[i].fd >= 0 && greet(&m->c[i]) < 0)
				return -1;
		/* our terminal's size now: a SIGWINCH before the greeting
		 * (an engine's resize of a created container) found no one */
		if (m->io && m->io->tty)
			cj_workload_io_resize(m->io);
		return 0;
	}
	if (f->session == CTRJ_AGENT_MAIN_SESSION) /* not asked for: ignored */
		return m->io && cj_workload_io_frame(m->io, f) < 0 ? -1 : 0;
	if (!(c = by_session(m, f->session)) || c->ended)
		return 0; /* a session whose client left */
	/* Frames that cost no credit are bounded too: one end of stream each,
	 * no empty credit, and never more queued for a client than its two
	 * windows and some small frames. A guest past these is not trusted. */
	if (f->type == CTRJ_AGENT_STDOUT || f->type == CTRJ_AGENT_STDERR) {
		bool err_stream = f->type == CTRJ_AGENT_STDERR;
		if (c->eos[err_stream])
			return -1; /* data after its end */
		if (f->len == 0)
			c->eos[err_stream] = true;
		else if (ctrj_agent_credit_take(&c->data[err_stream], f->len) < 0)
			return -1; /* past the client's credit */
	} else if (f->type == CTRJ_AGENT_CREDIT) {
		if (f->b == 0 || ctrj_agent_credit_grant(&c->in, f->b) < 0)
			return -1;
	} else if (f->type == CTRJ_AGENT_EXIT) {
		c->ended = true;
	}
	if (c->out.len > 2 * CTRJ_AGENT_WINDOW + OUT_SLACK)
		return -1;
	return q_frame(&c->out, f, 1) < 0 ? -1 : 0;
}

/* The channel is gone. Closing is how every VM ends, so it is worth a
 * warning only when it cuts exec sessions short; a broken protocol always
 * is (broken is true). */
static void chan_down(struct cj_agent_mux *m, const char *why, bool broken)
{
	bool sessions = false;

	m->chan_down = true;
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++)
		if (m->c[i].fd >= 0) {
			sessions = true;
			client_close(m, &m->c[i]);
		}
	if (m->own_chan) { /* the guest accepts the next connection, greets anew */
		close(m->chan);
		m->chan = -1;
		m->own_chan = m->hello = false;
	}
	if (broken || sessions)
		cj_warn("exec: %s; exec sessions end", why);
}

static void chan_read(struct cj_agent_mux *m)
{
	uint8_t b[65536];
	ssize_t n = recv(m->chan, b, sizeof b, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		chan_down(m, "the agent channel closed", false);
	else if (ctrj_agent_dec_feed(&m->dec, b, (size_t)n, from_guest, m, NULL, 0) != 0)
		chan_down(m, "the guest broke the agent protocol", true);
}

/* ---- the clients' frames ---------------------------------------------- */

static int from_client(const struct ctrj_agent_frame *f, void *ctx)
{
	struct client *c = ctx;

	if (f->type == CTRJ_AGENT_HELLO)
		return 0;
	if (f->type == CTRJ_AGENT_RELEASE) /* the channel's own: runtime mode's start */
		return c->started ? -1 : 2;
	if ((f->type == CTRJ_AGENT_START) == c->started)
		return -1; /* START first, and once */
	if (f->type == CTRJ_AGENT_START)
		c->started = true;
	else if (f->type == CTRJ_AGENT_STDIN && ctrj_agent_credit_take(&c->in, f->len) < 0)
		return -1;
	else if (f->type == CTRJ_AGENT_CREDIT &&
	         ctrj_agent_credit_grant(&c->data[f->a == CTRJ_AGENT_STREAM_STDERR], f->b) < 0)
		return -1;
	return 1; /* forward it */
}

struct client_ctx {
	struct cj_agent_mux *m;
	struct client *c;
};

static int client_frame(const struct ctrj_agent_frame *f, void *ctx)
{
	struct client_ctx *x = ctx;
	int r = from_client(f, x->c);

	if (r <= 0)
		return r;
	if (r == 2)
		x->m->released = true;
	return q_frame(&x->m->out, f, r == 2 ? 0 : x->c->session) < 0 ? -1 : 0;
}

static void client_read(struct cj_agent_mux *m, struct client *c)
{
	uint8_t b[65536];
	struct client_ctx x = {m, c};
	ssize_t n = recv(c->fd, b, sizeof b, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && c->refused)
		return;
	if (n <= 0 || ctrj_agent_dec_feed(&c->dec, b, (size_t)n, client_frame, &x, NULL, 0) != 0)
		client_close(m, c);
}

/* An on-demand channel (Firecracker's vsock), connected: a fresh
 * protocol state on it. NULL, or the reason it failed. */
static const char *chan_install(struct cj_agent_mux *m, int fd)
{
	ctrj_agent_dec_free(&m->dec);
	if (ctrj_agent_dec_init(&m->dec, CTRJ_AGENT_FROM_GUEST) < 0) {
		close(fd);
		return "out of memory for the agent channel";
	}
	if (m->out.len)
		ctrj_agent_buf_drop(&m->out, m->out.len);
	m->chan = fd;
	m->own_chan = true;
	m->chan_down = m->hello = false;
	return NULL;
}

/* A client the guest cannot be reached for: told why (its command cannot
 * run, 126), then closed. */
static void refuse(struct client *c, const char *why)
{
	uint8_t f[CTRJ_AGENT_HDR_SIZE + 8 + CTRJ_AGENT_MSG_MAX];
	char msg[CTRJ_AGENT_MSG_MAX + 1];

	snprintf(msg, sizeof msg, "exec: %s", why);
	ctrj_agent_buf_add(&c->out, f,
	                   ctrj_agent_enc_exit(f, 1, CTRJ_AGENT_START_FAILED, 126, msg));
	c->ended = c->refused = true; /* what it sends is read and dropped */
}

static void accept_client(struct cj_agent_mux *m)
{
	int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct client *c = NULL;
	char why[CJ_ERR_STR_MAX];
	const char *failed = NULL;
	struct cj_err err = {0};

	if (fd < 0)
		return;
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS && !c; i++)
		if (m->c[i].fd < 0)
			c = &m->c[i];
	if (c && m->chan_down && m->target && cj_agent_mux_connect(m, &err) < 0)
		failed = cj_err_str(&err, why, sizeof why);
	if (!c || (m->chan_down && !m->target) ||
	    ctrj_agent_dec_init(&c->dec, CTRJ_AGENT_FROM_HOST) < 0) {
		close(fd); /* the client sees the channel closed */
		return;
	}
	c->fd = fd;
	do /* never 0 (the channel) nor the workload's */
		c->session = ++m->next_session;
	while (c->session == 0 || c->session == CTRJ_AGENT_MAIN_SESSION);
	if (m->hello && greet(c) < 0) {
		client_close(m, c);
		return;
	}
	ctrj_agent_credit_init(&c->data[0]);
	ctrj_agent_credit_init(&c->data[1]);
	ctrj_agent_credit_init(&c->in);
	if (failed)
		refuse(c, failed);
}

/* ---- the on-demand channel ------------------------------------------------ */

int cj_agent_mux_connect(struct cj_agent_mux *m, struct cj_err *err)
{
	struct cj_fc_vsock_target t;

	if (!m->target || !m->chan_down || cj_fc_vsock_conn_active(&m->conn))
		return 0;
	if (m->target(m->target_ctx, &t, err) < 0)
		return -1;
	cj_fc_vsock_conn_start(&m->conn, &t, m->connect_ms);
	return 0;
}

/* The connection under way went on: the channel once it is made; the
 * clients waiting for it told why when it failed. */
static void connect_step(struct cj_agent_mux *m)
{
	struct cj_err err = {0};
	char why[CJ_ERR_STR_MAX];
	const char *failed = NULL;
	int fd;

	if (!cj_fc_vsock_conn_active(&m->conn))
		return;
	fd = cj_fc_vsock_conn_step(&m->conn, &err);
	if (fd == CJ_FC_VSOCK_PENDING)
		return;
	failed = fd < 0 ? cj_err_str(&err, why, sizeof why) : chan_install(m, fd);
	if (!failed)
		return;
	if (m->io && !m->io_warned) {
		cj_warn("the workload's stdio will not reach this run: %s", failed);
		m->io_warned = true;
	}
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++)
		if (m->c[i].fd >= 0 && !m->c[i].refused)
			refuse(&m->c[i], failed);
}

int cj_agent_mux_timeout(const struct cj_agent_mux *m)
{
	struct pollfd p;
	return m ? cj_fc_vsock_conn_pollfd(&m->conn, &p) : -1;
}

/* ---- the loop's side -------------------------------------------------------- */

int cj_agent_mux_pollfds(struct cj_agent_mux *m, struct pollfd *p)
{
	/* clients are read only once the guest has greeted and while the
	 * channel's queue is short */
	bool take = m->hello && !m->chan_down && m->out.len < QUEUE_HIGH;
	int n = 0;

	p[n++] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
	p[n++] = (struct pollfd){.fd = m->chan_down ? -1 : m->chan,
	                         .events = POLLIN | (m->out.len ? POLLOUT : 0)};
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++) {
		struct client *c = &m->c[i];
		bool in = (take && !c->ended) || c->refused;
		short ev = (short)((in ? POLLIN : 0) | (c->out.len ? POLLOUT : 0));
		p[n++] = (struct pollfd){.fd = c->fd >= 0 ? c->fd : -1, .events = ev};
	}
	cj_fc_vsock_conn_pollfd(&m->conn, &p[n++]);
	if (m->io)
		cj_workload_io_pollfds(m->io, p + n, take);
	else
		for (int i = 0; i < CJ_WORKLOAD_IO_POLL; i++)
			p[n + i] = (struct pollfd){.fd = -1};
	return n + CJ_WORKLOAD_IO_POLL;
}

void cj_agent_mux_handle(struct cj_agent_mux *m, const struct pollfd *p, int n)
{
	if (n < CJ_AGENT_MUX_POLL_MAX)
		return;
	if (p[0].revents & POLLIN)
		accept_client(m);
	if (!m->chan_down && (p[1].revents & POLLOUT) && q_flush(&m->out, m->chan) < 0)
		chan_down(m, "the agent channel closed", false);
	if (!m->chan_down && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
		chan_read(m);
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++) {
		struct client *c = &m->c[i];
		short rv = p[2 + i].revents;
		if (c->fd < 0 || p[2 + i].fd != c->fd)
			continue; /* closed, or a new client since poll */
		if ((rv & POLLOUT) && q_flush(&c->out, c->fd) < 0) {
			client_close(m, c);
			continue;
		}
		if (rv & (POLLIN | POLLHUP | POLLERR))
			client_read(m, c);
		if (c->fd >= 0 && c->ended && !c->refused && c->out.len == 0)
			client_close(m, c); /* its exit status is out */
	}
	connect_step(m); /* its timer as much as its socket */
	if (m->io && !m->chan_down)
		cj_workload_io_handle(m->io, p + 3 + CJ_AGENT_MUX_CLIENTS);
}

void cj_agent_mux_workload(struct cj_agent_mux *m, struct cj_workload_io *io)
{
	m->io = io;
	io->to_guest = &m->out;
}

bool cj_agent_mux_greeted(const struct cj_agent_mux *m)
{
	return m && m->hello;
}

int cj_agent_mux_workload_signal(struct cj_agent_mux *m, int sig)
{
	if (!m || !m->io || !m->hello || m->chan_down)
		return -1;
	return sig ? cj_workload_io_signal(m->io, sig) : cj_workload_io_resize(m->io);
}

int cj_agent_mux_signal(struct cj_agent_mux *m, int sig)
{
	uint8_t f[32];

	if (!m || !m->hello || m->chan_down)
		return -1;
	return ctrj_agent_buf_add(
	    &m->out, f,
	    ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, CTRJ_AGENT_MAIN_SESSION, (uint32_t)sig));
}

bool cj_agent_mux_released(const struct cj_agent_mux *m)
{
	return m && m->released;
}

struct cj_agent_mux *cj_agent_mux_open(int chan_fd, const char *run_dir, struct cj_err *err)
{
	struct cj_agent_mux *m = calloc(1, sizeof *m);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (!m)
		return cj_fail(err, ENOMEM, "exec socket"), NULL;
	m->chan = chan_fd;
	m->chan_down = chan_fd < 0; /* until cj_agent_mux_on_demand's connect */
	m->lfd = -1;
	cj_fc_vsock_conn_init(&m->conn);
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++)
		m->c[i].fd = -1;
	if ((size_t)snprintf(m->path, sizeof m->path, "%s/%s", run_dir, CJ_AGENT_SOCK) >=
	    sizeof m->path) {
		free(m);
		return cj_fail(err, ENAMETOOLONG, "exec socket in %s", run_dir), NULL;
	}
	memcpy(sa.sun_path, m->path, sizeof m->path);
	if (ctrj_agent_dec_init(&m->dec, CTRJ_AGENT_FROM_GUEST) < 0 ||
	    (m->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(m->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(m->path, 0600) < 0 ||
	    listen(m->lfd, 8) < 0) {
		cj_fail(err, errno, "exec socket %s", m->path);
		cj_agent_mux_close(m);
		return NULL;
	}
	return m;
}

void cj_agent_mux_on_demand(struct cj_agent_mux *m, cj_agent_target_fn target, void *ctx,
                            int timeout_ms)
{
	m->target = target;
	m->target_ctx = ctx;
	m->connect_ms = timeout_ms;
}

void cj_agent_mux_close(struct cj_agent_mux *m)
{
	if (!m)
		return;
	m->chan_down = true; /* the VM is gone: nothing more to tell it */
	cj_fc_vsock_conn_cancel(&m->conn);
	for (size_t i = 0; i < CJ_AGENT_MUX_CLIENTS; i++)
		if (m->c[i].fd >= 0)
			client_close(m, &m->c[i]);
	if (m->own_chan)
		close(m->chan);
	if (m->lfd >= 0) {
		close(m->lfd);
		unlink(m->path);
	}
	ctrj_agent_dec_free(&m->dec);
	ctrj_agent_buf_free(&m->out);
	free(m);
}
