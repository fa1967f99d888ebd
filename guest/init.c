/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctr-jailer guest init: PID 1 inside the microVM.
 *
 * It runs from the initramfs and never needs to exist inside the image:
 *   load modules → find the control disk → read and wipe the config →
 *   mount base (ro) + overlay (tmpfs upper) → switch_root → /proc, /sys, /dev
 *   → /var/environment → fork the workload → be a tini-grade PID 1 →
 *   write the status record → sync → reboot.
 * Every failure before exec is reported on the console and in the status
 * record, then the VM stops: PID 1 never returns.
 */
#include "init.h"
#include "ctrj/protocol.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define NEWROOT      "/newroot"
#define BASE_MNT     "/base"
#define RW_MNT       "/rw"
#define DISK_WAIT_MS 10000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

static struct ctrj_status g_status;
static int g_ctl_fd = -1;
/* Volumes mounted in the new root, unmounted before the VM stops. */
static char *g_mounted[CTRJ_MAX_VOLUMES];
static size_t g_nmounted;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Our messages quote the image's data (command, user, paths); the console
 * reaches the host's terminal, so only printable ASCII passes as itself
 * and every other byte is shown as \xNN, like the status record's '?'. */
static size_t escape_for_console(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < len; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
	}
	out[o] = '\0';
	return o;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char msg[1024], buf[64 + 4 * sizeof msg];
	va_list ap;
	size_t n = (size_t)snprintf(buf, sizeof buf, "ctr-jailer-init: ");

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	n += escape_for_console(msg, buf + n, sizeof buf - n - 1);
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere else to report */
	}
}

/* The kernel prints "reboot: Restarting system" at KERN_EMERG, which no
 * klogctl level silences; console_loglevel 0 via sysctl does. */
static void quiet_console(void)
{
	int fd = open("/proc/sys/kernel/printk", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "0", 1) < 0) {
			/* cosmetic only */
		}
		close(fd);
	}
}

/* Unmount volumes so every write reaches the host before the VM stops;
 * a busy one is at least remounted read-only (flushing it). */
static void unmount_volumes(void)
{
	while (g_nmounted) {
		const char *path = g_mounted[--g_nmounted];
		if (umount2(path, 0) == 0)
			continue;
		say("unmount %s: %s", path, strerror(errno));
		if (mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			say("remount %s read-only: %s", path, strerror(errno));
	}
}

/* Write the status record, flush everything and stop the VM. */
static __attribute__((noreturn)) void finish(void)
{
	uint8_t rec[CTRJ_CTL_STATUS_SIZE];

	unmount_volumes();
	if (g_ctl_fd >= 0) {
		ctrj_status_encode(&g_status, rec);
		if (pwrite(g_ctl_fd, rec, sizeof rec, CTRJ_CTL_STATUS_OFF) != (ssize_t)sizeof rec)
			say("cannot write the status record: %s", strerror(errno));
		if (fsync(g_ctl_fd) < 0)
			say("cannot flush the status record: %s", strerror(errno));
	}
	sync();
	quiet_console();
	reboot(RB_AUTOBOOT);
	for (;;) /* reboot only fails without CAP_SYS_BOOT, which PID 1 has */
		pause();
}

static __attribute__((noreturn, format(printf, 2, 3))) void fail_setup(int code, const char *fmt,
                                                                       ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_status.msg, sizeof g_status.msg, fmt, ap);
	va_end(ap);
	say("%s", g_status.msg);
	g_status.state = code ? CTRJ_STATE_EXEC_FAILED : CTRJ_STATE_INIT_FAILED;
	g_status.code = (uint32_t)code;
	finish();
}

static void mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len >= sizeof buf)
		return;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, mode);
			*p = '/';
		}
	}
	mkdir(buf, mode);
}

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                       const char *data)
{
	mkdir_p(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0)
		fail_setup(0, "mount %s on %s (%s): %s", src, dst, type, strerror(errno));
}

/* ---- modules ---------------------------------------------------------- */

