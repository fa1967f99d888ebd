/* SPDX-License-Identifier: Apache-2.0 */
/* Control-disk protocol: config records (host → guest), header, and the
 * status record (guest → host, hostile). */
#include "ctrj/protocol.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- raw record builder ------------------------------------------------- */

struct rawbuf {
	uint8_t *p;
	size_t len;
};

static void raw_bytes(struct rawbuf *b, const void *data, size_t n)
{
	uint8_t *np = realloc(b->p, b->len + n + 1);
	assert_non_null(np);
	b->p = np;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* A record header with an arbitrary (possibly lying) length field. */
static void raw_hdr(struct rawbuf *b, uint16_t type, uint32_t n)
{
	uint8_t h[8] = {0};

	h[0] = (uint8_t)type;
	h[1] = (uint8_t)(type >> 8);
	for (int i = 0; i < 4; i++)
		h[4 + i] = (uint8_t)(n >> (8 * i));
	raw_bytes(b, h, sizeof h);
}

static void raw_rec(struct rawbuf *b, uint16_t type, const void *data, size_t n)
{
	raw_hdr(b, type, (uint32_t)n);
	raw_bytes(b, data, n);
}

static void raw_str(struct rawbuf *b, uint16_t type, const char *s)
{
	raw_rec(b, type, s, strlen(s));
}

static void raw_free(struct rawbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

/* Parse a copy of exactly len bytes on the heap, so that ASan sees any read
 * past the end. */
static int parse_exact(const uint8_t *p, size_t len, struct ctrj_config *cfg, char *err,
                       size_t errlen)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	assert_non_null(copy);
	if (len)
		memcpy(copy, p, len);
	r = ctrj_config_parse(copy, len, cfg, err, errlen);
	free(copy);
	return r;
}

static void expect_parse_error(const struct rawbuf *b, const char *needle)
{
	struct ctrj_config cfg;
	char err[256] = "";

	assert_int_equal(parse_exact(b->p, b->len, &cfg, err, sizeof err), -1);
	assert_null(cfg.argv);
	assert_null(cfg.envp);
	assert_null(cfg.workdir);
	assert_int_equal(cfg.argc, 0);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

/* ---- config round trip -------------------------------------------------- */

static char *hostile_argv[] = {
    "/bin/sh",
    "-c",
    "echo \"$HOME\" 'single' \\\\ `id` $(reboot); exit",
    "",
    "with space",
    "new\nline\r\n",
    "\xc3\xa9t\xc3\xa9 \xff\xfe\x01\x7f",
    "back\\slash\\",
    "'",
    "\"",
    NULL,
};

static char *hostile_env[] = {
    "A=b=c",
    "NL=x\ny\n",
    "EMPTY=",
    "Q='\"",
    "DOLLAR=$PATH ${x:-y} $(id)",
    "BS=\\n\\",
    "UTF=\xe2\x82\xac\xff",
    "lower.dot=1",
    NULL,
};

static void fill_config(struct ctrj_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->argv = hostile_argv;
	cfg->argc = sizeof hostile_argv / sizeof hostile_argv[0] - 1;
	cfg->envp = hostile_env;
	cfg->envc = sizeof hostile_env / sizeof hostile_env[0] - 1;
	cfg->workdir = "/srv/app dir/x";
	cfg->user = "1000:1000";
	cfg->hostname = "box-1";
	cfg->grace_ms = 2500;
	cfg->stop_signal = 15;
	cfg->upper_size = 1ull << 33;
	cfg->has_base_uuid = true;
	cfg->has_modules_uuid = true;
	cfg->stdio_flags = CTRJ_STDIO_AGENT | CTRJ_STDIO_STDIN | CTRJ_STDIO_TTY;
	cfg->tty_rows = 42;
	cfg->tty_cols = 132;
	for (int i = 0; i < 16; i++) {
		cfg->base_uuid[i] = (uint8_t)(0xa0 + i);
		cfg->modules_uuid[i] = (uint8_t)(0x10 * i + 1);
		cfg->layer_uuids[0][i] = (uint8_t)(0x30 + i);
		cfg->layer_uuids[1][i] = (uint8_t)(0x50 + i);
	}
	cfg->nlayers = 2;
}

static void assert_config_equal(const struct ctrj_config *a, const struct ctrj_config *b)
{
	assert_int_equal(a->argc, b->argc);
	for (size_t i = 0; i < a->argc; i++)
		assert_string_equal(a->argv[i], b->argv[i]);
	assert_null(b->argv[b->argc]);
	assert_int_equal(a->envc, b->envc);
	for (size_t i = 0; i < a->envc; i++)
		assert_string_equal(a->envp[i], b->envp[i]);
	assert_non_null(b->envp);
	assert_null(b->envp[b->envc]);
	if (a->workdir)
		assert_string_equal(a->workdir, b->workdir);
	else
		assert_null(b->workdir);
	if (a->user)
		assert_string_equal(a->user, b->user);
	else
		assert_null(b->user);
	if (a->hostname)
		assert_string_equal(a->hostname, b->hostname);
	else
		assert_null(b->hostname);
	assert_int_equal(a->grace_ms, b->grace_ms);
	assert_int_equal(a->stop_signal, b->stop_signal);
	assert_true(a->upper_size == b->upper_size);
	assert_int_equal(a->has_base_uuid, b->has_base_uuid);
	assert_int_equal(a->stdio_flags, b->stdio_flags);
	assert_int_equal(a->tty_rows, b->tty_rows);
	assert_int_equal(a->tty_cols, b->tty_cols);
	assert_int_equal(a->has_modules_uuid, b->has_modules_uuid);
	if (a->has_base_uuid)
		assert_memory_equal(a->base_uuid, b->base_uuid, 16);
	if (a->has_modules_uuid)
		assert_memory_equal(a->modules_uuid, b->modules_uuid, 16);
	assert_int_equal(a->nlayers, b->nlayers);
	for (size_t i = 0; i < a->nlayers; i++) /* in order: lowest first */
		assert_memory_equal(a->layer_uuids[i], b->layer_uuids[i], 16);
}

static void test_config_round_trip(void **state)
{
	struct ctrj_config in, out, again;
	uint8_t *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	char err[256] = "";

	fill_config(&in);
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), 0);
	assert_non_null(buf);
	assert_true(len > 0 && len <= CTRJ_CTL_CONFIG_MAX);
	assert_int_equal(parse_exact(buf, len, &out, err, sizeof err), 0);
	assert_config_equal(&in, &out);

	/* Re-encoding what was parsed gives the same bytes. */
	assert_int_equal(ctrj_config_encode(&out, &buf2, &len2, err, sizeof err), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	assert_int_equal(parse_exact(buf2, len2, &again, err, sizeof err), 0);
	assert_config_equal(&out, &again);

	ctrj_config_free(&again);
	ctrj_config_free(&out);
	assert_null(out.argv);
	free(buf);
	free(buf2);
}

static void test_config_round_trip_minimal(void **state)
{
	char *argv[] = {"", NULL};
	struct ctrj_config in = {.argv = argv, .argc = 1}, out;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256] = "";

	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), 0);
	assert_int_equal(parse_exact(buf, len, &out, err, sizeof err), 0);
	assert_config_equal(&in, &out);
	/* No environment still yields a NULL-terminated vector. */
	assert_non_null(out.envp);
	assert_null(out.envp[0]);
	assert_int_equal(out.envc, 0);
	assert_null(out.workdir);
	assert_null(out.user);
	assert_null(out.hostname);
	assert_int_equal(out.stop_signal, 0);
	ctrj_config_free(&out);
	free(buf);
}

