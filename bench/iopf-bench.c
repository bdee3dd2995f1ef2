/* SPDX-License-Identifier: MIT */
/*
 * iopf-bench - libiopf against the loops people write, side by side in one
 * run. The machines are shared and noisy, so every figure that matters is
 * a ratio of methods measured in the same run, interleaved, median of
 * several rounds.
 *
 *   iopf-bench --host [--json FILE]    fake kernel, producer path, growth,
 *                                      memory, latency (any machine)
 *   iopf-bench --kernel [--json FILE]  the real fault object (inside vmrun)
 *
 * Baselines, written as their authors do:
 * - naive: one read() and one write() per group (the kernel selftest,
 *   libvfn's example, the QEMU page-request series);
 * - hand-tuned: one read() of everything queued, one write() of all the
 *   answers - the best the ABI allows;
 * - per-PASID list: a guest answer (device, PASID, PRG index) found by
 *   walking the PASID's list of outstanding groups, as the QEMU series does.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <iopf/iopf.h>

#include "fake_kernel.h"
#include "kmock.h"

static FILE *jf; /* JSON out */
static bool jfirst = true;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

static void jout(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void jout(const char *fmt, ...)
{
	va_list ap;

	if (!jf)
		return;
	fprintf(jf, "%s", jfirst ? "[\n  " : ",\n  ");
	jfirst = false;
	va_start(ap, fmt);
	vfprintf(jf, fmt, ap);
	va_end(ap);
}

/* ---- the loops, over any fault fd (real, or the fake's) ---- */

struct fdops {
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
};

static const struct fdops real_ops = { read, write };
static const struct fdops fake_ops = { fk_sys_read, fk_sys_write };

struct run {
	uint64_t groups, reads, writes;
	double secs;
};

/* One read and one write a group (a buffer of one group's records). */
static struct run naive(const struct fdops *op, int fd, uint64_t n,
			unsigned int recs_per_group)
{
	struct iopf_k_pgfault buf[32];
	struct run r = { 0 };
	double t0 = now();

	while (r.groups < n) {
		ssize_t got = op->read(fd, buf, recs_per_group * sizeof(buf[0]));
		size_t k;

		r.reads++;
		if (got <= 0)
			continue;
		k = (size_t)got / sizeof(buf[0]);
		struct iopf_k_page_response a = { .cookie = buf[k - 1].cookie };
		op->write(fd, &a, sizeof(a));
		r.writes++;
		r.groups++;
	}
	r.secs = now() - t0;
	return r;
}

/* One big read of all that is queued, one write of all the answers. */
static struct run tuned(const struct fdops *op, int fd, uint64_t n,
			unsigned int recs_per_group)
{
	size_t cap = (size_t)n * recs_per_group;
	struct iopf_k_pgfault *buf = malloc(cap * sizeof(*buf));
	struct iopf_k_page_response *ans = malloc(n * sizeof(*ans));
	struct run r = { 0 };
	size_t have = 0, na = 0;
	double t0 = now();

	while (na < n) {
		ssize_t got = op->read(fd, buf + have, (cap - have) * sizeof(*buf));

		r.reads++;
		if (got <= 0)
			continue;
		for (size_t i = have; i < have + (size_t)got / sizeof(*buf); i++)
			if (buf[i].flags & IOPF_K_PGFAULT_FLAGS_LAST_PAGE)
				ans[na++] = (struct iopf_k_page_response){ .cookie = buf[i].cookie };
		have += (size_t)got / sizeof(*buf);
	}
	op->write(fd, ans, na * sizeof(*ans));
	r.writes++;
	r.secs = now() - t0;
	r.groups = na;
	free(buf);
	free(ans);
	return r;
}

/* libiopf: handlers answer at once, or defer (answered by handle after
 * the dispatch round), or run in a worker pool. */
enum lib_mode { LIB_AT_ONCE, LIB_DEFER, LIB_WORKERS, LIB_BIG };
static const char *lib_name[] = { "libiopf, answers at once",
				  "libiopf, deferred answers",
				  "libiopf, 2 workers",
				  "libiopf, at once, 16k buffers" };
/* LIB_BIG: read buffer and answer batch of 16384 (defaults: 256, 1024) */
#define BIG 16384u

struct libstate {
	atomic_ulong handled;
	iopf_handle_t *h;
	size_t nh;
};

static int h_now(struct iopf_group *g, void *ud)
{
	atomic_fetch_add(&((struct libstate *)ud)->handled, 1);
	return IOPF_CODE_SUCCESS;
}

static int h_defer(struct iopf_group *g, void *ud)
{
	struct libstate *s = ud;

	s->h[s->nh++] = iopf_group_handle(g);
	return IOPF_DEFER;
}

static struct run lib_drain(struct iopf_ctx *ctx, struct libstate *s,
			    enum lib_mode mode, uint64_t n)
{
	IOPF_OPTS(iopf_stats, st0);
	IOPF_OPTS(iopf_stats, st1);
	struct run r = { 0 };
	double t0;

	iopf_ctx_get_stats(ctx, &st0);
	t0 = now();
	for (;;) {
		iopf_ctx_dispatch(ctx);
		if (mode == LIB_DEFER) {
			for (size_t i = 0; i < s->nh; i++)
				iopf_respond(ctx, s->h[i], IOPF_CODE_SUCCESS);
			atomic_fetch_add(&s->handled, s->nh);
			s->nh = 0;
		}
		if (atomic_load(&s->handled) >= n) {
			/* handled; done once every answer is written */
			iopf_ctx_flush(ctx);
			iopf_ctx_get_stats(ctx, &st1);
			if (st1.answers_success - st0.answers_success >= n &&
			    st1.outstanding == 0)
				break;
		}
		if (mode == LIB_WORKERS) {
			struct pollfd p = { .fd = iopf_ctx_get_fd(ctx), .events = POLLIN };

			poll(&p, 1, 1);
		}
	}
	iopf_ctx_flush(ctx);
	r.secs = now() - t0;
	iopf_ctx_get_stats(ctx, &st1);
	r.groups = atomic_load(&s->handled);
	r.reads = st1.read_calls - st0.read_calls;
	r.writes = st1.write_calls - st0.write_calls;
	atomic_store(&s->handled, 0);
	return r;
}

static struct iopf_ctx *lib_ctx(enum lib_mode mode, struct libstate *s, uint64_t n)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = mode == LIB_WORKERS ? 2 : 0,
		  .batch_max = mode == LIB_BIG ? BIG : 0);
	struct iopf_ctx *ctx = iopf_ctx_new(&o);

	s->h = realloc(s->h, n * sizeof(*s->h));
	s->nh = 0;
	iopf_ctx_set_handler(ctx, mode == LIB_DEFER ? h_defer : h_now, s);
	return ctx;
}

