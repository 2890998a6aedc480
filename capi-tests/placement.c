/*
 * Ketama placement as the C API offers it, over three real memcached servers, one case per run
 * (MC_CASE):
 *  - "early-distribution": mc_distribution(mc, MC_DIST_KETAMA_MD5) called on a new handle before
 *    its first mc_server_add() still holds once the servers are added (mc_replicas() called at
 *    the same point does), on mc_new() and on mc_new_private() handles alike;
 *  - "ketama-mc-get": with one copy and ketama-md5, a multi-key mc_get() finds every key that
 *    mc_set() stored (each key asked of the server that holds it), and so does mc_aget2().
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3, MC_CASE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "resilience.h"

#define NSERV 3
#define NKEYS 300

static const char *host, *ports[NSERV];

static void add_all(struct memcache *mc)
{
	int i;

	for (i = 0; i < NSERV; i++)
		CHECK(mc_server_add(mc, host, ports[i]) == 0, "add server %d", i);
}

static void early_distribution(void)
{
	struct memcache *legacy = mc_new(), *priv = mc_new_private();

	CHECK(mc_distribution(legacy, MC_DIST_KETAMA_MD5) == 0 && mc_replicas(legacy, 2) == 0, "%s",
	      "mc_distribution and mc_replicas before the first add (mc_new)");
	CHECK(mc_distribution(priv, MC_DIST_KETAMA_MD5) == 0, "%s", "mc_distribution before the first add (private)");
	add_all(legacy);
	add_all(priv);
	CHECK(mc_distribution_get(priv) == MC_DIST_KETAMA_MD5, "mc_new_private(): distribution %d after the adds",
	      mc_distribution_get(priv));
	CHECK(mc_distribution_get(legacy) == MC_DIST_KETAMA_MD5,
	      "mc_new(): distribution %d after the adds, expected MC_DIST_KETAMA_MD5 (%d) as chosen before them",
	      mc_distribution_get(legacy), MC_DIST_KETAMA_MD5);
	/* Same servers, same distribution: the same placement. */
	CHECK(primary_of(legacy, "placed") == primary_of(priv, "placed"), "%s",
	      "the two handles place a key on the same server");
	mc_free(legacy);
	mc_free(priv);
}

static void ketama_mc_get(void)
{
	struct memcache *mc = mc_new();
	struct memcache_req *req = mc_req_new();
	struct memcache_res *res[NKEYS];
	char key[32];
	int i, stored = 0, single = 0, multi = 0;

	add_all(mc);
	CHECK(mc_distribution(mc, MC_DIST_KETAMA_MD5) == 0, "%s", "ketama-md5");
	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "kg:%d", i);
		stored += mc_set(mc, K(key), key, strlen(key), 0, 0) == 0;
		single += reads_as(mc, key, key);
		res[i] = mc_req_add(req, K(key));
	}
	mc_get(mc, req);
	for (i = 0; i < NKEYS; i++)
		multi += mc_res_found(res[i]) && res[i]->bytes == strlen(res[i]->key) &&
			 memcmp(res[i]->val, res[i]->key, res[i]->bytes) == 0;
	CHECK(stored == NKEYS && single == NKEYS, "stored %d, mc_aget2 read %d of %d", stored, single, NKEYS);
	CHECK(multi == NKEYS, "one mc_get over ketama-md5 found %d of %d stored keys", multi, NKEYS);
	mc_req_free(req);
	mc_free(mc);
}

int main(void)
{
	const char *which;

	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	which = need_env("MC_CASE");
	if (strcmp(which, "early-distribution") == 0)
		early_distribution();
	else if (strcmp(which, "ketama-mc-get") == 0)
		ketama_mc_get();
	else
		CHECK(0, "unknown MC_CASE %s", which);
	return CHECK_DONE();
}
