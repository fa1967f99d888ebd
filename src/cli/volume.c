/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer volume create|ls|inspect|rm|prune: the named volume store,
 * as docker volume manages its own. A volume a running VM holds is never
 * removed. */
#include "cli.h"

#include "util/sanitize.h"
#include "util/util.h"
#include "volume/store.h"
#include "volume/volume.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vol_ctx {
	char *dir;
	uint64_t size;
	bool json, quiet, force;
};

static int opt_dir(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct vol_ctx *x = c;
	if (v[0] != '/')
		return cj_fail(err, 0, "%s '%s' must be an absolute path", what, v);
	free(x->dir);
	return (x->dir = strdup(v)) ? 0 : cj_fail(err, ENOMEM, "%s", what);
}

static int opt_size(void *c, const char *v, const char *what, struct cj_err *err)
{
	uint64_t *size = &((struct vol_ctx *)c)->size;
	if (cj_parse_size(v, 1ull << 20, size) < 0 || *size < (16ull << 20))
		return cj_fail(err, 0, "%s '%s' is invalid: give at least 16M, e.g. 2G", what, v);
	return 0;
}

static int opt_format(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)
		return cj_fail(err, 0, "%s '%s' is not known: give json or table", what, v);
	((struct vol_ctx *)c)->json = strcmp(v, "json") == 0;
	return 0;
}

static int opt_quiet(void *c, const char *v, const char *what, struct cj_err *err)
{
	((struct vol_ctx *)c)->quiet = true;
	return 0;
}

static int opt_force(void *c, const char *v, const char *what, struct cj_err *err)
{
	((struct vol_ctx *)c)->force = true;
	return 0;
}

static const struct cli_opt volume_opts[] = {
    {"volumes-dir", 0, "DIR", "CTR_JAILER_VOLUMES", opt_dir, NULL, "Options",
     "where named volumes live (default " CJ_DEFAULT_VOLUMES_DIR ")"},
    {"size", 0, "SIZE", NULL, opt_size, NULL, "Options", "create: its size (default 1G)"},
    {"format", 0, "json|table", NULL, opt_format, NULL, "Options",
     "ls: one JSON object per volume and line (docker's keys)"},
    {"quiet", 'q', NULL, NULL, opt_quiet, NULL, "Options", "ls: only the names"},
    {"force", 'f', NULL, NULL, opt_force, NULL, "Options", "prune: do not ask"},
};

