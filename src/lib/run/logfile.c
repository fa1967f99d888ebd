/* SPDX-License-Identifier: Apache-2.0 */
#include "logfile.h"

#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_reopen(struct cj_log *log)
{
	struct stat st;

	log->fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (log->fd < 0)
		return -1;
	log->size = fstat(log->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

int cj_log_open(struct cj_log *log, const char *run_dir, struct cj_err *err)
{
	*log = (struct cj_log){.fd = -1, .line_start = true};
	if ((size_t)snprintf(log->path, sizeof log->path, "%s/" CJ_LOG_NAME, run_dir) >=
	    sizeof log->path - 4)
		return cj_fail(err, ENAMETOOLONG, "console log in %s", run_dir);
	if (log_reopen(log) < 0)
		return cj_fail(err, errno, "open %s", log->path);
	return 0;
}

/* The current file becomes console.log.1 and a new one starts. */
static void rotate(struct cj_log *log)
{
	char old[sizeof log->path + 4];

	snprintf(old, sizeof old, "%s.1", log->path);
	close(log->fd);
	rename(log->path, old);
	if (log_reopen(log) < 0)
		log->fd = -1; /* the log is gone: dropped from now on */
}

static void put(struct cj_log *log, const char *p, size_t n)
{
	while (n && log->fd >= 0) {
		ssize_t w = write(log->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		log->size += (uint64_t)w;
		p += w;
		n -= (size_t)w;
	}
}

void cj_log_write(struct cj_log *log, const char *buf, size_t len)
{
	cj_log_write_stream(log, CJ_LOG_CONSOLE, buf, len);
}

void cj_log_write_stream(struct cj_log *log, char stream, const char *buf, size_t len)
{
	if (len && !log->line_start && log->stream != stream) {
		put(log, "\n", 1); /* another stream's line was open: it ends here */
		log->line_start = true;
	}
	log->stream = stream;
	while (len && log->fd >= 0) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) + 1 : len;
		if (log->line_start) {
			char ts[64];
			if (log->size >= CJ_LOG_MAX)
				rotate(log);
			cj_rfc3339_now(ts, sizeof ts);
			size_t tl = strlen(ts);
			snprintf(ts + tl, sizeof ts - tl, " %c ", stream);
			put(log, ts, strlen(ts));
		}
		/* a line longer than the bound is cut into pieces of it */
		if (n > CJ_LOG_MAX / 2)
			n = CJ_LOG_MAX / 2;
		put(log, buf, n);
		log->line_start = buf[n - 1] == '\n';
		if (!log->line_start && log->size >= CJ_LOG_MAX) {
			put(log, "\n", 1); /* a piece ends its line; the rest starts anew */
			log->line_start = true;
		}
		buf += n;
		len -= n;
	}
}

void cj_log_close(struct cj_log *log)
{
	if (log->fd >= 0)
		close(log->fd);
	log->fd = -1;
}
