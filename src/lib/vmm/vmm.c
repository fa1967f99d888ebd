/* SPDX-License-Identifier: Apache-2.0 */
/* What every backend shares: the VMM's environment, the drives, KVM. */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *const cj_vmm_envp[] = {NULL};

int cj_vm_add_drive(struct cj_vm_config *cfg, enum cj_drive_role role, unsigned n, const char *path,
                    int fd, bool read_only, struct cj_err *err)
{
	static const char *const role_ids[] = {
	    [CJ_DRIVE_BASE] = "base",       [CJ_DRIVE_DATA] = "data",
	    [CJ_DRIVE_CONTROL] = "control", [CJ_DRIVE_MODULES] = "modules",
	    [CJ_DRIVE_VOLUME] = NULL,       [CJ_DRIVE_LAYER] = NULL,
	};
	static const char *const layer_ids[] = {
	    "layer1", "layer2",  "layer3",  "layer4",  "layer5",  "layer6",  "layer7",  "layer8",
	    "layer9", "layer10", "layer11", "layer12", "layer13", "layer14", "layer15", "layer16"};
	static const char *const vol_ids[] = {"vol0",  "vol1",  "vol2",  "vol3",  "vol4",
	                                      "vol5",  "vol6",  "vol7",  "vol8",  "vol9",
	                                      "vol10", "vol11", "vol12", "vol13", "vol14",
	                                      "vol15", "vol16", "vol17", "vol18", "vol19"};
	const char *id = role == CJ_DRIVE_VOLUME
	                     ? (n < sizeof vol_ids / sizeof *vol_ids ? vol_ids[n] : NULL)
	                 : role == CJ_DRIVE_LAYER
	                     ? (n < sizeof layer_ids / sizeof *layer_ids ? layer_ids[n] : NULL)
	                     : role_ids[role];

	if (!id || cfg->ndrives >= CJ_MAX_DRIVES)
		return cj_fail(err, E2BIG, "too many drives for one VM (at most %d)",
		               CJ_MAX_DRIVES);
	cfg->drives[cfg->ndrives++] = (struct cj_drive){
	    .role = role, .id = id, .path = path, .fd = fd, .read_only = read_only};
	return 0;
}

const char *cj_drive_path(const struct cj_drive *d, char *buf, size_t len)
{
	if (d->fd < 0)
		return d->path;
	snprintf(buf, len, "/proc/self/fd/%d", d->fd);
	return buf;
}

int cj_vm_plan_files(struct cj_vm_config *cfg, struct cj_err *err)
{
	struct cj_jail_plan *plan = &cfg->jail;

	plan->nfiles = 0;
	plan->fsize_limit = 0;
	if (cj_jail_plan_add(plan, CJ_JAIL_KERNEL, "kernel", cfg->kernel, -1, false, err) < 0 ||
	    (cfg->initramfs &&
	     cj_jail_plan_add(plan, CJ_JAIL_INITRD, "initrd", cfg->initramfs, -1, false, err) < 0))
		return -1;
	for (size_t i = 0; i < cfg->ndrives; i++) {
		const struct cj_drive *d = &cfg->drives[i];
		if (cj_jail_plan_add(plan, CJ_JAIL_DRIVE, d->id, d->path, d->fd, !d->read_only,
		                     err) < 0)
			return -1;
	}
	return 0;
}

bool cj_kvm_usable(struct cj_err *err)
{
	int fd;

	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		return cj_fail(err, 0, "the KVM here is PVM, which cannot run a stock kernel"),
		       false;
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return cj_fail(err, errno, "/dev/kvm"), false;
	close(fd);
	return true;
}

int cj_vmm_agent_fd(const struct cj_vmm *vmm)
{
	return vmm->ops && vmm->ops->agent_fd ? vmm->ops->agent_fd(vmm) : -1;
}

void cj_vmm_kill(struct cj_vmm *vmm)
{
	if (vmm->pid > 0)
		kill(vmm->pid, SIGKILL);
}
