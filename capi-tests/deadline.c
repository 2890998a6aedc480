/*
 * An operation deadline (issue 12, fault 5): a server that answers, but one byte every 150 ms,
 * must not hold a call beyond twice its timeout. The per-read timeout alone never fires against
 * such a server, since every read gets a byte in time.
 *
 * The fake server (tests/engine_faults.rs) answers a get with "VALUE k 0 1000000\r\n" and then
 * one byte of data every 150 ms, for far longer than any timeout; it answers a set with
 * "STORED\r\n", one byte every 150 ms (1.2 s in all). Every handle here has a 200 ms timeout, so a
 * call must end within 400 ms; the checks allow 1 s for a loaded machine.
 *
 * Each case runs in a child process of its own, all at once, each with alarm() as a hard cap: a
 * call the library never ends kills its child, and the parent reports which case hung.
 *
 *   aget2 - mc_aget2 of a key on the trickling server: NULL within 1 s, twice in a row.
 *   mget  - a multi-key mc_get through one mc_req over a real memcached and the trickling server:
 *           within 1 s, the real server's keys found with their values, the others not found;
 *           then the handle still serves the real server's keys.
 *   set   - mc_set whose STORED trickles: within 1 s and not reported stored (the reply had not
 *           arrived by the deadline).
 *
 * Environment: MC_HOST, MC_PORT (a real memcached), MC_TRICKLE_PORT (the trickling server).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "cases.h"

#define K(s) (char *)(s), strlen(s)

/* The handles' server timeout: 200 ms. */
#define TIMEOUT_US 200000
/* The bound of one call: twice the timeout is the rule, 1 s allows for a loaded machine. */
#define BOUND 1.0
/* Seconds a case may run before alarm() kills it. */
#define CASE_CAP 10
/* Keys of the mget case on each server. */
#define PER_SERVER 3

static const char *host, *live_port, *trickle_port;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A handle with a 200 ms timeout on each server: the real one first when `with_live`, then the
 * trickling one. */
static struct memcache *handle(int with_live)
{
	struct memcache *mc = mc_new();
	uint32_t i;

	if (mc == NULL) {
		CHECK(0, "%s", "mc_new");
		exit(1);
	}
	mc_timeout(mc, 0, TIMEOUT_US);
	if (with_live)
		CHECK(mc_server_add(mc, host, live_port) == 0, "%s", "add the real server");
	CHECK(mc_server_add(mc, host, trickle_port) == 0, "%s", "add the trickling server");
	for (i = 0; i < mc->num_servers; i++)
		CHECK(mc_server_timeout(mc->servers[i], 0, TIMEOUT_US) == 1, "mc_server_timeout(%u)", i);
	return mc;
}

static void case_aget2(void)
{
	struct memcache *mc = handle(0);
	int round;

	for (round = 1; round <= 2; round++) {
		size_t len = 7;
		double start = now(), took;
		char *v = mc_aget2(mc, K("k"), &len);

		took = now() - start;
		CHECK(v == NULL && len == 0, "aget2 round %d: a value from a server that never finished: %p, %zu bytes",
		      round, (void *)v, len);
		CHECK(took < BOUND, "aget2 round %d: mc_aget2 with a 200 ms timeout took %.3f s (bound %.1f s)", round,
		      took, BOUND);
		free(v);
	}
	mc_free(mc);
}

static void case_mget(void)
{
	struct memcache *mc = handle(1);
	struct memcache_server *live = mc->servers[0];
	char keys[2 * PER_SERVER][32], val[256];
	int on_live[2 * PER_SERVER], n_live = 0, n_trickle = 0, n = 0, i;
	struct memcache_req *req;
	struct memcache_res *res[2 * PER_SERVER];
	double start, took;

	/* Keys placed on each server by the handle's own finder. */
	for (i = 0; i < 1000 && (n_live < PER_SERVER || n_trickle < PER_SERVER); i++) {
		char key[32];
		int is_live;

		snprintf(key, sizeof(key), "dl:%d", i);
		is_live = mc_server_find(mc, mc_hash(mc, key, strlen(key))) == live;
		if (is_live ? n_live >= PER_SERVER : n_trickle >= PER_SERVER)
			continue;
		if (is_live)
			n_live++;
		else
			n_trickle++;
		strcpy(keys[n], key);
		on_live[n++] = is_live;
	}
	CHECK(n == 2 * PER_SERVER, "mget: found %d live and %d trickling keys", n_live, n_trickle);
	if (n != 2 * PER_SERVER)
		return;
	for (i = 0; i < n; i++) {
		if (!on_live[i])
			continue;
		snprintf(val, sizeof(val), "value of %s", keys[i]);
		CHECK(mc_set(mc, K(keys[i]), val, strlen(val), 0, 0) == 0, "mget: set %s on the real server", keys[i]);
	}

	req = mc_req_new();
	for (i = 0; i < n; i++)
		res[i] = mc_req_add(req, K(keys[i]));
	start = now();
	mc_get(mc, req);
	took = now() - start;
	CHECK(took < BOUND, "mget: mc_get of %d keys, %d on a trickling server, took %.3f s (bound %.1f s)", n,
	      n_trickle, took, BOUND);
	for (i = 0; i < n; i++) {
		if (res[i] == NULL)
			continue;
		snprintf(val, sizeof(val), "value of %s", keys[i]);
		if (on_live[i])
			CHECK(mc_res_found(res[i]) && res[i]->bytes == strlen(val) &&
			          memcmp(res[i]->val, val, strlen(val)) == 0,
			      "mget: %s (real server) found %d, %zu bytes", keys[i], mc_res_found(res[i]), res[i]->bytes);
		else
			CHECK(!mc_res_found(res[i]), "mget: %s (trickling server) found with %zu bytes", keys[i],
			      res[i]->bytes);
	}
	mc_req_free(req);

	/* The real server's keys are still served, promptly, by the same handle. */
	for (i = 0; i < n; i++) {
		size_t len = 0;
		char *v;

		if (!on_live[i])
			continue;
		snprintf(val, sizeof(val), "value of %s", keys[i]);
		start = now();
		v = mc_aget2(mc, K(keys[i]), &len);
		took = now() - start;
		CHECK(v != NULL && len == strlen(val) && memcmp(v, val, len) == 0, "mget: %s read back afterwards",
		      keys[i]);
		CHECK(took < BOUND, "mget: reading %s back took %.3f s", keys[i], took);
		free(v);
	}
	mc_free(mc);
}

static void case_set(void)
{
	struct memcache *mc = handle(0);
	double start = now(), took;
	int rv = mc_set(mc, K("k"), "v", 1, 0, 0);

	took = now() - start;
	CHECK(took < BOUND, "set: mc_set whose STORED trickles took %.3f s (bound %.1f s)", took, BOUND);
	CHECK(rv != 0, "set: mc_set returned %d (stored) though its reply had not arrived within the deadline", rv);
	mc_free(mc);
}

int main(void)
{
	struct child_case cases[] = {
		{"aget2", case_aget2, 0},
		{"mget", case_mget, 0},
		{"set", case_set, 0},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);

	host = need_env("MC_HOST");
	live_port = need_env("MC_PORT");
	trickle_port = need_env("MC_TRICKLE_PORT");

	run_cases(cases, n, CASE_CAP, "no operation deadline");
	return CHECK_DONE();
}
