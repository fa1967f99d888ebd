/* SPDX-License-Identifier: Apache-2.0 */
#include "undo.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

int cj_undo_push(struct cj_undo *u, const char *kind, json_object *entry, struct cj_err *err)
{
	if (!entry)
		entry = json_object_new_object();
	if (!u) {
		json_object_put(entry);
		return 0;
	}
	if (!entry || !json_object_is_type(entry, json_type_object)) {
		json_object_put(entry);
		return cj_fail(err, EINVAL, "undo entry %s: not an object", kind);
	}
	json_object *k = json_object_new_string(kind);
	if (!k || json_object_object_add(entry, "kind", k) < 0 ||
	    json_object_array_add(u->log, entry) < 0) {
		json_object_put(k);
		json_object_put(entry);
		return cj_fail(err, ENOMEM, "undo entry %s", kind);
	}
	if (u->save && u->save(u->ctx, err) < 0) {
		/* Not persisted: the stage will not make the change. */
		json_object_array_del_idx(u->log, json_object_array_length(u->log) - 1, 1);
		return cj_err_wrap(err, "record %s", kind);
	}
	return 0;
}

int cj_undo_each_run(struct cj_undo *u, int (*fn)(json_object *record, void *arg), void *arg,
                     struct cj_err *err)
{
	return u && u->each_run ? u->each_run(u->ctx, fn, arg, err) : 0;
}

int cj_undo_lock(struct cj_undo *u, const char *name, struct cj_err *err)
{
	int fd;

	if (u && u->lock)
		return u->lock(u->ctx, name, err);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd < 0 ? cj_fail(err, errno, "open /dev/null") : fd;
}

const char *cj_undo_str(json_object *entry, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(entry, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool cj_undo_int(json_object *entry, const char *key, long long *out)
{
	json_object *v;

	if (!json_object_object_get_ex(entry, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = (long long)json_object_get_int64(v);
	return true;
}

static cj_undo_fn find_kind(const struct cj_undo_kind *kinds, const char *kind)
{
	size_t n;

	if (!kind)
		return NULL;
	n = strcspn(kind, ".");
	for (; kinds && kinds->module; kinds++)
		if (strlen(kinds->module) == n && strncmp(kinds->module, kind, n) == 0)
			return kinds->replay;
	return NULL;
}

int cj_undo_replay(json_object *log, const struct cj_undo_kind *kinds, bool verbose)
{
	return cj_undo_replay_from(log, 0, kinds, verbose);
}

int cj_undo_replay_from(json_object *log, size_t from, const struct cj_undo_kind *kinds,
                        bool verbose)
{
	size_t n;
	int left = 0;

	if (!log || !json_object_is_type(log, json_type_array))
		return 0;
	n = json_object_array_length(log);
	while (n-- > from) {
		json_object *entry = json_object_array_get_idx(log, n);
		const char *kind = json_object_is_type(entry, json_type_object)
		                       ? cj_undo_str(entry, "kind")
		                       : NULL;
		cj_undo_fn fn = find_kind(kinds, kind);

		if (!fn) {
			cj_notice(
			    "warning: run record: an undo entry of unknown kind \"%s\" is kept",
			    kind ? kind : "?");
			left++;
		} else if (fn(entry, verbose) < 0) {
			left++;
		} else {
			json_object_array_del_idx(log, n, 1);
		}
	}
	return left;
}
