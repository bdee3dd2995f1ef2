/* SPDX-License-Identifier: MIT */
/* test_record.c - the whole record (iopf_group_record_info()) and guest
 * answers that match without PASID (iopf_ctx_set_device_flags()). */
#include <time.h>

#include "testutil.h"

/* ---- the whole record ---- */

static void on_resp(const struct iopf_response *rr, void *ud)
{
	(void)rr;
	(*(int *)ud)++;
}

struct seen {
	int groups;
	size_t n;
	struct iopf_record_info ri[4];
	int rc_range, rc_small;
	struct iopf_record_info old;  /* read with a smaller sz */
	unsigned char big[sizeof(struct iopf_record_info) + 16];
};

static int h_info(struct iopf_group *g, void *ud)
{
	struct seen *s = ud;
	struct iopf_record_info *big = (void *)s->big;

	iopf_group_records(g, &s->n);
	for (size_t i = 0; i < s->n && i < 4; i++) {
		s->ri[i] = (struct iopf_record_info){ .sz = sizeof(s->ri[i]) };
		ck_assert_int_eq(iopf_group_record_info(g, i, &s->ri[i]), 0);
	}
	s->rc_range = iopf_group_record_info(g, s->n, &s->ri[0]);
	s->old = (struct iopf_record_info){ .sz = offsetof(struct iopf_record_info, perm) };
	ck_assert_int_eq(iopf_group_record_info(g, 0, &s->old), 0);
	memset(s->big, 0xee, sizeof(s->big));
	big->sz = sizeof(s->big);
	ck_assert_int_eq(iopf_group_record_info(g, 0, big), 0);
	struct iopf_record_info tiny = { .sz = sizeof(size_t) };
	s->rc_small = iopf_group_record_info(g, 0, &tiny);
	s->groups++;
	return IOPF_CODE_SUCCESS;
}

START_TEST(record_info_gives_every_kernel_field)
{
	struct iopf_k_pgfault r = {
		.flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE |
			 IOPF_K_PGFAULT_FLAGS_PASID_VALID | 0x80,
		.dev_id = 4, .pasid = 7, .grpid = 33,
		.perm = IOPF_PERM_READ | IOPF_PERM_WRITE | 0x40,
		.reserved = 0x5a5a, /* offset 20: reserved since 6.14, ignored */
		.addr = 0xdead000, .length = 0x2000, .cookie = 9 };
	struct seen s = { 0 };
	struct tctx t;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_info, &s);
	fk_inject_raw(t.f, &r, 1);
	drive(t.ctx);
	ck_assert_int_eq(s.groups, 1);
	ck_assert_uint_eq(s.ri[0].flags, r.flags); /* unknown bit kept */
	ck_assert_uint_eq(s.ri[0].dev_id, 4);
	ck_assert_uint_eq(s.ri[0].pasid, 7);
	ck_assert_uint_eq(s.ri[0].prgi, 33);
	ck_assert_uint_eq(s.ri[0].perm, IOPF_PERM_READ | IOPF_PERM_WRITE);
	ck_assert_uint_eq(s.ri[0].raw_perm, r.perm);
	ck_assert_uint_eq(s.ri[0].length, 0x2000);
	ck_assert_uint_eq(s.ri[0].addr, 0xdead000);
	ck_assert_uint_eq(s.ri[0].cookie, 9);
	ck_assert_int_eq(s.rc_range, -ERANGE);
	ck_assert_int_eq(s.rc_small, -EINVAL);
	/* an older caller's smaller struct: its fields, nothing past them */
	ck_assert_uint_eq(s.old.prgi, 33);
	ck_assert_uint_eq(s.old.sz, offsetof(struct iopf_record_info, perm));
	ck_assert_uint_eq(s.old.perm, 0);
	/* a newer caller's larger struct: the unknown tail zeroed */
	for (size_t i = sizeof(struct iopf_record_info); i < sizeof(s.big); i++)
		ck_assert_uint_eq(s.big[i], 0);
	ck_assert_uint_eq(((struct iopf_record_info *)s.big)->length, 0x2000);
	ck_assert_uint_eq(tstats(t.ctx).unknown_flags, 1);
	ck_assert_uint_eq(tstats(t.ctx).malformed, 0);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 1);
	ck_assert_int_eq(iopf_group_record_info(NULL, 0, &s.ri[0]), -EINVAL);
	tctx_fini(&t);
}
END_TEST

