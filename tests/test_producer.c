/* SPDX-License-Identifier: MIT */
/* test_producer.c - one-at-a-time requests assembled into groups, as the
 * kernel's io-pgfault.c does. */
#include "testutil.h"

struct resp_log {
	int n;
	struct iopf_response r[64];
};

static void on_resp(const struct iopf_response *r, void *ud)
{
	struct resp_log *l = ud;

	l->r[l->n++] = *r;
}

struct got {
	int groups;
	size_t nrec;
	uint64_t addr[16];
	uint32_t flags;
};

static int h_got(struct iopf_group *g, void *ud)
{
	struct got *s = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	s->groups++;
	s->nrec = n;
	for (size_t i = 0; i < n && i < 16; i++)
		s->addr[i] = r[i].addr;
	s->flags = iopf_group_flags(g);
	return IOPF_CODE_SUCCESS;
}

static struct iopf_request req(uint32_t dev, uint32_t pasid, uint32_t prgi,
			       uint64_t addr, bool last)
{
	return (struct iopf_request){
		.flags = (last ? IOPF_F_LAST_PAGE : 0) |
			 (pasid != IOPF_NO_PASID ? IOPF_F_PASID_VALID : 0),
		.dev_id = dev, .pasid = pasid, .prgi = prgi,
		.perm = IOPF_PERM_READ, .addr = addr,
	};
}

static struct iopf_source *mk(struct iopf_ctx *ctx, struct resp_log *l,
			      unsigned int cap)
{
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = l,
		  .partial_cap = cap);
	struct iopf_source *p = iopf_producer_new(ctx, &po);

	ck_assert_ptr_nonnull(p);
	return p;
}

START_TEST(partials_held_until_last_interleaved)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct got g = { 0 };
	struct iopf_source *p = mk(ctx, &l, 0);
	struct iopf_request r;

	iopf_ctx_set_handler(ctx, h_got, &g);
	r = req(1, 5, 1, 0x1000, false);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 0);
	r = req(1, 5, 2, 0xa000, false); /* another group, interleaved */
	ck_assert_int_eq(iopf_producer_submit(p, &r), 0);
	r = req(1, 5, 1, 0x2000, false);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 0);
	ck_assert_uint_eq(tstats(ctx).partial_held, 3);
	ck_assert_int_eq(drive(ctx), 0);
	r = req(1, 5, 1, 0x3000, true);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 1);
	ck_assert_int_eq(drive(ctx), 1);
	ck_assert_int_eq(g.groups, 1);
	ck_assert_uint_eq(g.nrec, 3);
	ck_assert_uint_eq(g.addr[0], 0x1000);
	ck_assert_uint_eq(g.addr[1], 0x2000);
	ck_assert_uint_eq(g.addr[2], 0x3000);
	ck_assert_int_eq(l.n, 1);
	ck_assert_uint_eq(l.r[0].prgi, 1);
	ck_assert_uint_eq(l.r[0].pasid, 5);
	ck_assert_uint_eq(l.r[0].code, IOPF_CODE_SUCCESS);
	ck_assert_uint_eq(tstats(ctx).partial_held, 1);
	iopf_ctx_free(ctx);
	ck_assert_int_eq(l.n, 1); /* partial discarded: nothing to answer */
}
END_TEST

