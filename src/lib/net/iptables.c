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
#include <nftables/libnftables.h>
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

int cj_ipt_exec(enum cj_firewall fw, bool six, const char *op, const char *rule, struct cj_err *err)
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

	json_object_object_add(
	    e, "fw", json_object_new_string(b->fw == CJ_FW_IPTABLES_LEGACY ? "legacy" : "nft"));
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
	cj_autofree char *text = cj_ipt_restore_text(b->lines, b->chain[0] ? b->chain : NULL, true);

	if (!text)
		return cj_fail(err, ENOMEM, "firewall rules");
	if (restore(b->fw, b->six, text, err) < 0)
		return cj_err_wrap(err, b->six ? "add IPv6 firewall rules" : "add firewall rules");
	return 0;
}

static bool plain_word(const char *v)
{
	if (!v || !*v || strlen(v) > 31)
		return false;
	for (; *v; v++)
		if (!(isalnum((unsigned char)*v) || *v == '_' || *v == '-'))
			return false;
	return true;
}

static bool plain_chain(const char *v)
{
	return v && strncmp(v, "ctrj-", 5) == 0 && plain_word(v);
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

/* ---- iptables-nft's own tables and base chains ------------------------ */

/* The JSON of one libnftables listing, or NULL. */
static json_object *nft_list(struct nft_ctx *ctx, const char *cmd)
{
	json_object *root = NULL, *items = NULL;

	if (nft_run_cmd_from_buffer(ctx, cmd) == 0)
		root = json_tokener_parse(nft_ctx_get_output_buffer(ctx));
	if (root && json_object_object_get_ex(root, "nftables", &items) &&
	    json_object_is_type(items, json_type_array))
		json_object_get(items);
	else
		items = NULL;
	json_object_put(root);
	return items;
}

static struct nft_ctx *nft_json_ctx(void)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);

	if (ctx) {
		nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
		nft_ctx_buffer_output(ctx);
		nft_ctx_buffer_error(ctx);
	}
	return ctx;
}

/* Is there an object of type ("table", "chain", "rule") in table (and
 * chain, when not NULL) among items? */
static bool listed(json_object *items, const char *type, const char *table, const char *chain)
{
	for (size_t i = 0; items && i < json_object_array_length(items); i++) {
		json_object *o, *t, *c;
		if (!json_object_object_get_ex(json_object_array_get_idx(items, i), type, &o) ||
		    !json_object_object_get_ex(o, strcmp(type, "table") == 0 ? "name" : "table",
		                               &t) ||
		    strcmp(json_object_get_string(t), table) != 0)
			continue;
		if (!chain)
			return true;
		if (json_object_object_get_ex(o, strcmp(type, "chain") == 0 ? "name" : "chain",
		                              &c) &&
		    strcmp(json_object_get_string(c), chain) == 0)
			return true;
	}
	return false;
}

json_object *cj_ipt_missing(const char *family, const char *const *tables,
                            const char *const *chains)
{
	struct nft_ctx *ctx = nft_json_ctx();
	json_object *e = json_object_new_object(), *t = json_object_new_array(),
	            *c = json_object_new_array(), *have;
	char cmd[64];
	bool any = false;

	snprintf(cmd, sizeof cmd, "list chains %s", family);
	have = ctx ? nft_list(ctx, cmd) : NULL;
	snprintf(cmd, sizeof cmd, "list tables %s", family);
	json_object *have_t = ctx ? nft_list(ctx, cmd) : NULL;
	for (; *tables; tables++)
		if (!listed(have_t, "table", *tables, NULL)) {
			json_object_array_add(t, json_object_new_string(*tables));
			any = true;
		}
	for (; *chains; chains++) { /* "TABLE CHAIN" */
		char table[32];
		const char *sp = strchr(*chains, ' ');
		snprintf(table, sizeof table, "%.*s", sp ? (int)(sp - *chains) : 0, *chains);
		if (sp && !listed(have, "chain", table, sp + 1)) {
			json_object_array_add(c, json_object_new_string(*chains));
			any = true;
		}
	}
	json_object_put(have);
	json_object_put(have_t);
	if (ctx)
		nft_ctx_free(ctx);
	json_object_object_add(e, "family", json_object_new_string(family));
	json_object_object_add(e, "tables", t);
	json_object_object_add(e, "chains", c);
	if (!any) {
		json_object_put(e);
		return NULL;
	}
	return e;
}

