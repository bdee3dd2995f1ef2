/* SPDX-License-Identifier: MIT */
/*
 * sweep.c - iopf-sweep [-v] [--max-points N] [--only NAME]: an
 * allocation-failure sweep of the public API.
 *
 * Linked against the static library with --wrap on every call that can
 * fail for want of resources (malloc, calloc, realloc, strdup,
 * pthread_create, epoll_create1, eventfd, timerfd_create, and libnl's
 * nl_socket_alloc / nl_connect when built with libnl). For each public call
 * in a realistic scenario, one run counts the allocations the call makes
 * (N), then runs k = 1..N fail the k-th of them (NULL or -1 with ENOMEM;
 * EAGAIN for pthread_create). Only calls made by the library during the
 * public call count: the counter is armed right before it and disarmed
 * right after, and the fake kernel's own allocations are left out (its
 * entry points are called through a table that marks them).
 *
 * Each run is a forked child, so a crash is counted, not fatal. A run
 * checks: the call returns a documented error (-ENOMEM, NULL + ENOMEM, ...)
 * or absorbs the failure (the group answered INVALID and counted in
 * alloc_failures); the process does not exit (uthash's default on OOM is
 * exit(-1): exit is wrapped); after it every group is answered (the fake
 * kernel holds none, each raised group answered exactly once after
 * iopf_ctx_free, each completed producer group got exactly one respond
 * callback); nothing leaks (LeakSanitizer in the ASan build, and open
 * fds). Prints a table and exits non-zero on any exit, crash, leak, lost
 * or twice-answered group, or undocumented error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "internal.h" /* test seam: iopf__set_sys */
#include "iopf/iopf.h"

#if IOPF_TEST_LIBNL
#include <netlink/errno.h>
#include <netlink/socket.h>
#endif

/* ---- the failure injector ---- */

static atomic_int armed;
static atomic_long fail_at;  /* 1-based index of the call to fail; 0: none */
static atomic_long counted;  /* calls seen while armed */
static _Thread_local int in_fake; /* inside the fake kernel: not counted */

static bool inject(void)
{
	long n;

	if (!atomic_load(&armed) || in_fake)
		return false;
	n = atomic_fetch_add(&counted, 1) + 1;
	return n == atomic_load(&fail_at);
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
int __real_epoll_create1(int flags);
int __real_eventfd(unsigned int init, int flags);
int __real_timerfd_create(int clock, int flags);
void __real_exit(int status) __attribute__((noreturn));
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t sz);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
int __wrap_epoll_create1(int flags);
int __wrap_eventfd(unsigned int init, int flags);
int __wrap_timerfd_create(int clock, int flags);
void __wrap_exit(int status) __attribute__((noreturn));

void *__wrap_malloc(size_t n)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t sz)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, sz);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg)
{
	if (inject())
		return EAGAIN;
	return __real_pthread_create(t, a, fn, arg);
}

int __wrap_epoll_create1(int flags)
{
	if (inject()) {
		errno = ENOMEM;
		return -1;
	}
	return __real_epoll_create1(flags);
}

int __wrap_eventfd(unsigned int init, int flags)
{
	if (inject()) {
		errno = ENOMEM;
		return -1;
	}
	return __real_eventfd(init, flags);
}

int __wrap_timerfd_create(int clock, int flags)
{
	if (inject()) {
		errno = ENOMEM;
		return -1;
	}
	return __real_timerfd_create(clock, flags);
}

#if IOPF_TEST_LIBNL
struct nl_sock *__real_nl_socket_alloc(void);
int __real_nl_connect(struct nl_sock *sk, int proto);
struct nl_sock *__wrap_nl_socket_alloc(void);
int __wrap_nl_connect(struct nl_sock *sk, int proto);

struct nl_sock *__wrap_nl_socket_alloc(void)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_nl_socket_alloc();
}

int __wrap_nl_connect(struct nl_sock *sk, int proto)
{
	if (inject()) {
		errno = ENOMEM;
		return -NLE_NOMEM;
	}
	return __real_nl_connect(sk, proto);
}
#endif

/* exit() from inside a public call: uthash's uthash_fatal on OOM. */
#define EXIT_ON_OOM 97
#define EXIT_HANG 98

void __wrap_exit(int status)
{
	if (atomic_load(&armed))
		_exit(EXIT_ON_OOM);
	__real_exit(status);
}

static void at_exit_check(void)
{
	if (atomic_load(&armed))
		_exit(EXIT_ON_OOM);
}

extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

/* ---- the fake kernel, behind a table that marks its calls ---- */

#define MAX_FAULTS 8

struct env;
static struct env *E;

