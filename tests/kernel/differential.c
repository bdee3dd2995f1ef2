/* SPDX-License-Identifier: MIT */
/*
 * differential.c - hold the fake kernel against the real one. One scripted
 * scenario (triggers, reads, answers good and bad, detach) runs against
 * both; every observable (records, cookies, return values, errnos, poll
 * bits) goes into a transcript, and the transcripts must be equal. Runs
 * inside vmrun (the fake runs there too).
 *
 *   differential [--break cookie-reuse|write-stop] [--print]
 * exits 0 when the transcripts agree, 1 when they differ, 2 on setup errors.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "kmock.h"

struct backend {
	const char *name;
	uint32_t dev; /* device id faults carry */
	int fd;       /* fault fd */
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*trigger)(struct backend *, uint32_t pasid, uint32_t grpid,
		       uint64_t addr);
	int (*detach)(struct backend *);
	int (*attach)(struct backend *);
	/* real */
	struct kmock m;
	uint32_t hwpt, parent;
	/* fake */
	struct fk_fault *f;
	char *log;
	size_t len, cap;
};

static void say(struct backend *b, const char *fmt, ...)
{
	va_list ap;
	char line[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (b->len + (size_t)n + 2 > b->cap) {
		b->cap = (b->cap + (size_t)n + 2) * 2;
		b->log = realloc(b->log, b->cap);
	}
	memcpy(b->log + b->len, line, (size_t)n);
	b->len += (size_t)n;
	b->log[b->len++] = '\n';
	b->log[b->len] = 0;
}

/* ---- the real kernel ---- */
static int k_trigger(struct backend *b, uint32_t pasid, uint32_t grpid,
		     uint64_t addr)
{
	return kmock_trigger(&b->m, b->dev, pasid, grpid, 3 /* read|write */,
			     addr);
}

static int k_detach(struct backend *b)
{
	return kmock_detach(&b->m, b->m.stdev_id);
}

static int k_attach(struct backend *b)
{
	return kmock_replace(&b->m, b->m.stdev_id, b->hwpt);
}

static ssize_t k_read(int fd, void *buf, size_t n) { return read(fd, buf, n); }
static ssize_t k_write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }

static int real_open(struct backend *b)
{
	struct iopf_k_fault_alloc fa = { .size = sizeof(fa) };
	int rc = kmock_open(&b->m);

	if (rc)
		return rc;
	if (ioctl(b->m.fd, IOPF_K_FAULT_QUEUE_ALLOC, &fa))
		return -errno;
	b->fd = (int)fa.out_fault_fd;
	b->dev = b->m.idev_id;
	rc = kmock_hwpt_nested_iopf(&b->m, b->dev, fa.out_fault_id, &b->parent,
				    &b->hwpt);
	if (rc)
		return rc;
	b->read = k_read;
	b->write = k_write;
	b->poll = poll;
	b->trigger = k_trigger;
	b->detach = k_detach;
	b->attach = k_attach;
	return k_attach(b);
}

/* ---- the fake ---- */
static int f_trigger(struct backend *b, uint32_t pasid, uint32_t grpid,
		     uint64_t addr)
{
	fk_trigger(b->f, b->dev, pasid, grpid, 3 /* read|write */,
		   addr);
	return 0;
}

static int f_detach(struct backend *b)
{
	fk_detach(b->f, b->dev);
	return 0;
}

static int f_attach(struct backend *b)
{
	(void)b;
	return 0;
}

static int fake_open(struct backend *b, uint32_t dev, enum fk_break defect)
{
	b->f = fk_fault_new();
	fk_set_break(b->f, defect);
	b->fd = fk_fault_fd(b->f);
	b->dev = dev;
	b->read = fk_sys_read;
	b->write = fk_sys_write;
	b->poll = fk_sys_poll;
	b->trigger = f_trigger;
	b->detach = f_detach;
	b->attach = f_attach;
	return 0;
}

/* ---- observables ---- */
static void do_read(struct backend *b, size_t bytes)
{
	struct iopf_k_pgfault buf[16];
	ssize_t r;

	errno = 0;
	r = b->read(b->fd, buf, bytes);
	if (r < 0) {
		say(b, "read(%zu) = -1 %s", bytes, strerrorname_np(errno));
		return;
	}
	say(b, "read(%zu) = %zd", bytes, r);
	for (ssize_t i = 0; i < r / (ssize_t)sizeof(buf[0]); i++)
		say(b, "  rec flags=%u dev=%s pasid=%u grpid=%u perm=%u addr=%#llx len=%u cookie=%u",
		    buf[i].flags, buf[i].dev_id == b->dev ? "D" : "?",
		    buf[i].pasid, buf[i].grpid, buf[i].perm,
		    (unsigned long long)buf[i].addr, buf[i].length,
		    buf[i].cookie);
}

