/* SPDX-License-Identifier: MIT */
/*
 * fuzz_producer.c - one-at-a-time producers: the op stream of a VMM or an
 * IOMMU driver that sees page requests singly.
 *
 * The input is a script (fuzz_util.h reader; missing bytes read as 0):
 *   byte 0: partial_cap (bits 0-1, 0: default), a second producer (bit 2),
 *           a default handler (bit 3), max_outstanding 2 (bit 4)
 *   then ops, one byte each (op % NOPS) and their arguments; see do_op().
 * Keys come from small ranges (4 devices x 4 PASIDs x 4 PRG indices) so
 * that groups collide. The handler takes a byte when called (answer,
 * defer, bogus code, answer by handle and return too, nested op); the
 * respond callback takes one too (sometimes it submits a LAST request:
 * allowed by the header).
 *
 * Oracle: per producer and per (device, PASID, PRG index), the respond
 * callback never runs more often than groups were completed (a LAST submit
 * returning 1 or -ENOMEM), at any point; after the sources are closed and
 * the context freed, exactly as often (for devices never marked gone: the
 * header drops a gone device's groups without an answer). Return values
 * are checked against the header, answers by handle as in fuzz_records.c.
 */
#include "fuzz_util.h"

FZ_SYS_DEFINE

#define NKEY 64
#define MAXINST 16
#define NSLOT 2
#define MAXISSUED 1024
#define MAXDEF 128

/* PASID choices; index 3 is IOPF_NO_PASID (invalid with PASID_VALID) */
static const uint32_t pasids[4] = { 0, 1, 0xfffff, IOPF_NO_PASID };

struct inst {
	struct iopf_source *src;
	bool open;
	uint32_t comp[NKEY], resp[NKEY];
};

struct issued {
	iopf_handle_t h;
	uint8_t done; /* DONE_RETURN, DONE_HANDLE: see fuzz_records.c */
};

static struct {
	struct rd rd;
	struct iopf_ctx *ctx;
	struct inst in[MAXINST];
	unsigned int ninst;
	int slot[NSLOT]; /* instance in each slot, -1: none */
	unsigned int partial_cap;
	bool gone[4], gone_ever[4];
	bool alloc_fail_armed;
	int depth, cb_depth;
	/* LAST submits under way (nested when a respond callback submits):
	 * each one's respond may come before it returns */
	struct {
		int inst, key;
	} infl[8];
	int ninfl;
	struct issued is[MAXISSUED];
	unsigned int nis;
	bool is_overflow;
	unsigned int def[MAXDEF], ndef, def_next;
} S;

static void do_op(void);

static int key_of(uint32_t dev, uint32_t pasid, uint32_t prgi)
{
	int p;

	for (p = 0; p < 4 && pasids[p] != pasid; p++)
		;
	if (dev > 3 || prgi > 3 || p == 4)
		return -1;
	return (int)(dev * 16 + (uint32_t)p * 4 + prgi);
}

