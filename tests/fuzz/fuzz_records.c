/* SPDX-License-Identifier: MIT */
/*
 * fuzz_records.c - the fault-fd record stream, end to end.
 *
 * The input is a script (reader in fuzz_util.h; missing bytes read as 0):
 *   byte 0: read_records (bits 0-2, 0: default), max_read_records (bits
 *           3-5, 0: default), FK_SMALL_ZERO (bit 6), IOPF_FQ_CLOSE_FD (7)
 *   byte 1: batch_max (bits 0-1), max_outstanding (bits 2-3), a default
 *           handler (bit 4), iopf_fault_queue_alloc instead of adopt (5)
 *   then ops, one byte each (op % NOPS) and their arguments; see do_op().
 * The handler, when called, takes one more byte: answer now, defer, return
 * a bogus code, answer by handle and return too, or run one nested op.
 *
 * At the end every deferred and issued handle is answered, the context
 * dispatched until the fake's queue is empty, and freed. Oracles:
 * - every read/write is whole records/answers with codes 0/1 (fuzz_util.h);
 * - no answer the fake refuses names a kernel cookie (< RAW_BASE), unless
 *   the kernel answered groups libiopf was not told about (untold detach);
 * - every group raised with fk_trigger*() is answered exactly once, by
 *   libiopf or by the fake's detach; raw injected records get no more
 *   answers than they hold distinct cookies;
 * - a handler never sees the same group twice, each group it sees is well
 *   formed, and no answer by handle succeeds after the group was answered
 *   or for a handle never issued;
 * - return values are among those the header documents.
 */
#include "fuzz_util.h"

FZ_SYS_DEFINE

#define RAW_BASE 0x4000u /* raw injected cookies: above any the fake hands out here */
#define MAXISSUED 1024
#define MAXDEF 128
#define MAXRAW 64

static const uint32_t pasids[4] = { 0, 1, 2, 0xfffff };

struct issued {
	iopf_handle_t h;
	uint32_t dev, pasid, prgi;
	/* answered (or ended) for sure, so no answer may succeed: by the
	 * handler's return value (DONE_RETURN) or by handle (DONE_HANDLE) */
	uint8_t done;
};

static struct {
	struct rd rd;
	struct iopf_ctx *ctx;
	struct iopf_source *src;
	struct fk_fault *f;
	unsigned int grp_max;
	bool final;
	bool untold_detach;
	bool read_fail_armed;
	int depth;
	struct issued is[MAXISSUED];
	unsigned int nis;
	bool is_overflow;
	unsigned int def[MAXDEF]; /* indices into is[] */
	unsigned int ndef, def_next;
	uint32_t raw_cookie[MAXRAW];
	unsigned int nraw;
	uint32_t raw_next;
	uint64_t raw_answerable;
} S;

static int handler(struct iopf_group *g, void *ud);
static void do_op(void);

static int find_issued(iopf_handle_t h)
{
	for (unsigned int i = 0; i < S.nis; i++)
		if (S.is[i].h == h)
			return (int)i;
	return -1;
}

static void check_group(struct iopf_group *g)
{
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	FUZZ_CHECK(n >= 1, "group without records");
	FUZZ_CHECK(r[n - 1].flags & IOPF_F_LAST_PAGE,
		   "group's last record lacks LAST_PAGE");
	for (size_t i = 0; i < n; i++) {
		/* flag bits libiopf does not know are handed on (1.2) */
		FUZZ_CHECK(i == n - 1 || !(r[i].flags & IOPF_F_LAST_PAGE),
			   "LAST_PAGE inside a group");
		FUZZ_CHECK(!!(r[i].flags & IOPF_F_PASID_VALID) ==
				   (iopf_group_pasid(g) != IOPF_NO_PASID),
			   "PASID_VALID disagrees with the group's PASID");
	}
	FUZZ_CHECK(iopf_group_cookie(g) != 0, "group with cookie 0");
	FUZZ_CHECK(iopf_group_source(g) == S.src, "group of another source");
	FUZZ_CHECK(iopf_group_handle(g) != 0, "handle 0");
}

