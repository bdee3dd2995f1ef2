/* SPDX-License-Identifier: MIT */
/* test_veventq.c - vIOMMU event queues (6.15+) on the fake kernel, in its
 * 6.12 mode (no IOMMU_VEVENTQ_ALLOC) and its 6.15 mode. */
#include <limits.h>

#include "testutil.h"

#define SMMU IOPF_VEVENTQ_TYPE_ARM_SMMUV3

struct evlog {
	int n;
	struct iopf_vevent ev[64];
	uint32_t first_word[64];   /* the payload's first 32 bits */
	struct iopf_source *close_at_first; /* close from the callback */
};

static void on_ev(const struct iopf_vevent *ev, void *ud)
{
	struct evlog *l = ud;

	ck_assert_int_lt(l->n, 64);
	l->ev[l->n] = *ev;
	l->first_word[l->n] = 0;
	if (ev->data)
		memcpy(&l->first_word[l->n], ev->data, sizeof(uint32_t));
	l->ev[l->n].data = NULL; /* valid during the call only */
	l->n++;
	if (l->close_at_first) {
		iopf_source_close(l->close_at_first);
		l->close_at_first = NULL;
	}
}

/* An SMMUv3 event record whose first word is w. */
static void report(struct fk_veventq *q, uint32_t w)
{
	uint64_t evt[4] = { w, 0, 0, 0 };

	ck_assert_int_eq(fk_veventq_report(q, evt, sizeof(evt)), 0);
}

struct vctx {
	struct iopf_ctx *ctx;
	int iommufd;
	struct iopf_source *src;
	struct fk_veventq *q;
	struct evlog log;
};

/* Allocate through the ioctl on a fake iommufd in the given mode.
 * Returns false (errno set) when the kernel has no vEVENTQs. */
static bool vctx_alloc(struct vctx *v, enum fake_kernel_mode mode,
		       uint32_t depth, const struct iopf_veventq_opts *o)
{
	uint32_t id = 0;

	memset(v, 0, sizeof(*v));
	fk_install();
	v->ctx = iopf_ctx_new(NULL);
	ck_assert_ptr_nonnull(v->ctx);
	v->iommufd = fk_iommufd_open();
	fake_kernel_set_mode(v->iommufd, mode);
	v->src = iopf_veventq_alloc(v->ctx, v->iommufd, 7, SMMU, depth, o, &id,
				    on_ev, &v->log);
	if (!v->src)
		return false;
	v->q = fk_veventq_find(7, SMMU);
	ck_assert_ptr_nonnull(v->q);
	ck_assert_uint_eq(id, fk_veventq_id(v->q));
	ck_assert_uint_eq(iopf_source_get_fault_id(v->src), id);
	ck_assert_int_eq(iopf_source_get_fd(v->src), fk_veventq_fd(v->q));
	return true;
}

static void vctx_fini(struct vctx *v)
{
	iopf_ctx_free(v->ctx);
	fk_sys_close(v->iommufd);
	fk_veventq_free_all();
}

static const enum fake_kernel_mode modes[] = { FAKE_K_6_12, FAKE_K_6_15 };

START_TEST(alloc_needs_a_6_15_kernel)
{
	for (int m = 0; m < 2; m++) {
		struct vctx v;
		bool ok = vctx_alloc(&v, modes[m], 64, NULL);

		if (modes[m] == FAKE_K_6_12) {
			ck_assert(!ok);
			ck_assert_int_eq(errno, ENOTTY);
		} else {
			ck_assert(ok);
			/* one queue per type and vIOMMU; depth > 0 */
			ck_assert_ptr_null(iopf_veventq_alloc(v.ctx, v.iommufd, 7, SMMU,
							      8, NULL, NULL, on_ev, NULL));
			ck_assert_int_eq(errno, EEXIST);
		}
		ck_assert_ptr_null(iopf_veventq_alloc(v.ctx, v.iommufd, 7, SMMU, 0,
						      NULL, NULL, on_ev, NULL));
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_ptr_null(iopf_veventq_alloc(v.ctx, v.iommufd, 7, SMMU, 8,
						      NULL, NULL, NULL, NULL));
		ck_assert_int_eq(errno, EINVAL);
		/* a type whose payload size libiopf does not know */
		ck_assert_ptr_null(iopf_veventq_alloc(v.ctx, v.iommufd, 8, 77, 8,
						      NULL, NULL, on_ev, NULL));
		ck_assert_int_eq(errno, EINVAL);
		vctx_fini(&v);
	}
}
END_TEST

