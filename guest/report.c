/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The init's one reporting path. A warning is a console line; a failure
 * is a console line and the status record (state, code, message), after
 * which the VM stops. The workload's end goes into the same record, which
 * the host reads back from the control disk.
 */
#include "deadline.h"
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#endif
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

static struct ctrj_status g_status;
static int g_status_fd = -1;

struct ctrj_status *guest_status(void)
{
	return &g_status;
}

void guest_report_to(int ctl_fd)
{
	g_status_fd = ctl_fd;
}

/* Our messages quote the image's data (command, user, paths); the console
 * reaches the host's terminal, so only printable ASCII passes as itself
 * and every other byte is shown as \xNN, like the status record's '?'. */
static size_t escape_for_console(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < len; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
	}
	out[o] = '\0';
	return o;
}

static void say_line(const char *msg)
{
	char buf[64 + 4 * 1024];
	size_t n = (size_t)snprintf(buf, sizeof buf, "ctr-jailer-init: ");

	n += escape_for_console(msg, buf + n, sizeof buf - n - 1);
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere else to report */
	}
}

void guest_say(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	say_line(msg);
}

void guest_record_end(int wstatus, uint64_t ended_ns)
{
	g_status.t_workload_end_ns = ended_ns;
	if (WIFSIGNALED(wstatus)) {
		g_status.state = CTRJ_STATE_SIGNALED;
		g_status.signal = (uint32_t)WTERMSIG(wstatus);
	} else {
		g_status.state = CTRJ_STATE_EXITED;
	}
	g_status.code = (uint32_t)ctrj_wait_code(wstatus);
}

/* The kernel prints "reboot: Restarting system" at KERN_EMERG, which no
 * klogctl level silences; console_loglevel 0 via sysctl does. */
static void quiet_console(void)
{
	int fd = open("/proc/sys/kernel/printk", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "0", 1) < 0) {
			/* cosmetic only */
		}
		close(fd);
	}
}

/* What was written to the console has left the guest's UART (the host
 * reads it: the console carries the workload's output in OCI runtime
 * mode and the init's last words), for at most 1 s. */
static void drain_console(void)
{
	for (int i = 0; i < 1000; i++) {
		int queued = 0;
		unsigned lsr = 0;
		if (ioctl(STDOUT_FILENO, TIOCOUTQ, &queued) < 0 ||
		    ioctl(STDOUT_FILENO, TIOCSERGETLSR, &lsr) < 0)
			return;
		if (queued == 0 && (lsr & TIOCSER_TEMT))
			return;
		usleep(1000);
	}
}

/* Everything is on the disks: QEMU's exit device ends the VM at once,
 * where the kernel's reboot would first shut every device down. */
static void fast_exit(void)
{
#if defined(__x86_64__) || defined(__i386__)
	if (!guest_cmdline_has(CTRJ_CMDLINE_QEMU))
		return;
	drain_console();
	if (ioperm(CTRJ_EXIT_PORT, 1, 1) == 0)
		outb(CTRJ_EXIT_VALUE, CTRJ_EXIT_PORT);
#endif
}

void guest_finish(void)
{
	uint8_t rec[CTRJ_CTL_STATUS_SIZE];

	boot_unmount_volumes();
	if (g_status_fd >= 0) {
		resume_rebase_times(&g_status);
		ctrj_status_encode(&g_status, rec);
		if (pwrite(g_status_fd, rec, sizeof rec, CTRJ_CTL_STATUS_OFF) !=
		    (ssize_t)sizeof rec)
			guest_say("cannot write the status record: %s", strerror(errno));
		if (fsync(g_status_fd) < 0)
			guest_say("cannot flush the status record: %s", strerror(errno));
	}
	sync();
	quiet_console();
	fast_exit();
	reboot(RB_AUTOBOOT);
	for (;;) /* reboot only fails without CAP_SYS_BOOT, which PID 1 has */
		pause();
}

void guest_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_status.msg, sizeof g_status.msg, fmt, ap);
	va_end(ap);
	say_line(g_status.msg);
	g_status.state = code ? CTRJ_STATE_EXEC_FAILED : CTRJ_STATE_INIT_FAILED;
	g_status.code = (uint32_t)code;
	guest_finish();
}
