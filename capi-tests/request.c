/*
 * Requests and results (spec §9.6): mc_req_new/add/add_ref, the exact _flags values, caller
 * buffers, duplicate keys, length-bounded keys (D4), multi-key gets on one and on three servers
 * with the same _flags on both paths (D11), res->hash, request reuse (D4), fetch callbacks,
 * mc_res_free / mc_res_free_on_delete / mc_res_found / mc_res_attempted, and iteration of
 * req->query with TAILQ_FOREACH.
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3.
 */
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"

#define K(s) (char *)(s), strlen(s)

static struct memcache *one;   /* MC_PORT only */
static struct memcache *three; /* MC_PORT, MC_PORT2, MC_PORT3 */

#define FLAGS(res) ((unsigned)(unsigned char)(res)->_flags)

static void check_build(void)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *r1, *r2, *r3, *it;
	char refkey[] = "rq:ref";
	int n = 0;

	CHECK(req != NULL && req->num_keys == 0 && TAILQ_FIRST(&req->query) == NULL &&
		      TAILQ_FIRST(&req->cb) == NULL,
	      "%s", "a new request is empty");
	r1 = mc_req_add(req, K("rq:one"));
	CHECK(r1 != NULL && FLAGS(r1) == 0x13, "_flags after mc_req_add = 0x%02x, expected 0x13",
	      r1 ? FLAGS(r1) : 0);
	CHECK(r1 != NULL && r1->len == 6 && r1->key != NULL && strcmp(r1->key, "rq:one") == 0 &&
		      r1->val == NULL && r1->size == 0 && r1->bytes == 0 && r1->hash == 0,
	      "%s", "fields after mc_req_add");
	r2 = mc_req_add_ref(req, refkey, 6);
	CHECK(r2 != NULL && FLAGS(r2) == 0x03, "_flags after mc_req_add_ref = 0x%02x, expected 0x03",
	      r2 ? FLAGS(r2) : 0);
	CHECK(r2 != NULL && r2->key == refkey && r2->len == 6, "%s", "mc_req_add_ref keeps the caller's pointer");
	r3 = mc_req_add(req, K("rq:three"));
	CHECK(req->num_keys == 3, "num_keys = %u", (unsigned)req->num_keys);
	CHECK(mc_res_found(r1) == 0 && mc_res_attempted(r1) == 0, "%s", "fresh result: not attempted/found");
	TAILQ_FOREACH(it, &req->query, entries) {
		CHECK(it == (n == 0 ? r1 : n == 1 ? r2 : r3), "query order at %d", n);
		n++;
	}
	CHECK(n == 3, "TAILQ_FOREACH saw %d results", n);

	/* mc_res_free unlinks one result and keeps num_keys in step. */
	mc_res_free(req, r2);
	CHECK(req->num_keys == 2 && TAILQ_FIRST(&req->query) == r1 && TAILQ_NEXT(r1, entries) == r3,
	      "after mc_res_free: num_keys %u", (unsigned)req->num_keys);

	/* mc_res_free_on_delete toggles the two free bits. */
	mc_res_free_on_delete(r1, 0);
	CHECK(FLAGS(r1) == (MCM_RES_NEED_FREE_KEY | MCM_RES_NO_FREE_ON_DELETE), "fod(0): 0x%02x", FLAGS(r1));
	mc_res_free_on_delete(r1, 1);
	CHECK(FLAGS(r1) == (MCM_RES_NEED_FREE_KEY | MCM_RES_FREE_ON_DELETE), "fod(1): 0x%02x", FLAGS(r1));
	mcm_res_free_on_delete(mc_global_ctxt(), r3, 0);
	CHECK(FLAGS(r3) == (MCM_RES_NEED_FREE_KEY | MCM_RES_NO_FREE_ON_DELETE), "mcm fod(0): 0x%02x",
	      FLAGS(r3));
	mc_req_free(req);
}

