/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a guest may reach on the way out, beyond "only through the uplink":
 *  - link-local destinations (169.254.0.0/16: cloud metadata services such
 *    as 169.254.169.254 hand out credentials to whoever asks from the host)
 *    are dropped unless --allow-link-local;
 *  - --egress deny, or an --allow-egress list, drops every new connection
 *    the list does not name. DNS (port 53) to the resolvers the guest was
 *    given always passes, and so do replies to connections the guest
 *    accepted (published ports): only what the guest starts is egress.
 * This file parses the options and writes the rules as text; net.c loads
 * them into the VM's own nftables table or its tagged iptables chain, so
 * they go with the VM's other rules at teardown and gc.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINK_LOCAL "169.254.0.0/16"

/* ---- parsing ---------------------------------------------------------- */

int cj_egress_mode_parse(const char *arg, const char *what, enum cj_egress *out, struct cj_err *err)
{
	if (strcmp(arg, "allow") == 0)
		*out = CJ_EGRESS_ALLOW;
	else if (strcmp(arg, "deny") == 0)
		*out = CJ_EGRESS_DENY;
	else
		return cj_fail(err, 0, "%s '%s' is invalid: use allow or deny", what, arg);
	return 0;
}

/* "a.b.c.d" or "a.b.c.d/N"; a bare address is a /32. */
static int parse_cidr(char *s, struct cj_egress_rule *out)
{
	char *slash = strchr(s, '/');
	unsigned long prefix = 32;

	if (slash) {
		*slash = '\0';
		if (cj_decimal_parse(slash + 1, 32, &prefix) < 0)
			return -1;
	}
	if (cj_ipv4_parse(s, &out->net) < 0)
		return -1;
	out->prefix = (unsigned)prefix;
	return 0;
}

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix ? htonl(~0u << (32 - prefix)) : 0;
}

/* CIDR[:PORT[/tcp|/udp]] */
int cj_egress_rule_parse(const char *arg, const char *what, struct cj_egress_rule *out,
                         struct cj_err *err)
{
	char buf[64], *colon, *proto;
	unsigned long port = 0;

	memset(out, 0, sizeof *out);
	if (strlen(arg) >= sizeof buf)
		goto bad;
	snprintf(buf, sizeof buf, "%s", arg);
	colon = strchr(buf, ':');
	if (colon) {
		*colon++ = '\0';
		if ((proto = strchr(colon, '/'))) {
			*proto++ = '\0';
			if (strcmp(proto, "tcp") == 0)
				out->proto = CJ_EGRESS_TCP;
			else if (strcmp(proto, "udp") == 0)
				out->proto = CJ_EGRESS_UDP;
			else
				goto bad;
		}
		if (cj_decimal_parse(colon, 65535, &port) < 0 || port == 0)
			goto bad;
		out->port = (uint16_t)port;
	}
	if (parse_cidr(buf, out) < 0)
		goto bad;
	if (out->net & ~prefix_mask(out->prefix)) {
		char net[INET_ADDRSTRLEN];
		uint32_t masked = out->net & prefix_mask(out->prefix);
		inet_ntop(AF_INET, &masked, net, sizeof net);
		return cj_fail(err, 0, "%s '%s' has host bits set: did you mean %s/%u?", what, arg,
		               net, out->prefix);
	}
	return 0;
bad:
	return cj_fail(err, 0,
	               "%s '%s' is invalid: use CIDR[:PORT[/tcp|/udp]], e.g. 10.0.0.0/8, "
	               "192.0.2.10:443 or 192.0.2.53:53/udp",
	               what, arg);
}

int cj_allow_egress_add(struct cj_net_spec *spec, const char *arg, const char *what,
                        struct cj_err *err)
{
	if (spec->nallow_egress >= CJ_MAX_EGRESS)
		return cj_fail(err, 0, "too many %s entries (at most %d)", what, CJ_MAX_EGRESS);
	if (cj_egress_rule_parse(arg, what, &spec->allow_egress[spec->nallow_egress], err) < 0)
		return -1;
	spec->nallow_egress++;
	return 0;
}

int cj_allow_egress_list_parse(const char *value, const char *what, struct cj_net_spec *spec,
                               struct cj_err *err)
{
	char *copy = strdup(value), *save = NULL;
	int r = 0;

	if (!copy)
		return cj_fail(err, ENOMEM, "%s", what);
	for (char *p = strtok_r(copy, ", ", &save); p && r == 0; p = strtok_r(NULL, ", ", &save))
		r = cj_allow_egress_add(spec, p, what, err);
	free(copy);
	return r;
}

static bool is_link_local(const struct cj_egress_rule *r)
{
	return r->prefix >= 16 && (ntohl(r->net) >> 16) == 0xa9fe;
}

/* The rules, as the user would write them back (for messages). */
static void rule_str(const struct cj_egress_rule *r, char *out, size_t len)
{
	char net[INET_ADDRSTRLEN];
	int n;

	inet_ntop(AF_INET, &r->net, net, sizeof net);
	n = snprintf(out, len, "%s/%u", net, r->prefix);
	if (r->port && n > 0 && (size_t)n < len)
		snprintf(out + n, len - (size_t)n, ":%u%s", r->port,
		         r->proto == CJ_EGRESS_TCP   ? "/tcp"
		         : r->proto == CJ_EGRESS_UDP ? "/udp"
		                                     : "");
}

