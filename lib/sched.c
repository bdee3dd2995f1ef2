/* SPDX-License-Identifier: MIT */
/*
 * sched.c - who is handed out next, and per-device counters.
 *
 * Ready groups wait in the FIFO of their (device, PASID) flow. Devices
 * with ready groups take turns (weight groups a turn; priority devices
 * first), and a device's ready flows take turns within it, so one device
 * or PASID that floods delays another's groups by one turn, not by its
 * whole backlog. The flow also names where a group is counted, so ending
 * a group counts it without a lookup.
 *
 * A flow is created at its first group and kept while groups name it;
 * beyond FLOWS_KEPT flows, one no group names is reused for a new one. Devices are kept for their counters. When no memory is left
 * for a flow, its group goes to the fallback flow (FIFO, context totals
 * only): scheduling never fails a group. ctx->lock held throughout.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sched-inl.h"

#define FLOWS_KEPT 1024u /* flows kept when no group names them */
#define FLOW_SCAN 16u    /* flows the clock hand looks at per new one */

static void dsched_init(struct dsched *d, uint32_t dev)
{
	d->dev_id = dev;
	d->weight = d->credit = 1;
}

int iopf__sched_init(struct iopf_ctx *ctx)
{
	struct sched *s = &ctx->sched;

	s->flows = xcalloc(16, sizeof(*s->flows));
	if (!s->flows)
		return -ENOMEM;
	s->cap = 16;
	s->nflows = 1;
	s->flows[0] = &s->fallback;
	s->fallback.dev = &s->fallback_dev;
	s->fallback.refs = 1; /* never idles */
	dsched_init(&s->fallback_dev, UINT32_MAX);
	return 0;
}

void iopf__sched_free(struct iopf_ctx *ctx)
{
	struct sched *s = &ctx->sched;

	for (uint32_t i = 1; i < s->nflows; i++) {
		free(s->flows[i]->cnt);
		free(s->flows[i]->prg);
		free(s->flows[i]);
	}
	free(s->flows);
	for (uint32_t i = 0; i < s->devs.cap; i++)
		free(s->devs.e[i].v);
	tbl_free(&s->devs);
	tbl_free(&s->by_key);
}

static struct dsched *dev_get(struct iopf_ctx *ctx, uint32_t dev)
{
	struct dsched *d = tbl_get(&ctx->sched.devs, dev, 0);

	if (d)
		return d;
	if (!(d = xcalloc(1, sizeof(*d))))
		return NULL;
	dsched_init(d, dev);
	if (tbl_put(&ctx->sched.devs, dev, 0, d)) {
		free(d);
		return NULL;
	}
	return d;
}

/* A flow struct: reused, or new with an index. NULL without memory. */
static struct flow *flow_alloc(struct iopf_ctx *ctx)
{
	struct sched *s = &ctx->sched;
	struct flow *f = s->free;

	if (f) {
		s->free = f->inext;
		f->inext = NULL;
		return f;
	}
	if (s->nflows > FLOWS_KEPT) {
		/* Reuse one no group names (clock hand): flows of PASIDs
		 * long gone are not kept forever. A few looked at per new
		 * flow, not all: while every flow has groups (10,000 PASIDs
		 * busy at once), a whole turn of the hand for each new flow
		 * made taking them in quadratic. */
		for (uint32_t n = FLOW_SCAN; n; n--) {
			s->hand_steps++;
			if (++s->hand >= s->nflows)
				s->hand = 1;
			f = s->flows[s->hand];
			if (!f->refs && !f->cnt) {
				tbl_del(&s->by_key, f->key, 0);
				if (s->fcache[fcache_slot(f->key)] == f)
					s->fcache[fcache_slot(f->key)] = NULL;
				return f;
			}
		}
	}
	if (s->nflows == s->cap) {
		struct flow **nf = xrealloc(s->flows, s->cap * 2 * sizeof(*nf));

		if (!nf)
			return NULL;
		s->flows = nf;
		s->cap *= 2;
	}
	if (!(f = xcalloc(1, sizeof(*f))))
		return NULL;
	f->idx = s->nflows;
	s->flows[s->nflows++] = f;
	return f;
}

static struct flow *flow_new(struct iopf_ctx *ctx, uint64_t key)
{
	struct sched *s = &ctx->sched;
	struct dsched *d = dev_get(ctx, (uint32_t)(key >> 32));
	struct flow *f;

