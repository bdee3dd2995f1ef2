/* struct-sizes: callers built against other releases, through the public
 * API only (linked to the shared library). Option and stats structs
 * begin with `size_t sz`, the caller's sizeof:
 * - shorter (an older caller): works, missing fields take defaults, and
 *   nothing is written past the caller's sz;
 * - longer with a zero tail (a newer caller using no new field): works;
 * - longer with a non-zero byte past today's sizeof: refused, -EINVAL or
 *   NULL with errno EINVAL;
 * - sz smaller than the sz field itself: refused. */
#include <iopf/iopf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__,         \
				__LINE__, #cond);                              \
			failures++;                                            \
		}                                                              \
	} while (0)

#define TAIL 16

/* Longer structs: today's, then bytes a newer release would know. */
struct ctx_opts_new { struct iopf_ctx_opts o; unsigned char tail[TAIL]; };
struct fq_opts_new { struct iopf_fault_queue_opts o; unsigned char tail[TAIL]; };
struct prod_opts_new { struct iopf_producer_opts o; unsigned char tail[TAIL]; };
struct stats_new { struct iopf_stats s; unsigned char tail[TAIL]; };

/* Shorter structs: what an older caller may have been built with. */
struct ctx_opts_old { size_t sz; unsigned int workers; };
struct fq_opts_old { size_t sz; unsigned int flags; };
struct prod_opts_old { size_t sz; iopf_respond_fn respond; void *userdata; };

static void on_resp(const struct iopf_response *r, void *ud)
{
	(void)r;
	(void)ud;
}

/* A constructor's result: ok (non-NULL) or refused (NULL, errno EINVAL). */
static int refused(void *p)
{
	return !p && errno == EINVAL;
}

static void ctx_opts(void)
{
	struct ctx_opts_old old = { .sz = sizeof(old), .workers = 0 };
	struct ctx_opts_new nw;
	struct iopf_ctx *ctx;
	size_t sz0 = sizeof(size_t) - 1;

	CHECK((ctx = iopf_ctx_new((const struct iopf_ctx_opts *)&old)) != NULL);
	iopf_ctx_free(ctx);

	memset(&nw, 0, sizeof(nw));
	nw.o.sz = sizeof(nw);
	nw.o.batch_max = 16;
	CHECK((ctx = iopf_ctx_new(&nw.o)) != NULL);
	iopf_ctx_free(ctx);
	for (int i = 0; i < TAIL; i += TAIL - 1) {
		nw.tail[i] = 1;
		errno = 0;
		CHECK(refused(iopf_ctx_new(&nw.o)));
		nw.tail[i] = 0;
	}
	/* a newer struct whose sz stops before the non-zero byte: fine */
	nw.tail[TAIL - 1] = 1;
	nw.o.sz = sizeof(nw) - 1;
	CHECK((ctx = iopf_ctx_new(&nw.o)) != NULL);
	iopf_ctx_free(ctx);

	errno = 0;
	CHECK(refused(iopf_ctx_new((const struct iopf_ctx_opts *)&sz0)));
}

static void fq_opts(void)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct fq_opts_old old = { .sz = sizeof(old), .flags = 0 };
	struct fq_opts_new nw;
	struct iopf_source *s;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	CHECK(ctx != NULL && fd >= 0);
	if (!ctx || fd < 0)
		return;
	CHECK((s = iopf_fault_queue_adopt(ctx, fd, 1,
		(const struct iopf_fault_queue_opts *)&old)) != NULL);
	iopf_source_close(s);

	memset(&nw, 0, sizeof(nw));
	nw.o.sz = sizeof(nw);
	nw.o.read_records = 8;
	CHECK((s = iopf_fault_queue_adopt(ctx, fd, 2, &nw.o)) != NULL);
	iopf_source_close(s);
	for (int i = 0; i < TAIL; i += TAIL - 1) {
		nw.tail[i] = 1;
		errno = 0;
		CHECK(refused(iopf_fault_queue_adopt(ctx, fd, 3, &nw.o)));
		nw.tail[i] = 0;
	}
	iopf_ctx_free(ctx);
	close(fd);
}

static void producer_opts(void)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct prod_opts_old old = { .sz = sizeof(old), .respond = on_resp };
	struct prod_opts_new nw;
	struct iopf_source *s;
	struct iopf_request r = { .flags = IOPF_F_LAST_PAGE, .dev_id = 1 };

	CHECK(ctx != NULL);
	if (!ctx)
		return;
	/* the older struct has no partial_cap: default, and it works */
	CHECK((s = iopf_producer_new(ctx,
		(const struct iopf_producer_opts *)&old)) != NULL);
	CHECK(s && iopf_producer_submit(s, &r) == 1);
	iopf_source_close(s);

	memset(&nw, 0, sizeof(nw));
	nw.o.sz = sizeof(nw);
	nw.o.respond = on_resp;
	CHECK((s = iopf_producer_new(ctx, &nw.o)) != NULL);
	iopf_source_close(s);
	for (int i = 0; i < TAIL; i += TAIL - 1) {
		nw.tail[i] = 1;
		errno = 0;
		CHECK(refused(iopf_producer_new(ctx, &nw.o)));
		nw.tail[i] = 0;
	}
	iopf_ctx_free(ctx);
}

