/* SPDX-License-Identifier: MIT */
/*
 * iopf-vmm-forward - the VMM pattern: forward I/O page faults into a
 * guest's virtual IOMMU and map the guest's answers back.
 *
 * The host side is a fault fd (a simulated iommufd fault object, see
 * common/simfault.h) for three passthrough devices. The handler defers
 * every group and the VMM copies it into an emulated page request queue: a
 * ring of descriptors shaped like a virtual IOMMU's (one per request,
 * guest device id, PASID, PRG index, address, LAST flag). A simulated guest
 * driver consumes the ring and answers with page group responses that name
 * only (guest device, PASID, PRG index); the VMM translates the device id
 * and answers the queue with iopf_respond_prg_many() (iopf_respond_prg()
 * for each, one call). Three acts:
 *   1. a well-behaved guest;
 *   2. a misbehaving guest for one device: duplicate answers, answers for
 *      PRG indexes never sent, answers for a device it does not have -
 *      refused and counted while the other devices carry on;
 *   3. a guest reset with groups in flight: the VMM empties the ring and
 *      answers everything INVALID (iopf_ctx_answer_invalid()), then the
 *      guest's stale answers arrive late and are refused.
 * Every act ends with the devices' own check: each group answered once.
 *
 * Uses libiopf's public API only.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iopf/iopf.h>

#include "common/simfault.h"
#include "common/opt.h"

#define NDEV 3
#define RING 64               /* descriptors in the page request queue */
#define GUEST_MEM_PAGES 1024u /* guest pages the guest can fault in */
#define MAX_RECS 8

/* host iommufd device id <-> guest (virtual) device id */
static const uint32_t host_dev[NDEV] = { 1, 2, 3 };
static const uint32_t guest_dev[NDEV] = { 0x10, 0x18, 0x20 };

/* One page request descriptor in the guest's queue. */
struct prq_desc {
	uint32_t vdev, pasid, prgi, perm;
	uint64_t addr;
	uint8_t pasid_valid, last;
};

/* One page group response from the guest. */
struct prg_resp {
	uint32_t vdev, pasid, prgi, code;
};

/* A group the VMM holds until the ring has room for it. */
struct fwd {
	uint32_t vdev, pasid, prgi, nrec;
	bool pasid_valid;
	struct iopf_record rec[MAX_RECS];
};

struct vmm {
	struct iopf_ctx *ctx;
	struct simfault *sf;
	/* groups waiting for ring space */
	struct fwd *pend;
	size_t npend, pend_head, pend_cap;
	/* the guest's page request queue and its response queue */
	struct prq_desc ring[RING];
	unsigned int head, tail; /* tail: VMM writes, head: guest reads */
	struct prg_resp *resp;
	size_t nresp, resp_cap;
	/* guest behaviour */
	uint32_t bad_vdev;  /* the device it misbehaves for (0: none) */
	bool guest_paused;  /* stops answering (before a reset) */
	struct prg_resp *stale; /* answers it computed but had not sent */
	size_t nstale, stale_cap;
	/* device side: answers per group */
	unsigned char *answers;
	uint64_t raised, success, invalid;
	/* what the VMM saw */
	uint64_t forwarded, guest_answers, accepted, refused, unknown_vdev;
	bool verbose;
};

static int vdev_to_host(uint32_t vdev, uint32_t *dev)
{
	for (int i = 0; i < NDEV; i++)
		if (guest_dev[i] == vdev) {
			*dev = host_dev[i];
			return 0;
		}
	return -ENODEV;
}

static uint32_t host_to_vdev(uint32_t dev)
{
	for (int i = 0; i < NDEV; i++)
		if (host_dev[i] == dev)
			return guest_dev[i];
	return 0;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 256;
	void *q;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return p;
	q = realloc(p, n * elem);
	if (!q) {
		fprintf(stderr, "iopf-vmm-forward: out of memory\n");
		exit(1);
	}
	*cap = n;
	return q;
}

/* ---- host side: the handler defers every group to the guest ---- */

static int forward(struct iopf_group *g, void *ud)
{
	struct vmm *v = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);
	struct fwd *f;

	if (n > MAX_RECS)
		return IOPF_CODE_INVALID; /* larger than our queue allows */
	v->pend = grow(v->pend, &v->pend_cap, v->pend_head + v->npend + 1,
		       sizeof(*v->pend));
	f = &v->pend[v->pend_head + v->npend++];
	f->vdev = host_to_vdev(iopf_group_dev_id(g));
	f->pasid = iopf_group_pasid(g);
	f->pasid_valid = f->pasid != IOPF_NO_PASID;
	f->prgi = iopf_group_prgi(g);
	f->nrec = (uint32_t)n;
	memcpy(f->rec, r, n * sizeof(*r));
	return IOPF_DEFER; /* answered when the guest answers */
}

