/* SPDX-License-Identifier: Apache-2.0 */
/* Firecracker's vsock handshake (fc_vsock.h), per its docs/vsock.md:
 * connect to uds_path, write "CONNECT <port>\n", read "OK <port>\n"; a
 * closed connection means no guest listener (yet). */
#include "fc_vsock.h"

#include "util/sanitize.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int cj_fc_vsock_parse_ok(const char *line, size_t len, uint32_t *host_port)
{
	uint64_t v = 0;

	if (len < 4 || len > 3 + 10 || memcmp(line, "OK ", 3) != 0)
		return -1;
	for (size_t i = 3; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*host_port = (uint32_t)v;
	return 0;
}

static int ms_left(uint64_t deadline)
{
	uint64_t now = cj_now_ns();
	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

/* What there is of the reply line, one byte at a time so that nothing of
 * the guest's stream behind it is taken: its length without the '\n' once
 * it is whole, CJ_FC_VSOCK_PENDING for more, or -1 with err. */
static int line_more(int fd, char *line, size_t *n, struct cj_err *err)
{
	while (*n < CJ_FC_VSOCK_LINE_MAX) {
		ssize_t r = recv(fd, line + *n, 1, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return CJ_FC_VSOCK_PENDING;
		if (r < 0 && errno != ECONNRESET)
			return cj_fail(err, errno, "read Firecracker's vsock reply");
		if (r <= 0)
			return cj_fail(err, ECONNRESET,
			               "Firecracker closed the connection: nothing in the guest "
			               "listens on that port (yet)");
		if (line[*n] == '\n')
			return (int)*n;
		++*n;
	}
	return cj_fail(err, EPROTO, "Firecracker's vsock reply is longer than %d bytes",
	               CJ_FC_VSOCK_LINE_MAX);
}

/* 0 when the line (len bytes) is OK, else -1 with err (EPROTO). */
static int check_reply(const char *line, int len, uint32_t port, struct cj_err *err)
{
	char shown[CJ_FC_VSOCK_LINE_MAX * 4];
	uint32_t host_port;

	if (cj_fc_vsock_parse_ok(line, (size_t)len, &host_port) == 0)
		return 0;
	cj_sanitize(line, (size_t)len, shown, sizeof shown);
	return cj_fail(err, EPROTO, "Firecracker's vsock answered CONNECT %u with '%s'", port,
	               shown);
}

int cj_fc_vsock_handshake(int fd, uint32_t port, int timeout_ms, struct cj_err *err)
{
	uint64_t deadline = cj_now_ns() + (uint64_t)timeout_ms * 1000000u;
	char req[32], line[CJ_FC_VSOCK_LINE_MAX];
	int len = snprintf(req, sizeof req, "CONNECT %u\n", port);
	size_t n = 0;

	/* a fresh unix socket's buffer takes these few bytes at once */
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len)
		return cj_fail(err, errno == EPIPE ? ECONNRESET : errno,
		               "send CONNECT to Firecracker's vsock");
	while ((len = line_more(fd, line, &n, err)) == CJ_FC_VSOCK_PENDING) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, ms_left(deadline));
		if (pr < 0 && errno != EINTR)
			return cj_fail(err, errno, "wait for Firecracker's vsock reply");
		if (pr == 0)
			return cj_fail(err, ETIMEDOUT,
			               "Firecracker's vsock did not answer CONNECT");
	}
	return len < 0 ? -1 : check_reply(line, len, port, err);
}

static int check_peer(int fd, pid_t pid, uid_t uid, const char *what, struct cj_err *err)
{
	struct ucred peer;
	socklen_t len = sizeof peer;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
		return cj_fail(err, errno, "SO_PEERCRED on %s", what);
	if ((pid > 0 && peer.pid != pid) || peer.uid != uid)
		return cj_fail(err, 0,
		               "%s is served by pid %d uid %u, not by the VMM (pid %d uid %u): "
		               "refusing to talk to it",
		               what, (int)peer.pid, (unsigned)peer.uid, (int)pid, (unsigned)uid);
	return 0;
}

