/* SPDX-License-Identifier: MIT */
/*
 * fuzz_uevent.c - kernel uevent messages, trusting nothing in them.
 *
 * Input: messages separated by the two bytes 0xff 0xfe (none: the whole
 * input is one message). The whole input goes through the parser, and a
 * NULL buffer of the input's length (must be refused). Each message goes
 * through
 * - iopf__uevent_parse() (lib/uevent.c): it must return 0 or -EBADMSG, and
 *   on 0 every field must point inside the message, NUL-terminated there,
 *   the header "ACTION@DEVPATH" must agree with ACTION= and DEVPATH=;
 * - iopf__uevent_feed() (lib/device.c's test seam) into a context that
 *   watches three devices (by DEVPATH, by name, by a sysfs-less DEVPATH
 *   with a trailing slash) and has deferred groups of each on a fake fault
 *   queue. The sender port is 0 (the kernel) unless the first byte of the
 *   message is 0xfd (then port 4242: must be ignored).
 * When a device is marked gone, the harness plays the kernel: it answers
 * the device's groups itself (fk_detach). At the end every group must have
 * been answered exactly once, each cancelled group reported once through
 * the cancel callback, and answers by handle to gone groups refused.
 */
#include "fuzz_util.h"

FZ_SYS_DEFINE

#define NDEV 3
static const char *const watch_as[NDEV] = {
	"/devices/pci0000:00/0000:00:04.0",
	"0000:00:05.0",
	"/devices/platform/iommu-test.0/",
};

#define MAXH 64
struct st {
	struct iopf_ctx *ctx;
	struct fk_fault *f;
	iopf_handle_t h[MAXH];
	uint32_t hdev[MAXH];
	bool cancelled[MAXH];
	unsigned int nh;
	bool gone[NDEV + 1];
	bool watching;
};
static struct st S;

static void check_parse(const char *buf, size_t len)
{
	struct uevent ev;
	int rc = iopf__uevent_parse(buf, len, &ev);

	FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "uevent_parse returned %d", rc);
	FUZZ_CHECK(buf || rc, "uevent_parse accepted no buffer");
	if (rc)
		return;
	FUZZ_CHECK(len >= 2 && buf[len - 1] == '\0', "accepted unterminated");
	const char *f[3] = { ev.action, ev.devpath, ev.subsystem };

	FUZZ_CHECK(ev.action && ev.devpath, "accepted without ACTION/DEVPATH");
	for (int i = 0; i < 3; i++) {
		if (!f[i])
			continue;
		FUZZ_CHECK(f[i] > buf && f[i] < buf + len,
			   "field %d points outside the message", i);
		FUZZ_CHECK(memchr(f[i], '\0', (size_t)(buf + len - f[i])),
			   "field %d not terminated inside the message", i);
	}
	/* the header says the same */
	const char *at = memchr(buf, '@', strlen(buf));

	FUZZ_CHECK(at, "accepted a header without '@'");
	FUZZ_CHECK((size_t)(at - buf) == strlen(ev.action) &&
			   !strncmp(buf, ev.action, (size_t)(at - buf)),
		   "header action disagrees with ACTION=");
	FUZZ_CHECK(!strcmp(at + 1, ev.devpath),
		   "header devpath disagrees with DEVPATH=");
	FUZZ_CHECK(ev.devpath[0] == '/', "DEVPATH does not start with /");
}

static int h_defer(struct iopf_group *g, void *ud)
{
	(void)ud;
	if (S.nh < MAXH) {
		S.h[S.nh] = iopf_group_handle(g);
		S.hdev[S.nh] = iopf_group_dev_id(g);
		S.nh++;
		return IOPF_DEFER;
	}
	return IOPF_CODE_SUCCESS;
}

static void on_cancel(struct iopf_group *g, void *ud)
{
	iopf_handle_t h = iopf_group_handle(g);
	unsigned int i;
	int rc;

	(void)ud;
	for (i = 0; i < S.nh && S.h[i] != h; i++)
		;
	FUZZ_CHECK(i < S.nh, "cancel callback for a group never handled");
	FUZZ_CHECK(!S.cancelled[i], "group cancelled twice");
	S.cancelled[i] = true;
	FUZZ_CHECK(iopf_group_dev_id(g) == S.hdev[i], "cancelled group's dev");
	rc = iopf_respond(S.ctx, h, IOPF_CODE_SUCCESS);
	FUZZ_CHECK(rc == -ENODEV, "answer in cancel callback gave %d", rc);
}