static void print_json(json_object *o)
{
	char *out = cj_json_terminal_safe(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (out)
		printf("%s\n", out);
	free(out);
	json_object_put(o);
}

/* docker volume create: an existing volume is no error. Made with
 * mke2fs on a new file, no tool runs on a guest-written one. */
static int vol_create(struct vol_ctx *x, char **names, int n, struct cj_err *err)
{
	if (n != 1)
		return cj_fail(err, 0, "volume create takes one NAME");
	struct cj_volume_spec spec = {.source = names[0], .size = x->size};
	struct cj_volume_tool_user nobody = {65534, 65534};
	struct cj_volume v;

	if (cj_volume_resolve(&spec, x->dir, &v, err) < 0)
		return -1;
	if (strchr(names[0], '/'))
		return cj_fail(err, 0, "volume create takes a name, not a path");
	if (access(v.path, F_OK) < 0) {
		if (cj_volume_prepare(&spec, x->dir, x->size ? x->size : CJ_DEFAULT_VOLUME_SIZE,
		                      &nobody, NULL, &v, err) < 0)
			return -1;
		cj_volume_release(&v);
	}
	printf("%s\n", names[0]);
	return 0;
}

static int vol_ls(struct vol_ctx *x, struct cj_err *err)
{
	struct cj_volume_info *v;
	size_t n;
	char size[32], used[32];

	if (cj_volume_store_list(x->dir, &v, &n, err) < 0)
		return -1;
	if (!x->quiet && !x->json)
		printf("%-32s  %-8s  %-8s  %s\n", "VOLUME NAME", "SIZE", "USED", "IN USE");
	for (size_t i = 0; i < n; i++) {
		if (x->quiet) {
			printf("%s\n", v[i].name);
		} else if (x->json) {
			print_json(cj_volume_info_json(&v[i]));
		} else {
			cj_volume_human(v[i].size, size, sizeof size);
			cj_volume_human(v[i].used, used, sizeof used);
			printf("%-32s  %-8s  %-8s  %s\n", v[i].name, size, used,
			       v[i].in_use ? "yes" : "no");
		}
	}
	free(v);
	return 0;
}

static int vol_inspect(struct vol_ctx *x, char **names, int n, struct cj_err *err)
{
	json_object *all = json_object_new_array();
	int rc = 0;

	if (n < 1)
		rc = cj_fail(err, 0, "volume inspect takes one NAME or more");
	for (int i = 0; i < n && rc == 0; i++) {
		struct cj_volume_info v;
		if (cj_volume_store_get(x->dir, names[i], &v, err) < 0)
			rc = -1;
		else
			json_object_array_add(all, cj_volume_info_json(&v));
	}
	if (rc == 0)
		print_json(all);
	else
		json_object_put(all);
	return rc;
}

/* Each name; a failure is reported and the others still go. */
static int vol_rm(struct vol_ctx *x, char **names, int n, struct cj_err *err)
{
	int rc = 0;

	if (n < 1)
		return cj_fail(err, 0, "volume rm takes one NAME or more");
	for (int i = 0; i < n; i++) {
		struct cj_err e = {0};
		if (cj_volume_store_remove(x->dir, names[i], &e) < 0) {
			if (rc == 0)
				*err = e;
			else
				cli_print_err(&e);
			rc = -1;
		} else {
			printf("%s\n", names[i]);
		}
	}
	return rc;
}

static int vol_prune(struct vol_ctx *x, struct cj_err *err)
{
	struct cj_volume_info *v;
	size_t n;
	uint64_t freed = 0;
	char h[32], answer[16] = "";

	if (!x->force) {
		if (!isatty(STDIN_FILENO))
			return cj_fail(err, 0,
			               "volume prune removes every volume no running VM uses: "
			               "give --force");
		fprintf(stderr, "Remove every volume no running VM uses? [y/N] ");
		if (!fgets(answer, sizeof answer, stdin) || (answer[0] != 'y' && answer[0] != 'Y'))
			return 0;
	}
	if (cj_volume_store_list(x->dir, &v, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct cj_err e = {0};
		if (v[i].in_use || cj_volume_store_remove(x->dir, v[i].name, &e) < 0)
			continue; /* in use now, or taken meanwhile */
		printf("%s\n", v[i].name);
		freed += v[i].used;
	}
	free(v);
	cj_volume_human(freed, h, sizeof h);
	printf("Total reclaimed space: %s\n", h);
	return 0;
}

static int volume_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct vol_ctx x = {0};
	int first, r;
	const char *sub = argc > 1 ? argv[1] : "";

	if (argc > 1 && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0))
		return cli_help(verb, stdout), 0;
	/* the variable, then the flags (which win); the subcommand takes the
	 * verb's place: options follow it */
	r = cli_apply_env(verb, &x, environ, &err);
	if (r == 0)
		r = cli_parse_args(verb, &x, argc - 1, argv + 1, &first, &err);
	if (r == 0 && !x.dir && !(x.dir = strdup(CJ_DEFAULT_VOLUMES_DIR)))
		r = cj_fail(&err, ENOMEM, "volumes");
	if (r == 0) {
		char **names = argv + 1 + first;
		int n = argc - 1 - first;
		if (strcmp(sub, "create") == 0)
			r = vol_create(&x, names, n, &err);
		else if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
			r = n ? cj_fail(&err, 0, "volume ls takes no NAME") : vol_ls(&x, &err);
		else if (strcmp(sub, "inspect") == 0)
			r = vol_inspect(&x, names, n, &err);
		else if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
			r = vol_rm(&x, names, n, &err);
		else if (strcmp(sub, "prune") == 0)
			r = n ? cj_fail(&err, 0, "volume prune takes no NAME")
			      : vol_prune(&x, &err);
		else
			r = cj_fail(&err, 0,
			            "volume: unknown command '%s' (create, ls, inspect, rm, prune)",
			            sub);
	}
	free(x.dir);
	if (r > 0)
		return 0;
	if (r < 0)
		return cli_report(&err, 1);
	return fflush(stdout) == 0 ? 0 : 1;
}

const struct cli_verb cli_volume_verb = {
    .name = "volume",
    .usage = "volume create|ls|inspect|rm|prune [OPTIONS] [NAME...]",
    .about = "Manage named volumes (the ext4 images -v NAME:/path attaches). A volume a "
             "running VM uses is never removed.",
    .opts = volume_opts,
    .nopts = sizeof volume_opts / sizeof *volume_opts,
    .main = volume_main,
};
