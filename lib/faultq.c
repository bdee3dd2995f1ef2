/* SPDX-License-Identifier: MIT */
/*
 * faultq.c - iommufd fault queues: allocate or adopt the fault fd, read
 * many groups per read(), grow the buffer when the first waiting group does
 * not fit (EINVAL on 6.12; 0 while POLLIN on newer kernels), and validate
 * every record before a group is handed on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static const struct iopf_fault_queue_opts fq_defaults = {
	.sz = sizeof(struct iopf_fault_queue_opts),
};

void iopf__source_pause(struct iopf_ctx *ctx, bool pause)
{
	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		if (s->kind != SRC_FAULTQ || s->broken || s->paused == pause)
			continue;
		s->paused = pause;
		iopf__epoll_set(ctx, s, EPOLL_CTL_MOD, pause ? 0 : EPOLLIN);
	}
	if (pause)
		iopf__log(ctx, LOG_D, "%llu groups outstanding: reading paused",
			  (unsigned long long)ctx->outstanding);
}

/* Answer INVALID a cookie we hold no group object for. */
static void answer_raw(struct iopf_ctx *ctx, struct iopf_source *src,
		       uint32_t cookie)
{
	ctx->st.answers_invalid++;
	ctx->st.auto_answers++;
	iopf__batch_add(ctx, src, NULL, cookie, IOPF_CODE_INVALID);
}

/* A cookie we still hold was handed out again: the kernel answered its old
 * group itself (detach or replace we were not told about). */
static void retire_reused(struct iopf_ctx *ctx, struct iopf_source *src,
			  uint32_t cookie)
{
	struct iopf_group *old;

	HASH_FIND(hh_cookie, src->by_cookie, &cookie, sizeof(cookie), old);
	if (!old)
		return;
	ctx->st.kernel_answered++;
	iopf__log(ctx, LOG_I,
		  "fault queue %u reused cookie %u: its old group (dev %u prgi %u) was answered by the kernel",
		  src->fault_id, cookie, old->key.dev_id, old->key.prgi);
	iopf__group_end(ctx, old, END_DETACHED);
}

static void take_group(struct iopf_ctx *ctx, struct iopf_source *src,
		       const struct iopf_k_pgfault *r, uint32_t n, uint64_t now)
{
	struct prg_key key = {
		.dev_id = r[0].dev_id,
		.pasid = (r[0].flags & IOPF_K_PGFAULT_FLAGS_PASID_VALID) ?
				 r[0].pasid : IOPF_NO_PASID,
		.prgi = r[0].grpid,
	};
	struct iopf_group *g = iopf__group_get(ctx, src, &key, n);

	if (!g) {
		ctx->st.alloc_failures++;
		ctx->st.groups++;
		ctx->st.records += n;
		iopf__log(ctx, LOG_E,
			  "no memory for a group (dev %u cookie %u): answered INVALID",
			  key.dev_id, r[0].cookie);
		answer_raw(ctx, src, r[0].cookie);
		return;
	}
	struct iopf_record *rec = grp_rec(g);

	for (uint32_t i = 0; i < n; i++)
		rec[i] = (struct iopf_record){
			.addr = r[i].addr, .perm = r[i].perm, .flags = r[i].flags };
	g->cookie = r[0].cookie;
	HASH_ADD(hh_cookie, src->by_cookie, cookie, sizeof(g->cookie), g);
	g->in_cookie = true;
	iopf__group_intake(ctx, g, now);
}

static bool same_group(const struct iopf_k_pgfault *a,
		       const struct iopf_k_pgfault *b)
{
	return a->dev_id == b->dev_id && a->pasid == b->pasid &&
	       a->grpid == b->grpid &&
	       ((a->flags ^ b->flags) & IOPF_K_PGFAULT_FLAGS_PASID_VALID) == 0;
}

/* Split what one read() returned into groups. The kernel returns whole
 * groups, one cookie each, LAST_PAGE on the last record; anything else is
 * answered INVALID (counted, logged) so that no device waits on it. */
