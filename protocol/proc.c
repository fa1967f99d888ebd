/* SPDX-License-Identifier: Apache-2.0 */
/* A process's privileges and limits (struct ctrj_proc) as records: the
 * payloads the control disk (ctl.c) and the agent's START (agent.c) share,
 * each under its own record numbers. */
#include "ctrj/protocol.h"
#include "wire.h"

#include <string.h>

int ctrj_proc_encode(const struct ctrj_proc *p, uint16_t first,
                     int (*put)(void *ctx, uint16_t type, const void *v, size_t n), void *ctx)
{
	uint8_t b[4 * CTRJ_MAX_GROUPS];
	int r = 0;

	if (p->flags & CTRJ_PROC_CAPS) {
		const uint64_t sets[5] = {p->cap_bounding, p->cap_effective, p->cap_permitted,
		                          p->cap_inheritable, p->cap_ambient};
		for (int i = 0; i < 5; i++)
			put_le64(b + 8 * i, sets[i]);
		r = put(ctx, first + CTRJ_PROC_REC_CAPS - 1, b, 40);
	}
	for (uint32_t i = 0; r == 0 && i < p->nrlimits && i < CTRJ_MAX_RLIMITS; i++) {
		put_le32(b, p->rlimits[i].resource);
		put_le64(b + 4, p->rlimits[i].soft);
		put_le64(b + 12, p->rlimits[i].hard);
		r = put(ctx, first + CTRJ_PROC_REC_RLIMIT - 1, b, 20);
	}
	if (r == 0 && (p->flags & CTRJ_PROC_GROUPS)) {
		uint32_t n = p->ngroups < CTRJ_MAX_GROUPS ? p->ngroups : CTRJ_MAX_GROUPS;
		for (uint32_t i = 0; i < n; i++)
			put_le32(b + 4 * i, p->groups[i]);
		r = put(ctx, first + CTRJ_PROC_REC_GROUPS - 1, b, 4 * (size_t)n);
	}
	if (r == 0 && (p->flags & CTRJ_PROC_WIRE_FLAGS)) {
		put_le32(b, p->flags & CTRJ_PROC_WIRE_FLAGS);
		put_le32(b + 4, (uint32_t)p->oom_score_adj);
		r = put(ctx, first + CTRJ_PROC_REC_FLAGS - 1, b, 8);
	}
	return r;
}

static int parse_rlimit(struct ctrj_proc *p, const uint8_t *v, size_t n, char *err, size_t errlen)
{
	struct ctrj_rlimit rl;

	if (n != 20)
		return wire_fail(err, errlen, "rlimit record has length %zu, want 20", n);
	rl.resource = get_le32(v);
	rl.soft = get_le64(v + 4);
	rl.hard = get_le64(v + 12);
	if (rl.resource >= CTRJ_MAX_RLIMITS || rl.soft > rl.hard)
		return wire_fail(err, errlen, "rlimit %u out of range (or soft above hard)",
		                 rl.resource);
	for (uint32_t i = 0; i < p->nrlimits; i++)
		if (p->rlimits[i].resource == rl.resource)
			return wire_fail(err, errlen, "rlimit %u given twice", rl.resource);
	p->rlimits[p->nrlimits++] = rl; /* at most one a resource: fits */
	return 0;
}

int ctrj_proc_parse(struct ctrj_proc *p, enum ctrj_proc_rec kind, const uint8_t *v, size_t n,
                    char *err, size_t errlen)
{
	switch (kind) {
	case CTRJ_PROC_REC_CAPS:
		if (n != 40 || (p->flags & CTRJ_PROC_CAPS))
			return wire_fail(err, errlen, "invalid or duplicate capabilities record");
		p->cap_bounding = get_le64(v);
		p->cap_effective = get_le64(v + 8);
		p->cap_permitted = get_le64(v + 16);
		p->cap_inheritable = get_le64(v + 24);
		p->cap_ambient = get_le64(v + 32);
		p->flags |= CTRJ_PROC_CAPS;
		return 0;
	case CTRJ_PROC_REC_RLIMIT:
		return parse_rlimit(p, v, n, err, errlen);
	case CTRJ_PROC_REC_GROUPS:
		if (n % 4 || n / 4 > CTRJ_MAX_GROUPS || (p->flags & CTRJ_PROC_GROUPS))
			return wire_fail(err, errlen, "invalid or duplicate groups record");
		p->ngroups = (uint32_t)(n / 4);
		for (uint32_t i = 0; i < p->ngroups; i++)
			p->groups[i] = get_le32(v + 4 * i);
		p->flags |= CTRJ_PROC_GROUPS;
		return 0;
	case CTRJ_PROC_REC_FLAGS: {
		uint32_t f = n == 8 ? get_le32(v) : 0;
		int32_t oom = n == 8 ? (int32_t)get_le32(v + 4) : 0;
		if (n != 8 || !f || (f & ~CTRJ_PROC_WIRE_FLAGS) ||
		    (p->flags & CTRJ_PROC_WIRE_FLAGS) || oom < -1000 || oom > 1000 ||
		    (!(f & CTRJ_PROC_OOM) && oom))
			return wire_fail(err, errlen, "invalid or duplicate process flags record");
		p->flags |= f;
		p->oom_score_adj = oom;
		return 0;
	}
	}
	return wire_fail(err, errlen, "unknown process record %d", (int)kind);
}

bool ctrj_proc_valid(const struct ctrj_proc *p)
{
	bool seen[CTRJ_MAX_RLIMITS] = {false};

	if ((p->flags & ~(CTRJ_PROC_CAPS | CTRJ_PROC_GROUPS | CTRJ_PROC_WIRE_FLAGS)) ||
	    p->ngroups > CTRJ_MAX_GROUPS || p->nrlimits > CTRJ_MAX_RLIMITS ||
	    p->oom_score_adj < -1000 || p->oom_score_adj > 1000 ||
	    (!(p->flags & CTRJ_PROC_OOM) && p->oom_score_adj) ||
	    (!(p->flags & CTRJ_PROC_GROUPS) && p->ngroups))
		return false;
	for (uint32_t i = 0; i < p->nrlimits; i++) {
		const struct ctrj_rlimit *rl = &p->rlimits[i];
		if (rl->resource >= CTRJ_MAX_RLIMITS || seen[rl->resource] || rl->soft > rl->hard)
			return false;
		seen[rl->resource] = true;
	}
	return true;
}
