/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets through sock_diag (inet_diag_req_v2 dumps over
 * NETLINK_SOCK_DIAG, built and parsed with libmnl), and the process that
 * holds one (its inode among /proc/PID/fd links). */
#include "sockdiag.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct listeners {
	struct cj_listener *v;
	size_t n, cap;
	bool udp;
	bool oom;
};

static int diag_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, INET_DIAG_MAX) < 0)
		return MNL_CB_OK;
	if (type == INET_DIAG_SKV6ONLY && mnl_attr_validate(a, MNL_TYPE_U8) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int diag_cb(const struct nlmsghdr *nlh, void *data)
{
	struct listeners *acc = data;
	const struct nlattr *tb[INET_DIAG_MAX + 1] = {0};
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);
	struct cj_listener *l;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof *m)
		return MNL_CB_OK;
	/* a connected UDP socket only takes its peer's replies */
	if (acc->udp && m->id.idiag_dport != 0)
		return MNL_CB_OK;
	if (acc->n == acc->cap) {
		size_t cap = acc->cap ? acc->cap * 2 : 32;
		struct cj_listener *v = realloc(acc->v, cap * sizeof *v);
		if (!v) {
			acc->oom = true;
			return MNL_CB_ERROR;
		}
		acc->v = v;
		acc->cap = cap;
	}
	mnl_attr_parse(nlh, sizeof *m, diag_attr, tb);
	l = &acc->v[acc->n++];
	memset(l, 0, sizeof *l);
	l->family = m->idiag_family;
	l->udp = acc->udp;
	memcpy(l->addr, m->id.idiag_src, m->idiag_family == AF_INET6 ? 16 : 4);
	l->port = ntohs(m->id.idiag_sport);
	l->v6only = tb[INET_DIAG_SKV6ONLY] && mnl_attr_get_u8(tb[INET_DIAG_SKV6ONLY]);
	l->inode = m->idiag_inode;
	return MNL_CB_OK;
}

/* One dump of one family. An absent handler (IPv6 switched off, or the
 * diag module not loadable) answers ENOENT; that is the caller's call. */
static int dump_family(struct mnl_socket *nl, int family, struct listeners *acc)
{
	char buf[32768]; /* room for a whole dump batch */
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct inet_diag_req_v2 *req;
	unsigned seq = (unsigned)time(NULL), portid = mnl_socket_get_portid(nl);
	int r;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	req = mnl_nlmsg_put_extra_header(nlh, sizeof *req);
	req->sdiag_family = (uint8_t)family;
	req->sdiag_protocol = acc->udp ? IPPROTO_UDP : IPPROTO_TCP;
	/* unconnected UDP sockets are in TCP_CLOSE */
	req->idiag_states = acc->udp ? 1u << TCP_CLOSE : 1u << TCP_LISTEN;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0)
			return -1;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, diag_cb, acc);
	} while (r > 0);
	if (acc->oom)
		errno = ENOMEM;
	return r < 0 ? -1 : 0;
}

int cj_sockdiag_listeners(bool udp, struct cj_listener **out, size_t *n, struct cj_err *err)
{
	struct listeners acc = {.udp = udp};
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	const char *proto = udp ? "UDP" : "TCP";

	*out = NULL;
	*n = 0;
	if (!nl)
		return cj_fail(err, errno, "sock_diag socket");
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(nl);
		return cj_fail(err, e, "sock_diag bind");
	}
	if (dump_family(nl, AF_INET, &acc) < 0) {
		int e = errno;
		mnl_socket_close(nl);
		free(acc.v);
		return cj_fail(err, e, "list the host's IPv4 %s sockets (sock_diag)", proto);
	}
	/* no IPv6 on this host: nothing listens there */
	if (dump_family(nl, AF_INET6, &acc) < 0 && errno != ENOENT && errno != EAFNOSUPPORT) {
		int e = errno;
		mnl_socket_close(nl);
		free(acc.v);
		return cj_fail(err, e, "list the host's IPv6 %s sockets (sock_diag)", proto);
	}
	mnl_socket_close(nl);
	*out = acc.v;
	*n = acc.n;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

bool cj_listener_shadowed(const struct cj_listener *l, uint32_t host_ip, uint16_t port, bool udp)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const uint8_t *v4;

	if (l->udp != udp || l->port != port)
		return false;
	if (l->family == AF_INET) {
		v4 = l->addr;
	} else if (l->family == AF_INET6) {
		if (all_zero(l->addr, 16))
			return !l->v6only;
		if (memcmp(l->addr, v4mapped, sizeof v4mapped) != 0)
			return false; /* an IPv6 address: IPv4 never reaches it */
		v4 = l->addr + 12;
	} else {
		return false;
	}
	/* the DNAT of "every address" covers any listener's address */
	return host_ip == 0 || all_zero(v4, 4) || memcmp(v4, &host_ip, 4) == 0;
}

void cj_listener_addr_str(const struct cj_listener *l, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(l->family, l->addr, a, sizeof a);
	if (l->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a, l->port);
	else
		snprintf(buf, len, "%s:%u", a, l->port);
}

static bool holds_socket(const char *pid, const char *want)
{
	char path[64], link[64];
	struct dirent *de;
	DIR *d;
	bool found = false;

	snprintf(path, sizeof path, "/proc/%s/fd", pid);
	if (!(d = opendir(path)))
		return false;
	while (!found && (de = readdir(d))) {
		char fd_path[128];
		ssize_t n;
		if (de->d_name[0] == '.')
			continue;
		snprintf(fd_path, sizeof fd_path, "%s/%s", path, de->d_name);
		n = readlink(fd_path, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		found = strcmp(link, want) == 0;
	}
	closedir(d);
	return found;
}

int cj_socket_owner(uint32_t inode, pid_t *pid, char *comm, size_t len)
{
	char want[64];
	struct dirent *de;
	DIR *d = opendir("/proc");
	int r = -1;

	if (!d || len == 0) {
		if (d)
			closedir(d);
		return -1;
	}
	snprintf(want, sizeof want, "socket:[%u]", inode);
	while (r < 0 && (de = readdir(d))) {
		char path[128];
		FILE *f;
		if (!isdigit((unsigned char)de->d_name[0]) || !holds_socket(de->d_name, want))
			continue;
		*pid = (pid_t)atoi(de->d_name);
		snprintf(comm, len, "?");
		snprintf(path, sizeof path, "/proc/%s/comm", de->d_name);
		if ((f = fopen(path, "re"))) {
			if (fgets(comm, (int)len, f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		/* the name is the process's own choice: never raw to a terminal */
		for (char *c = comm; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				*c = '?';
		r = 0;
	}
	closedir(d);
	return r;
}
