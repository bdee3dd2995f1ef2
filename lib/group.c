/* SPDX-License-Identifier: MIT */
/*
 * group.c - the life of a group: slots, generation-tagged handles, the
 * cookie and (device, PASID, PRG index) indices, and the one transition
 * that answers a group. Everything here runs with ctx->lock held unless a
 * function says otherwise.
 *
 * A group object lives in a slot and is recycled; its generation goes up
 * each time a life ends, so a handle (slot, generation) can never reach a
 * later group in the same slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Thread_local struct iopf_group *iopf__resp_head;

/* Groups come from slabs: one malloc per SLAB_GROUPS groups, not per
 * group (the allocator's header would be 16 bytes a group). */
#define SLAB_GROUPS 64u

static struct iopf_group *slab_take(struct iopf_ctx *ctx)
{
	if (!ctx->slab || ctx->slab_used == SLAB_GROUPS) {
		void **ls;
		struct iopf_group *sl;

		if (!(ctx->nslabs & (ctx->nslabs - 1)) || !ctx->slabs) {
			ls = realloc(ctx->slabs, (ctx->nslabs ? ctx->nslabs * 2 : 1) *
						 sizeof(*ls));
			if (!ls)
				return NULL;
			ctx->slabs = ls;
		}
		sl = calloc(SLAB_GROUPS, sizeof(*sl));
		if (!sl)
			return NULL;
		ctx->slabs[ctx->nslabs++] = sl;
		ctx->slab = sl;
		ctx->slab_used = 0;
	}
	return &ctx->slab[ctx->slab_used++];
}

static struct iopf_group *slot_new(struct iopf_ctx *ctx)
{
	struct iopf_group *g;

	if (ctx->nslots == UINT32_MAX - 1)
		return NULL;
	if (ctx->nslots == ctx->slots_cap) {
		uint32_t cap = ctx->slots_cap ? ctx->slots_cap * 2 : 64;
		struct iopf_group **s = realloc(ctx->slots, cap * sizeof(*s));

		if (!s)
			return NULL;
		ctx->slots = s;
		ctx->slots_cap = cap;
	}
	g = slab_take(ctx);
	if (!g)
		return NULL;
	g->slot = ctx->nslots;
	g->gen = 1;
	g->cap = 1;
	ctx->slots[ctx->nslots++] = g;
	return g;
}

struct iopf_group *iopf__group_get(struct iopf_ctx *ctx, struct iopf_source *src,
				   const struct prg_key *key, uint32_t nrec)
{
	struct iopf_group *g;

	if (iopf__alloc_should_fail())
		return NULL;
	g = ctx->free_list;
	if (g)
		ctx->free_list = g->next;
	else if (!(g = slot_new(ctx)))
		return NULL;

	if (nrec > g->cap) {
		struct iopf_record *r = malloc(nrec * sizeof(*r));

		if (!r) {
			iopf__group_put(ctx, g);
			return NULL;
		}
		if (g->cap > 1)
			free(g->ext);
		g->ext = r;
		g->cap = nrec;
	}
	g->key = *key;
	g->src = src;
	g->nrec = nrec;
	g->gflags = 0;
	g->cookie = 0;
	g->next = g->prev = NULL;
	g->rnext = NULL;
	g->prg_next = g->prg_prev = NULL;
	g->prg_head = false;
	g->in_out = false;
	g->in_cookie = false;
	g->state = G_ENDED;
	return g;
}

/* Return a slot that never started a life (its generation is unchanged). */
void iopf__group_put(struct iopf_ctx *ctx, struct iopf_group *g)
{
	g->state = G_FREE;
	g->next = ctx->free_list;
	ctx->free_list = g;
}

static void prg_insert(struct iopf_ctx *ctx, struct iopf_group *g)
{
	struct iopf_group *head;

	HASH_FIND(hh_prg, ctx->by_prg, &g->key, sizeof(g->key), head);
	if (!head) {
		g->prg_next = g->prg_prev = g;
		g->prg_head = true;
		HASH_ADD(hh_prg, ctx->by_prg, key, sizeof(g->key), g);
		return;
	}
	/* circular FIFO: head->prg_prev is the tail */
	g->prg_prev = head->prg_prev;
	g->prg_next = head;
	head->prg_prev->prg_next = g;
	head->prg_prev = g;
}

