/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-VM networking. Order of setup, each change pushed to the run's undo
 * log before it is made (teardown, or gc when the runtime was killed,
 * replays the log newest first through cj_net_undo):
 *   lock → check the ports → choose the /30 → TAP (persistent, owned by
 *   the VMM's uid) with the host address, up → unlock → firewall rules.
 * Firewall: nftables (one table per VM, "ctrj_<id>", removed as a whole) or,
 * where the host already uses iptables (Docker leaves FORWARD at DROP, which
 * an nftables table of ours could not override), iptables rules tagged with
 * a "ctr-jailer:<id>" comment, added and removed with one iptables-restore
 * per family (iptables.c).
 */
#include "net.h"

#include "iptables.h"
#include "netns.h"
#include "sockdiag.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- parsing ---------------------------------------------------------- */

int cj_ipv4_parse(const char *arg, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, arg, &a) != 1)
		return -1;
	*out = a.s_addr;
	return 0;
}

int cj_decimal_parse(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t len = strlen(s);

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* A port number, 1-65535. */
static int parse_port(const char *s, uint16_t *out)
{
	unsigned long v;

	if (cj_decimal_parse(s, 65535, &v) < 0 || v == 0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* [hostip:]hostport:guestport[/tcp|/udp] */
int cj_port_parse(const char *arg, struct cj_port *out, struct cj_err *err)
{
	char buf[128];
	char *proto, *last, *first;

	memset(out, 0, sizeof *out);
	if (strlen(arg) >= sizeof buf)
		goto bad;
	snprintf(buf, sizeof buf, "%s", arg);
	if ((proto = strchr(buf, '/'))) {
		*proto++ = '\0';
		if (strcmp(proto, "udp") == 0)
			out->udp = true;
		else if (strcmp(proto, "tcp") != 0)
			goto bad;
	}
	last = strrchr(buf, ':');
	if (!last || parse_port(last + 1, &out->guest_port) < 0)
		goto bad;
	*last = '\0';
	first = strrchr(buf, ':');
	if (first) {
		*first = '\0';
		if (cj_ipv4_parse(buf, &out->host_ip) < 0)
			goto bad;
		first++;
	} else {
		first = buf;
	}
	if (parse_port(first, &out->host_port) < 0)
		goto bad;
	return 0;
bad:
	return cj_fail(
	    err, 0,
	    "published port '%s' is invalid: use [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp], "
	    "e.g. 8080:80 or 5353:53/udp",
	    arg);
}

int cj_publish_env_parse(const char *value, struct cj_net_spec *spec, struct cj_err *err)
{
	char *copy = strdup(value), *save = NULL;

	if (!copy)
		return cj_fail(err, ENOMEM, "PUBLISH");
	for (char *p = strtok_r(copy, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
		if (spec->nports >= CJ_MAX_PORTS) {
			free(copy);
			return cj_fail(err, 0, "too many published ports (at most %d)",
			               CJ_MAX_PORTS);
		}
		if (cj_port_parse(p, &spec->ports[spec->nports], err) < 0) {
			free(copy);
			return cj_err_wrap(err, "PUBLISH");
		}
		spec->nports++;
	}
	free(copy);
	return 0;
}

/* TAP_IP: the host side of a /30; the guest gets the other usable address. */
int cj_cidr30_parse(const char *arg, uint32_t *host, uint32_t *guest, struct cj_err *err)
{
	char buf[64], *slash;
	uint32_t a, h, base;

	if (strlen(arg) >= sizeof buf)
		goto bad;
	snprintf(buf, sizeof buf, "%s", arg);
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		if (strcmp(slash + 1, "30") != 0 && strcmp(slash + 1, "255.255.255.252") != 0)
			goto bad;
	}
	if (cj_ipv4_parse(buf, &a) < 0)
		goto bad;
	h = ntohl(a);
	base = h & ~3u;
	if (h == base || h == base + 3)
		return cj_fail(err, 0,
		               "TAP_IP %s is the network or broadcast address of its /30: use the "
		               ".1 or .2 of the block, e.g. 10.20.30.1/30",
		               arg);
	*host = a;
	*guest = htonl(h == base + 1 ? base + 2 : base + 1);
	return 0;
bad:
	return cj_fail(err, 0,
	               "TAP_IP '%s' is invalid: give the host side of a /30, e.g. "
	               "10.20.30.1/30",
	               arg);
}

/* ---- the undo log (for teardown and gc) -------------------------------- */

/* Push the entry "net.<what>" with the string fields given as key, value
 * pairs, ending with NULL: before the change it undoes. */
static int push(struct cj_net *net, const char *what, struct cj_err *err, ...)
    __attribute__((sentinel));
static int push(struct cj_net *net, const char *what, struct cj_err *err, ...)
{
	json_object *entry = json_object_new_object();
	char kind[32];
	const char *key;
	va_list ap;

	va_start(ap, err);
	while ((key = va_arg(ap, const char *)))
		json_object_object_add(entry, key,
		                       json_object_new_string(va_arg(ap, const char *)));
	va_end(ap);
	snprintf(kind, sizeof kind, "net.%s", what);
	return cj_undo_push(net->undo, kind, entry, err);
}

/* ---- firewall: iptables ----------------------------------------------- */

static int nft_run(const char *cmd, struct cj_err *err);
static void nft_ipv6_wall_text(struct cj_net *net, char *rules, size_t len);

/* iptables-nft creates the tables and base chains it needs on first use and
 * leaves them behind: which of ours do not exist yet is recorded (one
 * "net.host" entry), so undo can remove them again when they are empty. */
static int push_missing_chains(struct cj_net *net, const char *family, const char *const *tables,
                               const char *const *chains, struct cj_err *err)
{
	json_object *e;

	if (net->firewall != CJ_FW_IPTABLES_NFT || !(e = cj_ipt_missing(family, tables, chains)))
		return 0;
	return cj_undo_push(net->undo, "net.host", e, err);
}

/* Add one rule to batch, tagged with the run's comment. */
static int ipt_add(struct cj_net *net, struct cj_ipt_batch *b, const char *op, struct cj_err *err,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int ipt_add(struct cj_net *net, struct cj_ipt_batch *b, const char *op, struct cj_err *err,
                   const char *fmt, ...)
{
	char rule[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rule, sizeof rule, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof rule ||
	    (size_t)snprintf(rule + n, sizeof rule - (size_t)n,
	                     " -m comment --comment ctr-jailer:%s",
	                     net->id) >= sizeof rule - (size_t)n)
		return cj_fail(err, 0, "internal: firewall rule too long");
	return cj_ipt_batch_add(b, op, rule, true, err);
}

/* The batch in: its undo entry first (a rule that may exist is removed by
 * gc), then one iptables-restore. */
static int ipt_commit(struct cj_net *net, struct cj_ipt_batch *b, struct cj_err *err)
{
	int r = cj_undo_push(net->undo, "net.rules", cj_ipt_batch_entry(b), err);

	if (r == 0)
		r = cj_ipt_batch_run(b, err);
	cj_ipt_batch_free(b);
	return r;
}

/* The egress policy (egress.c) in a chain of this VM's own, which the
 * guest's outgoing traffic jumps to from the top of FORWARD; the chain is
 * made with the batch and removed whole (flush, delete) by undo, after
 * the jump. */
static int ipt_egress_setup(struct cj_net *net, struct cj_ipt_batch *b,
                            const struct cj_net_spec *spec, struct cj_err *err)
{
	cj_autofree char *lines = cj_egress_ipt_rules(spec, net->dns, net->ndns);
	char g[INET_ADDRSTRLEN], rule[1024], *save = NULL;

	if (!lines)
		return cj_fail(err, ENOMEM, "firewall rules");
	inet_ntop(AF_INET, &net->guest_addr, g, sizeof g);
	snprintf(b->chain, sizeof b->chain, "ctrj-egress-%s", net->id);
	for (char *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		snprintf(rule, sizeof rule, "-t filter %s %s -m comment --comment ctr-jailer:%s",
		         b->chain, l, net->id);
		if (cj_ipt_batch_add(b, "-A", rule, false, err) < 0)
			return -1;
	}
	if (ipt_add(net, b, "-I", err, "-t filter FORWARD -i %s -s %s -o %s -j %s", net->tap, g,
	            net->uplink, b->chain) < 0)
		return -1;
	if (!spec->allow_link_local &&
	    ipt_add(net, b, "-I", err, "-t filter INPUT -i %s -d 169.254.0.0/16 -j DROP",
	            net->tap) < 0)
		return -1;
	return 0;
}

static int ipt_ports(struct cj_net *net, struct cj_ipt_batch *b, const struct cj_net_spec *spec,
                     const char *g, struct cj_err *err)
{
	char h[INET_ADDRSTRLEN];
	int r = 0;

	for (size_t i = 0; i < spec->nports && r == 0; i++) {
		const struct cj_port *p = &spec->ports[i];
		char dst[64] = "";
		if (p->host_ip) {
			inet_ntop(AF_INET, &p->host_ip, h, sizeof h);
			snprintf(dst, sizeof dst, " -d %s", h);
		}
		r |= ipt_add(net, b, "-A", err,
		             "-t nat PREROUTING -m addrtype --dst-type LOCAL%s -p %s --dport %u "
		             "-j DNAT --to-destination %s:%u",
		             dst, p->udp ? "udp" : "tcp", p->host_port, g, p->guest_port);
		r |= ipt_add(net, b, "-A", err,
		             "-t nat OUTPUT -m addrtype --dst-type LOCAL%s -p %s "
		             "--dport %u -j DNAT --to-destination %s:%u",
		             dst, p->udp ? "udp" : "tcp", p->host_port, g, p->guest_port);
	}
	return r;
}

static int ipt_setup(struct cj_net *net, const struct cj_net_spec *spec, struct cj_err *err)
{
	char g[INET_ADDRSTRLEN];
	static const char *const tables[] = {"filter", "nat", "raw", NULL};
	static const char *const chains[] = {"filter FORWARD",
	                                     "filter INPUT",
	                                     "nat POSTROUTING",
	                                     "nat PREROUTING",
	                                     "nat OUTPUT",
	                                     "raw PREROUTING",
	                                     NULL};
	struct cj_ipt_batch b;
	int r = 0;

	if (push_missing_chains(net, "ip", tables, chains, err) < 0)
		return -1;
	if (cj_ipt_batch_init(&b, net->firewall, false) < 0) {
		cj_ipt_batch_free(&b);
		return cj_fail(err, ENOMEM, "firewall rules");
	}
	inet_ntop(AF_INET, &net->guest_addr, g, sizeof g);
	/* see tap_route_localnet: no loopback address in from the guest, before
	 * conntrack could take such a packet for a reply */
	r |=
	    ipt_add(net, &b, "-I", err, "-t raw PREROUTING -i %s -s 127.0.0.0/8 -j DROP", net->tap);
	r |=
	    ipt_add(net, &b, "-I", err, "-t raw PREROUTING -i %s -d 127.0.0.0/8 -j DROP", net->tap);
	/* FORWARD: inserted at the top, so the drops go in first and the
	 * accepts land above them (Docker's DROP policy stays for the rest). */
	r |= ipt_add(net, &b, "-I", err, "-t filter FORWARD -i %s -j DROP", net->tap);
	r |= ipt_add(net, &b, "-I", err, "-t filter FORWARD -o %s -j DROP", net->tap);
	r |= ipt_add(net, &b, "-I", err, "-t filter FORWARD -i %s -s %s -o %s -j ACCEPT", net->tap,
	             g, net->uplink);
	r |= ipt_add(net, &b, "-I", err,
	             "-t filter FORWARD -o %s -d %s -m conntrack --ctstate "
	             "ESTABLISHED,RELATED,DNAT -j ACCEPT",
	             net->tap, g);
	r |= ipt_add(net, &b, "-I", err,
	             "-t filter INPUT -i %s -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP",
	             net->tap);
	r |= ipt_add(net, &b, "-A", err, "-t nat POSTROUTING -s %s -o %s -j MASQUERADE", g,
	             net->uplink);
	/* published ports reached through the host's loopback (see
	 * tap_route_localnet): the guest answers the TAP's address */
	r |= ipt_add(net, &b, "-A", err, "-t nat POSTROUTING -s 127.0.0.0/8 -o %s -j MASQUERADE",
	             net->tap);
	if (r == 0)
		r = ipt_ports(net, &b, spec, g, err);
	if (r == 0)
		r = ipt_egress_setup(net, &b, spec, err);
	if (r != 0) {
		cj_ipt_batch_free(&b);
		return -1;
	}
	return ipt_commit(net, &b, err);
}

/* ---- firewall: nftables ----------------------------------------------- */

static int nft_run(const char *cmd, struct cj_err *err)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	int r;

	if (!ctx)
		return cj_fail(err, ENOMEM, "nftables context");
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	r = nft_run_cmd_from_buffer(ctx, cmd);
	if (r != 0) {
		const char *e = nft_ctx_get_error_buffer(ctx);
		char line[512];
		snprintf(line, sizeof line, "%s", e ? e : "");
		line[strcspn(line, "\n")] = '\0';
		cj_fail(err, 0, "nftables: %s", line);
	}
	nft_ctx_free(ctx);
	return r ? -1 : 0;
}

static int nft_setup(struct cj_net *net, const struct cj_net_spec *spec, struct cj_err *err)
{
	char g[INET_ADDRSTRLEN], h[INET_ADDRSTRLEN];
	char *rules = NULL, *dnat = NULL;
	size_t rlen = 0, dlen = 0;
	cj_autofree char *egress = cj_egress_nft_chains(spec, net->tap, net->dns, net->ndns);
	FILE *d = egress ? open_memstream(&dnat, &dlen) : NULL;
	FILE *f;
	int r;

	if (!d)
		return cj_fail(err, errno, "nftables rules");
	inet_ntop(AF_INET, &net->guest_addr, g, sizeof g);
	for (size_t i = 0; i < spec->nports; i++) {
		const struct cj_port *p = &spec->ports[i];
		char dst[64] = "";
		if (p->host_ip) {
			inet_ntop(AF_INET, &p->host_ip, h, sizeof h);
			snprintf(dst, sizeof dst, "ip daddr %s ", h);
		}
		fprintf(d, "    %s%s dport %u dnat to %s:%u\n", dst, p->udp ? "udp" : "tcp",
		        p->host_port, g, p->guest_port);
	}
	fclose(d);
	f = open_memstream(&rules, &rlen);
	if (!f) {
		free(dnat);
		return cj_fail(err, errno, "nftables rules");
	}
	fprintf(f,
	        "table ip ctrj_%s {\n"
	        "  chain loopback_spoof {\n"
	        "    type filter hook prerouting priority raw; policy accept;\n"
	        "    iifname \"%s\" ip saddr 127.0.0.0/8 drop\n"
	        "    iifname \"%s\" ip daddr 127.0.0.0/8 drop\n"
	        "  }\n"
	        "  chain forward {\n"
	        "    type filter hook forward priority -1; policy accept;\n"
	        "    iifname \"%s\" ip saddr %s oifname \"%s\" jump egress\n"
	        "    oifname \"%s\" ip daddr %s ct state established,related accept\n"
	        "    oifname \"%s\" ip daddr %s ct status dnat accept\n"
	        "    iifname \"%s\" drop\n"
	        "    oifname \"%s\" drop\n"
	        "  }\n"
	        "  chain input {\n"
	        "    type filter hook input priority -1; policy accept;\n"
	        "    iifname \"%s\" ct state established,related accept\n"
	        "    iifname \"%s\" drop\n"
	        "  }\n"
	        "  chain postrouting {\n"
	        "    type nat hook postrouting priority 100; policy accept;\n"
	        "    ip saddr %s oifname \"%s\" masquerade\n"
	        "    ip saddr 127.0.0.0/8 oifname \"%s\" masquerade\n"
	        "  }\n"
	        "  chain prerouting {\n"
	        "    type nat hook prerouting priority -100; policy accept;\n"
	        "    fib daddr type local jump published\n"
	        "  }\n"
	        "  chain output {\n"
	        "    type nat hook output priority -100; policy accept;\n"
	        "    fib daddr type local jump published\n"
	        "  }\n"
	        "  chain published {\n"
	        "%s"
	        "  }\n"
	        "%s"
	        "}\n",
	        net->id, net->tap, net->tap, net->tap, g, net->uplink, net->tap, g, net->tap, g,
	        net->tap, net->tap, net->tap, net->tap, g, net->uplink, net->tap, dnat, egress);
	fclose(f);
	free(dnat);
	char table[32];
	char six[1024], *all = NULL;
	snprintf(table, sizeof table, "ctrj_%s", net->id);
	nft_ipv6_wall_text(net, six, sizeof six);
	/* One entry for both tables, which undo deletes in one transaction:
	 * each deletion costs the kernel an RCU grace period. */
	if (push(net, "table", err, "family", "ip", "name", table, six[0] ? "also" : NULL, "ip6",
	         NULL) < 0) {
		free(rules);
		return -1;
	}
	if (asprintf(&all, "%s%s", rules, six) < 0) {
		free(rules);
		return cj_fail(err, ENOMEM, "nftables rules");
	}
	free(rules);
	r = nft_run(all, err);
	free(all);
	return r;
}

/* ---- firewall: IPv6 ------------------------------------------------------ */

/* The guest gets no IPv6 and the TAP has it switched off (tap_ipv6_off);
 * every IPv6 packet to, from or through the TAP is dropped as a second
 * wall, and as the only one where /proc/sys is read-only. */
static bool host_has_ipv6(void)
{
	return access("/proc/net/if_inet6", F_OK) == 0;
}

/* The IPv6 wall as nft text, for nft_setup to add in the same transaction
 * as the IPv4 table (one libnftables run costs milliseconds); "" on a host
 * without IPv6. nft_setup records it with the IPv4 table, before both
 * exist. */
static void nft_ipv6_wall_text(struct cj_net *net, char *rules, size_t len)
{
	rules[0] = '\0';
	if (!host_has_ipv6())
		return;
	snprintf(rules, len,
	         "table ip6 ctrj_%s {\n"
	         "  chain input {\n"
	         "    type filter hook input priority -1; policy accept;\n"
	         "    iifname \"%s\" drop\n"
	         "  }\n"
	         "  chain forward {\n"
	         "    type filter hook forward priority -1; policy accept;\n"
	         "    iifname \"%s\" drop\n"
	         "    oifname \"%s\" drop\n"
	         "  }\n"
	         "  chain output {\n"
	         "    type filter hook output priority -1; policy accept;\n"
	         "    oifname \"%s\" drop\n"
	         "  }\n"
	         "}\n",
	         net->id, net->tap, net->tap, net->tap, net->tap);
}

static int ip6t_wall(struct cj_net *net, struct cj_err *err)
{
	static const char *const tables[] = {"filter", NULL};
	static const char *const chains[] = {"filter INPUT", "filter FORWARD", "filter OUTPUT",
	                                     NULL};
	struct cj_ipt_batch b;

	if (push_missing_chains(net, "ip6", tables, chains, err) < 0)
		return -1;
	if (cj_ipt_batch_init(&b, net->firewall, true) < 0 ||
	    ipt_add(net, &b, "-I", err, "-t filter INPUT -i %s -j DROP", net->tap) < 0 ||
	    ipt_add(net, &b, "-I", err, "-t filter FORWARD -i %s -j DROP", net->tap) < 0 ||
	    ipt_add(net, &b, "-I", err, "-t filter FORWARD -o %s -j DROP", net->tap) < 0 ||
	    ipt_add(net, &b, "-I", err, "-t filter OUTPUT -o %s -j DROP", net->tap) < 0) {
		cj_ipt_batch_free(&b);
		return err->msg[0] ? -1 : cj_fail(err, ENOMEM, "firewall rules");
	}
	return ipt_commit(net, &b, err);
}

static int fw_ipv6_wall(struct cj_net *net, struct cj_err *err)
{
	if (!host_has_ipv6())
		return 0;
	/* nft: added by nft_setup, in the same transaction as IPv4 */
	if (net->firewall == CJ_FW_IPTABLES_LEGACY || net->firewall == CJ_FW_IPTABLES_NFT)
		return ip6t_wall(net, err);
	return 0;
}

/* ---- per-TAP sysctls ----------------------------------------------------- */

/* /proc/sys/net/FAMILY/conf/DEV/KEY = value; -1 with errno on failure. */
static int dev_sysctl(const char *family, const char *dev, const char *key, const char *value)
{
	char path[256];
	size_t len = strlen(value);
	cj_autoclose int fd = -1; /* closing keeps errno */

	snprintf(path, sizeof path, "/proc/sys/net/%s/conf/%s/%s", family, dev, key);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	return write(fd, value, len) == (ssize_t)len ? 0 : -1;
}

/* /proc/sys read-only (a container) or absent: what the runtime cannot
 * change, as opposed to a real failure. */
static bool sysctl_unwritable(int e)
{
	return e == EROFS || e == EACCES || e == EPERM || e == ENOENT;
}

/* Before the TAP comes up: no IPv6 on it, so the guest finds no host
 * address on the link and the host takes no Router Advertisement from it
 * (accept_ra=1 is the kernel's default). Where /proc/sys cannot be written
 * (a container), the TAP at least gets no address of its own (netlink) and
 * the firewall drops its IPv6 traffic (fw_ipv6_wall). */
static int tap_ipv6_off(const struct cj_net *net, int idx, struct cj_err *err)
{
	int e;

	if (!host_has_ipv6())
		return 0;
	if (dev_sysctl("ipv6", net->tap, "accept_ra", "0") == 0 &&
	    dev_sysctl("ipv6", net->tap, "disable_ipv6", "1") == 0)
		return 0;
	e = errno;
	if (!sysctl_unwritable(e))
		return cj_fail(err, e, "switch off IPv6 on TAP %s", net->tap);
	if (cj_nl_link_ipv6_no_addr(idx, err) < 0)
		return -1;
	cj_notice("warning: IPv6 cannot be switched off on TAP %s (/proc/sys: %s); %s", net->tap,
	          strerror(e),
	          net->firewall == CJ_FW_NONE
	              ? "with --firewall none the guest can send the host Router Advertisements"
	              : "the firewall drops its IPv6 traffic instead");
	return 0;
}

/* Published ports on the host's loopback (curl 127.0.0.1:PORT): the DNAT
 * in the output chain sends a packet with a 127.0.0.1 source out of the
 * TAP, which the kernel allows only with route_localnet on that device,
 * and then the reply's 127.0.0.1 destination coming in from it. Set on
 * this TAP only, never on all/default; the firewall's input chain still
 * drops anything the guest starts towards the host, 127.0.0.0/8 included.
 * A guest could still forge a "reply" to a conversation between two
 * loopback sockets of the host (source and destination in 127.0.0.0/8),
 * which conntrack would take as established: every firewall backend drops
 * such addresses coming in from the TAP before conntrack (priority raw),
 * with or without published ports (route_localnet may be on for all
 * devices, as kube-proxy sets it). The hairpin's replies are not touched:
 * they come back addressed to the TAP's host address, which the
 * masquerade put there, and are translated to 127.0.0.1 only after. In a
 * network namespace of the VM's own the host end of the veth carries the
 * TAP's name: the switch and the rules apply to it alike. */
static void tap_route_localnet(const struct cj_net *net, const struct cj_net_spec *spec)
{
	if (spec->nports == 0 || net->firewall == CJ_FW_NONE)
		return;
	if (dev_sysctl("ipv4", net->tap, "route_localnet", "1") < 0)
		cj_notice("warning: published ports do not answer on the host's 127.0.0.1: "
		          "route_localnet of TAP %s cannot be set (%s)",
		          net->tap, strerror(errno));
}

/* ---- detection, addresses, DNS ---------------------------------------- */

static bool iptables_in_use(const char *save_bin)
{
	char *argv[] = {(char *)save_bin, NULL};
	struct cj_err err = {0};
	char *out = NULL;
	bool used;

	if (cj_run(argv, &out, &err) < 0)
		return false;
	/* rules, user chains or a DROP policy mean the host manages iptables */
	used = strstr(out, "\n-A ") || strstr(out, "\n:DOCKER") || strstr(out, "FORWARD DROP");
	free(out);
	return used;
}

/* Without spawning iptables-*-save (two fork+execs, most of the network
 * setup's time) where the answer is plain: the legacy tables this
 * namespace has are listed in /proc/net/ip_tables_names (absent: the
 * module is not even loaded), and iptables-nft keeps its rules in nftables
 * tables of the ip family named after iptables' own. Only when such a
 * table exists does the save tool look at its rules. */
static bool legacy_tables_exist(void)
{
	char buf[64];
	cj_autoclose int fd = open("/proc/net/ip_tables_names", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno != ENOENT; /* unreadable: ask the tool */
	return read(fd, buf, sizeof buf) != 0;
}

static bool nft_ip_tables_exist(void)
{
	static const char *const names[] = {"filter", "nat", "mangle", "raw", "security"};
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	const char *out;
	bool found = true; /* when in doubt, ask the tool */

	if (!ctx)
		return true;
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	if (nft_run_cmd_from_buffer(ctx, "list tables ip") == 0 &&
	    (out = nft_ctx_get_output_buffer(ctx))) {
		found = false;
		for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
			char line[32];
			snprintf(line, sizeof line, "table ip %s\n", names[i]);
			found |= strstr(out, line) != NULL;
		}
	}
	nft_ctx_free(ctx);
	return found;
}

static enum cj_firewall detect_firewall(void)
{
	if (legacy_tables_exist() && iptables_in_use("iptables-legacy-save"))
		return CJ_FW_IPTABLES_LEGACY;
	if (nft_ip_tables_exist() && iptables_in_use("iptables-nft-save"))
		return CJ_FW_IPTABLES_NFT;
	return CJ_FW_NFT;
}

static void read_resolvers(const char *path, uint32_t *dns, size_t *n, bool *only_loopback)
{
	FILE *f = fopen(path, "re");
	char line[512];

	*only_loopback = false;
	if (!f)
		return;
	bool saw_loopback = false;
	while (fgets(line, sizeof line, f) && *n < CJ_MAX_DNS) {
		char addr[128];
		uint32_t a;
		if (sscanf(line, " nameserver %127s", addr) != 1 || cj_ipv4_parse(addr, &a) < 0)
			continue;
		if ((ntohl(a) >> 24) == 127) {
			saw_loopback = true;
			continue;
		}
		dns[(*n)++] = a;
	}
	fclose(f);
	*only_loopback = saw_loopback && *n == 0;
}

/* The host's resolvers; a loopback stub (systemd-resolved's 127.0.0.53)
 * is unreachable from the guest, so its upstream list is used instead. */
static void host_dns(struct cj_net *net)
{
	bool stub;

	read_resolvers("/etc/resolv.conf", net->dns, &net->ndns, &stub);
	if (net->ndns == 0)
		read_resolvers("/run/systemd/resolve/resolv.conf", net->dns, &net->ndns, &stub);
}

static int pick_subnet(const struct cj_net_spec *spec, struct cj_net *net, struct cj_err *err)
{
	bool hit;

	if (spec->tap_ip) {
		if (cj_cidr30_parse(spec->tap_ip, &net->host_addr, &net->guest_addr, err) < 0)
			return -1;
		if (cj_nl_overlaps(net->host_addr, 30, &hit, err) < 0)
			return -1;
		if (hit)
			return cj_fail(
			    err, 0,
			    "TAP_IP %s overlaps an address or route of this host (another "
			    "VM?): choose a free /30",
			    spec->tap_ip);
		net->prefix = 30;
		return 0;
	}
	for (int attempt = 0; attempt < 64; attempt++) {
		uint32_t rnd;
		if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
			return cj_fail(err, errno, "getrandom");
		uint32_t base = (10u << 24) | (rnd & 0x00fffffc);
		if (cj_nl_overlaps(htonl(base), 30, &hit, err) < 0)
			return -1;
		if (!hit) {
			net->host_addr = htonl(base + 1);
			net->guest_addr = htonl(base + 2);
			net->prefix = 30;
			return 0;
		}
	}
	return cj_fail(err, 0, "no free /30 found in 10.0.0.0/8: set TAP_IP");
}

/* A host service already listening where a published port would take its
 * traffic (docker refuses such a port too). */
static int check_host_listeners(const struct cj_net_spec *spec, struct cj_err *err)
{
	for (int udp = 0; udp < 2; udp++) {
		struct cj_listener *ls = NULL;
		struct cj_err derr = {0};
		size_t n = 0;
		bool wanted = false;

		for (size_t i = 0; i < spec->nports; i++)
			wanted |= spec->ports[i].udp == (bool)udp;
		if (!wanted)
			continue;
		if (cj_sockdiag_listeners(udp, &ls, &n, &derr) < 0) {
			char why[1200];
			cj_notice("warning: cannot check whether the published %s ports are in use "
			          "on this host: %s",
			          udp ? "UDP" : "TCP", cj_err_str(&derr, why, sizeof why));
			continue;
		}
		for (size_t i = 0; i < spec->nports; i++) {
			const struct cj_port *p = &spec->ports[i];
			for (size_t j = 0; j < n; j++) {
				char where[80], host[INET_ADDRSTRLEN + 1] = "", comm[64];
				pid_t pid;
				if (!cj_listener_shadowed(&ls[j], p->host_ip, p->host_port, p->udp))
					continue;
				cj_listener_addr_str(&ls[j], where, sizeof where);
				if (p->host_ip) {
					inet_ntop(AF_INET, &p->host_ip, host, sizeof host - 1);
					strcat(host, ":");
				}
				if (cj_socket_owner(ls[j].inode, &pid, comm, sizeof comm) == 0)
					cj_fail(
					    err, 0,
					    "host port %s%u/%s is already in use: %s (pid %d) "
					    "listens on %s; stop it or publish another host port",
					    host, p->host_port, udp ? "udp" : "tcp", comm, (int)pid,
					    where);
				else
					cj_fail(
					    err, 0,
					    "host port %s%u/%s is already in use: a socket listens "
					    "on %s; stop its service or publish another host port",
					    host, p->host_port, udp ? "udp" : "tcp", where);
				free(ls);
				return -1;
			}
		}
		free(ls);
	}
	return 0;
}

struct port_check {
	const struct cj_net_spec *spec;
	size_t hit;  /* the index of the port taken */
	char id[16]; /* by the run */
};

/* Does this other run publish one of the ports (a net.port entry)? */
static int port_taken(json_object *record, void *arg)
{
	struct port_check *c = arg;
	json_object *log;
	long long port;

	if (!json_object_object_get_ex(record, "undo", &log) ||
	    !json_object_is_type(log, json_type_array))
		return 0;
	for (size_t k = 0; k < json_object_array_length(log); k++) {
		json_object *e = json_object_array_get_idx(log, k);
		const char *kind = cj_undo_str(e, "kind"), *proto = cj_undo_str(e, "proto");
		if (!kind || strcmp(kind, "net.port") != 0 || !proto ||
		    !cj_undo_int(e, "port", &port))
			continue;
		for (size_t i = 0; i < c->spec->nports; i++) {
			const struct cj_port *p = &c->spec->ports[i];
			if (p->host_port == port && p->udp == (strcmp(proto, "udp") == 0)) {
				const char *id = cj_undo_str(record, "id");
				c->hit = i;
				snprintf(c->id, sizeof c->id, "%s", id ? id : "?");
				return -1;
			}
		}
	}
	return 0;
}

static int check_taken(const struct cj_net_spec *spec, struct cj_undo *undo, struct cj_err *err)
{
	struct port_check c = {.spec = spec};
	int r = cj_undo_each_run(undo, port_taken, &c, err);

	if (r < 0 && c.id[0])
		return cj_fail(err, 0, "host port %u/%s is already published by VM %s",
		               spec->ports[c.hit].host_port, spec->ports[c.hit].udp ? "udp" : "tcp",
		               c.id);
	return r;
}

/* Ports published twice, by a host service, or by live runs (their
 * records). */
static int check_ports(const struct cj_net_spec *spec, struct cj_undo *undo, struct cj_err *err)
{
	for (size_t i = 0; i < spec->nports; i++)
		for (size_t j = 0; j < i; j++)
			if (spec->ports[i].host_port == spec->ports[j].host_port &&
			    spec->ports[i].udp == spec->ports[j].udp)
				return cj_fail(err, 0, "host port %u/%s is published twice",
				               spec->ports[i].host_port,
				               spec->ports[i].udp ? "udp" : "tcp");
	if (check_host_listeners(spec, err) < 0)
		return -1;
	return check_taken(spec, undo, err);
}

/* The claims on the ports, for the next run's check_ports. */
static int push_ports(struct cj_net *net, const struct cj_net_spec *spec, struct cj_err *err)
{
	for (size_t i = 0; i < spec->nports; i++) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "proto",
		                       json_object_new_string(spec->ports[i].udp ? "udp" : "tcp"));
		json_object_object_add(e, "port", json_object_new_int(spec->ports[i].host_port));
		if (cj_undo_push(net->undo, "net.port", e, err) < 0)
			return -1;
	}
	return 0;
}

/* In a container /proc/sys is read-only: forwarding already on is fine,
 * off is an error the host's owner has to fix. */
static int enable_forwarding(struct cj_err *err)
{
	char cur = '0';
	cj_autoclose int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && read(fd, &cur, 1) != 1)
		cur = '0';
	if (cur == '1')
		return 0;
	cj_closep(&fd);
	fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		int e = errno;
		if (e == EROFS || e == EACCES || e == EPERM)
			return cj_fail(
			    err, 0,
			    "IPv4 forwarding is off and cannot be switched on from here: "
			    "run 'sysctl -w net.ipv4.ip_forward=1' on the host");
		return cj_fail(err, e, "enable IPv4 forwarding");
	}
	return 0;
}

