/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libiopf's private types, shared by lib/ files only.
 *
 * Data flows one way:
 *
 *   source (faultq.c, producer.c) -> assembly (producer.c partials,
 *   faultq.c record parsing) -> group.c intake -> dispatch.c / workers.c
 *   -> handler -> group.c iopf__group_end() -> the source's ops->ended()
 *   (batch.c writes fault-queue answers; producer answers are delivered
 *   through deliver.c).
 *
 * The core (group.c, dispatch.c, source.c, device.c, ctx.c) reaches a
 * source only through its struct src_ops; it never names faultq.c or
 * producer.c functions.
 */
#ifndef IOPF_INTERNAL_H
#define IOPF_INTERNAL_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "iopf/iopf.h"
#include "kabi.h"
#include "sys.h"
#include "table.h"
#include "trace.h"

/* For the hot paths' small helpers: inlined at -O2 too (what distribution
 * builds use), not only at -O3, so that each call site is specialized
 * for its constant arguments. */
#define IOPF_ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- groups ---- */

/* A group's one state. Written under ctx->lock (atomically, so that a
 * handler batch may re-check it without the lock). */
enum gstate {
	GS_FREE = 0, /* slot on the free list */
	GS_QUEUED,   /* complete, in the ready (or worker) queue */
	GS_HANDLING, /* handed to its handler, which has not returned */
	GS_DEFERRED, /* handler returned IOPF_DEFER: awaiting an answer */
	GS_RETURNED, /* handler returned its answer, applied at the end of its
		      * batch: answers by handle or PRG index are refused */
	GS_DONE,     /* life ended (answered or dropped); still pinned */
};

/* How a group's life ended: decides the error a late answer gets. */
enum gend {
	END_ANSWERED = 0, /* -EALREADY; what a slot's end says until its
			   * group ends otherwise (0: a tomb's "none") */
	END_CLOSED,   /* -ESHUTDOWN: source or context closed, flushed */
	END_DETACHED, /* -ESHUTDOWN: the kernel answered (detach/replace) */
	END_DEADLINE, /* -ETIMEDOUT */
	END_GONE,     /* -ENODEV: its device went away */
};

/* iopf__group_end() code meaning "no answer from us: the kernel (or
 * nobody) answers". */
#define NO_ANSWER (-1)

/* Identity of a Page Request Group within a context. */
struct prg_key {
	uint32_t dev_id;
	uint32_t pasid; /* IOPF_NO_PASID when not valid */
	uint32_t prgi;
};

static inline uint64_t key_hi(const struct prg_key *k)
{
	return (uint64_t)k->dev_id << 32 | k->pasid;
}

/* The fields an end touches first (the answer paths, by handle or PRG
 * index, in random order at 100,000 outstanding: two cache lines, not
 * three), the record and what intake alone needs last. */
struct iopf_group {
	struct prg_key key;
	uint32_t gen;     /* generation: bumped when the slot is recycled */
	uint8_t state;    /* enum gstate; gst()/gst_set() */
	uint8_t pins;     /* queue, handler, delivery or cancel list */
	/* Bit-fields, all written under ctx->lock: one byte for them, so
	 * that the inline record's length fits in the group. */
	uint8_t end : 4;  /* enum gend, once GS_DONE */
	uint8_t code : 1; /* the answer (producer delivery) */
	bool indexed : 1; /* in the PRG index */
	bool gathered : 1; /* among iopf_respond_many()'s, not yet ended */
	uint8_t gflags;   /* IOPF_GROUP_*, GF_POISONED */
	uint32_t flow;    /* its (device, PASID) flow: sched.c, from intake */
	struct iopf_source *src;  /* referenced while the slot holds it */
	uint64_t t_in;            /* CLOCK_MONOTONIC ns at intake */
	/* ready or worker queue while QUEUED; cancel list once HANDLING or
	 * DEFERRED (never both: a group leaves its queue to be handled);
	 * the free list or the quarantine once FREE */
	struct iopf_group *qnext;
	uint32_t cookie;  /* kernel cookie (fault queues), else 0 */
	uint32_t seq;     /* intake order (wraps; compared by difference) */
	/* One link per list a group can be on, never shared. (The deadline
	 * keeps handles in a ring of its own: deadline.c.) */
	struct iopf_group *prg_next, *prg_prev; /* same-key FIFO, circular */
	struct iopf_group *dnext;  /* producer answer delivery list */
	uint32_t slot;    /* slab slot * SLAB_GROUPS + index in it */
	uint32_t len1;    /* the inline record's length field (cap == 1) */
	uint32_t nrec, cap;
	union {                  /* the records: grp_rec() */
		struct iopf_record one;  /* cap == 1: inline */
		struct iopf_record *ext; /* cap > 1: allocated */
	};
};

