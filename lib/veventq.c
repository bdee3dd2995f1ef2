/* SPDX-License-Identifier: MIT */
/*
 * veventq.c - vIOMMU event queues (Linux 6.15+): a second kind of kernel
 * source, read like a fault queue but never answered. A read() returns
 * whole events: an 8-byte header {flags, sequence} and a payload whose
 * size the queue's type fixes (there is no length field), or a bare
 * lost-events header when the kernel's queue overflowed its depth.
 *
 * Events are parsed under the context lock in the dispatch round (the
 * read op) and handed to the callback after the lock is dropped, by the
 * same dispatching thread (iopf__vevents_deliver()), so the read buffer
 * is never read and written at once and events keep their order.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_READ_EVENTS 64u
#define MAX_READ_EVENTS 4096u
#define MAX_PAYLOAD 4096u /* a type's payload is a hardware record */

struct veventq {
	struct iopf_source s;
	bool own_fd;
	atomic_bool dead;         /* closed: deliver nothing more */
	uint32_t type, payload;   /* payload bytes after each header */
	iopf_vevent_fn fn;
	void *ud;
	unsigned char *buf;
	size_t buf_sz;
	struct iopf_vevent *ev;   /* parsed, not yet delivered */
	unsigned int nev, ev_cap;
	bool have_seq;            /* last_seq is known */
	uint32_t last_seq;
	struct veventq *pnext;    /* ctx->vq_pending */
};

static struct veventq *VQ(struct iopf_source *s)
{
	return (struct veventq *)s;
}

static uint32_t type_payload(uint32_t type)
{
	switch (type) {
	case IOPF_K_VEVENTQ_TYPE_ARM_SMMUV3:
		return IOPF_K_VEVENT_ARM_SMMUV3_LEN;
	case IOPF_K_VEVENTQ_TYPE_TEGRA241_CMDQV:
		return IOPF_K_VEVENT_TEGRA241_CMDQV_LEN;
	default:
		return 0;
	}
}

/* Sequence numbers advance by one per event the kernel queued, lost ones
 * included, and wrap from INT_MAX to 0 (eventq.c). */
static uint32_t seq_after(uint32_t a, uint32_t b)
{
	return (b - a) & INT_MAX;
}

/* Split one read into events. A lost-events header carries the sequence
 * number of the last event lost; the next event follows it by one. */
static void parse(struct iopf_ctx *ctx, struct veventq *q, size_t n)
{
	size_t off = 0;

	while (n - off >= sizeof(struct iopf_k_vevent_header)) {
		struct iopf_k_vevent_header h;
		struct iopf_vevent *e = &q->ev[q->nev];

		memcpy(&h, q->buf + off, sizeof(h));
		off += sizeof(h);
		*e = (struct iopf_vevent){ .sequence = h.sequence,
					   .type = q->type,
					   .raw_flags = h.flags };
		if (h.flags & IOPF_K_VEVENTQ_FLAG_LOST_EVENTS) {
			e->flags = IOPF_VEVENT_LOST;
			e->lost = q->have_seq ? seq_after(q->last_seq, h.sequence) : 1;
			if (!e->lost)
				e->lost = 1;
			ctx->st.vevents_lost++;
			iopf__log(ctx, LOG_W,
				  "vEVENTQ %u overflowed: %u events lost",
				  q->s.fault_id, e->lost);
		} else {
			if (n - off < q->payload) {
				ctx->st.vevents_malformed++;
				iopf__log(ctx, LOG_W,
					  "vEVENTQ %u: read ends inside an event (%zu of %u bytes)",
					  q->s.fault_id, n - off, q->payload);
				off = n;
				break;
			}
			e->len = q->payload;
			e->data = q->buf + off;
			off += q->payload;
			if (q->have_seq &&
			    h.sequence != ((q->last_seq + 1) & INT_MAX)) {
				e->flags = IOPF_VEVENT_GAP;
				e->lost = seq_after(q->last_seq + 1, h.sequence);
				ctx->st.vevents_lost++;
				iopf__log(ctx, LOG_W,
					  "vEVENTQ %u: sequence %u after %u: %u events lost",
					  q->s.fault_id, h.sequence, q->last_seq,
					  e->lost);
			}
			ctx->st.vevents++;
		}
		q->have_seq = true;
		q->last_seq = h.sequence;
		q->nev++;
	}
	if (off < n) {
		ctx->st.vevents_malformed++;
		iopf__log(ctx, LOG_W, "vEVENTQ %u: %zu stray bytes after the events",
			  q->s.fault_id, n - off);
	}
}

