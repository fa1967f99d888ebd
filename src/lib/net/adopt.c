/* SPDX-License-Identifier: Apache-2.0 */
/* CJ_NET_ADOPT (net.h): the VM joins a network namespace an OCI engine
 * made for the container and takes over its interface. A TAP beside the
 * interface is bridged to it by tc redirects both ways (frames cross at
 * layer 2, whatever the engine's side is: a veth to a bridge, macvlan...);
 * the guest takes the interface's MAC, address, gateway and MTU, so the
 * engine's port publishing and DNS work unchanged. The interface keeps
 * its link but loses its addresses: the host stack in this namespace must
 * not answer ARP or connections in the guest's place. All netlink through
 * libmnl. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct iface {
	int index;
	uint8_t mac[6];
	bool have_mac;
	unsigned mtu;
	uint32_t addr; /* network order */
	unsigned prefix;
	bool have_addr;
	uint32_t gateway;
	bool had_ingress;
};

static struct nlmsghdr *request(char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	return nlh;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct iface *f = data;
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg))
	{
		if (mnl_attr_get_type(a) == IFLA_ADDRESS && mnl_attr_get_payload_len(a) == 6) {
			memcpy(f->mac, mnl_attr_get_payload(a), 6);
			f->have_mac = true;
		} else if (mnl_attr_get_type(a) == IFLA_MTU &&
		           mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
			f->mtu = mnl_attr_get_u32(a);
		}
	}
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct iface *f = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;

	if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != f->index || f->have_addr)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof *ifa)
	{
		if (mnl_attr_get_type(a) == IFA_LOCAL && mnl_attr_get_payload_len(a) == 4) {
			memcpy(&f->addr, mnl_attr_get_payload(a), 4);
			f->prefix = ifa->ifa_prefixlen;
			f->have_addr = true;
		}
	}
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct iface *f = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	uint32_t gw = 0;
	int oif = 0;

	if (rt->rtm_family != AF_INET || rt->rtm_dst_len != 0 || rt->rtm_table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof *rt)
	{
		if (mnl_attr_get_type(a) == RTA_GATEWAY && mnl_attr_get_payload_len(a) == 4)
			memcpy(&gw, mnl_attr_get_payload(a), 4);
		else if (mnl_attr_get_type(a) == RTA_OIF && mnl_attr_get_payload_len(a) == 4)
			oif = (int)mnl_attr_get_u32(a);
	}
	if (gw && oif == f->index && !f->gateway)
		f->gateway = gw;
	return MNL_CB_OK;
}

/* The interface's MAC, MTU, first IPv4 address and default gateway. */
static int iface_read(const char *name, struct iface *f, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct rtgenmsg *g;

	memset(f, 0, sizeof *f);
	if ((f->index = (int)if_nametoindex(name)) == 0)
		return cj_fail(err, errno, "the container's interface %s", name);
	nlh = request(buf, RTM_GETLINK, NLM_F_ACK); /* a reply, then the ACK ends the wait */
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *ifi);
	ifi->ifi_index = f->index;
	if (cj_nl_talk(nlh, link_cb, f, err) < 0)
		return cj_err_wrap(err, "read the link %s", name);
	nlh = request(buf, RTM_GETADDR, NLM_F_DUMP);
	g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->rtgen_family = AF_INET;
	if (cj_nl_talk(nlh, addr_cb, f, err) < 0)
		return cj_err_wrap(err, "read the addresses of %s", name);
	nlh = request(buf, RTM_GETROUTE, NLM_F_DUMP);
	g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->rtgen_family = AF_INET;
	if (cj_nl_talk(nlh, route_cb, f, err) < 0)
		return cj_err_wrap(err, "read the routes of %s", name);
	if (!f->have_mac || !f->have_addr)
		return cj_fail(err, 0, "the container's interface %s has no %s", name,
		               f->have_mac ? "IPv4 address" : "MAC address");
	return 0;
}

static int addr_del(const struct iface *f, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = request(buf, RTM_DELADDR, NLM_F_ACK);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);

	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)f->prefix;
	ifa->ifa_index = (unsigned)f->index;
	mnl_attr_put(nlh, IFA_LOCAL, 4, &f->addr);
	return cj_nl_talk(nlh, NULL, NULL, err);
}

static int link_mtu(int index, unsigned mtu, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = request(buf, RTM_NEWLINK, NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *ifi);

	ifi->ifi_index = index;
	mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return cj_nl_talk(nlh, NULL, NULL, err);
}

/* This network namespace, as "dev:ino". */
static int netns_id(char *buf, size_t len)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st) < 0)
		return -1;
	snprintf(buf, len, "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	return 0;
}

static int qdisc_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
	struct iface *f = data;

	if (tcm->tcm_ifindex == f->index && tcm->tcm_parent == TC_H_INGRESS)
		f->had_ingress = true;
	return MNL_CB_OK;
}

/* Has the interface an ingress qdisc (the engine's: then ours cannot be
 * added, and the undo must not remove it)? */
static int ingress_read(struct iface *f, struct cj_err *err)
{
	char buf[8192];
	struct nlmsghdr *nlh = request(buf, RTM_GETQDISC, NLM_F_DUMP);
	struct tcmsg *tcm = mnl_nlmsg_put_extra_header(nlh, sizeof *tcm);

	tcm->tcm_family = AF_UNSPEC;
	return cj_nl_talk(nlh, qdisc_cb, f, err);
}