/* No network, but a namespace of its own all the same: an empty one. */
static int empty_netns(struct cj_net *net, const char *run_dir, struct cj_err *err)
{
	snprintf(net->netns, sizeof net->netns, "%s/netns", run_dir);
	if (push(net, "netns", err, "path", net->netns, NULL) < 0)
		return -1;
	return cj_netns_create(net->netns, NULL, 0, NULL, err);
}

/* What needs no lock: the uplink, the firewall backend, the resolvers. */
static int resolve_host(const struct cj_net_spec *spec, struct cj_net *out, struct cj_err *err)
{
	if (spec->host_iface) {
		snprintf(out->uplink, sizeof out->uplink, "%s", spec->host_iface);
		if (cj_nl_link_index(out->uplink) < 0)
			return cj_fail(err, 0, "HOST_IFACE %s does not exist", spec->host_iface);
	} else if (cj_nl_default_iface(out->uplink, sizeof out->uplink, err) < 0) {
		return -1;
	}
	out->firewall = spec->firewall == CJ_FW_AUTO ? detect_firewall() : spec->firewall;
	if (spec->ndns) {
		memcpy(out->dns, spec->dns, spec->ndns * sizeof spec->dns[0]);
		out->ndns = spec->ndns;
	} else {
		host_dns(out);
	}
	return 0;
}

