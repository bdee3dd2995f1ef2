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

/*
 * The PRG index against a model of it: each key's outstanding groups in
 * intake order. Keys with PRG indexes the flows' arrays hold (PCIe's 9
 * bits) and beyond (SMMU stall tags), so many PASIDs that flows are
 * reused, answers by PRG index and by handle in random order, the index
 * turned on late, and allocations failing now and then. A group the
 * library answered INVALID for want of memory leaves the model; every
 * answer by PRG index must reach the oldest outstanding group of its key,
 * wherever its groups are kept (a flow's array, the table, the fallback
 * flow of groups taken in without memory for a flow).
 */
#define MG 1500
static struct mgrp {
	uint32_t dev, pasid, prgi;
	uint64_t seq;
	iopf_handle_t h;
	bool out;
} mg[MG];

static int h_model(struct iopf_group *g, void *ud)
{
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	(void)ud;
	mg[r[0].addr >> 12].h = iopf_group_handle(g);
	return IOPF_DEFER;
}

static uint64_t mrnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The model's answer to (dev, pasid, prgi): its oldest outstanding group,
 * or -1. */
static int model_oldest(int n, uint32_t dev, uint32_t pasid, uint32_t prgi)
{
	int best = -1;

	for (int i = 0; i < n; i++)
		if (mg[i].out && mg[i].dev == dev && mg[i].pasid == pasid &&
		    mg[i].prgi == prgi && (best < 0 || mg[i].seq < mg[best].seq))
			best = i;
	return best;
}

