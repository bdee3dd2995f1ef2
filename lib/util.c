/* SPDX-License-Identifier: MIT */
/*
 * util.c - small shared pieces: option struct checking, logging, the clock,
 * the syscall table (a test seam) and the version string.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Copy a caller's size-prefixed options into our struct of dst_sz bytes
 * (zeroed first, sz first). A smaller struct (older caller) leaves our
 * newer fields at zero, i.e. default; a larger one (newer caller) is fine
 * only if everything we do not know is zero. */
int iopf__opts_copy(void *dst, size_t dst_sz, const void *src)
{
	size_t sz;

	memset(dst, 0, dst_sz);
	if (!src)
		return 0;
	memcpy(&sz, src, sizeof(sz));
	if (sz < sizeof(size_t))
		return -EINVAL;
	if (sz > dst_sz) {
		const unsigned char *p = src;

		for (size_t i = dst_sz; i < sz; i++)
			if (p[i])
				return -EINVAL;
		sz = dst_sz;
	}
	memcpy(dst, src, sz);
	return 0;
}

void iopf__log(struct iopf_ctx *ctx, int level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!ctx->log_fn || level > ctx->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->log_fn(level, msg, ctx->log_ud);
}

IOPF_API void iopf_log_stderr(int level, const char *msg, void *userdata)
{
	(void)level;
	(void)userdata;
	fprintf(stderr, "libiopf: %s\n", msg);
}

uint64_t iopf__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

static const struct iopf_sys real_sys = {
	.read = read,
	.write = write,
	.poll = poll,
	.ioctl = sys_ioctl,
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

#define STR2(x) #x
#define STR(x) STR2(x)

IOPF_API const char *iopf_version(void)
{
	return STR(IOPF_VERSION_MAJOR) "." STR(IOPF_VERSION_MINOR) "." STR(
		IOPF_VERSION_PATCH);
}
