/* SPDX-License-Identifier: MIT */
/* test_sched.c - who is handed out next (round-robin over devices and
 * PASIDs, weights, priority), bounded dispatch, per-device counters, and
 * handler lifetimes (destroy callbacks, quiesce). */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <time.h>

#include "testutil.h"

#define NP IOPF_NO_PASID /* fk_trigger(): PASID 0 is none */

static int h_ok(struct iopf_group *g, void *ud)
{
	(void)g;
	(void)ud;
	return IOPF_CODE_SUCCESS;
}

struct seen {
	uint32_t dev[64], pasid[64];
	int n;
};

static int h_record(struct iopf_group *g, void *ud)
{
	struct seen *s = ud;

	if (s->n < 64) {
		s->dev[s->n] = iopf_group_dev_id(g);
		s->pasid[s->n] = iopf_group_pasid(g);
	}
	s->n++;
	return IOPF_CODE_SUCCESS;
}

static void expect_order(const struct seen *s, const uint32_t (*want)[2],
			 int n)
{
	ck_assert_int_eq(s->n, n);
	for (int i = 0; i < n; i++)
		ck_assert_msg(s->dev[i] == want[i][0] && s->pasid[i] == want[i][1],
			      "group %d: dev %u pasid %u, want dev %u pasid %u", i,
			      s->dev[i], s->pasid[i], want[i][0], want[i][1]);
}

START_TEST(round_robin_over_devices_then_pasids)
{
	struct tctx t;
	struct seen s = { 0 };
	static const uint32_t want[][2] = {
		{ 1, NP }, { 2, NP }, { 1, 7 }, { 2, NP }, { 1, NP }, { 1, 7 },
		{ 1, NP }, { 1, NP }, { 1, NP }, { 1, NP }, { 1, NP }, { 1, NP },
		{ 1, NP }, { 1, NP },
	};

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_record, &s);
	trigger_groups(t.f, 1, 10); /* dev 1 floods */
	fk_trigger(t.f, 2, 0, 1, 1, 0);
	fk_trigger(t.f, 2, 0, 2, 1, 0);
	fk_trigger(t.f, 1, 7, 1, 1, 0);
	fk_trigger(t.f, 1, 7, 2, 1, 0);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 14);
	expect_order(&s, want, 14);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(weights_and_priority)
{
	struct tctx t;
	struct seen s = { 0 };
	static const uint32_t weighted[][2] = {
		{ 1, NP }, { 1, NP }, { 1, NP }, { 2, NP }, { 1, NP }, { 1, NP },
		{ 1, NP }, { 2, NP }, { 2, NP },
	};
	static const uint32_t prio[][2] = {
		{ 3, NP }, { 3, NP }, { 2, NP },
	};

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_record, &s);
	ck_assert_int_eq(iopf_ctx_set_device_sched(t.ctx, 1, 3, 0), 0);
	ck_assert_int_eq(iopf_ctx_set_device_sched(t.ctx, 1, 65537, 0), -EINVAL);
	ck_assert_int_eq(iopf_ctx_set_device_sched(t.ctx, 1, 1, 8), -EINVAL);
	trigger_groups(t.f, 1, 6);
	trigger_groups(t.f, 2, 3);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 9);
	expect_order(&s, weighted, 9);

	/* a latency-sensitive device goes first, even marked while ready */
	s.n = 0;
	ck_assert_int_eq(iopf_ctx_set_device_sched(t.ctx, 1, 1, 0), 0);
	fk_trigger(t.f, 1, 0, 12, 1, 0);
	fk_trigger(t.f, 2, 0, 12, 1, 0);
	fk_trigger(t.f, 3, 0, 12, 1, 0);
	fk_trigger(t.f, 3, 0, 13, 1, 0);
	ck_assert_int_eq(iopf_ctx_dispatch_bounded(t.ctx, 1, 0), 0 + 1);
	ck_assert_int_eq(s.n, 1); /* dev 1: all were ready, in turn */
	s.n = 0;
	ck_assert_int_eq(iopf_ctx_set_device_sched(t.ctx, 3, 1, IOPF_SCHED_PRIORITY), 0);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 3);
	expect_order(&s, prio, 3);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(bounded_by_groups_leaves_fd_readable_and_writes_per_slice)
{
	struct tctx t;
	int n = 0, calls = 0;
	size_t na;
	struct pollfd p;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 10);
	ck_assert_int_eq(iopf_ctx_dispatch_bounded(t.ctx, 3, 0), 3);
	fk_answers(t.f, &na);
	ck_assert_uint_eq(na, 3); /* this slice's answers are written */
	ck_assert_uint_eq(tstats(t.ctx).dispatch_slices, 1);
	p = (struct pollfd){ .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 0), 1); /* the rest is still to do */
	while (n < 10 && calls++ < 10)
		ck_assert_int_le(iopf_ctx_dispatch_bounded(t.ctx, 3, 0), 3);
	ck_assert_int_eq(n, 10);
	ck_assert_int_eq(calls, 3);
	assert_each_answered_once(t.f);
	tctx_fini(&t);

	/* the context's option bounds plain iopf_ctx_dispatch() */
	IOPF_OPTS(iopf_ctx_opts, o, .dispatch_max_groups = 4);
	n = 0;
	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 10);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 4);
	ck_assert_int_eq(drive(t.ctx), 6);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static uint64_t now_us(void);
