/* SPDX-License-Identifier: Apache-2.0 */
/* Boot snapshots: a VM booted once per machine shape to the init's
 * snapshot point (before any virtio driver, any drive, any run's data),
 * saved in the cache and restored by every run of that shape.
 *
 * <cache>/snapshots/<key>/vmstate (Firecracker: and <key>/mem, the guest
 * memory), built under <key>/lock. The key hashes
 * the backend, the kernel, the initramfs (the init inside it), the VMM
 * binary, vCPUs, memory, accelerator, the kernel command line and the
 * device layout (the drives in order with their read-only flags, whether
 * there is a NIC): a restore gets exactly the devices the snapshot had,
 * backed by this run's files. After a restore the host writes the "go"
 * line (guest/resume.c) with this boot's entropy seed, clock and MAC. */
#ifndef CJ_SNAPSHOT_H
#define CJ_SNAPSHOT_H

#include "vmm.h"

#define CJ_SNAPSHOT_GO_MAX 160

/* The snapshot of cfg's shape for vmm's backend, opened for reading; when
 * there is none yet it is made first (a notice says so). path gets its
 * path. Returns the fd, or -1 with err. */
int cj_snapshot_open(const char *cache_dir, const struct cj_vmm *vmm,
                     const struct cj_vm_config *cfg, char *path, size_t pathlen,
                     struct cj_err *err);
/* Removes the snapshot whose state file is path (a snapshot that did not
 * restore): its memory file too. */
void cj_snapshot_remove(const char *path);
/* Is the run asked to stop? (NULL: never.) Making a snapshot, or waiting
 * for another run to make it, ends at once then; the signal that asked
 * must stay pending for the caller. */
void cj_snapshot_stop_when(bool (*asked)(void));
/* "go SEED SEC NSEC MAC\n": 32 fresh random bytes, the wall clock now,
 * the MAC (NULL: "-"). */
int cj_snapshot_go_line(char *buf, size_t len, const uint8_t *mac, struct cj_err *err);

#endif