static void parse(struct iopf_ctx *ctx, struct iopf_source *src, uint32_t n,
		  uint64_t now)
{
	const struct iopf_k_pgfault *b = src->buf;
	uint32_t i = 0;

	while (i < n) {
		uint32_t start = i, cookie = b[i].cookie;
		const char *bad = NULL;

		retire_reused(ctx, src, cookie);
		for (;;) {
			const struct iopf_k_pgfault *r = &b[i];

			if (r->cookie != cookie) {
				bad = "group ends without LAST_PAGE";
				break;
			}
			if (r->flags & ~IOPF_K_PGFAULT_FLAGS_ALL)
				bad = "unknown flag bits";
			else if (i > start && !same_group(r, &b[start]))
				bad = "records of one cookie disagree";
			i++;
			if (r->flags & IOPF_K_PGFAULT_FLAGS_LAST_PAGE)
				break;
			if (i == n) {
				bad = "read ends inside a group";
				break;
			}
		}
		if (!bad && cookie == 0)
			bad = "cookie 0";
		if (bad) {
			ctx->st.malformed++;
			ctx->st.groups++;
			ctx->st.records += i - start;
			iopf__log(ctx, LOG_W,
				  "fault queue %u: malformed group (cookie %u, dev %u): %s; answered INVALID",
				  src->fault_id, cookie, b[start].dev_id, bad);
			if (cookie)
				answer_raw(ctx, src, cookie);
			continue;
		}
		take_group(ctx, src, &b[start], i - start, now);
	}
}

static bool grow(struct iopf_ctx *ctx, struct iopf_source *src)
{
	unsigned int recs = src->buf_recs * 2;
	struct iopf_k_pgfault *nb;

	if (src->buf_recs >= src->max_recs)
		return false;
	if (recs > src->max_recs)
		recs = src->max_recs;
	nb = realloc(src->buf, (size_t)recs * sizeof(*nb));
	if (!nb)
		return false;
	src->buf = nb;
	src->buf_recs = recs;
	ctx->st.buffer_growths++;
	iopf__log(ctx, LOG_I, "fault queue %u: read buffer grown to %u records",
		  src->fault_id, recs);
	return true;
}

