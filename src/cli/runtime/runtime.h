/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer-runtime: runc's command line, as containerd's runc shim and
 * conmon use it, over ctr-jailer's runs. One file per verb, each with its
 * own option table; this header holds what they share: the global options,
 * the log (--log, --log-format text|json: the shim reads the last error
 * from it), the container's state under --root, and the parser. */
#ifndef CJ_CLI_RUNTIME_H
#define CJ_CLI_RUNTIME_H

#include "util/err.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RT_NAME         "ctr-jailer-runtime"
#define RT_DEFAULT_ROOT "/run/ctr-jailer-runtime"
#define RT_OCI_VERSION  "1.1.0"

struct rt_global {
	const char *root;
	const char *log;
	bool log_json, debug, systemd_cgroup;
};
extern struct rt_global rt_g;

/* One option: --name or -s (runc's urfave/cli takes -name too), a value
 * when arg is set. set NULL: a runc option this runtime accepts and
 * ignores, with a logged warning. */
struct rt_opt {
	const char *name;
	char short_name;
	const char *arg;
	int (*set)(void *ctx, const char *value, struct cj_err *err);
	const char *help;
};

struct rt_verb {
	const char *name;
	const char *usage;
	const struct rt_opt *opts;
	size_t nopts;
	int (*main)(const struct rt_verb *verb, int argc, char **argv);
};

/* Parse argv (argv[0] is the verb) up to the first operand (*first);
 * unknown options are logged and skipped. 1: --help printed; 0; -1. */
int rt_parse(const struct rt_verb *verb, void *ctx, int argc, char **argv, int *first,
             struct cj_err *err);
/* The operands a verb takes (ID and more): a usage error when fewer. */
int rt_need(const struct rt_verb *verb, int have, int want, struct cj_err *err);

__attribute__((format(printf, 2, 3))) void rt_log(const char *level, const char *fmt, ...);
/* err into the log (level error) and on stderr; returns 1 (runc's status). */
int rt_fail(const struct cj_err *err);

/* The container's state file, <root>/<id>/state.json. Reading it makes
 * the run base it was created with this process's (CTR_JAILER_RUN_DIR). */
json_object *rt_state_read(const char *id, struct cj_err *err);
int rt_state_write(const char *id, json_object *state, struct cj_err *err);
int rt_state_create_dir(const char *id, struct cj_err *err);
void rt_state_remove(const char *id);
const char *rt_state_str(json_object *state, const char *key);
/* The run base ctr-jailer's runs live in (CTR_JAILER_RUN_DIR or default). */
const char *rt_run_base(void);
/* created, running or stopped, and the supervisor's pid (0 when stopped). */
const char *rt_status(json_object *state, pid_t *pid);
/* Write pid to path as runc does (a temporary file renamed into place). */
int rt_write_pid(const char *path, pid_t pid, struct cj_err *err);
/* A pty: the master sent to the console socket, the slave made this
 * process's stdin, stdout and stderr. */
int rt_console(const char *socket_path, struct cj_err *err);

/* The bundle's config.json as the argv of `ctr-jailer run` (bundle.c). */
int rt_bundle_argv(const char *bundle, const char *id, char ***argv, int *argc,
                   json_object **config, struct cj_err *err);

struct ctrj_proc;
/* A spec's process (config.json's or an exec's process.json): its
 * capabilities, rlimits, additionalGids, noNewPrivileges and oomScoreAdj
 * as the guest applies them (process.c). */
int rt_process_proc(json_object *proc, struct ctrj_proc *p, struct cj_err *err);
/* linux.resources.pids.limit; 0: none. */
uint64_t rt_pids_limit(json_object *config);

/* The engine's /etc/hosts, /etc/hostname and /etc/resolv.conf (bind
 * mounts of files, etcfiles.c): their directories, shared read-only at
 * guest_dirs, and the files bound from there over theirs. */
#define RT_ETC_FILES 3
struct rt_etc_files {
	char dirs[RT_ETC_FILES][PATH_MAX];
	char guest_dirs[RT_ETC_FILES][32];
	size_t ndirs;
	char src[RT_ETC_FILES][320]; /* in the guest: guest_dirs[i]/NAME */
	char dst[RT_ETC_FILES][32];
	size_t dir_of[RT_ETC_FILES]; /* bind i's directory: dirs[dir_of[i]] */
	size_t nbinds;
};
/* Is this mount one of them (a regular file bound at one of the paths)? */
bool rt_etc_file(const char *dest, const char *src);
void rt_etc_files(json_object *config, struct rt_etc_files *f);
struct cj_spec;
/* The shares of f's directories (bundle.c's --volume) made to serve only
 * the bound files: 0, or -1 (out of memory, or a share missing). */
int rt_etc_shares(const struct rt_etc_files *f, struct cj_spec *spec, struct cj_err *err);
/* linux.cgroupsPath as a path under each cgroup hierarchy's root ("" when
 * none is named), systemd's slice:prefix:name with --systemd-cgroup
 * (cgroup.c). */
int rt_cgroup_path(json_object *config, char *out, size_t len, struct cj_err *err);

struct cj_spec;
/* The container's network namespace entered (made, or joined by path), its
 * prestart and createRuntime hooks run, its interface given to the VM
 * (network.c). */
int rt_network(json_object *config, const char *id, const char *bundle, struct cj_spec *spec,
               struct cj_err *err);

/* config.json's hooks well formed (each kind an array of objects, an
 * absolute path, args and env arrays of strings, a timeout above 0), or
 * -1 with err: create checks them before anything runs (hooks.c). */
int rt_hooks_check(json_object *config, struct cj_err *err);
/* config.json's hooks of kind (config: config.json, or the state create
 * saved them in), run on the host in order, each with the
 * state (status, and pid when above 0) on its stdin (hooks.c); the first
 * failing one fails them. */
int rt_hooks(json_object *config, const char *kind, const char *id, const char *bundle,
             const char *status, pid_t pid, struct cj_err *err);
/* The same, each failure a warning in the log, the next hook run all
 * the same (poststart, poststop). */
void rt_hooks_warn(json_object *config, const char *kind, const char *id, const char *bundle,
                   const char *status, pid_t pid);
/* The startContainer hooks, in the guest of the run (before its
 * workload's release), through its agent. */
int rt_hooks_in_guest(json_object *config, const char *id, const char *bundle, const char *run,
                      pid_t pid, struct cj_err *err);

extern const struct rt_verb rt_create_verb, rt_start_verb, rt_state_verb, rt_kill_verb,
    rt_delete_verb, rt_exec_verb, rt_ps_verb, rt_features_verb;

/* The entry point when argv[0] is ctr-jailer-runtime. */
int cli_runtime_main(int argc, char **argv);

#endif
