/* SPDX-License-Identifier: MIT */
/*
 * test_once.c - exactly once on the paths where 1.1 broke it (issue 11):
 * each test failed on 1.1 and names the defect it guards.
 */
#include <pthread.h>
#include <sys/socket.h>

#include "testutil.h"

/* ---- a producer whose answers are counted per PRG index ---- */

#define NPRG 64
struct pcount {
	int resp[NPRG];
	int codes[NPRG];
	int total;
	struct iopf_source *src; /* for respond callbacks that submit */
	int resubmit;            /* how many more to submit from respond */
};

static void on_resp(const struct iopf_response *r, void *ud)
{
	struct pcount *c = ud;

	ck_assert_uint_lt(r->prgi, NPRG);
	c->resp[r->prgi]++;
	c->codes[r->prgi] = (int)r->code;
	c->total++;
	if (c->resubmit > 0) {
		struct iopf_request q = { .dev_id = 1, .prgi = (uint32_t)(NPRG - c->resubmit),
					  .flags = IOPF_F_LAST_PAGE };

		c->resubmit--;
		ck_assert_int_eq(iopf_producer_submit(c->src, &q), 1);
		c->total += 1000; /* one more owed */
	}
}

static struct iopf_source *producer(struct iopf_ctx *ctx, struct pcount *c,
				    unsigned int cap)
{
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = c,
		  .partial_cap = cap);
	struct iopf_source *s = iopf_producer_new(ctx, &po);

	ck_assert_ptr_nonnull(s);
	c->src = s;
	return s;
}

static int submit(struct iopf_source *s, uint32_t dev, uint32_t prgi, bool last)
{
	struct iopf_request q = { .dev_id = dev, .prgi = prgi,
				  .flags = last ? IOPF_F_LAST_PAGE : 0 };

	return iopf_producer_submit(s, &q);
}

static int calls;
static int h_count(struct iopf_group *g, void *ud)
{
	calls++;
	return IOPF_CODE_SUCCESS;
}

/* 1: answering a group still queued for its handler must not cut the
 * ready queue: the groups behind it are handled and answered. */
START_TEST(answer_of_queued_group_keeps_the_rest)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct pcount c = { 0 };
	struct iopf_source *p = producer(ctx, &c, 0);

	calls = 0;
	iopf_ctx_set_handler(ctx, h_count, NULL);
	for (uint32_t i = 0; i < 5; i++)
		ck_assert_int_eq(submit(p, 1, i, true), 1);
	/* a guest's answer for prgi 1 before its handler ran */
	ck_assert_int_eq(iopf_respond_prg(ctx, 1, IOPF_NO_PASID, 1,
					  IOPF_CODE_INVALID), 0);
	ck_assert_int_eq(iopf_producer_flush_pasid(p, 1, IOPF_NO_PASID) >= 0, 1);
	for (uint32_t i = 5; i < 10; i++)
		ck_assert_int_eq(submit(p, 1, i, true), 1);
	drive(ctx);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(c.resp[i], 1);
	ck_assert_int_eq(calls, 5); /* only groups 5..9 reached a handler */
	iopf_ctx_free(ctx);
}
END_TEST

/* 2: a handler that answers its device's groups in bulk: none of them
 * reaches a handler afterwards. */
static struct iopf_ctx *bulk_ctx;
static int h_bulk(struct iopf_group *g, void *ud)
{
	calls++;
	iopf_ctx_answer_invalid(bulk_ctx, iopf_group_dev_id(g), 0,
				IOPF_ALL_PASIDS);
	return IOPF_CODE_SUCCESS; /* refused: answered INVALID just now */
}

