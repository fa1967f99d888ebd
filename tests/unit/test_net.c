/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers of networking and volume options: hostile and edge input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ctrj/protocol.h"
#include "net/iptables.h"
#include "net/net.h"
#include "volume/volume.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_port_parse(void **state)
{
	struct cj_port p;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_port_parse("8080:80", &p, &err), 0);
	assert_int_equal(p.host_port, 8080);
	assert_int_equal(p.guest_port, 80);
	assert_false(p.udp);
	assert_int_equal(p.host_ip, 0);
	assert_int_equal(cj_port_parse("5353:53/udp", &p, &err), 0);
	assert_true(p.udp);
	assert_int_equal(cj_port_parse("127.0.0.1:8080:80/tcp", &p, &err), 0);
	assert_int_equal(p.host_ip, inet_addr("127.0.0.1"));
	const char *bad[] = {"",
	                     "80",
	                     ":80",
	                     "80:",
	                     "0:80",
	                     "80:0",
	                     "65536:80",
	                     "8080:80/sctp",
	                     "1.2.3:80:80",
	                     "a:b",
	                     "80:80:80:80",
	                     "8080:80/udp/tcp",
	                     "99999999999999999999:1",
	                     NULL};
	for (size_t i = 0; bad[i]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_port_parse(bad[i], &p, &err), -1);
		assert_non_null(strstr(err.msg, "published port"));
	}
}

static void test_publish_env(void **state)
{
	struct cj_net_spec spec = {0};
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_publish_env_parse("8080:80, 5353:53/udp,,", &spec, &err), 0);
	assert_int_equal(spec.nports, 2);
	assert_true(spec.ports[1].udp);
	memset(&spec, 0, sizeof spec);
	assert_int_equal(cj_publish_env_parse("8080:80,bogus", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "PUBLISH"));
}

static void test_cidr30(void **state)
{
	uint32_t host, guest;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_cidr30_parse("10.20.30.1/30", &host, &guest, &err), 0);
	assert_int_equal(host, inet_addr("10.20.30.1"));
	assert_int_equal(guest, inet_addr("10.20.30.2"));
	assert_int_equal(cj_cidr30_parse("10.20.30.2/255.255.255.252", &host, &guest, &err), 0);
	assert_int_equal(guest, inet_addr("10.20.30.1"));
	assert_int_equal(cj_cidr30_parse("10.20.30.1", &host, &guest, &err), 0); /* /30 implied */
	const char *bad[] = {"10.20.30.0/30",
	                     "10.20.30.3/30",
	                     "10.20.30.1/24",
	                     "10.20.30.1/",
	                     "nonsense",
	                     "10.20.30.1/30/30",
	                     "",
	                     NULL};
	for (size_t i = 0; bad[i]; i++)
		assert_int_equal(cj_cidr30_parse(bad[i], &host, &guest, &err), -1);
}

static void test_volume_spec(void **state)
{
	struct cj_volume_spec v;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_volume_spec_parse("data:/srv/data:ro:size=2G", &v, &err), 0);
	assert_string_equal(v.source, "data");
	assert_string_equal(v.guest_path, "/srv/data");
	assert_true(v.read_only);
	assert_int_equal(v.size, 2ull << 30);
	cj_volume_spec_free(&v);
	assert_int_equal(cj_volume_spec_parse("/images/x.ext4:/x", &v, &err), 0);
	cj_volume_spec_free(&v);
	const char *bad[] = {"data",
	                     "data:relative",
	                     ":/x",
	                     "data:/x:size=0",
	                     "data:/x:size=1K",
	                     "data:/x:size=lots",
	                     "data:/x:bogus",
	                     NULL};
	for (size_t i = 0; bad[i]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_volume_spec_parse(bad[i], &v, &err), -1);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_secret_names(void **state)
{
	(void)state;
	assert_true(ctrj_secret_name_valid("db_password", 11));
	assert_true(ctrj_secret_name_valid("tls.key-1", 9));
	assert_false(ctrj_secret_name_valid("", 0));
	assert_false(ctrj_secret_name_valid(".", 1));
	assert_false(ctrj_secret_name_valid("..", 2));
	assert_false(ctrj_secret_name_valid("a/b", 3));
	assert_false(ctrj_secret_name_valid("a b", 3));
	assert_false(ctrj_secret_name_valid("a\0b", 3));
}

