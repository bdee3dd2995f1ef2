/* SPDX-License-Identifier: MIT */
/*
 * fake_kernel.c - a model of the iommufd fault object; see fake_kernel.h.
 * One global lock keeps it simple: tests raise faults from one thread while
 * libiopf reads and writes from others.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "internal.h"

struct fk_group {
	uint64_t seq;           /* 0: raw injected records */
	uint32_t dev_id, pasid, grpid;
	unsigned int n;
	struct iopf_k_pgfault *recs;
	struct fk_group *next;
};

struct fk_fault {
	int fd;                 /* eventfd: readable while groups wait */
	uint32_t id;
	bool signaled;
	enum fk_small small;
	enum fk_break defect;
	struct fk_group *head, *tail;
	unsigned int queued, outstanding;
	struct fk_group **by_cookie; /* read, not answered */
	uint8_t *cookie_state;  /* enum ck_state, for fk_stale_writes() */
	void (*read_hook)(struct fk_fault *f, void *ud);
	void *read_hook_ud;
	uint64_t stale_writes;
	uint32_t cookie_cap, hint, next_mono;
	struct fk_answer *answers;
	size_t nanswers, answers_cap;
	uint64_t seq, reads, writes;
	int fail_op[2];
	int fail_always[2]; /* fk_fail_always(): until cleared */
	uint64_t chaos_state, chaos_injected;
	unsigned int chaos;
};

enum { FD_NONE, FD_FAULT, FD_IOMMU, FD_VEVENTQ };

/* What became of a cookie: a refused answer is harmless only for a cookie
 * the kernel itself freed (detach) since libiopf last saw it. */
enum ck_state { CK_NEVER = 0, CK_HELD, CK_KERNEL, CK_WRITTEN };

static pthread_mutex_t fk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int kind;
	struct fk_fault *f;
	struct fk_veventq *q;  /* FD_VEVENTQ */
	int mode;              /* FD_IOMMU: enum fake_kernel_mode, 0: default */
} *fds;
static int nfds_cap;
static uint32_t next_id = 100;

static void fd_register(int fd, int kind, struct fk_fault *f)
{
	if (fd >= nfds_cap) {
		int cap = fd + 64;

		fds = realloc(fds, (size_t)cap * sizeof(*fds));
		memset(fds + nfds_cap, 0, (size_t)(cap - nfds_cap) * sizeof(*fds));
		nfds_cap = cap;
	}
	fds[fd].kind = kind;
	fds[fd].f = f;
	fds[fd].q = NULL;
	fds[fd].mode = 0;
}

static int fd_kind(int fd, struct fk_fault **f)
{
	if (fd < 0 || fd >= nfds_cap)
		return FD_NONE;
	if (f)
		*f = fds[fd].f;
	return fds[fd].kind;
}

static int chaos_err(struct fk_fault *f);
static int fki_ioctl(int fd, unsigned long req, void *arg);
static void fki_add_fault(int fd, struct fk_fault *f);
static void fki_free(int fd);
/* vIOMMU event queues and kernel modes: their own block, at the end. */
static bool vq_sys_read(int fd, void *buf, size_t count, ssize_t *ret);
static bool vq_sys_write(int fd, ssize_t *ret);
static bool vq_sys_ioctl(int fd, unsigned long req, void *arg, int *ret);
static bool vq_sys_close(int fd);
static short vq_revents(int fd, short events, bool *is_vq); /* fk_lock held */
static int mode_of(int iommufd);

/* Mirror "groups waiting" into the eventfd so epoll sees POLLIN. */
static void mirror(struct fk_fault *f)
{
	uint64_t v = 1;

	if (f->fd < 0)
		return;
	if (f->head && !f->signaled) {
		(void)!write(f->fd, &v, sizeof(v));
		f->signaled = true;
	} else if (!f->head && f->signaled) {
		(void)!read(f->fd, &v, sizeof(v));
		f->signaled = false;
	}
}

static void log_answer(struct fk_fault *f, struct fk_group *g, uint32_t code,
		       bool automatic)
{
	if (f->nanswers == f->answers_cap) {
		f->answers_cap = f->answers_cap ? f->answers_cap * 2 : 64;
		f->answers = realloc(f->answers,
				     f->answers_cap * sizeof(*f->answers));
	}
	f->answers[f->nanswers++] = (struct fk_answer){
		.seq = g->seq, .dev_id = g->dev_id, .pasid = g->pasid,
		.grpid = g->grpid, .code = code, .automatic = automatic,
	};
}

static void group_free(struct fk_group *g)
{
	free(g->recs);
	free(g);
}

static void cookie_grow(struct fk_fault *f, uint32_t c)
{
	if (c < f->cookie_cap)
		return;
	uint32_t cap = f->cookie_cap ? f->cookie_cap : 64;

	while (cap <= c)
		cap *= 2;
	f->by_cookie = realloc(f->by_cookie, cap * sizeof(*f->by_cookie));
	memset(f->by_cookie + f->cookie_cap, 0,
	       (cap - f->cookie_cap) * sizeof(*f->by_cookie));
	f->cookie_state = realloc(f->cookie_state, cap);
	memset(f->cookie_state + f->cookie_cap, CK_NEVER, cap - f->cookie_cap);
	f->cookie_cap = cap;
}

