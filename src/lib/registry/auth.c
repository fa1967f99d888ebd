/* SPDX-License-Identifier: Apache-2.0 */
/* Challenge parsing and credential lookup (see auth.h). */
#include "registry/auth.h"

#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == ',')
		p++;
	return p;
}

/* One "key=value" pair; value quoted (with \-escapes) or a token.
 * Returns the position after it, or NULL when malformed. */
static const char *param(const char *p, char *key, size_t klen, char *val, size_t vlen)
{
	size_t k = 0, v = 0;

	while (*p && *p != '=' && *p != ' ' && *p != ',') {
		if (k + 1 < klen)
			key[k++] = (char)tolower((unsigned char)*p);
		p++;
	}
	key[k] = '\0';
	while (*p == ' ')
		p++;
	if (*p != '=' || k == 0)
		return NULL;
	p++;
	while (*p == ' ')
		p++;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (v + 1 < vlen)
				val[v++] = *p;
		}
		if (*p != '"')
			return NULL;
		p++;
	} else {
		while (*p && *p != ',' && *p != ' ') {
			if (v + 1 < vlen)
				val[v++] = *p;
			p++;
		}
	}
	val[v] = '\0';
	return p;
}

int cj_reg_challenge_parse(const char *value, struct cj_reg_challenge *c, struct cj_err *err)
{
	const char *p = skip_space(value);
	char key[32], val[1024];

	memset(c, 0, sizeof *c);
	if (strncasecmp(p, "Bearer", 6) == 0 && (p[6] == ' ' || !p[6]))
		c->bearer = true;
	else if (!(strncasecmp(p, "Basic", 5) == 0 && (p[5] == ' ' || !p[5])))
		return cj_fail(err, 0, "the registry asks for an unsupported authentication: %.80s",
		               value);
	p += c->bearer ? 6 : 5;
	for (p = skip_space(p); *p; p = skip_space(p)) {
		if (!(p = param(p, key, sizeof key, val, sizeof val)))
			return cj_fail(err, 0, "malformed WWW-Authenticate header: %.80s", value);
		if (strcmp(key, "realm") == 0)
			snprintf(c->realm, sizeof c->realm, "%s", val);
		else if (strcmp(key, "service") == 0)
			snprintf(c->service, sizeof c->service, "%s", val);
		else if (strcmp(key, "scope") == 0)
			snprintf(c->scope, sizeof c->scope, "%s", val);
	}
	if (c->bearer && !c->realm[0])
		return cj_fail(err, 0, "the registry's Bearer challenge names no realm");
	return 0;
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int cj_base64_decode(const char *in, char *out, size_t outlen, size_t *len)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0, i = 0;

	for (; in[i] && in[i] != '='; i++) {
		int v = b64_val(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= outlen)
				return -1;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	for (; in[i] == '='; i++)
		;
	if (in[i])
		return -1;
	out[n] = '\0';
	*len = n;
	return 0;
}

/* auths.<host>.auth, also under "https://<host>" and, for docker.io,
 * Docker's historic "https://index.docker.io/v1/". */
static json_object *auth_entry(json_object *auths, const char *host)
{
	char key[300];
	json_object *e;

	if (json_object_object_get_ex(auths, host, &e))
		return e;
	snprintf(key, sizeof key, "https://%s", host);
	if (json_object_object_get_ex(auths, key, &e))
		return e;
	if (strcmp(host, "docker.io") == 0 &&
	    json_object_object_get_ex(auths, "https://index.docker.io/v1/", &e))
		return e;
	return NULL;
}

static int config_creds(const char *path, const char *host, char **out, struct cj_err *err)
{
	cj_autofree char *text = NULL;
	json_object *root, *auths, *e, *a, *helpers;
	char dec[1024];
	size_t len, dlen;
	int r = 0;

	if (cj_read_file(path, &text, &len, err) < 0) {
		if (err->errnum != ENOENT)
			return cj_err_wrap(err, "docker config");
		*err = (struct cj_err){0};
		return 0;
	}
	if (!(root = json_tokener_parse(text)))
		return cj_fail(err, 0, "%s is not valid JSON", path);
	if (json_object_object_get_ex(root, "auths", &auths) && (e = auth_entry(auths, host)) &&
	    json_object_object_get_ex(e, "auth", &a) && json_object_is_type(a, json_type_string)) {
		if (cj_base64_decode(json_object_get_string(a), dec, sizeof dec, &dlen) < 0 ||
		    !memchr(dec, ':', dlen))
			r = cj_fail(err, 0, "%s: auths.%s.auth is not base64 of user:password",
			            path, host);
		else if (!(*out = strdup(dec)))
			r = cj_fail(err, ENOMEM, "credentials");
	} else if ((json_object_object_get_ex(root, "credHelpers", &helpers) &&
	            json_object_object_get_ex(helpers, host, NULL)) ||
	           json_object_object_get_ex(root, "credsStore", NULL)) {
		cj_notice("%s names a credential helper for %s; helpers are not supported "
		          "(use --creds or CTR_JAILER_REGISTRY_AUTH)",
		          path, host);
	}
	json_object_put(root);
	return r;
}

int cj_reg_creds_find(const char *host, const char *creds, const char *env_auth, const char *home,
                      const char *docker_config_dir, char **out, struct cj_err *err)
{
	char path[4096];

	*out = NULL;
	if ((creds && *creds) || (env_auth && *env_auth)) {
		const char *c = creds && *creds ? creds : env_auth;
		if (!strchr(c, ':'))
			return cj_fail(err, 0, "%s must be USER:PASSWORD",
			               creds && *creds ? "--creds" : "CTR_JAILER_REGISTRY_AUTH");
		return (*out = strdup(c)) ? 0 : cj_fail(err, ENOMEM, "credentials");
	}
	if (docker_config_dir && *docker_config_dir)
		snprintf(path, sizeof path, "%s/config.json", docker_config_dir);
	else if (home && *home)
		snprintf(path, sizeof path, "%s/.docker/config.json", home);
	else
		return 0;
	return config_creds(path, host, out, err);
}