static void load_modules(void)
{
	FILE *f = fopen("/modules/order", "re");
	char line[512];
	uint64_t t0 = now_ns();

	if (!f)
		return; /* a kernel with everything built in */
	while (fgets(line, sizeof line, f)) {
		char path[600];
		int fd;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		snprintf(path, sizeof path, "/modules/%s", line);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail_setup(0, "open module %s: %s", path, strerror(errno));
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			fail_setup(0, "load module %s: %s", line, strerror(errno));
		close(fd);
	}
	fclose(f);
	g_status.t_modules_ns = now_ns() - t0;
}

/* ---- disks ------------------------------------------------------------ */

struct disk {
	char dev[64];
	uint8_t uuid[16];
	bool is_ext4;
	bool is_control;
};

#define MAX_DISKS 32

static size_t scan_disks(struct disk *disks)
{
	DIR *d = opendir("/sys/block");
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < MAX_DISKS) {
		uint8_t sb[2048];
		struct disk *k = &disks[n];
		int fd;

		if (strncmp(de->d_name, "vd", 2) != 0)
			continue;
		memset(k, 0, sizeof *k);
		snprintf(k->dev, sizeof k->dev, "/dev/%s", de->d_name);
		fd = open(k->dev, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (pread(fd, sb, sizeof sb, 0) == (ssize_t)sizeof sb) {
			k->is_control = memcmp(sb, CTRJ_CTL_MAGIC, 8) == 0;
			/* ext4 superblock at 1024: magic 0xEF53 at +0x38, uuid at +0x68 */
			k->is_ext4 = sb[1024 + 0x38] == 0x53 && sb[1024 + 0x39] == 0xEF;
			memcpy(k->uuid, sb + 1024 + 0x68, 16);
		}
		close(fd);
		n++;
	}
	closedir(d);
	return n;
}

static const struct disk *find_uuid(const struct disk *disks, size_t n, const uint8_t *uuid)
{
	for (size_t i = 0; i < n; i++)
		if (disks[i].is_ext4 && memcmp(disks[i].uuid, uuid, 16) == 0)
			return &disks[i];
	return NULL;
}

static size_t wait_for_control_disk(struct disk *disks, const char **ctl_dev)
{
	uint64_t deadline = now_ns() + (uint64_t)DISK_WAIT_MS * 1000000ull;

	for (;;) {
		size_t n = scan_disks(disks);
		for (size_t i = 0; i < n; i++) {
			if (disks[i].is_control) {
				*ctl_dev = disks[i].dev;
				return n;
			}
		}
		if (now_ns() > deadline)
			fail_setup(0, "no control disk found after %d ms (%zu virtio disks seen)",
			           DISK_WAIT_MS, n);
		usleep(5000);
	}
}

/* Read the config, then wipe it from the disk: it may hold secrets. */
static void read_config(const char *dev, struct ctrj_config *cfg)
{
	uint8_t hdr_buf[CTRJ_CTL_HEADER_SIZE];
	struct ctrj_ctl_header hdr;
	char err[256];
	uint8_t *buf;

	g_ctl_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (g_ctl_fd < 0)
		fail_setup(0, "open control disk %s: %s", dev, strerror(errno));
	if (pread(g_ctl_fd, hdr_buf, sizeof hdr_buf, 0) != (ssize_t)sizeof hdr_buf)
		fail_setup(0, "read control disk header: %s", strerror(errno));
	if (ctrj_header_parse(hdr_buf, &hdr, err, sizeof err) < 0)
		fail_setup(0, "control disk: %s", err);
	buf = malloc(hdr.config_len ? hdr.config_len : 1);
	if (!buf)
		fail_setup(0, "out of memory reading the config");
	if (pread(g_ctl_fd, buf, hdr.config_len, hdr.config_off) != (ssize_t)hdr.config_len)
		fail_setup(0, "read control disk config: %s", strerror(errno));
	if (ctrj_config_parse(buf, hdr.config_len, cfg, err, sizeof err) < 0)
		fail_setup(0, "control disk config: %s", err);
	memset(buf, 0, hdr.config_len);
	/* No flush here: the final sync() before reboot writes the wipe back,
	 * and the host deletes the run directory whatever happens. */
	if (pwrite(g_ctl_fd, buf, hdr.config_len, hdr.config_off) != (ssize_t)hdr.config_len)
		fail_setup(0, "wipe the config from the control disk: %s", strerror(errno));
	free(buf);
}

