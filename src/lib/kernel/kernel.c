/* SPDX-License-Identifier: Apache-2.0 */
#include "kernel.h"

#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Find the versioned image package the metapackage depends on. */
static int versioned_package(char *out, size_t len, struct cj_err *err)
{
	char *argv[] = {"apt-cache",     "depends",         "--no-recommends",
	                "--no-suggests", CJ_KERNEL_PACKAGE, NULL};
	char *text = NULL, *p;

	if (cj_run(argv, &text, err) < 0)
		return cj_err_wrap(err,
		                   "look up %s (is this a Debian system with apt "
		                   "sources?)",
		                   CJ_KERNEL_PACKAGE);
	for (p = strtok(text, "\n"); p; p = strtok(NULL, "\n")) {
		char *dep = strstr(p, "Depends: linux-image-");
		if (dep) {
			snprintf(out, len, "%s", dep + strlen("Depends: "));
			free(text);
			return 0;
		}
	}
	free(text);
	return cj_fail(err, 0, "apt-cache shows no kernel image behind %s", CJ_KERNEL_PACKAGE);
}

static bool wanted_member(const char *path)
{
	return strncmp(path, "./boot/vmlinuz-", 15) == 0 ||
	       strncmp(path, "./lib/modules/", 14) == 0 ||
	       strncmp(path, "./boot/config-", 14) == 0 ||
	       strncmp(path, "./usr/lib/modules/", 18) == 0;
}

/* A .deb is an ar archive holding data.tar.*: read it with libarchive and
 * extract the kernel and its modules under dest. */
static int extract_deb(const char *deb, const char *dest, struct cj_err *err)
{
	struct archive *outer = archive_read_new(), *inner = NULL;
	struct archive *disk = archive_write_disk_new();
	struct archive_entry *e;
	int r = -1;

	archive_read_support_format_ar(outer);
	archive_read_support_filter_all(outer);
	archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
	                                         ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	                                         ARCHIVE_EXTRACT_SECURE_SYMLINKS);
	if (archive_read_open_filename(outer, deb, 65536) != ARCHIVE_OK) {
		cj_fail(err, 0, "open %s: %s", deb, archive_error_string(outer));
		goto out;
	}
	bool found = false;
	while (archive_read_next_header(outer, &e) == ARCHIVE_OK) {
		if (strncmp(archive_entry_pathname(e), "data.tar", 8) == 0) {
			found = true;
			break;
		}
	}
	if (!found) {
		cj_fail(err, 0, "%s holds no data.tar member", deb);
		goto out;
	}
	/* libarchive reads nested archives most simply from memory. */
	{
		la_int64_t size = archive_entry_size(e);
		char *buf = size > 0 ? malloc((size_t)size) : NULL;
		if (!buf) {
			cj_fail(err, ENOMEM, "read %s", deb);
			goto out;
		}
		if (archive_read_data(outer, buf, (size_t)size) != size) {
			free(buf);
			cj_fail(err, 0, "read %s: %s", deb, archive_error_string(outer));
			goto out;
		}
		inner = archive_read_new();
		archive_read_support_format_tar(inner);
		archive_read_support_filter_all(inner);
		if (archive_read_open_memory(inner, buf, (size_t)size) != ARCHIVE_OK) {
			cj_fail(err, 0, "open data of %s: %s", deb, archive_error_string(inner));
			free(buf);
			goto out;
		}
		while ((r = archive_read_next_header(inner, &e)) == ARCHIVE_OK) {
			char path[PATH_MAX];
			const char *name = archive_entry_pathname(e);
			if (!wanted_member(name))
				continue;
			snprintf(path, sizeof path, "%s/%s", dest, name);
			archive_entry_set_pathname(e, path);
			if (archive_read_extract2(inner, e, disk) != ARCHIVE_OK) {
				cj_fail(err, 0, "extract %s: %s", name,
				        archive_error_string(inner));
				free(buf);
				r = -1;
				goto out;
			}
		}
		free(buf);
		if (r != ARCHIVE_EOF) {
			cj_fail(err, 0, "read data of %s: %s", deb, archive_error_string(inner));
			r = -1;
			goto out;
		}
		r = 0;
	}
out:
	if (inner)
		archive_read_free(inner);
	archive_read_free(outer);
	archive_write_free(disk);
	return r;
}

static int find_release(const char *root, char *release, size_t len, struct cj_err *err)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof path, "%s/boot", root);
	if (!(d = opendir(path)))
		return cj_fail(err, errno, "open %s", path);
	release[0] = '\0';
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "vmlinuz-", 8) == 0)
			snprintf(release, len, "%s", de->d_name + 8);
	closedir(d);
	return release[0] ? 0 : cj_fail(err, 0, "the kernel package holds no vmlinuz");
}

