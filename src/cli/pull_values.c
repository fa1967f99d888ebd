/* SPDX-License-Identifier: Apache-2.0 */
/* The registry options' parsers, shared by `pull` and `run` (pull.h). */
#include "pull.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int set(char **slot, const char *v, struct cj_err *err)
{
	free(*slot);
	return (*slot = strdup(v)) ? 0 : cj_fail(err, ENOMEM, "out of memory");
}

int cli_pull_platform(struct cj_pull_settings *s, const char *v, const char *what,
                      struct cj_err *err)
{
	if (!strchr(v, '/') || v[0] == '/')
		return cj_fail(err, 0, "%s '%s': give OS/ARCH[/VARIANT], e.g. linux/amd64", what,
		               v);
	return set(&s->platform, v, err);
}

int cli_pull_creds(struct cj_pull_settings *s, const char *v, const char *what, struct cj_err *err)
{
	if (!strchr(v, ':') || v[0] == ':')
		return cj_fail(err, 0, "%s: give USER:PASSWORD", what);
	return set(&s->creds, v, err);
}

int cli_pull_cert_dir(struct cj_pull_settings *s, const char *v, const char *what,
                      struct cj_err *err)
{
	if (access(v, R_OK | X_OK) < 0)
		return cj_fail(err, errno, "%s %s", what, v);
	return set(&s->cert_dir, v, err);
}

int cli_pull_insecure(struct cj_pull_settings *s, const char *v, const char *what,
                      struct cj_err *err)
{
	char *n;

	if (!v[0] || strchr(v, '/'))
		return cj_fail(err, 0, "%s '%s': give HOST[:PORT]", what, v);
	if (asprintf(&n, "%s%s%s", s->insecure ? s->insecure : "", s->insecure ? "," : "", v) < 0)
		return cj_fail(err, ENOMEM, "out of memory");
	free(s->insecure);
	s->insecure = n;
	return 0;
}

int cli_pull_policy(struct cj_pull_settings *s, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "missing") == 0)
		s->policy = CJ_PULL_MISSING;
	else if (strcmp(v, "always") == 0)
		s->policy = CJ_PULL_ALWAYS;
	else if (strcmp(v, "never") == 0)
		s->policy = CJ_PULL_NEVER;
	else
		return cj_fail(err, 0, "%s '%s': give missing, always or never", what, v);
	return 0;
}
