/* SPDX-License-Identifier: MIT */
/*
 * sched-inl.h - the per-group steps of sched.c, inline: taking a group in,
 * handing the next one out, counting its end. ctx->lock held.
 */
#ifndef IOPF_SCHED_INL_H
#define IOPF_SCHED_INL_H

#include "internal.h"

struct flow *iopf__flow_lookup(struct iopf_ctx *ctx, uint64_t key);

static inline unsigned int fcache_slot(uint64_t key)
{
	/* consecutive device ids (one PASID) get consecutive slots; a
	 * device's PASIDs are spread by a multiplicative hash */
	return ((uint32_t)(key >> 32) ^ ((uint32_t)key * 0x9e3779b1u) >> 16) & 63;
}

static inline void dev_enqueue(struct sched *s, struct dsched *d)
{
	int q = !d->prio;

	d->anext = NULL;
	if (s->act_tail[q])
		s->act_tail[q]->anext = d;
	else
		s->act_head[q] = d;
	s->act_tail[q] = d;
}

static inline void flow_enqueue(struct dsched *d, struct flow *f)
{
	f->anext = NULL;
	if (d->ftail)
		d->ftail->anext = f;
	else
		d->fhead = f;
	d->ftail = f;
}

/* The flow of a key if among those looked up lately, else NULL. */
static IOPF_ALWAYS_INLINE struct flow *fcache_get(struct iopf_ctx *ctx,
						  uint64_t key)
{
	struct flow *f = ctx->sched.fcache[fcache_slot(key)];

	return f && f->key == key ? f : NULL;
}

/* The flow of a key: the cache, else the table, else a new one. */
static IOPF_ALWAYS_INLINE struct flow *sched_flow(struct iopf_ctx *ctx,
						  uint64_t key)
{
	struct flow *f = fcache_get(ctx, key);

	return f ? f : iopf__flow_lookup(ctx, key);
}

/* The flow of key if it has one, else NULL; makes none. */
static inline struct flow *sched_flow_find(struct iopf_ctx *ctx, uint64_t key)
{
	struct flow *f = fcache_get(ctx, key);

	return f ? f : iopf__flow_find(ctx, key);
}

/* n groups of recs records taken in on flow f: counted by its device
 * (and its PASID's counters, if kept), referenced by them, ready. */
static inline void flow_count_intake(struct sched *s, struct flow *f,
				     uint32_t n, uint32_t recs)
{
	f->refs += n;
	f->nready += n;
	f->dev->cnt.groups += n;
	f->dev->cnt.records += recs;
	f->dev->cnt.ready += n;
	if (f->cnt) {
		f->cnt->groups += n;
		f->cnt->records += recs;
		f->cnt->ready += n;
	}
	s->nready += n;
}

/* Into the ready FIFO of its flow, that of key (pinned by it), counted.
 * Returns the flow. */
static IOPF_ALWAYS_INLINE struct flow *
sched_intake_key(struct iopf_ctx *ctx, struct iopf_group *g, uint64_t key)
{
	struct sched *s = &ctx->sched;
	struct flow *f = sched_flow(ctx, key);
	struct dsched *d = f->dev;

	ctx->outstanding++;
	g->flow = f->idx;
	flow_count_intake(s, f, 1, g->nrec);
	g->pins++; /* the ready queue's */
	g->qnext = NULL;
	if (f->tail)
		f->tail->qnext = g;
	else
		f->head = g;
	f->tail = g;
	if (!f->active) {
		f->active = true;
		flow_enqueue(d, f);
		if (!d->active) {
			d->active = true;
			d->credit = d->weight;
			dev_enqueue(s, d);
		}
	}
	return f;
}

static IOPF_ALWAYS_INLINE void sched_intake(struct iopf_ctx *ctx,
					    struct iopf_group *g)
{
	sched_intake_key(ctx, g, key_hi(&g->key));
}

/*
 * Groups of one read taken in one after another, most of them of the
 * flow of the group before (one device streaming): such a group is only
 * linked to its flow's FIFO, its counts kept here and added to the flow,
 * its device and the context's outstanding groups once the run ends
 * (sched_run_end(), before any other intake and at the end of the read),
 * and the FIFO's last link cleared then. Nothing reads those counts or
 * walks that FIFO meanwhile: no group is handed out, no flow made or
 * reused. (An end meanwhile, of a group of the run itself if the PRG
 * index or the deadline has no room, subtracts before the run adds: the
 * counts are right again when it ends.)
 */
struct intake_run {
	struct flow *f;    /* the flow of the run, or NULL */
	uint64_t key;      /* its key */
	uint32_t n, extra; /* groups not yet counted; their records past
			    * the first of each */
};