/* xa_alloc with XA_FLAGS_ALLOC1: the lowest free id from 1. */
static uint32_t cookie_alloc(struct fk_fault *f, struct fk_group *g)
{
	uint32_t c;

	if (f->defect == FK_BREAK_COOKIE_REUSE) {
		c = ++f->next_mono;
	} else {
		c = f->hint ? f->hint : 1;
		while (c < f->cookie_cap && f->by_cookie[c])
			c++;
		f->hint = c + 1;
	}
	cookie_grow(f, c);
	f->by_cookie[c] = g;
	f->cookie_state[c] = CK_HELD;
	f->outstanding++;
	return c;
}

static void cookie_free(struct fk_fault *f, uint32_t c)
{
	f->by_cookie[c] = NULL;
	f->outstanding--;
	if (c < f->hint)
		f->hint = c;
}

static void enqueue(struct fk_fault *f, struct fk_group *g)
{
	if (f->tail)
		f->tail->next = g;
	else
		f->head = g;
	f->tail = g;
	f->queued++;
	mirror(f);
}

ssize_t fk_sys_read(int fd, void *buf, size_t count)
{
	void (*hook)(struct fk_fault *f, void *ud) = NULL;
	void *hook_ud = NULL;
	struct fk_fault *f;
	size_t done = 0;
	int rc = 0;
	ssize_t vr;

	if (vq_sys_read(fd, buf, count, &vr))
		return vr;
	pthread_mutex_lock(&fk_lock);
	if (fd_kind(fd, &f) == FD_FAULT) {
		hook = f->read_hook;
		hook_ud = f->read_hook_ud;
	}
	pthread_mutex_unlock(&fk_lock);
	if (hook)
		hook(f, hook_ud);

	pthread_mutex_lock(&fk_lock);
	if (fd_kind(fd, &f) != FD_FAULT) {
		pthread_mutex_unlock(&fk_lock);
		return read(fd, buf, count);
	}
	f->reads++;
	if (!f->fail_op[0])
		f->fail_op[0] = f->fail_always[0] ? f->fail_always[0] : chaos_err(f);
	if (f->fail_op[0]) {
		errno = f->fail_op[0];
		f->fail_op[0] = 0;
		pthread_mutex_unlock(&fk_lock);
		return -1;
	}
	if (count % sizeof(struct iopf_k_pgfault)) {
		pthread_mutex_unlock(&fk_lock);
		errno = ESPIPE;
		return -1;
	}
	while (f->head) {
		struct fk_group *g = f->head;
		size_t sz = g->n * sizeof(struct iopf_k_pgfault);
		struct iopf_k_pgfault *out = (void *)((char *)buf + done);

		if (done >= count || sz > count - done) {
			if (done == 0 && f->small == FK_SMALL_EINVAL)
				rc = -EINVAL;
			break;
		}
		f->head = g->next;
		if (!f->head)
			f->tail = NULL;
		f->queued--;
		g->next = NULL;
		memcpy(out, g->recs, sz);
		if (g->seq) {
			uint32_t c = cookie_alloc(f, g);

			for (unsigned int i = 0; i < g->n; i++)
				out[i].cookie = c;
		} else {
			/* raw records: their cookies become outstanding */
			for (unsigned int i = 0; i < g->n; i++) {
				uint32_t c = g->recs[i].cookie;
				struct fk_group *p;

				cookie_grow(f, c);
				if (!c || f->by_cookie[c])
					continue;
				p = calloc(1, sizeof(*p));
				p->dev_id = g->recs[i].dev_id;
				p->grpid = g->recs[i].grpid;
				p->pasid = g->recs[i].pasid;
				f->by_cookie[c] = p;
				f->cookie_state[c] = CK_HELD;
				f->outstanding++;
			}
			group_free(g);
		}
		done += sz;
	}
	mirror(f);
	pthread_mutex_unlock(&fk_lock);
	if (done == 0 && rc) {
		errno = -rc;
		return -1;
	}
	return (ssize_t)done;
}

ssize_t fk_sys_write(int fd, const void *buf, size_t count)
{
	const struct iopf_k_page_response *r = buf;
	struct fk_fault *f;
	size_t done = 0, i;
	int rc = 0;
	ssize_t vr;

	if (vq_sys_write(fd, &vr))
		return vr;
	pthread_mutex_lock(&fk_lock);
	if (fd_kind(fd, &f) != FD_FAULT) {
		pthread_mutex_unlock(&fk_lock);
		return write(fd, buf, count);
	}
	f->writes++;
	if (!f->fail_op[1])
		f->fail_op[1] = f->fail_always[1] ? f->fail_always[1] : chaos_err(f);
	if (f->fail_op[1]) {
		errno = f->fail_op[1];
		f->fail_op[1] = 0;
		pthread_mutex_unlock(&fk_lock);
		return -1;
	}
	if (count % sizeof(*r)) {
		pthread_mutex_unlock(&fk_lock);
		errno = ESPIPE;
		return -1;
	}
	for (i = 0; i < count / sizeof(*r); i++) {
		uint32_t c = r[i].cookie;
		struct fk_group *g;

		if ((r[i].code != IOPF_K_PAGE_RESP_SUCCESS &&
		     r[i].code != IOPF_K_PAGE_RESP_INVALID) ||
		    c >= f->cookie_cap || !(g = f->by_cookie[c])) {
			if (c >= f->cookie_cap || f->cookie_state[c] != CK_KERNEL ||
			    (r[i].code != IOPF_K_PAGE_RESP_SUCCESS &&
			     r[i].code != IOPF_K_PAGE_RESP_INVALID))
				f->stale_writes++;
			if (f->defect == FK_BREAK_WRITE_STOP) {
				done += sizeof(*r);
				continue;
			}
			rc = -EINVAL;
			break;
		}
		cookie_free(f, c);
		f->cookie_state[c] = CK_WRITTEN;
		log_answer(f, g, r[i].code, false);
		group_free(g);
		done += sizeof(*r);
	}
	pthread_mutex_unlock(&fk_lock);
	if (done == 0 && rc) {
		errno = -rc;
		return -1;
	}
	return (ssize_t)done;
}

