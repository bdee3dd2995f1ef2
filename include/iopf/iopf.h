/* SPDX-License-Identifier: MIT */
/**
 * @file iopf.h
 * @brief libiopf: I/O page fault handling for user space on Linux.
 *
 * libiopf takes page requests from iommufd fault objects (Linux 6.11+) or
 * from a producer that sees requests one at a time, assembles them into
 * Page Request Groups, calls your handlers and sends exactly one answer per
 * group, batched.
 *
 * Conventions (the whole API follows them):
 * - Every object is opaque and reached through a pointer handle.
 * - Functions returning `int` return 0 (or a count) on success and a
 *   negative errno value on failure; they never set errno.
 *   Constructors return NULL on failure and set errno.
 * - Destructors (iopf_ctx_free(), iopf_source_close()) accept NULL.
 * - Option structs begin with `size_t sz`, the size the caller was built
 *   with. Declare them with IOPF_OPTS(). A struct from an older, smaller
 *   release keeps working (missing fields take their defaults); a larger
 *   struct from a newer release is accepted if the fields this release
 *   does not know are zero, and refused with -EINVAL otherwise.
 *   A NULL options pointer means "all defaults".
 * - Callbacks take `userdata` last.
 * - Thread safety is stated per function. Unless said otherwise a function
 *   may be called from any thread, concurrently with others on the same
 *   context. No function may be called from a log callback.
 * - Symbols are versioned (LIBIOPF_1.0, ...); a released symbol never
 *   changes, new ones are added in new version nodes.
 *
 * The exactly-once rule: every group libiopf takes from a source gets
 * exactly one answer, from your handler, from libiopf itself (INVALID, when
 * a group is malformed, has no handler, misses its deadline, or its source
 * or context is closed), or from the kernel (when you detach the page
 * table, or the device goes away). A second answer is refused and counted,
 * never sent.
 */
#ifndef IOPF_IOPF_H
#define IOPF_IOPF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a public symbol (the library is built with hidden visibility). */
#ifndef IOPF_API
#define IOPF_API __attribute__((visibility("default")))
#endif

/** @name Version */
/**@{*/
#define IOPF_VERSION_MAJOR 1 /**< major version: the SONAME's number */
#define IOPF_VERSION_MINOR 3 /**< minor version: new symbols */
#define IOPF_VERSION_PATCH 0 /**< patch level */

/**
 * @brief The library's version as "MAJOR.MINOR.PATCH".
 * @return A static string. Thread safe.
 */
IOPF_API const char *iopf_version(void);
/**@}*/

/** @name Options */
/**@{*/
/**
 * @brief Declare and initialise an options struct: zeroed, with `sz` set.
 *
 * Example: `IOPF_OPTS(iopf_ctx_opts, o, .workers = 4);` declares
 * `struct iopf_ctx_opts o` with `sz = sizeof(struct iopf_ctx_opts)`, the
 * fields named set and every other field zero (its default). The
 * arguments after the name are designated initializers, none or several:
 * `IOPF_OPTS(iopf_stats, st);` is fine.
 *
 * It is standard C99 (a declaration with a braced initializer; the extra
 * argument the helper gets keeps `...` non-empty as C99 requires). Since
 * 1.2 it is no longer a GNU statement expression, and iopf.h no longer
 * includes <string.h> and <stdbool.h>: include them yourself if you need
 * them. Padding bytes are not promised to be zero (libiopf does not look at
 * them).
 *
 * C++ before C++20 has no designated initializers: value-initialize the
 * struct, then set `sz` and the fields you need:
 * @code
 * iopf_ctx_opts o{};      // all zero (C++11)
 * o.sz = sizeof o;
 * o.workers = 4;
 * @endcode
 */
#define IOPF_OPTS(...) IOPF_OPTS_I_(__VA_ARGS__, )
/** @cond INTERNAL */
#define IOPF_OPTS_I_(TYPE, NAME, ...)                                         \
	struct TYPE NAME = { .sz = sizeof(struct TYPE), __VA_ARGS__ }
/** @endcond */
/**@}*/

/** @name Objects */
/**@{*/
/** A context: handlers, outstanding groups, answers, one pollable fd. */
struct iopf_ctx;
/** A fault source: an iommufd fault queue or a one-at-a-time producer. */
struct iopf_source;
/** A Page Request Group handed to a handler. */
struct iopf_group;
/**@}*/

/** @name Records, codes and constants */
/**@{*/
/** Answer codes; the values are those of the kernel ABI. */
enum iopf_code {
	IOPF_CODE_SUCCESS = 0, /**< the pages are there: retry the access */
	IOPF_CODE_INVALID = 1, /**< the request cannot be satisfied */
};

/** A handler returns this instead of a code to answer later by handle. */
#define IOPF_DEFER 2

/** PASID value meaning "no PASID" wherever the API takes a PASID. */
#define IOPF_NO_PASID UINT32_MAX

/** Record and request flag: the PASID field is valid. */
#define IOPF_F_PASID_VALID (1u << 0)
/** Record and request flag: the last request of its group. */
#define IOPF_F_LAST_PAGE (1u << 1)

#define IOPF_PERM_READ (1u << 0)  /**< record permission: read */
#define IOPF_PERM_WRITE (1u << 1) /**< record permission: write */
#define IOPF_PERM_EXEC (1u << 2)  /**< record permission: execute */
#define IOPF_PERM_PRIV (1u << 3)  /**< record permission: privileged */

/** Group flag: some partial requests of this group were dropped (cap). */
#define IOPF_GROUP_TRUNCATED (1u << 0)

/**
 * @brief One page request of a group. Layout fixed for ABI version 1.
 */
struct iopf_record {
	uint64_t addr;  /**< faulting address (page aligned by the device) */
	uint32_t perm;  /**< IOPF_PERM_* */
	uint32_t flags; /**< IOPF_F_* */
};

/**
 * @brief A page request given to iopf_producer_submit(). Layout fixed.
 */
struct iopf_request {
	uint32_t flags;    /**< IOPF_F_PASID_VALID, IOPF_F_LAST_PAGE */
	uint32_t dev_id;   /**< device id (iommufd device object id) */
	uint32_t pasid;    /**< PASID if IOPF_F_PASID_VALID */
	uint32_t prgi;     /**< Page Request Group index */
	uint32_t perm;     /**< IOPF_PERM_* */
	uint32_t reserved; /**< must be 0 */
	uint64_t addr;     /**< faulting address */
};

/**
 * @brief The answer to a producer's group, given to its respond callback.
 * Layout fixed.
 */
struct iopf_response {
	uint32_t dev_id; /**< as in the group's requests */
	uint32_t pasid;  /**< IOPF_NO_PASID if the group had no PASID */
	uint32_t prgi;   /**< Page Request Group index */
	uint32_t code;   /**< enum iopf_code */
};

/**
 * @brief Handle of a group, for answering later from any thread.
 *
 * A handle carries a generation: once its group has been answered (by
 * anyone), the handle can never reach another group, even one that reuses
 * the same kernel cookie or memory. Never 0.
 */
typedef uint64_t iopf_handle_t;
/**@}*/

/** @name Callbacks */
/**@{*/
/**
 * @brief A group handler.
 *
 * Called once per group, with the group's records in order. Return
 * IOPF_CODE_SUCCESS or IOPF_CODE_INVALID to answer now, or IOPF_DEFER and
 * answer later with iopf_respond() (the handle from iopf_group_handle()).
 * Any other value answers INVALID and is logged. The group pointer is
 * valid until the handler returns (for a deferred group: use the handle
 * after that); the handle stays safe forever.
 * A group may be ended by another thread while its handler runs (an
 * answer by PRG index, a flush, a deadline, a detach): the handler's own
 * answer is then refused and counted, never sent.
 * A handler may call iopf_respond() and friends, iopf_source_close() (it
 * takes effect at once: the group stays readable until the handler
 * returns) and iopf_producer_submit(), but not iopf_ctx_dispatch(),
 * iopf_ctx_run() or iopf_ctx_drain() (-EDEADLK) nor iopf_ctx_free()
 * (refused and logged).
 */
typedef int (*iopf_handler_fn)(struct iopf_group *group, void *userdata);

/**
 * @brief A producer's respond callback: the answer to one of its groups.
 *
 * Called exactly once per group the producer completed, whatever ended it
 * (a handler, iopf_respond(), a close, flush, deadline or device removal),
 * with no lock held, from a thread that answered or dispatched on the
 * group's context. It must not block for long and may call
 * iopf_producer_submit() and iopf_respond().
 * Several threads may call it at once (each delivering answers it made),
 * and it may be called again from within itself (an iopf_respond() it
 * makes delivers that answer before returning): make it reentrant.
 */
