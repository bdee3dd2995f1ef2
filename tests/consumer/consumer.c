/* A user's program: built against an installed libiopf. */
#include <iopf/iopf.h>
#include <stdio.h>

static void on_resp(const struct iopf_response *r, void *ud)
{
	*(int *)ud = (int)r->code + 1;
}

static int ok(struct iopf_group *g, void *ud)
{
	(void)g;
	(void)ud;
	return IOPF_CODE_SUCCESS;
}

int main(void)
{
	struct iopf_ctx *ctx = iopf_ctx_new(NULL);
	int got = 0;
	IOPF_OPTS(iopf_producer_opts, po, .respond = on_resp, .userdata = &got);
	struct iopf_source *p = iopf_producer_new(ctx, &po);
	struct iopf_request r = { .flags = IOPF_F_LAST_PAGE, .dev_id = 1 };

	iopf_ctx_set_handler(ctx, ok, NULL);
	iopf_producer_submit(p, &r);
	iopf_ctx_dispatch(ctx);
	iopf_ctx_free(ctx);
	printf("consumer: libiopf %s, answer %s\n", iopf_version(),
	       got == 1 ? "SUCCESS" : "missing");
	return got == 1 ? 0 : 1;
}