int fk_sys_poll(struct pollfd *p, nfds_t n, int timeout)
{
	int ready = 0;
	bool all_fake = true;

	pthread_mutex_lock(&fk_lock);
	for (nfds_t i = 0; i < n; i++) {
		struct fk_fault *f;
		bool is_vq;
		short vr = vq_revents(p[i].fd, p[i].events, &is_vq);

		if (is_vq) {
			p[i].revents = vr;
			ready += vr != 0;
			continue;
		}
		if (fd_kind(p[i].fd, &f) != FD_FAULT) {
			all_fake = false;
			continue;
		}
		p[i].revents = (short)(p[i].events & (POLLOUT | (f->head ? POLLIN : 0)));
		if (p[i].revents)
			ready++;
	}
	pthread_mutex_unlock(&fk_lock);
	return all_fake ? ready : poll(p, n, timeout);
}

int fk_sys_ioctl(int fd, unsigned long req, void *arg)
{
	int kind, vr;

	if (vq_sys_ioctl(fd, req, arg, &vr))
		return vr;
	pthread_mutex_lock(&fk_lock);
	kind = fd_kind(fd, NULL);
	pthread_mutex_unlock(&fk_lock);
	if (kind == FD_NONE)
		return ioctl(fd, req, arg);
	if (kind == FD_IOMMU && req != IOPF_K_FAULT_QUEUE_ALLOC) {
		int rc = fki_ioctl(fd, req, arg);

		if (rc != -ENOSYS) {
			errno = rc < 0 ? -rc : 0;
			return rc < 0 ? -1 : 0;
		}
	}
	if (kind == FD_IOMMU && req == IOPF_K_FAULT_QUEUE_ALLOC) {
		struct iopf_k_fault_alloc *cmd = arg;
		struct fk_fault *f;

		if (cmd->flags) {
			errno = EOPNOTSUPP;
			return -1;
		}
		f = fk_fault_new();
		cmd->out_fault_id = f->id;
		cmd->out_fault_fd = (uint32_t)f->fd;
		fki_add_fault(fd, f);
		return 0;
	}
	if (kind == FD_IOMMU && req == IOPF_K_DESTROY)
		return 0;
	errno = ENOTTY;
	return -1;
}

int fk_sys_close(int fd)
{
	struct fk_fault *f;

	if (vq_sys_close(fd))
		return close(fd);
	pthread_mutex_lock(&fk_lock);
	if (fd_kind(fd, &f) == FD_FAULT) {
		fd_register(fd, FD_NONE, NULL);
		f->fd = -1; /* the object lives on, as in the kernel */
	} else if (fd_kind(fd, NULL) == FD_IOMMU) {
		fd_register(fd, FD_NONE, NULL);
		fki_free(fd);
	}
	pthread_mutex_unlock(&fk_lock);
	return close(fd);
}

static const struct iopf_sys fk_sys = {
	.read = fk_sys_read,
	.write = fk_sys_write,
	.poll = fk_sys_poll,
	.ioctl = fk_sys_ioctl,
	.close = fk_sys_close,
};

void fk_install(void)
{
	iopf__set_sys(&fk_sys);
}

void fk_uninstall(void)
{
	iopf__set_sys(NULL);
}

int fk_iommufd_open(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	pthread_mutex_lock(&fk_lock);
	fd_register(fd, FD_IOMMU, NULL);
	fki_free(fd); /* a number closed without fk_sys_close() */
	pthread_mutex_unlock(&fk_lock);
	return fd;
}

struct fk_fault *fk_fault_by_fd(int fd)
{
	struct fk_fault *f = NULL;

	pthread_mutex_lock(&fk_lock);
	if (fd_kind(fd, &f) != FD_FAULT)
		f = NULL;
	pthread_mutex_unlock(&fk_lock);
	return f;
}

struct fk_fault *fk_fault_new(void)
{
	struct fk_fault *f = calloc(1, sizeof(*f));

	f->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_lock(&fk_lock);
	f->id = next_id++;
	fd_register(f->fd, FD_FAULT, f);
	pthread_mutex_unlock(&fk_lock);
	return f;
}

