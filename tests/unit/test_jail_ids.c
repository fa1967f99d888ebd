/* SPDX-License-Identifier: Apache-2.0 */
/* A uid/gid per VM: the range option and the pick among the other runs' uids. */
#include "jail/jail.h"
#include "util/util.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

/* The uids other runs hold (their records' "uid", read by the run):
 * distinct picks until the range is full; a freed uid is picked again. */
static void test_pick_distinct_until_the_range_is_full(void **state)
{
	struct cj_jail_spec spec = {.uid_start = 3000000000u, .uid_count = 3};
	uid_t used[3];
	struct cj_err err = {0};
	(void)state;

	for (int i = 0; i < 3; i++) {
		struct cj_jail_plan cfg = {.enabled = true, .uid = 999, .gid = 999};
		assert_int_equal(cj_jail_pick_ids(&spec, used, (size_t)i, &cfg, &err), 0);
		assert_int_equal(cfg.uid, cfg.gid);
		assert_true(cfg.uid >= 3000000000u && cfg.uid < 3000000003u);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(cfg.uid, used[j]);
		used[i] = cfg.uid;
	}
	/* full: a clear error */
	struct cj_jail_plan cfg = {.enabled = true};
	assert_int_equal(cj_jail_pick_ids(&spec, used, 3, &cfg, &err), -1);
	assert_non_null(strstr(err.msg, "--jail-uid-range"));
	/* a run that ended frees its uid */
	uid_t freed = used[1];
	used[1] = used[2];
	assert_int_equal(cj_jail_pick_ids(&spec, used, 2, &cfg, &err), 0);
	assert_int_equal(cfg.uid, freed);
}

static void test_explicit_user_and_no_jail(void **state)
{
	struct cj_err err = {0};
	uid_t used[1] = {CJ_JAIL_UID_START};
	(void)state;

	/* --jail-user: its uid, not one of the range */
	struct cj_jail_spec spec = {.user = "4242:4343"};
	struct cj_jail_plan cfg = {.enabled = true, .uid = 4242, .gid = 4343};
	assert_int_equal(cj_jail_pick_ids(&spec, used, 1, &cfg, &err), 0);
	assert_int_equal(cfg.uid, 4242);
	assert_int_equal(cfg.gid, 4343);
	/* --no-jail: nothing to pick */
	struct cj_jail_spec none = {.disabled = true};
	struct cj_jail_plan off = {.enabled = false};
	assert_int_equal(cj_jail_pick_ids(&none, used, 1, &off, &err), 0);
	assert_int_equal(off.uid, 0);
	/* the default range */
	struct cj_jail_spec dflt = {0};
	struct cj_jail_plan d = {.enabled = true};
	assert_int_equal(cj_jail_pick_ids(&dflt, used, 1, &d, &err), 0);
	assert_true(d.uid >= CJ_JAIL_UID_START && d.uid < CJ_JAIL_UID_START + CJ_JAIL_UID_COUNT);
	assert_int_equal(d.uid, d.gid);
}

/* The kvm group is /dev/kvm's own (a host whose kvm group is not in
 * /etc/group, nss-altfiles' /usr/lib/group, still gets it); a device
 * of root's group, or a file that is no device, is never taken. */
static void test_kvm_gid_is_the_devices_group(void **state)
{
	char dir[] = "/tmp/ctrj-kvm-XXXXXX", dev[64], file[64];

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(dev, sizeof dev, "%s/kvm", dir);
	snprintf(file, sizeof file, "%s/file", dir);
	assert_int_equal(mknod(dev, S_IFCHR | 0660, makedev(1, 3)), 0);
	assert_int_equal(chown(dev, 0, 4242), 0);
	assert_int_equal(chmod(dev, 0660), 0);
	assert_int_equal(cj_jail_kvm_gid(dev), 4242);
	assert_int_equal(chown(dev, 0, 0), 0);
	assert_int_not_equal(cj_jail_kvm_gid(dev), 0); /* root's group: never */
	assert_int_equal(close(open(file, O_CREAT | O_WRONLY, 0660)), 0);
	assert_int_equal(chown(file, 0, 4242), 0);
	assert_int_not_equal(cj_jail_kvm_gid(file), 4242); /* not a device */
	unlink(dev);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uid_range_parse),
	    cmocka_unit_test(test_pick_distinct_until_the_range_is_full),
	    cmocka_unit_test(test_explicit_user_and_no_jail),
	    cmocka_unit_test(test_kvm_gid_is_the_devices_group),
	};
	return cmocka_run_group_tests_name("jail_ids", tests, NULL, NULL);
}
