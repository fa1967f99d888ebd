/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Boot snapshots (ctrj.snap on the kernel command line). The init loads
 * its modules but the virtio transport (virtio_mmio): no device is probed,
 * no drive is read. It says CTRJ_SNAPSHOT_POINT on the console and waits
 * for one line on it, which the host writes only after the snapshot was
 * taken or restored:
 *   "go SEED SEC NSEC MAC\n"
 * SEED 64 hex digits of host entropy, SEC.NSEC the host's wall clock, MAC
 * 12 hex digits (or "-" without network). Every restored guest runs this
 * line's work first: the seed is credited to the kernel RNG and the CRNG
 * reseeded (every guest restored from one snapshot starts with one RNG
 * state), the clock set, and only then virtio_mmio loads and the drivers
 * probe this run's drives and TAP. Nothing before this point reads the boot id (the
 * kernel makes it on first read) or any run's data.
 */
#include "deadline.h"
#include "init.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEED_BYTES 32
/* <linux/random.h>, which the musl toolchain does not ship */
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG _IO('R', 0x07)
struct rand_pool_info {
	int entropy_count;
	int buf_size;
	uint32_t buf[];
};

static bool g_restored;
static uint64_t g_go_ns; /* CLOCK_BOOTTIME at "go" */
static uint8_t g_mac[6];
static bool g_has_mac;

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* One line from the console, whatever pieces it comes in. */
static void read_go_line(char *line, size_t len)
{
	size_t used = 0;

	while (used < len - 1) {
		ssize_t n = read(STDIN_FILENO, line + used, len - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			guest_fail(0, "snapshot: the console closed before \"go\"");
		used += (size_t)n;
		line[used] = '\0';
		if (strchr(line, '\n'))
			return;
	}
	guest_fail(0, "snapshot: \"go\" line too long");
}

/* Mixes the host's seed into the input pool, credited, and makes the CRNG
 * draw from it now rather than at its next scheduled reseed. */
static void credit_seed(const uint8_t *seed)
{
	struct {
		struct rand_pool_info info;
		uint8_t buf[SEED_BYTES];
	} req;
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		guest_fail(0, "snapshot: open /dev/urandom: %s", strerror(errno));
	req.info.entropy_count = SEED_BYTES * 8;
	req.info.buf_size = SEED_BYTES;
	memcpy(req.buf, seed, SEED_BYTES);
	if (ioctl(fd, RNDADDENTROPY, &req) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
		guest_fail(0, "snapshot: seed the RNG: %s", strerror(errno));
	explicit_bzero(&req, sizeof req);
	close(fd);
}

static uint64_t mem_free_kib(void)
{
	char line[128];
	unsigned long long kib = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "MemFree: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

#define ZERO_CHUNK      (8u << 20)
#define ZERO_KEEP_KIB   (32u << 10) /* left free, well above the watermarks */
#define ZERO_MAX_CHUNKS 64          /* 512 MiB: where the boot's freed pages are */

/* Pages the boot used and freed (the initramfs's archive, the kernel's
 * init sections) still hold their bytes, and the snapshot would carry
 * them: the kernel clears every page it faults into an anonymous mapping,
 * so taking free memory that way and giving it back leaves it zero, and
 * QEMU saves a zero page as a flag and restores it without touching it.
 * Freed pages are handed out first, so the first chunks hold them. */
static void zero_free_memory(void)
{
	void *chunk[ZERO_MAX_CHUNKS];
	size_t n = 0;

	while (n < ZERO_MAX_CHUNKS && mem_free_kib() > ZERO_KEEP_KIB + (ZERO_CHUNK >> 10)) {
		void *p = mmap(NULL, ZERO_CHUNK, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED)
			break;
		chunk[n++] = p;
	}
	while (n)
		munmap(chunk[--n], ZERO_CHUNK);
}

void resume_wait_go(void)
{
	static const char point[] = "\n" CTRJ_SNAPSHOT_POINT "\n";
	char line[256], *tok[6];
	uint8_t seed[SEED_BYTES];
	size_t n = 0;

	if (!guest_cmdline_has("ctrj.snap=1"))
		return;
	/* Drivers without their transport see no device: virtio_mmio's
	 * devices, bound after "go", are this run's drives, TAP and channel. */
	boot_load_modules_but("virtio_mmio", "virtio-mmio");
	net_loopback_up(); /* the same in every VM: one thing less after "go" */
	if (guest_cmdline_has(CTRJ_CMDLINE_QEMU))
		zero_free_memory(); /* (Firecracker writes its memory file whole) */
	if (write(STDOUT_FILENO, point, sizeof point - 1) < 0)
		guest_fail(0, "snapshot: console: %s", strerror(errno));
	read_go_line(line, sizeof line);
	for (char *p = strtok(line, " \r\n"); p && n < 6; p = strtok(NULL, " \r\n"))
		tok[n++] = p;
	if (n != 5 || strcmp(tok[0], "go") != 0 || !unhex(tok[1], seed, sizeof seed))
		guest_fail(0, "snapshot: bad \"go\" line from the host");
	credit_seed(seed);
	explicit_bzero(seed, sizeof seed);
	struct timespec ts = {.tv_sec = strtoll(tok[2], NULL, 10),
	                      .tv_nsec = strtol(tok[3], NULL, 10)};
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		guest_say("snapshot: set the clock: %s", strerror(errno));
	g_has_mac = unhex(tok[4], g_mac, sizeof g_mac);
	g_go_ns = guest_now_ns();
	g_restored = true;
}

/* eth0 came from the snapshot with the snapshot's MAC: this run's. */
static void set_mac(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "eth0");
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, g_mac, sizeof g_mac);
	if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0)
		guest_fail(0, "snapshot: set the MAC of eth0: %s", strerror(errno));
	close(fd);
}

/* A machine id of this boot's own (drawn after the reseed). */
static void write_machine_id(void)
{
	uint8_t id[16];
	char text[34];
	int fd;

	if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id)
		guest_fail(0, "snapshot: getrandom: %s", strerror(errno));
	for (size_t i = 0; i < sizeof id; i++)
		snprintf(text + 2 * i, 3, "%02x", id[i]);
	text[32] = '\n';
	text[33] = '\0';
	guest_mkdir_p("/etc", 0755);
	unlink("/etc/machine-id");
	fd = open("/etc/machine-id", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0 || write(fd, text, 33) != 33)
		guest_say("write /etc/machine-id: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

static uint64_t since_go(uint64_t t)
{
	return t > g_go_ns ? t - g_go_ns : 0;
}

void resume_rebase_times(struct ctrj_status *st)
{
	if (!g_restored)
		return;
	st->t_init_ns = 0;
	if (st->t_workload_start_ns)
		st->t_workload_start_ns = since_go(st->t_workload_start_ns);
	if (st->t_workload_end_ns)
		st->t_workload_end_ns = since_go(st->t_workload_end_ns);
}

void resume_identity(bool has_net)
{
	if (!g_restored)
		return;
	if (has_net && g_has_mac)
		set_mac();
	write_machine_id();
}
