/* SPDX-License-Identifier: Apache-2.0 */
/* Test workload: a static binary that reports what it observed inside the
 * VM, one "key value" line each, binary values hex-encoded, between
 * PROBE-BEGIN and PROBE-END markers. It needs no shell, so the same binary
 * is the whole rootfs of the distroless test. */
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <sys/io.h>
#endif

extern char **environ;

static void hex(const char *key, const unsigned char *p, size_t n)
{
	printf("%s ", key);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

int main(int argc, char **argv)
{
	char buf[65536], cwd[4096];
	gid_t groups[64];
	struct stat st;
	int n, fd;

	/* "--port-exit PORT VALUE": a hostile guest ending the VM through the
	 * init's fast-exit port before any status was written */
	if (argc > 3 && strcmp(argv[1], "--port-exit") == 0) {
#if defined(__x86_64__)
		if (ioperm((unsigned long)strtoul(argv[2], NULL, 0), 1, 1) == 0)
			outb((unsigned char)strtoul(argv[3], NULL, 0),
			     (unsigned short)strtoul(argv[2], NULL, 0));
#endif
		perror("port-exit");
		return 2;
	}

	printf("PROBE-BEGIN\n");
	for (int i = 0; i < argc; i++)
		hex("argv", (const unsigned char *)argv[i], strlen(argv[i]));
	for (char **e = environ; *e; e++)
		hex("env", (const unsigned char *)*e, strlen(*e));
	printf("uid %u\ngid %u\n", (unsigned)getuid(), (unsigned)getgid());
	n = getgroups(64, groups);
	for (int i = 0; i < n; i++)
		printf("group %u\n", (unsigned)groups[i]);
	if (getcwd(cwd, sizeof cwd))
		printf("cwd %s\n", cwd);
	printf("pid %d\n", (int)getpid());
	fd = open("/var/environment", O_RDONLY);
	if (fd >= 0 && fstat(fd, &st) == 0) {
		ssize_t r = read(fd, buf, sizeof buf);
		printf("envfile_mode %o\n", (unsigned)(st.st_mode & 07777));
		hex("envfile", (const unsigned char *)buf, r > 0 ? (size_t)r : 0);
		close(fd);
	}
	/* "--cap PATH": the file's security.capability ("cap PATH -" if none) */
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--cap") != 0)
			continue;
		ssize_t r = getxattr(argv[i + 1], "security.capability", buf, sizeof buf);
		printf("cap %s ", argv[i + 1]);
		for (ssize_t j = 0; j < r; j++)
			printf("%02x", (unsigned char)buf[j]);
		printf("%s\n", r > 0 ? "" : "-");
	}
	printf("PROBE-END\n");
	return argc > 1 && strcmp(argv[1], "--exit") == 0 && argc > 2 ? atoi(argv[2]) : 0;
}
