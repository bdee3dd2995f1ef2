/* SPDX-License-Identifier: MIT */
/* test_faultq.c - reading fault queues: delivery, grouping, growth,
 * validation of every record. */
#include "testutil.h"

struct seen {
	int groups;
	uint32_t dev, pasid, prgi, cookie;
	size_t n;
	struct iopf_record rec[8];
};

static int h_record(struct iopf_group *g, void *ud)
{
	struct seen *s = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	s->groups++;
	s->dev = iopf_group_dev_id(g);
	s->pasid = iopf_group_pasid(g);
	s->prgi = iopf_group_prgi(g);
	s->cookie = iopf_group_cookie(g);
	s->n = n;
	memcpy(s->rec, r, (n < 8 ? n : 8) * sizeof(*r));
	return IOPF_CODE_SUCCESS;
}

START_TEST(alloc_on_iommufd_returns_fault_id)
{
	struct iopf_ctx *ctx;
	struct iopf_source *src;
	uint32_t id = 0;
	int ifd;

	fk_install();
	ctx = iopf_ctx_new(NULL);
	ifd = fk_iommufd_open();
	src = iopf_fault_queue_alloc(ctx, ifd, NULL, &id);
	ck_assert_ptr_nonnull(src);
	ck_assert_uint_ne(id, 0);
	ck_assert_uint_eq(iopf_source_get_fault_id(src), id);
	ck_assert_ptr_nonnull(fk_fault_by_fd(iopf_source_get_fd(src)));
	/* a real fd that is no iommufd: the kernel's errno comes back */
	fk_uninstall();
	errno = 0;
	ck_assert_ptr_null(iopf_fault_queue_alloc(ctx, 0, NULL, &id));
	ck_assert_int_ne(errno, 0);
	iopf_ctx_free(ctx);
	close(ifd);
}
END_TEST

START_TEST(delivers_every_field)
{
	struct tctx t;
	struct seen s = { 0 };

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_record, &s);
	fk_trigger(t.f, 7, 42, 9, IOPF_PERM_READ | IOPF_PERM_WRITE, 0xabc000);
	ck_assert_int_eq(drive(t.ctx), 1);
	ck_assert_int_eq(s.groups, 1);
	ck_assert_uint_eq(s.dev, 7);
	ck_assert_uint_eq(s.pasid, 42);
	ck_assert_uint_eq(s.prgi, 9);
	ck_assert_uint_eq(s.cookie, 1);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(s.rec[0].addr, 0xabc000);
	ck_assert_uint_eq(s.rec[0].perm, IOPF_PERM_READ | IOPF_PERM_WRITE);
	ck_assert_uint_eq(s.rec[0].flags, IOPF_F_LAST_PAGE | IOPF_F_PASID_VALID);
	/* pasid 0 on the mock: no PASID_VALID, reported as IOPF_NO_PASID */
	fk_trigger(t.f, 7, 0, 3, 1, 0x1000);
	drive(t.ctx);
	ck_assert_uint_eq(s.pasid, IOPF_NO_PASID);
	assert_each_answered_once(t.f);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_SUCCESS);
	tctx_fini(&t);
}
END_TEST

