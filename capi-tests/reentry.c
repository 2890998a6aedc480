/*
 * Hooks and re-entry (issue 12, fault 7). A host program's code runs inside library calls: the
 * error handler, fetch callbacks, and the context's mcHashKey and mcServerFind hooks. That code
 * may call the library again on the same handle (a cache layer that logs a miss to the cache, a
 * callback that stores a derived key), or leave by longjmp (a database raising an error). A
 * re-entrant call may work or fail with a clear error code; it must never crash, deadlock, or
 * corrupt the handle: the outer call's result must be right, and afterwards the handle must work
 * from this thread and from another one, on every server, with values where they belong.
 *
 * Cases, each in a child process of its own (all at once, each with alarm() as a hard cap, so a
 * deadlock is reported by name):
 *   handler      - an error handler that calls mcm_aget2 and mcm_set on the same handle when a
 *                  report arrives: during mcm_add of an existing key (NOT_STORED), and during a
 *                  multi-key mcm_get over two live servers and a dead one (the dead server's
 *                  report comes while the live servers' replies may still be unread);
 *   callback     - fetch callbacks that call mcm_aget2 and mcm_set on the same handle;
 *   hash         - an mcHashKey hook that calls mcm_aget2 on the same handle from inside;
 *   find         - an mcServerFind hook that does the same;
 *   hash-jump    - an mcHashKey hook that longjmps out of set, get and multi-get;
 *   find-jump    - an mcServerFind hook that does the same;
 *   cb-jump      - a fetch callback that longjmps out of a multi-key mcm_get;
 *   handler-jump - an error handler that longjmps out of a multi-key mcm_get when the dead server
 *                  is reported, with the live servers' requests already sent;
 *   race-hash    - an mcHashKey hook re-entering during multi-gets while a second thread does
 *                  set/get rounds on the same handle without pause: a re-entered call must not
 *                  let the other thread in while the outer call still runs;
 *   race-cb      - the same with re-entering fetch callbacks.
 * A depth counter keeps the hooks from re-entering more than once; the hooks' state is per
 * thread, since other threads' calls run the context's hooks too. After each case the hooks are
 * restored and check_handle() runs set/get rounds on the handle, first from another thread
 * alone (before this thread calls the library again, so a lock a jump left held shows as a
 * deadlock), then from this thread, then from both at once; then it reads values back through
 * a handle of its own on the one server where the handle placed them.
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2 (real memcached), MC_DEAD_PORT (nobody listens).
 */
#include <pthread.h>
#include <setjmp.h>
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

/* Seconds a case may run before alarm() kills it (a deadlock). */
#define CASE_CAP 20
/* Set/get rounds of each thread in check_handle(). */
#define ROUNDS 20
/* Keys per request in the multi-get cases. */
#define NKEYS 6

static const char *host, *ports[2], *dead_port;

/* The case's context and handle, and the context's own hooks. */
static struct memcache_ctxt *ctxt;
static struct memcache *mc;
static mcHashKeyFunc own_hash;
static mcServerFindFunc own_find;
static const char *label;

/* What the hooks do on this thread: re-enter, or jump on their n-th call from now. Per thread:
 * the hooks belong to the context, and other threads' calls run them too. */
static __thread volatile int reenter, depth, reentries, inner_ok, inner_set_ok, jump_in, jumps;
static __thread jmp_buf escape;
/* The index of the dead server in the handle, or -1: check_handle() marks it down first. */
static int dead_index = -1;

static void setup(const char *name, int with_dead)
{
	label = name;
	ctxt = mcMemNewCtxt(free, malloc, NULL, realloc);
	if (ctxt == NULL) {
		CHECK(0, "%s: mcMemNewCtxt", label);
		exit(1);
	}
	/* Every report reaches the handler. */
	mcm_err_filter_del(ctxt, MCM_ERR_LVL_INFO | MCM_ERR_LVL_NOTICE);
	own_hash = ctxt->mcHashKey;
	own_find = ctxt->mcServerFind;
	mc = mcm_new(ctxt);
	CHECK(mc != NULL, "%s: mcm_new", label);
	if (mc == NULL)
		exit(1);
	CHECK(mcm_server_add(ctxt, mc, host, ports[0]) == 0, "%s: add server A", label);
	CHECK(mcm_server_add(ctxt, mc, host, ports[1]) == 0, "%s: add server B", label);
	dead_index = -1;
	if (with_dead) {
		CHECK(mcm_server_add(ctxt, mc, host, dead_port) == 0, "%s: add the dead server", label);
		dead_index = 2;
	}
}

