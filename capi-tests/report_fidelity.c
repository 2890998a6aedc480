/*
 * Error reports read like 1.4's (issue 11, spec §5.2 and §6): `funcname` is the name of the C
 * function the program called (never a Rust path), `errnum` carries the errno of a failed
 * connect, read or write, and a key refused before anything is sent keeps its 1.4 code
 * (MCM_ERR_PROTO at ERR, D2) but is not described as a protocol error.
 *
 * The faults are made here, on loopback: a port nobody listens on (connect refused), a socket
 * that listens but never answers (read timeout), a server thread that resets the connection
 * after reading a request (read error), and one that resets it while a large value is still
 * being written (write error).
 *
 * Environment: MC_HOST, MC_PORT (a real memcached). Prints nothing to stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

#define K(s) (char *)(s), strlen(s)

/* A loopback listening socket on a free port; its port goes to *port_out. */
static int listen_loopback(char *port_out, size_t len)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		fprintf(stderr, "listen_loopback: %s\n", strerror(errno));
		exit(2);
	}
	snprintf(port_out, len, "%u", (unsigned)ntohs(sa.sin_port));
	return fd;
}

/* A port that was free a moment ago and has nobody listening now. */
static void closed_port(char *port_out, size_t len)
{
	close(listen_loopback(port_out, len));
}

