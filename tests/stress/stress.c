/* SPDX-License-Identifier: MIT */
/*
 * stress.c - iopf-stress [--seconds N] [--seed N]: every thread-safe entry
 * point at once, on a context with a worker pool, a fault queue on the fake
 * kernel and a producer source, then an exactly-once oracle.
 *
 * Threads: one dispatcher (iopf_ctx_run); workers calling the handler,
 * which answers now, defers, or answers OTHER groups' handles; two threads
 * answering deferred groups by handle (iopf_respond, now and then twice),
 * one by PRG index (iopf_respond_prg); one doing drain, flush,
 * producer_flush_pasid and answer_invalid; one raising faults
 * (fk_trigger_group, 1 to 3 records); one submitting to the producer
 * (partial requests, then LAST).
 *
 * At the end (after iopf_ctx_free): every group the fake kernel raised was
 * answered exactly once (fk_answers), every producer group completed got
 * exactly one respond callback (counted per (dev, PASID, PRG index)), the
 * kernel refused no answer (a second answer to a reused cookie would show
 * there), and every return value was one the API documents.
 * Built under ThreadSanitizer (-DIOPF_SANITIZE=thread) it doubles as a
 * race detector.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "iopf/iopf.h"

#define NDEV 3      /* device ids 1..3, on both sources */
#define NPASID 3    /* none, 5, 6 */
#define NPRGI 16    /* PRG indices 0..15: keys collide on purpose */
#define MAX_OUT 512 /* raisers pause while this many groups are outstanding */

static const uint32_t pasids[NPASID] = { IOPF_NO_PASID, 5, 6 };

static struct iopf_ctx *ctx;
static struct iopf_source *fq, *prod;
static struct fk_fault *fault;
static atomic_bool stop_load;  /* trigger, producer, answerers, chaos */
static atomic_int failures;
static bool bulk = true; /* --no-bulk: no producer_flush_pasid / answer_invalid */

/* ---- per-thread random numbers ---- */

static uint64_t seed0;

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static unsigned int pick(uint64_t *s, unsigned int n)
{
	return (unsigned int)(rnd(s) % n);
}

static _Thread_local uint64_t tl_rng;

static uint64_t *my_rng(void)
{
	if (!tl_rng) {
		static atomic_uint_fast64_t next = 1;

		tl_rng = seed0 * 0x9e3779b97f4a7c15ull +
			 atomic_fetch_add(&next, 1) * 0xbf58476d1ce4e5b9ull;
		if (!tl_rng)
			tl_rng = 1;
	}
	return &tl_rng;
}

static void fail(const char *what, int rc)
{
	if (atomic_fetch_add(&failures, 1) < 20)
		fprintf(stderr, "stress: %s returned %d (%s): not documented\n",
			what, rc, rc < 0 ? strerror(-rc) : "?");
}

static void nap_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- queues of deferred groups, for the answering threads ---- */

#define QCAP 4096

struct hq {
	pthread_mutex_t lock;
	iopf_handle_t v[QCAP];
	unsigned int head, n;
};

struct pq_ent { uint32_t dev, pasid, prgi; };
struct pq {
	pthread_mutex_t lock;
	struct pq_ent v[QCAP];
	unsigned int head, n;
};

static struct hq handles = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct pq prgs = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void hq_push(iopf_handle_t h)
{
	pthread_mutex_lock(&handles.lock);
	if (handles.n < QCAP) /* full: the group waits for a bulk answer */
		handles.v[(handles.head + handles.n++) % QCAP] = h;
	pthread_mutex_unlock(&handles.lock);
}

static bool hq_pop(iopf_handle_t *h)
{
	bool ok = false;

	pthread_mutex_lock(&handles.lock);
	if (handles.n) {
		*h = handles.v[handles.head];
		handles.head = (handles.head + 1) % QCAP;
		handles.n--;
		ok = true;
	}
	pthread_mutex_unlock(&handles.lock);
	return ok;
}

static void pq_push(struct pq_ent e)
{
	pthread_mutex_lock(&prgs.lock);
	if (prgs.n < QCAP)
		prgs.v[(prgs.head + prgs.n++) % QCAP] = e;
	pthread_mutex_unlock(&prgs.lock);
}

