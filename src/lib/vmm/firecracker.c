/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker backend. The VMM is configured over its REST API on a unix
 * socket (libcurl, CURLOPT_UNIX_SOCKET_PATH; bodies from firecracker_api.c,
 * built with json-c) and, unless --no-jail, started through Firecracker's
 * own `jailer`: chroot + pivot_root, new mount and pid namespaces, an
 * unprivileged uid/gid, cgroup limits, and (--netns) the VM's own network
 * namespace, which the run made (net/netns.c: only the TAP, reached from
 * the host through a veth pair and tc redirects; empty without a network).
 * Without the jail, Firecracker stays in the runtime's network namespace.
 *
 * The jail (<chroot-base>/<firecracker exec name>/<run id>/root) holds:
 *   vmlinux, initrd.cpio, <drive>.img   hard links to the host files, or
 *                                      bind mounts across filesystems
 *   run/                               a small tmpfs owned by the jail user:
 *     firecracker.socket                 the API socket (--api-sock)
 *     log.fifo, metrics.fifo             logger and metrics, read by us
 *     control.img                        the control disk (cj_layout_place_fd)
 * ctr-jailer lays the jail out with the jail plan's second executor
 * (src/lib/jail/layout.c, which says how each file is placed and owned);
 * the jailer does the chroot and the uid drop. Every change outside the
 * run directory is in the run record's undo log before it is made:
 * teardown, or `ctr-jailer gc` after a SIGKILLed run once every process
 * in the VM's cgroups has ended, replays it.
 */
#include "firecracker.h"

#include "jail/jail.h"
#include "jail/layout.h"
#include "util/spawn.h"
#include "util/util.h"

#include "ctrj/agent.h"
#include "curl_dl.h"
#include "fc_vsock.h"
#include "snapshot.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define API_WAIT_MS      10000
#define JAILER_WAIT_MS   10000
#define API_TIMEOUT_MS   30000L
#define REPLY_MAX        (64 * 1024)
#define METRICS_LINE_MAX (1024 * 1024)
/* The jail's run/ tmpfs: the control disk (1 MiB + 8 KiB) and fifos. */
#define JAIL_RUN_TMPFS_SIZE "8m"
/* The agent's vsock socket, next to the API socket. */
#define AGENT_VSOCK "agent.vsock"
/* Boot snapshots in the jail: where the VM making one writes it, and the
 * names a restoring jail has for the cache's files. */
#define SNAP_DIR   "snapshot"
#define SNAP_STATE "snapshot.state"
#define SNAP_MEM   "snapshot.mem"

struct fc_priv {
	bool jailed;
	uid_t uid;
	gid_t gid;
	char run_dir[PATH_MAX];
	char jail_dir[PATH_MAX]; /* <base>/<exec name>/<id> */
	char root[PATH_MAX];     /* jail_dir/root */
	struct cj_undo *undo;    /* the run record's log */
	int sock_dirfd;          /* the directory holding the API socket */
	char sock_name[32];      /* the socket's name in it */
	char connect_path[64];   /* /proc/self/fd/N/<socket>, for messages */
	pid_t vmm_pid;           /* the only process the API socket may belong to */
	struct cj_layout lay;    /* root, uid, gid, undo log, fd-backed copies */
	int log_fd, metrics_fd, stop_fd;
	pthread_t thread;
	bool thread_started;
	char metrics_out[PATH_MAX];
	bool curl_ready;
	bool subreaper;
	int go_fd, go_rd;             /* a restore: the console's input (Firecracker's stdin) */
	bool remove_jail;             /* cleanup removes the jail and its cgroups (see there) */
	char exec_name[NAME_MAX + 1]; /* the jail's names, for that */
	char id[80];
	char chroot_base[PATH_MAX];
};

/* ---- small helpers ------------------------------------------------------ */

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the undo entries of the jail --------------------------------------- */

/* What the jail changed outside the run directory, in the run record
 * before each change: "firecracker.jail" {chroot_base, exec_name, id} (its
 * directory, with the mounts in it); the drives given to the jail user
 * ("jail.owner") and the jailer's cgroups ("jail.cgroups") are the jail
 * module's. */
static int undo_jail(struct fc_priv *p, const char *chroot_base, const char *exec_name,
                     const char *id, struct cj_err *err)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "chroot_base", json_object_new_string(chroot_base));
	json_object_object_add(o, "exec_name", json_object_new_string(exec_name));
	json_object_object_add(o, "id", json_object_new_string(id));
	return cj_undo_push(p->undo, "firecracker.jail", o, err);
}

static bool valid_name(const char *s)
{
	if (!s || !*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s; s++)
		if (*s == '/')
			return false;
	return true;
}

/* The jail's directory from its entry, checked: the record is ours (a
 * root-only run directory), but a damaged one must never turn into rm -rf
 * of something else. */
static bool jail_dir_of(json_object *entry, char *dir, size_t len)
{
	const char *base = cj_undo_str(entry, "chroot_base");
	const char *exec_name = cj_undo_str(entry, "exec_name"), *id = cj_undo_str(entry, "id");

	return base && base[0] == '/' && !strstr(base, "/..") && valid_name(exec_name) &&
	       strstr(exec_name, "firecracker") && valid_name(id) &&
	       (size_t)snprintf(dir, len, "%s/%s/%s", base, exec_name, id) < len;
}

int cj_firecracker_undo(json_object *entry, bool verbose)
{
	const char *kind = cj_undo_str(entry, "kind");
	char dir[PATH_MAX];

	if (!kind || strcmp(kind, "firecracker.jail") != 0 || !jail_dir_of(entry, dir, sizeof dir))
		return 0;
	cj_unmount_under(dir);
	if (cj_rm_rf(dir) < 0) {
		if (verbose)
			cj_notice("warning: remove the jail %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- building the jail --------------------------------------------------- */

static int make_fifo(const char *path, const struct fc_priv *p, int *fd, struct cj_err *err)
{
	if (mkfifo(path, 0600) < 0)
		return cj_fail(err, errno, "mkfifo %s", path);
	if (p->jailed && chown(path, p->uid, p->gid) < 0)
		return cj_fail(err, errno, "chown %s", path);
	/* O_RDWR: never sees EOF while Firecracker reopens it; never blocks. */
	*fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0)
		return cj_fail(err, errno, "open %s", path);
	return 0;
}

/* Canonical path of the firecracker binary and its file name (the jailer
 * names the jail after it and, since 1.10, insists it contains
 * "firecracker"). */
static int exec_file(const char *bin, bool jailed, char *real, char *name, size_t namelen,
                     struct cj_err *err)
{
	struct stat st;

	if (!realpath(bin, real))
		return cj_fail(err, errno, "firecracker binary %s", bin);
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode))
		return cj_fail(err, errno ? errno : EINVAL, "firecracker binary %s", real);
	snprintf(name, namelen, "%s", strrchr(real, '/') + 1);
	if (jailed && !strstr(name, "firecracker"))
		return cj_fail(err, 0,
		               "the firecracker binary's file name must contain 'firecracker' "
		               "for the jailer (it is %s): rename it or link it under that name",
		               real);
	return 0;
}