/* ---- root filesystem -------------------------------------------------- */

static void mount_root(const struct ctrj_config *cfg, const struct disk *base)
{
	char opts[128];

	must_mount(base->dev, BASE_MNT, "ext4", MS_RDONLY | MS_NODEV, "noload");
	if (cfg->upper_size)
		snprintf(opts, sizeof opts, "mode=0755,size=%llu",
		         (unsigned long long)cfg->upper_size);
	else
		snprintf(opts, sizeof opts, "mode=0755");
	must_mount("ctrj-upper", RW_MNT, "tmpfs", 0, opts);
	mkdir_p(RW_MNT "/upper", 0755);
	mkdir_p(RW_MNT "/work", 0755);
	must_mount("overlay", NEWROOT, "overlay", 0,
	           "lowerdir=" BASE_MNT ",upperdir=" RW_MNT "/upper,workdir=" RW_MNT "/work");
}

static void switch_root(void)
{
	if (chdir(NEWROOT) < 0 || mount(NEWROOT, "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		fail_setup(0, "switch to the new root: %s", strerror(errno));
}

/* Paths below are resolved inside the image, after switch_root, so an
 * absolute symlink in the image (/lib -> /usr/lib) resolves the way the
 * image expects. */
static void mount_api_filesystems(void)
{
	must_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	must_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	must_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	must_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	           "newinstance,ptmxmode=0666,mode=0620,gid=5");
	must_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	must_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
	    0)
		say("cgroup2 not mounted: %s", strerror(errno));
	/* devtmpfs lacks the conventional links. */
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
}

static void mount_modules(const struct ctrj_config *cfg, const struct disk *disks, size_t n)
{
	struct utsname uts;
	char path[512];
	const struct disk *d;

	if (!cfg->has_modules_uuid || !(d = find_uuid(disks, n, cfg->modules_uuid)))
		return;
	if (uname(&uts) < 0)
		return;
	snprintf(path, sizeof path, "/lib/modules/%s", uts.release);
	mkdir_p(path, 0755);
	if (mount(d->dev, path, "ext4", MS_RDONLY | MS_NODEV | MS_NOSUID, "noload") < 0)
		say("kernel modules not mounted at %s: %s", path, strerror(errno));
}

/* The loopback interface; eth0 belongs to the networking setup. */
static void loopback_up(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			say("bring up lo: %s", strerror(errno));
	}
	close(fd);
}

static void mount_volumes(const struct ctrj_config *cfg, struct disk *disks, size_t *ndisks)
{
	for (size_t i = 0; i < cfg->nvolumes; i++) {
		const struct ctrj_volume *v = &cfg->volumes[i];
		const struct disk *d;
		unsigned long flags = MS_NODEV;

		for (uint64_t deadline = now_ns() + DISK_WAIT_MS * 1000000ull;
		     !(d = find_uuid(disks, *ndisks, v->uuid));) {
			if (now_ns() > deadline)
				fail_setup(0, "volume for %s not found", v->path);
			usleep(5000);
			*ndisks = scan_disks(disks);
		}
		if (v->flags & CTRJ_VOLUME_READONLY)
			flags |= MS_RDONLY;
		mkdir_p(v->path, 0755);
		if (mount(d->dev, v->path, "ext4", flags, NULL) < 0 &&
		    !((flags & MS_RDONLY) && mount(d->dev, v->path, "ext4", flags, "noload") == 0))
			fail_setup(0, "mount volume %s on %s: %s", d->dev, v->path,
			           strerror(errno));
		g_mounted[g_nmounted++] = v->path;
	}
}

/* /run/secrets/NAME: tmpfs, mode 0400, owned by the workload's user; the
 * values are wiped from memory once written. */
