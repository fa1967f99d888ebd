/* SPDX-License-Identifier: Apache-2.0 */
/* The registry session of one pull (internal to registry/): endpoint,
 * TLS material, credentials and the token, and small GET requests. */
#ifndef CJ_REGISTRY_HTTP_H
#define CJ_REGISTRY_HTTP_H

#include "registry/pull.h"
#include "registry/ref.h"
#include "vmm/curl_dl.h"

#include <stddef.h>
#include <stdint.h>

struct reg {
	const struct cj_pull_opts *o;
	struct cj_reg_ref ref;
	char base[320]; /* "https://registry-1.docker.io" */
	char cafile[4200], cert[4200], key[4200];
	char *creds; /* "user:password" or NULL */
	const char *creds_from;
	char *bearer; /* "Authorization: Bearer ..." once a token was given */
	bool basic;   /* send creds as Basic */
};

struct resp {
	char *body;
	size_t len, max;
	bool too_big;
	long code;
	char ctype[128];
	char www[2048];
};

int reg_open(struct reg *r, const char *ref, const struct cj_pull_opts *o, struct cj_err *err);
void reg_close(struct reg *r);
/* A curl handle set up for url: TLS, redirects, timeouts, authentication. */
CURL *reg_handle(struct reg *r, const char *url, struct curl_slist **hdrs, struct cj_err *err);
/* GET url into resp (at most max bytes), authenticating on a 401. */
int reg_get(struct reg *r, const char *url, const char *accept, size_t max, struct resp *out,
            struct cj_err *err);
/* One line for a curl failure talking to the registry. */
int reg_curl_fail(struct reg *r, CURLcode c, struct cj_err *err);
/* One line for an HTTP status that is not a success. */
int reg_http_fail(struct reg *r, const struct resp *rs, const char *what, struct cj_err *err);

#endif
