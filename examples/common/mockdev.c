/* SPDX-License-Identifier: MIT */
/* mockdev.c - see mockdev.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mockdev.h"

enum {
	OP_MOCK_DOMAIN = 2,
	OP_MD_CHECK_MAP = 3,
	OP_MOCK_DOMAIN_REPLACE = 10,
	OP_TRIGGER_IOPF = 15,
};
#define TEST_CMD _IO(IOPF_K_TYPE, IOPF_K_CMD_BASE + 32)
#define HWPT_DATA_SELFTEST 0xdead
#define TEST_IOTLB_DEFAULT 0xbadbeef

struct test_cmd {
	uint32_t size;
	uint32_t op;
	uint32_t id;
	uint32_t reserved;
	union {
		struct {
			uint32_t out_stdev_id, out_hwpt_id, out_idev_id;
		} mock_domain;
		struct {
			uint32_t pt_id;
		} replace;
		struct {
			uint64_t iova, length, uptr;
		} check_map;
		struct {
			uint32_t dev_id, pasid, grpid, perm;
			uint64_t addr;
		} trigger_iopf;
		uint64_t largest[6]; /* the 'dirty' member */
	};
	uint32_t last;
};
_Static_assert(sizeof(struct test_cmd) == 72, "iommu_test_cmd size");

static int cmd(struct kmock *m, struct test_cmd *c)
{
	c->size = sizeof(*c);
	return ioctl(m->fd, TEST_CMD, c) ? -errno : 0;
}

int kmock_open(struct kmock *m)
{
	struct iopf_k_ioas_alloc a = { .size = sizeof(a) };
	struct test_cmd c = { .op = OP_MOCK_DOMAIN };
	int rc;

	memset(m, 0, sizeof(*m));
	m->fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (m->fd < 0)
		return -errno;
	if (ioctl(m->fd, IOPF_K_IOAS_ALLOC, &a)) {
		rc = -errno;
		goto fail;
	}
	m->ioas_id = a.out_ioas_id;
	c.id = m->ioas_id;
	if ((rc = cmd(m, &c)))
		goto fail;
	m->stdev_id = c.mock_domain.out_stdev_id;
	m->hwpt_id = c.mock_domain.out_hwpt_id;
	m->idev_id = c.mock_domain.out_idev_id;
	return 0;
fail:
	close(m->fd);
	m->fd = -1;
	return rc;
}

void kmock_close(struct kmock *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

static int hwpt_alloc(struct kmock *m, uint32_t flags, uint32_t idev,
		      uint32_t pt, uint32_t fault_id, uint32_t type, void *data,
		      uint32_t len, uint32_t *out)
{
	struct iopf_k_hwpt_alloc a = {
		.size = sizeof(a), .flags = flags, .dev_id = idev, .pt_id = pt,
		.data_type = type, .data_len = len,
		.data_uptr = (uint64_t)(uintptr_t)data, .fault_id = fault_id,
	};

	if (ioctl(m->fd, IOPF_K_HWPT_ALLOC, &a))
		return -errno;
	*out = a.out_hwpt_id;
	return 0;
}

int kmock_hwpt_paging_iopf(struct kmock *m, uint32_t idev, uint32_t fault_id,
			   uint32_t *hwpt_id)
{
	return hwpt_alloc(m, IOPF_K_HWPT_FAULT_ID_VALID, idev, m->ioas_id,
			  fault_id, 0, NULL, 0, hwpt_id);
}

int kmock_hwpt_nested_iopf(struct kmock *m, uint32_t idev, uint32_t fault_id,
			   uint32_t *parent_id, uint32_t *hwpt_id)
{
	uint32_t data = TEST_IOTLB_DEFAULT;
	int rc = hwpt_alloc(m, IOPF_K_HWPT_ALLOC_NEST_PARENT, idev, m->ioas_id,
			    0, 0, NULL, 0, parent_id);

	if (rc)
		return rc;
	return hwpt_alloc(m, IOPF_K_HWPT_FAULT_ID_VALID, idev, *parent_id,
			  fault_id, HWPT_DATA_SELFTEST, &data, sizeof(data),
			  hwpt_id);
}

int kmock_replace(struct kmock *m, uint32_t stdev_id, uint32_t pt_id)
{
	struct test_cmd c = { .op = OP_MOCK_DOMAIN_REPLACE, .id = stdev_id };

	c.replace.pt_id = pt_id;
	return cmd(m, &c);
}

int kmock_trigger(struct kmock *m, uint32_t idev, uint32_t pasid,
		  uint32_t grpid, uint32_t perm, uint64_t addr)
{
	struct test_cmd c = { .op = OP_TRIGGER_IOPF };

	c.trigger_iopf.dev_id = idev;
	c.trigger_iopf.pasid = pasid;
	c.trigger_iopf.grpid = grpid;
	c.trigger_iopf.perm = perm;
	c.trigger_iopf.addr = addr;
	return cmd(m, &c);
}

int kmock_map(struct kmock *m, void *buf, uint64_t len, uint64_t iova)
{
	struct iopf_k_ioas_map a = {
		.size = sizeof(a),
		.flags = IOPF_K_IOAS_MAP_FIXED_IOVA | IOPF_K_IOAS_MAP_READABLE |
			 IOPF_K_IOAS_MAP_WRITEABLE,
		.ioas_id = m->ioas_id, .user_va = (uint64_t)(uintptr_t)buf,
		.length = len, .iova = iova,
	};

	return ioctl(m->fd, IOPF_K_IOAS_MAP, &a) ? -errno : 0;
}

int kmock_check_map(struct kmock *m, uint32_t hwpt_id, uint64_t iova,
		    uint64_t len, void *buf)
{
	struct test_cmd c = { .op = OP_MD_CHECK_MAP, .id = hwpt_id };

	c.check_map.iova = iova;
	c.check_map.length = len;
	c.check_map.uptr = (uint64_t)(uintptr_t)buf;
	return cmd(m, &c);
}