/* The hold record (runtime mode): encoded only when set, parsed back. */
static void test_config_hold(void **state)
{
	char *argv[] = {"/bin/true", NULL};
	struct ctrj_config in = {.argv = argv, .argc = 1, .hold = true}, out;
	uint8_t *buf = NULL;
	size_t len = 0, plain;
	char err[256] = "";

	(void)state;
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), 0);
	assert_int_equal(parse_exact(buf, len, &out, err, sizeof err), 0);
	assert_true(out.hold);
	ctrj_config_free(&out);
	free(buf);
	in.hold = false;
	assert_int_equal(ctrj_config_encode(&in, &buf, &plain, err, sizeof err), 0);
	assert_int_equal(plain + 8, len);
	assert_int_equal(parse_exact(buf, plain, &out, err, sizeof err), 0);
	assert_false(out.hold);
	ctrj_config_free(&out);
	free(buf);
}

/* config.json's process: capabilities, rlimits, groups, no_new_privs,
 * oom_score_adj and the pids limit round trip; without them nothing is
 * written. */
static void test_config_proc(void **state)
{
	char *argv[] = {"/bin/true", NULL};
	struct ctrj_config in = {.argv = argv, .argc = 1}, out;
	struct ctrj_proc *p = &in.proc;
	uint8_t *buf = NULL;
	size_t len = 0, plain = 0;
	char err[256] = "";

	(void)state;
	assert_int_equal(ctrj_config_encode(&in, &buf, &plain, err, sizeof err), 0);
	free(buf);
	p->flags = CTRJ_PROC_CAPS | CTRJ_PROC_GROUPS | CTRJ_PROC_NO_NEW_PRIVS | CTRJ_PROC_OOM;
	p->cap_bounding = p->cap_effective = p->cap_permitted = 0xa80425fbull;
	p->cap_inheritable = 0;
	p->cap_ambient = 1ull << 40;
	p->oom_score_adj = -999;
	p->ngroups = 2;
	p->groups[0] = 0;
	p->groups[1] = 4294967294u;
	p->nrlimits = 2;
	p->rlimits[0] = (struct ctrj_rlimit){7, 1000, 1000};
	p->rlimits[1] = (struct ctrj_rlimit){6, 10, UINT64_MAX};
	in.pids_limit = 50;
	in.binds[0] = (struct ctrj_bind_file){"/run/f/0/hosts", "/etc/hosts"};
	in.nbinds = 1;
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), 0);
	/* caps 8+40, two rlimits 2*(8+20), groups 8+8, flags 8+8, pids 8+8,
	 * the bound file 8+2+14+10 */
	assert_int_equal(len, plain + 48 + 56 + 16 + 16 + 16 + 34);
	assert_int_equal(parse_exact(buf, len, &out, err, sizeof err), 0);
	assert_memory_equal(&out.proc, p, sizeof *p);
	assert_int_equal(out.pids_limit, 50);
	assert_int_equal(out.nbinds, 1);
	assert_string_equal(out.binds[0].src, "/run/f/0/hosts");
	assert_string_equal(out.binds[0].dst, "/etc/hosts");
	ctrj_config_free(&out);
	free(buf);

	/* what the parser would refuse is not encoded */
	in.binds[0].dst = "etc/hosts";
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), -1);
	in.nbinds = 0;
	p->rlimits[1].soft = UINT64_MAX, p->rlimits[1].hard = 1;
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), -1);
	p->rlimits[1] = (struct ctrj_rlimit){7, 1, 1}; /* twice */
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), -1);
	p->nrlimits = 1;
	p->oom_score_adj = 1001;
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), -1);
	p->oom_score_adj = 0;
	p->ngroups = CTRJ_MAX_GROUPS + 1;
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), -1);
}

