/* SPDX-License-Identifier: Apache-2.0 */
/* A NULL-terminated vector of owned strings (argv, environments, lists). */
#ifndef CJ_STRV_H
#define CJ_STRV_H

#include <stddef.h>

struct cj_strv {
	char **v; /* NULL-terminated */
	size_t n;
};

/* Append a copy of s; -1 on allocation failure (sv stays valid). */
int cj_strv_push(struct cj_strv *sv, const char *s);
void cj_strv_free(struct cj_strv *sv);
/* Set NAME=VALUE in env, replacing an earlier value of NAME. */
int cj_env_set(struct cj_strv *env, const char *entry);

#endif
