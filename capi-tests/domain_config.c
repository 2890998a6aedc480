/*
 * A program that knows nothing of TLS or logins (issue 17, mcadmin config): it only calls
 * mc_new2($MEMCACHE_DOMAIN), then does MC_ROUNDS rounds of one set and one get of its key. The
 * domain's settings on this host decide whether it speaks TLS and logs in. Round 1 runs at once;
 * round N waits (at most 30 s) for the file "$MC_STEPS/go-N", so that the test can change the
 * domain between two rounds of a program that keeps running. After each round it writes
 * "round N set=RC get=VALUE" to stderr (after the library's own reports) and creates
 * "$MC_STEPS/done-N" holding the same line. Exits 0 after the last round, 2 on a usage error,
 * 3 when a go file never came. With MC_TLS_RESUMPTION=0 it first turns session resumption off
 * (mc_tls_resumption), a choice that must leave the domain's TLS and login in force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#define WAIT_MS 30000

static int wait_for(const char *path)
{
	int waited;

	for (waited = 0; waited < WAIT_MS; waited += 10) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(10 * 1000);
	}
	return -1;
}

int main(void)
{
	const char *domain = getenv("MEMCACHE_DOMAIN");
	const char *steps = getenv("MC_STEPS");
	const char *rounds_env = getenv("MC_ROUNDS");
	const char *resumption;
	int rounds = rounds_env != NULL ? atoi(rounds_env) : 1;
	char path[4096], line[256], value[64];
	struct memcache *mc;
	FILE *done;
	char *got;
	int round, rc;

	if (domain == NULL || steps == NULL || rounds < 1 || rounds > 100) {
		fprintf(stderr, "MEMCACHE_DOMAIN, MC_STEPS and MC_ROUNDS (1-100) are needed\n");
		return 2;
	}
	mc = mc_new2(domain);
	if (mc == NULL)
		return 2;
	mc_timeout(mc, 1, 0);
	resumption = getenv("MC_TLS_RESUMPTION");
	if (resumption != NULL && mc_tls_resumption(mc, atoi(resumption)) != 0)
		return 2;
	for (round = 1; round <= rounds; round++) {
		if (round > 1) {
			snprintf(path, sizeof(path), "%s/go-%d", steps, round);
			if (wait_for(path) != 0) {
				fprintf(stderr, "%s never came\n", path);
				return 3;
			}
		}
		snprintf(value, sizeof(value), "value-%d", round);
		rc = mc_set(mc, "cfg-key", strlen("cfg-key"), value, strlen(value), 0, 0);
		got = mc_aget(mc, "cfg-key", strlen("cfg-key"));
		snprintf(line, sizeof(line), "round %d set=%d get=%s", round, rc,
			 got != NULL ? got : "(null)");
		free(got);
		fprintf(stderr, "%s\n", line);
		fflush(stderr);
		snprintf(path, sizeof(path), "%s/done-%d", steps, round);
		done = fopen(path, "w");
		if (done == NULL)
			return 2;
		fprintf(done, "%s\n", line);
		fclose(done);
	}
	mc_free(mc);
	return 0;
}