START_TEST(bulk_end_mid_round)
{
	struct tctx t;

	tctx_init(&t);
	bulk_ctx = t.ctx;
	calls = 0;
	iopf_ctx_set_handler(t.ctx, h_bulk, NULL);
	trigger_groups(t.f, 3, 5);
	drive(t.ctx);
	ck_assert_int_eq(calls, 1);
	for (uint64_t s = 1; s <= 5; s++)
		ck_assert_int_eq(answer_of(t.f, s), IOPF_CODE_INVALID);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* 3: iopf_ctx_free() from a handler is refused; iopf_source_close()
 * from a handler closes at once and safely. */
static struct tctx *cur;
static int h_free_and_close(struct iopf_group *g, void *ud)
{
	iopf_ctx_free(cur->ctx);          /* refused, logged */
	iopf_source_close(cur->src);      /* answers its groups INVALID */
	cur->src = NULL;
	ck_assert_uint_eq(iopf_group_dev_id(g), 4); /* still readable */
	return IOPF_CODE_SUCCESS;        /* refused: already answered */
}

START_TEST(free_and_close_from_handler)
{
	struct tctx t;

	tctx_init(&t);
	cur = &t;
	iopf_ctx_set_handler(t.ctx, h_free_and_close, NULL);
	fk_trigger(t.f, 4, 0, 1, 1, 0);
	fk_trigger(t.f, 4, 0, 2, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_INVALID);
	ck_assert_uint_ge(tstats(t.ctx).refused_answers, 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* 4: a source closed while a worker runs a handler of its group stays
 * allocated until that handler is done. */
static pthread_mutex_t w_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cond = PTHREAD_COND_INITIALIZER;
static int w_stage;
static int h_slow(struct iopf_group *g, void *ud)
{
	pthread_mutex_lock(&w_lock);
	w_stage = 1;
	pthread_cond_broadcast(&w_cond);
	while (w_stage != 2)
		pthread_cond_wait(&w_cond, &w_lock);
	pthread_mutex_unlock(&w_lock);
	/* the source is closed now: its memory must still be there */
	ck_assert_ptr_nonnull(iopf_group_source(g));
	ck_assert_int_eq(iopf_source_get_fd(iopf_group_source(g)), -EINVAL);
	return IOPF_CODE_SUCCESS;
}

START_TEST(close_under_worker_handler)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 1);
	struct tctx t;

	tctx_init_opts(&t, &o, NULL);
	w_stage = 0;
	iopf_ctx_set_handler(t.ctx, h_slow, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 1);
	pthread_mutex_lock(&w_lock);
	while (w_stage != 1)
		pthread_cond_wait(&w_cond, &w_lock);
	pthread_mutex_unlock(&w_lock);
	iopf_source_close(t.src);
	pthread_mutex_lock(&w_lock);
	w_stage = 2;
	pthread_cond_broadcast(&w_cond);
	pthread_mutex_unlock(&w_lock);
	iopf_ctx_free(t.ctx); /* joins the worker */
	t.ctx = NULL;
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	assert_each_answered_once(t.f);
	fk_fault_free(t.f);
}
END_TEST

/* 5: answers are kept per context: a handler of A answering B's producer
 * group runs B's respond callback with no lock of A held. */
static struct iopf_ctx *ctx_a, *ctx_b;
static iopf_handle_t b_handle;
static int b_resp;
static void on_resp_b(const struct iopf_response *r, void *ud)
{
	IOPF_OPTS(iopf_stats, st);

	ck_assert_int_eq(iopf_ctx_get_stats(ctx_a, &st), 0); /* A unlocked */
	b_resp++;
}

static int h_b_defer(struct iopf_group *g, void *ud)
{
	b_handle = iopf_group_handle(g);
	return IOPF_DEFER;
}

static int h_a_answers_b(struct iopf_group *g, void *ud)
{
	ck_assert_int_eq(iopf_respond(ctx_b, b_handle, IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(b_resp, 1); /* delivered before respond returned */
	return IOPF_CODE_SUCCESS;
}

START_TEST(answers_per_context)
{
	struct tctx a;
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp_b);
	struct iopf_source *pb;

	tctx_init(&a);
	ctx_a = a.ctx;
	ctx_b = iopf_ctx_new(NULL);
	b_resp = 0;
	pb = iopf_producer_new(ctx_b, &po);
	iopf_ctx_set_handler(ctx_b, h_b_defer, NULL);
	ck_assert_int_eq(submit(pb, 1, 1, true), 1);
	drive(ctx_b);
	iopf_ctx_set_handler(ctx_a, h_a_answers_b, NULL);
	fk_trigger(a.f, 1, 0, 1, 1, 0);
	drive(ctx_a);
	ck_assert_int_eq(b_resp, 1);
	iopf_ctx_free(ctx_b);
	ck_assert_int_eq(b_resp, 1);
	tctx_fini(&a);
}
END_TEST

/* 6: no allocation failure ends the process or loses a group. */
START_TEST(allocation_failures_answered)
{
	for (int n = 0; n < 40; n++) {
		struct tctx t;
		int handled = 0;

		tctx_init(&t);
		iopf_ctx_set_handler(t.ctx, h_success, &handled);
		/* turn the PRG index on: one more allocation on intake */
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 0, 0, 0), -ENOENT);
		for (uint32_t i = 0; i < 300; i++)
			fk_trigger(t.f, 1 + i % 7, i % 3, i, 1, 0x1000 * i);
		iopf__fail_alloc_after(n);
		drive(t.ctx);
		iopf__fail_alloc_after(-1);
		drive(t.ctx);
		ck_assert_uint_eq(tstats(t.ctx).answers_success +
					  tstats(t.ctx).answers_invalid, 300);
		iopf_ctx_free(t.ctx);
		assert_each_answered_once(t.f);
		fk_fault_free(t.f);
	}
}
END_TEST

