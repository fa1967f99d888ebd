/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hostile VMM for tests (`ctr-jailer run --qemu fake_vmm`): what can a
 * compromised QEMU do with what ctr-jailer handed it? It tries, and reports
 * one "FAKE-VMM <check> <result>" line per attempt on stdout (the guest
 * console), then exits 0 (a VM that ended without a status):
 *  - tiocsti fdN / tiocsti tty: push a command into the input of the
 *    terminal behind fd 0-2 or /dev/tty (TIOCSTI), as if typed;
 *  - room-create: create a name in its root directory (the jail's room),
 *    where root might later follow it (jailed only: not as root);
 *  - env NAME: each variable of its environment;
 *  - session-leader: whether it leads its own session.
 * It also writes a line with a terminal escape (clear screen) to stderr,
 * which ctr-jailer must relay defused. It is linked dynamically: the jail
 * binds in what ldd lists.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

static const char *result(int r)
{
	static char buf[64];

	if (r == 0)
		return "ok";
	const char *name = strerrorname_np(errno);
	snprintf(buf, sizeof buf, "%s", name ? name : "?");
	return buf;
}

static int push(int fd, const char *text)
{
	for (const char *c = text; *c; c++)
		if (ioctl(fd, TIOCSTI, c) < 0)
			return -1;
	return 0;
}

int main(void)
{
	char text[64];

	for (int fd = 0; fd < 3; fd++) {
		snprintf(text, sizeof text, "CJ-INJECTED-fd%d\n", fd);
		int r = push(fd, text);
		printf("FAKE-VMM tiocsti fd%d %s\n", fd, result(r));
	}
	int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty < 0) {
		printf("FAKE-VMM tiocsti tty %s\n", result(-1));
	} else {
		int r = push(tty, "CJ-INJECTED-tty\n");
		printf("FAKE-VMM tiocsti tty %s\n", result(r));
	}
	/* (root, with --no-jail, writes anywhere: no point, and no probe in
	 * the host's own root) */
	if (getuid() != 0) {
		int fd = open("/cj-room-probe", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		printf("FAKE-VMM room-create %s\n", result(fd < 0 ? -1 : 0));
		if (fd >= 0) {
			close(fd);
			unlink("/cj-room-probe");
		}
	}
	for (char **e = environ; *e; e++)
		printf("FAKE-VMM env %.*s\n", (int)strcspn(*e, "="), *e);
	printf("FAKE-VMM session-leader %s\n", getsid(0) == getpid() ? "yes" : "no");
	fprintf(stderr, "FAKE-VMM-STDERR \033[2J\n");
	printf("FAKE-VMM done\n");
	fflush(stdout);
	return 0;
}
