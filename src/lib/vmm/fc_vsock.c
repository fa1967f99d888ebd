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

/* The reply line, without its '\n'; its length, or -1 with err. */
static int read_line(int fd, char *line, uint64_t deadline, struct cj_err *err)
{
	for (size_t n = 0; n < CJ_FC_VSOCK_LINE_MAX;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, ms_left(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return cj_fail(err, errno, "wait for Firecracker's vsock reply");
		if (pr == 0)
			return cj_fail(err, ETIMEDOUT,
			               "Firecracker's vsock did not answer CONNECT");
		ssize_t r = recv(fd, line + n, 1, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0 && errno != ECONNRESET)
			return cj_fail(err, errno, "read Firecracker's vsock reply");
		if (r <= 0)
			return cj_fail(err, ECONNRESET,
			               "Firecracker closed the connection: nothing in the guest "
			               "listens on that port (yet)");
		if (line[n] == '\n')
			return (int)n;
		n++;
	}
	return cj_fail(err, EPROTO, "Firecracker's vsock reply is longer than %d bytes",
	               CJ_FC_VSOCK_LINE_MAX);
}

int cj_fc_vsock_handshake(int fd, uint32_t port, int timeout_ms, struct cj_err *err)
{
	uint64_t deadline = cj_now_ns() + (uint64_t)timeout_ms * 1000000u;
	char req[32], line[CJ_FC_VSOCK_LINE_MAX], shown[CJ_FC_VSOCK_LINE_MAX * 4];
	int len = snprintf(req, sizeof req, "CONNECT %u\n", port);
	uint32_t host_port;

	/* a fresh unix socket's buffer takes these few bytes at once */
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len)
		return cj_fail(err, errno == EPIPE ? ECONNRESET : errno,
		               "send CONNECT to Firecracker's vsock");
	if ((len = read_line(fd, line, deadline, err)) < 0)
		return -1;
	if (cj_fc_vsock_parse_ok(line, (size_t)len, &host_port) < 0) {
		cj_sanitize(line, (size_t)len, shown, sizeof shown);
		return cj_fail(err, EPROTO, "Firecracker's vsock answered CONNECT %u with '%s'",
		               port, shown);
	}
	return 0;
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

int cj_fc_uds_connect(int dirfd, const char *name, uid_t uid, pid_t pid, const char *what,
                      struct cj_err *err)
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
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
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

static void nap(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cj_fc_vsock_connect(const struct cj_fc_vsock_target *t, int timeout_ms, struct cj_err *err)
{
	uint64_t deadline = cj_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int pause = 10;
	bool closed = false;

	for (;;) {
		int fd = cj_fc_uds_connect(t->dirfd, t->name, t->uid, t->pid,
		                           "Firecracker's vsock socket", err);
		if (fd >= 0 && cj_fc_vsock_handshake(fd, t->port, ms_left(deadline), err) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		/* not there yet, or no listener yet: try again while time is left */
		bool early = err->errnum == ENOENT || err->errnum == ECONNREFUSED ||
		             err->errnum == ECONNRESET;
		closed |= err->errnum == ECONNRESET;
		if (closed && err->errnum == ETIMEDOUT) /* time ran out in a retry */
			cj_fail(err, ECONNRESET,
			        "Firecracker closed every connection: nothing in the "
			        "guest listens on that port");
		if (!early || ms_left(deadline) == 0)
			return cj_err_wrap(err, "the guest agent on vsock port %u", t->port);
		nap(pause < ms_left(deadline) ? pause : ms_left(deadline));
		if (pause < 100)
			pause *= 2;
	}
}