static void fault_add(struct fk_fault *f);

static ssize_t s_read(int fd, void *b, size_t n)
{
	ssize_t r;

	in_fake++;
	r = fk_sys_read(fd, b, n);
	in_fake--;
	return r;
}

static ssize_t s_write(int fd, const void *b, size_t n)
{
	ssize_t r;

	in_fake++;
	r = fk_sys_write(fd, b, n);
	in_fake--;
	return r;
}

static int s_poll(struct pollfd *p, nfds_t n, int t)
{
	int r;

	in_fake++;
	r = fk_sys_poll(p, n, t);
	in_fake--;
	return r;
}

static int s_ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	in_fake++;
	r = fk_sys_ioctl(fd, req, arg);
	/* Keep the fault object the ioctl made, to check and free it even
	 * when libiopf lets go of its fd on a failure. */
	if (r == 0 && req == IOPF_K_FAULT_QUEUE_ALLOC)
		fault_add(fk_fault_by_fd((int)((struct iopf_k_fault_alloc *)arg)->out_fault_fd));
	in_fake--;
	return r;
}

static int s_close(int fd)
{
	int r;

	in_fake++;
	r = fk_sys_close(fd);
	in_fake--;
	return r;
}

static const struct iopf_sys sweep_sys = {
	.read = s_read, .write = s_write, .poll = s_poll,
	.ioctl = s_ioctl, .close = s_close,
};

/* ---- a scenario's world ---- */

struct env {
	struct iopf_ctx *ctx;
	struct iopf_source *fq, *prod;
	struct fk_fault *f[MAX_FAULTS];
	int nf;
	struct fk_fault *main_f; /* where the scenario raises faults */
	int iommufd;
	bool defer;
	iopf_handle_t held[4096];
	bool held_prod[4096]; /* the group came from the producer */
	int nheld;
	long completed, responses, bad_responses;
	long cancelled; /* producer groups dropped: their device went away */
	uint64_t alloc_failures_before;
};

static void fault_add(struct fk_fault *f)
{
	if (f && E->nf < MAX_FAULTS)
		E->f[E->nf++] = f;
}

static int handler(struct iopf_group *g, void *ud)
{
	(void)ud;
	if (!E->defer)
		return IOPF_CODE_SUCCESS;
	if (E->nheld < (int)(sizeof(E->held) / sizeof(E->held[0]))) {
		E->held_prod[E->nheld] = iopf_group_source(g) == E->prod;
		E->held[E->nheld++] = iopf_group_handle(g);
	}
	return IOPF_DEFER;
}

static void on_cancel(struct iopf_group *g, void *ud)
{
	/* A producer's cancelled group still gets its respond call
	 * (INVALID): nothing to discount here. */
	(void)g;
	(void)ud;
}

static void on_response(const struct iopf_response *r, void *ud)
{
	(void)ud;
	if (r->code > IOPF_CODE_INVALID)
		E->bad_responses++;
	E->responses++;
}

/* Building blocks, run unarmed. Each returns false if set-up failed. */
static bool mk_ctx(unsigned int workers)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = workers);

	E->ctx = iopf_ctx_new(&o);
	if (!E->ctx)
		return false;
	iopf_ctx_set_handler(E->ctx, handler, NULL);
	return true;
}

static bool mk_fq(unsigned int read_records)
{
	IOPF_OPTS(iopf_fault_queue_opts, fo, .read_records = read_records,
		  .max_read_records = 1024);
	struct fk_fault *f = fk_fault_new();

	fault_add(f);
	E->main_f = f;
	E->fq = iopf_fault_queue_adopt(E->ctx, fk_fault_fd(f), fk_fault_id(f), &fo);
	return E->fq != NULL;
}

static bool mk_prod(void)
{
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_response);

	E->prod = iopf_producer_new(E->ctx, &po);
	return E->prod != NULL;
}

static bool mk_base(void)
{
	return mk_ctx(0) && mk_fq(0) && mk_prod();
}

/* Raise n groups of nrec records on distinct (dev, PASID, PRG) keys. */
static void raise_groups(struct fk_fault *f, int n, unsigned int nrec, uint32_t dev0)
{
	for (int i = 0; i < n; i++) {
		struct iopf_k_pgfault r[8];
		uint32_t pasid = (uint32_t)(i % 3) * 3; /* 0: no PASID */

		for (unsigned int j = 0; j < nrec; j++)
			r[j] = (struct iopf_k_pgfault){
				.flags = (pasid ? IOPF_K_PGFAULT_FLAGS_PASID_VALID : 0) |
					 (j + 1 == nrec ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0),
				.dev_id = dev0 + (uint32_t)(i % 3), .pasid = pasid,
				.grpid = (uint32_t)i, .perm = 1,
				.addr = 0x10000 + (uint64_t)j * 4096,
			};
		fk_trigger_group(f, r, nrec);
	}
}

