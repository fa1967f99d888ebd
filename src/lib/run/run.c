/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `ctr-jailer run`, the host pipeline of DESIGN.md, one stage a function:
 *   resolve → base image → initramfs → run dir → jail plan → drives
 *   → network → control disk → start → supervise → collect → teardown.
 * struct run carries what the stages make; teardown releases what is set.
 */
#include "run.h"
#include "run/inputs.h"

#include "cache/cache.h"
#include "ctrj/protocol.h"
#include "image/base.h"
#include "image/oci.h"
#include "jail/jail.h"
#include "kernel/kernel.h"
#include "net/net.h"
#include "run/agent_mux.h"
#include "run/health.h"
#include "run/logfile.h"
#include "run/record.h"
#include "run/runs.h"
#include "run/supervise.h"
#include "run/workload_io.h"
#include "util/interrupt.h"
#include "util/util.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"
#include "vmm_choice.h"
#include "volume/share.h"
#include "volume/volume.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The kernel arguments every backend starts from (each adds its own:
 * ops->boot_args), unless --boot-args replaces them. */
/* How long the on-demand agent channel (Firecracker's vsock) is retried
 * while the guest's agent does not listen yet (a guest still booting):
 * under exec's own 60 s wait for HELLO, so that its client hears why. */
#define AGENT_CONNECT_MS  50000
#define DEFAULT_BOOT_ARGS "console=ttyS0 reboot=k panic=1 pci=off quiet loglevel=1"

struct timings {
	uint64_t start, resolved, base, initramfs, prepared, vmm_exec, vm_exit, done;
	bool base_built, initramfs_built;
	bool image, image_unpacked; /* --image; its layers were unpacked by this run */
	size_t layers, layers_merged, layers_built; /* an image as layers (0: one base) */
	bool vmm_reaped; /* the VMM's wait status, as the supervision saw it */
	int vmm_status;
};

static double ms(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e6 : 0.0;
}

static void print_timings(const struct timings *t, const struct ctrj_status *st, bool have_st)
{
	json_object *o = json_object_new_object();

	json_c_set_serialization_double_format("%.3f", JSON_C_OPTION_THREAD);

	json_object_object_add(o, "resolve_ms", json_object_new_double(ms(t->start, t->resolved)));
	json_object_object_add(o, "base_image_ms",
	                       json_object_new_double(ms(t->resolved, t->base)));
	json_object_object_add(o, "base_image_built", json_object_new_boolean(t->base_built));
	if (t->image)
		json_object_object_add(o, "image_unpacked",
		                       json_object_new_boolean(t->image_unpacked));
	if (t->layers) {
		/* the image's layers as drives; merged: how many of its lowest
		 * layers share the bottom drive (1: none), when the VMM has too
		 * few drive slots for one each */
		json_object_object_add(o, "layer_drives",
		                       json_object_new_int64((int64_t)t->layers));
		json_object_object_add(o, "layers_merged",
		                       json_object_new_int64((int64_t)t->layers_merged));
		json_object_object_add(o, "layers_built",
		                       json_object_new_int64((int64_t)t->layers_built));
	}
	json_object_object_add(o, "initramfs_ms",
	                       json_object_new_double(ms(t->base, t->initramfs)));
	json_object_object_add(o, "initramfs_built", json_object_new_boolean(t->initramfs_built));
	json_object_object_add(o, "vmm_exec_ms", json_object_new_double(ms(t->start, t->vmm_exec)));
	/* Guest times are the guest's boot clock, which starts when the VMM
	 * starts the vCPUs; they are offset by the VMM's exec. */
	if (have_st) {
		double base = ms(t->start, t->vmm_exec);
		json_object_object_add(o, "guest_init_up_ms",
		                       json_object_new_double(base + (double)st->t_init_ns / 1e6));
		json_object_object_add(o, "guest_modules_ms",
		                       json_object_new_double((double)st->t_modules_ns / 1e6));
		if (st->t_workload_start_ns)
			json_object_object_add(
			    o, "workload_start_ms",
			    json_object_new_double(base + (double)st->t_workload_start_ns / 1e6));
		if (st->t_workload_end_ns)
			json_object_object_add(
			    o, "workload_end_ms",
			    json_object_new_double(base + (double)st->t_workload_end_ns / 1e6));
		if (st->t_workload_start_ns)
			json_object_object_add(
			    o, "guest_init_work_ms",
			    json_object_new_double((double)(st->t_workload_start_ns -
			                                    st->t_init_ns - st->t_modules_ns) /
			                           1e6));
	}
	json_object_object_add(o, "vm_exit_ms", json_object_new_double(ms(t->start, t->vm_exit)));
	/* how the VMM ended (QEMU: CTRJ_EXIT_QEMU_STATUS through the init's
	 * fast exit, 0 through the guest kernel's reboot) */
	if (t->vmm_reaped && WIFEXITED(t->vmm_status))
		json_object_object_add(o, "vmm_exit_status",
		                       json_object_new_int(WEXITSTATUS(t->vmm_status)));
	else if (t->vmm_reaped && WIFSIGNALED(t->vmm_status))
		json_object_object_add(o, "vmm_signal",
		                       json_object_new_int(WTERMSIG(t->vmm_status)));
	json_object_object_add(o, "teardown_ms", json_object_new_double(ms(t->vm_exit, t->done)));
	json_object_object_add(o, "total_ms", json_object_new_double(ms(t->start, t->done)));
	fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* The guest's configuration into the control disk fd, from a clean
 * slate: the guest wipes the configuration once read and writes its
 * status, so a restart writes it again. */
static int fill_control_disk(int fd, const struct ctrj_config *cfg, struct cj_err *err)
{
	uint8_t hdr[CTRJ_CTL_HEADER_SIZE];
	uint8_t *buf = NULL;
	size_t len = 0;
	char msg[256];
	int r = 0;

	if (ctrj_config_encode(cfg, &buf, &len, msg, sizeof msg) < 0)
		return cj_fail(err, 0, "%s", msg);
	ctrj_header_encode(hdr, (uint32_t)len);
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, CTRJ_CTL_DISK_SIZE) < 0 ||
	    pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
	    pwrite(fd, buf, len, CTRJ_CTL_CONFIG_OFF) != (ssize_t)len)
		r = cj_fail(err, errno, "write the control disk");
	explicit_bzero(buf, len);
	free(buf);
	return r;
}

/* The control disk lives in a memfd: the guest's configuration (secrets
 * included) never touches a filesystem, tmpfs or not. QEMU opens it as
 * /proc/self/fd/N. Returns the fd. */