static bool pq_pop(struct pq_ent *e)
{
	bool ok = false;

	pthread_mutex_lock(&prgs.lock);
	if (prgs.n) {
		*e = prgs.v[prgs.head];
		prgs.head = (prgs.head + 1) % QCAP;
		prgs.n--;
		ok = true;
	}
	pthread_mutex_unlock(&prgs.lock);
	return ok;
}

/* ---- answers and their documented return values ---- */

static atomic_ulong n_respond_ok, n_respond_refused, n_prg_ok, n_prg_refused;

static void respond_checked(iopf_handle_t h, enum iopf_code code)
{
	int rc = iopf_respond(ctx, h, code);

	if (rc == 0)
		atomic_fetch_add(&n_respond_ok, 1);
	else if (rc == -EALREADY || rc == -ESHUTDOWN || rc == -ETIMEDOUT ||
		 rc == -ENODEV || rc == -ENOENT)
		atomic_fetch_add(&n_respond_refused, 1);
	else
		fail("iopf_respond", rc);
}

static void respond_prg_checked(struct pq_ent e, enum iopf_code code)
{
	int rc = iopf_respond_prg(ctx, e.dev, e.pasid, e.prgi, code);

	if (rc == 0)
		atomic_fetch_add(&n_prg_ok, 1);
	else if (rc == -ENOENT || rc == -ENODEV)
		atomic_fetch_add(&n_prg_refused, 1);
	else
		fail("iopf_respond_prg", rc);
}

/* ---- the handler (on the worker threads) ---- */

static atomic_ulong n_handled;

static int handler(struct iopf_group *g, void *ud)
{
	uint64_t *r = my_rng();
	size_t n;
	const struct iopf_record *rec = iopf_group_records(g, &n);
	unsigned int what = pick(r, 16);
	iopf_handle_t other;

	(void)ud;
	atomic_fetch_add(&n_handled, 1);
	if (n < 1 || !rec || !(rec[n - 1].flags & IOPF_F_LAST_PAGE))
		fail("iopf_group_records (no LAST record last)", (int)n);
	/* Sometimes answer someone else's deferred group first. */
	if (what < 4 && hq_pop(&other))
		respond_checked(other, pick(r, 2) ? IOPF_CODE_SUCCESS :
						    IOPF_CODE_INVALID);
	switch (what % 8) {
	case 0: case 1: case 2:
		hq_push(iopf_group_handle(g));
		return IOPF_DEFER;
	case 3:
		pq_push((struct pq_ent){ iopf_group_dev_id(g), iopf_group_pasid(g),
					 iopf_group_prgi(g) });
		return IOPF_DEFER;
	case 4:
		/* Answer by handle from inside, and say DEFER. */
		respond_checked(iopf_group_handle(g), IOPF_CODE_SUCCESS);
		return IOPF_DEFER;
	case 5:
		/* Answer by handle AND return a code: the return is refused. */
		respond_checked(iopf_group_handle(g), IOPF_CODE_SUCCESS);
		return IOPF_CODE_SUCCESS;
	case 6:
		return IOPF_CODE_INVALID;
	default:
		return IOPF_CODE_SUCCESS;
	}
}

/* ---- producer side ---- */

#define KEY(d, p, g) (((d) - 1) * NPASID * NPRGI + (p) * NPRGI + (g))
#define NKEYS (NDEV * NPASID * NPRGI)

static atomic_ulong completed[NKEYS], responded[NKEYS];
static atomic_ulong n_completed, n_responses, n_bad_response;

static int pasid_index(uint32_t pasid)
{
	for (int i = 0; i < NPASID; i++)
		if (pasids[i] == pasid)
			return i;
	return -1;
}

static void on_response(const struct iopf_response *resp, void *ud)
{
	int pi = pasid_index(resp->pasid);

	(void)ud;
	atomic_fetch_add(&n_responses, 1);
	if (resp->dev_id < 1 || resp->dev_id > NDEV || pi < 0 ||
	    resp->prgi >= NPRGI || resp->code > IOPF_CODE_INVALID) {
		atomic_fetch_add(&n_bad_response, 1);
		return;
	}
	atomic_fetch_add(&responded[KEY(resp->dev_id, (unsigned int)pi, resp->prgi)], 1);
}

static uint64_t outstanding_now(void)
{
	struct iopf_stats st = { .sz = sizeof(st) };
	int rc = iopf_ctx_get_stats(ctx, &st);

	if (rc)
		fail("iopf_ctx_get_stats", rc);
	return st.outstanding;
}