START_TEST(events_in_order_with_their_payload)
{
	struct vctx v;

	ck_assert(vctx_alloc(&v, FAKE_K_6_15, 64, NULL));
	for (uint32_t i = 0; i < 5; i++)
		report(v.q, 100 + i);
	ck_assert_int_eq(drive(v.ctx), 0); /* no groups, only events */
	ck_assert_int_eq(v.log.n, 5);
	for (int i = 0; i < 5; i++) {
		ck_assert_uint_eq(v.log.ev[i].sequence, (uint32_t)i);
		ck_assert_uint_eq(v.log.ev[i].flags, 0);
		ck_assert_uint_eq(v.log.ev[i].len, 32);
		ck_assert_uint_eq(v.log.ev[i].type, SMMU);
		ck_assert_uint_eq(v.log.ev[i].lost, 0);
		ck_assert_uint_eq(v.log.first_word[i], 100u + (uint32_t)i);
	}
	ck_assert_uint_eq(tstats(v.ctx).vevents, 5);
	ck_assert_uint_eq(tstats(v.ctx).vevents_lost, 0);
	ck_assert_uint_eq(tstats(v.ctx).vevents_malformed, 0);
	vctx_fini(&v);

	/* reads are sized by read_events: 59 events, 16 a read */
	IOPF_OPTS(iopf_veventq_opts, o, .read_events = 16);
	ck_assert(vctx_alloc(&v, FAKE_K_6_15, 64, &o));
	for (uint32_t i = 0; i < 59; i++)
		report(v.q, i);
	drive(v.ctx);
	ck_assert_int_eq(v.log.n, 59);
	ck_assert_uint_ge(fk_veventq_reads(v.q), 4);
	for (int i = 0; i < 59; i++) {
		ck_assert_uint_eq(v.log.ev[i].sequence, (uint32_t)i);
		ck_assert_uint_eq(v.log.first_word[i], (uint32_t)i);
	}
	vctx_fini(&v);
}
END_TEST

START_TEST(overflow_gives_a_lost_event_then_no_gap)
{
	struct vctx v;

	ck_assert(vctx_alloc(&v, FAKE_K_6_15, 4, NULL));
	for (uint32_t i = 0; i < 6; i++) /* seq 0..3 queued, 4 and 5 lost */
		report(v.q, i);
	drive(v.ctx);
	ck_assert_int_eq(v.log.n, 5);
	ck_assert_uint_eq(v.log.ev[3].sequence, 3);
	ck_assert_uint_eq(v.log.ev[4].flags, IOPF_VEVENT_LOST);
	ck_assert_uint_eq(v.log.ev[4].raw_flags, 1);
	ck_assert_uint_eq(v.log.ev[4].sequence, 5);
	ck_assert_uint_eq(v.log.ev[4].lost, 2);
	ck_assert_uint_eq(v.log.ev[4].len, 0);
	report(v.q, 6); /* seq 6: follows the lost header, no gap */
	drive(v.ctx);
	ck_assert_int_eq(v.log.n, 6);
	ck_assert_uint_eq(v.log.ev[5].sequence, 6);
	ck_assert_uint_eq(v.log.ev[5].flags, 0);
	ck_assert_uint_eq(tstats(v.ctx).vevents, 5);
	ck_assert_uint_eq(tstats(v.ctx).vevents_lost, 1);
	vctx_fini(&v);
}
END_TEST