/* 7: a group whose partial requests were all dropped is TRUNCATED. */
static uint32_t last_flags[NPRG];
static int h_flags(struct iopf_group *g, void *ud)
{
	last_flags[iopf_group_prgi(g)] = iopf_group_flags(g);
	return IOPF_CODE_SUCCESS;
}

START_TEST(truncated_without_partials_held)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct pcount c = { 0 };
	struct iopf_source *p = producer(ctx, &c, 2);

	memset(last_flags, 0xff, sizeof(last_flags));
	iopf_ctx_set_handler(ctx, h_flags, NULL);
	ck_assert_int_eq(submit(p, 1, 1, false), 0);
	ck_assert_int_eq(submit(p, 1, 1, false), 0);
	ck_assert_int_eq(submit(p, 1, 2, false), -ENOSPC); /* none held */
	ck_assert_int_eq(submit(p, 1, 1, false), -ENOSPC);
	ck_assert_int_eq(submit(p, 1, 2, true), 1);
	ck_assert_int_eq(submit(p, 1, 1, true), 1);
	ck_assert_int_eq(submit(p, 1, 3, true), 1);
	drive(ctx);
	ck_assert_uint_eq(last_flags[2], IOPF_GROUP_TRUNCATED);
	ck_assert_uint_eq(last_flags[1], IOPF_GROUP_TRUNCATED);
	ck_assert_uint_eq(last_flags[3], 0);
	/* discarded partials make an incomplete group too */
	ck_assert_int_eq(submit(p, 1, 4, false), 0);
	ck_assert_int_eq(iopf_producer_discard_partial(p, 1, 0), 1);
	ck_assert_int_eq(submit(p, 1, 4, true), 1);
	drive(ctx);
	ck_assert_uint_eq(last_flags[4], IOPF_GROUP_TRUNCATED);
	iopf_ctx_free(ctx);
	ck_assert_int_eq(c.total, 4);
}
END_TEST

/* 8: max_outstanding is a hard cap on what is read. */
static int h_defer_all(struct iopf_group *g, void *ud)
{
	return IOPF_DEFER;
}

START_TEST(max_outstanding_is_hard)
{
	IOPF_OPTS(iopf_ctx_opts, o, .max_outstanding = 10);
	struct tctx t;
	struct iopf_k_pgfault two[2] = { { .dev_id = 1 },
		{ .dev_id = 1, .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE } };

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer_all, NULL);
	trigger_groups(t.f, 1, 100);
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).groups, 10);
	ck_assert_uint_eq(fk_queued(t.f), 90);
	/* room for 1: a 2-record group waits until it fits */
	iopf_ctx_set_handler(t.ctx, h_success, NULL);
	iopf_ctx_answer_invalid(t.ctx, 1, 0, IOPF_ALL_PASIDS);
	for (int i = 0; i < 100 && fk_queued(t.f); i++)
		drive(t.ctx);
	ck_assert_uint_eq(fk_queued(t.f), 0);
	iopf_ctx_free(t.ctx);
	(void)two;
	assert_each_answered_once(t.f);
	fk_fault_free(t.f);
}
END_TEST