int cj_egress_resolve(struct cj_net_spec *spec, struct cj_err *err)
{
	if (spec->egress == CJ_EGRESS_ALLOW && spec->nallow_egress)
		return cj_fail(err, 0,
		               "--egress allow contradicts --allow-egress, which denies everything "
		               "it does not name: drop one of them");
	if (spec->egress == CJ_EGRESS_UNSET)
		spec->egress = spec->nallow_egress ? CJ_EGRESS_DENY : CJ_EGRESS_ALLOW;
	if (spec->egress == CJ_EGRESS_DENY && spec->mode == CJ_NET_TAP &&
	    spec->firewall == CJ_FW_NONE)
		return cj_fail(err, 0,
		               "--egress deny (or --allow-egress) needs firewall rules to enforce "
		               "it: not with --firewall none");
	for (size_t i = 0; i < spec->nallow_egress && !spec->allow_link_local; i++)
		if (is_link_local(&spec->allow_egress[i])) {
			char r[64];
			rule_str(&spec->allow_egress[i], r, sizeof r);
			return cj_fail(err, 0,
			               "--allow-egress %s is link-local, which stays dropped: add "
			               "--allow-link-local",
			               r);
		}
	return 0;
}

bool cj_egress_denies(const struct cj_net_spec *spec)
{
	return spec->egress == CJ_EGRESS_DENY ||
	       (spec->egress == CJ_EGRESS_UNSET && spec->nallow_egress > 0);
}

/* ---- rules ------------------------------------------------------------ */

/* One allow-list entry as firewall matches, once per protocol it covers:
 * calls emit(dest, proto, port) with dest "" for 0.0.0.0/0, proto NULL for
 * every protocol. */
static void rule_matches(const struct cj_egress_rule *r, FILE *f,
                         void (*emit)(FILE *, const char *, const char *, unsigned))
{
	char dest[INET_ADDRSTRLEN + 4] = "";

	if (r->prefix) {
		char net[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &r->net, net, sizeof net);
		snprintf(dest, sizeof dest, "%s/%u", net, r->prefix);
	}
	if (!r->port)
		emit(f, dest, NULL, 0);
	if (r->port && r->proto != CJ_EGRESS_UDP)
		emit(f, dest, "tcp", r->port);
	if (r->port && r->proto != CJ_EGRESS_TCP)
		emit(f, dest, "udp", r->port);
}

static void nft_accept(FILE *f, const char *dest, const char *proto, unsigned port)
{
	fputs("    ", f);
	if (*dest)
		fprintf(f, "ip daddr %s ", dest);
	if (proto)
		fprintf(f, "%s dport %u ", proto, port);
	fputs("accept\n", f);
}

static void ipt_accept(FILE *f, const char *dest, const char *proto, unsigned port)
{
	if (*dest)
		fprintf(f, "-d %s ", dest);
	if (proto)
		fprintf(f, "-p %s --dport %u ", proto, port);
	fputs("-j ACCEPT\n", f);
}

/* The rules of one firewall's text. */
struct dialect {
	const char *replies; /* accepts what belongs to accepted connections */
	void (*accept)(FILE *, const char *dest, const char *proto, unsigned port);
	const char *link_local_drop;
	const char *verdict; /* before the default verdict's word */
	const char *allow, *deny;
};

static const struct dialect nft_dialect = {
    .replies = "    ct state established,related accept\n",
    .accept = nft_accept,
    .link_local_drop = "    ip daddr " LINK_LOCAL " drop\n",
    .verdict = "    ",
    .allow = "accept",
    .deny = "drop",
};

static const struct dialect ipt_dialect = {
    .replies = "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    .accept = ipt_accept,
    .link_local_drop = "-d " LINK_LOCAL " -j DROP\n",
    .verdict = "-j ",
    .allow = "ACCEPT",
    .deny = "DROP",
};

/* Order: replies to what was accepted (published ports); DNS to the
 * guest's resolvers, even a link-local one (AWS's 169.254.169.253);
 * link-local; the allow-list; the default verdict. */
static void egress_rules(FILE *f, const struct dialect *d, const struct cj_net_spec *spec,
                         const uint32_t *dns, size_t ndns)
{
	bool deny = cj_egress_denies(spec);

	fputs(d->replies, f);
	for (size_t i = 0; i < ndns; i++) {
		char a[INET_ADDRSTRLEN], dest[INET_ADDRSTRLEN + 4];
		inet_ntop(AF_INET, &dns[i], a, sizeof a);
		snprintf(dest, sizeof dest, "%s/32", a);
		d->accept(f, dest, "udp", 53);
		d->accept(f, dest, "tcp", 53);
	}
	if (!spec->allow_link_local)
		fputs(d->link_local_drop, f);
	for (size_t i = 0; deny && i < spec->nallow_egress; i++)
		rule_matches(&spec->allow_egress[i], f, d->accept);
	fprintf(f, "%s%s\n", d->verdict, deny ? d->deny : d->allow);
}

/* The text written to f, or NULL when writing it failed. */
static char *memstream_text(FILE *f, char **text)
{
	if (fclose(f) != 0) {
		free(*text);
		return NULL;
	}
	return *text;
}

char *cj_egress_nft_chains(const struct cj_net_spec *spec, const char *tap, const uint32_t *dns,
                           size_t ndns)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fputs("  chain egress {\n", f);
	egress_rules(f, &nft_dialect, spec, dns, ndns);
	fputs("  }\n", f);
	/* the host's own link-local addresses: the input chain already drops
	 * what the guest starts; this stays even if that chain changes */
	if (!spec->allow_link_local)
		fprintf(f,
		        "  chain input_link_local {\n"
		        "    type filter hook input priority -2; policy accept;\n"
		        "    iifname \"%s\" ip daddr " LINK_LOCAL " drop\n"
		        "  }\n",
		        tap);
	return memstream_text(f, &text);
}

char *cj_egress_ipt_rules(const struct cj_net_spec *spec, const uint32_t *dns, size_t ndns)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	egress_rules(f, &ipt_dialect, spec, dns, ndns);
	return memstream_text(f, &text);
}
