/*
 * Fork safety without ritual (issue 7): the parent creates one handle, adds three servers and
 * uses it (so its connections exist), then forks children in waves of 50. Every child uses the
 * inherited handle at once, with no special call, while the parent keeps using the same handle:
 * each child does 50 set/get pairs (and multi-key mc_get) of its own keys "c<pid>-<i>" with
 * values only it writes, and exits 1 if it ever reads a value that is not its own, 2 if an
 * operation fails; a child still running after 10 s is killed and counted as hung. The children
 * of a wave wait on a pipe and start together.
 *
 * MC_FORK_CASE=single-threaded: 200 children in four waves; the parent's main thread runs its
 * own set/get loop on the handle while the children run.
 *
 * MC_FORK_CASE=threaded: no thread is joined before a fork. One wave of 50 while two more
 * parent threads hammer the same handle, so a fork may find another thread inside a call; then
 * one wave of 10 forked at a moment made certain: one parent thread is inside a call on the
 * handle (held in its context's value allocator, which runs with the handle locked, while the
 * reply is read; the program's hash and finder hooks run unlocked) and another is waiting for
 * the handle.
 *
 * Afterwards, in both cases, the parent's own connections are intact: its descriptors are
 * unchanged, its values read back, and the servers' total_connections grew by exactly the
 * children's connections (plus this program's stats probes): the parent never reconnected.
 *
 * Environment: MC_HOST, MC_PORT, MC_PORT2, MC_PORT3, MC_FORK_CASE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "resilience.h"

#define NSERV 3
#define CHILDREN 200
#define WAVE 50
#define CHILD_OPS 50
#define HELPERS 2
#define THREADED_WAVES 1
#define HELD_WAVE 10
/* Seconds a wave may take; the children normally need well under one. */
#define HANG_LIMIT 10
/* Exit statuses of a child: 100 + the number of servers it connected to on success. */
#define CHILD_WRONG_VALUE 1
#define CHILD_FAILED_OP 2
#define CHILD_OK 100

static const char *host, *ports[NSERV];
static struct memcache *mc;
static volatile int helpers_stop;
static int parent_bad, parent_ops, helper_bad, helper_ops;
/* The children's outcomes. */
static int children, wrong, failed, hung;
static long child_conns;

struct helper {
	int id;
	int ops;
	int bad;
};

/* `stats` over a raw connection: the value of `name` (summed over nothing else), -1 on error. */
static long raw_stat(const char *port, const char *name)
{
	struct sockaddr_in addr;
	char buf[8192], *at;
	size_t used = 0;
	long value = -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(port));
	inet_pton(AF_INET, host, &addr.sin_addr);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || write(fd, "stats\r\n", 7) != 7) {
		close(fd);
		return -1;
	}
	while (used < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		if (strstr(buf, "END\r\n") != NULL)
			break;
	}
	buf[used] = '\0';
	close(fd);
	snprintf(buf + used, sizeof(buf) - used, "%s", ""); /* keep buf terminated */
	{
		char pattern[96];

		snprintf(pattern, sizeof(pattern), "STAT %s ", name);
		at = strstr(buf, pattern);
		if (at != NULL)
			value = atol(at + strlen(pattern));
	}
	return value;
}

static long total_connections(void)
{
	long sum = 0;
	int i;

	for (i = 0; i < NSERV; i++) {
		long n = raw_stat(ports[i], "total_connections");

		if (n < 0)
			return -1;
		sum += n;
	}
	return sum;
}

/* One set/get of a key only `who` writes; 0 ok, CHILD_FAILED_OP, or CHILD_WRONG_VALUE. */
static int own_round_trip(struct memcache *h, const char *who, int i, int gen)
{
	char key[64], val[96];
	size_t len = 0;
	char *v;
	int rc = 0;

	snprintf(key, sizeof(key), "%s-%d", who, i);
	snprintf(val, sizeof(val), "%s-value-%d-%d", who, i, gen);
	if (mc_set(h, K(key), val, strlen(val), 0, 0) != 0)
		return CHILD_FAILED_OP;
	v = mc_aget2(h, K(key), &len);
	if (v == NULL)
		rc = CHILD_FAILED_OP;
	else if (len != strlen(val) || memcmp(v, val, len) != 0)
		rc = CHILD_WRONG_VALUE;
	free(v);
	return rc;
}

/* Reads back keys first..last of `who` in one mc_get; each must hold its generation-`gen` value. */
static int own_multi_get(struct memcache *h, const char *who, int first, int last, int gen)
{
	struct memcache_req *req = mc_req_new();
	struct memcache_res *res[CHILD_OPS];
	char key[64], val[96];
	int i, rc = 0;

	for (i = first; i <= last; i++) {
		snprintf(key, sizeof(key), "%s-%d", who, i);
		res[i - first] = mc_req_add(req, K(key));
	}
	mc_get(h, req);
	for (i = first; i <= last; i++) {
		struct memcache_res *r = res[i - first];

		snprintf(val, sizeof(val), "%s-value-%d-%d", who, i, gen);
		if (!mc_res_found(r))
			rc = rc ? rc : CHILD_FAILED_OP;
		else if (r->bytes != strlen(val) || memcmp(r->val, val, r->bytes) != 0)
			rc = CHILD_WRONG_VALUE;
	}
	mc_req_free(req);
	return rc;
}

