/* SPDX-License-Identifier: Apache-2.0 */
/* The cache directory: usage by kind, in-use marks, prune and the LRU cap
 * (the rules are in cache.h). */
#include "cache.h"

#include "image/tree.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
	const char *kind, *folder;
	bool prunable;
} kinds[CJ_CACHE_NKINDS] = {
    {"kernels", "kernels", true},     {"vmlinux", "vmlinux", true},
    {"initramfs", "initramfs", true}, {"modules", "modules", true},
    {"base", "base", true},           {"images", "images/v1", true},
    {"layers", "layers", true},       {"deltas", "deltas", true},
    {"store", "store", false},        {"snapshots", "snapshots", true},
};

/* ---- sizes ------------------------------------------------------------------------ */

struct du {
	uint64_t bytes, files;
};

static int du_entry(const struct cj_tree_entry *e, void *ctx, struct cj_err *err)
{
	struct du *d = ctx;

	(void)err;
	d->bytes += (uint64_t)e->st->st_blocks * 512;
	if (!S_ISDIR(e->st->st_mode))
		d->files++;
	return CJ_TREE_DESCEND;
}

/* Allocated bytes below path (a file or a folder), as du counts them
 * (hard links to one file excepted: the cache makes none). */
static struct du du_path(const char *path)
{
	struct du d = {0};
	struct cj_err err = {0};
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return d;
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
		d.bytes = (uint64_t)st.st_blocks * 512;
		d.files = 1;
	} else {
		cj_tree_walk(fd, UINT_MAX, du_entry, NULL, &d, &err);
	}
	close(fd);
	return d;
}

/* ---- entries ---------------------------------------------------------------------- */

struct entry {
	char path[PATH_MAX];
	uint64_t bytes;
	time_t last_use;
	bool in_use;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n > s && strcmp(name + n - s, suffix) == 0;
}

static bool bookkeeping(const char *kind_folder, const char *name, const char *dir)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "ids") == 0 ||
	    strcmp(name, "tar-ids") == 0 || strcmp(name, "lines") == 0)
		return true;
	/* a base's or delta's manifest and stack go with its image */
	if (has_suffix(name, ".lock") || has_suffix(name, ".manifest") ||
	    has_suffix(name, ".stack"))
		return true;
	if (strcmp(kind_folder, "kernels") != 0)
		return false;
	/* The kernel `kernel fetch` made the default stays, like a tagged image. */
	if (strcmp(name, "default") == 0)
		return true;
	snprintf(link, sizeof link, "%s/default", dir);
	n = readlink(link, target, sizeof target - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	return strcmp(base ? base + 1 : target, name) == 0;
}

/* A build's leftover (*.tmp, *.unpack) is in use while its build runs: its
 * build lock (<key>.lock) is held, or the pid in ".<pid>.tmp" lives. */
static bool leftover_building(const char *dir, const char *name)
{
	const char *n = name[0] == '.' ? name + 1 : name;
	size_t len = strlen(n), key = strcspn(n, ".");
	char lock[PATH_MAX];

	if (!(len > 4 && strcmp(n + len - 4, ".tmp") == 0) &&
	    !(len > 7 && strcmp(n + len - 7, ".unpack") == 0))
		return false;
	snprintf(lock, sizeof lock, "%s/%.*s.lock", dir, (int)key, n);
	int fd = open(lock, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		bool held = flock(fd, LOCK_EX | LOCK_NB) < 0;
		close(fd);
		if (held)
			return true;
	}
	if (len > 4 && strcmp(n + len - 4, ".tmp") == 0) {
		const char *dot = n + len - 4, *p = dot;
		while (p > n && p[-1] >= '0' && p[-1] <= '9')
			p--;
		if (p < dot && p > n && p[-1] == '.') {
			long pid = strtol(p, NULL, 10);
			if (pid > 0 && kill((pid_t)pid, 0) == 0)
				return true;
		}
	}
	return false;
}

/* A folder entry built under <entry>/lock (a boot snapshot): is that lock
 * held? With hold, the exclusive lock is taken and kept in *fd. */
static bool build_lock_held(const char *path, int *fd)
{
	char lock[PATH_MAX + 8];
	int f;

	*fd = -1;
	snprintf(lock, sizeof lock, "%s/lock", path);
	if ((f = open(lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0)
		return false;
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		close(f);
		return true;
	}
	*fd = f;
	return false;
}

/* Is the entry free? With take, the exclusive lock is kept in *fd. */
static bool entry_free(const char *path, int *fd)
{
	int f = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	*fd = -1;
	if (f < 0)
		return errno != ENOENT && errno != ELOOP ? false : true;
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		close(f);
		return false;
	}
	*fd = f;
	return true;
}