static void on_respond(const struct iopf_response *r, void *ud)
{
	struct inst *in = ud;
	int inst = (int)(in - S.in), k = key_of(r->dev_id, r->pasid, r->prgi);
	uint32_t allowed;

	FUZZ_CHECK(k >= 0, "respond for a key never submitted: dev %u pasid %#x prgi %u",
		   r->dev_id, r->pasid, r->prgi);
	FUZZ_CHECK(r->code <= 1, "respond with code %u", r->code);
	in->resp[k]++;
	TR("  respond: producer %d dev %u pasid %#x prgi %u code %u\n", inst,
	   r->dev_id, r->pasid, r->prgi, r->code);
	allowed = in->comp[k];
	for (int i = 0; i < S.ninfl; i++)
		allowed += S.infl[i].inst == inst && S.infl[i].key == k;
	FUZZ_CHECK(in->resp[k] <= allowed,
		   "producer %d: answer %u for dev %u pasid %#x prgi %u, only %u groups completed",
		   inst, in->resp[k], r->dev_id, r->pasid, r->prgi, in->comp[k]);
	/* the callback may submit (to an open producer) */
	if (S.cb_depth < 2 && S.ninfl < 8 && rd_more(&S.rd)) {
		uint8_t b = rd_u8(&S.rd);

		if ((b & 7) == 7 && in->open && !fz_allowed("ready")) {
			struct iopf_request q = {
				.flags = IOPF_F_LAST_PAGE, .dev_id = (b >> 3) & 3,
				.pasid = IOPF_NO_PASID, .prgi = b >> 6,
			};
			int rc, kk = key_of(q.dev_id, q.pasid, q.prgi);

			S.cb_depth++;
			S.infl[S.ninfl].inst = inst;
			S.infl[S.ninfl++].key = kk;
			rc = iopf_producer_submit(in->src, &q);
			TR("  submit from respond: dev %u prgi %u LAST -> %d\n",
			   q.dev_id, q.prgi, rc);
			S.ninfl--;
			S.cb_depth--;
			if (rc == 1 || rc == -ENOMEM)
				in->comp[kk]++;
			if (rc == -ENOMEM) {
				FUZZ_CHECK(S.alloc_fail_armed, "submit: -ENOMEM");
				S.alloc_fail_armed = false;
			}
			FUZZ_CHECK(rc == 1 || rc == -ENOMEM ||
					   (rc == -ENODEV && S.gone[q.dev_id]),
				   "LAST submit from respond gave %d", rc);
		}
	}
}

static int open_inst(void)
{
	IOPF_OPTS(iopf_producer_opts, o, .respond = on_respond,
		  .partial_cap = S.partial_cap);
	struct inst *in;

	if (S.ninst == MAXINST)
		return -1;
	in = &S.in[S.ninst];
	o.userdata = in;
	in->src = iopf_producer_new(S.ctx, &o);
	if (!in->src && errno == ENOMEM) /* an armed allocation failure */
		return -1;
	FUZZ_CHECK(in->src, "producer_new: %s", strerror(errno));
	in->open = true;
	return (int)S.ninst++;
}

static struct inst *pick(unsigned int sel, int *inst)
{
	int i = S.slot[sel % NSLOT];

	if (i < 0)
		i = S.slot[(sel + 1) % NSLOT];
	if (i < 0)
		return NULL;
	if (inst)
		*inst = i;
	return &S.in[i];
}

static void submit(unsigned int sel, uint32_t flags, uint32_t dev,
		   unsigned int psel, uint32_t prgi, bool reserved)
{
	struct iopf_request q = { .flags = flags, .dev_id = dev,
				  .pasid = pasids[psel], .prgi = prgi,
				  .perm = IOPF_PERM_READ, .addr = 0x1000ull * prgi,
				  .reserved = reserved ? 1 : 0 };
	bool pv = flags & IOPF_F_PASID_VALID, last = flags & IOPF_F_LAST_PAGE;
	/* flag bits libiopf does not know are passed on since 1.3 */
	bool bad = reserved || (pv && q.pasid == IOPF_NO_PASID);
	int inst, k = key_of(dev, pv ? q.pasid : IOPF_NO_PASID, prgi), rc;
	struct inst *in = pick(sel, &inst);
	bool pushed = false;

	if (!in)
		return;
	if (last && !bad && S.ninfl < 8) {
		S.infl[S.ninfl].inst = inst;
		S.infl[S.ninfl++].key = k;
		pushed = true;
	}
	rc = iopf_producer_submit(in->src, &q);
	TR("submit producer %d flags %#x dev %u pasid %#x prgi %u%s -> %d\n", inst,
	   flags, dev, q.pasid, prgi, reserved ? " reserved" : "", rc);
	if (pushed)
		S.ninfl--;
	if (bad) {
		FUZZ_CHECK(rc == -EINVAL, "bad request: submit gave %d", rc);
		return;
	}
	if (S.gone[dev]) {
		FUZZ_CHECK(rc == -ENODEV, "gone device: submit gave %d", rc);
		return;
	}
	if (rc == -ENOMEM) {
		/* a LAST: answered INVALID through respond; a partial:
		 * dropped (1.2) */
		FUZZ_CHECK(S.alloc_fail_armed, "submit gave -ENOMEM");
		S.alloc_fail_armed = false;
	}
	if (last) {
		FUZZ_CHECK(rc == 1 || rc == -ENOMEM, "LAST submit gave %d", rc);
		in->comp[k]++;
		/* triage: never leave a group waiting for dispatch, so it is
		 * never answered off the ready queue (a known crash) */
		if (rc == 1 && !S.depth && !S.cb_depth && fz_allowed("ready"))
			iopf_ctx_dispatch(S.ctx);
	} else {
		/* -ENOMEM: the partial was dropped for want of memory (1.2) */
		FUZZ_CHECK(rc == 0 || rc == -ENOSPC || rc == -ENOMEM, /* checked above */
			   "partial submit gave %d", rc);
	}
	FUZZ_CHECK(in->resp[k] <= in->comp[k], "more answers than groups");
}

