/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer-runtime's linux.cgroupsPath (src/cli/runtime/cgroup.c): the
 * cgroupfs path as given, systemd's slice:prefix:name as the scope's
 * path, and what is refused. */
#include "runtime/runtime.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* rt_cgroup_path of a config whose cgroupsPath is v; 0 or -1. */
static int path_of(const char *v, bool systemd, char *out, size_t len)
{
	char text[512];
	struct cj_err err = {0};

	snprintf(text, sizeof text, "{\"linux\":{\"cgroupsPath\":\"%s\"}}", v);
	json_object *cfg = json_tokener_parse(text);
	assert_non_null(cfg);
	rt_g.systemd_cgroup = systemd;
	int r = rt_cgroup_path(cfg, out, len, &err);
	json_object_put(cfg);
	rt_g.systemd_cgroup = false;
	return r;
}

static void test_cgroupfs_paths(void **state)
{
	char out[PATH_MAX];
	struct cj_err err = {0};
	json_object *cfg = json_tokener_parse("{\"linux\":{}}");

	(void)state;
	assert_int_equal(path_of("/docker/abc", false, out, sizeof out), 0);
	assert_string_equal(out, "/docker/abc");
	assert_int_equal(path_of("machine/c1", false, out, sizeof out), 0);
	assert_string_equal(out, "machine/c1");
	assert_int_equal(rt_cgroup_path(cfg, out, sizeof out, &err), 0);
	assert_string_equal(out, ""); /* none named: the run's own */
	json_object_put(cfg);
	assert_int_equal(path_of("/docker/../etc", false, out, sizeof out), -1);
	assert_int_equal(path_of("/docker//x", false, out, sizeof out), -1);
	assert_int_equal(path_of("/docker/./x", false, out, sizeof out), -1);
	/* the hierarchy's root, or an engine's shared parent by a trailing
	 * slash: never the VMM's cgroup, whose limits we set */
	assert_int_equal(path_of("/", false, out, sizeof out), -1);
	assert_int_equal(path_of("/docker/", false, out, sizeof out), -1);
	assert_int_equal(path_of("docker/", false, out, sizeof out), -1);
}

static void test_systemd_paths(void **state)
{
	char out[PATH_MAX];

	(void)state;
	assert_int_equal(path_of("system.slice:docker:abc", true, out, sizeof out), 0);
	assert_string_equal(out, "/system.slice/docker-abc.scope");
	assert_int_equal(path_of("machine-libpod_pod_1.slice:libpod:c1", true, out, sizeof out), 0);
	assert_string_equal(out, "/machine.slice/machine-libpod_pod_1.slice/libpod-c1.scope");
	assert_int_equal(path_of(":cri:c2", true, out, sizeof out), 0);
	assert_string_equal(out, "/system.slice/cri-c2.scope");
	assert_int_equal(path_of("-.slice:p:n", true, out, sizeof out), 0);
	assert_string_equal(out, "/p-n.scope");
	assert_int_equal(path_of("user.slice:p:sub.slice", true, out, sizeof out), 0);
	assert_string_equal(out, "/user.slice/sub.slice");
	/* not slice:prefix:name, or a slice that is no slice */
	assert_int_equal(path_of("/docker/abc", true, out, sizeof out), -1);
	assert_int_equal(path_of("a:b:c:d", true, out, sizeof out), -1);
	assert_int_equal(path_of("system:docker:abc", true, out, sizeof out), -1);
	assert_int_equal(path_of("a--b.slice:docker:abc", true, out, sizeof out), -1);
	assert_int_equal(path_of("system.slice:docker:a/../../x", true, out, sizeof out), -1);
	assert_int_equal(path_of("system.slice:p:n", true, out, 10), -1); /* too long */
	assert_int_equal(path_of("system.slice:p:n/", true, out, sizeof out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cgroupfs_paths),
	    cmocka_unit_test(test_systemd_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
