/* SPDX-License-Identifier: Apache-2.0 */
/* The lifecycle verbs' view of the run base: find a run by name or id
 * (prefix), read its record, tell whether it is alive, wait for it,
 * remove an exited one. */
#ifndef CJ_RUNS_H
#define CJ_RUNS_H

#include "util/err.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>

/* The id of the run ref names: an exact id, then an exact name, then a
 * unique id prefix (docker's order). */
int cj_runs_find(const char *run_base, const char *ref, char id[16], struct cj_err *err);
/* The id of the live run created last (exec --latest); a restart does
 * not make a run newer. */
int cj_runs_latest(const char *run_base, char id[16], struct cj_err *err);
/* The record of run id (NULL with err when it has none). */
json_object *cj_runs_read(const char *run_base, const char *id, struct cj_err *err);
/* Does the run's supervisor still hold its owner lock? */
bool cj_runs_alive(const char *run_base, const char *id);
/* Block until the run's owner lets go of its lock (the run ended). */
int cj_runs_wait(const char *run_base, const char *id, struct cj_err *err);
/* Remove the directory of an ended run whose record was kept; -1 with
 * err (EBUSY) while it runs. */
int cj_runs_remove(const char *run_base, const char *id, struct cj_err *err);
/* Send sig to the run's supervisor (the record's owner, checked by start
 * time). */
int cj_runs_signal(const char *run_base, const char *id, int sig, struct cj_err *err);
/* The signal that asks a supervisor to pass signal N (its value, sent
 * with sigqueue) on to the workload: `kill -s N` of ctr-jailer-runtime and
 * of ctr-jailer (for the signals that are not a stop). N KILL ends the VM;
 * a stop signal (any but WINCH, CONT, CHLD, URG) before the held workload
 * was released ends it too, with 128+N. */
#define CJ_SIG_FORWARD (SIGRTMIN + 3)
/* Ask the run's supervisor to pass sig on (CJ_SIG_FORWARD). */
int cj_runs_forward(const char *run_base, const char *id, int sig, struct cj_err *err);

#endif
