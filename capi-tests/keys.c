/*
 * Key validation (spec D2): invalid keys are refused by every entry point with the documented
 * return values and one MCM_ERR_PROTO report at ERR each, and nothing reaches the server. The
 * invalid-key part talks only to MC_PORT; the harness compares that server's counters and
 * bytes_read before and after the run. The accepted-key part (250 bytes, bytes 0x80-0xFF, a hook
 * that rewrites a key) uses MC_PORT2.
 *
 * Also: a client mcKeyValid hook that rejects returns its own value; a hook that accepts a key
 * with a space does not bypass the built-in check; a hook that makes a key invalid is caught.
 *
 * Environment: MC_HOST, MC_PORT (must see no traffic), MC_PORT2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

struct bad_key {
	const char *label;
	const char *key;
	size_t len;
};

static char long_key[252];

static struct bad_key bad_keys[] = {
	{"space", "has space", 9},
	{"crlf injection", "k\r\nset injected 0 0 1", 21},
	{"tab", "tab\tkey", 7},
	{"newline", "nl\n", 3},
	{"control 0x01", "ctl\x01", 4},
	{"DEL 0x7f", "del\x7f", 4},
	{"NUL inside", "nul\0key", 7},
	{"empty", "", 0},
	{"251 bytes", long_key, 251},
};
#define NBAD (sizeof(bad_keys) / sizeof(bad_keys[0]))

/* Each call must produce exactly one PROTO report at ERR. */
static void expect_one_proto(const char *what, const char *label)
{
	CHECK(report_count == 1 && recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_ERR) == 1,
	      "%s(%s): %d reports, %d PROTO/ERR (last code %u sev %d)", what, label, report_count,
	      recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_ERR), recorder_last() ? (unsigned)recorder_last()->errcode : 0,
	      recorder_last() ? recorder_last()->severity : 0);
	CHECK(recorder_last() == NULL || recorder_last()->msg[0] != '\0', "%s(%s): the report names no reason", what,
	      label);
	recorder_reset();
}

static void check_bad_keys(struct memcache *mc, struct memcache_ctxt *own, struct memcache *own_mc)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	size_t i;

	for (i = 0; i < NBAD; i++) {
		char key[300];
		const char *label = bad_keys[i].label;
		size_t len = bad_keys[i].len, retlen;
		struct memcache_req *req;
		int rc;
		u_int32_t n;
		void *v;

		memcpy(key, bad_keys[i].key, len);
		key[len] = '\0';
		recorder_reset();

		rc = mc_set(mc, key, len, "v", 1, 0, 0);
		CHECK(rc == -9, "mc_set(%s) = %d, expected -9", label, rc);
		expect_one_proto("mc_set", label);
		rc = mc_add(mc, key, len, "v", 1, 0, 0);
		CHECK(rc == -9, "mc_add(%s) = %d", label, rc);
		expect_one_proto("mc_add", label);
		rc = mc_replace(mc, key, len, "v", 1, 0, 0);
		CHECK(rc == -9, "mc_replace(%s) = %d", label, rc);
		expect_one_proto("mc_replace", label);
		rc = mc_delete(mc, key, len, 0);
		CHECK(rc == -9, "mc_delete(%s) = %d", label, rc);
		expect_one_proto("mc_delete", label);

		g->errnum = 12345;
		n = mc_incr(mc, key, len, 1);
		CHECK(n == 0 && g->errnum == EINVAL, "mc_incr(%s) = %u errnum %u", label, (unsigned)n,
		      (unsigned)g->errnum);
		expect_one_proto("mc_incr", label);
		g->errnum = 12345;
		n = mc_decr(mc, key, len, 1);
		CHECK(n == 0 && g->errnum == EINVAL, "mc_decr(%s) = %u errnum %u", label, (unsigned)n,
		      (unsigned)g->errnum);
		expect_one_proto("mc_decr", label);

		v = mc_aget(mc, key, len);
		CHECK(v == NULL, "mc_aget(%s) not NULL", label);
		free(v);
		expect_one_proto("mc_aget", label);
		retlen = 777;
		v = mc_aget2(mc, key, len, &retlen);
		CHECK(v == NULL && retlen == 0, "mc_aget2(%s): %p retlen %lu", label, v, (unsigned long)retlen);
		free(v);
		expect_one_proto("mc_aget2", label);

		req = mc_req_new();
		CHECK(mc_req_add(req, key, len) == NULL, "mc_req_add(%s) not NULL", label);
		expect_one_proto("mc_req_add", label);
		CHECK(mc_req_add_ref(req, key, len) == NULL, "mc_req_add_ref(%s) not NULL", label);
		expect_one_proto("mc_req_add_ref", label);
		CHECK(req->num_keys == 0 && TAILQ_FIRST(&req->query) == NULL, "request after refused %s keys", label);
		mc_get(mc, req); /* nothing to do */
		mc_req_free(req);
		recorder_reset();

		/* The same through the mcm_ API on an own context. */
		rc = mcm_set(own, own_mc, key, len, "v", 1, 0, 0);
		CHECK(rc == -9, "mcm_set(%s) = %d", label, rc);
		expect_one_proto("mcm_set", label);
		own->errnum = 12345;
		n = mcm_incr(own, own_mc, key, len, 1);
		CHECK(n == 0 && own->errnum == EINVAL, "mcm_incr(%s) errnum %u", label, (unsigned)own->errnum);
		expect_one_proto("mcm_incr", label);
		retlen = 777;
		CHECK(mcm_aget2(own, own_mc, key, len, &retlen) == NULL && retlen == 0, "mcm_aget2(%s)", label);
		expect_one_proto("mcm_aget2", label);
		req = mcm_req_new(own);
		CHECK(mcm_req_add(own, req, key, len) == NULL, "mcm_req_add(%s)", label);
		expect_one_proto("mcm_req_add", label);
		mcm_req_free(own, req);
		recorder_reset();
	}
}