static int value_is(const char *key, const char *expect)
{
	size_t len = 0;
	char *v = mcm_aget2(ctxt, mc, K(key), &len);
	int ok = v != NULL && len == strlen(expect) && memcmp(v, expect, len) == 0;

	free(v);
	return ok;
}

static void put(const char *key, const char *val)
{
	CHECK(mcm_set(ctxt, mc, K(key), (char *)val, strlen(val), 0, 0) == 0, "%s: set %s", label, key);
}

/* The keys of the inner calls: placed on a live server (not the dead one some cases add). */
static char inner_key[64], hook_key[64];

static int server_of(const char *key);

static void choose_key(char *key, size_t size, const char *what)
{
	int i, s = -1;

	for (i = 0; i < 200; i++) {
		snprintf(key, size, "%s:%s%d", label, what, i);
		s = server_of(key);
		if (s == 0 || s == 1)
			return;
	}
	CHECK(0, "%s: no %s key on a live server", label, what);
}

/* The inner calls of every re-entering hook: a get and a set of keys of their own. */
static void inner_calls(void)
{
	depth++;
	reentries++;
	inner_ok += value_is(inner_key, "inner value");
	inner_set_ok += mcm_set(ctxt, mc, K(hook_key), "hooked", 6, 0, 0) == 0;
	depth--;
}

/* Before a re-entering case: the inner key exists, no re-entry counted yet. */
static void arm_reentry(void)
{
	choose_key(inner_key, sizeof(inner_key), "inner");
	choose_key(hook_key, sizeof(hook_key), "from-hook");
	put(inner_key, "inner value");
	reentries = inner_ok = inner_set_ok = 0;
	reenter = 1;
}

/* The same, with the inner key stored on every live server directly, so that arming makes no
 * call on the handle (which would try, and report, a dead server before the call under test). */
static int direct_set(const char *port, const char *key, const char *val);

static void arm_reentry_direct(void)
{
	choose_key(inner_key, sizeof(inner_key), "inner");
	choose_key(hook_key, sizeof(hook_key), "from-hook");
	CHECK(direct_set(ports[0], inner_key, "inner value") && direct_set(ports[1], inner_key, "inner value"),
	      "%s: store %s directly", label, inner_key);
	reentries = inner_ok = inner_set_ok = 0;
	reenter = 1;
}

/* After it: the hooks re-entered and their inner calls got the right answers. */
static void check_reentry(const char *what)
{
	reenter = 0;
	CHECK(reentries > 0, "%s: %s: the hook never ran", label, what);
	CHECK(inner_ok == reentries, "%s: %s: %d of %d inner gets right", label, what, inner_ok, reentries);
	CHECK(inner_set_ok == reentries, "%s: %s: %d of %d inner sets stored", label, what, inner_set_ok,
	      reentries);
	CHECK(value_is(hook_key, "hooked"), "%s: %s: the inner set's value", label, what);
}

/* ---- hooks ---- */

static int32_t handler_hook(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *c;
	struct memcache_err_ctxt *e;

	MCM_ERR_INIT_CTXT(c, e);
	(void)c;
	(void)e;
	if (jump_in > 0 && --jump_in == 0) {
		jumps++;
		longjmp(escape, 1);
	}
	if (reenter && depth == 0)
		inner_calls();
	return 0;
}

static uint32_t hash_hook(const void *c, const void *m, const char *key, size_t len)
{
	if (m == (const void *)mc && jump_in > 0 && --jump_in == 0) {
		jumps++;
		longjmp(escape, 1);
	}
	if (m == (const void *)mc && reenter && depth == 0)
		inner_calls();
	return own_hash(c, m, key, len);
}

static void *find_hook(const void *c, void *m, uint32_t hash)
{
	if (m == (void *)mc && jump_in > 0 && --jump_in == 0) {
		jumps++;
		longjmp(escape, 1);
	}
	if (m == (void *)mc && reenter && depth == 0)
		inner_calls();
	return own_find(c, m, hash);
}

struct cb_record {
	const char *expect;
	int calls, found_right;
};

