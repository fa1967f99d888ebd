/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel helpers: module load order from modules.dep, and the PVH note
 * check on an ELF image (hostile-ish input: the user may pass any file). */
#include "kernel/kernel.h"
#include "util/util.h"

#include <elf.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- cj_modules_order --------------------------------------------------- */

static const char modules_dep[] =
    "kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz "
    "kernel/lib/crc16.ko.xz\n"
    "kernel/drivers/virtio/virtio_mmio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz "
    "kernel/drivers/virtio/virtio.ko.xz\n"
    "kernel/drivers/virtio/virtio_ring.ko.xz: kernel/drivers/virtio/virtio.ko.xz\n"
    "kernel/drivers/virtio/virtio.ko.xz:\n"
    "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz "
    "kernel/drivers/virtio/virtio.ko.xz\n"
    "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz "
    "kernel/net/core/failover.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz "
    "kernel/drivers/virtio/virtio.ko.xz\n"
    "kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n"
    "kernel/net/core/failover.ko.xz:\n"
    "kernel/fs/overlayfs/overlay.ko.zst:\n"
    "kernel/drivers/misc/virtio-extra.ko: kernel/drivers/misc/dash-dep.ko.gz\n"
    "kernel/drivers/misc/dash-dep.ko.gz:\n"
    "kernel/drivers/misc/virtio_mmio_helper.ko.xz:\n";

/* Split the order text into lines (modifies text). */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;
	for (char *p = text; *p && n < max;) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl); /* every line, including the last, ends in '\n' */
		*nl = '\0';
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

static ptrdiff_t index_of(char **lines, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(lines[i], path) == 0)
			return (ptrdiff_t)i;
	return -1;
}

static void test_modules_order(void **state)
{
	static const char *const names[] = {"virtio_mmio", "virtio_blk",      "virtio_net",
	                                    "overlay",     "ext4_is_builtin", NULL};
	char *out = NULL;
	struct cj_err err = {0};

	assert_int_equal(cj_modules_order(modules_dep, names, &out, &err), 0);
	assert_non_null(out);
	assert_string_equal(out, "kernel/drivers/virtio/virtio.ko.xz\n"
	                         "kernel/drivers/virtio/virtio_ring.ko.xz\n"
	                         "kernel/drivers/virtio/virtio_mmio.ko.xz\n"
	                         "kernel/drivers/block/virtio_blk.ko.xz\n"
	                         "kernel/net/core/failover.ko.xz\n"
	                         "kernel/drivers/net/net_failover.ko.xz\n"
	                         "kernel/drivers/net/virtio_net.ko.xz\n"
	                         "kernel/fs/overlayfs/overlay.ko.zst\n");

	/* The same as properties: no duplicates, dependencies first. */
	char *lines[32];
	size_t n = split_lines(out, lines, ARRAY_LEN(lines));
	assert_int_equal(n, 8);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(lines[i], lines[j]);
	static const struct {
		const char *mod, *dep;
	} before[] = {
	    {"kernel/drivers/virtio/virtio_mmio.ko.xz", "kernel/drivers/virtio/virtio.ko.xz"},
	    {"kernel/drivers/virtio/virtio_mmio.ko.xz", "kernel/drivers/virtio/virtio_ring.ko.xz"},
	    {"kernel/drivers/virtio/virtio_ring.ko.xz", "kernel/drivers/virtio/virtio.ko.xz"},
	    {"kernel/drivers/block/virtio_blk.ko.xz", "kernel/drivers/virtio/virtio_ring.ko.xz"},
	    {"kernel/drivers/net/virtio_net.ko.xz", "kernel/drivers/net/net_failover.ko.xz"},
	    {"kernel/drivers/net/net_failover.ko.xz", "kernel/net/core/failover.ko.xz"},
	};
	for (size_t i = 0; i < ARRAY_LEN(before); i++) {
		ptrdiff_t m = index_of(lines, n, before[i].mod),
		          d = index_of(lines, n, before[i].dep);
		assert_true(m >= 0 && d >= 0);
		assert_true(d < m);
	}
	/* Nothing that was not asked for (ext4 and its dependencies). */
	assert_int_equal(index_of(lines, n, "kernel/fs/ext4/ext4.ko.xz"), -1);
	assert_int_equal(index_of(lines, n, "kernel/drivers/misc/virtio_mmio_helper.ko.xz"), -1);
	free(out);
}

