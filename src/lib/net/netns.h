/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's own network namespace, for a VMM that opens its TAP by name
 * (Firecracker: its jailer joins the namespace given with --netns). */
#ifndef CJ_NETNS_H
#define CJ_NETNS_H

#include "util/err.h"

#include <sys/types.h>

/* Create a new network namespace and pin it by bind-mounting it on path
 * (created here; it must not exist). IPv6 is off in it. With tap set, the
 * namespace also holds:
 *   - the TAP `tap` (persistent, owned by owner), for the VMM to open;
 *   - one end of a veth pair, whose other end is `host_end` in the
 *     caller's namespace, where it plays the part the TAP plays without a
 *     namespace (the host address, the firewall's interface name);
 *   - tc ingress redirects between the TAP and the inner veth end, both
 *     ways, so frames cross the namespace without being routed in it.
 * The caller's thread never leaves its namespace. On failure, what was
 * made is left for cj_netns_remove and the removal of host_end. */
int cj_netns_create(const char *path, const char *tap, uid_t owner, const char *host_end,
                    struct cj_err *err);

/* Unpin the namespace at path and remove the file. The namespace, and the
 * TAP in it, go when the last process inside exits. Returns -1 when the
 * file is still there (a mount that would not go). */
int cj_netns_remove(const char *path);

/* The name of the inner veth end. */
#define CJ_NETNS_INNER_LINK "cj-host"

#endif
