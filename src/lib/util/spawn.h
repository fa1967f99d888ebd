/* SPDX-License-Identifier: Apache-2.0 */
/* The one way ctr-jailer starts a program: fork (or clone into new
 * namespaces), the child's stdio and the fds it keeps, a session of its
 * own if asked, the caller's last step (a jail), exec; a failure in the
 * child before exec comes back through a pipe with its errno and step. */
#ifndef CJ_SPAWN_H
#define CJ_SPAWN_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct cj_spawn {
	const char *path;  /* the program: absolute, or found with cj_find_in_path */
	char *const *argv; /* argv[0] names it in messages */
	char *const *envp; /* NULL: this process's environment */
	int stdin_fd;      /* -1: /dev/null */
	int stdout_fd;     /* -1: /dev/null */
	int stderr_fd;     /* -1: /dev/null */
	const int *keep;   /* inherited beyond 0-2 (every other fd closes at exec) */
	size_t nkeep;
	bool inherit;              /* instead: fds stay as they are (no close-on-exec: inherited) */
	bool new_session;          /* setsid, death with us, no blocked signals: a VMM's */
	unsigned long clone_flags; /* CLONE_NEW* namespaces; 0: plain fork */
	/* Parent side, while the child waits before pre_exec (the jail's
	 * cgroup): a failure kills the child. */
	int (*on_fork)(void *ctx, pid_t pid, struct cj_err *err);
	/* Child side, last before exec (async-signal-safe): -1 with errno set
	 * and *what naming the step. */
	int (*pre_exec)(void *ctx, const char **what);
	void *ctx;
	/* cj_spawn_capture: the child is killed (with new_session, its whole
	 * process group) once it ran this long; 0: no limit */
	unsigned timeout_ms;
};

#define CJ_SPAWN_STEP_MAX 64
/* Start s; returns the pid, or -1 with err. A child that failed before
 * exec has been reaped; err then reads "start ARGV0: STEP" (STEP "exec"
 * for the exec itself) with the child's errno, and step (may be NULL)
 * holds STEP: it stays "" for a failure in the parent. */
pid_t cj_spawn(const struct cj_spawn *s, char *step, struct cj_err *err);

/* Run s to its end with its stdout and stderr kept (at most cap bytes
 * each; s's own stdout_fd and stderr_fd are ignored): 0 once it ran, with
 * its exit code in *code (128+N for signal N) and, when it is not 0, err
 * "NAME failed (status N): LINE" with the first non-empty line of its
 * stderr; -1 when it could not start (cj_spawn: step). *out gets its
 * stdout ("" when nothing came) when out is set. Past s.timeout_ms it is
 * killed: *code 137, err "NAME did not end within N ms: killed". */
int cj_spawn_capture(struct cj_spawn s, size_t cap, char **out, int *code, char *step,
                     struct cj_err *err);

#endif