static void test_modules_order_dash_names(void **state)
{
	/* "virtio-extra.ko" is module virtio_extra; its dependency's file name
	 * has a dash as well. */
	static const char *const names[] = {"virtio_extra", "virtio_mmio", NULL};
	char *out = NULL;
	struct cj_err err = {0};

	assert_int_equal(cj_modules_order(modules_dep, names, &out, &err), 0);
	assert_string_equal(out, "kernel/drivers/misc/dash-dep.ko.gz\n"
	                         "kernel/drivers/misc/virtio-extra.ko\n"
	                         "kernel/drivers/virtio/virtio.ko.xz\n"
	                         "kernel/drivers/virtio/virtio_ring.ko.xz\n"
	                         "kernel/drivers/virtio/virtio_mmio.ko.xz\n");
	free(out);

	/* Asking twice for the same module lists it once. */
	static const char *const twice[] = {"virtio_blk", "virtio_blk", "virtio", NULL};
	assert_int_equal(cj_modules_order(modules_dep, twice, &out, &err), 0);
	assert_string_equal(out, "kernel/drivers/virtio/virtio.ko.xz\n"
	                         "kernel/drivers/virtio/virtio_ring.ko.xz\n"
	                         "kernel/drivers/block/virtio_blk.ko.xz\n");
	free(out);
}

static void test_modules_order_builtin_and_empty(void **state)
{
	static const char *const names[] = {"virtio_mmio", "virtio_blk", NULL};
	static const char *const none[] = {NULL};
	char *out = NULL;
	struct cj_err err = {0};

	/* Empty modules.dep: everything is built in. */
	assert_int_equal(cj_modules_order("", names, &out, &err), 0);
	assert_string_equal(out, "");
	free(out);

	assert_int_equal(cj_modules_order(modules_dep, none, &out, &err), 0);
	assert_string_equal(out, "");
	free(out);

	/* A dependency that is itself absent (built in) is skipped; lines
	 * without a colon, blank lines and a missing final newline are fine. */
	static const char dep[] = "garbage line without colon\n"
	                          "\n"
	                          ":\n"
	                          "kernel/a/virtio_blk.ko: kernel/missing/gone.ko  kernel/b/x.ko\n"
	                          "kernel/b/x.ko:";
	assert_int_equal(cj_modules_order(dep, names, &out, &err), 0);
	assert_string_equal(out, "kernel/b/x.ko\nkernel/a/virtio_blk.ko\n");
	free(out);
}

