/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CJ_UTIL_H
#define CJ_UTIL_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

int cj_mkdir_p(const char *path, mode_t mode, struct cj_err *err);
/* Remove a tree without following symlinks; missing is fine. */
int cj_rm_rf(const char *path);
uint64_t cj_now_ns(void); /* CLOCK_MONOTONIC */

/* Run argv (PATH lookup), wait. Output goes to *out when out != NULL
 * (NUL-terminated, caller frees), else to /dev/null; stderr is kept in the
 * error message on failure. */
int cj_run(char *const argv[], char **out, struct cj_err *err);
/* The same, for commands whose non-zero exit codes mean something (e2fsck):
 * returns 0 once the command ran, with its exit code (128+N for signal N)
 * in *code and, when non-zero, its first stderr line in err. */
int cj_run_code(char *const argv[], char **out, int *code, struct cj_err *err);

/* Append a formatted string to a NULL-terminated vector (argv building). */
int cj_argv_push(char ***v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* This process's cgroup path for a v1 controller (or the v2 hierarchy when
 * controller is NULL), from /proc/self/cgroup; "/" when unknown. */
void cj_own_cgroup(const char *controller, char *out, size_t len);

/* The one PATH lookup: an executable regular file's path, name as is when
 * it has a '/', else the first match in $PATH (a default PATH when unset).
 * -1 with errno when there is none. */
int cj_find_in_path(const char *name, char *out, size_t len);

/* SHA-256 of a byte stream, hex-encoded. */
struct cj_hash;
struct cj_hash *cj_hash_new(void);
void cj_hash_update(struct cj_hash *h, const void *data, size_t len);
void cj_hash_final_hex(struct cj_hash *h, char out[65]); /* frees h */

/* Exclusive advisory lock on path (created); returns fd or -1. */
int cj_lock_file(const char *path, struct cj_err *err);

/* Write text to an existing file in one write (a cgroup or /proc file,
 * where one write is one setting); -1 with errno. */
int cj_write_text(const char *path, const char *text);

/* Read a whole small file; NUL-terminated (len excludes the NUL and counts
 * embedded NULs); caller frees. */
int cj_read_file(const char *path, char **out, size_t *len, struct cj_err *err);

/* Parse "512", "512M", "2G", "1T", "64K" into bytes (no suffix = default_unit). */
int cj_parse_size(const char *s, uint64_t default_unit, uint64_t *out);

#endif