void fk_fault_free(struct fk_fault *f)
{
	struct fk_group *g, *nx;

	if (!f)
		return;
	pthread_mutex_lock(&fk_lock);
	if (f->fd >= 0) {
		fd_register(f->fd, FD_NONE, NULL);
		close(f->fd);
	}
	pthread_mutex_unlock(&fk_lock);
	for (g = f->head; g; g = nx) {
		nx = g->next;
		group_free(g);
	}
	for (uint32_t c = 0; c < f->cookie_cap; c++)
		if (f->by_cookie[c])
			group_free(f->by_cookie[c]);
	free(f->by_cookie);
	free(f->cookie_state);
	free(f->answers);
	free(f);
}

int fk_fault_fd(struct fk_fault *f)
{
	return f->fd;
}

uint32_t fk_fault_id(struct fk_fault *f)
{
	return f->id;
}

void fk_set_small(struct fk_fault *f, enum fk_small mode)
{
	f->small = mode;
}

void fk_set_break(struct fk_fault *f, enum fk_break defect)
{
	f->defect = defect;
}

uint64_t fk_trigger_group(struct fk_fault *f, const struct iopf_k_pgfault *recs,
			  unsigned int n)
{
	struct fk_group *g = calloc(1, sizeof(*g));
	uint64_t seq;

	g->n = n;
	g->recs = calloc(n, sizeof(*recs));
	memcpy(g->recs, recs, n * sizeof(*recs));
	for (unsigned int i = 0; i < n; i++) {
		g->recs[i].cookie = 0;
		g->recs[i].length = 0;
	}
	g->dev_id = recs[0].dev_id;
	g->pasid = recs[0].pasid;
	g->grpid = recs[0].grpid;
	pthread_mutex_lock(&fk_lock);
	seq = g->seq = ++f->seq;
	enqueue(f, g);
	pthread_mutex_unlock(&fk_lock);
	return seq;
}

uint64_t fk_trigger(struct fk_fault *f, uint32_t dev, uint32_t pasid,
		    uint32_t grpid, uint32_t perm, uint64_t addr)
{
	struct iopf_k_pgfault r = {
		.flags = IOPF_K_PGFAULT_FLAGS_LAST_PAGE |
			 (pasid ? IOPF_K_PGFAULT_FLAGS_PASID_VALID : 0),
		.dev_id = dev, .pasid = pasid, .grpid = grpid, .perm = perm,
		.addr = addr,
	};

	return fk_trigger_group(f, &r, 1);
}

void fk_inject_raw(struct fk_fault *f, const struct iopf_k_pgfault *recs,
		   unsigned int n)
{
	struct fk_group *g = calloc(1, sizeof(*g));

	g->n = n;
	g->recs = calloc(n, sizeof(*recs));
	memcpy(g->recs, recs, n * sizeof(*recs));
	pthread_mutex_lock(&fk_lock);
	enqueue(f, g);
	pthread_mutex_unlock(&fk_lock);
}

