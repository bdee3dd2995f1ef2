/* SPDX-License-Identifier: MIT */
/*
 * model.c - a randomized, seeded, model-based test of the exactly-once rule.
 *
 * Usage: iopf-model [--seed N] [--groups N] [--threads N] [--seconds N]
 *                   [--verbose]
 *
 * A run is a series of scenarios drawn from the seed. Each scenario makes one
 * or two contexts (with or without workers, deadline, max_outstanding, small
 * batches), fault queues on fake fault objects and producers, and drives them
 * through the public API only from many threads at once:
 *  - one thread per source raises groups: fk_trigger_group() with 1 to 4
 *    records (a few without LAST: malformed), or iopf_producer_submit() of
 *    partial requests then LAST, interleaved across PRG indices; now and
 *    then it has its source closed (by the dispatching thread) with groups
 *    outstanding and opens another;
 *  - one dispatching thread per context (iopf_ctx_run(), or poll() and
 *    iopf_ctx_dispatch()); handlers answer at once, defer, answer other
 *    groups (of any context), answer themselves by handle and then return a
 *    code, return garbage, end groups in bulk, run slowly;
 *  - --threads "guest" threads answering deferred groups by handle (some
 *    twice), by PRG index (some twice), with stale handles and unknown PRG
 *    indices, some late enough for deadlines;
 *  - one control thread: drains, PASID flushes, detaches (fk_detach() then
 *    iopf_source_detach(), or fk_detach() alone: libiopf must notice the
 *    reused cookies), iopf_ctx_answer_invalid(), device removal
 *    (fk_detach(), iopf_ctx_device_gone(), iopf_ctx_unwatch_device()).
 * Most scenarios then go quiet (handlers and guests answer SUCCESS at once)
 * and must drain completely within 10 s: a group nobody will ever answer
 * shows up there. The others tear down with groups outstanding. Sources are
 * closed, contexts freed, and the oracle looks at what the devices got:
 *  - fault queues (fk_answers()): every triggered group answered exactly
 *    once, by libiopf or by the fake kernel (detach), malformed ones
 *    INVALID, and no answer written for a cookie whose group was already
 *    answered (fk_stale_writes());
 *  - producers: per (device, PASID, PRG index) the respond callback called
 *    once for every group completed by a LAST submit that returned 1 or
 *    -ENOMEM, never more; per device, completed = answered + the groups
 *    iopf_ctx_device_gone() said it dropped;
 *  - no misrouted SUCCESS: every address is unique to its group, handlers
 *    and guests record each SUCCESS given by handle or return per group,
 *    and each accepted SUCCESS by PRG index per (device, PASID, PRG index);
 *    every SUCCESS received must be covered by one.
 * Checked on the way: a handler is called once per group, with the group's
 * own records in order, never for a group ended in bulk earlier in its
 * dispatch round; accepted answers are never accepted again; cancelled
 * groups answer -ENODEV; return codes are in the documented sets.
 * On failure: "model: seed S: FAIL: reason (scenario K)", exit 1. Hangs are
 * bounded by alarm() (IOPF_MODEL_TIMEOUT seconds per scenario, default
 * 300). IOPF_MODEL_SCALE multiplies the group count.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "iopf/iopf.h"

#define MAX_CTX 2
#define MAX_SRC 4         /* per context */
#define DEVS_PER_SRC 2
#define MAX_DEV (MAX_CTX * MAX_SRC * DEVS_PER_SRC)
#define NPASID 4          /* index 0: no PASID; i: PASID i */
#define NPRGI 8           /* few PRG indices: many groups share a key */
#define KEYS_PER_DEV (NPASID * NPRGI)
#define NKEYS (MAX_DEV * KEYS_PER_DEV)
#define UNKNOWN_PRGI 100000u /* never used by a group */
#define MAX_REC 5
#define GID_SHIFT 20      /* addr = gid << 20 | record index << 12 */
#define REC_SHIFT 12
#define STALE_N 256
#define MAX_GUESTS 64

enum { K_FQ = 1, K_PROD = 2 };

/* ---- random numbers: splitmix64, one state per thread ---- */
struct rng {
	uint64_t s;
};

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return n ? (uint32_t)(mix(&r->s) % n) : 0;
}

static bool chance(struct rng *r, unsigned int permille)
{
	return below(r, 1000) < permille;
}

static struct rng rng_from(uint64_t seed, uint64_t stream)
{
	struct rng r = { seed ^ (stream * 0xd1b54a32d192ed03ull) };

	mix(&r.s);
	return r;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned int us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- the model's state ---- */
struct ginfo {            /* one group, by gid (its address) */
	uint32_t dev, pasid, prgi;
	uint8_t nrec, kind, ctxi;
	bool malformed;       /* fault queue: sent without LAST */
	atomic_uint hcalls;   /* handler calls */
	atomic_bool succ;     /* someone answered it SUCCESS by handle/return */
	atomic_bool completed;/* producer: its LAST submit returned 1/-ENOMEM */
	atomic_bool cancelled;
	atomic_uint_fast64_t subseq; /* producer: subseq once its LAST submit
				      * returned; UINT64_MAX before */
};

struct keystat {          /* per (device, PASID, PRG index) */
	atomic_uint_fast64_t completed, epoch_completed, maybe_dropped;
	atomic_uint_fast64_t responded, resp_success, prg_success;
};

struct msrc;

struct fault_rec {        /* one fake fault object and what it was sent */
	struct fk_fault *f;
	struct msrc *ms;
	uint32_t *seq2gid;
	size_t cap;
	struct fault_rec *next;
};

struct mdev {
	uint32_t id;
	int idx;
	atomic_uint_fast64_t dropped; /* producer groups iopf_ctx_device_gone dropped */
	struct msrc *ms;
	pthread_mutex_t mu; /* no group raised while its kernel side ends */
	atomic_bool gone;
	uint64_t gone_ns;
};

struct mctx;

struct msrc {
	struct mctx *c;
	int kind, idx;
	pthread_mutex_t mu;       /* s and fr against close and reopen */
	struct iopf_source *s;
	struct fault_rec *fr;     /* fault queue: the current fault object */
	struct mdev *devs[DEVS_PER_SRC];
	int ndev;
	uint64_t quota, made;
	atomic_uint_fast64_t completed, answered;
	unsigned int window, read_records, partial_cap;
	bool close_fd, small_zero, read_detach;
	bool close_done;          /* under c->mbox_mu */
	struct msrc *mbox_next;
	pthread_t th;
	struct rng rng;
};

struct mctx {
	int idx;
	struct iopf_ctx *ctx;
	unsigned int workers, deadline_ms, max_outstanding, batch_max;
	bool run_mode, no_default;
	bool handler_off;          /* control thread: default handler removed */
	uint64_t off_ns;
	pthread_t disp;
	atomic_bool stop;
	pthread_mutex_t close_mu;  /* no drain dispatches while a source closes */
	pthread_mutex_t mbox_mu;
	pthread_cond_t mbox_cv;
	struct msrc *mbox;         /* close requests for the dispatcher */
	struct msrc src[MAX_SRC];
	int nsrc;
	struct fault_rec *faults;  /* every fault object, under mbox_mu */
	pthread_mutex_t stale_mu;
	iopf_handle_t stale[STALE_N];
	unsigned int nstale, stale_pos;
	struct iopf_stats st;      /* at teardown */
};

/* A handler's userdata (1.3): set with a destroy callback, which must
 * come exactly once and after the handler's last call. Tokens are kept
 * (never freed) until the scenario ends, so a late call is seen. */
#define TOKEN_MAGIC 0x746f6b656e21ull
struct token {
	uint64_t magic;
	struct mctx *c;
	atomic_int running;      /* calls of the handler in progress */
	atomic_int destroyed;
	struct token *next;      /* S.tokens */
};

struct item {                    /* a deferred group, for the guests */
	uint32_t gid;
	uint16_t ctxi;
	iopf_handle_t h;
};

static pthread_mutex_t tokens_mu = PTHREAD_MUTEX_INITIALIZER;
static struct token *tokens;

static struct {
	uint64_t seed;
	int index;
	struct mctx ctx[MAX_CTX];
	int nctx;
	struct mdev dev[MAX_DEV];
	int ndev;
	struct ginfo *g;
	uint32_t gcap;
	atomic_uint gnext;
	struct keystat key[NKEYS];
	atomic_bool quiesce, teardown, stop_guests, stop_control;
	atomic_int xinflight;
	pthread_mutex_t gq_mu;
	pthread_cond_t gq_cv;
	struct item *gq;
	size_t gq_n, gq_cap;
} S;

static uint64_t opt_seed = 1, opt_groups = 20000;
static unsigned int opt_threads = 2, opt_seconds;
static bool opt_verbose;
static atomic_uint scen_gen;
static atomic_uint_fast64_t rng_streams;
static char alarm_msg[256];

/* ---- failing ---- */
static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void failf(const char *fmt, ...)
{
	static atomic_flag once = ATOMIC_FLAG_INIT;
	char msg[600];
	va_list ap;

	if (atomic_flag_test_and_set(&once))
		for (;;)
			pause(); /* the first failure exits */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("model: seed %llu: FAIL: %s (scenario %d)\n",
	       (unsigned long long)opt_seed, msg, S.index);
	fflush(stdout);
	_exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	(void)!write(1, alarm_msg, strlen(alarm_msg));
	_exit(1);
}

#define CHECK(cond, ...)                                                      \
	do {                                                                   \
		if (!(cond))                                                   \
			failf(__VA_ARGS__);                                    \
	} while (0)

/* Each thread (ours, or libiopf's workers) draws from its own stream. */
static _Thread_local struct rng t_rng;
static _Thread_local unsigned int t_rng_gen;

static struct rng *trng(void)
{
	unsigned int gen = atomic_load(&scen_gen);