/* Process records a host could not have written are refused. */
static void test_parse_proc_hostile(void **state)
{
	static const struct {
		uint16_t type;
		uint8_t v[24];
		size_t n;
		const char *needle;
	} bad[] = {
	    {CTRJ_REC_CAPS, {0}, 39, "capabilities"},
	    {CTRJ_REC_RLIMIT, {16}, 20, "rlimit 16"},       /* RLIM_NLIMITS */
	    {CTRJ_REC_RLIMIT, {7, 0, 0, 0, 2}, 20, "soft"}, /* soft 2 > hard 0 */
	    {CTRJ_REC_RLIMIT, {7}, 19, "length"},
	    {CTRJ_REC_GROUPS, {0}, 6, "groups"},
	    {CTRJ_REC_PROC_FLAGS, {0x10}, 8, "flags"},                /* unknown flag */
	    {CTRJ_REC_PROC_FLAGS, {0}, 8, "flags"},                   /* none */
	    {CTRJ_REC_PROC_FLAGS, {4, 0, 0, 0, 1}, 8, "flags"},       /* oom without OOM */
	    {CTRJ_REC_PROC_FLAGS, {8, 0, 0, 0, 0xe9, 3}, 8, "flags"}, /* 1001 */
	    {CTRJ_REC_PIDS_LIMIT, {0}, 8, "pids"},
	    {CTRJ_REC_PIDS_LIMIT, {1}, 4, "pids"},
	    {CTRJ_REC_BIND_FILE, {2, 0, '/', 'a', 'b'}, 5, "bound file"},      /* dst relative */
	    {CTRJ_REC_BIND_FILE, {3, 0, '/', 'a', '/'}, 5, "bound file"},      /* no dst */
	    {CTRJ_REC_BIND_FILE, {9, 0, '/', 'a', '/', 'b'}, 6, "bound file"}, /* src overruns */
	    {CTRJ_REC_BIND_FILE, {2, 0, '/', 0, '/', 'b'}, 6, "bound file"},   /* NUL */
	    {CTRJ_REC_BIND_FILE, {1}, 1, "bound file"},
	};
	struct rawbuf b = {0};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		raw_str(&b, CTRJ_REC_ARG, "/bin/true");
		raw_rec(&b, bad[i].type, bad[i].v, bad[i].n);
		expect_parse_error(&b, bad[i].needle);
		raw_free(&b);
	}
	/* a second capabilities or groups record, a second rlimit of a kind */
	static const uint8_t caps[40] = {1}, rl[20] = {7};
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_CAPS, caps, sizeof caps);
	raw_rec(&b, CTRJ_REC_CAPS, caps, sizeof caps);
	expect_parse_error(&b, "duplicate");
	raw_free(&b);
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_RLIMIT, rl, sizeof rl);
	raw_rec(&b, CTRJ_REC_RLIMIT, rl, sizeof rl);
	expect_parse_error(&b, "twice");
	raw_free(&b);
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_GROUPS, NULL, 0);
	raw_rec(&b, CTRJ_REC_GROUPS, NULL, 0);
	expect_parse_error(&b, "groups");
	raw_free(&b);
	/* at most CTRJ_MAX_BIND_FILES bound files */
	static const uint8_t bind[] = {2, 0, '/', 'a', '/', 'b'};
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	for (unsigned i = 0; i <= CTRJ_MAX_BIND_FILES; i++)
		raw_rec(&b, CTRJ_REC_BIND_FILE, bind, sizeof bind);
	expect_parse_error(&b, "more than");
	raw_free(&b);
}

/* Host directories, tmpfs and a read-only root round trip; a record the
 * host could not have written is refused. */