/* The chain TABLE CHAIN of now as listed, or NULL. */
static json_object *chain_of(json_object *now, const char *table, const char *chain)
{
	for (size_t i = 0; now && i < json_object_array_length(now); i++) {
		json_object *o, *t, *n;
		if (json_object_object_get_ex(json_object_array_get_idx(now, i), "chain", &o) &&
		    json_object_object_get_ex(o, "table", &t) &&
		    json_object_object_get_ex(o, "name", &n) &&
		    strcmp(json_object_get_string(t), table) == 0 &&
		    strcmp(json_object_get_string(n), chain) == 0)
			return o;
	}
	return NULL;
}

/* Does a recorded chain go: it exists and holds no rule, and its policy
 * (a base chain's) is still accept: a drop the host set since stays. */
static bool chain_goes(json_object *now, const char *table, const char *chain)
{
	json_object *c = chain_of(now, table, chain), *policy = NULL;

	if (!c || listed(now, "rule", table, chain))
		return false;
	return !json_object_object_get_ex(c, "policy", &policy) ||
	       strcmp(json_object_get_string(policy), "accept") == 0;
}

static bool recorded(json_object *chains, const char *table, const char *chain)
{
	char tc[80];

	snprintf(tc, sizeof tc, "%s %s", table, chain);
	for (size_t j = 0; j < json_object_array_length(chains); j++) {
		const char *r = json_object_get_string(json_object_array_get_idx(chains, j));
		if (r && strcmp(r, tc) == 0)
			return true;
	}
	return false;
}

/* Does every chain of table go (all recorded, all going)? */
static bool table_goes(json_object *now, json_object *chains, const char *t)
{
	if (!listed(now, "table", t, NULL) || listed(now, "rule", t, NULL))
		return false;
	for (size_t k = 0; now && k < json_object_array_length(now); k++) {
		json_object *o, *tn, *cn;
		if (!json_object_object_get_ex(json_object_array_get_idx(now, k), "chain", &o) ||
		    !json_object_object_get_ex(o, "table", &tn) ||
		    strcmp(json_object_get_string(tn), t) != 0 ||
		    !json_object_object_get_ex(o, "name", &cn))
			continue;
		const char *name = json_object_get_string(cn);
		/* a chain we did not record, or one of ours that stays */
		if (!recorded(chains, t, name) || !chain_goes(now, t, name))
			return false;
	}
	return true;
}

char *cj_ipt_host_script(const char *family, json_object *tables, json_object *chains,
                         json_object *now)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < json_object_array_length(chains); i++) {
		const char *tc = json_object_get_string(json_object_array_get_idx(chains, i));
		const char *sp = tc ? strchr(tc, ' ') : NULL;
		char table[32];
		if (!sp || sp - tc >= 32)
			continue;
		snprintf(table, sizeof table, "%.*s", (int)(sp - tc), tc);
		if (plain_word(table) && plain_word(sp + 1) && chain_goes(now, table, sp + 1))
			fprintf(f, "delete chain %s %s %s\n", family, table, sp + 1);
	}
	for (size_t i = 0; i < json_object_array_length(tables); i++) {
		const char *t = json_object_get_string(json_object_array_get_idx(tables, i));
		if (plain_word(t) && table_goes(now, chains, t))
			fprintf(f, "delete table %s %s\n", family, t);
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

int cj_ipt_host_undo(json_object *e)
{
	const char *family = cj_undo_str(e, "family");
	json_object *tables, *chains, *now;
	struct nft_ctx *ctx;
	char *cmd = NULL, list[32];

	if (!family || (strcmp(family, "ip") != 0 && strcmp(family, "ip6") != 0) ||
	    !json_object_object_get_ex(e, "tables", &tables) ||
	    !json_object_object_get_ex(e, "chains", &chains) ||
	    !json_object_is_type(tables, json_type_array) ||
	    !json_object_is_type(chains, json_type_array))
		return -1;
	if (!(ctx = nft_json_ctx()))
		return 0; /* no nftables: nothing to remove */
	snprintf(list, sizeof list, "list ruleset %s", family);
	now = nft_list(ctx, list);
	cmd = cj_ipt_host_script(family, tables, chains, now);
	/* what iptables-nft or the host added since stays; a failure is quiet */
	if (cmd && *cmd)
		nft_run_cmd_from_buffer(ctx, cmd);
	free(cmd);
	json_object_put(now);
	nft_ctx_free(ctx);
	return 0;
}
