/* SPDX-License-Identifier: Apache-2.0 */
/* The lifecycle's records: run names (docker's rule, random ones,
 * uniqueness among live and exited runs), finding a run by id, name or id
 * prefix, a kept record outliving its run (and gc), removal, and the
 * console log's rotation bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "run/health.h"
#include "run/logfile.h"
#include "run/names.h"
#include "run/record.h"
#include "run/runs.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	snprintf(base, sizeof base, "/tmp/cj-runs-XXXXXX");
	assert_non_null(mkdtemp(base));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cj_rm_rf(base);
	return 0;
}

static void test_name_rule(void **state)
{
	static const char *const good[] = {"web", "a1", "Web_1.x-y", "9lives", "ab"};
	static const char *const bad[] = {"",     "a",     "_web", ".web",  "-web",
	                                  "we b", "web/1", "wéb",  "web:1", "a\nb"};
	char longname[CJ_NAME_MAX + 2];
	(void)state;

	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_null(cj_name_invalid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_non_null(cj_name_invalid(bad[i]));
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_non_null(cj_name_invalid(longname)); /* 129 characters */
	longname[CJ_NAME_MAX] = '\0';
	assert_null(cj_name_invalid(longname));
	for (int i = 0; i < 100; i++) {
		char buf[CJ_NAME_MAX + 1];
		cj_name_random(buf, sizeof buf);
		assert_null(cj_name_invalid(buf));
		assert_non_null(strchr(buf, '_'));
	}
}

static struct cj_record *named(const char *name)
{
	struct cj_record *rec;
	struct cj_err err = {0};

	assert_int_equal(cj_record_create(base, &rec, &err), 0);
	assert_int_equal(cj_record_claim_name(rec, name, &err), 0);
	return rec;
}

static void test_names_are_unique_among_live_and_exited(void **state)
{
	struct cj_record *a = named("web"), *b, *c;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_record_create(base, &b, &err), 0);
	assert_int_equal(cj_record_claim_name(b, "web", &err), -1);
	assert_non_null(strstr(err.msg, "already in use"));
	assert_int_equal(cj_record_claim_name(b, "bad name", &err), -1);
	assert_int_equal(cj_record_claim_name(b, NULL, &err), 0); /* a random one */
	/* a kept record of a run that ended still holds its name */
	assert_int_equal(cj_record_set_keep(a, true, &err), 0);
	assert_int_equal(cj_record_set_exit(a, 3, &err), 0);
	assert_int_equal(cj_record_teardown(a, false), 0);
	assert_int_equal(cj_gc(base, false), 0); /* gc leaves a kept exited record */
	assert_int_equal(cj_record_create(base, &c, &err), 0);
	assert_int_equal(cj_record_claim_name(c, "web", &err), -1);
	/* until it is removed */
	char id[16];
	assert_int_equal(cj_runs_find(base, "web", id, &err), 0);
	assert_false(cj_runs_alive(base, id));
	json_object *rec = cj_runs_read(base, id, &err);
	assert_non_null(rec);
	json_object *v;
	assert_true(json_object_object_get_ex(rec, "exit_code", &v));
	assert_int_equal(json_object_get_int(v), 3);
	assert_string_equal(json_object_get_string(json_object_object_get(rec, "state")), "exited");
	json_object_put(rec);
	assert_int_equal(cj_runs_remove(base, id, &err), 0);
	assert_int_equal(cj_record_claim_name(c, "web", &err), 0);
	cj_record_teardown(b, false);
	cj_record_teardown(c, false);
}