static bool pollin(struct iopf_source *src)
{
	struct pollfd p = { .fd = src->fd, .events = POLLIN };

	return sys_poll(&p, 1, 0) > 0 && (p.revents & POLLIN) &&
	       !(p.revents & (POLLHUP | POLLERR));
}

/* One read a round (level-triggered polling brings us back for more);
 * nothing while events of the last one wait for their callback. */
static int vq_read(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct veventq *q = VQ(src);
	unsigned int zeros = 0;
	ssize_t r;

	if (q->nev || src->failed)
		return 0;
	for (;;) {
		int err;

		r = sys_read(src->fd, q->buf, q->buf_sz);
		ctx->st.read_calls++;
		if (r > 0)
			break;
		if (r == 0) {
			if (!pollin(src))
				return 0; /* empty */
			if (zeros++ == 0)
				continue; /* an event may have just arrived */
			goto too_small;
		}
		err = errno;
		if (err == EINTR)
			continue;
		if (err == EAGAIN)
			return 0;
		if (err == EINVAL)
			goto too_small;
		if (fd_dead(err)) {
			iopf__source_fail(ctx, src, "read", err);
			return -EIO;
		}
		ctx->st.read_errors++;
		iopf__log(ctx, LOG_W, "read of vEVENTQ %u failed: %s",
			  src->fault_id, strerror(err));
		return -EIO;
	}
	parse(ctx, q, (size_t)r);
	if (q->nev) {
		iopf__source_ref(src); /* until delivered */
		q->pnext = ctx->vq_pending;
		ctx->vq_pending = q;
	}
	return 0;
too_small:
	/* Events wait but none fits the buffer (0, or EINVAL): the payload
	 * size is not the kernel's, so the stream cannot be split at all. */
	ctx->st.vevents_malformed++;
	iopf__source_fail(ctx, src, "read (an event larger than its type's)",
			  EMSGSIZE);
	return -EIO;
}

/* The dispatching thread, no lock held: call the callbacks of the events
 * its round read. Newest-queued source first is fine: each source's own
 * events stay in order. */
void iopf__vevents_deliver(struct iopf_ctx *ctx)
{
	struct veventq *q, *nx;

	if (!ctx->vq_pending) /* this thread's own write, in its round */
		return;
	pthread_mutex_lock(&ctx->lock);
	q = ctx->vq_pending;
	ctx->vq_pending = NULL;
	pthread_mutex_unlock(&ctx->lock);
	for (; q; q = nx) {
		nx = q->pnext;
		iopf__in_callback++;
		for (unsigned int i = 0; i < q->nev; i++) {
			if (atomic_load(&q->dead))
				break; /* closed, maybe by this very callback */
			q->fn(&q->ev[i], q->ud);
		}
		iopf__in_callback--;
		pthread_mutex_lock(&ctx->lock);
		q->nev = 0;
		iopf__source_unref(&q->s);
		pthread_mutex_unlock(&ctx->lock);
	}
}

/* ---- the source's operations: nothing to answer, forget or throttle ---- */

static void vq_ended(struct iopf_ctx *ctx, struct iopf_source *src,
		     struct iopf_group *const *gs, const int *codes,
		     unsigned int n, bool answers)
{
}

static unsigned int vq_flush(struct iopf_ctx *ctx, struct iopf_source *src)
{
	return 0;
}

static unsigned int vq_forget(struct iopf_ctx *ctx, struct iopf_source *src,
			      uint32_t dev, uint32_t pasid, unsigned int flags)
{
	return 0;
}

static bool vq_waiting(struct iopf_ctx *ctx, struct iopf_source *src)
{
	return false; /* drain waits for groups; events are not groups */
}

static void vq_throttle(struct iopf_ctx *ctx, struct iopf_source *src)
{
}

static void vq_close(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct veventq *q = VQ(src);

	atomic_store(&q->dead, true);
	if (q->own_fd)
		sys_close(src->fd);
	src->fd = -1;
}

static void vq_destroy(struct iopf_source *src)
{
	struct veventq *q = VQ(src);

	free(q->buf);
	free(q->ev);
	free(q);
}

static const struct src_ops vq_ops = {
	.kind = "vEVENTQ",
	.kernel = false, /* nothing to detach: no answers */
	.read = vq_read,
	.ended = vq_ended,
	.flush = vq_flush,
	.forget = vq_forget,
	.discard = NULL,
	.waiting = vq_waiting,
	.throttle = vq_throttle,
	.close = vq_close,
	.destroy = vq_destroy,
};

