/* SPDX-License-Identifier: MIT */
/*
 * monitor-check MONITOR - the smoke test of iopf-monitor: hand it the fd of
 * a simulated fault object, as a VMM would, raise groups, and check what
 * the "devices" got back and what it printed. Two monitors take the same
 * fd one after the other (a helper restarted): every group answered once.
 */
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/simfault.h"

static unsigned char answers[64];
static uint32_t codes[64];
static int failures;

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL: " __VA_ARGS__); \
	fprintf(stderr, "\n"); failures++; } } while (0)

static void on_answer(uint64_t tag, uint32_t code, void *ud)
{
	answers[tag]++;
	codes[tag] = code;
}

/* Raise groups tag0..tag0+n-1: dev 1 or 2, PRG index = tag, 1-3 records,
 * a PASID on every other one. */
static void raise_groups(struct simfault *sf, unsigned int tag0, unsigned int n)
{
	for (unsigned int t = tag0; t < tag0 + n; t++) {
		struct iopf_k_pgfault rec[3];
		unsigned int nr = 1 + t % 3;

		for (unsigned int k = 0; k < nr; k++)
			rec[k] = (struct iopf_k_pgfault){
				.flags = (t % 2 ? IOPF_K_PGFAULT_FLAGS_PASID_VALID : 0) |
					 (k + 1 == nr ? IOPF_K_PGFAULT_FLAGS_LAST_PAGE : 0),
				.dev_id = 1 + t % 2, .pasid = t % 2 ? 7 : 0,
				.grpid = t, .perm = 3, .addr = (0x10000 + t * 0x1000ull) + k * 0x1000,
				.length = 4096,
			};
		simfault_raise(sf, rec, nr, t);
	}
}

/* Run the monitor on the fault fd until it exits; returns its output. */
static char *run_monitor(const char *mon, struct simfault *sf, const char *policy,
			 const char *count, int *status)
{
	static char out[16384];
	char fdarg[16];
	int pipefd[2];
	size_t len = 0;
	pid_t pid;
	posix_spawn_file_actions_t fa;
	char *argv[] = { (char *)mon, "--fd", fdarg, "--policy", (char *)policy,
			 "--count", (char *)count, NULL };

	snprintf(fdarg, sizeof(fdarg), "%d", simfault_fd(sf));
	fcntl(simfault_fd(sf), F_SETFD, 0); /* inherited, as a VMM hands it over */
	if (pipe(pipefd))
		exit(1);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	if (posix_spawn(&pid, mon, &fa, NULL, argv, NULL)) {
		perror("spawn");
		exit(1);
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 2000; i++) { /* 10 s at most */
		struct pollfd p[2] = { { .fd = simfault_peer_fd(sf), .events = POLLIN },
				       { .fd = pipefd[0], .events = POLLIN } };
		ssize_t r;
		bool eof = false;

		simfault_pump(sf);
		poll(p, 2, 5);
		while ((r = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0)
			len += (size_t)r;
		eof = r == 0;
		/* At EOF it is exiting: reap it (it answered before it closed). */
		if (waitpid(pid, status, eof ? 0 : WNOHANG) == pid) {
			simfault_pump(sf);
			break;
		}
	}
	close(pipefd[0]);
	out[len] = '\0';
	return out;
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

int main(int argc, char **argv)
{
	struct simfault *sf = simfault_new(on_answer, NULL);
	const char *mon = argc > 1 ? argv[1] : "./iopf-monitor";
	char *out;
	int st = -1;

	if (!sf)
		return 1;
	/* First monitor: 6 groups, all answered INVALID. */
	raise_groups(sf, 0, 6);
	out = run_monitor(mon, sf, "invalid", "6", &st);
	fputs(out, stdout);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "first monitor exit %d", st);
	CHECK(count_lines(out, "-> INVALID\n") == 6, "6 INVALID lines");
	CHECK(strstr(out, "dev 2 pasid 0x7 prgi 1 cookie ") != NULL, "line format (pasid)");
	CHECK(strstr(out, "dev 1 pasid - prgi 0 cookie ") != NULL, "line format (no pasid)");
	CHECK(strstr(out, ": rw-- 0x12000 rw-- 0x13000 rw-- 0x14000 -> INVALID") != NULL,
	      "records of a 3-record group");

	/* The fd is handed to a second monitor, which asks a script. */
	raise_groups(sf, 6, 10);
	out = run_monitor(mon, sf, "exec:test \"$IOPF_PRGI\" -lt 11 && test -n \"$IOPF_ADDRS\"",
			  "10", &st);
	fputs(out, stdout);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "second monitor exit %d", st);
	CHECK(count_lines(out, "-> SUCCESS\n") == 5, "5 SUCCESS lines");
	CHECK(count_lines(out, "-> INVALID\n") == 5, "5 INVALID lines");

	for (unsigned int t = 0; t < 16; t++) {
		CHECK(answers[t] == 1, "group %u answered %u times", t, answers[t]);
		CHECK(codes[t] == (t >= 6 && t < 11 ? 0u : 1u), "group %u code %u", t, codes[t]);
	}
	simfault_free(sf);
	printf("%s\n", failures ? "FAIL" : "OK: the monitor answered each handed-over group once, by policy");
	return failures ? 1 : 0;
}
