/* SPDX-License-Identifier: MIT */
/*
 * mockdev.h - for iopf-mapper, a trimmed copy of libiopf's test helper
 * (tests/kernel/kmock.h), on the examples' own iommufd-uapi.h:
 * drive the real kernel's iommufd and its selftest mock device
 * (CONFIG_IOMMUFD_TEST): IOAS, mock devices, fault-capable page tables,
 * attach/replace, and raising real page requests. Layouts follow
 * drivers/iommu/iommufd/iommufd_test.h of Linux 6.12.
 */
#ifndef IOPF_EXAMPLES_MOCKDEV_H
#define IOPF_EXAMPLES_MOCKDEV_H

#include <stdint.h>

#include "iommufd-uapi.h"

struct kmock {
	int fd;            /* /dev/iommu */
	uint32_t ioas_id;
	uint32_t stdev_id; /* the selftest object (destroy = unplug) */
	uint32_t hwpt_id;  /* the mock domain's own table */
	uint32_t idev_id;  /* the iommufd device id faults carry */
};

/* Open /dev/iommu, make an IOAS and a mock device on it. 0 or -errno. */
int kmock_open(struct kmock *m);
void kmock_close(struct kmock *m);
/* A fault-capable plain paging table on the IOAS (Linux 6.13+). */
int kmock_hwpt_paging_iopf(struct kmock *m, uint32_t idev, uint32_t fault_id,
			   uint32_t *hwpt_id);
/* A NEST_PARENT table, then a fault-capable nested table on it. */
int kmock_hwpt_nested_iopf(struct kmock *m, uint32_t idev, uint32_t fault_id,
			   uint32_t *parent_id, uint32_t *hwpt_id);
/* Attach (replace) the mock device's table. */
int kmock_replace(struct kmock *m, uint32_t stdev_id, uint32_t pt_id);
/* Raise one page request (single-record group, LAST set). */
int kmock_trigger(struct kmock *m, uint32_t idev, uint32_t pasid,
		  uint32_t grpid, uint32_t perm, uint64_t addr);
/* Map user memory at a fixed IOVA of the IOAS. */
int kmock_map(struct kmock *m, void *buf, uint64_t len, uint64_t iova);
/* The mock's check: is [iova, iova+len) of table hwpt mapped to buf? */
int kmock_check_map(struct kmock *m, uint32_t hwpt_id, uint64_t iova,
		    uint64_t len, void *buf);

#endif
