/* SPDX-License-Identifier: MIT */
/*
 * kabi.h - the iommufd fault object's kernel ABI, as libiopf's own
 * definitions: Debian 12's linux-libc-dev (6.1) has no linux/iommufd.h.
 * Every size and offset is a fact of the uapi (Linux 6.11+) and is checked
 * below; where the system has linux/iommufd.h, it is checked against that.
 */
#ifndef IOPF_KABI_H
#define IOPF_KABI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define IOPF_K_TYPE ';'
#define IOPF_K_CMD_BASE 0x80
#define IOPF_K_DESTROY _IO(IOPF_K_TYPE, 0x80)
#define IOPF_K_IOAS_ALLOC _IO(IOPF_K_TYPE, 0x81)
#define IOPF_K_IOAS_MAP _IO(IOPF_K_TYPE, 0x85)
#define IOPF_K_IOAS_UNMAP _IO(IOPF_K_TYPE, 0x86)
#define IOPF_K_HWPT_ALLOC _IO(IOPF_K_TYPE, 0x89)
#define IOPF_K_FAULT_QUEUE_ALLOC _IO(IOPF_K_TYPE, 0x8e)
#define IOPF_K_GET_HW_INFO _IO(IOPF_K_TYPE, 0x8a)
#define IOPF_K_VEVENTQ_ALLOC _IO(IOPF_K_TYPE, 0x93) /* Linux 6.15+ */

#define IOPF_K_HWPT_ALLOC_NEST_PARENT (1u << 0)
#define IOPF_K_HWPT_FAULT_ID_VALID (1u << 2)
#define IOPF_K_HWPT_ALLOC_PASID (1u << 3) /* 6.15+ */

/* GET_HW_INFO out_data_type -> the HWPT_ALLOC data_type of a nested
 * (stage-1) table on that IOMMU (iopf_probe()). */
#define IOPF_K_HW_INFO_INTEL_VTD 1u
#define IOPF_K_HW_INFO_ARM_SMMUV3 2u
#define IOPF_K_HW_INFO_SELFTEST 0xfeedbeefu
#define IOPF_K_HWPT_DATA_VTD_S1 1u
#define IOPF_K_HWPT_DATA_ARM_SMMUV3 2u
#define IOPF_K_HWPT_DATA_SELFTEST 0xdeadu
#define IOPF_K_SELFTEST_IOTLB_DEFAULT 0xbadbeefu

#define IOPF_K_PGFAULT_FLAGS_PASID_VALID (1u << 0)
#define IOPF_K_PGFAULT_FLAGS_LAST_PAGE (1u << 1)
#define IOPF_K_PGFAULT_FLAGS_ALL 3u

#define IOPF_K_PAGE_RESP_SUCCESS 0u
#define IOPF_K_PAGE_RESP_INVALID 1u

struct iopf_k_destroy {
	uint32_t size;
	uint32_t id;
};

struct iopf_k_fault_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_fault_id;
	uint32_t out_fault_fd;
};

struct iopf_k_ioas_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_ioas_id;
};

#define IOPF_K_IOAS_MAP_FIXED_IOVA (1u << 0)
#define IOPF_K_IOAS_MAP_WRITEABLE (1u << 1)
#define IOPF_K_IOAS_MAP_READABLE (1u << 2)

struct iopf_k_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t reserved;
	uint64_t user_va;
	uint64_t length;
	uint64_t iova;
};

struct iopf_k_hwpt_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pt_id;
	uint32_t out_hwpt_id;
	uint32_t reserved;
	uint32_t data_type;
	uint32_t data_len;
	uint64_t data_uptr;
	uint32_t fault_id;
	uint32_t reserved2;
};

/* IOMMU_GET_HW_INFO up to __reserved (its minimum size). */
struct iopf_k_hw_info {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t data_len;
	uint64_t data_uptr;
	uint32_t out_data_type;
	uint32_t reserved;
};

/* One record of a page request group, as read() from the fault fd. */
struct iopf_k_pgfault {
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pasid;
	uint32_t grpid;
	uint32_t perm;
	uint32_t reserved;
	uint64_t addr;
	uint32_t length;
	uint32_t cookie;
};

/* One answer, as write() to the fault fd. */
struct iopf_k_page_response {
	uint32_t cookie;
	uint32_t code;
};

/* vIOMMU event queues (Linux 6.15+, drivers/iommu/iommufd/eventq.c): a
 * read() returns whole events, each a header then a payload whose size
 * the queue's type fixes; a lost-events header has no payload. Sequence
 * numbers count every event queued, lost ones too, modulo INT_MAX + 1. */
#define IOPF_K_VEVENTQ_FLAG_LOST_EVENTS (1u << 0)
#define IOPF_K_VEVENTQ_TYPE_ARM_SMMUV3 1u     /* struct iommu_vevent_arm_smmuv3 */
#define IOPF_K_VEVENTQ_TYPE_TEGRA241_CMDQV 2u /* iommu_vevent_tegra241_cmdqv */
#define IOPF_K_VEVENT_ARM_SMMUV3_LEN 32u      /* __aligned_le64 evt[4] */
#define IOPF_K_VEVENT_TEGRA241_CMDQV_LEN 16u  /* __aligned_le64 lvcmdq_err_map[2] */

