/*
 * An error handler that records every report it receives (spec §6), for the programs that check
 * which reports an operation produced. Single-threaded use only.
 *
 * The handler keeps `cont` as the library set it ('y' under D1) and records it, so tests can
 * check that the library asked to continue even for ERR and FATAL.
 */
#ifndef CAPI_RECORDER_H
#define CAPI_RECORDER_H

#include <string.h>

#include <memcache.h>

#define RECORDER_MAX 64

struct report {
	u_int32_t errcode;
	char severity;
	char cont;
	u_int32_t errnum;
	int32_t retcode;
	int sysexit;
	const void *ctxt;
	int has_funcname;
	char funcname[64];
	char errstr[96];
	char msg[160];
};

static struct report reports[RECORDER_MAX];
static int report_count;
/* When non-zero, returned to the library through ectxt->retcode for every report. */
static int32_t recorder_retcode;

static int32_t recorder_handler(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *ctxt;
	struct memcache_err_ctxt *e;
	struct report *r;
	size_t n;

	MCM_ERR_INIT_CTXT(ctxt, e);
	(void)ctxt;
	if (report_count < RECORDER_MAX) {
		r = &reports[report_count];
		memset(r, 0, sizeof(*r));
		r->errcode = e->errcode;
		r->severity = e->severity;
		r->cont = e->cont;
		r->errnum = e->errnum;
		r->retcode = e->retcode;
		r->sysexit = e->sysexit;
		r->ctxt = e->ctxt;
		r->has_funcname = e->funcname != NULL;
		if (e->funcname != NULL)
			strncpy(r->funcname, e->funcname, sizeof(r->funcname) - 1);
		if (e->errstr != NULL) {
			strncpy(r->errstr, e->errstr, sizeof(r->errstr) - 1);
		}
		if (e->errmsg != NULL) {
			n = e->errlen < sizeof(r->msg) - 1 ? e->errlen : sizeof(r->msg) - 1;
			memcpy(r->msg, e->errmsg, n);
		}
	}
	report_count++;
	if (recorder_retcode != 0)
		e->retcode = recorder_retcode;
	return 0;
}

static void recorder_reset(void)
{
	report_count = 0;
	recorder_retcode = 0;
}

/* How many recorded reports have this code and severity (severity 0: any). */
static int recorder_count(u_int32_t errcode, char severity)
{
	int i, n = 0, last = report_count < RECORDER_MAX ? report_count : RECORDER_MAX;

	for (i = 0; i < last; i++)
		if (reports[i].errcode == errcode && (severity == 0 || reports[i].severity == severity))
			n++;
	return n;
}

/* The most recent report, or NULL. */
static const struct report *recorder_last(void)
{
	if (report_count == 0 || report_count > RECORDER_MAX)
		return NULL;
	return &reports[report_count - 1];
}

static void recorder_unused_helpers(void) __attribute__((unused));
static void recorder_unused_helpers(void)
{
	(void)recorder_reset;
	(void)recorder_count;
	(void)recorder_last;
	(void)recorder_handler;
}

#endif /* CAPI_RECORDER_H */