	if (t_rng_gen != gen) {
		t_rng = rng_from(S.seed, 1000 + atomic_fetch_add(&rng_streams, 1));
		t_rng_gen = gen;
	}
	return &t_rng;
}

static unsigned int pasid_idx(uint32_t pasid)
{
	return pasid == IOPF_NO_PASID ? 0 : pasid;
}

static struct keystat *keyst(const struct mdev *d, uint32_t pasid, uint32_t prgi)
{
	return &S.key[d->idx * KEYS_PER_DEV + pasid_idx(pasid) * NPRGI + prgi];
}

static struct mdev *dev_by_id(uint32_t id)
{
	for (int i = 0; i < S.ndev; i++)
		if (S.dev[i].id == id)
			return &S.dev[i];
	return NULL;
}

static uint32_t pick_pasid(struct rng *r)
{
	uint32_t i = below(r, NPASID);

	return i ? i : IOPF_NO_PASID;
}

static uint32_t gid_alloc(int kind, int ctxi, const struct mdev *d,
			  uint32_t pasid, uint32_t prgi, unsigned int nrec)
{
	uint32_t gid = atomic_fetch_add(&S.gnext, 1);
	struct ginfo *gi;

	if (gid >= S.gcap)
		return 0;
	gi = &S.g[gid];
	gi->dev = d->id;
	gi->pasid = pasid;
	gi->prgi = prgi;
	gi->nrec = (uint8_t)nrec;
	gi->kind = (uint8_t)kind;
	gi->ctxi = (uint8_t)ctxi;
	return gid;
}

static uint64_t rec_addr(uint32_t gid, unsigned int i)
{
	return (uint64_t)gid << GID_SHIFT | (uint64_t)i << REC_SHIFT;
}

/* ---- guests' queue of deferred groups ---- */
static void gq_push(struct item it)
{
	pthread_mutex_lock(&S.gq_mu);
	if (S.gq_n == S.gq_cap) {
		S.gq_cap = S.gq_cap ? S.gq_cap * 2 : 1024;
		S.gq = realloc(S.gq, S.gq_cap * sizeof(*S.gq));
		CHECK(S.gq, "out of memory");
	}
	S.gq[S.gq_n++] = it;
	pthread_cond_signal(&S.gq_cv);
	pthread_mutex_unlock(&S.gq_mu);
}

/* Any deferred group, picked at random: answers come in any order. */
static bool gq_pop(struct rng *r, struct item *it, int wait_ms)
{
	bool got = false;

	pthread_mutex_lock(&S.gq_mu);
	if (!S.gq_n && wait_ms) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += wait_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&S.gq_cv, &S.gq_mu, &ts);
	}
	if (S.gq_n) {
		size_t i = below(r, (uint32_t)S.gq_n);

		*it = S.gq[i];
		S.gq[i] = S.gq[--S.gq_n];
		got = true;
	}
	pthread_mutex_unlock(&S.gq_mu);
	return got;
}

static size_t gq_len(void)
{
	size_t n;

	pthread_mutex_lock(&S.gq_mu);
	n = S.gq_n;
	pthread_mutex_unlock(&S.gq_mu);
	return n;
}

/* Handles whose answer was accepted: any later answer must be refused. */
static void stale_add(struct mctx *c, iopf_handle_t h)
{
	pthread_mutex_lock(&c->stale_mu);
	c->stale[c->stale_pos] = h;
	c->stale_pos = (c->stale_pos + 1) % STALE_N;
	if (c->nstale < STALE_N)
		c->nstale++;
	pthread_mutex_unlock(&c->stale_mu);
}

static iopf_handle_t stale_pick(struct mctx *c, struct rng *r)
{
	iopf_handle_t h = 0;

	pthread_mutex_lock(&c->stale_mu);
	if (c->nstale)
		h = c->stale[below(r, c->nstale)];
	pthread_mutex_unlock(&c->stale_mu);
	return h;
}

/* The context a thread is calling into: a producer's respond callback
 * that runs inside a call on another context runs in the wrong one. */
static _Thread_local struct mctx *t_api_ctx;

#define IN_CTX(C, CALL)                                                       \
	({                                                                     \
		struct mctx *saved_ = t_api_ctx;                               \
		int rc_;                                                       \
		t_api_ctx = (C);                                               \
		rc_ = (CALL);                                                  \
		t_api_ctx = saved_;                                            \
		rc_;                                                           \
	})

/* ---- answers ---- */
static const char *code_s(int code)
{
	return code == IOPF_CODE_SUCCESS ? "SUCCESS" : "INVALID";
}

/* What iopf_respond() may return for a handle a handler really had. */
static void check_handle_rc(int rc, uint32_t gid, const char *who)
{
	CHECK(rc == 0 || rc == -EALREADY || rc == -ESHUTDOWN ||
		      rc == -ETIMEDOUT || rc == -ENODEV,
	      "%s: iopf_respond() on the genuine handle of group %u (dev %u prgi %u) returned %d (%s)",
	      who, gid, S.g[gid].dev, S.g[gid].prgi, rc, strerror(-rc));
}

static int answer_prg(struct mctx *c, uint32_t gid, int code, const char *who)
{
	struct ginfo *gi = &S.g[gid];
	int rc = IN_CTX(c, iopf_respond_prg(c->ctx, gi->dev, gi->pasid, gi->prgi, code));

	CHECK(rc == 0 || rc == -ENOENT || rc == -ENODEV,
	      "%s: iopf_respond_prg(dev %u, pasid %#x, prgi %u) returned %d",
	      who, gi->dev, gi->pasid, gi->prgi, rc);
	if (rc == 0 && code == IOPF_CODE_SUCCESS)
		atomic_fetch_add(&keyst(dev_by_id(gi->dev), gi->pasid, gi->prgi)->prg_success, 1);
	return rc;
}

/* Answer a deferred group one way or another. Calm: SUCCESS by handle. */
static void answer_item(struct rng *r, struct item it, bool calm, const char *who)
{
	struct mctx *c = &S.ctx[it.ctxi];
	struct ginfo *gi = &S.g[it.gid];
	unsigned int p = calm ? 0 : below(r, 100);
	int code = calm || chance(r, 650) ? IOPF_CODE_SUCCESS : IOPF_CODE_INVALID;
	int rc;

	if (p < 65) { /* by handle: consumes the item */
		if (code == IOPF_CODE_SUCCESS)
			atomic_store(&gi->succ, true);
		rc = IN_CTX(c, iopf_respond(c->ctx, it.h, code));
		check_handle_rc(rc, it.gid, who);
		if (rc == 0) {
			stale_add(c, it.h);
			if (!calm && chance(r, 150)) {
				int again = chance(r, 500) ? IOPF_CODE_SUCCESS :
							    IOPF_CODE_INVALID;

				rc = IN_CTX(c, iopf_respond(c->ctx, it.h, again));
				CHECK(rc < 0, "%s: a second answer (%s) by handle to group %u was accepted",
				      who, code_s(again), it.gid);
				check_handle_rc(rc, it.gid, who);
			}
		}
		return;
	}
	if (p < 75) { /* by PRG index, like a guest; maybe twice */
		answer_prg(c, it.gid, code, who);
		if (chance(r, 300))
			answer_prg(c, it.gid, code, who);
	} else if (p < 85) { /* the same off a guest's queue: one call */
		struct iopf_prg_answer a[2] = {
			{ gi->dev, gi->pasid, gi->prgi, code },
			{ gi->dev, gi->pasid, gi->prgi, code },
		};
		int res[2], n = chance(r, 300) ? 2 : 1, ok = 0;

		rc = IN_CTX(c, iopf_respond_prg_many(c->ctx, a, (size_t)n, res));
		for (int j = 0; j < n; j++) {
			CHECK(res[j] == 0 || res[j] == -ENOENT || res[j] == -ENODEV,
			      "%s: iopf_respond_prg_many(dev %u, pasid %#x, prgi %u)[%d] gave %d",
			      who, gi->dev, gi->pasid, gi->prgi, j, res[j]);
			ok += res[j] == 0;
		}
		CHECK(rc == ok, "%s: iopf_respond_prg_many() returned %d, %d results 0",
		      who, rc, ok);
		if (code == IOPF_CODE_SUCCESS)
			atomic_fetch_add(&keyst(dev_by_id(gi->dev), gi->pasid, gi->prgi)->prg_success,
					 (unsigned int)ok);
	} else if (p < 95) { /* a stale handle */
		iopf_handle_t h = stale_pick(c, r);

		if (h) {
			rc = IN_CTX(c, iopf_respond(c->ctx, h, IOPF_CODE_SUCCESS));
			CHECK(rc < 0, "%s: an answer to stale handle %#llx was accepted",
			      who, (unsigned long long)h);
			CHECK(rc == -EALREADY || rc == -ESHUTDOWN || rc == -ETIMEDOUT ||
				      rc == -ENODEV,
			      "%s: stale handle %#llx: iopf_respond() returned %d",
			      who, (unsigned long long)h, rc);
		}
	} else { /* a PRG index no group has */
		rc = IN_CTX(c, iopf_respond_prg(c->ctx, gi->dev, gi->pasid,
						UNKNOWN_PRGI + below(r, 64),
						IOPF_CODE_SUCCESS));
		CHECK(rc == -ENOENT || rc == -ENODEV,
		      "%s: an answer to an unknown PRG index of dev %u returned %d",
		      who, gi->dev, rc);
	}
	gq_push(it); /* its group may still wait: answer it later */
}

