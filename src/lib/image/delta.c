/* SPDX-License-Identifier: Apache-2.0 */
/* Incremental root filesystem images: the rules are in delta.h. */
#include "delta.h"

#include "image/layer.h"
#include "image/tree.h"
#include "util/interrupt.h"
#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- manifests: "path\0rec\0" pairs, looked up by path ---------------------------- */

struct manifest {
	const char **path, **rec;
	size_t n;
	size_t *slot; /* open addressing: index + 1, 0 empty */
	size_t nslots;
	unsigned char *mark; /* per entry: seen / emitted */
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void manifest_free(struct manifest *m)
{
	free(m->path);
	free(m->rec);
	free(m->slot);
	free(m->mark);
	memset(m, 0, sizeof *m);
}

static int manifest_index(struct manifest *m, const char *buf, size_t len, struct cj_err *err)
{
	size_t cap = 0;

	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < len; i++)
		cap += buf[i] == '\0';
	cap = cap / 2 + 1;
	m->path = calloc(cap, sizeof *m->path);
	m->rec = calloc(cap, sizeof *m->rec);
	for (m->nslots = 16; m->nslots < 2 * cap; m->nslots *= 2)
		;
	m->slot = calloc(m->nslots, sizeof *m->slot);
	m->mark = calloc(cap, 1);
	if (!m->path || !m->rec || !m->slot || !m->mark)
		return manifest_free(m), cj_fail(err, ENOMEM, "manifest");
	for (size_t off = 0; off < len && m->n < cap;) {
		const char *p = buf + off, *r = p + strlen(p) + 1;
		if ((size_t)(r - buf) >= len)
			break;
		m->path[m->n] = p;
		m->rec[m->n] = r;
		size_t h = (size_t)fnv1a(p) & (m->nslots - 1);
		while (m->slot[h])
			h = (h + 1) & (m->nslots - 1);
		m->slot[h] = ++m->n;
		off = (size_t)(r - buf) + strlen(r) + 1;
	}
	return 0;
}

/* The entry's index, or -1. */
static long manifest_find(const struct manifest *m, const char *path)
{
	for (size_t h = (size_t)fnv1a(path) & (m->nslots - 1); m->slot[h];
	     h = (h + 1) & (m->nslots - 1))
		if (strcmp(m->path[m->slot[h] - 1], path) == 0)
			return (long)(m->slot[h] - 1);
	return -1;
}

static int read_whole(const char *path, char **out, size_t *len)
{
	struct stat st;
	cj_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0 || !(*out = malloc((size_t)st.st_size + 1)))
		return -1;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, *out + got, (size_t)st.st_size - got);
		if (n <= 0) {
			free(*out);
			return -1;
		}
		got += (size_t)n;
	}
	(*out)[got] = '\0';
	*len = got;
	return 0;
}

static int write_whole(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX + 32];
	int fd;
	bool ok;

	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -1;
	ok = write(fd, data, len) == (ssize_t)len;
	close(fd);
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* ---- lines and states ------------------------------------------------------------- */

static void line_path(const char *cache_dir, const char *line, char *out, size_t len)
{
	char hex[65];
	struct cj_hash *h = cj_hash_new();

	cj_hash_update(h, line, strlen(line) + 1);
	cj_hash_final_hex(h, hex);
	snprintf(out, len, "%s/base/lines/%s", cache_dir, hex);
}

static void line_set(const char *cache_dir, const char *line, const char *key)
{
	char path[PATH_MAX], dir[PATH_MAX];
	struct cj_err err = {0};

	snprintf(dir, sizeof dir, "%s/base/lines", cache_dir);
	if (cj_mkdir_p(dir, 0700, &err) < 0)
		return;
	line_path(cache_dir, line, path, sizeof path);
	write_whole(path, key, 64);
}

static int image_at(const char *cache_dir, const char *rel, struct cj_fsimage *out,
                    struct cj_err *err)
{
	struct stat st;

	memset(out, 0, sizeof *out);
	snprintf(out->path, sizeof out->path, "%s/%s", cache_dir, rel);
	if (stat(out->path, &st) < 0)
		return 1;
	return cj_ext4_uuid(out->path, out->uuid, err);
}

int cj_delta_stack_load(const char *cache_dir, const char *key, struct cj_layer_stack *out,
                        struct cj_err *err)
{
	char path[PATH_MAX];
	cj_autofree char *text = NULL;
	size_t len;

