/* SPDX-License-Identifier: MIT */
/* test_dispatch.c - handlers, event loop integration, threads, drain and
 * the policies (max outstanding). */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "testutil.h"

static int tag_default(struct iopf_group *g, void *ud) { (void)g; *(int *)ud = 1; return 0; }
static int tag_device(struct iopf_group *g, void *ud) { (void)g; *(int *)ud = 2; return 0; }
static int tag_pasid(struct iopf_group *g, void *ud) { (void)g; *(int *)ud = 3; return 0; }
static int h_garbage(struct iopf_group *g, void *ud) { (void)g; (void)ud; return 77; }

START_TEST(handler_precedence)
{
	struct tctx t;
	int who = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, tag_default, &who);
	iopf_ctx_set_device_handler(t.ctx, 2, tag_device, &who);
	iopf_ctx_set_pasid_handler(t.ctx, 2, 9, tag_pasid, &who);
	fk_trigger(t.f, 1, 9, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(who, 1);
	fk_trigger(t.f, 2, 8, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(who, 2);
	fk_trigger(t.f, 2, 9, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(who, 3);
	iopf_ctx_set_pasid_handler(t.ctx, 2, 9, NULL, NULL); /* removed */
	fk_trigger(t.f, 2, 9, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(who, 2);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static int nlogs;
static void count_log(int level, const char *msg, void *ud)
{
	(void)level; (void)msg; (void)ud;
	nlogs++;
}

START_TEST(no_handler_or_bad_return_answers_invalid_and_logs)
{
	IOPF_OPTS(iopf_ctx_opts, o, .log_fn = count_log);
	struct tctx t;

	nlogs = 0;
	tctx_init_opts(&t, &o, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	ck_assert_uint_eq(tstats(t.ctx).no_handler, 1);
	iopf_ctx_set_handler(t.ctx, h_garbage, NULL);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_INVALID);
	ck_assert_uint_eq(tstats(t.ctx).auto_answers, 2);
	ck_assert_int_eq(nlogs, 2);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static iopf_handle_t last_handle;
static int h_defer1(struct iopf_group *g, void *ud)
{
	(void)ud;
	last_handle = iopf_group_handle(g);
	return IOPF_DEFER;
}

struct answer_arg { struct iopf_ctx *ctx; iopf_handle_t h; };
static void *answer_later(void *p)
{
	struct answer_arg *a = p;

	usleep(20000);
	iopf_respond(a->ctx, a->h, IOPF_CODE_SUCCESS);
	return NULL;
}

START_TEST(answer_from_other_thread_wakes_the_loop)
{
	struct tctx t;
	pthread_t th;
	struct answer_arg a;
	struct pollfd p;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_defer1, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	a = (struct answer_arg){ t.ctx, last_handle };
	pthread_create(&th, NULL, answer_later, &a);
	p = (struct pollfd){ .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	pthread_join(th, NULL);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 0);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	tctx_fini(&t);
}
END_TEST

static void *run_loop(void *p)
{
	return (void *)(intptr_t)iopf_ctx_run(p);
}

START_TEST(run_until_stop)
{
	struct tctx t;
	pthread_t th;
	void *rc;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	pthread_create(&th, NULL, run_loop, t.ctx);
	trigger_groups(t.f, 1, 50);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 1, 0, IOPF_ALL_PASIDS, 5000), 0);
	iopf_ctx_stop(t.ctx);
	pthread_join(th, &rc);
	ck_assert_int_eq((int)(intptr_t)rc, 0);
	ck_assert_int_eq(n, 50);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

struct wstate {
	atomic_int n;
	struct iopf_ctx *ctx;
};

static int h_count_some_by_handle(struct iopf_group *g, void *ud)
{
	struct wstate *w = ud;

	atomic_fetch_add(&w->n, 1);
	/* every third group is answered by handle from the worker itself */
	if (iopf_group_prgi(g) % 3 == 0) {
		iopf_respond(w->ctx, iopf_group_handle(g), IOPF_CODE_SUCCESS);
		return IOPF_DEFER;
	}
	return IOPF_CODE_SUCCESS;
}

START_TEST(workers_handle_ten_thousand_once_each)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 4);
	struct tctx t;
	struct wstate w;

	tctx_init_opts(&t, &o, NULL);
	atomic_init(&w.n, 0);
	w.ctx = t.ctx;
	iopf_ctx_set_handler(t.ctx, h_count_some_by_handle, &w);
	for (int i = 0; i < 10000; i++)
		fk_trigger(t.f, 1 + (uint32_t)(i % 4), 0, (uint32_t)i, 1, 0);
	for (int i = 0; i < 5000 && fk_outstanding(t.f) + fk_queued(t.f); i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 10);
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_int_eq(atomic_load(&w.n), 10000);
	assert_each_answered_once(t.f);
	ck_assert_uint_eq(tstats(t.ctx).refused_answers, 0);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 10000);
	tctx_fini(&t);
}
END_TEST

/* Workers take their share of what waits, not all of it: 8 slow
 * handlers on a pool of 4 run on more than one thread. */
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t slow_threads[8];
static int slow_n;

static int h_slow(struct iopf_group *g, void *ud)
{
	struct timespec ts = { 0, 30 * 1000 * 1000 };

	(void)g;
	(void)ud;
	pthread_mutex_lock(&slow_lock);
	slow_threads[slow_n++] = pthread_self();
	pthread_mutex_unlock(&slow_lock);
	nanosleep(&ts, NULL);
	return IOPF_CODE_SUCCESS;
}

START_TEST(workers_share_slow_handlers)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 4);
	struct tctx t;
	int distinct = 0;

	slow_n = 0;
	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_slow, NULL);
	trigger_groups(t.f, 1, 8);
	for (int i = 0; i < 500 && fk_outstanding(t.f) + fk_queued(t.f); i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 10);
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_int_eq(slow_n, 8);
	for (int i = 0; i < 8; i++) {
		bool seen = false;

		for (int j = 0; j < i; j++)
			seen |= pthread_equal(slow_threads[i], slow_threads[j]) != 0;
		distinct += !seen;
	}
	ck_assert_int_ge(distinct, 2);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* With workers a batch handler gets one group a call (documented since
 * 1.2), though a worker takes many groups a lock hold. */
