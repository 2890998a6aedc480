/*
 * Copies on several servers (issue 7, mc_replicas) over three real memcached servers:
 *  - with mc_replicas(mc, 2) every key is written to exactly two distinct servers: crc32-modulo,
 *    the key's index and the next one; ketama-md5, the primary and one other;
 *  - the disagreement rule of mc_replicas() in memcache.h: a write returns the primary's answer
 *    (add where only the copy has the key: 0; incr on diverged counters: the primary's counter;
 *    incr where only the copy has the key: not found), the other copies still get the command;
 *    a read tries the primary, then the copy;
 *  - the harness SIGKILLs the second server: every key is still read, one at a time (mc_aget2)
 *    and all at once (one mc_get), and new writes land on the two live servers;
 *  - the harness restarts it on the same port: after the retry interval (0.5 s) writes reach it
 *    again, exactly for the keys whose copy set includes it.
 *
 * Environment: MC_HOST; MC_PORT, MC_PORT2 (killed and restarted by the harness), MC_PORT3;
 * MC_DIST ("crc32" or "ketama"); MC_SYNC_DIR (files "ready-kill", "go-kill", "ready-restart",
 * "go-restart" for the handshake).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"
#include "resilience.h"

#define NSERV 3
#define NKEYS 300
#define NOUTAGE 100
/* The server the harness kills and restarts (MC_PORT2). */
#define VICTIM 1

static const char *host, *sync_dir;
static const char *ports[NSERV];
static int ketama;
static struct memcache *mc;
static struct memcache *probe[NSERV];
/* Which servers held each key after the first write (bit i: server i). */
static int placed[NKEYS];

static void key_name(char *buf, size_t size, const char *prefix, int i)
{
	snprintf(buf, size, "%s:%d", prefix, i);
}

/* Bit mask of the servers that hold exactly `value` under `key` (`skip`: a server not asked). */
static int holders(const char *key, const char *value, int skip)
{
	int i, mask = 0;

	for (i = 0; i < NSERV; i++)
		if (i != skip && probe_holds(probe[i], key, value) == 1)
			mask |= 1 << i;
	return mask;
}

static int popcount(int mask)
{
	int n = 0;

	for (; mask; mask >>= 1)
		n += mask & 1;
	return n;
}

/* The copy set crc32-modulo must use while every server is up: index, index + 1 (wrapping). */
static int modulo_copies(const char *key)
{
	u_int32_t h = mc_hash(mc, K(key));
	int first = (int)(h % NSERV);

	return (1 << first) | (1 << ((first + 1) % NSERV));
}

static void setup(void)
{
	int i;

	mc = mc_new();
	CHECK(mc_replicas(NULL, 2) == -1, "%s", "mc_replicas(NULL) -> -1");
	CHECK(mc_replicas(mc, 0) == -1 && mc_replicas(mc, 17) == -1, "%s", "counts outside 1..=16 are refused");
	CHECK(mc_replicas(mc, 2) == 0, "%s", "mc_replicas(mc, 2)");
	CHECK(mc_retry_interval(mc, 0, 500000) == 0, "%s", "mc_retry_interval 0.5 s");
	for (i = 0; i < NSERV; i++) {
		CHECK(mc_server_add(mc, host, ports[i]) == 0, "add server %d", i);
		probe[i] = probe_handle(host, ports[i]);
	}
	if (ketama)
		CHECK(mc_distribution(mc, MC_DIST_KETAMA_MD5) == 0, "%s", "mc_distribution ketama");
	CHECK(mc_distribution_get(mc) == (ketama ? MC_DIST_KETAMA_MD5 : MC_DIST_CRC32_MODULO), "distribution is %d",
	      mc_distribution_get(mc));
}

