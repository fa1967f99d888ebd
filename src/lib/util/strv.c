/* SPDX-License-Identifier: Apache-2.0 */
#include "strv.h"

#include <stdlib.h>
#include <string.h>

int cj_strv_push(struct cj_strv *sv, const char *s)
{
	char **nv = realloc(sv->v, (sv->n + 2) * sizeof *nv);
	char *copy = strdup(s);

	if (!nv || !copy) {
		free(copy);
		if (nv)
			sv->v = nv;
		return -1;
	}
	nv[sv->n++] = copy;
	nv[sv->n] = NULL;
	sv->v = nv;
	return 0;
}

void cj_strv_free(struct cj_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

int cj_env_set(struct cj_strv *env, const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);

	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], entry, klen) == 0 && env->v[i][klen] == '=') {
			char *copy = strdup(entry);
			if (!copy)
				return -1;
			free(env->v[i]);
			env->v[i] = copy;
			return 0;
		}
	}
	return cj_strv_push(env, entry);
}
