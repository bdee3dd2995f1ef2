/* SPDX-License-Identifier: MIT */
/*
 * group.c - the life of a group: slots, handles, the (device, PASID, PRG
 * index) index, and iopf__group_end(), the one function that ends a group
 * on every path. ctx->lock held throughout.
 *
 *   get -> intake: QUEUED -> HANDLING -> DEFERRED -> end: DONE -> FREE
 *                    \___________\___________\______/
 *
 * A group object lives in a slot and is recycled. A handle is (slot,
 * generation); the generation goes up when the slot is recycled, never
 * while anyone holds the group (pins), so iopf_group_handle() needs no
 * lock and a handle never reaches a later group of the same slot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "group-inl.h"

/* Groups come from slabs of SLAB_GROUPS: one malloc per slab, not per
 * group (the allocator's header would be 16 bytes a group), and no
 * pointer per slot: slot s is slabs[s / SLAB_GROUPS][s % SLAB_GROUPS]. */
static struct iopf_group *slot_new(struct iopf_ctx *ctx)
{
	uint32_t i = ctx->nslots % SLAB_GROUPS;
	struct iopf_group *g;

	if (ctx->nslots >= UINT32_MAX - SLAB_GROUPS)
		return NULL;
	if (!i) {
		struct iopf_group *sl;

		if (!(ctx->nslabs & (ctx->nslabs - 1))) { /* 0 or 2^k: grow */
			struct iopf_group **ls =
				xrealloc(ctx->slabs, (ctx->nslabs ? ctx->nslabs * 2 : 1) *
							     sizeof(*ls));

			if (!ls)
				return NULL;
			ctx->slabs = ls;
		}
		sl = xcalloc(SLAB_GROUPS, sizeof(*sl));
		if (!sl)
			return NULL;
		ctx->slabs[ctx->nslabs++] = sl;
	}
	g = &ctx->slabs[ctx->nslots / SLAB_GROUPS][i];
	g->slot = ctx->nslots++;
	g->gen = 1;
	g->cap = 1;
	return g;
}

static struct iopf_group *unquarantine(struct iopf_ctx *ctx)
{
	struct iopf_group *g = ctx->quar_head;

	if (!g)
		return NULL;
	if (!(ctx->quar_head = g->qnext))
		ctx->quar_tail = NULL;
	ctx->nquar--;
	g->gflags = 0;
	return g;
}

/* Debug mode: what a stale pointer reads is obviously wrong, and the
 * accessors stop at it (GF_POISONED). Slot, generation, state and the
 * record storage's capacity stay: the slot is reused later. */
void iopf__group_poison(struct iopf_ctx *ctx, struct iopf_group *g)
{
	memset(&g->key, POISON_BYTE, sizeof(g->key));
	g->cookie = 0x6b6b6b6bu;
	memset(grp_rec(g), POISON_BYTE, g->nrec * sizeof(struct iopf_record));
	g->gflags = GF_POISONED;
	g->qnext = NULL;
	if (ctx->quar_tail)
		ctx->quar_tail->qnext = g;
	else
		ctx->quar_head = g;
	ctx->quar_tail = g;
	ctx->nquar++;
}

void iopf__poisoned(const struct iopf_group *g)
{
	fprintf(stderr,
		"libiopf: group %p used after its handler returned and it was answered (keep its handle, not the pointer); aborting (IOPF_CTX_POISON)\n",
		(const void *)g);
	abort();
}

/* group_get()'s slow path: a new or quarantined slot, or records that
 * need more room than the slot has. */
struct iopf_group *iopf__group_get_slow(struct iopf_ctx *ctx,
					struct iopf_source *src,
					const struct prg_key *key, uint32_t nrec)
{
	struct iopf_group *g = ctx->free_list;

	if (g)
		ctx->free_list = g->qnext;
	else if (ctx->nquar > QUARANTINE) /* the oldest poisoned slot */
		g = unquarantine(ctx);
	else if (!(g = slot_new(ctx)) && !(g = unquarantine(ctx)))
		return NULL;
	if (nrec > g->cap) {
		/* records, then their length fields (grp_len()) */
		struct iopf_record *r = xmalloc(nrec * (sizeof(*r) + sizeof(uint32_t)));

		if (!r) {
			g->qnext = ctx->free_list;
			ctx->free_list = g;
			return NULL;
		}
		if (g->cap > 1)
			free(g->ext);
		g->ext = r;
		g->cap = nrec;
	}
	return group_init(g, src, key, nrec);
}