static unsigned int issue(struct iopf_group *g)
{
	iopf_handle_t h = iopf_group_handle(g);
	int i = find_issued(h);

	FUZZ_CHECK(i < 0, "handler called twice for handle %#llx",
		   (unsigned long long)h);
	if (S.nis == MAXISSUED) {
		S.is_overflow = true;
		return UINT32_MAX;
	}
	S.is[S.nis] = (struct issued){ .h = h, .dev = iopf_group_dev_id(g),
				       .pasid = iopf_group_pasid(g),
				       .prgi = iopf_group_prgi(g) };
	return S.nis++;
}

static void defer(unsigned int i)
{
	if (i == UINT32_MAX)
		return;
	S.def[S.def_next] = i;
	S.def_next = (S.def_next + 1) % MAXDEF;
	if (S.ndef < MAXDEF)
		S.ndef++;
}

/* Answer by handle and check the result against what we know. */
static int respond(unsigned int i, iopf_handle_t h, uint32_t code)
{
	int rc = iopf_respond(S.ctx, h, (enum iopf_code)code);

	TR("respond %#llx code %u -> %d\n", (unsigned long long)h, code, rc);

	if (code > 1) {
		FUZZ_CHECK(rc == -EINVAL, "respond with code %u gave %d", code,
			   rc);
		return rc;
	}
	if (i == UINT32_MAX) {
		/* From a handler, the handle may name a group of the same
		 * batch whose handler has not run yet: it may be answered. */
		FUZZ_CHECK(rc != 0 || S.depth,
			   "handle %#llx never issued answered a group",
			   (unsigned long long)h);
		FUZZ_CHECK(FZ_IN(rc, 0, -ENOENT, -EALREADY, -ESHUTDOWN, -ENODEV),
			   "respond (unknown handle) gave %d", rc);
		return rc;
	}
	FUZZ_CHECK(FZ_IN(rc, 0, -EALREADY, -ESHUTDOWN, -ENODEV),
		   "respond gave %d", rc);
	if (rc == 0) {
		fz_check_done(S.is[i].done, h);
		S.is[i].done = DONE_HANDLE;
	}
	return rc;
}

static int handler(struct iopf_group *g, void *ud)
{
	unsigned int i;
	uint8_t d;
	int rc;

	(void)ud;
	check_group(g);
	i = issue(g);
	if (S.final || !rd_more(&S.rd)) {
		if (i != UINT32_MAX)
			S.is[i].done = DONE_RETURN;
		return IOPF_CODE_SUCCESS;
	}
	d = rd_u8(&S.rd);
	TR(" handler dev %u pasid %#x prgi %u cookie %u handle %#llx: %s\n",
	   iopf_group_dev_id(g), iopf_group_pasid(g), iopf_group_prgi(g),
	   iopf_group_cookie(g), (unsigned long long)iopf_group_handle(g),
	   (const char *[]){ "success", "success", "invalid", "defer", "defer",
			     "bogus", "respond+return", "defer+op" }[d & 7]);
	switch (d & 7) {
	case 0:
	case 1:
	case 2:
		rc = (d & 7) == 2 ? IOPF_CODE_INVALID : IOPF_CODE_SUCCESS;
		break;
	case 3:
	case 4:
		defer(i);
		return IOPF_DEFER;
	case 5:
		rc = (d & 8) ? 7 : -1; /* bogus: answered INVALID, logged */
		break;
	case 6: /* answer by handle, then return an answer too */
		rc = iopf_respond(S.ctx, iopf_group_handle(g),
				  IOPF_CODE_SUCCESS);
		/* a handler only ever gets a group awaiting its answer */
		FUZZ_CHECK(rc == 0 || fz_allowed("ended"),
			   "handler called for a group already ended: "
			   "respond from it gave %d", rc);
		if (i != UINT32_MAX)
			S.is[i].done = DONE_HANDLE;
		rc = (d & 8) ? IOPF_CODE_INVALID : IOPF_DEFER;
		break;
	default: /* defer, then do something else from inside */
		defer(i);
		S.depth++;
		do_op();
		S.depth--;
		return IOPF_DEFER;
	}
	if (rc != IOPF_DEFER && i != UINT32_MAX && !S.is[i].done)
		S.is[i].done = DONE_RETURN;
	return rc;
}

