/*
 * The key under which mcadmin publishes a domain's server list, "__memcache_domain__:<domain>",
 * is reserved: every entry point refuses it like an invalid key (the documented return value and
 * one MCM_ERR_PROTO report at ERR naming the reservation), so an application can neither
 * overwrite nor read a record by accident, and nothing reaches the server. The refused part talks
 * only to MC_PORT; the harness compares that server's counters and bytes_read before and after.
 *
 * Keys that merely resemble the prefix are ordinary keys: they are stored and read back on
 * MC_PORT2, which also shows that the handle works.
 *
 * Environment: MC_HOST, MC_PORT (must see no traffic), MC_PORT2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

static const char *const reserved[] = {
	"__memcache_domain__:default",
	"__memcache_domain__:web",
	"__memcache_domain__:",
};
#define NRESERVED (sizeof(reserved) / sizeof(reserved[0]))

static const char *const lookalikes[] = {
	"__memcache_domain__",
	"__memcache_domain_:web",
	"__MEMCACHE_DOMAIN__:web",
	"x__memcache_domain__:web",
};
#define NLOOKALIKES (sizeof(lookalikes) / sizeof(lookalikes[0]))

/* Exactly one PROTO report at ERR whose message names the reservation. */
static void expect_refusal(const char *what, const char *key)
{
	const struct report *last = recorder_last();

	CHECK(report_count == 1 && recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_ERR) == 1,
	      "%s(%s): %d reports, %d PROTO/ERR", what, key, report_count,
	      recorder_count(MCM_ERR_PROTO, MCM_ERR_LVL_ERR));
	CHECK(last != NULL && strstr(last->msg, "reserved") != NULL, "%s(%s): the report does not say why: %s",
	      what, key, last != NULL ? last->msg : "(none)");
	recorder_reset();
}

static void check_refused(struct memcache *mc, const char *text)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	size_t len = strlen(text), retlen;
	struct memcache_req *req;
	char key[128];
	u_int32_t n;
	void *v;
	int rc;

	memcpy(key, text, len + 1);
	recorder_reset();

	rc = mc_set(mc, key, len, "evil", 4, 0, 0);
	CHECK(rc == -9, "mc_set(%s) = %d, expected -9", key, rc);
	expect_refusal("mc_set", key);
	rc = mc_add(mc, key, len, "evil", 4, 0, 0);
	CHECK(rc == -9, "mc_add(%s) = %d", key, rc);
	expect_refusal("mc_add", key);
	rc = mc_replace(mc, key, len, "evil", 4, 0, 0);
	CHECK(rc == -9, "mc_replace(%s) = %d", key, rc);
	expect_refusal("mc_replace", key);
	rc = mc_delete(mc, key, len, 0);
	CHECK(rc == -9, "mc_delete(%s) = %d", key, rc);
	expect_refusal("mc_delete", key);
	g->errnum = 12345;
	n = mc_incr(mc, key, len, 1);
	CHECK(n == 0 && g->errnum == EINVAL, "mc_incr(%s) = %u errnum %u", key, (unsigned)n, (unsigned)g->errnum);
	expect_refusal("mc_incr", key);

	v = mc_aget(mc, key, len);
	CHECK(v == NULL, "mc_aget(%s) not NULL", key);
	free(v);
	expect_refusal("mc_aget", key);
	retlen = 777;
	v = mc_aget2(mc, key, len, &retlen);
	CHECK(v == NULL && retlen == 0, "mc_aget2(%s): %p retlen %lu", key, v, (unsigned long)retlen);
	free(v);
	expect_refusal("mc_aget2", key);

	req = mc_req_new();
	CHECK(mc_req_add(req, key, len) == NULL, "mc_req_add(%s) not NULL", key);
	expect_refusal("mc_req_add", key);
	CHECK(mc_req_add_ref(req, key, len) == NULL, "mc_req_add_ref(%s) not NULL", key);
	expect_refusal("mc_req_add_ref", key);
	CHECK(req->num_keys == 0, "request holds %u keys after refusals", (unsigned)req->num_keys);
	mc_get(mc, req); /* nothing to send */
	mc_req_free(req);

	/* The default validator a client may call itself says "invalid, at position 1". */
	CHECK(g->mcKeyValid != NULL && g->mcKeyValid(g, key, len) == 1, "mcKeyValid(%s) = %d", key,
	      g->mcKeyValid != NULL ? g->mcKeyValid(g, key, len) : -1);
	recorder_reset();
}

static void check_lookalikes(struct memcache *mc)
{
	size_t i, len, retlen;
	char key[128];
	void *v;

	for (i = 0; i < NLOOKALIKES; i++) {
		len = strlen(lookalikes[i]);
		memcpy(key, lookalikes[i], len + 1);
		recorder_reset();
		CHECK(mc_set(mc, key, len, "fine", 4, 0, 0) == 0, "mc_set(%s) refused", key);
		v = mc_aget2(mc, key, len, &retlen);
		CHECK(v != NULL && retlen == 4 && memcmp(v, "fine", 4) == 0, "mc_aget2(%s) did not read it back", key);
		free(v);
		CHECK(report_count == 0, "%s: %d reports", key, report_count);
	}
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	struct memcache *quiet = mc_new(), *busy = mc_new();
	size_t i;

	mcErrSetup(recorder_handler);
	CHECK(mc_server_add(quiet, host, need_env("MC_PORT")) == 0, "%s", "add the quiet server");
	CHECK(mc_server_add(busy, host, need_env("MC_PORT2")) == 0, "%s", "add the busy server");
	for (i = 0; i < NRESERVED; i++)
		check_refused(quiet, reserved[i]);
	check_lookalikes(busy);
	mc_free(quiet);
	mc_free(busy);
	return CHECK_DONE();
}