static void *producer_main(void *arg)
{
	uint64_t *r = my_rng();
	unsigned long groups = 0;

	(void)arg;
	while (!atomic_load(&stop_load)) {
		uint32_t dev = 1 + pick(r, NDEV), pi = pick(r, NPASID),
			 prgi = pick(r, NPRGI), nrec = 1 + pick(r, 4);
		struct iopf_request q = {
			.flags = pi ? IOPF_F_PASID_VALID : 0,
			.dev_id = dev, .pasid = pi ? pasids[pi] : 0,
			.prgi = prgi, .perm = IOPF_PERM_READ,
		};
		int rc;

		for (uint32_t i = 0; i + 1 < nrec; i++) {
			q.addr = 0x100000 + (uint64_t)i * 4096;
			rc = iopf_producer_submit(prod, &q);
			if (rc != 0 && rc != -ENOSPC)
				fail("iopf_producer_submit (partial)", rc);
		}
		q.flags |= IOPF_F_LAST_PAGE;
		q.addr = 0x200000;
		/* Counted before: the answer may come before submit returns. */
		atomic_fetch_add(&completed[KEY(dev, pi, prgi)], 1);
		rc = iopf_producer_submit(prod, &q);
		if (rc == 1 || rc == -ENOMEM) {
			atomic_fetch_add(&n_completed, 1);
		} else {
			atomic_fetch_sub(&completed[KEY(dev, pi, prgi)], 1);
			fail("iopf_producer_submit (LAST)", rc);
		}
		if (++groups % 32 == 0)
			while (!atomic_load(&stop_load) && outstanding_now() > MAX_OUT)
				nap_us(500);
		if (pick(r, 8) == 0)
			nap_us(50);
	}
	return NULL;
}

/* ---- fault side ---- */

static void *trigger_main(void *arg)
{
	uint64_t *r = my_rng();
	unsigned long groups = 0;

	(void)arg;
	while (!atomic_load(&stop_load)) {
		struct iopf_k_pgfault recs[3];
		uint32_t dev = 1 + pick(r, NDEV), pi = pick(r, NPASID),
			 prgi = pick(r, NPRGI), n = 1 + pick(r, 3);

		for (uint32_t i = 0; i < n; i++)
			recs[i] = (struct iopf_k_pgfault){
				.flags = (pi ? IOPF_K_PGFAULT_FLAGS_PASID_VALID : 0) |
					 (i + 1 == n ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0),
				.dev_id = dev, .pasid = pi ? pasids[pi] : 0,
				.grpid = prgi, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
				.addr = 0x400000 + (uint64_t)i * 4096,
			};
		fk_trigger_group(fault, recs, n);
		if (++groups % 32 == 0)
			while (!atomic_load(&stop_load) && outstanding_now() > MAX_OUT)
				nap_us(500);
		if (pick(r, 8) == 0)
			nap_us(50);
	}
	return NULL;
}

/* ---- answering threads ---- */

static void *by_handle_main(void *arg)
{
	uint64_t *r = my_rng();

	(void)arg;
	while (!atomic_load(&stop_load)) {
		iopf_handle_t h;

		if (!hq_pop(&h)) {
			nap_us(100);
			continue;
		}
		respond_checked(h, pick(r, 4) ? IOPF_CODE_SUCCESS : IOPF_CODE_INVALID);
		if (pick(r, 8) == 0) /* a duplicate: must be refused */
			respond_checked(h, IOPF_CODE_SUCCESS);
	}
	return NULL;
}

static void *by_prg_main(void *arg)
{
	uint64_t *r = my_rng();

	(void)arg;
	while (!atomic_load(&stop_load)) {
		struct pq_ent e;

		if (!pq_pop(&e)) {
			/* a guest's stray answer to some key */
			if (pick(r, 4) == 0) {
				unsigned int pi = pick(r, NPASID);

				e = (struct pq_ent){ 1 + pick(r, NDEV), pasids[pi],
						     pick(r, NPRGI) };
				respond_prg_checked(e, IOPF_CODE_SUCCESS);
			}
			nap_us(100);
			continue;
		}
		respond_prg_checked(e, pick(r, 4) ? IOPF_CODE_SUCCESS : IOPF_CODE_INVALID);
	}
	return NULL;
}