static uint64_t started_at[32];

static int h_slow(struct iopf_group *g, void *ud)
{
	(void)g;
	started_at[*(int *)ud] = now_us();
	(*(int *)ud)++;
	nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	return IOPF_CODE_SUCCESS;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

START_TEST(bounded_by_time_starts_no_handler_past_budget)
{
	struct tctx t;
	int n = 0, rc;
	uint64_t t0;
	size_t na;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_slow, &n);
	trigger_groups(t.f, 1, 20);
	t0 = now_us();
	rc = iopf_ctx_dispatch_bounded(t.ctx, 0, 12000);
	/* handlers of 5 ms in a 12 ms budget: at least one, at most three,
	 * and none started past the budget. The clock is read before each
	 * start, so a handler may start a little before the budget ends and
	 * run past it; a loaded machine may fit fewer. */
	ck_assert_int_ge(rc, 1);
	ck_assert_int_le(rc, 3);
	ck_assert_int_eq(n, rc);
	for (int i = 0; i < rc; i++)
		ck_assert_uint_lt(started_at[i] - t0, 12000 + 5000 /* slack */);
	fk_answers(t.f, &na);
	ck_assert_uint_eq(na, (size_t)rc);
	drive(t.ctx);
	ck_assert_int_eq(n, 20);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A budget smaller than the round itself still hands out a group a call:
 * a loop of bounded calls always gets through. */
START_TEST(tiny_budget_still_progresses)
{
	struct tctx t;
	int n = 0, calls = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 5);
	while (n < 5 && calls++ < 5)
		ck_assert_int_ge(iopf_ctx_dispatch_bounded(t.ctx, 0, 1), 1);
	ck_assert_int_eq(n, 5);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* More flows than are cached idle: flows are let go and made again. */
START_TEST(many_pasids_flows_recycled)
{
	struct tctx t;
	int n = 0;
	IOPF_OPTS(iopf_device_stats, ds);

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	for (int round = 0; round < 3; round++) {
		for (uint32_t p = 0; p < 3000; p++)
			fk_trigger(t.f, 4, p, p % 512, 1, 0);
		drive(t.ctx);
	}
	ck_assert_int_eq(n, 9000);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 4, 0, IOPF_ALL_PASIDS, &ds), 0);
	ck_assert_uint_eq(ds.groups, 9000);
	ck_assert_uint_eq(ds.answers_success, 9000);
	ck_assert_uint_eq(ds.outstanding, 0);
	ck_assert_uint_eq(ds.ready, 0);
	/* without IOPF_CTX_PASID_STATS there are no PASID counters */
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 4, 0, 0, &ds), -EOPNOTSUPP);
	ck_assert_int_eq(iopf_ctx_list_pasids(t.ctx, 4, NULL, 0), -EOPNOTSUPP);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* internal.h's test seam (the iopf_test library) */
