/* SPDX-License-Identifier: MIT */
/* test_handles.c - cookie tracking: one answer per group, generations that
 * keep stale handles and late answers away from newer groups. */
#include "testutil.h"

static iopf_handle_t handles[64];
static int nhandles;

static int h_defer(struct iopf_group *g, void *ud)
{
	(void)ud;
	handles[nhandles++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

static void setup_defer(struct tctx *t, const struct iopf_ctx_opts *o)
{
	nhandles = 0;
	tctx_init_opts(t, o, NULL);
	iopf_ctx_set_handler(t->ctx, h_defer, NULL);
}

START_TEST(second_answer_is_ealready)
{
	struct tctx t;

	setup_defer(&t, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_INVALID), -EALREADY);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -EALREADY);
	ck_assert_uint_eq(tstats(t.ctx).refused_answers, 2);
	ck_assert_int_eq(iopf_respond(t.ctx, 0, IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_int_eq(iopf_respond(t.ctx, 0x100000099ull, IOPF_CODE_SUCCESS), -ENOENT);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A slot's generation wraps past 2^32 groups, through 0: the group of
 * generation 0 is answered by its handle like any other, the handle of
 * the generation before it is refused, and a generation not handed out
 * yet is unknown. */
void iopf__slots_set_gen(struct iopf_ctx *ctx, uint32_t gen);

START_TEST(generation_wraps_through_zero)
{
	struct tctx t;

	setup_defer(&t, NULL);
	iopf__slots_set_gen(t.ctx, UINT32_MAX); /* no slot yet: nothing */
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	iopf__slots_set_gen(t.ctx, UINT32_MAX);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	drive(t.ctx);
	ck_assert_uint_eq(handles[1] >> 32, UINT32_MAX);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	fk_trigger(t.f, 1, 0, 3, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(nhandles, 3);
	ck_assert_uint_eq(handles[2] >> 32, 0); /* wrapped */
	ck_assert_uint_eq((uint32_t)handles[2], (uint32_t)handles[1]); /* slot */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_INVALID), -EALREADY);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[2] + (1ull << 32), IOPF_CODE_INVALID),
			 -ENOENT);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[2], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[2], IOPF_CODE_SUCCESS), -EALREADY);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(stale_handle_cannot_reach_group_with_reused_cookie)
{
	struct tctx t;

	setup_defer(&t, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS);
	iopf_ctx_flush(t.ctx);
	/* the kernel hands cookie 1 and our slot to the next group */
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(nhandles, 2);
	ck_assert_uint_eq((uint32_t)handles[0], (uint32_t)handles[1]); /* slot */
	ck_assert_uint_ne(handles[0], handles[1]);                     /* gen */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_INVALID), -EALREADY);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), -1); /* untouched */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(respond_prg_oldest_first_and_unknown_refused)
{
	struct tctx t;

	setup_defer(&t, NULL);
	fk_trigger(t.f, 3, 5, 9, 1, 0x1000); /* seq 1 */
	fk_trigger(t.f, 3, 5, 9, 1, 0x2000); /* seq 2, same PRG key */
	fk_trigger(t.f, 3, 0, 9, 1, 0x3000); /* seq 3, no PASID */
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 3, 5, 9, IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(answer_of(t.f, 2), -1);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 3, 5, 9, IOPF_CODE_INVALID), 0);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 3, 5, 9, IOPF_CODE_INVALID), -ENOENT);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 3, IOPF_NO_PASID, 9, IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 4, 5, 9, IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_uint_eq(tstats(t.ctx).unmatched_answers, 2);
	/* the handle of a group answered by PRG is spent */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -EALREADY);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_INVALID);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* The PRG index is built lazily in slot order, which is not intake order
 * once slots are reused: it must still answer the oldest first, and when
 * built it takes new groups in order (O(1) from the tail). */