static void check_get_flags(struct memcache *mc, const char *label)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *hit, *miss, *small, *ref, *large, *empty;
	char refkey[] = "rq:hit";
	char *smallbuf = malloc(8);
	char largebuf[16];

	memcpy(smallbuf, "########", 8);
	memset(largebuf, '#', sizeof(largebuf));
	CHECK(mc_set(mc, K("rq:hit"), "value1", 6, 0, 7) == 0, "%s: set rq:hit", label);
	CHECK(mc_set(mc, K("rq:four"), "abcd", 4, 0, 9) == 0, "%s: set rq:four", label);
	CHECK(mc_set(mc, K("rq:empty"), "", 0, 0, 0) == 0, "%s: set rq:empty", label);
	mc_delete(mc, K("rq:miss"), 0);

	hit = mc_req_add(req, K("rq:hit"));
	miss = mc_req_add(req, K("rq:miss"));
	small = mc_req_add(req, K("rq:four"));
	small->val = smallbuf;
	small->size = 2;
	ref = mc_req_add_ref(req, refkey, strlen(refkey));
	large = mc_req_add(req, K("rq:four"));
	large->val = largebuf;
	large->size = sizeof(largebuf);
	empty = mc_req_add(req, K("rq:empty"));
	mc_get(mc, req);

	CHECK(FLAGS(hit) == 0x1d, "%s: hit _flags 0x%02x, expected 0x1d", label, FLAGS(hit));
	CHECK(hit->bytes == 6 && hit->size == 6 && hit->val != NULL && memcmp(hit->val, "value1", 7) == 0 &&
		      hit->flags == 7,
	      "%s: hit bytes %lu size %lu flags %u", label, (unsigned long)hit->bytes,
	      (unsigned long)hit->size, (unsigned)hit->flags);
	CHECK(mc_res_found(hit) == 1 && mc_res_attempted(hit) == 1, "%s: hit found/attempted", label);

	CHECK(FLAGS(miss) == 0x19, "%s: miss _flags 0x%02x, expected 0x19", label, FLAGS(miss));
	CHECK(mc_res_found(miss) == 0 && mc_res_attempted(miss) == 1, "%s: miss found/attempted", label);
	CHECK(mcm_res_found(mc_global_ctxt(), miss) == 0 && mcm_res_attempted(mc_global_ctxt(), miss) == 1,
	      "%s: mcm_res_found/attempted", label);

	CHECK(FLAGS(small) == 0x1e, "%s: caller buffer _flags 0x%02x, expected 0x1e", label, FLAGS(small));
	CHECK(small->bytes == 4 && small->size == 2 && small->val == smallbuf &&
		      memcmp(smallbuf, "ab######", 8) == 0 && small->flags == 9,
	      "%s: truncated caller buffer: bytes %lu size %lu content %.8s", label,
	      (unsigned long)small->bytes, (unsigned long)small->size, smallbuf);

	CHECK(FLAGS(ref) == 0x0d, "%s: add_ref hit _flags 0x%02x, expected 0x0d", label, FLAGS(ref));
	CHECK(ref->bytes == 6 && ref->val != NULL && memcmp(ref->val, "value1", 7) == 0,
	      "%s: add_ref value", label);

	CHECK(FLAGS(large) == 0x1e && large->bytes == 4 && large->size == sizeof(largebuf) &&
		      memcmp(largebuf, "abcd####", 8) == 0,
	      "%s: larger caller buffer _flags 0x%02x bytes %lu", label, FLAGS(large),
	      (unsigned long)large->bytes);

	/* A zero-length value allocated by the library (freed by mc_req_free: D11, valgrind run). */
	CHECK(FLAGS(empty) == 0x1d && empty->bytes == 0, "%s: empty value _flags 0x%02x bytes %lu",
	      label, FLAGS(empty), (unsigned long)empty->bytes);
	CHECK(empty->val == NULL || ((char *)empty->val)[0] == '\0', "%s: empty value NUL", label);

	/* The hash is cached in the result: 1 on a one-server handle, the CRC otherwise. */
	if (mc->num_servers == 1)
		CHECK(hit->hash == 1, "%s: hash on one server = %u", label, (unsigned)hit->hash);
	else
		CHECK(hit->hash == mc_hash_key(K("rq:hit")), "%s: hash = %u, expected %u", label,
		      (unsigned)hit->hash, (unsigned)mc_hash_key(K("rq:hit")));

	/* mc_req_free frees library buffers but never the caller's (D11). */
	mc_req_free(req);
	CHECK(memcmp(smallbuf, "ab######", 8) == 0, "%s: caller buffer intact after mc_req_free", label);
	free(smallbuf);
}