START_TEST(respond_prg_matches_a_model_of_each_key)
{
	static const uint32_t prgis[] = { 0, 1, 2, 63, 64, 65, 511, 512, 513, 4096, 65535 };
	uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(_i + 1);
	bool wide = _i % 2; /* PASIDs enough to have flows reused */
	int n = 0, nout = 0;
	struct tctx t;

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_model, NULL);
	memset(mg, 0, sizeof(mg));
	for (int step = 0; step < 6000 && n < MG; step++) {
		unsigned int op = (unsigned int)(mrnd(&r) % 10);

		if (op < 4 && nout < 300) { /* a group */
			struct mgrp *m = &mg[n];

			m->dev = 1 + (uint32_t)(mrnd(&r) % 3);
			m->pasid = wide ? (uint32_t)(mrnd(&r) % 1500) : (uint32_t)(mrnd(&r) % 3);
			m->prgi = prgis[mrnd(&r) % (sizeof(prgis) / sizeof(prgis[0]))];
			m->seq = fk_trigger(t.f, m->dev, m->pasid, m->prgi, 1,
					    (uint64_t)n << 12);
			m->out = true;
			n++;
			nout++;
			continue;
		}
		if (op == 9) { /* allocations fail while groups come in */
			iopf__fail_alloc_after((int)(mrnd(&r) % 8));
			drive(t.ctx);
			iopf__fail_alloc_after(-1);
			iopf_ctx_flush(t.ctx);
			for (int i = 0; i < n; i++) {
				int code = mg[i].out ? answer_of(t.f, mg[i].seq) : -1;

				if (code == -1)
					continue;
				ck_assert_int_eq(code, IOPF_CODE_INVALID);
				mg[i].out = false;
				nout--;
			}
			continue;
		}
		drive(t.ctx);
		if (!nout)
			continue;
		if (op == 6) { /* a guest's queue of answers: one call */
			struct iopf_prg_answer a[8];
			int res[8], want[8], na = 1 + (int)(mrnd(&r) % 8), got = 0;

			for (int j = 0; j < na; j++) {
				int pick = (int)(mrnd(&r) % (uint64_t)n);

				a[j] = (struct iopf_prg_answer){
					.dev_id = mg[pick].dev,
					.pasid = mg[pick].pasid ? mg[pick].pasid : IOPF_NO_PASID,
					.prgi = mrnd(&r) % 5 ? mg[pick].prgi : 7,
					.code = mrnd(&r) % 7 ? (int32_t)(mrnd(&r) % 2) : 9 };
				/* the model takes them one after the other */
				want[j] = a[j].code > 1 ? -1 :
					  model_oldest(n, a[j].dev_id,
						       a[j].pasid == IOPF_NO_PASID ? 0 : a[j].pasid,
						       a[j].prgi);
				if (want[j] >= 0) {
					mg[want[j]].out = false;
					nout--;
					got++;
				}
			}
			ck_assert_int_eq(iopf_respond_prg_many(t.ctx, a, (size_t)na, res), got);
			iopf_ctx_flush(t.ctx);
			for (int j = 0; j < na; j++) {
				ck_assert_int_eq(res[j], a[j].code > 1 ? -EINVAL :
							 want[j] < 0 ? -ENOENT : 0);
				if (want[j] >= 0)
					ck_assert_int_eq(answer_of(t.f, mg[want[j]].seq), a[j].code);
			}
		} else if (op < 8) { /* by PRG index: a key with groups, or any */
			int pick = (int)(mrnd(&r) % (uint64_t)n), want;
			uint32_t dev = mg[pick].dev, pasid = mg[pick].pasid, prgi = mg[pick].prgi;
			enum iopf_code code = mrnd(&r) % 2 ? IOPF_CODE_SUCCESS : IOPF_CODE_INVALID;

			if (op == 7)
				prgi = prgis[mrnd(&r) % (sizeof(prgis) / sizeof(prgis[0]))];
			want = model_oldest(n, dev, pasid, prgi);
			ck_assert_int_eq(iopf_respond_prg(t.ctx, dev, pasid ? pasid : IOPF_NO_PASID,
							  prgi, code),
					 want < 0 ? -ENOENT : 0);
			if (want < 0)
				continue;
			iopf_ctx_flush(t.ctx);
			ck_assert_msg(answer_of(t.f, mg[want].seq) == (int)code,
				      "seed %d step %d: dev %u pasid %u prgi %u: group %d not answered",
				      _i, step, dev, pasid, prgi, want);
			mg[want].out = false;
			nout--;
		} else { /* by handle */
			int i = (int)(mrnd(&r) % (uint64_t)n);

			while (!mg[i].out)
				i = (i + 1) % n;
			ck_assert_int_eq(iopf_respond(t.ctx, mg[i].h, IOPF_CODE_SUCCESS), 0);
			mg[i].out = false;
			nout--;
		}
	}
	drive(t.ctx);
	for (int i = 0; i < n; i++)
		if (mg[i].out)
			ck_assert_int_eq(iopf_respond(t.ctx, mg[i].h, IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A group taken in while memory for its flow ran short waits in the
 * fallback flow, with its key's later groups in the key's own flow: an
 * answer by PRG index still goes to the oldest, the index built before
 * (_i 1) or after (_i 0) it came. */
START_TEST(respond_prg_finds_groups_taken_in_without_a_flow)
{
	int fell_back = 0;

	for (int k = 0; k < 12; k++) {
		struct tctx t;
		uint64_t s1, s2;

		setup_defer(&t, NULL);
		if (_i)
			ck_assert_int_eq(iopf_respond_prg(t.ctx, 9, 9, 9, IOPF_CODE_SUCCESS), -ENOENT);
		s1 = fk_trigger(t.f, 2, 7, 40, 1, 0x1000);
		iopf__fail_alloc_after(k);
		drive(t.ctx);
		iopf__fail_alloc_after(-1);
		iopf_ctx_flush(t.ctx);
		if (answer_of(t.f, s1) != -1) { /* answered INVALID for want of memory */
			ck_assert_int_eq(answer_of(t.f, s1), IOPF_CODE_INVALID);
			tctx_fini(&t);
			continue;
		}
		fell_back += t.ctx->sched.fallback.refs > 1;
		s2 = fk_trigger(t.f, 2, 7, 40, 1, 0x2000);
		drive(t.ctx);
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 2, 7, 40, IOPF_CODE_INVALID), 0);
		iopf_ctx_flush(t.ctx);
		ck_assert_int_eq(answer_of(t.f, s1), IOPF_CODE_INVALID);
		ck_assert_int_eq(answer_of(t.f, s2), -1);
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 2, 7, 40, IOPF_CODE_SUCCESS), 0);
		ck_assert_int_eq(iopf_respond_prg(t.ctx, 2, 7, 40, IOPF_CODE_SUCCESS), -ENOENT);
		iopf_ctx_flush(t.ctx);
		ck_assert_int_eq(answer_of(t.f, s2), IOPF_CODE_SUCCESS);
		assert_each_answered_once(t.f);
		tctx_fini(&t);
	}
	ck_assert_int_gt(fell_back, 0); /* the case this test is for happened */
}
END_TEST

