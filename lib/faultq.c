/* SPDX-License-Identifier: MIT */
/*
 * faultq.c - iommufd fault queues: allocate or adopt the fault fd, read
 * many groups per read(), never more than max_outstanding leaves room
 * for, grow the read when the first waiting group does not fit (EINVAL on
 * 6.12; 0 while POLLIN on newer kernels), and check every record before a
 * group is taken in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "internal.h"
#include "group-inl.h"

/* Past max_read_records a group is still read (with a buffer of its own)
 * and answered INVALID, up to this many records; beyond, the queue is
 * stuck and says so. */
#define HARD_MAX_RECS (1u << 20)
/* Cookies are small (lowest free first); an index beyond this is refused. */
#define MAX_COOKIE (1u << 24)

static const struct iopf_fault_queue_opts fq_defaults = {
	.sz = sizeof(struct iopf_fault_queue_opts),
};

static struct faultq *FQ(struct iopf_source *s)
{
	return (struct faultq *)s;
}

/* ---- answers: the group's life is over, the answer is data ---- */

/* fq_ended() for one group: its cookie's slot freed, its answer (if
 * any: answers says there is one) appended at nb. Returns the new nb. */
static IOPF_ALWAYS_INLINE unsigned int
fq_gather(struct iopf_group **bc, struct iopf_k_page_response *w,
	  struct batch_key *k, unsigned int nb, struct iopf_group *g, int code,
	  bool answers)
{
	uint32_t cookie = g->cookie;

	/* every live group of a fault queue holds its cookie's slot */
	bc[cookie] = NULL;
	if (!answers && code == NO_ANSWER)
		return nb;
	w[nb] = (struct iopf_k_page_response){ .cookie = cookie, .code = (uint32_t)code };
	k[nb] = (struct batch_key){ .dev_id = g->key.dev_id, .pasid = g->key.pasid };
	return nb + 1;
}

/* fq_ended() for more than one group, or one that fills the batch: as
 * many as fill the batch to max, then a write; one at a time past max (a
 * passing write failure kept answers, and iopf__batch_full() makes room
 * for one more each time). Apart from fq_ended() (in the two functions
 * below), so that one answer does not pay for this loop's registers. */
static IOPF_ALWAYS_INLINE void
fq_ended_n(struct iopf_ctx *ctx, struct faultq *fq, struct iopf_group *const *gs,
	   const int *codes, unsigned int n, bool answers)
{
	struct iopf_group **bc = fq->by_cookie;
	/* iopf__batch_add() with the batch's fields in locals: stores to
	 * the answers cannot then make the compiler read them again */
	struct iopf_k_page_response *w = fq->wbuf;
	struct batch_key *k = fq->bkey;
	unsigned int nb = fq->nbatch, max = ctx->batch_max;

	for (unsigned int i = 0; i < n;) {
		unsigned int room = nb < max ? max - nb : 1;
		unsigned int end = i + (n - i < room ? n - i : room);

#pragma GCC unroll 4
		for (; i < end; i++)
			nb = fq_gather(bc, w, k, nb, gs[i], codes[i], answers);
		if (nb >= max) {
			fq->nbatch = nb;
			iopf__batch_full(ctx, fq);
			nb = fq->nbatch;
			w = fq->wbuf;
			k = fq->bkey;
		}
	}
	fq->nbatch = nb;
}

/* fq_ended_n() compiled twice: for answers only (a handler batch, many
 * answers by handle or PRG index), and for any code. */
static __attribute__((noinline)) void
fq_answered_n(struct iopf_ctx *ctx, struct faultq *fq,
	      struct iopf_group *const *gs, const int *codes, unsigned int n)
{
	fq_ended_n(ctx, fq, gs, codes, n, true);
}

static __attribute__((noinline)) void
fq_ended_any_n(struct iopf_ctx *ctx, struct faultq *fq,
	       struct iopf_group *const *gs, const int *codes, unsigned int n)
{
	fq_ended_n(ctx, fq, gs, codes, n, false);
}