_Static_assert(sizeof(struct iopf_group) == 112,
	       "a group is 112 bytes, its first record inline (issue 13: at most 128 a group)");

/* gflags bit: the slot is free and poisoned (IOPF_CTX_POISON). */
#define GF_POISONED 0x80u
#define POISON_BYTE 0x6b
#define QUARANTINE 4096u

/* Public accessors on a group pointer: a freed, poisoned one aborts. */
void iopf__poisoned(const struct iopf_group *g) __attribute__((noreturn));
static inline const struct iopf_group *grp_checked(const struct iopf_group *g)
{
	if (__builtin_expect(g->gflags & GF_POISONED, 0))
		iopf__poisoned(g);
	return g;
}

static inline struct iopf_record *grp_rec(struct iopf_group *g)
{
	return g->cap > 1 ? g->ext : &g->one;
}

/* The records' length fields: stored apart from struct iopf_record
 * (whose layout is public), after the cap records of ext. */
static inline uint32_t *grp_len(struct iopf_group *g)
{
	return g->cap > 1 ? (uint32_t *)(g->ext + g->cap) : &g->len1;
}

static inline uint8_t gst(const struct iopf_group *g)
{
	return __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
}

static inline void gst_set(struct iopf_group *g, enum gstate s)
{
	__atomic_store_n(&g->state, (uint8_t)s, __ATOMIC_RELEASE);
}

static inline bool gst_live(uint8_t s)
{
	return s == GS_QUEUED || s == GS_HANDLING || s == GS_DEFERRED ||
	       s == GS_RETURNED;
}

/* Live and still open to an answer by handle or PRG index. */
static inline bool gst_answerable(uint8_t s)
{
	return s == GS_QUEUED || s == GS_HANDLING || s == GS_DEFERRED;
}

static inline iopf_handle_t grp_handle(const struct iopf_group *g)
{
	return (uint64_t)g->gen << 32 | (g->slot + 1);
}

/* ---- sources ---- */

struct iopf_ctx;
struct iopf_source;

/* What a kind of source does; the core calls nothing else of it. All
 * with ctx->lock held. */
struct src_ops {
	const char *kind;
	bool kernel; /* the kernel answers its groups on detach: a fault queue */
	/* Take in what waits to be read. 0, or -EIO: the source failed. */
	int (*read)(struct iopf_ctx *ctx, struct iopf_source *src);
	/* Groups of this source ended; codes[i] is gs[i]'s answer,
	 * IOPF_CODE_* or NO_ANSWER (the kernel answered it). answers: none
	 * is NO_ANSWER (the caller knows, most often at compile time). */
	void (*ended)(struct iopf_ctx *ctx, struct iopf_source *src,
		      struct iopf_group *const *gs, const int *codes,
		      unsigned int n, bool answers);
	/* Write the answers gathered so far (fault queues). */
	/* Returns how many answers a passing failure kept back. */
	unsigned int (*flush)(struct iopf_ctx *ctx, struct iopf_source *src);
	/* The kernel answered (dev, pasid) itself: forget unwritten answers
	 * and partial requests. Returns the answers forgotten. */
	unsigned int (*forget)(struct iopf_ctx *ctx, struct iopf_source *src,
			       uint32_t dev, uint32_t pasid, unsigned int flags);
	/* Discard partial requests matching (dev, pasid, flags). */
	void (*discard)(struct iopf_ctx *ctx, struct iopf_source *src,
			uint32_t dev, uint32_t pasid, unsigned int flags);
	/* Groups wait to be read (drain). */
	bool (*waiting)(struct iopf_ctx *ctx, struct iopf_source *src);
	/* Leave or rejoin the poll set as room allows (max_outstanding). */
	void (*throttle)(struct iopf_ctx *ctx, struct iopf_source *src);
	/* Closed: release the fd and whatever is not memory. */
	void (*close)(struct iopf_ctx *ctx, struct iopf_source *src);
	/* The last reference went: free the memory (ctx->lock held). */
	void (*destroy)(struct iopf_source *src);
};

