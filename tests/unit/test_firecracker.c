/* SPDX-License-Identifier: Apache-2.0 */
/* The pure parts of the Firecracker backend: request bodies and their
 * order, the version floor, exit statuses, the jailer's command line. The
 * bodies are checked against Firecracker's schema by the contract tests
 * (tests/integration/test_firecracker_contract.py). */
#include "jail/jail.h"
#include "util/util.h"
#include "vmm/firecracker.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void config(struct cj_vm_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->kernel = "/cache/vmlinux/abc";
	cfg->initramfs = "/cache/initramfs/abc.cpio";
	snprintf(cfg->cmdline, sizeof cfg->cmdline, "console=ttyS0 reboot=k panic=1 pci=off");
	cfg->cpus = 2;
	cfg->memory_mib = 512;
	cfg->id = "0123456789ab";
	cfg->drives[cfg->ndrives++] = (struct cj_drive){
	    .id = "base", .path = "/cache/base/x.ext4", .fd = -1, .read_only = true};
	cfg->drives[cfg->ndrives++] = (struct cj_drive){
	    .id = "control", .path = "/proc/self/fd/5", .fd = -1, .read_only = false};
	cfg->drives[cfg->ndrives++] =
	    (struct cj_drive){.id = "vol0", .path = "/vols/a.ext4", .fd = -1, .read_only = false};
}

static void paths(const struct cj_vm_config *cfg, struct cj_fc_paths *p)
{
	memset(p, 0, sizeof *p);
	p->kernel = "vmlinux";
	p->initrd = "initrd.cpio";
	for (size_t i = 0; i < cfg->ndrives; i++)
		p->drives[i] = cfg->drives[i].path;
	p->log = "run/log.fifo";
	p->metrics = "run/metrics.fifo";
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no %s in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

static bool has(json_object *o, const char *key)
{
	return json_object_object_get_ex(o, key, NULL);
}

static int64_t num(json_object *o, const char *key)
{
	json_object *v;
	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_int64(v);
}

static bool boolean(json_object *o, const char *key)
{
	json_object *v;
	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_boolean));
	return json_object_get_boolean(v);
}

static void test_plan_order_and_bodies(void **state)
{
	struct cj_vm_config cfg;
	struct cj_fc_paths p;
	struct cj_fc_request *r;
	struct cj_err err = {0};
	size_t n;
	static const char *const order[] = {"/logger",      "/metrics",     "/machine-config",
	                                    "/boot-source", "/drives/base", "/drives/control",
	                                    "/drives/vol0", "/entropy"};

	config(&cfg);
	paths(&cfg, &p);
	assert_int_equal(cj_fc_plan(&cfg, &p, &r, &n, &err), 0);
	assert_int_equal(n, sizeof order / sizeof order[0]);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(r[i].path, order[i]);
	assert_string_equal(str(r[0].body, "log_path"), "run/log.fifo");
	assert_string_equal(str(r[0].body, "level"), "Warning");
	assert_string_equal(str(r[1].body, "metrics_path"), "run/metrics.fifo");
	assert_int_equal(num(r[2].body, "vcpu_count"), 2);
	assert_int_equal(num(r[2].body, "mem_size_mib"), 512);
	assert_string_equal(str(r[3].body, "kernel_image_path"), "vmlinux");
	assert_string_equal(str(r[3].body, "initrd_path"), "initrd.cpio");
	assert_string_equal(str(r[3].body, "boot_args"), cfg.cmdline);
	/* drives: never the root device; read-only without a cache type */
	assert_string_equal(str(r[4].body, "drive_id"), "base");
	assert_false(boolean(r[4].body, "is_root_device"));
	assert_true(boolean(r[4].body, "is_read_only"));
	assert_false(has(r[4].body, "cache_type"));
	assert_string_equal(str(r[5].body, "path_on_host"), "/proc/self/fd/5");
	assert_false(boolean(r[5].body, "is_read_only"));
	assert_string_equal(str(r[5].body, "cache_type"), "Writeback");
	assert_string_equal(str(r[6].body, "cache_type"), "Writeback");
	assert_int_equal(json_object_object_length(r[7].body), 0);
	cj_fc_plan_free(r, n);
}

