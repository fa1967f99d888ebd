/* SPDX-License-Identifier: Apache-2.0 */
/* The container's network, before its VM boots: the network namespace of
 * config.json's linux.namespaces (joined by path, or made anew as runc
 * does for an engine that fills it from a hook, as Docker's
 * libnetwork-setkey does), the prestart and createRuntime hooks run
 * (hooks.c), then the namespace's interface handed to the VM
 * (net/adopt.c) and the engine's resolv.conf as the guest's resolvers. */
#include "runtime.h"

#include "net/net.h"
#include "spec/spec.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

	/* the state's pid: this process, in the container's namespaces */
	if (r < 0 || rt_hooks(cfg, "prestart", id, bundle, "creating", getpid(), err) < 0 ||
	    rt_hooks(cfg, "createRuntime", id, bundle, "creating", getpid(), err) < 0)
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
