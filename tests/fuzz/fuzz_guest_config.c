/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the guest's config parser (ctrj_config_parse). Whatever it accepts
 * must satisfy the documented invariants and survive encode → parse →
 * encode unchanged. */
#include "fuzz.h"

#include "ctrj/protocol.h"

#include <stdbool.h>
#include <string.h>

unsigned long fuzz_accepted;

static void check_invariants(const struct ctrj_config *c)
{
	FUZZ_CHECK(c->argc >= 1 && c->argc <= CTRJ_MAX_ARGS);
	FUZZ_CHECK(c->argv && c->argv[c->argc] == NULL);
	for (size_t i = 0; i < c->argc; i++)
		FUZZ_CHECK(c->argv[i] && strlen(c->argv[i]) <= CTRJ_MAX_STRING);
	FUZZ_CHECK(c->envc <= CTRJ_MAX_ENV);
	FUZZ_CHECK(c->envp && c->envp[c->envc] == NULL);
	for (size_t i = 0; i < c->envc; i++) {
		const char *eq = c->envp[i] ? strchr(c->envp[i], '=') : NULL;
		FUZZ_CHECK(eq && eq != c->envp[i]);
	}
	FUZZ_CHECK(!c->workdir || c->workdir[0] == '/');
	FUZZ_CHECK(!c->user || c->user[0]);
	FUZZ_CHECK(!c->hostname || (c->hostname[0] && strlen(c->hostname) <= 64));
	FUZZ_CHECK(c->stop_signal <= 64);
	FUZZ_CHECK(ctrj_proc_valid(&c->proc));
	FUZZ_CHECK(c->nbinds <= CTRJ_MAX_BIND_FILES);
	for (size_t i = 0; i < c->nbinds; i++)
		FUZZ_CHECK(c->binds[i].src[0] == '/' && c->binds[i].dst[0] == '/');
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_equal(const struct ctrj_config *a, const struct ctrj_config *b)
{
	FUZZ_CHECK(a->argc == b->argc && a->envc == b->envc);
	for (size_t i = 0; i < a->argc; i++)
		FUZZ_CHECK(strcmp(a->argv[i], b->argv[i]) == 0);
	for (size_t i = 0; i < a->envc; i++)
		FUZZ_CHECK(strcmp(a->envp[i], b->envp[i]) == 0);
	FUZZ_CHECK(str_eq(a->workdir, b->workdir));
	FUZZ_CHECK(str_eq(a->user, b->user));
	FUZZ_CHECK(str_eq(a->hostname, b->hostname));
	FUZZ_CHECK(a->grace_ms == b->grace_ms);
	FUZZ_CHECK(a->stop_signal == b->stop_signal);
	FUZZ_CHECK(a->upper_size == b->upper_size);
	FUZZ_CHECK(a->has_base_uuid == b->has_base_uuid);
	FUZZ_CHECK(a->has_modules_uuid == b->has_modules_uuid);
	FUZZ_CHECK(!a->has_base_uuid || memcmp(a->base_uuid, b->base_uuid, 16) == 0);
	FUZZ_CHECK(!a->has_modules_uuid || memcmp(a->modules_uuid, b->modules_uuid, 16) == 0);
	FUZZ_CHECK(memcmp(&a->proc, &b->proc, sizeof a->proc) == 0);
	FUZZ_CHECK(a->pids_limit == b->pids_limit);
	FUZZ_CHECK(a->nbinds == b->nbinds);
	for (size_t i = 0; i < a->nbinds; i++)
		FUZZ_CHECK(str_eq(a->binds[i].src, b->binds[i].src) &&
		           str_eq(a->binds[i].dst, b->binds[i].dst));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctrj_config cfg, again;
	char err[256];
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t len = 0, len2 = 0;

	memset(err, 'x', sizeof err);
	if (ctrj_config_parse(data, size, &cfg, err, sizeof err) != 0) {
		/* A refusal leaves nothing allocated and a terminated message. */
		FUZZ_CHECK(!cfg.argv && !cfg.envp && !cfg.workdir && !cfg.user && !cfg.hostname);
		FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
		return 0;
	}
	fuzz_accepted++;
	check_invariants(&cfg);

	/* Re-encoding adds at most a grace record (8 + 4 bytes); it can only
	 * fail when that pushes the config over the limit. */
	if (ctrj_config_encode(&cfg, &enc, &len, err, sizeof err) != 0) {
		FUZZ_CHECK(size + 12 > CTRJ_CTL_CONFIG_MAX);
		ctrj_config_free(&cfg);
		return 0;
	}
	FUZZ_CHECK(len <= size + 12);
	FUZZ_CHECK(ctrj_config_parse(enc, len, &again, err, sizeof err) == 0);
	check_invariants(&again);
	check_equal(&cfg, &again);
	FUZZ_CHECK(ctrj_config_encode(&again, &enc2, &len2, err, sizeof err) == 0);
	FUZZ_CHECK(len == len2 && memcmp(enc, enc2, len) == 0);

	free(enc);
	free(enc2);
	ctrj_config_free(&again);
	ctrj_config_free(&cfg);
	return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

static void emit_config(const struct ctrj_config *cfg, const uint8_t *tail, size_t tail_len,
                        fuzz_emit_fn emit, void *ctx)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256];

	if (ctrj_config_encode(cfg, &buf, &len, err, sizeof err) != 0) {
		fprintf(stderr, "seed: %s\n", err);
		abort();
	}
	if (tail_len) {
		uint8_t *nb = realloc(buf, len + tail_len);
		FUZZ_CHECK(nb);
		buf = nb;
		memcpy(buf + len, tail, tail_len);
		len += tail_len;
	}
	emit(buf, len, ctx);
	free(buf);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static char *argv_min[] = {"/bin/true", NULL};
	static char *argv_sh[] = {"/bin/sh", "-c", "echo \"$HOME\" 'x' \\ $(id)\n", "", NULL};
	static char *envp[] = {"PATH=/usr/bin:/bin", "A=b=c", "NL=x\ny", "EMPTY=", NULL};
	struct ctrj_config cfg = {0};

	cfg.argv = argv_min;
	cfg.argc = 1;
	emit_config(&cfg, NULL, 0, emit, ctx);

	cfg.argv = argv_sh;
	cfg.argc = 4;
	cfg.envp = envp;
	cfg.envc = 4;
	cfg.workdir = "/srv/app";
	cfg.user = "1000:1000";
	cfg.hostname = "box";
	cfg.grace_ms = 10000;
	cfg.stop_signal = 15;
	cfg.upper_size = 1ull << 31;
	cfg.has_base_uuid = true;
	cfg.has_modules_uuid = true;
	memcpy(cfg.base_uuid, "0123456789abcdef", 16);
	memcpy(cfg.modules_uuid, "fedcba9876543210", 16);
	emit_config(&cfg, NULL, 0, emit, ctx);
	cfg.stdio_flags = CTRJ_STDIO_AGENT | CTRJ_STDIO_STDIN | CTRJ_STDIO_TTY;
	cfg.tty_rows = 24;
	cfg.tty_cols = 80;
	emit_config(&cfg, NULL, 0, emit, ctx);

	/* config.json's process: capabilities, rlimits, groups, flags, pids */
	struct ctrj_config pc = cfg;
	pc.proc.flags = CTRJ_PROC_CAPS | CTRJ_PROC_GROUPS | CTRJ_PROC_NO_NEW_PRIVS | CTRJ_PROC_OOM;
	pc.proc.cap_bounding = pc.proc.cap_effective = pc.proc.cap_permitted = 0xa80425fbull;
	pc.proc.oom_score_adj = 300;
	pc.proc.ngroups = 2;
	pc.proc.groups[1] = 1234;
	pc.proc.nrlimits = 2;
	pc.proc.rlimits[0] = (struct ctrj_rlimit){7, 1000, 1000};
	pc.proc.rlimits[1] = (struct ctrj_rlimit){6, 50, UINT64_MAX};
	pc.pids_limit = 50;
	pc.binds[0] = (struct ctrj_bind_file){"/run/ctrj-files/0/hosts", "/etc/hosts"};
	pc.binds[1] = (struct ctrj_bind_file){"/run/ctrj-files/0/resolv.conf", "/etc/resolv.conf"};
	pc.nbinds = 2;
	emit_config(&pc, NULL, 0, emit, ctx);

	/* Unknown optional and unknown critical records after a valid config. */
	static const uint8_t optional[] = {0xff, 0x00, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c'};
	static const uint8_t critical[] = {0xff, 0x80, 0, 0, 0, 0, 0, 0};
	emit_config(&cfg, optional, sizeof optional, emit, ctx);
	emit_config(&cfg, critical, sizeof critical, emit, ctx);

	/* Volume (0x800b: uuid[16] flags:le32 path) and secret (0x800c:
	 * name_len:le16 name value) records, written raw. */
	static const uint8_t volsec[] = {
	    0x0b, 0x80, 0,   0,   30,  0,   0,   0, /* volume, 30 bytes */
	    1,    2,    3,   4,   5,   6,   7,   8,   9,   10,  11,   12,   13,  14,  15, 16,
	    1,    0,    0,   0,   '/', 'v', 'a', 'r', '/', 'l', 'i',  'b',  '/', 'x', /* path */
	    0x0c, 0x80, 0,   0,   12,  0,   0,   0, /* secret, 12 bytes */
	    5,    0,    't', 'o', 'k', 'e', 'n', 's', '3', 0,   0xff, '\n',
	};
	emit_config(&cfg, volsec, sizeof volsec, emit, ctx);

	/* A record header whose length overruns, and a cut-off header. */
	static const uint8_t overrun[] = {0x01, 0x80, 0, 0, 0xff, 0xff, 0xff, 0xff, '/'};
	static const uint8_t cut[] = {0x01, 0x80, 0, 0, 4};
	emit(overrun, sizeof overrun, ctx);
	emit(cut, sizeof cut, ctx);
	emit((const uint8_t *)"", 0, ctx);
}
