/* SPDX-License-Identifier: MIT */
/*
 * table.h - a small open-addressing hash table: a 96-bit key to a
 * non-NULL pointer and 32 bits of the owner's. Linear probing,
 * backward-shift deletion, at most half full. Never exits: an insert that
 * cannot grow returns -ENOMEM.
 */
#ifndef IOPF_TABLE_H
#define IOPF_TABLE_H

#include <stdint.h>

struct tbl_ent {
	uint64_t a;
	uint32_t b;
	uint32_t u; /* the owner's, beside the value: not part of the key */
	void *v;    /* NULL: empty */
};

struct tbl {
	struct tbl_ent *e;
	uint32_t cap, n; /* cap: 0 or a power of two */
};

void *tbl_get(const struct tbl *t, uint64_t a, uint32_t b);
/* A key's entry, or NULL: v (non-NULL) and u may be changed in place,
 * until the next put or del moves entries. */
struct tbl_ent *tbl_find(const struct tbl *t, uint64_t a, uint32_t b);
/* Insert (u 0), or replace the value of an existing key. 0 or -ENOMEM. */
int tbl_put(struct tbl *t, uint64_t a, uint32_t b, void *v);
/* Remove a key; returns its value, or NULL if absent. */
void *tbl_del(struct tbl *t, uint64_t a, uint32_t b);
void tbl_free(struct tbl *t);

/* A walk over e[0..cap) that deletes the entry at i must look at i again:
 * the deletion may shift a later entry there (producer.c does so). */

#endif