/* Move held groups into the ring while whole groups fit. */
static void vmm_fill_ring(struct vmm *v)
{
	while (v->npend) {
		struct fwd *f = &v->pend[v->pend_head];

		if (RING - (v->tail - v->head) < f->nrec)
			break;
		for (uint32_t i = 0; i < f->nrec; i++)
			v->ring[v->tail++ % RING] = (struct prq_desc){
				.vdev = f->vdev, .pasid = f->pasid,
				.pasid_valid = f->pasid_valid, .prgi = f->prgi,
				.perm = f->rec[i].perm, .addr = f->rec[i].addr,
				.last = i + 1 == f->nrec,
			};
		v->forwarded++;
		v->pend_head++;
		if (--v->npend == 0)
			v->pend_head = 0;
	}
}

/* The guest's answers, mapped back to host groups by libiopf. */
/* What iopf_respond_prg()'s refusal means, in a guest answer's terms (not
 * strerror's "No such file or directory" for -ENOENT). */
static const char *refusal(int rc)
{
	switch (rc) {
	case -ENOENT: return "no such group outstanding (a late, duplicate or unknown answer)";
	case -ENODEV: return "its device went away";
	case -ENOMEM: return "no memory for the PRG index";
	case -EINVAL: return "bad answer code";
	default: return strerror(-rc);
	}
}

/* The guest's response queue, taken as a whole: its answers in one
 * iopf_respond_prg_many() call (one lock for all), each as
 * iopf_respond_prg() would take it, in order. */
