/* SPDX-License-Identifier: Apache-2.0 */
/* The parsers behind `run`'s option table (run.c): one value each, into the
 * spec. `what` names the flag or variable the value came from. */
#include "run.h"

#include "pull.h"
#include "run/names.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SPEC(c) (((struct run_ctx *)(c))->spec)

static int set_str(char **slot, const char *v, struct cj_err *err)
{
	free(*slot);
	*slot = strdup(v);
	return *slot ? 0 : cj_fail(err, ENOMEM, "out of memory");
}

static int set_abs_path(char **slot, const char *v, const char *what, struct cj_err *err)
{
	if (v[0] != '/')
		return cj_fail(err, 0, "%s '%s' must be an absolute path", what, v);
	return set_str(slot, v, err);
}

/* A string option: the value as given. */
#define STR_OPT(fn, field)                                                                         \
	int fn(void *c, const char *v, const char *what, struct cj_err *err)                       \
	{                                                                                          \
		return set_str(&SPEC(c)->field, v, err);                                           \
	}
/* An absolute path. */
#define PATH_OPT(fn, field)                                                                        \
	int fn(void *c, const char *v, const char *what, struct cj_err *err)                       \
	{                                                                                          \
		return set_abs_path(&SPEC(c)->field, v, what, err);                                \
	}

STR_OPT(opt_entrypoint_value, entrypoint)
STR_OPT(opt_kernel, kernel)
STR_OPT(opt_modules, modules_dir)
STR_OPT(opt_boot_args, boot_args)
STR_OPT(opt_extra_boot_args, extra_boot_args)
STR_OPT(opt_cache_dir, cache_dir)
STR_OPT(opt_run_dir, run_base)
STR_OPT(opt_qemu, qemu_bin)
STR_OPT(opt_firecracker, firecracker_bin)
STR_OPT(opt_jailer, jailer_bin)
STR_OPT(opt_jail_user, jail.user)
STR_OPT(opt_tap_ip, net.tap_ip)
STR_OPT(opt_host_iface, net.host_iface)
STR_OPT(opt_image_env, image)
PATH_OPT(opt_chroot_base, chroot_base)
PATH_OPT(opt_volumes_dir, volumes_dir)
PATH_OPT(opt_data, data_dir)
PATH_OPT(opt_data_mount, data_mount)
PATH_OPT(opt_workdir, workdir)

int opt_rootfs(void *c, const char *v, const char *what, struct cj_err *err)
{
	((struct run_ctx *)c)->rootfs_flag = true;
	SPEC(c)->what_flag = true;
	return set_str(&SPEC(c)->rootfs, v, err);
}

int opt_image(void *c, const char *v, const char *what, struct cj_err *err)
{
	((struct run_ctx *)c)->image_flag = true;
	SPEC(c)->what_flag = true;
	return set_str(&SPEC(c)->image, v, err);
}

int opt_entrypoint(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->has_entrypoint = true;
	return opt_entrypoint_value(c, v, what, err);
}

int opt_user(void *c, const char *v, const char *what, struct cj_err *err)
{
	/* "" means the image's default user, as with docker */
	free(SPEC(c)->user);
	SPEC(c)->user = NULL;
	return v[0] ? set_str(&SPEC(c)->user, v, err) : 0;
}

int opt_hostname(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strlen(v) == 0 || strlen(v) > 64)
		return cj_fail(err, 0, "%s must be 1 to 64 characters", what);
	return set_str(&SPEC(c)->hostname, v, err);
}

static int parse_uint(const char *v, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno || *end || end == v || v[0] == '-' || *out < min || *out > max ? -1 : 0;
}

int opt_cpus(void *c, const char *v, const char *what, struct cj_err *err)
{
	unsigned long long n;

	if (parse_uint(v, 1, CJ_MAX_CPUS, &n) < 0)
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give a whole number of vCPUs from 1 to %u",
		               what, v, CJ_MAX_CPUS);
	SPEC(c)->cpus = (unsigned)n;
	return 0;
}

int opt_memory(void *c, const char *v, const char *what, struct cj_err *err)
{
	uint64_t bytes;

	if (cj_parse_size(v, 1ull << 20, &bytes) < 0)
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give MiB (e.g. 512) or a size such as 2G", what,
		               v);
	if (bytes < (uint64_t)CJ_MIN_MEMORY_MIB << 20)
		return cj_fail(err, 0,
		               "%s '%s' is too small: the kernel needs at least %u MiB to boot a "
		               "guest",
		               what, v, CJ_MIN_MEMORY_MIB);
	SPEC(c)->memory_mib = bytes >> 20;
	return 0;
}