/* ---- processes ------------------------------------------------------------ */

struct spawn {
	char **argv;
	int stdin_fd; /* -1: /dev/null */
	const int *keep;
	size_t nkeep;
	int netns_fd;   /* -1: stay */
	int cwd_fd;     /* -1: stay */
	int console_fd; /* -1: /dev/null */
	int stderr_fd;  /* -1: /dev/null */
};

static int enter_netns_cwd(void *ctx, const char **what)
{
	const struct spawn *s = ctx;

	*what = "join the network namespace";
	if (s->netns_fd >= 0 && setns(s->netns_fd, CLONE_NEWNET) < 0)
		return -1;
	*what = "change directory";
	return s->cwd_fd >= 0 ? fchdir(s->cwd_fd) : 0;
}

/* Start s->argv[0] (an absolute path) with cj_vmm_envp (empty): neither
 * the jailer (which clears it anyway) nor Firecracker needs one, and
 * ctr-jailer's environment carries the workload's variables. Its own
 * session (no terminal of the caller: the jailer and Firecracker inherit
 * it) and death with ctr-jailer; the jailer's uid switch clears the latter
 * for Firecracker itself: there the run's "vmm" record and gc take over.
 * Firecracker's serial, the guest console, is its stdout. */
static pid_t spawn(struct spawn *s, struct cj_err *err)
{
	struct cj_spawn sp = {.path = s->argv[0],
	                      .argv = s->argv,
	                      .envp = cj_vmm_envp,
	                      .stdin_fd = s->stdin_fd,
	                      .stdout_fd = s->console_fd,
	                      .stderr_fd = s->stderr_fd,
	                      .keep = s->keep,
	                      .nkeep = s->nkeep,
	                      .new_session = true,
	                      .pre_exec = enter_netns_cwd,
	                      .ctx = s};
	return cj_spawn(&sp, NULL, err);
}

static void kill_and_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* After a failed jailed start: reap what the jailer's pid file names, if
 * it is a child of ours (reparented to us, the subreaper) that has ended. */
static void reap_reparented(const char *pidfile)
{
	char buf[32];
	ssize_t n;
	long pid;
	int fd = open(pidfile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid > 0)
		while (waitpid((pid_t)pid, NULL, WNOHANG) < 0 && errno == EINTR)
			;
}

/* Has our child pid exited? (Leaves it to be reaped.) */
static bool exited(pid_t pid)
{
	siginfo_t si = {0};
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* ---- the API --------------------------------------------------------------- */

struct reply {
	char *data;
	size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct reply *r = ud;
	size_t n = size * nmemb;

	if (r->len + n > REPLY_MAX)
		return 0; /* aborts the transfer */
	char *nd = realloc(r->data, r->len + n + 1);
	if (!nd)
		return 0;
	memcpy(nd + r->len, ptr, n);
	r->len += n;
	nd[r->len] = '\0';
	r->data = nd;
	return n;
}

/* What a call configures, for messages: "PUT /drives/vol0" -> "drive vol0". */
static void describe_call(const char *path, char *out, size_t len)
{
	static const struct {
		const char *prefix, *what;
	} names[] = {
	    {"/drives/", "drive "},
	    {"/network-interfaces/", "network interface "},
	    {"/boot-source", "the kernel and its command line"},
	    {"/machine-config", "the machine configuration (vCPUs, memory)"},
	    {"/logger", "the logger"},
	    {"/metrics", "the metrics"},
	    {"/entropy", "the entropy device"},
	    {"/actions", "the action"},
	    {"/version", "the version query"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		size_t n = strlen(names[i].prefix);
		if (strncmp(path, names[i].prefix, n) == 0) {
			snprintf(out, len, "%s%s", names[i].what,
			         names[i].prefix[n - 1] == '/' ? path + n : "");
			return;
		}
	}
	snprintf(out, len, "%s", path);
}

/* The uid the API socket and its server must have: the jail's, or ours. */
static uid_t api_uid(const struct fc_priv *p)
{
	return p->jailed ? p->uid : geteuid();
}

/* Connections to the API socket that nothing the VMM can write redirects.
 * The jail's run/ belongs to the VMM's user, who may replace the socket by
 * a symlink to, or a socket of, anything root can reach. So the name is
 * opened O_PATH | O_NOFOLLOW in the directory we hold and must be a socket
 * owned by the VMM's uid; the connection goes to that very inode
 * (/proc/self/fd/N of the O_PATH fd), and the listening peer must be the
 * Firecracker process we started (SO_PEERCRED: its pid, in our pid
 * namespace, and uid). */
static int api_socket_open(const struct fc_priv *p, struct cj_err *err)
{
	struct stat st;
	int path_fd;

	path_fd = openat(p->sock_dirfd, p->sock_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (path_fd < 0)
		return cj_fail(err, errno, "Firecracker's API socket %s", p->connect_path);
	if (fstat(path_fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != api_uid(p)) {
		close(path_fd);
		return cj_fail(err, 0,
		               "Firecracker's API socket was replaced by something that is not "
		               "a socket of the VMM's uid %u: refusing to connect",
		               (unsigned)api_uid(p));
	}
	return path_fd;
}

static int api_check_peer(const struct fc_priv *p, int fd, struct cj_err *err)
{
	struct ucred peer;
	socklen_t len = sizeof peer;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
		return cj_fail(err, errno, "SO_PEERCRED on Firecracker's API socket");
	if (peer.pid != p->vmm_pid || peer.uid != api_uid(p))
		return cj_fail(err, 0,
		               "Firecracker's API socket is served by pid %d uid %u, not by the "
		               "VMM (pid %d uid %u): refusing to talk to it",
		               (int)peer.pid, (unsigned)peer.uid, (int)p->vmm_pid,
		               (unsigned)api_uid(p));
	return 0;
}

/* A checked connection (errnum ENOENT or ECONNREFUSED: not up yet). */
static int api_connect(const struct fc_priv *p, struct cj_err *err)
{
	char what[sizeof p->connect_path + 32];

	snprintf(what, sizeof what, "Firecracker's API socket %s", p->connect_path);
	return cj_fc_uds_connect(p->sock_dirfd, p->sock_name, api_uid(p), p->vmm_pid, what, err);
}

/* libcurl connects to the path of api_socket_open's fd; the socket it
 * connects is ours (open_api_socket), and its peer is checked once
 * connected, before any byte of the request is sent (check_api_peer). */
struct api_socket {
	const struct fc_priv *p;
	int fd;
	struct cj_err err; /* why the peer was refused */
	bool refused;
};

static curl_socket_t open_api_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct api_socket *as = ud;

	(void)purpose;
	if (addr->family != AF_UNIX)
		return CURL_SOCKET_BAD;
	as->fd = socket(AF_UNIX, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	return as->fd < 0 ? CURL_SOCKET_BAD : as->fd;
}

static int check_api_peer(void *ud, char *primary_ip, char *local_ip, int primary_port,
                          int local_port)
{
	struct api_socket *as = ud;

	(void)primary_ip;
	(void)local_ip;
	(void)primary_port;
	(void)local_port;
	as->refused = as->fd < 0 || api_check_peer(as->p, as->fd, &as->err) < 0;
	return as->refused ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

/* The request's options: the API socket (checked before use), the URL,
 * no proxy, timeouts, headers, where the answer goes, the body. */
static CURLcode api_setopts(CURL *c, struct api_socket *as, const char *sock_path, const char *url,
                            struct curl_slist *hdr, char *errbuf, struct reply *rep,
                            const char *method, json_object *body)
{
	CURLcode rc = CURLE_OK;

	rc |= curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock_path);
	rc |= curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_api_socket);
	rc |= curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, as);
	rc |= curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, check_api_peer);
	rc |= curl_easy_setopt(c, CURLOPT_PREREQDATA, as);
	rc |= curl_easy_setopt(c, CURLOPT_URL, url);
	rc |= curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never a proxy from the environment */
	rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, API_TIMEOUT_MS);
	rc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	rc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, rep);
	if (body) {
		const char *s = json_object_to_json_string_ext(
		    body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		rc |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(s));
		rc |= curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, s);
	} else {
		rc |= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	return rc;
}

