/* SPDX-License-Identifier: Apache-2.0 */
/* The named volume store (--volumes-dir, default CJ_DEFAULT_VOLUMES_DIR):
 * NAME.ext4 each. A volume is in use while a run holds its lock (every
 * run locks its volumes for its whole life, volume.h): such a volume is
 * never removed, and the lock taken to remove one keeps a run from
 * attaching it meanwhile. */
#ifndef CJ_VOLUME_STORE_H
#define CJ_VOLUME_STORE_H

#include "util/err.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct cj_volume_info {
	char name[256];
	char path[4096];
	uint64_t size; /* the filesystem image's size */
	uint64_t used; /* bytes allocated on the host */
	time_t created;
	bool in_use; /* a run holds it */
};

/* Every volume of dir, sorted by name (a missing dir holds none). */
int cj_volume_store_list(const char *dir, struct cj_volume_info **out, size_t *n,
                         struct cj_err *err);
/* One volume by name; -1 with "no such volume" when absent. */
int cj_volume_store_get(const char *dir, const char *name, struct cj_volume_info *out,
                        struct cj_err *err);
/* Remove one, refused while a run uses it. */
int cj_volume_store_remove(const char *dir, const char *name, struct cj_err *err);
/* docker's keys: Name, Driver, Mountpoint, CreatedAt, Size, UsedBytes, InUse. */
json_object *cj_volume_info_json(const struct cj_volume_info *v);

#endif