/* drain, flush, producer_flush_pasid, answer_invalid */
static void *chaos_main(void *arg)
{
	uint64_t *r = my_rng();

	(void)arg;
	while (!atomic_load(&stop_load)) {
		uint32_t dev = 1 + pick(r, NDEV), pasid = pasids[pick(r, NPASID)];
		unsigned int flags = pick(r, 4) ? 0 : IOPF_ALL_PASIDS;
		int rc;

		switch (bulk ? pick(r, 4) : pick(r, 2)) {
		case 0:
			rc = iopf_ctx_drain(ctx, dev, pasid, flags, (int)pick(r, 20));
			if (rc != 0 && rc != -ETIMEDOUT)
				fail("iopf_ctx_drain", rc);
			break;
		case 1:
			rc = iopf_ctx_flush(ctx);
			if (rc)
				fail("iopf_ctx_flush", rc);
			break;
		case 2:
			rc = iopf_producer_flush_pasid(prod, dev, pasid);
			if (rc < 0)
				fail("iopf_producer_flush_pasid", rc);
			break;
		default:
			rc = iopf_ctx_answer_invalid(ctx, dev, pasid, flags);
			if (rc < 0)
				fail("iopf_ctx_answer_invalid", rc);
			break;
		}
		nap_us(1000 + pick(r, 3000));
	}
	return NULL;
}

static void *run_main(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)iopf_ctx_run(ctx);
}

/* ---- the oracle ---- */

static unsigned long check_fault_answers(void)
{
	uint64_t total = fk_triggered(fault);
	unsigned char *seen = calloc(total + 1, 1);
	size_t n;
	const struct fk_answer *a = fk_answers(fault, &n);
	unsigned long twice = 0, never = 0, bogus = 0;

	if (!seen) {
		perror("calloc");
		exit(2);
	}
	for (size_t i = 0; i < n; i++) {
		if (!a[i].seq || a[i].seq > total) {
			bogus++;
			continue;
		}
		if (seen[a[i].seq]++) {
			if (twice++ < 5)
				fprintf(stderr, "stress: fault group %" PRIu64 " answered twice\n",
					a[i].seq);
		}
	}
	for (uint64_t s = 1; s <= total; s++)
		if (!seen[s] && never++ < 5)
			fprintf(stderr, "stress: fault group %" PRIu64 " never answered\n", s);
	free(seen);
	if (twice || never || bogus)
		fprintf(stderr, "stress: fault queue: %" PRIu64 " raised, %zu answers: "
			"%lu twice, %lu never, %lu unknown\n", total, n, twice, never, bogus);
	return twice + never + bogus;
}

static unsigned long check_producer_answers(void)
{
	unsigned long bad = 0;

	for (int k = 0; k < NKEYS; k++) {
		unsigned long c = atomic_load(&completed[k]), r = atomic_load(&responded[k]);

		if (c != r && bad++ < 5)
			fprintf(stderr, "stress: producer key %d: %lu groups, %lu respond calls\n",
				k, c, r);
	}
	if (atomic_load(&n_bad_response)) {
		fprintf(stderr, "stress: %lu respond calls for keys never submitted\n",
			atomic_load(&n_bad_response));
		bad++;
	}
	if (atomic_load(&n_completed) != atomic_load(&n_responses)) {
		fprintf(stderr, "stress: producer: %lu groups, %lu respond calls\n",
			atomic_load(&n_completed), atomic_load(&n_responses));
		bad++;
	}
	return bad;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--seconds N] [--seed N] [--workers N] [--no-bulk]\n"
		"Every thread-safe libiopf call at once on the fake kernel, then\n"
		"checks that each group got exactly one answer. --no-bulk leaves out\n"
		"the bulk answers (answer_invalid, producer_flush_pasid), to tell\n"
		"their defects from others.\n", argv0);
}

