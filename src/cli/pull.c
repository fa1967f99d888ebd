/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer pull REF: an image from a registry into the local store. */
#include "pull.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/progress.h"

extern char **environ;

#define S(c) ((struct cj_pull_settings *)(c))

static int opt_platform(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_platform(S(c), v, what, err);
}

static int opt_creds(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_creds(S(c), v, what, err);
}

static int opt_cert_dir(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_cert_dir(S(c), v, what, err);
}

static int opt_insecure(void *c, const char *v, const char *what, struct cj_err *err)
{
	return cli_pull_insecure(S(c), v, what, err);
}

static int opt_quiet(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	S(c)->quiet = true;
	return 0;
}

static const struct cli_opt pull_opts[] = {
    {"platform", 0, "OS/ARCH[/VARIANT]", NULL, opt_platform, NULL, "Options",
     "the image of a multi-platform index to take (default linux/amd64)"},
    {"creds", 0, "USER:PASS", NULL, opt_creds, NULL, "Options",
     "registry credentials (else CTR_JAILER_REGISTRY_AUTH, else ~/.docker/config.json)"},
    {"cert-dir", 0, "DIR", NULL, opt_cert_dir, NULL, "Options",
     "TLS material added to the system's CAs: ca.crt, client.cert and client.key in DIR or "
     "DIR/HOST[:PORT] (docker's certs.d layout)"},
    {"insecure-registry", 0, "HOST[:PORT]", "CTR_JAILER_INSECURE_REGISTRIES", opt_insecure, NULL,
     "Options", "talk plain HTTP to this registry; repeatable, the variable comma-separated"},
    {"quiet", 'q', NULL, NULL, opt_quiet, NULL, "Options", "no progress"},
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int signo)
{
	(void)signo;
	interrupted = 1;
}

static int pull_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_pull_settings s = {0};
	struct cj_pull_opts o;
	struct cj_err err = {0};
	struct sigaction sa = {.sa_handler = on_interrupt};
	char name[512], digest[72];
	int first, r = cli_apply_env(verb, &s, environ, &err);

	if (r == 0)
		r = cli_parse_args(verb, &s, argc, argv, &first, &err);
	if (r == 0 && first + 1 != argc)
		r = cj_fail(&err, 0,
		            "give one image reference, e.g. 'ctr-jailer pull debian:bookworm'");
	if (r != 0) {
		cj_pull_settings_free(&s);
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	}
	cj_progress_setup(2, cj_progress_mode_for(2, s.quiet));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	cj_pull_opts_from(&s, cli_cache_dir(), environ, &o);
	o.cancel = &interrupted;
	r = cj_pull(argv[first], &o, name, digest, &err);
	cj_pull_settings_free(&s);
	if (r < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	printf("%s\n%s\n", digest, name);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_pull_verb = {
    .name = "pull",
    .usage = "pull [OPTIONS] [REGISTRY/]NAME[:TAG|@DIGEST]",
    .about = "Pull an image from a registry into the local store (docker's naming: 'debian' "
             "is docker.io/library/debian:latest). Prints its manifest digest and its stored "
             "name.",
    .opts = pull_opts,
    .nopts = sizeof pull_opts / sizeof *pull_opts,
    .main = pull_main,
};
