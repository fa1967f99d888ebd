/* SPDX-License-Identifier: Apache-2.0 */
/* delete [--force] ID: the container's run record and state removed; a
 * container that never started (or, with --force, a running one) is
 * killed first. */
#include "runtime.h"

#include "run/runs.h"
#include "util/undo.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

struct del {
	bool force;
};

static int o_force(void *c, const char *v, struct cj_err *err)
{
	(void)v, (void)err;
	((struct del *)c)->force = true;
	return 0;
}

static const struct rt_opt delete_opts[] = {
    {"force", 'f', NULL, o_force, "kill a running container first"},
};

static int remove_run(json_object *st, bool force, struct cj_err *err)
{
	const char *base = rt_run_base(), *run = rt_state_str(st, "run");
	const char *status;
	pid_t pid;

	if (!run)
		return 0;
	status = rt_status(st, &pid);
	if (strcmp(status, "running") == 0 && !force)
		return cj_fail(err, 0, "cannot delete container that is not stopped: %s", status);
	if (strcmp(status, "stopped") != 0) {
		struct cj_err ignored = {0};
		cj_runs_forward(base, run, SIGKILL, &ignored); /* the VM ends at once */
		if (cj_runs_wait(base, run, err) < 0)
			return -1;
	}
	struct cj_err rerr = {0};
	char id[16];
	if (cj_runs_find(base, run, id, &rerr) == 0 && cj_runs_remove(base, run, err) < 0)
		return -1;
	return 0;
}

/* A create that ended (killed by its engine) before it wrote the state:
 * its run, named after the container, may live on, its VM held. Found by
 * that exact name (never an id or a prefix), stopped and removed. */
static int remove_orphan(const char *cid, struct cj_err *err)
{
	const char *base = rt_run_base();
	struct cj_err ignored = {0};
	json_object *rec;
	char run[16];
	bool named;

	if (cj_runs_find(base, cid, run, &ignored) < 0 ||
	    !(rec = cj_runs_read(base, run, &ignored)))
		return 0;
	named = cj_undo_str(rec, "name") && strcmp(cj_undo_str(rec, "name"), cid) == 0;
	json_object_put(rec);
	if (!named)
		return 0;
	json_object *st = json_object_new_object();
	json_object_object_add(st, "run", json_object_new_string(run));
	int r = remove_run(st, true, err);
	json_object_put(st);
	return r;
}

static int delete_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct del d = {0};
	struct cj_err err = {0};
	json_object *st;
	int first, r = rt_parse(verb, &d, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	if (!(st = rt_state_read(argv[first], &err))) {
		if (!d.force)
			return rt_fail(&err);
		if (remove_orphan(argv[first], &err) < 0)
			return rt_fail(&err);
		rt_state_remove(argv[first]); /* what the create left */
		return 0;
	}
	r = remove_run(st, d.force, &err);
	if (r == 0)
		rt_state_remove(argv[first]);
	if (r == 0 && rt_state_str(st, "bundle")) /* on the host, once it is gone */
		rt_hooks_warn(st, "poststop", argv[first], rt_state_str(st, "bundle"), "stopped",
		              0);
	json_object_put(st);
	return r < 0 ? rt_fail(&err) : 0;
}

const struct rt_verb rt_delete_verb = {
    .name = "delete",
    .usage = "delete [--force] ID",
    .opts = delete_opts,
    .nopts = sizeof delete_opts / sizeof *delete_opts,
    .main = delete_main,
};
