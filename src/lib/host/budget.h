/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The memory budget of one run, named once. Three margins tie together:
 *
 *   guest default  = min(host RAM, runtime cgroup limit - CJ_GUEST_MARGIN_MIB)
 *   VMM cgroup     = guest memory + CJ_JAIL_MARGIN_MIB        (jail.c)
 *   QEMU TCG cache = CJ_TCG_CACHE_MIB                         (qemu.c, tb-size)
 *
 * The VMM's own memory (device model, page tables, the TCG translation
 * cache under emulation) lives inside the jail's margin:
 * CJ_TCG_CACHE_MIB + ~100 MiB of QEMU itself < CJ_JAIL_MARGIN_MIB, so a
 * TCG guest that touches all its RAM is not OOM-killed by its own cgroup.
 * The guest default leaves CJ_GUEST_MARGIN_MIB of the runtime's own limit
 * for the runtime and the tools it starts (the VMM's cgroup is a sibling,
 * not a child, so its margin is not charged there).
 */
#ifndef CJ_BUDGET_H
#define CJ_BUDGET_H

#define CJ_GUEST_MARGIN_MIB 64u  /* runtime limit - this = default guest memory */
#define CJ_JAIL_MARGIN_MIB  256u /* VMM cgroup = guest memory + this */
#define CJ_TCG_CACHE_MIB    128u /* QEMU -accel tcg,tb-size= (default is 1 GiB) */

/* The smallest guest memory the default kernel (Debian's 6.1 cloud kernel,
 * `kernel fetch`) boots a workload in. Measured under QEMU TCG on the
 * 2-core test machine with `ctr-jailer run --rootfs BUSYBOX --network none
 * --cpus C --memory N -- true`, C = 1 and 2, N searched from 64 to 128:
 * 64, 66 and 68 MiB always panic (out of memory while the initramfs
 * unpacks and modules load, exit 124); 70 MiB boots two times in three;
 * 72 MiB and above booted every time (3 runs each). Below this the run is
 * refused before booting, with the figure in the message. */
#define CJ_MIN_MEMORY_MIB 72u

#endif
