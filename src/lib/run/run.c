/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `ctr-jailer run`, the host pipeline of DESIGN.md:
 *   resolve → base image → initramfs → run dir + control disk → VMM
 *   → supervise → status → teardown → exit code.
 */
#include "run.h"
#include "run/inputs.h"

#include "ctrj/protocol.h"
#include "image/base.h"
#include "image/oci.h"
#include "jail/jail.h"
#include "kernel/kernel.h"
#include "net/net.h"
#include "util/util.h"
#include "vmm/vmm.h"
#include "vmm_choice.h"
#include "volume/volume.h"

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
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* i8042 stays PNP-probed: with i8042.nopnp the keyboard controller is not
 * found on microvm and Ctrl-Alt-Del never reaches the guest. */
/* i8042 stays PNP-probed: with i8042.nopnp the keyboard controller is not
 * found on microvm and Ctrl-Alt-Del never reaches the guest. */
#define DEFAULT_BOOT_ARGS                                                                          \
	"console=ttyS0 reboot=k panic=1 pci=off quiet loglevel=1 i8042.noaux i8042.nomux"
/* Host-side margin after the guest's grace period before the VMM is killed:
 * the init still has to kill leftovers, sync and reboot. */
#define STOP_MARGIN_S 10

struct timings {
	uint64_t start, resolved, base, initramfs, prepared, vmm_exec, vm_exit, done;
	bool base_built, initramfs_built;
	bool image, image_unpacked; /* --image; its layers were unpacked by this run */
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
	json_object_object_add(o, "teardown_ms", json_object_new_double(ms(t->vm_exit, t->done)));
	json_object_object_add(o, "total_ms", json_object_new_double(ms(t->start, t->done)));
	fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* The control disk lives in a memfd: the guest's configuration (secrets
 * included) never touches a filesystem, tmpfs or not. QEMU opens it as
 * /proc/self/fd/N. Returns the fd. */
