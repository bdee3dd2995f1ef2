/* SPDX-License-Identifier: MIT */
/*
 * test_kernel.c - libiopf against the real kernel: iommufd fault queues
 * fed by the selftest mock device. Runs inside ../shared/kernel/vmrun
 * (tests/kernel/run-in-vm.sh). Only libiopf's public API and raw iommufd
 * ioctls are used; the kernel itself is the witness of every answer
 * (a second write of an answered cookie gets EINVAL).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iopf/iopf.h"
#include "kmock.h"

/* One mock device attached to a fault-capable nested table. */
struct kt {
	struct kmock m;
	struct iopf_ctx *ctx;
	struct iopf_source *src;
	uint32_t fault_id, parent_id, hwpt_id;
};

static void kt_setup(struct kt *t, const struct iopf_ctx_opts *o)
{
	ck_assert_int_eq(kmock_open(&t->m), 0);
	t->ctx = iopf_ctx_new(o);
	ck_assert_ptr_nonnull(t->ctx);
	t->src = iopf_fault_queue_alloc(t->ctx, t->m.fd, NULL, &t->fault_id);
	ck_assert_ptr_nonnull(t->src);
	ck_assert_int_eq(kmock_hwpt_nested_iopf(&t->m, t->m.idev_id, t->fault_id,
						&t->parent_id, &t->hwpt_id), 0);
	ck_assert_int_eq(kmock_replace(&t->m, t->m.stdev_id, t->hwpt_id), 0);
}

static void kt_teardown(struct kt *t)
{
	iopf_ctx_free(t->ctx);
	kmock_close(&t->m);
}

static void trig(struct kt *t, uint32_t pasid, uint32_t grpid, uint64_t addr)
{
	ck_assert_int_eq(kmock_trigger(&t->m, t->m.idev_id, pasid, grpid,
				       IOPF_PERM_READ | IOPF_PERM_WRITE, addr), 0);
}

static struct iopf_stats st_of(struct iopf_ctx *ctx)
{
	IOPF_OPTS(iopf_stats, st);
	ck_assert_int_eq(iopf_ctx_get_stats(ctx, &st), 0);
	return st;
}

static int drive(struct iopf_ctx *ctx)
{
	int total = 0;

	for (int i = 0; i < 10000; i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(ctx), .events = POLLIN };
		int n;

		if (poll(&p, 1, 0) <= 0)
			break;
		n = iopf_ctx_dispatch(ctx);
		ck_assert_int_ge(n, 0);
		total += n;
	}
	return total;
}

/* The kernel's witness: writing this cookie again must be refused. */
static void assert_kernel_has_no(struct kt *t, uint32_t cookie)
{
	struct iopf_k_page_response r = { .cookie = cookie, .code = 0 };

	errno = 0;
	ck_assert_int_eq(write(iopf_source_get_fd(t->src), &r, sizeof(r)), -1);
	ck_assert_int_eq(errno, EINVAL);
}

static void assert_queue_empty(struct kt *t)
{
	struct pollfd p = { .fd = iopf_source_get_fd(t->src), .events = POLLIN };

	ck_assert_int_eq(poll(&p, 1, 0), 0);
}

struct seen {
	int n;
	uint32_t dev, pasid, prgi, cookie, perm, flags;
	uint64_t addr;
};

static int h_seen(struct iopf_group *g, void *ud)
{
	struct seen *s = ud;
	size_t nr;
	const struct iopf_record *r = iopf_group_records(g, &nr);

	s->n++;
	s->dev = iopf_group_dev_id(g);
	s->pasid = iopf_group_pasid(g);
	s->prgi = iopf_group_prgi(g);
	s->cookie = iopf_group_cookie(g);
	s->perm = r[nr - 1].perm;
	s->flags = r[nr - 1].flags;
	s->addr = r[nr - 1].addr;
	return IOPF_CODE_SUCCESS;
}

START_TEST(paging_table_kinds)
{
	struct kt t;
	uint32_t id;
	int rc;

	kt_setup(&t, NULL);
	/* Linux 6.12 accepts a fault id on nested tables only; a plain
	 * paging table gets EOPNOTSUPP (newer kernels accept it). */
	rc = kmock_hwpt_paging_iopf(&t.m, t.m.idev_id, t.fault_id, &id);
	ck_assert_msg(rc == 0 || rc == -EOPNOTSUPP, "paging+fault: %d", rc);
	printf("kernel: fault-capable plain paging table %s\n",
	       rc ? "refused (EOPNOTSUPP)" : "accepted");
	kt_teardown(&t);
}
END_TEST

START_TEST(delivery_and_every_field)
{
	struct kt t;
	struct seen s = { 0 };

	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_seen, &s);
	trig(&t, 7, 21, 0x1234000);
	ck_assert_int_eq(drive(t.ctx), 1);
	ck_assert_int_eq(s.n, 1);
	ck_assert_uint_eq(s.dev, t.m.idev_id);
	ck_assert_uint_eq(s.pasid, 7);
	ck_assert_uint_eq(s.prgi, 21);
	ck_assert_uint_eq(s.cookie, 1);
	ck_assert_uint_eq(s.perm, IOPF_PERM_READ | IOPF_PERM_WRITE);
	ck_assert_uint_eq(s.flags, IOPF_F_LAST_PAGE | IOPF_F_PASID_VALID);
	ck_assert_uint_eq(s.addr, 0x1234000);
	trig(&t, 0, 22, 0x5000);
	drive(t.ctx);
	ck_assert_uint_eq(s.pasid, IOPF_NO_PASID);
	ck_assert_uint_eq(s.flags, IOPF_F_LAST_PAGE);
	assert_kernel_has_no(&t, 1);
	assert_queue_empty(&t);
	kt_teardown(&t);
}
END_TEST

