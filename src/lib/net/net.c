/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-VM networking. Order of setup (teardown is the reverse, and gc does
 * the same from the record in run_dir/net when the runtime was killed):
 *   lock → choose the /30 → TAP (persistent, owned by the VMM's uid) with
 *   the host address, up → record → firewall rules → unlock.
 * Firewall: nftables (one table per VM, "ctrj_<id>", removed as a whole) or,
 * where the host already uses iptables (Docker leaves FORWARD at DROP, which
 * an nftables table of ours could not override), iptables rules tagged with
 * a "ctr-jailer:<id>" comment and removed one by one.
 */
#include "net.h"

#include "netns.h"
#include "sockdiag.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <dirent.h>
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

static int parse_u16(const char *s, size_t len, uint16_t *out)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
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
	if (!last || parse_u16(last + 1, strlen(last + 1), &out->guest_port) < 0)
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
	if (parse_u16(first, strlen(first), &out->host_port) < 0)
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

/* ---- state record (for teardown and gc) -------------------------------- */

static int record(const struct cj_net *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int record(const struct cj_net *net, const char *fmt, ...)
{
	FILE *f = fopen(net->state_path, "ae");
	va_list ap;
	int r;

	if (!f)
		return -1;
	va_start(ap, fmt);
	r = vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	return (fclose(f) == 0 && r >= 0) ? 0 : -1;
}

/* ---- firewall: iptables ----------------------------------------------- */

static int nft_run(const char *cmd, struct cj_err *err);
static int nft_ipv6_wall_text(struct cj_net *net, char *rules, size_t len, struct cj_err *err);

/* iptables-nft creates the tables and base chains it needs on first use and
 * leaves them behind. Which of ours did not exist before is recorded, so
 * undo can remove them again when they are empty. */
static void ipt_record_missing_chains(struct cj_net *net)
{
	static const char *const chains[][2] = {
	    {"filter", "FORWARD"}, {"filter", "INPUT"}, {"nat", "POSTROUTING"},
	    {"nat", "PREROUTING"}, {"nat", "OUTPUT"},   {"raw", "PREROUTING"},
	};
	static const char *const tables[] = {"filter", "nat", "raw"};
	char cmd[128];

	if (net->firewall != CJ_FW_IPTABLES_NFT)
		return;
	for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++) {
		struct cj_err err = {0};
		snprintf(cmd, sizeof cmd, "list chain ip %s %s", chains[i][0], chains[i][1]);
		if (nft_run(cmd, &err) < 0)
			record(net, "nftchain %s %s", chains[i][0], chains[i][1]);
	}
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		struct cj_err err = {0};
		snprintf(cmd, sizeof cmd, "list table ip %s", tables[i]);
		if (nft_run(cmd, &err) < 0)
			record(net, "nfttable %s", tables[i]);
	}
}

static const char *ipt_bin(enum cj_firewall fw)
{
	return fw == CJ_FW_IPTABLES_LEGACY ? "iptables-legacy" : "iptables-nft";
}

static const char *ip6t_bin(enum cj_firewall fw)
{
	return fw == CJ_FW_IPTABLES_LEGACY ? "ip6tables-legacy" : "ip6tables-nft";
}

/* Run "BIN -w <op> <rule...>" with the rule given as one line of
 * space-separated words (ours never contain spaces). */