static void fq_ended(struct iopf_ctx *ctx, struct iopf_source *src,
		     struct iopf_group *const *gs, const int *codes,
		     unsigned int n, bool answers)
{
	struct faultq *fq = FQ(src);

	/* one answer (by PRG index, by handle): the code looked at, not
	 * answers (the same test, and answers costs a register here) */
	if (n == 1 && fq->nbatch + 1 < ctx->batch_max)
		fq->nbatch = fq_gather(fq->by_cookie, fq->wbuf, fq->bkey,
				       fq->nbatch, gs[0], codes[0], false);
	else if (answers)
		fq_answered_n(ctx, fq, gs, codes, n);
	else
		fq_ended_any_n(ctx, fq, gs, codes, n);
}

/* Answer INVALID a cookie we hold no group object for. */
static void answer_raw(struct iopf_ctx *ctx, struct faultq *fq,
		       const struct iopf_k_pgfault *r)
{
	uint32_t pasid = (r->flags & IOPF_K_PGFAULT_FLAGS_PASID_VALID) ?
				 r->pasid : IOPF_NO_PASID;

	ctx->st.answers_invalid++;
	ctx->st.auto_answers++;
	IOPF_TRACE_ANSWER_RAW(r->dev_id, pasid, r->grpid, r->cookie,
			      IOPF_CODE_INVALID);
	iopf__batch_add(ctx, fq, r->cookie, IOPF_CODE_INVALID, r->dev_id, pasid);
}

/* ---- reading ---- */

static bool cookie_grow(struct faultq *fq, uint32_t cookie)
{
	uint32_t n = fq->ncookies ? fq->ncookies : 64;
	struct iopf_group **b;

	if (cookie >= MAX_COOKIE)
		return false;
	while (n <= cookie)
		n *= 2;
	b = xrealloc(fq->by_cookie, n * sizeof(*b));
	if (!b)
		return false;
	memset(b + fq->ncookies, 0, (n - fq->ncookies) * sizeof(*b));
	fq->by_cookie = b;
	fq->ncookies = n;
	return true;
}

/* A cookie we still hold, handed out again: the kernel answered its old
 * group itself (a detach or replace we were not told of). Looked at for
 * every group read, malformed ones too, before anything is answered. */
static void retire_reused(struct iopf_ctx *ctx, struct faultq *fq,
			  uint32_t cookie)
{
	struct iopf_group *old;

	if (cookie >= fq->ncookies || !(old = fq->by_cookie[cookie]))
		return;
	ctx->st.kernel_answered++;
	iopf__log(ctx, LOG_I,
		  "fault queue %u reused cookie %u: its old group (dev %u prgi %u) was answered by the kernel",
		  fq->s.fault_id, cookie, old->key.dev_id, old->key.prgi);
	iopf__group_end(ctx, old, NO_ANSWER, END_DETACHED);
}

static inline bool cookie_slot(struct faultq *fq, uint32_t cookie)
{
	return cookie < fq->ncookies || cookie_grow(fq, cookie);
}

static void take_group(struct iopf_ctx *ctx, struct faultq *fq,
		       const struct iopf_k_pgfault *r, uint32_t n, uint64_t now,
		       struct intake_run *run)
{
	struct prg_key key = {
		.dev_id = r[0].dev_id,
		.pasid = (r[0].flags & IOPF_K_PGFAULT_FLAGS_PASID_VALID) ?
				 r[0].pasid : IOPF_NO_PASID,
		.prgi = r[0].grpid,
	};
	uint32_t cookie = r[0].cookie;
	struct iopf_group *g = NULL;

	if (cookie_slot(fq, cookie))
		g = group_get(ctx, &fq->s, &key, n);
	if (!g) {
		ctx->st.records += n;
		ctx->st.alloc_failures++;
		ctx->st.groups++;
		iopf__log(ctx, LOG_E,
			  "no memory for a group (dev %u cookie %u): answered INVALID",
			  key.dev_id, cookie);
		answer_raw(ctx, fq, r);
		return;
	}
	struct iopf_record *rec = grp_rec(g);
	uint32_t *len = grp_len(g);

