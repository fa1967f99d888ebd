/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm_choice.h"

#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An executable's canonical path (cj_find_in_path, then realpath). */
static bool find_executable(const char *name, char *out, size_t len)
{
	char found[PATH_MAX], real[PATH_MAX];

	if (cj_find_in_path(name, found, sizeof found) < 0 || !realpath(found, real) ||
	    strlen(real) >= len)
		return false;
	memcpy(out, real, strlen(real) + 1);
	return true;
}

/* The jailer: as given, else in PATH, else next to firecracker (a release
 * tarball holds both). */
static bool find_jailer(const struct cj_spec *spec, const char *fc, char *out, size_t len)
{
	char dir[PATH_MAX];

	if (spec->jailer_bin)
		return find_executable(spec->jailer_bin, out, len);
	if (find_executable("jailer", out, len))
		return true;
	snprintf(dir, sizeof dir, "%s", fc);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return false;
	snprintf(slash + 1, sizeof dir - (size_t)(slash + 1 - dir), "jailer");
	return find_executable(dir, out, len);
}

static int qemu_accel(enum cj_accel accel, bool ok, const char *why, bool quiet, bool *use_kvm,
                      struct cj_err *err)
{
	switch (accel) {
	case CJ_ACCEL_TCG:
		*use_kvm = false;
		return 0;
	case CJ_ACCEL_KVM:
		if (!ok)
			return cj_fail(err, 0, "--accel kvm: %s; use --accel auto or tcg", why);
		*use_kvm = true;
		return 0;
	default:
		*use_kvm = ok;
		if (!ok && !quiet)
			cj_notice("%s; using TCG (software emulation)", why);
		return 0;
	}
}

static int use_firecracker(const struct cj_spec *spec, struct cj_vmm_choice *c, struct cj_vmm *vmm,
                           bool kvm_ok, const char *why, bool *use_kvm, struct cj_err *err)
{
	if (spec->accel == CJ_ACCEL_TCG)
		return cj_fail(err, 0,
		               "Firecracker runs guests on KVM only: --accel tcg needs --vmm qemu");
	if (!kvm_ok) {
		if (spec->accel == CJ_ACCEL_KVM)
			return cj_fail(err, 0, "--accel kvm: %s", why);
		cj_notice("warning: %s; Firecracker needs KVM: the guest may not boot (--vmm qemu "
		          "runs it under TCG)",
		          why);
	}
	if (!spec->jail.disabled && !find_jailer(spec, c->bin, c->jailer, sizeof c->jailer))
		return cj_fail(
		    err, 0,
		    "Firecracker's jailer %s not found: install it from the same release "
		    "as firecracker, set JAILER_BIN or --jailer, or pass --no-jail",
		    spec->jailer_bin ? spec->jailer_bin : "(jailer)");
	c->chroot_base = spec->chroot_base;
	vmm->ops = &cj_firecracker_ops;
	vmm->bin = c->bin;
	*use_kvm = true;
	return 0;
}

int cj_vmm_choose(const struct cj_spec *spec, struct cj_vmm_choice *c, struct cj_vmm *vmm,
                  bool *use_kvm, struct cj_err *err)
{
	struct cj_err kvm_err = {0};
	char why[CJ_ERR_STR_MAX];
	bool kvm_ok = cj_kvm_usable(&kvm_err);
	bool fc_found;

	cj_err_str(&kvm_err, why, sizeof why);
	memset(c, 0, sizeof *c);
	fc_found = find_executable(spec->firecracker_bin ? spec->firecracker_bin : "firecracker",
	                           c->bin, sizeof c->bin);
	switch (spec->vmm) {
	case CJ_VMM_FIRECRACKER:
		if (!fc_found)
			return cj_fail(
			    err, 0,
			    "firecracker %s not found: install a Firecracker release (see "
			    "the README), set FIRECRACKER_BIN or --firecracker, or use "
			    "--vmm qemu",
			    spec->firecracker_bin ? spec->firecracker_bin : "(in PATH)");
		return use_firecracker(spec, c, vmm, kvm_ok, why, use_kvm, err);
	case CJ_VMM_QEMU:
		break;
	default:
		if (spec->accel == CJ_ACCEL_TCG)
			cj_notice("--accel tcg: using QEMU");
		else if (fc_found && kvm_ok && spec->nshares)
			cj_notice("host directories need virtiofs, which Firecracker lacks: using "
			          "QEMU with KVM");
		else if (fc_found && kvm_ok)
			cj_notice("using Firecracker (%s)", c->bin);
		else if (fc_found && spec->accel != CJ_ACCEL_KVM)
			cj_notice(
			    "%s; Firecracker needs KVM: using QEMU with TCG (software emulation)",
			    why);
		else if (kvm_ok)
			cj_notice(
			    "no firecracker binary (--firecracker, FIRECRACKER_BIN, PATH): using "
			    "QEMU with KVM");
		else if (spec->accel != CJ_ACCEL_KVM)
			cj_notice("%s; using QEMU with TCG (software emulation)", why);
		if (spec->accel != CJ_ACCEL_TCG && fc_found && kvm_ok && !spec->nshares)
			return use_firecracker(spec, c, vmm, kvm_ok, why, use_kvm, err);
		if (qemu_accel(spec->accel, kvm_ok, why, true, use_kvm, err) < 0)
			return -1;
		vmm->ops = &cj_qemu_ops;
		vmm->bin = spec->qemu_bin;
		return 0;
	}
	if (qemu_accel(spec->accel, kvm_ok, why, false, use_kvm, err) < 0)
		return -1;
	vmm->ops = &cj_qemu_ops;
	vmm->bin = spec->qemu_bin;
	return 0;
}

void cj_vmm_choice_apply(const struct cj_vmm_choice *c, struct cj_vm_config *vm)
{
	if (c->jailer[0])
		vm->jail.jailer_bin = c->jailer;
	if (c->chroot_base)
		vm->jail.chroot_base = c->chroot_base;
}