static inline void sched_run_end(struct iopf_ctx *ctx, struct intake_run *r)
{
	if (!r->n)
		return;
	r->f->tail->qnext = NULL;
	ctx->outstanding += r->n;
	flow_count_intake(&ctx->sched, r->f, r->n, r->n + r->extra);
	r->n = r->extra = 0;
}

/* sched_intake() for a group of nrec records (g->nrec, known to the
 * caller) of a read: a link when of the run's flow. */
static IOPF_ALWAYS_INLINE void
sched_intake_run(struct iopf_ctx *ctx, struct iopf_group *g, uint32_t nrec,
		 struct intake_run *r)
{
	uint64_t key = key_hi(&g->key);
	struct flow *f = r->f;

	if (f && r->key == key) {
		g->flow = f->idx;
		g->pins++; /* the ready queue's */
		f->tail->qnext = g; /* g's own: at the run's end */
		f->tail = g;
		r->n++;
		if (nrec > 1)
			r->extra += nrec - 1;
		return;
	}
	sched_run_end(ctx, r);
	r->f = sched_intake_key(ctx, g, key);
	r->key = key;
}

/*
 * Up to n (> 0) groups in turn from d, the head of turn list q: at least
 * one. Its head flow gives them; more than one only while the turns would
 * come back to that flow anyway (it is alone on its device's list, and the
 * device's credit lasts or no other device waits): the same groups, in
 * the same order, as one at a time, with the turns moved once for the run
 * (the common case: one flow a device). The caller has their pins. mark:
 * a group still QUEUED is marked HANDLING as it is handed out (for the
 * caller that calls its handler next: see iopf__sched_pop_n()).
 */
static IOPF_ALWAYS_INLINE unsigned int
sched_take(struct sched *s, int q, struct dsched *d, struct iopf_group **gs,
	   unsigned int n, bool mark)
{
	struct flow *f = d->fhead;
	struct iopf_group *g = f->head;
	unsigned int m = 0, lim = 1;

	if (!f->anext)
		lim = d->anext && d->credit < n ? d->credit : n;
	if (lim > f->nready)
		lim = f->nready;
	do {
		gs[m++] = g; /* its qnext is set by the next list it joins */
		if (mark && gst(g) == GS_QUEUED)
			gst_set(g, GS_HANDLING);
		g = g->qnext;
	} while (m < lim);
	if (!(f->head = g))
		f->tail = NULL;
	f->nready -= m;
	s->nready -= m;
	d->cnt.ready -= m;
	if (f->cnt)
		f->cnt->ready -= m;
	/* the flow's turn is over: to the back of its device's, or out. A
	 * flow alone on its device's list with groups left is its own back:
	 * nothing moves. */
	if (f->anext || !g) {
		if (!(d->fhead = f->anext))
			d->ftail = NULL;
		if (g)
			flow_enqueue(d, f);
		else
			f->active = false;
	}
	/* the device's turn: over when it has no flows left or its credit
	 * (weight groups a turn) is used; alone on its list with flows
	 * left, it is its own back, its credit wrapping */
	if (!d->fhead || (d->credit -= m) == 0) {
		d->credit = d->weight;
		if (d->anext || !d->fhead) {
			if (!(s->act_head[q] = d->anext))
				s->act_tail[q] = NULL;
			if (d->fhead)
				dev_enqueue(s, d);
			else
				d->active = false;
		}
	} else if (d->credit > d->weight) { /* alone: wrapped below 0 */
		d->credit = d->weight - (m - (d->credit + m)) % d->weight;
	}
	return m;
}

/* The next ready group in turn, or NULL; the caller has its pin. */
static inline struct iopf_group *sched_pop(struct iopf_ctx *ctx)
{
	struct sched *s = &ctx->sched;
	int q = s->act_head[0] ? 0 : 1;
	struct dsched *d = s->act_head[q];
	struct iopf_group *g = NULL;

	if (d)
		sched_take(s, q, d, &g, 1, false);
	return g;
}

/* The latency bucket of a group taken in at t_in and answered now: the
 * groups of one read share t_in and those of one batch share now, so the
 * last one is kept rather than worked out for each group. */
static IOPF_ALWAYS_INLINE unsigned int lat_bucket(struct sched *s,
						  uint64_t t_in, uint64_t now)
{
	if (t_in != s->lat_tin || now != s->lat_now) {
		uint64_t ns = now > t_in ? now - t_in : 0;
		unsigned int b = ns ? 63 - (unsigned int)__builtin_clzll(ns) : 0;

		s->lat_tin = t_in;
		s->lat_now = now;
		s->lat_b = b < IOPF_LAT_BUCKETS ? b : IOPF_LAT_BUCKETS - 1;
	}
	return s->lat_b;
}