static void test_config_mounts(void **state)
{
	char *argv[] = {"true", NULL};
	struct ctrj_mount m[] = {
	    {.kind = CTRJ_MOUNT_VIRTIOFS,
	     .flags = CTRJ_MOUNT_READONLY,
	     .tag = "ctrj0",
	     .path = "/h"},
	    {.kind = CTRJ_MOUNT_TMPFS,
	     .flags = CTRJ_MOUNT_NOEXEC | CTRJ_MOUNT_NODEV,
	     .size = 8 << 20,
	     .mode = 0700,
	     .path = "/scratch dir"},
	};
	struct ctrj_config in = {.argv = argv,
	                         .argc = 1,
	                         .mounts = m,
	                         .nmounts = 2,
	                         .readonly_root = true},
	                   out;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256] = "";

	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), 0);
	assert_int_equal(parse_exact(buf, len, &out, err, sizeof err), 0);
	assert_int_equal(out.nmounts, 2);
	assert_true(out.readonly_root);
	assert_int_equal(out.mounts[0].kind, CTRJ_MOUNT_VIRTIOFS);
	assert_int_equal(out.mounts[0].flags, CTRJ_MOUNT_READONLY);
	assert_string_equal(out.mounts[0].tag, "ctrj0");
	assert_string_equal(out.mounts[0].path, "/h");
	assert_int_equal(out.mounts[1].kind, CTRJ_MOUNT_TMPFS);
	assert_null(out.mounts[1].tag);
	assert_true(out.mounts[1].size == 8 << 20);
	assert_int_equal(out.mounts[1].mode, 0700);
	assert_string_equal(out.mounts[1].path, "/scratch dir");
	ctrj_config_free(&out);
	free(buf);

	/* refused: a tmpfs with a tag, a virtiofs without one, a relative
	 * path, unknown flags or kind, a tag longer than its payload */
	static const struct {
		uint32_t kind, flags;
		uint16_t tlen;
		const char *rest;
	} bad[] = {
	    {CTRJ_MOUNT_TMPFS, 0, 1, "x/p"},
	    {CTRJ_MOUNT_VIRTIOFS, 0, 0, "/p"},
	    {CTRJ_MOUNT_VIRTIOFS, 0, 1, "tp"},
	    {CTRJ_MOUNT_TMPFS, 0x100, 0, "/p"},
	    {7, 0, 0, "/p"},
	    {CTRJ_MOUNT_VIRTIOFS, 0, 200, "t/p"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rawbuf b = {0};
		uint8_t rec[64] = {0};
		size_t n = strlen(bad[i].rest);
		struct ctrj_config c;
		rec[0] = (uint8_t)bad[i].kind;
		rec[4] = (uint8_t)bad[i].flags;
		rec[5] = (uint8_t)(bad[i].flags >> 8);
		rec[20] = (uint8_t)bad[i].tlen;
		memcpy(rec + 22, bad[i].rest, n);
		raw_str(&b, CTRJ_REC_ARG, "true");
		raw_rec(&b, CTRJ_REC_MOUNT, rec, 22 + n);
		assert_int_equal(ctrj_config_parse(b.p, b.len, &c, err, sizeof err), -1);
		ctrj_config_free(&c);
		raw_free(&b);
	}
}

static void test_config_encode_rejects(void **state)
{
	struct ctrj_config cfg = {0};
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256] = "";
	char *argv[] = {"/bin/true", NULL};

	/* No command. */
	assert_int_equal(ctrj_config_encode(&cfg, &buf, &len, err, sizeof err), -1);
	assert_non_null(strstr(err, "no command"));
	assert_null(buf);

	/* Too many arguments. */
	cfg.argv = argv;
	cfg.argc = CTRJ_MAX_ARGS + 1;
	assert_int_equal(ctrj_config_encode(&cfg, &buf, &len, err, sizeof err), -1);
	assert_null(buf);

	/* Too many environment entries. */
	cfg.argc = 1;
	cfg.envp = argv;
	cfg.envc = CTRJ_MAX_ENV + 1;
	assert_int_equal(ctrj_config_encode(&cfg, &buf, &len, err, sizeof err), -1);
	assert_null(buf);

	/* A single string over CTRJ_MAX_STRING. */
	char *big = malloc(CTRJ_MAX_STRING + 2);
	assert_non_null(big);
	memset(big, 'x', CTRJ_MAX_STRING + 1);
	big[CTRJ_MAX_STRING + 1] = '\0';
	char *bigv[] = {big, NULL};
	cfg.argv = bigv;
	cfg.envp = NULL;
	cfg.envc = 0;
	assert_int_equal(ctrj_config_encode(&cfg, &buf, &len, err, sizeof err), -1);
	assert_null(buf);
	assert_non_null(strstr(err, "too large"));

	/* Many strings that together exceed the config area. */
	big[CTRJ_MAX_STRING - 16] = '\0';
	char *many[] = {big, big, big, big, big, NULL};
	cfg.argv = many;
	cfg.argc = 5;
	assert_int_equal(ctrj_config_encode(&cfg, &buf, &len, err, sizeof err), -1);
	assert_null(buf);
	free(big);
}

/* ---- config parse rejects ----------------------------------------------- */

static void test_parse_empty(void **state)
{
	struct rawbuf b = {0};
	expect_parse_error(&b, "no command");
}

static void test_parse_no_arg(void **state)
{
	struct rawbuf b = {0};
	raw_str(&b, CTRJ_REC_ENV, "A=1");
	raw_str(&b, CTRJ_REC_WORKDIR, "/");
	expect_parse_error(&b, "no command");
	raw_free(&b);
}

