/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU microvm command line. */
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/mman.h>
#include <unistd.h>

static size_t argv_len(char **argv)
{
	size_t n = 0;
	while (argv[n])
		n++;
	return n;
}

/* Index of the first "opt" at or after from that has a value, or -1. */
static ptrdiff_t find_opt(char **argv, const char *opt, size_t from)
{
	for (size_t i = from; argv[i]; i++)
		if (strcmp(argv[i], opt) == 0)
			return argv[i + 1] ? (ptrdiff_t)i : -1;
	return -1;
}

static const char *opt_value(char **argv, const char *opt)
{
	ptrdiff_t i = find_opt(argv, opt, 1);
	if (i < 0)
		fail_msg("%s missing from the QEMU command line", opt);
	return argv[i + 1];
}

static size_t count(char **argv, const char *s)
{
	size_t n = 0;
	for (size_t i = 0; argv[i]; i++)
		n += strcmp(argv[i], s) == 0;
	return n;
}

static void base_config(struct cj_vm_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->kernel = "/cache/kernels/6.1/vmlinux";
	cfg->initramfs = "/cache/initramfs-abc.cpio";
	snprintf(cfg->cmdline, sizeof cfg->cmdline, "console=ttyS0 reboot=t panic=-1 quiet");
	cfg->cpus = 2;
	cfg->memory_mib = 512;
	cfg->run_dir = "/run/ctr-jailer/x";
}

static void test_qemu_argv_basics(void **state)
{
	struct cj_vm_config cfg;
	char **argv;

	base_config(&cfg);
	argv = cj_qemu_argv("/usr/bin/qemu-system-x86_64", &cfg, 7, -1);
	assert_non_null(argv);
	assert_string_equal(argv[0], "/usr/bin/qemu-system-x86_64");

	const char *machine = opt_value(argv, "-M");
	assert_true(strncmp(machine, "microvm", 7) == 0);
	assert_non_null(strstr(machine, "x-option-roms=off"));
	assert_non_null(strstr(machine, "isa-serial=on"));

	assert_int_equal(count(argv, "-no-reboot"), 1);
	assert_int_equal(count(argv, "-nodefaults"), 1);
	assert_int_equal(count(argv, "-no-user-config"), 1);

	/* -device i8042 for Ctrl-Alt-Del. */
	bool i8042 = false;
	for (ptrdiff_t i = find_opt(argv, "-device", 1); i >= 0;
	     i = find_opt(argv, "-device", (size_t)i + 1))
		i8042 |= strcmp(argv[i + 1], "i8042") == 0;
	assert_true(i8042);
	/* the init's fast exit: the device and the word that tells the init */
	bool debug_exit = false;
	for (ptrdiff_t i = find_opt(argv, "-device", 1); i >= 0;
	     i = find_opt(argv, "-device", (size_t)i + 1))
		debug_exit |= strcmp(argv[i + 1], "isa-debug-exit,iobase=0xf4,iosize=1") == 0;
	assert_true(debug_exit);

	assert_string_equal(opt_value(argv, "-accel"), "tcg,tb-size=128");
	assert_string_equal(opt_value(argv, "-cpu"), "max");
	assert_string_equal(opt_value(argv, "-smp"), "2");
	assert_string_equal(opt_value(argv, "-m"), "512");
	assert_string_equal(opt_value(argv, "-kernel"), cfg.kernel);
	assert_string_equal(opt_value(argv, "-initrd"), cfg.initramfs);
	char append[256];
	snprintf(append, sizeof append, "%s ctrj.vmm=qemu", cfg.cmdline);
	assert_string_equal(opt_value(argv, "-append"), append);
	assert_string_equal(opt_value(argv, "-display"), "none");
	/* QMP on the inherited fd 7 (a connected socket): no socket path, no -qmp */
	assert_int_equal(count(argv, "-qmp"), 0);
	assert_string_equal(opt_value(argv, "-chardev"), "stdio,id=console,signal=off");
	bool qmp = false;
	for (ptrdiff_t i = find_opt(argv, "-chardev", 1); i >= 0;
	     i = find_opt(argv, "-chardev", (size_t)i + 1))
		qmp |= strcmp(argv[i + 1], "socket,id=qmp,fd=7") == 0;
	assert_true(qmp);
	assert_string_equal(opt_value(argv, "-mon"), "chardev=qmp,mode=control");
	for (size_t i = 0; argv[i]; i++)
		assert_null(strstr(argv[i], "qmp.sock"));
	/* the run's directory names the VMM */
	assert_string_equal(opt_value(argv, "-name"), "ctr-jailer:/run/ctr-jailer/x");
	assert_int_equal(count(argv, "-drive"), 0);
	cj_qemu_argv_free(argv);

	cfg.use_kvm = true;
	cfg.cpus = 255;
	cfg.memory_mib = 1ull << 20;
	argv = cj_qemu_argv("qemu", &cfg, 3, -1);
	assert_non_null(argv);
	assert_string_equal(opt_value(argv, "-accel"), "kvm");
	assert_string_equal(opt_value(argv, "-cpu"), "host");
	assert_string_equal(opt_value(argv, "-smp"), "255");
	assert_string_equal(opt_value(argv, "-m"), "1048576");
	cj_qemu_argv_free(argv);
	cj_qemu_argv_free(NULL);
}