START_TEST(respond_prg_oldest_first_when_slots_are_reused)
{
	struct tctx t;
	uint64_t seq[8];

	setup_defer(&t, NULL);
	/* four groups of other keys, then free the first two slots */
	for (int i = 0; i < 4; i++)
		fk_trigger(t.f, 2, 0, (uint32_t)(100 + i), 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	/* same key three times: the first lands in slot 4, the later two in
	 * slots 1 and 0 (the free list is LIFO) */
	for (int i = 0; i < 3; i++) {
		if (i == 1)
			drive(t.ctx);
		seq[i] = fk_trigger(t.f, 1, 5, 7, 1, 0);
	}
	drive(t.ctx);
	/* the index is built now, in slot order */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 5, 7, IOPF_CODE_SUCCESS), 0);
		iopf_ctx_flush(t.ctx);
		for (int j = 0; j < 3; j++) /* the oldest went first */
			ck_assert_int_eq(answer_of(t.f, seq[j]),
					 j <= i ? IOPF_CODE_SUCCESS : -1);
	}
	/* with the index built, new groups of a key join it in order */
	for (int i = 0; i < 3; i++)
		seq[i] = fk_trigger(t.f, 1, 5, 8, 1, 0);
	drive(t.ctx);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 5, 8, IOPF_CODE_INVALID), 0);
		iopf_ctx_flush(t.ctx);
		ck_assert_int_eq(answer_of(t.f, seq[i]), IOPF_CODE_INVALID);
	}
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 5, 8, IOPF_CODE_INVALID), -ENOENT);
	tctx_fini(&t);
}
END_TEST

