/*
 * Storage and retrieval against a real memcached: return codes of set/add/replace/delete
 * (spec §9.2, §9.3), incr/decr values and errnum (§9.4), mc_aget/mc_aget2 (§9.5), binary and
 * large values, item flags through mc_get (§9.6), expiry, delete with a hold time (D7), and the
 * same through the mcm_ API on an own context.
 *
 * Environment: MC_HOST, MC_PORT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

#define K(s) (char *)(s), strlen(s)

static struct memcache *mc;

/* mc_aget2 of a key expected to hold exactly `expect` (a C string). */
static void expect_value(const char *key, const char *expect, int line)
{
	size_t len = 12345;
	char *v = mc_aget2(mc, K(key), &len);

	if (expect == NULL) {
		CHECK(v == NULL && len == 0, "line %d: %s: expected a miss, got %s (retlen %lu)", line,
		      key, v ? v : "NULL", (unsigned long)len);
	} else {
		CHECK(v != NULL && len == strlen(expect) && memcmp(v, expect, len) == 0 && v[len] == '\0',
		      "line %d: %s: expected \"%s\", got \"%s\" (retlen %lu; last report: code %u \"%s\")", line,
		      key, expect, v ? v : "NULL", (unsigned long)len,
		      recorder_last() ? (unsigned)recorder_last()->errcode : 0,
		      recorder_last() ? recorder_last()->msg : "");
	}
	free(v);
}
#define EXPECT_VALUE(key, expect) expect_value((key), (expect), __LINE__)

static void check_storage_codes(void)
{
	recorder_reset();
	CHECK(mc_set(mc, K("sf:a"), "v1", 2, 0, 0) == 0, "%s", "set -> 0");
	EXPECT_VALUE("sf:a", "v1");
	CHECK(mc_set(mc, K("sf:a"), "v2", 2, 0, 0) == 0, "%s", "set over an existing item -> 0");
	EXPECT_VALUE("sf:a", "v2");
	CHECK(report_count == 0, "successful stores reported %d times", report_count);

	CHECK(mc_add(mc, K("sf:a"), "v3", 2, 0, 0) == 1, "%s", "add of an existing key -> 1");
	CHECK(recorder_count(MCM_ERR_MC_STORE, MCM_ERR_LVL_NOTICE) == 1,
	      "NOT_STORED reported as MC_STORE/NOTICE %d times (of %d reports)",
	      recorder_count(MCM_ERR_MC_STORE, MCM_ERR_LVL_NOTICE), report_count);
	EXPECT_VALUE("sf:a", "v2");
	CHECK(mc_add(mc, K("sf:b"), "b1", 2, 0, 0) == 0, "%s", "add of a new key -> 0");
	EXPECT_VALUE("sf:b", "b1");
	CHECK(mc_replace(mc, K("sf:b"), "b2", 2, 0, 0) == 0, "%s", "replace existing -> 0");
	EXPECT_VALUE("sf:b", "b2");
	CHECK(mc_replace(mc, K("sf:nope"), "x", 1, 0, 0) == 1, "%s", "replace missing -> 1");
	EXPECT_VALUE("sf:nope", NULL);

	CHECK(mc_delete(mc, K("sf:b"), 0) == 0, "%s", "delete existing -> 0");
	EXPECT_VALUE("sf:b", NULL);
	CHECK(mc_delete(mc, K("sf:b"), 0) == 1, "%s", "delete missing -> 1");

	/* Zero-length values are legal. */
	CHECK(mc_set(mc, K("sf:empty"), "", 0, 0, 0) == 0, "%s", "set empty value");
}

static u_int32_t errnum_now(void)
{
	return mc_global_ctxt()->errnum;
}