static int ipt_exec(const char *bin, const char *op, const char *rule, struct cj_err *err)
{
	char *words[64], copy[1024], *save = NULL;
	size_t n = 0;
	char table[32] = "filter", chain[32] = "";

	if (strlen(rule) >= sizeof copy)
		return cj_fail(err, 0, "internal: firewall rule too long: '%.64s...'", rule);
	snprintf(copy, sizeof copy, "%s", rule);
	words[n++] = (char *)bin;
	words[n++] = "-w";
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n == 62)
			return cj_fail(
			    err, 0, "internal: firewall rule has too many words: '%.64s...'", rule);
		words[n++] = w;
	}
	words[n] = NULL;
	/* the rule is "-t TABLE CHAIN args...": put op before CHAIN */
	if (n < 5 || strcmp(words[2], "-t") != 0)
		return cj_fail(err, 0, "internal: bad rule '%s'", rule);
	snprintf(table, sizeof table, "%s", words[3]);
	snprintf(chain, sizeof chain, "%s", words[4]);
	char *argv[66];
	size_t k = 0;
	argv[k++] = words[0];
	argv[k++] = "-w";
	argv[k++] = "-t";
	argv[k++] = table;
	argv[k++] = (char *)op;
	argv[k++] = chain;
	for (size_t i = 5; i < n; i++)
		argv[k++] = words[i];
	argv[k] = NULL;
	return cj_run(argv, NULL, err);
}

static int ipt(enum cj_firewall fw, const char *op, const char *rule, struct cj_err *err)
{
	return ipt_exec(ipt_bin(fw), op, rule, err);
}

static int ipt_add(struct cj_net *net, const char *op, struct cj_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ipt_add(struct cj_net *net, const char *op, struct cj_err *err, const char *fmt, ...)
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
	/* recorded first: a rule that may exist is removed by gc */
	if (record(net, "ipt %s", rule) < 0)
		return cj_fail(err, errno, "record firewall rule");
	if (ipt(net->firewall, op, rule, err) < 0)
		return cj_err_wrap(err, "add firewall rule");
	return 0;
}

/* The egress policy (egress.c) in a chain of this VM's own, which the
 * guest's outgoing traffic jumps to from the top of FORWARD; the chain is
 * recorded before it exists and removed whole (flush, delete) by undo,
 * after the jump. */
static int ipt_egress_setup(struct cj_net *net, const struct cj_net_spec *spec, struct cj_err *err)
{
	cj_autofree char *lines = cj_egress_ipt_rules(spec, net->dns, net->ndns);
	char g[INET_ADDRSTRLEN], chain[32], rule[1024], *save = NULL;

	if (!lines)
		return cj_fail(err, ENOMEM, "firewall rules");
	inet_ntop(AF_INET, &net->guest_addr, g, sizeof g);
	snprintf(chain, sizeof chain, "ctrj-egress-%s", net->id);
	if (record(net, "iptchain filter %s", chain) < 0)
		return cj_fail(err, errno, "record firewall chain");
	snprintf(rule, sizeof rule, "-t filter %s", chain);
	if (ipt(net->firewall, "-N", rule, err) < 0)
		return cj_err_wrap(err, "add firewall chain");
	for (char *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		snprintf(rule, sizeof rule, "-t filter %s %s -m comment --comment ctr-jailer:%s",
		         chain, l, net->id);
		if (ipt(net->firewall, "-A", rule, err) < 0)
			return cj_err_wrap(err, "add firewall rule");
	}
	if (ipt_add(net, "-I", err, "-t filter FORWARD -i %s -s %s -o %s -j %s", net->tap, g,
	            net->uplink, chain) < 0)
		return -1;
	if (!spec->allow_link_local &&
	    ipt_add(net, "-I", err, "-t filter INPUT -i %s -d 169.254.0.0/16 -j DROP", net->tap) <
	        0)
		return -1;
	return 0;
}