static int submit(uint32_t dev, uint32_t prgi, bool last)
{
	struct iopf_request q = { .flags = IOPF_F_PASID_VALID | (last ? IOPF_F_LAST_PAGE : 0),
				  .dev_id = dev, .pasid = 3, .prgi = prgi,
				  .perm = IOPF_PERM_READ, .addr = 0x5000 };
	int rc = iopf_producer_submit(E->prod, &q);

	if (last && (rc == 1 || rc == -ENOMEM))
		E->completed++;
	return rc;
}

/* Dispatch until the fake holds nothing and no producer answer is owed. */
static void drive(void)
{
	for (int i = 0; i < 400; i++) {
		bool idle = E->responses >= E->completed;

		for (int j = 0; j < E->nf; j++)
			if (fk_queued(E->f[j]) || fk_outstanding(E->f[j]))
				idle = false;
		if (idle && i > 0)
			break;
		if (iopf_ctx_dispatch(E->ctx) == 0) {
			/* workers answer on their own time */
			struct pollfd p = { .fd = iopf_ctx_get_fd(E->ctx),
					    .events = POLLIN };

			poll(&p, 1, 2);
		}
	}
}

static void answer_held(void)
{
	for (int i = 0; i < E->nheld; i++)
		iopf_respond(E->ctx, E->held[i], IOPF_CODE_SUCCESS);
	E->nheld = 0;
}

/* ---- the calls swept ---- */

enum kind { K_OK, K_ENOMEM, K_OTHER_DOC, K_UNDOC };

struct result {
	long allocs;        /* allocation calls the armed call made */
	int kind;           /* enum kind */
	int rc;             /* the call's return (or -errno for NULL) */
	bool absorbed;      /* alloc_failures went up */
	long lost, twice, leak, fdleak;
	char note[96];
};

struct scen {
	const char *name;
	bool (*setup)(void);
	void (*call)(struct result *res);
};

static void classify_ptr(struct result *res, const void *p, const int *ok_errno)
{
	int e = errno;

	if (p) {
		res->kind = K_OK;
		return;
	}
	res->rc = -e;
	if (e == ENOMEM) {
		res->kind = K_ENOMEM;
		return;
	}
	for (; ok_errno && *ok_errno; ok_errno++)
		if (*ok_errno == e) {
			res->kind = K_OTHER_DOC;
			return;
		}
	res->kind = K_UNDOC;
	snprintf(res->note, sizeof(res->note), "NULL, errno %s", strerror(e));
}

/* rc: ok if in [lo, hi] or in the list; -ENOMEM is its own kind. */
static void classify_rc(struct result *res, int rc, int lo, int hi, const int *ok)
{
	res->rc = rc;
	if (rc >= lo && rc <= hi) {
		res->kind = K_OK;
		return;
	}
	if (rc == -ENOMEM) {
		res->kind = K_ENOMEM;
		return;
	}
	for (; ok && *ok; ok++)
		if (*ok == rc) {
			res->kind = K_OTHER_DOC;
			return;
		}
	res->kind = K_UNDOC;
	snprintf(res->note, sizeof(res->note), "returned %d (%s)", rc,
		 rc < 0 ? strerror(-rc) : "?");
}

#define ARM() do { atomic_store(&counted, 0); atomic_store(&armed, 1); } while (0)
#define DISARM() do { atomic_store(&armed, 0); res->allocs = atomic_load(&counted); } while (0)

/* After a constructor failed, build the rest unarmed so the oracle runs
 * on a normal world. */
static bool none(void) { return true; }
static bool s_ctx_prod(void) { return mk_ctx(0) && mk_prod(); }
static bool s_ctx_fq(void) { return mk_ctx(0) && mk_fq(0); }

static void c_ctx_new(struct result *res, unsigned int workers)
{
	IOPF_OPTS(iopf_ctx_opts, o, .workers = workers);
	static const int ok[] = { EAGAIN, 0 };

	ARM();
	E->ctx = iopf_ctx_new(&o);
	DISARM();
	classify_ptr(res, E->ctx, ok);
	if (E->ctx) {
		iopf_ctx_set_handler(E->ctx, handler, NULL);
		if (mk_fq(0) && mk_prod()) {
			raise_groups(E->main_f, 5, 1, 1);
			submit(1, 1, true);
		}
	}
}
static void c_ctx_new0(struct result *res) { c_ctx_new(res, 0); }
static void c_ctx_new3(struct result *res) { c_ctx_new(res, 3); }

