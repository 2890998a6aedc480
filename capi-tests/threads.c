/*
 * Thread safety (spec D9):
 *  1. four threads, each with its own handle, all through the mc_* API (shared global context);
 *  2. four threads sharing one handle (calls serialised by the library), plus a shared counter
 *     incremented by all of them, which must end exactly at the number of increments;
 *  3. four threads with their own contexts on one shared handle, checking their own errnum
 *     (ENOENT after a miss, 0 after a hit) never leaks between threads;
 *  4. four threads, own handles, all producing reports on the global context at once: the
 *     handler is never entered by two threads at the same time and always sees a consistent
 *     record;
 *  5. one thread setting the timeouts of a shared handle and of its server (mc_timeout,
 *     mc_server_timeout, which write them under the handle's lock) while three others use it.
 * Every value read back is checked.
 *
 * Environment: MC_HOST, MC_PORT.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"

#define THREADS 4
#define ITERATIONS 2000
#define COUNTER_INCRS 250
#define ERRNUM_ROUNDS 300

static const char *host, *port;
static struct memcache *shared;

struct job {
	int id;
	struct memcache *mc; /* NULL: make an own handle */
	int bad;
};

static int round_trip(struct memcache *mc, int id, int i)
{
	char key[48], val[64], *v;
	size_t len = 0, vlen;
	int bad = 0;

	snprintf(key, sizeof(key), "th:%p:%d:%d", (void *)mc, id, i);
	vlen = (size_t)snprintf(val, sizeof(val), "value-%d-%d-%d", id, i, i * 31 + id);
	if (mc_set(mc, key, strlen(key), val, vlen, 0, (u_int16_t)i) != 0)
		return 1;
	v = mc_aget2(mc, key, strlen(key), &len);
	bad += v == NULL || len != vlen || memcmp(v, val, vlen) != 0;
	free(v);
	/* Every 100 iterations, a request with two keys (one present, one missing). */
	if (i % 100 == 0) {
		struct memcache_req *req = mc_req_new();
		struct memcache_res *hit = mc_req_add(req, key, strlen(key));
		struct memcache_res *miss = mc_req_add(req, "th:never", 8);

		mc_get(mc, req);
		bad += !mc_res_found(hit) || hit->bytes != vlen || memcmp(hit->val, val, vlen) != 0 ||
		       hit->flags != (u_int16_t)i;
		bad += mc_res_found(miss);
		mc_req_free(req);
	}
	return bad;
}

static void *own_handle_worker(void *arg)
{
	struct job *job = arg;
	struct memcache *mc = mc_new();
	int i;

	if (mc == NULL || mc_server_add(mc, host, port) != 0) {
		job->bad = ITERATIONS;
		return NULL;
	}
	for (i = 0; i < ITERATIONS; i++)
		job->bad += round_trip(mc, job->id, i);
	mc_free(mc);
	return NULL;
}

static void *shared_handle_worker(void *arg)
{
	struct job *job = arg;
	int i;

	for (i = 0; i < ITERATIONS; i++) {
		job->bad += round_trip(shared, job->id, i);
		if (i < COUNTER_INCRS && mc_incr(shared, "th:counter", 10, 1) == 0)
			job->bad++;
	}
	return NULL;
}

static void *own_context_worker(void *arg)
{
	struct job *job = arg;
	struct memcache_ctxt *ctxt = mcMemNewCtxt(free, malloc, malloc, realloc);
	char key[32];
	int i;

	if (ctxt == NULL) {
		job->bad = ERRNUM_ROUNDS;
		return NULL;
	}
	snprintf(key, sizeof(key), "th:ctr:%d", job->id);
	if (mcm_set(ctxt, shared, key, strlen(key), "0", 1, 0, 0) != 0)
		job->bad++;
	for (i = 0; i < ERRNUM_ROUNDS; i++) {
		/* Odd threads hit, even threads miss: their errnum must stay their own. */
		if (job->id % 2) {
			u_int32_t n = mcm_incr(ctxt, shared, key, strlen(key), 1);
			job->bad += n != (u_int32_t)(i + 1) || ctxt->errnum != 0;
		} else {
			u_int32_t n = mcm_incr(ctxt, shared, "th:absent", 9, 1);
			job->bad += n != 0 || ctxt->errnum != ENOENT;
		}
	}
	mcMemFreeCtxt(ctxt);
	return NULL;
}