START_TEST(many_per_read_answers_batched)
{
	struct kt t;
	struct seen s = { 0 };

	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_seen, &s);
	for (uint32_t i = 0; i < 500; i++)
		trig(&t, 1, i, 0x100000 + i * 0x1000ull);
	drive(t.ctx);
	ck_assert_int_eq(s.n, 500);
	struct iopf_stats st = st_of(t.ctx);
	ck_assert_uint_le(st.read_calls, 4);  /* 256 records a read */
	ck_assert_uint_le(st.write_calls, 3); /* one per dispatch round */
	ck_assert_uint_eq(st.answers_success, 500);
	ck_assert_uint_eq(st.write_errors, 0);
	for (uint32_t c = 1; c <= 500; c += 97)
		assert_kernel_has_no(&t, c);
	assert_queue_empty(&t);
	kt_teardown(&t);
}
END_TEST

static iopf_handle_t handles[256];
static int nh;
static int h_defer(struct iopf_group *g, void *ud)
{
	(void)ud;
	handles[nh++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

START_TEST(cookie_reuse_cannot_misroute)
{
	struct kt t;

	nh = 0;
	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	trig(&t, 1, 1, 0x1000);
	drive(t.ctx);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_ctx_flush(t.ctx), 0);
	trig(&t, 1, 2, 0x2000); /* the kernel gives it cookie 1 again */
	drive(t.ctx);
	ck_assert_int_eq(nh, 2);
	/* a stale handle and a duplicate guest answer must not reach it */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_INVALID), -EALREADY);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, t.m.idev_id, 1, 1, IOPF_CODE_INVALID), -ENOENT);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).write_calls, 1);
	ck_assert_uint_eq(st_of(t.ctx).outstanding, 1);
	/* the new group is still the kernel's and ours to answer */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, t.m.idev_id, 1, 2, IOPF_CODE_SUCCESS), 0);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, t.m.idev_id, 1, 2, IOPF_CODE_SUCCESS), -ENOENT);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).write_errors, 0);
	assert_kernel_has_no(&t, 1);
	kt_teardown(&t);
}
END_TEST

START_TEST(detach_with_groups_outstanding)
{
	struct kt t;

	nh = 0;
	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	for (uint32_t i = 0; i < 3; i++)
		trig(&t, 1, i, 0x1000);
	drive(t.ctx);
	trig(&t, 1, 9, 0x1000); /* one still queued in the kernel */
	/* replace: the kernel answers all four INVALID itself */
	ck_assert_int_eq(kmock_detach(&t.m, t.m.stdev_id), 0);
	ck_assert_int_eq(iopf_source_detach(t.src, t.m.idev_id, 0, IOPF_ALL_PASIDS), 3);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), -ESHUTDOWN);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).write_calls, 0); /* nothing touched */
	ck_assert_uint_eq(st_of(t.ctx).kernel_answered, 3);
	assert_queue_empty(&t);
	assert_kernel_has_no(&t, 1);
	kt_teardown(&t);
}
END_TEST

START_TEST(unannounced_detach_seen_through_cookie_reuse)
{
	struct kt t;

	nh = 0;
	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	trig(&t, 1, 1, 0x1000);
	drive(t.ctx);
	ck_assert_int_eq(kmock_detach(&t.m, t.m.stdev_id), 0);
	ck_assert_int_eq(kmock_replace(&t.m, t.m.stdev_id, t.hwpt_id), 0);
	trig(&t, 1, 2, 0x2000); /* cookie 1 again */
	drive(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).kernel_answered, 1);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_INVALID), -ESHUTDOWN);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).write_errors, 0);
	assert_kernel_has_no(&t, 1);
	kt_teardown(&t);
}
END_TEST

START_TEST(close_answers_outstanding)
{
	struct kt t;
	int fd;

	nh = 0;
	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	/* a second fd on the same fault object, to witness after close */
	fd = dup(iopf_source_get_fd(t.src));
	for (uint32_t i = 0; i < 4; i++)
		trig(&t, 2, i, 0x1000);
	drive(t.ctx);
	iopf_source_close(t.src);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[3], IOPF_CODE_SUCCESS), -ESHUTDOWN);
	for (uint32_t c = 1; c <= 4; c++) {
		struct iopf_k_page_response r = { .cookie = c };

		errno = 0;
		ck_assert_int_eq(write(fd, &r, sizeof(r)), -1);
		ck_assert_int_eq(errno, EINVAL);
	}
	ck_assert_uint_eq(st_of(t.ctx).answers_invalid, 4);
	close(fd);
	iopf_ctx_free(t.ctx);
	kmock_close(&t.m);
}
END_TEST

struct later { struct iopf_ctx *ctx; };
static void *answer_all_later(void *p)
{
	struct later *l = p;

	usleep(50000);
	for (int i = 0; i < nh; i++)
		iopf_respond(l->ctx, handles[i], IOPF_CODE_SUCCESS);
	return NULL;
}

