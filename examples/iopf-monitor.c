/* SPDX-License-Identifier: MIT */
/*
 * iopf-monitor - attach to a fault fd that another process handed over (as
 * a VMM passes one to a helper), print each page request group on one
 * line, and answer it by a policy: always SUCCESS, always INVALID, or ask a
 * shell command (exit status 0: SUCCESS).
 *
 *   iopf-monitor --fd 5 --policy 'exec:test "$IOPF_PRGI" -lt 8'
 *
 * The command sees IOPF_DEV, IOPF_PASID (empty without one), IOPF_PRGI,
 * IOPF_COOKIE, IOPF_ADDRS and IOPF_PERMS (space-separated, one per record).
 * It runs in the dispatching thread: while it runs, no other group is
 * answered (use --workers to run several at once).
 *
 * With --table it shows libiopf's per-device counters instead of a line
 * per group (since 1.3): redrawn in place on a terminal, as plain blocks
 * of lines otherwise, slowest devices first; --pasids adds a row per
 * PASID under each device.
 *
 * Uses libiopf's public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <iopf/iopf.h>
#include "common/devtable.h"
#include "common/opt.h"

extern char **environ;

enum policy { POL_SUCCESS, POL_INVALID, POL_EXEC };

struct mon {
	struct iopf_ctx *ctx;
	enum policy policy;
	const char *cmd;
	unsigned long count; /* stop after this many groups (0: never) */
	atomic_ulong seen, success, invalid;
	bool quiet;
	pthread_mutex_t out; /* one line at a time with --workers */
	/* --table, --exit-after: a thread of their own redraws and stops the
	 * loop, so iopf_ctx_run() stays the loop */
	struct devtable *table;
	bool tty;
	int fd;
	unsigned long refresh_ms, exit_after_ms;
	struct timespec t0;
	pthread_t timer;
	pthread_mutex_t tick;
	pthread_cond_t wake;
	bool done;
};

static struct iopf_ctx *g_ctx;

static void on_signal(int sig)
{
	(void)sig;
	iopf_ctx_stop(g_ctx); /* async-signal-safe */
}

static void perm_str(uint32_t p, char s[5])
{
	s[0] = p & IOPF_PERM_READ ? 'r' : '-';
	s[1] = p & IOPF_PERM_WRITE ? 'w' : '-';
	s[2] = p & IOPF_PERM_EXEC ? 'x' : '-';
	s[3] = p & IOPF_PERM_PRIV ? 'p' : '-';
	s[4] = '\0';
}

/* Run the policy command with the group in its environment. */
static int ask(struct mon *m, struct iopf_group *g)
{
	size_t n, off_a = 0, off_p = 0;
	const struct iopf_record *r = iopf_group_records(g, &n);
	char dev[32], pasid[32], prgi[32], cookie[32];
	char *addrs = malloc(n * 20 + 16), *perms = malloc(n * 5 + 16);
	char *argv[] = { "/bin/sh", "-c", (char *)m->cmd, NULL };
	char **env = NULL;
	size_t nenv = 0;
	pid_t pid;
	int st, rc = IOPF_CODE_INVALID;

	if (!addrs || !perms)
		goto out;
	snprintf(addrs, 16, "IOPF_ADDRS=");
	snprintf(perms, 16, "IOPF_PERMS=");
	off_a = strlen(addrs);
	off_p = strlen(perms);
	for (size_t i = 0; i < n; i++) {
		char p[5];

		perm_str(r[i].perm, p);
		off_a += (size_t)sprintf(addrs + off_a, "%s%#llx", i ? " " : "",
					 (unsigned long long)r[i].addr);
		off_p += (size_t)sprintf(perms + off_p, "%s%s", i ? " " : "", p);
	}
	snprintf(dev, sizeof(dev), "IOPF_DEV=%u", iopf_group_dev_id(g));
	if (iopf_group_pasid(g) == IOPF_NO_PASID)
		snprintf(pasid, sizeof(pasid), "IOPF_PASID=");
	else
		snprintf(pasid, sizeof(pasid), "IOPF_PASID=%u", iopf_group_pasid(g));
	snprintf(prgi, sizeof(prgi), "IOPF_PRGI=%u", iopf_group_prgi(g));
	snprintf(cookie, sizeof(cookie), "IOPF_COOKIE=%u", iopf_group_cookie(g));
	while (environ[nenv])
		nenv++;
	env = calloc(nenv + 7, sizeof(*env));
	if (!env)
		goto out;
	memcpy(env, environ, nenv * sizeof(*env));
	env[nenv++] = dev;
	env[nenv++] = pasid;
	env[nenv++] = prgi;
	env[nenv++] = cookie;
	env[nenv++] = addrs;
	env[nenv++] = perms;
	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, env) == 0 &&
	    waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		rc = IOPF_CODE_SUCCESS;
