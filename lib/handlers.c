/* SPDX-License-Identifier: MIT */
/*
 * handlers.c - the callbacks a context calls, and when their userdata may
 * go. A callback is set as a binding (function, userdata, destroy) with
 * one reference while installed and one per call running, counted under
 * ctx->lock. Replacing a binding drops the installed reference; the last
 * reference queues it on ctx->dead, and iopf__reap() calls its destroy
 * with no lock held. iopf_ctx_quiesce() waits for all of that.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

#define DEVICE_ANY 0xfffffffeu /* handler key: every PASID of a device */

struct binding *iopf__binding_new(enum bkind kind, void (*fn)(void),
				  void *ud, iopf_destroy_fn destroy)
{
	struct binding *b = xcalloc(1, sizeof(*b));

	if (b) {
		b->any = fn;
		b->kind = (uint8_t)kind;
		b->ud = ud;
		b->destroy = destroy;
		b->refs = 1;
	}
	return b;
}

/* The last reference went (iopf__binding_put()): retired, to destroy. */
void iopf__binding_free(struct iopf_ctx *ctx, struct binding *b)
{
	if (b->retired) {
		ctx->retired_busy--;
		pthread_cond_broadcast(&ctx->quiesced);
	}
	b->next = ctx->dead;
	/* atomic: iopf__reap() looks without the lock */
	__atomic_store_n(&ctx->dead, b, __ATOMIC_RELAXED);
}

/* ctx->lock held: the installed binding *slot is replaced by nb. */
static void replace(struct iopf_ctx *ctx, struct binding **slot,
		    struct binding *nb)
{
	struct binding *old = *slot;

	*slot = nb;
	/* The same userdata set again with the same destroy: the new binding
	 * owns it now, the old one must not destroy it. */
	if (old && nb && old->ud == nb->ud && old->destroy == nb->destroy)
		old->destroy = NULL;
	if (old) {
		if (old->refs > 1) { /* running somewhere: quiesce waits */
			old->retired = true;
			ctx->retired_busy++;
		}
		iopf__binding_put(ctx, old);
	}
}

struct binding *iopf__handler_keyed(struct iopf_ctx *ctx, const struct prg_key *k)
{
	struct binding *b = tbl_get(&ctx->handlers, key_hi(k), 0);

	return b ? b : tbl_get(&ctx->handlers,
			       (uint64_t)k->dev_id << 32 | DEVICE_ANY, 0);
}

struct binding *iopf__cancel_get(struct iopf_ctx *ctx)
{
	struct binding *b = ctx->cancel_b;

	if (b)
		b->refs++;
	return b;
}