static IOPF_ALWAYS_INLINE void count_end(struct sched_count *c, int code,
					 enum gend why, bool auto_answer,
					 unsigned int bucket, uint32_t n)
{
	if (code == NO_ANSWER) {
		c->kernel += n;
	} else {
		c->hist[bucket] += n;
		if (code == IOPF_CODE_SUCCESS)
			c->success += n;
		else
			c->invalid += n;
	}
	if (auto_answer)
		c->auto_answers += n;
	if (why == END_DEADLINE)
		c->deadline += n;
	else if (why == END_GONE)
		c->gone += n;
}

/*
 * Groups' lives ended: counted by device (auto: libiopf's own INVALID),
 * their flow no longer referenced by them (a flow no live group names
 * stays cached until flow_alloc() reuses it). Counted a run at a time:
 * the groups of one flow taken in by one read and answered alike in one
 * batch count as one step, up to END_RUNS flows interleaved (a batch of
 * groups of a few devices in turn): sched_end_add() for each group,
 * sched_end_done() once.
 */
#define END_RUNS 8u

struct end_run {
	uint32_t flow, n;
	int code;
	uint64_t t_in;
};

static inline void end_run_count(struct iopf_ctx *ctx, struct end_run *r,
				 enum gend why, bool auto_answer)
{
	struct sched *s = &ctx->sched;
	struct flow *f = s->flows[r->flow];
	unsigned int b = r->code == NO_ANSWER ? 0 : lat_bucket(s, r->t_in, ctx->now);

	f->refs -= r->n;
	count_end(&f->dev->cnt, r->code, why, auto_answer, b, r->n);
	if (f->cnt)
		count_end(f->cnt, r->code, why, auto_answer, b, r->n);
	r->n = 0;
}

/* The runs of one batch: a bit in used for each of r[] in use; last is
 * the run the group before joined (most groups join it: checked first). */
struct end_runs {
	struct end_run r[END_RUNS];
	struct end_run *last;
	unsigned int used;
};

static inline void sched_end_init(struct end_runs *e)
{
	e->used = 0;
	e->last = &e->r[0];
	/* matches no group until used: flows are numbered from 0 up */
	e->r[0] = (struct end_run){ .flow = UINT32_MAX };
}

static inline void sched_end_add(struct iopf_ctx *ctx, struct end_runs *e,
				 struct iopf_group *g, int code, enum gend why,
				 bool auto_answer)
{
	struct end_run *r = e->last;
	unsigned int k;

	if (__builtin_expect(g->flow == r->flow && code == r->code &&
			     g->t_in == r->t_in, 1)) {
		r->n++;
		return;
	}
	k = g->flow % END_RUNS;
	r = &e->r[k];
	e->last = r;
	if (e->used & 1u << k) {
		if (g->flow == r->flow && code == r->code && g->t_in == r->t_in) {
			r->n++;
			return;
		}
		end_run_count(ctx, r, why, auto_answer);
	}
	e->used |= 1u << k;
	*r = (struct end_run){ .flow = g->flow, .n = 1, .code = code, .t_in = g->t_in };
}

/* n answers (nsucc of them SUCCESS, the rest INVALID) to groups of one
 * flow taken in at the same time as g: one run, counted at once. */
static IOPF_ALWAYS_INLINE void
sched_end_answers(struct iopf_ctx *ctx, const struct iopf_group *g,
		  uint32_t n, uint32_t nsucc)
{
	struct sched *s = &ctx->sched;
	struct flow *f = s->flows[g->flow];
	unsigned int b = lat_bucket(s, g->t_in, ctx->now);

	f->refs -= n;
	count_end(&f->dev->cnt, IOPF_CODE_SUCCESS, END_ANSWERED, false, b, nsucc);
	count_end(&f->dev->cnt, IOPF_CODE_INVALID, END_ANSWERED, false, b, n - nsucc);
	if (f->cnt) {
		count_end(f->cnt, IOPF_CODE_SUCCESS, END_ANSWERED, false, b, nsucc);
		count_end(f->cnt, IOPF_CODE_INVALID, END_ANSWERED, false, b, n - nsucc);
	}
}

static inline void sched_end_done(struct iopf_ctx *ctx, struct end_runs *e,
				  enum gend why, bool auto_answer)
{
	for (unsigned int used = e->used; used; used &= used - 1)
		end_run_count(ctx, &e->r[__builtin_ctz(used)], why, auto_answer);
}

#endif