/* Closes `fd` so that the peer sees a reset (RST), not an orderly end. */
static void reset_close(int fd)
{
	struct linger l = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static struct memcache *handle_for(const char *hostport)
{
	struct memcache *mc = mc_new();

	CHECK(mc_server_add4(mc, hostport) == 0, "add %s", hostport);
	return mc;
}

/* A server thread: accepts one connection, reads once (the start of a request), resets it. */
struct resetter {
	int lfd;
	pthread_t thread;
};

static void *reset_after_reading(void *arg)
{
	struct resetter *r = arg;
	char buf[4096];
	int fd = accept(r->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	(void)read(fd, buf, sizeof(buf));
	reset_close(fd);
	return NULL;
}

/* Starts a resetting server and returns a handle that uses it. */
static struct memcache *resetting_server(struct resetter *r)
{
	char hp[64], p[16];

	r->lfd = listen_loopback(p, sizeof(p));
	pthread_create(&r->thread, NULL, reset_after_reading, r);
	snprintf(hp, sizeof(hp), "127.0.0.1:%s", p);
	return handle_for(hp);
}

static void resetting_server_done(struct resetter *r, struct memcache *mc)
{
	pthread_join(r->thread, NULL);
	mc_free(mc);
	close(r->lfd);
}

/* The first recorded report with this code, or NULL. */
static const struct report *find(u_int32_t code)
{
	int i;

	for (i = 0; i < report_count && i < RECORDER_MAX; i++)
		if (reports[i].errcode == code)
			return &reports[i];
	return NULL;
}

/* Every recorded report names `want` and no Rust path. */
static void expect_funcname(const char *label, const char *want)
{
	int i;

	CHECK(report_count > 0, "%s: no report", label);
	for (i = 0; i < report_count && i < RECORDER_MAX; i++) {
		CHECK(strcmp(reports[i].funcname, want) == 0, "%s: report %d (code %u) names %s(), not %s()",
		      label, i, reports[i].errcode, reports[i].funcname, want);
		CHECK(strstr(reports[i].funcname, "::") == NULL, "%s: a Rust path: %s", label,
		      reports[i].funcname);
	}
}

static void funcnames(const char *host, const char *port)
{
	char hp[128], dead[16];
	struct memcache *mc;
	struct memcache_req *req;
	size_t len;
	char *v;

	/* Every operation on a server that refuses connections names the function called. */
	closed_port(dead, sizeof(dead));
	snprintf(hp, sizeof(hp), "127.0.0.1:%s", dead);
	mc = handle_for(hp);

	recorder_reset();
	CHECK(mc_set(mc, K("k"), "v", 1, 0, 0) < 0, "set on a dead server fails");
	expect_funcname("mc_set", "mcm_set");

	recorder_reset();
	mc_server_activate_all(mc);
	v = mc_aget2(mc, K("k"), &len);
	CHECK(v == NULL, "aget2 on a dead server");
	expect_funcname("mc_aget2", "mcm_aget2");

	recorder_reset();
	mc_server_activate_all(mc);
	req = mc_req_new();
	mc_req_add(req, K("k"));
	mc_get(mc, req);
	mc_req_free(req);
	expect_funcname("mc_get", "mcm_get");

	recorder_reset();
	mc_server_activate_all(mc);
	CHECK(mc_incr(mc, K("n"), 1) == 0, "incr on a dead server");
	expect_funcname("mc_incr", "mcm_incr");

	recorder_reset();
	mc_server_activate_all(mc);
	CHECK(mc_delete(mc, K("k"), 0) < 0, "delete on a dead server");
	expect_funcname("mc_delete", "mcm_delete");
	mc_free(mc);

	/* A bad key, on a live server. */
	snprintf(hp, sizeof(hp), "%s:%s", host, port);
	mc = handle_for(hp);
	recorder_reset();
	CHECK(mc_add(mc, K("a b"), "v", 1, 0, 0) == -9, "bad key refused");
	expect_funcname("mc_add", "mcm_add");

	/* Adding servers: a shared-domain handle refuses explicit adds (-6), reported. */
	{
		struct memcache *shared = mc_new2("fidelity");

		CHECK(shared != NULL, "mc_new2");
		recorder_reset();
		CHECK(mc_server_add4(shared, hp) == -6, "add4 to a domain handle refused");
		expect_funcname("mc_server_add4", "mcm_server_add4");
		recorder_reset();
		CHECK(mc_server_add(shared, host, port) == -6, "add to a domain handle refused");
		expect_funcname("mc_server_add", "mcm_server_add");
		recorder_reset();
		CHECK(mc_server_add5(shared, hp, strlen(hp)) == -6, "add5 to a domain handle refused");
		expect_funcname("mc_server_add5", "mcm_server_add5");
		mc_free(shared);
	}
	mc_free(mc);
}

static void key_refusal(const char *host, const char *port)
{
	char hp[128];
	struct memcache *mc;
	const struct report *r;
	size_t len = 99;

	snprintf(hp, sizeof(hp), "%s:%s", host, port);
	mc = handle_for(hp);
	recorder_reset();
	CHECK(mc_aget2(mc, K("has space"), &len) == NULL && len == 0, "bad key: NULL, length 0");
	r = find(MCM_ERR_PROTO);
	CHECK(r != NULL, "a key refusal keeps 1.4's code MCM_ERR_PROTO (D2)");
	if (r != NULL) {
		CHECK(r->severity == MCM_ERR_LVL_ERR, "at ERR, got %d", r->severity);
		CHECK(strstr(r->errstr, "protocol") == NULL, "not called a protocol error: \"%s\"", r->errstr);
		CHECK(strstr(r->errstr, "key") != NULL, "described as a key problem: \"%s\"", r->errstr);
		CHECK(r->errnum == 0, "no errno for a refusal: %u", r->errnum);
		CHECK(strcmp(r->funcname, "mcm_aget2") == 0, "funcname %s", r->funcname);
		/* Handlers print "errstr: errmsg": the message gives the reason, not the description
		 * again ("invalid key: invalid key: ..." before). */
		CHECK(r->msg[0] != '\0' && strstr(r->msg, r->errstr) == NULL,
		      "the message does not repeat the description: \"%s: %s\"", r->errstr, r->msg);
	}
	{
		char last[256];
		const char *once;

		CHECK(mc_last_error(mc, last, sizeof(last)) == MCM_ERR_PROTO, "mc_last_error: %s", last);
		once = strstr(last, "invalid key");
		CHECK(once != NULL && strstr(once + 1, "invalid key") == NULL,
		      "mc_last_error says \"invalid key\" once: \"%s\"", last);
	}
	/* A real protocol error from the server keeps the protocol description. */
	CHECK(mc_set(mc, K("text"), "abc", 3, 0, 0) == 0, "set a text value");
	recorder_reset();
	(void)mc_incr(mc, K("text"), 1);
	r = find(MCM_ERR_PROTO);
	CHECK(r != NULL && strstr(r->errstr, "protocol") != NULL,
	      "a server's CLIENT_ERROR is still a protocol error: \"%s\"", r ? r->errstr : "(none)");
	mc_free(mc);
}

static void errnums(void)
{
	char hp[128], p[16];
	struct memcache *mc;
	const struct report *r;
	struct resetter rs;
	int lfd;
	size_t big = 32u << 20;
	char *value;

	/* connect(2) refused: ECONNREFUSED on the connect report and the one after it. */
	closed_port(p, sizeof(p));
	snprintf(hp, sizeof(hp), "127.0.0.1:%s", p);
	mc = handle_for(hp);
	recorder_reset();
	CHECK(mc_set(mc, K("k"), "v", 1, 0, 0) < 0, "set to a refused port");
	r = find(MCM_ERR_SYS_CONNECT);
	CHECK(r != NULL && r->errnum == ECONNREFUSED, "connect report errnum %u, want ECONNREFUSED",
	      r ? r->errnum : 0);
	r = find(MCM_ERR_NET_CONNECT);
	CHECK(r != NULL && r->errnum == ECONNREFUSED, "'unable to connect' errnum %u, want ECONNREFUSED",
	      r ? r->errnum : 0);
	mc_free(mc);

	/* A read that times out: a socket that accepts (backlog) but never answers. */
	lfd = listen_loopback(p, sizeof(p));
	snprintf(hp, sizeof(hp), "127.0.0.1:%s", p);
	mc = handle_for(hp);
	mc_server_timeout(mc->servers[0], 0, 200000);
	recorder_reset();
	CHECK(mc_set(mc, K("k"), "v", 1, 0, 0) != 0, "set to a silent server");
	r = find(MCM_ERR_TIMEOUT);
	CHECK(r != NULL && r->errnum == ETIMEDOUT, "timeout errnum %u, want ETIMEDOUT", r ? r->errnum : 0);
	mc_free(mc);
	close(lfd);

	/* A read that fails: the server reads the request, then resets the connection. */
	mc = resetting_server(&rs);
	recorder_reset();
	CHECK(mc_aget(mc, K("k")) == NULL, "get from a server that resets");
	resetting_server_done(&rs, mc);
	r = find(MCM_ERR_SYS_READ);
	CHECK(r != NULL && r->errnum == ECONNRESET, "read report errnum %u, want ECONNRESET",
	      r ? r->errnum : 0);

	/* A write that fails: the server resets while a 32 MiB value is still being written. */
	mc = resetting_server(&rs);
	value = calloc(1, big);
	recorder_reset();
	CHECK(mc_set(mc, K("big"), value, big, 0, 0) != 0, "set to a server that resets");
	resetting_server_done(&rs, mc);
	r = find(MCM_ERR_MC_SEND_CMD);
	CHECK(r != NULL && (r->errnum == ECONNRESET || r->errnum == EPIPE),
	      "write report errnum %u, want ECONNRESET or EPIPE", r ? r->errnum : 0);
	free(value);
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *port = need_env("MC_PORT");

	mcErrSetup(recorder_handler);
	funcnames(host, port);
	key_refusal(host, port);
	errnums();
	return CHECK_DONE();
}