static void test_egress_rule_parse(void **state)
{
	struct cj_egress_rule r;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_egress_rule_parse("10.0.0.0/8", "--allow-egress", &r, &err), 0);
	assert_int_equal(r.net, inet_addr("10.0.0.0"));
	assert_int_equal(r.prefix, 8);
	assert_int_equal(r.port, 0);
	assert_int_equal(cj_egress_rule_parse("192.0.2.10:443", "x", &r, &err), 0);
	assert_int_equal(r.net, inet_addr("192.0.2.10"));
	assert_int_equal(r.prefix, 32);
	assert_int_equal(r.port, 443);
	assert_int_equal(r.proto, CJ_EGRESS_TCP_UDP);
	assert_int_equal(cj_egress_rule_parse("192.0.2.0/24:53/udp", "x", &r, &err), 0);
	assert_int_equal(r.proto, CJ_EGRESS_UDP);
	assert_int_equal(cj_egress_rule_parse("0.0.0.0/0:443/tcp", "x", &r, &err), 0);
	assert_int_equal(r.prefix, 0);
	assert_int_equal(r.proto, CJ_EGRESS_TCP);
	assert_int_equal(cj_egress_rule_parse("1.2.3.4:65535", "x", &r, &err), 0);
	const char *bad[] = {
	    "",
	    "10.0.0.0/33",
	    "10.0.0.0/",
	    "10.0.0.0/-1",
	    "10.0.0.0/+8",
	    "10.0.0/8",
	    "10.0.0.0.0",
	    "host.example",
	    "10.0.0.1:0",
	    "10.0.0.1:65536",
	    "10.0.0.1:",
	    "10.0.0.1:http",
	    "10.0.0.1:80:81",
	    "10.0.0.1:80/sctp",
	    "10.0.0.1:80/",
	    "10.0.0.1/udp",
	    "10.0.0.1:99999999999999999999",
	    ":80",
	    "::1",
	    "10.0.0.0/8 ",
	    "10.0.0.0/8\n:80",
	    "1111111111111111111111111111111111111111111111111111111111111111.0.0.1",
	    NULL};
	for (size_t i = 0; bad[i]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_egress_rule_parse(bad[i], "--allow-egress", &r, &err), -1);
		assert_non_null(strstr(err.msg, "--allow-egress '"));
		assert_non_null(strstr(err.msg, "is invalid"));
		assert_null(
		    strchr(err.msg + strlen("--allow-egress '") + strlen(bad[i]) + 1, '\n'));
	}
	memset(&err, 0, sizeof err);
	assert_int_equal(cj_egress_rule_parse("10.1.2.3/8:80", "--allow-egress", &r, &err), -1);
	assert_non_null(strstr(err.msg, "host bits set: did you mean 10.0.0.0/8?"));
	assert_int_equal(cj_egress_rule_parse("192.0.2.1/0", "x", &r, &err), -1);

	enum cj_egress mode = CJ_EGRESS_UNSET;
	assert_int_equal(cj_egress_mode_parse("deny", "--egress", &mode, &err), 0);
	assert_int_equal(mode, CJ_EGRESS_DENY);
	assert_int_equal(cj_egress_mode_parse("allow", "--egress", &mode, &err), 0);
	assert_int_equal(mode, CJ_EGRESS_ALLOW);
	assert_int_equal(cj_egress_mode_parse("Deny", "--egress", &mode, &err), -1);
	assert_string_equal(err.msg, "--egress 'Deny' is invalid: use allow or deny");
}

