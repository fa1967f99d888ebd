/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CJ_RUN_H
#define CJ_RUN_H

#include "spec/spec.h"
#include "util/err.h"

#include <stdbool.h>
#include <sys/types.h>

/* Run the spec to completion (its first stage, run/inputs.c, reads what
 * the spec names into it). Returns the exit code for ctr-jailer: the
 * workload's status (0-255) or a CJ_EXIT_* code with err filled. */
int cj_run_vm(struct cj_spec *spec, struct cj_err *err);

/* Create a run directory under run_base (a new random id, its path in
 * dir) holding its "owner" record, locked: the directory appears under its
 * name only once that lock is held, so gc never sees it unlocked. Returns
 * the lock's fd, to keep open for the run's whole life (close it only
 * after removing the directory). */
int cj_run_dir_create(const char *run_base, char *dir, size_t len, char *id, size_t idlen,
                      struct cj_err *err);

/* Remove run directories whose owner is gone (SIGKILLed runtime), killing a
 * VMM that outlived it. Returns the number removed. */
int cj_gc(const char *run_base, bool verbose);

/* Process start time from /proc/PID/stat (0 when the process is gone):
 * with the pid it names a process unambiguously. */
unsigned long long cj_proc_starttime(pid_t pid);

#endif