typedef void (*iopf_respond_fn)(const struct iopf_response *resp,
				void *userdata);

/**
 * @brief Frees a callback's userdata once no thread can call it (as
 * GLib's GDestroyNotify).
 */
typedef void (*iopf_destroy_fn)(void *userdata);

/**
 * @brief A log callback. `level` is a syslog level (3 error ... 7 debug).
 * Called with the context's lock held: it must not call libiopf.
 */
typedef void (*iopf_log_fn)(int level, const char *msg, void *userdata);
/**@}*/

/** @name Context */
/**@{*/
/** @brief Options of iopf_ctx_new(). */
struct iopf_ctx_opts {
	size_t sz; /**< sizeof(struct iopf_ctx_opts); set by IOPF_OPTS() */
	/** Worker threads calling handlers in parallel; 0 (default): handlers
	 *  run in the thread that dispatches. */
	unsigned int workers;
	/** Most answers written to one fault fd per write(); 0: 1024. */
	unsigned int batch_max;
	/** Most groups outstanding: a read of a fault queue is sized to the
	 *  room left, so no read takes in more (the kernel queue holds the
	 *  rest; since 1.2 this is exact). Groups submitted by producers
	 *  count too but are never refused. 0: no cap. */
	unsigned int max_outstanding;
	/** Answer INVALID any group outstanding longer than this; 0: never. */
	unsigned int deadline_ms;
	iopf_log_fn log_fn;  /**< log callback; NULL: silent */
	void *log_userdata;  /**< passed to log_fn */
	int log_level;       /**< most verbose level passed; 0: 4 (warning) */
	/* since 1.3 */
	/** Most groups one iopf_ctx_dispatch() call hands out; the rest stay
	 *  ready and the context fd stays readable. 0: no limit. */
	unsigned int dispatch_max_groups;
	/** Time budget of one iopf_ctx_dispatch() call in microseconds: no
	 *  handler is started once it is spent (a running one is not
	 *  interrupted; with workers, it bounds handing groups to them, not
	 *  when they start). 0: no limit. */
	unsigned int dispatch_max_us;
	unsigned int flags;  /**< IOPF_CTX_* */
};

/** Context flag: keep counters per (device, PASID), not only per device
 *  (iopf_ctx_get_device_stats()). Since 1.3. */
#define IOPF_CTX_PASID_STATS (1u << 0)
/** Context flag: debug mode. Ended groups are poisoned and their slots
 *  reused late, and reading a group through a pointer kept past its
 *  handler aborts with a log line. Also set by the environment variable
 *  IOPF_DEBUG=poison. For tests; costs speed. Since 1.3. */
#define IOPF_CTX_POISON (1u << 1)

/**
 * @brief Create a context.
 * @param opts options, or NULL for defaults.
 * @return the context, or NULL with errno set: EINVAL (bad options),
 *         ENOMEM, or an errno of epoll_create1(), eventfd(), timerfd_create()
 *         or pthread_create().
 */
IOPF_API struct iopf_ctx *iopf_ctx_new(const struct iopf_ctx_opts *opts);

/**
 * @brief Free a context: stop its workers, answer every outstanding group
 * INVALID, discard partial requests, close its sources.
 *
 * Closing a fault queue's fd leaves faults of page tables still using
 * its fault object waiting until they are detached: see
 * iopf_source_close() (each such queue that delivered faults with no
 * iopf_source_detach() seen logs one warning, since 1.3).
 * @param ctx the context, or NULL. Not thread safe: no other call on ctx
 *        may run or follow. Called from a handler or any other callback
 *        it is refused (logged at error level, nothing freed): a context
 *        cannot be freed under its own dispatch. Stop the loop and free it
 *        from outside.
 */
IOPF_API void iopf_ctx_free(struct iopf_ctx *ctx);

/**
 * @brief The context's pollable fd, for the caller's event loop.
 *
 * Readable (POLLIN) when iopf_ctx_dispatch() has work: faults to read,
 * answers to flush, deadlines, wake-ups. Owned by the context.
 * @param ctx the context.
 * @return the fd (>= 0), or -EINVAL if ctx is NULL.
 */
IOPF_API int iopf_ctx_get_fd(const struct iopf_ctx *ctx);

/**
 * @brief Do all pending work without blocking: read every readable source,
 * call handlers (or hand groups to workers), expire deadlines, write
 * answers.
 *
 * Hands out the groups ready when it begins (since 1.3 in turns over
 * devices and PASIDs; groups submitted meanwhile wait for the next call),
 * within the context's dispatch_max_groups and dispatch_max_us options if
 * set; see iopf_ctx_dispatch_bounded().
 * @param ctx the context.
 * @return the number of groups handed to handlers (>= 0), or -EDEADLK
 *         (called from a handler), -EINVAL, -EBUSY (another thread is
 *         dispatching), or -EIO if a fault fd failed (logged; other sources
 *         were still served).
 * Thread safety: one dispatching thread at a time per context (others
 * get -EBUSY).
 */
IOPF_API int iopf_ctx_dispatch(struct iopf_ctx *ctx);

/**
 * @brief Dispatch until iopf_ctx_stop(), blocking while idle.
 * @param ctx the context.
 * @return 0 once stopped, or an error of iopf_ctx_dispatch() other than
 *         -EIO, or -errno of epoll_wait().
 */
IOPF_API int iopf_ctx_run(struct iopf_ctx *ctx);

/**
 * @brief Make iopf_ctx_run() return. Async-signal-safe; any thread.
 * @param ctx the context.
 * @return 0, or -EINVAL.
 */
IOPF_API int iopf_ctx_stop(struct iopf_ctx *ctx);

/**
 * @brief Write every answer gathered so far.
 * @param ctx the context.
 * @return 0, or -EINVAL. Write errors are counted and logged, not returned:
 *         an answer the kernel refuses is dropped (see iopf_stats).
 */
IOPF_API int iopf_ctx_flush(struct iopf_ctx *ctx);

/** Flag of iopf_ctx_drain() and iopf_source_detach(): every PASID of the
 *  device, and groups without PASID. */
#define IOPF_ALL_PASIDS (1u << 0)

/**
 * @brief Wait until every outstanding group of a device (and PASID) is
 * answered and the answers written, and no fault queue of the context
 * holds groups not yet read (a queue paused by max_outstanding excepted).
 *
 * If no other thread is dispatching, drain dispatches itself meanwhile.
 * @param dev_id device id.
 * @param pasid PASID, or IOPF_NO_PASID for groups without one; ignored with
 *        IOPF_ALL_PASIDS.
 * @param flags 0 or IOPF_ALL_PASIDS.
 * @param timeout_ms how long to wait; < 0: forever.
 * @param ctx the context.
 * @return 0, -ETIMEDOUT, -EDEADLK (from a handler), -EINVAL, or
 *         -EMSGSIZE (since 1.2): a fault queue holds a group too large to
 *         be read at all (over 1,048,576 records), so it can never drain.
 */
IOPF_API int iopf_ctx_drain(struct iopf_ctx *ctx, uint32_t dev_id,
			    uint32_t pasid, unsigned int flags, int timeout_ms);

/**
 * @brief Set the default handler, used when no device or PASID handler
 * matches. Without any handler, groups are answered INVALID (counted).
 * @param fn handler, or NULL to remove.
 * @param ctx the context.
 * @param userdata passed to fn, last.
 * @return 0, -EINVAL, or (since 1.3) -ENOMEM: no memory for the
 *         callback's binding; nothing changed.
 */
IOPF_API int iopf_ctx_set_handler(struct iopf_ctx *ctx, iopf_handler_fn fn,
				  void *userdata);

/**
 * @brief Set the handler for one device (all its PASIDs).
 * @param ctx the context.
 * @param dev_id device id (the iommufd device object id faults carry).
 * @param fn the callback, or NULL to remove it.
 * @param userdata passed to fn, last.
 * @return 0, -EINVAL, -ENOMEM.
 */
IOPF_API int iopf_ctx_set_device_handler(struct iopf_ctx *ctx, uint32_t dev_id,
					 iopf_handler_fn fn, void *userdata);

/**
 * @brief Set the handler for one device and PASID (IOPF_NO_PASID: its
 * groups without PASID). Takes precedence over the device handler.
 * @param ctx the context.
 * @param dev_id device id (the iommufd device object id faults carry).
 * @param pasid PASID, or IOPF_NO_PASID for groups without one.
 * @param fn the callback, or NULL to remove it.
 * @param userdata passed to fn, last.
 * @return 0, -ENOMEM, or -EINVAL (also for pasid 0xfffffffe, which
 *         stands for the device handler).
 */
