/*
 * One libmemcache handle driven line by line by tests/domains.rs, so that the test can change a
 * domain (with mcadmin, or by writing the segment itself) between two operations of a program
 * that keeps running. Commands on stdin, one reply line on stdout for each:
 *
 *   new                 mc_new()                 -> "ok" | "null"   (replaces the current handle)
 *   new2 NAME           mc_new2(NAME)            -> "ok" | "null"   (NAME: the rest of the line,
 *                                                                    may be empty or hold spaces)
 *   new2null            mc_new2(NULL)            -> "ok" | "null"
 *   private             mc_new_private()         -> "ok" | "null"
 *   add HOST:PORT       mc_server_add4()         -> "rc N"
 *   dist NAME           mc_distribution() of crc32-modulo or ketama-md5 (the names every front
 *                       end uses)                -> "rc N" (-1 for another name)
 *   servers             the C view of the list   -> "n=N consistent=C servers=H:P,..."
 *   set KEY HEX         mc_set() of the bytes    -> "rc N"
 *   get KEY             mc_aget2()               -> "val HEX" | "null"
 *   reports             reports since the last reset
 *                       -> "count=N serv_list=M msgs=MSG | MSG ..." (MC_SERV_LIST messages)
 *   reset               forget the reports       -> "ok"
 *   quit                exit 0
 *
 * Every report goes to a recording handler (nothing else reaches stderr or stdout). The driver
 * exits 0 on quit or end of input and 2 on a command it does not understand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "domain_common.h"

#define MAX_REPORTS 256
#define MSG_SIZE 512

struct recorded {
	u_int32_t errcode;
	char msg[MSG_SIZE];
};

static struct recorded recorded[MAX_REPORTS];
static unsigned long recorded_count;

static int32_t recording_handler(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *ctxt;
	struct memcache_err_ctxt *e;
	struct recorded *r;
	size_t n, i;

	MCM_ERR_INIT_CTXT(ctxt, e);
	(void)ctxt;
	if (recorded_count < MAX_REPORTS) {
		r = &recorded[recorded_count];
		r->errcode = e->errcode;
		n = 0;
		if (e->errmsg != NULL)
			n = e->errlen < MSG_SIZE - 1 ? e->errlen : MSG_SIZE - 1;
		memcpy(r->msg, e->errmsg != NULL ? e->errmsg : "", n);
		r->msg[n] = '\0';
		/* Keep each reply on one line whatever the message holds. */
		for (i = 0; i < n; i++)
			if (r->msg[i] == '\n' || r->msg[i] == '\r' || r->msg[i] == '|')
				r->msg[i] = ' ';
	}
	recorded_count++;
	return 0;
}

static void reply_reports(void)
{
	unsigned long i, serv_list = 0, last = recorded_count < MAX_REPORTS ? recorded_count : MAX_REPORTS;
	int first = 1;

	for (i = 0; i < last; i++)
		if (recorded[i].errcode == MCM_ERR_MC_SERV_LIST)
			serv_list++;
	printf("count=%lu serv_list=%lu msgs=", recorded_count, serv_list);
	for (i = 0; i < last; i++) {
		if (recorded[i].errcode != MCM_ERR_MC_SERV_LIST)
			continue;
		printf("%s%s", first ? "" : " | ", recorded[i].msg);
		first = 0;
	}
	printf("\n");
}

static void replace_handle(struct memcache **mc, struct memcache *fresh)
{
	if (*mc != NULL)
		mc_free(*mc);
	*mc = fresh;
	printf("%s\n", fresh != NULL ? "ok" : "null");
}

int main(void)
{
	static char line[8192], servers[4096], hex[2 * 8192 + 1];
	static unsigned char value[8192];
	struct memcache *mc = NULL;
	char *arg, *key, *space;
	size_t len, got;
	long vlen;
	void *back;
	int consistent;

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
		} else if (strcmp(line, "new") == 0) {
			replace_handle(&mc, mc_new());
		} else if (strcmp(line, "new2") == 0) {
			replace_handle(&mc, mc_new2(arg));
		} else if (strcmp(line, "new2null") == 0) {
			replace_handle(&mc, mc_new2(NULL));
		} else if (strcmp(line, "private") == 0) {
			replace_handle(&mc, mc_new_private());
		} else if (strcmp(line, "reset") == 0) {
			recorded_count = 0;
			printf("ok\n");
		} else if (strcmp(line, "reports") == 0) {
			reply_reports();
		} else if (mc == NULL) {
			printf("error no handle for %s\n", line);
		} else if (strcmp(line, "add") == 0) {
			printf("rc %d\n", mc_server_add4(mc, arg));
		} else if (strcmp(line, "dist") == 0) {
			if (strcmp(arg, "crc32-modulo") == 0)
				printf("rc %d\n", mc_distribution(mc, MC_DIST_CRC32_MODULO));
			else if (strcmp(arg, "ketama-md5") == 0)
				printf("rc %d\n", mc_distribution(mc, MC_DIST_KETAMA_MD5));
			else
				printf("rc -1\n");
		} else if (strcmp(line, "servers") == 0) {
			consistent = domain_describe_servers(mc, servers, sizeof(servers));
			printf("n=%u consistent=%d servers=%s\n", (unsigned)mc->num_servers, consistent, servers);
		} else if (strcmp(line, "set") == 0) {
			key = arg;
			space = strchr(key, ' ');
			vlen = space != NULL ? domain_unhex(space + 1, value) : -1;
			if (vlen < 0) {
				printf("error set needs KEY HEX\n");
				continue;
			}
			*space = '\0';
			printf("rc %d\n", mc_set(mc, key, strlen(key), value, (size_t)vlen, 0, 0));
		} else if (strcmp(line, "get") == 0) {
			got = 0;
			back = mc_aget2(mc, arg, strlen(arg), &got);
			if (back == NULL) {
				printf("null\n");
			} else {
				domain_hex(back, got < 8192 ? got : 8192, hex);
				printf("val %s\n", hex);
				free(back);
			}
		} else {
			fprintf(stderr, "domain_driver: unknown command %s\n", line);
			return 2;
		}
	}
	if (mc != NULL)
		mc_free(mc);
	return 0;
}