/* Concurrent starts: choosing the /30, claiming ports and putting the
 * address on the TAP happen under one lock, so the next start sees them. */
static int claim_link(const struct cj_net_spec *spec, uid_t owner_uid, struct cj_net *out,
                      struct cj_err *err)
{
	cj_autoclose int lock = cj_undo_lock(out->undo, "net", err);
	int idx;

	if (lock < 0)
		return -1;
	if (check_ports(spec, out->undo, err) < 0 || pick_subnet(spec, out, err) < 0)
		return -1;
	if (push(out, "tap", err, "name", out->tap, NULL) < 0 ||
	    (out->netns[0] && push(out, "netns", err, "path", out->netns, NULL) < 0) ||
	    push_ports(out, spec, err) < 0)
		return -1;
	out->active = true;
	/* In its own namespace, the TAP is reached through a veth pair whose
	 * host end takes the TAP's name here: addresses, NAT and the firewall
	 * below are the same either way. */
	if ((out->netns[0] ? cj_netns_create(out->netns, out->tap, owner_uid, out->tap, err)
	                   : cj_tap_open(out->tap, owner_uid, err)) < 0)
		return -1;
	idx = cj_nl_link_index(out->tap);
	if (idx < 0 || cj_nl_addr_add(idx, out->host_addr, out->prefix, err) < 0 ||
	    tap_ipv6_off(out, idx, err) < 0 || cj_nl_link_up(idx, err) < 0)
		return -1;
	return 0;
}

