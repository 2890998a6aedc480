/*
 * Thread safety under load (issue 7): 8 threads x 20,000 mixed operations (set, get, add,
 * delete, incr64) first on ONE shared handle, then on one handle per thread, over two servers.
 * Each thread works on its own 64 keys and keeps a model of what each holds, so every answer is
 * checked: the value a get returns, whether add stores, whether delete finds the key, the new
 * counter value. Every 100 operations each thread also increments one counter shared by all;
 * it must end at exactly the number of increments. (threads.c already covers 4 threads, errnum
 * of per-thread contexts and the serialised error handler.)
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2; MC_OPS (operations per thread, default 20000; the
 * harness uses fewer under helgrind/drd).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "resilience.h"

#define THREADS 8
#define NKEYS 64
#define SHARED_EVERY 100

static const char *host, *port1, *port2;
static int ops_per_thread = 20000;
static struct memcache *shared;

struct model {
	int present;
	int counter; /* keys with j % 4 == 0 hold decimal counters */
	u_int64_t number;
	char value[64];
};

struct worker {
	int id;
	const char *mode;
	struct memcache *mc; /* NULL: the thread makes its own handle */
	unsigned seed;
	int bad;
	int shared_incrs;
	char first_problem[160];
};

static struct memcache *two_server_handle(void)
{
	struct memcache *mc = mc_new();

	if (mc == NULL || mc_server_add(mc, host, port1) != 0 || mc_server_add(mc, host, port2) != 0) {
		fprintf(stderr, "cannot make a handle\n");
		exit(2);
	}
	return mc;
}

static unsigned next_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 8) & 0xffffff;
}

static void problem(struct worker *w, int op, const char *key, const char *what)
{
	if (w->bad++ == 0)
		snprintf(w->first_problem, sizeof(w->first_problem), "op %d on %s: %s", op, key, what);
}

/* The text a key holds according to the model. */
static void expected_text(const struct model *m, char *buf, size_t size)
{
	if (m->counter)
		snprintf(buf, size, "%llu", (unsigned long long)m->number);
	else
		snprintf(buf, size, "%s", m->value);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct memcache *mc = w->mc != NULL ? w->mc : two_server_handle();
	struct model model[NKEYS];
	char key[64], text[64], exp[64];
	int i, j, rc;

	memset(model, 0, sizeof(model));
	for (j = 0; j < NKEYS; j++) {
		model[j].counter = j % 4 == 0;
		snprintf(key, sizeof(key), "t8:%s:%d:%d", w->mode, w->id, j);
		mc_delete(mc, K(key), 0);
	}
	for (i = 0; i < ops_per_thread; i++) {
		unsigned r = next_rand(&w->seed);
		struct model *m;

		j = (int)(r % NKEYS);
		m = &model[j];
		snprintf(key, sizeof(key), "t8:%s:%d:%d", w->mode, w->id, j);
		/* The text a set or add would store now. */
		if (m->counter)
			snprintf(text, sizeof(text), "%u", (r >> 8) % 100000);
		else
			snprintf(text, sizeof(text), "v-%d-%d-%d", w->id, i, j);
		switch ((r >> 6) % 5) {
		case 0: /* set */
			rc = mc_set(mc, K(key), text, strlen(text), 0, (u_int16_t)i);
			if (rc != 0)
				problem(w, i, key, "set failed");
			m->present = 1;
			m->number = strtoull(text, NULL, 10);
			snprintf(m->value, sizeof(m->value), "%s", text);
			break;
		case 1: { /* get */
			size_t len = 0;
			char *v = mc_aget2(mc, K(key), &len);

			expected_text(m, exp, sizeof(exp));
			if (m->present && (v == NULL || len != strlen(exp) || memcmp(v, exp, len) != 0))
				problem(w, i, key, v == NULL ? "get missed" : "get returned a wrong value");
			if (!m->present && v != NULL)
				problem(w, i, key, "get found a deleted key");
			free(v);
			break;
		}
		case 2: /* add */
			rc = mc_add(mc, K(key), text, strlen(text), 0, 0);
			if (rc != (m->present ? 1 : 0))
				problem(w, i, key, "add answered wrongly");
			if (!m->present) {
				m->present = 1;
				m->number = strtoull(text, NULL, 10);
				snprintf(m->value, sizeof(m->value), "%s", text);
			}
			break;
		case 3: /* delete */
			rc = mc_delete(mc, K(key), 0);
			if (rc != (m->present ? 0 : 1))
				problem(w, i, key, "delete answered wrongly");
			m->present = 0;
			break;
		default: { /* incr64 on counters, get on the others */
			u_int64_t n = 0, delta = r % 7 + 1;

			if (!m->counter) {
				if (m->present && !reads_as(mc, key, m->value))
					problem(w, i, key, "get returned a wrong value");
				break;
			}
			rc = mc_incr64(mc, K(key), delta, &n);
			if (m->present && (rc != 0 || n != m->number + delta))
				problem(w, i, key, "incr returned a wrong value");
			if (!m->present && rc != MC_NOT_FOUND)
				problem(w, i, key, "incr of a missing key did not say not found");
			if (m->present)
				m->number += delta;
			break;
		}
		}
		if (i % SHARED_EVERY == 0) {
			u_int64_t n = 0;

			if (mc_incr64(mc, K("t8:shared"), 1, &n) != 0)
				problem(w, i, "t8:shared", "shared incr failed");
			w->shared_incrs++;
		}
	}
	if (w->mc == NULL)
		mc_free(mc);
	return NULL;
}