static void child(int start_fd, int wave)
{
	char who[32], c;
	int i, rc, worst = 0, conns = 0;

	/* All children of the wave start together, when the parent closes the pipe. */
	while (read(start_fd, &c, 1) < 0 && errno == EINTR)
		;
	snprintf(who, sizeof(who), "c%d", (int)getpid());
	for (i = 0; i < CHILD_OPS; i++) {
		rc = own_round_trip(mc, who, i, wave);
		if (rc == CHILD_WRONG_VALUE || (rc && !worst))
			worst = rc;
		if (i % 10 == 9) {
			rc = own_multi_get(mc, who, i - 9, i, wave);
			if (rc == CHILD_WRONG_VALUE || (rc && !worst))
				worst = rc;
		}
	}
	for (i = 0; i < NSERV; i++)
		conns += mc->servers[i]->fd >= 0;
	_exit(worst ? worst : CHILD_OK + conns);
}

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	char who[16];
	int i = 0;

	snprintf(who, sizeof(who), "h%d", h->id);
	while (!helpers_stop) {
		h->bad += own_round_trip(mc, who, i % 100, i / 100) != 0;
		h->ops++;
		i++;
	}
	return NULL;
}

/* Forks one wave of `size` children; `ready` (if not NULL) runs once they are all forked and
 * before they start. The main thread keeps using the handle until every child has exited. */
static void run_wave(int wave, int size, void (*ready)(void))
{
	pid_t pids[WAVE];
	int fds[2], i, left = size, round = 0, hung_before = hung;
	double deadline;

	CHECK(pipe(fds) == 0, "%s", "pipe");
	for (i = 0; i < size; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(fds[1]);
			child(fds[0], wave);
		}
		CHECK(pids[i] > 0, "fork: %s", strerror(errno));
		/* The parent uses the handle between forks too (not while another thread is held in
		 * the handle: then it would wait for it). */
		if (ready == NULL) {
			parent_bad += own_round_trip(mc, "p", i, wave) != 0;
			parent_ops++;
		}
	}
	if (ready != NULL)
		ready();
	close(fds[0]);
	close(fds[1]);
	deadline = now() + HANG_LIMIT;
	while (left > 0) {
		parent_bad += own_round_trip(mc, "p", round % 100, 1000 + wave * 100000 + round) != 0;
		parent_ops++;
		round++;
		for (i = 0; i < size; i++) {
			int status;

			if (pids[i] <= 0 || waitpid(pids[i], &status, WNOHANG) != pids[i])
				continue;
			pids[i] = 0;
			left--;
			children++;
			if (WIFEXITED(status) && WEXITSTATUS(status) >= CHILD_OK)
				child_conns += WEXITSTATUS(status) - CHILD_OK;
			else if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_WRONG_VALUE)
				wrong++;
			else
				failed++;
		}
		if (now() > deadline) {
			for (i = 0; i < size; i++)
				if (pids[i] > 0) {
					kill(pids[i], SIGKILL);
					waitpid(pids[i], NULL, 0);
					children++;
					hung++;
					left--;
				}
		}
	}
	if (hung > hung_before)
		fprintf(stderr, "forks: wave %d: %d of %d children hung\n", wave, hung - hung_before, size);
}

static void start_helpers(pthread_t *tids, struct helper *helpers)
{
	int i;

	helpers_stop = 0;
	for (i = 0; i < HELPERS; i++) {
		helpers[i].id = i;
		helpers[i].ops = helpers[i].bad = 0;
		CHECK(pthread_create(&tids[i], NULL, helper_main, &helpers[i]) == 0, "%s", "pthread_create");
	}
}

static void stop_helpers(pthread_t *tids, struct helper *helpers)
{
	int i;

	helpers_stop = 1;
	for (i = 0; i < HELPERS; i++) {
		pthread_join(tids[i], NULL);
		helper_bad += helpers[i].bad;
		helper_ops += helpers[i].ops;
	}
}

/* ---- A fork while one thread is inside a call on the handle and another waits for it ---- */

static volatile int hook_armed, hook_entered, hook_release, waiter_started, waiter_done;

/* The held thread's value allocator: the library calls it with the handle locked, in the
 * middle of reading the reply; the first call once armed stays until released. */
static void *holding_malloc(size_t size)
{
	if (hook_armed && !hook_entered) {
		hook_entered = 1;
		while (!hook_release)
			usleep(1000);
	}
	return malloc(size);
}

static void *held_main(void *arg)
{
	struct memcache_ctxt *ctxt = arg;
	size_t len = 0;
	char *v;

	hook_armed = 1;
	v = mcm_aget2(ctxt, mc, K("p-held"), &len);
	free(v);
	return NULL;
}