void iopf__prg_remove(struct iopf_ctx *ctx, struct iopf_group *g)
{
	struct iopf_group *nx = g->prg_next;

	if (!nx)
		return;
	if (g->prg_head) {
		HASH_DELETE(hh_prg, ctx->by_prg, g);
		g->prg_head = false;
		if (nx != g) {
			nx->prg_head = true;
			HASH_ADD(hh_prg, ctx->by_prg, key, sizeof(nx->key), nx);
		}
	}
	if (nx != g) {
		g->prg_prev->prg_next = nx;
		nx->prg_prev = g->prg_prev;
	}
	g->prg_next = g->prg_prev = NULL;
}

static void out_remove(struct iopf_ctx *ctx, struct iopf_group *g)
{
	if (!g->in_out)
		return;
	if (g->prev)
		g->prev->next = g->next;
	else
		ctx->out_head = g->next;
	if (g->next)
		g->next->prev = g->prev;
	else
		ctx->out_tail = g->prev;
	g->next = g->prev = NULL;
	g->in_out = false;
	ctx->outstanding--;
	if (ctx->max_outstanding && ctx->outstanding + 1 == ctx->max_outstanding)
		iopf__source_pause(ctx, false);
	if (ctx->drainers)
		pthread_cond_broadcast(&ctx->answered);
}

static iopf_handler_fn resolve_handler(struct iopf_ctx *ctx,
				       const struct prg_key *k, void **ud)
{
	struct handler_ent *h = NULL;
	uint64_t key;

	if (ctx->handlers) {
		key = (uint64_t)k->dev_id << 32 | k->pasid;
		HASH_FIND(hh, ctx->handlers, &key, sizeof(key), h);
		if (!h) {
			/* device handlers are stored with pasid ANY (0xfffffffe) */
			key = (uint64_t)k->dev_id << 32 | 0xfffffffeu;
			HASH_FIND(hh, ctx->handlers, &key, sizeof(key), h);
		}
	}
	if (h) {
		*ud = h->ud;
		return h->fn;
	}
	*ud = ctx->default_ud;
	return ctx->default_fn;
}

/* A complete group enters the context: outstanding, indexed, ready. */
void iopf__group_intake(struct iopf_ctx *ctx, struct iopf_group *g, uint64_t now)
{
	g->t_in = now;
	g->state = G_READY;
	g->prev = ctx->out_tail;
	g->next = NULL;
	if (ctx->out_tail)
		ctx->out_tail->next = g;
	else
		ctx->out_head = g;
	ctx->out_tail = g;
	g->in_out = true;
	ctx->outstanding++;
	prg_insert(ctx, g);
	g->fn = resolve_handler(ctx, &g->key, &g->fn_ud);
	ctx->st.groups++;
	ctx->st.records += g->nrec;
	if (ctx->max_outstanding && ctx->outstanding == ctx->max_outstanding)
		iopf__source_pause(ctx, true);
	iopf__ready_push(ctx, g);
}

/* End a group's life without an answer from us (or after its answer was
 * written): out of every index, generation bumped, slot recycled unless
 * someone holds a pin on it. */
void iopf__group_end(struct iopf_ctx *ctx, struct iopf_group *g,
		     enum grp_end why)
{
	if (g->state == G_FREE || g->state == G_ENDED)
		return;
	out_remove(ctx, g);
	iopf__prg_remove(ctx, g);
	if (g->in_cookie) {
		HASH_DELETE(hh_cookie, g->src->by_cookie, g);
		g->in_cookie = false;
	}
	g->gen++;
	if (g->gen == 0) /* handles never carry generation 0 */
		g->gen = 1;
	g->end = why;
	g->state = G_ENDED;
	if (!g->pins) {
		g->state = G_FREE;
		g->next = ctx->free_list;
		ctx->free_list = g;
	}
}

void iopf__group_unpin(struct iopf_ctx *ctx, struct iopf_group *g)
{
	if (--g->pins == 0 && g->state == G_ENDED) {
		g->state = G_FREE;
		g->next = ctx->free_list;
		ctx->free_list = g;
	}
}