static void test_find_by_id_name_and_prefix(void **state)
{
	struct cj_record *recs[17];
	struct cj_err err = {0};
	char id[16], shared[2] = {0};
	int first_of[16] = {0};
	(void)state;

	for (int i = 0; i < 17; i++) {
		char name[16];
		snprintf(name, sizeof name, "run%d", i);
		recs[i] = named(name);
	}
	/* an exact id, a name, a unique prefix */
	const char *id0 = cj_record_id(recs[0]);
	assert_int_equal(cj_runs_find(base, id0, id, &err), 0);
	assert_string_equal(id, id0);
	assert_int_equal(cj_runs_find(base, "run5", id, &err), 0);
	assert_string_equal(id, cj_record_id(recs[5]));
	char prefix[12];
	snprintf(prefix, sizeof prefix, "%.10s", id0);
	assert_int_equal(cj_runs_find(base, prefix, id, &err), 0);
	assert_string_equal(id, id0);
	/* 17 ids, 16 first digits: one is shared, and ambiguous */
	for (int i = 0; i < 17; i++) {
		const char *x = cj_record_id(recs[i]);
		int d = x[0] <= '9' ? x[0] - '0' : x[0] - 'a' + 10;
		if (first_of[d]++)
			shared[0] = x[0];
	}
	assert_int_equal(cj_runs_find(base, shared, id, &err), -1);
	assert_non_null(strstr(err.msg, "give more of the id"));
	assert_int_equal(cj_runs_find(base, "nosuch", id, &err), -1);
	assert_non_null(strstr(err.msg, "no such run"));
	assert_int_equal(cj_runs_find(base, "", id, &err), -1);
	/* a live run is not removed */
	assert_true(cj_runs_alive(base, id0));
	assert_int_equal(cj_runs_remove(base, id0, &err), -1);
	assert_int_equal(err.errnum, EBUSY);
	for (int i = 0; i < 17; i++)
		assert_int_equal(cj_record_teardown(recs[i], false), 0);
	assert_int_equal(cj_runs_find(base, "run5", id, &err), -1); /* not kept */
}

/* exec --latest: the live, running run created last. */
static void test_latest_is_the_newest_running_run(void **state)
{
	struct cj_record *old, *newer, *not_started;
	struct cj_err err = {0};
	char id[16];
	(void)state;

	assert_int_equal(cj_runs_latest(base, id, &err), -1);
	assert_non_null(strstr(err.msg, "no run is running"));
	old = named("old");
	newer = named("newer");
	not_started = named("notstarted"); /* created last, but no VMM yet */
	assert_int_equal(cj_record_set_vmm(old, getpid(), &err), 0);
	assert_int_equal(cj_record_set_vmm(newer, getpid(), &err), 0);
	assert_int_equal(cj_runs_latest(base, id, &err), 0);
	assert_string_equal(id, cj_record_id(newer));
	/* the old one's restart does not make it the latest */
	assert_int_equal(cj_record_set_vmm(old, getpid(), &err), 0);
	assert_int_equal(cj_runs_latest(base, id, &err), 0);
	assert_string_equal(id, cj_record_id(newer));
	assert_int_equal(cj_record_teardown(newer, false), 0);
	assert_int_equal(cj_runs_latest(base, id, &err), 0);
	assert_string_equal(id, cj_record_id(old));
	assert_int_equal(cj_record_teardown(old, false), 0);
	assert_int_equal(cj_runs_latest(base, id, &err), -1);
	assert_int_equal(cj_record_teardown(not_started, false), 0);
}

/* docker's health states: a success is healthy at once; failures in the
 * start period do not count until the run was healthy; retries failures
 * in a row make it unhealthy; a success resets the streak. */
static void test_health_state_machine(void **state)
{
	struct cj_health_spec spec = {.retries = 2, .start_period_ms = 1000};
	struct cj_health_state st = {CJ_HEALTH_STARTING, 0};
	(void)state;

	cj_health_account(&st, &spec, 10, false);
	cj_health_account(&st, &spec, 500, false);
	cj_health_account(&st, &spec, 999, false);
	assert_int_equal(st.status, CJ_HEALTH_STARTING);
	assert_int_equal(st.failing_streak, 0);
	cj_health_account(&st, &spec, 1000, false); /* after the start period: counts */
	assert_int_equal(st.failing_streak, 1);
	assert_int_equal(st.status, CJ_HEALTH_STARTING);
	cj_health_account(&st, &spec, 1200, true);
	assert_int_equal(st.status, CJ_HEALTH_HEALTHY);
	assert_int_equal(st.failing_streak, 0);
	cj_health_account(&st, &spec, 1300, false); /* healthy: the start period is over */
	assert_int_equal(st.status, CJ_HEALTH_HEALTHY);
	assert_int_equal(st.failing_streak, 1);
	cj_health_account(&st, &spec, 1400, false);
	assert_int_equal(st.status, CJ_HEALTH_UNHEALTHY);
	assert_string_equal(cj_health_status_name(st.status), "unhealthy");
	cj_health_account(&st, &spec, 1500, true);
	assert_int_equal(st.status, CJ_HEALTH_HEALTHY);
	/* the defaults: interval 30 s, timeout 30 s, 3 retries */
	struct cj_health_spec d = {0};
	assert_false(cj_health_defaults(&d)); /* no test: no check */
	assert_int_equal(d.interval_ms, 30000);
	assert_int_equal(d.timeout_ms, 30000);
	assert_int_equal(d.retries, 3);
}

