/*
 * Threads sharing one handle pipeline their calls (issue 16, point 1), against one real
 * memcached that tests/pipeline.rs starts, stops, resumes or kills.
 *
 * MC_CASE:
 *   stress  8 threads x MC_ROUNDS rounds on one handle, each on its own keys: set a value
 *           naming the thread and the round, get it back, add (must fail), incr a counter of
 *           its own, delete and get (must miss). Every answer is checked against what that
 *           thread alone wrote, so a reply handed to the wrong caller shows.
 *   mixed   as stress on 5 threads, while the other 3 make calls that need the connection
 *           alone, each on keys of its own: a multi-get (mc_get), a bulk write (mc_bulk) read
 *           back, and stats. Each waits for the pipelined replies, and every answer is checked.
 *   queue   the harness stops the server (SIGSTOP); 8 threads then each call once (even
 *           threads mc_set, odd ones mc_aget2 of a value stored before) and wait; the harness
 *           sees all 8 requests in the server's socket (so none waited for another's reply)
 *           and resumes the server; each caller must get its own answer.
 *   dies    as queue, but the harness kills the server while the 8 callers wait: each must
 *           get an error (NULL or 2), none a value, each within 5 s (the timeout is 10 s) and
 *           each with one report of its own.
 *   stalls  as queue with a 0.3 s timeout, and the server is never resumed: each caller fails
 *           by its own deadline (under 2 s, was: one after the other, 8 x 0.6 s).
 *
 * Environment: MC_HOST, MC_PORT, MC_CASE, MC_SYNC_DIR (files "ready" and "stopped"), MC_ROUNDS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "resilience.h"

#define THREADS 8
#define VALUE_LEN 32

static struct memcache *mc;
static int rounds = 2000;
static const char *mode;

/* Reports per thread, counted by the error handler (which runs in the calling thread). */
static __thread int my_reports;

static int32_t count_report(const void *ctxt, void *ectxt)
{
	(void)ctxt;
	(void)ectxt;
	my_reports++;
	return 0;
}

static void queue_key(int t, char *key, size_t size)
{
	snprintf(key, size, "pipe:q:%d", t);
}

static void queue_value(int t, char *value)
{
	memset(value, 'a' + t, VALUE_LEN);
}

static void *stress_thread(void *arg)
{
	int t = (int)(long)arg;
	char key[64], counter[64], want[64], miss[64];
	size_t len;

	snprintf(counter, sizeof(counter), "pipe:c:%d", t);
	if (mc_set(mc, K(counter), "0", 1, 0, 0) != 0)
		CHECK(0, "thread %d: counter set failed", t);
	for (int r = 0; r < rounds; r++) {
		snprintf(key, sizeof(key), "pipe:s:%d:%d", t, r % 16);
		snprintf(want, sizeof(want), "thread %d round %d", t, r);
		CHECK(mc_set(mc, K(key), want, strlen(want), 0, 0) == 0, "thread %d set %d", t, r);
		char *got = mc_aget2(mc, K(key), &len);
		CHECK(got != NULL && len == strlen(want) && memcmp(got, want, len) == 0,
		      "thread %d round %d: got %.*s", t, r, got ? (int)len : 6, got ? got : "(null)");
		free(got);
		if (r % 4 == 0)
			CHECK(mc_add(mc, K(key), "x", 1, 0, 0) == 1, "thread %d: add over a key", t);
		CHECK(mc_incr(mc, K(counter), 1) == (u_int32_t)(r + 1), "thread %d: incr %d", t, r);
		if (r % 8 == 0) {
			snprintf(miss, sizeof(miss), "pipe:m:%d:%d", t, r);
			mc_delete(mc, K(miss), 0);
			CHECK(mc_aget(mc, K(miss)) == NULL, "thread %d: a deleted key found", t);
		}
	}
	return NULL;
}

/* A multi-get of 4 keys of this thread's own, every round with new values. */
static void mget_round(int t, int r)
{
	char keys[4][64], want[4][64];
	struct memcache_res *res[4];
	struct memcache_req *req = mc_req_new();

	for (int i = 0; i < 4; i++) {
		snprintf(keys[i], sizeof(keys[i]), "pipe:g:%d:%d", t, i);
		snprintf(want[i], sizeof(want[i]), "mget %d round %d", i, r);
		CHECK(mc_set(mc, K(keys[i]), want[i], strlen(want[i]), 0, 0) == 0, "mget setup");
		res[i] = mc_req_add(req, keys[i], strlen(keys[i]));
	}
	mc_get(mc, req);
	for (int i = 0; i < 4; i++)
		CHECK(mc_res_found(res[i]) && res[i]->bytes == strlen(want[i]) &&
		          memcmp(res[i]->val, want[i], res[i]->bytes) == 0,
		      "thread %d round %d: multi-get key %d", t, r, i);
	mc_req_free(req);
}

/* A bulk write of 8 keys of this thread's own, each read back. */
static void bulk_round(int t, int r)
{
	char keys[8][64], vals[8][64];
	struct memcache_bulk items[8];

	for (int i = 0; i < 8; i++) {
		snprintf(keys[i], sizeof(keys[i]), "pipe:b:%d:%d", t, i);
		snprintf(vals[i], sizeof(vals[i]), "bulk %d round %d", i, r);
		items[i] = (struct memcache_bulk){.key = keys[i], .key_len = strlen(keys[i]),
		                                  .val = vals[i], .val_len = strlen(vals[i])};
	}
	CHECK(mc_bulk(mc, MC_BULK_SET, items, 8) == 0, "thread %d round %d: bulk", t, r);
	for (int i = 0; i < 8; i++) {
		size_t len;
		char *got = mc_aget2(mc, K(keys[i]), &len);
		CHECK(got != NULL && len == strlen(vals[i]) && memcmp(got, vals[i], len) == 0,
		      "thread %d round %d: bulk key %d read back", t, r, i);
		free(got);
	}
}