void iopf__sched_flow_counts(struct iopf_ctx *ctx, uint32_t *nflows,
			     uint64_t *hand_steps);

struct handles {
	iopf_handle_t h[4096];
	int n;
};

static int h_keep_handle(struct iopf_group *g, void *ud)
{
	struct handles *hs = ud;

	hs->h[hs->n++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

/* 3,000 PASIDs with groups outstanding at once: each new flow looks at a
 * few flows for one to reuse, not at all of them (that made intake
 * quadratic); once they are answered, 3,000 new PASIDs reuse their flows. */
START_TEST(flow_reuse_looks_at_few_flows)
{
	static struct handles hs;
	struct tctx t;
	uint32_t nflows;
	uint64_t steps;

	hs.n = 0;
	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_keep_handle, &hs);
	for (uint32_t p = 1; p <= 3000; p++)
		fk_trigger(t.f, 5, p, p % 512, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(hs.n, 3000);
	iopf__sched_flow_counts(t.ctx, &nflows, &steps);
	ck_assert_uint_eq(nflows, 3001); /* and the fallback */
	ck_assert_uint_le(steps, 16u * (3000 - 1024));
	for (int i = 0; i < hs.n; i++)
		ck_assert_int_eq(iopf_respond(t.ctx, hs.h[i], IOPF_CODE_SUCCESS), 0);
	hs.n = 0;
	for (uint32_t p = 3001; p <= 6000; p++)
		fk_trigger(t.f, 5, p, p % 512, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(hs.n, 3000);
	iopf__sched_flow_counts(t.ctx, &nflows, &steps);
	ck_assert_uint_le(nflows, 3001 + 16);
	for (int i = 0; i < hs.n; i++)
		ck_assert_int_eq(iopf_respond(t.ctx, hs.h[i], IOPF_CODE_SUCCESS), 0);
	drive(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static int h_defer_first(struct iopf_group *g, void *ud)
{
	(void)ud;
	return iopf_group_pasid(g) == 1 ? IOPF_DEFER : IOPF_CODE_INVALID;
}

START_TEST(device_and_pasid_stats)
{
	struct tctx t;
	uint32_t ids[4];
	IOPF_OPTS(iopf_ctx_opts, o, .flags = IOPF_CTX_PASID_STATS);
	IOPF_OPTS(iopf_device_stats, ds);

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer_first, NULL);
	fk_trigger(t.f, 5, 1, 1, 1, 0);
	fk_trigger(t.f, 5, 2, 1, 3, 0);
	fk_trigger(t.f, 6, IOPF_NO_PASID, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(iopf_ctx_list_devices(t.ctx, ids, 4), 2);
	ck_assert_int_eq(iopf_ctx_list_devices(t.ctx, NULL, 0), 2);
	ck_assert_int_eq(iopf_ctx_list_devices(t.ctx, NULL, 1), -EINVAL);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 5, 0, IOPF_ALL_PASIDS, &ds), 0);
	ck_assert_uint_eq(ds.dev_id, 5);
	ck_assert_uint_eq(ds.groups, 2);
	ck_assert_uint_eq(ds.records, 2);
	ck_assert_uint_eq(ds.answers_invalid, 1);
	ck_assert_uint_eq(ds.outstanding, 1);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 5, 1, 0, &ds), 0);
	ck_assert_uint_eq(ds.pasid, 1);
	ck_assert_uint_eq(ds.groups, 1);
	ck_assert_uint_eq(ds.outstanding, 1);
	ck_assert_uint_eq(ds.answers_invalid, 0);
	ck_assert_int_eq(iopf_ctx_answer_invalid(t.ctx, 5, 1, 0), 1);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 5, 1, 0, &ds), 0);
	ck_assert_uint_eq(ds.outstanding, 0);
	ck_assert_uint_eq(ds.answers_invalid, 1);
	ck_assert_uint_ge(iopf_device_stats_latency_ns(&ds, 0.5), 1);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 6, 0, IOPF_ALL_PASIDS, &ds), 0);
	ck_assert_uint_eq(ds.groups, 1);
	ck_assert_uint_eq(ds.auto_answers, 0);
	{
		uint32_t ps[4];
		int np = iopf_ctx_list_pasids(t.ctx, 5, ps, 4);

		ck_assert_int_eq(np, 2);
		ck_assert_uint_eq(ps[0] + ps[1], 3); /* PASIDs 1 and 2 */
		ck_assert_int_eq(iopf_ctx_list_pasids(t.ctx, 6, ps, 4), 1);
		ck_assert_uint_eq(ps[0], IOPF_NO_PASID);
		ck_assert_int_eq(iopf_ctx_list_pasids(t.ctx, 7, NULL, 0), 0);
		ck_assert_int_eq(iopf_ctx_list_pasids(t.ctx, 5, NULL, 1), -EINVAL);
	}
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 7, 0, IOPF_ALL_PASIDS, &ds), -ENOENT);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 5, 9, 0, &ds), -ENOENT);
	ds.sz = 0;
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 5, 1, 0, &ds), -EINVAL);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* Ends are counted a run at a time (groups of one flow, one read, one
 * answer: sched-inl.h): 12 devices of 2 PASIDs each interleaved (more
 * flows than the 8 runs kept, so runs are cut and taken up again), SUCCESS
 * and INVALID mixed, over reads taken at different times: every device's
 * and PASID's counts are exact, and the histograms hold every answer. */
