/* SPDX-License-Identifier: Apache-2.0 */
/* bzImage → vmlinux. QEMU's microvm (and Firecracker) boot an ELF vmlinux
 * with a PVH note directly, skipping the in-guest decompressor, which under
 * TCG saves about half a second per boot. The payload's position and length
 * come from the boot protocol header; libarchive's raw format with all
 * filters decompresses gzip, xz, lzma, zstd, bzip2 and LZ4 (legacy frame,
 * as Debian uses). Cached by the bzImage's identity. */
#include "kernel.h"

#include "cache/cache.h"
#include "util/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The image is untrusted input: headers are copied out (no unaligned
 * access) and every size is checked in 64-bit arithmetic before use. */
bool cj_elf_has_pvh_note(const uint8_t *img, size_t len)
{
	Elf64_Ehdr eh;

	if (len < sizeof eh)
		return false;
	memcpy(&eh, img, sizeof eh);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > len ||
	    (size_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return false;
	for (size_t i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + i * sizeof ph, sizeof ph);
		if (ph.p_type != PT_NOTE || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			continue;
		size_t off = ph.p_offset, end = ph.p_offset + ph.p_filesz;
		while (end - off >= sizeof(Elf64_Nhdr)) {
			Elf64_Nhdr nh;
			memcpy(&nh, img + off, sizeof nh);
			size_t name = ((size_t)nh.n_namesz + 3) & ~(size_t)3;
			size_t desc = ((size_t)nh.n_descsz + 3) & ~(size_t)3;
			size_t room = end - off - sizeof nh;
			if (name > room || desc > room - name)
				break;
			if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
			    memcmp(img + off + sizeof nh, "Xen", 4) == 0)
				return true;
			off += sizeof nh + name + desc;
		}
	}
	return false;
}

static int decompress_payload(const char *image, const uint8_t *img, size_t len, const char *dest,
                              struct cj_err *err)
{
	struct archive *a;
	struct archive_entry *e;
	size_t payload_off, payload_len;
	char buf[1 << 16];
	la_ssize_t n;
	int fd, r = -1;

	if (len < 0x250 || memcmp(img + 0x202, "HdrS", 4) != 0)
		return cj_fail(err, 0, "kernel %s is neither an ELF vmlinux nor a bzImage", image);
	payload_off = ((size_t)img[0x1f1] + 1) * 512 + le32(img + 0x248);
	payload_len = le32(img + 0x24c);
	if (payload_off > len || payload_len > len - payload_off)
		return cj_fail(err, 0,
		               "kernel %s is truncated or not a bzImage (its payload lies past the "
		               "end of the file)",
		               image);
	fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cj_fail(err, errno, "create %s", dest);
	a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_memory(a, img + payload_off, payload_len) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK) {
		cj_fail(err, 0, "kernel %s: unreadable compressed payload (%s)", image,
		        archive_error_string(a) ? archive_error_string(a) : "unknown format");
		goto out;
	}
	while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
		if (write(fd, buf, (size_t)n) != n) {
			cj_fail(err, errno, "write %s", dest);
			goto out;
		}
	}
	if (n < 0) {
		cj_fail(err, 0, "kernel %s: its compressed payload is damaged or truncated (%s)",
		        image, archive_error_string(a) ? archive_error_string(a) : "read error");
		goto out;
	}
	r = 0;
out:
	archive_read_free(a);
	if (fsync(fd) < 0 && r == 0)
		r = cj_fail(err, errno, "write %s", dest);
	close(fd);
	return r;
}

static int map_file(const char *path, uint8_t **img, size_t *len, struct cj_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cj_fail(err, errno, "open %s", path);
	if (fstat(fd, &st) < 0 || st.st_size == 0) {
		close(fd);
		return cj_fail(err, errno ? errno : EINVAL, "kernel %s is empty", path);
	}
	*len = (size_t)st.st_size;
	*img = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (*img == MAP_FAILED)
		return cj_fail(err, errno, "map %s", path);
	return 0;
}

/* The cache key of a kernel is a digest of its bytes, so every copy of
 * one kernel shares one vmlinux; the digest is remembered under the copy's
 * path and identity (a memo in vmlinux/ids), so a run hashes a kernel only
 * the first time it sees that file. */
static void vmlinux_cheap_key(const char *image, const struct stat *st, char key[65])
{
	struct cj_hash *h = cj_hash_new();

	cj_hash_update(h, "vmlinux-id-v1", 13);
	cj_hash_update(h, image, strlen(image) + 1);
	cj_hash_update(h, &st->st_size, sizeof st->st_size);
	cj_hash_update(h, &st->st_mtim, sizeof st->st_mtim);
	cj_hash_update(h, &st->st_ino, sizeof st->st_ino);
	cj_hash_final_hex(h, key);
}

static void vmlinux_content_key(const uint8_t *img, size_t len, char key[65])
{
	struct cj_hash *h = cj_hash_new();

	cj_hash_update(h, "vmlinux-v2", 10);
	cj_hash_update(h, img, len);
	cj_hash_final_hex(h, key);
}