static int ipt_setup(struct cj_net *net, const struct cj_net_spec *spec, struct cj_err *err)
{
	char g[INET_ADDRSTRLEN], h[INET_ADDRSTRLEN];
	int r = 0;

	if (record(net, "fw %s", net->firewall == CJ_FW_IPTABLES_LEGACY ? "legacy" : "nft") < 0)
		return cj_fail(err, errno, "record firewall");
	ipt_record_missing_chains(net);
	inet_ntop(AF_INET, &net->guest_addr, g, sizeof g);
	/* see tap_route_localnet: no loopback address in from the guest, before
	 * conntrack could take such a packet for a reply */
	r |= ipt_add(net, "-I", err, "-t raw PREROUTING -i %s -s 127.0.0.0/8 -j DROP", net->tap);
	r |= ipt_add(net, "-I", err, "-t raw PREROUTING -i %s -d 127.0.0.0/8 -j DROP", net->tap);
	/* FORWARD: inserted at the top, so the drops go in first and the
	 * accepts land above them (Docker's DROP policy stays for the rest). */
	r |= ipt_add(net, "-I", err, "-t filter FORWARD -i %s -j DROP", net->tap);
	r |= ipt_add(net, "-I", err, "-t filter FORWARD -o %s -j DROP", net->tap);
	r |= ipt_add(net, "-I", err, "-t filter FORWARD -i %s -s %s -o %s -j ACCEPT", net->tap, g,
	             net->uplink);
	r |=
	    ipt_add(net, "-I", err,
	            "-t filter FORWARD -o %s -d %s -m conntrack --ctstate ESTABLISHED,RELATED,DNAT "
	            "-j ACCEPT",
	            net->tap, g);
	r |= ipt_add(net, "-I", err,
	             "-t filter INPUT -i %s -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP",
	             net->tap);
	r |=
	    ipt_add(net, "-A", err, "-t nat POSTROUTING -s %s -o %s -j MASQUERADE", g, net->uplink);
	/* published ports reached through the host's loopback (see
	 * tap_route_localnet): the guest answers the TAP's address */
	r |= ipt_add(net, "-A", err, "-t nat POSTROUTING -s 127.0.0.0/8 -o %s -j MASQUERADE",
	             net->tap);
	for (size_t i = 0; i < spec->nports && r == 0; i++) {
		const struct cj_port *p = &spec->ports[i];
		char dst[64] = "";
		if (p->host_ip) {
			inet_ntop(AF_INET, &p->host_ip, h, sizeof h);
			snprintf(dst, sizeof dst, " -d %s", h);
		}
		r |= ipt_add(net, "-A", err,
		             "-t nat PREROUTING -m addrtype --dst-type LOCAL%s -p %s --dport %u "
		             "-j DNAT --to-destination %s:%u",
		             dst, p->udp ? "udp" : "tcp", p->host_port, g, p->guest_port);
		r |= ipt_add(net, "-A", err,
		             "-t nat OUTPUT -m addrtype --dst-type LOCAL%s -p %s "
		             "--dport %u -j DNAT --to-destination %s:%u",
		             dst, p->udp ? "udp" : "tcp", p->host_port, g, p->guest_port);
	}
	if (r == 0)
		r = ipt_egress_setup(net, spec, err);
	return r ? -1 : 0;
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
	if (record(net, "nft ctrj_%s", net->id) < 0) {
		free(rules);
		return cj_fail(err, errno, "record firewall table");
	}
	char six[1024], *all = NULL;
	if (nft_ipv6_wall_text(net, six, sizeof six, err) < 0) {
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
 * without IPv6. Recorded before it exists, as every rule is. */
static int nft_ipv6_wall_text(struct cj_net *net, char *rules, size_t len, struct cj_err *err)
{
	rules[0] = '\0';
	if (!host_has_ipv6())
		return 0;
	if (record(net, "nft6 ctrj_%s", net->id) < 0)
		return cj_fail(err, errno, "record firewall table");
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
	return 0;
}

/* ip6tables-nft creates what it needs and leaves it: recorded as for
 * IPv4 (ipt_record_missing_chains), removed by undo when empty. */
static void ip6t_record_missing_chains(struct cj_net *net)
{
	static const char *const chains[] = {"INPUT", "FORWARD", "OUTPUT"};
	struct cj_err err = {0};
	char cmd[128];

	if (net->firewall != CJ_FW_IPTABLES_NFT)
		return;
	for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++) {
		snprintf(cmd, sizeof cmd, "list chain ip6 filter %s", chains[i]);
		if (nft_run(cmd, &err) < 0)
			record(net, "nftchain6 filter %s", chains[i]);
	}
	if (nft_run("list table ip6 filter", &err) < 0)
		record(net, "nfttable6 filter");
}

static int ip6t_add(struct cj_net *net, struct cj_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ip6t_add(struct cj_net *net, struct cj_err *err, const char *fmt, ...)
{
	char rule[512];
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
	if (record(net, "ipt6 %s", rule) < 0)
		return cj_fail(err, errno, "record firewall rule");
	if (ipt_exec(ip6t_bin(net->firewall), "-I", rule, err) < 0)
		return cj_err_wrap(err, "add IPv6 firewall rule");
	return 0;
}

static int ip6t_wall(struct cj_net *net, struct cj_err *err)
{
	ip6t_record_missing_chains(net);
	if (ip6t_add(net, err, "-t filter INPUT -i %s -j DROP", net->tap) < 0 ||
	    ip6t_add(net, err, "-t filter FORWARD -i %s -j DROP", net->tap) < 0 ||
	    ip6t_add(net, err, "-t filter FORWARD -o %s -j DROP", net->tap) < 0 ||
	    ip6t_add(net, err, "-t filter OUTPUT -o %s -j DROP", net->tap) < 0)
		return -1;
	return 0;
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
	ssize_t n;
	int fd, e;

	snprintf(path, sizeof path, "/proc/sys/net/%s/conf/%s/%s", family, dev, key);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, value, len);
	e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)len ? 0 : -1;
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
	fprintf(stderr, "ctr-jailer: IPv6 cannot be switched off on TAP %s (/proc/sys: %s); %s\n",
	        net->tap, strerror(e),
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
		fprintf(stderr,
		        "ctr-jailer: published ports do not answer on the host's 127.0.0.1: "
		        "route_localnet of TAP %s cannot be set (%s)\n",
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

static enum cj_firewall detect_firewall(void)
{
	if (iptables_in_use("iptables-legacy-save"))
		return CJ_FW_IPTABLES_LEGACY;
	if (iptables_in_use("iptables-nft-save"))
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
			fprintf(
			    stderr,
			    "ctr-jailer: cannot check whether the published %s ports are in use "
			    "on this host: %s\n",
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

/* Ports already published by live runs, from their records. */
static int check_ports(const struct cj_net_spec *spec, const char *run_base, const char *self,
                       struct cj_err *err)
{
	DIR *d = opendir(run_base);
	struct dirent *de;

	for (size_t i = 0; i < spec->nports; i++)
		for (size_t j = 0; j < i; j++)
			if (spec->ports[i].host_port == spec->ports[j].host_port &&
			    spec->ports[i].udp == spec->ports[j].udp)
				return cj_fail(err, 0, "host port %u/%s is published twice",
				               spec->ports[i].host_port,
				               spec->ports[i].udp ? "udp" : "tcp");
	if (check_host_listeners(spec, err) < 0) {
		if (d)
			closedir(d);
		return -1;
	}
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[4096], line[256];
		FILE *f;
		if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s/net", run_base, de->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		while (fgets(line, sizeof line, f)) {
			char proto[8];
			unsigned port;
			if (sscanf(line, "port %7s %u", proto, &port) != 2)
				continue;
			for (size_t i = 0; i < spec->nports; i++)
				if (spec->ports[i].host_port == port &&
				    spec->ports[i].udp == (strcmp(proto, "udp") == 0)) {
					fclose(f);
					closedir(d);
					return cj_fail(
					    err, 0, "host port %u/%s is already published by VM %s",
					    port, proto, de->d_name);
				}
		}
		fclose(f);
	}
	closedir(d);
	return 0;
}

/* In a container /proc/sys is read-only: forwarding already on is fine,
 * off is an error the host's owner has to fix. */
static int enable_forwarding(struct cj_err *err)
{
	char cur = '0';
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &cur, 1) != 1)
			cur = '0';
		close(fd);
	}
	if (cur == '1')
		return 0;
	fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (e == EROFS || e == EACCES || e == EPERM)
			return cj_fail(
			    err, 0,
			    "IPv4 forwarding is off and cannot be switched on from here: "
			    "run 'sysctl -w net.ipv4.ip_forward=1' on the host");
		return cj_fail(err, e, "enable IPv4 forwarding");
	}
	close(fd);
	return 0;
}