int cj_net_setup(const struct cj_net_spec *spec, const char *id, const char *run_dir,
                 uid_t owner_uid, struct cj_undo *undo, struct cj_net *out, struct cj_err *err)
{
	memset(out, 0, sizeof *out);
	out->undo = undo;
	if (spec->mode == CJ_NET_NONE)
		return spec->own_netns ? empty_netns(out, run_dir, err) : 0;
	if (spec->mode == CJ_NET_ADOPT)
		return cj_net_adopt(spec, id, owner_uid, undo, out, err);
	snprintf(out->id, sizeof out->id, "%s", id);
	snprintf(out->tap, sizeof out->tap, "cj-%.12s", id);
	if (spec->own_netns)
		snprintf(out->netns, sizeof out->netns, "%s/netns", run_dir);
	if (resolve_host(spec, out, err) < 0 || claim_link(spec, owner_uid, out, err) < 0 ||
	    enable_forwarding(err) < 0)
		return -1;
	if (out->firewall == CJ_FW_NFT && nft_setup(out, spec, err) < 0)
		return -1;
	if ((out->firewall == CJ_FW_IPTABLES_LEGACY || out->firewall == CJ_FW_IPTABLES_NFT) &&
	    ipt_setup(out, spec, err) < 0)
		return -1;
	if (fw_ipv6_wall(out, err) < 0)
		return -1;
	tap_route_localnet(out, spec);
	/* deterministic MAC from the guest address: 02:fc:a.b.c.d */
	out->mac[0] = 0x02;
	out->mac[1] = 0xfc;
	memcpy(out->mac + 2, &out->guest_addr, 4);
	return 0;
}

