/* SPDX-License-Identifier: Apache-2.0 */
/* The registry options that `pull` and `run` share: parsers into a
 * struct cj_pull_settings, and pull's progress and interruption. */
#ifndef CJ_CLI_PULL_H
#define CJ_CLI_PULL_H

#include "cli.h"
#include "registry/pull.h"

int cli_pull_platform(struct cj_pull_settings *s, const char *v, const char *what,
                      struct cj_err *err);
int cli_pull_creds(struct cj_pull_settings *s, const char *v, const char *what, struct cj_err *err);
int cli_pull_cert_dir(struct cj_pull_settings *s, const char *v, const char *what,
                      struct cj_err *err);
/* Adds to the list (the flag repeats; the variable is comma-separated). */
int cli_pull_insecure(struct cj_pull_settings *s, const char *v, const char *what,
                      struct cj_err *err);
int cli_pull_policy(struct cj_pull_settings *s, const char *v, const char *what,
                    struct cj_err *err);

#endif