	for (uint32_t i = 0; i < n; i++) {
		rec[i] = (struct iopf_record){
			.addr = r[i].addr, .perm = r[i].perm, .flags = r[i].flags };
		len[i] = r[i].length; /* iopf_group_record_info() */
	}
	g->cookie = cookie;
	fq->by_cookie[cookie] = g;
	group_intake_run(ctx, g, n, now, run, true);
}

enum { TAKEN, TAKEN_SLOW, NOT_TAKEN };

/* take_group() of a one-record group: the free list's first slot when it
 * has no records of its own, its record written inline. bc and last: the
 * queue's cookie table and its last cookie (length - 1: the table is
 * never empty), in the caller's locals (stores to the group could
 * otherwise be the table's, for the compiler). TAKEN_SLOW when the
 * general way was taken (it may grow the table: reload them); NOT_TAKEN
 * for cookie 0 (the caller refuses it). */
static IOPF_ALWAYS_INLINE int
take_one(struct iopf_ctx *ctx, struct faultq *fq, struct iopf_group **bc,
	 uint32_t last, const struct iopf_k_pgfault *r, uint64_t now,
	 struct intake_run *run, bool tracked)
{
	uint32_t cookie = r->cookie;
	struct iopf_group *g;

	/* cookie 0 or beyond the table (one compare), or still naming a
	 * group, a slot with records of its own (cap > 1) or none: the
	 * general way */
	if (__builtin_expect(cookie - 1 >= last || bc[cookie] ||
			     !(g = ctx->free_list) || g->cap != 1, 0)) {
		if (!cookie)
			return NOT_TAKEN;
		retire_reused(ctx, fq, cookie);
		take_group(ctx, fq, r, 1, now, run);
		return TAKEN_SLOW;
	}
	ctx->free_list = g->qnext;
	group_init(g, &fq->s, &(struct prg_key){
		.dev_id = r->dev_id,
		.pasid = (r->flags & IOPF_K_PGFAULT_FLAGS_PASID_VALID) ?
				 r->pasid : IOPF_NO_PASID,
		.prgi = r->grpid }, 1);
	g->one = (struct iopf_record){ .addr = r->addr, .perm = r->perm,
				       .flags = r->flags };
	g->len1 = r->length;
	g->cookie = cookie;
	bc[cookie] = g;
	group_intake_run(ctx, g, 1, now, run, tracked);
	return TAKEN;
}

static bool same_group(const struct iopf_k_pgfault *a,
		       const struct iopf_k_pgfault *b)
{
	return a->dev_id == b->dev_id && a->pasid == b->pasid &&
	       a->grpid == b->grpid &&
	       ((a->flags ^ b->flags) & IOPF_K_PGFAULT_FLAGS_PASID_VALID) == 0;
}

/* Take in b[i], b[i + 1], ... while they are whole groups of one record,
 * known flags only (a cookie's old group, if any, is retired by
 * take_one()). Returns the index of the first record not taken.
 * tracked: ctx->tracked. */
static IOPF_ALWAYS_INLINE uint32_t
take_ones(struct iopf_ctx *ctx, struct faultq *fq,
	  const struct iopf_k_pgfault *b, uint32_t i, uint32_t n, uint64_t now,
	  struct intake_run *run, bool tracked)
{
	struct iopf_group **bc = fq->by_cookie;
	uint32_t last = fq->ncookies - 1;

	for (; i < n; i++) {
		int t;

		if ((b[i].flags & (IOPF_K_PGFAULT_FLAGS_LAST_PAGE |
				   ~IOPF_K_PGFAULT_FLAGS_ALL)) !=
		    IOPF_K_PGFAULT_FLAGS_LAST_PAGE)
			break;
		t = take_one(ctx, fq, bc, last, &b[i], now, run, tracked);
		if (__builtin_expect(t != TAKEN, 0)) {
			if (t == NOT_TAKEN)
				break;
			bc = fq->by_cookie;
			last = fq->ncookies - 1;
		}
	}
	return i;
}

