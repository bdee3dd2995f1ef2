/* SPDX-License-Identifier: MIT */
/*
 * iommufd-uapi.h - the part of the kernel's iommufd uapi (Linux 6.11+,
 * include/uapi/linux/iommufd.h) the examples use: the fault object's
 * record and answer layouts, and the ioctls the mapper makes. Debian 12's
 * linux-libc-dev (6.1) has no linux/iommufd.h, so the examples carry their
 * own copy, like a program of yours would; where your system has a recent
 * enough <linux/iommufd.h>, use its iommu_* names instead. Nothing here is
 * libiopf's API (which never shows kernel layouts). Sizes and offsets are
 * facts of the uapi and are checked below.
 */
#ifndef IOPF_EXAMPLES_IOMMUFD_UAPI_H
#define IOPF_EXAMPLES_IOMMUFD_UAPI_H

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

#define IOPF_K_HWPT_ALLOC_NEST_PARENT (1u << 0)
#define IOPF_K_HWPT_FAULT_ID_VALID (1u << 2)

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

/* One record of a page request group, as read() from the fault fd
 * (struct iommu_hwpt_pgfault). */
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

/* One answer, as write() to the fault fd (struct iommu_hwpt_page_response). */
struct iopf_k_page_response {
	uint32_t cookie;
	uint32_t code;
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
_Static_assert(IOPF_K_HWPT_ALLOC == 0x3b89, "hwpt alloc ioctl");

#endif /* IOPF_EXAMPLES_IOMMUFD_UAPI_H */
