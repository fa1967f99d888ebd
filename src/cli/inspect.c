/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer inspect IMAGE: what `run --image IMAGE` would run, as JSON. */
#include "cli.h"

#include "lifecycle.h"

#include "image/oci.h"
#include "registry/store.h"
#include "run/runs.h"
#include "util/sanitize.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static json_object *json_strv_or_null(const struct cj_strv *sv, bool present)
{
	json_object *a;

	if (!present)
		return NULL; /* json-c serialises NULL as null */
	a = json_object_new_array();
	for (size_t i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

static json_object *json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static int print_json(json_object *o, struct cj_err *err)
{
	/* json-c leaves DEL, C1 controls and invalid UTF-8 raw in strings */
	char *out = cj_json_terminal_safe(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(o);
	if (!out) {
		cj_fail(err, ENOMEM, "inspect");
		return cli_report(err, CJ_EXIT_RUNTIME);
	}
	printf("%s\n", out);
	free(out);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

/* A run's record, with "running" (does its supervisor still hold it?);
 * its undo log is the runtime's own. */
static int inspect_run(const char *ref)
{
	struct cj_err err = {0};
	char id[16];
	json_object *rec;

	if (cj_runs_find(cli_run_base(), ref, id, &err) < 0 ||
	    !(rec = cj_runs_read(cli_run_base(), id, &err)))
		return cli_report(&err, CJ_EXIT_RUNTIME);
	json_object_object_del(rec, "undo");
	json_object_object_add(rec, "running",
	                       json_object_new_boolean(cj_runs_alive(cli_run_base(), id)));
	return print_json(rec, &err);
}

/* The image's HEALTHCHECK as it gives it (durations in ms); null without. */
static json_object *healthcheck_json(const struct cj_image_config *c)
{
	json_object *h;

	if (!c->health_test.n)
		return NULL;
	h = json_object_new_object();
	json_object_object_add(h, "test", json_strv_or_null(&c->health_test, true));
	json_object_object_add(h, "interval_ms",
	                       json_object_new_int64((int64_t)c->health_interval_ms));
	json_object_object_add(h, "timeout_ms",
	                       json_object_new_int64((int64_t)c->health_timeout_ms));
	json_object_object_add(h, "start_period_ms",
	                       json_object_new_int64((int64_t)c->health_start_period_ms));
	json_object_object_add(h, "retries", json_object_new_int((int)c->health_retries));
	return h;
}

/* A file form, or (when no run has that name or id) a stored image. */
static bool image_ref(const char *ref)
{
	struct cj_store st;
	struct cj_store_entry e;
	struct cj_err ignored = {0};
	char id[16];

	if (cj_image_ref_is_file_form(ref))
		return true;
	if (cj_runs_find(cli_run_base(), ref, id, &ignored) == 0)
		return false;
	cj_store_paths(cli_cache_dir(), &st);
	return cj_store_find(&st, ref, &e, &ignored) == 1;
}

static int inspect_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct cj_image img;
	struct cj_strv command = {0};
	const struct cj_image_config *c = &img.config;
	json_object *o, *labels;

	int first, r = cli_parse_args(verb, NULL, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first + 1 != argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	argv += first - 1;
	if (!image_ref(argv[1]))
		return inspect_run(argv[1]);
	if (cj_image_open(argv[1], cli_cache_dir(), &img, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	o = json_object_new_object();
	json_object_object_add(o, "image", json_object_new_string(argv[1]));
	json_object_object_add(o, "digest", json_object_new_string(img.digest));
	json_object_object_add(o, "config_digest",
	                       json_str_or_null(img.has_config ? img.config_digest : NULL));
	json_object_object_add(o, "os", json_str_or_null(c->os));
	json_object_object_add(o, "architecture", json_str_or_null(c->architecture));
	json_object_object_add(o, "entrypoint",
	                       json_strv_or_null(&c->entrypoint, c->has_entrypoint));
	json_object_object_add(o, "cmd", json_strv_or_null(&c->cmd, c->has_cmd));
	/* What would run without arguments; null when the run must give one. */
	{
		struct cj_err ignored = {0};
		bool have = cj_image_command(c, false, NULL, NULL, &command, &ignored) == 0;
		json_object_object_add(o, "command", json_strv_or_null(&command, have));
		cj_strv_free(&command);
	}
	json_object_object_add(o, "env", json_strv_or_null(&c->env, true));
	json_object_object_add(o, "user", json_str_or_null(c->user));
	json_object_object_add(o, "workdir", json_str_or_null(c->workdir));
	json_object_object_add(o, "stop_signal", json_str_or_null(c->stop_signal));
	json_object_object_add(o, "stop_signal_number",
	                       c->stop_signal ? json_object_new_int((int)c->stop_signal_num)
	                                      : NULL);
	json_object_object_add(o, "healthcheck", healthcheck_json(c));
	labels = json_object_new_object();
	for (size_t i = 0; i < c->label_keys.n; i++)
		json_object_object_add(labels, c->label_keys.v[i],
		                       json_object_new_string(c->label_values.v[i]));
	json_object_object_add(o, "labels", labels);
	json_object_object_add(
	    o, "layers",
	    json_object_new_int((int)(img.ref.kind == CJ_IMAGE_OCI ? img.manifest.nlayers
	                              : img.ref.kind == CJ_IMAGE_DOCKER_ARCHIVE
	                                  ? img.dmanifest.layers.n
	                                  : 1)));
	cj_image_free(&img);
	return print_json(o, &err);
}

const struct cli_verb cli_inspect_verb = {
    .name = "inspect",
    .usage = "inspect NAME|ID | IMAGE | oci:DIR[:TAG] | docker-archive:FILE | tar:FILE",
    .about = "Print, as JSON, a run's record (its command, state, times, exit code, OOM "
             "flag, address and published ports), or what 'run --image IMAGE' would run (a "
             "stored image, or a file form): "
             "the image's digests, config and command.",
    .main = inspect_main,
};
