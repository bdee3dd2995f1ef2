/* SPDX-License-Identifier: MIT */
/*
 * producer.c - page requests seen one at a time, assembled into groups as
 * the kernel's io-pgfault.c does: partial requests are held per device,
 * keyed by (PASID, PRG index), until the LAST one arrives; then the whole
 * group is taken in. The store is bounded per device; a LAST request is
 * never dropped, because it is what obliges an answer. A group whose
 * partial requests were dropped (cap, no memory) or discarded is flagged
 * IOPF_GROUP_TRUNCATED, whether or not any of them is still held.
 *
 * A partial group's records are held in blocks of 4, 4, 8, 16, ... (each
 * as large as all before it), each ending with a link to the one before;
 * the newest is the value of the group's table entry, and the number of
 * records is the entry's u. A request touches the entry and the newest
 * block's tail: no header of its own, no copy as the group grows (with
 * 10,000 groups partial at once, each was a cache miss a request or more).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct dev_partials {
	uint32_t held;     /* partial requests held for the device */
	uint32_t ntrunc;   /* bits set in trunc */
	uint64_t trunc[8]; /* PRG indices (mod 512) missing a partial */
};

static struct producer *P(struct iopf_source *s)
{
	return (struct producer *)s;
}

/* The index of the first record of the block that holds record i. */
static uint32_t blk_first(uint32_t i)
{
	return i < 4 ? 0 : 1u << (31 - __builtin_clz(i));
}

/* The link of the block whose first record is first: after its records,
 * so that they stay 16-byte aligned (none across a cache line). The
 * first block's 72 bytes take no more of glibc's heap than 64 would. */
static struct iopf_record **blk_link(struct iopf_record *b, uint32_t first)
{
	return (struct iopf_record **)(b + (first ? first : 4));
}

/* Copy a partial group's n records to out (NULL: nowhere), in arrival
 * order, and free its blocks. */
static void held_take(struct iopf_record *b, uint32_t n,
		      struct iopf_record *out)
{
	while (b) {
		uint32_t first = blk_first(n - 1);
		struct iopf_record *prev = *blk_link(b, first);

		if (out)
			memcpy(out + first, b, (n - first) * sizeof(*out));
		free(b);
		b = prev;
		n = first;
	}
}

static bool bit_take(uint64_t *bits, uint32_t prgi)
{
	uint64_t m = 1ull << (prgi % 64);
	bool was = bits[(prgi / 64) % 8] & m;

	bits[(prgi / 64) % 8] &= ~m;
	return was;
}

static void trunc_mark(struct producer *p, struct dev_partials *d,
		       uint32_t prgi)
{
	uint64_t *w, m = 1ull << (prgi % 64);

	if (!d) { /* no per-device record: the source-wide fallback */
		p->oom_trunc[(prgi / 64) % 8] |= m;
		return;
	}
	w = &d->trunc[(prgi / 64) % 8];
	if (!(*w & m))
		d->ntrunc++;
	*w |= m;
}

static void dev_put(struct iopf_ctx *ctx, struct producer *p, uint32_t dev,
		    struct dev_partials *d)
{
	if (d && !d->held && !d->ntrunc) {
		tbl_del(&p->devs, dev, 0);
		free(d);
	}
}

/* Forget a partial group of n records (its blocks are the caller's).
 * mark: its group will be incomplete. */
static void partial_drop(struct iopf_ctx *ctx, struct producer *p,
			 const struct prg_key *k, uint32_t n, bool mark)
{
	struct dev_partials *d = tbl_get(&p->devs, k->dev_id, 0);

	if (d)
		d->held -= n;
	ctx->partial_held -= n;
	if (mark) {
		ctx->st.partial_dropped += n;
		trunc_mark(p, d, k->prgi);
	}
	tbl_del(&p->partials, key_hi(k), k->prgi);
	dev_put(ctx, p, k->dev_id, d);
}

