/* SPDX-License-Identifier: Apache-2.0 */
/* Prints, one JSON object per line ({"path": ..., "body": ...}), the
 * Firecracker configuration calls for a VM with every optional part set
 * (a TAP with its guest MAC, the agent's vsock), then the two actions. The
 * contract tests validate each body against Firecracker's schema. Not a
 * test by itself. */
#include "vmm/firecracker.h"

#include <stdio.h>
#include <string.h>

static int print(const char *path, json_object *body)
{
	json_object *o = json_object_new_object();
	int r;

	if (!o || !body)
		return -1;
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "body", json_object_get(body));
	r = printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0 ? -1 : 0;
	json_object_put(o);
	return r;
}

int main(void)
{
	struct cj_vm_config cfg = {0};
	struct cj_fc_paths p = {0};
	struct cj_fc_request *r;
	struct cj_err err = {0};
	json_object *a;
	size_t n;
	int rc = 0;

	cfg.kernel = "vmlinux";
	cfg.initramfs = "initrd.cpio";
	snprintf(cfg.cmdline, sizeof cfg.cmdline, "console=ttyS0 reboot=k panic=1 pci=off");
	cfg.cpus = 2;
	cfg.memory_mib = 512;
	cfg.id = "0123456789ab";
	cfg.tap = "ctrj-tap0";
	memcpy(cfg.mac, (unsigned char[]){0x06, 0x00, 0x0a, 0x00, 0x00, 0x02}, 6);
	cfg.drives[cfg.ndrives++] =
	    (struct cj_drive){.id = "base", .path = "base.img", .fd = -1, .read_only = true};
	cfg.drives[cfg.ndrives++] = (struct cj_drive){
	    .id = "control", .path = "run/control.img", .fd = -1, .read_only = false};
	p.kernel = "vmlinux";
	p.initrd = "initrd.cpio";
	p.drives[0] = "base.img";
	p.drives[1] = "run/control.img";
	p.log = "run/log.fifo";
	p.metrics = "run/metrics.fifo";
	p.vsock = "run/agent.vsock";
	if (cj_fc_plan(&cfg, &p, &r, &n, &err) < 0) {
		fprintf(stderr, "fc_plan_dump: %s\n", err.msg);
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		rc |= print(r[i].path, r[i].body);
	cj_fc_plan_free(r, n);
	for (const char *const *act =
	         (const char *const[]){"InstanceStart", "SendCtrlAltDel", NULL};
	     *act; act++) {
		a = cj_fc_action(*act);
		rc |= print("/actions", a);
		json_object_put(a);
	}
	return rc ? 1 : 0;
}