START_TEST(gap_reported_when_the_lost_header_was_replaced)
{
	/* One event a read: the lost header at the tail is taken off again
	 * by the next event queued once room is made, before it is read:
	 * only the sequence numbers tell of the loss. */
	IOPF_OPTS(iopf_veventq_opts, o, .read_events = 1);
	struct vctx v;
	unsigned int n;
	bool lost;

	ck_assert(vctx_alloc(&v, FAKE_K_6_15, 2, &o));
	report(v.q, 0);
	report(v.q, 1);
	report(v.q, 2); /* lost: header seq 2 */
	fk_veventq_pending(v.q, &n, &lost);
	ck_assert_uint_eq(n, 2);
	ck_assert(lost);
	ck_assert_int_eq(iopf_ctx_dispatch(v.ctx), 0); /* reads seq 0 only */
	ck_assert_int_eq(v.log.n, 1);
	report(v.q, 3); /* seq 3: takes the header's place */
	fk_veventq_pending(v.q, &n, &lost);
	ck_assert(!lost);
	drive(v.ctx);
	ck_assert_int_eq(v.log.n, 3);
	ck_assert_uint_eq(v.log.ev[1].sequence, 1);
	ck_assert_uint_eq(v.log.ev[2].sequence, 3);
	ck_assert_uint_eq(v.log.ev[2].flags, IOPF_VEVENT_GAP);
	ck_assert_uint_eq(v.log.ev[2].lost, 1);
	ck_assert_uint_eq(v.log.first_word[2], 3);
	ck_assert_uint_eq(tstats(v.ctx).vevents_lost, 1);
	ck_assert_uint_eq(tstats(v.ctx).vevents, 3);
	vctx_fini(&v);
}
END_TEST

START_TEST(sequence_wraps_at_int_max_without_a_gap)
{
	struct vctx v;

	ck_assert(vctx_alloc(&v, FAKE_K_6_15, 8, NULL));
	fk_veventq_set_sequence(v.q, INT_MAX - 1);
	for (int i = 0; i < 4; i++)
		report(v.q, (uint32_t)i);
	drive(v.ctx);
	ck_assert_int_eq(v.log.n, 4);
	ck_assert_uint_eq(v.log.ev[0].sequence, INT_MAX - 1);
	ck_assert_uint_eq(v.log.ev[1].sequence, INT_MAX);
	ck_assert_uint_eq(v.log.ev[2].sequence, 0);
	ck_assert_uint_eq(v.log.ev[3].sequence, 1);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(v.log.ev[i].flags, 0);
	/* a loss across the wrap counts right */
	fk_veventq_set_sequence(v.q, INT_MAX); /* seq INT_MAX, 0 skipped: 1 lost */
	report(v.q, 9);
	fk_veventq_set_sequence(v.q, 1);
	report(v.q, 10);
	drive(v.ctx);
	ck_assert_uint_eq(v.log.ev[4].flags, IOPF_VEVENT_GAP);
	ck_assert_uint_eq(v.log.ev[4].lost, INT_MAX - 2); /* 2 .. INT_MAX-1 */
	ck_assert_uint_eq(v.log.ev[5].flags, IOPF_VEVENT_GAP);
	ck_assert_uint_eq(v.log.ev[5].lost, 1);       /* 0 */
	vctx_fini(&v);
}
END_TEST

