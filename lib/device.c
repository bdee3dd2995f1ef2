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
	return tbl_get(&ctx->devs, dev_id, 0);
}

static struct dev_ent *dev_get(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct dev_ent *d = dev_find(ctx, dev_id);

	if (d)
		return d;
	d = xcalloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->dev_id = dev_id;
	if (tbl_put(&ctx->devs, dev_id, 0, d)) {
		free(d);
		return NULL;
	}
	return d;
}

static void unremoving(struct iopf_ctx *ctx, struct dev_ent *d)
{
	if (!d->removing)
		return;
	free(d->removing);
	d->removing = NULL;
	ctx->nremoving--;
}

static void dev_del(struct iopf_ctx *ctx, struct dev_ent *d)
{
	if (d->gone)
		ctx->ngone--;
	unremoving(ctx, d);
	tbl_del(&ctx->devs, d->dev_id, 0);
	free(d->devpath);
	free(d->name);
	free(d);
}

bool iopf__dev_is_gone(struct iopf_ctx *ctx, uint32_t dev_id)
{
	struct dev_ent *d = dev_find(ctx, dev_id);

	return d && d->gone;
}

/* The kernel let go of the device: it answered its fault-queue groups
 * itself (those are dropped unwritten); a producer's groups still get
 * their respond call, INVALID. Groups a handler holds go on *cancel. */
static int end_device(struct iopf_ctx *ctx, uint32_t dev,
		      struct iopf_group **cancel)
{
	int n = 0;

	for (struct iopf_source *s = ctx->sources; s; s = s->next) {
		n += iopf__groups_end_matching(ctx, s, dev, 0, IOPF_ALL_PASIDS,
					       s->ops->kernel ? NO_ANSWER :
								IOPF_CODE_INVALID,
					       END_GONE, cancel);
		n += (int)s->ops->forget(ctx, s, dev, 0, IOPF_ALL_PASIDS);
	}
	ctx->st.cancelled += (uint64_t)n;
	iopf__log(ctx, LOG_I, "dev %u gone: %d groups dropped", dev, n);
	return n;
}

static int mark_gone(struct iopf_ctx *ctx, struct dev_ent *d,
		     struct iopf_group **cancel)
{
	unremoving(ctx, d);
	if (!d->gone) {
		d->gone = true;
		ctx->ngone++;
		ctx->st.devices_gone++;
	}
	return end_device(ctx, d->dev_id, cancel);
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

#ifdef IOPF_TESTING
const char *iopf__sysfs = "/sys"; /* tests point it at a tree of their own */
#define SYSFS iopf__sysfs
#else
#define SYSFS "/sys"
#endif

static bool sys_absent(const char *devpath, const char *leaf)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s%s%s", SYSFS, devpath, leaf);
	return stat(path, &sb) && errno == ENOENT;
}

/* A removal is acted on once the device's sysfs node is gone (an unbind:
 * once its driver link is). The kernel sends `remove` just before it
 * deletes the node, so a node still there is looked at again in the next
 * rounds, for up to CONFIRM_NS. */
#define CONFIRM_NS 1000000000ull

static void removal_seen(struct iopf_ctx *ctx, struct dev_ent *d,
			 const struct uevent *ev, struct iopf_group **cancel)
{
	bool unbind = !strcmp(ev->action, "unbind");

	if (sys_absent(ev->devpath, unbind ? "/driver" : "")) {
		mark_gone(ctx, d, cancel);
		return;
	}
	if (unbind) {
		ctx->st.uevents_unconfirmed++;
		iopf__log(ctx, LOG_W, "unbind of %s ignored: it has a driver",
			  ev->devpath);
		return;
	}
	if (!d->removing) {
		d->removing = strdup(ev->devpath);
		if (!d->removing) { /* cannot wait: act on the kernel's word */
			mark_gone(ctx, d, cancel);
			return;
		}
		ctx->nremoving++;
	}
	d->removing_since = iopf__now_ns();
}

void iopf__devices_confirm(struct iopf_ctx *ctx, struct iopf_group **cancel)
{
	uint64_t now = iopf__now_ns();

	for (uint32_t i = 0; ctx->nremoving && i < ctx->devs.cap; i++) {
		struct dev_ent *d = ctx->devs.e[i].v;

		if (!d || !d->removing)
			continue;
		if (sys_absent(d->removing, "")) {
			mark_gone(ctx, d, cancel);
		} else if (now - d->removing_since > CONFIRM_NS) {
			ctx->st.uevents_unconfirmed++;
			iopf__log(ctx, LOG_W,
				  "removal of %s not confirmed: %s is still there",
				  d->removing, d->removing);
			unremoving(ctx, d);
		}
	}
}

void iopf__uevent_process(struct iopf_ctx *ctx, const char *buf, size_t len,
			  uint32_t sender_portid, struct iopf_group **cancel)
{
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
	if (ev.synthetic) {
		/* `echo remove > .../uevent`, `udevadm trigger`: the device
		 * is still there. */
		ctx->st.uevents_synthetic++;
		iopf__log(ctx, LOG_I, "synthetic uevent %s %s ignored",
			  ev.action, ev.devpath);
		return;
	}
	if (!strcmp(ev.action, "remove") || !strcmp(ev.action, "unbind")) {
		for (uint32_t i = 0; i < ctx->devs.cap; i++) {
			struct dev_ent *d = ctx->devs.e[i].v;

			if (!d || d->gone || !dev_matches(d, ev.devpath))
				continue;
			iopf__log(ctx, LOG_I, "uevent %s %s (seqnum %llu): dev %u",
				  ev.action, ev.devpath,
				  (unsigned long long)ev.seqnum, d->dev_id);
			removal_seen(ctx, d, &ev, cancel);
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
	for (uint32_t i = 0; i < ctx->devs.cap; i++) {
		struct dev_ent *d = ctx->devs.e[i].v;

		if (d && !d->gone && d->devpath && sys_absent(d->devpath, ""))
			mark_gone(ctx, d, cancel);
	}
}

#ifdef IOPF_TESTING
void iopf__uevent_feed(struct iopf_ctx *ctx, const void *buf, size_t len,
		       uint32_t sender_portid)
{
	struct iopf_group *cancel = NULL;

	pthread_mutex_lock(&ctx->lock);
	iopf__uevent_process(ctx, buf, len, sender_portid, &cancel);
	pthread_mutex_unlock(&ctx->lock);
	iopf__cancel_deliver(ctx, cancel);
	iopf__deliver(ctx);
}
#endif

void iopf__devices_free(struct iopf_ctx *ctx)
{
	for (uint32_t i = 0; i < ctx->devs.cap; i++) {
		struct dev_ent *d = ctx->devs.e[i].v;

		if (!d)
			continue;
		unremoving(ctx, d);
		free(d->devpath);
		free(d->name);
		free(d);
	}
	tbl_free(&ctx->devs);
}

/* ---- public ---- */

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
	unremoving(ctx, d);
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
	struct dev_ent *d;
	int n;

	if (!ctx)
		return -EINVAL;
	pthread_mutex_lock(&ctx->lock);
	d = dev_get(ctx, dev_id);
	if (d) {
		n = mark_gone(ctx, d, &cancel);
	} else {
		/* Its groups go all the same (the kernel answered them);
		 * only the gone mark, for later answers, could not be kept. */
		end_device(ctx, dev_id, &cancel);
		n = -ENOMEM;
	}
	pthread_mutex_unlock(&ctx->lock);
	iopf__cancel_deliver(ctx, cancel);
	iopf__deliver(ctx);
	return n;
}