/* ---- handlers and callbacks ---- */

/* Bulk endings done by a handler in this dispatch call (poll-mode
 * dispatchers without workers only): a later handler call in the same call
 * for a group they matched would be for an answered group. */
struct bulk {
	struct mctx *c;
	struct iopf_source *src; /* NULL: every source */
	uint32_t dev, pasid;
	unsigned int flags;
	uint64_t subseq;         /* S.subseq when it was made */
};
static _Thread_local bool t_round_check;
/* Producer LAST submits so far: a group submitted after a bulk ending is
 * a new group, which the same dispatch call may hand out (groups are
 * handed out in turn, not as a snapshot of the round). */
static atomic_uint_fast64_t subseq;
static _Thread_local struct bulk t_bulk[8];
static _Thread_local int t_nbulk;

static uint32_t check_group(struct iopf_group *g, const char *who)
{
	size_t n = 0;
	const struct iopf_record *rec = iopf_group_records(g, &n);
	uint32_t gnext = atomic_load(&S.gnext);
	uint64_t gid;
	struct ginfo *gi;
	int last = -1;

	CHECK(n >= 1 && n <= MAX_REC, "%s: a group with %zu records", who, n);
	gid = rec[n - 1].addr >> GID_SHIFT;
	CHECK(gid && gid < gnext && gid < S.gcap,
	      "%s: a group with unknown address %#llx", who,
	      (unsigned long long)rec[n - 1].addr);
	gi = &S.g[gid];
	CHECK(!gi->malformed, "%s: malformed group %llu (no LAST record) handed over",
	      who, (unsigned long long)gid);
	CHECK(iopf_group_source(g) != NULL, "%s: group %llu has no source", who,
	      (unsigned long long)gid);
	CHECK((iopf_group_cookie(g) != 0) == (gi->kind == K_FQ),
	      "%s: %s group %llu has cookie %u", who,
	      gi->kind == K_FQ ? "fault queue" : "producer", (unsigned long long)gid,
	      iopf_group_cookie(g));
	CHECK(gi->kind == K_PROD || !(iopf_group_flags(g) & IOPF_GROUP_TRUNCATED),
	      "%s: fault queue group %llu flagged truncated", who,
	      (unsigned long long)gid);
	CHECK(iopf_group_dev_id(g) == gi->dev && iopf_group_pasid(g) == gi->pasid &&
		      iopf_group_prgi(g) == gi->prgi,
	      "%s: group %llu (dev %u pasid %#x prgi %u) handed over as dev %u pasid %#x prgi %u",
	      who, (unsigned long long)gid, gi->dev, gi->pasid, gi->prgi,
	      iopf_group_dev_id(g), iopf_group_pasid(g), iopf_group_prgi(g));
	for (size_t i = 0; i < n; i++) {
		int idx = (int)((rec[i].addr >> REC_SHIFT) & 0xff);
		bool islast = rec[i].flags & IOPF_F_LAST_PAGE;

		CHECK(rec[i].addr >> GID_SHIFT == gid,
		      "%s: group %llu holds a record of group %llu", who,
		      (unsigned long long)gid,
		      (unsigned long long)(rec[i].addr >> GID_SHIFT));
		CHECK(idx > last, "%s: group %llu: records out of order", who,
		      (unsigned long long)gid);
		CHECK(islast == (i == n - 1), "%s: group %llu: LAST flag on record %zu of %zu",
		      who, (unsigned long long)gid, i, n);
		last = idx;
	}
	CHECK(last == gi->nrec - 1, "%s: group %llu ends with record %d of %u", who,
	      (unsigned long long)gid, last, gi->nrec);
	CHECK(gi->kind != K_FQ || n == gi->nrec,
	      "%s: fault queue group %llu has %zu records of %u", who,
	      (unsigned long long)gid, n, gi->nrec);
	return (uint32_t)gid;
}

static bool teardown_enter(void)
{
	atomic_fetch_add(&S.xinflight, 1);
	if (atomic_load(&S.teardown)) {
		atomic_fetch_sub(&S.xinflight, 1);
		return false;
	}
	return true;
}

static void teardown_leave(void)
{
	atomic_fetch_sub(&S.xinflight, 1);
}

static int handler_body(struct mctx *c, struct iopf_group *g);

static int handler(struct iopf_group *g, void *ud)
{
	struct token *t = ud;
	int rc;

	CHECK(t->magic == TOKEN_MAGIC, "handler userdata is not a token");
	CHECK(!atomic_load(&t->destroyed),
	      "handler called after its userdata was destroyed");
	atomic_fetch_add(&t->running, 1);
	rc = handler_body(t->c, g);
	atomic_fetch_sub(&t->running, 1);
	return rc;
}

static void token_destroy(void *ud)
{
	struct token *t = ud;

	CHECK(atomic_fetch_add(&t->destroyed, 1) == 0,
	      "a handler's userdata destroyed twice");
	CHECK(atomic_load(&t->running) == 0,
	      "a handler's userdata destroyed while the handler runs");
}

static struct token *token_new(struct mctx *c)
{
	struct token *t = calloc(1, sizeof(*t));

	CHECK(t != NULL, "no memory for a token");
	t->magic = TOKEN_MAGIC;
	t->c = c;
	pthread_mutex_lock(&tokens_mu);
	t->next = tokens;
	tokens = t;
	pthread_mutex_unlock(&tokens_mu);
	return t;
}

/* Every token set was destroyed exactly once (after the contexts went). */
static void tokens_check_and_free(void)
{
	pthread_mutex_lock(&tokens_mu);
	while (tokens) {
		struct token *t = tokens;

		tokens = t->next;
		CHECK(atomic_load(&t->destroyed) == 1,
		      "a handler's userdata destroyed %d times, not once",
		      atomic_load(&t->destroyed));
		free(t);
	}
	pthread_mutex_unlock(&tokens_mu);
}

static int handler_body(struct mctx *c, struct iopf_group *g)
{
	struct rng *r = trng();
	uint32_t gid = check_group(g, "handler");
	struct ginfo *gi = &S.g[gid];
	iopf_handle_t h = iopf_group_handle(g);
	unsigned int p;
	int rc;

	CHECK(atomic_fetch_add(&gi->hcalls, 1) == 0,
	      "handler called twice for group %u (dev %u pasid %#x prgi %u)",
	      gid, gi->dev, gi->pasid, gi->prgi);
	CHECK(gi->ctxi == c->idx, "group %u of context %u handed to context %d",
	      gid, gi->ctxi, c->idx);
	CHECK(h != 0, "iopf_group_handle() returned 0");
	if (t_round_check) {
		for (int i = 0; i < t_nbulk; i++) {
			struct bulk *b = &t_bulk[i];

			CHECK(!(b->c == c && gi->dev == b->dev &&
				((b->flags & IOPF_ALL_PASIDS) || gi->pasid == b->pasid) &&
				(!b->src || b->src == iopf_group_source(g)) &&
				(gi->kind != K_PROD || atomic_load(&gi->subseq) < b->subseq)),
			      "handler called for group %u (dev %u pasid %#x) answered in bulk earlier in its round",
			      gid, gi->dev, gi->pasid);
		}
	}
	if (atomic_load(&S.quiesce) || atomic_load(&S.teardown)) {
		atomic_store(&gi->succ, true);
		return IOPF_CODE_SUCCESS;
	}
	if (chance(r, 20)) { /* a slow handler: others close, end, answer meanwhile */
		sleep_us(below(r, 300));
		check_group(g, "slow handler");
	}

	/* Things a handler may do first. */
	p = below(r, 1000);
	if (p < 60 && teardown_enter()) { /* answer other deferred groups */
		struct item it;

		for (unsigned int k = 1 + below(r, 2); k && gq_pop(r, &it, 0); k--)
			answer_item(r, it, false, "handler");
		teardown_leave();
	} else if (p < 70) { /* calls a handler may not make */
		rc = iopf_ctx_dispatch(c->ctx);
		CHECK(rc == -EDEADLK, "iopf_ctx_dispatch() from a handler returned %d", rc);
		rc = iopf_ctx_drain(c->ctx, gi->dev, 0, IOPF_ALL_PASIDS, 0);
		CHECK(rc == -EDEADLK, "iopf_ctx_drain() from a handler returned %d", rc);
		rc = iopf_ctx_run(c->ctx);
		CHECK(rc == -EDEADLK, "iopf_ctx_run() from a handler returned %d", rc);
	} else if (p < 76) { /* a bulk ending mid-round */
		struct bulk b = { .c = c, .dev = gi->dev, .pasid = pick_pasid(r),
				  .flags = chance(r, 500) ? IOPF_ALL_PASIDS : 0,
				  .subseq = atomic_load(&subseq) };

		/* Its source stays open meanwhile only without workers: sources
		 * close in the dispatching thread. */
		if (gi->kind == K_PROD && !c->workers && chance(r, 500)) {
			b.src = iopf_group_source(g);
			b.flags = 0;
			rc = IN_CTX(c, iopf_producer_flush_pasid(b.src, b.dev, b.pasid));
			CHECK(rc >= 0, "iopf_producer_flush_pasid() from a handler returned %d", rc);
		} else {
			rc = IN_CTX(c, iopf_ctx_answer_invalid(c->ctx, b.dev, b.pasid, b.flags));
			CHECK(rc >= 0, "iopf_ctx_answer_invalid() from a handler returned %d", rc);
		}
		if (t_round_check && t_nbulk < 8)
			t_bulk[t_nbulk++] = b;
	}

	p = below(r, 100);
	if (p < 30) {
		atomic_store(&gi->succ, true);
		return IOPF_CODE_SUCCESS;
	}
	if (p < 40)
		return IOPF_CODE_INVALID;
	if (p < 43)
		return 7; /* not a code: answered INVALID */
	if (p < 48) { /* answer itself by handle, then return a code anyway */
		int code = chance(r, 500) ? IOPF_CODE_SUCCESS : IOPF_CODE_INVALID;

		if (code == IOPF_CODE_SUCCESS)
			atomic_store(&gi->succ, true);
		rc = IN_CTX(c, iopf_respond(c->ctx, h, code));
		check_handle_rc(rc, gid, "handler on itself");
		if (rc == 0)
			stale_add(c, h);
		/* refused either way: not recorded as a decision */
		return code == IOPF_CODE_SUCCESS ? IOPF_CODE_INVALID : IOPF_CODE_SUCCESS;
	}
	if (p < 52) /* answer its (device, PASID, PRG index): maybe another group */
		answer_prg(c, gid, chance(r, 500) ? IOPF_CODE_SUCCESS :
						    IOPF_CODE_INVALID, "handler");
	gq_push((struct item){ .gid = gid, .ctxi = (uint16_t)c->idx, .h = h });
	return IOPF_DEFER;
}

