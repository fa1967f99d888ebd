/* SPDX-License-Identifier: Apache-2.0 */
/* config.json's hooks, each with the container's state on its stdin, its
 * args, env and timeout. prestart, createRuntime, createContainer,
 * poststart and poststop run on the host (the engine's namespaces: the
 * container's are the VM's); startContainer runs in the guest, in the
 * container's root, through the run's agent as `exec` does. */
#include "runtime.h"

#include "../cli.h"
#include "util/spawn.h"
#include "util/strv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* Its timeout in seconds (0: none), or -1 with err. */
static int64_t hook_timeout(json_object *hook, const char *path, struct cj_err *err)
{
	json_object *t = get(hook, "timeout");
	int64_t timeout = t ? json_object_get_int64(t) : 0;

	if (t && (!json_object_is_type(t, json_type_int) || timeout <= 0 || timeout > 86400))
		return cj_fail(err, 0, "hook %s: timeout must be a number of seconds above 0",
		               path);
	return timeout;
}

/* Whether o is absent or an array of strings. */
static bool strings_or_none(json_object *o)
{
	if (!o)
		return true;
	if (!json_object_is_type(o, json_type_array) || json_object_array_length(o) > 63)
		return false;
	for (size_t i = 0; i < json_object_array_length(o); i++)
		if (!json_object_is_type(json_object_array_get_idx(o, i), json_type_string))
			return false;
	return true;
}

/* One hook of kind: an object, its path absolute, its args and env
 * arrays of strings (63 at most). */
static int check_hook(json_object *hook, const char *kind, struct cj_err *err)
{
	json_object *path = get(hook, "path");

	if (!json_object_is_type(hook, json_type_object) ||
	    !json_object_is_type(path, json_type_string))
		return cj_fail(err, 0,
		               "%s hook: each must be an object with a \"path\": fix config.json",
		               kind);
	if (json_object_get_string(path)[0] != '/')
		return cj_fail(err, 0, "%s hook %s: its path must be absolute: fix config.json",
		               kind, json_object_get_string(path));
	if (!strings_or_none(get(hook, "args")) || !strings_or_none(get(hook, "env")))
		return cj_fail(err, 0,
		               "%s hook %s: its args and env must be arrays of at most 63 strings: "
		               "fix config.json",
		               kind, json_object_get_string(path));
	return 0;
}

int rt_hooks_check(json_object *cfg, struct cj_err *err)
{
	json_object *hooks = get(cfg, "hooks");

	if (!hooks)
		return 0;
	if (!json_object_is_type(hooks, json_type_object))
		return cj_fail(err, 0, "hooks must be an object of hook lists: fix config.json");
	json_object_object_foreach(hooks, kind, list)
	{
		if (!json_object_is_type(list, json_type_array))
			return cj_fail(err, 0, "%s hooks must be an array: fix config.json", kind);
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *h = json_object_array_get_idx(list, i);
			if (check_hook(h, kind, err) < 0 ||
			    hook_timeout(h, json_object_get_string(get(h, "path")), err) < 0)
				return -1;
		}
	}
	return 0;
}

/* One hook on the host; past its timeout it is killed, its session with
 * it, and fails, as the runtime spec says. */
static int run_hook(json_object *hook, int state_fd, struct cj_err *err)
{
	json_object *args = get(hook, "args"), *env = get(hook, "env");
	const char *path = json_object_get_string(get(hook, "path"));
	char *argv[64] = {0}, *envp[64] = {0};
	char step[CJ_SPAWN_STEP_MAX];
	int code = 0;
	int64_t timeout;

	if (!path)
		return cj_fail(err, 0, "a hook without a path");
	if ((timeout = hook_timeout(hook, path, err)) < 0)
		return -1;
	argv[0] = (char *)path;
	for (size_t i = 0; args && i < json_object_array_length(args) && i < 63; i++)
		argv[i] = (char *)json_object_get_string(json_object_array_get_idx(args, i));
	for (size_t i = 0; env && i < json_object_array_length(env) && i < 63; i++)
		envp[i] = (char *)json_object_get_string(json_object_array_get_idx(env, i));
	lseek(state_fd, 0, SEEK_SET);
	struct cj_spawn s = {.path = path,
	                     .argv = argv,
	                     .envp = envp,
	                     .stdin_fd = state_fd,
	                     .new_session = true, /* killed as one at the timeout */
	                     .timeout_ms = (unsigned)timeout * 1000u};
	if (cj_spawn_capture(s, 4096, NULL, &code, step, err) < 0 || code != 0)
		return cj_err_wrap(err, "hook %s", path);
	return 0;
}