START_TEST(drain_waits_for_deferred_answers)
{
	struct kt t;
	pthread_t th;
	struct later l;

	nh = 0;
	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	for (uint32_t i = 0; i < 8; i++)
		trig(&t, 3, i, 0x1000);
	drive(t.ctx);
	l.ctx = t.ctx;
	pthread_create(&th, NULL, answer_all_later, &l);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, t.m.idev_id, 3, 0, 10000), 0);
	pthread_join(th, NULL);
	for (uint32_t c = 1; c <= 8; c++)
		assert_kernel_has_no(&t, c);
	kt_teardown(&t);
}
END_TEST

struct stream {
	atomic_ulong calls;
	unsigned char *seen; /* per grpid: handler calls */
};

static int h_stream(struct iopf_group *g, void *ud)
{
	struct stream *s = ud;
	uint32_t id = iopf_group_prgi(g);

	atomic_fetch_add(&s->calls, 1);
	s->seen[id]++;
	return IOPF_CODE_SUCCESS;
}

static void *run_loop(void *p)
{
	return (void *)(intptr_t)iopf_ctx_run(p);
}

START_TEST(stream_100k_through_worker_pool)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 2);
	enum { N = 100000 };
	struct kt t;
	struct stream s = { .seen = calloc(N, 1) };
	pthread_t th;
	void *rc;

	atomic_init(&s.calls, 0);
	kt_setup(&t, &o);
	iopf_ctx_set_handler(t.ctx, h_stream, &s);
	pthread_create(&th, NULL, run_loop, t.ctx);
	for (uint32_t i = 0; i < N; i++)
		trig(&t, 1 + (i & 7), i, 0x100000 + (i & 255) * 0x1000ull);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, t.m.idev_id, 0, IOPF_ALL_PASIDS, 120000), 0);
	iopf_ctx_stop(t.ctx);
	pthread_join(th, &rc);
	ck_assert_int_eq((int)(intptr_t)rc, 0);
	ck_assert_uint_eq(atomic_load(&s.calls), N);
	for (uint32_t i = 0; i < N; i++)
		ck_assert_msg(s.seen[i] == 1, "grpid %u handled %u times", i, s.seen[i]);
	struct iopf_stats st = st_of(t.ctx);
	ck_assert_uint_eq(st.answers_success, N);
	ck_assert_uint_eq(st.write_errors, 0);
	ck_assert_uint_eq(st.refused_answers, 0);
	ck_assert_uint_eq(st.outstanding, 0);
	printf("stream: %d groups, %llu reads, %llu writes, p99 %llu ns\n", N,
	       (unsigned long long)st.read_calls,
	       (unsigned long long)st.write_calls,
	       (unsigned long long)iopf_stats_latency_ns(&st, 0.99));
	assert_queue_empty(&t);
	assert_kernel_has_no(&t, 1); /* nothing outstanding in the kernel */
	free(s.seen);
	kt_teardown(&t);
}
END_TEST

/* The accelerator-runtime pattern: map the faulting page on demand. */
struct mapper {
	struct kmock *m;
	void *mem;
	int mapped;
};

static int h_map(struct iopf_group *g, void *ud)
{
	struct mapper *mp = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	for (size_t i = 0; i < n; i++) {
		uint64_t iova = r[i].addr & ~0xfffull;
		char *page = (char *)mp->mem + (iova - 0x4000000);

		if (kmock_map(mp->m, page, 4096, iova))
			return IOPF_CODE_INVALID;
		mp->mapped++;
	}
	return IOPF_CODE_SUCCESS;
}

START_TEST(on_demand_mapping)
{
	struct kt t;
	struct mapper mp;

	kt_setup(&t, NULL);
	mp.m = &t.m;
	mp.mapped = 0;
	mp.mem = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(mp.mem, MAP_FAILED);
	iopf_ctx_set_handler(t.ctx, h_map, &mp);
	/* nothing is mapped (pinned) up front */
	ck_assert_int_ne(kmock_check_map(&t.m, t.parent_id, 0x4003000, 4096,
					 (char *)mp.mem + 0x3000), 0);
	trig(&t, 1, 1, 0x4003010);
	trig(&t, 1, 2, 0x4007000);
	drive(t.ctx);
	ck_assert_int_eq(mp.mapped, 2);
	ck_assert_int_eq(kmock_check_map(&t.m, t.parent_id, 0x4003000, 4096,
					 (char *)mp.mem + 0x3000), 0);
	ck_assert_int_eq(kmock_check_map(&t.m, t.parent_id, 0x4007000, 4096,
					 (char *)mp.mem + 0x7000), 0);
	ck_assert_int_ne(kmock_check_map(&t.m, t.parent_id, 0x4005000, 4096,
					 (char *)mp.mem + 0x5000), 0);
	ck_assert_uint_eq(st_of(t.ctx).answers_success, 2);
	assert_kernel_has_no(&t, 1);
	kt_teardown(&t);
}
END_TEST

/* ---- device removal: a real uevent from the real kernel ---- */

