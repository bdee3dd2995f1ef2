/* SPDX-License-Identifier: MIT */
/* test_fake.c - the fake kernel reproduces every fact of ABI-FACTS.md. */
#include "testutil.h"

#define REC sizeof(struct iopf_k_pgfault)
#define RESP sizeof(struct iopf_k_page_response)

static ssize_t rd(struct fk_fault *f, struct iopf_k_pgfault *b, size_t nrec)
{
	return fk_sys_read(fk_fault_fd(f), b, nrec * REC);
}

static ssize_t wr(struct fk_fault *f, const uint32_t *cc, size_t n)
{
	struct iopf_k_page_response r[16];

	for (size_t i = 0; i < n; i++) {
		r[i].cookie = cc[2 * i];
		r[i].code = cc[2 * i + 1];
	}
	return fk_sys_write(fk_fault_fd(f), r, n * RESP);
}

START_TEST(read_empty_is_zero_and_misaligned_is_espipe)
{
	struct fk_fault *f = fk_fault_new();
	struct iopf_k_pgfault b[4];

	ck_assert_int_eq(rd(f, b, 4), 0);
	errno = 0;
	ck_assert_int_eq(fk_sys_read(fk_fault_fd(f), b, REC + 1), -1);
	ck_assert_int_eq(errno, ESPIPE);
	errno = 0;
	ck_assert_int_eq(fk_sys_write(fk_fault_fd(f), b, RESP + 3), -1);
	ck_assert_int_eq(errno, ESPIPE);
	fk_fault_free(f);
}
END_TEST

START_TEST(whole_groups_one_cookie_last_flag)
{
	struct fk_fault *f = fk_fault_new();
	struct iopf_k_pgfault g[3] = {
		{ .dev_id = 1, .grpid = 5, .addr = 0x1000 },
		{ .dev_id = 1, .grpid = 5, .addr = 0x2000 },
		{ .dev_id = 1, .grpid = 5, .addr = 0x3000,
		  .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE },
	};
	struct iopf_k_pgfault b[8];

	fk_trigger_group(f, g, 3);
	fk_trigger(f, 2, 0, 1, 1, 0x9000);
	/* 4 records fit: the 3-record group, then the next 1-record one */
	ck_assert_int_eq(rd(f, b, 4), 4 * REC);
	ck_assert_uint_eq(b[0].cookie, 1);
	ck_assert_uint_eq(b[2].cookie, 1);
	ck_assert(b[2].flags & IOPF_K_PGFAULT_FLAGS_LAST_PAGE);
	ck_assert(!(b[0].flags & IOPF_K_PGFAULT_FLAGS_LAST_PAGE));
	ck_assert_uint_eq(b[3].cookie, 2);
	ck_assert_uint_eq(b[3].length, 0);
	fk_fault_free(f);
}
END_TEST