/* Every key on exactly two distinct servers: the distribution's copy set. */
static void write_and_check_placement(void)
{
	char key[32], val[32];
	int i, per_server[NSERV] = {0}, wrong_count = 0, wrong_set = 0;

	for (i = 0; i < NKEYS; i++) {
		key_name(key, sizeof(key), "rk", i);
		key_name(val, sizeof(val), "v1", i);
		CHECK(mc_set(mc, K(key), val, strlen(val), 0, 0) == 0, "set %s", key);
	}
	for (i = 0; i < NKEYS; i++) {
		int mask, s;

		key_name(key, sizeof(key), "rk", i);
		key_name(val, sizeof(val), "v1", i);
		mask = holders(key, val, -1);
		placed[i] = mask;
		wrong_count += popcount(mask) != 2;
		if (ketama)
			wrong_set += primary_of(mc, key) < 0 || !(mask & (1 << primary_of(mc, key)));
		else
			wrong_set += mask != modulo_copies(key);
		for (s = 0; s < NSERV; s++)
			per_server[s] += (mask >> s) & 1;
	}
	CHECK(wrong_count == 0, "%d of %d keys not on exactly 2 servers", wrong_count, NKEYS);
	CHECK(wrong_set == 0, "%d of %d keys not on the distribution's copy set (primary first)", wrong_set, NKEYS);
	/* 2 x 300 copies over 3 servers: each holds about 200, never only a handful. */
	for (i = 0; i < NSERV; i++)
		CHECK(per_server[i] > NKEYS / 4, "server %d holds only %d keys", i, per_server[i]);
}

/* A key whose copy set is {primary, copy}: found by name, for the disagreement checks. */
static void disagreement_key(char *key, size_t size, const char *prefix, int *primary, int *copy)
{
	int i;

	for (i = 0; i < 1000; i++) {
		int mask, s;

		key_name(key, size, prefix, i);
		*primary = primary_of(mc, key);
		CHECK(mc_set(mc, key, strlen(key), "x", 1, 0, 0) == 0, "set %s", key);
		mask = holders(key, "x", -1) & ~(1 << *primary);
		mc_delete(mc, key, strlen(key), 0);
		for (s = 0; s < NSERV; s++)
			if (mask == 1 << s) {
				*copy = s;
				return;
			}
	}
	CHECK(0, "no key found for %s", prefix);
	exit(1);
}

/* The rule stated with mc_replicas() in memcache.h: a write answers what the primary answered,
 * the other copies' answers are not compared (and they still got the command); reads try the
 * primary, then the copy. */
