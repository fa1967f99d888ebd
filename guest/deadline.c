/* SPDX-License-Identifier: Apache-2.0 */
#include "deadline.h"

#include <unistd.h>

bool guest_wait_for(bool (*pred)(void *ctx), void *ctx, uint64_t deadline_ns)
{
	while (!pred(ctx)) {
		if (guest_now_ns() > deadline_ns)
			return false;
		usleep(5000);
	}
	return true;
}