IOPF_API int iopf_ctx_set_pasid_handler(struct iopf_ctx *ctx, uint32_t dev_id,
					uint32_t pasid, iopf_handler_fn fn,
					void *userdata);

/**
 * @brief A batch handler: many groups at once (since 1.2).
 *
 * For callers that resolve faults in batches (as GPU drivers do, 256 at a
 * time): called with up to 64 groups of one dispatch round (one at a time
 * with workers, or with a dispatch time budget), it sets codes[i] for groups[i] to IOPF_CODE_SUCCESS,
 * IOPF_CODE_INVALID or IOPF_DEFER (codes arrive as IOPF_CODE_INVALID).
 * Group pointers are valid until it returns; the rest is as for
 * iopf_handler_fn.
 */
typedef void (*iopf_batch_handler_fn)(struct iopf_group *const *groups,
				      int *codes, size_t n, void *userdata);

/**
 * @brief Set the batch handler (since 1.2): used instead of the default
 * handler (iopf_ctx_set_handler()) for groups that no device or PASID
 * handler takes. NULL removes it.
 * @param ctx the context.
 * @param fn the callback, or NULL.
 * @param userdata passed to fn, last.
 * @return 0, -EINVAL, or (since 1.3) -ENOMEM: no memory for the
 *         callback's binding; nothing changed.
 */
IOPF_API int iopf_ctx_set_batch_handler(struct iopf_ctx *ctx,
					iopf_batch_handler_fn fn,
					void *userdata);

/**
 * @brief Set or replace the log callback.
 * @param level most verbose syslog level passed (0: 4, warning).
 * @param ctx the context.
 * @param fn the callback, or NULL to remove it.
 * @param userdata passed to fn, last.
 * @return 0, or -EINVAL.
 */
IOPF_API int iopf_ctx_set_log(struct iopf_ctx *ctx, iopf_log_fn fn,
			      void *userdata, int level);

/** A log callback printing "libiopf: <msg>" to stderr.
 * @param level the message's syslog level (ignored).
 * @param msg the message, without newline.
 * @param userdata ignored.
 */
IOPF_API void iopf_log_stderr(int level, const char *msg, void *userdata);
/**@}*/

/** @name Statistics */
/**@{*/
/** Buckets of the latency histogram: bucket i counts [2^i, 2^(i+1)) ns. */
#define IOPF_LAT_BUCKETS 40

/** @brief Counters of a context; read with iopf_ctx_get_stats(). */
struct iopf_stats {
	size_t sz;                 /**< sizeof(struct iopf_stats) */
	uint64_t records;          /**< records read or submitted */
	uint64_t groups;           /**< complete groups taken in */
	uint64_t answers_success;  /**< SUCCESS answers sent */
	uint64_t answers_invalid;  /**< INVALID answers sent (any cause) */
	uint64_t auto_answers;     /**< INVALID sent by libiopf itself */
	uint64_t no_handler;       /**< groups with no handler (auto INVALID) */
	uint64_t deadline_expired; /**< groups past deadline (auto INVALID) */
	uint64_t malformed;        /**< malformed groups (auto INVALID) */
	uint64_t alloc_failures;   /**< groups answered INVALID for ENOMEM */
	uint64_t kernel_answered;  /**< groups the kernel answered (detach) */
	uint64_t refused_answers;  /**< stale, duplicate or late answers */
	uint64_t unmatched_answers;/**< iopf_respond_prg() with no match (also
				        counted in refused_answers) */
	uint64_t read_calls;       /**< read() calls on fault fds */
	uint64_t write_calls;      /**< write() calls on fault fds */
	uint64_t write_errors;     /**< answers the kernel refused (dropped) */
	uint64_t buffer_growths;   /**< read buffer enlargements */
	uint64_t partial_dropped;  /**< partial requests dropped or discarded */
	uint64_t outstanding;      /**< groups awaiting an answer now */
	uint64_t partial_held;     /**< partial requests held now */
	/** read-to-answer latency, bucket i: [2^i, 2^(i+1)) nanoseconds */
	uint64_t latency_hist[IOPF_LAT_BUCKETS];
	/* since 1.1: device removal */
	uint64_t cancelled;        /**< groups dropped: their device went away */
	uint64_t devices_gone;     /**< devices marked gone */
	uint64_t uevents;          /**< uevent messages received */
	uint64_t uevents_malformed;/**< ignored: malformed or truncated */
	uint64_t uevents_untrusted;/**< ignored: not sent by the kernel */
	uint64_t uevents_unmatched;/**< ignored: no watched device named */
	uint64_t uevents_lost;     /**< uevent socket overflows (rescanned) */
	/* since 1.2 */
	uint64_t unknown_flags;    /**< records with flag bits libiopf does
				        not know (passed on to handlers) */
	uint64_t oversized;        /**< groups of more than max_read_records
				        records (read, answered INVALID) */
	uint64_t source_errors;    /**< fault fds that failed or hung up */
	uint64_t read_errors;      /**< reads that failed and were retried */
	uint64_t uevents_synthetic;/**< ignored: synthetic (SYNTH_UUID) */
	uint64_t uevents_unconfirmed; /**< ignored: the device was still in
				        sysfs (remove) or bound (unbind) */
	/* since 1.3 */
	uint64_t closed_undetached;/**< fault queues that delivered faults,
				        closed with no iopf_source_detach()
				        seen (iopf_source_close()) */
	uint64_t vevents;          /**< vIOMMU events read */
	uint64_t vevents_lost;     /**< overflows seen: lost-events headers
				        read, and sequence gaps */
	uint64_t vevents_malformed;/**< vIOMMU event reads that made no sense */
	uint64_t dispatch_slices;  /**< bounded dispatch calls that stopped at
				        their budget with work left */
};

/**
 * @brief Copy the context's counters.
 * @param st out; st->sz must be set (IOPF_OPTS(iopf_stats, st) does).
 *        An older, smaller struct gets the fields it has.
 * @param ctx the context.
 * @return 0, or -EINVAL.
 */
IOPF_API int iopf_ctx_get_stats(struct iopf_ctx *ctx, struct iopf_stats *st);

/**
 * @brief Latency quantile from a histogram, e.g. q = 0.99.
 * @param st the counters.
 * @param q quantile, from 0 to 1.
 * @return the upper bound in ns of the bucket holding quantile q, or 0
 *         if the histogram is empty.
 */
IOPF_API uint64_t iopf_stats_latency_ns(const struct iopf_stats *st, double q);
/**@}*/

/** @name Fault queues (iommufd fault objects) */
/**@{*/
/** Flag of iopf_fault_queue_opts: the source owns the fd and closes it. */
#define IOPF_FQ_CLOSE_FD (1u << 0)

/** @brief Options of the fault queue constructors. */
struct iopf_fault_queue_opts {
	size_t sz;                  /**< set by IOPF_OPTS() */
	unsigned int flags;         /**< IOPF_FQ_* (alloc always owns its fd) */
	unsigned int read_records;  /**< first read buffer size in records;
				         0: 256 */
	unsigned int max_read_records; /**< buffer growth cap; 0: 65536. A
					    larger group is still read, with
					    a buffer of its own, and answered
					    INVALID (stats: oversized). */
};

/**
 * @brief Allocate a fault queue on an iommufd (IOMMU_FAULT_QUEUE_ALLOC).
 * @param iommufd an open /dev/iommu fd (not taken over).
 * @param out_fault_id receives the fault object id to pass to
 *        IOMMU_HWPT_ALLOC with IOMMU_HWPT_FAULT_ID_VALID.
 * @param ctx the context.
 * @param opts options, or NULL for defaults.
 * @return the source, or NULL with errno: EINVAL, ENOMEM, or the ioctl's
 *         errno (ENOTTY: no fault queues in this kernel).
 */
IOPF_API struct iopf_source *
iopf_fault_queue_alloc(struct iopf_ctx *ctx, int iommufd,
		       const struct iopf_fault_queue_opts *opts,
		       uint32_t *out_fault_id);

/**
 * @brief Adopt a fault fd the caller already has (e.g. a VMM's).
 * The fd is made non-blocking. With IOPF_FQ_CLOSE_FD the source closes it
 * once it is closed; if this call fails, the fd stays the caller's.
 * @param ctx the context.
 * @param fault_fd the fault fd.
 * @param fault_id its fault object id (0 if unknown).
 * @param opts options, or NULL for defaults.
 * @return the source, or NULL with errno: EINVAL, EBADF, ENOMEM.
 */
