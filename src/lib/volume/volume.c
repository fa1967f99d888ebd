/* SPDX-License-Identifier: Apache-2.0 */
#include "volume.h"

#include "image/base.h"
#include "jail/tool.h"
#include "spec/spec.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MIN_VOLUME_SIZE (16ull << 20)
/* ldd's answers for the jailed tools, kept where the VMM jail keeps its
 * own: the default run base (tmpfs); absent, ldd runs each time. */
#define TOOL_CACHE_DIR CJ_DEFAULT_RUN_BASE

void cj_volume_human(uint64_t bytes, char *out, size_t len)
{
	const char *units = "BKMGT";
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f%c", v, units[u]);
}

void cj_volume_spec_free(struct cj_volume_spec *v)
{
	free(v->source);
	free(v->guest_path);
	memset(v, 0, sizeof *v);
}

int cj_volume_spec_parse(const char *arg, struct cj_volume_spec *out, struct cj_err *err)
{
	char *copy = strdup(arg), *save = NULL, *field;
	int n = 0;

	memset(out, 0, sizeof *out);
	if (!copy)
		return cj_fail(err, ENOMEM, "volume");
	for (field = strtok_r(copy, ":", &save); field; field = strtok_r(NULL, ":", &save), n++) {
		if (n == 0) {
			out->source = strdup(field);
		} else if (n == 1) {
			if (field[0] != '/') {
				cj_fail(err, 0, "volume '%s': the guest path '%s' must be absolute",
				        arg, field);
				goto fail;
			}
			out->guest_path = strdup(field);
		} else if (strcmp(field, "ro") == 0) {
			out->read_only = true;
		} else if (strcmp(field, "rw") == 0) {
			out->read_only = false;
		} else if (strncmp(field, "size=", 5) == 0) {
			if (cj_parse_size(field + 5, 1ull << 20, &out->size) < 0 ||
			    out->size < MIN_VOLUME_SIZE) {
				cj_fail(
				    err, 0,
				    "volume '%s': size '%s' is invalid: give at least 16M, e.g. "
				    "size=2G",
				    arg, field + 5);
				goto fail;
			}
		} else {
			cj_fail(err, 0, "volume '%s': unknown option '%s' (use ro, rw or size=N)",
			        arg, field);
			goto fail;
		}
	}
	if (n < 2 || !out->source || !out->source[0]) {
		cj_fail(err, 0, "volume '%s': expected SOURCE:/guest/path[:ro][:size=N]", arg);
		goto fail;
	}
	free(copy);
	return 0;
fail:
	free(copy);
	cj_volume_spec_free(out);
	return -1;
}

bool cj_volume_name_valid(const char *s)
{
	if (!isalnum((unsigned char)s[0]))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return strlen(s) < 200;
}

static int make_filesystem(const char *path, const char *label, struct cj_err *err)
{
	char lbl[17];
	char *argv[] = {"mke2fs",     "-q",   "-F",
	                "-t",         "ext4", "-L",
	                lbl,          "-E",   "lazy_itable_init=1,lazy_journal_init=1",
	                (char *)path, NULL};

	snprintf(lbl, sizeof lbl, "%s", label);
	if (cj_run(argv, NULL, err) < 0)
		return cj_err_wrap(err, "create a filesystem on %s", path);
	return 0;
}

/* e2fsck -p: replays the journal after an unclean stop, fixes what is safe
 * to fix; 0-3 mean the filesystem is usable now. The guest wrote this
 * filesystem: e2fsck reads it jailed (jail/tool.h), seeing only the image. */
