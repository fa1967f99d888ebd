/* SPDX-License-Identifier: Apache-2.0 */
/* Stop signals while images are built; see interrupt.h. The one piece of
 * process-wide state: a signal is delivered to the process. */
#include "util/interrupt.h"

#include <signal.h>
#include <stddef.h>

static volatile sig_atomic_t caught;

static void on_stop(int signo)
{
	caught = signo;
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

void cj_interrupt_catch(void)
{
	struct sigaction sa = {.sa_handler = on_stop};

	sigemptyset(&sa.sa_mask);
	caught = 0;
	for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
		sigaction(stop_signals[i], &sa, NULL);
}

void cj_interrupt_release(void)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
		sigaction(stop_signals[i], &sa, NULL);
}

int cj_interrupted(void)
{
	return caught;
}

const volatile sig_atomic_t *cj_interrupt_flag(void)
{
	return &caught;
}