/* A result whose key was made invalid after mc_req_add is not sent: neither ATTEMPTED nor FOUND. */
static void check_mutated_request(struct memcache *mc)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *a = mc_req_add(req, "okkey1", 6);
	struct memcache_res *b = mc_req_add(req, "okkey2", 6);

	CHECK(a != NULL && b != NULL, "%s", "valid keys accepted");
	if (a == NULL || b == NULL) {
		mc_req_free(req);
		return;
	}
	a->key[2] = ' ';
	b->key[2] = '\n';
	recorder_reset();
	mc_get(mc, req);
	CHECK(!mc_res_attempted(a) && !mc_res_found(a) && !mc_res_attempted(b) && !mc_res_found(b),
	      "mutated keys: _flags 0x%02x 0x%02x", (unsigned char)a->_flags, (unsigned char)b->_flags);
	CHECK(recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_ERR) >= 1, "%s", "mutated keys reported");
	/* Single-key path too. */
	mc_res_free(req, b);
	mc_get(mc, req);
	CHECK(!mc_res_attempted(a) && !mc_res_found(a), "%s", "mutated single key not attempted");
	mc_req_free(req);
	recorder_reset();
}

/* ---- client hooks ---- */

static int32_t hook_reject(const void *ctxt, char *key, size_t len)
{
	(void)ctxt;
	return (len >= 3 && memcmp(key, "rej", 3) == 0) ? 17 : 0;
}

static int32_t hook_accept_all(const void *ctxt, char *key, size_t len)
{
	(void)ctxt;
	(void)key;
	(void)len;
	return 0;
}

/* Rewrites '_' into ' ' (making the key invalid) and ' ' into '-' (making it valid). */
static int32_t hook_rewrite(const void *ctxt, char *key, size_t len)
{
	size_t i;

	(void)ctxt;
	for (i = 0; i < len; i++) {
		if (key[i] == '_')
			key[i] = ' ';
		else if (key[i] == ' ')
			key[i] = '-';
	}
	return 0;
}