static int entries_add(struct entries *es, const char *dir, const char *name, struct cj_err *err)
{
	struct entry *e;
	struct stat st;
	int fd = -1;

	if (es->n == es->cap) {
		struct entry *grown =
		    realloc(es->v, (es->cap = es->cap ? 2 * es->cap : 64) * sizeof *grown);
		if (!grown)
			return cj_fail(err, ENOMEM, "cache entries");
		es->v = grown;
	}
	e = &es->v[es->n];
	snprintf(e->path, sizeof e->path, "%s/%s", dir, name);
	if (lstat(e->path, &st) < 0 || S_ISLNK(st.st_mode))
		return 0;
	e->bytes = du_path(e->path).bytes;
	e->last_use = st.st_atime > st.st_mtime ? st.st_atime : st.st_mtime;
	e->in_use = leftover_building(dir, name) || !entry_free(e->path, &fd);
	if (fd >= 0)
		close(fd);
	if (!e->in_use && S_ISDIR(st.st_mode)) {
		e->in_use = build_lock_held(e->path, &fd);
		if (fd >= 0)
			close(fd);
	}
	es->n++;
	return 0;
}

static int kind_entries(const char *cache_dir, size_t k, struct entries *es, struct cj_err *err)
{
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int r = 0;

	snprintf(dir, sizeof dir, "%s/%s", cache_dir, kinds[k].folder);
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : cj_fail(err, errno, "read %s", dir);
	while (r == 0 && (de = readdir(d)))
		if (!bookkeeping(kinds[k].folder, de->d_name, dir))
			r = entries_add(es, dir, de->d_name, err);
	closedir(d);
	return r;
}

/* ---- the verbs' work -------------------------------------------------------------- */

int cj_cache_usage(const char *cache_dir, struct cj_cache_usage *u, struct cj_err *err)
{
	memset(u, 0, sizeof *u);
	u->bytes = du_path(cache_dir).bytes;
	for (size_t k = 0; k < CJ_CACHE_NKINDS; k++) {
		struct cj_cache_kind_usage *ku = &u->kinds[k];
		struct entries es = {0};

		ku->kind = kinds[k].kind;
		ku->folder = kinds[k].folder;
		ku->prunable = kinds[k].prunable;
		if (!kinds[k].prunable) {
			char dir[PATH_MAX];
			snprintf(dir, sizeof dir, "%s/%s", cache_dir, kinds[k].folder);
			struct du d = du_path(dir);
			ku->bytes = d.bytes;
			ku->entries = d.files;
			continue;
		}
		if (kind_entries(cache_dir, k, &es, err) < 0) {
			free(es.v);
			return -1;
		}
		for (size_t i = 0; i < es.n; i++) {
			ku->entries++;
			ku->bytes += es.v[i].bytes;
			ku->in_use += es.v[i].in_use;
			ku->in_use_bytes += es.v[i].in_use ? es.v[i].bytes : 0;
		}
		free(es.v);
	}
	return 0;
}

static int all_entries(const char *cache_dir, struct entries *es, struct cj_err *err)
{
	for (size_t k = 0; k < CJ_CACHE_NKINDS; k++)
		if (kinds[k].prunable && kind_entries(cache_dir, k, es, err) < 0)
			return -1;
	return 0;
}