/* ---- construction ---- */

static const struct iopf_veventq_opts vq_defaults = {
	.sz = sizeof(struct iopf_veventq_opts),
};

static int vq_opts(const struct iopf_veventq_opts *opts, uint32_t type,
		   struct iopf_veventq_opts *o)
{
	if (iopf__opts_copy(o, sizeof(*o), opts ? (const void *)opts :
						  (const void *)&vq_defaults,
			    sizeof(struct iopf_veventq_opts)))
		return -EINVAL;
	if (o->flags & ~IOPF_VQ_CLOSE_FD)
		return -EINVAL;
	if (!o->payload_len)
		o->payload_len = type_payload(type);
	if (!o->payload_len || o->payload_len > MAX_PAYLOAD ||
	    o->read_events > MAX_READ_EVENTS)
		return -EINVAL;
	if (!o->read_events)
		o->read_events = DEFAULT_READ_EVENTS;
	return 0;
}

static struct iopf_source *vq_new(struct iopf_ctx *ctx, int fd, uint32_t id,
				  uint32_t type,
				  const struct iopf_veventq_opts *o, bool own,
				  iopf_vevent_fn fn, void *ud)
{
	struct veventq *q = xcalloc(1, sizeof(*q));
	int err = ENOMEM;

	if (!q)
		goto fail;
	q->s.ops = &vq_ops;
	q->s.fd = fd;
	q->s.fault_id = id;
	q->type = type;
	q->payload = o->payload_len;
	q->fn = fn;
	q->ud = ud;
	q->buf_sz = (size_t)o->read_events *
		    (sizeof(struct iopf_k_vevent_header) + q->payload);
	/* bare lost-events headers are the smallest events a read holds */
	q->ev_cap = (unsigned int)(q->buf_sz / sizeof(struct iopf_k_vevent_header));
	q->buf = xmalloc(q->buf_sz);
	q->ev = xcalloc(q->ev_cap, sizeof(*q->ev));
	if (!q->buf || !q->ev)
		goto fail;
	pthread_mutex_lock(&ctx->lock);
	err = -iopf__poll_set(ctx, &q->s, true);
	if (!err) {
		q->own_fd = own;
		iopf__source_add(ctx, &q->s);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (err)
		goto fail;
	return &q->s;
fail:
	if (q)
		vq_destroy(&q->s);
	errno = err;
	return NULL;
}

IOPF_API struct iopf_source *
iopf_veventq_adopt(struct iopf_ctx *ctx, int fd, uint32_t veventq_id,
		   uint32_t type, const struct iopf_veventq_opts *opts,
		   iopf_vevent_fn fn, void *userdata)
{
	struct iopf_veventq_opts o;

	if (!ctx || fd < 0 || !fn || vq_opts(opts, type, &o)) {
		errno = EINVAL;
		return NULL;
	}
	if (iopf__fd_nonblock(fd)) {
		errno = EBADF;
		return NULL;
	}
	return vq_new(ctx, fd, veventq_id, type, &o, o.flags & IOPF_VQ_CLOSE_FD,
		      fn, userdata);
}

IOPF_API struct iopf_source *
iopf_veventq_alloc(struct iopf_ctx *ctx, int iommufd, uint32_t viommu_id,
		   uint32_t type, uint32_t depth,
		   const struct iopf_veventq_opts *opts, uint32_t *out_veventq_id,
		   iopf_vevent_fn fn, void *userdata)
{
	struct iopf_k_veventq_alloc cmd = { .size = sizeof(cmd),
					    .viommu_id = viommu_id,
					    .type = type,
					    .veventq_depth = depth };
	struct iopf_veventq_opts o;
	struct iopf_source *src;

	if (!ctx || iommufd < 0 || !fn || !depth || vq_opts(opts, type, &o)) {
		errno = EINVAL;
		return NULL;
	}
	if (sys_ioctl(iommufd, IOPF_K_VEVENTQ_ALLOC, &cmd))
		return NULL; /* errno from the kernel: ENOTTY before 6.15 */
	(void)iopf__fd_nonblock((int)cmd.out_veventq_fd);
	src = vq_new(ctx, (int)cmd.out_veventq_fd, cmd.out_veventq_id, type, &o,
		     true, fn, userdata);
	if (!src) {
		iopf__kobj_drop(iommufd, (int)cmd.out_veventq_fd, cmd.out_veventq_id);
		return NULL;
	}
	if (out_veventq_id)
		*out_veventq_id = cmd.out_veventq_id;
	return src;
}