static void check_counters(void)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	u_int32_t v;

	CHECK(mc_set(mc, K("sf:ctr"), "10", 2, 0, 0) == 0, "%s", "set counter");
	g->errnum = 77;
	v = mc_incr(mc, K("sf:ctr"), 5);
	CHECK(v == 15 && errnum_now() == 0, "incr 10+5 = %u errnum %u", (unsigned)v, (unsigned)errnum_now());
	v = mc_decr(mc, K("sf:ctr"), 3);
	CHECK(v == 12, "decr 15-3 = %u", (unsigned)v);
	v = mc_decr(mc, K("sf:ctr"), 100);
	CHECK(v == 0 && errnum_now() == 0, "decr below zero = %u (server clamps at 0), errnum %u",
	      (unsigned)v, (unsigned)errnum_now());

	/* 64-bit server counters are converted to u_int32_t (§9.4). */
	CHECK(mc_set(mc, K("sf:wrap"), "4294967295", 10, 0, 0) == 0, "%s", "set 2^32-1");
	v = mc_incr(mc, K("sf:wrap"), 1);
	CHECK(v == 0 && errnum_now() == 0, "incr 4294967295+1 = %u (expected 0), errnum %u",
	      (unsigned)v, (unsigned)errnum_now());
	EXPECT_VALUE("sf:wrap", "4294967296");
	CHECK(mc_set(mc, K("sf:big"), "5000000000", 10, 0, 0) == 0, "%s", "set 5000000000");
	v = mc_incr(mc, K("sf:big"), 1);
	CHECK(v == 705032705U, "incr 5000000000+1 = %u (expected 705032705)", (unsigned)v);

	/* A miss returns 0 and errnum ENOENT: how clients tell "0" from "missing". */
	g->errnum = 0;
	v = mc_incr(mc, K("sf:nocounter"), 1);
	CHECK(v == 0 && g->errnum == ENOENT, "incr miss = %u errnum %u (expected ENOENT)", (unsigned)v,
	      (unsigned)g->errnum);
	g->errnum = 0;
	v = mc_decr(mc, K("sf:nocounter"), 1);
	CHECK(v == 0 && g->errnum == ENOENT, "decr miss = %u errnum %u", (unsigned)v, (unsigned)g->errnum);
	v = mc_incr(mc, K("sf:ctr"), 0);
	CHECK(v == 0 && g->errnum == 0, "incr hit after a miss clears errnum: %u", (unsigned)g->errnum);

	/* After a shortening decr the server pads with spaces; values pass through unchanged. */
	CHECK(mc_set(mc, K("sf:pad"), "100", 3, 0, 0) == 0, "%s", "set 100");
	v = mc_decr(mc, K("sf:pad"), 91);
	CHECK(v == 9, "decr 100-91 = %u", (unsigned)v);
	EXPECT_VALUE("sf:pad", "9  ");
}

static void check_aget(void)
{
	size_t len;
	char *v;

	CHECK(mc_set(mc, K("sf:str"), "hello", 5, 0, 0) == 0, "%s", "set hello");
	v = mc_aget(mc, K("sf:str"));
	CHECK(v != NULL && strcmp(v, "hello") == 0, "mc_aget = %s", v ? v : "NULL");
	free(v);
	len = 0;
	v = mc_aget2(mc, K("sf:str"), &len);
	CHECK(v != NULL && len == 5 && v[5] == '\0' && memcmp(v, "hello", 5) == 0, "mc_aget2 retlen %lu",
	      (unsigned long)len);
	free(v);
	/* retlen may be NULL. */
	v = mc_aget2(mc, K("sf:str"), NULL);
	CHECK(v != NULL && strcmp(v, "hello") == 0, "%s", "mc_aget2 with NULL retlen");
	free(v);

	/* Empty value: a non-NULL 1-byte buffer holding NUL, retlen 0. */
	len = 99;
	v = mc_aget2(mc, K("sf:empty"), &len);
	CHECK(v != NULL && len == 0 && v[0] == '\0', "empty value: %p retlen %lu", (void *)v,
	      (unsigned long)len);
	free(v);
	v = mc_aget(mc, K("sf:empty"));
	CHECK(v != NULL && v[0] == '\0', "%s", "mc_aget of an empty value is non-NULL");
	free(v);

	/* Miss: NULL, retlen 0. */
	len = 99;
	v = mc_aget2(mc, K("sf:missing"), &len);
	CHECK(v == NULL && len == 0, "miss: %p retlen %lu", (void *)v, (unsigned long)len);
	CHECK(mc_aget(mc, K("sf:missing")) == NULL, "%s", "mc_aget miss -> NULL");

	/* Keys need not be NUL-terminated: exactly len bytes are used. */
	{
		char buf[] = "sf:strXYZ";
		len = 0;
		v = mc_aget2(mc, buf, 6, &len);
		CHECK(v != NULL && len == 5 && strcmp(v, "hello") == 0, "%s", "aget2 with a length-bounded key");
		free(v);
		CHECK(mc_set(mc, buf, 6, "again", 5, 0, 0) == 0, "%s", "set with a length-bounded key");
		EXPECT_VALUE("sf:str", "again");
		EXPECT_VALUE("sf:strXYZ", NULL);
	}
}