int cj_kernel_fetch(const char *cache_dir, struct cj_err *err)
{
	char pkg[256], kdir[PATH_MAX], tmp[PATH_MAX], deb[PATH_MAX + 300], release[128];
	char final[PATH_MAX + 140], link[PATH_MAX], mods[PATH_MAX + 300];
	DIR *d;
	struct dirent *de;
	int r = -1;

	if (versioned_package(pkg, sizeof pkg, err) < 0)
		return -1;
	snprintf(kdir, sizeof kdir, "%s/kernels", cache_dir);
	if (cj_mkdir_p(kdir, 0755, err) < 0)
		return -1;
	snprintf(tmp, sizeof tmp, "%s/.fetch-XXXXXX", kdir);
	if (!mkdtemp(tmp))
		return cj_fail(err, errno, "create %s", tmp);
	chmod(tmp, 0755); /* apt's _apt user must be able to write here */
	cj_notice("downloading %s", pkg);
	{
		char *argv[] = {"sh", "-c", "cd \"$1\" && apt-get download -q \"$2\"", "sh", tmp,
		                pkg,  NULL};
		if (cj_run(argv, NULL, err) < 0) {
			cj_err_wrap(err, "apt-get download %s", pkg);
			goto out;
		}
	}
	deb[0] = '\0';
	if ((d = opendir(tmp))) {
		while ((de = readdir(d)))
			if (strstr(de->d_name, ".deb"))
				snprintf(deb, sizeof deb, "%s/%s", tmp, de->d_name);
		closedir(d);
	}
	if (!deb[0]) {
		cj_fail(err, 0, "apt-get download left no .deb in %s", tmp);
		goto out;
	}
	if (extract_deb(deb, tmp, err) < 0 || find_release(tmp, release, sizeof release, err) < 0)
		goto out;
	unlink(deb);
	/* Debian ships no modules.dep: depmod generates it for the tree. */
	snprintf(mods, sizeof mods, "%s/usr/lib/modules", tmp);
	if (access(mods, F_OK) == 0) {
		char target[PATH_MAX + 300];
		snprintf(target, sizeof target, "%s/lib", tmp);
		mkdir(target, 0755);
		snprintf(target, sizeof target, "%s/lib/modules", tmp);
		rename(mods, target);
	}
	{
		char *argv[] = {"depmod", "-b", tmp, release, NULL};
		if (cj_run(argv, NULL, err) < 0) {
			cj_err_wrap(err, "generate module dependencies");
			goto out;
		}
	}
	snprintf(final, sizeof final, "%s/%s", kdir, release);
	cj_rm_rf(final);
	if (rename(tmp, final) < 0) {
		cj_fail(err, errno, "store kernel in %s", final);
		goto out;
	}
	tmp[0] = '\0';
	snprintf(link, sizeof link, "%s/default", kdir);
	unlink(link);
	if (symlink(release, link) < 0) {
		cj_fail(err, errno, "link %s", link);
		goto out;
	}
	cj_notice("kernel %s ready in %s", release, final);
	r = 0;
out:
	if (tmp[0])
		cj_rm_rf(tmp);
	return r;
}

int cj_kernel_resolve(const char *cache_dir, const char *image, const char *modules,
                      struct cj_kernel *out, struct cj_err *err)
{
	int fd;

	memset(out, 0, sizeof *out);
	if (!image) {
		char link[PATH_MAX], target[128];
		ssize_t n;

		snprintf(link, sizeof link, "%s/kernels/default", cache_dir);
		n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			return cj_fail(
			    err, 0,
			    "no guest kernel in %s/kernels: run 'ctr-jailer kernel fetch' "
			    "or pass --kernel FILE",
			    cache_dir);
		target[n] = '\0';
		snprintf(out->release, sizeof out->release, "%s", target);
		snprintf(out->image, sizeof out->image, "%s/kernels/%s/boot/vmlinuz-%s", cache_dir,
		         target, target);
		snprintf(out->modules, sizeof out->modules, "%s/kernels/%s/lib/modules/%s",
		         cache_dir, target, target);
	} else {
		snprintf(out->image, sizeof out->image, "%s", image);
	}
	if (modules) {
		struct stat st;
		const char *base = strrchr(modules, '/');
		if (stat(modules, &st) < 0 || !S_ISDIR(st.st_mode))
			return cj_fail(err, 0, "--modules %s is not a directory", modules);
		snprintf(out->modules, sizeof out->modules, "%s", modules);
		snprintf(out->release, sizeof out->release, "%s", base ? base + 1 : modules);
	}
	fd = open(out->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cj_fail(err, errno, "kernel %s", out->image);
	close(fd);
	return 0;
}