/* The answer: 2xx (its JSON into *reply when asked), else the refusal in
 * Firecracker's words (its fault_message). */
static int api_answer(long status, const struct reply *rep, const char *method, const char *path,
                      json_object *body, json_object **reply, struct cj_err *err)
{
	json_object *o = rep->data ? json_tokener_parse(rep->data) : NULL, *fm, *act;
	char fault[512] = "", what[160];

	if (status >= 200 && status < 300) {
		if (reply && !o)
			return cj_fail(err, 0, "Firecracker API %s %s: the answer is not JSON",
			               method, path);
		if (reply)
			*reply = o;
		else
			json_object_put(o);
		return 0;
	}
	if (o && json_object_object_get_ex(o, "fault_message", &fm))
		cj_fc_sanitize(json_object_get_string(fm), fault, sizeof fault);
	else
		cj_fc_sanitize(rep->data ? rep->data : "(no explanation)", fault, sizeof fault);
	json_object_put(o);
	describe_call(path, what, sizeof what);
	if (strcmp(path, "/actions") == 0 && json_object_object_get_ex(body, "action_type", &act))
		snprintf(what, sizeof what, "the action %s", json_object_get_string(act));
	return cj_fail(err, 0, "Firecracker refused %s (%s %s, HTTP %ld): %s", what, method, path,
	               status, fault);
}

/* One request: method with body, or GET (body NULL); *reply gets the parsed
 * answer when reply != NULL. A 4xx/5xx answer's fault_message becomes the
 * error. */
static int api_request(const struct fc_priv *p, const char *method, const char *path,
                       json_object *body, json_object **reply, struct cj_err *err)
{
	char url[256], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL, *h;
	struct reply rep = {0};
	CURLcode rc;
	struct api_socket as = {.p = p, .fd = -1};
	char sock_path[64];
	long status = 0;
	int r = -1;
	cj_autoclose int path_fd = -1;
	CURL *c;

	if (reply)
		*reply = NULL;
	if ((path_fd = api_socket_open(p, err)) < 0)
		return cj_err_wrap(err, "Firecracker API %s %s", method, path);
	snprintf(sock_path, sizeof sock_path, "/proc/self/fd/%d", path_fd);
	if (!(c = curl_easy_init()))
		return cj_fail(err, ENOMEM, "Firecracker API client");
	snprintf(url, sizeof url, "http://localhost%s", path);
	const char *headers[] = {"Accept: application/json", "Content-Type: application/json",
	                         "Expect:"};
	for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
		if (!(h = curl_slist_append(hdr, headers[i]))) {
			cj_fail(err, ENOMEM, "Firecracker API client");
			goto out;
		}
		hdr = h;
	}
	rc = api_setopts(c, &as, sock_path, url, hdr, errbuf, &rep, method, body);
	if (rc != CURLE_OK) {
		cj_fail(err, 0, "Firecracker API client: %s", curl_easy_strerror(rc));
		goto out;
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK && as.refused) {
		*err = as.err;
		cj_err_wrap(err, "Firecracker API %s %s", method, path);
	} else if (rc != CURLE_OK) {
		cj_fail(err, 0, "Firecracker API %s %s: %s", method, path,
		        errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else {
		if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
			status = 0;
		r = api_answer(status, &rep, method, path, body, reply, err);
	}
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	free(rep.data);
	return r;
}

/* PUT path with body, or GET path (body NULL). */
static int api_call(const struct fc_priv *p, const char *path, json_object *body,
                    json_object **reply, struct cj_err *err)
{
	return api_request(p, body ? "PUT" : "GET", path, body, reply, err);
}

/* Wait until the API socket accepts connections. When the process ends
 * first it is reaped and *reaped set. */
static int wait_api(const struct fc_priv *p, pid_t pid, bool *reaped, struct cj_err *err)
{
	uint64_t deadline = cj_now_ns() + (uint64_t)API_WAIT_MS * 1000000ull;

	for (;;) {
		int fd = api_connect(p, err);
		if (fd >= 0) {
			close(fd);
			/* the tries before (not there yet) leave no error behind: the
			 * run prints one that comes with a status */
			*err = (struct cj_err){0};
			return 0;
		}
		/* anything but "not there yet" is a refusal: stop here */
		if (err->errnum != ENOENT && err->errnum != ECONNREFUSED)
			return -1;
		if (exited(pid)) {
			int st = 0;
			char why[256];
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			*reaped = true;
			cj_fc_describe_exit(st, why, sizeof why);
			return cj_fail(err, 0, "Firecracker ended before its API came up: %s", why);
		}
		if (cj_now_ns() >= deadline)
			return cj_fail(err, ETIMEDOUT, "Firecracker's API socket %s",
			               p->connect_path);
		sleep_ms(2);
	}
}

/* ---- logger and metrics ----------------------------------------------------- */

#define LOG_LINE_MAX 4096

struct linebuf {
	char buf[LOG_LINE_MAX];
	size_t len;
};

static void emit_log_line(const char *s, size_t n)
{
	char line[LOG_LINE_MAX + 1], clean[LOG_LINE_MAX + 1];

	memcpy(line, s, n);
	line[n] = '\0';
	cj_fc_sanitize(line, clean, sizeof clean);
	/* relayed, like the VMM's stderr (run.c), not a notice of ours */
	if (clean[0] && dprintf(STDERR_FILENO, "firecracker: %s\n", clean) < 0)
		return; /* stderr gone: nowhere to say it */
}

static void drain_log(int fd, struct linebuf *lb)
{
	for (;;) {
		ssize_t n = read(fd, lb->buf + lb->len, sizeof lb->buf - lb->len);
		if (n <= 0)
			return; /* EAGAIN: drained */
		lb->len += (size_t)n;
		char *start = lb->buf, *nl;
		while ((nl = memchr(start, '\n', lb->len - (size_t)(start - lb->buf)))) {
			emit_log_line(start, (size_t)(nl - start));
			start = nl + 1;
		}
		lb->len -= (size_t)(start - lb->buf);
		memmove(lb->buf, start, lb->len);
		if (lb->len == sizeof lb->buf) { /* an overlong line: cut it */
			emit_log_line(lb->buf, lb->len);
			lb->len = 0;
		}
	}
}

/* Keep only the latest metrics line, in <run dir>/metrics.json: a long
 * run's flushes (one per minute) never pile up. Best effort. */
static void drain_metrics(int fd, char *buf, size_t *len, const char *out)
{
	for (;;) {
		ssize_t n = read(fd, buf + *len, METRICS_LINE_MAX - *len);
		if (n <= 0)
			return;
		*len += (size_t)n;
		char *last = NULL, *start = buf, *nl;
		while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
			last = start;
			*nl = '\0';
			start = nl + 1;
		}
		if (last) {
			int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (o >= 0) {
				size_t l = strlen(last);
				if (write(o, last, l) != (ssize_t)l || write(o, "\n", 1) != 1)
					(void)unlink(out); /* never leave a torn snapshot */
				close(o);
			}
		}
		*len -= (size_t)(start - buf);
		memmove(buf, start, *len);
		if (*len == METRICS_LINE_MAX)
			*len = 0;
	}
}

