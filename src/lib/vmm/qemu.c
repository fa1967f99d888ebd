/* SPDX-License-Identifier: Apache-2.0 */
/* QEMU `microvm` backend: virtio-mmio disks, an i8042 for Ctrl-Alt-Del
 * (the same graceful-stop path as Firecracker's SendCtrlAltDel), the guest
 * console on a pipe the run relays, QMP on one end of a socket pair that
 * QEMU inherits (ctr-jailer holds the other end: no socket file exists,
 * so nothing the VMM writes can redirect root's QMP connection). */
#include "vmm.h"

#include "snapshot.h"

#include "ctrj/protocol.h"
#include "jail/jail.h"
#include "net/net.h"
#include "util/spawn.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* QEMU's -drive option parser treats ',' as a separator; ",," escapes it. */
static char *escape_commas(const char *s)
{
	size_t n = strlen(s), extra = 0;
	for (size_t i = 0; i < n; i++)
		extra += s[i] == ',';
	char *out = malloc(n + extra + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		*o++ = s[i];
		if (s[i] == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

/* "-name value", value formatted. */
static int push_opt(char ***v, size_t *n, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int push_opt(char ***v, size_t *n, const char *name, const char *fmt, ...)
{
	char *value;
	va_list ap;

	va_start(ap, fmt);
	int len = vasprintf(&value, fmt, ap);
	va_end(ap);
	if (len < 0)
		return -1;
	int r = cj_argv_push(v, n, "%s", name) | cj_argv_push(v, n, "%s", value);
	free(value);
	return r;
}

/* Guest memory: anonymous, unless a vhost-user device (virtiofsd) must
 * map it, which takes a shared memfd backend of the same size. */
static int argv_memory(char ***v, size_t *n, const struct cj_vm_config *cfg)
{
	int r = push_opt(v, n, "-m", "%llu", (unsigned long long)cfg->memory_mib);

	if (!cfg->nshares)
		return r;
	r |= push_opt(v, n, "-object", "memory-backend-memfd,id=mem,size=%lluM,share=on",
	              (unsigned long long)cfg->memory_mib);
	r |= push_opt(v, n, "-machine", "memory-backend=mem");
	return r;
}

/* The machine, the kernel and the console: what every QEMU run gets. */
static int argv_machine(char ***v, size_t *n, const char *bin, const struct cj_vm_config *cfg,
                        bool jailed)
{
	int r = cj_argv_push(v, n, "%s", bin);

	if (cfg->run_dir) {
		/* names the run in ps (and lets tests find the VMM of a run) */
		char *name = escape_commas(cfg->run_dir);
		r |= name ? push_opt(v, n, "-name", "ctr-jailer:%s", name) : -1;
		free(name);
	}
	r |= push_opt(v, n, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on");
	/* TCG's translation cache defaults to 1 GiB; a smaller one keeps the
	 * VMM's own memory well inside the cgroup margin at a small cost in
	 * re-translation. */
	if (cfg->use_kvm)
		r |= push_opt(v, n, "-accel", "kvm");
	else
		r |= push_opt(v, n, "-accel", "tcg,tb-size=%u", CJ_TCG_CACHE_MIB);
	r |= push_opt(v, n, "-cpu", "%s", cfg->use_kvm ? "host" : "max");
	r |= push_opt(v, n, "-smp", "%u", cfg->cpus);
	r |= argv_memory(v, n, cfg);
	r |= cj_argv_push(v, n, "-nodefaults");
	r |= cj_argv_push(v, n, "-no-user-config");
	r |= push_opt(v, n, "-display", "none");
	r |= cj_argv_push(v, n, "-no-reboot");
	r |= push_opt(v, n, "-kernel", "%s", jailed ? "/boot/kernel" : cfg->kernel);
	r |= push_opt(v, n, "-initrd", "%s", jailed ? "/boot/initrd" : cfg->initramfs);
	if (jailed)
		r |= push_opt(v, n, "-sandbox",
		              "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
		              "resourcecontrol=deny");
	r |= push_opt(v, n, "-append", "%s " CTRJ_CMDLINE_QEMU "%s", cfg->cmdline,
	              cfg->snap.prepare || cfg->snap.restore ? " ctrj.snap=1" : "");
	r |= push_opt(v, n, "-chardev", "stdio,id=console,signal=off");
	r |= push_opt(v, n, "-serial", "chardev:console");
	r |= push_opt(v, n, "-device", "i8042");
	r |= push_opt(v, n, "-device", "isa-debug-exit,iobase=%#x,iosize=1", CTRJ_EXIT_PORT);
	return r;
}

/* QMP on a connected socket (a client chardev: QEMU greets on it at
 * once), the agent channel (a virtio-serial port named ctrj.agent on
 * another connected socket, when agent_fd >= 0) and the network. */
static int argv_qmp_net(char ***v, size_t *n, const struct cj_vm_config *cfg, int qmp_fd,
                        int agent_fd, int tap_fd)
{
	int r = 0;

	r |= push_opt(v, n, "-chardev", "socket,id=qmp,fd=%d", qmp_fd);
	r |= push_opt(v, n, "-mon", "chardev=qmp,mode=control");
	if (agent_fd >= 0) {
		r |= push_opt(v, n, "-chardev", "socket,id=agent,fd=%d", agent_fd);
		r |= push_opt(v, n, "-device", "virtio-serial-device,max_ports=2");
		r |= push_opt(v, n, "-device", "virtserialport,chardev=agent,name=ctrj.agent");
	}
	if (cfg->tap) {
		const uint8_t *m = cfg->mac;
		bool peer = cfg->tap[0]; /* "": a snapshot's NIC, without a backend */
		if (!peer)
			;
		else if (tap_fd >= 0)
			r |= push_opt(v, n, "-netdev", "tap,id=net0,fd=%d", tap_fd);
		else
			r |= push_opt(v, n, "-netdev",
			              "tap,id=net0,ifname=%s,script=no,downscript=no", cfg->tap);
		r |= push_opt(v, n, "-device",
		              "virtio-net-device%s,mac=%02x:%02x:%02x:%02x:%02x:%02x",
		              peer ? ",netdev=net0" : "", m[0], m[1], m[2], m[3], m[4], m[5]);
	}
	return r;
}

/* Host directories: a vhost-user-fs device per share, its chardev the
 * connection to its virtiofsd, inherited as an fd. virtiofsd serves only
 * virtio 1.0 devices: the microvm's virtio-mmio transports drop legacy
 * mode then (the guest kernel drives both). */
static int argv_shares(char ***v, size_t *n, const struct cj_vm_config *cfg)
{
	int r = 0;

	if (cfg->nshares)
		r |= push_opt(v, n, "-global", "virtio-mmio.force-legacy=false");
	for (size_t i = 0; i < cfg->nshares; i++) {
		r |= push_opt(v, n, "-chardev", "socket,id=vfs%zu,fd=%d", i, cfg->shares[i].fd);
		r |= push_opt(v, n, "-device", "vhost-user-fs-device,chardev=vfs%zu,tag=%s", i,
		              cfg->shares[i].tag);
	}
	return r;
}

/* One drive. Jailed, it comes as inherited fds in fdset i+1: QEMU picks
 * from a set the fd whose access mode matches each open it makes (a
 * writable drive is also opened read-only). */
static int argv_drive(char ***v, size_t *n, const struct cj_drive *d, size_t i,
                      const int *drive_fds, bool restore)
{
	char *path = NULL, fdpath[64];
	struct stat st;
	int r = 0;

	if (!d->path && d->fd < 0) { /* a snapshot's drive: no backing file */
		r |= push_opt(v, n, "-drive", "id=%s,driver=null-co,read-zeroes=on,if=none%s",
		              d->id, d->read_only ? ",readonly=on" : "");
		return r | push_opt(v, n, "-device", "virtio-blk-device,drive=%s", d->id);
	}
	if (drive_fds) {
		r |= push_opt(v, n, "-add-fd", "fd=%d,set=%zu", drive_fds[2 * i], i + 1);
		if (drive_fds[2 * i + 1] >= 0)
			r |=
			    push_opt(v, n, "-add-fd", "fd=%d,set=%zu", drive_fds[2 * i + 1], i + 1);
		if (asprintf(&path, "/dev/fdset/%zu", i + 1) < 0)
			path = NULL;
	} else {
		path = escape_commas(cj_drive_path(d, fdpath, sizeof fdpath));
	}
	if (!path)
		return -1;
	/* cache=writeback with flushes honoured: the guest's fsync reaches the
	 * host file. A block device handed over as an fd must be named as one:
	 * QEMU's 'file' driver takes only regular files, and by path it would
	 * probe the node itself. */
	bool blockdev = drive_fds && fstat(drive_fds[2 * i], &st) == 0 && S_ISBLK(st.st_mode);
	/* A restore activates its drives after the incoming state, reopening
	 * them: QEMU's image locks would then clash between a drive's two fds
	 * (ctr-jailer locks volumes itself). */
	r |= push_opt(v, n, "-drive",
	              "id=%s,file=%s,%sformat=raw,if=none,cache=writeback,discard=unmap%s%s", d->id,
	              path, blockdev ? "file.driver=host_device," : "",
	              d->read_only ? ",readonly=on" : "", restore ? ",file.locking=off" : "");
	r |= push_opt(v, n, "-device", "virtio-blk-device,drive=%s", d->id);
	free(path);
	return r;
}

/* The command line. In a jail, drives come as inherited fds (fdsets) and
 * the kernel and initramfs from /boot inside the jail. */
static char **qemu_argv(const char *bin, const struct cj_vm_config *cfg, int qmp_fd, int agent_fd,
                        const int *drive_fds, int tap_fd)
{
	char **v = NULL;
	size_t n = 0;
	int r = argv_machine(&v, &n, bin, cfg, drive_fds != NULL);

	r |= argv_qmp_net(&v, &n, cfg, qmp_fd, agent_fd, tap_fd);
	r |= argv_shares(&v, &n, cfg);
	for (size_t i = 0; i < cfg->ndrives && !r; i++)
		r |= argv_drive(&v, &n, &cfg->drives[i], i, drive_fds, cfg->snap.restore);
	if (cfg->snap.restore)
		r |= push_opt(&v, &n, "-incoming", "fd:%d", cfg->snap.fd);
	if (r) {
		cj_qemu_argv_free(v);
		return NULL;
	}
	return v;
}

char **cj_qemu_argv(const char *bin, const struct cj_vm_config *cfg, int qmp_fd, int agent_fd)
{
	return qemu_argv(bin, cfg, qmp_fd, agent_fd, NULL, -1);
}

void cj_qemu_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* The fds QEMU inherits: its end of QMP and of the agent channel, the
 * TAP, two per drive (the drive, and a read-only one). */
#define KEEP_FDS_MAX (1 + 1 + 1 + 2 * CJ_MAX_DRIVES + CJ_MAX_VM_SHARES + 1)
/* A graceful stop's whole QMP exchange (greeting, capabilities, the keys)
 * must be done within this, however a hostile QEMU paces its replies. */
#define QMP_TIMEOUT_MS 3000

struct qemu_priv {
	struct cj_jail jail;
	int tap_fd;
	int fds[2 * CJ_MAX_DRIVES]; /* per drive: the fd, and a read-only one (or -1) */
	int qmp_fd;                 /* our end of QMP */
	int qmp_vmm_fd;             /* QEMU's end, closed here once QEMU has it */
	bool qmp_ready;             /* greeting read, capabilities negotiated */
	int agent_fd;               /* our end of the agent channel */
	int agent_vmm_fd;           /* QEMU's end, closed here once QEMU has it */
	int go_fd;                  /* snapshots: QEMU's stdin, the console's input */
	int keep[KEEP_FDS_MAX];     /* what QEMU inherits */
	size_t nkeep;
};

/* In a jail the VMM cannot open host paths: the drives are opened here and
 * inherited (a drive given as an fd, the memfd, is reopened read-write and
 * read-only through /proc/self/fd). */
static int open_drives(struct qemu_priv *p, const struct cj_jail_plan *plan, struct cj_err *err)
{
	size_t k = 0;

	for (size_t i = 0; i < plan->nfiles; i++) {
		const struct cj_jail_file *f = &plan->files[i];
		char buf[64];
		const char *path = f->host;
		if (f->kind != CJ_JAIL_DRIVE)
			continue;
		if (f->fd >= 0) {
			snprintf(buf, sizeof buf, "/proc/self/fd/%d", f->fd);
			path = buf;
		}
		p->fds[2 * k] = open(path, (f->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (p->fds[2 * k] < 0)
			return cj_fail(err, errno, "open drive %s", f->host ? f->host : f->name);
		if (f->writable) {
			p->fds[2 * k + 1] = open(path, O_RDONLY | O_CLOEXEC);
			if (p->fds[2 * k + 1] < 0)
				return cj_fail(err, errno, "open drive %s",
				               f->host ? f->host : f->name);
		}
		k++;
	}
	return 0;
}

static void qemu_priv_free(struct cj_vmm *vmm)
{
	struct qemu_priv *p = vmm->priv;

	if (!p)
		return;
	for (size_t i = 0; i < 2 * CJ_MAX_DRIVES; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	if (p->tap_fd >= 0)
		close(p->tap_fd);
	if (p->qmp_fd >= 0)
		close(p->qmp_fd);
	if (p->qmp_vmm_fd >= 0)
		close(p->qmp_vmm_fd);
	if (p->agent_fd >= 0)
		close(p->agent_fd);
	if (p->agent_vmm_fd >= 0)
		close(p->agent_vmm_fd);
	if (p->go_fd >= 0)
		close(p->go_fd);
	cj_jail_cleanup(&p->jail);
	free(p);
	vmm->priv = NULL;
}

static struct qemu_priv *qemu_priv_new(void)
{
	struct qemu_priv *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	for (size_t i = 0; i < 2 * CJ_MAX_DRIVES; i++)
		p->fds[i] = -1;
	p->tap_fd = p->qmp_fd = p->qmp_vmm_fd = p->agent_fd = p->agent_vmm_fd = p->go_fd = -1;
	return p;
}

/* The jail's two steps around the fork: the parent moves the child into
 * the VM's cgroup, then the child locks itself in. */
static int attach_to_cgroup(void *ctx, pid_t pid, struct cj_err *err)
{
	return cj_jail_attach(&((struct qemu_priv *)ctx)->jail, pid, err);
}

static int enter_jail(void *ctx, const char **what)
{
	struct qemu_priv *p = ctx;
	return cj_jail_enter(&p->jail, p->keep, p->nkeep, what);
}

/* The self-jail's executor: the TAP and the drives as fds, the room and
 * the cgroup. Returns the argv. The VM making a boot snapshot has neither:
 * its drives have no backing file, its NIC no backend (snapshot.c). */
static char **prepare_jailed(struct qemu_priv *p, const struct cj_vm_config *cfg, const char *path,
                             struct cj_err *err)
{
	bool blank = cfg->snap.prepare;

	if ((cfg->tap && cfg->tap[0] && (p->tap_fd = cj_tap_open(cfg->tap, (uid_t)-1, err)) < 0) ||
	    (!blank && open_drives(p, &cfg->jail, err) < 0) ||
	    cj_jail_prepare(&cfg->jail, cfg->run_dir, cfg->id, path, cfg->undo, &p->jail, err) < 0)
		return NULL;
	if (p->tap_fd >= 0)
		p->keep[p->nkeep++] = p->tap_fd;
	for (size_t i = 0; i < cfg->nshares; i++)
		p->keep[p->nkeep++] = cfg->shares[i].fd;
	for (size_t i = 0; i < 2 * cfg->ndrives; i++)
		if (p->fds[i] >= 0)
			p->keep[p->nkeep++] = p->fds[i];
	return qemu_argv(path, cfg, p->qmp_vmm_fd, p->agent_vmm_fd, p->fds, p->tap_fd);
}

static char **prepare_unjailed(struct qemu_priv *p, const struct cj_vm_config *cfg,
                               const char *path)
{
	for (size_t i = 0; i < cfg->ndrives; i++)
		if (cfg->drives[i].fd >= 0)
			p->keep[p->nkeep++] = cfg->drives[i].fd;
	for (size_t i = 0; i < cfg->nshares; i++)
		p->keep[p->nkeep++] = cfg->shares[i].fd;
	return qemu_argv(path, cfg, p->qmp_vmm_fd, p->agent_vmm_fd, NULL, -1);
}

/* Boot snapshots: the console's input is a pipe (the "go" line goes
 * there), the snapshot file an inherited fd. */
static int snap_console(struct qemu_priv *p, const struct cj_vm_config *cfg, int *go_rd,
                        struct cj_err *err)
{
	int go[2];

	if (!cfg->snap.prepare && !cfg->snap.restore)
		return 0;
	if (pipe2(go, O_CLOEXEC) < 0)
		return cj_fail(err, errno, "console input pipe");
	*go_rd = go[0];
	p->go_fd = go[1];
	p->keep[p->nkeep++] = cfg->snap.fd;
	return 0;
}

static int qemu_resume(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err);

static int qemu_start(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err)
{
	struct qemu_priv *p;
	char **argv, path[PATH_MAX];
	int qmp[2], agent[2];
	char step[CJ_SPAWN_STEP_MAX];
	int go_rd = -1;

	/* the binary as exec (and the jail) will see it: an absolute path */
	if (cj_find_in_path(vmm->bin, path, sizeof path) < 0)
		return cj_fail(err, ENOENT, "%s not found (install qemu-system-x86 or pass --qemu)",
		               vmm->bin);
	if (!(p = qemu_priv_new()))
		return cj_fail(err, ENOMEM, "QEMU backend");
	vmm->priv = p;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) < 0)
		return cj_fail(err, errno, "QMP socket pair");
	p->qmp_fd = qmp[0];
	p->qmp_vmm_fd = qmp[1];
	p->keep[p->nkeep++] = p->qmp_vmm_fd;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) < 0)
		return cj_fail(err, errno, "agent channel socket pair");
	p->agent_fd = agent[0];
	p->agent_vmm_fd = agent[1];
	p->keep[p->nkeep++] = p->agent_vmm_fd;
	if (snap_console(p, cfg, &go_rd, err) < 0)
		return -1;
	argv =
	    cfg->jail.enabled ? prepare_jailed(p, cfg, path, err) : prepare_unjailed(p, cfg, path);
	if (!argv)
		return err->msg[0] ? -1 : cj_fail(err, ENOMEM, "build the QEMU command line");
	/* Jailed: new mount, pid, ipc, uts and (empty) network namespaces. The
	 * TAP is an fd already, so QEMU needs no network: in a namespace
	 * holding only a down lo it reaches no host service, no abstract unix
	 * socket and no other VM's TAP. */
	struct cj_spawn s = {
	    .path = path,
	    .argv = argv,
	    .envp = cj_vmm_envp,
	    .stdin_fd = go_rd,
	    .stdout_fd = cfg->has_console_fd ? cfg->console_fd : -1,
	    .stderr_fd = cfg->has_stderr_fd ? cfg->stderr_fd : -1,
	    .keep = p->keep,
	    .nkeep = p->nkeep,
	    .new_session = true,
	    .clone_flags = cfg->jail.enabled ? CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
	                                           CLONE_NEWUTS | CLONE_NEWNET
	                                     : 0,
	    .on_fork = cfg->jail.enabled ? attach_to_cgroup : NULL,
	    .pre_exec = cfg->jail.enabled ? enter_jail : NULL,
	    .ctx = p,
	};
	vmm->pid = cj_spawn(&s, step, err);
	cj_qemu_argv_free(argv);
	cj_jail_binds_done(&p->jail); /* QEMU is in its jail (or failed) */
	if (go_rd >= 0)
		close(go_rd);
	close(p->qmp_vmm_fd); /* QEMU holds it now, and its end of the agent channel */
	p->qmp_vmm_fd = -1;
	close(p->agent_vmm_fd);
	p->agent_vmm_fd = -1;
	if (vmm->pid < 0) {
		vmm->pid = 0;
		if (strcmp(step, "exec") == 0)
			cj_fail(err, err->errnum,
			        "start %s (install qemu-system-x86 or pass --qemu)", vmm->bin);
		else if (step[0])
			cj_fail(err, err->errnum, "jail the VMM: %s", step);
		return -1;
	}
	if (cfg->snap.restore && qemu_resume(vmm, cfg, err) < 0) {
		vmm->restore_failed = true;
		return -1;
	}
	return 0;
}

/* ---- QMP -------------------------------------------------------------- */

/* One reply, by deadline (cj_now_ns): a QEMU that trickles its reply a
 * byte at a time gets no more time than one that sends nothing. */
static int qmp_read_reply(int fd, char *buf, size_t len, uint64_t deadline, json_object **ret,
                          struct cj_err *err)
{
	size_t used = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = cj_now_ns();
		if (now >= deadline)
			return cj_fail(err, ETIMEDOUT, "QMP reply");
		int pr = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return cj_fail(err, pr < 0 ? errno : ETIMEDOUT, "QMP reply");
		ssize_t n = read(fd, buf + used, len - used - 1);
		if (n <= 0)
			return cj_fail(err, n < 0 ? errno : ECONNRESET, "QMP reply");
		used += (size_t)n;
		buf[used] = '\0';
		/* One JSON object per line; events may come first. */
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			json_object *o = json_tokener_parse(line);
			if (o) {
				json_object *v;
				bool done = json_object_object_get_ex(o, "return", &v) ||
				            json_object_object_get_ex(o, "QMP", &v);
				if (done && ret)
					*ret = json_object_get(v);
				bool bad = json_object_object_get_ex(o, "error", &v);
				char desc[256] = "";
				if (bad) {
					json_object *d;
					if (json_object_object_get_ex(v, "desc", &d))
						snprintf(desc, sizeof desc, "%s",
						         json_object_get_string(d));
				}
				json_object_put(o);
				if (bad)
					return cj_fail(err, 0, "QMP error: %s", desc);
				if (done)
					return 0;
			}
			line = nl + 1;
		}
		memmove(buf, line, strlen(line) + 1);
		used = strlen(buf);
		if (used >= len - 1)
			return cj_fail(err, E2BIG, "QMP reply too long");
	}
}

static int qmp_command(int fd, json_object *cmd, uint64_t deadline, json_object **ret,
                       struct cj_err *err)
{
	char buf[8192];
	const char *s = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s);

	/* MSG_NOSIGNAL: a QEMU gone (or hostile) raises EPIPE here, never SIGPIPE */
	if (send(fd, s, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return cj_fail(err, errno, "QMP send");
	return qmp_read_reply(fd, buf, sizeof buf, deadline, ret, err);
}

static json_object *qcode(const char *key)
{
	json_object *k = json_object_new_object();
	json_object_object_add(k, "type", json_object_new_string("qcode"));
	json_object_object_add(k, "data", json_object_new_string(key));
	return k;
}

/* Greeting and capabilities, once per run, on the fd QEMU inherited. */
static int qmp_negotiate(struct qemu_priv *p, uint64_t deadline, struct cj_err *err)
{
	char buf[8192];
	int r;

	if (p->qmp_ready)
		return 0;
	if (qmp_read_reply(p->qmp_fd, buf, sizeof buf, deadline, NULL, err) < 0) /* greeting */
		return -1;
	json_object *caps = json_object_new_object();
	json_object_object_add(caps, "execute", json_object_new_string("qmp_capabilities"));
	r = qmp_command(p->qmp_fd, caps, deadline, NULL, err);
	json_object_put(caps);
	if (r == 0)
		p->qmp_ready = true;
	return r;
}

static int qemu_request_stop(struct cj_vmm *vmm, struct cj_err *err)
{
	struct qemu_priv *p = vmm->priv;
	uint64_t deadline = cj_now_ns() + QMP_TIMEOUT_MS * 1000000ull;
	int r;

	if (!p || p->qmp_fd < 0)
		return cj_fail(err, 0, "QEMU is not running");
	if (qmp_negotiate(p, deadline, err) < 0)
		return -1;
	json_object *cmd = json_object_new_object(), *args = json_object_new_object();
	json_object *keys = json_object_new_array();
	json_object_array_add(keys, qcode("ctrl"));
	json_object_array_add(keys, qcode("alt"));
	json_object_array_add(keys, qcode("delete"));
	json_object_object_add(args, "keys", keys);
	json_object_object_add(cmd, "execute", json_object_new_string("send-key"));
	json_object_object_add(cmd, "arguments", args);
	r = qmp_command(p->qmp_fd, cmd, deadline, NULL, err);
	json_object_put(cmd);
	return r;
}

/* Had QEMU built the machine? Its QMP greeting comes from its main loop:
 * QEMU that failed early on (a bad option) exits before sending it. (Its
 * presence proves less: QEMU may greet before it allocates the guest's
 * memory.) The greeting stays readable on our end after QEMU is gone. */
static bool qemu_greeted(const struct qemu_priv *p)
{
	char buf[256];
	ssize_t n;

	if (p->qmp_ready)
		return true;
	do
		n = recv(p->qmp_fd, buf, sizeof buf - 1, MSG_DONTWAIT | MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "\"QMP\"") != NULL;
}

/* A guest that ends, panics included (panic=1, -no-reboot), makes QEMU
 * exit 0 (CTRJ_EXIT_QEMU_STATUS through the init's fast exit): another
 * exit status is QEMU's own failure (no memory for the guest,
 * a bad option or binary), told in its words with exit code 125. A
 * signal is someone's kill (124, as a VM lost). */
static int qemu_exit_error(const struct cj_vmm *vmm, int st, const char *said, struct cj_err *err)
{
	const struct qemu_priv *p = vmm->priv;

	if (p && cj_jail_oom_killed(&p->jail)) {
		cj_fail(
		    err, 0,
		    "the VM was killed by its cgroup memory limit (%lluM): raise --memory-limit "
		    "(it must cover the guest's memory plus the VMM's own)",
		    (unsigned long long)(p->jail.memory_limit >> 20));
		return CJ_EXIT_VM_LOST;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != CTRJ_EXIT_QEMU_STATUS) {
		cj_fail(err, 0,
		        "QEMU failed%s (exit status %d)%s%s: check --memory, --cpus and --qemu",
		        p && p->qmp_fd >= 0 && !qemu_greeted(p) ? " before the guest started" : "",
		        WEXITSTATUS(st), *said ? ": " : "", said);
		return CJ_EXIT_RUNTIME;
	}
	if (WIFSIGNALED(st))
		cj_fail(err, 0, "QEMU was killed by signal %d before the guest reported a status",
		        WTERMSIG(st));
	else
		cj_fail(err, 0,
		        "the VM ended without reporting a status (a kernel panic or a missing "
		        "driver: see the console above)");
	return CJ_EXIT_VM_LOST;
}

/* Appends to out: i8042 stays PNP-probed (with i8042.nopnp the keyboard
 * controller is not found on microvm and Ctrl-Alt-Del never reaches the
 * guest); under TCG the host's TSC frequency, without which boots under
 * load hang calibrating the TSC (DESIGN.md). */
static void qemu_boot_args(const struct cj_vm_config *cfg, bool defaults, char *out, size_t len)
{
	size_t n = strlen(out);
	unsigned long khz = cfg->use_kvm ? 0 : cfg->tsc_khz;

	if (defaults && n < len)
		n += (size_t)snprintf(out + n, len - n, " i8042.noaux i8042.nomux");
	if (khz && n < len)
		snprintf(out + n, len - n, " tsc_early_khz=%lu", khz);
}

static int qemu_agent_fd(const struct cj_vmm *vmm)
{
	const struct qemu_priv *p = vmm->priv;
	return p ? p->agent_fd : -1;
}

static void qemu_cleanup(struct cj_vmm *vmm)
{
	qemu_priv_free(vmm); /* drive fds, jail root, cgroup */
}

/* ---- boot snapshots (snapshot.h) -------------------------------------- */

/* Under TCG on a loaded host a restore or a save takes seconds, not ms. */
#define SNAP_TIMEOUT_MS 60000

/* "execute": name, without arguments; *out gets "return"'s string field
 * key when key is set. */
static int qmp_simple(int fd, const char *name, const char *key, char *out, size_t outlen,
                      uint64_t deadline, struct cj_err *err)
{
	json_object *cmd = json_object_new_object(), *ret = NULL, *v;
	int r;

	json_object_object_add(cmd, "execute", json_object_new_string(name));
	r = qmp_command(fd, cmd, deadline, key ? &ret : NULL, err);
	json_object_put(cmd);
	if (r == 0 && key) {
		snprintf(out, outlen, "%s",
		         ret && json_object_object_get_ex(ret, key, &v) ? json_object_get_string(v)
		                                                        : "");
	}
	json_object_put(ret);
	return r;
}

/* Polls name's "return".key every few ms while it reads one of busy
 * ("|a|b|"). */
static int qmp_wait_while(int fd, const char *name, const char *key, const char *busy, char *out,
                          size_t outlen, uint64_t deadline, struct cj_err *err)
{
	for (;;) {
		char word[80];
		if (qmp_simple(fd, name, key, out, outlen, deadline, err) < 0)
			return -1;
		snprintf(word, sizeof word, "|%s|", out);
		if (!strstr(busy, word))
			return 0;
		if (cj_now_ns() >= deadline)
			return cj_fail(err, ETIMEDOUT, "QEMU: %s stays %s", name, busy);
		usleep(2000);
	}
}

/* A restored VM: once QEMU has loaded the state, run it and say "go"
 * with this boot's seed, clock and MAC. */
static int qemu_resume(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err)
{
	struct qemu_priv *p = vmm->priv;
	uint64_t deadline = cj_now_ns() + SNAP_TIMEOUT_MS * 1000000ull;
	char status[64], line[CJ_SNAPSHOT_GO_MAX];

	if (qmp_negotiate(p, deadline, err) < 0 ||
	    qmp_wait_while(p->qmp_fd, "query-status", "status", "|inmigrate|", status,
	                   sizeof status, deadline, err) < 0)
		return cj_err_wrap(err, "restore the snapshot");
	if (strcmp(status, "paused") == 0 &&
	    qmp_simple(p->qmp_fd, "cont", NULL, NULL, 0, deadline, err) < 0)
		return cj_err_wrap(err, "restore the snapshot");
	if (strcmp(status, "paused") != 0 && strcmp(status, "running") != 0)
		return cj_fail(err, 0, "restore the snapshot: the VM is %s", status);
	if (cj_snapshot_go_line(line, sizeof line, cfg->tap ? cfg->mac : NULL, err) < 0)
		return -1;
	if (write(p->go_fd, line, strlen(line)) != (ssize_t)strlen(line)) /* < PIPE_BUF: whole */
		return cj_fail(err, errno, "restore the snapshot: write to the console");
	explicit_bzero(line, sizeof line);
	close(p->go_fd);
	p->go_fd = -1;
	return 0;
}

/* QMP's getfd: fd passed along the command (SCM_RIGHTS), named name. */
static int qmp_getfd(int qfd, int fd, const char *name, uint64_t deadline, struct cj_err *err)
{
	char text[128], buf[1024], ctl[CMSG_SPACE(sizeof(int))] = {0};
	int n = snprintf(text, sizeof text,
	                 "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"%s\"}}\n", name);
	struct iovec iov = {.iov_base = text, .iov_len = (size_t)n};
	struct msghdr msg = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	if (sendmsg(qfd, &msg, MSG_NOSIGNAL) != n)
		return cj_fail(err, errno, "QMP send");
	return qmp_read_reply(qfd, buf, sizeof buf, deadline, NULL, err);
}

/* The guest waits at its snapshot point: pause it, and write its state
 * into cfg->snap.fd, handed to QEMU over QMP. */
static int qemu_snapshot_take(struct cj_vmm *vmm, const struct cj_vm_config *cfg,
                              struct cj_err *err)
{
	struct qemu_priv *p = vmm->priv;
	uint64_t deadline = cj_now_ns() + SNAP_TIMEOUT_MS * 1000000ull;
	json_object *cmd = json_object_new_object(), *args = json_object_new_object();
	char status[64];
	int r;

	json_object_object_add(args, "uri", json_object_new_string("fd:ctrj-snapshot"));
	json_object_object_add(cmd, "execute", json_object_new_string("migrate"));
	json_object_object_add(cmd, "arguments", args);
	r = qmp_negotiate(p, deadline, err);
	if (r == 0)
		r = qmp_simple(p->qmp_fd, "stop", NULL, NULL, 0, deadline, err);
	if (r == 0)
		r = qmp_getfd(p->qmp_fd, cfg->snap.fd, "ctrj-snapshot", deadline, err);
	if (r == 0)
		r = qmp_command(p->qmp_fd, cmd, deadline, NULL, err);
	json_object_put(cmd);
	if (r == 0)
		r = qmp_wait_while(p->qmp_fd, "query-migrate", "status",
		                   "|none|setup|active|device|pre-switchover|", status,
		                   sizeof status, deadline, err);
	if (r == 0 && strcmp(status, "completed") != 0)
		r = cj_fail(err, 0, "QEMU's migration ended %s", status);
	return r < 0 ? cj_err_wrap(err, "save the VM") : 0;
}

const struct cj_vmm_ops cj_qemu_ops = {
    .name = "qemu",
    .max_devices = 24,
    .boot_args = qemu_boot_args,
    .start = qemu_start,
    .request_stop = qemu_request_stop,
    .exit_error = qemu_exit_error,
    .agent_fd = qemu_agent_fd,
    .cleanup = qemu_cleanup,
    .snapshot_take = qemu_snapshot_take,
};
