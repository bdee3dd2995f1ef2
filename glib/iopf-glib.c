/* SPDX-License-Identifier: MIT */
/*
 * iopf-glib.c - a GSource running one bounded dispatch slice of a libiopf
 * context per main loop dispatch.
 *
 * The context fd stays readable while groups are ready (libiopf wakes it
 * when a slice leaves work), so the loop comes back to us after running
 * its other ready sources: no idle source, no ready time of our own,
 * except to back off when another thread holds the context's dispatch.
 */
#include <errno.h>

#include "iopf/iopf-glib.h"

/* -EBUSY or -EDEADLK: the fd may stay readable until the other dispatch
 * is done, so stop polling it for this long rather than spin. */
#define BACKOFF_US 1000

struct iopf_gsource {
	GSource base;
	struct iopf_ctx *ctx;
	gpointer tag;              /* of the context fd */
	unsigned int max_groups, max_us;
	GDestroyNotify ctx_destroy;
	gboolean backing_off;
};

static void backoff(struct iopf_gsource *s)
{
	g_source_modify_unix_fd(&s->base, s->tag, 0);
	g_source_set_ready_time(&s->base, g_get_monotonic_time() + BACKOFF_US);
	s->backing_off = TRUE;
}

static void backoff_end(struct iopf_gsource *s)
{
	g_source_set_ready_time(&s->base, -1);
	g_source_modify_unix_fd(&s->base, s->tag, G_IO_IN);
	s->backing_off = FALSE;
}

static gboolean src_dispatch(GSource *base, GSourceFunc cb, gpointer ud)
{
	struct iopf_gsource *s = (struct iopf_gsource *)base;
	int rc;

	if (s->backing_off)
		backoff_end(s);
	rc = iopf_ctx_dispatch_bounded(s->ctx, s->max_groups, s->max_us);
	if (rc == -EBUSY || rc == -EDEADLK)
		backoff(s);
	if (cb)
		return ((IopfGlibFunc)(void (*)(void))cb)(s->ctx, rc, ud);
	if (rc == -EIO)
		g_warning("iopf_ctx_dispatch_bounded: a fault fd failed "
			  "(its groups are ended; other sources are served)");
	else if (rc == -EDEADLK)
		g_warning("iopf_ctx_dispatch_bounded: -EDEADLK: the context's "
			  "main loop was run from inside a libiopf callback");
	else if (rc < 0 && rc != -EBUSY)
		g_warning("iopf_ctx_dispatch_bounded: error %d", rc);
	return G_SOURCE_CONTINUE;
}

/* Runs after the last dispatch returned: GLib holds a reference during
 * one. */
static void src_finalize(GSource *base)
{
	struct iopf_gsource *s = (struct iopf_gsource *)base;

	if (s->ctx_destroy)
		s->ctx_destroy(s->ctx);
}

static GSourceFuncs iopf_gsource_funcs = {
	.dispatch = src_dispatch,
	.finalize = src_finalize,
};

IOPF_API GSource *iopf_glib_source_new_full(struct iopf_ctx *ctx,
					    unsigned int max_groups,
					    unsigned int max_us,
					    GDestroyNotify ctx_destroy)
{
	struct iopf_gsource *s;
	int fd = ctx ? iopf_ctx_get_fd(ctx) : -EINVAL;

	if (fd < 0) {
		errno = EINVAL;
		return NULL;
	}
	s = (struct iopf_gsource *)g_source_new(&iopf_gsource_funcs,
						sizeof(*s));
	s->ctx = ctx;
	s->max_groups = max_groups;
	s->max_us = max_us;
	s->ctx_destroy = ctx_destroy;
	s->tag = g_source_add_unix_fd(&s->base, fd, G_IO_IN);
	g_source_set_name(&s->base, "iopf");
	return &s->base;
}

IOPF_API GSource *iopf_glib_source_new(struct iopf_ctx *ctx,
				       unsigned int max_groups,
				       unsigned int max_us)
{
	return iopf_glib_source_new_full(ctx, max_groups, max_us, NULL);
}

IOPF_API guint iopf_glib_attach(struct iopf_ctx *ctx, GMainContext *mc,
				unsigned int max_groups, unsigned int max_us)
{
	GSource *s = iopf_glib_source_new(ctx, max_groups, max_us);
	guint id;

	if (!s)
		return 0;
	id = g_source_attach(s, mc);
	g_source_unref(s);
	return id;
}

IOPF_API struct iopf_ctx *iopf_glib_source_get_ctx(GSource *source)
{
	if (!source || source->source_funcs != &iopf_gsource_funcs)
		return NULL;
	return ((struct iopf_gsource *)source)->ctx;
}
