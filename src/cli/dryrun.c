/* SPDX-License-Identifier: Apache-2.0 */
/* run --dry-run: the resolved spec as JSON. Secret values never appear. */
#include "run.h"

#include "util/sanitize.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL; /* json-c writes NULL as null */
}

static json_object *strv(const struct cj_strv *sv)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

static void add(json_object *o, const char *key, json_object *v)
{
	json_object_object_add(o, key, v);
}

static json_object *host_dirs_json(const struct cj_spec *s)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < s->nshares; i++) {
		json_object *v = json_object_new_object();
		add(v, "source", str_or_null(s->shares[i].source));
		add(v, "guest_path", str_or_null(s->shares[i].guest_path));
		add(v, "read_only", json_object_new_boolean(s->shares[i].read_only));
		add(v, "create", json_object_new_boolean(s->shares[i].create));
		json_object_array_add(a, v);
	}
	return a;
}

static json_object *tmpfs_json(const struct cj_spec *s)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < s->ntmpfs; i++) {
		json_object *v = json_object_new_object();
		add(v, "path", str_or_null(s->tmpfs[i].path));
		add(v, "size", json_object_new_int64((int64_t)s->tmpfs[i].size));
		add(v, "mode", json_object_new_int((int)s->tmpfs[i].mode));
		add(v, "flags", json_object_new_int((int)s->tmpfs[i].flags));
		json_object_array_add(a, v);
	}
	return a;
}

static json_object *storage_json(const struct cj_spec *s)
{
	json_object *o = json_object_new_object(), *vols = json_object_new_array();

	for (size_t i = 0; i < s->nvolumes; i++) {
		json_object *v = json_object_new_object();
		add(v, "source", str_or_null(s->volumes[i].source));
		add(v, "guest_path", str_or_null(s->volumes[i].guest_path));
		add(v, "read_only", json_object_new_boolean(s->volumes[i].read_only));
		add(v, "size", json_object_new_int64((int64_t)s->volumes[i].size));
		json_object_array_add(vols, v);
	}
	add(o, "volumes", vols);
	add(o, "host_dirs", host_dirs_json(s));
	add(o, "tmpfs", tmpfs_json(s));
	add(o, "read_only", json_object_new_boolean(s->read_only));
	add(o, "volumes_dir", str_or_null(s->volumes_dir));
	add(o, "volume_size", json_object_new_int64((int64_t)s->volume_size));
	add(o, "data_dir", str_or_null(s->data_dir));
	add(o, "data_mount", str_or_null(s->data_mount));
	add(o, "data_size", json_object_new_int64((int64_t)s->datafs_size));
	return o;
}

static const char *firewall_name(enum cj_firewall fw)
{
	switch (fw) {
	case CJ_FW_NFT:
		return "nft";
	case CJ_FW_IPTABLES_NFT:
		return "iptables";
	case CJ_FW_IPTABLES_LEGACY:
		return "iptables-legacy";
	case CJ_FW_NONE:
		return "none";
	default:
		return "auto";
	}
}

static json_object *net_json(const struct cj_net_spec *n)
{
	json_object *o = json_object_new_object();

	add(o, "mode", json_object_new_string(n->mode == CJ_NET_NONE ? "none" : "tap"));
	add(o, "tap_ip", str_or_null(n->tap_ip));
	add(o, "host_iface", str_or_null(n->host_iface));
	add(o, "published_ports", json_object_new_int((int)n->nports));
	add(o, "dns_servers", json_object_new_int((int)n->ndns));
	add(o, "firewall", json_object_new_string(firewall_name(n->firewall)));
	add(o, "egress", json_object_new_string(n->egress == CJ_EGRESS_DENY ? "deny" : "allow"));
	add(o, "allow_egress", json_object_new_int((int)n->nallow_egress));
	add(o, "allow_link_local", json_object_new_boolean(n->allow_link_local));
	return o;
}

