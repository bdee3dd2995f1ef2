/* SPDX-License-Identifier: MIT */
/* internal.h - libiopf's private types, shared by lib/ files only. */
#ifndef IOPF_INTERNAL_H
#define IOPF_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uthash.h>

#include "iopf/iopf.h"
#include "kabi.h"

/* Syscalls on fault fds go through this table so that the unit tests can
 * put a fake kernel behind them (tests/fake_kernel.c). Not exported. */
struct iopf_sys {
	ssize_t (*read)(int fd, void *buf, size_t count);
	ssize_t (*write)(int fd, const void *buf, size_t count);
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout);
	int (*ioctl)(int fd, unsigned long req, void *arg);
	int (*close)(int fd);
};
extern const struct iopf_sys *iopf__sys;
/* Test hook: swap the syscall table (NULL restores the real one). */
void iopf__set_sys(const struct iopf_sys *sys);
/* Test hook: make the next `n`-th allocation on the group path fail. */
void iopf__fail_alloc_after(int n);
bool iopf__alloc_should_fail(void);

/* Where a group is in its life. */
enum grp_state {
	G_FREE = 0,  /* slot on the free list */
	G_READY,     /* complete, waiting for its handler */
	G_HANDLING,  /* handler called or deferred: awaiting an answer */
	G_PENDING,   /* answered; answer waiting in its source's batch */
	G_ENDED,     /* life over; pinned by someone, or on the free list */
};

/* Why a group's life ended: decides the error a late answer gets. */
enum grp_end {
	END_ANSWERED = 0, /* -EALREADY */
	END_CLOSED,       /* -ESHUTDOWN: source or context closed */
	END_DETACHED,     /* -ESHUTDOWN: kernel answered (detach/replace) */
	END_DEADLINE,     /* -ETIMEDOUT */
	END_GONE,         /* -ENODEV: its device went away */
};

/* Identity of a Page Request Group within a context. */
struct prg_key {
	uint32_t dev_id;
	uint32_t pasid; /* IOPF_NO_PASID when not valid */
	uint32_t prgi;
	uint32_t pad;   /* zero: keys are hashed as bytes */
};

struct iopf_group {
	struct prg_key key;
	uint32_t gflags;    /* IOPF_GROUP_* */
	uint32_t cookie;    /* kernel cookie (fault queues) */
	uint32_t slot;      /* index in ctx->slots */
	uint32_t gen;       /* generation of the current (or next) life */
	uint8_t state;      /* enum grp_state */
	uint8_t end;        /* enum grp_end of the previous life */
	uint8_t code;       /* answer, once G_PENDING */
	uint8_t pins;       /* ready queue, handler or callback holds it */
	uint8_t why;        /* enum grp_end to record once answered */
	bool prg_head;      /* in ctx->by_prg (head of its FIFO) */
	bool in_out;        /* in the outstanding list */
	bool in_cookie;     /* in src->by_cookie */
	uint32_t nrec, cap;
	union {                  /* the records: grp_rec() */
		struct iopf_record one;  /* cap == 1: inline */
		struct iopf_record *ext; /* cap > 1: allocated */
	};
	struct iopf_source *src;
	union {
		iopf_handler_fn fn;      /* resolved at intake */
		iopf_respond_fn resp_fn; /* producer answer pending delivery */
	};
	void *fn_ud;              /* userdata of fn, then of resp_fn */
	uint64_t t_in;      /* CLOCK_MONOTONIC ns at intake */
	struct iopf_group *next, *prev;         /* outstanding list, read order */
	struct iopf_group *prg_next, *prg_prev; /* same-key FIFO, circular */
	struct iopf_group *rnext;               /* ready queue */
	UT_hash_handle hh_cookie; /* src->by_cookie */
	UT_hash_handle hh_prg;    /* ctx->by_prg (FIFO heads only) */
};

static inline struct iopf_record *grp_rec(struct iopf_group *g)
{
	return g->cap > 1 ? g->ext : &g->one;
}

/* One answer in a fault queue's batch. g == NULL: a raw answer for a
 * cookie with no group object (malformed group, allocation failure). */
struct batch_ent {
	struct iopf_group *g;
	uint32_t gen;
	uint32_t cookie;
	uint32_t code;
};

struct partial {
	struct prg_key key;
	uint32_t n, cap;
	bool truncated;
	struct iopf_record *rec;
	UT_hash_handle hh;
};

struct dev_partials {
	uint32_t dev_id;
	uint32_t held;
	UT_hash_handle hh;
};