static void *log_thread(void *arg)
{
	struct fc_priv *p = arg;
	struct linebuf lb = {.len = 0};
	char *mbuf = malloc(METRICS_LINE_MAX);
	size_t mlen = 0;
	struct pollfd fds[3] = {
	    {.fd = p->log_fd, .events = POLLIN},
	    {.fd = mbuf ? p->metrics_fd : -1, .events = POLLIN},
	    {.fd = p->stop_fd, .events = POLLIN},
	};

	for (;;) {
		if (poll(fds, 3, -1) < 0 && errno != EINTR)
			break;
		drain_log(p->log_fd, &lb);
		if (mbuf)
			drain_metrics(p->metrics_fd, mbuf, &mlen, p->metrics_out);
		if (fds[2].revents)
			break;
	}
	if (lb.len)
		emit_log_line(lb.buf, lb.len);
	free(mbuf);
	return NULL;
}

/* Stops and joins the thread. The eventfd write cannot fail short of a
 * bug (its counter is far from overflowing); then the thread is cancelled,
 * at a poll(). */
static void stop_log_thread_now(struct fc_priv *p)
{
	uint64_t one = 1;

	if (write(p->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
		pthread_cancel(p->thread);
	pthread_join(p->thread, NULL);
}

static int start_log_thread(struct fc_priv *p, struct cj_err *err)
{
	sigset_t all, old;
	int r;

	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->stop_fd < 0)
		return cj_fail(err, errno, "eventfd");
	/* The thread takes no signals: they stay with the supervisor's signalfd. */
	sigfillset(&all);
	if ((r = pthread_sigmask(SIG_BLOCK, &all, &old)) != 0)
		return cj_fail(err, r, "pthread_sigmask");
	r = pthread_create(&p->thread, NULL, log_thread, p);
	int r2 = pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0 && r2 != 0) {
		stop_log_thread_now(p);
		return cj_fail(err, r2, "pthread_sigmask");
	}
	if (r != 0)
		return cj_fail(err, r, "start the Firecracker log reader");
	p->thread_started = true;
	return 0;
}

static void stop_log_thread(struct fc_priv *p)
{
	if (p->thread_started) {
		stop_log_thread_now(p);
		p->thread_started = false;
	}
}

/* ---- the backend -------------------------------------------------------------- */

static void priv_init(struct fc_priv *p)
{
	memset(p, 0, sizeof *p);
	p->sock_dirfd = p->log_fd = p->metrics_fd = p->stop_fd = p->go_fd = p->go_rd = -1;
}

/* A drive of the VM that makes a boot snapshot: an empty file of the jail
 * user's at the name the run's drive has in its jail, where the restored
 * Firecracker reopens it (no run's data is ever in the snapshot's VM). */