IOPF_API struct iopf_source *
iopf_fault_queue_adopt(struct iopf_ctx *ctx, int fault_fd, uint32_t fault_id,
		       const struct iopf_fault_queue_opts *opts);

/** @return the fault fd, or -EINVAL (NULL, a producer, or closed).
 * @param src the source.
 */
IOPF_API int iopf_source_get_fd(const struct iopf_source *src);

/** @return the fault object id (0 for producers or if unknown).
 * @param src the source.
 */
IOPF_API uint32_t iopf_source_get_fault_id(const struct iopf_source *src);

/**
 * @brief Answer INVALID every outstanding group of a device (and PASID),
 * from every source: a guest reset, a guest unbinding a PASID, a VM being
 * torn down. (since 1.1)
 *
 * Groups a handler still holds are answered too: the handler's own answer
 * is then refused, and answers by handle get -ESHUTDOWN. Unlike
 * iopf_source_detach(), the answers are written: the kernel still waits
 * for them. Producer sources also discard the matching partial requests.
 * @param ctx the context.
 * @param dev_id device id.
 * @param pasid PASID, or IOPF_NO_PASID for groups without one.
 * @param flags 0 or IOPF_ALL_PASIDS.
 * @return the number of groups answered, or -EINVAL.
 */
IOPF_API int iopf_ctx_answer_invalid(struct iopf_ctx *ctx, uint32_t dev_id,
				     uint32_t pasid, unsigned int flags);

/**
 * @brief Tell libiopf that a device (and PASID) was detached from, or
 * replaced on, its fault-capable page table: the kernel has answered its
 * groups INVALID itself. They are dropped without a write; their handles
 * then get -ESHUTDOWN. Call it right after the detach or replace ioctl.
 * (libiopf also notices a kernel answer when the kernel reuses a cookie.)
 * @param flags 0 or IOPF_ALL_PASIDS.
 * @param src the source.
 * @param dev_id device id (the iommufd device object id faults carry).
 * @param pasid PASID, or IOPF_NO_PASID for groups without one.
 * @return the number of groups (and unwritten answers) dropped, or
 *         -EINVAL, -ESHUTDOWN (the source is closed), -EOPNOTSUPP (a
 *         producer: no kernel answers its groups; use
 *         iopf_producer_flush_pasid()).
 */
IOPF_API int iopf_source_detach(struct iopf_source *src, uint32_t dev_id,
				uint32_t pasid, unsigned int flags);

/**
 * @brief Close a source: answer every outstanding group INVALID (and
 * write those answers), discard partial requests, close the fd if owned.
 * Later answers to its groups get -ESHUTDOWN without touching the kernel.
 *
 * Any thread, any time, handlers included: it takes effect at once. The
 * source's memory is freed when the last group that came from it is let
 * go (a handler still running keeps it), so iopf_group_source() stays
 * valid in a running handler; calls on a closed source return
 * -ESHUTDOWN or -EINVAL. Do not close a source twice.
 *
 * Detach first (since 1.3 this is said and counted): closing a fault fd
 * answers nothing in the kernel (Linux 6.12 checked). Groups the kernel
 * still queues, and new faults of devices whose page table still uses
 * the fault object, wait, their devices stalled, until that table is
 * detached or replaced (which answers them INVALID); the fault object
 * lives on until the table is destroyed. Detach or replace the tables,
 * call iopf_source_detach(), then close. A fault queue that delivered
 * faults and is closed with no iopf_source_detach() call on it logs one
 * warning and counts in iopf_stats.closed_undetached.
 * @param src the source, or NULL.
 */
IOPF_API void iopf_source_close(struct iopf_source *src);
/**@}*/

/** @name One-at-a-time producers */
/**@{*/
/** @brief Options of iopf_producer_new(). */
struct iopf_producer_opts {
	size_t sz;               /**< set by IOPF_OPTS() */
	iopf_respond_fn respond; /**< required: receives every answer */
	void *userdata;          /**< passed to respond */
	/** Partial requests held per device; past it they are dropped and
	 *  counted and the group is flagged IOPF_GROUP_TRUNCATED. 0: 256. */
	unsigned int partial_cap;
	/** Since 1.3: called once with userdata when respond can no longer
	 *  be called: the producer is closed (or its context freed) and its
	 *  last answer delivered. No lock held; as a destroy callback of
	 *  iopf_ctx_set_handler_full(). NULL: none. */
	iopf_destroy_fn destroy;
};

/**
 * @brief Create a producer source: for page requests seen one at a time.
 * @param ctx the context.
 * @param opts options, or NULL for defaults.
 * @return the source, or NULL with errno: EINVAL (no respond callback or
 *         bad options), ENOMEM.
 */
IOPF_API struct iopf_source *
iopf_producer_new(struct iopf_ctx *ctx, const struct iopf_producer_opts *opts);

/**
 * @brief Submit one page request. Requests without IOPF_F_LAST_PAGE are
 * held per (device, PASID, PRG index) until the LAST one arrives; then the
 * whole group is queued for dispatch.
 * @param src the source.
 * @param req the request.
 * @return 0 (held as partial), 1 (group complete and queued),
 *         -ENOSPC (partial dropped: cap reached; counted),
 *         -ENOMEM: for a LAST request, the group was answered INVALID at
 *         once through respond; for a partial one (since 1.2; -ENOSPC
 *         before), it was dropped for want of memory (counted),
 *         -EINVAL (reserved field set, or IOPF_F_PASID_VALID with
 *         IOPF_NO_PASID; nothing held; flag bits libiopf does not know
 *         are passed on to the handler since 1.3, counted in
 *         unknown_flags, not refused),
 *         -ENODEV (the device went away, since 1.1; nothing held),
 *         -ESHUTDOWN (the source is closed, since 1.2; nothing held).
 * A group any of whose partial requests was dropped or discarded is
 * flagged IOPF_GROUP_TRUNCATED when its LAST request arrives (tracked per
 * device by PRG index modulo 512: a group of another PASID with the same
 * index may be flagged too).
 */
IOPF_API int iopf_producer_submit(struct iopf_source *src,
				  const struct iopf_request *req);

/** Flag of iopf_producer_discard_partial(): every device. */
#define IOPF_ALL_DEVICES (1u << 1)

/**
 * @brief Discard held partial requests of a device (or all, with
 * IOPF_ALL_DEVICES), e.g. after the producer's queue overflowed.
 * @param src the source.
 * @param dev_id device id (the iommufd device object id faults carry).
 * @param flags flags, see above; 0 for none.
 * @return the number of requests discarded, or -EINVAL.
 */
IOPF_API int iopf_producer_discard_partial(struct iopf_source *src,
					   uint32_t dev_id, unsigned int flags);

/**
 * @brief Flush a PASID: discard its partial requests and answer INVALID
 * every outstanding group of it (through respond), e.g. before the PASID
 * is torn down.
 * @param pasid PASID, or IOPF_NO_PASID.
 * @param src the source.
 * @param dev_id device id (the iommufd device object id faults carry).
 * @return the number of groups answered, or -EINVAL.
 */
IOPF_API int iopf_producer_flush_pasid(struct iopf_source *src,
				       uint32_t dev_id, uint32_t pasid);
/**@}*/

/** @name Groups and answers */
/**@{*/
/** @return the group's device id.
 * @param g the group.
 */
IOPF_API uint32_t iopf_group_dev_id(const struct iopf_group *g);
/** @return the group's PASID, or IOPF_NO_PASID if it has none.
 * @param g the group.
 */
IOPF_API uint32_t iopf_group_pasid(const struct iopf_group *g);
/** @return the Page Request Group index.
 * @param g the group.
 */
IOPF_API uint32_t iopf_group_prgi(const struct iopf_group *g);
/** @return IOPF_GROUP_* flags.
 * @param g the group.
 */
IOPF_API uint32_t iopf_group_flags(const struct iopf_group *g);
/** @return the kernel cookie (fault queues), 0 for producer groups.
 * @param g the group.
 */
IOPF_API uint32_t iopf_group_cookie(const struct iopf_group *g);
/** @return the source the group came from.
 * @param g the group.
 */
IOPF_API struct iopf_source *iopf_group_source(const struct iopf_group *g);
/**
 * @brief The group's records, in arrival order, the LAST one last.
 * @param n receives the count (>= 1).
 * @param g the group.
 */
IOPF_API const struct iopf_record *iopf_group_records(const struct iopf_group *g,
						      size_t *n);