START_TEST(multi_record_group_in_order)
{
	struct tctx t;
	struct seen s = { 0 };
	struct iopf_k_pgfault g[3];

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_record, &s);
	for (int i = 0; i < 3; i++)
		g[i] = (struct iopf_k_pgfault){ .dev_id = 1, .grpid = 4,
						.addr = 0x1000u * (i + 1) };
	g[2].flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE;
	fk_trigger_group(t.f, g, 3);
	drive(t.ctx);
	ck_assert_int_eq(s.groups, 1);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_uint_eq(s.rec[0].addr, 0x1000);
	ck_assert_uint_eq(s.rec[2].addr, 0x3000);
	ck_assert(s.rec[2].flags & IOPF_F_LAST_PAGE);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(many_groups_per_read)
{
	struct tctx t;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	trigger_groups(t.f, 1, 200);
	drive(t.ctx);
	ck_assert_int_eq(n, 200);
	ck_assert_uint_le(fk_reads(t.f), 2); /* 256-record buffer */
	ck_assert_uint_eq(fk_writes(t.f), 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A round reads until read_records groups are in, a short read, or 8
 * reads: 600 single-record groups come 256 a call (one read each: few
 * cookies outstanding in the kernel), 40 groups of 32 records all in one
 * call (5 full reads and the empty one). */
static struct iopf_stats sum_dispatch(struct tctx *t, int *calls)
{
	*calls = 0;
	while (fk_queued(t->f) && *calls < 100) {
		ck_assert_int_ge(iopf_ctx_dispatch(t->ctx), 0);
		(*calls)++;
	}
	return tstats(t->ctx);
}

START_TEST(reads_a_round_by_groups)
{
	struct tctx t;
	int n = 0, calls;
	struct iopf_stats st;
	struct iopf_k_pgfault g[32];

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	for (int i = 0; i < 600; i++)
		fk_trigger(t.f, 1, 0, (uint32_t)i % 512, 1, 0);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 256);
	ck_assert_uint_eq(tstats(t.ctx).read_calls, 1);
	st = sum_dispatch(&t, &calls);
	ck_assert_int_eq(n, 600);
	ck_assert_int_eq(calls, 2);
	ck_assert_uint_le(st.read_calls, 4);

	n = 0;
	for (int k = 0; k < 40; k++) {
		for (int i = 0; i < 32; i++)
			g[i] = (struct iopf_k_pgfault){ .dev_id = 2, .grpid = (uint32_t)k,
							.flags = i == 31 ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0 };
		fk_trigger_group(t.f, g, 32);
	}
	st = tstats(t.ctx);
	ck_assert_int_eq(iopf_ctx_dispatch(t.ctx), 40);
	ck_assert_uint_eq(tstats(t.ctx).read_calls - st.read_calls, 6);
	ck_assert_int_eq(n, 40);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static void grows_for(enum fk_small mode)
{
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = 2);
	struct tctx t;
	struct seen s = { 0 };
	struct iopf_k_pgfault g[7];

	tctx_init_opts(&t, NULL, &fo);
	fk_set_small(t.f, mode);
	iopf_ctx_set_handler(t.ctx, h_record, &s);
	for (int i = 0; i < 7; i++)
		g[i] = (struct iopf_k_pgfault){ .dev_id = 1, .grpid = 1 };
	g[6].flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE;
	fk_trigger_group(t.f, g, 7);
	drive(t.ctx);
	ck_assert_int_eq(s.groups, 1);
	ck_assert_uint_eq(s.n, 7);
	ck_assert_uint_eq(tstats(t.ctx).buffer_growths, 2); /* 2 → 4 → 8 */
	ck_assert_uint_eq(fk_queued(t.f), 0);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}

START_TEST(buffer_grows_on_einval)
{
	grows_for(FK_SMALL_EINVAL);
}
END_TEST

START_TEST(buffer_grows_on_zero_with_pollin)
{
	grows_for(FK_SMALL_ZERO);
}
END_TEST

START_TEST(group_beyond_cap_read_and_answered_invalid)
{
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = 1,
		  .max_read_records = 2);
	struct tctx t;
	int handled = 0;
	struct iopf_k_pgfault g[3] = { { .dev_id = 1 }, { .dev_id = 1 },
				       { .dev_id = 1,
					 .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE } };

	tctx_init_opts(&t, NULL, &fo);
	iopf_ctx_set_handler(t.ctx, h_success, &handled);
	fk_trigger_group(t.f, g, 3);
	fk_trigger(t.f, 2, 0, 1, 1, 0x1000);
	drive(t.ctx);
	/* the big one is read with a buffer of its own and answered INVALID;
	 * the queue goes on and the next group reaches its handler */
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	ck_assert_int_eq(handled, 1);
	ck_assert_uint_eq(tstats(t.ctx).oversized, 1);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, 1, 0, IOPF_ALL_PASIDS, 100), 0);
	struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* quiet: no spin */
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* Inject raw records and check the library answered each cookie INVALID. */
static void malformed_case(const struct iopf_k_pgfault *r, unsigned int n,
			   unsigned int want_malformed)
{
	struct tctx t;
	int handled = 0;
	size_t na;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &handled);
	fk_inject_raw(t.f, r, n);
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).malformed, want_malformed);
	ck_assert_uint_eq(fk_outstanding(t.f), 0); /* nothing left hanging */
	const struct fk_answer *a = fk_answers(t.f, &na);
	unsigned int invalid = 0;
	for (size_t i = 0; i < na; i++)
		invalid += a[i].code == IOPF_K_PAGE_RESP_INVALID;
	ck_assert_uint_eq(invalid, want_malformed);
	ck_assert_uint_eq(tstats(t.ctx).write_errors, 0);
	tctx_fini(&t);
}

