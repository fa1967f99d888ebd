/* SPDX-License-Identifier: Apache-2.0 */
/* The run record and its undo log: create, push, reload, replay order,
 * idempotent replays, teardown, gc of leftovers, broken records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "run/record.h"
#include "util/undo.h"
#include "util/util.h"
#include "volume/volume.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	snprintf(base, sizeof base, "/tmp/cj-record-XXXXXX");
	assert_non_null(mkdtemp(base));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cj_rm_rf(base);
	return 0;
}

static json_object *load(const char *dir)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof path, "%s/record.json", dir);
	return json_object_from_file(path);
}

static size_t entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static long long field_int(json_object *o, const char *a, const char *b)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, a, &v));
	if (b)
		assert_true(json_object_object_get_ex(v, b, &v));
	return (long long)json_object_get_int64(v);
}

static void test_create_publishes_a_locked_record(void **state)
{
	struct cj_record *rec;
	struct cj_err err = {0};
	char owner[PATH_MAX + 8];
	(void)state;

	assert_int_equal(cj_record_create(base, &rec, &err), 0);
	assert_int_equal(strlen(cj_record_id(rec)), 12);
	assert_int_equal(entries(base), 1); /* no staging directory left */
	json_object *root = load(cj_record_dir(rec));
	assert_non_null(root);
	assert_int_equal(field_int(root, "version", NULL), CJ_RECORD_VERSION);
	assert_int_equal(field_int(root, "owner", "pid"), getpid());
	assert_true(field_int(root, "owner", "start") > 0);
	assert_string_equal(cj_undo_str(root, "id"), cj_record_id(rec));
	assert_string_equal(cj_undo_str(root, "state"), "created");
	json_object_put(root);
	/* alive: the owner lock is held */
	snprintf(owner, sizeof owner, "%s/owner", cj_record_dir(rec));
	int fd = open(owner, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	close(fd);
	assert_int_equal(cj_gc(base, false), 0);
	assert_int_equal(entries(base), 1);
	assert_int_equal(cj_record_teardown(rec, false), 0);
	assert_int_equal(entries(base), 0);
}

static int count(const char *id, json_object *r, void *ctx)
{
	(void)id;
	(void)r;
	++*(int *)ctx;
	return 0;
}

static void test_push_and_setters_persist(void **state)
{
	struct cj_record *rec;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_undo_push(NULL, "test.x", json_object_new_object(), &err), 0);
	assert_int_equal(cj_record_create(base, &rec, &err), 0);
	json_object *e = json_object_new_object();
	json_object_object_add(e, "n", json_object_new_int(1));
	assert_int_equal(cj_undo_push(cj_record_undo(rec), "test.first", e, &err), 0);
	assert_int_equal(cj_undo_push(cj_record_undo(rec), "test.second", NULL, &err), 0);
	assert_int_equal(cj_record_set_vmm(rec, getpid(), &err), 0);
	assert_int_equal(cj_record_set_ids(rec, 123456, 654321, &err), 0);
	assert_int_equal(cj_record_set_state(rec, "running", &err), 0);

	json_object *root = load(cj_record_dir(rec)), *undo;
	assert_non_null(root);
	assert_int_equal(field_int(root, "vmm", "pid"), getpid());
	assert_int_equal(field_int(root, "uid", NULL), 123456);
	assert_int_equal(field_int(root, "gid", NULL), 654321);
	assert_string_equal(cj_undo_str(root, "state"), "running");
	assert_true(json_object_object_get_ex(root, "undo", &undo));
	assert_int_equal(json_object_array_length(undo), 2);
	json_object *first = json_object_array_get_idx(undo, 0);
	assert_string_equal(cj_undo_str(first, "kind"), "test.first");
	long long n = 0;
	assert_true(cj_undo_int(first, "n", &n));
	assert_int_equal(n, 1);
	assert_string_equal(cj_undo_str(json_object_array_get_idx(undo, 1), "kind"), "test.second");
	json_object_put(root);

	/* each() sees the other runs' records, never its own */
	int seen = 0;
	assert_int_equal(cj_record_each(base, NULL, count, &seen, &err), 0);
	assert_int_equal(seen, 1);
	seen = 0;
	assert_int_equal(cj_record_each(base, cj_record_id(rec), count, &seen, &err), 0);
	assert_int_equal(seen, 0);

	/* kinds no module knows: kept, the directory stays for a later gc */
	assert_int_equal(cj_record_teardown(rec, false), -1);
	assert_int_equal(entries(base), 1);
}

static char calls[8][32];
static int ncalls;
static int fail_kind_b;

