/*
 * Version accessors (spec §1.1), the default CRC32 hash and its test vectors (§8.1), the default
 * server finder with its linear probe over dead servers (§8.2), client-installed mcHashKey and
 * mcServerFind hooks read from the context at each use (§4.5), and where keys really land: each
 * key stored through a three-server handle is looked for on every server through one-server
 * handles.
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3 (three servers A, B, C).
 */
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"

struct vector {
	const char *key;
	size_t len;
	u_int32_t hash;
	u_int32_t mod3;
};

/* §8.1: crc32 >> 16 & 0x7fff, 0 mapped to 1. */
static const struct vector vectors[] = {
	{"foo", 3, 3187, 1},
	{"bar", 3, 30463, 1},
	{"key1", 4, 11356, 1},
	{"hello world", 11, 3402, 0},
	{"a", 1, 26807, 2},
	{"", 0, 1, 1},
	{"testing_key0", 12, 3243, 0},
	{"\xff\x80", 2, 16197, 0},
	{"k1", 2, 5646, 0},
	{"k2", 2, 3847, 1},
	{"k3", 2, 30720, 0},
	{"n", 1, 30728, 2},
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static const char *host;
static const char *ports[3];

static void check_versions(void)
{
	struct memcache_ctxt *g = mc_global_ctxt();

	CHECK(mc_version() != NULL && strcmp(mc_version(), "1.4.0.rc2") == 0, "mc_version() = %s",
	      mc_version() ? mc_version() : "(null)");
	CHECK(mc_vernum() == 10400, "mc_vernum() = %u", (unsigned)mc_vernum());
	CHECK(mc_reldate() == 20060220, "mc_reldate() = %u", (unsigned)mc_reldate());
	/* The mcm_ twins ignore their context, even a NULL one. */
	CHECK(strcmp(mcm_version(g), "1.4.0.rc2") == 0, "%s", "mcm_version(global)");
	CHECK(strcmp(mcm_version(NULL), "1.4.0.rc2") == 0, "%s", "mcm_version(NULL)");
	CHECK(mcm_vernum(g) == 10400 && mcm_vernum(NULL) == 10400, "%s", "mcm_vernum");
	CHECK(mcm_reldate(g) == 20060220 && mcm_reldate(NULL) == 20060220, "%s", "mcm_reldate");
	/* A static string: the same text on every call. */
	CHECK(strcmp(mc_version(), MEMCACHE_VER) == 0, "%s", "mc_version() == MEMCACHE_VER");
	/* mc_global_ctxt() is stable. */
	CHECK(mc_global_ctxt() == g, "%s", "mc_global_ctxt() stable");
}

static void check_vectors(void)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	struct memcache_ctxt *own = mcMemNewCtxt(free, malloc, malloc, realloc);
	size_t i;

	CHECK(own != NULL, "%s", "mcMemNewCtxt");
	for (i = 0; i < NVECTORS; i++) {
		const struct vector *v = &vectors[i];
		u_int32_t h1 = mc_hash_key(v->key, v->len);
		u_int32_t h2 = mcm_hash_key(g, v->key, v->len);
		u_int32_t h3 = own ? mcm_hash_key(own, v->key, v->len) : 0;

		CHECK(h1 == v->hash, "mc_hash_key(vector %lu) = %u, expected %u", (unsigned long)i,
		      (unsigned)h1, (unsigned)v->hash);
		CHECK(h2 == v->hash, "mcm_hash_key(global, vector %lu) = %u, expected %u",
		      (unsigned long)i, (unsigned)h2, (unsigned)v->hash);
		CHECK(h3 == v->hash, "mcm_hash_key(own, vector %lu) = %u, expected %u",
		      (unsigned long)i, (unsigned)h3, (unsigned)v->hash);
		CHECK(h1 % 3 == v->mod3, "vector %lu: hash %% 3 = %u, expected %u", (unsigned long)i,
		      (unsigned)(h1 % 3), (unsigned)v->mod3);
		/* The default hook called directly, as mc_hash_key does (§4.5). */
		CHECK(g->mcHashKey != NULL && g->mcHashKey(g, NULL, v->key, v->len) == v->hash,
		      "global->mcHashKey(vector %lu)", (unsigned long)i);
	}
	mcMemFreeCtxt(own);
}

static struct memcache *handle_with(int nservers)
{
	struct memcache *mc = mc_new();
	int i;

