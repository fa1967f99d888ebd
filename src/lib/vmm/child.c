/* SPDX-License-Identifier: Apache-2.0 */
/* What every VMM process gets between fork and exec, whatever the backend. */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

char *const cj_vmm_envp[] = {NULL};

/* fd copied above 2 (close-on-exec), so that placing one of them on
 * 0-2 never overwrites another still to be placed. */
static int high(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int cj_vmm_child_setup(int console_fd, int stderr_fd)
{
	sigset_t none;
	int null, out, errfd;

	/* A session of its own, not just a process group: a VMM that shares
	 * the caller's session and holds its terminal can push input into it
	 * (TIOCSTI) and have the caller's shell run it. */
	if (setsid() < 0)
		return -1;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return -1;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		return -1;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || (null = high(null)) < 0)
		return -1;
	out = console_fd >= 0 ? high(console_fd) : null;
	errfd = stderr_fd >= 0 ? high(stderr_fd) : null;
	if (out < 0 || errfd < 0)
		return -1;
	/* dup2 leaves 0-2 inheritable; the copies above 2 close at exec */
	if (dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(errfd, STDERR_FILENO) < 0)
		return -1;
	return 0;
}