static void test_plan_network_and_clamp(void **state)
{
	struct cj_vm_config cfg;
	struct cj_fc_paths p;
	struct cj_fc_request *r;
	struct cj_err err = {0};
	size_t n;

	config(&cfg);
	cfg.tap = "ctrj-tap0";
	memcpy(cfg.mac, (uint8_t[]){0x06, 0x00, 0x0a, 0xb0, 0xc0, 0xff}, 6);
	cfg.cpus = 64;
	paths(&cfg, &p);
	p.initrd = NULL;
	assert_int_equal(cj_fc_plan(&cfg, &p, &r, &n, &err), 0);
	assert_int_equal(num(r[2].body, "vcpu_count"), CJ_FC_MAX_VCPUS);
	assert_false(has(r[3].body, "initrd_path"));
	assert_string_equal(r[n - 2].path, "/network-interfaces/eth0");
	assert_string_equal(str(r[n - 2].body, "iface_id"), "eth0");
	assert_string_equal(str(r[n - 2].body, "host_dev_name"), "ctrj-tap0");
	assert_string_equal(str(r[n - 2].body, "guest_mac"), "06:00:0a:b0:c0:ff");
	assert_string_equal(r[n - 1].path, "/entropy");
	cj_fc_plan_free(r, n);

	/* the agent's vsock, after the network */
	p.vsock = "run/agent.vsock";
	assert_int_equal(cj_fc_plan(&cfg, &p, &r, &n, &err), 0);
	assert_string_equal(r[n - 3].path, "/network-interfaces/eth0");
	assert_string_equal(r[n - 2].path, "/vsock");
	assert_int_equal(num(r[n - 2].body, "guest_cid"), CJ_FC_GUEST_CID);
	assert_string_equal(str(r[n - 2].body, "uds_path"), "run/agent.vsock");
	assert_false(has(r[n - 2].body, "vsock_id"));
	cj_fc_plan_free(r, n);
	p.vsock = NULL;

	/* no TAP: no network interface at all */
	cfg.tap = NULL;
	assert_int_equal(cj_fc_plan(&cfg, &p, &r, &n, &err), 0);
	for (size_t i = 0; i < n; i++)
		assert_null(strstr(r[i].path, "network"));
	cj_fc_plan_free(r, n);
}

static void test_plan_rejects_bad_drive_ids(void **state)
{
	struct cj_vm_config cfg;
	struct cj_fc_paths p;
	struct cj_fc_request *r = NULL;
	struct cj_err err = {0};
	size_t n = 0;

	config(&cfg);
	cfg.drives[1].id = "../x";
	paths(&cfg, &p);
	assert_int_equal(cj_fc_plan(&cfg, &p, &r, &n, &err), -1);
	assert_null(r);
	assert_non_null(strstr(err.msg, "../x"));
}

static void test_action(void **state)
{
	json_object *a = cj_fc_action("SendCtrlAltDel");
	assert_string_equal(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN),
	                    "{\"action_type\":\"SendCtrlAltDel\"}");
	json_object_put(a);
}

static void test_versions(void **state)
{
	unsigned v[3];
	struct cj_err err = {0};

	assert_int_equal(cj_fc_parse_version("1.7.0", v), 0);
	assert_int_equal(v[0] * 10000 + v[1] * 100 + v[2], 10700);
	assert_int_equal(cj_fc_parse_version("v1.10.1", v), 0);
	assert_int_equal(v[1], 10);
	assert_int_equal(cj_fc_parse_version("1.17.0-dev", v), 0);
	assert_int_equal(v[1], 17);
	assert_int_equal(cj_fc_parse_version("1.8", v), -1);
	assert_int_equal(cj_fc_parse_version("1.8.0x", v), -1);
	assert_int_equal(cj_fc_parse_version("", v), -1);
	assert_int_equal(cj_fc_parse_version(NULL, v), -1);

	assert_int_equal(cj_fc_check_version("1.8.0", &err), 0);
	assert_int_equal(cj_fc_check_version("1.16.1", &err), 0);
	assert_int_equal(cj_fc_check_version("2.0.0", &err), 0);
	assert_int_equal(cj_fc_check_version("1.17.0-dev", &err), 0);
	assert_int_equal(cj_fc_check_version("1.7.0", &err), -1);
	assert_non_null(strstr(err.msg, "1.7.0 is too old"));
	assert_non_null(strstr(err.msg, CJ_FC_MIN_VERSION));
	assert_int_equal(cj_fc_check_version("0.25.2", &err), -1);
	assert_int_equal(cj_fc_check_version("banana\n\x1b[31m", &err), -1);
	assert_null(strchr(err.msg, '\x1b')); /* sanitized */
	assert_null(strchr(err.msg, '\n'));
}

