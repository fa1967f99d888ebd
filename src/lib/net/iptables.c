/* SPDX-License-Identifier: Apache-2.0 */
/* The iptables backends' rules, batched: one iptables-restore per family
 * and direction (see iptables.h). */
#include "iptables.h"

#include "util/spawn.h"
#include "util/undo.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *bin(enum cj_firewall fw, bool six, bool restore)
{
	static const char *const names[2][2][2] = {
	    {{"iptables-nft", "iptables-nft-restore"}, {"ip6tables-nft", "ip6tables-nft-restore"}},
	    {{"iptables-legacy", "iptables-legacy-restore"},
	     {"ip6tables-legacy", "ip6tables-legacy-restore"}}};
	return names[fw == CJ_FW_IPTABLES_LEGACY][six][restore];
}

int cj_ipt_exec(enum cj_firewall fw, bool six, const char *op, const char *rule,
                struct cj_err *err)
{
	char *argv[66], copy[1024], *save = NULL;
	size_t n = 0;

	if (strlen(rule) >= sizeof copy)
		return cj_fail(err, 0, "internal: firewall rule too long: '%.64s...'", rule);
	snprintf(copy, sizeof copy, "%s", rule);
	argv[n++] = (char *)bin(fw, six, false);
	argv[n++] = "-w";
	/* the rule is "-t TABLE CHAIN args...": op goes before CHAIN */
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n == 64)
			return cj_fail(
			    err, 0, "internal: firewall rule has too many words: '%.64s...'", rule);
		if (n == 4)
			argv[n++] = (char *)op;
		argv[n++] = w;
	}
	argv[n] = NULL;
	if (n < 6 || strcmp(argv[2], "-t") != 0)
		return cj_fail(err, 0, "internal: bad rule '%s'", rule);
	return cj_run(argv, NULL, err);
}

int cj_ipt_batch_init(struct cj_ipt_batch *b, enum cj_firewall fw, bool six)
{
	memset(b, 0, sizeof *b);
	b->fw = fw;
	b->six = six;
	b->rules = json_object_new_array();
	b->lines = json_object_new_array();
	return b->rules && b->lines ? 0 : -1;
}

void cj_ipt_batch_free(struct cj_ipt_batch *b)
{
	json_object_put(b->rules);
	json_object_put(b->lines);
	b->rules = b->lines = NULL;
}

int cj_ipt_batch_add(struct cj_ipt_batch *b, const char *op, const char *rule, bool undo,
                     struct cj_err *err)
{
	char line[1100];

	if (strncmp(rule, "-t ", 3) != 0 || strlen(rule) >= 1024)
		return cj_fail(err, 0, "internal: bad firewall rule '%.64s'", rule);
	snprintf(line, sizeof line, "%s %s", op, rule);
	if (json_object_array_add(b->lines, json_object_new_string(line)) < 0 ||
	    (undo && json_object_array_add(b->rules, json_object_new_string(rule)) < 0))
		return cj_fail(err, ENOMEM, "firewall rules");
	return 0;
}

json_object *cj_ipt_batch_entry(const struct cj_ipt_batch *b)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "fw",
	                       json_object_new_string(b->fw == CJ_FW_IPTABLES_LEGACY ? "legacy"
	                                                                             : "nft"));
	json_object_object_add(e, "family", json_object_new_string(b->six ? "ip6" : "ip"));
	json_object_object_add(e, "rules", json_object_get(b->rules));
	if (b->chain[0])
		json_object_object_add(e, "chain", json_object_new_string(b->chain));
	return e;
}

/* "OP -t TABLE CHAIN args" → table, and "OP CHAIN args" in out. */
static int split_line(const char *line, char *table, size_t tlen, char *out, size_t olen)
{
	const char *t = strstr(line, " -t "), *rest;
	size_t oplen = t ? (size_t)(t - line) : 0;

	if (!t || oplen == 0 || oplen > 3)
		return -1;
	t += 4;
	rest = strchr(t, ' ');
	if (!rest || (size_t)(rest - t) >= tlen)
		return -1;
	snprintf(table, tlen, "%.*s", (int)(rest - t), t);
	snprintf(out, olen, "%.*s%s", (int)oplen, line, rest);
	return 0;
}

static bool write_table(FILE *f, json_object *lines, const char *table, const char *chain,
                        bool create)
{
	bool filter = strcmp(table, "filter") == 0, any = chain && filter;
	char t[32], out[1100];

	for (size_t i = 0; i < json_object_array_length(lines); i++) {
		const char *l = json_object_get_string(json_object_array_get_idx(lines, i));
		if (!l || split_line(l, t, sizeof t, out, sizeof out) < 0)
			return false;
		any |= strcmp(t, table) == 0;
	}
	if (!any)
		return true;
	fprintf(f, "*%s\n", table);
	if (chain && filter && create)
		fprintf(f, ":%s - [0:0]\n", chain);
	for (size_t i = 0; i < json_object_array_length(lines); i++) {
		const char *l = json_object_get_string(json_object_array_get_idx(lines, i));
		split_line(l, t, sizeof t, out, sizeof out);
		if (strcmp(t, table) == 0)
			fprintf(f, "%s\n", out);
	}
	if (chain && filter && !create)
		fprintf(f, "-F %s\n-X %s\n", chain, chain);
	fprintf(f, "COMMIT\n");
	return true;
}

