/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the host's parser of guest frames (streaming decoder in the
 * FROM_GUEST direction): the guest may be compromised, so every frame passed
 * on must be a guest frame within bounds, its exit status in range and its
 * message safe to print. The first byte picks the chunk size. */
#include "fuzz_agent.h"

#include <string.h>

unsigned long fuzz_accepted;

static int on_frame(const struct ctrj_agent_frame *f, void *ctx)
{
	char msg[CTRJ_AGENT_MSG_MAX + 1];

	(void)ctx;
	FUZZ_CHECK(f->type == CTRJ_AGENT_HELLO || f->session != 0);
	switch (f->type) {
	case CTRJ_AGENT_HELLO:
		FUZZ_CHECK(f->len == 4);
		break;
	case CTRJ_AGENT_CREDIT:
		FUZZ_CHECK(f->a == CTRJ_AGENT_STREAM_STDIN && f->b <= CTRJ_AGENT_WINDOW);
		break;
	case CTRJ_AGENT_STDOUT:
	case CTRJ_AGENT_STDERR:
		FUZZ_CHECK(f->len <= CTRJ_AGENT_DATA_MAX);
		break;
	case CTRJ_AGENT_EXIT:
		FUZZ_CHECK((f->a == CTRJ_AGENT_EXITED && f->b <= 255) ||
		           (f->a == CTRJ_AGENT_SIGNALED && f->b >= 1 && f->b <= 64) ||
		           (f->a == CTRJ_AGENT_START_FAILED && (f->b == 126 || f->b == 127)));
		ctrj_agent_exit_msg(f, msg);
		for (const char *p = msg; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
		break;
	default:
		FUZZ_CHECK(!"a host-bound decoder passed a frame of another type");
	}
	fuzz_accepted++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_agent_feed(CTRJ_AGENT_FROM_GUEST, on_frame, data, size);
	return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	uint8_t buf[1024];
	size_t n = 1;

	buf[0] = 5;
	n += ctrj_agent_enc_u32(buf + n, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDOUT, 1, "out\n", 4);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDERR, 1, "err\n", 4);
	n += ctrj_agent_enc_u32x2(buf + n, CTRJ_AGENT_CREDIT, 1, CTRJ_AGENT_STREAM_STDIN, 4);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDOUT, 1, NULL, 0);
	n += ctrj_agent_enc_exit(buf + n, 1, CTRJ_AGENT_EXITED, 3, "exited");
	n += ctrj_agent_enc_exit(buf + n, 2, CTRJ_AGENT_SIGNALED, 9, "");
	n += ctrj_agent_enc_exit(buf + n, 3, CTRJ_AGENT_START_FAILED, 127, "not found");
	/* the workload's own session */
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDOUT, CTRJ_AGENT_MAIN_SESSION, "o\n", 2);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDERR, CTRJ_AGENT_MAIN_SESSION, "e\n", 2);
	n += ctrj_agent_enc_u32x2(buf + n, CTRJ_AGENT_CREDIT, CTRJ_AGENT_MAIN_SESSION,
	                          CTRJ_AGENT_STREAM_STDIN, 2);
	emit(buf, n, ctx);
	buf[0] = 255;
	emit(buf, n, ctx);
}
