/* SPDX-License-Identifier: MIT */
/*
 * answer.c - the public ways to answer: by handle, by (device, PASID, PRG
 * index) as a guest does, and INVALID in bulk for a device. Each ends
 * groups through iopf__group_end() and nothing else.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "group-inl.h"

/* Unlock, wake the loop so the answer is written, deliver producer
 * answers. */
static IOPF_ALWAYS_INLINE int answered(struct iopf_ctx *ctx, int rc)
{
	/* An answer from outside the dispatching thread wakes the loop so
	 * the batch is written without waiting for the next fault. */
	if (rc >= 0 && iopf__dispatch_ctx != ctx)
		iopf__wake(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver(ctx);
	return rc;
}

/* A refused answer, counted and logged (ctx->lock held): returns err. */
static int refuse(struct iopf_ctx *ctx, int err, const char *what,
		  uint32_t dev, uint32_t prgi)
{
	ctx->st.refused_answers++;
	iopf__log(ctx, LOG_I, "answer %s (dev %u prgi %u) refused: %s", what,
		  dev, prgi, strerror(-err));
	return err;
}

static int refused(struct iopf_ctx *ctx, int err, const char *what,
		   uint32_t dev, uint32_t prgi)
{
	refuse(ctx, err, what, dev, prgi);
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
	g = group_from_handle(ctx, h, &err);
	if (!g)
		return refused(ctx, err, "by handle", 0, 0);
	/* inline: the one-group end specialized for an answer (a runtime
	 * answers each group this way); iopf__group_end() is the same body */
	group_end(ctx, g, (int)code, END_ANSWERED, false);
	return answered(ctx, 0);
}

/* How many handles ahead iopf_respond_many() prefetches a group. */
#define PREFETCH_AHEAD 8

/* The answers of one many-call (by handle or by PRG index), gathered and
 * ended ENDS at a time: their sources are told once a run of them, not
 * once a group. A gathered group is still live: a second answer that
 * finds it ends those gathered first, then looks again. */
#define ENDS 64

struct gather {
	struct iopf_group *gs[ENDS];
	int cs[ENDS];
	unsigned int k;
	int done;
};

/* End the groups gathered so far, all live. */
static void gather_end(struct iopf_ctx *ctx, struct gather *ga)
{
	for (unsigned int i = 0; i < ga->k; i++)
		ga->gs[i]->gathered = false;
	if (ga->k)
		iopf__group_end_many(ctx, ga->gs, ga->cs, ga->k);
	ga->k = 0;
}

static void gather_add(struct iopf_ctx *ctx, struct gather *ga,
		       struct iopf_group *g, int code)
{
	g->gathered = true;
	ga->gs[ga->k] = g;
	ga->cs[ga->k++] = code;
	ga->done++;
	if (ga->k == ENDS)
		gather_end(ctx, ga);
}

IOPF_API int iopf_respond_many(struct iopf_ctx *ctx,
			       const iopf_handle_t *handles, const int *codes,
			       size_t n, int *results)
{
	struct gather ga;

	ga.k = 0;
	ga.done = 0;
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
			g = group_from_handle(ctx, handles[i], &err);
			/* the same handle twice: the second finds its group
			 * ended once those gathered are */
			if (g && g->gathered) {
				gather_end(ctx, &ga);
				g = iopf__group_from_handle(ctx, handles[i], &err);
			}
			if (g) {
				gather_add(ctx, &ga, g, codes[i]);
				err = 0;
			}
		}
		if (err)
			ctx->st.refused_answers++;
		if (results)
			results[i] = err;
	}
	gather_end(ctx, &ga);
	return answered(ctx, ga.done);
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

/* A guest answer for (dev_id, pasid, prgi) that found no group (err):
 * counted, logged, NULL. df: the device's matching flags. */
static struct iopf_group *prg_refuse(struct iopf_ctx *ctx, uint32_t dev_id,
				     uint32_t pasid, uint32_t prgi, unsigned int df,
				     int err)
{
	if (err == -ENOENT)
		ctx->st.unmatched_answers++;
	if (err == -ENOENT && (df & IOPF_DEV_LOG_UNMATCHED) && !(df & DF_LOGGED)) {
		/* replaces in place: cannot fail */
		tbl_put(&ctx->devflags, dev_id, 0, (void *)(uintptr_t)(df | DF_LOGGED));
		iopf__log(ctx, LOG_W,
			  "dev %u: guest answer (pasid %#x prgi %u) matches no outstanding group; later ones of this device are only counted",
			  dev_id, pasid, prgi);
	}
	refuse(ctx, err, "by PRG index", dev_id, prgi);
	return NULL;
}