	CHECK(mc != NULL, "%s", "mc_new");
	for (i = 0; mc != NULL && i < nservers; i++)
		CHECK(mc_server_add(mc, host, ports[i]) == 0, "mc_server_add(%s, %s)", host, ports[i]);
	return mc;
}

static int port_is(const struct memcache_server *ms, int which)
{
	return ms != NULL && ms->port != NULL && strcmp(ms->port, ports[which]) == 0;
}

static const char *port_of(const struct memcache_server *ms)
{
	return ms == NULL ? "(no server)" : ms->port ? ms->port : "(null port)";
}

static void check_small_handles(void)
{
	struct memcache *mc0 = handle_with(0);
	struct memcache *mc1 = handle_with(1);
	struct memcache_ctxt *g = mc_global_ctxt();

	/* 0 or 1 server: no hashing, the hash is 1 (§8.1 step 1). */
	CHECK(mc_hash(mc0, "foo", 3) == 1, "mc_hash(0 servers) = %u", (unsigned)mc_hash(mc0, "foo", 3));
	CHECK(mc_hash(mc1, "foo", 3) == 1, "mc_hash(1 server) = %u", (unsigned)mc_hash(mc1, "foo", 3));
	CHECK(mcm_hash(g, mc1, "bar", 3) == 1, "%s", "mcm_hash(1 server)");
	/* The finder on an empty handle has nothing to return (§8.2 step 1). */
	CHECK(mc_server_find(mc0, 5) == NULL, "%s", "mc_server_find(0 servers)");
	CHECK(mc_server_find(mc1, 3187) == mc1->servers[0], "%s", "mc_server_find(1 server)");
	mc_free(mc0);
	mc_free(mc1);
}

/* Where is `key`? Looks on each server through one-server handles; returns 0..2, -1 if on none,
 * -2 if on several. */
static int locate(struct memcache *single[3], const char *key)
{
	int i, where = -1;

	for (i = 0; i < 3; i++) {
		size_t len = 99;
		char *v = mc_aget2(single[i], (char *)key, strlen(key), &len);

		if (v != NULL) {
			where = where == -1 ? i : -2;
			free(v);
		}
	}
	return where;
}

static struct memcache_server *forced_server;

static void *find_forced(const void *ctxt, void *mc, const u_int32_t hash)
{
	(void)ctxt;
	(void)mc;
	(void)hash;
	return forced_server;
}

static u_int32_t hash_constant(const void *ctxt, const void *mc, const char *key, const size_t len)
{
	(void)ctxt;
	(void)mc;
	(void)key;
	(void)len;
	return 2;
}

