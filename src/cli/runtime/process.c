/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime spec's process privileges and limits (capabilities,
 * rlimits, user.additionalGids, noNewPrivileges, oomScoreAdj) as the
 * guest applies them (struct ctrj_proc, guest/procsec.c), for the
 * workload (config.json) and for exec (process.json); the pids limit. */
#include "runtime.h"

#include "ctrj/protocol.h"

#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/resource.h>

#define NAMED(x)                                                                                   \
	{                                                                                          \
#x, x                                                                              \
	}
static const struct {
	const char *name;
	int value;
} cap_names[] = {
    NAMED(CAP_CHOWN),
    NAMED(CAP_DAC_OVERRIDE),
    NAMED(CAP_DAC_READ_SEARCH),
    NAMED(CAP_FOWNER),
    NAMED(CAP_FSETID),
    NAMED(CAP_KILL),
    NAMED(CAP_SETGID),
    NAMED(CAP_SETUID),
    NAMED(CAP_SETPCAP),
    NAMED(CAP_LINUX_IMMUTABLE),
    NAMED(CAP_NET_BIND_SERVICE),
    NAMED(CAP_NET_BROADCAST),
    NAMED(CAP_NET_ADMIN),
    NAMED(CAP_NET_RAW),
    NAMED(CAP_IPC_LOCK),
    NAMED(CAP_IPC_OWNER),
    NAMED(CAP_SYS_MODULE),
    NAMED(CAP_SYS_RAWIO),
    NAMED(CAP_SYS_CHROOT),
    NAMED(CAP_SYS_PTRACE),
    NAMED(CAP_SYS_PACCT),
    NAMED(CAP_SYS_ADMIN),
    NAMED(CAP_SYS_BOOT),
    NAMED(CAP_SYS_NICE),
    NAMED(CAP_SYS_RESOURCE),
    NAMED(CAP_SYS_TIME),
    NAMED(CAP_SYS_TTY_CONFIG),
    NAMED(CAP_MKNOD),
    NAMED(CAP_LEASE),
    NAMED(CAP_AUDIT_WRITE),
    NAMED(CAP_AUDIT_CONTROL),
    NAMED(CAP_SETFCAP),
    NAMED(CAP_MAC_OVERRIDE),
    NAMED(CAP_MAC_ADMIN),
    NAMED(CAP_SYSLOG),
    NAMED(CAP_WAKE_ALARM),
    NAMED(CAP_BLOCK_SUSPEND),
    NAMED(CAP_AUDIT_READ),
    {"CAP_PERFMON", 38},
    {"CAP_BPF", 39},
    {"CAP_CHECKPOINT_RESTORE", 40},
};

static const struct {
	const char *name;
	int value;
} rlimit_names[] = {
    NAMED(RLIMIT_CPU),      NAMED(RLIMIT_FSIZE), NAMED(RLIMIT_DATA),   NAMED(RLIMIT_STACK),
    NAMED(RLIMIT_CORE),     NAMED(RLIMIT_RSS),   NAMED(RLIMIT_NPROC),  NAMED(RLIMIT_NOFILE),
    NAMED(RLIMIT_MEMLOCK),  NAMED(RLIMIT_AS),    NAMED(RLIMIT_LOCKS),  NAMED(RLIMIT_SIGPENDING),
    NAMED(RLIMIT_MSGQUEUE), NAMED(RLIMIT_NICE),  NAMED(RLIMIT_RTPRIO), NAMED(RLIMIT_RTTIME),
};

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* One capability set (an array of names); names this runtime does not
 * know are logged and left out, as runc does. */
static uint64_t cap_set(json_object *caps, const char *set)
{
	json_object *list = member(caps, set);
	uint64_t mask = 0;

	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(list, i));
		size_t k = 0;
		while (name && k < sizeof cap_names / sizeof *cap_names &&
		       strcasecmp(cap_names[k].name, name) != 0)
			k++;
		if (name && k < sizeof cap_names / sizeof *cap_names)
			mask |= 1ull << cap_names[k].value;
		else
			rt_log("warning", "unknown capability %s in %s: left out",
			       name ? name : "?", set);
	}
	return mask;
}

static int rlimits(json_object *list, struct ctrj_proc *p, struct cj_err *err)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *rl = json_object_array_get_idx(list, i);
		const char *type = json_object_get_string(member(rl, "type"));
		size_t k = 0;
		while (type && k < sizeof rlimit_names / sizeof *rlimit_names &&
		       strcmp(rlimit_names[k].name, type) != 0)
			k++;
		if (!type || k == sizeof rlimit_names / sizeof *rlimit_names)
			return cj_fail(err, 0,
			               "process.rlimits: unknown type %s: give RLIMIT_NOFILE...",
			               type ? type : "(none)");
		if (p->nrlimits == CTRJ_MAX_RLIMITS)
			return cj_fail(err, 0, "process.rlimits: %s given twice", type);
		p->rlimits[p->nrlimits++] = (struct ctrj_rlimit){
		    (uint32_t)rlimit_names[k].value, json_object_get_uint64(member(rl, "soft")),
		    json_object_get_uint64(member(rl, "hard"))};
	}
	return 0;
}

int rt_process_proc(json_object *proc, struct ctrj_proc *p, struct cj_err *err)
{
	json_object *caps = member(proc, "capabilities"), *rl = member(proc, "rlimits");
	json_object *gids = member(member(proc, "user"), "additionalGids"), *oom;

	memset(p, 0, sizeof *p);
	if (caps) {
		p->flags |= CTRJ_PROC_CAPS;
		p->cap_bounding = cap_set(caps, "bounding");
		p->cap_effective = cap_set(caps, "effective");
		p->cap_permitted = cap_set(caps, "permitted");
		p->cap_inheritable = cap_set(caps, "inheritable");
		p->cap_ambient = cap_set(caps, "ambient");
	}
	if (rl && rlimits(rl, p, err) < 0)
		return -1;
	if (gids) {
		if (json_object_array_length(gids) > CTRJ_MAX_GROUPS)
			return cj_fail(err, 0, "process.user.additionalGids: at most %u groups",
			               CTRJ_MAX_GROUPS);
		p->flags |= CTRJ_PROC_GROUPS;
		p->ngroups = (uint32_t)json_object_array_length(gids);
		for (uint32_t i = 0; i < p->ngroups; i++)
			p->groups[i] =
			    (uint32_t)json_object_get_int64(json_object_array_get_idx(gids, i));
	}
	if (json_object_get_boolean(member(proc, "noNewPrivileges")))
		p->flags |= CTRJ_PROC_NO_NEW_PRIVS;
	if ((oom = member(proc, "oomScoreAdj"))) {
		int64_t v = json_object_get_int64(oom);
		if (v < -1000 || v > 1000)
			return cj_fail(err, 0, "process.oomScoreAdj %lld: give -1000 to 1000",
			               (long long)v);
		p->flags |= CTRJ_PROC_OOM;
		p->oom_score_adj = (int32_t)v;
	}
	if (!ctrj_proc_valid(p))
		return cj_fail(err, 0,
		               "process.rlimits: a soft limit above its hard one, or a "
		               "type given twice");
	return 0;
}

uint64_t rt_pids_limit(json_object *config)
{
	json_object *pids = member(member(member(config, "linux"), "resources"), "pids");
	int64_t limit = json_object_get_int64(member(pids, "limit"));

	return limit > 0 ? (uint64_t)limit : 0; /* 0 and -1: no limit */
}
