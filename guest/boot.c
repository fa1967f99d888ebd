/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Boot: the first mounts, kernel modules, drives found by content, the
 * root (base read-only + tmpfs upper under overlay), switch_root, the API
 * filesystems and the volumes. A step that cannot go on fails through
 * guest_fail; one that only loses a convenience warns.
 */
#include "deadline.h"
#include "init.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#define NEWROOT  "/newroot"
#define BASE_MNT "/base"
#define RW_MNT   "/rw"

/* Volumes and shares mounted in the new root, unmounted before the VM
 * stops. */
static char *g_mounted[CTRJ_MAX_VOLUMES + CTRJ_MAX_MOUNTS];
static size_t g_nmounted;

void guest_mkdir_p(const char *path, mode_t mode)
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
	guest_mkdir_p(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0)
		guest_fail(0, "mount %s on %s (%s): %s", src, dst, type, strerror(errno));
}

void boot_console_raw(void)
{
	struct termios t;

	/* No \n -> \r\n translation: the host sees the workload's bytes. */
	if (tcgetattr(STDOUT_FILENO, &t) == 0) {
		t.c_oflag &= ~(tcflag_t)OPOST;
		t.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDOUT_FILENO, TCSANOW, &t);
	}
}

/* /proc, /sys and /dev of the initramfs, for modules and drive discovery. */
void boot_early_mounts(void)
{
	guest_mkdir_p("/proc", 0555);
	guest_mkdir_p("/sys", 0555);
	guest_mkdir_p("/dev", 0755);
	if (mount("proc", "/proc", "proc", 0, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		guest_fail(0, "mount /proc or /sys: %s", strerror(errno));
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0 && errno != EBUSY)
		guest_fail(0, "mount /dev: %s", strerror(errno));
}

/* Read once, at the first call: the boot's (resume_wait_go), before any
 * workload could mount over /proc. */
bool guest_cmdline_has(const char *word)
{
	static char line[4096];
	static bool read_once;
	char buf[sizeof line];

	if (!read_once) {
		int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
		if (fd >= 0)
			close(fd);
		line[n > 0 ? n : 0] = '\0';
		read_once = true;
	}
	memcpy(buf, line, sizeof buf);
	for (char *save, *p = strtok_r(buf, " \n", &save); p; p = strtok_r(NULL, " \n", &save))
		if (strcmp(p, word) == 0)
			return true;
	return false;
}

/* ---- modules ---------------------------------------------------------- */

/* Is the module at path (kernel/.../NAME.ko[.xz]) named name? */
static bool module_named(const char *path, const char *name)
{
	const char *base = strrchr(path, '/');
	size_t len = strlen(name);

	base = base ? base + 1 : path;
	return strncmp(base, name, len) == 0 && base[len] == '.';
}

/* The modules listed in list: all of them, all but name (only false),
 * or only name. */
static uint64_t load_modules_listed(const char *list, const char *name, bool only)
{
	FILE *f = fopen(list, "re");
	char line[512];
	uint64_t t0 = guest_now_ns();

	if (!f)
		return 0; /* a kernel with everything built in */
	while (fgets(line, sizeof line, f)) {
		char path[600];
		int fd;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || (name && module_named(line, name) != only))
			continue;
		snprintf(path, sizeof path, "/modules/%s", line);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			guest_fail(0, "open module %s: %s", path, strerror(errno));
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			guest_fail(0, "load module %s: %s", line, strerror(errno));
		close(fd);
	}
	fclose(f);
	return guest_now_ns() - t0;
}

#define PLATFORM "/sys/bus/platform"

static int by_version(const struct dirent **a, const struct dirent **b)
{
	return strverscmp((*a)->d_name, (*b)->d_name);
}

#define MAX_TRANSPORTS    64
#define VIRTIO_ID_CONSOLE 3

/* The transports bound after "go", in their names' order (the order a
 * cold boot probes them in, so the drives keep their names). */
static char g_pending[MAX_TRANSPORTS][64];
static size_t g_npending;
static const char *g_driver;

static bool is_transport(const char *dev)
{
	/* ACPI's virtio-mmio devices (QEMU) or the command line's (Firecracker) */
	return strncmp(dev, "LNRO0005:", 9) == 0 || strncmp(dev, "virtio-mmio.", 12) == 0;
}

