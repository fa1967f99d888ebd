/* SPDX-License-Identifier: Apache-2.0 */
/* The iptables backends (iptables-legacy, iptables-nft): a run's rules of
 * one family go in with one `iptables-restore --noflush` and come out with
 * another, instead of one iptables process per rule. */
#ifndef CJ_NET_IPTABLES_H
#define CJ_NET_IPTABLES_H

#include "net.h"

#include <json-c/json.h>
#include <stdbool.h>

/* What one restore adds for one family. A rule reads "-t TABLE CHAIN
 * args..." (words without spaces). */
struct cj_ipt_batch {
	enum cj_firewall fw;
	bool six;           /* ip6tables */
	json_object *rules; /* what undo deletes: the rules added to the host's chains */
	json_object *lines; /* "OP -t TABLE CHAIN args": all the restore adds, in order */
	char chain[32];     /* a chain of the run's own in filter ("": none), made first */
};

/* 0, or -1 out of memory. */
int cj_ipt_batch_init(struct cj_ipt_batch *b, enum cj_firewall fw, bool six);
void cj_ipt_batch_free(struct cj_ipt_batch *b);
/* Add rule with op (-I, -A); undo: the rule is in a host chain (deleted by
 * undo), not in the batch's own chain (which goes whole). */
int cj_ipt_batch_add(struct cj_ipt_batch *b, const char *op, const char *rule, bool undo,
                     struct cj_err *err);
/* The undo entry's fields ("fw", "family", "rules", "chain"), for the
 * entry "net.rules" pushed before cj_ipt_batch_run. */
json_object *cj_ipt_batch_entry(const struct cj_ipt_batch *b);
/* One iptables-restore --noflush of the batch. */
int cj_ipt_batch_run(const struct cj_ipt_batch *b, struct cj_err *err);

/* The restore script: per table (raw, filter, nat, in that order) the
 * lines of lines ("OP -t TABLE CHAIN args") as "OP CHAIN args"; chain, if
 * not NULL, is declared first in filter when create, else flushed and
 * deleted after the lines. NULL: a line that is not a rule, or out of
 * memory. Caller frees. */
char *cj_ipt_restore_text(json_object *lines, const char *chain, bool create);

/* Undo of a "net.rules" entry: one restore deleting the rules and the
 * chain; when that fails (part of it was never added), each rule and the
 * chain one by one, quietly. */
int cj_ipt_rules_undo(json_object *entry);

/* iptables-nft makes the tables and base chains it needs on first use and
 * leaves them behind. The undo entry "net.host" ({"family", "tables",
 * "chains": ["TABLE CHAIN"...]}) of those of tables and chains that do not
 * exist yet (one libnftables listing), or NULL when all do. */
json_object *cj_ipt_missing(const char *family, const char *const *tables,
                            const char *const *chains);
/* The nft script of that undo, from now (the family's ruleset listed,
 * libnftables' JSON "nftables" array): each recorded chain that exists
 * with no rule and an accept policy is deleted, and each recorded table
 * whose chains are all such is deleted whole instead. NULL: out of
 * memory. Caller frees. */
char *cj_ipt_host_script(const char *family, json_object *tables, json_object *chains,
                         json_object *now);
/* Its undo: cj_ipt_host_script's deletions, in one transaction. */
int cj_ipt_host_undo(json_object *entry);

/* Run "BIN -w -t TABLE op CHAIN args" for a rule "-t TABLE CHAIN args". */
int cj_ipt_exec(enum cj_firewall fw, bool six, const char *op, const char *rule,
                struct cj_err *err);

#endif
