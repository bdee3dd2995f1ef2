/* SPDX-License-Identifier: MIT */
/*
 * source.c - what every source has: registration in the context's epoll
 * set, detach (the kernel answered a device's groups itself) and close
 * (libiopf answers every outstanding group INVALID).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

struct iopf_source *iopf__source_new(struct iopf_ctx *ctx, enum src_kind kind)
{
	struct iopf_source *src = calloc(1, sizeof(*src));

	if (!src) {
		errno = ENOMEM;
		return NULL;
	}
	src->ctx = ctx;
	src->kind = kind;
	src->fd = -1;
	return src;
}

int iopf__epoll_set(struct iopf_ctx *ctx, struct iopf_source *src, int op,
		    uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(ctx->epfd, op, src->fd, &ev) ? -errno : 0;
}

static void unlink_source(struct iopf_ctx *ctx, struct iopf_source *src)
{
	if (src->prev)
		src->prev->next = src->next;
	else if (ctx->sources == src)
		ctx->sources = src->next;
	if (src->next)
		src->next->prev = src->prev;
	src->next = src->prev = NULL;
}

/* ctx->lock held. Producer answers land on this thread's response list:
 * the caller delivers them after unlocking. */
void iopf__source_close_locked(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct iopf_group *g, *nx;
	unsigned int n = 0;

	for (g = ctx->out_head; g; g = nx) {
		nx = g->next;
		if (g->src != src)
			continue;
		iopf__group_answer(ctx, g, IOPF_CODE_INVALID, END_CLOSED, true);
		n++;
	}
	if (src->kind == SRC_FAULTQ) {
		iopf__batch_flush(ctx, src);
		epoll_ctl(ctx->epfd, EPOLL_CTL_DEL, src->fd, NULL);
		if (src->own_fd)
			iopf__sys->close(src->fd);
		HASH_ITER(hh_cookie, src->by_cookie, g, nx) {
			HASH_DELETE(hh_cookie, src->by_cookie, g);
			g->in_cookie = false;
		}
	} else {
		iopf__producer_free_partials(ctx, src, NULL, IOPF_ALL_DEVICES);
	}
	if (n)
		iopf__log(ctx, LOG_I, "source closed: %u outstanding groups answered INVALID",
			  n);
	unlink_source(ctx, src);
	free(src->buf);
	free(src->batch);
	free(src->wbuf);
	free(src);
}

IOPF_API void iopf_source_close(struct iopf_source *src)
{
	struct iopf_ctx *ctx;

	if (!src)
		return;
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	iopf__source_close_locked(ctx, src);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver_responses(ctx);
}

IOPF_API int iopf_source_detach(struct iopf_source *src, uint32_t dev_id,
				uint32_t pasid, unsigned int flags)
{
	struct iopf_ctx *ctx;
	struct iopf_group *g, *nx;
	int n = 0;

	if (!src || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	for (g = ctx->out_head; g; g = nx) {
		nx = g->next;
		if (g->src != src || !key_match(&g->key, dev_id, pasid, flags))
			continue;
		iopf__group_end(ctx, g, END_DETACHED);
		ctx->st.kernel_answered++;
		n++;
	}
	/* Answers we queued but have not written: the kernel answered those
	 * groups first, and their cookies may be handed out again. */
	for (unsigned int i = 0; i < src->nbatch; i++) {
		struct batch_ent *e = &src->batch[i];

		g = e->g;
		if (g && g->gen == e->gen && g->state == G_PENDING &&
		    key_match(&g->key, dev_id, pasid, flags))
			iopf__group_end(ctx, g, END_ANSWERED);
	}
	if (src->kind == SRC_PRODUCER) {
		struct prg_key k = { .dev_id = dev_id, .pasid = pasid };

		iopf__producer_free_partials(ctx, src, &k, flags);
	}
	if (n)
		iopf__log(ctx, LOG_I,
			  "dev %u detached: %d outstanding groups answered by the kernel",
			  dev_id, n);
	pthread_mutex_unlock(&ctx->lock);
	return n;
}

IOPF_API int iopf_source_get_fd(const struct iopf_source *src)
{
	return src && src->kind == SRC_FAULTQ ? src->fd : -EINVAL;
}

IOPF_API uint32_t iopf_source_get_fault_id(const struct iopf_source *src)
{
	return src ? src->fault_id : 0;
}
