/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - the event loop side: one pollable fd for everything, a
 * non-blocking dispatch round (flush, read, expire, handle, flush), a
 * blocking run loop, and drain.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define TAG_WAKE ((void *)1)
#define TAG_TIMER ((void *)2)

_Thread_local int iopf__in_handler;
_Thread_local struct iopf_ctx *iopf__dispatch_ctx;

/* Make the context fd readable so that gathered answers get written.
 * One eventfd write until the next dispatch round consumes it. */
void iopf__wake(struct iopf_ctx *ctx)
{
	uint64_t one = 1;

	if (!atomic_exchange(&ctx->wake_pending, true))
		(void)!write(ctx->wakefd, &one, sizeof(one));
}

void iopf__ready_push(struct iopf_ctx *ctx, struct iopf_group *g)
{
	g->pins++;
	g->rnext = NULL;
	if (ctx->ready_tail)
		ctx->ready_tail->rnext = g;
	else
		ctx->ready_head = g;
	ctx->ready_tail = g;
}

/* Before a handler runs (ctx->lock held): answer it ourselves if its
 * device is gone or nobody handles it, else mark it HANDLING. Returns
 * whether to call the handler; *answered if we answered. */
static bool handle_pre(struct iopf_ctx *ctx, struct iopf_group *g,
		       bool *answered)
{
	if (g->state != G_READY) /* detached, closed or gone before its turn */
		return false;
	if (ctx->ngone && iopf__dev_is_gone(ctx, g->key.dev_id)) {
		/* Read after its device went away (or from a new device the
		 * caller has not registered under the reused id). */
		iopf__log(ctx, LOG_W, "group for gone dev %u: answered INVALID",
			  g->key.dev_id);
		*answered |= !iopf__group_answer(ctx, g, IOPF_CODE_INVALID,
						 END_ANSWERED, true);
		return false;
	}
	if (!g->fn) {
		ctx->st.no_handler++;
		iopf__log(ctx, LOG_W,
			  "no handler for dev %u pasid %#x: answered INVALID",
			  g->key.dev_id, g->key.pasid);
		*answered |= !iopf__group_answer(ctx, g, IOPF_CODE_INVALID,
						 END_ANSWERED, true);
		return false;
	}
	g->state = G_HANDLING;
	return true;
}

/* After the handler returned rc (ctx->lock held). */
static void handle_post(struct iopf_ctx *ctx, struct iopf_group *g, int rc,
			bool *answered)
{
	if (rc == IOPF_DEFER)
		return;
	if (rc != IOPF_CODE_SUCCESS && rc != IOPF_CODE_INVALID) {
		iopf__log(ctx, LOG_W,
			  "handler returned %d for dev %u prgi %u: answered INVALID",
			  rc, g->key.dev_id, g->key.prgi);
		if (g->state == G_HANDLING)
			*answered |= !iopf__group_answer(ctx, g, IOPF_CODE_INVALID,
							 END_ANSWERED, true);
		return;
	}
	if (g->state == G_HANDLING) {
		*answered |= !iopf__group_answer(ctx, g, (uint32_t)rc,
						 END_ANSWERED, false);
		return;
	}
	/* It answered by handle too, or the group was detached, closed,
	 * expired or its device went away meanwhile: never a second answer. */
	ctx->st.refused_answers++;
	iopf__log(ctx, LOG_I, "handler's answer for dev %u prgi %u refused: %s",
		  g->key.dev_id, g->key.prgi,
		  g->end == END_GONE ? "device gone" : "group already answered");
}

/* Call the handlers of up to HANDLE_BATCH groups with the lock taken
 * twice in all, not twice a group. The groups are pinned by the ready
 * queue; unpinned here. No lock held on entry. */
#define HANDLE_BATCH 64