static void c_fq_adopt(struct result *res)
{
	struct fk_fault *f = fk_fault_new();

	fault_add(f);
	E->main_f = f;
	ARM();
	E->fq = iopf_fault_queue_adopt(E->ctx, fk_fault_fd(f), fk_fault_id(f), NULL);
	DISARM();
	classify_ptr(res, E->fq, NULL);
	raise_groups(f, 5, 2, 1);
	if (!E->fq) {
		/* What a caller does: answer the fault fd by other means. Here
		 * the groups stay raised and unread: adopt again, unarmed. */
		E->fq = iopf_fault_queue_adopt(E->ctx, fk_fault_fd(f), fk_fault_id(f), NULL);
	}
}

static void c_fq_alloc(struct result *res)
{
	uint32_t id = 0;

	E->iommufd = fk_iommufd_open();
	ARM();
	E->fq = iopf_fault_queue_alloc(E->ctx, E->iommufd, NULL, &id);
	DISARM();
	classify_ptr(res, E->fq, NULL);
	if (E->fq) {
		E->main_f = fk_fault_by_fd(iopf_source_get_fd(E->fq));
		if (!E->main_f || fk_fault_id(E->main_f) != id)
			snprintf(res->note, sizeof(res->note), "fault id mismatch");
		else
			raise_groups(E->main_f, 5, 1, 1);
	}
}

static void c_prod_new(struct result *res)
{
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_response);

	ARM();
	E->prod = iopf_producer_new(E->ctx, &po);
	DISARM();
	classify_ptr(res, E->prod, NULL);
	if (E->prod)
		submit(2, 7, true);
	raise_groups(E->main_f, 3, 1, 1);
}

static void c_submit_partial_first(struct result *res)
{
	struct iopf_request q = { .flags = IOPF_F_PASID_VALID, .dev_id = 4,
				  .pasid = 3, .prgi = 9, .addr = 0x1000 };
	int rc;

	ARM();
	rc = iopf_producer_submit(E->prod, &q);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
	submit(4, 9, true);
}

static bool s_four_partials(void)
{
	if (!mk_base())
		return false;
	for (int i = 0; i < 4; i++)
		if (submit(4, 9, false))
			return false;
	return true;
}

static void c_submit_partial_grow(struct result *res)
{
	struct iopf_request q = { .flags = IOPF_F_PASID_VALID, .dev_id = 4,
				  .pasid = 3, .prgi = 9, .addr = 0x9000 };
	int rc;

	ARM();
	rc = iopf_producer_submit(E->prod, &q);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
	submit(4, 9, true);
}

static void c_submit_last(struct result *res)
{
	long before = E->responses;
	int rc;

	ARM();
	rc = submit(4, 9, true);
	DISARM();
	classify_rc(res, rc, 1, 1, NULL);
	if (rc == -ENOMEM && E->responses != before + 1)
		snprintf(res->note, sizeof(res->note),
			 "-ENOMEM but %ld respond calls", E->responses - before);
}

static bool s_300(unsigned int nrec, unsigned int read_records, int n)
{
	if (!(mk_ctx(0) && mk_fq(read_records) && mk_prod()))
		return false;
	raise_groups(E->main_f, n, nrec, 1);
	for (int i = 0; i < 20; i++)
		submit(1 + (uint32_t)(i % 3), 1000 + (uint32_t)i, true);
	return true;
}
static bool s_300_single(void) { return s_300(1, 0, 300); }
static bool s_300_multi(void) { return s_300(3, 0, 300); }
static bool s_growth(void) { return s_300(3, 2, 40); }

static void c_dispatch(struct result *res)
{
	static const int ok[] = { -EIO, 0 };
	int rc;

	ARM();
	rc = iopf_ctx_dispatch(E->ctx);
	DISARM();
	classify_rc(res, rc, 0, 1 << 30, ok);
}

/* Groups deferred and held by handle, both sources, a partial held. */
static bool s_deferred(void)
{
	if (!mk_base())
		return false;
	E->defer = true;
	raise_groups(E->main_f, 10, 2, 1);
	for (int i = 0; i < 4; i++)
		submit(2, 50 + (uint32_t)i, true);
	submit(2, 60, false);
	for (int i = 0; i < 20 && fk_queued(E->main_f); i++)
		iopf_ctx_dispatch(E->ctx);
	iopf_ctx_dispatch(E->ctx);
	return E->nheld == 14;
}

/* The first held handle of a fault group (prod false) or producer group. */
static iopf_handle_t held_of(bool prod)
{
	for (int i = 0; i < E->nheld; i++)
		if (E->held_prod[i] == prod)
			return E->held[i];
	return 0;
}