static void *waiter_main(void *arg)
{
	(void)arg;
	waiter_started = 1;
	helper_bad += own_round_trip(mc, "w", 0, 0) != 0;
	waiter_done = 1;
	return NULL;
}

static pthread_t held_tid, waiter_tid;

/* Called by run_wave once the children are forked: lets the parent's threads go on. */
static void release_held(void)
{
	hook_release = 1;
	pthread_join(held_tid, NULL);
	pthread_join(waiter_tid, NULL);
}

static void fork_while_held(int wave)
{
	struct memcache_ctxt *ctxt = mcMemNewCtxt(free, malloc, holding_malloc, realloc);
	double deadline = now() + 10;

	CHECK(ctxt != NULL, "%s", "mcMemNewCtxt");
	if (ctxt == NULL)
		return;
	/* A value to read, so the held call allocates while it holds the handle. */
	CHECK(mc_set(mc, K("p-held"), "held", 4, 0, 0) == 0, "%s", "set p-held");
	CHECK(pthread_create(&held_tid, NULL, held_main, ctxt) == 0, "%s", "pthread_create (held)");
	while (!hook_entered && now() < deadline)
		usleep(1000);
	CHECK(hook_entered, "%s", "the held thread did not enter the handle");
	CHECK(pthread_create(&waiter_tid, NULL, waiter_main, NULL) == 0, "%s", "pthread_create (waiter)");
	while (!waiter_started && now() < deadline)
		usleep(1000);
	/* Time for the waiter to reach the handle's lock and sleep on it. */
	usleep(50000);
	CHECK(!waiter_done, "%s", "the waiter got through a handle held by another thread");
	run_wave(wave, HELD_WAVE, release_held);
	mcMemFreeCtxt(ctxt);
}

int main(void)
{
	pthread_t tids[HELPERS];
	struct helper helpers[HELPERS];
	int fds_before[NSERV], i, wave, threaded;
	long conns_before, conns_after;
	double start;

	host = need_env("MC_HOST");
	ports[0] = need_env("MC_PORT");
	ports[1] = need_env("MC_PORT2");
	ports[2] = need_env("MC_PORT3");
	threaded = strcmp(need_env("MC_FORK_CASE"), "threaded") == 0;

	mc = mc_new();
	for (i = 0; i < NSERV; i++)
		CHECK(mc_server_add(mc, host, ports[i]) == 0, "add server %d", i);
	/* Enough keys that the parent is connected to every server before the first fork. */
	for (i = 0; i < 100; i++)
		parent_bad += own_round_trip(mc, "p", i, 0) != 0;
	for (i = 0; i < NSERV; i++) {
		fds_before[i] = mc->servers[i]->fd;
		CHECK(fds_before[i] >= 0, "the parent is not connected to server %d", i);
	}
	conns_before = total_connections();
	CHECK(conns_before > 0, "%s", "stats before the forks");

	start = now();
	if (!threaded) {
		for (wave = 1; wave <= CHILDREN / WAVE; wave++)
			run_wave(wave, WAVE, NULL);
	} else {
		start_helpers(tids, helpers);
		for (wave = 1; wave <= THREADED_WAVES; wave++)
			run_wave(wave, WAVE, NULL);
		stop_helpers(tids, helpers);
		fork_while_held(wave);
	}
	fprintf(stderr,
		"forks (%s): %d children x %d set/get in %.2f s, beside %d set/get of the parent's main thread and %d of "
		"its other threads on the same handle\n",
		threaded ? "threaded" : "single-threaded", children, CHILD_OPS, now() - start, parent_ops, helper_ops);

	CHECK(wrong == 0, "%d children read a value that was not their own", wrong);
	CHECK(failed == 0, "%d children had a failed operation", failed);
	CHECK(hung == 0, "%d of %d children did not finish within %d s (deadlocked on the handle after fork?)", hung,
	      children, HANG_LIMIT);
	CHECK(parent_bad == 0, "%d of the parent's %d operations failed or read a wrong value", parent_bad, parent_ops);
	CHECK(helper_bad == 0, "%d of the parent threads' %d operations failed or read a wrong value", helper_bad,
	      helper_ops);

	/* The parent's connections: same descriptors, still in step, never replaced. */
	for (i = 0; i < NSERV; i++)
		CHECK(mc->servers[i]->fd == fds_before[i], "server %d: descriptor %d, was %d", i, mc->servers[i]->fd,
		      fds_before[i]);
	for (i = 0; i < 100; i++)
		parent_bad += own_round_trip(mc, "p", i, 7) != 0;
	CHECK(parent_bad == 0, "%s", "the parent's connections after the children");
	conns_after = total_connections();
	/* Only from children that exited normally; + NSERV: this second probe's own connections. */
	if (hung == 0 && failed == 0)
		CHECK(conns_after - conns_before == child_conns + NSERV,
		      "total_connections grew by %ld, expected %ld (children) + %d (probe): the parent reconnected",
		      conns_after - conns_before, child_conns, NSERV);
	CHECK(child_conns >= (children - hung - failed) * 2, "the children made only %ld connections", child_conns);
	mc_free(mc);
	return CHECK_DONE();
}
