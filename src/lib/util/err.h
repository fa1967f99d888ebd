/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error contract for the engine (after crun):
 * - a function that can fail returns a negative value (or NULL) and fills
 *   the struct cj_err its caller passed, with cj_fail() or cj_fail_code();
 *   there are no other error out-parameters (no char *err, no errno plus a
 *   "what" string, no bool plus a "why");
 * - a caller that adds context does so with cj_err_wrap(), which keeps the
 *   errno and the exit code;
 * - err->exit_code is the CJ_EXIT_* code (or workload status) the failure
 *   maps to; 0 means the default, CJ_EXIT_RUNTIME (125). main() prints the
 *   one line (cj_err_str) and exits with it;
 * - the library never writes to stderr itself: notices and warnings go
 *   through cj_notice() and cj_warn(), which reach one settable sink;
 * - a function whose error paths only free or close uses cj_autofree /
 *   cj_autoclose (and cj_steal_* to hand a value over) instead of gotos.
 */
#ifndef CJ_ERR_H
#define CJ_ERR_H

#include <stddef.h>

/* Exit codes of ctr-jailer itself; workload statuses are 0-255 as well,
 * so these follow docker's convention at the top of the range. */
enum cj_exit {
	CJ_EXIT_GUEST_SETUP = 123, /* the guest init failed before exec */
	CJ_EXIT_VM_LOST = 124,     /* the VM ended without reporting a status */
	CJ_EXIT_RUNTIME = 125,     /* bad input or the VM could not be started */
	CJ_EXIT_CANNOT_EXEC = 126, /* the command exists but cannot be executed */
	CJ_EXIT_NOT_FOUND = 127,   /* the command does not exist in the image */
};

#define CJ_ERR_MSG_MAX 1024

struct cj_err {
	int errnum;    /* errno, 0 if none */
	int exit_code; /* CJ_EXIT_* the failure maps to; 0: CJ_EXIT_RUNTIME */
	char msg[CJ_ERR_MSG_MAX];
};

/* A buffer for cj_err_str that holds any message whole: room for
 * strerror's text, and every byte escaped as \xNN. */
#define CJ_ERR_STR_MAX (4 * (CJ_ERR_MSG_MAX + 128) + 1)

/* Fill err; returns -1. errnum may be 0. An exit code already set in err
 * is kept, else it becomes CJ_EXIT_RUNTIME. */
int cj_fail(struct cj_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* cj_fail that also says which exit code the failure maps to (a CJ_EXIT_*
 * value; 0 means CJ_EXIT_RUNTIME). Returns -1. */
int cj_fail_code(struct cj_err *err, int exit_code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix existing message with context; returns -1. */
int cj_err_wrap(struct cj_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Render "msg: strerror(errnum)" into buf, made safe for a terminal
 * (cj_sanitize): messages carry image and guest data. */
const char *cj_err_str(const struct cj_err *err, char *buf, size_t len);
/* Notices and warnings: the message is formatted, made safe for a terminal
 * (cj_sanitize, one line), and handed to the notice sink, so a notice that
 * quotes image or guest data needs no care at its call site. fmt has no
 * trailing newline. The default sink writes "ctr-jailer: MESSAGE" (notice)
 * or "ctr-jailer: warning: MESSAGE" (warning) to stderr. */
enum cj_notice_level {
	CJ_LEVEL_NOTICE,
	CJ_LEVEL_WARNING,
};
void cj_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cj_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Send notices and warnings to fn instead of stderr (a log file in a
 * future runtime mode). msg is already sanitized, one line, without the
 * "ctr-jailer: " or "warning: " prefix. fn NULL restores the default sink.
 * Not thread-safe: set it before starting threads. */
typedef void cj_notice_sink_fn(int level, const char *msg, void *ud);
void cj_set_notice_sink(cj_notice_sink_fn *fn, void *ud);

#define cj_cleanup(fn) __attribute__((cleanup(fn)))
void cj_freep(void *p);
void cj_closep(int *fd);
#define cj_autofree  cj_cleanup(cj_freep)
#define cj_autoclose cj_cleanup(cj_closep)

/* Hand over what a cj_autoclose / cj_autofree variable holds (ownership
 * moves to the caller): the cleanup then has nothing to release. */
static inline int cj_steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}
static inline void *cj_steal_ptr(void *pp)
{
	void *r = *(void **)pp;
	*(void **)pp = (void *)0;
	return r;
}

#endif