/* ---- real kernel ---- */

static int raw_fault_alloc(struct kmock *m, uint32_t *id)
{
	struct iopf_k_fault_alloc c = { .size = sizeof(c) };

	if (ioctl(m->fd, IOPF_K_FAULT_QUEUE_ALLOC, &c))
		return -1;
	*id = c.out_fault_id;
	return (int)c.out_fault_fd;
}

static void attach(struct kmock *m, uint32_t fault_id)
{
	uint32_t parent, hwpt;

	if (kmock_hwpt_nested_iopf(m, m->idev_id, fault_id, &parent, &hwpt) ||
	    kmock_replace(m, m->stdev_id, hwpt)) {
		fprintf(stderr, "iopf-bench: attach: %s\n", strerror(errno));
		exit(1);
	}
}

static void trigger_n(struct kmock *m, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (kmock_trigger(m, m->idev_id, 0, (uint32_t)(i % 512),
				  IOPF_PERM_READ, (i % 4096) << 12)) {
			fprintf(stderr, "iopf-bench: trigger: %s\n", strerror(errno));
			exit(1);
		}
}

static void print_row(const char *name, double gps, const struct run *r,
		      double base_tuned, double base_naive)
{
	printf("  %-28s %11.0f %8llu %8llu %9.2fx %9.2fx\n", name, gps,
	       (unsigned long long)r->reads, (unsigned long long)r->writes,
	       base_tuned ? gps / base_tuned : 0, base_naive ? gps / base_naive : 0);
}