static void reentering_cb(const struct memcache_ctxt *c, struct memcache_res *res, void *misc)
{
	struct cb_record *r = misc;
	char key[96];

	(void)c;
	r->calls++;
	r->found_right += mcm_res_found(ctxt, res) && res->bytes == strlen(r->expect) &&
	                  memcmp(res->val, r->expect, res->bytes) == 0;
	if (!reenter || depth != 0)
		return;
	inner_calls();
	/* A derived key, stored from inside the callback. */
	depth++;
	snprintf(key, sizeof(key), "derived:%.*s", (int)res->len, res->key);
	CHECK(mcm_set(ctxt, mc, K(key), (char *)r->expect, strlen(r->expect), 0, 0) == 0,
	      "%s: set %s from a fetch callback", label, key);
	depth--;
}

static void jumping_cb(const struct memcache_ctxt *c, struct memcache_res *res, void *misc)
{
	(void)c;
	(void)res;
	(void)misc;
	if (jump_in > 0 && --jump_in == 0) {
		jumps++;
		longjmp(escape, 1);
	}
}

static void restore_hooks(void)
{
	reenter = 0;
	jump_in = 0;
	ctxt->mcHashKey = own_hash;
	ctxt->mcServerFind = own_find;
}

/* ---- the handle afterwards ---- */

struct rounds {
	const char *who;
	int ok;
	int down_dead; /* first mark the dead server down, so the rounds use the live ones */
};

static void *round_trips(void *arg)
{
	struct rounds *r = arg;
	char key[96], val[96];
	int i;

	r->ok = 0;
	if (r->down_dead && dead_index >= 0)
		mcm_server_deactivate(ctxt, mc, mc->servers[dead_index]);
	for (i = 0; i < ROUNDS; i++) {
		snprintf(key, sizeof(key), "%s:%s:%d", label, r->who, i);
		snprintf(val, sizeof(val), "%s says %d", r->who, i);
		if (mcm_set(ctxt, mc, K(key), val, strlen(val), 0, 0) == 0 && value_is(key, val))
			r->ok++;
	}
	return NULL;
}

/* The server of the handle where `key` goes now, as an index, or -1. */
static int server_of(const char *key)
{
	struct memcache_server *ms = mcm_server_find(ctxt, mc, mcm_hash(ctxt, mc, K(key)));
	uint32_t i;

	for (i = 0; i < mc->num_servers; i++)
		if (mc->servers[i] == ms)
			return (int)i;
	return -1;
}

/* A value read straight from server `port` through a handle of its own. */
static int server_holds(const char *port, const char *key, const char *expect)
{
	struct memcache *direct = mc_new();
	size_t len = 0;
	char *v;
	int ok;

	if (direct == NULL || mc_server_add(direct, host, port) != 0) {
		mc_free(direct);
		return 0;
	}
	v = mc_aget2(direct, K(key), &len);
	ok = v != NULL && len == strlen(expect) && memcmp(v, expect, len) == 0;
	free(v);
	mc_free(direct);
	return ok;
}

/* Stores a value straight on server `port` through a handle of its own. */
static int direct_set(const char *port, const char *key, const char *val)
{
	struct memcache *direct = mc_new();
	int ok;

	if (direct == NULL || mc_server_add(direct, host, port) != 0) {
		mc_free(direct);
		return 0;
	}
	ok = mc_set(direct, K(key), (char *)val, strlen(val), 0, 0) == 0;
	mc_free(direct);
	return ok;
}

/* Runs `r` on a thread of its own and waits for it: true if it ran. */
static int on_other_thread(struct rounds *r)
{
	pthread_t tid;

	if (pthread_create(&tid, NULL, round_trips, r) != 0) {
		CHECK(0, "%s: pthread_create", label);
		return 0;
	}
	pthread_join(tid, NULL);
	return 1;
}

/* After a case: set/get rounds first from another thread alone (before this thread calls the
 * library again: a lock the case left held shows here, as a deadlock), then from this thread,
 * then from both at once; then a set/get on each live server whose value is then found on that
 * very server, and a multi-get. */
