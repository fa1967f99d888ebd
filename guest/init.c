/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctr-jailer guest init: PID 1 inside the microVM.
 *
 * It runs from the initramfs and never needs to exist inside the image:
 *   load modules → find the control disk → read and wipe the config →
 *   mount base (ro) + overlay (tmpfs upper) → switch_root → /proc, /sys, /dev
 *   → /var/environment → fork the workload → be a tini-grade PID 1 →
 *   write the status record → sync → reboot.
 * Every failure before exec is reported on the console and in the status
 * record, then the VM stops: PID 1 never returns.
 */
#include "init.h"
#include "agent.h"
#include "deadline.h"
#include "pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* How long the agent's port may take to appear when the workload's stdio
 * needs it, and how long its last output may take to reach the host. */
#define AGENT_PORT_WAIT_MS 3000
#define AGENT_DRAIN_MS     10000
/* How long the workload waits for the host to connect to the agent's
 * vsock listener (Firecracker): longer than the host tries (50 s), so that
 * a host that connects finds the workload's stdio there. */
#define AGENT_HOST_WAIT_MS 55000

/* In the child: become the user, enter workdir, exec. Reports errno on
 * err_fd (close-on-exec, so success closes it silently). */
static __attribute__((noreturn)) void exec_workload(struct ctrj_config *cfg,
                                                    const struct guest_user *u, char **env,
                                                    bool agent_stdio, int err_fd)
{
	int stage = 0; /* 0 setup, 1 exec */
	int e;

	pid1_child_setup();
	if (agent_stdio) {
		if (agent_main_child_stdio() < 0)
			goto report;
	} else {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0 && null != STDIN_FILENO)
			dup2(null, STDIN_FILENO);
	}
	if (guest_proc_enter(&cfg->proc, u) < 0)
		goto report;
	if (chdir(cfg->workdir ? cfg->workdir : "/") < 0)
		goto report;
	environ = env; /* execvp searches the workload's PATH, not ours */
	stage = 1;
	execvp(cfg->argv[0], cfg->argv);
report:
	e = errno;
	{
		int msg[2] = {stage, e};
		if (write(err_fd, msg, sizeof msg) < 0)
			_exit(127);
	}
	_exit(127);
}

static pid_t start_workload(struct ctrj_config *cfg, const struct guest_user *u, char **env,
                            bool agent_stdio)
{
	int pfd[2];
	int msg[2];
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		guest_fail(0, "pipe: %s", strerror(errno));
	guest_status()->t_workload_start_ns = guest_now_ns();
	pid = fork();
	if (pid < 0)
		guest_fail(0, "fork: %s", strerror(errno));
	if (pid == 0)
		exec_workload(cfg, u, env, agent_stdio, pfd[1]);
	if (agent_stdio)
		agent_main_started(pid);
	close(pfd[1]);
	do
		r = read(pfd[0], msg, sizeof msg);
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof msg) {
		waitpid(pid, NULL, 0);
		if (msg[0] == 0)
			guest_fail(
			    0,
			    "cannot enter user %s, its privileges and limits or directory %s: %s",
			    cfg->user ? cfg->user : "0", cfg->workdir ? cfg->workdir : "/",
			    strerror(msg[1]));
		guest_fail(msg[1] == ENOENT ? 127 : 126, "exec \"%s\": %s", cfg->argv[0],
		           strerror(msg[1]));
	}
	agent_workload_started(pid);
	return pid;
}

/* OCI runtime mode: the VM is up, the workload waits for the host's
 * RELEASE on the agent channel (`ctr-jailer-runtime start`). A stop
 * signal meanwhile ends the VM with 128+N, the workload never started. */
static void hold_for_release(bool agent)
{
	struct signalfd_siginfo si;
	sigset_t set;
	int sfd;

	if (!agent)
		guest_fail(0, "the host holds the workload for its release, but there is no "
		              "agent channel");
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPWR);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		guest_fail(0, "signalfd: %s", strerror(errno));
	while (!agent_released()) {
		int st;
		pid_t p;
		agent_serve(NULL, sfd, 1000);
		/* exec sessions meanwhile (startContainer hooks) end when reaped */
		while ((p = waitpid(-1, &st, WNOHANG)) > 0)
			agent_reaped(NULL, p, st);
		if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
			guest_record_end((int)SIGTERM, guest_now_ns());
			guest_finish();
		}
		if (!agent_up())
			guest_fail(0, "the agent channel closed before the host released the "
			              "workload");
	}
	close(sfd);
}

