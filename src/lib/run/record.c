/* SPDX-License-Identifier: Apache-2.0 */
/* The run record (record.h) and garbage collection of the runs whose
 * runtime was killed.
 *
 * Layout of a run directory, <run base>/<id>:
 *   owner        empty; its flock, held by the runtime for the run's whole
 *                life, is what makes the run alive
 *   record.json  the record, replaced whole (tmp + rename) on each change
 * The owner's lock is only ever absent from a published run when the run
 * is over: the directory is built under a staging name (".new-<id>",
 * which gc leaves alone while it is young), locked, then renamed into
 * place; teardown removes the directory before it lets go of the lock. */
#include "record.h"
#include "names.h"

#include "jail/jail.h"
#include "net/net.h"
#include "util/util.h"
#include "vmm/firecracker.h"
#include "volume/share.h"
#include "volume/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_FILE    "record.json"
#define OWNER_FILE     "owner"
#define STAGING_PREFIX ".new-"
#define BROKEN_PREFIX  ".broken-"
/* A directory without a held lock is left alone this long after its last
 * change: a run between mkdir and flock (staging), or one being removed. */
#define YOUNG_S 60

/* The one table: undo kind "<module>.<what>" -> the module's replay. */
static const struct cj_undo_kind undo_kinds[] = {
    {"net", cj_net_undo},     {"volume", cj_volume_undo},
    {"jail", cj_jail_undo},   {"firecracker", cj_firecracker_undo},
    {"share", cj_share_undo}, {NULL, NULL},
};

struct cj_record {
	char base[PATH_MAX];
	char dir[PATH_MAX]; /* where the directory is now (staging, then final) */
	char id[16];
	int lock; /* the owner file, flocked */
	json_object *root;
	struct cj_undo undo;
};

static int undo_each_run(void *ctx, int (*fn)(json_object *record, void *arg), void *arg,
                         struct cj_err *err);
static int undo_lock(void *ctx, const char *name, struct cj_err *err);

/* ---- processes ---------------------------------------------------------- */

/* The fields of /proc/PID/stat after comm (which may hold spaces and
 * parens): field 3 (state) onwards. */
static char *proc_stat_tail(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	cj_autoclose int fd = -1;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	n = read(fd, buf, len - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p + 2 : NULL;
}

unsigned long long cj_proc_starttime(pid_t pid)
{
	char buf[1024], *save = NULL;
	char *p = proc_stat_tail(pid, buf, sizeof buf);
	int field = 2;

	if (!p)
		return 0;
	for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (++field == 22) /* starttime */
			return strtoull(tok, NULL, 10);
	return 0;
}

static bool alive(pid_t pid, unsigned long long start)
{
	return pid > 0 && start && cj_proc_starttime(pid) == start;
}

/* Alive and not a zombie (which waits for a parent that may not be us). */
static bool running(pid_t pid, unsigned long long start)
{
	char buf[1024];
	const char *p;

	if (!alive(pid, start))
		return false;
	p = proc_stat_tail(pid, buf, sizeof buf);
	return !(p && p[0] == 'Z');
}

/* ---- the file ----------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int record_save(void *ctx, struct cj_err *err)
{
	struct cj_record *rec = ctx;
	char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
	const char *text;
	size_t len;
	cj_autoclose int fd = -1;

	text = json_object_to_json_string_ext(rec->root, JSON_C_TO_STRING_PLAIN);
	if (!text)
		return cj_fail(err, ENOMEM, "run record");
	len = strlen(text);
	snprintf(tmp, sizeof tmp, "%s/." RECORD_FILE ".tmp", rec->dir);
	snprintf(path, sizeof path, "%s/" RECORD_FILE, rec->dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cj_fail(err, errno, "write %s", tmp);
	if (write_all(fd, text, len) < 0 || write_all(fd, "\n", 1) < 0)
		return cj_fail(err, errno, "write %s", tmp);
	if (rename(tmp, path) < 0)
		return cj_fail(err, errno, "write %s", path);
	return 0;
}

/* The record of the run directory dir, or NULL when it has none that
 * parses as one (missing, torn, not ours). */
static json_object *record_load(const char *dir)
{
	char path[PATH_MAX + 32];
	char *text = NULL;
	size_t len;
	struct cj_err err = {0};
	json_object *root, *undo;

	snprintf(path, sizeof path, "%s/" RECORD_FILE, dir);
	if (cj_read_file(path, &text, &len, &err) < 0)
		return NULL;
	root = strlen(text) == len ? json_tokener_parse(text) : NULL;
	free(text);
	if (root && (!json_object_is_type(root, json_type_object) ||
	             !json_object_object_get_ex(root, "undo", &undo) ||
	             !json_object_is_type(undo, json_type_array))) {
		json_object_put(root);
		root = NULL;
	}
	return root;
}

static json_object *proc_json(pid_t pid)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "pid", json_object_new_int64(pid));
	json_object_object_add(o, "start", json_object_new_uint64(cj_proc_starttime(pid)));
	return o;
}