struct iopf_source {
	struct iopf_ctx *ctx;
	const struct src_ops *ops;
	struct iopf_source *next, *prev; /* ctx->sources, while open */
	unsigned int refs;      /* the context's (while open) + one a group */
	bool closed;
	bool failed;            /* fd error or hang-up: inert until closed */
	bool stuck;             /* a waiting group cannot be read at all */
	bool readable;          /* epoll said so this round */
	bool detach_seen;       /* iopf_source_detach() was called on it */
	int fd;                 /* -1 for producers */
	uint32_t fault_id;
};

/* A fault queue (faultq.c, batch.c). An answer gathered: what is
 * written (wbuf[i]) and whose it is (bkey[i], to forget it if the kernel
 * answered the group itself). */
struct batch_key {
	uint32_t dev_id, pasid;
};

struct faultq {
	struct iopf_source s;
	bool own_fd;
	bool in_poll;          /* in the context's epoll set */
	bool throttled;        /* out of it for room: counted in nthrottled */
	bool delivered;        /* a group was read from it */
	uint64_t wait_below;   /* blocked until outstanding < this; 0: no */
	struct iopf_k_pgfault *buf;
	unsigned int buf_recs, max_recs;
	struct iopf_group **by_cookie; /* cookie-indexed, read not answered */
	uint32_t ncookies;
	struct iopf_k_page_response *wbuf; /* batch_cap answers, as written */
	struct batch_key *bkey;            /* and their groups' keys */
	unsigned int nbatch, batch_cap;    /* batch_cap: ctx->batch_max, more
					    * only while writes fail */
};

/* A producer (producer.c). */
struct producer {
	struct iopf_source s;
	iopf_respond_fn respond;
	void *respond_ud;
	struct binding *rb;   /* respond's destroy, if any: put at destroy */
	unsigned int partial_cap;
	struct tbl partials;  /* prg_key -> newest block of held records,
			       * u: how many (producer.c) */
	struct tbl devs;      /* dev_id -> struct dev_partials */
	uint64_t oom_trunc[8]; /* PRG indices (mod 512) whose partial was
				* dropped for want of memory */
};

void iopf__source_add(struct iopf_ctx *ctx, struct iopf_source *src);
void iopf__source_fail(struct iopf_ctx *ctx, struct iopf_source *src,
		       const char *what, int err);
/* An errno that means the fd itself is gone (not a passing condition). */
static inline bool fd_dead(int err)
{
	return err == EBADF || err == EPIPE || err == ECONNRESET ||
	       err == ENOTCONN || err == ENODEV;
}
int iopf__groups_end_matching(struct iopf_ctx *ctx, struct iopf_source *src,
			      uint32_t dev, uint32_t pasid,
			      unsigned int flags, int code, enum gend why,
			      struct iopf_group **cancel);
void iopf__source_close_locked(struct iopf_ctx *ctx, struct iopf_source *src);
int iopf__poll_set(struct iopf_ctx *ctx, struct iopf_source *src, bool in);
void iopf__kobj_drop(int iommufd, int fd, uint32_t id);
int iopf__fd_nonblock(int fd);

