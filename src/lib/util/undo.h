/* SPDX-License-Identifier: Apache-2.0 */
/* The undo log of a run: each stage that changes the host appends an entry
 * saying how to take the change back, and persists it, before making the
 * change. Teardown and gc (run/record.c) replay the log newest first. */
#ifndef CJ_UNDO_H
#define CJ_UNDO_H

#include "util/err.h"

#include <json-c/json.h>
#include <stdbool.h>

struct cj_undo {                                    /* the undo log a stage appends to */
	json_object *log;                           /* array of entries, oldest first */
	int (*save)(void *ctx, struct cj_err *err); /* persists the record */
	void *ctx;
};

/* Append {"kind": kind, ...entry} (entry is taken) and persist it, BEFORE
 * the stage changes the host. NULL u: no-op returning 0 (unit tests). */
int cj_undo_push(struct cj_undo *u, const char *kind, json_object *entry, struct cj_err *err);

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

/* Entry field readers: NULL / false when absent or of another type. */
const char *cj_undo_str(json_object *entry, const char *key);
bool cj_undo_int(json_object *entry, const char *key, long long *out);

#endif