/* iopf_respond_prg_many(): each answer as iopf_respond_prg() would take
 * it, in order, results per answer; a key twice reaches its two oldest
 * groups; more answers than are ended at a time (64). */
static int h_defer_all(struct iopf_group *g, void *ud)
{
	(void)g;
	(void)ud;
	return IOPF_DEFER;
}

START_TEST(respond_prg_many_answers_as_calls_would)
{
	struct iopf_prg_answer a[200];
	int res[200];
	uint64_t seq[150];
	struct tctx t;
	IOPF_OPTS(iopf_stats, st);

	tctx_init(&t);
	iopf_ctx_set_handler(t.ctx, h_defer_all, NULL); /* more than handles[] holds */
	ck_assert_int_eq(iopf_respond_prg_many(NULL, a, 1, res), -EINVAL);
	ck_assert_int_eq(iopf_respond_prg_many(t.ctx, NULL, 1, res), -EINVAL);
	ck_assert_int_eq(iopf_respond_prg_many(t.ctx, NULL, 0, NULL), 0);
	for (int i = 0; i < 150; i++) /* keys 0..74 twice each */
		seq[i] = fk_trigger(t.f, 4, 3, (uint32_t)(i % 75) * 7, 1, 0);
	drive(t.ctx);
	for (int i = 0; i < 200; i++)
		a[i] = (struct iopf_prg_answer){ .dev_id = 4, .pasid = 3,
						 .prgi = (uint32_t)(i % 100) * 7,
						 .code = i % 3 ? IOPF_CODE_SUCCESS :
								 IOPF_CODE_INVALID };
	a[10].code = 5; /* refused alone */
	ck_assert_int_eq(iopf_respond_prg_many(t.ctx, a, 200, res), 149);
	iopf_ctx_flush(t.ctx);
	for (int i = 0; i < 200; i++) {
		int key = i % 100;

		ck_assert_int_eq(res[i], i == 10 ? -EINVAL : key >= 75 ? -ENOENT : 0);
	}
	/* the first answer of a key reached its oldest group, the second
	 * the next: i and i + 100 for keys below 75 */
	for (int k = 0; k < 75; k++) {
		if (k == 10) { /* its first answer was refused: 110 took the oldest */
			ck_assert_int_eq(answer_of(t.f, seq[k]), a[110].code);
			ck_assert_int_eq(answer_of(t.f, seq[k + 75]), -1);
			continue;
		}
		ck_assert_int_eq(answer_of(t.f, seq[k]), a[k].code);
		ck_assert_int_eq(answer_of(t.f, seq[k + 75]), a[k + 100].code);
	}
	ck_assert_int_eq(iopf_ctx_get_stats(t.ctx, &st), 0);
	ck_assert_uint_eq(st.unmatched_answers, 50);
	ck_assert_uint_eq(st.refused_answers, 51);
	/* the one left, by a call of one */
	a[0] = (struct iopf_prg_answer){ .dev_id = 4, .pasid = 3, .prgi = 70,
					 .code = IOPF_CODE_SUCCESS };
	ck_assert_int_eq(iopf_respond_prg_many(t.ctx, a, 1, NULL), 1);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
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
	trigger_groups(t.f, 1, 5);
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
	trigger_groups(t.f, 1, 5);
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
		trigger_groups(t.f, 1, 100);
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
	tcase_add_loop_test(tc, respond_prg_matches_a_model_of_each_key, 0, 8);
	tcase_add_loop_test(tc, respond_prg_finds_groups_taken_in_without_a_flow, 0, 2);
	tcase_add_test(tc, respond_prg_many_answers_as_calls_would);
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