START_TEST(fake_reads_whole_events_only)
{
	/* The fake as eventq.c: a read stops at the first event that does
	 * not fit (0 if none fits), a lost header needs only its 8 bytes,
	 * no writes, POLLIN while anything waits and never POLLOUT. */
	struct fk_veventq *q = fk_veventq_new(3, SMMU, 2);
	int fd = fk_veventq_fd(q);
	unsigned char buf[128];
	struct iopf_k_vevent_header h;
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	uint64_t evt[4] = { 0 };

	ck_assert_int_eq(fk_sys_poll(&p, 1, 0), 0);
	fk_veventq_report(q, evt, sizeof(evt));
	fk_veventq_report(q, evt, sizeof(evt));
	fk_veventq_report(q, evt, sizeof(evt)); /* lost */
	ck_assert_int_eq(fk_sys_poll(&p, 1, 0), 1);
	ck_assert_int_eq(p.revents, POLLIN);
	ck_assert_int_eq(fk_sys_read(fd, buf, 39), 0);
	ck_assert_int_eq(fk_sys_read(fd, buf, 79), 40);
	ck_assert_int_eq(fk_sys_read(fd, buf, 47), 40 + 0); /* header needs 8 */
	ck_assert_int_eq(fk_sys_read(fd, buf, 8), 8);
	memcpy(&h, buf, sizeof(h));
	ck_assert_uint_eq(h.flags, IOPF_K_VEVENTQ_FLAG_LOST_EVENTS);
	ck_assert_uint_eq(h.sequence, 2);
	ck_assert_int_eq(fk_sys_read(fd, buf, sizeof(buf)), 0);
	ck_assert_int_eq(fk_sys_poll(&p, 1, 0), 0);
	errno = 0;
	ck_assert_int_eq(fk_sys_write(fd, buf, 8), -1);
	ck_assert_int_eq(errno, EINVAL);
	fk_veventq_free(q);
}
END_TEST

START_TEST(wrong_payload_size_fails_the_source)
{
	/* Adopted with a payload smaller than the kernel's: an event that
	 * never fits the buffer; the source fails instead of spinning. */
	IOPF_OPTS(iopf_veventq_opts, o, .payload_len = 8, .read_events = 1);
	struct evlog l = { 0 };
	struct iopf_ctx *ctx;
	struct fk_veventq *q;
	struct iopf_source *src;

	fk_install();
	ctx = iopf_ctx_new(NULL);
	q = fk_veventq_new(3, SMMU, 8);
	src = iopf_veventq_adopt(ctx, fk_veventq_fd(q), fk_veventq_id(q), SMMU,
				 &o, on_ev, &l);
	ck_assert_ptr_nonnull(src);
	report(q, 1);
	ck_assert_int_eq(iopf_ctx_dispatch(ctx), -EIO);
	ck_assert_int_eq(l.n, 0);
	ck_assert_uint_eq(tstats(ctx).vevents_malformed, 1);
	ck_assert_uint_eq(tstats(ctx).source_errors, 1);
	ck_assert_int_ge(iopf_ctx_dispatch(ctx), 0); /* no spin, no repeat */
	iopf_source_close(src);
	iopf_ctx_free(ctx);
	fk_veventq_free(q);
}
END_TEST

START_TEST(adopt_and_close_from_the_callback)
{
	struct evlog l = { 0 };
	struct iopf_ctx *ctx;
	struct fk_veventq *q;
	struct iopf_source *src;
	IOPF_OPTS(iopf_veventq_opts, o, .flags = IOPF_VQ_CLOSE_FD);

	fk_install();
	ctx = iopf_ctx_new(NULL);
	q = fk_veventq_new(3, SMMU, 8);
	ck_assert_ptr_null(iopf_veventq_adopt(ctx, -1, 0, SMMU, NULL, on_ev, &l));
	ck_assert_ptr_null(iopf_veventq_adopt(ctx, fk_veventq_fd(q), 0, SMMU,
					      &(struct iopf_veventq_opts){
						      .sz = sizeof(o), .flags = 4 },
					      on_ev, &l));
	src = iopf_veventq_adopt(ctx, fk_veventq_fd(q), fk_veventq_id(q), SMMU,
				 &o, on_ev, &l);
	ck_assert_ptr_nonnull(src);
	/* not a producer, nothing to detach */
	ck_assert_int_eq(iopf_source_detach(src, 1, 0, 0), -EOPNOTSUPP);
	struct iopf_request rq = { .flags = IOPF_F_LAST_PAGE };
	ck_assert_int_eq(iopf_producer_submit(src, &rq), -EINVAL);
	report(q, 1);
	report(q, 2);
	report(q, 3);
	l.close_at_first = src;
	ck_assert_int_eq(iopf_ctx_dispatch(ctx), 0);
	ck_assert_int_eq(l.n, 1); /* closed by the first callback: no more */
	ck_assert_int_eq(fk_veventq_fd(q), -1); /* CLOSE_FD: closed */
	ck_assert_uint_eq(tstats(ctx).vevents, 3);
	iopf_ctx_free(ctx);
	fk_veventq_free(q);
}
END_TEST

