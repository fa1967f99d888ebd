/* SPDX-License-Identifier: Apache-2.0 */
/* A run's log, <run dir>/console.log, bounded by rotation: when it would
 * pass CJ_LOG_MAX bytes it becomes console.log.1 (replacing the previous
 * one) and a new one starts. Each line starts with the time its first
 * byte came (RFC 3339), a space, the stream it came from (CJ_LOG_*) and a
 * space; `logs` strips both (the time unless --timestamps) and prints the
 * line on the stream's fd. A line cut short by another stream's output or
 * by the bound ends there: the rest starts a line of its own. */
#ifndef CJ_LOGFILE_H
#define CJ_LOGFILE_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CJ_LOG_MAX   (1u << 20)
#define CJ_LOG_FILES 2 /* console.log and console.log.1 */
#define CJ_LOG_NAME  "console.log"

/* The streams a line comes from. */
#define CJ_LOG_STDOUT  'o' /* the workload's stdout */
#define CJ_LOG_STDERR  'e' /* the workload's stderr */
#define CJ_LOG_CONSOLE 'c' /* the serial console: the kernel and the init */

struct cj_log {
	int fd;
	char path[4096];
	uint64_t size;
	bool line_start;
	char stream; /* the stream of the line being written */
};

int cj_log_open(struct cj_log *log, const char *run_dir, struct cj_err *err);
void cj_log_write_stream(struct cj_log *log, char stream, const char *buf, size_t len);
/* The console's output. */
void cj_log_write(struct cj_log *log, const char *buf, size_t len);
void cj_log_close(struct cj_log *log);

#endif
