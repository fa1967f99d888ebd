/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer-runtime's helpers (src/cli/runtime): config.json mapped onto
 * run's command line, the pid file. */
#include "ctrj/protocol.h"
#include "runtime/runtime.h"
#include "spec/spec.h"
#include "util/strv.h"
#include "volume/share.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* dir/NAME for each name, made (with dir) or removed (and dir). */
static void files_in(const char *dir, const char *const *names, int n, bool make)
{
	char path[700];

	if (make)
		mkdir(dir, 0700);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (make)
			write_text(path, "x\n");
		else
			unlink(path);
	}
	if (!make)
		rmdir(dir);
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

/* config.json's process privileges and limits as the guest applies them:
 * capability names (an unknown one left out), rlimits (unlimited is
 * UINT64_MAX), additionalGids, noNewPrivileges, oomScoreAdj; what cannot
 * be applied is refused in one line. */
static void test_process_mapping(void **state)
{
	struct ctrj_proc p;
	struct cj_err err = {0};
	json_object *o = json_tokener_parse(
	    "{\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"cap_net_raw\",\"CAP_FUTURE\"],"
	    "\"effective\":[\"CAP_KILL\"],\"permitted\":[\"CAP_KILL\"],"
	    "\"ambient\":[\"CAP_CHECKPOINT_RESTORE\"]},"
	    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1000,\"soft\":900},"
	    "{\"type\":\"RLIMIT_CORE\",\"hard\":18446744073709551615,"
	    "\"soft\":18446744073709551615}],"
	    "\"user\":{\"uid\":0,\"gid\":0,\"additionalGids\":[10,4294967294]},"
	    "\"noNewPrivileges\":true,\"oomScoreAdj\":-500}");

	(void)state;
	assert_int_equal(rt_process_proc(o, &p, &err), 0);
	assert_int_equal(p.flags, CTRJ_PROC_CAPS | CTRJ_PROC_GROUPS | CTRJ_PROC_NO_NEW_PRIVS |
	                              CTRJ_PROC_OOM);
	assert_int_equal(p.cap_bounding, (1u << 5) | (1u << 13));
	assert_int_equal(p.cap_effective, 1u << 5);
	assert_int_equal(p.cap_inheritable, 0);
	assert_true(p.cap_ambient == 1ull << 40);
	assert_int_equal(p.nrlimits, 2);
	assert_int_equal(p.rlimits[0].resource, 7);
	assert_int_equal(p.rlimits[0].soft, 900);
	assert_true(p.rlimits[1].soft == UINT64_MAX && p.rlimits[1].hard == UINT64_MAX);
	assert_int_equal(p.ngroups, 2);
	assert_int_equal(p.groups[1], 4294967294u);
	assert_int_equal(p.oom_score_adj, -500);
	json_object_put(o);

	/* nothing asked: nothing to apply */
	o = json_tokener_parse("{\"args\":[\"sh\"],\"user\":{\"uid\":0,\"gid\":0}}");
	assert_int_equal(rt_process_proc(o, &p, &err), 0);
	assert_int_equal(p.flags, 0);
	assert_int_equal(p.nrlimits, 0);
	json_object_put(o);

	static const char *const bad[] = {
	    "{\"rlimits\":[{\"type\":\"RLIMIT_BOGUS\",\"hard\":1,\"soft\":1}]}",
	    "{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1,\"soft\":2}]}",
	    "{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1,\"soft\":1},"
	    "{\"type\":\"RLIMIT_NOFILE\",\"hard\":1,\"soft\":1}]}",
	    "{\"oomScoreAdj\":1001}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		o = json_tokener_parse(bad[i]);
		assert_non_null(o);
		assert_int_equal(rt_process_proc(o, &p, &err), -1);
		json_object_put(o);
	}
}

/* The engine's /etc/hosts, /etc/hostname and /etc/resolv.conf: their one
 * directory shared (hidden), the files bound from it; another bound file
 * is not. */