static void latency_add(struct iopf_ctx *ctx, uint64_t ns)
{
	unsigned int b = ns ? 63 - (unsigned int)__builtin_clzll(ns) : 0;

	if (b >= IOPF_LAT_BUCKETS)
		b = IOPF_LAT_BUCKETS - 1;
	ctx->st.latency_hist[b]++;
}

/* The one place a group gets its answer. Refuses (and counts) anything
 * but the first answer. */
int iopf__group_answer(struct iopf_ctx *ctx, struct iopf_group *g,
		       uint32_t code, enum grp_end why, bool automatic)
{
	struct iopf_source *src = g->src;

	if (g->state != G_READY && g->state != G_HANDLING) {
		ctx->st.refused_answers++;
		return -EALREADY;
	}
	out_remove(ctx, g);
	iopf__prg_remove(ctx, g);
	latency_add(ctx, iopf__now_ns() - g->t_in);
	if (code == IOPF_CODE_SUCCESS)
		ctx->st.answers_success++;
	else
		ctx->st.answers_invalid++;
	if (automatic)
		ctx->st.auto_answers++;
	g->code = (uint8_t)code;
	g->why = (uint8_t)why;

	if (src->kind == SRC_FAULTQ) {
		g->state = G_PENDING;
		iopf__batch_add(ctx, src, g, g->cookie, code);
		return 0;
	}
	/* Producer: end now, call back after the lock is dropped, through
	 * a copy of the callback (the source may be closed by then). */
	g->pins++;
	iopf__group_end(ctx, g, why);
	g->resp_fn = src->respond;
	g->fn_ud = src->respond_ud;
	g->rnext = iopf__resp_head;
	iopf__resp_head = g;
	return 0;
}

/* Call producers' respond callbacks gathered by this thread. No lock. */
void iopf__deliver_responses(struct iopf_ctx *ctx)
{
	struct iopf_group *list = iopf__resp_head, *g, *nx;

	if (!list)
		return;
	iopf__resp_head = NULL;
	for (g = list; g; g = g->rnext) {
		struct iopf_response r = {
			.dev_id = g->key.dev_id,
			.pasid = g->key.pasid,
			.prgi = g->key.prgi,
			.code = g->code,
		};
		g->resp_fn(&r, g->fn_ud);
	}
	pthread_mutex_lock(&ctx->lock);
	for (g = list; g; g = nx) {
		nx = g->rnext;
		g->rnext = NULL;
		iopf__group_unpin(ctx, g);
	}
	pthread_mutex_unlock(&ctx->lock);
}

/* The error a late answer gets, from how the group's life ended. */
static int end_error(unsigned int why)
{
	switch (why) {
	case END_CLOSED:
	case END_DETACHED:
		return -ESHUTDOWN;
	case END_DEADLINE:
		return -ETIMEDOUT;
	case END_GONE:
		return -ENODEV;
	default:
		return -EALREADY;
	}
}

struct iopf_group *iopf__group_from_handle(struct iopf_ctx *ctx,
					   iopf_handle_t h, int *err)
{
	uint32_t idx = (uint32_t)h, gen = (uint32_t)(h >> 32);
	struct iopf_group *g;

	if (idx == 0 || idx > ctx->nslots || gen == 0) {
		*err = -ENOENT;
		return NULL;
	}
	g = ctx->slots[idx - 1];
	if (gen == g->gen) {
		if (g->state == G_READY || g->state == G_HANDLING)
			return g;
		*err = g->state == G_PENDING ? end_error(g->why) : -ENOENT;
		return NULL;
	}
	if (gen > g->gen) {
		*err = -ENOENT;
		return NULL;
	}
	*err = gen + 1 == g->gen ? end_error(g->end) : -EALREADY;
	return NULL;
}

void iopf__groups_free(struct iopf_ctx *ctx)
{
	for (uint32_t i = 0; i < ctx->nslots; i++) {
		struct iopf_group *g = ctx->slots[i];

		if (g->cap > 1)
			free(g->ext);
	}
	for (uint32_t i = 0; i < ctx->nslabs; i++)
		free(ctx->slabs[i]);
	free(ctx->slabs);
	ctx->slabs = NULL;
	ctx->slab = NULL;
	ctx->nslabs = 0;
	free(ctx->slots);
	ctx->slots = NULL;
	ctx->nslots = ctx->slots_cap = 0;
	ctx->free_list = NULL;
	HASH_CLEAR(hh_prg, ctx->by_prg);
}