/** @return the group's handle, for iopf_respond() from any thread.
 * @param g the group.
 */
IOPF_API iopf_handle_t iopf_group_handle(const struct iopf_group *g);

/**
 * @brief Answer a group by handle.
 * @param ctx the context.
 * @param h a handle from iopf_group_handle().
 * @param code IOPF_CODE_SUCCESS or IOPF_CODE_INVALID.
 * @return 0 (answer queued; written at the end of the dispatch round, at
 *         the batch cap, or by iopf_ctx_flush()), or, refused and counted
 *         without touching the kernel:
 *         -EALREADY (already answered), -ESHUTDOWN (its source was closed,
 *         it was detached, or answered INVALID in bulk),
 *         -ETIMEDOUT (answered at its deadline),
 *         -ENODEV (its device went away, since 1.1),
 *         -ENOENT (no such handle), -EINVAL (bad code or ctx).
 *         Which of -EALREADY, -ESHUTDOWN, -ETIMEDOUT and -ENODEV a stale
 *         handle gets depends on the handle alone for the last 65,536
 *         groups ended early (not by an answer); older ones get -EALREADY.
 */
IOPF_API int iopf_respond(struct iopf_ctx *ctx, iopf_handle_t h,
			  enum iopf_code code);

/**
 * @brief Answer the oldest outstanding group of (device, PASID, PRG index):
 * a guest's page group response, which names no cookie.
 * @param pasid PASID, or IOPF_NO_PASID.
 * @param ctx the context.
 * @param dev_id device id (the iommufd device object id faults carry).
 * @param prgi Page Request Group index.
 * @param code IOPF_CODE_SUCCESS or IOPF_CODE_INVALID.
 * The first call builds an index of outstanding groups by (device,
 * PASID, PRG index), kept from then on: callers who never answer by PRG
 * index never pay for it.
 * Groups already ended (by a deadline, a handler's answer, a bulk answer)
 * are never candidates: an answer for a key whose oldest group was ended
 * goes to the next outstanding group of that key, which is how the device
 * itself would take it (PCIe 10.4.2.2: a response names no group, only
 * its PRG index and, if the function wants it, the PASID; an index is
 * reused once answered). A device whose responses carry no PASID:
 * iopf_ctx_set_device_flags() with IOPF_DEV_PRG_PASID_OPTIONAL (since
 * 1.3).
 * @return 0, -ENOENT (no such group outstanding: a late, duplicate or
 *         unknown answer; counted), -ENODEV (the device went away, since
 *         1.1; counted), -ENOMEM (no memory for the index), -EINVAL.
 */
IOPF_API int iopf_respond_prg(struct iopf_ctx *ctx, uint32_t dev_id,
			      uint32_t pasid, uint32_t prgi,
			      enum iopf_code code);

/**
 * @brief Answer many groups by handle under one take of the lock
 * (since 1.2): for a deferred batch, as iopf_respond() on each.
 * @param ctx the context.
 * @param handles n handles.
 * @param codes n codes (IOPF_CODE_SUCCESS or IOPF_CODE_INVALID each).
 * @param n how many.
 * @param results NULL, or n ints receiving what iopf_respond() would have
 *        returned for each (0 or a negative errno).
 * @return the number answered (0..n), or -EINVAL (ctx, or a NULL array
 *         with n > 0). A bad code refuses that one answer (-EINVAL in
 *         results), not the call.
 */
IOPF_API int iopf_respond_many(struct iopf_ctx *ctx,
			       const iopf_handle_t *handles, const int *codes,
			       size_t n, int *results);

/** One guest answer for iopf_respond_prg_many() (since 1.3): the
 *  arguments of iopf_respond_prg(). Its 16-byte layout is fixed. */
struct iopf_prg_answer {
	uint32_t dev_id; /**< device id (the iommufd device object id faults carry) */
	uint32_t pasid;  /**< PASID, or IOPF_NO_PASID */
	uint32_t prgi;   /**< Page Request Group index */
	int32_t code;    /**< IOPF_CODE_SUCCESS or IOPF_CODE_INVALID */
};

/**
 * @brief Answer many groups by (device, PASID, PRG index) under one take
 * of the lock (since 1.3): a guest's page responses as a VMM takes them
 * off its virtual IOMMU's queue, as iopf_respond_prg() on each, in order.
 * Two answers with the same key go to its two oldest groups, as two
 * calls would. Costs less a group than one call each: one lock, one
 * clock read, the ends in runs.
 * @param ctx the context.
 * @param answers n answers.
 * @param n how many.
 * @param results NULL, or n ints receiving what iopf_respond_prg() would
 *        have returned for each (0 or a negative errno).
 * @return the number answered (0..n), or -EINVAL (ctx NULL, or answers
 *         NULL with n > 0). A bad code refuses that one answer (-EINVAL in
 *         results, counted as refused), not the call.
 */
IOPF_API int iopf_respond_prg_many(struct iopf_ctx *ctx,
				   const struct iopf_prg_answer *answers,
				   size_t n, int *results);

/**
 * @brief Every field of one record, as the kernel (or the producer) gave
 * it (since 1.3). Read with iopf_group_record_info(); declare it with
 * IOPF_OPTS(iopf_record_info, ri). Fields may be appended in later
 * releases (the `sz` rule of the options structs applies).
 */
struct iopf_record_info {
	size_t sz;        /**< sizeof(struct iopf_record_info); set by IOPF_OPTS() */
	uint32_t flags;   /**< the record's flags, IOPF_F_* and any bits libiopf
			       does not know (a newer kernel's; counted in
			       iopf_stats.unknown_flags, never refused) */
	uint32_t dev_id;  /**< device id */
	uint32_t pasid;   /**< PASID, or IOPF_NO_PASID without IOPF_F_PASID_VALID */
	uint32_t prgi;    /**< Page Request Group index (the kernel's grpid) */
	uint32_t perm;    /**< IOPF_PERM_* bits of the record */
	/** The kernel record's `length` field, as given: 0 from every kernel
	 *  so far (6.11 to 6.15 set it to 0). 0 for producer requests, which
	 *  carry none. */
	uint32_t length;
	uint64_t addr;    /**< faulting address */
	uint32_t cookie;  /**< the group's kernel cookie; 0 for producers */
	uint32_t raw_perm;/**< the permission field as given, unknown bits too */
};

/**
 * @brief Read every field of record idx of a group (since 1.3).
 *
 * For handlers that need what struct iopf_record (fixed for ABI 1) does
 * not carry: the length field, the cookie, unknown flag and permission
 * bits. Same thread-safety as iopf_group_records(): while the group is
 * the caller's (in its handler, its batch or cancel callback).
 * @param g the group.
 * @param idx the record, 0 .. n-1 (n from iopf_group_records()).
 * @param info out; info->sz must be set (IOPF_OPTS() does). A smaller
 *        struct (an older caller) gets the fields it has; a larger one
 *        gets 0 in the fields this release does not know.
 * @return 0, -EINVAL (g or info NULL, or info->sz too small to hold
 *         `flags`), -ERANGE (idx >= the number of records).
 */
IOPF_API int iopf_group_record_info(const struct iopf_group *g, size_t idx,
				    struct iopf_record_info *info);

/** Device flag of iopf_ctx_set_device_flags(): a guest answer without
 *  PASID (IOPF_NO_PASID) to iopf_respond_prg() matches the oldest
 *  outstanding group of its PRG index on the device whatever that group's
 *  PASID, as for a function whose "PRG Response PASID Required" bit is
 *  clear (PCIe: its responses carry no PASID). */
#define IOPF_DEV_PRG_PASID_OPTIONAL (1u << 0)
/** Device flag of iopf_ctx_set_device_flags(): log (at warning level) the
 *  first guest answer of the device that matches no outstanding group;
 *  later ones are only counted (iopf_stats.unmatched_answers). */
#define IOPF_DEV_LOG_UNMATCHED (1u << 1)

/**
 * @brief Set how guest answers (iopf_respond_prg()) of a device are
 * matched and reported (since 1.3).
 *
 * The default (flags 0) is exact: (device, PASID, PRG index), oldest
 * first. With IOPF_DEV_PRG_PASID_OPTIONAL an answer with pasid
 * IOPF_NO_PASID matches the oldest outstanding group of (device, PRG
 * index) of any PASID, groups without one included; an answer naming a
 * PASID still matches exactly (the PCIe rule, section 10.4.2.2: a
 * response may carry the request's PASID, and a function may use it with
 * the PRG index to match; without "PRG Response PASID Required" it
 * carries none). Such an answer looks up the PRG index once per PASID
 * of the device with groups outstanding: its cost grows with the
 * device's PASIDs in use, not with the groups outstanding.
 * Setting the flags again re-arms the one IOPF_DEV_LOG_UNMATCHED message.
 * @param ctx the context.
 * @param dev_id device id.
 * @param flags IOPF_DEV_* flags; 0 restores the default.
 * @return 0, -EINVAL (ctx NULL or an unknown flag), -ENOMEM.
 */
