/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer ps: the runs, as docker ps lists containers. */
#include "lifecycle.h"

#include "run/record.h"
#include "run/runs.h"
#include "util/sanitize.h"

#include <stdlib.h>
#include <string.h>

struct ps {
	bool all, quiet, json;
};

static int opt_all(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct ps *)c)->all = true;
	return 0;
}

static int opt_quiet(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct ps *)c)->quiet = true;
	return 0;
}

static int opt_format(void *c, const char *v, const char *what, struct cj_err *err)
{
	if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)
		return cj_fail(err, 0, "%s '%s' is not known: give json or table", what, v);
	((struct ps *)c)->json = strcmp(v, "json") == 0;
	return 0;
}

static const struct cli_opt ps_opts[] = {
    {"all", 'a', NULL, NULL, opt_all, NULL, "Options", "show the runs that ended too"},
    {"quiet", 'q', NULL, NULL, opt_quiet, NULL, "Options", "print only the ids"},
    {"format", 0, "json|table", NULL, opt_format, NULL, "Options",
     "json: one JSON object per run and line (docker's keys)"},
};

static const char *str(json_object *o, const char *key)
{
	const char *s = cj_undo_str(o, key);
	return s ? s : "";
}

/* The record's array key, its strings joined by sep. */
static void join(json_object *rec, const char *key, const char *sep, char *buf, size_t len)
{
	json_object *a;
	size_t n = 0;

	buf[0] = '\0';
	if (!json_object_object_get_ex(rec, key, &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a) && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? sep : "",
		                      json_object_get_string(json_object_array_get_idx(a, i)));
}

/* The run's health status ("starting", "healthy", "unhealthy"), or NULL
 * when it has no health check. */
static const char *health_of(json_object *rec)
{
	json_object *h;

	if (!json_object_object_get_ex(rec, "health", &h) ||
	    !json_object_is_type(h, json_type_object))
		return NULL;
	return cj_undo_str(h, "status");
}

/* docker's State ("running", "exited", "dead": its supervisor is gone and
 * gc has yet to clean up) and Status ("Up 5 minutes", "Exited (0) 2
 * seconds ago"). */
static const char *status(const char *id, json_object *rec, char *buf, size_t len)
{
	char age[64];
	json_object *v;
	const char *state = str(rec, "state");

	/* "exited" is final (the lock may be held a moment by a gc) */
	if (strcmp(state, "exited") != 0 && cj_runs_alive(cli_run_base(), id)) {
		time_t t = cli_time(rec, "started");
		if (!t)
			return snprintf(buf, len, "Created"), "created";
		cli_age(t, age, sizeof age);
		const char *health = health_of(rec);
		if (!health)
			snprintf(buf, len, "Up %s", age);
		else if (strcmp(health, "starting") == 0)
			snprintf(buf, len, "Up %s (health: starting)", age);
		else
			snprintf(buf, len, "Up %s (%s)", age, health);
		return "running";
	}
	if (strcmp(state, "exited") != 0)
		return snprintf(buf, len, "Dead"), "dead";
	cli_age(cli_time(rec, "finished"), age, sizeof age);
	snprintf(buf, len, "Exited (%d) %s ago",
	         json_object_object_get_ex(rec, "exit_code", &v) ? json_object_get_int(v) : -1,
	         age);
	return "exited";
}

static int ps_one(const char *id, json_object *rec, void *ctx)
{
	struct ps *ps = ctx;
	char cmd[256], st[128], created[64], pt[256];
	const char *state = status(id, rec, st, sizeof st);

	if (!ps->all && strcmp(state, "running") != 0 && strcmp(state, "created") != 0)
		return 0;
	if (ps->quiet)
		return printf("%s\n", id), 0;
	join(rec, "command", " ", cmd, sizeof cmd);
	join(rec, "ports", ", ", pt, sizeof pt);
	cli_age(cli_time(rec, "created"), created, sizeof created - 4);
	strcat(created, " ago");
	if (ps->json) {
		json_object *o = json_object_new_object(), *v;
		json_object_object_add(o, "ID", json_object_new_string(id));
		json_object_object_add(o, "Names", json_object_new_string(str(rec, "name")));
		json_object_object_add(o, "Command", json_object_new_string(cmd));
		json_object_object_add(o, "CreatedAt", json_object_new_string(str(rec, "created")));
		json_object_object_add(o, "State", json_object_new_string(state));
		json_object_object_add(o, "Status", json_object_new_string(st));
		json_object_object_add(o, "Ports", json_object_new_string(pt));
		if (json_object_object_get_ex(rec, "exit_code", &v))
			json_object_object_add(o, "ExitCode", json_object_get(v));
		if (health_of(rec) && strcmp(state, "running") == 0)
			json_object_object_add(o, "Health", json_object_new_string(health_of(rec)));
		char *out = cj_json_terminal_safe(json_object_to_json_string_ext(
		    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		if (out)
			printf("%s\n", out);
		free(out);
		return 0;
	}
	char line[1024], *safe;
	snprintf(line, sizeof line, "%-12s  %-24.24s  %-16s  %-32s  %-28s  %s", id, cmd, created,
	         st, pt, str(rec, "name"));
	safe = cj_json_terminal_safe(line);
	printf("%s\n", safe ? safe : "");
	free(safe);
	return 0;
}

static int ps_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct ps ps = {0};
	int first, r = cli_parse_args(verb, &ps, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first != argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	if (!ps.quiet && !ps.json)
		printf("%-12s  %-24s  %-16s  %-32s  %-28s  %s\n", "ID", "COMMAND", "CREATED",
		       "STATUS", "PORTS", "NAMES");
	if (cj_record_each(cli_run_base(), NULL, ps_one, &ps, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_ps_verb = {
    .name = "ps",
    .usage = "ps [-a] [-q] [--format json]",
    .about = "List the running VMs; with -a, also the runs that ended whose record is kept "
             "(-d or --name runs, until 'rm').",
    .opts = ps_opts,
    .nopts = sizeof ps_opts / sizeof *ps_opts,
    .main = ps_main,
};