int opt_rootfs_size(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (cj_parse_size(v, 1ull << 20, &SPEC(c)->rootfs_size) < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: give a size such as 2G", what, v);
	return 0;
}

/* The index of v in names (n of them), or -1. */
static int name_index(const char *const *names, size_t n, const char *v)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	return -1;
}

int opt_accel(void *c, const char *v, const char *what, struct cj_err *err)
{
	static const char *const names[] = {
	    [CJ_ACCEL_AUTO] = "auto", [CJ_ACCEL_KVM] = "kvm", [CJ_ACCEL_TCG] = "tcg"};
	int i = name_index(names, sizeof names / sizeof *names, v);

	if (i < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: use auto, kvm or tcg", what, v);
	SPEC(c)->accel = (enum cj_accel)i;
	return 0;
}

int opt_vmm(void *c, const char *v, const char *what, struct cj_err *err)
{
	static const char *const names[] = {
	    [CJ_VMM_AUTO] = "auto", [CJ_VMM_QEMU] = "qemu", [CJ_VMM_FIRECRACKER] = "firecracker"};
	int i = name_index(names, sizeof names / sizeof *names, v);

	if (i < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: use auto, qemu or firecracker", what,
		               v);
	SPEC(c)->vmm = (enum cj_vmm_kind)i;
	return 0;
}

int opt_stop_timeout(void *c, const char *v, const char *what, struct cj_err *err)
{
	unsigned long long s;

	if (parse_uint(v, 0, 3600, &s) < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: give seconds from 0 to 3600", what, v);
	SPEC(c)->stop_timeout_s = (unsigned)s;
	return 0;
}

int opt_timings(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->timings = true;
	return 0;
}

int opt_cold_boot(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->cold_boot = true;
	return 0;
}

int opt_detach(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->detach = true;
	return 0;
}

int opt_interactive(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->interactive = true;
	return 0;
}

int opt_tty(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->tty = true;
	return 0;
}

int opt_console(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->console = true;
	return 0;
}

int opt_sig_proxy(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
		return cj_fail(err, 0, "%s '%s' is invalid: give true or false", what, v);
	SPEC(c)->no_sig_proxy = strcmp(v, "false") == 0;
	return 0;
}

int opt_rm(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->auto_remove = true;
	return 0;
}

int opt_quiet(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->quiet = true;
	return 0;
}

int opt_name(void *c, const char *v, const char *what, struct cj_err *err)
{
	const char *why = cj_name_invalid(v);

	if (why)
		return cj_fail(err, 0, "%s '%s' is invalid: %s", what, v, why);
	return set_str(&SPEC(c)->name, v, err);
}

int opt_restart(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_spec *spec = SPEC(c);
	unsigned long long n = 0;

	spec->restart_always = strcmp(v, "always") == 0;
	spec->restart_on_failure =
	    strncmp(v, "on-failure", 10) == 0 &&
	    (v[10] == '\0' || (v[10] == ':' && parse_uint(v + 11, 1, 1000000, &n) == 0));
	if (!spec->restart_always && !spec->restart_on_failure && strcmp(v, "no") != 0)
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give no, on-failure, on-failure:N (N >= 1) or "
		               "always",
		               what, v);
	spec->restart_max = (unsigned)n;
	return set_str(&spec->restart, v, err);
}

int opt_dry_run(void *c, const char *v, const char *what, struct cj_err *err)
{
	((struct run_ctx *)c)->dry_run = true;
	return 0;
}

int opt_passthrough(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->env_passthrough = CJ_PASSTHROUGH_ON;
	return 0;
}

int opt_no_passthrough(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->env_passthrough = CJ_PASSTHROUGH_OFF;
	return 0;
}

int opt_env(void *c, const char *v, const char *what, struct cj_err *err)
{
	const char *eq = strchr(v, '=');

	if (!cj_env_name_valid(v, eq ? (size_t)(eq - v) : strlen(v)))
		return cj_fail(err, 0, "invalid environment variable '%s': expected NAME=VALUE", v);
	if (cj_strv_push(&((struct run_ctx *)c)->env_args, v) < 0)
		return cj_fail(err, ENOMEM, "env");
	return 0;
}

int opt_env_file(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cj_strv_push(&SPEC(c)->env_files, v) < 0 ? cj_fail(err, ENOMEM, "env") : 0;
}

static int parse_volume_size(const char *v, const char *what, uint64_t *out, struct cj_err *err)
{
	if (cj_parse_size(v, 1ull << 20, out) < 0 || *out < (16ull << 20))
		return cj_fail(err, 0, "%s '%s' is invalid: give a size of at least 16M, e.g. 2G",
		               what, v);
	return 0;
}

int opt_volume_size(void *c, const char *v, const char *what, struct cj_err *err)
{
	return parse_volume_size(v, what, &SPEC(c)->volume_size, err);
}

int opt_data_size(void *c, const char *v, const char *what, struct cj_err *err)
{
	return parse_volume_size(v, what, &SPEC(c)->datafs_size, err);
}

int opt_memory_limit(void *c, const char *v, const char *what, struct cj_err *err)
{
	return parse_volume_size(v, what, &SPEC(c)->jail.memory_limit, err);
}

int opt_volume(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_volume_spec vs;

	if (cj_volume_spec_parse(v, &vs, err) < 0)
		return -1;
	return run_add_volume(SPEC(c), &vs, err);
}

int opt_no_jail(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->jail.disabled = true;
	return 0;
}

int opt_jail_uid_range(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cj_jail_uid_range_parse(v, what, &SPEC(c)->jail, err);
}

int opt_cpu_quota(void *c, const char *v, const char *what, struct cj_err *err)
{
	char *end;
	double q;

	errno = 0;
	q = strtod(v, &end);
	if (errno || *end || end == v || !(q >= 0.01 && q <= 1024))
		return cj_fail(err, 0, "%s '%s' is invalid: give CPUs as a number, e.g. 1.5", what,
		               v);
	SPEC(c)->jail.cpu_quota = q;
	return 0;
}

int opt_pids_limit(void *c, const char *v, const char *what, struct cj_err *err)
{
	unsigned long long n;

	if (parse_uint(v, 16, 1000000, &n) < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: give a number from 16 to 1000000", what,
		               v);
	SPEC(c)->jail.pids_limit = n;
	return 0;
}

int opt_network(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "none") == 0)
		SPEC(c)->net.mode = CJ_NET_NONE;
	else if (strcmp(v, "tap") == 0)
		SPEC(c)->net.mode = CJ_NET_TAP;
	else
		return cj_fail(err, 0, "%s '%s' is invalid: use tap or none", what, v);
	return 0;
}

