/* SPDX-License-Identifier: Apache-2.0 */
#include "spec.h"

#include "image/oci.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- environment ------------------------------------------------------ */

static const char *const runtime_own[] = {
    /* the seed's settings */
    "TAP_IP", "HOST_IFACE", "VCPU_COUNT", "MEM_SIZE_MIB", "ROOTFS_SIZE", "DATAFS_SIZE",
    "KERNEL_BOOT_ARGS", "EXTRA_KERNEL_BOOT_ARGS",
    /* ours */
    "DATA_MOUNT", "PUBLISH", "FIRECRACKER_BIN", "JAILER_BIN",
    /* shell noise */
    "PATH", "HOME", "HOSTNAME", "TERM", "PWD", "OLDPWD", "SHLVL", "_", NULL};

bool cj_env_is_runtime_own(const char *name, size_t len)
{
	if (len >= 11 && strncmp(name, "CTR_JAILER_", 11) == 0)
		return true;
	for (size_t i = 0; runtime_own[i]; i++)
		if (strlen(runtime_own[i]) == len && strncmp(runtime_own[i], name, len) == 0)
			return true;
	return false;
}

static bool valid_env_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '=' || s[i] == '\0' || isspace((unsigned char)s[i]))
			return false;
	return true;
}

static const char *lookup(char **env, const char *name, size_t len)
{
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

/* "NAME" alone takes NAME from the runtime's environment, like docker -e. */
static int env_add_arg(struct cj_strv *env, const char *arg, char **runtime_env, struct cj_err *err)
{
	const char *eq = strchr(arg, '=');
	size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);

	if (!valid_env_name(arg, klen))
		return cj_fail(err, 0, "invalid environment variable '%s': expected NAME=VALUE",
		               arg);
	if (!eq) {
		const char *v = lookup(runtime_env, arg, klen);
		char *entry;
		int r;
		if (!v)
			return 0; /* docker skips unset names */
		if (asprintf(&entry, "%s=%s", arg, v) < 0)
			return cj_fail(err, ENOMEM, "environment");
		r = cj_env_set(env, entry);
		free(entry);
		return r < 0 ? cj_fail(err, ENOMEM, "environment") : 0;
	}
	return cj_env_set(env, arg) < 0 ? cj_fail(err, ENOMEM, "environment") : 0;
}

int cj_env_file_parse(const char *text, size_t len, const char *name, char **lookup_env,
                      struct cj_strv *env, struct cj_err *err)
{
	size_t lineno = 0;
	const char *p = text, *end = text + len;

	if (memchr(text, '\0', len))
		return cj_fail(err, 0, "env file %s contains a NUL byte", name);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line;

		lineno++;
		if (n && p[n - 1] == '\r')
			n--;
		line = strndup(p, n);
		if (!line)
			return cj_fail(err, ENOMEM, "env file %s", name);
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s && *s != '#') {
			const char *eq = strchr(s, '=');
			size_t klen = eq ? (size_t)(eq - s) : strlen(s);
			while (!eq && klen && isspace((unsigned char)s[klen - 1]))
				s[--klen] = '\0';
			if (!valid_env_name(s, klen)) {
				cj_fail(err, 0,
				        "env file %s line %zu: expected NAME=VALUE, got '%.40s'",
				        name, lineno, s);
				free(line);
				return -1;
			}
			if (env_add_arg(env, s, lookup_env, err) < 0) {
				free(line);
				return cj_err_wrap(err, "env file %s line %zu", name, lineno);
			}
		}
		free(line);
		p = nl ? nl + 1 : end;
	}
	return 0;
}

/* ---- host limits ------------------------------------------------------ */

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

unsigned cj_host_cpus(void)
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

uint64_t cj_host_memory_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb = 0;
	uint64_t limit = 0, mib;
	char path[PATH_MAX];

	if (f) {
		if (fscanf(f, "MemTotal: %llu kB", &kb) != 1)
			kb = 0;
		fclose(f);
	}
	mib = kb / 1024;
	cj_own_cgroup(NULL, path, sizeof path);
	walk_cgroup("/sys/fs/cgroup", path, mem_limit, &limit);
	cj_own_cgroup("memory", path, sizeof path);
	walk_cgroup("/sys/fs/cgroup/memory", path, mem_limit, &limit);
	if (limit) {
		/* Leave the VMM its own room inside the runtime's limit. */
		uint64_t lim_mib = limit / (1024 * 1024);
		lim_mib = lim_mib > 128 ? lim_mib - 64 : lim_mib;
		if (lim_mib < mib)
			mib = lim_mib;
	}
	return mib >= CJ_MIN_MEMORY_MIB ? mib : CJ_MIN_MEMORY_MIB;
}

/* ---- command line ----------------------------------------------------- */