/* Drives, root and the filesystems the workload sees. */
static void boot(struct ctrj_config *cfg, struct guest_disks *disks)
{
	const struct guest_disk *ctl, *base;

	boot_early_mounts();
	resume_wait_go(); /* a boot snapshot is taken here, before any driver */
	guest_status()->t_modules_ns = boot_load_modules();
	if (!(ctl = boot_wait_disk(disks, NULL)))
		guest_fail(0, "no control disk found after %d ms (%zu virtio disks seen)",
		           GUEST_DISK_WAIT_MS, disks->n);
	config_read(ctl->dev, cfg);
	boot_load_share_modules(cfg);
	if (!(base = boot_wait_disk(disks, cfg->base_uuid)))
		guest_fail(0, "base image disk not found");
	boot_mount_root(cfg, base, disks);
	boot_switch_root();
	boot_mount_api_filesystems();
	boot_mount_modules(cfg, disks);
	boot_mount_volumes(cfg, disks);
	boot_mount_shares(cfg);
}

int main(void)
{
	struct guest_disks disks = {.n = 0};
	struct ctrj_config cfg;
	struct guest_user user;
	struct pid1_opts opts = {.signal_all = true};
	uint64_t ended_ns = 0;
	int wstatus;
	pid_t pid;

	guest_status()->t_init_ns = guest_now_ns();
	/* Ctrl-Alt-Del becomes SIGINT to us instead of an instant reboot. */
	reboot(RB_DISABLE_CAD);
	if (pid1_setup_signals() < 0)
		guest_fail(0, "set up signal handling: %s", strerror(errno));
	boot_console_raw();
	boot(&cfg, &disks);
	resume_identity(cfg.has_net);
	net_setup(&cfg);
	boot_bind_files(&cfg);
	config_resolve_user(&cfg, &user);
	config_write_environment(cfg.envp, &user);
	config_write_secrets(&cfg, &user);
	if (cfg.workdir)
		guest_mkdir_p(cfg.workdir, 0755); /* docker creates a missing WORKDIR */
	if (cfg.pids_limit && guest_pids_cgroup(cfg.pids_limit) < 0)
		guest_fail(0, "the workload's pids limit (%llu): %s",
		           (unsigned long long)cfg.pids_limit, strerror(errno));
	boot_seal_root(&cfg);

	char **env = config_workload_env(&cfg, &user);
	bool agent = agent_open(env, cfg.user, cfg.workdir,
	                        cfg.stdio_flags || cfg.hold ? AGENT_PORT_WAIT_MS : 0);
	/* the workload's stdio on the channel when the host asks; else the
	 * console. Made before a hold: what the host sends for it meanwhile
	 * (stdin, a new terminal size) waits there for the workload. */
	bool agent_stdio = agent && (cfg.stdio_flags & CTRJ_STDIO_AGENT) &&
	                   agent_wait_host(AGENT_HOST_WAIT_MS) &&
	                   agent_main_open(cfg.stdio_flags, cfg.tty_rows, cfg.tty_cols);
	if (cfg.hold) /* OCI runtime mode: `start` releases the workload */
		hold_for_release(agent);
	if (cfg.stdio_flags && !agent_stdio)
		guest_say(
		    "the agent channel is missing: the workload's output goes to the console");
	pid = start_workload(&cfg, &user, env, agent_stdio);
	if (agent) { /* exec sessions, served between signals */
		opts.serve = agent_serve;
		opts.reaped = agent_reaped;
	}
	opts.stop_signal = (int)cfg.stop_signal;
	opts.grace_ms = cfg.grace_ms;
	wstatus = pid1_supervise(pid, &opts, &ended_ns);
	agent_workload_ended();
	if (agent_stdio)
		agent_main_drain(AGENT_DRAIN_MS);
	guest_record_end(wstatus, ended_ns);
	guest_finish();
}
