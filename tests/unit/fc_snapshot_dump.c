/* SPDX-License-Identifier: Apache-2.0 */
/* Prints, one JSON object per line ({"method", "path", "body"}), the
 * Firecracker calls that take a boot snapshot and that restore one (two
 * drives, a TAP). The contract tests validate each body against
 * Firecracker's schema. Not a test by itself. */
#include "vmm/firecracker.h"

#include <stdio.h>

static int print(const struct cj_fc_call *c, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "method", json_object_new_string(c[i].method));
		json_object_object_add(o, "path", json_object_new_string(c[i].path));
		json_object_object_add(o, "body", json_object_get(c[i].body));
		r |= printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0;
		json_object_put(o);
	}
	return r;
}

int main(void)
{
	struct cj_vm_config cfg = {0};
	struct cj_fc_paths p = {0};
	struct cj_fc_call *c;
	struct cj_err err = {0};
	size_t n;
	int rc = 0;

	cfg.tap = "ctrj-tap1";
	cfg.drives[cfg.ndrives++] =
	    (struct cj_drive){.id = "base", .path = "base.img", .fd = -1, .read_only = true};
	cfg.drives[cfg.ndrives++] = (struct cj_drive){
	    .id = "control", .path = "run/control.img", .fd = -1, .read_only = false};
	p.drives[0] = "base.img";
	p.drives[1] = "run/control.img";
	if (cj_fc_snapshot_calls("run/vmstate", "run/memory", &c, &n, &err) < 0)
		return 1;
	rc |= print(c, n);
	cj_fc_calls_free(c, n);
	if (cj_fc_restore_calls(&cfg, &p, "snapshot/vmstate", "snapshot/memory", &c, &n, &err) < 0)
		return 1;
	rc |= print(c, n);
	cj_fc_calls_free(c, n);
	return rc ? 1 : 0;
}