static void stats(void)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct iopf_source *p;
	struct iopf_request r = { .flags = IOPF_F_LAST_PAGE, .dev_id = 1 };
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp);
	struct stats_new nw;
	/* a 1.0 caller: up to the latency histogram */
	size_t old_sz = offsetof(struct iopf_stats, cancelled);
	unsigned char *buf = malloc(sizeof(struct iopf_stats) + TAIL);
	size_t sz0 = 1;

	CHECK(ctx != NULL && buf != NULL);
	if (!ctx || !buf)
		return;
	CHECK((p = iopf_producer_new(ctx, &po)) != NULL);
	CHECK(p && iopf_producer_submit(p, &r) == 1);

	/* older: its fields filled, not a byte written past its sz */
	memset(buf, 0xa5, sizeof(struct iopf_stats) + TAIL);
	memcpy(buf, &old_sz, sizeof(old_sz));
	CHECK(iopf_ctx_get_stats(ctx, (struct iopf_stats *)buf) == 0);
	CHECK(((struct iopf_stats *)buf)->sz == old_sz);
	CHECK(((struct iopf_stats *)buf)->records == 1);
	CHECK(((struct iopf_stats *)buf)->groups == 1);
	for (size_t i = old_sz; i < sizeof(struct iopf_stats) + TAIL; i++)
		if (buf[i] != 0xa5) {
			CHECK(!"stats written past the caller's sz");
			break;
		}

	/* newer: today's fields filled, its sz kept */
	memset(&nw, 0, sizeof(nw));
	nw.s.sz = sizeof(nw);
	CHECK(iopf_ctx_get_stats(ctx, &nw.s) == 0);
	CHECK(nw.s.sz == sizeof(nw));
	CHECK(nw.s.records == 1 && nw.s.groups == 1);

	CHECK(iopf_ctx_get_stats(ctx, (struct iopf_stats *)&sz0) == -EINVAL);
	free(buf);
	iopf_ctx_free(ctx);
}

/* 1.3's output struct, per device: the same rules as iopf_stats. */
static void device_stats(void)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	struct iopf_source *p;
	struct iopf_request r = { .flags = IOPF_F_LAST_PAGE, .dev_id = 3 };
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp);
	struct { struct iopf_device_stats s; unsigned char tail[TAIL]; } nw;
	/* an older caller: up to `groups` */
	size_t old_sz = offsetof(struct iopf_device_stats, records);
	size_t all = sizeof(struct iopf_device_stats) + TAIL;
	unsigned char *buf = malloc(all);

	CHECK(ctx != NULL && buf != NULL);
	if (!ctx || !buf)
		return;
	CHECK((p = iopf_producer_new(ctx, &po)) != NULL);
	CHECK(p && iopf_producer_submit(p, &r) == 1);
	memset(buf, 0xa5, all);
	memcpy(buf, &old_sz, sizeof(old_sz));
	CHECK(iopf_ctx_get_device_stats(ctx, 3, 0, IOPF_ALL_PASIDS,
					(struct iopf_device_stats *)buf) == 0);
	CHECK(((struct iopf_device_stats *)buf)->groups == 1);
	for (size_t i = old_sz; i < all; i++)
		if (buf[i] != 0xa5) {
			CHECK(!"device stats written past the caller's sz");
			break;
		}
	memset(&nw, 0, sizeof(nw));
	nw.s.sz = sizeof(nw);
	CHECK(iopf_ctx_get_device_stats(ctx, 3, 0, IOPF_ALL_PASIDS, &nw.s) == 0);
	CHECK(nw.s.sz == sizeof(nw) && nw.s.groups == 1 && nw.s.records == 1);
	free(buf);
	iopf_ctx_free(ctx);
}

/* Structs without sz are fixed: arrays of them cross the ABI
 * (iopf_respond_prg_many()), so no field may move or be added. */
static void fixed_layouts(void)
{
	CHECK(sizeof(struct iopf_prg_answer) == 16);
	CHECK(offsetof(struct iopf_prg_answer, dev_id) == 0);
	CHECK(offsetof(struct iopf_prg_answer, pasid) == 4);
	CHECK(offsetof(struct iopf_prg_answer, prgi) == 8);
	CHECK(offsetof(struct iopf_prg_answer, code) == 12);
	CHECK(sizeof(struct iopf_record) == 16);
}

int main(void)
{
	ctx_opts();
	fq_opts();
	producer_opts();
	stats();
	device_stats();
	fixed_layouts();
	if (failures) {
		printf("struct sizes: %d checks failed\n", failures);
		return 1;
	}
	printf("struct sizes: older, newer and oversized callers: OK\n");
	return 0;
}