static void check_single_key_hash(void)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *res = mc_req_add(req, K("k1"));

	CHECK(mc_set(three, K("k1"), "x", 1, 0, 0) == 0, "%s", "set k1");
	mc_get(three, req);
	CHECK(mc_res_found(res) && res->hash == 5646, "single key on three servers: hash %u, expected 5646",
	      (unsigned)res->hash);
	CHECK(FLAGS(res) == 0x1d, "single key on three servers: _flags 0x%02x", FLAGS(res));
	mc_req_free(req);
}

static void check_free_on_delete_caller_buffer(struct memcache *mc)
{
	/* A caller buffer explicitly marked free-on-delete is released by the library (checked by
	 * the valgrind run: freeing it here as well would be a double free). */
	struct memcache_req *req = mc_req_new();
	struct memcache_res *res = mc_req_add(req, K("rq:four"));

	res->val = malloc(4);
	res->size = 4;
	mc_res_free_on_delete(res, 1);
	mc_get(mc, req);
	CHECK(FLAGS(res) == 0x1d && res->bytes == 4 && memcmp(res->val, "abcd", 4) == 0,
	      "explicit free-on-delete caller buffer: _flags 0x%02x", FLAGS(res));
	mc_req_free(req);
}

static void check_zero_length_values_released_one_by_one(struct memcache *mc, const char *label)
{
	/* D11: the library's zero-length values are freed with their result however it is freed:
	 * with mc_res_free(req, res), and with mc_res_free(NULL, res) after the caller unlinked it
	 * from the request itself (the valgrind run reports a leak of either value). */
	struct memcache_req *req = mc_req_new();
	struct memcache_res *a = mc_req_add(req, K("rq:empty"));
	struct memcache_res *b = mc_req_add(req, K("rq:empty"));
	struct memcache_res *c = mc_req_add(req, K("rq:empty"));

	mc_get(mc, req);
	CHECK(mc_res_found(a) && mc_res_found(b) && mc_res_found(c) && a->bytes == 0 && b->bytes == 0,
	      "%s: three zero-length hits", label);
	mc_res_free(req, a);
	TAILQ_REMOVE(&req->query, b, entries);
	req->num_keys--;
	mc_res_free(NULL, b);
	CHECK(req->num_keys == 1 && TAILQ_FIRST(&req->query) == c, "%s: one result left", label);
	mc_req_free(req);
}

static void check_duplicates_and_bounded_keys(struct memcache *mc, const char *label)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *d1, *d2, *d3, *bounded;
	char dupkey[] = "rq:dup";
	char longkey[] = "rq:abcXYZ";

	CHECK(mc_set(mc, K("rq:dup"), "D", 1, 0, 0) == 0, "%s: set rq:dup", label);
	CHECK(mc_set(mc, K("rq:abc"), "short", 5, 0, 0) == 0, "%s: set rq:abc", label);
	CHECK(mc_set(mc, K("rq:abcXYZ"), "long", 4, 0, 0) == 0, "%s: set rq:abcXYZ", label);
	d1 = mc_req_add(req, K("rq:dup"));
	bounded = mc_req_add(req, longkey, 6);
	d2 = mc_req_add(req, K("rq:dup"));
	d3 = mc_req_add_ref(req, dupkey, 6);
	/* D4: exactly len bytes copied, plus a NUL. */
	CHECK(bounded->len == 6 && strcmp(bounded->key, "rq:abc") == 0, "%s: bounded key copy \"%s\"",
	      label, bounded->key);
	mc_get(mc, req);
	CHECK(mc_res_found(d1) && mc_res_found(d2) && mc_res_found(d3), "%s: duplicate keys all found (%d %d %d)",
	      label, mc_res_found(d1), mc_res_found(d2), mc_res_found(d3));
	CHECK(d1->bytes == 1 && d2->bytes == 1 && d3->bytes == 1 && d1->val != d2->val, "%s: duplicate values",
	      label);
	CHECK(mc_res_found(bounded) && bounded->bytes == 5 && memcmp(bounded->val, "short", 5) == 0,
	      "%s: bounded key fetched \"%.*s\"", label, (int)bounded->bytes,
	      bounded->val ? (char *)bounded->val : "");
	mc_req_free(req);
}

