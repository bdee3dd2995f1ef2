/* SPDX-License-Identifier: MIT */
/*
 * batch.c - answers to fault queues, gathered and written with as few
 * write() calls as the kernel allows. The kernel applies answers in order
 * and stops at the first one it refuses (unknown or already-answered
 * cookie), returning the bytes it took: that one answer is dropped (counted,
 * logged) and the rest are written again. ctx->lock held throughout.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* The group behind an entry, if it still waits for this very answer. */
static struct iopf_group *ent_group(const struct batch_ent *e)
{
	struct iopf_group *g = e->g;

	return g && g->gen == e->gen && g->state == G_PENDING ? g : NULL;
}

static void ent_done(struct iopf_ctx *ctx, const struct batch_ent *e)
{
	struct iopf_group *g = ent_group(e);

	if (g)
		iopf__group_end(ctx, g, (enum grp_end)g->why);
}

static void ent_refused(struct iopf_ctx *ctx, struct iopf_source *src,
			const struct batch_ent *e, int err)
{
	ctx->st.write_errors++;
	iopf__log(ctx, LOG_W,
		  "fault queue %u refused the answer to cookie %u (%s); dropped",
		  src->fault_id, e->cookie, strerror(err));
	ent_done(ctx, e);
}

static bool wait_writable(struct iopf_source *src)
{
	struct pollfd p = { .fd = src->fd, .events = POLLOUT };

	return iopf__sys->poll(&p, 1, 10) > 0;
}

void iopf__batch_flush(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct iopf_k_page_response *w = src->wbuf;
	struct batch_ent *e = src->batch;
	unsigned int n = 0, off = 0, again = 0;

	if (!src->nbatch)
		return;
	/* Skip answers whose group the kernel answered meanwhile (detach,
	 * seen as cookie reuse): their cookie may now name another group.
	 * Compact the batch in place so entries and wbuf share indices. */
	for (unsigned int i = 0; i < src->nbatch; i++) {
		if (e[i].g && !ent_group(&e[i]))
			continue;
		e[n] = e[i];
		w[n].cookie = e[i].cookie;
		w[n].code = e[i].code;
		n++;
	}
	while (off < n) {
		size_t want = (size_t)(n - off) * sizeof(*w);
		ssize_t r = iopf__sys->write(src->fd, w + off, want);
		unsigned int took;

		ctx->st.write_calls++;
		if (r < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			if (err == EAGAIN && ++again < 100 && wait_writable(src))
				continue;
			if (err == EINVAL) { /* the first answer is bad */
				ent_refused(ctx, src, &e[off], err);
				off++;
				continue;
			}
			iopf__log(ctx, LOG_E,
				  "write to fault queue %u failed (%s): %u answers lost",
				  src->fault_id, strerror(err), n - off);
			for (; off < n; off++) {
				ctx->st.write_errors++;
				ent_done(ctx, &e[off]);
			}
			break;
		}
		took = (unsigned int)((size_t)r / sizeof(*w));
		for (unsigned int i = 0; i < took; i++)
			ent_done(ctx, &e[off + i]);
		off += took;
		if ((size_t)r < want && off < n) { /* stopped at a bad one */
			ent_refused(ctx, src, &e[off], EINVAL);
			off++;
		}
	}
	src->nbatch = 0;
}

int iopf__batch_add(struct iopf_ctx *ctx, struct iopf_source *src,
		    struct iopf_group *g, uint32_t cookie, uint32_t code)
{
	struct batch_ent *e;

	if (src->nbatch == ctx->batch_max)
		iopf__batch_flush(ctx, src);
	e = &src->batch[src->nbatch++];
	e->g = g;
	e->gen = g ? g->gen : 0;
	e->cookie = cookie;
	e->code = code;
	if (src->nbatch == ctx->batch_max)
		iopf__batch_flush(ctx, src);
	return 0;
}

void iopf__flush_all(struct iopf_ctx *ctx)
{
	for (struct iopf_source *s = ctx->sources; s; s = s->next)
		if (s->kind == SRC_FAULTQ)
			iopf__batch_flush(ctx, s);
}