static void test_parse_truncated(void **state)
{
	struct ctrj_config in = {0};
	char *argv[] = {"/bin/echo", "hello world", NULL};
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256];

	in.argv = argv;
	in.argc = 2;
	in.workdir = "/w";
	assert_int_equal(ctrj_config_encode(&in, &buf, &len, err, sizeof err), 0);

	/* Every proper prefix either fails or (when cut exactly at a record
	 * boundary after the first ARG) is a valid shorter config; none may
	 * read out of bounds. */
	for (size_t cut = 0; cut < len; cut++) {
		struct ctrj_config out;
		int r = parse_exact(buf, cut, &out, err, sizeof err);
		if (r == 0) {
			assert_true(out.argc >= 1);
			ctrj_config_free(&out);
		} else {
			assert_int_equal(r, -1);
			assert_null(out.argv);
		}
	}

	/* A header cut short. */
	struct rawbuf b = {0};
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_bytes(&b, "\x01\x80\x00", 3);
	expect_parse_error(&b, "truncated");
	raw_free(&b);

	/* A payload cut short. */
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_hdr(&b, CTRJ_REC_ARG, 10);
	raw_bytes(&b, "abc", 3);
	expect_parse_error(&b, "overruns");
	raw_free(&b);
	free(buf);
}

static void test_parse_length_overrun(void **state)
{
	static const uint32_t lies[] = {0xffffffffu, 0x80000000u, CTRJ_MAX_STRING + 1u, 5u};
	for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
		struct rawbuf b = {0};
		raw_hdr(&b, CTRJ_REC_ARG, lies[i]);
		raw_bytes(&b, "/bin", 4);
		expect_parse_error(&b, "overruns");
		raw_free(&b);
	}

	/* A real record longer than CTRJ_MAX_STRING is refused too. */
	struct rawbuf b = {0};
	char *big = calloc(1, CTRJ_MAX_STRING + 1);
	assert_non_null(big);
	memset(big, 'a', CTRJ_MAX_STRING + 1);
	raw_rec(&b, CTRJ_REC_ARG, big, CTRJ_MAX_STRING + 1);
	expect_parse_error(&b, "overruns");
	raw_free(&b);
	free(big);

	/* The whole config longer than the config area. */
	uint8_t *huge = calloc(1, CTRJ_CTL_CONFIG_MAX + 1);
	struct ctrj_config cfg;
	char err[128] = "";
	assert_non_null(huge);
	assert_int_equal(ctrj_config_parse(huge, CTRJ_CTL_CONFIG_MAX + 1, &cfg, err, sizeof err),
	                 -1);
	assert_non_null(strstr(err, "exceeds"));
	free(huge);
}

static void test_parse_nul_in_string(void **state)
{
	static const uint16_t types[] = {CTRJ_REC_ARG, CTRJ_REC_ENV, CTRJ_REC_WORKDIR,
	                                 CTRJ_REC_USER, CTRJ_REC_HOSTNAME};
	static const char payload[][8] = {"/bin\0sh", "A=1\0B=2", "/tmp\0/x", "root\0:0",
	                                  "host\0xy"};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct rawbuf b = {0};
		raw_str(&b, CTRJ_REC_ARG, "/bin/true");
		raw_rec(&b, types[i], payload[i], 7);
		expect_parse_error(&b, "NUL");
		raw_free(&b);
	}
}

static void test_parse_env_without_name(void **state)
{
	static const char *const bad[] = {"NOEQUALS", "=value", "", "="};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rawbuf b = {0};
		raw_str(&b, CTRJ_REC_ARG, "/bin/true");
		raw_str(&b, CTRJ_REC_ENV, bad[i]);
		expect_parse_error(&b, "NAME=");
		raw_free(&b);
	}
}

static void test_parse_unknown_critical(void **state)
{
	struct rawbuf b = {0};
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, 0x80ff, "xyz", 3);
	expect_parse_error(&b, "0x80ff");
	raw_free(&b);

	raw_rec(&b, 0xffff, NULL, 0);
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	expect_parse_error(&b, "unknown required");
	raw_free(&b);
}

/* The stdio record: 8 bytes, once, the agent flag set, no unknown flags. */
static void test_parse_stdio_hostile(void **state)
{
	static const uint8_t no_agent[8] = {CTRJ_STDIO_STDIN, 0, 0, 0, 24, 0, 80, 0};
	static const uint8_t unknown[8] = {CTRJ_STDIO_AGENT | 0x40, 0, 0, 0, 24, 0, 80, 0};
	static const uint8_t good[8] = {CTRJ_STDIO_AGENT, 0, 0, 0, 24, 0, 80, 0};
	struct rawbuf b = {0};

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_STDIO, good, 7);
	expect_parse_error(&b, "stdio record");
	raw_free(&b);
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_STDIO, no_agent, 8);
	expect_parse_error(&b, "stdio record");
	raw_free(&b);
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_STDIO, unknown, 8);
	expect_parse_error(&b, "stdio record");
	raw_free(&b);
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_STDIO, good, 8);
	raw_rec(&b, CTRJ_REC_STDIO, good, 8);
	expect_parse_error(&b, "duplicate stdio");
	raw_free(&b);
}

static void test_parse_unknown_optional_skipped(void **state)
{
	struct rawbuf b = {0};
	struct ctrj_config cfg;
	char err[256] = "";

	raw_rec(&b, 0x7fff, "\0\0\0garbage\xff", 11);
	raw_str(&b, CTRJ_REC_ARG, "/bin/echo");
	raw_rec(&b, 0x00ff, NULL, 0);
	raw_str(&b, CTRJ_REC_ARG, "hi");
	raw_rec(&b, 0x0100, "\x80\x01", 2);
	assert_int_equal(parse_exact(b.p, b.len, &cfg, err, sizeof err), 0);
	assert_int_equal(cfg.argc, 2);
	assert_string_equal(cfg.argv[0], "/bin/echo");
	assert_string_equal(cfg.argv[1], "hi");
	assert_null(cfg.argv[2]);
	ctrj_config_free(&cfg);
	raw_free(&b);
}