/* ---- undo ----------------------------------------------------------------- */

/* Names that go into nft commands and iptables arguments: as this file
 * writes them, nothing else (the record is root's, but a torn or foreign
 * one must not become a command). */
static bool plain_name(const char *v)
{
	if (!v || !*v || strlen(v) > 64)
		return false;
	for (; *v; v++)
		if (!(isalnum((unsigned char)*v) || *v == '_' || *v == '-' || *v == ' '))
			return false;
	return true;
}

static bool family_ok(const char *family)
{
	return family && (strcmp(family, "ip") == 0 || strcmp(family, "ip6") == 0);
}

static enum cj_firewall entry_fw(json_object *e)
{
	const char *fw = cj_undo_str(e, "fw");

	return fw && strcmp(fw, "legacy") == 0 ? CJ_FW_IPTABLES_LEGACY : CJ_FW_IPTABLES_NFT;
}

/* cj-<up to 12 of the run id's characters>, as cj_net_setup and
 * cj_net_adopt name it: a record names no other link. */
static bool tap_name(const char *name)
{
	return strncmp(name, "cj-", 3) == 0 && strlen(name) < IFNAMSIZ && plain_name(name) &&
	       !strchr(name, ' ');
}

static int undo_tap(const char *name)
{
	int idx;

	if (!tap_name(name))
		return -1;
	if (cj_tap_end_detached(name) == 0)
		return 0;
	if ((idx = cj_nl_link_index(name)) > 0)
		cj_nl_link_del(idx);
	return cj_nl_link_index(name) > 0 ? -1 : 0;
}

