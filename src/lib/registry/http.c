/* SPDX-License-Identifier: Apache-2.0 */
/* The registry session (see http.h). */
#include "registry/http.h"

#include "registry/auth.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TOKEN_MAX (64u * 1024u)

bool cj_pull_host_listed(const char *list, const char *host)
{
	size_t hl = strlen(host);

	for (const char *p = list; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len && *p == ' ')
			p++, len--;
		if (len == hl && strncmp(p, host, hl) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

/* docker's certs.d layout: DIR/HOST[:PORT]/{ca.crt,client.cert,client.key},
 * or those files in DIR itself. */
static void tls_files(struct reg *r)
{
	char dir[4100];
	const char *cd = r->o->cert_dir;

	if (!cd || !*cd)
		return;
	snprintf(dir, sizeof dir, "%s/%s", cd, r->ref.host);
	if (access(dir, F_OK) < 0)
		snprintf(dir, sizeof dir, "%s", cd);
	snprintf(r->cafile, sizeof r->cafile, "%s/ca.crt", dir);
	snprintf(r->cert, sizeof r->cert, "%s/client.cert", dir);
	snprintf(r->key, sizeof r->key, "%s/client.key", dir);
	if (access(r->cafile, R_OK) < 0)
		r->cafile[0] = '\0';
	if (access(r->cert, R_OK) < 0 || access(r->key, R_OK) < 0)
		r->cert[0] = r->key[0] = '\0';
}

int reg_open(struct reg *r, const char *ref, const struct cj_pull_opts *o, struct cj_err *err)
{
	bool insecure;

	memset(r, 0, sizeof *r);
	r->o = o;
	if (cj_reg_ref_parse(ref, &r->ref, err) < 0 || cj_curl_load(err) < 0)
		return -1;
	insecure = cj_pull_host_listed(o->insecure, r->ref.host);
	snprintf(r->base, sizeof r->base, "%s://%s", insecure ? "http" : "https",
	         cj_reg_ref_endpoint(&r->ref));
	tls_files(r);
	if (cj_reg_creds_find(r->ref.host, o->creds, o->env_auth, o->home, o->docker_config,
	                      &r->creds, err) < 0)
		return -1;
	r->creds_from = o->creds && *o->creds         ? "--creds"
	                : o->env_auth && *o->env_auth ? "CTR_JAILER_REGISTRY_AUTH"
	                                              : "the docker config";
	return 0;
}

void reg_close(struct reg *r)
{
	if (r->creds) {
		explicit_bzero(r->creds, strlen(r->creds));
		free(r->creds);
	}
	free(r->bearer);
	r->creds = r->bearer = NULL;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *rs = ud;
	size_t len = sz * n;

	if (rs->len + len > rs->max) {
		rs->too_big = true;
		return 0;
	}
	char *nb = realloc(rs->body, rs->len + len + 1);
	if (!nb)
		return 0;
	rs->body = nb;
	memcpy(rs->body + rs->len, p, len);
	rs->len += len;
	rs->body[rs->len] = '\0';
	return len;
}

static void header_value(const char *p, size_t len, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	if (len <= nl || strncasecmp(p, name, nl) != 0)
		return;
	p += nl;
	len -= nl;
	while (len && (*p == ' ' || *p == '\t'))
		p++, len--;
	while (len && (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' '))
		len--;
	snprintf(out, outlen, "%.*s", (int)len, p);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *rs = ud;

	header_value(p, sz * n, "content-type:", rs->ctype, sizeof rs->ctype);
	header_value(p, sz * n, "www-authenticate:", rs->www, sizeof rs->www);
	return sz * n;
}

CURL *reg_handle(struct reg *r, const char *url, struct curl_slist **hdrs, struct cj_err *err)
{
	CURL *h = curl_easy_init();

	if (!h) {
		cj_fail(err, ENOMEM, "libcurl");
		return NULL;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "ctr-jailer/" CTRJ_VERSION);
	if (r->cafile[0]) {
		curl_easy_setopt(h, CURLOPT_CAINFO, r->cafile);
		curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (r->cert[0]) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, r->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, r->key);
	}
	if (r->bearer)
		*hdrs = curl_slist_append(*hdrs, r->bearer);
	else if (r->basic && r->creds) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERPWD, r->creds);
	}
	return h;
}

int reg_curl_fail(struct reg *r, CURLcode c, struct cj_err *err)
{
	const char *host = r->ref.host;

	if (c == CURLE_PEER_FAILED_VERIFICATION || c == CURLE_SSL_CACERT_BADFILE ||
	    c == CURLE_SSL_ISSUER_ERROR)
		return cj_fail(err, 0,
		               "registry %s: its TLS certificate is not trusted (%s): give "
		               "--cert-dir DIR holding its ca.crt (or DIR/%s/ca.crt)",
		               host, curl_easy_strerror(c), host);
	if (c == CURLE_SSL_CONNECT_ERROR)
		return cj_fail(err, 0,
		               "registry %s: TLS handshake failed (%s); if it serves plain HTTP, "
		               "give --insecure-registry %s",
		               host, curl_easy_strerror(c), host);
	return cj_fail(err, 0, "registry %s: %s", host, curl_easy_strerror(c));
}

