/* SPDX-License-Identifier: MIT */
/* testutil.h - helpers shared by the Check suites. */
#ifndef IOPF_TESTUTIL_H
#define IOPF_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "iopf/iopf.h"
#include "internal.h" /* test seams: iopf__fail_alloc_after */

Suite *suite_fake(void);
Suite *suite_opts(void);
Suite *suite_faultq(void);
Suite *suite_batch(void);
Suite *suite_handles(void);
Suite *suite_producer(void);
Suite *suite_dispatch(void);
Suite *suite_device(void);
Suite *suite_once(void);
Suite *suite_sched(void);
Suite *suite_probe(void);
Suite *suite_record(void);
Suite *suite_veventq(void);

/* A context with one fault queue on a fresh fake fault object. */
struct tctx {
	struct iopf_ctx *ctx;
	struct iopf_source *src;
	struct fk_fault *f;
};

static inline void tctx_init_opts(struct tctx *t, const struct iopf_ctx_opts *o,
				  const struct iopf_fault_queue_opts *fo)
{
	fk_install();
	t->ctx = iopf_ctx_new(o);
	ck_assert_ptr_nonnull(t->ctx);
	t->f = fk_fault_new();
	t->src = iopf_fault_queue_adopt(t->ctx, fk_fault_fd(t->f),
					fk_fault_id(t->f), fo);
	ck_assert_ptr_nonnull(t->src);
}

static inline void tctx_init(struct tctx *t)
{
	tctx_init_opts(t, NULL, NULL);
}

static inline void tctx_fini(struct tctx *t)
{
	iopf_ctx_free(t->ctx);
	fk_fault_free(t->f);
}

static inline struct iopf_stats tstats(struct iopf_ctx *ctx)
{
	IOPF_OPTS(iopf_stats, st);
	ck_assert_int_eq(iopf_ctx_get_stats(ctx, &st), 0);
	return st;
}

/* n single-record groups of dev (no PASID), PRG indexes 0 to n - 1, as
 * the selftest mock raises them. */
static inline void trigger_groups(struct fk_fault *f, uint32_t dev, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		fk_trigger(f, dev, 0, i, 1, 0);
}

/* Dispatch until a round does nothing (bounded). Returns groups handled. */
static inline int drive(struct iopf_ctx *ctx)
{
	int total = 0;

	for (int i = 0; i < 1000; i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(ctx), .events = POLLIN };
		int n;

		if (poll(&p, 1, 0) <= 0)
			break;
		n = iopf_ctx_dispatch(ctx);
		ck_assert_int_ge(n, 0);
		total += n;
	}
	return total;
}

/* No triggered group answered twice; with all, none left unanswered
 * either (a queue whose fd died may leave groups the kernel answers). */
static inline void assert_answered_at_most_once(struct fk_fault *f, bool all)
{
	size_t n;
	const struct fk_answer *a = fk_answers(f, &n);
	uint64_t total = fk_triggered(f);
	unsigned char *seen = calloc(total + 1, 1);

	for (size_t i = 0; i < n; i++) {
		if (!a[i].seq)
			continue; /* raw injected records */
		ck_assert_uint_le(a[i].seq, total);
		ck_assert_msg(!seen[a[i].seq], "group %llu answered twice",
			      (unsigned long long)a[i].seq);
		seen[a[i].seq] = 1;
	}
	for (uint64_t s = 1; all && s <= total; s++)
		ck_assert_msg(seen[s], "group %llu never answered",
			      (unsigned long long)s);
	free(seen);
}

/* Every triggered group answered exactly once, none twice. */
static inline void assert_each_answered_once(struct fk_fault *f)
{
	assert_answered_at_most_once(f, true);
}

/* The code the fake saw for the group with this trigger sequence. */
static inline int answer_of(struct fk_fault *f, uint64_t seq)
{
	size_t n;
	const struct fk_answer *a = fk_answers(f, &n);

	for (size_t i = 0; i < n; i++)
		if (a[i].seq == seq)
			return (int)a[i].code;
	return -1;
}

static inline int h_success(struct iopf_group *g, void *ud)
{
	(void)g;
	if (ud)
		(*(int *)ud)++;
	return IOPF_CODE_SUCCESS;
}

#endif