/* cj_fc_uds_connect, with sock_flags (SOCK_NONBLOCK: a listener whose
 * backlog is full is EAGAIN instead of a wait). */
static int uds_connect(int dirfd, const char *name, uid_t uid, pid_t pid, const char *what,
                       int sock_flags, struct cj_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cj_autoclose int path_fd = -1;
	struct stat st;
	int fd, e;

	/* The directory belongs to the VMM's uid, who may put a symlink or a
	 * socket of anything root reaches in the socket's place. */
	path_fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (path_fd < 0)
		return cj_fail(err, errno, "%s", what);
	if (fstat(path_fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != uid)
		return cj_fail(err, 0,
		               "%s was replaced by something that is not a socket of the VMM's "
		               "uid %u: refusing to connect",
		               what, (unsigned)uid);
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d", path_fd);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0)) < 0)
		return cj_fail(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		close(fd);
		return cj_fail(err, e, "connect to %s", what);
	}
	if (check_peer(fd, pid, uid, what, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int cj_fc_uds_connect(int dirfd, const char *name, uid_t uid, pid_t pid, const char *what,
                      struct cj_err *err)
{
	return uds_connect(dirfd, name, uid, pid, what, 0, err);
}

/* ---- the connection, step by step ------------------------------------------ */

#define PAUSE_FIRST_MS 10
#define PAUSE_MAX_MS   200
/* Firecracker answers at once, OK or closing: one that keeps silent this
 * long is not waited for again. */
#define REPLY_MS 2000

void cj_fc_vsock_conn_init(struct cj_fc_vsock_conn *c)
{
	*c = (struct cj_fc_vsock_conn){.fd = -1};
}

void cj_fc_vsock_conn_cancel(struct cj_fc_vsock_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	cj_fc_vsock_conn_init(c);
}

void cj_fc_vsock_conn_start(struct cj_fc_vsock_conn *c, const struct cj_fc_vsock_target *t,
                            int timeout_ms)
{
	uint64_t now = cj_now_ns();

	cj_fc_vsock_conn_cancel(c);
	c->t = *t;
	c->active = true;
	c->deadline = now + (uint64_t)timeout_ms * 1000000u;
	c->retry_at = now;
	c->pause_ms = PAUSE_FIRST_MS;
}

bool cj_fc_vsock_conn_active(const struct cj_fc_vsock_conn *c)
{
	return c->active;
}

int cj_fc_vsock_conn_pollfd(const struct cj_fc_vsock_conn *c, struct pollfd *p)
{
	*p = (struct pollfd){.fd = -1};
	if (!c->active)
		return -1;
	if (c->fd >= 0) {
		*p = (struct pollfd){.fd = c->fd, .events = c->sent ? POLLIN : POLLOUT};
		return ms_left(c->reply_by < c->deadline ? c->reply_by : c->deadline);
	}
	return ms_left(c->retry_at < c->deadline ? c->retry_at : c->deadline);
}

/* The attempt failed with err: try again after a pause while it is worth
 * it (PENDING), else the connection fails (-1, err kept). */
static int retry_or_fail(struct cj_fc_vsock_conn *c, struct cj_err *err)
{
	uint64_t now = cj_now_ns();
	/* not there yet, or no listener yet: try again while time is left */
	bool early = err->errnum == ENOENT || err->errnum == ECONNREFUSED ||
	             err->errnum == ECONNRESET || err->errnum == EAGAIN;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->closed |= err->errnum == ECONNRESET;
	if (early && now < c->deadline) { /* the last attempt at the deadline */
		c->retry_at = now + (uint64_t)c->pause_ms * 1000000u;
		if (c->retry_at > c->deadline)
			c->retry_at = c->deadline;
		c->pause_ms = c->pause_ms * 2 > PAUSE_MAX_MS ? PAUSE_MAX_MS : c->pause_ms * 2;
		return CJ_FC_VSOCK_PENDING;
	}
	if ((early || err->errnum == ETIMEDOUT) && c->closed)
		cj_fail(err, ECONNRESET,
		        "Firecracker closed every connection: nothing in the guest listens on "
		        "that port");
	uint32_t port = c->t.port;
	cj_fc_vsock_conn_cancel(c);
	return cj_err_wrap(err, "the guest agent on vsock port %u", port);
}

/* Read what there is of the reply: the fd once it is OK, PENDING while
 * it is not complete, -1 (with err) otherwise. */
static int reply_step(struct cj_fc_vsock_conn *c, struct cj_err *err)
{
	int len = line_more(c->fd, c->line, &c->n, err);

	if (len < 0)
		return len;
	if (check_reply(c->line, len, c->t.port, err) < 0)
		return -1;
	int fd = c->fd;
	c->fd = -1;
	cj_fc_vsock_conn_init(c);
	return fd;
}

/* One attempt's next step: PENDING, the fd, or -1 with err. */
static int attempt_step(struct cj_fc_vsock_conn *c, struct cj_err *err)
{
	char req[32];
	int len;

	if (c->fd < 0) {
		c->fd = uds_connect(c->t.dirfd, c->t.name, c->t.uid, c->t.pid,
		                    "Firecracker's vsock socket", SOCK_NONBLOCK, err);
		if (c->fd < 0)
			return -1;
		c->sent = false;
		c->n = 0;
		c->reply_by = cj_now_ns() + (uint64_t)REPLY_MS * 1000000u;
	}
	if (!c->sent) {
		len = snprintf(req, sizeof req, "CONNECT %u\n", c->t.port);
		/* a fresh unix socket's buffer takes these few bytes at once */
		ssize_t w = send(c->fd, req, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return CJ_FC_VSOCK_PENDING;
		if (w != len)
			return cj_fail(err, w < 0 && errno != EPIPE ? errno : ECONNRESET,
			               "send CONNECT to Firecracker's vsock");
		c->sent = true;
	}
	return reply_step(c, err);
}

int cj_fc_vsock_conn_step(struct cj_fc_vsock_conn *c, struct cj_err *err)
{
	uint64_t now = cj_now_ns();
	int r;

	if (!c->active)
		return cj_fail(err, EINVAL, "no vsock connection under way");
	if (c->fd < 0 && now < c->retry_at)
		return CJ_FC_VSOCK_PENDING;
	r = attempt_step(c, err);
	if (r == CJ_FC_VSOCK_PENDING &&
	    (now >= c->deadline || (c->fd >= 0 && now >= c->reply_by))) {
		cj_fail(err, ETIMEDOUT, "Firecracker's vsock did not answer CONNECT");
		return retry_or_fail(c, err);
	}
	if (r == -1 && err->errnum == EPROTO) {
		uint32_t port = c->t.port;
		cj_fc_vsock_conn_cancel(c);
		return cj_err_wrap(err, "the guest agent on vsock port %u", port);
	}
	return r == -1 ? retry_or_fail(c, err) : r;
}

int cj_fc_vsock_connect(const struct cj_fc_vsock_target *t, int timeout_ms, struct cj_err *err)
{
	struct cj_fc_vsock_conn c;
	int r;

	cj_fc_vsock_conn_init(&c);
	cj_fc_vsock_conn_start(&c, t, timeout_ms);
	while ((r = cj_fc_vsock_conn_step(&c, err)) == CJ_FC_VSOCK_PENDING) {
		struct pollfd p;
		int ms = cj_fc_vsock_conn_pollfd(&c, &p);
		if (poll(&p, 1, ms) < 0 && errno != EINTR) {
			cj_fc_vsock_conn_cancel(&c);
			return cj_fail(err, errno, "wait for Firecracker's vsock");
		}
	}
	return r;
}
