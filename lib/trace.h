/* SPDX-License-Identifier: MIT */
/*
 * trace.h - USDT probes (provider "libiopf"), one line at each call site.
 *
 * Built with <sys/sdt.h> (IOPF_HAVE_SDT, CMake's IOPF_WITH_SDT) each probe
 * is one nop and an ELF note; nothing runs until a tracer (bpftrace, perf,
 * SystemTap) attaches. Arguments are asm operands that may stay in memory
 * (the compiler decides), so a group's fields need not be loaded for a
 * probe nobody listens to (scripts/sdt-cost.sh measures it). Without
 * sdt.h every macro expands to nothing and its arguments are not
 * evaluated: never put a side effect in one.
 *
 * doc/tracing.md lists the probes and their arguments; the ctest
 * trace.probes holds the library's notes to that list. Renaming a probe or
 * moving an argument breaks users' scripts: add, never change.
 */
#ifndef IOPF_TRACE_H
#define IOPF_TRACE_H

#ifdef IOPF_HAVE_SDT
#include <sys/sdt.h>

/* One read() of a fault fd: bytes returned, or -errno; records asked for. */
#define IOPF_TRACE_READ(fault_id, result, asked)                             \
	STAP_PROBE3(libiopf, read, (uint32_t)(fault_id), (int64_t)(result),  \
		    (uint32_t)(asked))

/* A complete group taken in (before any handler sees it). */
#define IOPF_TRACE_GROUP_COMPLETE(g)                                         \
	STAP_PROBE5(libiopf, group_complete, (g)->key.dev_id,                \
		    (g)->key.pasid, (g)->key.prgi, (g)->cookie, (g)->nrec)

/* A handler (or the batch handler, once per group) is about to run. */
#define IOPF_TRACE_HANDLER_START(g)                                          \
	STAP_PROBE4(libiopf, handler_start, (g)->key.dev_id, (g)->key.pasid, \
		    (g)->key.prgi, (g)->cookie)

/* It returned rc (IOPF_CODE_*, IOPF_DEFER, or anything it liked). */
#define IOPF_TRACE_HANDLER_END(g, rc)                                        \
	STAP_PROBE5(libiopf, handler_end, (g)->key.dev_id, (g)->key.pasid,   \
		    (g)->key.prgi, (g)->cookie, (int32_t)(rc))

/* A group ended (iopf__group_end): code IOPF_CODE_* or -1 (the kernel
 * answered), why enum gend. */
#define IOPF_TRACE_ANSWER(g, code, why)                                      \
	STAP_PROBE6(libiopf, answer, (g)->key.dev_id, (g)->key.pasid,        \
		    (g)->key.prgi, (g)->cookie, (int32_t)(code),             \
		    (int32_t)(why))

/* INVALID for records that never became a group (malformed, oversized,
 * no memory): the same probe, why 0. */
#define IOPF_TRACE_ANSWER_RAW(dev, pasid, prgi, cookie, code)               \
	STAP_PROBE6(libiopf, answer, (uint32_t)(dev), (uint32_t)(pasid),     \
		    (uint32_t)(prgi), (uint32_t)(cookie), (int32_t)(code),   \
		    (int32_t)0)

/* One write() of answers: how many, bytes taken or -errno. */
#define IOPF_TRACE_WRITE(fault_id, count, result)                            \
	STAP_PROBE3(libiopf, write, (uint32_t)(fault_id), (uint32_t)(count), \
		    (int64_t)(result))

/* A group a handler held when its device went: to the cancel callback. */
#define IOPF_TRACE_CANCEL(g)                                                 \
	STAP_PROBE4(libiopf, cancel, (g)->key.dev_id, (g)->key.pasid,        \
		    (g)->key.prgi, (g)->cookie)

#else /* no sys/sdt.h: nothing at all */

#define IOPF_TRACE_READ(fault_id, result, asked) ((void)0)
#define IOPF_TRACE_GROUP_COMPLETE(g) ((void)0)
#define IOPF_TRACE_HANDLER_START(g) ((void)0)
#define IOPF_TRACE_HANDLER_END(g, rc) ((void)0)
#define IOPF_TRACE_ANSWER(g, code, why) ((void)0)
#define IOPF_TRACE_ANSWER_RAW(dev, pasid, prgi, cookie, code) ((void)0)
#define IOPF_TRACE_WRITE(fault_id, count, result) ((void)0)
#define IOPF_TRACE_CANCEL(g) ((void)0)

#endif
#endif /* IOPF_TRACE_H */
