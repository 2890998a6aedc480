/*
 * Replies a real memcached never sends (issue 7), against the scripted fake server of
 * tests/resilience.rs, with a 100 ms timeout and retry interval 0 (so the next operation may
 * reconnect at once). Each fault must make its operation fail cleanly in under 1 s, with a
 * report, and the next operation on the same handle must get its own right value although the
 * fake, after a stall, completes the old reply late and follows it with a well-formed answer to
 * that next command carrying a wrong value ("WRONG"): only a reused connection could read it.
 * The harness also fails the test if a command arrives on a connection after its fault.
 *
 * Not repeated here, already proven by protocol.c against its own fake: a line that is no reply
 * ("HELLO THERE") to a get, a value cut short followed by a close, a VALUE for a key not asked,
 * garbage or SERVER_ERROR to a set, garbage to delete and flush_all, CLIENT_ERROR to incr.
 *
 * New here: a value cut short then a stall; a VALUE line cut short then a stall; a whole value
 * without its END then a stall; a stall in the middle of a multi-key mc_get; a storage reply
 * cut short then a stall; an incr reply cut short then a stall (and the incr never sent twice);
 * binary garbage, a non-numeric, negative or 20-digit length, a value longer than announced and
 * a line longer than any reply line in answer to a get; a non-numeric incr reply.
 *
 * The fake answers any other key K with "val-K". Environment: MC_HOST, MC_FAKE_PORT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"
#include "resilience.h"

static struct memcache *mc;
static double worst;

/* The operation after a fault on `fault`: `get next-<fault>` must be "val-next-<fault>". */
static void next_is_right(const char *fault)
{
	char key[96], val[128];

	snprintf(key, sizeof(key), "next-%s", fault);
	snprintf(val, sizeof(val), "val-%s", key);
	CHECK(reads_as(mc, key, val), "the get after the fault on %s did not read its own value", fault);
}

/* Checks how a fault ended: `failed`, in under 1 s, reported with `code` (0: any code). */
static void ended(const char *fault, int failed, double start, u_int32_t code)
{
	double took = now() - start;

	CHECK(failed, "the operation on %s did not fail", fault);
	CHECK(took < 1.0, "the operation on %s took %.3f s", fault, took);
	CHECK(report_count >= 1 && (code == 0 || recorder_count(code, 0) >= 1), "%s: %d reports, none with code %u",
	      fault, report_count, (unsigned)code);
	if (took > worst)
		worst = took;
	recorder_reset();
	next_is_right(fault);
}

static void get_fault(const char *fault, u_int32_t code)
{
	size_t len = 99;
	double start;
	char *v;

	recorder_reset();
	start = now();
	v = mc_aget2(mc, K(fault), &len);
	ended(fault, v == NULL && len == 0, start, code);
	free(v);
}

static void multi_get_stall(void)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *before = mc_req_add(req, K("multi-before"));
	struct memcache_res *stalled = mc_req_add(req, K("stall-multi"));
	double start;

	recorder_reset();
	start = now();
	mc_get(mc, req);
	/* The value read before the stall may be kept; if it is, it is the right one. */
	CHECK(!mc_res_found(before) || (before->bytes == 16 && memcmp(before->val, "val-multi-before", 16) == 0),
	      "%s", "multi-before holds a wrong value");
	ended("stall-multi", !mc_res_found(stalled), start, MCM_ERR_TIMEOUT);
	mc_req_free(req);
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *port = need_env("MC_FAKE_PORT");
	double start;
	int rc;
	u_int32_t n;
	u_int64_t n64;

	mcErrSetup(recorder_handler);
	mc = mc_new();
	mc_timeout(mc, 0, 100000);
	CHECK(mc_retry_interval(mc, 0, 0) == 0, "%s", "retry interval 0");
	CHECK(mc_server_add(mc, host, port) == 0, "%s", "add the fake server");
	CHECK(reads_as(mc, "hello", "val-hello"), "%s", "the fake answers");

	/* Stalls: the timeout ends the operation; the connection is closed, never reused. */
	get_fault("stall-data", MCM_ERR_TIMEOUT);
	get_fault("stall-line", MCM_ERR_TIMEOUT);
	get_fault("stall-end", MCM_ERR_TIMEOUT);
	multi_get_stall();

	recorder_reset();
	start = now();
	rc = mc_set(mc, K("stall-set"), "v", 1, 0, 0);
	ended("stall-set", rc != 0 && rc != 1, start, MCM_ERR_TIMEOUT);

	recorder_reset();
	start = now();
	n = mc_incr(mc, K("stall-incr"), 1);
	ended("stall-incr", n == 0, start, MCM_ERR_TIMEOUT);

	/* Garbage: fails at once, the connection is closed. */
	get_fault("bin-garbage", 0);
	get_fault("bad-length", 0);
	get_fault("neg-length", 0);
	get_fault("huge-length", 0);
	get_fault("long-data", 0);
	get_fault("long-line", 0);

	recorder_reset();
	start = now();
	n64 = 5;
	rc = mc_incr64(mc, K("incr-garbage"), 1, &n64);
	ended("incr-garbage", rc != 0, start, 0);

	fprintf(stderr, "stalls: worst time to a clean failure: %.1f ms (timeout 100 ms)\n", worst * 1000);
	mc_free(mc);
	return CHECK_DONE();
}
