/* SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

#include "sanitize.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cj_fail(struct cj_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	err->errnum = errnum;
	if (!err->exit_code)
		err->exit_code = CJ_EXIT_RUNTIME;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
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

void cj_notice(const char *fmt, ...)
{
	char raw[2048], clean[4 * sizeof raw];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	cj_sanitize(raw, (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1, clean, sizeof clean);
	fprintf(stderr, "ctr-jailer: %s\n", clean);
}

void cj_freep(void *p)
{
	free(*(void **)p);
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