static int h_by_prgi(struct iopf_group *g, void *ud)
{
	(void)ud;
	return iopf_group_prgi(g) % 5 == 0 ? IOPF_CODE_INVALID : IOPF_CODE_SUCCESS;
}

START_TEST(counts_exact_over_interleaved_runs)
{
	struct tctx t;
	IOPF_OPTS(iopf_ctx_opts, o, .flags = IOPF_CTX_PASID_STATS);
	uint64_t want_ok[13][3] = { { 0 } }, want_bad[13][3] = { { 0 } };
	uint64_t want_recs[13] = { 0 };
	uint32_t n = 0;

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_by_prgi, NULL);
	for (int round = 0; round < 7; round++) {
		for (int i = 0; i < 150 + 37 * round; i++, n++) {
			uint32_t dev = 1 + (n * 7 + (uint32_t)round) % 12, pasid = 1 + (n / 3) % 2;

			/* runs of one flow now and then */
			if (i % 40 >= 30)
				dev = 3, pasid = 1;
			if (i % 7 == 3) { /* groups of 2 to 4 records among them */
				struct iopf_k_pgfault r[4];
				unsigned int k = 2 + i % 3;

				for (unsigned int j = 0; j < k; j++)
					r[j] = (struct iopf_k_pgfault){
						.flags = IOPF_K_PGFAULT_FLAGS_PASID_VALID |
							 (j == k - 1 ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0),
						.dev_id = dev, .pasid = pasid, .grpid = n % 512,
						.perm = 1, .addr = (uint64_t)j << 12 };
				fk_trigger_group(t.f, r, k);
				want_recs[dev] += k;
			} else {
				fk_trigger(t.f, dev, pasid, n % 512, 1, 0);
				want_recs[dev]++;
			}
			if ((n % 512) % 5 == 0)
				want_bad[dev][pasid]++;
			else
				want_ok[dev][pasid]++;
		}
		drive(t.ctx);
	}
	for (uint32_t dev = 1; dev <= 12; dev++) {
		IOPF_OPTS(iopf_device_stats, ds);
		uint64_t hist = 0;

		ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, dev, 0, IOPF_ALL_PASIDS, &ds), 0);
		ck_assert_uint_eq(ds.answers_success, want_ok[dev][1] + want_ok[dev][2]);
		ck_assert_uint_eq(ds.answers_invalid, want_bad[dev][1] + want_bad[dev][2]);
		ck_assert_uint_eq(ds.groups, ds.answers_success + ds.answers_invalid);
		ck_assert_uint_eq(ds.records, want_recs[dev]);
		ck_assert_uint_eq(ds.outstanding, 0);
		for (int b = 0; b < IOPF_LAT_BUCKETS; b++)
			hist += ds.latency_hist[b];
		ck_assert_uint_eq(hist, ds.groups);
		for (uint32_t p = 1; p <= 2; p++) {
			ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, dev, p, 0, &ds), 0);
			ck_assert_uint_eq(ds.answers_success, want_ok[dev][p]);
			ck_assert_uint_eq(ds.answers_invalid, want_bad[dev][p]);
		}
	}
	ck_assert_uint_eq(tstats(t.ctx).answers_success + tstats(t.ctx).answers_invalid, n);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* ---- handler lifetimes ---- */

