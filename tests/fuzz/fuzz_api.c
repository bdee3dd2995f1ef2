/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.c - option structs and handles into every public entry point
 * that takes them. Nothing may crash; invalid input must give a negative
 * errno (or NULL with errno set), valid input must work.
 *
 * Option structs are passed in buffers of exactly the size their `sz`
 * claims (ASan sees any read or write past it), with a tail past the
 * struct this release knows that is zero or not (non-zero: -EINVAL).
 * Pointer fields get a valid function or NULL: a garbage pointer would be
 * the caller's bug, not the library's. Worker counts stay small.
 *
 * The input is a script (fuzz_util.h reader; missing bytes read as 0):
 * ctx opts, fault-queue opts (adopt, then alloc), producer opts, stats
 * sizes, then until the end: ops (do_op(): an op byte, a flag byte, a
 * device byte, then what the op reads) on handles, keys and flags.
 * Oracles: the documented return values; an answer by a handle never
 * issued, or to a group already answered, must fail; at the end every
 * group the fake raised is answered exactly once and every completed
 * producer group once through respond.
 */
#include <limits.h>
#include <math.h>

#include "fuzz_util.h"

FZ_SYS_DEFINE

#define MAXISSUED 256

static struct {
	struct rd rd;
	struct iopf_ctx *ctx;
	struct iopf_source *fq[2];   /* adopted, allocated (or NULL) */
	struct fk_fault *f[2];
	bool fq_closed[2];
	struct iopf_source *prod;
	bool prod_closed;
	uint64_t completed, responded;
	bool alloc_fail_armed;
	iopf_handle_t is[MAXISSUED];
	bool done[MAXISSUED];
	unsigned int nis;
	bool final;
	uint32_t gone_mask;
	bool gone_ever; /* a gone device's producer groups get no answer */
	unsigned int handler_sets, handler_destroys; /* _full setters (1.3) */
	bool sliced;    /* a dispatch may leave groups ready, no handle issued */
} S;

/* Each set gets its own userdata (0x1000 + n): the same userdata and
 * destroy set again would be handed over, not destroyed (by design). */
static void on_destroy(void *ud)
{
	uintptr_t n = (uintptr_t)ud - 0x1000;

	FUZZ_CHECK(n < S.handler_sets, "destroy got userdata %p", ud);
	S.handler_destroys++;
	FUZZ_CHECK(S.handler_destroys <= S.handler_sets,
		   "more destroys than handlers set");
}

static void log_cb(int level, const char *msg, void *ud)
{
	(void)ud;
	FUZZ_CHECK(level >= 0 && level <= 7, "log level %d", level);
	FUZZ_CHECK(strlen(msg) < 4096, "log message");
}

static void on_respond(const struct iopf_response *r, void *ud)
{
	(void)ud;
	FUZZ_CHECK(r->code <= 1, "respond code %u", r->code);
	S.responded++;
	FUZZ_CHECK(S.responded <= S.completed + 1, "more answers than groups");
}

