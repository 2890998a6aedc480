/*
 * TLS and text-protocol authentication from C (issue 17): one handle, one server, the settings
 * the environment names, then a set and a get of one key. Prints to stderr one line
 * "set=RC get=VALUE" (VALUE "(null)" when the get found nothing) per process, after the
 * library's own reports; a forked child (MC_FORK) does the same on the handle it inherited and
 * prints "child set=RC get=VALUE". Exits 2 when a setting call fails (its report says why),
 * else 0: the harness reads the lines and the reports.
 *
 * Environment: MC_SERVER (as given to mc_server_add4, e.g. "tls://127.0.0.1:PORT"; unset, the
 * handle follows the domain $MEMCACHE_DOMAIN), and
 * optionally MC_TLS_ALL, MC_TLS_CA, MC_TLS_CERT, MC_TLS_KEY, MC_TLS_INSECURE, MC_AUTH_USER with
 * MC_AUTH_PASS, MC_AUTH_FILE, MC_TIMEOUT_MS (default 1000), MC_FORK, MC_THREADS (that many
 * threads then share the handle, each setting and reading its own keys 200 times; the line
 * "threads ok=N bad=M" counts the reads that returned what the thread wrote).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memcache.h>

static void setting(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "setting %s failed: %d\n", what, rc);
		exit(2);
	}
}

static void set_and_get(struct memcache *mc, const char *who)
{
	char value[64];
	char *got;
	int rc;

	snprintf(value, sizeof(value), "value-%ld", (long)getpid());
	rc = mc_set(mc, "tls-key", strlen("tls-key"), value, strlen(value), 0, 0);
	got = mc_aget(mc, "tls-key", strlen("tls-key"));
	fprintf(stderr, "%sset=%d get=%s\n", who, rc, got != NULL ? got : "(null)");
	free(got);
}

#define ROUNDS 200

static int thread_ok, thread_bad;

/* One thread's own keys on the shared handle: every read must return this thread's write. */
static void *worker(void *arg)
{
	struct memcache *mc = arg;
	char key[64], value[64];
	char *got;
	int i, ok = 0, bad = 0;

	for (i = 0; i < ROUNDS; i++) {
		snprintf(key, sizeof(key), "t-%lu-%d", (unsigned long)pthread_self(), i % 7);
		snprintf(value, sizeof(value), "v-%d-%lu", i, (unsigned long)pthread_self());
		mc_set(mc, key, strlen(key), value, strlen(value), 0, 0);
		got = mc_aget(mc, key, strlen(key));
		if (got != NULL && strcmp(got, value) == 0)
			ok++;
		else
			bad++;
		free(got);
	}
	__sync_fetch_and_add(&thread_ok, ok);
	__sync_fetch_and_add(&thread_bad, bad);
	return NULL;
}

int main(void)
{
	const char *server = getenv("MC_SERVER");
	const char *timeout = getenv("MC_TIMEOUT_MS");
	long ms = timeout != NULL ? atol(timeout) : 1000;
	struct memcache *mc;
	pid_t child;
	int status;

	if (server == NULL && getenv("MEMCACHE_DOMAIN") == NULL) {
		fprintf(stderr, "neither MC_SERVER nor MEMCACHE_DOMAIN is set\n");
		return 2;
	}
	mc = mc_new();
	mc_timeout(mc, ms / 1000, (ms % 1000) * 1000);
	if (getenv("MC_TLS_ALL") != NULL)
		setting(mc_tls(mc, 1), "mc_tls");
	if (getenv("MC_TLS_CA") != NULL)
		setting(mc_tls_ca(mc, getenv("MC_TLS_CA")), "mc_tls_ca");
	if (getenv("MC_TLS_CERT") != NULL)
		setting(mc_tls_cert(mc, getenv("MC_TLS_CERT"), getenv("MC_TLS_KEY")), "mc_tls_cert");
	if (getenv("MC_TLS_INSECURE") != NULL)
		setting(mc_tls_insecure(mc, 1), "mc_tls_insecure");
	if (getenv("MC_AUTH_USER") != NULL)
		setting(mc_auth(mc, getenv("MC_AUTH_USER"), getenv("MC_AUTH_PASS")), "mc_auth");
	if (getenv("MC_AUTH_FILE") != NULL)
		setting(mc_auth_file(mc, getenv("MC_AUTH_FILE")), "mc_auth_file");
	if (server != NULL)
		setting(mc_server_add4(mc, server), "mc_server_add4");

	set_and_get(mc, "");
	if (getenv("MC_THREADS") != NULL) {
		pthread_t threads[16];
		int n = atoi(getenv("MC_THREADS")), i;

		if (n < 1 || n > 16)
			n = 4;
		for (i = 0; i < n; i++)
			setting(pthread_create(&threads[i], NULL, worker, mc), "pthread_create");
		for (i = 0; i < n; i++)
			pthread_join(threads[i], NULL);
		fprintf(stderr, "threads ok=%d bad=%d\n", thread_ok, thread_bad);
	}
	if (getenv("MC_FORK") != NULL) {
		fflush(stderr);
		child = fork();
		if (child == 0) {
			set_and_get(mc, "child ");
			_exit(0);
		}
		if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) {
			fprintf(stderr, "fork or wait failed\n");
			return 2;
		}
		set_and_get(mc, "after child ");
	}
	mc_free(mc);
	return 0;
}