enum {
	OPT_ROOTFS = 0x100,
	OPT_IMAGE,
	OPT_ENTRYPOINT,
	OPT_KERNEL,
	OPT_MODULES,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_ENV_FILE,
	OPT_HOSTNAME,
	OPT_ACCEL,
	OPT_STOP_TIMEOUT,
	OPT_TIMINGS,
	OPT_CACHE_DIR,
	OPT_QEMU,
	OPT_VMM,
	OPT_FIRECRACKER,
	OPT_JAILER,
	OPT_CHROOT_BASE,
	OPT_ROOTFS_SIZE,
	OPT_NO_PASSTHROUGH,
	OPT_BOOT_ARGS,
	OPT_EXTRA_BOOT_ARGS,
	OPT_VOLUME_SIZE,
	OPT_VOLUMES_DIR,
	OPT_DATA,
	OPT_DATA_MOUNT,
	OPT_DATA_SIZE,
	OPT_SECRET,
	OPT_NETWORK,
	OPT_NO_JAIL,
	OPT_JAIL_USER,
	OPT_JAIL_UID_RANGE,
	OPT_CPU_QUOTA,
	OPT_MEMORY_LIMIT,
	OPT_PIDS_LIMIT,
	OPT_TAP_IP,
	OPT_HOST_IFACE,
	OPT_FIREWALL,
	OPT_DNS,
	OPT_EGRESS,
	OPT_ALLOW_EGRESS,
	OPT_ALLOW_LINK_LOCAL,
	OPT_MAX_IMAGE_SIZE,
};

static const struct option run_options[] = {
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"image", required_argument, NULL, OPT_IMAGE},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"modules", required_argument, NULL, OPT_MODULES},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"env", required_argument, NULL, 'e'},
    {"env-file", required_argument, NULL, OPT_ENV_FILE},
    {"workdir", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {"hostname", required_argument, NULL, OPT_HOSTNAME},
    {"accel", required_argument, NULL, OPT_ACCEL},
    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"timings", no_argument, NULL, OPT_TIMINGS},
    {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
    {"qemu", required_argument, NULL, OPT_QEMU},
    {"vmm", required_argument, NULL, OPT_VMM},
    {"firecracker", required_argument, NULL, OPT_FIRECRACKER},
    {"jailer", required_argument, NULL, OPT_JAILER},
    {"chroot-base", required_argument, NULL, OPT_CHROOT_BASE},
    {"rootfs-size", required_argument, NULL, OPT_ROOTFS_SIZE},
    {"no-env-passthrough", no_argument, NULL, OPT_NO_PASSTHROUGH},
    {"boot-args", required_argument, NULL, OPT_BOOT_ARGS},
    {"extra-boot-args", required_argument, NULL, OPT_EXTRA_BOOT_ARGS},
    {"volume", required_argument, NULL, 'v'},
    {"volume-size", required_argument, NULL, OPT_VOLUME_SIZE},
    {"volumes-dir", required_argument, NULL, OPT_VOLUMES_DIR},
    {"data", required_argument, NULL, OPT_DATA},
    {"data-mount", required_argument, NULL, OPT_DATA_MOUNT},
    {"data-size", required_argument, NULL, OPT_DATA_SIZE},
    {"secret", required_argument, NULL, OPT_SECRET},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"no-jail", no_argument, NULL, OPT_NO_JAIL},
    {"jail-user", required_argument, NULL, OPT_JAIL_USER},
    {"jail-uid-range", required_argument, NULL, OPT_JAIL_UID_RANGE},
    {"cpu-quota", required_argument, NULL, OPT_CPU_QUOTA},
    {"memory-limit", required_argument, NULL, OPT_MEMORY_LIMIT},
    {"pids-limit", required_argument, NULL, OPT_PIDS_LIMIT},
    {"tap-ip", required_argument, NULL, OPT_TAP_IP},
    {"host-iface", required_argument, NULL, OPT_HOST_IFACE},
    {"firewall", required_argument, NULL, OPT_FIREWALL},
    {"publish", required_argument, NULL, 'p'},
    {"dns", required_argument, NULL, OPT_DNS},
    {"egress", required_argument, NULL, OPT_EGRESS},
    {"allow-egress", required_argument, NULL, OPT_ALLOW_EGRESS},
    {"allow-link-local", no_argument, NULL, OPT_ALLOW_LINK_LOCAL},
    {"max-image-size", required_argument, NULL, OPT_MAX_IMAGE_SIZE},
    {NULL, 0, NULL, 0},
};

static int set_str(char **slot, const char *v, struct cj_err *err)
{
	free(*slot);
	*slot = strdup(v);
	return *slot ? 0 : cj_fail(err, ENOMEM, "out of memory");
}

static int parse_cpus(const char *v, const char *what, unsigned *out, struct cj_err *err)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || end == v || n < 1 || n > CJ_MAX_CPUS)
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give a whole number of vCPUs from 1 to %u",
		               what, v, CJ_MAX_CPUS);
	*out = (unsigned)n;
	return 0;
}

