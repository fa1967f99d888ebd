/* SPDX-License-Identifier: Apache-2.0 */
/* create --bundle DIR [--pid-file F] [--console-socket S] ID: boot the
 * bundle's VM, its workload held until `start`. The pid written is the
 * run's supervisor: it lives as long as the container and exits with the
 * workload's status (the shim reaps it as the container's init). */
#include "runtime.h"

#include "../run.h"
#include "run/run.h"
#include "run/runs.h"
#include "spec/spec.h"
#include "util/strv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct create {
	const char *bundle, *pid_file, *console_socket;
};

static int o_bundle(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct create *)c)->bundle = v;
	return 0;
}

static int o_pid_file(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct create *)c)->pid_file = v;
	return 0;
}

static int o_console(void *c, const char *v, struct cj_err *err)
{
	(void)err;
	((struct create *)c)->console_socket = v;
	return 0;
}

static int o_accept(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)v, (void)err;
	return 0; /* a runc option with nothing to do here */
}

static const struct rt_opt create_opts[] = {
    {"bundle", 'b', "DIR", o_bundle, "the bundle (default: the current directory)"},
    {"pid-file", 0, "FILE", o_pid_file, "where to write the supervisor's pid"},
    {"console-socket", 0, "SOCKET", o_console, "send the terminal's master there"},
    {"no-pivot", 0, NULL, o_accept, "accepted (the guest has its own root)"},
    {"no-new-keyring", 0, NULL, o_accept, "accepted (the guest has its own keyrings)"},
    {"preserve-fds", 0, "N", NULL, NULL},
};

/* The spec of the run: config.json through `run`'s parsers, QEMU (the
 * agent and, later, virtiofs need it), the workload held. */
static int make_spec(const char *bundle, const char *id, struct cj_spec *spec, json_object **config,
                     struct cj_err *err)
{
	char **argv;
	int argc, r;

	if (rt_bundle_argv(bundle, id, &argv, &argc, config, err) < 0)
		return -1;
	r = cli_run_parse(spec, argc, argv, environ, NULL, NULL, err);
	struct cj_strv v = {argv, (size_t)argc};
	cj_strv_free(&v);
	if (r != 0) {
		json_object_put(*config);
		return -1;
	}
	if (spec->vmm == CJ_VMM_FIRECRACKER) {
		cj_spec_free(spec);
		json_object_put(*config);
		return cj_fail(err, 0,
		               "runtime mode needs QEMU (Firecracker has no virtiofs): unset "
		               "CTR_JAILER_VMM=firecracker or set it to qemu");
	}
	/* one container per process: the path lives as long as the spec */
	static char cgroup[PATH_MAX];
	if (rt_cgroup_path(*config, cgroup, sizeof cgroup, err) < 0) {
		cj_spec_free(spec);
		json_object_put(*config);
		return -1;
	}
	spec->jail.cgroup_path = cgroup[0] ? cgroup : NULL;
	spec->vmm = CJ_VMM_QEMU;
	spec->hold = true;
	spec->pids_limit = rt_pids_limit(*config);
	struct rt_etc_files ef;
	rt_etc_files(*config, &ef); /* bound from the shares bundle.c made */
	for (size_t i = 0; i < ef.nbinds; i++) {
		struct ctrj_bind_file *b = &spec->binds[spec->nbinds];
		if (!(b->src = strdup(ef.src[i])) || !(b->dst = strdup(ef.dst[i]))) {
			free(b->src);
			cj_spec_free(spec);
			json_object_put(*config);
			return cj_fail(err, ENOMEM, "config.json");
		}
		spec->nbinds++;
	}
	if (rt_etc_shares(&ef, spec, err) < 0) { /* those files alone */
		cj_spec_free(spec);
		json_object_put(*config);
		return -1;
	}
	json_object *proc = NULL;
	json_object_object_get_ex(*config, "process", &proc);
	if (rt_process_proc(proc, &spec->proc, err) < 0) {
		cj_spec_free(spec);
		json_object_put(*config);
		return -1;
	}
	return 0;
}

