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

#include <poll.h>

#define CJ_AGENT_SOCK         "agent.sock"
#define CJ_AGENT_MUX_CLIENTS  16
#define CJ_AGENT_MUX_POLL_MAX (2 + CJ_AGENT_MUX_CLIENTS)

struct cj_agent_mux;

/* Listen on <run_dir>/agent.sock and serve chan_fd (the VMM's agent
 * channel; not owned; -1: none yet, see cj_agent_mux_on_demand). NULL with err filled when it
 * cannot. */
struct cj_agent_mux *cj_agent_mux_open(int chan_fd, const char *run_dir, struct cj_err *err);
/* A channel opened on demand (Firecracker's vsock, which the host
 * connects to once the guest listens): opened with chan_fd -1, the mux
 * calls connect(ctx, err) for a fresh channel (the mux owns the fd) when
 * a client comes and there is none, at first and after one closed; a
 * client it fails for gets the reason as its command's start failure. */
typedef int (*cj_agent_connect_fn)(void *ctx, struct cj_err *err);
void cj_agent_mux_on_demand(struct cj_agent_mux *m, cj_agent_connect_fn connect, void *ctx);
/* The fds to poll (at most CJ_AGENT_MUX_POLL_MAX); returns how many. */
int cj_agent_mux_pollfds(struct cj_agent_mux *m, struct pollfd *p);
/* Serve what poll reported on those fds. */
void cj_agent_mux_handle(struct cj_agent_mux *m, const struct pollfd *p, int n);
/* Close the clients and the socket, unlink it. NULL: no-op. */
void cj_agent_mux_close(struct cj_agent_mux *m);

#endif