static void check_handle(const char *after)
{
	struct rounds mine = {"main", 0, 0}, other = {"thread", 0, 1};
	pthread_t tid;
	int started, s;

	restore_hooks();
	if (on_other_thread(&other))
		CHECK(other.ok == ROUNDS, "%s: after %s: %d of %d rounds right on another thread (first)", label,
		      after, other.ok, ROUNDS);
	round_trips(&mine);
	CHECK(mine.ok == ROUNDS, "%s: after %s: %d of %d rounds right on this thread (alone)", label, after,
	      mine.ok, ROUNDS);
	other.who = "thread2";
	started = pthread_create(&tid, NULL, round_trips, &other) == 0;
	CHECK(started, "%s: pthread_create", label);
	round_trips(&mine);
	if (started)
		pthread_join(tid, NULL);
	CHECK(mine.ok == ROUNDS, "%s: after %s: %d of %d rounds right on this thread (with another)", label, after,
	      mine.ok, ROUNDS);
	CHECK(!started || other.ok == ROUNDS, "%s: after %s: %d of %d rounds right on another thread (with this)",
	      label, after, other.ok, ROUNDS);

	for (s = 0; s < 2; s++) {
		char key[96], val[96];
		int i, placed = 0;

		for (i = 0; i < 200 && !placed; i++) {
			snprintf(key, sizeof(key), "%s:on%d:%d", label, s, i);
			placed = server_of(key) == s;
		}
		CHECK(placed, "%s: after %s: no key goes to server %d", label, after, s);
		if (!placed)
			continue;
		snprintf(val, sizeof(val), "%s on server %d after %s", label, s, after);
		put(key, val);
		CHECK(value_is(key, val), "%s: after %s: %s read back through the handle", label, after, key);
		CHECK(server_holds(ports[s], key, val), "%s: after %s: %s is on server %d", label, after, key, s);
	}

	{
		struct memcache_req *req = mcm_req_new(ctxt);
		struct memcache_res *res[3];
		char key[3][96];
		int i;

		for (i = 0; i < 3; i++) {
			snprintf(key[i], sizeof(key[i]), "%s:main:%d", label, i);
			res[i] = mcm_req_add(ctxt, req, K(key[i]));
		}
		mcm_get(ctxt, mc, req);
		for (i = 0; i < 3; i++) {
			char val[96];

			snprintf(val, sizeof(val), "main says %d", i);
			CHECK(res[i] != NULL && mcm_res_found(ctxt, res[i]) && res[i]->bytes == strlen(val) &&
			          memcmp(res[i]->val, val, res[i]->bytes) == 0,
			      "%s: after %s: multi-get of %s", label, after, key[i]);
		}
		mcm_req_free(ctxt, req);
	}
}

/* Keys "<label>:m<i>" with values "mvalue <i>" set through the handle; a request for them. */
static struct memcache_req *multi_request(struct memcache_res **res, int set_them)
{
	struct memcache_req *req = mcm_req_new(ctxt);
	char key[64], val[64];
	int i;

	for (i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "%s:m%d", label, i);
		snprintf(val, sizeof(val), "mvalue %d", i);
		if (set_them)
			put(key, val);
		res[i] = mcm_req_add(ctxt, req, K(key));
	}
	return req;
}

static void check_multi(struct memcache_res **res, const char *what)
{
	int i;

	for (i = 0; i < NKEYS; i++) {
		char val[64];

		snprintf(val, sizeof(val), "mvalue %d", i);
		CHECK(res[i] != NULL && mcm_res_found(ctxt, res[i]) && res[i]->bytes == strlen(val) &&
		          memcmp(res[i]->val, val, res[i]->bytes) == 0,
		      "%s: %s: key %d found %d with %zu bytes", label, what, i, res[i] ? mcm_res_found(ctxt, res[i]) : 0,
		      res[i] ? res[i]->bytes : 0);
	}
}

/* ---- cases ---- */

