/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer system df | system prune: the cache (rules in cache/cache.h). */
#include "cli.h"

#include "cache/cache.h"
#include "util/progress.h"

#include <json-c/json.h>
#include <string.h>

struct sys {
	bool all, json;
};

static int opt_all(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct sys *)c)->all = true;
	return 0;
}

static int opt_format(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)
		return cj_fail(err, 0, "%s '%s' is not known: give json or table", what, v);
	((struct sys *)c)->json = strcmp(v, "json") == 0;
	return 0;
}

static const struct cli_opt system_opts[] = {
    {"format", 0, "json|table", NULL, opt_format, NULL, "Options",
     "df: json prints one object (kinds with entries, bytes, in_use, in_use_bytes; total)"},
    {"all", 'a', NULL, NULL, opt_all, NULL, "Options",
     "prune: every entry no live run uses, however recently used"},
};

static void df_json(const struct cj_cache_usage *u, const char *dir)
{
	json_object *o = json_object_new_object(), *kinds = json_object_new_array();

	json_object_object_add(o, "cache", json_object_new_string(dir));
	for (size_t k = 0; k < CJ_CACHE_NKINDS; k++) {
		const struct cj_cache_kind_usage *ku = &u->kinds[k];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "kind", json_object_new_string(ku->kind));
		json_object_object_add(j, "folder", json_object_new_string(ku->folder));
		json_object_object_add(j, "entries", json_object_new_int64((int64_t)ku->entries));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)ku->bytes));
		json_object_object_add(j, "in_use", json_object_new_int64((int64_t)ku->in_use));
		json_object_object_add(j, "in_use_bytes",
		                       json_object_new_int64((int64_t)ku->in_use_bytes));
		json_object_object_add(j, "prunable", json_object_new_boolean(ku->prunable));
		json_object_array_add(kinds, j);
	}
	json_object_object_add(o, "kinds", kinds);
	json_object_object_add(o, "total", json_object_new_int64((int64_t)u->bytes));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void df_table(const struct cj_cache_usage *u, const char *dir)
{
	char size[32], used[32];

	printf("%-10s %8s %10s %8s %10s\n", "KIND", "ENTRIES", "SIZE", "IN USE", "USED SIZE");
	for (size_t k = 0; k < CJ_CACHE_NKINDS; k++) {
		const struct cj_cache_kind_usage *ku = &u->kinds[k];
		cj_progress_fmt_size(ku->bytes, size, sizeof size);
		cj_progress_fmt_size(ku->in_use_bytes, used, sizeof used);
		if (ku->prunable)
			printf("%-10s %8llu %10s %8llu %10s\n", ku->kind,
			       (unsigned long long)ku->entries, size,
			       (unsigned long long)ku->in_use, used);
		else
			printf("%-10s %8llu %10s %8s %10s\n", ku->kind,
			       (unsigned long long)ku->entries, size, "-", "-");
	}
	cj_progress_fmt_size(u->bytes, size, sizeof size);
	printf("total %s in %s\n", size, dir);
}

static int system_df(const struct sys *s, const char *dir)
{
	struct cj_cache_usage u;
	struct cj_err err = {0};

	if (cj_cache_usage(dir, &u, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	if (s->json)
		df_json(&u, dir);
	else
		df_table(&u, dir);
	return 0;
}

static int system_prune(const struct sys *s, const char *dir)
{
	struct cj_cache_pruned p;
	struct cj_err err = {0};
	char size[32];

	if (cj_cache_prune(dir, s->all, &p, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	cj_progress_fmt_size(p.bytes, size, sizeof size);
	printf("%llu cache entr%s removed, %s freed\n", (unsigned long long)p.entries,
	       p.entries == 1 ? "y" : "ies", size);
	return 0;
}

/* system SUB [OPTIONS]: the options are parsed after SUB, which stands in
 * for argv[0]. */
static int system_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct sys s = {0};
	const char *sub = argc >= 2 ? argv[1] : NULL;
	int first, r;

	if (!sub || sub[0] == '-') {
		r = cli_parse_args(verb, &s, argc, argv, &first, &err);
		if (r != 0)
			return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	r = cli_parse_args(verb, &s, argc - 1, argv + 1, &first, &err);
	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first != argc - 1 || (strcmp(sub, "df") != 0 && strcmp(sub, "prune") != 0)) {
		fprintf(stderr,
		        "ctr-jailer: system %s: give 'system df' or 'system prune [--all]'\n", sub);
		return CJ_EXIT_RUNTIME;
	}
	return strcmp(sub, "df") == 0 ? system_df(&s, cli_cache_dir())
	                              : system_prune(&s, cli_cache_dir());
}

const struct cli_verb cli_system_verb = {
    .name = "system",
    .usage = "system df [--format json] | system prune [--all]",
    .about = "The cache (CTR_JAILER_CACHE). df: what it holds by kind (kernels, vmlinux, "
             "initramfs, modules, base, images, layers, deltas, store, snapshots), with "
             "allocated sizes as du counts them and what live runs use. prune: remove the "
             "entries no live run uses and that were last used more than 24 hours ago; "
             "--all: every entry no live run uses. A live run holds a shared lock on each "
             "entry it uses until it ends (a boot snapshot being taken holds its build lock); "
             "the kernel 'kernel fetch' made the default and the image store are never "
             "pruned here.",
    .opts = system_opts,
    .nopts = sizeof system_opts / sizeof *system_opts,
    .main = system_main,
};