static int check_filesystem(const struct cj_volume *v, int fd, bool force, struct cj_err *err)
{
	char *argv[] = {"e2fsck", "-p", CJ_TOOL_IMAGE, NULL, NULL};
	struct cj_tool tool = {.argv = argv,
	                       .image_fd = fd,
	                       .cache_dir = TOOL_CACHE_DIR,
	                       .uid = v->tool_uid,
	                       .gid = v->tool_gid};
	struct cj_err e = {0};
	int code;

	if (force) { /* resize2fs insists on a full check after the last mount */
		argv[2] = "-f";
		argv[3] = CJ_TOOL_IMAGE;
	}
	if (cj_tool_run(&tool, NULL, &code, &e) < 0) {
		*err = e;
		return cj_err_wrap(err, "volume %s: check its filesystem", v->name);
	}
	if (code >= 0 && code < 4)
		return 0;
	return cj_fail(err, 0,
	               "volume %s: e2fsck found errors it cannot fix alone (%s); run "
	               "'e2fsck %s' by hand",
	               v->name, e.msg, v->path);
}

static int grow(struct cj_volume *v, int fd, uint64_t current, uint64_t want, bool is_dev,
                struct cj_err *err)
{
	char a[32], b[32];
	char *argv[] = {"resize2fs", CJ_TOOL_IMAGE, NULL};
	struct cj_tool tool = {.argv = argv,
	                       .image_fd = fd,
	                       .cache_dir = TOOL_CACHE_DIR,
	                       .uid = v->tool_uid,
	                       .gid = v->tool_gid};
	int code;

	if (want == current)
		return 0;
	cj_volume_human(current, a, sizeof a);
	cj_volume_human(want, b, sizeof b);
	if (want < current)
		return cj_fail(err, 0, "volume %s is %s; shrinking it to %s is not supported",
		               v->name, a, b);
	if (v->read_only)
		return cj_fail(err, 0, "volume %s is attached read-only and cannot grow to %s",
		               v->name, b);
	if (is_dev)
		return cj_fail(err, 0, "volume %s is a %s block device and cannot grow to %s",
		               v->name, a, b);
	if (ftruncate(fd, (off_t)want) < 0)
		return cj_fail(err, errno, "grow %s to %s", v->path, b);
	if (check_filesystem(v, fd, true, err) < 0)
		return -1;
	if (cj_tool_run(&tool, NULL, &code, err) < 0 || code != 0)
		return cj_err_wrap(err, "grow volume %s to %s", v->name, b);
	return 0;
}

/* Lock for this VM: exclusive for read-write; read-only attaches share.
 * Returns 1 with an exclusive lock (safe to check and grow), 0 with a
 * shared one. */
static int lock_volume(struct cj_volume *v, int fd, struct cj_err *err)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		return 1;
	}
	if (errno != EWOULDBLOCK)
		return cj_fail(err, errno, "lock volume %s", v->name);
	if (v->read_only && flock(fd, LOCK_SH | LOCK_NB) == 0)
		return 0;
	return cj_fail(err, 0,
	               "volume %s is in use by another VM%s; stop that VM or attach this one "
	               "read-only (:ro)",
	               v->name, v->read_only ? " that writes to it" : "");
}

/* Put tmp in place as path, never replacing a file there: 0, or -1 with
 * errno (EEXIST: there is one). */
static int publish(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL) /* EINVAL: a filesystem without RENAME_NOREPLACE */
		return -1;
	if (link(tmp, path) < 0)
		return -1;
	unlink(tmp);
	return 0;
}

/* A new volume is made under a temporary name next to it, recorded in the
 * run's undo log first, and renamed into place once it holds a
 * filesystem: a run killed meanwhile leaves no half-made volume, and gc
 * removes the temporary file. Returns the new volume's fd, locked
 * exclusively; -2 when another run put a volume there meanwhile. */
static int create_volume(struct cj_volume *v, uint64_t size, struct cj_undo *undo,
                         struct cj_err *err)
{
	char tmp[PATH_MAX];
	const char *slash = strrchr(v->path, '/');
	uint8_t rnd[4];
	cj_autoclose int fd = -1;
	int e;

