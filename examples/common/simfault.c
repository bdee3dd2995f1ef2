/* SPDX-License-Identifier: MIT */
/* simfault.c - the kernel side of a simulated fault object (simfault.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "simfault.h"

struct sim_slot {
	uint64_t tag;
	bool live;
};

struct simfault {
	int fd[2]; /* [0] the fault fd (libiopf's), [1] the kernel's end */
	simfault_answer_fn fn;
	void *ud;
	/* groups raised, not delivered: records in order, LAST ends each */
	struct iopf_k_pgfault *pend;
	uint64_t *pend_tags; /* one per group */
	size_t head, tail, cap, ghead, gtail, gcap;
	/* delivered groups by cookie; freed cookies on a stack */
	struct sim_slot *slots;
	uint32_t nslots, slots_cap, *free, nfree; /* free: a min-heap */
	unsigned int unanswered;
	struct simfault_stats st;
};

struct simfault *simfault_new(simfault_answer_fn fn, void *ud)
{
	struct simfault *sf = calloc(1, sizeof(*sf));
	int buf = 4 << 20;

	if (!sf)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sf->fd)) {
		free(sf);
		return NULL;
	}
	/* Room for many messages in flight each way. */
	setsockopt(sf->fd[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sf->fd[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	sf->fn = fn;
	sf->ud = ud;
	return sf;
}

void simfault_free(struct simfault *sf)
{
	if (!sf)
		return;
	close(sf->fd[0]);
	close(sf->fd[1]);
	free(sf->pend);
	free(sf->pend_tags);
	free(sf->slots);
	free(sf->free);
	free(sf);
}

int simfault_fd(const struct simfault *sf)
{
	return sf->fd[0];
}

int simfault_peer_fd(const struct simfault *sf)
{
	return sf->fd[1];
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 1024;
	void *q;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return 0;
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

int simfault_raise(struct simfault *sf, const struct iopf_k_pgfault *recs,
		   unsigned int n, uint64_t tag)
{
	/* Slide what is left to the front before growing. */
	if (sf->head && sf->tail + n > sf->cap) {
		memmove(sf->pend, sf->pend + sf->head,
			(sf->tail - sf->head) * sizeof(*sf->pend));
		sf->tail -= sf->head;
		sf->head = 0;
	}
	if (sf->ghead && sf->gtail + 1 > sf->gcap) {
		memmove(sf->pend_tags, sf->pend_tags + sf->ghead,
			(sf->gtail - sf->ghead) * sizeof(*sf->pend_tags));
		sf->gtail -= sf->ghead;
		sf->ghead = 0;
	}
	if (grow((void **)&sf->pend, &sf->cap, sf->tail + n, sizeof(*sf->pend)) ||
	    grow((void **)&sf->pend_tags, &sf->gcap, sf->gtail + 1,
		 sizeof(*sf->pend_tags)))
		return -ENOMEM;
	memcpy(sf->pend + sf->tail, recs, n * sizeof(*recs));
	sf->tail += n;
	sf->pend_tags[sf->gtail++] = tag;
	sf->unanswered++;
	sf->st.raised++;
	return 0;
}

/* Freed cookies on a min-heap: the lowest free one is handed out first,
 * as the kernel's xarray does. */
static void heap_push(struct simfault *sf, uint32_t c)
{
	uint32_t i = sf->nfree++, *h = sf->free;

	for (; i && h[(i - 1) / 2] > c; i = (i - 1) / 2)
		h[i] = h[(i - 1) / 2];
	h[i] = c;
}

static uint32_t heap_pop(struct simfault *sf)
{
	uint32_t *h = sf->free, top = h[0], last = h[--sf->nfree], i = 0;

	for (;;) {
		uint32_t k = 2 * i + 1;

		if (k >= sf->nfree)
			break;
		if (k + 1 < sf->nfree && h[k + 1] < h[k])
			k++;
		if (h[k] >= last)
			break;
		h[i] = h[k];
		i = k;
	}
	h[i] = last;
	return top;
}

static int cookie_get(struct simfault *sf, uint32_t *cookie)
{
	if (sf->nfree) {
		*cookie = heap_pop(sf);
		return 0;
	}
	if (!sf->nslots)
		sf->nslots = 1; /* like the kernel (XA_FLAGS_ALLOC1): never cookie 0 */
	if (sf->nslots >= sf->slots_cap) {
		uint32_t cap = sf->slots_cap ? sf->slots_cap * 2 : 1024;
		struct sim_slot *s = realloc(sf->slots, cap * sizeof(*s));
		uint32_t *f = realloc(sf->free, cap * sizeof(*f));

		if (s)
			sf->slots = s;
		if (f)
			sf->free = f;
		if (!s || !f)
			return -ENOMEM;
		sf->slots_cap = cap;
	}
	*cookie = sf->nslots++;
	return 0;
}

static void cookie_put(struct simfault *sf, uint32_t cookie)
{
	sf->slots[cookie].live = false;
	heap_push(sf, cookie);
}

/* One message of whole groups; false when nothing was sent. */
static bool deliver_one(struct simfault *sf)
{
	struct iopf_k_pgfault msg[SIMFAULT_MSG_RECORDS];
	uint32_t cookies[SIMFAULT_MSG_RECORDS];
	unsigned int n = 0, ng = 0;
	size_t r = sf->head;

	while (r < sf->tail) {
		size_t e = r;
		uint32_t c;

		while (e < sf->tail && !(sf->pend[e].flags & IOPF_K_PGFAULT_FLAGS_LAST_PAGE))
			e++;
		if (e == sf->tail || n + (e - r + 1) > SIMFAULT_MSG_RECORDS)
			break; /* incomplete (not raised whole) or full */
		if (cookie_get(sf, &c))
			break;
		sf->slots[c] = (struct sim_slot){
			.tag = sf->pend_tags[sf->ghead + ng], .live = true };
		cookies[ng++] = c;
		for (; r <= e; r++) {
			msg[n] = sf->pend[r];
			msg[n++].cookie = c;
		}
	}
	if (!n)
		return false;
	if (send(sf->fd[1], msg, n * sizeof(*msg), MSG_DONTWAIT) < 0) {
		while (ng--)
			cookie_put(sf, cookies[ng]); /* not delivered after all */
		return false;
	}
	sf->head = r;
	sf->ghead += ng;
	sf->st.delivered += ng;
	sf->st.messages_out++;
	return true;
}

static int take_answers(struct simfault *sf)
{
	struct iopf_k_page_response buf[1024];
	int taken = 0;
	ssize_t got;

	while ((got = recv(sf->fd[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		for (size_t i = 0; i < (size_t)got / sizeof(*buf); i++) {
			uint32_t c = buf[i].cookie;

			if (c >= sf->nslots || !sf->slots[c].live ||
			    buf[i].code > IOPF_K_PAGE_RESP_INVALID) {
				sf->st.refused++; /* the kernel: EINVAL */
				continue;
			}
			cookie_put(sf, c);
			sf->unanswered--;
			sf->st.answered++;
			taken++;
			if (sf->fn)
				sf->fn(sf->slots[c].tag, buf[i].code, sf->ud);
		}
	}
	return taken;
}

int simfault_pump(struct simfault *sf)
{
	int n = take_answers(sf);

	while (deliver_one(sf))
		;
	return n + take_answers(sf);
}

unsigned int simfault_unanswered(const struct simfault *sf)
{
	return sf->unanswered;
}

void simfault_get_stats(const struct simfault *sf, struct simfault_stats *st)
{
	*st = sf->st;
}
