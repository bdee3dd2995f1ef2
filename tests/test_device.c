/* SPDX-License-Identifier: MIT */
/* test_device.c - device removal: the uevent parser on recorded and
 * malformed messages, and what a removal does to groups, answers and
 * partial requests. Uevents are fed through the watcher's seam; one test
 * sends a forged message through a real netlink socket. */
#include <linux/netlink.h>
#include <stdio.h>
#include <sys/socket.h>

#include <stdio.h>
#include <sys/stat.h>

#include "testutil.h"

/* Recorded from Linux 6.12: `echo 1 > /sys/bus/pci/devices/.../remove`,
 * an unbind from vfio-pci, and the selftest mock device's IOMMU_DESTROY. */
#define MSG(s) s, sizeof(s) /* the kernel counts the final NUL */
static const char rec_pci_remove[] =
	"remove@/devices/pci0000:00/0000:00:04.0\0ACTION=remove\0"
	"DEVPATH=/devices/pci0000:00/0000:00:04.0\0SUBSYSTEM=pci\0"
	"PCI_CLASS=10000\0PCI_ID=1AF4:1001\0PCI_SLOT_NAME=0000:00:04.0\0"
	"MODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\0"
	"SEQNUM=1734";
static const char rec_pci_unbind[] =
	"unbind@/devices/pci0000:00/0000:00:05.0\0ACTION=unbind\0"
	"DEVPATH=/devices/pci0000:00/0000:00:05.0\0SUBSYSTEM=pci\0"
	"PCI_SLOT_NAME=0000:00:05.0\0SEQNUM=1801";
static const char rec_mock_remove[] =
	"remove@/devices/iommufd_mock0\0ACTION=remove\0"
	"DEVPATH=/devices/iommufd_mock0\0SUBSYSTEM=iommufd_mock\0SEQNUM=77";
static const char rec_mock_add[] =
	"add@/devices/iommufd_mock0\0ACTION=add\0"
	"DEVPATH=/devices/iommufd_mock0\0SUBSYSTEM=iommufd_mock\0SEQNUM=76";

START_TEST(parse_recorded_messages)
{
	struct uevent ev;

	ck_assert_int_eq(iopf__uevent_parse(MSG(rec_pci_remove), &ev), 0);
	ck_assert_str_eq(ev.action, "remove");
	ck_assert_str_eq(ev.devpath, "/devices/pci0000:00/0000:00:04.0");
	ck_assert_str_eq(ev.subsystem, "pci");
	ck_assert_uint_eq(ev.seqnum, 1734);
	ck_assert_int_eq(iopf__uevent_parse(MSG(rec_pci_unbind), &ev), 0);
	ck_assert_str_eq(ev.action, "unbind");
	ck_assert_int_eq(iopf__uevent_parse(MSG(rec_mock_remove), &ev), 0);
	ck_assert_str_eq(ev.devpath, "/devices/iommufd_mock0");
	ck_assert_uint_eq(ev.seqnum, 77);
}
END_TEST