static int parse_memory(const char *v, const char *what, uint64_t *out, struct cj_err *err)
{
	uint64_t bytes;

	if (cj_parse_size(v, 1ull << 20, &bytes) < 0)
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give MiB (e.g. 512) or a size such as 2G", what,
		               v);
	if (bytes < (uint64_t)CJ_MIN_MEMORY_MIB << 20)
		return cj_fail(err, 0, "%s '%s' is too small: a guest needs at least %u MiB", what,
		               v, CJ_MIN_MEMORY_MIB);
	*out = bytes >> 20;
	return 0;
}

static int parse_firewall(const char *v, enum cj_firewall *out, struct cj_err *err)
{
	if (strcmp(v, "auto") == 0)
		*out = CJ_FW_AUTO;
	else if (strcmp(v, "nft") == 0 || strcmp(v, "nftables") == 0)
		*out = CJ_FW_NFT;
	else if (strcmp(v, "iptables") == 0 || strcmp(v, "iptables-nft") == 0)
		*out = CJ_FW_IPTABLES_NFT;
	else if (strcmp(v, "iptables-legacy") == 0)
		*out = CJ_FW_IPTABLES_LEGACY;
	else if (strcmp(v, "none") == 0)
		*out = CJ_FW_NONE;
	else
		return cj_fail(
		    err, 0,
		    "firewall '%s' is invalid: use auto, nft, iptables, iptables-legacy or "
		    "none",
		    v);
	return 0;
}

static int parse_bool(const char *v, const char *what, bool *out, struct cj_err *err)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
		*out = false;
	else
		return cj_fail(err, 0, "%s '%s' is invalid: use 1 or 0", what, v);
	return 0;
}

static int parse_cpu_quota(const char *v, const char *what, double *out, struct cj_err *err)
{
	char *end;
	double q;

	errno = 0;
	q = strtod(v, &end);
	if (errno || *end || end == v || !(q >= 0.01 && q <= 1024))
		return cj_fail(err, 0, "%s '%s' is invalid: give CPUs as a number, e.g. 1.5", what,
		               v);
	*out = q;
	return 0;
}

static int parse_pids(const char *v, const char *what, uint64_t *out, struct cj_err *err)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || end == v || n < 16 || n > 1000000)
		return cj_fail(err, 0, "%s '%s' is invalid: give a number from 16 to 1000000", what,
		               v);
	*out = n;
	return 0;
}

static int parse_vmm(const char *v, const char *what, enum cj_vmm_kind *out, struct cj_err *err)
{
	if (strcmp(v, "auto") == 0)
		*out = CJ_VMM_AUTO;
	else if (strcmp(v, "qemu") == 0)
		*out = CJ_VMM_QEMU;
	else if (strcmp(v, "firecracker") == 0)
		*out = CJ_VMM_FIRECRACKER;
	else
		return cj_fail(err, 0, "%s '%s' is invalid: use auto, qemu or firecracker", what,
		               v);
	return 0;
}

static int set_abs_path(char **slot, const char *v, const char *what, struct cj_err *err)
{
	if (v[0] != '/')
		return cj_fail(err, 0, "%s '%s' must be an absolute path", what, v);
	return set_str(slot, v, err);
}

static int parse_volume_size(const char *v, const char *what, uint64_t *out, struct cj_err *err)
{
	if (cj_parse_size(v, 1ull << 20, out) < 0 || *out < (16ull << 20))
		return cj_fail(err, 0, "%s '%s' is invalid: give a size of at least 16M, e.g. 2G",
		               what, v);
	return 0;
}

static int add_volume(struct cj_spec *spec, const char *arg, struct cj_err *err)
{
	struct cj_volume_spec *nv;

	if (spec->nvolumes >= CTRJ_MAX_VOLUMES)
		return cj_fail(err, 0, "too many volumes (at most %u)", CTRJ_MAX_VOLUMES);
	nv = realloc(spec->volumes, (spec->nvolumes + 1) * sizeof *nv);
	if (!nv)
		return cj_fail(err, ENOMEM, "volume");
	spec->volumes = nv;
	if (cj_volume_spec_parse(arg, &nv[spec->nvolumes], err) < 0)
		return -1;
	for (size_t i = 0; i < spec->nvolumes; i++)
		if (strcmp(nv[i].guest_path, nv[spec->nvolumes].guest_path) == 0) {
			cj_fail(err, 0, "two volumes are mounted at %s", nv[i].guest_path);
			cj_volume_spec_free(&nv[spec->nvolumes]);
			return -1;
		}
	spec->nvolumes++;
	return 0;
}

/* NAME=@FILE or NAME=env:VAR. The value stays in memory; a variable used
 * as a secret source is not passed through to the guest's environment. */
static int add_secret(struct cj_spec *spec, const char *arg, char **env, struct cj_strv *hidden,
                      struct cj_err *err)
{
	const char *eq = strchr(arg, '=');
	struct ctrj_secret sec = {0};
	struct ctrj_secret *ns;

