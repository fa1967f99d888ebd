/* SPDX-License-Identifier: Apache-2.0 */
/* A uid/gid per VM: the range option and the allocation under the run base. */
#include "jail/jail.h"
#include "util/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_uid_range_parse(void **state)
{
	static const struct {
		const char *in;
		uint32_t start, count;
	} good[] = {
	    {"2000000000:65536", 2000000000u, 65536},
	    {"1:1", 1, 1},
	    {"4294967294:1", 4294967294u, 1},
	    {"1:4294967294", 1, 4294967294u},
	    {"0100:02", 100, 2},
	};
	static const char *const bad[] = {
	    "",
	    ":",
	    "0:10",
	    "10:0",
	    "a:b",
	    "10",
	    "10:",
	    ":10",
	    "-1:5",
	    "1:-5",
	    " 10:5",
	    "10: 5",
	    "+10:5",
	    "10:5x",
	    "10:5 ",
	    "4294967295:1",
	    "4294967290:10",
	    "1:4294967295",
	    "18446744073709551615:2",
	    "18446744073709551616:1",
	    "10:5:3",
	    "0x10:5",
	    "10\n:5",
	};
	struct cj_err err = {0};

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct cj_jail_spec spec = {0};
		assert_int_equal(
		    cj_jail_uid_range_parse(good[i].in, "--jail-uid-range", &spec, &err), 0);
		assert_int_equal(spec.uid_start, good[i].start);
		assert_int_equal(spec.uid_count, good[i].count);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cj_jail_spec spec = {0};
		if (cj_jail_uid_range_parse(bad[i], "--jail-uid-range", &spec, &err) == 0)
			fail_msg("'%s' accepted as %u:%u", bad[i], spec.uid_start, spec.uid_count);
		assert_non_null(strstr(err.msg, "--jail-uid-range"));
		assert_int_equal(spec.uid_start, 0);
		assert_int_equal(spec.uid_count, 0);
	}
}

struct base {
	char dir[64];
};

static int base_setup(void **state)
{
	struct base *b = calloc(1, sizeof *b);
	snprintf(b->dir, sizeof b->dir, "/tmp/cj-jail-ids-XXXXXX");
	if (!mkdtemp(b->dir))
		return -1;
	*state = b;
	return 0;
}

static int base_teardown(void **state)
{
	struct base *b = *state;
	cj_rm_rf(b->dir);
	free(b);
	return 0;
}

static void new_run(const struct base *b, const char *id, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", b->dir, id);
	assert_int_equal(mkdir(out, 0700), 0);
}

static void recorded(const char *run, unsigned *uid, unsigned *gid)
{
	char path[256], *text = NULL;
	struct cj_err err = {0};

	snprintf(path, sizeof path, "%s/" CJ_JAIL_ID_FILE, run);
	assert_int_equal(cj_read_file(path, &text, NULL, &err), 0);
	assert_int_equal(sscanf(text, "%u %u", uid, gid), 2);
	free(text);
}

static void test_assign_distinct_until_the_range_is_full(void **state)
{
	struct base *b = *state;
	struct cj_jail_spec spec = {.uid_start = 3000000000u, .uid_count = 3};
	char runs[4][128];
	unsigned uid[3], gid[3];
	struct cj_err err = {0};

	/* records of other kinds, and broken ones, are not uids */
	char junk[128], path[192];
	new_run(b, "junk", junk, sizeof junk);
	snprintf(path, sizeof path, "%s/" CJ_JAIL_ID_FILE, junk);
	FILE *f = fopen(path, "w");
	fputs("not a uid\n", f);
	fclose(f);

	for (int i = 0; i < 3; i++) {
		struct cj_jail_plan cfg = {.enabled = true, .uid = 999, .gid = 999};
		char id[8];
		snprintf(id, sizeof id, "r%d", i);
		new_run(b, id, runs[i], sizeof runs[i]);
		assert_int_equal(cj_jail_assign_ids(&spec, b->dir, runs[i], &cfg, &err), 0);
		recorded(runs[i], &uid[i], &gid[i]);
		assert_int_equal(uid[i], cfg.uid);
		assert_int_equal(gid[i], cfg.gid);
		assert_int_equal(uid[i], gid[i]);
		assert_true(uid[i] >= 3000000000u && uid[i] < 3000000003u);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(uid[i], uid[j]);
	}
	/* full: a clear error, and no record */
	struct cj_jail_plan cfg = {.enabled = true};
	new_run(b, "r3", runs[3], sizeof runs[3]);
	assert_int_equal(cj_jail_assign_ids(&spec, b->dir, runs[3], &cfg, &err), -1);
	assert_non_null(strstr(err.msg, "--jail-uid-range"));
	snprintf(path, sizeof path, "%s/" CJ_JAIL_ID_FILE, runs[3]);
	assert_int_equal(access(path, F_OK), -1);
	/* a run that ended (its directory removed) frees its uid */
	cj_rm_rf(runs[1]);
	assert_int_equal(cj_jail_assign_ids(&spec, b->dir, runs[3], &cfg, &err), 0);
	assert_int_equal(cfg.uid, uid[1]);
}

static void test_explicit_user_and_no_jail(void **state)
{
	struct base *b = *state;
	char run[128], path[192];
	struct cj_err err = {0};
	unsigned uid, gid;

	/* --jail-user: its uid, not one of the range, recorded all the same */
	struct cj_jail_spec spec = {.user = "4242:4343"};
	struct cj_jail_plan cfg = {.enabled = true, .uid = 4242, .gid = 4343};
	new_run(b, "user", run, sizeof run);
	assert_int_equal(cj_jail_assign_ids(&spec, b->dir, run, &cfg, &err), 0);
	assert_int_equal(cfg.uid, 4242);
	assert_int_equal(cfg.gid, 4343);
	recorded(run, &uid, &gid);
	assert_int_equal(uid, 4242);
	assert_int_equal(gid, 4343);
	/* --no-jail: nothing to assign, nothing recorded */
	struct cj_jail_spec none = {.disabled = true};
	struct cj_jail_plan off = {.enabled = false};
	new_run(b, "nojail", run, sizeof run);
	assert_int_equal(cj_jail_assign_ids(&none, b->dir, run, &off, &err), 0);
	snprintf(path, sizeof path, "%s/" CJ_JAIL_ID_FILE, run);
	assert_int_equal(access(path, F_OK), -1);
	/* the default range */
	struct cj_jail_spec dflt = {0};
	struct cj_jail_plan d = {.enabled = true};
	new_run(b, "default", run, sizeof run);
	assert_int_equal(cj_jail_assign_ids(&dflt, b->dir, run, &d, &err), 0);
	assert_true(d.uid >= CJ_JAIL_UID_START && d.uid < CJ_JAIL_UID_START + CJ_JAIL_UID_COUNT);
	assert_int_equal(d.uid, d.gid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uid_range_parse),
	    cmocka_unit_test_setup_teardown(test_assign_distinct_until_the_range_is_full,
	                                    base_setup, base_teardown),
	    cmocka_unit_test_setup_teardown(test_explicit_user_and_no_jail, base_setup,
	                                    base_teardown),
	};
	return cmocka_run_group_tests_name("jail_ids", tests, NULL, NULL);
}