static int save_state(const char *id, const char *bundle, const char *run, pid_t pid,
                      json_object *config, struct cj_err *err)
{
	json_object *st = json_object_new_object(), *ann;
	char now[64];
	int r;

	cj_rfc3339_now(now, sizeof now);
	json_object_object_add(st, "id", json_object_new_string(id));
	json_object_object_add(st, "bundle", json_object_new_string(bundle));
	json_object_object_add(st, "run", json_object_new_string(run));
	json_object_object_add(st, "runs", json_object_new_string(rt_run_base()));
	json_object_object_add(st, "pid", json_object_new_int(pid));
	json_object_object_add(st, "created", json_object_new_string(now));
	json_object_object_add(st, "started", json_object_new_boolean(false));
	if (json_object_object_get_ex(config, "annotations", &ann))
		json_object_object_add(st, "annotations", json_object_get(ann));
	/* the later kinds run from here (start, delete), as created */
	if (json_object_object_get_ex(config, "hooks", &ann))
		json_object_object_add(st, "hooks", json_object_get(ann));
	r = rt_state_write(id, st, err);
	json_object_put(st);
	return r;
}

/* The run in its supervisor. Its notices until the VMM starts (the VMM
 * chosen, TCG...) are not the container's output: they go to the
 * container's boot.log under --root, not to the engine's stdio (then to
 * the run's supervisor.log), and so does the guest's console. The
 * workload's stdio is on the agent channel: with a terminal a pty in the
 * guest, the engine's pty its keystrokes and size; without one its stdout
 * and stderr apart, to the engine's stdout and stderr (the supervisor
 * keeps a copy of the latter), the engine's stdin its stdin. */
static int detached(const char *id, struct cj_spec *spec, bool terminal, char run[16], pid_t *pid,
                    struct cj_err *err)
{
	char path[PATH_MAX];
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3), fd, r;

	spec->engine_stdio = saved >= 0;
	spec->console_stdout = !spec->engine_stdio && terminal;
	spec->engine_err_fd = saved;
	spec->tty = terminal && spec->engine_stdio;
	spec->interactive = spec->engine_stdio; /* the engine's stdin: /dev/null without -i */
	snprintf(path, sizeof path, "%s/%s/boot.log", rt_g.root, id);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	r = cj_run_detached(spec, run, pid, err);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	return r;
}

/* A create that failed once its VM was up (a createContainer hook): the
 * VM killed, the run ended and removed, as delete does; failing that, the
 * supervisor killed and its run left to gc. */
static void undo_run(const char *run, pid_t pid)
{
	struct cj_err ignored = {0};
	const char *base = rt_run_base();

	if (cj_runs_forward(base, run, SIGKILL, &ignored) < 0 ||
	    cj_runs_wait(base, run, &ignored) < 0) {
		kill(pid, SIGKILL);
		return;
	}
	cj_runs_remove(base, run, &ignored);
}

static int create_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct create c = {.bundle = "."};
	struct cj_err err = {0};
	struct cj_spec spec;
	json_object *config = NULL;
	char bundle[PATH_MAX], run[16];
	pid_t pid = 0;
	int first, r = rt_parse(verb, &c, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	const char *id = argv[first];
	if (!realpath(c.bundle, bundle)) {
		cj_fail(&err, errno, "bundle %s", c.bundle);
		return rt_fail(&err);
	}
	if (rt_state_create_dir(id, &err) < 0)
		return rt_fail(&err);
	if (make_spec(bundle, id, &spec, &config, &err) < 0) {
		rt_state_remove(id);
		return rt_fail(&err);
	}
	if (rt_hooks_check(config, &err) < 0 || rt_network(config, id, bundle, &spec, &err) < 0)
		r = -1;
	if (r == 0 && c.console_socket && rt_console(c.console_socket, &err) < 0)
		r = -1;
	if (r == 0 && detached(id, &spec, c.console_socket != NULL, run, &pid, &err) != 0)
		r = -1;
	cj_spec_free(&spec);
	if (r == 0 && save_state(id, bundle, run, pid, config, &err) < 0)
		r = -1;
	/* the VM is there, its workload held: on the host, as the engine's */
	if (r == 0 && rt_hooks(config, "createContainer", id, bundle, "creating", pid, &err) < 0)
		r = -1;
	if (r == 0 && c.pid_file && rt_write_pid(c.pid_file, pid, &err) < 0)
		r = -1;
	json_object_put(config);
	if (r < 0 && pid > 0)
		undo_run(run, pid);
	if (r < 0)
		rt_state_remove(id);
	return r < 0 ? rt_fail(&err) : 0;
}

const struct rt_verb rt_create_verb = {
    .name = "create",
    .usage = "create [--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] ID",
    .opts = create_opts,
    .nopts = sizeof create_opts / sizeof *create_opts,
    .main = create_main,
};
