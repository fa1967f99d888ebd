/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Agent channel protocol: the host runtime and the guest init's agent talk
 * over one byte stream (a virtio-serial port, or a vsock connection) to
 * run extra processes in the guest (`ctr-jailer exec`). Host and guest
 * both compile protocol/agent.c. The guest treats host frames as
 * trusted-but-bounded; the host treats guest frames as hostile (the
 * guest may be compromised): nothing the guest sends
 * can make the host open or run anything, it only ever answers.
 *
 * A frame (integers little-endian):
 *   type:le16  flags:le16 (0)  session:le32  len:le32  payload[len]
 * with len <= CTRJ_AGENT_FRAME_MAX. Session 0 is the channel itself (HELLO);
 * every other frame belongs to one exec session the host numbered.
 *
 * Flow control: each data stream (stdin towards the guest, stdout and stderr
 * towards the host) starts with CTRJ_AGENT_WINDOW bytes of credit; a sender
 * never sends more data than its credit, the receiver returns credit (CREDIT)
 * as its consumer drains. So neither side buffers more than one window per
 * stream, however slow the reader.
 */
#ifndef CTRJ_AGENT_H
#define CTRJ_AGENT_H

#include "ctrj/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTRJ_AGENT_VERSION   1u
#define CTRJ_AGENT_HDR_SIZE  12u
#define CTRJ_AGENT_FRAME_MAX (256u * 1024u) /* payload bytes, START included */
#define CTRJ_AGENT_DATA_MAX  (32u * 1024u)  /* payload of one data frame */
#define CTRJ_AGENT_WINDOW    (256u * 1024u) /* initial credit per stream */
#define CTRJ_AGENT_MAX_ARGS  1024u
#define CTRJ_AGENT_MAX_ENV   1024u
#define CTRJ_AGENT_MSG_MAX   200u

/* The workload's own stdio (the control disk's CTRJ_REC_STDIO): a session
 * the guest opens itself when it starts the workload, with the initial
 * windows on its streams; no START, no EXIT (the status comes on the
 * control disk). The host never gives this number to an exec session. */
#define CTRJ_AGENT_MAIN_SESSION 0xffffffffu
/* Where a VMM without the virtio-serial port (Firecracker) reaches the
 * agent: the guest listens on this AF_VSOCK port and serves one host
 * connection at a time; it never connects out. */
#define CTRJ_AGENT_VSOCK_PORT 1024u

enum ctrj_agent_type {
	/* both directions */
	CTRJ_AGENT_HELLO = 1,  /* version:le32 (session 0) */
	CTRJ_AGENT_CREDIT = 2, /* stream:le32 bytes:le32 */
	/* host → guest */
	CTRJ_AGENT_START = 16,       /* records, see ctrj_agent_start */
	CTRJ_AGENT_STDIN = 17,       /* data */
	CTRJ_AGENT_STDIN_CLOSE = 18, /* empty */
	CTRJ_AGENT_RESIZE = 19,      /* rows:le16 cols:le16 */
	CTRJ_AGENT_SIGNAL = 20,      /* signo:le32 */
	CTRJ_AGENT_RELEASE = 24,     /* empty, session 0: start the held workload */
	/* guest → host */
	CTRJ_AGENT_STDOUT = 32, /* data; empty = end of stream */
	CTRJ_AGENT_STDERR = 33, /* data; empty = end of stream */
	CTRJ_AGENT_EXIT = 34,   /* kind:le32 code:le32 message (printable) */
};

enum ctrj_agent_stream {
	CTRJ_AGENT_STREAM_STDIN = 0,
	CTRJ_AGENT_STREAM_STDOUT = 1,
	CTRJ_AGENT_STREAM_STDERR = 2,
};

enum ctrj_agent_exit_kind {
	CTRJ_AGENT_EXITED = 1,       /* code = exit status */
	CTRJ_AGENT_SIGNALED = 2,     /* code = signal number */
	CTRJ_AGENT_START_FAILED = 3, /* code = 126 (cannot run) or 127 (not found) */
};

/* Records inside a START payload: type:le16 pad:le16 len:le32 value. */
enum ctrj_agent_rec {
	CTRJ_AGENT_REC_ARG = 1,
	CTRJ_AGENT_REC_ENV = 2,
	CTRJ_AGENT_REC_USER = 3,
	CTRJ_AGENT_REC_WORKDIR = 4,
	CTRJ_AGENT_REC_TTY = 5, /* rows:le16 cols:le16: allocate a terminal */
	/* the process's privileges and limits: struct ctrj_proc's records
	 * (ctrj/protocol.h), payloads as on the control disk */
	CTRJ_AGENT_REC_CAPS = 13,
	CTRJ_AGENT_REC_RLIMIT = 14,
	CTRJ_AGENT_REC_GROUPS = 15,
	CTRJ_AGENT_REC_PROC_FLAGS = 16,
};

