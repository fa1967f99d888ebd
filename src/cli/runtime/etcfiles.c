/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's /etc/hosts, /etc/hostname and /etc/resolv.conf: bind
 * mounts of single files, which virtiofs cannot share. Their directory
 * (the engine's own for this container) is shared read-only at a hidden
 * guest path, serving those files alone (rt_etc_shares: virtiofsd covers
 * the directory with binds of just them, so a guest mounting the share
 * again sees nothing else), the files are bound over the guest's, and the
 * share is detached (guest boot_bind_files): the workload sees the
 * engine's files, rewrites in place included. Only these three. */
#include "runtime.h"

#include "ctrj/protocol.h"
#include "spec/spec.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILES_GUEST "/run/ctrj-files" /* share N at FILES_GUEST/N */

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

bool rt_etc_file(const char *dest, const char *src)
{
	static const char *const files[] = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"};
	struct stat st;

	if (!dest || !src || src[0] != '/' || strchr(src, ':') || strlen(src) >= PATH_MAX ||
	    strlen(strrchr(src, '/')) > 256 || stat(src, &st) < 0 || !S_ISREG(st.st_mode))
		return false; /* (a ':' would cut the --volume argument) */
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		if (strcmp(dest, files[i]) == 0)
			return true;
	return false;
}

/* The directory of src into dirs (once); its index. */
static size_t dir_index(struct rt_etc_files *f, const char *src)
{
	const char *slash = strrchr(src, '/');
	size_t len = slash > src ? (size_t)(slash - src) : 1, i;

	for (i = 0; i < f->ndirs; i++)
		if (strlen(f->dirs[i]) == len && strncmp(f->dirs[i], src, len) == 0)
			return i;
	snprintf(f->dirs[i], sizeof f->dirs[i], "%.*s", (int)len, src);
	snprintf(f->guest_dirs[i], sizeof f->guest_dirs[i], FILES_GUEST "/%zu", i);
	f->ndirs++;
	return i;
}

void rt_etc_files(json_object *cfg, struct rt_etc_files *f)
{
	json_object *mounts = member(cfg, "mounts");

	memset(f, 0, sizeof *f);
	for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		const char *dest = json_object_get_string(member(m, "destination"));
		const char *src = json_object_get_string(member(m, "source"));
		if (f->nbinds == RT_ETC_FILES || !rt_etc_file(dest, src))
			continue;
		size_t d = dir_index(f, src);
		f->dir_of[f->nbinds] = d;
		snprintf(f->src[f->nbinds], sizeof f->src[0], "%s/%s", f->guest_dirs[d],
		         strrchr(src, '/') + 1);
		snprintf(f->dst[f->nbinds], sizeof f->dst[0], "%s", dest);
		f->nbinds++;
	}
}

int rt_etc_shares(const struct rt_etc_files *f, struct cj_spec *spec, struct cj_err *err)
{
	for (size_t d = 0; d < f->ndirs; d++) {
		struct cj_share_spec *sh = NULL;
		size_t n = 0;
		for (size_t k = 0; k < spec->nshares && !sh; k++)
			if (strcmp(spec->shares[k].guest_path, f->guest_dirs[d]) == 0)
				sh = &spec->shares[k];
		if (!sh)
			return cj_fail(err, 0, "internal: no share of %s", f->dirs[d]);
		for (size_t i = 0; i < f->nbinds; i++) {
			const char *name = strrchr(f->src[i], '/') + 1;
			bool seen = false;
			for (size_t k = 0; k < n; k++)
				seen |= strcmp(sh->files[k], name) == 0;
			if (f->dir_of[i] != d || n == CJ_SHARE_FILES || seen)
				continue; /* (a file bound twice is served once) */
			if (!(sh->files[n++] = strdup(name)))
				return cj_fail(err, ENOMEM, "config.json");
		}
	}
	return 0;
}
