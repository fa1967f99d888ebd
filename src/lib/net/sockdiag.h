/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets of this network namespace, read with sock_diag
 * (NETLINK_SOCK_DIAG) through libmnl: publishing a port must not silently
 * take the traffic of a host service already listening on it. */
#ifndef CJ_SOCKDIAG_H
#define CJ_SOCKDIAG_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cj_listener {
	int family;       /* AF_INET or AF_INET6 */
	bool udp;         /* else TCP */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
	uint16_t port;    /* host order */
	bool v6only;      /* AF_INET6 only: takes no IPv4 traffic */
	uint32_t inode;   /* of the socket, to find its process */
};

/* Every TCP socket in LISTEN state (udp false), or every bound, unconnected
 * UDP socket (udp true), IPv4 and IPv6. *out is malloc'ed (caller frees). */
int cj_sockdiag_listeners(bool udp, struct cj_listener **out, size_t *n, struct cj_err *err);

/* Would an IPv4 DNAT of host_ip:port (host_ip in network order, 0 = every
 * local address) take traffic meant for this listener? A [::] socket takes
 * IPv4 too unless it is v6only; ::ffff:a.b.c.d is a.b.c.d. */
bool cj_listener_shadowed(const struct cj_listener *l, uint32_t host_ip, uint16_t port, bool udp);

/* "0.0.0.0:8000", "[::]:8000" */
void cj_listener_addr_str(const struct cj_listener *l, char *buf, size_t len);

/* The process holding the socket (the first found in /proc/PID/fd), its
 * name made printable. Returns 0, or -1 when none is visible. */
int cj_socket_owner(uint32_t inode, pid_t *pid, char *comm, size_t len);

#endif