static void write_secrets(struct ctrj_config *cfg, const struct guest_user *u)
{
	if (!cfg->nsecrets)
		return;
	if (mkdir("/run/secrets", 0711) < 0 && errno != EEXIST)
		fail_setup(0, "create /run/secrets: %s", strerror(errno));
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		struct ctrj_secret *sec = &cfg->secrets[i];
		char path[256];
		size_t off = 0;
		int fd;

		snprintf(path, sizeof path, "/run/secrets/%s", sec->name);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
		if (fd < 0)
			fail_setup(0, "create %s: %s", path, strerror(errno));
		while (off < sec->len) {
			ssize_t w = write(fd, sec->value + off, sec->len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				fail_setup(0, "write %s: %s", path, strerror(errno));
			off += (size_t)w;
		}
		if (fchown(fd, u->uid, u->gid) < 0)
			fail_setup(0, "chown %s: %s", path, strerror(errno));
		close(fd);
		explicit_bzero(sec->value, sec->len);
	}
}

static void write_text_file(const char *path, const char *text)
{
	int fd;
	size_t len = strlen(text);

	unlink(path); /* a symlink in the image (e.g. to a resolver stub) is replaced */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		say("write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* eth0 with the ioctl interface: address, netmask, MTU, up, default route.
 * (The kernel's ioctls need no message encoder, and this static init has no
 * netlink library to link against.) */
static void configure_network(const struct ctrj_config *cfg)
{
	const struct ctrj_net *n = &cfg->net;
	struct ifreq ifr;
	struct rtentry rt;
	struct sockaddr_in *sin;
	char text[1024], addr[INET_ADDRSTRLEN];
	int fd, len = 0;

	if (!cfg->has_net)
		return;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_setup(0, "socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "eth0");
	sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = n->addr;
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
		fail_setup(0, "eth0 address: %s (is virtio_net available?)", strerror(errno));
	sin->sin_addr.s_addr = htonl(n->prefix >= 32 ? ~0u : ~(~0u >> n->prefix));
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
		fail_setup(0, "eth0 netmask: %s", strerror(errno));
	ifr.ifr_mtu = (int)n->mtu;
	if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
		fail_setup(0, "eth0 mtu: %s", strerror(errno));
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		fail_setup(0, "eth0 flags: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		fail_setup(0, "eth0 up: %s", strerror(errno));
	memset(&rt, 0, sizeof rt);
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	sin = (struct sockaddr_in *)&rt.rt_gateway;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = n->gateway;
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = "eth0";
	if (ioctl(fd, SIOCADDRT, &rt) < 0)
		fail_setup(0, "default route: %s", strerror(errno));
	close(fd);

	mkdir_p("/etc", 0755);
	for (uint32_t i = 0; i < n->ndns; i++) {
		inet_ntop(AF_INET, &n->dns[i], addr, sizeof addr);
		len += snprintf(text + len, sizeof text - (size_t)len, "nameserver %s\n", addr);
	}
	write_text_file("/etc/resolv.conf", text);
	inet_ntop(AF_INET, &n->addr, addr, sizeof addr);
	snprintf(text, sizeof text,
	         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", addr,
	         cfg->hostname ? cfg->hostname : "localhost");
	write_text_file("/etc/hosts", text);
}

static void write_environment_file(char *const *envp, const struct guest_user *u)
{
	int fd;

	mkdir_p("/var", 0755);
	unlink("/var/environment");
	fd = open("/var/environment", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_setup(0, "create /var/environment: %s", strerror(errno));
	if (guest_env_write_file(fd, envp) < 0)
		fail_setup(0, "write /var/environment: %s", strerror(errno));
	/* the workload's own file: it may read it, source it, wipe it */
	if (fchown(fd, u->uid, u->gid) < 0)
		fail_setup(0, "chown /var/environment: %s", strerror(errno));
	close(fd);
}

/* ---- workload --------------------------------------------------------- */

static bool env_has(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return true;
	return false;
}

/* The workload's environment: the configured one plus PATH and HOME when
 * the caller did not set them, as docker does. */
static char **workload_env(struct ctrj_config *cfg, const struct guest_user *u)
{
	char **env = calloc(cfg->envc + 3, sizeof *env);
	size_t n = 0;

	if (!env)
		fail_setup(0, "out of memory");
	for (size_t i = 0; i < cfg->envc; i++)
		env[n++] = cfg->envp[i];
	if (!env_has(cfg->envp, "PATH"))
		env[n++] = "PATH=" DEFAULT_PATH;
	if (!env_has(cfg->envp, "HOME")) {
		char *home;
		if (asprintf(&home, "HOME=%s", u->home) < 0)
			fail_setup(0, "out of memory");
		env[n++] = home;
	}
	env[n] = NULL;
	return env;
}

/* In the child: become the user, enter workdir, exec. Reports errno on
 * err_fd (close-on-exec, so success closes it silently). */
static __attribute__((noreturn)) void
exec_workload(struct ctrj_config *cfg, const struct guest_user *u, char **env, int err_fd)
{
	sigset_t all;
	int stage = 0; /* 0 setup, 1 exec */
	int e;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0 && null != STDIN_FILENO)
		dup2(null, STDIN_FILENO);
	gid_t groups[GUEST_MAX_GROUPS];
	for (size_t i = 0; i < u->ngroups; i++)
		groups[i] = u->groups[i];
	if (setgroups(u->ngroups, groups) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0)
		goto report;
	if (chdir(cfg->workdir ? cfg->workdir : "/") < 0)
		goto report;
	environ = env; /* execvp searches the workload's PATH, not ours */
	stage = 1;
	execvp(cfg->argv[0], cfg->argv);
report:
	e = errno;
	{
		int msg[2] = {stage, e};
		if (write(err_fd, msg, sizeof msg) < 0)
			_exit(127);
	}
	_exit(127);
}

static pid_t start_workload(struct ctrj_config *cfg, const struct guest_user *u, char **env)
{
	int pfd[2];
	int msg[2];
	ssize_t r;
	pid_t pid;

	if (cfg->workdir)
		mkdir_p(cfg->workdir, 0755); /* docker creates a missing WORKDIR */
	if (pipe2(pfd, O_CLOEXEC) < 0)
		fail_setup(0, "pipe: %s", strerror(errno));
	g_status.t_workload_start_ns = now_ns();
	pid = fork();
	if (pid < 0)
		fail_setup(0, "fork: %s", strerror(errno));
	if (pid == 0)
		exec_workload(cfg, u, env, pfd[1]);
	close(pfd[1]);
	do
		r = read(pfd[0], msg, sizeof msg);
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof msg) {
		waitpid(pid, NULL, 0);
		if (msg[0] == 0)
			fail_setup(0, "cannot enter user %s or directory %s: %s",
			           cfg->user ? cfg->user : "0", cfg->workdir ? cfg->workdir : "/",
			           strerror(msg[1]));
		fail_setup(msg[1] == ENOENT ? 127 : 126, "exec \"%s\": %s", cfg->argv[0],
		           strerror(msg[1]));
	}
	return pid;
}

/* ---- PID 1 duties ----------------------------------------------------- */

/* Reap everything; returns true when no children are left. */
static bool reap(pid_t workload, bool *workload_done)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p == 0)
			return false;
		if (p < 0)
			return errno == ECHILD;
		if (p == workload && !*workload_done) {
			*workload_done = true;
			g_status.t_workload_end_ns = now_ns();
			if (WIFSIGNALED(st)) {
				g_status.state = CTRJ_STATE_SIGNALED;
				g_status.signal = (uint32_t)WTERMSIG(st);
				g_status.code = 128u + (uint32_t)WTERMSIG(st);
			} else {
				g_status.state = CTRJ_STATE_EXITED;
				g_status.code = (uint32_t)WEXITSTATUS(st);
			}
		}
	}
}

