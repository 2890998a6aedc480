/*
 * The allocator contract (spec §5.2), proved with strict allocators.
 *
 * Host programs plug in allocators that crash on what libc tolerates: a database's realloc and
 * free that die on NULL, a mail server's wrapper that panics on a pointer it never handed out.
 * The functions below keep a table of every block they returned and abort() (after one clear
 * line on stderr) on realloc(NULL), free(NULL), or a realloc/free of a pointer not in the table.
 * They also fill new blocks with junk (the library must zero what it needs), always move a block
 * on realloc and poison what they release, so a pointer kept across a growth or a release shows.
 *
 * The whole scenario runs twice in one process, each time with a table of its own:
 *   - on the global context with the mc_* forms, the strict functions installed by mcMemSetup();
 *   - on a private context from mcMemNewCtxt() with the mcm_* forms, released by mcMemFreeCtxt(),
 *     which must leave its table empty (the context itself came from its malloc). No call of the
 *     global context's functions may happen meanwhile.
 * ALLOC_ORDER picks the order: "global-first" (the default: mcMemSetup() is the very first library
 * call) or "private-first" (the private context first, with a NULL mallocAtomic so that strings come
 * from its malloc, then the global one). ALLOC_ORDER=failures runs a shorter pass over the groups
 * on a private context again and again, refusing its 1st, 2nd, 3rd... allocation: whatever fails,
 * nothing may crash and nothing may be left behind.
 *
 * Every function group runs: each form of server add (host with and without a port, a unix
 * socket, refused adds), store commands with flags and expiry, delete, incr/decr and their
 * 64-bit forms, gets/cas/append/prepend/touch, mc_aget/mc_aget2 (whose values the caller frees
 * with the context's free), requests over three servers with hits, misses, caller buffers and
 * fetch callbacks, stats, flush, the buffer API, error paths (a dead server, keys with a space or
 * too long, a handle without servers), handles that follow a shared-memory domain while mcadmin
 * changes its list (the server array is then rebuilt), and mc_free. After each group the table
 * must be back where it was; leftovers are printed with their size and first bytes.
 *
 * Environment: MC_PORT, MC_PORT2, MC_PORT3 (memcached on 127.0.0.1), MC_SOCK (a memcached on a
 * unix socket), MC_DEAD_PORT (a loopback port nobody listens on), MCADMIN (the mcadmin binary),
 * MC_DOMAIN (a domain of the private MEMCACHE_SHM_PREFIX namespace; MEMCACHE_DOMAIN names it too,
 * so that mc_new() handles follow it until their first add), ALLOC_ORDER (see above).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memcache.h>
#include <memcache/buffer.h>

#include "check.h"

#define K(s) (char *)(s), strlen(s)

/* ---- strict allocators ---- */

struct block {
	void *p;
	size_t size;
	unsigned long serial; /* order of allocation, to tell a section's leftovers */
	char kind;            /* 'm' mcMalloc, 'a' mcMallocAtomic (kept across realloc) */
};

struct arena {
	const char *name;
	pthread_mutex_t lock;
	struct block *live;
	size_t n, cap;
	unsigned long serial;
	unsigned long calls;    /* every call of any of the four functions */
	unsigned long attempts; /* allocations and reallocations, counted for fail_at */
	unsigned long fail_at;  /* non-zero: that attempt returns NULL */
	int injected;           /* fail_at was reached */
};

static struct arena G = {"global", PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, 0, 0, 0, 0};
static struct arena P = {"private", PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, 0, 0, 0, 0};

/* Whether this attempt is the one to refuse (called with the lock held). */
static int refuse(struct arena *a)
{
	if (a->fail_at == 0 || ++a->attempts != a->fail_at)
		return 0;
	a->injected = 1;
	return 1;
}

static void contract_broken(struct arena *a, const char *what, const void *p, size_t size)
{
	fprintf(stderr,
		"STRICT ALLOCATOR (%s context): %s (pointer %p, size %zu): the library broke the "
		"allocator contract; aborting\n",
		a->name, what, p, size);
	abort();
}

static long find_block(const struct arena *a, const void *p)
{
	size_t i;

	for (i = a->n; i > 0; i--)
		if (a->live[i - 1].p == p)
			return (long)(i - 1);
	return -1;
}

static void add_block(struct arena *a, void *p, size_t size, char kind)
{
	if (a->n == a->cap) {
		size_t cap = a->cap != 0 ? a->cap * 2 : 256;
		struct block *grown = realloc(a->live, cap * sizeof(*grown));

		if (grown == NULL) {
			fprintf(stderr, "allocator table: out of memory\n");
			abort();
		}
		a->live = grown;
		a->cap = cap;
	}
	a->live[a->n].p = p;
	a->live[a->n].size = size;
	a->live[a->n].serial = ++a->serial;
	a->live[a->n].kind = kind;
	a->n++;
}

static void *strict_alloc(struct arena *a, size_t size, char kind)
{
	void *p;

	pthread_mutex_lock(&a->lock);
	a->calls++;
	p = refuse(a) ? NULL : malloc(size != 0 ? size : 1);
	if (p != NULL) {
		memset(p, 0xCC, size); /* never zero: the library zeroes what it needs */
		add_block(a, p, size, kind);
	}
	pthread_mutex_unlock(&a->lock);
	return p;
}

static void *strict_realloc(struct arena *a, void *p, size_t size)
{
	struct block *b;
	void *q;
	long at;

	pthread_mutex_lock(&a->lock);
	a->calls++;
	if (p == NULL)
		contract_broken(a, "realloc(NULL, size)", p, size);
	at = find_block(a, p);
	if (at < 0)
		contract_broken(a, "realloc of a pointer this allocator never returned or already freed",
				p, size);
	b = &a->live[at];
	/* Always move, and poison the old block, so a pointer kept across a growth shows. */
	q = refuse(a) ? NULL : malloc(size != 0 ? size : 1);
	if (q != NULL) {
		memset(q, 0xCC, size);
		memcpy(q, p, b->size < size ? b->size : size);
		memset(p, 0xDD, b->size);
		free(p);
		b->p = q;
		b->size = size;
	}
	pthread_mutex_unlock(&a->lock);
	return q;
}

static void strict_free(struct arena *a, void *p)
{
	long at;

	pthread_mutex_lock(&a->lock);
	a->calls++;
	if (p == NULL)
		contract_broken(a, "free(NULL)", p, 0);
	at = find_block(a, p);
	if (at < 0)
		contract_broken(a, "free of a pointer this allocator never returned or already freed", p,
				0);
	memset(p, 0xDD, a->live[at].size);
	free(p);
	a->live[at] = a->live[--a->n];
	pthread_mutex_unlock(&a->lock);
}

