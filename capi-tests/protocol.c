/*
 * Unexpected replies (spec §9.2-§9.8, D1), against a scripted fake server run by the harness:
 * every unexpected reply gives the documented failure value after a report that lets the
 * program continue, and the connection is then closed so that no later command reads a stale
 * reply (the fake server records any command that arrives on a connection after it sent an
 * unexpected reply; the harness fails the test on any).
 *
 * The fake server's script, by key: get "good" -> VALUE good 7 2 "ok"; get "alien" -> a VALUE for
 * a key not in the request; get "garbage" -> a line that is no reply; get "short" -> a value cut
 * short and the connection closed; get with "strayend" among the keys -> the reply and a second END; set "weird" -> GARBAGE; set "servererr" -> SERVER_ERROR;
 * set "stray" -> STORED plus an END nobody asked for; set "straylate" -> the same END 50 ms later;
 * incr "text" -> CLIENT_ERROR; incr "num" -> 42; incr "huge" -> 2^64-1; delete "weird" -> WHAT;
 * flush_all -> NOPE; stats -> a few known and unknown names.
 *
 * Environment: MC_HOST, MC_FAKE_PORT.
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

static void expect_good(const char *after)
{
	size_t len = 0;
	char *v = mc_aget2(mc, K("good"), &len);

	CHECK(v != NULL && len == 2 && strcmp(v, "ok") == 0, "get \"good\" after %s: %s", after, v ? v : "NULL");
	free(v);
}

static void expect_reported(const char *what)
{
	int i, all_continue = 1;

	CHECK(report_count >= 1, "%s: not reported", what);
	for (i = 0; i < report_count && i < RECORDER_MAX; i++)
		all_continue &= reports[i].cont == 'y';
	CHECK(all_continue, "%s: a report did not carry cont 'y' (D1)", what);
	recorder_reset();
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *port = need_env("MC_FAKE_PORT");
	struct memcache_req *req;
	struct memcache_res *res;
	struct memcache_server_stats *st;
	size_t len;
	u_int32_t n;
	int rc;

	mcErrSetup(recorder_handler);
	mc = mc_new();
	CHECK(mc_server_add(mc, host, port) == 0, "%s", "mc_server_add");

	expect_good("start");
	req = mc_req_new();
	res = mc_req_add(req, K("good"));
	mc_get(mc, req);
	CHECK(mc_res_found(res) && res->flags == 7 && res->bytes == 2, "%s", "mc_get of \"good\"");
	mc_req_free(req);
	CHECK(report_count == 0, "%d reports for plain gets", report_count);

	/* A VALUE for a key that was not asked for: PROTO, nothing found. */
	req = mc_req_new();
	res = mc_req_add(req, K("alien"));
	mc_get(mc, req);
	CHECK(!mc_res_found(res), "%s", "alien VALUE: not found");
	mc_req_free(req);
	expect_reported("alien VALUE");
	expect_good("alien VALUE");

	len = 99;
	CHECK(mc_aget2(mc, K("garbage"), &len) == NULL && len == 0, "%s", "garbage reply to get -> NULL");
	expect_reported("garbage reply to get");
	expect_good("garbage reply");

	/* The server closes the connection in the middle of a value: SYS_READ, NULL (D1). */
	CHECK(mc_aget(mc, K("short")) == NULL, "%s", "truncated value -> NULL");
	CHECK(recorder_count(MCM_ERR_SYS_READ, 0) >= 1, "%s", "a closed connection is reported as SYS_READ");
	expect_reported("truncated value");
	expect_good("truncated value");

	rc = mc_set(mc, K("weird"), "v", 1, 0, 0);
	CHECK(rc == 2, "set answered with GARBAGE -> %d, expected 2", rc);
	expect_reported("set answered with GARBAGE");
	rc = mc_set(mc, K("fine"), "v", 1, 0, 0);
	CHECK(rc == 0, "set after GARBAGE -> %d", rc);
	rc = mc_set(mc, K("servererr"), "v", 1, 0, 0);
	CHECK(rc == 4, "set answered with SERVER_ERROR -> %d, expected 4", rc);
	recorder_reset();
	expect_good("SERVER_ERROR");

	/* Bytes nobody asked for never answer the next command: the connection is closed instead. */
	rc = mc_set(mc, K("stray"), "v", 1, 0, 0);
	CHECK(rc == 0, "set answered STORED plus a stray END -> %d", rc);
	expect_good("a stray END in the reply's write");
	rc = mc_set(mc, K("straylate"), "v", 1, 0, 0);
	CHECK(rc == 0, "set answered STORED, then a stray END -> %d", rc);
	usleep(200000); /* the stray END has arrived by now */
	expect_good("a stray END after the reply");
	{
		struct memcache_req *r2 = mc_req_new();
		struct memcache_res *res2 = mc_req_add(r2, K("good"));

		rc = mc_set(mc, K("straylate"), "v", 1, 0, 0);
		usleep(200000);
		mc_get(mc, r2);
		CHECK(rc == 0 && mc_res_found(res2), "%s", "mc_get after a stray END: found");
		mc_req_free(r2);
	}
	{
		/* A multi-key get whose reply is followed by a stray END: the values are kept and the
		 * connection is not reused. */
		struct memcache_req *r3 = mc_req_new();
		struct memcache_res *found = mc_req_add(r3, K("good"));
		struct memcache_res *missing = mc_req_add(r3, K("strayend"));

		mc_get(mc, r3);
		CHECK(mc_res_found(found) && !mc_res_found(missing), "%s", "multi-key get with a stray END");
		mc_req_free(r3);
		expect_good("a multi-key get followed by a stray END");
	}
	recorder_reset();

	mc_global_ctxt()->errnum = 0;
	n = mc_incr(mc, K("text"), 1);
	CHECK(n == 0 && mc_global_ctxt()->errnum == 0, "incr answered with CLIENT_ERROR -> %u errnum %u", (unsigned)n,
	      (unsigned)mc_global_ctxt()->errnum);
	CHECK(recorder_count(MCM_ERR_PROTO, 0) >= 1, "%s", "CLIENT_ERROR to incr reported as PROTO");
	expect_reported("incr answered with CLIENT_ERROR");
	n = mc_incr(mc, K("num"), 1);
	CHECK(n == 42, "incr -> %u, expected 42", (unsigned)n);
	n = mc_decr(mc, K("huge"), 1);
	CHECK(n == 4294967295U, "a 64-bit reply 2^64-1 -> %u, expected 4294967295", (unsigned)n);

	rc = mc_delete(mc, K("weird"), 0);
	CHECK(rc == -5, "delete answered with WHAT -> %d, expected -5", rc);
	expect_reported("delete answered with WHAT");
	rc = mc_delete(mc, K("x"), 0);
	CHECK(rc == 0, "delete after WHAT -> %d", rc);

	rc = mc_flush(mc, mc->servers[0]);
	CHECK(rc == -3, "flush answered with NOPE -> %d, expected -3", rc);
	expect_reported("flush answered with NOPE");
	rc = mc_flush_all(mc);
	CHECK(rc == -3, "flush_all answered with NOPE -> %d, expected -3", rc);
	expect_reported("flush_all answered with NOPE");
	expect_good("flush");

	/* Unknown stat names are skipped silently; sec:usec rusage parses (D6, §9.7). */
	st = mc_stats(mc);
	CHECK(st != NULL && st->pid == 4242 && st->version != NULL && strcmp(st->version, "9.9.9") == 0 &&
		      st->rusage_user.tv_sec == 1 && st->rusage_user.tv_usec == 500000 &&
		      st->rusage_system.tv_sec == 2 && st->rusage_system.tv_usec == 250 && st->curr_items == 3 &&
		      st->limit_maxbytes == 5000000000ULL,
	      "fake stats: pid %d version %s rusage_user %ld.%06ld rusage_system %ld.%06ld items %u max %llu",
	      st ? (int)st->pid : 0, st && st->version ? st->version : "NULL",
	      st ? (long)st->rusage_user.tv_sec : 0L, st ? (long)st->rusage_user.tv_usec : 0L,
	      st ? (long)st->rusage_system.tv_sec : 0L, st ? (long)st->rusage_system.tv_usec : 0L,
	      st ? (unsigned)st->curr_items : 0, st ? (unsigned long long)st->limit_maxbytes : 0ULL);
	if (st != NULL)
		mc_server_stats_free(st);
	CHECK(report_count == 0, "stats with unknown names: %d reports", report_count);
	expect_good("stats");

	/* mc_stats merges every server: the same fake server twice sums its counters and carries
	 * microseconds (1.500000 + 1.500000 = 3.000000), pid from the last one (§9.7). */
	{
		struct memcache *twice = mc_new();

		mc_server_add(twice, host, port);
		mc_server_add(twice, host, port);
		st = mc_stats(twice);
		CHECK(st != NULL && st->rusage_user.tv_sec == 3 && st->rusage_user.tv_usec == 0 &&
			      st->rusage_system.tv_sec == 4 && st->rusage_system.tv_usec == 500 && st->curr_items == 6 &&
			      st->limit_maxbytes == 10000000000ULL && st->pid == 4242 && st->version != NULL &&
			      strcmp(st->version, "9.9.9") == 0,
		      "merged stats: rusage_user %ld.%06ld items %u max %llu", st ? (long)st->rusage_user.tv_sec : 0L,
		      st ? (long)st->rusage_user.tv_usec : 0L, st ? (unsigned)st->curr_items : 0,
		      st ? (unsigned long long)st->limit_maxbytes : 0ULL);
		if (st != NULL)
			mc_server_stats_free(st);
		mc_free(twice);
	}

	mc_free(mc);
	return CHECK_DONE();
}
