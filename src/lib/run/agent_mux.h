/* SPDX-License-Identifier: Apache-2.0 */
/* The run's side of the agent channel: `ctr-jailer exec` clients connect to
 * <run dir>/agent.sock (the run directory is root's, mode 0700) and speak
 * the agent protocol (ctrj/agent.h) as the host does, on session 1; the mux
 * gives each a session of its own on the channel and relays. The guest's
 * frames are hostile: decoded FROM_GUEST, checked against each stream's
 * credit (so no client queue grows past one window), and only ever
 * forwarded to the client whose session they name. */
#ifndef CJ_AGENT_MUX_H
#define CJ_AGENT_MUX_H

#include "util/err.h"
#include "vmm/fc_vsock.h"
#include "workload_io.h"

#include <poll.h>

#define CJ_AGENT_SOCK         "agent.sock"
#define CJ_AGENT_MUX_CLIENTS  16
#define CJ_AGENT_MUX_POLL_MAX (3 + CJ_AGENT_MUX_CLIENTS + CJ_WORKLOAD_IO_POLL)

struct cj_agent_mux;

/* Listen on <run_dir>/agent.sock and serve chan_fd (the VMM's agent
 * channel; not owned; -1: none yet, see cj_agent_mux_on_demand). NULL with err filled when it
 * cannot. */
struct cj_agent_mux *cj_agent_mux_open(int chan_fd, const char *run_dir, struct cj_err *err);
/* A channel opened on demand (Firecracker's vsock, which the host
 * connects to once the guest listens): opened with chan_fd -1, the mux
 * asks target(ctx, t, err) where to connect and connects (the mux owns
 * the fd) when a client comes and there is none, at first and after one
 * closed, or when cj_agent_mux_connect asks. The connection is made in
 * steps of the poll loop (see cj_agent_mux_timeout), retried while the
 * guest does not listen yet, for at most timeout_ms; the clients wait
 * meanwhile, and one it fails for gets the reason as its command's
 * start failure. */
typedef int (*cj_agent_target_fn)(void *ctx, struct cj_fc_vsock_target *t, struct cj_err *err);
void cj_agent_mux_on_demand(struct cj_agent_mux *m, cj_agent_target_fn target, void *ctx,
                            int timeout_ms);
/* Begin connecting the on-demand channel now, unless it is up or under
 * way (the workload's stdio is on it); -1 with err when target fails. */
int cj_agent_mux_connect(struct cj_agent_mux *m, struct cj_err *err);
/* The ms the loop may wait in poll at most for the mux's timers (-1: no
 * limit); cj_agent_mux_handle must then run even when poll saw nothing. */
int cj_agent_mux_timeout(const struct cj_agent_mux *m);
/* The fds to poll (at most CJ_AGENT_MUX_POLL_MAX); returns how many. */
int cj_agent_mux_pollfds(struct cj_agent_mux *m, struct pollfd *p);
/* Serve what poll reported on those fds. */
void cj_agent_mux_handle(struct cj_agent_mux *m, const struct pollfd *p, int n);
/* The workload's stdio (not owned): the guest's frames of its session go
 * there, and its fds are polled with the mux's. */
void cj_agent_mux_workload(struct cj_agent_mux *m, struct cj_workload_io *io);
/* Signal sig to the workload (proxied), or our terminal's size (sig 0);
 * -1 when there is no workload stdio or no agent (yet, or any more). */
int cj_agent_mux_workload_signal(struct cj_agent_mux *m, int sig);
/* Signal sig to the workload whatever its stdio (the guest keeps it
 * until the workload started); -1 when there is no agent (yet, or any
 * more). */
int cj_agent_mux_signal(struct cj_agent_mux *m, int sig);
/* Did a client release the held workload (runtime mode's start)? */
bool cj_agent_mux_released(const struct cj_agent_mux *m);
/* Has the guest's agent greeted (NULL: no)? */
bool cj_agent_mux_greeted(const struct cj_agent_mux *m);
/* Close the clients and the socket, unlink it. NULL: no-op. */
void cj_agent_mux_close(struct cj_agent_mux *m);

#endif