static int bench_kernel(uint64_t n, int rounds)
{
	struct kmock m;
	enum { NAIVE, TUNED, AT_ONCE, DEFER, WORKERS, BIGBUF, NM };
	const char *names[NM] = { "naive (read+write a group)", "hand-tuned (1 read, 1 write)",
				  lib_name[0], lib_name[1], lib_name[2], lib_name[3] };
	double gps[NM][16];
	struct run last[NM];
	struct libstate s = { 0 };

	if (kmock_open(&m)) {
		fprintf(stderr, "iopf-bench: needs /dev/iommu and the iommufd selftest (run in vmrun)\n");
		return 77;
	}
	if (rounds > 16)
		rounds = 16;
	for (int rd = 0; rd < rounds; rd++) {
		for (int k = 0; k < NM; k++) {
			uint32_t id;
			struct run r;

			if (k == NAIVE || k == TUNED) {
				int fd = raw_fault_alloc(&m, &id);

				attach(&m, id);
				trigger_n(&m, n);
				r = k == NAIVE ? naive(&real_ops, fd, n, 1) :
						 tuned(&real_ops, fd, n, 1);
				kmock_detach(&m, m.stdev_id);
				close(fd);
			} else {
				enum lib_mode mode = (enum lib_mode)(k - AT_ONCE);
				struct iopf_ctx *ctx = lib_ctx(mode, &s, n);

				IOPF_OPTS(iopf_fault_queue_opts, fo,
					  .read_records = mode == LIB_BIG ? BIG : 0);

				if (!iopf_fault_queue_alloc(ctx, m.fd, &fo, &id)) {
					fprintf(stderr, "iopf-bench: fault queue: %s\n", strerror(errno));
					return 1;
				}
				attach(&m, id);
				trigger_n(&m, n);
				r = lib_drain(ctx, &s, mode, n);
				kmock_detach(&m, m.stdev_id);
				iopf_ctx_free(ctx);
			}
			gps[k][rd] = (double)r.groups / r.secs;
			last[k] = r;
		}
	}
	double med[NM];

	for (int k = 0; k < NM; k++)
		med[k] = median(gps[k], rounds);
	printf("Real kernel: drain %llu queued single-record groups (median of %d interleaved rounds)\n",
	       (unsigned long long)n, rounds);
	printf("  %-28s %11s %8s %8s %10s %10s\n", "method", "groups/s", "reads",
	       "writes", "vs tuned", "vs naive");
	for (int k = 0; k < NM; k++) {
		print_row(names[k], med[k], &last[k], med[TUNED], med[NAIVE]);
		jout("{\"part\":\"kernel\",\"method\":\"%s\",\"groups\":%llu,\"groups_per_s\":%.0f,"
		     "\"reads\":%llu,\"writes\":%llu,\"vs_tuned\":%.3f,\"vs_naive\":%.3f}",
		     names[k], (unsigned long long)n, med[k],
		     (unsigned long long)last[k].reads, (unsigned long long)last[k].writes,
		     med[k] / med[TUNED], med[k] / med[NAIVE]);
	}
	for (int k = AT_ONCE; k < NM; k += BIGBUF - AT_ONCE)
		printf("  targets (%s): >= 0.9x hand-tuned: %s (%.2fx); >= 3x naive: %s (%.2fx)\n",
		       names[k], med[k] >= 0.9 * med[TUNED] ? "met" : "NOT met",
		       med[k] / med[TUNED], med[k] >= 3 * med[NAIVE] ? "met" : "NOT met",
		       med[k] / med[NAIVE]);
	free(s.h);
	kmock_close(&m);
	return 0;
}

/* ---- host: the fake kernel ---- */

static void fake_fill(struct fk_fault *f, uint64_t n, unsigned int size)
{
	struct iopf_k_pgfault rec[32];

	for (uint64_t i = 0; i < n; i++) {
		for (unsigned int k = 0; k < size; k++)
			rec[k] = (struct iopf_k_pgfault){
				.flags = k + 1 == size ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0,
				.dev_id = 1 + (uint32_t)(i % 4), .grpid = (uint32_t)(i % 512),
				.perm = 1, .addr = (i * size + k) << 12,
			};
		fk_trigger_group(f, rec, size);
	}
}

