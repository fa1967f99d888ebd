/* SPDX-License-Identifier: Apache-2.0 */
/* Agent channel frames: encoding, a streaming decoder that validates every
 * frame for its direction, START records, and per-stream credit. Shared by
 * host and guest; every length is checked before it is used. */
#include "ctrj/agent.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

/* ---- encoders ---------------------------------------------------------- */

static size_t put_hdr(uint8_t *out, uint16_t type, uint32_t session, size_t len)
{
	put_le16(out, type);
	put_le16(out + 2, 0);
	put_le32(out + 4, session);
	put_le32(out + 8, (uint32_t)len);
	return CTRJ_AGENT_HDR_SIZE + len;
}

size_t ctrj_agent_enc_u32(uint8_t *out, uint16_t type, uint32_t session, uint32_t a)
{
	put_le32(out + CTRJ_AGENT_HDR_SIZE, a);
	return put_hdr(out, type, session, 4);
}

size_t ctrj_agent_enc_u32x2(uint8_t *out, uint16_t type, uint32_t session, uint32_t a, uint32_t b)
{
	put_le32(out + CTRJ_AGENT_HDR_SIZE, a);
	put_le32(out + CTRJ_AGENT_HDR_SIZE + 4, b);
	return put_hdr(out, type, session, 8);
}

size_t ctrj_agent_enc_data(uint8_t *out, uint16_t type, uint32_t session, const void *data,
                           size_t len)
{
	if (len > CTRJ_AGENT_DATA_MAX)
		return 0;
	if (len)
		memcpy(out + CTRJ_AGENT_HDR_SIZE, data, len);
	return put_hdr(out, type, session, len);
}

size_t ctrj_agent_enc_resize(uint8_t *out, uint32_t session, uint16_t rows, uint16_t cols)
{
	put_le16(out + CTRJ_AGENT_HDR_SIZE, rows);
	put_le16(out + CTRJ_AGENT_HDR_SIZE + 2, cols);
	return put_hdr(out, CTRJ_AGENT_RESIZE, session, 4);
}

size_t ctrj_agent_enc_exit(uint8_t *out, uint32_t session, uint32_t kind, uint32_t code,
                           const char *msg)
{
	size_t n = msg ? strnlen(msg, CTRJ_AGENT_MSG_MAX) : 0;
	uint8_t *p = out + CTRJ_AGENT_HDR_SIZE;

	put_le32(p, kind);
	put_le32(p + 4, code);
	for (size_t i = 0; i < n; i++)
		p[8 + i] = (msg[i] >= 0x20 && msg[i] < 0x7f) ? (uint8_t)msg[i] : '?';
	return put_hdr(out, CTRJ_AGENT_EXIT, session, 8 + n);
}

/* ---- buffers ------------------------------------------------------------- */

int ctrj_agent_buf_add(struct ctrj_agent_buf *b, const void *data, size_t n)
{
	if (wire_reserve(&b->p, &b->cap, b->len + n) < 0)
		return -1;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

void ctrj_agent_buf_drop(struct ctrj_agent_buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

void ctrj_agent_buf_free(struct ctrj_agent_buf *b)
{
	free(b->p);
	*b = (struct ctrj_agent_buf){0};
}

/* One START record: type, zero, length, value. */
static int rec_put(struct ctrj_agent_buf *b, uint16_t type, const void *v, size_t n)
{
	uint8_t h[8];

	if (b->len + 8 + n > CTRJ_AGENT_FRAME_MAX)
		return -1;
	put_le16(h, type);
	put_le16(h + 2, 0);
	put_le32(h + 4, (uint32_t)n);
	return ctrj_agent_buf_add(b, h, 8) < 0 ? -1 : ctrj_agent_buf_add(b, v, n);
}

static int rec_str(struct ctrj_agent_buf *b, uint16_t type, const char *s)
{
	return s ? rec_put(b, type, s, strlen(s)) : 0;
}

static int rec_proc(void *b, uint16_t type, const void *v, size_t n)
{
	return rec_put(b, type, v, n);
}

static int enc_start_recs(const struct ctrj_agent_start *s, struct ctrj_agent_buf *b)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < s->argc; i++)
		r = rec_str(b, CTRJ_AGENT_REC_ARG, s->argv[i]);
	for (size_t i = 0; r == 0 && i < s->envc; i++)
		r = rec_str(b, CTRJ_AGENT_REC_ENV, s->envp[i]);
	if (r == 0)
		r = rec_str(b, CTRJ_AGENT_REC_USER, s->user);
	if (r == 0)
		r = rec_str(b, CTRJ_AGENT_REC_WORKDIR, s->workdir);
	if (r == 0 && s->tty) {
		uint8_t ws[4];
		put_le16(ws, s->rows);
		put_le16(ws + 2, s->cols);
		r = rec_put(b, CTRJ_AGENT_REC_TTY, ws, sizeof ws);
	}
	return r == 0 ? ctrj_proc_encode(&s->proc, CTRJ_AGENT_REC_CAPS, rec_proc, b) : r;
}