static void test_allow_egress_list(void **state)
{
	struct cj_net_spec spec = {0};
	struct cj_err err = {0};
	char many[CJ_MAX_EGRESS * 16 + 16] = "";
	(void)state;

	assert_int_equal(
	    cj_allow_egress_list_parse("10.0.0.0/8, 192.0.2.1:53/udp,,", "V", &spec, &err), 0);
	assert_int_equal(spec.nallow_egress, 2);
	memset(&spec, 0, sizeof spec);
	assert_int_equal(cj_allow_egress_list_parse("10.0.0.0/8,bogus", "V", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "V 'bogus' is invalid"));
	memset(&spec, 0, sizeof spec);
	for (int i = 0; i <= CJ_MAX_EGRESS; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.%d.0/24,", i);
	assert_int_equal(cj_allow_egress_list_parse(many, "V", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "too many V entries"));
	assert_int_equal(spec.nallow_egress, CJ_MAX_EGRESS);
}

static void test_egress_resolve(void **state)
{
	struct cj_net_spec spec = {0};
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_egress_resolve(&spec, &err), 0);
	assert_int_equal(spec.egress, CJ_EGRESS_ALLOW);
	assert_false(cj_egress_denies(&spec));
	assert_int_equal(cj_allow_egress_add(&spec, "10.0.0.0/8", "x", &err), 0);
	spec.egress = CJ_EGRESS_UNSET;
	assert_true(cj_egress_denies(&spec)); /* even unresolved */
	assert_int_equal(cj_egress_resolve(&spec, &err), 0);
	assert_int_equal(spec.egress, CJ_EGRESS_DENY);
	spec.egress = CJ_EGRESS_ALLOW;
	assert_int_equal(cj_egress_resolve(&spec, &err), -1);
	assert_non_null(strstr(err.msg, "contradicts"));
	spec.egress = CJ_EGRESS_DENY;
	spec.firewall = CJ_FW_NONE;
	assert_int_equal(cj_egress_resolve(&spec, &err), -1);
	assert_non_null(strstr(err.msg, "--firewall none"));
	spec.mode = CJ_NET_NONE;
	assert_int_equal(cj_egress_resolve(&spec, &err), 0);

	/* an allow-list entry inside 169.254.0.0/16 needs --allow-link-local;
	 * one that only contains it does not open it (it stays dropped) */
	memset(&spec, 0, sizeof spec);
	assert_int_equal(cj_allow_egress_add(&spec, "169.254.169.254:80/tcp", "x", &err), 0);
	assert_int_equal(cj_egress_resolve(&spec, &err), -1);
	assert_non_null(strstr(err.msg, "169.254.169.254/32:80/tcp is link-local"));
	spec.allow_link_local = true;
	assert_int_equal(cj_egress_resolve(&spec, &err), 0);
	memset(&spec, 0, sizeof spec);
	assert_int_equal(cj_allow_egress_add(&spec, "0.0.0.0/0", "x", &err), 0);
	assert_int_equal(cj_allow_egress_add(&spec, "169.0.0.0/8", "x", &err), 0);
	assert_int_equal(cj_egress_resolve(&spec, &err), 0);
}

/* Index of needle in text, failing when absent: rule order matters. */
static size_t pos(const char *text, const char *needle)
{
	const char *p = text ? strstr(text, needle) : NULL;
	if (!p) {
		fail_msg("\"%s\" not in:\n%s", needle, text ? text : "(null)");
		return SIZE_MAX;
	}
	return (size_t)(p - text);
}

