/* SPDX-License-Identifier: MIT */
/*
 * util.c - small shared pieces: option struct checking, logging, the clock
 * and the version string.
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
 * newer fields at zero, i.e. default. Every byte from known_end to the
 * caller's sz must be zero: a newer caller's field is refused rather than
 * ignored. known_end is our sizeof, tail padding included: IOPF_OPTS()
 * as released does not promise zero padding, so 1.x callers may have
 * garbage there (new fields must not go into today's padding). */
int iopf__opts_copy(void *dst, size_t dst_sz, const void *src,
		    size_t known_end)
{
	const unsigned char *p = src;
	size_t sz;

	memset(dst, 0, dst_sz);
	if (!src)
		return 0;
	memcpy(&sz, src, sizeof(sz));
	if (sz < sizeof(size_t))
		return -EINVAL;
	for (size_t i = known_end; i < sz; i++)
		if (p[i])
			return -EINVAL;
	memcpy(dst, src, sz < known_end ? sz : known_end);
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

#define STR2(x) #x
#define STR(x) STR2(x)

IOPF_API const char *iopf_version(void)
{
	return STR(IOPF_VERSION_MAJOR) "." STR(IOPF_VERSION_MINOR) "." STR(
		IOPF_VERSION_PATCH);
}