static void vmm_take_answers(struct vmm *v)
{
	struct iopf_prg_answer *a = calloc(v->nresp ? v->nresp : 1, sizeof(*a));
	int *rc = malloc((v->nresp ? v->nresp : 1) * sizeof(*rc));
	size_t *from = malloc((v->nresp ? v->nresp : 1) * sizeof(*from)), n = 0;

	if (!a || !rc || !from) {
		fprintf(stderr, "iopf-vmm-forward: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < v->nresp; i++) {
		struct prg_resp *r = &v->resp[i];
		uint32_t dev;

		v->guest_answers++;
		if (vdev_to_host(r->vdev, &dev)) {
			v->unknown_vdev++; /* the VMM's own check */
			continue;
		}
		a[n] = (struct iopf_prg_answer){ .dev_id = dev, .pasid = r->pasid,
						 .prgi = r->prgi, .code = (int32_t)r->code };
		from[n++] = i;
	}
	iopf_respond_prg_many(v->ctx, a, n, rc);
	for (size_t j = 0; j < n; j++) {
		const struct prg_resp *r = &v->resp[from[j]];

		if (rc[j] == 0)
			v->accepted++;
		else
			v->refused++;
		if (rc[j] && v->verbose)
			printf("    refused: vdev %#x pasid %#x prgi %u: %s\n", r->vdev,
			       r->pasid, r->prgi, refusal(rc[j]));
	}
	free(a);
	free(rc);
	free(from);
	v->nresp = 0;
}

/* ---- the guest driver ---- */

static void guest_send(struct vmm *v, struct prg_resp r)
{
	if (v->guest_paused) { /* computed, not sent: it will come late */
		v->stale = grow(v->stale, &v->stale_cap, v->nstale + 1,
				sizeof(*v->stale));
		v->stale[v->nstale++] = r;
		return;
	}
	v->resp = grow(v->resp, &v->resp_cap, v->nresp + 1, sizeof(*v->resp));
	v->resp[v->nresp++] = r;
}

/* Consume up to `budget` descriptors; answer each group at its LAST. */
static void guest_step(struct vmm *v, unsigned int budget)
{
	while (budget-- && v->head != v->tail) {
		struct prq_desc *d = &v->ring[v->head++ % RING];
		struct prg_resp r = { .vdev = d->vdev, .prgi = d->prgi,
				      .pasid = d->pasid_valid ? d->pasid : IOPF_NO_PASID };

		if (!d->last)
			continue;
		/* the guest's page tables: its memory is GUEST_MEM_PAGES */
		r.code = (d->addr >> 12) < GUEST_MEM_PAGES ? IOPF_CODE_SUCCESS :
							      IOPF_CODE_INVALID;
		guest_send(v, r);
		if (d->vdev == v->bad_vdev) {
			guest_send(v, r); /* duplicate */
			r.prgi = 256 + r.prgi % 256; /* never sent (see --groups) */
			guest_send(v, r);
			r.vdev = 0x99; /* a device it does not have */
			guest_send(v, r);
		}
	}
}

/* ---- the device side ---- */

static void on_device_answer(uint64_t tag, uint32_t code, void *ud)
{
	struct vmm *v = ud;

	v->answers[tag]++;
	if (code == IOPF_CODE_SUCCESS)
		v->success++;
	else
		v->invalid++;
}

static void raise_groups(struct vmm *v, unsigned int per_dev, uint32_t prgi0)
{
	for (unsigned int i = 0; i < per_dev; i++)
		for (int d = 0; d < NDEV; d++) {
			struct iopf_k_pgfault rec[3];
			unsigned int n = 1 + (i + (unsigned int)d) % 3;
			uint64_t page = (i * 7u + (unsigned int)d * 101u) % (GUEST_MEM_PAGES + 64);

			for (unsigned int k = 0; k < n; k++)
				rec[k] = (struct iopf_k_pgfault){
					.flags = IOPF_K_PGFAULT_FLAGS_PASID_VALID |
						 (k + 1 == n ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0),
					.dev_id = host_dev[d], .pasid = 1 + i % 2,
					.grpid = (prgi0 + i) % 512,
					.perm = IOPF_PERM_READ, .addr = (page + k) << 12,
					.length = 4096,
				};
			if (simfault_raise(v->sf, rec, n, v->raised++)) {
				fprintf(stderr, "iopf-vmm-forward: out of memory\n");
				exit(1);
			}
		}
}

/* One turn of the VMM's event loop. */
static void turn(struct vmm *v, unsigned int guest_budget)
{
	struct pollfd p = { .fd = iopf_ctx_get_fd(v->ctx), .events = POLLIN };

	simfault_pump(v->sf);
	poll(&p, 1, 1);
	iopf_ctx_dispatch(v->ctx);
	vmm_fill_ring(v);
	guest_step(v, guest_budget);
	vmm_take_answers(v);
	iopf_ctx_flush(v->ctx);
	simfault_pump(v->sf);
}

static bool act_end(struct vmm *v, const char *name, uint64_t first,
		    uint64_t exp_refused, uint64_t exp_unknown)
{
	uint64_t lost = 0, twice = 0;
	bool ok;

	for (uint64_t i = first; i < v->raised; i++) {
		lost += v->answers[i] == 0;
		twice += v->answers[i] > 1;
	}
	ok = !lost && !twice && v->refused == exp_refused &&
	     v->unknown_vdev == exp_unknown;
	printf("  %-22s %6llu %6llu %7llu %7llu %7llu %7llu %5llu %5llu  %s\n", name,
	       (unsigned long long)(v->raised - first),
	       (unsigned long long)v->forwarded,
	       (unsigned long long)v->success, (unsigned long long)v->invalid,
	       (unsigned long long)v->refused,
	       (unsigned long long)v->unknown_vdev, (unsigned long long)lost,
	       (unsigned long long)twice, ok ? "ok" : "FAIL");
	v->forwarded = v->success = v->invalid = 0;
	v->refused = v->unknown_vdev = v->accepted = v->guest_answers = 0;
	return ok;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iopf-vmm-forward [options]\n"
		"Forward page faults of three passthrough devices into an emulated guest\n"
		"page request queue and map the guest's answers back with libiopf:\n"
		"a well-behaved guest, a misbehaving one, and a guest reset.\n\n"
		"  -g, --groups N   groups per device in each act, 1 to 256 (default 200)\n"
		"  -v, --verbose    print every refused guest answer\n"
		"  -h, --help       this text\n"
		"Exit status: 0 if every act ends with each group answered exactly\n"
		"once and the refusals expected, 1 if not, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "groups", 1, 0, 'g' }, { "verbose", 0, 0, 'v' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct vmm v = { 0 };
	unsigned int per_dev = 200;
	uint64_t first, bad_groups;
	bool ok = true;
	int c;

	while ((c = getopt_long(argc, argv, "g:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'g':
			per_dev = (unsigned int)opt_num("iopf-vmm-forward", "--groups",
							optarg, 1, 256);
			break;
		case 'v': v.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!per_dev || per_dev > 256 || optind != argc) {
		usage(stderr);
		return 2;
	}
	v.answers = calloc((size_t)per_dev * NDEV * 3, 1);
	v.ctx = iopf_ctx_new(NULL);
	v.sf = simfault_new(on_device_answer, &v);
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = SIMFAULT_MSG_RECORDS);
	if (!v.answers || !v.ctx || !v.sf ||
	    !iopf_fault_queue_adopt(v.ctx, simfault_fd(v.sf), 1, &fo)) {
		fprintf(stderr, "iopf-vmm-forward: setup: %s\n", strerror(errno));
		return 1;
	}
	iopf_ctx_set_handler(v.ctx, forward, &v);

	printf("iopf-vmm-forward: %d devices (host ids 1-3 as guest 0x10, 0x18, 0x20), %u groups each per act,\n"
	       "a %d-descriptor page request queue\n", NDEV, per_dev, RING);
	printf("  %-22s %6s %6s %7s %7s %7s %7s %5s %5s\n", "act", "groups",
	       "fwd", "SUCCESS", "INVALID", "refused", "badvdev", "lost", "twice");

	/* Act 1: a well-behaved guest. */
	first = v.raised;
	raise_groups(&v, per_dev, 0);
	for (int i = 0; i < 100000 && simfault_unanswered(v.sf); i++)
		turn(&v, 16);
	ok &= act_end(&v, "1 well-behaved guest", first, 0, 0);

	/* Act 2: the guest misbehaves for one device; the others carry on. */
	first = v.raised;
	v.bad_vdev = guest_dev[1];
	raise_groups(&v, per_dev, 0);
	bad_groups = per_dev;
	for (int i = 0; i < 100000 && simfault_unanswered(v.sf); i++)
		turn(&v, 16);
	/* per bad group: a duplicate and a never-sent PRG index refused by
	 * libiopf, an unknown device refused by the VMM */
	ok &= act_end(&v, "2 misbehaving guest", first, 2 * bad_groups, bad_groups);
	v.bad_vdev = 0;

	/* Act 3: the guest resets with groups in flight. */
	first = v.raised;
	raise_groups(&v, per_dev, 0);
	for (int i = 0; i < 20; i++)
		turn(&v, 16);
	v.guest_paused = true; /* it stops answering, then resets */
	for (int i = 0; i < 20; i++)
		turn(&v, 16);
	{
		unsigned int in_ring = v.tail - v.head;
		size_t held = v.npend;
		int answered = 0;

		/* The reset: the queue is emptied, every group answered. */
		v.head = v.tail = 0;
		v.npend = v.pend_head = 0;
		for (int d = 0; d < NDEV; d++)
			answered += iopf_ctx_answer_invalid(v.ctx, host_dev[d], 0,
							    IOPF_ALL_PASIDS);
		for (int d = 0; d < NDEV; d++)
			if (iopf_ctx_drain(v.ctx, host_dev[d], 0, IOPF_ALL_PASIDS, 1000))
				ok = false;
		printf("    reset: %u descriptors in the queue, %zu groups held by the VMM, %zu answers\n"
		       "    computed but not sent; %d groups answered INVALID by the VMM\n",
		       in_ring, held, v.nstale, answered);
	}
	/* The rest of the act's groups arrive after the reset. */
	v.guest_paused = false;
	for (int i = 0; i < 100000 && simfault_unanswered(v.sf); i++)
		turn(&v, 16);
	/* Then the guest's stale answers arrive, late. */
	uint64_t late = v.nstale;

	for (size_t i = 0; i < v.nstale; i++)
		guest_send(&v, v.stale[i]);
	v.nstale = 0;
	vmm_take_answers(&v);
	ok &= act_end(&v, "3 guest reset", first, late, 0);

	IOPF_OPTS(iopf_stats, st);
	iopf_ctx_get_stats(v.ctx, &st);
	printf("  libiopf: %llu groups, %llu answers refused (%llu matched no group), %llu INVALID on its own\n",
	       (unsigned long long)st.groups, (unsigned long long)st.refused_answers,
	       (unsigned long long)st.unmatched_answers,
	       (unsigned long long)st.auto_answers);
	printf("%s\n", ok ? "OK: every group answered exactly once; bad guest answers refused and counted" :
			    "FAIL");
	iopf_ctx_free(v.ctx);
	simfault_free(v.sf);
	free(v.answers);
	free(v.pend);
	free(v.resp);
	free(v.stale);
	return ok ? 0 : 1;
}