IOPF_API int iopf_ctx_set_device_flags(struct iopf_ctx *ctx, uint32_t dev_id,
				       unsigned int flags);
/**@}*/

/**
 * @name Devices going away (since 1.1)
 *
 * When a device is unplugged or unbound the kernel answers its groups by
 * itself, and nothing on the fault fd says so. libiopf learns it from the
 * kernel's uevents (libnl-3; iopf_ctx_watch_device()) or from you
 * (iopf_ctx_device_gone()). Then, for that device id:
 * - groups whose handler has run and not yet answered are passed to the
 *   cancel callback (the handler's work for them is void), then dropped;
 *   groups not yet handed to a handler and answers not yet written are
 *   dropped. Nothing is written to the kernel for them; each is counted in
 *   iopf_stats.cancelled. A producer's groups (no kernel answers them)
 *   get their respond call, INVALID (since 1.2).
 * - a `remove` uevent is acted on once the device's sysfs node is gone
 *   (looked at again for up to a second: the kernel sends it just before
 *   it deletes the node), an `unbind` once its driver link is gone;
 *   synthetic uevents (`echo remove > .../uevent`, `udevadm trigger`) are
 *   ignored (since 1.2).
 * - its partial requests are discarded, iopf_producer_submit() refuses it
 *   with -ENODEV, and answers to its groups (by handle, by PRG index, or a
 *   handler's return value) are refused with -ENODEV and counted.
 * - a group still read for it from a fault queue is answered INVALID.
 * The device id stays gone until iopf_ctx_watch_device() or
 * iopf_ctx_unwatch_device() is called for it again (iommufd hands ids out
 * again, lowest free first).
 */
/**@{*/
/**
 * @brief Cancel callback: a group in a handler's hands was dropped because
 * its device went away.
 *
 * Called once per such group, from the thread that learnt of the removal
 * (the one in iopf_ctx_dispatch() for uevents), with no lock held. The
 * group is readable until the callback returns; iopf_group_handle() gives
 * the handle it had, and answering it gives -ENODEV.
 * @param group the cancelled group.
 * @param userdata as given to iopf_ctx_set_cancel_handler().
 */
typedef void (*iopf_cancel_fn)(struct iopf_group *group, void *userdata);

/**
 * @brief Set the cancel callback (NULL: none).
 * @param ctx the context.
 * @param fn the callback.
 * @param userdata passed to fn, last.
 * @return 0, -EINVAL, or (since 1.3) -ENOMEM: no memory for the
 *         callback's binding; nothing changed.
 */
IOPF_API int iopf_ctx_set_cancel_handler(struct iopf_ctx *ctx,
					 iopf_cancel_fn fn, void *userdata);

/**
 * @brief Tell libiopf which device an iommufd device id belongs to, and
 * watch for its removal.
 *
 * The first call opens a kernel uevent socket (libnl-3) and adds it to
 * the context fd, so removals are handled by iopf_ctx_dispatch(): no
 * thread of its own. A `remove` or `unbind` uevent from the kernel that
 * names the device marks dev_id gone (see above). Messages that are
 * malformed, not from the kernel, or about other devices are ignored and
 * counted. Calling it again for dev_id replaces the device and clears a
 * gone mark.
 *
 * @param ctx the context.
 * @param dev_id the iommufd device object id.
 * @param sysdev the device: a sysfs path (`/sys/bus/pci/devices/0000:00:04.0`,
 *        `/sys/devices/...`; symlinks are resolved, the device must exist),
 *        a DEVPATH (`/devices/...`), or a device name matched against the
 *        last component of DEVPATH (`0000:00:04.0`).
 * @return 0; -EINVAL (bad argument), -ENOENT (no such sysfs path),
 *         -ENOMEM, -EOPNOTSUPP (built without libnl-3), or the negative
 *         errno of opening the uevent socket (e.g. -EPERM, -EPROTONOSUPPORT).
 */
IOPF_API int iopf_ctx_watch_device(struct iopf_ctx *ctx, uint32_t dev_id,
				   const char *sysdev);

/**
 * @brief Forget a device id: no longer watched, no longer gone.
 * @param ctx the context.
 * @param dev_id the iommufd device object id.
 * @return 0, -ENOENT (not known), -EINVAL.
 */
IOPF_API int iopf_ctx_unwatch_device(struct iopf_ctx *ctx, uint32_t dev_id);

/**
 * @brief Mark a device id gone by hand (e.g. a VMM told by VFIO's device
 * request interrupt). Works with or without libnl-3.
 *
 * Cancel callbacks run in the calling thread before it returns. Call it
 * only once the kernel has answered the device's groups (the device is
 * unbound from iommufd or the fault table detached from it); answers
 * libiopf still holds are dropped, not written.
 * @param ctx the context.
 * @param dev_id the iommufd device object id.
 * @return the number of groups dropped (>= 0), -EINVAL, or -ENOMEM: the
 *         groups were dropped all the same, but the gone mark (refusing
 *         later answers) could not be kept.
 */
IOPF_API int iopf_ctx_device_gone(struct iopf_ctx *ctx, uint32_t dev_id);
/**@}*/

/**
 * @name Bounded and fair dispatch, handler lifetimes (since 1.3)
 *
 * Groups are handed out round-robin: over devices, and within a device
 * over its PASIDs, one group at a time (a device's weight groups at a
 * time), so a device that floods delays another's groups by at most one
 * turn of the devices that have groups ready. Devices marked
 * IOPF_SCHED_PRIORITY are served before all others.
 */
/**@{*/
/**
 * @brief iopf_ctx_dispatch() within a budget: hand out at most max_groups
 * groups and start no handler once max_us microseconds have passed. What
 * is left stays ready, the context fd stays readable, and the answers of
 * this call are written before it returns (one bounded call is one slice).
 * @param ctx the context.
 * @param max_groups most groups handed out; 0: the context's
 *        dispatch_max_groups option (0 there: no limit).
 * @param max_us time budget in microseconds; 0: the context's
 *        dispatch_max_us option (0 there: no limit). A handler running when
 *        it is spent is not interrupted: a call lasts at most max_us plus
 *        one handler call. A call with groups ready hands out at least
 *        one, however small the budget: a loop of calls always gets
 *        through.
 * @return as iopf_ctx_dispatch().
 * Thread safety: as iopf_ctx_dispatch().
 */
IOPF_API int iopf_ctx_dispatch_bounded(struct iopf_ctx *ctx,
				       unsigned int max_groups,
				       unsigned int max_us);

/** iopf_ctx_set_device_sched() flag: serve this device before others. */
#define IOPF_SCHED_PRIORITY (1u << 0)

/**
 * @brief Set a device's share of dispatch: weight groups a turn (default
 * 1), and IOPF_SCHED_PRIORITY for a device that is latency-sensitive.
 * @param ctx the context.
 * @param dev_id the iommufd device object id.
 * @param weight groups handed out per turn, 1 to 65536; 0: 1.
 * @param flags 0 or IOPF_SCHED_PRIORITY.
 * @return 0, -EINVAL, -ENOMEM. Thread safety: any thread.
 */
IOPF_API int iopf_ctx_set_device_sched(struct iopf_ctx *ctx, uint32_t dev_id,
				       unsigned int weight, unsigned int flags);


/**
 * @brief iopf_ctx_set_handler() with a destroy callback for userdata.
 *
 * The setters of this family replace a callback at once for groups not
 * yet handed out; a call of the old one already running (on a worker, or
 * a deferred batch) finishes. destroy(userdata) is called exactly once,
 * when the callback has been replaced (or removed, or the context freed)
 * and its last running call has returned, with no lock held: usually on
 * the thread that ran that last call, or the setter's thread if none ran
 * (any thread entering libiopf on the context may run a destroy that is
 * due; iopf_ctx_free() runs the rest, and there the context is being
 * torn down: a destroy must not call into it). It runs as a callback: it
 * may call libiopf, but iopf_ctx_dispatch(), run, drain and quiesce
 * return -EDEADLK and iopf_ctx_free() is refused. Setting the same userdata
 * again with the same destroy hands it to the new binding: it is not
 * destroyed then.
 * @param ctx the context.
 * @param fn the callback, or NULL to remove it (destroy is then called
 *        for the old userdata only; the new destroy is ignored).
 * @param userdata passed to fn, last.
 * @param destroy called with userdata once fn can no longer run; NULL:
 *        none.
 * @return 0, -EINVAL, -ENOMEM (nothing changed, destroy not called).
 * Thread safety: any thread, including handlers.
 */