static bool bound(const char *dev)
{
	char path[512];

	snprintf(path, sizeof path, PLATFORM "/devices/%s/driver", dev);
	return access(path, F_OK) == 0;
}

/* The virtio device id behind a bound transport (-1: none found). */
static long virtio_id(const char *dev)
{
	char path[512], text[32] = "";
	struct dirent *e;
	long id = -1;
	DIR *d;

	snprintf(path, sizeof path, PLATFORM "/devices/%s", dev);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d)) && id < 0) {
		if (strncmp(e->d_name, "virtio", 6) != 0)
			continue;
		snprintf(path, sizeof path, PLATFORM "/devices/%s/%s/device", dev, e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			text[n] = '\0';
			id = strtol(text, NULL, 0);
		}
	}
	closedir(d);
	return id;
}

static int driver_file(const char *driver, const char *file, const char *dev)
{
	char path[256];

	snprintf(path, sizeof path, PLATFORM "/drivers/%s/%s", driver, file);
	return guest_write_text(path, dev);
}

/* The transports no driver took are left for after "go". Where the VMM
 * resets a device a driver let go of (QEMU: CTRJ_CMDLINE_QEMU;
 * Firecracker marks such a device failed), each is bound first and the
 * channel's (virtio-serial: no run's data, and the slowest probe) stays
 * bound; the others are unbound again. A transport without a device
 * refuses the binding (ENODEV). */
static void hold_transports(const char *driver)
{
	struct dirent **names;
	int n = scandir(PLATFORM "/devices", &names, NULL, by_version);
	bool rebind = guest_cmdline_has(CTRJ_CMDLINE_QEMU);

	if (n < 0)
		guest_fail(0, "snapshot: list %s: %s", PLATFORM "/devices", strerror(errno));
	for (int i = 0; i < n; i++) {
		const char *dev = names[i]->d_name;
		if (!is_transport(dev) || bound(dev))
			goto next;
		if (g_npending == MAX_TRANSPORTS)
			guest_fail(0, "snapshot: more than %d virtio transports", MAX_TRANSPORTS);
		if (rebind) {
			if (driver_file(driver, "bind", dev) < 0) {
				if (errno != ENODEV)
					guest_fail(0, "snapshot: bind %s: %s", dev,
					           strerror(errno));
				goto next;
			}
			if (virtio_id(dev) == VIRTIO_ID_CONSOLE)
				goto next;
			if (driver_file(driver, "unbind", dev) < 0)
				guest_fail(0, "snapshot: unbind %s: %s", dev, strerror(errno));
		}
		snprintf(g_pending[g_npending++], sizeof g_pending[0], "%s", dev);
	next:
		free(names[i]);
	}
	free(names);
	g_driver = driver;
}

uint64_t boot_load_modules(void)
{
	uint64_t t0 = guest_now_ns();

	if (!g_driver)
		return load_modules_listed("/modules/order", NULL, false);
	for (size_t i = 0; i < g_npending; i++)
		if (driver_file(g_driver, "bind", g_pending[i]) < 0 && errno != ENODEV)
			guest_say("bind %s: %s", g_pending[i], strerror(errno));
	return guest_now_ns() - t0;
}

/* Loads every module, but the platform devices of name's driver (the
 * virtio transport) are not probed: with no transport, no virtio driver
 * sees a device (hold_transports). Loading takes longer than binding, so
 * it is done before a snapshot, and only the binding after it. */
void boot_load_modules_but(const char *name, const char *driver)
{
	load_modules_listed("/modules/order", name, false);
	if (guest_write_text(PLATFORM "/drivers_autoprobe", "0") < 0)
		guest_fail(0, "snapshot: stop the platform bus's probing: %s", strerror(errno));
	load_modules_listed("/modules/order", name, true);
	if (guest_write_text(PLATFORM "/drivers_autoprobe", "1") < 0)
		guest_fail(0, "snapshot: restart the platform bus's probing: %s", strerror(errno));
	hold_transports(driver);
}

/* ---- drives ----------------------------------------------------------- */

