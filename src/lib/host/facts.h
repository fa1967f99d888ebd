/* SPDX-License-Identifier: Apache-2.0 */
/* What the host gives a run, gathered once: the engine resolves the spec's
 * defaults and checks its limits against these facts, and nothing else
 * reads /proc or the cgroup files for them. */
#ifndef CJ_FACTS_H
#define CJ_FACTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct cj_host_facts {
	unsigned cpus;              /* CPUs we may use: affinity, within the cgroup quota */
	uint64_t memory_mib;        /* MemTotal */
	uint64_t cgroup_memory_mib; /* the runtime's own cgroup memory limit; 0: none */
	unsigned long tsc_khz;      /* the host TSC frequency; 0: unknown */
	uid_t euid;
	uint64_t cap_effective; /* CapEff of /proc/self/status */
};

void cj_host_facts_gather(struct cj_host_facts *f);

/* The most memory a guest can be given: RAM, within our cgroup limit. */
uint64_t cj_host_memory_max_mib(const struct cj_host_facts *f);
/* The default guest memory: that, less the runtime's own margin. */
uint64_t cj_host_memory_default_mib(const struct cj_host_facts *f);

#endif