static void op_submit(void)
{
	uint8_t b1 = rd_u8(&S.rd), b2 = rd_u8(&S.rd);
	uint32_t flags = b1 & 3;

	if (b2 & 0x20)
		flags |= 1u << (2 + (b2 >> 6)); /* unknown flag */
	submit(b1 >> 7, flags, (b1 >> 2) & 3, b2 & 3, (b1 >> 4) & 3,
	       b2 & 0x10);
}

/* One byte: LAST or not, PASID_VALID, dev, psel(0-2), prgi, producer. */
static void op_submit1(bool last)
{
	uint8_t b = rd_u8(&S.rd);
	unsigned int psel = (b >> 2) & 3;

	submit(b >> 7, (last ? IOPF_F_LAST_PAGE : 0) |
			       (psel != 3 ? IOPF_F_PASID_VALID : 0),
	       b & 3, psel, (b >> 4) & 3, false);
}

static int handler(struct iopf_group *g, void *ud)
{
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);
	iopf_handle_t h = iopf_group_handle(g);
	unsigned int i = UINT32_MAX;
	uint8_t d;
	int rc;

	(void)ud;
	FUZZ_CHECK(n >= 1 && (r[n - 1].flags & IOPF_F_LAST_PAGE),
		   "group without its LAST request last");
	for (size_t k = 0; k + 1 < n; k++)
		FUZZ_CHECK(!(r[k].flags & IOPF_F_LAST_PAGE), "LAST inside a group");
	FUZZ_CHECK(iopf_group_cookie(g) == 0, "producer group with a cookie");
	FUZZ_CHECK(key_of(iopf_group_dev_id(g), iopf_group_pasid(g),
			  iopf_group_prgi(g)) >= 0, "group of an unknown key");
	for (unsigned int k = 0; k < S.nis; k++)
		FUZZ_CHECK(S.is[k].h != h, "handler called twice for a group");
	if (S.nis < MAXISSUED) {
		i = S.nis++;
		S.is[i] = (struct issued){ .h = h };
	} else {
		S.is_overflow = true;
	}
	if (!rd_more(&S.rd))
		d = 0;
	else
		d = rd_u8(&S.rd);
	TR(" handler dev %u pasid %#x prgi %u handle %#llx: %s\n",
	   iopf_group_dev_id(g), iopf_group_pasid(g), iopf_group_prgi(g),
	   (unsigned long long)h,
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
		rc = IOPF_DEFER;
		break;
	case 5:
		rc = (d & 8) ? 3 : -5;
		break;
	case 6:
		rc = iopf_respond(S.ctx, h, IOPF_CODE_INVALID);
		/* a handler only ever gets a group awaiting its answer */
		FUZZ_CHECK(rc == 0 || fz_allowed("ended"),
			   "handler called for a group already ended: "
			   "respond from it gave %d", rc);
		if (i != UINT32_MAX)
			S.is[i].done = DONE_HANDLE;
		rc = (d & 8) ? IOPF_CODE_SUCCESS : IOPF_DEFER;
		break;
	default:
		rc = IOPF_DEFER;
		S.depth++;
		do_op();
		S.depth--;
		break;
	}
	if (i != UINT32_MAX) {
		if (rc == IOPF_DEFER) {
			S.def[S.def_next] = i;
			S.def_next = (S.def_next + 1) % MAXDEF;
			if (S.ndef < MAXDEF)
				S.ndef++;
		} else if (!S.is[i].done) {
			S.is[i].done = DONE_RETURN;
		}
	}
	return rc;
}