/* The namespace is pinned in the run directory, as setup names it. */
static int undo_netns(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	if (!slash || path[0] != '/' || strcmp(slash, "/netns") != 0)
		return -1;
	return cj_netns_remove(path);
}

/* A deleted table's memory is freed by the kernel after an RCU grace
 * period, and closing an nftables socket while that is pending waits for
 * it (tens of ms on a loaded host). The context of the last deletion stays
 * open until the TAP, older in the log, is gone: the TAP's removal waits
 * for grace periods of its own, and the two waits overlap. */
static struct nft_ctx *closing;

static void close_pending(void)
{
	if (closing)
		nft_ctx_free(closing);
	closing = NULL;
}

/* The run's table of family, and of "also" (ip6) when it names a second
 * one, in one transaction. "add" first makes "delete" succeed whether or
 * not the table was ever added (nft of Debian 12 has no "destroy"). */
static int undo_table(json_object *e)
{
	const char *family = cj_undo_str(e, "family"), *name = cj_undo_str(e, "name");
	const char *also = cj_undo_str(e, "also");
	char cmd[320];

	if (!family_ok(family) || !plain_name(name) || strchr(name, ' ') ||
	    (also && !family_ok(also)))
		return -1;
	snprintf(cmd, sizeof cmd, "add table %s %s\ndelete table %s %s\n", family, name, family,
	         name);
	if (also) {
		size_t n = strlen(cmd);
		snprintf(cmd + n, sizeof cmd - n, "add table %s %s\ndelete table %s %s\n", also,
		         name, also, name);
	}
	close_pending();
	/* no nftables at all: nothing was added */
	if ((closing = nft_ctx_new(NFT_CTX_DEFAULT))) {
		nft_ctx_buffer_output(closing);
		nft_ctx_buffer_error(closing);
		nft_run_cmd_from_buffer(closing, cmd);
	}
	return 0;
}