static void check_placement(void)
{
	struct memcache *mc = handle_with(3);
	struct memcache *single[3];
	struct memcache_ctxt *g = mc_global_ctxt();
	struct memcache_server *a, *b, *c;
	mcHashKeyFunc saved_hash;
	mcServerFindFunc saved_find;
	int i;

	if (mc == NULL || mc->num_servers != 3) {
		CHECK(0, "%s", "three-server handle");
		return;
	}
	for (i = 0; i < 3; i++) {
		single[i] = mc_new();
		CHECK(mc_server_add(single[i], host, ports[i]) == 0, "single handle %d", i);
	}
	a = mc->servers[0];
	b = mc->servers[1];
	c = mc->servers[2];
	CHECK(port_is(a, 0) && port_is(b, 1) && port_is(c, 2), "%s", "servers[] in add order");

	/* Hashing really happens with three servers. */
	CHECK(mc_hash(mc, "k1", 2) == 5646, "mc_hash(3 servers, k1) = %u", (unsigned)mc_hash(mc, "k1", 2));
	CHECK(mcm_hash(g, mc, "n", 1) == 30728, "%s", "mcm_hash(3 servers, n)");

	/* "k1 goes to A, k2 to B, n to C" (§8.1). */
	CHECK(mc_server_find(mc, mc_hash(mc, "k1", 2)) == a, "k1 -> %s", port_of(mc_server_find(mc, 5646)));
	CHECK(mc_server_find(mc, mc_hash(mc, "k2", 2)) == b, "k2 -> %s", port_of(mc_server_find(mc, 3847)));
	CHECK(mc_server_find(mc, mc_hash(mc, "n", 1)) == c, "n -> %s", port_of(mc_server_find(mc, 30728)));
	CHECK(mcm_server_find(g, mc, mcm_hash_key(g, "k3", 2)) == a, "%s", "mcm_server_find k3 -> A");

	/* And the keys really land there. */
	CHECK(mc_set(mc, "k1", 2, "v1", 2, 0, 0) == 0, "%s", "set k1");
	CHECK(mc_set(mc, "k2", 2, "v2", 2, 0, 0) == 0, "%s", "set k2");
	CHECK(mc_set(mc, "n", 1, "vn", 2, 0, 0) == 0, "%s", "set n");
	CHECK(locate(single, "k1") == 0, "k1 stored on server %d", locate(single, "k1"));
	CHECK(locate(single, "k2") == 1, "k2 stored on server %d", locate(single, "k2"));
	CHECK(locate(single, "n") == 2, "n stored on server %d", locate(single, "n"));

	/* Linear probe (§8.2): with A down, A's keys move to B; with C down, C's keys wrap to A.
	 * Connections are closed first: deactivating a server with an open socket re-initialises it
	 * to 't' (§7.3), only an unconnected one stays 'd'. */
	mc_server_disconnect_all(mc);
	mc_server_deactivate(mc, a);
	CHECK(a->active == 'd', "A state after deactivate: %c", a->active);
	CHECK(mc_server_find(mc, 5646) == b, "k1 with A down -> %s", port_of(mc_server_find(mc, 5646)));
	CHECK(mc_server_find(mc, 3847) == b, "%s", "k2 with A down stays on B");
	CHECK(mc_server_find(mc, 30728) == c, "%s", "n with A down stays on C");
	CHECK(mc_set(mc, "k3", 2, "v3", 2, 0, 0) == 0, "%s", "set k3 with A down");
	CHECK(locate(single, "k3") == 1, "k3 (A down) stored on server %d", locate(single, "k3"));
	CHECK(mc_server_activate_all(mc) == 0, "%s", "mc_server_activate_all");
	CHECK(a->active == 'u', "A state after activate_all: %c", a->active);
	mc_server_disconnect_all(mc);
	mc_server_deactivate(mc, c);
	CHECK(mc_server_find(mc, 30728) == a, "n with C down -> %s", port_of(mc_server_find(mc, 30728)));
	mc_server_deactivate(mc, a);
	CHECK(mc_server_find(mc, 30728) == b, "n with A and C down -> %s",
	      port_of(mc_server_find(mc, 30728)));
	mc_server_deactivate(mc, b);
	CHECK(mc_server_find(mc, 30728) == NULL, "%s", "all servers down -> NULL");
	mc_server_activate_all(mc);
	CHECK(mc_server_find(mc, 30728) == c, "%s", "n back on C after activate_all");
	/* A server in state 'n' makes the default finder give up (ASSERT report, NULL; §8.2). */
	c->active = 'n';
	CHECK(mc_server_find(mc, 30728) == NULL, "%s", "finder on an 'n' server -> NULL");
	c->active = 't';

	/* Hooks installed by the client are read from the context at each use (§4.5). */
	saved_hash = g->mcHashKey;
	saved_find = g->mcServerFind;
	g->mcHashKey = hash_constant;
	CHECK(mc_hash(mc, "k1", 2) == 2 && mc_hash_key("k1", 2) == 2, "%s", "custom mcHashKey used");
	CHECK(mc_set(mc, "hooked1", 7, "x", 1, 0, 0) == 0, "%s", "set with custom hash");
	g->mcHashKey = saved_hash;
	CHECK(locate(single, "hooked1") == 2, "hooked1 (hash 2) stored on server %d",
	      locate(single, "hooked1"));

	forced_server = b;
	g->mcServerFind = find_forced;
	CHECK(mc_server_find(mc, 5646) == b, "%s", "custom mcServerFind used by mc_server_find");
	CHECK(mc_set(mc, "k1", 2, "forced", 6, 0, 0) == 0, "%s", "set with custom finder");
	g->mcServerFind = saved_find;
	{
		size_t len = 0;
		char *v = mc_aget2(single[1], "k1", 2, &len);
		CHECK(v != NULL && len == 6 && memcmp(v, "forced", 6) == 0, "%s",
		      "k1 written to B by the custom finder");
		free(v);
	}
	CHECK(g->mcHashKey == saved_hash && g->mcServerFind == saved_find, "%s", "hooks restored");

	for (i = 0; i < 3; i++)
		mc_free(single[i]);
	mc_free(mc);
}

int main(void)
{
	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");

	check_versions();
	check_vectors();
	check_small_handles();
	check_placement();
	return CHECK_DONE();
}