static void check_multi(struct memcache *mc, const char *label)
{
	/* Keys that spread over the three servers (k1 -> A, k2 -> B, n -> C), hits and misses. */
	static const char *keys[] = {"k1", "k2", "n", "k3", "missing-a", "foo", "bar", "missing-b", "a"};
	static const int present[] = {1, 1, 1, 1, 0, 1, 1, 0, 1};
	struct memcache_req *req = mc_req_new();
	struct memcache_res *res[9], *it;
	size_t i;
	int n = 0;

	for (i = 0; i < 9; i++) {
		if (present[i]) {
			CHECK(mc_set(mc, K(keys[i]), keys[i], strlen(keys[i]), 0, (u_int16_t)i) == 0,
			      "%s: set %s", label, keys[i]);
		} else {
			mc_delete(mc, K(keys[i]), 0);
		}
		res[i] = mc_req_add(req, K(keys[i]));
	}
	mc_get(mc, req);
	for (i = 0; i < 9; i++) {
		if (present[i]) {
			CHECK(FLAGS(res[i]) == 0x1d && res[i]->bytes == strlen(keys[i]) &&
				      memcmp(res[i]->val, keys[i], res[i]->bytes) == 0 && res[i]->flags == i,
			      "%s: %s _flags 0x%02x bytes %lu", label, keys[i], FLAGS(res[i]),
			      (unsigned long)res[i]->bytes);
		} else {
			CHECK(FLAGS(res[i]) == 0x19, "%s: %s (miss) _flags 0x%02x", label, keys[i], FLAGS(res[i]));
		}
		if (mc->num_servers > 1)
			CHECK(res[i]->hash == mc_hash_key(K(keys[i])), "%s: %s hash %u", label, keys[i],
			      (unsigned)res[i]->hash);
	}
	/* Results stay in add order, with their keys and lengths. */
	i = 0;
	TAILQ_FOREACH(it, &req->query, entries) {
		CHECK(i < 9 && it == res[i] && it->len == strlen(keys[i]) && strcmp(it->key, keys[i]) == 0,
		      "%s: query entry %lu", label, (unsigned long)i);
		i++;
		n += mc_res_found(it);
	}
	CHECK(i == 9 && n == 7, "%s: iterated %lu results, %d found", label, (unsigned long)i, n);
	mc_req_free(req);
}

static void check_reuse(struct memcache *mc, const char *label)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *a, *b, *c;
	char buf[8];

	CHECK(mc_set(mc, K("k1"), "first", 5, 0, 1) == 0, "%s: set k1", label);
	CHECK(mc_set(mc, K("k2"), "gone-soon", 9, 0, 2) == 0, "%s: set k2", label);
	CHECK(mc_set(mc, K("n"), "buf1", 4, 0, 3) == 0, "%s: set n", label);
	a = mc_req_add(req, K("k1"));
	b = mc_req_add(req, K("k2"));
	c = mc_req_add(req, K("n"));
	c->val = buf;
	c->size = sizeof(buf);
	mc_get(mc, req);
	CHECK(mc_res_found(a) && mc_res_found(b) && mc_res_found(c), "%s: first get", label);

	CHECK(mc_set(mc, K("k1"), "second-value", 12, 0, 4) == 0, "%s: update k1", label);
	CHECK(mc_delete(mc, K("k2"), 0) == 0, "%s: delete k2", label);
	CHECK(mc_set(mc, K("n"), "buf2", 4, 0, 5) == 0, "%s: update n", label);
	mc_get(mc, req);
	/* D4: FOUND cleared at the start of every get, library values replaced fresh. */
	CHECK(mc_res_found(a) && a->bytes == 12 && a->size == 12 && memcmp(a->val, "second-value", 13) == 0 &&
		      a->flags == 4,
	      "%s: k1 refreshed: bytes %lu size %lu", label, (unsigned long)a->bytes, (unsigned long)a->size);
	CHECK(!mc_res_found(b) && mc_res_attempted(b), "%s: deleted k2 no longer FOUND (_flags 0x%02x)", label,
	      FLAGS(b));
	CHECK(mc_res_found(c) && c->val == buf && memcmp(buf, "buf2", 4) == 0 && c->size == sizeof(buf),
	      "%s: caller buffer kept and refilled", label);
	/* And a third time, with k2 back. */
	CHECK(mc_set(mc, K("k2"), "back", 4, 0, 6) == 0, "%s: set k2 again", label);
	mc_get(mc, req);
	CHECK(mc_res_found(b) && b->bytes == 4 && memcmp(b->val, "back", 5) == 0 && b->flags == 6,
	      "%s: k2 found again", label);
	mc_req_free(req);

	/* D4: a library-allocated value of a result that is not free-on-delete is detached by the
	 * next get (the caller owns it) and the new value is stored fresh; the library frees neither
	 * (the valgrind run catches a double free or a leak). */
	req = mc_req_new();
	a = mc_req_add(req, K("k1"));
	mc_res_free_on_delete(a, 0);
	mc_get(mc, req);
	{
		void *first = a->val, *second;

		CHECK(mc_res_found(a) && first != NULL && memcmp(first, "second-value", 12) == 0,
		      "%s: not-free-on-delete first get", label);
		CHECK(mc_set(mc, K("k1"), "third", 5, 0, 0) == 0, "%s: update k1", label);
		mc_get(mc, req);
		second = a->val;
		CHECK(mc_res_found(a) && second != NULL && a->bytes == 5 && memcmp(second, "third", 5) == 0,
		      "%s: not-free-on-delete second get", label);
		CHECK(first != NULL && memcmp(first, "second-value", 12) == 0, "%s: the detached value is intact",
		      label);
		mc_req_free(req);
		free(first);
		if (second != first)
			free(second);
	}
}