/* Remove e unless a run took it since it was listed. */
static bool remove_entry(const struct entry *e, struct cj_cache_pruned *out)
{
	int fd, bfd = -1;

	if (e->in_use || !entry_free(e->path, &fd))
		return false;
	if (build_lock_held(e->path, &bfd)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	int r = cj_tree_remove(e->path);
	int saved = errno;
	if (fd >= 0)
		close(fd);
	if (bfd >= 0)
		close(bfd);
	if (r < 0) {
		cj_warn("could not remove %s from the cache: %s", e->path, strerror(saved));
		return false;
	}
	if (has_suffix(e->path, ".ext4")) {
		char side[PATH_MAX + 16];
		size_t stem = strlen(e->path) - 5;
		snprintf(side, sizeof side, "%.*s.manifest", (int)stem, e->path);
		unlink(side);
		snprintf(side, sizeof side, "%.*s.stack", (int)stem, e->path);
		unlink(side);
	}
	out->entries++;
	out->bytes += e->bytes;
	return true;
}

int cj_cache_prune(const char *cache_dir, bool all, struct cj_cache_pruned *out, struct cj_err *err)
{
	struct entries es = {0};
	time_t cutoff = time(NULL) - CJ_CACHE_PRUNE_AGE;

	memset(out, 0, sizeof *out);
	if (all_entries(cache_dir, &es, err) < 0) {
		free(es.v);
		return -1;
	}
	for (size_t i = 0; i < es.n; i++)
		if (all || es.v[i].last_use < cutoff)
			remove_entry(&es.v[i], out);
	free(es.v);
	return 0;
}

static int by_last_use(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->last_use < y->last_use ? -1 : x->last_use > y->last_use;
}

int cj_cache_trim(const char *cache_dir, uint64_t max, struct cj_cache_pruned *out,
                  struct cj_err *err)
{
	struct entries es = {0};
	uint64_t total = du_path(cache_dir).bytes;

	memset(out, 0, sizeof *out);
	if (total <= max)
		return 0;
	if (all_entries(cache_dir, &es, err) < 0) {
		free(es.v);
		return -1;
	}
	qsort(es.v, es.n, sizeof *es.v, by_last_use);
	for (size_t i = 0; i < es.n && total > max; i++)
		if (remove_entry(&es.v[i], out))
			total -= es.v[i].bytes < total ? es.v[i].bytes : total;
	free(es.v);
	return 0;
}

/* ---- in use ----------------------------------------------------------------------- */

int cj_cache_use(const char *cache_dir, const char *path, int *fd, struct cj_err *err)
{
	size_t clen = strlen(cache_dir);
	char entry[PATH_MAX];
	struct timespec times[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_OMIT}};
	struct stat st;

	*fd = -1;
	if (strncmp(path, cache_dir, clen) != 0 || path[clen] != '/')
		return 0;
	for (size_t k = 0; k < CJ_CACHE_NKINDS; k++) {
		size_t flen = strlen(kinds[k].folder);
		const char *rest = path + clen + 1;
		if (strncmp(rest, kinds[k].folder, flen) != 0 || rest[flen] != '/')
			continue;
		rest += flen + 1;
		snprintf(entry, sizeof entry, "%.*s%.*s", (int)(rest - path), path,
		         (int)strcspn(rest, "/"), rest);
		*fd = open(entry, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (*fd < 0)
			return cj_fail(err, errno, "open %s", entry);
		while (flock(*fd, LOCK_SH) < 0 && errno == EINTR)
			;
		/* prune may have removed it between our open and our lock */
		if (fstat(*fd, &st) < 0 || (!S_ISDIR(st.st_mode) && st.st_nlink == 0) ||
		    access(path, F_OK) < 0) {
			close(*fd);
			*fd = -1;
			return cj_fail(err, 0, "%s was removed from the cache meanwhile: run again",
			               entry);
		}
		futimens(*fd, times);
		return 0;
	}
	return 0;
}

/* ---- memos ------------------------------------------------------------------------ */

int cj_cache_memo_get(const char *cache_dir, const char *folder, const char *cheap,
                      char content[65])
{
	char path[PATH_MAX];
	int fd;
	ssize_t n;

	snprintf(path, sizeof path, "%s/%s/ids/%s", cache_dir, folder, cheap);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, content, 64);
	close(fd);
	if (n != 64)
		return 0;
	content[64] = '\0';
	for (int i = 0; i < 64; i++)
		if (!((content[i] >= '0' && content[i] <= '9') ||
		      (content[i] >= 'a' && content[i] <= 'f')))
			return 0;
	return 1;
}

void cj_cache_memo_put(const char *cache_dir, const char *folder, const char *cheap,
                       const char *content)
{
	char dir[PATH_MAX], path[PATH_MAX + 80], tmp[PATH_MAX + 100];
	struct cj_err err = {0};
	int fd;

	snprintf(dir, sizeof dir, "%s/%s/ids", cache_dir, folder);
	if (cj_mkdir_p(dir, 0700, &err) < 0)
		return;
	snprintf(path, sizeof path, "%s/%s", dir, cheap);
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return;
	bool ok = write(fd, content, 64) == 64;
	close(fd);
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}
