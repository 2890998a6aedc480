/*
 * Server lists (spec §7): mc_server_add/add2/add3/add4/add5 and the address forms of D3, the
 * unresolvable-host rule (-4, not added), mc->num_servers / servers[] / server_list kept in step,
 * mc_server_new + mc_server_add3 (Ruby binding style), timeouts (§7.2, D1), the activate /
 * deactivate state machine (§7.3), disconnects, and one server added several times (weights
 * emulation).
 *
 * Environment: MC_HOST, MC_PORT, MC_SOCK (a memcached listening on that unix socket).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

#define K(s) (char *)(s), strlen(s)

static const char *host;
static const char *port;
static const char *sock;
static mcErrFunc default_handler;

/* servers[] (NULL-terminated, num_servers long) and server_list hold the same servers in the
 * same order. */
static void check_consistent(const struct memcache *mc, const char *label)
{
	struct memcache_server *ms;
	u_int32_t i = 0;
	int same = 1;

	if (mc->num_servers == 0) {
		CHECK(TAILQ_FIRST(&mc->server_list) == NULL, "%s: empty list", label);
		CHECK(mc->servers == NULL || mc->servers[0] == NULL, "%s: empty servers[]", label);
		return;
	}
	CHECK(mc->servers != NULL, "%s: servers[] is NULL", label);
	if (mc->servers == NULL)
		return;
	TAILQ_FOREACH(ms, &mc->server_list, entries) {
		same &= i < mc->num_servers && mc->servers[i] == ms;
		i++;
	}
	CHECK(same && i == mc->num_servers && mc->servers[mc->num_servers] == NULL,
	      "%s: list of %u vs num_servers %u", label, (unsigned)i, (unsigned)mc->num_servers);
	/* The raw walk one binding does. */
	i = 0;
	for (ms = mc->server_list.tqh_first; ms != NULL; ms = ms->entries.tqe_next)
		i++;
	CHECK(i == mc->num_servers, "%s: raw tqe_next walk saw %u", label, (unsigned)i);
}

static struct memcache_server *last_server(const struct memcache *mc)
{
	return mc->num_servers == 0 ? NULL : mc->servers[mc->num_servers - 1];
}

static int server_is(const struct memcache_server *ms, const char *h, const char *p)
{
	return ms != NULL && ms->hostname != NULL && ms->port != NULL && strcmp(ms->hostname, h) == 0 &&
	       strcmp(ms->port, p) == 0;
}

#define EXPECT_LAST(mc, h, p)                                                                     \
	CHECK(server_is(last_server(mc), (h), (p)), "last server is %s:%s, expected %s:%s",          \
	      last_server(mc) && last_server(mc)->hostname ? last_server(mc)->hostname : "-",       \
	      last_server(mc) && last_server(mc)->port ? last_server(mc)->port : "-", (h), (p))

static void check_round_trip(struct memcache *mc, const char *key, const char *label)
{
	size_t len = 0;
	char *v;

	CHECK(mc_set(mc, K(key), "rt", 2, 0, 0) == 0, "%s: set", label);
	v = mc_aget2(mc, K(key), &len);
	CHECK(v != NULL && len == 2 && strcmp(v, "rt") == 0, "%s: get", label);
	free(v);
}

