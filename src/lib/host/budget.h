/* SPDX-License-Identifier: Apache-2.0 */
/* The memory margins, named once. (rd/vmm's minimal version: rd/cli owns
 * this header and adds the guest default's margin and the arithmetic.) */
#ifndef CJ_BUDGET_H
#define CJ_BUDGET_H

/* QEMU's TCG translation cache (its default is 1 GiB). */
#define CJ_MEM_QEMU_TCG_CACHE_MIB 128u
/* The VMM's own memory above the guest's, in the jail's cgroup limit: it
 * covers the TCG cache with room for QEMU's other allocations. */
#define CJ_MEM_JAIL_MARGIN_MIB 256u

#endif
