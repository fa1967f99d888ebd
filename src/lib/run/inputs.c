/* SPDX-License-Identifier: Apache-2.0 */
#include "inputs.h"

#include "image/oci.h"
#include "kernel/kernel.h"
#include "registry/pull.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GUEST_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- reading ------------------------------------------------------------- */

static bool in_list(const struct cj_strv *list, const char *name, size_t len)
{
	for (size_t i = 0; i < list->n; i++)
		if (strlen(list->v[i]) == len && strncmp(list->v[i], name, len) == 0)
			return true;
	return false;
}

/* An env file's entries go over the passthrough and under -e. */
static int load_env_file(struct cj_spec *spec, const char *path, struct cj_err *err)
{
	cj_autofree char *text = NULL;
	struct cj_strv entries = {0};
	size_t len;
	int r = 0;

	if (cj_read_file(path, &text, &len, err) < 0)
		return cj_err_wrap(err, "--env-file");
	if (cj_env_file_parse(text, len, path, spec->lookup_env, &entries, err) < 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < entries.n; i++) {
		const char *e = entries.v[i];
		if (in_list(&spec->env_flag_names, e, strcspn(e, "=")))
			continue;
		if (cj_env_set(&spec->env, e) < 0)
			r = cj_fail(err, ENOMEM, "environment");
	}
	cj_strv_free(&entries);
	return r;
}

static int load_secret(struct ctrj_secret *sec, const char *path, struct cj_err *err)
{
	struct stat st;
	char *text;
	size_t len;

	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return cj_fail(err, 0, "--secret %s: %s is not a regular file", sec->name, path);
	if (cj_read_file(path, &text, &len, err) < 0)
		return cj_err_wrap(err, "--secret %s", sec->name);
	sec->value = (uint8_t *)text;
	sec->len = len;
	return 0;
}

static int set_str(char **slot, const char *v, struct cj_err *err)
{
	free(*slot);
	*slot = strdup(v);
	return *slot ? 0 : cj_fail(err, ENOMEM, "out of memory");
}

static int open_image(struct cj_spec *spec, struct cj_err *err)
{
	struct cj_image *img = calloc(1, sizeof *img);

	if (!img)
		return cj_fail(err, ENOMEM, "image");
	if (cj_pull_for_run(spec->image, &spec->pull, spec->cache_dir, spec->lookup_env, err) < 0) {
		free(img);
		return -1;
	}
	if (cj_image_open(spec->image, spec->cache_dir, img, err) < 0) {
		free(img);
		return -1;
	}
	img->max_size = spec->max_image_size;
	spec->image_info = img;
	return 0;
}

/* The image's Healthcheck under --health-*: the command unless one was
 * given (NONE disables it), each value the flags left unset. */
static int image_health(struct cj_health_spec *h, const struct cj_image_config *cfg,
                        struct cj_err *err)
{
	const struct cj_strv *t = &cfg->health_test;

	if (!h->test.n && t->n && strcmp(t->v[0], "NONE") == 0)
		h->disabled = true;
	else if (!h->test.n && t->n > 1 && strcmp(t->v[0], "CMD-SHELL") == 0) {
		if (cj_strv_push(&h->test, "/bin/sh") < 0 || cj_strv_push(&h->test, "-c") < 0 ||
		    cj_strv_push(&h->test, t->v[1]) < 0)
			return cj_fail(err, ENOMEM, "Healthcheck");
	} else if (!h->test.n && t->n > 1) {
		for (size_t i = 1; i < t->n; i++)
			if (cj_strv_push(&h->test, t->v[i]) < 0)
				return cj_fail(err, ENOMEM, "Healthcheck");
	}
	if (!h->interval_ms)
		h->interval_ms = cfg->health_interval_ms;
	if (!h->timeout_ms)
		h->timeout_ms = cfg->health_timeout_ms;
	if (!h->start_period_ms)
		h->start_period_ms = cfg->health_start_period_ms;
	if (!h->retries)
		h->retries = cfg->health_retries;
	return 0;
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
		if (open_image(spec, err) < 0)
			return -1;
		cfg = &spec->image_info->config;
	} else if (!spec->has_entrypoint) {
		return 0;
	}
	if (cj_image_command(cfg, spec->has_entrypoint, spec->entrypoint, &spec->argv, &argv, err) <
	    0)
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
	return image_health(&spec->health, cfg, err);
}