/* Fetch callbacks: one call per registration, in registration order, after the values are in
 * place, for hits and misses. */
struct cb_log {
	int order[8];
	const void *misc[8];
	struct memcache_res *res[8];
	int found[8];
	int value_ok[8];
	int ctxt_ok[8];
	int n;
};

static struct cb_log cblog;

static void record(int tag, const struct memcache_ctxt *ctxt, struct memcache_res *res, void *misc)
{
	int i = cblog.n++;

	if (i >= 8)
		return;
	cblog.order[i] = tag;
	cblog.misc[i] = misc;
	cblog.res[i] = res;
	cblog.found[i] = mc_res_found(res);
	cblog.ctxt_ok[i] = ctxt == mc_global_ctxt();
	/* Each hit's value is "V-" followed by its key. */
	cblog.value_ok[i] = !cblog.found[i] || (res->val != NULL && res->bytes == res->len + 2 &&
						memcmp(res->val, "V-", 2) == 0 &&
						memcmp((char *)res->val + 2, res->key, res->len) == 0);
}

static void cb_one(MCM_CALLBACK_FUNC)
{
	record(1, MCM_CALLBACK_CTXT, MCM_CALLBACK_RES, MCM_CALLBACK_PTR);
}

static void cb_two(MCM_CALLBACK_FUNC)
{
	record(2, MCM_CALLBACK_CTXT, MCM_CALLBACK_RES, MCM_CALLBACK_PTR);
}