static atomic_size_t wb_max;
static atomic_int wb_groups;

static void wb(struct iopf_group *const *gs, int *codes, size_t n, void *ud)
{
	size_t m = atomic_load(&wb_max);

	(void)gs;
	(void)ud;
	while (n > m && !atomic_compare_exchange_weak(&wb_max, &m, n))
		;
	for (size_t i = 0; i < n; i++)
		codes[i] = IOPF_CODE_SUCCESS;
	atomic_fetch_add(&wb_groups, (int)n);
}

START_TEST(workers_batch_handler_one_group_a_call)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 2);
	struct tctx t;

	atomic_store(&wb_max, 0);
	atomic_store(&wb_groups, 0);
	tctx_init_opts(&t, &o, NULL);
	ck_assert_int_eq(iopf_ctx_set_batch_handler(t.ctx, wb, NULL), 0);
	for (uint32_t i = 0; i < 300; i++)
		fk_trigger(t.f, 1, 0, i % 512, 1, 0);
	for (int i = 0; i < 500 && fk_outstanding(t.f) + fk_queued(t.f); i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 10);
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_int_eq(atomic_load(&wb_groups), 300);
	ck_assert_uint_eq(atomic_load(&wb_max), 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(drain_waits_and_times_out)
{
	struct tctx t;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_defer1, NULL);
	fk_trigger(t.f, 4, 7, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 4, 7, 0, 50), -ETIMEDOUT);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 4, 8, 0, 50), 0); /* other PASID */
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 5, 0, IOPF_ALL_PASIDS, 50), 0);
	iopf_respond(t.ctx, last_handle, IOPF_CODE_SUCCESS);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 4, 0, IOPF_ALL_PASIDS, 50), 0);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS); /* written */
	tctx_fini(&t);
}
END_TEST

static struct iopf_ctx *reentry_ctx;
static int reentry_rc[3];
static int h_reenter(struct iopf_group *g, void *ud)
{
	(void)g; (void)ud;
	reentry_rc[0] = iopf_ctx_dispatch(reentry_ctx);
	reentry_rc[1] = iopf_ctx_run(reentry_ctx);
	reentry_rc[2] = iopf_ctx_drain(reentry_ctx, 1, 0, IOPF_ALL_PASIDS, 0);
	return IOPF_CODE_SUCCESS;
}

START_TEST(no_reentry_from_handlers)
{
	struct tctx t;

	tctx_init(&t);
	reentry_ctx = t.ctx;
	iopf_ctx_set_handler(t.ctx, h_reenter, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(reentry_rc[i], -EDEADLK);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	tctx_fini(&t);
}
END_TEST

START_TEST(max_outstanding_pauses_reading)
{
	IOPF_OPTS(iopf_ctx_opts, o, .max_outstanding = 4);
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = 4);
	struct tctx t;
	struct pollfd p;

	tctx_init_opts(&t, &o, &fo);
	iopf_ctx_set_handler(t.ctx, h_defer1, NULL);
	trigger_groups(t.f, 1, 10);
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 4);
	ck_assert_uint_eq(fk_queued(t.f), 6); /* the kernel holds the rest */
	p = (struct pollfd){ .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* quiet while paused */
	iopf_respond(t.ctx, last_handle, IOPF_CODE_SUCCESS);
	drive(t.ctx);
	/* one answer made room for one group: the read is sized to it */
	ck_assert_uint_eq(fk_queued(t.f), 5);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 4);
	tctx_fini(&t);
}
END_TEST