static void *g_malloc(size_t n) { return strict_alloc(&G, n, 'm'); }
static void *g_atomic(size_t n) { return strict_alloc(&G, n, 'a'); }
static void *g_realloc(void *p, size_t n) { return strict_realloc(&G, p, n); }
static void g_free(void *p) { strict_free(&G, p); }
static void *p_malloc(size_t n) { return strict_alloc(&P, n, 'm'); }
static void *p_atomic(size_t n) { return strict_alloc(&P, n, 'a'); }
static void *p_realloc(void *p, size_t n) { return strict_realloc(&P, p, n); }
static void p_free(void *p) { strict_free(&P, p); }

/* 'm' or 'a' for a block of the table, 0 for a pointer it does not hold. */
static char kind_of(struct arena *a, const void *p)
{
	char kind = 0;
	long at;

	pthread_mutex_lock(&a->lock);
	at = find_block(a, p);
	if (at >= 0)
		kind = a->live[at].kind;
	pthread_mutex_unlock(&a->lock);
	return kind;
}

/* Prints the blocks allocated after `since` that are still live; returns how many. */
static size_t report_leftovers(struct arena *a, unsigned long since, const char *where)
{
	size_t i, j, count = 0;

	pthread_mutex_lock(&a->lock);
	for (i = 0; i < a->n; i++) {
		const struct block *b = &a->live[i];
		const unsigned char *bytes = b->p;
		char shown[41];

		if (b->serial <= since)
			continue;
		count++;
		for (j = 0; j < b->size && j < sizeof(shown) - 1; j++)
			shown[j] = bytes[j] >= 0x20 && bytes[j] < 0x7f ? (char)bytes[j] : '.';
		shown[j] = '\0';
		fprintf(stderr, "  leftover (%s context, %s): %zu bytes from %s, allocation #%lu: \"%s\"\n",
			a->name, where, b->size, b->kind == 'a' ? "mcMallocAtomic" : "mcMalloc", b->serial,
			shown);
	}
	pthread_mutex_unlock(&a->lock);
	return count;
}

/* ---- the context in use ---- */

static struct memcache_ctxt *X; /* NULL: the mc_* forms on the global context */
static struct arena *A;         /* the table of the context in use */
static char atomic_kind;        /* what strings come from: 'a', or 'm' without a mallocAtomic */

#define CTX (X != NULL ? X : mc_global_ctxt())
#define CALL(fn, ...) (X != NULL ? mcm_##fn(X, __VA_ARGS__) : mc_##fn(__VA_ARGS__))
#define CALL0(fn) (X != NULL ? mcm_##fn(X) : mc_##fn())

/* Releases what the library handed over, with the context's own free (spec §5.2). */
static void ctx_free(void *p)
{
	CTX->mcFree(p);
}

static unsigned long reports;

/* Silent apart from one stderr line per report; the call always continues. */
static int32_t note_report(const void *ctxt, void *ectxt)
{
	const struct memcache_err_ctxt *e = ectxt;

	(void)ctxt;
	reports++;
	fprintf(stderr, "  (report) %s(): %s: %.*s\n", e->funcname != NULL ? e->funcname : "?",
		e->errstr != NULL ? e->errstr : "?", (int)(e->errmsg != NULL ? e->errlen : 0),
		e->errmsg != NULL ? e->errmsg : "");
	return 0;
}

/* Sections nest: each one checks that the table is back where it was when it began. */
struct section {
	const char *name;
	size_t live;
	unsigned long serial;
};

static struct section sections[8];
static int depth;

static void section(const char *name)
{
	if (depth == (int)(sizeof(sections) / sizeof(sections[0]))) {
		fprintf(stderr, "sections nested too deep\n");
		abort();
	}
	sections[depth].name = name;
	sections[depth].live = A->n;
	sections[depth].serial = A->serial;
	depth++;
}

static void section_end(void)
{
	const struct section *s = &sections[--depth];
	size_t left = A->n;

	CHECK(left == s->live, "%s context, %s: %zu blocks live at the start, %zu at the end",
	      A->name, s->name, s->live, left);
	if (left != s->live)
		report_leftovers(A, s->serial, s->name);
}

/* ---- environment ---- */

static const char *port1, *port2, *port3, *sock, *dead_port, *mcadmin_path, *domain;
static char addr1[64], addr2[64], addr3[64], dead_addr[64];

static struct memcache *three_servers(void)
{
	struct memcache *mc = CALL0(new);

	CHECK(mc != NULL, "%s", "new handle");
	CHECK(CALL(server_add4, mc, addr1) == 0, "add %s", addr1);
	CHECK(CALL(server_add4, mc, addr2) == 0, "add %s", addr2);
	CHECK(CALL(server_add4, mc, addr3) == 0, "add %s", addr3);
	return mc;
}

static void check_server(struct memcache_server *ms, const char *where)
{
	CHECK(kind_of(A, ms) == 'm', "%s: server structure from mcMalloc (kind %d)", where,
	      kind_of(A, ms));
	CHECK(kind_of(A, ms->hostname) == atomic_kind, "%s: hostname from the context (kind %d)", where,
	      kind_of(A, ms->hostname));
	CHECK(kind_of(A, ms->port) == atomic_kind, "%s: port from the context (kind %d)", where,
	      kind_of(A, ms->port));
}

static void check_handle(struct memcache *mc, const char *where)
{
	uint32_t i;

	CHECK(kind_of(A, mc) == 'm', "%s: handle from mcMalloc", where);
	if (mc->servers != NULL)
		CHECK(kind_of(A, mc->servers) == 'm', "%s: server array from the context (kind %d)",
		      where, kind_of(A, mc->servers));
	for (i = 0; i < mc->num_servers; i++)
		check_server(mc->servers[i], where);
}

/* ---- servers ---- */

