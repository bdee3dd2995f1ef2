/* SPDX-License-Identifier: MIT */
/*
 * fake_kernel.h - a test double of the kernel's iommufd fault object
 * (drivers/iommu/iommufd/fault.c, Linux 6.12), behind libiopf's syscall
 * seam. It reproduces every fact of ../shared/kernel/ABI-FACTS.md:
 * whole-group reads, cookies allocated at read time lowest-free first,
 * ESPIPE on misaligned counts, EINVAL (6.12) or 0 (newer) when the first
 * group does not fit, writes applied in order stopping at the first bad
 * answer, POLLOUT always and POLLIN while groups wait, and INVALID
 * auto-answers on detach. tests/kernel/differential.c holds it against the
 * real kernel.
 *
 * Its fds are real eventfds (readable while groups wait), so epoll works;
 * read/write/poll/ioctl on them are served by the model.
 */
#ifndef IOPF_FAKE_KERNEL_H
#define IOPF_FAKE_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#include "kabi.h"

struct fk_fault;

/* What the fake does when the first waiting group does not fit a read. */
enum fk_small { FK_SMALL_EINVAL = 0 /* 6.12 */, FK_SMALL_ZERO /* newer */ };

/* Deliberate defects, to prove the differential test catches them. */
enum fk_break {
	FK_BREAK_NONE = 0,
	FK_BREAK_COOKIE_REUSE = 1, /* cookies never reused (monotonic) */
	FK_BREAK_WRITE_STOP = 2,   /* writes skip bad answers, go on */
};

/* One answer the "device" received. */
struct fk_answer {
	uint64_t seq;   /* the group's trigger sequence number (from 1) */
	uint32_t dev_id, pasid, grpid;
	uint32_t code;
	bool automatic; /* by the kernel (detach, destroy) */
};

/* Install the fake behind libiopf's syscalls (idempotent). */
void fk_install(void);
void fk_uninstall(void);
/* The same entry points, for code that drives the ABI without libiopf. */
ssize_t fk_sys_read(int fd, void *buf, size_t count);
ssize_t fk_sys_write(int fd, const void *buf, size_t count);
int fk_sys_poll(struct pollfd *fds, nfds_t n, int timeout);
int fk_sys_ioctl(int fd, unsigned long req, void *arg);
int fk_sys_close(int fd);

/* A fake /dev/iommu fd: IOMMU_FAULT_QUEUE_ALLOC on it makes a fault. */
int fk_iommufd_open(void);
struct fk_fault *fk_fault_by_fd(int fd);

struct fk_fault *fk_fault_new(void);
void fk_fault_free(struct fk_fault *f);
int fk_fault_fd(struct fk_fault *f);
uint32_t fk_fault_id(struct fk_fault *f);
void fk_set_small(struct fk_fault *f, enum fk_small mode);
void fk_set_break(struct fk_fault *f, enum fk_break defect);

/* Raise a group of n records (flags as given: the caller sets LAST on the
 * last one, or not, to make broken groups). Returns its sequence number. */
uint64_t fk_trigger_group(struct fk_fault *f, const struct iopf_k_pgfault *recs,
			  unsigned int n);
/* Like the selftest mock: one record, LAST, PASID_VALID unless pasid 0. */
uint64_t fk_trigger(struct fk_fault *f, uint32_t dev, uint32_t pasid,
		    uint32_t grpid, uint32_t perm, uint64_t addr);
/* Queue records returned verbatim by the next read, cookies included; each
 * distinct cookie becomes outstanding so an answer to it is accepted. */
void fk_inject_raw(struct fk_fault *f, const struct iopf_k_pgfault *recs,
		   unsigned int n);
/* Make the next read (op 0) or write (op 1) fail once with errno err,
 * as a signal (EINTR) or a transient condition (EAGAIN) would. */
void fk_fail_next(struct fk_fault *f, int op, int err);
/* Make every read (op 0) or write (op 1) fail with errno err until called
 * again with err 0: a failure that lasts. */
void fk_fail_always(struct fk_fault *f, int op, int err);
/* Chaos: make about per_mille in 1000 reads and writes fail with EINTR,
 * EAGAIN or ENOMEM (passing failures; nothing is consumed), drawn from
 * seed. 0 turns it off. */
void fk_set_chaos(struct fk_fault *f, uint64_t seed, unsigned int per_mille);
uint64_t fk_chaos_injected(struct fk_fault *f);
/* Detach a device: answer INVALID its queued and read groups. */
unsigned int fk_detach(struct fk_fault *f, uint32_t dev_id);
/* Call fn(f, ud) at the start of every read() of f, without the fake's
 * lock held (NULL: none): lets a test act between two reads of one
 * dispatch, e.g. fk_detach() as another thread of a VMM would. */