static void check_binary_and_large(void)
{
	static const char tricky[] = "a\0b\r\nEND\r\nVALUE x 0 1\r\n\0\0\xff";
	size_t tricky_len = sizeof(tricky) - 1;
	size_t big_len = 200 * 1024 + 7, len, i;
	char *big = malloc(big_len), *v;
	char *huge;

	len = 0;
	CHECK(mc_set(mc, K("sf:bin"), tricky, tricky_len, 0, 0) == 0, "%s", "set binary");
	v = mc_aget2(mc, K("sf:bin"), &len);
	CHECK(v != NULL && len == tricky_len && memcmp(v, tricky, len) == 0 && v[len] == '\0',
	      "binary value round trip: retlen %lu", (unsigned long)len);
	free(v);

	/* Larger than INIT_GET_BUF_SIZE: several reads. */
	for (i = 0; i < big_len; i++)
		big[i] = (char)(i * 7 + i / 251);
	CHECK(mc_set(mc, K("sf:big"), big, big_len, 0, 0) == 0, "%s", "set 200 KiB");
	len = 0;
	v = mc_aget2(mc, K("sf:big"), &len);
	CHECK(v != NULL && len == big_len && memcmp(v, big, big_len) == 0, "200 KiB round trip: %lu",
	      (unsigned long)len);
	free(v);
	free(big);

	/* Over the server's item limit (1 MiB): SERVER_ERROR -> 4 (§9.2), and the stream is still
	 * in step afterwards. */
	huge = calloc(1, 2 * 1024 * 1024);
	CHECK(huge != NULL, "%s", "calloc");
	if (huge != NULL) {
		int rc = mc_set(mc, K("sf:huge"), huge, 2 * 1024 * 1024, 0, 0);
		CHECK(rc == 4, "set of 2 MiB = %d, expected 4 (SERVER_ERROR)", rc);
		free(huge);
	}
	EXPECT_VALUE("sf:str", "again");
	CHECK(mc_set(mc, K("sf:after-huge"), "ok", 2, 0, 0) == 0, "%s", "set after SERVER_ERROR");
	EXPECT_VALUE("sf:after-huge", "ok");
}

static void check_flags(void)
{
	static const u_int16_t values[] = {0, 1, 0xBEEF, 65535};
	size_t i;

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct memcache_req *req = mc_req_new();
		struct memcache_res *res;

		CHECK(mc_set(mc, K("sf:flags"), "f", 1, 0, values[i]) == 0, "set flags %u", values[i]);
		res = mc_req_add(req, K("sf:flags"));
		mc_get(mc, req);
		CHECK(mc_res_found(res) && res->flags == values[i] && res->bytes == 1,
		      "flags round trip: stored %u, got %u", (unsigned)values[i], (unsigned)res->flags);
		mc_req_free(req);
	}
}

static void check_expiry(void)
{
	CHECK(mc_set(mc, K("sf:short"), "s", 1, 1, 0) == 0, "%s", "set with expire 1");
	CHECK(mc_set(mc, K("sf:long"), "l", 1, 3600, 0) == 0, "%s", "set with expire 3600");
	CHECK(mc_add(mc, K("sf:addexp"), "a", 1, 1, 0) == 0, "%s", "add with expire 1");
	EXPECT_VALUE("sf:short", "s");
	sleep(3);
	EXPECT_VALUE("sf:short", NULL);
	EXPECT_VALUE("sf:addexp", NULL);
	EXPECT_VALUE("sf:long", "l");
}

