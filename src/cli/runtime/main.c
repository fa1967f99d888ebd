/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer-runtime [GLOBAL OPTIONS] VERB [OPTIONS] ID: the global
 * options, then the verb. */
#include "runtime.h"

#include <stdio.h>
#include <string.h>

static int g_root(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)err;
	rt_g.root = v;
	return 0;
}

static int g_log(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)err;
	rt_g.log = v;
	return 0;
}

static int g_log_format(void *c, const char *v, struct cj_err *err)
{
	(void)c;
	if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0)
		return cj_fail(err, 0, "--log-format %s: give text or json", v);
	rt_g.log_json = strcmp(v, "json") == 0;
	return 0;
}

static int g_debug(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)v, (void)err;
	rt_g.debug = true;
	return 0;
}

static int g_systemd(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)v, (void)err;
	rt_g.systemd_cgroup = true;
	return 0;
}

static int g_version(void *c, const char *v, struct cj_err *err)
{
	(void)c, (void)v, (void)err;
	printf("%s version %s\nspec: %s\n", RT_NAME, CTRJ_VERSION, RT_OCI_VERSION);
	return 1;
}

static const struct rt_opt global_opts[] = {
    {"root", 0, "DIR", g_root, "containers' state (default " RT_DEFAULT_ROOT ")"},
    {"log", 0, "FILE", g_log, "the log (default: stderr)"},
    {"log-format", 0, "text|json", g_log_format, "the log's format"},
    {"debug", 0, NULL, g_debug, "debug messages in the log"},
    {"systemd-cgroup", 0, NULL, g_systemd, "cgroupsPath is systemd's slice:prefix:name"},
    {"version", 'v', NULL, g_version, "print the version"},
    {"criu", 0, "PATH", NULL, NULL},
    {"rootless", 0, "true|false|auto", NULL, NULL},
};

static const struct rt_verb *const verbs[] = {
    &rt_create_verb, &rt_start_verb, &rt_state_verb, &rt_kill_verb,
    &rt_delete_verb, &rt_exec_verb,  &rt_ps_verb,    &rt_features_verb,
};

static const struct rt_verb global_verb = {
    .name = "global",
    .usage = "[GLOBAL OPTIONS] create|start|state|kill|delete|exec|ps|features ...",
    .opts = global_opts,
    .nopts = sizeof global_opts / sizeof *global_opts,
};

int cli_runtime_main(int argc, char **argv)
{
	struct cj_err err = {0};
	int first, r = rt_parse(&global_verb, NULL, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : rt_fail(&err);
	if (first == argc) {
		cj_fail(&err, 0, "no command: usage: %s %s", RT_NAME, global_verb.usage);
		return rt_fail(&err);
	}
	rt_log("debug", "%s: %d arguments", argv[first], argc - first - 1);
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
		if (strcmp(argv[first], verbs[i]->name) == 0)
			return verbs[i]->main(verbs[i], argc - first, argv + first);
	cj_fail(&err, 0, "unknown command '%s'", argv[first]);
	return rt_fail(&err);
}
