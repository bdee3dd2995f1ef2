/* SPDX-License-Identifier: MIT */
/*
 * probe.c - iopf_probe(): what the running kernel's iommufd allows, found
 * by trying each thing on objects made for the purpose and destroyed
 * before returning. Never by version number: distribution kernels carry
 * backports (the test kernel's bzImage-paging is 6.12 with 6.13's paging
 * faults), so only the kernel itself can say.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "internal.h"

static int k_ioctl(int fd, unsigned long req, void *arg)
{
	return sys_ioctl(fd, req, arg) ? -errno : 0;
}

static void destroy(int fd, uint32_t id)
{
	iopf__kobj_drop(fd, -1, id);
}

/* IOMMU_HWPT_ALLOC; 0 (and *out) or -errno. */
static int hwpt(int fd, uint32_t flags, uint32_t dev, uint32_t pt,
		uint32_t fault_id, uint32_t type, const void *data,
		uint32_t len, uint32_t *out)
{
	struct iopf_k_hwpt_alloc a = {
		.size = sizeof(a), .flags = flags, .dev_id = dev, .pt_id = pt,
		.data_type = type, .data_len = len,
		.data_uptr = (uint64_t)(uintptr_t)data, .fault_id = fault_id,
	};
	int rc = k_ioctl(fd, IOPF_K_HWPT_ALLOC, &a);

	*out = rc ? 0 : a.out_hwpt_id;
	return rc;
}

/* A paging table with these flags on the IOAS: accepted or not. */
static bool paging_ok(int fd, uint32_t dev, uint32_t ioas, uint32_t flags,
		      uint32_t fault_id)
{
	uint32_t id;

	if (hwpt(fd, flags, dev, ioas, fault_id, 0, NULL, 0, &id))
		return false;
	destroy(fd, id);
	return true;
}

/* A fault-capable nested table over a NEST_PARENT table. The stage-1
 * data is per IOMMU; a neutral one is known for three kinds. */
static bool nested_ok(int fd, uint32_t dev, uint32_t ioas, uint32_t fault_id)
{
	struct iopf_k_hw_info hi = { .size = sizeof(hi), .dev_id = dev };
	union {
		uint32_t selftest_iotlb;
		struct { uint64_t flags, pgtbl; uint32_t addr_width, r; } vtd;
		uint64_t smmu_ste[2]; /* V=0: an abort STE, always valid */
	} d;
	uint32_t type, len, parent, id;
	bool ok;

	if (k_ioctl(fd, IOPF_K_GET_HW_INFO, &hi))
		return false;
	memset(&d, 0, sizeof(d));
	switch (hi.out_data_type) {
	case IOPF_K_HW_INFO_SELFTEST:
		type = IOPF_K_HWPT_DATA_SELFTEST;
		d.selftest_iotlb = IOPF_K_SELFTEST_IOTLB_DEFAULT;
		len = sizeof(d.selftest_iotlb);
		break;
	case IOPF_K_HW_INFO_INTEL_VTD:
		type = IOPF_K_HWPT_DATA_VTD_S1;
		d.vtd.addr_width = 48;
		len = sizeof(d.vtd);
		break;
	case IOPF_K_HW_INFO_ARM_SMMUV3:
		type = IOPF_K_HWPT_DATA_ARM_SMMUV3;
		len = sizeof(d.smmu_ste);
		break;
	default:
		return false;
	}
	if (hwpt(fd, IOPF_K_HWPT_ALLOC_NEST_PARENT, dev, ioas, 0, 0, NULL, 0,
		 &parent))
		return false;
	ok = hwpt(fd, IOPF_K_HWPT_FAULT_ID_VALID, dev, parent, fault_id, type,
		  &d, len, &id) == 0;
	destroy(fd, id);
	destroy(fd, parent);
	return ok;
}

/* Known command: anything but ENOTTY. An all-zero request (type
 * DEFAULT, no vIOMMU) is refused by every kernel that knows it, but a
 * queue made anyway is let go. */
static bool veventq_known(int fd)
{
	struct iopf_k_veventq_alloc v = { .size = sizeof(v) };
	int rc = k_ioctl(fd, IOPF_K_VEVENTQ_ALLOC, &v);

	if (rc == 0) {
		sys_close((int)v.out_veventq_fd);
		destroy(fd, v.out_veventq_id);
	}
	return rc != -ENOTTY;
}

static uint64_t probe_device(int fd, uint32_t dev, uint32_t ioas,
			     uint32_t fault_id, int *err)
{
	uint64_t flags = 0;
	uint32_t id;
	int rc;

	/* The device exists and takes a plain table: else nothing below
	 * would say anything about the kernel. */
	rc = hwpt(fd, 0, dev, ioas, 0, 0, NULL, 0, &id);
	if (rc) {
		*err = rc;
		return 0;
	}
	destroy(fd, id);
	if (fault_id && paging_ok(fd, dev, ioas, IOPF_K_HWPT_FAULT_ID_VALID,
				  fault_id))
		flags |= IOPF_PROBE_PAGING_FAULT;
	if (fault_id && nested_ok(fd, dev, ioas, fault_id))
		flags |= IOPF_PROBE_NESTED_FAULT;
	if (paging_ok(fd, dev, ioas, IOPF_K_HWPT_ALLOC_PASID, 0))
		flags |= IOPF_PROBE_PASID_ATTACH;
	return flags;
}

IOPF_API int iopf_probe(int iommufd, uint32_t dev_id,
			struct iopf_probe_info *info)
{
	struct iopf_probe_info out = {
		.record_size = sizeof(struct iopf_k_pgfault),
		.response_size = sizeof(struct iopf_k_page_response),
	};
	struct iopf_k_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iopf_k_fault_alloc fa = { .size = sizeof(fa) };
	uint32_t fault_id = 0;
	int err = 0;

	if (!info || info->sz < offsetofend(struct iopf_probe_info, flags))
		return -EINVAL;
	if (iommufd < 0 || fcntl(iommufd, F_GETFD) < 0)
		return -EBADF;
	err = k_ioctl(iommufd, IOPF_K_IOAS_ALLOC, &ioas);
	if (err)
		return err;
	if (k_ioctl(iommufd, IOPF_K_FAULT_QUEUE_ALLOC, &fa) == 0) {
		out.flags |= IOPF_PROBE_FAULT_QUEUE;
		fault_id = fa.out_fault_id;
	}
	if (veventq_known(iommufd))
		out.flags |= IOPF_PROBE_VEVENTQ;
	if (dev_id != IOPF_NO_DEV)
		out.flags |= probe_device(iommufd, dev_id, ioas.out_ioas_id,
					  fault_id, &err);
	/* The fault object goes once its fd is closed and no table uses it. */
	if (fault_id) {
		sys_close((int)fa.out_fault_fd);
		destroy(iommufd, fault_id);
	}
	destroy(iommufd, ioas.out_ioas_id);
	if (err)
		return err;
	out.sz = info->sz;
	memcpy(info, &out, info->sz < sizeof(out) ? info->sz : sizeof(out));
	return 0;
}