char *cj_ipt_restore_text(json_object *lines, const char *chain, bool create)
{
	static const char *const tables[] = {"raw", "filter", "nat"};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	bool ok = f != NULL;

	for (size_t i = 0; ok && i < sizeof tables / sizeof *tables; i++)
		ok = write_table(f, lines, tables[i], chain, create);
	if (f)
		fclose(f);
	if (!ok) {
		free(text);
		return NULL;
	}
	return text;
}

/* Feed text to "RESTORE -w --noflush". */
static int restore(enum cj_firewall fw, bool six, const char *text, struct cj_err *err)
{
	char path[PATH_MAX];
	char *argv[] = {(char *)bin(fw, six, true), "-w", "--noflush", NULL};
	cj_autoclose int in = memfd_create("ctrj-iptables", MFD_CLOEXEC);
	size_t len = strlen(text);
	int code;

	if (in < 0 || write(in, text, len) != (ssize_t)len || lseek(in, 0, SEEK_SET) < 0)
		return cj_fail(err, errno, "firewall rules for %s", argv[0]);
	if (cj_find_in_path(argv[0], path, sizeof path) < 0)
		return cj_fail(err, errno, "run %s", argv[0]);
	struct cj_spawn s = {.path = path, .argv = argv, .stdin_fd = in};
	if (cj_spawn_capture(s, 1 << 16, NULL, &code, NULL, err) < 0)
		return cj_err_wrap(err, "run %s", argv[0]);
	return code == 0 ? 0 : -1;
}

int cj_ipt_batch_run(const struct cj_ipt_batch *b, struct cj_err *err)
{
	cj_autofree char *text =
	    cj_ipt_restore_text(b->lines, b->chain[0] ? b->chain : NULL, true);

	if (!text)
		return cj_fail(err, ENOMEM, "firewall rules");
	if (restore(b->fw, b->six, text, err) < 0)
		return cj_err_wrap(err, b->six ? "add IPv6 firewall rules" : "add firewall rules");
	return 0;
}

static bool plain_chain(const char *v)
{
	if (!v || strncmp(v, "ctrj-", 5) != 0 || strlen(v) >= 32)
		return false;
	for (; *v; v++)
		if (!(isalnum((unsigned char)*v) || *v == '-' || *v == '_'))
			return false;
	return true;
}

int cj_ipt_rules_undo(json_object *e)
{
	const char *family = cj_undo_str(e, "family"), *fwn = cj_undo_str(e, "fw");
	const char *chain = cj_undo_str(e, "chain");
	enum cj_firewall fw =
	    fwn && strcmp(fwn, "legacy") == 0 ? CJ_FW_IPTABLES_LEGACY : CJ_FW_IPTABLES_NFT;
	bool six = family && strcmp(family, "ip6") == 0;
	json_object *rules, *lines = json_object_new_array();
	struct cj_err err = {0};
	char arg[64];

	if (!family || (!six && strcmp(family, "ip") != 0) || (chain && !plain_chain(chain)) ||
	    !json_object_object_get_ex(e, "rules", &rules) ||
	    !json_object_is_type(rules, json_type_array) || !lines) {
		json_object_put(lines);
		return -1;
	}
	/* only ever a rule tagged as a run's */
	for (size_t i = 0; i < json_object_array_length(rules); i++) {
		const char *r = json_object_get_string(json_object_array_get_idx(rules, i));
		char line[1100];
		if (!r || strncmp(r, "-t ", 3) != 0 || strchr(r, '\n') ||
		    !strstr(r, " -m comment --comment ctr-jailer:")) {
			json_object_put(lines);
			return -1;
		}
		snprintf(line, sizeof line, "-D %s", r);
		json_object_array_add(lines, json_object_new_string(line));
	}
	cj_autofree char *text = cj_ipt_restore_text(lines, chain, false);
	json_object_put(lines);
	if (text && restore(fw, six, text, &err) == 0)
		return 0;
	/* some of it was never added: what was, one by one */
	for (size_t i = 0; i < json_object_array_length(rules); i++)
		cj_ipt_exec(fw, six, "-D",
		            json_object_get_string(json_object_array_get_idx(rules, i)), &err);
	if (chain) {
		snprintf(arg, sizeof arg, "-t filter %s", chain);
		cj_ipt_exec(fw, six, "-F", arg, &err);
		cj_ipt_exec(fw, six, "-X", arg, &err);
	}
	return 0;
}
