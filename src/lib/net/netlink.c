/* SPDX-License-Identifier: Apache-2.0 */
/* rtnetlink through libmnl: link up/delete, addresses, and the address and
 * route dumps used to pick a free /30 and the uplink. */
#include "net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct mnl_socket *nl_open(struct cj_err *err)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);

	if (!nl) {
		cj_fail(err, errno, "netlink socket");
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		cj_fail(err, errno, "netlink bind");
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

/* Send one request and wait for its ACK (or run cb over a dump). */
int cj_nl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data, struct cj_err *err)
{
	char buf[32768]; /* room for a whole dump message batch */
	struct mnl_socket *nl = nl_open(err);
	unsigned seq = (unsigned)time(NULL), portid;
	int r;

	if (!nl)
		return -1;
	nlh->nlmsg_seq = seq;
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		mnl_socket_close(nl);
		return cj_fail(err, errno, "netlink send");
	}
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0) {
			r = -1;
			break;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
	} while (r > 0);
	if (r < 0) {
		int e = errno;
		mnl_socket_close(nl);
		return cj_fail(err, e, "netlink");
	}
	mnl_socket_close(nl);
	return 0;
}

int cj_nl_link_index(const char *name)
{
	unsigned idx = if_nametoindex(name);
	return idx ? (int)idx : -1;
}

int cj_nl_link_up(int index, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	ifm->ifi_change = IFF_UP;
	ifm->ifi_flags = IFF_UP;
	return cj_nl_talk(nlh, NULL, NULL, err) < 0 ? cj_err_wrap(err, "bring the TAP up") : 0;
}

int cj_nl_link_del(int index)
{
	char buf[8192];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;
	struct cj_err err = {0};

	nlh->nlmsg_type = RTM_DELLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	return cj_nl_talk(nlh, NULL, NULL, &err);
}

int cj_nl_addr_add(int index, uint32_t addr, unsigned prefix, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = (unsigned)index;
	mnl_attr_put_u32(nlh, IFA_LOCAL, addr);
	mnl_attr_put_u32(nlh, IFA_ADDRESS, addr);
	return cj_nl_talk(nlh, NULL, NULL, err) < 0 ? cj_err_wrap(err, "address the TAP") : 0;
}

static bool overlap(uint32_t a, unsigned pa, uint32_t b, unsigned pb)
{
	unsigned p = pa < pb ? pa : pb;
	uint32_t mask = p ? htonl(~0u << (32 - p)) : 0;
	return (a & mask) == (b & mask);
}

struct overlap_query {
	uint32_t net;
	unsigned prefix;
	bool hit;
	char iface[IF_NAMESIZE];
	bool want_default;
};

static int addr_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, IFA_MAX) < 0)
		return MNL_CB_OK;
	if ((type == IFA_ADDRESS || type == IFA_LOCAL) && mnl_attr_validate(a, MNL_TYPE_U32) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct overlap_query *q = data;
	const struct nlattr *tb[IFA_MAX + 1] = {0};
	struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);

	mnl_attr_parse(nlh, sizeof *ifa, addr_attr, tb);
	for (int t = IFA_ADDRESS; t <= IFA_LOCAL; t++)
		if (tb[t] &&
		    overlap(mnl_attr_get_u32(tb[t]), ifa->ifa_prefixlen, q->net, q->prefix))
			q->hit = true;
	return MNL_CB_OK;
}

static int route_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, RTA_MAX) < 0)
		return MNL_CB_OK;
	if ((type == RTA_DST || type == RTA_OIF || type == RTA_TABLE) &&
	    mnl_attr_validate(a, MNL_TYPE_U32) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct overlap_query *q = data;
	const struct nlattr *tb[RTA_MAX + 1] = {0};
	struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	uint32_t table = rtm->rtm_table;

	mnl_attr_parse(nlh, sizeof *rtm, route_attr, tb);
	if (tb[RTA_TABLE])
		table = mnl_attr_get_u32(tb[RTA_TABLE]);
	if (q->want_default) {
		if (rtm->rtm_dst_len == 0 && table == RT_TABLE_MAIN && tb[RTA_OIF] && !q->iface[0])
			if_indextoname(mnl_attr_get_u32(tb[RTA_OIF]), q->iface);
		return MNL_CB_OK;
	}
	if (rtm->rtm_dst_len && tb[RTA_DST] && table != RT_TABLE_LOCAL &&
	    overlap(mnl_attr_get_u32(tb[RTA_DST]), rtm->rtm_dst_len, q->net, q->prefix))
		q->hit = true;
	return MNL_CB_OK;
}

static int dump(int type, mnl_cb_t cb, struct overlap_query *q, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtgenmsg *g;

	nlh->nlmsg_type = (uint16_t)type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->rtgen_family = AF_INET;
	return cj_nl_talk(nlh, cb, q, err);
}

int cj_nl_overlaps(uint32_t net, unsigned prefix, bool *hit, struct cj_err *err)
{
	struct overlap_query q = {.net = net, .prefix = prefix};

	if (dump(RTM_GETADDR, addr_cb, &q, err) < 0 || dump(RTM_GETROUTE, route_cb, &q, err) < 0)
		return cj_err_wrap(err, "read the host's addresses and routes");
	*hit = q.hit;
	return 0;
}