START_TEST(cap_drops_partials_never_last)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct got g = { 0 };
	struct iopf_source *p = mk(ctx, &l, 4);
	struct iopf_request r;

	iopf_ctx_set_handler(ctx, h_got, &g);
	for (int i = 0; i < 4; i++) {
		r = req(1, IOPF_NO_PASID, 7, 0x1000u * i, false);
		ck_assert_int_eq(iopf_producer_submit(p, &r), 0);
	}
	for (int i = 0; i < 1000; i++) { /* a flood */
		r = req(1, IOPF_NO_PASID, 7, 0x9000, false);
		ck_assert_int_eq(iopf_producer_submit(p, &r), -ENOSPC);
	}
	ck_assert_uint_eq(tstats(ctx).partial_held, 4);
	ck_assert_uint_eq(tstats(ctx).partial_dropped, 1000);
	/* another device has its own cap */
	r = req(2, IOPF_NO_PASID, 7, 0x1000, false);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 0);
	r = req(1, IOPF_NO_PASID, 7, 0x5000, true);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 1);
	drive(ctx);
	ck_assert_uint_eq(g.nrec, 5);
	ck_assert(g.flags & IOPF_GROUP_TRUNCATED);
	ck_assert_int_eq(l.n, 1);
	iopf_ctx_free(ctx);
}
END_TEST

START_TEST(discard_partial_and_flush_pasid)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct iopf_source *p = mk(ctx, &l, 0);
	struct iopf_request r;

	/* no handler set: groups would be answered INVALID on dispatch;
	 * we do not dispatch, they stay outstanding */
	r = req(1, 5, 1, 0, false);
	iopf_producer_submit(p, &r);
	r = req(2, 5, 1, 0, false);
	iopf_producer_submit(p, &r);
	ck_assert_int_eq(iopf_producer_discard_partial(p, 1, 0), 1);
	ck_assert_uint_eq(tstats(ctx).partial_held, 1);
	ck_assert_int_eq(iopf_producer_discard_partial(p, 0, IOPF_ALL_DEVICES), 1);
	ck_assert_uint_eq(tstats(ctx).partial_held, 0);

	r = req(3, 8, 1, 0, true);
	iopf_producer_submit(p, &r);
	r = req(3, 8, 2, 0, true);
	iopf_producer_submit(p, &r);
	r = req(3, 9, 1, 0, true);
	iopf_producer_submit(p, &r);
	r = req(3, 8, 3, 0, false);
	iopf_producer_submit(p, &r);
	ck_assert_int_eq(iopf_producer_flush_pasid(p, 3, 8), 2);
	ck_assert_int_eq(l.n, 2);
	ck_assert_uint_eq(l.r[0].code, IOPF_CODE_INVALID);
	ck_assert_uint_eq(tstats(ctx).partial_held, 0);
	ck_assert_uint_eq(tstats(ctx).outstanding, 1);
	iopf_source_close(p); /* answers the PASID 9 group */
	ck_assert_int_eq(l.n, 3);
	ck_assert_uint_eq(l.r[2].pasid, 9);
	iopf_ctx_free(ctx);
}
END_TEST

START_TEST(bad_requests_refused)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct iopf_source *p = mk(ctx, &l, 0);
	struct iopf_request r = req(1, 1, 1, 0, true);

	r.reserved = 1;
	ck_assert_int_eq(iopf_producer_submit(p, &r), -EINVAL);
	r = req(1, 1, 1, 0, true);
	r.flags |= IOPF_F_PASID_VALID;
	r.pasid = IOPF_NO_PASID;
	ck_assert_int_eq(iopf_producer_submit(p, &r), -EINVAL);
	ck_assert_int_eq(iopf_producer_submit(NULL, &r), -EINVAL);
	/* unknown flag bits are passed on since 1.3: test_record.c */
	ck_assert_int_eq(l.n, 0);
	iopf_ctx_free(ctx);
}
END_TEST

START_TEST(alloc_failure_answers_through_respond)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct iopf_source *p = mk(ctx, &l, 0);
	struct iopf_request r = req(1, 2, 3, 0, true);

	iopf__fail_alloc_after(0);
	ck_assert_int_eq(iopf_producer_submit(p, &r), -ENOMEM);
	iopf__fail_alloc_after(-1);
	ck_assert_int_eq(l.n, 1);
	ck_assert_uint_eq(l.r[0].code, IOPF_CODE_INVALID);
	ck_assert_uint_eq(l.r[0].prgi, 3);
	ck_assert_uint_eq(tstats(ctx).alloc_failures, 1);
	iopf_ctx_free(ctx);
}
END_TEST

