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

	atomic_fetch_add(&ctx->drops, 1);
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

/* ctx->lock held. End, without an answer from us, every group of `src`
 * (NULL: every source) matching (dev, PASID, flags): the kernel answered
 * them. That covers groups outstanding and answers queued but not yet
 * written, whose cookies the kernel may hand out again. A group a handler
 * holds goes on *cancel, pinned, if cancel is given. Partial requests of a
 * producer are discarded. Returns how many outstanding groups ended;
 * *pending (if given) gets how many queued answers were dropped. */
int iopf__groups_drop(struct iopf_ctx *ctx, struct iopf_source *src,
		      uint32_t dev_id, uint32_t pasid, unsigned int flags,
		      enum grp_end why, struct iopf_group **cancel)
{
	struct prg_key k = { .dev_id = dev_id, .pasid = pasid };
	struct iopf_group *g, *nx;
	int n = 0;

	atomic_fetch_add(&ctx->drops, 1);
	for (g = ctx->out_head; g; g = nx) {
		nx = g->next;
		if ((src && g->src != src) ||
		    !key_match(&g->key, dev_id, pasid, flags))
			continue;
		if (cancel && g->state == G_HANDLING) {
			g->pins++;
			iopf__group_end(ctx, g, why);
			g->next = *cancel; /* free once off the out list */
			*cancel = g;
		} else {
			iopf__group_end(ctx, g, why);
		}
		n++;
	}
	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		if (src && s != src)
			continue;
		for (unsigned int i = 0; i < s->nbatch; i++) {
			struct batch_ent *e = &s->batch[i];

			g = e->g;
			if (g && g->gen == e->gen && g->state == G_PENDING &&
			    key_match(&g->key, dev_id, pasid, flags)) {
				iopf__group_end(ctx, g, END_ANSWERED);
				n++;
			}
		}
		if (s->kind == SRC_PRODUCER)
			iopf__producer_free_partials(ctx, s, &k, flags);
	}
	return n;
}

IOPF_API int iopf_source_detach(struct iopf_source *src, uint32_t dev_id,
				uint32_t pasid, unsigned int flags)
{
	struct iopf_ctx *ctx;
	int n;

	if (!src || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	n = iopf__groups_drop(ctx, src, dev_id, pasid, flags, END_DETACHED,
			      NULL);
	ctx->st.kernel_answered += (uint64_t)n;
	if (n)
		iopf__log(ctx, LOG_I,
			  "dev %u detached: %d groups answered by the kernel",
			  dev_id, n);
	pthread_mutex_unlock(&ctx->lock);
	return n;
}

/* ctx->lock held. Answer INVALID every outstanding group of `src` (NULL:
 * every source) matching (dev, PASID, flags), and discard the matching
 * partial requests of producers. Returns how many groups. */
int iopf__answer_invalid_locked(struct iopf_ctx *ctx, struct iopf_source *src,
				uint32_t dev_id, uint32_t pasid,
				unsigned int flags)
{
	struct prg_key k = { .dev_id = dev_id, .pasid = pasid };
	struct iopf_group *g, *nx;
	int n = 0;

	atomic_fetch_add(&ctx->drops, 1);
	for (g = ctx->out_head; g; g = nx) {
		nx = g->next;
		if ((src && g->src != src) ||
		    !key_match(&g->key, dev_id, pasid, flags))
			continue;
		iopf__group_answer(ctx, g, IOPF_CODE_INVALID, END_CLOSED, true);
		n++;
	}
	for (struct iopf_source *s = ctx->sources; s; s = s->next)
		if (s->kind == SRC_PRODUCER && (!src || s == src))
			iopf__producer_free_partials(ctx, s, &k, flags);
	return n;
}

IOPF_API int iopf_ctx_answer_invalid(struct iopf_ctx *ctx, uint32_t dev_id,
				     uint32_t pasid, unsigned int flags)
{
	int n;

	if (!ctx || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	n = iopf__answer_invalid_locked(ctx, NULL, dev_id, pasid, flags);
	if (n) {
		iopf__log(ctx, LOG_I, "dev %u: %d outstanding groups answered INVALID",
			  dev_id, n);
		if (iopf__dispatch_ctx != ctx)
			iopf__wake(ctx);
	}
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver_responses(ctx);
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
