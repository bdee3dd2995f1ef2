/* SPDX-License-Identifier: MIT */
/*
 * source.c - what every source has, whatever its kind: a place in the
 * context, a reference count (the context holds one while the source is
 * open, each group one), detach, close, and failure. Kinds are reached
 * through their struct src_ops only.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>

#include "internal.h"

/* ctx->lock held. The context's reference is the one the caller had. */
void iopf__source_add(struct iopf_ctx *ctx, struct iopf_source *src)
{
	src->ctx = ctx;
	src->refs = 1;
	src->next = ctx->sources;
	src->prev = NULL;
	if (ctx->sources)
		ctx->sources->prev = src;
	ctx->sources = src;
}

/* Put the source's fd in the context's poll set, or take it out. Out
 * means deleted, not EPOLL_CTL_MOD to no events: epoll reports a hang-up
 * whatever the events asked for. */
int iopf__poll_set(struct iopf_ctx *ctx, struct iopf_source *src, bool in)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };

	if (src->fd < 0)
		return 0;
	if (in)
		return epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, src->fd, &ev) ? -errno : 0;
	epoll_ctl(ctx->epfd, EPOLL_CTL_DEL, src->fd, NULL);
	return 0;
}

static bool matches(const struct iopf_group *g, struct iopf_source *src,
		    uint32_t dev, uint32_t pasid, unsigned int flags)
{
	if (src && g->src != src)
		return false;
	return (flags & IOPF_ALL_DEVICES) || key_match(&g->key, dev, pasid, flags);
}

/* End every outstanding group of src (NULL: any source) matching (dev,
 * pasid, flags; IOPF_ALL_DEVICES: all) with code (NO_ANSWER: the kernel
 * answered). With cancel, groups a handler holds are also chained there,
 * pinned, for the cancel callback. Returns how many ended. An answer's
 * latency is counted against the clock read here, whoever the caller
 * (an application thread, a removal in a dispatch round). */
int iopf__groups_end_matching(struct iopf_ctx *ctx, struct iopf_source *src,
			      uint32_t dev, uint32_t pasid,
			      unsigned int flags, int code, enum gend why,
			      struct iopf_group **cancel)
{
	struct iopf_group *g;
	int n = 0;

	if (code != NO_ANSWER)
		iopf__tick(ctx);
	FOR_EACH_LIVE(ctx, i, g) {
		if (!matches(g, src, dev, pasid, flags))
			continue;
		if (cancel && gst(g) != GS_QUEUED) {
			g->pins++;
			g->qnext = *cancel; /* off every queue now */
			*cancel = g;
		}
		if (code == NO_ANSWER)
			iopf__group_end(ctx, g, NO_ANSWER, why);
		else /* INVALID from libiopf: counted by device too */
			iopf__group_end_auto(ctx, g, why);
		n++;
	}
	return n;
}

/* ctx->lock held. Answer INVALID what the source holds, write it, let go
 * of the fd, leave the context. The memory goes with the last group. */
void iopf__source_close_locked(struct iopf_ctx *ctx, struct iopf_source *src)
{
	int n;

	if (src->closed)
		return;
	n = iopf__groups_end_matching(ctx, src, 0, 0, IOPF_ALL_DEVICES,
				      src->failed ? NO_ANSWER : IOPF_CODE_INVALID,
				      END_CLOSED, NULL);
	if (n)
		iopf__log(ctx, LOG_I,
			  "%s closed: %d outstanding groups answered INVALID",
			  src->ops->kind, n);
	/* Closing is the last chance to write: a passing write failure is
	 * tried again, for a second at most (under the lock: closing is
	 * rare, losing answers stalls a device). */
	for (int tries = 0; !src->failed && src->ops->flush(ctx, src); tries++) {
		if (tries == 1000) {
			iopf__log(ctx, LOG_E, "%s closed: answers could not be written",
				  src->ops->kind);
			break;
		}
		poll(NULL, 0, 1);
	}
	iopf__poll_set(ctx, src, false);
	src->ops->close(ctx, src);
	src->closed = true;
	if (src->prev)
		src->prev->next = src->next;
	else
		ctx->sources = src->next;
	if (src->next)
		src->next->prev = src->prev;
	src->next = src->prev = NULL;
	iopf__source_unref(src);
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
	iopf__deliver(ctx);
}

/* ctx->lock held. The fd failed (an error, or a hang-up): nothing more
 * can be read or written on it. Its groups end without an answer (none
 * could reach the kernel), it leaves the poll set, and the source stays
 * inert until closed. */
void iopf__source_fail(struct iopf_ctx *ctx, struct iopf_source *src,
		       const char *what, int err)
{
	int n;

	if (src->failed)
		return;
	src->failed = true;
	ctx->st.source_errors++;
	src->ops->throttle(ctx, src); /* out of the poll set, uncounted */
	iopf__poll_set(ctx, src, false);
	n = iopf__groups_end_matching(ctx, src, 0, 0, IOPF_ALL_DEVICES,
				      NO_ANSWER, END_CLOSED, NULL);
	n += (int)src->ops->forget(ctx, src, 0, 0, IOPF_ALL_DEVICES);
	iopf__log(ctx, LOG_E,
		  "fault queue %u failed (%s: %s): %d groups cannot be answered; close it",
		  src->fault_id, what, err ? strerror(err) : "hang-up", n);
}

IOPF_API int iopf_source_detach(struct iopf_source *src, uint32_t dev_id,
				uint32_t pasid, unsigned int flags)
{
	struct iopf_ctx *ctx;
	int n;

	if (!src || (flags & ~IOPF_ALL_PASIDS))
		return -EINVAL;
	if (!src->ops->kernel)
		return -EOPNOTSUPP; /* a producer: iopf_producer_flush_pasid() */
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	if (src->closed) {
		pthread_mutex_unlock(&ctx->lock);
		return -ESHUTDOWN;
	}
	src->detach_seen = true;
	n = iopf__groups_end_matching(ctx, src, dev_id, pasid, flags,
				      NO_ANSWER, END_DETACHED, NULL);
	n += (int)src->ops->forget(ctx, src, dev_id, pasid, flags);
	ctx->st.kernel_answered += (uint64_t)n;
	if (n)
		iopf__log(ctx, LOG_I,
			  "dev %u detached: %d groups answered by the kernel",
			  dev_id, n);
	pthread_mutex_unlock(&ctx->lock);
	return n;
}

IOPF_API int iopf_source_get_fd(const struct iopf_source *src)
{
	return src && src->fd >= 0 ? src->fd : -EINVAL;
}

IOPF_API uint32_t iopf_source_get_fault_id(const struct iopf_source *src)
{
	return src ? src->fault_id : 0;
}

/* A kernel object we made and will not use after all (a source that could
 * not be set up): its fd closed, then the object destroyed. errno kept. */
void iopf__kobj_drop(int iommufd, int fd, uint32_t id)
{
	struct iopf_k_destroy d = { .size = sizeof(d), .id = id };
	int err = errno;

	if (fd >= 0)
		sys_close(fd);
	if (id)
		(void)sys_ioctl(iommufd, IOPF_K_DESTROY, &d);
	errno = err;
}

/* A source's fd is read without blocking the loop. 0, or -EBADF. */
int iopf__fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -EBADF;
	if (!(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return 0;
}
