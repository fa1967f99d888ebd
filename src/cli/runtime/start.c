/* SPDX-License-Identifier: Apache-2.0 */
/* start ID: release the workload the guest holds (CTRJ_AGENT_RELEASE
 * through the run's agent socket), once the guest's agent is up. */
#include "runtime.h"

#include "ctrj/agent.h"
#include "run/agent_mux.h"
#include "run/runs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The guest boots within this (TCG on a loaded machine included). */
#define HELLO_TIMEOUT_MS 300000

static int connect_agent(const char *run, struct cj_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s/%s", rt_run_base(), run,
	                     CJ_AGENT_SOCK) >= sizeof sa.sun_path)
		return cj_fail(err, ENAMETOOLONG, "run directory of %s", run);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return cj_fail(err, e, "the container's VM takes no start (it ended?)");
	}
	return fd;
}

static int on_hello(const struct ctrj_agent_frame *f, void *ctx)
{
	if (f->type == CTRJ_AGENT_HELLO)
		*(bool *)ctx = true;
	return 0;
}

/* Wait for the guest's greeting (relayed by the run). */
static int wait_hello(int fd, struct cj_err *err)
{
	struct ctrj_agent_dec dec;
	bool greeted = false;
	uint8_t b[4096];

	if (ctrj_agent_dec_init(&dec, CTRJ_AGENT_FROM_GUEST) < 0)
		return cj_fail(err, ENOMEM, "start");
	while (!greeted) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, HELLO_TIMEOUT_MS);
		ssize_t n = pr > 0 ? recv(fd, b, sizeof b, 0) : -1;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0 || n <= 0 ||
		    ctrj_agent_dec_feed(&dec, b, (size_t)n, on_hello, &greeted, NULL, 0) != 0) {
			ctrj_agent_dec_free(&dec);
			if (pr != 0)
				return -2; /* start_main says why */
			return cj_fail(err, 0, "the container's VM did not come up in time");
		}
	}
	ctrj_agent_dec_free(&dec);
	return 0;
}

/* Release the workload. */
static int release(int fd, struct cj_err *err)
{
	uint8_t b[4096];
	size_t len = ctrj_agent_enc_data(b, CTRJ_AGENT_RELEASE, 0, NULL, 0);
	if (send(fd, b, len, MSG_NOSIGNAL) != (ssize_t)len)
		return cj_fail(err, errno, "release the workload");
	shutdown(fd, SHUT_WR);
	/* the run closes us once it has read the frame */
	while (recv(fd, b, sizeof b, 0) > 0)
		;
	return 0;
}

/* The supervisor's last word once it ended (its final error, or NULL):
 * the guest's own reason when the VM ended before the start. Waits up to
 * ENDED_WAIT_MS for it to end (it reads the guest's status first). */
#define ENDED_WAIT_MS 10000
static const char *last_word(const char *run, char *buf, size_t len)
{
	char path[PATH_MAX];
	char *line = NULL, *nl;
	int fd;
	ssize_t n;

	for (int ms = 0; ms < ENDED_WAIT_MS && cj_runs_alive(rt_run_base(), run); ms += 100)
		usleep(100 * 1000);
	snprintf(path, sizeof path, "%s/%s/supervisor.log", rt_run_base(), run);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return NULL;
	off_t end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, len - 1, end > (off_t)len - 1 ? end - ((off_t)len - 1) : 0);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	for (char *p = buf; p && *p; p = nl) { /* its last line that is no warning */
		if ((nl = strchr(p, '\n')))
			*nl++ = '\0';
		if (strncmp(p, "ctr-jailer: ", 12) == 0 && strncmp(p + 12, "warning", 7) != 0)
			line = p + 12;
	}
	return line;
}

/* The startContainer hooks in the guest, its workload still held; one
 * failing stops the container (its VM killed, the run ended). */
static int start_hooks(json_object *cfg, const char *cid, const char *bundle, const char *run,
                       pid_t pid, struct cj_err *err)
{
	struct cj_err ignored = {0};

	if (rt_hooks_in_guest(cfg, cid, bundle, run, pid, err) == 0)
		return 0;
	cj_runs_forward(rt_run_base(), run, SIGKILL, &ignored);
	cj_runs_wait(rt_run_base(), run, &ignored);
	return cj_err_wrap(err, "the container is stopped");
}

/* One start at a time: the container's state directory locked (until
 * this process ends); -1 with err when another start holds it. */
static int lock_start(const char *id, struct cj_err *err)
{
	char path[PATH_MAX];
	int fd;

	if (strchr(id, '/') ||
	    (size_t)snprintf(path, sizeof path, "%s/%s", rt_g.root, id) >= sizeof path)
		return 0; /* the state's read says what is wrong */
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return cj_fail(err, 0, "container %s is being started by another start", id);
	}
	return 0; /* held as long as this process */
}

static int start_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	json_object *st;
	pid_t pid;
	int first, fd, r = rt_parse(verb, NULL, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	if (lock_start(argv[first], &err) < 0 || !(st = rt_state_read(argv[first], &err)))
		return rt_fail(&err);
	const char *status = rt_status(st, &pid), *run = rt_state_str(st, "run");
	const char *bundle = rt_state_str(st, "bundle");
	json_object *started = NULL;
	fd = -1;
	if (strcmp(status, "stopped") == 0 && run &&
	    !(json_object_object_get_ex(st, "started", &started) &&
	      json_object_get_boolean(started)))
		r = -2; /* its VM ended before any start: why */
	else if (strcmp(status, "created") != 0)
		r = cj_fail(&err, 0, "cannot start a container in state %s", status);
	else if ((fd = connect_agent(run, &err)) < 0) /* ended meanwhile? */
		r = run && !cj_runs_alive(rt_run_base(), run) ? -2 : -1;
	else if ((r = wait_hello(fd, &err)) == 0 && /* the state holds the hooks */
	         (r = start_hooks(st, argv[first], bundle, run, pid, &err)) == 0)
		r = release(fd, &err);
	if (r == -2) {
		char buf[2048];
		const char *why = last_word(run, buf, sizeof buf);
		cj_fail(&err, 0, "the container's VM ended before it started%s%s", why ? ": " : "",
		        why ? why : " (see the container's output)");
	}
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		json_object_object_add(st, "started", json_object_new_boolean(true));
		r = rt_state_write(argv[first], st, &err);
	}
	if (r == 0) /* the workload runs: on the host, a failure only warned */
		rt_hooks_warn(st, "poststart", argv[first], bundle, "running", pid);
	json_object_put(st);
	return r < 0 ? rt_fail(&err) : 0;
}

const struct rt_verb rt_start_verb = {
    .name = "start",
    .usage = "start ID",
    .main = start_main,
};