static void test_qemu_argv_drives(void **state)
{
	struct cj_vm_config cfg;
	char **argv;

	base_config(&cfg);
	cfg.drives[0] = (struct cj_drive){.id = "ctl", .path = "/run/a,b/ctl.img", .fd = -1};
	cfg.drives[1] = (struct cj_drive){
	    .id = "base", .path = "/cache/base,,x,.img", .fd = -1, .read_only = true};
	cfg.drives[2] = (struct cj_drive){
	    .id = "modules", .path = "/cache/mod ules.img", .fd = -1, .read_only = true};
	cfg.ndrives = 3;
	cfg.run_dir = "/run/a,b";
	argv = cj_qemu_argv("qemu", &cfg, 5, -1);
	assert_non_null(argv);

	static const char *const want[] = {
	    "id=ctl,file=/run/a,,b/ctl.img,format=raw,if=none,cache=writeback,discard=unmap",
	    "id=base,file=/cache/base,,,,x,,.img,format=raw,if=none,cache=writeback,discard=unmap,"
	    "readonly=on",
	    "id=modules,file=/cache/mod ules.img,format=raw,if=none,cache=writeback,discard=unmap,"
	    "readonly=on",
	};
	static const char *const dev[] = {"virtio-blk-device,drive=ctl",
	                                  "virtio-blk-device,drive=base",
	                                  "virtio-blk-device,drive=modules"};

	assert_int_equal(count(argv, "-drive"), 3);
	size_t d = 0;
	for (ptrdiff_t i = find_opt(argv, "-drive", 1); i >= 0;
	     i = find_opt(argv, "-drive", (size_t)i + 1), d++) {
		assert_true(d < 3);
		assert_string_equal(argv[i + 1], want[d]);
		/* readonly only on the read-only drives */
		assert_int_equal(strstr(argv[i + 1], "readonly=on") != NULL,
		                 cfg.drives[d].read_only);
		/* each drive is followed by its virtio-blk device */
		assert_string_equal(argv[i + 2], "-device");
		assert_string_equal(argv[i + 3], dev[d]);
	}
	assert_int_equal(d, 3);
	assert_string_equal(opt_value(argv, "-name"), "ctr-jailer:/run/a,,b");
	/* The vector is NULL-terminated right after the last argument. */
	size_t n = argv_len(argv);
	assert_string_equal(argv[n - 1], dev[2]);
	cj_qemu_argv_free(argv);

	/* The maximum number of drives. */
	for (size_t i = 0; i < CJ_MAX_DRIVES; i++)
		cfg.drives[i] =
		    (struct cj_drive){.id = "d", .path = ",", .fd = -1, .read_only = i & 1};
	cfg.ndrives = CJ_MAX_DRIVES;
	argv = cj_qemu_argv("qemu", &cfg, 3, -1);
	assert_non_null(argv);
	assert_int_equal(count(argv, "-drive"), CJ_MAX_DRIVES);
	assert_int_equal(
	    count(argv,
	          "id=d,file=,,,format=raw,if=none,cache=writeback,discard=unmap,readonly=on"),
	    CJ_MAX_DRIVES / 2);
	cj_qemu_argv_free(argv);
}

