/* SPDX-License-Identifier: Apache-2.0 */
/* state ID: the runtime spec's state of the container, as JSON. */
#include "runtime.h"

#include <stdio.h>

static int state_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	json_object *st, *out, *v;
	pid_t pid;
	int first, r = rt_parse(verb, NULL, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	if (!(st = rt_state_read(argv[first], &err)))
		return rt_fail(&err);
	const char *status = rt_status(st, &pid);
	out = json_object_new_object();
	json_object_object_add(out, "ociVersion", json_object_new_string(RT_OCI_VERSION));
	json_object_object_add(out, "id", json_object_new_string(argv[first]));
	json_object_object_add(out, "status", json_object_new_string(status));
	json_object_object_add(out, "pid", json_object_new_int(pid));
	json_object_object_add(out, "bundle", json_object_new_string(rt_state_str(st, "bundle")));
	json_object_object_add(out, "created", json_object_new_string(rt_state_str(st, "created")));
	json_object_object_add(out, "owner", json_object_new_string(""));
	if (json_object_object_get_ex(st, "annotations", &v))
		json_object_object_add(out, "annotations", json_object_get(v));
	printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY |
	                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(out);
	json_object_put(st);
	return fflush(stdout) == 0 ? 0 : 1;
}

const struct rt_verb rt_state_verb = {
    .name = "state",
    .usage = "state ID",
    .main = state_main,
};
