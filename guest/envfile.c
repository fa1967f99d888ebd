/* SPDX-License-Identifier: Apache-2.0 */
/* /var/environment: the seed's contract is "source it from a shell". Values
 * are single-quoted so that every byte but NUL survives `. /var/environment`
 * unchanged; a single quote becomes '\''. Names that a shell cannot assign
 * (e.g. "a.b") are left out of the file but still reach the workload's
 * environment. */
#include "init.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool shell_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int guest_env_write_file(int fd, char *const *envp)
{
	for (size_t i = 0; envp && envp[i]; i++) {
		const char *eq = strchr(envp[i], '=');
		if (!eq || !shell_name(envp[i], (size_t)(eq - envp[i])))
			continue;
		if (write_all(fd, "export ", 7) < 0 ||
		    write_all(fd, envp[i], (size_t)(eq - envp[i]) + 1) < 0 ||
		    write_all(fd, "'", 1) < 0)
			return -1;
		for (const char *v = eq + 1; *v;) {
			size_t run = strcspn(v, "'");
			if (write_all(fd, v, run) < 0)
				return -1;
			v += run;
			if (*v == '\'') {
				if (write_all(fd, "'\\''", 4) < 0)
					return -1;
				v++;
			}
		}
		if (write_all(fd, "'\n", 2) < 0)
			return -1;
	}
	return 0;
}