static bool proc_from_json(json_object *root, const char *key, pid_t *pid,
                           unsigned long long *start)
{
	json_object *o, *v;

	if (!json_object_object_get_ex(root, key, &o) || !json_object_is_type(o, json_type_object))
		return false;
	if (!json_object_object_get_ex(o, "pid", &v) || !json_object_is_type(v, json_type_int))
		return false;
	*pid = (pid_t)json_object_get_int64(v);
	if (!json_object_object_get_ex(o, "start", &v) || !json_object_is_type(v, json_type_int))
		return false;
	*start = json_object_get_uint64(v);
	return *pid > 0;
}

void cj_rfc3339_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09ldZ", sec, ts.tv_nsec);
}

static json_object *now_json(void)
{
	char buf[64];

	cj_rfc3339_now(buf, sizeof buf);
	return json_object_new_string(buf);
}

static json_object *record_new(const char *id)
{
	json_object *root = json_object_new_object();

	json_object_object_add(root, "version", json_object_new_int(CJ_RECORD_VERSION));
	json_object_object_add(root, "id", json_object_new_string(id));
	json_object_object_add(root, "owner", proc_json(getpid()));
	json_object_object_add(root, "state", json_object_new_string("created"));
	json_object_object_add(root, "created", now_json());
	json_object_object_add(root, "undo", json_object_new_array());
	return root;
}

/* ---- the runtime's side ----------------------------------------------------- */

static void record_free(struct cj_record *rec)
{
	if (!rec)
		return;
	json_object_put(rec->root);
	if (rec->lock >= 0)
		close(rec->lock);
	free(rec);
}

static struct cj_record *record_alloc(const char *run_base, struct cj_err *err)
{
	uint8_t rnd[6];
	struct cj_record *rec = calloc(1, sizeof *rec);

	if (!rec)
		return cj_fail(err, ENOMEM, "run record"), NULL;
	rec->lock = -1;
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		cj_fail(err, errno, "getrandom");
		return record_free(rec), NULL;
	}
	snprintf(rec->id, sizeof rec->id, "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
	         rnd[3], rnd[4], rnd[5]);
	if ((size_t)snprintf(rec->base, sizeof rec->base, "%s", run_base) >= sizeof rec->base ||
	    (size_t)snprintf(rec->dir, sizeof rec->dir, "%s/" STAGING_PREFIX "%s", run_base,
	                     rec->id) >= sizeof rec->dir - 32) {
		cj_fail(err, ENAMETOOLONG, "run directory in %s", run_base);
		return record_free(rec), NULL;
	}
	rec->root = record_new(rec->id);
	json_object_object_get_ex(rec->root, "undo", &rec->undo.log);
	rec->undo.save = record_save;
	rec->undo.ctx = rec;
	rec->undo.each_run = undo_each_run;
	rec->undo.lock = undo_lock;
	return rec;
}

