/* SPDX-License-Identifier: MIT */
/*
 * devtable.c - see devtable.h. Uses libiopf's public API only.
 */
#include <stdlib.h>
#include <string.h>

#include "devtable.h"

struct devtable {
	struct iopf_ctx *ctx;
	bool pasids;
};

struct row {
	struct iopf_device_stats st;
	uint64_t p50, p99;
};

struct devtable *devtable_new(struct iopf_ctx *ctx, bool pasids)
{
	struct devtable *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ctx = ctx;
	t->pasids = pasids;
	return t;
}

void devtable_free(struct devtable *t)
{
	free(t);
}

/* Slowest first: p99, then outstanding; then by id, so rows stay put. */
static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->p99 != y->p99)
		return x->p99 < y->p99 ? 1 : -1;
	if (x->st.outstanding != y->st.outstanding)
		return x->st.outstanding < y->st.outstanding ? 1 : -1;
	if (x->st.dev_id != y->st.dev_id)
		return x->st.dev_id < y->st.dev_id ? -1 : 1;
	return (x->st.pasid > y->st.pasid) - (x->st.pasid < y->st.pasid);
}

/* Fill r for (dev, pasid) or the device's totals; false if it has none. */
static bool row_get(struct devtable *t, struct row *r, uint32_t dev, uint32_t pasid,
		    bool total)
{
	memset(r, 0, sizeof(*r));
	r->st.sz = sizeof(r->st);
	if (iopf_ctx_get_device_stats(t->ctx, dev, pasid, total ? IOPF_ALL_PASIDS : 0,
				      &r->st))
		return false;
	r->p50 = iopf_device_stats_latency_ns(&r->st, 0.5);
	r->p99 = iopf_device_stats_latency_ns(&r->st, 0.99);
	return true;
}

/* A histogram bucket's bound, short: 512ns, 65.5us, 2.1ms; '-' if none. */
static const char *fmt_ns(uint64_t ns, char *b, size_t n)
{
	if (!ns)
		snprintf(b, n, "-");
	else if (ns < 1000)
		snprintf(b, n, "%lluns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(b, n, "%.1fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(b, n, "%.1fms", (double)ns / 1e6);
	else
		snprintf(b, n, "%.2fs", (double)ns / 1e9);
	return b;
}

static void put_row(FILE *f, const struct row *r, bool total, const char *eol)
{
	char pa[16], p50[16], p99[16];

	if (total)
		snprintf(pa, sizeof(pa), "all");
	else if (r->st.pasid == IOPF_NO_PASID)
		snprintf(pa, sizeof(pa), "  -");
	else
		snprintf(pa, sizeof(pa), "  %#x", r->st.pasid);
	fprintf(f, "%8u %-8s %9llu %9llu %9llu %9llu %7llu %6llu %6llu %8s %8s%s\n",
		r->st.dev_id, pa, (unsigned long long)r->st.groups,
		(unsigned long long)r->st.records,
		(unsigned long long)r->st.answers_success,
		(unsigned long long)r->st.answers_invalid,
		(unsigned long long)r->st.auto_answers,
		(unsigned long long)r->st.outstanding, (unsigned long long)r->st.ready,
		fmt_ns(r->p50, p50, sizeof(p50)), fmt_ns(r->p99, p99, sizeof(p99)), eol);
}

/* The PASID rows of one device, slowest first. */
static void put_pasids(struct devtable *t, FILE *f, uint32_t dev, const char *eol)
{
	uint32_t *ps = NULL;
	struct row *rs = NULL;
	size_t n = 0;
	int k = iopf_ctx_list_pasids(t->ctx, dev, NULL, 0);

	/* a few more in case PASIDs appear meanwhile */
	if (k <= 0 || !(ps = malloc(((size_t)k + 16) * sizeof(*ps))))
		return;
	k = iopf_ctx_list_pasids(t->ctx, dev, ps, (size_t)k + 16);
	if (k > 0 && (rs = calloc((size_t)k, sizeof(*rs)))) {
		for (int i = 0; i < k; i++)
			n += row_get(t, &rs[n], dev, ps[i], false);
		qsort(rs, n, sizeof(*rs), row_cmp);
		for (size_t i = 0; i < n; i++)
			put_row(f, &rs[i], false, eol);
	}
	free(rs);
	free(ps);
}

/* The device ids, however many there are by the time we ask. */
static uint32_t *device_ids(struct iopf_ctx *ctx, size_t *n)
{
	uint32_t *ids = NULL;
	int k = iopf_ctx_list_devices(ctx, NULL, 0);

	*n = 0;
	while (k > 0) {
		uint32_t *ni = realloc(ids, (size_t)k * sizeof(*ids));
		int got;

		if (!ni)
			break;
		ids = ni;
		got = iopf_ctx_list_devices(ctx, ids, (size_t)k);
		if (got <= k) {
			*n = got > 0 ? (size_t)got : 0;
			break;
		}
		k = got; /* devices came meanwhile: more room */
	}
	return ids;
}

int devtable_render(struct devtable *t, FILE *out, bool tty, const char *title)
{
	const char *eol = tty ? "\033[K" : "";
	size_t nid, n = 0, len = 0;
	uint32_t *ids = device_ids(t->ctx, &nid);
	struct row *rs = calloc(nid ? nid : 1, sizeof(*rs));
	char *buf = NULL;
	FILE *f = NULL;
	int rc = -1;

	if (!rs)
		goto out;
	for (size_t i = 0; i < nid; i++)
		n += row_get(t, &rs[n], ids[i], IOPF_NO_PASID, true);
	qsort(rs, n, sizeof(*rs), row_cmp);
	/* built in memory and written at once: no half-drawn frames */
	if (!(f = open_memstream(&buf, &len)))
		goto out;
	fprintf(f, "%s%s%s\n", tty ? "\033[H" : "", title, eol);
	fprintf(f, "%8s %-8s %9s %9s %9s %9s %7s %6s %6s %8s %8s%s\n", "DEVICE", "PASID",
		"GROUPS", "RECORDS", "SUCCESS", "INVALID", "AUTO", "OUTST", "READY", "P50",
		"P99", eol);
	for (size_t i = 0; i < n; i++) {
		put_row(f, &rs[i], true, eol);
		if (t->pasids)
			put_pasids(t, f, rs[i].st.dev_id, eol);
	}
	fputs(tty ? "\033[J" : "\n", f);
	if (fclose(f) == 0 && fwrite(buf, 1, len, out) == len && fflush(out) == 0)
		rc = (int)n;
out:
	free(buf);
	free(rs);
	free(ids);
	return rc;
}