static void respond(unsigned int i, iopf_handle_t h, uint32_t code)
{
	int rc = iopf_respond(S.ctx, h, (enum iopf_code)code);

	TR("respond %#llx code %u -> %d\n", (unsigned long long)h, code, rc);
	if (code > 1) {
		FUZZ_CHECK(rc == -EINVAL, "respond, code %u: %d", code, rc);
	} else if (i == UINT32_MAX) {
		FUZZ_CHECK(rc < 0, "a handle never issued answered a group");
	} else {
		FUZZ_CHECK(FZ_IN(rc, 0, -EALREADY, -ESHUTDOWN, -ENODEV),
			   "respond gave %d", rc);
		if (rc == 0) {
			fz_check_done(S.is[i].done, h);
			S.is[i].done = DONE_HANDLE;
		}
	}
}

static void op_respond(void)
{
	static const uint32_t codes[4] = { 0, 1, 2, 0 };
	uint8_t b = rd_u8(&S.rd);
	unsigned int i;

	if ((b & 0x20) && S.nis) { /* any handle, even a stale one */
		i = (b & 0x1f) % S.nis;
		respond(i, S.is[i].h, codes[b >> 6]);
		return;
	}
	if (!S.ndef)
		return;
	i = S.def[(b & 0x1f) % S.ndef];
	respond(i, S.is[i].h, codes[b >> 6]);
}

static void op_respond_prg(void)
{
	uint8_t b = rd_u8(&S.rd);
	uint32_t dev = b & 3, code = (b >> 6) == 2 ? 2 : (b >> 6) & 1;
	int rc = iopf_respond_prg(S.ctx, dev, pasids[(b >> 2) & 3],
				  (b >> 4) & 3, (enum iopf_code)code);

	TR("respond_prg dev %u pasid %#x prgi %u code %u -> %d\n", dev,
	   pasids[(b >> 2) & 3], (b >> 4) & 3, code, rc);

	if (code > 1)
		FUZZ_CHECK(rc == -EINVAL, "respond_prg, code %u: %d", code, rc);
	else if (S.gone[dev])
		FUZZ_CHECK(rc == -ENODEV, "respond_prg, gone device: %d", rc);
	else
		/* -ENOMEM (1.2): no memory for the PRG index */
		FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -ENOMEM,
			   "respond_prg gave %d", rc);
}

static void op_flush_pasid(void)
{
	uint8_t b = rd_u8(&S.rd);
	struct inst *in = pick(b >> 7, NULL);
	int rc;

	if (!in)
		return;
	rc = iopf_producer_flush_pasid(in->src, b & 3, pasids[(b >> 2) & 3]);
	TR("flush_pasid dev %u pasid %#x -> %d\n", b & 3, pasids[(b >> 2) & 3], rc);
	FUZZ_CHECK(rc >= 0, "flush_pasid gave %d", rc);
}

