/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry authentication: the WWW-Authenticate challenge (Bearer realm,
 * service, scope; or Basic) and where credentials come from: --creds,
 * CTR_JAILER_REGISTRY_AUTH, then ~/.docker/config.json's auths.<host>.auth
 * (base64 "user:password"). Credential helpers are not supported.
 */
#ifndef CJ_REGISTRY_AUTH_H
#define CJ_REGISTRY_AUTH_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>

struct cj_reg_challenge {
	bool bearer; /* else Basic */
	char realm[1024];
	char service[256];
	char scope[512];
};

/* Parse one WWW-Authenticate header value ("Bearer realm=\"...\",
 * service=\"...\""): quoted or token values, any order, unknown
 * parameters ignored. -1 when it is neither Bearer nor Basic or a Bearer
 * challenge lacks its realm. */
int cj_reg_challenge_parse(const char *value, struct cj_reg_challenge *c, struct cj_err *err);

/* "user:password" for host, or *out = NULL when none is configured.
 * creds (--creds) wins, then env_auth (CTR_JAILER_REGISTRY_AUTH, same
 * form), then home's .docker/config.json (DOCKER_CONFIG's config.json
 * when docker_config_dir is given). Caller frees *out. */
int cj_reg_creds_find(const char *host, const char *creds, const char *env_auth, const char *home,
                      const char *docker_config_dir, char **out, struct cj_err *err);

/* Decode base64 (standard alphabet, '=' padding); -1 when invalid. */
int cj_base64_decode(const char *in, char *out, size_t outlen, size_t *len);

#endif
