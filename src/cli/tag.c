/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer tag SRC DST: another name for a stored image. */
#include "cli.h"

#include "registry/ref.h"
#include "registry/store.h"

#include <string.h>

static int tag_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_store st;
	struct cj_store_entry e;
	struct cj_reg_ref ref;
	struct cj_err err = {0};
	int first, r = cli_parse_args(verb, NULL, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first + 2 != argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	cj_store_paths(cli_cache_dir(), &st);
	if ((r = cj_store_find(&st, argv[first], &e, &err)) <= 0) {
		if (r == 0)
			cj_fail(&err, 0, "image '%s' is not stored (see 'ctr-jailer images')",
			        argv[first]);
		return cli_report(&err, CJ_EXIT_RUNTIME);
	}
	if (cj_reg_ref_parse(argv[first + 1], &ref, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	if (ref.digest[0])
		return cli_report(
		    &(struct cj_err){.msg = "a tag cannot name a digest: give NAME[:TAG]"},
		    CJ_EXIT_RUNTIME);
	cj_reg_ref_str(&ref, e.name, sizeof e.name);
	if (cj_store_set_name(&st, &e, false, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	return 0;
}

const struct cli_verb cli_tag_verb = {
    .name = "tag",
    .usage = "tag SOURCE TARGET",
    .about = "Give a stored image another name (TARGET is normalized as a registry "
             "reference: 'app' is docker.io/library/app:latest). An image of that name "
             "loses it.",
    .main = tag_main,
};
