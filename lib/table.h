/* SPDX-License-Identifier: MIT */
/*
 * table.h - a small open-addressing hash table: a 128-bit key to a
 * non-NULL pointer. Linear probing, backward-shift deletion, at most half
 * full. Never exits: an insert that cannot grow returns -ENOMEM.
 */
#ifndef IOPF_TABLE_H
#define IOPF_TABLE_H

#include <stdint.h>

struct tbl_ent {
	uint64_t a, b;
	void *v; /* NULL: empty */
};

struct tbl {
	struct tbl_ent *e;
	uint32_t cap, n; /* cap: 0 or a power of two */
};

void *tbl_get(const struct tbl *t, uint64_t a, uint64_t b);
/* Insert, or replace the value of an existing key. 0 or -ENOMEM. */
int tbl_put(struct tbl *t, uint64_t a, uint64_t b, void *v);
/* Remove a key; returns its value, or NULL if absent. */
void *tbl_del(struct tbl *t, uint64_t a, uint64_t b);
void tbl_free(struct tbl *t);

/* A walk over e[0..cap) that deletes the entry at i must look at i again:
 * the deletion may shift a later entry there (producer.c does so). */

#endif