struct iopf_k_veventq_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t viommu_id;
	uint32_t type;
	uint32_t veventq_depth;
	uint32_t out_veventq_id;
	uint32_t out_veventq_fd;
	uint32_t reserved;
};

struct iopf_k_vevent_header {
	uint32_t flags;
	uint32_t sequence;
};

#define IOPF_K_ASSERT_AT(s, f, off)                                         \
	_Static_assert(offsetof(struct s, f) == (off), #s "." #f " offset")

_Static_assert(sizeof(struct iopf_k_pgfault) == 40, "pgfault size");
IOPF_K_ASSERT_AT(iopf_k_pgfault, flags, 0);
IOPF_K_ASSERT_AT(iopf_k_pgfault, dev_id, 4);
IOPF_K_ASSERT_AT(iopf_k_pgfault, pasid, 8);
IOPF_K_ASSERT_AT(iopf_k_pgfault, grpid, 12);
IOPF_K_ASSERT_AT(iopf_k_pgfault, perm, 16);
IOPF_K_ASSERT_AT(iopf_k_pgfault, reserved, 20);
IOPF_K_ASSERT_AT(iopf_k_pgfault, addr, 24);
IOPF_K_ASSERT_AT(iopf_k_pgfault, length, 32);
IOPF_K_ASSERT_AT(iopf_k_pgfault, cookie, 36);
_Static_assert(sizeof(struct iopf_k_page_response) == 8, "response size");
IOPF_K_ASSERT_AT(iopf_k_page_response, cookie, 0);
IOPF_K_ASSERT_AT(iopf_k_page_response, code, 4);
_Static_assert(sizeof(struct iopf_k_fault_alloc) == 16, "fault alloc size");
IOPF_K_ASSERT_AT(iopf_k_fault_alloc, out_fault_fd, 12);
_Static_assert(sizeof(struct iopf_k_hwpt_alloc) == 48, "hwpt alloc size");
IOPF_K_ASSERT_AT(iopf_k_hwpt_alloc, fault_id, 40);
_Static_assert(sizeof(struct iopf_k_ioas_map) == 40, "ioas map size");
_Static_assert(sizeof(struct iopf_k_ioas_alloc) == 12, "ioas alloc size");
_Static_assert(IOPF_K_FAULT_QUEUE_ALLOC == 0x3b8e, "fault alloc ioctl");
_Static_assert(sizeof(struct iopf_k_veventq_alloc) == 32, "veventq alloc size");
IOPF_K_ASSERT_AT(iopf_k_veventq_alloc, veventq_depth, 16);
IOPF_K_ASSERT_AT(iopf_k_veventq_alloc, out_veventq_fd, 24);
_Static_assert(sizeof(struct iopf_k_vevent_header) == 8, "vevent header size");
_Static_assert(IOPF_K_VEVENTQ_ALLOC == 0x3b93, "veventq alloc ioctl");
_Static_assert(IOPF_K_HWPT_ALLOC == 0x3b89, "hwpt alloc ioctl");
_Static_assert(sizeof(struct iopf_k_hw_info) == 32, "hw info size");
IOPF_K_ASSERT_AT(iopf_k_hw_info, out_data_type, 24);

/* Where the system has the uapi header, hold our copy against it. */
#if defined(__has_include)
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#if defined(IOMMU_FAULT_QUEUE_ALLOC)
_Static_assert(sizeof(struct iommu_hwpt_pgfault) ==
		       sizeof(struct iopf_k_pgfault), "uapi pgfault");
_Static_assert(offsetof(struct iommu_hwpt_pgfault, cookie) ==
		       offsetof(struct iopf_k_pgfault, cookie), "uapi cookie");
_Static_assert(offsetof(struct iommu_hwpt_pgfault, addr) ==
		       offsetof(struct iopf_k_pgfault, addr), "uapi addr");
_Static_assert(sizeof(struct iommu_hwpt_page_response) ==
		       sizeof(struct iopf_k_page_response), "uapi response");
_Static_assert(IOMMU_FAULT_QUEUE_ALLOC == IOPF_K_FAULT_QUEUE_ALLOC,
	       "uapi fault alloc ioctl");
_Static_assert(IOMMU_HWPT_FAULT_ID_VALID == IOPF_K_HWPT_FAULT_ID_VALID,
	       "uapi fault id flag");
#define IOPF_KABI_CHECKED_AGAINST_UAPI 1
#endif
#if defined(IOMMU_VEVENTQ_ALLOC)
_Static_assert(IOMMU_VEVENTQ_ALLOC == IOPF_K_VEVENTQ_ALLOC, "uapi veventq ioctl");
_Static_assert(sizeof(struct iommu_veventq_alloc) ==
		       sizeof(struct iopf_k_veventq_alloc), "uapi veventq alloc");
_Static_assert(sizeof(struct iommufd_vevent_header) ==
		       sizeof(struct iopf_k_vevent_header), "uapi vevent header");
_Static_assert(IOMMU_VEVENTQ_FLAG_LOST_EVENTS == IOPF_K_VEVENTQ_FLAG_LOST_EVENTS,
	       "uapi lost events flag");
_Static_assert(sizeof(struct iommu_vevent_arm_smmuv3) ==
		       IOPF_K_VEVENT_ARM_SMMUV3_LEN, "uapi smmuv3 event");
#endif
#endif
#endif

#endif /* IOPF_KABI_H */
