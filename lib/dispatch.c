/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - the event loop side: one pollable fd for everything, a
 * non-blocking dispatch round (removals, answers, reads, deadlines,
 * handlers, answers), a blocking run loop, and drain.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "group-inl.h"

_Thread_local int iopf__in_callback;
_Thread_local struct iopf_ctx *iopf__dispatch_ctx;

/* Make the context fd readable so that gathered answers get written.
 * One eventfd write until the next dispatch round consumes it. */
void iopf__wake(struct iopf_ctx *ctx)
{
	uint64_t one = 1;

	/* pending already (answers after the first of a batch): no locked
	 * exchange */
	if (!atomic_load_explicit(&ctx->wake_pending, memory_order_relaxed) &&
	    !atomic_exchange(&ctx->wake_pending, true))
		(void)!write(ctx->wakefd, &one, sizeof(one));
}

void iopf__flush_all(struct iopf_ctx *ctx)
{
	for (struct iopf_source *s = ctx->sources; s; s = s->next)
		s->ops->flush(ctx, s);
}

static void throttle_all(struct iopf_ctx *ctx)
{
	for (struct iopf_source *s = ctx->sources; s; s = s->next)
		s->ops->throttle(ctx, s);
}

/* Before a handler runs (ctx->lock held): answer it ourselves if its
 * device is gone or nobody handles it, else mark it HANDLING and return
 * its handler's binding, referenced: as the handlers are when the group
 * is handed out. */
static struct binding *handle_pre(struct iopf_ctx *ctx, struct iopf_group *g,
				  struct binding *one)
{
	struct binding *b;

	if (gst(g) != GS_QUEUED) /* ended before its turn */
		return NULL;
	if (ctx->ngone && iopf__dev_is_gone(ctx, g->key.dev_id)) {
		/* Read after its device went away (or from a new device the
		 * caller has not registered under the reused id). */
		iopf__log(ctx, LOG_W, "group for gone dev %u: answered INVALID",
			  g->key.dev_id);
		iopf__group_end_auto(ctx, g, END_ANSWERED);
		return NULL;
	}
	if (one) {
		b = one; /* referenced once for the batch: batch_pre() */
	} else if (!(b = iopf__handler_get(ctx, &g->key))) {
		ctx->st.no_handler++;
		iopf__log(ctx, LOG_W,
			  "no handler for dev %u pasid %#x: answered INVALID",
			  g->key.dev_id, g->key.pasid);
		iopf__group_end_auto(ctx, g, END_ANSWERED);
		return NULL;
	}
	gst_set(g, GS_HANDLING);
	return b;
}

/* A handler returned its answer (no lock): from now on answers by handle
 * are refused, as they would be had it been applied at once. A group
 * ended meanwhile stays ended (compare and swap). */
