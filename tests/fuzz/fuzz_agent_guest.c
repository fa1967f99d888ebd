/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the guest agent's parser of host frames (streaming decoder in the
 * FROM_HOST direction, then START records): the first input byte picks the
 * chunk size, so arbitrary cuts of the stream are covered too. Whatever is
 * accepted must be within the protocol's bounds. */
#include "fuzz_agent.h"

#include <string.h>

unsigned long fuzz_accepted;

static void check_start(const struct ctrj_agent_start *s)
{
	FUZZ_CHECK(s->argc >= 1 && s->argc <= CTRJ_AGENT_MAX_ARGS);
	FUZZ_CHECK(s->argv[s->argc] == NULL && s->envp && s->envp[s->envc] == NULL);
	FUZZ_CHECK(s->envc <= CTRJ_AGENT_MAX_ENV);
	for (size_t i = 0; i < s->envc; i++)
		FUZZ_CHECK(s->envp[i][0] != '=' && strchr(s->envp[i], '='));
	FUZZ_CHECK(!s->workdir || s->workdir[0] == '/');
	FUZZ_CHECK(ctrj_proc_valid(&s->proc));
}

static int on_frame(const struct ctrj_agent_frame *f, void *ctx)
{
	struct ctrj_agent_start s;

	(void)ctx;
	FUZZ_CHECK(f->len <= CTRJ_AGENT_FRAME_MAX);
	FUZZ_CHECK(f->type == CTRJ_AGENT_HELLO || f->session != 0);
	switch (f->type) {
	case CTRJ_AGENT_HELLO:
	case CTRJ_AGENT_CREDIT:
	case CTRJ_AGENT_STDIN_CLOSE:
	case CTRJ_AGENT_RESIZE:
		break;
	case CTRJ_AGENT_STDIN:
		FUZZ_CHECK(f->len <= CTRJ_AGENT_DATA_MAX);
		break;
	case CTRJ_AGENT_SIGNAL:
		FUZZ_CHECK(f->a >= 1 && f->a <= 64);
		break;
	case CTRJ_AGENT_START:
		if (ctrj_agent_start_parse(f, &s, NULL, 0) == 0) {
			check_start(&s);
			ctrj_agent_start_free(&s);
		}
		break;
	default:
		FUZZ_CHECK(!"a guest-bound decoder passed a frame of another type");
	}
	fuzz_accepted++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_agent_feed(CTRJ_AGENT_FROM_HOST, on_frame, data, size);
	return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	char *argv[] = {"sh", "-c", "echo hi", NULL};
	char *envp[] = {"A=1", NULL};
	struct ctrj_agent_start s = {.argv = argv,
	                             .argc = 3,
	                             .envp = envp,
	                             .envc = 1,
	                             .user = "1000",
	                             .workdir = "/tmp",
	                             .tty = true,
	                             .rows = 24,
	                             .cols = 80};
	uint8_t buf[1024], *start;
	size_t n = 1, len;

	buf[0] = 7;
	n += ctrj_agent_enc_u32(buf + n, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION);
	FUZZ_CHECK(ctrj_agent_enc_start(&s, 1, &start, &len, NULL, 0) == 0);
	memcpy(buf + n, start, len);
	n += len;
	free(start);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDIN, 1, "hi\n", 3);
	n += ctrj_agent_enc_data(buf + n, CTRJ_AGENT_STDIN_CLOSE, 1, NULL, 0);
	n += ctrj_agent_enc_resize(buf + n, 1, 50, 132);
	n += ctrj_agent_enc_u32(buf + n, CTRJ_AGENT_SIGNAL, 1, 2);
	n += ctrj_agent_enc_u32x2(buf + n, CTRJ_AGENT_CREDIT, 1, CTRJ_AGENT_STREAM_STDOUT, 64);
	emit(buf, n, ctx);
	buf[0] = 0;
	emit(buf, n, ctx);
	emit(buf, 1 + CTRJ_AGENT_HDR_SIZE + 3, ctx);

	/* an exec with process.json's privileges and limits */
	s.proc.flags = CTRJ_PROC_CAPS | CTRJ_PROC_GROUPS | CTRJ_PROC_NO_NEW_PRIVS;
	s.proc.cap_bounding = s.proc.cap_effective = s.proc.cap_permitted = 0xa80425fbull;
	s.proc.ngroups = 1;
	s.proc.groups[0] = 1234;
	s.proc.nrlimits = 1;
	s.proc.rlimits[0] = (struct ctrj_rlimit){7, 1000, 1000};
	n = 1;
	n += ctrj_agent_enc_u32(buf + n, CTRJ_AGENT_HELLO, 0, CTRJ_AGENT_VERSION);
	FUZZ_CHECK(ctrj_agent_enc_start(&s, 1, &start, &len, NULL, 0) == 0);
	FUZZ_CHECK(n + len <= sizeof buf);
	memcpy(buf + n, start, len);
	free(start);
	emit(buf, n + len, ctx);
}
