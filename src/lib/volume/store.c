/* SPDX-License-Identifier: Apache-2.0 */
#include "store.h"

#include "util/util.h"
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUFFIX ".ext4"

/* NAME.ext4 with a volume name (volume.c's rule) before the suffix. */
static bool volume_file(const char *file, char *name, size_t len)
{
	size_t n = strlen(file), m = strlen(SUFFIX);

	if (n <= m || n - m >= len || strcmp(file + n - m, SUFFIX) != 0 || file[0] == '.')
		return false;
	memcpy(name, file, n - m);
	name[n - m] = '\0';
	return cj_volume_name_valid(name);
}

/* In use: a run holds its lock (shared or exclusive). */
static int stat_volume(const char *dir, const char *name, struct cj_volume_info *v,
                       struct cj_err *err)
{
	struct stat st;
	cj_autoclose int fd = -1;

	memset(v, 0, sizeof *v);
	snprintf(v->name, sizeof v->name, "%s", name);
	snprintf(v->path, sizeof v->path, "%s/%s" SUFFIX, dir, name);
	fd = open(v->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0)
		return cj_fail(err, errno == ENOENT ? 0 : errno,
		               errno == ENOENT ? "no such volume: %s" : "volume %s", name);
	if (!S_ISREG(st.st_mode))
		return cj_fail(err, 0, "volume %s is not an image file", name);
	v->size = (uint64_t)st.st_size;
	v->used = (uint64_t)st.st_blocks * 512;
	v->created = st.st_mtime < st.st_ctime ? st.st_mtime : st.st_ctime;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		flock(fd, LOCK_UN);
	else
		v->in_use = errno == EWOULDBLOCK;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct cj_volume_info *)a)->name,
	              ((const struct cj_volume_info *)b)->name);
}

int cj_volume_store_list(const char *dir, struct cj_volume_info **out, size_t *n,
                         struct cj_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;
	char name[256];

	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : cj_fail(err, errno, "volumes directory %s", dir);
	while ((de = readdir(d))) {
		struct cj_err ignored = {0};
		if (!volume_file(de->d_name, name, sizeof name))
			continue;
		if (*n == cap) {
			struct cj_volume_info *g =
			    realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *g);
			if (!g) {
				closedir(d);
				return cj_fail(err, ENOMEM, "volumes");
			}
			*out = g;
		}
		if (stat_volume(dir, name, &(*out)[*n], &ignored) == 0)
			(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof **out, by_name);
	return 0;
}

int cj_volume_store_get(const char *dir, const char *name, struct cj_volume_info *out,
                        struct cj_err *err)
{
	if (!cj_volume_name_valid(name))
		return cj_fail(err, 0, "'%s' is not a volume name", name);
	return stat_volume(dir, name, out, err);
}

int cj_volume_store_remove(const char *dir, const char *name, struct cj_err *err)
{
	char path[4352];
	cj_autoclose int fd = -1;

	if (!cj_volume_name_valid(name))
		return cj_fail(err, 0, "'%s' is not a volume name", name);
	snprintf(path, sizeof path, "%s/%s" SUFFIX, dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return cj_fail(err, errno == ENOENT ? 0 : errno,
		               errno == ENOENT ? "no such volume: %s" : "volume %s", name);
	/* held while unlinking: a run attaching it meanwhile is refused (its
	 * lock fails); only one that opened it just before, and locks it just
	 * after, gets the removed file (and a new volume next time) */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return cj_fail(err, errno == EWOULDBLOCK ? 0 : errno,
		               errno == EWOULDBLOCK
		                   ? "volume %s is in use by a running VM: stop it first"
		                   : "lock volume %s",
		               name);
	if (unlink(path) < 0)
		return cj_fail(err, errno, "remove volume %s", name);
	return 0;
}

json_object *cj_volume_info_json(const struct cj_volume_info *v)
{
	json_object *o = json_object_new_object();
	char when[64];
	struct tm tm;

	gmtime_r(&v->created, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "Name", json_object_new_string(v->name));
	json_object_object_add(o, "Driver", json_object_new_string("ext4-image"));
	json_object_object_add(o, "Mountpoint", json_object_new_string(v->path));
	json_object_object_add(o, "CreatedAt", json_object_new_string(when));
	json_object_object_add(o, "Size", json_object_new_int64((int64_t)v->size));
	json_object_object_add(o, "UsedBytes", json_object_new_int64((int64_t)v->used));
	json_object_object_add(o, "InUse", json_object_new_boolean(v->in_use));
	return o;
}