START_TEST(detach_refuses_later_answers_without_write)
{
	struct tctx t;

	setup_defer(&t, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 2, 0, 2, 1, 0);
	drive(t.ctx);
	fk_detach(t.f, 1);
	ck_assert_int_eq(iopf_source_detach(t.src, 1, 0, IOPF_ALL_PASIDS), 1);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -ESHUTDOWN);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(fk_writes(t.f), 0);
	ck_assert_uint_eq(tstats(t.ctx).kernel_answered, 1);
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 0);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(unnoticed_detach_seen_through_cookie_reuse)
{
	struct tctx t;

	setup_defer(&t, NULL);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	fk_detach(t.f, 1);             /* nobody tells libiopf */
	fk_trigger(t.f, 2, 0, 2, 1, 0); /* gets cookie 1 again */
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).kernel_answered, 1);
	/* the old handle must not answer the new holder of cookie 1 */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_INVALID), -ESHUTDOWN);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), -1);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(close_answers_outstanding_and_refuses_later)
{
	struct tctx t;

	setup_defer(&t, NULL);
	for (int i = 0; i < 5; i++)
		fk_trigger(t.f, 1, 0, (uint32_t)i, 1, 0);
	drive(t.ctx);
	iopf_source_close(t.src);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -ESHUTDOWN);
	for (int i = 1; i <= 5; i++)
		ck_assert_int_eq(answer_of(t.f, (uint64_t)i), IOPF_CODE_INVALID);
	ck_assert_uint_eq(fk_writes(t.f), 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(ctx_free_answers_everything)
{
	struct tctx t;

	setup_defer(&t, NULL);
	for (int i = 0; i < 5; i++)
		fk_trigger(t.f, 1, 0, (uint32_t)i, 1, 0);
	drive(t.ctx);
	fk_trigger(t.f, 1, 0, 9, 1, 0); /* still in the kernel queue: its */
	iopf_ctx_free(t.ctx);           /* answer is the kernel's business */
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	for (int i = 1; i <= 5; i++)
		ck_assert_int_eq(answer_of(t.f, (uint64_t)i), IOPF_CODE_INVALID);
	fk_fault_free(t.f);
}
END_TEST

START_TEST(deadline_answers_invalid_then_etimedout)
{
	IOPF_OPTS(iopf_ctx_opts, o, .deadline_ms = 30);
	struct tctx t;
	struct pollfd p;

	setup_defer(&t, &o);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	/* the context fd becomes readable when the deadline passes */
	p = (struct pollfd){ .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	drive(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	ck_assert_uint_eq(tstats(t.ctx).deadline_expired, 1);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -ETIMEDOUT);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* Deadlines are kept as handles in intake order (deadline.c): groups
 * answered before their time are skipped and dropped, however many
 * (the ring is compacted and grown past 64), and only the others expire,
 * oldest first, each answered once. */
static int h_every_third_deferred(struct iopf_group *g, void *ud)
{
	int *n = ud;

	return (*n)++ % 3 == 0 ? IOPF_DEFER : IOPF_CODE_SUCCESS;
}

START_TEST(deadline_skips_groups_answered_in_time)
{
	IOPF_OPTS(iopf_ctx_opts, o, .deadline_ms = 40);
	struct tctx t;
	int n = 0;

	tctx_init_opts(&t, &o, NULL);
	iopf_ctx_set_handler(t.ctx, h_every_third_deferred, &n);
	for (int round = 0; round < 6; round++) {
		for (uint32_t i = 0; i < 100; i++)
			fk_trigger(t.f, 1, 0, i, 1, 0);
		drive(t.ctx);
	}
	ck_assert_int_eq(n, 600);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 400);
	for (int i = 0; i < 400 && tstats(t.ctx).deadline_expired < 200; i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 20);
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_uint_eq(tstats(t.ctx).deadline_expired, 200);
	ck_assert_uint_eq(tstats(t.ctx).outstanding, 0);
	for (uint64_t seq = 1; seq <= 600; seq++)
		ck_assert_int_eq(answer_of(t.f, seq), (seq - 1) % 3 == 0 ?
				 IOPF_CODE_INVALID : IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(answer_invalid_answers_a_device_once_and_only_it)
{
	struct tctx t;

	setup_defer(&t, NULL);
	fk_trigger(t.f, 1, 5, 1, 1, 0);
	fk_trigger(t.f, 1, 6, 2, 1, 0);
	fk_trigger(t.f, 2, 5, 3, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(nhandles, 3); /* in turn by device: 1, 2, 1 */
	ck_assert_int_eq(iopf_ctx_answer_invalid(t.ctx, 1, 5, 0), 1);
	ck_assert_int_eq(iopf_ctx_answer_invalid(t.ctx, 1, 0, IOPF_ALL_PASIDS), 1);
	ck_assert_int_eq(iopf_ctx_answer_invalid(t.ctx, 1, 0, IOPF_ALL_PASIDS), 0);
	ck_assert_int_eq(iopf_ctx_answer_invalid(t.ctx, 1, 0, 99), -EINVAL);
	ck_assert_int_eq(iopf_ctx_answer_invalid(NULL, 1, 0, 0), -EINVAL);
	/* the guest's answers after its reset are refused */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -ESHUTDOWN);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 6, 2, IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	drive(t.ctx);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

Suite *suite_handles(void)
{
	Suite *s = suite_create("handles");
	TCase *tc = tcase_create("handles");

	tcase_add_test(tc, second_answer_is_ealready);
	tcase_add_test(tc, generation_wraps_through_zero);
	tcase_add_test(tc, stale_handle_cannot_reach_group_with_reused_cookie);
	tcase_add_test(tc, respond_prg_oldest_first_and_unknown_refused);
	tcase_add_test(tc, respond_prg_oldest_first_when_slots_are_reused);
	tcase_add_test(tc, detach_refuses_later_answers_without_write);
	tcase_add_test(tc, unnoticed_detach_seen_through_cookie_reuse);
	tcase_add_test(tc, close_answers_outstanding_and_refuses_later);
	tcase_add_test(tc, ctx_free_answers_everything);
	tcase_add_test(tc, deadline_answers_invalid_then_etimedout);
	tcase_add_test(tc, deadline_skips_groups_answered_in_time);
	tcase_add_test(tc, answer_invalid_answers_a_device_once_and_only_it);
	suite_add_tcase(s, tc);
	return s;
}
