/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CJ_RUN_H
#define CJ_RUN_H

#include "spec/spec.h"
#include "util/err.h"

#include <stdbool.h>
#include <sys/types.h>

/* Run the spec to completion. Returns the exit code for ctr-jailer: the
 * workload's status (0-255) or a CJ_EXIT_* code with err filled. */
int cj_run_vm(const struct cj_spec *spec, struct cj_err *err);

/* Remove run directories whose owner is gone (SIGKILLed runtime), killing a
 * VMM that outlived it. Returns the number removed. */
int cj_gc(const char *run_base, bool verbose);

/* Process start time from /proc/PID/stat (0 when the process is gone):
 * with the pid it names a process unambiguously. */
unsigned long long cj_proc_starttime(pid_t pid);

#endif