START_TEST(parse_refuses_malformed_messages)
{
	static const struct {
		const char *why;
		const char *buf;
		size_t len;
	} bad[] = {
		{ "empty", "", 0 },
		{ "truncated: no final NUL", rec_mock_remove, sizeof(rec_mock_remove) - 1 },
		{ "truncated mid-field", rec_mock_remove, 40 },
		{ "no @ in header", MSG("remove/devices/x\0ACTION=remove\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "header devpath not absolute", MSG("remove@x\0ACTION=remove\0DEVPATH=x\0SEQNUM=1") },
		{ "no SEQNUM", MSG("remove@/devices/x\0ACTION=remove\0DEVPATH=/devices/x") },
		{ "SEQNUM not a number", MSG("remove@/devices/x\0ACTION=remove\0DEVPATH=/devices/x\0SEQNUM=1a") },
		{ "SEQNUM overflows", MSG("remove@/devices/x\0ACTION=remove\0DEVPATH=/devices/x\0SEQNUM=99999999999999999999999") },
		{ "empty SEQNUM", MSG("remove@/devices/x\0ACTION=remove\0DEVPATH=/devices/x\0SEQNUM=") },
		{ "no ACTION", MSG("remove@/devices/x\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "no DEVPATH", MSG("remove@/devices/x\0ACTION=remove\0SEQNUM=1") },
		{ "header action disagrees", MSG("remove@/devices/x\0ACTION=add\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "header devpath disagrees", MSG("remove@/devices/x\0ACTION=remove\0DEVPATH=/devices/y\0SEQNUM=1") },
		{ "DEVPATH twice", MSG("remove@/devices/x\0ACTION=remove\0DEVPATH=/devices/x\0DEVPATH=/devices/y\0SEQNUM=1") },
		{ "ACTION twice", MSG("remove@/devices/x\0ACTION=remove\0ACTION=remove\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "empty field", MSG("remove@/devices/x\0ACTION=remove\0\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "field without =", MSG("remove@/devices/x\0ACTION=remove\0junk\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "field without key", MSG("remove@/devices/x\0ACTION=remove\0=v\0DEVPATH=/devices/x\0SEQNUM=1") },
		{ "udev's format", MSG("libudev\0\xfe\xed\xca\xfe") },
	};
	static char huge[9000];
	struct uevent ev;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(iopf__uevent_parse(bad[i].buf, bad[i].len, &ev) == -EBADMSG,
			      "accepted: %s", bad[i].why);
	memcpy(huge, rec_mock_remove, sizeof(rec_mock_remove));
	ck_assert_int_eq(iopf__uevent_parse(huge, sizeof(huge), &ev), -EBADMSG);
	ck_assert_int_eq(iopf__uevent_parse(NULL, 10, &ev), -EBADMSG);
}
END_TEST

/* ---- removal ---- */

static iopf_handle_t deferred[16];
static int ndeferred;
static iopf_handle_t cancelled[16];
static int ncancelled;
static struct iopf_ctx *cancel_ctx;

static int h_defer(struct iopf_group *g, void *ud)
{
	(void)ud;
	deferred[ndeferred++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

static void on_cancel(struct iopf_group *g, void *ud)
{
	ck_assert_ptr_eq(ud, &ncancelled);
	cancelled[ncancelled++] = iopf_group_handle(g);
	/* Answering from the callback is refused, not written. */
	ck_assert_int_eq(iopf_respond(cancel_ctx, iopf_group_handle(g),
				      IOPF_CODE_SUCCESS), -ENODEV);
}

static void setup(struct tctx *t)
{
	ndeferred = ncancelled = 0;
	iopf__sysfs = "/nonexistent-sysfs"; /* every removal confirmed */
	tctx_init(t);
	cancel_ctx = t->ctx;
	iopf_ctx_set_handler(t->ctx, h_defer, NULL);
	iopf_ctx_set_cancel_handler(t->ctx, on_cancel, &ncancelled);
}

/* Watch a device. Built without libnl-3 that must be refused with
 * EOPNOTSUPP; where netlink is not allowed (some containers) the test
 * says so and stops. Returns whether the device is watched. */
static bool watch_or_skip(struct tctx *t, uint32_t dev, const char *sysdev)
{
	int rc = iopf_ctx_watch_device(t->ctx, dev, sysdev);

#if IOPF_TEST_LIBNL
	if (rc == -EPERM || rc == -EACCES || rc == -EPROTONOSUPPORT) {
		fprintf(stderr, "skipped: no uevent socket here (%s)\n",
			strerror(-rc));
		return false;
	}
	ck_assert_int_eq(rc, 0);
	return true;
#else
	ck_assert_int_eq(rc, -EOPNOTSUPP);
	return false;
#endif
}

START_TEST(kernel_remove_cancels_handled_groups_and_refuses_answers)
{
	struct tctx t;
	struct iopf_stats st;

	setup(&t);
	if (!watch_or_skip(&t, 1, "iommufd_mock0")) {
		tctx_fini(&t);
		return;
	}
	fk_trigger(t.f, 1, 0, 1, 1, 0x1000);
	fk_trigger(t.f, 1, 5, 2, 1, 0x2000);
	fk_trigger(t.f, 2, 0, 3, 1, 0x3000);
	drive(t.ctx);
	ck_assert_int_eq(ndeferred, 3);
	/* handed out in turn by device: dev 1, dev 2, dev 1 */
	/* The kernel answers dev 1's groups as it lets go of the device,
	 * then announces the removal. */
	ck_assert_uint_eq(fk_detach(t.f, 1), 2);
	iopf__uevent_feed(t.ctx, MSG(rec_mock_remove), 0);
	ck_assert_int_eq(ncancelled, 2);
	ck_assert_uint_eq(cancelled[0], deferred[0]);
	ck_assert_uint_eq(cancelled[1], deferred[2]);
	/* Late answers from the handler: refused with ENODEV, not written. */
	ck_assert_int_eq(iopf_respond(t.ctx, deferred[0], IOPF_CODE_SUCCESS), -ENODEV);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 1, 5, 2, IOPF_CODE_SUCCESS), -ENODEV);
	/* The other device carries on. */
	ck_assert_int_eq(iopf_respond(t.ctx, deferred[1], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	ck_assert_int_eq(answer_of(t.f, 3), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	st = tstats(t.ctx);
	ck_assert_uint_eq(st.cancelled, 2);
	ck_assert_uint_eq(st.devices_gone, 1);
	ck_assert_uint_eq(st.uevents, 1);
	ck_assert_uint_eq(st.outstanding, 0);
	ck_assert_uint_eq(st.write_errors, 0);
	ck_assert_uint_eq(st.refused_answers, 4); /* 2 in callbacks, 2 above */
	tctx_fini(&t);
}
END_TEST

START_TEST(untrusted_malformed_and_unknown_uevents_are_ignored)
{
	struct tctx t;
	struct iopf_stats st;

	setup(&t);
	if (!watch_or_skip(&t, 1, "iommufd_mock0")) {
		tctx_fini(&t);
		return;
	}
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	iopf__uevent_feed(t.ctx, MSG(rec_mock_remove), 4242); /* user space */
	iopf__uevent_feed(t.ctx, rec_mock_remove, 30, 0);     /* truncated */
	iopf__uevent_feed(t.ctx, MSG(rec_pci_remove), 0);     /* other dev */
	iopf__uevent_feed(t.ctx, MSG(rec_mock_add), 0);       /* not removal */
	ck_assert_int_eq(ncancelled, 0);
	st = tstats(t.ctx);
	ck_assert_uint_eq(st.uevents, 4);
	ck_assert_uint_eq(st.uevents_untrusted, 1);
	ck_assert_uint_eq(st.uevents_malformed, 1);
	ck_assert_uint_eq(st.uevents_unmatched, 2);
	ck_assert_uint_eq(st.devices_gone, 0);
	ck_assert_int_eq(iopf_respond(t.ctx, deferred[0], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(match_by_devpath_and_unbind)
{
	struct tctx t;

	setup(&t);
	if (!watch_or_skip(&t, 7, "/devices/pci0000:00/0000:00:05.0/")) {
		tctx_fini(&t);
		return;
	}
	ck_assert_int_eq(iopf_ctx_watch_device(t.ctx, 8, "0000:00:04.0"), 0);
	ck_assert_int_eq(iopf_ctx_watch_device(t.ctx, 9, "a/b"), -EINVAL);
	ck_assert_int_eq(iopf_ctx_watch_device(t.ctx, 9, ""), -EINVAL);
	ck_assert_int_eq(iopf_ctx_watch_device(t.ctx, 9, "/sys/no/such/dev"), -ENOENT);
	iopf__uevent_feed(t.ctx, MSG(rec_pci_unbind), 0);
	iopf__uevent_feed(t.ctx, MSG(rec_pci_remove), 0);
	ck_assert_uint_eq(tstats(t.ctx).devices_gone, 2);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 7, IOPF_NO_PASID, 1, 0), -ENODEV);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 8, IOPF_NO_PASID, 1, 0), -ENODEV);
	ck_assert_int_eq(iopf_ctx_unwatch_device(t.ctx, 7), 0);
	ck_assert_int_eq(iopf_ctx_unwatch_device(t.ctx, 7), -ENOENT);
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 7, IOPF_NO_PASID, 1, 0), -ENOENT);
	tctx_fini(&t);
}
END_TEST

START_TEST(manual_gone_drops_unwritten_answers_and_unhandled_groups)
{
	struct tctx t;
	struct iopf_stats st;

	setup(&t);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	drive(t.ctx);
	/* one answer queued, not yet written */
	ck_assert_int_eq(iopf_respond(t.ctx, deferred[0], IOPF_CODE_SUCCESS), 0);
	/* a third group read, its handler not yet run */
	fk_trigger(t.f, 1, 0, 3, 1, 0);
	fk_detach(t.f, 1);
	ck_assert_int_eq(iopf_ctx_device_gone(t.ctx, 1), 2);
	ck_assert_int_eq(ncancelled, 1); /* only the one a handler holds */
	ck_assert_uint_eq(cancelled[0], deferred[1]);
	iopf_ctx_flush(t.ctx);
	drive(t.ctx);
	ck_assert_int_eq(ndeferred, 2);
	assert_each_answered_once(t.f); /* all by the kernel, none by us */
	st = tstats(t.ctx);
	ck_assert_uint_eq(st.write_calls, 0);
	ck_assert_uint_eq(st.cancelled, 2);
	ck_assert_int_eq(iopf_respond(t.ctx, deferred[0], IOPF_CODE_SUCCESS), -EALREADY);
	tctx_fini(&t);
}
END_TEST

START_TEST(group_read_for_gone_device_is_answered_invalid_until_rewatched)
{
	struct tctx t;
	int n = 0;

	setup(&t);
	iopf_ctx_set_handler(t.ctx, h_success, &n);
	ck_assert_int_eq(iopf_ctx_device_gone(t.ctx, 3), 0);
	fk_trigger(t.f, 3, 0, 1, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(answer_of(t.f, 1), IOPF_CODE_INVALID);
	/* The id is handed to a new device, which the caller registers. */
	ck_assert_int_eq(iopf_ctx_unwatch_device(t.ctx, 3), 0);
	fk_trigger(t.f, 3, 0, 2, 1, 0);
	drive(t.ctx);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(answer_of(t.f, 2), IOPF_CODE_SUCCESS);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static void on_resp(const struct iopf_response *r, void *ud)
{
	(*(int *)ud)++;
}

START_TEST(producer_refuses_gone_device_and_drops_its_partials)
{
	struct tctx t;
	int answers = 0;
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = &answers);
	struct iopf_source *p;
	struct iopf_request partial = { .dev_id = 4, .prgi = 1 };
	struct iopf_request last = { .dev_id = 4, .prgi = 2,
				     .flags = IOPF_F_LAST_PAGE };

	setup(&t);
	p = iopf_producer_new(t.ctx, &po);
	ck_assert_int_eq(iopf_producer_submit(p, &partial), 0);
	ck_assert_int_eq(iopf_producer_submit(p, &last), 1);
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).partial_held, 1);
	ck_assert_int_eq(iopf_ctx_device_gone(t.ctx, 4), 1);
	ck_assert_int_eq(ncancelled, 1);
	ck_assert_uint_eq(tstats(t.ctx).partial_held, 0);
	ck_assert_int_eq(iopf_producer_submit(p, &partial), -ENODEV);
	ck_assert_int_eq(iopf_producer_submit(p, &last), -ENODEV);
	/* the completed group still got its one answer, INVALID; the
	 * refused submissions owe none */
	ck_assert_int_eq(answers, 1);
	tctx_fini(&t);
}
END_TEST

/* The INVALID answers a removal gives a producer's groups count their
 * latency against the clock at the removal, whichever thread removes the
 * device: here the application, long after the context last read the
 * clock (the removal used to count them against that older reading). */
START_TEST(removal_answers_count_latency_up_to_the_removal)
{
	struct tctx t;
	int answers = 0;
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = &answers);
	IOPF_OPTS(iopf_device_stats, ds);
	struct iopf_request last = { .dev_id = 6, .prgi = 3,
				     .flags = IOPF_F_LAST_PAGE };
	struct iopf_source *p;

	setup(&t);
	p = iopf_producer_new(t.ctx, &po);
	ck_assert_int_eq(iopf_producer_submit(p, &last), 1);
	drive(t.ctx);
	ck_assert_int_eq(ndeferred, 1);
	usleep(30000);
	ck_assert_int_eq(iopf_ctx_device_gone(t.ctx, 6), 1);
	ck_assert_int_eq(answers, 1);
	ck_assert_int_eq(iopf_ctx_get_device_stats(t.ctx, 6, 0, IOPF_ALL_PASIDS, &ds), 0);
	ck_assert_uint_eq(ds.answers_invalid, 1);
	ck_assert_uint_ge(iopf_device_stats_latency_ns(&ds, 1.0), 30000000);
	tctx_fini(&t);
}
END_TEST

/* A forged "remove" sent by a user-space process to the kernel's uevent
 * group, through a real netlink socket: received, counted, ignored. */
START_TEST(forged_uevent_from_user_space_over_netlink_is_ignored)
{
	struct tctx t;
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int s;

	setup(&t);
	if (!watch_or_skip(&t, 1, "iommufd_mock0")) {
		tctx_fini(&t);
		return;
	}
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	drive(t.ctx);
	s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	ck_assert_int_ge(s, 0);
	if (sendto(s, rec_mock_remove, sizeof(rec_mock_remove), 0,
		   (struct sockaddr *)&to, sizeof(to)) < 0) {
		fprintf(stderr, "skipped: cannot send to the uevent group (%s)\n",
			strerror(errno));
		close(s);
		tctx_fini(&t);
		return;
	}
	close(s);
	for (int i = 0; i < 100 && !tstats(t.ctx).uevents; i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 10);
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_uint_ge(tstats(t.ctx).uevents_untrusted, 1);
	ck_assert_uint_eq(tstats(t.ctx).devices_gone, 0);
	ck_assert_int_eq(ncancelled, 0);
	ck_assert_int_eq(iopf_respond(t.ctx, deferred[0], IOPF_CODE_SUCCESS), 0);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

static struct fk_fault *midway_f;

static int h_gone_midway(struct iopf_group *g, void *ud)
{
	(*(int *)ud)++;
	/* the first handler sees its device go (the kernel answers both
	 * groups) and says so */
	fk_detach(midway_f, iopf_group_dev_id(g));
	ck_assert_int_ge(iopf_ctx_device_gone(cancel_ctx, iopf_group_dev_id(g)), 1);
	return IOPF_CODE_SUCCESS;
}

START_TEST(no_handler_call_for_a_group_dropped_earlier_in_its_round)
{
	struct tctx t;
	int calls = 0;

	setup(&t);
	iopf_ctx_set_handler(t.ctx, h_gone_midway, &calls);
	fk_trigger(t.f, 1, 0, 1, 1, 0);
	fk_trigger(t.f, 1, 0, 2, 1, 0);
	midway_f = t.f;
	drive(t.ctx);
	ck_assert_int_eq(calls, 1);
	ck_assert_uint_eq(tstats(t.ctx).write_calls, 0);
	ck_assert_uint_ge(tstats(t.ctx).refused_answers, 1);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

START_TEST(bad_arguments)
{
	ck_assert_int_eq(iopf_ctx_device_gone(NULL, 1), -EINVAL);
	ck_assert_int_eq(iopf_ctx_watch_device(NULL, 1, "x"), -EINVAL);
	ck_assert_int_eq(iopf_ctx_unwatch_device(NULL, 1), -EINVAL);
	ck_assert_int_eq(iopf_ctx_set_cancel_handler(NULL, NULL, NULL), -EINVAL);
}
END_TEST

/* A synthetic uevent (`echo remove > .../uevent`) is not a removal. */
static const char synth_remove[] =
	"remove@/devices/pci0000:00/0000:00:04.0\0ACTION=remove\0"
	"DEVPATH=/devices/pci0000:00/0000:00:04.0\0SUBSYSTEM=pci\0"
	"SYNTH_UUID=0\0SEQNUM=1900";

START_TEST(synthetic_remove_ignored)
{
	struct tctx t;

	setup(&t);
	if (!watch_or_skip(&t, 8, "0000:00:04.0")) {
		tctx_fini(&t);
		return;
	}
	fk_trigger(t.f, 8, 0, 1, 1, 0);
	drive(t.ctx);
	iopf__uevent_feed(t.ctx, MSG(synth_remove), 0);
	ck_assert_uint_eq(tstats(t.ctx).devices_gone, 0);
	ck_assert_uint_eq(tstats(t.ctx).uevents_synthetic, 1);
	ck_assert_int_eq(ncancelled, 0);
	/* the device's deferred group is still answerable */
	ck_assert_int_eq(iopf_respond_prg(t.ctx, 8, IOPF_NO_PASID, 1, 0), 0);
	iopf_ctx_flush(t.ctx);
	assert_each_answered_once(t.f);
	tctx_fini(&t);
}
END_TEST

/* A kernel `remove` is acted on once the sysfs node is gone; one whose
 * node stays is dropped, unconfirmed. */
START_TEST(remove_confirmed_by_sysfs)
{
	char root[] = "/tmp/iopf-sysfs-XXXXXX", node[128];
	struct tctx t;

	setup(&t);
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(node, sizeof(node), "%s/devices", root);
	ck_assert_int_eq(mkdir(node, 0700), 0);
	snprintf(node, sizeof(node), "%s/devices/pci0000:00", root);
	ck_assert_int_eq(mkdir(node, 0700), 0);
	snprintf(node, sizeof(node), "%s/devices/pci0000:00/0000:00:04.0", root);
	ck_assert_int_eq(mkdir(node, 0700), 0);
	iopf__sysfs = root;
	if (!watch_or_skip(&t, 8, "0000:00:04.0")) {
		tctx_fini(&t);
		return;
	}
	fk_trigger(t.f, 8, 0, 1, 1, 0);
	drive(t.ctx);
	iopf__uevent_feed(t.ctx, MSG(rec_pci_remove), 0);
	ck_assert_uint_eq(tstats(t.ctx).devices_gone, 0); /* node still there */
	drive(t.ctx);
	ck_assert_uint_eq(tstats(t.ctx).devices_gone, 0);
	ck_assert_int_eq(rmdir(node), 0);
	for (int i = 0; i < 50 && !tstats(t.ctx).devices_gone; i++) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(t.ctx), .events = POLLIN };

		poll(&p, 1, 100); /* the context fd wakes to look again */
		iopf_ctx_dispatch(t.ctx);
	}
	ck_assert_uint_eq(tstats(t.ctx).devices_gone, 1);
	ck_assert_int_eq(ncancelled, 1);
	tctx_fini(&t);
	snprintf(node, sizeof(node), "%s/devices/pci0000:00", root);
	rmdir(node);
	snprintf(node, sizeof(node), "%s/devices", root);
	rmdir(node);
	rmdir(root);
}
END_TEST

Suite *suite_device(void)
{
	Suite *s = suite_create("device");
	TCase *tc = tcase_create("device");

	tcase_add_test(tc, parse_recorded_messages);
	tcase_add_test(tc, parse_refuses_malformed_messages);
	tcase_add_test(tc, kernel_remove_cancels_handled_groups_and_refuses_answers);
	tcase_add_test(tc, removal_answers_count_latency_up_to_the_removal);
	tcase_add_test(tc, untrusted_malformed_and_unknown_uevents_are_ignored);
	tcase_add_test(tc, match_by_devpath_and_unbind);
	tcase_add_test(tc, manual_gone_drops_unwritten_answers_and_unhandled_groups);
	tcase_add_test(tc, group_read_for_gone_device_is_answered_invalid_until_rewatched);
	tcase_add_test(tc, producer_refuses_gone_device_and_drops_its_partials);
	tcase_add_test(tc, forged_uevent_from_user_space_over_netlink_is_ignored);
	tcase_add_test(tc, no_handler_call_for_a_group_dropped_earlier_in_its_round);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, synthetic_remove_ignored);
	tcase_add_test(tc, remove_confirmed_by_sysfs);
	suite_add_tcase(s, tc);
	return s;
}
