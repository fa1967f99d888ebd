/* SPDX-License-Identifier: Apache-2.0 */
/* What the runtime's verbs share (runtime.h): the parser, the log, the
 * container's state under --root. */
#include "runtime.h"

#include "run/record.h"
#include "run/runs.h"
#include "spec/spec.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct rt_global rt_g = {.root = RT_DEFAULT_ROOT};

/* ---- the parser ---------------------------------------------------------- */

static const struct rt_opt *lookup(const struct rt_verb *verb, const char *name, size_t len,
                                   char short_name)
{
	for (size_t i = 0; i < verb->nopts; i++) {
		const struct rt_opt *o = &verb->opts[i];
		if (short_name ? o->short_name == short_name
		               : strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	}
	return NULL;
}

static void help(const struct rt_verb *verb)
{
	printf("usage: %s %s\n", RT_NAME, verb->usage);
	for (size_t i = 0; i < verb->nopts; i++) {
		const struct rt_opt *o = &verb->opts[i];
		char head[64];
		snprintf(head, sizeof head, "--%s%s%s", o->name, o->arg ? " " : "",
		         o->arg ? o->arg : "");
		printf("  %-28s %s\n", head, o->set ? o->help : "accepted, ignored (runc's)");
	}
}

/* One option at argv[*i]: its value from "=V" or the next argument. */
static int one_opt(const struct rt_verb *verb, void *ctx, int argc, char **argv, int *i,
                   struct cj_err *err)
{
	const char *a = argv[*i], *name = a + (a[1] == '-' ? 2 : 1), *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct rt_opt *o = lookup(verb, name, len, len == 1 && a[1] != '-' ? name[0] : 0);
	const char *value = eq ? eq + 1 : NULL;

	if (!o) {
		rt_log("warning", "%s: ignoring unknown option %s", verb->name, a);
		return 0;
	}
	if (o->arg && !value) {
		if (*i + 1 >= argc)
			return cj_fail(err, 0, "%s: option %s needs a value", verb->name, a);
		value = argv[++*i];
	}
	if (!o->arg && value && strcmp(value, "true") != 0)
		return 0; /* --flag=false */
	if (!o->set) {
		rt_log("warning", "%s: ignoring option %s (not applicable to a microVM)",
		       verb->name, a);
		return 0;
	}
	return o->set(ctx, o->arg ? value : NULL, err);
}

int rt_parse(const struct rt_verb *verb, void *ctx, int argc, char **argv, int *first,
             struct cj_err *err)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help(verb);
			return 1;
		}
		int r = one_opt(verb, ctx, argc, argv, &i, err);
		if (r != 0)
			return r; /* 1: done (--version) */
	}
	*first = i;
	return 0;
}

int rt_need(const struct rt_verb *verb, int have, int want, struct cj_err *err)
{
	if (have >= want)
		return 0;
	return cj_fail(err, 0, "%s: too few arguments: usage: %s %s", verb->name, RT_NAME,
	               verb->usage);
}

/* ---- the log ---------------------------------------------------------------- */

void rt_log(const char *level, const char *fmt, ...)
{
	char msg[CJ_ERR_STR_MAX], now[64];
	va_list ap;
	FILE *f = NULL;

	if (strcmp(level, "debug") == 0 && !rt_g.debug)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cj_rfc3339_now(now, sizeof now);
	if (rt_g.log)
		f = fopen(rt_g.log, "ae");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", RT_NAME, level, msg);
		return;
	}
	if (rt_g.log_json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "level", json_object_new_string(level));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		json_object_object_add(o, "time", json_object_new_string(now));
		fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		fprintf(f, "time=\"%s\" level=%s msg=\"%s\"\n", now, level, msg);
	}
	fclose(f);
}

int rt_fail(const struct cj_err *err)
{
	char buf[CJ_ERR_STR_MAX];

	cj_err_str(err, buf, sizeof buf);
	rt_log("error", "%s", buf);
	if (rt_g.log) /* runc says it on stderr too */
		fprintf(stderr, "%s: %s\n", RT_NAME, buf);
	return 1;
}

/* ---- the state --------------------------------------------------------- */