static int handler(struct iopf_group *g, void *ud)
{
	(void)ud;
	if (S.final || S.nis == MAXISSUED)
		return IOPF_CODE_SUCCESS;
	S.is[S.nis++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

/* A buffer of exactly `sz` bytes (at least a size_t) holding the struct
 * `st` of `st_sz` bytes, its sz field set to `sz`, then `tail` bytes. */
static void *opts_buf(const void *st, size_t st_sz, size_t sz, bool dirty_tail,
		      uint8_t where)
{
	size_t n = sz < sizeof(size_t) ? sizeof(size_t) : sz;
	unsigned char *b = calloc(1, n);

	memcpy(b, st, st_sz < n ? st_sz : n);
	memcpy(b, &sz, sizeof(sz));
	if (dirty_tail && sz > st_sz)
		b[st_sz + where % (sz - st_sz)] = (unsigned char)(where | 1);
	return b;
}

static size_t pick_sz(size_t st_sz)
{
	uint8_t b = rd_u8(&S.rd);

	switch (b & 7) {
	case 0:
	case 1:
	case 2:
		return st_sz; /* this release */
	case 3:
		return st_sz + 1 + (b >> 3); /* a newer release */
	case 4:
		return b >> 3 < st_sz ? b >> 3 : st_sz; /* older, or broken */
	case 5:
		return sizeof(size_t);
	case 6:
		return (size_t)(b >> 3) * 8; /* field boundaries */
	default:
		return st_sz + 4096;
	}
}

/* What the library will see of a struct given `sz` bytes of it. */
static void seen(void *dst, const void *src, size_t st_sz, size_t sz)
{
	memset(dst, 0, st_sz);
	memcpy(dst, src, sz < st_sz ? sz : st_sz);
}

static struct iopf_ctx *try_ctx(void)
{
	static const unsigned int workers[8] = { 0, 0, 0, 0, 1, 2, 1025, UINT_MAX };
	static const unsigned int batch[8] = { 0, 1, 2, 3, 1024, 65536, 0, 7 };
	static const unsigned int deadline[4] = { 0, 0, 60000, UINT_MAX };
	static const int level[8] = { 0, 1, 4, 7, 8, -1, 3, INT_MIN };
	struct iopf_ctx_opts o, eff;
	size_t sz = pick_sz(sizeof(o));
	uint8_t b1 = rd_u8(&S.rd), b2 = rd_u8(&S.rd), b3 = rd_u8(&S.rd);
	bool dirty = b3 & 0x80, ok;
	struct iopf_ctx *ctx;
	void *buf;

	memset(&o, 0, sizeof(o));
	o.workers = workers[b1 & 7];
	o.batch_max = batch[(b1 >> 3) & 7];
	o.max_outstanding = (b1 & 0x40) ? rd_u32(&S.rd) : 0;
	o.deadline_ms = deadline[b2 & 3];
	o.log_level = level[(b2 >> 2) & 7];
	o.log_userdata = (void *)(uintptr_t)rd_u64(&S.rd);
	if ((b2 & 0x20) &&
	    sz >= offsetof(struct iopf_ctx_opts, log_fn) + sizeof(o.log_fn))
		o.log_fn = log_cb;
	/* 1.3: bounded dispatch by default, PASID counters, poison, and one
	 * flag bit no release knows */
	o.dispatch_max_groups = (b3 & 0x40) ? (b3 & 7) : 0;
	o.flags = (b3 >> 3) & 7;
	/* a size cutting through `workers` must not ask for 255 threads */
	if (sz > offsetof(struct iopf_ctx_opts, workers) &&
	    sz < offsetof(struct iopf_ctx_opts, workers) + sizeof(o.workers) &&
	    o.workers == UINT_MAX)
		o.workers = 1025;
	seen(&eff, &o, sizeof(o), sz);
	ok = sz >= sizeof(size_t) && !(dirty && sz > sizeof(o)) &&
	     eff.log_level >= 0 && eff.log_level <= 7 && eff.workers <= 1024 &&
	     !(eff.flags & ~(IOPF_CTX_PASID_STATS | IOPF_CTX_POISON));
	if (ok && eff.dispatch_max_groups)
		S.sliced = true;
	buf = opts_buf(&o, sizeof(o), sz, dirty, b3);
	errno = 0;
	ctx = iopf_ctx_new(buf);
	free(buf);
	if (ok)
		FUZZ_CHECK(ctx, "ctx_new refused valid opts (sz %zu): %s", sz,
			   strerror(errno));
	else
		FUZZ_CHECK(!ctx && errno == EINVAL,
			   "ctx_new: invalid opts (sz %zu) gave %p errno %d", sz,
			   (void *)ctx, errno);
	if (ctx && eff.workers) { /* threads: keep the rest deterministic */
		iopf_ctx_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

static void try_fault_queues(void)
{
	static const unsigned int flags[8] = { 0, 0, IOPF_FQ_CLOSE_FD, IOPF_FQ_CLOSE_FD,
					       2, 0x80000000u, IOPF_FQ_CLOSE_FD | 4, 0 };
	static const unsigned int rr[8] = { 0, 1, 2, 3, 256, 65536, 65537, 0 };
	static const unsigned int mr[8] = { 0, 1, 2, 5, 256, 65536, 0, 3 };

	for (int k = 0; k < 2; k++) {
		struct iopf_fault_queue_opts o, eff;
		size_t sz = pick_sz(sizeof(o));
		uint8_t b1 = rd_u8(&S.rd), b2 = rd_u8(&S.rd);
		bool dirty = b2 & 0x80, use_null = (b2 & 0x60) == 0x60, ok;
		int fd;
		void *buf;
		struct iopf_source *src;

		memset(&o, 0, sizeof(o));
		o.flags = flags[b1 & 7];
		o.read_records = rr[(b1 >> 3) & 7];
		o.max_read_records = mr[(b1 >> 6) | ((b2 & 1) << 2)];
		seen(&eff, &o, sizeof(o), sz);
		ok = use_null || (sz >= sizeof(size_t) && !(dirty && sz > sizeof(o)) &&
				  !(eff.flags & ~IOPF_FQ_CLOSE_FD));
		buf = opts_buf(&o, sizeof(o), sz, dirty, b2);
		errno = 0;
		if (k == 0) { /* adopt */
			static const int bad_fd[4] = { -1, INT_MIN, 1 << 20, -7 };

			S.f[0] = fk_fault_new();
			fd = (b2 & 0x18) == 0x18 ? bad_fd[(b2 >> 1) & 3] : fk_fault_fd(S.f[0]);
			src = iopf_fault_queue_adopt(S.ctx, fd, fk_fault_id(S.f[0]),
						     use_null ? NULL : buf);
			if (fd != fk_fault_fd(S.f[0]))
				FUZZ_CHECK(!src && (errno == EBADF || errno == EINVAL),
					   "adopt of fd %d gave %p errno %d", fd,
					   (void *)src, errno);
			else if (ok)
				FUZZ_CHECK(src, "adopt refused valid opts (sz %zu): %s",
					   sz, strerror(errno));
			else
				FUZZ_CHECK(!src && errno == EINVAL,
					   "adopt: invalid opts gave %p errno %d",
					   (void *)src, errno);
		} else { /* alloc */
			int ifd = fk_iommufd_open();
			uint32_t id = 0;

			fd = (b2 & 0x18) == 0x18 ? -1 : (b2 & 0x18) == 0x10 ? iopf_ctx_get_fd(S.ctx) : ifd;
			src = iopf_fault_queue_alloc(S.ctx, fd, use_null ? NULL : buf,
						     (b2 & 2) ? NULL : &id);
			if (fd != ifd)
				FUZZ_CHECK(!src && errno != 0,
					   "alloc on fd %d gave %p errno %d", fd,
					   (void *)src, errno);
			else if (ok)
				FUZZ_CHECK(src, "alloc refused valid opts (sz %zu): %s",
					   sz, strerror(errno));
			else
				FUZZ_CHECK(!src && errno == EINVAL,
					   "alloc: invalid opts gave %p errno %d",
					   (void *)src, errno);
			if (src) {
				S.f[1] = fk_fault_by_fd(iopf_source_get_fd(src));
				FUZZ_CHECK(S.f[1], "alloc: no fault object");
				FUZZ_CHECK((b2 & 2) || id == fk_fault_id(S.f[1]),
					   "alloc: wrong fault id");
			}
			fk_sys_close(ifd);
		}
		free(buf);
		S.fq[k] = src;
		if (src)
			FUZZ_CHECK(iopf_source_get_fd(src) >= 0 &&
					   iopf_producer_submit(src, &(struct iopf_request){
						   .flags = IOPF_F_LAST_PAGE }) == -EINVAL &&
					   iopf_producer_discard_partial(src, 0, 0) == -EINVAL &&
					   iopf_producer_flush_pasid(src, 0, 0) == -EINVAL,
				   "producer calls on a fault queue");
	}
}

static void try_producer(void)
{
	struct iopf_producer_opts o, eff;
	size_t sz = pick_sz(sizeof(o));
	uint8_t b1 = rd_u8(&S.rd);
	bool dirty = b1 & 0x80, ok;
	void *buf;

	memset(&o, 0, sizeof(o));
	if (!(b1 & 1) &&
	    sz >= offsetof(struct iopf_producer_opts, respond) + sizeof(o.respond))
		o.respond = on_respond;
	o.userdata = (void *)(uintptr_t)rd_u64(&S.rd);
	o.partial_cap = (b1 & 2) ? rd_u32(&S.rd) : (b1 >> 2) & 3;
	seen(&eff, &o, sizeof(o), sz);
	ok = sz >= sizeof(size_t) && !(dirty && sz > sizeof(o)) && eff.respond;
	buf = opts_buf(&o, sizeof(o), sz, dirty, b1);
	errno = 0;
	S.prod = iopf_producer_new(S.ctx, (b1 & 0x7c) == 0x7c ? NULL : buf);
	if ((b1 & 0x7c) == 0x7c)
		FUZZ_CHECK(!S.prod && errno == EINVAL, "producer_new(NULL opts)");
	else if (ok)
		FUZZ_CHECK(S.prod, "producer_new refused valid opts: %s",
			   strerror(errno));
	else
		FUZZ_CHECK(!S.prod && errno == EINVAL,
			   "producer_new: invalid opts gave %p errno %d",
			   (void *)S.prod, errno);
	free(buf);
	if (S.prod)
		FUZZ_CHECK(iopf_source_get_fd(S.prod) == -EINVAL &&
				   iopf_source_get_fault_id(S.prod) == 0,
			   "fault-queue getters on a producer");
}

static void try_stats(void)
{
	size_t sz = pick_sz(sizeof(struct iopf_stats));
	size_t n = sz < sizeof(size_t) ? sizeof(size_t) : sz;
	unsigned char *b = malloc(n);
	uint8_t fill = rd_u8(&S.rd);
	double q;
	uint64_t qbits = rd_u64(&S.rd);
	int rc;

	memset(b, fill, n);
	memcpy(b, &sz, sizeof(sz));
	rc = iopf_ctx_get_stats(S.ctx, (struct iopf_stats *)b);
	FUZZ_CHECK(sz >= sizeof(size_t) ? rc == 0 : rc == -EINVAL,
		   "get_stats(sz %zu) gave %d", sz, rc);
	FUZZ_CHECK(!memcmp(b, &sz, sizeof(sz)), "get_stats changed sz");
	/* the histogram of whatever the buffer holds, any quantile */
	memcpy(&q, &qbits, sizeof(q));
	if (fill & 1)
		q = (double)(fill >> 1) / 64.0;
	(void)iopf_stats_latency_ns((struct iopf_stats *)b, q);
	free(b);
	FUZZ_CHECK(iopf_ctx_get_stats(S.ctx, NULL) == -EINVAL &&
			   iopf_ctx_get_stats(NULL, NULL) == -EINVAL,
		   "get_stats(NULL)");
}

static int find(iopf_handle_t h)
{
	for (unsigned int i = 0; i < S.nis; i++)
		if (S.is[i] == h)
			return (int)i;
	return -1;
}

static void respond(iopf_handle_t h, int code)
{
	int i = find(h), rc = iopf_respond(S.ctx, h, (enum iopf_code)code);

	if (code != 0 && code != 1) {
		FUZZ_CHECK(rc == -EINVAL, "respond, code %d: %d", code, rc);
		return;
	}
	FUZZ_CHECK(FZ_IN(rc, 0, -EALREADY, -ESHUTDOWN, -ETIMEDOUT, -ENODEV,
			 -ENOENT), "respond gave %d", rc);
	if (rc)
		return;
	/* a group left ready by a bounded dispatch has no handle issued,
	 * but a guessed one may answer it, as any live group's */
	FUZZ_CHECK(i >= 0 || S.sliced, "handle %#llx never issued answered a group",
		   (unsigned long long)h);
	if (i < 0)
		return;
	FUZZ_CHECK(!S.done[i], "handle %#llx answered twice",
		   (unsigned long long)h);
	S.done[i] = true;
}

static void dispatch(void)
{
	int rc = iopf_ctx_dispatch(S.ctx);

	FUZZ_CHECK(rc >= 0, "dispatch gave %d", rc);
}

/* Ops on handles, keys, flags and ids taken from the input. */
static void do_op(void)
{
	static const int codes[8] = { 0, 1, 0, 1, 2, -1, INT_MAX, 0x100 };
	uint8_t op = rd_u8(&S.rd), f = rd_u8(&S.rd);
	uint32_t dev = rd_u8(&S.rd), pasid, prgi, fl;
	int rc, k;

	switch (op % 12) {
	case 0: { /* respond: a handle from the input, or near an issued one */
		iopf_handle_t h;

		if ((f & 0x10) && S.nis) {
			h = S.is[dev % S.nis];
			if (f & 0x20)
				h += (uint64_t)1 << 32;
			if (f & 0x40)
				h += 1;
			if (f & 0x80)
				h -= (uint64_t)1 << 32;
		} else {
			h = rd_u64(&S.rd);
		}
		respond(h, codes[f & 7]);
		break;
	}
	case 1: /* respond_prg */
		pasid = (f & 0x10) ? rd_u32(&S.rd) : (f & 0x20) ? IOPF_NO_PASID : 0;
		prgi = (f & 0x40) ? rd_u32(&S.rd) : rd_u8(&S.rd) & 3;
		if (f & 0x08) { /* the same key and the next few, one call */
			struct iopf_prg_answer a[4];
			int res[4], na = 1 + (int)(dev & 3), ok = 0;
			uint32_t d = (f & 0x80) ? rd_u32(&S.rd) : dev & 3;

			for (int j = 0; j < na; j++)
				a[j] = (struct iopf_prg_answer){ d, pasid, prgi + (uint32_t)(j / 2),
								 codes[(dev >> 5) ^ (j & 1)] };
			rc = iopf_respond_prg_many(S.ctx, a, (size_t)na, res);
			for (int j = 0; j < na; j++) {
				ok += res[j] == 0;
				if (a[j].code != 0 && a[j].code != 1)
					FUZZ_CHECK(res[j] == -EINVAL, "respond_prg_many bad code: %d", res[j]);
				else
					FUZZ_CHECK(FZ_IN(res[j], 0, -ENOENT, -ENODEV, -ENOMEM),
						   "respond_prg_many gave %d", res[j]);
			}
			FUZZ_CHECK(rc == ok, "respond_prg_many: %d answered, %d results 0", rc, ok);
			break;
		}
		rc = iopf_respond_prg(S.ctx, (f & 0x80) ? rd_u32(&S.rd) : dev & 3,
				      pasid, prgi, (enum iopf_code)codes[dev >> 5]);
		if (codes[dev >> 5] != 0 && codes[dev >> 5] != 1)
			FUZZ_CHECK(rc == -EINVAL, "respond_prg bad code: %d", rc);
		else
			FUZZ_CHECK(FZ_IN(rc, 0, -ENOENT, -ENODEV, -ENOMEM),
				   "respond_prg gave %d", rc);
		break;
	case 2: /* detach with any flags: the kernel answered first */
		k = f >> 7;
		fl = (f & 0x10) ? rd_u32(&S.rd) : IOPF_ALL_PASIDS;
		if (!S.fq[k] || S.fq_closed[k])
			break;
		if (fl & ~IOPF_ALL_PASIDS) {
			rc = iopf_source_detach(S.fq[k], dev & 3, 0, fl);
			FUZZ_CHECK(rc == -EINVAL, "detach, flags %#x: %d", fl, rc);
		} else {
			fk_detach(S.f[k], dev & 3);
			rc = iopf_source_detach(S.fq[k], dev & 3, 0, IOPF_ALL_PASIDS);
			FUZZ_CHECK(rc >= 0, "detach gave %d", rc);
		}
		break;
	case 3: /* answer_invalid / drain with any flags */
		fl = (f & 0x10) ? rd_u32(&S.rd) : (f >> 5) & 1;
		pasid = (f & 0x40) ? rd_u32(&S.rd) : IOPF_NO_PASID;
		if (f & 0x80) {
			rc = iopf_ctx_drain(S.ctx, dev & 3, pasid, fl, 0);
			FUZZ_CHECK(fl & ~IOPF_ALL_PASIDS ? rc == -EINVAL :
							   rc == 0 || rc == -ETIMEDOUT,
				   "drain(flags %#x) gave %d", fl, rc);
		} else {
			rc = iopf_ctx_answer_invalid(S.ctx, dev & 3, pasid, fl);
			FUZZ_CHECK(fl & ~IOPF_ALL_PASIDS ? rc == -EINVAL : rc >= 0,
				   "answer_invalid(flags %#x) gave %d", fl, rc);
		}
		break;
	case 4: { /* submit a request with any fields */
		/* one read a statement: the order is the script's */
		struct iopf_request q = { .dev_id = dev & 3, .addr = 0x1000 };

		q.flags = (f & 0x10) ? rd_u32(&S.rd) : (f >> 5) & 3;
		q.pasid = (f & 0x80) ? rd_u32(&S.rd) : 1;
		q.prgi = rd_u8(&S.rd) & 3;
		q.reserved = (dev & 0x80) ? rd_u32(&S.rd) : 0;
		q.perm = rd_u8(&S.rd);
		/* unknown flag bits are passed on since 1.3, not refused */
		bool bad = q.reserved ||
			   ((q.flags & IOPF_F_PASID_VALID) && q.pasid == IOPF_NO_PASID);

		if (!S.prod || S.prod_closed)
			break;
		rc = iopf_producer_submit(S.prod, &q);
		if (bad)
			FUZZ_CHECK(rc == -EINVAL, "submit(bad) gave %d", rc);
		else if (S.gone_mask & (1u << (dev & 3)))
			FUZZ_CHECK(rc == -ENODEV, "submit(gone) gave %d", rc);
		else if (q.flags & IOPF_F_LAST_PAGE)
			FUZZ_CHECK(rc == 1 || (rc == -ENOMEM && S.alloc_fail_armed),
				   "submit(LAST) gave %d", rc);
		else /* -ENOMEM: a partial dropped for want of memory (1.2) */
			FUZZ_CHECK(rc == 0 || rc == -ENOSPC ||
					   (rc == -ENOMEM && S.alloc_fail_armed),
				   "submit gave %d", rc);
		if (rc == 1 || (rc == -ENOMEM && (q.flags & IOPF_F_LAST_PAGE)))
			S.completed++;
		if (rc == -ENOMEM)
			S.alloc_fail_armed = false;
		if (rc == 1) /* to its handler now: no group waits unseen */
			dispatch();
		FUZZ_CHECK(iopf_producer_submit(S.prod, NULL) == -EINVAL,
			   "submit(NULL)");
		break;
	}
	case 5: /* discard / flush_pasid with any flags */
		if (!S.prod || S.prod_closed)
			break;
		fl = (f & 0x10) ? rd_u32(&S.rd) : (f >> 5) & 3;
		if (f & 0x80) {
			rc = iopf_producer_flush_pasid(S.prod, dev & 3,
						       (f & 0x40) ? IOPF_NO_PASID : fl);
			FUZZ_CHECK(rc >= 0, "flush_pasid gave %d", rc);
		} else {
			rc = iopf_producer_discard_partial(S.prod, dev & 3, fl);
			FUZZ_CHECK(fl & ~IOPF_ALL_DEVICES ? rc == -EINVAL : rc >= 0,
				   "discard(flags %#x) gave %d", fl, rc);
		}
		break;
	case 6: /* handlers and log */
		pasid = (f & 0x10) ? rd_u32(&S.rd) : 0xfffffffeu;
		rc = iopf_ctx_set_pasid_handler(S.ctx, dev & 3, pasid,
						(f & 0x20) ? NULL : handler, NULL);
		FUZZ_CHECK(pasid == 0xfffffffeu ? rc == -EINVAL :
						  (rc == 0 || rc == -ENOMEM),
			   "set_pasid_handler(%#x) gave %d", pasid, rc);
		rc = iopf_ctx_set_log(S.ctx, (f & 0x40) ? log_cb : NULL, NULL,
				      (int)(int8_t)rd_u8(&S.rd));
		FUZZ_CHECK(rc == 0 || rc == -EINVAL, "set_log gave %d", rc);
		if (f & 0x80) { /* 1.3: a device handler with a destroy, turns */
			uint32_t w = rd_u8(&S.rd), sf = rd_u8(&S.rd);
			rc = iopf_ctx_set_device_handler_full(
				S.ctx, dev & 3, handler,
				(void *)(uintptr_t)(0x1000 + S.handler_sets), on_destroy);
			FUZZ_CHECK(rc == 0 || rc == -ENOMEM,
				   "set_device_handler_full gave %d", rc);
			if (rc == 0)
				S.handler_sets++;
			rc = iopf_ctx_set_device_sched(S.ctx, dev & 3, w * 300, sf);
			FUZZ_CHECK((sf & ~IOPF_SCHED_PRIORITY) || w * 300 > 65536 ?
					   rc == -EINVAL : (rc == 0 || rc == -ENOMEM),
				   "set_device_sched(%u, %#x) gave %d", w * 300, sf, rc);
		}
		break;
	case 7: /* devices: gone (after the kernel answered), unwatch */
		if (f & 0x10) {
			for (k = 0; k < 2; k++)
				if (S.f[k])
					fk_detach(S.f[k], dev & 3);
			rc = iopf_ctx_device_gone(S.ctx, dev & 3);
			/* -ENOMEM (1.2): groups dropped, no gone mark kept */
			FUZZ_CHECK(rc >= 0 || (rc == -ENOMEM && S.alloc_fail_armed),
				   "device_gone gave %d", rc);
			if (rc >= 0)
				S.gone_mask |= 1u << (dev & 3);
			S.gone_ever = true;
		} else {
			rc = iopf_ctx_unwatch_device(S.ctx, dev & 3);
			FUZZ_CHECK(rc == 0 || rc == -ENOENT, "unwatch gave %d", rc);
			S.gone_mask &= ~(1u << (dev & 3));
		}
		break;
	case 8: { /* watch: a sysdev string from the input */
		char s[48];
		size_t n = dev % sizeof(s);

		for (size_t i = 0; i < n; i++)
			s[i] = (char)rd_u8(&S.rd);
		s[n] = '\0';
		if (f & 0x10)
			memcpy(s, "/devices/", n > 9 ? 9 : n);
		rc = iopf_ctx_watch_device(S.ctx, dev & 3, (f & 0x20) ? NULL : s);
		FUZZ_CHECK(rc <= 0, "watch gave %d", rc);
		if (rc == 0)
			S.gone_mask &= ~(1u << (dev & 3));
		break;
	}
	case 9: /* raise groups, dispatch */
		for (k = 0; k < 2; k++)
			if (S.fq[k] && !S.fq_closed[k] && (f & (0x10 << k)))
				fk_trigger(S.f[k], dev & 3, (f & 0x40) ? 3 : 0,
					   (dev >> 2) & 3, IOPF_PERM_READ, 0x5000);
		if (f & 0x80) { /* 1.3: a bounded slice, then device counters */
			IOPF_OPTS(iopf_device_stats, ds);

			S.sliced = true;
			rc = iopf_ctx_dispatch_bounded(S.ctx, dev >> 5, dev & 3);
			FUZZ_CHECK(rc >= 0, "dispatch_bounded gave %d", rc);
			rc = iopf_ctx_get_device_stats(S.ctx, dev & 3, 0,
						       IOPF_ALL_PASIDS, &ds);
			FUZZ_CHECK(rc == 0 || rc == -ENOENT, "device stats gave %d", rc);
			FUZZ_CHECK(rc || ds.outstanding <= ds.groups,
				   "device %u: %llu outstanding of %llu groups", dev & 3,
				   (unsigned long long)ds.outstanding,
				   (unsigned long long)ds.groups);
			rc = iopf_ctx_list_devices(S.ctx, NULL, 0);
			FUZZ_CHECK(rc >= 0, "list_devices gave %d", rc);
		} else {
			dispatch();
		}
		break;
	case 10: /* close a source */
		if ((f & 0x10) && S.prod && !S.prod_closed) {
			S.prod_closed = true;
			iopf_source_close(S.prod);
		} else if (S.fq[f >> 7] && !S.fq_closed[f >> 7]) {
			S.fq_closed[f >> 7] = true;
			iopf_source_close(S.fq[f >> 7]);
		}
		break;
	default: /* fail the n-th group allocation */
		iopf__fail_alloc_after(dev & 7);
		S.alloc_fail_armed = true;
		break;
	}
}

static void null_checks(void)
{
	struct iopf_request q = { .flags = IOPF_F_LAST_PAGE };

	FUZZ_CHECK(iopf_ctx_get_fd(NULL) == -EINVAL &&
			   iopf_ctx_dispatch(NULL) == -EINVAL &&
			   iopf_ctx_run(NULL) == -EINVAL &&
			   iopf_ctx_stop(NULL) == -EINVAL &&
			   iopf_ctx_flush(NULL) == -EINVAL &&
			   iopf_ctx_drain(NULL, 0, 0, 0, 0) == -EINVAL &&
			   iopf_ctx_set_handler(NULL, handler, NULL) == -EINVAL &&
			   iopf_ctx_set_device_handler(NULL, 0, handler, NULL) == -EINVAL &&
			   iopf_ctx_set_pasid_handler(NULL, 0, 0, handler, NULL) == -EINVAL &&
			   iopf_ctx_set_log(NULL, NULL, NULL, 0) == -EINVAL &&
			   iopf_ctx_set_cancel_handler(NULL, NULL, NULL) == -EINVAL &&
			   iopf_ctx_answer_invalid(NULL, 0, 0, 0) == -EINVAL &&
			   iopf_ctx_watch_device(NULL, 0, "x") == -EINVAL &&
			   iopf_ctx_unwatch_device(NULL, 0) == -EINVAL &&
			   iopf_ctx_device_gone(NULL, 0) == -EINVAL &&
			   iopf_respond(NULL, 1, IOPF_CODE_SUCCESS) == -EINVAL &&
			   iopf_respond_prg(NULL, 0, 0, 0, IOPF_CODE_SUCCESS) == -EINVAL &&
			   iopf_respond_prg_many(NULL, NULL, 0, NULL) == -EINVAL &&
			   iopf_source_get_fd(NULL) == -EINVAL &&
			   iopf_source_get_fault_id(NULL) == 0 &&
			   iopf_source_detach(NULL, 0, 0, 0) == -EINVAL &&
			   iopf_producer_submit(NULL, &q) == -EINVAL &&
			   iopf_producer_discard_partial(NULL, 0, 0) == -EINVAL &&
			   iopf_producer_flush_pasid(NULL, 0, 0) == -EINVAL &&
			   iopf_stats_latency_ns(NULL, 0.5) == 0,
		   "a NULL argument was not refused with -EINVAL");
	FUZZ_CHECK(iopf_ctx_dispatch_bounded(NULL, 1, 1) == -EINVAL &&
			   iopf_ctx_quiesce(NULL) == -EINVAL &&
			   iopf_ctx_set_device_sched(NULL, 0, 1, 0) == -EINVAL &&
			   iopf_ctx_set_handler_full(NULL, handler, NULL, NULL) == -EINVAL &&
			   iopf_ctx_set_device_handler_full(NULL, 0, handler, NULL, NULL) == -EINVAL &&
			   iopf_ctx_set_pasid_handler_full(NULL, 0, 0, handler, NULL, NULL) == -EINVAL &&
			   iopf_ctx_set_batch_handler_full(NULL, NULL, NULL, NULL) == -EINVAL &&
			   iopf_ctx_set_cancel_handler_full(NULL, NULL, NULL, NULL) == -EINVAL &&
			   iopf_ctx_get_device_stats(NULL, 0, 0, IOPF_ALL_PASIDS, NULL) == -EINVAL &&
			   iopf_ctx_list_devices(NULL, NULL, 0) == -EINVAL &&
			   iopf_ctx_list_pasids(NULL, 0, NULL, 0) == -EINVAL &&
			   iopf_device_stats_latency_ns(NULL, 0.5) == 0 &&
			   iopf_ctx_set_device_flags(NULL, 0, 0) == -EINVAL &&
			   iopf_group_record_info(NULL, 0, NULL) == -EINVAL,
		   "a NULL argument to a 1.3 call was not refused with -EINVAL");
	errno = 0;
	FUZZ_CHECK(!iopf_fault_queue_adopt(NULL, 0, 0, NULL) && errno == EINVAL,
		   "adopt(NULL ctx)");
	errno = 0;
	FUZZ_CHECK(!iopf_fault_queue_alloc(NULL, 0, NULL, NULL) && errno == EINVAL,
		   "alloc(NULL ctx)");
	errno = 0;
	FUZZ_CHECK(!iopf_producer_new(NULL, NULL) && errno == EINVAL,
		   "producer_new(NULL ctx)");
	iopf_ctx_free(NULL);
	iopf_source_close(NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once;

	if (!once) {
		null_checks();
		once = true;
	}
	memset(&S, 0, sizeof(S));
	S.rd = (struct rd){ .p = data, .n = size };
	fz_sys_install();
	iopf__fail_alloc_after(-1);

	S.ctx = try_ctx();
	if (!S.ctx)
		S.ctx = iopf_ctx_new(NULL);
	FUZZ_CHECK(S.ctx, "iopf_ctx_new: %s (fd leak?)", strerror(errno));
	iopf_ctx_set_handler(S.ctx, handler, NULL);
	try_fault_queues();
	try_producer();
	try_stats();
	while (rd_more(&S.rd))
		do_op();

	/* answer every group, read every queue, then close */
	iopf__fail_alloc_after(-1);
	S.final = true;
	iopf_ctx_set_handler(S.ctx, handler, NULL);
	iopf_ctx_set_log(S.ctx, NULL, NULL, 0);
	for (unsigned int i = 0; i < S.nis; i++)
		respond(S.is[i], IOPF_CODE_SUCCESS);
	/* with max_outstanding 1, a dispatch reads one group: loop enough */
	bool left = true;

	for (int r = 0; r < 10000 && left; r++) {
		dispatch();
		left = false;
		for (int k = 0; k < 2; k++)
			left |= S.fq[k] && !S.fq_closed[k] && fk_queued(S.f[k]);
	}
	FUZZ_CHECK(!left || fz_allowed("stall"),
		   "groups never read with every handle answered (queue stalled)");
	iopf_ctx_free(S.ctx);
	/* every handler set with a destroy was destroyed once (1.3) */
	FUZZ_CHECK(S.handler_destroys == S.handler_sets,
		   "%u handlers set with a destroy, %u destroyed",
		   S.handler_sets, S.handler_destroys);
	FUZZ_CHECK(S.gone_ever ? S.responded <= S.completed :
				 S.responded == S.completed,
		   "%llu producer groups completed, %llu answers",
		   (unsigned long long)S.completed,
		   (unsigned long long)S.responded);

	for (int k = 0; k < 2; k++) {
		size_t n;
		const struct fk_answer *a;
		uint64_t total;
		uint8_t *seen_seq;

		if (!S.f[k])
			continue;
		a = fk_answers(S.f[k], &n);
		total = fk_triggered(S.f[k]);
		seen_seq = calloc(total + 1, 1);
		for (size_t i = 0; i < n; i++) {
			FUZZ_CHECK(a[i].seq >= 1 && a[i].seq <= total,
				   "answer to unknown group");
			FUZZ_CHECK(!seen_seq[a[i].seq]++, "group %llu answered twice",
				   (unsigned long long)a[i].seq);
		}
		/* a closed queue's unread groups wait for the fd's release */
		if (!S.fq_closed[k] && S.fq[k])
			for (uint64_t s = 1; s <= total; s++)
				FUZZ_CHECK(seen_seq[s], "group %llu never answered",
					   (unsigned long long)s);
		free(seen_seq);
		fk_fault_free(S.f[k]);
	}
	return 0;
}
