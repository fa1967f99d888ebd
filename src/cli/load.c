/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer load -i FILE: a docker-archive or OCI archive into the store. */
#include "cli.h"

#include "registry/load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct load_args {
	const char *input;
	bool quiet;
};

static int opt_input(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)what, (void)err;
	((struct load_args *)c)->input = v;
	return 0;
}

static int opt_quiet(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct load_args *)c)->quiet = true;
	return 0;
}

static const struct cli_opt load_opts[] = {
    {"input", 'i', "FILE", NULL, opt_input, NULL, "Options",
     "the archive: docker save's tarball or an OCI archive, compressed or not"},
    {"quiet", 'q', NULL, NULL, opt_quiet, NULL, "Options", "print nothing"},
};

static int load_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct load_args la = {0};
	struct cj_load_result *res = NULL;
	struct cj_err err = {0};
	size_t n = 0;
	int first, r = cli_parse_args(verb, &la, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (!la.input || first != argc) {
		cj_fail(&err, 0, "give the archive with -i FILE (and nothing else)");
		return cli_report(&err, CJ_EXIT_RUNTIME);
	}
	if (cj_load(cli_cache_dir(), la.input, &res, &n, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	for (size_t i = 0; i < n && !la.quiet; i++) {
		if (res[i].name[0])
			printf("Loaded image: %s\n", res[i].name);
		else
			printf("Loaded image ID: %s\n", res[i].digest);
	}
	free(res);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_load_verb = {
    .name = "load",
    .usage = "load -i FILE",
    .about = "Load the images of a docker-archive ('docker save') or an OCI archive into the "
             "local store, named as the archive names them (RepoTags; "
             "io.containerd.image.name, or a full org.opencontainers.image.ref.name). Every "
             "blob is stored under the digest of its content; an OCI blob that does not "
             "match its name is refused.",
    .opts = load_opts,
    .nopts = sizeof load_opts / sizeof *load_opts,
    .main = load_main,
};