static int empty_drive(const struct fc_priv *p, const char *rel, struct cj_err *err)
{
	char path[PATH_MAX + 64];
	cj_autoclose int fd = -1;

	snprintf(path, sizeof path, "%s/%s", p->root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return cj_fail(err, errno, "create %s in the jail", rel);
	if (fchown(fd, p->uid, p->gid) < 0)
		return cj_fail(err, errno, "chown %s", rel);
	return 0;
}

/* The boot snapshot's files in the jail: the directory Firecracker writes
 * them to (prepare), or links to the cache's read-only files (restore; a
 * compromised VMM cannot change them: they are root's). */
static int place_snapshot(struct fc_priv *p, const struct cj_vm_config *cfg, struct cj_err *err)
{
	char dir[PATH_MAX + 16], mem[PATH_MAX];
	const char *slash;

	if (cfg->snap.prepare) {
		snprintf(dir, sizeof dir, "%s/" SNAP_DIR, p->root);
		if (mkdir(dir, 0700) < 0 || chown(dir, p->uid, p->gid) < 0)
			return cj_fail(err, errno, "create %s", dir);
		return 0;
	}
	if (!cfg->snap.restore)
		return 0;
	slash = cfg->snap.path ? strrchr(cfg->snap.path, '/') : NULL;
	if (!slash)
		return cj_fail(err, EINVAL, "the boot snapshot's path");
	snprintf(mem, sizeof mem, "%.*s/mem", (int)(slash - cfg->snap.path), cfg->snap.path);
	if (cj_layout_place_file(&p->lay, cfg->snap.path, SNAP_STATE, true, err) < 0 ||
	    cj_layout_place_file(&p->lay, mem, SNAP_MEM, true, err) < 0)
		return cj_err_wrap(err, "the boot snapshot");
	return 0;
}

/* A boot snapshot's part of the jail (place_snapshot) and, for a restore,
 * the pipe that will be Firecracker's stdin, the console's input. The
 * jail of a VM making a snapshot, or of one whose snapshot did not
 * restore, goes at cleanup. */
static int snap_setup(struct cj_vmm *vmm, struct fc_priv *p, const struct cj_vm_config *cfg,
                      struct cj_err *err)
{
	int go[2];

	p->remove_jail = cfg->snap.prepare;
	if (place_snapshot(p, cfg, err) < 0) {
		vmm->restore_failed = p->remove_jail = cfg->snap.restore;
		return -1;
	}
	if (!cfg->snap.restore)
		return 0;
	if (pipe2(go, O_CLOEXEC) < 0)
		return cj_fail(err, errno, "console pipe");
	p->go_rd = go[0];
	p->go_fd = go[1];
	return 0;
}

/* The jail: directories, the run/ tmpfs, the record, the files. paths
 * receive jail-relative names (storage in names[]). */
static int build_jail(struct fc_priv *p, const struct cj_vm_config *cfg, const char *exec_name,
                      struct cj_fc_paths *paths, char (*names)[64], struct cj_err *err)
{
	char dir[PATH_MAX], run[PATH_MAX + 8], opts[128];

	/* Recorded before anything exists: a crash from here on is gc's. */
	if (undo_jail(p, cfg->jail.chroot_base, exec_name, cfg->id, err) < 0)
		return -1;
	snprintf(p->exec_name, sizeof p->exec_name, "%s", exec_name);
	snprintf(p->id, sizeof p->id, "%s", cfg->id);
	snprintf(p->chroot_base, sizeof p->chroot_base, "%s", cfg->jail.chroot_base);
	if (cj_mkdir_p(cfg->jail.chroot_base, 0755, err) < 0)
		return cj_err_wrap(err, "jail base directory");
	snprintf(dir, sizeof dir, "%s/%s", cfg->jail.chroot_base, exec_name);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return cj_fail(err, errno, "create %s", dir);
	if ((size_t)snprintf(p->jail_dir, sizeof p->jail_dir, "%s/%s", dir, cfg->id) >=
	        sizeof p->jail_dir ||
	    (size_t)snprintf(p->root, sizeof p->root, "%s/root", p->jail_dir) >= sizeof p->root)
		return cj_fail(err, ENAMETOOLONG, "jail directory");
	if (mkdir(p->jail_dir, 0700) < 0)
		return cj_fail(err, errno, "create the jail %s", p->jail_dir);
	if (mkdir(p->root, 0700) < 0)
		return cj_fail(err, errno, "create %s", p->root);
	memcpy(p->lay.root, p->root, sizeof p->lay.root);
	snprintf(run, sizeof run, "%s/run", p->root);
	snprintf(opts, sizeof opts, "mode=0700,uid=%u,gid=%u,size=" JAIL_RUN_TMPFS_SIZE,
	         (unsigned)p->uid, (unsigned)p->gid);
	if (mkdir(run, 0700) < 0 ||
	    mount("ctr-jailer", run, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
		return cj_fail(err, errno, "mount a tmpfs on %s", run);

	/* the plan's files: the kernel, the initramfs, then the drives in order */
	for (size_t i = 0, k = 0; i < cfg->jail.nfiles; i++) {
		const struct cj_jail_file *f = &cfg->jail.files[i];
		if (f->kind != CJ_JAIL_DRIVE) {
			const char *rel = f->kind == CJ_JAIL_KERNEL ? "vmlinux" : "initrd.cpio";
			if (cj_layout_place_file(&p->lay, f->host, rel, !f->writable, err) < 0)
				return cj_err_wrap(err, "%s", f->name);
			*(f->kind == CJ_JAIL_KERNEL ? &paths->kernel : &paths->initrd) = rel;
			continue;
		}
		if (!valid_name(f->name) || strlen(f->name) > 48)
			return cj_fail(err, 0, "drive id '%s' cannot name a file", f->name);
		snprintf(names[k], 64, f->fd >= 0 ? "run/%s.img" : "%s.img", f->name);
		if ((cfg->snap.prepare ? empty_drive(p, names[k], err)
		     : f->fd >= 0
		         ? cj_layout_place_fd(&p->lay, f->fd, names[k], f->writable, err)
		         : cj_layout_place_file(&p->lay, f->host, names[k], !f->writable, err)) < 0)
			return cj_err_wrap(err, "drive %s", f->name);
		paths->drives[k] = names[k];
		k++;
	}
	return 0;
}

static int start_jailed(struct cj_vmm *vmm, struct fc_priv *p, const struct cj_vm_config *cfg,
                        const char *real, const char *exec_name, struct cj_err *err)
{
	char pidfile[PATH_MAX + 32], buf[32], **argv;
	struct cj_fc_jailer_args ja = {
	    .jailer_bin = cfg->jail.jailer_bin,
	    .exec_file = real,
	    .id = cfg->id,
	    .chroot_base = cfg->jail.chroot_base,
	    .uid = p->uid,
	    .gid = p->gid,
	    .cgroup_version = cj_cgroup_version(),
	    .netns = cfg->jail.netns,
	    .limits = &cfg->jail.limits,
	    .fsize = cfg->jail.fsize_limit,
	};
	struct spawn s = {.netns_fd = -1,
	                  .cwd_fd = -1,
	                  .stdin_fd = p->go_rd,
	                  .console_fd = cfg->has_console_fd ? cfg->console_fd : -1,
	                  .stderr_fd = cfg->has_stderr_fd ? cfg->stderr_fd : -1};
	int st = 0, fd;
	pid_t jailer, pid;
	ssize_t n;

	snprintf(pidfile, sizeof pidfile, "%s/%s.pid", p->root, exec_name);
	argv = cj_fc_jailer_argv(&ja);
	if (!argv)
		return cj_fail(err, ENOMEM, "jailer command line");
	/* With --new-pid-ns the jailer forks Firecracker into a new pid
	 * namespace and exits: as a child subreaper we inherit Firecracker and
	 * can wait for it like for any child. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		cj_fc_argv_free(argv);
		return cj_fail(err, errno, "PR_SET_CHILD_SUBREAPER");
	}
	p->subreaper = true;
	/* the jailer makes the VM's cgroups: recorded before it runs */
	if (cj_jail_undo_cgroups(p->undo, exec_name, cfg->id, err) < 0) {
		cj_fc_argv_free(argv);
		return -1;
	}
	s.argv = argv;
	jailer = spawn(&s, err);
	cj_fc_argv_free(argv);
	if (jailer < 0)
		return cj_err_wrap(err, "Firecracker's jailer");
	for (uint64_t deadline = cj_now_ns() + (uint64_t)JAILER_WAIT_MS * 1000000ull;;) {
		pid_t w = waitpid(jailer, &st, WNOHANG);
		if (w == jailer)
			break;
		if (w < 0 && errno != EINTR) {
			cj_fail(err, errno, "wait for the jailer");
			goto fail;
		}
		if (cj_now_ns() >= deadline) {
			kill_and_reap(jailer);
			cj_fail(err, ETIMEDOUT, "the jailer did not finish setting up");
			goto fail;
		}
		sleep_ms(2);
	}
	if (WIFSIGNALED(st)) {
		cj_fail(err, 0, "Firecracker's jailer was killed by signal %d", WTERMSIG(st));
		goto fail;
	}
	if (WEXITSTATUS(st) != 0) {
		cj_fail(err, 0,
		        "Firecracker's jailer failed with exit status %d (its message is above)",
		        WEXITSTATUS(st));
		goto fail;
	}
	fd = open(pidfile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		cj_fail(err, errno, "the jailer's pid file %s", pidfile);
		goto fail;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	pid = (pid_t)strtol(buf, NULL, 10);
	/* Must be our child now (reparented to us): anything else is refused. */
	siginfo_t si = {0};
	if (pid <= 0 || waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		cj_fail(err, 0, "the jailer's pid file %s names no child of ours", pidfile);
		goto fail;
	}
	vmm->pid = pid;
	return 0;
fail:
	/* The jailer may have started Firecracker before it failed, or the pid
	 * it left may not lead to it: whatever it started is in the VM's
	 * cgroups, and killed there, never left running as the VM's uid. */
	if (cj_cgroups_kill_named(exec_name, cfg->id) < 0)
		cj_notice("warning: a process of Firecracker's jail %s does not end", cfg->id);
	reap_reparented(pidfile);
	return -1;
}

static int start_unjailed(struct cj_vmm *vmm, struct fc_priv *p, const struct cj_vm_config *cfg,
                          const char *real, struct cj_err *err)
{
	char *argv[] = {(char *)real, "--api-sock",    "firecracker.sock",
	                "--id",       (char *)cfg->id, NULL};
	int keep[CJ_MAX_DRIVES];
	size_t nkeep = 0;
	for (size_t i = 0; i < cfg->ndrives; i++)
		if (cfg->drives[i].fd >= 0)
			keep[nkeep++] = cfg->drives[i].fd;
	struct spawn s = {.argv = argv,
	                  .stdin_fd = -1,
	                  .keep = keep,
	                  .nkeep = nkeep,
	                  .netns_fd = -1,
	                  .cwd_fd = p->sock_dirfd,
	                  .console_fd = cfg->has_console_fd ? cfg->console_fd : -1,
	                  .stderr_fd = cfg->has_stderr_fd ? cfg->stderr_fd : -1};
	pid_t pid;

	if (cfg->jail.netns) {
		s.netns_fd = open(cfg->jail.netns, O_RDONLY | O_CLOEXEC);
		if (s.netns_fd < 0)
			return cj_fail(err, errno, "network namespace %s", cfg->jail.netns);
	}
	pid = spawn(&s, err);
	if (s.netns_fd >= 0)
		close(s.netns_fd);
	if (pid < 0)
		return cj_err_wrap(err, "Firecracker (install it or pass --firecracker)");
	vmm->pid = pid;
	return 0;
}

static int check_version(const struct fc_priv *p, struct cj_err *err)
{
	json_object *ver = NULL, *v;
	int r;

	if (api_call(p, "/version", NULL, &ver, err) < 0)
		return -1;
	r = json_object_object_get_ex(ver, "firecracker_version", &v)
	        ? cj_fc_check_version(json_object_get_string(v), err)
	        : cj_fail(err, 0, "Firecracker's GET /version answer has no firecracker_version");
	json_object_put(ver);
	return r;
}

/* A fresh Firecracker restores the boot snapshot: its logger and metrics
 * (the only configuration a snapshot load allows before it), the load
 * (paused), the drives re-pointed at this run's files, the network on
 * this run's TAP, resumed; then the "go" line on its console (snapshot.h)
 * with this boot's seed, clock and MAC. */
static int restore(struct fc_priv *p, const struct cj_vm_config *cfg,
                   const struct cj_fc_request *plan, size_t nplan, const struct cj_fc_paths *paths,
                   struct cj_err *err)
{
	struct cj_fc_call *calls = NULL;
	char line[CJ_SNAPSHOT_GO_MAX];
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; i < nplan && r == 0; i++)
		if (strcmp(plan[i].path, "/logger") == 0 || strcmp(plan[i].path, "/metrics") == 0)
			r = api_call(p, plan[i].path, plan[i].body, NULL, err);
	if (r == 0)
		r = cj_fc_restore_calls(cfg, paths, SNAP_STATE, SNAP_MEM, &calls, &n, err);
	for (size_t i = 0; i < n && r == 0; i++)
		r = api_request(p, calls[i].method, calls[i].path, calls[i].body, NULL, err);
	cj_fc_calls_free(calls, n);
	if (r < 0)
		return cj_err_wrap(err, "restore the boot snapshot");
	if (cj_snapshot_go_line(line, sizeof line, cfg->tap ? cfg->mac : NULL, err) < 0)
		return -1;
	/* shorter than PIPE_BUF: written whole */
	r = write(p->go_fd, line, strlen(line)) != (ssize_t)strlen(line)
	        ? cj_fail(err, errno, "restore the boot snapshot: write to the console")
	        : 0;
	explicit_bzero(line, sizeof line);
	close(p->go_fd);
	p->go_fd = -1;
	return r;
}

static int configure(struct fc_priv *p, const struct cj_vm_config *cfg,
                     const struct cj_fc_paths *paths, struct cj_err *err)
{
	struct cj_fc_request *plan = NULL;
	json_object *start;
	size_t n = 0;
	int r = 0;

	if (check_version(p, err) < 0)
		return -1;
	if (cj_fc_plan(cfg, paths, &plan, &n, err) < 0)
		return -1;
	if (cfg->snap.restore) {
		r = restore(p, cfg, plan, n, paths, err);
		cj_fc_plan_free(plan, n);
		return r;
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = api_call(p, plan[i].path, plan[i].body, NULL, err);
	cj_fc_plan_free(plan, n);
	if (r < 0)
		return -1;
	if (!(start = cj_fc_action("InstanceStart")))
		return cj_fail(err, ENOMEM, "InstanceStart");
	r = api_call(p, "/actions", start, NULL, err);
	json_object_put(start);
	return r;
}

static int fc_start(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err)
{
	struct fc_priv *p = malloc(sizeof *p);
	struct cj_fc_paths paths = {0};
	char names[CJ_MAX_DRIVES][64], real[PATH_MAX], exec_name[NAME_MAX + 1];
	char log_path[PATH_MAX + 16], metrics_path[PATH_MAX + 16], sock_dir[PATH_MAX + 8];
	char vsock_path[PATH_MAX + 16];
	const char *sock_name;

	if (!p)
		return cj_fail(err, ENOMEM, "Firecracker backend");
	priv_init(p);
	vmm->priv = p;
	p->jailed = cfg->jail.enabled;
	p->undo = p->lay.undo = cfg->undo;
	p->uid = p->lay.uid = cfg->jail.uid;
	p->gid = p->lay.gid = cfg->jail.gid;
	snprintf(p->run_dir, sizeof p->run_dir, "%s", cfg->run_dir);
	snprintf(p->metrics_out, sizeof p->metrics_out, "%s/metrics.json", cfg->run_dir);
	if (!cfg->id || !valid_name(cfg->id))
		return cj_fail(err, 0, "the Firecracker backend needs the run's id");
	if (p->jailed && (!cfg->jail.jailer_bin || !cfg->jail.chroot_base))
		return cj_fail(err, 0, "Firecracker's jailer or its chroot base is not set");
	/* never the runtime's own: it would see the host's loopback services,
	 * abstract unix sockets and every VM's TAP */
	if (p->jailed && !cfg->jail.netns)
		return cj_fail(err, 0,
		               "the jailed Firecracker has no network namespace of its own");
	if (cfg->cpus > CJ_FC_MAX_VCPUS)
		cj_notice("Firecracker runs at most %u vCPUs; using %u", CJ_FC_MAX_VCPUS,
		          CJ_FC_MAX_VCPUS);
	if (cj_curl_load(err) < 0)
		return -1;
	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
		return cj_fail(err, 0, "libcurl initialisation failed");
	p->curl_ready = true;
	if (exec_file(vmm->bin, p->jailed, real, exec_name, sizeof exec_name, err) < 0)
		return -1;

	if (p->jailed) {
		if (build_jail(p, cfg, exec_name, &paths, names, err) < 0 ||
		    snap_setup(vmm, p, cfg, err) < 0)
			return -1;
		snprintf(sock_dir, sizeof sock_dir, "%s/run", p->root);
		sock_name = strrchr(CJ_FC_JAIL_API_SOCK, '/') + 1;
		snprintf(log_path, sizeof log_path, "%s/run/log.fifo", p->root);
		snprintf(metrics_path, sizeof metrics_path, "%s/run/metrics.fifo", p->root);
		paths.log = "run/log.fifo";
		paths.metrics = "run/metrics.fifo";
		paths.vsock = "run/" AGENT_VSOCK;
	} else {
		/* --no-jail (the run has warned): Firecracker as root, host paths. */
		snprintf(sock_dir, sizeof sock_dir, "%s", cfg->run_dir);
		sock_name = "firecracker.sock";
		snprintf(log_path, sizeof log_path, "%s/fc-log.fifo", cfg->run_dir);
		snprintf(metrics_path, sizeof metrics_path, "%s/fc-metrics.fifo", cfg->run_dir);
		paths.kernel = cfg->kernel;
		paths.initrd = cfg->initramfs;
		for (size_t i = 0; i < cfg->ndrives; i++)
			paths.drives[i] = cj_drive_path(&cfg->drives[i], names[i], sizeof names[i]);
		paths.log = log_path;
		paths.metrics = metrics_path;
		snprintf(vsock_path, sizeof vsock_path, "%s/" AGENT_VSOCK, cfg->run_dir);
		(void)unlink(vsock_path); /* a previous boot's, in our own run directory */
		paths.vsock = vsock_path;
	}
	snprintf(vmm->api_socket, sizeof vmm->api_socket, "%s/%s", sock_dir, sock_name);
	p->sock_dirfd = open(sock_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p->sock_dirfd < 0)
		return cj_fail(err, errno, "open %s", sock_dir);
	snprintf(p->sock_name, sizeof p->sock_name, "%s", sock_name);
	snprintf(p->connect_path, sizeof p->connect_path, "/proc/self/fd/%d/%s", p->sock_dirfd,
	         sock_name);
	if (make_fifo(log_path, p, &p->log_fd, err) < 0 ||
	    make_fifo(metrics_path, p, &p->metrics_fd, err) < 0 || start_log_thread(p, err) < 0)
		return -1;

	int started = p->jailed ? start_jailed(vmm, p, cfg, real, exec_name, err)
	                        : start_unjailed(vmm, p, cfg, real, err);
	if (p->go_rd >= 0)
		close(p->go_rd);
	p->go_rd = -1;
	if (started < 0)
		return -1;
	bool reaped = false;
	p->vmm_pid = vmm->pid;
	if (wait_api(p, vmm->pid, &reaped, err) < 0)
		goto fail;
	if (configure(p, cfg, &paths, err) < 0) {
		/* the run removes that snapshot and starts again, cold: in a
		 * jail of the same name, so this one goes at cleanup */
		vmm->restore_failed = p->remove_jail = cfg->snap.restore;
		goto fail;
	}
	return 0;
fail:
	if (!reaped)
		kill_and_reap(vmm->pid);
	vmm->pid = 0;
	return -1;
}

static int fc_request_stop(struct cj_vmm *vmm, struct cj_err *err)
{
	struct fc_priv *p = vmm->priv;
	json_object *a;
	int r;

	if (!p)
		return cj_fail(err, 0, "Firecracker is not running");
	if (!(a = cj_fc_action("SendCtrlAltDel")))
		return cj_fail(err, ENOMEM, "SendCtrlAltDel");
	r = api_call(p, "/actions", a, NULL, err);
	json_object_put(a);
	return r;
}

static int fc_collect(struct cj_vmm *vmm, struct cj_err *err)
{
	struct fc_priv *p = vmm->priv;

	return p ? cj_layout_collect(&p->lay, err) : 0;
}

static int fc_exit_error(const struct cj_vmm *vmm, int st, const char *said, struct cj_err *err)
{
	char why[300];

	/* Firecracker's start is over its API: a VMM that failed before the
	 * guest ran has already failed start() */
	(void)vmm;
	(void)said;
	cj_fc_describe_exit(st, why, sizeof why);
	cj_fail(err, 0, "the VM ended without reporting a status: %s", why);
	return CJ_EXIT_VM_LOST;
}

/* Firecracker's Ctrl-Alt-Del goes through its i8042 as well. */
static void fc_boot_args(const struct cj_vm_config *cfg, bool defaults, char *out, size_t len)
{
	size_t n = strlen(out);

	(void)cfg;
	if (defaults && n < len)
		snprintf(out + n, len - n, " i8042.noaux i8042.nomux");
}

/* Firecracker's vsock socket is in the directory we hold the API socket's
 * by (the jail's run/, or the run directory without a jail), made by the
 * VMM's uid: opened like the API socket, never through a symlink. */
static int fc_agent_target(const struct cj_vmm *vmm, struct cj_fc_vsock_target *t,
                           struct cj_err *err)
{
	const struct fc_priv *p = vmm->priv;

	if (!p || p->sock_dirfd < 0 || p->vmm_pid <= 0)
		return cj_fail(err, 0, "Firecracker is not running");
	*t = (struct cj_fc_vsock_target){.dirfd = p->sock_dirfd,
	                                 .name = AGENT_VSOCK,
	                                 .uid = api_uid(p),
	                                 .pid = p->vmm_pid,
	                                 .port = CTRJ_AGENT_VSOCK_PORT};
	return 0;
}

/* ---- boot snapshots (snapshot.h) ---------------------------------------- */

/* The jail's file rel (in SNAP_DIR, the jail user's), written by the
 * Firecracker that has just been killed, into out: a regular file of the
 * jail user's, never through a symlink. */
static int copy_out(const struct fc_priv *p, const char *rel, int out, struct cj_err *err)
{
	char dir[PATH_MAX + 16];
	cj_autoclose int dfd = -1, in = -1;
	struct stat st;

	snprintf(dir, sizeof dir, "%s/" SNAP_DIR, p->root);
	if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (in = openat(dfd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return cj_fail(err, errno, "Firecracker's snapshot file %s", rel);
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != p->uid)
		return cj_fail(err, 0,
		               "Firecracker's snapshot file %s is not a file of the VM's uid", rel);
	for (off_t left = st.st_size; left > 0;) {
		ssize_t n = sendfile(out, in, NULL, left > (1 << 30) ? (1 << 30) : (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return cj_fail(err, n < 0 ? errno : EIO,
			               "copy Firecracker's snapshot file %s", rel);
		left -= n;
	}
	return 0;
}

/* The guest waits at its snapshot point: pause it, have Firecracker write
 * the state and memory into the jail, kill it and whatever is left in its
 * cgroups (nothing changes the files then), and copy them into
 * cfg->snap.fd and cfg->snap.mem_fd. */
static int fc_snapshot_take(struct cj_vmm *vmm, const struct cj_vm_config *cfg, struct cj_err *err)
{
	struct fc_priv *p = vmm->priv;
	struct cj_fc_call *calls = NULL;
	size_t n = 0;
	int r;

	if (!p || !p->jailed || cfg->snap.mem_fd < 0)
		return cj_fail(err, 0, "Firecracker makes boot snapshots only in its jail");
	r = cj_fc_snapshot_calls(SNAP_DIR "/vmstate", SNAP_DIR "/mem", &calls, &n, err);
	for (size_t i = 0; i < n && r == 0; i++)
		r = api_request(p, calls[i].method, calls[i].path, calls[i].body, NULL, err);
	cj_fc_calls_free(calls, n);
	kill_and_reap(vmm->pid);
	vmm->pid = 0;
	/* and anything it left in its cgroups */
	if (cj_cgroups_kill_named(p->exec_name, p->id) < 0 && r == 0)
		r = cj_fail(err, 0, "a process of the snapshot's jail %s does not end", p->id);
	if (r == 0)
		r = copy_out(p, "vmstate", cfg->snap.fd, err);
	if (r == 0)
		r = copy_out(p, "mem", cfg->snap.mem_fd, err);
	return r < 0 ? cj_err_wrap(err, "make the boot snapshot") : 0;
}

/* The jail of a VM that made a snapshot, or whose snapshot did not
 * restore, with its cgroups, once the VMM has ended: as their undo
 * entries do at teardown (which finds them gone). */
static void remove_jail(const struct fc_priv *p)
{
	json_object *jail = json_object_new_object(), *cg = json_object_new_object();

	if (jail && cg) {
		json_object_object_add(jail, "kind", json_object_new_string("firecracker.jail"));
		json_object_object_add(jail, "chroot_base", json_object_new_string(p->chroot_base));
		json_object_object_add(jail, "exec_name", json_object_new_string(p->exec_name));
		json_object_object_add(jail, "id", json_object_new_string(p->id));
		json_object_object_add(cg, "kind", json_object_new_string("jail.cgroups"));
		json_object_object_add(cg, "parent", json_object_new_string(p->exec_name));
		json_object_object_add(cg, "id", json_object_new_string(p->id));
		cj_jail_undo(cg, true);
		cj_firecracker_undo(jail, true);
	}
	json_object_put(jail);
	json_object_put(cg);
}

static void fc_cleanup(struct cj_vmm *vmm)
{
	struct fc_priv *p = vmm->priv;

	if (!p)
		return;
	stop_log_thread(p);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->log_fd >= 0)
		close(p->log_fd);
	if (p->metrics_fd >= 0)
		close(p->metrics_fd);
	if (p->sock_dirfd >= 0)
		close(p->sock_dirfd);
	if (p->go_fd >= 0)
		close(p->go_fd);
	cj_layout_close(&p->lay);
	if (p->remove_jail && p->id[0])
		remove_jail(p);
	if (p->subreaper)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (p->curl_ready)
		curl_global_cleanup();
	free(p);
	vmm->priv = NULL;
}

const struct cj_vmm_ops cj_firecracker_ops = {
    .name = "firecracker",
    .max_devices = 19,
    .needs_vmlinux = true,
    .jail_own_netns = true,
    .boot_args = fc_boot_args,
    .start = fc_start,
    .request_stop = fc_request_stop,
    .collect = fc_collect,
    .exit_error = fc_exit_error,
    .agent_target = fc_agent_target,
    .cleanup = fc_cleanup,
    .snapshot_take = fc_snapshot_take,
    .snapshot_in_jail = true,
};