static void op_discard(void)
{
	uint8_t b = rd_u8(&S.rd);
	struct inst *in = pick(b >> 7, NULL);
	unsigned int fl = (b >> 2) & 3; /* 0, 1 (bad), 2 (ALL_DEVICES), 3 (bad) */
	int rc;

	if (!in)
		return;
	rc = iopf_producer_discard_partial(in->src, b & 3, fl);
	TR("discard dev %u flags %#x -> %d\n", b & 3, fl, rc);
	if (fl & ~IOPF_ALL_DEVICES)
		FUZZ_CHECK(rc == -EINVAL, "discard, bad flags: %d", rc);
	else
		FUZZ_CHECK(rc >= 0, "discard gave %d", rc);
}

static void op_drain(void)
{
	uint8_t b = rd_u8(&S.rd);
	int rc = iopf_ctx_drain(S.ctx, b & 3, pasids[(b >> 2) & 3],
				(b & 0x10) ? IOPF_ALL_PASIDS : 0, 0);

	TR("drain dev %u -> %d\n", b & 3, rc);

	if (S.depth)
		FUZZ_CHECK(rc == -EDEADLK, "drain from a handler gave %d", rc);
	else
		FUZZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "drain gave %d", rc);
}

static void op_answer_invalid(void)
{
	uint8_t b = rd_u8(&S.rd);
	int rc;

	TR("answer_invalid dev %u pasid %#x%s\n", b & 3, pasids[(b >> 2) & 3],
	   (b & 0x10) ? " all" : "");
	rc = iopf_ctx_answer_invalid(S.ctx, b & 3, pasids[(b >> 2) & 3],
				     (b & 0x10) ? IOPF_ALL_PASIDS : 0);
	TR("answer_invalid -> %d\n", rc);

	FUZZ_CHECK(rc >= 0, "answer_invalid gave %d", rc);
}

static void op_dispatch(void)
{
	int rc;

	TR("dispatch\n");
	rc = iopf_ctx_dispatch(S.ctx);
	TR("dispatch -> %d\n", rc);
	if (S.depth)
		FUZZ_CHECK(rc == -EDEADLK, "dispatch from a handler gave %d", rc);
	else
		FUZZ_CHECK(rc >= 0, "dispatch gave %d", rc);
}

static void op_close(void)
{
	uint8_t b = rd_u8(&S.rd);
	unsigned int sl = b & 1;
	int i = S.slot[sl];

	if (i < 0 || S.depth) /* not from a handler */
		return;
	S.in[i].open = false;
	TR("close producer %d\n", i);
	iopf_source_close(S.in[i].src);
	S.slot[sl] = (b & 2) ? open_inst() : -1;
}

static void op_gone(void)
{
	uint8_t b = rd_u8(&S.rd);
	uint32_t dev = b & 3;
	int rc;

	TR("%s dev %u\n", (b & 4) ? "gone" : "unwatch", dev);
	if (b & 4) {
		/* gone before the call returns: its groups' respond calls
		 * (INVALID, 1.2) run inside it and may submit again */
		S.gone[dev] = S.gone_ever[dev] = true;
		rc = iopf_ctx_device_gone(S.ctx, dev);
		/* -ENOMEM (1.2): groups dropped, no gone mark kept */
		FUZZ_CHECK(rc >= 0 || rc == -ENOMEM, "device_gone gave %d", rc);
		if (rc < 0)
			S.gone[dev] = false;
	} else {
		rc = iopf_ctx_unwatch_device(S.ctx, dev);
		FUZZ_CHECK(rc == 0 || rc == -ENOENT, "unwatch gave %d", rc);
		S.gone[dev] = false;
	}
}

static void op_handler(void)
{
	uint8_t b = rd_u8(&S.rd);
	iopf_handler_fn fn = (b & 4) ? NULL : handler;
	int rc;

	TR("handler %s %s\n", fn ? "set" : "clear", (b & 1) ? "device" : "default");
	if (b & 1)
		rc = iopf_ctx_set_device_handler(S.ctx, (b >> 3) & 3, fn, NULL);
	else
		rc = iopf_ctx_set_handler(S.ctx, fn, NULL);
	/* -ENOMEM: an armed allocation failure may land here (1.2 routes
	 * every allocation through the failure hook) */
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM, "set handler gave %d", rc);
}

