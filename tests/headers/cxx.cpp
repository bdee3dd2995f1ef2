// SPDX-License-Identifier: MIT
// cxx.cpp - iopf.h from C++11 (tests/check-headers.sh compiles it at
// -std=c++11 -pedantic-errors): option structs filled the way the header
// documents for C++, since designated initializers are C++20. Compiled,
// not run.
#include <iopf/iopf.h>

static int on_fault(iopf_group *g, void *)
{
	size_t n;
	const iopf_record *r = iopf_group_records(g, &n);
	return n && (r[0].flags & IOPF_F_LAST_PAGE) ? IOPF_CODE_SUCCESS
						    : IOPF_DEFER;
}

static void on_resp(const iopf_response *, void *) {}

int iopf_cxx_header_check();
int iopf_cxx_header_check()
{
	iopf_ctx_opts o{};
	o.sz = sizeof o;
	o.workers = 4;
	iopf_ctx *ctx = iopf_ctx_new(&o);
	if (!ctx)
		return 1;
	iopf_ctx_set_handler(ctx, on_fault, nullptr);

	iopf_fault_queue_opts q{};
	q.sz = sizeof q;
	q.flags = IOPF_FQ_CLOSE_FD;
	(void)q;

	iopf_producer_opts p{};
	p.sz = sizeof p;
	p.respond = on_resp;
	iopf_source *src = iopf_producer_new(ctx, &p);

	iopf_stats st{};
	st.sz = sizeof st;
	int rc = iopf_ctx_get_stats(ctx, &st);

	iopf_source_close(src);
	iopf_ctx_free(ctx);
	return rc < 0 || st.groups != 0 || IOPF_NO_PASID != UINT32_MAX;
}
