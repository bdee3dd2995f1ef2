/* SPDX-License-Identifier: MIT */
/*
 * deliver.c - callbacks that run outside the context lock: producers'
 * respond callbacks and the cancel callback. Answers wait on a list of
 * their own context (not of the thread), so answering on one context from
 * a callback of another never runs the first one's callbacks.
 */
#include "internal.h"

/* ctx->lock held. g has ended; it stays pinned until delivered. */
void iopf__deliver_push(struct iopf_ctx *ctx, struct iopf_group *g)
{
	g->pins++;
	g->dnext = NULL;
	if (ctx->deliv_tail)
		ctx->deliv_tail->dnext = g;
	else /* atomic: iopf__deliver() looks without the lock */
		__atomic_store_n(&ctx->deliv_head, g, __ATOMIC_RELAXED);
	ctx->deliv_tail = g;
}

static void deliver_all(struct iopf_ctx *ctx);

/* iopf__deliver() when something looked due: the respond callbacks of
 * every answer waiting, then the destroy callbacks due (a producer's,
 * once its last answer went). No lock held. */
void iopf__deliver_due(struct iopf_ctx *ctx)
{
	deliver_all(ctx);
	iopf__reap(ctx);
}

static void deliver_all(struct iopf_ctx *ctx)
{
	for (;;) {
		struct iopf_group *list, *g, *nx;

		/* Most calls have nothing to deliver: no lock for them. An
		 * answer pushed after this look is delivered by its pusher. */
		if (!__atomic_load_n(&ctx->deliv_head, __ATOMIC_RELAXED))
			return;
		pthread_mutex_lock(&ctx->lock);
		list = ctx->deliv_head;
		__atomic_store_n(&ctx->deliv_head, NULL, __ATOMIC_RELAXED);
		ctx->deliv_tail = NULL;
		pthread_mutex_unlock(&ctx->lock);
		if (!list)
			return;
		iopf__in_callback++;
		for (g = list; g; g = g->dnext) {
			const struct producer *p = (const struct producer *)g->src;
			struct iopf_response r = {
				.dev_id = g->key.dev_id,
				.pasid = g->key.pasid,
				.prgi = g->key.prgi,
				.code = g->code,
			};

			/* g->src stays allocated while g is pinned */
			p->respond(&r, p->respond_ud);
		}
		iopf__in_callback--;
		pthread_mutex_lock(&ctx->lock);
		for (g = list; g; g = nx) {
			nx = g->dnext;
			g->dnext = NULL;
			iopf__group_unpin(ctx, g);
		}
		pthread_mutex_unlock(&ctx->lock);
	}
}

/* Merge sort of a qnext list by intake number: O(n log n), no memory. */
static struct iopf_group *sort_by_intake(struct iopf_group *list)
{
	struct iopf_group *a = NULL, *b = NULL, **tail, *g, *nx;
	bool to_a = true;

	if (!list || !list->qnext)
		return list;
	for (g = list; g; g = nx, to_a = !to_a) { /* split */
		nx = g->qnext;
		if (to_a) {
			g->qnext = a;
			a = g;
		} else {
			g->qnext = b;
			b = g;
		}
	}
	a = sort_by_intake(a);
	b = sort_by_intake(b);
	for (tail = &list; a && b; tail = &(*tail)->qnext) { /* merge */
		struct iopf_group **min = (int32_t)(a->seq - b->seq) <= 0 ? &a : &b;

		*tail = *min;
		*min = (*min)->qnext;
	}
	*tail = a ? a : b;
	return list;
}

/* Call the cancel callback for each group on the list (chained through
 * qnext, newest first), then let them go. No lock held on entry. */
void iopf__cancel_deliver(struct iopf_ctx *ctx, struct iopf_group *list)
{
	struct iopf_group *g, *nx;
	struct binding *b;

	if (!list)
		return;
	/* Call back in the order groups came in (gathered in slot order). */
	list = sort_by_intake(list);
	pthread_mutex_lock(&ctx->lock);
	b = iopf__cancel_get(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__in_callback++;
	for (g = list; g; g = g->qnext) {
		IOPF_TRACE_CANCEL(g);
		if (b)
			b->cancel(g, b->ud);
	}
	iopf__in_callback--;
	pthread_mutex_lock(&ctx->lock);
	for (g = list; g; g = nx) {
		nx = g->qnext;
		g->qnext = NULL;
		iopf__group_unpin(ctx, g);
	}
	iopf__binding_put(ctx, b);
	pthread_mutex_unlock(&ctx->lock);
	iopf__reap(ctx);
}
