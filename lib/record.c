/* SPDX-License-Identifier: MIT */
/*
 * record.c - the whole of a record, for handlers that need more than
 * struct iopf_record (fixed for ABI 1) carries: every field the kernel
 * gives, through a size-prefixed struct that can grow.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define KNOWN_PERM (IOPF_PERM_READ | IOPF_PERM_WRITE | IOPF_PERM_EXEC | \
		    IOPF_PERM_PRIV)

IOPF_API int iopf_group_record_info(const struct iopf_group *g, size_t idx,
				    struct iopf_record_info *info)
{
	struct iopf_group *gg = (struct iopf_group *)g;
	struct iopf_record_info cur;
	const struct iopf_record *r;
	size_t n;

	if (!g || !info || info->sz < offsetofend(struct iopf_record_info, flags))
		return -EINVAL;
	grp_checked(g);
	if (idx >= g->nrec)
		return -ERANGE;
	r = &grp_rec(gg)[idx];
	cur = (struct iopf_record_info){
		.sz = info->sz,
		.flags = r->flags,
		.dev_id = g->key.dev_id,
		.pasid = g->key.pasid,
		.prgi = g->key.prgi,
		.perm = r->perm & KNOWN_PERM,
		.length = grp_len(gg)[idx],
		.addr = r->addr,
		.cookie = g->cookie,
		.raw_perm = r->perm,
	};
	/* An older, smaller struct gets the fields it has; a newer, larger
	 * one gets zero in the fields this release does not know. */
	n = info->sz < sizeof(cur) ? info->sz : sizeof(cur);
	if (info->sz > sizeof(cur))
		memset((char *)info + sizeof(cur), 0, info->sz - sizeof(cur));
	memcpy(info, &cur, n);
	return 0;
}