	if (!eq || !ctrj_secret_name_valid(arg, (size_t)(eq - arg)))
		return cj_fail(err, 0,
		               "--secret '%s' is invalid: use NAME=@FILE or NAME=env:VAR (NAME of "
		               "letters, digits, '_', '.', '-')",
		               arg);
	if (spec->nsecrets >= CTRJ_MAX_SECRETS)
		return cj_fail(err, 0, "too many secrets (at most %u)", CTRJ_MAX_SECRETS);
	for (size_t i = 0; i < spec->nsecrets; i++)
		if (strncmp(spec->secrets[i].name, arg, (size_t)(eq - arg)) == 0 &&
		    spec->secrets[i].name[eq - arg] == '\0')
			return cj_fail(err, 0, "secret %.*s given twice", (int)(eq - arg), arg);
	if (eq[1] == '@') {
		char *text;
		size_t len;
		struct stat st;
		if (stat(eq + 2, &st) == 0 && !S_ISREG(st.st_mode))
			return cj_fail(err, 0, "--secret %.*s: %s is not a regular file",
			               (int)(eq - arg), arg, eq + 2);
		if (cj_read_file(eq + 2, &text, &len, err) < 0)
			return cj_err_wrap(err, "--secret %.*s", (int)(eq - arg), arg);
		sec.value = (uint8_t *)text;
		sec.len = len;
	} else if (strncmp(eq + 1, "env:", 4) == 0) {
		const char *v = lookup(env, eq + 5, strlen(eq + 5));
		if (!eq[5] || !v)
			return cj_fail(err, 0,
			               "--secret %.*s: environment variable '%s' is not set",
			               (int)(eq - arg), arg, eq + 5);
		sec.len = strlen(v);
		sec.value = malloc(sec.len + 1);
		if (!sec.value)
			return cj_fail(err, ENOMEM, "secret");
		memcpy(sec.value, v, sec.len + 1);
		if (cj_strv_push(hidden, eq + 5) < 0)
			return cj_fail(err, ENOMEM, "secret");
	} else {
		return cj_fail(err, 0, "--secret '%.*s=...': the value must be @FILE or env:VAR",
		               (int)(eq - arg), arg);
	}
	sec.name = strndup(arg, (size_t)(eq - arg));
	ns = realloc(spec->secrets, (spec->nsecrets + 1) * sizeof *ns);
	if (!sec.name || !ns) {
		free(sec.name);
		free(sec.value);
		if (ns)
			spec->secrets = ns;
		return cj_fail(err, ENOMEM, "secret");
	}
	spec->secrets = ns;
	ns[spec->nsecrets++] = sec;
	return 0;
}

/* The image unpack budget: a size, MiB when bare, at least 1 MiB. */
static int parse_image_budget(const char *v, const char *what, uint64_t *out, struct cj_err *err)
{
	if (cj_parse_size(v, 1ull << 20, out) < 0 || *out < (1ull << 20))
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give the most an image may unpack to, e.g. 16G",
		               what, v);
	return 0;
}

static const char *getenv_from(char **env, const char *name)
{
	return lookup(env, name, strlen(name));
}