static void case_handler(void)
{
	struct memcache_req *req;
	struct memcache_res *res[NKEYS];
	char key[64], val[64];
	int rv, i, on_dead[NKEYS];

	setup("handler", 0);
	mcErrSetupCtxt(ctxt, handler_hook);
	snprintf(key, sizeof(key), "%s:existing", label);
	put(key, "first");
	arm_reentry();
	rv = mcm_add(ctxt, mc, K(key), "second", 6, 0, 0);
	CHECK(rv == 1, "%s: mcm_add of an existing key returned %d, not 1 (not stored)", label, rv);
	check_reentry("a report during mcm_add");
	CHECK(value_is(key, "first"), "%s: the existing key kept its value", label);
	check_handle("re-entry from a handler during add");
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);

	/* The same during a multi-get over A, B and a dead server: the keys the handle places on A
	 * and B are stored there directly, so the dead server is first tried by the multi-get. */
	setup("handler-dead", 1);
	mcErrSetupCtxt(ctxt, handler_hook);
	req = mcm_req_new(ctxt);
	for (i = 0; i < NKEYS; i++) {
		int s;

		snprintf(key, sizeof(key), "%s:m%d", label, i);
		snprintf(val, sizeof(val), "mvalue %d", i);
		s = server_of(key);
		on_dead[i] = s != 0 && s != 1;
		if (!on_dead[i])
			CHECK(direct_set(ports[s], key, val), "%s: set %s on server %d directly", label, key, s);
		res[i] = mcm_req_add(ctxt, req, K(key));
	}
	arm_reentry_direct();
	mcm_get(ctxt, mc, req);
	check_reentry("a report during a multi-get with a dead server");
	for (i = 0; i < NKEYS; i++) {
		snprintf(val, sizeof(val), "mvalue %d", i);
		if (on_dead[i])
			CHECK(res[i] != NULL && !mcm_res_found(ctxt, res[i]), "%s: key %d of the dead server found", label,
			      i);
		else
			CHECK(res[i] != NULL && mcm_res_found(ctxt, res[i]) && res[i]->bytes == strlen(val) &&
			          memcmp(res[i]->val, val, res[i]->bytes) == 0,
			      "%s: key %d (live server) found %d with %zu bytes", label, i,
			      res[i] ? mcm_res_found(ctxt, res[i]) : 0, res[i] ? res[i]->bytes : 0);
	}
	mcm_req_free(ctxt, req);
	/* Down for good: the rounds that follow use the live servers only. */
	mcm_server_deactivate(ctxt, mc, mc->servers[2]);
	dead_index = -1;
	check_handle("re-entry from a handler during a multi-get");
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

