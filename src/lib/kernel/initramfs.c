/* SPDX-License-Identifier: Apache-2.0 */
/* The initramfs: the static init (embedded in this binary at build time),
 * /dev/console, and the modules the init needs before it can see its
 * disks, listed in dependency order in /modules/order. Written as a newc
 * cpio with libarchive and cached per (init, kernel modules). */
#include "kernel.h"

#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern const unsigned char ctrj_init_blob[];
extern const unsigned char ctrj_init_blob_end[];

const char *const cj_initramfs_modules[] = {
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "overlay",
    /* the agent's channel under Firecracker (guest/agent.c); see README */
    "vsock",
    "vmw_vsock_virtio_transport",
    NULL,
};

/* Loaded only when a host directory is shared (modules/order.virtiofs). */
const char *const cj_initramfs_share_modules[] = {"virtiofs", NULL};

/* Module name of a modules.dep path: basename without .ko[.xz|.zst|.gz],
 * with '-' folded to '_' as the kernel does. */
static void module_name(const char *path, size_t len, char *out, size_t outlen)
{
	const char *slash = memrchr(path, '/', len);
	const char *base = slash ? slash + 1 : path;
	size_t n = len - (size_t)(base - path);
	const char *ko = memmem(base, n, ".ko", 3);

	if (ko)
		n = (size_t)(ko - base);
	if (n >= outlen)
		n = outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = base[i] == '-' ? '_' : base[i];
	out[n] = '\0';
}

struct dep_line {
	const char *path; /* module path, not NUL-terminated */
	size_t path_len;
	const char *deps; /* rest of the line */
	size_t deps_len;
};

static bool find_dep_line(const char *dep, const char *name, struct dep_line *out)
{
	for (const char *p = dep; *p;) {
		const char *nl = strchrnul(p, '\n');
		const char *colon = memchr(p, ':', (size_t)(nl - p));
		char mname[128];

		if (colon) {
			module_name(p, (size_t)(colon - p), mname, sizeof mname);
			if (strcmp(mname, name) == 0) {
				out->path = p;
				out->path_len = (size_t)(colon - p);
				out->deps = colon + 1;
				out->deps_len = (size_t)(nl - colon - 1);
				return true;
			}
		}
		p = *nl ? nl + 1 : nl;
	}
	return false;
}

struct order {
	char *text;
	size_t len;
	char seen[64][128];
	size_t nseen;
};

static int add_module(const char *dep, const char *requested, struct order *o, int depth,
                      struct cj_err *err)
{
	struct dep_line line;
	char name[128];

	/* the kernel treats '-' and '_' in module names alike */
	snprintf(name, sizeof name, "%s", requested);
	for (char *p = name; *p; p++)
		if (*p == '-')
			*p = '_';

	if (depth > 32)
		return cj_fail(err, 0, "module dependencies of %s nest too deep", name);
	for (size_t i = 0; i < o->nseen; i++)
		if (strcmp(o->seen[i], name) == 0)
			return 0;
	if (!find_dep_line(dep, name, &line))
		return 0; /* built into the kernel */
	if (o->nseen == 64)
		return cj_fail(err, 0, "too many modules for the initramfs");
	snprintf(o->seen[o->nseen++], sizeof o->seen[0], "%s", name);
	/* Dependencies first. modules.dep lists them in load-reverse order. */
	for (const char *p = line.deps, *end = line.deps + line.deps_len; p < end;) {
		while (p < end && *p == ' ')
			p++;
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		size_t n = sp ? (size_t)(sp - p) : (size_t)(end - p);
		if (n) {
			char dname[128];
			module_name(p, n, dname, sizeof dname);
			if (add_module(dep, dname, o, depth + 1, err) < 0)
				return -1;
		}
		p += n;
	}
	char *nt = realloc(o->text, o->len + line.path_len + 2);
	if (!nt)
		return cj_fail(err, ENOMEM, "module order");
	o->text = nt;
	memcpy(o->text + o->len, line.path, line.path_len);
	o->len += line.path_len;
	o->text[o->len++] = '\n';
	o->text[o->len] = '\0';
	return 0;
}