int ctrj_agent_enc_start(const struct ctrj_agent_start *s, uint32_t session, uint8_t **out,
                         size_t *out_len, char *err, size_t errlen)
{
	struct ctrj_agent_buf b = {0};

	if (s->argc == 0 || s->argc > CTRJ_AGENT_MAX_ARGS || s->envc > CTRJ_AGENT_MAX_ENV)
		return wire_fail(err, errlen,
		                 "a command needs 1 to %u arguments and at most %u variables",
		                 CTRJ_AGENT_MAX_ARGS, CTRJ_AGENT_MAX_ENV);
	if (session == 0)
		return wire_fail(err, errlen, "session 0 is the channel's own");
	if (!ctrj_proc_valid(&s->proc))
		return wire_fail(err, errlen, "invalid process privileges or limits");
	if (rec_put(&b, 0, NULL, 0) < 0 || enc_start_recs(s, &b) < 0) {
		free(b.p);
		return wire_fail(err, errlen, "the command and its environment exceed %u bytes",
		                 CTRJ_AGENT_FRAME_MAX - 8);
	}
	/* the placeholder record at the front becomes the frame header (8 → 12 bytes) */
	uint8_t *frame = malloc(b.len + 4);
	if (!frame) {
		free(b.p);
		return wire_fail(err, errlen, "out of memory");
	}
	memcpy(frame + CTRJ_AGENT_HDR_SIZE, b.p + 8, b.len - 8);
	*out_len = put_hdr(frame, CTRJ_AGENT_START, session, b.len - 8);
	*out = frame;
	free(b.p);
	return 0;
}

/* ---- START records ------------------------------------------------------- */

static int strv_push(char ***v, size_t *n, size_t max, const uint8_t *s, uint32_t len)
{
	char **nv;

	if (*n >= max)
		return -1;
	nv = realloc(*v, (*n + 2) * sizeof **v);
	if (!nv)
		return -1;
	*v = nv;
	nv[*n] = strndup((const char *)s, len);
	if (!nv[*n])
		return -1;
	nv[++*n] = NULL;
	return 0;
}

static int set_str(char **dst, const uint8_t *s, uint32_t len)
{
	if (*dst || len == 0)
		return -1;
	*dst = strndup((const char *)s, len);
	return *dst ? 0 : -1;
}

static int start_rec(struct ctrj_agent_start *s, uint16_t type, const uint8_t *v, uint32_t n)
{
	if (type >= CTRJ_AGENT_REC_CAPS && type <= CTRJ_AGENT_REC_PROC_FLAGS)
		return ctrj_proc_parse(
		    &s->proc, (enum ctrj_proc_rec)(type - CTRJ_AGENT_REC_CAPS + 1), v, n, NULL, 0);
	if (type != CTRJ_AGENT_REC_TTY && memchr(v, '\0', n))
		return -1;
	switch (type) {
	case CTRJ_AGENT_REC_ARG:
		return strv_push(&s->argv, &s->argc, CTRJ_AGENT_MAX_ARGS, v, n);
	case CTRJ_AGENT_REC_ENV:
		if (n == 0 || v[0] == '=' || !memchr(v, '=', n))
			return -1;
		return strv_push(&s->envp, &s->envc, CTRJ_AGENT_MAX_ENV, v, n);
	case CTRJ_AGENT_REC_USER:
		return set_str(&s->user, v, n);
	case CTRJ_AGENT_REC_WORKDIR:
		return (n && v[0] == '/') ? set_str(&s->workdir, v, n) : -1;
	case CTRJ_AGENT_REC_TTY:
		if (n != 4 || s->tty)
			return -1;
		s->tty = true;
		s->rows = get_le16(v);
		s->cols = get_le16(v + 2);
		return 0;
	default:
		return -1; /* a version 1 guest knows every record it may get */
	}
}