/* Fills k from its first 2 KiB; false when the drive cannot be opened. */
static bool probe_disk(struct guest_disk *k)
{
	uint8_t sb[2048];
	int fd = open(k->dev, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (pread(fd, sb, sizeof sb, 0) == (ssize_t)sizeof sb) {
		k->is_control = memcmp(sb, CTRJ_CTL_MAGIC, 8) == 0;
		/* ext4 superblock at 1024: magic 0xEF53 at +0x38, uuid at +0x68 */
		k->is_ext4 = sb[1024 + 0x38] == 0x53 && sb[1024 + 0x39] == 0xEF;
		memcpy(k->uuid, sb + 1024 + 0x68, 16);
	}
	close(fd);
	return true;
}

/* Every virtio drive, probed for the control magic and an ext4 UUID. */
static void scan_disks(struct guest_disks *set)
{
	DIR *d = opendir("/sys/block");
	struct dirent *de;

	set->n = 0;
	if (!d)
		return;
	while ((de = readdir(d)) && set->n < GUEST_MAX_DISKS) {
		struct guest_disk *k = &set->d[set->n];

		if (strncmp(de->d_name, "vd", 2) != 0)
			continue;
		memset(k, 0, sizeof *k);
		snprintf(k->dev, sizeof k->dev, "/dev/%s", de->d_name);
		if (probe_disk(k))
			set->n++;
	}
	closedir(d);
}

/* The drive with this ext4 UUID, or the control disk when uuid is NULL. */
static const struct guest_disk *find_disk(const struct guest_disks *set, const uint8_t *uuid)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct guest_disk *k = &set->d[i];
		if (uuid ? k->is_ext4 && memcmp(k->uuid, uuid, 16) == 0 : k->is_control)
			return k;
	}
	return NULL;
}

struct disk_query {
	struct guest_disks *set;
	const uint8_t *uuid;
	const struct guest_disk *found;
};

/* Drives appear as their drivers probe them: look in what we know, then
 * rescan once and look again. */
static bool disk_present(void *ctx)
{
	struct disk_query *q = ctx;

	if ((q->found = find_disk(q->set, q->uuid)))
		return true;
	scan_disks(q->set);
	return (q->found = find_disk(q->set, q->uuid)) != NULL;
}

const struct guest_disk *boot_wait_disk(struct guest_disks *set, const uint8_t *uuid)
{
	struct disk_query q = {.set = set, .uuid = uuid};

	guest_wait_for(disk_present, &q, guest_now_ns() + GUEST_DISK_WAIT_MS * 1000000ull);
	return q.found;
}

/* ---- root filesystem -------------------------------------------------- */

/* Mount each layer read-only at /layers/N and list them for overlayfs,
 * highest first, down to the base: "/layers/2:/layers/1:/base". */
static void mount_layers(const struct ctrj_config *cfg, struct guest_disks *set, char *lower,
                         size_t len)
{
	size_t off = 0;

	for (size_t i = cfg->nlayers; i-- > 0;) {
		char dir[32];
		const struct guest_disk *d = boot_wait_disk(set, cfg->layer_uuids[i]);

		if (!d)
			guest_fail(0, "image layer %zu's disk not found", i + 1);
		snprintf(dir, sizeof dir, "/layers/%zu", i + 1);
		must_mount(d->dev, dir, "ext4", MS_RDONLY | MS_NODEV, "noload");
		off += (size_t)snprintf(lower + off, len - off, "%s:", dir);
	}
	snprintf(lower + off, len - off, "%s", BASE_MNT);
}

void boot_mount_root(const struct ctrj_config *cfg, const struct guest_disk *base,
                     struct guest_disks *set)
{
	char opts[128], lower[CTRJ_MAX_LAYERS * 16 + 16], ovl[sizeof lower + 96];

	must_mount(base->dev, BASE_MNT, "ext4", MS_RDONLY | MS_NODEV, "noload");
	mount_layers(cfg, set, lower, sizeof lower);
	if (cfg->upper_size)
		snprintf(opts, sizeof opts, "mode=0755,size=%llu",
		         (unsigned long long)cfg->upper_size);
	else
		snprintf(opts, sizeof opts, "mode=0755");
	must_mount("ctrj-upper", RW_MNT, "tmpfs", 0, opts);
	guest_mkdir_p(RW_MNT "/upper", 0755);
	guest_mkdir_p(RW_MNT "/work", 0755);
	snprintf(ovl, sizeof ovl, "lowerdir=%s,upperdir=" RW_MNT "/upper,workdir=" RW_MNT "/work",
	         lower);
	must_mount("overlay", NEWROOT, "overlay", 0, ovl);
}

