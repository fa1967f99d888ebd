/* SPDX-License-Identifier: Apache-2.0 */
/* Host directories, --mount and --tmpfs as parsed; QEMU's command line
 * with a share (memfd memory, vhost-user-fs) and without one. */
#include "ctrj/protocol.h"
#include "vmm/vmm.h"
#include "volume/share.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_volume_or_host_dir(void **state)
{
	char dir[] = "/tmp/cj-share-XXXXXX";
	char missing[64], image[64], arg[160];
	struct cj_volume_spec v;
	struct cj_share_spec s;
	struct cj_err err = {0};

	assert_non_null(mkdtemp(dir));
	snprintf(missing, sizeof missing, "%s/new", dir);
	snprintf(image, sizeof image, "%s/disk.ext4", dir);
	/* an existing directory, and a missing path: host directories (-v makes it) */
	snprintf(arg, sizeof arg, "%s:/h:ro", dir);
	assert_int_equal(cj_volume_spec_parse(arg, &v, &err), 0);
	assert_true(cj_share_from_volume(&v, &s));
	assert_string_equal(s.source, dir);
	assert_string_equal(s.guest_path, "/h");
	assert_true(s.read_only && s.create);
	cj_share_spec_free(&s);
	cj_volume_spec_free(&v);
	snprintf(arg, sizeof arg, "%s:/h", missing);
	assert_int_equal(cj_volume_spec_parse(arg, &v, &err), 0);
	assert_true(cj_share_from_volume(&v, &s));
	cj_share_spec_free(&s);
	cj_volume_spec_free(&v);
	/* names, image files (by suffix or size=) stay volumes */
	char volumes[3][160];
	snprintf(volumes[0], sizeof volumes[0], "data:/d");
	snprintf(volumes[1], sizeof volumes[1], "%s:/d", image);
	snprintf(volumes[2], sizeof volumes[2], "%s/x:/d:size=1G", dir);
	for (size_t i = 0; i < 3; i++) {
		snprintf(arg, sizeof arg, "%s", volumes[i]);
		assert_int_equal(cj_volume_spec_parse(arg, &v, &err), 0);
		assert_false(cj_share_from_volume(&v, &s));
		cj_volume_spec_free(&v);
	}
	rmdir(dir);
}

static void test_mount_arg(void **state)
{
	struct cj_mount_arg m;
	struct cj_err err = {0};

	assert_int_equal(cj_mount_arg_parse("type=bind,source=/srv/x,target=/x,readonly", &m, &err),
	                 0);
	assert_int_equal(m.type, CJ_MOUNT_BIND);
	assert_string_equal(m.share.source, "/srv/x");
	assert_true(m.share.read_only && !m.share.create);
	cj_share_spec_free(&m.share);
	assert_int_equal(cj_mount_arg_parse("type=volume,src=data,dst=/d", &m, &err), 0);
	assert_int_equal(m.type, CJ_MOUNT_VOLUME);
	assert_string_equal(m.volume.source, "data");
	cj_volume_spec_free(&m.volume);
	assert_int_equal(cj_mount_arg_parse(
	                     "type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770", &m, &err),
	                 0);
	assert_int_equal(m.type, CJ_MOUNT_TMPFS);
	assert_true(m.tmpfs.size == 64ull << 20);
	assert_int_equal(m.tmpfs.mode, 01770);
	cj_tmpfs_spec_free(&m.tmpfs);
	const char *bad[] = {"type=bind,source=rel,target=/x",
	                     "type=bind,target=/x",
	                     "type=nfs,source=a,target=/x",
	                     "type=bind,source=/a,target=x",
	                     "type=tmpfs,source=/a,target=/x",
	                     "type=bind,source=/a,target=/x,z=1",
	                     "type=bind,source=/a,target=/x,readonly=maybe",
	                     "type=tmpfs,target=/x,tmpfs-mode=9"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err = (struct cj_err){0};
		assert_int_equal(cj_mount_arg_parse(bad[i], &m, &err), -1);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_tmpfs_arg(void **state)
{
	struct cj_tmpfs_spec t;
	struct cj_err err = {0};

	assert_int_equal(cj_tmpfs_arg_parse("/run/cache", &t, &err), 0);
	assert_string_equal(t.path, "/run/cache");
	assert_int_equal(t.flags, CTRJ_MOUNT_NOEXEC | CTRJ_MOUNT_NOSUID | CTRJ_MOUNT_NODEV);
	assert_true(t.size == 0 && t.mode == 0);
	cj_tmpfs_spec_free(&t);
	assert_int_equal(cj_tmpfs_arg_parse("/t:size=8m,mode=700,exec,ro", &t, &err), 0);
	assert_true(t.size == 8ull << 20);
	assert_int_equal(t.mode, 0700);
	assert_int_equal(t.flags, CTRJ_MOUNT_NOSUID | CTRJ_MOUNT_NODEV | CTRJ_MOUNT_READONLY);
	cj_tmpfs_spec_free(&t);
	assert_int_equal(cj_tmpfs_arg_parse("rel", &t, &err), -1);
	assert_int_equal(cj_tmpfs_arg_parse("/t:size=0", &t, &err), -1);
	assert_int_equal(cj_tmpfs_arg_parse("/t:mode=8", &t, &err), -1);
	assert_int_equal(cj_tmpfs_arg_parse("/t:uid=1", &t, &err), -1);
}

static bool has_arg(char **argv, const char *want)
{
	for (size_t i = 0; argv[i]; i++)
		if (strcmp(argv[i], want) == 0)
			return true;
	return false;
}

static void test_qemu_argv_share(void **state)
{
	struct cj_vm_config cfg = {.kernel = "/k", .initramfs = "/i", .cpus = 1, .memory_mib = 256};
	char **argv = cj_qemu_argv("qemu", &cfg, 3, -1);

	assert_non_null(argv);
	assert_false(has_arg(argv, "memory-backend=mem"));
	assert_false(has_arg(argv, "virtio-mmio.force-legacy=false"));
	cj_qemu_argv_free(argv);
	cfg.shares[0] = (struct cj_vm_share){.tag = "ctrj0", .fd = 7};
	cfg.nshares = 1;
	argv = cj_qemu_argv("qemu", &cfg, 3, -1);
	assert_true(has_arg(argv, "memory-backend-memfd,id=mem,size=256M,share=on"));
	assert_true(has_arg(argv, "memory-backend=mem"));
	assert_true(has_arg(argv, "socket,id=vfs0,fd=7"));
	assert_true(has_arg(argv, "vhost-user-fs-device,chardev=vfs0,tag=ctrj0"));
	assert_true(has_arg(argv, "virtio-mmio.force-legacy=false"));
	cj_qemu_argv_free(argv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_volume_or_host_dir),
	    cmocka_unit_test(test_mount_arg),
	    cmocka_unit_test(test_tmpfs_arg),
	    cmocka_unit_test(test_qemu_argv_share),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
