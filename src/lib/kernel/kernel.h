/* SPDX-License-Identifier: Apache-2.0 */
/* Guest kernel provisioning and the initramfs built for it. */
#ifndef CJ_KERNEL_H
#define CJ_KERNEL_H

#include "util/err.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CJ_KERNEL_PACKAGE "linux-image-cloud-amd64"

struct cj_kernel {
	char image[PATH_MAX];   /* bzImage or vmlinux */
	char modules[PATH_MAX]; /* lib/modules/<release> tree, "" when none */
	char release[128];      /* "" when unknown */
};

/* Download Debian's cloud kernel with apt-get (never installed on the host),
 * extract kernel and modules into cache_dir/kernels/<release>, make it the
 * default. Prints progress to stderr. */
int cj_kernel_fetch(const char *cache_dir, struct cj_err *err);

/* Resolve the kernel to boot: explicit image (+ optional modules tree) or
 * the cached default. */
int cj_kernel_resolve(const char *cache_dir, const char *image, const char *modules,
                      struct cj_kernel *out, struct cj_err *err);

/* Build or reuse the initramfs (init + the modules it needs, in dependency
 * order) for kernel k; path written to out. */
int cj_initramfs_get(const char *cache_dir, const struct cj_kernel *k, char *out, size_t outlen,
                     bool *built, struct cj_err *err);

/* The ELF vmlinux inside a bzImage (or the image itself when it is already
 * an ELF), decompressed once into cache_dir/vmlinux. Fails when the kernel
 * has no PVH entry note. */
int cj_kernel_vmlinux(const char *cache_dir, const char *image, char *out, size_t outlen,
                      struct cj_err *err);
bool cj_elf_has_pvh_note(const uint8_t *img, size_t len);

struct cj_kernel_info {
	bool elf;          /* an ELF vmlinux */
	bool bzimage;      /* a bzImage (x86 boot protocol header) */
	char release[128]; /* "6.1.0-28-cloud-amd64"; "" when the image does not say */
};
/* What kind of kernel path is, from its header; fails (one line) when it is
 * neither a bzImage nor an ELF. */
int cj_kernel_probe(const char *path, struct cj_kernel_info *info, struct cj_err *err);
/* Does the kernel need modules for the disks the init finds (virtio_blk
 * not built in)? Looks inside its vmlinux (cached by cj_kernel_vmlinux);
 * false when it cannot tell. Fills info->release when the header had none. */
bool cj_kernel_is_modular(const char *cache_dir, const char *image, struct cj_kernel_info *info);

/* Modules the init loads before it can find its disks, by module name. */
extern const char *const cj_initramfs_modules[];
/* Those loaded only when a host directory is shared (virtiofs). */
extern const char *const cj_initramfs_share_modules[];

/* Dependency-ordered module list from a modules.dep text (exposed for
 * tests). Writes paths relative to the modules tree, one per line, into
 * *out (caller frees). Names absent from modules.dep are skipped (built in). */
int cj_modules_order(const char *modules_dep, const char *const *names, char **out,
                     struct cj_err *err);

#endif