static void check_disagreement_rule(void)
{
	char key[32];
	int p, c, rc;
	u_int32_t n;
	u_int64_t n64 = 99;
	struct memcache_req *req;
	struct memcache_res *res;

	/* add where only the copy already has the key: the primary stores it, so 0. */
	disagreement_key(key, sizeof(key), "dis-add1", &p, &c);
	CHECK(mc_set(probe[c], K(key), "old", 3, 0, 0) == 0, "%s", "seed the copy only");
	rc = mc_add(mc, K(key), "new", 3, 0, 0);
	CHECK(rc == 0, "add where only the copy has the key -> %d, expected 0 (the primary's answer)", rc);
	CHECK(probe_holds(probe[p], key, "new") == 1, "%s", "the primary stored the add");
	CHECK(probe_holds(probe[c], key, "old") == 1, "%s", "the copy refused it and kept its value");
	CHECK(reads_as(mc, key, "new"), "%s", "a read answers from the primary");

	/* add where only the primary has the key: NOT_STORED (1), though the copy stored it. */
	disagreement_key(key, sizeof(key), "dis-add2", &p, &c);
	CHECK(mc_set(probe[p], K(key), "old", 3, 0, 0) == 0, "%s", "seed the primary only");
	rc = mc_add(mc, K(key), "new", 3, 0, 0);
	CHECK(rc == 1, "add where only the primary has the key -> %d, expected 1 (the primary's answer)", rc);
	CHECK(probe_holds(probe[c], key, "new") == 1, "%s", "the add still went to the copy");
	CHECK(reads_as(mc, key, "old"), "%s", "a read answers from the primary");

	/* incr on diverged counters: the primary's new value; the copy counts on its own. */
	disagreement_key(key, sizeof(key), "dis-incr", &p, &c);
	CHECK(mc_set(mc, K(key), "10", 2, 0, 0) == 0, "%s", "counter on both copies");
	CHECK(mc_set(probe[c], K(key), "100", 3, 0, 0) == 0, "%s", "diverge the copy");
	n = mc_incr(mc, K(key), 5);
	CHECK(n == 15, "incr on diverged counters -> %u, expected 15 (the primary's)", (unsigned)n);
	CHECK(probe_holds(probe[c], key, "105") == 1, "%s", "the copy was incremented too (105)");
	n = mc_decr(mc, K(key), 1);
	CHECK(n == 14, "decr on diverged counters -> %u, expected 14", (unsigned)n);
	CHECK(mc_incr64(mc, K(key), 1, &n64) == 0 && n64 == 15, "incr64 -> %llu", (unsigned long long)n64);

	/* incr where only the copy has the counter: the primary's answer, not found. */
	disagreement_key(key, sizeof(key), "dis-incr2", &p, &c);
	CHECK(mc_set(probe[c], K(key), "7", 1, 0, 0) == 0, "%s", "counter on the copy only");
	n64 = 99;
	rc = mc_incr64(mc, K(key), 1, &n64);
	CHECK(rc == MC_NOT_FOUND, "incr64 where only the copy has the key -> %d, expected MC_NOT_FOUND", rc);
	mc_global_ctxt()->errnum = 0;
	n = mc_incr(mc, K(key), 1);
	CHECK(n == 0 && mc_global_ctxt()->errnum == ENOENT, "mc_incr -> %u errnum %u, expected 0 ENOENT",
	      (unsigned)n, (unsigned)mc_global_ctxt()->errnum);
	CHECK(probe_holds(probe[c], key, "9") == 1, "%s", "the copy counted both (9)");

	/* delete where only the copy has the key: the primary's "not found" (1); the copy's is gone. */
	disagreement_key(key, sizeof(key), "dis-del", &p, &c);
	CHECK(mc_set(probe[c], K(key), "v", 1, 0, 0) == 0, "%s", "seed the copy only");
	rc = mc_delete(mc, K(key), 0);
	CHECK(rc == 1, "delete where only the copy has the key -> %d, expected 1", rc);
	CHECK(probe_holds(probe[c], key, "v") == 0, "%s", "the copy's key was deleted");

	/* Reads: a key only on the copy is found there, alone and in a multi-key mc_get. */
	disagreement_key(key, sizeof(key), "dis-read", &p, &c);
	CHECK(mc_set(probe[c], K(key), "on-copy", 7, 0, 0) == 0, "%s", "seed the copy only");
	CHECK(reads_as(mc, key, "on-copy"), "%s", "mc_aget2 finds a key only the copy holds");
	req = mc_req_new();
	res = mc_req_add(req, K(key));
	mc_req_add(req, K("dis-never-set"));
	mc_get(mc, req);
	CHECK(mc_res_found(res) && res->bytes == 7 && memcmp(res->val, "on-copy", 7) == 0, "%s",
	      "mc_get finds a key only the copy holds");
	mc_req_free(req);
	CHECK(mc_aget(mc, K("dis-never-set")) == NULL, "%s", "a key on no copy is a miss");
}

/* Every key of `prefix`/`valprefix` read back through `mc`: singly and in one mc_get. */
static void read_all(const char *label, const char *valprefix)
{
	char key[32], val[32];
	struct memcache_req *req = mc_req_new();
	struct memcache_res *res[NKEYS];
	int i, single = 0, multi = 0;
	double start = now();

	for (i = 0; i < NKEYS; i++) {
		key_name(key, sizeof(key), "rk", i);
		key_name(val, sizeof(val), valprefix, i);
		single += reads_as(mc, key, val);
		/* mc_req_add copies the key. */
		res[i] = mc_req_add(req, K(key));
	}
	mc_get(mc, req);
	for (i = 0; i < NKEYS; i++) {
		key_name(val, sizeof(val), valprefix, i);
		multi += mc_res_found(res[i]) && res[i]->bytes == strlen(val) &&
			 memcmp(res[i]->val, val, res[i]->bytes) == 0;
	}
	mc_req_free(req);
	CHECK(single == NKEYS, "%s: mc_aget2 read %d of %d keys", label, single, NKEYS);
	CHECK(multi == NKEYS, "%s: one mc_get read %d of %d keys", label, multi, NKEYS);
	fprintf(stderr, "replicas (%s): %s: %d keys read twice in %.3f s\n", ketama ? "ketama" : "crc32", label,
		NKEYS, now() - start);
}

