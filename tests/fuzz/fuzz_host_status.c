/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the host's status parser (ctrj_status_parse): the guest may be
 * compromised when it writes the status record, so whatever the parser
 * returns must be in range and safe to print on the host's terminal. */
#include "fuzz.h"

#include "ctrj/protocol.h"

#include <stdbool.h>
#include <string.h>

unsigned long fuzz_accepted;

static void check_msg(const struct ctrj_status *st)
{
	const char *nul = memchr(st->msg, '\0', sizeof st->msg);

	FUZZ_CHECK(nul != NULL);
	FUZZ_CHECK((size_t)(nul - st->msg) <= CTRJ_STATUS_MSG_MAX);
	for (const char *p = st->msg; p < nul; p++)
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctrj_status st, again;
	uint8_t *enc;
	char err[256];
	int r;

	/* Poison the output: the parser must set every byte it hands out. */
	memset(&st, 0xa5, sizeof st);
	memset(err, 'x', sizeof err);
	r = ctrj_status_parse(data, size, &st, err, sizeof err);
	FUZZ_CHECK(r >= -1 && r <= 1);
	check_msg(&st);
	if (r < 0) {
		FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
		return 0;
	}
	if (r == 0) {
		FUZZ_CHECK(st.state == CTRJ_STATE_NONE && st.msg[0] == '\0');
		return 0;
	}
	fuzz_accepted++;
	FUZZ_CHECK(st.state > CTRJ_STATE_NONE && st.state <= CTRJ_STATE_MAX);
	FUZZ_CHECK(st.code <= 255);
	FUZZ_CHECK(st.state != CTRJ_STATE_SIGNALED || (st.signal >= 1 && st.signal <= 64));

	/* What was accepted round-trips through the encoder unchanged. */
	enc = malloc(CTRJ_CTL_STATUS_SIZE);
	FUZZ_CHECK(enc);
	ctrj_status_encode(&st, enc);
	FUZZ_CHECK(ctrj_status_parse(enc, CTRJ_CTL_STATUS_SIZE, &again, err, sizeof err) == 1);
	FUZZ_CHECK(again.state == st.state && again.code == st.code && again.signal == st.signal);
	FUZZ_CHECK(again.t_init_ns == st.t_init_ns && again.t_modules_ns == st.t_modules_ns &&
	           again.t_workload_start_ns == st.t_workload_start_ns &&
	           again.t_workload_end_ns == st.t_workload_end_ns);
	FUZZ_CHECK(strcmp(again.msg, st.msg) == 0);
	free(enc);
	return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

static void emit_status(uint32_t state, uint32_t code, uint32_t sig, const char *msg, size_t size,
                        fuzz_emit_fn emit, void *ctx)
{
	uint8_t buf[CTRJ_CTL_STATUS_SIZE];
	struct ctrj_status st = {0};

	st.state = state;
	st.code = code;
	st.signal = sig;
	st.t_init_ns = 1000000;
	st.t_modules_ns = 2000;
	st.t_workload_start_ns = 3000000;
	st.t_workload_end_ns = 4000000;
	snprintf(st.msg, sizeof st.msg, "%s", msg);
	ctrj_status_encode(&st, buf);
	emit(buf, size, ctx);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	/* The smallest area that can hold a record: header + longest message. */
	const size_t min = 60 + CTRJ_STATUS_MSG_MAX;
	char longmsg[CTRJ_STATUS_MSG_MAX + 1];
	uint8_t zero[CTRJ_CTL_STATUS_SIZE] = {0};

	emit_status(CTRJ_STATE_EXITED, 0, 0, "", min, emit, ctx);
	emit_status(CTRJ_STATE_EXITED, 3, 0, "exited", CTRJ_CTL_STATUS_SIZE, emit, ctx);
	emit_status(CTRJ_STATE_SIGNALED, 0, 9, "killed by signal 9", min, emit, ctx);
	emit_status(CTRJ_STATE_EXEC_FAILED, 127, 0, "exec /bin/nope: No such file or directory",
	            min, emit, ctx);
	emit_status(CTRJ_STATE_INIT_FAILED, 0, 0, "\x1b[2J\r\n\x7f\xff", min, emit, ctx);
	memset(longmsg, 'm', CTRJ_STATUS_MSG_MAX);
	longmsg[CTRJ_STATUS_MSG_MAX] = '\0';
	emit_status(CTRJ_STATE_INIT_FAILED, 255, 0, longmsg, min, emit, ctx);
	emit(zero, min, ctx);
	emit(zero, min - 1, ctx);
}
