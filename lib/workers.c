/* SPDX-License-Identifier: MIT */
/*
 * workers.c - an optional pool of threads calling handlers in parallel.
 * A group's records stay in order (one handler call per group); groups run
 * in any order. Answers from workers join the batch and wake the loop.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

static void *worker_main(void *arg)
{
	struct iopf_ctx *ctx = arg;

	for (;;) {
		struct iopf_group *g;

		pthread_mutex_lock(&ctx->wq_lock);
		while (!ctx->wq_head && !ctx->wq_stop)
			pthread_cond_wait(&ctx->wq_cond, &ctx->wq_lock);
		if (ctx->wq_stop) {
			pthread_mutex_unlock(&ctx->wq_lock);
			return NULL;
		}
		g = ctx->wq_head;
		ctx->wq_head = g->qnext;
		if (!ctx->wq_head)
			ctx->wq_tail = NULL;
		pthread_mutex_unlock(&ctx->wq_lock);
		g->qnext = NULL;
		iopf__handle_batch(ctx, &g, 1);
	}
}

void iopf__workers_push(struct iopf_ctx *ctx, struct iopf_group *g)
{
	pthread_mutex_lock(&ctx->wq_lock);
	g->qnext = NULL;
	if (ctx->wq_tail)
		ctx->wq_tail->qnext = g;
	else
		ctx->wq_head = g;
	ctx->wq_tail = g;
	pthread_cond_signal(&ctx->wq_cond);
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