enum src_kind { SRC_FAULTQ, SRC_PRODUCER };

struct iopf_source {
	struct iopf_ctx *ctx;
	enum src_kind kind;
	struct iopf_source *next, *prev; /* ctx->sources */
	/* fault queue */
	int fd;
	uint32_t fault_id;
	bool own_fd;
	bool paused;           /* left out of epoll: max_outstanding reached */
	bool broken;           /* a group too large for max_recs: stays out */
	bool readable;         /* epoll said so this round */
	struct iopf_k_pgfault *buf;
	unsigned int buf_recs, max_recs;
	struct iopf_group *by_cookie;
	struct batch_ent *batch;          /* ctx->batch_max entries */
	struct iopf_k_page_response *wbuf; /* ctx->batch_max entries */
	unsigned int nbatch;
	/* producer */
	iopf_respond_fn respond;
	void *respond_ud;
	unsigned int partial_cap;
	struct partial *partials;
	struct dev_partials *devs;
};

/* A device libiopf knows by iommufd device id: watched (a sysfs identity
 * to match uevents against) and/or gone (removed: answers refused). */
struct dev_ent {
	uint32_t dev_id;
	bool gone;
	char *devpath; /* exact DEVPATH ("/devices/..."), or NULL */
	char *name;    /* DEVPATH's last component, or NULL */
	UT_hash_handle hh;
};

/* One kernel uevent, pointing into the message buffer. */
struct uevent {
	const char *action;
	const char *devpath;
	const char *subsystem; /* NULL if absent */
	uint64_t seqnum;
};

struct handler_ent {
	uint64_t key; /* dev_id << 32 | pasid; pasid ANY = device handler */
	iopf_handler_fn fn;
	void *ud;
	UT_hash_handle hh;
};

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
	atomic_uint drops;      /* bumped when groups are ended in bulk
				 * (detach, gone, close, answer_invalid) */
	uint64_t timer_armed;   /* absolute ns the timer is set for; 0: off */
	/* handlers */
	iopf_handler_fn default_fn;
	void *default_ud;
	struct handler_ent *handlers;
	iopf_cancel_fn cancel_fn;
	void *cancel_ud;
	/* devices */
	struct dev_ent *devs;
	unsigned int ngone;
	/* groups */
	struct iopf_group **slots;
	uint32_t nslots, slots_cap;
	struct iopf_group *slab;  /* groups allocated SLAB_GROUPS at a time */
	uint32_t slab_used;
	void **slabs;             /* every slab, to free them */
	uint32_t nslabs;
	struct iopf_group *free_list;
	struct iopf_group *out_head, *out_tail; /* outstanding, read order */
	struct iopf_group *by_prg;
	struct iopf_group *ready_head, *ready_tail;
	uint64_t outstanding, partial_held;
	struct iopf_source *sources;
	struct iopf_stats st;
	/* workers */
	pthread_t *threads;
	unsigned int nthreads;
	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cond;
	struct iopf_group *wq_head, *wq_tail;
	bool wq_stop;
};

#define IOPF_DEFAULT_BATCH 1024u
#define IOPF_DEFAULT_READ_RECS 256u
#define IOPF_DEFAULT_MAX_READ_RECS 65536u
#define IOPF_DEFAULT_PARTIAL_CAP 256u

/* opts.c */
int iopf__opts_copy(void *dst, size_t dst_sz, const void *src);