/* The staging directory, its owner file locked and its record written. */
static int stage(struct cj_record *rec, struct cj_err *err)
{
	char owner[PATH_MAX + 8];

	if (mkdir(rec->dir, 0700) < 0)
		return cj_fail(err, errno, "create %s", rec->dir);
	snprintf(owner, sizeof owner, "%s/" OWNER_FILE, rec->dir);
	rec->lock = open(owner, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (rec->lock < 0 || flock(rec->lock, LOCK_EX | LOCK_NB) < 0)
		return cj_fail(err, errno, "lock %s", owner);
	return record_save(rec, err);
}

int cj_record_create(const char *run_base, struct cj_record **out, struct cj_err *err)
{
	struct cj_record *rec;
	char dir[PATH_MAX];

	*out = NULL;
	if (cj_mkdir_p(run_base, 0700, err) < 0)
		return cj_err_wrap(err, "run directory");
	if (!(rec = record_alloc(run_base, err)))
		return -1;
	snprintf(dir, sizeof dir, "%s/%s", run_base, rec->id);
	/* Locked: now the run may be seen, never replacing another. Where the
	 * filesystem has no RENAME_NOREPLACE, rename() does as well here: it
	 * fails on a run directory, which is never empty. */
	if (stage(rec, err) < 0 ||
	    (renameat2(AT_FDCWD, rec->dir, AT_FDCWD, dir, RENAME_NOREPLACE) < 0 &&
	     (errno != EINVAL || rename(rec->dir, dir) < 0) &&
	     cj_fail(err, errno, "create %s", dir))) {
		cj_rm_rf(rec->dir);
		record_free(rec);
		return -1;
	}
	snprintf(rec->dir, sizeof rec->dir, "%s", dir);
	*out = rec;
	return 0;
}

const char *cj_record_dir(const struct cj_record *rec)
{
	return rec->dir;
}

const char *cj_record_id(const struct cj_record *rec)
{
	return rec->id;
}

struct cj_undo *cj_record_undo(struct cj_record *rec)
{
	return rec ? &rec->undo : NULL;
}

struct each_ctx {
	int (*fn)(json_object *record, void *arg);
	void *arg;
};

static int each_call(const char *id, json_object *record, void *ctx)
{
	struct each_ctx *c = ctx;

	(void)id;
	return c->fn(record, c->arg);
}

static int undo_each_run(void *ctx, int (*fn)(json_object *record, void *arg), void *arg,
                         struct cj_err *err)
{
	struct cj_record *rec = ctx;
	struct each_ctx c = {fn, arg};

	return cj_record_each(rec->base, rec->id, each_call, &c, err);
}

static int undo_lock(void *ctx, const char *name, struct cj_err *err)
{
	struct cj_record *rec = ctx;

	return cj_run_base_lock(rec->base, name, err);
}

static int set_and_save(struct cj_record *rec, const char *key, json_object *value,
                        struct cj_err *err)
{
	if (!value || json_object_object_add(rec->root, key, value) < 0) {
		json_object_put(value);
		return cj_fail(err, ENOMEM, "run record");
	}
	return record_save(rec, err);
}

int cj_record_set_vmm(struct cj_record *rec, pid_t pid, struct cj_err *err)
{
	json_object_object_add(rec->root, "state", json_object_new_string("running"));
	json_object_object_add(rec->root, "started", now_json());
	return set_and_save(rec, "vmm", proc_json(pid), err);
}

int cj_record_set_ids(struct cj_record *rec, uid_t uid, gid_t gid, struct cj_err *err)
{
	json_object_object_add(rec->root, "uid", json_object_new_int64(uid));
	return set_and_save(rec, "gid", json_object_new_int64(gid), err);
}

int cj_record_set_health(struct cj_record *rec, json_object *health, struct cj_err *err)
{
	return set_and_save(rec, "health", health, err);
}

int cj_record_set_state(struct cj_record *rec, const char *state, struct cj_err *err)
{
	return set_and_save(rec, "state", json_object_new_string(state), err);
}

int cj_record_set_image(struct cj_record *rec, const char *digest, struct cj_err *err)
{
	return set_and_save(rec, "image_digest", json_object_new_string(digest), err);
}

int cj_record_set_meta(struct cj_record *rec, char *const *argv, size_t argc, const char *restart,
                       struct cj_err *err)
{
	json_object *cmd = json_object_new_array();

	for (size_t i = 0; i < argc; i++)
		json_object_array_add(cmd, json_object_new_string(argv[i]));
	json_object_object_add(rec->root, "command", cmd);
	json_object_object_add(rec->root, "restart",
	                       json_object_new_string(restart ? restart : "no"));
	return set_and_save(rec, "restart_count", json_object_new_int(0), err);
}

int cj_record_set_keep(struct cj_record *rec, bool keep, struct cj_err *err)
{
	return set_and_save(rec, "keep", json_object_new_boolean(keep), err);
}

struct name_seen {
	const char *name;
	bool taken;
};

static int name_check(const char *id, json_object *record, void *ctx)
{
	struct name_seen *n = ctx;
	const char *have = cj_undo_str(record, "name");

	(void)id;
	if (have && strcmp(have, n->name) == 0)
		n->taken = true;
	return 0;
}

static int name_try(struct cj_record *rec, const char *name, bool *taken, struct cj_err *err)
{
	struct name_seen seen = {name, false};

	if (cj_record_each(rec->base, rec->id, name_check, &seen, err) < 0)
		return -1;
	*taken = seen.taken;
	return seen.taken ? 0 : set_and_save(rec, "name", json_object_new_string(name), err);
}

int cj_record_claim_name(struct cj_record *rec, const char *name, struct cj_err *err)
{
	char buf[CJ_NAME_MAX + 1];
	const char *why = name ? cj_name_invalid(name) : NULL;
	bool taken = true;
	int lock, r = 0;

	if (why)
		return cj_fail(err, 0, "invalid name '%s': %s", name, why);
	if ((lock = cj_run_base_lock(rec->base, "names", err)) < 0)
		return -1;
	if (name)
		r = name_try(rec, name, &taken, err);
	for (int i = 0; !name && taken && r == 0 && i < 64; i++) {
		size_t n;
		cj_name_random(buf, sizeof buf);
		n = strlen(buf);
		if (i >= 16) /* the lists are short: a number makes it unique */
			snprintf(buf + n, sizeof buf - n, "%d", i);
		r = name_try(rec, buf, &taken, err);
	}
	close(lock);
	if (r == 0 && taken)
		r = cj_fail(err, 0,
		            "the name '%s' is already in use by another run: choose another, or "
		            "remove that run with 'ctr-jailer rm'",
		            name ? name : buf);
	return r;
}

int cj_record_set_net(struct cj_record *rec, const char *address, json_object *ports,
                      struct cj_err *err)
{
	json_object_object_add(rec->root, "address", json_object_new_string(address));
	return set_and_save(rec, "ports", ports ? ports : json_object_new_array(), err);
}

int cj_record_set_exit(struct cj_record *rec, int code, struct cj_err *err)
{
	json_object_object_add(rec->root, "oom_killed",
	                       json_object_new_boolean(cj_record_oom_killed(rec)));
	json_object_object_add(rec->root, "finished", now_json());
	return set_and_save(rec, "exit_code", json_object_new_int(code), err);
}

int cj_record_set_restarts(struct cj_record *rec, unsigned count, struct cj_err *err)
{
	return set_and_save(rec, "restart_count", json_object_new_int((int)count), err);
}

/* "oom_kill N" in cgroup v2's memory.events or v1's memory.oom_control. */
static bool cgroup_oom(const char *dir)
{
	static const char *const files[] = {"memory.events", "memory.oom_control"};

	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char path[PATH_MAX + 32], *text = NULL, *k;
		struct cj_err err = {0};
		bool killed;
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (cj_read_file(path, &text, NULL, &err) < 0)
			continue;
		k = strstr(text, "oom_kill ");
		killed = k && strtoul(k + 9, NULL, 10) > 0;
		free(text);
		if (killed)
			return true;
	}
	return false;
}