static void on_cancel(struct iopf_group *g, void *ud)
{
	struct mctx *c = ud;
	uint32_t gid = check_group(g, "cancel callback");
	int rc;

	atomic_store(&S.g[gid].cancelled, true);
	rc = iopf_respond(c->ctx, iopf_group_handle(g), IOPF_CODE_SUCCESS);
	CHECK(rc == -ENODEV, "answer to cancelled group %u returned %d, not -ENODEV",
	      gid, rc);
}

static void on_respond(const struct iopf_response *resp, void *ud)
{
	struct msrc *ms = ud;
	struct mdev *d = NULL;
	struct keystat *k;

	for (int i = 0; i < ms->ndev; i++)
		if (ms->devs[i]->id == resp->dev_id)
			d = ms->devs[i];
	CHECK(d, "producer %d of context %d got the answer for dev %u: not its device",
	      ms->idx, ms->c->idx, resp->dev_id);
	CHECK(!t_api_ctx || t_api_ctx == ms->c,
	      "the respond callback for dev %u prgi %u of context %d ran inside a call on context %d",
	      resp->dev_id, resp->prgi, ms->c->idx, t_api_ctx->idx);
	CHECK((resp->pasid == IOPF_NO_PASID || (resp->pasid >= 1 && resp->pasid < NPASID)) &&
		      resp->prgi < NPRGI &&
		      (resp->code == IOPF_CODE_SUCCESS || resp->code == IOPF_CODE_INVALID),
	      "producer answer for dev %u pasid %#x prgi %u code %u: no such group or code",
	      resp->dev_id, resp->pasid, resp->prgi, resp->code);
	k = keyst(d, resp->pasid, resp->prgi);
	atomic_fetch_add(&k->responded, 1);
	if (resp->code == IOPF_CODE_SUCCESS)
		atomic_fetch_add(&k->resp_success, 1);
	atomic_fetch_add(&ms->answered, 1);
}

/* ---- sources: open, close (by the dispatcher), reopen ---- */

/* Between two reads of a dispatch round, the kernel answers a device's
 * groups itself (a detach or replace by another thread, not told to
 * libiopf): the next read may hand their cookies out again at once. */
static void read_hook(struct fk_fault *f, void *ud)
{
	struct fault_rec *fr = ud;
	struct rng *r;

	if (atomic_load(&S.quiesce) || atomic_load(&S.teardown))
		return;
	r = trng();
	if (chance(r, 20))
		fk_detach(f, fr->ms->devs[below(r, (uint32_t)fr->ms->ndev)]->id);
}
static void source_open(struct msrc *ms)
{
	struct mctx *c = ms->c;

	pthread_mutex_lock(&ms->mu);
	if (ms->kind == K_FQ) {
		struct fault_rec *fr = calloc(1, sizeof(*fr));
		IOPF_OPTS(iopf_fault_queue_opts, o,
			  .flags = ms->close_fd ? IOPF_FQ_CLOSE_FD : 0,
			  .read_records = ms->read_records);

		CHECK(fr, "out of memory");
		fr->f = fk_fault_new();
		fr->ms = ms;
		/* odd scenarios: the kernel side fails 10% of reads and
		 * writes with EINTR, EAGAIN or ENOMEM */
		if (S.index % 2)
			fk_set_chaos(fr->f, opt_seed * 7919 + (uint64_t)S.index, 100);
		if (ms->small_zero)
			fk_set_small(fr->f, FK_SMALL_ZERO);
		if (ms->read_detach)
			fk_set_read_hook(fr->f, read_hook, fr);
		ms->s = iopf_fault_queue_adopt(c->ctx, fk_fault_fd(fr->f),
					       fk_fault_id(fr->f), &o);
		CHECK(ms->s, "iopf_fault_queue_adopt: %s", strerror(errno));
		ms->fr = fr;
		pthread_mutex_lock(&c->mbox_mu);
		fr->next = c->faults;
		c->faults = fr;
		pthread_mutex_unlock(&c->mbox_mu);
	} else {
		IOPF_OPTS(iopf_producer_opts, o, .respond = on_respond,
			  .userdata = ms, .partial_cap = ms->partial_cap);

		ms->s = iopf_producer_new(c->ctx, &o);
		CHECK(ms->s, "iopf_producer_new: %s", strerror(errno));
	}
	pthread_mutex_unlock(&ms->mu);
}

/* Close a source: in the dispatching thread, or when none runs. */
static void source_close(struct msrc *ms, const char *when)
{
	pthread_mutex_lock(&ms->mu);
	iopf_source_close(ms->s);
	ms->s = NULL;
	if (ms->kind == K_FQ) {
		unsigned int q, o;

		fk_pending(ms->fr->f, &q, &o);
		CHECK(o == 0, "iopf_source_close (%s) left %u groups read from fault %u unanswered",
		      when, o, fk_fault_id(ms->fr->f));
		/* The kernel answers what was never read (fault destroyed). */
		for (int i = 0; i < ms->ndev; i++)
			fk_detach(ms->fr->f, ms->devs[i]->id);
		ms->fr = NULL;
	}
	pthread_mutex_unlock(&ms->mu);
}

static void process_mbox(struct mctx *c)
{
	struct msrc *ms, *nx;

	pthread_mutex_lock(&c->mbox_mu);
	ms = c->mbox;
	c->mbox = NULL;
	pthread_mutex_unlock(&c->mbox_mu);
	for (; ms; ms = nx) {
		nx = ms->mbox_next;
		pthread_mutex_lock(&c->close_mu);
		source_close(ms, "mid-run");
		pthread_mutex_unlock(&c->close_mu);
		pthread_mutex_lock(&c->mbox_mu);
		ms->close_done = true;
		pthread_cond_broadcast(&c->mbox_cv);
		pthread_mutex_unlock(&c->mbox_mu);
	}
}

/* From the source's own thread: have it closed with its groups
 * outstanding, then open a fresh one. */
static void close_and_reopen(struct msrc *ms)
{
	struct mctx *c = ms->c;

	pthread_mutex_lock(&c->mbox_mu);
	ms->close_done = false;
	ms->mbox_next = c->mbox;
	c->mbox = ms;
	pthread_mutex_unlock(&c->mbox_mu);
	if (c->run_mode)
		iopf_ctx_stop(c->ctx);
	pthread_mutex_lock(&c->mbox_mu);
	while (!ms->close_done)
		pthread_cond_wait(&c->mbox_cv, &c->mbox_mu);
	pthread_mutex_unlock(&c->mbox_mu);
	source_open(ms);
}

/* ---- threads ---- */
static void *dispatcher(void *arg)
{
	struct mctx *c = arg;

	t_round_check = !c->run_mode && !c->workers;
	while (!atomic_load(&c->stop)) {
		int rc;

		if (c->run_mode) {
			rc = iopf_ctx_run(c->ctx);
			CHECK(rc == 0, "iopf_ctx_run returned %d", rc);
		} else {
			struct pollfd p = { .fd = iopf_ctx_get_fd(c->ctx), .events = POLLIN };

			poll(&p, 1, 5);
			t_nbulk = 0;
			if (chance(trng(), 300)) /* a slice (1.3) */
				rc = iopf_ctx_dispatch_bounded(c->ctx, 1 + below(trng(), 64),
							       chance(trng(), 500) ?
							       1 + below(trng(), 500) : 0);
			else
				rc = iopf_ctx_dispatch(c->ctx);
			t_nbulk = 0;
			/* -EIO: a read the fake's chaos failed (retried) */
			CHECK(rc >= 0 || rc == -EBUSY || rc == -EIO,
			      "iopf_ctx_dispatch returned %d", rc);
		}
		process_mbox(c);
	}
	return NULL;
}

