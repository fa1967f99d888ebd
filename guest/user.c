/* SPDX-License-Identifier: Apache-2.0 */
/* Resolve a docker-style user spec ("name", "uid", "uid:gid", "name:group")
 * against the image's /etc/passwd and /etc/group. The files come from the
 * image, so every field is bounds-checked and a malformed line is skipped. */
#include "init.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool parse_id(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT32_MAX - 1) /* (uid_t)-1 is never valid */
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Split "a:b:c..." in place into at most max fields; returns the count. */
static size_t split_fields(char *line, char **fields, size_t max)
{
	size_t n = 0;

	fields[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == ':') {
			*p = '\0';
			fields[n++] = p + 1;
		}
	}
	return n;
}

static void chomp(char *line)
{
	size_t len = strlen(line);
	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
}

/* Whole lines of any length: a fixed buffer would split an over-long line
 * and let its tail pose as an entry of its own. */
static char *next_line(FILE *f, char **buf, size_t *cap)
{
	if (getline(buf, cap, f) < 0)
		return NULL;
	chomp(*buf);
	return *buf;
}

/* name or number → passwd entry. Fills uid, gid, home; returns true if found. */
static FILE *open_etc(const char *etc, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", etc, name);
	return fopen(path, "re");
}

static bool lookup_passwd(const char *etc, const char *who, struct guest_user *u)
{
	FILE *f = open_etc(etc, "passwd");
	char *line = NULL;
	size_t cap = 0;
	uint32_t want;
	bool numeric = parse_id(who, &want);
	bool found = false;

	if (!f)
		return false;
	while (!found && next_line(f, &line, &cap)) {
		char *fld[7];
		uint32_t uid, gid;

		if (split_fields(line, fld, 7) < 7 || !parse_id(fld[2], &uid) ||
		    !parse_id(fld[3], &gid))
			continue;
		if (numeric ? uid != want : strcmp(fld[0], who) != 0)
			continue;
		u->uid = uid;
		u->gid = gid;
		snprintf(u->name, sizeof u->name, "%s", fld[0]);
		snprintf(u->home, sizeof u->home, "%s", fld[5][0] == '/' ? fld[5] : "/");
		found = true;
	}
	free(line);
	fclose(f);
	return found;
}

static bool lookup_group(const char *etc, const char *grp, uint32_t *gid)
{
	FILE *f = open_etc(etc, "group");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && next_line(f, &line, &cap)) {
		char *fld[4];
		uint32_t g;

		if (split_fields(line, fld, 4) < 3 || !parse_id(fld[2], &g))
			continue;
		if (strcmp(fld[0], grp) == 0) {
			*gid = g;
			found = true;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* Supplementary groups: every group whose member list names the user. */
static void collect_groups(const char *etc, struct guest_user *u)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;

	u->ngroups = 0;
	u->groups[u->ngroups++] = u->gid;
	if (!u->name[0] || !(f = open_etc(etc, "group")))
		return;
	while (u->ngroups < GUEST_MAX_GROUPS && next_line(f, &line, &cap)) {
		char *fld[4], *save = NULL;
		uint32_t g;

		if (split_fields(line, fld, 4) < 4 || !parse_id(fld[2], &g) || g == u->gid)
			continue;
		for (char *m = strtok_r(fld[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
			if (strcmp(m, u->name) == 0) {
				u->groups[u->ngroups++] = g;
				break;
			}
		}
	}
	free(line);
	fclose(f);
}

int guest_user_resolve_at(const char *etc, const char *spec, struct guest_user *u, char *err,
                          size_t errlen)
{
	char buf[512];
	char *group;

	memset(u, 0, sizeof *u);
	snprintf(u->home, sizeof u->home, "/");
	if (!spec || !*spec)
		spec = "0";
	if (strlen(spec) >= sizeof buf) {
		snprintf(err, errlen, "user spec too long");
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", spec);
	group = strchr(buf, ':');
	if (group)
		*group++ = '\0';

	if (!lookup_passwd(etc, buf, u)) {
		if (!parse_id(buf, &u->uid)) {
			snprintf(err, errlen, "user \"%s\" not found in the image's /etc/passwd",
			         buf);
			return -1;
		}
		u->gid = 0;
	}
	if (group) {
		if (!lookup_group(etc, group, &u->gid) && !parse_id(group, &u->gid)) {
			snprintf(err, errlen, "group \"%s\" not found in the image's /etc/group",
			         group);
			return -1;
		}
	}
	collect_groups(etc, u);
	return 0;
}

int guest_user_resolve(const char *spec, struct guest_user *u, char *err, size_t errlen)
{
	return guest_user_resolve_at("/etc", spec, u, err, errlen);
}