enum {
	OP_SUBMIT, OP_LAST, OP_PARTIAL, OP_RESPOND_PRG, OP_RESPOND,
	OP_FLUSH_PASID, OP_DISCARD, OP_DRAIN, OP_ANSWER_INVALID, OP_DISPATCH,
	OP_CLOSE, OP_FAIL_ALLOC, OP_HANDLER, OP_GONE, OP_RESPOND_ALL, NOPS
};

static void do_op(void)
{
	switch (rd_u8(&S.rd) % NOPS) {
	case OP_SUBMIT: op_submit(); break;
	case OP_LAST: op_submit1(true); break;
	case OP_PARTIAL: op_submit1(false); break;
	case OP_RESPOND_PRG: op_respond_prg(); break;
	case OP_RESPOND: op_respond(); break;
	case OP_FLUSH_PASID: op_flush_pasid(); break;
	case OP_DISCARD: op_discard(); break;
	case OP_DRAIN: op_drain(); break;
	case OP_ANSWER_INVALID: op_answer_invalid(); break;
	case OP_DISPATCH: op_dispatch(); break;
	case OP_CLOSE: op_close(); break;
	case OP_FAIL_ALLOC:
		{
			int n = rd_u8(&S.rd) & 7;

			TR("fail allocation %d from now\n", n);
			iopf__fail_alloc_after(n);
		}
		S.alloc_fail_armed = true;
		break;
	case OP_HANDLER: op_handler(); break;
	case OP_GONE: op_gone(); break;
	default:
		for (unsigned int k = 0; k < S.ndef; k++)
			respond(S.def[k], S.is[S.def[k]].h, IOPF_CODE_SUCCESS);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h0;

	memset(&S, 0, sizeof(S));
	S.rd = (struct rd){ .p = data, .n = size };
	S.ninfl = 0;
	fz_sys_install();
	iopf__fail_alloc_after(-1);
	h0 = rd_u8(&S.rd);
	S.partial_cap = h0 & 3;
	{
		IOPF_OPTS(iopf_ctx_opts, co,
			  .max_outstanding = (h0 & 0x10) ? 2 : 0);

		S.ctx = iopf_ctx_new(&co);
	}
	FUZZ_CHECK(S.ctx, "iopf_ctx_new: %s (fd leak?)", strerror(errno));
	fz_trace_ctx(S.ctx);
	TR("setup: partial_cap %u producers %d handler %d max_out %d\n",
	   S.partial_cap, 1 + !!(h0 & 4), !!(h0 & 8), (h0 & 0x10) ? 2 : 0);
	S.slot[0] = open_inst();
	S.slot[1] = (h0 & 4) ? open_inst() : -1;
	if (h0 & 8)
		iopf_ctx_set_handler(S.ctx, handler, NULL);

	while (rd_more(&S.rd))
		do_op();

	/* close one producer by hand, the rest with the context */
	TR("finish\n");
	iopf__fail_alloc_after(-1);
	for (unsigned int i = 0; i < S.ninst; i++)
		S.in[i].open = false;
	if (S.slot[0] >= 0)
		iopf_source_close(S.in[S.slot[0]].src);
	iopf_ctx_free(S.ctx);

	for (unsigned int i = 0; i < S.ninst; i++)
		for (int k = 0; k < NKEY; k++) {
			struct inst *in = &S.in[i];

			if (S.gone_ever[k / 16])
				FUZZ_CHECK(in->resp[k] <= in->comp[k], "over-answered");
			else
				FUZZ_CHECK(in->resp[k] == in->comp[k],
					   "producer %u dev %d pasid %#x prgi %d: %u groups completed, %u answers",
					   i, k / 16, pasids[(k / 4) % 4], k % 4,
					   in->comp[k], in->resp[k]);
		}
	return 0;
}
