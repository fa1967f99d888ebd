/* SPDX-License-Identifier: Apache-2.0 */
/* Idmapped mounts: a view of a host file in which its owner appears as a
 * jail's uid, so that the jailed process opens it by path with no
 * privilege, while the host file keeps its owner and mode. */
#ifndef CJ_IDMAP_H
#define CJ_IDMAP_H

#include "util/err.h"

#include <stdint.h>
#include <sys/stat.h>

/*
 * A detached mount (an fd for move_mount) of the file open as fd (O_PATH
 * will do) whose owner and group (st, from fstat of fd) appear as uid and
 * gid, with the mount attributes attrs (MOUNT_ATTR_RDONLY, ...). Fails
 * with errnum EINVAL where the file's filesystem has no idmapped mounts
 * (overlayfs, NFS, tmpfs before Linux 6.3).
 */
/* A user namespace (an fd) mapping exactly the file's owner and group (st)
 * to uid and gid: the idmapping to give mount_setattr(MOUNT_ATTR_IDMAP).
 * Also made by a runtime started under chroot. */
int cj_idmap_userns(const struct stat *st, uid_t uid, gid_t gid, struct cj_err *err);

int cj_idmap_tree(int fd, const struct stat *st, uid_t uid, gid_t gid, uint64_t attrs,
                  struct cj_err *err);

#endif