/* Split what one read() returned into groups. The kernel returns whole
 * groups, one cookie each, LAST_PAGE on the last record; anything else is
 * answered INVALID (counted, logged) so that no device waits on it. Flag
 * bits we do not know are passed on (a newer kernel's), not refused. */
static uint32_t parse(struct iopf_ctx *ctx, struct faultq *fq,
		      const struct iopf_k_pgfault *b, uint32_t n)
{
	uint64_t now = iopf__intake_tick(ctx);
	struct intake_run run = { 0 };
	uint32_t i = 0, groups = 0;

	fq->delivered |= n > 0;

	while (i < n) {
		uint32_t start = i, cookie;
		const char *bad = NULL;

		/* the common case (twice: the loop knows whether the PRG
		 * index or a deadline is kept, which no intake changes) */
		i = __builtin_expect(ctx->tracked, 0) ?
			    take_ones(ctx, fq, b, i, n, now, &run, true) :
			    take_ones(ctx, fq, b, i, n, now, &run, false);
		groups += i - start;
		if (i == n)
			break;
		/* any other group: looked at record by record */
		start = i;
		cookie = b[i].cookie;
		groups++;
		retire_reused(ctx, fq, cookie);
		for (;;) {
			const struct iopf_k_pgfault *r = &b[i];

			if (r->cookie != cookie) {
				bad = "group ends without LAST_PAGE";
				break;
			}
			if (r->flags & ~IOPF_K_PGFAULT_FLAGS_ALL)
				ctx->st.unknown_flags++;
			if (i > start && !same_group(r, &b[start]))
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
		if (!bad && i - start > fq->max_recs) {
			bad = "more records than max_read_records";
			ctx->st.oversized++;
		} else if (bad) {
			ctx->st.malformed++;
		}
		if (bad) {
			ctx->st.groups++;
			ctx->st.records += i - start;
			iopf__log(ctx, LOG_W,
				  "fault queue %u: group (cookie %u, dev %u, %u records): %s; answered INVALID",
				  fq->s.fault_id, cookie, b[start].dev_id,
				  i - start, bad);
			if (cookie)
				answer_raw(ctx, fq, &b[start]);
			continue;
		}
		take_group(ctx, fq, &b[start], i - start, now, &run);
	}
	sched_run_end(ctx, &run);
	return groups;
}

static bool pollin(struct iopf_source *src)
{
	struct pollfd p = { .fd = src->fd, .events = POLLIN };

	return sys_poll(&p, 1, 0) > 0 && (p.revents & POLLIN) &&
	       !(p.revents & (POLLHUP | POLLERR));
}

enum { RD_OK, RD_SMALL, RD_EMPTY };

/* One read of up to `count` records into b. RD_OK (*n records), RD_SMALL
 * (the first waiting group does not fit), RD_EMPTY, or -errno. */
static int read_once(struct iopf_ctx *ctx, struct faultq *fq,
		     struct iopf_k_pgfault *b, unsigned int count, uint32_t *n)
{
	unsigned int zeros = 0;

	for (;;) {
		ssize_t r = sys_read(fq->s.fd, b, (size_t)count * sizeof(*b));

		ctx->st.read_calls++;
		IOPF_TRACE_READ(fq->s.fault_id, r < 0 ? -errno : r, count);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return RD_EMPTY;
			if (errno == EINVAL) /* 6.12: first group too large */
				return RD_SMALL;
			return -errno;
		}
		if (r == 0) {
			/* Empty, or (newer kernels) the first group does not
			 * fit. Look twice: a group may have just arrived. */
			if (!pollin(&fq->s))
				return RD_EMPTY;
			if (zeros++ == 0)
				continue;
			return RD_SMALL;
		}
		if ((size_t)r % sizeof(*b)) {
			ctx->st.malformed++;
			iopf__log(ctx, LOG_W,
				  "fault queue %u: read returned %zd bytes, not whole records",
				  fq->s.fault_id, r);
		}
		*n = (uint32_t)((size_t)r / sizeof(*b));
		return *n ? RD_OK : RD_EMPTY;
	}
}