/* The mock devices on their bus, as a bitmap of N in iommufd_mockN. */
static uint64_t mock_devices(void)
{
	DIR *d = opendir("/sys/bus/iommufd_mock/devices");
	struct dirent *e;
	uint64_t set = 0;
	unsigned int n;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (sscanf(e->d_name, "iommufd_mock%u", &n) == 1 && n < 64)
			set |= 1ull << n;
	closedir(d);
	return set;
}

static iopf_handle_t rm_handles[8], rm_cancelled[8];
static uint32_t rm_dev[8];
static int rm_n, rm_ncancelled;

static int h_defer_rm(struct iopf_group *g, void *ud)
{
	rm_dev[rm_n] = iopf_group_dev_id(g);
	rm_handles[rm_n++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

static void on_cancel_rm(struct iopf_group *g, void *ud)
{
	rm_cancelled[rm_ncancelled++] = iopf_group_handle(g);
}

START_TEST(device_removal_seen_through_uevent)
{
	struct kt t;
	uint32_t stdev2, idev2, parent2, hwpt2;
	uint64_t before;
	char path[128];
	int rc, s, k = 0;
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	char forged[160];
	size_t flen;
	struct iopf_stats st;

	rm_n = rm_ncancelled = 0;
	kt_setup(&t, NULL);
	before = mock_devices();
	ck_assert_int_eq(kmock_add_device(&t.m, &stdev2, &idev2), 0);
	ck_assert_uint_ne(mock_devices() & ~before, 0);
	snprintf(path, sizeof(path), "/sys/bus/iommufd_mock/devices/iommufd_mock%d",
		 __builtin_ctzll(mock_devices() & ~before));
	ck_assert_int_eq(kmock_hwpt_nested_iopf(&t.m, idev2, t.fault_id, &parent2,
						&hwpt2), 0);
	ck_assert_int_eq(kmock_replace(&t.m, stdev2, hwpt2), 0);
	iopf_ctx_set_handler(t.ctx, h_defer_rm, NULL);
	iopf_ctx_set_cancel_handler(t.ctx, on_cancel_rm, NULL);
	rc = iopf_ctx_watch_device(t.ctx, idev2, path);
	if (rc == -EOPNOTSUPP) { /* built without libnl-3 */
		kt_teardown(&t);
		return;
	}
	ck_assert_int_eq(rc, 0);
	printf("kernel: watching %s as dev %u\n", path, idev2);

	for (uint32_t i = 1; i <= 3; i++)
		ck_assert_int_eq(kmock_trigger(&t.m, idev2, 0, i, IOPF_PERM_READ,
					       0x1000 * i), 0);
	trig(&t, 0, 9, 0x9000);
	drive(t.ctx);
	ck_assert_int_eq(rm_n, 4);

	/* A remove forged by user space on the kernel's group: ignored. */
	flen = (size_t)snprintf(forged, sizeof(forged),
				"remove@%s%cACTION=remove%cDEVPATH=%s%cSEQNUM=1",
				path + 4, 0, 0, path + 4, 0) + 1;
	s = socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT);
	ck_assert_int_ge(s, 0);
	ck_assert_int_ge(sendto(s, forged, flen, 0, (struct sockaddr *)&to,
				sizeof(to)), 0);
	close(s);

	/* Unplug: the kernel answers dev2's groups, then says so. */
	ck_assert_int_eq(kmock_destroy(&t.m, stdev2), 0);
	while (st_of(t.ctx).devices_gone == 0 && k++ < 200) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 10);
		iopf_ctx_dispatch(t.ctx);
	}
	st = st_of(t.ctx);
	printf("kernel: removal seen after %d rounds: %llu uevents (%llu untrusted), %llu groups cancelled\n",
	       k, (unsigned long long)st.uevents,
	       (unsigned long long)st.uevents_untrusted,
	       (unsigned long long)st.cancelled);
	ck_assert_uint_eq(st.devices_gone, 1);
	ck_assert_uint_ge(st.uevents_untrusted, 1);
	ck_assert_uint_eq(st.cancelled, 3);
	ck_assert_int_eq(rm_ncancelled, 3);
	for (int i = 0, c = 0; i < 4; i++) {
		if (rm_dev[i] != idev2)
			continue;
		ck_assert_uint_eq(rm_cancelled[c++], rm_handles[i]);
		ck_assert_int_eq(iopf_respond(t.ctx, rm_handles[i],
					      IOPF_CODE_SUCCESS), -ENODEV);
	}
	ck_assert_int_eq(iopf_respond_prg(t.ctx, idev2, IOPF_NO_PASID, 1,
					  IOPF_CODE_SUCCESS), -ENODEV);
	/* The other device carries on; nothing was written for dev2. */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, t.m.idev_id, IOPF_NO_PASID, 9,
					  IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	st = st_of(t.ctx);
	ck_assert_uint_eq(st.write_errors, 0);
	ck_assert_uint_eq(st.answers_success, 1);
	ck_assert_uint_eq(st.outstanding, 0);
	for (uint32_t c = 1; c <= 4; c++)
		assert_kernel_has_no(&t, c);
	assert_queue_empty(&t);
	kt_teardown(&t);
}
END_TEST

/* ---- the exactly-once defects of 1.1 that concern the kernel ---- */

/* 8: max_outstanding is exact on the real kernel: reads are sized to the
 * room, the kernel queue holds the rest. */
