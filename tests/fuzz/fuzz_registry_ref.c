/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the registry reference parser and the WWW-Authenticate parser
 * (registry/ref.c, registry/auth.c): the first byte picks the parser.
 * A reference that parses normalizes to a fixed point (its full name
 * parses to itself), and a Bearer challenge that parses has a realm. */
#include "fuzz.h"

#include "registry/auth.h"
#include "registry/ref.h"

#include <string.h>

unsigned long fuzz_accepted;

static void check_ref(const char *s)
{
	struct cj_reg_ref ref, again;
	struct cj_err err = {0};
	char full[600], full2[600];

	if (cj_reg_ref_parse(s, &ref, &err) < 0) {
		FUZZ_CHECK(err.msg[0]);
		return;
	}
	fuzz_accepted++;
	FUZZ_CHECK(ref.host[0] && ref.path[0] && (ref.tag[0] || ref.digest[0]));
	cj_reg_ref_str(&ref, full, sizeof full);
	FUZZ_CHECK(cj_reg_ref_parse(full, &again, &err) == 0);
	cj_reg_ref_str(&again, full2, sizeof full2);
	FUZZ_CHECK(strcmp(full, full2) == 0);
	FUZZ_CHECK(again.explicit_host);
}

static void check_challenge(const char *s)
{
	struct cj_reg_challenge c;
	struct cj_err err = {0};

	if (cj_reg_challenge_parse(s, &c, &err) < 0)
		return;
	fuzz_accepted++;
	FUZZ_CHECK(!c.bearer || c.realm[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[1024];

	if (size < 1 || size > sizeof buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	if (data[0] & 1)
		check_challenge(buf);
	else
		check_ref(buf);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const char *const seeds[] = {
	    "\0busybox",
	    "\0localhost:5000/a/b:t@sha256:"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "\0index.docker.io/user/app__x-y.z:1.0",
	    "\0[::1]:5000/app",
	    "\1Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\"",
	    "\1Basic realm=\"x\\\"y\"",
	};
	for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++)
		emit((const uint8_t *)seeds[i], strlen(seeds[i] + 1) + 1, ctx);
}