static int data_drive(struct cj_spec *spec, struct cj_err *err)
{
	struct stat st;

	/* The seed's data drive: /jail/data when it exists (a bound volume). */
	if (!spec->data_dir && stat(CJ_SEED_DATA_DIR, &st) == 0 && S_ISDIR(st.st_mode) &&
	    set_str(&spec->data_dir, CJ_SEED_DATA_DIR, err) < 0)
		return -1;
	if (spec->data_mount && !spec->data_dir)
		return cj_fail(err, 0,
		               "DATA_MOUNT is set but there is no data drive: bind a directory "
		               "at " CJ_SEED_DATA_DIR " or pass --data DIR");
	return 0;
}

int cj_inputs_read(struct cj_spec *spec, struct cj_err *err)
{
	for (size_t i = 0; i < spec->env_files.n; i++)
		if (load_env_file(spec, spec->env_files.v[i], err) < 0)
			return -1;
	for (size_t i = 0; spec->secret_files && i < spec->nsecrets; i++)
		if (spec->secret_files[i] && !spec->secrets[i].value &&
		    load_secret(&spec->secrets[i], spec->secret_files[i], err) < 0)
			return -1;
	if (resolve_image(spec, err) < 0)
		return -1;
	return data_drive(spec, err);
}

/* ---- checks -------------------------------------------------------------- */