static void do_write(struct backend *b, const uint32_t *cc, size_t n,
		     size_t bytes)
{
	struct iopf_k_page_response r[8];
	ssize_t w;

	for (size_t i = 0; i < n; i++)
		r[i] = (struct iopf_k_page_response){ cc[2 * i], cc[2 * i + 1] };
	errno = 0;
	w = b->write(b->fd, r, bytes ? bytes : n * sizeof(r[0]));
	if (w < 0)
		say(b, "write(%zu answers) = -1 %s", n, strerrorname_np(errno));
	else
		say(b, "write(%zu answers) = %zd", n, w);
}

static void do_poll(struct backend *b)
{
	struct pollfd p = { .fd = b->fd, .events = POLLIN | POLLOUT };
	int r = b->poll(&p, 1, 0);

	say(b, "poll = %d in=%d out=%d", r, !!(p.revents & POLLIN),
	    !!(p.revents & POLLOUT));
}

static void trig(struct backend *b, uint32_t pasid, uint32_t grpid,
		 uint64_t addr)
{
	say(b, "trigger pasid=%u grpid=%u = %d", pasid, grpid,
	    b->trigger(b, pasid, grpid, addr));
}

#define REC sizeof(struct iopf_k_pgfault)
#define W(b, ...)                                                           \
	do {                                                                \
		uint32_t cc_[] = { __VA_ARGS__ };                           \
		do_write(b, cc_, sizeof(cc_) / sizeof(cc_[0]) / 2, 0);      \
	} while (0)

static void scenario(struct backend *b)
{
	do_poll(b);
	do_read(b, 4 * REC);                  /* empty: 0 */
	trig(b, 0, 1, 0x1000000);
	trig(b, 5, 2, 0x1001000);
	trig(b, 0, 3, 0x1002000);
	do_poll(b);                           /* POLLIN */
	do_read(b, REC + 1);                  /* ESPIPE */
	do_read(b, 0);                        /* too small: EINVAL on 6.12 */
	do_read(b, 2 * REC);                  /* whole groups: cookies 1, 2 */
	W(b, 2, 0);                           /* answer cookie 2 */
	trig(b, 0, 4, 0x1003000);
	do_read(b, 8 * REC);                  /* group 3 gets cookie 2 again */
	W(b, 1, 0, 99, 0, 3, 0);              /* stops at 99: 8 bytes */
	W(b, 3, 1);
	W(b, 1, 0);                           /* already answered: EINVAL */
	W(b, 2, 2);                           /* no such code: EINVAL */
	{
		uint32_t cc[] = { 2, 0 };

		do_write(b, cc, 1, 5);        /* ESPIPE */
	}
	trig(b, 9, 5, 0x1004000);
	do_read(b, 8 * REC);                  /* lowest free: cookie 1 */
	trig(b, 9, 6, 0x1005000);             /* stays queued */
	say(b, "detach = %d", b->detach(b));  /* auto-answers 2 and 1 */
	W(b, 2, 0);                           /* EINVAL: answered by kernel */
	W(b, 1, 0);
	do_poll(b);                           /* the queued one is gone */
	do_read(b, 8 * REC);
	say(b, "attach = %d", b->attach(b));
	trig(b, 0, 7, 0x1006000);
	trig(b, 0, 8, 0x1007000);
	do_read(b, 8 * REC);                  /* cookies 1, 2 again */
	W(b, 2, 0, 1, 1);
	do_poll(b);
}

int main(int argc, char **argv)
{
	struct backend real = { .name = "kernel" }, fake = { .name = "fake" };
	enum fk_break defect = FK_BREAK_NONE;
	bool print = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--print"))
			print = true;
		else if (!strcmp(argv[i], "--break") && i + 1 < argc) {
			i++;
			defect = !strcmp(argv[i], "cookie-reuse") ?
					 FK_BREAK_COOKIE_REUSE :
					 !strcmp(argv[i], "write-stop") ?
					 FK_BREAK_WRITE_STOP : FK_BREAK_NONE;
		}
	}
	rc = real_open(&real);
	if (rc) {
		fprintf(stderr, "differential: kernel setup failed: %s\n",
			strerror(-rc));
		return 2;
	}
	fake_open(&fake, real.dev, defect);
	scenario(&real);
	scenario(&fake);
	if (print)
		printf("--- kernel\n%s--- fake\n%s", real.log, fake.log);
	if (strcmp(real.log, fake.log)) {
		char *a = real.log, *b = fake.log;
		int line = 1;

		while (*a && *a == *b) {
			if (*a == '\n')
				line++;
			a++;
			b++;
		}
		fprintf(stderr, "differential: the fake differs from the kernel at line %d\n",
			line);
		fprintf(stderr, "  kernel: %.*s\n", (int)strcspn(a, "\n"), a);
		fprintf(stderr, "  fake:   %.*s\n", (int)strcspn(b, "\n"), b);
		return 1;
	}
	printf("differential: fake and kernel agree on %zu bytes of transcript\n",
	       real.len);
	return 0;
}