/* Group gid of GROW_SIZE(gid) records, record k at gid << 32 | k << 12. */
#define GROW_GROUPS 48
#define GROW_SIZE(gid) ((gid) % 40 + 1)

struct grown {
	int groups, bad;
};

static int h_grown(struct iopf_group *g, void *ud)
{
	struct grown *s = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);
	uint64_t gid = r[0].addr >> 32;

	s->groups++;
	if (n != GROW_SIZE(gid) || iopf_group_flags(g))
		s->bad++;
	for (size_t k = 0; k < n; k++)
		if (r[k].addr != (gid << 32 | k << 12) ||
		    !(r[k].flags & IOPF_F_LAST_PAGE) != (k + 1 < n))
			s->bad++;
	return IOPF_CODE_SUCCESS;
}

/* Partial records are held in blocks that grow (4, 4, 8, 16, ...) while
 * the table of partial groups grows too: every group comes out whole, in
 * arrival order, however many records and groups are interleaved. */
START_TEST(records_kept_in_order_as_groups_grow)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct grown g = { 0 };
	struct iopf_source *p = mk(ctx, &l, 4096);
	struct iopf_request r;

	iopf_ctx_set_handler(ctx, h_grown, &g);
	for (uint64_t k = 0; k < GROW_SIZE(39); k++)
		for (uint64_t gid = 0; gid < GROW_GROUPS; gid++) {
			if (k >= GROW_SIZE(gid))
				continue;
			r = req(1 + gid % 3, gid % 2, (uint32_t)gid,
				gid << 32 | k << 12, k + 1 == GROW_SIZE(gid));
			ck_assert_int_eq(iopf_producer_submit(p, &r),
					 k + 1 == GROW_SIZE(gid));
		}
	drive(ctx);
	ck_assert_int_eq(g.groups, GROW_GROUPS);
	ck_assert_int_eq(g.bad, 0);
	ck_assert_int_eq(l.n, GROW_GROUPS);
	ck_assert_uint_eq(tstats(ctx).partial_held, 0);
	ck_assert_uint_eq(tstats(ctx).partial_dropped, 0);
	iopf_ctx_free(ctx);
}
END_TEST

/* No memory for a new block: that record is dropped and counted, the
 * group is held on and comes out TRUNCATED with the others in order. */
START_TEST(block_alloc_failure_drops_one_record)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct got g = { 0 };
	struct iopf_source *p = mk(ctx, &l, 0);
	struct iopf_request r;

	iopf_ctx_set_handler(ctx, h_got, &g);
	for (uint64_t k = 0; k < 10; k++) {
		r = req(1, 2, 3, 0x1000 * k, k == 9);
		if (k == 4) /* the first block (4 records) is full */
			iopf__fail_alloc_after(0);
		ck_assert_int_eq(iopf_producer_submit(p, &r),
				 k == 4 ? -ENOMEM : k == 9);
		iopf__fail_alloc_after(-1);
	}
	ck_assert_uint_eq(tstats(ctx).partial_dropped, 1);
	drive(ctx);
	ck_assert_int_eq(g.groups, 1);
	ck_assert_uint_eq(g.nrec, 9);
	for (uint64_t k = 0; k < 9; k++)
		ck_assert_uint_eq(g.addr[k], 0x1000 * (k < 4 ? k : k + 1));
	ck_assert(g.flags & IOPF_GROUP_TRUNCATED);
	ck_assert_int_eq(l.n, 1);
	/* none for its first record: nothing held, the group is one record */
	iopf__fail_alloc_after(0);
	r = req(1, 2, 4, 0x1000, false);
	ck_assert_int_eq(iopf_producer_submit(p, &r), -ENOMEM);
	iopf__fail_alloc_after(-1);
	ck_assert_uint_eq(tstats(ctx).partial_held, 0);
	r = req(1, 2, 4, 0x2000, true);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 1);
	drive(ctx);
	ck_assert_int_eq(g.groups, 2);
	ck_assert_uint_eq(g.nrec, 1);
	ck_assert_uint_eq(g.addr[0], 0x2000);
	ck_assert(g.flags & IOPF_GROUP_TRUNCATED);
	ck_assert_int_eq(l.n, 2);
	iopf_ctx_free(ctx);
}
END_TEST