int opt_firewall(void *c, const char *v, const char *what, struct cj_err *err)
{
	static const struct {
		const char *name;
		enum cj_firewall fw;
	} names[] = {{"auto", CJ_FW_AUTO},
	             {"nft", CJ_FW_NFT},
	             {"nftables", CJ_FW_NFT},
	             {"iptables", CJ_FW_IPTABLES_NFT},
	             {"iptables-nft", CJ_FW_IPTABLES_NFT},
	             {"iptables-legacy", CJ_FW_IPTABLES_LEGACY},
	             {"none", CJ_FW_NONE}};

	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(v, names[i].name) == 0) {
			SPEC(c)->net.firewall = names[i].fw;
			return 0;
		}
	return cj_fail(err, 0,
	               "firewall '%s' is invalid: use auto, nft, iptables, iptables-legacy or none",
	               v);
}

int opt_publish(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_net_spec *net = &SPEC(c)->net;

	if (net->nports >= CJ_MAX_PORTS)
		return cj_fail(err, 0, "too many published ports (at most %d)", CJ_MAX_PORTS);
	if (cj_port_parse(v, &net->ports[net->nports], err) < 0)
		return -1;
	net->nports++;
	return 0;
}

int opt_publish_env(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cj_publish_env_parse(v, &SPEC(c)->net, err);
}

int opt_dns(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_net_spec *net = &SPEC(c)->net;

	if (net->ndns >= CJ_MAX_DNS || cj_ipv4_parse(v, &net->dns[net->ndns]) < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: give up to %d IPv4 addresses", what, v,
		               CJ_MAX_DNS);
	net->ndns++;
	return 0;
}

int opt_egress(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cj_egress_mode_parse(v, what, &SPEC(c)->net.egress, err);
}

int opt_allow_egress(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cj_allow_egress_add(&SPEC(c)->net, v, what, err);
}

int opt_allow_egress_env(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cj_allow_egress_list_parse(v, what, &SPEC(c)->net, err);
}

