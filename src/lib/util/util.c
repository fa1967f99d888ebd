/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include "spawn.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cj_mkdir_p(const char *path, mode_t mode, struct cj_err *err)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof buf)
		return cj_fail(err, ENAMETOOLONG, "bad directory path '%s'", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return cj_fail(err, errno, "create directory %s", buf);
			if (c == '\0')
				break;
			*p = c;
		}
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int cj_rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

uint64_t cj_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int read_all_fd(int fd, char **out, size_t *out_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -1;
	for (;;) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return -1;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	*out = buf;
	if (out_len)
		*out_len = len;
	return 0;
}

int cj_run_code(char *const argv[], char **out, int *code, struct cj_err *err)
{
	char path[PATH_MAX];
	struct cj_spawn s = {.path = path,
	                     .argv = argv,
	                     .stdin_fd = -1,
	                     .inherit = true /* an image handed over as /proc/self/fd/N */};

	if (cj_find_in_path(argv[0], path, sizeof path) < 0)
		return cj_fail(err, errno, "run %s", argv[0]);
	if (cj_spawn_capture(s, SIZE_MAX - 1, out, code, NULL, err) < 0)
		return cj_err_wrap(err, "run %s", argv[0]);
	return 0;
}

int cj_run(char *const argv[], char **out, struct cj_err *err)
{
	char *text = NULL;
	int code;

	if (cj_run_code(argv, out ? &text : NULL, &code, err) < 0)
		return -1;
	if (code != 0) {
		free(text);
		return -1;
	}
	if (out)
		*out = text;
	return 0;
}

/* Nettle rather than OpenSSL: libarchive already maps it, and OpenSSL 3's
 * initialisation alone costs ~3 MiB of resident memory. */
struct cj_hash {
	struct sha256_ctx ctx;
};

struct cj_hash *cj_hash_new(void)
{
	struct cj_hash *h = calloc(1, sizeof *h);
	if (!h)
		abort();
	sha256_init(&h->ctx);
	return h;
}

void cj_hash_update(struct cj_hash *h, const void *data, size_t len)
{
	sha256_update(&h->ctx, len, data);
}

void cj_hash_final_hex(struct cj_hash *h, char out[65])
{
	uint8_t md[SHA256_DIGEST_SIZE];

	sha256_digest(&h->ctx, sizeof md, md);
	for (unsigned i = 0; i < sizeof md; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	free(h);
}

int cj_lock_file(const char *path, struct cj_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return cj_fail(err, errno, "open lock %s", path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return cj_fail(err, e, "lock %s", path);
		}
	}
	return fd;
}

int cj_write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

int cj_read_file(const char *path, char **out, size_t *len, struct cj_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;

	if (fd < 0)
		return cj_fail(err, errno, "open %s", path);
	if (read_all_fd(fd, &buf, len) < 0) {
		close(fd);
		return cj_fail(err, ENOMEM, "read %s", path);
	}
	close(fd);
	*out = buf;
	return 0;
}

int cj_parse_size(const char *s, uint64_t default_unit, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t unit = default_unit;

	if (!s || *s < '0' || *s > '9' || default_unit == 0)
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		static const char units[] = "bkmgt"; /* 1024^0 .. 1024^4 */
		const char *u = strchr(units, tolower((unsigned char)*end));
		if (!u || !*u)
			return -1;
		unit = 1ull << (10 * (u - units));
		end++;
		if (*end == 'i' && end[-1] != 'b' && end[-1] != 'B')
			end++;
		if ((*end == 'B' || *end == 'b') && unit != 1)
			end++;
		if (*end)
			return -1;
	}
	if (v > UINT64_MAX / unit)
		return -1;
	*out = (uint64_t)v * unit;
	return 0;
}

static bool executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int cj_find_in_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");

	errno = ENOENT;
	if (!name || !*name)
		return -1;
	if (strchr(name, '/')) {
		if ((size_t)snprintf(out, len, "%s", name) >= len)
			return errno = ENAMETOOLONG, -1;
		return executable(out) ? 0 : -1;
	}
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		if (n && (size_t)snprintf(out, len, "%.*s/%s", (int)n, p, name) < len &&
		    executable(out))
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	errno = ENOENT;
	return -1;
}

int cj_argv_push(char ***v, size_t *n, const char *fmt, ...)
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

void cj_own_cgroup(const char *controller, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[1024];

	snprintf(out, len, "/");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		c2[1 + strcspn(c2 + 1, "\n")] = '\0';
		bool match = controller ? strstr(c1 + 1, controller) != NULL : c1[1] == '\0';
		if (match) {
			snprintf(out, len, "%s", c2 + 1);
			break;
		}
	}
	fclose(f);
}
