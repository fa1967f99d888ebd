/* SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

#include "sanitize.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((format(printf, 3, 0))) static int vfail(struct cj_err *err, int errnum,
                                                       const char *fmt, va_list ap)
{
	err->errnum = errnum;
	if (!err->exit_code)
		err->exit_code = CJ_EXIT_RUNTIME;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	return -1;
}

int cj_fail(struct cj_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(err, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

int cj_fail_code(struct cj_err *err, int exit_code, int errnum, const char *fmt, ...)
{
	va_list ap;

	err->exit_code = exit_code;
	va_start(ap, fmt);
	vfail(err, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

int cj_err_wrap(struct cj_err *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof err->msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
	return -1;
}

const char *cj_err_str(const struct cj_err *err, char *buf, size_t len)
{
	char raw[CJ_ERR_MSG_MAX + 128];
	int n;

	if (err->errnum)
		n = snprintf(raw, sizeof raw, "%s: %s", err->msg, strerror(err->errnum));
	else
		n = snprintf(raw, sizeof raw, "%s", err->msg);
	if (n < 0)
		n = 0;
	cj_sanitize(raw, (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1, buf, len);
	return buf;
}

static void stderr_sink(int level, const char *msg, void *ud)
{
	fprintf(stderr, "ctr-jailer: %s%s\n", level == CJ_LEVEL_WARNING ? "warning: " : "", msg);
}

static cj_notice_sink_fn *notice_sink = stderr_sink;
static void *notice_sink_ud;

void cj_set_notice_sink(cj_notice_sink_fn *fn, void *ud)
{
	notice_sink = fn ? fn : stderr_sink;
	notice_sink_ud = fn ? ud : NULL;
}

__attribute__((format(printf, 2, 0))) static void vnotify(int level, const char *fmt, va_list ap)
{
	char raw[2048], clean[4 * sizeof raw];
	int n;

	n = vsnprintf(raw, sizeof raw, fmt, ap);
	if (n < 0)
		return;
	cj_sanitize(raw, (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1, clean, sizeof clean);
	notice_sink(level, clean, notice_sink_ud);
}

void cj_notice(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnotify(CJ_LEVEL_NOTICE, fmt, ap);
	va_end(ap);
}

void cj_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnotify(CJ_LEVEL_WARNING, fmt, ap);
	va_end(ap);
}

/* Both keep errno: a function may set it and return while they run. */
void cj_freep(void *p)
{
	int saved = errno;

	free(*(void **)p);
	errno = saved;
}

/* Never retry close() on EINTR: the fd is gone either way on Linux. */
void cj_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
		*fd = -1;
	}
}