/* "net.adopt": the interface as the engine gave it (its address, prefix
 * and gateway, in this namespace), pushed before it is changed. */
static int push_undo(const char *name, struct iface *f, struct cj_undo *undo, struct cj_err *err)
{
	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN] = "", ns[64], prefix[8];
	json_object *e;

	if (netns_id(ns, sizeof ns) < 0)
		return cj_fail(err, errno, "the network namespace of %s", name);
	if (ingress_read(f, err) < 0)
		return cj_err_wrap(err, "read the qdiscs of %s", name);
	inet_ntop(AF_INET, &f->addr, addr, sizeof addr);
	if (f->gateway)
		inet_ntop(AF_INET, &f->gateway, gw, sizeof gw);
	snprintf(prefix, sizeof prefix, "%u", f->prefix);
	e = json_object_new_object();
	json_object_object_add(e, "iface", json_object_new_string(name));
	json_object_object_add(e, "addr", json_object_new_string(addr));
	json_object_object_add(e, "prefix", json_object_new_string(prefix));
	json_object_object_add(e, "gateway", json_object_new_string(gw));
	json_object_object_add(e, "netns", json_object_new_string(ns));
	json_object_object_add(e, "ingress",
	                       json_object_new_string(f->had_ingress ? "engine" : "ours"));
	return cj_undo_push(undo, "net.adopt", e, err);
}

static void ingress_del(int index)
{
	char buf[8192];
	struct cj_err ignored = {0};
	struct nlmsghdr *nlh = request(buf, RTM_DELQDISC, NLM_F_ACK);
	struct tcmsg *tcm = mnl_nlmsg_put_extra_header(nlh, sizeof *tcm);

	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = index;
	tcm->tcm_handle = TC_H_MAKE(TC_H_INGRESS, 0);
	tcm->tcm_parent = TC_H_INGRESS;
	cj_nl_talk(nlh, NULL, NULL, &ignored);
}

static void default_route_add(const struct iface *f)
{
	char buf[8192];
	struct cj_err ignored = {0};
	struct nlmsghdr *nlh = request(buf, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof *rt);

	rt->rtm_family = AF_INET;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, 4, &f->gateway);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)f->index);
	cj_nl_talk(nlh, NULL, NULL, &ignored);
}

int cj_net_adopt_undo(json_object *entry)
{
	const char *name = cj_undo_str(entry, "iface"), *addr = cj_undo_str(entry, "addr");
	const char *gw = cj_undo_str(entry, "gateway"), *ns = cj_undo_str(entry, "netns");
	const char *prefix = cj_undo_str(entry, "prefix");
	struct iface f = {0};
	char here[64];

	/* only in its namespace (the run's teardown is there; gc elsewhere
	 * has nothing of it to give back: the engine owns that namespace) */
	if (!name || !addr || !ns || !prefix || netns_id(here, sizeof here) < 0 ||
	    strcmp(here, ns) != 0 || inet_pton(AF_INET, addr, &f.addr) != 1 ||
	    !(f.index = (int)if_nametoindex(name)))
		return 0;
	f.prefix = (unsigned)atoi(prefix);
	const char *ingress = cj_undo_str(entry, "ingress");
	if (ingress && strcmp(ingress, "ours") == 0)
		ingress_del(f.index); /* its redirect to the VM's TAP with it */
	struct cj_err ignored = {0};
	cj_nl_addr_add(f.index, f.addr, (unsigned)f.prefix, &ignored); /* EEXIST: back already */
	if (gw && *gw && inet_pton(AF_INET, gw, &f.gateway) == 1)
		default_route_add(&f);
	return 0;
}

int cj_net_adopt(const struct cj_net_spec *spec, const char *id, uid_t owner_uid,
                 struct cj_undo *undo, struct cj_net *out, struct cj_err *err)
{
	struct iface f;
	json_object *entry;
	int tap;

	if (iface_read(spec->adopt_iface, &f, err) < 0)
		return -1;
	snprintf(out->id, sizeof out->id, "%s", id);
	snprintf(out->tap, sizeof out->tap, "cj-%.12s", id);
	entry = json_object_new_object();
	json_object_object_add(entry, "name", json_object_new_string(out->tap));
	if (cj_undo_push(undo, "net.tap", entry, err) < 0 ||
	    cj_tap_open(out->tap, owner_uid, err) < 0)
		return -1;
	out->active = true;
	if ((tap = cj_nl_link_index(out->tap)) < 0)
		return cj_fail(err, errno, "the VM's TAP %s", out->tap);
	if (push_undo(spec->adopt_iface, &f, undo, err) < 0)
		return -1;
	if ((f.mtu && link_mtu(tap, f.mtu, err) < 0) || cj_nl_link_ipv6_no_addr(tap, err) < 0 ||
	    cj_nl_link_up(tap, err) < 0 ||
	    cj_tc_bridge((unsigned)f.index, (unsigned)tap, err) < 0 || addr_del(&f, err) < 0)
		return cj_err_wrap(err, "bridge %s to the VM", spec->adopt_iface);
	out->guest_addr = f.addr;
	out->prefix = f.prefix;
	out->host_addr = f.gateway;
	out->mtu = f.mtu;
	memcpy(out->mac, f.mac, 6);
	out->ndns = spec->ndns;
	memcpy(out->dns, spec->dns, spec->ndns * sizeof *spec->dns);
	out->firewall = CJ_FW_NONE;
	return 0;
}
