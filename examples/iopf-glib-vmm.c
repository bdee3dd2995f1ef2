/* SPDX-License-Identifier: MIT */
/*
 * iopf-glib-vmm - a VMM-style GLib main loop serving I/O page faults
 * without ever blocking it (libiopf-glib).
 *
 * Everything runs in one thread, on one GMainLoop, as in QEMU:
 *  - simulated devices (a timeout source) raise page request groups of one
 *    to three requests through a libiopf producer, each on a PRG index it
 *    has free, and check every answer they get back;
 *  - device 1 is emulated and slow: its handler resolves each fault
 *    synchronously in --handler-us;
 *  - the other devices' faults go to a simulated guest: their handler
 *    defers each group and queues it, and a guest timeout answers a few
 *    each tick (now and then INVALID, as a guest may);
 *  - a heartbeat timeout notes the longest gap between two of its calls:
 *    how long the loop was held.
 * The iopf GSource dispatches the context in slices of at most
 * --slice-us (plus the handler running when it is spent), so the
 * heartbeat's gap stays near that, however many faults are waiting;
 * --unbounded shows the difference. Prints a summary; exits 1 if a group
 * was lost or answered twice.
 *
 * Uses libiopf's and libiopf-glib's public API only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include <iopf/iopf-glib.h>

#define MAX_DEV 16
#define NPRGI 512 /* PRG indexes: 9 bits */

struct device {
	uint32_t id;
	guint8 waiting[NPRGI]; /* an answer is due for this PRG index */
	guint nwaiting;
	guint next;            /* where to look for a free index */
};

struct vmm {
	/* options */
	gint groups, ndev, slice_us, slice_groups, handler_us, guest_ms, beat_ms;
	gboolean unbounded;
	/* state */
	struct iopf_ctx *ctx;
	struct iopf_source *prod;
	GMainLoop *loop;
	struct device dev[MAX_DEV];
	GQueue guest;          /* deferred handles, oldest first */
	guint issued, answered, success, invalid, twice, guest_answers;
	gint64 t0, last_beat, max_gap, beats;
	gboolean timed_out;
};

/* ---- the devices ---- */

static void on_answer(const struct iopf_response *r, void *ud)
{
	struct vmm *v = ud;
	struct device *d = r->dev_id >= 1 && r->dev_id <= (uint32_t)v->ndev
				   ? &v->dev[r->dev_id - 1] : NULL;

	if (!d || r->prgi >= NPRGI || !d->waiting[r->prgi]) {
		v->twice++; /* nothing was waiting: a second or stray answer */
		return;
	}
	d->waiting[r->prgi] = 0;
	d->nwaiting--;
	v->answered++;
	if (r->code == IOPF_CODE_SUCCESS)
		v->success++;
	else
		v->invalid++;
	if (v->answered == (guint)v->groups)
		g_main_loop_quit(v->loop);
}

/* One group: partial requests, then the LAST one. */
static void raise_group(struct vmm *v, struct device *d, guint prgi)
{
	guint n = 1 + (v->issued % 3);

	d->waiting[prgi] = 1;
	d->nwaiting++;
	v->issued++;
	for (guint i = 0; i < n; i++) {
		struct iopf_request rq = {
			.flags = (i + 1 == n ? IOPF_F_LAST_PAGE : 0) |
				 (d->id == 3 ? IOPF_F_PASID_VALID : 0),
			.dev_id = d->id,
			.pasid = d->id == 3 ? 5 : 0,
			.prgi = prgi,
			.perm = IOPF_PERM_READ | (i & 1 ? IOPF_PERM_WRITE : 0),
			.addr = 0x100000ull * d->id + 0x1000ull * (prgi * 4 + i),
		};
		int rc = iopf_producer_submit(v->prod, &rq);

		if (rc < 0)
			g_printerr("submit dev %u prgi %u: %s\n", d->id, prgi,
				   g_strerror(-rc));
	}
}

