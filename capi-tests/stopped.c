/*
 * A server stopped with SIGSTOP (issue 7, failover), three real memcached servers, a 100 ms
 * timeout set with mc_timeout() before the servers are added:
 *  A. retry interval 0, so every operation on the stopped server's keys meets it: each kind of
 *     operation (set, get, add, delete, incr, a multi-key mc_get) fails after about the timeout
 *     (checked: at least 90 ms, under 1 s; the worst case is printed), and between them the
 *     other servers' keys keep working; a handle with two copies still reads the stopped
 *     server's keys from their copy;
 *  B. retry interval 2 s: after one more timeout the server is down, its keys go to the next
 *     live server (crc32-modulo: the next index; ketama-md5: another server), no other key moves,
 *     and those writes land where mc_server_find() now says;
 *  C. after SIGCONT and the retry interval the server is used again for its own keys.
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3, MC_PID2 (the server this program stops
 * and continues), MC_DIST ("crc32" or "ketama").
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"
#include "resilience.h"

#define NSERV 3
#define NKEYS 120
#define VICTIM 1
#define TIMEOUT_S 0.1
#define NTIMED 18

static const char *host, *ports[NSERV], *dist_name;
static pid_t victim_pid;
static int ketama;
static struct memcache *mc, *two;
static struct memcache *probe[NSERV];
static int owner[NKEYS], owner2[NKEYS];
static double worst;
static int timed_ops;

static struct memcache *make_handle(int copies)
{
	struct memcache *h = mc_new();
	int i;

	mc_timeout(h, 0, 100000); /* microseconds: 100 ms, for the servers added next */
	CHECK(mc_retry_interval(h, 0, 0) == 0, "%s", "retry interval 0");
	CHECK(mc_replicas(h, (u_int32_t)copies) == 0, "%s", "mc_replicas");
	for (i = 0; i < NSERV; i++)
		CHECK(mc_server_add(h, host, ports[i]) == 0, "add server %d", i);
	if (ketama)
		CHECK(mc_distribution(h, MC_DIST_KETAMA_MD5) == 0, "%s", "ketama");
	return h;
}

static void key_of(char *buf, size_t size, int i)
{
	snprintf(buf, size, "sk:%d", i);
}

static void val_of(char *buf, size_t size, const char *gen, int i)
{
	snprintf(buf, size, "%s-%d", gen, i);
}

/* The first key of the victim (want_victim) or of another server. */
static int some_key(int want_victim, int after)
{
	int i;

	for (i = after; i < NKEYS; i++)
		if ((owner[i] == VICTIM) == want_victim)
			return i;
	for (i = 0; i < NKEYS; i++)
		if ((owner[i] == VICTIM) == want_victim)
			return i;
	return -1;
}

/* A live server's key still works, quickly (no timeout in its path). */
static void live_round_trip(int i, const char *label)
{
	char key[32], val[32];
	double start = now(), took;

	key_of(key, sizeof(key), i);
	val_of(val, sizeof(val), "s1", i);
	recorder_reset();
	CHECK(mc_set(mc, K(key), val, strlen(val), 0, 0) == 0 && reads_as(mc, key, val),
	      "%s: the live server's key %s", label, key);
	took = now() - start;
	CHECK(recorder_count(MCM_ERR_TIMEOUT, 0) == 0 && took < 1.0, "%s: a live server's key met a timeout (%.3f s)",
	      label, took);
}

/* One operation on a stopped server's key: fails, after about the timeout. */
static void timed_failure(int kind, int i)
{
	char key[32], live[32];
	double start, took;
	int failed = 0;
	const char *what = "?";

	key_of(key, sizeof(key), i);
	key_of(live, sizeof(live), some_key(0, i));
	recorder_reset();
	start = now();
	switch (kind) {
	case 0: {
		int rc = mc_set(mc, K(key), "x", 1, 0, 0);

		what = "set";
		failed = rc != 0 && rc != 1;
		break;
	}
	case 1: {
		size_t len = 7;

		what = "get";
		failed = mc_aget2(mc, K(key), &len) == NULL && len == 0;
		break;
	}
	case 2: {
		int rc = mc_add(mc, K(key), "x", 1, 0, 0);

		what = "add";
		failed = rc != 0 && rc != 1;
		break;
	}
	case 3: {
		int rc = mc_delete(mc, K(key), 0);

		what = "delete";
		failed = rc != 0 && rc != 1;
		break;
	}
	case 4:
		what = "incr";
		failed = mc_incr(mc, K(key), 1) == 0;
		break;
	default: {
		struct memcache_req *req = mc_req_new();
		struct memcache_res *gone = mc_req_add(req, K(key));
		struct memcache_res *here = mc_req_add(req, K(live));

		what = "mc_get (with a live server's key)";
		mc_get(mc, req);
		/* The live server's key of the same request is still found. */
		failed = !mc_res_found(gone) && mc_res_found(here);
		CHECK(mc_res_found(here), "mc_get: the live server's key %s was not found beside %s", live, key);
		mc_req_free(req);
		break;
	}
	}
	took = now() - start;
	CHECK(failed, "%s of a stopped server's key %s did not fail as expected", what, key);
	CHECK(recorder_count(MCM_ERR_TIMEOUT, 0) == 1, "%s of a stopped server's key: %d timeout reports", what,
	      recorder_count(MCM_ERR_TIMEOUT, 0));
	CHECK(took >= TIMEOUT_S * 0.9 && took < 1.0, "%s of a stopped server's key took %.3f s (timeout 0.1 s)", what,
	      took);
	if (took > worst)
		worst = took;
	timed_ops++;
}

