/* SPDX-License-Identifier: Apache-2.0 */
/* Networking of a VM: one TAP and one /30 per VM, NAT out of the uplink,
 * published ports, host DNS, and teardown of exactly what was added. */
#ifndef CJ_NET_H
#define CJ_NET_H

#include "util/err.h"
#include "util/undo.h"

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CJ_MAX_PORTS 64
#define CJ_MAX_DNS   3

/* CJ_NET_ADOPT: the VM takes over an interface of the current network
 * namespace (an OCI engine's container interface, adopt.c). */
enum cj_net_mode { CJ_NET_TAP, CJ_NET_NONE, CJ_NET_ADOPT };
enum cj_firewall { CJ_FW_AUTO, CJ_FW_NFT, CJ_FW_IPTABLES_LEGACY, CJ_FW_IPTABLES_NFT, CJ_FW_NONE };

struct cj_port {
	uint32_t host_ip; /* network order; 0 = every address */
	uint16_t host_port;
	uint16_t guest_port;
	bool udp;
};

/* What the guest may reach (egress.c). UNSET: allow, or deny when an
 * allow-list is given (cj_egress_resolve). */
enum cj_egress { CJ_EGRESS_UNSET, CJ_EGRESS_ALLOW, CJ_EGRESS_DENY };
enum cj_egress_proto { CJ_EGRESS_TCP_UDP, CJ_EGRESS_TCP, CJ_EGRESS_UDP };
#define CJ_MAX_EGRESS 32

/* --allow-egress CIDR[:PORT[/tcp|/udp]] */
struct cj_egress_rule {
	uint32_t net;    /* network order, host bits clear */
	unsigned prefix; /* 0-32 */
	uint16_t port;   /* 0: every port of every protocol */
	enum cj_egress_proto proto;
};

struct cj_net_spec {
	enum cj_net_mode mode;
	char *tap_ip;     /* TAP_IP: "a.b.c.d/30" for the host side, or NULL */
	char *host_iface; /* HOST_IFACE, or NULL: the default-route interface */
	enum cj_firewall firewall;
	struct cj_port ports[CJ_MAX_PORTS];
	size_t nports;
	uint32_t dns[CJ_MAX_DNS]; /* --dns overrides; network order */
	size_t ndns;
	enum cj_egress egress; /* --egress */
	struct cj_egress_rule allow_egress[CJ_MAX_EGRESS];
	size_t nallow_egress;
	bool allow_link_local; /* --allow-link-local: 169.254.0.0/16 reachable */
	/* Not from the user: the run sets it for a VMM that opens its TAP by
	 * name in a jail (Firecracker), which then gets a network namespace of
	 * its own (net/netns.h), holding only its TAP (none with CJ_NET_NONE). */
	bool own_netns;
	char adopt_iface[IFNAMSIZ]; /* CJ_NET_ADOPT: the interface the guest takes over */
};

struct cj_net {
	bool active;
	char id[16];
	char tap[IFNAMSIZ];
	char uplink[IFNAMSIZ];
	uint32_t host_addr, guest_addr; /* network order */
	unsigned prefix;
	uint8_t mac[6];
	unsigned mtu; /* 0: 1500 */
	uint32_t dns[CJ_MAX_DNS];
	size_t ndns;
	enum cj_firewall firewall;
	struct cj_undo *undo; /* the run's undo log: what was added */
	/* The VM's own network namespace (an nsfs bind mount in the run dir) or
	 * "". With one, the TAP lives there and `tap` here names the host end
	 * of the veth pair that leads to it. */
	char netns[4096];
};

/* Parsers for the command line and environment (unit-tested). */
int cj_port_parse(const char *arg, struct cj_port *out, struct cj_err *err);
int cj_publish_env_parse(const char *value, struct cj_net_spec *spec, struct cj_err *err);
int cj_cidr30_parse(const char *arg, uint32_t *host, uint32_t *guest, struct cj_err *err);
int cj_ipv4_parse(const char *arg, uint32_t *out);
/* 1 to 5 decimal digits, at most max. */
int cj_decimal_parse(const char *s, unsigned long max, unsigned long *out);

/* Egress policy (egress.c). what names the option or variable in errors. */
int cj_egress_mode_parse(const char *arg, const char *what, enum cj_egress *out,
                         struct cj_err *err);
int cj_egress_rule_parse(const char *arg, const char *what, struct cj_egress_rule *out,
                         struct cj_err *err);
/* Append one rule, or a comma/space separated list (CTR_JAILER_ALLOW_EGRESS). */
int cj_allow_egress_add(struct cj_net_spec *spec, const char *arg, const char *what,
                        struct cj_err *err);
