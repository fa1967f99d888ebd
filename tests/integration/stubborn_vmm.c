/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VMM that will not stop, for tests (`ctr-jailer run --qemu PATH`), as a
 * compromised QEMU could behave once ctr-jailer asks it to stop. What it
 * does depends on the name it is run under:
 *  - flood-vmm: answers QMP as QEMU does (greeting, then {"return": {}} to
 *    every command, Ctrl-Alt-Del included) but never stops, and writes to
 *    its console (stdout) and stderr without pause, so that ctr-jailer's
 *    supervisor always has something to read;
 *  - trickle-vmm: sends its QMP greeting one byte every half second and
 *    never ends the line, so each read of the reply gets something.
 * Both print "STUBBORN-VMM up" on the console first. ctr-jailer must still
 * kill it in bounded time. Linked dynamically: the jail binds in what ldd
 * lists.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char chunk[1 << 20];

static void *flood(void *arg)
{
	int fd = (int)(long)arg;

	for (;;)
		if (write(fd, chunk, sizeof chunk) < 0)
			usleep(1000);
	return NULL;
}

/* The fd of "-chardev socket,id=qmp,fd=N". */
static int qmp_fd(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *at = strstr(argv[i], "id=qmp,fd=");
		if (at)
			return atoi(at + strlen("id=qmp,fd="));
	}
	return -1;
}

static void say(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
		_exit(3);
}

/* One {"return": {}} per line received, forever. */
static void answer_qmp(int fd)
{
	char buf[4096];
	ssize_t n;

	say(fd, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n");
	while ((n = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				say(fd, "{\"return\": {}}\n");
	for (;;)
		pause(); /* QMP gone: still no stopping */
}

static void trickle_qmp(int fd)
{
	say(fd, "{");
	for (;;) {
		usleep(500000);
		say(fd, " ");
	}
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	int fd = qmp_fd(argc, argv);
	pthread_t t;

	if (fd < 0)
		return 2;
	printf("STUBBORN-VMM up\n");
	fflush(stdout);
	if (strcmp(name, "trickle-vmm") == 0)
		trickle_qmp(fd);
	memset(chunk, 'x', sizeof chunk);
	for (long out = 1; out <= 2; out++)
		if (pthread_create(&t, NULL, flood, (void *)out) != 0)
			return 2;
	answer_qmp(fd);
	return 0;
}
