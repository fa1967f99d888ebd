/* SPDX-License-Identifier: Apache-2.0 */
/* `run`'s storage options beyond volumes: host directories (-v /dir:/path,
 * --mount), --tmpfs and --read-only. */
#include "run.h"

#include "ctrj/protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SPEC(c) (((struct run_ctx *)(c))->spec)

/* Is path already a mount point of the guest (a volume, a host directory,
 * a tmpfs)? */
static bool path_taken(const struct cj_spec *spec, const char *path)
{
	for (size_t i = 0; i < spec->nvolumes; i++)
		if (strcmp(spec->volumes[i].guest_path, path) == 0)
			return true;
	for (size_t i = 0; i < spec->nshares; i++)
		if (strcmp(spec->shares[i].guest_path, path) == 0)
			return true;
	for (size_t i = 0; i < spec->ntmpfs; i++)
		if (strcmp(spec->tmpfs[i].path, path) == 0)
			return true;
	return false;
}

static int add_share(struct cj_spec *spec, struct cj_share_spec *sh, struct cj_err *err)
{
	struct cj_share_spec *n;

	if (spec->nshares >= CJ_MAX_SHARES || path_taken(spec, sh->guest_path)) {
		if (spec->nshares >= CJ_MAX_SHARES)
			cj_fail(err, 0, "too many host directories (at most %d)", CJ_MAX_SHARES);
		else
			cj_fail(err, 0, "two mounts at %s", sh->guest_path);
		cj_share_spec_free(sh);
		return -1;
	}
	if (!(n = realloc(spec->shares, (spec->nshares + 1) * sizeof *n))) {
		cj_share_spec_free(sh);
		return cj_fail(err, ENOMEM, "host directory");
	}
	spec->shares = n;
	n[spec->nshares++] = *sh;
	return 0;
}

int run_add_volume(struct cj_spec *spec, struct cj_volume_spec *vs, struct cj_err *err)
{
	struct cj_share_spec sh;
	struct cj_volume_spec *nv;

	if (cj_share_from_volume(vs, &sh))
		return add_share(spec, &sh, err);
	if (spec->nvolumes >= CTRJ_MAX_VOLUMES || path_taken(spec, vs->guest_path)) {
		if (spec->nvolumes >= CTRJ_MAX_VOLUMES)
			cj_fail(err, 0, "too many volumes (at most %u)", CTRJ_MAX_VOLUMES);
		else
			cj_fail(err, 0, "two volumes are mounted at %s", vs->guest_path);
		cj_volume_spec_free(vs);
		return -1;
	}
	if (!(nv = realloc(spec->volumes, (spec->nvolumes + 1) * sizeof *nv))) {
		cj_volume_spec_free(vs);
		return cj_fail(err, ENOMEM, "volume");
	}
	spec->volumes = nv;
	nv[spec->nvolumes++] = *vs;
	return 0;
}

static int add_tmpfs(struct cj_spec *spec, struct cj_tmpfs_spec *t, struct cj_err *err)
{
	struct cj_tmpfs_spec *n;

	if (spec->ntmpfs >= CTRJ_MAX_MOUNTS - CJ_MAX_SHARES || path_taken(spec, t->path)) {
		if (spec->ntmpfs >= CTRJ_MAX_MOUNTS - CJ_MAX_SHARES)
			cj_fail(err, 0, "too many tmpfs mounts (at most %u)",
			        CTRJ_MAX_MOUNTS - CJ_MAX_SHARES);
		else
			cj_fail(err, 0, "two mounts at %s", t->path);
		cj_tmpfs_spec_free(t);
		return -1;
	}
	if (!(n = realloc(spec->tmpfs, (spec->ntmpfs + 1) * sizeof *n))) {
		cj_tmpfs_spec_free(t);
		return cj_fail(err, ENOMEM, "tmpfs");
	}
	spec->tmpfs = n;
	n[spec->ntmpfs++] = *t;
	return 0;
}

int opt_mount(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_mount_arg m;

	if (cj_mount_arg_parse(v, &m, err) < 0)
		return -1;
	switch (m.type) {
	case CJ_MOUNT_BIND:
		return add_share(SPEC(c), &m.share, err);
	case CJ_MOUNT_VOLUME:
		if (strchr(m.volume.source, '/')) {
			cj_volume_spec_free(&m.volume);
			return cj_fail(err, 0,
			               "--mount '%s': a volume's source is a name (a path "
			               "is type=bind)",
			               v);
		}
		return run_add_volume(SPEC(c), &m.volume, err);
	default:
		return add_tmpfs(SPEC(c), &m.tmpfs, err);
	}
}

int opt_tmpfs(void *c, const char *v, const char *what, struct cj_err *err)
{
	struct cj_tmpfs_spec t;

	if (cj_tmpfs_arg_parse(v, &t, err) < 0)
		return -1;
	return add_tmpfs(SPEC(c), &t, err);
}

int opt_read_only(void *c, const char *v, const char *what, struct cj_err *err)
{
	SPEC(c)->read_only = true;
	return 0;
}