START_TEST(dispatch_busy_and_null)
{
	ck_assert_int_eq(iopf_ctx_dispatch(NULL), -EINVAL);
	ck_assert_int_eq(iopf_ctx_stop(NULL), -EINVAL);
	ck_assert_int_eq(iopf_ctx_flush(NULL), -EINVAL);
	ck_assert_int_eq(iopf_ctx_drain(NULL, 0, 0, 0, 0), -EINVAL);
}
END_TEST

START_TEST(latency_histogram_counts_answers)
{
	struct tctx t;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 10);
	drive(t.ctx);
	struct iopf_stats st = tstats(t.ctx);
	uint64_t total = 0;
	for (int i = 0; i < IOPF_LAT_BUCKETS; i++)
		total += st.latency_hist[i];
	ck_assert_uint_eq(total, 10);
	ck_assert_uint_gt(iopf_stats_latency_ns(&st, 0.99), 0);
	ck_assert_uint_le(iopf_stats_latency_ns(&st, 0.5), iopf_stats_latency_ns(&st, 0.99));
	tctx_fini(&t);
}
END_TEST

/* The batch handler: a round's groups in one call, codes applied per
 * group; deferred ones answered in one call by iopf_respond_many(). */
static iopf_handle_t bh_deferred[256];
static int bh_ndeferred, bh_calls, bh_groups;
static size_t bh_max;

static void bh(struct iopf_group *const *gs, int *codes, size_t n, void *ud)
{
	bh_calls++;
	if (n > bh_max)
		bh_max = n;
	for (size_t i = 0; i < n; i++) {
		size_t nr;
		uint64_t a = iopf_group_records(gs[i], &nr)[0].addr >> 12;

		bh_groups++;
		ck_assert_int_eq(codes[i], IOPF_CODE_INVALID); /* the default */
		if (a % 3 == 0)
			codes[i] = IOPF_CODE_SUCCESS;
		else if (a % 3 == 1)
			bh_deferred[bh_ndeferred++] = iopf_group_handle(gs[i]);
		if (a % 3 == 1)
			codes[i] = IOPF_DEFER;
	}
	ck_assert_ptr_eq(ud, &bh_calls);
}

/* iopf_respond_many() ends the groups it is given in runs (64 at a time,
 * sources told once a run): the same handle twice, near or far, is
 * answered once and refused the second time; groups of a fault queue and
 * of a producer mixed in one call each get their one answer. */
static iopf_handle_t rm_h[512];
static int rm_n;
static int rm_responses;