static void pr_discard(struct iopf_ctx *ctx, struct iopf_source *src,
		       uint32_t dev, uint32_t pasid, unsigned int flags)
{
	struct producer *p = P(src);

	for (uint32_t i = 0; i < p->partials.cap; i++) {
		struct tbl_ent *e = &p->partials.e[i];
		struct iopf_record *b = e->v;
		uint32_t n = e->u;
		struct prg_key k;

		if (!e->v)
			continue;
		k = (struct prg_key){ .dev_id = (uint32_t)(e->a >> 32),
				      .pasid = (uint32_t)e->a,
				      .prgi = (uint32_t)e->b };
		if (!(flags & IOPF_ALL_DEVICES) && !key_match(&k, dev, pasid, flags))
			continue;
		partial_drop(ctx, p, &k, n, true);
		held_take(b, n, NULL);
		i--; /* deletion shifted a later entry here: look again */
	}
}

/* Hold one partial request. Returns 0, -ENOSPC (cap) or -ENOMEM. */
static int hold(struct iopf_ctx *ctx, struct producer *p,
		const struct prg_key *key, const struct iopf_record *rec)
{
	struct dev_partials *d = tbl_get(&p->devs, key->dev_id, 0);
	struct tbl_ent *e = tbl_find(&p->partials, key_hi(key), key->prgi);
	struct iopf_record *b = e ? e->v : NULL;
	uint32_t n = e ? e->u : 0;

	if (d && d->held >= p->partial_cap) {
		trunc_mark(p, d, key->prgi);
		return -ENOSPC;
	}
	if (!d) {
		d = xcalloc(1, sizeof(*d));
		if (!d || tbl_put(&p->devs, key->dev_id, 0, d)) {
			free(d);
			trunc_mark(p, NULL, key->prgi);
			return -ENOMEM;
		}
	}
	if (n == blk_first(n)) { /* none yet, or the newest block is full */
		struct iopf_record *nb = xmalloc((size_t)(n ? n : 4) * sizeof(*nb) +
						 sizeof(struct iopf_record *));

		if (!nb)
			goto nomem;
		*blk_link(nb, n) = b;
		if (e) {
			e->v = nb;
		} else if (tbl_put(&p->partials, key_hi(key), key->prgi, nb)) {
			free(nb);
			goto nomem;
		} else {
			e = tbl_find(&p->partials, key_hi(key), key->prgi);
		}
		b = nb;
	}
	b[n - blk_first(n)] = *rec;
	e->u = n + 1;
	d->held++;
	ctx->partial_held++;
	return 0;
nomem:
	trunc_mark(p, d, key->prgi);
	return -ENOMEM;
}

/* The LAST request: the group is complete. 1, or -ENOMEM: no group
 * object, the caller answers INVALID through respond itself. */
static int complete(struct iopf_ctx *ctx, struct producer *p,
		    const struct prg_key *key, const struct iopf_record *last)
{
	struct tbl_ent *e = tbl_find(&p->partials, key_hi(key), key->prgi);
	struct dev_partials *d = tbl_get(&p->devs, key->dev_id, 0);
	struct iopf_record *held = e ? e->v : NULL;
	uint32_t nheld = e ? e->u : 0, n = nheld + 1;
	struct iopf_group *g;
	bool trunc = bit_take(p->oom_trunc, key->prgi);

	if (d && bit_take(d->trunc, key->prgi)) {
		d->ntrunc--;
		trunc = true;
	}
	g = iopf__group_get(ctx, &p->s, key, n);
	if (!g) {
		ctx->st.alloc_failures++;
		ctx->st.groups++;
		ctx->st.records += n;
		ctx->st.answers_invalid++;
		ctx->st.auto_answers++;
		if (held) {
			partial_drop(ctx, p, key, nheld, false);
			held_take(held, nheld, NULL);
		} else {
			dev_put(ctx, p, key->dev_id, d);
		}
		iopf__log(ctx, LOG_E,
			  "no memory for a group (dev %u prgi %u): answered INVALID",
			  key->dev_id, key->prgi);
		return -ENOMEM;
	}
	if (held) {
		held_take(held, nheld, grp_rec(g));
		partial_drop(ctx, p, key, nheld, false);
	} else {
		dev_put(ctx, p, key->dev_id, d);
	}
	if (trunc)
		g->gflags |= IOPF_GROUP_TRUNCATED;
	grp_rec(g)[n - 1] = *last;
	/* A request carries no length: 0 (iopf_group_record_info()). */
	memset(grp_len(g), 0, n * sizeof(uint32_t));
	iopf__group_intake(ctx, g, iopf__intake_tick(ctx));
	return 1;
}