static int replay_test(json_object *entry, bool verbose)
{
	const char *kind = cj_undo_str(entry, "kind");
	(void)verbose;

	snprintf(calls[ncalls++ % 8], sizeof calls[0], "%s", kind);
	return fail_kind_b && strcmp(kind, "t.b") == 0 ? -1 : 0;
}

static const struct cj_undo_kind test_kinds[] = {
    {"t", replay_test},
    {NULL, NULL},
};

static json_object *log_of(const char *const *kinds, size_t n)
{
	struct cj_undo u = {.log = json_object_new_array()};
	struct cj_err err = {0};

	for (size_t i = 0; i < n; i++)
		assert_int_equal(cj_undo_push(&u, kinds[i], NULL, &err), 0);
	return u.log;
}

static void test_replay_is_newest_first_and_idempotent(void **state)
{
	static const char *const kinds[] = {"t.a", "t.b", "t.c"};
	json_object *log = log_of(kinds, 3);
	json_object *copy = NULL;
	(void)state;

	assert_int_equal(json_object_deep_copy(log, &copy, NULL), 0);
	ncalls = 0;
	fail_kind_b = 0;
	assert_int_equal(cj_undo_replay(log, test_kinds, false), 0);
	assert_int_equal(ncalls, 3);
	assert_string_equal(calls[0], "t.c");
	assert_string_equal(calls[1], "t.b");
	assert_string_equal(calls[2], "t.a");
	assert_int_equal(json_object_array_length(log), 0);
	/* a second replay of an emptied log does nothing */
	assert_int_equal(cj_undo_replay(log, test_kinds, false), 0);
	assert_int_equal(ncalls, 3);

	/* one that cannot be undone stays; the others go; replaying it again
	 * once it can be is harmless */
	fail_kind_b = 1;
	ncalls = 0;
	assert_int_equal(cj_undo_replay(copy, test_kinds, false), 1);
	assert_int_equal(json_object_array_length(copy), 1);
	assert_string_equal(cj_undo_str(json_object_array_get_idx(copy, 0), "kind"), "t.b");
	fail_kind_b = 0;
	assert_int_equal(cj_undo_replay(copy, test_kinds, false), 0);
	assert_int_equal(json_object_array_length(copy), 0);
	json_object_put(log);
	json_object_put(copy);

	/* garbage entries: kept, never a crash */
	log = json_tokener_parse("[1, \"x\", null, {}, {\"kind\": 3}, {\"kind\": \"t\"}]");
	assert_non_null(log);
	ncalls = 0;
	assert_int_equal(cj_undo_replay(log, test_kinds, false), 5);
	assert_int_equal(ncalls, 1); /* "t": the module itself, no what */
	json_object_put(log);
	assert_int_equal(cj_undo_replay(NULL, test_kinds, false), 0);
}

/* A stage done again (a restart's VMM) replays only its own entries. */
static void test_replay_from_a_mark(void **state)
{
	static const char *const kinds[] = {"t.net", "t.jail1", "t.jail2"};
	json_object *log = log_of(kinds, 3);
	(void)state;

	ncalls = 0;
	fail_kind_b = 0;
	assert_int_equal(cj_undo_replay_from(log, 1, test_kinds, false), 0);
	assert_int_equal(ncalls, 2);
	assert_string_equal(calls[0], "t.jail2");
	assert_string_equal(calls[1], "t.jail1");
	assert_int_equal(json_object_array_length(log), 1);
	assert_string_equal(cj_undo_str(json_object_array_get_idx(log, 0), "kind"), "t.net");
	/* a mark at or past the end replays nothing */
	assert_int_equal(cj_undo_replay_from(log, 1, test_kinds, false), 0);
	assert_int_equal(cj_undo_replay_from(log, 5, test_kinds, false), 0);
	assert_int_equal(ncalls, 2);
	json_object_put(log);
}

/* A run directory as a killed runtime leaves it. */
static void leftover(const char *name, const char *record, bool old)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	FILE *f;

	snprintf(dir, sizeof dir, "%s/%s", base, name);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/owner", dir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	if (record) {
		snprintf(path, sizeof path, "%s/record.json", dir);
		assert_non_null(f = fopen(path, "w"));
		fputs(record, f);
		fclose(f);
	}
	if (old) {
		struct timespec ts[2] = {{.tv_sec = time(NULL) - 3600},
		                         {.tv_sec = time(NULL) - 3600}};
		assert_int_equal(utimensat(AT_FDCWD, dir, ts, 0), 0);
	}
}

static bool exists(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", base, name);
	return lstat(path, &st) == 0;
}

