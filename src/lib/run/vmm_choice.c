/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm_choice.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool cj_find_executable(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");

	if (!name || !*name)
		return false;
	if (strchr(name, '/')) {
		if (!executable(name) || !realpath(name, out))
			return false;
		return true;
	}
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		char cand[PATH_MAX];
		if (n &&
		    (size_t)snprintf(cand, sizeof cand, "%.*s/%s", (int)n, path, name) <
		        sizeof cand &&
		    executable(cand) && realpath(cand, out) && strlen(out) < len)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* The jailer: as given, else in PATH, else next to firecracker (a release
 * tarball holds both). */
static bool find_jailer(const struct cj_spec *spec, const char *fc, char *out, size_t len)
{
	char dir[PATH_MAX];

	if (spec->jailer_bin)
		return cj_find_executable(spec->jailer_bin, out, len);
	if (cj_find_executable("jailer", out, len))
		return true;
	snprintf(dir, sizeof dir, "%s", fc);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return false;
	snprintf(slash + 1, sizeof dir - (size_t)(slash + 1 - dir), "jailer");
	return cj_find_executable(dir, out, len);
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
			fprintf(stderr, "ctr-jailer: %s; using TCG (software emulation)\n", why);
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
		fprintf(stderr,
		        "ctr-jailer: %s; Firecracker needs KVM: the guest may not boot (--vmm "
		        "qemu runs it under TCG)\n",
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
	char why[256];
	bool kvm_ok = cj_kvm_usable(why, sizeof why);
	bool fc_found;

	memset(c, 0, sizeof *c);
	fc_found = cj_find_executable(spec->firecracker_bin ? spec->firecracker_bin : "firecracker",
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
			fprintf(stderr, "ctr-jailer: --accel tcg: using QEMU\n");
		else if (fc_found && kvm_ok)
			fprintf(stderr, "ctr-jailer: using Firecracker (%s)\n", c->bin);
		else if (fc_found && spec->accel != CJ_ACCEL_KVM)
			fprintf(
			    stderr,
			    "ctr-jailer: %s; Firecracker needs KVM: using QEMU with TCG (software "
			    "emulation)\n",
			    why);
		else if (kvm_ok)
			fprintf(stderr, "ctr-jailer: no firecracker binary (--firecracker, "
			                "FIRECRACKER_BIN, PATH): using QEMU with KVM\n");
		else if (spec->accel != CJ_ACCEL_KVM)
			fprintf(stderr,
			        "ctr-jailer: %s; using QEMU with TCG (software emulation)\n", why);
		if (spec->accel != CJ_ACCEL_TCG && fc_found && kvm_ok)
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
