/* SPDX-License-Identifier: Apache-2.0 */
/* Reference parsing and normalization (see ref.h): pure, unit-tested and
 * fuzzed. */
#include "registry/ref.h"

#include "util/err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: alnum runs separated by '.', '_', "__" or '-'+. */
static bool component_valid(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	while (i < len) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < len && s[j] == '-')
			j++;
		if (j == i) { /* '.', '_' or "__" */
			if (s[i] == '.' || (s[i] == '_' && s[i + 1] != '_'))
				j = i + 1;
			else if (s[i] == '_' && i + 1 < len && s[i + 1] == '_')
				j = i + 2;
			else
				return false;
		}
		if (j >= len || !is_lower_alnum(s[j]))
			return false;
		i = j;
	}
	return true;
}

static bool path_valid(const char *p, bool *upper)
{
	const char *c = p;

	*upper = false;
	for (const char *q = p; *q; q++)
		if (isupper((unsigned char)*q))
			*upper = true;
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (!component_valid(c, len))
			return false;
		if (!slash)
			return true;
		c = slash + 1;
	}
}

static bool host_valid(const char *h)
{
	size_t len = strlen(h);

	if (len == 0 || len > 255 || h[0] == '-' || h[0] == '.' || h[0] == ':')
		return false;
	for (const char *q = h; *q; q++)
		if (!isalnum((unsigned char)*q) && !strchr(".-:[]", *q))
			return false;
	return true;
}

static bool tag_valid(const char *t)
{
	size_t len = strlen(t);

	if (len == 0 || len > CJ_REF_TAG_MAX || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i]))
			return false;
	return true;
}

static bool digest_valid(const char *d)
{
	if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
		return false;
	for (const char *q = d + 7; *q; q++)
		if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
			return false;
	return true;
}

static bool is_host_part(const char *s, size_t len)
{
	return memchr(s, '.', len) || memchr(s, ':', len) ||
	       (len == 9 && strncmp(s, "localhost", 9) == 0) || memchr(s, '[', len);
}

/* Split off "@digest" and ":tag" (a ':' after the last '/'). */
static int split_suffixes(char *buf, struct cj_reg_ref *ref, const char *s, struct cj_err *err)
{
	char *at = strchr(buf, '@'), *slash, *colon;

	if (at) {
		*at = '\0';
		if (!digest_valid(at + 1))
			return cj_fail(err, 0,
			               "image reference '%s': the digest must be sha256: and 64 "
			               "lowercase hex digits",
			               s);
		snprintf(ref->digest, sizeof ref->digest, "%s", at + 1);
	}
	slash = strrchr(buf, '/');
	colon = strrchr(slash ? slash : buf, ':');
	if (colon) {
		*colon = '\0';
		if (!tag_valid(colon + 1))
			return cj_fail(err, 0, "image reference '%s': '%s' is not a valid tag", s,
			               colon + 1);
		snprintf(ref->tag, sizeof ref->tag, "%s", colon + 1);
	}
	ref->explicit_tag = at || colon;
	return 0;
}

static int split_host(const char *name, struct cj_reg_ref *ref, const char *s, struct cj_err *err)
{
	const char *slash = strchr(name, '/');
	const char *path = name;

	if (slash && is_host_part(name, (size_t)(slash - name))) {
		size_t hl = (size_t)(slash - name);
		if (hl >= sizeof ref->host)
			return cj_fail(err, 0, "image reference '%s': registry host too long", s);
		memcpy(ref->host, name, hl);
		ref->host[hl] = '\0';
		if (!host_valid(ref->host))
			return cj_fail(err, 0, "image reference '%s': '%s' is not a valid registry",
			               s, ref->host);
		ref->explicit_host = true;
		path = slash + 1;
	} else {
		snprintf(ref->host, sizeof ref->host, "docker.io");
	}
	if (strcmp(ref->host, "index.docker.io") == 0)
		snprintf(ref->host, sizeof ref->host, "docker.io");
	if (strcmp(ref->host, "docker.io") == 0 && !strchr(path, '/')) {
		if (snprintf(ref->path, sizeof ref->path, "library/%s", path) >=
		    (int)sizeof ref->path)
			return cj_fail(err, 0, "image reference '%s': name too long", s);
	} else if (snprintf(ref->path, sizeof ref->path, "%s", path) >= (int)sizeof ref->path) {
		return cj_fail(err, 0, "image reference '%s': name too long", s);
	}
	return 0;
}

int cj_reg_ref_parse(const char *s, struct cj_reg_ref *ref, struct cj_err *err)
{
	char buf[512];
	bool upper;

	memset(ref, 0, sizeof *ref);
	if (!s[0] || strlen(s) >= sizeof buf)
		return cj_fail(err, 0, "image reference '%.64s' is %s", s,
		               s[0] ? "too long" : "empty");
	snprintf(buf, sizeof buf, "%s", s);
	if (split_suffixes(buf, ref, s, err) < 0 || split_host(buf, ref, s, err) < 0)
		return -1;
	if (!path_valid(ref->path, &upper))
		return cj_fail(
		    err, 0,
		    upper ? "image reference '%s': the repository name must be lowercase"
		          : "image reference '%s' is not a valid name ([registry/]name[:tag]"
		            "[@digest])",
		    s);
	if (strlen(ref->host) + 1 + strlen(ref->path) > CJ_REF_NAME_MAX)
		return cj_fail(err, 0, "image reference '%s': name longer than %d characters", s,
		               CJ_REF_NAME_MAX);
	if (!ref->tag[0] && !ref->digest[0])
		snprintf(ref->tag, sizeof ref->tag, "latest");
	return 0;
}

void cj_reg_ref_repo(const struct cj_reg_ref *ref, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", ref->host, ref->path);
}

void cj_reg_ref_str(const struct cj_reg_ref *ref, char *out, size_t len)
{
	snprintf(out, len, "%s/%s%s%s%s%s", ref->host, ref->path, ref->tag[0] ? ":" : "", ref->tag,
	         ref->digest[0] ? "@" : "", ref->digest);
}

const char *cj_reg_ref_endpoint(const struct cj_reg_ref *ref)
{
	return strcmp(ref->host, "docker.io") == 0 ? "registry-1.docker.io" : ref->host;
}

bool cj_reg_ref_is_explicit(const char *s)
{
	struct cj_reg_ref ref;
	struct cj_err err = {0};

	return cj_reg_ref_parse(s, &ref, &err) == 0 && (ref.explicit_host || ref.explicit_tag);
}