static void test_gc_kills_the_vmm_and_removes_the_run(void **state)
{
	char text[512];
	pid_t child = fork();
	(void)state;

	if (child == 0) {
		pause();
		_exit(0);
	}
	assert_true(child > 0);
	snprintf(text, sizeof text,
	         "{\"version\": 1, \"id\": \"0123456789ab\", \"owner\": {\"pid\": 1, \"start\": 1},"
	         " \"vmm\": {\"pid\": %d, \"start\": %llu}, \"state\": \"running\", \"undo\": []}",
	         (int)child, cj_proc_starttime(child));
	leftover("0123456789ab", text, false);
	assert_int_equal(cj_gc(base, false), 1);
	assert_false(exists("0123456789ab"));
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_gc_survives_broken_records(void **state)
{
	static const char *const broken[] = {
	    "",
	    "{\"version\": 1, \"id\": \"ab\", \"undo\": [",
	    "\x01\x02garbage\xff",
	    "[]",
	    "{\"undo\": 7}",
	    "{\"version\": 1, \"vmm\": {\"pid\": \"x\"}, \"undo\": [1, {\"kind\": []}]}",
	};
	char name[32];
	(void)state;

	for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
		snprintf(name, sizeof name, "old%zu", i);
		leftover(name, broken[i], true);
		snprintf(name, sizeof name, "young%zu", i);
		leftover(name, broken[i], false);
	}
	leftover("norecord", NULL, true);
	cj_gc(base, false);
	cj_gc(base, false);
	for (size_t i = 0; i < sizeof broken / sizeof broken[0] - 1; i++) {
		snprintf(name, sizeof name, "young%zu", i);
		assert_true(exists(name)); /* may be on its way */
		snprintf(name, sizeof name, "old%zu", i);
		assert_false(exists(name)); /* set aside for a human */
		snprintf(name, sizeof name, ".broken-old%zu", i);
		assert_true(exists(name));
	}
	/* a record that parses, with entries no module knows: kept as is */
	assert_true(exists("old5") && exists("young5"));
	assert_true(exists(".broken-norecord"));
}

/* A new volume is made under a temporary name pushed first, and is whole
 * once under its own name; the replay of its entry is then a no-op, and
 * removes the temporary file of a run killed halfway. */
static void test_volume_creation_is_recorded(void **state)
{
	struct cj_undo u = {.log = json_object_new_array()};
	struct cj_volume_tool_user tools = {.uid = 2000000000, .gid = 2000000000};
	struct cj_volume v;
	struct cj_err err = {0};
	char data[PATH_MAX + 16];
	(void)state;

	assert_int_equal(cj_volume_prepare_data(base, 32ull << 20, &tools, &u, &v, &err), 0);
	assert_true(v.created);
	snprintf(data, sizeof data, "%s/datafs.ext4", base);
	assert_string_equal(v.path, data);
	assert_int_equal(entries(base), 1); /* the volume, no temporary file */
	assert_int_equal(json_object_array_length(u.log), 1);
	json_object *e = json_object_array_get_idx(u.log, 0);
	assert_string_equal(cj_undo_str(e, "kind"), "volume.new");
	const char *tmp = cj_undo_str(e, "path");
	assert_non_null(strstr(tmp, "/.datafs.ext4.new-"));
	assert_int_equal(cj_volume_undo(e, false), 0);
	assert_true(exists("datafs.ext4"));
	cj_volume_release(&v);

	/* a run killed during mkfs: the temporary file goes at replay */
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(entries(base), 2);
	assert_int_equal(cj_volume_undo(e, false), 0);
	assert_int_equal(entries(base), 1);
	json_object_put(u.log);

	/* never a path create_volume would not have named */
	static const char *const refused[] = {
	    "{\"kind\": \"volume.new\", \"path\": \"/etc/passwd\"}",
	    "{\"kind\": \"volume.new\", \"path\": \"/tmp/x.new-1\"}",
	    "{\"kind\": \"volume.new\", \"path\": \"rel/.x.new-1\"}",
	    "{\"kind\": \"volume.new\"}",
	    "{\"kind\": \"volume.other\", \"path\": \"/tmp/.x.new-1\"}",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		e = json_tokener_parse(refused[i]);
		assert_int_equal(cj_volume_undo(e, false), -1);
		json_object_put(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_publishes_a_locked_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_push_and_setters_persist, setup, teardown),
	    cmocka_unit_test(test_replay_is_newest_first_and_idempotent),
	    cmocka_unit_test(test_replay_from_a_mark),
	    cmocka_unit_test_setup_teardown(test_gc_kills_the_vmm_and_removes_the_run, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_gc_survives_broken_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_volume_creation_is_recorded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
