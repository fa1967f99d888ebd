/* SPDX-License-Identifier: Apache-2.0 */
/* exec [--process FILE] [--detach] [--pid-file F] [--console-socket S]
 * [--tty] ID [COMMAND...]: a process in the container's VM, through the
 * run's agent as `ctr-jailer exec` does it. With --detach the pid written
 * is a host process that relays the process and exits with its status. */
#include "runtime.h"

#include "../cli.h"
#include "ctrj/protocol.h"
#include "util/strv.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct rexec {
	const char *process, *pid_file, *console_socket, *cwd, *user;
	bool detach, tty, no_new_privs;
	struct cj_strv env;
	struct ctrj_proc proc; /* process.json's privileges and limits */
};

static int o_process(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct rexec *)c)->process = v;
	return 0;
}

static int o_pid_file(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct rexec *)c)->pid_file = v;
	return 0;
}

static int o_console(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct rexec *)c)->console_socket = v;
	return 0;
}

static int o_detach(void *c, const char *v, struct cj_err *err)
{
	(void)v, (void)err;
	((struct rexec *)c)->detach = true;
	return 0;
}

static int o_user(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct rexec *)c)->user = v;
	return 0;
}

static int o_no_new_privs(void *c, const char *v, struct cj_err *err)
{
	(void)v, (void)err;
	((struct rexec *)c)->no_new_privs = true;
	return 0;
}

static int o_tty(void *c, const char *v, struct cj_err *err)
{
	(void)v, (void)err;
	((struct rexec *)c)->tty = true;
	return 0;
}

static int o_cwd(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct rexec *)c)->cwd = v;
	return 0;
}

static int o_env(void *c, const char *v, struct cj_err *err)
{
	return cj_strv_push(&((struct rexec *)c)->env, v) < 0 ? cj_fail(err, ENOMEM, "env") : 0;
}

static const struct rt_opt exec_opts[] = {
    {"process", 'p', "FILE", o_process, "the process, as the runtime spec's process JSON"},
    {"detach", 'd', NULL, o_detach, "return at once; the pid file names the relay"},
    {"pid-file", 0, "FILE", o_pid_file, "where to write the relay's pid"},
    {"console-socket", 0, "SOCKET", o_console, "send the terminal's master there"},
    {"tty", 't', NULL, o_tty, "a terminal for the process"},
    {"cwd", 0, "DIR", o_cwd, "working directory (without --process)"},
    {"env", 'e', "NAME=VALUE", o_env, "environment (without --process)"},
    {"user", 'u', "UID[:GID]", o_user, "user (without --process)"},
    {"cap", 'c', "CAP", NULL, NULL},
    {"no-new-privs", 0, NULL, o_no_new_privs, "no_new_privs for the process"},
    {"additional-gids", 'g', "GID", NULL, NULL},
    {"process-label", 0, "LABEL", NULL, NULL},
    {"apparmor", 0, "PROFILE", NULL, NULL},
    {"preserve-fds", 0, "N", NULL, NULL},
    {"cgroup", 0, "PATH", NULL, NULL},
    {"ignore-paused", 0, NULL, NULL, NULL},
};

static void push2(struct cj_strv *v, const char *a, const char *b)
{
	cj_strv_push(v, a);
	cj_strv_push(v, b);
}

/* process.json onto `ctr-jailer exec`'s command line. */
static int from_process(struct rexec *o, struct cj_strv *v, json_object **args, struct cj_err *err)
{
	json_object *p = json_object_from_file(o->process), *x, *user;

	if (!p || !json_object_is_type(p, json_type_object)) {
		json_object_put(p);
		return cj_fail(err, 0, "cannot read %s: %s", o->process, json_util_get_last_err());
	}
	if (json_object_object_get_ex(p, "terminal", &x) && json_object_get_boolean(x))
		o->tty = true;
	if (json_object_object_get_ex(p, "env", &x))
		for (size_t i = 0; i < json_object_array_length(x); i++) {
			const char *e = json_object_get_string(json_object_array_get_idx(x, i));
			if (e && strchr(e, '=') && e[0] != '=')
				push2(v, "-e", e);
		}
	if (json_object_object_get_ex(p, "cwd", &x) && json_object_get_string(x)[0] == '/')
		push2(v, "-w", json_object_get_string(x));
	if (json_object_object_get_ex(p, "user", &user)) {
		char u[64];
		json_object *uid = NULL, *gid = NULL;
		json_object_object_get_ex(user, "uid", &uid);
		json_object_object_get_ex(user, "gid", &gid);
		snprintf(u, sizeof u, "%u:%u", (unsigned)json_object_get_int64(uid),
		         (unsigned)json_object_get_int64(gid));
		push2(v, "-u", u);
	}
	if (!json_object_object_get_ex(p, "args", &x) || !json_object_is_type(x, json_type_array) ||
	    json_object_array_length(x) == 0) {
		json_object_put(p);
		return cj_fail(err, 0, "%s: process.args is empty", o->process);
	}
	if (rt_process_proc(p, &o->proc, err) < 0) {
		json_object_put(p);
		return -1;
	}
	cli_exec_proc = &o->proc;
	*args = json_object_get(x);
	json_object_put(p);
	return 0;
}

