/* SPDX-License-Identifier: Apache-2.0 */
/* The undo log of a run: each stage that changes the host appends an entry
 * saying how to take the change back, and persists it, before making the
 * change. Teardown and gc (run/record.c) replay the log newest first. */
#ifndef CJ_UNDO_H
#define CJ_UNDO_H

#include "util/err.h"

#include <json-c/json.h>
#include <stdbool.h>

/* The undo log a stage appends to. */
struct cj_undo {
	json_object *log;                           /* array of entries, oldest first */
	int (*save)(void *ctx, struct cj_err *err); /* persists the record */
	void *ctx;
	/* The other runs, for a stage whose choice must not clash with what
	 * they hold (published ports, uids): fn on each one's record (the
	 * JSON of run/record.h), until fn returns < 0; and a lock on the run
	 * base named name, held while choosing and pushing (returns the fd to
	 * close). NULL: no other runs, no lock (unit tests). */
	int (*each_run)(void *ctx, int (*fn)(json_object *record, void *arg), void *arg,
	                struct cj_err *err);
	int (*lock)(void *ctx, const char *name, struct cj_err *err);
};

/* Append {"kind": kind, ...entry} (entry is taken) and persist it, BEFORE
 * the stage changes the host. NULL u: no-op returning 0 (unit tests). */
int cj_undo_push(struct cj_undo *u, const char *kind, json_object *entry, struct cj_err *err);

/* The wrappers stages call: u NULL or without the hook, each_run calls
 * nothing and returns 0, and lock returns an fd on /dev/null. */
int cj_undo_each_run(struct cj_undo *u, int (*fn)(json_object *record, void *arg), void *arg,
                     struct cj_err *err);
int cj_undo_lock(struct cj_undo *u, const char *name, struct cj_err *err);

/* A module's replay function for the kinds "<module>.<what>": undoes one
 * entry. Idempotent: a second replay, or one of a half-done change, is
 * harmless. Returns < 0 when the change may still be in place (the entry
 * is kept for the next gc). */
typedef int (*cj_undo_fn)(json_object *entry, bool verbose);

struct cj_undo_kind {
	const char *module; /* the kind's prefix, before the '.' */
	cj_undo_fn replay;
};

/* Replay log newest first through kinds (ended by a NULL module), removing
 * each entry undone. An entry of no known kind is kept, with a warning.
 * Returns the number of entries left (0: all undone). */
int cj_undo_replay(json_object *log, const struct cj_undo_kind *kinds, bool verbose);
/* The same for the entries from index from on (a stage's own, done again). */
int cj_undo_replay_from(json_object *log, size_t from, const struct cj_undo_kind *kinds,
                        bool verbose);

/* Entry field readers: NULL / false when absent or of another type. */
const char *cj_undo_str(json_object *entry, const char *key);
bool cj_undo_int(json_object *entry, const char *key, long long *out);

#endif