static void exercise_server_forms(void)
{
	struct memcache *mc;
	struct memcache_server *ms;
	char bounded[96];
	uint32_t n = 0;
	int rc;

	section("server adds");
	mc = CALL0(new);
	CHECK(mc != NULL, "%s", "new handle");
	rc = CALL(server_add, mc, "127.0.0.1", port1);
	CHECK(rc == 0, "server_add(host, port) = %d", rc);
	n++;
	rc = CALL(server_add, mc, "127.0.0.1", NULL);
	CHECK(rc == 0, "server_add(host, NULL) = %d", rc);
	n++;
	rc = CALL(server_add2, mc, "127.0.0.1 and more", 9, port2, strlen(port2));
	CHECK(rc == 0, "server_add2 = %d", rc);
	n++;
	/* add3 takes a server whose strings came from the context's allocator. */
	ms = CALL0(server_new);
	CHECK(ms != NULL && kind_of(A, ms) == 'm', "%s", "server_new from mcMalloc");
	ms->hostname = CALL(strdup, "127.0.0.1");
	ms->port = CALL(strndup, port3, strlen(port3));
	rc = CALL(server_add3, mc, ms);
	CHECK(rc == 0, "server_add3 = %d", rc);
	n++;
	rc = CALL(server_add4, mc, addr1);
	CHECK(rc == 0, "server_add4(host:port) = %d", rc);
	n++;
	rc = CALL(server_add4, mc, "127.0.0.1");
	CHECK(rc == 0, "server_add4(host) = %d", rc);
	n++;
	snprintf(bounded, sizeof(bounded), "%s and the rest", addr2);
	rc = CALL(server_add5, mc, bounded, strlen(addr2));
	CHECK(rc == 0, "server_add5 = %d", rc);
	n++;
	rc = X != NULL ? mcm_server_add_weighted(X, mc, addr3, strlen(addr3), 3)
		       : mc_server_add_weighted(mc, addr3, 3);
	CHECK(rc == 0, "server_add_weighted = %d", rc);
	n++;
	rc = CALL(server_add4, mc, sock);
	CHECK(rc == 0, "server_add4(unix socket) = %d", rc);
	n++;
	rc = CALL(server_add, mc, sock, NULL);
	CHECK(rc == 0, "server_add(unix socket) = %d", rc);
	n++;

	/* Refused adds free the server they made (or were given). */
	rc = CALL(server_add4, mc, "127.0.0.1:notaport");
	CHECK(rc == -4, "server_add4(bad port) = %d", rc);
	rc = CALL(server_add, mc, "127.0.0.1", "0");
	CHECK(rc == -4, "server_add(port 0) = %d", rc);
	ms = CALL0(server_new);
	ms->hostname = CALL(strdup, "127.0.0.1");
	ms->port = CALL(strdup, "99999");
	rc = CALL(server_add3, mc, ms);
	CHECK(rc == -4, "server_add3(bad port) = %d", rc);

	/* A server never added is the caller's to release. */
	ms = CALL0(server_new);
	ms->hostname = CALL(strdup, "127.0.0.1");
	ms->port = CALL(strdup, port1);
	CALL(server_free, ms);
	ms = CALL0(server_new);
	CALL(server_free, ms); /* NULL hostname and port: not passed to free */
	CALL(server_free, NULL);

	CHECK(mc->num_servers == n, "num_servers %u, expected %u", (unsigned)mc->num_servers,
	      (unsigned)n);
	check_handle(mc, "server adds");
	CALL(timeout, mc, 1, 500);
	CALL(server_timeout, mc->servers[0], 1, 500);
	CALL(free, mc);
	CALL(free, NULL);

	/* Every add grows the array: many servers, then a unix-socket handle that works. */
	mc = CALL0(new);
	for (n = 0; n < 40; n++)
		CHECK(CALL(server_add4, mc, n % 2 ? addr1 : addr2) == 0, "add #%u", (unsigned)n);
	check_handle(mc, "40 adds");
	CALL(free, mc);
	mc = CALL0(new);
	CHECK(CALL(server_add4, mc, sock) == 0, "%s", "add the unix socket");
	CHECK(CALL(set, mc, K("al:unix"), "over unix", 9, 0, 3) == 0, "%s", "set over the unix socket");
	{
		size_t len = 0;
		char *v = CALL(aget2, mc, K("al:unix"), &len);

		CHECK(v != NULL && len == 9 && strcmp(v, "over unix") == 0, "%s",
		      "aget2 over the unix socket");
		if (v != NULL) {
			CHECK(kind_of(A, v) == atomic_kind, "%s", "value from the context");
			ctx_free(v);
		}
	}
	CALL(free, mc);
	section_end();
}

/* ---- storage and single-key retrieval ---- */

static void expect_value(struct memcache *mc, const char *key, const char *want, size_t want_len)
{
	size_t len = 12345;
	char *v = CALL(aget2, mc, (char *)key, strlen(key), &len);

	CHECK(v != NULL && len == want_len && memcmp(v, want, want_len) == 0 && v[len] == '\0',
	      "aget2(%s): got %p, %zu bytes", key, (void *)v, len);
	if (v != NULL) {
		CHECK(kind_of(A, v) == atomic_kind, "aget2(%s): value from the context (kind %d)", key,
		      kind_of(A, v));
		ctx_free(v);
	}
	v = CALL(aget, mc, (char *)key, strlen(key));
	CHECK(v != NULL && memcmp(v, want, want_len) == 0, "aget(%s)", key);
	if (v != NULL)
		ctx_free(v);
}