IOPF_API int iopf_producer_submit(struct iopf_source *src,
				  const struct iopf_request *req)
{
	struct iopf_ctx *ctx;
	struct producer *p;
	struct prg_key key;
	struct iopf_record rec;
	int rc;

	/* Flag bits libiopf does not know are passed on to the handler
	 * (since 1.3; counted), as on fault queues: never a refusal. */
	if (!src || !req || src->ops->read || req->reserved ||
	    ((req->flags & IOPF_F_PASID_VALID) && req->pasid == IOPF_NO_PASID))
		return -EINVAL;
	ctx = src->ctx;
	p = P(src);
	key = (struct prg_key){
		.dev_id = req->dev_id,
		.pasid = (req->flags & IOPF_F_PASID_VALID) ? req->pasid :
							     IOPF_NO_PASID,
		.prgi = req->prgi,
	};
	rec = (struct iopf_record){ .addr = req->addr, .perm = req->perm,
				    .flags = req->flags };

	pthread_mutex_lock(&ctx->lock);
	if (req->flags & ~(IOPF_F_PASID_VALID | IOPF_F_LAST_PAGE))
		ctx->st.unknown_flags++;
	if (src->closed) {
		rc = -ESHUTDOWN;
	} else if (ctx->ngone && iopf__dev_is_gone(ctx, key.dev_id)) {
		rc = -ENODEV; /* nothing taken in, so no answer is owed */
	} else if (!(req->flags & IOPF_F_LAST_PAGE)) {
		rc = hold(ctx, p, &key, &rec);
		if (rc) {
			ctx->st.partial_dropped++;
			iopf__log(ctx, rc == -ENOSPC ? LOG_W : LOG_E,
				  "partial request dropped (dev %u prgi %u): %s",
				  key.dev_id, key.prgi,
				  rc == -ENOSPC ? "partial cap reached" : "no memory");
		}
	} else {
		rc = complete(ctx, p, &key, &rec);
		if (rc == 1 && iopf__dispatch_ctx != ctx)
			iopf__wake(ctx);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (rc == -ENOMEM && (req->flags & IOPF_F_LAST_PAGE)) {
		struct iopf_response r = { .dev_id = key.dev_id,
					   .pasid = key.pasid,
					   .prgi = key.prgi,
					   .code = IOPF_CODE_INVALID };

		iopf__in_callback++;
		p->respond(&r, p->respond_ud);
		iopf__in_callback--;
	}
	iopf__deliver(ctx); /* a group intake had to answer at once */
	return rc;
}

/* ---- the source's operations ---- */

static void pr_ended(struct iopf_ctx *ctx, struct iopf_source *src,
		     struct iopf_group *const *gs, const int *codes,
		     unsigned int n, bool answers)
{
	/* Every completed group gets its respond call, whatever ended it. */
	for (unsigned int i = 0; i < n; i++) {
		gs[i]->code = (uint8_t)(codes[i] == IOPF_CODE_SUCCESS ?
					IOPF_CODE_SUCCESS : IOPF_CODE_INVALID);
		iopf__deliver_push(ctx, gs[i]);
	}
}

static unsigned int pr_flush(struct iopf_ctx *ctx, struct iopf_source *src)
{
	return 0;
}

static unsigned int pr_forget(struct iopf_ctx *ctx, struct iopf_source *src,
			      uint32_t dev, uint32_t pasid, unsigned int flags)
{
	pr_discard(ctx, src, dev, pasid, flags);
	return 0;
}

static bool pr_waiting(struct iopf_ctx *ctx, struct iopf_source *src)
{
	return false;
}

static void pr_throttle(struct iopf_ctx *ctx, struct iopf_source *src)
{
}

static void pr_close(struct iopf_ctx *ctx, struct iopf_source *src)
{
	struct producer *p = P(src);

	pr_discard(ctx, src, 0, 0, IOPF_ALL_DEVICES);
	for (uint32_t i = 0; i < p->devs.cap; i++)
		free(p->devs.e[i].v);
	tbl_free(&p->devs);
	tbl_free(&p->partials);
}

static void pr_destroy(struct iopf_source *src)
{
	/* respond can run no more: its destroy is due (reaped outside the
	 * lock, by iopf__deliver() or whoever reaps next) */
	iopf__binding_put(src->ctx, P(src)->rb);
	free(src);
}

static const struct src_ops pr_ops = {
	.kind = "producer",
	.kernel = false,
	.read = NULL,
	.ended = pr_ended,
	.flush = pr_flush,
	.forget = pr_forget,
	.discard = pr_discard,
	.waiting = pr_waiting,
	.throttle = pr_throttle,
	.close = pr_close,
	.destroy = pr_destroy,
};

IOPF_API struct iopf_source *
iopf_producer_new(struct iopf_ctx *ctx, const struct iopf_producer_opts *opts)
{
	struct iopf_producer_opts o;
	struct producer *p;

	if (!ctx || !opts ||
	    iopf__opts_copy(&o, sizeof(o), opts,
			    sizeof(struct iopf_producer_opts)) ||
	    !o.respond) {
		errno = EINVAL;
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	p->s.ops = &pr_ops;
	p->s.fd = -1;
	p->respond = o.respond;
	p->respond_ud = o.userdata;
	if (o.destroy &&
	    !(p->rb = iopf__binding_new(B_RESPOND, (void (*)(void))o.respond,
					o.userdata, o.destroy))) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	p->partial_cap = o.partial_cap ? o.partial_cap : IOPF_DEFAULT_PARTIAL_CAP;
	pthread_mutex_lock(&ctx->lock);
	iopf__source_add(ctx, &p->s);
	pthread_mutex_unlock(&ctx->lock);
	return &p->s;
}

static bool is_producer(const struct iopf_source *src)
{
	return src && src->ops == &pr_ops;
}

IOPF_API int iopf_producer_discard_partial(struct iopf_source *src,
					   uint32_t dev_id, unsigned int flags)
{
	struct iopf_ctx *ctx;
	uint64_t before;
	int n;

	if (!is_producer(src) || (flags & ~IOPF_ALL_DEVICES))
		return -EINVAL;
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	before = ctx->partial_held;
	if (!src->closed)
		pr_discard(ctx, src, dev_id, 0, flags | IOPF_ALL_PASIDS);
	n = (int)(before - ctx->partial_held);
	pthread_mutex_unlock(&ctx->lock);
	return n;
}

IOPF_API int iopf_producer_flush_pasid(struct iopf_source *src,
				       uint32_t dev_id, uint32_t pasid)
{
	struct iopf_ctx *ctx;
	int n = 0;

	if (!is_producer(src))
		return -EINVAL;
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	if (!src->closed) {
		n = iopf__groups_end_matching(ctx, src, dev_id, pasid, 0,
					      IOPF_CODE_INVALID, END_CLOSED,
					      NULL);
		pr_discard(ctx, src, dev_id, pasid, 0);
	}
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver(ctx);
	return n;
}
