/* SPDX-License-Identifier: Apache-2.0 */
/* Health checks (health.h): docker's state machine, and the checks run as
 * `ctr-jailer exec` clients of the run's own agent socket. */
#include "health.h"

#include "record.h"
#include "util/sanitize.h"
#include "util/spawn.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the state machine ------------------------------------------------------ */

void cj_health_account(struct cj_health_state *st, const struct cj_health_spec *spec,
                       uint64_t since_boot_ms, bool ok)
{
	if (ok) {
		st->status = CJ_HEALTH_HEALTHY;
		st->failing_streak = 0;
		return;
	}
	if (st->status == CJ_HEALTH_STARTING && since_boot_ms < spec->start_period_ms)
		return; /* still starting up: docker does not count it */
	if (++st->failing_streak >= spec->retries)
		st->status = CJ_HEALTH_UNHEALTHY;
}

const char *cj_health_status_name(enum cj_health_status s)
{
	return s == CJ_HEALTH_HEALTHY     ? "healthy"
	       : s == CJ_HEALTH_UNHEALTHY ? "unhealthy"
	                                  : "starting";
}

/* ---- the checker -------------------------------------------------------------- */

struct cj_health {
	struct cj_health_spec spec; /* test borrowed from the run's spec */
	struct cj_record *rec;
	char **argv; /* ctr-jailer exec -- ID TEST... */
	char env_run_dir[PATH_MAX + 32];
	char *envp[3];
	struct cj_health_state st;
	json_object *log; /* the last results */
	uint64_t boot_ns, next_ns;
	/* the check in flight */
	pid_t pid;
	int fd;
	uint64_t start_ns;
	bool timed_out;
	char start[64];
	char out[CJ_HEALTH_OUTPUT];
	size_t out_len;
};

static const char check_path[] = "/proc/self/exe";

int cj_health_open(const struct cj_health_spec *spec, const char *run_base, const char *id,
                   struct cj_record *rec, struct cj_health **out, struct cj_err *err)
{
	struct cj_health *h;
	struct cj_health_spec s = *spec;
	size_t n = 0;

	*out = NULL;
	if (!cj_health_defaults(&s))
		return 0;
	if (!(h = calloc(1, sizeof *h)) || !(h->argv = calloc(s.test.n + 5, sizeof *h->argv))) {
		free(h);
		return cj_fail(err, ENOMEM, "health check");
	}
	h->spec = s;
	h->rec = rec;
	h->pid = 0;
	h->fd = -1;
	h->argv[n++] = "ctr-jailer";
	h->argv[n++] = "exec";
	h->argv[n++] = "--"; /* options end: the id, then the command as it is */
	h->argv[n++] = (char *)id;
	for (size_t i = 0; i < s.test.n; i++)
		h->argv[n++] = s.test.v[i];
	snprintf(h->env_run_dir, sizeof h->env_run_dir, "CTR_JAILER_RUN_DIR=%s", run_base);
	h->envp[0] = h->env_run_dir;
	h->envp[1] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	h->log = json_object_new_array();
	*out = h;
	return 0;
}

/* The state into the record (a failure to save is a notice: the run goes on). */
static void save(struct cj_health *h)
{
	json_object *o = json_object_new_object();
	struct cj_err err = {0};

	json_object_object_add(o, "status",
	                       json_object_new_string(cj_health_status_name(h->st.status)));
	json_object_object_add(o, "failing_streak", json_object_new_int((int)h->st.failing_streak));
	json_object_object_add(o, "log", json_object_get(h->log));
	if (cj_record_set_health(h->rec, o, &err) < 0)
		cj_notice("warning: health state not saved: %s", err.msg);
}

