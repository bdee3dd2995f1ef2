/* SPDX-License-Identifier: MIT */
/*
 * workers.c - an optional pool of threads calling handlers in parallel.
 * A group's records stay in order (one handler call per group); groups run
 * in any order. Answers from workers join the batch and wake the loop.
 * The dispatching thread queues a hand-out at once; a worker takes its
 * share of what waits (up to WORKER_TAKE), not one group a lock hold, and
 * not more than its share, so that slow handlers still spread over the
 * pool.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

#define WORKER_TAKE 16u

static void *worker_main(void *arg)
{
	struct iopf_ctx *ctx = arg;

	for (;;) {
		struct iopf_group *gs[WORKER_TAKE];
		unsigned int k, take;

		pthread_mutex_lock(&ctx->wq_lock);
		while (!ctx->wq_head && !ctx->wq_stop)
			pthread_cond_wait(&ctx->wq_cond, &ctx->wq_lock);
		if (ctx->wq_stop) {
			pthread_mutex_unlock(&ctx->wq_lock);
			return NULL;
		}
		/* its share of what waits: at least one, at most WORKER_TAKE */
		take = ctx->wq_len / ctx->workers;
		take = take < 1 ? 1 : take > WORKER_TAKE ? WORKER_TAKE : take;
		for (k = 0; k < take && ctx->wq_head; k++) {
			gs[k] = ctx->wq_head;
			ctx->wq_head = gs[k]->qnext;
			gs[k]->qnext = NULL;
		}
		if (!ctx->wq_head)
			ctx->wq_tail = NULL;
		ctx->wq_len -= k;
		pthread_mutex_unlock(&ctx->wq_lock);
		iopf__handle_batch(ctx, gs, (int)k);
	}
}

/* n groups handed out, to the pool's queue in one lock hold. */
void iopf__workers_push(struct iopf_ctx *ctx, struct iopf_group **gs,
			unsigned int n)
{
	if (!n)
		return;
	pthread_mutex_lock(&ctx->wq_lock);
	for (unsigned int i = 0; i < n; i++) {
		gs[i]->qnext = NULL;
		if (ctx->wq_tail)
			ctx->wq_tail->qnext = gs[i];
		else
			ctx->wq_head = gs[i];
		ctx->wq_tail = gs[i];
	}
	ctx->wq_len += n;
	if (n == 1)
		pthread_cond_signal(&ctx->wq_cond);
	else
		pthread_cond_broadcast(&ctx->wq_cond);
	pthread_mutex_unlock(&ctx->wq_lock);
}

int iopf__workers_start(struct iopf_ctx *ctx)
{
	ctx->threads = xcalloc(ctx->workers, sizeof(*ctx->threads));
	if (!ctx->threads)
		return -ENOMEM;
	for (unsigned int i = 0; i < ctx->workers; i++) {
		int rc = pthread_create(&ctx->threads[i], NULL, worker_main, ctx);

		if (rc) {
			iopf__workers_stop(ctx);
			return -rc;
		}
		ctx->nthreads++;
	}
	return 0;
}

/* Stop the pool; groups still queued stay pinned for the caller to close. */
void iopf__workers_stop(struct iopf_ctx *ctx)
{
	pthread_mutex_lock(&ctx->wq_lock);
	ctx->wq_stop = true;
	pthread_cond_broadcast(&ctx->wq_cond);
	pthread_mutex_unlock(&ctx->wq_lock);
	for (unsigned int i = 0; i < ctx->nthreads; i++)
		pthread_join(ctx->threads[i], NULL);
	ctx->nthreads = 0;
	free(ctx->threads);
	ctx->threads = NULL;
}