static void check_delete_hold(void)
{
	/* D7: the hold is dropped (modern servers refuse it), a NOTICE says so, the codes are
	 * those of a plain delete. */
	CHECK(mc_set(mc, K("sf:held"), "h", 1, 0, 0) == 0, "%s", "set");
	recorder_reset();
	CHECK(mc_delete(mc, K("sf:held"), 5) == 0, "%s", "delete with hold 5 of an existing item -> 0");
	CHECK(recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_NOTICE) == 1,
	      "hold reported as PROTO/NOTICE %d times (%d reports, last %s)",
	      recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_NOTICE), report_count,
	      recorder_last() ? recorder_last()->msg : "-");
	CHECK(recorder_last() == NULL || recorder_last()->cont == 'y', "%s", "cont 'y' for the NOTICE");
	EXPECT_VALUE("sf:held", NULL);
	CHECK(mc_delete(mc, K("sf:held"), 5) == 1, "%s", "delete with hold of a missing item -> 1");
	/* The connection is still in step. */
	CHECK(mc_set(mc, K("sf:held"), "h2", 2, 0, 0) == 0, "%s", "set after held delete");
	EXPECT_VALUE("sf:held", "h2");
}

static void check_mcm_api(const char *host, const char *port)
{
	struct memcache_ctxt *ctxt = mcMemNewCtxt(free, malloc, malloc, realloc);
	struct memcache *m;
	size_t len = 0;
	char *v;
	u_int32_t n;

	CHECK(ctxt != NULL, "%s", "mcMemNewCtxt");
	if (ctxt == NULL)
		return;
	mcErrSetupCtxt(ctxt, recorder_handler);
	m = mcm_new(ctxt);
	CHECK(m != NULL && mcm_server_add(ctxt, m, host, port) == 0, "%s", "mcm_new + mcm_server_add");
	CHECK(mcm_set(ctxt, m, K("sf:mcm"), "m1", 2, 0, 3) == 0, "%s", "mcm_set");
	CHECK(mcm_add(ctxt, m, K("sf:mcm"), "m2", 2, 0, 3) == 1, "%s", "mcm_add existing");
	CHECK(mcm_replace(ctxt, m, K("sf:mcm"), "m3", 2, 0, 3) == 0, "%s", "mcm_replace");
	v = mcm_aget2(ctxt, m, K("sf:mcm"), &len);
	CHECK(v != NULL && len == 2 && strcmp(v, "m3") == 0, "%s", "mcm_aget2");
	free(v);
	v = mcm_aget(ctxt, m, K("sf:mcm"));
	CHECK(v != NULL && strcmp(v, "m3") == 0, "%s", "mcm_aget");
	free(v);
	CHECK(mcm_set(ctxt, m, K("sf:mcmctr"), "7", 1, 0, 0) == 0, "%s", "mcm_set counter");
	n = mcm_incr(ctxt, m, K("sf:mcmctr"), 3);
	CHECK(n == 10 && ctxt->errnum == 0, "mcm_incr = %u", (unsigned)n);
	n = mcm_decr(ctxt, m, K("sf:mcmctr"), 4);
	CHECK(n == 6, "mcm_decr = %u", (unsigned)n);
	mc_global_ctxt()->errnum = 0;
	n = mcm_incr(ctxt, m, K("sf:mcmnone"), 3);
	CHECK(n == 0 && ctxt->errnum == ENOENT, "mcm_incr miss: %u errnum %u", (unsigned)n,
	      (unsigned)ctxt->errnum);
	CHECK(mc_global_ctxt()->errnum == 0, "%s", "the miss on an own context leaves the global errnum");
	CHECK(mcm_delete(ctxt, m, K("sf:mcm"), 0) == 0, "%s", "mcm_delete");
	CHECK(mcm_delete(ctxt, m, K("sf:mcm"), 0) == 1, "%s", "mcm_delete missing");
	mcm_free(ctxt, m);
	mcMemFreeCtxt(ctxt);
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *port = need_env("MC_PORT");
	mcErrFunc saved = NULL;

	CHECK(mcErrGet(&saved) == 0 && saved != NULL, "%s", "mcErrGet");
	CHECK(mcErrSetup(recorder_handler) == 0, "%s", "mcErrSetup");
	mc = mc_new();
	CHECK(mc != NULL && mc_server_add(mc, host, port) == 0, "%s", "mc_new + mc_server_add");

	check_storage_codes();
	check_counters();
	check_aget();
	check_binary_and_large();
	check_flags();
	check_delete_hold();
	check_mcm_api(host, port);
	check_expiry();

	mc_free(mc);
	mcErrSetup(saved);
	return CHECK_DONE();
}