#define REPORTS_PER_THREAD 100

static int inside_handler, overlaps, inconsistent, handled;

static int32_t serial_handler(MCM_ERR_FUNC_ARGS)
{
	struct memcache_err_ctxt *e = (struct memcache_err_ctxt *)MCM_ERR_FUNC_ERR_CTXT;
	u_int32_t code = e->errcode;

	(void)MCM_ERR_FUNC_MC_CTXT;
	if (__sync_add_and_fetch(&inside_handler, 1) > 1)
		__sync_fetch_and_add(&overlaps, 1);
	usleep(50); /* widen the window for a second thread */
	if (e->errcode != code || code != MCM_ERR_MC_STORE || e->severity != MCM_ERR_LVL_NOTICE)
		__sync_fetch_and_add(&inconsistent, 1);
	__sync_fetch_and_add(&handled, 1);
	__sync_sub_and_fetch(&inside_handler, 1);
	return 0;
}

static void *reporting_worker(void *arg)
{
	struct job *job = arg;
	struct memcache *mc = mc_new();
	int i;

	if (mc == NULL || mc_server_add(mc, host, port) != 0) {
		job->bad = REPORTS_PER_THREAD;
		return NULL;
	}
	for (i = 0; i < REPORTS_PER_THREAD; i++)
		job->bad += mc_add(mc, "th:exists", 9, "x", 1, 0, 0) != 1; /* NOT_STORED: a NOTICE */
	mc_free(mc);
	return NULL;
}

static void *timeout_worker(void *arg)
{
	struct job *job = arg;
	int i;

	for (i = 0; i < ITERATIONS; i++) {
		if (job->id != 0) {
			job->bad += round_trip(shared, job->id, i);
			continue;
		}
		mc_timeout(shared, 2, 600 + i % 2);
		job->bad += mc_server_timeout(shared->servers[0], 2, 600 + i % 2) != 1;
	}
	return NULL;
}

static void run(void *(*worker)(void *), const char *label)
{
	pthread_t tid[THREADS];
	struct job jobs[THREADS];
	int i, bad = 0;

	for (i = 0; i < THREADS; i++) {
		jobs[i].id = i;
		jobs[i].mc = NULL;
		jobs[i].bad = 0;
		CHECK(pthread_create(&tid[i], NULL, worker, &jobs[i]) == 0, "%s: pthread_create", label);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		bad += jobs[i].bad;
	}
	CHECK(bad == 0, "%s: %d failed operations or wrong values", label, bad);
}

int main(void)
{
	mcErrFunc saved;
	char *v;

	host = need_env("MC_HOST");
	port = need_env("MC_PORT");

	run(own_handle_worker, "own handles");

	shared = mc_new();
	CHECK(mc_server_add(shared, host, port) == 0, "%s", "shared handle");
	CHECK(mc_set(shared, "th:counter", 10, "0", 1, 0, 0) == 0, "%s", "counter");
	run(shared_handle_worker, "shared handle");
	v = mc_aget(shared, "th:counter", 10);
	CHECK(v != NULL && atoi(v) == THREADS * COUNTER_INCRS, "shared counter = %s, expected %d", v ? v : "NULL",
	      THREADS * COUNTER_INCRS);
	free(v);

	mc_delete(shared, "th:absent", 9, 0);
	run(own_context_worker, "own contexts, shared handle");

	CHECK(mc_set(shared, "th:exists", 9, "x", 1, 0, 0) == 0, "%s", "set th:exists");
	mcErrGet(&saved);
	mcErrSetup(serial_handler);
	run(reporting_worker, "concurrent reports");
	mcErrSetup(saved);
	CHECK(handled == THREADS * REPORTS_PER_THREAD, "%d reports handled, expected %d", handled,
	      THREADS * REPORTS_PER_THREAD);
	CHECK(overlaps == 0, "the handler ran in two threads at once %d times (D9)", overlaps);
	CHECK(inconsistent == 0, "%d reports saw a record changed under them (D9)", inconsistent);

	run(timeout_worker, "timeouts set while the handle is in use");
	mc_free(shared);
	return CHECK_DONE();
}