/* Records of older versions: one "net.rule" entry per rule, and the
 * egress chain in a "net.chain" entry. */
static int undo_rule(json_object *e)
{
	const char *family = cj_undo_str(e, "family"), *rule = cj_undo_str(e, "rule");
	struct cj_err err = {0};

	/* only ever a rule this file tagged as a run's */
	if (!family_ok(family) || !rule || !strstr(rule, " -m comment --comment ctr-jailer:"))
		return -1;
	/* a rule never added fails quietly */
	cj_ipt_exec(entry_fw(e), strcmp(family, "ip6") == 0, "-D", rule, &err);
	return 0;
}

/* Our own iptables chain, once nothing jumps to it (the jump is newer). */
static int undo_chain(json_object *e)
{
	const char *table = cj_undo_str(e, "table"), *chain = cj_undo_str(e, "chain");
	enum cj_firewall fw = entry_fw(e);
	struct cj_err err = {0};
	char arg[160];

	if (!plain_name(table) || !plain_name(chain) || strchr(table, ' ') || strchr(chain, ' '))
		return -1;
	snprintf(arg, sizeof arg, "-t %s %s", table, chain);
	cj_ipt_exec(fw, false, "-F", arg, &err);
	cj_ipt_exec(fw, false, "-X", arg, &err);
	return 0;
}

