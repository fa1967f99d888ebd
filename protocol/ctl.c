/* SPDX-License-Identifier: Apache-2.0 */
/* Control-disk encoding and parsing, shared by host and guest. Every length
 * read from a buffer is checked against what remains before it is used. */
#include "ctrj/protocol.h"
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- encoder ---------------------------------------------------------- */

struct enc {
	uint8_t *buf;
	size_t len;
	size_t cap;
};

static int enc_record(struct enc *e, uint16_t type, const void *data, size_t n)
{
	if (n > CTRJ_MAX_STRING || e->len + 8 + n > CTRJ_CTL_CONFIG_MAX)
		return -1;
	if (wire_reserve(&e->buf, &e->cap, e->len + 8 + n) < 0)
		return -1;
	put_le16(e->buf + e->len, type);
	put_le16(e->buf + e->len + 2, 0);
	put_le32(e->buf + e->len + 4, (uint32_t)n);
	if (n)
		memcpy(e->buf + e->len + 8, data, n);
	e->len += 8 + n;
	return 0;
}

static int enc_string(struct enc *e, uint16_t type, const char *s)
{
	return s ? enc_record(e, type, s, strlen(s)) : 0;
}

static int enc_u32(struct enc *e, uint16_t type, uint32_t v)
{
	uint8_t b[4];
	put_le32(b, v);
	return enc_record(e, type, b, sizeof b);
}

static int enc_u64(struct enc *e, uint16_t type, uint64_t v)
{
	uint8_t b[8];
	put_le64(b, v);
	return enc_record(e, type, b, sizeof b);
}

bool ctrj_secret_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > CTRJ_MAX_SECRET_NAME || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static int enc_volume(struct enc *e, const struct ctrj_volume *v)
{
	size_t plen = strlen(v->path);
	uint8_t *b = malloc(20 + plen);
	int r;

	if (!b || plen == 0 || v->path[0] != '/') {
		free(b);
		return -1;
	}
	memcpy(b, v->uuid, 16);
	put_le32(b + 16, v->flags);
	memcpy(b + 20, v->path, plen);
	r = enc_record(e, CTRJ_REC_VOLUME, b, 20 + plen);
	free(b);
	return r;
}

static int enc_mount(struct enc *e, const struct ctrj_mount *m)
{
	size_t tlen = m->tag ? strlen(m->tag) : 0, plen = strlen(m->path);
	uint8_t *b = malloc(22 + tlen + plen);
	int r;

	if (!b || plen == 0 || m->path[0] != '/' || tlen > CTRJ_MAX_MOUNT_TAG) {
		free(b);
		return -1;
	}
	put_le32(b, m->kind);
	put_le32(b + 4, m->flags);
	put_le64(b + 8, m->size);
	put_le32(b + 16, m->mode);
	put_le16(b + 20, (uint16_t)tlen);
	memcpy(b + 22, m->tag ? m->tag : "", tlen);
	memcpy(b + 22 + tlen, m->path, plen);
	r = enc_record(e, CTRJ_REC_MOUNT, b, 22 + tlen + plen);
	free(b);
	return r;
}

static int enc_secret(struct enc *e, const struct ctrj_secret *sec)
{
	size_t nlen = strlen(sec->name);
	uint8_t *b = malloc(2 + nlen + sec->len);
	int r;

	if (!b)
		return -1;
	put_le16(b, (uint16_t)nlen);
	memcpy(b + 2, sec->name, nlen);
	if (sec->len)
		memcpy(b + 2 + nlen, sec->value, sec->len);
	r = enc_record(e, CTRJ_REC_SECRET, b, 2 + nlen + sec->len);
	explicit_bzero(b, 2 + nlen + sec->len);
	free(b);
	return r;
}

static int enc_bind(struct enc *e, const struct ctrj_bind_file *b)
{
	size_t slen = strlen(b->src), dlen = strlen(b->dst);
	uint8_t *v = malloc(2 + slen + dlen);
	int r;

	if (!v || slen > CTRJ_MAX_STRING) {
		free(v);
		return -1;
	}
	put_le16(v, (uint16_t)slen);
	memcpy(v + 2, b->src, slen);
	memcpy(v + 2 + slen, b->dst, dlen);
	r = enc_record(e, CTRJ_REC_BIND_FILE, v, 2 + slen + dlen);
	free(v);
	return r;
}