/* log.c */
void iopf__log(struct iopf_ctx *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define LOG_E 3
#define LOG_W 4
#define LOG_I 6
#define LOG_D 7

/* time.c */
uint64_t iopf__now_ns(void);

/* group.c (ctx->lock held unless said) */
struct iopf_group *iopf__group_get(struct iopf_ctx *ctx, struct iopf_source *src,
				   const struct prg_key *key, uint32_t nrec);
void iopf__group_intake(struct iopf_ctx *ctx, struct iopf_group *g, uint64_t now);
void iopf__group_end(struct iopf_ctx *ctx, struct iopf_group *g,
		     enum grp_end why);
int iopf__group_answer(struct iopf_ctx *ctx, struct iopf_group *g,
		       uint32_t code, enum grp_end why, bool automatic);
void iopf__group_unpin(struct iopf_ctx *ctx, struct iopf_group *g);
struct iopf_group *iopf__group_from_handle(struct iopf_ctx *ctx,
					   iopf_handle_t h, int *err);
void iopf__groups_free(struct iopf_ctx *ctx);
void iopf__prg_remove(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__group_put(struct iopf_ctx *ctx, struct iopf_group *g);
/* Producer answers are called back outside the lock: group_answer pins the
 * ended group on this thread's list (through rnext, no allocation) and the
 * caller calls iopf__deliver_responses() after unlocking. */
extern _Thread_local struct iopf_group *iopf__resp_head;
void iopf__deliver_responses(struct iopf_ctx *ctx);

/* batch.c */
int iopf__batch_add(struct iopf_ctx *ctx, struct iopf_source *src,
		    struct iopf_group *g, uint32_t cookie, uint32_t code);
void iopf__batch_flush(struct iopf_ctx *ctx, struct iopf_source *src);
void iopf__flush_all(struct iopf_ctx *ctx);

/* faultq.c */
int iopf__faultq_read(struct iopf_ctx *ctx, struct iopf_source *src);
void iopf__source_pause(struct iopf_ctx *ctx, bool pause);

/* dispatch.c */
void iopf__wake(struct iopf_ctx *ctx);
void iopf__ready_push(struct iopf_ctx *ctx, struct iopf_group *g);
extern _Thread_local int iopf__in_handler;
extern _Thread_local struct iopf_ctx *iopf__dispatch_ctx;

/* workers.c */
int iopf__workers_start(struct iopf_ctx *ctx);
void iopf__workers_stop(struct iopf_ctx *ctx);
void iopf__workers_push(struct iopf_ctx *ctx, struct iopf_group *g);
void iopf__handle_one(struct iopf_ctx *ctx, struct iopf_group *g);

/* source.c */
struct iopf_source *iopf__source_new(struct iopf_ctx *ctx, enum src_kind kind);
void iopf__source_close_locked(struct iopf_ctx *ctx, struct iopf_source *src);
int iopf__groups_drop(struct iopf_ctx *ctx, struct iopf_source *src,
		      uint32_t dev_id, uint32_t pasid, unsigned int flags,
		      enum grp_end why, struct iopf_group **cancel);
int iopf__answer_invalid_locked(struct iopf_ctx *ctx, struct iopf_source *src,
				uint32_t dev_id, uint32_t pasid,
				unsigned int flags);
int iopf__epoll_set(struct iopf_ctx *ctx, struct iopf_source *src, int op,
		    uint32_t events);

/* device.c (ctx->lock held unless said). Groups cancelled for a removed
 * device are pinned and chained through ->next on *cancel; the caller
 * calls iopf__cancel_deliver() after unlocking. */
bool iopf__dev_is_gone(struct iopf_ctx *ctx, uint32_t dev_id);
int iopf__device_gone_locked(struct iopf_ctx *ctx, uint32_t dev_id,
			     struct iopf_group **cancel);
void iopf__uevent_process(struct iopf_ctx *ctx, const char *buf, size_t len,
			  uint32_t sender_portid, struct iopf_group **cancel);
void iopf__cancel_deliver(struct iopf_ctx *ctx, struct iopf_group *list);
void iopf__devices_rescan(struct iopf_ctx *ctx, struct iopf_group **cancel);
void iopf__devices_free(struct iopf_ctx *ctx);
/* Test seam: handle one uevent message as if the watcher received it from
 * netlink port `sender_portid` (0: the kernel). Takes the lock. */
void iopf__uevent_feed(struct iopf_ctx *ctx, const void *buf, size_t len,
		       uint32_t sender_portid);

/* uevent.c: parse one kernel uevent message; 0 or -EBADMSG. Pure. */
int iopf__uevent_parse(const char *buf, size_t len, struct uevent *ev);

/* watch.c (libnl-3; stubs without it). ctx->lock held. */
int iopf__watch_open(struct iopf_ctx *ctx);
void iopf__watch_close(struct iopf_ctx *ctx);
void iopf__watch_read(struct iopf_ctx *ctx, struct iopf_group **cancel);
#define IOPF_TAG_UEVENT ((void *)3)

/* producer.c */
void iopf__producer_free_partials(struct iopf_ctx *ctx, struct iopf_source *src,
				  const struct prg_key *match, unsigned int flags);

static inline bool key_match(const struct prg_key *k, uint32_t dev,
			     uint32_t pasid, unsigned int flags)
{
	return k->dev_id == dev &&
	       ((flags & IOPF_ALL_PASIDS) || k->pasid == pasid);
}

#endif /* IOPF_INTERNAL_H */