static void fault_record(struct fault_rec *fr, uint64_t seq, uint32_t gid)
{
	if (seq >= fr->cap) {
		size_t cap = fr->cap ? fr->cap * 2 : 1024;

		while (cap <= seq)
			cap *= 2;
		fr->seq2gid = realloc(fr->seq2gid, cap * sizeof(*fr->seq2gid));
		CHECK(fr->seq2gid, "out of memory");
		memset(fr->seq2gid + fr->cap, 0, (cap - fr->cap) * sizeof(*fr->seq2gid));
		fr->cap = cap;
	}
	fr->seq2gid[seq] = gid;
}

/* A fault queue's device: raise groups of 1 to 4 records. */
static void *fq_thread(void *arg)
{
	struct msrc *ms = arg;
	struct rng *r = &ms->rng;
	struct iopf_k_pgfault recs[MAX_REC];

	while (ms->made < ms->quota) {
		unsigned int q, o, nrec;
		uint32_t pasid, prgi, gid;
		struct mdev *d;
		uint64_t seq;

		for (int i = 0; i < 1000; i++) { /* bounded: lost groups show at the end */
			fk_pending(ms->fr->f, &q, &o);
			if (q + o < ms->window)
				break;
			sleep_us(200);
		}
		if (chance(r, 1) && chance(r, 600))
			close_and_reopen(ms);
		d = ms->devs[below(r, (uint32_t)ms->ndev)];
		pasid = pick_pasid(r);
		prgi = below(r, NPRGI);
		nrec = chance(r, 600) ? 1 : 2 + below(r, 3);
		gid = gid_alloc(K_FQ, ms->c->idx, d, pasid, prgi, nrec);
		if (!gid)
			break;
		/* Now and then a group without its LAST record: libiopf must
		 * answer it INVALID itself (a raw answer, no group object). */
		S.g[gid].malformed = chance(r, 10);
		memset(recs, 0, sizeof(recs));
		for (unsigned int i = 0; i < nrec; i++) {
			recs[i].flags = (pasid != IOPF_NO_PASID ? IOPF_K_PGFAULT_FLAGS_PASID_VALID : 0) |
					(i == nrec - 1 && !S.g[gid].malformed ?
						 IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0);
			recs[i].dev_id = d->id;
			recs[i].pasid = pasid != IOPF_NO_PASID ? pasid : 0;
			recs[i].grpid = prgi;
			recs[i].perm = 1 + below(r, 3);
			recs[i].addr = rec_addr(gid, i);
		}
		pthread_mutex_lock(&d->mu);
		seq = fk_trigger_group(ms->fr->f, recs, nrec);
		pthread_mutex_unlock(&d->mu);
		fault_record(ms->fr, seq, gid);
		ms->made++;
		if (chance(r, 20))
			sched_yield();
	}
	return NULL;
}

struct open_grp {
	uint32_t gid; /* 0: key free */
	unsigned int next;
};

/* One request of an open producer group. Returns true when it is over. */
static bool prod_submit(struct msrc *ms, struct mdev *d, uint32_t pasid,
			uint32_t prgi, struct open_grp *og)
{
	struct ginfo *gi = &S.g[og->gid];
	bool last = og->next == gi->nrec - 1u;
	struct iopf_request rq = {
		.flags = (pasid != IOPF_NO_PASID ? IOPF_F_PASID_VALID : 0) |
			 (last ? IOPF_F_LAST_PAGE : 0),
		.dev_id = d->id,
		.pasid = pasid != IOPF_NO_PASID ? pasid : 0,
		.prgi = prgi,
		.perm = 1 + below(&ms->rng, 3),
		.addr = rec_addr(og->gid, og->next),
	};
	int rc;

	og->next++;
	if (!last) {
		rc = iopf_producer_submit(ms->s, &rq);
		CHECK(rc == 0 || rc == -ENOSPC || rc == -ENODEV,
		      "iopf_producer_submit of a partial request returned %d", rc);
		return false;
	}
	pthread_mutex_lock(&d->mu);
	atomic_store(&gi->subseq, UINT64_MAX);
	rc = iopf_producer_submit(ms->s, &rq);
	atomic_store(&gi->subseq, atomic_fetch_add(&subseq, 1));
	if (rc == 1 || rc == -ENOMEM) {
		struct keystat *k = keyst(d, pasid, prgi);

		atomic_store(&gi->completed, true);
		atomic_fetch_add(&k->completed, 1);
		atomic_fetch_add(&k->epoch_completed, 1);
		atomic_fetch_add(&ms->completed, 1);
		ms->made++;
	} else {
		CHECK(rc == -ENODEV, "iopf_producer_submit of a LAST request returned %d", rc);
	}
	pthread_mutex_unlock(&d->mu);
	og->gid = 0;
	return true;
}

/* A producer: groups of 1 to 5 requests, interleaved over PRG indices. */
static void *prod_thread(void *arg)
{
	struct msrc *ms = arg;
	struct rng *r = &ms->rng;
	struct open_grp open[DEVS_PER_SRC * KEYS_PER_DEV] = { 0 };
	unsigned int nopen = 0, nkeys = (unsigned int)ms->ndev * KEYS_PER_DEV;
	bool no_more = false;

	while (ms->made < ms->quota) {
		unsigned int k = below(r, nkeys);

		for (int i = 0; i < 1000; i++) {
			if ((int64_t)(atomic_load(&ms->completed) -
				      atomic_load(&ms->answered)) < (int64_t)ms->window)
				break;
			sleep_us(200);
		}
		if (chance(r, 1) && chance(r, 600)) {
			close_and_reopen(ms); /* its partial requests are gone */
			memset(open, 0, sizeof(open));
			nopen = 0;
		}
		if (!no_more && nopen < 8 && (nopen == 0 || chance(r, 400))) {
			for (int tries = 0; open[k].gid && tries < 8; tries++)
				k = below(r, nkeys);
			if (!open[k].gid) {
				struct mdev *d = ms->devs[k / KEYS_PER_DEV];
				unsigned int pi = (k % KEYS_PER_DEV) / NPRGI;

				open[k].gid = gid_alloc(K_PROD, ms->c->idx, d,
							pi ? pi : IOPF_NO_PASID, k % NPRGI,
							1 + below(r, MAX_REC));
				open[k].next = 0;
				if (open[k].gid)
					nopen++;
				else
					no_more = true;
			}
		} else if (nopen) {
			while (!open[k].gid)
				k = (k + 1) % nkeys;
		} else if (no_more) {
			break;
		}
		if (!open[k].gid)
			continue;
		{
			struct mdev *d = ms->devs[k / KEYS_PER_DEV];
			unsigned int pi = (k % KEYS_PER_DEV) / NPRGI;

			if (prod_submit(ms, d, pi ? pi : IOPF_NO_PASID, k % NPRGI, &open[k]))
				nopen--;
		}
		if (chance(r, 20))
			sched_yield();
	}
	/* Finish the open groups, or leave their partial requests behind. */
	if (chance(r, 500)) {
		for (unsigned int k = 0; k < nkeys; k++) {
			struct mdev *d = ms->devs[k / KEYS_PER_DEV];
			unsigned int pi = (k % KEYS_PER_DEV) / NPRGI;

			while (open[k].gid &&
			       !prod_submit(ms, d, pi ? pi : IOPF_NO_PASID, k % NPRGI, &open[k]))
				;
		}
	}
	return NULL;
}

static void *guest_thread(void *arg)
{
	struct rng r = rng_from(S.seed, 100 + (uintptr_t)arg);

	while (!atomic_load(&S.stop_guests)) {
		struct item it;
		bool calm = atomic_load(&S.quiesce);

		if (!gq_pop(&r, &it, 2))
			continue;
		if (!calm && chance(&r, 10)) /* a slow guest: deadlines expire */
			sleep_us(1000 + below(&r, 20000));
		answer_item(&r, it, calm, "guest");
		if (!calm && chance(&r, 30))
			sleep_us(below(&r, 300)); /* let deferred groups pile up */
	}
	return NULL;
}

static void handlers_back(bool now)
{
	for (int ci = 0; ci < S.nctx; ci++) {
		struct mctx *c = &S.ctx[ci];

		if (c->handler_off && (now || now_ns() - c->off_ns > 1000000u)) {
			CHECK(iopf_ctx_set_handler_full(c->ctx, handler, token_new(c),
							token_destroy) == 0,
			      "iopf_ctx_set_handler failed");
			c->handler_off = false;
		}
	}
}