static int enc_net(struct enc *e, const struct ctrj_net *net)
{
	uint8_t b[32] = {0};

	/* addresses are already in network order: copied as bytes */
	memcpy(b, &net->addr, 4);
	memcpy(b + 4, &net->gateway, 4);
	put_le32(b + 8, net->prefix);
	put_le32(b + 12, net->mtu);
	put_le32(b + 16, net->ndns);
	for (uint32_t i = 0; i < net->ndns; i++)
		memcpy(b + 20 + 4 * i, &net->dns[i], 4);
	return enc_record(e, CTRJ_REC_NET, b, sizeof b);
}

/* What the parser would refuse, refused before encoding. */
static int check_encodable(const struct ctrj_config *cfg, char *err, size_t errlen)
{
	if (cfg->argc == 0)
		return wire_fail(err, errlen, "no command to run");
	if (cfg->argc > CTRJ_MAX_ARGS)
		return wire_fail(err, errlen, "too many arguments (%zu, at most %u)", cfg->argc,
		                 CTRJ_MAX_ARGS);
	if (cfg->envc > CTRJ_MAX_ENV)
		return wire_fail(err, errlen, "too many environment variables (%zu, at most %u)",
		                 cfg->envc, CTRJ_MAX_ENV);
	if (cfg->nmounts > CTRJ_MAX_MOUNTS)
		return wire_fail(err, errlen, "too many mounts (at most %u)", CTRJ_MAX_MOUNTS);
	if (cfg->nvolumes > CTRJ_MAX_VOLUMES || cfg->nsecrets > CTRJ_MAX_SECRETS)
		return wire_fail(err, errlen, "too many volumes or secrets (at most %u and %u)",
		                 CTRJ_MAX_VOLUMES, CTRJ_MAX_SECRETS);
	if (cfg->nbinds > CTRJ_MAX_BIND_FILES)
		return wire_fail(err, errlen, "too many bound files (at most %u)",
		                 CTRJ_MAX_BIND_FILES);
	for (size_t i = 0; i < cfg->nbinds; i++)
		if (cfg->binds[i].src[0] != '/' || cfg->binds[i].dst[0] != '/' ||
		    strlen(cfg->binds[i].src) > UINT16_MAX)
			return wire_fail(err, errlen, "a bound file's paths must be absolute");
	if (!ctrj_proc_valid(&cfg->proc))
		return wire_fail(err, errlen, "invalid process privileges or limits");
	if (cfg->has_net && (cfg->net.ndns > CTRJ_MAX_DNS || cfg->net.prefix > 32))
		return wire_fail(err, errlen, "invalid network settings");
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		const char *name = cfg->secrets[i].name;
		if (!ctrj_secret_name_valid(name, strlen(name)))
			return wire_fail(err, errlen, "invalid secret name '%s'", name);
	}
	return 0;
}

static int enc_proc_rec(void *e, uint16_t type, const void *v, size_t n)
{
	return enc_record(e, type, v, n);
}

/* The workload's privileges and limits, its pids limit. */
static int enc_proc(struct enc *e, const struct ctrj_config *cfg)
{
	if (ctrj_proc_encode(&cfg->proc, CTRJ_REC_CAPS, enc_proc_rec, e) < 0)
		return -1;
	return cfg->pids_limit ? enc_u64(e, CTRJ_REC_PIDS_LIMIT, cfg->pids_limit) : 0;
}

static int enc_stdio(struct enc *e, const struct ctrj_config *cfg)
{
	uint8_t v[8];

	put_le32(v, cfg->stdio_flags);
	put_le16(v + 4, cfg->tty_rows);
	put_le16(v + 6, cfg->tty_cols);
	return enc_record(e, CTRJ_REC_STDIO, v, sizeof v);
}

