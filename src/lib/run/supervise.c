/* SPDX-License-Identifier: Apache-2.0 */
#include "supervise.h"
#include "agent_mux.h"
#include "health.h"

#include "logfile.h"
#include "runs.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* Host-side margin after the guest's grace period before the VMM is killed:
 * the init still has to kill leftovers, sync and reboot. */
#define STOP_MARGIN_S 10

/* The guest console reaches our stdout through a pipe, under a token
 * bucket: a guest that floods its console cannot flood the host's logs
 * (docker logs, journald). Excess output is dropped and counted. */
#define CONSOLE_RATE  (1u << 20) /* bytes per second */
#define CONSOLE_BURST (4u << 20) /* bytes */
/* Reads per relay call: a VMM that refills its pipes as fast as we empty
 * them (while our own writes block on a slow reader, say) must not keep
 * the supervisor from its signals and its kill deadline. */
#define RELAY_MAX_READS 16

/* One read of a relayed pipe under a token bucket (rate bytes a second,
 * at most burst saved up): bytes read, of which *pass are within budget
 * (the rest is dropped and counted); 0 at EOF or on an error (the fd is
 * closed and set to -1); -1 when there is nothing to read now. */
static ssize_t bucket_read(int *fd, double *tokens, uint64_t *last_ns, uint64_t *dropped,
                           double rate, double burst, char *buf, size_t len, size_t *pass)
{
	ssize_t n;

	do
		n = read(*fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
		return 0;
	}
	if (n < 0)
		return -1;
	uint64_t now = cj_now_ns();
	*tokens += (double)(now - *last_ns) / 1e9 * rate;
	if (*tokens > burst)
		*tokens = burst;
	*last_ns = now;
	*pass = *tokens >= (double)n ? (size_t)n : (size_t)*tokens;
	*tokens -= (double)*pass;
	*dropped += (uint64_t)n - *pass;
	return n;
}

/* The guest's output has nowhere to go once our stdout is gone (a reader
 * such as `head` exited): the run goes on, only its console is dropped. */