static void control_op(struct rng *r)
{
	struct mctx *c = &S.ctx[below(r, (uint32_t)S.nctx)];
	struct msrc *ms = &c->src[below(r, (uint32_t)c->nsrc)];
	struct mdev *d = ms->devs[below(r, (uint32_t)ms->ndev)];
	uint32_t pasid = pick_pasid(r);
	unsigned int flags = chance(r, 500) ? IOPF_ALL_PASIDS : 0;
	unsigned int p = below(r, 100);
	int rc;

	if (p < 20) {
		pthread_mutex_lock(&c->close_mu);
		rc = iopf_ctx_drain(c->ctx, d->id, pasid, flags, (int)below(r, 20));
		pthread_mutex_unlock(&c->close_mu);
		CHECK(rc == 0 || rc == -ETIMEDOUT, "iopf_ctx_drain returned %d", rc);
	} else if (p < 25) {
		rc = IN_CTX(c, iopf_ctx_answer_invalid(c->ctx, d->id, pasid, flags));
		CHECK(rc >= 0, "iopf_ctx_answer_invalid returned %d", rc);
	} else if (p < 35 && ms->kind == K_PROD) {
		pthread_mutex_lock(&ms->mu);
		if (ms->s) {
			if (chance(r, 800)) {
				rc = IN_CTX(c, iopf_producer_flush_pasid(ms->s, d->id, pasid));
				CHECK(rc >= 0, "iopf_producer_flush_pasid returned %d", rc);
			} else {
				rc = iopf_producer_discard_partial(ms->s, d->id, 0);
				CHECK(rc >= 0, "iopf_producer_discard_partial returned %d", rc);
			}
		}
		pthread_mutex_unlock(&ms->mu);
	} else if (p < 35) {
		/* The detach ioctl (the kernel answers), then tell libiopf. */
		pthread_mutex_lock(&d->mu);
		pthread_mutex_lock(&ms->mu);
		if (ms->s) {
			fk_detach(ms->fr->f, d->id);
			rc = iopf_source_detach(ms->s, d->id, IOPF_NO_PASID, IOPF_ALL_PASIDS);
			CHECK(rc >= 0, "iopf_source_detach returned %d", rc);
		}
		pthread_mutex_unlock(&ms->mu);
		pthread_mutex_unlock(&d->mu);
	} else if (p < 37 && ms->kind == K_FQ) {
		/* A detach or replace libiopf is not told about: it must notice
		 * when the kernel hands the freed cookies out again. */
		pthread_mutex_lock(&d->mu);
		pthread_mutex_lock(&ms->mu);
		if (ms->s) {
			fk_detach(ms->fr->f, d->id);
		}
		pthread_mutex_unlock(&ms->mu);
		pthread_mutex_unlock(&d->mu);
	} else if (p < 39 && !atomic_load(&d->gone)) {
		/* The device goes: the kernel answers its groups, then libiopf
		 * is told. */
		pthread_mutex_lock(&d->mu);
		if (ms->kind == K_FQ) {
			pthread_mutex_lock(&ms->mu);
			if (ms->fr)
				fk_detach(ms->fr->f, d->id);
			pthread_mutex_unlock(&ms->mu);
		}
		rc = iopf_ctx_device_gone(c->ctx, d->id);
		CHECK(rc >= 0, "iopf_ctx_device_gone returned %d", rc);
		/* A producer's groups are answered INVALID through respond
		 * (1.2): counted there, nothing is dropped. */
		for (unsigned int i = 0; i < KEYS_PER_DEV; i++) {
			struct keystat *k = &S.key[d->idx * KEYS_PER_DEV + i];

			atomic_fetch_add(&k->maybe_dropped, atomic_exchange(&k->epoch_completed, 0));
		}
		atomic_store(&d->gone, true);
		d->gone_ns = now_ns();
		pthread_mutex_unlock(&d->mu);
	} else if (p < 45) {
		rc = iopf_ctx_flush(c->ctx);
		CHECK(rc == 0, "iopf_ctx_flush returned %d", rc);
	} else if (p < 47 && !c->no_default && !c->handler_off) {
		/* No handler for a while: libiopf answers INVALID by itself. */
		rc = iopf_ctx_set_handler(c->ctx, NULL, NULL);
		CHECK(rc == 0, "iopf_ctx_set_handler(NULL) returned %d", rc);
		c->handler_off = true;
		c->off_ns = now_ns();
	} else if (p < 50) {
		IOPF_OPTS(iopf_stats, st);

		rc = iopf_ctx_get_stats(c->ctx, &st);
		CHECK(rc == 0, "iopf_ctx_get_stats returned %d", rc);
	} else if (p < 53 && !c->no_default && !c->handler_off) {
		/* Replace the default handler while workers may run the old
		 * one (1.3): its userdata's destroy must wait for them. */
		rc = iopf_ctx_set_handler_full(c->ctx, handler, token_new(c),
					       token_destroy);
		CHECK(rc == 0, "iopf_ctx_set_handler_full returned %d", rc);
		if (chance(r, 300)) {
			rc = iopf_ctx_quiesce(c->ctx);
			CHECK(rc == 0, "iopf_ctx_quiesce returned %d", rc);
		}
	} else if (p < 55) {
		/* Turns change (1.3): order only, never an answer. */
		rc = iopf_ctx_set_device_sched(c->ctx, d->id, 1 + below(r, 4),
					       chance(r, 300) ? IOPF_SCHED_PRIORITY : 0);
		CHECK(rc == 0, "iopf_ctx_set_device_sched returned %d", rc);
	}
	handlers_back(false);
	/* Devices come back (iommufd hands the id out again). */
	for (int i = 0; i < S.ndev; i++) {
		struct mdev *g = &S.dev[i];

		if (atomic_load(&g->gone) && now_ns() - g->gone_ns > 3000000u) {
			rc = iopf_ctx_unwatch_device(g->ms->c->ctx, g->id);
			CHECK(rc == 0, "iopf_ctx_unwatch_device of gone dev %u returned %d",
			      g->id, rc);
			atomic_store(&g->gone, false);
		}
	}
}

static void *control_thread(void *arg)
{
	struct rng r = rng_from(S.seed, 99);

	(void)arg;
	while (!atomic_load(&S.stop_control)) {
		sleep_us(below(&r, 400));
		control_op(&r);
	}
	handlers_back(true);
	return NULL;
}

/* ---- a scenario ---- */
static void setup(struct rng *r, uint64_t groups)
{
	int nsrc_total = 0, si = 0;

	S.nctx = 1 + (int)below(r, MAX_CTX);
	for (int ci = 0; ci < S.nctx; ci++) {
		struct mctx *c = &S.ctx[ci];
		int nfq = (int)below(r, 3), nprod = (int)below(r, 3);

		if (!nfq && !nprod)
			nfq = 1;
		c->idx = ci;
		c->workers = chance(r, 500) ? 1 + below(r, 3) : 0;
		c->deadline_ms = chance(r, 300) ? 1 + below(r, 30) : 0;
		c->max_outstanding = chance(r, 300) ? 4 + below(r, 60) : 0;
		c->batch_max = chance(r, 300) ? 1 + below(r, 8) : 0;
		c->run_mode = chance(r, 500);
		c->no_default = chance(r, 200);
		c->nsrc = nfq + nprod;
		pthread_mutex_init(&c->close_mu, NULL);
		pthread_mutex_init(&c->mbox_mu, NULL);
		pthread_cond_init(&c->mbox_cv, NULL);
		pthread_mutex_init(&c->stale_mu, NULL);
		for (int i = 0; i < c->nsrc; i++) {
			struct msrc *ms = &c->src[i];

			ms->c = c;
			ms->idx = i;
			ms->kind = i < nfq ? K_FQ : K_PROD;
			ms->ndev = 1 + (int)below(r, DEVS_PER_SRC);
			ms->window = 8 + below(r, 120);
			ms->read_records = chance(r, 300) ? 1 + below(r, 8) : 0;
			ms->partial_cap = chance(r, 300) ? 2 + below(r, 12) : 0;
			ms->close_fd = chance(r, 500);
			ms->small_zero = chance(r, 500);
			ms->read_detach = chance(r, 300);
			ms->rng = rng_from(S.seed, 200 + (uint64_t)si++);
			pthread_mutex_init(&ms->mu, NULL);
			for (int k = 0; k < ms->ndev; k++) {
				struct mdev *d = &S.dev[S.ndev];

				d->idx = S.ndev++;
				d->id = 100 + (uint32_t)d->idx * 7 + below(r, 7);
				d->ms = ms;
				pthread_mutex_init(&d->mu, NULL);
				ms->devs[k] = d;
			}
			nsrc_total++;
		}
	}
	for (int ci = 0; ci < S.nctx; ci++)
		for (int i = 0; i < S.ctx[ci].nsrc; i++)
			S.ctx[ci].src[i].quota = groups / (uint64_t)nsrc_total + 1;
	S.gcap = (uint32_t)(groups * 2 + 1024);
	S.g = calloc(S.gcap, sizeof(*S.g));
	CHECK(S.g, "out of memory");
	atomic_store(&S.gnext, 1);
	pthread_mutex_init(&S.gq_mu, NULL);
	pthread_cond_init(&S.gq_cv, NULL);
}