/* Records of older versions: a chain or a table iptables-nft created for
 * the run, one entry each, undone as a "net.host" entry naming it (a
 * chain goes when empty and accepting, a table when it has no chain). */
static int undo_host(json_object *e, bool table)
{
	const char *family = cj_undo_str(e, "family");
	const char *name = cj_undo_str(e, table ? "table" : "chain");
	json_object *host = json_object_new_object(), *tables = json_object_new_array(),
	            *chains = json_object_new_array();
	int r = -1;

	if (family_ok(family) && plain_name(name) && host && tables && chains &&
	    json_object_array_add(table ? tables : chains, json_object_new_string(name)) == 0) {
		json_object_object_add(host, "family", json_object_new_string(family));
		json_object_object_add(host, "tables", json_object_get(tables));
		json_object_object_add(host, "chains", json_object_get(chains));
		r = cj_ipt_host_undo(host);
	}
	json_object_put(tables);
	json_object_put(chains);
	json_object_put(host);
	return r;
}

int cj_net_undo(json_object *entry, bool verbose)
{
	const char *kind = cj_undo_str(entry, "kind");
	const char *what = kind && strncmp(kind, "net.", 4) == 0 ? kind + 4 : "";

	(void)verbose;
	if (strcmp(what, "tap") == 0) {
		int r = undo_tap(cj_undo_str(entry, "name") ? cj_undo_str(entry, "name") : "");
		close_pending();
		return r;
	}
	if (strcmp(what, "netns") == 0)
		return undo_netns(cj_undo_str(entry, "path"));
	if (strcmp(what, "adopt") == 0)
		return cj_net_adopt_undo(entry);
	if (strcmp(what, "port") == 0)
		return 0; /* a claim, for the other runs to see: nothing to undo */
	if (strcmp(what, "table") == 0)
		return undo_table(entry);
	if (strcmp(what, "rules") == 0)
		return cj_ipt_rules_undo(entry);
	if (strcmp(what, "host") == 0)
		return cj_ipt_host_undo(entry);
	if (strcmp(what, "rule") == 0)
		return undo_rule(entry);
	if (strcmp(what, "chain") == 0)
		return undo_chain(entry);
	if (strcmp(what, "host-chain") == 0 || strcmp(what, "host-table") == 0)
		return undo_host(entry, strcmp(what, "host-table") == 0);
	cj_notice("warning: run record: unknown network entry \"%s\" is kept", kind ? kind : "?");
	return -1;
}