int ctrj_config_encode(const struct ctrj_config *cfg, uint8_t **out, size_t *out_len, char *err,
                       size_t errlen)
{
	struct enc e = {0};
	int r = 0;

	if (check_encodable(cfg, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < cfg->argc && r == 0; i++)
		r = enc_string(&e, CTRJ_REC_ARG, cfg->argv[i]);
	for (size_t i = 0; i < cfg->envc && r == 0; i++)
		r = enc_string(&e, CTRJ_REC_ENV, cfg->envp[i]);
	if (r == 0)
		r = enc_string(&e, CTRJ_REC_WORKDIR, cfg->workdir);
	if (r == 0)
		r = enc_string(&e, CTRJ_REC_USER, cfg->user);
	if (r == 0)
		r = enc_string(&e, CTRJ_REC_HOSTNAME, cfg->hostname);
	if (r == 0)
		r = enc_u32(&e, CTRJ_REC_GRACE_MS, cfg->grace_ms);
	if (r == 0 && cfg->stop_signal)
		r = enc_u32(&e, CTRJ_REC_STOP_SIGNAL, cfg->stop_signal);
	if (r == 0 && cfg->upper_size)
		r = enc_u64(&e, CTRJ_REC_UPPER_SIZE, cfg->upper_size);
	if (r == 0 && cfg->has_base_uuid)
		r = enc_record(&e, CTRJ_REC_BASE_UUID, cfg->base_uuid, 16);
	if (r == 0 && cfg->has_modules_uuid)
		r = enc_record(&e, CTRJ_REC_MODULES_UUID, cfg->modules_uuid, 16);
	for (size_t i = 0; r == 0 && i < cfg->nlayers && i < CTRJ_MAX_LAYERS; i++)
		r = enc_record(&e, CTRJ_REC_LAYER, cfg->layer_uuids[i], 16);
	for (size_t i = 0; i < cfg->nvolumes && r == 0; i++)
		r = enc_volume(&e, &cfg->volumes[i]);
	for (size_t i = 0; i < cfg->nmounts && r == 0; i++)
		r = enc_mount(&e, &cfg->mounts[i]);
	if (r == 0 && cfg->readonly_root)
		r = enc_record(&e, CTRJ_REC_READONLY_ROOT, NULL, 0);
	if (r == 0 && cfg->has_net)
		r = enc_net(&e, &cfg->net);
	if (r == 0 && cfg->stdio_flags)
		r = enc_stdio(&e, cfg);
	for (size_t i = 0; i < cfg->nsecrets && r == 0; i++)
		r = enc_secret(&e, &cfg->secrets[i]);
	if (r == 0 && cfg->hold)
		r = enc_record(&e, CTRJ_REC_HOLD, NULL, 0);
	if (r == 0)
		r = enc_proc(&e, cfg);
	for (size_t i = 0; i < cfg->nbinds && r == 0; i++)
		r = enc_bind(&e, &cfg->binds[i]);
	if (r < 0) {
		free(e.buf);
		return wire_fail(err, errlen,
		                 "guest configuration too large (command, environment and settings "
		                 "must fit in %u bytes)",
		                 CTRJ_CTL_CONFIG_MAX);
	}
	*out = e.buf;
	*out_len = e.len;
	return 0;
}

/* ---- parser ----------------------------------------------------------- */

static char *dup_string(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static int push(char ***vec, size_t *count, char *s)
{
	char **nv = realloc(*vec, (*count + 2) * sizeof **vec);
	if (!nv)
		return -1;
	nv[*count] = s;
	nv[*count + 1] = NULL;
	*vec = nv;
	(*count)++;
	return 0;
}

/* An argv or envp record: one more string in its NULL-terminated vector. */
static int push_record(char ***vec, size_t *count, size_t max, const uint8_t *p, size_t n,
                       const char *what, char *err, size_t errlen)
{
	char *s;

	if (*count >= max)
		return wire_fail(err, errlen, "too many %s", what);
	s = dup_string(p, n);
	if (!s || push(vec, count, s) < 0) {
		free(s);
		return wire_fail(err, errlen, "out of memory");
	}
	return 0;
}

void ctrj_config_free(struct ctrj_config *cfg)
{
	for (size_t i = 0; cfg->argv && i < cfg->argc; i++)
		free(cfg->argv[i]);
	for (size_t i = 0; cfg->envp && i < cfg->envc; i++)
		free(cfg->envp[i]);
	free(cfg->argv);
	free(cfg->envp);
	free(cfg->workdir);
	free(cfg->user);
	free(cfg->hostname);
	for (size_t i = 0; cfg->volumes && i < cfg->nvolumes; i++)
		free(cfg->volumes[i].path);
	free(cfg->volumes);
	for (size_t i = 0; cfg->mounts && i < cfg->nmounts; i++) {
		free(cfg->mounts[i].tag);
		free(cfg->mounts[i].path);
	}
	free(cfg->mounts);
	for (size_t i = 0; cfg->secrets && i < cfg->nsecrets; i++) {
		free(cfg->secrets[i].name);
		if (cfg->secrets[i].value)
			explicit_bzero(cfg->secrets[i].value, cfg->secrets[i].len);
		free(cfg->secrets[i].value);
	}
	free(cfg->secrets);
	for (size_t i = 0; i < cfg->nbinds && i < CTRJ_MAX_BIND_FILES; i++) {
		free(cfg->binds[i].src);
		free(cfg->binds[i].dst);
	}
	memset(cfg, 0, sizeof *cfg);
}

static int set_once(char **slot, const uint8_t *p, size_t n, const char *name, char *err,
                    size_t errlen)
{
	if (*slot)
		return wire_fail(err, errlen, "duplicate %s record", name);
	if (n == 0)
		return wire_fail(err, errlen, "empty %s", name);
	*slot = dup_string(p, n);
	return *slot ? 0 : wire_fail(err, errlen, "out of memory");
}

static int parse_volume(struct ctrj_config *cfg, const uint8_t *p, size_t n, char *err,
                        size_t errlen)
{
	struct ctrj_volume *nv;
	size_t plen;

	if (n < 21 || p[20] != '/')
		return wire_fail(err, errlen, "volume record without an absolute path");
	plen = n - 20;
	if (memchr(p + 20, '\0', plen))
		return wire_fail(err, errlen, "volume path contains a NUL byte");
	if (cfg->nvolumes >= CTRJ_MAX_VOLUMES)
		return wire_fail(err, errlen, "too many volumes");
	nv = realloc(cfg->volumes, (cfg->nvolumes + 1) * sizeof *nv);
	if (!nv)
		return wire_fail(err, errlen, "out of memory");
	cfg->volumes = nv;
	memcpy(nv[cfg->nvolumes].uuid, p, 16);
	nv[cfg->nvolumes].flags = get_le32(p + 16);
	if (!(nv[cfg->nvolumes].path = dup_string(p + 20, plen)))
		return wire_fail(err, errlen, "out of memory");
	cfg->nvolumes++;
	return 0;
}

/* A mount record: a known kind and flags, a tag for virtiofs only (a
 * tmpfs has none), an absolute path without NUL bytes. */
static int parse_mount(struct ctrj_config *cfg, const uint8_t *p, size_t n, char *err,
                       size_t errlen)
{
	struct ctrj_mount *nm, m = {0};
	size_t tlen, plen;

	if (n < 22)
		return wire_fail(err, errlen, "truncated mount record");
	m.kind = get_le32(p);
	m.flags = get_le32(p + 4);
	m.size = get_le64(p + 8);
	m.mode = get_le32(p + 16);
	tlen = get_le16(p + 20);
	if ((m.kind != CTRJ_MOUNT_VIRTIOFS && m.kind != CTRJ_MOUNT_TMPFS) ||
	    (m.flags & ~CTRJ_MOUNT_FLAGS) || m.mode > 07777)
		return wire_fail(err, errlen, "mount record out of range");
	if (tlen > CTRJ_MAX_MOUNT_TAG || tlen > n - 22 ||
	    (m.kind == CTRJ_MOUNT_VIRTIOFS) != (tlen > 0) || memchr(p + 22, '\0', tlen))
		return wire_fail(err, errlen, "mount record with an invalid tag");
	plen = n - 22 - tlen;
	if (plen == 0 || p[22 + tlen] != '/' || memchr(p + 22 + tlen, '\0', plen))
		return wire_fail(err, errlen, "mount record without an absolute path");
	if (cfg->nmounts >= CTRJ_MAX_MOUNTS)
		return wire_fail(err, errlen, "too many mounts");
	nm = realloc(cfg->mounts, (cfg->nmounts + 1) * sizeof *nm);
	if (!nm)
		return wire_fail(err, errlen, "out of memory");
	cfg->mounts = nm;
	if ((tlen && !(m.tag = dup_string(p + 22, tlen))) ||
	    !(m.path = dup_string(p + 22 + tlen, plen))) {
		free(m.tag);
		return wire_fail(err, errlen, "out of memory");
	}
	nm[cfg->nmounts++] = m;
	return 0;
}

static int parse_secret(struct ctrj_config *cfg, const uint8_t *p, size_t n, char *err,
                        size_t errlen)
{
	struct ctrj_secret *ns, *sec;
	size_t nlen;

	if (n < 2)
		return wire_fail(err, errlen, "truncated secret record");
	nlen = get_le16(p);
	if (nlen > n - 2 || !ctrj_secret_name_valid((const char *)p + 2, nlen))
		return wire_fail(err, errlen, "secret record with an invalid name");
	if (cfg->nsecrets >= CTRJ_MAX_SECRETS)
		return wire_fail(err, errlen, "too many secrets");
	for (size_t i = 0; i < cfg->nsecrets; i++)
		if (strlen(cfg->secrets[i].name) == nlen &&
		    memcmp(cfg->secrets[i].name, p + 2, nlen) == 0)
			return wire_fail(err, errlen, "duplicate secret name");
	ns = realloc(cfg->secrets, (cfg->nsecrets + 1) * sizeof *ns);
	if (!ns)
		return wire_fail(err, errlen, "out of memory");
	cfg->secrets = ns;
	sec = &ns[cfg->nsecrets];
	sec->len = n - 2 - nlen;
	sec->name = dup_string(p + 2, nlen);
	sec->value = malloc(sec->len ? sec->len : 1);
	if (!sec->name || !sec->value) {
		free(sec->name);
		free(sec->value);
		return wire_fail(err, errlen, "out of memory");
	}
	if (sec->len)
		memcpy(sec->value, p + 2 + nlen, sec->len);
	cfg->nsecrets++;
	return 0;
}

static int parse_net(struct ctrj_config *cfg, const uint8_t *p, size_t n, char *err, size_t errlen)
{
	if (n != 32 || cfg->has_net)
		return wire_fail(err, errlen, "invalid or duplicate network record");
	memcpy(&cfg->net.addr, p, 4);
	memcpy(&cfg->net.gateway, p + 4, 4);
	cfg->net.prefix = get_le32(p + 8);
	cfg->net.mtu = get_le32(p + 12);
	cfg->net.ndns = get_le32(p + 16);
	if (cfg->net.prefix == 0 || cfg->net.prefix > 32 || cfg->net.ndns > CTRJ_MAX_DNS ||
	    cfg->net.mtu < 576 || cfg->net.mtu > 65535)
		return wire_fail(err, errlen, "network record out of range");
	for (uint32_t i = 0; i < cfg->net.ndns; i++)
		memcpy(&cfg->net.dns[i], p + 20 + 4 * i, 4);
	cfg->has_net = true;
	return 0;
}

static int parse_stdio(struct ctrj_config *cfg, const uint8_t *p, size_t n, char *err,
                       size_t errlen)
{
	if (n != 8 || cfg->stdio_flags)
		return wire_fail(err, errlen, "invalid or duplicate stdio record");
	cfg->stdio_flags = get_le32(p);
	cfg->tty_rows = get_le16(p + 4);
	cfg->tty_cols = get_le16(p + 6);
	if (!(cfg->stdio_flags & CTRJ_STDIO_AGENT) || (cfg->stdio_flags & ~CTRJ_STDIO_ALL))
		return wire_fail(err, errlen, "stdio record with flags 0x%x", cfg->stdio_flags);
	return 0;
}

static int parse_bind(struct ctrj_config *cfg, const uint8_t *p, size_t n, char *err, size_t errlen)
{
	size_t slen = n >= 2 ? get_le16(p) : 0;
	struct ctrj_bind_file *b = &cfg->binds[cfg->nbinds];

	if (n < 2 || slen == 0 || slen >= n - 2 || p[2] != '/' || p[2 + slen] != '/' ||
	    memchr(p + 2, '\0', n - 2) || cfg->nbinds >= CTRJ_MAX_BIND_FILES)
		return wire_fail(err, errlen, "invalid bound file record, or more than %u",
		                 CTRJ_MAX_BIND_FILES);
	b->src = dup_string(p + 2, slen);
	b->dst = dup_string(p + 2 + slen, n - 2 - slen);
	cfg->nbinds++; /* freed with the config, whatever failed */
	if (!b->src || !b->dst)
		return wire_fail(err, errlen, "out of memory");
	return 0;
}

/* The workload's privileges and limits (CTRJ_REC_CAPS...PROC_FLAGS: enum
 * ctrj_proc_rec's order), its pids limit. */
static int parse_proc(struct ctrj_config *cfg, uint16_t type, const uint8_t *p, size_t n, char *err,
                      size_t errlen)
{
	if (type != CTRJ_REC_PIDS_LIMIT)
		return ctrj_proc_parse(&cfg->proc, (enum ctrj_proc_rec)(type - CTRJ_REC_CAPS + 1),
		                       p, n, err, errlen);
	if (n != 8 || cfg->pids_limit || !get_le64(p))
		return wire_fail(err, errlen, "invalid or duplicate pids limit record");
	cfg->pids_limit = get_le64(p);
	return 0;
}

static int parse_record(struct ctrj_config *cfg, uint16_t type, const uint8_t *p, size_t n,
                        char *err, size_t errlen)
{
	bool is_string = type == CTRJ_REC_ARG || type == CTRJ_REC_ENV || type == CTRJ_REC_WORKDIR ||
	                 type == CTRJ_REC_USER || type == CTRJ_REC_HOSTNAME;

	if (is_string && memchr(p, '\0', n))
		return wire_fail(err, errlen, "record 0x%04x contains a NUL byte", type);
	if (type >= CTRJ_REC_CAPS && type <= CTRJ_REC_PIDS_LIMIT)
		return parse_proc(cfg, type, p, n, err, errlen);
	if (type == CTRJ_REC_BIND_FILE)
		return parse_bind(cfg, p, n, err, errlen);

	switch (type) {
	case CTRJ_REC_ARG:
		return push_record(&cfg->argv, &cfg->argc, CTRJ_MAX_ARGS, p, n, "arguments", err,
		                   errlen);
	case CTRJ_REC_ENV: {
		const uint8_t *eq = memchr(p, '=', n);
		if (!eq || eq == p)
			return wire_fail(err, errlen, "environment entry without NAME=");
		return push_record(&cfg->envp, &cfg->envc, CTRJ_MAX_ENV, p, n,
		                   "environment variables", err, errlen);
	}
	case CTRJ_REC_WORKDIR:
		if (n == 0 || p[0] != '/')
			return wire_fail(err, errlen, "working directory must be absolute");
		return set_once(&cfg->workdir, p, n, "workdir", err, errlen);
	case CTRJ_REC_USER:
		return set_once(&cfg->user, p, n, "user", err, errlen);
	case CTRJ_REC_HOSTNAME:
		if (n > 64)
			return wire_fail(err, errlen, "hostname longer than 64 bytes");
		return set_once(&cfg->hostname, p, n, "hostname", err, errlen);
	case CTRJ_REC_GRACE_MS:
	case CTRJ_REC_STOP_SIGNAL:
		if (n != 4)
			return wire_fail(err, errlen, "record 0x%04x has length %zu, want 4", type,
			                 n);
		if (type == CTRJ_REC_GRACE_MS)
			cfg->grace_ms = get_le32(p);
		else if ((cfg->stop_signal = get_le32(p)) == 0 || cfg->stop_signal > 64)
			return wire_fail(err, errlen, "stop signal %u out of range",
			                 cfg->stop_signal);
		return 0;
	case CTRJ_REC_UPPER_SIZE:
		if (n != 8)
			return wire_fail(err, errlen, "upper size record has length %zu, want 8",
			                 n);
		cfg->upper_size = get_le64(p);
		return 0;
	case CTRJ_REC_BASE_UUID:
	case CTRJ_REC_MODULES_UUID:
		if (n != 16)
			return wire_fail(err, errlen, "uuid record has length %zu, want 16", n);
		if (type == CTRJ_REC_BASE_UUID) {
			memcpy(cfg->base_uuid, p, 16);
			cfg->has_base_uuid = true;
		} else {
			memcpy(cfg->modules_uuid, p, 16);
			cfg->has_modules_uuid = true;
		}
		return 0;
	case CTRJ_REC_LAYER:
		if (n != 16 || cfg->nlayers >= CTRJ_MAX_LAYERS)
			return wire_fail(err, errlen, "layer record of length %zu, or more than %u",
			                 n, CTRJ_MAX_LAYERS);
		memcpy(cfg->layer_uuids[cfg->nlayers++], p, 16);
		return 0;
	case CTRJ_REC_VOLUME:
		return parse_volume(cfg, p, n, err, errlen);
	case CTRJ_REC_MOUNT:
		return parse_mount(cfg, p, n, err, errlen);
	case CTRJ_REC_READONLY_ROOT:
		if (n != 0)
			return wire_fail(err, errlen, "read-only root record with a payload");
		cfg->readonly_root = true;
		return 0;
	case CTRJ_REC_NET:
		return parse_net(cfg, p, n, err, errlen);
	case CTRJ_REC_SECRET:
		return parse_secret(cfg, p, n, err, errlen);
	case CTRJ_REC_STDIO:
		return parse_stdio(cfg, p, n, err, errlen);
	case CTRJ_REC_HOLD:
		if (n != 0 || cfg->hold)
			return wire_fail(err, errlen, "invalid or duplicate hold record");
		cfg->hold = true;
		return 0;
	default:
		if (type & CTRJ_REC_CRITICAL)
			return wire_fail(
			    err, errlen,
			    "unknown required record 0x%04x (host runtime newer than guest "
			    "init?)",
			    type);
		return 0; /* optional and unknown: skip */
	}
}

/* The records of buf into cfg; on failure cfg holds what was parsed. */
static int parse_records(const uint8_t *buf, size_t len, struct ctrj_config *cfg, char *err,
                         size_t errlen)
{
	for (size_t off = 0; off < len;) {
		if (len - off < 8)
			return wire_fail(err, errlen, "truncated record header at offset %zu", off);
		uint16_t type = get_le16(buf + off);
		uint32_t n = get_le32(buf + off + 4);
		if (n > len - off - 8 || n > CTRJ_MAX_STRING)
			return wire_fail(err, errlen, "record at offset %zu overruns the config",
			                 off);
		if (parse_record(cfg, type, buf + off + 8, n, err, errlen) < 0)
			return -1;
		off += 8 + (size_t)n;
	}
	if (cfg->argc == 0)
		return wire_fail(err, errlen, "config has no command");
	return 0;
}

int ctrj_config_parse(const uint8_t *buf, size_t len, struct ctrj_config *cfg, char *err,
                      size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	if (len > CTRJ_CTL_CONFIG_MAX)
		return wire_fail(err, errlen, "config length %zu exceeds %u", len,
		                 CTRJ_CTL_CONFIG_MAX);
	if (parse_records(buf, len, cfg, err, errlen) < 0) {
		ctrj_config_free(cfg);
		return -1;
	}
	if (!cfg->envp && push(&cfg->envp, &cfg->envc, NULL) == 0)
		cfg->envc = 0; /* always hand out a NULL-terminated vector */
	return 0;
}

/* ---- header ----------------------------------------------------------- */

void ctrj_header_encode(uint8_t out[CTRJ_CTL_HEADER_SIZE], uint32_t config_len)
{
	memset(out, 0, CTRJ_CTL_HEADER_SIZE);
	memcpy(out, CTRJ_CTL_MAGIC, 8);
	put_le32(out + 8, CTRJ_PROTOCOL_VERSION);
	put_le32(out + 12, CTRJ_CTL_CONFIG_OFF);
	put_le32(out + 16, config_len);
	put_le32(out + 20, CTRJ_CTL_STATUS_OFF);
}

int ctrj_header_parse(const uint8_t in[CTRJ_CTL_HEADER_SIZE], struct ctrj_ctl_header *hdr,
                      char *err, size_t errlen)
{
	if (memcmp(in, CTRJ_CTL_MAGIC, 8) != 0)
		return wire_fail(err, errlen, "not a control disk");
	memcpy(hdr->magic, in, 8);
	hdr->version = get_le32(in + 8);
	hdr->config_off = get_le32(in + 12);
	hdr->config_len = get_le32(in + 16);
	hdr->status_off = get_le32(in + 20);
	if (hdr->version != CTRJ_PROTOCOL_VERSION)
		return wire_fail(err, errlen, "control disk version %u, this init speaks %u",
		                 hdr->version, CTRJ_PROTOCOL_VERSION);
	if (hdr->config_off != CTRJ_CTL_CONFIG_OFF || hdr->status_off != CTRJ_CTL_STATUS_OFF ||
	    hdr->config_len > CTRJ_CTL_CONFIG_MAX)
		return wire_fail(err, errlen, "control disk layout out of bounds");
	return 0;
}

/* ---- status ----------------------------------------------------------- */

enum {
	ST_MAGIC = 0,
	ST_VERSION = 8,
	ST_STATE = 12,
	ST_CODE = 16,
	ST_SIGNAL = 20,
	ST_T_INIT = 24,
	ST_T_MODULES = 32,
	ST_T_START = 40,
	ST_T_END = 48,
	ST_MSG_LEN = 56,
	ST_MSG = 60,
};

void ctrj_status_encode(const struct ctrj_status *st, uint8_t out[CTRJ_CTL_STATUS_SIZE])
{
	size_t mlen = strnlen(st->msg, CTRJ_STATUS_MSG_MAX);

	memset(out, 0, CTRJ_CTL_STATUS_SIZE);
	memcpy(out + ST_MAGIC, CTRJ_STATUS_MAGIC, 8);
	put_le32(out + ST_VERSION, CTRJ_PROTOCOL_VERSION);
	put_le32(out + ST_STATE, st->state);
	put_le32(out + ST_CODE, st->code);
	put_le32(out + ST_SIGNAL, st->signal);
	put_le64(out + ST_T_INIT, st->t_init_ns);
	put_le64(out + ST_T_MODULES, st->t_modules_ns);
	put_le64(out + ST_T_START, st->t_workload_start_ns);
	put_le64(out + ST_T_END, st->t_workload_end_ns);
	put_le32(out + ST_MSG_LEN, (uint32_t)mlen);
	memcpy(out + ST_MSG, st->msg, mlen);
}

int ctrj_status_parse(const uint8_t *in, size_t len, struct ctrj_status *st, char *err,
                      size_t errlen)
{
	memset(st, 0, sizeof *st);
	if (len < ST_MSG + CTRJ_STATUS_MSG_MAX)
		return wire_fail(err, errlen, "status area too short");
	if (memcmp(in + ST_MAGIC, CTRJ_STATUS_MAGIC, 8) != 0)
		return 0;
	if (get_le32(in + ST_VERSION) != CTRJ_PROTOCOL_VERSION)
		return wire_fail(err, errlen, "status record has unknown version");
	st->state = get_le32(in + ST_STATE);
	st->code = get_le32(in + ST_CODE);
	st->signal = get_le32(in + ST_SIGNAL);
	st->t_init_ns = get_le64(in + ST_T_INIT);
	st->t_modules_ns = get_le64(in + ST_T_MODULES);
	st->t_workload_start_ns = get_le64(in + ST_T_START);
	st->t_workload_end_ns = get_le64(in + ST_T_END);
	uint32_t mlen = get_le32(in + ST_MSG_LEN);

	if (st->state == CTRJ_STATE_NONE || st->state > CTRJ_STATE_MAX)
		return wire_fail(err, errlen, "status record has invalid state %u", st->state);
	if (st->code > 255)
		return wire_fail(err, errlen, "status record has exit code %u out of range",
		                 st->code);
	if (st->state == CTRJ_STATE_SIGNALED && (st->signal == 0 || st->signal > 64))
		return wire_fail(err, errlen, "status record has signal %u out of range",
		                 st->signal);
	if (mlen > CTRJ_STATUS_MSG_MAX)
		return wire_fail(err, errlen, "status message length %u out of range", mlen);
	for (uint32_t i = 0; i < mlen; i++) {
		uint8_t c = in[ST_MSG + i];
		st->msg[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	st->msg[mlen] = '\0';
	return 1;
}

/* ---- exit codes ------------------------------------------------------- */

int ctrj_signal_code(int signo)
{
	return 128 + signo;
}

int ctrj_wait_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return ctrj_signal_code(WTERMSIG(wstatus));
	return 255;
}
