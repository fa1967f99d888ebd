/* SPDX-License-Identifier: Apache-2.0 */
/* The run's supervise stage: the VMM's console and stderr relayed under
 * budgets, the stop signals turned into a graceful stop, then a kill. */
#ifndef CJ_SUPERVISE_H
#define CJ_SUPERVISE_H

#include "util/err.h"
#include "vmm/vmm.h"

#include <stdbool.h>
#include <stdint.h>

struct cj_log;

#define CJ_CONSOLE_TAIL 2048 /* the console's last bytes, for a failed boot */

struct console {
	int fd;             /* read end, -1 when closed */
	struct cj_log *log; /* also to this log (run/logfile.h), or NULL */
	bool no_stdout;     /* not to out_fd (a detached run; hidden: the workload's
	                     * stdio is on the agent channel, no --console) */
	int out_fd;         /* stdout; stderr when the workload's stdio is apart */
	char tail[CJ_CONSOLE_TAIL];
	size_t tail_len;
	double tokens;
	uint64_t last_ns;
	uint64_t dropped;
	uint64_t last_notice_ns;
	bool out_gone; /* stdout's reader went away: drain and drop from then on */
};

#define CJ_VMM_TAIL 512 /* what the VMM said last, for the error when it fails */

struct vmm_stderr {
	int fd; /* read end, -1 when closed */
	double tokens;
	uint64_t last_ns;
	uint64_t dropped;
	char tail[CJ_VMM_TAIL];
	size_t tail_len;
};

struct cj_agent_mux;
struct cj_health;

struct cj_supervision {
	struct console console;
	struct cj_agent_mux *agent; /* exec sessions (agent_mux.h), or NULL */
	struct cj_health *health;   /* health checks (health.h), or NULL */
	struct vmm_stderr vmm_stderr;
	bool sig_proxy;        /* pass signals on to the workload (agent stdio, no -t) */
	unsigned proxied_ints; /* SIGINTs passed on so far */
	bool stop_requested;
	bool killed;
	bool hold;    /* the workload waits for its release (runtime mode) */
	int stop_sig; /* the VM ended by a forwarded signal before the workload
	               * started: the run ends with 128+stop_sig (0: none) */
	int vmm_status;
};

/* Relay from these pipes' read ends (the console's and the VMM's stderr,
 * the latter non-blocking): the VMM has their write ends. */
void cj_supervision_open(struct cj_supervision *sv, int console_fd, int stderr_fd);
/* Wait for the VMM (sfd: a signalfd of SIGCHLD and the stop signals);
 * turn the first stop signal into a graceful stop (ops->request_stop),
 * the second (or the deadline: grace_s and a margin) into SIGKILL;
 * CJ_SIG_FORWARD (run/runs.h) passes its value on to the workload. The
 * VMM's wait status ends in sv->vmm_status. */
int cj_supervise(struct cj_vmm *vmm, int sfd, unsigned grace_s, struct cj_supervision *sv,
                 struct cj_err *err);
/* A signal no process dies of by default (WINCH, CONT, CHLD, URG), or no
 * signal: one for a workload not started yet is dropped. */
bool cj_signal_harmless(int sig);
/* The VMM's last non-empty line on stderr (already made printable), or "". */
const char *cj_vmm_said(struct cj_supervision *sv);
/* The console's last lines (made printable), as a warning: why a boot
 * failed when the console was not shown. */
void cj_console_tail_show(struct cj_supervision *sv);
/* Drain what the VMM still said (why the jailer failed, say), close. */
void cj_supervision_close(struct cj_supervision *sv);

#endif