static void test_egress_rules_text(void **state)
{
	struct cj_net_spec spec = {0};
	struct cj_err err = {0};
	uint32_t dns[2] = {inet_addr("192.0.2.53"), inet_addr("169.254.169.253")};
	char *t;
	(void)state;

	/* default: allow, link-local dropped (after DNS, a link-local resolver
	 * included), replies first */
	t = cj_egress_nft_chains(&spec, "cj-x", dns, 2);
	assert_non_null(t);
	assert_true(pos(t, "ct state established,related accept") <
	            pos(t, "ip daddr 169.254.169.253/32 udp dport 53 accept"));
	assert_true(pos(t, "ip daddr 169.254.169.253/32 tcp dport 53 accept") <
	            pos(t, "ip daddr 169.254.0.0/16 drop"));
	assert_true(pos(t, "ip daddr 169.254.0.0/16 drop") < pos(t, "    accept\n  }"));
	pos(t, "iifname \"cj-x\" ip daddr 169.254.0.0/16 drop");
	assert_null(strstr(t, "    drop\n  }"));
	free(t);
	t = cj_egress_ipt_rules(&spec, dns, 2);
	assert_non_null(t);
	assert_true(pos(t, "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n") <
	            pos(t, "-d 192.0.2.53/32 -p udp --dport 53 -j ACCEPT\n"));
	assert_true(pos(t, "-d 169.254.169.253/32 -p tcp --dport 53 -j ACCEPT\n") <
	            pos(t, "-d 169.254.0.0/16 -j DROP\n"));
	assert_true(strlen(t) >= 10 && strcmp(t + strlen(t) - 10, "-j ACCEPT\n") == 0);
	free(t);

	/* deny with an allow-list; link-local allowed */
	assert_int_equal(cj_allow_egress_add(&spec, "192.0.2.0/24:7000", "x", &err), 0);
	assert_int_equal(cj_allow_egress_add(&spec, "198.51.100.0/24", "x", &err), 0);
	assert_int_equal(cj_allow_egress_add(&spec, "0.0.0.0/0:443/tcp", "x", &err), 0);
	spec.allow_link_local = true;
	t = cj_egress_nft_chains(&spec, "cj-x", NULL, 0);
	assert_non_null(t);
	assert_null(strstr(t, "169.254"));
	assert_null(strstr(t, "dport 53"));
	assert_true(pos(t, "ip daddr 192.0.2.0/24 tcp dport 7000 accept") <
	            pos(t, "ip daddr 192.0.2.0/24 udp dport 7000 accept"));
	pos(t, "    ip daddr 198.51.100.0/24 accept\n");
	pos(t, "    tcp dport 443 accept\n");
	assert_null(strstr(t, "udp dport 443"));
	assert_true(pos(t, "tcp dport 443 accept") < pos(t, "    drop\n  }"));
	free(t);
	t = cj_egress_ipt_rules(&spec, NULL, 0);
	assert_non_null(t);
	pos(t, "-d 192.0.2.0/24 -p tcp --dport 7000 -j ACCEPT\n-d 192.0.2.0/24 -p udp --dport "
	       "7000 -j ACCEPT\n-d 198.51.100.0/24 -j ACCEPT\n-p tcp --dport 443 -j ACCEPT\n-j "
	       "DROP\n");
	assert_null(strstr(t, "169.254"));
	free(t);

	/* an allow-list given but the mode left unresolved still denies */
	spec.egress = CJ_EGRESS_UNSET;
	t = cj_egress_ipt_rules(&spec, NULL, 0);
	assert_non_null(t);
	assert_true(strcmp(t + strlen(t) - 8, "-j DROP\n") == 0);
	free(t);
}

/* A replayed entry only ever becomes the command setup would have run:
 * names as setup writes them, a namespace pinned where setup pins it.
 * Refused entries are kept (-1); none of these reaches the host. */