/* prg_target() with a device gone or device flags set. */
static struct iopf_group *prg_target_slow(struct iopf_ctx *ctx, uint32_t dev_id,
					  uint32_t pasid, uint32_t prgi, int *err)
{
	struct prg_key k = { .dev_id = dev_id, .pasid = pasid, .prgi = prgi };
	struct iopf_group *g;
	unsigned int df;

	if (ctx->ngone && iopf__dev_is_gone(ctx, dev_id)) {
		*err = refuse(ctx, -ENODEV, "by PRG index", dev_id, prgi);
		return NULL;
	}
	df = dev_flags(ctx, dev_id);
	if ((df & IOPF_DEV_PRG_PASID_OPTIONAL) && pasid == IOPF_NO_PASID) {
		g = oldest_any_pasid(ctx, dev_id, prgi);
		*err = g ? 0 : -ENOENT;
	} else {
		*err = iopf__group_by_prg(ctx, &k, &g);
	}
	return *err ? prg_refuse(ctx, dev_id, pasid, prgi, df, *err) : g;
}

/* The group a guest answer for (dev_id, pasid, prgi) goes to, or NULL
 * and *err, the refusal counted and logged. ctx->lock held. Inline when
 * no device is gone and no device has flags: then the lookup's answer is
 * final, found or refused. */
static IOPF_ALWAYS_INLINE struct iopf_group *
prg_target(struct iopf_ctx *ctx, uint32_t dev_id, uint32_t pasid, uint32_t prgi,
	   int *err)
{
	if (__builtin_expect(!ctx->ngone && !ctx->devflags.n, 1)) {
		struct prg_key k = { .dev_id = dev_id, .pasid = pasid, .prgi = prgi };
		struct iopf_group *g;

		if ((*err = group_by_prg(ctx, &k, &g)))
			return prg_refuse(ctx, dev_id, pasid, prgi, 0, *err);
		return g;
	}
	return prg_target_slow(ctx, dev_id, pasid, prgi, err);
}

IOPF_API int iopf_respond_prg(struct iopf_ctx *ctx, uint32_t dev_id,
			      uint32_t pasid, uint32_t prgi,
			      enum iopf_code code)
{
	struct iopf_group *g;
	int err;

	if (!ctx || (code != IOPF_CODE_SUCCESS && code != IOPF_CODE_INVALID))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	if (!(g = prg_target(ctx, dev_id, pasid, prgi, &err))) {
		pthread_mutex_unlock(&ctx->lock);
		return err;
	}
	/* inline: the one-group end specialized here (a guest answers each
	 * group this way); iopf__group_end() is the same body */
	group_end(ctx, g, (int)code, END_ANSWERED, false);
	return answered(ctx, 0);
}

IOPF_API int iopf_respond_prg_many(struct iopf_ctx *ctx,
				   const struct iopf_prg_answer *answers,
				   size_t n, int *results)
{
	struct gather ga;

	ga.k = 0;
	ga.done = 0;
	if (!ctx || (n && !answers))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	for (size_t i = 0; i < n; i++) {
		const struct iopf_prg_answer *a = &answers[i];
		struct iopf_group *g;
		int err = -EINVAL;

		if (a->code != IOPF_CODE_SUCCESS && a->code != IOPF_CODE_INVALID) {
			ctx->st.refused_answers++;
		} else if ((g = prg_target(ctx, a->dev_id, a->pasid, a->prgi, &err))) {
			/* a key answered twice: its oldest is gathered, so the
			 * second goes to the next once those gathered end */
			if (g->gathered) {
				gather_end(ctx, &ga);
				g = prg_target(ctx, a->dev_id, a->pasid, a->prgi, &err);
			}
			if (g)
				gather_add(ctx, &ga, g, a->code);
		}
		if (results)
			results[i] = err;
	}
	gather_end(ctx, &ga);
	return answered(ctx, ga.done);
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
