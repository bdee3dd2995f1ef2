/* SPDX-License-Identifier: MIT */
/*
 * fuzz_util.h - what the libFuzzer harnesses share: a byte reader that
 * turns the input into a script (reads past the end give 0, so every input
 * is a valid script), oracle checks that abort() so libFuzzer records the
 * input, and a syscall table around the fake kernel that checks every
 * read/write libiopf makes against the ABI and counts refused answers.
 */
#ifndef IOPF_FUZZ_UTIL_H
#define IOPF_FUZZ_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "internal.h" /* iopf__set_sys, iopf__fail_alloc_after, ... */
#include "iopf/iopf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An oracle failed: say which, then die so libFuzzer keeps the input. */
#define FUZZ_FAIL(...)                                                       \
	do {                                                                 \
		fprintf(stderr, "\nORACLE FAILURE (%s:%d): ", __FILE__,      \
			__LINE__);                                           \
		fprintf(stderr, __VA_ARGS__);                                \
		fputc('\n', stderr);                                         \
		abort();                                                     \
	} while (0)
#define FUZZ_CHECK(cond, ...)                                                \
	do {                                                                 \
		if (!(cond))                                                 \
			FUZZ_FAIL(__VA_ARGS__);                              \
	} while (0)

/* IOPF_FUZZ_TRACE=1 in the environment: say what the script does, and
 * have the library log everything (a log callback given to the context). */
extern bool fz_trace;
#define TR(...)                                                              \
	do {                                                                 \
		if (fz_trace)                                                \
			fprintf(stderr, __VA_ARGS__);                        \
	} while (0)

/* IOPF_FUZZ_ALLOW=name,name: skip these oracle classes (triage only: to
 * look past a known failure). Names: "refused" (answers the kernel
 * refused), "stall" (groups never read or left outstanding), "order" (see
 * fz_check_done), "ended" (a handler called for a group already ended), "ready" (producers:
 * dispatch right after each LAST submit, so no group is answered while it
 * waits on the ready queue), "nullbuf" (uevents: no parse of a NULL
 * buffer). */
static inline bool fz_allowed(const char *name)
{
	const char *a = getenv("IOPF_FUZZ_ALLOW");

	return a && strstr(a, name);
}

static inline void fz_log(int level, const char *msg, void *ud)
{
	(void)ud;
	fprintf(stderr, "  [lib %d] %s\n", level, msg);
}

/* Turn tracing on for this input if asked: on ctx. */
static inline void fz_trace_ctx(struct iopf_ctx *ctx)
{
	if (fz_trace && ctx)
		iopf_ctx_set_log(ctx, fz_log, NULL, 7);
}

struct rd {
	const uint8_t *p;
	size_t n, i;
};

static inline bool rd_more(const struct rd *r)
{
	return r->i < r->n;
}

static inline uint8_t rd_u8(struct rd *r)
{
	return r->i < r->n ? r->p[r->i++] : 0;
}

static inline uint16_t rd_u16(struct rd *r)
{
	uint16_t v = rd_u8(r);

	return (uint16_t)(v | (uint16_t)rd_u8(r) << 8);
}

static inline uint32_t rd_u32(struct rd *r)
{
	uint32_t v = rd_u16(r);

	return v | (uint32_t)rd_u16(r) << 16;
}

static inline uint64_t rd_u64(struct rd *r)
{
	uint64_t v = rd_u32(r);

	return v | (uint64_t)rd_u32(r) << 32;
}

/* ---- the fake kernel, watched ---- */

#define FZ_MAX_REFUSED 64

struct fz_sys_stats {
	uint64_t reads, writes;
	uint64_t refused;          /* answers the fake refused */
	uint32_t refused_cookie[FZ_MAX_REFUSED];
	unsigned int nrefused_logged;
};

extern struct fz_sys_stats fz_sys;

