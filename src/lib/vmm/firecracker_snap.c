/* SPDX-License-Identifier: Apache-2.0 */
/* Firecracker's boot-snapshot calls (firecracker.h): built here, pure, so
 * that the contract tests check them against Firecracker's schema. */
#include "firecracker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"k1": "v1", "k2": "v2"} (k2 NULL: one pair) */
static json_object *pairs(const char *k1, const char *v1, const char *k2, const char *v2)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, k1, json_object_new_string(v1));
	if (k2)
		json_object_object_add(o, k2, json_object_new_string(v2));
	return o;
}

static json_object *load_body(const char *state, const char *mem, const char *tap)
{
	json_object *o = pairs("snapshot_path", state, NULL, NULL);
	json_object *overrides = json_object_new_array();

	if (!o || !overrides) {
		json_object_put(o);
		json_object_put(overrides);
		return NULL;
	}
	/* File: Firecracker maps the memory file MAP_PRIVATE, so the guest's
	 * writes never reach the snapshot */
	json_object_object_add(o, "mem_backend",
	                       pairs("backend_type", "File", "backend_path", mem));
	/* paused: the drives are re-pointed before the guest runs */
	json_object_object_add(o, "resume_vm", json_object_new_boolean(0));
	if (tap)
		json_object_array_add(overrides, pairs("iface_id", "eth0", "host_dev_name", tap));
	if (tap)
		json_object_object_add(o, "network_overrides", overrides);
	else
		json_object_put(overrides);
	return o;
}

/* One call on path, or path/id when id is set. */
static int push(struct cj_fc_call *c, size_t *n, const char *method, json_object *body,
                const char *path, const char *id)
{
	if (!body)
		return -1;
	c[*n].method = method;
	snprintf(c[*n].path, sizeof c[*n].path, "%s%s%s", path, id ? "/" : "", id ? id : "");
	c[(*n)++].body = body;
	return 0;
}

int cj_fc_snapshot_calls(const char *state, const char *mem, struct cj_fc_call **out, size_t *n,
                         struct cj_err *err)
{
	struct cj_fc_call *c = calloc(2, sizeof *c);
	int r = 0;

	*n = 0;
	*out = c;
	if (!c)
		return cj_fail(err, ENOMEM, "Firecracker snapshot");
	r |= push(c, n, "PATCH", pairs("state", "Paused", NULL, NULL), "/vm", NULL);
	r |= push(c, n, "PUT", pairs("snapshot_path", state, "mem_file_path", mem),
	          "/snapshot/create", NULL);
	if (r == 0)
		json_object_object_add(c[1].body, "snapshot_type", json_object_new_string("Full"));
	return r ? cj_fail(err, ENOMEM, "Firecracker snapshot") : 0;
}

int cj_fc_restore_calls(const struct cj_vm_config *cfg, const struct cj_fc_paths *paths,
                        const char *state, const char *mem, struct cj_fc_call **out, size_t *n,
                        struct cj_err *err)
{
	struct cj_fc_call *c = calloc(cfg->ndrives + 2, sizeof *c);
	int r = 0;

	*n = 0;
	*out = c;
	if (!c)
		return cj_fail(err, ENOMEM, "Firecracker restore");
	r |= push(c, n, "PUT", load_body(state, mem, cfg->tap), "/snapshot/load", NULL);
	for (size_t i = 0; i < cfg->ndrives && r == 0; i++)
		r |= push(c, n, "PATCH",
		          pairs("drive_id", cfg->drives[i].id, "path_on_host", paths->drives[i]),
		          "/drives", cfg->drives[i].id);
	if (r == 0)
		r |= push(c, n, "PATCH", pairs("state", "Resumed", NULL, NULL), "/vm", NULL);
	return r ? cj_fail(err, ENOMEM, "Firecracker restore") : 0;
}

void cj_fc_calls_free(struct cj_fc_call *calls, size_t n)
{
	for (size_t i = 0; calls && i < n; i++)
		json_object_put(calls[i].body);
	free(calls);
}
