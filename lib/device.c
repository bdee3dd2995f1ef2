/* SPDX-License-Identifier: MIT */
/*
 * device.c - devices that go away. A device id is marked gone when the
 * kernel's uevent says its device was removed or unbound (watch.c reads
 * them) or when the caller says so. Its groups are dropped without a write
 * (the kernel answered them when it let go of the device), the handler is
 * told through the cancel callback, and later answers are refused.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

static struct dev_ent *dev_find(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct dev_ent *d;

	HASH_FIND(hh, ctx->devs, &dev_id, sizeof(dev_id), d);
	return d;
}

static struct dev_ent *dev_get(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct dev_ent *d = dev_find(ctx, dev_id);

	if (d)
		return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->dev_id = dev_id;
	HASH_ADD(hh, ctx->devs, dev_id, sizeof(d->dev_id), d);
	return d;
}

static void dev_del(struct iopf_ctx *ctx, struct dev_ent *d)
{
	if (d->gone)
		ctx->ngone--;
	HASH_DEL(ctx->devs, d);
	free(d->devpath);
	free(d->name);
	free(d);
}

bool iopf__dev_is_gone(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct dev_ent *d = dev_find(ctx, dev_id);

	return d && d->gone;
}

static int mark_gone(struct iopf_ctx *ctx, struct dev_ent *d,
		     struct iopf_group **cancel)
{
	int n;

	if (!d->gone) {
		d->gone = true;
		ctx->ngone++;
		ctx->st.devices_gone++;
	}
	n = iopf__groups_drop(ctx, NULL, d->dev_id, 0, IOPF_ALL_PASIDS,
			      END_GONE, cancel);
	ctx->st.cancelled += (uint64_t)n;
	iopf__log(ctx, LOG_I, "dev %u gone: %d groups dropped", d->dev_id, n);
	return n;
}

int iopf__device_gone_locked(struct iopf_ctx *ctx, uint32_t dev_id,
			     struct iopf_group **cancel)
{
	struct dev_ent *d = dev_get(ctx, dev_id);

	return d ? mark_gone(ctx, d, cancel) : -ENOMEM;
}

static bool dev_matches(const struct dev_ent *d, const char *devpath)
{
	const char *base;

	if (d->devpath)
		return !strcmp(d->devpath, devpath);
	if (!d->name)
		return false;
	base = strrchr(devpath, '/');
	return base && !strcmp(base + 1, d->name);
}

void iopf__uevent_process(struct iopf_ctx *ctx, const char *buf, size_t len,
			  uint32_t sender_portid, struct iopf_group **cancel)
{
	struct dev_ent *d, *tmp;
	struct uevent ev;
	bool hit = false;

	ctx->st.uevents++;
	/* Only the kernel sends from port 0; anyone may send to the group. */
	if (sender_portid != 0) {
		ctx->st.uevents_untrusted++;
		iopf__log(ctx, LOG_I, "uevent from user space port %u ignored",
			  sender_portid);
		return;
	}
	if (iopf__uevent_parse(buf, len, &ev)) {
		ctx->st.uevents_malformed++;
		iopf__log(ctx, LOG_W, "malformed uevent (%zu bytes) ignored", len);
		return;
	}
	if (!strcmp(ev.action, "remove") || !strcmp(ev.action, "unbind")) {
		HASH_ITER(hh, ctx->devs, d, tmp) {
			if (d->gone || !dev_matches(d, ev.devpath))
				continue;
			iopf__log(ctx, LOG_I, "uevent %s %s (seqnum %llu): dev %u",
				  ev.action, ev.devpath,
				  (unsigned long long)ev.seqnum, d->dev_id);
			mark_gone(ctx, d, cancel);
			hit = true;
		}
	}
	if (!hit)
		ctx->st.uevents_unmatched++;
}

/* After the uevent socket overflowed: a removal may have been lost, so
 * look in sysfs for every watched device known by its path. */
void iopf__devices_rescan(struct iopf_ctx *ctx, struct iopf_group **cancel)
{
	struct dev_ent *d, *tmp;
	char path[PATH_MAX];
	struct stat sb;

	HASH_ITER(hh, ctx->devs, d, tmp) {
		if (d->gone || !d->devpath)
			continue;
		snprintf(path, sizeof(path), "/sys%s", d->devpath);
		if (stat(path, &sb) && errno == ENOENT)
			mark_gone(ctx, d, cancel);
	}
}

/* Call the cancel callback for each group on the list, then let them go.
 * No lock held on entry. */