/* What a START frame asks for. */
struct ctrj_agent_start {
	char **argv; /* NULL-terminated, argc >= 1 */
	size_t argc;
	char **envp; /* NULL-terminated "KEY=VALUE" */
	size_t envc;
	char *user;    /* NULL: root */
	char *workdir; /* NULL: "/" */
	bool tty;
	uint16_t rows, cols;
	struct ctrj_proc proc; /* flags 0: as the workload's user, root's caps */
};

/* One decoded frame; payload points into the decoder's buffer and is valid
 * until the next call to ctrj_agent_dec_feed. */
struct ctrj_agent_frame {
	uint16_t type;
	uint32_t session;
	const uint8_t *payload;
	uint32_t len;
	/* decoded fixed-size fields, by type */
	uint32_t a; /* HELLO version, CREDIT stream, SIGNAL signo, EXIT kind, RESIZE rows */
	uint32_t b; /* CREDIT bytes, EXIT code, RESIZE cols */
};

/* Which side's frames a decoder accepts. */
enum ctrj_agent_dir {
	CTRJ_AGENT_FROM_HOST = 0,  /* the guest's decoder */
	CTRJ_AGENT_FROM_GUEST = 1, /* the host's decoder */
};

/* A streaming decoder: feed it the bytes as they come, cut anywhere. */
struct ctrj_agent_dec {
	enum ctrj_agent_dir dir;
	uint8_t hdr[CTRJ_AGENT_HDR_SIZE];
	size_t have;  /* bytes of the current frame received (header + payload) */
	uint8_t *buf; /* payload, CTRJ_AGENT_FRAME_MAX bytes */
	bool failed;
};

typedef int (*ctrj_agent_frame_fn)(const struct ctrj_agent_frame *f, void *ctx);

int ctrj_agent_dec_init(struct ctrj_agent_dec *d, enum ctrj_agent_dir dir);
void ctrj_agent_dec_free(struct ctrj_agent_dec *d);
/* Calls fn for every complete, well-formed frame in data. Returns 0, the
 * first nonzero value fn returned, or -1 with a message in err when the
 * stream is malformed (the decoder then refuses everything after). */
int ctrj_agent_dec_feed(struct ctrj_agent_dec *d, const uint8_t *data, size_t len,
                        ctrj_agent_frame_fn fn, void *ctx, char *err, size_t errlen);

/* Encoders write one frame into out (at least CTRJ_AGENT_HDR_SIZE + payload
 * bytes) and return its size, or 0 if it cannot be encoded. */
size_t ctrj_agent_enc_u32(uint8_t *out, uint16_t type, uint32_t session, uint32_t a);
size_t ctrj_agent_enc_u32x2(uint8_t *out, uint16_t type, uint32_t session, uint32_t a, uint32_t b);
size_t ctrj_agent_enc_data(uint8_t *out, uint16_t type, uint32_t session, const void *data,
                           size_t len);
size_t ctrj_agent_enc_resize(uint8_t *out, uint32_t session, uint16_t rows, uint16_t cols);
/* EXIT with a message (truncated to CTRJ_AGENT_MSG_MAX). */
size_t ctrj_agent_enc_exit(uint8_t *out, uint32_t session, uint32_t kind, uint32_t code,
                           const char *msg);
/* START: allocates *out (free it). Returns 0 or -1 with a message in err. */
int ctrj_agent_enc_start(const struct ctrj_agent_start *s, uint32_t session, uint8_t **out,
                         size_t *out_len, char *err, size_t errlen);

/* The START payload of frame f, parsed (allocates; ctrj_agent_start_free). */
int ctrj_agent_start_parse(const struct ctrj_agent_frame *f, struct ctrj_agent_start *s, char *err,
                           size_t errlen);
void ctrj_agent_start_free(struct ctrj_agent_start *s);

/* An EXIT frame's message, copied NUL-terminated into msg (at least
 * CTRJ_AGENT_MSG_MAX + 1 bytes). The decoder already checked it is printable. */
void ctrj_agent_exit_msg(const struct ctrj_agent_frame *f, char *msg);

/* A growable byte buffer (queues of frames). */
struct ctrj_agent_buf {
	uint8_t *p;
	size_t len, cap;
};
int ctrj_agent_buf_add(struct ctrj_agent_buf *b, const void *data, size_t n);
/* Remove the first n bytes (n <= len). */
void ctrj_agent_buf_drop(struct ctrj_agent_buf *b, size_t n);
void ctrj_agent_buf_free(struct ctrj_agent_buf *b);

/* Credit accounting for one data stream on the sending or receiving side. */
struct ctrj_agent_credit {
	uint64_t sent;    /* data bytes sent (or received) */
	uint64_t granted; /* credit granted, including the initial window */
};
void ctrj_agent_credit_init(struct ctrj_agent_credit *c);
/* Bytes the sender may still send. */
uint32_t ctrj_agent_credit_avail(const struct ctrj_agent_credit *c);
/* The receiver's check on data arriving: -1 if it exceeds the credit. */
int ctrj_agent_credit_take(struct ctrj_agent_credit *c, uint32_t n);
/* A CREDIT frame arriving at the sender: -1 if it grants past one window
 * beyond what was sent (a lying peer). */
int ctrj_agent_credit_grant(struct ctrj_agent_credit *c, uint32_t n);

#endif
