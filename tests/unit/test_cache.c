/* SPDX-License-Identifier: Apache-2.0 */
/* The cache: usage by kind, prune and the LRU cap never take what a
 * shared flock (a live run) holds; the oldest entries go first. */
#include "cache/cache.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];

static void put(const char *rel, size_t bytes, time_t age)
{
	char path[256], cmd[300];
	struct timespec t[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
	char *buf = calloc(1, bytes ? bytes : 1);
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname %s)\"", path);
	assert_int_equal(system(cmd), 0);
	memset(buf, 'x', bytes);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, bytes), (ssize_t)bytes);
	futimens(fd, t);
	close(fd);
	free(buf);
}

static bool exists(const char *rel)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	return access(path, F_OK) == 0;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ctrj-cache-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static const struct cj_cache_kind_usage *kind(const struct cj_cache_usage *u, const char *name)
{
	size_t k = 0;

	while (k + 1 < CJ_CACHE_NKINDS && strcmp(u->kinds[k].kind, name) != 0)
		k++;
	assert_string_equal(u->kinds[k].kind, name);
	return &u->kinds[k];
}

static void test_usage_and_prune_spare_what_is_in_use(void **state)
{
	struct cj_cache_usage u;
	struct cj_cache_pruned p;
	struct cj_err err = {0};
	char path[256];
	int held;

	(void)state;
	put("base/a.ext4", 8192, 3 * 24 * 3600);
	put("base/a.lock", 0, 3 * 24 * 3600);
	put("base/a.manifest", 100, 3 * 24 * 3600);
	put("base/b.ext4", 8192, 3 * 24 * 3600);
	put("base/recent.ext4", 4096, 60);
	put("vmlinux/k", 4096, 3 * 24 * 3600);
	put("store/blobs/sha256/x", 4096, 3 * 24 * 3600);
	snprintf(path, sizeof path, "%s/base/b.ext4", dir);
	assert_int_equal(cj_cache_use(dir, path, &held, &err), 0); /* a live run */
	assert_true(held >= 0);
	assert_int_equal(cj_cache_usage(dir, &u, &err), 0);
	assert_int_equal(kind(&u, "base")->entries, 3); /* locks and manifests are not entries */
	assert_int_equal(kind(&u, "base")->in_use, 1);
	assert_int_equal(kind(&u, "store")->entries, 1);

	assert_int_equal(cj_cache_prune(dir, false, &p, &err), 0);
	assert_false(exists("base/a.ext4")); /* old, unused */
	assert_false(exists("base/a.manifest"));
	assert_true(exists("base/b.ext4"));      /* in use */
	assert_true(exists("base/recent.ext4")); /* used an hour ago */
	assert_false(exists("vmlinux/k"));
	assert_true(exists("store/blobs/sha256/x")); /* not ours to prune */

	assert_int_equal(cj_cache_prune(dir, true, &p, &err), 0);
	assert_true(exists("base/b.ext4"));
	assert_false(exists("base/recent.ext4"));
	close(held);
	assert_int_equal(cj_cache_prune(dir, true, &p, &err), 0);
	assert_false(exists("base/b.ext4"));
}

static void test_trim_takes_the_least_recently_used_first(void **state)
{
	struct cj_cache_pruned p;
	struct cj_err err = {0};
	char path[256];
	int held;

	(void)state;
	put("base/old.ext4", 1 << 20, 300);
	put("base/older-in-use.ext4", 1 << 20, 400);
	put("base/mid.ext4", 1 << 20, 200);
	put("base/new.ext4", 1 << 20, 100);
	snprintf(path, sizeof path, "%s/base/older-in-use.ext4", dir);
	assert_int_equal(cj_cache_use(dir, path, &held, &err), 0);
	/* room for three of the four: the oldest unused one goes */
	assert_int_equal(cj_cache_trim(dir, (3u << 20) + 64 * 1024, &p, &err), 0);
	assert_false(exists("base/old.ext4"));
	assert_true(exists("base/older-in-use.ext4") && exists("base/mid.ext4") &&
	            exists("base/new.ext4"));
	assert_int_equal(p.entries, 1);
	close(held);
}

static void test_memo(void **state)
{
	char got[65];
	const char *key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	(void)state;
	assert_int_equal(cj_cache_memo_get(dir, "vmlinux", "cheap", got), 0);
	cj_cache_memo_put(dir, "vmlinux", "cheap", key);
	assert_int_equal(cj_cache_memo_get(dir, "vmlinux", "cheap", got), 1);
	assert_string_equal(got, key);
	put("vmlinux/ids/bad", 10, 0); /* not a digest: unknown */
	assert_int_equal(cj_cache_memo_get(dir, "vmlinux", "bad", got), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_usage_and_prune_spare_what_is_in_use, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_trim_takes_the_least_recently_used_first, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_memo, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