static void test_exit_statuses(void **state)
{
	static const struct {
		int code;
		const char *says;
	} cases[] = {
	    {0, "rebooted without reporting"},
	    {1, "exit status 1"},
	    {2, "unexpected"},
	    {148, "seccomp"},
	    {149, "SIGBUS"},
	    {150, "SIGSEGV"},
	    {151, "SIGXFSZ"},
	    {152, "configuration"},
	    {153, "command-line"},
	    {154, "SIGXCPU"},
	    {155, "SIGPIPE"},
	    {156, "SIGHUP"},
	    {157, "SIGILL"},
	    {42, "status 42"},
	};
	char buf[300];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cj_fc_describe_exit(cases[i].code << 8, buf, sizeof buf); /* W_EXITCODE */
		if (!strstr(buf, cases[i].says))
			fail_msg("exit %d: '%s' lacks '%s'", cases[i].code, buf, cases[i].says);
	}
	cj_fc_describe_exit(SIGKILL, buf, sizeof buf); /* killed by a signal */
	assert_non_null(strstr(buf, "killed by signal 9"));
}

static void test_sanitize(void **state)
{
	char out[16];

	cj_fc_sanitize("a\tb\nc\x7f\x80z", out, sizeof out);
	assert_string_equal(out, "a b c  z");
	cj_fc_sanitize("0123456789abcdefghij", out, sizeof out);
	assert_string_equal(out, "0123456789abcde");
	cj_fc_sanitize("trailing \n", out, sizeof out);
	assert_string_equal(out, "trailing");
}

static size_t argc_of(char **v)
{
	size_t n = 0;
	while (v[n])
		n++;
	return n;
}

static void test_jailer_argv(void **state)
{
	struct cj_vm_limits none = {0}, some = {.cpu_quota_us = 150000,
	                                        .cpu_period_us = 100000,
	                                        .memory_bytes = 1ull << 30,
	                                        .pids = 100};
	struct cj_fc_jailer_args a = {
	    .jailer_bin = "/usr/bin/jailer",
	    .exec_file = "/usr/bin/firecracker",
	    .id = "0123456789ab",
	    .chroot_base = "/srv/jailer",
	    .uid = 65534,
	    .gid = 65534,
	    .cgroup_version = 1,
	    .limits = &none,
	};
	static const char *const plain[] = {"/usr/bin/jailer",
	                                    "--id",
	                                    "0123456789ab",
	                                    "--exec-file",
	                                    "/usr/bin/firecracker",
	                                    "--uid",
	                                    "65534",
	                                    "--gid",
	                                    "65534",
	                                    "--cgroup-version",
	                                    "1",
	                                    "--chroot-base-dir",
	                                    "/srv/jailer",
	                                    "--new-pid-ns",
	                                    "--",
	                                    "--api-sock",
	                                    "/run/firecracker.socket"};
	char **v = cj_fc_jailer_argv(&a);

	assert_non_null(v);
	assert_int_equal(argc_of(v), sizeof plain / sizeof plain[0]);
	for (size_t i = 0; v[i]; i++)
		assert_string_equal(v[i], plain[i]);
	cj_fc_argv_free(v);

	a.limits = &some;
	a.netns = "/var/run/netns/x";
	a.fsize = 1 << 20;
	v = cj_fc_jailer_argv(&a);
	static const char *const v1[] = {"--netns",
	                                 "/var/run/netns/x",
	                                 "--cgroup",
	                                 "cpu.cfs_period_us=100000",
	                                 "--cgroup",
	                                 "cpu.cfs_quota_us=150000",
	                                 "--cgroup",
	                                 "memory.limit_in_bytes=1073741824",
	                                 "--cgroup",
	                                 "pids.max=100",
	                                 "--resource-limit",
	                                 "fsize=1048576",
	                                 "--"};
	for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++)
		assert_string_equal(v[14 + i], v1[i]);
	cj_fc_argv_free(v);

	a.cgroup_version = 2;
	v = cj_fc_jailer_argv(&a);
	static const char *const v2[] = {"--cgroup", "cpu.max=150000 100000",
	                                 "--cgroup", "memory.max=1073741824",
	                                 "--cgroup", "pids.max=100"};
	for (size_t i = 0; i < sizeof v2 / sizeof v2[0]; i++)
		assert_string_equal(v[16 + i], v2[i]);
	cj_fc_argv_free(v);
}

