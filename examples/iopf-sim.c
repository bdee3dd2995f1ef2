/* SPDX-License-Identifier: MIT */
/*
 * iopf-sim - simulated PRI devices feeding libiopf, no hardware needed.
 *
 * Each device sends Page Request Groups one request at a time (partial
 * requests of several groups interleaved, then each group's LAST), the way
 * an emulated PRI device in a VMM would. A handler resolves every page
 * against a simulated address space; a share of groups is answered later
 * from another thread, as an asynchronous resolver would. At the end every
 * group must have had exactly one answer: the exit status says so.
 *
 * Uses libiopf's public API only.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iopf/iopf.h>

struct opts {
	unsigned int devices, pasids, groups, group_size, interleave;
	unsigned int defer_pct;
	bool json;
};

struct sim {
	struct opts o;
	struct iopf_ctx *ctx;
	unsigned char *answers; /* per group: answers received */
	atomic_ulong pages_mapped, answered, deferred;
	/* deferred answers, handed to the resolver thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	iopf_handle_t *queue;
	size_t qn, qcap;
	bool done;
};

static uint32_t group_id(const struct sim *s, uint32_t dev, uint32_t prgi)
{
	return dev * s->o.groups + prgi;
}

/* The device side: the answer to one of its groups. */
static void on_response(const struct iopf_response *r, void *ud)
{
	struct sim *s = ud;

	s->answers[group_id(s, r->dev_id, r->prgi)]++;
	atomic_fetch_add(&s->answered, 1);
}

/* The resolver: "map" each page (here: a simulated address space where
 * every page below 1 TiB is valid). */
static int handle(struct iopf_group *g, void *ud)
{
	struct sim *s = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);

	for (size_t i = 0; i < n; i++) {
		if (r[i].addr >= (1ull << 40))
			return IOPF_CODE_INVALID;
		atomic_fetch_add(&s->pages_mapped, 1);
	}
	if ((iopf_group_prgi(g) * 37u) % 100 < s->o.defer_pct) {
		pthread_mutex_lock(&s->lock);
		if (s->qn == s->qcap) {
			s->qcap = s->qcap ? s->qcap * 2 : 256;
			s->queue = realloc(s->queue, s->qcap * sizeof(*s->queue));
		}
		s->queue[s->qn++] = iopf_group_handle(g);
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		atomic_fetch_add(&s->deferred, 1);
		return IOPF_DEFER;
	}
	return IOPF_CODE_SUCCESS;
}