static int write_control_disk(const struct ctrj_config *cfg, struct cj_err *err)
{
	int fd = memfd_create("ctr-jailer-control", MFD_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "memfd_create");
	if (fill_control_disk(fd, cfg, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int read_status(int fd, struct ctrj_status *st, struct cj_err *err)
{
	uint8_t buf[CTRJ_CTL_STATUS_SIZE];
	char msg[256];
	int r;

	if (pread(fd, buf, sizeof buf, CTRJ_CTL_STATUS_OFF) != (ssize_t)sizeof buf)
		return cj_fail(err, EIO, "read the guest's status");
	r = ctrj_status_parse(buf, sizeof buf, st, msg, sizeof msg);
	if (r < 0)
		return cj_fail(err, 0, "the guest wrote a malformed status: %s", msg);
	return r;
}

/* Data drive and volumes: prepared (created, locked, checked, grown) before
 * the VM starts, released at teardown. */
struct drives {
	struct cj_volume data;
	bool have_data;
	struct cj_volume vols[CTRJ_MAX_VOLUMES];
	size_t nvols;
	struct ctrj_volume mounts[CTRJ_MAX_VOLUMES + 1];
	size_t nmounts;
};

static void drives_release(struct drives *d)
{
	if (d->have_data)
		cj_volume_release(&d->data);
	for (size_t i = 0; i < d->nvols; i++)
		cj_volume_release(&d->vols[i]);
}

static int check_unique_uuid(const uint8_t *uuid, const char *name, const uint8_t (*seen)[16],
                             size_t nseen, struct cj_err *err)
{
	for (size_t i = 0; i < nseen; i++)
		if (memcmp(seen[i], uuid, 16) == 0)
			return cj_fail(
			    err, 0,
			    "volume %s has the same filesystem UUID as another drive of this "
			    "VM (a copied image?): give it a new one with 'tune2fs -U "
			    "random'",
			    name);
	return 0;
}

static int drives_prepare(const struct cj_spec *spec, const struct cj_fsimage *base,
                          const struct cj_volume_tool_user *tools, struct cj_undo *undo,
                          struct drives *d, struct cj_err *err)
{
	uint8_t seen[CTRJ_MAX_VOLUMES + 2][16];
	size_t nseen = 0;

	memcpy(seen[nseen++], base->uuid, 16);
	/* Validate every volume before creating any: bad input creates nothing. */
	for (size_t i = 0; i < spec->nvolumes; i++) {
		struct cj_volume probe;
		if (cj_volume_resolve(&spec->volumes[i], spec->volumes_dir, &probe, err) < 0)
			return -1;
	}
	if (spec->data_dir) {
		if (cj_volume_prepare_data(spec->data_dir, spec->datafs_size, tools, undo, &d->data,
		                           err) < 0)
			return cj_err_wrap(err, "data drive");
		d->have_data = true;
		if (check_unique_uuid(d->data.uuid, d->data.name, seen, nseen, err) < 0)
			return -1;
		memcpy(seen[nseen++], d->data.uuid, 16);
		if (spec->data_mount) {
			struct ctrj_volume *m = &d->mounts[d->nmounts++];
			memcpy(m->uuid, d->data.uuid, 16);
			m->flags = 0;
			m->path = spec->data_mount;
		}
	}
	for (size_t i = 0; i < spec->nvolumes; i++) {
		struct cj_volume *v = &d->vols[d->nvols];
		if (cj_volume_prepare(&spec->volumes[i], spec->volumes_dir, spec->volume_size,
		                      tools, undo, v, err) < 0)
			return -1;
		d->nvols++;
		for (size_t j = 0; j + 1 < d->nvols; j++)
			if (strcmp(d->vols[j].path, v->path) == 0)
				return cj_fail(err, 0, "volume %s is given twice", v->name);
		if (check_unique_uuid(v->uuid, v->name, seen, nseen, err) < 0)
			return -1;
		memcpy(seen[nseen++], v->uuid, 16);
		struct ctrj_volume *m = &d->mounts[d->nmounts++];
		memcpy(m->uuid, v->uuid, 16);
		m->flags = v->read_only ? CTRJ_VOLUME_READONLY : 0;
		m->path = spec->volumes[i].guest_path;
	}
	return 0;
}

static int exit_code_for(const struct ctrj_status *st, int have, struct cj_supervision *sv,
                         const struct cj_vmm *vmm, struct cj_err *err)
{
	if (have == 1) {
		switch (st->state) {
		case CTRJ_STATE_EXITED:
			return (int)st->code;
		case CTRJ_STATE_SIGNALED:
			return ctrj_signal_code((int)st->signal);
		case CTRJ_STATE_EXEC_FAILED:
			err->exit_code = (int)st->code;
			cj_fail(err, 0, "%s", st->msg);
			return (int)st->code;
		default:
			err->exit_code = CJ_EXIT_GUEST_SETUP;
			cj_fail(err, 0, "guest setup failed: %s", st->msg);
			return CJ_EXIT_GUEST_SETUP;
		}
	}
	if (sv->stop_sig) /* a signal ended the VM before the workload started */
		return ctrj_signal_code(sv->stop_sig);
	if (sv->killed)
		return ctrj_signal_code(SIGKILL);
	if (sv->stop_requested)
		return ctrj_signal_code(SIGTERM); /* stopped before the workload started */
	/* the VMM says whether it failed before the guest ran (125: its own
	 * words) or the guest ended without a status (124) */
	err->exit_code = vmm->ops->exit_error(vmm, sv->vmm_status, cj_vmm_said(sv), err);
	return err->exit_code;
}

/* ---- the pipeline ------------------------------------------------------ */

/* What the stages make, in pipeline order. */
struct run {
	const struct cj_spec *spec;
	struct timings t;
	/* resolve, base image, initramfs */
	struct cj_kernel kernel;
	struct cj_vmm vmm;
	struct cj_vmm_choice choice;
	bool use_kvm;
	char vmlinux[PATH_MAX];
	const char *boot_image;
	struct cj_fsimage base, modules;
	bool have_modules;
	char initramfs[PATH_MAX];
	struct cj_layer_stack stack; /* an image as layers: stack.layers[0] is base */
	int cache_fds[8 + CJ_IMAGE_MAX_LAYER_DRIVES]; /* shared flocks on the cache entries used */
	size_t ncache_fds;
	/* the run record (its directory, id and undo log) */
	struct cj_record *rec;
	char run_dir[PATH_MAX], id[16];
	/* jail plan, drives, network, control disk: vm and cfg */
	struct cj_vm_config vm;
	struct cj_volume_tool_user tools;
	struct drives drives;
	struct cj_net net;
	struct ctrj_config cfg;
	/* host directories (virtiofsd each, per boot) and tmpfs mounts */
	struct ctrj_mount mounts[CTRJ_MAX_MOUNTS];
	char tags[CJ_MAX_SHARES][CJ_SHARE_TAG_MAX + 1];
	struct cj_virtiofsd vfs[CJ_MAX_SHARES];
	size_t nvfs;
	char hostname[65];
	int ctl_fd;
	/* start, supervise, collect */
	sigset_t old_mask;
	int sfd;
	struct cj_supervision sv;
	struct cj_health *health; /* --health-cmd, the image's HEALTHCHECK; NULL: none */
	size_t vmm_mark;          /* the undo log's length before the VMM's entries */
	struct cj_workload_io io; /* the workload's stdio on the agent channel */
	struct ctrj_status st;
	int have_status;
	/* the lifecycle: the console log, the detached parent's pipe (-1: none) */
	struct cj_log log;
	int notify_fd;
	char netline[512]; /* the guest's address and ports, "" without a network */
};

struct uids {
	uid_t *v;
	size_t n, cap;
	bool oom;
};

static int collect_uid(const char *id, json_object *record, void *ctx)
{
	struct uids *u = ctx;
	json_object *v;

	(void)id;
	if (!json_object_object_get_ex(record, "uid", &v) || !json_object_is_type(v, json_type_int))
		return 0;
	if (u->n == u->cap) {
		uid_t *grown = realloc(u->v, (u->cap = u->cap ? 2 * u->cap : 64) * sizeof *grown);
		if (!grown)
			return u->oom = true, -1;
		u->v = grown;
	}
	u->v[u->n++] = (uid_t)json_object_get_int64(v);
	return 0;
}

/* Each run has a uid/gid of its own, in its record: its jailed VMM's, and
 * before that the jailed host tools' that check and grow its volumes (a
 * uid shared with other runs could ptrace a tool holding a volume
 * read-write). With --no-jail the VMM runs as root, but the tools stay
 * jailed and still take the run's own uid from the range (or the
 * --jail-user). Chosen under the run base's "jail" lock, which is let go
 * once the record holds the choice. */
static int assign_ids(struct run *r, struct cj_err *err)
{
	struct cj_jail_spec ids_spec = r->spec->jail;
	struct cj_jail_plan ids;
	struct uids used = {0};
	int lock, rc = -1;

	ids_spec.disabled = false;
	ids_spec.memory_limit = 0; /* only the user and the range count here */
	if (cj_jail_resolve(&ids_spec, 0, &ids, err) < 0)
		return -1;
	if ((lock = cj_run_base_lock(r->spec->run_base, "jail", err)) < 0)
		return -1;
	if (cj_record_each(r->spec->run_base, r->id, collect_uid, &used, err) < 0) {
		if (used.oom)
			cj_fail(err, ENOMEM, "jail uids");
	} else if (cj_jail_pick_ids(&ids_spec, used.v, used.n, &ids, err) == 0 &&
	           cj_record_set_ids(r->rec, ids.uid, ids.gid, err) == 0)
		rc = 0;
	close(lock);
	free(used.v);
	if (rc < 0)
		return -1;
	if (r->vm.jail.enabled) {
		r->vm.jail.uid = ids.uid;
		r->vm.jail.gid = ids.gid;
	}
	r->tools.uid = ids.uid;
	r->tools.gid = ids.gid;
	return 0;
}

/* The kernel, the VMM, and the kernel image the VMM boots: the vmlinux
 * when there is one (no in-guest decompression), else the bzImage for a
 * backend that takes one. */
static int stage_resolve(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;
	struct cj_err verr = {0};

	if (cj_kernel_resolve(spec->cache_dir, spec->kernel, spec->modules_dir, &r->kernel, err) <
	        0 ||
	    cj_vmm_choose(spec, &r->choice, &r->vmm, &r->use_kvm, err) < 0)
		return -1;
	if (spec->nshares && r->vmm.ops != &cj_qemu_ops)
		return cj_fail(err, 0,
		               "host directories (%s) need QEMU's virtiofs, which %s lacks: use "
		               "--vmm qemu, or a named volume (-v NAME:%s)",
		               spec->shares[0].source, r->vmm.ops->name,
		               spec->shares[0].guest_path);
	if (cj_kernel_vmlinux(spec->cache_dir, r->kernel.image, r->vmlinux, sizeof r->vmlinux,
	                      &verr) == 0)
		r->boot_image = r->vmlinux;
	else if (r->vmm.ops->needs_vmlinux) {
		*err = verr;
		return cj_err_wrap(err, "%s needs an uncompressed PVH vmlinux", r->vmm.ops->name);
	} else
		r->boot_image = r->kernel.image;
	r->t.resolved = cj_now_ns();
	return 0;
}

/* Drive slots an image's layers may take: the backend's virtio devices
 * less the control disk, the modules, the data drive, the volumes, the
 * network, the agent channel and two spare (a host directory share). */
static size_t layer_slots(const struct run *r)
{
	size_t used = 1 + (r->kernel.modules[0] != 0) + (r->spec->data_dir != NULL) +
	              r->spec->nvolumes + 1 + 1 + 2;
	unsigned max = r->vmm.ops->max_devices;

	return max > used ? max - used : 1;
}

/* An image as a stack of shared layer images when it has layers of its
 * own; else (tar:) one base image. */
static int image_layers(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;
	int k =
	    cj_image_layers_get(spec->cache_dir, spec->image_info, layer_slots(r), &r->stack, err);

	if (k < 0)
		return -1;
	if (k == 1) {
		r->stack.n = 0;
		return cj_image_base_get(spec->cache_dir, spec->image_info, &r->base,
		                         &r->t.image_unpacked, err);
	}
	r->base = r->stack.layers[0];
	r->t.image_unpacked = r->stack.built > 0;
	r->t.layers = r->stack.n;
	r->t.layers_merged = r->stack.merged;
	r->t.layers_built = r->stack.built;
	if (r->stack.merged > 1 && spec->timings)
		cj_notice("notice: the image has %zu layers, more than the %zu drives the VM has "
		          "room for: its lowest %zu share one drive",
		          r->stack.merged + r->stack.n - 1, r->stack.n, r->stack.merged);
	return 0;
}

/* A root filesystem directory: its base image, with deltas on top after
 * a change (image/delta.h). */
static int rootfs_layers(struct run *r, struct cj_err *err)
{
	if (cj_base_image_get(r->spec->cache_dir, r->spec->rootfs, &r->stack, err) < 0)
		return -1;
	r->base = r->stack.layers[0];
	if (r->stack.n > 1) {
		r->t.layers = r->stack.n;
		r->t.layers_merged = 1;
		r->t.layers_built = r->stack.built;
	}
	r->base.built = r->stack.built > 0;
	return 0;
}

static int stage_base_image(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;

	r->t.image = spec->image_info != NULL;
	if (r->t.image ? image_layers(r, err) < 0 : rootfs_layers(r, err) < 0)
		return -1;
	r->t.base = cj_now_ns();
	r->t.base_built = r->base.built;
	return 0;
}

/* The cache entries this run uses are in use until it has ended
 * (cache/cache.h): prune and the LRU cap leave them alone. */
static int cache_mark_used(struct run *r, struct cj_err *err)
{
	const char *paths[5 + CJ_IMAGE_MAX_LAYER_DRIVES] = {
	    r->kernel.image, r->boot_image, r->base.path, r->initramfs,
	    r->have_modules ? r->modules.path : NULL};

	for (size_t i = 1; i < r->stack.n; i++)
		paths[4 + i] = r->stack.layers[i].path;
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		int fd;
		if (!paths[i] || r->ncache_fds == sizeof r->cache_fds / sizeof *r->cache_fds)
			continue;
		if (cj_cache_use(r->spec->cache_dir, paths[i], &fd, err) < 0)
			return -1;
		if (fd >= 0)
			r->cache_fds[r->ncache_fds++] = fd;
	}
	return 0;
}

/* After the run: let go of the cache entries, then apply the LRU cap. */
static void cache_release(struct run *r)
{
	struct cj_cache_pruned pruned;
	struct cj_err err = {0};

	while (r->ncache_fds)
		close(r->cache_fds[--r->ncache_fds]);
	if (r->spec->cache_max &&
	    cj_cache_trim(r->spec->cache_dir, r->spec->cache_max, &pruned, &err) < 0)
		cj_warn("--cache-max: %s", err.msg);
}

/* The initramfs and, when the kernel has modules, their image. */
static int stage_initramfs(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;

	if (cj_initramfs_get(spec->cache_dir, &r->kernel, r->initramfs, sizeof r->initramfs,
	                     &r->t.initramfs_built, err) < 0)
		return -1;
	if (r->kernel.modules[0]) {
		if (cj_tree_image_get_by_content(spec->cache_dir, "modules", r->kernel.release,
		                                 r->kernel.modules, &r->modules, err) < 0)
			return cj_err_wrap(err, "kernel modules image");
		r->have_modules = true;
	}
	r->t.initramfs = cj_now_ns();
	return cache_mark_used(r, err);
}

/* The run record: the run's directory, its id, its undo log. From here
 * on the stop signals wait in a signalfd: one that comes during setup
 * stops the VM before the workload starts, and none can kill the runtime
 * before teardown has replayed the record. */
static int stage_record(struct run *r, struct cj_err *err)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGUSR1); /* passed on to the workload (--sig-proxy) */
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGWINCH);       /* -t: the terminal's new size */
	sigaddset(&mask, CJ_SIG_FORWARD); /* kill -s: a signal for the workload */
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r->sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (r->sfd < 0 || cj_record_create(r->spec->run_base, &r->rec, err) < 0) {
		if (r->sfd < 0)
			cj_fail(err, errno, "signalfd");
		else
			close(r->sfd);
		r->sfd = -1;
		sigprocmask(SIG_SETMASK, &r->old_mask, NULL);
		return -1;
	}
	snprintf(r->run_dir, sizeof r->run_dir, "%s", cj_record_dir(r->rec));
	snprintf(r->id, sizeof r->id, "%s", cj_record_id(r->rec));
	r->vm.id = r->id;
	r->vm.run_dir = r->run_dir;
	r->vm.undo = cj_record_undo(r->rec);
	return 0;
}

