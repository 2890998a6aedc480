/*
 * Eight threads share ONE handle that follows a domain while the harness keeps changing the
 * domain's list with mcadmin (issue 12, fault 1). Each thread loops over multi-key mc_get,
 * mc_stats, mc_flush_all and mc_server_find: the calls that walk the server array. A list change frees the servers
 * that left, so a call that read the array or a server outside the handle's exclusion would use
 * freed memory (before the fix: SIGSEGV within seconds). Answers are not checked (flush_all
 * empties the servers under the gets' feet); the process must simply live, and every call must
 * return.
 *
 * Environment: MEMCACHE_SHM_PREFIX (private to the test), RACE_DOMAIN, RACE_SECONDS (how long to
 * run, default 20), RACE_STARTED (a file created once the threads run). Prints nothing to stdout.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <memcache.h>

#include "check.h"

#define THREADS 8
#define KEYS 16

static struct memcache *shared;
static time_t stop_at;
static long calls[THREADS];

static int32_t quiet_handler(MCM_ERR_FUNC_ARGS)
{
	(void)MCM_ERR_FUNC_MC_CTXT;
	(void)MCM_ERR_FUNC_ERR_CTXT;
	return 0;
}

static void *worker(void *arg)
{
	int id = (int)(long)arg, i;
	char keys[KEYS][32];
	long n = 0;

	for (i = 0; i < KEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "race-%d-%d", id, i);
	while (time(NULL) < stop_at) {
		struct memcache_req *req = mc_req_new();
		struct memcache_server_stats *s;

		for (i = 0; i < KEYS; i++)
			mc_req_add(req, keys[i], strlen(keys[i]));
		mc_get(shared, req);
		mc_req_free(req);
		if (n % 4 == 0) {
			s = mc_stats(shared);
			if (s != NULL)
				mc_server_stats_free(s);
		}
		if (n % 16 == 0)
			(void)mc_flush_all(shared);
		for (i = 0; i < KEYS; i++)
			(void)mc_server_find(shared, mc_hash(shared, keys[i], strlen(keys[i])));
		(void)mc_set(shared, keys[n % KEYS], strlen(keys[n % KEYS]), "v", 1, 0, 0);
		n++;
	}
	calls[id] = n;
	return NULL;
}

int main(void)
{
	const char *domain = need_env("RACE_DOMAIN");
	const char *seconds = getenv("RACE_SECONDS");
	const char *started = need_env("RACE_STARTED");
	pthread_t t[THREADS];
	long total = 0;
	FILE *f;
	int i;

	mcErrSetup(quiet_handler);
	shared = mc_new2(domain);
	CHECK(shared != NULL, "mc_new2(%s)", domain);
	if (shared == NULL)
		return CHECK_DONE();
	stop_at = time(NULL) + (seconds != NULL ? atoi(seconds) : 20);
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(long)i);
	f = fopen(started, "w");
	if (f != NULL)
		fclose(f);
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK(calls[i] > 0, "thread %d made no round", i);
		total += calls[i];
	}
	fprintf(stderr, "list_race: %ld rounds in %d threads\n", total, THREADS);
	mc_free(shared);
	return CHECK_DONE();
}