static void check_hooks_refusing(struct memcache *mc)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	mcKeyValidFunc saved = g->mcKeyValid;
	char k1[] = "rejected";
	char k2[] = "a b";
	char k3[] = "x_y";
	int rc;

	g->mcKeyValid = hook_reject;
	rc = mc_set(mc, k1, strlen(k1), "v", 1, 0, 0);
	CHECK(rc == 17, "a rejecting hook's value is returned: %d", rc);
	rc = mc_delete(mc, k1, strlen(k1), 0);
	CHECK(rc == 17, "mc_delete with a rejecting hook: %d", rc);
	rc = mc_set(mc, k2, strlen(k2), "v", 1, 0, 0);
	CHECK(rc == -9, "a hook that accepts \"a b\" does not bypass the built-in check: %d", rc);

	g->mcKeyValid = hook_accept_all;
	rc = mc_add(mc, k2, strlen(k2), "v", 1, 0, 0);
	CHECK(rc == -9, "accept-all hook, key with a space: %d", rc);
	CHECK(mc_aget(mc, k2, strlen(k2)) == NULL, "%s", "accept-all hook, aget with a space");

	/* The built-in check runs after the hook, on the rewritten key. */
	g->mcKeyValid = hook_rewrite;
	rc = mc_set(mc, k3, strlen(k3), "v", 1, 0, 0);
	CHECK(rc == -9, "a hook that rewrites the key into an invalid one: %d", rc);

	g->mcKeyValid = NULL;
	rc = mc_set(mc, k2, strlen(k2), "v", 1, 0, 0);
	CHECK(rc == -9, "no hook at all (NULL), key with a space: %d", rc);
	g->mcKeyValid = saved;
	recorder_reset();
}

/* ---- keys that are accepted (on MC_PORT2) ---- */

static void check_accepted(struct memcache *mc)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	mcKeyValidFunc saved = g->mcKeyValid;
	char key250[251], high[] = "caf\xc3\xa9-\x80\xff", spaced[] = "a b c";
	size_t len = 0;
	char *v;

	memset(key250, 'k', 250);
	key250[250] = '\0';
	recorder_reset();
	CHECK(mc_set(mc, key250, 250, "long", 4, 0, 0) == 0, "%s", "a 250-byte key is accepted");
	v = mc_aget2(mc, key250, 250, &len);
	CHECK(v != NULL && len == 4 && strcmp(v, "long") == 0, "%s", "and stored");
	free(v);
	CHECK(mc_set(mc, high, strlen(high), "hi", 2, 0, 0) == 0, "%s", "bytes 0x80-0xFF are accepted");
	v = mc_aget(mc, high, strlen(high));
	CHECK(v != NULL && strcmp(v, "hi") == 0, "%s", "and stored");
	free(v);
	CHECK(mc_set(mc, "k", 1, "one", 3, 0, 0) == 0, "%s", "a 1-byte key is accepted");
	CHECK(report_count == 0, "valid keys produced %d reports", report_count);

	/* A hook may rewrite a key into a valid one; the rewritten key is what is stored. */
	g->mcKeyValid = hook_rewrite;
	CHECK(mc_set(mc, spaced, strlen(spaced), "rw", 2, 0, 0) == 0, "%s", "set with a rewriting hook");
	g->mcKeyValid = saved;
	v = mc_aget(mc, "a-b-c", 5);
	CHECK(v != NULL && strcmp(v, "rw") == 0, "%s", "the rewritten key a-b-c was stored");
	free(v);
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *quiet_port = need_env("MC_PORT");
	const char *busy_port = need_env("MC_PORT2");
	struct memcache *quiet = mc_new(), *busy = mc_new(), *own_mc;
	struct memcache_ctxt *own = mcMemNewCtxt(free, malloc, malloc, realloc);
	mcErrFunc saved;

	memset(long_key, 'x', 251);
	mcErrGet(&saved);
	mcErrSetup(recorder_handler);
	CHECK(own != NULL, "%s", "mcMemNewCtxt");
	if (own == NULL)
		return CHECK_DONE();
	mcErrSetupCtxt(own, recorder_handler);
	own_mc = mcm_new(own);
	CHECK(mc_server_add(quiet, host, quiet_port) == 0 && mcm_server_add(own, own_mc, host, quiet_port) == 0,
	      "%s", "add the quiet server");
	CHECK(mc_server_add(busy, host, busy_port) == 0, "%s", "add the busy server");

	check_bad_keys(quiet, own, own_mc);
	check_mutated_request(quiet);
	check_hooks_refusing(quiet);
	check_accepted(busy);

	mc_free(quiet);
	mc_free(busy);
	mcm_free(own, own_mc);
	mcMemFreeCtxt(own);
	mcErrSetup(saved);
	return CHECK_DONE();
}
