/* SPDX-License-Identifier: Apache-2.0 */
/* linux.cgroupsPath: the cgroup the engine names for the container, which
 * the VMM joins, as a path under each cgroup hierarchy's root. Without
 * --systemd-cgroup it is that path already ("/docker/ID"; a relative one
 * is under the runtime's own cgroup). With it, "slice:prefix:name" names
 * the scope <prefix>-<name>.scope in the slice, the path systemd would
 * give it ("system.slice/docker-ID.scope"; "a-b.slice" nests in
 * "a.slice"). ctr-jailer does not ask systemd for the scope over D-Bus:
 * the directory is made in cgroupfs directly, as where no systemd runs. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* No "..", ".", or empty component (a trailing slash, or "/" alone, ends
 * in one): the path stays below the root and names a cgroup of its own,
 * not the root nor a shared parent such as "/docker/". */
static bool clean_path(const char *p)
{
	if (!*p || p[strlen(p) - 1] == '/')
		return false;
	for (const char *c = p + (*p == '/'); *c;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += n + (c[n] == '/');
	}
	return true;
}

/* "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "". */
static int slice_path(const char *slice, char *out, size_t len, struct cj_err *err)
{
	size_t n = strlen(slice), used = 0;

	out[0] = '\0';
	if (strcmp(slice, "-.slice") == 0)
		return 0;
	if (n <= 6 || strcmp(slice + n - 6, ".slice") != 0 || strchr(slice, '/') ||
	    slice[0] == '-' || strstr(slice, "--") || slice[n - 7] == '-')
		return cj_fail(err, 0, "cgroupsPath: '%s' is not a systemd slice name", slice);
	for (size_t i = 0; i <= n - 6; i++) {
		if (i < n - 6 && slice[i] != '-')
			continue;
		int w = snprintf(out + used, len - used, "/%.*s.slice", (int)i, slice);
		if (w < 0 || (size_t)w >= len - used)
			return cj_fail(err, ENAMETOOLONG, "cgroupsPath: slice %s", slice);
		used += (size_t)w;
	}
	return 0;
}

static int systemd_path(const char *v, char *out, size_t len, struct cj_err *err)
{
	char slice[256], sp[1024];
	const char *c1 = strchr(v, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	/* a unit's name has no '/': the scope is a child of its slice */
	if (!c2 || strchr(c2 + 1, ':') || (size_t)(c1 - v) >= sizeof slice || !c2[1] ||
	    strchr(c1, '/'))
		return cj_fail(err, 0,
		               "cgroupsPath '%s': with --systemd-cgroup give slice:prefix:name", v);
	snprintf(slice, sizeof slice, "%.*s", (int)(c1 - v), v);
	if (slice_path(slice[0] ? slice : "system.slice", sp, sizeof sp, err) < 0)
		return -1;
	size_t nlen = strlen(c2 + 1);
	bool is_slice = nlen > 6 && strcmp(c2 + 1 + nlen - 6, ".slice") == 0;
	int w = is_slice ? snprintf(out, len, "%s/%s", sp, c2 + 1)
	                 : snprintf(out, len, "%s/%.*s-%s.scope", sp, (int)(c2 - c1 - 1), c1 + 1,
	                            c2 + 1);
	if (w < 0 || (size_t)w >= len)
		return cj_fail(err, ENAMETOOLONG, "cgroupsPath %s", v);
	return 0;
}

int rt_cgroup_path(json_object *config, char *out, size_t len, struct cj_err *err)
{
	json_object *v = get(get(config, "linux"), "cgroupsPath");
	const char *path = v ? json_object_get_string(v) : NULL;

	out[0] = '\0';
	if (!path || !*path)
		return 0; /* none named: the run's own "ctrj-<id>" */
	if (rt_g.systemd_cgroup) {
		if (systemd_path(path, out, len, err) < 0)
			return -1;
	} else if ((size_t)snprintf(out, len, "%s", path) >= len) {
		return cj_fail(err, ENAMETOOLONG, "cgroupsPath %s", path);
	}
	if (!clean_path(out))
		return cj_fail(err, 0,
		               "cgroupsPath '%s' is not a clean cgroup path (no '..', '.' "
		               "or empty part)",
		               path);
	return 0;
}