static void c_respond(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_respond(E->ctx, held_of(false), IOPF_CODE_SUCCESS);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
}

static void c_respond_producer(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_respond(E->ctx, held_of(true), IOPF_CODE_SUCCESS);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
}

static void c_respond_prg(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_respond_prg(E->ctx, 1, IOPF_NO_PASID, 0, IOPF_CODE_INVALID);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
}

static bool s_flush(void)
{
	if (!s_deferred())
		return false;
	for (int i = 0; i < 10; i++)
		iopf_respond(E->ctx, E->held[i], IOPF_CODE_SUCCESS);
	return true;
}

static void c_flush(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_ctx_flush(E->ctx);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
}

static void c_set_dev_handler(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_ctx_set_device_handler(E->ctx, 2, handler, NULL);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
	raise_groups(E->main_f, 6, 1, 1);
}

/* 1.3: setters with a destroy callback allocate their binding; refused,
 * they change nothing and never call destroy. */
static int sweep_destroys;
static void sweep_destroy(void *ud)
{
	(void)ud;
	sweep_destroys++;
}

static void c_set_handler_full(struct result *res)
{
	int rc;

	sweep_destroys = 0;
	ARM();
	rc = iopf_ctx_set_handler_full(E->ctx, handler, NULL, sweep_destroy);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
	if (rc == -ENOMEM && sweep_destroys) {
		res->kind = K_UNDOC;
		snprintf(res->note, sizeof(res->note),
			 "refused, yet destroy was called");
	}
	raise_groups(E->main_f, 6, 1, 1);
}

static void c_set_device_sched(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_ctx_set_device_sched(E->ctx, 9, 3, IOPF_SCHED_PRIORITY);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
	raise_groups(E->main_f, 6, 1, 1);
}

static void c_prod_new_destroy(struct result *res)
{
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_response,
		  .destroy = sweep_destroy);

	sweep_destroys = 0;
	ARM();
	E->prod = iopf_producer_new(E->ctx, &po);
	DISARM();
	classify_ptr(res, E->prod, NULL);
	if (!E->prod && sweep_destroys) {
		res->kind = K_UNDOC;
		snprintf(res->note, sizeof(res->note),
			 "refused, yet destroy was called");
	}
	if (E->prod)
		submit(2, 7, true);
	raise_groups(E->main_f, 3, 1, 1);
}

static bool s_dev_handler(void)
{
	return mk_base() && !iopf_ctx_set_device_handler(E->ctx, 1, handler, NULL);
}

static void c_set_pasid_handler(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_ctx_set_pasid_handler(E->ctx, 2, 3, handler, NULL);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
	raise_groups(E->main_f, 6, 1, 1);
}

#if IOPF_TEST_LIBNL
static void c_watch(struct result *res)
{
	static const int ok[] = { -EPERM, -EPROTONOSUPPORT, -EACCES, -EIO, 0 };
	int rc;

	ARM();
	rc = iopf_ctx_watch_device(E->ctx, 2, "0000:00:04.0");
	DISARM();
	classify_rc(res, rc, 0, 0, ok);
	raise_groups(E->main_f, 6, 1, 1);
}
#endif

static bool s_gone(void)
{
	if (!s_deferred())
		return false;
	fk_detach(E->main_f, 2); /* the kernel answers dev 2's groups */
	return true;
}

static void c_device_gone(struct result *res)
{
	int rc;

	ARM();
	rc = iopf_ctx_device_gone(E->ctx, 2);
	DISARM();
	classify_rc(res, rc, 0, 1 << 30, NULL);
}

static void c_get_stats(struct result *res)
{
	IOPF_OPTS(iopf_stats, st);
	int rc;

	ARM();
	rc = iopf_ctx_get_stats(E->ctx, &st);
	DISARM();
	classify_rc(res, rc, 0, 0, NULL);
}

static void c_close_fq(struct result *res)
{
	ARM();
	iopf_source_close(E->fq);
	DISARM();
	E->fq = NULL;
	res->kind = K_OK;
}

static void c_close_prod(struct result *res)
{
	ARM();
	iopf_source_close(E->prod);
	DISARM();
	E->prod = NULL;
	res->kind = K_OK;
}

static void c_ctx_free(struct result *res)
{
	ARM();
	iopf_ctx_free(E->ctx);
	DISARM();
	E->ctx = NULL;
	res->kind = K_OK;
}

