/* SPDX-License-Identifier: MIT */
/*
 * iopf-mapper - the accelerator-runtime pattern on the real kernel: map
 * memory on demand instead of pinning it all up front.
 *
 * A device is attached to a fault-capable page table whose IOAS starts
 * empty. When the device touches a page, the kernel delivers a page
 * request through an iommufd fault object; the handler maps that one page
 * of the buffer into the IOAS (IOMMU_IOAS_MAP) and answers SUCCESS, so the
 * device's retry finds it. Addresses outside the buffer are answered
 * INVALID. At the end the kernel is asked which pages are mapped.
 *
 * The "device" is the iommufd selftest mock (CONFIG_IOMMUFD_TEST), driven
 * through examples/common/mockdev.c: it raises real page requests on demand.
 * The table is a plain paging table on the IOAS where iopf_probe() says the
 * kernel takes a fault id there (6.13+); Linux 6.12 takes one only on a
 * nested table, so there it is a nested one on a NEST_PARENT table over the
 * IOAS. Run it inside the test kernel:
 *   ../shared/kernel/vmrun -- build/examples/iopf-mapper
 *   ../shared/kernel/vmrun --kernel ../shared/kernel/bzImage-paging -- build/examples/iopf-mapper
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
#include <sys/mman.h>
#include <unistd.h>

#include <iopf/iopf.h>

#include "common/mockdev.h"
#include "common/opt.h"

#define IOVA_BASE 0x4000000ull
#define PAGE 4096ull

struct mapper {
	struct kmock *m;
	char *buf;
	unsigned int pages;
	unsigned char *mapped; /* per buffer page */
	unsigned int nmapped, answered;
};