IOPF_API int iopf_ctx_set_handler_full(struct iopf_ctx *ctx,
				       iopf_handler_fn fn, void *userdata,
				       iopf_destroy_fn destroy);

/** @brief iopf_ctx_set_device_handler() with a destroy callback; see
 * iopf_ctx_set_handler_full(). @return 0, -EINVAL, -ENOMEM. */
IOPF_API int iopf_ctx_set_device_handler_full(struct iopf_ctx *ctx,
					      uint32_t dev_id,
					      iopf_handler_fn fn,
					      void *userdata,
					      iopf_destroy_fn destroy);

/** @brief iopf_ctx_set_pasid_handler() with a destroy callback; see
 * iopf_ctx_set_handler_full(). @return 0, -EINVAL, -ENOMEM. */
IOPF_API int iopf_ctx_set_pasid_handler_full(struct iopf_ctx *ctx,
					     uint32_t dev_id, uint32_t pasid,
					     iopf_handler_fn fn,
					     void *userdata,
					     iopf_destroy_fn destroy);

/** @brief iopf_ctx_set_batch_handler() with a destroy callback; see
 * iopf_ctx_set_handler_full(). @return 0, -EINVAL, -ENOMEM. */
IOPF_API int iopf_ctx_set_batch_handler_full(struct iopf_ctx *ctx,
					     iopf_batch_handler_fn fn,
					     void *userdata,
					     iopf_destroy_fn destroy);

/** @brief iopf_ctx_set_cancel_handler() with a destroy callback; see
 * iopf_ctx_set_handler_full(). @return 0, -EINVAL, -ENOMEM. */
IOPF_API int iopf_ctx_set_cancel_handler_full(struct iopf_ctx *ctx,
					      iopf_cancel_fn fn,
					      void *userdata,
					      iopf_destroy_fn destroy);

/**
 * @brief Wait until no thread runs a callback that has been replaced or
 * removed, and every destroy callback due has returned.
 *
 * After iopf_ctx_set_handler(ctx, NULL, NULL) and iopf_ctx_quiesce(ctx),
 * the old handler's userdata can be freed by its owner even without a
 * destroy callback.
 * @param ctx the context.
 * @return 0, -EINVAL, or -EDEADLK from a callback (which could be the one
 *         waited for).
 * Thread safety: any thread but the context's callbacks.
 */
IOPF_API int iopf_ctx_quiesce(struct iopf_ctx *ctx);
/**@}*/

/** @name Per-device statistics (since 1.3) */
/**@{*/
/** @brief Counters of one device, or one (device, PASID); read with
 *  iopf_ctx_get_device_stats(). */
struct iopf_device_stats {
	size_t sz;                 /**< sizeof(struct iopf_device_stats) */
	uint32_t dev_id;           /**< the device */
	uint32_t pasid;            /**< the PASID, or IOPF_NO_PASID; for a
				        device's totals: IOPF_NO_PASID */
	uint64_t groups;           /**< groups taken in */
	uint64_t records;          /**< their records */
	uint64_t answers_success;  /**< SUCCESS answers sent */
	uint64_t answers_invalid;  /**< INVALID answers sent (any cause) */
	uint64_t auto_answers;     /**< INVALID sent by libiopf itself */
	uint64_t deadline_expired; /**< answered INVALID past the deadline */
	uint64_t kernel_answered;  /**< ended with no answer written (detach,
				        device gone, a failed fault fd) */
	uint64_t cancelled;        /**< dropped: the device went away */
	uint64_t outstanding;      /**< awaiting an answer now */
	uint64_t ready;            /**< of which not yet handed out */
	/** read-to-answer latency, bucket i: [2^i, 2^(i+1)) nanoseconds */
	uint64_t latency_hist[IOPF_LAT_BUCKETS];
};

/**
 * @brief Copy one device's counters (flags IOPF_ALL_PASIDS), or one
 * (device, PASID)'s (needs the IOPF_CTX_PASID_STATS context flag).
 *
 * Counting starts with a device's first group (or its
 * iopf_ctx_set_device_sched()). iopf_stats_latency_ns()
 * reads the histogram through a struct iopf_stats it is copied into; or
 * use iopf_device_stats_latency_ns().
 * @param ctx the context.
 * @param dev_id the device.
 * @param pasid the PASID (IOPF_NO_PASID: its groups without one); ignored
 *        with IOPF_ALL_PASIDS.
 * @param flags 0 or IOPF_ALL_PASIDS.
 * @param st out; st->sz set (IOPF_OPTS(iopf_device_stats, st) does).
 * @return 0, -EINVAL, -ENOENT (no group of it seen, or its PASID counters
 *         were not kept), -EOPNOTSUPP (per PASID without
 *         IOPF_CTX_PASID_STATS). Thread safety: any thread.
 */
IOPF_API int iopf_ctx_get_device_stats(struct iopf_ctx *ctx, uint32_t dev_id,
				       uint32_t pasid, unsigned int flags,
				       struct iopf_device_stats *st);

/**
 * @brief The devices that have counters, in no particular order.
 * @param ctx the context.
 * @param ids out: up to n device ids; may be NULL if n is 0.
 * @param n room in ids.
 * @return how many devices there are (may exceed n: call again with more
 *         room), or -EINVAL. Thread safety: any thread.
 */
IOPF_API int iopf_ctx_list_devices(struct iopf_ctx *ctx, uint32_t *ids,
				   size_t n);

/**
 * @brief The PASIDs of a device that have counters (needs the
 * IOPF_CTX_PASID_STATS context flag), in no particular order; its groups
 * without a PASID count as IOPF_NO_PASID.
 * @param ctx the context.
 * @param dev_id the device.
 * @param pasids out: up to n PASIDs; may be NULL if n is 0.
 * @param n room in pasids.
 * @return how many there are (may exceed n), -EINVAL, or -EOPNOTSUPP
 *         without IOPF_CTX_PASID_STATS. Thread safety: any thread.
 */
IOPF_API int iopf_ctx_list_pasids(struct iopf_ctx *ctx, uint32_t dev_id,
				  uint32_t *pasids, size_t n);

/**
 * @brief Latency quantile of a device's histogram, as
 * iopf_stats_latency_ns().
 * @param st the counters.
 * @param q quantile, from 0 to 1.
 * @return the upper bound in ns of the bucket holding quantile q, or 0.
 */
IOPF_API uint64_t iopf_device_stats_latency_ns(const struct iopf_device_stats *st,
					       double q);
/**@}*/

/**
 * @name Kernel capabilities (since 1.3)
 *
 * What the running kernel's iommufd allows differs between versions
 * (doc/kernel-versions.md): Linux 6.11 and 6.12 take a fault object only
 * on a nested page table, 6.13 also on a plain paging table (what
 * mapping on demand needs), 6.15 adds PASID-capable tables and vIOMMU
 * event queues. iopf_probe() finds out by trying, never by version
 * number, so backports and distribution kernels answer for themselves.
 */
/**@{*/
/** iopf_probe_info.flags: IOMMU_FAULT_QUEUE_ALLOC works (6.11+). */
#define IOPF_PROBE_FAULT_QUEUE (1u << 0)
/** iopf_probe_info.flags: a fault id is accepted on a nested page table
 *  over a NEST_PARENT table of the device (6.11+, where the IOMMU nests).
 *  Tried with a neutral stage-1 configuration for the IOMMUs
 *  IOMMU_GET_HW_INFO names as Intel VT-d, Arm SMMUv3 or the iommufd
 *  selftest mock; other IOMMUs leave it clear. Needs a dev_id. */
#define IOPF_PROBE_NESTED_FAULT (1u << 1)
/** iopf_probe_info.flags: a fault id is accepted on a plain paging table
 *  on an IOAS (6.13+): faults without nesting, for mapping on demand.
 *  Needs a dev_id. */
#define IOPF_PROBE_PAGING_FAULT (1u << 2)
/** iopf_probe_info.flags: IOMMU_HWPT_ALLOC_PASID is accepted for the
 *  device (6.15+ and an IOMMU with PASID support). Needs a dev_id. */
#define IOPF_PROBE_PASID_ATTACH (1u << 3)
/** iopf_probe_info.flags: the kernel knows IOMMU_VEVENTQ_ALLOC (6.15+). */
#define IOPF_PROBE_VEVENTQ (1u << 4)