/* Room for how many more groups; UINT32_MAX without a cap. */
static uint32_t room(const struct iopf_ctx *ctx)
{
	if (!ctx->max_outstanding)
		return UINT32_MAX;
	return ctx->outstanding >= ctx->max_outstanding ?
		       0 : (uint32_t)(ctx->max_outstanding - ctx->outstanding);
}

static void fq_throttle(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct faultq *fq = FQ(src);
	bool in;

	if (fq->wait_below && ctx->outstanding < fq->wait_below)
		fq->wait_below = 0;
	if (fq->throttled && (src->failed || src->stuck || src->closed)) {
		ctx->nthrottled--; /* out for good, not for room */
		fq->throttled = false;
	}
	in = !src->failed && !src->stuck && !src->closed && !fq->wait_below &&
	     room(ctx) > 0;
	if (in == fq->in_poll)
		return;
	if (iopf__poll_set(ctx, src, in) == 0) {
		fq->in_poll = in;
		if (in)
			ctx->nthrottled -= fq->throttled;
		else if (!src->failed && !src->stuck && !src->closed)
			ctx->nthrottled += 1;
		fq->throttled = !in && !src->failed && !src->stuck && !src->closed;
	}
	if (!in)
		iopf__log(ctx, LOG_D, "fault queue %u: %llu groups outstanding: reading paused",
			  src->fault_id, (unsigned long long)ctx->outstanding);
}

static void stuck(struct iopf_ctx *ctx, struct faultq *fq, unsigned int recs)
{
	fq->s.stuck = true;
	fq_throttle(ctx, &fq->s);
	iopf__log(ctx, LOG_E,
		  "fault queue %u: a waiting group does not fit %u records: it cannot be read",
		  fq->s.fault_id, recs);
}

/* The first waiting group did not fit `count` records. Read it with a
 * larger count: doubling while a whole read's worth of groups fits the
 * room, one record more at a time past that (so that the read that first
 * fits takes that one group and no other). Returns 1 (read), 0 (wait for
 * room, or stuck), or -errno. */
static int read_grown(struct iopf_ctx *ctx, struct faultq *fq,
		      unsigned int count)
{
	uint32_t rm = room(ctx), n = 0;
	unsigned int c = count;
	struct iopf_k_pgfault *tmp = NULL, *b;
	int rc;

	for (;;) {
		unsigned int nc = (rm == UINT32_MAX || c * 2 <= rm) ? c * 2 : c + 1;

		if (nc > rm && ctx->outstanding) {
			fq->wait_below = ctx->outstanding;
			fq_throttle(ctx, &fq->s);
			free(tmp);
			return 0;
		}
		if (nc > HARD_MAX_RECS) {
			stuck(ctx, fq, c);
			free(tmp);
			return 0;
		}
		if (nc <= fq->max_recs) {
			if (nc > fq->buf_recs) {
				unsigned int nb = fq->buf_recs;

				while (nb < nc)
					nb *= 2;
				if (nb > fq->max_recs)
					nb = fq->max_recs;
				b = xrealloc(fq->buf, (size_t)nb * sizeof(*b));
				if (!b)
					goto nomem;
				fq->buf = b;
				fq->buf_recs = nb;
				ctx->st.buffer_growths++;
				iopf__log(ctx, LOG_I,
					  "fault queue %u: read buffer grown to %u records",
					  fq->s.fault_id, nb);
			}
			b = fq->buf;
		} else {
			/* Beyond the cap: a buffer for this read only. */
			b = xrealloc(tmp, (size_t)nc * sizeof(*b));
			if (!b)
				goto nomem;
			tmp = b;
		}
		rc = read_once(ctx, fq, b, nc, &n);
		if (rc == RD_SMALL) {
			c = nc;
			continue;
		}
		if (rc == RD_OK)
			parse(ctx, fq, b, n);
		free(tmp);
		return rc == RD_OK ? 1 : rc == RD_EMPTY ? 0 : rc;
	}
nomem:
	/* Not stuck: the group stays in the kernel and is tried again in
	 * the next round (the fd stays readable). */
	free(tmp);
	ctx->st.alloc_failures++;
	iopf__log(ctx, LOG_E,
		  "fault queue %u: no memory for a read of %u records: retried",
		  fq->s.fault_id, c * 2);
	return 0;
}