static void test_parse_workdir_rules(void **state)
{
	struct rawbuf b = {0};

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_str(&b, CTRJ_REC_WORKDIR, "/a");
	raw_str(&b, CTRJ_REC_WORKDIR, "/b");
	expect_parse_error(&b, "duplicate");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_str(&b, CTRJ_REC_WORKDIR, "relative/dir");
	expect_parse_error(&b, "absolute");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_WORKDIR, NULL, 0);
	expect_parse_error(&b, "absolute");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_str(&b, CTRJ_REC_USER, "a");
	raw_str(&b, CTRJ_REC_USER, "b");
	expect_parse_error(&b, "duplicate");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_USER, NULL, 0);
	expect_parse_error(&b, "empty");
	raw_free(&b);
}

static void test_parse_fixed_size_records(void **state)
{
	struct rawbuf b = {0};
	char host[66];

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_GRACE_MS, "\x01\x02\x03", 3);
	expect_parse_error(&b, "want 4");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_STOP_SIGNAL, "\0\0\0\0", 4);
	expect_parse_error(&b, "stop signal");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_STOP_SIGNAL, "\x41\0\0\0", 4);
	expect_parse_error(&b, "stop signal");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_UPPER_SIZE, "\0\0\0\0", 4);
	expect_parse_error(&b, "want 8");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_BASE_UUID, "0123456789abcde", 15);
	expect_parse_error(&b, "want 16");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_rec(&b, CTRJ_REC_MODULES_UUID, "0123456789abcdefg", 17);
	expect_parse_error(&b, "want 16");
	raw_free(&b);

	memset(host, 'h', 65);
	host[65] = '\0';
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_str(&b, CTRJ_REC_HOSTNAME, host);
	expect_parse_error(&b, "hostname");
	raw_free(&b);

	/* 64 bytes is fine; grace given twice: the last one counts. */
	struct ctrj_config cfg;
	char err[256];
	host[64] = '\0';
	raw_str(&b, CTRJ_REC_ARG, "/bin/true");
	raw_str(&b, CTRJ_REC_HOSTNAME, host);
	raw_rec(&b, CTRJ_REC_GRACE_MS, "\x01\0\0\0", 4);
	raw_rec(&b, CTRJ_REC_GRACE_MS, "\x02\x01\0\0", 4);
	raw_rec(&b, CTRJ_REC_STOP_SIGNAL, "\x40\0\0\0", 4);
	assert_int_equal(parse_exact(b.p, b.len, &cfg, err, sizeof err), 0);
	assert_string_equal(cfg.hostname, host);
	assert_int_equal(cfg.grace_ms, 0x102);
	assert_int_equal(cfg.stop_signal, 64);
	ctrj_config_free(&cfg);
	raw_free(&b);
}

static void test_parse_too_many_args(void **state)
{
	struct rawbuf b = {0};
	struct ctrj_config cfg;
	char err[256] = "";

	for (unsigned i = 0; i < CTRJ_MAX_ARGS; i++)
		raw_str(&b, CTRJ_REC_ARG, "x");
	assert_int_equal(parse_exact(b.p, b.len, &cfg, err, sizeof err), 0);
	assert_int_equal(cfg.argc, CTRJ_MAX_ARGS);
	ctrj_config_free(&cfg);

	raw_str(&b, CTRJ_REC_ARG, "x");
	expect_parse_error(&b, "too many");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "x");
	for (unsigned i = 0; i <= CTRJ_MAX_ENV; i++)
		raw_str(&b, CTRJ_REC_ENV, "A=1");
	expect_parse_error(&b, "too many");
	raw_free(&b);
}

/* Layer records: 16 bytes each, at most CTRJ_MAX_LAYERS. */
static void test_parse_layers_bounded(void **state)
{
	struct rawbuf b = {0};
	struct ctrj_config cfg;
	uint8_t uuid[17] = {0};
	char err[256] = "";

	(void)state;
	raw_str(&b, CTRJ_REC_ARG, "x");
	for (unsigned i = 0; i < CTRJ_MAX_LAYERS; i++)
		raw_rec(&b, CTRJ_REC_LAYER, uuid, 16);
	assert_int_equal(parse_exact(b.p, b.len, &cfg, err, sizeof err), 0);
	assert_int_equal(cfg.nlayers, CTRJ_MAX_LAYERS);
	ctrj_config_free(&cfg);
	raw_rec(&b, CTRJ_REC_LAYER, uuid, 16);
	expect_parse_error(&b, "layer record");
	raw_free(&b);

	raw_str(&b, CTRJ_REC_ARG, "x");
	raw_rec(&b, CTRJ_REC_LAYER, uuid, 17);
	expect_parse_error(&b, "layer record");
	raw_free(&b);
}

static void test_parse_null_err(void **state)
{
	struct rawbuf b = {0};
	struct ctrj_config cfg;

	raw_str(&b, CTRJ_REC_ENV, "A");
	assert_int_equal(ctrj_config_parse(b.p, b.len, &cfg, NULL, 0), -1);
	raw_free(&b);
}