	if (!d || !(f = flow_alloc(ctx)))
		return &s->fallback;
	if (f->cnt)
		memset(f->cnt, 0, sizeof(*f->cnt));
	else if (ctx->flags & IOPF_CTX_PASID_STATS)
		f->cnt = xcalloc(1, sizeof(*f->cnt)); /* best effort */
	f->key = key;
	f->dev = d;
	f->refs = 0;
	if (tbl_put(&s->by_key, key, 0, f)) {
		f->inext = s->free;
		s->free = f;
		return &s->fallback;
	}
	return f;
}

/* The flow of key if it has one, else NULL (the fallback's groups are
 * in no flow of their own). Makes none: sched_flow_find()'s slow path. */
struct flow *iopf__flow_find(struct iopf_ctx *ctx, uint64_t key)
{
	struct sched *s = &ctx->sched;
	struct flow *f;

	if ((f = tbl_get(&s->by_key, key, 0)))
		s->fcache[fcache_slot(key)] = f;
	return f;
}

/* The flow of key, made if new (the fallback without memory): the slow
 * path of sched_flow() in sched-inl.h. */
struct flow *iopf__flow_lookup(struct iopf_ctx *ctx, uint64_t key)
{
	struct sched *s = &ctx->sched;
	struct flow *f = iopf__flow_find(ctx, key);

	if (!f && (f = flow_new(ctx, key)) != &s->fallback)
		s->fcache[fcache_slot(key)] = f;
	return f;
}

/* The context's groups and records count what never got a group object
 * (malformed, no memory); the rest are counted once, by device. */
static void add_count(struct iopf_stats *st, const struct sched_count *c)
{
	st->groups += c->groups;
	st->records += c->records;
	st->answers_success += c->success;
	st->answers_invalid += c->invalid;
	st->auto_answers += c->auto_answers;
	for (int i = 0; i < IOPF_LAT_BUCKETS; i++)
		st->latency_hist[i] += c->hist[i];
}

void iopf__sched_totals(struct iopf_ctx *ctx, struct iopf_stats *st)
{
	add_count(st, &ctx->sched.fallback_dev.cnt);
	for (uint32_t i = 0; i < ctx->sched.devs.cap; i++)
		if (ctx->sched.devs.e[i].v)
			add_count(st, &((struct dsched *)ctx->sched.devs.e[i].v)->cnt);
}

struct iopf_group *iopf__sched_pop(struct iopf_ctx *ctx)
{
	return sched_pop(ctx);
}

unsigned int iopf__sched_pop_n(struct iopf_ctx *ctx, struct iopf_group **gs,
			       unsigned int n, bool mark, bool *one_flow)
{
	struct sched *s = &ctx->sched;
	struct flow *first = NULL;
	unsigned int k = 0;

	*one_flow = true;
	while (k < n) {
		int q = s->act_head[0] ? 0 : 1;
		struct dsched *d = s->act_head[q];

		if (!d)
			break;
		if (!first)
			first = d->fhead;
		else if (d->fhead != first)
			*one_flow = false;
		k += mark ? sched_take(s, q, d, gs + k, n - k, true) :
			    sched_take(s, q, d, gs + k, n - k, false);
	}
	return k;
}

#ifdef IOPF_TESTING
void iopf__sched_flow_counts(struct iopf_ctx *ctx, uint32_t *nflows,
			     uint64_t *hand_steps)
{
	pthread_mutex_lock(&ctx->lock);
	*nflows = ctx->sched.nflows;
	*hand_steps = ctx->sched.hand_steps;
	pthread_mutex_unlock(&ctx->lock);
}
#endif

/* ---- public ---- */