static void dispatch(void)
{
	int rc;

	TR("dispatch\n");
	rc = iopf_ctx_dispatch(S.ctx);
	TR("dispatch -> %d\n", rc);

	if (S.depth) {
		FUZZ_CHECK(rc == -EDEADLK, "dispatch from a handler gave %d", rc);
		return;
	}
	if (rc == -EIO) {
		FUZZ_CHECK(S.read_fail_armed, "dispatch: -EIO with no read failure");
		S.read_fail_armed = false;
		return;
	}
	FUZZ_CHECK(rc >= 0, "dispatch gave %d", rc);
}

static void op_trigger(void)
{
	uint8_t b1 = rd_u8(&S.rd), b2 = rd_u8(&S.rd);
	unsigned int n = 1 + (b1 & 3);
	uint32_t dev = (b1 >> 2) & 3, prgi = (b1 >> 4) & 3,
		 pasid = pasids[b1 >> 6];
	struct iopf_k_pgfault r[4];

	if (n > S.grp_max)
		n = S.grp_max;
	memset(r, 0, sizeof(r));
	for (unsigned int i = 0; i < n; i++) {
		r[i].flags = (i == n - 1 ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0) |
			     (pasid ? IOPF_K_PGFAULT_FLAGS_PASID_VALID : 0);
		r[i].dev_id = dev;
		r[i].pasid = pasid;
		r[i].grpid = prgi;
		r[i].perm = b2 & 0xf;
		r[i].addr = 0x1000ull * (i + 1);
	}
	switch (b2 >> 4) { /* mostly well formed; some broken shapes */
	case 0:
		r[n - 1].flags &= ~IOPF_K_PGFAULT_FLAGS_LAST_PAGE;
		break;
	case 1:
		r[0].flags |= IOPF_K_PGFAULT_FLAGS_LAST_PAGE;
		break;
	case 2:
		r[n - 1].flags |= 1u << 2;
		break;
	case 3:
		r[n - 1].dev_id ^= 1;
		break;
	case 4:
		r[n - 1].flags ^= IOPF_K_PGFAULT_FLAGS_PASID_VALID;
		break;
	default:
		break;
	}
	uint64_t seq = fk_trigger_group(S.f, r, n);

	TR("trigger n %u dev %u pasid %u prgi %u shape %u -> seq %llu\n", n, dev,
	   pasid, prgi, b2 >> 4, (unsigned long long)seq);
}

static void op_trigger1(void)
{
	uint8_t b = rd_u8(&S.rd);

	uint64_t seq = fk_trigger(S.f, b & 3, pasids[(b >> 4) & 3],
				  (b >> 2) & 3, b >> 6, 0x42000);

	TR("trigger1 dev %u pasid %u prgi %u -> seq %llu\n", b & 3,
	   pasids[(b >> 4) & 3], (b >> 2) & 3, (unsigned long long)seq);
}

static uint32_t raw_new(void)
{
	uint32_t c = RAW_BASE + S.raw_next++;

	if (S.nraw < MAXRAW)
		S.raw_cookie[S.nraw++] = c;
	return c;
}