static int h_rm_keep(struct iopf_group *g, void *ud)
{
	(void)ud;
	rm_h[rm_n++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

static void rm_resp(const struct iopf_response *r, void *ud)
{
	(void)ud;
	ck_assert_int_eq(r->code, IOPF_CODE_SUCCESS);
	rm_responses++;
}

START_TEST(respond_many_duplicates_runs_and_sources)
{
	struct tctx t;
	IOPF_OPTS(iopf_producer_opts, po, .respond = rm_resp);
	struct iopf_source *p;
	static iopf_handle_t hs[1024];
	static int codes[1024], res[1024];
	int n = 0, want_ok = 0;

	rm_n = rm_responses = 0;
	tctx_init(&t);
	p = iopf_producer_new(t.ctx, &po);
	ck_assert_ptr_nonnull(p);
	iopf_ctx_set_handler(t.ctx, h_rm_keep, NULL);
	for (uint32_t i = 0; i < 150; i++) {
		struct iopf_request r = { .flags = IOPF_F_LAST_PAGE, .dev_id = 9, .prgi = i };

		fk_trigger(t.f, 1, 0, i, 1, 0x1000ull * i);
		ck_assert_int_eq(iopf_producer_submit(p, &r), 1);
		if (i % 10 == 9)
			drive(t.ctx); /* fault-queue and producer groups interleave */
	}
	drive(t.ctx);
	ck_assert_int_eq(rm_n, 300);
	/* each handle once, some twice in a row, some again 100 later */
	for (int i = 0; i < rm_n; i++) {
		hs[n] = rm_h[i];
		res[n] = 0;
		codes[n++] = IOPF_CODE_SUCCESS;
		want_ok++;
		if (i % 7 == 0) {
			hs[n] = rm_h[i];
			codes[n++] = IOPF_CODE_SUCCESS;
		}
		if (i % 11 == 0 && i >= 100) {
			hs[n] = rm_h[i - 100];
			codes[n++] = IOPF_CODE_SUCCESS;
		}
	}
	ck_assert_int_eq(iopf_respond_many(t.ctx, hs, codes, (size_t)n, res), want_ok);
	for (int i = 0, seen_ok = 0; i < n; i++) {
		bool first = true;

		for (int j = 0; j < i; j++)
			if (hs[j] == hs[i])
				first = false;
		ck_assert_int_eq(res[i], first ? 0 : -EALREADY);
		seen_ok += first;
		(void)seen_ok;
	}
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(rm_responses, 150);
	for (uint64_t q = 1; q <= 150; q++)
		ck_assert_int_eq(answer_of(t.f, q), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 0);
	tctx_fini(&t);
}
END_TEST

/* The one batch handler of a context: its first call ends device 2's
 * groups (another path, as a VMM's reset would); the later calls of that
 * dispatch get none of them, each call gets at most 64, and every group
 * is answered once (device 2's INVALID, the rest SUCCESS). */
static struct iopf_ctx *bh1_ctx;
static int bh1_calls, bh1_dev2_after, bh1_max;

static void bh1(struct iopf_group *const *gs, int *codes, size_t n, void *ud)
{
	(void)ud;
	if (n > (size_t)bh1_max)
		bh1_max = (int)n;
	for (size_t i = 0; i < n; i++) {
		if (bh1_calls > 0 && iopf_group_dev_id(gs[i]) == 2)
			bh1_dev2_after++;
		codes[i] = IOPF_CODE_SUCCESS;
	}
	if (bh1_calls++ == 0)
		ck_assert_int_gt(iopf_ctx_answer_invalid(bh1_ctx, 2, 0, IOPF_ALL_PASIDS), 0);
}

START_TEST(batch_handler_skips_groups_ended_meanwhile)
{
	struct tctx t;
	uint64_t dev2 = 0;

	tctx_init(&t);
	bh1_ctx = t.ctx;
	bh1_calls = bh1_dev2_after = bh1_max = 0;
	ck_assert_int_eq(iopf_ctx_set_batch_handler(t.ctx, bh1, NULL), 0);
	for (uint32_t i = 0; i < 200; i++)
		fk_trigger(t.f, 1 + i % 2, 0, i, 1, 0);
	drive(t.ctx);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_ge(bh1_calls, 4);
	ck_assert_int_le(bh1_max, 64);
	ck_assert_int_eq(bh1_dev2_after, 0);
	/* device 2's groups of the first call (every other one of 64, in
	 * turn by device) were ended under its feet: their answers from the
	 * handler refused */
	for (uint64_t q = 1; q <= 200; q++) {
		int a = answer_of(t.f, q);

		ck_assert_int_eq(a, q % 2 ? IOPF_CODE_SUCCESS : IOPF_CODE_INVALID);
		dev2 += q % 2 == 0;
	}
	ck_assert_uint_eq(dev2, 100);
	ck_assert_uint_eq(tstats(t.ctx).refused_answers, 32);
	assert_each_answered_once(t.f);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 0);
	tctx_fini(&t);
}
END_TEST

/* A handler ends groups of its own batch (a reset, as a VMM would): one
 * whose handler already returned its answer, one being handled, two not
 * handled yet. Each group gets one answer; the answers of handlers whose
 * groups ended are refused. Then the same with the reset's handler's own
 * group untouched (device 2 resets device 1): every handler's group
 * returned, one of them ended since. */
static struct iopf_ctx *reset_ctx;
static int reset_calls;

static int h_reset_second(struct iopf_group *g, void *ud)
{
	(void)ud;
	reset_calls++;
	if (iopf_group_dev_id(g) == 2 ||
	    (iopf_group_dev_id(g) == 1 && iopf_group_prgi(g) == 1))
		ck_assert_int_gt(iopf_ctx_answer_invalid(reset_ctx, 1, 0,
							 IOPF_ALL_PASIDS), 0);
	return IOPF_CODE_SUCCESS;
}

START_TEST(handler_ends_groups_of_its_batch_returned_ones_too)
{
	struct tctx t;

	tctx_init(&t);
	reset_ctx = t.ctx;
	reset_calls = 0;
	iopf_ctx_set_handler(t.ctx, h_reset_second, NULL);
	trigger_groups(t.f, 1, 4);
	drive(t.ctx);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(reset_calls, 2); /* the last two ended before their turn */
	for (uint64_t q = 1; q <= 4; q++)
		ck_assert_int_eq(answer_of(t.f, q), IOPF_CODE_INVALID);
	ck_assert_uint_eq(tstats(t.ctx).refused_answers, 2);
	ck_assert_uint_eq(tstats(t.ctx).answers_invalid, 4);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 0);
	assert_each_answered_once(t.f);

	/* device 1's group handled first, then device 2's resets device 1 */
	reset_calls = 0;
	fk_trigger(t.f, 1, 0, 10, 1, 0);
	fk_trigger(t.f, 2, 0, 11, 1, 0);
	drive(t.ctx);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(reset_calls, 2);
	ck_assert_int_eq(answer_of(t.f, 5), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 6), IOPF_CODE_SUCCESS);
	ck_assert_uint_eq(tstats(t.ctx).refused_answers, 3);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 0);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(batch_handler_and_respond_many)
{
	struct tctx t;
	int codes[256], res[256], handled = 0;

	tctx_init(&t);
	bh_ndeferred = bh_calls = bh_groups = 0;
	bh_max = 0;
	ck_assert_int_eq(iopf_ctx_set_batch_handler(t.ctx, bh, &bh_calls), 0);
	/* a device handler still takes its device's groups */
	ck_assert_int_eq(iopf_ctx_set_device_handler(t.ctx, 7, h_success, &handled), 0);
	for (uint32_t i = 0; i < 150; i++)
		fk_trigger(t.f, 1, 0, i, 1, 0x1000ull * i);
	fk_trigger(t.f, 7, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(bh_groups, 150);
	ck_assert_int_eq(handled, 1);
	ck_assert_uint_le(bh_max, 64);
	ck_assert_int_ge(bh_calls, 3);
	ck_assert_int_eq(bh_ndeferred, 50);
	for (int i = 0; i < bh_ndeferred; i++)
		codes[i] = IOPF_CODE_SUCCESS;
	codes[3] = 7; /* a bad code refuses that one only */
	ck_assert_int_eq(iopf_respond_many(t.ctx, bh_deferred, codes,
					   (size_t)bh_ndeferred, res), 49);
	ck_assert_int_eq(res[0], 0);
	ck_assert_int_eq(res[3], -EINVAL);
	codes[3] = IOPF_CODE_INVALID;
	ck_assert_int_eq(iopf_respond_many(t.ctx, bh_deferred, codes, 4, res), 1);
	ck_assert_int_eq(res[0], -EALREADY);
	ck_assert_int_eq(res[3], 0);
	ck_assert_int_eq(iopf_respond_many(NULL, bh_deferred, codes, 1, NULL), -EINVAL);
	ck_assert_int_eq(iopf_respond_many(t.ctx, NULL, codes, 1, NULL), -EINVAL);
	ck_assert_int_eq(iopf_respond_many(t.ctx, NULL, NULL, 0, NULL), 0);
	iopf_ctx_flush(t.ctx);
	for (uint64_t q = 1; q <= 150; q++) {
		uint64_t a = q - 1;

		ck_assert_int_eq(answer_of(t.f, q), a % 3 == 2 ? IOPF_CODE_INVALID :
				 (a % 3 == 1 && a == 10) ? IOPF_CODE_INVALID :
							 IOPF_CODE_SUCCESS);
	}
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

Suite *suite_dispatch(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("dispatch");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, handler_precedence);
	tcase_add_test(tc, no_handler_or_bad_return_answers_invalid_and_logs);
	tcase_add_test(tc, answer_from_other_thread_wakes_the_loop);
	tcase_add_test(tc, run_until_stop);
	tcase_add_test(tc, workers_handle_ten_thousand_once_each);
	tcase_add_test(tc, workers_share_slow_handlers);
	tcase_add_test(tc, workers_batch_handler_one_group_a_call);
	tcase_add_test(tc, drain_waits_and_times_out);
	tcase_add_test(tc, no_reentry_from_handlers);
	tcase_add_test(tc, max_outstanding_pauses_reading);
	tcase_add_test(tc, dispatch_busy_and_null);
	tcase_add_test(tc, latency_histogram_counts_answers);
	tcase_add_test(tc, batch_handler_and_respond_many);
	tcase_add_test(tc, batch_handler_skips_groups_ended_meanwhile);
	tcase_add_test(tc, handler_ends_groups_of_its_batch_returned_ones_too);
	tcase_add_test(tc, respond_many_duplicates_runs_and_sources);
	suite_add_tcase(s, tc);
	return s;
}