struct redispatch {
	int rc;
	struct iopf_ctx *ctx;
};

static void on_ev_dispatch(const struct iopf_vevent *ev, void *ud)
{
	struct redispatch *r = ud;

	(void)ev;
	r->rc = iopf_ctx_dispatch(r->ctx);
}

START_TEST(callback_cannot_dispatch)
{
	struct redispatch s = { 1, NULL };
	struct fk_veventq *q;
	struct iopf_source *src;

	fk_install();
	s.ctx = iopf_ctx_new(NULL);
	q = fk_veventq_new(3, SMMU, 8);
	src = iopf_veventq_adopt(s.ctx, fk_veventq_fd(q), 0, SMMU, NULL,
				 on_ev_dispatch, &s);
	ck_assert_ptr_nonnull(src);
	report(q, 1);
	drive(s.ctx);
	ck_assert_int_eq(s.rc, -EDEADLK);
	iopf_ctx_free(s.ctx); /* closes src; the fd stays the caller's */
	ck_assert_int_ge(fk_veventq_fd(q), 0);
	fk_veventq_free(q);
}
END_TEST

START_TEST(fault_queue_and_vevents_in_one_round_both_modes)
{
	for (int m = 0; m < 2; m++) {
		struct vctx v;
		struct fk_fault *f;
		struct iopf_source *fq;
		int handled = 0;
		bool ok = vctx_alloc(&v, modes[m], 8, NULL);

		ck_assert(ok == (modes[m] == FAKE_K_6_15));
		f = fk_fault_new();
		fq = iopf_fault_queue_adopt(v.ctx, fk_fault_fd(f), fk_fault_id(f), NULL);
		ck_assert_ptr_nonnull(fq);
		iopf_ctx_set_handler(v.ctx, h_success, &handled);
		fk_trigger(f, 1, 0, 1, 1, 0x1000);
		if (ok)
			report(v.q, 42);
		ck_assert_int_eq(drive(v.ctx), 1);
		ck_assert_int_eq(handled, 1);
		ck_assert_int_eq(v.log.n, ok ? 1 : 0);
		/* drain waits for groups, not for events */
		if (ok)
			report(v.q, 43);
		ck_assert_int_eq(iopf_ctx_drain(v.ctx, 1, 0, IOPF_ALL_PASIDS, 1000), 0);
		assert_each_answered_once(f);
		vctx_fini(&v);
		fk_fault_free(f);
	}
}
END_TEST

Suite *suite_veventq(void)
{
	Suite *s = suite_create("veventq");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, alloc_needs_a_6_15_kernel);
	tcase_add_test(tc, events_in_order_with_their_payload);
	tcase_add_test(tc, overflow_gives_a_lost_event_then_no_gap);
	tcase_add_test(tc, gap_reported_when_the_lost_header_was_replaced);
	tcase_add_test(tc, sequence_wraps_at_int_max_without_a_gap);
	tcase_add_test(tc, fake_reads_whole_events_only);
	tcase_add_test(tc, wrong_payload_size_fails_the_source);
	tcase_add_test(tc, adopt_and_close_from_the_callback);
	tcase_add_test(tc, callback_cannot_dispatch);
	tcase_add_test(tc, fault_queue_and_vevents_in_one_round_both_modes);
	suite_add_tcase(s, tc);
	return s;
}