static json_object *vmm_json(const struct cj_spec *s)
{
	static const char *const vmm[] = {"auto", "qemu", "firecracker"};
	static const char *const accel[] = {"auto", "kvm", "tcg"};
	json_object *o = json_object_new_object();

	add(o, "vmm", json_object_new_string(vmm[s->vmm]));
	add(o, "accel", json_object_new_string(accel[s->accel]));
	add(o, "qemu", str_or_null(s->qemu_bin));
	add(o, "firecracker", str_or_null(s->firecracker_bin));
	add(o, "jailer", str_or_null(s->jailer_bin));
	add(o, "chroot_base", str_or_null(s->chroot_base));
	add(o, "jail", json_object_new_boolean(!s->jail.disabled));
	add(o, "jail_user", str_or_null(s->jail.user));
	if (s->jail.uid_count) {
		char range[32];
		snprintf(range, sizeof range, "%u:%u", s->jail.uid_start, s->jail.uid_count);
		add(o, "jail_uid_range", json_object_new_string(range));
	} else {
		add(o, "jail_uid_range", NULL);
	}
	add(o, "cpu_quota", json_object_new_double(s->jail.cpu_quota));
	add(o, "memory_limit", json_object_new_int64((int64_t)s->jail.memory_limit));
	add(o, "pids_limit", json_object_new_int64((int64_t)s->jail.pids_limit));
	return o;
}

static json_object *command_json(const struct cj_spec *s)
{
	json_object *o = json_object_new_object(), *secrets = json_object_new_array();

	add(o, "argv", strv(&s->argv));
	add(o, "entrypoint", s->has_entrypoint ? str_or_null(s->entrypoint) : NULL);
	add(o, "env", strv(&s->env));
	add(o, "env_files", strv(&s->env_files));
	add(o, "env_passthrough", json_object_new_boolean(cj_spec_passes_env(s)));
	add(o, "workdir", str_or_null(s->workdir));
	add(o, "user", str_or_null(s->user));
	add(o, "hostname", str_or_null(s->hostname));
	for (size_t i = 0; i < s->nsecrets; i++)
		json_object_array_add(secrets, json_object_new_string(s->secrets[i].name));
	add(o, "secrets", secrets);
	return o;
}

/* The health check with docker's defaults filled in; null without one. */
static json_object *health_json(const struct cj_spec *s)
{
	struct cj_health_spec h = s->health;
	json_object *o;

	if (!cj_health_defaults(&h))
		return NULL;
	o = json_object_new_object();
	add(o, "test", strv(&h.test));
	add(o, "interval_ms", json_object_new_int64((int64_t)h.interval_ms));
	add(o, "timeout_ms", json_object_new_int64((int64_t)h.timeout_ms));
	add(o, "start_period_ms", json_object_new_int64((int64_t)h.start_period_ms));
	add(o, "retries", json_object_new_int((int)h.retries));
	return o;
}

/* The registry settings (the credentials only as whether they were given). */
static json_object *pull_json(const struct cj_pull_settings *p)
{
	static const char *const policies[] = {"missing", "always", "never"};
	json_object *o = json_object_new_object();

	add(o, "policy", json_object_new_string(policies[p->policy]));
	add(o, "platform", str_or_null(p->platform));
	add(o, "creds", json_object_new_boolean(p->creds != NULL));
	add(o, "cert_dir", str_or_null(p->cert_dir));
	add(o, "insecure_registries", str_or_null(p->insecure));
	return o;
}

char *cli_spec_json(const struct cj_spec *s)
{
	json_object *o = json_object_new_object();
	char *out;

	add(o, "rootfs", s->image ? NULL : str_or_null(s->rootfs));
	add(o, "image", str_or_null(s->image));
	add(o, "max_image_size", json_object_new_int64((int64_t)s->max_image_size));
	add(o, "pull", pull_json(&s->pull));
	add(o, "cache_max", json_object_new_int64((int64_t)s->cache_max));
	add(o, "command", command_json(s));
	add(o, "kernel", str_or_null(s->kernel));
	add(o, "modules", str_or_null(s->modules_dir));
	add(o, "cpus", json_object_new_int((int)s->cpus));
	add(o, "memory_mib", json_object_new_int64((int64_t)s->memory_mib));
	add(o, "rootfs_size", json_object_new_int64((int64_t)s->rootfs_size));
	add(o, "boot_args", str_or_null(s->boot_args));
	add(o, "extra_boot_args", str_or_null(s->extra_boot_args));
	add(o, "stop_timeout", json_object_new_int((int)s->stop_timeout_s));
	add(o, "health", health_json(s));
	add(o, "storage", storage_json(s));
	add(o, "network", net_json(&s->net));
	add(o, "vmm", vmm_json(s));
	add(o, "cache_dir", str_or_null(s->cache_dir));
	add(o, "run_dir", str_or_null(s->run_base));
	add(o, "timings", json_object_new_boolean(s->timings));
	/* json-c leaves DEL, C1 controls and invalid UTF-8 raw in strings */
	out = cj_json_terminal_safe(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}
