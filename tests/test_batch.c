/* SPDX-License-Identifier: MIT */
/* test_batch.c - answers are batched; a refused answer costs only itself. */
#include "testutil.h"

static iopf_handle_t handles[4096];
static int nhandles;

static int h_defer(struct iopf_group *g, void *ud)
{
	(void)ud;
	handles[nhandles++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

START_TEST(one_write_per_round)
{
	struct tctx t;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 100);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 100);
	ck_assert_uint_eq(fk_writes(t.f), 1);
	ck_assert_uint_eq(tstats(t.ctx).write_calls, 1);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 100);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(batch_cap_splits_writes)
{
	IOPF_OPTS(iopf_ctx_opts, o, .batch_max = 16);
	struct tctx t;
	int n = 0;

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 100);
	drive(t.ctx);
	ck_assert_uint_eq(fk_writes(t.f), 7); /* ceil(100 / 16) */
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A write that fails in passing (ENOMEM) in the middle of a handler
 * batch's answers: they are kept, the batch goes on past batch_max one
 * answer at a time, and every group is answered once. */
START_TEST(passing_write_failure_mid_batch_keeps_answers)
{
	IOPF_OPTS(iopf_ctx_opts, o, .batch_max = 4);
	struct tctx t;
	int n = 0;

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 64);
	fk_fail_next(t.f, 1, ENOMEM);
	drive(t.ctx);
	ck_assert_int_eq(n, 64);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 64);
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 0);
	/* the first write fails and keeps its 4 answers, written with the
	 * 5th; then 14 batches of 4 and the last 3: 17 calls, 1 failed */
	ck_assert_uint_eq(tstats(t.ctx).write_calls, 17);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* Every write fails in passing (ENOMEM) from the first handler call on:
 * the dispatch call still returns, with every answer kept; once writes
 * work again, the next dispatch writes each of them once. */
static struct fk_fault *fail_f;
static int h_success_then_fail_writes(struct iopf_group *g, void *ud)
{
	fk_fail_always(fail_f, 1, ENOMEM);
	return h_success(g, ud);
}

START_TEST(lasting_write_failure_keeps_every_answer)
{
	IOPF_OPTS(iopf_ctx_opts, o, .batch_max = 4);
	struct tctx t;
	int n = 0;

	tctx_init_opts(&t, &o, NULL);
	fail_f = t.f;
	iopf_ctx_set_handler(t.ctx, h_success_then_fail_writes, &n);
	trigger_groups(t.f, 1, 64);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 64);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 64);
	ck_assert_uint_eq(fk_outstanding(t.f), 64); /* none written yet */
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 0);
	fk_fail_always(t.f, 1, 0);
	drive(t.ctx);
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(deferred_answers_wait_for_flush)
{
	struct tctx t;

	nhandles = 0;
	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	trigger_groups(t.f, 1, 10);
	drive(t.ctx);
	ck_assert_int_eq(nhandles, 10);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(iopf_respond(t.ctx, handles[i], IOPF_CODE_SUCCESS), 0);
	ck_assert_uint_eq(fk_writes(t.f), 0); /* gathered, not yet written */
	ck_assert_int_eq(iopf_ctx_flush(t.ctx), 0);
	ck_assert_uint_eq(fk_writes(t.f), 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(kernel_refusal_mid_batch_drops_only_that_answer)
{
	struct tctx t;

	nhandles = 0;
	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 2, 0, 2, 1, 0); /* dev 2 is detached behind our back */
	fk_trigger(t.f, 1, 0, 3, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(nhandles, 3);
	fk_detach(t.f, 2);
	for (int i = 0; i < 3; i++)
		iopf_respond(t.ctx, handles[i], IOPF_CODE_SUCCESS);
	iopf_ctx_flush(t.ctx);
	/* [good, bad, good]: the kernel took 8 bytes, we wrote the rest */
	ck_assert_uint_eq(fk_writes(t.f), 2);
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 1);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 0);
	tctx_fini(&t);
}
END_TEST

START_TEST(first_answer_refused_rest_written)
{
	struct tctx t;

	nhandles = 0;
	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	fk_trigger(t.f, 2, 0, 1, 1, 0);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	drive(t.ctx);
	fk_detach(t.f, 2);
	iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS);
	iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 1);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	tctx_fini(&t);
}
END_TEST

static void transient_write_error(int err)
{
	struct tctx t;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 5);
	fk_fail_next(t.f, 1, err);
	drive(t.ctx);
	ck_assert_int_eq(n, 5);
	ck_assert_uint_eq(fk_writes(t.f), 2); /* failed once, then all 5 */
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 0);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}