static const struct scen scens[] = {
	{ "iopf_ctx_new", none, c_ctx_new0 },
	{ "iopf_ctx_new (3 workers)", none, c_ctx_new3 },
	{ "iopf_fault_queue_adopt", s_ctx_prod, c_fq_adopt },
	{ "iopf_fault_queue_alloc", s_ctx_prod, c_fq_alloc },
	{ "iopf_producer_new", s_ctx_fq, c_prod_new },
	{ "iopf_producer_submit partial (new)", mk_base, c_submit_partial_first },
	{ "iopf_producer_submit partial (grow)", s_four_partials, c_submit_partial_grow },
	{ "iopf_producer_submit LAST (1 rec)", mk_base, c_submit_last },
	{ "iopf_producer_submit LAST (5 rec)", s_four_partials, c_submit_last },
	{ "iopf_ctx_dispatch (300 x 1 rec)", s_300_single, c_dispatch },
	{ "iopf_ctx_dispatch (300 x 3 rec)", s_300_multi, c_dispatch },
	{ "iopf_ctx_dispatch (buffer growth)", s_growth, c_dispatch },
	{ "iopf_respond (fault group)", s_deferred, c_respond },
	{ "iopf_respond (producer group)", s_deferred, c_respond_producer },
	{ "iopf_respond_prg", s_deferred, c_respond_prg },
	{ "iopf_ctx_flush", s_flush, c_flush },
	{ "iopf_ctx_set_device_handler", mk_base, c_set_dev_handler },
	{ "iopf_ctx_set_pasid_handler", s_dev_handler, c_set_pasid_handler },
	{ "iopf_ctx_set_handler_full", mk_base, c_set_handler_full },
	{ "iopf_ctx_set_device_sched", mk_base, c_set_device_sched },
	{ "iopf_producer_new (destroy)", s_ctx_fq, c_prod_new_destroy },
#if IOPF_TEST_LIBNL
	{ "iopf_ctx_watch_device", mk_base, c_watch },
#endif
	{ "iopf_ctx_device_gone", s_gone, c_device_gone },
	{ "iopf_ctx_get_stats", s_deferred, c_get_stats },
	{ "iopf_source_close (fault queue)", s_deferred, c_close_fq },
	{ "iopf_source_close (producer)", s_deferred, c_close_prod },
	{ "iopf_ctx_free", s_deferred, c_ctx_free },
};
#define NSCEN (sizeof(scens) / sizeof(scens[0]))

/* ---- one run, in a child ---- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static uint64_t alloc_failures(void)
{
	IOPF_OPTS(iopf_stats, st);

	if (!E->ctx || iopf_ctx_get_stats(E->ctx, &st))
		return 0;
	return st.alloc_failures;
}

static void child(const struct scen *s, long k, int wfd)
{
	static struct env env;
	struct result res = { 0 };
	const char *self = getenv("IOPF_SWEEP_SELFTEST");
	long stalled = 0, unanswered = 0;
	int fds0;

	E = &env;
	env.iommufd = -1;
	atexit(at_exit_check);
	alarm(20);
	fds0 = count_fds();
	fk_install();
	iopf__set_sys(&sweep_sys);

	if (!s->setup()) {
		snprintf(res.note, sizeof(res.note), "set-up failed");
		res.kind = K_UNDOC;
		res.allocs = -1;
		(void)!write(wfd, &res, sizeof(res));
		_exit(0);
	}
	iopf_ctx_set_cancel_handler(env.ctx, on_cancel, NULL);
	env.alloc_failures_before = alloc_failures();
	atomic_store(&fail_at, k);
	s->call(&res);
	atomic_store(&fail_at, 0);
	res.absorbed = alloc_failures() > env.alloc_failures_before;

	/* Self-test of the sweep's own detectors (see usage). */
	if (self && k == 1 && !strcmp(self, "leak"))
		(void)!malloc(77);
	if (self && k == 1 && !strcmp(self, "crash"))
		raise(SIGSEGV);

	/* Settle: answer what is held, dispatch until the fake is empty.
	 * What the fake still holds then stalls its device. */
	if (env.ctx) {
		env.defer = false;
		answer_held();
		drive();
		iopf_ctx_flush(env.ctx);
		for (int j = 0; j < env.nf; j++)
			stalled += fk_queued(env.f[j]) + fk_outstanding(env.f[j]);
		if (env.completed - env.cancelled > env.responses)
			stalled += env.completed - env.cancelled - env.responses;
	}
	iopf_ctx_free(env.ctx);
	env.ctx = NULL;

	/* Exactly once: every raised group answered once, none twice. */
	for (int j = 0; j < env.nf; j++) {
		size_t n;
		const struct fk_answer *a = fk_answers(env.f[j], &n);
		uint64_t total = fk_triggered(env.f[j]);
		unsigned char *seen = calloc(total + 1, 1);

		for (size_t i = 0; i < n; i++)
			if (a[i].seq && a[i].seq <= total && seen[a[i].seq]++)
				res.twice++;
		for (uint64_t q = 1; q <= total; q++)
			if (!seen[q])
				unanswered++;
		free(seen);
	}
	/* Producer groups: one respond call each, except those dropped
	 * because their device went away (the cancel callback saw them). */
	if (env.responses > env.completed - env.cancelled)
		res.twice += env.responses - (env.completed - env.cancelled);
	else
		unanswered += env.completed - env.cancelled - env.responses;
	res.twice += env.bad_responses;
	res.lost = stalled > unanswered ? stalled : unanswered;

	for (int j = 0; j < env.nf; j++)
		fk_fault_free(env.f[j]);
	if (env.iommufd >= 0)
		close(env.iommufd);
	fk_uninstall();
	if (fds0 >= 0 && count_fds() > fds0)
		res.fdleak = count_fds() - fds0;
	if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
		res.leak = 1;
	(void)!write(wfd, &res, sizeof(res));
	_exit(0);
}