/* 9: a hung-up adopted fd fails its source once; no spin. */
START_TEST(hangup_fails_source_no_spin)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct iopf_source *s;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	s = iopf_fault_queue_adopt(ctx, sv[0], 1, NULL);
	ck_assert_ptr_nonnull(s);
	close(sv[1]);
	struct pollfd p = { .fd = iopf_ctx_get_fd(ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 0), 1);
	ck_assert_int_eq(iopf_ctx_dispatch(ctx), -EIO);
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* quiet from now on */
	ck_assert_int_eq(iopf_ctx_dispatch(ctx), 0);
	ck_assert_uint_eq(tstats(ctx).source_errors, 1);
	iopf_source_close(s);
	close(sv[0]);
	iopf_ctx_free(ctx);
}
END_TEST

/* 11: detach is the kernel's answer: a producer has none. */
START_TEST(detach_refused_on_producer)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct pcount c = { 0 };
	struct iopf_source *p = producer(ctx, &c, 0);

	ck_assert_int_eq(submit(p, 1, 1, true), 1);
	ck_assert_int_eq(iopf_source_detach(p, 1, 0, IOPF_ALL_PASIDS), -EOPNOTSUPP);
	iopf_ctx_free(ctx);
	ck_assert_int_eq(c.resp[1], 1);
}
END_TEST

/* 12: a stale handle's error depends on the handle, not on the slot. */
static iopf_handle_t held;
static int h_hold(struct iopf_group *g, void *ud)
{
	if (!held)
		held = iopf_group_handle(g);
	return held == iopf_group_handle(g) ? IOPF_DEFER : IOPF_CODE_SUCCESS;
}

START_TEST(stale_handle_error_is_stable)
{
	struct tctx t;

	tctx_init(&t);
	held = 0;
	iopf_ctx_set_handler(t.ctx, h_hold, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(iopf_ctx_answer_invalid(t.ctx, 1, 0, IOPF_ALL_PASIDS), 1);
	ck_assert_int_eq(iopf_respond(t.ctx, held, 0), -ESHUTDOWN);
	for (uint32_t i = 0; i < 500; i++) { /* the slot is reused */
		fk_trigger(t.f, 2, 0, i, 1, 0);
		drive(t.ctx);
	}
	ck_assert_int_eq(iopf_respond(t.ctx, held, 0), -ESHUTDOWN);
	tctx_fini(&t);
}
END_TEST

/* 15: a respond callback that submits again. */
START_TEST(respond_callback_submits)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct pcount c = { 0 };
	struct iopf_source *p = producer(ctx, &c, 0);

	iopf_ctx_set_handler(ctx, h_success, NULL);
	c.resubmit = 20;
	ck_assert_int_eq(submit(p, 1, 0, true), 1);
	ck_assert_int_eq(submit(p, 1, 1, true), 1);
	drive(ctx);
	ck_assert_int_eq(c.resubmit, 0);
	iopf_ctx_free(ctx);
	ck_assert_int_eq(c.total, 22 + 20 * 1000);
	for (int i = 0; i < NPRG; i++)
		ck_assert_int_le(c.resp[i], 1);
}
END_TEST

/* 14: an answer gathered for a cookie is written before that cookie can
 * be read again. A raw INVALID for a malformed group waits in the batch;
 * the kernel answers that cookie itself (a detach nobody announced)
 * before the next read in the same loop hands it to a new group: that
 * group must get its own answer, not the stale one. */
static struct fk_fault *race_f;
static int race_reads;
static ssize_t racing_read(int fd, void *buf, size_t count)
{
	ssize_t r = fk_sys_read(fd, buf, count);

	if (++race_reads == 1) {
		fk_detach(race_f, 0); /* the raw group (its dev id, whichever */
		fk_detach(race_f, 9); /* way the fake records it) */
		fk_trigger(race_f, 2, 0, 7, 1, 0x7000); /* gets its cookie */
	}
	return r;
}

static uint32_t race_cookie;
static int h_cookie(struct iopf_group *g, void *ud)
{
	race_cookie = iopf_group_cookie(g);
	(*(int *)ud)++;
	return IOPF_CODE_SUCCESS;
}

START_TEST(stale_raw_answer_never_reaches_reused_cookie)
{
	static struct iopf_sys sys;
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = 2);
	struct iopf_k_pgfault raw = { .dev_id = 9, .cookie = 1 }; /* no LAST */
	struct tctx t;
	int handled = 0;

	tctx_init_opts(&t, NULL, &fo);
	sys = *iopf__sys;
	sys.read = racing_read;
	race_f = t.f;
	race_reads = 0;
	iopf__set_sys(&sys);
	iopf_ctx_set_handler(t.ctx, h_cookie, &handled);
	fk_inject_raw(t.f, &raw, 1);
	drive(t.ctx);
	fk_install(); /* the plain fake again */
	ck_assert_int_eq(handled, 1);
	ck_assert_uint_eq(race_cookie, 1); /* the kernel reused the cookie */
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	ck_assert_uint_eq(tstats(t.ctx).malformed, 1);
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	tctx_fini(&t);
}
END_TEST