static void start_ctx(struct mctx *c, struct rng *r)
{
	int bare_src = (int)below(r, (uint32_t)c->nsrc), bare_dev = 0;
	IOPF_OPTS(iopf_ctx_opts, o, .workers = c->workers, .batch_max = c->batch_max,
		  .max_outstanding = c->max_outstanding, .deadline_ms = c->deadline_ms);

	c->ctx = iopf_ctx_new(&o);
	CHECK(c->ctx, "iopf_ctx_new: %s", strerror(errno));
	if (!c->no_default)
		iopf_ctx_set_handler_full(c->ctx, handler, token_new(c), token_destroy);
	iopf_ctx_set_cancel_handler(c->ctx, on_cancel, c);
	for (int i = 0; i < c->nsrc; i++) {
		struct msrc *ms = &c->src[i];

		for (int k = 0; k < ms->ndev; k++) {
			struct mdev *d = ms->devs[k];

			/* Without a default handler one device has none: its
			 * groups are answered INVALID by libiopf. */
			if (c->no_default && i == bare_src && k == bare_dev)
				continue;
			if (c->no_default || chance(r, 200))
				CHECK(iopf_ctx_set_device_handler_full(c->ctx, d->id, handler,
								       token_new(c), token_destroy) == 0,
				      "iopf_ctx_set_device_handler failed");
			if (chance(r, 200))
				CHECK(iopf_ctx_set_pasid_handler_full(c->ctx, d->id, pick_pasid(r),
								      handler, token_new(c),
								      token_destroy) == 0,
				      "iopf_ctx_set_pasid_handler failed");
		}
		source_open(ms);
	}
}

static bool settled(unsigned long long *outst, unsigned int *fq, unsigned int *fo)
{
	bool ok = true;

	*outst = 0;
	*fq = *fo = 0;
	for (int ci = 0; ci < S.nctx; ci++) {
		struct mctx *c = &S.ctx[ci];
		IOPF_OPTS(iopf_stats, st);

		iopf_ctx_get_stats(c->ctx, &st);
		*outst += st.outstanding;
		for (int i = 0; i < c->nsrc; i++) {
			struct msrc *ms = &c->src[i];
			unsigned int q = 0, o = 0;

			if (ms->kind == K_FQ) {
				fk_pending(ms->fr->f, &q, &o);
				*fq += q;
				*fo += o;
			}
		}
	}
	if (*outst || *fq || *fo || gq_len())
		ok = false;
	return ok;
}

static void quiesce(void)
{
	uint64_t t0 = now_ns(), limit = 10ull * 1000000000u;
	unsigned long long outst;
	unsigned int fq, fo;

	atomic_store(&S.quiesce, true);
	for (;;) {
		for (int ci = 0; ci < S.nctx; ci++) {
			struct mctx *c = &S.ctx[ci];

			for (int i = 0; i < c->nsrc; i++)
				for (int k = 0; k < c->src[i].ndev; k++) {
					int rc;

					pthread_mutex_lock(&c->close_mu);
					rc = iopf_ctx_drain(c->ctx, c->src[i].devs[k]->id, 0,
							    IOPF_ALL_PASIDS, 20);
					pthread_mutex_unlock(&c->close_mu);
					CHECK(rc == 0 || rc == -ETIMEDOUT,
					      "iopf_ctx_drain returned %d", rc);
				}
		}
		if (settled(&outst, &fq, &fo))
			return;
		CHECK(now_ns() - t0 < limit,
		      "lost groups: %llu outstanding, %u unread and %u unanswered in fault objects, %zu deferred, after %llu s of quiet",
		      outst, fq, fo, gq_len(), (unsigned long long)(limit / 1000000000u));
		sleep_us(1000);
	}
}

/* The oracle, once every context is freed. Returns the groups checked. */
static uint64_t oracle(void)
{
	static uint64_t uncovered[NKEYS];
	uint64_t total = 0;

	memset(uncovered, 0, sizeof(uncovered));
	for (int ci = 0; ci < S.nctx; ci++) {
		for (struct fault_rec *fr = S.ctx[ci].faults; fr; fr = fr->next) {
			uint64_t n = fk_triggered(fr->f);
			unsigned char *seen = calloc(n + 1, 1);
			const struct fk_answer *a;
			size_t na;

			CHECK(seen, "out of memory");
			CHECK(fk_stale_writes(fr->f) == 0,
			      "fault %u: %llu answers written for cookies whose group was already answered (a second or misrouted answer)",
			      fk_fault_id(fr->f), (unsigned long long)fk_stale_writes(fr->f));
			a = fk_answers(fr->f, &na);
			for (size_t i = 0; i < na; i++) {
				uint64_t s = a[i].seq;
				uint32_t gid;
				struct ginfo *gi;

				CHECK(s >= 1 && s <= n, "fault %u: an answer for no group (seq %llu)",
				      fk_fault_id(fr->f), (unsigned long long)s);
				gid = fr->seq2gid[s];
				gi = &S.g[gid];
				CHECK(!seen[s], "group %u (dev %u pasid %#x prgi %u) answered twice (second: %s%s)",
				      gid, gi->dev, gi->pasid, gi->prgi, code_s((int)a[i].code),
				      a[i].automatic ? " by the kernel" : "");
				seen[s] = 1;
				CHECK(!gi->malformed || a[i].code == IOPF_CODE_INVALID,
				      "malformed group %u (dev %u prgi %u) answered SUCCESS",
				      gid, gi->dev, gi->prgi);
				if (a[i].code == IOPF_CODE_SUCCESS && !atomic_load(&gi->succ)) {
					struct mdev *d = dev_by_id(gi->dev);

					uncovered[d->idx * KEYS_PER_DEV + pasid_idx(gi->pasid) * NPRGI +
						  gi->prgi]++;
				}
			}
			for (uint64_t s = 1; s <= n; s++) {
				struct ginfo *gi = &S.g[fr->seq2gid[s]];

				CHECK(seen[s], "group %u (dev %u pasid %#x prgi %u, %u records) never answered",
				      fr->seq2gid[s], gi->dev, gi->pasid, gi->prgi, gi->nrec);
			}
			total += n;
			free(seen);
		}
	}
	/* Producers: the count of answers per (device, PASID, PRG index). */
	{
		static uint64_t succ[NKEYS];

		memset(succ, 0, sizeof(succ));
		for (uint32_t gid = 1; gid < atomic_load(&S.gnext) && gid < S.gcap; gid++) {
			struct ginfo *gi = &S.g[gid];

			if (gi->kind == K_PROD && atomic_load(&gi->completed) &&
			    atomic_load(&gi->succ))
				succ[dev_by_id(gi->dev)->idx * KEYS_PER_DEV +
				     pasid_idx(gi->pasid) * NPRGI + gi->prgi]++;
		}
		for (int di = 0; di < S.ndev; di++) {
			struct mdev *d = &S.dev[di];
			uint64_t dev_done = 0, dev_got = 0;

			for (unsigned int i = 0; i < KEYS_PER_DEV; i++) {
				struct keystat *k = &S.key[di * KEYS_PER_DEV + i];
				uint64_t done = atomic_load(&k->completed),
					 got = atomic_load(&k->responded),
					 may = atomic_load(&k->maybe_dropped),
					 ok = atomic_load(&k->resp_success),
					 prg = atomic_load(&k->prg_success);
				uint32_t pasid = i / NPRGI ? i / NPRGI : IOPF_NO_PASID;

				CHECK(got <= done,
				      "producer dev %u pasid %#x prgi %u: %llu groups completed, %llu answers (answered twice or never completed)",
				      d->id, pasid, i % NPRGI, (unsigned long long)done,
				      (unsigned long long)got);
				CHECK(got + may >= done,
				      "producer dev %u pasid %#x prgi %u: %llu groups completed, only %llu answers (%llu may have been dropped: device gone)",
				      d->id, pasid, i % NPRGI, (unsigned long long)done,
				      (unsigned long long)got, (unsigned long long)may);
				if (d->ms->kind == K_PROD)
					CHECK(ok <= succ[di * KEYS_PER_DEV + i] + prg,
					      "producer dev %u pasid %#x prgi %u: %llu SUCCESS answers, only %llu decided SUCCESS (misrouted answer)",
					      d->id, pasid, i % NPRGI, (unsigned long long)ok,
					      (unsigned long long)(succ[di * KEYS_PER_DEV + i] + prg));
				else
					CHECK(uncovered[di * KEYS_PER_DEV + i] <= prg,
					      "dev %u pasid %#x prgi %u: %llu groups answered SUCCESS nobody decided (misrouted answer)",
					      d->id, pasid, i % NPRGI,
					      (unsigned long long)(uncovered[di * KEYS_PER_DEV + i] - prg));
				total += d->ms->kind == K_PROD ? done : 0;
				dev_done += done;
				dev_got += got;
			}
			/* Exact per device: answered, or dropped when it went. */
			CHECK(d->ms->kind != K_PROD || dev_done == dev_got + atomic_load(&d->dropped),
			      "producer dev %u: %llu groups completed, %llu answered, %llu dropped by iopf_ctx_device_gone",
			      d->id, (unsigned long long)dev_done, (unsigned long long)dev_got,
			      (unsigned long long)atomic_load(&d->dropped));
		}
	}
	return total;
}

static void stop_guests(void)
{
	atomic_store(&S.stop_guests, true);
	pthread_mutex_lock(&S.gq_mu);
	pthread_cond_broadcast(&S.gq_cv);
	pthread_mutex_unlock(&S.gq_mu);
}