enum outcome { O_NOTREACHED, O_ENOMEM, O_ABSORBED, O_SILENT, O_OTHER, O_EXIT, O_CRASH };

#define NNOTES 4

struct row {
	long points;
	long n[O_CRASH + 1];
	long leak, lost, twice, undoc;
	struct { char what[200]; long first, count; } notes[NNOTES];
	int nnotes;
};

static bool verbose;

/* The line of a sanitizer's report that says what went wrong. */
static void report_line(int fd, bool leak, char *out, size_t len)
{
	static char buf[1 << 16];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	const char *keys_crash[] = { "runtime error:", "ERROR: AddressSanitizer",
				     "ERROR: LeakSanitizer", NULL };
	char *line = NULL;

	if (n <= 0)
		return;
	buf[n] = '\0';
	if (verbose)
		(void)!write(2, buf, (size_t)n);
	if (leak) {
		/* the first frame in libiopf of the first leak */
		char *d = strstr(buf, "Direct leak");

		if (!d)
			d = strstr(buf, "Indirect leak");
		if (d)
			line = strstr(d, "/lib/");
		if (line)
			while (line > buf && line[-1] != ' ')
				line--;
	} else {
		for (int i = 0; keys_crash[i] && !line; i++)
			line = strstr(buf, keys_crash[i]);
		if (line && line != buf && !strncmp(line, "runtime", 7)) {
			while (line > buf && line[-1] != '\n')
				line--;
		}
	}
	if (line) {
		size_t l = strcspn(line, "\n");
		const char *p = strstr(line, "/lib/");

		if (p && (size_t)(p - line) < l) { /* shorten the path */
			l -= (size_t)(p + 1 - line);
			line = (char *)p + 1;
		}
		snprintf(out, len, "%.*s", (int)(l < 150 ? l : 150), line);
	}
}

/* Run scenario s failing the k-th allocation (0: none). */
static enum outcome run_one(const struct scen *s, long k, struct result *res,
			    char *why, size_t whylen)
{
	int p[2], st, errfd = memfd_create("sweep-stderr", MFD_CLOEXEC);
	char line[200] = "";
	pid_t pid;
	ssize_t got;

	memset(res, 0, sizeof(*res));
	why[0] = '\0';
	if (pipe(p) || errfd < 0) {
		perror("pipe");
		exit(2);
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		close(p[0]);
		dup2(errfd, 2);
		child(s, k, p[1]);
	}
	close(p[1]);
	got = read(p[0], res, sizeof(*res));
	close(p[0]);
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_ON_OOM) {
		close(errfd);
		snprintf(why, whylen, "exit() on OOM");
		return O_EXIT;
	}
	if (got != (ssize_t)sizeof(*res) || !WIFEXITED(st) || WEXITSTATUS(st)) {
		report_line(errfd, false, line, sizeof(line));
		close(errfd);
		if (line[0])
			snprintf(why, whylen, "crash: %s", line);
		else if (WIFSIGNALED(st))
			snprintf(why, whylen, "%s", WTERMSIG(st) == SIGALRM ? "hang (20 s)" :
				 strsignal(WTERMSIG(st)));
		else
			snprintf(why, whylen, "exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return O_CRASH;
	}
	if (res->leak)
		report_line(errfd, true, line, sizeof(line));
	else if (verbose)
		report_line(errfd, false, line, 0);
	close(errfd);
	if (res->leak)
		snprintf(res->note, sizeof(res->note), "leak%s%.80s", line[0] ? " from " : "", line);
	if (res->note[0])
		snprintf(why, whylen, "%s", res->note);
	if (k > 0 && res->allocs < k)
		return O_NOTREACHED;
	if (k == 0)
		return O_SILENT; /* the baseline */
	switch (res->kind) {
	case K_ENOMEM:
		return O_ENOMEM;
	case K_OK:
		return res->absorbed ? O_ABSORBED : O_SILENT;
	default:
		return O_OTHER;
	}
}

