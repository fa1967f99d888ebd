/* SPDX-License-Identifier: Apache-2.0 */
/* What the lifecycle verbs (ps, stop, kill, wait, rm, logs, inspect)
 * share: the run base, finding a run, ages, stopping a supervisor. */
#ifndef CJ_CLI_LIFECYCLE_H
#define CJ_CLI_LIFECYCLE_H

#include "cli.h"

#include <json-c/json.h>
#include <time.h>

/* CTR_JAILER_RUN_DIR, or the default run base. */
const char *cli_run_base(void);
/* A verb's operands each resolved (name, id or id prefix) and handed to
 * fn; a failure is printed and the walk goes on. Returns the verb's exit
 * status: 0, or 1 when one failed (docker's). */
int cli_each_ref(int argc, char **argv,
                 int (*fn)(const char *ref, const char *id, void *ctx, struct cj_err *err),
                 void *ctx);
/* The main of a verb on NAME|ID... (stop, kill, wait, rm): its options
 * into ctx, then fn on each operand. */
int cli_refs_main(const struct cli_verb *verb, void *ctx, int argc, char **argv,
                  int (*fn)(const char *ref, const char *id, void *ctx, struct cj_err *err));
/* Seconds since the epoch of an RFC 3339 UTC time; 0 when absent. */
time_t cli_time(json_object *record, const char *key);
/* "5 seconds", "3 minutes", "2 hours", "4 days". */
void cli_age(time_t since, char *buf, size_t len);
/* The run's VM killed now: KILL forwarded to its supervisor
 * (CJ_SIG_FORWARD), which ends the VM. */
int cli_kill_vm(const char *id, struct cj_err *err);

#endif