int ctrj_agent_start_parse(const struct ctrj_agent_frame *f, struct ctrj_agent_start *s, char *err,
                           size_t errlen)
{
	size_t off = 0;

	memset(s, 0, sizeof *s);
	while (off < f->len) {
		if (f->len - off < 8)
			goto bad;
		uint16_t type = get_le16(f->payload + off);
		uint32_t n = get_le32(f->payload + off + 4);
		if (get_le16(f->payload + off + 2) != 0 || n > f->len - off - 8)
			goto bad;
		if (start_rec(s, type, f->payload + off + 8, n) < 0)
			goto bad;
		off += 8 + (size_t)n;
	}
	if (s->argc == 0)
		goto bad;
	if (!s->envp)
		s->envp = calloc(1, sizeof *s->envp); /* an empty environment */
	return s->envp ? 0 : wire_fail(err, errlen, "out of memory");
bad:
	ctrj_agent_start_free(s);
	return wire_fail(err, errlen, "malformed start request");
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void ctrj_agent_start_free(struct ctrj_agent_start *s)
{
	strv_free(s->argv);
	strv_free(s->envp);
	free(s->user);
	free(s->workdir);
	memset(s, 0, sizeof *s);
}

void ctrj_agent_exit_msg(const struct ctrj_agent_frame *f, char *msg)
{
	size_t n = f->len > 8 ? f->len - 8 : 0;

	if (n > CTRJ_AGENT_MSG_MAX)
		n = CTRJ_AGENT_MSG_MAX;
	if (n)
		memcpy(msg, f->payload + 8, n);
	msg[n] = '\0';
}

/* ---- decoder ------------------------------------------------------------ */

int ctrj_agent_dec_init(struct ctrj_agent_dec *d, enum ctrj_agent_dir dir)
{
	memset(d, 0, sizeof *d);
	d->dir = dir;
	d->buf = malloc(CTRJ_AGENT_FRAME_MAX);
	return d->buf ? 0 : -1;
}

void ctrj_agent_dec_free(struct ctrj_agent_dec *d)
{
	free(d->buf);
	d->buf = NULL;
}

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] >= 0x7f)
			return false;
	return true;
}

static bool exit_valid(uint32_t kind, uint32_t code)
{
	switch (kind) {
	case CTRJ_AGENT_EXITED:
		return code <= 255;
	case CTRJ_AGENT_SIGNALED:
		return code >= 1 && code <= 64;
	case CTRJ_AGENT_START_FAILED:
		return code == 126 || code == 127;
	default:
		return false;
	}
}