void boot_switch_root(void)
{
	umount2("/proc", MNT_DETACH);
	umount2("/sys", MNT_DETACH);
	if (chdir(NEWROOT) < 0 || mount(NEWROOT, "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		guest_fail(0, "switch to the new root: %s", strerror(errno));
}

/* Paths below are resolved inside the image, after switch_root, so an
 * absolute symlink in the image (/lib -> /usr/lib) resolves the way the
 * image expects. */
void boot_mount_api_filesystems(void)
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
		guest_say("cgroup2 not mounted: %s", strerror(errno));
	/* devtmpfs lacks the conventional links. */
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
}

void boot_mount_modules(const struct ctrj_config *cfg, const struct guest_disks *set)
{
	struct utsname uts;
	char path[512];
	const struct guest_disk *d;

	if (!cfg->has_modules_uuid || !(d = find_disk(set, cfg->modules_uuid)))
		return;
	if (uname(&uts) < 0)
		return;
	snprintf(path, sizeof path, "/lib/modules/%s", uts.release);
	guest_mkdir_p(path, 0755);
	if (mount(d->dev, path, "ext4", MS_RDONLY | MS_NODEV | MS_NOSUID, "noload") < 0)
		guest_say("kernel modules not mounted at %s: %s", path, strerror(errno));
}

void boot_mount_volumes(const struct ctrj_config *cfg, struct guest_disks *set)
{
	for (size_t i = 0; i < cfg->nvolumes; i++) {
		const struct ctrj_volume *v = &cfg->volumes[i];
		const struct guest_disk *d = boot_wait_disk(set, v->uuid);
		unsigned long flags = MS_NODEV;

		if (!d)
			guest_fail(0, "volume for %s not found", v->path);
		if (v->flags & CTRJ_VOLUME_READONLY)
			flags |= MS_RDONLY;
		guest_mkdir_p(v->path, 0755);
		if (mount(d->dev, v->path, "ext4", flags, NULL) < 0 &&
		    !((flags & MS_RDONLY) && mount(d->dev, v->path, "ext4", flags, "noload") == 0))
			guest_fail(0, "mount volume %s on %s: %s", d->dev, v->path,
			           strerror(errno));
		g_mounted[g_nmounted++] = v->path;
	}
}

/* Unmount volumes so every write reaches the host before the VM stops;
 * a busy one is at least remounted read-only (flushing it). */
void boot_unmount_volumes(void)
{
	while (g_nmounted) {
		const char *path = g_mounted[--g_nmounted];
		if (umount2(path, 0) == 0)
			continue;
		guest_say("unmount %s: %s", path, strerror(errno));
		if (mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			guest_say("remount %s read-only: %s", path, strerror(errno));
	}
}

/* ---- host directories, tmpfs, a read-only root -------------------------- */

/* virtiofs (and fuse) when a host directory is shared: listed apart in the
 * initramfs, loaded only then. Before switch_root. */
void boot_load_share_modules(const struct ctrj_config *cfg)
{
	for (size_t i = 0; i < cfg->nmounts; i++)
		if (cfg->mounts[i].kind == CTRJ_MOUNT_VIRTIOFS) {
			guest_status()->t_modules_ns +=
			    load_modules_listed("/modules/order.virtiofs", NULL, false);
			return;
		}
}

static unsigned long mount_flags(uint32_t f)
{
	return ((f & CTRJ_MOUNT_READONLY) ? MS_RDONLY : 0) |
	       ((f & CTRJ_MOUNT_NOEXEC) ? MS_NOEXEC : 0) |
	       ((f & CTRJ_MOUNT_NOSUID) ? MS_NOSUID : 0) | ((f & CTRJ_MOUNT_NODEV) ? MS_NODEV : 0);
}

/* Where the host puts the engine's files' share (runtime/etcfiles.c) */
#define FILES_SHARE "/run/ctrj-files/"

/* Host directories (virtiofs, by tag) and tmpfs, in the host's order,
 * after the volumes. A share's files keep their host owners and modes. */
void boot_mount_shares(const struct ctrj_config *cfg)
{
	for (size_t i = 0; i < cfg->nmounts; i++) {
		const struct ctrj_mount *m = &cfg->mounts[i];
		unsigned long flags = mount_flags(m->flags);
		char opts[96];

		guest_mkdir_p(m->path, 0755);
		if (m->kind == CTRJ_MOUNT_VIRTIOFS) {
			if (mount(m->tag, m->path, "virtiofs", flags, NULL) < 0) {
				if (strncmp(m->path, FILES_SHARE, strlen(FILES_SHARE)) != 0)
					guest_fail(0, "mount host directory %s on %s: %s", m->tag,
					           m->path, strerror(errno));
				guest_say("warning: mount the engine's files (%s) on %s: %s",
				          m->tag, m->path, strerror(errno));
				continue; /* boot_bind_files goes on without them */
			}
			g_mounted[g_nmounted++] = m->path;
			continue;
		}
		int n = snprintf(opts, sizeof opts, "mode=%o", m->mode ? m->mode : 01777);
		if (m->size)
			snprintf(opts + n, sizeof opts - (size_t)n, ",size=%llu",
			         (unsigned long long)m->size);
		if (mount("tmpfs", m->path, "tmpfs", flags, opts) < 0)
			guest_fail(0, "mount a tmpfs on %s: %s", m->path, strerror(errno));
	}
}

/* The share mounted at path, detached (its bound files stay): no longer
 * unmounted at the end. */
static void detach_share(const char *path)
{
	for (size_t i = 0; i < g_nmounted; i++)
		if (strcmp(g_mounted[i], path) == 0) {
			if (umount2(path, MNT_DETACH) < 0)
				guest_say("detach %s: %s", path, strerror(errno));
			memmove(&g_mounted[i], &g_mounted[i + 1],
			        (g_nmounted - i - 1) * sizeof *g_mounted);
			g_nmounted--;
			return;
		}
}

/* Each engine file bound over the guest's (read-only); one that cannot be
 * is said on the console and the guest's own file stays: the container
 * goes on without it. */
void boot_bind_files(const struct ctrj_config *cfg)
{
	char dir[4096], *slash;
	struct stat st;

	for (size_t i = 0; i < cfg->nbinds; i++) {
		const struct ctrj_bind_file *b = &cfg->binds[i];
		errno = 0;
		if (stat(b->src, &st) < 0 || !S_ISREG(st.st_mode)) {
			guest_say("warning: the engine's %s (%s) is not there (%s), the image's "
			          "stays",
			          b->dst, b->src, errno ? strerror(errno) : "not a file");
			continue;
		}
		snprintf(dir, sizeof dir, "%s", b->dst);
		if ((slash = strrchr(dir, '/')) && slash != dir) {
			*slash = '\0';
			guest_mkdir_p(dir, 0755);
		}
		if (lstat(b->dst, &st) == 0 && S_ISLNK(st.st_mode))
			unlink(b->dst); /* a link to a resolver stub: the file itself */
		int fd = open(b->dst, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		if (mount(b->src, b->dst, NULL, MS_BIND, NULL) < 0)
			guest_say("warning: bind the engine's %s on %s: %s; the container goes on "
			          "without it",
			          b->src, b->dst, strerror(errno));
		else if (mount(NULL, b->dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
			guest_say("warning: %s read-only: %s; the container goes on without it",
			          b->dst, strerror(errno));
			umount2(b->dst, MNT_DETACH);
		}
	}
	for (size_t i = 0; i < cfg->nbinds; i++) {
		snprintf(dir, sizeof dir, "%s", cfg->binds[i].src);
		if ((slash = strrchr(dir, '/')) && slash != dir)
			*slash = '\0';
		detach_share(dir);
	}
}

static bool mounted_at(const struct ctrj_config *cfg, const char *path)
{
	for (size_t i = 0; i < cfg->nmounts; i++)
		if (strcmp(cfg->mounts[i].path, path) == 0)
			return true;
	for (size_t i = 0; i < cfg->nvolumes; i++)
		if (strcmp(cfg->volumes[i].path, path) == 0)
			return true;
	return false;
}

/* --read-only: once the init wrote what it writes in the root (the
 * environment, the resolver files, mount points), the root is remounted
 * read-only; /tmp becomes a tmpfs unless something is mounted there
 * (/run is one already). */
void boot_seal_root(const struct ctrj_config *cfg)
{
	if (!cfg->readonly_root)
		return;
	if (!mounted_at(cfg, "/tmp"))
		must_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		guest_fail(0, "remount the root read-only: %s", strerror(errno));
}