static void exercise_store(struct memcache *mc)
{
	char key[32], val[32], *v, *big;
	size_t len = 0, i;
	uint64_t cas = 0, counter = 0;
	uint16_t flags = 0;
	int rc;

	section("store and fetch");
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "al:s:%zu", i);
		snprintf(val, sizeof(val), "value %zu", i);
		CHECK(CALL(set, mc, key, strlen(key), val, strlen(val), 0, (uint16_t)i) == 0, "set %s",
		      key);
	}
	for (i = 0; i < 20; i += 7) {
		snprintf(key, sizeof(key), "al:s:%zu", i);
		snprintf(val, sizeof(val), "value %zu", i);
		expect_value(mc, key, val, strlen(val));
	}
	CHECK(CALL(add, mc, K("al:s:0"), "x", 1, 0, 0) == 1, "%s", "add over an existing key");
	CALL(delete, mc, K("al:new"), 0);
	CHECK(CALL(add, mc, K("al:new"), "x", 1, 300, 5) == 0, "%s", "add with flags and expiry");
	CHECK(CALL(replace, mc, K("al:new"), "yy", 2, 300, 6) == 0, "%s", "replace");
	CHECK(CALL(replace, mc, K("al:absent"), "z", 1, 0, 0) == 1, "%s", "replace of a missing key");
	expect_value(mc, "al:new", "yy", 2);
	v = CALL(aget, mc, K("al:absent"));
	CHECK(v == NULL, "%s", "aget miss");
	v = CALL(aget2, mc, K("al:absent"), &len);
	CHECK(v == NULL && len == 0, "%s", "aget2 miss");

	CHECK(CALL(set, mc, K("al:empty"), "", 0, 0, 0) == 0, "%s", "set an empty value");
	expect_value(mc, "al:empty", "", 0);

	big = malloc(300000);
	for (i = 0; i < 300000; i++)
		big[i] = (char)('a' + i % 26);
	CHECK(CALL(set, mc, K("al:big"), big, 300000, 0, 0) == 0, "%s", "set 300 kB");
	expect_value(mc, "al:big", big, 300000);
	free(big);

	/* gets and cas, append, prepend, touch (beyond 1.4). */
	v = CALL(agets, mc, K("al:new"), &len, &flags, &cas);
	CHECK(v != NULL && len == 2 && flags == 6 && cas != 0, "agets: len %zu flags %u", len,
	      (unsigned)flags);
	if (v != NULL)
		ctx_free(v);
	CHECK(CALL(cas, mc, K("al:new"), "zz", 2, 0, 7, cas) == 0, "%s", "cas");
	CHECK(CALL(cas, mc, K("al:new"), "ww", 2, 0, 7, cas) == MC_EXISTS, "%s", "stale cas");
	CHECK(CALL(append, mc, K("al:new"), "+", 1, 0, 0) == 0, "%s", "append");
	CHECK(CALL(prepend, mc, K("al:new"), "-", 1, 0, 0) == 0, "%s", "prepend");
	expect_value(mc, "al:new", "-zz+", 4);
	CHECK(CALL(touch, mc, K("al:new"), 100) == 0, "%s", "touch");

	CHECK(CALL(delete, mc, K("al:new"), 0) == 0, "%s", "delete");
	rc = CALL(delete, mc, K("al:new"), 0);
	CHECK(rc == 1, "delete of a missing key = %d", rc);

	CHECK(CALL(set, mc, K("al:n"), "10", 2, 0, 0) == 0, "%s", "set a counter");
	CHECK(CALL(incr, mc, K("al:n"), 5) == 15, "%s", "incr");
	CHECK(CALL(decr, mc, K("al:n"), 3) == 12, "%s", "decr");
	CHECK(CALL(incr, mc, K("al:nothing"), 1) == 0, "%s", "incr of a missing key");
	CHECK(CALL(incr64, mc, K("al:n"), 100, &counter) == 0 && counter == 112, "incr64: %llu",
	      (unsigned long long)counter);
	CHECK(CALL(decr64, mc, K("al:n"), 12, &counter) == 0 && counter == 100, "decr64: %llu",
	      (unsigned long long)counter);
	CHECK(CALL(incr64, mc, K("al:nothing"), 1, &counter) == MC_NOT_FOUND, "%s",
	      "incr64 of a missing key");

	v = CALL(strdup, "a string");
	CHECK(v != NULL && strcmp(v, "a string") == 0 && kind_of(A, v) == atomic_kind, "%s",
	      "strdup from the context");
	ctx_free(v);
	v = CALL(strndup, "a string", 1);
	CHECK(v != NULL && strcmp(v, "a") == 0 && kind_of(A, v) == atomic_kind, "%s",
	      "strndup from the context");
	ctx_free(v);

	v = X != NULL ? mcm_server_version(X, mc, mc->servers[1]) : mc_server_version(mc, mc->servers[1]);
	CHECK(v != NULL && kind_of(A, v) == atomic_kind, "%s", "server_version from the context");
	if (v != NULL)
		ctx_free(v);
	section_end();
}

/* ---- requests ---- */

struct fetch_count {
	int calls;
	int found;
};

static void on_fetch(const struct memcache_ctxt *ctxt, struct memcache_res *res, void *misc)
{
	struct fetch_count *count = misc;

	count->calls++;
	if (mc_res_found(res))
		count->found++;
	CHECK(ctxt == CTX, "%s", "a fetch callback is shown the request's context");
}

#define NKEYS 40
#define NHITS 30

static void exercise_requests(struct memcache *mc, const char *label)
{
	struct memcache_req *req;
	struct memcache_res *res[NKEYS], *r;
	struct fetch_count count = {0, 0};
	char key[NKEYS][16], refkey[] = "al:r:3", stackbuf[8], longkey[300];
	void *owned, *taken[2];
	int i, found = 0;

	section(label);
	for (i = 0; i < NHITS; i++) {
		snprintf(key[i], sizeof(key[i]), "al:r:%d", i);
		CHECK(CALL(set, mc, key[i], strlen(key[i]), key[i], strlen(key[i]), 0, (uint16_t)i) == 0,
		      "%s: set %s", label, key[i]);
	}
	for (; i < NKEYS; i++) {
		snprintf(key[i], sizeof(key[i]), "al:r:%d", i);
		CALL(delete, mc, key[i], strlen(key[i]), 0);
	}
	req = CALL0(req_new);
	CHECK(req != NULL && kind_of(A, req) == 'm', "%s: request from mcMalloc", label);
	for (i = 0; i < NKEYS; i++) {
		res[i] = CALL(req_add, req, key[i], strlen(key[i]));
		CHECK(res[i] != NULL && kind_of(A, res[i]) == 'm' &&
			      kind_of(A, res[i]->key) == atomic_kind,
		      "%s: result and key copy of %s from the context", label, key[i]);
	}
	r = CALL(req_add_ref, req, refkey, strlen(refkey));
	CHECK(r != NULL && r->key == refkey, "%s: req_add_ref", label);
	/* Keys the library refuses allocate nothing (the table check at the end shows it). */
	r = CALL(req_add, req, K("al bad key"));
	CHECK(r == NULL, "%s: req_add with a space", label);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	r = CALL(req_add, req, longkey, 251);
	CHECK(r == NULL, "%s: req_add of 251 bytes", label);

	/* The caller's buffer that the library must not free... */
	res[0]->val = stackbuf;
	res[0]->size = sizeof(stackbuf);
	/* ...and one from the context that the library frees with the request. */
	owned = CTX->mcMalloc(32);
	res[1]->val = owned;
	res[1]->size = 32;
	CALL(res_free_on_delete, res[1], 1);
	for (i = 0; i < NKEYS; i += 4)
		CHECK(CALL(res_register_fetch_cb, req, res[i], on_fetch, &count) == 0,
		      "%s: register a callback", label);

	CALL(get, mc, req);
	for (i = 0; i < NKEYS; i++) {
		int hit = CALL(res_found, res[i]);

		found += hit;
		CHECK(hit == (i < NHITS), "%s: %s found %d", label, key[i], hit);
		if (i >= 2 && hit)
			CHECK(kind_of(A, res[i]->val) == atomic_kind &&
				      memcmp(res[i]->val, key[i], strlen(key[i])) == 0,
			      "%s: value of %s from the context", label, key[i]);
	}
	CHECK(found == NHITS, "%s: %d found", label, found);
	CHECK(memcmp(stackbuf, "al:r:0", 6) == 0, "%s: the caller's buffer is filled", label);
	CHECK(res[1]->val == owned && memcmp(owned, "al:r:1", 6) == 0,
	      "%s: the context buffer is filled", label);
	CHECK(count.calls == NKEYS / 4 && count.found == NHITS / 4 + 1, "%s: callbacks %d, found %d",
	      label, count.calls, count.found);

	/* Without free-on-delete the caller owns every value the result receives. */
	CALL(res_free_on_delete, res[5], 0);
	taken[0] = res[5]->val;
	CALL(res_free, req, res[7]);
	CALL(get, mc, req);
	taken[1] = res[5]->val;
	CHECK(taken[1] != NULL && taken[1] != taken[0], "%s: a new value for the taken result", label);
	CHECK(count.calls == 2 * (NKEYS / 4), "%s: callbacks after the second get: %d", label,
	      count.calls);
	CALL(req_free, req);
	CHECK(kind_of(A, taken[0]) == atomic_kind && kind_of(A, taken[1]) == atomic_kind,
	      "%s: taken values stay allocated", label);
	ctx_free(taken[0]);
	if (taken[1] != NULL)
		ctx_free(taken[1]);

	/* One key (the single-server path), and an empty request. */
	req = CALL0(req_new);
	r = CALL(req_add, req, K("al:r:1"));
	CALL(res_register_fetch_cb, req, r, on_fetch, &count);
	CALL(get, mc, req);
	CHECK(CALL(res_found, r) == 1, "%s: a single key", label);
	CALL(req_free, req);
	req = CALL0(req_new);
	CALL(get, mc, req);
	CALL(req_free, req);
	CALL(req_free, NULL);
	section_end();
}