/* What the lifecycle verbs read: the run's name (unique), its command and
 * restart policy. */
static int stage_identity(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;

	if (cj_record_claim_name(r->rec, spec->name, err) < 0)
		return -1;
	if (spec->image_info && cj_record_set_image(r->rec, spec->image_info->digest, err) < 0)
		return -1;
	return cj_record_set_meta(r->rec, spec->argv.v, spec->argv.n, spec->restart, err);
}

/* The guest's address and published ports, for the record and the line
 * printed at start: "10.0.0.2, ports 0.0.0.0:8080->80/tcp". */
static int net_record(struct run *r, char *line, size_t len, struct cj_err *err)
{
	const struct cj_net_spec *ns = &r->spec->net;
	json_object *ports = json_object_new_array();
	char addr[INET_ADDRSTRLEN], hip[INET_ADDRSTRLEN];
	size_t n;

	inet_ntop(AF_INET, &r->net.guest_addr, addr, sizeof addr);
	n = (size_t)snprintf(line, len, "%s", addr);
	for (size_t i = 0; i < ns->nports; i++) {
		char p[64];
		inet_ntop(AF_INET, &ns->ports[i].host_ip, hip, sizeof hip);
		snprintf(p, sizeof p, "%s:%u->%u/%s", hip, ns->ports[i].host_port,
		         ns->ports[i].guest_port, ns->ports[i].udp ? "udp" : "tcp");
		json_object_array_add(ports, json_object_new_string(p));
		if (n < len)
			n += (size_t)snprintf(line + n, len - n, "%s%s", i ? " " : ", ports ", p);
	}
	return cj_record_set_net(r->rec, addr, ports, err);
}

