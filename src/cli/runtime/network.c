/* SPDX-License-Identifier: Apache-2.0 */
/* The container's network, before its VM boots: the network namespace of
 * config.json's linux.namespaces (joined by path, or made anew as runc
 * does for an engine that fills it from a hook, as Docker's
 * libnetwork-setkey does), the prestart and createRuntime hooks run with
 * the state on stdin, then the namespace's interface handed to the VM
 * (net/adopt.c) and the engine's resolv.conf as the guest's resolvers. */
#include "runtime.h"

#include "net/net.h"
#include "spec/spec.h"
#include "util/spawn.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* 1: the container has a network namespace (now ours), 0: it shares the
 * engine's (the VM then gets no network). */
static int enter_netns(json_object *cfg, struct cj_err *err)
{
	json_object *nss = get(get(cfg, "linux"), "namespaces");

	for (size_t i = 0; nss && i < json_object_array_length(nss); i++) {
		json_object *ns = json_object_array_get_idx(nss, i);
		const char *type = json_object_get_string(get(ns, "type"));
		const char *path = json_object_get_string(get(ns, "path"));
		if (!type || strcmp(type, "network") != 0)
			continue;
		if (path && *path) {
			cj_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
				return cj_fail(err, errno, "join the network namespace %s", path);
			return 1;
		}
		if (unshare(CLONE_NEWNET) < 0)
			return cj_fail(err, errno, "create the container's network namespace");
		int lo = cj_nl_link_index("lo");
		if (lo < 0 || cj_nl_link_up(lo, err) < 0)
			return cj_err_wrap(err, "bring lo up");
		return 1;
	}
	return 0;
}

/* One hook, the state on its stdin; past its timeout (seconds, above 0)
 * it is killed, its session with it, and fails the step, as the runtime
 * spec says. */
static int run_hook(json_object *hook, int state_fd, struct cj_err *err)
{
	json_object *args = get(hook, "args"), *env = get(hook, "env"), *t = get(hook, "timeout");
	const char *path = json_object_get_string(get(hook, "path"));
	char *argv[64] = {0}, *envp[64] = {0};
	char step[CJ_SPAWN_STEP_MAX];
	int code = 0;
	int64_t timeout = t ? json_object_get_int64(t) : 0;

	if (!path)
		return cj_fail(err, 0, "a hook without a path");
	if (t && (!json_object_is_type(t, json_type_int) || timeout <= 0 || timeout > 86400))
		return cj_fail(err, 0, "hook %s: timeout must be a number of seconds above 0",
		               path);
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

/* The hooks of kind, each with the state (its pid: this process, in the
 * container's namespaces) on stdin. */
static int run_hooks(json_object *cfg, const char *kind, const char *id, const char *bundle,
                     struct cj_err *err)
{
	json_object *hooks = get(get(cfg, "hooks"), kind), *st;
	int fd, r = 0;

	if (!hooks || json_object_array_length(hooks) == 0)
		return 0;
	st = json_object_new_object();
	json_object_object_add(st, "ociVersion", json_object_new_string(RT_OCI_VERSION));
	json_object_object_add(st, "id", json_object_new_string(id));
	json_object_object_add(st, "status", json_object_new_string("creating"));
	json_object_object_add(st, "pid", json_object_new_int(getpid()));
	json_object_object_add(st, "bundle", json_object_new_string(bundle));
	if (get(cfg, "annotations"))
		json_object_object_add(st, "annotations", json_object_get(get(cfg, "annotations")));
	const char *text = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN);
	if ((fd = memfd_create("oci-state", MFD_CLOEXEC)) < 0 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		r = cj_fail(err, errno, "the state for the hooks");
	for (size_t i = 0; r == 0 && i < json_object_array_length(hooks); i++)
		r = run_hook(json_object_array_get_idx(hooks, i), fd, err);
	if (fd >= 0)
		close(fd);
	json_object_put(st);
	return r;
}

/* The engine's resolvers: nameserver lines of the file bound at
 * /etc/resolv.conf. */
static void resolvers(json_object *cfg, struct cj_net_spec *net)
{
	json_object *mounts = get(cfg, "mounts");
	char line[256];

	for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		const char *dest = json_object_get_string(get(m, "destination"));
		const char *src = json_object_get_string(get(m, "source"));
		FILE *f;
		if (!dest || !src || strcmp(dest, "/etc/resolv.conf") != 0 ||
		    !(f = fopen(src, "re")))
			continue;
		while (net->ndns < CJ_MAX_DNS && fgets(line, sizeof line, f)) {
			char addr[64];
			uint32_t a;
			if (sscanf(line, "nameserver %63s", addr) == 1 &&
			    inet_pton(AF_INET, addr, &a) == 1)
				net->dns[net->ndns++] = a;
		}
		fclose(f);
	}
}

int rt_network(json_object *cfg, const char *id, const char *bundle, struct cj_spec *spec,
               struct cj_err *err)
{
	struct if_nameindex *ifs;
	int r = enter_netns(cfg, err);

	if (r < 0 || run_hooks(cfg, "prestart", id, bundle, err) < 0 ||
	    run_hooks(cfg, "createRuntime", id, bundle, err) < 0)
		return -1;
	if (r == 0 || !(ifs = if_nameindex()))
		return 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		if (strcmp(i->if_name, "lo") != 0) {
			spec->net.mode = CJ_NET_ADOPT;
			snprintf(spec->net.adopt_iface, sizeof spec->net.adopt_iface, "%s",
			         i->if_name);
			break;
		}
	if_freenameindex(ifs);
	if (spec->net.mode == CJ_NET_ADOPT && spec->net.ndns == 0)
		resolvers(cfg, &spec->net);
	return 0;
}
