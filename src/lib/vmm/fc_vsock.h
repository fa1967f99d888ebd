/* SPDX-License-Identifier: Apache-2.0 */
/* Firecracker's vsock, seen from the host: Firecracker listens on a unix
 * socket (the /vsock body's uds_path). A host connection becomes a
 * connection to a guest port once the host has written "CONNECT <port>\n"
 * and read Firecracker's "OK <host port>\n"; when nothing in the guest
 * listens on that port, Firecracker closes the connection instead. Every
 * byte after the OK line belongs to the guest. */
#ifndef CJ_FC_VSOCK_H
#define CJ_FC_VSOCK_H

#include "util/err.h"

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest reply line accepted, '\n' included ("OK 4294967295\n" is 14). */
#define CJ_FC_VSOCK_LINE_MAX 32

/* 0 when line (len bytes, without its '\n') is "OK <decimal u32>", with
 * that port in *host_port; else -1. */
int cj_fc_vsock_parse_ok(const char *line, size_t len, uint32_t *host_port);

/* CONNECT port on fd, a fresh connection to Firecracker's vsock socket,
 * and read the reply within timeout_ms, one byte at a time so that
 * nothing of the guest's stream behind it is consumed. 0 on OK; else -1
 * with errnum ECONNRESET (Firecracker closed it: no listener in the guest
 * yet), ETIMEDOUT, or EPROTO (anything but an OK line). */
int cj_fc_vsock_handshake(int fd, uint32_t port, int timeout_ms, struct cj_err *err);

/* Where the socket is and who may serve it. */
struct cj_fc_vsock_target {
	int dirfd;        /* the directory holding it, opened before the VMM ran */
	const char *name; /* its name there: one component, never followed if a symlink */
	uid_t uid;        /* the socket file's owner (the VMM's uid) */
	pid_t pid;        /* the listening process (SO_PEERCRED); 0: not checked */
	uint32_t port;    /* the guest's port */
};

/* A connection to t's socket that nothing the VMM's uid can write
 * redirects (the name is opened O_PATH | O_NOFOLLOW in dirfd and must be a
 * socket owned by uid; the connection goes to that inode through
 * /proc/self/fd; its listener must be pid), what: its name in messages.
 * Returns the connected fd (close-on-exec) or -1 with errnum ENOENT or
 * ECONNREFUSED when nothing listens there yet. */
int cj_fc_uds_connect(int dirfd, const char *name, uid_t uid, pid_t pid, const char *what,
                      struct cj_err *err);

/* A connection to the guest's port t->port through Firecracker's vsock
 * socket, the handshake done. Retries, until timeout_ms has passed, while
 * the socket is not there yet or Firecracker closes the connection (the
 * guest does not listen yet); a reply that is not OK fails at once.
 * Returns the fd or -1 with a one-line error. */
int cj_fc_vsock_connect(const struct cj_fc_vsock_target *t, int timeout_ms, struct cj_err *err);

/* The same, step by step, for a poll loop that must not wait on it:
 * start it, poll the fd cj_fc_vsock_conn_pollfd gives (-1: none) for at
 * most the ms it returns, and call cj_fc_vsock_conn_step after that
 * poll, whatever it reported. step returns CJ_FC_VSOCK_PENDING while the
 * connection is under way, the connected fd (the caller's; c is idle
 * again) or -1 with err (idle again). The socket's checks are those of
 * cj_fc_uds_connect at each attempt; a Firecracker that does not answer
 * an attempt's CONNECT within 2 s fails it (ETIMEDOUT), however long
 * timeout_ms is. */
#define CJ_FC_VSOCK_PENDING (-2)
struct cj_fc_vsock_conn {
	struct cj_fc_vsock_target t; /* t.name is not copied */
	int fd;                      /* this attempt's socket, or -1 */
	bool active, sent, closed;
	uint64_t deadline, retry_at, reply_by;
	int pause_ms;
	size_t n; /* of the reply line so far */
	char line[CJ_FC_VSOCK_LINE_MAX];
};
void cj_fc_vsock_conn_init(struct cj_fc_vsock_conn *c);
void cj_fc_vsock_conn_start(struct cj_fc_vsock_conn *c, const struct cj_fc_vsock_target *t,
                            int timeout_ms);
bool cj_fc_vsock_conn_active(const struct cj_fc_vsock_conn *c);
/* *p to poll (fd -1: only the timer); the ms to wait at most, -1 when idle. */
int cj_fc_vsock_conn_pollfd(const struct cj_fc_vsock_conn *c, struct pollfd *p);
int cj_fc_vsock_conn_step(struct cj_fc_vsock_conn *c, struct cj_err *err);
/* Stop it (its socket closed); idle again. */
void cj_fc_vsock_conn_cancel(struct cj_fc_vsock_conn *c);

#endif
