/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A network namespace per VM, for a VMM that must open its TAP by name
 * (Firecracker's jailer joins it with --netns): the VMM then sees only its
 * own TAP, not the host's loopback services, abstract unix sockets, uplink
 * or the other VMs' TAPs. QEMU needs none of this: it gets its TAP as an
 * fd and an empty namespace from its jail (vmm/qemu.c).
 *
 *   host namespace                 | the VM's namespace (<run dir>/netns)
 *   <tap name>: veth, host address | cj-host: veth <-tc redirect-> <tap name>: TAP
 *   firewall rules match this name |                                (VMM's fd)
 *
 * Frames cross the namespace at layer 2: an ingress qdisc on the TAP and on
 * the inner veth end, each with a u32 match-all filter whose mirred action
 * redirects the frame to the other's egress (the way CNI's tc-redirect-tap
 * plugin wires Firecracker). Nothing in the namespace routes, has an
 * address, or speaks IPv6; the host end takes over the TAP's role, so
 * addressing, NAT, published ports and the firewall are unchanged.
 *
 * All work inside the namespace runs on a short-lived thread that unshares
 * its own network namespace: namespaces of a thread are its own, so the
 * caller's thread never leaves the host's namespace, whatever fails.
 * Netlink messages are built with libmnl.
 */
#include "netns.h"

#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define NL_BUF 8192 /* a request, or an ACK */

struct ns_job {
	const char *path, *tap, *host_end;
	uid_t owner;
	int host_ns; /* the caller's namespace, where host_end goes */
	int rc;
	struct cj_err err;
};

/* ---- rtnetlink on a given socket (libmnl) --------------------------------- */

static struct nlmsghdr *request(char *buf, uint16_t type, uint16_t flags, struct tcmsg **tcm)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = (unsigned)time(NULL);
	if (tcm) {
		*tcm = mnl_nlmsg_put_extra_header(nlh, sizeof **tcm);
		(*tcm)->tcm_family = AF_UNSPEC;
	}
	return nlh;
}

/* Send one request and wait for its ACK. */
static int talk(struct mnl_socket *nl, struct nlmsghdr *nlh, struct cj_err *err, const char *what)
{
	char buf[NL_BUF];
	unsigned seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nl);
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return cj_fail(err, errno, "%s: netlink send", what);
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0)
			return cj_fail(err, errno, "%s: netlink receive", what);
		r = mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL);
	} while (r > 0);
	return r < 0 ? cj_fail(err, errno, "%s", what) : 0;
}

/* A veth pair: `inner` here, its peer `host_end` in the namespace host_ns. */
static int veth_add(struct mnl_socket *nl, const char *inner, const char *host_end, int host_ns,
                    struct cj_err *err)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, NULL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);
	struct nlattr *info, *data, *peer;

	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, inner);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* the peer's description is an ifinfomsg of its own, then attributes */
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host_end);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)host_ns);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return talk(nl, nlh, err, "create the veth pair to the host");
}

static int link_up(struct mnl_socket *nl, unsigned index, struct cj_err *err)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = request(buf, RTM_NEWLINK, 0, NULL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof *ifm);

	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = (int)index;
	ifm->ifi_change = IFF_UP;
	ifm->ifi_flags = IFF_UP;
	return talk(nl, nlh, err, "bring a link of the VM's namespace up");
}

/* The ingress qdisc (ffff:) that holds the redirect filter. */
static int ingress_add(struct mnl_socket *nl, unsigned index, struct cj_err *err)
{
	char buf[NL_BUF];
	struct tcmsg *tcm;
	struct nlmsghdr *nlh = request(buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, &tcm);

	tcm->tcm_ifindex = (int)index;
	tcm->tcm_handle = TC_H_MAKE(TC_H_INGRESS, 0);
	tcm->tcm_parent = TC_H_INGRESS;
	mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
	return talk(nl, nlh, err, "add an ingress qdisc (the kernel needs sch_ingress)");
}

/* Every frame received on `from` leaves through `to`: a u32 filter whose
 * one key has mask 0 (matches all), with a mirred egress redirect. */
static int redirect_add(struct mnl_socket *nl, unsigned from, unsigned to, struct cj_err *err)
{
	char buf[NL_BUF];
	struct tc_u32_sel sel = {.flags = TC_U32_TERMINAL, .nkeys = 1};
	struct tc_u32_key any = {.mask = 0, .val = 0};
	struct tc_mirred mirred = {
	    .action = TC_ACT_STOLEN, .eaction = TCA_EGRESS_REDIR, .ifindex = to};
	char selbuf[sizeof sel + sizeof any];
	struct nlattr *opts, *acts, *act, *aopts;
	struct tcmsg *tcm;
	struct nlmsghdr *nlh = request(buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, &tcm);

	tcm->tcm_ifindex = (int)from;
	tcm->tcm_parent = TC_H_MAKE(TC_H_INGRESS, 0);
	tcm->tcm_info = TC_H_MAKE(1u << 16, htons(ETH_P_ALL)); /* priority 1, every protocol */
	mnl_attr_put_strz(nlh, TCA_KIND, "u32");
	opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
	memcpy(selbuf, &sel, sizeof sel); /* the selector and its keys[] */
	memcpy(selbuf + sizeof sel, &any, sizeof any);
	mnl_attr_put(nlh, TCA_U32_SEL, sizeof selbuf, selbuf);
	acts = mnl_attr_nest_start(nlh, TCA_U32_ACT);
	act = mnl_attr_nest_start(nlh, 1); /* the first action of the list */
	mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
	aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
	mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof mirred, &mirred);
	mnl_attr_nest_end(nlh, aopts);
	mnl_attr_nest_end(nlh, act);
	mnl_attr_nest_end(nlh, acts);
	mnl_attr_nest_end(nlh, opts);
	return talk(nl, nlh, err, "add the tc redirect (the kernel needs cls_u32 and act_mirred)");
}

