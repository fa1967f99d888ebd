/* SPDX-License-Identifier: Apache-2.0 */
/* The bundle's config.json, mapped onto `ctr-jailer run`'s command line,
 * so that every setting goes through run's own parsers and checks. What a
 * microVM cannot honour is named in one warning per container. */
#include "runtime.h"

#include "util/strv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct map {
	struct cj_strv argv;
	char unmapped[1024]; /* "capabilities, rlimits, ..." */
	int fail;
};

static void push(struct map *m, const char *s)
{
	if (cj_strv_push(&m->argv, s) < 0)
		m->fail = ENOMEM;
}

static void push2(struct map *m, const char *opt, const char *value)
{
	push(m, opt);
	push(m, value);
}

static void unmapped(struct map *m, const char *what)
{
	size_t n = strlen(m->unmapped);

	if (strstr(m->unmapped, what))
		return;
	snprintf(m->unmapped + n, sizeof m->unmapped - n, "%s%s", n ? ", " : "", what);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The guest's root: root.path as a root filesystem directory, made into
 * the VM's base image (image/tree.c). The one place that chooses: a
 * virtiofs share replaces it. */
static int map_root(struct map *m, const char *bundle, json_object *cfg, struct cj_err *err)
{
	json_object *root = get(cfg, "root");
	const char *path = get_str(root, "path");
	char buf[PATH_MAX];

	if (!path)
		return cj_fail(err, 0, "%s/config.json has no root.path", bundle);
	if (path[0] != '/') {
		snprintf(buf, sizeof buf, "%s/%s", bundle, path);
		path = buf;
	}
	if (json_object_get_boolean(get(root, "readonly")))
		push(m, "--read-only");
	push2(m, "--rootfs", path);
	return 0;
}

static void map_user(struct map *m, json_object *proc)
{
	json_object *user = get(proc, "user");
	char buf[64];

	if (!user)
		return;
	snprintf(buf, sizeof buf, "%u:%u", (unsigned)json_object_get_int64(get(user, "uid")),
	         (unsigned)json_object_get_int64(get(user, "gid")));
	push2(m, "--user", buf);
}

/* process: the command, its environment, working directory, user. */
static int map_process(struct map *m, json_object *cfg, json_object **args, struct cj_err *err)
{
	json_object *proc = get(cfg, "process"), *env = get(proc, "env");
	/* capabilities, rlimits, noNewPrivileges, oomScoreAdj: process.c */
	static const char *const unmappable[] = {"apparmorProfile", "selinuxLabel"};

	*args = get(proc, "args");
	if (!*args || !json_object_is_type(*args, json_type_array) ||
	    json_object_array_length(*args) == 0)
		return cj_fail(err, 0, "config.json: process.args is empty");
	for (size_t i = 0; env && i < json_object_array_length(env); i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));
		if (e && strchr(e, '=') && e[0] != '=')
			push2(m, "--env", e);
	}
	if (json_object_get_boolean(get(proc, "terminal"))) {
		push(m, "--tty"); /* the console socket's pty: the guest's terminal */
		push(m, "--interactive");
	}
	if (get_str(proc, "cwd"))
		push2(m, "--workdir", get_str(proc, "cwd"));
	map_user(m, proc);
	for (size_t i = 0; i < sizeof unmappable / sizeof *unmappable; i++)
		if (get(proc, unmappable[i]))
			unmapped(m, unmappable[i]);
	return 0;
}

static bool is_api_fs(const char *dest)
{
	static const char *const own[] = {"/proc",          "/sys",        "/dev",
	                                  "/dev/pts",       "/dev/shm",    "/dev/mqueue",
	                                  "/sys/fs/cgroup", "/run/secrets"};

	for (size_t i = 0; i < sizeof own / sizeof *own; i++)
		if (strcmp(dest, own[i]) == 0)
			return true;
	return false;
}

/* A tmpfs mount's size= and mode= as --tmpfs takes them. */
static void map_tmpfs(struct map *m, const char *dest, json_object *opts)
{
	char arg[400];
	size_t n = (size_t)snprintf(arg, sizeof arg, "%s", dest);
	const char *sep = ":";

	for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
		if (o &&
		    (strncmp(o, "size=", 5) == 0 || strncmp(o, "mode=", 5) == 0 ||
		     strcmp(o, "exec") == 0) &&
		    n < sizeof arg) {
			n += (size_t)snprintf(arg + n, sizeof arg - n, "%s%s", sep, o);
			sep = ",";
		}
	}
	push2(m, "--tmpfs", arg);
}

static bool has_opt(json_object *opts, const char *want)
{
	for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
		if (o && strcmp(o, want) == 0)
			return true;
	}
	return false;
}

/* mounts: the init's own filesystems need nothing; tmpfs mounts become
 * the guest's tmpfs, bind mounts of host directories virtiofs shares, the
 * engine's /etc/hosts, /etc/hostname, /etc/resolv.conf bound files from
 * a hidden share; the rest (other bound files) is named. */