static int need_login(struct reg *r, struct cj_err *err)
{
	if (r->creds) {
		char user[256];
		snprintf(user, sizeof user, "%.*s", (int)strcspn(r->creds, ":"), r->creds);
		return cj_fail(err, 0,
		               "registry %s refused the credentials of user '%s' (from %s): check "
		               "the user name and password",
		               r->ref.host, user, r->creds_from);
	}
	return cj_fail(err, 0,
	               "registry %s requires a login: give --creds USER:PASS (or "
	               "CTR_JAILER_REGISTRY_AUTH), or run 'docker login %s'",
	               r->ref.host, r->ref.host);
}

int reg_http_fail(struct reg *r, const struct resp *rs, const char *what, struct cj_err *err)
{
	if (rs->code == 401 || rs->code == 403)
		return need_login(r, err);
	if (rs->code == 404)
		return cj_fail(err, 0, "registry %s has no %s (HTTP 404): check the name",
		               r->ref.host, what);
	return cj_fail(err, 0, "registry %s answered HTTP %ld for %s", r->ref.host, rs->code, what);
}

static int perform(struct reg *r, const char *url, const char *accept, struct resp *rs,
                   bool with_auth, struct cj_err *err)
{
	struct curl_slist *hdrs = NULL;
	char *saved = r->bearer;
	CURL *h;
	CURLcode c;

	if (!with_auth)
		r->bearer = NULL;
	h = reg_handle(r, url, &hdrs, err);
	r->bearer = saved;
	if (!h)
		return -1;
	if (accept)
		hdrs = curl_slist_append(hdrs, accept);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, rs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
	rs->ctype[0] = rs->www[0] = '\0';
	c = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (rs->too_big)
		return cj_fail(err, 0, "registry %s: the answer for %s is larger than %zu bytes",
		               r->ref.host, url, rs->max);
	return c == CURLE_OK ? 0 : reg_curl_fail(r, c, err);
}

static char *escaped(const char *s)
{
	CURL *h = curl_easy_init();
	char *e = h ? curl_easy_escape(h, s, 0) : NULL, *out = e ? strdup(e) : NULL;

	if (e)
		curl_free(e);
	if (h)
		curl_easy_cleanup(h);
	return out;
}

static int token_from(struct reg *r, const struct resp *rs, struct cj_err *err)
{
	json_object *root = json_tokener_parse(rs->body ? rs->body : ""), *t;
	int ret = 0;

	if (!root || !((json_object_object_get_ex(root, "token", &t) ||
	                json_object_object_get_ex(root, "access_token", &t)) &&
	               json_object_is_type(t, json_type_string)))
		ret = cj_fail(err, 0, "registry %s: its token service gave no token", r->ref.host);
	else if (asprintf(&r->bearer, "Authorization: Bearer %s", json_object_get_string(t)) < 0) {
		r->bearer = NULL;
		ret = cj_fail(err, ENOMEM, "token");
	}
	json_object_put(root);
	return ret;
}

/* The Bearer flow: ask the realm for a pull token of this repository. */
static int fetch_token(struct reg *r, const struct cj_reg_challenge *c, struct cj_err *err)
{
	char scope[600];
	cj_autofree char *esvc = NULL, *escope = NULL, *url = NULL;
	struct resp rs = {.max = TOKEN_MAX};
	bool basic = r->basic;
	int ret;

	/* the credentials go there: never in clear from a TLS registry */
	if (strncmp(c->realm, "https://", 8) != 0 &&
	    !(strncmp(c->realm, "http://", 7) == 0 && strncmp(r->base, "http://", 7) == 0))
		return cj_fail(err, 0,
		               "registry %s: its token service %.200s is not an https:// address: "
		               "refused",
		               r->ref.host, c->realm);
	snprintf(scope, sizeof scope, "repository:%s:pull", r->ref.path);
	esvc = escaped(c->service);
	escope = escaped(c->scope[0] ? c->scope : scope);
	if (!esvc || !escope ||
	    asprintf(&url, "%s%sservice=%s&scope=%s", c->realm, strchr(c->realm, '?') ? "&" : "?",
	             esvc, escope) < 0)
		return cj_fail(err, ENOMEM, "token");
	r->basic = r->creds != NULL;
	ret = perform(r, url, NULL, &rs, false, err);
	r->basic = basic;
	if (ret == 0 && rs.code != 200)
		ret = rs.code == 401 || rs.code == 403 ? need_login(r, err)
		                                       : reg_http_fail(r, &rs, "a token", err);
	if (ret == 0)
		ret = token_from(r, &rs, err);
	free(rs.body);
	return ret;
}

static int authenticate(struct reg *r, const char *www, struct cj_err *err)
{
	struct cj_reg_challenge c;

	if (cj_reg_challenge_parse(www, &c, err) < 0)
		return cj_err_wrap(err, "registry %s", r->ref.host);
	if (c.bearer)
		return fetch_token(r, &c, err);
	if (!r->creds)
		return need_login(r, err);
	r->basic = true;
	return 0;
}

static void resp_reset(struct resp *out, size_t max)
{
	free(out->body);
	memset(out, 0, sizeof *out);
	out->max = max;
}

/* out->body is the caller's on success, freed on failure. */
int reg_get(struct reg *r, const char *url, const char *accept, size_t max, struct resp *out,
            struct cj_err *err)
{
	memset(out, 0, sizeof *out);
	out->max = max;
	if (perform(r, url, accept, out, true, err) < 0)
		goto fail;
	if (out->code != 401 || !out->www[0] || r->bearer || r->basic)
		return 0;
	if (authenticate(r, out->www, err) < 0)
		goto fail;
	resp_reset(out, max);
	if (perform(r, url, accept, out, true, err) == 0)
		return 0;
fail:
	resp_reset(out, max);
	return -1;
}