static void op_raw(void)
{
	uint8_t b1 = rd_u8(&S.rd);
	unsigned int n = 1 + (b1 & 3);
	struct iopf_k_pgfault r[4];
	uint32_t distinct[4];
	unsigned int nd = 0;

	if (n > S.grp_max)
		n = S.grp_max;
	memset(r, 0, sizeof(r));
	for (unsigned int i = 0; i < n; i++) {
		uint8_t r0 = rd_u8(&S.rd), r1 = rd_u8(&S.rd);

		r[i].flags = (r0 & 0x80) ? (r0 & 0x1f) : (r0 & 3);
		r[i].dev_id = (r0 >> 2) & 3;
		r[i].grpid = (r0 >> 4) & 3;
		r[i].pasid = pasids[r1 >> 6];
		r[i].perm = r0 & 0xf;
		r[i].reserved = (r1 & 0x20) ? 0xabad : 0;
		r[i].length = (r1 & 0x10) ? 4096 : 0;
		r[i].addr = 0x7000ull + 0x1000ull * i;
		switch (r1 & 3) {
		case 0:
			r[i].cookie = 0;
			break;
		case 1:
			r[i].cookie = raw_new();
			break;
		case 2: /* same group as the record before */
			if (i) {
				r[i].cookie = r[i - 1].cookie;
				r[i].dev_id = r[i - 1].dev_id;
				r[i].pasid = r[i - 1].pasid;
				r[i].grpid = r[i - 1].grpid;
			} else {
				r[i].cookie = raw_new();
			}
			break;
		default:
			r[i].cookie = S.nraw ? S.raw_cookie[((r1 >> 2) & 3) % S.nraw] :
					       raw_new();
			break;
		}
		bool seen = !r[i].cookie;

		for (unsigned int k = 0; k < nd && !seen; k++)
			seen = distinct[k] == r[i].cookie;
		if (!seen)
			distinct[nd++] = r[i].cookie;
	}
	S.raw_answerable += nd;
	TR("raw n %u:", n);
	for (unsigned int i = 0; i < n; i++)
		TR(" [c%u d%u p%u g%u f%#x]", r[i].cookie, r[i].dev_id,
		   r[i].pasid, r[i].grpid, r[i].flags);
	TR("\n");
	fk_inject_raw(S.f, r, n);
}

static void op_fail(void)
{
	static const int rerr[4] = { EINTR, EAGAIN, EIO, ENOMEM };
	static const int werr[2] = { EINTR, EAGAIN };
	uint8_t b = rd_u8(&S.rd);

	TR("fail next %s\n", (b & 1) ? "write" : "read");
	if (b & 1) {
		fk_fail_next(S.f, 1, werr[(b >> 1) & 1]);
	} else {
		int err = rerr[(b >> 1) & 3];

		fk_fail_next(S.f, 0, err);
		S.read_fail_armed = err == EIO || err == ENOMEM;
	}
}

static void op_respond(void)
{
	static const uint32_t codes[4] = { 0, 1, 2, 0 };
	uint8_t b = rd_u8(&S.rd);
	unsigned int i;

	if (!S.ndef)
		return;
	i = S.def[(b & 0x3f) % S.ndef];
	respond(i, S.is[i].h, codes[b >> 6]);
}

static void op_respond_all(void)
{
	for (unsigned int k = 0; k < S.ndef; k++)
		respond(S.def[k], S.is[S.def[k]].h, IOPF_CODE_SUCCESS);
}

static void op_respond_random(void)
{
	uint8_t b1 = rd_u8(&S.rd), b2 = rd_u8(&S.rd), b3 = rd_u8(&S.rd);
	iopf_handle_t h = (uint64_t)b2 << 32 | b1;

	if ((b3 & 1) && S.nis) {
		struct issued *is = &S.is[(b3 >> 3) % S.nis];
		uint64_t gen = is->h >> 32, slot = (uint32_t)is->h;

		switch ((b3 >> 1) & 3) {
		case 0:
			h = is->h;
			break;
		case 1:
			h = (gen + 1) << 32 | slot;
			break;
		case 2:
			h = (gen - 1) << 32 | slot;
			break;
		default:
			h = gen << 32 | (slot + 1);
			break;
		}
	} else if (b3 & 2) {
		h = ~h;
	}
	int i = find_issued(h);

	if (i < 0 && S.is_overflow)
		return; /* cannot tell what it names */
	respond(i < 0 ? UINT32_MAX : (unsigned int)i, h, IOPF_CODE_SUCCESS);
}