static void console_write(struct console *c, const char *buf, size_t n)
{
	while (n && !c->out_gone) {
		ssize_t w = write(c->out_fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == EBADF || errno == EIO)) {
			c->out_gone = true;
			cj_notice("stdout is closed; the guest's console output is dropped from "
			          "now on");
		}
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

static void console_tail_add(struct console *c, const char *buf, size_t n)
{
	if (n > CJ_CONSOLE_TAIL) {
		buf += n - CJ_CONSOLE_TAIL;
		n = CJ_CONSOLE_TAIL;
	}
	if (c->tail_len + n > CJ_CONSOLE_TAIL) {
		size_t drop = c->tail_len + n - CJ_CONSOLE_TAIL;
		memmove(c->tail, c->tail + drop, c->tail_len - drop);
		c->tail_len -= drop;
	}
	memcpy(c->tail + c->tail_len, buf, n);
	c->tail_len += n;
}

void cj_console_tail_show(struct cj_supervision *sv)
{
	struct console *c = &sv->console;
	char text[CJ_CONSOLE_TAIL + 1];
	size_t n = 0;

	for (size_t i = 0; i < c->tail_len; i++) {
		unsigned char ch = (unsigned char)c->tail[i];
		if (ch == '\r')
			continue;
		text[n++] = (ch < 0x20 && ch != '\n' && ch != '\t') || ch >= 0x7f ? '?' : (char)ch;
	}
	text[n] = '\0';
	/* one notice a line: the sink keeps each on one line */
	for (char *line = text, *nl; *line; line = nl ? nl + 1 : line + strlen(line)) {
		if ((nl = strchr(line, '\n')))
			*nl = '\0';
		if (*line)
			cj_notice("guest console: %s", line);
		if (!nl)
			break;
	}
}

/* Move what the console pipe holds (up to RELAY_MAX_READS reads of it) to
 * stdout; false at EOF. */
static bool console_relay(struct console *c)
{
	char buf[65536];

	for (int reads = 0; reads < RELAY_MAX_READS && c->fd >= 0; reads++) {
		size_t pass;
		if (bucket_read(&c->fd, &c->tokens, &c->last_ns, &c->dropped, CONSOLE_RATE,
		                CONSOLE_BURST, buf, sizeof buf, &pass) <= 0)
			break;
		if (c->log)
			cj_log_write(c->log, buf, pass);
		console_tail_add(c, buf, pass);
		if (!c->no_stdout)
			console_write(c, buf, pass);
	}
	if (c->dropped && cj_now_ns() - c->last_notice_ns > 1000000000ull) {
		cj_notice("guest console over %u KiB/s: %llu bytes dropped so far",
		          CONSOLE_RATE >> 10, (unsigned long long)c->dropped);
		c->last_notice_ns = cj_now_ns();
	}
	return c->fd >= 0;
}

/* The VMM's own stderr (QEMU's warnings, the jailer's and Firecracker's
 * messages) comes through a pipe too: the VMM never holds our terminal.
 * What a compromised VMM writes there is untrusted: bytes other than
 * printable ASCII, newline and tab become '?', under a budget of its own. */
#define VMM_STDERR_RATE  (64u << 10) /* bytes per second */
#define VMM_STDERR_BURST (256u << 10)

static void vmm_tail_add(struct vmm_stderr *e, const char *buf, size_t n)
{
	if (n >= CJ_VMM_TAIL) {
		buf += n - (CJ_VMM_TAIL - 1);
		n = CJ_VMM_TAIL - 1;
	}
	if (e->tail_len + n >= CJ_VMM_TAIL) {
		size_t drop = e->tail_len + n - (CJ_VMM_TAIL - 1);
		memmove(e->tail, e->tail + drop, e->tail_len - drop);
		e->tail_len -= drop;
	}
	memcpy(e->tail + e->tail_len, buf, n);
	e->tail_len += n;
	e->tail[e->tail_len] = '\0';
}

/* The VMM's last non-empty line on stderr (already made printable), or "". */
static const char *vmm_said(struct vmm_stderr *e)
{
	char *end = e->tail + e->tail_len;

	while (end > e->tail && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	char *nl = strrchr(e->tail, '\n');
	return nl ? nl + 1 : e->tail;
}

static void vmm_stderr_relay(struct vmm_stderr *e)
{
	char buf[4096];

	for (int reads = 0; reads < RELAY_MAX_READS && e->fd >= 0; reads++) {
		size_t pass;
		if (bucket_read(&e->fd, &e->tokens, &e->last_ns, &e->dropped, VMM_STDERR_RATE,
		                VMM_STDERR_BURST, buf, sizeof buf, &pass) <= 0)
			break;
		for (size_t i = 0; i < pass; i++) {
			unsigned char c = (unsigned char)buf[i];
			if ((c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f)
				buf[i] = '?';
		}
		vmm_tail_add(e, buf, pass);
		for (size_t done = 0; done < pass;) {
			ssize_t w = write(STDERR_FILENO, buf + done, pass - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break; /* stderr gone: nowhere to say it */
			done += (size_t)w;
		}
	}
}

/* Signals passed to the workload as they came (docker's --sig-proxy),
 * when its stdio is on the agent channel and it has no terminal (with one,
 * the terminal sends the keyboard's). SIGTERM stays a graceful stop. */
static bool proxied(int sig)
{
	return sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGUSR1 || sig == SIGUSR2;
}

/* After this many SIGINTs passed on, the next one stops the VM: a
 * workload that ignores them does not hold the terminal hostage. */
#define PROXIED_INTS_MAX 3

/* A signal other than SIGCHLD: proxied, a terminal's new size, or the
 * first stop signal (true: a graceful stop began) then a kill. */
static bool on_signal(struct cj_vmm *vmm, int sig, struct cj_supervision *sv)
{
	if (sig == SIGWINCH) {
		cj_agent_mux_workload_signal(sv->agent, 0);
		return false;
	}
	if (sv->sig_proxy && proxied(sig) && !sv->stop_requested &&
	    (sig != SIGINT || sv->proxied_ints < PROXIED_INTS_MAX) &&
	    cj_agent_mux_workload_signal(sv->agent, sig) == 0) {
		if (sig == SIGINT && ++sv->proxied_ints == PROXIED_INTS_MAX)
			cj_notice("SIGINT passed on %d times; the next one stops the VM",
			          PROXIED_INTS_MAX);
		return false;
	}
	if (sig == SIGUSR1 || sig == SIGUSR2)
		return false; /* nowhere to pass them: no stop either */
	if (!sv->stop_requested) {
		struct cj_err qerr = {0};
		if (vmm->ops->request_stop(vmm, &qerr) < 0) {
			char buf[CJ_ERR_STR_MAX];
			cj_notice("graceful stop failed (%s); killing the VM",
			          cj_err_str(&qerr, buf, sizeof buf));
			cj_vmm_kill(vmm);
			sv->killed = true;
		}
		return true;
	}
	if (!sv->killed) {
		cj_notice("second signal; killing the VM");
		cj_vmm_kill(vmm);
		sv->killed = true;
	}
	return false;
}

bool cj_signal_harmless(int sig)
{
	return sig <= 0 || sig > 64 || sig == SIGWINCH || sig == SIGCONT || sig == SIGCHLD ||
	       sig == SIGURG;
}

/* CJ_SIG_FORWARD's signal sig for the workload (true: a graceful stop
 * began). KILL ends the VM. Before the held workload's release (a VM
 * created or still booting) a signal that would end it ends the VM at
 * once, the run's code 128+sig; after it, the guest keeps the signal
 * until the workload runs. Without an agent, a stop signal becomes the
 * graceful stop. */
static bool on_forward(struct cj_vmm *vmm, int sig, struct cj_supervision *sv)
{
	bool started = !sv->hold || cj_agent_mux_released(sv->agent);

	if (cj_signal_harmless(sig) || sv->killed)
		return false;
	if (sig != SIGKILL && started && cj_agent_mux_signal(sv->agent, sig) == 0)
		return false;
	if (sig == SIGKILL || !started) {
		if (!started && sig != SIGKILL)
			cj_notice("signal %d before the workload started: the VM ends", sig);
		cj_vmm_kill(vmm);
		sv->killed = true;
		if (!started)
			sv->stop_sig = sig;
		return false;
	}
	if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGPWR)
		return !sv->stop_requested && on_signal(vmm, SIGTERM, sv);
	cj_notice("signal %d cannot reach the workload: the guest's agent is not up", sig);
	return false;
}

/* Wait for the VMM; turn the first stop signal into Ctrl-Alt-Del, the
 * second (or the deadline) into SIGKILL. The deadline is checked on every
 * turn, not only when poll times out: a VMM that keeps its console or
 * stderr busy would otherwise never meet it. */
int cj_supervise(struct cj_vmm *vmm, int sfd, unsigned grace_s, struct cj_supervision *sv,
                 struct cj_err *err)
{
	uint64_t deadline = 0;

	for (;;) {
		uint64_t now = cj_now_ns();
		int timeout = -1;
		if (deadline && now >= deadline) {
			cj_notice("the guest did not stop in time; killing the VM");
			cj_vmm_kill(vmm);
			sv->killed = true;
			deadline = 0;
		}
		if (deadline)
			timeout = (int)((deadline - now) / 1000000 + 1);
		/* poll skips the entries of closed (-1) pipes */
		struct pollfd p[4 + CJ_AGENT_MUX_POLL_MAX] = {
		    {.fd = sfd, .events = POLLIN},
		    {.fd = sv->console.fd, .events = POLLIN},
		    {.fd = sv->vmm_stderr.fd, .events = POLLIN}};
		int ht = cj_health_pollfd(sv->health, &p[3]);
		if (ht >= 0 && (timeout < 0 || ht < timeout))
			timeout = ht;
		int na = sv->agent ? cj_agent_mux_pollfds(sv->agent, p + 4) : 0;
		int at = cj_agent_mux_timeout(sv->agent);
		if (at >= 0 && (timeout < 0 || at < timeout))
			timeout = at;
		int pr = poll(p, (nfds_t)(4 + na), timeout);
		if (pr < 0 && errno != EINTR)
			return cj_fail(err, errno, "poll");
		if (na) /* exec sessions, and the agent channel's timers */
			cj_agent_mux_handle(sv->agent, p + 4, na);
		cj_health_handle(sv->health, pr > 0 ? &p[3] : NULL);
		if (pr > 0 && p[1].revents)
			console_relay(&sv->console);
		if (pr > 0 && p[2].revents)
			vmm_stderr_relay(&sv->vmm_stderr);
		if (pr <= 0 || !p[0].revents)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
			continue;
		if (si.ssi_signo == SIGCHLD) {
			int st;
			cj_health_reap(sv->health); /* a check's end */
			pid_t w = waitpid(vmm->pid, &st, WNOHANG);
			if (w == vmm->pid) {
				sv->vmm_status = st;
				vmm->pid = 0;
				if (sv->console.fd >= 0)
					console_relay(&sv->console); /* the last words */
				vmm_stderr_relay(&sv->vmm_stderr);
				return 0;
			}
			continue;
		}
		if ((int)si.ssi_signo == CJ_SIG_FORWARD ? on_forward(vmm, si.ssi_int, sv)
		                                        : on_signal(vmm, (int)si.ssi_signo, sv)) {
			sv->stop_requested = true;
			deadline =
			    cj_now_ns() + (uint64_t)(grace_s + STOP_MARGIN_S) * 1000000000ull;
		}
	}
}

void cj_supervision_open(struct cj_supervision *sv, int console_fd, int stderr_fd)
{
	*sv = (struct cj_supervision){
	    .console = {.fd = console_fd,
	                .out_fd = STDOUT_FILENO,
	                .tokens = CONSOLE_BURST,
	                .last_ns = cj_now_ns()},
	    .vmm_stderr = {.fd = stderr_fd, .tokens = VMM_STDERR_BURST, .last_ns = cj_now_ns()},
	};
}

const char *cj_vmm_said(struct cj_supervision *sv)
{
	return vmm_said(&sv->vmm_stderr);
}

void cj_supervision_close(struct cj_supervision *sv)
{
	if (sv->console.fd >= 0)
		close(sv->console.fd);
	sv->console.fd = -1;
	if (sv->vmm_stderr.fd >= 0) {
		vmm_stderr_relay(&sv->vmm_stderr); /* e.g. why the jailer failed */
		if (sv->vmm_stderr.fd >= 0)
			close(sv->vmm_stderr.fd);
		sv->vmm_stderr.fd = -1;
	}
	if (sv->vmm_stderr.dropped)
		cj_notice("the VMM wrote over %u KiB/s to stderr: %llu bytes dropped",
		          VMM_STDERR_RATE >> 10, (unsigned long long)sv->vmm_stderr.dropped);
	sv->vmm_stderr.dropped = 0;
}