static void note(struct row *r, long k, const char *what)
{
	for (int i = 0; i < r->nnotes; i++)
		if (!strcmp(r->notes[i].what, what)) {
			r->notes[i].count++;
			return;
		}
	if (r->nnotes == NNOTES)
		return;
	snprintf(r->notes[r->nnotes].what, sizeof(r->notes[0].what), "%s", what);
	r->notes[r->nnotes].first = k;
	r->notes[r->nnotes++].count = 1;
}

int main(int argc, char **argv)
{
	long max_points = 400, total_points = 0, exits = 0, crashes = 0,
	     leaks = 0, lost = 0, twice = 0, undoc = 0;
	const char *only = NULL;
	struct row rows[NSCEN];
	unsigned int ncalls = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = true;
		else if (!strcmp(argv[i], "--max-points") && i + 1 < argc)
			max_points = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: %s [-v] [--max-points N] [--only SUBSTRING]\n"
				"Fails the 1st, 2nd, ... allocation of each public call and\n"
				"checks errors, exits, crashes, leaks and lost groups.\n"
				"-v: show the runs' stderr. IOPF_SWEEP_SELFTEST=leak|crash makes\n"
				"each run that fails allocation 1 leak or crash (checks the sweep).\n",
				argv[0]);
			return 2;
		}
	}
	memset(rows, 0, sizeof(rows));
	printf("%-38s %6s %6s %8s %6s %5s %4s %5s %4s %4s %5s\n", "call", "points",
	       "enomem", "absorbed", "silent", "other", "exit", "crash", "leak",
	       "lost", "twice");
	for (unsigned int i = 0; i < NSCEN; i++) {
		const struct scen *s = &scens[i];
		struct row *r = &rows[i];
		struct result res;
		char why[200];

		if (only && !strstr(s->name, only))
			continue;
		ncalls++;
		for (long k = 0; k <= max_points; k++) {
			enum outcome o = run_one(s, k, &res, why, sizeof(why));

			if (o == O_NOTREACHED)
				break;
			if (k > 0) {
				r->points++;
				r->n[o]++;
			} else if (o == O_EXIT || o == O_CRASH) {
				r->n[o]++; /* the baseline itself */
			}
			if (o == O_EXIT || o == O_CRASH) {
				note(r, k, why);
				if (k == 0)
					break;
				continue;
			}
			if (k == 0 && res.allocs < 0) { /* set-up failed */
				note(r, k, why);
				r->undoc++;
				break;
			}
			if (res.kind == K_UNDOC) {
				r->undoc++;
				note(r, k, res.note);
			}
			if (res.leak || res.fdleak) {
				r->leak++;
				if (res.fdleak)
					snprintf(why, sizeof(why), "%ld fds left open", res.fdleak);
				note(r, k, why);
			}
			if (res.lost) {
				r->lost++;
				snprintf(why, sizeof(why), "groups left unanswered");
				note(r, k, why);
			}
			if (res.twice) {
				r->twice++;
				snprintf(why, sizeof(why), "groups answered twice");
				note(r, k, why);
			}
		}
		total_points += r->points;
		exits += r->n[O_EXIT];
		crashes += r->n[O_CRASH];
		leaks += r->leak;
		lost += r->lost;
		twice += r->twice;
		undoc += r->undoc;
		printf("%-38s %6ld %6ld %8ld %6ld %5ld %4ld %5ld %4ld %4ld %5ld\n",
		       s->name, r->points, r->n[O_ENOMEM], r->n[O_ABSORBED],
		       r->n[O_SILENT], r->n[O_OTHER], r->n[O_EXIT], r->n[O_CRASH],
		       r->leak, r->lost, r->twice);
		for (int j = 0; j < r->nnotes; j++)
			printf("    %ldx from allocation %ld: %s\n", r->notes[j].count,
			       r->notes[j].first, r->notes[j].what);
		fflush(stdout);
	}
	printf("sweep: %u calls, %ld allocation points: %ld exits, %ld crashes, "
	       "%ld leaks, %ld lost groups, %ld answered twice, %ld undocumented errors\n",
	       ncalls, total_points, exits, crashes, leaks, lost, twice, undoc);
	return exits || crashes || leaks || lost || twice || undoc ? 1 : 0;
}