	memset(out, 0, sizeof *out);
	snprintf(path, sizeof path, "%s/deltas/%s.stack", cache_dir, key);
	if (read_whole(path, &text, &len) < 0)
		return 1;
	out->merged = 1;
	for (char *line = text, *nl; *line && out->n < CJ_IMAGE_MAX_LAYER_DRIVES; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			return 1;
		*nl = '\0';
		int r = image_at(cache_dir, line, &out->layers[out->n], err);
		if (r != 0)
			return r;
		out->n++;
	}
	return out->n ? 0 : 1;
}

/* The line's last state: its stack (a full base alone, or a delta
 * state's), its manifest, and the stack file's text. */
struct state {
	struct cj_layer_stack stack;
	char *manifest, *stack_text;
	size_t manifest_len;
};

static void state_free(struct state *s)
{
	free(s->manifest);
	free(s->stack_text);
}

static int state_load(const char *cache_dir, const char *line, struct state *s)
{
	char path[PATH_MAX + 80], key[65], rel[100];
	cj_autofree char *ptr = NULL;
	struct cj_err err = {0};
	size_t len;

	memset(s, 0, sizeof *s);
	line_path(cache_dir, line, path, sizeof path);
	if (read_whole(path, &ptr, &len) < 0 || len != 64)
		return 1;
	memcpy(key, ptr, 64);
	key[64] = '\0';
	snprintf(rel, sizeof rel, "base/%s.ext4", key);
	if (image_at(cache_dir, rel, &s->stack.layers[0], &err) == 0) {
		s->stack.n = 1;
		snprintf(path, sizeof path, "%s/base/%s.manifest", cache_dir, key);
		if (asprintf(&s->stack_text, "%s\n", rel) < 0)
			return 1;
	} else {
		if (cj_delta_stack_load(cache_dir, key, &s->stack, &err) != 0)
			return 1;
		snprintf(path, sizeof path, "%s/deltas/%s.stack", cache_dir, key);
		if (read_whole(path, &s->stack_text, &len) < 0)
			return 1;
		snprintf(path, sizeof path, "%s/deltas/%s.manifest", cache_dir, key);
	}
	if (read_whole(path, &s->manifest, &s->manifest_len) < 0) {
		state_free(s);
		return 1;
	}
	return 0;
}

void cj_delta_record_full(const struct cj_delta_in *in)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/base/%s.manifest", in->cache_dir, in->key);
	if (write_whole(path, in->manifest, in->manifest_len) == 0)
		line_set(in->cache_dir, in->line, in->key);
}

/* ---- the delta as a tar ----------------------------------------------------------- */

struct delta {
	const struct cj_delta_in *in;
	struct manifest now, last;
	struct archive *disk, *w;
	uint64_t bytes, limit;
	size_t entries;
};

/* Write the tree's entry at path ("" the root) as it is on disk. */
static int emit_entry(struct delta *d, const char *path, struct cj_err *err)
{
	char src[PATH_MAX + 64], buf[1 << 16];
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return cj_fail(err, ENOMEM, "delta");
	if (cj_interrupted()) {
		archive_entry_free(e);
		return cj_fail(err, 0, "interrupted");
	}
	snprintf(src, sizeof src, "/proc/self/fd/%d/%s", d->in->tree_fd, path);
	archive_entry_copy_pathname(e, src);
	archive_entry_copy_sourcepath(e, src);
	if (archive_read_disk_entry_from_file(d->disk, e, -1, NULL) != ARCHIVE_OK) {
		r = cj_fail(err, 0, "read '/%s': %s", path, archive_error_string(d->disk));
		goto out;
	}
	archive_entry_sparse_clear(e);
	archive_entry_copy_pathname(e, path[0] ? path : ".");
	if (archive_write_header(d->w, e) != ARCHIVE_OK) {
		r = cj_fail(err, 0, "delta: %s", archive_error_string(d->w));
		goto out;
	}
	if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
		cj_autoclose int fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		ssize_t n;
		if (fd < 0) {
			r = cj_fail(err, errno, "read '/%s'", path);
			goto out;
		}
		while ((n = read(fd, buf, sizeof buf)) > 0)
			if (archive_write_data(d->w, buf, (size_t)n) != n) {
				r = cj_fail(err, 0, "delta: %s", archive_error_string(d->w));
				goto out;
			}
	}
	d->entries++;
out:
	archive_entry_free(e);
	return r;
}

