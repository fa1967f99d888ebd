/* SPDX-License-Identifier: Apache-2.0 */
#include "spec.h"

#include "image/oci.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- environment --------------------------------------------------------- */

bool cj_env_name_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '=' || s[i] == '\0' || isspace((unsigned char)s[i]))
			return false;
	return true;
}

const char *cj_env_lookup(char **env, const char *name, size_t len)
{
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

int cj_env_add(struct cj_strv *env, const char *arg, char **runtime_env, struct cj_err *err)
{
	const char *eq = strchr(arg, '=');
	size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);

	if (!cj_env_name_valid(arg, klen))
		return cj_fail(err, 0, "invalid environment variable '%s': expected NAME=VALUE",
		               arg);
	if (!eq) {
		const char *v = cj_env_lookup(runtime_env, arg, klen);
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
			if (!cj_env_name_valid(s, klen)) {
				cj_fail(err, 0,
				        "env file %s line %zu: expected NAME=VALUE, got '%.40s'",
				        name, lineno, s);
				free(line);
				return -1;
			}
			if (cj_env_add(env, s, lookup_env, err) < 0) {
				free(line);
				return cj_err_wrap(err, "env file %s line %zu", name, lineno);
			}
		}
		free(line);
		p = nl ? nl + 1 : end;
	}
	return 0;
}

/* ---- defaults ------------------------------------------------------------ */

static int set_default(char **slot, const char *v, struct cj_err *err)
{
	if (*slot)
		return 0;
	*slot = strdup(v);
	return *slot ? 0 : cj_fail(err, ENOMEM, "out of memory");
}

int cj_spec_init(struct cj_spec *spec, struct cj_err *err)
{
	memset(spec, 0, sizeof *spec);
	spec->stop_timeout_s = 10;
	spec->volume_size = CJ_DEFAULT_VOLUME_SIZE;
	if (set_default(&spec->rootfs, CJ_DEFAULT_ROOTFS, err) < 0 ||
	    set_default(&spec->volumes_dir, CJ_DEFAULT_VOLUMES_DIR, err) < 0 ||
	    set_default(&spec->cache_dir, CJ_DEFAULT_CACHE, err) < 0 ||
	    set_default(&spec->run_base, CJ_DEFAULT_RUN_BASE, err) < 0 ||
	    set_default(&spec->qemu_bin, "qemu-system-x86_64", err) < 0 ||
	    set_default(&spec->chroot_base, CJ_DEFAULT_CHROOT_BASE, err) < 0) {
		cj_spec_free(spec);
		return -1;
	}
	return 0;
}

static int check_memory(const struct cj_spec *spec, struct cj_err *err)
{
	uint64_t max = cj_host_memory_max_mib(&spec->host);

	if (max && spec->memory_mib > max)
		return cj_fail(err, 0,
		               "--memory %llu MiB is more than this host can give (%llu MiB%s): "
		               "give --memory %llu or less",
		               (unsigned long long)spec->memory_mib, (unsigned long long)max,
		               spec->host.cgroup_memory_mib == max ? ", our cgroup's limit" : "",
		               (unsigned long long)max);
	return 0;
}

bool cj_health_defaults(struct cj_health_spec *h)
{
	if (!h->interval_ms)
		h->interval_ms = CJ_HEALTH_INTERVAL_MS;
	if (!h->timeout_ms)
		h->timeout_ms = CJ_HEALTH_TIMEOUT_MS;
	if (!h->retries)
		h->retries = CJ_HEALTH_RETRIES;
	return cj_health_wanted(h);
}

bool cj_health_wanted(const struct cj_health_spec *h)
{
	return !h->disabled && h->test.n > 0;
}

static const struct {
	const char *unit;
	double ms;
} duration_units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 6e4}, {"h", 3.6e6}};

/* Digits, then '.' and digits: *v, the end in *end; -1 without digits. */
static int decimal(const char *s, double *v, const char **end)
{
	double scale = 1;
	bool digits = false, point = false;

	for (*v = 0; isdigit((unsigned char)*s) || (*s == '.' && !point); s++) {
		if (*s == '.') {
			point = true;
			continue;
		}
		digits = true;
		if (point)
			*v += (*s - '0') * (scale /= 10);
		else
			*v = *v * 10 + (*s - '0');
	}
	*end = s;
	return digits ? 0 : -1;
}

int cj_duration_parse(const char *s, uint64_t *ms)
{
	double total = 0, v;
	const char *end;

	if (!*s)
		return -1;
	while (*s) {
		size_t ulen = 0, best = SIZE_MAX;
		if (decimal(s, &v, &end) < 0 || v > 1e12)
			return -1;
		while (isalpha((unsigned char)end[ulen]))
			ulen++;
		if (ulen == 0 && !*end && total == 0) { /* a bare number: seconds */
			total = v * 1e3;
			break;
		}
		for (size_t i = 0; i < sizeof duration_units / sizeof *duration_units; i++)
			if (strlen(duration_units[i].unit) == ulen &&
			    strncmp(duration_units[i].unit, end, ulen) == 0)
				best = i;
		if (best == SIZE_MAX)
			return -1;
		total += v * duration_units[best].ms;
		s = end + ulen;
	}
	if (total > 1e12)
		return -1;
	*ms = (uint64_t)(total + 0.5);
	return 0;
}