/* ---- stats and flush ---- */

static void exercise_stats_flush(struct memcache *mc)
{
	struct memcache_server_stats *s;
	uint32_t i;

	section("stats and flush");
	s = CALL(stats, mc);
	CHECK(s != NULL && kind_of(A, s) == 'm' && s->version != NULL &&
		      kind_of(A, s->version) == atomic_kind,
	      "%s", "stats from the context");
	CALL(server_stats_free, s);
	for (i = 0; i < mc->num_servers; i++) {
		s = CALL(server_stats, mc, mc->servers[i]);
		CHECK(s != NULL && s->version != NULL && kind_of(A, s->version) == atomic_kind,
		      "server_stats #%u", (unsigned)i);
		CALL(server_stats_free, s);
	}
	CALL(server_stats_free, NULL);
	CHECK(CALL(flush, mc, mc->servers[0]) == 0, "%s", "flush one server");
	CHECK(CALL(flush_all, mc) == 0, "%s", "flush all");
	CALL(server_disconnect_all, mc);
	CALL(server_deactivate, mc, mc->servers[2]);
	CALL(server_activate_all, mc);
	CHECK(CALL(set, mc, K("al:after"), "x", 1, 0, 0) == 0, "%s", "set after reconnecting");
	section_end();
}

/* ---- error paths ---- */

static void exercise_errors(struct memcache *live)
{
	struct memcache *mc;
	struct memcache_req *req;
	struct memcache_server_stats *s;
	char longkey[300], *v;
	size_t len = 0;
	uint64_t counter = 0;

	section("error paths");
	/* Only a dead server. */
	mc = CALL0(new);
	CHECK(CALL(server_add4, mc, dead_addr) == 0, "%s", "add the dead server");
	CHECK(CALL(set, mc, K("al:e"), "v", 1, 0, 0) != 0, "%s", "set on a dead server fails");
	CHECK(CALL(aget, mc, K("al:e")) == NULL, "%s", "aget on a dead server");
	CHECK(CALL(aget2, mc, K("al:e"), &len) == NULL, "%s", "aget2 on a dead server");
	CALL(incr, mc, K("al:e"), 1);
	CALL(delete, mc, K("al:e"), 0);
	CALL(server_activate_all, mc); /* tried again at once */
	req = CALL0(req_new);
	CALL(req_add, req, K("al:e1"));
	CALL(req_add, req, K("al:e2"));
	CALL(get, mc, req);
	CHECK(CALL(res_found, TAILQ_FIRST(&req->query)) == 0, "%s", "nothing found on a dead server");
	CALL(req_free, req);
	s = CALL(stats, mc);
	if (s != NULL)
		CALL(server_stats_free, s);
	s = CALL(server_stats, mc, mc->servers[0]);
	CHECK(s == NULL, "%s", "server_stats of a dead server");
	CALL(flush, mc, mc->servers[0]);
	CALL(flush_all, mc);
	v = X != NULL ? mcm_server_version(X, mc, mc->servers[0]) : mc_server_version(mc, mc->servers[0]);
	CHECK(v == NULL, "%s", "server_version of a dead server");
	CALL(free, mc);

	/* A dead server beside two live ones: failover. */
	mc = CALL0(new);
	CALL(server_add4, mc, dead_addr);
	CALL(server_add4, mc, addr1);
	CALL(server_add4, mc, addr2);
	CALL(set, mc, K("al:f1"), "v", 1, 0, 0);
	v = CALL(aget, mc, K("al:f1"));
	if (v != NULL)
		ctx_free(v);
	req = CALL0(req_new);
	CALL(req_add, req, K("al:f1"));
	CALL(req_add, req, K("al:f2"));
	CALL(req_add, req, K("al:f3"));
	CALL(get, mc, req);
	CALL(req_free, req);
	s = CALL(stats, mc);
	if (s != NULL)
		CALL(server_stats_free, s);
	CALL(free, mc);

	/* No server at all (new_private: mc_new() would follow the domain). */
	mc = X != NULL ? mcm_new_private(X) : mc_new_private();
	CHECK(CALL(set, mc, K("al:e"), "v", 1, 0, 0) != 0, "%s", "set without servers");
	CHECK(CALL(aget, mc, K("al:e")) == NULL, "%s", "aget without servers");
	req = CALL0(req_new);
	CALL(req_add, req, K("al:e"));
	CALL(get, mc, req);
	CALL(req_free, req);
	s = CALL(stats, mc);
	if (s != NULL)
		CALL(server_stats_free, s);
	CALL(free, mc);

	/* Bad keys on a live handle: refused before anything is sent or allocated. */
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	CHECK(CALL(set, live, K("al bad"), "v", 1, 0, 0) != 0, "%s", "set with a space");
	CHECK(CALL(add, live, longkey, 251, "v", 1, 0, 0) != 0, "%s", "add with 251 bytes");
	CHECK(CALL(aget, live, K("al bad")) == NULL, "%s", "aget with a space");
	CHECK(CALL(aget2, live, longkey, 251, &len) == NULL, "%s", "aget2 with 251 bytes");
	CHECK(CALL(agets, live, K("al bad"), &len, NULL, NULL) == NULL, "%s", "agets with a space");
	CALL(delete, live, K("al bad"), 0);
	CALL(incr, live, longkey, 251, 1);
	CHECK(CALL(incr64, live, K("al bad"), 1, &counter) != 0, "%s", "incr64 with a space");
	section_end();
}

/* ---- the buffer API ---- */