/* A slot for a group of nrec records, holding a reference to src. */
struct iopf_group *iopf__group_get(struct iopf_ctx *ctx, struct iopf_source *src,
				   const struct prg_key *key, uint32_t nrec)
{
	return group_get(ctx, src, key, nrec);
}

/* Back to the free list: the generation goes up, the source is let go. */
void iopf__group_put(struct iopf_ctx *ctx, struct iopf_group *g)
{
	group_put(ctx, g);
}

/* ---- the (device, PASID, PRG index) index: kept once asked for ----
 *
 * Each key has a FIFO of its outstanding groups (prg_next/prg_prev,
 * circular, in intake order); the index holds each FIFO's head, the
 * oldest. A PCIe PRG index has 9 bits, so a head lives in its flow's
 * array at the PRG index: no hashing, and answers a VMM gives back in
 * about the order it got them touch few cache lines, however many groups
 * are outstanding (a table hashed over all keys cost a cache miss an
 * answer). Heads of larger indexes (SMMU stall tags have 16 bits) and of
 * groups in the fallback flow, which mixes keys, live in ctx->by_prg.
 */
#define PRG_DIRECT 512u

static bool prg_direct(const struct iopf_group *g)
{
	return g->key.prgi < PRG_DIRECT && g->flow != 0;
}

/* The head of g's key, NULL if it has none. (prg_cell() in group-inl.h
 * is the same array cell, once the array has grown to g's index.) */
static struct iopf_group *prg_head(struct iopf_ctx *ctx, const struct iopf_group *g)
{
	if (prg_direct(g))
		return prg_head_of(ctx, ctx->sched.flows[g->flow], g->key.prgi);
	return tbl_get(&ctx->by_prg, key_hi(&g->key), g->key.prgi);
}

/* Make h (NULL: none) the head of g's key. Only a key's first head can
 * need memory: -ENOMEM. */
static int prg_set_head(struct iopf_ctx *ctx, const struct iopf_group *g,
			struct iopf_group *h)
{
	struct flow *f = ctx->sched.flows[g->flow];
	uint32_t i = g->key.prgi;

	if (!prg_direct(g)) {
		if (h)
			return tbl_put(&ctx->by_prg, key_hi(&g->key), i, h);
		tbl_del(&ctx->by_prg, key_hi(&g->key), i);
		return 0;
	}
	if (i >= f->prg_cap) { /* grows to the PRG indexes in use */
		uint32_t cap = f->prg_cap ? f->prg_cap : 64, *a;

		while (cap <= i)
			cap *= 2;
		if (!(a = xrealloc(f->prg, cap * sizeof(*a))))
			return -ENOMEM;
		memset(a + f->prg_cap, 0, (cap - f->prg_cap) * sizeof(*a));
		f->prg = a;
		f->prg_cap = cap;
	}
	f->prg[i] = h ? h->slot + 1 : 0;
	return 0;
}

/* Into its key's FIFO, which is kept in intake order. Groups come in
 * intake order almost always (new ones; the index built in slot order),
 * so the place is looked for from the tail back: O(1), not the length of
 * the FIFO (which made building the index O(n * k) for k groups a key). */
int iopf__prg_insert(struct iopf_ctx *ctx, struct iopf_group *g)
{
	struct iopf_group *head = prg_head(ctx, g), *at;

	if (!head) {
		if (prg_set_head(ctx, g, g))
			return -ENOMEM;
		g->prg_next = g->prg_prev = g;
		g->indexed = true;
		return 0;
	}
	/* circular: head->prg_prev is the tail */
	for (at = head->prg_prev; at != head && (int32_t)(g->seq - at->seq) < 0;)
		at = at->prg_prev;
	if (at == head && (int32_t)(g->seq - head->seq) < 0) {
		/* older than all: the new head, before the old one */
		g->prg_next = head;
		g->prg_prev = head->prg_prev;
		head->prg_prev->prg_next = g;
		head->prg_prev = g;
		prg_set_head(ctx, g, g); /* the key has a head: no memory needed */
	} else { /* after at */
		g->prg_prev = at;
		g->prg_next = at->prg_next;
		at->prg_next->prg_prev = g;
		at->prg_next = g;
	}
	g->indexed = true;
	return 0;
}