/* The jail plan: its limits, then the run's uid, the host tools' on its
 * volumes and its VMM's (which owns the TAP, so the jailed VMM opens it
 * unprivileged). */
static int stage_jail_plan(struct run *r, struct cj_err *err)
{
	if (cj_jail_resolve(&r->spec->jail, r->spec->memory_mib, &r->vm.jail, err) < 0 ||
	    assign_ids(r, err) < 0)
		return -1;
	cj_vmm_choice_apply(&r->choice, &r->vm); /* Firecracker's jailer and chroot base */
	if (!r->vm.jail.enabled)
		cj_notice("warning: --no-jail: the VMM runs as root, unconfined");
	return 0;
}

/* The image's layers above the base, one drive each (a layer the image
 * has twice, such as an empty one, is one drive the guest mounts twice). */
static int layer_drives(struct run *r, struct cj_err *err)
{
	for (size_t i = 1; i < r->stack.n; i++) {
		bool seen = strcmp(r->stack.layers[i].path, r->base.path) == 0;
		for (size_t j = 1; j < i && !seen; j++)
			seen = strcmp(r->stack.layers[i].path, r->stack.layers[j].path) == 0;
		if (!seen && cj_vm_add_drive(&r->vm, CJ_DRIVE_LAYER, (unsigned)(i - 1),
		                             r->stack.layers[i].path, -1, true, err) < 0)
			return -1;
		memcpy(r->cfg.layer_uuids[i - 1], r->stack.layers[i].uuid, 16);
	}
	r->cfg.nlayers = r->stack.n ? r->stack.n - 1 : 0;
	return 0;
}

/* The data drive and the volumes, checked and locked; then every drive of
 * the VM in the seed's order (the root /dev/vda, the data drive /dev/vdb;
 * the init finds the others by content). The control disk follows once
 * written. */
static int stage_drives(struct run *r, struct cj_err *err)
{
	struct drives *d = &r->drives;

	for (size_t i = 0; i < r->spec->nshares; i++)
		if (cj_share_prepare_source(&r->spec->shares[i], err) < 0)
			return -1;
	if (drives_prepare(r->spec, &r->base, &r->tools, r->vm.undo, d, err) < 0 ||
	    cj_vm_add_drive(&r->vm, CJ_DRIVE_BASE, 0, r->base.path, -1, true, err) < 0 ||
	    (d->have_data &&
	     cj_vm_add_drive(&r->vm, CJ_DRIVE_DATA, 0, d->data.path, -1, false, err) < 0))
		return -1;
	return layer_drives(r, err);
}

static int stage_network(struct run *r, struct cj_err *err)
{
	struct cj_net_spec net_spec = r->spec->net;
	struct cj_net *net = &r->net;

	/* A backend that opens its TAP by name gets, jailed, a network
	 * namespace of its own, which its jailer joins. QEMU's jail gives it
	 * an empty one, and the TAP as an fd. */
	net_spec.own_netns = r->vm.jail.enabled && r->vmm.ops->jail_own_netns;
	if (cj_net_setup(&net_spec, r->id, r->run_dir, r->vm.jail.enabled ? r->vm.jail.uid : 0,
	                 r->vm.undo, net, err) < 0)
		return -1;
	if (net->netns[0])
		r->vm.jail.netns = net->netns;
	if (!net->active)
		return 0;
	if (net_record(r, r->netline, sizeof r->netline, err) < 0)
		return -1;
	r->cfg.has_net = true;
	r->cfg.net.addr = net->guest_addr;
	r->cfg.net.gateway = net->host_addr;
	r->cfg.net.prefix = net->prefix;
	r->cfg.net.mtu = net->mtu ? net->mtu : 1500;
	r->cfg.net.ndns = (uint32_t)net->ndns;
	memcpy(r->cfg.net.dns, net->dns, net->ndns * sizeof net->dns[0]);
	r->vm.tap = net->tap;
	memcpy(r->vm.mac, net->mac, sizeof r->vm.mac);
	return 0;
}

/* How many components path has ("/run/x": 2). */
static size_t path_depth(const char *path)
{
	size_t n = 0;

	for (const char *p = path; *p; p++)
		n += *p != '/' && (p == path || p[-1] == '/');
	return n;
}

/* Mounts in the order the guest makes them: shallower paths first, so that
 * a tmpfs on /run does not cover a share at /run/x given before it (as
 * docker sorts); the order given otherwise. */
static void sort_mounts(struct ctrj_mount *m, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && path_depth(m[k - 1].path) > path_depth(m[k].path);
		     k--) {
			struct ctrj_mount t = m[k];
			m[k] = m[k - 1];
			m[k - 1] = t;
		}
}

/* Host directories (by tag) and tmpfs mounts for the guest, parents
 * first, and --read-only. */
static void storage_mounts(struct run *r)
{
	const struct cj_spec *spec = r->spec;
	size_t n = 0;

	for (size_t i = 0; i < spec->nshares; i++, n++) {
		snprintf(r->tags[i], sizeof r->tags[i], "ctrj%zu", i);
		r->mounts[n] = (struct ctrj_mount){
		    .kind = CTRJ_MOUNT_VIRTIOFS,
		    .flags = spec->shares[i].read_only ? CTRJ_MOUNT_READONLY : 0,
		    .tag = r->tags[i],
		    .path = spec->shares[i].guest_path,
		};
	}
	for (size_t i = 0; i < spec->ntmpfs; i++, n++)
		r->mounts[n] = (struct ctrj_mount){.kind = CTRJ_MOUNT_TMPFS,
		                                   .flags = spec->tmpfs[i].flags,
		                                   .size = spec->tmpfs[i].size,
		                                   .mode = spec->tmpfs[i].mode,
		                                   .path = spec->tmpfs[i].path};
	sort_mounts(r->mounts, n);
	r->cfg.mounts = r->mounts;
	r->cfg.nmounts = n;
	r->cfg.readonly_root = spec->read_only;
}

/* The workload's stdio goes on the agent channel where the VMM has one
 * (else the console has it, stdin /dev/null): -i, -t at our terminal's
 * size. A detached run reads no stdin. */
static void stdio_config(struct run *r)
{
	const struct cj_spec *spec = r->spec;
	unsigned short rows = 24, cols = 80;

	/* OCI runtime mode: the engine reads the workload's output on our
	 * stdout, from the console (stdout and stderr as one stream for now);
	 * a terminal (the engine's pty on our stdio) goes through the agent */
	if (spec->console_stdout && !spec->tty)
		return;
	if (!r->vmm.ops->agent_fd && !r->vmm.ops->agent_target) {
		if (spec->interactive || spec->tty)
			cj_warn(
			    "-i and -t need an agent channel from boot on, which %s does not "
			    "have yet: the workload keeps the console and /dev/null as its stdin",
			    r->vmm.ops->name);
		return;
	}
	bool ours = !spec->detach || spec->engine_stdio; /* our stdio is the workload's */

	r->cfg.stdio_flags = CTRJ_STDIO_AGENT;
	if (spec->interactive && ours)
		r->cfg.stdio_flags |= CTRJ_STDIO_STDIN;
	if (spec->tty) {
		r->cfg.stdio_flags |= CTRJ_STDIO_TTY;
		if (ours && cj_terminal_size(&rows, &cols) && (!rows || !cols))
			rows = 24, cols = 80;
		r->cfg.tty_rows = rows;
		r->cfg.tty_cols = cols;
	}
}

