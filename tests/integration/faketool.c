/* SPDX-License-Identifier: Apache-2.0 */
/* A misbehaving e2fsck / resize2fs, as a parser bug in e2fsprogs would
 * make the real one: put first in the runtime's PATH, it tries to reach
 * the host and reports what it got. The report goes where the test reads
 * it without trusting the jail: into the unused boot block of the image it
 * was given (offset 0 for e2fsck, 512 for resize2fs; ext4's superblock is
 * at 1024), the one thing a tool must be able to write. It also tries to
 * leave a marker file at a host path; the test checks the host for it.
 * Built per test with -DHOST_DIR="..." (a directory of the test) and
 * -DPORT=N (a TCP listener on the host's loopback). Exits 0, so the run
 * goes on. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

/* capget(2)'s ABI (musl ships no linux/capability.h) */
struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t effective, permitted, inheritable;
};
#define CAP_VERSION_3 0x20080522

/* "ok", or the errno of the attempt (r = -errno) */
static const char *result(int r, char *buf, size_t len)
{
	if (r >= 0)
		return "ok";
	snprintf(buf, len, "errno%d", -r);
	return buf;
}

static int try_open(const char *path, int flags)
{
	int fd = open(path, flags, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int try_connect(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), r;

	if (fd < 0)
		return -errno;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	struct cap_header hdr = {CAP_VERSION_3, 0};
	struct cap_data caps[2] = {{0}};
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *image = argv[argc - 1];
	char marker[4096], report[512], b1[32], b2[32], b3[32], b4[32], b5[32];
	int bounding = 0, nenv = 0, secret = 0, r_marker, r_host, r_dir, r_net, fd;
	struct stat st;

	syscall(SYS_capget, &hdr, caps);
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			bounding++;
	for (char **e = environ; *e; e++) {
		nenv++;
		if (strncmp(*e, "CTRJ_TEST_SECRET=", 17) == 0)
			secret = 1;
	}
	snprintf(marker, sizeof marker, "%s/marker-%s", HOST_DIR, name);
	r_marker = try_open(marker, O_WRONLY | O_CREAT | O_TRUNC);
	r_host = try_open("/etc/hostname", O_RDONLY);
	r_dir = stat(HOST_DIR, &st) < 0 ? -errno : 0;
	r_net = try_connect();
	/* the room's root: read-only, and no device, setuid or program of its
	 * own (the image's device node is a mount apart) */
	struct statvfs root;
	unsigned long rootflags = 0;
	if (statvfs("/", &root) == 0)
		rootflags = root.f_flag & (ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC);
	fd = open(image, O_RDWR);
	int r_image = fd < 0 ? -errno : 0;
	snprintf(report, sizeof report,
	         "FAKE tool=%s uid=%u gid=%u pid=%d capeff=%08x%08x bounding=%d nnp=%d env=%d "
	         "secret=%d marker=%s hostfile=%s hostdir=%s loopback=%s image=%s rootlocked=%d "
	         "END",
	         name, (unsigned)getuid(), (unsigned)getgid(), (int)getpid(), caps[1].effective,
	         caps[0].effective, bounding, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), nenv, secret,
	         result(r_marker, b1, sizeof b1), result(r_host, b2, sizeof b2),
	         result(r_dir, b3, sizeof b3), result(r_net, b4, sizeof b4),
	         result(r_image, b5, sizeof b5),
	         rootflags == (ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC));
	if (fd >= 0) {
		char block[512] = {0};
		memcpy(block, report, strlen(report));
		if (pwrite(fd, block, sizeof block, strcmp(name, "resize2fs") == 0 ? 512 : 0) < 0)
			perror("pwrite");
		close(fd);
	}
	if (r_marker >= 0) {
		int m = open(marker, O_WRONLY | O_TRUNC);
		if (m >= 0) {
			if (write(m, report, strlen(report)) < 0)
				perror("write");
			close(m);
		}
	}
	puts(report);
	return 0;
}