int cj_tc_bridge(unsigned a, unsigned b, struct cj_err *err)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	int r = -1;

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		cj_fail(err, errno, "netlink socket");
	else if (ingress_add(nl, a, err) == 0 && ingress_add(nl, b, err) == 0 &&
	         redirect_add(nl, a, b, err) == 0 && redirect_add(nl, b, a, err) == 0)
		r = 0;
	if (nl)
		mnl_socket_close(nl);
	return r;
}

/* ---- inside the namespace (on the worker thread) --------------------------- */

/* No IPv6 on links created or moved here from now on: the namespace only
 * carries frames, and its links' own IPv6 chatter (DAD, router
 * solicitations) would otherwise reach the guest and the host. Best
 * effort: where /proc/sys is read-only (a container) the redirects still
 * steal every frame before the namespace's stack sees it. */
static void ipv6_off(void)
{
	static const char *const confs[] = {"/proc/sys/net/ipv6/conf/default/disable_ipv6",
	                                    "/proc/sys/net/ipv6/conf/all/disable_ipv6"};

	for (size_t i = 0; i < sizeof confs / sizeof confs[0]; i++) {
		int fd = open(confs[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "1", 1) != 1) {
				/* best effort, see above */
			}
			close(fd);
		}
	}
}

static int wire(struct ns_job *j, struct mnl_socket *nl)
{
	unsigned tap, inner;

	if (cj_tap_open(j->tap, j->owner, &j->err) < 0 ||
	    veth_add(nl, CJ_NETNS_INNER_LINK, j->host_end, j->host_ns, &j->err) < 0)
		return -1;
	/* names resolve in this thread's namespace */
	tap = if_nametoindex(j->tap);
	inner = if_nametoindex(CJ_NETNS_INNER_LINK);
	if (!tap || !inner)
		return cj_fail(&j->err, errno, "find the links of the VM's network namespace");
	if (link_up(nl, tap, &j->err) < 0 || link_up(nl, inner, &j->err) < 0 ||
	    ingress_add(nl, tap, &j->err) < 0 || ingress_add(nl, inner, &j->err) < 0 ||
	    redirect_add(nl, tap, inner, &j->err) < 0 || redirect_add(nl, inner, tap, &j->err) < 0)
		return -1;
	return 0;
}

static void *job_run(void *arg)
{
	struct ns_job *j = arg;
	struct mnl_socket *nl;

	j->rc = -1;
	/* This thread only: the rest of the process stays where it is. */
	if (unshare(CLONE_NEWNET) < 0) {
		cj_fail(&j->err, errno, "create a network namespace (needs CAP_SYS_ADMIN)");
		return NULL;
	}
	ipv6_off();
	if (mount("/proc/thread-self/ns/net", j->path, NULL, MS_BIND, NULL) < 0) {
		cj_fail(&j->err, errno, "pin the VM's network namespace on %s", j->path);
		return NULL;
	}
	if (!j->tap) {
		j->rc = 0;
		return NULL;
	}
	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC); /* bound to this namespace */
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		cj_fail(&j->err, errno, "netlink socket in the VM's network namespace");
		if (nl)
			mnl_socket_close(nl);
		return NULL;
	}
	j->rc = wire(j, nl);
	mnl_socket_close(nl);
	return NULL;
}

/* ---- the caller's side ------------------------------------------------------- */

/* The host end carries only IPv4 (the guest is given no IPv6). Best
 * effort, as in ipv6_off(). */
static void host_end_ipv6_off(const char *name)
{
	char path[128];
	int fd;

	snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1) {
			/* best effort */
		}
		close(fd);
	}
}

int cj_netns_create(const char *path, const char *tap, uid_t owner, const char *host_end,
                    struct cj_err *err)
{
	struct ns_job j = {.path = path, .tap = tap, .host_end = host_end, .owner = owner};
	pthread_t thread;
	int fd, e;

	/* the mount point: a new, empty file */
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0)
		return cj_fail(err, errno, "create %s", path);
	close(fd);
	j.host_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (j.host_ns < 0)
		return cj_fail(err, errno, "open this thread's network namespace");
	e = pthread_create(&thread, NULL, job_run, &j);
	if (e == 0)
		e = pthread_join(thread, NULL);
	close(j.host_ns);
	if (e)
		return cj_fail(err, e, "network namespace thread");
	if (j.rc < 0) {
		*err = j.err;
		return -1;
	}
	if (tap)
		host_end_ipv6_off(host_end);
	return 0;
}

int cj_netns_remove(const char *path)
{
	/* Best effort, like the rest of teardown. Not mounted here (never, or in
	 * a private mount namespace that has gone with its runtime): then only
	 * the file is left; a mount that cannot go keeps the file, and the run
	 * directory, visible for the next gc. */
	umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}
