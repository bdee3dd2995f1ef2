/* SPDX-License-Identifier: MIT */
/*
 * producer.c - page requests seen one at a time, assembled into groups as
 * the kernel's io-pgfault.c does: partial requests are held per (device,
 * PASID, PRG index) until the LAST one arrives, then the whole group is
 * handed on. The store is bounded per device; a LAST request is never
 * dropped, because it is what obliges an answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void partial_free(struct iopf_ctx *ctx, struct iopf_source *src,
			 struct partial *p)
{
	struct dev_partials *d;

	HASH_FIND(hh, src->devs, &p->key.dev_id, sizeof(p->key.dev_id), d);
	if (d) {
		d->held -= p->n;
		if (!d->held) {
			HASH_DEL(src->devs, d);
			free(d);
		}
	}
	ctx->partial_held -= p->n;
	HASH_DEL(src->partials, p);
	free(p->rec);
	free(p);
}

void iopf__producer_free_partials(struct iopf_ctx *ctx, struct iopf_source *src,
				  const struct prg_key *match, unsigned int flags)
{
	struct partial *p, *tmp;

	HASH_ITER(hh, src->partials, p, tmp) {
		if (match && !(flags & IOPF_ALL_DEVICES) &&
		    !key_match(&p->key, match->dev_id, match->pasid, flags))
			continue;
		ctx->st.partial_dropped += p->n;
		partial_free(ctx, src, p);
	}
}

/* Hold one partial request. Returns 0, -ENOSPC (cap) or -ENOMEM. */
static int hold(struct iopf_ctx *ctx, struct iopf_source *src,
		const struct prg_key *key, const struct iopf_record *rec)
{
	struct dev_partials *d;
	struct partial *p;

	HASH_FIND(hh, src->devs, &key->dev_id, sizeof(key->dev_id), d);
	HASH_FIND(hh, src->partials, key, sizeof(*key), p);
	if (d && d->held >= src->partial_cap) {
		if (p)
			p->truncated = true;
		return -ENOSPC;
	}
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		d->dev_id = key->dev_id;
		HASH_ADD(hh, src->devs, dev_id, sizeof(d->dev_id), d);
	}
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			goto nomem;
		p->key = *key;
		HASH_ADD(hh, src->partials, key, sizeof(p->key), p);
	}
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 4;
		struct iopf_record *r = realloc(p->rec, cap * sizeof(*r));

		if (!r) {
			p->truncated = true;
			goto nomem;
		}
		p->rec = r;
		p->cap = cap;
	}
	p->rec[p->n++] = *rec;
	d->held++;
	ctx->partial_held++;
	return 0;
nomem:
	if (!d->held) {
		HASH_DEL(src->devs, d);
		free(d);
	}
	return -ENOMEM;
}

/* The LAST request: the group is complete. ctx->lock held. */
static int complete(struct iopf_ctx *ctx, struct iopf_source *src,
		    const struct prg_key *key, const struct iopf_record *last)
{
	struct partial *p;
	struct iopf_group *g;
	uint32_t n = 1;

	HASH_FIND(hh, src->partials, key, sizeof(*key), p);
	if (p)
		n += p->n;
	g = iopf__group_get(ctx, src, key, n);
	if (!g) {
		ctx->st.alloc_failures++;
		ctx->st.groups++;
		ctx->st.records += n;
		if (p) {
			ctx->st.partial_dropped += p->n;
			partial_free(ctx, src, p);
		}
		iopf__log(ctx, LOG_E,
			  "no memory for a group (dev %u prgi %u): answered INVALID",
			  key->dev_id, key->prgi);
		/* No slot: the caller answers through respond directly. */
		ctx->st.answers_invalid++;
		ctx->st.auto_answers++;
		return -ENOMEM;
	}
	if (p) {
		memcpy(grp_rec(g), p->rec, p->n * sizeof(*p->rec));
		if (p->truncated)
			g->gflags |= IOPF_GROUP_TRUNCATED;
		partial_free(ctx, src, p);
	}
	grp_rec(g)[n - 1] = *last;
	iopf__group_intake(ctx, g, iopf__now_ns());
	return 1;
}