static void case_callback(void)
{
	struct memcache_res *res[NKEYS];
	struct memcache_req *req;
	struct cb_record rec[NKEYS];
	char val[NKEYS][64];
	int i;

	setup("callback", 0);
	req = multi_request(res, 1);
	for (i = 0; i < NKEYS; i++) {
		snprintf(val[i], sizeof(val[i]), "mvalue %d", i);
		rec[i].expect = val[i];
		rec[i].calls = rec[i].found_right = 0;
		CHECK(mcm_res_register_fetch_cb(ctxt, req, res[i], reentering_cb, &rec[i]) == 0,
		      "%s: register callback %d", label, i);
	}
	arm_reentry();
	mcm_get(ctxt, mc, req);
	check_reentry("fetch callbacks");
	check_multi(res, "the request whose callbacks re-entered");
	for (i = 0; i < NKEYS; i++) {
		char key[96], name[64];

		CHECK(rec[i].calls == 1 && rec[i].found_right == 1, "%s: callback %d: %d calls, %d right", label, i,
		      rec[i].calls, rec[i].found_right);
		snprintf(name, sizeof(name), "%s:m%d", label, i);
		snprintf(key, sizeof(key), "derived:%s", name);
		CHECK(value_is(key, val[i]), "%s: the derived key %s", label, key);
	}
	mcm_req_free(ctxt, req);
	check_handle("re-entry from fetch callbacks");
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

/* mcHashKey (`which` 'h') or mcServerFind ('f') re-entering during set, get and multi-get. */
static void case_hook(const char *name, char which)
{
	struct memcache_res *res[NKEYS];
	struct memcache_req *req;
	char key[64];

	setup(name, 0);
	snprintf(key, sizeof(key), "%s:outer", label);
	put(key, "before");
	req = multi_request(res, 1);
	if (which == 'h')
		ctxt->mcHashKey = hash_hook;
	else
		ctxt->mcServerFind = find_hook;

	arm_reentry();
	CHECK(mcm_set(ctxt, mc, K(key), "outer value", 11, 0, 0) == 0, "%s: the outer set", label);
	check_reentry("set");
	arm_reentry();
	CHECK(value_is(key, "outer value"), "%s: the outer get", label);
	check_reentry("get");
	arm_reentry();
	mcm_get(ctxt, mc, req);
	check_reentry("multi-get");
	check_multi(res, "the outer multi-get");
	mcm_req_free(ctxt, req);
	check_handle(which == 'h' ? "re-entry from mcHashKey" : "re-entry from mcServerFind");
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

/* mcHashKey ('h') or mcServerFind ('f') leaving by longjmp on its n-th call, for n = 1, 2, 3,
 * out of a set, a get and a multi-get. */
static void case_hook_jump(const char *name, char which)
{
	struct memcache_res *res[NKEYS];
	struct memcache_req *volatile req;
	char key[64], after[64];
	volatile int n, op, expected = 0;

	setup(name, 0);
	snprintf(key, sizeof(key), "%s:outer", label);
	for (n = 1; n <= 3; n++) {
		for (op = 0; op < 3; op++) {
			/* The multi-get's request is made with the hooks off. */
			req = op == 2 ? multi_request(res, 1) : NULL;
			if (which == 'h')
				ctxt->mcHashKey = hash_hook;
			else
				ctxt->mcServerFind = find_hook;
			jump_in = n;
			if (setjmp(escape) == 0) {
				if (op == 0)
					mcm_set(ctxt, mc, K(key), "jumped", 6, 0, 0);
				else if (op == 1)
					free(mcm_aget2(ctxt, mc, K(key), NULL));
				else
					mcm_get(ctxt, mc, req);
			}
			/* A single-key call may finish before the hook's n-th call: no jump then. */
			expected += jump_in == 0;
			snprintf(after, sizeof(after), "a jump on call %d of op %d", n, op);
			check_handle(after);
			/* The request is left as the jump left it (its memory is not released). */
		}
	}
	CHECK(jumps == expected && jumps >= 3, "%s: %d jumps, %d expected", label, jumps, expected);
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

static void case_cb_jump(void)
{
	struct memcache_res *res[NKEYS];
	struct memcache_req *req;
	int n, i;

	setup("cb-jump", 0);
	for (n = 1; n <= 3; n++) {
		req = multi_request(res, 1);
		for (i = 0; i < NKEYS; i++)
			mcm_res_register_fetch_cb(ctxt, req, res[i], jumping_cb, NULL);
		jump_in = n;
		if (setjmp(escape) == 0)
			mcm_get(ctxt, mc, req);
		CHECK(jump_in == 0, "%s: callback %d did not jump", label, n);
		check_handle("a fetch callback's jump");
	}
	CHECK(jumps == 3, "%s: %d jumps", label, jumps);
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

static void case_handler_jump(void)
{
	struct memcache_res *res[NKEYS];
	struct memcache_req *req;
	int i, round;

	setup("handler-jump", 1);
	mcErrSetupCtxt(ctxt, handler_hook);
	for (round = 0; round < 3; round++) {
		/* The dead server is retried after an activation: its report comes again. */
		mcm_server_activate_all(ctxt, mc);
		req = mcm_req_new(ctxt);
		for (i = 0; i < NKEYS; i++) {
			char key[64];

			snprintf(key, sizeof(key), "%s:m%d", label, i);
			res[i] = mcm_req_add(ctxt, req, K(key));
		}
		jump_in = 1;
		if (setjmp(escape) == 0)
			mcm_get(ctxt, mc, req);
		CHECK(jump_in == 0, "%s: round %d: no report to jump from", label, round);
		jump_in = 0;
		/* check_handle() marks the dead server down from another thread first. */
		check_handle("a handler's jump out of a multi-get");
		/* The request is fetched again, normally now, with values set. */
		for (i = 0; i < NKEYS; i++) {
			char key[64], val[64];

			snprintf(key, sizeof(key), "%s:m%d", label, i);
			snprintf(val, sizeof(val), "mvalue %d", i);
			put(key, val);
		}
		mcm_get(ctxt, mc, req);
		check_multi(res, "the same request fetched again after the jump");
		mcm_req_free(ctxt, req);
	}
	CHECK(jumps >= 1, "%s: the handler never jumped (%d)", label, jumps);
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

/* A re-entered call must not hand the handle to other threads while the outer call still runs:
 * here a second thread does set/get rounds of its own keys without pause while this thread runs
 * multi-gets whose mcHashKey hook (`which` 'h') or fetch callbacks ('c') re-enter the handle.
 * Every value, on both threads, must be right. */
#define RACE_ITERATIONS 300
#define RACE_SECONDS 4

static volatile int race_stop;

struct racer {
	int rounds, wrong;
};

static void *race_rounds(void *arg)
{
	struct racer *r = arg;
	char key[96], val[96];
	int i;

	for (i = 0; i < 100000 && !race_stop; i++) {
		snprintf(key, sizeof(key), "%s:racer:%d", label, i % 16);
		snprintf(val, sizeof(val), "racer value %d", i);
		if (mcm_set(ctxt, mc, K(key), val, strlen(val), 0, 0) != 0 || !value_is(key, val))
			r->wrong++;
		r->rounds++;
	}
	return NULL;
}

static void case_race(const char *name, char which)
{
	struct memcache_res *res[NKEYS];
	struct memcache_req *req;
	struct cb_record rec[NKEYS];
	struct racer other = {0, 0};
	char val[NKEYS][64];
	pthread_t tid;
	time_t until;
	int i, it, wrong = 0, started;

	setup(name, 0);
	/* The values, set with the hooks off; each iteration makes a fresh request (a request's keys
	 * are hashed once). */
	mcm_req_free(ctxt, multi_request(res, 1));
	for (i = 0; i < NKEYS; i++) {
		snprintf(val[i], sizeof(val[i]), "mvalue %d", i);
		rec[i].expect = val[i];
	}
	arm_reentry();
	reenter = 0;
	if (which == 'h')
		ctxt->mcHashKey = hash_hook;
	race_stop = 0;
	started = pthread_create(&tid, NULL, race_rounds, &other) == 0;
	CHECK(started, "%s: pthread_create", label);
	until = time(NULL) + RACE_SECONDS;
	for (it = 0; it < RACE_ITERATIONS && time(NULL) < until; it++) {
		int before = reentries;

		reenter = 1;
		req = multi_request(res, 0);
		for (i = 0; i < NKEYS && which == 'c'; i++) {
			rec[i].calls = rec[i].found_right = 0;
			mcm_res_register_fetch_cb(ctxt, req, res[i], reentering_cb, &rec[i]);
		}
		mcm_get(ctxt, mc, req);
		reenter = 0;
		for (i = 0; i < NKEYS; i++)
			wrong += !(res[i] != NULL && mcm_res_found(ctxt, res[i]) && res[i]->bytes == strlen(val[i]) &&
			           memcmp(res[i]->val, val[i], res[i]->bytes) == 0);
		mcm_req_free(ctxt, req);
		CHECK(reentries > before, "%s: iteration %d: the hook did not re-enter", label, it);
	}
	race_stop = 1;
	if (started)
		pthread_join(tid, NULL);
	CHECK(wrong == 0, "%s: %d wrong results in %d multi-gets whose hooks re-entered while another thread used "
	      "the handle", label, wrong, it);
	CHECK(inner_ok == reentries && inner_set_ok == reentries, "%s: inner calls: %d gets and %d sets right of %d",
	      label, inner_ok, inner_set_ok, reentries);
	CHECK(other.wrong == 0, "%s: the other thread saw %d wrong results in %d rounds", label, other.wrong,
	      other.rounds);
	check_handle("a race with re-entered calls");
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
}

static void run_race_hash(void)
{
	case_race("race-hash", 'h');
}

static void run_race_cb(void)
{
	case_race("race-cb", 'c');
}

static void run_hash(void)
{
	case_hook("hash", 'h');
}

static void run_find(void)
{
	case_hook("find", 'f');
}

static void run_hash_jump(void)
{
	case_hook_jump("hash-jump", 'h');
}

static void run_find_jump(void)
{
	case_hook_jump("find-jump", 'f');
}

int main(void)
{
	struct child_case cases[] = {
		{"handler", case_handler, 0},     {"callback", case_callback, 0},   {"hash", run_hash, 0},
		{"find", run_find, 0},            {"hash-jump", run_hash_jump, 0}, {"find-jump", run_find_jump, 0},
		{"cb-jump", case_cb_jump, 0},     {"handler-jump", case_handler_jump, 0},
		{"race-hash", run_race_hash, 0},  {"race-cb", run_race_cb, 0},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);

	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	dead_port = need_env("MC_DEAD_PORT");

	run_cases(cases, n, CASE_CAP, "deadlocked");
	return CHECK_DONE();
}
