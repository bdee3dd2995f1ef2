/* SPDX-License-Identifier: MIT */
/* strict.c - iopf.h in strict ISO C (tests/check-headers.sh compiles it
 * at -std=c99 -pedantic-errors): every macro, IOPF_OPTS() with every
 * option struct and with 0, 1 and 2 designators. Compiled, not run. */
#include <iopf/iopf.h>

static int on_fault(struct iopf_group *g, void *ud)
{
	(void)g;
	(void)ud;
	return IOPF_DEFER;
}

static void on_resp(const struct iopf_response *r, void *ud)
{
	(void)r;
	(void)ud;
}

static void on_log(int level, const char *msg, void *ud)
{
	(void)level;
	(void)msg;
	(void)ud;
}

int iopf_strict_header_check(void);
int iopf_strict_header_check(void)
{
	IOPF_OPTS(iopf_ctx_opts, c0);
	IOPF_OPTS(iopf_ctx_opts, c1, .workers = 4);
	IOPF_OPTS(iopf_ctx_opts, c2, .workers = 4, .log_fn = on_log);
	IOPF_OPTS(iopf_fault_queue_opts, q0);
	IOPF_OPTS(iopf_fault_queue_opts, q1, .flags = IOPF_FQ_CLOSE_FD);
	IOPF_OPTS(iopf_fault_queue_opts, q2, .read_records = 64,
		  .max_read_records = 1024);
	IOPF_OPTS(iopf_producer_opts, p0);
	IOPF_OPTS(iopf_producer_opts, p1, .respond = on_resp);
	IOPF_OPTS(iopf_producer_opts, p2, .respond = on_resp, .partial_cap = 8);
	IOPF_OPTS(iopf_stats, st);
	unsigned int flags = IOPF_F_PASID_VALID | IOPF_F_LAST_PAGE |
			     IOPF_PERM_READ | IOPF_PERM_WRITE | IOPF_PERM_EXEC |
			     IOPF_PERM_PRIV | IOPF_GROUP_TRUNCATED |
			     IOPF_ALL_PASIDS | IOPF_ALL_DEVICES |
			     IOPF_FQ_CLOSE_FD;
	uint32_t pasid = IOPF_NO_PASID;
	int codes = IOPF_CODE_SUCCESS + IOPF_CODE_INVALID + IOPF_DEFER;
	int version = IOPF_VERSION_MAJOR * 10000 + IOPF_VERSION_MINOR * 100 +
		      IOPF_VERSION_PATCH;
	iopf_handler_fn h = on_fault;
	size_t sizes = c0.sz + c1.sz + c2.sz + q0.sz + q1.sz + q2.sz + p0.sz +
		       p1.sz + p2.sz + st.sz + sizeof(st.latency_hist) /
		       sizeof(st.latency_hist[0]) - IOPF_LAT_BUCKETS;

	return (int)(flags + pasid + (unsigned int)codes + (unsigned int)version +
		     c1.workers + c2.workers + q1.flags + q2.read_records +
		     p2.partial_cap + (p1.respond != 0) + (h != 0) +
		     (c0.log_fn != 0) + (int)sizes);
}
