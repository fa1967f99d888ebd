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
#include <string.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* In the child: become the user, enter workdir, exec. Reports errno on
 * err_fd (close-on-exec, so success closes it silently). */
static __attribute__((noreturn)) void
exec_workload(struct ctrj_config *cfg, const struct guest_user *u, char **env, int err_fd)
{
	int stage = 0; /* 0 setup, 1 exec */
	int e;

	pid1_child_setup();
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0 && null != STDIN_FILENO)
		dup2(null, STDIN_FILENO);
	gid_t groups[GUEST_MAX_GROUPS];
	for (size_t i = 0; i < u->ngroups; i++)
		groups[i] = u->groups[i];
	if (setgroups(u->ngroups, groups) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0)
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

static pid_t start_workload(struct ctrj_config *cfg, const struct guest_user *u, char **env)
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
		exec_workload(cfg, u, env, pfd[1]);
	close(pfd[1]);
	do
		r = read(pfd[0], msg, sizeof msg);
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof msg) {
		waitpid(pid, NULL, 0);
		if (msg[0] == 0)
			guest_fail(0, "cannot enter user %s or directory %s: %s",
			           cfg->user ? cfg->user : "0", cfg->workdir ? cfg->workdir : "/",
			           strerror(msg[1]));
		guest_fail(msg[1] == ENOENT ? 127 : 126, "exec \"%s\": %s", cfg->argv[0],
		           strerror(msg[1]));
	}
	return pid;
}

/* Drives, root and the filesystems the workload sees. */
static void boot(struct ctrj_config *cfg, struct guest_disks *disks)
{
	const struct guest_disk *ctl, *base;

	boot_early_mounts();
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
	net_setup(&cfg);
	config_resolve_user(&cfg, &user);
	config_write_environment(cfg.envp, &user);
	config_write_secrets(&cfg, &user);
	if (cfg.workdir)
		guest_mkdir_p(cfg.workdir, 0755); /* docker creates a missing WORKDIR */
	boot_seal_root(&cfg);

	char **env = config_workload_env(&cfg, &user);
	pid = start_workload(&cfg, &user, env);
	if (agent_open(env, cfg.user, cfg.workdir)) { /* exec sessions, served between signals */
		opts.serve = agent_serve;
		opts.reaped = agent_reaped;
	}
	opts.stop_signal = (int)cfg.stop_signal;
	opts.grace_ms = cfg.grace_ms;
	wstatus = pid1_supervise(pid, &opts, &ended_ns);
	guest_record_end(wstatus, ended_ns);
	guest_finish();
}