static void check_add_forms(void)
{
	struct memcache *mc = mc_new();
	char hostbuf[64], portbuf[64], hp[128];
	u_int32_t before;

	CHECK(mc != NULL && mc->num_servers == 0 && mc->servers == NULL, "%s", "fresh handle");
	CHECK(mc->tv.tv_sec == 2 && mc->tv.tv_usec == 600, "default tv {%ld, %ld}", (long)mc->tv.tv_sec,
	      (long)mc->tv.tv_usec);
	check_consistent(mc, "empty");

	CHECK(mc_server_add(mc, host, port) == 0, "%s", "mc_server_add");
	EXPECT_LAST(mc, host, port);
	CHECK(mc->servers[0]->active == 't' && mc->servers[0]->fd == -1, "new server: active %c fd %d",
	      mc->servers[0]->active, mc->servers[0]->fd);
	CHECK(mc->servers[0]->tv.tv_sec == 2 && mc->servers[0]->tv.tv_usec == 600, "%s",
	      "server tv copied from mc->tv");
	check_consistent(mc, "after add");

	/* mc_timeout stores microseconds and only affects servers added later (§7.2). */
	mc_timeout(mc, 0, 5000);
	CHECK(mc->tv.tv_sec == 0 && mc->tv.tv_usec == 5000, "mc_timeout stored {%ld, %ld}",
	      (long)mc->tv.tv_sec, (long)mc->tv.tv_usec);
	CHECK(mc->servers[0]->tv.tv_sec == 2, "%s", "mc_timeout does not touch existing servers");

	/* add2: lengths, not NUL terminators. */
	snprintf(hostbuf, sizeof(hostbuf), "%sGARBAGE", host);
	snprintf(portbuf, sizeof(portbuf), "%s999", port);
	CHECK(mc_server_add2(mc, hostbuf, strlen(host), portbuf, strlen(port)) == 0, "%s", "mc_server_add2");
	EXPECT_LAST(mc, host, port);
	CHECK(last_server(mc)->tv.tv_sec == 0 && last_server(mc)->tv.tv_usec == 5000, "%s",
	      "a server added after mc_timeout gets the new tv");
	mc_timeout(mc, 2, 600);
	CHECK(mc_server_add2(mc, NULL, 0, NULL, 0) == 0, "%s", "mc_server_add2(NULL, 0, NULL, 0)");
	EXPECT_LAST(mc, "localhost", "11211");
	CHECK(mcm_server_add2(mc_global_ctxt(), mc, hostbuf, strlen(host), NULL, 0) == 0, "%s",
	      "mcm_server_add2 without port");
	EXPECT_LAST(mc, host, "11211");

	/* add4 / add5 forms. */
	snprintf(hp, sizeof(hp), "%s:%s", host, port);
	CHECK(mc_server_add4(mc, hp) == 0, "%s", "mc_server_add4 host:port");
	EXPECT_LAST(mc, host, port);
	CHECK(mc_server_add4(mc, (mc_const char *)host) == 0, "%s", "add4 without port (D3)");
	EXPECT_LAST(mc, host, "11211");
	snprintf(hp, sizeof(hp), ":%s", port);
	CHECK(mc_server_add4(mc, hp) == 0, "%s", "add4 :port");
	EXPECT_LAST(mc, "localhost", port);
	snprintf(hp, sizeof(hp), "%s:", host);
	CHECK(mc_server_add4(mc, hp) == 0, "%s", "add4 host:");
	EXPECT_LAST(mc, host, "11211");
	snprintf(hp, sizeof(hp), "%s:%sjunk", host, port);
	CHECK(mc_server_add5(mc, hp, strlen(host) + 1 + strlen(port)) == 0, "%s", "add5 bounded");
	EXPECT_LAST(mc, host, port);
	CHECK(mcm_server_add5(mc_global_ctxt(), mc, NULL, 0) == 0, "%s", "mcm_server_add5(NULL, 0)");
	EXPECT_LAST(mc, "localhost", "11211");
	CHECK(mc_server_add4(mc, NULL) == 0, "%s", "mc_server_add4(NULL)");
	EXPECT_LAST(mc, "localhost", "11211");
	CHECK(mc_server_add(mc, NULL, NULL) == 0, "%s", "mc_server_add(NULL, NULL)");
	EXPECT_LAST(mc, "localhost", "11211");
	CHECK(mcm_server_add4(mc_global_ctxt(), mc, "[::1]:11299") == 0, "%s", "add4 [::1]:port");
	EXPECT_LAST(mc, "::1", "11299");
	CHECK(mc_server_add4(mc, "[::1]") == 0, "%s", "add4 [::1]");
	EXPECT_LAST(mc, "::1", "11211");
	CHECK(mc_server_add4(mc, "::1") == 0, "%s", "add4 bare ::1");
	EXPECT_LAST(mc, "::1", "11211");
	CHECK(mc_server_add4(mc, "fe80::1:2:3") == 0, "%s", "add4 bare fe80::1:2:3");
	EXPECT_LAST(mc, "fe80::1:2:3", "11211");
	check_consistent(mc, "after add4 forms");

	/* Unresolvable: -4, a WARN report, nothing added (§7.1). */
	before = mc->num_servers;
	recorder_reset();
	CHECK(mc_server_add(mc, "no-such-host.invalid", port) == -4, "%s", "unresolvable host -> -4");
	CHECK(mc_server_add4(mc, "no-such-host.invalid:11211") == -4, "%s", "add4 unresolvable -> -4");
	CHECK(mc->num_servers == before, "num_servers %u after failed adds, expected %u",
	      (unsigned)mc->num_servers, (unsigned)before);
	CHECK(recorder_count(MCM_ERR_NET_HOST, MCM_ERR_LVL_WARN) == 2, "NET_HOST/WARN reported %d times",
	      recorder_count(MCM_ERR_NET_HOST, MCM_ERR_LVL_WARN));
	check_consistent(mc, "after failed adds");
	mc_free(mc);
	mc_free(NULL); /* a no-op (§5.3) */
	mcm_free(mc_global_ctxt(), NULL);
}