IOPF_API int iopf_producer_submit(struct iopf_source *src,
				  const struct iopf_request *req)
{
	struct iopf_ctx *ctx;
	struct prg_key key;
	struct iopf_record rec;
	int rc;

	if (!src || !req || src->kind != SRC_PRODUCER || req->reserved ||
	    (req->flags & ~(IOPF_F_PASID_VALID | IOPF_F_LAST_PAGE)) ||
	    ((req->flags & IOPF_F_PASID_VALID) && req->pasid == IOPF_NO_PASID))
		return -EINVAL;
	ctx = src->ctx;
	key = (struct prg_key){
		.dev_id = req->dev_id,
		.pasid = (req->flags & IOPF_F_PASID_VALID) ? req->pasid :
							     IOPF_NO_PASID,
		.prgi = req->prgi,
	};
	rec = (struct iopf_record){ .addr = req->addr, .perm = req->perm,
				    .flags = req->flags };

	pthread_mutex_lock(&ctx->lock);
	if (ctx->ngone && iopf__dev_is_gone(ctx, key.dev_id)) {
		/* Nothing taken in, so no answer is owed. */
		rc = -ENODEV;
	} else if (!(req->flags & IOPF_F_LAST_PAGE)) {
		rc = hold(ctx, src, &key, &rec);
		if (rc) {
			ctx->st.partial_dropped++;
			iopf__log(ctx, rc == -ENOSPC ? LOG_W : LOG_E,
				  "partial request dropped (dev %u prgi %u): %s",
				  key.dev_id, key.prgi,
				  rc == -ENOSPC ? "partial cap reached" : "no memory");
			if (rc == -ENOMEM)
				rc = -ENOSPC;
		}
	} else {
		rc = complete(ctx, src, &key, &rec);
		if (rc == 1 && iopf__dispatch_ctx != ctx)
			iopf__wake(ctx);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (rc == -ENOMEM) {
		struct iopf_response r = { .dev_id = key.dev_id,
					   .pasid = key.pasid,
					   .prgi = key.prgi,
					   .code = IOPF_CODE_INVALID };

		src->respond(&r, src->respond_ud);
	}
	return rc;
}

IOPF_API struct iopf_source *
iopf_producer_new(struct iopf_ctx *ctx, const struct iopf_producer_opts *opts)
{
	struct iopf_producer_opts o;
	struct iopf_source *src;

	if (!ctx || !opts || iopf__opts_copy(&o, sizeof(o), opts) ||
	    !o.respond) {
		errno = EINVAL;
		return NULL;
	}
	src = iopf__source_new(ctx, SRC_PRODUCER);
	if (!src)
		return NULL;
	src->respond = o.respond;
	src->respond_ud = o.userdata;
	src->partial_cap = o.partial_cap ? o.partial_cap :
					   IOPF_DEFAULT_PARTIAL_CAP;
	pthread_mutex_lock(&ctx->lock);
	src->next = ctx->sources;
	if (ctx->sources)
		ctx->sources->prev = src;
	ctx->sources = src;
	pthread_mutex_unlock(&ctx->lock);
	return src;
}

IOPF_API int iopf_producer_discard_partial(struct iopf_source *src,
					   uint32_t dev_id, unsigned int flags)
{
	struct prg_key k = { .dev_id = dev_id };
	uint64_t before;
	int n;

	if (!src || src->kind != SRC_PRODUCER || (flags & ~IOPF_ALL_DEVICES))
		return -EINVAL;
	pthread_mutex_lock(&src->ctx->lock);
	before = src->ctx->partial_held;
	iopf__producer_free_partials(src->ctx, src, &k,
				     flags | IOPF_ALL_PASIDS);
	n = (int)(before - src->ctx->partial_held);
	pthread_mutex_unlock(&src->ctx->lock);
	return n;
}

IOPF_API int iopf_producer_flush_pasid(struct iopf_source *src,
				       uint32_t dev_id, uint32_t pasid)
{
	struct iopf_ctx *ctx;
	int n;

	if (!src || src->kind != SRC_PRODUCER)
		return -EINVAL;
	ctx = src->ctx;
	pthread_mutex_lock(&ctx->lock);
	n = iopf__answer_invalid_locked(ctx, src, dev_id, pasid, 0);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver_responses(ctx);
	return n;
}
