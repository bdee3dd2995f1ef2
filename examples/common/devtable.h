/* SPDX-License-Identifier: MIT */
/*
 * devtable.h - libiopf's per-device counters (since 1.3) as a text table,
 * slowest devices first (p99 read-to-answer latency, then outstanding
 * groups), optionally with a row per PASID under each device.
 * PASID rows need a context made with IOPF_CTX_PASID_STATS; they are
 * the PASIDs iopf_ctx_list_pasids() names, waiting groups' included.
 */
#ifndef IOPF_EXAMPLES_DEVTABLE_H
#define IOPF_EXAMPLES_DEVTABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <iopf/iopf.h>

struct devtable;

/* pasids: PASID rows too (the context needs IOPF_CTX_PASID_STATS).
 * NULL without memory. */
struct devtable *devtable_new(struct iopf_ctx *ctx, bool pasids);
void devtable_free(struct devtable *t);
/*
 * Write the table to f, headed by `title`. tty: redraw in place (cursor
 * home, each line cleared to its end, the rest of the screen cleared);
 * else a block of plain lines ending in an empty one. Rows:
 *   DEVICE PASID GROUPS RECORDS SUCCESS INVALID AUTO OUTST READY P50 P99
 * PASID is "all" on a device's totals, "-" for its groups without PASID.
 * Returns the number of devices, or -1 if f could not be written.
 * Any thread.
 */
int devtable_render(struct devtable *t, FILE *f, bool tty, const char *title);

#endif
