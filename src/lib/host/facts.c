/* SPDX-License-Identifier: Apache-2.0 */
#include "facts.h"

#include "host/budget.h"
#include "util/util.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool read_u64_file(const char *path, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	unsigned long long x;
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%llu", &x) == 1;
	fclose(f);
	if (ok)
		*v = x;
	return ok;
}

/* Walk from the process's cgroup up to the root, calling fn on each level. */
static void walk_cgroup(const char *mount, const char *path, void (*fn)(const char *, void *),
                        void *ctx)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s%s", mount, path);
	for (;;) {
		fn(buf, ctx);
		char *slash = strrchr(buf, '/');
		if (!slash || (size_t)(slash - buf) < strlen(mount))
			break;
		*slash = '\0';
	}
}

static void cpu_v2(const char *dir, void *ctx)
{
	double *best = ctx;
	char path[PATH_MAX + 16];
	FILE *f;
	char quota[32];
	unsigned long long period;

	snprintf(path, sizeof path, "%s/cpu.max", dir);
	if (!(f = fopen(path, "re")))
		return;
	if (fscanf(f, "%31s %llu", quota, &period) == 2 && strcmp(quota, "max") != 0 && period)
		if (*best <= 0 || strtod(quota, NULL) / (double)period < *best)
			*best = strtod(quota, NULL) / (double)period;
	fclose(f);
}

static void cpu_v1(const char *dir, void *ctx)
{
	double *best = ctx;
	char path[PATH_MAX + 32];
	uint64_t period;
	long long quota;
	FILE *f;

	snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
	if (!(f = fopen(path, "re")))
		return;
	if (fscanf(f, "%lld", &quota) != 1)
		quota = -1;
	fclose(f);
	snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
	if (quota > 0 && read_u64_file(path, &period) && period)
		if (*best <= 0 || (double)quota / (double)period < *best)
			*best = (double)quota / (double)period;
}

static unsigned host_cpus(void)
{
	cpu_set_t set;
	unsigned n = 1;
	double quota = 0;
	char path[PATH_MAX];

	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	cj_own_cgroup(NULL, path, sizeof path);
	walk_cgroup("/sys/fs/cgroup", path, cpu_v2, &quota);
	cj_own_cgroup("cpu", path, sizeof path);
	walk_cgroup("/sys/fs/cgroup/cpu,cpuacct", path, cpu_v1, &quota);
	if (quota > 0) {
		unsigned q = (unsigned)(quota + 0.999);
		if (q < n)
			n = q ? q : 1;
	}
	return n ? n : 1;
}

static void mem_limit(const char *dir, void *ctx)
{
	uint64_t *best = ctx, v;
	char path[PATH_MAX + 32];

	snprintf(path, sizeof path, "%s/memory.max", dir);
	if (read_u64_file(path, &v) && (*best == 0 || v < *best))
		*best = v;
	snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
	if (read_u64_file(path, &v) && v < (1ull << 60) && (*best == 0 || v < *best))
		*best = v;
}

static uint64_t cgroup_memory_mib(void)
{
	uint64_t limit = 0;
	char path[PATH_MAX];

	cj_own_cgroup(NULL, path, sizeof path);
	walk_cgroup("/sys/fs/cgroup", path, mem_limit, &limit);
	cj_own_cgroup("memory", path, sizeof path);
	walk_cgroup("/sys/fs/cgroup/memory", path, mem_limit, &limit);
	return limit / (1024 * 1024);
}

/* The number on the "Name: value" line of a /proc text file, 0 if none. */
static unsigned long long proc_field(const char *path, const char *name, int base)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t len = strlen(name);
	unsigned long long v = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			v = strtoull(line + len + 1, NULL, base);
			break;
		}
	fclose(f);
	return v;
}

/* The host CPU's frequency from /proc/cpuinfo (the TSC runs at it on
 * the hosts here); 0 when unknown. */
static unsigned long host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	double mhz = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return (unsigned long)(mhz * 1000.0);
}

void cj_host_facts_gather(struct cj_host_facts *f)
{
	memset(f, 0, sizeof *f);
	f->cpus = host_cpus();
	f->memory_mib = proc_field("/proc/meminfo", "MemTotal", 10) / 1024;
	f->cgroup_memory_mib = cgroup_memory_mib();
	f->tsc_khz = host_tsc_khz();
	f->euid = geteuid();
	f->cap_effective = proc_field("/proc/self/status", "CapEff", 16);
}

uint64_t cj_host_memory_max_mib(const struct cj_host_facts *f)
{
	uint64_t mib = f->memory_mib;

	if (f->cgroup_memory_mib && f->cgroup_memory_mib < mib)
		mib = f->cgroup_memory_mib;
	return mib;
}

uint64_t cj_host_memory_default_mib(const struct cj_host_facts *f)
{
	uint64_t mib = f->memory_mib, lim = f->cgroup_memory_mib;

	/* Leave the runtime its own room inside its limit. */
	if (lim > 2 * CJ_GUEST_MARGIN_MIB)
		lim -= CJ_GUEST_MARGIN_MIB;
	if (lim && lim < mib)
		mib = lim;
	return mib >= CJ_MIN_MEMORY_MIB ? mib : CJ_MIN_MEMORY_MIB;
}