int main(int argc, char **argv)
{
	unsigned int seconds = 10, workers = 0;
	pthread_t th_run, th_trig, th_prod, th_h[2], th_prg, th_chaos;
	void *run_rc;
	unsigned long bad = 0;
	uint64_t raised;

	seed0 = (uint64_t)time(NULL);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = (unsigned int)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed0 = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--no-bulk"))
			bulk = false;
		else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
			workers = (unsigned int)strtoul(argv[++i], NULL, 0);
		else {
			usage(argv[0]);
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (!workers)
		workers = 2 + (unsigned int)(seed0 % 3); /* 2..4 */
	printf("stress: seed %" PRIu64 ", %u s, %u workers\n", seed0, seconds, workers);
	fflush(stdout);

	fk_install();
	IOPF_OPTS(iopf_ctx_opts, o, .workers = workers, .batch_max = 16,
		  .log_fn = NULL);
	ctx = iopf_ctx_new(&o);
	if (!ctx) {
		perror("iopf_ctx_new");
		return 2;
	}
	fault = fk_fault_new();
	/* A small first buffer: groups of 3 records make it grow. */
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = 2,
		  .max_read_records = 64);
	fq = iopf_fault_queue_adopt(ctx, fk_fault_fd(fault), fk_fault_id(fault), &fo);
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_response, .partial_cap = 64);
	prod = iopf_producer_new(ctx, &po);
	if (!fq || !prod) {
		perror("source");
		return 2;
	}
	iopf_ctx_set_handler(ctx, handler, NULL);

	pthread_create(&th_run, NULL, run_main, NULL);
	pthread_create(&th_h[0], NULL, by_handle_main, NULL);
	pthread_create(&th_h[1], NULL, by_handle_main, NULL);
	pthread_create(&th_prg, NULL, by_prg_main, NULL);
	pthread_create(&th_chaos, NULL, chaos_main, NULL);
	pthread_create(&th_trig, NULL, trigger_main, NULL);
	pthread_create(&th_prod, NULL, producer_main, NULL);

	for (unsigned int s = 0; s < seconds * 10; s++)
		nap_us(100000);
	atomic_store(&stop_load, true);
	pthread_join(th_trig, NULL);
	pthread_join(th_prod, NULL);
	pthread_join(th_h[0], NULL);
	pthread_join(th_h[1], NULL);
	pthread_join(th_prg, NULL);
	pthread_join(th_chaos, NULL);

	/* Let the loop read what the fake still holds, then stop it. */
	for (int i = 0; i < 1000 && fk_queued(fault); i++)
		nap_us(1000);
	iopf_ctx_stop(ctx);
	pthread_join(th_run, &run_rc);
	if ((intptr_t)run_rc != 0)
		fail("iopf_ctx_run", (int)(intptr_t)run_rc);
	/* Whatever the loop left unread (it should be nothing). */
	for (int i = 0; i < 1000 && fk_queued(fault); i++) {
		int rc = iopf_ctx_dispatch(ctx);

		if (rc < 0)
			fail("iopf_ctx_dispatch", rc);
	}
	if (fk_queued(fault)) {
		fprintf(stderr, "stress: %u groups never read\n", fk_queued(fault));
		bad++;
	}

	{
		struct iopf_stats st = { .sz = sizeof(st) };

		iopf_ctx_get_stats(ctx, &st);
		if (st.write_errors) {
			fprintf(stderr, "stress: the kernel refused %" PRIu64
				" answers (a cookie answered twice?)\n", st.write_errors);
			bad++;
		}
		printf("stress: handled %lu; by handle %lu ok, %lu refused; "
		       "by PRG %lu ok, %lu refused; auto INVALID %" PRIu64
		       ", refused answers %" PRIu64 ", outstanding at free %" PRIu64 "\n",
		       atomic_load(&n_handled), atomic_load(&n_respond_ok),
		       atomic_load(&n_respond_refused), atomic_load(&n_prg_ok),
		       atomic_load(&n_prg_refused), st.auto_answers,
		       st.refused_answers, st.outstanding);
	}
	iopf_ctx_free(ctx);
	ctx = NULL;

	raised = fk_triggered(fault);
	bad += check_fault_answers();
	bad += check_producer_answers();
	fk_fault_free(fault);
	if (atomic_load(&failures)) {
		fprintf(stderr, "stress: %d undocumented return values\n",
			atomic_load(&failures));
		bad++;
	}
	if (bad) {
		printf("stress: FAILED (%lu problems; seed %" PRIu64 ")\n", bad, seed0);
		return 1;
	}
	printf("stress: %" PRIu64 " groups, exactly once\n",
	       raised + (uint64_t)atomic_load(&n_completed));
	return 0;
}
