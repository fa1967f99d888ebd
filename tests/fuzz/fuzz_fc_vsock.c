/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the Firecracker vsock handshake (fc_vsock.c) with whatever a
 * compromised Firecracker may answer to CONNECT: it succeeds exactly when
 * the first line is "OK <u32>" within 32 bytes (checked here on its own),
 * consumes nothing after that line (those bytes are the guest's), and
 * otherwise fails with one line, never waiting for more once the peer is
 * done. */
#include "fuzz.h"

#include "vmm/fc_vsock.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

unsigned long fuzz_accepted;

#define FEED_MAX 4096

static bool is_ok_line(const uint8_t *d, size_t n)
{
	const uint8_t *nl = memchr(d, '\n', n < CJ_FC_VSOCK_LINE_MAX ? n : CJ_FC_VSOCK_LINE_MAX);
	unsigned long long v = 0;
	size_t len;

	if (!nl)
		return false;
	len = (size_t)(nl - d);
	if (len < 4 || len > 13 || memcmp(d, "OK ", 3) != 0)
		return false;
	for (size_t i = 3; i < len; i++) {
		if (d[i] < '0' || d[i] > '9')
			return false;
		v = v * 10 + (d[i] - '0');
	}
	return v <= 0xffffffffull;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cj_err err = {0};
	uint8_t rest[FEED_MAX + 1], req[32];
	int sp[2];

	if (size > FEED_MAX)
		size = FEED_MAX;
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	FUZZ_CHECK(size == 0 || write(sp[1], data, size) == (ssize_t)size);
	shutdown(sp[1], SHUT_WR); /* the peer says nothing more */
	int r = cj_fc_vsock_handshake(sp[0], 1024, 5000, &err);
	bool ok = is_ok_line(data, size);
	FUZZ_CHECK((r == 0) == ok);
	FUZZ_CHECK(read(sp[1], req, sizeof req) == 13 && memcmp(req, "CONNECT 1024\n", 13) == 0);
	if (ok) {
		/* every byte after the line is still there, in order */
		size_t line = (size_t)((const uint8_t *)memchr(data, '\n', size) - data) + 1;
		ssize_t n = recv(sp[0], rest, sizeof rest, MSG_DONTWAIT);
		FUZZ_CHECK((size_t)(n < 0 ? 0 : n) == size - line);
		FUZZ_CHECK(n <= 0 || memcmp(rest, data + line, (size_t)n) == 0);
		fuzz_accepted++;
	} else {
		FUZZ_CHECK(err.errnum == ECONNRESET || err.errnum == EPROTO);
		FUZZ_CHECK(!memchr(err.msg, '\n', strlen(err.msg)));
	}
	close(sp[0]);
	close(sp[1]);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const char *const seeds[] = {
	    "OK 1073741824\n",
	    "OK 1073741824\n\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00",
	    "OK 4294967295\n",
	    "OK 4294967296\n",
	    "OK \n",
	    "NOPE\n",
	    "OK 12",
	    "",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};
	for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++)
		emit((const uint8_t *)seeds[i], strlen(seeds[i]) + (i == 1 ? 16 : 0), ctx);
}
