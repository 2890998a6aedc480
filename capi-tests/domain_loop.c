/*
 * A long-running client of a shared domain, run several at once by tests/domains.rs while mcadmin
 * changes the domain's list. Each operation i sets the key "<name>-<i>" to "value-<name>-<i>" and
 * gets it back; after each operation the program replaces (write + rename, so a reader never sees
 * half a line) a one-line status file:
 *
 *   ops=N fails=F last_fail=I reports=R consistent=C servers=HOST:PORT,...
 *
 * N operations are complete (keys 0..N-1 written), F of them failed (set not stored or value not
 * read back), I is the index of the last failed one (-1: none), R error reports were received,
 * C is 1 while servers[], num_servers and server_list agree, and servers is the handle's list as
 * the C API shows it after operation N-1. Nothing is written to stdout.
 *
 * Environment:
 *   LOOP_NAME     the key prefix
 *   LOOP_HANDLE   "new2": mc_new2(LOOP_DOMAIN); "new": mc_new(), which follows $MEMCACHE_DOMAIN
 *   LOOP_DOMAIN   the domain (for "new2")
 *   LOOP_STATUS   the status file
 *   LOOP_STOP     the loop ends when this file exists, ...
 *   LOOP_SECONDS  ... or after this many seconds (a bound in case the test dies)
 *   LOOP_PACE_US  pause between operations, in microseconds
 *
 * Exit status: 0 after a normal end, 2 on a setup problem (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "domain_common.h"

static unsigned long reports_seen;

/* Counts reports instead of printing them: list changes make a few operations fail on purpose. */
static int32_t counting_handler(MCM_ERR_FUNC_ARGS)
{
	(void)MCM_ERR_FUNC_MC_CTXT;
	(void)MCM_ERR_FUNC_ERR_CTXT;
	reports_seen++;
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_status(const char *path, const char *tmp, const char *line)
{
	FILE *f = fopen(tmp, "w");

	if (f == NULL || fputs(line, f) == EOF || fclose(f) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "domain_loop: cannot write %s\n", path);
		exit(2);
	}
}

int main(void)
{
	const char *name = need_env("LOOP_NAME");
	const char *mode = need_env("LOOP_HANDLE");
	const char *status = need_env("LOOP_STATUS");
	const char *stop = need_env("LOOP_STOP");
	double seconds = atof(need_env("LOOP_SECONDS"));
	long pace_us = atol(need_env("LOOP_PACE_US"));
	char tmp[4096], key[256], value[300], servers[2048], line[2600];
	struct memcache *mc;
	unsigned long ops = 0, fails = 0;
	long last_fail = -1;
	double deadline;
	size_t got;
	void *back;
	int consistent, ok;

	mcErrSetup(counting_handler);
	if (strcmp(mode, "new2") == 0) {
		mc = mc_new2(need_env("LOOP_DOMAIN"));
	} else if (strcmp(mode, "new") == 0) {
		mc = mc_new();
	} else {
		fprintf(stderr, "domain_loop: LOOP_HANDLE must be new2 or new, not %s\n", mode);
		return 2;
	}
	if (mc == NULL) {
		fprintf(stderr, "domain_loop: no handle (%s)\n", mode);
		return 2;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", status);
	deadline = now_seconds() + seconds;
	while (access(stop, F_OK) != 0 && now_seconds() < deadline) {
		snprintf(key, sizeof(key), "%s-%lu", name, ops);
		snprintf(value, sizeof(value), "value-%s", key);
		ok = mc_set(mc, key, strlen(key), value, strlen(value), 0, 0) == 0;
		got = 0;
		back = ok ? mc_aget2(mc, key, strlen(key), &got) : NULL;
		ok = back != NULL && got == strlen(value) && memcmp(back, value, got) == 0;
		free(back);
		if (!ok) {
			fails++;
			last_fail = (long)ops;
		}
		ops++;
		consistent = domain_describe_servers(mc, servers, sizeof(servers));
		snprintf(line, sizeof(line), "ops=%lu fails=%lu last_fail=%ld reports=%lu consistent=%d servers=%s\n", ops,
			 fails, last_fail, reports_seen, consistent, servers);
		write_status(status, tmp, line);
		if (pace_us > 0)
			usleep((useconds_t)pace_us);
	}
	mc_free(mc);
	return 0;
}