/* Each tick every device raises a burst on free PRG indexes. */
static gboolean devices_tick(gpointer ud)
{
	struct vmm *v = ud;

	for (int k = 0; k < v->ndev; k++) {
		struct device *d = &v->dev[k];

		for (int b = 0; b < 32 && v->issued < (guint)v->groups; b++) {
			guint tries = 0;

			while (d->waiting[d->next % NPRGI] && tries++ < NPRGI)
				d->next++;
			if (tries > NPRGI)
				break; /* every index in use: wait for answers */
			raise_group(v, d, d->next++ % NPRGI);
		}
	}
	return v->issued < (guint)v->groups ? G_SOURCE_CONTINUE
					     : G_SOURCE_REMOVE;
}

/* ---- the handlers ---- */

/* Device 1, emulated: resolved here, slowly. */
static int slow_handler(struct iopf_group *g, void *ud)
{
	struct vmm *v = ud;

	(void)g;
	g_usleep((gulong)v->handler_us);
	return IOPF_CODE_SUCCESS;
}

/* The others: forwarded to the guest, answered later by handle. */
static int guest_handler(struct iopf_group *g, void *ud)
{
	struct vmm *v = ud;
	iopf_handle_t *h = g_new(iopf_handle_t, 1);

	*h = iopf_group_handle(g);
	g_queue_push_tail(&v->guest, h);
	return IOPF_DEFER;
}

static gboolean guest_tick(gpointer ud)
{
	struct vmm *v = ud;

	for (int i = 0; i < 16 && !g_queue_is_empty(&v->guest); i++) {
		iopf_handle_t *h = g_queue_pop_head(&v->guest);
		/* now and then the guest cannot map the page */
		int code = ++v->guest_answers % 50 ? IOPF_CODE_SUCCESS
						   : IOPF_CODE_INVALID;
		int rc = iopf_respond(v->ctx, *h, code);

		if (rc < 0)
			g_printerr("guest answer refused: %s\n", g_strerror(-rc));
		g_free(h);
	}
	return G_SOURCE_CONTINUE;
}

/* ---- the loop's health ---- */

static gboolean heartbeat(gpointer ud)
{
	struct vmm *v = ud;
	gint64 now = g_get_monotonic_time();

	if (now - v->last_beat > v->max_gap)
		v->max_gap = now - v->last_beat;
	v->last_beat = now;
	v->beats++;
	return G_SOURCE_CONTINUE;
}

static gboolean watchdog(gpointer ud)
{
	struct vmm *v = ud;

	v->timed_out = TRUE;
	g_main_loop_quit(v->loop);
	return G_SOURCE_REMOVE;
}

static gboolean parse(struct vmm *v, int *argc, char ***argv)
{
	GOptionEntry opts[] = {
		{ "groups", 'g', 0, G_OPTION_ARG_INT, &v->groups,
		  "page request groups to raise in all (default 2000)", "N" },
		{ "devices", 'd', 0, G_OPTION_ARG_INT, &v->ndev,
		  "devices, 2 to 16 (default 3); device 1 is the slow one", "N" },
		{ "slice-us", 's', 0, G_OPTION_ARG_INT, &v->slice_us,
		  "time budget of one dispatch slice (default 2000)", "US" },
		{ "slice-groups", 'n', 0, G_OPTION_ARG_INT, &v->slice_groups,
		  "most groups per slice, 0: no limit (default 0)", "N" },
		{ "handler-us", 'H', 0, G_OPTION_ARG_INT, &v->handler_us,
		  "time device 1's handler takes per group (default 2000)", "US" },
		{ "guest-ms", 'G', 0, G_OPTION_ARG_INT, &v->guest_ms,
		  "period of the guest's answers (default 1)", "MS" },
		{ "beat-ms", 'b', 0, G_OPTION_ARG_INT, &v->beat_ms,
		  "period of the heartbeat (default 5)", "MS" },
		{ "unbounded", 'u', 0, G_OPTION_ARG_NONE, &v->unbounded,
		  "dispatch every ready group at once (to compare)", NULL },
		G_OPTION_ENTRY_NULL,
	};
	GOptionContext *oc = g_option_context_new(NULL);
	GError *err = NULL;
	gboolean ok;

	g_option_context_set_summary(oc,
		"A VMM-style GLib main loop serving simulated I/O page faults "
		"through libiopf-glib,\nin bounded dispatch slices, while a "
		"heartbeat measures how long the loop is ever held.");
	g_option_context_add_main_entries(oc, opts, NULL);
	ok = g_option_context_parse(oc, argc, argv, &err);
	if (!ok) {
		g_printerr("%s: %s\n", (*argv)[0], err->message);
		g_error_free(err);
	} else if (v->groups < 1 || v->ndev < 2 || v->ndev > MAX_DEV ||
		   v->slice_us < 1 || v->slice_groups < 0 ||
		   v->handler_us < 0 || v->guest_ms < 1 || v->beat_ms < 1) {
		g_printerr("%s: out of range (see --help)\n", (*argv)[0]);
		ok = FALSE;
	}
	g_option_context_free(oc);
	return ok;
}

