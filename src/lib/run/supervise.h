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

struct console {
	int fd;             /* read end, -1 when closed */
	struct cj_log *log; /* also to this log (run/logfile.h), or NULL */
	bool no_stdout;     /* only to the log (a detached run) */
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
	bool stop_requested;
	bool killed;
	int vmm_status;
};

/* Relay from these pipes' read ends (the console's and the VMM's stderr,
 * the latter non-blocking): the VMM has their write ends. */
void cj_supervision_open(struct cj_supervision *sv, int console_fd, int stderr_fd);
/* Wait for the VMM (sfd: a signalfd of SIGCHLD and the stop signals);
 * turn the first stop signal into a graceful stop (ops->request_stop),
 * the second (or the deadline: grace_s and a margin) into SIGKILL. The
 * VMM's wait status ends in sv->vmm_status. */
int cj_supervise(struct cj_vmm *vmm, int sfd, unsigned grace_s, struct cj_supervision *sv,
                 struct cj_err *err);
/* The VMM's last non-empty line on stderr (already made printable), or "". */
const char *cj_vmm_said(struct cj_supervision *sv);
/* Drain what the VMM still said (why the jailer failed, say), close. */
void cj_supervision_close(struct cj_supervision *sv);

#endif