/* The supervisor's poll timeout for a check weeks away stays a positive
 * int (--health-interval takes up to years): never a negative "wait
 * forever" or a wrapped short one. */
static void test_health_long_interval_poll_timeout(void **state)
{
	struct cj_record *rec = named("longint");
	struct cj_health_spec spec = {.interval_ms = 30ull * 24 * 3600 * 1000}; /* 30 days */
	struct cj_health *h = NULL;
	struct cj_err err = {0};
	struct pollfd p;
	(void)state;

	assert_int_equal(cj_strv_push(&spec.test, "true"), 0);
	assert_int_equal(cj_health_open(&spec, base, cj_record_id(rec), rec, &h, &err), 0);
	assert_non_null(h);
	cj_health_boot(h);
	int ms = cj_health_pollfd(h, &p);
	assert_true(ms > 24 * 3600 * 1000); /* more than a day, however it is capped */
	assert_int_equal(p.fd, -1);
	cj_health_close(h);
	cj_strv_free(&spec.test);
	assert_int_equal(cj_record_teardown(rec, false), 0);
}

static void test_kept_record_keeps_only_record_and_logs(void **state)
{
	struct cj_record *rec = named("kept");
	struct cj_err err = {0};
	char path[PATH_MAX + 32], dir[PATH_MAX];
	(void)state;

	snprintf(dir, sizeof dir, "%s", cj_record_dir(rec));
	snprintf(path, sizeof path, "%s/root", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/console.log", dir);
	FILE *f = fopen(path, "w");
	fputs("x\n", f);
	fclose(f);
	assert_int_equal(cj_record_set_keep(rec, true, &err), 0);
	assert_int_equal(cj_record_teardown(rec, false), 0);
	snprintf(path, sizeof path, "%s/root", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof path, "%s/console.log", dir);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof path, "%s/record.json", dir);
	assert_int_equal(access(path, F_OK), 0);
}

static void test_console_log_rotation_is_bounded(void **state)
{
	struct cj_log log;
	struct cj_err err = {0};
	char line[100], path[PATH_MAX + 32];
	struct stat a, b;
	(void)state;

	assert_int_equal(cj_log_open(&log, base, &err), 0);
	memset(line, 'x', sizeof line - 1);
	line[sizeof line - 1] = '\n';
	for (int i = 0; i < 60000; i++) /* 6 MB: three rotations */
		cj_log_write(&log, line, sizeof line);
	cj_log_write(&log, "part", 4);
	cj_log_write(&log, "ial\n", 4);
	cj_log_close(&log);
	snprintf(path, sizeof path, "%s/console.log", base);
	assert_int_equal(stat(path, &a), 0);
	snprintf(path, sizeof path, "%s/console.log.1", base);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_size <= CJ_LOG_MAX + 200);
	assert_true(b.st_size <= CJ_LOG_MAX + 200 && b.st_size >= CJ_LOG_MAX);
	snprintf(path, sizeof path, "%s/console.log.2", base);
	assert_int_equal(access(path, F_OK), -1);
	/* each line starts with its time; a line in two writes is one line */
	char *text = NULL;
	size_t len;
	snprintf(path, sizeof path, "%s/console.log", base);
	assert_int_equal(cj_read_file(path, &text, &len, &err), 0);
	assert_true(len > 32);
	assert_memory_equal(text, "20", 2);
	assert_int_equal(text[29], 'Z');
	assert_non_null(strstr(text, "Z partial\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_rule),
	    cmocka_unit_test(test_health_state_machine),
	    cmocka_unit_test_setup_teardown(test_health_long_interval_poll_timeout, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_names_are_unique_among_live_and_exited, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_find_by_id_name_and_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_latest_is_the_newest_running_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kept_record_keeps_only_record_and_logs, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_console_log_rotation_is_bounded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
