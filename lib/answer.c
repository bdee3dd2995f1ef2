/* SPDX-License-Identifier: MIT */
/*
 * answer.c - the public ways to answer: by handle, by (device, PASID, PRG
 * index) as a guest does, and INVALID in bulk for a device. Each ends
 * groups through iopf__group_end() and nothing else.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Unlock, wake the loop so the answer is written, deliver producer
 * answers. */
static int answered(struct iopf_ctx *ctx, int rc)
{
	/* An answer from outside the dispatching thread wakes the loop so
	 * the batch is written without waiting for the next fault. */
	if (rc >= 0 && iopf__dispatch_ctx != ctx)
		iopf__wake(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver(ctx);
	return rc;
}

static int refused(struct iopf_ctx *ctx, int err, const char *what,
		   uint32_t dev, uint32_t prgi)
{
	ctx->st.refused_answers++;
	iopf__log(ctx, LOG_I, "answer %s (dev %u prgi %u) refused: %s", what,
		  dev, prgi, strerror(-err));
	pthread_mutex_unlock(&ctx->lock);
	return err;
}

IOPF_API int iopf_respond(struct iopf_ctx *ctx, iopf_handle_t h,
			  enum iopf_code code)
{
	struct iopf_group *g;
	int err = 0;

	if (!ctx || (code != IOPF_CODE_SUCCESS && code != IOPF_CODE_INVALID))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	g = iopf__group_from_handle(ctx, h, &err);
	if (!g)
		return refused(ctx, err, "by handle", 0, 0);
	iopf__group_end(ctx, g, (int)code, END_ANSWERED);
	return answered(ctx, 0);
}

/* How many handles ahead iopf_respond_many() prefetches a group. */
#define PREFETCH_AHEAD 8

/* End the k groups gathered by iopf_respond_many(), all live. */
static void end_gathered(struct iopf_ctx *ctx, struct iopf_group **gs,
			 const int *codes, unsigned int k)
{
	for (unsigned int i = 0; i < k; i++)
		gs[i]->gathered = false;
	if (k)
		iopf__group_end_many(ctx, gs, codes, k);
}

IOPF_API int iopf_respond_many(struct iopf_ctx *ctx,
			       const iopf_handle_t *handles, const int *codes,
			       size_t n, int *results)
{
	/* ended ENDS at a time: the sources told once a run of them, not
	 * once a group */
	enum { ENDS = 64 };
	struct iopf_group *gs[ENDS];
	int cs[ENDS], done = 0;
	unsigned int k = 0;

	if (!ctx || (n && (!handles || !codes)))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	for (size_t i = 0; i < n; i++) {
		struct iopf_group *g;
		int err = -EINVAL;

		/* the group a few handles on, on its way into the cache
		 * while these are looked up (answers in random order: a miss
		 * each otherwise) */
		if (i + PREFETCH_AHEAD < n) {
			uint32_t idx = (uint32_t)handles[i + PREFETCH_AHEAD];

			if (idx && idx <= ctx->nslots)
				__builtin_prefetch(iopf__slot(ctx, idx - 1), 1);
		}
		if (codes[i] == IOPF_CODE_SUCCESS || codes[i] == IOPF_CODE_INVALID) {
			g = iopf__group_from_handle(ctx, handles[i], &err);
			/* the same handle twice: the second finds its group
			 * ended once those gathered are */
			if (g && g->gathered) {
				end_gathered(ctx, gs, cs, k);
				k = 0;
				g = iopf__group_from_handle(ctx, handles[i], &err);
			}
			if (g) {
				g->gathered = true;
				gs[k] = g;
				cs[k++] = codes[i];
				err = 0;
				done++;
			}
		}
		if (err)
			ctx->st.refused_answers++;
		if (results)
			results[i] = err;
		if (k == ENDS) {
			end_gathered(ctx, gs, cs, k);
			k = 0;
		}
	}
	end_gathered(ctx, gs, cs, k);
	return answered(ctx, done);
}

/* Per-device matching flags (iopf_ctx_set_device_flags()), stored as the
 * table's pointer value: DF_SET keeps it non-NULL. */
#define DF_SET (1u << 31)
#define DF_LOGGED (1u << 30) /* the one unmatched answer was logged */
#define DF_PUBLIC (IOPF_DEV_PRG_PASID_OPTIONAL | IOPF_DEV_LOG_UNMATCHED)

static unsigned int dev_flags(struct iopf_ctx *ctx, uint32_t dev)
{
	return ctx->devflags.n ?
		(unsigned int)(uintptr_t)tbl_get(&ctx->devflags, dev, 0) : 0;
}

/* The oldest group of (dev, any PASID, prgi) still open to an answer: a
 * function whose responses carry no PASID. A walk, not the index (keyed
 * by PASID); only devices set PASID-optional pay for it. */
/* The oldest answerable group of (dev, any PASID, prgi): the oldest of
 * each PASID's (the PRG index) over the device's flows that name groups,
 * so the cost follows the device's PASIDs, not the groups outstanding.
 * Groups in the fallback flow (taken in without memory for a flow of
 * their own) can be of any device: then every group is looked at. */
static struct iopf_group *oldest_walk(struct iopf_ctx *ctx, uint32_t dev,
				      uint32_t prgi)
{
	struct iopf_group *g, *best = NULL;

	FOR_EACH_LIVE(ctx, i, g) {
		if (g->key.dev_id != dev || g->key.prgi != prgi ||
		    !gst_answerable(gst(g)))
			continue;
		if (!best || (int32_t)(g->seq - best->seq) < 0)
			best = g;
	}
	return best;
}

/* The oldest answerable group of (dev, any PASID, prgi): the oldest of
 * each PASID's (the PRG index) over the device's flows that name groups,
 * so the cost follows the device's PASIDs, not the groups outstanding.
 * Groups in the fallback flow (taken in without memory for a flow of
 * their own) can be of any device, and the index may find no memory:
 * then every group is looked at. */
static struct iopf_group *oldest_any_pasid(struct iopf_ctx *ctx, uint32_t dev,
					   uint32_t prgi)
{
	struct iopf_group *g, *best = NULL;

	if (ctx->sched.fallback.refs > 1)
		return oldest_walk(ctx, dev, prgi);
	for (uint32_t i = 1; i < ctx->sched.nflows; i++) {
		const struct flow *f = ctx->sched.flows[i];
		struct prg_key k = { .dev_id = dev, .pasid = (uint32_t)f->key,
				     .prgi = prgi };
		int err;

		if (!f->refs || (uint32_t)(f->key >> 32) != dev)
			continue;
		if ((err = iopf__group_by_prg(ctx, &k, &g)) == -ENOMEM)
			return oldest_walk(ctx, dev, prgi);
		if (err)
			continue;
		if (!best || (int32_t)(g->seq - best->seq) < 0)
			best = g;
	}
	return best;
}

IOPF_API int iopf_respond_prg(struct iopf_ctx *ctx, uint32_t dev_id,
			      uint32_t pasid, uint32_t prgi,
			      enum iopf_code code)
{
	struct prg_key k = { .dev_id = dev_id, .pasid = pasid, .prgi = prgi };
	struct iopf_group *g;
	unsigned int df;
	int err;

	if (!ctx || (code != IOPF_CODE_SUCCESS && code != IOPF_CODE_INVALID))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	if (ctx->ngone && iopf__dev_is_gone(ctx, dev_id))
		return refused(ctx, -ENODEV, "by PRG index", dev_id, prgi);
	df = dev_flags(ctx, dev_id);
	if ((df & IOPF_DEV_PRG_PASID_OPTIONAL) && pasid == IOPF_NO_PASID) {
		g = oldest_any_pasid(ctx, dev_id, prgi);
		err = g ? 0 : -ENOENT;
	} else {
		err = iopf__group_by_prg(ctx, &k, &g);
	}
	if (err) {
		if (err == -ENOENT)
			ctx->st.unmatched_answers++;
		if (err == -ENOENT && (df & IOPF_DEV_LOG_UNMATCHED) &&
		    !(df & DF_LOGGED)) {
			/* replaces in place: cannot fail */
			tbl_put(&ctx->devflags, dev_id, 0,
				(void *)(uintptr_t)(df | DF_LOGGED));
			iopf__log(ctx, LOG_W,
				  "dev %u: guest answer (pasid %#x prgi %u) matches no outstanding group; later ones of this device are only counted",
				  dev_id, pasid, prgi);
		}
		return refused(ctx, err, "by PRG index", dev_id, prgi);
	}
	iopf__group_end(ctx, g, (int)code, END_ANSWERED);
	return answered(ctx, 0);
}

IOPF_API int iopf_ctx_set_device_flags(struct iopf_ctx *ctx, uint32_t dev_id,
				       unsigned int flags)
{
	int rc = 0;

	if (!ctx || (flags & ~DF_PUBLIC))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	if (!flags)
		tbl_del(&ctx->devflags, dev_id, 0);
	else
		rc = tbl_put(&ctx->devflags, dev_id, 0,
			     (void *)(uintptr_t)(flags | DF_SET));
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

IOPF_API int iopf_ctx_answer_invalid(struct iopf_ctx *ctx, uint32_t dev_id,
				     uint32_t pasid, unsigned int flags)
{
	int n;

	if (!ctx || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	n = iopf__groups_end_matching(ctx, NULL, dev_id, pasid, flags,
				      IOPF_CODE_INVALID, END_CLOSED, NULL);
	for (struct iopf_source *s = ctx->sources; s; s = s->next)
		if (s->ops->discard)
			s->ops->discard(ctx, s, dev_id, pasid, flags);
	if (n)
		iopf__log(ctx, LOG_I, "dev %u: %d outstanding groups answered INVALID",
			  dev_id, n);
	return answered(ctx, n);
}
