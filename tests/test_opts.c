/* SPDX-License-Identifier: MIT */
/* test_opts.c - size-prefixed options: old and new callers both work. */
#include "testutil.h"

/* What a newer release's caller would pass: our struct plus a field. */
struct ctx_opts_v2 {
	struct iopf_ctx_opts v1;
	uint64_t future;
};

START_TEST(null_opts_mean_defaults)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_ge(iopf_ctx_get_fd(ctx), 0);
	iopf_ctx_free(ctx);
	iopf_ctx_free(NULL); /* NULL-safe */
	iopf_source_close(NULL);
}
END_TEST

START_TEST(macro_zeroes_and_sets_size)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 2);

	ck_assert_uint_eq(o.sz, sizeof(o));
	ck_assert_uint_eq(o.workers, 2);
	ck_assert_uint_eq(o.deadline_ms, 0);
	ck_assert_ptr_null(o.log_fn);
}
END_TEST

START_TEST(older_smaller_struct_works)
{
	/* A caller from before deadline_ms existed. */
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 0, .deadline_ms = 77);
	struct iopf_ctx *ctx;

	o.sz = offsetof(struct iopf_ctx_opts, deadline_ms);
	ctx = iopf_ctx_new(&o);
	ck_assert_ptr_nonnull(ctx);
	iopf_ctx_free(ctx);
}
END_TEST

START_TEST(newer_struct_zero_tail_ok_nonzero_einval)
{
	struct ctx_opts_v2 o;

	memset(&o, 0, sizeof(o));
	o.v1.sz = sizeof(o);
	struct iopf_ctx *ctx = iopf_ctx_new(&o.v1);
	ck_assert_ptr_nonnull(ctx);
	iopf_ctx_free(ctx);
	o.future = 1;
	errno = 0;
	ck_assert_ptr_null(iopf_ctx_new(&o.v1));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(bad_size_and_values_refused)
{
	IOPF_OPTS(iopf_ctx_opts, o);
	IOPF_OPTS(iopf_fault_queue_opts, fo, .flags = 1u << 7);
	struct iopf_ctx *ctx;

	o.sz = 3;
	errno = 0;
	ck_assert_ptr_null(iopf_ctx_new(&o));
	ck_assert_int_eq(errno, EINVAL);
	o.sz = sizeof(o);
	o.log_level = 9;
	ck_assert_ptr_null(iopf_ctx_new(&o));
	ctx = iopf_ctx_new(NULL);
	errno = 0;
	ck_assert_ptr_null(iopf_fault_queue_adopt(ctx, 0, 1, &fo));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(iopf_producer_new(ctx, NULL)); /* respond needed */
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(iopf_ctx_set_log(ctx, NULL, NULL, 8), -EINVAL);
	ck_assert_int_eq(iopf_ctx_get_fd(NULL), -EINVAL);
	ck_assert_int_eq(iopf_respond(NULL, 1, IOPF_CODE_SUCCESS), -EINVAL);
	ck_assert_int_eq(iopf_respond(ctx, 1, 2), -EINVAL);
	iopf_ctx_free(ctx);
}
END_TEST

START_TEST(stats_older_smaller_struct_gets_its_fields)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct iopf_stats st;

	memset(&st, 0xab, sizeof(st));
	st.sz = offsetof(struct iopf_stats, groups);
	ck_assert_int_eq(iopf_ctx_get_stats(ctx, &st), 0);
	ck_assert_uint_eq(st.records, 0);
	ck_assert_uint_eq(st.groups, 0xababababababababull); /* untouched */
	st.sz = 2;
	ck_assert_int_eq(iopf_ctx_get_stats(ctx, &st), -EINVAL);
	/* the header's version is the project's (CMakeLists.txt) */
	ck_assert_str_eq(iopf_version(), IOPF_PROJECT_VERSION);
	ck_assert_int_eq(IOPF_VERSION_MINOR, 3);
	iopf_ctx_free(ctx);
}
END_TEST

Suite *suite_opts(void)
{
	Suite *s = suite_create("opts");
	TCase *tc = tcase_create("opts");

	tcase_add_test(tc, null_opts_mean_defaults);
	tcase_add_test(tc, macro_zeroes_and_sets_size);
	tcase_add_test(tc, older_smaller_struct_works);
	tcase_add_test(tc, newer_struct_zero_tail_ok_nonzero_einval);
	tcase_add_test(tc, bad_size_and_values_refused);
	tcase_add_test(tc, stats_older_smaller_struct_gets_its_fields);
	suite_add_tcase(s, tc);
	return s;
}