static uint32_t key_pasid(unsigned int sel)
{
	return sel ? pasids[sel] : IOPF_NO_PASID;
}

static void op_respond_prg(void)
{
	static const uint32_t codes[4] = { 0, 1, 2, 0 };
	uint8_t b = rd_u8(&S.rd);
	uint32_t code = codes[b >> 6];
	int rc = iopf_respond_prg(S.ctx, b & 3, key_pasid((b >> 2) & 3),
				  (b >> 4) & 3, (enum iopf_code)code);

	TR("respond_prg dev %u pasid %#x prgi %u code %u -> %d\n", b & 3,
	   key_pasid((b >> 2) & 3), (b >> 4) & 3, code, rc);
	if (code > 1)
		FUZZ_CHECK(rc == -EINVAL, "respond_prg, code %u: %d", code, rc);
	else
		FUZZ_CHECK(FZ_IN(rc, 0, -ENOENT, -ENODEV, -ENOMEM), "respond_prg gave %d",
			   rc);
}

static void op_detach(void)
{
	uint8_t b = rd_u8(&S.rd);
	uint32_t dev = b & 3;
	int rc;

	TR("detach dev %u mode %s\n", dev,
	   (const char *[]){ "told", "gone", "untold", "unwatch" }[(b >> 2) & 3]);
	switch ((b >> 2) & 3) {
	case 0: /* detach ioctl, and libiopf told right after */
		fk_detach(S.f, dev);
		rc = iopf_source_detach(S.src, dev, 0, IOPF_ALL_PASIDS);
		FUZZ_CHECK(rc >= 0, "source_detach gave %d", rc);
		break;
	case 1: /* the device went away */
		fk_detach(S.f, dev);
		rc = iopf_ctx_device_gone(S.ctx, dev);
		FUZZ_CHECK(rc >= 0, "device_gone gave %d", rc);
		break;
	case 2: /* libiopf not told: it sees cookies come back */
		fk_detach(S.f, dev);
		S.untold_detach = true;
		break;
	default: /* a new device under the id */
		rc = iopf_ctx_unwatch_device(S.ctx, dev);
		FUZZ_CHECK(rc == 0 || rc == -ENOENT, "unwatch gave %d", rc);
		break;
	}
}

static void key_args(uint8_t b, uint32_t *dev, uint32_t *pasid,
		     unsigned int *flags)
{
	*dev = b & 3;
	*pasid = key_pasid((b >> 2) & 3);
	*flags = (b & 0x10) ? IOPF_ALL_PASIDS : 0;
	if (b & 0x20)
		*flags |= 1u << 7; /* unknown flag */
}

static void op_drain(void)
{
	uint32_t dev, pasid;
	unsigned int fl;
	int rc;

	key_args(rd_u8(&S.rd), &dev, &pasid, &fl);
	rc = iopf_ctx_drain(S.ctx, dev, pasid, fl, 0);
	TR("drain dev %u pasid %#x flags %#x -> %d\n", dev, pasid, fl, rc);
	if (fl & ~IOPF_ALL_PASIDS)
		FUZZ_CHECK(rc == -EINVAL, "drain, bad flags: %d", rc);
	else if (S.depth)
		FUZZ_CHECK(rc == -EDEADLK, "drain from a handler gave %d", rc);
	else
		FUZZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "drain gave %d", rc);
}

static void op_answer_invalid(void)
{
	uint32_t dev, pasid;
	unsigned int fl;
	int rc;

	key_args(rd_u8(&S.rd), &dev, &pasid, &fl);
	rc = iopf_ctx_answer_invalid(S.ctx, dev, pasid, fl);
	TR("answer_invalid dev %u pasid %#x flags %#x -> %d\n", dev, pasid, fl,
	   rc);
	if (fl & ~IOPF_ALL_PASIDS)
		FUZZ_CHECK(rc == -EINVAL, "answer_invalid, bad flags: %d", rc);
	else
		FUZZ_CHECK(rc >= 0, "answer_invalid gave %d", rc);
}