/* ---- devices ---- */

/* A device libiopf knows by iommufd device id: watched (a sysfs identity
 * to match uevents against) and/or gone (removed: answers refused). */
struct dev_ent {
	uint32_t dev_id;
	bool gone;
	char *devpath; /* exact DEVPATH ("/devices/..."), or NULL */
	char *name;    /* DEVPATH's last component, or NULL */
	char *removing; /* a removal seen, sysfs node not gone yet: its path */
	uint64_t removing_since;
};

/* One kernel uevent, pointing into the message buffer. */
struct uevent {
	const char *action;
	const char *devpath;
	const char *subsystem; /* NULL if absent */
	uint64_t seqnum;
	bool synthetic;        /* SYNTH_UUID present: written to sysfs */
};

/* A callback and its userdata as set (handlers.c). Counted under
 * ctx->lock: one reference while installed, one per call running. */
enum bkind { B_HANDLER, B_BATCH, B_CANCEL, B_RESPOND };

struct binding {
	union {
		void (*any)(void);
		iopf_handler_fn fn;
		iopf_batch_handler_fn batch;
		iopf_cancel_fn cancel;
	};
	void *ud;
	iopf_destroy_fn destroy;
	unsigned int refs;
	uint8_t kind;         /* enum bkind */
	bool retired;         /* replaced while running: counted busy */
	struct binding *next; /* ctx->dead, once refs is 0 */
};

/* ---- scheduling (sched.c): round-robin over devices, then PASIDs ---- */

/* Every group counted in groups ends counted in exactly one of success,
 * invalid and kernel: outstanding is their difference, not kept. */
struct sched_count {
	uint64_t groups, records, success, invalid, auto_answers, deadline,
		kernel, gone, ready;
	uint64_t hist[IOPF_LAT_BUCKETS];
};

struct dsched;

/* The groups of one (device, PASID): its ready FIFO, its counters. */
struct flow {
	uint64_t key;              /* dev << 32 | pasid */
	uint32_t idx;              /* ctx->sched.flows[idx] == this */
	uint32_t refs;             /* groups naming it (intake to free) */
	uint32_t nready;           /* groups on head..tail */
	bool active;               /* on its device's list of ready flows */
	uint32_t prg_cap;          /* prg[]'s length: 0 or 64..PRG_DIRECT */
	uint32_t *prg;             /* PRG index -> slot + 1 of its key's
				    * oldest group, 0: none (group.c) */
	struct dsched *dev;
	struct iopf_group *head, *tail; /* ready groups, through qnext */
	struct flow *anext;        /* the device's ready flows */
	struct flow *inext;        /* free list */
	struct sched_count *cnt;   /* with IOPF_CTX_PASID_STATS */
};

/* One device: its ready flows in turn, its share, its counters. */
struct dsched {
	uint32_t dev_id;
	unsigned int weight, credit;
	bool prio, active;
	struct flow *fhead, *ftail;
	struct dsched *anext;      /* ctx->sched.act[prio] */
	struct sched_count cnt;
};

struct sched {
	struct flow **flows;       /* by index; [0]: the fallback */
	uint32_t nflows, cap;
	struct flow *free;         /* flows to reuse */
	uint32_t hand;             /* where flow_alloc() looks for one */
	uint64_t hand_steps;       /* flows it looked at (a test reads it) */
	struct flow *fcache[64];   /* flows looked up lately, by key hash */
	struct tbl by_key;         /* dev << 32 | pasid -> flow */
	struct tbl devs;           /* dev_id -> dsched */
	struct dsched *act_head[2], *act_tail[2]; /* [0]: priority */
	uint64_t nready;
	uint64_t lat_tin, lat_now; /* lat_bucket()'s last group */
	unsigned int lat_b;
	struct flow fallback;      /* when memory runs out: FIFO, no counts */
	struct dsched fallback_dev;
};

/* ---- the context ---- */

