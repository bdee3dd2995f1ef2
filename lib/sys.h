/* SPDX-License-Identifier: MIT */
/*
 * sys.h - the syscalls libiopf makes on fault fds, and its allocations.
 *
 * The production library calls the C library directly. The test build of
 * the same sources (-DIOPF_TESTING, the iopf_test target, never installed)
 * routes fault-fd syscalls through a table the fake kernel replaces, and
 * allocations through a hook that can fail the Nth one.
 */
#ifndef IOPF_SYS_H
#define IOPF_SYS_H

#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef IOPF_TESTING
struct iopf_sys {
	ssize_t (*read)(int fd, void *buf, size_t count);
	ssize_t (*write)(int fd, const void *buf, size_t count);
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout);
	int (*ioctl)(int fd, unsigned long req, void *arg);
	int (*close)(int fd);
};
extern const struct iopf_sys *iopf__sys;
/* Swap the syscall table (NULL restores the real one). */
void iopf__set_sys(const struct iopf_sys *sys);
/* Make the n-th next allocation (0: the next) fail; -1: none. */
void iopf__fail_alloc_after(int n);
bool iopf__alloc_should_fail(void);

#define sys_read(fd, b, n) iopf__sys->read(fd, b, n)
#define sys_write(fd, b, n) iopf__sys->write(fd, b, n)
#define sys_poll(p, n, t) iopf__sys->poll(p, n, t)
#define sys_ioctl(fd, r, a) iopf__sys->ioctl(fd, r, a)
#define sys_close(fd) iopf__sys->close(fd)
#define ALLOC_FAILS() iopf__alloc_should_fail()
#else
#define sys_read(fd, b, n) read(fd, b, n)
#define sys_write(fd, b, n) write(fd, b, n)
#define sys_poll(p, n, t) poll(p, n, t)
#define sys_ioctl(fd, r, a) ioctl(fd, r, a)
#define sys_close(fd) close(fd)
#define ALLOC_FAILS() false
#endif

static inline void *xmalloc(size_t n)
{
	return ALLOC_FAILS() ? NULL : malloc(n);
}

static inline void *xcalloc(size_t n, size_t sz)
{
	return ALLOC_FAILS() ? NULL : calloc(n, sz);
}

static inline void *xrealloc(void *p, size_t n)
{
	return ALLOC_FAILS() ? NULL : realloc(p, n);
}

#endif /* IOPF_SYS_H */
