/* SPDX-License-Identifier: Apache-2.0 */
/* The workload's stdio on the agent channel (session CTRJ_AGENT_MAIN_SESSION,
 * the control disk's CTRJ_STDIO_* flags): the guest's stdout and stderr go
 * to the runtime's fds 1 and 2 (or, in a detached run, to the log with
 * their stream), the runtime's stdin to the guest with -i. Credit goes back
 * to the guest only once its bytes were written out, so nothing here holds
 * more than one window per stream, and the guest knows when all it sent
 * has left the host (it waits for that before the VM ends). The guest's
 * frames are hostile: data past the credit breaks the channel. */
#ifndef CJ_WORKLOAD_IO_H
#define CJ_WORKLOAD_IO_H

#include "ctrj/agent.h"
#include "util/err.h"

#include <poll.h>
#include <stdbool.h>
#include <termios.h>

struct cj_log;

#define CJ_WORKLOAD_IO_POLL 3 /* stdin, stdout, stderr */

struct cj_workload_io {
	int in_fd; /* the runtime's stdin with -i, -1 otherwise or at its end */
	bool tty;  /* a terminal in the guest (-t) */
	bool raw;  /* our terminal is in raw mode: saved holds how it was */
	struct termios saved;
	struct cj_log *log;               /* also to this log (a detached or named run), or NULL */
	bool log_only;                    /* a detached run: to the log only */
	bool gone[2];                     /* stdout, stderr: the reader went away */
	struct ctrj_agent_buf pend[2];    /* output not yet written */
	struct ctrj_agent_credit data[2]; /* what the guest may still send */
	struct ctrj_agent_credit in;      /* stdin: what we may still send */
	struct ctrj_agent_buf *to_guest;  /* the channel's queue (the mux's) */
	int out_fd[2];                    /* stdout, stderr: 1 and 2 unless changed */
};

/* Start relaying: with tty and a terminal on stdin, raw mode (restored by
 * cj_workload_io_close). in: forward stdin (-i). log: also there (only
 * there when log_only: a detached run). */
void cj_workload_io_open(struct cj_workload_io *w, bool in, bool tty, struct cj_log *log,
                         bool log_only);
/* Restore the terminal; drop what was not written. */
void cj_workload_io_close(struct cj_workload_io *w);
/* A guest frame of the workload's session; -1: the guest broke the protocol. */
int cj_workload_io_frame(struct cj_workload_io *w, const struct ctrj_agent_frame *f);
/* The fds to poll (CJ_WORKLOAD_IO_POLL entries); read_stdin: the channel
 * is up and its queue short. */
void cj_workload_io_pollfds(struct cj_workload_io *w, struct pollfd *p, bool read_stdin);
void cj_workload_io_handle(struct cj_workload_io *w, const struct pollfd *p);
/* A signal (not -t: proxied as it came) or our terminal's new size, to the
 * workload. */
int cj_workload_io_signal(struct cj_workload_io *w, int sig);
int cj_workload_io_resize(struct cj_workload_io *w);
/* Our terminal's size (stdin's, else stdout's): false when neither is one. */
bool cj_terminal_size(unsigned short *rows, unsigned short *cols);

#endif