START_TEST(max_outstanding_exact)
{
	IOPF_OPTS(iopf_ctx_opts, o, .max_outstanding = 16);
	struct kt t;

	nh = 0;
	kt_setup(&t, &o);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	for (uint32_t i = 0; i < 256; i++)
		trig(&t, 1, i, 0x1000 * i);
	drive(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).groups, 16);
	ck_assert_uint_eq(st_of(t.ctx).outstanding, 16);
	for (int round = 0; round < 100 && st_of(t.ctx).groups < 256; round++) {
		int n = nh;

		for (int i = 0; i < n; i++)
			iopf_respond(t.ctx, handles[i], IOPF_CODE_SUCCESS);
		nh = 0;
		drive(t.ctx);
		ck_assert_uint_le(st_of(t.ctx).outstanding, 16);
	}
	for (int i = 0; i < nh; i++)
		iopf_respond(t.ctx, handles[i], IOPF_CODE_SUCCESS);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).groups, 256);
	ck_assert_uint_eq(st_of(t.ctx).answers_success, 256);
	ck_assert_uint_eq(st_of(t.ctx).write_errors, 0);
	assert_queue_empty(&t);
	for (uint32_t c = 1; c <= 16; c++)
		assert_kernel_has_no(&t, c);
	kt_teardown(&t);
}
END_TEST

/* 10: `echo remove > .../uevent` makes the kernel send a synthetic remove
 * (SYNTH_UUID): the device is alive, its groups stay answerable. */
START_TEST(synthetic_uevent_is_not_a_removal)
{
	struct kt t;
	char path[160], ev[200];
	uint64_t devs;
	int rc, fd, k = 0;

	nh = 0;
	kt_setup(&t, NULL);
	devs = mock_devices();
	ck_assert_uint_ne(devs, 0);
	/* the most recent mock device is this test's */
	snprintf(path, sizeof(path), "/sys/bus/iommufd_mock/devices/iommufd_mock%d",
		 63 - __builtin_clzll(devs));
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	rc = iopf_ctx_watch_device(t.ctx, t.m.idev_id, path);
	if (rc == -EOPNOTSUPP) { /* built without libnl-3 */
		kt_teardown(&t);
		return;
	}
	ck_assert_int_eq(rc, 0);
	trig(&t, 0, 5, 0x5000);
	drive(t.ctx);
	ck_assert_int_eq(nh, 1);
	snprintf(ev, sizeof(ev), "%s/uevent", path);
	fd = open(ev, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "remove", 6), 6);
	close(fd);
	while (st_of(t.ctx).uevents == 0 && k++ < 200) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 10);
		iopf_ctx_dispatch(t.ctx);
	}
	printf("kernel: synthetic remove: %llu uevents, %llu synthetic, %llu devices gone\n",
	       (unsigned long long)st_of(t.ctx).uevents,
	       (unsigned long long)st_of(t.ctx).uevents_synthetic,
	       (unsigned long long)st_of(t.ctx).devices_gone);
	ck_assert_uint_ge(st_of(t.ctx).uevents_synthetic, 1);
	ck_assert_uint_eq(st_of(t.ctx).devices_gone, 0);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_SUCCESS), 0);
	trig(&t, 0, 6, 0x6000); /* and new faults still reach the handler */
	drive(t.ctx);
	ck_assert_int_eq(nh, 2);
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).answers_success, 2);
	ck_assert_uint_eq(st_of(t.ctx).write_errors, 0);
	kt_teardown(&t);
}
END_TEST

/* 14: an answer gathered for a cookie the kernel then answers itself (an
 * unannounced detach) is written before the cookie is read again: the
 * kernel refuses it, and the new group with that cookie gets its own. */
