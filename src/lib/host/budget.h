/* SPDX-License-Identifier: Apache-2.0 */
/* The memory margins, named once. rd/vmm's subset of rd/cli's header
 * (same names): at the merge, rd/cli's version wins whole. */
#ifndef CJ_BUDGET_H
#define CJ_BUDGET_H

#define CJ_JAIL_MARGIN_MIB 256u /* VMM cgroup = guest memory + this */
#define CJ_TCG_CACHE_MIB   128u /* QEMU -accel tcg,tb-size= (default is 1 GiB) */

#endif
