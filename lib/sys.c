/* SPDX-License-Identifier: MIT */
/*
 * sys.c - the test build's seams (see sys.h): a replaceable syscall table
 * for the fake kernel, and allocations that can be made to fail. Compiled
 * into the iopf_test library only, never into what is installed.
 */
#include <stdatomic.h>

#include "sys.h"

#ifdef IOPF_TESTING
static int sys_ioctl_real(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

static const struct iopf_sys real_sys = {
	.read = read,
	.write = write,
	.poll = poll,
	.ioctl = sys_ioctl_real,
	.close = close,
};

const struct iopf_sys *iopf__sys = &real_sys;

void iopf__set_sys(const struct iopf_sys *sys)
{
	iopf__sys = sys ? sys : &real_sys;
}

static _Atomic int fail_after = -1;

void iopf__fail_alloc_after(int n)
{
	atomic_store(&fail_after, n);
}

bool iopf__alloc_should_fail(void)
{
	int v = atomic_load(&fail_after);

	while (v >= 0) {
		if (atomic_compare_exchange_weak(&fail_after, &v, v - 1))
			return v == 0;
	}
	return false;
}
#endif