void fk_set_read_hook(struct fk_fault *f,
		      void (*fn)(struct fk_fault *f, void *ud), void *ud);

unsigned int fk_queued(struct fk_fault *f);      /* waiting to be read */
/* Both counts at once, under the fake's lock: safe while other threads
 * read, write, trigger or detach (fk_queued/fk_outstanding are not). */
void fk_pending(struct fk_fault *f, unsigned int *queued,
		unsigned int *outstanding);
/* Answers written for a cookie no group held, except cookies the kernel
 * itself freed (fk_detach) since: the cookie was never handed out, or its
 * group was already answered by a write. Each one is a second answer, or
 * an answer that reached another group first (refused writes only; an
 * answer that lands on a newer group shows up when that group's own
 * answer is refused). */
uint64_t fk_stale_writes(struct fk_fault *f);
unsigned int fk_outstanding(struct fk_fault *f); /* read, not answered */
/* Answers so far (the array stays owned by the fake). */
const struct fk_answer *fk_answers(struct fk_fault *f, size_t *n);
uint64_t fk_triggered(struct fk_fault *f);
uint64_t fk_reads(struct fk_fault *f);
uint64_t fk_writes(struct fk_fault *f);

/* ---- kernel versions and iommufd objects (iopf_probe) ----
 * A fake iommufd (fk_iommufd_open) also keeps IOASes, page tables and
 * fault objects with the kernel's rules for creating and destroying them
 * (a fault object goes once its fd is closed and no table uses it; a
 * parent once no nested table does), and behaves as one kernel version:
 * - FAKE_K_6_12 (default): a fault id only on nested tables (paging:
 *   EOPNOTSUPP), no IOMMU_HWPT_ALLOC_PASID (EOPNOTSUPP), no
 *   IOMMU_VEVENTQ_ALLOC (ENOTTY).
 * - FAKE_K_6_15: also a fault id on a plain paging table (6.13), PASID
 *   tables, IOMMU_VEVENTQ_ALLOC known (an empty request: EOPNOTSUPP), and
 *   a fault id refused on a NEST_PARENT table (EOPNOTSUPP).
 * Its one IOMMU reports the selftest mock's GET_HW_INFO type.
 * (The mode switch is fake_kernel_set_mode(), below.) */
/* A device bound to the fake iommufd: its device id. */
uint32_t fk_iommufd_add_device(int iommufd);
/* Objects alive on it (devices not counted). */
unsigned int fk_iommufd_objects(int iommufd);
/* ---- kernel modes and vIOMMU event queues (issue 14) ----
 * A mode per fake iommufd (or the default for all, iommufd -1; the
 * default default is FAKE_K_6_12): 6.12 has no IOMMU_VEVENTQ_ALLOC
 * (ENOTTY); 6.15 has it. */
enum fake_kernel_mode { FAKE_K_6_12 = 1u << 0, FAKE_K_6_15 = 1u << 1 };
void fake_kernel_set_mode(int iommufd, enum fake_kernel_mode mode);

struct fk_veventq;
/* A vEVENTQ object with its fd, as IOMMU_VEVENTQ_ALLOC makes one (for
 * adopt tests; the ioctl on a fake iommufd makes them too). */
struct fk_veventq *fk_veventq_new(uint32_t viommu_id, uint32_t type,
				  uint32_t depth);
void fk_veventq_free(struct fk_veventq *q);
void fk_veventq_free_all(void);
struct fk_veventq *fk_veventq_by_fd(int fd);
struct fk_veventq *fk_veventq_find(uint32_t viommu_id, uint32_t type);
int fk_veventq_fd(struct fk_veventq *q); /* -1 once closed */
uint32_t fk_veventq_id(struct fk_veventq *q);
/* The sequence number the next event takes (to test the wrap). */
void fk_veventq_set_sequence(struct fk_veventq *q, uint32_t seq);
/* An event from the vIOMMU (iommufd_viommu_report_event()): queued, or
 * lost at the queue's depth. 0, -EINVAL; fk_viommu_report: -EOPNOTSUPP
 * if the vIOMMU has no queue of that type. */
int fk_veventq_report(struct fk_veventq *q, const void *data, size_t len);
int fk_viommu_report(uint32_t viommu_id, uint32_t type, const void *data,
		     size_t len);
void fk_veventq_pending(struct fk_veventq *q, unsigned int *events,
			bool *lost_header);
uint64_t fk_veventq_reads(struct fk_veventq *q);

#endif