/* A malformed group read with the cookie of a group we still hold (the
 * kernel answered that one itself, unannounced) retires the old group
 * before its own INVALID goes out: the cookie is written once. */
START_TEST(malformed_group_on_reused_cookie_retires_the_old)
{
	struct iopf_k_pgfault broken = { .dev_id = 2 }; /* no LAST_PAGE */
	struct tctx t;

	tctx_init(&t);
	held = 0;
	iopf_ctx_set_handler(t.ctx, h_hold, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	fk_detach(t.f, 1);                /* the kernel answers cookie 1 */
	fk_trigger_group(t.f, &broken, 1); /* ... and hands it out again */
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).malformed, 1);
	ck_assert_uint_eq(tstats(t.ctx).kernel_answered, 1);
	ck_assert_int_eq(iopf_respond(t.ctx, held, 0), -ESHUTDOWN);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(fk_stale_writes(t.f), 0);
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 0);
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	tctx_fini(&t);
}
END_TEST

/* A read whose first group's cookie lies past the cookie table (which
 * grows for it) and whose next group has a lower cookie: the lower one
 * goes into the grown table. (The kernel allocates a read's cookies in
 * increasing order; records in any order still must not reach freed
 * memory.) Were it written to the old, freed table, the kernel's reuse of
 * that cookie would go unseen and the old group's answer would reach the
 * new group; under ASan, the write itself fails. */
static iopf_handle_t hcookie[128];
static int h_keep_by_cookie(struct iopf_group *g, void *ud)
{
	(void)ud;
	hcookie[iopf_group_cookie(g)] = iopf_group_handle(g);
	return IOPF_DEFER;
}

START_TEST(cookie_table_grown_mid_read_holds_the_lower_cookies)
{
	struct iopf_k_pgfault r[2] = {
		{ .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE, .dev_id = 1, .grpid = 1, .cookie = 100 },
		{ .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE, .dev_id = 2, .grpid = 2, .cookie = 3 },
	};
	struct iopf_k_pgfault again = { .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE,
					.dev_id = 3, .grpid = 3, .cookie = 3 };
	struct tctx t;
	iopf_handle_t old3;

	tctx_init(&t);
	memset(hcookie, 0, sizeof(hcookie));
	iopf_ctx_set_handler(t.ctx, h_keep_by_cookie, NULL);
	fk_trigger(t.f, 1, 0, 0, 1, 0); /* cookie 1: a table of 64 */
	ck_assert_int_eq(drive(t.ctx), 1);
	fk_inject_raw(t.f, r, 2);       /* one read: cookie 100, then 3 */
	ck_assert_int_eq(drive(t.ctx), 2);
	ck_assert(hcookie[100] && hcookie[3]);
	old3 = hcookie[3];
	fk_inject_raw(t.f, &again, 1);  /* cookie 3 handed out again */
	ck_assert_int_eq(drive(t.ctx), 1);
	ck_assert_uint_eq(tstats(t.ctx).kernel_answered, 1);
	ck_assert_int_eq(iopf_respond(t.ctx, old3, IOPF_CODE_SUCCESS), -ESHUTDOWN);
	ck_assert_int_eq(iopf_respond(t.ctx, hcookie[3], IOPF_CODE_INVALID), 0);
	ck_assert_int_eq(iopf_respond(t.ctx, hcookie[100], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond(t.ctx, hcookie[1], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_ctx_flush(t.ctx), 0);
	ck_assert_uint_eq(fk_stale_writes(t.f), 0);
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	tctx_fini(&t);
}
END_TEST

/* A queue paused by max_outstanding resumes whichever call makes room:
 * here a detach the kernel answered, told from outside any dispatch (1.2
 * rewrite: only answers woke the loop, so this stalled). */
START_TEST(room_made_by_detach_wakes_a_paused_queue)
{
	IOPF_OPTS(iopf_ctx_opts, o, .max_outstanding = 2);
	struct tctx t;

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer_all, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	trigger_groups(t.f, 2, 3);
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 2);
	ck_assert_uint_eq(fk_queued(t.f), 3);
	fk_detach(t.f, 1);
	ck_assert_int_eq(iopf_source_detach(t.src, 1, 0, IOPF_ALL_PASIDS), 2);
	struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 0), 1); /* the loop is woken */
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 2);
	ck_assert_uint_eq(fk_queued(t.f), 1);
	iopf_ctx_free(t.ctx);
	fk_fault_free(t.f);
}
END_TEST