int cj_modules_order(const char *modules_dep, const char *const *names, char **out,
                     struct cj_err *err)
{
	struct order *o = calloc(1, sizeof *o);

	if (!o || !(o->text = calloc(1, 1))) {
		free(o);
		return cj_fail(err, ENOMEM, "module order");
	}
	for (size_t i = 0; names[i]; i++) {
		if (add_module(modules_dep, names[i], o, 0, err) < 0) {
			free(o->text);
			free(o);
			return -1;
		}
	}
	*out = o->text;
	free(o);
	return 0;
}

static int add_entry(struct archive *a, const char *path, mode_t mode, dev_t rdev, const void *data,
                     size_t len, struct cj_err *err)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, mode);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, 0, 0);
	if (S_ISCHR(mode))
		archive_entry_set_rdev(e, rdev);
	archive_entry_set_size(e, (la_int64_t)len);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    (len && archive_write_data(a, data, len) != (la_ssize_t)len)) {
		cj_fail(err, 0, "write initramfs entry %s: %s", path, archive_error_string(a));
		archive_entry_free(e);
		return -1;
	}
	archive_entry_free(e);
	return 0;
}

static int add_file(struct archive *a, const char *dest, const char *src, struct cj_err *err)
{
	char *buf;
	size_t len;
	struct stat st;
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return cj_fail(err, errno, "open %s", src);
	if (fstat(fd, &st) < 0 || !(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return cj_fail(err, errno, "read %s", src);
	}
	len = 0;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	r = add_entry(a, dest, S_IFREG | 0644, 0, buf, len, err);
	free(buf);
	return r;
}

/* The files of one order list under modules/, with their directories. */
static int add_modules(struct archive *a, const struct cj_kernel *k, const char *order,
                       struct cj_err *err)
{
	for (const char *p = order; *p;) {
		const char *nl = strchrnul(p, '\n');
		char rel[PATH_MAX], src[PATH_MAX * 2], dst[PATH_MAX + 16];
		snprintf(rel, sizeof rel, "%.*s", (int)(nl - p), p);
		snprintf(src, sizeof src, "%s/%s", k->modules, rel);
		snprintf(dst, sizeof dst, "modules/%s", rel);
		/* parent directories, so the cpio unpacks cleanly */
		for (char *s = strchr(dst + 8, '/'); s; s = strchr(s + 1, '/')) {
			*s = '\0';
			if (add_entry(a, dst, S_IFDIR | 0755, 0, NULL, 0, err) < 0)
				return -1;
			*s = '/';
		}
		if (add_file(a, dst, src, err) < 0)
			return -1;
		p = *nl ? nl + 1 : nl;
	}
	return 0;
}

static int write_cpio(const char *dest, const struct cj_kernel *k, const char *order,
                      const char *share_order, struct cj_err *err)
{
	struct archive *a = archive_write_new();
	size_t init_len = (size_t)(ctrj_init_blob_end - ctrj_init_blob);
	static const char *const dirs[] = {"dev",  "proc", "sys",     "newroot",
	                                   "base", "rw",   "modules", NULL};
	int r = -1;

	archive_write_set_format_cpio_newc(a);
	if (archive_write_open_filename(a, dest) != ARCHIVE_OK) {
		cj_fail(err, 0, "create %s: %s", dest, archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; dirs[i]; i++)
		if (add_entry(a, dirs[i], S_IFDIR | 0755, 0, NULL, 0, err) < 0)
			goto out;
	/* The kernel opens /dev/console for PID 1's stdio before init runs. */
	if (add_entry(a, "dev/console", S_IFCHR | 0600, makedev(5, 1), NULL, 0, err) < 0 ||
	    add_entry(a, "init", S_IFREG | 0755, 0, ctrj_init_blob, init_len, err) < 0 ||
	    add_entry(a, "modules/order", S_IFREG | 0644, 0, order, strlen(order), err) < 0)
		goto out;
	if (add_entry(a, "modules/order.virtiofs", S_IFREG | 0644, 0, share_order,
	              strlen(share_order), err) < 0 ||
	    add_modules(a, k, order, err) < 0 || add_modules(a, k, share_order, err) < 0)
		goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		cj_fail(err, 0, "finish %s: %s", dest, archive_error_string(a));
		goto out;
	}
	r = 0;
out:
	archive_write_free(a);
	return r;
}

/* The modules the init loads, in dependency order, one path a line ("" for
 * a kernel without modules); caller frees. */
static char *initramfs_order(const struct cj_kernel *k, const char *const *names,
                             struct cj_err *err)
{
	char dep_path[PATH_MAX + 16], *order = NULL;
	cj_autofree char *dep = NULL;

	if (!k->modules[0]) {
		order = strdup("");
		return order ? order : (cj_fail(err, ENOMEM, "initramfs"), NULL);
	}
	snprintf(dep_path, sizeof dep_path, "%s/modules.dep", k->modules);
	if (cj_read_file(dep_path, &dep, NULL, err) < 0) {
		cj_err_wrap(err, "kernel modules (run depmod for the tree)");
		return NULL;
	}
	if (cj_modules_order(dep, names, &order, err) < 0)
		return NULL;
	return order;
}

/* The cache key: the init, the modules tree and each module's size and
 * modification time. */
static void initramfs_key(const struct cj_kernel *k, const char *order, char key[65])
{
	struct cj_hash *h = cj_hash_new();
	struct stat st;

	cj_hash_update(h, "initramfs-v2", 13);
	cj_hash_update(h, ctrj_init_blob, (size_t)(ctrj_init_blob_end - ctrj_init_blob));
	cj_hash_update(h, k->modules, strlen(k->modules) + 1);
	cj_hash_update(h, order, strlen(order) + 1);
	for (const char *p = order; *p;) {
		const char *nl = strchrnul(p, '\n');
		char src[PATH_MAX * 2];
		snprintf(src, sizeof src, "%s/%.*s", k->modules, (int)(nl - p), p);
		if (stat(src, &st) == 0) {
			cj_hash_update(h, &st.st_size, sizeof st.st_size);
			cj_hash_update(h, &st.st_mtim, sizeof st.st_mtim);
		}
		p = *nl ? nl + 1 : nl;
	}
	cj_hash_final_hex(h, key);
}

int cj_initramfs_get(const char *cache_dir, const struct cj_kernel *k, char *out, size_t outlen,
                     bool *built, struct cj_err *err)
{
	cj_autofree char *order = NULL, *share_order = NULL, *both = NULL;
	char key[65], folder[PATH_MAX], tmp[PATH_MAX + 96];
	struct stat st;

	*built = false;
	if (!(order = initramfs_order(k, cj_initramfs_modules, err)) ||
	    !(share_order = initramfs_order(k, cj_initramfs_share_modules, err)))
		return -1;
	if (asprintf(&both, "%s%s", order, share_order) < 0) {
		both = NULL;
		return cj_fail(err, ENOMEM, "initramfs");
	}
	initramfs_key(k, both, key);
	snprintf(folder, sizeof folder, "%s/initramfs", cache_dir);
	if (cj_mkdir_p(folder, 0700, err) < 0)
		return -1;
	snprintf(out, outlen, "%s/%s.cpio", folder, key);
	if (stat(out, &st) == 0)
		return 0;
	snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", folder, key, (int)getpid());
	if (write_cpio(tmp, k, order, share_order, err) < 0) {
		unlink(tmp);
		return -1;
	}
	/* the first writer wins: a concurrent run's file is never replaced
	 * (runs hold it open and boot snapshots' keys name its inode) */
	if (link(tmp, out) < 0 && errno != EEXIST) {
		int e = errno;
		unlink(tmp);
		return cj_fail(err, e, "store %s", out);
	}
	*built = true;
	unlink(tmp);
	return 0;
}
