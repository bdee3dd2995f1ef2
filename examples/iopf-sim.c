/* SPDX-License-Identifier: MIT */
/*
 * iopf-sim - simulated PRI devices feeding libiopf, no hardware needed.
 *
 * Two kinds of simulated devices raise Page Request Groups at once:
 * - "fault fd" devices, whose groups arrive whole through a simulated
 *   iommufd fault object (examples/common/simfault.c): libiopf reads them
 *   in batches and writes the answers back by cookie, as with the kernel;
 * - "producer" devices, which send requests one at a time, partial
 *   requests of several groups interleaved, as an emulated PRI device in a
 *   VMM would: libiopf assembles the groups (iopf_producer_submit()).
 * One handler resolves every page against a simulated address space per
 * (device, PASID): a page inside it is made resident and answered SUCCESS,
 * a page outside it INVALID. A share of groups is answered later from a
 * resolver thread (IOPF_DEFER, then iopf_respond()). Each device checks
 * every answer it gets: exactly one per group, and the right code.
 *
 * Uses libiopf's public API only.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iopf/iopf.h>

#include "common/opt.h"
#include "common/simfault.h"

#define SPACE_PAGES 4096u   /* simulated address space per (dev, PASID) */
#define PRODUCER_DEV0 1000u /* producer devices: 1000, 1001, ... */
#define PRGI_SLOTS 512u     /* PRG index is 9 bits */

enum { PATH_FD = 1, PATH_PRODUCER = 2 };

struct opts {
	unsigned int devices, pasids, groups, size_min, size_max, interleave;
	unsigned int rate, latency_us, defer_pct, bad_pct, workers, inflight;
	unsigned int timeout_s, paths;
	bool json, quiet;
};

/* What one path's devices saw. */
struct path_stats {
	uint64_t groups, requests;
	atomic_uint_fast64_t success, invalid, twice, wrong;
	uint64_t lost;
};

struct sim {
	struct opts o;
	struct iopf_ctx *ctx;
	/* per group (by sequence number): answers seen, code expected */
	atomic_uchar *answers_fd, *answers_pr;
	unsigned char *valid_fd, *valid_pr;
	struct path_stats fd, pr;
	atomic_uint_fast64_t *space; /* resident bits, per (dev, PASID) */
	atomic_bool devices_done;
	atomic_uint_fast64_t deferred;
	/* producer side: in-flight group of (device, PRG index), seq + 1 */
	atomic_uint_fast64_t *prg_inflight;
	atomic_uint pr_unanswered;
	/* deferred answers for the resolver thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	iopf_handle_t *queue;
	size_t qn, qcap;
	bool stop;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *st) /* xorshift64*: reproducible runs */
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ull;
}

static void spin_us(unsigned int us)
{
	double end = now_s() + us / 1e6;

	if (us >= 100) {
		struct timespec ts = { .tv_nsec = (long)us * 1000 };

		nanosleep(&ts, NULL);
		return;
	}
	while (now_s() < end)
		;
}

/* ---- the handler: a simulated address space ---- */

static atomic_uint_fast64_t *space_of(struct sim *s, uint32_t dev, uint32_t pasid)
{
	uint32_t d = dev >= PRODUCER_DEV0 ? s->o.devices + dev - PRODUCER_DEV0 : dev;
	size_t words = SPACE_PAGES / 64;

	return s->space + ((size_t)d * s->o.pasids + pasid % s->o.pasids) * words;
}