static const struct {
	int cap;
	const char *name;
} needed_caps[] = {
    {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
    {CAP_NET_ADMIN, "CAP_NET_ADMIN"},
    {CAP_SYS_CHROOT, "CAP_SYS_CHROOT"},
    {CAP_CHOWN, "CAP_CHOWN"},
    {CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"},
    {CAP_SETUID, "CAP_SETUID"},
    {CAP_SETGID, "CAP_SETGID"},
    {CAP_SETPCAP, "CAP_SETPCAP"},
    {CAP_KILL, "CAP_KILL"},
};

/* The capabilities README's "Least privilege" table lists: namespaces,
 * mounts and cgroups (SYS_ADMIN), the TAP and firewall (NET_ADMIN), the
 * jail (SYS_CHROOT, CHOWN, DAC_OVERRIDE, SETUID, SETGID, SETPCAP, KILL). */
static int check_privilege(const struct cj_spec *spec, struct cj_err *err)
{
	char missing[256] = "";
	size_t n = 0;

	if (spec->host.euid == 0 && spec->host.cap_effective == 0)
		return 0; /* CapEff unreadable: let the first operation tell */
	for (size_t i = 0; i < sizeof needed_caps / sizeof *needed_caps; i++) {
		int cap = needed_caps[i].cap;
		if (cap == CAP_NET_ADMIN && spec->net.mode == CJ_NET_NONE)
			continue;
		if (!(spec->host.cap_effective & (1ull << cap)))
			n += (size_t)snprintf(missing + n, sizeof missing - n, "%s%s",
			                      n ? ", " : "", needed_caps[i].name);
		if (n >= sizeof missing)
			break;
	}
	if (!missing[0])
		return 0;
	return cj_fail(err, EPERM,
	               "ctr-jailer run needs root (or at least %s); run it with sudo, or in a "
	               "container with those capabilities",
	               missing);
}

/* The release a modules tree was built for: the vermagic of its
 * virtio_blk.ko (the module the init needs first); "" when it cannot tell
 * (no such module, or a compressed one). */
static void modules_release(const char *dir, char *out, size_t len)
{
	char path[PATH_MAX + 256];
	cj_autofree char *dep = NULL, *ko = NULL;
	size_t n, kn;
	const char *line, *magic;
	struct cj_err ignored = {0};

	out[0] = '\0';
	snprintf(path, sizeof path, "%s/modules.dep", dir);
	if (cj_read_file(path, &dep, &n, &ignored) < 0 || !(line = strstr(dep, "virtio_blk.ko:")))
		return;
	while (line > dep && line[-1] != '\n')
		line--;
	snprintf(path, sizeof path, "%s/%.*s", dir, (int)strcspn(line, ":"), line);
	if (cj_read_file(path, &ko, &kn, &ignored) < 0 || !(magic = memmem(ko, kn, "vermagic=", 9)))
		return;
	magic += 9;
	n = strnlen(magic, kn - (size_t)(magic - ko));
	n = strcspn(magic, " ") < n ? strcspn(magic, " ") : n;
	snprintf(out, len, "%.*s", (int)n, magic);
}

/* --modules for the kernel's release: its vermagic says so, else its
 * name when that is a release (lib/modules/<release>). */
static bool modules_match(const char *dir, const char *release)
{
	char have[128];
	const char *base = strrchr(dir, '/');

	base = base && base[1] ? base + 1 : dir;
	modules_release(dir, have, sizeof have);
	if (have[0])
		return strcmp(have, release) == 0;
	return strcmp(base, release) == 0 || !(base[0] >= '0' && base[0] <= '9');
}

static int check_kernel(const struct cj_spec *spec, struct cj_err *err)
{
	struct cj_kernel_info info;

	if (!spec->kernel)
		return 0; /* the fetched default comes with its modules */
	if (cj_kernel_probe(spec->kernel, &info, err) < 0)
		return cj_err_wrap(err, "--kernel");
	if (spec->modules_dir) {
		if (info.release[0] && !modules_match(spec->modules_dir, info.release))
			return cj_fail(err, 0,
			               "--modules %s does not match --kernel %s (release %s): give "
			               "its lib/modules/%s tree",
			               spec->modules_dir, spec->kernel, info.release, info.release);
		return 0;
	}
	if (cj_kernel_is_modular(spec->cache_dir, spec->kernel, &info))
		return cj_fail(err, 0,
		               "--kernel %s (release %s) has its disk drivers as modules: give "
		               "--modules DIR, its lib/modules/%s tree",
		               spec->kernel, info.release[0] ? info.release : "unknown",
		               info.release[0] ? info.release : "<release>");
	return 0;
}

/* Does path exist in the tree at root? Symlinks resolve inside the tree
 * (RESOLVE_IN_ROOT), never on the host. */
static bool in_tree(int root, const char *path)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
	long fd = syscall(SYS_openat2, root, path, &how, sizeof how);

	if (fd < 0)
		return errno != ENOENT && errno != ENOTDIR; /* can't tell: assume present */
	close((int)fd);
	return true;
}

/* Is path where a drive is mounted (a volume, the data drive)? The tree
 * cannot tell what those hold. */
static bool under_mount(const struct cj_spec *spec, const char *path)
{
	for (size_t i = 0; i < spec->nvolumes; i++) {
		const char *g = spec->volumes[i].guest_path;
		if (g && strncmp(path, g, strlen(g)) == 0)
			return true;
	}
	return spec->data_mount && strncmp(path, spec->data_mount, strlen(spec->data_mount)) == 0;
}

static bool found_on_path(const struct cj_spec *spec, int root, const char *cmd)
{
	const char *path = NULL;
	char dir[PATH_MAX + 256];

	for (size_t i = 0; i < spec->env.n && !path; i++)
		if (strncmp(spec->env.v[i], "PATH=", 5) == 0)
			path = spec->env.v[i] + 5;
	if (!path)
		path = GUEST_DEFAULT_PATH;
	while (*path) {
		size_t len = strcspn(path, ":");
		if (len && path[0] != '/')
			return true; /* relative to the workdir: the tree cannot tell */
		snprintf(dir, sizeof dir, "%.*s/%s", (int)len, path, cmd);
		if (len && (under_mount(spec, dir) || in_tree(root, dir)))
			return true;
		path += len + (path[len] == ':');
	}
	return false;
}

static int check_command(const struct cj_spec *spec, struct cj_err *err)
{
	const char *cmd = spec->argv.n ? spec->argv.v[0] : NULL;
	cj_autoclose int root = -1;
	bool found;

	if (spec->image || !cmd || !cmd[0] || (strchr(cmd, '/') && cmd[0] != '/'))
		return 0;
	root = open(spec->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return 0; /* the base image stage reports a missing rootfs */
	found = cmd[0] == '/' ? under_mount(spec, cmd) || in_tree(root, cmd)
	                      : found_on_path(spec, root, cmd);
	if (found)
		return 0;
	cj_fail(err, 0, "%s: command not found in %s%s", cmd, spec->rootfs,
	        cmd[0] == '/' ? "" : " (searched the guest's PATH)");
	err->exit_code = CJ_EXIT_NOT_FOUND;
	return -1;
}

/* Refuse, before anything exists, what cannot boot: missing privilege, a
 * --kernel that is not a kernel or lacks its --modules, a command that a
 * --rootfs tree does not hold (err->exit_code 127). */
static int inputs_check(const struct cj_spec *spec, struct cj_err *err)
{
	if (check_command(spec, err) < 0)
		return -1;
	return check_kernel(spec, err);
}

int cj_inputs_load(struct cj_spec *spec, struct cj_err *err)
{
	if (check_privilege(spec, err) < 0 || cj_inputs_read(spec, err) < 0)
		return -1;
	return inputs_check(spec, err);
}
