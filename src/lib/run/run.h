/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CJ_RUN_H
#define CJ_RUN_H

#include "run/record.h" /* cj_gc */
#include "spec/spec.h"
#include "util/err.h"

#include <stdbool.h>
#include <sys/types.h>

/* Run the spec to completion (its first stage, run/inputs.c, reads what
 * the spec names into it). Returns the exit code for ctr-jailer: the
 * workload's status (0-255) or a CJ_EXIT_* code with err filled. */
int cj_run_vm(struct cj_spec *spec, struct cj_err *err);
/* `ctr-jailer snapshot prepare`: the boot snapshot of the machine shape
 * runs of spec get (its drives, NIC, vCPUs, memory, kernel, VMM), made
 * when missing; path gets its file. */
int cj_run_snapshot_prepare(struct cj_spec *spec, char *path, size_t len, struct cj_err *err);
/* Once the run has a record, cj_run_vm returns with SIGTERM, SIGINT,
 * SIGHUP and SIGQUIT blocked: a stop signal that comes after the run has
 * ended has nothing left to stop and must not kill the caller before it
 * reports the workload's status. */
/* -d: the run goes on in a supervisor process of its own session (its
 * stdio then in the run directory's supervisor.log, the console in
 * console.log; with spec->console_stdout the console stays on stdout too);
 * this returns once the VMM started, 0 with the run's id and the
 * supervisor's pid (when pid is not NULL), or the exit code with err when
 * the run could not start. */
int cj_run_detached(struct cj_spec *spec, char id[16], pid_t *pid, struct cj_err *err);

#endif
