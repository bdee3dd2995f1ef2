/* SPDX-License-Identifier: MIT */
/* test_probe.c - iopf_probe() on the fake kernel as 6.12 and as 6.15, and
 * the closed_undetached count of fault queues closed before a detach. */
#include <fcntl.h>
#include <stdio.h>

#include "testutil.h"

static const uint64_t ALL_DEV = IOPF_PROBE_NESTED_FAULT |
				IOPF_PROBE_PAGING_FAULT | IOPF_PROBE_PASID_ATTACH;

/* Probe a fresh fake iommufd in mode m; every object made is gone. */
static struct iopf_probe_info probe(enum fake_kernel_mode m, bool with_dev, int *rc)
{
	IOPF_OPTS(iopf_probe_info, info);
	int ifd;
	uint32_t dev;

	fk_install();
	ifd = fk_iommufd_open();
	fake_kernel_set_mode(ifd, m);
	dev = with_dev ? fk_iommufd_add_device(ifd) : IOPF_NO_DEV;
	*rc = iopf_probe(ifd, dev, &info);
	ck_assert_uint_eq(fk_iommufd_objects(ifd), 0);
	fk_sys_close(ifd);
	return info;
}

START_TEST(probe_6_12)
{
	int rc;
	struct iopf_probe_info i = probe(FAKE_K_6_12, true, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(i.flags, IOPF_PROBE_FAULT_QUEUE | IOPF_PROBE_NESTED_FAULT);
	ck_assert_uint_eq(i.record_size, 40);
	ck_assert_uint_eq(i.response_size, 8);
}
END_TEST

START_TEST(probe_6_15)
{
	int rc;
	struct iopf_probe_info i = probe(FAKE_K_6_15, true, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(i.flags, IOPF_PROBE_FAULT_QUEUE | ALL_DEV |
					   IOPF_PROBE_VEVENTQ);
}
END_TEST

START_TEST(probe_without_device_skips_device_flags)
{
	int rc;
	struct iopf_probe_info i = probe(FAKE_K_6_15, false, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(i.flags, IOPF_PROBE_FAULT_QUEUE | IOPF_PROBE_VEVENTQ);
	i = probe(FAKE_K_6_12, false, &rc);
	ck_assert_uint_eq(i.flags, IOPF_PROBE_FAULT_QUEUE);
}
END_TEST

START_TEST(probe_errors)
{
	IOPF_OPTS(iopf_probe_info, info);
	struct iopf_probe_info small = { .sz = sizeof(size_t) };
	int ifd, fd;

	fk_install();
	ifd = fk_iommufd_open();
	ck_assert_int_eq(iopf_probe(ifd, IOPF_NO_DEV, NULL), -EINVAL);
	ck_assert_int_eq(iopf_probe(ifd, IOPF_NO_DEV, &small), -EINVAL);
	ck_assert_int_eq(iopf_probe(-1, IOPF_NO_DEV, &info), -EBADF);
	/* an unknown device: said, and nothing left behind */
	ck_assert_int_eq(iopf_probe(ifd, 4242, &info), -ENOENT);
	ck_assert_uint_eq(fk_iommufd_objects(ifd), 0);
	fk_sys_close(ifd);
	/* an fd that is no iommufd */
	fd = open("/dev/null", O_RDWR);
	ck_assert_int_eq(iopf_probe(fd, IOPF_NO_DEV, &info), -ENOTTY);
	close(fd);
	fd = open("/dev/null", O_RDWR);
	close(fd);
	ck_assert_int_eq(iopf_probe(fd, IOPF_NO_DEV, &info), -EBADF);
}
END_TEST

START_TEST(probe_fills_only_up_to_sz)
{
	struct {
		struct iopf_probe_info i;
		unsigned char guard[8];
	} b;
	int ifd;

	fk_install();
	ifd = fk_iommufd_open();
	memset(&b, 0xa5, sizeof(b));
	b.i.sz = offsetof(struct iopf_probe_info, record_size);
	ck_assert_int_eq(iopf_probe(ifd, IOPF_NO_DEV, &b.i), 0);
	ck_assert_uint_eq(b.i.flags, IOPF_PROBE_FAULT_QUEUE);
	ck_assert_uint_eq(b.i.record_size, 0xa5a5a5a5u); /* beyond sz */
	ck_assert_uint_eq(b.guard[0], 0xa5);
	fk_sys_close(ifd);
}
END_TEST

/* ---- closing a fault queue that a page table may still use ---- */

struct logs {
	int warnings;
	char last[256];
};

static void log_cb(int level, const char *msg, void *ud)
{
	struct logs *l = ud;

	if (level == 4 && strstr(msg, "no detach seen")) {
		l->warnings++;
		snprintf(l->last, sizeof(l->last), "%s", msg);
	}
}

static void undetached_setup(struct tctx *t, struct logs *l)
{
	IOPF_OPTS(iopf_ctx_opts, o, .log_fn = log_cb, .log_userdata = l);

	memset(l, 0, sizeof(*l));
	tctx_init_opts(t, &o, NULL);
	iopf_ctx_set_handler(t->ctx, h_success, NULL);
}

START_TEST(close_after_faults_without_detach_is_counted)
{
	struct tctx t;
	struct logs l;

	undetached_setup(&t, &l);
	fk_trigger(t.f, 3, 0, 1, IOPF_PERM_READ, 0x1000);
	ck_assert_int_eq(drive(t.ctx), 1);
	iopf_source_close(t.src);
	ck_assert_uint_eq(tstats(t.ctx).closed_undetached, 1);
	ck_assert_int_eq(l.warnings, 1);
	ck_assert_ptr_nonnull(strstr(l.last, "wait until they are detached"));
	tctx_fini(&t);
}
END_TEST

START_TEST(close_after_detach_is_not_counted)
{
	struct tctx t;
	struct logs l;

	undetached_setup(&t, &l);
	fk_trigger(t.f, 3, 0, 1, IOPF_PERM_READ, 0x1000);
	drive(t.ctx);
	fk_detach(t.f, 3);
	ck_assert_int_ge(iopf_source_detach(t.src, 3, 0, IOPF_ALL_PASIDS), 0);
	iopf_source_close(t.src);
	ck_assert_uint_eq(tstats(t.ctx).closed_undetached, 0);
	ck_assert_int_eq(l.warnings, 0);
	tctx_fini(&t);
}
END_TEST

START_TEST(close_of_idle_queue_is_not_counted)
{
	struct tctx t;
	struct logs l;

	undetached_setup(&t, &l);
	iopf_source_close(t.src);
	ck_assert_uint_eq(tstats(t.ctx).closed_undetached, 0);
	ck_assert_int_eq(l.warnings, 0);
	tctx_fini(&t);
}
END_TEST

START_TEST(ctx_free_warns_for_undetached_queue)
{
	struct tctx t;
	struct logs l;

	undetached_setup(&t, &l);
	fk_trigger(t.f, 3, 0, 1, IOPF_PERM_READ, 0x1000);
	drive(t.ctx);
	tctx_fini(&t); /* closes the queue: the one warning */
	ck_assert_int_eq(l.warnings, 1);
}
END_TEST

Suite *suite_probe(void)
{
	Suite *s = suite_create("probe");
	TCase *tc = tcase_create("probe");
	TCase *tu = tcase_create("undetached");

	tcase_add_test(tc, probe_6_12);
	tcase_add_test(tc, probe_6_15);
	tcase_add_test(tc, probe_without_device_skips_device_flags);
	tcase_add_test(tc, probe_errors);
	tcase_add_test(tc, probe_fills_only_up_to_sz);
	suite_add_tcase(s, tc);
	tcase_add_test(tu, close_after_faults_without_detach_is_counted);
	tcase_add_test(tu, close_after_detach_is_not_counted);
	tcase_add_test(tu, close_of_idle_queue_is_not_counted);
	tcase_add_test(tu, ctx_free_warns_for_undetached_queue);
	suite_add_tcase(s, tu);
	return s;
}
