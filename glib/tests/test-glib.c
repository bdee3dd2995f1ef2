/* SPDX-License-Identifier: MIT */
/*
 * test-glib.c - libiopf-glib's GSource in a real GMainLoop, over the fake
 * iommufd fault object (tests/support) and a producer:
 *  - the acceptance test: 200 groups whose handlers take 10 ms do
 *    not hold the loop longer than a slice plus one handler (the longest
 *    gap between the beats of a high-priority timeout), and each slice's
 *    answers are written when it ends; and the control that shows the
 *    gap measures what it should (unbounded: the whole run);
 *  - exactly once with deferred answers from timeouts, producers and
 *    fault queues mixed, groups raised while the loop runs;
 *  - destroying the source with groups ready (from a handler, from its
 *    callback, with the context owned by the source);
 *  - dispatch errors: bad arguments, another thread dispatching (-EBUSY:
 *    backs off, no spin, no warning), a failed fault fd (-EIO: warned or
 *    given to the callback), a loop run from a handler (-EDEADLK).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include <glib.h>

#include "fake_kernel.h"
#include "iopf/iopf-glib.h"

/* ---- helpers ---- */

struct fx {
	struct iopf_ctx *ctx;
	struct fk_fault *f;
	struct iopf_source *q;    /* a fault queue on f */
	struct iopf_source *prod; /* a producer, if asked for */
	guint responded;          /* producer respond calls */
	guint8 resp_seen[4096];   /* per (dev - 10) * 256 + prgi: answers */
};

static void on_respond(const struct iopf_response *r, void *ud)
{
	struct fx *x = ud;
	guint k = (r->dev_id - 10) * 256 + r->prgi;

	g_assert_cmpuint(k, <, sizeof(x->resp_seen));
	x->resp_seen[k]++;
	x->responded++;
}

static void fx_init(struct fx *x, gboolean producer)
{
	memset(x, 0, sizeof(*x));
	fk_install();
	x->ctx = iopf_ctx_new(NULL);
	g_assert_nonnull(x->ctx);
	x->f = fk_fault_new();
	x->q = iopf_fault_queue_adopt(x->ctx, fk_fault_fd(x->f),
				      fk_fault_id(x->f), NULL);
	g_assert_nonnull(x->q);
	if (producer) {
		IOPF_OPTS(iopf_producer_opts, po, .respond = on_respond,
			  .userdata = x);
		x->prod = iopf_producer_new(x->ctx, &po);
		g_assert_nonnull(x->prod);
	}
}

/* Free the context unless a source did (ctx NULL), then the fake. */
static void fx_fini(struct fx *x)
{
	iopf_ctx_free(x->ctx);
	fk_fault_free(x->f);
}

/* One group of n requests from a producer device: dev 10.., key k. */
static void submit(struct fx *x, guint k, guint n)
{
	for (guint i = 0; i < n; i++) {
		struct iopf_request r = {
			.flags = i + 1 == n ? IOPF_F_LAST_PAGE : 0,
			.dev_id = 10 + k / 256, .prgi = k % 256,
			.addr = 0x1000ull * (k * 8 + i),
		};
		g_assert_cmpint(iopf_producer_submit(x->prod, &r), >=, 0);
	}
}

static size_t fk_nanswers(struct fk_fault *f)
{
	size_t n;

	fk_answers(f, &n);
	return n;
}

/* Every group the fake raised answered exactly once, no stale write. */
static void assert_fk_once(struct fk_fault *f)
{
	size_t n;
	const struct fk_answer *a = fk_answers(f, &n);
	guint64 total = fk_triggered(f);
	guint8 *seen = g_malloc0(total + 1);

	for (size_t i = 0; i < n; i++) {
		g_assert_cmpuint(a[i].seq, >=, 1);
		g_assert_cmpuint(a[i].seq, <=, total);
		g_assert_cmpuint(seen[a[i].seq], ==, 0);
		seen[a[i].seq] = 1;
	}
	for (guint64 s = 1; s <= total; s++)
		g_assert_cmpuint(seen[s], ==, 1);
	g_assert_cmpuint(fk_stale_writes(f), ==, 0);
	g_free(seen);
}

