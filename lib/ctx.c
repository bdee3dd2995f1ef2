/* SPDX-License-Identifier: MIT */
/*
 * ctx.c - the context: options, its fds, handler registry, statistics and
 * teardown (every outstanding group answered INVALID before it goes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

static int add_fd(struct iopf_ctx *ctx, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

IOPF_API struct iopf_ctx *iopf_ctx_new(const struct iopf_ctx_opts *opts)
{
	struct iopf_ctx_opts o = { .sz = sizeof(o) };
	struct iopf_ctx *ctx;
	const char *env;
	int err;

	if (opts && iopf__opts_copy(&o, sizeof(o), opts,
				    sizeof(struct iopf_ctx_opts))) {
		errno = EINVAL;
		return NULL;
	}
	if (o.log_level < 0 || o.log_level > 7 || o.workers > 1024 ||
	    (o.flags & ~(IOPF_CTX_PASID_STATS | IOPF_CTX_POISON))) {
		errno = EINVAL;
		return NULL;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	if (!ctx) {
		errno = ENOMEM;
		return NULL;
	}
	ctx->workers = o.workers;
	ctx->batch_max = o.batch_max ? o.batch_max : IOPF_DEFAULT_BATCH;
	ctx->max_outstanding = o.max_outstanding;
	ctx->deadline_ms = o.deadline_ms;
	ctx->tracked = o.deadline_ms != 0;
	ctx->log_fn = o.log_fn;
	ctx->log_ud = o.log_userdata;
	ctx->log_level = o.log_level ? o.log_level : LOG_W;
	ctx->dispatch_max_groups = o.dispatch_max_groups;
	ctx->dispatch_max_us = o.dispatch_max_us;
	ctx->flags = o.flags;
	/* a debug switch for a program one cannot rebuild */
	if ((env = secure_getenv("IOPF_DEBUG")) && strstr(env, "poison"))
		ctx->flags |= IOPF_CTX_POISON;
	ctx->st.sz = sizeof(ctx->st);
	ctx->epfd = ctx->wakefd = ctx->timerfd = -1;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->wq_lock, NULL);
	pthread_cond_init(&ctx->wq_cond, NULL);
	pthread_cond_init(&ctx->answered, NULL);
	pthread_cond_init(&ctx->quiesced, NULL);
	if (iopf__sched_init(ctx)) {
		err = ENOMEM;
		goto fail;
	}

	ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
	ctx->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ctx->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ctx->epfd < 0 || ctx->wakefd < 0 || ctx->timerfd < 0) {
		err = errno;
		goto fail;
	}
	if ((err = -add_fd(ctx, ctx->wakefd, IOPF_TAG_WAKE)) ||
	    (err = -add_fd(ctx, ctx->timerfd, IOPF_TAG_TIMER)))
		goto fail;
	if (ctx->workers && (err = -iopf__workers_start(ctx)))
		goto fail;
	return ctx;
fail:
	iopf_ctx_free(ctx);
	errno = err;
	return NULL;
}

IOPF_API void iopf_ctx_free(struct iopf_ctx *ctx)
{
	struct iopf_group *g, *nx;

	if (!ctx)
		return;
	if (iopf__in_callback) {
		/* A handler's own context is in use below it on the stack
		 * (or on a worker thread waiting for it): refused. */
		iopf__log(ctx, LOG_E,
			  "iopf_ctx_free() called from a callback: refused; stop the loop and free it from outside");
		return;
	}
	if (ctx->nthreads)
		iopf__workers_stop(ctx);
	pthread_mutex_lock(&ctx->lock);
	iopf__watch_close(ctx);
	while (ctx->sources)
		iopf__source_close_locked(ctx, ctx->sources);
	/* Groups left in a queue were ended above; let the queues go. */
	for (g = ctx->wq_head; g; g = nx) {
		nx = g->qnext;
		iopf__group_unpin(ctx, g);
	}
	while ((g = iopf__sched_pop(ctx)))
		iopf__group_unpin(ctx, g);
	ctx->wq_head = ctx->wq_tail = NULL;
	ctx->wq_len = 0;
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver(ctx);
	iopf__devices_free(ctx);

	iopf__handlers_free(ctx);
	tbl_free(&ctx->devflags);
	iopf__groups_free(ctx);
	iopf__sched_free(ctx);
	if (ctx->epfd >= 0)
		close(ctx->epfd);
	if (ctx->wakefd >= 0)
		close(ctx->wakefd);
	if (ctx->timerfd >= 0)
		close(ctx->timerfd);
	pthread_cond_destroy(&ctx->answered);
	pthread_cond_destroy(&ctx->quiesced);
	pthread_cond_destroy(&ctx->wq_cond);
	pthread_mutex_destroy(&ctx->wq_lock);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

IOPF_API int iopf_ctx_get_fd(const struct iopf_ctx *ctx)
{
	return ctx ? ctx->epfd : -EINVAL;
}

IOPF_API int iopf_ctx_set_log(struct iopf_ctx *ctx, iopf_log_fn fn,
			      void *userdata, int level)
{
	if (!ctx || level < 0 || level > 7)
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	ctx->log_fn = fn;
	ctx->log_ud = userdata;
	ctx->log_level = level ? level : LOG_W;
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

IOPF_API int iopf_ctx_get_stats(struct iopf_ctx *ctx, struct iopf_stats *st)
{
	struct iopf_stats cur;
	size_t n;

	if (!ctx || !st || st->sz < sizeof(st->sz))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	cur = ctx->st;
	cur.outstanding = ctx->outstanding;
	cur.partial_held = ctx->partial_held;
	iopf__sched_totals(ctx, &cur);
	pthread_mutex_unlock(&ctx->lock);
	n = st->sz < sizeof(cur) ? st->sz : sizeof(cur);
	cur.sz = st->sz;
	memcpy(st, &cur, n);
	return 0;
}

IOPF_API uint64_t iopf_stats_latency_ns(const struct iopf_stats *st, double q)
{
	uint64_t total = 0, acc = 0;

	if (!st || st->sz < offsetof(struct iopf_stats, latency_hist) +
				    sizeof(st->latency_hist))
		return 0;
	for (int i = 0; i < IOPF_LAT_BUCKETS; i++)
		total += st->latency_hist[i];
	if (!total)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	for (int i = 0; i < IOPF_LAT_BUCKETS; i++) {
		acc += st->latency_hist[i];
		if ((double)acc >= q * (double)total && acc)
			return (uint64_t)2 << i;
	}
	return (uint64_t)1 << IOPF_LAT_BUCKETS;
}