static void exercise_buffers(void)
{
	struct memcache_ctxt *c = CTX;
	struct memcache_buf *b, *b2, *b3, *cp, *needle, *rep, *fr, *fr2, *none = NULL;
	struct memcache_buf zeroed, zeroed2;
	int fds[2], i;
	char chunk[5000];

	section("buffers");
	b = mcm_buf_new(c);
	/* Both the structure and its storage come from mcMalloc, as in 1.4 (spec §4.4, §5.2). */
	CHECK(b != NULL && kind_of(A, b) == 'm' && kind_of(A, b->ptr) == 'm', "%s",
	      "buf_new: structure and storage from mcMalloc");
	for (i = 0; i < 200; i++)
		mcm_buf_append(c, b, "0123456789", 10);
	mcm_buf_append2(c, b, "tail");
	mcm_buf_append_char(c, b, 'x');
	mcm_buf_append_buf(c, b, b);
	CHECK(mcm_buf_len(c, b) == 2 * 2005, "buf_len %u", (unsigned)mcm_buf_len(c, b));
	CHECK(kind_of(A, b->ptr) == 'm', "%s", "grown storage from the context");
	b2 = mcm_buf_new2(c, "abc", 3);
	b3 = mcm_buf_new3(c, "hello\r\nworld\r\n");
	cp = mcm_buf_copy(c, b3);
	CHECK(b2 != NULL && b3 != NULL && cp != NULL, "%s", "buf_new2, buf_new3, buf_copy");
	mcm_buf_replace(c, b2, "a longer content than before, to grow the storage", 50);
	mcm_buf_replace2(c, b2, "short");
	mcm_buf_replace_buf(c, b2, b);
	mcm_buf_replace_buf(c, b2, b2);
	mcm_buf_eat_line(c, b3);
	mcm_buf_compact(c, b3);
	mcm_buf_to_upper(c, b3);
	(void)mcm_buf_to_cstr(c, b3);
	(void)mcm_buf_tail(c, b3);
	(void)mcm_buf_remain(c, b3);
	(void)mcm_buf_remain_off(c, b3);
	(void)mcm_buf_cmp(c, b3, "WORLD", 5);
	(void)mcm_buf_cmp2(c, b3, "WORLD");
	(void)mcm_buf_cmp_buf(c, b3, cp);
	(void)mcm_buf_end(c, cp, "\r\n", 2);
	(void)mcm_buf_end2(c, cp, "\r\n");
	(void)mcm_buf_end_buf(c, cp, b3);
	(void)mcm_buf_find(c, cp, "world");
	(void)mcm_buf_find2(c, cp, "wor", 3);
	mcm_buf_reset(c, b3);
	mcm_buf_realloc(c, b3, 4096);
	mcm_buf_realloc(c, b3, 16);
	mcm_buf_resize(c, b3, 10000);
	mcm_buf_resize(c, b3, 4);
	needle = mcm_buf_new3(c, "0123");
	rep = mcm_buf_new3(c, "abcdefgh");
	(void)mcm_buf_find_buf(c, b, needle);
	fr = mcm_buf_find_replace(c, b, needle, rep);
	fr2 = mcm_buf_find_replace2(c, cp, "world", rep);
	CHECK(fr != NULL && fr2 != NULL && kind_of(A, fr) == 'm', "%s", "find_replace results");

	/* read(2) into a buffer: grows it. */
	CHECK(pipe(fds) == 0, "%s", "pipe");
	memset(chunk, 'r', sizeof(chunk));
	CHECK(write(fds[1], chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk), "%s", "write the pipe");
	close(fds[1]);
	{
		size_t got = 0, n;

		while ((n = mcm_buf_read(c, b2, fds[0])) > 0)
			got += n;
		CHECK(got == sizeof(chunk), "buf_read %zu bytes", got);
	}
	close(fds[0]);

	/* A structure zeroed by hand has no storage: its first storage comes from an allocation,
	 * never from realloc(NULL). */
	memset(&zeroed, 0, sizeof(zeroed));
	CHECK(mcm_buf_append(c, &zeroed, "abc", 3) == 1 && zeroed.ptr != NULL, "%s",
	      "append to a zeroed structure");
	CHECK(kind_of(A, zeroed.ptr) != 0, "%s", "its storage comes from the context");
	if (zeroed.ptr != NULL)
		c->mcFree(zeroed.ptr);
	memset(&zeroed2, 0, sizeof(zeroed2));
	mcm_buf_realloc(c, &zeroed2, 100);
	if (zeroed2.ptr != NULL) {
		CHECK(kind_of(A, zeroed2.ptr) != 0, "%s", "realloc of a zeroed structure");
		c->mcFree(zeroed2.ptr);
	}

	CHECK(mcm_buf_free(c, &b) == 1 && b == NULL, "%s", "buf_free");
	mcm_buf_free(c, &b2);
	mcm_buf_free(c, &b3);
	mcm_buf_free(c, &cp);
	mcm_buf_free(c, &needle);
	mcm_buf_free(c, &rep);
	mcm_buf_free(c, &fr);
	mcm_buf_free(c, &fr2);
	CHECK(mcm_buf_free(c, &none) == 0, "%s", "buf_free of NULL");
	CHECK(mcm_buf_free(c, NULL) == 0, "%s", "buf_free(NULL)");
	section_end();
}

/* ---- handles that follow a domain ---- */