static int write_control_disk(const struct ctrj_config *cfg, struct cj_err *err)
{
	uint8_t hdr[CTRJ_CTL_HEADER_SIZE];
	uint8_t *buf = NULL;
	size_t len = 0;
	char msg[256];
	int fd;

	if (ctrj_config_encode(cfg, &buf, &len, msg, sizeof msg) < 0)
		return cj_fail(err, 0, "%s", msg);
	ctrj_header_encode(hdr, (uint32_t)len);
	fd = memfd_create("ctr-jailer-control", MFD_CLOEXEC);
	if (fd < 0) {
		cj_fail(err, errno, "memfd_create");
	} else if (ftruncate(fd, CTRJ_CTL_DISK_SIZE) < 0 ||
	           pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
	           pwrite(fd, buf, len, CTRJ_CTL_CONFIG_OFF) != (ssize_t)len) {
		cj_fail(err, errno, "write the control disk");
		close(fd);
		fd = -1;
	}
	explicit_bzero(buf, len);
	free(buf);
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

/* Each run has a uid/gid of its own, recorded in its run directory: its
 * jailed VMM's, and before that the jailed host tools' that check and grow
 * its volumes (a uid shared with other runs could ptrace a tool holding a
 * volume read-write). With --no-jail the VMM runs as root, but the tools
 * stay jailed and still take the run's own uid from the range (or the
 * --jail-user). */
static int assign_ids(const struct cj_spec *spec, const char *run_dir, struct cj_jail_config *jail,
                      struct cj_volume_tool_user *tools, struct cj_err *err)
{
	struct cj_jail_spec ids_spec = spec->jail;
	struct cj_jail_config ids;

	ids_spec.disabled = false;
	ids_spec.memory_limit = 0; /* only the user and the range count here */
	if (cj_jail_resolve(&ids_spec, 0, &ids, err) < 0 ||
	    cj_jail_assign_ids(&ids_spec, spec->run_base, run_dir, &ids, err) < 0)
		return -1;
	if (jail->enabled) {
		jail->uid = ids.uid;
		jail->gid = ids.gid;
	}
	tools->uid = ids.uid;
	tools->gid = ids.gid;
	return 0;
}

static void build_cmdline(const struct cj_spec *spec, bool kvm, char *out, size_t len)
{
	int n = snprintf(out, len, "%s", spec->boot_args ? spec->boot_args : DEFAULT_BOOT_ARGS);
	unsigned long khz = kvm ? 0 : cj_host_tsc_khz();

	/* Without it, TCG boots under load hang calibrating the TSC (DESIGN.md). */
	if (khz && n > 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, " tsc_early_khz=%lu", khz);
	if (spec->extra_boot_args && n > 0 && (size_t)n < len)
		snprintf(out + n, len - (size_t)n, " %s", spec->extra_boot_args);
}

/* The guest console reaches our stdout through a pipe, under a token
 * bucket: a guest that floods its console cannot flood the host's logs
 * (docker logs, journald). Excess output is dropped and counted. */
#define CONSOLE_RATE  (1u << 20) /* bytes per second */
#define CONSOLE_BURST (4u << 20) /* bytes */
/* Reads per relay call: a VMM that refills its pipes as fast as we empty
 * them (while our own writes block on a slow reader, say) must not keep
 * the supervisor from its signals and its kill deadline. */
#define RELAY_MAX_READS 16

struct console {
	int fd; /* read end, -1 when closed */
	double tokens;
	uint64_t last_ns;
	uint64_t dropped;
	uint64_t last_notice_ns;
	bool out_gone; /* stdout's reader went away: drain and drop from then on */
};

/* The guest's output has nowhere to go once our stdout is gone (a reader
 * such as `head` exited): the run goes on, only its console is dropped. */
static void console_write(struct console *c, const char *buf, size_t n)
{
	while (n && !c->out_gone) {
		ssize_t w = write(STDOUT_FILENO, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == EBADF || errno == EIO)) {
			c->out_gone = true;
			cj_notice("stdout is closed; the guest's console output is dropped from "
			          "now on");
		}
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

/* Move what the console pipe holds (up to RELAY_MAX_READS reads of it) to
 * stdout; false at EOF. */
static bool console_relay(struct console *c)
{
	char buf[65536];

	for (int reads = 0; reads < RELAY_MAX_READS; reads++) {
		ssize_t n = read(c->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			close(c->fd);
			c->fd = -1;
			break;
		}
		if (n < 0)
			break;
		uint64_t now = cj_now_ns();
		c->tokens += (double)(now - c->last_ns) / 1e9 * CONSOLE_RATE;
		if (c->tokens > CONSOLE_BURST)
			c->tokens = CONSOLE_BURST;
		c->last_ns = now;
		size_t pass = c->tokens >= (double)n ? (size_t)n : (size_t)c->tokens;
		c->tokens -= (double)pass;
		console_write(c, buf, pass);
		c->dropped += (uint64_t)n - pass;
	}
	if (c->dropped && cj_now_ns() - c->last_notice_ns > 1000000000ull) {
		fprintf(stderr,
		        "ctr-jailer: guest console over %u KiB/s: %llu bytes dropped so far\n",
		        CONSOLE_RATE >> 10, (unsigned long long)c->dropped);
		c->last_notice_ns = cj_now_ns();
	}
	return c->fd >= 0;
}

/* The VMM's own stderr (QEMU's warnings, the jailer's and Firecracker's
 * messages) comes through a pipe too: the VMM never holds our terminal.
 * What a compromised VMM writes there is untrusted: bytes other than
 * printable ASCII, newline and tab become '?', under a budget of its own. */
#define VMM_STDERR_RATE  (64u << 10) /* bytes per second */
#define VMM_STDERR_BURST (256u << 10)

struct vmm_stderr {
	int fd; /* read end, -1 when closed */
	double tokens;
	uint64_t last_ns;
	uint64_t dropped;
};

static void vmm_stderr_relay(struct vmm_stderr *e)
{
	char buf[4096];

	for (int reads = 0; reads < RELAY_MAX_READS && e->fd >= 0; reads++) {
		ssize_t n = read(e->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			close(e->fd);
			e->fd = -1;
			break;
		}
		if (n < 0)
			break;
		uint64_t now = cj_now_ns();
		e->tokens += (double)(now - e->last_ns) / 1e9 * VMM_STDERR_RATE;
		if (e->tokens > VMM_STDERR_BURST)
			e->tokens = VMM_STDERR_BURST;
		e->last_ns = now;
		size_t pass = e->tokens >= (double)n ? (size_t)n : (size_t)e->tokens;
		e->tokens -= (double)pass;
		e->dropped += (uint64_t)n - pass;
		for (size_t i = 0; i < pass; i++) {
			unsigned char c = (unsigned char)buf[i];
			if ((c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f)
				buf[i] = '?';
		}
		for (size_t done = 0; done < pass;) {
			ssize_t w = write(STDERR_FILENO, buf + done, pass - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break; /* stderr gone: nowhere to say it */
			done += (size_t)w;
		}
	}
}

struct supervision {
	struct console console;
	struct vmm_stderr vmm_stderr;
	bool stop_requested;
	bool killed;
	int vmm_status;
};

/* Wait for the VMM; turn the first stop signal into Ctrl-Alt-Del, the
 * second (or the deadline) into SIGKILL. The deadline is checked on every
 * turn, not only when poll times out: a VMM that keeps its console or
 * stderr busy would otherwise never meet it. */
static int supervise(struct cj_vmm *vmm, int sfd, unsigned grace_s, struct supervision *sv,
                     struct cj_err *err)
{
	uint64_t deadline = 0;

	for (;;) {
		uint64_t now = cj_now_ns();
		int timeout = -1;
		if (deadline && now >= deadline) {
			fprintf(stderr,
			        "ctr-jailer: the guest did not stop in time; killing the VM\n");
			cj_vmm_kill(vmm);
			sv->killed = true;
			deadline = 0;
		}
		if (deadline)
			timeout = (int)((deadline - now) / 1000000 + 1);
		/* poll skips the entries of closed (-1) pipes */
		struct pollfd p[3] = {{.fd = sfd, .events = POLLIN},
		                      {.fd = sv->console.fd, .events = POLLIN},
		                      {.fd = sv->vmm_stderr.fd, .events = POLLIN}};
		int pr = poll(p, 3, timeout);
		if (pr < 0 && errno != EINTR)
			return cj_fail(err, errno, "poll");
		if (pr > 0 && (p[1].revents || p[2].revents)) {
			if (p[1].revents)
				console_relay(&sv->console);
			if (p[2].revents)
				vmm_stderr_relay(&sv->vmm_stderr);
			if (!p[0].revents)
				continue;
		}
		if (pr <= 0)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
			continue;
		if (si.ssi_signo == SIGCHLD) {
			int st;
			pid_t w = waitpid(vmm->pid, &st, WNOHANG);
			if (w == vmm->pid) {
				sv->vmm_status = st;
				vmm->pid = 0;
				if (sv->console.fd >= 0)
					console_relay(&sv->console); /* the last words */
				vmm_stderr_relay(&sv->vmm_stderr);
				return 0;
			}
			continue;
		}
		if (!sv->stop_requested) {
			struct cj_err qerr = {0};
			sv->stop_requested = true;
			deadline =
			    cj_now_ns() + (uint64_t)(grace_s + STOP_MARGIN_S) * 1000000000ull;
			if (vmm->ops->request_stop(vmm, &qerr) < 0) {
				char buf[1200];
				fprintf(stderr,
				        "ctr-jailer: graceful stop failed (%s); killing the VM\n",
				        cj_err_str(&qerr, buf, sizeof buf));
				cj_vmm_kill(vmm);
				sv->killed = true;
			}
		} else if (!sv->killed) {
			fprintf(stderr, "ctr-jailer: second signal; killing the VM\n");
			cj_vmm_kill(vmm);
			sv->killed = true;
		}
	}
}

static int exit_code_for(const struct ctrj_status *st, int have, const struct supervision *sv,
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
	if (sv->killed)
		return ctrj_signal_code(SIGKILL);
	if (sv->stop_requested)
		return ctrj_signal_code(SIGTERM); /* stopped before the workload started */
	err->exit_code = CJ_EXIT_VM_LOST;
	vmm->ops->exit_error(vmm, sv->vmm_status, err);
	return CJ_EXIT_VM_LOST;
}

int cj_run_vm(struct cj_spec *spec, struct cj_err *err)
{
	struct timings t = {.start = cj_now_ns()};
	struct cj_kernel kernel;
	struct cj_fsimage base, modules;
	struct cj_vm_config vm = {0};
	struct cj_vmm vmm = {0};
	struct cj_vmm_choice choice;
	struct supervision sv = {.console.fd = -1, .vmm_stderr.fd = -1};
	struct ctrj_config cfg = {0};
	struct ctrj_status st;
	char initramfs[PATH_MAX], run_dir[PATH_MAX], id[16], ctl_path[64];
	struct drives drives = {0};
	struct cj_volume_tool_user tools = {0};
	struct cj_record *rec = NULL;
	struct cj_net net = {0};
	int ctl_fd = -1;
	char hostname[65] = "", vmlinux[PATH_MAX];
	const char *boot_image = NULL;
	sigset_t mask, old;
	int sfd = -1, have_status = 0, code = CJ_EXIT_RUNTIME;
	bool use_kvm, have_modules = false;

	if (cj_inputs_load(spec, err) < 0)
		return err->exit_code ? err->exit_code : CJ_EXIT_RUNTIME;
	run_dir[0] = '\0';
	memset(&st, 0, sizeof st);
	sigprocmask(SIG_BLOCK, NULL, &old);
	cj_gc(spec->run_base, true);
	if (cj_kernel_resolve(spec->cache_dir, spec->kernel, spec->modules_dir, &kernel, err) < 0)
		return CJ_EXIT_RUNTIME;
	if (cj_vmm_choose(spec, &choice, &vmm, &use_kvm, err) < 0)
		return CJ_EXIT_RUNTIME;
	{
		/* Boot the vmlinux directly when there is one (no in-guest
		 * decompression); otherwise QEMU boots the bzImage itself.
		 * Released Firecracker boots only the vmlinux. */
		struct cj_err verr = {0};
		if (cj_kernel_vmlinux(spec->cache_dir, kernel.image, vmlinux, sizeof vmlinux,
		                      &verr) == 0)
			boot_image = vmlinux;
		else if (vmm.ops == &cj_firecracker_ops) {
			*err = verr;
			cj_err_wrap(err, "Firecracker needs an uncompressed PVH vmlinux");
			return CJ_EXIT_RUNTIME;
		}
	}
	t.resolved = cj_now_ns();
	t.image = spec->image_info != NULL;
	if (t.image &&
	    cj_image_base_get(spec->cache_dir, spec->image_info, &base, &t.image_unpacked, err) < 0)
		return CJ_EXIT_RUNTIME;
	if (!t.image && cj_base_image_get(spec->cache_dir, spec->rootfs, &base, err) < 0)
		return CJ_EXIT_RUNTIME;
	t.base = cj_now_ns();
	t.base_built = base.built;
	if (cj_initramfs_get(spec->cache_dir, &kernel, initramfs, sizeof initramfs,
	                     &t.initramfs_built, err) < 0)
		return CJ_EXIT_RUNTIME;
	if (kernel.modules[0]) {
		if (cj_tree_image_get(spec->cache_dir, "modules", kernel.release, kernel.modules,
		                      true, &modules, err) < 0)
			return cj_err_wrap(err, "kernel modules image"), CJ_EXIT_RUNTIME;
		have_modules = true;
	}
	t.initramfs = cj_now_ns();

	if (cj_record_create(spec->run_base, &rec, err) < 0)
		return CJ_EXIT_RUNTIME;
	snprintf(run_dir, sizeof run_dir, "%s", cj_record_dir(rec));
	snprintf(id, sizeof id, "%s", cj_record_id(rec));
	/* From here on every path goes through teardown. */
	/* The run's uid: the host tools' on its volumes, then its VMM's (which
	 * owns the TAP, so the jailed VMM opens it unprivileged). */
	if (cj_jail_resolve(&spec->jail, spec->memory_mib, &vm.jail, err) < 0 ||
	    assign_ids(spec, run_dir, &vm.jail, &tools, err) < 0)
		goto teardown;
	if (drives_prepare(spec, &base, &tools, cj_record_undo(rec), &drives, err) < 0)
		goto teardown;
	if (!vm.jail.enabled)
		fprintf(stderr,
		        "ctr-jailer: warning: --no-jail: the VMM runs as root, unconfined\n");
	vm.id = id;
	{
		/* A jailed Firecracker opens its TAP by name: it gets a network
		 * namespace of its own, which its jailer joins (--netns). QEMU's
		 * jail gives it an empty one, and the TAP as an fd. */
		struct cj_net_spec net_spec = spec->net;
		net_spec.own_netns = vm.jail.enabled && vmm.ops == &cj_firecracker_ops;
		if (cj_net_setup(&net_spec, id, run_dir, vm.jail.enabled ? vm.jail.uid : 0,
		                 cj_record_undo(rec), &net, err) < 0)
			goto teardown;
	}
	if (net.netns[0])
		vm.jail.netns = net.netns;
	if (net.active) {
		cfg.has_net = true;
		cfg.net.addr = net.guest_addr;
		cfg.net.gateway = net.host_addr;
		cfg.net.prefix = net.prefix;
		cfg.net.mtu = 1500;
		cfg.net.ndns = (uint32_t)net.ndns;
		memcpy(cfg.net.dns, net.dns, net.ndns * sizeof net.dns[0]);
		vm.tap = net.tap;
		memcpy(vm.mac, net.mac, sizeof vm.mac);
	}

	/* From here on every path goes through teardown. */
	cfg.argv = spec->argv.v;
	cfg.argc = spec->argv.n;
	cfg.envp = spec->env.v;
	cfg.envc = spec->env.n;
	cfg.workdir = spec->workdir;
	cfg.user = spec->user;
	if (spec->hostname)
		cfg.hostname = spec->hostname;
	else if (gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0])
		cfg.hostname = hostname;
	cfg.grace_ms = spec->stop_timeout_s * 1000u;
	cfg.stop_signal = spec->stop_signal; /* the image's StopSignal */
	cfg.upper_size = spec->rootfs_size;
	cfg.has_base_uuid = true;
	memcpy(cfg.base_uuid, base.uuid, 16);
	if (have_modules) {
		cfg.has_modules_uuid = true;
		memcpy(cfg.modules_uuid, modules.uuid, 16);
	}
	cfg.volumes = drives.mounts;
	cfg.nvolumes = drives.nmounts;
	cfg.secrets = spec->secrets;
	cfg.nsecrets = spec->nsecrets;
	ctl_fd = write_control_disk(&cfg, err);
	if (ctl_fd < 0)
		goto teardown;
	snprintf(ctl_path, sizeof ctl_path, "/proc/self/fd/%d", ctl_fd);
	vm.keep_fds[vm.nkeep_fds++] = ctl_fd;

	vm.kernel = boot_image ? boot_image : kernel.image;
	vm.initramfs = initramfs;
	vm.cpus = spec->cpus;
	vm.memory_mib = spec->memory_mib;
	vm.use_kvm = use_kvm;
	vm.run_dir = run_dir;
	build_cmdline(spec, use_kvm, vm.cmdline, sizeof vm.cmdline);
	/* The seed's order: the root is /dev/vda, the data drive /dev/vdb. The
	 * init finds every other drive by content, not by name. */
	vm.drives[vm.ndrives++] = (struct cj_drive){"base", base.path, true};
	if (drives.have_data)
		vm.drives[vm.ndrives++] = (struct cj_drive){"data", drives.data.path, false};
	vm.drives[vm.ndrives++] = (struct cj_drive){"control", ctl_path, false};
	if (have_modules)
		vm.drives[vm.ndrives++] = (struct cj_drive){"modules", modules.path, true};
	for (size_t i = 0; i < drives.nvols; i++) {
		static const char *ids[] = {"vol0",  "vol1",  "vol2",  "vol3", "vol4",  "vol5",
		                            "vol6",  "vol7",  "vol8",  "vol9", "vol10", "vol11",
		                            "vol12", "vol13", "vol14", "vol15"};
		vm.drives[vm.ndrives++] =
		    (struct cj_drive){ids[i], drives.vols[i].path, drives.vols[i].read_only};
	}
	t.prepared = cj_now_ns();

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &old);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		cj_fail(err, errno, "signalfd");
		goto teardown;
	}
	cj_vmm_choice_apply(&choice, &vm); /* Firecracker's jailer and chroot base */
	{
		int cpipe[2], epipe[2];
		if (pipe2(cpipe, O_CLOEXEC) < 0) {
			cj_fail(err, errno, "console pipe");
			goto teardown;
		}
		sv.console = (struct console){
		    .fd = cpipe[0], .tokens = CONSOLE_BURST, .last_ns = cj_now_ns()};
		vm.console_fd = cpipe[1];
		vm.has_console_fd = true;
		if (pipe2(epipe, O_CLOEXEC) < 0) {
			close(cpipe[1]);
			cj_fail(err, errno, "VMM stderr pipe");
			goto teardown;
		}
		/* non-blocking from the start: teardown drains it after a failed start */
		fcntl(epipe[0], F_SETFL, O_NONBLOCK);
		sv.vmm_stderr = (struct vmm_stderr){
		    .fd = epipe[0], .tokens = VMM_STDERR_BURST, .last_ns = cj_now_ns()};
		vm.stderr_fd = epipe[1];
		vm.has_stderr_fd = true;
		int r = vmm.ops->start(&vmm, &vm, err);
		close(cpipe[1]);
		close(epipe[1]);
		fcntl(cpipe[0], F_SETFL, O_NONBLOCK);
		if (r < 0)
			goto teardown;
	}
	t.vmm_exec = cj_now_ns();
	if (cj_record_set_vmm(rec, vmm.pid, err) < 0) {
		cj_vmm_kill(&vmm);
		if (vmm.pid > 0)
			waitpid(vmm.pid, NULL, 0);
		goto teardown;
	}
	if (supervise(&vmm, sfd, spec->stop_timeout_s, &sv, err) < 0) {
		cj_vmm_kill(&vmm);
		if (vmm.pid > 0)
			waitpid(vmm.pid, NULL, 0);
		goto teardown;
	}
	t.vm_exit = cj_now_ns();
	if (vmm.ops->collect && vmm.ops->collect(&vmm, err) < 0) {
		code = err->exit_code = CJ_EXIT_VM_LOST;
		goto teardown;
	}
	have_status = read_status(ctl_fd, &st, err);
	if (have_status < 0) {
		code = CJ_EXIT_VM_LOST;
		err->exit_code = CJ_EXIT_VM_LOST;
		goto teardown;
	}
	code = exit_code_for(&st, have_status, &sv, &vmm, err);

teardown:
	if (sv.console.fd >= 0)
		close(sv.console.fd);
	if (sv.vmm_stderr.fd >= 0) {
		vmm_stderr_relay(&sv.vmm_stderr); /* e.g. why the jailer failed */
		if (sv.vmm_stderr.fd >= 0)
			close(sv.vmm_stderr.fd);
	}
	if (sv.vmm_stderr.dropped)
		fprintf(stderr,
		        "ctr-jailer: the VMM wrote over %u KiB/s to stderr: %llu bytes dropped\n",
		        VMM_STDERR_RATE >> 10, (unsigned long long)sv.vmm_stderr.dropped);
	if (sfd >= 0)
		close(sfd);
	if (ctl_fd >= 0)
		close(ctl_fd);
	drives_release(&drives);
	if (vmm.ops)
		vmm.ops->cleanup(&vmm);
	sigprocmask(SIG_SETMASK, &old, NULL);
	cj_record_teardown(rec, true); /* the lock last: gc never sees a live run as dead */
	t.done = cj_now_ns();
	if (!t.vm_exit)
		t.vm_exit = t.done;
	if (spec->timings)
		print_timings(&t, &st, have_status == 1);
	return code;
}