START_TEST(deferred_producer_answer_by_handle)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	struct iopf_source *p = mk(ctx, &l, 0);
	struct iopf_request r = req(1, IOPF_NO_PASID, 3, 0, true);

	iopf_producer_submit(p, &r);
	ck_assert_int_eq(iopf_respond_prg(ctx, 1, IOPF_NO_PASID, 3, IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(l.n, 1);
	ck_assert_uint_eq(l.r[0].pasid, IOPF_NO_PASID);
	drive(ctx); /* the queued group was answered: no handler call */
	ck_assert_int_eq(l.n, 1);
	ck_assert_uint_eq(tstats(ctx).no_handler, 0);
	iopf_ctx_free(ctx);
}
END_TEST

static int resp_destroyed;
static int answers_at_destroy;

static void on_resp_destroy(void *ud)
{
	resp_destroyed++;
	answers_at_destroy = ((struct resp_log *)ud)->n;
}

static int h_defer_p(struct iopf_group *g, void *ud)
{
	(void)g;
	(void)ud;
	return IOPF_DEFER;
}

/* since 1.3: the respond userdata's destroy, once, after the last answer */
START_TEST(respond_destroy_after_the_last_answer)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct resp_log l = { 0 };
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = &l,
		  .destroy = on_resp_destroy);
	struct iopf_source *p = iopf_producer_new(ctx, &po);
	struct iopf_request r = req(1, IOPF_NO_PASID, 3, 0, true);

	resp_destroyed = answers_at_destroy = 0;
	ck_assert_ptr_nonnull(p);
	iopf_ctx_set_handler(ctx, h_defer_p, NULL);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 1);
	drive(ctx); /* deferred: outstanding */
	ck_assert_int_eq(resp_destroyed, 0);
	iopf_source_close(p); /* answers it INVALID through respond */
	ck_assert_int_eq(l.n, 1);
	ck_assert_int_eq(resp_destroyed, 1);
	ck_assert_int_eq(answers_at_destroy, 1); /* after the last answer */
	iopf_ctx_free(ctx);
	ck_assert_int_eq(resp_destroyed, 1);

	/* a producer still open when its context is freed */
	ctx = iopf_ctx_new(NULL);
	l.n = 0;
	p = iopf_producer_new(ctx, &po);
	iopf_ctx_set_handler(ctx, h_defer_p, NULL);
	ck_assert_int_eq(iopf_producer_submit(p, &r), 1);
	drive(ctx);
	iopf_ctx_free(ctx);
	ck_assert_int_eq(l.n, 1);
	ck_assert_int_eq(resp_destroyed, 2);
	ck_assert_int_eq(answers_at_destroy, 1);
}
END_TEST

Suite *suite_producer(void)
{
	Suite *s = suite_create("producer");
	TCase *tc = tcase_create("producer");

	tcase_add_test(tc, partials_held_until_last_interleaved);
	tcase_add_test(tc, cap_drops_partials_never_last);
	tcase_add_test(tc, discard_partial_and_flush_pasid);
	tcase_add_test(tc, bad_requests_refused);
	tcase_add_test(tc, alloc_failure_answers_through_respond);
	tcase_add_test(tc, records_kept_in_order_as_groups_grow);
	tcase_add_test(tc, block_alloc_failure_drops_one_record);
	tcase_add_test(tc, deferred_producer_answer_by_handle);
	tcase_add_test(tc, respond_destroy_after_the_last_answer);
	suite_add_tcase(s, tc);
	return s;
}
