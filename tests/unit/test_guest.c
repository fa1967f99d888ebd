/* SPDX-License-Identifier: Apache-2.0 */
/* Guest init helpers, compiled for the host: /var/environment writing (must
 * round-trip through a POSIX shell byte for byte) and user resolution
 * against an image's /etc/passwd and /etc/group. */
#include "deadline.h"
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *tmp_base(void)
{
	const char *dir = getenv("TMPDIR");
	return dir && *dir ? dir : "/tmp";
}

static char *make_temp_dir(void)
{
	char *path;
	if (asprintf(&path, "%s/ctrj-guest-XXXXXX", tmp_base()) < 0)
		fail();
	assert_non_null(mkdtemp(path));
	return path;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
}

static char *read_all_fd(int fd, size_t *len)
{
	size_t cap = 256, n = 0;
	char *buf = malloc(cap);

	assert_non_null(buf);
	for (;;) {
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r >= 0);
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Run /bin/sh -c script; return its stdout (exact bytes) and exit status. */
static char *run_sh(const char *script, size_t *len, int *status)
{
	int pfd[2];
	pid_t pid;
	char *out;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	out = read_all_fd(pfd[0], len);
	close(pfd[0]);
	assert_int_equal(waitpid(pid, status, 0), pid);
	return out;
}

/* ---- guest_env_write_file ----------------------------------------------- */

static void test_env_file_round_trip(void **state)
{
	char *dir = make_temp_dir();
	char path[1024], marker[1024], canary[1200];
	snprintf(path, sizeof path, "%s/environment", dir);
	snprintf(marker, sizeof marker, "%s/pwned", dir);
	snprintf(canary, sizeof canary, "CANARY=$(touch %s) `touch %s` ; touch %s", marker, marker,
	         marker);

	char *envp[] = {
	    "SIMPLE=hello",
	    "SPACES=  a  b  ",
	    "SQ=it's",
	    "SQ2=''''",
	    "DQ=say \"hi\"",
	    "NL=line1\nline2\n\n",
	    "CRLF=a\r\nb",
	    "DOLLAR=$HOME ${PATH} $1 $$ $? $@",
	    "BACKSLASH=\\ \\\\ \\n \\' \\",
	    "BACKTICK=`id`",
	    "UTF8=h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac",
	    "HIGH=\xff\xfe\x80\x01\x1b[0m\x7f",
	    "SHELLCTL=\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a",
	    "EMPTY=",
	    "EQ=a=b=c",
	    "GLOB=* ? [a-z] ~",
	    "SEMI=a; exit 3 && false | true",
	    "_under=1",
	    "x9=lower",
	    canary,
	    /* Not assignable in a shell: left out of the file. */
	    "a.b=1",
	    "1BAD=x",
	    "has-dash=1",
	    "NOEQUALS",
	    "=novalue",
	    "SP ACE=1",
	    NULL,
	};
	const size_t nvalid = 20;

	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(guest_env_write_file(fd, envp), 0);
	assert_int_equal(close(fd), 0);

	/* The file has one line per valid name ... */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	size_t flen;
	char *file = read_all_fd(fd, &flen);
	close(fd);
	assert_null(strstr(file, "a.b"));
	assert_null(strstr(file, "1BAD"));
	assert_null(strstr(file, "has-dash"));
	assert_null(strstr(file, "NOEQUALS"));
	assert_null(strstr(file, "novalue"));
	assert_null(strstr(file, "SP ACE"));
	size_t exports = 0;
	for (const char *p = file; (p = strstr(p, "export ")); p++)
		exports += p == file || p[-1] == '\n';
	assert_int_equal(exports, nvalid);
	assert_non_null(strstr(file, "export SQ='it'\\''s'\n"));
	free(file);

	/* ... and sourcing it gives back every value byte for byte. */
	for (size_t i = 0; i < nvalid; i++) {
		const char *eq = strchr(envp[i], '=');
		char name[64], *script, *out;
		size_t len;
		int status;

		assert_true((size_t)(eq - envp[i]) < sizeof name);
		snprintf(name, sizeof name, "%.*s", (int)(eq - envp[i]), envp[i]);
		if (asprintf(&script, ". '%s'; printf %%s \"$%s\"", path, name) < 0)
			fail();
		out = run_sh(script, &len, &status);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) != 0)
			fail_msg("sourcing for %s exited %d", name, WEXITSTATUS(status));
		if (len != strlen(eq + 1) || memcmp(out, eq + 1, len) != 0)
			fail_msg("%s: got %zu bytes \"%s\", want \"%s\"", name, len, out, eq + 1);
		free(out);
		free(script);
	}

	/* Exported, not just set. */
	{
		char *script, *out;
		size_t len;
		int status;
		if (asprintf(&script, ". '%s'; exec /bin/sh -c 'printf %%s \"$SQ\"'", path) < 0)
			fail();
		out = run_sh(script, &len, &status);
		assert_string_equal(out, "it's");
		free(out);
		free(script);
	}

	/* Nothing in a value was executed. */
	struct stat st;
	assert_int_equal(stat(marker, &st), -1);

	remove_file(dir, "environment");
	rmdir(dir);
	free(dir);
}