static void check_unix_socket(void)
{
	struct memcache *mc = mc_new();
	char hp[512];

	/* D3: a path is stored whole with port "0"; a trailing :digits is ignored. */
	CHECK(mc_server_add4(mc, (mc_const char *)sock) == 0, "%s", "add4 unix path");
	EXPECT_LAST(mc, sock, "0");
	check_round_trip(mc, "unix:key1", "unix socket via add4");
	mc_free(mc);

	mc = mc_new();
	snprintf(hp, sizeof(hp), "%s:0", sock);
	CHECK(mc_server_add4(mc, hp) == 0, "%s", "add4 path:0");
	EXPECT_LAST(mc, sock, "0");
	snprintf(hp, sizeof(hp), "%s:11211", sock);
	CHECK(mc_server_add4(mc, hp) == 0, "%s", "add4 path:11211");
	EXPECT_LAST(mc, sock, "0");
	mc_free(mc);

	mc = mc_new();
	CHECK(mc_server_add(mc, sock, NULL) == 0, "%s", "mc_server_add(path, NULL)");
	EXPECT_LAST(mc, sock, "0");
	check_round_trip(mc, "unix:key2", "unix socket via mc_server_add");
	mc_free(mc);
}

static void check_add3(void)
{
	struct memcache *mc = mc_new();
	struct memcache_server *ms = mc_server_new(), *bad, *loose;

	CHECK(ms != NULL && ms->active == 't' && ms->fd == -1 && ms->hostname == NULL,
	      "%s", "mc_server_new: active 't', fd -1");
	ms->hostname = mc_strdup(host);
	ms->port = mc_strdup(port);
	CHECK(mc_server_add3(mc, ms) == 0, "%s", "mc_server_add3");
	CHECK(mc->num_servers == 1 && mc->servers[0] == ms && TAILQ_FIRST(&mc->server_list) == ms,
	      "%s", "add3 links the caller's server");
	CHECK(ms->tv.tv_sec == 2 && ms->tv.tv_usec == 600, "%s", "add3 copies mc->tv into a zero tv");
	check_round_trip(mc, "add3:key", "server added with add3");

	/* A server with its own timeout keeps it. */
	{
		struct memcache_server *timed = mc_server_new();
		timed->hostname = mc_strdup(host);
		timed->port = mc_strdup(port);
		timed->tv.tv_sec = 7;
		timed->tv.tv_usec = 0;
		CHECK(mc_server_add3(mc, timed) == 0 && timed->tv.tv_sec == 7 && timed->tv.tv_usec == 0, "%s",
		      "add3 keeps a non-zero ms->tv");
	}

	/* A failed add3 frees the server (no leak in the valgrind run, no double free here). */
	bad = mc_server_new();
	bad->hostname = mc_strdup("no-such-host.invalid");
	bad->port = mc_strdup("11211");
	CHECK(mc_server_add3(mc, bad) == -4, "%s", "add3 unresolvable -> -4");
	CHECK(mc->num_servers == 2, "%s", "failed add3 adds nothing");

	/* A server that was never added is freed by its owner. */
	loose = mcm_server_new(mc_global_ctxt());
	loose->hostname = mcm_strdup(mc_global_ctxt(), host);
	mc_server_free(loose);
	mc_free(mc);
}

static void check_timeouts(void)
{
	struct memcache *mc = mc_new();
	struct memcache_server *ms;

	mc_server_add(mc, host, port);
	ms = mc->servers[0];
	recorder_reset();
	/* D1: on an unconnected server the timeout is stored and 1 returned, without a report. */
	CHECK(mc_server_timeout(ms, 1, 250000) == 1, "%s", "mc_server_timeout unconnected -> 1");
	CHECK(ms->tv.tv_sec == 1 && ms->tv.tv_usec == 250000, "%s", "timeout stored in ms->tv");
	CHECK(report_count == 0, "mc_server_timeout reported %d times", report_count);
	check_round_trip(mc, "timeout:key", "after mc_server_timeout");
	CHECK(mc_server_timeout(ms, 3, 0) == 1, "%s", "mc_server_timeout connected -> 1");
	CHECK(mcm_server_timeout(mc_global_ctxt(), ms, 2, 5) == 1 && ms->tv.tv_sec == 2 && ms->tv.tv_usec == 5,
	      "%s", "mcm_server_timeout");
	check_round_trip(mc, "timeout:key", "after timeout change");
	/* mc_timeout after adding has no effect on the server (clients do this). */
	mc_timeout(mc, 5, 0);
	CHECK(ms->tv.tv_sec == 2, "%s", "mc_timeout after add leaves ms->tv");
	mc_free(mc);
}

