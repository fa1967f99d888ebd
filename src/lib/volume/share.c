/* SPDX-License-Identifier: Apache-2.0 */
#include "share.h"

#include "ctrj/protocol.h"
#include "util/spawn.h"
#include "util/util.h"
#include "vmm/vmm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long a virtiofsd may take to listen, and to end once told. */
#define LISTEN_WAIT_MS 10000
#define STOP_WAIT_MS   2000
/* Its threads: the main loop, a thread per queue, its thread pool. */
#define VIRTIOFSD_PIDS       128
#define CJ_VIRTIOFSD_PID_DIR "/var/run/virtiofsd"

void cj_share_spec_free(struct cj_share_spec *s)
{
	free(s->source);
	free(s->guest_path);
	for (size_t i = 0; i < CJ_SHARE_FILES && s->files[i]; i++)
		free(s->files[i]);
	memset(s, 0, sizeof *s);
}

void cj_tmpfs_spec_free(struct cj_tmpfs_spec *t)
{
	free(t->path);
	memset(t, 0, sizeof *t);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

bool cj_share_from_volume(struct cj_volume_spec *v, struct cj_share_spec *out)
{
	struct stat st;

	if (v->source[0] != '/')
		return false;
	if (stat(v->source, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return false;
	} else if (errno != ENOENT || v->size || ends_with(v->source, ".ext4") ||
	           ends_with(v->source, ".img") || ends_with(v->source, ".raw")) {
		return false;
	}
	*out = (struct cj_share_spec){.source = v->source,
	                              .guest_path = v->guest_path,
	                              .read_only = v->read_only,
	                              .create = true};
	v->source = v->guest_path = NULL;
	return true;
}

static int check_path(const char *what, const char *p, const char *arg, struct cj_err *err)
{
	if (!p || p[0] != '/')
		return cj_fail(err, 0, "%s '%s': the %s must be an absolute path", arg, p ? p : "",
		               what);
	if (strpbrk(p, ",\\"))
		return cj_fail(err, 0, "%s '%s': a ',' or '\\' in the %s is not supported", arg, p,
		               what);
	return 0;
}

/* "true", "1", "" (the bare key): true; "false", "0": false. */
static int parse_bool(const char *key, const char *v, bool *out, struct cj_err *err)
{
	if (!v || !*v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return cj_fail(err, 0, "--mount: %s=%s: give true or false", key, v);
	return 0;
}

static int parse_mode(const char *v, uint32_t *out)
{
	char *end;
	unsigned long m = strtoul(v, &end, 8);

	if (!*v || *end || m > 07777)
		return -1;
	*out = (uint32_t)(m ? m : 0);
	return 0;
}

struct mount_fields {
	const char *type, *src, *dst, *size, *mode;
	bool ro;
};

static int mount_field(char *kv, struct mount_fields *f, struct cj_err *err)
{
	char *eq = strchr(kv, '=');
	const char *v = eq ? eq + 1 : NULL;

	if (eq)
		*eq = '\0';
	if (strcmp(kv, "type") == 0)
		f->type = v;
	else if (strcmp(kv, "source") == 0 || strcmp(kv, "src") == 0)
		f->src = v;
	else if (strcmp(kv, "target") == 0 || strcmp(kv, "destination") == 0 ||
	         strcmp(kv, "dst") == 0)
		f->dst = v;
	else if (strcmp(kv, "readonly") == 0 || strcmp(kv, "ro") == 0)
		return parse_bool(kv, v, &f->ro, err);
	else if (strcmp(kv, "tmpfs-size") == 0)
		f->size = v;
	else if (strcmp(kv, "tmpfs-mode") == 0)
		f->mode = v;
	else
		return cj_fail(err, 0,
		               "--mount: unknown field '%s' (use type, source, target, readonly, "
		               "tmpfs-size, tmpfs-mode)",
		               kv);
	return 0;
}

static int mount_tmpfs(const struct mount_fields *f, const char *arg, struct cj_mount_arg *out,
                       struct cj_err *err)
{
	out->type = CJ_MOUNT_TMPFS;
	if (f->src)
		return cj_fail(err, 0, "--mount '%s': a tmpfs takes no source", arg);
	out->tmpfs.flags = CTRJ_MOUNT_NOSUID | CTRJ_MOUNT_NODEV | CTRJ_MOUNT_NOEXEC |
	                   (f->ro ? CTRJ_MOUNT_READONLY : 0);
	if (f->size && (cj_parse_size(f->size, 1, &out->tmpfs.size) < 0 || !out->tmpfs.size))
		return cj_fail(err, 0, "--mount '%s': tmpfs-size '%s' is invalid (e.g. 64m)", arg,
		               f->size);
	if (f->mode && parse_mode(f->mode, &out->tmpfs.mode) < 0)
		return cj_fail(err, 0, "--mount '%s': tmpfs-mode '%s' is not octal (e.g. 1777)",
		               arg, f->mode);
	return (out->tmpfs.path = strdup(f->dst)) ? 0 : cj_fail(err, ENOMEM, "--mount");
}

static int mount_typed(const struct mount_fields *f, const char *arg, struct cj_mount_arg *out,
                       struct cj_err *err)
{
	if (check_path("target", f->dst, arg, err) < 0)
		return -1;
	if (!f->type || strcmp(f->type, "tmpfs") != 0) {
		if (f->size || f->mode)
			return cj_fail(err, 0,
			               "--mount '%s': tmpfs-size and tmpfs-mode are for "
			               "type=tmpfs",
			               arg);
		if (!f->src || !*f->src)
			return cj_fail(err, 0, "--mount '%s': give a source", arg);
	}
	if (!f->type || strcmp(f->type, "volume") == 0) {
		out->type = CJ_MOUNT_VOLUME;
		out->volume.read_only = f->ro;
		out->volume.source = strdup(f->src);
		out->volume.guest_path = strdup(f->dst);
		return out->volume.source && out->volume.guest_path
		           ? 0
		           : cj_fail(err, ENOMEM, "--mount");
	}
	if (strcmp(f->type, "bind") == 0) {
		if (check_path("source", f->src, arg, err) < 0)
			return -1;
		out->type = CJ_MOUNT_BIND;
		out->share.read_only = f->ro;
		out->share.source = strdup(f->src);
		out->share.guest_path = strdup(f->dst);
		return out->share.source && out->share.guest_path ? 0
		                                                  : cj_fail(err, ENOMEM, "--mount");
	}
	if (strcmp(f->type, "tmpfs") == 0)
		return mount_tmpfs(f, arg, out, err);
	return cj_fail(err, 0,
	               "--mount '%s': type '%s' is not supported (use bind, volume or tmpfs)", arg,
	               f->type);
}

int cj_mount_arg_parse(const char *arg, struct cj_mount_arg *out, struct cj_err *err)
{
	struct mount_fields f = {0};
	cj_autofree char *copy = strdup(arg);
	char *save = NULL;
	int r;

	memset(out, 0, sizeof *out);
	if (!copy)
		return cj_fail(err, ENOMEM, "--mount");
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save))
		if (mount_field(kv, &f, err) < 0)
			return -1;
	r = mount_typed(&f, arg, out, err);
	if (r < 0) {
		cj_share_spec_free(&out->share);
		cj_volume_spec_free(&out->volume);
		cj_tmpfs_spec_free(&out->tmpfs);
	}
	return r;
}

static int tmpfs_option(const char *o, struct cj_tmpfs_spec *t, const char *arg, struct cj_err *err)
{
	static const struct {
		const char *name;
		uint32_t set, clear;
	} flags[] = {
	    {"ro", CTRJ_MOUNT_READONLY, 0},   {"rw", 0, CTRJ_MOUNT_READONLY},
	    {"noexec", CTRJ_MOUNT_NOEXEC, 0}, {"exec", 0, CTRJ_MOUNT_NOEXEC},
	    {"nosuid", CTRJ_MOUNT_NOSUID, 0}, {"suid", 0, CTRJ_MOUNT_NOSUID},
	    {"nodev", CTRJ_MOUNT_NODEV, 0},   {"dev", 0, CTRJ_MOUNT_NODEV},
	};

	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if (strcmp(o, flags[i].name) == 0) {
			t->flags = (t->flags | flags[i].set) & ~flags[i].clear;
			return 0;
		}
	if (strncmp(o, "size=", 5) == 0) {
		if (cj_parse_size(o + 5, 1, &t->size) < 0 || !t->size)
			return cj_fail(err, 0, "--tmpfs '%s': size '%s' is invalid (e.g. size=64m)",
			               arg, o + 5);
		return 0;
	}
	if (strncmp(o, "mode=", 5) == 0) {
		if (parse_mode(o + 5, &t->mode) < 0)
			return cj_fail(err, 0, "--tmpfs '%s': mode '%s' is not octal (e.g. 1777)",
			               arg, o + 5);
		return 0;
	}
	return cj_fail(err, 0,
	               "--tmpfs '%s': unknown option '%s' (use size=, mode=, ro, noexec, exec, "
	               "nosuid, suid, nodev, dev)",
	               arg, o);
}

int cj_tmpfs_arg_parse(const char *arg, struct cj_tmpfs_spec *out, struct cj_err *err)
{
	cj_autofree char *copy = strdup(arg);
	char *colon, *save = NULL;

	memset(out, 0, sizeof *out);
	if (!copy)
		return cj_fail(err, ENOMEM, "--tmpfs");
	out->flags = CTRJ_MOUNT_NOEXEC | CTRJ_MOUNT_NOSUID | CTRJ_MOUNT_NODEV;
	if ((colon = strchr(copy, ':')))
		*colon = '\0';
	if (copy[0] != '/')
		return cj_fail(err, 0, "--tmpfs '%s': the path must be absolute (e.g. /run/cache)",
		               arg);
	if (colon)
		for (char *o = strtok_r(colon + 1, ",", &save); o; o = strtok_r(NULL, ",", &save))
			if (tmpfs_option(o, out, arg, err) < 0)
				return -1;
	return (out->path = strdup(copy)) ? 0 : cj_fail(err, ENOMEM, "--tmpfs");
}

int cj_share_prepare_source(const struct cj_share_spec *s, struct cj_err *err)
{
	struct stat st;

	if (strpbrk(s->source, ",\\")) /* virtiofsd's -o syntax: separator, escape */
		return cj_fail(err, 0,
		               "host directory %s: a ',' or '\\' in its path is not supported: "
		               "rename it or share a parent directory",
		               s->source);
	if (stat(s->source, &st) < 0 && errno == ENOENT && s->create &&
	    cj_mkdir_p(s->source, 0755, err) < 0)
		return cj_err_wrap(err, "create host directory %s", s->source);
	if (stat(s->source, &st) < 0)
		return cj_fail(err, errno,
		               "host directory %s (--mount type=bind does not create it)",
		               s->source);
	if (!S_ISDIR(st.st_mode))
		return cj_fail(err, 0, "%s is not a directory: a bind mount shares a directory",
		               s->source);
	return 0;
}

/* ---- virtiofsd ----------------------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The last line virtiofsd logged, for an error. */
static void last_log_line(const char *log, char *out, size_t len)
{
	cj_autofree char *text = NULL;
	size_t n = 0;
	struct cj_err ignored = {0};

	out[0] = '\0';
	if (cj_read_file(log, &text, &n, &ignored) < 0 || !n)
		return;
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	const char *nl = strrchr(text, '\n');
	snprintf(out, len, "%s", nl ? nl + 1 : text);
}

/* Connect to the socket once virtiofsd listens; -1 when it ended or
 * never listened in time. */
static int connect_when_listening(struct cj_virtiofsd *v, struct cj_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char said[256];

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", v->sock);
	for (long waited = 0; waited < LISTEN_WAIT_MS; waited += 10) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return cj_fail(err, errno, "virtiofsd socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return fd;
		close(fd);
		if (waitpid(v->pid, NULL, WNOHANG) == v->pid) {
			v->pid = 0;
			last_log_line(v->log, said, sizeof said);
			return cj_fail(err, 0, "virtiofsd for %s ended at start%s%s", v->tag,
			               said[0] ? ": " : "", said);
		}
		sleep_ms(10);
	}
	return cj_fail(err, ETIMEDOUT, "virtiofsd for %s did not listen", v->tag);
}

static int push_share_undo(struct cj_undo *undo, const char *sock, struct cj_err *err)
{
	json_object *entry = json_object_new_object();

	json_object_object_add(entry, "socket", json_object_new_string(sock));
	return cj_undo_push(undo, "share.virtiofsd", entry, err);
}

struct vfs_child {
	const struct cj_helper_cgroup *cg;
	const char *source;
	char *const *files;
	bool read_only;
};

static int attach_to_cgroup(void *ctx, pid_t pid, struct cj_err *err)
{
	return cj_helper_cgroup_attach(((struct vfs_child *)ctx)->cg, pid, err);
}

#define RO_BIND (MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

/* source/name, bound read-only from fd (an O_PATH of the file). */
static int bind_file(const char *source, const char *name, int fd)
{
	char path[PATH_MAX], from[32];
	int made;

	snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
	if ((size_t)snprintf(path, sizeof path, "%s/%s", source, name) >= sizeof path)
		return errno = ENAMETOOLONG, -1;
	if ((made = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
		return -1;
	close(made);
	if (mount(from, path, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, path, NULL, RO_BIND, NULL) < 0)
		return -1;
	return 0;
}

/* Only c->files of the source: each opened (a link followed), then source
 * covered by a small read-only tmpfs holding binds of just those. */
static int files_only(const struct vfs_child *c, const char **what)
{
	int fds[CJ_SHARE_FILES], r = -1, e;
	size_t n = 0;
	char path[PATH_MAX];
	struct stat st;

	*what = "open the shared files";
	for (; n < CJ_SHARE_FILES && c->files[n]; n++) {
		fds[n] = -1;
		if (strchr(c->files[n], '/') || !strcmp(c->files[n], "..") ||
		    (size_t)snprintf(path, sizeof path, "%s/%s", c->source, c->files[n]) >=
		        sizeof path) {
			errno = EINVAL;
			n++;
			goto out;
		}
		fds[n] = open(path, O_PATH | O_CLOEXEC);
		if (fds[n] < 0 || fstat(fds[n], &st) < 0 || !S_ISREG(st.st_mode)) {
			errno = fds[n] < 0 ? errno : EINVAL;
			n++;
			goto out;
		}
	}
	*what = "cover the shared directory";
	if (mount("tmpfs", c->source, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "size=16k,nr_inodes=16,mode=0755") < 0)
		goto out;
	*what = "bind the shared files";
	for (size_t i = 0; i < n; i++)
		if (bind_file(c->source, c->files[i], fds[i]) < 0)
			goto out;
	r = mount(NULL, c->source, NULL, RO_BIND, NULL);
out:
	e = errno;
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	errno = e;
	return r;
}

/* In virtiofsd's own mount namespace (a slave of the host's), a read-only
 * share is a read-only bind of its source: virtiofsd then cannot write it
 * whatever the guest remounts (its -o has no read-only switch). */
static int read_only_source(void *ctx, const char **what)
{
	const struct vfs_child *c = ctx;

	if (!c->read_only)
		return 0;
	*what = "mount namespace";
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -1;
	if (c->files[0])
		return files_only(c, what);
	*what = "bind the source read-only";
	if (mount(c->source, c->source, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount(NULL, c->source, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		return -1;
	return 0;
}

int cj_virtiofsd_start(const struct cj_share_spec *s, unsigned n, const char *bin, const char *id,
                       const char *run_dir, const char *engine_cgroup, struct cj_undo *undo,
                       bool push_undo, struct cj_virtiofsd *out, struct cj_err *err)
{
	char cgname[64];
	char sockarg[PATH_MAX + 16], srcarg[PATH_MAX + 16], step[CJ_SPAWN_STEP_MAX];
	char *argv[] = {(char *)bin, sockarg,
	                "-o",        srcarg,
	                "-o",        "sandbox=namespace",
	                "-o",        "no_xattr,no_posix_lock,no_flock,cache=auto",
	                "-o",        "modcaps=-mknod", /* no device nodes on the host */
	                "-o",        "log_level=warn",
	                NULL};
	cj_autoclose int log = -1;
	/* a share of some files is read-only whatever asked */
	bool ro = s->read_only || s->files[0];
	struct vfs_child child = {
	    .cg = &out->cg, .source = s->source, .files = s->files, .read_only = ro};

	*out = (struct cj_virtiofsd){.fd = -1};
	snprintf(out->tag, sizeof out->tag, "ctrj%u", n);
	if ((size_t)snprintf(out->sock, sizeof out->sock, "%s/virtiofs-%u.sock", run_dir, n) >=
	        sizeof out->sock - 1 ||
	    strlen(out->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return cj_fail(err, ENAMETOOLONG, "virtiofsd socket in %s", run_dir);
	snprintf(out->log, sizeof out->log, "%s/virtiofs-%u.log", run_dir, n);
	snprintf(sockarg, sizeof sockarg, "--socket-path=%s", out->sock);
	snprintf(srcarg, sizeof srcarg, "source=%s", s->source);
	if (access(bin, X_OK) < 0)
		return cj_fail(err, errno,
		               "%s: host directories need QEMU's virtiofsd (install "
		               "qemu-system-common)",
		               bin);
	snprintf(cgname, sizeof cgname, "%s-vfs%u", id, n);
	if ((push_undo && push_share_undo(undo, out->sock, err) < 0) ||
	    cj_helper_cgroup_make(cgname, VIRTIOFSD_PIDS, engine_cgroup, undo, &out->cg, err) < 0)
		return -1;
	unlink(out->sock);
	log = open(out->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (log < 0)
		return cj_fail(err, errno, "virtiofsd log %s", out->log);
	struct cj_spawn sp = {
	    .path = bin,
	    .argv = argv,
	    .envp = cj_vmm_envp,
	    .stdin_fd = -1,
	    .stdout_fd = log,
	    .stderr_fd = log,
	    .new_session = true, /* and death with the runtime */
	    .clone_flags = CLONE_NEWIPC | CLONE_NEWUTS | (ro ? CLONE_NEWNS : 0),
	    .on_fork = attach_to_cgroup,
	    .pre_exec = read_only_source,
	    .ctx = &child,
	};
	out->pid = cj_spawn(&sp, step, err);
	if (out->pid < 0) {
		out->pid = 0;
		cj_helper_cgroup_remove(&out->cg);
		return -1;
	}
	if ((out->fd = connect_when_listening(out, err)) < 0) {
		cj_virtiofsd_stop(out);
		return -1;
	}
	unlink(out->sock); /* the one connection it accepts is made */
	return 0;
}

/* virtiofsd 7.2 writes its pid to /var/run/virtiofsd/<socket path, '/'
 * and '.' made '.'>.pid and never removes it: once it ended, we do. */
static void unlink_pidfile(const char *sock)
{
	char path[PATH_MAX + 64];
	int n = snprintf(path, sizeof path, "%s/", CJ_VIRTIOFSD_PID_DIR);

	if (n < 0 || (size_t)n + strlen(sock) + 5 > sizeof path)
		return;
	for (const char *c = sock; *c; c++)
		path[n++] = *c == '/' ? '.' : *c;
	snprintf(path + n, sizeof path - (size_t)n, ".pid");
	unlink(path);
}

static bool reaped_within(pid_t pid, long ms)
{
	for (long waited = 0; waited <= ms; waited += 10) {
		pid_t w = waitpid(pid, NULL, WNOHANG);
		if (w == pid || (w < 0 && errno == ECHILD))
			return true;
		sleep_ms(10);
	}
	return false;
}

void cj_virtiofsd_stop(struct cj_virtiofsd *v)
{
	json_object *entry = json_object_new_object();

	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	/* Its connection closed with the VMM, it ends by itself (its sandboxed
	 * child first); else every process of it, by the socket it was
	 * started with, is killed. */
	json_object_object_add(entry, "kind", json_object_new_string("share.virtiofsd"));
	json_object_object_add(entry, "socket", json_object_new_string(v->sock));
	if (v->pid <= 0 || !reaped_within(v->pid, STOP_WAIT_MS / 2)) {
		cj_helper_cgroup_remove(&v->cg);
		cj_share_undo(entry, false);
		if (v->pid > 0)
			waitpid(v->pid, NULL, 0);
	} else {
		unlink(v->sock);
		unlink_pidfile(v->sock);
	}
	json_object_put(entry);
	cj_helper_cgroup_remove(&v->cg);
	v->pid = 0;
	if (v->log[0])
		unlink(v->log);
}

/* Does root's process pid run virtiofsd with this "--socket-path=..."? */
static bool runs_virtiofsd_for(pid_t pid, const char *sockarg)
{
	char path[64], buf[8192];
	struct stat st;
	ssize_t n;
	cj_autoclose int fd = -1;

	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	if (stat(path, &st) < 0 || st.st_uid != 0)
		return false;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || (n = read(fd, buf, sizeof buf - 1)) <= 0)
		return false;
	buf[n] = '\0';
	if (!strstr(buf, "virtiofsd"))
		return false;
	for (char *a = buf; a < buf + n; a += strlen(a) + 1)
		if (strcmp(a, sockarg) == 0)
			return true;
	return false;
}

/* Signal every such process; the number found. */
static int signal_all(const char *sockarg, int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1 || pid == getpid())
			continue;
		if (runs_virtiofsd_for((pid_t)pid, sockarg)) {
			found++;
			kill((pid_t)pid, sig);
			waitpid((pid_t)pid, NULL, WNOHANG); /* ours: no zombie left */
		}
	}
	closedir(d);
	return found;
}

int cj_share_undo(json_object *entry, bool verbose)
{
	const char *sock = cj_undo_str(entry, "socket");
	char sockarg[PATH_MAX + 16];

	if (!sock || sock[0] != '/' || !strstr(sock, "/virtiofs-") || !ends_with(sock, ".sock"))
		return 0;
	snprintf(sockarg, sizeof sockarg, "--socket-path=%s", sock);
	for (long waited = 0; signal_all(sockarg, SIGKILL) > 0; waited += 10) {
		if (waited > STOP_WAIT_MS) {
			if (verbose)
				cj_notice("warning: a virtiofsd of %s does not end", sock);
			return -1;
		}
		sleep_ms(10);
	}
	unlink_pidfile(sock);
	return unlink(sock) == 0 || errno == ENOENT ? 0 : -1;
}