static inline ssize_t fz_read(int fd, void *buf, size_t count)
{
	bool fault = fk_fault_by_fd(fd) != NULL;

	if (fault) {
		fz_sys.reads++;
		FUZZ_CHECK(count % sizeof(struct iopf_k_pgfault) == 0,
			   "read of %zu bytes: not whole 40-byte records", count);
		FUZZ_CHECK(count > 0, "read of 0 bytes from a fault fd");
	}
	{
		ssize_t rc = fk_sys_read(fd, buf, count);
		int err = errno;

		if (fault && fz_trace) {
			const struct iopf_k_pgfault *p = buf;

			fprintf(stderr, "  read %zu -> %zd%s", count, rc,
				rc < 0 ? strerror(err) : "");
			for (ssize_t i = 0; rc > 0 && i < rc / 40; i++)
				fprintf(stderr, " [c%u d%u p%u g%u f%#x]", p[i].cookie,
					p[i].dev_id, p[i].pasid, p[i].grpid,
					p[i].flags);
			fprintf(stderr, "\n");
		}
		errno = err;
		return rc;
	}
}

static inline ssize_t fz_write(int fd, const void *buf, size_t count)
{
	const struct iopf_k_page_response *r = buf;
	bool fault = fk_fault_by_fd(fd) != NULL;
	ssize_t rc;
	int err;

	if (fault) {
		fz_sys.writes++;
		FUZZ_CHECK(count % sizeof(*r) == 0,
			   "write of %zu bytes: not whole 8-byte answers", count);
		FUZZ_CHECK(count > 0, "write of 0 bytes to a fault fd");
		for (size_t i = 0; i < count / sizeof(*r); i++)
			FUZZ_CHECK(r[i].code <= 1, "answer code %u written",
				   r[i].code);
	}
	rc = fk_sys_write(fd, buf, count);
	err = errno;
	if (fault && fz_trace) {
		fprintf(stderr, "  write");
		for (size_t i = 0; i < count / sizeof(*r); i++)
			fprintf(stderr, " %u:%u", r[i].cookie, r[i].code);
		fprintf(stderr, " -> %zd\n", rc);
	}
	if (fault && ((rc < 0 && err == EINVAL) ||
		      (rc >= 0 && (size_t)rc < count))) {
		size_t at = rc < 0 ? 0 : (size_t)rc / sizeof(*r);

		TR("  kernel refused answer to cookie %u\n", r[at].cookie);
		if (fz_sys.nrefused_logged < FZ_MAX_REFUSED)
			fz_sys.refused_cookie[fz_sys.nrefused_logged++] =
				r[at].cookie;
		fz_sys.refused++;
	}
	errno = err;
	return rc;
}

static inline int fz_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return fk_sys_poll(fds, n, timeout);
}

static inline int fz_ioctl(int fd, unsigned long req, void *arg)
{
	return fk_sys_ioctl(fd, req, arg);
}

static inline int fz_close(int fd)
{
	return fk_sys_close(fd);
}

/* Define once per harness: FZ_SYS_DEFINE; then fz_sys_install() per input. */
#define FZ_SYS_DEFINE                                                        \
	struct fz_sys_stats fz_sys;                                          \
	static const struct iopf_sys fz_sys_table = {                        \
		.read = fz_read, .write = fz_write, .poll = fz_poll,         \
		.ioctl = fz_ioctl, .close = fz_close,                        \
	};                                                                   \
	bool fz_trace;                                                       \
	static void fz_sys_install(void)                                     \
	{                                                                    \
		memset(&fz_sys, 0, sizeof(fz_sys));                          \
		iopf__set_sys(&fz_sys_table);                                \
		fz_trace = getenv("IOPF_FUZZ_TRACE") != NULL;                \
	}

/* How a harness knows a group was answered: by its handler's return value
 * or by iopf_respond() returning 0. An answer by handle that succeeds after
 * either is a second answer accepted. After a return value it is reported
 * apart ("order": the handler's answer was applied late, the later one
 * won), so that IOPF_FUZZ_ALLOW=order can look past it. */
enum { DONE_NO = 0, DONE_RETURN = 1, DONE_HANDLE = 2 };

static inline void fz_check_done(uint8_t done, uint64_t h)
{
	FUZZ_CHECK(done != DONE_HANDLE,
		   "handle %#llx answered twice by handle (both returned 0)",
		   (unsigned long long)h);
	FUZZ_CHECK(done != DONE_RETURN || fz_allowed("order"),
		   "handle %#llx answered (0) after its handler had returned "
		   "an answer: expected -EALREADY", (unsigned long long)h);
}

/* Every errno a function may return, per the header, else fail. */
static inline bool fz_in(int rc, const int *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rc == set[i])
			return true;
	return false;
}
#define FZ_IN(rc, ...)                                                       \
	fz_in((rc), (const int[]){ __VA_ARGS__ },                            \
	      sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

#endif