START_TEST(gathered_answer_written_before_cookie_reuse)
{
	struct kt t;

	nh = 0;
	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_defer, NULL);
	trig(&t, 1, 1, 0x1000);
	drive(t.ctx);
	/* answered from outside the loop: gathered, not yet written */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[0], IOPF_CODE_INVALID), 0);
	ck_assert_int_eq(kmock_detach(&t.m, t.m.stdev_id), 0);
	ck_assert_int_eq(kmock_replace(&t.m, t.m.stdev_id, t.hwpt_id), 0);
	trig(&t, 1, 2, 0x2000); /* will get cookie 1 */
	drive(t.ctx);
	ck_assert_int_eq(nh, 2);
	ck_assert_uint_eq(st_of(t.ctx).write_errors, 1); /* the stale one */
	ck_assert_int_eq(iopf_respond(t.ctx, handles[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_uint_eq(st_of(t.ctx).write_errors, 1); /* ours accepted */
	assert_kernel_has_no(&t, 1);
	assert_queue_empty(&t);
	kt_teardown(&t);
}
END_TEST

/* ---- a burst with a detach and an unplug in the middle ---- */

struct burst {
	pthread_mutex_t mu;
	iopf_handle_t *h;
	size_t n, cap;
	atomic_bool done, hold; /* hold: the guest sits on what it has */
	struct iopf_ctx *ctx;
	atomic_ullong answered, refused;
};

static int h_burst(struct iopf_group *g, void *ud)
{
	struct burst *b = ud;

	pthread_mutex_lock(&b->mu);
	if (b->n < b->cap)
		b->h[b->n++] = iopf_group_handle(g);
	pthread_mutex_unlock(&b->mu);
	return IOPF_DEFER;
}

/* A guest answering deferred groups, 64 at a time, in the order held. */
static void *burst_guest(void *p)
{
	struct burst *b = p;
	iopf_handle_t h[64];
	int codes[64], res[64];

	for (int i = 0; i < 64; i++)
		codes[i] = IOPF_CODE_SUCCESS;
	for (;;) {
		size_t n;

		if (atomic_load(&b->hold)) {
			usleep(200);
			continue;
		}
		pthread_mutex_lock(&b->mu);
		n = b->n < 64 ? b->n : 64;
		b->n -= n;
		memcpy(h, b->h + b->n, n * sizeof(*h));
		pthread_mutex_unlock(&b->mu);
		if (!n) {
			if (atomic_load(&b->done))
				return NULL;
			usleep(200);
			continue;
		}
		int k = iopf_respond_many(b->ctx, h, codes, n, res);

		ck_assert_int_ge(k, 0);
		atomic_fetch_add(&b->answered, (unsigned long long)k);
		for (size_t i = 0; i < n; i++)
			if (res[i]) {
				/* detached or gone meanwhile: refused, not sent */
				ck_assert_msg(res[i] == -ESHUTDOWN || res[i] == -ENODEV,
					      "answer refused with %d", res[i]);
				atomic_fetch_add(&b->refused, 1);
			}
	}
}

START_TEST(burst_with_detach_and_unplug)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 2);
	enum { N = 100000 };
	struct kt t;
	struct burst b = { .cap = N, .h = calloc(N, sizeof(iopf_handle_t)) };
	uint32_t stdev2, idev2, parent2, hwpt2;
	uint64_t trig1 = 0, trig2 = 0;
	pthread_t loop, guest;
	struct iopf_stats st;
	void *rc;

	pthread_mutex_init(&b.mu, NULL);
	kt_setup(&t, &o);
	b.ctx = t.ctx;
	ck_assert_int_eq(kmock_add_device(&t.m, &stdev2, &idev2), 0);
	ck_assert_int_eq(kmock_hwpt_nested_iopf(&t.m, idev2, t.fault_id, &parent2,
						&hwpt2), 0);
	ck_assert_int_eq(kmock_replace(&t.m, stdev2, hwpt2), 0);
	iopf_ctx_set_handler(t.ctx, h_burst, &b);
	pthread_create(&loop, NULL, run_loop, t.ctx);
	pthread_create(&guest, NULL, burst_guest, &b);
	for (uint32_t i = 0; i < N; i++) {
		bool dev2_here = i < N / 2;

		/* answers still deferred when the detach and the unplug come */
		if (i == N / 4 - 2000 || i == N / 2 - 2000) {
			atomic_store(&b.hold, true);
			usleep(200000); /* the loop reads them meanwhile */
		}
		if (i == N / 4) { /* detach dev 1, tell libiopf, attach again */
			ck_assert_int_eq(kmock_detach(&t.m, t.m.stdev_id), 0);
			ck_assert_int_ge(iopf_source_detach(t.src, t.m.idev_id, 0,
							    IOPF_ALL_PASIDS), 0);
			ck_assert_int_eq(kmock_replace(&t.m, t.m.stdev_id, t.hwpt_id), 0);
			atomic_store(&b.hold, false);
		}
		if (i == N / 2) { /* unplug dev 2: the kernel answers its groups */
			ck_assert_int_eq(kmock_destroy(&t.m, stdev2), 0);
			ck_assert_int_ge(iopf_ctx_device_gone(t.ctx, idev2), 0);
			atomic_store(&b.hold, false);
		}
		if ((i & 1) && dev2_here) {
			ck_assert_int_eq(kmock_trigger(&t.m, idev2, 0, i & 511,
						       IOPF_PERM_READ, 0x1000), 0);
			trig2++;
		} else {
			trig(&t, 0, i & 511, 0x1000);
			trig1++;
		}
	}
	/* everything left is answered by the guest; then all is drained */
	for (int k = 0; k < 600 && st_of(t.ctx).outstanding; k++)
		usleep(100000);
	ck_assert_int_eq(iopf_ctx_drain(t.ctx, t.m.idev_id, 0, IOPF_ALL_PASIDS, 60000), 0);
	atomic_store(&b.done, true);
	pthread_join(guest, NULL);
	iopf_ctx_stop(t.ctx);
	pthread_join(loop, &rc);
	ck_assert_int_eq((int)(intptr_t)rc, 0);
	iopf_ctx_flush(t.ctx);
	st = st_of(t.ctx);
	printf("burst: %llu + %llu faults, %llu groups read, %llu answered by the guest (%llu refused), %llu by the kernel on detach, %llu on unplug, %llu refused writes\n",
	       (unsigned long long)trig1, (unsigned long long)trig2,
	       (unsigned long long)st.groups,
	       (unsigned long long)atomic_load(&b.answered),
	       (unsigned long long)atomic_load(&b.refused),
	       (unsigned long long)st.kernel_answered,
	       (unsigned long long)st.cancelled,
	       (unsigned long long)st.write_errors);
	ck_assert_uint_eq(st.outstanding, 0);
	/* groups still queued in the kernel at the detach or the unplug are
	 * answered there and never read */
	ck_assert_uint_le(st.groups, trig1 + trig2);
	ck_assert_uint_ge(st.groups, (trig1 + trig2) * 9 / 10);
	/* every group ended: answered by the guest, or by the kernel (detach,
	 * unplug; those counters include guest answers dropped unwritten).
	 * The kernel is the witness of exactly once: nothing is left in it,
	 * and an answer racing the detach ioctl is refused by it (counted in
	 * write_errors), never taken by another group: answers are written
	 * before every read. */
	ck_assert_uint_ge(atomic_load(&b.answered) + st.kernel_answered +
				  st.cancelled,
			  st.groups);
	ck_assert_uint_ge(st.kernel_answered, 1);
	ck_assert_uint_ge(st.cancelled, 1);
	assert_queue_empty(&t);
	for (uint32_t c = 1; c <= 64; c++)
		assert_kernel_has_no(&t, c);
	free(b.h);
	kt_teardown(&t);
}
END_TEST