/* Which watched devices the library now treats as gone. */
static void sync_gone(void)
{
	for (uint32_t d = 1; d <= NDEV; d++) {
		int rc = iopf_respond_prg(S.ctx, d, IOPF_NO_PASID, 999,
					  IOPF_CODE_SUCCESS);

		FUZZ_CHECK(rc == -ENODEV || rc == -ENOENT,
			   "respond_prg on no group gave %d", rc);
		if (rc == -ENODEV && !S.gone[d]) {
			S.gone[d] = true;
			fk_detach(S.f, d); /* the kernel let go of it */
		}
	}
}

static void feed(const uint8_t *m, size_t len)
{
	uint32_t port = 0;

	check_parse((const char *)m, len);
	if (len && m[0] == 0xfd)
		port = 4242;
	{
		IOPF_OPTS(iopf_stats, a);
		IOPF_OPTS(iopf_stats, b);

		iopf_ctx_get_stats(S.ctx, &a);
		iopf__uevent_feed(S.ctx, m, len, port);
		iopf_ctx_get_stats(S.ctx, &b);
		FUZZ_CHECK(b.uevents == a.uevents + 1, "uevent not counted");
		if (port)
			FUZZ_CHECK(b.devices_gone == a.devices_gone &&
					   b.uevents_untrusted == a.uevents_untrusted + 1,
				   "uevent from user space acted on");
	}
	sync_gone();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	const struct fk_answer *a;

	/* the parser alone, on the input as given, and on no buffer */
	check_parse((const char *)data, size);
	if (!fz_allowed("nullbuf"))
		check_parse(NULL, size);

	memset(&S, 0, sizeof(S));
	fz_sys_install();
	S.ctx = iopf_ctx_new(NULL);
	FUZZ_CHECK(S.ctx, "iopf_ctx_new: %s (fd leak?)", strerror(errno));
	S.f = fk_fault_new();
	struct iopf_source *src = iopf_fault_queue_adopt(
		S.ctx, fk_fault_fd(S.f), fk_fault_id(S.f), NULL);
	FUZZ_CHECK(src, "adopt: %s", strerror(errno));
	iopf_ctx_set_handler(S.ctx, h_defer, NULL);
	iopf_ctx_set_cancel_handler(S.ctx, on_cancel, NULL);
	S.watching = true;
	for (uint32_t d = 1; d <= NDEV; d++) {
		int rc = iopf_ctx_watch_device(S.ctx, d, watch_as[d - 1]);

		if (rc) /* no uevent socket here: the feed still parses */
			S.watching = false;
		fk_trigger(S.f, d, 0, 1, IOPF_PERM_READ, 0x1000 * d);
		fk_trigger(S.f, d, 5, 2, IOPF_PERM_WRITE, 0x2000 * d);
	}
	fk_trigger(S.f, 9, 0, 1, IOPF_PERM_READ, 0x9000); /* not watched */
	iopf_ctx_dispatch(S.ctx);

	/* split into messages at 0xff 0xfe */
	size_t start = 0;
	for (size_t i = 0; i + 1 < size; i++) {
		if (data[i] == 0xff && data[i + 1] == 0xfe) {
			feed(data + start, i - start);
			start = i + 2;
			i++;
		}
	}
	feed(data + start, size - start);

	for (unsigned int i = 0; i < S.nh; i++) {
		int rc = iopf_respond(S.ctx, S.h[i], IOPF_CODE_SUCCESS);

		if (S.hdev[i] <= NDEV && S.gone[S.hdev[i]])
			FUZZ_CHECK(rc == -ENODEV,
				   "answer to a gone device's group gave %d", rc);
		else
			FUZZ_CHECK(rc == 0, "answer to a live group gave %d", rc);
		FUZZ_CHECK(!S.cancelled[i] || S.gone[S.hdev[i]],
			   "group of a live device cancelled");
	}
	/* a new group for each device: read after removal, answered INVALID */
	for (uint32_t d = 1; d <= NDEV; d++)
		fk_trigger(S.f, d, 0, 3, IOPF_PERM_READ, 0x3000 * d);
	iopf_ctx_dispatch(S.ctx);
	iopf_ctx_flush(S.ctx);
	iopf_ctx_free(S.ctx);

	a = fk_answers(S.f, &n);
	uint64_t total = fk_triggered(S.f);
	uint8_t seen[64] = { 0 };

	FUZZ_CHECK(total < sizeof(seen), "too many groups");
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(a[i].seq >= 1 && a[i].seq <= total,
			   "answer to unknown group %llu",
			   (unsigned long long)a[i].seq);
		FUZZ_CHECK(!seen[a[i].seq]++, "group %llu answered twice",
			   (unsigned long long)a[i].seq);
	}
	for (uint64_t s = 1; s <= total; s++)
		FUZZ_CHECK(seen[s], "group %llu never answered",
			   (unsigned long long)s);
	FUZZ_CHECK(fz_sys.refused == 0, "%llu answers refused by the kernel",
		   (unsigned long long)fz_sys.refused);
	fk_fault_free(S.f);
	return 0;
}
