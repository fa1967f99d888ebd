/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CTRJ_GUEST_INIT_H
#define CTRJ_GUEST_INIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_GROUPS 64

struct guest_user {
	uint32_t uid;
	uint32_t gid;
	uint32_t groups[GUEST_MAX_GROUPS];
	size_t ngroups;
	char name[256];
	char home[512];
};

/* Resolve against /etc/passwd and /etc/group of the current root. */
int guest_user_resolve(const char *spec, struct guest_user *u, char *err, size_t errlen);
/* The same against <etc>/passwd and <etc>/group (for tests). */
int guest_user_resolve_at(const char *etc, const char *spec, struct guest_user *u, char *err,
                          size_t errlen);

/* Write "export NAME='value'" lines that a POSIX shell sources back to the
 * exact bytes; returns 0 or -1 with errno set. */
int guest_env_write_file(int fd, char *const *envp);

#endif
