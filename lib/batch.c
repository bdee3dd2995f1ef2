/* SPDX-License-Identifier: MIT */
/*
 * batch.c - a fault queue's answers, gathered and written with as few
 * write() calls as the kernel allows. The kernel applies answers in order
 * and stops at the first one it refuses (unknown or already-answered
 * cookie), returning the bytes it took: that one answer is dropped
 * (counted, logged) and the rest are written again. An answer is plain
 * data: its group's life ended when it was given. ctx->lock held.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static void refused(struct iopf_ctx *ctx, struct iopf_source *src,
		    const struct iopf_k_page_response *w, int err)
{
	ctx->st.write_errors++;
	iopf__log(ctx, LOG_W,
		  "fault queue %u refused the answer to cookie %u (%s); dropped",
		  src->fault_id, w->cookie, strerror(err));
}

/* Keep answers [off, n) at the front, for a later write. */
static void keep_from(struct faultq *fq, unsigned int off, unsigned int n)
{
	memmove(fq->wbuf, fq->wbuf + off, (n - off) * sizeof(*fq->wbuf));
	memmove(fq->bkey, fq->bkey + off, (n - off) * sizeof(*fq->bkey));
	fq->nbatch = n - off;
}

static bool wait_writable(struct iopf_source *src)
{
	struct pollfd p = { .fd = src->fd, .events = POLLOUT };

	return sys_poll(&p, 1, 10) > 0;
}

unsigned int iopf__batch_flush(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct faultq *fq = (struct faultq *)src;
	struct iopf_k_page_response *w = fq->wbuf;
	unsigned int n = fq->nbatch, off = 0, again = 0;

	if (!n)
		return 0;
	fq->nbatch = 0;
	if (src->failed)
		return 0;
	while (off < n) {
		size_t want = (size_t)(n - off) * sizeof(*w);
		ssize_t r = sys_write(src->fd, w + off, want);

		ctx->st.write_calls++;
		IOPF_TRACE_WRITE(src->fault_id, n - off, r < 0 ? -errno : r);
		if (r < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			if (err == EAGAIN && ++again < 10 && wait_writable(src))
				continue;
			if (err == EINVAL) { /* the first answer is bad */
				refused(ctx, src, &w[off++], err);
				continue;
			}
			if (fd_dead(err)) {
				ctx->st.write_errors += n - off;
				iopf__source_fail(ctx, src, "write", err);
				return 0;
			}
			/* A passing failure: keep what is left for the next
			 * round (reads wait for it: see fq_read). */
			iopf__log(ctx, LOG_W,
				  "write to fault queue %u failed (%s): %u answers kept for later",
				  src->fault_id, strerror(err), n - off);
			keep_from(fq, off, n);
			iopf__wake(ctx);
			return fq->nbatch;
		}
		off += (unsigned int)((size_t)r / sizeof(*w));
		if ((size_t)r < want && off < n) /* stopped at a bad one */
			refused(ctx, src, &w[off++], EINVAL);
	}
	return 0;
}

/* The batch reached batch_max: write it. If a passing write failure kept
 * it full, make room rather than lose an answer; without memory the fd
 * is given up (logged), as nothing could be written to it anyway. */
void iopf__batch_full(struct iopf_ctx *ctx, struct faultq *fq)
{
	unsigned int cap = fq->batch_cap * 2;
	struct iopf_k_page_response *w;
	struct batch_key *k;

	iopf__batch_flush(ctx, &fq->s);
	if (fq->nbatch < fq->batch_cap)
		return;
	w = xrealloc(fq->wbuf, cap * sizeof(*w));
	if (w)
		fq->wbuf = w;
	k = w ? xrealloc(fq->bkey, cap * sizeof(*k)) : NULL;
	if (!k) {
		ctx->st.alloc_failures++;
		iopf__source_fail(ctx, &fq->s, "answers cannot be kept", ENOMEM);
		fq->nbatch = 0;
		return;
	}
	fq->bkey = k;
	fq->batch_cap = cap;
}

/* The kernel answered these itself: their cookies may already name other
 * groups, so the answers must never be written. */
unsigned int iopf__batch_forget(struct iopf_ctx *ctx, struct iopf_source *src,
				uint32_t dev, uint32_t pasid, unsigned int flags)
{
	struct faultq *fq = (struct faultq *)src;
	unsigned int n = 0, kept = 0;

	for (unsigned int i = 0; i < fq->nbatch; i++) {
		struct prg_key k = { .dev_id = fq->bkey[i].dev_id,
				     .pasid = fq->bkey[i].pasid };

		if ((flags & IOPF_ALL_DEVICES) || key_match(&k, dev, pasid, flags)) {
			n++;
		} else {
			fq->wbuf[kept] = fq->wbuf[i];
			fq->bkey[kept++] = fq->bkey[i];
		}
	}
	fq->nbatch = kept;
	return n;
}