void iopf__prg_remove(struct iopf_ctx *ctx, struct iopf_group *g)
{
	struct iopf_group *nx = g->prg_next;

	if (!g->indexed)
		return;
	if (prg_head(ctx, g) == g)
		prg_set_head(ctx, g, nx != g ? nx : NULL); /* needs no memory */
	g->prg_prev->prg_next = nx;
	nx->prg_prev = g->prg_prev;
	g->prg_next = g->prg_prev = NULL;
	g->indexed = false;
}

/* The oldest group still open to an answer in the FIFO that starts at
 * head (a group whose handler has returned its answer is answered
 * already), or NULL. */
static struct iopf_group *oldest_answerable(struct iopf_group *head)
{
	struct iopf_group *g = head;

	if (g)
		do {
			if (gst_answerable(gst(g)))
				return g;
		} while ((g = g->prg_next) != head);
	return NULL;
}

/* The oldest outstanding group of key k. The index is built the first
 * time someone answers by PRG index (a VMM); others never pay for it.
 * Groups of k can be in its flow and, taken in while memory for a flow
 * was short, in the fallback flow too. */
int iopf__group_by_prg(struct iopf_ctx *ctx, const struct prg_key *k,
		       struct iopf_group **out)
{
	struct iopf_group *g, *t = NULL;
	struct flow *f;

	if (!ctx->prg_on) {
		FOR_EACH_LIVE(ctx, i, g)
			if (iopf__prg_insert(ctx, g))
				goto nomem;
		ctx->prg_on = true;
		ctx->tracked = true;
	}
	g = k->prgi < PRG_DIRECT && (f = sched_flow_find(ctx, key_hi(k))) ?
		    oldest_answerable(prg_head_of(ctx, f, k->prgi)) : NULL;
	if (ctx->by_prg.n)
		t = oldest_answerable(tbl_get(&ctx->by_prg, key_hi(k), k->prgi));
	if (t && (!g || (int32_t)(t->seq - g->seq) < 0))
		g = t;
	*out = g;
	return g ? 0 : -ENOENT;
nomem:
	FOR_EACH_LIVE(ctx, i, g)
		iopf__prg_remove(ctx, g);
	tbl_free(&ctx->by_prg);
	return -ENOMEM;
}

/* ---- intake ---- */

void iopf__group_intake(struct iopf_ctx *ctx, struct iopf_group *g, uint64_t now)
{
	group_intake(ctx, g, now);
}

/* group_intake(): the PRG index or the deadline had no room for it. */
void iopf__group_untracked(struct iopf_ctx *ctx, struct iopf_group *g,
			   const char *what)
{
	ctx->st.alloc_failures++;
	iopf__log(ctx, LOG_E, "no memory to %s dev %u prgi %u: answered INVALID",
		  what, g->key.dev_id, g->key.prgi);
	iopf__group_end_auto(ctx, g, END_ANSWERED);
}

/* Remember how a group that reached its handler ended early, so that a
 * late answer by its handle gets the right error for as long as the ring
 * remembers it, however often the slot is reused meanwhile. Best effort:
 * without memory the late answer gets -EALREADY. */
void iopf__tomb_add(struct iopf_ctx *ctx, iopf_handle_t h, enum gend why)
{
	if (!ctx->tomb_ring) {
		ctx->tomb_ring = xmalloc(IOPF_TOMBS * sizeof(*ctx->tomb_ring));
		if (!ctx->tomb_ring)
			return;
	}
	if (ctx->tomb_n == IOPF_TOMBS) {
		tbl_del(&ctx->tombs, ctx->tomb_ring[ctx->tomb_head], 0);
		ctx->tomb_head = (ctx->tomb_head + 1) % IOPF_TOMBS;
		ctx->tomb_n--;
	}
	if (tbl_put(&ctx->tombs, h, 0, (void *)(uintptr_t)why))
		return;
	ctx->tomb_ring[(ctx->tomb_head + ctx->tomb_n++) % IOPF_TOMBS] = h;
}