static void bench_fake(uint64_t n, int rounds)
{
	static const unsigned int sizes[] = { 1, 4, 32 };
	struct libstate s = { 0 };

	fk_install();
	printf("\nHost, fake kernel: drain n queued groups (median of %d interleaved rounds)\n", rounds);
	printf("  %-6s %-28s %11s %10s %10s %12s\n", "size", "method", "groups/s",
	       "vs tuned", "vs naive", "ns/group");
	for (size_t si = 0; si < 3; si++) {
		unsigned int sz = sizes[si];
		uint64_t ng = n / sz;
		double g[5][16], med[5];
		const char *names[5] = { "naive", "hand-tuned", lib_name[0], lib_name[1], lib_name[2] };

		for (int rd = 0; rd < rounds; rd++)
			for (int k = 0; k < 5; k++) {
				struct fk_fault *f = fk_fault_new();
				struct run r;

				fake_fill(f, ng, sz);
				if (k < 2) {
					r = k == 0 ? naive(&fake_ops, fk_fault_fd(f), ng, sz) :
						     tuned(&fake_ops, fk_fault_fd(f), ng, sz);
				} else {
					enum lib_mode mode = (enum lib_mode)(k - 2);
					struct iopf_ctx *ctx = lib_ctx(mode, &s, ng);

					iopf_fault_queue_adopt(ctx, fk_fault_fd(f), fk_fault_id(f), NULL);
					r = lib_drain(ctx, &s, mode, ng);
					iopf_ctx_free(ctx);
				}
				fk_fault_free(f);
				g[k][rd] = (double)r.groups / r.secs;
			}
		for (int k = 0; k < 5; k++)
			med[k] = median(g[k], rounds);
		for (int k = 0; k < 5; k++) {
			printf("  %-6u %-28s %11.0f %9.2fx %9.2fx %12.0f\n", sz, names[k], med[k],
			       med[k] / med[1], med[k] / med[0], 1e9 / med[k]);
			jout("{\"part\":\"fake\",\"size\":%u,\"method\":\"%s\",\"groups_per_s\":%.0f,"
			     "\"vs_tuned\":%.3f,\"vs_naive\":%.3f,\"ns_per_group\":%.0f}",
			     sz, names[k], med[k], med[k] / med[1], med[k] / med[0], 1e9 / med[k]);
		}
		printf("  %-6u libiopf overhead over hand-tuned: %.0f ns per group\n", sz,
		       1e9 / med[2] - 1e9 / med[1]);
	}
	free(s.h);
	fk_uninstall();
}

/* ---- host: the producer path ---- */

static void no_resp(const struct iopf_response *r, void *ud)
{
}

static void bench_producer(uint64_t n)
{
	static const unsigned int sizes[] = { 1, 4, 32 };

	printf("\nHost, producer path: n requests submitted one at a time, 8 groups interleaved\n");
	printf("  %-6s %11s %12s\n", "size", "groups/s", "ns/group");
	for (size_t si = 0; si < 3; si++) {
		unsigned int sz = sizes[si];
		uint64_t ng = n / sz;
		struct libstate s = { 0 };
		struct iopf_ctx *ctx = lib_ctx(LIB_AT_ONCE, &s, 1);
		IOPF_OPTS(iopf_producer_opts, po, .respond = no_resp, .partial_cap = 8 * 32);
		struct iopf_source *p = iopf_producer_new(ctx, &po);
		double t0 = now(), dt;

		for (uint64_t b = 0; b < ng; b += 8) {
			for (unsigned int k = 0; k < sz; k++)
				for (uint64_t i = b; i < b + 8 && i < ng; i++) {
					struct iopf_request r = {
						.flags = k + 1 == sz ? IOPF_F_LAST_PAGE : 0,
						.dev_id = 1, .prgi = (uint32_t)(i % 512),
						.addr = (i * sz + k) << 12,
					};
					iopf_producer_submit(p, &r);
				}
			iopf_ctx_dispatch(ctx);
		}
		dt = now() - t0;
		printf("  %-6u %11.0f %12.0f\n", sz, (double)ng / dt, dt * 1e9 / (double)ng);
		jout("{\"part\":\"producer\",\"size\":%u,\"groups_per_s\":%.0f,\"ns_per_group\":%.0f}",
		     sz, (double)ng / dt, dt * 1e9 / (double)ng);
		iopf_ctx_free(ctx);
		free(s.h);
	}
}