/* No network, but a namespace of its own all the same: an empty one. */
static int empty_netns(struct cj_net *net, const char *run_dir, struct cj_err *err)
{
	snprintf(net->state_path, sizeof net->state_path, "%s/net", run_dir);
	snprintf(net->netns, sizeof net->netns, "%s/netns", run_dir);
	if (record(net, "netns") < 0)
		return cj_fail(err, errno, "record %s", net->state_path);
	if (cj_netns_create(net->netns, NULL, 0, NULL, err) < 0) {
		cj_net_teardown(net);
		return -1;
	}
	return 0;
}

int cj_net_setup(const struct cj_net_spec *spec, const char *id, const char *run_dir,
                 const char *run_base, uid_t owner_uid, struct cj_net *out, struct cj_err *err)
{
	char lock_path[4096];
	int lock_fd, idx;

	memset(out, 0, sizeof *out);
	if (spec->mode == CJ_NET_NONE)
		return spec->own_netns ? empty_netns(out, run_dir, err) : 0;
	snprintf(out->id, sizeof out->id, "%s", id);
	snprintf(out->tap, sizeof out->tap, "cj-%.12s", id);
	snprintf(out->state_path, sizeof out->state_path, "%s/net", run_dir);
	if (spec->own_netns)
		snprintf(out->netns, sizeof out->netns, "%s/netns", run_dir);
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

	/* Concurrent starts: choosing the /30, claiming ports and putting the
	 * address on the TAP happen under one lock, so the next start sees them. */
	snprintf(lock_path, sizeof lock_path, "%s/.net.lock", run_base);
	lock_fd = cj_lock_file(lock_path, err);
	if (lock_fd < 0)
		return -1;
	if (check_ports(spec, run_base, id, err) < 0 || pick_subnet(spec, out, err) < 0)
		goto fail_unlock;
	if (record(out, "tap %s", out->tap) < 0 || (out->netns[0] && record(out, "netns") < 0)) {
		cj_fail(err, errno, "record %s", out->state_path);
		goto fail_unlock;
	}
	for (size_t i = 0; i < spec->nports; i++)
		record(out, "port %s %u", spec->ports[i].udp ? "udp" : "tcp",
		       spec->ports[i].host_port);
	out->active = true;
	/* In its own namespace, the TAP is reached through a veth pair whose
	 * host end takes the TAP's name here: addresses, NAT and the firewall
	 * below are the same either way. */
	if ((out->netns[0] ? cj_netns_create(out->netns, out->tap, owner_uid, out->tap, err)
	                   : cj_tap_open(out->tap, owner_uid, err)) < 0)
		goto fail_unlock;
	idx = cj_nl_link_index(out->tap);
	if (idx < 0 || cj_nl_addr_add(idx, out->host_addr, out->prefix, err) < 0 ||
	    tap_ipv6_off(out, idx, err) < 0 || cj_nl_link_up(idx, err) < 0)
		goto fail_unlock;
	close(lock_fd);

	if (enable_forwarding(err) < 0)
		goto fail;
	if (out->firewall == CJ_FW_NFT && nft_setup(out, spec, err) < 0)
		goto fail;
	if ((out->firewall == CJ_FW_IPTABLES_LEGACY || out->firewall == CJ_FW_IPTABLES_NFT) &&
	    ipt_setup(out, spec, err) < 0)
		goto fail;
	if (fw_ipv6_wall(out, err) < 0)
		goto fail;
	tap_route_localnet(out, spec);
	/* deterministic MAC from the guest address: 02:fc:a.b.c.d */
	out->mac[0] = 0x02;
	out->mac[1] = 0xfc;
	memcpy(out->mac + 2, &out->guest_addr, 4);
	return 0;
fail_unlock:
	close(lock_fd);
fail:
	cj_net_teardown(out);
	return -1;
}

