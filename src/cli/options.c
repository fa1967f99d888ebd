/* SPDX-License-Identifier: Apache-2.0 */
/* The machinery behind the verbs' option tables. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COLUMN 26
#define HELP_WIDTH  79
#define OPT_BASE    0x100 /* getopt values of long-only options: OPT_BASE + index */

static const char *env_value(char **env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

int cli_apply_env(const struct cli_verb *verb, void *ctx, char **env, struct cj_err *err)
{
	for (size_t i = 0; i < verb->nopts; i++) {
		const struct cli_opt *o = &verb->opts[i];
		const char *v = o->env ? env_value(env, o->env) : NULL;
		cli_parse_fn *fn = o->env_parse ? o->env_parse : o->parse;

		if (v && *v && fn(ctx, v, o->env, err) < 0)
			return -1;
	}
	return 0;
}

/* getopt_long's table and short-option string for a verb, with --help. */
static struct option *getopt_table(const struct cli_verb *verb, char *shorts, size_t len)
{
	struct option *t = calloc(verb->nopts + 2, sizeof *t);
	size_t n = 0, s = 0;

	if (!t)
		return NULL;
	shorts[s++] = '+'; /* stop at the first operand: the guest command */
	shorts[s++] = ':'; /* report a missing value as ':' */
	shorts[s++] = 'h';
	for (size_t i = 0; i < verb->nopts; i++) {
		const struct cli_opt *o = &verb->opts[i];
		int val = o->short_name ? o->short_name : OPT_BASE + (int)i;
		if (o->short_name && s + 3 < len) {
			shorts[s++] = o->short_name;
			if (o->arg)
				shorts[s++] = ':';
		}
		if (o->name)
			t[n++] = (struct option){o->name, o->arg ? required_argument : no_argument,
			                         NULL, val};
	}
	shorts[s] = '\0';
	t[n++] = (struct option){"help", no_argument, NULL, 'h'};
	return t;
}

static const struct cli_opt *by_value(const struct cli_verb *verb, int val)
{
	if (val >= OPT_BASE && (size_t)(val - OPT_BASE) < verb->nopts)
		return &verb->opts[val - OPT_BASE];
	for (size_t i = 0; i < verb->nopts; i++)
		if (verb->opts[i].short_name && verb->opts[i].short_name == val)
			return &verb->opts[i];
	return NULL;
}

static int unknown(const struct cli_verb *verb, char **argv, struct cj_err *err)
{
	if (optopt && optopt < OPT_BASE)
		return cj_fail(err, 0, "unknown option '-%c' (see 'ctr-jailer %s --help')", optopt,
		               verb->name);
	return cj_fail(err, 0, "unknown option '%s' (see 'ctr-jailer %s --help')", argv[optind - 1],
	               verb->name);
}

int cli_parse_args(const struct cli_verb *verb, void *ctx, int argc, char **argv, int *first,
                   struct cj_err *err)
{
	char shorts[128], what[64];
	struct option *table = getopt_table(verb, shorts, sizeof shorts);
	int opt, r = 0;

	if (!table)
		return cj_fail(err, ENOMEM, "options");
	optind = 0; /* reset: a verb may be parsed twice in one process */
	opterr = 0;
	while (r == 0 && (opt = getopt_long(argc, argv, shorts, table, NULL)) != -1) {
		const struct cli_opt *o = by_value(verb, opt);
		if (opt == 'h') {
			cli_help(verb, stdout);
			r = 1;
		} else if (opt == ':') {
			r = cj_fail(err, 0, "option '%s' needs a value", argv[optind - 1]);
		} else if (!o) {
			r = unknown(verb, argv, err);
		} else {
			if (o->name)
				snprintf(what, sizeof what, "--%s", o->name);
			else
				snprintf(what, sizeof what, "-%c", o->short_name);
			r = o->parse(ctx, o->arg ? optarg : NULL, what, err);
		}
	}
	free(table);
	*first = optind;
	return r;
}

/* Write text from column col, wrapped at HELP_WIDTH, continuation lines
 * indented to indent. */
static void wrap(FILE *out, const char *text, int col, int indent)
{
	const char *p = text;

	while (*p) {
		size_t word = strcspn(p, " ");
		if (col > indent && col + 1 + (int)word > HELP_WIDTH) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, word, out);
		col += (int)word;
		p += word;
		while (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

static void help_line(FILE *out, const struct cli_opt *o)
{
	char head[128], text[512];
	int n = 0;

	if (o->short_name)
		n += snprintf(head + n, sizeof head - (size_t)n, "-%c%s", o->short_name,
		              o->name ? ", " : "");
	if (o->name)
		n += snprintf(head + n, sizeof head - (size_t)n, "--%s", o->name);
	else
		n += snprintf(head + n, sizeof head - (size_t)n, "%s", o->env);
	if (o->arg && (o->name || o->short_name))
		snprintf(head + n, sizeof head - (size_t)n, " %s", o->arg);
	if (o->env && o->name)
		snprintf(text, sizeof text, "%s (%s)", o->help, o->env);
	else
		snprintf(text, sizeof text, "%s", o->help);
	n = fprintf(out, "  %s", head);
	if (n >= HELP_COLUMN) {
		fputc('\n', out);
		n = 0;
	}
	fprintf(out, "%*s", HELP_COLUMN - n, "");
	wrap(out, text, HELP_COLUMN, HELP_COLUMN);
}

void cli_help(const struct cli_verb *verb, FILE *out)
{
	const char *group = NULL;

	fprintf(out, "usage: ctr-jailer %s\n\n", verb->usage);
	wrap(out, verb->about, 0, 0);
	for (size_t i = 0; i < verb->nopts; i++) {
		const struct cli_opt *o = &verb->opts[i];
		if (!group || strcmp(group, o->group) != 0) {
			group = o->group;
			fprintf(out, "\n%s:\n", group);
		}
		help_line(out, o);
	}
	fprintf(out, "\n  -h, --help%*sthis help\n", HELP_COLUMN - 12, "");
	if (verb->epilog)
		fprintf(out, "\n%s", verb->epilog);
}

void cli_print_err(const struct cj_err *err)
{
	char buf[CJ_ERR_STR_MAX];

	if (err->msg[0])
		fprintf(stderr, "ctr-jailer: %s\n", cj_err_str(err, buf, sizeof buf));
}

int cli_report(const struct cj_err *err, int code)
{
	cli_print_err(err);
	return err->exit_code ? err->exit_code : code;
}