/* ---- public: getters and answers ---- */

IOPF_API uint32_t iopf_group_dev_id(const struct iopf_group *g)
{
	return g->key.dev_id;
}

IOPF_API uint32_t iopf_group_pasid(const struct iopf_group *g)
{
	return g->key.pasid;
}

IOPF_API uint32_t iopf_group_prgi(const struct iopf_group *g)
{
	return g->key.prgi;
}

IOPF_API uint32_t iopf_group_flags(const struct iopf_group *g)
{
	return g->gflags;
}

IOPF_API uint32_t iopf_group_cookie(const struct iopf_group *g)
{
	return g->src->kind == SRC_FAULTQ ? g->cookie : 0;
}

IOPF_API struct iopf_source *iopf_group_source(const struct iopf_group *g)
{
	return g->src;
}

IOPF_API const struct iopf_record *iopf_group_records(const struct iopf_group *g,
						      size_t *n)
{
	if (n)
		*n = g->nrec;
	return grp_rec((struct iopf_group *)g);
}

IOPF_API iopf_handle_t iopf_group_handle(const struct iopf_group *g)
{
	uint32_t gen = g->gen;

	/* An ended group still held (a handler, a cancel callback) already
	 * carries its next life's generation: give the handle of its own. */
	if (g->state == G_ENDED || g->state == G_FREE)
		gen = gen == 1 ? UINT32_MAX : gen - 1;
	return (uint64_t)gen << 32 | (g->slot + 1);
}

static int answer_done(struct iopf_ctx *ctx, int rc)
{
	/* An answer from outside the dispatching thread wakes the loop so
	 * the batch is written without waiting for the next fault. */
	if (rc == 0 && iopf__dispatch_ctx != ctx)
		iopf__wake(ctx);
	pthread_mutex_unlock(&ctx->lock);
	iopf__deliver_responses(ctx);
	return rc;
}

IOPF_API int iopf_respond(struct iopf_ctx *ctx, iopf_handle_t h,
			  enum iopf_code code)
{
	struct iopf_group *g;
	int err = 0;

	if (!ctx || (code != IOPF_CODE_SUCCESS && code != IOPF_CODE_INVALID))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	g = iopf__group_from_handle(ctx, h, &err);
	if (g)
		err = iopf__group_answer(ctx, g, code, END_ANSWERED, false);
	else {
		ctx->st.refused_answers++;
		iopf__log(ctx, LOG_I, "answer to handle %#llx refused: %s",
			  (unsigned long long)h, strerror(-err));
	}
	return answer_done(ctx, err);
}

IOPF_API int iopf_respond_prg(struct iopf_ctx *ctx, uint32_t dev_id,
			      uint32_t pasid, uint32_t prgi,
			      enum iopf_code code)
{
	struct prg_key k = { .dev_id = dev_id, .pasid = pasid, .prgi = prgi };
	struct iopf_group *g;
	int err;

	if (!ctx || (code != IOPF_CODE_SUCCESS && code != IOPF_CODE_INVALID))
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	if (ctx->ngone && iopf__dev_is_gone(ctx, dev_id)) {
		ctx->st.refused_answers++;
		iopf__log(ctx, LOG_I, "answer to gone dev %u prgi %u refused",
			  dev_id, prgi);
		return answer_done(ctx, -ENODEV);
	}
	HASH_FIND(hh_prg, ctx->by_prg, &k, sizeof(k), g);
	if (g) {
		err = iopf__group_answer(ctx, g, code, END_ANSWERED, false);
	} else {
		err = -ENOENT;
		ctx->st.unmatched_answers++;
		ctx->st.refused_answers++;
		iopf__log(ctx, LOG_I,
			  "answer to dev %u pasid %#x prgi %u matches no group",
			  dev_id, pasid, prgi);
	}
	return answer_done(ctx, err);
}