/* A handler batch ends its groups together (group_end_n): all become
 * DONE before any source is told. Telling one may fail it (its write
 * finds the fd dead), and a failed source ends its live groups: a group
 * of the same batch still live then would end twice. Two queues, their
 * groups interleaved in one batch by the turns, answers written one at a
 * time, the first write of queue A failing with EBADF. */
START_TEST(source_failing_mid_batch_ends_each_group_once)
{
	IOPF_OPTS(iopf_ctx_opts, o, .batch_max = 1);
	IOPF_OPTS(iopf_device_stats, ds);
	struct iopf_ctx *ctx;
	struct fk_fault *fa, *fb;
	struct iopf_stats st;
	int n = 0;

	fk_install();
	ctx = iopf_ctx_new(&o);
	ck_assert_ptr_nonnull(ctx);
	fa = fk_fault_new();
	fb = fk_fault_new();
	ck_assert_ptr_nonnull(iopf_fault_queue_adopt(ctx, fk_fault_fd(fa), fk_fault_id(fa), NULL));
	ck_assert_ptr_nonnull(iopf_fault_queue_adopt(ctx, fk_fault_fd(fb), fk_fault_id(fb), NULL));
	iopf_ctx_set_handler(ctx, h_success, &n);
	for (uint32_t i = 0; i < 3; i++) {
		fk_trigger(fa, 1, 0, i, 1, 0);
		fk_trigger(fb, 2, 0, i, 1, 0);
	}
	fk_fail_next(fa, 1, EBADF);
	drive(ctx);
	ck_assert_int_eq(n, 6);
	st = tstats(ctx);
	ck_assert_uint_eq(st.outstanding, 0);
	ck_assert_uint_eq(st.source_errors, 1);
	ck_assert_int_eq(iopf_ctx_get_device_stats(ctx, 1, 0, IOPF_ALL_PASIDS, &ds), 0);
	ck_assert_uint_eq(ds.groups, 3);
	ck_assert_uint_eq(ds.outstanding, 0);
	ck_assert_uint_eq(ds.answers_success + ds.answers_invalid, 3);
	ck_assert_int_eq(iopf_ctx_get_device_stats(ctx, 2, 0, IOPF_ALL_PASIDS, &ds), 0);
	ck_assert_uint_eq(ds.answers_success, 3);
	ck_assert_uint_eq(ds.outstanding, 0);
	assert_each_answered_once(fb);
	iopf_ctx_free(ctx);
	fk_fault_free(fa);
	fk_fault_free(fb);
	fk_uninstall();
}
END_TEST

/* The same, randomized: three queues, groups of 1 to 3 records from 6
 * devices, handlers answering at once, deferring (answered later in one
 * iopf_respond_many() call) or returning INVALID, answers written 1 to 4
 * at a time, and now and then a write that finds the fd dead, mid-batch
 * or mid-respond_many. Oracle: no group ends twice (the counters would
 * wrap: outstanding is intake minus ends), none is left outstanding, no
 * fake sees a second answer, and a queue that never failed sees every
 * group answered once. */
struct rdf {
	iopf_handle_t h[4096];
	int codes[4096];
	int nh;
	unsigned int seed;
};

static int h_rdf(struct iopf_group *g, void *ud)
{
	struct rdf *r = ud;
	unsigned int x = (r->seed = r->seed * 1103515245u + 12345u) >> 16;

	if (x % 3 == 0 && r->nh < 4096) {
		r->codes[r->nh] = IOPF_CODE_SUCCESS;
		r->h[r->nh++] = iopf_group_handle(g);
		return IOPF_DEFER;
	}
	return x % 7 == 0 ? IOPF_CODE_INVALID : IOPF_CODE_SUCCESS;
}