bool cj_spec_container_mode(const struct cj_spec *spec)
{
	return !spec->what_flag;
}

bool cj_spec_passes_env(const struct cj_spec *spec)
{
	if (spec->env_passthrough != CJ_PASSTHROUGH_AUTO)
		return spec->env_passthrough == CJ_PASSTHROUGH_ON;
	return cj_spec_container_mode(spec);
}

/* The passthrough goes under what -e set (env files come later, over it). */
static int pass_env(struct cj_spec *spec, struct cj_err *err)
{
	for (size_t i = 0; cj_spec_passes_env(spec) && i < spec->passthrough_env.n; i++) {
		const char *e = spec->passthrough_env.v[i], *eq = strchr(e, '=');
		if (!eq || (spec->env.v && cj_env_lookup(spec->env.v, e, (size_t)(eq - e))))
			continue;
		if (cj_env_set(&spec->env, e) < 0)
			return cj_fail(err, ENOMEM, "environment");
	}
	return 0;
}

static int absolute(char **slot, const char *cwd, bool only_paths, struct cj_err *err)
{
	char *abs;

	if (!*slot || (*slot)[0] == '/' || (only_paths && !strchr(*slot, '/')))
		return 0;
	if (asprintf(&abs, "%s/%s", cwd, *slot) < 0)
		return cj_fail(err, ENOMEM, "out of memory");
	free(*slot);
	*slot = abs;
	return 0;
}

int cj_spec_absolute_paths(struct cj_spec *spec, const char *cwd, struct cj_err *err)
{
	char **dirs[] = {&spec->rootfs,    &spec->kernel,     &spec->modules_dir,
	                 &spec->cache_dir, &spec->run_base,   &spec->volumes_dir,
	                 &spec->data_dir,  &spec->chroot_base};
	char **bins[] = {&spec->qemu_bin, &spec->firecracker_bin, &spec->jailer_bin};

	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
		if (absolute(dirs[i], cwd, false, err) < 0)
			return -1;
	for (size_t i = 0; i < sizeof bins / sizeof *bins; i++)
		if (absolute(bins[i], cwd, true, err) < 0) /* a bare name is looked up in PATH */
			return -1;
	for (size_t i = 0; i < spec->nvolumes; i++) /* a bare name is a named volume */
		if (absolute(&spec->volumes[i].source, cwd, true, err) < 0)
			return -1;
	return 0;
}

int cj_spec_resolve(struct cj_spec *spec, const struct cj_host_facts *facts, struct cj_err *err)
{
	spec->host = *facts;
	if (cj_egress_resolve(&spec->net, err) < 0)
		return -1;
	if (!spec->cpus)
		spec->cpus = spec->host.cpus;
	if (!spec->memory_mib)
		spec->memory_mib = cj_host_memory_default_mib(&spec->host);
	else if (check_memory(spec, err) < 0)
		return -1;
	if (pass_env(spec, err) < 0)
		return -1;
	if (!spec->env.v && cj_strv_push(&spec->env, "") == 0) {
		free(spec->env.v[0]); /* keep a valid, empty, NULL-terminated vector */
		spec->env.v[0] = NULL;
		spec->env.n = 0;
	}
	return spec->env.v ? 0 : cj_fail(err, ENOMEM, "environment");
}

void cj_spec_free(struct cj_spec *spec)
{
	for (size_t i = 0; i < spec->nbinds && i < CTRJ_MAX_BIND_FILES; i++) {
		free(spec->binds[i].src);
		free(spec->binds[i].dst);
	}
	free(spec->rootfs);
	free(spec->image);
	cj_pull_settings_free(&spec->pull);
	free(spec->entrypoint);
	if (spec->image_info) {
		cj_image_free(spec->image_info);
		free(spec->image_info);
	}
	free(spec->kernel);
	free(spec->modules_dir);
	cj_strv_free(&spec->argv);
	cj_strv_free(&spec->env);
	cj_strv_free(&spec->env_files);
	cj_strv_free(&spec->env_flag_names);
	cj_strv_free(&spec->passthrough_env);
	cj_strv_free(&spec->health.test);
	free(spec->workdir);
	free(spec->user);
	free(spec->hostname);
	free(spec->name);
	free(spec->restart);
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
	for (size_t i = 0; i < spec->nshares; i++)
		cj_share_spec_free(&spec->shares[i]);
	free(spec->shares);
	for (size_t i = 0; i < spec->ntmpfs; i++)
		cj_tmpfs_spec_free(&spec->tmpfs[i]);
	free(spec->tmpfs);
	free(spec->volumes_dir);
	free(spec->data_dir);
	free(spec->data_mount);
	for (size_t i = 0; i < spec->nsecrets; i++) {
		explicit_bzero(spec->secrets[i].value, spec->secrets[i].len);
		free(spec->secrets[i].value);
		free(spec->secrets[i].name);
		if (spec->secret_files)
			free(spec->secret_files[i]);
	}
	free(spec->secrets);
	free(spec->secret_files);
	free(spec->jail.user);
	free(spec->net.tap_ip);
	free(spec->net.host_iface);
	memset(spec, 0, sizeof *spec);
}