static void supervise(pid_t workload, const struct ctrj_config *cfg)
{
	sigset_t set;
	bool done = false, stopping = false, cleanup = false;
	uint64_t deadline = 0;
	int stop_sig = cfg->stop_signal ? (int)cfg->stop_signal : SIGTERM;
	uint64_t grace_ns = (uint64_t)cfg->grace_ms * 1000000ull;

	sigfillset(&set);
	for (;;) {
		bool none_left = reap(workload, &done);

		if (done && !cleanup) {
			/* The workload is gone: give what it left behind the same
			 * grace period a graceful stop gets, then kill it. */
			cleanup = true;
			kill(-1, SIGTERM);
			deadline = now_ns() + grace_ns;
		}
		if (done && none_left)
			return;
		if (deadline && now_ns() >= deadline) {
			kill(-1, SIGKILL);
			deadline = 0;
		}

		struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
		if (deadline) {
			uint64_t left = deadline > now_ns() ? deadline - now_ns() : 0;
			if (left < 100000000ull)
				ts.tv_nsec = (long)left;
		} else if (!done) {
			ts.tv_sec = 3600;
			ts.tv_nsec = 0;
		}
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig < 0 || sig == SIGCHLD)
			continue;
		if ((sig == SIGINT || sig == SIGTERM || sig == SIGPWR) && !done) {
			/* SIGINT is Ctrl-Alt-Del from the VMM: a graceful stop. */
			if (!stopping) {
				stopping = true;
				kill(workload, stop_sig);
				deadline = now_ns() + grace_ns;
			}
			continue;
		}
		if (!done)
			kill(workload, sig); /* forward everything else */
	}
}