START_TEST(random_dead_fds_end_each_group_once)
{
	for (unsigned int seed = 1; seed <= 30; seed++) {
		IOPF_OPTS(iopf_ctx_opts, o, .batch_max = 1 + seed % 4);
		static struct rdf r;
		struct fk_fault *f[3];
		struct iopf_ctx *ctx;
		bool failed[3] = { false };
		unsigned int x = seed;

		fk_install();
		ctx = iopf_ctx_new(&o);
		ck_assert_ptr_nonnull(ctx);
		r.nh = 0;
		r.seed = seed;
		iopf_ctx_set_handler(ctx, h_rdf, &r);
		for (int q = 0; q < 3; q++) {
			f[q] = fk_fault_new();
			ck_assert_ptr_nonnull(iopf_fault_queue_adopt(ctx, fk_fault_fd(f[q]),
								     fk_fault_id(f[q]), NULL));
		}
		for (int round = 0; round < 20; round++) {
			for (int i = 0; i < 40; i++) {
				struct iopf_k_pgfault g[3];
				unsigned int nrec, q, dev;

				x = x * 1103515245u + 12345u;
				nrec = 1 + (x >> 16) % 3;
				q = (x >> 8) % 3;
				dev = 1 + q * 2 + (x >> 20) % 2;
				for (unsigned int k = 0; k < nrec; k++)
					g[k] = (struct iopf_k_pgfault){
						.dev_id = dev, .grpid = (uint32_t)(round * 40 + i) % 512,
						.flags = k + 1 == nrec ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0 };
				fk_trigger_group(f[q], g, nrec);
			}
			x = x * 1103515245u + 12345u;
			if ((x >> 16) % 5 == 0) { /* a queue's next write finds its fd dead */
				unsigned int q = (x >> 4) % 3;

				fk_fail_next(f[q], 1, EBADF);
			}
			drive(ctx);
			if (r.nh) { /* deferred ones, in one call, now and then */
				ck_assert_int_ge(iopf_respond_many(ctx, r.h, r.codes, (size_t)r.nh, NULL), 0);
				r.nh = 0;
				drive(ctx);
			}
		}
		iopf_ctx_flush(ctx);
		ck_assert_uint_eq(tstats(ctx).outstanding, 0);
		for (uint32_t dev = 1; dev <= 6; dev++) {
			IOPF_OPTS(iopf_device_stats, ds);

			if (iopf_ctx_get_device_stats(ctx, dev, 0, IOPF_ALL_PASIDS, &ds) == 0)
				ck_assert_uint_eq(ds.outstanding, 0);
		}
		for (int q = 0; q < 3; q++) {
			/* a queue left with nothing pending: none unanswered */
			failed[q] = fk_outstanding(f[q]) + fk_queued(f[q]) != 0;
			assert_answered_at_most_once(f[q], !failed[q]);
		}
		iopf_ctx_free(ctx);
		for (int q = 0; q < 3; q++)
			fk_fault_free(f[q]);
		fk_uninstall();
	}
}
END_TEST

Suite *suite_once(void)
{
	Suite *s = suite_create("once");
	TCase *tc = tcase_create("defects");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, answer_of_queued_group_keeps_the_rest);
	tcase_add_test(tc, bulk_end_mid_round);
	tcase_add_test(tc, free_and_close_from_handler);
	tcase_add_test(tc, close_under_worker_handler);
	tcase_add_test(tc, answers_per_context);
	tcase_add_test(tc, allocation_failures_answered);
	tcase_add_test(tc, truncated_without_partials_held);
	tcase_add_test(tc, max_outstanding_is_hard);
	tcase_add_test(tc, hangup_fails_source_no_spin);
	tcase_add_test(tc, detach_refused_on_producer);
	tcase_add_test(tc, stale_handle_error_is_stable);
	tcase_add_test(tc, respond_callback_submits);
	tcase_add_test(tc, stale_raw_answer_never_reaches_reused_cookie);
	tcase_add_test(tc, malformed_group_on_reused_cookie_retires_the_old);
	tcase_add_test(tc, cookie_table_grown_mid_read_holds_the_lower_cookies);
	tcase_add_test(tc, room_made_by_detach_wakes_a_paused_queue);
	tcase_add_test(tc, source_failing_mid_batch_ends_each_group_once);
	tcase_add_test(tc, random_dead_fds_end_each_group_once);
	suite_add_tcase(s, tc);
	return s;
}