static void test_modules_order_hostile(void **state)
{
	static const char *const a[] = {"a", NULL};
	char *out = NULL;
	struct cj_err err = {0};

	/* A cycle terminates. */
	assert_int_equal(cj_modules_order("a.ko: b.ko\nb.ko: a.ko\n", a, &out, &err), 0);
	assert_string_equal(out, "b.ko\na.ko\n");
	free(out);

	/* A module depending on itself. */
	assert_int_equal(cj_modules_order("x/a.ko: x/a.ko\n", a, &out, &err), 0);
	assert_string_equal(out, "x/a.ko\n");
	free(out);

	/* A very long name does not overflow anything. */
	char *dep = malloc(4096 + 64);
	assert_non_null(dep);
	memset(dep, 'n', 4096);
	strcpy(dep + 4096, ".ko: a.ko\na.ko:\n");
	out = NULL;
	assert_int_equal(cj_modules_order(dep, a, &out, &err), 0);
	assert_string_equal(out, "a.ko\n");
	free(out);
	free(dep);

	/* A dependency chain deeper than the limit fails cleanly. */
	char chain[4096] = "";
	size_t len = 0;
	for (int i = 0; i < 40; i++)
		len +=
		    (size_t)snprintf(chain + len, sizeof chain - len, "m%d.ko: m%d.ko\n", i, i + 1);
	static const char *const m0[] = {"m0", NULL};
	out = NULL;
	assert_int_equal(cj_modules_order(chain, m0, &out, &err), -1);
	assert_non_null(strstr(err.msg, "too deep"));
	assert_null(out);

	/* More modules than the initramfs takes fails cleanly. */
	char many[8192] = "";
	len = 0;
	len += (size_t)snprintf(many + len, sizeof many - len, "top.ko:");
	for (int i = 0; i < 70; i++)
		len += (size_t)snprintf(many + len, sizeof many - len, " d%d.ko", i);
	len += (size_t)snprintf(many + len, sizeof many - len, "\n");
	for (int i = 0; i < 70; i++)
		len += (size_t)snprintf(many + len, sizeof many - len, "d%d.ko:\n", i);
	static const char *const top[] = {"top", NULL};
	memset(&err, 0, sizeof err);
	assert_int_equal(cj_modules_order(many, top, &out, &err), -1);
	assert_non_null(strstr(err.msg, "too many"));
}

/* ---- cj_elf_has_pvh_note ------------------------------------------------ */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* A minimal ELF64 with one PT_NOTE segment holding a GNU note and the Xen
 * PHYS32_ENTRY note. Returns its length; buf is 8-byte aligned. */
static size_t make_pvh_elf(uint8_t *buf, size_t cap, bool with_xen)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof *eh);
	size_t notes = sizeof *eh + 2 * sizeof *ph, off = notes;

	assert_true(cap >= 512);
	memset(buf, 0, cap);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_phoff = sizeof *eh;
	eh->e_phentsize = sizeof *ph;
	eh->e_phnum = 2;
	eh->e_ehsize = sizeof *eh;

	ph[0].p_type = PT_LOAD;
	ph[0].p_offset = 0;
	ph[0].p_filesz = 64;

	/* GNU build-id note first. */
	Elf64_Nhdr *nh = (Elf64_Nhdr *)(buf + off);
	nh->n_namesz = 4;
	nh->n_descsz = 20;
	nh->n_type = NT_GNU_BUILD_ID;
	memcpy(buf + off + sizeof *nh, "GNU", 4);
	off += sizeof *nh + 4 + 20;

	nh = (Elf64_Nhdr *)(buf + off);
	nh->n_namesz = 4;
	nh->n_descsz = 8;
	nh->n_type = with_xen ? XEN_ELFNOTE_PHYS32_ENTRY : 17;
	memcpy(buf + off + sizeof *nh, "Xen", 4);
	off += sizeof *nh + 4 + 8;

	ph[1].p_type = PT_NOTE;
	ph[1].p_offset = notes;
	ph[1].p_filesz = off - notes;
	return off;
}

/* Call on an exact-size heap copy so ASan catches any overread. */
static bool pvh_exact(const uint8_t *img, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	bool r;

	assert_non_null(copy);
	if (len)
		memcpy(copy, img, len);
	r = cj_elf_has_pvh_note(copy, len);
	free(copy);
	return r;
}

static void test_pvh_note_found(void **state)
{
	_Alignas(8) uint8_t buf[512];
	size_t len = make_pvh_elf(buf, sizeof buf, true);

	assert_true(pvh_exact(buf, len));
	assert_true(pvh_exact(buf, sizeof buf)); /* trailing bytes are fine */

	len = make_pvh_elf(buf, sizeof buf, false);
	assert_false(pvh_exact(buf, len));
}

