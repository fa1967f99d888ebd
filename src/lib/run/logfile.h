/* SPDX-License-Identifier: Apache-2.0 */
/* A run's console log, <run dir>/console.log, bounded by rotation: when
 * it would pass CJ_LOG_MAX bytes it becomes console.log.1 (replacing the
 * previous one) and a new one starts. Each line starts with the time its
 * first byte came, RFC 3339 and a space, which `logs` strips unless
 * --timestamps. */
#ifndef CJ_LOGFILE_H
#define CJ_LOGFILE_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CJ_LOG_MAX   (1u << 20)
#define CJ_LOG_FILES 2 /* console.log and console.log.1 */
#define CJ_LOG_NAME  "console.log"

struct cj_log {
	int fd;
	char path[4096];
	uint64_t size;
	bool line_start;
};

int cj_log_open(struct cj_log *log, const char *run_dir, struct cj_err *err);
void cj_log_write(struct cj_log *log, const char *buf, size_t len);
void cj_log_close(struct cj_log *log);

#endif