static uint64_t run_scenario(int index, uint64_t sseed, uint64_t groups)
{
	struct rng r = rng_from(sseed, 0);
	pthread_t control, guests[MAX_GUESTS];
	bool calm_end;
	uint64_t done;
	unsigned int tmo = 300;
	const char *e = getenv("IOPF_MODEL_TIMEOUT");

	memset(&S, 0, sizeof(S));
	S.seed = sseed;
	S.index = index;
	atomic_fetch_add(&scen_gen, 1);
	if (e && atoi(e) > 0)
		tmo = (unsigned int)atoi(e);
	snprintf(alarm_msg, sizeof(alarm_msg),
		 "model: seed %llu: FAIL: scenario %d did not finish in %u s (deadlock or hang)\n",
		 (unsigned long long)opt_seed, index, tmo);
	alarm(tmo);

	setup(&r, groups);
	calm_end = chance(&r, 700);
	for (int ci = 0; ci < S.nctx; ci++)
		start_ctx(&S.ctx[ci], &r);
	if (opt_verbose) {
		printf("scenario %d (seed %#llx): %llu groups, %s end\n", index,
		       (unsigned long long)sseed, (unsigned long long)groups,
		       calm_end ? "quiet" : "abrupt");
		for (int ci = 0; ci < S.nctx; ci++) {
			struct mctx *c = &S.ctx[ci];

			printf("  ctx %d: workers %u deadline %u max_outstanding %u batch %u %s%s:", ci,
			       c->workers, c->deadline_ms, c->max_outstanding, c->batch_max,
			       c->run_mode ? "run" : "poll+dispatch",
			       c->no_default ? " no-default-handler" : "");
			for (int i = 0; i < c->nsrc; i++)
				printf(" %s(%d dev)", c->src[i].kind == K_FQ ? "fq" : "prod",
				       c->src[i].ndev);
			printf("\n");
		}
	}
	for (int ci = 0; ci < S.nctx; ci++)
		CHECK(!pthread_create(&S.ctx[ci].disp, NULL, dispatcher, &S.ctx[ci]),
		      "pthread_create failed");
	for (unsigned int i = 0; i < opt_threads; i++)
		CHECK(!pthread_create(&guests[i], NULL, guest_thread, (void *)(uintptr_t)i),
		      "pthread_create failed");
	CHECK(!pthread_create(&control, NULL, control_thread, NULL), "pthread_create failed");
	for (int ci = 0; ci < S.nctx; ci++)
		for (int i = 0; i < S.ctx[ci].nsrc; i++) {
			struct msrc *ms = &S.ctx[ci].src[i];

			CHECK(!pthread_create(&ms->th, NULL, ms->kind == K_FQ ? fq_thread : prod_thread, ms),
			      "pthread_create failed");
		}
	for (int ci = 0; ci < S.nctx; ci++)
		for (int i = 0; i < S.ctx[ci].nsrc; i++)
			pthread_join(S.ctx[ci].src[i].th, NULL);
	atomic_store(&S.stop_control, true);
	pthread_join(control, NULL);

	if (calm_end)
		quiesce();

	/* Stop answering, then stop dispatching. */
	stop_guests();
	for (unsigned int i = 0; i < opt_threads; i++)
		pthread_join(guests[i], NULL);
	atomic_store(&S.teardown, true);
	while (atomic_load(&S.xinflight))
		sched_yield();
	for (int ci = 0; ci < S.nctx; ci++) {
		atomic_store(&S.ctx[ci].stop, true);
		iopf_ctx_stop(S.ctx[ci].ctx);
		pthread_join(S.ctx[ci].disp, NULL);
	}
	/* Close some sources by hand, free the contexts (they close the rest). */
	for (int ci = 0; ci < S.nctx; ci++) {
		struct mctx *c = &S.ctx[ci];

		for (int i = 0; i < c->nsrc; i++)
			if (chance(&r, 500))
				source_close(&c->src[i], "at the end");
		c->st.sz = sizeof(c->st);
		iopf_ctx_get_stats(c->ctx, &c->st);
		iopf_ctx_free(c->ctx);
		c->ctx = NULL;
		for (struct fault_rec *fr = c->faults; fr; fr = fr->next) {
			unsigned int q, o;

			fk_pending(fr->f, &q, &o);
			CHECK(o == 0, "iopf_ctx_free left %u groups read from fault %u unanswered",
			      o, fk_fault_id(fr->f));
			if (fr->ms->fr == fr) /* the kernel answers what was never read */
				for (int k = 0; k < fr->ms->ndev; k++)
					fk_detach(fr->f, fr->ms->devs[k]->id);
		}
	}

	done = oracle();
	tokens_check_and_free(); /* every handler userdata destroyed once */
	if (opt_verbose) {
		for (int ci = 0; ci < S.nctx; ci++) {
			struct iopf_stats *st = &S.ctx[ci].st;

			printf("  ctx %d: groups %llu success %llu invalid %llu (auto %llu, deadline %llu, no handler %llu) kernel %llu cancelled %llu refused %llu unmatched %llu write errors %llu\n",
			       ci, (unsigned long long)st->groups,
			       (unsigned long long)st->answers_success,
			       (unsigned long long)st->answers_invalid,
			       (unsigned long long)st->auto_answers,
			       (unsigned long long)st->deadline_expired,
			       (unsigned long long)st->no_handler,
			       (unsigned long long)st->kernel_answered,
			       (unsigned long long)st->cancelled,
			       (unsigned long long)st->refused_answers,
			       (unsigned long long)st->unmatched_answers,
			       (unsigned long long)st->write_errors);
		}
	}

	/* Free the scenario. */
	for (int ci = 0; ci < S.nctx; ci++) {
		struct mctx *c = &S.ctx[ci];
		struct fault_rec *fr, *nx;

		for (fr = c->faults; fr; fr = nx) {
			nx = fr->next;
			fk_fault_free(fr->f);
			free(fr->seq2gid);
			free(fr);
		}
		for (int i = 0; i < c->nsrc; i++)
			pthread_mutex_destroy(&c->src[i].mu);
		pthread_mutex_destroy(&c->close_mu);
		pthread_mutex_destroy(&c->mbox_mu);
		pthread_cond_destroy(&c->mbox_cv);
		pthread_mutex_destroy(&c->stale_mu);
	}
	for (int i = 0; i < S.ndev; i++)
		pthread_mutex_destroy(&S.dev[i].mu);
	pthread_mutex_destroy(&S.gq_mu);
	pthread_cond_destroy(&S.gq_cv);
	free(S.gq);
	free(S.g);
	alarm(0);
	return done;
}

static void usage(int rc)
{
	fprintf(rc ? stderr : stdout,
		"usage: iopf-model [--seed N] [--groups N] [--threads N] [--seconds N] [--verbose]\n"
		"  --seed N     the run's seed (default 1); scenarios and threads derive theirs\n"
		"  --groups N   groups to run, in scenarios of 2000 to 8000 (default 20000;\n"
		"               multiplied by $IOPF_MODEL_SCALE)\n"
		"  --threads N  guest threads answering deferred groups (default 2)\n"
		"  --seconds N  stop starting scenarios after N seconds (default: no limit)\n"
		"  --verbose    print each scenario's configuration and counters\n"
		"Prints \"model: seed S: G groups, exactly once\" and exits 0, or\n"
		"\"model: seed S: FAIL: reason\" and exits 1.\n");
	exit(rc);
}

static uint64_t num_arg(int argc, char **argv, int *i)
{
	char *end;
	unsigned long long v;

	if (*i + 1 >= argc)
		usage(2);
	errno = 0;
	v = strtoull(argv[++*i], &end, 0);
	if (errno || *end || end == argv[*i])
		usage(2);
	return v;
}

int main(int argc, char **argv)
{
	uint64_t total = 0, goal, t0;
	const char *scale = getenv("IOPF_MODEL_SCALE");
	bool groups_given = false;
	struct rng r;
	int index = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed"))
			opt_seed = num_arg(argc, argv, &i);
		else if (!strcmp(argv[i], "--groups"))
			opt_groups = num_arg(argc, argv, &i), groups_given = true;
		else if (!strcmp(argv[i], "--threads"))
			opt_threads = (unsigned int)num_arg(argc, argv, &i);
		else if (!strcmp(argv[i], "--seconds"))
			opt_seconds = (unsigned int)num_arg(argc, argv, &i);
		else if (!strcmp(argv[i], "--verbose"))
			opt_verbose = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			usage(0);
		else
			usage(2);
	}
	if (opt_threads < 1 || opt_threads > MAX_GUESTS)
		usage(2);
	goal = opt_groups;
	if (scale && atof(scale) > 0)
		goal = (uint64_t)((double)goal * atof(scale));
	if (goal < 100)
		goal = 100;
	if (opt_seconds && !groups_given)
		goal = UINT64_MAX;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	fk_install();

	r = rng_from(opt_seed, 0);
	t0 = now_ns();
	while (total < goal) {
		uint64_t n = 2000 + below(&r, 6000);

		if (opt_seconds && now_ns() - t0 >= (uint64_t)opt_seconds * 1000000000u)
			break;
		if (n > goal - total)
			n = goal - total;
		if (n < 50)
			n = 50;
		total += run_scenario(index++, mix(&r.s), n);
	}
	printf("model: seed %llu: %llu groups, exactly once\n",
	       (unsigned long long)opt_seed, (unsigned long long)total);
	return 0;
}
