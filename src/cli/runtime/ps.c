/* SPDX-License-Identifier: Apache-2.0 */
/* ps [--format table|json] ID: the host processes of the container: its
 * run's supervisor (the guest's processes are the VM's own). */
#include "runtime.h"

#include <stdio.h>
#include <string.h>

struct ps {
	bool json;
};

static int o_format(void *c, const char *v, struct cj_err *err)
{
	if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)
		return cj_fail(err, 0, "--format %s: give table or json", v);
	((struct ps *)c)->json = strcmp(v, "json") == 0;
	return 0;
}

static const struct rt_opt ps_opts[] = {
    {"format", 'f', "table|json", o_format, "output format (default table)"},
};

static int ps_main(const struct rt_verb *verb, int argc, char **argv)
{
	struct ps o = {0};
	struct cj_err err = {0};
	json_object *st;
	pid_t pid;
	int first, r = rt_parse(verb, &o, argc, argv, &first, &err);

	if (r != 0 || rt_need(verb, argc - first, 1, &err) < 0)
		return r > 0 ? 0 : rt_fail(&err);
	if (!(st = rt_state_read(argv[first], &err)))
		return rt_fail(&err);
	rt_status(st, &pid);
	json_object_put(st);
	if (o.json)
		printf(pid ? "[%d]\n" : "[]\n", (int)pid);
	else if (pid)
		printf("PID\n%d\n", (int)pid);
	else
		printf("PID\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

const struct rt_verb rt_ps_verb = {
    .name = "ps",
    .usage = "ps [--format table|json] ID",
    .opts = ps_opts,
    .nopts = sizeof ps_opts / sizeof *ps_opts,
    .main = ps_main,
};
