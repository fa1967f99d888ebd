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

/* The smallest guest the default kernel boots to a workload under QEMU TCG
 * (see CJ_MIN_MEMORY_MIB's measurement in host/facts.h). */
#define CJ_MIN_MEMORY_MIB 64u

#endif