struct iopf_ctx {
	pthread_mutex_t lock;
	pthread_cond_t answered; /* broadcast when drainers wait */
	unsigned int drainers;
	/* options */
	unsigned int workers, batch_max, max_outstanding, deadline_ms;
	iopf_log_fn log_fn;
	void *log_ud;
	int log_level;
	/* fds */
	int epfd, wakefd, timerfd;
	void *watch;            /* struct nl_sock * of the uevent watcher */
	atomic_bool wake_pending;
	atomic_bool stop;
	atomic_bool busy;       /* a thread is in iopf_ctx_dispatch() */
	atomic_int looping;     /* threads in iopf_ctx_run() */
	uint64_t timer_armed;   /* absolute ns the timer is set for; 0: off */
	unsigned int nthrottled; /* sources out of the poll set for room */
	unsigned int dispatch_max_groups, dispatch_max_us, flags;
	/* handlers (handlers.c) */
	struct binding *def_b, *batch_b, *cancel_b;
	struct tbl handlers;    /* dev << 32 | pasid -> struct binding */
	struct binding *dead;   /* to destroy, outside the lock */
	unsigned int retired_busy; /* replaced, still running somewhere */
	unsigned int reaping;   /* threads calling destroy callbacks */
	pthread_cond_t quiesced;
	/* scheduling */
	struct sched sched;
	/* devices */
	struct tbl devs;        /* dev_id -> struct dev_ent */
	unsigned int ngone;
	unsigned int nremoving; /* devices whose removal awaits confirmation */
	/* groups */
	struct iopf_group **slabs; /* groups, SLAB_GROUPS at a time: a
				    * handle's slot is found through them */
	uint32_t nslabs, nslots;   /* slots handed out, in the last slab too */
	struct iopf_group *free_list;
	/* IOPF_CTX_POISON: freed slots wait here (FIFO) before reuse, so a
	 * pointer kept past its group finds it poisoned, not reused */
	struct iopf_group *quar_head, *quar_tail;
	uint32_t nquar;
	/* Outstanding groups' handles in intake order, kept only with a
	 * deadline (deadline.c): the oldest live one expires first. Bulk
	 * walks go over the slots. */
	iopf_handle_t *dl_ring;
	uint32_t dl_cap, dl_head, dl_n; /* dl_cap: 0 or a power of two */
	uint32_t seq;             /* next intake number */
	bool prg_on;              /* the PRG index is kept (someone answered by PRG) */
	bool tracked;             /* prg_on or a deadline: intake looks */
	struct tbl by_prg;        /* the PRG index beyond the flows' arrays:
				   * prg_key -> oldest outstanding group */
	struct tbl tombs;         /* handle -> enum gend, for early ends */
	uint64_t *tomb_ring;      /* the same handles, oldest first out */
	uint32_t tomb_head, tomb_n;
	struct iopf_group *deliv_head, *deliv_tail; /* producer answers */
	uint64_t outstanding, partial_held;
	uint64_t nends;           /* groups ended so far: a batch's handlers
				   * see whether any ended meanwhile */
	uint64_t now;             /* last clock read under the lock: one a
				   * batch, not one a group (iopf__tick) */
	uint64_t t_intake;        /* the last intake time (iopf__intake_tick) */
	struct iopf_source *sources;
	struct iopf_stats st;
	/* workers */
	pthread_t *threads;
	unsigned int nthreads;
	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cond;
	struct iopf_group *wq_head, *wq_tail;
	unsigned int wq_len;
	bool wq_stop;
	/* since 1.3: guest answer matching per device (answer.c) */
	struct tbl devflags;      /* dev_id -> DF_* bits, as a pointer */
	/* since 1.3: vIOMMU event queues with events read, not yet handed
	 * to their callback (veventq.c); the dispatching thread's only */
	struct veventq *vq_pending;
};

#define offsetofend(T, f) (offsetof(T, f) + sizeof(((T *)0)->f))

