/* SPDX-License-Identifier: Apache-2.0 */
/* Which VMM runs the guest (--vmm, --accel), and with which binaries. */
#ifndef CJ_VMM_CHOICE_H
#define CJ_VMM_CHOICE_H

#include "spec/spec.h"
#include "util/err.h"
#include "vmm/vmm.h"

#include <limits.h>
#include <stdbool.h>

struct cj_vmm_choice {
	char bin[PATH_MAX];    /* the VMM binary (absolute for Firecracker) */
	char jailer[PATH_MAX]; /* Firecracker's jailer, "" when not used */
	const char *chroot_base;
};

/* Fill vmm->ops and vmm->bin and decide whether the guest runs on KVM.
 * auto: Firecracker when a firecracker binary is found (--firecracker,
 * FIRECRACKER_BIN, PATH) and KVM can run a guest, otherwise QEMU (on KVM
 * or TCG); one line on stderr says which. Firecracker runs on KVM only. */
int cj_vmm_choose(const struct cj_spec *spec, struct cj_vmm_choice *c, struct cj_vmm *vmm,
                  bool *use_kvm, struct cj_err *err);
/* What only the choice knows, into the resolved jail (Firecracker's jailer
 * and its chroot base). */
void cj_vmm_choice_apply(const struct cj_vmm_choice *c, struct cj_vm_config *vm);

#endif