out:
	free(env);
	free(addrs);
	free(perms);
	return rc;
}

static int on_group(struct iopf_group *g, void *ud)
{
	struct mon *m = ud;
	size_t n;
	const struct iopf_record *r = iopf_group_records(g, &n);
	unsigned long seen;
	int code;

	switch (m->policy) {
	case POL_SUCCESS: code = IOPF_CODE_SUCCESS; break;
	case POL_INVALID: code = IOPF_CODE_INVALID; break;
	default: code = ask(m, g); break;
	}
	atomic_fetch_add(code == IOPF_CODE_SUCCESS ? &m->success : &m->invalid, 1);
	if (!m->quiet) {
		pthread_mutex_lock(&m->out);
		if (iopf_group_pasid(g) == IOPF_NO_PASID)
			printf("dev %u pasid -", iopf_group_dev_id(g));
		else
			printf("dev %u pasid %#x", iopf_group_dev_id(g), iopf_group_pasid(g));
		printf(" prgi %u cookie %u:", iopf_group_prgi(g), iopf_group_cookie(g));
		for (size_t i = 0; i < n; i++) {
			char p[5];

			perm_str(r[i].perm, p);
			printf(" %s %#llx", p, (unsigned long long)r[i].addr);
		}
		printf("%s -> %s\n",
		       iopf_group_flags(g) & IOPF_GROUP_TRUNCATED ? " (truncated)" : "",
		       code == IOPF_CODE_SUCCESS ? "SUCCESS" : "INVALID");
		fflush(stdout);
		pthread_mutex_unlock(&m->out);
	}
	seen = atomic_fetch_add(&m->seen, 1) + 1;
	if (m->count && seen == m->count)
		iopf_ctx_stop(m->ctx);
	return code;
}

/* ---- --table and --exit-after ---- */

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void show_table(struct mon *m, const char *when)
{
	char title[160];

	snprintf(title, sizeof(title),
		 "iopf-monitor: fd %d, %lu groups (%lu SUCCESS, %lu INVALID), %.1f s%s",
		 m->fd, atomic_load(&m->seen), atomic_load(&m->success),
		 atomic_load(&m->invalid), since(&m->t0), when);
	pthread_mutex_lock(&m->out);
	devtable_render(m->table, stdout, m->tty, title);
	pthread_mutex_unlock(&m->out);
}

static void ts_add_ms(struct timespec *t, unsigned long ms)
{
	t->tv_sec += (time_t)(ms / 1000);
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

static bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/* Redraw every refresh_ms, stop the loop at exit_after_ms. The counters
 * are read under libiopf's lock from this thread; dispatch never waits
 * for the terminal. */
static void *timer_main(void *arg)
{
	struct mon *m = arg;
	struct timespec next = m->t0, end = m->t0, now;

	ts_add_ms(&next, m->refresh_ms);
	ts_add_ms(&end, m->exit_after_ms);
	pthread_mutex_lock(&m->tick);
	while (!m->done) {
		const struct timespec *until = m->table ? &next : &end;

		if (m->exit_after_ms && ts_le(&end, until))
			until = &end;
		if (pthread_cond_timedwait(&m->wake, &m->tick, until) != ETIMEDOUT)
			continue; /* woken: done, or spurious */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (m->exit_after_ms && ts_le(&end, &now)) {
			iopf_ctx_stop(m->ctx);
			break;
		}
		if (m->table && ts_le(&next, &now)) {
			pthread_mutex_unlock(&m->tick);
			show_table(m, "");
			pthread_mutex_lock(&m->tick);
			while (ts_le(&next, &now)) /* a slow terminal skips frames */
				ts_add_ms(&next, m->refresh_ms);
		}
	}
	pthread_mutex_unlock(&m->tick);
	return NULL;
}

static int timer_start(struct mon *m)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&m->tick, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &ca);
	pthread_condattr_destroy(&ca);
	return pthread_create(&m->timer, NULL, timer_main, m);
}

