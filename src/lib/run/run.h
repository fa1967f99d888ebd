/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CJ_RUN_H
#define CJ_RUN_H

#include "run/record.h" /* cj_gc */
#include "spec/spec.h"
#include "util/err.h"

#include <stdbool.h>
#include <sys/types.h>

/* Run the spec to completion. Returns the exit code for ctr-jailer: the
 * workload's status (0-255) or a CJ_EXIT_* code with err filled. */
int cj_run_vm(const struct cj_spec *spec, struct cj_err *err);

#endif
