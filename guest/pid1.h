/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PID 1 duties of the guest init, after tini: block the asynchronous
 * signals and take them with sigtimedwait, forward them to the workload,
 * reap every zombie, and once the workload is gone give the rest a grace
 * period before SIGKILL. Nothing here stops the VM or reports: the module
 * builds on the host too, where the unit tests run it as a child subreaper
 * (PR_SET_CHILD_SUBREAPER) instead of as PID 1.
 */
#ifndef CTRJ_GUEST_PID1_H
#define CTRJ_GUEST_PID1_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct pid1_opts {
	int stop_signal;   /* sent to the workload on a graceful stop; 0: SIGTERM */
	uint32_t grace_ms; /* after a stop request or the workload's end, before SIGKILL */
	/* Who "the rest" is, signalled once the workload has ended (and killed
	 * at the end of a graceful stop): true, every process but us (kill(-1),
	 * what PID 1 of the VM does); false, the workload's process group (a
	 * subreaper that shares its system, as in the tests). */
	bool signal_all;
	/* Optional: a service PID 1 runs between signals (the exec agent).
	 * serve waits up to timeout_ms for its own fds or for sig_fd (a
	 * signalfd of PID 1's signals: readable when one is pending) and
	 * serves; reaped gets every child that is not the workload. */
	void (*serve)(void *ctx, int sig_fd, int timeout_ms);
	void (*reaped)(void *ctx, pid_t pid, int wstatus);
	void *ctx;
};

/* In the supervisor, before the workload is forked: block every signal
 * except the synchronous ones (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
 * SIGTRAP, SIGSYS: a fault in PID 1 must not be held pending), and ignore
 * SIGTTIN, SIGTTOU and SIGTSTP (PID 1 never stops). Returns 0 or -1 with
 * errno set. */
int pid1_setup_signals(void);

/* In the forked child, before exec: default dispositions for the terminal
 * stop signals, an empty signal mask, a session of its own. */
void pid1_child_setup(void);

/* Supervise child until it has ended and no other child is left: forward
 * the signals that reach us (SIGINT, SIGTERM and SIGPWR start a graceful
 * stop: stop_signal, grace, SIGKILL), reap every zombie. Returns the
 * child's wait status (map it with ctrj_wait_code); *ended_ns, when not
 * NULL, gets the CLOCK_BOOTTIME time the child was reaped. */
int pid1_supervise(pid_t child, const struct pid1_opts *o, uint64_t *ended_ns);

#endif