/* While the victim is dead: reads find every key, writes go to the two live servers. */
static void check_outage(void)
{
	char key[32];
	int i, misplaced = 0, failed = 0;

	read_all("victim killed", "v1");
	for (i = 0; i < NOUTAGE; i++) {
		key_name(key, sizeof(key), "out", i);
		failed += mc_set(mc, K(key), key, strlen(key), 0, 0) != 0;
		misplaced += holders(key, key, VICTIM) != ((1 << 0) | (1 << 2));
	}
	CHECK(failed == 0, "%d of %d writes failed with one server dead", failed, NOUTAGE);
	CHECK(misplaced == 0, "%d of %d writes during the outage not on both live servers", misplaced, NOUTAGE);
	CHECK(mc->servers[VICTIM]->active == 'd', "the killed server is '%c', expected 'd'", mc->servers[VICTIM]->active);
}

/* After the restart: once the retry interval has passed, writes reach the victim again, exactly
 * for the keys whose copy set includes it (it restarted empty, so all it holds is new). */
static void check_revival(void)
{
	char key[32], val[32];
	int i, probe_key = -1, wrong = 0, on_victim = 0;
	double start = now(), back = -1;

	for (i = 0; i < NKEYS && probe_key < 0; i++)
		if (placed[i] & (1 << VICTIM))
			probe_key = i;
	CHECK(probe_key >= 0, "%s", "no key has a copy on the victim");
	if (probe_key < 0)
		return;
	key_name(key, sizeof(key), "rk", probe_key);
	while (now() - start < 10) {
		mc_set(mc, K(key), "again", 5, 0, 0);
		if (probe_holds(probe[VICTIM], key, "again") == 1) {
			back = now() - start;
			break;
		}
		usleep(20000);
	}
	CHECK(back >= 0, "%s", "writes did not reach the restarted server within 10 s");
	fprintf(stderr, "replicas (%s): writes reached the restarted server after %.3f s\n",
		ketama ? "ketama" : "crc32", back);
	for (i = 0; i < NKEYS; i++) {
		key_name(key, sizeof(key), "rk", i);
		key_name(val, sizeof(val), "v2", i);
		CHECK(mc_set(mc, K(key), val, strlen(val), 0, 0) == 0, "rewrite %s", key);
	}
	for (i = 0; i < NKEYS; i++) {
		int mask;

		key_name(key, sizeof(key), "rk", i);
		key_name(val, sizeof(val), "v2", i);
		mask = holders(key, val, -1);
		wrong += mask != placed[i];
		on_victim += (mask >> VICTIM) & 1;
		if (!(placed[i] & (1 << VICTIM)))
			wrong += probe_holds(probe[VICTIM], key, "v1") != 0;
	}
	CHECK(wrong == 0, "%d of %d keys not rewritten to exactly their first copy set", wrong, NKEYS);
	CHECK(on_victim > NKEYS / 4, "only %d keys reached the restarted server", on_victim);
	read_all("victim restarted", "v2");
}

int main(void)
{
	int i;

	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	sync_dir = need_env("MC_SYNC_DIR");
	ketama = strcmp(need_env("MC_DIST"), "ketama") == 0;
	/* Failures against the dead server are expected: record them instead of printing them. */
	mcErrSetup(recorder_handler);

	setup();
	write_and_check_placement();
	check_disagreement_rule();

	if (!handshake(sync_dir, "ready-kill", "go-kill")) {
		CHECK(0, "%s", "the harness did not kill the server");
		return CHECK_DONE();
	}
	check_outage();

	if (!handshake(sync_dir, "ready-restart", "go-restart")) {
		CHECK(0, "%s", "the harness did not restart the server");
		return CHECK_DONE();
	}
	check_revival();

	for (i = 0; i < NSERV; i++)
		mc_free(probe[i]);
	mc_free(mc);
	return CHECK_DONE();
}