static void assert_producer_once(struct fx *x, guint total)
{
	for (guint k = 0; k < total; k++)
		g_assert_cmpuint(x->resp_seen[k], ==, 1);
	g_assert_cmpuint(x->responded, ==, total);
}

static gboolean ctx_readable(struct iopf_ctx *ctx)
{
	struct pollfd p = { .fd = iopf_ctx_get_fd(ctx), .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static gboolean quit_cb(gpointer loop)
{
	g_main_loop_quit(loop);
	return G_SOURCE_REMOVE;
}

static gboolean fail_cb(gpointer what)
{
	g_error("timed out: %s", (const char *)what);
	return G_SOURCE_REMOVE;
}

/* Run the default loop for ms milliseconds. */
static void run_for(GMainLoop *loop, guint ms)
{
	g_timeout_add(ms, quit_cb, loop);
	g_main_loop_run(loop);
}

static struct iopf_stats stats(struct iopf_ctx *ctx)
{
	IOPF_OPTS(iopf_stats, st);

	g_assert_cmpint(iopf_ctx_get_stats(ctx, &st), ==, 0);
	return st;
}

/* ---- the acceptance test ---- */

#define ACC_GROUPS 200
#define ACC_HANDLER_US 10000
#define ACC_SLICE_US 20000
#define ACC_BEAT_MS 5

struct acc {
	struct fx x;
	gboolean producer;
	GMainLoop *loop;
	guint total, handled, slices;
	guint answered_at_last;   /* answers the device had when the last
				   * handler ran */
	guint written_first;      /* answers when the first slice ended */
	gint64 last_beat, max_gap, t0, took;
};

static guint acc_answered(struct acc *a)
{
	return a->producer ? a->x.responded : (guint)fk_nanswers(a->x.f);
}

static int acc_handler(struct iopf_group *g, void *ud)
{
	struct acc *a = ud;

	if (++a->handled == a->total)
		a->answered_at_last = acc_answered(a);
	g_usleep(ACC_HANDLER_US);
	return IOPF_CODE_SUCCESS;
}

static gboolean acc_beat(gpointer ud)
{
	struct acc *a = ud;
	gint64 now = g_get_monotonic_time();

	if (now - a->last_beat > a->max_gap)
		a->max_gap = now - a->last_beat;
	a->last_beat = now;
	if (a->took) /* the gap of the last slice is in too */
		g_main_loop_quit(a->loop);
	return G_SOURCE_CONTINUE;
}

/* After each slice: everything handled so far is answered, written. */
static gboolean acc_slice(struct iopf_ctx *ctx, int rc, gpointer ud)
{
	struct acc *a = ud;

	g_assert_cmpint(rc, >=, 0);
	if (rc > 0 && a->slices++ == 0)
		a->written_first = acc_answered(a);
	g_assert_cmpuint(acc_answered(a), ==, a->handled);
	if (a->handled == a->total && !a->took)
		a->took = g_get_monotonic_time() - a->t0;
	return G_SOURCE_CONTINUE;
}

static void acc_run(struct acc *a, guint total, unsigned int slice_us)
{
	GSource *s;
	guint beat, guard;

	fx_init(&a->x, a->producer);
	a->total = total;
	a->loop = g_main_loop_new(NULL, FALSE);
	iopf_ctx_set_handler(a->x.ctx, acc_handler, a);
	for (guint i = 0; i < total; i++) {
		if (a->producer)
			submit(&a->x, i, 1);
		else
			fk_trigger(a->x.f, 1 + i % 4, 0, i % 512, 1, 0x1000ull * i);
	}
	s = iopf_glib_source_new(a->x.ctx, 0, slice_us);
	g_source_set_callback(s, (GSourceFunc)(void (*)(void))acc_slice, a, NULL);
	g_source_attach(s, NULL);
	beat = g_timeout_add_full(G_PRIORITY_HIGH, ACC_BEAT_MS, acc_beat, a, NULL);
	guard = g_timeout_add_seconds(60, fail_cb, "acceptance");
	a->t0 = a->last_beat = g_get_monotonic_time();
	g_main_loop_run(a->loop);
	g_source_remove(guard);
	g_source_remove(beat);
	g_source_destroy(s);
	g_source_unref(s);
	if (!a->producer)
		assert_fk_once(a->x.f);
	else
		assert_producer_once(&a->x, total);
	fx_fini(&a->x);
	g_main_loop_unref(a->loop);
}

static gint64 slack_us(void)
{
	const char *e = g_getenv("IOPF_GLIB_SLACK_MS");

	return (e ? g_ascii_strtoll(e, NULL, 10) : 25) * 1000;
}

static void test_acceptance(gconstpointer producer)
{
	struct acc a = { .producer = GPOINTER_TO_INT(producer) };
	/* a slice lasts at most its budget plus the handler running when it
	 * is spent; a beat is late by at most that plus its own period */
	gint64 bound = ACC_SLICE_US + ACC_HANDLER_US + ACC_BEAT_MS * 1000;

	acc_run(&a, ACC_GROUPS, ACC_SLICE_US);
	g_test_message("%s: %u groups of %d ms, slice %d ms: %u slices, "
		       "longest loop gap %.1f ms (bound %.1f + slack), "
		       "%u answers written when the last handler began, "
		       "%u after the first slice, %.2f s in all",
		       a.producer ? "producer" : "fault queue", ACC_GROUPS,
		       ACC_HANDLER_US / 1000, ACC_SLICE_US / 1000, a.slices,
		       a.max_gap / 1000.0, bound / 1000.0, a.answered_at_last,
		       a.written_first, a.took / 1e6);
	if (g_getenv("IOPF_GLIB_FIGURES"))
		g_printerr("# %s: slices %u max_gap_ms %.1f first_slice %u "
			   "before_last %u total_s %.2f\n",
			   a.producer ? "producer" : "faultq", a.slices,
			   a.max_gap / 1000.0, a.written_first,
			   a.answered_at_last, a.took / 1e6);
	g_assert_cmpint(a.max_gap, <=, bound + slack_us());
	/* answers went out slice by slice, not at the end of the run: when
	 * the last handler began, all but the last slice's were in */
	g_assert_cmpuint(a.written_first, >=, 1);
	g_assert_cmpuint(a.written_first, <=, (ACC_SLICE_US / ACC_HANDLER_US) + 1);
	g_assert_cmpuint(a.answered_at_last, >=,
			 ACC_GROUPS - (ACC_SLICE_US / ACC_HANDLER_US) - 1);
	g_assert_cmpuint(a.slices, >=, ACC_GROUPS / (ACC_SLICE_US / ACC_HANDLER_US + 1));
}

/* The control: unbounded, one dispatch holds the loop for the whole run,
 * and the beat gap shows it (so the bound above measures something). */
static void test_acceptance_control(void)
{
	struct acc a = { 0 };
	guint n = 30;

	acc_run(&a, n, 0);
	g_test_message("unbounded: %u groups of %d ms: %u slice(s), longest "
		       "loop gap %.1f ms", n, ACC_HANDLER_US / 1000, a.slices,
		       a.max_gap / 1000.0);
	g_assert_cmpuint(a.slices, ==, 1);
	g_assert_cmpint(a.max_gap, >=, (gint64)n * ACC_HANDLER_US * 9 / 10);
}

/* ---- exactly once, deferred answers from timeouts ---- */

#define EO_FQ 1500
#define EO_PROD 1000

struct eo {
	struct fx x;
	GMainLoop *loop;
	GQueue deferred;          /* handles, answered by "the guest" */
	guint raised_fq, raised_prod, dup_tries, dup_refused, handled;
	GRand *rnd;
};

static int eo_handler(struct iopf_group *g, void *ud)
{
	struct eo *e = ud;

	e->handled++;
	switch (g_rand_int_range(e->rnd, 0, 3)) {
	case 0:
		return IOPF_CODE_SUCCESS;
	case 1:
		return IOPF_CODE_INVALID;
	default:
		g_queue_push_tail(&e->deferred,
				  GSIZE_TO_POINTER((gsize)iopf_group_handle(g)));
		return IOPF_DEFER;
	}
}

/* The guest: answers some deferred groups, in any order, sometimes twice. */
static gboolean eo_guest(gpointer ud)
{
	struct eo *e = ud;

	for (int i = 0; i < 7 && !g_queue_is_empty(&e->deferred); i++) {
		gboolean tail = g_rand_boolean(e->rnd);
		iopf_handle_t h = (iopf_handle_t)GPOINTER_TO_SIZE(
			tail ? g_queue_pop_tail(&e->deferred)
			     : g_queue_pop_head(&e->deferred));

		g_assert_cmpint(iopf_respond(e->x.ctx, h, IOPF_CODE_SUCCESS), ==, 0);
		if (g_rand_int_range(e->rnd, 0, 10) == 0) {
			e->dup_tries++;
			if (iopf_respond(e->x.ctx, h, IOPF_CODE_INVALID) == -EALREADY)
				e->dup_refused++;
		}
	}
	return G_SOURCE_CONTINUE;
}

/* The devices: raise groups while the loop runs. */
static gboolean eo_device(gpointer ud)
{
	struct eo *e = ud;

	for (int i = 0; i < 25 && e->raised_fq < EO_FQ; i++, e->raised_fq++)
		fk_trigger(e->x.f, 1 + e->raised_fq % 3, e->raised_fq % 2 ? 7 : 0,
			   e->raised_fq % 512, 1, 0x1000ull * e->raised_fq);
	for (int i = 0; i < 17 && e->raised_prod < EO_PROD; i++, e->raised_prod++)
		submit(&e->x, e->raised_prod, 1 + e->raised_prod % 3);
	return e->raised_fq < EO_FQ || e->raised_prod < EO_PROD;
}

static gboolean eo_slice(struct iopf_ctx *ctx, int rc, gpointer ud)
{
	struct eo *e = ud;

	g_assert_cmpint(rc, >=, 0);
	g_assert_cmpint(rc, <=, 16);
	if (fk_nanswers(e->x.f) == EO_FQ && e->x.responded == EO_PROD)
		g_main_loop_quit(e->loop);
	return G_SOURCE_CONTINUE;
}

static void test_exactly_once(void)
{
	struct eo e = { 0 };
	GSource *s;
	guint t1, t2, guard;

	fx_init(&e.x, TRUE);
	e.rnd = g_rand_new_with_seed(16);
	e.loop = g_main_loop_new(NULL, FALSE);
	g_queue_init(&e.deferred);
	iopf_ctx_set_handler(e.x.ctx, eo_handler, &e);
	s = iopf_glib_source_new(e.x.ctx, 16, 0);
	g_source_set_callback(s, (GSourceFunc)(void (*)(void))eo_slice, &e, NULL);
	g_source_attach(s, NULL);
	t1 = g_timeout_add(1, eo_device, &e);
	t2 = g_timeout_add(1, eo_guest, &e);
	guard = g_timeout_add_seconds(60, fail_cb, "exactly once");
	g_main_loop_run(e.loop);
	g_source_remove(guard);
	g_source_remove(t2);
	g_source_destroy(s);
	g_source_unref(s);
	if (g_main_context_find_source_by_id(NULL, t1))
		g_source_remove(t1);

	assert_fk_once(e.x.f);
	assert_producer_once(&e.x, EO_PROD);
	g_assert_cmpuint(e.handled, ==, EO_FQ + EO_PROD);
	g_assert_true(g_queue_is_empty(&e.deferred));
	g_assert_cmpuint(e.dup_refused, ==, e.dup_tries);
	g_assert_cmpuint(stats(e.x.ctx).refused_answers, ==, e.dup_tries);
	g_assert_cmpuint(stats(e.x.ctx).outstanding, ==, 0);
	g_test_message("%u + %u groups, %u duplicate answers refused",
		       EO_FQ, EO_PROD, e.dup_tries);
	fx_fini(&e.x);
	g_rand_free(e.rnd);
	g_main_loop_unref(e.loop);
}

/* ---- destroying the source with work pending ---- */

struct dst {
	struct fx x;
	GSource *s;
	guint handled, destroy_at, destroyed_ctx;
	struct iopf_ctx *destroyed;
};

static int dst_handler(struct iopf_group *g, void *ud)
{
	struct dst *d = ud;

	if (++d->handled == d->destroy_at)
		g_source_destroy(d->s); /* mid-slice: the slice goes on */
	return IOPF_CODE_SUCCESS;
}

static gboolean dst_remove_after_slice(struct iopf_ctx *ctx, int rc,
				       gpointer ud)
{
	return G_SOURCE_REMOVE;
}

static void trigger_n(struct fx *x, guint n)
{
	for (guint i = 0; i < n; i++)
		fk_trigger(x->f, 1, 0, i % 512, 1, 0x1000ull * i);
}

static void test_destroy_from_handler(void)
{
	struct dst d = { .destroy_at = 5 };
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);

	fx_init(&d.x, FALSE);
	iopf_ctx_set_handler(d.x.ctx, dst_handler, &d);
	trigger_n(&d.x, 100);
	d.s = iopf_glib_source_new(d.x.ctx, 10, 0);
	g_source_attach(d.s, NULL);
	run_for(loop, 50);
	/* the slice that destroyed it ended, and nothing ran since */
	g_assert_true(g_source_is_destroyed(d.s));
	g_assert_cmpuint(d.handled, ==, 10);
	g_assert_cmpuint(fk_nanswers(d.x.f), ==, 10);
	g_assert_cmpuint(stats(d.x.ctx).outstanding, ==, 90);
	g_assert_true(ctx_readable(d.x.ctx)); /* the rest is still to do */
	g_source_unref(d.s);

	/* a new source takes over where it stopped */
	guint id = iopf_glib_attach(d.x.ctx, NULL, 0, 0);
	g_assert_cmpuint(id, >, 0);
	run_for(loop, 50);
	g_assert_cmpuint(d.handled, ==, 100);
	assert_fk_once(d.x.f);
	g_source_remove(id);
	fx_fini(&d.x);
	g_main_loop_unref(loop);
}

static void test_destroy_then_ctx_free(void)
{
	struct dst d = { 0 };
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	size_t n;
	const struct fk_answer *a;
	guint inval = 0;

	fx_init(&d.x, FALSE);
	iopf_ctx_set_handler(d.x.ctx, dst_handler, &d);
	trigger_n(&d.x, 50);
	d.s = iopf_glib_source_new(d.x.ctx, 10, 0);
	g_source_set_callback(d.s, (GSourceFunc)(void (*)(void))dst_remove_after_slice,
			      NULL, NULL);
	g_source_attach(d.s, NULL);
	run_for(loop, 30);
	g_assert_true(g_source_is_destroyed(d.s));
	g_source_unref(d.s);
	g_assert_cmpuint(d.handled, ==, 10);
	/* the context answers what is left INVALID when it goes */
	iopf_ctx_free(d.x.ctx);
	d.x.ctx = NULL;
	a = fk_answers(d.x.f, &n);
	g_assert_cmpuint(n, ==, 50);
	for (size_t i = 0; i < n; i++)
		inval += a[i].code == IOPF_CODE_INVALID;
	g_assert_cmpuint(inval, ==, 40);
	assert_fk_once(d.x.f);
	fx_fini(&d.x);
	g_main_loop_unref(loop);
}

static struct dst *owner_test; /* for the destroy notify */

static void owner_ctx_free(gpointer ctx)
{
	owner_test->destroyed = ctx;
	owner_test->destroyed_ctx++;
	iopf_ctx_free(ctx);
}

static void test_destroy_owning_ctx(void)
{
	struct dst d = { .destroy_at = 3 };
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	struct iopf_ctx *ctx;
	size_t n;

	owner_test = &d;
	fx_init(&d.x, FALSE);
	ctx = d.x.ctx;
	iopf_ctx_set_handler(ctx, dst_handler, &d);
	trigger_n(&d.x, 30);
	d.s = iopf_glib_source_new_full(ctx, 10, 0, owner_ctx_free);
	g_assert_true(iopf_glib_source_get_ctx(d.s) == ctx);
	g_source_attach(d.s, NULL);
	/* the handler destroys it, the last reference goes mid-dispatch: the
	 * context is freed only once the dispatch has returned */
	g_source_unref(d.s);
	run_for(loop, 30);
	g_assert_cmpuint(d.destroyed_ctx, ==, 1);
	g_assert_true(d.destroyed == ctx);
	g_assert_cmpuint(d.handled, ==, 10);
	fk_answers(d.x.f, &n);
	g_assert_cmpuint(n, ==, 30);
	assert_fk_once(d.x.f);
	d.x.ctx = NULL;
	fx_fini(&d.x);
	g_main_loop_unref(loop);
}

/* ---- errors ---- */

static guint notified;
static void note_destroy(gpointer p)
{
	notified++;
}

static void test_bad_arguments(void)
{
	GSource *t = g_timeout_source_new(1000);

	errno = 0;
	g_assert_null(iopf_glib_source_new(NULL, 0, 0));
	g_assert_cmpint(errno, ==, EINVAL);
	errno = 0;
	g_assert_null(iopf_glib_source_new_full(NULL, 0, 0, note_destroy));
	g_assert_cmpint(errno, ==, EINVAL);
	g_assert_cmpuint(notified, ==, 0);
	errno = 0;
	g_assert_cmpuint(iopf_glib_attach(NULL, NULL, 0, 0), ==, 0);
	g_assert_cmpint(errno, ==, EINVAL);
	g_assert_null(iopf_glib_source_get_ctx(NULL));
	g_assert_null(iopf_glib_source_get_ctx(t));
	g_source_unref(t);
}

struct busy {
	struct fx x;
	GMutex m;
	GCond c;
	gboolean in, release;
	guint handled, busy_calls, ok_calls;
	GMainLoop *loop;
};

/* The first handler call holds the other thread's dispatch. */
static int busy_handler(struct iopf_group *g, void *ud)
{
	struct busy *b = ud;

	g_mutex_lock(&b->m);
	if (b->handled++ == 0) {
		b->in = TRUE;
		g_cond_broadcast(&b->c);
		while (!b->release)
			g_cond_wait(&b->c, &b->m);
	}
	g_mutex_unlock(&b->m);
	return IOPF_CODE_SUCCESS;
}

static gpointer busy_thread(gpointer ud)
{
	struct busy *b = ud;

	return GINT_TO_POINTER(iopf_ctx_dispatch(b->x.ctx));
}

static gboolean busy_slice(struct iopf_ctx *ctx, int rc, gpointer ud)
{
	struct busy *b = ud;

	if (rc == -EBUSY) {
		b->busy_calls++;
	} else {
		g_assert_cmpint(rc, >=, 0);
		b->ok_calls++;
	}
	if (fk_nanswers(b->x.f) == 11)
		g_main_loop_quit(b->loop);
	return G_SOURCE_CONTINUE;
}

static void test_busy_backs_off(gconstpointer with_cb)
{
	struct busy b = { 0 };
	GThread *t;
	GSource *s;
	guint guard;

	fx_init(&b.x, FALSE);
	g_mutex_init(&b.m);
	g_cond_init(&b.c);
	b.loop = g_main_loop_new(NULL, FALSE);
	iopf_ctx_set_handler(b.x.ctx, busy_handler, &b);
	trigger_n(&b.x, 1);
	t = g_thread_new("dispatch", busy_thread, &b);
	g_mutex_lock(&b.m);
	while (!b.in)
		g_cond_wait(&b.c, &b.m);
	g_mutex_unlock(&b.m);
	/* the other thread is in its handler: new groups make the fd
	 * readable, and our source finds the context busy */
	for (guint i = 1; i <= 10; i++)
		fk_trigger(b.x.f, 2, 0, i, 1, 0);
	s = iopf_glib_source_new(b.x.ctx, 4, 0);
	if (with_cb)
		g_source_set_callback(s, (GSourceFunc)(void (*)(void))busy_slice,
				      &b, NULL);
	g_source_attach(s, NULL);
	run_for(b.loop, 100); /* no warning: -EBUSY is not an error */
	g_assert_cmpuint(b.handled, ==, 1);
	if (with_cb) {
		/* ~1 ms apart, not a spin (that would be 10^4 or more) */
		g_test_message("-EBUSY in 100 ms: %u dispatches", b.busy_calls);
		g_assert_cmpuint(b.busy_calls, >=, 1);
		g_assert_cmpuint(b.busy_calls, <=, 150);
	}
	g_mutex_lock(&b.m);
	b.release = TRUE;
	g_cond_broadcast(&b.c);
	g_mutex_unlock(&b.m);
	g_assert_cmpint(GPOINTER_TO_INT(g_thread_join(t)), ==, 1);
	/* the source takes the rest once the other thread is done */
	guard = g_timeout_add_seconds(10, fail_cb, "busy");
	if (with_cb) {
		g_main_loop_run(b.loop);
		g_assert_cmpuint(b.ok_calls, >=, 3);
	} else {
		while (fk_nanswers(b.x.f) < 11)
			g_main_context_iteration(NULL, TRUE);
	}
	g_source_remove(guard);
	g_assert_cmpuint(b.handled, ==, 11);
	assert_fk_once(b.x.f);
	g_source_destroy(s);
	g_source_unref(s);
	fx_fini(&b.x);
	g_mutex_clear(&b.m);
	g_cond_clear(&b.c);
	g_main_loop_unref(b.loop);
}

struct eio {
	struct fx x;
	int results[16];
	guint nresults;
};

static gboolean eio_slice(struct iopf_ctx *ctx, int rc, gpointer ud)
{
	struct eio *e = ud;

	if (e->nresults < G_N_ELEMENTS(e->results))
		e->results[e->nresults++] = rc;
	return G_SOURCE_CONTINUE;
}

static void test_eio(gconstpointer with_cb)
{
	struct eio e = { 0 };
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	GSource *s;
	guint eios = 0;

	fx_init(&e.x, TRUE);
	/* no handler: every group is answered INVALID by libiopf */
	s = iopf_glib_source_new(e.x.ctx, 0, 0);
	if (with_cb)
		g_source_set_callback(s, (GSourceFunc)(void (*)(void))eio_slice,
				      &e, NULL);
	g_source_attach(s, NULL);
	/* the fault fd dies on its next read; a producer carries on */
	fk_fail_next(e.x.f, 0, EBADF);
	fk_trigger(e.x.f, 1, 0, 1, 1, 0);
	submit(&e.x, 0, 1);
	if (!with_cb)
		g_test_expect_message("iopf-glib", G_LOG_LEVEL_WARNING,
				      "*a fault fd failed*");
	run_for(loop, 30);
	if (!with_cb)
		g_test_assert_expected_messages();
	submit(&e.x, 1, 2);
	run_for(loop, 30);
	g_assert_cmpuint(e.x.responded, ==, 2); /* no handler: INVALID */
	g_assert_cmpuint(stats(e.x.ctx).source_errors, ==, 1);
	if (with_cb) {
		for (guint i = 0; i < e.nresults; i++)
			eios += e.results[i] == -EIO;
		g_assert_cmpuint(eios, ==, 1);
	}
	g_source_destroy(s);
	g_source_unref(s);
	fx_fini(&e.x);
	g_main_loop_unref(loop);
}

struct dl {
	struct fx x;
	GMainContext *mc2;
	int nested_rc;
	guint nested_calls;
	gboolean with_cb;
};

static gboolean dl_nested(struct iopf_ctx *ctx, int rc, gpointer ud)
{
	struct dl *d = ud;

	d->nested_rc = rc;
	d->nested_calls++;
	return G_SOURCE_CONTINUE;
}

/* A handler that runs another main loop holding a source of the same
 * context: that source cannot dispatch from inside a handler. */
static int dl_handler(struct iopf_group *g, void *ud)
{
	struct dl *d = ud;

	if (iopf_group_prgi(g) == 0) {
		fk_trigger(d->x.f, 1, 0, 1, 1, 0); /* the fd is readable */
		g_main_context_iteration(d->mc2, FALSE);
	}
	return IOPF_CODE_SUCCESS;
}

static void test_deadlock(gconstpointer with_cb)
{
	struct dl d = { .with_cb = GPOINTER_TO_INT(with_cb) };
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	GSource *s2;
	guint id;

	fx_init(&d.x, FALSE);
	d.mc2 = g_main_context_new();
	iopf_ctx_set_handler(d.x.ctx, dl_handler, &d);
	s2 = iopf_glib_source_new(d.x.ctx, 0, 0);
	if (d.with_cb)
		g_source_set_callback(s2, (GSourceFunc)(void (*)(void))dl_nested,
				      &d, NULL);
	g_source_attach(s2, d.mc2);
	id = iopf_glib_attach(d.x.ctx, NULL, 0, 0);
	fk_trigger(d.x.f, 1, 0, 0, 1, 0);
	if (!d.with_cb)
		g_test_expect_message("iopf-glib", G_LOG_LEVEL_WARNING,
				      "*EDEADLK*");
	run_for(loop, 30);
	if (!d.with_cb)
		g_test_assert_expected_messages();
	else
		g_assert_cmpint(d.nested_rc, ==, -EDEADLK);
	g_assert_cmpuint(fk_nanswers(d.x.f), ==, 2);
	assert_fk_once(d.x.f);
	g_source_remove(id);
	g_source_destroy(s2);
	g_source_unref(s2);
	g_main_context_unref(d.mc2);
	fx_fini(&d.x);
	g_main_loop_unref(loop);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_data_func("/glib/acceptance/fault-queue", GINT_TO_POINTER(0),
			     test_acceptance);
	g_test_add_data_func("/glib/acceptance/producer", GINT_TO_POINTER(1),
			     test_acceptance);
	g_test_add_func("/glib/acceptance/unbounded-control",
			test_acceptance_control);
	g_test_add_func("/glib/exactly-once/deferred", test_exactly_once);
	g_test_add_func("/glib/destroy/from-handler", test_destroy_from_handler);
	g_test_add_func("/glib/destroy/then-ctx-free", test_destroy_then_ctx_free);
	g_test_add_func("/glib/destroy/owning-ctx", test_destroy_owning_ctx);
	g_test_add_func("/glib/errors/arguments", test_bad_arguments);
	g_test_add_data_func("/glib/errors/busy", GINT_TO_POINTER(0),
			     test_busy_backs_off);
	g_test_add_data_func("/glib/errors/busy-callback", GINT_TO_POINTER(1),
			     test_busy_backs_off);
	g_test_add_data_func("/glib/errors/eio", GINT_TO_POINTER(0), test_eio);
	g_test_add_data_func("/glib/errors/eio-callback", GINT_TO_POINTER(1),
			     test_eio);
	g_test_add_data_func("/glib/errors/deadlock", GINT_TO_POINTER(0),
			     test_deadlock);
	g_test_add_data_func("/glib/errors/deadlock-callback",
			     GINT_TO_POINTER(1), test_deadlock);
	return g_test_run();
}