/* Reads a round: until read_records (256) groups are read, at most
 * READS_MAX reads, fewer when one comes back short. The groups of a
 * round are handled and answered before the next round reads, so few
 * cookies are outstanding in the kernel and few group slots are in use:
 * one read of 256 single-record groups a round costs 46 fewer guest
 * instructions a group on the real kernel than 8 reads; groups of many
 * records still come 64 or more a round. Level-triggered polling brings
 * us back for what is left. */
#define READS_MAX 8u

static int fq_read(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct faultq *fq = FQ(src);
	uint32_t groups = 0;

	for (unsigned int reads = 0; reads < READS_MAX; reads++) {
		uint32_t rm, n = 0;
		unsigned int count;
		int rc;

		/* Answers still gathered name cookies the kernel has not
		 * freed yet: written before the next read, they can never
		 * meet a reuse of their cookie. */
		iopf__batch_flush(ctx, src);
		if (src->failed || src->stuck || fq->wait_below || fq->nbatch)
			break;
		rm = room(ctx);
		if (!rm) {
			fq_throttle(ctx, src);
			break;
		}
		count = fq->buf_recs < rm ? fq->buf_recs : rm;
		rc = read_once(ctx, fq, fq->buf, count, &n);
		if (rc == RD_SMALL) {
			rc = read_grown(ctx, fq, count);
			if (rc > 0) { /* one group read */
				groups++;
				continue;
			}
		} else if (rc == RD_OK) {
			groups += parse(ctx, fq, fq->buf, n);
		}
		if (rc < 0) {
			if (fd_dead(-rc)) {
				iopf__source_fail(ctx, src, "read", -rc);
				return -EIO;
			}
			/* A passing failure: level-triggered polling brings
			 * us back for what is still queued. */
			ctx->st.read_errors++;
			iopf__log(ctx, LOG_W, "read of fault queue %u failed: %s",
				  src->fault_id, strerror(-rc));
			return -EIO;
		}
		if (rc != RD_OK || n < count / 2 || groups >= fq->buf_recs)
			break;
	}
	return src->failed ? -EIO : 0;
}

static bool fq_waiting(struct iopf_ctx *ctx, struct iopf_source *src)
{
	/* A queue paused for room is left out: it is read again only as
	 * answers come in. */
	return !src->failed && FQ(src)->in_poll && pollin(src);
}

static void fq_close(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct faultq *fq = FQ(src);

	/* The kernel answers nothing when the fault fd goes (6.12): groups
	 * still queued, and new faults of devices whose page table uses
	 * this fault object, wait until that table is detached or
	 * replaced. Only worth saying for a queue that saw faults. */
	if (fq->delivered && !src->detach_seen && !src->failed) {
		ctx->st.closed_undetached++;
		iopf__log(ctx, LOG_W,
			  "fault queue %u closed with no detach seen: faults of page tables still using it wait until they are detached",
			  src->fault_id);
	}

	ctx->nthrottled -= fq->throttled;
	fq->throttled = false;
	if (fq->own_fd)
		sys_close(src->fd);
	src->fd = -1;
	fq->in_poll = false;
}

static void fq_destroy(struct iopf_source *src)
{
	struct faultq *fq = FQ(src);

	free(fq->buf);
	free(fq->wbuf);
	free(fq->bkey);
	free(fq->by_cookie);
	free(fq);
}