static bool pollin(struct iopf_source *src)
{
	struct pollfd p = { .fd = src->fd, .events = POLLIN };

	return iopf__sys->poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* The first waiting group cannot be read with the buffer we have. */
static int too_small(struct iopf_ctx *ctx, struct iopf_source *src)
{
	if (grow(ctx, src))
		return 0;
	src->broken = true;
	iopf__epoll_set(ctx, src, EPOLL_CTL_MOD, 0);
	iopf__log(ctx, LOG_E,
		  "fault queue %u: a group does not fit %u records (max_read_records): queue no longer read",
		  src->fault_id, src->buf_recs);
	return -EMSGSIZE;
}

/* Read what the queue holds (bounded per call; level-triggered polling
 * brings us back). ctx->lock held. */
int iopf__faultq_read(struct iopf_ctx *ctx, struct iopf_source *src)
{
	unsigned int reads = 0, zeros = 0;

	while (!src->paused && !src->broken) {
		size_t want = (size_t)src->buf_recs * sizeof(*src->buf);
		ssize_t r = iopf__sys->read(src->fd, src->buf, want);
		uint32_t n;

		ctx->st.read_calls++;
		if (r < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			if (err == EAGAIN)
				return 0;
			if (err == EINVAL) { /* 6.12: first group too large */
				int rc = too_small(ctx, src);

				if (rc)
					return rc;
				continue;
			}
			iopf__log(ctx, LOG_E, "read of fault queue %u failed: %s",
				  src->fault_id, strerror(err));
			return -EIO;
		}
		if (r == 0) {
			/* Empty, or (newer kernels) the first group does not
			 * fit. Look twice before growing: a group may have
			 * just arrived. */
			if (!pollin(src))
				return 0;
			if (zeros++ == 0)
				continue;
			int rc = too_small(ctx, src);

			if (rc)
				return rc;
			continue;
		}
		zeros = 0;
		if ((size_t)r % sizeof(*src->buf)) {
			ctx->st.malformed++;
			iopf__log(ctx, LOG_W,
				  "fault queue %u: read returned %zd bytes, not whole records",
				  src->fault_id, r);
		}
		n = (uint32_t)((size_t)r / sizeof(*src->buf));
		parse(ctx, src, n, iopf__now_ns());
		if (n < src->buf_recs / 2 || ++reads >= 8)
			return 0;
	}
	return 0;
}

static struct iopf_source *fq_new(struct iopf_ctx *ctx, int fd, uint32_t id,
				  const struct iopf_fault_queue_opts *o,
				  bool own)
{
	struct iopf_source *src = iopf__source_new(ctx, SRC_FAULTQ);
	int err;

	if (!src)
		return NULL;
	src->fd = fd;
	src->fault_id = id;
	src->own_fd = own;
	src->buf_recs = o->read_records ? o->read_records :
					  IOPF_DEFAULT_READ_RECS;
	src->max_recs = o->max_read_records ? o->max_read_records :
					      IOPF_DEFAULT_MAX_READ_RECS;
	if (src->max_recs < src->buf_recs)
		src->max_recs = src->buf_recs;
	src->buf = calloc(src->buf_recs, sizeof(*src->buf));
	src->batch = calloc(ctx->batch_max, sizeof(*src->batch));
	src->wbuf = calloc(ctx->batch_max, sizeof(*src->wbuf));
	if (!src->buf || !src->batch || !src->wbuf) {
		err = ENOMEM;
		goto fail;
	}
	pthread_mutex_lock(&ctx->lock);
	err = -iopf__epoll_set(ctx, src, EPOLL_CTL_ADD, EPOLLIN);
	if (!err) {
		src->next = ctx->sources;
		if (ctx->sources)
			ctx->sources->prev = src;
		ctx->sources = src;
		if (ctx->max_outstanding &&
		    ctx->outstanding >= ctx->max_outstanding) {
			src->paused = true;
			iopf__epoll_set(ctx, src, EPOLL_CTL_MOD, 0);
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	if (err)
		goto fail;
	return src;
fail:
	src->own_fd = false;
	free(src->buf);
	free(src->batch);
	free(src->wbuf);
	free(src);
	errno = err;
	return NULL;
}

IOPF_API struct iopf_source *
iopf_fault_queue_adopt(struct iopf_ctx *ctx, int fault_fd, uint32_t fault_id,
		       const struct iopf_fault_queue_opts *opts)
{
	struct iopf_fault_queue_opts o;
	int fl;

	if (!ctx || fault_fd < 0 ||
	    iopf__opts_copy(&o, sizeof(o), opts ? (const void *)opts :
						  (const void *)&fq_defaults) ||
	    (o.flags & ~IOPF_FQ_CLOSE_FD)) {
		errno = EINVAL;
		return NULL;
	}
	fl = fcntl(fault_fd, F_GETFL);
	if (fl < 0) {
		errno = EBADF;
		return NULL;
	}
	if (!(fl & O_NONBLOCK))
		(void)fcntl(fault_fd, F_SETFL, fl | O_NONBLOCK);
	return fq_new(ctx, fault_fd, fault_id, &o, o.flags & IOPF_FQ_CLOSE_FD);
}

IOPF_API struct iopf_source *
iopf_fault_queue_alloc(struct iopf_ctx *ctx, int iommufd,
		       const struct iopf_fault_queue_opts *opts,
		       uint32_t *out_fault_id)
{
	struct iopf_k_fault_alloc cmd = { .size = sizeof(cmd) };
	struct iopf_fault_queue_opts o;
	struct iopf_source *src;

	if (!ctx || iommufd < 0 ||
	    iopf__opts_copy(&o, sizeof(o), opts ? (const void *)opts :
						  (const void *)&fq_defaults) ||
	    (o.flags & ~IOPF_FQ_CLOSE_FD)) {
		errno = EINVAL;
		return NULL;
	}
	if (iopf__sys->ioctl(iommufd, IOPF_K_FAULT_QUEUE_ALLOC, &cmd))
		return NULL; /* errno from the kernel */
	src = fq_new(ctx, (int)cmd.out_fault_fd, cmd.out_fault_id, &o, true);
	if (!src) {
		int err = errno;
		struct iopf_k_destroy d = { .size = sizeof(d),
					    .id = cmd.out_fault_id };

		iopf__sys->close((int)cmd.out_fault_fd);
		iopf__sys->ioctl(iommufd, IOPF_K_DESTROY, &d);
		errno = err;
		return NULL;
	}
	if (out_fault_id)
		*out_fault_id = cmd.out_fault_id;
	return src;
}