static void defer(struct sim *s, iopf_handle_t h)
{
	pthread_mutex_lock(&s->lock);
	if (s->qn == s->qcap) {
		size_t cap = s->qcap ? s->qcap * 2 : 1024;
		iopf_handle_t *q = realloc(s->queue, cap * sizeof(*q));

		if (!q) { /* cannot defer: the handler answers now instead */
			pthread_mutex_unlock(&s->lock);
			iopf_respond(s->ctx, h, IOPF_CODE_SUCCESS);
			return;
		}
		s->queue = q;
		s->qcap = cap;
	}
	s->queue[s->qn++] = h;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int handle(struct iopf_group *g, void *ud)
{
	struct sim *s = ud;
	atomic_uint_fast64_t *sp = space_of(s, iopf_group_dev_id(g),
					    iopf_group_pasid(g));
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	if (s->o.latency_us)
		spin_us(s->o.latency_us);
	for (size_t i = 0; i < n; i++) {
		uint64_t page = r[i].addr >> 12;

		if (page >= SPACE_PAGES)
			return IOPF_CODE_INVALID;
		atomic_fetch_or(&sp[page / 64], 1ull << (page % 64));
	}
	if (s->o.defer_pct && (iopf_group_handle(g) * 2654435761u >> 7) % 100 <
				      s->o.defer_pct) {
		atomic_fetch_add(&s->deferred, 1);
		defer(s, iopf_group_handle(g));
		return IOPF_DEFER;
	}
	return IOPF_CODE_SUCCESS;
}

static void *resolver(void *arg)
{
	struct sim *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->qn && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->qn)
			break;
		iopf_handle_t h = s->queue[--s->qn];

		pthread_mutex_unlock(&s->lock);
		iopf_respond(s->ctx, h, IOPF_CODE_SUCCESS);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- the devices' side: checking answers ---- */

static void check_answer(struct path_stats *ps, atomic_uchar *answers,
			 const unsigned char *valid, uint64_t seq, uint32_t code)
{
	if (atomic_fetch_add(&answers[seq], 1)) {
		atomic_fetch_add(&ps->twice, 1);
		return;
	}
	atomic_fetch_add(code == IOPF_CODE_SUCCESS ? &ps->success : &ps->invalid, 1);
	if ((code == IOPF_CODE_SUCCESS) != valid[seq])
		atomic_fetch_add(&ps->wrong, 1);
}

static void on_fd_answer(uint64_t seq, uint32_t code, void *ud)
{
	struct sim *s = ud;

	check_answer(&s->fd, s->answers_fd, s->valid_fd, seq, code);
}

static void on_producer_answer(const struct iopf_response *r, void *ud)
{
	struct sim *s = ud;
	uint32_t d = r->dev_id - PRODUCER_DEV0;
	uint64_t v;

	if (d >= s->o.devices || r->prgi >= PRGI_SLOTS) {
		atomic_fetch_add(&s->pr.twice, 1); /* misrouted */
		return;
	}
	v = atomic_exchange(&s->prg_inflight[d * PRGI_SLOTS + r->prgi], 0);
	if (!v) {
		atomic_fetch_add(&s->pr.twice, 1); /* nothing in flight there */
		return;
	}
	check_answer(&s->pr, s->answers_pr, s->valid_pr, v - 1, r->code);
	atomic_fetch_sub(&s->pr_unanswered, 1);
}

/* Addresses of one group: mostly inside the space, a share outside. */
static bool make_group(struct sim *s, uint64_t *rs, unsigned int n,
		       uint64_t *addr)
{
	bool bad = rnd(rs) % 1000 < s->o.bad_pct * 10u;
	uint64_t base = rnd(rs) % SPACE_PAGES;

	for (unsigned int k = 0; k < n; k++)
		addr[k] = ((base + k) % SPACE_PAGES) << 12;
	if (bad)
		addr[rnd(rs) % n] = (uint64_t)(SPACE_PAGES + rnd(rs) % 1024) << 12;
	return !bad;
}

static unsigned int group_size(struct sim *s, uint64_t *rs)
{
	return s->o.size_min + (unsigned int)(rnd(rs) % (s->o.size_max - s->o.size_min + 1));
}

/* Pace raising to --rate groups per second (the paths share it). */
static void pace(struct sim *s, double t0, uint64_t raised)
{
	double share = s->o.paths == (PATH_FD | PATH_PRODUCER) ? 2.0 : 1.0;
	double due;

	if (!s->o.rate)
		return;
	due = t0 + (double)raised / ((double)s->o.rate / share);
	while (now_s() < due)
		spin_us(50);
}

/* Fault fd devices: whole groups through the simulated fault object. */
struct fd_dev_arg {
	struct sim *s;
	struct simfault *sf;
};

static void *fd_devices(void *arg)
{
	struct fd_dev_arg *a = arg;
	struct sim *s = a->s;
	uint64_t total = (uint64_t)s->o.devices * s->o.groups, seq = 0;
	uint64_t rs = 0x1234567, addr[64];
	struct iopf_k_pgfault rec[64];
	double t0 = now_s();

	while (seq < total) {
		unsigned int cap = s->o.inflight * s->o.devices;

		while (seq < total && simfault_unanswered(a->sf) < cap) {
			uint32_t dev = (uint32_t)(seq % s->o.devices);
			unsigned int n = group_size(s, &rs);
			uint32_t pasid = 1 + (uint32_t)(rnd(&rs) % s->o.pasids);

			s->valid_fd[seq] = make_group(s, &rs, n, addr);
			for (unsigned int k = 0; k < n; k++)
				rec[k] = (struct iopf_k_pgfault){
					.flags = IOPF_K_PGFAULT_FLAGS_PASID_VALID |
						 (k + 1 == n ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0),
					.dev_id = dev, .pasid = pasid,
					.grpid = (uint32_t)(seq / s->o.devices) % PRGI_SLOTS,
					.perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
					.addr = addr[k], .length = 4096,
				};
			if (simfault_raise(a->sf, rec, n, seq))
				break;
			s->fd.requests += n;
			seq++;
			pace(s, t0, seq);
		}
		simfault_pump(a->sf);
		struct pollfd p = { .fd = simfault_peer_fd(a->sf), .events = POLLIN };
		poll(&p, 1, 1);
	}
	s->fd.groups = seq;
	/* Keep taking answers until all are in (or the run ends). */
	while (simfault_unanswered(a->sf) && !atomic_load(&s->devices_done)) {
		struct pollfd p = { .fd = simfault_peer_fd(a->sf), .events = POLLIN };

		poll(&p, 1, 5);
		simfault_pump(a->sf);
	}
	return NULL;
}

/* Producer devices: requests one at a time, `interleave` groups open per
 * device, request k of each before request k+1 of any. */
struct pr_group {
	uint64_t seq, addr[64];
	uint32_t pasid, prgi;
	unsigned int n, next;
};

static void *producer_devices(void *arg)
{
	struct sim *s = arg;
	struct iopf_source *src = NULL;
	uint64_t per_dev = s->o.groups, rs = 0x7654321, seq = 0, raised = 0;
	unsigned int D = s->o.devices, I = s->o.interleave;
	struct pr_group *open = calloc((size_t)D * I, sizeof(*open));
	uint32_t *next_prgi = calloc(D, sizeof(*next_prgi));
	uint64_t *started = calloc(D, sizeof(*started));
	double t0 = now_s();
	bool more = true;

	IOPF_OPTS(iopf_producer_opts, po, .respond = on_producer_answer,
		  .userdata = s, .partial_cap = I * s->o.size_max);
	src = iopf_producer_new(s->ctx, &po);
	if (!src || !open || !next_prgi || !started) {
		fprintf(stderr, "iopf-sim: producer: %s\n", strerror(errno ? errno : ENOMEM));
		exit(1);
	}
	while (more) {
		more = false;
		for (unsigned int d = 0; d < D; d++) {
			for (unsigned int i = 0; i < I; i++) {
				struct pr_group *g = &open[d * I + i];
				atomic_uint_fast64_t *slot;

				if (g->next == g->n) { /* start a new group here */
					if (started[d] == per_dev)
						continue;
					if (atomic_load(&s->pr_unanswered) >= s->o.inflight * D)
						continue;
					slot = &s->prg_inflight[d * PRGI_SLOTS + next_prgi[d]];
					if (atomic_load(slot))
						continue; /* PRG index still in flight */
					g->seq = seq++;
					g->prgi = next_prgi[d];
					next_prgi[d] = (next_prgi[d] + 1) % PRGI_SLOTS;
					g->pasid = 1 + (uint32_t)(rnd(&rs) % s->o.pasids);
					g->n = group_size(s, &rs);
					g->next = 0;
					s->valid_pr[g->seq] = make_group(s, &rs, g->n, g->addr);
					atomic_store(slot, g->seq + 1);
					atomic_fetch_add(&s->pr_unanswered, 1);
					started[d]++;
					pace(s, t0, ++raised);
				}
				struct iopf_request r = {
					.flags = IOPF_F_PASID_VALID |
						 (g->next + 1 == g->n ? IOPF_F_LAST_PAGE : 0),
					.dev_id = PRODUCER_DEV0 + d,
					.pasid = g->pasid,
					.prgi = g->prgi,
					.perm = IOPF_PERM_READ,
					.addr = g->addr[g->next],
				};
				iopf_producer_submit(src, &r);
				s->pr.requests++;
				g->next++;
				more = true;
			}
			if (started[d] < per_dev)
				more = true;
		}
		if (!more)
			break;
		if (atomic_load(&s->pr_unanswered) >= s->o.inflight * D)
			sched_yield();
	}
	s->pr.groups = seq;
	free(open);
	free(next_prgi);
	free(started);
	return NULL;
}

/* ---- output ---- */

static void progress(struct sim *s, double t0, uint64_t last_groups,
		     double last_t)
{
	IOPF_OPTS(iopf_stats, st);
	double t = now_s();

	iopf_ctx_get_stats(s->ctx, &st);
	fprintf(stdout, "\r\033[K%6.1fs %10llu groups %9.0f groups/s  outstanding %5llu  p50 %llu us  p99 %llu us",
		t - t0, (unsigned long long)st.groups,
		(double)(st.groups - last_groups) / (t - last_t),
		(unsigned long long)st.outstanding,
		(unsigned long long)iopf_stats_latency_ns(&st, 0.5) / 1000,
		(unsigned long long)iopf_stats_latency_ns(&st, 0.99) / 1000);
	fflush(stdout);
}

static void row(const char *name, const struct path_stats *p)
{
	printf("  %-10s %10llu %10llu %10llu %9llu %6llu %6llu %6llu\n", name,
	       (unsigned long long)p->groups, (unsigned long long)p->requests,
	       (unsigned long long)atomic_load(&p->success),
	       (unsigned long long)atomic_load(&p->invalid),
	       (unsigned long long)p->lost,
	       (unsigned long long)atomic_load(&p->twice),
	       (unsigned long long)atomic_load(&p->wrong));
}

static void json_path(const char *name, const struct path_stats *p, bool comma)
{
	printf("\"%s\":{\"groups\":%llu,\"requests\":%llu,\"success\":%llu,"
	       "\"invalid\":%llu,\"lost\":%llu,\"answered_twice\":%llu,"
	       "\"wrong\":%llu}%s",
	       name, (unsigned long long)p->groups,
	       (unsigned long long)p->requests,
	       (unsigned long long)atomic_load(&p->success),
	       (unsigned long long)atomic_load(&p->invalid),
	       (unsigned long long)p->lost,
	       (unsigned long long)atomic_load(&p->twice),
	       (unsigned long long)atomic_load(&p->wrong), comma ? "," : "");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iopf-sim [options]\n"
		"Simulated PRI devices raise page request groups through a simulated\n"
		"iommufd fault fd and through libiopf's one-request-at-a-time producer\n"
		"path; a handler resolves them against a simulated address space and\n"
		"each device checks that every group got exactly one, correct answer.\n"
		"\n"
		"  -d, --devices N       devices per path (default 4)\n"
		"  -p, --pasids N        PASIDs per device (default 2)\n"
		"  -g, --groups N        groups per device and path (default 100000)\n"
		"  -s, --group-size A[-B] requests per group, A to B (default 1-4, max 64)\n"
		"  -i, --interleave N    producer path: groups per device whose partial\n"
		"                        requests interleave (default 8)\n"
		"  -n, --inflight N      groups a device has unanswered at most\n"
		"                        (default 64, as a PRI outstanding-request cap)\n"
		"  -r, --rate N          groups per second, both paths together\n"
		"                        (default 0: as fast as answers come back)\n"
		"  -l, --latency US      handler time per group in microseconds (default 0)\n"
		"  -D, --defer PCT       share of groups answered later from a resolver\n"
		"                        thread through iopf_respond() (default 25)\n"
		"  -b, --bad PCT         share of groups with a page outside the address\n"
		"                        space, answered INVALID (default 2)\n"
		"  -w, --workers N       libiopf worker threads for handlers (default 0:\n"
		"                        handlers run in the dispatching thread)\n"
		"  -P, --path P          fd, producer or both (default both)\n"
		"  -t, --timeout S       give up waiting for answers after S seconds\n"
		"                        (default 30); unanswered groups count as lost\n"
		"  -j, --json            print the summary as one JSON object\n"
		"  -q, --quiet           no progress line (it shows only on a terminal)\n"
		"  -h, --help            this text\n"
		"\n"
		"Exit status: 0 if every group got exactly one answer with the right\n"
		"code, 1 if any was lost, answered twice or answered wrongly, 2 on bad\n"
		"usage.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "devices", 1, 0, 'd' }, { "pasids", 1, 0, 'p' },
		{ "groups", 1, 0, 'g' }, { "group-size", 1, 0, 's' },
		{ "interleave", 1, 0, 'i' }, { "inflight", 1, 0, 'n' },
		{ "rate", 1, 0, 'r' }, { "latency", 1, 0, 'l' },
		{ "defer", 1, 0, 'D' }, { "bad", 1, 0, 'b' },
		{ "workers", 1, 0, 'w' }, { "path", 1, 0, 'P' },
		{ "timeout", 1, 0, 't' }, { "json", 0, 0, 'j' },
		{ "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;

	*o = (struct opts){ .devices = 4, .pasids = 2, .groups = 100000,
			    .size_min = 1, .size_max = 4, .interleave = 8,
			    .defer_pct = 25, .bad_pct = 2, .inflight = 64,
			    .timeout_s = 30, .paths = PATH_FD | PATH_PRODUCER };
	while ((c = getopt_long(argc, argv, "d:p:g:s:i:n:r:l:D:b:w:P:t:jqh",
				lo, NULL)) != -1) {
#define NUM(opt, lo, hi) (unsigned int)opt_num("iopf-sim", opt, optarg, lo, hi)
		switch (c) {
		case 'd': o->devices = NUM("--devices", 1, 256); break;
		case 'p': o->pasids = NUM("--pasids", 1, 64); break;
		case 'g': o->groups = NUM("--groups", 1, 100000000); break;
		case 's': {
			char *dash = strchr(optarg, '-');

			if (dash) { /* "A-B" */
				*dash = '\0';
				o->size_min = NUM("--group-size (from)", 1, 64);
				optarg = dash + 1;
			}
			o->size_max = NUM(dash ? "--group-size (to)" : "--group-size", 1, 64);
			if (!dash)
				o->size_min = o->size_max;
			break;
		}
		case 'i': o->interleave = NUM("--interleave", 1, 64); break;
		case 'n': o->inflight = NUM("--inflight", 1, PRGI_SLOTS); break;
		case 'r': o->rate = NUM("--rate", 0, 100000000); break;
		case 'l': o->latency_us = NUM("--latency", 0, 10000000); break;
		case 'D': o->defer_pct = NUM("--defer", 0, 100); break;
		case 'b': o->bad_pct = NUM("--bad", 0, 100); break;
		case 'w': o->workers = NUM("--workers", 0, 64); break;
		case 'P':
			if (!strcmp(optarg, "fd")) o->paths = PATH_FD;
			else if (!strcmp(optarg, "producer")) o->paths = PATH_PRODUCER;
			else if (!strcmp(optarg, "both")) o->paths = PATH_FD | PATH_PRODUCER;
			else {
				fprintf(stderr, "iopf-sim: --path '%s': expected fd, producer or both\n",
					optarg);
				return 2;
			}
			break;
		case 't': o->timeout_s = NUM("--timeout", 1, 86400); break;
#undef NUM
		case 'j': o->json = true; break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); exit(0);
		default: return 2;
		}
	}
	if (optind != argc || !o->devices || o->devices > 256 || !o->pasids ||
	    o->pasids > 64 || !o->groups || !o->size_min ||
	    o->size_min > o->size_max || o->size_max > 64 || !o->interleave ||
	    o->interleave > 64 || !o->inflight || o->inflight > PRGI_SLOTS ||
	    o->defer_pct > 100 || o->bad_pct > 100 || o->workers > 64 ||
	    !o->timeout_s)
		return 2;
	return 0;
}

int main(int argc, char **argv)
{
	struct sim s = { 0 };
	struct fd_dev_arg fa = { .s = &s };
	pthread_t th_fd, th_pr, th_res;
	struct iopf_source *fq = NULL;
	uint64_t total, last_groups = 0;
	double t0, last_t, dt, next_progress;
	bool tty, ok;

	if (parse_opts(argc, argv, &s.o)) {
		usage(stderr);
		return 2;
	}
	total = (uint64_t)s.o.devices * s.o.groups;
	s.answers_fd = calloc(total, 1);
	s.answers_pr = calloc(total, 1);
	s.valid_fd = calloc(total, 1);
	s.valid_pr = calloc(total, 1);
	s.space = calloc((size_t)s.o.devices * 2 * s.o.pasids * SPACE_PAGES / 64,
			 sizeof(*s.space));
	s.prg_inflight = calloc((size_t)s.o.devices * PRGI_SLOTS,
				sizeof(*s.prg_inflight));
	if (!s.answers_fd || !s.answers_pr || !s.valid_fd || !s.valid_pr ||
	    !s.space || !s.prg_inflight) {
		fprintf(stderr, "iopf-sim: out of memory\n");
		return 1;
	}
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);

	IOPF_OPTS(iopf_ctx_opts, co, .workers = s.o.workers);
	s.ctx = iopf_ctx_new(&co);
	if (!s.ctx) {
		fprintf(stderr, "iopf-sim: iopf_ctx_new: %s\n", strerror(errno));
		return 1;
	}
	iopf_ctx_set_handler(s.ctx, handle, &s);
	if (s.o.paths & PATH_FD) {
		IOPF_OPTS(iopf_fault_queue_opts, fo,
			  .read_records = SIMFAULT_MSG_RECORDS);
		fa.sf = simfault_new(on_fd_answer, &s);
		fq = fa.sf ? iopf_fault_queue_adopt(s.ctx, simfault_fd(fa.sf), 1, &fo) : NULL;
		if (!fq) {
			fprintf(stderr, "iopf-sim: fault queue: %s\n", strerror(errno));
			return 1;
		}
	}
	tty = !s.o.quiet && !s.o.json && isatty(STDOUT_FILENO);
	if (!s.o.json)
		printf("iopf-sim: %u devices x %u groups of %u-%u requests per path (%s), "
		       "%u PASIDs, %u%% deferred, %u%% bad, %u us handler, %u workers\n",
		       s.o.devices, s.o.groups, s.o.size_min, s.o.size_max,
		       s.o.paths == 3 ? "fault fd + producer" :
		       s.o.paths == PATH_FD ? "fault fd" : "producer",
		       s.o.pasids, s.o.defer_pct, s.o.bad_pct, s.o.latency_us,
		       s.o.workers);

	t0 = last_t = now_s();
	next_progress = t0 + 0.25;
	pthread_create(&th_res, NULL, resolver, &s);
	if (s.o.paths & PATH_FD)
		pthread_create(&th_fd, NULL, fd_devices, &fa);
	if (s.o.paths & PATH_PRODUCER)
		pthread_create(&th_pr, NULL, producer_devices, &s);

	/* The event loop a VMM or runtime would have: poll the context fd,
	 * dispatch. Done when every group raised has its answer. */
	for (;;) {
		struct pollfd p = { .fd = iopf_ctx_get_fd(s.ctx), .events = POLLIN };
		uint64_t want = 0, got;
		double t;

		poll(&p, 1, 10);
		iopf_ctx_dispatch(s.ctx);
		t = now_s();
		if (tty && t >= next_progress) {
			IOPF_OPTS(iopf_stats, st);

			progress(&s, t0, last_groups, last_t);
			iopf_ctx_get_stats(s.ctx, &st);
			last_groups = st.groups;
			last_t = t;
			next_progress = t + 0.25;
		}
		if (s.o.paths & PATH_FD)
			want += total;
		if (s.o.paths & PATH_PRODUCER)
			want += total;
		got = atomic_load(&s.fd.success) + atomic_load(&s.fd.invalid) +
		      atomic_load(&s.pr.success) + atomic_load(&s.pr.invalid);
		if (got >= want || t - t0 > s.o.timeout_s)
			break;
	}
	dt = now_s() - t0;
	if (tty)
		printf("\r\033[K");
	atomic_store(&s.devices_done, true);
	if (s.o.paths & PATH_FD)
		pthread_join(th_fd, NULL);
	if (s.o.paths & PATH_PRODUCER)
		pthread_join(th_pr, NULL);
	pthread_mutex_lock(&s.lock);
	s.stop = true;
	pthread_cond_signal(&s.cond);
	pthread_mutex_unlock(&s.lock);
	pthread_join(th_res, NULL);

	for (uint64_t i = 0; i < s.fd.groups; i++)
		s.fd.lost += atomic_load(&s.answers_fd[i]) == 0;
	for (uint64_t i = 0; i < s.pr.groups; i++)
		s.pr.lost += atomic_load(&s.answers_pr[i]) == 0;

	IOPF_OPTS(iopf_stats, st);
	iopf_ctx_get_stats(s.ctx, &st);
	uint64_t groups = s.fd.groups + s.pr.groups;
	uint64_t lost = s.fd.lost + s.pr.lost;
	uint64_t twice = atomic_load(&s.fd.twice) + atomic_load(&s.pr.twice);
	uint64_t wrong = atomic_load(&s.fd.wrong) + atomic_load(&s.pr.wrong);
	struct simfault_stats ks = { 0 };

	if (fa.sf)
		simfault_get_stats(fa.sf, &ks);
	twice += ks.refused; /* an answer for no outstanding cookie */
	ok = !lost && !twice && !wrong;
	if (s.o.json) {
		printf("{\"devices\":%u,\"pasids\":%u,\"groups\":%llu,\"seconds\":%.3f,"
		       "\"groups_per_s\":%.0f,\"deferred\":%llu,",
		       s.o.devices, s.o.pasids, (unsigned long long)groups, dt,
		       (double)groups / dt, (unsigned long long)atomic_load(&s.deferred));
		json_path("fault_fd", &s.fd, true);
		json_path("producer", &s.pr, true);
		printf("\"read_calls\":%llu,\"write_calls\":%llu,\"refused_by_kernel\":%llu,"
		       "\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,"
		       "\"lost\":%llu,\"answered_twice\":%llu,\"wrong\":%llu}\n",
		       (unsigned long long)st.read_calls,
		       (unsigned long long)st.write_calls,
		       (unsigned long long)ks.refused,
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.5),
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.99),
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.999),
		       (unsigned long long)lost, (unsigned long long)twice,
		       (unsigned long long)wrong);
	} else {
		printf("  %-10s %10s %10s %10s %9s %6s %6s %6s\n", "path", "groups",
		       "requests", "SUCCESS", "INVALID", "lost", "twice", "wrong");
		if (s.o.paths & PATH_FD)
			row("fault fd", &s.fd);
		if (s.o.paths & PATH_PRODUCER)
			row("producer", &s.pr);
		printf("  %.0f groups/s over %.2f s; %llu answered later from another thread\n",
		       (double)groups / dt, dt,
		       (unsigned long long)atomic_load(&s.deferred));
		printf("  read-to-answer latency (histogram bucket bounds): p50 %llu us, p99 %llu us, p99.9 %llu us\n",
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.5) / 1000,
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.99) / 1000,
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.999) / 1000);
		if (s.o.paths & PATH_FD)
			printf("  fault fd: %llu reads, %llu writes for %llu groups (%.1f groups per read, %.1f answers per write)\n",
			       (unsigned long long)st.read_calls,
			       (unsigned long long)st.write_calls,
			       (unsigned long long)s.fd.groups,
			       st.read_calls ? (double)s.fd.groups / (double)st.read_calls : 0.0,
			       st.write_calls ? (double)s.fd.groups / (double)st.write_calls : 0.0);
		printf("  libiopf: %llu INVALID on its own, %llu answers refused, %llu partial requests dropped\n",
		       (unsigned long long)st.auto_answers,
		       (unsigned long long)st.refused_answers,
		       (unsigned long long)st.partial_dropped);
		printf("%s\n", ok ? "OK: every group answered exactly once, with the right code" :
				    "FAIL: groups lost, answered twice or answered wrongly");
	}
	iopf_ctx_free(s.ctx);
	simfault_free(fa.sf);
	free(s.answers_fd);
	free(s.answers_pr);
	free(s.valid_fd);
	free(s.valid_pr);
	free(s.space);
	free(s.prg_inflight);
	free(s.queue);
	return ok ? 0 : 1;
}
