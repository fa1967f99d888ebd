/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error contract for the engine (after crun): a function that can fail
 * returns a negative value and fills a struct cj_err; a caller adds context
 * with cj_err_wrap; only main() prints and exits.
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
	int errnum; /* errno, 0 if none */
	int exit_code;
	char msg[CJ_ERR_MSG_MAX];
};

/* A buffer for cj_err_str that holds any message whole: room for
 * strerror's text, and every byte escaped as \xNN. */
#define CJ_ERR_STR_MAX (4 * (CJ_ERR_MSG_MAX + 128) + 1)

/* Fill err; returns -1. errnum may be 0. */
int cj_fail(struct cj_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix existing message with context; returns -1. */
int cj_err_wrap(struct cj_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Render "msg: strerror(errnum)" into buf, made safe for a terminal
 * (cj_sanitize): messages carry image and guest data. */
const char *cj_err_str(const struct cj_err *err, char *buf, size_t len);
/* The one sink for notices and warnings: "ctr-jailer: MESSAGE" on stderr,
 * one line, made safe for a terminal (cj_sanitize), so a notice that
 * quotes image or guest data needs no care at its call site. fmt has no
 * trailing newline. */
void cj_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define cj_cleanup(fn) __attribute__((cleanup(fn)))
void cj_freep(void *p);
void cj_closep(int *fd);
#define cj_autofree  cj_cleanup(cj_freep)
#define cj_autoclose cj_cleanup(cj_closep)

#endif
