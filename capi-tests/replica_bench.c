/*
 * A measurement, not a test of speed (nothing here fails on a number): throughput of single
 * gets (mc_aget2) with one copy and with two copies (mc_replicas(mc, 2)) over the same three
 * servers, in alternating rounds so that both see the same machine load. Every key was written
 * through the two-copy handle, so both handles find every key on its primary; a last pair of
 * rounds reads keys that do not exist (with two copies a miss asks both servers).
 * Values are checked, so the program does fail on a wrong or missing value.
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3; MC_BENCH_GETS (gets per round, default
 * 20000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "resilience.h"

#define NSERV 3
#define NKEYS 1000
#define ROUNDS 5

static const char *host, *ports[NSERV];
static int gets_per_round = 20000;

static struct memcache *handle(int copies)
{
	struct memcache *mc = mc_new();
	int i;

	CHECK(mc_replicas(mc, (u_int32_t)copies) == 0, "%s", "mc_replicas");
	for (i = 0; i < NSERV; i++)
		CHECK(mc_server_add(mc, host, ports[i]) == 0, "add server %d", i);
	return mc;
}

/* Gets per second over one round; `hits` says whether the keys exist. */
static double round_of_gets(struct memcache *mc, int hits, int *wrong)
{
	char key[32], val[32];
	double start = now();
	int i;

	for (i = 0; i < gets_per_round; i++) {
		int k = (i * 7919) % NKEYS;

		snprintf(key, sizeof(key), hits ? "rb:%d" : "rb-missing:%d", k);
		if (hits) {
			snprintf(val, sizeof(val), "value-%d", k);
			*wrong += !reads_as(mc, key, val);
		} else {
			*wrong += mc_aget(mc, K(key)) != NULL;
		}
	}
	return gets_per_round / (now() - start);
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	struct memcache *one, *two;
	double r1[ROUNDS], r2[ROUNDS], m1, m2;
	char key[32], val[32];
	int i, wrong = 0;
	const char *n;

	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	n = getenv("MC_BENCH_GETS");
	if (n != NULL && atoi(n) > 0)
		gets_per_round = atoi(n);
	one = handle(1);
	two = handle(2);
	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "rb:%d", i);
		snprintf(val, sizeof(val), "value-%d", i);
		CHECK(mc_set(two, K(key), val, strlen(val), 0, 0) == 0, "set %s", key);
	}
	/* Warm both: every connection open before timing. */
	round_of_gets(one, 1, &wrong);
	round_of_gets(two, 1, &wrong);
	for (i = 0; i < ROUNDS; i++) {
		r1[i] = round_of_gets(one, 1, &wrong);
		r2[i] = round_of_gets(two, 1, &wrong);
		fprintf(stderr, "replica_bench: round %d: hits, 1 copy %.0f gets/s, 2 copies %.0f gets/s\n", i + 1, r1[i],
			r2[i]);
	}
	qsort(r1, ROUNDS, sizeof(double), by_value);
	qsort(r2, ROUNDS, sizeof(double), by_value);
	fprintf(stderr, "replica_bench: median of %d rounds of %d single gets (hits): 1 copy %.0f/s, 2 copies %.0f/s (%.1f%%)\n",
		ROUNDS, gets_per_round, r1[ROUNDS / 2], r2[ROUNDS / 2], 100.0 * r2[ROUNDS / 2] / r1[ROUNDS / 2]);
	m1 = round_of_gets(one, 0, &wrong);
	m2 = round_of_gets(two, 0, &wrong);
	fprintf(stderr, "replica_bench: one round of misses: 1 copy %.0f gets/s, 2 copies %.0f gets/s (%.1f%%)\n", m1, m2,
		100.0 * m2 / m1);
	CHECK(wrong == 0, "%d gets returned a wrong answer", wrong);
	mc_free(one);
	mc_free(two);
	return CHECK_DONE();
}