static void op_handler(void)
{
	uint8_t b = rd_u8(&S.rd);
	uint32_t dev = (b >> 2) & 3;
	iopf_handler_fn fn = (b & 0x10) ? NULL : handler;
	int rc;

	TR("handler %s %s dev %u\n", fn ? "set" : "clear",
	   (const char *[]){ "default", "device", "pasid", "pasid" }[b & 3], dev);
	switch (b & 3) {
	case 0:
		rc = iopf_ctx_set_handler(S.ctx, fn, NULL);
		break;
	case 1:
		rc = iopf_ctx_set_device_handler(S.ctx, dev, fn, NULL);
		break;
	default:
		rc = iopf_ctx_set_pasid_handler(S.ctx, dev, key_pasid(b >> 6),
						fn, NULL);
		break;
	}
	/* -ENOMEM: an armed allocation failure may land here (1.2 routes
	 * every allocation through the failure hook) */
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM, "set handler gave %d", rc);
}

enum {
	OP_TRIGGER, OP_TRIGGER1, OP_RAW, OP_FAIL, OP_SMALL, OP_DISPATCH,
	OP_RESPOND, OP_RESPOND_PRG, OP_DETACH, OP_DRAIN, OP_FLUSH,
	OP_ANSWER_INVALID, OP_HANDLER, OP_RESPOND_ALL, OP_RESPOND_RANDOM,
	NOPS
};

static void do_op(void)
{
	switch (rd_u8(&S.rd) % NOPS) {
	case OP_TRIGGER: op_trigger(); break;
	case OP_TRIGGER1: op_trigger1(); break;
	case OP_RAW: op_raw(); break;
	case OP_FAIL: op_fail(); break;
	case OP_SMALL: TR("small mode toggled\n"); fk_set_small(S.f, (rd_u8(&S.rd) & 1) ? FK_SMALL_ZERO :
							     FK_SMALL_EINVAL);
		break;
	case OP_DISPATCH: dispatch(); break;
	case OP_RESPOND: op_respond(); break;
	case OP_RESPOND_PRG: op_respond_prg(); break;
	case OP_DETACH: op_detach(); break;
	case OP_DRAIN: op_drain(); break;
	case OP_FLUSH:
		TR("flush\n");
		FUZZ_CHECK(iopf_ctx_flush(S.ctx) == 0, "flush");
		break;
	case OP_ANSWER_INVALID: op_answer_invalid(); break;
	case OP_HANDLER: op_handler(); break;
	case OP_RESPOND_ALL: op_respond_all(); break;
	default: op_respond_random(); break;
	}
}

static void setup(void)
{
	uint8_t h0 = rd_u8(&S.rd), h1 = rd_u8(&S.rd);
	unsigned int rr = h0 & 7, mx = (h0 >> 3) & 7;
	unsigned int rr_eff = rr ? rr : 256, mxr = mx ? rr_eff + mx - 1 : 0;
	IOPF_OPTS(iopf_ctx_opts, co, .batch_max = h1 & 3,
		  .max_outstanding = (h1 >> 2) & 3);
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = rr,
		  .max_read_records = mxr,
		  .flags = (h0 & 0x80) ? IOPF_FQ_CLOSE_FD : 0);
	unsigned int eff = mxr ? mxr : 65536;

	if (eff < rr_eff)
		eff = rr_eff;
	S.grp_max = eff < 4 ? eff : 4;
	TR("setup: read_records %u max %u small %d close_fd %d batch %u max_out %u handler %d %s\n",
	   rr, mxr, !!(h0 & 0x40), !!(h0 & 0x80), h1 & 3, (h1 >> 2) & 3,
	   !!(h1 & 0x10), (h1 & 0x20) ? "alloc" : "adopt");
	S.ctx = iopf_ctx_new(&co);
	FUZZ_CHECK(S.ctx, "iopf_ctx_new: %s (fd leak?)", strerror(errno));
	fz_trace_ctx(S.ctx);
	if (h1 & 0x20) {
		int ifd = fk_iommufd_open();
		uint32_t id = 0;

		S.src = iopf_fault_queue_alloc(S.ctx, ifd, &fo, &id);
		FUZZ_CHECK(S.src, "alloc: %s", strerror(errno));
		S.f = fk_fault_by_fd(iopf_source_get_fd(S.src));
		FUZZ_CHECK(S.f && fk_fault_id(S.f) == id, "alloc: no fake fault");
		fk_sys_close(ifd);
	} else {
		S.f = fk_fault_new();
		S.src = iopf_fault_queue_adopt(S.ctx, fk_fault_fd(S.f),
					       fk_fault_id(S.f), &fo);
		FUZZ_CHECK(S.src, "adopt: %s", strerror(errno));
	}
	if (h0 & 0x40)
		fk_set_small(S.f, FK_SMALL_ZERO);
	if (h1 & 0x10)
		iopf_ctx_set_handler(S.ctx, handler, NULL);
}