static void delete_table_if_empty(const char *family, const char *table)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	char cmd[128];

	if (!ctx)
		return;
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	snprintf(cmd, sizeof cmd, "list table %s %s", family, table);
	if (nft_run_cmd_from_buffer(ctx, cmd) == 0) {
		const char *out = nft_ctx_get_output_buffer(ctx);
		if (out && !strstr(out, "chain ")) {
			snprintf(cmd, sizeof cmd, "delete table %s %s", family, table);
			nft_run_cmd_from_buffer(ctx, cmd);
		}
	}
	nft_ctx_free(ctx);
}

/* Does the chain ("TABLE CHAIN") exist and hold no rule? nft deletes a
 * base chain together with its rules, so a chain iptables-nft created for
 * a run goes only when nothing else (the host's own iptables, since) has
 * put a rule in it. Read from libnftables' JSON: one "rule" object each. */
static bool nft_chain_empty(const char *family, const char *chain)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	json_object *root = NULL, *items;
	bool empty = false;
	char cmd[160];

	if (!ctx)
		return false;
	nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	snprintf(cmd, sizeof cmd, "list chain %s %s", family, chain);
	if (nft_run_cmd_from_buffer(ctx, cmd) == 0)
		root = json_tokener_parse(nft_ctx_get_output_buffer(ctx));
	if (root && json_object_object_get_ex(root, "nftables", &items) &&
	    json_object_is_type(items, json_type_array)) {
		empty = true;
		for (size_t i = 0; i < json_object_array_length(items); i++)
			if (json_object_object_get_ex(json_object_array_get_idx(items, i), "rule",
			                              NULL))
				empty = false;
	}
	json_object_put(root);
	nft_ctx_free(ctx);
	return empty;
}