/* ---- kernel capabilities (iopf_probe) and the two test images ---- */

/* What IOPF_TEST_IMAGE (run-in-vm.sh --image) says PAGING_FAULT must be:
 * 1, 0, or -1 (another kernel: only held against the kernel itself). */
static int expect_paging(void)
{
	const char *img = getenv("IOPF_TEST_IMAGE");

	if (!img)
		return -1;
	if (!strcmp(img, "bzImage-paging"))
		return 1;
	return !strcmp(img, "bzImage") ? 0 : -1;
}

static uint64_t probe_flags(struct kmock *m, uint32_t dev)
{
	IOPF_OPTS(iopf_probe_info, info);

	ck_assert_int_eq(iopf_probe(m->fd, dev, &info), 0);
	ck_assert_uint_eq(info.record_size, 40);
	ck_assert_uint_eq(info.response_size, 8);
	return info.flags;
}

START_TEST(probe_reports_this_kernel)
{
	struct kmock m;
	uint64_t fl, nodev;
	uint32_t fault_id, hwpt = 0;
	int want = expect_paging(), rc;
	struct iopf_ctx *ctx;
	struct iopf_source *src;

	ck_assert_int_eq(kmock_open(&m), 0);
	fl = probe_flags(&m, m.idev_id);
	nodev = probe_flags(&m, IOPF_NO_DEV);
	printf("kernel (%s): iopf_probe flags %#llx:%s%s%s%s%s\n",
	       getenv("IOPF_TEST_IMAGE") ? getenv("IOPF_TEST_IMAGE") : "?",
	       (unsigned long long)fl,
	       fl & IOPF_PROBE_FAULT_QUEUE ? " FAULT_QUEUE" : "",
	       fl & IOPF_PROBE_NESTED_FAULT ? " NESTED_FAULT" : "",
	       fl & IOPF_PROBE_PAGING_FAULT ? " PAGING_FAULT" : "",
	       fl & IOPF_PROBE_PASID_ATTACH ? " PASID_ATTACH" : "",
	       fl & IOPF_PROBE_VEVENTQ ? " VEVENTQ" : "");
	ck_assert(fl & IOPF_PROBE_FAULT_QUEUE);
	ck_assert(fl & IOPF_PROBE_NESTED_FAULT);
	/* 6.12 either way: no PASID tables, no vEVENTQ (ENOTTY) */
	ck_assert(!(fl & (IOPF_PROBE_PASID_ATTACH | IOPF_PROBE_VEVENTQ)));
	ck_assert_uint_eq(nodev, IOPF_PROBE_FAULT_QUEUE);
	if (want >= 0)
		ck_assert_int_eq(!!(fl & IOPF_PROBE_PAGING_FAULT), want);
	/* The kernel itself as the witness: the same allocation by hand. */
	ctx = iopf_ctx_new(NULL);
	src = iopf_fault_queue_alloc(ctx, m.fd, NULL, &fault_id);
	ck_assert_ptr_nonnull(src);
	rc = kmock_hwpt_paging_iopf(&m, m.idev_id, fault_id, &hwpt);
	ck_assert_int_eq(rc == 0, !!(fl & IOPF_PROBE_PAGING_FAULT));
	if (!rc)
		ck_assert_int_eq(kmock_destroy(&m, hwpt), 0);
	else
		ck_assert_int_eq(rc, -EOPNOTSUPP);
	/* the unknown device and the non-iommufd are said */
	IOPF_OPTS(iopf_probe_info, info);
	ck_assert_int_eq(iopf_probe(m.fd, 999999, &info), -ENOENT);
	ck_assert_int_eq(iopf_probe(0, IOPF_NO_DEV, &info), -ENOTTY);
	iopf_ctx_free(ctx);
	kmock_close(&m);
}
END_TEST