static json_object *jail_entry(const char *base, const char *exec_name)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "kind", json_object_new_string("firecracker.jail"));
	json_object_object_add(o, "chroot_base", json_object_new_string(base));
	json_object_object_add(o, "exec_name", json_object_new_string(exec_name));
	json_object_object_add(o, "id", json_object_new_string("0123456789ab"));
	return o;
}

/* The jail's undo entries (the run record): a damaged entry never turns
 * into rm -rf of something else; a good one removes the jail; an owner
 * entry gives the file its owner and mode back; replay is idempotent. */
static void test_undo_entries(void **state)
{
	char base[] = "/tmp/cj-fc-undo-XXXXXX", dir[256], file[256];
	struct stat st;
	(void)state;

	assert_non_null(mkdtemp(base));
	snprintf(dir, sizeof dir, "%s/firecracker/0123456789ab/root", base);
	assert_int_equal(cj_mkdir_p(dir, 0700, &(struct cj_err){0}), 0);
	json_object *bad =
	    json_tokener_parse("{\"kind\": \"firecracker.jail\", \"chroot_base\": \"/tmp\", "
	                       "\"exec_name\": \"..\", \"id\": \"x\"}");
	assert_int_equal(cj_firecracker_undo(bad, false), 0);
	json_object_put(bad);
	char text[512];
	json_object *not_fc = jail_entry(base, "other");
	assert_int_equal(cj_firecracker_undo(not_fc, false), 0);
	json_object_put(not_fc);
	assert_int_equal(access(dir, F_OK), 0); /* both refused: nothing removed */
	json_object *good = jail_entry(base, "firecracker");
	assert_int_equal(cj_firecracker_undo(good, false), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(cj_firecracker_undo(good, false), 0); /* again: harmless */
	json_object_put(good);

	snprintf(file, sizeof file, "%s/volume.img", base);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(chmod(file, 0644), 0);
	snprintf(text, sizeof text,
	         "{\"kind\": \"jail.owner\", \"path\": \"%s\", \"uid\": %u, \"gid\": %u, "
	         "\"mode\": %d}",
	         file, (unsigned)getuid(), (unsigned)getgid(), 0600);
	json_object *owner = json_tokener_parse(text);
	assert_int_equal(cj_jail_undo(owner, false), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	unlink(file);
	assert_int_equal(cj_jail_undo(owner, false), 0); /* gone: nothing to restore */
	json_object_put(owner);
	/* a cgroup entry outside the cgroup mount is ignored */
	json_object *cg =
	    json_tokener_parse("{\"kind\": \"jail.cgroup\", \"path\": \"/tmp/../etc\"}");
	assert_int_equal(cj_jail_undo(cg, false), 0);
	json_object_put(cg);
	cj_rm_rf(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_order_and_bodies),
	    cmocka_unit_test(test_plan_network_and_clamp),
	    cmocka_unit_test(test_plan_rejects_bad_drive_ids),
	    cmocka_unit_test(test_action),
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test(test_exit_statuses),
	    cmocka_unit_test(test_sanitize),
	    cmocka_unit_test(test_jailer_argv),
	    cmocka_unit_test(test_undo_entries),
	};
	return cmocka_run_group_tests_name("firecracker", tests, NULL, NULL);
}