int main(int argc, char **argv)
{
	struct vmm v = { .groups = 2000, .ndev = 3, .slice_us = 2000,
			 .handler_us = 2000, .guest_ms = 1, .beat_ms = 5 };
	IOPF_OPTS(iopf_stats, st);
	guint lost, pending = 0, id;
	double secs;

	if (!parse(&v, &argc, &argv))
		return 2;
	v.ctx = iopf_ctx_new(NULL);
	if (!v.ctx) {
		perror("iopf_ctx_new");
		return 1;
	}
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_answer, .userdata = &v);
	v.prod = iopf_producer_new(v.ctx, &po);
	if (!v.prod) {
		perror("iopf_producer_new");
		return 1;
	}
	iopf_ctx_set_handler(v.ctx, guest_handler, &v);
	iopf_ctx_set_device_handler(v.ctx, 1, slow_handler, &v);
	for (int k = 0; k < v.ndev; k++)
		v.dev[k].id = (uint32_t)k + 1;
	g_queue_init(&v.guest);
	v.loop = g_main_loop_new(NULL, FALSE);

	/* the iopf source, bounded (or not, to compare) */
	id = iopf_glib_attach(v.ctx, NULL,
			      v.unbounded ? 0 : (unsigned int)v.slice_groups,
			      v.unbounded ? 0 : (unsigned int)v.slice_us);
	if (!id) {
		perror("iopf_glib_attach");
		return 1;
	}
	g_timeout_add(1, devices_tick, &v);
	g_timeout_add((guint)v.guest_ms, guest_tick, &v);
	g_timeout_add((guint)v.beat_ms, heartbeat, &v);
	g_timeout_add_seconds(60, watchdog, &v);

	v.t0 = v.last_beat = g_get_monotonic_time();
	g_main_loop_run(v.loop);
	secs = (double)(g_get_monotonic_time() - v.t0) / 1e6;

	/* The loop is left; the source goes before the context. */
	g_source_remove(id);
	iopf_ctx_get_stats(v.ctx, &st);
	for (int k = 0; k < v.ndev; k++)
		pending += v.dev[k].nwaiting;
	lost = v.timed_out ? pending : 0;

	printf("iopf-glib-vmm: %d devices (device 1 slow: %d us a group), "
	       "guest answers every %d ms\n", v.ndev, v.handler_us, v.guest_ms);
	if (v.unbounded)
		printf("  dispatch          unbounded (every ready group at once)\n");
	else if (v.slice_groups)
		printf("  dispatch          slices of %d us, at most %d groups\n",
		       v.slice_us, v.slice_groups);
	else
		printf("  dispatch          slices of %d us\n", v.slice_us);
	printf("  groups raised     %u\n", v.issued);
	printf("  answered          %u (success %u, invalid %u)\n",
	       v.answered, v.success, v.invalid);
	printf("  lost              %u\n", lost);
	printf("  answered twice    %u\n", v.twice);
	printf("  slices cut short  %llu\n",
	       (unsigned long long)st.dispatch_slices);
	printf("  heartbeats        %lld, longest gap %.1f ms (period %d ms)\n",
	       (long long)v.beats, (double)v.max_gap / 1000.0, v.beat_ms);
	printf("  time              %.2f s\n", secs);

	iopf_ctx_free(v.ctx); /* the guest's unanswered groups: INVALID */
	g_queue_clear_full(&v.guest, g_free);
	g_main_loop_unref(v.loop);
	if (lost || v.twice || v.answered != (guint)v.groups) {
		printf("FAIL: %u lost, %u answered twice\n", lost, v.twice);
		return 1;
	}
	printf("OK: every group answered exactly once; the loop was never "
	       "held longer than %.1f ms\n", (double)v.max_gap / 1000.0);
	return 0;
}
