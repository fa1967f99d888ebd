/* SPDX-License-Identifier: Apache-2.0 */
/* Persistent data drives: the seed's /jail/data/datafs.ext4 and named
 * volumes (-v SOURCE:/path[:ro][:size=N]). Each is an ext4 filesystem on an
 * image file or a host block device, checked with e2fsck before use, grown
 * (never shrunk) to its configured size, and locked so that only one VM
 * writes it at a time. */
#ifndef CJ_VOLUME_H
#define CJ_VOLUME_H

#include "util/err.h"
#include "util/undo.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CJ_DEFAULT_VOLUMES_DIR "/var/lib/ctr-jailer/volumes"
#define CJ_DEFAULT_VOLUME_SIZE (1ull << 30)
#define CJ_DEFAULT_DATAFS_SIZE (10ull << 30)
#define CJ_SEED_DATA_DIR       "/jail/data"

struct cj_volume_spec {
	char *source;     /* volume name, image file path or block device */
	char *guest_path; /* absolute; NULL: attach without mounting */
	bool read_only;
	uint64_t size; /* 0: default for a new volume, keep for an existing one */
};

struct cj_volume {
	char path[PATH_MAX]; /* image file or device */
	char name[256];      /* for messages */
	uint8_t uuid[16];
	bool read_only;
	bool created;
	int lock_fd;
	/* who e2fsck and resize2fs run as, jailed (jail/tool.h) */
	uid_t tool_uid;
	gid_t tool_gid;
};

/* The run's own uid/gid, which the jailed host tools take for its volumes
 * (cj_jail_assign_ids, or --jail-user); never root. */
struct cj_volume_tool_user {
	uid_t uid;
	gid_t gid;
};

/* bytes as "1.5G" (one decimal, B/K/M/G/T). */
void cj_volume_human(uint64_t bytes, char *out, size_t len);
/* A volume name: letters, digits, '_', '.', '-', starting with a letter
 * or digit, under 200 bytes. */
bool cj_volume_name_valid(const char *s);
/* Parse "SOURCE:/guest/path[:ro|:rw][:size=N]". */
int cj_volume_spec_parse(const char *arg, struct cj_volume_spec *out, struct cj_err *err);
void cj_volume_spec_free(struct cj_volume_spec *v);

/* Validate a spec and resolve where its drive lives, creating nothing. */
int cj_volume_resolve(const struct cj_volume_spec *spec, const char *volumes_dir,
                      struct cj_volume *out, struct cj_err *err);
/* Resolve, create, lock, check and grow a volume; on success the lock is
 * held until cj_volume_release. default_size applies to new volumes whose
 * spec has no size. e2fsck and resize2fs run jailed as tools' uid and gid.
 * A new volume is made under a temporary name recorded in undo
 * ("volume.new"), and appears under its own only once it is whole. */
int cj_volume_prepare(const struct cj_volume_spec *spec, const char *volumes_dir,
                      uint64_t default_size, const struct cj_volume_tool_user *tools,
                      struct cj_undo *undo, struct cj_volume *out, struct cj_err *err);
/* The seed's data drive: <dir>/datafs.ext4, size from DATAFS_SIZE (0 =
 * default), never larger than the free space of the filesystem holding it. */
int cj_volume_prepare_data(const char *dir, uint64_t size, const struct cj_volume_tool_user *tools,
                           struct cj_undo *undo, struct cj_volume *out, struct cj_err *err);
/* Undo a "volume.new" entry: remove the temporary file if it is left. */
int cj_volume_undo(json_object *entry, bool verbose);
void cj_volume_release(struct cj_volume *v);

#endif
