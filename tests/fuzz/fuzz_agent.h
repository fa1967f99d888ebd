/* SPDX-License-Identifier: Apache-2.0 */
/* The two agent-channel fuzz targets' driver: the first input byte picks
 * the chunk size, the rest is fed to a streaming decoder of direction dir
 * in chunks of that size, each frame passed on going to fn. */
#ifndef CTRJ_TESTS_FUZZ_AGENT_H
#define CTRJ_TESTS_FUZZ_AGENT_H

#include "fuzz.h"

#include "ctrj/agent.h"

static inline void fuzz_agent_feed(enum ctrj_agent_dir dir, ctrj_agent_frame_fn fn,
                                   const uint8_t *data, size_t size)
{
	struct ctrj_agent_dec d;
	size_t chunk;
	int r = 0;

	if (size < 1)
		return;
	chunk = (size_t)data[0] + 1;
	FUZZ_CHECK(ctrj_agent_dec_init(&d, dir) == 0);
	for (size_t off = 1; r == 0 && off < size; off += chunk)
		r = ctrj_agent_dec_feed(&d, data + off, size - off < chunk ? size - off : chunk, fn,
		                        NULL, NULL, 0);
	FUZZ_CHECK(r == 0 || r == -1);
	ctrj_agent_dec_free(&d);
}

#endif