int opt_allow_link_local(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->net.allow_link_local = true;
	return 0;
}

int opt_allow_link_local_env(void *c, const char *v, const char *what, struct cj_err *err)
{
	bool *out = &SPEC(c)->net.allow_link_local;

	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
		*out = false;
	else
		return cj_fail(err, 0, "%s '%s' is invalid: use 1 or 0", what, v);
	return 0;
}

/* The image unpack budget: a size, MiB when bare, at least 1 MiB. */
int opt_max_image_size(void *c, const char *v, const char *what, struct cj_err *err)
{
	uint64_t *out = &SPEC(c)->max_image_size;

	if (cj_parse_size(v, 1ull << 20, out) < 0 || *out < (1ull << 20))
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give the most an image may unpack to, e.g. 16G",
		               what, v);
	return 0;
}

int opt_cache_max(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (cj_parse_size(v, 1ull << 20, &SPEC(c)->cache_max) < 0 || !SPEC(c)->cache_max)
		return cj_fail(err, 0,
		               "%s '%s' is invalid: give the most the cache may hold, e.g. 20G",
		               what, v);
	return 0;
}

/* NAME=@FILE or NAME=env:VAR. A variable's value is taken now and the
 * variable is not passed through to the guest's environment; a file is
 * read by the inputs stage (run/inputs.c). */
int opt_secret(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct run_ctx *ctx = c;
	struct cj_spec *spec = ctx->spec;
	const char *eq = strchr(v, '=');
	int nlen = eq ? (int)(eq - v) : 0;
	struct ctrj_secret sec = {0};
	char *file = NULL;

	if (!eq || !ctrj_secret_name_valid(v, (size_t)nlen))
		return cj_fail(err, 0,
		               "%s '%s' is invalid: use NAME=@FILE or NAME=env:VAR (NAME of "
		               "letters, digits, '_', '.', '-')",
		               what, v);
	if (spec->nsecrets >= CTRJ_MAX_SECRETS)
		return cj_fail(err, 0, "too many secrets (at most %u)", CTRJ_MAX_SECRETS);
	for (size_t i = 0; i < spec->nsecrets; i++)
		if (strncmp(spec->secrets[i].name, v, (size_t)nlen) == 0 &&
		    spec->secrets[i].name[nlen] == '\0')
			return cj_fail(err, 0, "secret %.*s given twice", nlen, v);
	if (eq[1] == '@') {
		if (!(file = strdup(eq + 2)))
			return cj_fail(err, ENOMEM, "secret");
	} else if (strncmp(eq + 1, "env:", 4) == 0) {
		const char *val = eq[5] ? cj_env_lookup(ctx->env, eq + 5, strlen(eq + 5)) : NULL;
		if (!val)
			return cj_fail(err, 0, "%s %.*s: environment variable '%s' is not set",
			               what, nlen, v, eq + 5);
		sec.len = strlen(val);
		if (!(sec.value = (uint8_t *)strdup(val)) || cj_strv_push(&ctx->hidden, eq + 5) < 0)
			return free(sec.value), cj_fail(err, ENOMEM, "secret");
	} else {
		return cj_fail(err, 0, "%s '%.*s=...': the value must be @FILE or env:VAR", what,
		               nlen, v);
	}
	sec.name = strndup(v, (size_t)nlen);
	struct ctrj_secret *ns = realloc(spec->secrets, (spec->nsecrets + 1) * sizeof *ns);
	if (ns)
		spec->secrets = ns;
	char **nf = realloc(spec->secret_files, (spec->nsecrets + 1) * sizeof *nf);
	if (nf)
		spec->secret_files = nf;
	if (!sec.name || !ns || !nf) {
		free(sec.name);
		free(sec.value);
		free(file);
		return cj_fail(err, ENOMEM, "secret");
	}
	spec->secret_files[spec->nsecrets] = file;
	ns[spec->nsecrets++] = sec;
	return 0;
}

/* The registry options, shared with `pull`. */
int opt_pull(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_policy(&SPEC(c)->pull, v, what, err);
}

int opt_platform(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_platform(&SPEC(c)->pull, v, what, err);
}

int opt_creds(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_creds(&SPEC(c)->pull, v, what, err);
}

int opt_cert_dir(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_cert_dir(&SPEC(c)->pull, v, what, err);
}

int opt_insecure_registry(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_insecure(&SPEC(c)->pull, v, what, err);
}