/* The one function that ends a group: group_end() in group-inl.h. */
int iopf__group_end(struct iopf_ctx *ctx, struct iopf_group *g, int code,
		    enum gend why)
{
	return group_end(ctx, g, code, why, false);
}

/* Many live groups answered by handle: group_end_n(). */
void iopf__group_end_many(struct iopf_ctx *ctx, struct iopf_group *const *gs,
			  const int *codes, unsigned int n)
{
	group_end_n(ctx, gs, codes, n, END_ANSWERED, false, false, false);
}

void iopf__group_end_auto(struct iopf_ctx *ctx, struct iopf_group *g,
			  enum gend why)
{
	group_end(ctx, g, IOPF_CODE_INVALID, why, true);
}

int iopf__end_error(unsigned int why)
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

/* The live group behind a handle, or NULL with *err: the error that
 * handle gets, decided by the handle alone. */
struct iopf_group *iopf__group_from_handle(struct iopf_ctx *ctx,
					   iopf_handle_t h, int *err)
{
	uint32_t idx = (uint32_t)h, gen = (uint32_t)(h >> 32);
	struct iopf_group *g;
	void *why;

	if (idx == 0 || idx > ctx->nslots) {
		*err = -ENOENT;
		return NULL;
	}
	idx--;
	g = iopf__slot(ctx, idx);
	if (gen == g->gen) {
		uint8_t st = gst(g);

		if (gst_answerable(st))
			return g;
		*err = st == GS_DONE ? iopf__end_error(g->end) :
		       st == GS_RETURNED ? -EALREADY : -ENOENT;
		return NULL;
	}
	if ((int32_t)(gen - g->gen) > 0) { /* not handed out yet */
		*err = -ENOENT;
		return NULL;
	}
	why = tbl_get(&ctx->tombs, h, 0);
	*err = iopf__end_error(why ? (unsigned int)(uintptr_t)why : END_ANSWERED);
	return NULL;
}

#ifdef IOPF_TESTING
void iopf__slots_set_gen(struct iopf_ctx *ctx, uint32_t gen)
{
	pthread_mutex_lock(&ctx->lock);
	for (uint32_t i = 0; i < ctx->nslots; i++)
		if (gst(iopf__slot(ctx, i)) == GS_FREE)
			iopf__slot(ctx, i)->gen = gen;
	pthread_mutex_unlock(&ctx->lock);
}
#endif

void iopf__groups_free(struct iopf_ctx *ctx)
{
	for (uint32_t i = 0; i < ctx->nslots; i++) {
		struct iopf_group *g = iopf__slot(ctx, i);

		if (g->cap > 1)
			free(g->ext);
	}
	for (uint32_t i = 0; i < ctx->nslabs; i++)
		free(ctx->slabs[i]);
	free(ctx->slabs);
	free(ctx->tomb_ring);
	iopf__deadline_free(ctx);
	tbl_free(&ctx->tombs);
	tbl_free(&ctx->by_prg);
}

/* ---- public: what a handler reads of its group ---- */

IOPF_API uint32_t iopf_group_dev_id(const struct iopf_group *g)
{
	return grp_checked(g)->key.dev_id;
}

IOPF_API uint32_t iopf_group_pasid(const struct iopf_group *g)
{
	return grp_checked(g)->key.pasid;
}

IOPF_API uint32_t iopf_group_prgi(const struct iopf_group *g)
{
	return grp_checked(g)->key.prgi;
}

IOPF_API uint32_t iopf_group_flags(const struct iopf_group *g)
{
	return grp_checked(g)->gflags;
}

IOPF_API uint32_t iopf_group_cookie(const struct iopf_group *g)
{
	return grp_checked(g)->cookie;
}

IOPF_API struct iopf_source *iopf_group_source(const struct iopf_group *g)
{
	return grp_checked(g)->src;
}

IOPF_API const struct iopf_record *iopf_group_records(const struct iopf_group *g,
						      size_t *n)
{
	grp_checked(g);
	if (n)
		*n = g->nrec;
	return grp_rec((struct iopf_group *)g);
}

IOPF_API iopf_handle_t iopf_group_handle(const struct iopf_group *g)
{
	return grp_handle(grp_checked(g));
}