unsigned int fk_detach(struct fk_fault *f, uint32_t dev_id)
{
	struct fk_group **pp, *g;
	unsigned int n = 0;

	pthread_mutex_lock(&fk_lock);
	for (pp = &f->head; (g = *pp);) {
		if (g->dev_id != dev_id) {
			f->tail = g;
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		f->queued--;
		log_answer(f, g, IOPF_K_PAGE_RESP_INVALID, true);
		group_free(g);
		n++;
	}
	if (!f->head)
		f->tail = NULL;
	for (uint32_t c = 0; c < f->cookie_cap; c++) {
		g = f->by_cookie[c];
		if (!g || g->dev_id != dev_id)
			continue;
		cookie_free(f, c);
		f->cookie_state[c] = CK_KERNEL;
		log_answer(f, g, IOPF_K_PAGE_RESP_INVALID, true);
		group_free(g);
		n++;
	}
	mirror(f);
	pthread_mutex_unlock(&fk_lock);
	return n;
}

void fk_set_chaos(struct fk_fault *f, uint64_t seed, unsigned int per_mille)
{
	pthread_mutex_lock(&fk_lock);
	f->chaos_state = seed * 2 + 1;
	f->chaos = per_mille;
	pthread_mutex_unlock(&fk_lock);
}

uint64_t fk_chaos_injected(struct fk_fault *f)
{
	uint64_t n;

	pthread_mutex_lock(&fk_lock);
	n = f->chaos_injected;
	pthread_mutex_unlock(&fk_lock);
	return n;
}

/* fk_lock held. An injected passing failure, or 0. */
static int chaos_err(struct fk_fault *f)
{
	static const int errs[3] = { EINTR, EAGAIN, ENOMEM };
	uint64_t x;

	if (!f->chaos)
		return 0;
	x = f->chaos_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	f->chaos_state = x;
	if (x % 1000 >= f->chaos)
		return 0;
	f->chaos_injected++;
	return errs[(x >> 20) % 3];
}

void fk_set_read_hook(struct fk_fault *f,
		      void (*fn)(struct fk_fault *f, void *ud), void *ud)
{
	pthread_mutex_lock(&fk_lock);
	f->read_hook = fn;
	f->read_hook_ud = ud;
	pthread_mutex_unlock(&fk_lock);
}

void fk_fail_next(struct fk_fault *f, int op, int err)
{
	pthread_mutex_lock(&fk_lock);
	f->fail_op[op ? 1 : 0] = err;
	pthread_mutex_unlock(&fk_lock);
}

void fk_fail_always(struct fk_fault *f, int op, int err)
{
	pthread_mutex_lock(&fk_lock);
	f->fail_always[op ? 1 : 0] = err;
	pthread_mutex_unlock(&fk_lock);
}

unsigned int fk_queued(struct fk_fault *f)
{
	unsigned int v;

	pthread_mutex_lock(&fk_lock);
	v = f->queued;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

void fk_pending(struct fk_fault *f, unsigned int *queued,
		unsigned int *outstanding)
{
	pthread_mutex_lock(&fk_lock);
	*queued = f->queued;
	*outstanding = f->outstanding;
	pthread_mutex_unlock(&fk_lock);
}

uint64_t fk_stale_writes(struct fk_fault *f)
{
	uint64_t n;

	pthread_mutex_lock(&fk_lock);
	n = f->stale_writes;
	pthread_mutex_unlock(&fk_lock);
	return n;
}

unsigned int fk_outstanding(struct fk_fault *f)
{
	unsigned int v;

	pthread_mutex_lock(&fk_lock);
	v = f->outstanding;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

/* The array is read without the lock: call it once libiopf is quiet. */
const struct fk_answer *fk_answers(struct fk_fault *f, size_t *n)
{
	pthread_mutex_lock(&fk_lock);
	*n = f->nanswers;
	pthread_mutex_unlock(&fk_lock);
	return f->answers;
}

uint64_t fk_triggered(struct fk_fault *f)
{
	uint64_t v;

	pthread_mutex_lock(&fk_lock);
	v = f->seq;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

uint64_t fk_reads(struct fk_fault *f)
{
	uint64_t v;

	pthread_mutex_lock(&fk_lock);
	v = f->reads;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

uint64_t fk_writes(struct fk_fault *f)
{
	uint64_t v;

	pthread_mutex_lock(&fk_lock);
	v = f->writes;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

/* ---- kernel versions and iommufd objects (iopf_probe) ----
 * Kept apart from the fault object model above: only what IOMMU_HWPT_ALLOC,
 * IOMMU_GET_HW_INFO, IOMMU_VEVENTQ_ALLOC and IOMMU_DESTROY need. */

enum { KO_DEV = 1, KO_IOAS, KO_HWPT, KO_FAULT };

struct fk_obj {
	uint32_t id;
	int kind;
	bool nest_parent;
	unsigned int users;     /* tables on it, or using it (fault) */
	uint32_t uses[2];       /* what it holds a user of: pt, fault */
	struct fk_fault *fault; /* KO_FAULT */
};

struct fk_iommu {
	int fd; /* its mode: mode_of(fd) */
	struct fk_obj *objs;
	unsigned int n, cap;
};

static struct fk_iommu **iommus;
static int niommus;

/* fk_lock held. The fake iommufd's state, made on first use. */
static struct fk_iommu *fki_get(int fd)
{
	if (fd >= niommus) {
		int cap = fd + 16;

		iommus = realloc(iommus, (size_t)cap * sizeof(*iommus));
		memset(iommus + niommus, 0, (size_t)(cap - niommus) * sizeof(*iommus));
		niommus = cap;
	}
	if (!iommus[fd]) {
		iommus[fd] = calloc(1, sizeof(**iommus));
		iommus[fd]->fd = fd;
	}
	return iommus[fd];
}

static struct fk_obj *fki_find(struct fk_iommu *m, uint32_t id, int kind)
{
	for (unsigned int i = 0; i < m->n; i++)
		if (m->objs[i].id == id && (!kind || m->objs[i].kind == kind))
			return &m->objs[i];
	return NULL;
}

static struct fk_obj *fki_new(struct fk_iommu *m, int kind, uint32_t id)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->objs = realloc(m->objs, m->cap * sizeof(*m->objs));
	}
	m->objs[m->n] = (struct fk_obj){ .id = id ? id : next_id++, .kind = kind };
	return &m->objs[m->n++];
}

static void fki_add_fault(int fd, struct fk_fault *f)
{
	pthread_mutex_lock(&fk_lock);
	fki_new(fki_get(fd), KO_FAULT, f->id)->fault = f;
	pthread_mutex_unlock(&fk_lock);
}

static void fki_free(int fd)
{
	if (fd < niommus && iommus[fd]) {
		free(iommus[fd]->objs);
		free(iommus[fd]);
		iommus[fd] = NULL;
	}
}

static int fki_hwpt(struct fk_iommu *m, struct iopf_k_hwpt_alloc *a)
{
	const uint32_t known = IOPF_K_HWPT_ALLOC_NEST_PARENT |
			       IOPF_K_HWPT_FAULT_ID_VALID | IOPF_K_HWPT_ALLOC_PASID;
	bool new = mode_of(m->fd) & FAKE_K_6_15, fid = a->flags & IOPF_K_HWPT_FAULT_ID_VALID;
	struct fk_obj *pt, *fault = NULL, *o;

	if (a->flags & ~known)
		return -EOPNOTSUPP;
	if (!fki_find(m, a->dev_id, KO_DEV))
		return -ENOENT;
	pt = fki_find(m, a->pt_id, 0);
	if (!pt || (pt->kind != KO_IOAS && pt->kind != KO_HWPT))
		return -ENOENT;
	if (pt->kind == KO_HWPT) { /* nested: selftest data on a parent */
		if (a->flags & ~IOPF_K_HWPT_FAULT_ID_VALID)
			return -EOPNOTSUPP;
		if (!pt->nest_parent)
			return -EINVAL;
		if (a->data_type != IOPF_K_HWPT_DATA_SELFTEST || a->data_len < 4)
			return -EOPNOTSUPP;
	} else { /* paging: what iommufd_hwpt_paging_alloc() takes */
		if (a->data_type || a->data_len)
			return -EOPNOTSUPP;
		if ((a->flags & IOPF_K_HWPT_ALLOC_PASID) && !new)
			return -EOPNOTSUPP;
		if (fid && (!new || (a->flags & IOPF_K_HWPT_ALLOC_NEST_PARENT)))
			return -EOPNOTSUPP;
	}
	if (fid && !(fault = fki_find(m, a->fault_id, KO_FAULT)))
		return -ENOENT;
	o = fki_new(m, KO_HWPT, 0);
	pt = fki_find(m, a->pt_id, 0); /* fki_new may have moved it */
	o->nest_parent = a->flags & IOPF_K_HWPT_ALLOC_NEST_PARENT;
	o->uses[0] = pt->id;
	pt->users++;
	if (fid) {
		fault = fki_find(m, a->fault_id, KO_FAULT);
		o->uses[1] = fault->id;
		fault->users++;
	}
	a->out_hwpt_id = o->id;
	return 0;
}

/* Destroyed fault objects stay allocated and reachable: a test may still
 * hold one (fk_fault_by_fd before the close), as the sweep does. */
static struct fk_fault **graveyard;
static size_t ngraves;

static int fki_destroy(struct fk_iommu *m, uint32_t id)
{
	struct fk_obj *o = fki_find(m, id, 0);

	if (!o || o->kind == KO_DEV)
		return -ENOENT;
	if (o->users || (o->kind == KO_FAULT && o->fault->fd >= 0))
		return -EBUSY; /* a table on it, or the fault fd still open */
	for (int i = 0; i < 2; i++) {
		struct fk_obj *u = o->uses[i] ? fki_find(m, o->uses[i], 0) : NULL;

		if (u)
			u->users--;
	}
	if (o->kind == KO_FAULT) {
		graveyard = realloc(graveyard, (ngraves + 1) * sizeof(*graveyard));
		graveyard[ngraves++] = o->fault;
	}
	*o = m->objs[--m->n];
	return 0;
}

/* The iommufd ioctls of this block; -ENOSYS: not one of them. */
static int fki_ioctl(int fd, unsigned long req, void *arg)
{
	struct fk_iommu *m;
	int rc = 0;

	pthread_mutex_lock(&fk_lock);
	m = fki_get(fd);
	if (req == IOPF_K_IOAS_ALLOC) {
		struct iopf_k_ioas_alloc *a = arg;

		a->out_ioas_id = fki_new(m, KO_IOAS, 0)->id;
	} else if (req == IOPF_K_HWPT_ALLOC) {
		rc = fki_hwpt(m, arg);
	} else if (req == IOPF_K_GET_HW_INFO) {
		struct iopf_k_hw_info *h = arg;

		if (fki_find(m, h->dev_id, KO_DEV))
			h->out_data_type = IOPF_K_HW_INFO_SELFTEST;
		else
			rc = -ENOENT;
	} else if (req == IOPF_K_VEVENTQ_ALLOC) {
		/* known from 6.15; no vIOMMU here, so always refused */
		rc = mode_of(m->fd) & FAKE_K_6_15 ? -EOPNOTSUPP : -ENOTTY;
	} else if (req == IOPF_K_DESTROY) {
		rc = fki_destroy(m, ((struct iopf_k_destroy *)arg)->id);
	} else {
		rc = -ENOSYS;
	}
	pthread_mutex_unlock(&fk_lock);
	return rc;
}


uint32_t fk_iommufd_add_device(int iommufd)
{
	uint32_t id;

	pthread_mutex_lock(&fk_lock);
	id = fki_new(fki_get(iommufd), KO_DEV, 0)->id;
	pthread_mutex_unlock(&fk_lock);
	return id;
}

unsigned int fk_iommufd_objects(int iommufd)
{
	unsigned int n = 0;

	pthread_mutex_lock(&fk_lock);
	for (unsigned int i = 0; i < fki_get(iommufd)->n; i++)
		n += iommus[iommufd]->objs[i].kind != KO_DEV;
	pthread_mutex_unlock(&fk_lock);
	return n;
}

/* ==== vIOMMU event queues (Linux 6.15 eventq.c) and kernel modes ====
 * Written from iommufd_veventq_fops_read(), iommufd_vevent_handler() and
 * iommufd_viommu_report_event(): reads copy whole events only (a header,
 * then the payload; a lost-events header alone) and stop at the first
 * that does not fit, returning what was copied (0 if none); a queue at its
 * depth loses the event and puts (or moves) the lost-events header at its
 * tail, with a new sequence number each time; the next event queued takes
 * it off again. Sequence numbers wrap from INT_MAX to 0. Poll: POLLIN
 * while anything waits, never POLLOUT; write: EINVAL (no write op). */

struct fk_vevent {
	struct fk_vevent *next;
	uint32_t seq;
	size_t len;
	unsigned char data[];
};

struct fk_veventq {
	int fd;                 /* eventfd: readable while events wait */
	uint32_t id, viommu_id, type, depth;
	bool signaled;
	struct fk_vevent *head, *tail;
	unsigned int num;       /* events queued (the lost header excluded) */
	bool lost_on_list;      /* the lost-events header, always the tail */
	uint32_t lost_seq;
	uint32_t sequence;      /* the next event's */
	uint64_t reads, lost;
	struct fk_veventq *next; /* every queue, for (viommu, type) */
};

static struct fk_veventq *vqs;
static int default_mode = FAKE_K_6_12;

/* fk_lock held */
static void vq_mirror(struct fk_veventq *q)
{
	uint64_t v = 1;
	bool any = q->head || q->lost_on_list;

	if (q->fd < 0)
		return;
	if (any && !q->signaled) {
		(void)!write(q->fd, &v, sizeof(v));
		q->signaled = true;
	} else if (!any && q->signaled) {
		(void)!read(q->fd, &v, sizeof(v));
		q->signaled = false;
	}
}

static struct fk_veventq *vq_of(int fd)
{
	return fd_kind(fd, NULL) == FD_VEVENTQ ? fds[fd].q : NULL;
}

static int mode_of(int iommufd)
{
	int m = fd_kind(iommufd, NULL) == FD_IOMMU ? fds[iommufd].mode : 0;

	return m ? m : default_mode;
}

void fake_kernel_set_mode(int iommufd, enum fake_kernel_mode mode)
{
	pthread_mutex_lock(&fk_lock);
	if (iommufd < 0)
		default_mode = mode;
	else if (fd_kind(iommufd, NULL) == FD_IOMMU)
		fds[iommufd].mode = mode;
	pthread_mutex_unlock(&fk_lock);
}

struct fk_veventq *fk_veventq_new(uint32_t viommu_id, uint32_t type,
				  uint32_t depth)
{
	struct fk_veventq *q = calloc(1, sizeof(*q));

	q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->viommu_id = viommu_id;
	q->type = type;
	q->depth = depth;
	pthread_mutex_lock(&fk_lock);
	q->id = next_id++;
	fd_register(q->fd, FD_VEVENTQ, NULL);
	fds[q->fd].q = q;
	q->next = vqs;
	vqs = q;
	pthread_mutex_unlock(&fk_lock);
	return q;
}

void fk_veventq_free(struct fk_veventq *q)
{
	struct fk_veventq **pp;
	struct fk_vevent *e, *nx;

	if (!q)
		return;
	pthread_mutex_lock(&fk_lock);
	for (pp = &vqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	if (q->fd >= 0) {
		fd_register(q->fd, FD_NONE, NULL);
		close(q->fd);
	}
	pthread_mutex_unlock(&fk_lock);
	for (e = q->head; e; e = nx) {
		nx = e->next;
		free(e);
	}
	free(q);
}

/* Free every queue (a test's teardown; their fds may be closed). */
void fk_veventq_free_all(void)
{
	while (vqs)
		fk_veventq_free(vqs);
}

struct fk_veventq *fk_veventq_by_fd(int fd)
{
	struct fk_veventq *q;

	pthread_mutex_lock(&fk_lock);
	q = vq_of(fd);
	pthread_mutex_unlock(&fk_lock);
	return q;
}

struct fk_veventq *fk_veventq_find(uint32_t viommu_id, uint32_t type)
{
	struct fk_veventq *q;

	pthread_mutex_lock(&fk_lock);
	for (q = vqs; q; q = q->next)
		if (q->viommu_id == viommu_id && q->type == type)
			break;
	pthread_mutex_unlock(&fk_lock);
	return q;
}

int fk_veventq_fd(struct fk_veventq *q)
{
	return q->fd;
}

uint32_t fk_veventq_id(struct fk_veventq *q)
{
	return q->id;
}

void fk_veventq_set_sequence(struct fk_veventq *q, uint32_t seq)
{
	pthread_mutex_lock(&fk_lock);
	q->sequence = seq & INT_MAX;
	pthread_mutex_unlock(&fk_lock);
}

/* iommufd_viommu_report_event() + iommufd_vevent_handler(). */
int fk_veventq_report(struct fk_veventq *q, const void *data, size_t len)
{
	struct fk_vevent *e;

	if (!len || !data)
		return -EINVAL;
	e = calloc(1, sizeof(*e) + len);
	memcpy(e->data, data, len);
	e->len = len;
	pthread_mutex_lock(&fk_lock);
	if (q->num == q->depth) { /* lost */
		free(e);
		e = NULL;
	}
	/* The lost header leaves the tail whenever anything is queued; it
	 * comes back (to the tail, renumbered) if this event is lost. */
	q->lost_on_list = false;
	if (e) {
		e->seq = q->sequence;
		if (q->tail)
			q->tail->next = e;
		else
			q->head = e;
		q->tail = e;
		q->num++;
	} else {
		q->lost_on_list = true;
		q->lost_seq = q->sequence;
		q->lost++;
	}
	q->sequence = (q->sequence + 1) & INT_MAX;
	vq_mirror(q);
	pthread_mutex_unlock(&fk_lock);
	return 0;
}

int fk_viommu_report(uint32_t viommu_id, uint32_t type, const void *data,
		     size_t len)
{
	struct fk_veventq *q = fk_veventq_find(viommu_id, type);

	return q ? fk_veventq_report(q, data, len) : -EOPNOTSUPP;
}

void fk_veventq_pending(struct fk_veventq *q, unsigned int *events,
			bool *lost_header)
{
	pthread_mutex_lock(&fk_lock);
	*events = q->num;
	*lost_header = q->lost_on_list;
	pthread_mutex_unlock(&fk_lock);
}

uint64_t fk_veventq_reads(struct fk_veventq *q)
{
	uint64_t v;

	pthread_mutex_lock(&fk_lock);
	v = q->reads;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

static bool vq_sys_read(int fd, void *buf, size_t count, ssize_t *ret)
{
	struct iopf_k_vevent_header h;
	struct fk_veventq *q;
	size_t done = 0;

	pthread_mutex_lock(&fk_lock);
	if (!(q = vq_of(fd))) {
		pthread_mutex_unlock(&fk_lock);
		return false;
	}
	q->reads++;
	while (q->head) {
		struct fk_vevent *e = q->head;

		if (done >= count || sizeof(h) + e->len > count - done)
			break;
		h = (struct iopf_k_vevent_header){ .flags = 0, .sequence = e->seq };
		memcpy((char *)buf + done, &h, sizeof(h));
		memcpy((char *)buf + done + sizeof(h), e->data, e->len);
		done += sizeof(h) + e->len;
		q->head = e->next;
		if (!q->head)
			q->tail = NULL;
		q->num--;
		free(e);
	}
	if (!q->head && q->lost_on_list && count - done >= sizeof(h)) {
		h = (struct iopf_k_vevent_header){
			.flags = IOPF_K_VEVENTQ_FLAG_LOST_EVENTS,
			.sequence = q->lost_seq };
		memcpy((char *)buf + done, &h, sizeof(h));
		done += sizeof(h);
		q->lost_on_list = false;
	}
	vq_mirror(q);
	pthread_mutex_unlock(&fk_lock);
	*ret = (ssize_t)done;
	return true;
}

static bool vq_sys_write(int fd, ssize_t *ret)
{
	bool is;

	pthread_mutex_lock(&fk_lock);
	is = vq_of(fd) != NULL;
	pthread_mutex_unlock(&fk_lock);
	if (is) {
		errno = EINVAL; /* no write op: FMODE_CAN_WRITE is clear */
		*ret = -1;
	}
	return is;
}

static short vq_revents(int fd, short events, bool *is_vq)
{
	struct fk_veventq *q = vq_of(fd); /* fk_lock held by fk_sys_poll */

	*is_vq = q != NULL;
	return q && (q->head || q->lost_on_list) ? (short)(events & POLLIN) : 0;
}

/* IOMMU_VEVENTQ_ALLOC: ENOTTY in 6.12 mode, else iommufd_veventq_alloc()'s
 * checks. Any non-zero viommu_id stands for a vIOMMU. */
static bool vq_sys_ioctl(int fd, unsigned long req, void *arg, int *ret)
{
	struct iopf_k_veventq_alloc *cmd = arg;
	struct fk_veventq *q;
	int err = 0;

	if (req != IOPF_K_VEVENTQ_ALLOC)
		return false;
	pthread_mutex_lock(&fk_lock);
	if (fd_kind(fd, NULL) != FD_IOMMU) {
		pthread_mutex_unlock(&fk_lock);
		return false;
	}
	if (mode_of(fd) & FAKE_K_6_12)
		err = ENOTTY;
	else if (cmd->flags || cmd->reserved || cmd->type == 0)
		err = EOPNOTSUPP;
	else if (!cmd->veventq_depth)
		err = EINVAL;
	else if (!cmd->viommu_id)
		err = ENOENT;
	pthread_mutex_unlock(&fk_lock);
	if (!err && fk_veventq_find(cmd->viommu_id, cmd->type))
		err = EEXIST;
	if (err) {
		errno = err;
		*ret = -1;
		return true;
	}
	q = fk_veventq_new(cmd->viommu_id, cmd->type, cmd->veventq_depth);
	cmd->out_veventq_id = q->id;
	cmd->out_veventq_fd = (uint32_t)q->fd;
	*ret = 0;
	return true;
}

/* The object lives on after its fd is closed, as in the kernel. */
static bool vq_sys_close(int fd)
{
	struct fk_veventq *q;

	pthread_mutex_lock(&fk_lock);
	q = vq_of(fd);
	if (q) {
		fd_register(fd, FD_NONE, NULL);
		q->fd = -1;
	}
	pthread_mutex_unlock(&fk_lock);
	return q != NULL;
}
