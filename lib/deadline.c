/* SPDX-License-Identifier: MIT */
/*
 * deadline.c - the outstanding groups in intake order, kept only with a
 * deadline: its oldest live group is the next to expire. A ring of
 * handles, not links in the group (16 bytes a group nobody without a
 * deadline should pay): a group that ends stays in the ring until it
 * reaches the head or the ring is compacted, and is known dead there by
 * its handle (generation changed, or no longer live). ctx->lock held.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* The live group a handle in the ring names, or NULL. */
static struct iopf_group *live(struct iopf_ctx *ctx, iopf_handle_t h)
{
	struct iopf_group *g = iopf__slot(ctx, (uint32_t)h - 1);

	return g->gen == (uint32_t)(h >> 32) && gst_live(gst(g)) ? g : NULL;
}

static iopf_handle_t *at(struct iopf_ctx *ctx, uint32_t i)
{
	return &ctx->dl_ring[(ctx->dl_head + i) & (ctx->dl_cap - 1)];
}

/* Keep the live ones, in order: room without growing when most ended. */
static void compact(struct iopf_ctx *ctx)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < ctx->dl_n; i++) {
		iopf_handle_t h = *at(ctx, i);

		if (live(ctx, h))
			*at(ctx, kept++) = h;
	}
	ctx->dl_n = kept;
}

/* g was just taken in: at the tail. -ENOMEM: it cannot be timed. */
int iopf__deadline_add(struct iopf_ctx *ctx, struct iopf_group *g)
{
	if (ctx->dl_n == ctx->dl_cap) {
		compact(ctx);
		/* still more than half full: twice the room (a power of two,
		 * the ring's order kept) */
		if (!ctx->dl_cap || ctx->dl_n > ctx->dl_cap / 2) {
			uint32_t cap = ctx->dl_cap ? ctx->dl_cap * 2 : 64;
			iopf_handle_t *r = xmalloc(cap * sizeof(*r));

			if (!r) {
				if (ctx->dl_n == ctx->dl_cap)
					return -ENOMEM;
			} else {
				for (uint32_t i = 0; i < ctx->dl_n; i++)
					r[i] = *at(ctx, i);
				free(ctx->dl_ring);
				ctx->dl_ring = r;
				ctx->dl_cap = cap;
				ctx->dl_head = 0;
			}
		}
	}
	*at(ctx, ctx->dl_n++) = grp_handle(g);
	return 0;
}

/* The oldest live group, or NULL; the ended ones before it are dropped. */
struct iopf_group *iopf__deadline_oldest(struct iopf_ctx *ctx)
{
	while (ctx->dl_n) {
		struct iopf_group *g = live(ctx, *at(ctx, 0));

		if (g)
			return g;
		ctx->dl_head = (ctx->dl_head + 1) & (ctx->dl_cap - 1);
		ctx->dl_n--;
	}
	return NULL;
}

void iopf__deadline_free(struct iopf_ctx *ctx)
{
	free(ctx->dl_ring);
	ctx->dl_ring = NULL;
	ctx->dl_cap = ctx->dl_n = ctx->dl_head = 0;
}