/* Answer everything, read everything, then close. */
static void finish(void)
{
	IOPF_OPTS(iopf_stats, st);
	int i;

	S.final = true;
	TR("finish\n");
	iopf_ctx_set_handler(S.ctx, handler, NULL);
	for (unsigned int k = 0; k < S.nis; k++)
		respond(k, S.is[k].h, IOPF_CODE_SUCCESS);
	for (i = 0; i < 10000; i++) {
		dispatch();
		FUZZ_CHECK(iopf_ctx_get_stats(S.ctx, &st) == 0, "stats");
		if (!fk_queued(S.f) && !st.outstanding)
			break;
	}
	if (fz_allowed("stall")) {
		iopf_ctx_free(S.ctx);
		return;
	}
	FUZZ_CHECK(!fk_queued(S.f),
		   "%u groups never read (queue stalled, %llu outstanding)",
		   fk_queued(S.f), (unsigned long long)st.outstanding);
	FUZZ_CHECK(!st.outstanding || S.is_overflow,
		   "%llu groups outstanding with every handle answered",
		   (unsigned long long)st.outstanding);
	iopf_ctx_free(S.ctx);
}

static void check_answers(void)
{
	size_t n;
	const struct fk_answer *a = fk_answers(S.f, &n);
	uint64_t total = fk_triggered(S.f), raw = 0;
	uint8_t *seen = calloc(total + 1, 1);

	for (size_t i = 0; i < n; i++) {
		if (!a[i].seq) {
			raw += !a[i].automatic;
			continue;
		}
		FUZZ_CHECK(a[i].seq <= total, "answer to group %llu of %llu",
			   (unsigned long long)a[i].seq,
			   (unsigned long long)total);
		FUZZ_CHECK(!seen[a[i].seq]++,
			   "group %llu (dev %u pasid %u prgi %u) answered twice",
			   (unsigned long long)a[i].seq, a[i].dev_id, a[i].pasid,
			   a[i].grpid);
	}
	for (uint64_t s = 1; s <= total; s++)
		FUZZ_CHECK(seen[s] || fz_allowed("stall"),
			   "group %llu never answered", (unsigned long long)s);
	free(seen);
	FUZZ_CHECK(raw <= S.raw_answerable,
		   "%llu answers to raw records holding %llu cookies",
		   (unsigned long long)raw,
		   (unsigned long long)S.raw_answerable);
	if (!S.untold_detach && !fz_allowed("refused"))
		for (unsigned int i = 0; i < fz_sys.nrefused_logged; i++)
			FUZZ_CHECK(fz_sys.refused_cookie[i] >= RAW_BASE,
				   "the kernel refused an answer to cookie %u "
				   "(never handed out, or answered already)",
				   fz_sys.refused_cookie[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(&S, 0, sizeof(S));
	S.rd = (struct rd){ .p = data, .n = size };
	fz_sys_install();
	iopf__fail_alloc_after(-1);
	setup();
	while (rd_more(&S.rd))
		do_op();
	finish();
	check_answers();
	fk_fault_free(S.f);
	return 0;
}