/* `mcadmin --domain DOMAIN set SERVER...`, its output on stderr. 0 on success. */
static int mcadmin_set(const char *s1, const char *s2, const char *s3)
{
	const char *argv[8] = {"mcadmin", "--domain", domain, "set", s1, s2, s3, NULL};
	int status = 0;
	pid_t pid;

	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		dup2(2, 1); /* our stdout stays empty */
		execv(mcadmin_path, (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void fill(struct memcache *mc, const char *tag, int n)
{
	char key[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "al:d:%s:%d", tag, i);
		CALL(set, mc, key, strlen(key), key, strlen(key), 0, 0);
	}
}

static void fetch_all(struct memcache *mc, const char *tag, int n)
{
	struct memcache_req *req = CALL0(req_new);
	char key[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "al:d:%s:%d", tag, i);
		CALL(req_add, req, key, strlen(key));
	}
	CALL(get, mc, req);
	CALL(req_free, req);
}

static void exercise_domain(void)
{
	struct memcache *mc;
	char *v;

	section("domain");
	CHECK(mcadmin_set(addr1, NULL, NULL) == 0, "%s", "mcadmin set one server");
	mc = CALL(new2, domain);
	CHECK(mc != NULL && mc->num_servers == 1, "%s", "a handle following the domain");
	if (mc == NULL) {
		section_end();
		return;
	}
	check_handle(mc, "domain of one");
	fill(mc, "one", 10);
	expect_value(mc, "al:d:one:3", "al:d:one:3", 10);

	/* Grown to three: the server array is rebuilt from the context. */
	CHECK(mcadmin_set(addr1, addr2, addr3) == 0, "%s", "mcadmin set three servers");
	fill(mc, "three", 30);
	CHECK(mc->num_servers == 3, "num_servers after growing: %u", (unsigned)mc->num_servers);
	check_handle(mc, "domain of three");
	fetch_all(mc, "three", 30);

	/* Shrunk: mc_domain_version is how a program brings a handle up to date by itself; it has
	 * no context argument, so it must use the handle's. */
	CHECK(mcadmin_set(addr3, NULL, NULL) == 0, "%s", "mcadmin set one other server");
	CHECK(mc_domain_version(mc) != 0, "%s", "mc_domain_version");
	CHECK(mc->num_servers == 1, "num_servers after shrinking: %u", (unsigned)mc->num_servers);
	check_handle(mc, "domain shrunk");
	v = CALL(aget, mc, K("al:d:three:1"));
	if (v != NULL)
		ctx_free(v);

	/* A dead server in the list. */
	CHECK(mcadmin_set(dead_addr, addr1, NULL) == 0, "%s", "mcadmin set a dead server");
	fill(mc, "dead", 10);
	fetch_all(mc, "dead", 10);
	CHECK(mc->num_servers == 2, "num_servers with a dead one: %u", (unsigned)mc->num_servers);
	check_handle(mc, "domain with a dead server");
	/* Its list belongs to mcadmin: an explicit add is refused and frees what it made. */
	CHECK(CALL(server_add4, mc, addr2) == -6, "%s", "explicit add refused on a domain handle");
	CALL(free, mc);

	/* mc_new() follows MEMCACHE_DOMAIN until its first add, which drops the domain's servers. */
	mc = CALL0(new);
	CHECK(mc != NULL && mc->num_servers == 2, "mc_new follows the domain: %u servers",
	      mc != NULL ? (unsigned)mc->num_servers : 0);
	check_handle(mc, "legacy handle");
	CHECK(CALL(server_add4, mc, addr2) == 0 && mc->num_servers == 1, "%s",
	      "the first add makes it private");
	check_handle(mc, "legacy handle made private");
	fill(mc, "private", 5);
	expect_value(mc, "al:d:private:2", "al:d:private:2", 14);
	CALL(free, mc);

	/* A domain with no segment, and a name that is refused. */
	mc = CALL(new2, "alloc-nothing-here");
	CHECK(mc != NULL && mc->num_servers == 0, "%s", "a domain without a segment");
	CALL(set, mc, K("al:d:none"), "x", 1, 0, 0);
	CALL(free, mc);
	mc = CALL(new2, "not a name!");
	CHECK(mc == NULL, "%s", "a bad domain name");
	mc = X != NULL ? mcm_new_private(X) : mc_new_private();
	CHECK(mc != NULL && CALL(server_add4, mc, addr1) == 0, "%s", "new_private");
	CALL(free, mc);
	section_end();
}

/* ---- allocation failures ---- */

static void quiet_fetch(const struct memcache_ctxt *ctxt, struct memcache_res *res, void *misc)
{
	(void)ctxt;
	(void)res;
	(void)misc;
}

static int32_t count_report(const void *ctxt, void *ectxt)
{
	(void)ctxt;
	(void)ectxt;
	reports++;
	return 0;
}

/* A short pass over every group on the private context that copes with any call failing. */
static void failing_scenario(void)
{
	struct memcache *mc;
	struct memcache_req *req;
	struct memcache_res *r;
	struct memcache_server_stats *s;
	struct memcache_server *ms;
	struct memcache_buf *b, *c, zeroed;
	static int flip;
	char key[32], *v, *big;
	size_t len;
	int i;

	mc = mcm_new(X);
	if (mc != NULL) {
		mcm_server_add4(X, mc, addr1);
		mcm_server_add2(X, mc, "127.0.0.1", 9, port2, strlen(port2));
		mcm_server_add5(X, mc, addr3, strlen(addr3));
		mcm_set(X, mc, K("al:o:1"), "value", 5, 0, 0);
		v = mcm_aget(X, mc, K("al:o:1"));
		if (v != NULL)
			ctx_free(v);
		v = mcm_aget2(X, mc, K("al:o:1"), &len);
		if (v != NULL)
			ctx_free(v);
		big = calloc(1, 100000);
		mcm_set(X, mc, K("al:o:big"), big, 100000, 0, 0);
		free(big);
		v = mcm_aget(X, mc, K("al:o:big"));
		if (v != NULL)
			ctx_free(v);
		req = mcm_req_new(X);
		if (req != NULL) {
			mcm_req_add(X, req, K("al:o:big"));
			for (i = 0; i < 6; i++) {
				snprintf(key, sizeof(key), "al:o:%d", i);
				r = mcm_req_add(X, req, key, strlen(key));
				if (r != NULL)
					mcm_res_register_fetch_cb(X, req, r, quiet_fetch, NULL);
			}
			mcm_get(X, mc, req);
			mcm_get(X, mc, req);
			mcm_req_free(X, req);
		}
		s = mcm_stats(X, mc);
		if (s != NULL)
			mcm_server_stats_free(X, s);
		if (mc->num_servers > 0) {
			s = mcm_server_stats(X, mc, mc->servers[0]);
			if (s != NULL)
				mcm_server_stats_free(X, s);
			v = mcm_server_version(X, mc, mc->servers[0]);
			if (v != NULL)
				ctx_free(v);
		}
		mcm_free(X, mc);
	}
	ms = mcm_server_new(X);
	if (ms != NULL) {
		ms->hostname = mcm_strdup(X, "127.0.0.1");
		ms->port = mcm_strdup(X, port1);
		mc = mcm_new_private(X);
		if (mc != NULL) {
			mcm_server_add3(X, mc, ms);
			mcm_free(X, mc);
		} else {
			mcm_server_free(X, ms);
		}
	}
	/* Following the domain: its list is applied when the handle is made, then changed (to the
	 * other of two lists that share a server); mc_new() handles drop it at their first add. */
	mc = mcm_new2(X, domain);
	if (mc != NULL) {
		mcm_set(X, mc, K("al:o:2"), "v", 1, 0, 0);
		flip = !flip;
		CHECK(flip ? mcadmin_set(addr3, addr1, NULL) == 0 : mcadmin_set(addr1, addr2, addr3) == 0,
		      "%s", "mcadmin set");
		mc_domain_version(mc);
		mcm_set(X, mc, K("al:o:3"), "v", 1, 0, 0);
		mcm_free(X, mc);
	}
	mc = mcm_new(X);
	if (mc != NULL) {
		mcm_server_add4(X, mc, addr1);
		mcm_free(X, mc);
	}
	b = mcm_buf_new(X);
	if (b != NULL) {
		for (i = 0; i < 20; i++)
			mcm_buf_append(X, b, "0123456789", 10);
		c = mcm_buf_copy(X, b);
		if (c != NULL)
			mcm_buf_free(X, &c);
		c = mcm_buf_new3(X, "0123");
		if (c != NULL) {
			struct memcache_buf *fr = mcm_buf_find_replace(X, b, c, c);

			if (fr != NULL)
				mcm_buf_free(X, &fr);
			mcm_buf_free(X, &c);
		}
		mcm_buf_free(X, &b);
	}
	b = mcm_buf_new2(X, "abc", 3);
	if (b != NULL) {
		mcm_buf_replace(X, b, "a longer value than the first", 29);
		mcm_buf_free(X, &b);
	}
	memset(&zeroed, 0, sizeof(zeroed));
	mcm_buf_append(X, &zeroed, "abc", 3);
	if (zeroed.ptr != NULL)
		ctx_free(zeroed.ptr);
	v = mcm_strndup(X, "abcdef", 3);
	if (v != NULL)
		ctx_free(v);
}

/* Runs failing_scenario() with the 1st, 2nd, ... allocation of the private context refused,
 * until a run makes fewer allocations than the one refused: no crash, no leak, each time. */
static void run_failure_sweep(void)
{
	unsigned long n, points = 0;
	size_t base;

	fprintf(stderr, "== private context, every allocation refused in turn\n");
	X = mcMemNewCtxt(p_free, p_malloc, p_atomic, p_realloc);
	CHECK(X != NULL, "%s", "mcMemNewCtxt");
	if (X == NULL)
		return;
	A = &P;
	atomic_kind = 'a';
	mcErrSetupCtxt(X, count_report);
	mcErrSetup(count_report);
	CHECK(mcadmin_set(addr1, addr2, addr3) == 0, "%s", "mcadmin set three servers");
	base = P.n;
	failing_scenario();
	CHECK(P.n == base, "a run without failures leaves %zu blocks", P.n - base);
	for (n = 1; n < 100000; n++) {
		unsigned long serial = P.serial;

		P.attempts = 0;
		P.injected = 0;
		P.fail_at = n;
		failing_scenario();
		P.fail_at = 0;
		if (!P.injected)
			break;
		points++;
		if (P.n != base) {
			CHECK(P.n == base, "allocation #%lu refused: %zu blocks left behind", n,
			      P.n - base);
			report_leftovers(&P, serial, "a refused allocation");
			base = P.n; /* lost for good; later runs are judged on their own */
		}
	}
	fprintf(stderr, "%lu allocations refused in turn\n", points);
	CHECK(points > 50, "only %lu allocations refused", points);
	mcErrSetup(note_report);
	mcMemFreeCtxt(X);
	X = NULL;
	CHECK(P.n == 0, "private context: %zu blocks left after mcMemFreeCtxt", P.n);
}

/* ---- the scenario ---- */

static void scenario(void)
{
	struct memcache *mc;

	if (X != NULL)
		mcErrSetupCtxt(X, note_report);
	else
		mcErrSetup(note_report);
	exercise_server_forms();
	section("three servers");
	mc = three_servers();
	check_handle(mc, "three servers");
	exercise_store(mc);
	exercise_requests(mc, "requests on three servers");
	exercise_stats_flush(mc);
	exercise_errors(mc);
	CALL(free, mc);
	section_end();
	section("one server");
	mc = CALL0(new);
	CALL(server_add, mc, "127.0.0.1", port2);
	exercise_requests(mc, "requests on one server");
	CALL(free, mc);
	section_end();
	exercise_buffers();
	exercise_domain();
}

static void run_global(void)
{
	unsigned long private_calls = P.calls;

	fprintf(stderr, "== global context, mc_* forms\n");
	X = NULL;
	A = &G;
	atomic_kind = 'a';
	scenario();
	CHECK(G.n == 0, "global context: %zu blocks left at the end", G.n);
	report_leftovers(&G, 0, "end of the global run");
	CHECK(P.calls == private_calls, "%s", "the global run called no private allocator");
}

static void run_private(int with_atomic)
{
	unsigned long global_calls = G.calls;
	size_t global_live = G.n;

	fprintf(stderr, "== private context, mcm_* forms%s\n", with_atomic ? "" : ", no mallocAtomic");
	X = mcMemNewCtxt(p_free, p_malloc, with_atomic ? p_atomic : NULL, p_realloc);
	CHECK(X != NULL && kind_of(&P, X) == 'm' && kind_of(&P, X->ectxt) == 'm', "%s",
	      "mcMemNewCtxt allocates the context and its error record with its malloc");
	if (X == NULL)
		return;
	A = &P;
	atomic_kind = with_atomic ? 'a' : 'm';
	scenario();
	mcMemFreeCtxt(X);
	X = NULL;
	CHECK(P.n == 0, "private context: %zu blocks left after mcMemFreeCtxt", P.n);
	report_leftovers(&P, 0, "after mcMemFreeCtxt");
	CHECK(G.calls == global_calls && G.n == global_live,
	      "the private run called the global context's allocator %lu times",
	      G.calls - global_calls);
}

int main(void)
{
	const char *order = getenv("ALLOC_ORDER");
	int private_first = order != NULL && strcmp(order, "private-first") == 0;
	int sweep = order != NULL && strcmp(order, "failures") == 0;

	if (!private_first && !sweep)
		CHECK(mcMemSetup(g_free, g_malloc, g_atomic, g_realloc) == 0, "%s", "mcMemSetup");
	port1 = need_env("MC_PORT");
	port2 = need_env("MC_PORT2");
	port3 = need_env("MC_PORT3");
	sock = need_env("MC_SOCK");
	dead_port = need_env("MC_DEAD_PORT");
	mcadmin_path = need_env("MCADMIN");
	domain = need_env("MC_DOMAIN");
	snprintf(addr1, sizeof(addr1), "127.0.0.1:%s", port1);
	snprintf(addr2, sizeof(addr2), "127.0.0.1:%s", port2);
	snprintf(addr3, sizeof(addr3), "127.0.0.1:%s", port3);
	snprintf(dead_addr, sizeof(dead_addr), "127.0.0.1:%s", dead_port);

	if (sweep) {
		run_failure_sweep();
	} else if (private_first) {
		run_private(0);
		CHECK(mcMemSetup(g_free, g_malloc, g_atomic, g_realloc) == 0, "%s", "mcMemSetup");
		run_global();
	} else {
		run_global();
		run_private(1);
	}
	fprintf(stderr, "%lu error reports\n", reports);
	return CHECK_DONE();
}