static void delete_chain_if_empty(const char *family, const char *chain)
{
	struct cj_err err = {0};
	char cmd[160];

	if (!nft_chain_empty(family, chain))
		return;
	snprintf(cmd, sizeof cmd, "delete chain %s %s", family, chain);
	nft_run(cmd, &err);
}

/* The VM's network namespace sits next to the record (never a path read
 * from it). */
static void remove_netns(const char *state_path)
{
	char path[4096 + 8];
	const char *slash = strrchr(state_path, '/');

	if (!slash)
		return;
	snprintf(path, sizeof path, "%.*s/netns", (int)(slash - state_path), state_path);
	cj_netns_remove(path);
}

/* The record as it was written, every line of it: how many rules a run
 * adds grows with its published ports (and may grow with what later
 * versions add), so nothing here has a fixed size. */
struct record_lines {
	char **line;
	size_t n;
};

static void record_lines_free(struct record_lines *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->line[i]);
	free(r->line);
	r->line = NULL;
	r->n = 0;
}

static int record_lines_read(const char *state_path, struct record_lines *r)
{
	FILE *f = fopen(state_path, "re");
	char *buf = NULL;
	size_t cap = 0, size = 0;
	ssize_t len;
	int e = 0;

	memset(r, 0, sizeof *r);
	if (!f)
		return -1;
	while ((len = getline(&buf, &size, f)) >= 0) {
		if (len > 0 && buf[len - 1] == '\n')
			buf[len - 1] = '\0';
		if (r->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **grown = realloc(r->line, ncap * sizeof *grown);
			if (!grown) {
				e = ENOMEM;
				break;
			}
			r->line = grown;
			cap = ncap;
		}
		if (!(r->line[r->n] = strdup(buf))) {
			e = ENOMEM;
			break;
		}
		r->n++;
	}
	free(buf);
	fclose(f);
	if (e) {
		record_lines_free(r);
		errno = e;
		return -1;
	}
	return 0;
}

/* The text after `prefix` when line starts with it, else NULL. */
static const char *after(const char *line, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(line, prefix, n) == 0 ? line + n : NULL;
}