static void map_mounts(struct map *m, json_object *cfg)
{
	json_object *mounts = get(cfg, "mounts");
	struct rt_etc_files ef;

	rt_etc_files(cfg, &ef); /* their directories shared, hidden (etcfiles.c) */
	for (size_t i = 0; i < ef.ndirs; i++) {
		char *vol = NULL;
		if (asprintf(&vol, "%s:%s:ro", ef.dirs[i], ef.guest_dirs[i]) < 0)
			m->fail = ENOMEM;
		else
			push2(m, "--volume", vol);
		free(vol);
	}
	for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
		json_object *mt = json_object_array_get_idx(mounts, i), *opts = get(mt, "options");
		const char *dest = get_str(mt, "destination"), *type = get_str(mt, "type");
		const char *src = get_str(mt, "source");
		char what[300];
		struct stat st;
		if (!dest || is_api_fs(dest) || rt_etc_file(dest, src))
			continue;
		if (type && strcmp(type, "tmpfs") == 0) {
			map_tmpfs(m, dest, opts);
			continue;
		}
		if (src && src[0] == '/' &&
		    (has_opt(opts, "bind") || has_opt(opts, "rbind") ||
		     (type && strcmp(type, "bind") == 0)) &&
		    stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
			/* whole, however long: a cut value could lose its ":ro" */
			char *vol = NULL;
			if (asprintf(&vol, "%s:%s%s", src, dest, has_opt(opts, "ro") ? ":ro" : "") <
			    0)
				m->fail = ENOMEM;
			else
				push2(m, "--volume", vol);
			free(vol);
			continue;
		}
		snprintf(what, sizeof what, "mount %s", dest);
		unmapped(m, what);
	}
}

/* linux: memory limit -> guest memory (the VMM's cgroup: that plus the
 * margin), CPU quota -> vCPUs (rounded up) and the VMM's cgroup's quota;
 * the network namespace is the engine's; the rest is named. */
static void map_linux(struct map *m, json_object *cfg)
{
	json_object *lx = get(cfg, "linux"), *res = get(lx, "resources");
	json_object *mem = get(res, "memory"), *cpu = get(res, "cpu");
	int64_t limit = json_object_get_int64(get(mem, "limit"));
	int64_t quota = json_object_get_int64(get(cpu, "quota"));
	int64_t period = json_object_get_int64(get(cpu, "period"));
	char buf[32];

	if (limit > 0) {
		snprintf(buf, sizeof buf, "%lld", (long long)(limit >> 20));
		push2(m, "--memory", buf);
	}
	if (quota > 0 && period > 0) {
		snprintf(buf, sizeof buf, "%lld", (long long)((quota + period - 1) / period));
		push2(m, "--cpus", buf);
		/* and the VMM's cgroup gets the quota itself (100 ms periods) */
		double cpus = (double)quota / (double)period;
		snprintf(buf, sizeof buf, "%.4f", cpus < 0.01 ? 0.01 : cpus);
		push2(m, "--cpu-quota", buf);
	}
	if (get(lx, "seccomp"))
		unmapped(m, "seccomp (the VM is the boundary)");
	if (get(lx, "devices") && json_object_array_length(get(lx, "devices")))
		unmapped(m, "devices");
	if (json_object_is_type(get(lx, "sysctl"), json_type_object) &&
	    json_object_object_length(get(lx, "sysctl")))
		unmapped(m, "sysctl");
	push2(m, "--network", "none"); /* the engine's interface, if any: network.c */
	json_object *hooks = get(cfg, "hooks");
	if (!hooks || !json_object_is_type(hooks, json_type_object))
		return;
	json_object_object_foreach(hooks, kind, list)
	{
		char what[64];
		static const char *const run_here[] = {"prestart",        "createRuntime",
		                                       "createContainer", "startContainer",
		                                       "poststart",       "poststop"}; /* hooks.c */
		bool known = false;
		for (size_t i = 0; i < sizeof run_here / sizeof *run_here; i++)
			known = known || strcmp(kind, run_here[i]) == 0;
		if (known || !json_object_is_type(list, json_type_array) || /* hooks.c */
		    !json_object_array_length(list))
			continue;
		snprintf(what, sizeof what, "%s hooks", kind);
		unmapped(m, what);
	}
}

int rt_bundle_argv(const char *bundle, const char *id, char ***argv, int *argc,
                   json_object **config, struct cj_err *err)
{
	struct map m = {0};
	char path[PATH_MAX];
	json_object *cfg, *args;

	snprintf(path, sizeof path, "%s/config.json", bundle);
	if (!(cfg = json_object_from_file(path)) || !json_object_is_type(cfg, json_type_object)) {
		json_object_put(cfg);
		return cj_fail(err, 0, "cannot read %s: %s", path, json_util_get_last_err());
	}
	push(&m, "run");
	push(&m, "--detach");
	push(&m, "--no-env-passthrough");
	push(&m, "--quiet");
	push2(&m, "--name", id);
	if (get_str(cfg, "hostname"))
		push2(&m, "--hostname", get_str(cfg, "hostname"));
	if (map_root(&m, bundle, cfg, err) < 0 || map_process(&m, cfg, &args, err) < 0) {
		cj_strv_free(&m.argv);
		json_object_put(cfg);
		return -1;
	}
	map_mounts(&m, cfg);
	map_linux(&m, cfg);
	push(&m, "--");
	for (size_t i = 0; i < json_object_array_length(args); i++)
		push(&m, json_object_get_string(json_object_array_get_idx(args, i)));
	if (m.fail) {
		cj_strv_free(&m.argv);
		json_object_put(cfg);
		return cj_fail(err, ENOMEM, "config.json");
	}
	if (m.unmapped[0])
		rt_log("warning", "container %s: not applied in the microVM: %s", id, m.unmapped);
	*argv = m.argv.v;
	*argc = (int)m.argv.n;
	*config = cfg;
	return 0;
}