static void test_pvh_note_truncated(void **state)
{
	_Alignas(8) uint8_t buf[512];
	size_t len = make_pvh_elf(buf, sizeof buf, true);

	assert_false(cj_elf_has_pvh_note(NULL, 0));
	for (size_t cut = 0; cut < len; cut++)
		if (pvh_exact(buf, cut))
			fail_msg("a %zu-byte prefix of a %zu-byte image claims a PVH note", cut,
			         len);
}

static void test_pvh_note_garbage(void **state)
{
	_Alignas(8) uint8_t buf[512];
	uint64_t x = 0x9e3779b97f4a7c15ull;

	/* Random bytes, with and without a valid ELF identification. */
	for (int round = 0; round < 2000; round++) {
		for (size_t i = 0; i < sizeof buf; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		if (round & 1) {
			memcpy(buf, ELFMAG, SELFMAG);
			buf[EI_CLASS] = ELFCLASS64;
			((Elf64_Ehdr *)buf)->e_phentsize = sizeof(Elf64_Phdr);
			((Elf64_Ehdr *)buf)->e_phoff = 64 + 8 * (x % 8);
			((Elf64_Ehdr *)buf)->e_phnum = (Elf64_Half)(x >> 32);
		}
		(void)pvh_exact(buf, (size_t)(x % sizeof buf));
		(void)pvh_exact(buf, sizeof buf);
	}
}

static void test_pvh_note_hostile_fields(void **state)
{
	_Alignas(8) uint8_t buf[512];
	size_t len;
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof *eh);
	Elf64_Nhdr *gnu = (Elf64_Nhdr *)(buf + sizeof *eh + 2 * sizeof *ph);

	/* Program headers out of the file. */
	len = make_pvh_elf(buf, sizeof buf, true);
	eh->e_phoff = UINT64_MAX - 8;
	assert_false(pvh_exact(buf, len));
	len = make_pvh_elf(buf, sizeof buf, true);
	eh->e_phnum = 0xffff;
	assert_false(pvh_exact(buf, len));
	len = make_pvh_elf(buf, sizeof buf, true);
	eh->e_phentsize = sizeof(Elf64_Phdr) + 8;
	assert_false(pvh_exact(buf, len));
	len = make_pvh_elf(buf, sizeof buf, true);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	assert_false(pvh_exact(buf, len));

	/* Note segment out of the file. */
	len = make_pvh_elf(buf, sizeof buf, true);
	ph[1].p_offset = UINT64_MAX - 4;
	assert_false(pvh_exact(buf, len));
	len = make_pvh_elf(buf, sizeof buf, true);
	ph[1].p_filesz = UINT64_MAX;
	assert_false(pvh_exact(buf, len));
	len = make_pvh_elf(buf, sizeof buf, true);
	ph[1].p_filesz = len - ph[1].p_offset + 1;
	assert_false(pvh_exact(buf, len));

	/* Note sizes that lie, before the Xen note. */
	static const uint32_t sizes[] = {0xffffffffu, 0xfffffffdu, 0x80000000u, 1000, 41};
	for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
		len = make_pvh_elf(buf, sizeof buf, true);
		gnu->n_namesz = sizes[i];
		assert_false(pvh_exact(buf, len));
		len = make_pvh_elf(buf, sizeof buf, true);
		gnu->n_descsz = sizes[i];
		assert_false(pvh_exact(buf, len));
	}
}

/* ---- cj_kernel_vmlinux -------------------------------------------------- */

/* The Debian cloud kernel's bzImage: CTRJ_TEST_BZIMAGE, else the one the
 * integration tests fetch into their cache. NULL when neither exists. */