void iopf__cancel_deliver(struct iopf_ctx *ctx, struct iopf_group *list)
{
	struct iopf_group *g, *nx;
	iopf_cancel_fn fn;
	void *ud;

	if (!list)
		return;
	/* Gathered newest first: call back in the order groups came in. */
	for (g = list, list = NULL; g; g = nx) {
		nx = g->next;
		g->next = list;
		list = g;
	}
	pthread_mutex_lock(&ctx->lock);
	fn = ctx->cancel_fn;
	ud = ctx->cancel_ud;
	pthread_mutex_unlock(&ctx->lock);
	if (fn) {
		iopf__in_handler++;
		for (g = list; g; g = g->next)
			fn(g, ud);
		iopf__in_handler--;
	}
	pthread_mutex_lock(&ctx->lock);
	for (g = list; g; g = nx) {
		nx = g->next;
		g->next = NULL;
		iopf__group_unpin(ctx, g);
	}
	pthread_mutex_unlock(&ctx->lock);
}

void iopf__uevent_feed(struct iopf_ctx *ctx, const void *buf, size_t len,
		       uint32_t sender_portid)
{
	struct iopf_group *cancel = NULL;

	pthread_mutex_lock(&ctx->lock);
	iopf__uevent_process(ctx, buf, len, sender_portid, &cancel);
	pthread_mutex_unlock(&ctx->lock);
	iopf__cancel_deliver(ctx, cancel);
}

void iopf__devices_free(struct iopf_ctx *ctx)
{
	struct dev_ent *d, *tmp;

	HASH_ITER(hh, ctx->devs, d, tmp)
		dev_del(ctx, d);
}

/* ---- public ---- */

IOPF_API int iopf_ctx_set_cancel_handler(struct iopf_ctx *ctx,
					 iopf_cancel_fn fn, void *userdata)
{
	if (!ctx)
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	ctx->cancel_fn = fn;
	ctx->cancel_ud = userdata;
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

/* The sysfs identity of `sysdev`: an exact DEVPATH or a device name. */
static int parse_sysdev(const char *sysdev, char **devpath, char **name)
{
	char rp[PATH_MAX];
	size_t n;

	*devpath = *name = NULL;
	if (!sysdev || !*sysdev || strlen(sysdev) >= PATH_MAX)
		return -EINVAL;
	if (!strncmp(sysdev, "/sys/", 5)) {
		if (!realpath(sysdev, rp))
			return errno == ENOMEM ? -ENOMEM : -ENOENT;
		if (strncmp(rp, "/sys/devices/", 13))
			return -EINVAL; /* not a device */
		*devpath = strdup(rp + 4);
	} else if (!strncmp(sysdev, "/devices/", 9)) {
		*devpath = strdup(sysdev);
		if (*devpath) {
			n = strlen(*devpath);
			while (n > 9 && (*devpath)[n - 1] == '/')
				(*devpath)[--n] = '\0';
		}
	} else if (strchr(sysdev, '/')) {
		return -EINVAL;
	} else {
		*name = strdup(sysdev);
		return *name ? 0 : -ENOMEM;
	}
	return *devpath ? 0 : -ENOMEM;
}

IOPF_API int iopf_ctx_watch_device(struct iopf_ctx *ctx, uint32_t dev_id,
				   const char *sysdev)
{
	char *devpath, *name;
	struct dev_ent *d;
	int rc;

	if (!ctx)
		return -EINVAL;
	rc = parse_sysdev(sysdev, &devpath, &name);
	if (rc)
		return rc;
	pthread_mutex_lock(&ctx->lock);
	if (!ctx->watch && (rc = iopf__watch_open(ctx)))
		goto out;
	d = dev_get(ctx, dev_id);
	if (!d) {
		rc = -ENOMEM;
		goto out;
	}
	if (d->gone) {
		d->gone = false;
		ctx->ngone--;
	}
	free(d->devpath);
	free(d->name);
	d->devpath = devpath;
	d->name = name;
	devpath = name = NULL;
out:
	pthread_mutex_unlock(&ctx->lock);
	free(devpath);
	free(name);
	return rc;
}

IOPF_API int iopf_ctx_unwatch_device(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct dev_ent *d;
	int rc = 0;

	if (!ctx)
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	d = dev_find(ctx, dev_id);
	if (d)
		dev_del(ctx, d);
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

IOPF_API int iopf_ctx_device_gone(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct iopf_group *cancel = NULL;
	int n;

	if (!ctx)
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	n = iopf__device_gone_locked(ctx, dev_id, &cancel);
	pthread_mutex_unlock(&ctx->lock);
	iopf__cancel_deliver(ctx, cancel);
	return n;
}
