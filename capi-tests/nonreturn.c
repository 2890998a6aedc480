/*
 * A handler that does not return (spec §6.1, D9): one database extension raises an error with a
 * non-local jump from its handler. After such a jump the context and the handle must stay usable
 * and the next call on the same thread must not deadlock.
 *
 * The jumps here leave library calls half-way, so this program is not run under valgrind (what the
 * abandoned frames held is not the library's to release). alarm() turns a deadlock into a failure.
 *
 * Environment: MC_HOST, MC_PORT.
 */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"

#define K(s) (char *)(s), strlen(s)

static jmp_buf escape;
static int jumps;

/* Jumps out on ERR and FATAL (like the database extension), and on MC_STORE (a NOTICE raised
 * while the handle is in the middle of a command). */
static int32_t jumping_handler(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *ctxt;
	struct memcache_err_ctxt *e;

	MCM_ERR_INIT_CTXT(ctxt, e);
	(void)ctxt;
	if (e->severity == MCM_ERR_LVL_ERR || e->severity == MCM_ERR_LVL_FATAL || e->errcode == MCM_ERR_MC_STORE) {
		jumps++;
		longjmp(escape, 1);
	}
	return 0;
}

static int value_is(struct memcache_ctxt *ctxt, struct memcache *mc, const char *key, const char *expect)
{
	size_t len = 0;
	char *v = mcm_aget2(ctxt, mc, K(key), &len);
	int ok = v != NULL && len == strlen(expect) && memcmp(v, expect, len) == 0;

	free(v);
	return ok;
}

static void exercise(struct memcache_ctxt *ctxt, struct memcache *mc, const char *label)
{
	volatile int i, escaped = 0, ok = 0;
	char val[32];

	CHECK(mcm_set(ctxt, mc, K("nr:k"), "base", 4, 0, 0) == 0, "%s: initial set", label);
	for (i = 0; i < 50; i++) {
		/* An invalid key: PROTO at ERR, before anything is sent. */
		if (setjmp(escape) == 0) {
			mcm_set(ctxt, mc, K("bad key"), "x", 1, 0, 0);
		} else {
			escaped++;
		}
		/* NOT_STORED: reported while a command is in progress on the handle. */
		if (setjmp(escape) == 0) {
			mcm_add(ctxt, mc, K("nr:k"), "x", 1, 0, 0);
		} else {
			escaped++;
		}
		/* The next calls on this thread work, and the stream is in step. */
		snprintf(val, sizeof(val), "v%d", i);
		if (mcm_set(ctxt, mc, K("nr:k"), val, strlen(val), 0, 0) == 0 && value_is(ctxt, mc, "nr:k", val))
			ok++;
	}
	CHECK(escaped == 100, "%s: %d of 100 reports escaped through the handler", label, escaped);
	CHECK(ok == 50, "%s: %d of 50 set/get rounds worked after a non-returning handler", label, ok);
	/* A request works too. */
	{
		struct memcache_req *req = mcm_req_new(ctxt);
		struct memcache_res *res = mcm_req_add(ctxt, req, K("nr:k"));

		mcm_get(ctxt, mc, req);
		CHECK(mcm_res_found(ctxt, res) && res->bytes == 3 && memcmp(res->val, "v49", 3) == 0,
		      "%s: mcm_get after the jumps", label);
		mcm_req_free(ctxt, req);
	}
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *port = need_env("MC_PORT");
	struct memcache_ctxt *own = mcMemNewCtxt(free, malloc, NULL, realloc);
	struct memcache *mc, *own_mc;
	mcErrFunc saved;

	alarm(30);
	mcErrGet(&saved);
	mcErrSetup(jumping_handler);
	mc = mc_new();
	CHECK(mc_server_add(mc, host, port) == 0, "%s", "mc_server_add");
	exercise(mc_global_ctxt(), mc, "global context");
	mc_free(mc);

	/* The database extension's setup: own context, own handler; NOTICE/INFO unfiltered. */
	CHECK(own != NULL, "%s", "mcMemNewCtxt");
	if (own != NULL) {
		mcErrSetupCtxt(own, jumping_handler);
		mcm_err_filter_del(own, MCM_ERR_LVL_INFO | MCM_ERR_LVL_NOTICE);
		own_mc = mcm_new(own);
		CHECK(mcm_server_add(own, own_mc, host, port) == 0, "%s", "mcm_server_add");
		exercise(own, own_mc, "own context");
		mcm_free(own, own_mc);
		mcMemFreeCtxt(own);
	}
	mcErrSetup(saved);
	CHECK(jumps == 200, "%d jumps", jumps);
	return CHECK_DONE();
}