START_TEST(only_whole_groups_fit)
{
	struct fk_fault *f = fk_fault_new();
	struct iopf_k_pgfault g[2] = {
		{ .dev_id = 1 },
		{ .dev_id = 1, .flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE },
	};
	struct iopf_k_pgfault b[8];

	fk_trigger(f, 1, 0, 1, 1, 0);
	fk_trigger_group(f, g, 2);
	/* 2 records: the first group fits, the second does not: stop */
	ck_assert_int_eq(rd(f, b, 2), REC);
	/* 1 record for a 2-record group: EINVAL on 6.12 */
	errno = 0;
	ck_assert_int_eq(rd(f, b, 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	fk_set_small(f, FK_SMALL_ZERO);
	ck_assert_int_eq(rd(f, b, 1), 0);
	ck_assert_uint_eq(fk_queued(f), 1);
	ck_assert_int_eq(rd(f, b, 2), 2 * REC);
	fk_fault_free(f);
}
END_TEST

START_TEST(cookies_lowest_free_reused_at_once)
{
	struct fk_fault *f = fk_fault_new();
	struct iopf_k_pgfault b[8];
	uint32_t ans[] = { 2, 0 };

	for (int i = 0; i < 3; i++)
		fk_trigger(f, 1, 0, (uint32_t)i, 1, 0);
	ck_assert_int_eq(rd(f, b, 8), 3 * REC);
	ck_assert_uint_eq(b[0].cookie, 1);
	ck_assert_uint_eq(b[1].cookie, 2);
	ck_assert_uint_eq(b[2].cookie, 3);
	ck_assert_int_eq(wr(f, ans, 1), RESP);
	fk_trigger(f, 1, 0, 7, 1, 0);
	ck_assert_int_eq(rd(f, b, 8), REC);
	ck_assert_uint_eq(b[0].cookie, 2); /* the answered one, again */
	fk_fault_free(f);
}
END_TEST

START_TEST(write_stops_at_first_bad)
{
	struct fk_fault *f = fk_fault_new();
	struct iopf_k_pgfault b[8];
	uint32_t gbg[] = { 1, 0, 99, 0, 2, 0 };
	uint32_t bad_first[] = { 99, 0, 2, 0 };
	uint32_t code2[] = { 2, 2 };

	fk_trigger(f, 1, 0, 1, 1, 0);
	fk_trigger(f, 1, 0, 2, 1, 0);
	ck_assert_int_eq(rd(f, b, 8), 2 * REC);
	errno = 0;
	ck_assert_int_eq(wr(f, code2, 1), -1); /* no FAILURE code: EINVAL */
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wr(f, gbg, 3), RESP); /* [good, bad, good] → 8 */
	ck_assert_uint_eq(fk_outstanding(f), 1);
	errno = 0;
	ck_assert_int_eq(wr(f, bad_first, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(wr(f, bad_first + 2, 1), RESP);
	errno = 0;
	ck_assert_int_eq(wr(f, bad_first + 2, 1), -1); /* already answered */
	ck_assert_int_eq(errno, EINVAL);
	fk_fault_free(f);
}
END_TEST

START_TEST(poll_out_always_in_while_queued)
{
	struct fk_fault *f = fk_fault_new();
	struct pollfd p = { .fd = fk_fault_fd(f), .events = POLLIN | POLLOUT };
	struct iopf_k_pgfault b[2];

	ck_assert_int_eq(fk_sys_poll(&p, 1, 0), 1);
	ck_assert_int_eq(p.revents, POLLOUT);
	fk_trigger(f, 1, 0, 1, 1, 0);
	fk_sys_poll(&p, 1, 0);
	ck_assert_int_eq(p.revents, POLLOUT | POLLIN);
	/* the real fd mirrors it, for epoll */
	p.events = POLLIN;
	ck_assert_int_eq(poll(&p, 1, 0), 1);
	rd(f, b, 2);
	p.events = POLLIN | POLLOUT;
	fk_sys_poll(&p, 1, 0);
	ck_assert_int_eq(p.revents, POLLOUT);
	p.events = POLLIN;
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	fk_fault_free(f);
}
END_TEST

START_TEST(detach_auto_answers_queued_and_read)
{
	struct fk_fault *f = fk_fault_new();
	struct iopf_k_pgfault b[4];
	uint32_t ans[] = { 1, 0 };
	size_t n;

	fk_trigger(f, 1, 0, 1, 1, 0);
	ck_assert_int_eq(rd(f, b, 4), REC);
	fk_trigger(f, 1, 0, 2, 1, 0);
	fk_trigger(f, 2, 0, 3, 1, 0);
	ck_assert_uint_eq(fk_detach(f, 1), 2);
	const struct fk_answer *a = fk_answers(f, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert(a[0].automatic && a[0].code == IOPF_K_PAGE_RESP_INVALID);
	errno = 0;
	ck_assert_int_eq(wr(f, ans, 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(fk_queued(f), 1); /* dev 2's stays */
	fk_fault_free(f);
}
END_TEST

START_TEST(ioctl_alloc_on_fake_iommufd)
{
	int fd = fk_iommufd_open();
	struct iopf_k_fault_alloc cmd = { .size = sizeof(cmd) };

	ck_assert_int_eq(fk_sys_ioctl(fd, IOPF_K_FAULT_QUEUE_ALLOC, &cmd), 0);
	ck_assert_uint_ne(cmd.out_fault_id, 0);
	ck_assert_ptr_nonnull(fk_fault_by_fd((int)cmd.out_fault_fd));
	cmd.flags = 1;
	ck_assert_int_eq(fk_sys_ioctl(fd, IOPF_K_FAULT_QUEUE_ALLOC, &cmd), -1);
	fk_sys_close(fd);
}
END_TEST

Suite *suite_fake(void)
{
	Suite *s = suite_create("fake");
	TCase *tc = tcase_create("abi-facts");

	tcase_add_test(tc, read_empty_is_zero_and_misaligned_is_espipe);
	tcase_add_test(tc, whole_groups_one_cookie_last_flag);
	tcase_add_test(tc, only_whole_groups_fit);
	tcase_add_test(tc, cookies_lowest_free_reused_at_once);
	tcase_add_test(tc, write_stops_at_first_bad);
	tcase_add_test(tc, poll_out_always_in_while_queued);
	tcase_add_test(tc, detach_auto_answers_queued_and_read);
	tcase_add_test(tc, ioctl_alloc_on_fake_iommufd);
	suite_add_tcase(s, tc);
	return s;
}