static void test_net_undo_refuses_foreign_entries(void **state)
{
	static const char *const refused[] = {
	    "{\"kind\": \"net.table\", \"family\": \"ip\", \"name\": \"x; flush ruleset\"}",
	    "{\"kind\": \"net.table\", \"family\": \"inet\", \"name\": \"ctrj_0\"}",
	    "{\"kind\": \"net.table\", \"family\": \"ip\"}",
	    "{\"kind\": \"net.table\", \"family\": \"ip\", \"name\": \"a b\"}",
	    "{\"kind\": \"net.table\", \"family\": \"ip\", \"name\": \"ctrj_0\", \"also\": "
	    "\"inet; flush ruleset\"}",
	    "{\"kind\": \"net.chain\", \"fw\": \"nft\", \"table\": \"filter\", \"chain\": "
	    "\"a\\nb\"}",
	    "{\"kind\": \"net.host-chain\", \"family\": \"ip\", \"chain\": \"filter\\\"; x\"}",
	    "{\"kind\": \"net.host-table\", \"family\": 6, \"table\": \"filter\"}",
	    "{\"kind\": \"net.rule\", \"family\": \"arp\", \"rule\": \"-t filter INPUT\"}",
	    "{\"kind\": \"net.rule\", \"family\": \"ip\"}",
	    "{\"kind\": \"net.rule\", \"family\": \"ip\", \"rule\": \"-t filter INPUT -j DROP\"}",
	    "{\"kind\": \"net.rules\", \"family\": \"arp\", \"rules\": []}",
	    "{\"kind\": \"net.rules\", \"family\": \"ip\"}",
	    "{\"kind\": \"net.rules\", \"family\": \"ip\", \"rules\": [\"-t filter INPUT -j "
	    "DROP\"]}",
	    "{\"kind\": \"net.rules\", \"family\": \"ip\", \"rules\": [\"-t filter INPUT -j DROP "
	    "-m comment --comment ctr-jailer:x\\nCOMMIT\"]}",
	    "{\"kind\": \"net.rules\", \"family\": \"ip\", \"rules\": [], \"chain\": "
	    "\"INPUT\"}",
	    "{\"kind\": \"net.rules\", \"family\": \"ip\", \"rules\": [], \"chain\": "
	    "\"ctrj-x\\n-F\"}",
	    "{\"kind\": \"net.host\", \"family\": \"inet\", \"tables\": [], \"chains\": []}",
	    "{\"kind\": \"net.host\", \"family\": \"ip\", \"tables\": []}",
	    "{\"kind\": \"net.netns\", \"path\": \"/etc/passwd\"}",
	    "{\"kind\": \"net.netns\", \"path\": \"relative/netns\"}",
	    "{\"kind\": \"net.netns\"}",
	    "{\"kind\": \"net.something-newer\"}",
	};
	(void)state;

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		json_object *e = json_tokener_parse(refused[i]);
		assert_non_null(e);
		assert_int_equal(cj_net_undo(e, false), -1);
		json_object_put(e);
	}
	json_object *port = json_tokener_parse("{\"kind\": \"net.port\", \"proto\": \"tcp\", "
	                                       "\"port\": 8080}");
	assert_int_equal(cj_net_undo(port, false), 0); /* a claim: nothing to undo */
	json_object_put(port);
}

/* One iptables-restore script per family: tables in a fixed order, the
 * lines of each in the order given, the run's own chain declared first
 * (setup) or flushed and deleted last (undo). */
static void test_ipt_restore_text(void **state)
{
	json_object *lines = json_object_new_array();
	static const char *const in[] = {
	    "-I -t filter FORWARD -i cj-a -j DROP",
	    "-A -t nat POSTROUTING -s 10.0.0.2 -o eth0 -j MASQUERADE",
	    "-I -t raw PREROUTING -i cj-a -s 127.0.0.0/8 -j DROP",
	    "-A -t filter ctrj-egress-a -j RETURN",
	    "-I -t filter FORWARD -i cj-a -o eth0 -j ctrj-egress-a",
	};
	(void)state;

	for (size_t i = 0; i < sizeof in / sizeof *in; i++)
		json_object_array_add(lines, json_object_new_string(in[i]));
	char *t = cj_ipt_restore_text(lines, "ctrj-egress-a", true);
	assert_non_null(t);
	assert_string_equal(t, "*raw\n-I PREROUTING -i cj-a -s 127.0.0.0/8 -j DROP\nCOMMIT\n"
	                       "*filter\n:ctrj-egress-a - [0:0]\n-I FORWARD -i cj-a -j DROP\n"
	                       "-A ctrj-egress-a -j RETURN\n"
	                       "-I FORWARD -i cj-a -o eth0 -j ctrj-egress-a\nCOMMIT\n"
	                       "*nat\n-A POSTROUTING -s 10.0.0.2 -o eth0 -j MASQUERADE\nCOMMIT\n");
	free(t);
	json_object *del = json_object_new_array();
	json_object_array_add(del, json_object_new_string("-D -t filter FORWARD -i cj-a -j DROP"));
	t = cj_ipt_restore_text(del, "ctrj-egress-a", false);
	assert_string_equal(t, "*filter\n-D FORWARD -i cj-a -j DROP\n-F ctrj-egress-a\n"
	                       "-X ctrj-egress-a\nCOMMIT\n");
	free(t);
	json_object_array_add(del, json_object_new_string("not a rule"));
	assert_null(cj_ipt_restore_text(del, NULL, false));
	json_object_put(del);
	json_object_put(lines);
}

