/* SPDX-License-Identifier: MIT */
/**
 * @file iopf-glib.h
 * @brief libiopf-glib: a libiopf context in a GLib main loop.
 *
 * A GSource that polls a context's fd (iopf_ctx_get_fd()) and runs one
 * bounded slice of iopf_ctx_dispatch_bounded() per dispatch. A slice hands
 * out at most max_groups groups and starts no handler once max_us have
 * passed; the answers of the slice are written before it returns, and
 * what is left stays ready with the context fd readable. So the loop runs
 * its other sources between two slices: a main loop is never held longer
 * than one slice plus one handler call, however many groups wait.
 *
 * Sources of a lower priority than this one (a numerically greater
 * value, e.g. idle sources) wait while groups are ready, as behind any
 * busy source of the same main context; sources of the same or higher
 * priority run between slices. The default priority is
 * G_PRIORITY_DEFAULT; change it with g_source_set_priority().
 *
 * Link with `pkg-config --cflags --libs libiopf-glib` (libiopf-glib.so.1,
 * symbols versioned LIBIOPF_GLIB_1.0). Since libiopf 1.3.
 */
#ifndef IOPF_IOPF_GLIB_H
#define IOPF_IOPF_GLIB_H

#include <glib.h>

#include <iopf/iopf.h>

G_BEGIN_DECLS

/**
 * @brief The callback of an iopf GSource, called after each slice.
 *
 * Set it with g_source_set_callback(source, (GSourceFunc)fn, user_data,
 * notify). It receives what the slice's iopf_ctx_dispatch_bounded()
 * returned: the number of groups handed out (>= 0), or -EIO (a fault fd
 * failed; the context serves its other sources), -EBUSY (another thread
 * was dispatching the context; the source tries again after a
 * millisecond), -EDEADLK (dispatched from inside a libiopf callback, e.g.
 * a handler that iterates a main loop holding this source; tried again
 * after a millisecond). With a callback set, the source logs nothing:
 * errors are the callback's to report. Without one, -EIO and -EDEADLK
 * are logged with g_warning() (domain "iopf-glib"), -EBUSY is not.
 * @param ctx the source's context.
 * @param result the slice's result, as above.
 * @param user_data as given to g_source_set_callback().
 * @return G_SOURCE_CONTINUE to keep the source, G_SOURCE_REMOVE to
 *         destroy it (the groups still ready stay in the context).
 */
typedef gboolean (*IopfGlibFunc)(struct iopf_ctx *ctx, int result,
				 gpointer user_data);

/**
 * @brief A new GSource dispatching ctx in bounded slices. Not attached:
 * g_source_attach() it, then g_source_unref() it when you no longer need
 * the pointer.
 *
 * The source does not own ctx: ctx must outlive it, and must not be freed
 * while the source is dispatching. Destroy the source (g_source_destroy())
 * from the thread running its main context before iopf_ctx_free(ctx), or
 * use iopf_glib_source_new_full() to have the context freed with the
 * source. Destroying the source while groups are ready leaves them ready
 * in the context: they are handled by a later dispatch (another source,
 * iopf_ctx_dispatch()) or answered INVALID by iopf_ctx_free().
 * @param ctx the context; its other users may keep calling it (answers,
 *        submits, from any thread), but only this source should dispatch
 *        it (another dispatching thread makes the source back off, see
 *        IopfGlibFunc).
 * @param max_groups most groups handed out per slice; 0: the context's
 *        dispatch_max_groups option (0 there: no limit).
 * @param max_us time budget of a slice in microseconds: no handler starts
 *        after it; 0: the context's dispatch_max_us option (0 there: no
 *        limit). With neither limit anywhere, one dispatch runs every
 *        ready group, as iopf_ctx_dispatch() does.
 * @return a new source (one reference, the caller's), or NULL with errno
 *         EINVAL (ctx NULL).
 * Thread safety: any thread.
 */
IOPF_API GSource *iopf_glib_source_new(struct iopf_ctx *ctx,
				       unsigned int max_groups,
				       unsigned int max_us);

/**
 * @brief iopf_glib_source_new(), owning ctx: ctx_destroy(ctx) is called
 * when the source is finalized (its last reference dropped), after any
 * dispatch of it has returned.
 *
 * Pass (GDestroyNotify)iopf_ctx_free to free the context with the source,
 * e.g. when the source may be destroyed from another thread than its
 * main context's. The last reference must not be dropped from inside a
 * libiopf callback (iopf_ctx_free() refuses to run there); a reference
 * dropped inside this source's own dispatch is fine, GLib holds one
 * until the dispatch returns.
 * @param ctx the context.
 * @param max_groups as for iopf_glib_source_new().
 * @param max_us as for iopf_glib_source_new().
 * @param ctx_destroy called once with ctx at finalization; NULL: none
 *        (as iopf_glib_source_new()).
 * @return a new source, or NULL with errno EINVAL (ctx NULL; ctx_destroy
 *         is then not called).
 * Thread safety: any thread.
 */
IOPF_API GSource *iopf_glib_source_new_full(struct iopf_ctx *ctx,
					    unsigned int max_groups,
					    unsigned int max_us,
					    GDestroyNotify ctx_destroy);

/**
 * @brief Create a source for ctx (iopf_glib_source_new()) and attach it to
 * a main context, keeping no reference: remove it with
 * g_source_remove(id) (from the main context's thread, for the
 * default main context) before freeing ctx.
 * @param ctx the context.
 * @param mc the main context; NULL: the global default one.
 * @param max_groups as for iopf_glib_source_new().
 * @param max_us as for iopf_glib_source_new().
 * @return the source id (> 0), or 0 with errno EINVAL (ctx NULL).
 * Thread safety: any thread.
 */
IOPF_API guint iopf_glib_attach(struct iopf_ctx *ctx, GMainContext *mc,
				unsigned int max_groups, unsigned int max_us);

/**
 * @brief The context a source made by iopf_glib_source_new() dispatches.
 * @param source the source.
 * @return its context, or NULL (source NULL or not an iopf source).
 * Thread safety: any thread.
 */
IOPF_API struct iopf_ctx *iopf_glib_source_get_ctx(GSource *source);

G_END_DECLS

#endif /* IOPF_IOPF_GLIB_H */