START_TEST(write_eintr_retried)
{
	transient_write_error(EINTR);
}
END_TEST

START_TEST(write_eagain_retried)
{
	transient_write_error(EAGAIN);
}
END_TEST

START_TEST(read_eintr_retried_eagain_waits)
{
	struct tctx t;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_fail_next(t.f, 0, EINTR);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 1);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	fk_fail_next(t.f, 0, EAGAIN); /* nothing lost: read next round */
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 0);
	ck_assert_int_eq(drive(t.ctx), 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A second fake fault queue adopted by t's context, and a handler that
 * answers SUCCESS and counts in *n. Returns the queue's source. */
static struct iopf_source *second_queue(struct tctx *t, struct fk_fault **f2,
					int *n)
{
	struct iopf_source *s2;

	*f2 = fk_fault_new();
	s2 = iopf_fault_queue_adopt(t->ctx, fk_fault_fd(*f2), fk_fault_id(*f2),
				    NULL);
	ck_assert_ptr_nonnull(s2);
	iopf_ctx_set_handler(t->ctx, h_success, n);
	return s2;
}

START_TEST(several_queues_one_context)
{
	struct tctx t;
	struct fk_fault *f2;
	struct iopf_source *s2;
	int n = 0;

	tctx_init(&t);
	s2 = second_queue(&t, &f2, &n);
	/* the same cookies on both queues: answers go to their own fd */
	for (int i = 0; i < 20; i++) {
		fk_trigger(t.f, 1, 0, (uint32_t)i, 1, 0);
		fk_trigger(f2, 2, 0, (uint32_t)i, 1, 0);
	}
	drive(t.ctx);
	ck_assert_int_eq(n, 40);
	ck_assert_uint_eq(fk_writes(t.f), 1);
	ck_assert_uint_eq(fk_writes(f2), 1);
	assert_each_answered_once(t.f);
	assert_each_answered_once(f2);
	iopf_source_close(s2);
	tctx_fini(&t);
	fk_fault_free(f2);
}
END_TEST

/* One device (and PASID) on two fault queues: its groups share a flow, so
 * the scheduler hands out both queues' groups in one run and one handler
 * batch answers them. Each answer must reach its own queue, and one write
 * each (the end path tells sources apart by intake time: no two reads
 * share one). */
START_TEST(one_device_on_two_queues_answered_in_one_batch)
{
	struct tctx t;
	struct fk_fault *f2;
	struct iopf_source *s2;
	IOPF_OPTS(iopf_stats, st);
	int n = 0;

	tctx_init(&t);
	s2 = second_queue(&t, &f2, &n);
	for (int round = 0; round < 3; round++) {
		/* the same cookies on both queues, each queue's in one read */
		for (uint32_t i = 0; i < 20; i++) {
			fk_trigger(t.f, 1, 0, i, 1, 0);
			fk_trigger(f2, 1, 0, i, 1, 0);
		}
		ck_assert_int_eq(drive(t.ctx), 40);
	}
	ck_assert_int_eq(n, 120);
	assert_each_answered_once(t.f);
	assert_each_answered_once(f2);
	ck_assert_uint_eq(fk_writes(t.f), 3);
	ck_assert_uint_eq(fk_writes(f2), 3);
	ck_assert_int_eq(iopf_ctx_get_stats(t.ctx, &st), 0);
	ck_assert_uint_eq(st.answers_success, 120);
	ck_assert_uint_eq(st.outstanding, 0);
	iopf_source_close(s2);
	tctx_fini(&t);
	fk_fault_free(f2);
}
END_TEST

Suite *suite_batch(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("batch");

	tcase_add_test(tc, one_write_per_round);
	tcase_add_test(tc, batch_cap_splits_writes);
	tcase_add_test(tc, passing_write_failure_mid_batch_keeps_answers);
	tcase_add_test(tc, lasting_write_failure_keeps_every_answer);
	tcase_add_test(tc, deferred_answers_wait_for_flush);
	tcase_add_test(tc, kernel_refusal_mid_batch_drops_only_that_answer);
	tcase_add_test(tc, first_answer_refused_rest_written);
	tcase_add_test(tc, write_eintr_retried);
	tcase_add_test(tc, write_eagain_retried);
	tcase_add_test(tc, read_eintr_retried_eagain_waits);
	tcase_add_test(tc, several_queues_one_context);
	tcase_add_test(tc, one_device_on_two_queues_answered_in_one_batch);
	suite_add_tcase(s, tc);
	return s;
}