/* ---- host: growth of lookups with outstanding groups ---- */

struct lent {
	uint32_t prgi;
	uint64_t cookie;
	struct lent *next;
};

static int h_defer_only(struct iopf_group *g, void *ud)
{
	return IOPF_DEFER;
}

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void key_of(uint64_t i, uint64_t pairs, uint32_t *dev, uint32_t *pasid,
		   uint32_t *prgi)
{
	uint64_t p = i % pairs;

	*dev = (uint32_t)(p / 64);
	*pasid = (uint32_t)(p % 64);
	*prgi = (uint32_t)((i / pairs) % 512);
}

static void bench_growth(FILE *dat)
{
	static const uint64_t outs[] = { 10, 1000, 100000 };
	static const uint64_t pairs_v[] = { 1, 100, 10000 };
	const uint64_t sample = 20000;

	printf("\nHost, growth: guest answer lookup (device, PASID, PRG index) with n outstanding\n");
	printf("  %-9s %-7s %14s %14s %14s\n", "outstand.", "pairs", "intake ns/grp",
	       "libiopf ns/ans", "list ns/ans");
	for (size_t pi = 0; pi < 3; pi++)
		for (size_t oi = 0; oi < 3; oi++) {
			uint64_t O = outs[oi], P = pairs_v[pi], ns = O < sample ? O : sample;
			uint64_t *order = malloc(O * sizeof(*order));
			struct iopf_ctx *ctx = iopf_ctx_new(NULL);
			IOPF_OPTS(iopf_producer_opts, po, .respond = no_resp);
			struct iopf_source *src = iopf_producer_new(ctx, &po);
			double t0, t_in, t_lib, t_list;
			uint32_t d, pa, pr;

			iopf_ctx_set_handler(ctx, h_defer_only, NULL);
			t0 = now();
			for (uint64_t i = 0; i < O; i++) {
				struct iopf_request r = { .flags = IOPF_F_LAST_PAGE | IOPF_F_PASID_VALID };

				key_of(i, P, &r.dev_id, &r.pasid, &r.prgi);
				iopf_producer_submit(src, &r);
				if (i % 1024 == 1023)
					iopf_ctx_dispatch(ctx);
			}
			iopf_ctx_dispatch(ctx);
			t_in = (now() - t0) / (double)O;
			for (uint64_t i = 0; i < O; i++)
				order[i] = i;
			for (uint64_t i = O - 1; i > 0; i--) { /* shuffle */
				uint64_t j = rnd() % (i + 1), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			t0 = now();
			for (uint64_t i = 0; i < ns; i++) {
				key_of(order[i], P, &d, &pa, &pr);
				iopf_respond_prg(ctx, d, pa, pr, IOPF_CODE_SUCCESS);
			}
			t_lib = (now() - t0) / (double)ns;
			iopf_ctx_free(ctx);

			/* Baseline: a list per (device, PASID), in arrival order. */
			struct lent **heads = calloc(P, sizeof(*heads)), **tails = calloc(P, sizeof(*tails));
			struct lent *ents = calloc(O, sizeof(*ents));

			for (uint64_t i = 0; i < O; i++) {
				struct lent *e = &ents[i];

				key_of(i, P, &d, &pa, &pr);
				e->prgi = pr;
				e->cookie = i;
				if (tails[i % P])
					tails[i % P]->next = e;
				else
					heads[i % P] = e;
				tails[i % P] = e;
			}
			volatile uint64_t sink = 0;

			t0 = now();
			for (uint64_t i = 0; i < ns; i++) {
				uint64_t p = order[i] % P;
				struct lent **pp = &heads[p], *e;

				key_of(order[i], P, &d, &pa, &pr);
				/* the PASID's list is found by (dev, pasid): index p */
				while ((e = *pp) && e->prgi != pr)
					pp = &e->next;
				if (e) {
					sink += e->cookie;
					*pp = e->next;
					if (tails[p] == e)
						tails[p] = NULL; /* not appended to again */
				}
			}
			t_list = (now() - t0) / (double)ns;
			(void)sink;
			printf("  %-9llu %-7llu %14.0f %14.0f %14.0f\n", (unsigned long long)O,
			       (unsigned long long)P, t_in * 1e9, t_lib * 1e9, t_list * 1e9);
			jout("{\"part\":\"growth\",\"outstanding\":%llu,\"pairs\":%llu,"
			     "\"intake_ns\":%.0f,\"libiopf_lookup_ns\":%.0f,\"list_lookup_ns\":%.0f}",
			     (unsigned long long)O, (unsigned long long)P, t_in * 1e9,
			     t_lib * 1e9, t_list * 1e9);
			if (dat)
				fprintf(dat, "%llu %llu %.1f %.1f %.1f\n", (unsigned long long)P,
					(unsigned long long)O, t_in * 1e9, t_lib * 1e9, t_list * 1e9);
			free(order);
			free(heads);
			free(tails);
			free(ents);
		}
}

/* ---- host: memory ---- */

static size_t heap_used(void)
{
	return mallinfo2().uordblks;
}

static void bench_memory(void)
{
	const uint64_t O = 100000;
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	IOPF_OPTS(iopf_producer_opts, po, .respond = no_resp);
	struct iopf_source *src = iopf_producer_new(ctx, &po);
	size_t before, after, peak = 0, base;
	IOPF_OPTS(iopf_stats, st);

	iopf_ctx_set_handler(ctx, h_defer_only, NULL);
	iopf_ctx_dispatch(ctx);
	before = heap_used();
	for (uint64_t i = 0; i < O; i++) {
		struct iopf_request r = { .flags = IOPF_F_LAST_PAGE | IOPF_F_PASID_VALID,
					  .dev_id = (uint32_t)(i % 100),
					  .pasid = (uint32_t)(i % 7), .prgi = (uint32_t)(i % 512) };

		iopf_producer_submit(src, &r);
		if (i % 1024 == 1023)
			iopf_ctx_dispatch(ctx);
	}
	iopf_ctx_dispatch(ctx);
	after = heap_used();
	iopf_ctx_get_stats(ctx, &st);
	double per = (double)(after - before) / (double)O;

	printf("\nHost, memory: %llu outstanding single-record groups\n", (unsigned long long)st.outstanding);
	printf("  heap per outstanding group: %.0f bytes, %.0f beyond its 16-byte record (target <= 256): %s\n",
	       per, per - 16, per - 16 <= 256 ? "met" : "NOT met");
	jout("{\"part\":\"memory\",\"outstanding\":%llu,\"bytes_per_group\":%.0f,\"beyond_records\":%.0f}",
	     (unsigned long long)st.outstanding, per, per - 16);
	iopf_ctx_free(ctx);

	/* A flood of partial requests that never get their LAST one. */
	ctx = iopf_ctx_new(NULL);
	src = iopf_producer_new(ctx, &po);
	base = heap_used();
	for (uint64_t i = 0; i < 4000000; i++) {
		struct iopf_request r = { .dev_id = (uint32_t)(i % 16),
					  .prgi = (uint32_t)((i / 16) % 512),
					  .addr = i << 12 };

		iopf_producer_submit(src, &r);
		if (i % 4096 == 0 && heap_used() - base > peak)
			peak = heap_used() - base;
	}
	iopf_ctx_get_stats(ctx, &st);
	printf("  partial flood: 4,000,000 partial requests on 16 devices, cap 256 each: %llu held, "
	       "%llu dropped, heap peak %zu KiB (bounded by the cap)\n",
	       (unsigned long long)st.partial_held, (unsigned long long)st.partial_dropped,
	       peak / 1024);
	jout("{\"part\":\"partial_flood\",\"requests\":4000000,\"held\":%llu,\"dropped\":%llu,"
	     "\"heap_peak_bytes\":%zu}",
	     (unsigned long long)st.partial_held, (unsigned long long)st.partial_dropped, peak);
	iopf_ctx_free(ctx);
}

/* ---- host: latency under load through the worker pool ---- */

static int h_work(struct iopf_group *g, void *ud)
{
	uint64_t x = iopf_group_prgi(g);

	for (int i = 0; i < 200; i++) /* a little work per group */
		x = x * 31 + (uint64_t)i;
	__asm__ volatile("" : : "r"(x)); /* keep the work */
	return IOPF_CODE_SUCCESS;
}

static void bench_latency(uint64_t n)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = 4, .max_outstanding = 1024);
	struct iopf_ctx *ctx;
	struct fk_fault *f;
	IOPF_OPTS(iopf_stats, st);

	fk_install();
	ctx = iopf_ctx_new(&o);
	f = fk_fault_new();
	iopf_fault_queue_adopt(ctx, fk_fault_fd(f), fk_fault_id(f), NULL);
	iopf_ctx_set_handler(ctx, h_work, NULL);
	for (uint64_t i = 0; i < n; i += 256) {
		for (uint64_t k = i; k < i + 256 && k < n; k++)
			fk_trigger(f, 1 + (uint32_t)(k % 4), 0, (uint32_t)(k % 512), 1, k << 12);
		iopf_ctx_dispatch(ctx);
	}
	iopf_ctx_drain(ctx, 0, 0, IOPF_ALL_PASIDS, 10000);
	for (int i = 0; i < 4; i++)
		iopf_ctx_drain(ctx, (uint32_t)i + 1, 0, IOPF_ALL_PASIDS, 10000);
	iopf_ctx_get_stats(ctx, &st);
	printf("\nHost, latency under load: %llu groups through 4 workers, max_outstanding 1024\n",
	       (unsigned long long)st.groups);
	printf("  read-to-answer (bucket upper bounds): p50 %llu ns, p99 %llu ns, p999 %llu ns\n",
	       (unsigned long long)iopf_stats_latency_ns(&st, 0.5),
	       (unsigned long long)iopf_stats_latency_ns(&st, 0.99),
	       (unsigned long long)iopf_stats_latency_ns(&st, 0.999));
	jout("{\"part\":\"latency\",\"groups\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu}",
	     (unsigned long long)st.groups,
	     (unsigned long long)iopf_stats_latency_ns(&st, 0.5),
	     (unsigned long long)iopf_stats_latency_ns(&st, 0.99),
	     (unsigned long long)iopf_stats_latency_ns(&st, 0.999));
	iopf_ctx_free(ctx);
	fk_fault_free(f);
	fk_uninstall();
}

