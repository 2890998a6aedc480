/*
 * Helpers shared by the failover, redundancy and fork-safety programs run by tests/resilience.rs:
 * a clock, the file handshake with the harness, waiting for a SIGSTOPped process to really stop,
 * and single-server "probe" handles that look at one server's copy of a key.
 */
#ifndef CAPI_RESILIENCE_H
#define CAPI_RESILIENCE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <memcache.h>

#define K(s) (char *)(s), strlen(s)

static double now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Creates `dir/ready` for the harness, then waits up to 30 s for it to create `dir/go`. */
static int handshake(const char *dir, const char *ready, const char *go)
{
	char path[1024];
	FILE *f;
	double deadline = now() + 30;

	snprintf(path, sizeof(path), "%s/%s", dir, ready);
	f = fopen(path, "w");
	if (f == NULL)
		return 0;
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s", dir, go);
	while (access(path, F_OK) != 0) {
		if (now() > deadline)
			return 0;
		usleep(5000);
	}
	return 1;
}

/* SIGSTOP is delivered asynchronously: waits (up to 5 s) until every thread of `pid` shows state
 * 'T' in /proc/PID/task/TID/stat. A server that has not stopped yet could still answer. */
static int wait_stopped(pid_t pid)
{
	double deadline = now() + 5;
	char path[512], line[512];

	while (now() < deadline) {
		DIR *dir;
		struct dirent *d;
		int seen = 0, running = 0;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
		dir = opendir(path);
		if (dir == NULL)
			return 0;
		while ((d = readdir(dir)) != NULL) {
			FILE *f;
			char *paren;

			if (d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, d->d_name);
			f = fopen(path, "r");
			if (f == NULL)
				continue;
			if (fgets(line, sizeof(line), f) != NULL) {
				/* The state follows the parenthesised command name. */
				paren = strrchr(line, ')');
				seen++;
				running += paren == NULL || paren[1] != ' ' || paren[2] != 'T';
			}
			fclose(f);
		}
		closedir(dir);
		if (seen > 0 && running == 0)
			return 1;
		usleep(1000);
	}
	return 0;
}

/* A private handle on one server, to see what that server alone holds. It retries its server on
 * every call (retry interval 0), so a probe never skips a server that came back. */
static struct memcache *probe_handle(const char *host, const char *port)
{
	struct memcache *mc = mc_new_private();

	if (mc == NULL || mc_server_add(mc, host, port) != 0 || mc_retry_interval(mc, 0, 0) != 0) {
		fprintf(stderr, "cannot make a probe handle for %s:%s\n", host, port);
		exit(2);
	}
	return mc;
}

/* What one server holds under `key`: 0 nothing, 1 exactly `expect`, 2 another value. */
static int probe_holds(struct memcache *one, const char *key, const char *expect)
{
	size_t len = 0;
	char *v = mc_aget2(one, K(key), &len);
	int state;

	if (v == NULL)
		return 0;
	state = len == strlen(expect) && memcmp(v, expect, len) == 0 ? 1 : 2;
	free(v);
	return state;
}

/* 1 when `mc_aget2` returns exactly `expect` through `mc`. */
static int reads_as(struct memcache *mc, const char *key, const char *expect)
{
	return probe_holds(mc, key, expect) == 1;
}

/* The index in `mc->servers` of the server that mc_server_find() chooses for `key` now. */
static int primary_of(struct memcache *mc, const char *key)
{
	struct memcache_server *ms = mc_server_find(mc, mc_hash(mc, K(key)));
	u_int32_t i;

	for (i = 0; i < mc->num_servers; i++)
		if (mc->servers[i] == ms)
			return (int)i;
	return -1;
}

static void resilience_unused_helpers(void) __attribute__((unused));
static void resilience_unused_helpers(void)
{
	(void)now;
	(void)handshake;
	(void)wait_stopped;
	(void)probe_handle;
	(void)probe_holds;
	(void)reads_as;
	(void)primary_of;
}

#endif /* CAPI_RESILIENCE_H */