static void *resolver(void *arg)
{
	struct sim *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->qn && !s->done)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->qn && s->done)
			break;
		iopf_handle_t h = s->queue[--s->qn];

		pthread_mutex_unlock(&s->lock);
		iopf_respond(s->ctx, h, IOPF_CODE_SUCCESS);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iopf-sim [options]\n"
		"Simulated PRI devices send page requests one at a time; libiopf\n"
		"assembles the groups, calls the handler and answers each once.\n\n"
		"  -d, --devices N      devices (default 4)\n"
		"  -p, --pasids N       PASIDs per device (default 2)\n"
		"  -g, --groups N       groups per device (default 20000)\n"
		"  -s, --group-size N   requests per group (default 3)\n"
		"  -i, --interleave N   groups in flight per device whose partial\n"
		"                       requests interleave (default 8)\n"
		"  -D, --defer PCT      share of groups answered later from another\n"
		"                       thread (default 25)\n"
		"  -j, --json           print the summary as JSON\n"
		"  -h, --help           this text\n"
		"Exit status: 0 if every group got exactly one answer, 1 if not,\n"
		"2 on bad usage.\n");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pump(struct sim *s)
{
	while (iopf_ctx_dispatch(s->ctx) > 0)
		;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "devices", 1, 0, 'd' }, { "pasids", 1, 0, 'p' },
		{ "groups", 1, 0, 'g' },  { "group-size", 1, 0, 's' },
		{ "interleave", 1, 0, 'i' }, { "defer", 1, 0, 'D' },
		{ "json", 0, 0, 'j' },    { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct sim s = { .o = { 4, 2, 20000, 3, 8, 25, false } };
	unsigned long total, lost = 0, twice = 0;
	struct iopf_source *prod;
	pthread_t th;
	double t0, dt;
	int c;

	while ((c = getopt_long(argc, argv, "d:p:g:s:i:D:jh", lo, NULL)) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 0) : 0;

		switch (c) {
		case 'd': s.o.devices = (unsigned int)v; break;
		case 'p': s.o.pasids = (unsigned int)v; break;
		case 'g': s.o.groups = (unsigned int)v; break;
		case 's': s.o.group_size = (unsigned int)v; break;
		case 'i': s.o.interleave = (unsigned int)v; break;
		case 'D': s.o.defer_pct = (unsigned int)v; break;
		case 'j': s.o.json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!s.o.devices || !s.o.pasids || !s.o.groups || !s.o.group_size ||
	    !s.o.interleave || s.o.defer_pct > 100) {
		usage(stderr);
		return 2;
	}
	total = (unsigned long)s.o.devices * s.o.groups;
	s.answers = calloc(total, 1);
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);

	s.ctx = iopf_ctx_new(NULL);
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_response, .userdata = &s,
		  .partial_cap = s.o.interleave * s.o.group_size);
	prod = s.ctx ? iopf_producer_new(s.ctx, &po) : NULL;
	if (!prod) {
		fprintf(stderr, "iopf-sim: %s\n", strerror(errno));
		return 1;
	}
	iopf_ctx_set_handler(s.ctx, handle, &s);
	pthread_create(&th, NULL, resolver, &s);

	t0 = now_s();
	/* Devices send in rounds: `interleave` groups at a time per device,
	 * request k of each group before request k+1 of any. */
	for (unsigned int base = 0; base < s.o.groups; base += s.o.interleave) {
		unsigned int end = base + s.o.interleave;

		if (end > s.o.groups)
			end = s.o.groups;
		for (unsigned int k = 0; k < s.o.group_size; k++)
			for (unsigned int d = 0; d < s.o.devices; d++)
				for (unsigned int g = base; g < end; g++) {
					struct iopf_request r = {
						.flags = IOPF_F_PASID_VALID |
							 (k + 1 == s.o.group_size ? IOPF_F_LAST_PAGE : 0),
						.dev_id = d,
						.pasid = 1 + g % s.o.pasids,
						.prgi = g,
						.perm = IOPF_PERM_READ,
						.addr = ((uint64_t)g * s.o.group_size + k) << 12,
					};
					iopf_producer_submit(prod, &r);
				}
		pump(&s);
	}
	for (unsigned int d = 0; d < s.o.devices; d++)
		iopf_ctx_drain(s.ctx, d, 0, IOPF_ALL_PASIDS, 10000);
	dt = now_s() - t0;
	pthread_mutex_lock(&s.lock);
	s.done = true;
	pthread_cond_signal(&s.cond);
	pthread_mutex_unlock(&s.lock);
	pthread_join(th, NULL);

	IOPF_OPTS(iopf_stats, st);
	iopf_ctx_get_stats(s.ctx, &st);
	for (unsigned long i = 0; i < total; i++) {
		lost += s.answers[i] == 0;
		twice += s.answers[i] > 1;
	}
	if (s.o.json) {
		printf("{\"devices\":%u,\"groups\":%lu,\"requests\":%llu,"
		       "\"seconds\":%.3f,\"groups_per_s\":%.0f,\"deferred\":%lu,"
		       "\"p50_ns\":%llu,\"p99_ns\":%llu,\"lost\":%lu,"
		       "\"answered_twice\":%lu}\n",
		       s.o.devices, total, (unsigned long long)st.records, dt,
		       (double)total / dt, atomic_load(&s.deferred),
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.5),
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.99),
		       lost, twice);
	} else {
		printf("iopf-sim: %u devices x %u groups of %u requests (%u interleaved, %u PASIDs)\n",
		       s.o.devices, s.o.groups, s.o.group_size, s.o.interleave,
		       s.o.pasids);
		printf("  %-28s %12llu\n", "requests submitted", (unsigned long long)st.records);
		printf("  %-28s %12llu\n", "groups assembled", (unsigned long long)st.groups);
		printf("  %-28s %12lu\n", "answered later (deferred)", atomic_load(&s.deferred));
		printf("  %-28s %12llu\n", "answers SUCCESS", (unsigned long long)st.answers_success);
		printf("  %-28s %12llu\n", "answers INVALID", (unsigned long long)st.answers_invalid);
		printf("  %-28s %12.0f\n", "groups per second", (double)total / dt);
		printf("  %-28s %9llu ns\n", "latency p50 (bucket bound)",
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.5));
		printf("  %-28s %9llu ns\n", "latency p99 (bucket bound)",
		       (unsigned long long)iopf_stats_latency_ns(&st, 0.99));
		printf("  %-28s %12lu\n", "groups never answered", lost);
		printf("  %-28s %12lu\n", "groups answered twice", twice);
		printf("%s\n", lost || twice ? "FAIL" : "OK: every group answered exactly once");
	}
	iopf_ctx_free(s.ctx);
	free(s.answers);
	free(s.queue);
	return lost || twice ? 1 : 0;
}