int cj_nl_default_iface(char *name, size_t len, struct cj_err *err)
{
	struct overlap_query q = {.want_default = true};

	if (dump(RTM_GETROUTE, route_cb, &q, err) < 0)
		return cj_err_wrap(err, "read the host's routes");
	if (!q.iface[0])
		return cj_fail(
		    err, 0,
		    "the host has no IPv4 default route: set HOST_IFACE to the interface "
		    "to NAT through, or use --network none");
	snprintf(name, len, "%s", q.iface);
	return 0;
}

/* No IPv6 address of its own on the link (IN6_ADDR_GEN_MODE_NONE): what
 * is left where the disable_ipv6 sysctl cannot be written. */
int cj_nl_link_ipv6_no_addr(int index, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;
	struct nlattr *af_spec, *inet6;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	af_spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
	inet6 = mnl_attr_nest_start(nlh, AF_INET6);
	mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
	mnl_attr_nest_end(nlh, inet6);
	mnl_attr_nest_end(nlh, af_spec);
	return cj_nl_talk(nlh, NULL, NULL, err) < 0
	           ? cj_err_wrap(err, "switch off IPv6 addresses on the TAP")
	           : 0;
}

/* An fd attached to the TAP name, made if there is none: -1 with errno
 * (-2: /dev/net/tun cannot be opened). Async-signal-safe. */
static int tap_attach(const char *name)
{
	struct ifreq ifr = {0};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), e;

	if (fd < 0)
		return -2;
	memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) == 0)
		return fd;
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int cj_tap_open(const char *name, uid_t owner, struct cj_err *err)
{
	int fd = tap_attach(name);

	if (fd == -2)
		return cj_fail(err, errno,
		               "open /dev/net/tun (load the tun module; in a container, grant the "
		               "device /dev/net/tun)");
	if (fd < 0)
		return owner == (uid_t)-1
		           ? cj_fail(err, errno, "attach to TAP %s", name)
		           : cj_fail(err, errno, "create TAP %s (needs CAP_NET_ADMIN)", name);
	if (owner == (uid_t)-1)
		return fd;
	/* persistent, so the VMM can attach to it by name, as owner */
	if (ioctl(fd, TUNSETOWNER, (unsigned long)owner) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		int e = errno;
		close(fd);
		return cj_fail(err, e, "configure TAP %s", name);
	}
	close(fd);
	return 0;
}

#define KEEP_MAX 8

/* This process's nftables sockets (netlink, NETFILTER): closing the last
 * fd of one while a table's deletion is pending waits for that deletion's
 * grace period (nf_tables flushes its destroy work on the release). */
static size_t nfnetlink_fds(int *out, size_t max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t n = 0;

	while (d && (e = readdir(d)) && n < max) {
		int fd = atoi(e->d_name), v = 0;
		socklen_t len = sizeof v;
		if (fd == dirfd(d) || e->d_name[0] == '.' ||
		    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_NETLINK)
			continue;
		len = sizeof v;
		if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0 &&
		    v == NETLINK_NETFILTER)
			out[n++] = fd;
	}
	if (d)
		closedir(d);
	return n;
}

static int by_fd(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes the fds in [from, to) (close_range; one by one up to 4096
 * where the kernel has none). */
static void close_between(unsigned from, unsigned to)
{
	if (to <= from || close_range(from, to - 1, 0) == 0)
		return;
	for (unsigned fd = from; fd < to && fd < 4096; fd++)
		close((int)fd);
}

/* The grandchild of cj_tap_end_detached: closes every fd but keep[]
 * (sorted: its pipe to the caller and the nftables sockets), attaches to
 * the TAP, makes it end with its last fd, says so on ok, and closes it,
 * then the sockets. Async-signal-safe calls only (it is forked). */
static void tap_closer(const char *name, int ok, const int *keep, size_t nkeep)
{
	unsigned from = 0;
	int fd;

	for (size_t i = 0; i < nkeep; i++) {
		close_between(from, (unsigned)keep[i]);
		from = (unsigned)keep[i] + 1;
	}
	close_between(from, ~0u);
	if (chdir("/") < 0) /* pins no directory while it waits */
		_exit(1);
	if ((fd = tap_attach(name)) < 0 || ioctl(fd, TUNSETPERSIST, 0) < 0 ||
	    write(ok, "1", 1) != 1)
		_exit(1);
	close(fd); /* the unregistration, and its wait */
	_exit(0);  /* (the sockets' last close, and theirs) */
}

int cj_tap_end_detached(const char *name)
{
	int ok[2], keep[KEEP_MAX + 1];
	size_t nkeep;
	char c = 0;
	pid_t pid;

	if (cj_nl_link_index(name) <= 0 || pipe2(ok, O_CLOEXEC) < 0)
		return -1; /* (attaching to a name that is gone would make a TAP) */
	nkeep = nfnetlink_fds(keep, KEEP_MAX);
	keep[nkeep++] = ok[1];
	qsort(keep, nkeep, sizeof *keep, by_fd);
	if ((pid = fork()) == 0) {
		if (fork() == 0)
			tap_closer(name, ok[1], keep, nkeep);
		_exit(0);
	}
	close(ok[1]);
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		while (read(ok[0], &c, 1) < 0 && errno == EINTR)
			;
	}
	close(ok[0]);
	return c == '1' ? 0 : -1;
}
