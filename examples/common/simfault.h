/* SPDX-License-Identifier: MIT */
/*
 * simfault.h - a simulated iommufd fault object for the examples, so they
 * run on any machine. Its fd is one end of a SOCK_SEQPACKET socketpair;
 * the other end behaves like the kernel's fault.c: it hands out whole
 * groups of 40-byte records with one cookie per group, assigned at delivery
 * from 1 up, lowest free first (so a freed cookie is reused at once); it
 * takes 8-byte answers and refuses any whose cookie is not outstanding.
 * libiopf adopts the fd with iopf_fault_queue_adopt(), as a real one.
 *
 * Unlike the kernel, one read() returns one message (up to
 * SIMFAULT_MSG_RECORDS records) and a write() is never cut short at a bad
 * answer; the unit tests' fake kernel (tests/support) is the faithful one.
 *
 * One thread drives a simfault (raise, pump); the fd side is libiopf's.
 */
#ifndef SIMFAULT_H
#define SIMFAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "iommufd-uapi.h" /* the kernel's record and answer layouts */

#define SIMFAULT_MSG_RECORDS 256 /* adopt with read_records >= this */

struct simfault;

/* Called for each accepted answer, in the thread that pumps. */
typedef void (*simfault_answer_fn)(uint64_t tag, uint32_t code, void *ud);

struct simfault_stats {
	uint64_t raised, delivered, answered, refused, messages_out;
};

struct simfault *simfault_new(simfault_answer_fn fn, void *ud);
void simfault_free(struct simfault *sf);
/* The fault fd, for iopf_fault_queue_adopt(); stays owned by sf. */
int simfault_fd(const struct simfault *sf);
/* The other end, readable when answers wait (for poll). */
int simfault_peer_fd(const struct simfault *sf);
/* Queue one group of n records (LAST set on the last by the caller).
 * `tag` comes back with its answer. 0 or -ENOMEM. */
int simfault_raise(struct simfault *sf, const struct iopf_k_pgfault *recs,
		   unsigned int n, uint64_t tag);
/* Deliver queued groups as the socket takes them, take waiting answers.
 * Returns the number of answers taken. */
int simfault_pump(struct simfault *sf);
/* Groups raised and not yet answered (queued or delivered). */
unsigned int simfault_unanswered(const struct simfault *sf);
void simfault_get_stats(const struct simfault *sf, struct simfault_stats *st);

#endif