static bool made_final(struct iopf_group *g)
{
	uint8_t st = GS_HANDLING;

	return __atomic_compare_exchange_n(&g->state, &st, (uint8_t)GS_RETURNED,
					   false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static bool returned(struct iopf_group *g, int rc)
{
	return rc != IOPF_DEFER && made_final(g);
}

/* returned(), for the batch's flag: true when g is RETURNED with an
 * answer (a code, checked first: the common case looks once). */
static IOPF_ALWAYS_INLINE bool returned_answer(struct iopf_group *g, int rc)
{
	if (__builtin_expect((unsigned int)rc <= IOPF_CODE_INVALID, 1))
		return made_final(g);
	returned(g, rc);
	return false;
}

/* After the handler returned rc (ctx->lock held): true when the group is
 * to be ended with rc, which the caller does for the batch at once
 * (group_end_n(), inline on this hot path). */
static bool handle_post(struct iopf_ctx *ctx, struct iopf_group *g, int rc)
{
	uint8_t st = gst(g);
	bool live = st == GS_HANDLING || st == GS_RETURNED;

	if (rc == IOPF_DEFER) {
		if (live)
			gst_set(g, GS_DEFERRED);
		return false;
	}
	if (rc != IOPF_CODE_SUCCESS && rc != IOPF_CODE_INVALID) {
		iopf__log(ctx, LOG_W,
			  "handler returned %d for dev %u prgi %u: answered INVALID",
			  rc, g->key.dev_id, g->key.prgi);
		if (live) { /* INVALID from libiopf: counted as such */
			iopf__group_end_auto(ctx, g, END_ANSWERED);
			return false;
		}
	}
	if (live)
		return true;
	/* It answered by handle too, or the group was ended meanwhile
	 * (detach, close, flush, deadline, device gone): never twice. */
	ctx->st.refused_answers++;
	iopf__log(ctx, LOG_I, "handler's answer for dev %u prgi %u refused: %s",
		  g->key.dev_id, g->key.prgi, strerror(-iopf__end_error(g->end)));
	return false;
}

/* Handlers run in batches of up to HANDLE_BATCH groups with the lock
 * taken twice in all, not twice a group: once to hand them out and mark
 * them (batch_pre(), in the same hold as the hand-out when dispatch()
 * hands them out), once to apply their answers (batch_post()). The
 * groups are pinned by the queue they came from; unpinned at the end. */
#define HANDLE_BATCH 256
/* A batch handler gets at most this many groups a call (the API says so) */
#define BATCH_CALL_MAX 64

struct hbatch {
	/* each group's binding, referenced (handle_pre()), when there is
	 * no one binding for them all */
	struct binding *b[HANDLE_BATCH];
	bool call[HANDLE_BATCH]; /* its handler was called: rc[] holds */
	int rc[HANDLE_BATCH];
	struct binding *one; /* every group's, referenced once; or NULL */
	uint64_t ends;       /* ctx->nends when handed out */
	bool one_flow;       /* all of one flow, in its order */
	int bmax;            /* groups a batch handler call: 64, or 1 for
			      * a worker's (as documented since 1.2) */
};

/* Without keyed handlers every group has the same one: resolved once
 * (the lock is held, so it cannot change meanwhile), and referenced once
 * for all of them (batch_pre()). NULL: looked up for each group. */
static struct binding *one_binding(struct iopf_ctx *ctx)
{
	return ctx->handlers.n ? NULL : iopf__handler_any(ctx);
}

/* handle_pre() needs nothing but the mark: one handler takes them all and
 * no device is gone. Then the hand-out marks them (same lock hold). */
static bool mark_at_handout(struct iopf_ctx *ctx)
{
	return !ctx->nthreads && !ctx->ngone && one_binding(ctx);
}

/* ctx->lock held. A group to be handled is marked HANDLING, the rest are
 * ended or were already: the state says which, so that nothing else is
 * kept for a batch with one handler. marked: the hand-out did it, in this
 * lock hold (mark_at_handout()). */
static void batch_pre(struct iopf_ctx *ctx, struct iopf_group **gs, int n,
		      struct hbatch *hb, bool marked)
{
	struct binding *one = one_binding(ctx);

	if (one && !ctx->ngone) {
		/* handle_pre() when no device is gone and one handler takes
		 * them all: a group still QUEUED is marked, the rest skipped */
		for (int i = 0; i < n && !marked; i++)
			if (gst(gs[i]) == GS_QUEUED)
				gst_set(gs[i], GS_HANDLING);
	} else {
		for (int i = 0; i < n; i++)
			hb->b[i] = handle_pre(ctx, gs[i], one);
	}
	hb->one = one;
	hb->ends = ctx->nends;
	if (one)
		one->refs++;
}

/* The batch handler's call for the nb groups gathered: their codes as rc. */
static void batch_call(struct binding *batch, struct iopf_group **bg, int *bi,
		       int *bcode, int nb, int *rc)
{
	batch->batch(bg, bcode, (size_t)nb, batch->ud);
	for (int j = 0; j < nb; j++) {
		rc[bi[j]] = bcode[j];
		IOPF_TRACE_HANDLER_END(bg[j], bcode[j]);
		returned(bg[j], bcode[j]);
	}
}

/* Call the handlers, then apply their answers. No lock held on entry. */
static void batch_run(struct iopf_ctx *ctx, struct iopf_group **gs, int n,
		      struct hbatch *hb)
{
	struct binding *batch = NULL, **b = hb->b;
	bool *call = hb->call;
	int *rc = hb->rc;
	struct iopf_group *bg[BATCH_CALL_MAX], *eg[HANDLE_BATCH];
	int bi[BATCH_CALL_MAX], nb = 0, bcode[BATCH_CALL_MAX];
	int ec[HANDLE_BATCH], ne = 0;
	bool all = false; /* every group answered by its handler, RETURNED */

	iopf__in_callback++;
	/* An earlier handler, or another thread, may have ended a group
	 * since (a flush, a detach, an answer by PRG index): it is looked at
	 * again, without the lock, right before its handler would run (a
	 * group batch_pre() did not mark is not HANDLING either: it ended).
	 * A group ended after this check is still handled, and its
	 * handler's answer refused. */
	if (hb->one && hb->one->kind != B_BATCH) {
		/* one handler for them all: its function and userdata read
		 * once (a binding does not change; a new one replaces it) */
		iopf_handler_fn fn = hb->one->fn;
		void *ud = hb->one->ud;

		all = true;
#ifndef __clang__ /* which cannot unroll it, and says so */
#pragma GCC unroll 2
#endif
		for (int i = 0; i < n; i++) {
			struct iopf_group *g = gs[i];

			if (!(call[i] = gst(g) == GS_HANDLING)) {
				all = false;
				continue;
			}
			IOPF_TRACE_HANDLER_START(g);
			rc[i] = fn(g, ud);
			IOPF_TRACE_HANDLER_END(g, rc[i]);
			all &= returned_answer(g, rc[i]);
		}
	} else if (hb->one) {
		/* one batch handler for them all: each run of groups still
		 * HANDLING handed over where it lies, bmax at a time */
		struct binding *bd = hb->one;

		all = true;
		for (int i = 0; i < n;) {
			int j = i;
			bool skip = false;

			while (j < n && j - i < hb->bmax) {
				if (!(call[j] = gst(gs[j]) == GS_HANDLING)) {
					all = false;
					skip = true;
					break;
				}
				IOPF_TRACE_HANDLER_START(gs[j]);
				rc[j++] = IOPF_CODE_INVALID;
			}
			if (j > i) {
				bd->batch(gs + i, rc + i, (size_t)(j - i), bd->ud);
				for (int k = i; k < j; k++) {
					IOPF_TRACE_HANDLER_END(gs[k], rc[k]);
					all &= returned_answer(gs[k], rc[k]);
				}
			}
			i = j + skip;
		}
	} else {
		for (int i = 0; i < n; i++) {
			/* HANDLING: handle_pre() found it a binding */
			struct binding *bd = b[i];

			if (!(call[i] = gst(gs[i]) == GS_HANDLING))
				continue;
			if (bd->kind == B_BATCH) { /* one call for them all */
				batch = bd; /* one lock hold resolved them: one */
				bg[nb] = gs[i];
				IOPF_TRACE_HANDLER_START(gs[i]);
				bcode[nb] = IOPF_CODE_INVALID;
				bi[nb++] = i;
				if (nb == hb->bmax) {
					batch_call(batch, bg, bi, bcode, nb, rc);
					nb = 0;
				}
				continue;
			}
			IOPF_TRACE_HANDLER_START(gs[i]);
			rc[i] = bd->fn(gs[i], bd->ud);
			IOPF_TRACE_HANDLER_END(gs[i], rc[i]);
			returned(gs[i], rc[i]);
		}
		if (nb)
			batch_call(batch, bg, bi, bcode, nb, rc);
	}
	iopf__in_callback--;

	pthread_mutex_lock(&ctx->lock);
	iopf__tick(ctx);
	/* RETURNED is still live, and handled: an answer, when it is one.
	 * Most often every group of the batch is: they are ended as they
	 * are. Known without looking when every handler returned an answer
	 * and its group became RETURNED, and no group has ended since the
	 * hand-out (only an end moves a group on from RETURNED); else each
	 * is looked at (the rest: handle_post()). */
	if (all && ctx->nends == hb->ends)
		ne = n;
	else
		while (ne < n && gst(gs[ne]) == GS_RETURNED &&
		       (unsigned int)rc[ne] <= IOPF_CODE_INVALID)
			ne++;
	if (ne < n || !hb->one) {
		ne = 0;
		for (int i = 0; i < n; i++) {
			struct iopf_group *g = gs[i];

			if ((gst(g) == GS_RETURNED &&
			     (unsigned int)rc[i] <= IOPF_CODE_INVALID) ||
			    (call[i] && handle_post(ctx, g, rc[i]))) {
				eg[ne] = g;
				ec[ne++] = rc[i];
			} else {
				group_unpin(ctx, g);
			}
			if (!hb->one)
				iopf__binding_put(ctx, b[i]);
		}
		gs = eg;
		rc = ec;
	}
	iopf__binding_put(ctx, hb->one);
	/* the queue's pins on them given up there */
	if (ne)
		group_end_n(ctx, gs, rc, (unsigned int)ne, END_ANSWERED, false,
			    true, hb->one_flow);
	if (iopf__dispatch_ctx != ctx)
		iopf__wake(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver(ctx); /* and the destroy callbacks due */
}

/* A worker's groups (n <= HANDLE_BATCH). No lock held on entry. */
void iopf__handle_batch(struct iopf_ctx *ctx, struct iopf_group **gs, int n)
{
	struct hbatch hb;

	hb.bmax = 1;
	hb.one_flow = false; /* a worker's share: any flows */
	pthread_mutex_lock(&ctx->lock);
	batch_pre(ctx, gs, n, &hb, false);
	pthread_mutex_unlock(&ctx->lock);
	batch_run(ctx, gs, n, &hb);
}

static void arm_timer(struct iopf_ctx *ctx)
{
	uint64_t at = 0;
	struct itimerspec its = { 0 };
	struct iopf_group *oldest = ctx->deadline_ms ? iopf__deadline_oldest(ctx) : NULL;

	if (oldest)
		at = oldest->t_in + (uint64_t)ctx->deadline_ms * 1000000u;
	if (ctx->nremoving) { /* look again soon for a removal's node */
		uint64_t soon = iopf__now_ns() + 5000000u;

		if (!at || soon < at)
			at = soon;
	}
	if (at == ctx->timer_armed)
		return;
	ctx->timer_armed = at;
	its.it_value.tv_sec = (time_t)(at / 1000000000u);
	its.it_value.tv_nsec = (long)(at % 1000000000u);
	timerfd_settime(ctx->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Answer INVALID every group outstanding past its deadline. They are kept
 * in intake order, so only the oldest needs looking at. The clock is read
 * only with deadlines set. */
static void expire(struct iopf_ctx *ctx)
{
	uint64_t dl = (uint64_t)ctx->deadline_ms * 1000000u, now;
	struct iopf_group *g;

	if (!ctx->deadline_ms)
		return;
	now = iopf__tick(ctx);
	while ((g = iopf__deadline_oldest(ctx)) && g->t_in + dl <= now) {
		ctx->st.deadline_expired++;
		iopf__log(ctx, LOG_W,
			  "dev %u prgi %u unanswered after %u ms: answered INVALID",
			  g->key.dev_id, g->key.prgi, ctx->deadline_ms);
		iopf__group_end_auto(ctx, g, END_DEADLINE);
	}
}

/* The locked part of a round: everything but calling handlers. */
static int round_locked(struct iopf_ctx *ctx, struct iopf_group **cancel)
{
	struct epoll_event ev[32];
	bool uevents = false;
	int n, rc = 0;

	n = epoll_wait(ctx->epfd, ev, 32, 0);
	for (int i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;
		uint64_t v;

		if (p == IOPF_TAG_WAKE) {
			atomic_store(&ctx->wake_pending, false);
			(void)!read(ctx->wakefd, &v, sizeof(v));
		} else if (p == IOPF_TAG_TIMER) {
			(void)!read(ctx->timerfd, &v, sizeof(v));
			ctx->timer_armed = 0;
		} else if (p == IOPF_TAG_UEVENT) {
			uevents = true;
		} else {
			struct iopf_source *s = p;

			s->readable = true;
			/* A hang-up or error: the fd is dead (an adopted
			 * socket's peer went away; a fault fd never hangs
			 * up) and no answer could be written to it. */
			if (ev[i].events & (EPOLLHUP | EPOLLERR)) {
				iopf__source_fail(ctx, s, "poll", 0);
				rc = -EIO;
			}
		}
	}
	/* Removals first: they drop answers that must not be written. Then
	 * answers: they free cookies and room the reads may use. */
	if (uevents)
		iopf__watch_read(ctx, cancel);
	if (ctx->nremoving)
		iopf__devices_confirm(ctx, cancel);
	iopf__flush_all(ctx);
	throttle_all(ctx);
	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		if (!s->readable)
			continue;
		s->readable = false;
		if (s->ops->read && !s->failed && s->ops->read(ctx, s) < 0)
			rc = -EIO;
	}
	expire(ctx);
	return rc;
}

/* One call: a round, then groups handed out in turn until none is left
 * of those ready when it began (groups submitted meanwhile wait for the
 * next call), or the budget is spent. */
static int dispatch(struct iopf_ctx *ctx, unsigned int max_groups,
		    unsigned int max_us)
{
	struct iopf_group *cancel = NULL;
	uint64_t left, t_end = 0;
	int rc, handled = 0;
	bool cut = false;

	if (!ctx)
		return -EINVAL;
	if (iopf__in_callback)
		return -EDEADLK;
	if (atomic_exchange(&ctx->busy, true))
		return -EBUSY;
	iopf__dispatch_ctx = ctx;
	if (!max_groups)
		max_groups = ctx->dispatch_max_groups;
	if (!max_us)
		max_us = ctx->dispatch_max_us;

	pthread_mutex_lock(&ctx->lock);
	rc = round_locked(ctx, &cancel);
	left = ctx->sched.nready;
	if (max_us)
		t_end = iopf__tick(ctx) + (uint64_t)max_us * 1000u;
	pthread_mutex_unlock(&ctx->lock);
	iopf__cancel_deliver(ctx, cancel);
	iopf__deliver(ctx);
	iopf__vevents_deliver(ctx);

	while (left) {
		struct iopf_group *batch[HANDLE_BATCH];
		struct hbatch hb;
		/* with a time budget, one group at a time: the clock is
		 * read before each handler starts */
		int n = 0, most = t_end ? 1 : HANDLE_BATCH;
		bool marked;

		if (max_groups && (unsigned int)handled >= max_groups) {
			cut = true;
			break;
		}
		/* at least one group a call, however small the budget (or
		 * however long the round's reads took): always progress */
		if (t_end && handled && iopf__now_ns() >= t_end) {
			cut = true;
			break;
		}
		if (max_groups && max_groups - (unsigned int)handled < (unsigned int)most)
			most = (int)(max_groups - (unsigned int)handled);
		if ((uint64_t)most > left)
			most = (int)left;
		pthread_mutex_lock(&ctx->lock);
		marked = mark_at_handout(ctx);
		n = (int)iopf__sched_pop_n(ctx, batch, (unsigned int)most, marked,
					   &hb.one_flow);
		hb.bmax = BATCH_CALL_MAX;
		if (!ctx->nthreads) /* handed out and marked in one hold */
			batch_pre(ctx, batch, n, &hb, marked);
		pthread_mutex_unlock(&ctx->lock);
		left = n < most ? 0 : left - (uint64_t)n;
		handled += n;
		if (ctx->nthreads) {
			iopf__workers_push(ctx, batch, (unsigned int)n);
		} else if (n) {
			batch_run(ctx, batch, n, &hb);
		}
	}

	pthread_mutex_lock(&ctx->lock);
	if (cut && ctx->sched.nready)
		ctx->st.dispatch_slices++;
	iopf__flush_all(ctx);
	throttle_all(ctx);
	arm_timer(ctx);
	if (ctx->sched.nready) /* left over, or submitted by a callback */
		iopf__wake(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver(ctx); /* and the destroy callbacks due */

	iopf__dispatch_ctx = NULL;
	atomic_store(&ctx->busy, false);
	return rc < 0 ? rc : handled;
}

IOPF_API int iopf_ctx_dispatch(struct iopf_ctx *ctx)
{
	return dispatch(ctx, 0, 0);
}

IOPF_API int iopf_ctx_dispatch_bounded(struct iopf_ctx *ctx,
				       unsigned int max_groups,
				       unsigned int max_us)
{
	return dispatch(ctx, max_groups, max_us);
}

IOPF_API int iopf_ctx_run(struct iopf_ctx *ctx)
{
	int rc = 0;

	if (!ctx)
		return -EINVAL;
	if (iopf__in_callback)
		return -EDEADLK;
	atomic_fetch_add(&ctx->looping, 1);
	while (!atomic_load(&ctx->stop)) {
		struct pollfd p = { .fd = ctx->epfd, .events = POLLIN };
		int d;

		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		d = iopf_ctx_dispatch(ctx);
		if (d < 0 && d != -EIO && d != -EBUSY) {
			rc = d;
			break;
		}
	}
	atomic_store(&ctx->stop, false);
	atomic_fetch_sub(&ctx->looping, 1);
	return rc;
}

IOPF_API int iopf_ctx_stop(struct iopf_ctx *ctx)
{
	uint64_t one = 1;

	if (!ctx)
		return -EINVAL;
	atomic_store(&ctx->stop, true);
	(void)!write(ctx->wakefd, &one, sizeof(one));
	return 0;
}

IOPF_API int iopf_ctx_flush(struct iopf_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	iopf__flush_all(ctx);
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

/* 1: drained; 0: not yet; -EMSGSIZE: a queue holds a group that cannot
 * be read, so it never will be. */
static int drained(struct iopf_ctx *ctx, uint32_t dev, uint32_t pasid,
		   unsigned int flags)
{
	struct iopf_group *g;

	FOR_EACH_LIVE(ctx, i, g)
		if (key_match(&g->key, dev, pasid, flags))
			return 0;
	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		if (s->stuck)
			return -EMSGSIZE;
		if (s->ops->waiting(ctx, s))
			return 0;
	}
	return 1;
}

IOPF_API int iopf_ctx_drain(struct iopf_ctx *ctx, uint32_t dev_id,
			    uint32_t pasid, unsigned int flags, int timeout_ms)
{
	uint64_t end = 0;
	int rc;

	if (!ctx || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	if (iopf__in_callback)
		return -EDEADLK;
	if (timeout_ms >= 0)
		end = iopf__now_ns() + (uint64_t)timeout_ms * 1000000u;

	pthread_mutex_lock(&ctx->lock);
	for (;;) {
		uint64_t now, slice_ms = 20;
		bool other;

		iopf__flush_all(ctx);
		if ((rc = drained(ctx, dev_id, pasid, flags)))
			break;
		now = iopf__now_ns();
		if (end && now >= end) {
			rc = -ETIMEDOUT;
			break;
		}
		if (end && (end - now) / 1000000u < slice_ms)
			slice_ms = (end - now) / 1000000u + 1;
		other = atomic_load(&ctx->busy) || atomic_load(&ctx->looping);
		if (other) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(slice_ms * 1000000u);
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			ctx->drainers++;
			pthread_cond_timedwait(&ctx->answered, &ctx->lock, &ts);
			ctx->drainers--;
		} else {
			/* Nobody else dispatches: do it here. */
			struct pollfd p = { .fd = ctx->epfd, .events = POLLIN };

			pthread_mutex_unlock(&ctx->lock);
			poll(&p, 1, (int)slice_ms);
			iopf_ctx_dispatch(ctx);
			pthread_mutex_lock(&ctx->lock);
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	return rc < 0 ? rc : 0;
}
