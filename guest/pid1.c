/* SPDX-License-Identifier: Apache-2.0 */
/* PID 1 duties: signals, forwarding, reaping, grace then SIGKILL (see
 * pid1.h). Plain C with no tie to the VM, so the host's unit tests run it. */
#include "pid1.h"
#include "deadline.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Raised by the faulting instruction itself: never blocked, so a fault in
 * PID 1 is not held pending while the same instruction faults again. */
static const int synchronous_signals[] = {SIGSEGV, SIGBUS,  SIGFPE, SIGILL,
                                          SIGABRT, SIGTRAP, SIGSYS};
/* Job control stops: PID 1 has no terminal to stop for, so it ignores
 * them; the workload gets the defaults back. */
static const int stop_signals[] = {SIGTTIN, SIGTTOU, SIGTSTP};

/* The signals PID 1 blocks and takes with sigtimedwait. */
static void waited_signals(sigset_t *set)
{
	sigfillset(set);
	for (size_t i = 0; i < ARRAY_LEN(synchronous_signals); i++)
		sigdelset(set, synchronous_signals[i]);
	for (size_t i = 0; i < ARRAY_LEN(stop_signals); i++)
		sigdelset(set, stop_signals[i]);
}

int pid1_setup_signals(void)
{
	struct sigaction ignore = {.sa_handler = SIG_IGN};
	sigset_t set;

	waited_signals(&set);
	if (sigprocmask(SIG_SETMASK, &set, NULL) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(stop_signals); i++)
		if (sigaction(stop_signals[i], &ignore, NULL) < 0)
			return -1;
	return 0;
}

void pid1_child_setup(void)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;

	/* An ignored signal stays ignored across exec: restore the default. */
	for (size_t i = 0; i < ARRAY_LEN(stop_signals); i++)
		sigaction(stop_signals[i], &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
}

struct pid1_run {
	pid_t child;
	const struct pid1_opts *o;
	int status;        /* the child's wait status, once done */
	uint64_t ended_ns; /* when it was reaped */
	bool done;         /* the child has been reaped */
	bool stopping;     /* a graceful stop was requested */
	bool cleanup;      /* the rest has been told to go */
	uint64_t deadline; /* SIGKILL the rest at this time (0: none pending) */
};

/* Reap every zombie; returns true when no children are left. */
static bool reap(struct pid1_run *r)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);

		if (p == 0)
			return false;
		if (p < 0)
			return errno == ECHILD;
		if (p == r->child && !r->done) {
			r->done = true;
			r->status = st;
			r->ended_ns = guest_now_ns();
		} else if (p != r->child && r->o->reaped) {
			r->o->reaped(r->o->ctx, p, st);
		}
	}
}

static void signal_rest(const struct pid1_run *r, int sig)
{
	kill(r->o->signal_all ? -1 : -r->child, sig);
}

/* How long to wait for the next signal: up to the SIGKILL deadline, in
 * steps of 100 ms while anything is pending, else an hour. */
static struct timespec next_wait(const struct pid1_run *r)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};

	if (r->deadline) {
		uint64_t now = guest_now_ns();
		uint64_t left = r->deadline > now ? r->deadline - now : 0;
		if (left < 100000000ull)
			ts.tv_nsec = (long)left;
	} else if (!r->done) {
		ts.tv_sec = 3600;
		ts.tv_nsec = 0;
	}
	return ts;
}

static void on_signal(struct pid1_run *r, int sig)
{
	if (r->done)
		return; /* the workload is gone: nothing to forward to */
	if (sig == SIGINT || sig == SIGTERM || sig == SIGPWR) {
		/* SIGINT is Ctrl-Alt-Del from the VMM: a graceful stop. */
		if (!r->stopping) {
			r->stopping = true;
			kill(r->child, r->o->stop_signal ? r->o->stop_signal : SIGTERM);
			r->deadline = guest_now_ns() + (uint64_t)r->o->grace_ms * 1000000ull;
		}
		return;
	}
	kill(r->child, sig); /* forward everything else */
}

int pid1_supervise(pid_t child, const struct pid1_opts *o, uint64_t *ended_ns)
{
	struct pid1_run r = {.child = child, .o = o};
	sigset_t set;
	int sig_fd = -1;

	waited_signals(&set);
	if (o->serve)
		sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	for (;;) {
		bool none_left = reap(&r);

		if (r.done && !r.cleanup) {
			/* The workload is gone: give what it left behind the same
			 * grace period a graceful stop gets, then kill it. */
			r.cleanup = true;
			signal_rest(&r, SIGTERM);
			r.deadline = guest_now_ns() + (uint64_t)o->grace_ms * 1000000ull;
		}
		if (r.done && none_left)
			break;
		if (r.deadline && guest_now_ns() >= r.deadline) {
			signal_rest(&r, SIGKILL);
			r.deadline = 0;
		}
		struct timespec ts = next_wait(&r);
		if (sig_fd >= 0) {
			/* the service waits (for a signal too), then the signal is taken */
			o->serve(o->ctx, sig_fd, (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
			ts = (struct timespec){0, 0};
		}
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig > 0 && sig != SIGCHLD)
			on_signal(&r, sig);
	}
	if (sig_fd >= 0)
		close(sig_fd);
	if (ended_ns)
		*ended_ns = r.ended_ns;
	return r.status;
}