static void console_raw_output(void)
{
	struct termios t;

	/* No \n -> \r\n translation: the host sees the workload's bytes. */
	if (tcgetattr(STDOUT_FILENO, &t) == 0) {
		t.c_oflag &= ~(tcflag_t)OPOST;
		t.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDOUT_FILENO, TCSANOW, &t);
	}
}

int main(void)
{
	struct disk disks[MAX_DISKS];
	struct ctrj_config cfg;
	struct guest_user user;
	const struct disk *base;
	const char *ctl_dev = NULL;
	char err[256];
	sigset_t all;
	size_t ndisks;
	pid_t pid;

	g_status.t_init_ns = now_ns();
	/* Ctrl-Alt-Del becomes SIGINT to us instead of an instant reboot. */
	reboot(RB_DISABLE_CAD);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	console_raw_output();

	mkdir_p("/proc", 0555);
	mkdir_p("/sys", 0555);
	mkdir_p("/dev", 0755);
	if (mount("proc", "/proc", "proc", 0, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		fail_setup(0, "mount /proc or /sys: %s", strerror(errno));
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0 && errno != EBUSY)
		fail_setup(0, "mount /dev: %s", strerror(errno));

	load_modules();
	ndisks = wait_for_control_disk(disks, &ctl_dev);
	read_config(ctl_dev, &cfg);
	if (!cfg.has_base_uuid)
		fail_setup(0, "the config names no base image");
	for (uint64_t deadline = now_ns() + DISK_WAIT_MS * 1000000ull;
	     !(base = find_uuid(disks, ndisks, cfg.base_uuid));) {
		if (now_ns() > deadline)
			fail_setup(0, "base image disk not found");
		usleep(5000);
		ndisks = scan_disks(disks);
	}
	mount_root(&cfg, base);
	umount2("/proc", MNT_DETACH);
	umount2("/sys", MNT_DETACH);
	switch_root();
	mount_api_filesystems();
	mount_modules(&cfg, disks, ndisks);
	mount_volumes(&cfg, disks, &ndisks);
	if (cfg.hostname && sethostname(cfg.hostname, strlen(cfg.hostname)) < 0)
		say("sethostname: %s", strerror(errno));
	loopback_up();
	configure_network(&cfg);
	if (guest_user_resolve(cfg.user, &user, err, sizeof err) < 0)
		fail_setup(0, "%s", err);
	write_environment_file(cfg.envp, &user);
	write_secrets(&cfg, &user);

	pid = start_workload(&cfg, &user, workload_env(&cfg, &user));
	supervise(pid, &cfg);
	finish();
}