int cj_allow_egress_list_parse(const char *value, const char *what, struct cj_net_spec *spec,
                               struct cj_err *err);
/* Settle the policy once every option is read: UNSET becomes ALLOW, or DENY
 * with an allow-list; contradictions are refused. */
int cj_egress_resolve(struct cj_net_spec *spec, struct cj_err *err);
bool cj_egress_denies(const struct cj_net_spec *spec);
/* Firewall text for the policy, resolvers dns[ndns] always reachable on
 * port 53. nft: the "egress" chain the forward chain jumps to, and a base
 * chain dropping link-local destinations on the host itself (tap);
 * iptables: one rule per line, the arguments after the chain name.
 * NULL when out of memory; caller frees. */
char *cj_egress_nft_chains(const struct cj_net_spec *spec, const char *tap, const uint32_t *dns,
                           size_t ndns);
char *cj_egress_ipt_rules(const struct cj_net_spec *spec, const uint32_t *dns, size_t ndns);

/* Create the TAP (owned by owner_uid), address it, add firewall rules.
 * Each change is pushed to undo before it is made ("net.*" entries, undone
 * by cj_net_undo when the run's record is torn down or collected, also
 * after a failure here); the network namespace, if any, is pinned in
 * run_dir. Published ports are claimed in undo too (net.port), checked
 * against the other runs' under undo's "net" lock. */
int cj_net_setup(const struct cj_net_spec *spec, const char *id, const char *run_dir,
                 uid_t owner_uid, struct cj_undo *undo, struct cj_net *out, struct cj_err *err);
/* Undo one "net.*" entry (util/undo.h): idempotent; < 0 while the change
 * may still be in place (a TAP or namespace that would not go). */
int cj_net_undo(json_object *entry, bool verbose);
/* The one TAP open (netlink.c). owner (uid_t)-1: an fd attached to the
 * VM's existing TAP, to hand to a VMM that takes one (QEMU's -netdev
 * tap,fd=N): the VMM then needs neither /dev/net/tun nor any privilege
 * over the device. Else: create the TAP persistent, owned by owner (the
 * VMM attaches by name), and return 0. */
int cj_tap_open(const char *name, uid_t owner, struct cj_err *err);
/* Ends the TAP name without waiting for it (netlink.c): the kernel's
 * unregistration of a device waits for RCU grace periods (10 to 30 ms) in
 * the process that removes it. A TAP that is not persistent ends with its
 * last fd, so one is handed to a process of its own that only closes it:
 * nothing waits for that process, and its death, however it comes, closes
 * the fd. It keeps this process's nftables sockets as long, so that their
 * last close, which waits for a pending table deletion, is its too. -1
 * when that could not be done (the caller removes the TAP itself). */
int cj_tap_end_detached(const char *name);

/* CJ_NET_ADOPT (adopt.c): a TAP (cj-<id>, owned by owner_uid) bridged to
 * spec->adopt_iface by tc redirects both ways; the guest takes the
 * interface's MAC, address, gateway and MTU, and the interface loses its
 * addresses (the host stack must not answer in the guest's place). */
int cj_net_adopt(const struct cj_net_spec *spec, const char *id, uid_t owner_uid,
                 struct cj_undo *undo, struct cj_net *out, struct cj_err *err);
/* Undo a "net.adopt" entry: in the namespace it was made in, the
 * interface gets its address and default route back, without the ingress
 * qdisc that redirected it to the VM; elsewhere nothing. */
int cj_net_adopt_undo(json_object *entry);
/* Frames received on link a leave through link b and back (an ingress
 * qdisc on each, a match-all u32 filter with a mirred redirect; netns.c). */
int cj_tc_bridge(unsigned a, unsigned b, struct cj_err *err);

/* Netlink helpers (libmnl). */
struct nlmsghdr;
/* Send one request and wait for its ACK, or run cb over a dump's replies. */
int cj_nl_talk(struct nlmsghdr *nlh, int (*cb)(const struct nlmsghdr *, void *), void *data,
               struct cj_err *err);
int cj_nl_link_index(const char *name);
int cj_nl_link_up(int index, struct cj_err *err);
int cj_nl_link_del(int index);
int cj_nl_addr_add(int index, uint32_t addr, unsigned prefix, struct cj_err *err);
int cj_nl_link_ipv6_no_addr(int index, struct cj_err *err);
/* Does a.b.c.d/prefix overlap any address or route of this namespace? */
int cj_nl_overlaps(uint32_t net, unsigned prefix, bool *overlaps, struct cj_err *err);
/* Interface of the IPv4 default route. */
int cj_nl_default_iface(char *name, size_t len, struct cj_err *err);

#endif
