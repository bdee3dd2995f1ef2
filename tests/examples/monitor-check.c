/* SPDX-License-Identifier: MIT */
/*
 * monitor-check MONITOR - the smoke test of iopf-monitor: hand it the fd of
 * a simulated fault object, as a VMM would, raise groups, and check what
 * the "devices" got back and what it printed. Two monitors take the same
 * fd one after the other (a helper restarted): every group answered once.
 *
 * monitor-check --table MONITOR: the per-device view instead. The monitor
 * runs for 1.2 s with --pasids --refresh 200 --exit-after 1200 and two
 * workers (PASIDs noted from two threads while the table is drawn from a
 * third), stdout a
 * pipe (so plain lines, no terminal codes); the check reads its tables:
 * several, the last at exit with each device's and PASID's counts,
 * devices slowest first.
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

/* Run the monitor on the fault fd until it exits, with `extra` options
 * after --fd (NULL-terminated); returns its output. */
static char *run_monitor_argv(const char *mon, struct simfault *sf,
			      char *const *extra, int *status)
{
	static char out[65536];
	char fdarg[16];
	int pipefd[2];
	size_t len = 0, na = 3;
	pid_t pid;
	posix_spawn_file_actions_t fa;
	char *argv[16] = { (char *)mon, "--fd", fdarg };

	for (; *extra && na < 15; extra++)
		argv[na++] = *extra;
	argv[na] = NULL;
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

static char *run_monitor(const char *mon, struct simfault *sf, const char *policy,
			 const char *count, int *status)
{
	char *extra[] = { "--policy", (char *)policy, "--count", (char *)count, NULL };

	return run_monitor_argv(mon, sf, extra, status);
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* A latency cell back to ns: "-", 512ns, 65.5us, 2.1ms, 1.07s. */
static double cell_ns(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '-')
		return 0;
	return !strcmp(end, "ns") ? v : !strcmp(end, "us") ? v * 1e3 :
	       !strcmp(end, "ms") ? v * 1e6 : v * 1e9;
}

struct trow {
	unsigned int dev;
	char pasid[16], p50[16], p99[16];
	unsigned long long groups, records, success, invalid, autoa, outst, ready;
};

static bool parse_row(const char *line, struct trow *r)
{
	return sscanf(line, "%u %15s %llu %llu %llu %llu %llu %llu %llu %15s %15s", &r->dev,
		      r->pasid, &r->groups, &r->records, &r->success, &r->invalid,
		      &r->autoa, &r->outst, &r->ready, r->p50, r->p99) == 11;
}

/* The per-device view: 12 groups, 6 from device 1 (no PASID, 12 records),
 * 6 from device 2 (PASID 7, 12 records), all answered SUCCESS. */
static int check_table(const char *mon)
{
	struct simfault *sf = simfault_new(on_answer, NULL);
	char *extra[] = { "--pasids", "--refresh", "200", "--exit-after", "1200",
			  "--workers", "2", NULL };
	char *out, *last, *line;
	int st = -1, tables, devs = 0, pasid_rows = 0;
	double prev_p99 = -1;

	if (!sf)
		return 1;
	raise_groups(sf, 0, 12);
	out = run_monitor_argv(mon, sf, extra, &st);
	fputs(out, stdout);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "table monitor exit %d", st);
	CHECK(!strchr(out, '\033'), "terminal codes written to a pipe");
	CHECK(!strstr(out, "-> SUCCESS"), "a line per group beside the table");
	tables = count_lines(out, "\n  DEVICE PASID ");
	CHECK(tables >= 3, "%d tables (refresh every 200 ms for 1.2 s, and at exit)", tables);
	last = strstr(out, ", at exit\n");
	CHECK(last != NULL, "no table at exit");
	for (line = last ? strchr(last, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
		struct trow r;

		if (!parse_row(line + 1, &r))
			continue;
		if (!strcmp(r.pasid, "all")) {
			devs++;
			CHECK(r.dev == 1 || r.dev == 2, "device %u in the table", r.dev);
			CHECK(r.groups == 6 && r.records == 12 && r.success == 6 && r.invalid == 0 &&
			      r.outst == 0 && r.ready == 0,
			      "device %u: %llu groups %llu records %llu SUCCESS %llu INVALID"
			      " %llu outstanding", r.dev, r.groups, r.records, r.success,
			      r.invalid, r.outst);
			CHECK(strcmp(r.p99, "-") && cell_ns(r.p99) >= cell_ns(r.p50),
			      "device %u latency %s %s", r.dev, r.p50, r.p99);
			/* slowest first */
			CHECK(prev_p99 < 0 || cell_ns(r.p99) <= prev_p99, "device %u p99 %s after a"
			      " faster device", r.dev, r.p99);
			prev_p99 = cell_ns(r.p99);
		} else {
			pasid_rows++;
			CHECK(!strcmp(r.pasid, r.dev == 1 ? "-" : "0x7"), "device %u PASID row %s",
			      r.dev, r.pasid);
			CHECK(r.groups == 6 && r.success == 6, "device %u PASID %s: %llu groups",
			      r.dev, r.pasid, r.groups);
		}
	}
	CHECK(devs == 2 && pasid_rows == 2, "%d device rows, %d PASID rows at exit", devs,
	      pasid_rows);
	for (unsigned int t = 0; t < 12; t++)
		CHECK(answers[t] == 1 && codes[t] == 0, "group %u: %u answers, code %u", t,
		      answers[t], codes[t]);
	simfault_free(sf);
	printf("%s\n", failures ? "FAIL" : "OK: the monitor's per-device table showed each device and PASID");
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct simfault *sf = simfault_new(on_answer, NULL);
	const char *mon = argc > 1 ? argv[1] : "./iopf-monitor";
	char *out;
	int st = -1;

	if (argc > 2 && !strcmp(argv[1], "--table")) {
		simfault_free(sf);
		return check_table(argv[2]);
	}
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