int cj_kernel_vmlinux(const char *cache_dir, const char *image, char *out, size_t outlen,
                      struct cj_err *err)
{
	struct stat st;
	char cheap[65], key[65], folder[PATH_MAX], tmp[PATH_MAX + 32];
	uint8_t *img, *elf;
	size_t len, elf_len;
	bool pvh;

	if (stat(image, &st) < 0)
		return cj_fail(err, errno, "kernel %s", image);
	vmlinux_cheap_key(image, &st, cheap);
	snprintf(folder, sizeof folder, "%s/vmlinux", cache_dir);
	if (cj_cache_memo_get(cache_dir, "vmlinux", cheap, key) == 1) {
		snprintf(out, outlen, "%s/%s", folder, key);
		if (access(out, R_OK) == 0)
			return 0;
	}

	if (map_file(image, &img, &len, err) < 0)
		return -1;
	if (len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0) {
		pvh = cj_elf_has_pvh_note(img, len);
		munmap(img, len);
		if (!pvh)
			return cj_fail(err, 0,
			               "kernel %s is an ELF without a PVH note (CONFIG_PVH=y "
			               "is needed to boot it directly)",
			               image);
		snprintf(out, outlen, "%s", image);
		return 0;
	}
	vmlinux_content_key(img, len, key);
	cj_cache_memo_put(cache_dir, "vmlinux", cheap, key);
	snprintf(out, outlen, "%s/%s", folder, key);
	if (access(out, R_OK) == 0) {
		munmap(img, len);
		return 0;
	}
	if (cj_mkdir_p(folder, 0755, err) < 0) {
		munmap(img, len);
		return -1;
	}
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", out, (int)getpid());
	int r = decompress_payload(image, img, len, tmp, err);
	munmap(img, len);
	if (r < 0) {
		unlink(tmp);
		return -1;
	}
	if (map_file(tmp, &elf, &elf_len, err) < 0) {
		unlink(tmp);
		return -1;
	}
	pvh = cj_elf_has_pvh_note(elf, elf_len);
	munmap(elf, elf_len);
	if (!pvh) {
		unlink(tmp);
		return cj_fail(err, 0, "the vmlinux inside %s has no PVH note (CONFIG_PVH=y)",
		               image);
	}
	if (link(tmp, out) < 0 && errno != EEXIST) { /* the first writer's file stays */
		int e = errno;
		unlink(tmp);
		return cj_fail(err, e, "store %s", out);
	}
	unlink(tmp);
	return 0;
}

/* "Linux version RELEASE ..." inside an uncompressed kernel. */
static void release_from_banner(const uint8_t *img, size_t len, char *out, size_t outlen)
{
	static const char banner[] = "Linux version ";
	const uint8_t *p = memmem(img, len, banner, sizeof banner - 1);
	size_t n = 0;

	if (!p)
		return;
	p += sizeof banner - 1;
	while (n + 1 < outlen && p + n < img + len && p[n] > ' ' && p[n] < 0x7f)
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* The boot protocol's header (Documentation/arch/x86/boot.rst): "HdrS" at
 * 0x202; kernel_version at 0x20e points (+0x200) to "RELEASE (...)". */
static bool bzimage_release(const uint8_t *img, size_t len, char *out, size_t outlen)
{
	size_t off, n = 0;

	if (len < 0x210 || memcmp(img + 0x202, "HdrS", 4) != 0)
		return false;
	off = (size_t)(img[0x20e] | img[0x20f] << 8);
	if (off) {
		off += 0x200;
		while (off + n < len && n + 1 < outlen && img[off + n] > ' ' && img[off + n] < 0x7f)
			n++;
		memcpy(out, img + off, n);
	}
	out[n] = '\0';
	return true;
}

int cj_kernel_probe(const char *path, struct cj_kernel_info *info, struct cj_err *err)
{
	uint8_t *img;
	size_t len;

	memset(info, 0, sizeof *info);
	if (map_file(path, &img, &len, err) < 0)
		return -1;
	if (len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0) {
		info->elf = true;
		release_from_banner(img, len, info->release, sizeof info->release);
	} else {
		info->bzimage = bzimage_release(img, len, info->release, sizeof info->release);
	}
	munmap(img, len);
	if (!info->elf && !info->bzimage)
		return cj_fail(err, 0,
		               "%s is not a Linux kernel: neither a bzImage (no \"HdrS\" boot "
		               "header) nor an ELF vmlinux",
		               path);
	return 0;
}

bool cj_kernel_is_modular(const char *cache_dir, const char *image, struct cj_kernel_info *info)
{
	struct cj_err ignored = {0};
	char vmlinux[PATH_MAX];
	uint8_t *img;
	size_t len;
	bool modular;

	if (cj_kernel_vmlinux(cache_dir, image, vmlinux, sizeof vmlinux, &ignored) < 0 ||
	    map_file(vmlinux, &img, &len, &ignored) < 0)
		return false; /* cannot look inside: let the boot tell */
	if (!info->release[0])
		release_from_banner(img, len, info->release, sizeof info->release);
	/* A built-in driver carries its name (KBUILD_MODNAME) in the image. */
	modular = !memmem(img, len, "virtio_blk", 10);
	munmap(img, len);
	return modular;
}
