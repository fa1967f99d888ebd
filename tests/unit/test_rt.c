/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer-runtime's helpers (src/cli/runtime): config.json mapped onto
 * run's command line, the pid file. */
#include "runtime/runtime.h"
#include "util/strv.h"

#include <fcntl.h>
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

static char g_dir[] = "/tmp/ctrj-test-rt-XXXXXX";

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A bind mount read-only whatever its paths' length: SRC:DEST just under
 * the bound that used to cut ":ro" off whole. */
static void test_bundle_long_read_only_bind(void **state)
{
	char src[512], dest[400] = "", want[1024], cfg[4096], path[600];
	char **argv;
	int argc;
	json_object *config;
	struct cj_err err = {0};
	bool found = false;

	(void)state;
	snprintf(src, sizeof src, "%s/src", g_dir);
	mkdir(src, 0700);
	while (strlen(src) + 1 + strlen(dest) < 299)
		strcat(dest, strlen(src) + 1 + strlen(dest) + 2 < 299 ? "/d" : "d");
	snprintf(want, sizeof want, "%s:%s:ro", src, dest);
	assert_int_equal(strlen(want), 302);
	snprintf(cfg, sizeof cfg,
	         "{\"process\":{\"args\":[\"/bin/true\"]},\"root\":{\"path\":\"/\"},"
	         "\"mounts\":[{\"destination\":\"%s\",\"type\":\"bind\",\"source\":\"%s\","
	         "\"options\":[\"rbind\",\"ro\"]}]}",
	         dest, src);
	snprintf(path, sizeof path, "%s/config.json", g_dir);
	write_text(path, cfg);
	assert_int_equal(rt_bundle_argv(g_dir, "c1", &argv, &argc, &config, &err), 0);
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], "--volume") == 0) {
			assert_string_equal(argv[i + 1], want);
			found = true;
		}
	assert_true(found);
	struct cj_strv v = {argv, (size_t)argc};
	cj_strv_free(&v);
	json_object_put(config);
	rmdir(src);
	unlink(path);
}

/* The pid file's temporary name is never followed: a symlink planted
 * there does not make root write through it. */
static void test_pid_file_no_follow(void **state)
{
	char pidf[600], tmp[700], victim[600], buf[64] = "";
	struct cj_err err = {0};
	int fd;

	(void)state;
	snprintf(pidf, sizeof pidf, "%s/init.pid", g_dir);
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", pidf, (int)getpid());
	snprintf(victim, sizeof victim, "%s/victim", g_dir);
	write_text(victim, "precious");
	assert_int_equal(symlink(victim, tmp), 0);
	rt_write_pid(pidf, 1234, &err);
	fd = open(victim, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof buf - 1) > 0);
	close(fd);
	assert_string_equal(buf, "precious");
	unlink(tmp);
	unlink(pidf);
	/* control: without the plant the pid is written */
	assert_int_equal(rt_write_pid(pidf, 1234, &err), 0);
	fd = open(pidf, O_RDONLY);
	memset(buf, 0, sizeof buf);
	assert_true(fd >= 0 && read(fd, buf, sizeof buf - 1) > 0);
	close(fd);
	assert_string_equal(buf, "1234");
	unlink(pidf);
	unlink(victim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bundle_long_read_only_bind),
	    cmocka_unit_test(test_pid_file_no_follow),
	};
	int r;

	if (!mkdtemp(g_dir))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(g_dir);
	return r;
}
