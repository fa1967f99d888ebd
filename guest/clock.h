/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CTRJ_GUEST_CLOCK_H
#define CTRJ_GUEST_CLOCK_H

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

#endif