/* A whiteout entry (name ".wh.NAME", or ".wh..wh..opq") in dir. */
static int emit_mark(struct delta *d, const char *dir, const char *name, struct cj_err *err)
{
	char path[PATH_MAX + 8];
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return cj_fail(err, ENOMEM, "delta");
	snprintf(path, sizeof path, "%s%s%s", dir, dir[0] ? "/" : "", name);
	archive_entry_copy_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, 0);
	if (archive_write_header(d->w, e) != ARCHIVE_OK)
		r = cj_fail(err, 0, "delta: %s", archive_error_string(d->w));
	archive_entry_free(e);
	d->entries++;
	return r;
}

/* The entry at path once, after its ancestors (overlayfs shows the
 * highest layer's directory, so each carries its own metadata). */
static int emit_with_parents(struct delta *d, const char *path, struct cj_err *err)
{
	char prefix[PATH_MAX];
	long i;

	for (const char *p = path;; p++) {
		if (*p != '/' && *p)
			continue;
		snprintf(prefix, sizeof prefix, "%.*s", (int)(p - path), path);
		if ((i = manifest_find(&d->now, prefix)) >= 0 && !d->now.mark[i]) {
			d->now.mark[i] = 1;
			if (emit_entry(d, prefix, err) < 0)
				return -1;
		}
		if (!*p)
			return 0;
	}
}

static uint64_t rec_size(const char *rec)
{
	unsigned long long size = 0;
	unsigned mode, uid, gid;

	sscanf(rec, "%o %u %u %llu", &mode, &uid, &gid, &size);
	return size;
}

static bool rec_is_dir(const char *rec)
{
	unsigned mode = 0;

	sscanf(rec, "%o", &mode);
	return S_ISDIR(mode);
}

/* The inode (the 7th field, after mode, owner, size and two times): a
 * directory with another one was replaced. */
static unsigned long long rec_ino(const char *rec)
{
	unsigned long long ino = 0;

	sscanf(rec, "%*o %*u %*u %*u %*s %*s %llu", &ino);
	return ino;
}

/* Changed and new entries, with their parents; a replaced directory is
 * made opaque. 1: more than the limit (a full build is due). */
static int emit_changes(struct delta *d, struct cj_err *err)
{
	for (size_t i = 0; i < d->now.n; i++) {
		long j = manifest_find(&d->last, d->now.path[i]);
		if (j >= 0) {
			d->last.mark[j] = 1;
			if (strcmp(d->now.rec[i], d->last.rec[j]) == 0)
				continue;
		}
		d->bytes += rec_size(d->now.rec[i]) + 512;
		if (d->bytes > d->limit)
			return 1;
		if (emit_with_parents(d, d->now.path[i], err) < 0)
			return -1;
		if (j >= 0 && rec_is_dir(d->now.rec[i]) && rec_is_dir(d->last.rec[j]) &&
		    rec_ino(d->now.rec[i]) != rec_ino(d->last.rec[j]) &&
		    emit_mark(d, d->now.path[i], ".wh..wh..opq", err) < 0)
			return -1;
	}
	return 0;
}

/* Entries gone since: a whiteout for each whose directory is still there. */
static int emit_deletions(struct delta *d, struct cj_err *err)
{
	for (size_t j = 0; j < d->last.n; j++) {
		const char *p = d->last.path[j], *slash = strrchr(p, '/');
		char dir[PATH_MAX], name[NAME_MAX + 8];
		if (d->last.mark[j] || !p[0])
			continue;
		snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - p) : 0, p);
		if (manifest_find(&d->now, dir) < 0)
			continue; /* its directory went too: that one's whiteout hides it */
		snprintf(name, sizeof name, ".wh.%s", slash ? slash + 1 : p);
		if (emit_with_parents(d, dir, err) < 0 || emit_mark(d, dir, name, err) < 0)
			return -1;
	}
	return 0;
}

static int write_delta_tar(struct delta *d, const char *tar, struct cj_err *err)
{
	int r;

	d->disk = archive_read_disk_new();
	d->w = archive_write_new();
	if (!d->disk || !d->w)
		return cj_fail(err, ENOMEM, "libarchive");
	archive_read_disk_set_symlink_physical(d->disk);
	if (archive_write_set_format_pax_restricted(d->w) != ARCHIVE_OK ||
	    archive_write_open_filename(d->w, tar) != ARCHIVE_OK)
		return cj_fail(err, 0, "write %s: %s", tar, archive_error_string(d->w));
	r = emit_changes(d, err);
	if (r == 0)
		r = emit_deletions(d, err);
	if (archive_write_close(d->w) != ARCHIVE_OK && r == 0)
		r = cj_fail(err, 0, "write %s: %s", tar, archive_error_string(d->w));
	return r;
}