static const struct src_ops fq_ops = {
	.kind = "fault queue",
	.kernel = true,
	.read = fq_read,
	.ended = fq_ended,
	.flush = iopf__batch_flush,
	.forget = iopf__batch_forget,
	.waiting = fq_waiting,
	.throttle = fq_throttle,
	.close = fq_close,
	.destroy = fq_destroy,
};

/* ---- construction ---- */

static struct iopf_source *fq_new(struct iopf_ctx *ctx, int fd, uint32_t id,
				  const struct iopf_fault_queue_opts *o,
				  bool own)
{
	struct faultq *fq = xcalloc(1, sizeof(*fq));
	int err = ENOMEM;

	if (!fq)
		goto fail;
	fq->s.ops = &fq_ops;
	fq->s.fd = fd;
	fq->s.fault_id = id;
	fq->buf_recs = o->read_records ? o->read_records : IOPF_DEFAULT_READ_RECS;
	fq->max_recs = o->max_read_records ? o->max_read_records :
					     IOPF_DEFAULT_MAX_READ_RECS;
	if (fq->buf_recs > HARD_MAX_RECS || fq->max_recs > HARD_MAX_RECS) {
		err = EINVAL;
		goto fail;
	}
	if (fq->max_recs < fq->buf_recs)
		fq->max_recs = fq->buf_recs;
	fq->buf = xcalloc(fq->buf_recs, sizeof(*fq->buf));
	fq->wbuf = xcalloc(ctx->batch_max, sizeof(*fq->wbuf));
	fq->bkey = xcalloc(ctx->batch_max, sizeof(*fq->bkey));
	fq->batch_cap = ctx->batch_max;
	/* the cookie table is never empty (take_one()) */
	if (!fq->buf || !fq->wbuf || !fq->bkey || !cookie_grow(fq, 1))
		goto fail;
	pthread_mutex_lock(&ctx->lock);
	err = -iopf__poll_set(ctx, &fq->s, true);
	if (!err) {
		fq->in_poll = true;
		fq->own_fd = own;
		iopf__source_add(ctx, &fq->s);
		fq_throttle(ctx, &fq->s);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (err)
		goto fail;
	return &fq->s;
fail:
	if (fq)
		fq_destroy(&fq->s);
	errno = err;
	return NULL;
}

static int fq_opts(const struct iopf_fault_queue_opts *opts,
		   struct iopf_fault_queue_opts *o)
{
	if (iopf__opts_copy(o, sizeof(*o), opts ? (const void *)opts :
						  (const void *)&fq_defaults,
			    sizeof(struct iopf_fault_queue_opts)))
		return -EINVAL;
	return (o->flags & ~IOPF_FQ_CLOSE_FD) ? -EINVAL : 0;
}

IOPF_API struct iopf_source *
iopf_fault_queue_adopt(struct iopf_ctx *ctx, int fault_fd, uint32_t fault_id,
		       const struct iopf_fault_queue_opts *opts)
{
	struct iopf_fault_queue_opts o;

	if (!ctx || fault_fd < 0 || fq_opts(opts, &o)) {
		errno = EINVAL;
		return NULL;
	}
	if (iopf__fd_nonblock(fault_fd)) {
		errno = EBADF;
		return NULL;
	}
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

	if (!ctx || iommufd < 0 || fq_opts(opts, &o)) {
		errno = EINVAL;
		return NULL;
	}
	if (sys_ioctl(iommufd, IOPF_K_FAULT_QUEUE_ALLOC, &cmd))
		return NULL; /* errno from the kernel */
	src = fq_new(ctx, (int)cmd.out_fault_fd, cmd.out_fault_id, &o, true);
	if (!src) {
		iopf__kobj_drop(iommufd, (int)cmd.out_fault_fd, cmd.out_fault_id);
		return NULL;
	}
	if (out_fault_id)
		*out_fault_id = cmd.out_fault_id;
	return src;
}