static void timer_stop(struct mon *m)
{
	pthread_mutex_lock(&m->tick);
	m->done = true;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->tick);
	pthread_join(m->timer, NULL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iopf-monitor --fd N [options]\n"
		"Attach to an iommufd fault fd handed over by another process, print\n"
		"each page request group on one line and answer it by a policy.\n\n"
		"  -f, --fd N            the fault fd (inherited; required)\n"
		"  -i, --fault-id ID     its fault object id, for messages (default 0)\n"
		"  -p, --policy P        success, invalid, or exec:CMD: run CMD with\n"
		"                        /bin/sh; exit status 0 answers SUCCESS, anything\n"
		"                        else INVALID (default success). CMD sees IOPF_DEV,\n"
		"                        IOPF_PASID, IOPF_PRGI, IOPF_COOKIE, IOPF_ADDRS,\n"
		"                        IOPF_PERMS\n"
		"  -n, --count N         exit after N groups (default: run until a signal)\n"
		"  -w, --workers N       answer up to N groups at once (default 0: one\n"
		"                        at a time, in order)\n"
		"  -q, --quiet           no line per group, only the summary\n"
		"  -t, --table           per-device counters instead of a line per group,\n"
		"                        slowest device first (p99, then outstanding):\n"
		"                        redrawn in place on a terminal, else a block of\n"
		"                        lines each time; once more at exit\n"
		"  -r, --refresh MS      redraw the table every MS ms (default 1000)\n"
		"  -P, --pasids          a row per PASID under each device (implies -t)\n"
		"  -e, --exit-after MS   exit after MS milliseconds (default: never)\n"
		"  -h, --help            this text\n"
		"Line format: dev D pasid P|- prgi I cookie C: PERM ADDR ... -> CODE\n"
		"Table: DEVICE PASID GROUPS RECORDS SUCCESS INVALID AUTO OUTST READY P50 P99;\n"
		"PASID 'all' is a device's total, '-' its groups without PASID; P50/P99:\n"
		"read-to-answer latency (histogram bucket bounds).\n"
		"On exit (count reached, SIGINT, SIGTERM) groups still outstanding are\n"
		"answered INVALID. Exit status: 0, 1 on a runtime error, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "fd", 1, 0, 'f' }, { "fault-id", 1, 0, 'i' },
		{ "policy", 1, 0, 'p' }, { "count", 1, 0, 'n' },
		{ "workers", 1, 0, 'w' }, { "quiet", 0, 0, 'q' },
		{ "table", 0, 0, 't' }, { "refresh", 1, 0, 'r' },
		{ "pasids", 0, 0, 'P' }, { "exit-after", 1, 0, 'e' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct mon m = { .policy = POL_SUCCESS, .refresh_ms = 1000 };
	bool table = false, pasids = false, timer = false;
	struct iopf_source *src;
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned int workers = 0;
	uint32_t fault_id = 0;
	int c, fd = -1, rc;

	while ((c = getopt_long(argc, argv, "f:i:p:n:w:qtr:Pe:h", lo, NULL)) != -1) {
		switch (c) {
		case 'f': fd = (int)opt_num("iopf-monitor", "--fd", optarg, 0, 1 << 20); break;
		case 'i':
			fault_id = (uint32_t)opt_num("iopf-monitor", "--fault-id",
						     optarg, 0, UINT32_MAX);
			break;
		case 'p':
			if (!strcmp(optarg, "success")) {
				m.policy = POL_SUCCESS;
			} else if (!strcmp(optarg, "invalid")) {
				m.policy = POL_INVALID;
			} else if (!strncmp(optarg, "exec:", 5) && optarg[5]) {
				m.policy = POL_EXEC;
				m.cmd = optarg + 5;
			} else {
				usage(stderr);
				return 2;
			}
			break;
		case 'n': m.count = opt_num("iopf-monitor", "--count", optarg, 0, ULONG_MAX); break;
		case 'w':
			workers = (unsigned int)opt_num("iopf-monitor", "--workers",
							optarg, 0, 64);
			break;
		case 'q': m.quiet = true; break;
		case 't': table = true; break;
		case 'r':
			m.refresh_ms = opt_num("iopf-monitor", "--refresh", optarg, 10, 3600000);
			break;
		case 'P': table = pasids = true; break;
		case 'e':
			m.exit_after_ms = opt_num("iopf-monitor", "--exit-after", optarg, 1,
						  ULONG_MAX / 2);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (fd < 0 || optind != argc || workers > 64) {
		usage(stderr);
		return 2;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		fprintf(stderr, "iopf-monitor: fd %d: %s\n", fd, strerror(errno));
		return 2;
	}
	pthread_mutex_init(&m.out, NULL);
	IOPF_OPTS(iopf_ctx_opts, co, .workers = workers, .log_fn = iopf_log_stderr,
		  .flags = pasids ? IOPF_CTX_PASID_STATS : 0);
	m.ctx = g_ctx = iopf_ctx_new(&co);
	if (!m.ctx) {
		fprintf(stderr, "iopf-monitor: %s\n", strerror(errno));
		return 1;
	}
	m.fd = fd;
	clock_gettime(CLOCK_MONOTONIC, &m.t0);
	if (table) {
		m.quiet = true; /* the table replaces the lines */
		m.tty = isatty(STDOUT_FILENO);
		if (!(m.table = devtable_new(m.ctx, pasids))) {
			fprintf(stderr, "iopf-monitor: %s\n", strerror(ENOMEM));
			iopf_ctx_free(m.ctx);
			return 1;
		}
	}
	/* The fd stays the caller's: no IOPF_FQ_CLOSE_FD. */
	src = iopf_fault_queue_adopt(m.ctx, fd, fault_id, NULL);
	if (!src) {
		fprintf(stderr, "iopf-monitor: fd %d: %s\n", fd, strerror(errno));
		iopf_ctx_free(m.ctx);
		devtable_free(m.table);
		return 1;
	}
	iopf_ctx_set_handler(m.ctx, on_group, &m);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if ((table || m.exit_after_ms) && (c = timer_start(&m))) {
		fprintf(stderr, "iopf-monitor: thread: %s\n", strerror(c));
		iopf_ctx_free(m.ctx);
		devtable_free(m.table);
		return 1;
	}
	timer = table || m.exit_after_ms;
	rc = iopf_ctx_run(m.ctx);
	if (timer)
		timer_stop(&m);
	iopf_ctx_flush(m.ctx);
	if (table) /* the final counts, before the rest is answered INVALID */
		show_table(&m, ", at exit");
	IOPF_OPTS(iopf_stats, st);
	iopf_ctx_get_stats(m.ctx, &st);
	iopf_ctx_free(m.ctx); /* answers anything still outstanding INVALID */
	devtable_free(m.table);
	fprintf(stderr, "iopf-monitor: %lu groups: %lu SUCCESS, %lu INVALID; %llu reads, %llu writes\n",
		atomic_load(&m.seen), atomic_load(&m.success),
		atomic_load(&m.invalid), (unsigned long long)st.read_calls,
		(unsigned long long)st.write_calls);
	if (rc < 0) {
		fprintf(stderr, "iopf-monitor: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