static int reports;

/* add of an existing key is reported as a NOTICE: count the reports instead of printing them. */
static int32_t counting_handler(MCM_ERR_FUNC_ARGS)
{
	(void)MCM_ERR_FUNC_MC_CTXT;
	(void)MCM_ERR_FUNC_ERR_CTXT;
	__sync_fetch_and_add(&reports, 1);
	return 0;
}

static void run(const char *mode, struct memcache *mc)
{
	pthread_t tids[THREADS];
	struct worker workers[THREADS];
	int i, bad = 0, incrs = 0;
	double start = now();
	u_int64_t total = 0;
	struct memcache *check = two_server_handle();

	CHECK(mc_set(check, K("t8:shared"), "0", 1, 0, 0) == 0, "%s", "reset the shared counter");
	for (i = 0; i < THREADS; i++) {
		workers[i].id = i;
		workers[i].mode = mode;
		workers[i].mc = mc;
		workers[i].seed = 7919u * (unsigned)(i + 1);
		workers[i].bad = 0;
		workers[i].shared_incrs = 0;
		workers[i].first_problem[0] = '\0';
		CHECK(pthread_create(&tids[i], NULL, worker_main, &workers[i]) == 0, "%s", "pthread_create");
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(tids[i], NULL);
		bad += workers[i].bad;
		incrs += workers[i].shared_incrs;
		CHECK(workers[i].bad == 0, "%s, thread %d: %d wrong answers, first: %s", mode, i, workers[i].bad,
		      workers[i].first_problem);
	}
	CHECK(mc_incr64(check, K("t8:shared"), 0, &total) == 0 && total == (u_int64_t)incrs,
	      "%s: shared counter %llu, expected %d", mode, (unsigned long long)total, incrs);
	fprintf(stderr, "threads8: %s: %d threads x %d operations in %.2f s, %d wrong answers\n", mode, THREADS,
		ops_per_thread, now() - start, bad);
	mc_free(check);
}

int main(void)
{
	const char *ops;

	host = need_env("MC_HOST");
	port1 = need_env("MC_PORT");
	port2 = need_env("MC_PORT2");
	ops = getenv("MC_OPS");
	if (ops != NULL && atoi(ops) > 0)
		ops_per_thread = atoi(ops);

	mcErrSetup(counting_handler);
	shared = two_server_handle();
	run("shared", shared);
	mc_free(shared);
	run("own", NULL);
	return CHECK_DONE();
}