/* iptables-nft's tables and base chains a run recorded go only when
 * nothing else came to depend on them: a chain with a rule, or whose
 * policy the host set to drop since (iptables -P FORWARD DROP), stays,
 * and so does its table; an empty accepting chain goes. */
static void test_ipt_host_script(void **state)
{
	static const char *const chain_fmt =
	    "{\"chain\": {\"family\": \"ip\", \"table\": \"filter\", \"name\": \"%s\", "
	    "\"handle\": %d, \"type\": \"filter\", \"hook\": \"%s\", \"prio\": 0, "
	    "\"policy\": \"%s\"}}";
	char c1[300], c2[300], c3[300], all[1200];
	(void)state;

	snprintf(c1, sizeof c1, chain_fmt, "FORWARD", 1, "forward", "drop");
	snprintf(c2, sizeof c2, chain_fmt, "INPUT", 2, "input", "accept");
	snprintf(c3, sizeof c3, chain_fmt, "FORWARD", 1, "forward", "accept");
	json_object *tables = json_tokener_parse("[\"filter\"]");
	json_object *chains = json_tokener_parse("[\"filter FORWARD\", \"filter INPUT\"]");
	snprintf(all, sizeof all,
	         "[{\"table\": {\"family\": \"ip\", \"name\": \"filter\", \"handle\": 1}}, %s, "
	         "%s]",
	         c1, c2);
	json_object *now = json_tokener_parse(all);
	assert_non_null(now);
	char *t = cj_ipt_host_script("ip", tables, chains, now);
	assert_non_null(t);
	assert_string_equal(t, "delete chain ip filter INPUT\n");
	free(t);
	json_object_put(now);
	/* control: both accepting and empty, the table goes whole */
	snprintf(all, sizeof all,
	         "[{\"table\": {\"family\": \"ip\", \"name\": \"filter\", \"handle\": 1}}, %s, "
	         "%s]",
	         c3, c2);
	now = json_tokener_parse(all);
	t = cj_ipt_host_script("ip", tables, chains, now);
	assert_non_null(t);
	assert_non_null(strstr(t, "delete table ip filter\n"));
	free(t);
	json_object_put(now);
	json_object_put(tables);
	json_object_put(chains);
}

/* In a network namespace of a child's own: a persistent TAP handed to
 * cj_tap_end_detached is gone soon after, without this process removing
 * it; a name that is not there gives -1 and makes no TAP. */
static int tap_end_child(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return errno == EPERM ? 77 : 1;
	struct cj_err err = {0};
	if (cj_tap_open("cjtest0", 0, &err) < 0 || cj_nl_link_index("cjtest0") <= 0)
		return 2;
	if (cj_tap_end_detached("cjtest0") < 0)
		return 3;
	for (int i = 0; i < 2000 && cj_nl_link_index("cjtest0") > 0; i++)
		usleep(1000);
	if (cj_nl_link_index("cjtest0") > 0)
		return 4;
	if (cj_tap_end_detached("cjtest1") != -1 || cj_nl_link_index("cjtest1") > 0)
		return 5;
	return 0;
}

static void test_tap_end_detached(void **state)
{
	(void)state;
	int st;
	pid_t pid = fork();

	if (pid == 0)
		_exit(tap_end_child());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip(); /* no CAP_SYS_ADMIN here */
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_parse),
	    cmocka_unit_test(test_publish_env),
	    cmocka_unit_test(test_cidr30),
	    cmocka_unit_test(test_volume_spec),
	    cmocka_unit_test(test_secret_names),
	    cmocka_unit_test(test_egress_rule_parse),
	    cmocka_unit_test(test_allow_egress_list),
	    cmocka_unit_test(test_egress_resolve),
	    cmocka_unit_test(test_egress_rules_text),
	    cmocka_unit_test(test_net_undo_refuses_foreign_entries),
	    cmocka_unit_test(test_ipt_restore_text),
	    cmocka_unit_test(test_ipt_host_script),
	    cmocka_unit_test(test_tap_end_detached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
