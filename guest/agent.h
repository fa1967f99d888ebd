/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exec agent of the guest init: on the virtio-serial port ctrj.agent,
 * or without one on AF_VSOCK port CTRJ_AGENT_VSOCK_PORT (Firecracker), it
 * starts the processes the host asks for (ctrj/agent.h), relays their
 * streams under the protocol's credit and reports how they ended. It only
 * answers: nothing it sends asks the host for anything. PID 1 runs it from
 * its supervision loop (pid1_opts.serve and .reaped).
 */
#ifndef CTRJ_GUEST_AGENT_H
#define CTRJ_GUEST_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Open the port (waiting up to wait_ms for it) and greet the host, or
 * listen on vsock when the VM has a vsock device and no port (neither:
 * the agent stays off). base_env is the workload's environment, which a
 * request's variables override; user and workdir (NULL: root, "/") are
 * the workload's, a request's defaults, as docker exec has them. */
bool agent_open(char **base_env, const char *user, const char *workdir, unsigned wait_ms);
/* The same on an open stream (non-blocking, close-on-exec; the tests give
 * a socket pair). */
bool agent_open_fd(int fd, char **base_env, const char *user, const char *workdir);
/* The same on a listening socket (vsock; the tests give a unix one): one
 * connection at a time is served, greeted on arrival; when it goes, its
 * sessions end and the next one is accepted. */
bool agent_listen_fd(int lfd, char **base_env, const char *user, const char *workdir);
/* The host's connection, on a listening socket, waited for up to wait_ms
 * (the workload's stdio goes on it, so the host connects at once), or
 * until a SIGINT or SIGTERM is pending (blocked); is the channel up? */
bool agent_wait_host(unsigned wait_ms);
/* pid1_opts.serve: wait up to timeout_ms for the channel, the sessions'
 * fds or sig_fd (readable when a signal is pending), and serve. */
void agent_serve(void *ctx, int sig_fd, int timeout_ms);
/* The host sent RELEASE (a held workload may start); is the channel up? */
bool agent_released(void);
bool agent_up(void);
/* pid1_opts.reaped: a child that is not the workload ended. */
void agent_reaped(void *ctx, pid_t pid, int wstatus);

/* The workload's stdio on session CTRJ_AGENT_MAIN_SESSION (the control
 * disk's CTRJ_STDIO_* flags): pipes or a terminal, made before the fork.
 * false: no channel (the workload keeps the console). */
bool agent_main_open(uint32_t flags, uint16_t rows, uint16_t cols);
/* In the workload's child, after pid1_child_setup: its fds 0-2 (and the
 * terminal as its controlling one). -1 with errno on failure. */
int agent_main_child_stdio(void);
/* In PID 1 after the fork: the child's ends closed, its pid for signals. */
void agent_main_started(pid_t pid);
/* The workload runs (its exec succeeded): CTRJ_AGENT_SIGNAL on the main
 * session reaches it from now on, those that came before at once. */
void agent_workload_started(pid_t pid);
/* The workload was reaped: signals for it are dropped from now on. */
void agent_workload_ended(void);
/* The workload was reaped and its leftovers gone: serve the channel until
 * its output is out and the host wrote it (all credit back), or timeout. */
void agent_main_drain(unsigned timeout_ms);

#endif
