/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer images: the local store's images, as docker images lists them. */
#include "cli.h"

#include "registry/store.h"
#include "util/progress.h"
#include "util/sanitize.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

struct images {
	bool quiet, json;
};

static int opt_quiet(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct images *)c)->quiet = true;
	return 0;
}

static int opt_format(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)
		return cj_fail(err, 0, "%s '%s' is not known: give json or table", what, v);
	((struct images *)c)->json = strcmp(v, "json") == 0;
	return 0;
}

static const struct cli_opt images_opts[] = {
    {"quiet", 'q', NULL, NULL, opt_quiet, NULL, "Options", "print only the image ids"},
    {"format", 0, "json|table", NULL, opt_format, NULL, "Options",
     "json: one JSON object per image and line"},
};

/* "docker.io/library/busybox:latest" -> repository, tag ("<none>"). */
static void split_name(const char *name, char *repo, size_t rlen, char *tag, size_t tlen)
{
	const char *at = strchr(name, '@'), *slash = strrchr(name, '/');
	const char *colon = strrchr(slash ? slash : name, ':');
	size_t end = at ? (size_t)(at - name) : strlen(name);

	if (colon && (!at || colon < at)) {
		snprintf(tag, tlen, "%.*s", (int)(end - (size_t)(colon - name) - 1), colon + 1);
		end = (size_t)(colon - name);
	} else {
		snprintf(tag, tlen, "<none>");
	}
	snprintf(repo, rlen, "%.*s", (int)end, name[0] ? name : "<none>");
}

static void print_entry(const struct images *im, const struct cj_store *st,
                        const struct cj_store_entry *e)
{
	char repo[512], tag[160], size[32];
	uint64_t bytes = 0;
	struct cj_err ignored = {0};
	json_object *o;

	if (im->quiet) {
		printf("%.12s\n", e->digest + 7);
		return;
	}
	split_name(e->name, repo, sizeof repo, tag, sizeof tag);
	cj_store_image_size(st, e->digest, &bytes, &ignored);
	if (!im->json) {
		cj_progress_fmt_size(bytes, size, sizeof size);
		printf("%-50s %-20s %-14.12s %s\n", repo, tag, e->digest + 7, size);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "Name", json_object_new_string(e->name));
	json_object_object_add(o, "Repository", json_object_new_string(repo));
	json_object_object_add(o, "Tag", json_object_new_string(tag));
	json_object_object_add(o, "ID", json_object_new_string_len(e->digest + 7, 12));
	json_object_object_add(o, "Digest", json_object_new_string(e->digest));
	json_object_object_add(o, "Size", json_object_new_int64((int64_t)bytes));
	char *safe = cj_json_terminal_safe(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (safe)
		printf("%s\n", safe);
	free(safe);
	json_object_put(o);
}

static int images_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct images im = {0};
	struct cj_store st;
	struct cj_store_entry *v = NULL;
	struct cj_err err = {0};
	size_t n = 0;
	int first, r = cli_parse_args(verb, &im, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first != argc)
		return cli_report(&(struct cj_err){.msg = "images takes no operands"},
		                  CJ_EXIT_RUNTIME);
	cj_store_paths(cli_cache_dir(), &st);
	if (cj_store_list(&st, &v, &n, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	if (!im.quiet && !im.json)
		printf("%-50s %-20s %-14s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "SIZE");
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; im.quiet && j < i && !seen; j++)
			seen = strcmp(v[j].digest, v[i].digest) == 0;
		if (!seen)
			print_entry(&im, &st, &v[i]);
	}
	free(v);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_images_verb = {
    .name = "images",
    .usage = "images [-q] [--format json|table]",
    .about = "List the images of the local store (pulled, loaded or tagged): repository, "
             "tag, id (the manifest digest's first 12 hex digits) and the bytes its blobs "
             "take.",
    .opts = images_opts,
    .nopts = sizeof images_opts / sizeof *images_opts,
    .main = images_main,
};