static void *alone_thread(void *arg)
{
	int t = (int)(long)arg;

	for (int r = 0; r < rounds / 10; r++) {
		if (t == 5) {
			mget_round(t, r);
		} else if (t == 6) {
			bulk_round(t, r);
		} else {
			struct memcache_server_stats *st = mc_stats(mc);
			CHECK(st != NULL && st->pid > 0, "thread %d round %d: stats", t, r);
			if (st != NULL)
				mc_server_stats_free(st);
		}
	}
	return NULL;
}

struct waiter {
	int t;
	int rc;          /* set: mc_set's result */
	char *got;       /* get: the value */
	size_t len;
	double took;
	int reports;
};

static void *queue_thread(void *arg)
{
	struct waiter *w = arg;
	char key[64], value[VALUE_LEN];
	double start = now();

	queue_key(w->t, key, sizeof(key));
	queue_value(w->t, value);
	if (w->t % 2 == 0)
		w->rc = mc_set(mc, K(key), value, VALUE_LEN, 0, 0);
	else
		w->got = mc_aget2(mc, K(key), &w->len);
	w->took = now() - start;
	w->reports = my_reports;
	return NULL;
}

static void queue_case(const char *dir)
{
	pthread_t tids[THREADS];
	struct waiter ws[THREADS];
	char key[64], value[VALUE_LEN];
	int dies = strcmp(mode, "dies") == 0, stalls = strcmp(mode, "stalls") == 0;

	/* Every value stored (and the connection made) before the server stops. */
	for (int t = 0; t < THREADS; t++) {
		queue_key(t, key, sizeof(key));
		queue_value(t, value);
		CHECK(mc_set(mc, K(key), value, VALUE_LEN, 0, 0) == 0, "setup of %s", key);
	}
	if (stalls)
		mc_server_timeout(mc->servers[0], 0, 300000);
	if (!handshake(dir, "ready", "stopped")) {
		CHECK(0, "no handshake with the harness");
		return;
	}
	for (int t = 0; t < THREADS; t++) {
		ws[t] = (struct waiter){.t = t, .rc = -100};
		if (pthread_create(&tids[t], NULL, queue_thread, &ws[t]) != 0)
			CHECK(0, "cannot start thread %d", t);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(tids[t], NULL);
	for (int t = 0; t < THREADS; t++) {
		struct waiter *w = &ws[t];
		queue_value(t, value);
		if (dies || stalls) {
			if (t % 2 == 0)
				CHECK(w->rc == 2, "thread %d: set returned %d, not 2 (failed)", t, w->rc);
			else
				CHECK(w->got == NULL, "thread %d: got a value from a dead server", t);
			CHECK(w->reports == 1, "thread %d: %d reports, not 1", t, w->reports);
			CHECK(w->took < (stalls ? 2.0 : 5.0), "thread %d waited %.2f s", t, w->took);
		} else if (t % 2 == 0) {
			CHECK(w->rc == 0, "thread %d: set returned %d", t, w->rc);
		} else {
			CHECK(w->got != NULL && w->len == VALUE_LEN && memcmp(w->got, value, VALUE_LEN) == 0,
			      "thread %d: not its own value", t);
		}
		free(w->got);
		fprintf(stderr, "pipeline %s: thread %d answered in %.3f s\n", mode, t, w->took);
	}
}

int main(void)
{
	const char *host = getenv("MC_HOST"), *port = getenv("MC_PORT"), *dir = getenv("MC_SYNC_DIR");
	pthread_t tids[THREADS];

	mode = getenv("MC_CASE");
	if (host == NULL || port == NULL || mode == NULL) {
		fprintf(stderr, "MC_HOST, MC_PORT and MC_CASE are required\n");
		return 2;
	}
	if (getenv("MC_ROUNDS") != NULL)
		rounds = atoi(getenv("MC_ROUNDS"));
	mc = mc_new_private();
	/* A long timeout: the harness needs time to look at the server's socket. */
	mc_timeout(mc, 10, 0);
	if (mc == NULL || mc_server_add(mc, host, port) != 0) {
		fprintf(stderr, "cannot make a handle\n");
		return 2;
	}
	mcErrSetup(count_report);
	if (strcmp(mode, "stress") == 0) {
		for (long t = 0; t < THREADS; t++)
			if (pthread_create(&tids[t], NULL, stress_thread, (void *)t) != 0)
				CHECK(0, "cannot start thread %ld", t);
		for (int t = 0; t < THREADS; t++)
			pthread_join(tids[t], NULL);
	} else if (strcmp(mode, "mixed") == 0) {
		for (long t = 0; t < THREADS; t++)
			if (pthread_create(&tids[t], NULL, t < 5 ? stress_thread : alone_thread,
			                   (void *)t) != 0)
				CHECK(0, "cannot start thread %ld", t);
		for (int t = 0; t < THREADS; t++)
			pthread_join(tids[t], NULL);
	} else if (dir != NULL) {
		queue_case(dir);
	} else {
		CHECK(0, "MC_SYNC_DIR is required for %s", mode);
	}
	mc_free(mc);
	return check_done(__FILE__);
}