START_TEST(record_lengths_per_record_and_zero_on_slot_reuse)
{
	/* Three records (stored out of line), each its own length; the
	 * slot then serves a producer group, whose records have none. */
	struct iopf_k_pgfault r[3];
	struct seen s = { 0 };
	struct tctx t;

	for (int i = 0; i < 3; i++)
		r[i] = (struct iopf_k_pgfault){
			.flags = i == 2 ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0,
			.dev_id = 1, .grpid = 2, .perm = IOPF_PERM_READ,
			.addr = 0x1000u * (unsigned)(i + 1),
			.length = 0x100u * (unsigned)(i + 1), .cookie = 3 };
	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_info, &s);
	fk_inject_raw(t.f, r, 3);
	drive(t.ctx);
	ck_assert_int_eq(s.groups, 1);
	ck_assert_uint_eq(s.n, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(s.ri[i].length, 0x100u * (unsigned)(i + 1));
		ck_assert_uint_eq(s.ri[i].addr, 0x1000u * (unsigned)(i + 1));
		ck_assert_uint_eq(s.ri[i].pasid, IOPF_NO_PASID);
	}
	ck_assert_int_eq(s.rc_range, -ERANGE);

	int responded = 0;
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp,
		  .userdata = &responded);
	struct iopf_source *p = iopf_producer_new(t.ctx, &po);

	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 3; i++) {
		struct iopf_request q = { .flags = i == 2 ? IOPF_F_LAST_PAGE : 0,
					  .dev_id = 1, .prgi = 5,
					  .perm = IOPF_PERM_WRITE,
					  .addr = 0x9000u + (unsigned)i };

		ck_assert_int_ge(iopf_producer_submit(p, &q), 0);
	}
	drive(t.ctx);
	ck_assert_int_eq(s.groups, 2);
	ck_assert_uint_eq(s.n, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(s.ri[i].length, 0); /* no length in a request */
		ck_assert_uint_eq(s.ri[i].cookie, 0);
		ck_assert_uint_eq(s.ri[i].prgi, 5);
	}
	ck_assert_int_eq(responded, 1);
	tctx_fini(&t);
}
END_TEST

START_TEST(producer_unknown_flags_reach_the_handler)
{
	struct iopf_ctx *ctx;
	struct iopf_source *p;
	struct seen s = { 0 };
	int responded = 0;
	struct iopf_request q = { .flags = IOPF_F_LAST_PAGE | IOPF_F_PASID_VALID |
					  (1u << 9),
				  .dev_id = 2, .pasid = 3, .prgi = 4,
				  .perm = IOPF_PERM_READ | 0x100, .addr = 0x7000 };

	fk_install();
	ctx = iopf_ctx_new(NULL);
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = &responded);
	p = iopf_producer_new(ctx, &po);
	iopf_ctx_set_handler(ctx, h_info, &s);
	ck_assert_int_eq(iopf_producer_submit(p, &q), 1);
	drive(ctx);
	ck_assert_int_eq(s.groups, 1);
	ck_assert_uint_eq(s.ri[0].flags, q.flags);
	ck_assert_uint_eq(s.ri[0].raw_perm, q.perm);
	ck_assert_uint_eq(s.ri[0].perm, IOPF_PERM_READ);
	ck_assert_uint_eq(s.ri[0].pasid, 3);
	ck_assert_uint_eq(s.ri[0].length, 0);
	ck_assert_uint_eq(tstats(ctx).unknown_flags, 1);
	ck_assert_uint_eq(tstats(ctx).answers_success, 1);
	ck_assert_int_eq(responded, 1);
	iopf_ctx_free(ctx);
}
END_TEST

/* ---- guest answers without PASID ---- */

static iopf_handle_t hs[16];
static int nhs;