static void usage(FILE *f)
{
	fprintf(f, "usage: iopf-bench --host|--kernel [--json FILE] [--dat FILE] [--groups N] [--rounds R]\n"
		   "  --host     fake kernel, producer path, growth, memory, latency\n"
		   "  --kernel   the real fault object (inside ../shared/kernel/vmrun)\n"
		   "  --json F   append results as a JSON array to F\n"
		   "  --dat F    growth data for gnuplot (host)\n"
		   "  --groups N groups per drain (default: 20000 kernel, 200000 host)\n"
		   "  --rounds R interleaved rounds, median reported (default 5)\n");
}

int main(int argc, char **argv)
{
	bool host = false, kernel = false;
	const char *json = NULL, *datp = NULL;
	uint64_t groups = 0;
	int rounds = 5, rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host"))
			host = true;
		else if (!strcmp(argv[i], "--kernel"))
			kernel = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = argv[++i];
		else if (!strcmp(argv[i], "--dat") && i + 1 < argc)
			datp = argv[++i];
		else if (!strcmp(argv[i], "--groups") && i + 1 < argc)
			groups = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			usage(!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ? stdout : stderr);
			return 2;
		}
	}
	if ((!host && !kernel) || rounds < 1 || rounds > 16) {
		usage(stderr);
		return 2;
	}
	if (json && !(jf = fopen(json, "w"))) {
		perror(json);
		return 1;
	}
	if (kernel)
		rc = bench_kernel(groups ? groups : 20000, rounds);
	if (host) {
		FILE *dat = datp ? fopen(datp, "w") : NULL;

		bench_fake(groups ? groups : 200000, rounds);
		bench_producer(groups ? groups : 200000);
		bench_growth(dat);
		bench_memory();
		bench_latency(groups ? groups : 200000);
		if (dat)
			fclose(dat);
	}
	if (jf) {
		fprintf(jf, "\n]\n");
		fclose(jf);
	}
	return rc;
}