IOPF_API int iopf_ctx_set_device_sched(struct iopf_ctx *ctx, uint32_t dev_id,
				       unsigned int weight, unsigned int flags)
{
	struct dsched *d;
	int rc = 0;

	if (!ctx || weight > 65536 || (flags & ~IOPF_SCHED_PRIORITY))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	if (!(d = dev_get(ctx, dev_id))) {
		rc = -ENOMEM;
	} else {
		bool prio = flags & IOPF_SCHED_PRIORITY;

		d->weight = weight ? weight : 1;
		if (d->credit > d->weight)
			d->credit = d->weight;
		if (prio != d->prio && d->active) {
			/* move it between the two turn lists */
			struct sched *s = &ctx->sched;
			int q = !d->prio;
			struct dsched **pp = &s->act_head[q], *prev = NULL;

			while (*pp != d) {
				prev = *pp;
				pp = &(*pp)->anext;
			}
			*pp = d->anext;
			if (s->act_tail[q] == d)
				s->act_tail[q] = prev;
			d->prio = prio;
			dev_enqueue(s, d);
		}
		d->prio = prio;
	}
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

static void copy_out(struct iopf_device_stats *st, const struct sched_count *c,
		     uint32_t dev, uint32_t pasid)
{
	struct iopf_device_stats cur = {
		.sz = st->sz,
		.dev_id = dev,
		.pasid = pasid,
		.groups = c->groups,
		.records = c->records,
		.answers_success = c->success,
		.answers_invalid = c->invalid,
		.auto_answers = c->auto_answers,
		.deadline_expired = c->deadline,
		.kernel_answered = c->kernel,
		.cancelled = c->gone,
		.outstanding = c->groups - c->success - c->invalid - c->kernel,
		.ready = c->ready,
	};

	memcpy(cur.latency_hist, c->hist, sizeof(cur.latency_hist));
	memcpy(st, &cur, st->sz < sizeof(cur) ? st->sz : sizeof(cur));
}

IOPF_API int iopf_ctx_get_device_stats(struct iopf_ctx *ctx, uint32_t dev_id,
				       uint32_t pasid, unsigned int flags,
				       struct iopf_device_stats *st)
{
	int rc = 0;

	if (!ctx || !st || st->sz < sizeof(st->sz) || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	if (!(flags & IOPF_ALL_PASIDS) && !(ctx->flags & IOPF_CTX_PASID_STATS))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&ctx->lock);
	if (flags & IOPF_ALL_PASIDS) {
		struct dsched *d = tbl_get(&ctx->sched.devs, dev_id, 0);

		if (d)
			copy_out(st, &d->cnt, dev_id, IOPF_NO_PASID);
		else
			rc = -ENOENT;
	} else {
		struct flow *f = tbl_get(&ctx->sched.by_key,
					 (uint64_t)dev_id << 32 | pasid, 0);

		if (f && f->cnt)
			copy_out(st, f->cnt, dev_id, pasid);
		else
			rc = -ENOENT;
	}
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

IOPF_API int iopf_ctx_list_devices(struct iopf_ctx *ctx, uint32_t *ids,
				   size_t n)
{
	size_t k = 0;

	if (!ctx || (n && !ids))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	for (uint32_t i = 0; i < ctx->sched.devs.cap; i++) {
		const struct dsched *d = ctx->sched.devs.e[i].v;

		if (!d)
			continue;
		if (k < n)
			ids[k] = d->dev_id;
		k++;
	}
	pthread_mutex_unlock(&ctx->lock);
	return k > INT32_MAX ? INT32_MAX : (int)k;
}

IOPF_API int iopf_ctx_list_pasids(struct iopf_ctx *ctx, uint32_t dev_id,
				  uint32_t *pasids, size_t n)
{
	size_t k = 0;

	if (!ctx || (n && !pasids))
		return -EINVAL;
	if (!(ctx->flags & IOPF_CTX_PASID_STATS))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&ctx->lock);
	/* with PASID counters, a flow is kept for good once made */
	for (uint32_t i = 1; i < ctx->sched.nflows; i++) {
		const struct flow *f = ctx->sched.flows[i];

		if (!f->cnt || (uint32_t)(f->key >> 32) != dev_id)
			continue;
		if (k < n)
			pasids[k] = (uint32_t)f->key;
		k++;
	}
	pthread_mutex_unlock(&ctx->lock);
	return k > INT32_MAX ? INT32_MAX : (int)k;
}

IOPF_API uint64_t iopf_device_stats_latency_ns(const struct iopf_device_stats *st,
					       double q)
{
	struct iopf_stats s = { .sz = sizeof(s) };

	if (!st || st->sz < offsetofend(struct iopf_device_stats, latency_hist))
		return 0;
	memcpy(s.latency_hist, st->latency_hist, sizeof(s.latency_hist));
	return iopf_stats_latency_ns(&s, q);
}