/* The state the hooks read, in a memfd; -1 with err. */
static int state_fd(json_object *cfg, const char *id, const char *bundle, const char *status,
                    pid_t pid, struct cj_err *err)
{
	json_object *st = json_object_new_object();
	int fd;

	json_object_object_add(st, "ociVersion", json_object_new_string(RT_OCI_VERSION));
	json_object_object_add(st, "id", json_object_new_string(id));
	json_object_object_add(st, "status", json_object_new_string(status));
	if (pid > 0)
		json_object_object_add(st, "pid", json_object_new_int(pid));
	json_object_object_add(st, "bundle", json_object_new_string(bundle));
	if (get(cfg, "annotations"))
		json_object_object_add(st, "annotations", json_object_get(get(cfg, "annotations")));
	const char *text = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(text);
	/* sealed: a hook writing to its stdin cannot change the next one's */
	if ((fd = memfd_create("oci-state", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0 ||
	    write(fd, text, len) != (ssize_t)len ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		cj_fail(err, errno, "the state for the hooks");
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	json_object_put(st);
	return fd;
}

/* The hooks of kind in turn. warn: a failing one is a warning in the
 * log and the next one runs; else it fails them (-1, err). */
static int run_kind(json_object *cfg, const char *kind, const char *id, const char *bundle,
                    const char *status, pid_t pid, bool warn, struct cj_err *err)
{
	json_object *hooks = get(get(cfg, "hooks"), kind);
	int fd, r = 0;

	if (!hooks || !json_object_is_type(hooks, json_type_array) ||
	    json_object_array_length(hooks) == 0)
		return 0;
	if ((fd = state_fd(cfg, id, bundle, status, pid, err)) < 0) {
		if (warn)
			rt_log("warning", "%s hooks not run: %s", kind, err->msg);
		return -1;
	}
	for (size_t i = 0; (r == 0 || warn) && i < json_object_array_length(hooks); i++) {
		struct cj_err e = {0};
		if (run_hook(json_object_array_get_idx(hooks, i), fd, &e) == 0)
			continue;
		cj_err_wrap(&e, "%s", kind);
		if (warn)
			rt_log("warning", "%s (the container goes on)", e.msg);
		*err = e;
		r = -1;
	}
	close(fd);
	return r;
}

int rt_hooks(json_object *cfg, const char *kind, const char *id, const char *bundle,
             const char *status, pid_t pid, struct cj_err *err)
{
	return run_kind(cfg, kind, id, bundle, status, pid, false, err);
}

void rt_hooks_warn(json_object *cfg, const char *kind, const char *id, const char *bundle,
                   const char *status, pid_t pid)
{
	struct cj_err err = {0};

	run_kind(cfg, kind, id, bundle, status, pid, true, &err);
}

/* The exit status of child, killed past timeout_s (0: none): SIGTERM
 * first (exec passes it to the command in the guest), then SIGKILL. */
static int wait_child(pid_t child, int64_t timeout_s, bool *timed_out)
{
	struct timespec t0, now;
	int st, sig = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t w = waitpid(child, &st, timeout_s ? WNOHANG : 0);
		if (w == child)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (w < 0 && errno != EINTR)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= timeout_s * 1000 && sig == 0)
			kill(child, sig = SIGTERM);
		else if (ms >= timeout_s * 1000 + 2000 && sig == SIGTERM)
			kill(child, sig = SIGKILL);
		*timed_out = sig != 0;
		usleep(20 * 1000);
	}
}

/* One startContainer hook: `ctr-jailer exec -i [-e ENV]... RUN PATH ARGS...`
 * in a child whose stdin is the state, its stdout our stderr. */
static int guest_hook(json_object *hook, const char *run, int fd, struct cj_err *err)
{
	json_object *args = get(hook, "args"), *env = get(hook, "env");
	const char *path = json_object_get_string(get(hook, "path"));
	struct cj_strv v = {0};
	bool timed_out = false;
	int64_t timeout;
	pid_t child;

	if (!path)
		return cj_fail(err, 0, "a hook without a path");
	if ((timeout = hook_timeout(hook, path, err)) < 0)
		return -1;
	cj_strv_push(&v, "exec");
	cj_strv_push(&v, "-i");
	for (size_t i = 0; env && i < json_object_array_length(env); i++) {
		cj_strv_push(&v, "-e");
		cj_strv_push(&v, json_object_get_string(json_object_array_get_idx(env, i)));
	}
	cj_strv_push(&v, run);
	cj_strv_push(&v, path);
	for (size_t i = 1; args && i < json_object_array_length(args); i++)
		cj_strv_push(&v, json_object_get_string(json_object_array_get_idx(args, i)));
	lseek(fd, 0, SEEK_SET);
	if (!v.v || (child = fork()) < 0) {
		cj_strv_free(&v);
		return cj_fail(err, errno ? errno : ENOMEM, "hook %s", path);
	}
	if (child == 0) {
		dup2(fd, STDIN_FILENO);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		cli_exec_proc = NULL;
		_exit(cli_exec_verb.main(&cli_exec_verb, (int)v.n, v.v));
	}
	int code = wait_child(child, timeout, &timed_out);
	cj_strv_free(&v);
	if (timed_out)
		return cj_fail(err, 0, "hook %s (in the container): timed out after %llds", path,
		               (long long)timeout);
	if (code != 0)
		return cj_fail(err, 0, "hook %s (in the container) exited with status %d", path,
		               code);
	return 0;
}

int rt_hooks_in_guest(json_object *cfg, const char *id, const char *bundle, const char *run,
                      pid_t pid, struct cj_err *err)
{
	json_object *hooks = get(get(cfg, "hooks"), "startContainer");
	int fd, r = 0;

	if (!hooks || !json_object_is_type(hooks, json_type_array) ||
	    json_object_array_length(hooks) == 0)
		return 0;
	if ((fd = state_fd(cfg, id, bundle, "created", pid, err)) < 0)
		return -1;
	for (size_t i = 0; r == 0 && i < json_object_array_length(hooks); i++)
		r = guest_hook(json_object_array_get_idx(hooks, i), run, fd, err);
	close(fd);
	if (r < 0)
		return cj_err_wrap(err, "startContainer");
	return 0;
}