static void check_callbacks(struct memcache *mc, const char *label)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *r1, *r2, *r3;
	int misc1 = 1, misc2 = 2, misc3 = 3, misc4 = 4, i;

	CHECK(mc_set(mc, K("k1"), "V-k1", 4, 0, 0) == 0, "%s: set k1", label);
	CHECK(mc_set(mc, K("n"), "V-n", 3, 0, 0) == 0, "%s: set n", label);
	mc_delete(mc, K("k2"), 0);
	r1 = mc_req_add(req, K("k1"));
	r2 = mc_req_add(req, K("k2"));
	r3 = mc_req_add(req, K("n"));
	CHECK(mc_res_register_fetch_cb(req, r2, cb_two, &misc1) == 0, "%s: register", label);
	CHECK(mc_res_register_fetch_cb(req, r1, cb_one, &misc2) == 0, "%s: register", label);
	CHECK(mc_res_register_fetch_cb(req, r3, cb_one, &misc3) == 0, "%s: register", label);
	CHECK(mcm_res_register_fetch_cb(mc_global_ctxt(), req, r1, cb_two, &misc4) == 0, "%s: mcm register",
	      label);
	CHECK(mc_res_register_fetch_cb(NULL, r1, cb_one, NULL) == -1 &&
		      mc_res_register_fetch_cb(req, NULL, cb_one, NULL) == -1 &&
		      mc_res_register_fetch_cb(req, r1, NULL, NULL) == -1,
	      "%s: NULL arguments -> -1", label);
	memset(&cblog, 0, sizeof(cblog));
	mc_get(mc, req);
	CHECK(cblog.n == 4, "%s: %d callback calls, expected 4", label, cblog.n);
	{
		static const int want_order[4] = {2, 1, 1, 2};
		struct memcache_res *want_res[4];
		const void *want_misc[4];

		want_res[0] = r2, want_res[1] = r1, want_res[2] = r3, want_res[3] = r1;
		want_misc[0] = &misc1, want_misc[1] = &misc2, want_misc[2] = &misc3, want_misc[3] = &misc4;
		for (i = 0; i < 4 && i < cblog.n; i++) {
			CHECK(cblog.order[i] == want_order[i] && cblog.res[i] == want_res[i] &&
				      cblog.misc[i] == want_misc[i],
			      "%s: callback %d: wrong function, result or misc", label, i);
			CHECK(cblog.ctxt_ok[i], "%s: callback %d: ctxt is not the global context", label, i);
			CHECK(cblog.value_ok[i], "%s: callback %d: value not in place", label, i);
			CHECK(cblog.found[i] == (want_res[i] != r2), "%s: callback %d: found = %d", label, i,
			      cblog.found[i]);
		}
	}
	/* A second get calls them again, once each. */
	memset(&cblog, 0, sizeof(cblog));
	mc_get(mc, req);
	CHECK(cblog.n == 4, "%s: second get: %d callback calls", label, cblog.n);
	mc_req_free(req);
}

/* §9.6 steps 2-3: without servers nothing is marked; a multi-key get calls no callback. */
static int empty_calls;

static void cb_count(MCM_CALLBACK_FUNC)
{
	(void)MCM_CALLBACK_CTXT;
	(void)MCM_CALLBACK_RES;
	(void)MCM_CALLBACK_PTR;
	empty_calls++;
}

static void check_no_servers(void)
{
	struct memcache *none = mc_new();
	struct memcache_req *req = mc_req_new();
	struct memcache_res *a = mc_req_add(req, K("k1"));
	struct memcache_res *b;

	mc_get(none, req);
	CHECK(!mc_res_attempted(a) && !mc_res_found(a) && FLAGS(a) == 0x13,
	      "one key, no servers: _flags 0x%02x, expected untouched 0x13", FLAGS(a));
	b = mc_req_add(req, K("k2"));
	mc_res_register_fetch_cb(req, a, cb_count, NULL);
	mc_res_register_fetch_cb(req, b, cb_count, NULL);
	mc_get(none, req);
	CHECK(!mc_res_attempted(a) && !mc_res_attempted(b), "%s", "two keys, no servers: nothing attempted");
	CHECK(empty_calls == 0, "two keys, no servers: %d callback calls, expected none", empty_calls);
	mc_req_free(req);
	mc_free(none);
}

static void check_empty_request(void)
{
	struct memcache_req *req = mc_req_new();

	mc_global_ctxt()->errnum = 5;
	mc_get(one, req);
	CHECK(mc_global_ctxt()->errnum == 0, "%s", "mc_get on an empty request resets errnum");
	mc_req_free(req);
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *ports[3];
	int i;

	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	one = mc_new();
	three = mc_new();
	CHECK(mc_server_add(one, host, ports[0]) == 0, "%s", "add server to one");
	for (i = 0; i < 3; i++)
		CHECK(mc_server_add(three, host, ports[i]) == 0, "add server %d to three", i);

	check_build();
	check_get_flags(one, "one server");
	check_get_flags(three, "three servers");
	check_single_key_hash();
	check_free_on_delete_caller_buffer(one);
	check_free_on_delete_caller_buffer(three);
	check_zero_length_values_released_one_by_one(one, "one server");
	check_zero_length_values_released_one_by_one(three, "three servers");
	check_duplicates_and_bounded_keys(one, "one server");
	check_duplicates_and_bounded_keys(three, "three servers");
	check_multi(one, "one server");
	check_multi(three, "three servers");
	check_reuse(one, "one server");
	check_reuse(three, "three servers");
	check_callbacks(one, "one server");
	check_callbacks(three, "three servers");
	check_empty_request();
	check_no_servers();

	mc_free(one);
	mc_free(three);
	return CHECK_DONE();
}