static void handle_batch(struct iopf_ctx *ctx, struct iopf_group **gs, int n)
{
	iopf_handler_fn fn[HANDLE_BATCH];
	void *ud[HANDLE_BATCH];
	bool call[HANDLE_BATCH], answered = false;
	int rc[HANDLE_BATCH];
	unsigned int drops;

	pthread_mutex_lock(&ctx->lock);
	for (int i = 0; i < n; i++) {
		call[i] = handle_pre(ctx, gs[i], &answered);
		/* copied now: once answered, a producer group's fn field
		 * holds its respond callback */
		fn[i] = gs[i]->fn;
		ud[i] = gs[i]->fn_ud;
	}
	drops = atomic_load(&ctx->drops);
	pthread_mutex_unlock(&ctx->lock);

	iopf__in_handler++;
	for (int i = 0; i < n; i++) {
		/* An earlier handler (or another thread) detached, closed or
		 * lost a device: groups ended meanwhile are not handed on. */
		if (call[i] && atomic_load(&ctx->drops) != drops) {
			pthread_mutex_lock(&ctx->lock);
			drops = atomic_load(&ctx->drops);
			call[i] = gs[i]->state == G_HANDLING;
			pthread_mutex_unlock(&ctx->lock);
		}
		rc[i] = call[i] ? fn[i](gs[i], ud[i]) : IOPF_DEFER;
	}
	iopf__in_handler--;

	pthread_mutex_lock(&ctx->lock);
	for (int i = 0; i < n; i++) {
		if (call[i])
			handle_post(ctx, gs[i], rc[i], &answered);
		iopf__group_unpin(ctx, gs[i]);
	}
	if (answered && iopf__dispatch_ctx != ctx)
		iopf__wake(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver_responses(ctx);
}

/* One group (the worker pool's unit). */
void iopf__handle_one(struct iopf_ctx *ctx, struct iopf_group *g)
{
	handle_batch(ctx, &g, 1);
}

static void arm_timer(struct iopf_ctx *ctx)
{
	uint64_t at = 0;
	struct itimerspec its = { 0 };

	if (!ctx->deadline_ms)
		return;
	if (ctx->out_head)
		at = ctx->out_head->t_in + (uint64_t)ctx->deadline_ms * 1000000u;
	if (at == ctx->timer_armed)
		return;
	ctx->timer_armed = at;
	its.it_value.tv_sec = (time_t)(at / 1000000000u);
	its.it_value.tv_nsec = (long)(at % 1000000000u);
	timerfd_settime(ctx->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Answer INVALID every group outstanding past its deadline. The list is in
 * intake order, so only its head needs looking at. */
static void expire(struct iopf_ctx *ctx, uint64_t now)
{
	uint64_t dl = (uint64_t)ctx->deadline_ms * 1000000u;
	struct iopf_group *g;

	if (!ctx->deadline_ms)
		return;
	while ((g = ctx->out_head) && g->t_in + dl <= now) {
		ctx->st.deadline_expired++;
		iopf__log(ctx, LOG_W,
			  "dev %u prgi %u unanswered after %u ms: answered INVALID",
			  g->key.dev_id, g->key.prgi, ctx->deadline_ms);
		iopf__group_answer(ctx, g, IOPF_CODE_INVALID, END_DEADLINE,
				   true);
	}
}

static int round_locked(struct iopf_ctx *ctx, struct iopf_group **ready,
			struct iopf_group **cancel)
{
	struct epoll_event ev[32];
	bool uevents = false;
	int n, rc = 0;

	n = epoll_wait(ctx->epfd, ev, 32, 0);
	for (int i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;
		uint64_t v;

		if (p == TAG_WAKE) {
			atomic_store(&ctx->wake_pending, false);
			(void)!read(ctx->wakefd, &v, sizeof(v));
		} else if (p == TAG_TIMER) {
			(void)!read(ctx->timerfd, &v, sizeof(v));
			ctx->timer_armed = 0;
		} else if (p == IOPF_TAG_UEVENT) {
			uevents = true;
		} else {
			((struct iopf_source *)p)->readable = true;
		}
	}
	/* Removals first: they drop answers that must not be written. Then
	 * answers: they free cookies the reads may hand out again. */
	if (uevents)
		iopf__watch_read(ctx, cancel);
	iopf__flush_all(ctx);
	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		if (s->kind != SRC_FAULTQ || !s->readable)
			continue;
		s->readable = false;
		if (iopf__faultq_read(ctx, s) < 0)
			rc = -EIO;
	}
	expire(ctx, iopf__now_ns());
	*ready = ctx->ready_head;
	ctx->ready_head = ctx->ready_tail = NULL;
	return rc;
}

IOPF_API int iopf_ctx_dispatch(struct iopf_ctx *ctx)
{
	struct iopf_group *g, *nx, *cancel = NULL;
	int rc, handled = 0;

	if (!ctx)
		return -EINVAL;
	if (iopf__in_handler)
		return -EDEADLK;
	if (atomic_exchange(&ctx->busy, true))
		return -EBUSY;
	iopf__dispatch_ctx = ctx;

	pthread_mutex_lock(&ctx->lock);
	rc = round_locked(ctx, &g, &cancel);
	pthread_mutex_unlock(&ctx->lock);
	iopf__cancel_deliver(ctx, cancel);
	iopf__deliver_responses(ctx);

	while (g) {
		struct iopf_group *batch[HANDLE_BATCH];
		int n = 0;

		for (; g && n < HANDLE_BATCH; g = nx) {
			nx = g->rnext;
			g->rnext = NULL;
			if (ctx->nthreads)
				iopf__workers_push(ctx, g);
			else
				batch[n++] = g;
			handled++;
		}
		if (n)
			handle_batch(ctx, batch, n);
	}

	pthread_mutex_lock(&ctx->lock);
	iopf__flush_all(ctx);
	arm_timer(ctx);
	pthread_mutex_unlock(&ctx->lock);

	iopf__dispatch_ctx = NULL;
	atomic_store(&ctx->busy, false);
	return rc < 0 ? rc : handled;
}

IOPF_API int iopf_ctx_run(struct iopf_ctx *ctx)
{
	int rc = 0;

	if (!ctx)
		return -EINVAL;
	if (iopf__in_handler)
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

/* Drained: no matching group outstanding, and no fault queue holding
 * groups not yet read (they may be the device's). A paused queue is left
 * out: it is read again only as answers come in. */
static bool drained(struct iopf_ctx *ctx, uint32_t dev, uint32_t pasid,
		    unsigned int flags)
{
	for (struct iopf_group *g = ctx->out_head; g; g = g->next)
		if (key_match(&g->key, dev, pasid, flags))
			return false;
	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };

		if (s->kind == SRC_FAULTQ && !s->paused && !s->broken &&
		    iopf__sys->poll(&p, 1, 0) > 0 && (p.revents & POLLIN))
			return false;
	}
	return true;
}

IOPF_API int iopf_ctx_drain(struct iopf_ctx *ctx, uint32_t dev_id,
			    uint32_t pasid, unsigned int flags, int timeout_ms)
{
	uint64_t end = 0;

	if (!ctx || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	if (iopf__in_handler)
		return -EDEADLK;
	if (timeout_ms >= 0)
		end = iopf__now_ns() + (uint64_t)timeout_ms * 1000000u;

	pthread_mutex_lock(&ctx->lock);
	for (;;) {
		uint64_t now, slice_ms = 20;
		bool other;

		iopf__flush_all(ctx);
		if (drained(ctx, dev_id, pasid, flags))
			break;
		now = iopf__now_ns();
		if (end && now >= end) {
			pthread_mutex_unlock(&ctx->lock);
			return -ETIMEDOUT;
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
	return 0;
}
