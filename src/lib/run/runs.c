/* SPDX-License-Identifier: Apache-2.0 */
#include "runs.h"

#include "record.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct find {
	const char *ref;
	char exact[16], named[16], prefixed[16];
	int nprefix;
};

static int find_one(const char *id, json_object *record, void *ctx)
{
	struct find *f = ctx;
	const char *name = cj_undo_str(record, "name");

	if (strcmp(id, f->ref) == 0)
		snprintf(f->exact, sizeof f->exact, "%s", id);
	if (name && strcmp(name, f->ref) == 0)
		snprintf(f->named, sizeof f->named, "%s", id);
	if (strncmp(id, f->ref, strlen(f->ref)) == 0 && f->nprefix++ == 0)
		snprintf(f->prefixed, sizeof f->prefixed, "%s", id);
	return 0;
}

int cj_runs_find(const char *run_base, const char *ref, char id[16], struct cj_err *err)
{
	struct find f = {.ref = ref};
	const char *got;

	if (!*ref)
		return cj_fail(err, 0, "an empty run name or id");
	if (cj_record_each(run_base, NULL, find_one, &f, err) < 0)
		return -1;
	got = f.exact[0] ? f.exact : f.named[0] ? f.named : f.nprefix == 1 ? f.prefixed : NULL;
	if (!got && f.nprefix > 1)
		return cj_fail(err, 0, "'%s' is the start of %d run ids: give more of the id", ref,
		               f.nprefix);
	if (!got)
		return cj_fail(err, ENOENT, "no such run: %s (see 'ctr-jailer ps -a')", ref);
	snprintf(id, 16, "%s", got);
	return 0;
}

struct latest {
	const char *run_base;
	char id[16], created[64];
};

static int latest_one(const char *id, json_object *record, void *ctx)
{
	struct latest *l = ctx;
	const char *state = cj_undo_str(record, "state"), *created = cj_undo_str(record, "created");

	/* RFC 3339 in UTC with nanoseconds: the strings sort as the times */
	if (!state || strcmp(state, "running") != 0 || !created ||
	    strcmp(created, l->created) <= 0 || !cj_runs_alive(l->run_base, id))
		return 0;
	snprintf(l->id, sizeof l->id, "%s", id);
	snprintf(l->created, sizeof l->created, "%s", created);
	return 0;
}

int cj_runs_latest(const char *run_base, char id[16], struct cj_err *err)
{
	struct latest l = {.run_base = run_base};

	if (cj_record_each(run_base, NULL, latest_one, &l, err) < 0)
		return -1;
	if (!l.id[0])
		return cj_fail(err, ENOENT, "no run is running (see 'ctr-jailer ps -a')");
	snprintf(id, 16, "%s", l.id);
	return 0;
}

json_object *cj_runs_read(const char *run_base, const char *id, struct cj_err *err)
{
	char path[PATH_MAX];
	char *text = NULL;
	json_object *root;

	snprintf(path, sizeof path, "%s/%s/record.json", run_base, id);
	if (cj_read_file(path, &text, NULL, err) < 0)
		return NULL;
	root = json_tokener_parse(text);
	free(text);
	if (!root)
		cj_fail(err, 0, "run %s has no readable record", id);
	return root;
}

static int owner_open(const char *run_base, const char *id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s/owner", run_base, id);
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

bool cj_runs_alive(const char *run_base, const char *id)
{
	cj_autoclose int fd = owner_open(run_base, id);

	return fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

int cj_runs_wait(const char *run_base, const char *id, struct cj_err *err)
{
	cj_autoclose int fd = owner_open(run_base, id);
	int r;

	if (fd < 0)
		return errno == ENOENT ? 0 : cj_fail(err, errno, "run %s", id);
	do
		r = flock(fd, LOCK_SH);
	while (r < 0 && errno == EINTR);
	return r < 0 ? cj_fail(err, errno, "wait for run %s", id) : 0;
}

int cj_runs_remove(const char *run_base, const char *id, struct cj_err *err)
{
	char dir[PATH_MAX];
	cj_autoclose int fd = owner_open(run_base, id);
	json_object *root;
	const char *state;
	bool exited;

	snprintf(dir, sizeof dir, "%s/%s", run_base, id);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		return cj_fail(err, EBUSY,
		               "run %s is running: stop it first, or remove it with 'rm -f'", id);
	if (!(root = cj_runs_read(run_base, id, err)))
		return -1;
	state = cj_undo_str(root, "state");
	exited = state && strcmp(state, "exited") == 0;
	json_object_put(root);
	if (!exited) { /* its owner died: gc replays what it left on the host */
		close(fd);
		fd = -1;
		return cj_gc(run_base, false) >= 0 && access(dir, F_OK) < 0
		           ? 0
		           : cj_fail(err, 0, "run %s left changes on the host: run 'ctr-jailer gc'",
		                     id);
	}
	if (cj_rm_rf(dir) < 0)
		return cj_fail(err, errno, "remove %s", dir);
	return 0;
}

/* The run's supervisor (the record's owner, checked by its start time). */
static pid_t supervisor(const char *run_base, const char *id, struct cj_err *err)
{
	json_object *root = cj_runs_read(run_base, id, err), *o, *v;
	pid_t pid = 0;
	unsigned long long start = 0;

	if (!root)
		return -1;
	if (json_object_object_get_ex(root, "owner", &o)) {
		if (json_object_object_get_ex(o, "pid", &v))
			pid = (pid_t)json_object_get_int64(v);
		if (json_object_object_get_ex(o, "start", &v))
			start = json_object_get_uint64(v);
	}
	json_object_put(root);
	if (pid <= 0 || !cj_runs_alive(run_base, id) || cj_proc_starttime(pid) != start)
		return cj_fail(err, ESRCH, "run %s is not running", id);
	return pid;
}

int cj_runs_signal(const char *run_base, const char *id, int sig, struct cj_err *err)
{
	pid_t pid = supervisor(run_base, id, err);

	if (pid < 0)
		return -1;
	if (kill(pid, sig) < 0)
		return cj_fail(err, errno, "signal run %s", id);
	return 0;
}

int cj_runs_forward(const char *run_base, const char *id, int sig, struct cj_err *err)
{
	pid_t pid = supervisor(run_base, id, err);

	if (pid < 0)
		return -1;
	if (sigqueue(pid, CJ_SIG_FORWARD, (union sigval){.sival_int = sig}) < 0)
		return cj_fail(err, errno, "signal run %s", id);
	return 0;
}
