/* SPDX-License-Identifier: Apache-2.0 */
/* The pure half of the Firecracker backend: request bodies (json-c, shaped
 * after ../shared/firecracker/firecracker.yaml), the version rule, the
 * meaning of firecracker's exit codes and the jailer's command line. */
#include "firecracker.h"

#include "util/util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* json-c's constructors return NULL only on ENOMEM; one check at the end
 * of each builder covers every add (json_object_object_add fails on a NULL
 * object and on ENOMEM, both reported). */
static int add(json_object *o, const char *key, json_object *v)
{
	if (!o || !v || json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static json_object *logger_body(const char *path)
{
	json_object *o = json_object_new_object();
	int r = 0;

	r |= add(o, "log_path", json_object_new_string(path));
	/* Warnings and errors only: they are forwarded to our stderr. */
	r |= add(o, "level", json_object_new_string("Warning"));
	r |= add(o, "show_level", json_object_new_boolean(1));
	r |= add(o, "show_log_origin", json_object_new_boolean(0));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *metrics_body(const char *path)
{
	json_object *o = json_object_new_object();

	if (add(o, "metrics_path", json_object_new_string(path)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *machine_body(const struct cj_vm_config *cfg)
{
	json_object *o = json_object_new_object();
	unsigned cpus = cfg->cpus > CJ_FC_MAX_VCPUS ? CJ_FC_MAX_VCPUS : cfg->cpus;
	int r = 0;

	r |= add(o, "vcpu_count", json_object_new_int((int)(cpus ? cpus : 1)));
	r |= add(o, "mem_size_mib", json_object_new_int64((int64_t)cfg->memory_mib));
	r |= add(o, "smt", json_object_new_boolean(0));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *boot_body(const struct cj_vm_config *cfg, const struct cj_fc_paths *p)
{
	json_object *o = json_object_new_object();
	int r = 0;

	r |= add(o, "kernel_image_path", json_object_new_string(p->kernel));
	if (p->initrd)
		r |= add(o, "initrd_path", json_object_new_string(p->initrd));
	/* Firecracker replaces its default command line with this one: the run
	 * builds it complete (console, reboot=k panic=1, pci=off, extras).
	 * A boot to the snapshot point says so to the init (guest/resume.c),
	 * as QEMU's does; a restored guest keeps that command line. */
	char args[sizeof cfg->cmdline + 16];
	snprintf(args, sizeof args, "%s%s", cfg->cmdline, cfg->snap.prepare ? " ctrj.snap=1" : "");
	r |= add(o, "boot_args", json_object_new_string(args));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *drive_body(const struct cj_drive *d, const char *path)
{
	json_object *o = json_object_new_object();
	int r = 0;

	r |= add(o, "drive_id", json_object_new_string(d->id));
	r |= add(o, "path_on_host", json_object_new_string(path));
	/* The init finds its drives by content: none is "the root device". */
	r |= add(o, "is_root_device", json_object_new_boolean(0));
	r |= add(o, "is_read_only", json_object_new_boolean(d->read_only));
	/* Writeback: the guest's flushes reach the host file (fsync in the
	 * guest means data on the host), as with QEMU's cache=writeback. */
	if (!d->read_only)
		r |= add(o, "cache_type", json_object_new_string("Writeback"));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *net_body(const struct cj_vm_config *cfg)
{
	json_object *o = json_object_new_object();
	char mac[18];
	int r = 0;

	snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", cfg->mac[0], cfg->mac[1],
	         cfg->mac[2], cfg->mac[3], cfg->mac[4], cfg->mac[5]);
	r |= add(o, "iface_id", json_object_new_string("eth0"));
	r |= add(o, "host_dev_name", json_object_new_string(cfg->tap));
	r |= add(o, "guest_mac", json_object_new_string(mac));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The agent channel's vsock: Firecracker listens on uds_path for the host's
 * connections (CONNECT <port>). */
static json_object *vsock_body(const char *uds_path)
{
	json_object *o = json_object_new_object();
	int r = 0;

	r |= add(o, "guest_cid", json_object_new_int(CJ_FC_GUEST_CID));
	r |= add(o, "uds_path", json_object_new_string(uds_path));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *cj_fc_action(const char *type)
{
	json_object *o = json_object_new_object();

	if (add(o, "action_type", json_object_new_string(type)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static bool valid_id(const char *id)
{
	if (!id || !*id || strlen(id) > 64)
		return false;
	for (const char *c = id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			return false;
	return true;
}

int cj_fc_plan(const struct cj_vm_config *cfg, const struct cj_fc_paths *paths,
               struct cj_fc_request **out, size_t *n, struct cj_err *err)
{
	size_t cap = cfg->ndrives + 7, used = 0;
	struct cj_fc_request *r = calloc(cap, sizeof *r);

	*out = NULL;
	*n = 0;
	if (!r)
		return cj_fail(err, ENOMEM, "Firecracker configuration");
#define PUSH(built, ...)                                                                           \
	do {                                                                                       \
		snprintf(r[used].path, sizeof r[used].path, __VA_ARGS__);                          \
		if (!(r[used++].body = (built)))                                                   \
			goto nomem;                                                                \
	} while (0)
	PUSH(logger_body(paths->log), "/logger");
	PUSH(metrics_body(paths->metrics), "/metrics");
	PUSH(machine_body(cfg), "/machine-config");
	PUSH(boot_body(cfg, paths), "/boot-source");
	for (size_t i = 0; i < cfg->ndrives; i++) {
		if (!valid_id(cfg->drives[i].id)) {
			cj_fc_plan_free(r, used);
			return cj_fail(err, 0, "drive id '%s' is not valid for Firecracker",
			               cfg->drives[i].id ? cfg->drives[i].id : "");
		}
		PUSH(drive_body(&cfg->drives[i], paths->drives[i]), "/drives/%s",
		     cfg->drives[i].id);
	}
	if (cfg->tap)
		PUSH(net_body(cfg), "/network-interfaces/eth0");
	if (paths->vsock)
		PUSH(vsock_body(paths->vsock), "/vsock");
	PUSH(json_object_new_object(), "/entropy");
#undef PUSH
	*out = r;
	*n = used;
	return 0;
nomem:
	cj_fc_plan_free(r, used);
	return cj_fail(err, ENOMEM, "Firecracker configuration");
}

void cj_fc_plan_free(struct cj_fc_request *reqs, size_t n)
{
	for (size_t i = 0; reqs && i < n; i++)
		json_object_put(reqs[i].body);
	free(reqs);
}

int cj_fc_parse_version(const char *s, unsigned v[3])
{
	int used = 0;

	if (!s)
		return -1;
	if (*s == 'v')
		s++;
	if (sscanf(s, "%u.%u.%u%n", &v[0], &v[1], &v[2], &used) != 3 || used == 0)
		return -1;
	/* a pre-release or build suffix may follow: "-dev", "-rc1" */
	return s[used] == '\0' || s[used] == '-' || s[used] == '+' ? 0 : -1;
}

int cj_fc_check_version(const char *s, struct cj_err *err)
{
	unsigned v[3];
	char clean[64];

	cj_fc_sanitize(s ? s : "", clean, sizeof clean);
	if (cj_fc_parse_version(s, v) < 0)
		return cj_fail(
		    err, 0, "Firecracker reported a version ctr-jailer cannot read: '%s'", clean);
	unsigned long long have = (unsigned long long)v[0] << 40 | (unsigned long long)v[1] << 20 |
	                          v[2],
	                   need = (unsigned long long)CJ_FC_MIN_MAJOR << 40 |
	                          (unsigned long long)CJ_FC_MIN_MINOR << 20 | CJ_FC_MIN_PATCH;
	if (v[1] >= 1u << 20 || v[2] >= 1u << 20 || have < need)
		return cj_fail(err, 0,
		               "Firecracker %s is too old: ctr-jailer needs " CJ_FC_MIN_VERSION
		               " or newer (older releases announce virtio devices only on the "
		               "kernel command line, which the guest's modular virtio_mmio does "
		               "not read); install a newer release with its jailer",
		               clean);
	return 0;
}

void cj_fc_describe_exit(int st, char *buf, size_t len)
{
	if (WIFSIGNALED(st)) {
		snprintf(buf, len, "Firecracker was killed by signal %d (%s)", WTERMSIG(st),
		         strsignal(WTERMSIG(st)));
		return;
	}
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	switch (code) {
	case 0:
		snprintf(buf, len,
		         "the guest rebooted without reporting a status (a kernel panic reboots "
		         "with panic=1, or a driver is missing: see the console above)");
		break;
	case 1:
		snprintf(buf, len, "Firecracker failed (exit status 1; its log lines are above)");
		break;
	case 2:
		snprintf(buf, len, "Firecracker hit an unexpected error (exit status 2)");
		break;
	case 148:
		snprintf(buf, len,
		         "Firecracker was stopped by its seccomp filter (exit status 148: it made "
		         "a system call it may not make)");
		break;
	case 149:
		snprintf(buf, len, "Firecracker died of SIGBUS (exit status 149)");
		break;
	case 150:
		snprintf(buf, len, "Firecracker died of SIGSEGV (exit status 150)");
		break;
	case 151:
		snprintf(buf, len,
		         "Firecracker died of SIGXFSZ (exit status 151: a file reached the jail's "
		         "file size limit)");
		break;
	case 152:
		snprintf(buf, len, "Firecracker rejected its configuration file (exit status 152)");
		break;
	case 153:
		snprintf(buf, len,
		         "Firecracker rejected its command-line arguments (exit status 153: is "
		         "the jailer from the same release as firecracker?)");
		break;
	case 154:
		snprintf(buf, len, "Firecracker died of SIGXCPU (exit status 154: CPU time limit)");
		break;
	case 155:
		snprintf(buf, len, "Firecracker died of SIGPIPE (exit status 155)");
		break;
	case 156:
		snprintf(buf, len, "Firecracker died of SIGHUP (exit status 156)");
		break;
	case 157:
		snprintf(buf, len, "Firecracker died of SIGILL (exit status 157)");
		break;
	default:
		snprintf(buf, len, "Firecracker exited with status %d", code);
		break;
	}
}

void cj_fc_sanitize(const char *in, char *out, size_t len)
{
	size_t o = 0;

	if (!len)
		return;
	for (; *in && o + 1 < len; in++)
		out[o++] = (*in >= 0x20 && *in < 0x7f) ? *in : ' ';
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

char **cj_fc_jailer_argv(const struct cj_fc_jailer_args *a)
{
	char **v = NULL;
	size_t n = 0;
	int r = 0;
	const struct cj_vm_limits *l = a->limits;

	r |= cj_argv_push(&v, &n, "%s", a->jailer_bin);
	r |= cj_argv_push(&v, &n, "--id");
	r |= cj_argv_push(&v, &n, "%s", a->id);
	r |= cj_argv_push(&v, &n, "--exec-file");
	r |= cj_argv_push(&v, &n, "%s", a->exec_file);
	r |= cj_argv_push(&v, &n, "--uid");
	r |= cj_argv_push(&v, &n, "%u", (unsigned)a->uid);
	r |= cj_argv_push(&v, &n, "--gid");
	r |= cj_argv_push(&v, &n, "%u", (unsigned)a->gid);
	r |= cj_argv_push(&v, &n, "--cgroup-version");
	r |= cj_argv_push(&v, &n, "%d", a->cgroup_version);
	r |= cj_argv_push(&v, &n, "--chroot-base-dir");
	r |= cj_argv_push(&v, &n, "%s", a->chroot_base);
	r |= cj_argv_push(&v, &n, "--new-pid-ns");
	if (a->netns) {
		r |= cj_argv_push(&v, &n, "--netns");
		r |= cj_argv_push(&v, &n, "%s", a->netns);
	}
	if (l && l->cpu_quota_us) {
		unsigned long long period = l->cpu_period_us ? l->cpu_period_us : 100000;
		if (a->cgroup_version == 2) {
			r |= cj_argv_push(&v, &n, "--cgroup");
			r |= cj_argv_push(&v, &n, "cpu.max=%llu %llu",
			                  (unsigned long long)l->cpu_quota_us, period);
		} else {
			r |= cj_argv_push(&v, &n, "--cgroup");
			r |= cj_argv_push(&v, &n, "cpu.cfs_period_us=%llu", period);
			r |= cj_argv_push(&v, &n, "--cgroup");
			r |= cj_argv_push(&v, &n, "cpu.cfs_quota_us=%llu",
			                  (unsigned long long)l->cpu_quota_us);
		}
	}
	if (l && l->memory_bytes) {
		r |= cj_argv_push(&v, &n, "--cgroup");
		r |= cj_argv_push(&v, &n, "%s=%llu",
		                  a->cgroup_version == 2 ? "memory.max" : "memory.limit_in_bytes",
		                  (unsigned long long)l->memory_bytes);
	}
	if (l && l->pids) {
		r |= cj_argv_push(&v, &n, "--cgroup");
		r |= cj_argv_push(&v, &n, "pids.max=%llu", (unsigned long long)l->pids);
	}
	if (a->fsize) {
		r |= cj_argv_push(&v, &n, "--resource-limit");
		r |= cj_argv_push(&v, &n, "fsize=%llu", (unsigned long long)a->fsize);
	}
	r |= cj_argv_push(&v, &n, "--");
	r |= cj_argv_push(&v, &n, "--api-sock");
	r |= cj_argv_push(&v, &n, "%s", CJ_FC_JAIL_API_SOCK);
	if (r) {
		cj_fc_argv_free(v);
		return NULL;
	}
	return v;
}

void cj_fc_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

int cj_cgroup_version(void)
{
	struct statfs fs;

	if (statfs("/sys/fs/cgroup", &fs) == 0 && (unsigned long)fs.f_type == CGROUP2_SUPER_MAGIC)
		return 2;
	return 1;
}