static int destroyed[4];
static void on_destroy(void *ud)
{
	destroyed[(intptr_t)ud]++;
}

START_TEST(destroy_called_once_when_replaced_removed_or_freed)
{
	struct tctx t;

	memset(destroyed, 0, sizeof(destroyed));
	tctx_init(&t);
	ck_assert_int_eq(iopf_ctx_set_handler_full(t.ctx, h_ok, (void *)0, on_destroy), 0);
	ck_assert_int_eq(iopf_ctx_set_handler_full(t.ctx, h_ok, (void *)1, on_destroy), 0);
	ck_assert_int_eq(destroyed[0], 1); /* idle: at once, in the setter */
	ck_assert_int_eq(iopf_ctx_set_device_handler_full(t.ctx, 3, h_ok, (void *)2, on_destroy), 0);
	ck_assert_int_eq(iopf_ctx_set_device_handler(t.ctx, 3, NULL, NULL), 0);
	ck_assert_int_eq(destroyed[2], 1);
	ck_assert_int_eq(iopf_ctx_set_cancel_handler_full(t.ctx, NULL, (void *)3, on_destroy), 0);
	ck_assert_int_eq(destroyed[3], 0); /* NULL sets nothing to destroy */
	ck_assert_int_eq(iopf_ctx_set_batch_handler_full(NULL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(iopf_ctx_quiesce(t.ctx), 0);
	ck_assert_int_eq(iopf_ctx_quiesce(NULL), -EINVAL);
	/* the same userdata and destroy again: handed over, not destroyed */
	ck_assert_int_eq(iopf_ctx_set_handler_full(t.ctx, h_ok, (void *)1, on_destroy), 0);
	ck_assert_int_eq(destroyed[1], 0);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(destroyed[1], 0);
	tctx_fini(&t);
	ck_assert_int_eq(destroyed[1], 1); /* the context took it along */
	ck_assert_int_eq(destroyed[0] + destroyed[2], 2);
}
END_TEST

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_in, gate_open;

static int h_gated(struct iopf_group *g, void *ud)
{
	(void)g;
	(void)ud;
	pthread_mutex_lock(&gate_mu);
	gate_in++;
	pthread_cond_broadcast(&gate_cv);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	/* the old userdata is alive while its handler runs */
	ck_assert_int_eq(destroyed[0], 0);
	return IOPF_CODE_SUCCESS;
}

struct quiesce_arg {
	struct iopf_ctx *ctx;
	int rc, done;
};

static void *quiescer(void *arg)
{
	struct quiesce_arg *q = arg;

	q->rc = iopf_ctx_quiesce(q->ctx);
	__atomic_store_n(&q->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(destroy_waits_for_a_worker_running_the_old_handler)
{
	struct tctx t;
	pthread_t th;
	struct quiesce_arg q = { 0 };
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 2);

	memset(destroyed, 0, sizeof(destroyed));
	gate_in = gate_open = 0;
	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler_full(t.ctx, h_gated, (void *)0, on_destroy);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	iopf_ctx_dispatch(t.ctx);
	pthread_mutex_lock(&gate_mu);
	while (gate_in < 2)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	/* replaced while two workers run it: not destroyed yet */
	ck_assert_int_eq(iopf_ctx_set_handler_full(t.ctx, h_ok, (void *)1, on_destroy), 0);
	ck_assert_int_eq(destroyed[0], 0);
	q.ctx = t.ctx;
	pthread_create(&th, NULL, quiescer, &q);
	nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	ck_assert_int_eq(__atomic_load_n(&q.done, __ATOMIC_ACQUIRE), 0);
	pthread_mutex_lock(&gate_mu);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	pthread_join(th, NULL);
	ck_assert_int_eq(q.rc, 0);
	ck_assert_int_eq(destroyed[0], 1); /* once, after both calls */
	/* new groups go to the new handler */
	fk_trigger(t.f, 1, 0, 3, 1, 0);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 1, 0, IOPF_ALL_PASIDS, 5000), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_SUCCESS);
	tctx_fini(&t);
	ck_assert_int_eq(destroyed[0], 1);
	ck_assert_int_eq(destroyed[1], 1);
}
END_TEST

static struct iopf_ctx *inside_ctx;

static int h_quiesce_inside(struct iopf_group *g, void *ud)
{
	(void)g;
	*(int *)ud = iopf_ctx_quiesce(inside_ctx);
	return IOPF_CODE_SUCCESS;
}

START_TEST(quiesce_from_a_handler_is_refused)
{
	struct tctx t;
	int rc = 1;

	tctx_init(&t);
	inside_ctx = t.ctx;
	iopf_ctx_set_handler(t.ctx, h_quiesce_inside, &rc);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(rc, -EDEADLK);
	tctx_fini(&t);
}
END_TEST

/* ---- group pointers after the fact (IOPF_CTX_POISON) ---- */

static struct iopf_group *kept;

static int h_keep(struct iopf_group *g, void *ud)
{
	(void)ud;
	kept = g;
	return IOPF_CODE_SUCCESS;
}

static void poison_setup(struct tctx *t, bool by_env)
{
	IOPF_OPTS(iopf_ctx_opts, o, .flags = by_env ? 0 : IOPF_CTX_POISON);

	if (by_env)
		setenv("IOPF_DEBUG", "poison", 1);
	tctx_init_opts(t, &o, NULL);
	unsetenv("IOPF_DEBUG");
	iopf_ctx_set_handler(t->ctx, h_keep, NULL);
	fk_trigger(t->f, 9, 3, 1, 1, 0x5000);
	drive(t->ctx);
	iopf_ctx_flush(t->ctx);
	ck_assert_int_eq(answer_of(t->f, 1), IOPF_CODE_SUCCESS);
}

START_TEST(poisoned_group_pointer_aborts)
{
	struct tctx t;

	poison_setup(&t, _i == 1);
	/* the slot is not reused at once: a later group gets another */
	fk_trigger(t.f, 9, 3, 2, 1, 0x6000);
	drive(t.ctx);
	(void)iopf_group_dev_id(kept); /* the handler returned long ago */
	ck_abort_msg("a stale group pointer was read without abort");
}
END_TEST

START_TEST(poisoned_records_read_as_poison)
{
	struct tctx t;
	const struct iopf_record *r;

	poison_setup(&t, false);
	/* what a program that copied the pointer sees, without an accessor */
	r = (const struct iopf_record *)((const char *)kept +
					 offsetof(struct iopf_group, one));
	ck_assert_uint_eq(r->addr, 0x6b6b6b6b6b6b6b6bull);
	tctx_fini(&t);
}
END_TEST

/* ---- the order against a reference model ----
 * A second, plain implementation of the turns (arrays, one group at a
 * time, as the design states them), driven with the same random steps as
 * a context: groups of 4 devices and 3 PASIDs, weights, priority set and
 * cleared while ready, dispatch slices of any size. Every group handed out
 * must be the one the model hands out: runs taken at once (sched.c's
 * pop_run) must equal the one-at-a-time turns. */
#define RM_DEV 4
#define RM_PAS 3
#define RM_MAX 4096

struct rmodel {
	int fq[RM_DEV][RM_PAS][RM_MAX], fh[RM_DEV][RM_PAS], ft[RM_DEV][RM_PAS];
	int dflows[RM_DEV][RM_PAS + 1], ndf[RM_DEV]; /* ready flows in turn */
	int act[2][RM_DEV + 1], nact[2];             /* [0]: priority */
	unsigned int weight[RM_DEV], credit[RM_DEV];
	bool prio[RM_DEV], active[RM_DEV];
};

static void rm_push(int *v, int *n, int x) { v[(*n)++] = x; }
static int rm_shift(int *v, int *n)
{
	int x = v[0];

	memmove(v, v + 1, (size_t)--*n * sizeof(*v));
	return x;
}

static void rm_intake(struct rmodel *m, int d, int p, int id)
{
	bool was = m->fh[d][p] != m->ft[d][p];

	m->fq[d][p][m->ft[d][p]++] = id;
	if (was)
		return;
	rm_push(m->dflows[d], &m->ndf[d], p);
	if (!m->active[d]) {
		m->active[d] = true;
		m->credit[d] = m->weight[d];
		rm_push(m->act[!m->prio[d]], &m->nact[!m->prio[d]], d);
	}
}

static int rm_pop(struct rmodel *m)
{
	int q = m->nact[0] ? 0 : 1, d, p, id;

	if (!m->nact[q])
		return -1;
	d = m->act[q][0];
	p = m->dflows[d][0];
	id = m->fq[d][p][m->fh[d][p]++];
	bool left = m->fh[d][p] != m->ft[d][p];

	if (m->ndf[d] > 1 || !left) {
		rm_shift(m->dflows[d], &m->ndf[d]);
		if (left)
			rm_push(m->dflows[d], &m->ndf[d], p);
	}
	if (!m->ndf[d] || --m->credit[d] == 0) {
		m->credit[d] = m->weight[d];
		if (m->nact[q] > 1 || !m->ndf[d]) {
			rm_shift(m->act[q], &m->nact[q]);
			if (m->ndf[d])
				rm_push(m->act[q], &m->nact[q], d);
			else
				m->active[d] = false;
		}
	}
	return id;
}

static void rm_set(struct rmodel *m, int d, unsigned int w, bool prio)
{
	m->weight[d] = w;
	if (m->credit[d] > w)
		m->credit[d] = w;
	if (prio != m->prio[d] && m->active[d]) {
		int q = !m->prio[d], i = 0;

		while (m->act[q][i] != d)
			i++;
		memmove(&m->act[q][i], &m->act[q][i + 1],
			(size_t)(--m->nact[q] - i) * sizeof(int));
		rm_push(m->act[!prio], &m->nact[!prio], d);
	}
	m->prio[d] = prio;
}

struct rm_seen {
	int id[RM_MAX];
	int n;
};

static int h_rm(struct iopf_group *g, void *ud)
{
	struct rm_seen *s = ud;

	s->id[s->n++] = (int)(iopf_group_records(g, NULL)[0].addr >> 12);
	return IOPF_CODE_SUCCESS;
}

START_TEST(order_matches_reference_model)
{
	for (unsigned int seed = 1; seed <= 40; seed++) {
		static struct rmodel m;
		static struct rm_seen s;
		static int pend[RM_MAX][3];
		struct tctx t;
		int next = 0, queued = 0, want = 0, npend = 0;

		memset(&m, 0, sizeof(m));
		s.n = 0;
		srand(seed);
		for (int d = 0; d < RM_DEV; d++)
			m.weight[d] = m.credit[d] = 1;
		tctx_init(&t);
		iopf_ctx_set_handler(t.ctx, h_rm, &s);
		while (next < RM_MAX - 200 || queued) {
			int op = rand() % 8;

			/* at most one read's worth (256 records) waits for a
			 * call: each call then takes in all of it */
			if (op < 4 && next < RM_MAX - 200 && npend < 200) {
				/* a burst of groups, mostly of one flow */
				int n = 1 + rand() % 40, d = rand() % RM_DEV,
				    p = rand() % RM_PAS;

				for (int i = 0; i < n; i++, next++) {
					if (rand() % 4 == 0) {
						d = rand() % RM_DEV;
						p = rand() % RM_PAS;
					}
					fk_trigger(t.f, (uint32_t)d + 1,
						   p ? (uint32_t)p : NP,
						   (uint32_t)next % 512, 1,
						   (uint64_t)next << 12);
					/* taken in when the next call reads */
					pend[npend][0] = d;
					pend[npend][1] = p;
					pend[npend++][2] = next;
					queued++;
				}
			} else if (op == 4) {
				int d = rand() % RM_DEV;
				unsigned int w = 1 + (unsigned int)rand() % 5;
				bool prio = rand() % 3 == 0;

				ck_assert_int_eq(iopf_ctx_set_device_sched(t.ctx, (uint32_t)d + 1, w,
									   prio ? IOPF_SCHED_PRIORITY : 0), 0);
				rm_set(&m, d, w, prio);
			} else {
				unsigned int most = 1 + (unsigned int)rand() % 70;
				int before = s.n, got;

				for (int i = 0; i < npend; i++)
					rm_intake(&m, pend[i][0], pend[i][1], pend[i][2]);
				npend = 0;
				got = iopf_ctx_dispatch_bounded(t.ctx, rand() % 4 ? most : 0, 0);
				ck_assert_int_ge(got, 0);
				ck_assert_int_eq(s.n - before, got);
				for (int i = before; i < s.n; i++) {
					int id = rm_pop(&m);

					ck_assert_msg(s.id[i] == id,
						      "seed %u, group %d handed out: id %d, the model's %d",
						      seed, i, s.id[i], id);
				}
				queued -= got;
				want += got;
			}
		}
		ck_assert_int_eq(rm_pop(&m), -1);
		ck_assert_int_eq(s.n, want);
		assert_each_answered_once(t.f);
		tctx_fini(&t);
	}
}
END_TEST

Suite *suite_sched(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("sched");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, round_robin_over_devices_then_pasids);
	tcase_add_test(tc, weights_and_priority);
	tcase_add_test(tc, order_matches_reference_model);
	tcase_add_test(tc, bounded_by_groups_leaves_fd_readable_and_writes_per_slice);
	tcase_add_test(tc, bounded_by_time_starts_no_handler_past_budget);
	tcase_add_test(tc, tiny_budget_still_progresses);
	tcase_add_test(tc, many_pasids_flows_recycled);
	tcase_add_test(tc, flow_reuse_looks_at_few_flows);
	tcase_add_test(tc, device_and_pasid_stats);
	tcase_add_test(tc, counts_exact_over_interleaved_runs);
	tcase_add_test(tc, destroy_called_once_when_replaced_removed_or_freed);
	tcase_add_test(tc, destroy_waits_for_a_worker_running_the_old_handler);
	tcase_add_test(tc, quiesce_from_a_handler_is_refused);
	tcase_add_loop_test_raise_signal(tc, poisoned_group_pointer_aborts,
					 SIGABRT, 0, 2);
	tcase_add_test(tc, poisoned_records_read_as_poison);
	suite_add_tcase(s, tc);
	return s;
}