static void kill_check(struct cj_health *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	h->pid = 0;
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

void cj_health_boot(struct cj_health *h)
{
	if (!h)
		return;
	kill_check(h);
	h->st = (struct cj_health_state){CJ_HEALTH_STARTING, 0};
	h->boot_ns = cj_now_ns();
	h->next_ns = h->boot_ns + h->spec.interval_ms * 1000000ull;
	save(h);
}

static void start_check(struct cj_health *h)
{
	struct cj_err err = {0};
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		cj_notice("warning: health check: %s", strerror(errno));
		h->next_ns = cj_now_ns() + h->spec.interval_ms * 1000000ull;
		return;
	}
	struct cj_spawn s = {.path = check_path,
	                     .argv = h->argv,
	                     .envp = h->envp,
	                     .stdin_fd = -1,
	                     .stdout_fd = p[1],
	                     .stderr_fd = p[1],
	                     .new_session = true};
	cj_rfc3339_now(h->start, sizeof h->start);
	h->start_ns = cj_now_ns();
	h->pid = cj_spawn(&s, NULL, &err);
	close(p[1]);
	if (h->pid < 0) {
		close(p[0]);
		h->pid = 0;
		cj_notice("warning: health check: %s", err.msg);
		h->next_ns = cj_now_ns() + h->spec.interval_ms * 1000000ull;
		return;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	h->fd = p[0];
	h->out_len = 0;
	h->timed_out = false;
}

/* What the check wrote: its last CJ_HEALTH_OUTPUT bytes are kept. */
static void read_output(struct cj_health *h)
{
	char buf[4096];
	ssize_t n;

	while (h->fd >= 0 && (n = read(h->fd, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				close(h->fd);
				h->fd = -1;
			}
			return;
		}
		if ((size_t)n >= sizeof h->out) {
			memcpy(h->out, buf + (size_t)n - sizeof h->out, sizeof h->out);
			h->out_len = sizeof h->out;
			continue;
		}
		if (h->out_len + (size_t)n > sizeof h->out) {
			size_t drop = h->out_len + (size_t)n - sizeof h->out;
			memmove(h->out, h->out + drop, h->out_len - drop);
			h->out_len -= drop;
		}
		memcpy(h->out + h->out_len, buf, (size_t)n);
		h->out_len += (size_t)n;
	}
	if (h->fd >= 0) { /* end of file */
		close(h->fd);
		h->fd = -1;
	}
}

int cj_health_pollfd(struct cj_health *h, struct pollfd *p)
{
	uint64_t now = cj_now_ns(), at;

	*p = (struct pollfd){.fd = h ? h->fd : -1, .events = POLLIN};
	if (!h)
		return -1;
	at = h->pid > 0 ? h->start_ns + h->spec.timeout_ms * 1000000ull : h->next_ns;
	if (h->pid > 0 && h->timed_out)
		return -1; /* killed: its SIGCHLD comes */
	if (at <= now)
		return 0;
	/* an interval or timeout of weeks is more ms than poll's int holds */
	return (at - now) / 1000000u >= INT_MAX ? INT_MAX : (int)((at - now) / 1000000u + 1);
}

void cj_health_handle(struct cj_health *h, const struct pollfd *p)
{
	uint64_t now = cj_now_ns();

	if (!h)
		return;
	if (p && p->fd >= 0 && p->fd == h->fd && p->revents)
		read_output(h);
	if (h->pid > 0 && !h->timed_out && now >= h->start_ns + h->spec.timeout_ms * 1000000ull) {
		h->timed_out = true; /* its SIGCHLD accounts for it */
		kill(h->pid, SIGKILL);
	} else if (h->pid == 0 && now >= h->next_ns) {
		start_check(h);
	}
}

/* The guest wrote it: lines kept, anything else that is not printable
 * UTF-8 escaped (util/sanitize.h), so the record stays valid JSON text. */
static char *output_text(const char *in, size_t len)
{
	char *out = malloc(4 * len + 1), *o = out;

	if (!out)
		return NULL;
	*o = '\0';
	for (const char *p = in, *end = in + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		o += cj_sanitize(p, n, o, 4 * n + 1);
		if (nl) {
			*o++ = '\n';
			*o = '\0';
		}
		p += n + (nl != NULL);
	}
	return out;
}

static void record_result(struct cj_health *h, int code)
{
	json_object *r = json_object_new_object();
	char end[64], *text;

	cj_rfc3339_now(end, sizeof end);
	if (h->timed_out)
		h->out_len = (size_t)snprintf(h->out, sizeof h->out,
		                              "Health check exceeded timeout (%llu ms)",
		                              (unsigned long long)h->spec.timeout_ms);
	text = output_text(h->out, h->out_len);
	json_object_object_add(r, "start", json_object_new_string(h->start));
	json_object_object_add(r, "end", json_object_new_string(end));
	json_object_object_add(r, "exit_code", json_object_new_int(code));
	json_object_object_add(r, "output", json_object_new_string(text ? text : ""));
	free(text);
	json_object_array_add(h->log, r);
	while (json_object_array_length(h->log) > CJ_HEALTH_LOG)
		json_object_array_del_idx(h->log, 0, 1);
}

void cj_health_reap(struct cj_health *h)
{
	int st, code;

	if (!h || h->pid <= 0 || waitpid(h->pid, &st, WNOHANG) != h->pid)
		return;
	h->pid = 0;
	read_output(h); /* the rest of it */
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	code = h->timed_out      ? -1
	       : WIFEXITED(st)   ? WEXITSTATUS(st)
	       : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
	                         : -1;
	record_result(h, code);
	cj_health_account(&h->st, &h->spec, (h->start_ns - h->boot_ns) / 1000000u, code == 0);
	save(h);
	h->next_ns = cj_now_ns() + h->spec.interval_ms * 1000000ull;
}

void cj_health_stop(struct cj_health *h)
{
	if (h)
		kill_check(h);
}

void cj_health_close(struct cj_health *h)
{
	if (!h)
		return;
	kill_check(h);
	json_object_put(h->log);
	free(h->argv);
	free(h);
}
