/*
 * mc_bulk() (beyond 1.4) against real memcached servers: a result per item for every
 * operation, the values readable through the 1.4 calls, a refused item and bad keys reported
 * once each, the arguments checked, and bulk calls on a handle that other threads use
 * pipelined at the same moment (neither may take the other's replies).
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

#define N 100

static char keys[N][32];
static struct memcache_bulk items[N];

static void fill(const char *prefix, int n, const char *value, time_t exptime)
{
	int i;

	for (i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%s-%d", prefix, i);
		items[i].key = keys[i];
		items[i].key_len = strlen(keys[i]);
		items[i].val = value;
		items[i].val_len = value ? strlen(value) : 0;
		items[i].flags = 70000; /* more than 16 bits: memcached keeps 32 */
		items[i].exptime = exptime;
		items[i].result = 12345;
	}
}

static int count_results(int n, int result)
{
	int i, c = 0;

	for (i = 0; i < n; i++)
		c += items[i].result == result;
	return c;
}

static void expect_value(struct memcache *mc, const char *key, const char *expect)
{
	size_t len = 0;
	char *v = mc_aget2(mc, (char *)key, strlen(key), &len);

	if (expect == NULL)
		CHECK(v == NULL, "%s: expected a miss, got %s", key, v ? v : "NULL");
	else
		CHECK(v != NULL && len == strlen(expect) && memcmp(v, expect, len) == 0,
		      "%s: expected %s, got %s", key, expect, v ? v : "NULL");
	free(v);
}

/* A thread of single calls on the shared handle: each value it reads back is its own. */
struct single {
	struct memcache *mc;
	int id;
	int wrong;
};

static void *singles(void *arg)
{
	struct single *t = arg;
	char key[32], val[32], *got;
	size_t len;
	int n;

	for (n = 0; n < 300; n++) {
		snprintf(key, sizeof(key), "th%d-%d", t->id, n % 7);
		snprintf(val, sizeof(val), "v%d-%d", t->id, n);
		if (mc_set(t->mc, key, strlen(key), val, strlen(val), 0, 0) != 0)
			t->wrong++;
		got = mc_aget2(t->mc, key, strlen(key), &len);
		if (got == NULL || len != strlen(val) || memcmp(got, val, len) != 0)
			t->wrong++;
		free(got);
	}
	return NULL;
}

