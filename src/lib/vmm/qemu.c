/* SPDX-License-Identifier: Apache-2.0 */
/* QEMU `microvm` backend: virtio-mmio disks, an i8042 for Ctrl-Alt-Del
 * (the same graceful-stop path as Firecracker's SendCtrlAltDel), the guest
 * console on our stdout, QMP on a unix socket in the run directory. */
#include "vmm.h"

#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

bool cj_kvm_usable(char *why, size_t len)
{
	int fd;

	if (access("/sys/module/kvm_pvm", F_OK) == 0) {
		snprintf(why, len, "the KVM here is PVM, which cannot run a stock kernel");
		return false;
	}
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "/dev/kvm: %s", strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

unsigned long cj_host_tsc_khz(void)
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

static int push(char ***v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int push(char ***v, size_t *n, const char *fmt, ...)
{
	va_list ap;
	char *s;
	char **nv = realloc(*v, (*n + 2) * sizeof **v);

	if (!nv)
		return -1;
	*v = nv;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		return -1;
	nv[(*n)++] = s;
	nv[*n] = NULL;
	return 0;
}

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

char **cj_qemu_argv(const char *bin, const struct cj_vm_config *cfg, const char *qmp_path)
{
	char **v = NULL;
	size_t n = 0;
	int r = 0;
	char *qmp = escape_commas(qmp_path);

	if (!qmp)
		return NULL;
	r |= push(&v, &n, "%s", bin);
	r |= push(&v, &n, "-M");
	r |= push(&v, &n, "microvm,x-option-roms=off,isa-serial=on,rtc=on");
	r |= push(&v, &n, "-accel");
	r |= push(&v, &n, "%s", cfg->use_kvm ? "kvm" : "tcg");
	r |= push(&v, &n, "-cpu");
	r |= push(&v, &n, "%s", cfg->use_kvm ? "host" : "max");
	r |= push(&v, &n, "-smp");
	r |= push(&v, &n, "%u", cfg->cpus);
	r |= push(&v, &n, "-m");
	r |= push(&v, &n, "%llu", (unsigned long long)cfg->memory_mib);
	r |= push(&v, &n, "-nodefaults");
	r |= push(&v, &n, "-no-user-config");
	r |= push(&v, &n, "-display");
	r |= push(&v, &n, "none");
	r |= push(&v, &n, "-no-reboot");
	r |= push(&v, &n, "-kernel");
	r |= push(&v, &n, "%s", cfg->kernel);
	r |= push(&v, &n, "-initrd");
	r |= push(&v, &n, "%s", cfg->initramfs);
	r |= push(&v, &n, "-append");
	r |= push(&v, &n, "%s", cfg->cmdline);
	r |= push(&v, &n, "-chardev");
	r |= push(&v, &n, "stdio,id=console,signal=off");
	r |= push(&v, &n, "-serial");
	r |= push(&v, &n, "chardev:console");
	r |= push(&v, &n, "-device");
	r |= push(&v, &n, "i8042");
	r |= push(&v, &n, "-qmp");
	r |= push(&v, &n, "unix:%s,server=on,wait=off", qmp);
	if (cfg->tap) {
		const uint8_t *m = cfg->mac;
		r |= push(&v, &n, "-netdev");
		r |= push(&v, &n, "tap,id=net0,ifname=%s,script=no,downscript=no", cfg->tap);
		r |= push(&v, &n, "-device");
		r |= push(&v, &n, "virtio-net-device,netdev=net0,mac=%02x:%02x:%02x:%02x:%02x:%02x",
			  m[0], m[1], m[2], m[3], m[4], m[5]);
	}
	for (size_t i = 0; i < cfg->ndrives; i++) {
		const struct cj_drive *d = &cfg->drives[i];
		char *path = escape_commas(d->path);
		if (!path) {
			r = -1;
			break;
		}
		/* cache=writeback with flushes honoured: the guest's fsync reaches
		 * the host file. */
		r |= push(&v, &n, "-drive");
		r |=
		    push(&v, &n, "id=%s,file=%s,format=raw,if=none,cache=writeback,discard=unmap%s",
		         d->id, path, d->read_only ? ",readonly=on" : "");
		r |= push(&v, &n, "-device");
		r |= push(&v, &n, "virtio-blk-device,drive=%s", d->id);
		free(path);
	}
	free(qmp);
	if (r) {
		cj_qemu_argv_free(v);
		return NULL;
	}
	return v;
}

void cj_qemu_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

static int qemu_start(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err)
{
	const char *bin = vmm->bin;
	char **argv;
	int errpipe[2];
	pid_t pid;
	int child_errno = 0;
	ssize_t r;

	snprintf(vmm->api_socket, sizeof vmm->api_socket, "%s/qmp.sock", cfg->run_dir);
	argv = cj_qemu_argv(bin, cfg, vmm->api_socket);
	if (!argv)
		return cj_fail(err, ENOMEM, "build the QEMU command line");
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		cj_qemu_argv_free(argv);
		return cj_fail(err, errno, "pipe");
	}
	pid = fork();
	if (pid < 0) {
		cj_qemu_argv_free(argv);
		return cj_fail(err, errno, "fork");
	}
	if (pid == 0) {
		sigset_t none;
		/* Own process group: a Ctrl-C on the terminal reaches ctr-jailer,
		 * which stops the guest gracefully, not QEMU directly. The VMM dies
		 * with us, so a SIGKILLed runtime leaves no VM behind. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0)
			goto fail;
		close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
		for (size_t i = 0; i < cfg->nkeep_fds; i++)
			if (fcntl(cfg->keep_fds[i], F_SETFD, 0) < 0)
				goto fail;
		execvp(argv[0], argv);
	fail:
		child_errno = errno;
		if (write(errpipe[1], &child_errno, sizeof child_errno) < 0)
			_exit(127);
		_exit(127);
	}
	close(errpipe[1]);
	cj_qemu_argv_free(argv);
	do
		r = read(errpipe[0], &child_errno, sizeof child_errno);
	while (r < 0 && errno == EINTR);
	close(errpipe[0]);
	if (r == (ssize_t)sizeof child_errno) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return cj_fail(err, child_errno,
		               "start %s (install qemu-system-x86 or pass --qemu)", bin);
	}
	vmm->pid = pid;
	return 0;
}

/* ---- QMP -------------------------------------------------------------- */

static int qmp_read_reply(int fd, char *buf, size_t len, struct cj_err *err)
{
	size_t used = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, 3000);
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

static int qmp_command(int fd, json_object *cmd, struct cj_err *err)
{
	char buf[8192];
	const char *s = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s);

	if (write(fd, s, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		return cj_fail(err, errno, "QMP send");
	return qmp_read_reply(fd, buf, sizeof buf, err);
}

static json_object *qcode(const char *key)
{
	json_object *k = json_object_new_object();
	json_object_object_add(k, "type", json_object_new_string("qcode"));
	json_object_object_add(k, "data", json_object_new_string(key));
	return k;
}

static int qemu_request_stop(struct cj_vmm *vmm, struct cj_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[8192];
	int fd, r = -1;

	if (strlen(vmm->api_socket) >= sizeof sa.sun_path)
		return cj_fail(err, ENAMETOOLONG, "QMP socket path");
	strcpy(sa.sun_path, vmm->api_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cj_fail(err, errno, "QMP socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		cj_fail(err, errno, "connect to QMP at %s", vmm->api_socket);
		goto out;
	}
	if (qmp_read_reply(fd, buf, sizeof buf, err) < 0) /* greeting */
		goto out;
	json_object *caps = json_object_new_object();
	json_object_object_add(caps, "execute", json_object_new_string("qmp_capabilities"));
	r = qmp_command(fd, caps, err);
	json_object_put(caps);
	if (r < 0)
		goto out;
	json_object *cmd = json_object_new_object(), *args = json_object_new_object();
	json_object *keys = json_object_new_array();
	json_object_array_add(keys, qcode("ctrl"));
	json_object_array_add(keys, qcode("alt"));
	json_object_array_add(keys, qcode("delete"));
	json_object_object_add(args, "keys", keys);
	json_object_object_add(cmd, "execute", json_object_new_string("send-key"));
	json_object_object_add(cmd, "arguments", args);
	r = qmp_command(fd, cmd, err);
	json_object_put(cmd);
out:
	close(fd);
	return r;
}

void cj_vmm_kill(struct cj_vmm *vmm)
{
	if (vmm->pid > 0)
		kill(vmm->pid, SIGKILL);
}

static void qemu_exit_error(const struct cj_vmm *vmm, int st, struct cj_err *err)
{
	if (WIFSIGNALED(st))
		cj_fail(err, 0, "QEMU was killed by signal %d before the guest reported a status",
		        WTERMSIG(st));
	else
		cj_fail(
		    err, 0,
		    "the VM ended without reporting a status (QEMU exit status %d; a kernel panic "
		    "or a missing driver: see the console above)",
		    WEXITSTATUS(st));
}

static void qemu_cleanup(struct cj_vmm *vmm)
{
	(void)vmm; /* everything QEMU made lives in the run directory */
}

const struct cj_vmm_ops cj_qemu_ops = {
    .name = "qemu",
    .start = qemu_start,
    .request_stop = qemu_request_stop,
    .exit_error = qemu_exit_error,
    .cleanup = qemu_cleanup,
};