static int state_path(const char *id, const char *file, char *buf, size_t len, struct cj_err *err)
{
	if (!id[0] || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return cj_fail(err, 0, "invalid container id '%s'", id);
	if ((size_t)snprintf(buf, len, "%s/%s%s%s", rt_g.root, id, file ? "/" : "",
	                     file ? file : "") >= len)
		return cj_fail(err, ENAMETOOLONG, "container %s", id);
	return 0;
}

int rt_state_create_dir(const char *id, struct cj_err *err)
{
	char path[4096];

	if (state_path(id, NULL, path, sizeof path, err) < 0 ||
	    cj_mkdir_p(rt_g.root, 0700, err) < 0)
		return -1;
	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? cj_fail(err, 0, "container with id %s exists already", id)
		                       : cj_fail(err, errno, "%s", path);
	return 0;
}

json_object *rt_state_read(const char *id, struct cj_err *err)
{
	char path[4096];
	json_object *o;

	if (state_path(id, "state.json", path, sizeof path, err) < 0)
		return NULL;
	if (access(path, F_OK) < 0)
		return cj_fail(err, 0, "container %s does not exist", id), NULL;
	if (!(o = json_object_from_file(path)) || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return cj_fail(err, 0, "container %s: unreadable state %s", id, path), NULL;
	}
	/* the run base of its create: podman runs the verbs other than create
	 * and exec with an environment of its own, without CTR_JAILER_RUN_DIR */
	const char *runs = rt_state_str(o, "runs");
	if (runs && *runs)
		setenv("CTR_JAILER_RUN_DIR", runs, 1);
	return o;
}

int rt_state_write(const char *id, json_object *state, struct cj_err *err)
{
	char path[4096], tmp[4200];

	if (state_path(id, "state.json", path, sizeof path, err) < 0)
		return -1;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (json_object_to_file_ext(tmp, state,
	                            JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) < 0 ||
	    rename(tmp, path) < 0)
		return cj_fail(err, errno, "write %s", path);
	return 0;
}

void rt_state_remove(const char *id)
{
	char path[4096], file[4200];
	struct cj_err ignored = {0};

	if (state_path(id, NULL, path, sizeof path, &ignored) < 0)
		return;
	snprintf(file, sizeof file, "%s/state.json", path);
	unlink(file);
	snprintf(file, sizeof file, "%s/state.json.tmp", path);
	unlink(file);
	snprintf(file, sizeof file, "%s/boot.log", path);
	unlink(file);
	rmdir(path);
}

const char *rt_state_str(json_object *state, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(state, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *rt_run_base(void)
{
	const char *b = getenv("CTR_JAILER_RUN_DIR");

	return b && *b ? b : CJ_DEFAULT_RUN_BASE;
}

const char *rt_status(json_object *state, pid_t *pid)
{
	const char *run = rt_state_str(state, "run");
	json_object *v;

	*pid = 0;
	if (!run || !cj_runs_alive(rt_run_base(), run))
		return "stopped";
	if (json_object_object_get_ex(state, "pid", &v))
		*pid = (pid_t)json_object_get_int(v);
	return json_object_object_get_ex(state, "started", &v) && json_object_get_boolean(v)
	           ? "running"
	           : "created";
}

int rt_write_pid(const char *path, pid_t pid, struct cj_err *err)
{
	char tmp[4200], text[32];
	int fd, n = snprintf(text, sizeof text, "%d", (int)pid);

	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	/* a new file of ours, never what a name planted there points to */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return cj_fail(err, errno, "pid file %s", tmp);
	bool ok = write(fd, text, (size_t)n) == n;
	if (close(fd) < 0)
		ok = false;
	if (!ok || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return cj_fail(err, e, "pid file %s", path);
	}
	return 0;
}

/* ---- the console socket -------------------------------------------------- */

static int send_fd(int sock, int fd)
{
	char data[] = "/dev/ptmx";
	struct iovec iov = {.iov_base = data, .iov_len = sizeof data - 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {0};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

int rt_console(const char *socket_path, struct cj_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int master, slave, sock, rc = 0;

	if (strlen(socket_path) >= sizeof sa.sun_path)
		return cj_fail(err, ENAMETOOLONG, "console socket %s", socket_path);
	strcpy(sa.sun_path, socket_path);
	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		return cj_fail(err, errno, "openpty");
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    send_fd(sock, master) < 0)
		rc = cj_fail(err, errno, "console socket %s", socket_path);
	if (sock >= 0)
		close(sock);
	close(master);
	if (rc == 0 && (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0))
		rc = cj_fail(err, errno, "console");
	close(slave);
	return rc;
}