/* Without --process, the container's own process privileges and limits
 * (its bundle's config.json), as runc's exec takes them: never root's
 * full sets in a container whose spec dropped some. */
static int from_config(struct rexec *o, const char *bundle, struct cj_err *err)
{
	char path[PATH_MAX];
	json_object *c, *p = NULL;

	if (!bundle || (size_t)snprintf(path, sizeof path, "%s/config.json", bundle) >= sizeof path)
		return cj_fail(err, 0, "exec: the container's state names no bundle");
	if (!(c = json_object_from_file(path)))
		return cj_fail(err, 0, "exec: cannot read %s: %s (the container's spec)", path,
		               json_util_get_last_err());
	json_object_object_get_ex(c, "process", &p);
	int r = rt_process_proc(p, &o->proc, err);
	json_object_put(c);
	if (r < 0)
		return cj_err_wrap(err, "%s", path);
	cli_exec_proc = &o->proc;
	return 0;
}

/* argv of `ctr-jailer exec` for this request. */
static int exec_argv(struct rexec *o, json_object *st, char **cmd, int ncmd, struct cj_strv *v,
                     struct cj_err *err)
{
	json_object *args = NULL;

	cj_strv_push(v, "exec");
	cj_strv_push(v, "-i");
	if (o->process && from_process(o, v, &args, err) < 0)
		return -1;
	if (!o->process && ncmd == 0)
		return cj_fail(err, 0, "exec: give --process FILE or a command");
	if (!o->process && from_config(o, rt_state_str(st, "bundle"), err) < 0)
		return -1;
	if (o->no_new_privs)
		o->proc.flags |= CTRJ_PROC_NO_NEW_PRIVS;
	if (!o->process && o->user)
		push2(v, "-u", o->user);
	for (size_t i = 0; i < o->env.n; i++)
		push2(v, "-e", o->env.v[i]);
	if (o->cwd)
		push2(v, "-w", o->cwd);
	if (o->tty)
		cj_strv_push(v, "-t");
	cj_strv_push(v, rt_state_str(st, "run"));
	for (size_t i = 0; args && i < json_object_array_length(args); i++)
		cj_strv_push(v, json_object_get_string(json_object_array_get_idx(args, i)));
	for (int i = 0; !args && i < ncmd; i++)
		cj_strv_push(v, cmd[i]);
	json_object_put(args);
	return 0;
}

static int run_exec(struct rexec *o, struct cj_strv *v, struct cj_err *err)
{
	pid_t pid;

	if (o->console_socket && rt_console(o->console_socket, err) < 0)
		return -1;
	if (!o->detach)
		return cli_exec_verb.main(&cli_exec_verb, (int)v->n, v->v);
	if ((pid = fork()) < 0)
		return cj_fail(err, errno, "fork");
	if (pid == 0) {
		setsid();
		if (o->console_socket) /* its new sizes come as SIGWINCH */
			ioctl(STDIN_FILENO, TIOCSCTTY, 0);
		_exit(cli_exec_verb.main(&cli_exec_verb, (int)v->n, v->v));
	}
	if (o->pid_file && rt_write_pid(o->pid_file, pid, err) < 0) {
		kill(pid, SIGKILL);
		return -1;
	}
	return 0;
}

static int exec_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct rexec o = {0};
	struct cj_strv v = {0};
	struct cj_err err = {0};
	json_object *st = NULL;
	pid_t pid;
	int first, r = rt_parse(verb, &o, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	if (!(st = rt_state_read(argv[first], &err)))
		r = -1;
	else if (strcmp(rt_status(st, &pid), "running") != 0)
		r = cj_fail(&err, 0, "cannot exec in a container that is not running");
	else if (exec_argv(&o, st, argv + first + 1, argc - first - 1, &v, &err) < 0)
		r = -1;
	else
		r = run_exec(&o, &v, &err);
	json_object_put(st);
	cj_strv_free(&v);
	cj_strv_free(&o.env);
	return r < 0 ? rt_fail(&err) : r;
}

const struct rt_verb rt_exec_verb = {
    .name = "exec",
    .usage = "exec [--process FILE] [--detach] [--pid-file F] [--console-socket S] [--tty] "
             "ID [COMMAND...]",
    .opts = exec_opts,
    .nopts = sizeof exec_opts / sizeof *exec_opts,
    .main = exec_main,
};
