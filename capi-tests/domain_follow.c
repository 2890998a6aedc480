/*
 * One handle following a domain, driven line by line by tests/domain_follow.rs, so that the test
 * can remove or replace the domain's segment between two operations of a program that keeps
 * running. Commands on stdin, one reply line on stdout for each:
 *
 *   new2 NAME       mc_new2(NAME)                -> "ok" | "null"
 *   version         mc_domain_version()          -> "version N"
 *   servers         the handle's list            -> "servers H:P,H:P" (in mc->servers order)
 *   set KEY VALUE   mc_set()                     -> "rc N"
 *   reports         MCM_ERR_MC_SERV_LIST reports since the last call, then forgets them
 *                   -> "count=N msgs=LEVEL MSG | LEVEL MSG ..." (LEVEL: the severity number)
 *   quit            exit 0
 *
 * Every report goes to a recording handler; reports of other codes are counted apart
 * ("other=N" after count) so that a test can tell them from the list's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "domain_common.h"

#define MAX_REPORTS 64
#define MSG_SIZE 512

struct recorded {
	int severity;
	char msg[MSG_SIZE];
};

static struct recorded recorded[MAX_REPORTS];
static unsigned long serv_list_count, other_count;

static int32_t recording_handler(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *ctxt;
	struct memcache_err_ctxt *e;
	struct recorded *r;
	size_t n, i;

	MCM_ERR_INIT_CTXT(ctxt, e);
	(void)ctxt;
	if (e->errcode != MCM_ERR_MC_SERV_LIST) {
		other_count++;
		return 0;
	}
	if (serv_list_count < MAX_REPORTS) {
		r = &recorded[serv_list_count];
		r->severity = e->severity;
		n = 0;
		if (e->errmsg != NULL)
			n = e->errlen < MSG_SIZE - 1 ? e->errlen : MSG_SIZE - 1;
		memcpy(r->msg, e->errmsg != NULL ? e->errmsg : "", n);
		r->msg[n] = '\0';
		for (i = 0; i < n; i++)
			if (r->msg[i] == '\n' || r->msg[i] == '\r' || r->msg[i] == '|')
				r->msg[i] = ' ';
	}
	serv_list_count++;
	return 0;
}

int main(void)
{
	static char line[4096], servers[4096];
	struct memcache *mc = NULL;
	unsigned long i, last;
	char *arg, *space, *value;
	size_t len;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mcErrSetup(recording_handler);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		len = strlen(line);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		space = strchr(line, ' ');
		arg = space != NULL ? space + 1 : line + len;
		if (space != NULL)
			*space = '\0';
		if (strcmp(line, "quit") == 0) {
			break;
		} else if (strcmp(line, "new2") == 0) {
			if (mc != NULL)
				mc_free(mc);
			mc = mc_new2(arg);
			printf("%s\n", mc != NULL ? "ok" : "null");
		} else if (strcmp(line, "reports") == 0) {
			last = serv_list_count < MAX_REPORTS ? serv_list_count : MAX_REPORTS;
			printf("count=%lu other=%lu msgs=", serv_list_count, other_count);
			for (i = 0; i < last; i++)
				printf("%s%d %s", i == 0 ? "" : " | ", recorded[i].severity, recorded[i].msg);
			printf("\n");
			serv_list_count = 0;
			other_count = 0;
		} else if (mc == NULL) {
			printf("error no handle for %s\n", line);
		} else if (strcmp(line, "version") == 0) {
			printf("version %llu\n", (unsigned long long)mc_domain_version(mc));
		} else if (strcmp(line, "servers") == 0) {
			if (!domain_describe_servers(mc, servers, sizeof(servers)))
				printf("error inconsistent server list %s\n", servers);
			else
				printf("servers %s\n", servers);
		} else if (strcmp(line, "set") == 0) {
			value = strchr(arg, ' ');
			if (value == NULL) {
				printf("error set needs KEY VALUE\n");
				continue;
			}
			*value++ = '\0';
			printf("rc %d\n", mc_set(mc, arg, strlen(arg), value, strlen(value), 0, 0));
		} else {
			fprintf(stderr, "domain_follow: unknown command %s\n", line);
			return 2;
		}
	}
	if (mc != NULL)
		mc_free(mc);
	return 0;
}