/* ---- header ------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_header(void **state)
{
	uint8_t h[CTRJ_CTL_HEADER_SIZE];
	struct ctrj_ctl_header hdr;
	char err[256];

	ctrj_header_encode(h, 1234);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), 0);
	assert_memory_equal(hdr.magic, CTRJ_CTL_MAGIC, 8);
	assert_int_equal(hdr.version, CTRJ_PROTOCOL_VERSION);
	assert_int_equal(hdr.config_off, CTRJ_CTL_CONFIG_OFF);
	assert_int_equal(hdr.config_len, 1234);
	assert_int_equal(hdr.status_off, CTRJ_CTL_STATUS_OFF);

	ctrj_header_encode(h, CTRJ_CTL_CONFIG_MAX);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), 0);

	/* Bad magic. */
	ctrj_header_encode(h, 1);
	h[7] ^= 0x20;
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a control disk"));
	memset(h, 0, sizeof h);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);

	/* Bad version. */
	ctrj_header_encode(h, 1);
	put32(h + 8, CTRJ_PROTOCOL_VERSION + 1);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);
	assert_non_null(strstr(err, "version"));
	put32(h + 8, 0);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);

	/* Config too large. */
	ctrj_header_encode(h, CTRJ_CTL_CONFIG_MAX + 1);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);
	assert_non_null(strstr(err, "out of bounds"));
	ctrj_header_encode(h, 0xffffffffu);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);

	/* Layout moved. */
	ctrj_header_encode(h, 1);
	put32(h + 12, 0);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);
	ctrj_header_encode(h, 1);
	put32(h + 20, CTRJ_CTL_STATUS_OFF + 512);
	assert_int_equal(ctrj_header_parse(h, &hdr, err, sizeof err), -1);
}

/* ---- status ------------------------------------------------------------- */

enum { ST_VERSION = 8, ST_STATE = 12, ST_CODE = 16, ST_SIGNAL = 20, ST_MSG_LEN = 56, ST_MSG = 60 };

static void encode_status(uint8_t *out, uint32_t state, uint32_t code, uint32_t sig,
                          const char *msg)
{
	struct ctrj_status st = {0};
	st.state = state;
	st.code = code;
	st.signal = sig;
	st.t_init_ns = 1;
	st.t_modules_ns = 2;
	st.t_workload_start_ns = 3;
	st.t_workload_end_ns = UINT64_MAX;
	snprintf(st.msg, sizeof st.msg, "%s", msg);
	ctrj_status_encode(&st, out);
}

static int parse_status_exact(const uint8_t *in, size_t len, struct ctrj_status *st, char *err,
                              size_t errlen)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;
	assert_non_null(copy);
	memcpy(copy, in, len);
	r = ctrj_status_parse(copy, len, st, err, errlen);
	free(copy);
	return r;
}

static void assert_msg_safe(const struct ctrj_status *st)
{
	size_t n = strnlen(st->msg, sizeof st->msg);
	assert_true(n <= CTRJ_STATUS_MSG_MAX);
	for (size_t i = 0; i < n; i++)
		assert_true(st->msg[i] >= 0x20 && st->msg[i] < 0x7f);
}

static void test_status_round_trip(void **state)
{
	uint8_t buf[CTRJ_CTL_STATUS_SIZE];
	struct ctrj_status st;
	char err[256];

	encode_status(buf, CTRJ_STATE_EXITED, 42, 0, "workload exited");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 1);
	assert_int_equal(st.state, CTRJ_STATE_EXITED);
	assert_int_equal(st.code, 42);
	assert_true(st.t_init_ns == 1 && st.t_modules_ns == 2 && st.t_workload_start_ns == 3 &&
	            st.t_workload_end_ns == UINT64_MAX);
	assert_string_equal(st.msg, "workload exited");

	encode_status(buf, CTRJ_STATE_SIGNALED, 0, 9, "");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 1);
	assert_int_equal(st.signal, 9);
	assert_string_equal(st.msg, "");

	encode_status(buf, CTRJ_STATE_SIGNALED, 0, 64, "x");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 1);

	/* Longest message; the minimum area size is enough. */
	char longmsg[CTRJ_STATUS_MSG_MAX + 1];
	memset(longmsg, 'm', CTRJ_STATUS_MSG_MAX);
	longmsg[CTRJ_STATUS_MSG_MAX] = '\0';
	encode_status(buf, CTRJ_STATE_INIT_FAILED, 255, 0, longmsg);
	assert_int_equal(
	    parse_status_exact(buf, ST_MSG + CTRJ_STATUS_MSG_MAX, &st, err, sizeof err), 1);
	assert_string_equal(st.msg, longmsg);
	assert_int_equal(st.code, 255);

	encode_status(buf, CTRJ_STATE_EXEC_FAILED, 127, 0, "no such file");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 1);
	assert_int_equal(st.state, CTRJ_STATE_EXEC_FAILED);
}

static void test_status_absent(void **state)
{
	uint8_t buf[CTRJ_CTL_STATUS_SIZE];
	struct ctrj_status st;
	char err[256];

	memset(buf, 0, sizeof buf);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 0);
	assert_int_equal(st.state, CTRJ_STATE_NONE);
	assert_string_equal(st.msg, "");

	memset(buf, 0xff, sizeof buf);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 0);

	encode_status(buf, CTRJ_STATE_EXITED, 0, 0, "ok");
	buf[0] = 'X';
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 0);
}