/* The seed's environment variables, applied before flags override them. */
static int apply_seed_env(struct cj_spec *spec, char **env, struct cj_err *err)
{
	const char *v;

	if ((v = getenv_from(env, "VCPU_COUNT")) && *v &&
	    parse_cpus(v, "VCPU_COUNT", &spec->cpus, err) < 0)
		return -1;
	if ((v = getenv_from(env, "MEM_SIZE_MIB")) && *v &&
	    parse_memory(v, "MEM_SIZE_MIB", &spec->memory_mib, err) < 0)
		return -1;
	if ((v = getenv_from(env, "ROOTFS_SIZE")) && *v &&
	    cj_parse_size(v, 1ull << 20, &spec->rootfs_size) < 0)
		return cj_fail(err, 0, "ROOTFS_SIZE '%s' is invalid: give a size such as 2G", v);
	if ((v = getenv_from(env, "KERNEL_BOOT_ARGS")) && *v &&
	    set_str(&spec->boot_args, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "EXTRA_KERNEL_BOOT_ARGS")) && *v &&
	    set_str(&spec->extra_boot_args, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_CPU_QUOTA")) && *v &&
	    parse_cpu_quota(v, "CTR_JAILER_CPU_QUOTA", &spec->jail.cpu_quota, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_MEMORY_LIMIT")) && *v &&
	    parse_volume_size(v, "CTR_JAILER_MEMORY_LIMIT", &spec->jail.memory_limit, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_PIDS_LIMIT")) && *v &&
	    parse_pids(v, "CTR_JAILER_PIDS_LIMIT", &spec->jail.pids_limit, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_JAIL_USER")) && *v &&
	    set_str(&spec->jail.user, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_UID_RANGE")) && *v &&
	    cj_jail_uid_range_parse(v, "CTR_JAILER_UID_RANGE", &spec->jail, err) < 0)
		return -1;
	if ((v = getenv_from(env, "TAP_IP")) && *v && set_str(&spec->net.tap_ip, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "HOST_IFACE")) && *v &&
	    set_str(&spec->net.host_iface, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "PUBLISH")) && *v && cj_publish_env_parse(v, &spec->net, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_FIREWALL")) && *v &&
	    parse_firewall(v, &spec->net.firewall, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_EGRESS")) && *v &&
	    cj_egress_mode_parse(v, "CTR_JAILER_EGRESS", &spec->net.egress, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_ALLOW_EGRESS")) && *v &&
	    cj_allow_egress_list_parse(v, "CTR_JAILER_ALLOW_EGRESS", &spec->net, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_ALLOW_LINK_LOCAL")) && *v &&
	    parse_bool(v, "CTR_JAILER_ALLOW_LINK_LOCAL", &spec->net.allow_link_local, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_NETWORK")) && *v) {
		if (strcmp(v, "none") == 0)
			spec->net.mode = CJ_NET_NONE;
		else if (strcmp(v, "tap") != 0)
			return cj_fail(err, 0,
			               "CTR_JAILER_NETWORK '%s' is invalid: use tap or none", v);
	}
	if ((v = getenv_from(env, "DATAFS_SIZE")) && *v &&
	    parse_volume_size(v, "DATAFS_SIZE", &spec->datafs_size, err) < 0)
		return -1;
	if ((v = getenv_from(env, "DATA_MOUNT")) && *v &&
	    set_abs_path(&spec->data_mount, v, "DATA_MOUNT", err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_VOLUMES")) && *v &&
	    set_abs_path(&spec->volumes_dir, v, "CTR_JAILER_VOLUMES", err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_CACHE")) && *v &&
	    set_str(&spec->cache_dir, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_VMM")) && *v &&
	    parse_vmm(v, "CTR_JAILER_VMM", &spec->vmm, err) < 0)
		return -1;
	if ((v = getenv_from(env, "FIRECRACKER_BIN")) && *v &&
	    set_str(&spec->firecracker_bin, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "JAILER_BIN")) && *v && set_str(&spec->jailer_bin, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_CHROOT_BASE")) && *v &&
	    set_abs_path(&spec->chroot_base, v, "CTR_JAILER_CHROOT_BASE", err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_IMAGE")) && *v && set_str(&spec->image, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_MAX_IMAGE_SIZE")) && *v &&
	    parse_image_budget(v, "CTR_JAILER_MAX_IMAGE_SIZE", &spec->max_image_size, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_KERNEL")) && *v && set_str(&spec->kernel, v, err) < 0)
		return -1;
	if ((v = getenv_from(env, "CTR_JAILER_RUN_DIR")) && *v &&
	    set_str(&spec->run_base, v, err) < 0)
		return -1;
	return 0;
}

static bool in_list(const struct cj_strv *list, const char *name, size_t len)
{
	for (size_t i = 0; i < list->n; i++)
		if (strlen(list->v[i]) == len && strncmp(list->v[i], name, len) == 0)
			return true;
	return false;
}

static int passthrough_env(struct cj_spec *spec, char **env, const struct cj_strv *hidden,
                           struct cj_err *err)
{
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq || !valid_env_name(env[i], (size_t)(eq - env[i])) ||
		    cj_env_is_runtime_own(env[i], (size_t)(eq - env[i])) ||
		    in_list(hidden, env[i], (size_t)(eq - env[i])))
			continue;
		if (cj_env_set(&spec->env, env[i]) < 0)
			return cj_fail(err, ENOMEM, "environment");
	}
	return 0;
}

static int load_env_file(struct cj_spec *spec, const char *path, char **env, struct cj_err *err)
{
	char *text;
	size_t len;
	int r;

	if (cj_read_file(path, &text, &len, err) < 0)
		return cj_err_wrap(err, "--env-file");
	r = cj_env_file_parse(text, len, path, env, &spec->env, err);
	free(text);
	return r;
}

/* --image: the image's config under the command line, with docker's rules:
 * arguments replace Cmd, --entrypoint replaces Entrypoint (and drops Cmd),
 * passthrough/--env-file/-e go on top of Env, -w and -u win over
 * WorkingDir and User; StopSignal becomes the guest's stop signal. */
static int resolve_image(struct cj_spec *spec, struct cj_err *err)
{
	const struct cj_image_config *cfg = NULL;
	struct cj_strv argv, env;

	if (spec->image) {
		struct cj_image *img = calloc(1, sizeof *img);
		if (!img)
			return cj_fail(err, ENOMEM, "image");
		if (cj_image_open(spec->image, spec->cache_dir, img, err) < 0) {
			free(img);
			return -1;
		}
		img->max_size = spec->max_image_size;
		spec->image_info = img;
		cfg = &img->config;
	} else if (!spec->has_entrypoint) {
		return 0;
	}
	const char *ep = spec->entrypoint;
	if (cj_image_command(cfg, spec->has_entrypoint, ep, &spec->argv, &argv, err) < 0)
		return spec->image ? cj_err_wrap(err, "image %s", spec->image) : -1;
	cj_strv_free(&spec->argv);
	spec->argv = argv;
	if (!cfg)
		return 0;
	if (cj_image_env(cfg, &spec->env, &env, err) < 0)
		return -1;
	cj_strv_free(&spec->env);
	spec->env = env;
	if (!spec->workdir && cfg->workdir && set_str(&spec->workdir, cfg->workdir, err) < 0)
		return -1;
	if (!spec->user && cfg->user && set_str(&spec->user, cfg->user, err) < 0)
		return -1;
	spec->stop_signal = cfg->stop_signal_num;
	return 0;
}

int cj_spec_from_args(struct cj_spec *spec, int argc, char **argv, char **env, struct cj_err *err)
{
	bool passthrough = true;
	int opt;
	struct cj_strv env_args = {0}, env_files = {0}, hidden = {0};
	struct stat st;
	int r = -1;
	bool rootfs_flag = false, image_flag = false; /* given on the command line */

	memset(spec, 0, sizeof *spec);
	spec->stop_timeout_s = 10;
	spec->volume_size = CJ_DEFAULT_VOLUME_SIZE;
	if (set_str(&spec->rootfs, CJ_DEFAULT_ROOTFS, err) < 0 ||
	    set_str(&spec->volumes_dir, CJ_DEFAULT_VOLUMES_DIR, err) < 0 ||
	    set_str(&spec->cache_dir, CJ_DEFAULT_CACHE, err) < 0 ||
	    set_str(&spec->run_base, CJ_DEFAULT_RUN_BASE, err) < 0 ||
	    set_str(&spec->qemu_bin, "qemu-system-x86_64", err) < 0 ||
	    set_str(&spec->chroot_base, CJ_DEFAULT_CHROOT_BASE, err) < 0)
		goto out;
	if (apply_seed_env(spec, env, err) < 0)
		goto out;

	optind = 0; /* "+": stop at the first operand, the guest command */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:e:w:u:v:p:", run_options, NULL)) != -1) {
		switch (opt) {
		case OPT_ROOTFS:
			rootfs_flag = true;
			r = set_str(&spec->rootfs, optarg, err);
			break;
		case OPT_IMAGE:
			image_flag = true;
			r = set_str(&spec->image, optarg, err);
			break;
		case OPT_ENTRYPOINT:
			spec->has_entrypoint = true;
			r = set_str(&spec->entrypoint, optarg, err);
			break;
		case OPT_KERNEL:
			r = set_str(&spec->kernel, optarg, err);
			break;
		case OPT_MODULES:
			r = set_str(&spec->modules_dir, optarg, err);
			break;
		case OPT_CPUS:
			r = parse_cpus(optarg, "--cpus", &spec->cpus, err);
			break;
		case OPT_MEMORY:
			r = parse_memory(optarg, "--memory", &spec->memory_mib, err);
			break;
		case 'e':
			r = cj_strv_push(&env_args, optarg) < 0 ? cj_fail(err, ENOMEM, "env") : 0;
			break;
		case OPT_ENV_FILE:
			r = cj_strv_push(&env_files, optarg) < 0 ? cj_fail(err, ENOMEM, "env") : 0;
			break;
		case 'w':
			if (optarg[0] != '/') {
				r = cj_fail(err, 0, "--workdir '%s' must be an absolute path",
				            optarg);
				break;
			}
			r = set_str(&spec->workdir, optarg, err);
			break;
		case 'u':
			/* "" means the image's default user, as with docker */
			free(spec->user);
			spec->user = NULL;
			r = optarg[0] ? set_str(&spec->user, optarg, err) : 0;
			break;
		case OPT_HOSTNAME:
			if (strlen(optarg) == 0 || strlen(optarg) > 64) {
				r = cj_fail(err, 0, "--hostname must be 1 to 64 characters");
				break;
			}
			r = set_str(&spec->hostname, optarg, err);
			break;
		case OPT_ACCEL:
			r = 0;
			if (strcmp(optarg, "auto") == 0)
				spec->accel = CJ_ACCEL_AUTO;
			else if (strcmp(optarg, "kvm") == 0)
				spec->accel = CJ_ACCEL_KVM;
			else if (strcmp(optarg, "tcg") == 0)
				spec->accel = CJ_ACCEL_TCG;
			else
				r = cj_fail(err, 0, "--accel '%s' is invalid: use auto, kvm or tcg",
				            optarg);
			break;
		case OPT_STOP_TIMEOUT: {
			char *end;
			unsigned long s;
			errno = 0;
			s = strtoul(optarg, &end, 10);
			r = 0;
			if (errno || *end || end == optarg || s > 3600)
				r = cj_fail(
				    err, 0,
				    "--stop-timeout '%s' is invalid: give seconds from 0 to 3600",
				    optarg);
			spec->stop_timeout_s = (unsigned)s;
			break;
		}
		case OPT_TIMINGS:
			spec->timings = true;
			r = 0;
			break;
		case OPT_CACHE_DIR:
			r = set_str(&spec->cache_dir, optarg, err);
			break;
		case OPT_QEMU:
			r = set_str(&spec->qemu_bin, optarg, err);
			break;
		case OPT_VMM:
			r = parse_vmm(optarg, "--vmm", &spec->vmm, err);
			break;
		case OPT_FIRECRACKER:
			r = set_str(&spec->firecracker_bin, optarg, err);
			break;
		case OPT_JAILER:
			r = set_str(&spec->jailer_bin, optarg, err);
			break;
		case OPT_CHROOT_BASE:
			r = set_abs_path(&spec->chroot_base, optarg, "--chroot-base", err);
			break;
		case OPT_ROOTFS_SIZE:
			r = cj_parse_size(optarg, 1ull << 20, &spec->rootfs_size) < 0
			        ? cj_fail(err, 0,
			                  "--rootfs-size '%s' is invalid: give a size such as 2G",
			                  optarg)
			        : 0;
			break;
		case OPT_NO_PASSTHROUGH:
			passthrough = false;
			r = 0;
			break;
		case OPT_BOOT_ARGS:
			r = set_str(&spec->boot_args, optarg, err);
			break;
		case OPT_EXTRA_BOOT_ARGS:
			r = set_str(&spec->extra_boot_args, optarg, err);
			break;
		case 'v':
			r = add_volume(spec, optarg, err);
			break;
		case OPT_VOLUME_SIZE:
			r = parse_volume_size(optarg, "--volume-size", &spec->volume_size, err);
			break;
		case OPT_VOLUMES_DIR:
			r = set_abs_path(&spec->volumes_dir, optarg, "--volumes-dir", err);
			break;
		case OPT_DATA:
			r = set_abs_path(&spec->data_dir, optarg, "--data", err);
			break;
		case OPT_DATA_MOUNT:
			r = set_abs_path(&spec->data_mount, optarg, "--data-mount", err);
			break;
		case OPT_DATA_SIZE:
			r = parse_volume_size(optarg, "--data-size", &spec->datafs_size, err);
			break;
		case OPT_NO_JAIL:
			spec->jail.disabled = true;
			r = 0;
			break;
		case OPT_JAIL_USER:
			r = set_str(&spec->jail.user, optarg, err);
			break;
		case OPT_JAIL_UID_RANGE:
			r = cj_jail_uid_range_parse(optarg, "--jail-uid-range", &spec->jail, err);
			break;
		case OPT_CPU_QUOTA:
			r = parse_cpu_quota(optarg, "--cpu-quota", &spec->jail.cpu_quota, err);
			break;
		case OPT_MEMORY_LIMIT:
			r = parse_volume_size(optarg, "--memory-limit", &spec->jail.memory_limit,
			                      err);
			break;
		case OPT_PIDS_LIMIT:
			r = parse_pids(optarg, "--pids-limit", &spec->jail.pids_limit, err);
			break;
		case OPT_NETWORK:
			r = 0;
			if (strcmp(optarg, "none") == 0)
				spec->net.mode = CJ_NET_NONE;
			else if (strcmp(optarg, "tap") == 0)
				spec->net.mode = CJ_NET_TAP;
			else
				r = cj_fail(err, 0, "--network '%s' is invalid: use tap or none",
				            optarg);
			break;
		case OPT_TAP_IP:
			r = set_str(&spec->net.tap_ip, optarg, err);
			break;
		case OPT_HOST_IFACE:
			r = set_str(&spec->net.host_iface, optarg, err);
			break;
		case OPT_FIREWALL:
			r = parse_firewall(optarg, &spec->net.firewall, err);
			break;
		case 'p':
			if (spec->net.nports >= CJ_MAX_PORTS) {
				r = cj_fail(err, 0, "too many published ports (at most %d)",
				            CJ_MAX_PORTS);
				break;
			}
			r = cj_port_parse(optarg, &spec->net.ports[spec->net.nports], err);
			if (r == 0)
				spec->net.nports++;
			break;
		case OPT_DNS:
			if (spec->net.ndns >= CJ_MAX_DNS ||
			    cj_ipv4_parse(optarg, &spec->net.dns[spec->net.ndns]) < 0) {
				r = cj_fail(err, 0,
				            "--dns '%s' is invalid: give up to %d IPv4 addresses",
				            optarg, CJ_MAX_DNS);
				break;
			}
			spec->net.ndns++;
			r = 0;
			break;
		case OPT_EGRESS:
			r = cj_egress_mode_parse(optarg, "--egress", &spec->net.egress, err);
			break;
		case OPT_ALLOW_EGRESS:
			r = cj_allow_egress_add(&spec->net, optarg, "--allow-egress", err);
			break;
		case OPT_ALLOW_LINK_LOCAL:
			spec->net.allow_link_local = true;
			r = 0;
			break;
		case OPT_SECRET:
			r = add_secret(spec, optarg, env, &hidden, err);
			break;
		case OPT_MAX_IMAGE_SIZE:
			r = parse_image_budget(optarg, "--max-image-size", &spec->max_image_size,
			                       err);
			break;
		case ':':
			r = cj_fail(err, 0, "option '%s' needs a value", argv[optind - 1]);
			break;
		default:
			if (optopt)
				r = cj_fail(err, 0,
				            "unknown option '-%c' (see 'ctr-jailer run --help')",
				            optopt);
			else
				r = cj_fail(err, 0,
				            "unknown option '%s' (see 'ctr-jailer run --help')",
				            argv[optind - 1]);
			break;
		}
		if (r < 0)
			goto out;
	}
	if ((r = cj_egress_resolve(&spec->net, err)) < 0)
		goto out;
	for (int i = optind; i < argc; i++)
		if (cj_strv_push(&spec->argv, argv[i]) < 0) {
			r = cj_fail(err, ENOMEM, "argv");
			goto out;
		}
	if (rootfs_flag && image_flag) {
		r = cj_fail(err, 0, "give --rootfs or --image, not both");
		goto out;
	}
	if (rootfs_flag && spec->image) { /* the flag wins over CTR_JAILER_IMAGE */
		free(spec->image);
		spec->image = NULL;
	}
	if (spec->argv.n == 0 && !spec->image && !spec->has_entrypoint) {
		r = cj_fail(err, 0,
		            "no command given: put the guest command after the options, e.g. "
		            "'ctr-jailer run -- /bin/echo hello'");
		goto out;
	}

	/* Environment layers: passthrough < env files < -e. */
	r = 0;
	if (passthrough)
		r = passthrough_env(spec, env, &hidden, err);
	for (size_t i = 0; r == 0 && i < env_files.n; i++)
		r = load_env_file(spec, env_files.v[i], env, err);
	for (size_t i = 0; r == 0 && i < env_args.n; i++)
		r = env_add_arg(&spec->env, env_args.v[i], env, err);
	if (r < 0)
		goto out;
	if (!spec->env.v && cj_strv_push(&spec->env, "") == 0) {
		free(spec->env.v[0]); /* keep a valid, empty, NULL-terminated vector */
		spec->env.v[0] = NULL;
		spec->env.n = 0;
	}
	if ((r = resolve_image(spec, err)) < 0)
		goto out;
	/* The seed's data drive: /jail/data when it exists (a bound volume). */
	if (!spec->data_dir && stat(CJ_SEED_DATA_DIR, &st) == 0 && S_ISDIR(st.st_mode) &&
	    set_str(&spec->data_dir, CJ_SEED_DATA_DIR, err) < 0) {
		r = -1;
		goto out;
	}
	if (spec->data_mount && !spec->data_dir) {
		r = cj_fail(err, 0,
		            "DATA_MOUNT is set but there is no data drive: bind a directory "
		            "at " CJ_SEED_DATA_DIR " or pass --data DIR");
		goto out;
	}
	if (!spec->cpus)
		spec->cpus = cj_host_cpus();
	if (!spec->memory_mib)
		spec->memory_mib = cj_host_memory_mib();
out:
	cj_strv_free(&env_args);
	cj_strv_free(&env_files);
	cj_strv_free(&hidden);
	if (r < 0)
		cj_spec_free(spec);
	return r;
}

void cj_spec_free(struct cj_spec *spec)
{
	free(spec->rootfs);
	free(spec->image);
	free(spec->entrypoint);
	if (spec->image_info) {
		cj_image_free(spec->image_info);
		free(spec->image_info);
	}
	free(spec->kernel);
	free(spec->modules_dir);
	cj_strv_free(&spec->argv);
	cj_strv_free(&spec->env);
	free(spec->workdir);
	free(spec->user);
	free(spec->hostname);
	free(spec->boot_args);
	free(spec->extra_boot_args);
	free(spec->cache_dir);
	free(spec->run_base);
	free(spec->qemu_bin);
	free(spec->firecracker_bin);
	free(spec->jailer_bin);
	free(spec->chroot_base);
	for (size_t i = 0; i < spec->nvolumes; i++)
		cj_volume_spec_free(&spec->volumes[i]);
	free(spec->volumes);
	free(spec->volumes_dir);
	free(spec->data_dir);
	free(spec->data_mount);
	for (size_t i = 0; i < spec->nsecrets; i++) {
		explicit_bzero(spec->secrets[i].value, spec->secrets[i].len);
		free(spec->secrets[i].value);
		free(spec->secrets[i].name);
	}
	free(spec->secrets);
	free(spec->jail.user);
	free(spec->net.tap_ip);
	free(spec->net.host_iface);
	memset(spec, 0, sizeof *spec);
}