static void test_etc_files(void **state)
{
	char dir[600], cfg[4096], path[700], want[800];
	const char *names[] = {"hosts", "hostname", "resolv.conf", "other"};
	char **argv;
	int argc, volumes = 0;
	json_object *config;
	struct cj_err err = {0};
	struct rt_etc_files f;

	(void)state;
	snprintf(dir, sizeof dir, "%s/ctr", g_dir);
	mkdir(dir, 0700);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		write_text(path, "x\n");
	}
	snprintf(cfg, sizeof cfg,
	         "{\"process\":{\"args\":[\"/bin/true\"]},\"root\":{\"path\":\"/\"},"
	         "\"mounts\":[{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"%s/"
	         "hosts\"},{\"destination\":\"/etc/hostname\",\"type\":\"bind\",\"source\":"
	         "\"%s/hostname\"},{\"destination\":\"/etc/resolv.conf\",\"type\":\"bind\","
	         "\"source\":\"%s/resolv.conf\"},{\"destination\":\"/etc/other\",\"type\":"
	         "\"bind\",\"source\":\"%s/other\"}]}",
	         dir, dir, dir, dir);
	snprintf(path, sizeof path, "%s/config.json", g_dir);
	write_text(path, cfg);
	config = json_tokener_parse(cfg);
	rt_etc_files(config, &f);
	json_object_put(config);
	assert_int_equal(f.ndirs, 1);
	assert_string_equal(f.dirs[0], dir);
	assert_int_equal(f.nbinds, 3);
	assert_string_equal(f.src[2], "/run/ctrj-files/0/resolv.conf");
	assert_string_equal(f.dst[2], "/etc/resolv.conf");
	assert_int_equal(rt_bundle_argv(g_dir, "c1", &argv, &argc, &config, &err), 0);
	snprintf(want, sizeof want, "%s:/run/ctrj-files/0:ro", dir);
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], "--volume") == 0) {
			assert_string_equal(argv[i + 1], want);
			volumes++;
		}
	assert_int_equal(volumes, 1);
	struct cj_strv v = {argv, (size_t)argc};
	cj_strv_free(&v);
	json_object_put(config);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	snprintf(path, sizeof path, "%s/config.json", g_dir);
	unlink(path);
}

/* The share of the engine's files' directory serves only those files
 * (virtiofsd covers the rest): each named once, a file bound twice
 * included; other shares untouched; no share of the directory fails. */
static void test_etc_shares(void **state)
{
	char dir[600], cfg[2048];
	const char *const names[] = {"hosts", "hostname", "config.v2.json"};
	struct cj_share_spec shares[2] = {{.guest_path = "/data"},
	                                  {.guest_path = "/run/ctrj-files/0", .read_only = true}};
	struct cj_spec spec = {.shares = shares, .nshares = 2};
	struct cj_err err = {0};
	struct rt_etc_files f;
	json_object *config;

	(void)state;
	snprintf(dir, sizeof dir, "%s/ctr2", g_dir);
	files_in(dir, names, 3, true);
	snprintf(cfg, sizeof cfg,
	         "{\"mounts\":[{\"destination\":\"/etc/hosts\",\"source\":\"%s/hosts\"},"
	         "{\"destination\":\"/etc/hostname\",\"source\":\"%s/hostname\"},"
	         "{\"destination\":\"/etc/hosts\",\"source\":\"%s/hosts\"}]}",
	         dir, dir, dir);
	config = json_tokener_parse(cfg);
	rt_etc_files(config, &f);
	json_object_put(config);
	assert_int_equal(rt_etc_shares(&f, &spec, &err), 0);
	assert_null(shares[0].files[0]);
	assert_non_null(shares[1].files[0]);
	assert_string_equal(shares[1].files[0], "hosts");
	assert_non_null(shares[1].files[1]);
	assert_string_equal(shares[1].files[1], "hostname");
	assert_null(shares[1].files[2]);
	for (int i = 0; shares[1].files[i]; i++)
		free(shares[1].files[i]);
	memset(shares[1].files, 0, sizeof shares[1].files);
	spec.nshares = 1; /* the directory's share missing: refused */
	assert_int_equal(rt_etc_shares(&f, &spec, &err), -1);
	files_in(dir, names, 3, false);
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
	    cmocka_unit_test(test_process_mapping),
	    cmocka_unit_test(test_etc_files),
	    cmocka_unit_test(test_etc_shares),
	};
	int r;

	if (!mkdtemp(g_dir))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(g_dir);
	return r;
}