/* Drives carry roles (their ids come from them) and, for the control
 * disk, an fd: unjailed QEMU opens it as /proc/self/fd/N. */
static void test_drive_roles_and_fds(void **state)
{
	struct cj_vm_config cfg;
	struct cj_err err = {0};
	char **argv;
	(void)state;

	base_config(&cfg);
	cfg.ndrives = 0;
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_BASE, 0, "/b.img", -1, true, &err), 0);
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_CONTROL, 0, NULL, 7, false, &err), 0);
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_VOLUME, 3, "/v.img", -1, false, &err), 0);
	assert_string_equal(cfg.drives[0].id, "base");
	assert_string_equal(cfg.drives[1].id, "control");
	assert_string_equal(cfg.drives[2].id, "vol3");
	argv = cj_qemu_argv("qemu", &cfg, 5, -1);
	assert_non_null(argv);
	assert_int_equal(count(argv, "id=control,file=/proc/self/fd/7,format=raw,if=none,"
	                             "cache=writeback,discard=unmap"),
	                 1);
	cj_qemu_argv_free(argv);
	while (cfg.ndrives < CJ_MAX_DRIVES)
		assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_DATA, 0, "/d.img", -1, false, &err),
		                 0);
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_DATA, 0, "/d.img", -1, false, &err), -1);
}

/* The jail plan's files: the kernel, the initramfs, then each drive in
 * order; its fsize limit is the largest writable one. */
static void test_jail_plan_files(void **state)
{
	struct cj_vm_config cfg;
	struct cj_err err = {0};
	int ctl = memfd_create("ctl", MFD_CLOEXEC);
	(void)state;

	assert_true(ctl >= 0);
	assert_int_equal(ftruncate(ctl, 12345), 0);
	base_config(&cfg);
	cfg.ndrives = 0;
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_BASE, 0, "/nonexistent", -1, true, &err),
	                 0);
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_CONTROL, 0, NULL, ctl, false, &err), 0);
	assert_int_equal(cj_vm_plan_files(&cfg, &err), 0);
	assert_int_equal(cfg.jail.nfiles, 4);
	assert_int_equal(cfg.jail.files[0].kind, CJ_JAIL_KERNEL);
	assert_string_equal(cfg.jail.files[0].host, cfg.kernel);
	assert_int_equal(cfg.jail.files[1].kind, CJ_JAIL_INITRD);
	assert_int_equal(cfg.jail.files[2].kind, CJ_JAIL_DRIVE);
	assert_string_equal(cfg.jail.files[2].name, "base");
	assert_false(cfg.jail.files[2].writable);
	assert_string_equal(cfg.jail.files[3].name, "control");
	assert_int_equal(cfg.jail.files[3].fd, ctl);
	assert_true(cfg.jail.files[3].writable);
	assert_int_equal(cfg.jail.fsize_limit, 12345);
	close(ctl);
}

/* The agent channel: a virtio-serial port named ctrj.agent on the inherited
 * socket; none without one. */
static void test_qemu_argv_agent(void **state)
{
	struct cj_vm_config cfg;
	char **argv;
	bool chardev = false, port = false, bus = false;

	(void)state;
	base_config(&cfg);
	argv = cj_qemu_argv("qemu", &cfg, 5, 9);
	assert_non_null(argv);
	for (size_t i = 0; argv[i] && argv[i + 1]; i++) {
		chardev |= strcmp(argv[i + 1], "socket,id=agent,fd=9") == 0;
		bus |= strncmp(argv[i + 1], "virtio-serial-device", 20) == 0;
		port |= strcmp(argv[i + 1], "virtserialport,chardev=agent,name=ctrj.agent") == 0;
	}
	assert_true(chardev && bus && port);
	cj_qemu_argv_free(argv);
	argv = cj_qemu_argv("qemu", &cfg, 5, -1);
	for (size_t i = 0; argv[i]; i++)
		assert_null(strstr(argv[i], "agent"));
	cj_qemu_argv_free(argv);
}