/* The frame's length is already bounded by CTRJ_AGENT_FRAME_MAX. */
static bool frame_valid(enum ctrj_agent_dir dir, struct ctrj_agent_frame *f)
{
	bool host = dir == CTRJ_AGENT_FROM_HOST;
	uint32_t len = f->len;

	f->a = len >= 4 ? get_le32(f->payload) : 0;
	f->b = len >= 8 ? get_le32(f->payload + 4) : 0;
	if (f->type == CTRJ_AGENT_HELLO)
		return f->session == 0 && len == 4;
	if (f->type == CTRJ_AGENT_RELEASE)
		return host && f->session == 0 && len == 0;
	if (f->session == 0)
		return false;
	switch (f->type) {
	case CTRJ_AGENT_CREDIT:
		return len == 8 && f->b <= CTRJ_AGENT_WINDOW &&
		       (host
		            ? (f->a == CTRJ_AGENT_STREAM_STDOUT || f->a == CTRJ_AGENT_STREAM_STDERR)
		            : f->a == CTRJ_AGENT_STREAM_STDIN);
	case CTRJ_AGENT_START:
		return host && len > 0;
	case CTRJ_AGENT_STDIN:
		return host && len <= CTRJ_AGENT_DATA_MAX;
	case CTRJ_AGENT_STDIN_CLOSE:
		return host && len == 0;
	case CTRJ_AGENT_RESIZE:
		if (!host || len != 4)
			return false;
		f->a = get_le16(f->payload);
		f->b = get_le16(f->payload + 2);
		return true;
	case CTRJ_AGENT_SIGNAL:
		return host && len == 4 && f->a >= 1 && f->a <= 64;
	case CTRJ_AGENT_STDOUT:
	case CTRJ_AGENT_STDERR:
		return !host && len <= CTRJ_AGENT_DATA_MAX;
	case CTRJ_AGENT_EXIT:
		return !host && len >= 8 && len <= 8 + CTRJ_AGENT_MSG_MAX &&
		       exit_valid(f->a, f->b) && printable(f->payload + 8, len - 8);
	default:
		return false;
	}
}

/* Takes header bytes; returns the bytes used or -1 when the header is bad. */
static int take_header(struct ctrj_agent_dec *d, const uint8_t *data, size_t len)
{
	size_t n = CTRJ_AGENT_HDR_SIZE - d->have;

	if (n > len)
		n = len;
	memcpy(d->hdr + d->have, data, n);
	d->have += n;
	if (d->have == CTRJ_AGENT_HDR_SIZE &&
	    (get_le16(d->hdr + 2) != 0 || get_le32(d->hdr + 8) > CTRJ_AGENT_FRAME_MAX))
		return -1;
	return (int)n;
}

int ctrj_agent_dec_feed(struct ctrj_agent_dec *d, const uint8_t *data, size_t len,
                        ctrj_agent_frame_fn fn, void *ctx, char *err, size_t errlen)
{
	while (!d->failed && len > 0) {
		if (d->have < CTRJ_AGENT_HDR_SIZE) {
			int n = take_header(d, data, len);
			if (n < 0)
				goto bad;
			data += n;
			len -= (size_t)n;
		}
		if (d->have < CTRJ_AGENT_HDR_SIZE)
			return 0;
		struct ctrj_agent_frame f = {.type = get_le16(d->hdr),
		                             .session = get_le32(d->hdr + 4),
		                             .len = get_le32(d->hdr + 8),
		                             .payload = d->buf};
		size_t got = d->have - CTRJ_AGENT_HDR_SIZE, n = f.len - got;
		if (n > len)
			n = len;
		memcpy(d->buf + got, data, n);
		d->have += n;
		data += n;
		len -= n;
		if (got + n < f.len)
			return 0;
		d->have = 0;
		if (!frame_valid(d->dir, &f))
			goto bad;
		int r = fn(&f, ctx);
		if (r)
			return r;
	}
	if (!d->failed)
		return 0;
bad:
	d->failed = true;
	return wire_fail(err, errlen, "malformed frame on the agent channel");
}

/* ---- credit ------------------------------------------------------------- */

void ctrj_agent_credit_init(struct ctrj_agent_credit *c)
{
	c->sent = 0;
	c->granted = CTRJ_AGENT_WINDOW;
}

uint32_t ctrj_agent_credit_avail(const struct ctrj_agent_credit *c)
{
	return c->granted > c->sent ? (uint32_t)(c->granted - c->sent) : 0;
}

int ctrj_agent_credit_take(struct ctrj_agent_credit *c, uint32_t n)
{
	if (n > ctrj_agent_credit_avail(c))
		return -1;
	c->sent += n;
	return 0;
}

int ctrj_agent_credit_grant(struct ctrj_agent_credit *c, uint32_t n)
{
	if (c->granted + n > c->sent + CTRJ_AGENT_WINDOW)
		return -1;
	c->granted += n;
	return 0;
}