static void test_status_invalid(void **state)
{
	uint8_t buf[CTRJ_CTL_STATUS_SIZE];
	struct ctrj_status st;
	char err[256];

	/* Too short to hold a record at all. */
	encode_status(buf, CTRJ_STATE_EXITED, 0, 0, "ok");
	assert_int_equal(
	    parse_status_exact(buf, ST_MSG + CTRJ_STATUS_MSG_MAX - 1, &st, err, sizeof err), -1);
	assert_int_equal(parse_status_exact(buf, 0, &st, err, sizeof err), -1);

	/* Unknown version. */
	put32(buf + ST_VERSION, 2);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);

	static const uint32_t bad_states[] = {CTRJ_STATE_NONE, CTRJ_STATE_MAX + 1, 0xffffffffu};
	for (size_t i = 0; i < sizeof bad_states / sizeof bad_states[0]; i++) {
		encode_status(buf, bad_states[i], 0, 0, "");
		assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);
		assert_non_null(strstr(err, "state"));
		assert_msg_safe(&st);
	}

	encode_status(buf, CTRJ_STATE_EXITED, 256, 0, "");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);
	assert_non_null(strstr(err, "exit code"));
	encode_status(buf, CTRJ_STATE_EXITED, 0xffffffffu, 0, "");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);

	encode_status(buf, CTRJ_STATE_SIGNALED, 0, 0, "");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);
	assert_non_null(strstr(err, "signal"));
	encode_status(buf, CTRJ_STATE_SIGNALED, 0, 65, "");
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);

	encode_status(buf, CTRJ_STATE_EXITED, 0, 0, "");
	put32(buf + ST_MSG_LEN, CTRJ_STATUS_MSG_MAX + 1);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);
	assert_non_null(strstr(err, "message length"));
	assert_msg_safe(&st);
	put32(buf + ST_MSG_LEN, 0xffffffffu);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), -1);
	assert_msg_safe(&st);
}

static void test_status_sanitizes_message(void **state)
{
	uint8_t buf[CTRJ_CTL_STATUS_SIZE];
	struct ctrj_status st;
	char err[256];
	static const uint8_t raw[] = {'o',  'k',  0x1b, '[',  '2', 'J', '\n', '\r',
	                              0x00, 0x7f, 0xff, 0x80, '~', ' ', '\t', '!'};

	encode_status(buf, CTRJ_STATE_INIT_FAILED, 0, 0, "");
	put32(buf + ST_MSG_LEN, sizeof raw);
	memcpy(buf + ST_MSG, raw, sizeof raw);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 1);
	assert_string_equal(st.msg, "ok?[2J??????~ ?!");
	assert_int_equal(strlen(st.msg), sizeof raw);
	assert_msg_safe(&st);

	/* Bytes after msg_len are ignored, whatever they are. */
	memset(buf + ST_MSG, 0xff, CTRJ_CTL_STATUS_SIZE - ST_MSG);
	memcpy(buf + ST_MSG, "abc", 3);
	put32(buf + ST_MSG_LEN, 3);
	assert_int_equal(parse_status_exact(buf, sizeof buf, &st, err, sizeof err), 1);
	assert_string_equal(st.msg, "abc");
}

/* ---- exit codes ----------------------------------------------------------- */

static void test_exit_codes(void **state)
{
	(void)state;
	for (int code = 0; code <= 255; code++) {
		int st;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(code);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_int_equal(ctrj_wait_code(st), code);
	}
	for (int sig = 1; sig <= 64; sig++)
		assert_int_equal(ctrj_signal_code(sig), 128 + sig);
	/* A raw status of "killed by SIGKILL" (no fork needed). */
	assert_int_equal(ctrj_wait_code(9), 137);
	assert_int_equal(ctrj_wait_code(15), 143);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_round_trip),
	    cmocka_unit_test(test_config_round_trip_minimal),
	    cmocka_unit_test(test_config_hold),
	    cmocka_unit_test(test_config_proc),
	    cmocka_unit_test(test_parse_proc_hostile),
	    cmocka_unit_test(test_config_encode_rejects),
	    cmocka_unit_test(test_parse_stdio_hostile),
	    cmocka_unit_test(test_parse_empty),
	    cmocka_unit_test(test_parse_no_arg),
	    cmocka_unit_test(test_parse_truncated),
	    cmocka_unit_test(test_parse_length_overrun),
	    cmocka_unit_test(test_parse_nul_in_string),
	    cmocka_unit_test(test_parse_env_without_name),
	    cmocka_unit_test(test_parse_unknown_critical),
	    cmocka_unit_test(test_parse_unknown_optional_skipped),
	    cmocka_unit_test(test_parse_workdir_rules),
	    cmocka_unit_test(test_parse_fixed_size_records),
	    cmocka_unit_test(test_parse_too_many_args),
	    cmocka_unit_test(test_parse_layers_bounded),
	    cmocka_unit_test(test_parse_null_err),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_config_mounts),
	    cmocka_unit_test(test_status_round_trip),
	    cmocka_unit_test(test_status_absent),
	    cmocka_unit_test(test_status_invalid),
	    cmocka_unit_test(test_status_sanitizes_message),
	    cmocka_unit_test(test_exit_codes),
	};
	return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
