/* SPDX-License-Identifier: Apache-2.0 */
/* Health checks, kept by the process that supervises the VM (foreground
 * run or detached supervisor): every interval it runs the check through
 * the run's own agent socket, as `ctr-jailer exec -- ID TEST...` (the exec
 * client itself, spawned from /proc/self/exe), and keeps docker's state in
 * the run record:
 *   "health": {"status": "starting"|"healthy"|"unhealthy",
 *              "failing_streak": N,
 *              "log": [{"start", "end", "exit_code", "output"}...]}
 * (the last CJ_HEALTH_LOG results; output is the tail of stdout and
 * stderr, at most CJ_HEALTH_OUTPUT bytes; exit_code -1: timed out). */
#ifndef CJ_HEALTH_H
#define CJ_HEALTH_H

#include "spec/spec.h"
#include "util/err.h"

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#define CJ_HEALTH_LOG    5u
#define CJ_HEALTH_OUTPUT 4096u

struct cj_record;

/* docker's state machine, pure (unit-tested). */
enum cj_health_status { CJ_HEALTH_STARTING, CJ_HEALTH_HEALTHY, CJ_HEALTH_UNHEALTHY };
struct cj_health_state {
	enum cj_health_status status;
	unsigned failing_streak;
};
/* A check's result: ok, since_boot_ms after the VM (re)started. A failure
 * in the start period does not count while the run was never healthy. */
void cj_health_account(struct cj_health_state *st, const struct cj_health_spec *spec,
                       uint64_t since_boot_ms, bool ok);
const char *cj_health_status_name(enum cj_health_status s);

struct cj_health;

/* The run's checker, or NULL in *out when it has no check (spec resolved
 * with cj_health_defaults). */
int cj_health_open(const struct cj_health_spec *spec, const char *run_base, const char *id,
                   struct cj_record *rec, struct cj_health **out, struct cj_err *err);
/* The VM (re)booted: any check in flight is killed, the state starts over
 * ("starting"), the first check comes one interval from now. */
void cj_health_boot(struct cj_health *h);
/* The supervisor's poll: *p gets the running check's output pipe (fd -1
 * without one); returns the ms until the checker needs a turn (-1: none). */
int cj_health_pollfd(struct cj_health *h, struct pollfd *p);
/* A turn: read the check's output (p: its pollfd, may be NULL), start a
 * check that is due, kill one past its timeout. */
void cj_health_handle(struct cj_health *h, const struct pollfd *p);
/* SIGCHLD: reap the check if it ended and account for it. */
void cj_health_reap(struct cj_health *h);
/* The VM ended: kill a check in flight (nothing is accounted). */
void cj_health_stop(struct cj_health *h);
void cj_health_close(struct cj_health *h);

#endif