/* A snapshot's VM: drives without a backing file, a NIC without a
 * backend, the snapshot flag; a restore adds -incoming and turns image
 * locking off. */
static void test_qemu_argv_snapshot(void **state)
{
	struct cj_vm_config cfg;
	struct cj_err err = {0};
	char **argv;

	(void)state;
	base_config(&cfg);
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_BASE, 0, NULL, -1, true, &err), 0);
	cfg.tap = "";
	cfg.snap.prepare = true;
	argv = cj_qemu_argv("qemu", &cfg, 5, -1);
	assert_non_null(strstr(opt_value(argv, "-append"), " ctrj.snap=1"));
	assert_string_equal(opt_value(argv, "-drive"),
	                    "id=base,driver=null-co,read-zeroes=on,if=none,readonly=on");
	assert_int_equal(find_opt(argv, "-netdev", 1), -1);
	assert_int_equal(find_opt(argv, "-incoming", 1), -1);
	cj_qemu_argv_free(argv);

	base_config(&cfg);
	assert_int_equal(cj_vm_add_drive(&cfg, CJ_DRIVE_BASE, 0, "/img/base", -1, true, &err), 0);
	cfg.snap.restore = true;
	cfg.snap.fd = 11;
	argv = cj_qemu_argv("qemu", &cfg, 5, -1);
	assert_string_equal(opt_value(argv, "-incoming"), "fd:11");
	assert_non_null(strstr(opt_value(argv, "-drive"), ",file.locking=off"));
	assert_non_null(strstr(opt_value(argv, "-append"), " ctrj.snap=1"));
	cj_qemu_argv_free(argv);

	base_config(&cfg); /* a cold boot: none of it */
	argv = cj_qemu_argv("qemu", &cfg, 5, -1);
	assert_null(strstr(opt_value(argv, "-append"), "ctrj.snap"));
	assert_int_equal(find_opt(argv, "-incoming", 1), -1);
	cj_qemu_argv_free(argv);
}

/* "go SEED SEC NSEC MAC": a fresh seed each time, the clock, the MAC. */
static void test_snapshot_go_line(void **state)
{
	char a[CJ_SNAPSHOT_GO_MAX], b[CJ_SNAPSHOT_GO_MAX], seed[65], mac[16];
	const uint8_t m[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	long long sec;
	long nsec;
	struct cj_err err = {0};

	(void)state;
	assert_int_equal(cj_snapshot_go_line(a, sizeof a, m, &err), 0);
	assert_int_equal(cj_snapshot_go_line(b, sizeof b, NULL, &err), 0);
	assert_int_equal(sscanf(a, "go %64s %lld %ld %15s", seed, &sec, &nsec, mac), 4);
	assert_int_equal(strlen(seed), 64);
	assert_string_equal(mac, "021122334455");
	assert_true(sec > 1700000000 && nsec >= 0 && nsec < 1000000000);
	assert_int_equal(a[strlen(a) - 1], '\n');
	assert_non_null(strstr(b, " -\n"));
	assert_memory_not_equal(a + 3, b + 3, 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qemu_argv_basics), cmocka_unit_test(test_qemu_argv_agent),
	    cmocka_unit_test(test_qemu_argv_drives), cmocka_unit_test(test_drive_roles_and_fds),
	    cmocka_unit_test(test_jail_plan_files),  cmocka_unit_test(test_qemu_argv_snapshot),
	    cmocka_unit_test(test_snapshot_go_line),
	};
	return cmocka_run_group_tests_name("vmm", tests, NULL, NULL);
}
