/* SPDX-License-Identifier: Apache-2.0 */
/* Networking of a VM: one TAP and one /30 per VM, NAT out of the uplink,
 * published ports, host DNS, and teardown of exactly what was added. */
#ifndef CJ_NET_H
#define CJ_NET_H

#include "util/err.h"

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CJ_MAX_PORTS 64
#define CJ_MAX_DNS   3

enum cj_net_mode { CJ_NET_TAP, CJ_NET_NONE };
enum cj_firewall { CJ_FW_AUTO, CJ_FW_NFT, CJ_FW_IPTABLES_LEGACY, CJ_FW_IPTABLES_NFT, CJ_FW_NONE };

struct cj_port {
	uint32_t host_ip; /* network order; 0 = every address */
	uint16_t host_port;
	uint16_t guest_port;
	bool udp;
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
};

struct cj_net {
	bool active;
	char id[16];
	char tap[IFNAMSIZ];
	char uplink[IFNAMSIZ];
	uint32_t host_addr, guest_addr; /* network order */
	unsigned prefix;
	uint8_t mac[6];
	uint32_t dns[CJ_MAX_DNS];
	size_t ndns;
	enum cj_firewall firewall;
	char state_path[4096]; /* run dir file recording what was added */
};

/* Parsers for the command line and environment (unit-tested). */
int cj_port_parse(const char *arg, struct cj_port *out, struct cj_err *err);
int cj_publish_env_parse(const char *value, struct cj_net_spec *spec, struct cj_err *err);
int cj_cidr30_parse(const char *arg, uint32_t *host, uint32_t *guest, struct cj_err *err);
int cj_ipv4_parse(const char *arg, uint32_t *out);

/* Create the TAP (owned by owner_uid), address it, add firewall rules.
 * Records what it did in run_dir/net so that gc can undo it. */
int cj_net_setup(const struct cj_net_spec *spec, const char *id, const char *run_dir,
                 const char *run_base, uid_t owner_uid, struct cj_net *out, struct cj_err *err);
void cj_net_teardown(struct cj_net *net);
/* An fd attached to the VM's TAP, to hand to a VMM that takes one (QEMU's
 * -netdev tap,fd=N): the VMM then needs neither /dev/net/tun nor any
 * privilege over the device. */
int cj_net_tap_open(const char *name, struct cj_err *err);
/* Undo what the run in run_dir set up (its owner is gone). */
void cj_net_gc(const char *run_dir);

/* Netlink helpers (libmnl). */
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