static void bulk_beside_pipelined_callers(struct memcache *mc)
{
	pthread_t threads[4];
	struct single t[4];
	int i, round, rc, bad = 0;

	for (i = 0; i < 4; i++) {
		t[i].mc = mc;
		t[i].id = i;
		t[i].wrong = 0;
		CHECK(pthread_create(&threads[i], NULL, singles, &t[i]) == 0, "thread %d", i);
	}
	for (round = 0; round < 30; round++) {
		fill(round % 2 ? "par-odd" : "par-even", N, round % 2 ? "odd" : "even", 0);
		rc = mc_bulk(mc, MC_BULK_SET, items, N);
		bad += rc != 0;
	}
	for (i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		CHECK(t[i].wrong == 0, "thread %d read %d wrong answers beside bulk calls", i, t[i].wrong);
	}
	CHECK(bad == 0, "%d bulk calls beside pipelined callers did not write every item", bad);
	expect_value(mc, "par-odd-7", "odd");
	expect_value(mc, "par-even-99", "even");
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *ports[3];
	struct memcache *mc;
	mcErrFunc saved = NULL;
	char *big;
	int i, rc;

	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	CHECK(mcErrGet(&saved) == 0 && mcErrSetup(recorder_handler) == 0, "%s", "mcErrSetup");
	mc = mc_new_private();
	for (i = 0; i < 3; i++)
		CHECK(mc_server_add(mc, host, ports[i]) == 0, "add server %s", ports[i]);
	mc_distribution(mc, MC_DIST_KETAMA_MD5);

	/* set: every item stored, readable through the 1.4 calls. */
	recorder_reset();
	fill("bk", N, "value", 0);
	rc = mc_bulk(mc, MC_BULK_SET, items, N);
	CHECK(rc == 0 && count_results(N, MC_BULK_DONE) == N, "set: rc %d, %d done", rc,
	      count_results(N, MC_BULK_DONE));
	CHECK(report_count == 0, "a bulk set that worked reported %d times", report_count);
	expect_value(mc, "bk-0", "value");
	expect_value(mc, "bk-99", "value");

	/* add: all exist. */
	rc = mc_bulk(mc, MC_BULK_ADD, items, 10);
	CHECK(rc == 10 && count_results(10, MC_BULK_NOT_STORED) == 10, "add: rc %d", rc);
	/* replace of missing keys, append of present ones. */
	fill("missing", 5, "x", 0);
	rc = mc_bulk(mc, MC_BULK_REPLACE, items, 5);
	CHECK(rc == 5 && count_results(5, MC_BULK_NOT_STORED) == 5, "replace: rc %d", rc);
	fill("bk", 3, "+", 0);
	rc = mc_bulk(mc, MC_BULK_APPEND, items, 3);
	CHECK(rc == 0, "append: rc %d", rc);
	expect_value(mc, "bk-2", "value+");
	/* touch and delete. */
	fill("bk", N, NULL, 3600);
	rc = mc_bulk(mc, MC_BULK_TOUCH, items, N);
	CHECK(rc == 0, "touch: rc %d", rc);
	rc = mc_bulk(mc, MC_BULK_DELETE, items, 50);
	CHECK(rc == 0 && count_results(50, MC_BULK_DONE) == 50, "delete: rc %d", rc);
	rc = mc_bulk(mc, MC_BULK_DELETE, items, 50);
	CHECK(rc == 50 && count_results(50, MC_BULK_NOT_FOUND) == 50, "delete again: rc %d", rc);
	expect_value(mc, "bk-49", NULL);
	expect_value(mc, "bk-50", "value");

	/* One value over the server's item size among good ones: refused alone, reported once. */
	big = malloc(2 << 20);
	memset(big, 'x', 2 << 20);
	big[(2 << 20) - 1] = '\0';
	fill("big", 9, "small", 0);
	items[4].val = big;
	items[4].val_len = strlen(big);
	recorder_reset();
	rc = mc_bulk(mc, MC_BULK_SET, items, 9);
	CHECK(rc == 1 && items[4].result == MC_BULK_REFUSED && count_results(9, MC_BULK_DONE) == 8,
	      "a refused item: rc %d, item 4 %d", rc, items[4].result);
	CHECK(recorder_count(MCM_ERR_MC_STORE, MCM_ERR_LVL_ERR) +
	              recorder_count(MCM_ERR_MC_STORE, MCM_ERR_LVL_NOTICE) + recorder_count(MCM_ERR_MC_STORE, MCM_ERR_LVL_WARN) ==
	          1,
	      "the refusal reported once (%d reports)", report_count);
	expect_value(mc, "big-3", "small");
	free(big);

	/* Bad keys: not sent, reported once for the call; the others written. */
	fill("ok", 4, "v", 0);
	items[1].key = "has space";
	items[1].key_len = 9;
	items[2].key_len = 0;
	recorder_reset();
	rc = mc_bulk(mc, MC_BULK_SET, items, 4);
	CHECK(rc == 2 && items[1].result == MC_BULK_BAD_KEY && items[2].result == MC_BULK_BAD_KEY &&
	          items[0].result == MC_BULK_DONE && items[3].result == MC_BULK_DONE,
	      "bad keys: rc %d", rc);
	CHECK(report_count == 1, "bad keys reported %d times", report_count);

	bulk_beside_pipelined_callers(mc);

	/* Arguments. */
	CHECK(mc_bulk(NULL, MC_BULK_SET, items, 1) == -1, "%s", "NULL handle");
	CHECK(mc_bulk(mc, 99, items, 1) == -1, "%s", "unknown op");
	CHECK(mc_bulk(mc, MC_BULK_SET, NULL, 1) == -1, "%s", "NULL items");
	CHECK(mc_bulk(mc, MC_BULK_SET, NULL, 0) == 0, "%s", "no items");

	mc_free(mc);
	mcErrSetup(saved);
	return CHECK_DONE();
}