static enum cj_firewall record_firewall(const struct record_lines *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const char *v = after(r->line[i], "fw ");
		if (v)
			return strcmp(v, "legacy") == 0 ? CJ_FW_IPTABLES_LEGACY
			                                : CJ_FW_IPTABLES_NFT;
	}
	return CJ_FW_NONE;
}

/* The IPv6 part of the record (fw_ipv6_wall), undone in the same way. */
static void undo_ipv6(const struct record_lines *r)
{
	enum cj_firewall fw = record_firewall(r);
	bool table = false;
	const char *v;

	for (size_t i = 0; i < r->n; i++) {
		struct cj_err err = {0};
		char cmd[128];
		if ((v = after(r->line[i], "nft6 "))) {
			snprintf(cmd, sizeof cmd, "delete table ip6 %s", v);
			nft_run(cmd, &err);
		}
	}
	/* rules: newest first; a rule never added fails quietly */
	for (size_t i = r->n; i-- > 0;) {
		struct cj_err err = {0};
		if ((v = after(r->line[i], "ipt6 ")))
			ipt_exec(ip6t_bin(fw), "-D", v, &err);
	}
	for (size_t i = 0; i < r->n; i++) {
		if ((v = after(r->line[i], "nftchain6 ")))
			delete_chain_if_empty("ip6", v);
		table |= strcmp(r->line[i], "nfttable6 filter") == 0;
	}
	if (table)
		delete_table_if_empty("ip6", "filter");
}

/* Undo from the record: used by teardown and by gc alike. */
static void undo(const char *state_path)
{
	struct record_lines r;
	enum cj_firewall fw;
	const char *v;

	if (record_lines_read(state_path, &r) < 0) {
		if (errno != ENOENT)
			fprintf(stderr,
			        "ctr-jailer: cannot read %s to undo its network setup: %s\n",
			        state_path, strerror(errno));
		return;
	}
	fw = record_firewall(&r);
	undo_ipv6(&r);
	for (size_t i = 0; i < r.n; i++) {
		const char *line = r.line[i];
		if ((v = after(line, "tap "))) {
			int idx = cj_nl_link_index(v);
			if (idx > 0)
				cj_nl_link_del(idx);
		} else if (strcmp(line, "netns") == 0) {
			remove_netns(state_path);
		} else if ((v = after(line, "nft "))) {
			char cmd[128];
			struct cj_err err = {0};
			snprintf(cmd, sizeof cmd, "delete table ip %s", v);
			nft_run(cmd, &err);
		}
	}
	/* iptables rules: newest first; a rule never added fails quietly */
	for (size_t i = r.n; i-- > 0;) {
		struct cj_err err = {0};
		if ((v = after(r.line[i], "ipt ")))
			ipt(fw, "-D", v, &err);
	}
	/* our own iptables chains, once nothing jumps to them any more */
	for (size_t i = 0; i < r.n; i++) {
		struct cj_err err = {0};
		char chain[128];
		if (!(v = after(r.line[i], "iptchain ")))
			continue;
		snprintf(chain, sizeof chain, "-t %s", v);
		ipt(fw, "-F", chain, &err);
		ipt(fw, "-X", chain, &err);
	}
	/* chains and tables iptables-nft created for us: removed when empty */
	for (size_t i = 0; i < r.n; i++)
		if ((v = after(r.line[i], "nftchain ")))
			delete_chain_if_empty("ip", v);
	for (size_t i = 0; i < r.n; i++)
		if ((v = after(r.line[i], "nfttable ")))
			delete_table_if_empty("ip", v);
	record_lines_free(&r);
}

void cj_net_teardown(struct cj_net *net)
{
	if (!net->active && !net->netns[0])
		return;
	undo(net->state_path);
	unlink(net->state_path);
	net->active = false;
	net->netns[0] = '\0';
}

void cj_net_gc(const char *run_dir)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/net", run_dir);
	undo(path);
}
