/* SPDX-License-Identifier: MIT */
/*
 * group-inl.h - the per-group steps of group.c, inline for the hot paths
 * (a fault queue's intake in faultq.c, a handler's return in dispatch.c):
 * taking a slot, intake, the end, the free. These are group.c's own
 * functions, not copies: iopf__group_get(), iopf__group_intake(),
 * iopf__group_end() and iopf__group_put() are these bodies out of line,
 * and iopf__group_end() stays the one way a group ends. The rare steps
 * (a new slot, the PRG index, tombs, poison) stay in group.c.
 * ctx->lock held.
 */
#ifndef IOPF_GROUP_INL_H
#define IOPF_GROUP_INL_H

#include "internal.h"
#include "sched-inl.h"

/* group.c, out of line */
struct iopf_group *iopf__group_get_slow(struct iopf_ctx *ctx,
					struct iopf_source *src,
					const struct prg_key *key, uint32_t nrec);
void iopf__group_poison(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__group_untracked(struct iopf_ctx *ctx, struct iopf_group *g,
			   const char *what);
int iopf__prg_insert(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__prg_remove(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__tomb_add(struct iopf_ctx *ctx, iopf_handle_t h, enum gend why);

/* Where the PRG index keeps the head of g's key when its flow's array
 * does (group.c: PCIe PRG indexes, g in a flow of its own; the fallback
 * flow's array stays empty), else NULL. */
static inline uint32_t *prg_cell(struct iopf_ctx *ctx, const struct iopf_group *g)
{
	struct flow *f = ctx->sched.flows[g->flow];

	return g->key.prgi < f->prg_cap ? &f->prg[g->key.prgi] : NULL;
}

/* Into the PRG index: a key's only group inline, the rest in group.c. */
static inline int prg_insert(struct iopf_ctx *ctx, struct iopf_group *g)
{
	uint32_t *c = prg_cell(ctx, g);

	if (__builtin_expect(c && !*c, 1)) {
		*c = g->slot + 1;
		g->prg_next = g->prg_prev = g;
		g->indexed = true;
		return 0;
	}
	return iopf__prg_insert(ctx, g);
}

/* The head of a key's groups in flow f's array at PRG index prgi, or
 * NULL (none, or not kept there). */
static inline struct iopf_group *prg_head_of(struct iopf_ctx *ctx, const struct flow *f,
					     uint32_t prgi)
{
	return prgi < f->prg_cap && f->prg[prgi] ? iopf__slot(ctx, f->prg[prgi] - 1) : NULL;
}

/* iopf__group_by_prg(), its common case inline: the index on, no head in
 * the table, the key's flow among those looked up lately, its oldest
 * group open to an answer. */
static inline int group_by_prg(struct iopf_ctx *ctx, const struct prg_key *k,
			       struct iopf_group **out)
{
	if (__builtin_expect(ctx->prg_on && !ctx->by_prg.n, 1)) {
		struct flow *f = fcache_get(ctx, key_hi(k));
		struct iopf_group *g;

		if (f && (g = prg_head_of(ctx, f, k->prgi)) &&
		    gst_answerable(gst(g))) {
			*out = g;
			return 0;
		}
	}
	return iopf__group_by_prg(ctx, k, out);
}

/* iopf__group_from_handle(), its common case inline: the handle names
 * a live slot of its generation, the group open to an answer. */
static IOPF_ALWAYS_INLINE struct iopf_group *
group_from_handle(struct iopf_ctx *ctx, iopf_handle_t h, int *err)
{
	uint32_t idx = (uint32_t)h;

	if (__builtin_expect(idx - 1 < ctx->nslots, 1)) {
		struct iopf_group *g = iopf__slot(ctx, idx - 1);

		if (g->gen == (uint32_t)(h >> 32) && gst_answerable(gst(g)))
			return g;
	}
	return iopf__group_from_handle(ctx, h, err);
}

/* Out of the PRG index (g->indexed): a key's only group inline. */
static IOPF_ALWAYS_INLINE void prg_remove(struct iopf_ctx *ctx,
					  struct iopf_group *g)
{
	uint32_t *c;

	if (__builtin_expect(g->prg_next == g && (c = prg_cell(ctx, g)), 1)) {
		*c = 0;
		g->prg_next = g->prg_prev = NULL;
		g->indexed = false;
		return;
	}
	iopf__prg_remove(ctx, g);
}

/* A slot taken for a group of nrec records: its fields set, src held.
 * The links need no reset: each list clears its own when a group leaves
 * it (indexed, prg_*), or sets it when one joins (qnext, dnext). */
static IOPF_ALWAYS_INLINE struct iopf_group *
group_init(struct iopf_group *g, struct iopf_source *src,
	   const struct prg_key *key, uint32_t nrec)
{
	g->key = *key;
	g->src = src;
	iopf__source_ref(src);
	g->nrec = nrec;
	g->gflags = 0;
	g->cookie = 0;
	g->end = END_ANSWERED; /* read once DONE; other ends set theirs */
	return g;
}

/* A slot for a group of nrec records, holding a reference to src: the
 * free list's first when its records fit, else group.c's slow path. */
static IOPF_ALWAYS_INLINE struct iopf_group *
group_get(struct iopf_ctx *ctx, struct iopf_source *src,
	  const struct prg_key *key, uint32_t nrec)
{
	struct iopf_group *g = ctx->free_list;

	if (__builtin_expect(!g || nrec > g->cap, 0))
		return iopf__group_get_slow(ctx, src, key, nrec);
	ctx->free_list = g->qnext;
	return group_init(g, src, key, nrec);
}

/* A slot's group is gone: the generation goes up, the slot is FREE.
 * Returns its source, for the caller to let go (group_put(), or once
 * for many). The caller puts the slot on the free list. */
static IOPF_ALWAYS_INLINE struct iopf_source *
group_retire(struct iopf_group *g)
{
	struct iopf_source *src = g->src;

	g->src = NULL;
	g->gen++; /* wraps: handles compare generations by difference */
	gst_set(g, GS_FREE);
	return src;
}

/* group_retire(), then the free list (or the quarantine, poisoned). */
static inline struct iopf_source *group_free(struct iopf_ctx *ctx,
					     struct iopf_group *g)
{
	struct iopf_source *src = group_retire(g);

	if (__builtin_expect(ctx->flags & IOPF_CTX_POISON, 0)) {
		iopf__group_poison(ctx, g);
	} else {
		g->qnext = ctx->free_list;
		ctx->free_list = g;
	}
	return src;
}

/* Back to the free list, the source let go. */
static inline void group_put(struct iopf_ctx *ctx, struct iopf_group *g)
{
	iopf__source_unref(group_free(ctx, g));
}

static inline void group_unpin(struct iopf_ctx *ctx, struct iopf_group *g)
{
	if (--g->pins == 0 && gst(g) == GS_DONE)
		group_put(ctx, g);
}

/* A complete group enters the context: outstanding, ready. A group the
 * PRG index or the deadline has no room for is answered INVALID at once
 * (may_track false: the caller knows neither is kept). Counted by
 * device only (sched_intake): the context's groups and records are the
 * sums over devices plus what never got a group object. */
static IOPF_ALWAYS_INLINE void
group_intake_run(struct iopf_ctx *ctx, struct iopf_group *g, uint32_t nrec,
		 uint64_t now, struct intake_run *run, bool may_track)
{
	g->t_in = now;
	g->seq = ctx->seq++;
	IOPF_TRACE_GROUP_COMPLETE(g);
	gst_set(g, GS_QUEUED);
	if (run) /* one of a read's groups (faultq.c) */
		sched_intake_run(ctx, g, nrec, run);
	else
		sched_intake(ctx, g);
	if (!may_track || __builtin_expect(!ctx->tracked, 1))
		return;
	if (ctx->prg_on && prg_insert(ctx, g))
		iopf__group_untracked(ctx, g, "index");
	else if (ctx->deadline_ms != 0 && iopf__deadline_add(ctx, g))
		iopf__group_untracked(ctx, g, "time");
}

static inline void group_intake(struct iopf_ctx *ctx, struct iopf_group *g,
				uint64_t now)
{
	group_intake_run(ctx, g, g->nrec, now, NULL, true);
}

/* group_end_n(), for each group once counted: out of the PRG index, its
 * end reason kept (a tomb for its handle once it reached a handler),
 * DONE. prg: ctx->prg_on (no group is indexed without it). */
static IOPF_ALWAYS_INLINE void
group_done(struct iopf_ctx *ctx, struct iopf_group *g, int code, enum gend why,
	   bool prg)
{
	IOPF_TRACE_ANSWER(g, code, why);
	if (__builtin_expect(prg && g->indexed, 0))
		prg_remove(ctx, g);
	if (why != END_ANSWERED) {
		if (gst(g) != GS_QUEUED)
			iopf__tomb_add(ctx, grp_handle(g), why);
		g->end = (uint8_t)why;
	}
	gst_set(g, GS_DONE);
}

/*
 * End the lives of n live groups (the caller looked, under ctx->lock),
 * gs[i] answered codes[i] (IOPF_CODE_*, or NO_ANSWER when the kernel
 * answered it itself), all for the same reason: what every path does,
 * through group_end() for one group or directly for a handler batch.
 * Each group is counted by device, leaves the outstanding groups and
 * the indexes and becomes DONE; then their sources are told, once for
 * each run of groups of one source; then the groups nothing pins are
 * freed. unpin: the caller held one pin on each, given up here.
 * one_flow: the caller knows them all of one flow, in intake order (a
 * run handed out by the scheduler).
 */
static IOPF_ALWAYS_INLINE void
group_end_n(struct iopf_ctx *ctx, struct iopf_group *const *gs,
	    const int *codes, unsigned int n, enum gend why, bool auto_answer,
	    bool unpin, bool one_flow)
{
	struct iopf_source *src = gs[0]->src;
	struct end_runs er;
	uintptr_t mixed = 0; /* not 0: of more than one source */
	bool prg = ctx->prg_on; /* none is indexed if off */
	/* Answers to groups of one flow taken in by one read (the first
	 * and last of a flow's run share their intake time only if all
	 * do): counted once for all, only the answers told apart. One read
	 * is of one source: no two intakes share a time
	 * (iopf__intake_tick()). */
	bool one_run = one_flow && why == END_ANSWERED && !auto_answer &&
		       gs[0]->t_in == gs[n - 1]->t_in;
	uint32_t ninval = 0;
	/* answered by a handler or a caller: a code, never NO_ANSWER */
	bool answers = why == END_ANSWERED;

	/* counted once, by device: the context's totals are their sums */
	if (one_run) {
#pragma GCC unroll 4
		for (unsigned int i = 0; i < n; i++) {
			ninval += (uint32_t)codes[i]; /* answers: 0 or 1 */
			group_done(ctx, gs[i], codes[i], why, prg);
		}
		sched_end_answers(ctx, gs[0], n, n - ninval);
	} else {
		sched_end_init(&er);
		for (unsigned int i = 0; i < n; i++) {
			mixed |= (uintptr_t)gs[i]->src ^ (uintptr_t)src;
			sched_end_add(ctx, &er, gs[i], codes[i], why, auto_answer);
			group_done(ctx, gs[i], codes[i], why, prg);
		}
		sched_end_done(ctx, &er, why, auto_answer);
	}
	/* All are DONE before any source is told: telling one may fail it
	 * (a write that finds its fd dead), and its failure ends its live
	 * groups, which must not include one of these. */
	if (__builtin_expect(!mixed, 1)) {
		src->ops->ended(ctx, src, gs, codes, n, answers);
	} else {
		for (unsigned int i = 0, j; i < n; i = j) {
			src = gs[i]->src;
			for (j = i + 1; j < n && gs[j]->src == src; j++)
				;
			src->ops->ended(ctx, src, gs + i, codes + i, j - i,
					answers);
		}
	}
	ctx->outstanding -= n;
	ctx->nends += n;
	if (__builtin_expect(ctx->drainers != 0, 0))
		pthread_cond_broadcast(&ctx->answered);
	/* Room for a queue paused by max_outstanding: whichever thread
	 * made it, a dispatch round must come to read again. */
	if (__builtin_expect(ctx->nthrottled != 0, 0) && iopf__dispatch_ctx != ctx)
		iopf__wake(ctx);
	if (__builtin_expect(!mixed && !(ctx->flags & IOPF_CTX_POISON), 1)) {
		/* group_free() for each, the free list's head in a local,
		 * src let go once for them all */
		struct iopf_group *head = ctx->free_list;
		uint32_t freed = 0;

#pragma GCC unroll 4
		for (unsigned int i = 0; i < n; i++) {
			struct iopf_group *g = gs[i];

			if ((unpin ? --g->pins : g->pins) == 0) {
				group_retire(g);
				g->qnext = head;
				head = g;
				freed++;
			}
		}
		ctx->free_list = head;
		iopf__source_unref_n(src, freed);
		return;
	}
	for (unsigned int i = 0; i < n; i++)
		if ((unpin ? --gs[i]->pins : gs[i]->pins) == 0)
			group_put(ctx, gs[i]);
}

/*
 * End a group's life: the only way any path does it (handler return,
 * answer by handle or PRG index, flush, drain, deadline, detach, close,
 * device gone, context free), called as iopf__group_end() or inline.
 * code is the answer the source sends (IOPF_CODE_*), or NO_ANSWER when
 * the kernel answered the group itself. Returns 0, or the error a late
 * answer gets if its life had already ended (nothing is done then; the
 * caller counts the refusal).
 */
static IOPF_ALWAYS_INLINE int group_end(struct iopf_ctx *ctx,
					struct iopf_group *g, int code,
					enum gend why, bool auto_answer)
{
	if (!gst_live(gst(g)))
		return iopf__end_error(g->end);
	group_end_n(ctx, &g, &code, 1, why, auto_answer, false, true);
	return 0;
}

#endif