static void test_env_file_edge_cases(void **state)
{
	char *dir = make_temp_dir();
	char path[1024];
	snprintf(path, sizeof path, "%s/env", dir);

	/* NULL and empty vectors write nothing. */
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(guest_env_write_file(fd, NULL), 0);
	char *empty[] = {NULL};
	assert_int_equal(guest_env_write_file(fd, empty), 0);
	char *invalid_only[] = {"a.b=1", "9=x", NULL};
	assert_int_equal(guest_env_write_file(fd, invalid_only), 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	close(fd);

	/* A write error is reported. */
	char *one[] = {"A=1", NULL};
	errno = 0;
	assert_int_equal(guest_env_write_file(-1, one), -1);
	assert_int_equal(errno, EBADF);

	/* A long value is written whole. */
	size_t big = 200000;
	char *entry = malloc(big + 3);
	assert_non_null(entry);
	memcpy(entry, "B=", 2);
	for (size_t i = 0; i < big; i++)
		entry[2 + i] = "ab'\n"[i % 4];
	entry[2 + big] = '\0';
	char *bigv[] = {entry, NULL};
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(guest_env_write_file(fd, bigv), 0);
	close(fd);
	char *script, *out;
	size_t len;
	int status;
	if (asprintf(&script, ". '%s'; printf %%s \"$B\"", path) < 0)
		fail();
	out = run_sh(script, &len, &status);
	assert_int_equal(len, big);
	assert_memory_equal(out, entry + 2, big);
	free(out);
	free(script);
	free(entry);

	unlink(path);
	rmdir(dir);
	free(dir);
}

/* ---- guest_user_resolve_at ---------------------------------------------- */

static const char passwd[] = "root:x:0:0:root:/root:/bin/bash\n"
                             "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                             "# a comment line\n"
                             "\n"
                             "broken line without any colons\n"
                             "bad:x:notanumber:1:Bad:/home/bad:/bin/sh\n"
                             "badgid:x:7:-1:Bad:/home/bad:/bin/sh\n"
                             "short:x:5:5\n"
                             "huge:x:4294967295:1:x:/h:/bin/sh\n"
                             "neg:x:-5:1:x:/h:/bin/sh\n"
                             "app:x:1000:1000:App User:/home/app:/bin/sh\n"
                             "nohome:x:1001:1001::relative/home:/bin/sh\n"
                             "emptyhome:x:1002:1002:::/bin/sh\n"
                             "dup:x:1003:1003::/first:/bin/sh\n"
                             "dup:x:1004:1004::/second:/bin/sh\n"
                             "apple:x:1005:1005::/home/apple:/bin/sh\n"
                             "max:x:4294967294:4294967294::/m:/bin/sh\n"
                             "nonl:x:2000:2000::/nonl:/bin/sh";

static const char group[] = "root:x:0:\n"
                            "daemon:x:1:\n"
                            "staff:x:50:other,app\n"
                            "garbage\n"
                            "bad:x:abc:app\n"
                            "docker:x:999:app\n"
                            "fruit:x:60:apple,pineapple\n"
                            "audio:x:29:\n"
                            "wheel:x:10:x,app,y\n"
                            "app:x:1000:app\n"
                            "three:x:77\n"
                            "appgrp:x:1100:\n"
                            "nonl:x:3000:nonl";

static int setup_etc(void **state)
{
	char *dir = make_temp_dir();
	write_file(dir, "passwd", passwd);
	write_file(dir, "group", group);
	*state = dir;
	return 0;
}

static int teardown_etc(void **state)
{
	char *dir = *state;
	remove_file(dir, "passwd");
	remove_file(dir, "group");
	rmdir(dir);
	free(dir);
	return 0;
}

static void resolve_ok(const char *etc, const char *spec, struct guest_user *u)
{
	char err[256] = "";
	if (guest_user_resolve_at(etc, spec, u, err, sizeof err) != 0)
		fail_msg("resolving \"%s\" failed: %s", spec ? spec : "(null)", err);
}

static void resolve_fails(const char *etc, const char *spec, const char *needle)
{
	struct guest_user u;
	char err[256] = "";
	if (guest_user_resolve_at(etc, spec, &u, err, sizeof err) != -1)
		fail_msg("resolving \"%s\" should fail", spec);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static bool has_group(const struct guest_user *u, uint32_t g)
{
	for (size_t i = 0; i < u->ngroups; i++)
		if (u->groups[i] == g)
			return true;
	return false;
}

static void test_user_by_name(void **state)
{
	const char *etc = *state;
	struct guest_user u;

	resolve_ok(etc, "app", &u);
	assert_int_equal(u.uid, 1000);
	assert_int_equal(u.gid, 1000);
	assert_string_equal(u.name, "app");
	assert_string_equal(u.home, "/home/app");
	/* Primary group first, then every group listing the user once, in
	 * file order; "apple" in a member list is not "app". */
	assert_int_equal(u.ngroups, 4);
	assert_int_equal(u.groups[0], 1000);
	assert_int_equal(u.groups[1], 50);
	assert_int_equal(u.groups[2], 999);
	assert_int_equal(u.groups[3], 10);
	assert_false(has_group(&u, 60));

	resolve_ok(etc, "root", &u);
	assert_int_equal(u.uid, 0);
	assert_int_equal(u.gid, 0);
	assert_string_equal(u.home, "/root");
	assert_int_equal(u.ngroups, 1);
	assert_int_equal(u.groups[0], 0);

	resolve_ok(etc, "apple", &u);
	assert_int_equal(u.uid, 1005);
	assert_true(has_group(&u, 60));
	assert_false(has_group(&u, 50));

	/* Relative or empty home: "/". */
	resolve_ok(etc, "nohome", &u);
	assert_string_equal(u.home, "/");
	resolve_ok(etc, "emptyhome", &u);
	assert_string_equal(u.home, "/");

	/* The first of duplicate entries wins. */
	resolve_ok(etc, "dup", &u);
	assert_int_equal(u.uid, 1003);
	assert_string_equal(u.home, "/first");

	/* The last line without a newline. */
	resolve_ok(etc, "nonl", &u);
	assert_int_equal(u.uid, 2000);
	assert_true(has_group(&u, 3000));

	resolve_ok(etc, "max", &u);
	assert_true(u.uid == 4294967294u && u.gid == 4294967294u);
}

static void test_user_numeric(void **state)
{
	const char *etc = *state;
	struct guest_user u;

	/* A known uid takes name, gid and groups from passwd. */
	resolve_ok(etc, "1000", &u);
	assert_int_equal(u.uid, 1000);
	assert_int_equal(u.gid, 1000);
	assert_string_equal(u.name, "app");
	assert_string_equal(u.home, "/home/app");
	assert_int_equal(u.ngroups, 4);

	/* An unknown uid is fine: gid 0, no name, home "/". */
	resolve_ok(etc, "4242", &u);
	assert_int_equal(u.uid, 4242);
	assert_int_equal(u.gid, 0);
	assert_string_equal(u.name, "");
	assert_string_equal(u.home, "/");
	assert_int_equal(u.ngroups, 1);
	assert_int_equal(u.groups[0], 0);

	/* Default: root. */
	resolve_ok(etc, "", &u);
	assert_int_equal(u.uid, 0);
	assert_string_equal(u.name, "root");
	resolve_ok(etc, NULL, &u);
	assert_int_equal(u.uid, 0);
}

static void test_user_with_group(void **state)
{
	const char *etc = *state;
	struct guest_user u;

	resolve_ok(etc, "1000:50", &u);
	assert_int_equal(u.uid, 1000);
	assert_int_equal(u.gid, 50);
	/* The primary group is not repeated among the supplementary ones. */
	assert_int_equal(u.groups[0], 50);
	assert_int_equal(u.ngroups, 4);
	assert_true(has_group(&u, 1000) && has_group(&u, 999) && has_group(&u, 10));

	resolve_ok(etc, "app:docker", &u);
	assert_int_equal(u.uid, 1000);
	assert_int_equal(u.gid, 999);
	assert_int_equal(u.groups[0], 999);

	resolve_ok(etc, "app:appgrp", &u);
	assert_int_equal(u.gid, 1100);

	resolve_ok(etc, "4242:7", &u);
	assert_int_equal(u.uid, 4242);
	assert_int_equal(u.gid, 7);
	assert_int_equal(u.ngroups, 1);

	resolve_ok(etc, "4242:staff", &u);
	assert_int_equal(u.gid, 50);

	resolve_ok(etc, "root:0", &u);
	assert_int_equal(u.gid, 0);

	resolve_fails(etc, "app:nogroup", "group \"nogroup\" not found");
	resolve_fails(etc, "app:", "group \"\" not found");
	resolve_fails(etc, "app:-1", "not found");
	resolve_fails(etc, "app:4294967295", "not found");
	/* A malformed group line is skipped. */
	resolve_fails(etc, "app:bad", "group \"bad\" not found");
	/* Three fields are enough to name a gid. */
	resolve_ok(etc, "app:three", &u);
	assert_int_equal(u.gid, 77);
}

static void test_user_unknown_and_malformed(void **state)
{
	const char *etc = *state;

	resolve_fails(etc, "nobody", "user \"nobody\" not found");
	/* Malformed passwd lines are skipped, not half-parsed. */
	resolve_fails(etc, "bad", "user \"bad\" not found");
	resolve_fails(etc, "badgid", "not found");
	resolve_fails(etc, "short", "not found");
	resolve_fails(etc, "huge", "not found");
	resolve_fails(etc, "neg", "not found");
	resolve_fails(etc, "broken line without any colons", "not found");
	resolve_fails(etc, "x", "not found");
	/* Not numbers. */
	resolve_fails(etc, "-1", "not found");
	resolve_fails(etc, "4294967295", "not found");
	resolve_fails(etc, "99999999999999999999", "not found");
	resolve_fails(etc, "12abc", "not found");
	resolve_fails(etc, " 1000", "not found");
	resolve_fails(etc, ":0", "not found");

	char longspec[600];
	memset(longspec, 'a', sizeof longspec - 1);
	longspec[sizeof longspec - 1] = '\0';
	resolve_fails(etc, longspec, "too long");
}

static void test_user_missing_files(void **state)
{
	char *dir = make_temp_dir();
	struct guest_user u;

	/* No passwd or group at all: numeric specs still work. */
	resolve_ok(dir, "1234:5678", &u);
	assert_int_equal(u.uid, 1234);
	assert_int_equal(u.gid, 5678);
	assert_int_equal(u.ngroups, 1);
	resolve_ok(dir, "0", &u);
	assert_int_equal(u.uid, 0);
	resolve_fails(dir, "root", "not found");
	resolve_fails(dir, "0:wheel", "not found");
	rmdir(dir);
	free(dir);
}

static void test_user_many_groups(void **state)
{
	char *dir = make_temp_dir();
	char *grp = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&grp, &len);
	struct guest_user u;

	assert_non_null(f);
	/* A member list of any length is read whole: the user at its end is
	 * a member, and no piece of the line is taken for an entry. */
	fprintf(f, "long:x:7000:");
	for (int i = 0; i < 2000; i++)
		fprintf(f, "m%d,", i);
	fprintf(f, "u\n");
	for (int i = 0; i < 100; i++)
		fprintf(f, "g%d:x:%d:a,u,b\n", i, 5000 + i);
	assert_int_equal(fclose(f), 0);
	write_file(dir, "group", grp);
	write_file(dir, "passwd", "u:x:10:10::/home/u:/bin/sh\n");

	resolve_ok(dir, "u", &u);
	assert_int_equal(u.ngroups, GUEST_MAX_GROUPS);
	assert_int_equal(u.groups[0], 10);
	assert_int_equal(u.groups[1], 7000);
	for (size_t i = 2; i < u.ngroups; i++)
		assert_int_equal(u.groups[i], 5000 + i - 2);

	remove_file(dir, "group");
	remove_file(dir, "passwd");
	rmdir(dir);
	free(dir);
	free(grp);
}

/* ---- guest_wait_for ------------------------------------------------------ */

/* True on the n-th call (ctx: calls so far, then n). */
static bool nth_call(void *ctx)
{
	int *c = ctx;
	return ++c[0] >= c[1];
}

static void test_wait_for(void **state)
{
	int calls[2] = {0, 4};
	uint64_t t0 = guest_now_ns();

	(void)state;
	/* Holds on the 4th poll, well before the deadline. */
	assert_true(guest_wait_for(nth_call, calls, t0 + 5000000000ull));
	assert_int_equal(calls[0], 4);

	/* Already true: one call, no sleep. */
	calls[0] = 0;
	calls[1] = 1;
	assert_true(guest_wait_for(nth_call, calls, 0));
	assert_int_equal(calls[0], 1);

	/* Never true: gives up once the deadline has passed, after polling
	 * at least once past it. */
	calls[0] = 0;
	calls[1] = 1 << 30;
	t0 = guest_now_ns();
	assert_false(guest_wait_for(nth_call, calls, t0 + 30000000ull));
	assert_true(guest_now_ns() - t0 >= 30000000ull);
	assert_true(calls[0] >= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_file_round_trip),
	    cmocka_unit_test(test_env_file_edge_cases),
	    cmocka_unit_test_setup_teardown(test_user_by_name, setup_etc, teardown_etc),
	    cmocka_unit_test_setup_teardown(test_user_numeric, setup_etc, teardown_etc),
	    cmocka_unit_test_setup_teardown(test_user_with_group, setup_etc, teardown_etc),
	    cmocka_unit_test_setup_teardown(test_user_unknown_and_malformed, setup_etc,
	                                    teardown_etc),
	    cmocka_unit_test(test_user_missing_files),
	    cmocka_unit_test(test_user_many_groups),
	    cmocka_unit_test(test_wait_for),
	};
	return cmocka_run_group_tests_name("guest", tests, NULL, NULL);
}
