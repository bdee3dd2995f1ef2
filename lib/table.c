/* SPDX-License-Identifier: MIT */
/* table.c - see table.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"
#include "table.h"

static uint32_t slot_of(const struct tbl *t, uint64_t a, uint32_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) *
						       0xc2b2ae3d27d4eb4full;

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (uint32_t)h & (t->cap - 1);
}

struct tbl_ent *tbl_find(const struct tbl *t, uint64_t a, uint32_t b)
{
	if (!t->n)
		return NULL;
	for (uint32_t i = slot_of(t, a, b);; i = (i + 1) & (t->cap - 1)) {
		struct tbl_ent *e = &t->e[i];

		if (!e->v)
			return NULL;
		if (e->a == a && e->b == b)
			return e;
	}
}

void *tbl_get(const struct tbl *t, uint64_t a, uint32_t b)
{
	struct tbl_ent *e = tbl_find(t, a, b);

	return e ? e->v : NULL;
}

static void place(struct tbl *t, uint64_t a, uint32_t b, uint32_t u, void *v)
{
	uint32_t i = slot_of(t, a, b);

	while (t->e[i].v)
		i = (i + 1) & (t->cap - 1);
	t->e[i] = (struct tbl_ent){ .a = a, .b = b, .u = u, .v = v };
	t->n++;
}

static int grow(struct tbl *t)
{
	uint32_t cap = t->cap ? t->cap * 2 : 16;
	struct tbl old = *t;
	struct tbl_ent *e;

	if (!cap)
		return -ENOMEM;
	e = xcalloc(cap, sizeof(*e));
	if (!e)
		return -ENOMEM;
	t->e = e;
	t->cap = cap;
	t->n = 0;
	for (uint32_t i = 0; i < old.cap; i++)
		if (old.e[i].v)
			place(t, old.e[i].a, old.e[i].b, old.e[i].u, old.e[i].v);
	free(old.e);
	return 0;
}

int tbl_put(struct tbl *t, uint64_t a, uint32_t b, void *v)
{
	if (t->n) {
		for (uint32_t i = slot_of(t, a, b);; i = (i + 1) & (t->cap - 1)) {
			struct tbl_ent *e = &t->e[i];

			if (!e->v)
				break;
			if (e->a == a && e->b == b) {
				e->v = v;
				return 0;
			}
		}
	}
	if ((t->n + 1) * 2 > t->cap && grow(t))
		return -ENOMEM;
	place(t, a, b, 0, v);
	return 0;
}

void *tbl_del(struct tbl *t, uint64_t a, uint32_t b)
{
	uint32_t mask = t->cap - 1, i, j;
	void *v;

	if (!t->n)
		return NULL;
	for (i = slot_of(t, a, b);; i = (i + 1) & mask) {
		if (!t->e[i].v)
			return NULL;
		if (t->e[i].a == a && t->e[i].b == b)
			break;
	}
	v = t->e[i].v;
	t->n--;
	/* Backward shift: pull later members of the cluster into the hole
	 * unless they already sit at or after their home slot. */
	for (j = (i + 1) & mask; t->e[j].v; j = (j + 1) & mask) {
		uint32_t home = slot_of(t, t->e[j].a, t->e[j].b);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->e[i] = t->e[j];
			i = j;
		}
	}
	t->e[i].v = NULL;
	return v;
}

void tbl_free(struct tbl *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}
