/* SPDX-License-Identifier: Apache-2.0 */
/* `run`'s health check options (docker's names and semantics): parsers for
 * the option table in run.c. */
#include "run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH(c) (&((struct run_ctx *)(c))->spec->health)

/* --health-cmd CMD: run as /bin/sh -c CMD (docker's CMD-SHELL). */
int opt_health_cmd(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_strv *t = &HEALTH(c)->test;

	if (!*v)
		return cj_fail(err, 0, "%s: give a command (or --no-healthcheck)", what);
	cj_strv_free(t);
	if (cj_strv_push(t, "/bin/sh") < 0 || cj_strv_push(t, "-c") < 0 || cj_strv_push(t, v) < 0)
		return cj_fail(err, ENOMEM, "%s", what);
	return 0;
}

static int duration(const char *v, const char *what, uint64_t *out, struct cj_err *err)
{
	if (cj_duration_parse(v, out) < 0)
		return cj_fail(err, 0, "%s '%s' is not a duration: give e.g. 30s, 1m30s or 500ms",
		               what, v);
	return 0;
}

int opt_health_interval(void *c, const char *v, const char *what, struct cj_err *err)
{
	return duration(v, what, &HEALTH(c)->interval_ms, err);
}

int opt_health_timeout(void *c, const char *v, const char *what, struct cj_err *err)
{
	return duration(v, what, &HEALTH(c)->timeout_ms, err);
}

int opt_health_start_period(void *c, const char *v, const char *what, struct cj_err *err)
{
	return duration(v, what, &HEALTH(c)->start_period_ms, err);
}

int opt_health_retries(void *c, const char *v, const char *what, struct cj_err *err)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!*v || *end || errno || n > 1000000 || v[0] == '-')
		return cj_fail(err, 0, "%s '%s' is invalid: give a count (0: the default, 3)", what,
		               v);
	HEALTH(c)->retries = (unsigned)n;
	return 0;
}

int opt_no_healthcheck(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	HEALTH(c)->disabled = true;
	return 0;
}
