/* SPDX-License-Identifier: Apache-2.0 */
/* Host directories shared with the guest over virtiofs (QEMU only), and
 * the guest's tmpfs mounts: -v /hostdir:/path[:ro], --mount
 * type=bind|volume|tmpfs,..., --tmpfs /path[:opts].
 *
 * Each host directory gets a virtiofsd of its own (QEMU's, from Debian's
 * qemu-system-common), started before the VMM with its socket in the
 * root-only run directory: it runs as root (the guest sees the host's
 * owners and modes, and creates files as the guest's uid, as docker's
 * bind mounts do) inside its own sandbox (mount, pid and network
 * namespaces with pivot_root into the shared directory, a seccomp filter,
 * a reduced capability set), in an ipc and uts namespace of its own, with
 * no xattrs, no locks and the VMM's empty environment. */
#ifndef CJ_SHARE_H
#define CJ_SHARE_H

#include "jail/jail.h"
#include "util/err.h"
#include "util/undo.h"
#include "volume/volume.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CJ_MAX_SHARES    16
#define CJ_VIRTIOFSD     "/usr/lib/qemu/virtiofsd"
#define CJ_SHARE_TAG_MAX 36
#define CJ_SHARE_FILES   4

struct cj_share_spec {
	char *source;     /* absolute host directory */
	char *guest_path; /* absolute */
	bool read_only;
	bool create; /* -v: a missing directory is created (not --mount) */
	/* Names in source (NULL-ended, allocated) that alone are served,
	 * read-only, the files they name when links; files[0] NULL: all of
	 * source. virtiofsd's mount namespace covers source with a tmpfs
	 * holding binds of just those files: a guest that mounts the share
	 * again sees nothing else of the directory. */
	char *files[CJ_SHARE_FILES + 1];
};

struct cj_tmpfs_spec {
	char *path;
	uint64_t size;  /* 0: the guest kernel's default (half its memory) */
	uint32_t mode;  /* 0: 01777 */
	uint32_t flags; /* CTRJ_MOUNT_* */
};

/* What a --mount argument turned out to be; exactly one part is filled. */
struct cj_mount_arg {
	enum { CJ_MOUNT_BIND, CJ_MOUNT_VOLUME, CJ_MOUNT_TMPFS } type;
	struct cj_share_spec share;
	struct cj_volume_spec volume;
	struct cj_tmpfs_spec tmpfs;
};

/* Is this -v spec a host directory? Its source is an absolute path that
 * is a directory, or that does not exist and neither names an image file
 * (.ext4, .img, .raw) nor asks for a size: docker creates a directory
 * there. Fills out (taking source and guest_path from v) when it is. */
bool cj_share_from_volume(struct cj_volume_spec *v, struct cj_share_spec *out);
/* docker's --mount: type=bind|volume|tmpfs, source|src, target|destination|
 * dst, readonly|ro[=true|false], tmpfs-size, tmpfs-mode. */
int cj_mount_arg_parse(const char *arg, struct cj_mount_arg *out, struct cj_err *err);
/* --tmpfs /path[:size=N,mode=OCTAL,ro,noexec,exec,nosuid,suid,nodev,dev]
 * (default noexec,nosuid,nodev as docker's). */
int cj_tmpfs_arg_parse(const char *arg, struct cj_tmpfs_spec *out, struct cj_err *err);
void cj_share_spec_free(struct cj_share_spec *s);
void cj_tmpfs_spec_free(struct cj_tmpfs_spec *t);

/* The host directory, made when -v asked for it (mode 0755, as docker
 * does) and checked to be one. */
int cj_share_prepare_source(const struct cj_share_spec *s, struct cj_err *err);

/* One running virtiofsd. */
struct cj_virtiofsd {
	pid_t pid;
	int fd; /* our connection to its socket: QEMU's vhost-user chardev */
	char tag[CJ_SHARE_TAG_MAX + 1];
	char sock[PATH_MAX];
	char log[PATH_MAX];
	struct cj_helper_cgroup cg; /* its own, with a pids limit, or the engine's */
};

/* Start share n's virtiofsd (bin: its path) for run id: the socket and
 * the log in run_dir, recorded in undo ("share.virtiofsd") first, in a
 * cgroup of its own ("ctrj-<id>-vfs<n>"); connected once it listens (the
 * socket file is removed then: only the connection is left), or in the
 * engine's cgroup the VMM joins (engine_cgroup: cj_helper_cgroup_make's
 * engine_path) when there is one. push_undo
 * false on a restart of the same run (the entry is there). */
int cj_virtiofsd_start(const struct cj_share_spec *s, unsigned n, const char *bin, const char *id,
                       const char *run_dir, const char *engine_cgroup, struct cj_undo *undo,
                       bool push_undo, struct cj_virtiofsd *out, struct cj_err *err);
/* Given a moment to end by itself (its VMM gone), then killed with its
 * cgroup; reaped; fd closed; files and cgroup removed. */
void cj_virtiofsd_stop(struct cj_virtiofsd *v);
/* Undo "share.virtiofsd" {"socket"}: every root process running
 * virtiofsd with that --socket-path is killed and waited for, and the
 * socket removed; -1 while one is left. */
int cj_share_undo(json_object *entry, bool verbose);

#endif
