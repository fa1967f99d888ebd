/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer rmi NAME|DIGEST...: remove names from the store, and the
 * blobs no remaining image uses. */
#include "lifecycle.h"

#include "registry/ref.h"
#include "registry/store.h"
#include "util/progress.h"

#include <string.h>

struct rmi {
	bool force;
};

static int opt_force(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct rmi *)c)->force = true;
	return 0;
}

static const struct cli_opt rmi_opts[] = {
    {"force", 'f', NULL, NULL, opt_force, NULL, "Options",
     "remove it even while a live run uses it"},
};

/* By name: that name only; by digest or id: every name of the image. */
static int rmi_one(const struct rmi *rm, const struct cj_store *st, const char *s,
                   struct cj_err *err)
{
	struct cj_store_entry e;
	struct cj_reg_ref ref;
	struct cj_err ignored = {0};
	char name[512] = "", size[32];
	uint64_t freed;
	int r = cj_store_find(st, s, &e, err);

	if (r <= 0)
		return r < 0 ? -1
		             : cj_fail(err, 0, "image '%s' is not stored (see 'ctr-jailer images')",
		                       s);
	if (cj_reg_ref_parse(s, &ref, &ignored) == 0)
		cj_reg_ref_str(&ref, name, sizeof name);
	if (strcmp(name, e.name) != 0)
		e.name[0] = '\0';
	if (!rm->force && cj_store_in_use(cli_run_base(), e.digest))
		return cj_fail(err, 0,
		               "image '%s' is used by a running VM: stop it first, or give -f", s);
	if (cj_store_remove(st, &e, &freed, err) < 0)
		return -1;
	cj_progress_fmt_size(freed, size, sizeof size);
	printf("Untagged: %s\nDeleted: %s (%s freed)\n", e.name[0] ? e.name : s, e.digest, size);
	return 0;
}

static int rmi_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct rmi rm = {0};
	struct cj_store st;
	struct cj_err err = {0};
	int first, status = 0, r = cli_parse_args(verb, &rm, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first == argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	cj_store_paths(cli_cache_dir(), &st);
	for (int i = first; i < argc; i++) {
		err = (struct cj_err){0};
		if (rmi_one(&rm, &st, argv[i], &err) < 0) {
			cli_print_err(&err);
			status = 1;
		}
	}
	return fflush(stdout) == 0 ? status : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_rmi_verb = {
    .name = "rmi",
    .usage = "rmi [-f] NAME|DIGEST|ID...",
    .about = "Remove images from the local store: a name removes that name, a digest or id "
             "every name of the image; then the blobs no remaining image references are "
             "deleted (shared layers stay). An image a live run uses is refused unless -f.",
    .opts = rmi_opts,
    .nopts = sizeof rmi_opts / sizeof *rmi_opts,
    .main = rmi_main,
};