/* The guest's configuration into the control disk (a memfd), which joins
 * the drives with the modules and the volumes after it. */
static int stage_control_disk(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;
	struct ctrj_config *cfg = &r->cfg;

	cfg->argv = spec->argv.v;
	cfg->argc = spec->argv.n;
	cfg->envp = spec->env.v;
	cfg->envc = spec->env.n;
	cfg->workdir = spec->workdir;
	cfg->user = spec->user;
	if (spec->hostname)
		cfg->hostname = spec->hostname;
	else if (gethostname(r->hostname, sizeof r->hostname - 1) == 0 && r->hostname[0])
		cfg->hostname = r->hostname;
	cfg->grace_ms = spec->stop_timeout_s * 1000u;
	cfg->stop_signal = spec->stop_signal; /* the image's StopSignal */
	cfg->upper_size = spec->rootfs_size;
	cfg->has_base_uuid = true;
	memcpy(cfg->base_uuid, r->base.uuid, 16);
	if (r->have_modules) {
		cfg->has_modules_uuid = true;
		memcpy(cfg->modules_uuid, r->modules.uuid, 16);
	}
	cfg->volumes = r->drives.mounts;
	cfg->nvolumes = r->drives.nmounts;
	storage_mounts(r);
	cfg->secrets = spec->secrets;
	cfg->nsecrets = spec->nsecrets;
	stdio_config(r);
	cfg->hold = spec->hold;
	cfg->proc = spec->proc;
	cfg->pids_limit = spec->pids_limit;
	memcpy(cfg->binds, spec->binds, sizeof cfg->binds);
	cfg->nbinds = spec->nbinds;
	r->ctl_fd = write_control_disk(cfg, err);
	if (r->ctl_fd < 0 ||
	    cj_vm_add_drive(&r->vm, CJ_DRIVE_CONTROL, 0, NULL, r->ctl_fd, false, err) < 0 ||
	    (r->have_modules &&
	     cj_vm_add_drive(&r->vm, CJ_DRIVE_MODULES, 0, r->modules.path, -1, true, err) < 0))
		return -1;
	for (size_t i = 0; i < r->drives.nvols; i++)
		if (cj_vm_add_drive(&r->vm, CJ_DRIVE_VOLUME, (unsigned)i, r->drives.vols[i].path,
		                    -1, r->drives.vols[i].read_only, err) < 0)
			return -1;
	return 0;
}

/* The machine, the kernel's command line (the defaults or --boot-args,
 * the backend's own arguments, then --boot-args-extra) and the files of
 * the jail plan. */
static int vm_machine(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;
	struct cj_vm_config *vm = &r->vm;
	size_t n;

	vm->kernel = r->boot_image;
	vm->initramfs = r->initramfs;
	vm->cpus = spec->cpus;
	vm->memory_mib = spec->memory_mib;
	vm->use_kvm = r->use_kvm;
	vm->tsc_khz = r->spec->host.tsc_khz;
	snprintf(vm->cmdline, sizeof vm->cmdline, "%s",
	         spec->boot_args ? spec->boot_args : DEFAULT_BOOT_ARGS);
	if (r->vmm.ops->boot_args)
		r->vmm.ops->boot_args(vm, !spec->boot_args, vm->cmdline, sizeof vm->cmdline);
	n = strlen(vm->cmdline);
	if (spec->extra_boot_args && n < sizeof vm->cmdline)
		snprintf(vm->cmdline + n, sizeof vm->cmdline - n, " %s", spec->extra_boot_args);
	return cj_vm_plan_files(vm, err); /* what the jail plan places */
}

/* A stop signal that came while the run was being set up: the run ends
 * here, with 128+N, before a VMM exists. Pending SIGCHLDs (host tools)
 * are dropped: supervision waits for the VMM by its pid; so are the other
 * signals nothing dies of (a terminal's SIGWINCH: the agent sends the size
 * it finds when it greets). */
static int stopped_during_setup(int sfd, struct cj_err *err)
{
	struct pollfd p = {.fd = sfd, .events = POLLIN};
	struct signalfd_siginfo si;

	while (poll(&p, 1, 0) == 1 && read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
		int sig = (int)si.ssi_signo;
		if (sig == CJ_SIG_FORWARD) /* for the workload, which is not there yet */
			sig = si.ssi_int;
		if (!cj_signal_harmless(sig))
			return cj_fail_code(err, ctrj_signal_code(sig), 0,
			                    "stopped by signal %d before the VM started", sig);
	}
	return 0;
}

/* A stop asked for while the run is set up (the snapshot is made): a stop
 * signal pending, or a forwarded one the workload would die of (`kill`'s
 * KILL among them), put back for stopped_during_setup. Blocked signals
 * only are looked at: a helper's SIGCHLD (Firecracker's jailer, which
 * exits once it started the VMM) is no stop. */