static int on_fault(struct iopf_group *g, void *ud)
{
	struct mapper *mp = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);
	int code = IOPF_CODE_SUCCESS;

	for (size_t i = 0; i < n; i++) {
		uint64_t iova = r[i].addr & ~(PAGE - 1);
		uint64_t idx = (iova - IOVA_BASE) / PAGE;

		printf("fault: dev %u prgi %u addr %#llx %s%s: ",
		       iopf_group_dev_id(g), iopf_group_prgi(g),
		       (unsigned long long)r[i].addr,
		       r[i].perm & IOPF_PERM_READ ? "r" : "",
		       r[i].perm & IOPF_PERM_WRITE ? "w" : "");
		if (iova < IOVA_BASE || idx >= mp->pages) {
			printf("outside the buffer -> INVALID\n");
			code = IOPF_CODE_INVALID;
			continue;
		}
		if (mp->mapped[idx]) {
			printf("page already mapped -> SUCCESS\n");
			continue;
		}
		if (kmock_map(mp->m, mp->buf + idx * PAGE, PAGE, iova)) {
			printf("IOAS_MAP failed: %s -> INVALID\n", strerror(errno));
			code = IOPF_CODE_INVALID;
			continue;
		}
		mp->mapped[idx] = 1;
		mp->nmapped++;
		printf("mapped IOVA %#llx -> buffer page %llu -> SUCCESS\n",
		       (unsigned long long)iova, (unsigned long long)idx);
	}
	mp->answered++;
	return code;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iopf-mapper [options]\n"
		"Map a buffer into a device's IOAS one page at a time, as the device\n"
		"faults on it (real kernel: run inside ../shared/kernel/vmrun).\n\n"
		"  -p, --pages N     buffer size in pages (default 16)\n"
		"  -t, --touch LIST  pages the device touches, comma-separated buffer\n"
		"                    page numbers; one past the buffer or more is an\n"
		"                    address outside it (default 3,7,3,12,40)\n"
		"  -h, --help        this text\n"
		"Exit status: 0 if every touched page in the buffer was mapped (and no\n"
		"other), every fault answered; 1 if not; 2 on bad usage; 77 without\n"
		"/dev/iommu and the iommufd selftest.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pages", 1, 0, 'p' }, { "touch", 1, 0, 't' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct kmock m;
	struct mapper mp = { .m = &m, .pages = 16 };
	char touch_def[] = "3,7,3,12,40", *touch = touch_def;
	unsigned int faults = 0, bad = 0, failed = 0;
	uint32_t fault_id, parent_id = 0, hwpt_id;
	struct iopf_ctx *ctx;
	bool paging;
	int c, rc;

	while ((c = getopt_long(argc, argv, "p:t:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			mp.pages = (unsigned int)opt_num("iopf-mapper", "--pages",
							 optarg, 1, 65536);
			break;
		case 't': touch = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!mp.pages || mp.pages > 65536 || optind != argc) {
		usage(stderr);
		return 2;
	}
	{ /* every page of --touch is a number, checked before any fault */
		char *copy = strdup(touch), *save = NULL;

		for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
		     tok = strtok_r(NULL, ",", &save))
			(void)opt_num("iopf-mapper", "--touch (page)", tok, 0, 1u << 20);
		free(copy);
	}
	if (access("/dev/iommu", R_OK | W_OK)) {
		fprintf(stderr, "iopf-mapper: no /dev/iommu (%s): run it inside the iommufd test kernel,\n"
			"  ../shared/kernel/vmrun -- %s\n", strerror(errno), argv[0]);
		return 77;
	}
	rc = kmock_open(&m);
	if (rc) {
		fprintf(stderr, "iopf-mapper: the iommufd selftest mock device: %s\n",
			strerror(-rc));
		return 77;
	}
	/* Which kind of table takes a fault id here: ask the kernel. */
	{
		IOPF_OPTS(iopf_probe_info, info);

		rc = iopf_probe(m.fd, m.idev_id, &info);
		if (rc) {
			fprintf(stderr, "iopf-mapper: iopf_probe: %s\n", strerror(-rc));
			return 1;
		}
		paging = info.flags & IOPF_PROBE_PAGING_FAULT;
	}
	printf("page table: %s\n", paging ?
	       "plain paging table on the IOAS (iopf_probe: this kernel takes a fault id there, Linux 6.13+)" :
	       "nested on a NEST_PARENT table (iopf_probe: no fault id on a paging table here, as in Linux 6.12)");
	ctx = iopf_ctx_new(NULL);
	if (!ctx || !iopf_fault_queue_alloc(ctx, m.fd, NULL, &fault_id) ||
	    (paging ? kmock_hwpt_paging_iopf(&m, m.idev_id, fault_id, &hwpt_id) :
		      kmock_hwpt_nested_iopf(&m, m.idev_id, fault_id, &parent_id,
					     &hwpt_id)) ||
	    kmock_replace(&m, m.stdev_id, hwpt_id)) {
		fprintf(stderr, "iopf-mapper: setup: %s\n", strerror(errno));
		return 1;
	}
	if (paging)
		parent_id = hwpt_id; /* the table the IOAS maps show in */
	mp.buf = mmap(NULL, mp.pages * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mp.mapped = calloc(mp.pages, 1);
	if (mp.buf == MAP_FAILED || !mp.mapped) {
		fprintf(stderr, "iopf-mapper: out of memory\n");
		return 1;
	}
	iopf_ctx_set_handler(ctx, on_fault, &mp);
	if (paging)
		printf("device %u on fault-capable paging table %u, fault queue %u;\n",
		       m.idev_id, hwpt_id, fault_id);
	else
		printf("device %u on fault-capable table %u (nested on %u), fault queue %u;\n",
		       m.idev_id, hwpt_id, parent_id, fault_id);
	printf("buffer of %u pages at IOVA %#llx, none mapped up front\n",
	       mp.pages, IOVA_BASE);

	/* The device touches pages; each touch is a page request. */
	for (char *tok = strtok(touch, ","); tok; tok = strtok(NULL, ",")) {
		uint64_t idx = opt_num("iopf-mapper", "--touch (page)", tok, 0,
				       1u << 20);
		uint64_t addr = IOVA_BASE + idx * PAGE + 0x10 * (faults % 4);

		if (kmock_trigger(&m, m.idev_id, 0, faults % 512,
				  IOPF_PERM_READ | IOPF_PERM_WRITE, addr)) {
			fprintf(stderr, "iopf-mapper: trigger: %s\n", strerror(errno));
			return 1;
		}
		faults++;
		bad += idx >= mp.pages;
		/* The event loop: poll the context fd, dispatch. */
		for (int i = 0; i < 1000 && mp.answered < faults; i++) {
			struct pollfd p = { .fd = iopf_ctx_get_fd(ctx), .events = POLLIN };

			poll(&p, 1, 10);
			iopf_ctx_dispatch(ctx);
		}
	}
	iopf_ctx_flush(ctx);

	/* Ask the kernel what the device's table now maps. */
	for (unsigned int i = 0; i < mp.pages; i++) {
		uint64_t iova = IOVA_BASE + i * PAGE;
		bool is = kmock_check_map(&m, parent_id, iova, PAGE,
					  mp.buf + i * PAGE) == 0;

		if (is != (bool)mp.mapped[i])
			failed++;
		if (mp.mapped[i] || is)
			printf("check: IOVA %#llx %s buffer page %u: %s\n",
			       (unsigned long long)iova, is ? "maps" : "does not map",
			       i, is == (bool)mp.mapped[i] ? "ok" : "WRONG");
	}
	IOPF_OPTS(iopf_stats, st);
	iopf_ctx_get_stats(ctx, &st);
	printf("%u faults: %llu SUCCESS, %llu INVALID; %u of %u pages mapped on demand, "
	       "the other %u never pinned\n",
	       faults, (unsigned long long)st.answers_success,
	       (unsigned long long)st.answers_invalid, mp.nmapped, mp.pages,
	       mp.pages - mp.nmapped);
	if (st.answers_success + st.answers_invalid != faults ||
	    st.answers_invalid != bad)
		failed++;
	iopf_ctx_free(ctx);
	kmock_close(&m);
	munmap(mp.buf, mp.pages * PAGE);
	free(mp.mapped);
	printf("%s\n", failed ? "FAIL" : "OK: each touched page mapped on demand, checked by the kernel");
	return failed ? 1 : 0;
}