static int h_defer(struct iopf_group *g, void *ud)
{
	(void)ud;
	hs[nhs++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

static void setup(struct tctx *t, const struct iopf_ctx_opts *o)
{
	nhs = 0;
	tctx_init_opts(t, o, NULL);
	iopf_ctx_set_handler(t->ctx, h_defer, NULL);
}

START_TEST(pasidless_answer_matches_only_in_optional_mode)
{
	struct tctx t;

	setup(&t, NULL);
	fk_trigger(t.f, 1, 5, 3, 1, 0x1000); /* seq 1: PASID 5, PRGI 3 */
	drive(t.ctx);
	/* default: exact (device, PASID, PRG index) */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_uint_eq(tstats(t.ctx).unmatched_answers, 1);
	ck_assert_int_eq(iopf_ctx_set_device_flags(t.ctx, 1,
						   IOPF_DEV_PRG_PASID_OPTIONAL), 0);
	/* another device is not affected */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 2, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_uint_eq(tstats(t.ctx).unmatched_answers, 3);
	/* back to the default */
	fk_trigger(t.f, 1, 5, 3, 1, 0x2000); /* seq 2 */
	drive(t.ctx);
	ck_assert_int_eq(iopf_ctx_set_device_flags(t.ctx, 1, 0), 0);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 5, 3, IOPF_CODE_INVALID), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_INVALID);
	ck_assert_int_eq(iopf_ctx_set_device_flags(t.ctx, 1, 1u << 7), -EINVAL);
	ck_assert_int_eq(iopf_ctx_set_device_flags(NULL, 1, 0), -EINVAL);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(pasidless_answers_go_oldest_first_across_pasids)
{
	struct tctx t;

	setup(&t, NULL);
	ck_assert_int_eq(iopf_ctx_set_device_flags(t.ctx, 1,
						   IOPF_DEV_PRG_PASID_OPTIONAL), 0);
	fk_trigger(t.f, 1, 6, 3, 1, 0x1000); /* seq 1: PASID 6 */
	fk_trigger(t.f, 1, 0, 3, 1, 0x2000); /* seq 2: no PASID */
	fk_trigger(t.f, 1, 5, 3, 1, 0x3000); /* seq 3: PASID 5 */
	fk_trigger(t.f, 1, 5, 4, 1, 0x4000); /* seq 4: another PRGI */
	fk_trigger(t.f, 1, 5, 3, 1, 0x5000); /* seq 5: PASID 5 again */
	drive(t.ctx);
	/* an answer naming a PASID still matches exactly: seq 3 */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 5, 3, IOPF_CODE_INVALID), 0);
	/* one handled by handle: never a candidate again */
	ck_assert_int_eq(iopf_respond(t.ctx, hs[0], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), 0); /* seq 2 */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), 0); /* seq 5 */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 3,
					  IOPF_CODE_SUCCESS), -ENOENT);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, IOPF_NO_PASID, 4,
					  IOPF_CODE_SUCCESS), 0); /* seq 4 */
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 4), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(answer_of(t.f, 5), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The oldest group of a key ended otherwise (a deadline, an answer by
 * handle): a guest answer for the key goes to the next live one, with
 * the index built before and after, in both matching modes. */
static void check_fallback(bool index_first, bool optional)
{
	IOPF_OPTS(iopf_ctx_opts, o, .deadline_ms = 300);
	uint32_t pasid = optional ? IOPF_NO_PASID : 5;
	struct tctx t;

	setup(&t, &o);
	if (optional)
		iopf_ctx_set_device_flags(t.ctx, 1, IOPF_DEV_PRG_PASID_OPTIONAL);
	if (index_first) /* builds the PRG index now: groups join it at intake */
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 9, 9, 9, IOPF_CODE_SUCCESS),
				 -ENOENT);
	fk_trigger(t.f, 1, 5, 3, 1, 0x1000); /* seq 1: expires */
	fk_trigger(t.f, 1, 5, 3, 1, 0x2000); /* seq 2: answered by handle */
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond(t.ctx, hs[1], IOPF_CODE_SUCCESS), 0);
	for (int i = 0; i < 400 && !tstats(t.ctx).deadline_expired; i++) {
		sleep_ms(5);
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_uint_eq(tstats(t.ctx).deadline_expired, 1);
	fk_trigger(t.f, 1, 5, 3, 1, 0x3000); /* seq 3: the next live one */
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, pasid, 3, IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, pasid, 3, IOPF_CODE_SUCCESS),
			 -ENOENT);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID); /* deadline */
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}

START_TEST(answer_falls_back_to_next_live_group_of_key)
{
	check_fallback(false, false);
	check_fallback(true, false);
	check_fallback(false, true);
}
END_TEST

static int nlogged;

static void count_log(int level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	if (strstr(msg, "matches no outstanding group"))
		nlogged++;
}

START_TEST(unmatched_answers_logged_once_per_device)
{
	struct tctx t;

	setup(&t, NULL);
	nlogged = 0;
	iopf_ctx_set_log(t.ctx, count_log, NULL, 7);
	for (int i = 0; i < 3; i++)
		iopf_respond_prg(t.ctx, 1, 2, 3, IOPF_CODE_SUCCESS);
	ck_assert_int_eq(nlogged, 0); /* not asked for */
	iopf_ctx_set_device_flags(t.ctx, 1, IOPF_DEV_LOG_UNMATCHED);
	iopf_ctx_set_device_flags(t.ctx, 2, IOPF_DEV_LOG_UNMATCHED |
					   IOPF_DEV_PRG_PASID_OPTIONAL);
	for (int i = 0; i < 3; i++) {
		iopf_respond_prg(t.ctx, 1, 2, 3, IOPF_CODE_SUCCESS);
		iopf_respond_prg(t.ctx, 2, IOPF_NO_PASID, 3, IOPF_CODE_SUCCESS);
	}
	ck_assert_int_eq(nlogged, 2);
	ck_assert_uint_eq(tstats(t.ctx).unmatched_answers, 9);
	/* setting the flags again re-arms the message */
	iopf_ctx_set_device_flags(t.ctx, 1, IOPF_DEV_LOG_UNMATCHED);
	iopf_respond_prg(t.ctx, 1, 2, 3, IOPF_CODE_SUCCESS);
	ck_assert_int_eq(nlogged, 3);
	tctx_fini(&t);
}
END_TEST

Suite *suite_record(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, record_info_gives_every_kernel_field);
	tcase_add_test(tc, record_lengths_per_record_and_zero_on_slot_reuse);
	tcase_add_test(tc, producer_unknown_flags_reach_the_handler);
	tcase_add_test(tc, pasidless_answer_matches_only_in_optional_mode);
	tcase_add_test(tc, pasidless_answers_go_oldest_first_across_pasids);
	tcase_add_test(tc, answer_falls_back_to_next_live_group_of_key);
	tcase_add_test(tc, unmatched_answers_logged_once_per_device);
	suite_add_tcase(s, tc);
	return s;
}