static void check_states(void)
{
	struct memcache *mc = mc_new();
	struct memcache_server *ms;
	int rc;

	mc_server_add(mc, host, port);
	ms = mc->servers[0];
	recorder_reset();
	rc = mc_server_activate(mc, ms);
	CHECK(rc == -2 && ms->active == 't', "activate on 't' -> %d (state %c), expected -2", rc, ms->active);
	CHECK(recorder_count(MCM_ERR_ASSERT, MCM_ERR_LVL_INFO) == 1, "%s", "activate on 't' reported ASSERT/INFO");
	mc_server_deactivate(mc, ms);
	CHECK(ms->active == 'd', "deactivate unconnected 't' -> %c", ms->active);
	/* A 'd' server is skipped: nothing to send to. */
	CHECK(mc_set(mc, K("state:key"), "x", 1, 0, 0) == -1, "%s", "set with the only server down -> -1");
	rc = mc_server_activate(mc, ms);
	CHECK(rc == 0 && ms->active == 'u', "activate on 'd' -> %d (state %c)", rc, ms->active);
	recorder_reset();
	rc = mcm_server_activate(mc_global_ctxt(), mc, ms);
	CHECK(rc == -3 && ms->active == 'u', "activate on 'u' -> %d", rc);
	CHECK(report_count == 1 && recorder_last()->severity == MCM_ERR_LVL_INFO, "activate on 'u': %d reports",
	      report_count);
	check_round_trip(mc, "state:key", "server 'u'");

	/* Deactivating a server with an open socket: 'd', then the disconnect re-initialises it to
	 * 't' (§7.3 net effect). */
	mc_server_deactivate(mc, ms);
	CHECK(ms->active == 't' && ms->fd == -1, "deactivate connected server -> %c (fd %d), expected 't'",
	      ms->active, ms->fd);
	check_round_trip(mc, "state:key2", "after deactivating a connected server");

	/* activate_all brings every 'd' server back. */
	mc_server_disconnect(ms);
	mc_server_deactivate(mc, ms);
	CHECK(ms->active == 'd', "%s", "deactivate after disconnect -> 'd'");
	CHECK(mc_server_activate_all(mc) == 0 && ms->active == 'u', "activate_all -> state %c", ms->active);
	CHECK(mcm_server_activate_all(mc_global_ctxt(), mc) == 0, "%s", "mcm_server_activate_all");

	/* 'n' (no host): -1 after an ASSERT report; D1: the default handler does not abort even for
	 * FATAL, so run this one with the default handler. */
	{
		mcErrFunc mine;
		mcErrGet(&mine);
		mcErrSetup(default_handler);
		ms->active = 'n';
		rc = mc_server_activate(mc, ms);
		CHECK(rc == -1, "activate on 'n' -> %d, expected -1", rc);
		ms->active = 't';
		mcErrSetup(mine);
	}

	/* Disconnects. */
	check_round_trip(mc, "state:key3", "before disconnect");
	mc_server_disconnect(ms);
	CHECK(ms->fd == -1 && ms->active == 't', "after disconnect: fd %d active %c", ms->fd, ms->active);
	check_round_trip(mc, "state:key4", "reconnect after mc_server_disconnect");
	mcm_server_disconnect(mc_global_ctxt(), ms);
	check_round_trip(mc, "state:key5", "reconnect after mcm_server_disconnect");
	mc_server_disconnect_all(mc);
	CHECK(ms->fd == -1 && ms->active == 't', "%s", "after disconnect_all");
	check_round_trip(mc, "state:key6", "reconnect after mc_server_disconnect_all");
	mcm_server_disconnect_all(mc_global_ctxt(), mc);
	mc_free(mc);
}

static void check_weights(void)
{
	struct memcache *mc = mc_new();
	char hp[128], key[32];
	int i, ok = 0;

	snprintf(hp, sizeof(hp), "%s:%s", host, port);
	for (i = 0; i < 3; i++)
		CHECK(mc_server_add4(mc, hp) == 0, "weight emulation add %d", i);
	CHECK(mc->num_servers == 3, "num_servers %u", (unsigned)mc->num_servers);
	check_consistent(mc, "same server three times");
	for (i = 0; i < 60; i++) {
		size_t len = 0;
		char *v;

		snprintf(key, sizeof(key), "w:%d", i);
		if (mc_set(mc, K(key), key, strlen(key), 0, 0) != 0)
			continue;
		v = mc_aget2(mc, K(key), &len);
		ok += v != NULL && len == strlen(key) && memcmp(v, key, len) == 0;
		free(v);
	}
	CHECK(ok == 60, "%d of 60 keys round-tripped through a server added three times", ok);
	mc_free(mc);
}

int main(void)
{
	host = need_env("MC_HOST");
	port = need_env("MC_PORT");
	sock = need_env("MC_SOCK");
	mcErrGet(&default_handler);
	mcErrSetup(recorder_handler);

	check_add_forms();
	check_unix_socket();
	check_add3();
	check_timeouts();
	check_states();
	check_weights();

	mcErrSetup(default_handler);
	return CHECK_DONE();
}