static void phase_a(void)
{
	char key[32], val[32];
	size_t len = 0;
	char *v;
	double start, took;
	int j, i = 0;

	for (j = 0; j < NTIMED; j++) {
		i = some_key(1, i + 1);
		timed_failure(j % 6, i);
		live_round_trip(some_key(0, i), "between timeouts");
	}
	/* Two copies: the stopped server's key is read from its copy, within about the timeout. */
	for (i = 0; i < NKEYS && owner2[i] != VICTIM; i++)
		;
	snprintf(key, sizeof(key), "sk2:%d", i);
	val_of(val, sizeof(val), "two", i);
	start = now();
	v = mc_aget2(two, K(key), &len);
	took = now() - start;
	CHECK(v != NULL && len == strlen(val) && memcmp(v, val, len) == 0, "%s",
	      "two copies: the stopped server's key is read from the copy");
	CHECK(took < 1.0, "two copies: the read took %.3f s", took);
	free(v);
}

static void phase_b(void)
{
	char key[32], val[32];
	int i, moved = 0, not_moved = 0, misplaced = 0, lost = 0, failed = 0;
	double start;

	CHECK(mc_retry_interval(mc, 2, 0) == 0, "%s", "retry interval 2 s");
	timed_failure(1, some_key(1, 0));
	start = now();
	CHECK(mc->servers[VICTIM]->active == 'd', "after a timeout the server is '%c', expected 'd'",
	      mc->servers[VICTIM]->active);
	for (i = 0; i < NKEYS; i++) {
		int now_on;

		key_of(key, sizeof(key), i);
		now_on = primary_of(mc, key);
		if (owner[i] != VICTIM) {
			/* Keys of live servers never move. */
			moved += now_on != owner[i];
			val_of(val, sizeof(val), "s1", i);
			lost += !reads_as(mc, key, val);
			continue;
		}
		if (now_on == VICTIM || now_on < 0 || (!ketama && now_on != (VICTIM + 1) % NSERV))
			not_moved++;
		val_of(val, sizeof(val), "s2", i);
		failed += mc_set(mc, K(key), val, strlen(val), 0, 0) != 0;
		misplaced += now_on < 0 || probe_holds(probe[now_on], key, val) != 1;
	}
	CHECK(moved == 0, "%d keys of live servers moved while one server is down", moved);
	CHECK(lost == 0, "%d keys of live servers not read while one server is down", lost);
	CHECK(not_moved == 0, "%d keys of the down server not sent to the next live server", not_moved);
	CHECK(failed == 0 && misplaced == 0, "writes of the down server's keys: %d failed, %d not where expected",
	      failed, misplaced);
	/* All of this within the retry interval, or the checks above met a retried server. */
	CHECK(now() - start < 2.0, "phase B took %.3f s, longer than the retry interval", now() - start);
}

static void phase_c(void)
{
	char key[32];
	int i = some_key(1, 0), back_home = 0;
	double start = now(), back = -1;

	kill(victim_pid, SIGCONT);
	key_of(key, sizeof(key), i);
	while (now() - start < 10) {
		mc_set(mc, K(key), "home", 4, 0, 0);
		if (probe_holds(probe[VICTIM], key, "home") == 1) {
			back = now() - start;
			break;
		}
		usleep(20000);
	}
	CHECK(back >= 0, "%s", "the continued server was not used again within 10 s");
	fprintf(stderr, "stopped (%s): the continued server was used again after %.3f s (retry interval 2 s)\n",
		dist_name, back);
	for (i = 0; i < NKEYS; i++) {
		key_of(key, sizeof(key), i);
		back_home += primary_of(mc, key) == owner[i];
	}
	CHECK(back_home == NKEYS, "%d of %d keys placed as before the stop", back_home, NKEYS);
}

int main(void)
{
	char key[32], val[32];
	int i, on_victim = 0;

	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	victim_pid = (pid_t)atoi(need_env("MC_PID2"));
	dist_name = need_env("MC_DIST");
	ketama = strcmp(dist_name, "ketama") == 0;
	mcErrSetup(recorder_handler);

	mc = make_handle(1);
	two = make_handle(2);
	for (i = 0; i < NSERV; i++)
		probe[i] = probe_handle(host, ports[i]);
	for (i = 0; i < NKEYS; i++) {
		key_of(key, sizeof(key), i);
		val_of(val, sizeof(val), "s1", i);
		CHECK(mc_set(mc, K(key), val, strlen(val), 0, 0) == 0, "set %s", key);
		owner[i] = primary_of(mc, key);
		snprintf(key, sizeof(key), "sk2:%d", i);
		val_of(val, sizeof(val), "two", i);
		CHECK(mc_set(two, K(key), val, strlen(val), 0, 0) == 0, "set %s with two copies", key);
		owner2[i] = primary_of(two, key);
		on_victim += owner[i] == VICTIM;
	}
	CHECK(on_victim > 10 && on_victim < NKEYS - 10, "%d of %d keys on the victim", on_victim, NKEYS);

	kill(victim_pid, SIGSTOP);
	if (!wait_stopped(victim_pid)) {
		CHECK(0, "%s", "the server did not stop");
		kill(victim_pid, SIGCONT);
		return CHECK_DONE();
	}
	phase_a();
	phase_b();
	phase_c();
	fprintf(stderr, "stopped (%s): worst latency of %d operations on a stopped server, timeout 100 ms: %.1f ms\n",
		dist_name, timed_ops, worst * 1000);

	for (i = 0; i < NSERV; i++)
		mc_free(probe[i]);
	mc_free(mc);
	mc_free(two);
	return CHECK_DONE();
}