	if (!slash || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return cj_fail(err, slash ? errno : EINVAL, "create volume %s", v->path);
	if ((size_t)snprintf(tmp, sizeof tmp, "%.*s/.%s.new-%02x%02x%02x%02x",
	                     (int)(slash - v->path), v->path, slash + 1, rnd[0], rnd[1], rnd[2],
	                     rnd[3]) >= sizeof tmp)
		return cj_fail(err, ENAMETOOLONG, "create volume %s", v->path);
	json_object *entry = json_object_new_object();
	json_object_object_add(entry, "path", json_object_new_string(tmp));
	if (cj_undo_push(undo, "volume.new", entry, err) < 0)
		return -1;
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cj_fail(err, errno, "create volume %s", v->path);
	if (flock(fd, LOCK_EX) < 0 || ftruncate(fd, (off_t)size) < 0) {
		e = errno;
		unlink(tmp);
		return cj_fail(err, e, "create volume %s", v->path);
	}
	if (make_filesystem(tmp, v->name, err) < 0) {
		unlink(tmp);
		return -1;
	}
	if (publish(tmp, v->path) < 0) {
		e = errno;
		unlink(tmp);
		return e == EEXIST ? -2 : cj_fail(err, e, "create volume %s", v->path);
	}
	e = fd;
	fd = -1;
	return e;
}

int cj_volume_undo(json_object *entry, bool verbose)
{
	const char *kind = cj_undo_str(entry, "kind"), *path = cj_undo_str(entry, "path");
	const char *name = path ? strrchr(path, '/') : NULL;

	(void)verbose;
	/* only ever a temporary file create_volume names */
	if (!kind || strcmp(kind, "volume.new") != 0 || !name || path[0] != '/' ||
	    strncmp(name, "/.", 2) != 0 || !strstr(name, ".new-"))
		return -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int prepare_path(struct cj_volume *v, uint64_t size, uint64_t create_size,
                        struct cj_undo *undo, struct cj_err *err)
{
	struct stat st;
	cj_autoclose int fd = -2;
	int locked;
	bool is_dev;
	uint64_t current;

	if (access(v->path, F_OK) < 0 && errno == ENOENT &&
	    (fd = create_volume(v, create_size, undo, err)) == -1)
		return -1;
	if (fd >= 0) {
		v->created = true;
		locked = 1;
	} else {
		fd = open(v->path, (v->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (fd < 0)
			return cj_fail(err, errno, "open volume %s", v->path);
		if ((locked = lock_volume(v, fd, err)) < 0)
			return -1;
	}
	if (fstat(fd, &st) < 0)
		return cj_fail(err, errno, "volume %s", v->path);
	is_dev = S_ISBLK(st.st_mode);
	if (is_dev) {
		if (ioctl(fd, BLKGETSIZE64, &current) < 0)
			return cj_fail(err, errno, "size of %s", v->path);
	} else {
		current = (uint64_t)st.st_size;
	}
	if (cj_ext4_uuid(v->path, v->uuid, err) < 0)
		return cj_fail(err, 0,
		               "volume %s (%s) holds no ext4 filesystem: create one with mkfs.ext4",
		               v->name, v->path);
	if (locked == 1 && !v->created && check_filesystem(v, fd, false, err) < 0)
		return -1;
	if (locked == 1 && size && !v->created && grow(v, fd, current, size, is_dev, err) < 0)
		return -1;
	if (locked == 1 && v->read_only)
		flock(fd, LOCK_SH); /* checked; now share with other readers */
	v->lock_fd = fd;
	fd = -1;
	return 0;
}

int cj_volume_resolve(const struct cj_volume_spec *spec, const char *volumes_dir,
                      struct cj_volume *out, struct cj_err *err)
{
	struct stat st;

	memset(out, 0, sizeof *out);
	out->lock_fd = -1;
	out->read_only = spec->read_only;
	snprintf(out->name, sizeof out->name, "%s", spec->source);
	if (strchr(spec->source, '/')) {
		if (spec->source[0] != '/')
			return cj_fail(err, 0,
			               "volume source '%s' must be a name or an absolute path",
			               spec->source);
		if (stat(spec->source, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				return cj_fail(
				    err, 0,
				    "volume source %s is a directory: give a volume name, an "
				    "image file or a block device",
				    spec->source);
			if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
				return cj_fail(
				    err, 0,
				    "volume source %s is neither an image file nor a block "
				    "device",
				    spec->source);
		} else if (errno != ENOENT) {
			return cj_fail(err, errno, "volume source %s", spec->source);
		}
		snprintf(out->path, sizeof out->path, "%s", spec->source);
		const char *base = strrchr(spec->source, '/') + 1;
		snprintf(out->name, sizeof out->name, "%s", *base ? base : spec->source);
	} else {
		if (!cj_volume_name_valid(spec->source))
			return cj_fail(
			    err, 0,
			    "volume name '%s' is invalid: use letters, digits, '_', '.' and "
			    "'-', starting with a letter or digit",
			    spec->source);
		snprintf(out->path, sizeof out->path, "%s/%s.ext4", volumes_dir, spec->source);
	}
	if (spec->read_only && access(out->path, F_OK) < 0)
		return cj_fail(err, 0,
		               "volume %s does not exist yet and cannot be created read-only",
		               out->name);
	return 0;
}

int cj_volume_prepare(const struct cj_volume_spec *spec, const char *volumes_dir,
                      uint64_t default_size, const struct cj_volume_tool_user *tools,
                      struct cj_undo *undo, struct cj_volume *out, struct cj_err *err)
{
	if (cj_volume_resolve(spec, volumes_dir, out, err) < 0)
		return -1;
	out->tool_uid = tools->uid;
	out->tool_gid = tools->gid;
	if (!strchr(spec->source, '/') && cj_mkdir_p(volumes_dir, 0700, err) < 0)
		return cj_err_wrap(err, "volumes directory");
	return prepare_path(out, spec->size, spec->size ? spec->size : default_size, undo, err);
}

int cj_volume_prepare_data(const char *dir, uint64_t size, const struct cj_volume_tool_user *tools,
                           struct cj_undo *undo, struct cj_volume *out, struct cj_err *err)
{
	struct statvfs vfs;
	struct stat st;
	uint64_t free_bytes, existing = 0, want;
	char a[32], b[32];

	memset(out, 0, sizeof *out);
	out->lock_fd = -1;
	out->tool_uid = tools->uid;
	out->tool_gid = tools->gid;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return cj_fail(err, errno ? errno : ENOTDIR, "data directory %s", dir);
	snprintf(out->path, sizeof out->path, "%s/datafs.ext4", dir);
	snprintf(out->name, sizeof out->name, "%s", out->path);
	if (statvfs(dir, &vfs) < 0)
		return cj_fail(err, errno, "data directory %s", dir);
	free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (stat(out->path, &st) == 0)
		existing = (uint64_t)st.st_size;
	want = size ? size : CJ_DEFAULT_DATAFS_SIZE;
	/* A sparse image may never outgrow the filesystem that holds it. */
	if (want > existing && want - existing > free_bytes) {
		if (size) {
			cj_volume_human(want, a, sizeof a);
			cj_volume_human(free_bytes + existing, b, sizeof b);
			return cj_fail(
			    err, 0,
			    "DATAFS_SIZE %s is larger than the %s the filesystem of %s can "
			    "hold",
			    a, b, dir);
		}
		want = (existing + free_bytes) & ~((1ull << 20) - 1);
	}
	if (want < MIN_VOLUME_SIZE)
		return cj_fail(err, 0, "no room for a data drive in %s (at least 16M needed)", dir);
	/* An existing drive keeps its size unless DATAFS_SIZE asks for more. */
	return prepare_path(out, size, want, undo, err);
}

void cj_volume_release(struct cj_volume *v)
{
	if (v->lock_fd >= 0) {
		close(v->lock_fd);
		v->lock_fd = -1;
	}
}