/* ---- the delta image -------------------------------------------------------------- */

/* Apply the delta's tar into tree (layer.c: whiteouts as overlayfs marks)
 * and build the image at dest. */
static int build_from_tar(const char *tar, const char *tree, const char *dest, struct cj_err *err)
{
	struct cj_layer_opts opts = {
	    .whiteouts = true, .overlay_whiteouts = true, .set_owner = true};
	struct cj_layer_stats st = {0};
	struct archive *a = cj_layer_reader_new();
	int r = -1;

	if (!a)
		return cj_fail(err, ENOMEM, "libarchive");
	if (cj_tree_remove(tree) < 0 || mkdir(tree, 0755) < 0) {
		archive_read_free(a);
		return cj_fail(err, errno, "create %s", tree);
	}
	cj_autoclose int root = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		r = cj_fail(err, errno, "open %s", tree);
	else if (archive_read_open_filename(a, tar, 1 << 16) != ARCHIVE_OK)
		r = cj_fail(err, 0, "read %s: %s", tar, archive_error_string(a));
	else if (cj_layer_apply(root, a, &opts, &st, err) == 0)
		r = cj_dir_image_build(tree, dest, err);
	archive_read_free(a);
	cj_tree_remove(tree);
	return r;
}

/* Record the delta state: its stack (the last state's and the delta) and
 * manifest, and the line's pointer. */
static int record_delta(const struct cj_delta_in *in, const struct state *last, struct cj_err *err)
{
	char path[PATH_MAX + 80];
	cj_autofree char *text = NULL;

	if (asprintf(&text, "%sdeltas/%s.ext4\n", last->stack_text, in->key) < 0)
		return cj_fail(err, ENOMEM, "delta");
	snprintf(path, sizeof path, "%s/deltas/%s.manifest", in->cache_dir, in->key);
	if (write_whole(path, in->manifest, in->manifest_len) < 0)
		return cj_fail(err, errno, "write %s", path);
	snprintf(path, sizeof path, "%s/deltas/%s.stack", in->cache_dir, in->key);
	if (write_whole(path, text, strlen(text)) < 0)
		return cj_fail(err, errno, "write %s", path);
	line_set(in->cache_dir, in->line, in->key);
	return 0;
}

static int delta_run(struct delta *d, const struct state *last, struct cj_layer_stack *out,
                     struct cj_err *err)
{
	const struct cj_delta_in *in = d->in;
	char dir[PATH_MAX], tar[PATH_MAX + 80], tree[PATH_MAX + 80], dest[PATH_MAX + 80];
	int r;

	snprintf(dir, sizeof dir, "%s/deltas", in->cache_dir);
	if (cj_mkdir_p(dir, 0700, err) < 0)
		return -1;
	snprintf(tar, sizeof tar, "%s/%s.tar.tmp", dir, in->key);
	snprintf(tree, sizeof tree, "%s/%s.unpack", dir, in->key);
	snprintf(dest, sizeof dest, "%s/%s.ext4", dir, in->key);
	if (manifest_index(&d->now, in->manifest, in->manifest_len, err) < 0 ||
	    manifest_index(&d->last, last->manifest, last->manifest_len, err) < 0)
		return -1;
	r = write_delta_tar(d, tar, err);
	if (r == 0)
		r = build_from_tar(tar, tree, dest, err);
	unlink(tar);
	if (r != 0)
		return r;
	if (record_delta(in, last, err) < 0)
		return -1;
	*out = last->stack;
	if (image_at(in->cache_dir, dest + strlen(in->cache_dir) + 1, &out->layers[out->n], err) !=
	    0)
		return cj_fail(err, 0, "delta image %s is missing", dest);
	out->layers[out->n++].built = true;
	out->built = 1;
	return 0;
}

int cj_delta_build(const struct cj_delta_in *in, struct cj_layer_stack *out, struct cj_err *err)
{
	struct delta d = {.in = in, .limit = in->bytes / 4};
	struct state last;
	int r;

	if (geteuid() != 0 || state_load(in->cache_dir, in->line, &last) != 0)
		return 1;
	if (last.stack.n > CJ_DELTA_MAX) { /* compaction: the base and 4 deltas */
		state_free(&last);
		return 1;
	}
	r = delta_run(&d, &last, out, err);
	manifest_free(&d.now);
	manifest_free(&d.last);
	if (d.disk)
		archive_read_free(d.disk);
	if (d.w)
		archive_write_free(d.w);
	state_free(&last);
	return r;
}