bool cj_record_oom_killed(struct cj_record *rec)
{
	size_t n = json_object_array_length(rec->undo.log);

	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(rec->undo.log, i);
		const char *kind = cj_undo_str(e, "kind"), *path = cj_undo_str(e, "path");
		if (kind && path && strcmp(kind, "jail.cgroup") == 0 && cgroup_oom(path))
			return true;
	}
	return false;
}

/* What a kept record keeps of its directory once the run ended. */
static bool kept_file(const char *name)
{
	return strcmp(name, RECORD_FILE) == 0 || strcmp(name, OWNER_FILE) == 0 ||
	       strncmp(name, "console.log", 11) == 0 || strcmp(name, "supervisor.log") == 0;
}

/* The run ended and its host changes are undone: the directory keeps only
 * its record (state "exited") and logs, for the verbs, until `rm`. */
static void keep_exited(struct cj_record *rec)
{
	struct cj_err err = {0};
	DIR *d = opendir(rec->dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char path[PATH_MAX + 300];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    kept_file(de->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s", rec->dir, de->d_name);
		cj_rm_rf(path);
	}
	if (d)
		closedir(d);
	json_object_object_add(rec->root, "state", json_object_new_string("exited"));
	json_object_object_del(rec->root, "vmm");
	if (!json_object_object_get_ex(rec->root, "finished", NULL))
		json_object_object_add(rec->root, "finished", now_json());
	if (record_save(rec, &err) < 0)
		cj_notice("warning: %s", err.msg);
}

static bool kept(json_object *root)
{
	json_object *v;

	return json_object_object_get_ex(root, "keep", &v) && json_object_get_boolean(v);
}

size_t cj_record_undo_mark(const struct cj_record *rec)
{
	return json_object_array_length(rec->undo.log);
}

int cj_record_undo_back_to(struct cj_record *rec, size_t mark, bool verbose, struct cj_err *err)
{
	int left = cj_undo_replay_from(rec->undo.log, mark, undo_kinds, verbose);

	if (record_save(rec, err) < 0)
		return -1;
	return left ? cj_fail(err, 0,
	                      "%d host changes of the last boot could not be undone "
	                      "(see the warnings above; `ctr-jailer gc` retries them)",
	                      left)
	            : 0;
}

int cj_record_teardown(struct cj_record *rec, bool verbose)
{
	struct cj_err err = {0};
	int left;

	if (!rec)
		return 0;
	left = cj_undo_replay(rec->undo.log, undo_kinds, verbose);
	if (left == 0 && kept(rec->root)) {
		keep_exited(rec);
	} else if (left == 0) {
		cj_rm_rf(rec->dir);
	} else {
		/* What is left stays for the next gc, once our lock is gone. */
		json_object_object_add(rec->root, "state", json_object_new_string("leftover"));
		if (record_save(rec, &err) < 0)
			cj_notice("warning: %s", err.msg);
		cj_notice("warning: run %s: %d change%s of the host could not be undone; the "
		          "next `ctr-jailer gc` retries",
		          rec->id, left, left == 1 ? "" : "s");
	}
	record_free(rec); /* the lock last: gc never sees a live run as dead */
	return left ? -1 : 0;
}

/* ---- gc ------------------------------------------------------------------- */

static bool old_dir(const char *dir)
{
	struct stat st;

	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && time(NULL) - st.st_mtime >= YOUNG_S;
}

/* The owner lock of the run directory dir, taken without waiting: < 0 when
 * the run is alive (or the directory gone); -2 when it has no owner file. */
static int take_owner_lock(const char *dir)
{
	char owner[PATH_MAX + 8];
	struct stat a, b;
	int lock;

	snprintf(owner, sizeof owner, "%s/" OWNER_FILE, dir);
	lock = open(owner, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (lock < 0)
		return errno == ENOENT ? -2 : -1;
	/* The lock must be on the owner file still in place: a run that ended
	 * (removing its directory, then unlocking) between our open and flock
	 * is not a leftover. */
	if (flock(lock, LOCK_EX | LOCK_NB) < 0 || fstat(lock, &a) < 0 || stat(owner, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(lock);
		return -1;
	}
	return lock;
}

/* A staging directory whose runtime died before it published the run:
 * removed once it is old and its owner's lock is free. Nothing of the host
 * was changed for it yet. */
static bool gc_staging(const char *dir)
{
	int lock;
	bool gone;

	if (!old_dir(dir))
		return false;
	lock = take_owner_lock(dir);
	if (lock == -1)
		return false;
	gone = cj_rm_rf(dir) == 0;
	if (lock >= 0)
		close(lock);
	return gone;
}

/* The VMM the record names, killed and gone (not even a zombie). */
static bool vmm_gone(json_object *root)
{
	pid_t pid;
	unsigned long long start;

	if (!root || !proc_from_json(root, "vmm", &pid, &start) || !alive(pid, start))
		return true;
	kill(pid, SIGKILL);
	uint64_t deadline = cj_cgroup_kill_deadline();
	while (running(pid, start) && cj_now_ns() < deadline)
		usleep(10000);
	return !running(pid, start);
}

/* Every process of a leftover run's VM killed, and gone: the VMM its
 * record names (an unjailed one has no cgroup), and everything in the
 * VM's cgroups, wherever it was reparented to (a jailed Firecracker has no
 * parent-death signal, and its pid may never have been recorded). Only
 * then may the record go: it holds the VM's uid, which the next run could
 * otherwise be given while a process still runs as it. */
static bool vm_gone(const char *dir, const char *id, json_object *root)
{
	bool gone = vmm_gone(root);
	json_object *log = NULL;

	(void)dir;
	(void)id;
	if (root && json_object_object_get_ex(root, "undo", &log) &&
	    cj_jail_kill_all(log) < 0) /* the cgroups of QEMU's jail or the jailer's */
		gone = false;
	return gone;
}

/* A run directory with no record that parses: moved aside (once) for a
 * human to look at, since what it changed on the host is unknown. */
static void set_aside(const char *run_base, const char *dir, const char *name)
{
	char aside[PATH_MAX];

	snprintf(aside, sizeof aside, "%s/" BROKEN_PREFIX "%s", run_base, name);
	if (rename(dir, aside) == 0)
		cj_notice("warning: leftover run %s has no readable record; moved to %s: check "
		          "that nothing of it still runs, then remove it",
		          name, aside);
}

/* A kept record of a run that ended, nothing of it left on the host. */
static bool kept_exited(json_object *root)
{
	const char *state = cj_undo_str(root, "state");
	json_object *log = NULL;

	return state && strcmp(state, "exited") == 0 &&
	       json_object_object_get_ex(root, "undo", &log) && json_object_array_length(log) == 0;
}

/* One leftover run, its owner's lock held: 1 when it was removed. */
static int gc_run(const char *run_base, const char *dir, const char *name, bool verbose)
{
	json_object *root = record_load(dir);
	json_object *log = NULL;
	int removed = 0;

	if (!root && old_dir(dir) && vm_gone(dir, name, NULL)) {
		set_aside(run_base, dir, name);
		return 0;
	}
	if (!root)
		return 0;
	if (kept_exited(root)) {
		json_object_put(root);
		return 0; /* kept until `rm` */
	}
	if (!vm_gone(dir, name, root)) {
		if (verbose)
			cj_notice("leftover run %s: a process of its VM does not end; the run "
			          "stays for the next gc",
			          name);
	} else {
		json_object_object_get_ex(root, "undo", &log);
		int left = cj_undo_replay(log, undo_kinds, verbose);
		if (left == 0 && cj_rm_rf(dir) == 0) {
			removed = 1;
			if (verbose)
				cj_notice("removed leftover run %s", name);
		} else if (left) {
			struct cj_record rec = {.root = root};
			struct cj_err err = {0};
			snprintf(rec.dir, sizeof rec.dir, "%s", dir);
			if (record_save(&rec, &err) < 0 && verbose)
				cj_notice("warning: %s", err.msg);
		}
	}
	json_object_put(root);
	return removed;
}

int cj_gc(const char *run_base, bool verbose)
{
	DIR *d = opendir(run_base);
	struct dirent *de;
	int removed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char dir[PATH_MAX];
		int lock;

		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", run_base, de->d_name) >=
		    sizeof dir - 32)
			continue;
		if (strncmp(de->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)) == 0) {
			if (gc_staging(dir) && verbose)
				cj_notice("removed a run that never started (%s)", de->d_name);
			continue;
		}
		if (de->d_name[0] == '.')
			continue; /* the runtime's own files: locks, caches */
		lock = take_owner_lock(dir);
		if (lock == -1 || (lock == -2 && !old_dir(dir)))
			continue; /* alive, or being removed right now */
		removed += gc_run(run_base, dir, de->d_name, verbose);
		if (lock >= 0)
			close(lock);
	}
	closedir(d);
	return removed;
}

/* ---- readers of the other runs ---------------------------------------------- */

int cj_record_each(const char *run_base, const char *self,
                   int (*fn)(const char *id, json_object *record, void *ctx), void *ctx,
                   struct cj_err *err)
{
	DIR *d = opendir(run_base);
	struct dirent *de;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : cj_fail(err, errno, "open %s", run_base);
	while (r >= 0 && (de = readdir(d))) {
		char dir[PATH_MAX];
		json_object *root;

		if (de->d_name[0] == '.' || (self && strcmp(de->d_name, self) == 0))
			continue;
		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", run_base, de->d_name) >=
		    sizeof dir - 32)
			continue;
		if (!(root = record_load(dir)))
			continue;
		r = fn(de->d_name, root, ctx);
		json_object_put(root);
	}
	closedir(d);
	return r < 0 ? r : 0;
}

int cj_run_base_lock(const char *run_base, const char *name, struct cj_err *err)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/.%s.lock", run_base, name) >= sizeof path)
		return cj_fail(err, ENAMETOOLONG, "lock in %s", run_base);
	return cj_lock_file(path, err);
}