/** Device id meaning "no device": iopf_probe() skips what needs one. */
#define IOPF_NO_DEV 0u

/** @brief What iopf_probe() found. Declare it with IOPF_OPTS(). */
struct iopf_probe_info {
	size_t sz;              /**< sizeof(struct iopf_probe_info) */
	uint64_t flags;         /**< IOPF_PROBE_* */
	uint32_t record_size;   /**< bytes of one fault record read (40) */
	uint32_t response_size; /**< bytes of one answer written (8) */
};

/**
 * @brief Find out what the kernel's iommufd allows, by trying.
 *
 * Each IOPF_PROBE_* flag is set when its ioctl succeeds, or (for
 * IOPF_PROBE_VEVENTQ) fails in a way that proves the kernel knows the
 * command (unknown iommufd commands fail with ENOTTY). It allocates an
 * IOAS, a fault object and page tables on `iommufd` and destroys every
 * one of them before it returns, also on failure. Nothing is attached:
 * the device's current page table is never touched.
 * @param iommufd an open /dev/iommu fd (not taken over).
 * @param dev_id an iommufd device id bound to `iommufd`, or IOPF_NO_DEV:
 *        then IOPF_PROBE_NESTED_FAULT, IOPF_PROBE_PAGING_FAULT and
 *        IOPF_PROBE_PASID_ATTACH are not tried and stay clear.
 * @param info out; info->sz must be set (IOPF_OPTS(iopf_probe_info, i)
 *        does) and cover at least `flags`. An older, smaller struct gets
 *        the fields it has.
 * @return 0, or -EINVAL (info NULL or info->sz too small), -EBADF
 *         (iommufd is not an open fd), -ENOTTY (not an iommufd: no
 *         IOMMU_IOAS_ALLOC), -ENOENT (dev_id is not a device of this
 *         iommufd), or another negative errno of IOMMU_IOAS_ALLOC
 *         (e.g. -ENOMEM). Thread safe; it only touches objects it made.
 */
IOPF_API int iopf_probe(int iommufd, uint32_t dev_id,
			struct iopf_probe_info *info);
/**@}*/

/**
 * @name vIOMMU event queues (since 1.3)
 *
 * Linux 6.15 adds vIOMMU event queues (IOMMU_VEVENTQ_ALLOC): how a
 * vIOMMU (nested ARM SMMUv3, NVIDIA Tegra241 CMDQV) hands stage-1 faults
 * and other events to a VMM, to be put in the guest's own event queue.
 * They are reports, not requests: nothing is answered. libiopf reads them
 * in iopf_ctx_dispatch(), like fault queues, and calls the queue's event
 * callback for each, with overflows made explicit: a lost-events header
 * from the kernel becomes an event flagged IOPF_VEVENT_LOST, and a gap in
 * the sequence numbers flags the next event IOPF_VEVENT_GAP; both say how
 * many events were lost. iopf_source_close() closes such a source, and
 * iopf_source_get_fd() / iopf_source_get_fault_id() give its fd and
 * vEVENTQ id.
 *
 * Tested against libiopf's fake kernel only (written from the 6.15
 * eventq.c), not yet against a real kernel.
 */
/**@{*/
/** vEVENTQ type: ARM SMMUv3 (32-byte event records). Kernel ABI value. */
#define IOPF_VEVENTQ_TYPE_ARM_SMMUV3 1u
/** vEVENTQ type: NVIDIA Tegra241 CMDQV (16-byte error maps). */
#define IOPF_VEVENTQ_TYPE_TEGRA241_CMDQV 2u

/** Event flag: the kernel's queue overflowed (its lost-events header);
 *  no payload (len 0, data NULL). */
#define IOPF_VEVENT_LOST (1u << 0)
/** Event flag: the sequence numbers skipped before this event: that many
 *  events were lost to an overflow (lost says how many). */
#define IOPF_VEVENT_GAP (1u << 1)

/**
 * @brief One vIOMMU event, given to an iopf_vevent_fn. Valid during the
 * call only. Fields may be appended in later releases (libiopf fills the
 * struct; do not copy it by size).
 */
struct iopf_vevent {
	uint32_t flags;     /**< IOPF_VEVENT_* */
	uint32_t sequence;  /**< the kernel's sequence number (wraps from
			         INT_MAX to 0) */
	uint32_t type;      /**< the queue's IOPF_VEVENTQ_TYPE_* */
	uint32_t len;       /**< payload bytes (0 for IOPF_VEVENT_LOST) */
	const void *data;   /**< the payload as the kernel gave it (for ARM
			         SMMUv3: the 256-bit event record, little
			         endian), or NULL */
	/** Events lost just before this one, as the sequence numbers tell:
	 *  with IOPF_VEVENT_LOST or IOPF_VEVENT_GAP, at least 1; else 0. On an
	 *  adopted queue the first event has nothing to compare with. */
	uint32_t lost;
	uint32_t raw_flags; /**< the header's flags as given */
};

/**
 * @brief A vIOMMU event callback.
 *
 * Called once per event, in queue order, from the thread in
 * iopf_ctx_dispatch(), with no lock held. It may call iopf_source_close()
 * (no further events of that queue are then delivered) and the answer
 * calls, but not iopf_ctx_dispatch(), iopf_ctx_run(), iopf_ctx_drain()
 * (-EDEADLK) nor iopf_ctx_free().
 */
typedef void (*iopf_vevent_fn)(const struct iopf_vevent *ev, void *userdata);

/** Flag of iopf_veventq_opts: the adopted fd is the source's to close. */
#define IOPF_VQ_CLOSE_FD (1u << 0)

/** @brief Options of the vEVENTQ constructors. */
struct iopf_veventq_opts {
	size_t sz;                /**< set by IOPF_OPTS() */
	unsigned int flags;       /**< IOPF_VQ_* (alloc always owns its fd) */
	/** Payload bytes after each header; 0: the type's (32 for ARM
	 *  SMMUv3, 16 for Tegra241 CMDQV). Required for a type libiopf does
	 *  not know: the stream has no length field. */
	unsigned int payload_len;
	unsigned int read_events; /**< events a read() takes at most; 0: 64 */
};

/**
 * @brief Allocate a vIOMMU event queue (IOMMU_VEVENTQ_ALLOC) and read it
 * in the context's dispatch.
 * @param ctx the context.
 * @param iommufd the /dev/iommu fd (not taken over).
 * @param viommu_id the vIOMMU (IOMMU_VIOMMU_ALLOC).
 * @param type IOPF_VEVENTQ_TYPE_*, one queue per type and vIOMMU.
 * @param depth most events the kernel holds before it loses them (> 0;
 *        VMMs use 64 or so).
 * @param opts options, or NULL for defaults.
 * @param out_veventq_id receives the vEVENTQ object id, or NULL.
 * @param fn the event callback (required).
 * @param userdata passed to fn, last.
 * @return the source, or NULL with errno: EINVAL (bad argument, or a type
 *         of unknown payload size without payload_len), ENOMEM, or the
 *         ioctl's errno: ENOTTY (a kernel before 6.15), EEXIST (the
 *         vIOMMU has a queue of that type), EOPNOTSUPP, ENOENT.
 */
IOPF_API struct iopf_source *
iopf_veventq_alloc(struct iopf_ctx *ctx, int iommufd, uint32_t viommu_id,
		   uint32_t type, uint32_t depth,
		   const struct iopf_veventq_opts *opts, uint32_t *out_veventq_id,
		   iopf_vevent_fn fn, void *userdata);

/**
 * @brief Adopt a vEVENTQ fd the caller already has (e.g. a VMM's). The fd
 * is made non-blocking. With IOPF_VQ_CLOSE_FD the source closes it.
 * @param ctx the context.
 * @param fd the vEVENTQ fd.
 * @param veventq_id its object id (0 if unknown).
 * @param type the queue's IOPF_VEVENTQ_TYPE_* (fixes the payload size).
 * @param opts options, or NULL for defaults.
 * @param fn the event callback (required).
 * @param userdata passed to fn, last.
 * @return the source, or NULL with errno: EINVAL, EBADF, ENOMEM.
 */
IOPF_API struct iopf_source *
iopf_veventq_adopt(struct iopf_ctx *ctx, int fd, uint32_t veventq_id,
		   uint32_t type, const struct iopf_veventq_opts *opts,
		   iopf_vevent_fn fn, void *userdata);
/**@}*/

#ifdef __cplusplus
}
#endif
#endif /* IOPF_IOPF_H */
