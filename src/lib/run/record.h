/* SPDX-License-Identifier: Apache-2.0 */
/* The run record: one JSON file per run, <run base>/<id>/record.json,
 *   {"version": 1, "id": ID, "owner": {"pid": P, "start": S},
 *    "vmm": {"pid": P, "start": S}, "uid": U, "gid": G, "state": STATE,
 *    "undo": [ENTRY...]}
 * and what the lifecycle verbs read (run/runs.h): "name", "command",
 * "created"/"started"/"finished" (RFC 3339, UTC), "keep" (the record
 * outlives the run, in state "exited", until `rm`), "exit_code",
 * "oom_killed", "address", "ports", "restart", "restart_count", "health"
 * (run/health.h).
 * written whole and renamed into place, so a reader sees one version or
 * the next. The run is alive while its owner holds the lock on the run
 * directory; the directory appears under its name only once locked.
 * Teardown and gc replay the undo log (util/undo.h) newest first, through
 * the one table of kinds in record.c. The lifecycle verbs read it through
 * run/runs.h. */
#ifndef CJ_RECORD_H
#define CJ_RECORD_H

#include "util/err.h"
#include "util/undo.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#define CJ_RECORD_VERSION 1

struct cj_record;

/* Create the run directory under run_base with a new random id, holding
 * its record (state "created"), locked: built as "<run_base>/.new-<id>",
 * locked, then renamed into place. */
int cj_record_create(const char *run_base, struct cj_record **rec, struct cj_err *err);

const char *cj_record_dir(const struct cj_record *rec); /* <run_base>/<id> */
const char *cj_record_id(const struct cj_record *rec);

/* Setters; each persists the record. */
/* The VMM started: its pid and start time, and state "running". */
int cj_record_set_vmm(struct cj_record *rec, pid_t pid, struct cj_err *err);
int cj_record_set_ids(struct cj_record *rec, uid_t uid, gid_t gid, struct cj_err *err);
/* The health check's state (run/health.h; taken). */
int cj_record_set_health(struct cj_record *rec, json_object *health, struct cj_err *err);
int cj_record_set_state(struct cj_record *rec, const char *state, struct cj_err *err);

/* The lifecycle fields: the command, the restart policy (NULL: "no"). */
int cj_record_set_meta(struct cj_record *rec, char *const *argv, size_t argc, const char *restart,
                       struct cj_err *err);
/* The manifest digest of the run's image (rmi refuses to remove it). */
int cj_record_set_image(struct cj_record *rec, const char *digest, struct cj_err *err);
/* Keep the record once the run ended (state "exited"), until `rm`. */
int cj_record_set_keep(struct cj_record *rec, bool keep, struct cj_err *err);
/* The run's name: name, or a random one when NULL; refused when another
 * run (live or exited) has it. Chosen under the run base's "names" lock. */
int cj_record_claim_name(struct cj_record *rec, const char *name, struct cj_err *err);
/* The guest's address ("a.b.c.d") and published ports (taken). */
int cj_record_set_net(struct cj_record *rec, const char *address, json_object *ports,
                      struct cj_err *err);
/* The run's exit code (and whether the VMM's cgroup saw an OOM kill),
 * "finished" now. */
int cj_record_set_exit(struct cj_record *rec, int code, struct cj_err *err);
int cj_record_set_restarts(struct cj_record *rec, unsigned count, struct cj_err *err);
/* Did a cgroup of the run's jail (its undo log's "jail.cgroup") see an
 * OOM kill? Read before teardown removes the cgroup. */
bool cj_record_oom_killed(struct cj_record *rec);

/* The run's undo log, for the stages to push to. */
struct cj_undo *cj_record_undo(struct cj_record *rec);

/* Where the undo log ends now; replay (newest first) and drop the entries
 * pushed since mark: a stage that is done again (a restart's VMM) leaves
 * the log as long as it found it. -1 when some could not be undone (they
 * stay, for teardown and gc). */
size_t cj_record_undo_mark(const struct cj_record *rec);
int cj_record_undo_back_to(struct cj_record *rec, size_t mark, bool verbose, struct cj_err *err);

/* Replay the undo log newest first, remove the directory (a kept record
 * stays, in state "exited", with its logs), then let go of the lock, and
 * free rec. If an entry cannot be undone the directory stays
 * (its log holding what is left) for the next gc, and -1 is returned.
 * NULL rec: no-op. */
int cj_record_teardown(struct cj_record *rec, bool verbose);

/* Remove the runs whose owner is gone (a SIGKILLed runtime): kill the VMM
 * if it is still alive (pid + start time), replay, remove. A kept record
 * of a run that ended (state "exited") stays until `rm`. Returns the
 * number removed. */
int cj_gc(const char *run_base, bool verbose);

/* Call fn with each other run's record (read-only, no lock taken): who
 * holds what (uids, ports). A run without a readable record is skipped.
 * fn returning < 0 stops the walk with that value. */
int cj_record_each(const char *run_base, const char *self,
                   int (*fn)(const char *id, json_object *record, void *ctx), void *ctx,
                   struct cj_err *err);

/* Take <run_base>/.<name>.lock (blocking, exclusive), for choices made
 * across runs (uids, subnets). Returns the fd to close to let go. */
int cj_run_base_lock(const char *run_base, const char *name, struct cj_err *err);

/* The current time as RFC 3339 (UTC, nanoseconds) into buf. */
void cj_rfc3339_now(char *buf, size_t len);

/* Process start time from /proc/PID/stat (0 when the process is gone):
 * with the pid it names a process unambiguously. */
unsigned long long cj_proc_starttime(pid_t pid);

#endif
