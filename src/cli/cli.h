/* SPDX-License-Identifier: Apache-2.0 */
/* The command line: one table per verb, from which its getopt_long table,
 * its --help and its seed environment variables are all derived. */
#ifndef CJ_CLI_H
#define CJ_CLI_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Parse one value into ctx (a verb's state). what names the source in an
 * error: "--cpus" or "VCPU_COUNT". value is NULL for a flag. */
typedef int cli_parse_fn(void *ctx, const char *value, const char *what, struct cj_err *err);

struct cli_opt {
	const char *name;        /* long name, without "--"; NULL: a variable only */
	char short_name;         /* 0: none */
	const char *arg;         /* the value's name in --help; NULL: a flag */
	const char *env;         /* the seed's environment variable, or NULL */
	cli_parse_fn *parse;     /* the flag (and, without env_parse, the variable) */
	cli_parse_fn *env_parse; /* the variable's own syntax, or NULL */
	const char *group;       /* --help heading */
	const char *help;        /* one sentence, wrapped by --help */
};

struct cli_verb {
	const char *name;
	const char *usage; /* after "usage: ctr-jailer " */
	const char *about; /* one paragraph */
	const struct cli_opt *opts;
	size_t nopts;
	const char *epilog; /* printed after the options, or NULL */
	int (*main)(const struct cli_verb *verb, int argc, char **argv);
};

/* Parse argv (argv[0] is the verb) with the verb's table, stopping at the
 * first operand; *first is then the index of the first operand. Returns 1
 * when --help was printed, 0 when parsed, -1 with err filled. */
int cli_parse_args(const struct cli_verb *verb, void *ctx, int argc, char **argv, int *first,
                   struct cj_err *err);
/* Apply the seed's variables set (non-empty) in env, in table order. */
int cli_apply_env(const struct cli_verb *verb, void *ctx, char **env, struct cj_err *err);
void cli_help(const struct cli_verb *verb, FILE *out);

/* Print err's message (if any) on stderr. */
void cli_print_err(const struct cj_err *err);
/* For a failure: print err and return its exit code (code when it has none). */
int cli_report(const struct cj_err *err, int code);
const char *cli_cache_dir(void);

struct ctrj_proc;
/* ctr-jailer-runtime exec: process.json's privileges and limits for the
 * command `exec` starts (NULL: the guest's defaults). */
extern const struct ctrj_proc *cli_exec_proc;

extern const struct cli_verb cli_run_verb, cli_kernel_verb, cli_inspect_verb, cli_gc_verb,
    cli_version_verb, cli_ps_verb, cli_stop_verb, cli_kill_verb, cli_wait_verb, cli_rm_verb,
    cli_logs_verb, cli_exec_verb, cli_pull_verb, cli_images_verb, cli_rmi_verb, cli_tag_verb,
    cli_load_verb, cli_volume_verb, cli_snapshot_verb, cli_system_verb;

#endif