void iopf__reap(struct iopf_ctx *ctx)
{
	struct binding *list, *b;

	if (!__atomic_load_n(&ctx->dead, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&ctx->lock);
	list = ctx->dead;
	__atomic_store_n(&ctx->dead, NULL, __ATOMIC_RELAXED);
	if (list)
		ctx->reaping++;
	pthread_mutex_unlock(&ctx->lock);
	if (!list)
		return;
	iopf__in_callback++;
	for (b = list; b; b = b->next)
		if (b->destroy)
			b->destroy(b->ud);
	iopf__in_callback--;
	pthread_mutex_lock(&ctx->lock);
	while ((b = list)) {
		list = b->next;
		free(b);
	}
	ctx->reaping--;
	pthread_cond_broadcast(&ctx->quiesced);
	pthread_mutex_unlock(&ctx->lock);
}

/* Freed context: every binding goes, destroy called (no thread runs). */
void iopf__handlers_free(struct iopf_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	replace(ctx, &ctx->def_b, NULL);
	replace(ctx, &ctx->batch_b, NULL);
	replace(ctx, &ctx->cancel_b, NULL);
	for (uint32_t i = 0; i < ctx->handlers.cap; i++)
		if (ctx->handlers.e[i].v)
			iopf__binding_put(ctx, ctx->handlers.e[i].v);
	tbl_free(&ctx->handlers);
	pthread_mutex_unlock(&ctx->lock);
	iopf__reap(ctx);
}

static int set_global(struct iopf_ctx *ctx, struct binding **slot,
		      enum bkind kind, void (*fn)(void), void *ud,
		      iopf_destroy_fn destroy)
{
	struct binding *b = NULL;

	if (!ctx)
		return -EINVAL;
	if (fn && !(b = iopf__binding_new(kind, fn, ud, destroy)))
		return -ENOMEM;
	pthread_mutex_lock(&ctx->lock);
	replace(ctx, slot, b);
	pthread_mutex_unlock(&ctx->lock);
	iopf__reap(ctx);
	return 0;
}

static int set_keyed(struct iopf_ctx *ctx, uint32_t dev, uint32_t pasid,
		     iopf_handler_fn fn, void *ud, iopf_destroy_fn destroy)
{
	uint64_t key = (uint64_t)dev << 32 | pasid;
	struct binding *b = NULL, *old;
	int rc = 0;

	if (fn && !(b = iopf__binding_new(B_HANDLER, (void (*)(void))fn, ud,
				    destroy)))
		return -ENOMEM;
	pthread_mutex_lock(&ctx->lock);
	old = tbl_get(&ctx->handlers, key, 0);
	if (!b)
		tbl_del(&ctx->handlers, key, 0);
	else if (tbl_put(&ctx->handlers, key, 0, b))
		rc = -ENOMEM;
	if (!rc) {
		if (old && b && old->ud == b->ud && old->destroy == b->destroy)
			old->destroy = NULL; /* as in replace() */
		replace(ctx, &old, NULL);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (rc)
		free(b);
	iopf__reap(ctx);
	return rc;
}

IOPF_API int iopf_ctx_set_handler_full(struct iopf_ctx *ctx,
				       iopf_handler_fn fn, void *userdata,
				       iopf_destroy_fn destroy)
{
	return set_global(ctx, ctx ? &ctx->def_b : NULL, B_HANDLER,
			  (void (*)(void))fn,
			  userdata, destroy);
}

IOPF_API int iopf_ctx_set_handler(struct iopf_ctx *ctx, iopf_handler_fn fn,
				  void *userdata)
{
	return iopf_ctx_set_handler_full(ctx, fn, userdata, NULL);
}

IOPF_API int iopf_ctx_set_batch_handler_full(struct iopf_ctx *ctx,
					     iopf_batch_handler_fn fn,
					     void *userdata,
					     iopf_destroy_fn destroy)
{
	return set_global(ctx, ctx ? &ctx->batch_b : NULL, B_BATCH,
			  (void (*)(void))fn,
			  userdata, destroy);
}

IOPF_API int iopf_ctx_set_batch_handler(struct iopf_ctx *ctx,
					iopf_batch_handler_fn fn, void *userdata)
{
	return iopf_ctx_set_batch_handler_full(ctx, fn, userdata, NULL);
}

IOPF_API int iopf_ctx_set_cancel_handler_full(struct iopf_ctx *ctx,
					      iopf_cancel_fn fn,
					      void *userdata,
					      iopf_destroy_fn destroy)
{
	return set_global(ctx, ctx ? &ctx->cancel_b : NULL, B_CANCEL,
			  (void (*)(void))fn,
			  userdata, destroy);
}

IOPF_API int iopf_ctx_set_cancel_handler(struct iopf_ctx *ctx,
					 iopf_cancel_fn fn, void *userdata)
{
	return iopf_ctx_set_cancel_handler_full(ctx, fn, userdata, NULL);
}

IOPF_API int iopf_ctx_set_device_handler_full(struct iopf_ctx *ctx,
					      uint32_t dev_id,
					      iopf_handler_fn fn,
					      void *userdata,
					      iopf_destroy_fn destroy)
{
	if (!ctx)
		return -EINVAL;
	return set_keyed(ctx, dev_id, DEVICE_ANY, fn, userdata, destroy);
}

IOPF_API int iopf_ctx_set_device_handler(struct iopf_ctx *ctx, uint32_t dev_id,
					 iopf_handler_fn fn, void *userdata)
{
	return iopf_ctx_set_device_handler_full(ctx, dev_id, fn, userdata, NULL);
}

IOPF_API int iopf_ctx_set_pasid_handler_full(struct iopf_ctx *ctx,
					     uint32_t dev_id, uint32_t pasid,
					     iopf_handler_fn fn,
					     void *userdata,
					     iopf_destroy_fn destroy)
{
	if (!ctx || pasid == DEVICE_ANY)
		return -EINVAL;
	return set_keyed(ctx, dev_id, pasid, fn, userdata, destroy);
}

IOPF_API int iopf_ctx_set_pasid_handler(struct iopf_ctx *ctx, uint32_t dev_id,
					uint32_t pasid, iopf_handler_fn fn,
					void *userdata)
{
	return iopf_ctx_set_pasid_handler_full(ctx, dev_id, pasid, fn, userdata,
					       NULL);
}

IOPF_API int iopf_ctx_quiesce(struct iopf_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	if (iopf__in_callback)
		return -EDEADLK;
	iopf__reap(ctx);
	pthread_mutex_lock(&ctx->lock);
	while (ctx->retired_busy || ctx->dead || ctx->reaping) {
		if (ctx->dead && !ctx->reaping) {
			pthread_mutex_unlock(&ctx->lock);
			iopf__reap(ctx);
			pthread_mutex_lock(&ctx->lock);
			continue;
		}
		pthread_cond_wait(&ctx->quiesced, &ctx->lock);
	}
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}
