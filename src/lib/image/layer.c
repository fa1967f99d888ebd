/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Apply image layers to a directory tree.
 *
 * Containment rule: nothing is ever written outside the tree.
 *   1. Entry names and hard-link targets are cleaned lexically (leading "/"
 *      and "./", empty and "." components dropped). A ".." component is
 *      refused outright: no tool writes one, and it can only mean to leave
 *      the root. The run stops with an error naming the entry.
 *   2. The parent directory of every entry is resolved with openat2() and
 *      RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV: the kernel
 *      resolves each component as if the tree were "/", so a symlink in the
 *      image — absolute (/etc) or relative (../../..) — is followed the way
 *      the guest will follow it, and can never lead out of the tree. A
 *      layer that writes "link/passwd" after "link -> /etc" writes the
 *      image's /etc/passwd, exactly what the guest would see.
 *   3. The last component is never followed: files are created with
 *      O_CREAT|O_EXCL|O_NOFOLLOW after removing whatever was there (never
 *      written through an existing inode, which could be a hard link made by
 *      an earlier entry), metadata is set on the new file's own descriptor
 *      or with AT_SYMLINK_NOFOLLOW, and hard links are made with linkat()
 *      without AT_SYMLINK_FOLLOW, from a target resolved by rule 2.
 *   4. Whiteouts delete with unlinkat() relative to a directory resolved by
 *      rule 2, walking below it with O_NOFOLLOW descriptors and without
 *      recursion (tree.c): a deletion never follows a symlink, and no depth
 *      of tree exhausts the stack.
 * Symlinks themselves are stored as they are: they point wherever the image
 * says, and only the guest, inside its own root, ever follows them.
 *
 * Device nodes: character and block devices (and sockets) are skipped, and
 * counted so the caller can say so once. The guest's /dev is a devtmpfs
 * that the kernel fills; a device node in an image is either redundant or a
 * way to reach hardware the VM should not name. FIFOs are kept.
 *
 * Metadata: numeric owner (names are ignored, as docker does), mode with
 * setuid/setgid/sticky, mtime, and extended attributes — security.capability
 * included, set last because chown() and writes clear it — except
 * security.selinux (a build host's label) and the overlay namespaces
 * (trusted.overlay.*, user.overlay.*), which would steer the guest's
 * overlay filesystem.
 *
 * Budget (a tar bomb: a 1 MiB gzip layer of zeros unpacks to 1 GiB): every
 * entry is charged to the image's budget before anything of it is written,
 * all layers together, and the first entry past it stops the unpack with
 * one line naming the budget. Bytes are the entries' declared sizes, that
 * is apparent sizes: a sparse file counts in full, because every later
 * reader (mke2fs -d, e2fsck, the guest's own tools) sees that length, and
 * a file that a later layer replaces or deletes still counts, because it
 * was written. Entries include whiteouts and skipped devices (each costs a
 * header's worth of work) and the directories an entry's path creates.
 * The uncompressed tar stream has a bound too, so that data nobody writes
 * (a device's, a whiteout's) or bloated headers cannot make the reader
 * inflate gigabytes either.
 */
#include "layer.h"

#include "image/tree.h"
#include "util/interrupt.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- pure helpers -------------------------------------------------------------- */

int cj_layer_clean_path(const char *name, char *out, size_t outlen)
{
	size_t o = 0;
	const char *p = name;

	if (outlen == 0)
		return -1;
	while (*p) {
		const char *e;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchr(p, '/');
		n = e ? (size_t)(e - p) : strlen(p);
		if (n == 1 && p[0] == '.') {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -1;
		if (o + (o ? 1 : 0) + n + 1 > outlen)
			return -1;
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
	return 0;
}

enum cj_whiteout cj_layer_whiteout(const char *clean, char *target, size_t len)
{
	const char *slash = strrchr(clean, '/');
	const char *base = slash ? slash + 1 : clean;
	size_t dirlen = slash ? (size_t)(slash - clean) : 0;
	const char *name;
	int n;

	if (strncmp(base, ".wh.", 4) != 0)
		return CJ_WH_NONE;
	if (strcmp(base, ".wh..wh..opq") == 0) {
		if (dirlen >= len)
			return CJ_WH_INVALID;
		memcpy(target, clean, dirlen);
		target[dirlen] = '\0';
		return CJ_WH_OPAQUE;
	}
	if (strncmp(base, ".wh..wh.", 8) == 0)
		return CJ_WH_META;
	name = base + 4;
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return CJ_WH_INVALID;
	n = dirlen ? snprintf(target, len, "%.*s/%s", (int)dirlen, clean, name)
	           : snprintf(target, len, "%s", name);
	if (n < 0 || (size_t)n >= len)
		return CJ_WH_INVALID;
	return CJ_WH_FILE;
}

/* ---- the budget ------------------------------------------------------------------- */

void cj_layer_format_size(uint64_t bytes, char *out, size_t len)
{
	static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
	unsigned u = 0;

	while (u + 1 < sizeof unit / sizeof unit[0] && bytes >> (10 * (u + 1)))
		u++;
	if (u == 0 || bytes % (1ull << (10 * u)) == 0)
		snprintf(out, len, "%llu %s", (unsigned long long)(bytes >> (10 * u)), unit[u]);
	else
		snprintf(out, len, "%.1f %s", (double)bytes / (double)(1ull << (10 * u)), unit[u]);
}

static int over_bytes(const struct cj_layer_budget *b, struct cj_err *err)
{
	char size[32];

	cj_layer_format_size(b->max_bytes, size, sizeof size);
	return cj_fail(err, 0, "the image unpacks to more than %s, its size budget (%s)", size,
	               b->explain_bytes ? b->explain_bytes : "");
}

/* Charge n entries. */
static int budget_entries(struct cj_layer_budget *b, uint64_t n, struct cj_err *err)
{
	if (!b)
		return 0;
	b->entries += n;
	if (b->max_entries && b->entries > b->max_entries)
		return cj_fail(err, 0,
		               "the image has more than %llu files, directories and other entries, "
		               "its budget (%s)",
		               (unsigned long long)b->max_entries,
		               b->explain_entries ? b->explain_entries : "");
	return 0;
}

/* Charge an entry whose header was just read, before any of it is
 * written: its data at the size it declares, and the tar stream read so
 * far (this layer's position plus the layers before). */
static int budget_header(struct cj_layer_budget *b, struct archive *a, struct archive_entry *e,
                         struct cj_err *err)
{
	la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
	la_int64_t pos = archive_filter_bytes(a, 0);

	if (!b)
		return 0;
	b->bytes += size > 0 ? (uint64_t)size : 0;
	if (b->max_bytes && b->bytes > b->max_bytes)
		return over_bytes(b, err);
	if (b->max_stream && pos > 0 && b->stream + (uint64_t)pos > b->max_stream) {
		char size_text[32];
		cj_layer_format_size(b->max_stream, size_text, sizeof size_text);
		return cj_fail(err, 0,
		               "the image's layers inflate to more than %s of tar data, more than "
		               "its size budget allows (%s)",
		               size_text, b->explain_bytes ? b->explain_bytes : "");
	}
	return budget_entries(b, 1, err);
}

/* ---- resolution inside the root ---------------------------------------------------- */

static int openat2_dir(int root_fd, const char *path)
{
	struct open_how how = {
	    .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	long r;
	int tries = 0;

	/* EAGAIN: a concurrent rename in the tree; nothing else touches it. */
	do
		r = syscall(SYS_openat2, root_fd, path[0] ? path : ".", &how, sizeof how);
	while (r < 0 && errno == EAGAIN && ++tries < 16);
	return (int)r;
}

static int openat2_fail(struct cj_err *err, const char *rel)
{
	if (errno == ENOSYS)
		return cj_fail(err, 0, "unpacking images needs openat2() (Linux 5.6 or later)");
	return cj_fail(err, errno, "directory '/%s' in the image", rel);
}

/* cj_open_in_root, counting in *made the directories it creates. */
static int open_in_root(int root_fd, const char *rel, bool create, uint64_t *made,
                        struct cj_err *err)
{
	char buf[PATH_MAX];
	int fd = openat2_dir(root_fd, rel), prev;
	size_t len;

	if (fd >= 0)
		return fd;
	if (errno != ENOENT || !create)
		return openat2_fail(err, rel);
	/* Make the missing components one by one, each resolved from the
	 * root again, so a symlink met on the way is followed inside it. */
	len = strlen(rel);
	if (len >= sizeof buf)
		return cj_fail(err, ENAMETOOLONG, "path '/%s'", rel);
	memcpy(buf, rel, len + 1);
	prev = openat2_dir(root_fd, "");
	if (prev < 0)
		return openat2_fail(err, "");
	for (size_t i = 0; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		fd = openat2_dir(root_fd, buf);
		if (fd < 0 && errno == ENOENT) {
			const char *comp = strrchr(buf, '/');
			comp = comp ? comp + 1 : buf;
			if (mkdirat(prev, comp, 0755) < 0 && errno != EEXIST) {
				int e = errno;
				close(prev);
				return cj_fail(err, e, "create directory '/%s' in the image", buf);
			}
			if (made)
				(*made)++;
			fd = openat2_dir(root_fd, buf);
		}
		if (fd < 0) {
			int e = errno;
			close(prev);
			errno = e;
			return openat2_fail(err, buf);
		}
		close(prev);
		prev = fd;
		buf[i] = saved;
	}
	return prev;
}

int cj_open_in_root(int root_fd, const char *rel, bool create, struct cj_err *err)
{
	return open_in_root(root_fd, rel, create, NULL, err);
}

/* ---- paths created by the current layer -------------------------------------------- */

/* An opaque whiteout hides what lower layers put in a directory, not what
 * its own layer puts there, whatever the order of the entries in the tar;
 * so the layer remembers every path it created, with their ancestors. */
struct pathset {
	char **slot;
	size_t cap, n;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static bool pathset_has(const struct pathset *ps, const char *p)
{
	if (!ps->cap)
		return false;
	for (size_t i = fnv1a(p) & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
		if (!ps->slot[i])
			return false;
		if (strcmp(ps->slot[i], p) == 0)
			return true;
	}
}

static int pathset_insert(struct pathset *ps, char *owned)
{
	if ((ps->n + 1) * 2 > ps->cap) {
		size_t ncap = ps->cap ? ps->cap * 2 : 256;
		char **ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return -1;
		for (size_t i = 0; i < ps->cap; i++) {
			if (!ps->slot[i])
				continue;
			size_t j = fnv1a(ps->slot[i]) & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = ps->slot[i];
		}
		free(ps->slot);
		ps->slot = ns;
		ps->cap = ncap;
	}
	size_t i = fnv1a(owned) & (ps->cap - 1);
	while (ps->slot[i])
		i = (i + 1) & (ps->cap - 1);
	ps->slot[i] = owned;
	ps->n++;
	return 0;
}

/* Add p and each of its ancestors. */
static int pathset_add(struct pathset *ps, const char *p)
{
	size_t len = strlen(p);

	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char *prefix = strndup(p, i);
		if (!prefix)
			return -1;
		if (pathset_has(ps, prefix)) {
			free(prefix);
			continue;
		}
		if (pathset_insert(ps, prefix) < 0) {
			free(prefix);
			return -1;
		}
	}
	return 0;
}

static void pathset_free(struct pathset *ps)
{
	for (size_t i = 0; i < ps->cap; i++)
		free(ps->slot[i]);
	free(ps->slot);
	memset(ps, 0, sizeof *ps);
}

/* ---- deletion ------------------------------------------------------------------- */

/* Opaque directory: remove every entry that the current layer did not
 * create; descend into the directories it did (a lower layer may have
 * filled them too). The walk and the removals are iterative (tree.c): a
 * chain of directories as deep as a tar name allows costs heap, not stack. */
struct opaque {
	const char *prefix; /* the opaque directory's cleaned path */
	const struct pathset *seen;
	char path[PATH_MAX];
};

static int opaque_visit(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct opaque *o = ctx;
	int n;

	if (e->depth == 0)
		return CJ_TREE_DESCEND;
	n = snprintf(o->path, sizeof o->path, "%s%s%s", o->prefix, o->prefix[0] ? "/" : "",
	             e->path);
	/* A path too long for a tar name cannot be one this layer created. */
	if (n >= 0 && (size_t)n < sizeof o->path && pathset_has(o->seen, o->path))
		return CJ_TREE_DESCEND;
	if (cj_tree_remove_at(e->dirfd, e->name) < 0)
		return cj_fail(err, errno, "remove '/%.200s' (opaque whiteout)", o->path);
	return CJ_TREE_SKIP;
}

static int opaque_clear(int dfd, const char *prefix, const struct pathset *seen, struct cj_err *err)
{
	struct opaque *o = malloc(sizeof *o);
	int r;

	if (!o)
		return cj_fail(err, ENOMEM, "opaque directory");
	o->prefix = prefix;
	o->seen = seen;
	r = cj_tree_walk(dfd, CJ_TREE_MAX_DEPTH, opaque_visit, NULL, o, err);
	free(o);
	if (r < 0)
		return cj_err_wrap(err, "opaque whiteout of '/%.200s'", prefix);
	return 0;
}

/* ---- entries ------------------------------------------------------------------ */

struct dirtime {
	char *path;
	struct timespec mtime;
};

struct layer_state {
	int root_fd;
	const struct cj_layer_opts *opts;
	struct cj_layer_stats *st;
	struct pathset seen;
	struct dirtime *dirtimes; /* directory mtimes, set once the layer is done */
	size_t ndirtimes, capdirtimes;
	uint64_t xattrs_skipped;
};

static bool xattr_wanted(const char *name)
{
	if (strcmp(name, "security.selinux") == 0)
		return false;
	if (strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0)
		return false;
	return strncmp(name, "user.", 5) == 0 || strncmp(name, "security.", 9) == 0 ||
	       strncmp(name, "trusted.", 8) == 0 || strcmp(name, "system.posix_acl_access") == 0 ||
	       strcmp(name, "system.posix_acl_default") == 0;
}

static int set_xattrs(struct layer_state *ls, struct archive_entry *e, int fd, const char *lpath,
                      const char *clean, struct cj_err *err)
{
	const char *name;
	const void *value;
	size_t size;

	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		int r;
		if (!name || !xattr_wanted(name))
			continue;
		r = fd >= 0 ? fsetxattr(fd, name, value, size, 0)
		            : lsetxattr(lpath, name, value, size, 0);
		if (r == 0)
			continue;
		/* Unsupported by the cache's filesystem (or on a symlink): say so
		 * once at the end rather than refusing the image. */
		if (errno == ENOTSUP || errno == EOPNOTSUPP || (fd < 0 && errno == EPERM)) {
			ls->xattrs_skipped++;
			continue;
		}
		return cj_fail(err, errno, "set %s on '/%s'", name, clean);
	}
	return 0;
}

static int owner_of(struct archive_entry *e, uid_t *uid, gid_t *gid, const char *clean,
                    struct cj_err *err)
{
	la_int64_t u = archive_entry_uid(e), g = archive_entry_gid(e);

	if (u < 0 || u >= (la_int64_t)UINT32_MAX || g < 0 || g >= (la_int64_t)UINT32_MAX)
		return cj_fail(err, 0, "entry '%s' has an invalid owner %lld:%lld", clean,
		               (long long)u, (long long)g);
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}

static struct timespec mtime_of(struct archive_entry *e)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 0};

	if (archive_entry_mtime_is_set(e)) {
		ts.tv_sec = archive_entry_mtime(e);
		ts.tv_nsec = archive_entry_mtime_nsec(e);
		if (ts.tv_nsec < 0 || ts.tv_nsec > 999999999)
			ts.tv_nsec = 0;
	}
	return ts;
}

/* Owner, mode, xattrs (after chown, which clears file capabilities), times,
 * on the entry's own descriptor. */
static int set_meta_fd(struct layer_state *ls, struct archive_entry *e, int fd, const char *clean,
                       bool is_dir, struct cj_err *err)
{
	uid_t uid;
	gid_t gid;

	if (owner_of(e, &uid, &gid, clean, err) < 0)
		return -1;
	if (ls->opts->set_owner && fchown(fd, uid, gid) < 0)
		return cj_fail(err, errno, "chown '/%s'", clean);
	if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
		return cj_fail(err, errno, "chmod '/%s'", clean);
	if (set_xattrs(ls, e, fd, NULL, clean, err) < 0)
		return -1;
	if (is_dir) {
		/* Later entries change a directory's mtime: set it at the end. */
		if (ls->ndirtimes == ls->capdirtimes) {
			size_t ncap = ls->capdirtimes ? ls->capdirtimes * 2 : 64;
			struct dirtime *nd = realloc(ls->dirtimes, ncap * sizeof *nd);
			if (!nd)
				return cj_fail(err, ENOMEM, "layer");
			ls->dirtimes = nd;
			ls->capdirtimes = ncap;
		}
		if (!(ls->dirtimes[ls->ndirtimes].path = strdup(clean)))
			return cj_fail(err, ENOMEM, "layer");
		ls->dirtimes[ls->ndirtimes++].mtime = mtime_of(e);
		return 0;
	}
	struct timespec ts[2] = {mtime_of(e), mtime_of(e)};
	if (futimens(fd, ts) < 0)
		return cj_fail(err, errno, "set times of '/%s'", clean);
	return 0;
}

static int write_data(struct archive *a, struct archive_entry *e, int fd, const char *clean,
                      struct cj_err *err)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &size, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return cj_fail(err, 0, "read '%s': %s", clean, archive_error_string(a));
		if (off < 0)
			return cj_fail(err, 0, "read '%s': bad offset", clean);
		/* The budget charged the declared size: hold the data to it. */
		if (archive_entry_size_is_set(e) &&
		    (uint64_t)off + size > (uint64_t)archive_entry_size(e))
			return cj_fail(
			    err, 0, "entry '%s' holds more data than its header declares", clean);
		for (const char *p = buf; size;) {
			ssize_t w = pwrite(fd, p, size, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return cj_fail(err, w < 0 ? errno : EIO, "write '/%s'", clean);
			p += w;
			size -= (size_t)w;
			off += w;
		}
	}
	/* A sparse file's trailing hole. */
	if (archive_entry_size_is_set(e) && ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
		return cj_fail(err, errno, "size '/%s'", clean);
	return 0;
}

static int split(const char *clean, char *dir, size_t len, const char **base)
{
	const char *slash = strrchr(clean, '/');
	size_t dlen = slash ? (size_t)(slash - clean) : 0;

	if (dlen >= len)
		return -1;
	memcpy(dir, clean, dlen);
	dir[dlen] = '\0';
	*base = slash ? slash + 1 : clean;
	return 0;
}

/* A layer unpacked alone cannot reach a file of the layers below it (a
 * hard link to one, or a path through a symlink into one): EXDEV tells the
 * caller to flatten the image. */
static int lower_link(const char *clean, const char *target, struct cj_err *err)
{
	return cj_fail(err, EXDEV, "'/%s' reaches '/%s' in a lower layer", clean, target);
}

static int apply_hardlink(struct layer_state *ls, int parent, const char *base, const char *clean,
                          const char *link, struct cj_err *err)
{
	char tclean[PATH_MAX], tdir[PATH_MAX];
	const char *tbase;
	cj_autoclose int tparent = -1;

	if (cj_layer_clean_path(link, tclean, sizeof tclean) < 0)
		return cj_fail(err, 0,
		               "entry '%s' is a hard link to '%s', outside the image: refused",
		               clean, link);
	if (!tclean[0] || split(tclean, tdir, sizeof tdir, &tbase) < 0)
		return cj_fail(err, 0, "entry '%s' is a hard link to '%s': refused", clean, link);
	if (strcmp(tclean, clean) == 0)
		return 0; /* a link to itself: already there */
	tparent = cj_open_in_root(ls->root_fd, tdir, false, err);
	if (tparent < 0 && ls->opts->overlay_whiteouts && err->errnum == ENOENT)
		return lower_link(clean, tclean, err);
	if (tparent < 0)
		return cj_err_wrap(err, "hard link '%s' -> '%s'", clean, link);
	if (linkat(tparent, tbase, parent, base, 0) < 0) {
		if (errno == ENOENT && ls->opts->overlay_whiteouts)
			return lower_link(clean, tclean, err);
		return cj_fail(err, errno, "hard link '/%s' -> '/%s'", clean, tclean);
	}
	return 0;
}

/* The entry names the root itself: only its metadata. */
static int apply_root(struct layer_state *ls, struct archive_entry *e, struct cj_err *err)
{
	cj_autoclose int fd = -1;

	if (archive_entry_filetype(e) != AE_IFDIR)
		return cj_fail(err, 0, "entry '%s' names the root but is not a directory",
		               archive_entry_pathname(e));
	fd = openat(ls->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cj_fail(err, errno, "open the image root");
	return set_meta_fd(ls, e, fd, "", true, err);
}

/* Make room for the entry at base in parent: whatever is there goes,
 * except a directory that a directory entry updates (*exists stays true).
 * Returns 1 when the entry is already in place (a hard link to itself),
 * 0 when it is to be created, -1 on error. */
static int make_room(int parent, const char *base, const char *clean, mode_t type,
                     const char *hardlink, bool *exists, struct cj_err *err)
{
	struct stat cur;

	*exists = fstatat(parent, base, &cur, AT_SYMLINK_NOFOLLOW) == 0;
	if (!*exists || (type == AE_IFDIR && !hardlink && S_ISDIR(cur.st_mode)))
		return 0;
	if (hardlink) {
		char tclean[PATH_MAX];
		if (cj_layer_clean_path(hardlink, tclean, sizeof tclean) == 0 &&
		    strcmp(tclean, clean) == 0)
			return 1;
	}
	if (cj_tree_remove_at(parent, base) < 0)
		return cj_fail(err, errno, "replace '/%s'", clean);
	*exists = false;
	return 0;
}

/* Create a directory (kept when it exists), a regular file or a FIFO, and
 * open it for its data and metadata; never through an existing inode. */
static int open_new_node(int parent, const char *base, mode_t type, bool exists, const char *clean,
                         struct cj_err *err)
{
	int fd;

	switch (type) {
	case AE_IFDIR:
		if (!exists && mkdirat(parent, base, 0700) < 0)
			return cj_fail(err, errno, "create directory '/%s'", clean);
		fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		return fd >= 0 ? fd : cj_fail(err, errno, "open directory '/%s'", clean);
	case AE_IFIFO:
		if (mknodat(parent, base, S_IFIFO | 0600, 0) < 0)
			return cj_fail(err, errno, "create fifo '/%s'", clean);
		fd = openat(parent, base, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
		return fd >= 0 ? fd : cj_fail(err, errno, "open fifo '/%s'", clean);
	default: /* AE_IFREG */
		fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		            0600);
		return fd >= 0 ? fd : cj_fail(err, errno, "create '/%s'", clean);
	}
}

/* A symlink has no descriptor of its own: its metadata is set through the
 * parent, the last component never followed. */
static int apply_symlink(struct layer_state *ls, struct archive_entry *e, int parent,
                         const char *base, const char *clean, struct cj_err *err)
{
	const char *target = archive_entry_symlink(e);
	char lpath[64 + NAME_MAX];
	struct timespec ts[2] = {mtime_of(e), mtime_of(e)};
	uid_t uid;
	gid_t gid;

	if (!target || !target[0])
		return cj_fail(err, 0, "entry '%s' is a symlink without a target", clean);
	if (symlinkat(target, parent, base) < 0)
		return cj_fail(err, errno, "create symlink '/%s'", clean);
	if (owner_of(e, &uid, &gid, clean, err) < 0)
		return -1;
	if (ls->opts->set_owner && fchownat(parent, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return cj_fail(err, errno, "chown '/%s'", clean);
	/* lsetxattr needs a path: the parent's descriptor names the
	 * directory exactly, and the last component is not followed. */
	snprintf(lpath, sizeof lpath, "/proc/self/fd/%d/%s", parent, base);
	if (set_xattrs(ls, e, -1, lpath, clean, err) < 0)
		return -1;
	if (utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return cj_fail(err, errno, "set times of '/%s'", clean);
	return 0;
}

static int apply_entry(struct layer_state *ls, struct archive *a, struct archive_entry *e,
                       const char *clean, struct cj_err *err)
{
	mode_t type = archive_entry_filetype(e);
	const char *hardlink = archive_entry_hardlink(e);
	char dir[PATH_MAX];
	const char *base;
	cj_autoclose int parent = -1;
	cj_autoclose int fd = -1;
	uint64_t made = 0;
	bool exists;
	int r;

	if (!clean[0])
		return apply_root(ls, e, err);
	if (!hardlink && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK)) {
		ls->st->skipped_devices++;
		return 0;
	}
	if (!hardlink && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK &&
	    type != AE_IFIFO)
		return cj_fail(err, 0, "entry '%s' has an unknown file type", clean);
	if (split(clean, dir, sizeof dir, &base) < 0)
		return cj_fail(err, ENAMETOOLONG, "entry '%s'", clean);
	parent = open_in_root(ls->root_fd, dir, true, &made, err);
	if (parent < 0 && ls->opts->overlay_whiteouts && err->errnum == ENOENT)
		/* a symlink into the layers below (etc -> /etc, then etc/x) */
		return lower_link(clean, dir, err);
	if (parent < 0)
		return cj_err_wrap(err, "entry '%s'", clean);
	if (made && budget_entries(ls->opts->budget, made, err) < 0)
		return -1;
	r = make_room(parent, base, clean, type, hardlink, &exists, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (hardlink)
		return apply_hardlink(ls, parent, base, clean, hardlink, err);
	if (type == AE_IFLNK)
		return apply_symlink(ls, e, parent, base, clean, err);
	fd = open_new_node(parent, base, type, exists, clean, err);
	if (fd < 0)
		return -1;
	if (type == AE_IFREG && write_data(a, e, fd, clean, err) < 0)
		return -1;
	return set_meta_fd(ls, e, fd, clean, type == AE_IFDIR, err);
}

/* A whiteout kept for the guest's overlayfs: the layer's tree gets the
 * overlay's own marks, in directories made for them when the layer has
 * none (which the budget charges). trusted.overlay.* from the image itself
 * is dropped (set_xattrs): only a whiteout entry makes these. */
static int overlay_whiteout(struct layer_state *ls, enum cj_whiteout kind, const char *target,
                            const char *clean, struct cj_err *err)
{
	char dir[PATH_MAX];
	const char *base;
	uint64_t made = 0;
	cj_autoclose int fd = -1;
	cj_autoclose int dfd = -1;

	if (kind == CJ_WH_OPAQUE) {
		fd = open_in_root(ls->root_fd, target, true, &made, err);
		if (fd < 0 || (made && budget_entries(ls->opts->budget, made, err) < 0))
			return cj_err_wrap(err, "opaque whiteout '%s'", clean);
		dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
			return cj_fail(err, errno, "mark '/%s' opaque", target);
		return 0;
	}
	if (pathset_has(&ls->seen, target))
		return 0; /* whiteouts apply to lower layers only */
	if (split(target, dir, sizeof dir, &base) < 0)
		return cj_fail(err, ENAMETOOLONG, "whiteout '%s'", clean);
	fd = open_in_root(ls->root_fd, dir, true, &made, err);
	if (fd < 0 || (made && budget_entries(ls->opts->budget, made, err) < 0))
		return cj_err_wrap(err, "whiteout '%s'", clean);
	if (cj_tree_remove_at(fd, base) < 0 || mknodat(fd, base, S_IFCHR | 0600, makedev(0, 0)) < 0)
		return cj_fail(err, errno, "whiteout '/%s'", target);
	return 0;
}

static int apply_whiteout(struct layer_state *ls, enum cj_whiteout kind, const char *target,
                          const char *clean, struct cj_err *err)
{
	struct cj_err ignored = {0};
	char dir[PATH_MAX];
	const char *base;
	cj_autoclose int fd = -1;
	cj_autoclose int dfd = -1;

	ls->st->whiteouts++;
	if (ls->opts->overlay_whiteouts)
		return overlay_whiteout(ls, kind, target, clean, err);
	if (kind == CJ_WH_OPAQUE) {
		fd = cj_open_in_root(ls->root_fd, target, false, &ignored);
		if (fd < 0)
			return 0; /* nothing below it to hide */
		dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return cj_fail(err, errno, "open '/%s' (opaque whiteout)", target);
		return opaque_clear(dfd, target, &ls->seen, err);
	}
	if (pathset_has(&ls->seen, target))
		return 0; /* whiteouts apply to lower layers only */
	if (split(target, dir, sizeof dir, &base) < 0)
		return cj_fail(err, ENAMETOOLONG, "whiteout '%s'", clean);
	fd = cj_open_in_root(ls->root_fd, dir, false, &ignored);
	if (fd < 0)
		return 0; /* its directory is not there: nothing to delete */
	if (cj_tree_remove_at(fd, base) < 0)
		return cj_fail(err, errno, "delete '/%s' (whiteout)", target);
	return 0;
}

/* Best effort: times are cosmetic. */
static void set_dir_time(int root_fd, const struct dirtime *dt)
{
	struct cj_err ignored = {0};
	struct timespec ts[2] = {dt->mtime, dt->mtime};
	cj_autoclose int fd = cj_open_in_root(root_fd, dt->path, false, &ignored);
	cj_autoclose int dfd = -1;

	if (fd < 0)
		return;
	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		futimens(dfd, ts);
}

struct archive *cj_layer_reader_new(void)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_format_empty(a) != ARCHIVE_OK ||
	    archive_read_support_filter_gzip(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_zstd(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_xz(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_bzip2(a) < ARCHIVE_WARN) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

int cj_layer_apply(int root_fd, struct archive *a, const struct cj_layer_opts *opts,
                   struct cj_layer_stats *st, struct cj_err *err)
{
	struct layer_state ls = {.root_fd = root_fd, .opts = opts, .st = st};
	struct archive_entry *e;
	char clean[PATH_MAX], target[PATH_MAX];
	int r = 0;

	for (;;) {
		const char *name;
		int hr = archive_read_next_header(a, &e);

		if (hr == ARCHIVE_EOF)
			break;
		if (hr != ARCHIVE_OK && hr != ARCHIVE_WARN) {
			r = cj_fail(err, 0, "%s", archive_error_string(a));
			break;
		}
		st->entries++;
		if (cj_interrupted()) {
			r = cj_fail(err, 0, "interrupted");
			break;
		}
		if ((r = budget_header(opts->budget, a, e, err)) < 0)
			break;
		name = archive_entry_pathname(e);
		if (!name) {
			r = cj_fail(err, 0, "entry %llu has no readable name",
			            (unsigned long long)st->entries);
			break;
		}
		if (cj_layer_clean_path(name, clean, sizeof clean) < 0) {
			r = strlen(name) >= sizeof clean
			        ? cj_fail(err, 0, "entry '%.100s...' has a name too long", name)
			        : cj_fail(err, 0,
			                  "entry '%s' has a '..' component: refusing to write "
			                  "outside the image root",
			                  name);
			break;
		}
		if (opts->whiteouts) {
			enum cj_whiteout kind = cj_layer_whiteout(clean, target, sizeof target);
			if (kind == CJ_WH_INVALID) {
				r = cj_fail(err, 0, "entry '%s' is not a valid whiteout", name);
				break;
			}
			if (kind == CJ_WH_META)
				continue;
			if (kind != CJ_WH_NONE) {
				if ((r = apply_whiteout(&ls, kind, target, clean, err)) < 0)
					break;
				continue;
			}
		}
		if ((r = apply_entry(&ls, a, e, clean, err)) < 0)
			break;
		if (pathset_add(&ls.seen, clean) < 0) {
			r = cj_fail(err, ENOMEM, "layer");
			break;
		}
	}
	if (opts->budget && archive_filter_bytes(a, 0) > 0)
		opts->budget->stream += (uint64_t)archive_filter_bytes(a, 0);
	/* Directory times last: creating entries changed them. In archive
	 * order, so a directory listed twice gets its last entry's time. */
	for (size_t i = 0; r == 0 && i < ls.ndirtimes; i++)
		set_dir_time(root_fd, &ls.dirtimes[i]);
	if (r == 0 && ls.xattrs_skipped)
		cj_notice("notice: %llu extended attribute(s) of the image could not be kept "
		          "(not supported where the image is unpacked)",
		          (unsigned long long)ls.xattrs_skipped);
	for (size_t i = 0; i < ls.ndirtimes; i++)
		free(ls.dirtimes[i].path);
	free(ls.dirtimes);
	pathset_free(&ls.seen);
	return r;
}
