/* SPDX-License-Identifier: Apache-2.0 */
/* features: what this runtime supports, as the runtime spec's
 * features.json (the mounts it maps, the hooks it runs: hooks.c). */
#include "runtime.h"

#include <stdio.h>

static json_object *strings(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static int features_main(const struct rt_verb *verb, int argc, char **argv)
{
	static const char *const mount_opts[] = {"ro", "rw", "nosuid", "nodev", "noexec"};
	static const char *const namespaces[] = {"network", "mount", "pid", "ipc", "uts"};
	static const char *const hooks[] = {"prestart",       "createRuntime", "createContainer",
	                                    "startContainer", "poststart",     "poststop"};
	struct cj_err err = {0};
	json_object *o = json_object_new_object(), *linux_ = json_object_new_object();
	int first, r = rt_parse(verb, NULL, argc, argv, &first, &err);

	if (r != 0) {
		json_object_put(o);
		json_object_put(linux_);
		return r > 0 ? 0 : rt_fail(&err);
	}
	json_object_object_add(o, "ociVersionMin", json_object_new_string("1.0.0"));
	json_object_object_add(o, "ociVersionMax", json_object_new_string(RT_OCI_VERSION));
	json_object_object_add(o, "hooks", strings(hooks, 6));
	json_object_object_add(o, "mountOptions", strings(mount_opts, 5));
	json_object_object_add(linux_, "namespaces", strings(namespaces, 5));
	json_object_object_add(o, "linux", linux_);
	json_object_object_add(o, "annotations", json_object_new_object());
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return fflush(stdout) == 0 ? 0 : 1;
}

const struct rt_verb rt_features_verb = {
    .name = "features",
    .usage = "features",
    .main = features_main,
};
