/* SPDX-License-Identifier: Apache-2.0 */
/* Host tools (e2fsck, resize2fs) run on filesystems a guest wrote, in the
 * same kind of jail as the VMM: a parser bug in the tool must not become
 * host root. */
#ifndef CJ_TOOL_H
#define CJ_TOOL_H

#include "util/err.h"

#include <sys/types.h>

/* Where the image appears inside the tool's room: pass it as the tool's
 * device argument. */
#define CJ_TOOL_IMAGE "/image"

struct cj_tool {
	/* argv[0] is looked up in $PATH; the image is named CJ_TOOL_IMAGE */
	char *const *argv;
	/* an image file or block device opened by the caller: the tool may
	 * read and write it, and nothing else of the host */
	int image_fd;
	/* where ldd's answers are cached (tmpfs); NULL: ask ldd every time */
	const char *cache_dir;
	/* who the tool runs as: the run's own uid/gid (the one its VMM gets,
	 * cj_jail_assign_ids), never a user shared with other runs, whose
	 * processes could ptrace a tool holding a volume open read-write.
	 * Not 0. */
	uid_t uid;
	gid_t gid;
};

/*
 * Run the tool jailed: own mount, pid, ipc, uts and network namespaces; a
 * room holding only the tool, its libraries, /dev/null and the image;
 * tool->uid and gid (the image file's owner where its filesystem has no
 * idmapped mounts); no capabilities, no_new_privs, rlimits; a minimal
 * environment; stdin /dev/null. Like cj_run_code: returns 0 once
 * the tool ran, its exit code (128+N for signal N) in *code and, when
 * non-zero, its first stderr line (non-printable bytes replaced) in err;
 * stdout in *out when out != NULL (at most 64 KiB kept). Returns -1 when
 * the tool could not be started or jailed.
 */
int cj_tool_run(const struct cj_tool *tool, char **out, int *code, struct cj_err *err);

#endif
