/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Config: the control disk's configuration (read, then wiped: it may hold
 * secrets), the workload's user, its environment (exported and written to
 * /var/environment) and its secrets (/run/secrets).
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static uint8_t *read_config_area(int fd, struct ctrj_ctl_header *hdr)
{
	uint8_t hdr_buf[CTRJ_CTL_HEADER_SIZE];
	char err[256];
	uint8_t *buf;

	if (pread(fd, hdr_buf, sizeof hdr_buf, 0) != (ssize_t)sizeof hdr_buf)
		guest_fail(0, "read control disk header: %s", strerror(errno));
	if (ctrj_header_parse(hdr_buf, hdr, err, sizeof err) < 0)
		guest_fail(0, "control disk: %s", err);
	buf = malloc(hdr->config_len ? hdr->config_len : 1);
	if (!buf)
		guest_fail(0, "out of memory reading the config");
	if (pread(fd, buf, hdr->config_len, hdr->config_off) != (ssize_t)hdr->config_len)
		guest_fail(0, "read control disk config: %s", strerror(errno));
	return buf;
}

void config_read(const char *dev, struct ctrj_config *cfg)
{
	struct ctrj_ctl_header hdr;
	char err[256];
	uint8_t *buf;
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		guest_fail(0, "open control disk %s: %s", dev, strerror(errno));
	guest_report_to(fd); /* from here on, a failure lands in the status record */
	buf = read_config_area(fd, &hdr);
	if (ctrj_config_parse(buf, hdr.config_len, cfg, err, sizeof err) < 0)
		guest_fail(0, "control disk config: %s", err);
	memset(buf, 0, hdr.config_len);
	/* No flush here: the final sync() before reboot writes the wipe back,
	 * and the host deletes the run directory whatever happens. */
	if (pwrite(fd, buf, hdr.config_len, hdr.config_off) != (ssize_t)hdr.config_len)
		guest_fail(0, "wipe the config from the control disk: %s", strerror(errno));
	free(buf);
	if (!cfg->has_base_uuid)
		guest_fail(0, "the config names no base image");
}

void config_resolve_user(const struct ctrj_config *cfg, struct guest_user *u)
{
	char err[256];

	if (guest_user_resolve(cfg->user, u, err, sizeof err) < 0)
		guest_fail(0, "%s", err);
}

/* /run/secrets/NAME: tmpfs, mode 0400, owned by the workload's user; the
 * values are wiped from memory once written. */
static void write_secret(struct ctrj_secret *sec, const struct guest_user *u)
{
	char path[256];
	size_t off = 0;
	int fd;

	snprintf(path, sizeof path, "/run/secrets/%s", sec->name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		guest_fail(0, "create %s: %s", path, strerror(errno));
	while (off < sec->len) {
		ssize_t w = write(fd, sec->value + off, sec->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			guest_fail(0, "write %s: %s", path, strerror(errno));
		off += (size_t)w;
	}
	if (fchown(fd, u->uid, u->gid) < 0)
		guest_fail(0, "chown %s: %s", path, strerror(errno));
	close(fd);
	explicit_bzero(sec->value, sec->len);
}

void config_write_secrets(struct ctrj_config *cfg, const struct guest_user *u)
{
	if (!cfg->nsecrets)
		return;
	if (mkdir("/run/secrets", 0711) < 0 && errno != EEXIST)
		guest_fail(0, "create /run/secrets: %s", strerror(errno));
	for (size_t i = 0; i < cfg->nsecrets; i++)
		write_secret(&cfg->secrets[i], u);
}

void config_write_environment(char *const *envp, const struct guest_user *u)
{
	int fd;

	guest_mkdir_p("/var", 0755);
	unlink("/var/environment");
	fd = open("/var/environment", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		guest_fail(0, "create /var/environment: %s", strerror(errno));
	if (guest_env_write_file(fd, envp) < 0)
		guest_fail(0, "write /var/environment: %s", strerror(errno));
	/* the workload's own file: it may read it, source it, wipe it */
	if (fchown(fd, u->uid, u->gid) < 0)
		guest_fail(0, "chown /var/environment: %s", strerror(errno));
	close(fd);
}

static bool env_has(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return true;
	return false;
}

/* The workload's environment: the configured one plus PATH and HOME when
 * the caller did not set them, as docker does. */
char **config_workload_env(const struct ctrj_config *cfg, const struct guest_user *u)
{
	char **env = calloc(cfg->envc + 3, sizeof *env);
	size_t n = 0;

	if (!env)
		guest_fail(0, "out of memory");
	for (size_t i = 0; i < cfg->envc; i++)
		env[n++] = cfg->envp[i];
	if (!env_has(cfg->envp, "PATH"))
		env[n++] = "PATH=" DEFAULT_PATH;
	if (!env_has(cfg->envp, "HOME")) {
		char *home;
		if (asprintf(&home, "HOME=%s", u->home) < 0)
			guest_fail(0, "out of memory");
		env[n++] = home;
	}
	env[n] = NULL;
	return env;
}
