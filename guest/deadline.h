/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CTRJ_GUEST_DEADLINE_H
#define CTRJ_GUEST_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds of CLOCK_BOOTTIME, the clock of the status record's times
 * and of every deadline in the init. */
static inline uint64_t guest_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Poll pred(ctx) every 5 ms until it holds (true) or CLOCK_BOOTTIME passes
 * deadline_ns (false). The one wait loop of the init: drives appearing,
 * and whatever else the boot has to wait for. */
bool guest_wait_for(bool (*pred)(void *ctx), void *ctx, uint64_t deadline_ns);

#endif