#define IOPF_DEFAULT_BATCH 1024u
#define IOPF_DEFAULT_READ_RECS 256u
#define IOPF_DEFAULT_MAX_READ_RECS 65536u
#define IOPF_DEFAULT_PARTIAL_CAP 256u
#define IOPF_TOMBS 65536u /* early-ended handles remembered */
#define SLAB_GROUPS 64u   /* groups per slab: one malloc, not 64 */

/* batch.c: a fault queue's answers (ctx->lock held) */
unsigned int iopf__batch_flush(struct iopf_ctx *ctx, struct iopf_source *src);
void iopf__batch_full(struct iopf_ctx *ctx, struct faultq *fq);
unsigned int iopf__batch_forget(struct iopf_ctx *ctx, struct iopf_source *src,
				uint32_t dev, uint32_t pasid, unsigned int flags);

/* util.c */
int iopf__opts_copy(void *dst, size_t dst_sz, const void *src,
		    size_t known_end);
void iopf__log(struct iopf_ctx *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define LOG_E 3
#define LOG_W 4
#define LOG_I 6
#define LOG_D 7
uint64_t iopf__now_ns(void);
struct iopf_ctx;
static inline struct iopf_group *iopf__slot(struct iopf_ctx *ctx, uint32_t i)
{
	return &ctx->slabs[i / SLAB_GROUPS][i % SLAB_GROUPS];
}

/* Every live group of the context, in slot order (ctx->lock held; the
 * body may end the group it is given). */
#define FOR_EACH_LIVE(ctx, i, g)                                             \
	for (uint32_t i = 0; i < (ctx)->nslots; i++)                        \
		if ((g = iopf__slot(ctx, i)), gst_live(gst(g)))

static inline uint64_t iopf__tick(struct iopf_ctx *ctx);
/* Callbacks into the user run with this thread-local depth raised: the
 * calls that must not run from them check it. */
extern _Thread_local int iopf__in_callback;
extern _Thread_local struct iopf_ctx *iopf__dispatch_ctx;

/* group.c (ctx->lock held) */
struct iopf_group *iopf__group_get(struct iopf_ctx *ctx, struct iopf_source *src,
				   const struct prg_key *key, uint32_t nrec);
void iopf__group_put(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__group_intake(struct iopf_ctx *ctx, struct iopf_group *g, uint64_t now);
int iopf__group_end(struct iopf_ctx *ctx, struct iopf_group *g, int code,
		    enum gend why);
/* iopf__group_end() for n live groups, answered by handle. */
void iopf__group_end_many(struct iopf_ctx *ctx, struct iopf_group *const *gs,
			  const int *codes, unsigned int n);
/* iopf__group_end() with INVALID from libiopf itself (counted). */
void iopf__group_end_auto(struct iopf_ctx *ctx, struct iopf_group *g,
			  enum gend why);
struct iopf_group *iopf__group_from_handle(struct iopf_ctx *ctx,
					   iopf_handle_t h, int *err);
struct flow *iopf__flow_find(struct iopf_ctx *ctx, uint64_t key);
int iopf__group_by_prg(struct iopf_ctx *ctx, const struct prg_key *k,
		       struct iopf_group **out);
int iopf__end_error(unsigned int why);
void iopf__groups_free(struct iopf_ctx *ctx);

/* deliver.c: producer answers and cancel callbacks run outside the lock,
 * from per-context lists. */
void iopf__deliver_push(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__deliver_due(struct iopf_ctx *ctx);
/* Call the respond callbacks of every answer waiting, then the destroy
 * callbacks due. No lock held. Most calls have neither: a look, no call
 * (an answer pushed after the look is delivered by its pusher). */
static inline void iopf__deliver(struct iopf_ctx *ctx)
{
	if (__atomic_load_n(&ctx->deliv_head, __ATOMIC_RELAXED) ||
	    __atomic_load_n(&ctx->dead, __ATOMIC_RELAXED))
		iopf__deliver_due(ctx);
}
void iopf__cancel_deliver(struct iopf_ctx *ctx, struct iopf_group *list);

/* sched.c (ctx->lock held) */
int iopf__sched_init(struct iopf_ctx *ctx);
void iopf__sched_free(struct iopf_ctx *ctx);
/* The next ready group in turn, or NULL (out of line: sched-inl.h inlines it). */
struct iopf_group *iopf__sched_pop(struct iopf_ctx *ctx);
/* Up to n ready groups in turn into gs; how many. mark: those still
 * QUEUED are marked HANDLING in the same pass (their handler is called
 * next, after this lock hold; the rest ended before their turn).
 * *one_flow: all of one flow, in its order. */
unsigned int iopf__sched_pop_n(struct iopf_ctx *ctx, struct iopf_group **gs,
			       unsigned int n, bool mark, bool *one_flow);
/* Add the per-device counts to the context's (answers, latency). */
void iopf__sched_totals(struct iopf_ctx *ctx, struct iopf_stats *st);

/* handlers.c */
struct binding *iopf__binding_new(enum bkind kind, void (*fn)(void),
				  void *ud, iopf_destroy_fn destroy);
struct binding *iopf__handler_keyed(struct iopf_ctx *ctx, const struct prg_key *k);
struct binding *iopf__cancel_get(struct iopf_ctx *ctx);
void iopf__binding_free(struct iopf_ctx *ctx, struct binding *b);

/* The binding of groups no device or PASID handler takes: the batch
 * handler's, else the default one's (ctx->lock held). */
static inline struct binding *iopf__handler_any(struct iopf_ctx *ctx)
{
	return ctx->batch_b ? ctx->batch_b : ctx->def_b;
}

/* The binding that handles a group now, referenced (ctx->lock held):
 * its (device, PASID)'s, its device's, the batch or the default one. */
static inline struct binding *iopf__handler_get(struct iopf_ctx *ctx,
						const struct prg_key *k)
{
	struct binding *b = ctx->handlers.n ? iopf__handler_keyed(ctx, k) : NULL;

	if (!b)
		b = iopf__handler_any(ctx);
	if (b)
		b->refs++;
	return b;
}

/* Drop a reference (ctx->lock held); its destroy runs at iopf__reap(). */
static inline void iopf__binding_put(struct iopf_ctx *ctx, struct binding *b)
{
	if (b && --b->refs == 0)
		iopf__binding_free(ctx, b);
}
/* Call the destroy callbacks due. No lock held. */
void iopf__reap(struct iopf_ctx *ctx);
void iopf__handlers_free(struct iopf_ctx *ctx);

/* veventq.c: the events the dispatching thread's round read, to their
 * callbacks (no lock held; that thread only). */
void iopf__vevents_deliver(struct iopf_ctx *ctx);

/* deadline.c (ctx->lock held) */
int iopf__deadline_add(struct iopf_ctx *ctx, struct iopf_group *g);
struct iopf_group *iopf__deadline_oldest(struct iopf_ctx *ctx);
void iopf__deadline_free(struct iopf_ctx *ctx);

/* dispatch.c */
void iopf__wake(struct iopf_ctx *ctx);
void iopf__handle_batch(struct iopf_ctx *ctx, struct iopf_group **gs, int n);
void iopf__flush_all(struct iopf_ctx *ctx);

/* workers.c */
int iopf__workers_start(struct iopf_ctx *ctx);
void iopf__workers_stop(struct iopf_ctx *ctx);
void iopf__workers_push(struct iopf_ctx *ctx, struct iopf_group **gs,
			unsigned int n);

/* device.c (ctx->lock held unless said). Groups a handler holds when
 * their device goes are chained through ->qnext on *cancel, pinned; the
 * caller calls iopf__cancel_deliver() after unlocking. */
bool iopf__dev_is_gone(struct iopf_ctx *ctx, uint32_t dev_id);
void iopf__uevent_process(struct iopf_ctx *ctx, const char *buf, size_t len,
			  uint32_t sender_portid, struct iopf_group **cancel);
void iopf__devices_rescan(struct iopf_ctx *ctx, struct iopf_group **cancel);
void iopf__devices_confirm(struct iopf_ctx *ctx, struct iopf_group **cancel);
void iopf__devices_free(struct iopf_ctx *ctx);
#ifdef IOPF_TESTING
/* Test seam: one uevent message as if received from netlink port
 * `sender_portid` (0: the kernel). Takes the lock. */
void iopf__uevent_feed(struct iopf_ctx *ctx, const void *buf, size_t len,
		       uint32_t sender_portid);
/* Test seam: where removals are confirmed ("/sys"). */
extern const char *iopf__sysfs;
/* Test seam: the generation of every free slot set to gen (a slot's
 * generation wraps after 2^32 groups; this brings a test there). Takes
 * the lock. */
void iopf__slots_set_gen(struct iopf_ctx *ctx, uint32_t gen);
/* Test seam: flows made (the fallback included) and flows the clock
 * hand looked at so far. */
void iopf__sched_flow_counts(struct iopf_ctx *ctx, uint32_t *nflows,
			     uint64_t *hand_steps);
#endif

/* uevent.c: parse one kernel uevent message; 0 or -EBADMSG. Pure. */
int iopf__uevent_parse(const char *buf, size_t len, struct uevent *ev);

/* watch.c (libnl-3; stubs without it). ctx->lock held. */
int iopf__watch_open(struct iopf_ctx *ctx);
void iopf__watch_close(struct iopf_ctx *ctx);
void iopf__watch_read(struct iopf_ctx *ctx, struct iopf_group **cancel);
#define IOPF_TAG_WAKE ((void *)1)
#define IOPF_TAG_TIMER ((void *)2)
#define IOPF_TAG_UEVENT ((void *)3)

static inline uint64_t iopf__tick(struct iopf_ctx *ctx)
{
	return ctx->now = iopf__now_ns();
}

/* iopf__tick() for an intake (a read of a fault queue, a producer's
 * group): a later time than the intake before, by 1 ns if the clock did
 * not move, so that the groups taken in at one time are those of one
 * read of one source (group_end_n() relies on it). */
static inline uint64_t iopf__intake_tick(struct iopf_ctx *ctx)
{
	uint64_t t = iopf__tick(ctx);

	return ctx->t_intake = t > ctx->t_intake ? t : ctx->t_intake + 1;
}

/* ---- small pieces of the hot path, inline ---- */

static inline void iopf__source_ref(struct iopf_source *src)
{
	src->refs++;
}

static inline void iopf__source_unref(struct iopf_source *src)
{
	if (src && --src->refs == 0)
		src->ops->destroy(src);
}

/* n references let go at once (n may be 0) */
static inline void iopf__source_unref_n(struct iopf_source *src, uint32_t n)
{
	if (n && (src->refs -= n) == 0)
		src->ops->destroy(src);
}


static inline void iopf__group_unpin(struct iopf_ctx *ctx, struct iopf_group *g)
{
	if (--g->pins == 0 && gst(g) == GS_DONE)
		iopf__group_put(ctx, g);
}

/* Gather one answer; the batch is written when it is full. */
static inline void iopf__batch_add(struct iopf_ctx *ctx, struct faultq *fq,
				   uint32_t cookie, uint32_t code,
				   uint32_t dev_id, uint32_t pasid)
{
	unsigned int i = fq->nbatch++;

	fq->wbuf[i] = (struct iopf_k_page_response){ .cookie = cookie, .code = code };
	fq->bkey[i] = (struct batch_key){ .dev_id = dev_id, .pasid = pasid };
	if (fq->nbatch >= ctx->batch_max)
		iopf__batch_full(ctx, fq);
}

static inline bool key_match(const struct prg_key *k, uint32_t dev,
			     uint32_t pasid, unsigned int flags)
{
	return k->dev_id == dev &&
	       ((flags & IOPF_ALL_PASIDS) || k->pasid == pasid);
}

#endif /* IOPF_INTERNAL_H */
