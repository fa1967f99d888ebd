/* SPDX-License-Identifier: Apache-2.0 */
/* The jail plan's second executor: for a VMM whose own jailer (Firecracker's)
 * does the chroot, the namespaces and the uid drop, ctr-jailer lays out
 * the chroot. Files are placed so the plan's uid can use them and nothing
 * more (layout.c's top comment); every change outside the chroot goes to
 * the run record's undo log first ("jail.owner"). */
#ifndef CJ_LAYOUT_H
#define CJ_LAYOUT_H

#include "util/err.h"
#include "util/undo.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct cj_layout_copy {
	int fd;              /* our duplicate of the drive's fd */
	char path[PATH_MAX]; /* its copy inside the chroot */
	bool writable;
};

struct cj_layout {
	char root[PATH_MAX]; /* the chroot */
	uid_t uid;           /* the plan's */
	gid_t gid;
	struct cj_undo *undo;
	struct cj_layout_copy copies[4];
	size_t ncopies;
};

/* Make host file `host` (regular file or block device) visible in the
 * chroot as `rel`, read-only or writable. */
int cj_layout_place_file(struct cj_layout *l, const char *host, const char *rel, bool ro,
                         struct cj_err *err);
/* A drive that is one of our fds (the control disk's memfd): copied into
 * the chroot (rel, on the jail's tmpfs), read back by cj_layout_collect. */
int cj_layout_place_fd(struct cj_layout *l, int fd, const char *rel, bool writable,
                       struct cj_err *err);
/* Once the VMM has exited: what the guest wrote to the writable copies,
 * back into their fds. */
int cj_layout_collect(struct cj_layout *l, struct cj_err *err);
void cj_layout_close(struct cj_layout *l);

#endif