START_TEST(paging_table_fault_answered)
{
	struct kmock m;
	struct iopf_ctx *ctx;
	struct iopf_source *src;
	struct mapper mp;
	uint32_t fault_id, hwpt;
	uint64_t fl;

	ck_assert_int_eq(kmock_open(&m), 0);
	fl = probe_flags(&m, m.idev_id);
	if (!(fl & IOPF_PROBE_PAGING_FAULT)) {
		ck_assert_int_ne(expect_paging(), 1);
		printf("SKIP paging_table_fault_answered: iopf_probe says this kernel "
		       "takes no fault id on a paging table (6.12; needs 6.13+)\n");
		kmock_close(&m);
		return;
	}
	ctx = iopf_ctx_new(NULL);
	src = iopf_fault_queue_alloc(ctx, m.fd, NULL, &fault_id);
	ck_assert_ptr_nonnull(src);
	ck_assert_int_eq(kmock_hwpt_paging_iopf(&m, m.idev_id, fault_id, &hwpt), 0);
	ck_assert_int_eq(kmock_replace(&m, m.stdev_id, hwpt), 0);
	mp.m = &m;
	mp.mapped = 0;
	mp.mem = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(mp.mem, MAP_FAILED);
	iopf_ctx_set_handler(ctx, h_map, &mp);
	ck_assert_int_ne(kmock_check_map(&m, hwpt, 0x4003000, 4096,
					 (char *)mp.mem + 0x3000), 0);
	ck_assert_int_eq(kmock_trigger(&m, m.idev_id, 0, 5,
				       IOPF_PERM_READ | IOPF_PERM_WRITE,
				       0x4003010), 0);
	drive(ctx);
	ck_assert_int_eq(mp.mapped, 1);
	/* mapped in the IOAS, seen through the paging table itself */
	ck_assert_int_eq(kmock_check_map(&m, hwpt, 0x4003000, 4096,
					 (char *)mp.mem + 0x3000), 0);
	ck_assert_uint_eq(st_of(ctx).answers_success, 1);
	{ /* the kernel took the answer: the cookie is no longer its */
		struct iopf_k_page_response r = { .cookie = 1 };

		errno = 0;
		ck_assert_int_eq(write(iopf_source_get_fd(src), &r, sizeof(r)), -1);
		ck_assert_int_eq(errno, EINVAL);
	}
	printf("kernel: fault through a paging table (no nesting) read and answered\n");
	kmock_detach(&m, m.stdev_id);
	ck_assert_int_eq(iopf_source_detach(src, m.idev_id, 0, IOPF_ALL_PASIDS), 0);
	iopf_ctx_free(ctx);
	munmap(mp.mem, 16 * 4096);
	kmock_close(&m);
}
END_TEST

/* Close a fault fd while its table is still attached: what the kernel
 * does, and libiopf's count of it. */
START_TEST(close_undetached_observed)
{
	struct kt t;
	struct seen s = { 0 };
	int rc;

	kt_setup(&t, NULL);
	iopf_ctx_set_handler(t.ctx, h_seen, &s);
	trig(&t, 1, 1, 0x1000);
	ck_assert_int_eq(drive(t.ctx), 1);
	trig(&t, 1, 2, 0x2000); /* queued in the kernel, never read */
	iopf_source_close(t.src);
	ck_assert_uint_eq(st_of(t.ctx).closed_undetached, 1);
	/* The device still faults into the object nobody can read. */
	ck_assert_int_eq(kmock_trigger(&t.m, t.m.idev_id, 1, 3, 1, 0x3000), 0);
	/* Table and fault object stay while the device is attached. */
	rc = kmock_destroy(&t.m, t.fault_id);
	printf("kernel: fault fd closed, table attached: destroy fault object -> %s\n",
	       rc ? strerror(-rc) : "ok");
	ck_assert_int_eq(rc, -EBUSY);
	rc = kmock_destroy(&t.m, t.hwpt_id);
	printf("kernel: destroy its attached table -> %s\n", rc ? strerror(-rc) : "ok");
	ck_assert_int_eq(rc, -EBUSY);
	/* Detach: the kernel answers what waits; then both go. */
	ck_assert_int_eq(kmock_detach(&t.m, t.m.stdev_id), 0);
	ck_assert_int_eq(kmock_destroy(&t.m, t.hwpt_id), 0);
	ck_assert_int_eq(kmock_destroy(&t.m, t.fault_id), 0);
	printf("kernel: after detach, table and fault object destroyed\n");
	iopf_ctx_free(t.ctx);
	kmock_close(&t.m);
}
END_TEST

static Suite *suite_kernel(void)
{
	Suite *s = suite_create("kernel");
	TCase *tc = tcase_create("mock-device");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, paging_table_kinds);
	tcase_add_test(tc, delivery_and_every_field);
	tcase_add_test(tc, many_per_read_answers_batched);
	tcase_add_test(tc, cookie_reuse_cannot_misroute);
	tcase_add_test(tc, detach_with_groups_outstanding);
	tcase_add_test(tc, unannounced_detach_seen_through_cookie_reuse);
	tcase_add_test(tc, close_answers_outstanding);
	tcase_add_test(tc, drain_waits_for_deferred_answers);
	tcase_add_test(tc, stream_100k_through_worker_pool);
	tcase_add_test(tc, on_demand_mapping);
	tcase_add_test(tc, device_removal_seen_through_uevent);
	tcase_add_test(tc, max_outstanding_exact);
	tcase_add_test(tc, synthetic_uevent_is_not_a_removal);
	tcase_add_test(tc, gathered_answer_written_before_cookie_reuse);
	tcase_add_test(tc, burst_with_detach_and_unplug);
	tcase_add_test(tc, probe_reports_this_kernel);
	tcase_add_test(tc, paging_table_fault_answered);
	tcase_add_test(tc, close_undetached_observed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite_kernel());
	int failed;

	if (access("/dev/iommu", R_OK | W_OK)) {
		fprintf(stderr, "no /dev/iommu: run me inside vmrun\n");
		return 2;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