static bool stop_asked(void)
{
	static const int stops[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	const struct timespec now = {0};
	sigset_t set, fwd;
	siginfo_t si;

	if (sigpending(&set) < 0)
		return false;
	for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
		if (sigismember(&set, stops[i]) == 1)
			return true;
	sigemptyset(&fwd);
	sigaddset(&fwd, CJ_SIG_FORWARD);
	while (sigtimedwait(&fwd, &si, &now) == CJ_SIG_FORWARD)
		if (!cj_signal_harmless(si.si_value.sival_int)) {
			sigqueue(getpid(), CJ_SIG_FORWARD, si.si_value);
			return true;
		}
	return false;
}

static int agent_target(void *vmm, struct cj_fc_vsock_target *t, struct cj_err *err)
{
	return ((struct cj_vmm *)vmm)->ops->agent_target(vmm, t, err);
}

/* `ctr-jailer exec`: <run dir>/agent.sock, when the VMM has an agent
 * channel (or connects to one on demand). Without it the run goes on
 * (exec into it fails). */
static void agent_listen(struct run *r)
{
	struct cj_err aerr = {0};
	char buf[CJ_ERR_STR_MAX];
	int fd = cj_vmm_agent_fd(&r->vmm);
	bool on_demand = r->vmm.ops->agent_target != NULL;

	if ((fd >= 0 || on_demand) && !(r->sv.agent = cj_agent_mux_open(fd, r->run_dir, &aerr)))
		cj_warn("exec will not reach this run: %s", cj_err_str(&aerr, buf, sizeof buf));
	else if (on_demand && r->sv.agent)
		cj_agent_mux_on_demand(r->sv.agent, agent_target, &r->vmm, AGENT_CONNECT_MS);
	if (r->sv.agent && r->cfg.stdio_flags) { /* the workload's stdio */
		cj_workload_io_open(&r->io, r->cfg.stdio_flags & CTRJ_STDIO_STDIN, r->spec->tty,
		                    r->log.fd >= 0 ? &r->log : NULL,
		                    r->spec->detach && !r->spec->engine_stdio);
		if (r->spec->engine_stdio) /* the engine's stderr, kept apart from ours */
			r->io.out_fd[1] = r->spec->engine_err_fd;
		cj_agent_mux_workload(r->sv.agent, &r->io);
		r->sv.sig_proxy = !r->spec->tty && !r->spec->no_sig_proxy;
		/* an on-demand channel is made at once: the workload waits for it */
		if (on_demand && cj_agent_mux_connect(r->sv.agent, &aerr) < 0)
			cj_warn("the workload's stdio will not reach this run: %s",
			        cj_err_str(&aerr, buf, sizeof buf));
	}
}

/* The mux first: it points at the workload's stdio. */
static void agent_close(struct run *r)
{
	cj_agent_mux_close(r->sv.agent);
	r->sv.agent = NULL;
	cj_workload_io_close(&r->io);
}

/* The health check (once per run), started over at each boot. It runs
 * through the agent: without one, the run has no health state. */
static void health_boot(struct run *r)
{
	struct cj_err herr = {0};

	if (!r->health && cj_health_wanted(&r->spec->health) && !r->sv.agent) {
		cj_warn("no health checks: this VM has no agent channel (use a kernel with "
		        "virtio_console, "
		        "or put the check in the workload)");
		return;
	}
	if (!r->health && cj_health_open(&r->spec->health, r->spec->run_base, r->id, r->rec,
	                                 &r->health, &herr) < 0)
		cj_warn("no health checks: %s", herr.msg);
	r->sv.health = r->health;
	cj_health_boot(r->health);
}

/* One virtiofsd per host directory, for this boot; QEMU gets the
 * connections, and guest memory it can share (the jail's file size limit
 * lets its memfd be that large). */
static int shares_start(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;
	uint64_t mem = spec->memory_mib << 20;

	for (size_t i = 0; i < spec->nshares; i++) {
		if (cj_virtiofsd_start(&spec->shares[i], (unsigned)i, CJ_VIRTIOFSD, r->id,
		                       r->run_dir,
		                       spec->jail.disabled ? NULL : spec->jail.cgroup_path,
		                       r->vm.undo, true, &r->vfs[i], err) < 0)
			return cj_err_wrap(err, "share %s", spec->shares[i].source);
		r->nvfs = i + 1;
		r->vm.shares[i] = (struct cj_vm_share){.tag = r->tags[i], .fd = r->vfs[i].fd};
	}
	r->vm.nshares = spec->nshares;
	if (spec->nshares && r->vm.jail.fsize_limit && r->vm.jail.fsize_limit < mem)
		r->vm.jail.fsize_limit = mem;
	return 0;
}

static void shares_stop(struct run *r)
{
	while (r->nvfs)
		cj_virtiofsd_stop(&r->vfs[--r->nvfs]);
	r->vm.nshares = 0;
}

/* The boot snapshot of the machine's shape, when the backend has them and
 * --cold-boot was not given: made now when missing. Without one the VM
 * boots cold. */
static void snapshot_choose(struct run *r, char *path, size_t len)
{
	struct cj_err serr = {0};
	char buf[CJ_ERR_STR_MAX];
	int fd;

	/* host directories need vhost-user-fs devices and shared memory that a
	 * snapshot does not have: those runs boot cold */
	if (r->spec->cold_boot || !r->vmm.ops->snapshot_take || !r->spec->cache_dir ||
	    r->vm.nshares || (r->vmm.ops->snapshot_in_jail && !r->vm.jail.enabled))
		return;
	cj_snapshot_stop_when(stop_asked);
	fd = cj_snapshot_open(r->spec->cache_dir, &r->vmm, &r->vm, path, len, &serr);
	cj_snapshot_stop_when(NULL);
	if (fd < 0 && serr.errnum == EINTR)
		return; /* a stop came: start_vmm ends the run before a VMM exists */
	/* in use until the run ends: prune and the LRU cap leave it alone */
	if (fd >= 0 && r->ncache_fds < sizeof r->cache_fds / sizeof *r->cache_fds) {
		int ufd = -1;
		if (cj_cache_use(r->spec->cache_dir, path, &ufd, &serr) < 0) {
			close(fd);
			fd = -1;
		} else if (ufd >= 0) {
			r->cache_fds[r->ncache_fds++] = ufd;
		}
	}
	if (fd < 0) {
		cj_notice("booting cold: %s", cj_err_str(&serr, buf, sizeof buf));
		return;
	}
	r->vm.snap.restore = true;
	r->vm.snap.fd = fd;
	r->vm.snap.mem_fd = -1;
	r->vm.snap.path = path;
}

/* The VMM, restored from the shape's snapshot when there is one; a
 * snapshot that does not restore is removed and the VM boots cold. */
static int start_vmm(struct run *r, struct cj_err *err)
{
	char path[PATH_MAX], buf[CJ_ERR_STR_MAX];
	int rc;

	snapshot_choose(r, path, sizeof path);
	if (stopped_during_setup(r->sfd, err) < 0) { /* e.g. while the snapshot was made */
		if (r->vm.snap.restore)
			close(r->vm.snap.fd);
		r->vm.snap.restore = false;
		return -1;
	}
	rc = r->vmm.ops->start(&r->vmm, &r->vm, err);
	if (r->vm.snap.restore)
		close(r->vm.snap.fd);
	r->vm.snap.restore = false;
	if (rc == 0 || !r->vmm.restore_failed)
		return rc;
	cj_notice("the boot snapshot %s did not restore (%s): removed, booting cold", path,
	          cj_err_str(err, buf, sizeof buf));
	cj_snapshot_remove(path);
	cj_vmm_kill(&r->vmm);
	if (r->vmm.pid > 0)
		waitpid(r->vmm.pid, NULL, 0);
	r->vmm.ops->cleanup(&r->vmm);
	r->vmm.pid = 0;
	r->vmm.restore_failed = false;
	*err = (struct cj_err){0};
	return r->vmm.ops->start(&r->vmm, &r->vm, err);
}

/* The console and stderr pipes, then the VMM. */
static int stage_start(struct run *r, struct cj_err *err)
{
	int cpipe[2], epipe[2], rc;

	r->vmm_mark = cj_record_undo_mark(r->rec);
	if (stopped_during_setup(r->sfd, err) < 0 || vm_machine(r, err) < 0 ||
	    shares_start(r, err) < 0)
		return -1;
	r->t.prepared = cj_now_ns();
	if (pipe2(cpipe, O_CLOEXEC) < 0)
		return cj_fail(err, errno, "console pipe");
	if (pipe2(epipe, O_CLOEXEC) < 0) {
		close(cpipe[0]);
		close(cpipe[1]);
		return cj_fail(err, errno, "VMM stderr pipe");
	}
	/* non-blocking from the start: teardown drains it after a failed start */
	fcntl(epipe[0], F_SETFL, O_NONBLOCK);
	cj_supervision_open(&r->sv, cpipe[0], epipe[0]);
	r->sv.hold = r->spec->hold;
	if (r->log.fd >= 0) {
		r->sv.console.log = &r->log;
		r->sv.console.no_stdout = r->spec->detach && !r->spec->console_stdout;
	}
	if (r->cfg.stdio_flags) { /* the workload's output comes on the agent channel */
		r->sv.console.no_stdout = r->spec->detach || !r->spec->console;
		r->sv.console.out_fd = STDERR_FILENO;
	}
	r->vm.console_fd = cpipe[1];
	r->vm.has_console_fd = true;
	r->vm.stderr_fd = epipe[1];
	r->vm.has_stderr_fd = true;
	rc = start_vmm(r, err);
	for (size_t i = 0; i < r->nvfs; i++) { /* QEMU holds the connections now */
		close(r->vfs[i].fd);
		r->vfs[i].fd = -1;
	}
	close(cpipe[1]);
	close(epipe[1]);
	fcntl(cpipe[0], F_SETFL, O_NONBLOCK);
	if (rc < 0)
		return -1;
	r->t.vmm_exec = cj_now_ns();
	agent_listen(r);
	if (cj_record_set_vmm(r->rec, r->vmm.pid, err) < 0) {
		cj_vmm_kill(&r->vmm);
		if (r->vmm.pid > 0)
			waitpid(r->vmm.pid, NULL, 0);
		return -1;
	}
	health_boot(r);
	return 0;
}

/* Wait for the VM to end, bring back what the guest wrote, read its
 * status: the exit code. */
static int stage_supervise_collect(struct run *r, struct cj_err *err)
{
	int rc = cj_supervise(&r->vmm, r->sfd, r->spec->stop_timeout_s, &r->sv, err);

	cj_health_stop(r->health); /* a check in flight ends with the VM */
	if (rc < 0) {
		cj_vmm_kill(&r->vmm);
		if (r->vmm.pid > 0)
			waitpid(r->vmm.pid, NULL, 0);
		return CJ_EXIT_RUNTIME;
	}
	r->t.vm_exit = cj_now_ns();
	r->t.vmm_reaped = true;
	r->t.vmm_status = r->sv.vmm_status;
	if (r->vmm.ops->collect && r->vmm.ops->collect(&r->vmm, err) < 0)
		return err->exit_code = CJ_EXIT_VM_LOST;
	r->have_status = read_status(r->ctl_fd, &r->st, err);
	if (r->have_status < 0)
		return err->exit_code = CJ_EXIT_VM_LOST;
	int code = exit_code_for(&r->st, r->have_status, &r->sv, &r->vmm, err);
	bool booted = r->have_status == 1 &&
	              (r->st.state == CTRJ_STATE_EXITED || r->st.state == CTRJ_STATE_SIGNALED ||
	               r->st.state == CTRJ_STATE_EXEC_FAILED);
	/* why the boot failed; or the workload's output, when the guest had no
	 * agent and gave it to the console */
	bool no_agent = r->cfg.stdio_flags && !cj_agent_mux_greeted(r->sv.agent);
	if (r->sv.console.no_stdout && !r->spec->detach && !r->sv.killed && !r->sv.stop_requested &&
	    (!booted || no_agent))
		cj_console_tail_show(&r->sv);
	return code;
}

/* Release whatever the stages made, newest first; the record's teardown
 * replays its undo log. */
static void stage_teardown(struct run *r)
{
	agent_close(r);
	cj_health_close(r->health);
	r->health = r->sv.health = NULL;
	cj_supervision_close(&r->sv);
	if (r->ctl_fd >= 0)
		close(r->ctl_fd);
	if (r->vmm.ops)
		r->vmm.ops->cleanup(&r->vmm);
	shares_stop(r);
	cj_record_teardown(r->rec, true); /* the lock last: gc never sees a live run as dead */
	/* The volumes' locks only once their owners are restored, so that no
	 * other run takes one while it still belongs to this run's uid. */
	drives_release(&r->drives);
	if (r->sfd >= 0) {
		/* Stop signals that came during teardown were for this run, which
		 * has ended: dropped, not delivered once they are unblocked. */
		struct signalfd_siginfo si;
		fcntl(r->sfd, F_SETFL, O_NONBLOCK);
		while (read(r->sfd, &si, sizeof si) == (ssize_t)sizeof si)
			;
		close(r->sfd);
	}
	/* The stop signals stay blocked: one that comes now has nothing left
	 * to stop, and must not kill the runtime before it reports the
	 * workload's status. So does a signal for the workload (kill -s: its
	 * default action would end us too). */
	sigset_t after = r->old_mask;
	sigaddset(&after, SIGTERM);
	sigaddset(&after, SIGINT);
	sigaddset(&after, SIGHUP);
	sigaddset(&after, SIGQUIT);
	sigaddset(&after, CJ_SIG_FORWARD);
	sigprocmask(SIG_SETMASK, &after, NULL);
	r->t.done = cj_now_ns();
	if (!r->t.vm_exit)
		r->t.vm_exit = r->t.done;
	if (r->spec->timings)
		print_timings(&r->t, &r->st, r->have_status == 1);
}

/* The VMM started: the record is kept from now on (-d, --name, not
 * --rm); the foreground run says where the guest is; a detached run's
 * supervisor lets go of the terminal and tells its parent the id. */
static void started(struct run *r)
{
	const struct cj_spec *spec = r->spec;
	struct cj_err kerr = {0};
	char msg[PATH_MAX + 32];
	int fd;

	if ((spec->detach || spec->name) && !spec->auto_remove &&
	    cj_record_set_keep(r->rec, true, &kerr) < 0)
		cj_notice("warning: %s", kerr.msg);
	if (!spec->detach || r->notify_fd < 0) {
		if (!spec->quiet && r->netline[0])
			cj_notice("guest address %s", r->netline);
		return;
	}
	fd = spec->engine_stdio ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	snprintf(msg, sizeof msg, "%s/supervisor.log", r->run_dir);
	fd = open(msg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		if (!spec->console_stdout && !spec->engine_stdio)
			dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	snprintf(msg, sizeof msg, "S%s", r->id);
	if (write(r->notify_fd, msg, strlen(msg)) < 0)
		cj_notice("warning: the foreground ctr-jailer is gone");
	close(r->notify_fd);
	r->notify_fd = -1;
}

/* --restart: boot again after the VM ended with code? Never after a stop
 * (stop, kill, a signal to the supervisor). */
static bool restart_wanted(const struct run *r, int code, unsigned restarts)
{
	const struct cj_spec *spec = r->spec;

	if (r->sv.stop_requested || r->sv.killed || code < 0)
		return false;
	if (spec->restart_always)
		return true;
	return spec->restart_on_failure && code != 0 &&
	       (spec->restart_max == 0 || restarts < spec->restart_max);
}

/* The same spec booted again: the VMM's own state (jail root, cgroup)
 * released and made anew, the control disk rewritten. */
static int restart_vm(struct run *r, unsigned restarts, struct cj_err *err)
{
	/* the exec sessions of this boot end; stage_start listens anew */
	agent_close(r);
	cj_supervision_close(&r->sv);
	r->vmm.ops->cleanup(&r->vmm);
	r->vmm.priv = NULL;
	r->vmm.pid = 0;
	shares_stop(r);
	r->have_status = 0;
	memset(&r->st, 0, sizeof r->st);
	/* the last boot's VMM entries (jail, cgroups, files given to its
	 * user) are undone here and pushed again by the next: the record
	 * stays bounded however often the VM restarts */
	if (cj_record_undo_back_to(r->rec, r->vmm_mark, false, err) < 0 ||
	    cj_record_set_restarts(r->rec, restarts, err) < 0 ||
	    fill_control_disk(r->ctl_fd, &r->cfg, err) < 0)
		return -1;
	cj_notice("restarting the VM (restart %u, --restart %s)", restarts, r->spec->restart);
	/* A VM that keeps failing at once is not booted in a tight loop: 100 ms,
	 * doubling up to 10 s. A stop signal ends the wait (and the run). */
	struct pollfd p = {.fd = r->sfd, .events = POLLIN};
	unsigned shift = restarts > 8 ? 7 : restarts - 1;
	poll(&p, 1, (int)(100u << shift) > 10000 ? 10000 : (int)(100u << shift));
	return stage_start(r, err);
}

/* Supervise until the VM ends for good (--restart boots it again); the
 * exit code of the last boot goes into the record. */
static int supervise_all(struct run *r, struct cj_err *err)
{
	unsigned restarts = 0;
	int code;

	for (;;) {
		code = stage_supervise_collect(r, err);
		if (!restart_wanted(r, code, restarts))
			break;
		*err = (struct cj_err){0};
		if (restart_vm(r, ++restarts, err) < 0) {
			code = -1;
			break;
		}
	}
	struct cj_err xerr = {0};
	if (cj_record_set_exit(r->rec,
	                       code >= 0        ? code
	                       : err->exit_code ? err->exit_code
	                                        : CJ_EXIT_RUNTIME,
	                       &xerr) < 0)
		cj_notice("warning: %s", xerr.msg);
	return code;
}

/* The stages from the record on; every path goes through teardown. */
static int run_stages(struct run *r, struct cj_err *err)
{
	int code = -1;

	if (stage_identity(r, err) == 0 && stage_jail_plan(r, err) == 0 &&
	    stage_drives(r, err) == 0 && stage_network(r, err) == 0 &&
	    stage_control_disk(r, err) == 0 &&
	    ((!r->spec->detach && !r->spec->name) || cj_log_open(&r->log, r->run_dir, err) == 0) &&
	    stage_start(r, err) == 0) {
		started(r);
		code = supervise_all(r, err);
	}
	cj_log_close(&r->log);
	stage_teardown(r);
	return code;
}

/* Resolve, base image and initramfs, with the stop signals caught: one
 * that comes while an image is built stops the build, which removes its
 * temporary files and lets go of its locks (util/interrupt.h), and the
 * run ends with 128+N before a VM exists. */
static int stage_images(struct run *r, struct cj_err *err)
{
	int ret, signo;

	cj_interrupt_catch();
	ret = stage_resolve(r, err) == 0 && stage_base_image(r, err) == 0 &&
	              stage_initramfs(r, err) == 0
	          ? 0
	          : -1;
	cj_interrupt_release();
	if ((signo = cj_interrupted()) != 0) {
		return cj_fail_code(err, ctrj_signal_code(signo), 0,
		                    "interrupted by %s while building images: nothing was kept",
		                    strsignal(signo));
	}
	return ret;
}

/* The run; *notify_fd (a detached run's pipe to its parent, or -1) is
 * closed and set to -1 once the parent was told the VMM started. */
static int run_all(struct cj_spec *spec, int *notify_fd, struct cj_err *err)
{
	struct run *r;
	int code = -1; /* a stage failed: err says why, and its exit code */

	r = calloc(1, sizeof *r);
	if (!r)
		return cj_fail(err, ENOMEM, "run"), CJ_EXIT_RUNTIME;
	/* field by field: a compound literal would write all of it (over
	 * 100 KiB, resident in a detached run's supervisor for its life) */
	r->spec = spec;
	r->t.start = cj_now_ns();
	r->ctl_fd = r->sfd = -1;
	r->sv.console.fd = r->sv.vmm_stderr.fd = -1;
	r->log.fd = -1;
	r->notify_fd = *notify_fd;
	r->io.in_fd = -1;
	sigprocmask(SIG_BLOCK, NULL, &r->old_mask);
	cj_gc(spec->run_base, true);
	if (stage_images(r, err) == 0 && stage_record(r, err) == 0)
		code = run_stages(r, err);
	cache_release(r);
	*notify_fd = r->notify_fd;
	free(r);
	if (code < 0)
		code = err->exit_code ? err->exit_code : CJ_EXIT_RUNTIME;
	return code;
}

int cj_run_vm(struct cj_spec *spec, struct cj_err *err)
{
	int none = -1;

	if (cj_inputs_load(spec, err) < 0)
		return err->exit_code ? err->exit_code : CJ_EXIT_RUNTIME;
	return run_all(spec, &none, err);
}

/* The drives and NIC a run of spec would have, none of them backed. */
static int shape_devices(struct run *r, struct cj_err *err)
{
	const struct cj_spec *spec = r->spec;
	struct cj_vm_config *vm = &r->vm;
	int rc = cj_vm_add_drive(vm, CJ_DRIVE_BASE, 0, NULL, -1, true, err);

	if (rc == 0 && spec->data_dir)
		rc = cj_vm_add_drive(vm, CJ_DRIVE_DATA, 0, NULL, -1, false, err);
	if (rc == 0)
		rc = cj_vm_add_drive(vm, CJ_DRIVE_CONTROL, 0, NULL, -1, false, err);
	if (rc == 0 && r->kernel.modules[0])
		rc = cj_vm_add_drive(vm, CJ_DRIVE_MODULES, 0, NULL, -1, true, err);
	for (size_t i = 0; rc == 0 && i < spec->nvolumes; i++)
		rc = cj_vm_add_drive(vm, CJ_DRIVE_VOLUME, (unsigned)i, NULL, -1,
		                     spec->volumes[i].read_only, err);
	if (spec->net.mode == CJ_NET_TAP)
		vm->tap = "";
	return rc;
}

/* `snapshot prepare`: the snapshot's VM is jailed as a run's VMM would
 * be: a run record of its own holds the jail's uid and its undo log
 * (teardown replays it); a stop signal ends the making of it. Firecracker's
 * are made by runs (its snapshot VM needs a run's jail and network
 * namespace). */
static int snapshot_prepare_run(struct run *r, char *path, size_t len, struct cj_err *err)
{
	int fd = -1;

	if (stage_resolve(r, err) < 0)
		return -1;
	if (r->vmm.ops->snapshot_in_jail)
		return cj_fail(err, ENOTSUP,
		               "%s boot snapshots are made by the first run of a machine shape, in "
		               "its jail: there is nothing to prepare",
		               r->vmm.ops->name);
	if (stage_initramfs(r, err) < 0 || stage_record(r, err) < 0)
		return -1;
	if (stage_jail_plan(r, err) == 0 && shape_devices(r, err) == 0 && vm_machine(r, err) == 0) {
		cj_snapshot_stop_when(stop_asked);
		fd = cj_snapshot_open(r->spec->cache_dir, &r->vmm, &r->vm, path, len, err);
		cj_snapshot_stop_when(NULL);
	}
	stage_teardown(r);
	return fd;
}

int cj_run_snapshot_prepare(struct cj_spec *spec, char *path, size_t len, struct cj_err *err)
{
	struct run *r = calloc(1, sizeof *r);
	int fd = -1;

	if (!r)
		return cj_fail(err, ENOMEM, "snapshot");
	r->spec = spec;
	r->ctl_fd = r->sfd = r->sv.console.fd = r->sv.vmm_stderr.fd = r->log.fd = r->io.in_fd = -1;
	sigprocmask(SIG_BLOCK, NULL, &r->old_mask);
	if (!spec->cache_dir)
		cj_fail(err, 0, "no cache directory for snapshots");
	else
		fd = snapshot_prepare_run(r, path, len, err);
	if (fd >= 0)
		close(fd);
	free(r);
	return fd < 0 ? -1 : 0;
}

/* The parent of a detached run: "S<id>" from the supervisor once the VMM
 * started; else it ended, and its status (and "E<message>") say why. */
static int detach_parent(pid_t child, int fd, char id[16], struct cj_err *err)
{
	char buf[CJ_ERR_STR_MAX + 2];
	ssize_t n, got = 0;
	int st = 0;

	while ((n = read(fd, buf + got, sizeof buf - 1 - (size_t)got)) > 0 ||
	       (n < 0 && errno == EINTR))
		got += n > 0 ? n : 0;
	close(fd);
	buf[got] = '\0';
	if (buf[0] == 'S') {
		snprintf(id, 16, "%s", buf + 1);
		return 0;
	}
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : CJ_EXIT_RUNTIME;
	if (code == 0)
		code = CJ_EXIT_RUNTIME; /* the workload ended before we heard */
	return cj_fail_code(
	    err, code, 0, "%s",
	    buf[0] == 'E' && buf[1] ? buf + 1 : "the run's supervisor ended before the VM started");
}

int cj_run_detached(struct cj_spec *spec, char id[16], pid_t *supervisor, struct cj_err *err)
{
	int p[2], code, notify;
	pid_t pid;

	if (cj_inputs_load(spec, err) < 0)
		return err->exit_code ? err->exit_code : CJ_EXIT_RUNTIME;
	if (pipe2(p, O_CLOEXEC) < 0)
		return cj_fail(err, errno, "pipe"), CJ_EXIT_RUNTIME;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return cj_fail(err, errno, "fork"), CJ_EXIT_RUNTIME;
	}
	if (pid > 0) {
		close(p[1]);
		if (supervisor)
			*supervisor = pid;
		return detach_parent(pid, p[0], id, err) < 0 ? err->exit_code : 0;
	}
	/* The supervisor: a session of its own, like conmon, in "/": the
	 * caller's working directory may go away (or be unmounted) while the
	 * run lives, so its relative paths are made absolute first. */
	close(p[0]);
	setsid();
	/* the engine's pty (runtime mode): ours, so that its new sizes come
	 * as SIGWINCH (the VMM and the tools have sessions of their own) */
	if (spec->engine_stdio && spec->tty)
		ioctl(STDIN_FILENO, TIOCSCTTY, 0);
	notify = p[1];
	char cwd[PATH_MAX];
	code = CJ_EXIT_RUNTIME;
	if (!getcwd(cwd, sizeof cwd) || chdir("/") < 0)
		cj_fail(
		    err, errno,
		    "cannot resolve the working directory (start the run from one that exists)");
	else if (cj_spec_absolute_paths(spec, cwd, err) == 0)
		code = run_all(spec, &notify, err);
	char buf[CJ_ERR_STR_MAX + 2];
	buf[0] = 'E';
	cj_err_str(err, buf + 1, sizeof buf - 1);
	if (notify >= 0) { /* it failed before the VMM started: the parent says why */
		if (write(notify, buf, strlen(buf)) < 0)
			code = CJ_EXIT_RUNTIME;
	} else if (buf[1]) {
		cj_notice("%s", buf + 1); /* into supervisor.log */
	}
	exit(code);
}