START_TEST(unknown_flags_passed_to_handler)
{
	/* A newer kernel's flag bit is not a reason to fail the fault. */
	struct iopf_k_pgfault r = { .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE | 0x80,
				    .dev_id = 1, .cookie = 5 };
	struct tctx t;
	int handled = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &handled);
	fk_inject_raw(t.f, &r, 1);
	drive(t.ctx);
	ck_assert_int_eq(handled, 1);
	ck_assert_uint_eq(tstats(t.ctx).malformed, 0);
	ck_assert_uint_eq(tstats(t.ctx).unknown_flags, 1);
	ck_assert_uint_eq(tstats(t.ctx).answers_success, 1);
	ck_assert_uint_eq(fk_outstanding(t.f), 0);
	tctx_fini(&t);
}
END_TEST

START_TEST(malformed_group_without_last)
{
	struct iopf_k_pgfault r[2] = {
		{ .dev_id = 1, .cookie = 3 },
		{ .dev_id = 1, .cookie = 4, .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE },
	};

	/* cookie 3 never gets LAST: INVALID; cookie 4 is a fine group */
	malformed_case(r, 2, 1);
}
END_TEST

START_TEST(malformed_records_disagree_and_trailing)
{
	struct iopf_k_pgfault r[3] = {
		{ .dev_id = 1, .cookie = 3 },
		{ .dev_id = 2, .cookie = 3, .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE },
		{ .dev_id = 1, .cookie = 6 }, /* read ends inside a group */
	};

	malformed_case(r, 3, 2);
}
END_TEST

START_TEST(alloc_failure_answers_invalid)
{
	struct tctx t;
	int n = 0;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	iopf__fail_alloc_after(0); /* the first group's allocation fails */
	drive(t.ctx);
	iopf__fail_alloc_after(-1);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	ck_assert_uint_eq(tstats(t.ctx).alloc_failures, 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

Suite *suite_faultq(void)
{
	Suite *s = suite_create("faultq");
	TCase *tc = tcase_create("read");

	tcase_add_test(tc, alloc_on_iommufd_returns_fault_id);
	tcase_add_test(tc, delivers_every_field);
	tcase_add_test(tc, multi_record_group_in_order);
	tcase_add_test(tc, many_groups_per_read);
	tcase_add_test(tc, reads_a_round_by_groups);
	tcase_add_test(tc, buffer_grows_on_einval);
	tcase_add_test(tc, buffer_grows_on_zero_with_pollin);
	tcase_add_test(tc, group_beyond_cap_read_and_answered_invalid);
	tcase_add_test(tc, unknown_flags_passed_to_handler);
	tcase_add_test(tc, malformed_group_without_last);
	tcase_add_test(tc, malformed_records_disagree_and_trailing);
	tcase_add_test(tc, alloc_failure_answers_invalid);
	suite_add_tcase(s, tc);
	return s;
}