static const char *test_bzimage(char *buf, size_t len)
{
	const char *env = getenv("CTRJ_TEST_BZIMAGE");
	glob_t g;

	if (env && *env)
		return env;
	if (glob("/var/tmp/ctr-jailer-test-cache/kernels/default/boot/vmlinuz-*", 0, NULL, &g) != 0)
		return NULL;
	snprintf(buf, len, "%s", g.gl_pathv[0]);
	globfree(&g);
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_vmlinux_from_bzimage(void **state)
{
	char buf[PATH_MAX], dir[] = "/tmp/ctrj-vmlinux-XXXXXX", out[PATH_MAX], again[PATH_MAX];
	const char *image = test_bzimage(buf, sizeof buf);
	struct cj_err err = {0};
	struct stat st;
	uint8_t *elf;
	int fd;

	if (!image)
		skip(); /* no kernel fetched yet: the integration tests run this again */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(cj_kernel_vmlinux(dir, image, out, sizeof out, &err), 0);
	fd = open(out, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	elf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(elf != MAP_FAILED);
	assert_memory_equal(elf, ELFMAG, SELFMAG);
	assert_int_equal(elf[EI_CLASS], ELFCLASS64);
	assert_true(cj_elf_has_pvh_note(elf, (size_t)st.st_size));
	munmap(elf, (size_t)st.st_size);
	close(fd);
	/* cached: the second call finds it */
	assert_int_equal(cj_kernel_vmlinux(dir, image, again, sizeof again, &err), 0);
	assert_string_equal(out, again);
	/* an ELF vmlinux is its own vmlinux */
	assert_int_equal(cj_kernel_vmlinux(dir, out, again, sizeof again, &err), 0);
	assert_string_equal(out, again);
	assert_int_equal(cj_rm_rf(dir), 0);
}

static void test_vmlinux_bad_input(void **state)
{
	char buf[PATH_MAX], dir[] = "/tmp/ctrj-vmlinux-XXXXXX", path[PATH_MAX + 32], out[PATH_MAX];
	const char *image = test_bzimage(buf, sizeof buf);
	struct cj_err err = {0};
	uint8_t hdr[4096] = {0};

	assert_non_null(mkdtemp(dir));
	/* not a kernel at all */
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	write_file(path, "just some text, no kernel here\n", 31);
	assert_int_equal(cj_kernel_vmlinux(dir, path, out, sizeof out, &err), -1);
	assert_non_null(strstr(err.msg, "neither an ELF vmlinux nor a bzImage"));
	assert_non_null(strstr(err.msg, path));
	/* empty */
	snprintf(path, sizeof path, "%s/empty", dir);
	write_file(path, "", 0);
	assert_int_equal(cj_kernel_vmlinux(dir, path, out, sizeof out, &err), -1);
	assert_non_null(strstr(err.msg, "empty"));
	/* a boot header whose payload lies beyond the end */
	memcpy(hdr + 0x202, "HdrS", 4);
	hdr[0x1f1] = 4;
	hdr[0x248] = 0x10;
	hdr[0x24d] = 0x10; /* 1 MiB of payload in a 4 KiB file */
	snprintf(path, sizeof path, "%s/short-bzimage", dir);
	write_file(path, hdr, sizeof hdr);
	assert_int_equal(cj_kernel_vmlinux(dir, path, out, sizeof out, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	/* the real bzImage cut in half */
	if (image) {
		FILE *f = fopen(image, "re");
		struct stat st;
		assert_non_null(f);
		assert_int_equal(fstat(fileno(f), &st), 0);
		size_t half = (size_t)st.st_size / 2;
		uint8_t *data = malloc(half);
		assert_non_null(data);
		assert_int_equal(fread(data, 1, half, f), half);
		fclose(f);
		snprintf(path, sizeof path, "%s/half-bzimage", dir);
		write_file(path, data, half);
		free(data);
		assert_int_equal(cj_kernel_vmlinux(dir, path, out, sizeof out, &err), -1);
		assert_non_null(strstr(err.msg, "truncated"));
	}
	/* an ELF without the PVH note */
	Elf64_Ehdr eh = {0};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_phentsize = sizeof(Elf64_Phdr);
	snprintf(path, sizeof path, "%s/plain.elf", dir);
	write_file(path, &eh, sizeof eh);
	assert_int_equal(cj_kernel_vmlinux(dir, path, out, sizeof out, &err), -1);
	assert_non_null(strstr(err.msg, "PVH"));
	/* nothing half-written left in the cache */
	glob_t g;
	snprintf(path, sizeof path, "%s/vmlinux/*.tmp", dir);
	assert_int_equal(glob(path, 0, NULL, &g), GLOB_NOMATCH);
	assert_int_equal(cj_rm_rf(dir), 0);
}

/* The kind and release of a kernel from its header, and what is refused. */
static void test_kernel_probe(void **state)
{
	char buf[PATH_MAX], dir[] = "/tmp/ctrj-probe-XXXXXX", path[PATH_MAX + 32];
	const char *image = test_bzimage(buf, sizeof buf);
	struct cj_kernel_info info;
	struct cj_err err = {0};
	uint8_t hdr[4096] = {0};
	static const char elf_text[] = "\x7f"
	                               "ELF....Linux version 6.9.0-test (gcc) #1\n";

	assert_non_null(mkdtemp(dir));
	/* a boot header whose kernel_version points at the release */
	memcpy(hdr + 0x202, "HdrS", 4);
	hdr[0x20e] = 0x00;
	hdr[0x20f] = 0x08; /* 0x800 + 0x200 */
	memcpy(hdr + 0xa00, "6.1.0-99-test (builder@host) #1", 31);
	snprintf(path, sizeof path, "%s/bz", dir);
	write_file(path, hdr, sizeof hdr);
	assert_int_equal(cj_kernel_probe(path, &info, &err), 0);
	assert_true(info.bzimage && !info.elf);
	assert_string_equal(info.release, "6.1.0-99-test");
	/* an ELF: the release from its banner */
	snprintf(path, sizeof path, "%s/elf", dir);
	write_file(path, elf_text, sizeof elf_text - 1);
	assert_int_equal(cj_kernel_probe(path, &info, &err), 0);
	assert_true(info.elf && !info.bzimage);
	assert_string_equal(info.release, "6.9.0-test");
	/* neither: one line naming the file */
	snprintf(path, sizeof path, "%s/script", dir);
	write_file(path, "#!/bin/sh\necho hi\n", 19);
	assert_int_equal(cj_kernel_probe(path, &info, &err), -1);
	assert_non_null(strstr(err.msg, "is not a Linux kernel"));
	assert_non_null(strstr(err.msg, path));
	assert_null(strchr(err.msg, '\n'));
	/* missing */
	snprintf(path, sizeof path, "%s/missing", dir);
	assert_int_equal(cj_kernel_probe(path, &info, &err), -1);
	/* the fetched kernel: a bzImage whose modules hold its disk drivers */
	if (image) {
		assert_int_equal(cj_kernel_probe(image, &info, &err), 0);
		assert_true(info.bzimage);
		assert_non_null(strstr(image, info.release));
		assert_true(cj_kernel_is_modular(dir, image, &info));
	}
	assert_int_equal(cj_rm_rf(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vmlinux_from_bzimage),
	    cmocka_unit_test(test_vmlinux_bad_input),
	    cmocka_unit_test(test_kernel_probe),
	    cmocka_unit_test(test_modules_order),
	    cmocka_unit_test(test_modules_order_dash_names),
	    cmocka_unit_test(test_modules_order_builtin_and_empty),
	    cmocka_unit_test(test_modules_order_hostile),
	    cmocka_unit_test(test_pvh_note_found),
	    cmocka_unit_test(test_pvh_note_truncated),
	    cmocka_unit_test(test_pvh_note_garbage),
	    cmocka_unit_test(test_pvh_note_hostile_fields),
	};
	return cmocka_run_group_tests_name("kernel", tests, NULL, NULL);
}
