/*
 * The error pipeline (spec §6) and the memory setup (§5): handlers installed with mcErrSetup /
 * mcErrSetupCtxt see a fully filled memcache_err_ctxt, the §6.2 table (errstr, severity,
 * sysexit) for every code, MCM_ERR_INIT_CTXT, retcode / MCM_RET_CODE, cont (D1: 'y' for every
 * severity; 'n' and 'a' from a handler exit and abort; the MC_SERV_LIST exception), the filter
 * mask (D5), mcm_err_test, mcm_err and the reporting macros, the default handler's output
 * (stderr only, D10; the harness checks the lines), and counting allocators through mcMemSetup,
 * mcMemGet, mcMemNewCtxt, mcMemSetupCtxt and mcMemFreeCtxt.
 *
 * Environment: MC_HOST, MC_PORT. Prints nothing to stdout.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "recorder.h"

#define K(s) (char *)(s), strlen(s)

static const char *host;
static const char *port;
static mcErrFunc default_handler;

/* ---- A handler that checks the record it is given, then records it. ---- */

static int bad_misc, bad_retcode, bad_cont, bad_funcname, bad_ctxt, bad_errstr;

static int32_t checking_handler(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *ctxt;
	struct memcache_err_ctxt *e;

	MCM_ERR_INIT_CTXT(ctxt, e);
	/* §6.1 step 1: the record is cleared before every report. */
	bad_misc += e->misc != NULL;
	bad_retcode += e->retcode != 0;
	/* D1: 'y' for every severity. */
	bad_cont += e->cont != 'y';
	bad_funcname += e->funcname == NULL;
	bad_ctxt += e->ctxt != (const void *)ctxt || ctxt == NULL || ctxt->ectxt != e;
	bad_errstr += e->errstr == NULL;
	/* Dirty the record so a missing clear shows up on the next report. */
	e->misc = (void *)&bad_misc;
	recorder_handler(MCM_ERR_FUNC_MC_CTXT, MCM_ERR_FUNC_ERR_CTXT);
	return 0;
}

static void expect_clean_records(const char *label)
{
	CHECK(bad_misc == 0 && bad_retcode == 0, "%s: misc/retcode not cleared (%d, %d)", label, bad_misc,
	      bad_retcode);
	CHECK(bad_cont == 0, "%s: cont was not 'y' in %d reports (D1)", label, bad_cont);
	CHECK(bad_funcname == 0 && bad_ctxt == 0 && bad_errstr == 0, "%s: funcname/ctxt/errstr (%d %d %d)",
	      label, bad_funcname, bad_ctxt, bad_errstr);
	bad_misc = bad_retcode = bad_cont = bad_funcname = bad_ctxt = bad_errstr = 0;
}

/* ---- §6.2 table ---- */

struct code_row {
	u_int32_t code;
	const char *errstr;
	char severity;
	int sysexit;
};

static const char test_str[] = "internal memcache(3) test message";

static const struct code_row table[] = {
	{MCM_ERR_NONE, "no error", MCM_ERR_LVL_NONE, EX_OK},
	{MCM_ERR_ASSERT, "internal memcache(3) assertion", MCM_ERR_LVL_FATAL, EX_SOFTWARE},
	{MCM_ERR_LIB_SNPRINTF, "snprintf(3) failed", MCM_ERR_LVL_ERR, EX_DATAERR},
	{MCM_ERR_LIB_STRTOL, "strtol(3) failed", MCM_ERR_LVL_ERR, EX_DATAERR},
	{MCM_ERR_LIB_STRTOLL, "strtoll(3) failed", MCM_ERR_LVL_ERR, EX_DATAERR},
	{MCM_ERR_MC_RECONN, "connection re-established with server", MCM_ERR_LVL_INFO, EX_OK},
	{MCM_ERR_MC_SEND_CMD, "failed to send command to the memcache server", MCM_ERR_LVL_NOTICE, EX_IOERR},
	{MCM_ERR_MC_SERV_LIST, "no available servers in server list", MCM_ERR_LVL_WARN, EX_DATAERR},
	{MCM_ERR_MC_STORE, "unable to store value", MCM_ERR_LVL_NOTICE, EX_CANTCREAT},
	{MCM_ERR_MC_VALID_SERVER, "unable to find a server to connect to", MCM_ERR_LVL_NOTICE, EX_UNAVAILABLE},
	{MCM_ERR_MEM_MALLOC, "malloc(3) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_MEM_REALLOC, "realloc(3) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_NET_CONNECT, "unable to connect to a server", MCM_ERR_LVL_NOTICE, EX_TEMPFAIL},
	{MCM_ERR_NET_HOST, "unable to lookup/resolve host", MCM_ERR_LVL_WARN, EX_NOHOST},
	{MCM_ERR_PROTO, "memcache(4) protocol error", MCM_ERR_LVL_FATAL, EX_PROTOCOL},
	{15, "unknown error code", MCM_ERR_LVL_FATAL, EX_SOFTWARE},
	{MCM_ERR_SYS_CLOSE, "close(2) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_SYS_CONNECT, "connect(2) failed", MCM_ERR_LVL_NOTICE, EX_OSERR},
	{MCM_ERR_SYS_FCNTL, "fcntl(2) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_SYS_READ, "read(2) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_SYS_SELECT, "select(2) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_SYS_SETSOCKOPT, "setsockopt(2) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_SYS_SOCKET, "socket(2) failed", MCM_ERR_LVL_ERR, EX_OSERR},
	{MCM_ERR_SYS_WRITEV, test_str, MCM_ERR_LVL_WARN, EX_OK}, /* shares TEST's entry */
	{MCM_ERR_TEST, test_str, MCM_ERR_LVL_WARN, EX_OK},
	{MCM_ERR_TIMEOUT, "timeout", MCM_ERR_LVL_WARN, EX_UNAVAILABLE},
	{MCM_ERR_TRACE, "trace", MCM_ERR_LVL_INFO, EX_OK},
	{MCM_ERR_UNKNOWN_STAT, "unknown stat variable", MCM_ERR_LVL_WARN, EX_PROTOCOL},
	{28, "unknown error code", MCM_ERR_LVL_FATAL, EX_SOFTWARE},
	{9999, "unknown error code", MCM_ERR_LVL_FATAL, EX_SOFTWARE},
};

static void check_table(void)
{
	const struct memcache_ctxt *g = mc_global_ctxt();
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct code_row *row = &table[i];
		const struct report *r;

		recorder_reset();
		mcm_err(g, NO_ERRNO_FLAG, "check_table", 100 + (u_int32_t)i, row->code, "m", 1, 0);
		r = recorder_last();
		CHECK(report_count == 1 && r != NULL, "code %u: %d reports", (unsigned)row->code, report_count);
		if (r == NULL)
			continue;
		CHECK(r->errcode == row->code, "code %u: errcode %u", (unsigned)row->code, (unsigned)r->errcode);
		CHECK(strcmp(r->errstr, row->errstr) == 0, "code %u: errstr \"%s\", expected \"%s\"",
		      (unsigned)row->code, r->errstr, row->errstr);
		CHECK(r->severity == row->severity, "code %u: severity 0x%x, expected 0x%x", (unsigned)row->code,
		      (unsigned)r->severity, (unsigned)row->severity);
		CHECK(r->sysexit == row->sysexit, "code %u: sysexit %d, expected %d", (unsigned)row->code,
		      r->sysexit, row->sysexit);
		CHECK(r->errnum == 0 && r->cont == 'y', "code %u: errnum %u cont %c", (unsigned)row->code,
		      (unsigned)r->errnum, r->cont);
	}
	expect_clean_records("table");
}

/* ---- mcm_err directly, mcm_err_test, the macros ---- */

static u_int32_t seen_lineno;
static const char *seen_funcname;

static int32_t lineno_handler(MCM_ERR_FUNC_ARGS)
{
	struct memcache_err_ctxt *e = (struct memcache_err_ctxt *)MCM_ERR_FUNC_ERR_CTXT;

	seen_lineno = e->lineno;
	seen_funcname = e->funcname;
	return checking_handler(MCM_ERR_FUNC_MC_CTXT, MCM_ERR_FUNC_ERR_CTXT);
}

static void check_mcm_err(void)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	const struct report *r;

	mcErrSetup(lineno_handler);
	recorder_reset();
	errno = EPIPE;
	mcm_err(g, ERR_FLAG, "my_function", 123, MCM_ERR_MC_STORE, "hello world", 5, 0);
	r = recorder_last();
	CHECK(r != NULL && r->errcode == MCM_ERR_MC_STORE && r->severity == MCM_ERR_LVL_NOTICE &&
		      r->errnum == EPIPE && strcmp(r->msg, "hello") == 0 && r->sysexit == EX_CANTCREAT,
	      "%s", "mcm_err with errno: errcode/severity/errnum/errlen");
	CHECK(seen_lineno == 123 && seen_funcname != NULL && strcmp(seen_funcname, "my_function") == 0,
	      "lineno %u funcname %s", (unsigned)seen_lineno, seen_funcname ? seen_funcname : "NULL");
	CHECK(g->ectxt->errlen == 5 && g->ectxt->errmsg != NULL && memcmp(g->ectxt->errmsg, "hello", 5) == 0,
	      "ectxt keeps errmsg/errlen after the report: errlen %lu errmsg %.5s", (unsigned long)g->ectxt->errlen,
	      g->ectxt->errmsg ? g->ectxt->errmsg : "(null)");

	/* NO_ERRNO_FLAG: errnum 0; a level override replaces the table severity (still 'y'). */
	recorder_reset();
	errno = EPIPE;
	mcm_err(g, ERR_FLAG | NO_ERRNO_FLAG, "f", 1, MCM_ERR_MC_STORE, NULL, 0, MCM_ERR_LVL_ERR);
	r = recorder_last();
	CHECK(r != NULL && r->errnum == 0 && r->severity == MCM_ERR_LVL_ERR && r->cont == 'y' && r->msg[0] == 0,
	      "%s", "NO_ERRNO_FLAG + level override");
	recorder_reset();
	mcm_err(g, WARN_FLAG | NO_ERRNO_FLAG, "f", 2, MCM_ERR_TRACE, "t", 1, MCM_ERR_LVL_FATAL);
	r = recorder_last();
	CHECK(r != NULL && r->severity == MCM_ERR_LVL_FATAL && r->cont == 'y', "%s",
	      "FATAL override still continues (D1)");

	/* mcm_err_test / mc_err_test: TEST at WARN, no errno, the documented message. */
	recorder_reset();
	errno = EINTR;
	mcm_err_test(g);
	r = recorder_last();
	CHECK(r != NULL && r->errcode == MCM_ERR_TEST && r->severity == MCM_ERR_LVL_WARN && r->errnum == 0 &&
		      strcmp(r->errstr, test_str) == 0 &&
		      strcmp(r->msg, "per-error message specific to this line of code") == 0,
	      "mcm_err_test: code %u sev %d msg \"%s\"", r ? (unsigned)r->errcode : 0, r ? r->severity : -1,
	      r ? r->msg : "");
	recorder_reset();
	mc_err_test();
	CHECK(report_count == 1 && recorder_count(MCM_ERR_TEST, MCM_ERR_LVL_WARN) == 1, "%s", "mc_err_test");
	mcErrSetup(checking_handler);
	expect_clean_records("mcm_err");
}

static void check_macros(void)
{
	/* The reporting macros rely on a variable named ctxt. */
	const struct memcache_ctxt *ctxt = mc_global_ctxt();
	const struct report *r;

	recorder_reset();
	errno = EINTR;
	MCM_ERR(MCM_ERR_SYS_READ);
	r = recorder_last();
	CHECK(r != NULL && r->errcode == MCM_ERR_SYS_READ && r->errnum == EINTR && r->severity == MCM_ERR_LVL_ERR,
	      "%s", "MCM_ERR");
	errno = EINTR;
	MCM_ERRX_MSG(MCM_ERR_PROTO, "xmsg");
	r = recorder_last();
	CHECK(r != NULL && r->errcode == MCM_ERR_PROTO && r->errnum == 0 && strcmp(r->msg, "xmsg") == 0, "%s",
	      "MCM_ERRX_MSG");
	MCM_WARN_MSGLEN(MCM_ERR_TIMEOUT, "abcdef", 3);
	r = recorder_last();
	CHECK(r != NULL && r->errcode == MCM_ERR_TIMEOUT && strcmp(r->msg, "abc") == 0, "%s", "MCM_WARN_MSGLEN");
	MCM_ERR_MSG_LVL(MCM_ERR_ASSERT, "lvl", MCM_ERR_LVL_NOTICE);
	r = recorder_last();
	CHECK(r != NULL && r->errcode == MCM_ERR_ASSERT && r->severity == MCM_ERR_LVL_NOTICE, "%s",
	      "MCM_ERR_MSG_LVL");
	MCM_WARNX(MCM_ERR_TEST);
	MCM_WARNX_MSG(MCM_ERR_TEST, "w");
	CHECK(report_count == 6, "macros produced %d reports", report_count);
	expect_clean_records("macros");
}

/* ---- retcode and cont ---- */

static char set_cont = 'y';

static int32_t cont_handler(MCM_ERR_FUNC_ARGS)
{
	struct memcache_err_ctxt *e = (struct memcache_err_ctxt *)MCM_ERR_FUNC_ERR_CTXT;

	checking_handler(MCM_ERR_FUNC_MC_CTXT, MCM_ERR_FUNC_ERR_CTXT);
	e->cont = set_cont;
	e->sysexit = 42;
	return 0;
}

static void check_retcode_and_cont(struct memcache *mc)
{
	struct memcache *empty = mc_new();
	int rc;

	CHECK(mc_set(mc, K("err:a"), "1", 1, 0, 0) == 0, "%s", "set err:a");
	recorder_reset();
	recorder_retcode = 42;
	rc = mc_add(mc, K("err:a"), "2", 1, 0, 0);
	CHECK(rc == 42, "add NOT_STORED with handler retcode 42 -> %d", rc);
	recorder_retcode = 43;
	rc = mc_set(empty, K("err:a"), "2", 1, 0, 0);
	CHECK(rc == 43, "set on an empty server list with handler retcode 43 -> %d", rc);
	recorder_retcode = 0;
	rc = mc_add(mc, K("err:a"), "2", 1, 0, 0);
	CHECK(rc == 1, "retcode does not stick: add -> %d", rc);
	mc_free(empty);

	/* A handler setting any other cont value continues (D1). */
	mcErrSetup(cont_handler);
	set_cont = 'x';
	mcm_err_test(mc_global_ctxt());
	rc = mc_add(mc, K("err:a"), "2", 1, 0, 0);
	CHECK(rc == 1, "after cont = 'x' the library continues: add -> %d", rc);
	set_cont = 'y';
	mcErrSetup(checking_handler);
	expect_clean_records("retcode");
}

/* A child process: a handler that sets cont = 'n' (or 'a') must terminate it (§6.1 step 8). */
static int run_child(char cont, int serv_list_first)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		struct memcache *empty;

		setrlimit(RLIMIT_CORE, &no_core);
		set_cont = cont;
		mcErrSetup(cont_handler);
		if (serv_list_first) {
			/* MC_SERV_LIST with cont 'n' is turned back into 'y' (step 7). */
			empty = mc_new();
			if (mc_set(empty, K("child"), "x", 1, 0, 0) == 0)
				_exit(3);
			mc_free(empty);
		}
		mcm_err_test(mc_global_ctxt());
		_exit(4); /* not reached when the library honours cont */
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static void check_cont_terminates(void)
{
	int status;

	status = run_child('n', 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "cont 'n': child status 0x%x, expected exit(42)",
	      status);
	status = run_child('a', 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "cont 'a': child status 0x%x, expected SIGABRT",
	      status);
	status = run_child('n', 1);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
	      "cont 'n' on MC_SERV_LIST continues, then exits on TEST: status 0x%x", status);
}

/* ---- filter mask (D5, §6.4) ---- */

static void check_filter(struct memcache *mc)
{
	struct memcache_ctxt *own;
	int before;

	CHECK(mc_err_filter_get() == 0, "global mask starts at %u, expected 0", (unsigned)mc_err_filter_get());
	CHECK(mc_err_filter_add(MCM_ERR_LVL_WARN) == 0 && mc_err_filter_get() == MCM_ERR_LVL_WARN,
	      "add(WARN): mask %u", (unsigned)mc_err_filter_get());
	CHECK(mc_err_filter_test(MCM_ERR_LVL_WARN) == 1 && mc_err_filter_test(MCM_ERR_LVL_NOTICE) == 0, "%s",
	      "filter_test");
	recorder_reset();
	mcm_err_test(mc_global_ctxt());
	CHECK(report_count == 0, "a filtered WARN reached the handler (%d)", report_count);
	CHECK(mc_err_filter_add(MCM_ERR_LVL_NOTICE) == 0 && mc_err_filter_get() == 6, "add(NOTICE): mask %u",
	      (unsigned)mc_err_filter_get());
	CHECK(mc_add(mc, K("err:a"), "3", 1, 0, 0) == 1 && report_count == 0, "%s",
	      "a filtered NOTICE (NOT_STORED) reached the handler");
	CHECK(mc_err_filter_del(MCM_ERR_LVL_WARN) == 0 && mc_err_filter_get() == MCM_ERR_LVL_NOTICE,
	      "del(WARN): mask %u", (unsigned)mc_err_filter_get());
	mcm_err_test(mc_global_ctxt());
	CHECK(report_count == 1, "unfiltered WARN: %d reports", report_count);
	CHECK(mc_err_filter_del(MCM_ERR_LVL_NOTICE) == 0 && mc_err_filter_get() == 0, "del(NOTICE): mask %u",
	      (unsigned)mc_err_filter_get());
	CHECK(mc_err_filter_del(MCM_ERR_LVL_NOTICE) == 0 && mc_err_filter_get() == 0, "%s", "del again");
	CHECK(mc_global_ctxt()->MCM_ERR_MASK == 0, "%s", "mask member");

	/* An own context starts at INFO|NOTICE (3). */
	own = mcMemNewCtxt(free, malloc, malloc, realloc);
	CHECK(own != NULL && mcm_err_filter_get(own) == 3 && own->MCM_ERR_MASK == 3, "new context mask %u",
	      own ? (unsigned)mcm_err_filter_get(own) : 0);
	mcErrSetupCtxt(own, checking_handler);
	before = report_count;
	mcm_err(own, NO_ERRNO_FLAG, "f", 1, MCM_ERR_MC_STORE, NULL, 0, 0); /* NOTICE: filtered */
	mcm_err(own, NO_ERRNO_FLAG, "f", 1, MCM_ERR_MC_RECONN, NULL, 0, 0); /* INFO: filtered */
	CHECK(report_count == before, "%s", "INFO/NOTICE filtered on a new context");
	mcm_err_test(own);
	CHECK(report_count == before + 1 && recorder_last()->ctxt == own, "%s", "WARN reaches the handler");
	CHECK(mcm_err_filter_add(own, MCM_ERR_LVL_WARN | MCM_ERR_LVL_ERR) == 0 && mcm_err_filter_get(own) == 15,
	      "mcm add: mask %u", (unsigned)mcm_err_filter_get(own));
	CHECK(mcm_err_filter_test(own, MCM_ERR_LVL_ERR) == 1 && mcm_err_filter_test(own, MCM_ERR_LVL_FATAL) == 0,
	      "%s", "mcm_err_filter_test");
	CHECK(mcm_err_filter_del(own, MCM_ERR_LVL_INFO | MCM_ERR_LVL_NOTICE | MCM_ERR_LVL_WARN | MCM_ERR_LVL_ERR) ==
			  0 &&
		      mcm_err_filter_get(own) == 0,
	      "mcm del: mask %u", (unsigned)mcm_err_filter_get(own));
	CHECK(mcm_err_filter_add(NULL, 1) == 1 && mcm_err_filter_del(NULL, 1) == 1, "%s",
	      "filter add/del on a NULL context -> 1");
	mcMemFreeCtxt(own);
	expect_clean_records("filter");
}

/* ---- setup functions and counting allocators (§5) ---- */

enum kind { K_FREE_SLOT = 0, K_MALLOC = 1, K_ATOMIC = 2 };

#define SLOTS 4096
static void *slot_ptr[SLOTS];
static int slot_kind[SLOTS];
static int n_malloc, n_atomic, n_realloc, n_free, n_foreign_free, n_overflow;

static void track(void *p, int kind)
{
	int i;

	if (p == NULL)
		return;
	for (i = 0; i < SLOTS; i++) {
		if (slot_ptr[i] == NULL) {
			slot_ptr[i] = p;
			slot_kind[i] = kind;
			return;
		}
	}
	n_overflow++;
}

static int untrack(void *p)
{
	int i;

	for (i = 0; i < SLOTS; i++) {
		if (slot_ptr[i] == p) {
			slot_ptr[i] = NULL;
			return slot_kind[i];
		}
	}
	return K_FREE_SLOT;
}

static int kind_of(const void *p)
{
	int i;

	for (i = 0; i < SLOTS; i++)
		if (slot_ptr[i] == p && p != NULL)
			return slot_kind[i];
	return K_FREE_SLOT;
}

static int live(void)
{
	int i, n = 0;

	for (i = 0; i < SLOTS; i++)
		n += slot_ptr[i] != NULL;
	return n;
}

static void count_free(void *p)
{
	if (p == NULL)
		return;
	n_free++;
	if (untrack(p) == K_FREE_SLOT)
		n_foreign_free++;
	free(p);
}

static void *count_malloc(const size_t n)
{
	void *p = malloc(n);

	n_malloc++;
	track(p, K_MALLOC);
	return p;
}

static void *count_atomic(const size_t n)
{
	void *p = malloc(n);

	n_atomic++;
	track(p, K_ATOMIC);
	return p;
}

static void *count_realloc(void *old, const size_t n)
{
	int kind = old ? untrack(old) : K_MALLOC;
	void *p = realloc(old, n);

	n_realloc++;
	if (old != NULL && kind == K_FREE_SLOT)
		n_foreign_free++;
	track(p, kind == K_FREE_SLOT ? K_MALLOC : kind);
	return p;
}

static void counters_reset(void)
{
	n_malloc = n_atomic = n_realloc = n_free = n_foreign_free = n_overflow = 0;
}

/* Some work through a handle and a request: every allocation must be freed again. */
static void workload(struct memcache_ctxt *ctxt, const char *label)
{
	struct memcache *mc = mcm_new(ctxt);
	struct memcache_req *req;
	struct memcache_res *res;
	struct memcache_server_stats *st;
	size_t len = 0;
	char *v;

	CHECK(mc != NULL && kind_of(mc) == K_MALLOC, "%s: the handle comes from mcMalloc", label);
	CHECK(mcm_server_add(ctxt, mc, host, port) == 0, "%s: add server", label);
	CHECK(mc->num_servers == 1 && kind_of(mc->servers[0]) == K_MALLOC, "%s: server from mcMalloc", label);
	CHECK(kind_of(mc->servers[0]->hostname) == K_ATOMIC && kind_of(mc->servers[0]->port) == K_ATOMIC,
	      "%s: hostname/port from mcMallocAtomic", label);
	CHECK(mcm_set(ctxt, mc, K("alloc:k"), "value", 5, 0, 0) == 0, "%s: set", label);
	v = mcm_aget2(ctxt, mc, K("alloc:k"), &len);
	CHECK(v != NULL && len == 5 && kind_of(v) == K_ATOMIC, "%s: aget value from mcMallocAtomic (kind %d)",
	      label, kind_of(v));
	ctxt->mcFree(v);
	req = mcm_req_new(ctxt);
	CHECK(kind_of(req) == K_MALLOC, "%s: request from mcMalloc", label);
	res = mcm_req_add(ctxt, req, K("alloc:k"));
	CHECK(kind_of(res) == K_MALLOC && kind_of(res->key) == K_ATOMIC, "%s: result from mcMalloc, key copy atomic",
	      label);
	mcm_get(ctxt, mc, req);
	CHECK(mcm_res_found(ctxt, res) && kind_of(res->val) == K_ATOMIC, "%s: fetched value from mcMallocAtomic",
	      label);
	mcm_req_free(ctxt, req);
	st = mcm_stats(ctxt, mc);
	CHECK(st != NULL && kind_of(st) == K_MALLOC && kind_of(st->version) == K_ATOMIC,
	      "%s: stats from mcMalloc, version from mcMallocAtomic", label);
	mcm_server_stats_free(ctxt, st);
	v = mcm_strdup(ctxt, "dup");
	CHECK(v != NULL && kind_of(v) == K_ATOMIC && strcmp(v, "dup") == 0, "%s: mcm_strdup atomic", label);
	ctxt->mcFree(v);
	mcm_free(ctxt, mc);
}

static void check_memory_setup(void)
{
	mcFreeFunc f = NULL;
	mcMallocFunc m = NULL, ma = NULL;
	mcReallocFunc r = NULL;
	struct memcache_ctxt *own;

	CHECK(mcMemGet(&f, &m, &ma, &r) == 0, "%s", "mcMemGet");
	CHECK(f == free && m == (mcMallocFunc)malloc && ma == (mcMallocFunc)malloc && r == (mcReallocFunc)realloc,
	      "%s", "the global context starts with free/malloc/malloc/realloc");
	CHECK(mcMemGet(NULL, NULL, NULL, NULL) == 0, "%s", "mcMemGet with NULL out-parameters");

	/* NULL arguments are refused and change nothing. */
	CHECK(mcMemSetup(NULL, count_malloc, count_atomic, count_realloc) == 1, "%s", "mcMemSetup(NULL free)");
	CHECK(mcMemSetup(count_free, NULL, count_atomic, count_realloc) == 1, "%s", "mcMemSetup(NULL malloc)");
	CHECK(mcMemSetup(count_free, count_malloc, count_atomic, NULL) == 1, "%s", "mcMemSetup(NULL realloc)");
	mcMemGet(&f, NULL, NULL, NULL);
	CHECK(f == free, "%s", "failed mcMemSetup left the global context alone");
	CHECK(mcMemNewCtxt(NULL, malloc, malloc, realloc) == NULL &&
		      mcMemNewCtxt(free, NULL, malloc, realloc) == NULL &&
		      mcMemNewCtxt(free, malloc, malloc, NULL) == NULL,
	      "%s", "mcMemNewCtxt with a NULL function -> NULL");
	CHECK(mcMemSetupCtxt(NULL, free, malloc, malloc, realloc) == 1, "%s", "mcMemSetupCtxt(NULL ctxt)");
	CHECK(mcErrSetupCtxt(NULL, checking_handler) == 1, "%s", "mcErrSetupCtxt(NULL, f)");
	mcMemFreeCtxt(NULL);

	/* The global context with counting allocators. */
	counters_reset();
	CHECK(mcMemSetup(count_free, count_malloc, count_atomic, count_realloc) == 0, "%s", "mcMemSetup");
	mcMemGet(&f, &m, &ma, &r);
	CHECK(f == count_free && m == count_malloc && ma == count_atomic && r == count_realloc, "%s",
	      "mcMemGet returns what mcMemSetup stored");
	workload(mc_global_ctxt(), "global");
	{
		struct memcache *mc = mc_new();
		char *v;

		mc_server_add(mc, host, port);
		v = mc_aget(mc, K("alloc:k"));
		CHECK(v != NULL && kind_of(v) == K_ATOMIC, "%s", "mc_aget value from the global mcMallocAtomic");
		count_free(v);
		mc_free(mc);
	}
	CHECK(mcMemSetup(free, (mcMallocFunc)malloc, NULL, (mcReallocFunc)realloc) == 0, "%s", "restore");
	mcMemGet(NULL, NULL, &ma, NULL);
	CHECK(ma == (mcMallocFunc)malloc, "%s", "mcMemSetup with NULL mallocAtomic uses malloc");
	CHECK(live() == 0 && n_foreign_free == 0 && n_overflow == 0,
	      "global: %d allocations left, %d foreign frees (malloc %d atomic %d realloc %d free %d)", live(),
	      n_foreign_free, n_malloc, n_atomic, n_realloc, n_free);
	CHECK(n_atomic > 0 && n_malloc > 0, "global: malloc %d atomic %d", n_malloc, n_atomic);

	/* An own context with counting allocators, NULL mallocAtomic -> malloc. */
	counters_reset();
	own = mcMemNewCtxt(count_free, count_malloc, NULL, count_realloc);
	CHECK(own != NULL && kind_of(own) == K_MALLOC, "%s", "mcMemNewCtxt allocates with its malloc argument");
	if (own == NULL)
		return;
	CHECK(own->mcFree == count_free && own->mcMalloc == count_malloc && own->mcRealloc == count_realloc,
	      "%s", "functions stored");
	CHECK(own->mcErr != NULL, "%s", "mcMemNewCtxt installs the default handler");
	CHECK(own->mcKeyValid != NULL, "%s", "mcMemNewCtxt installs the default key validator (§5.1)");
	CHECK(own->mcHashKey != NULL && own->mcServerFind != NULL, "%s", "mcMemNewCtxt installs hash and finder");
	CHECK(own->ectxt != NULL && own->errnum == 0, "%s", "error record present");
	mcErrSetupCtxt(own, checking_handler);
	own->mcMallocAtomic = count_atomic; /* to tell the two kinds apart below */
	workload(own, "own");
	CHECK(mcMemSetupCtxt(own, count_free, count_malloc, NULL, count_realloc) == 0, "%s", "mcMemSetupCtxt");
	CHECK(own->mcMallocAtomic == count_malloc, "%s", "mcMemSetupCtxt NULL mallocAtomic -> malloc");
	mcMemFreeCtxt(own);
	CHECK(live() == 0 && n_foreign_free == 0,
	      "own: %d allocations left after mcMemFreeCtxt, %d foreign frees", live(), n_foreign_free);
	expect_clean_records("memory");
}

/* ---- allocation failures (§5.2, §7.1): reported, failure values, nothing leaked ---- */

static int malloc_budget = -1, atomic_budget = -1, realloc_fails; /* budget -1: unlimited */

static void *flaky_malloc(const size_t n)
{
	if (malloc_budget == 0)
		return NULL;
	if (malloc_budget > 0)
		malloc_budget--;
	return malloc(n);
}

static void *flaky_atomic(const size_t n)
{
	if (atomic_budget == 0)
		return NULL;
	if (atomic_budget > 0)
		atomic_budget--;
	return malloc(n);
}

static void *flaky_realloc(void *old, const size_t n)
{
	return realloc_fails ? NULL : realloc(old, n);
}

static void check_allocation_failures(void)
{
	struct memcache_ctxt *ctxt = mcMemNewCtxt(free, flaky_malloc, flaky_atomic, flaky_realloc);
	struct memcache *mc;
	struct memcache_req *req;
	size_t len;
	int rc;

	CHECK(ctxt != NULL, "%s", "mcMemNewCtxt");
	if (ctxt == NULL)
		return;
	mcErrSetupCtxt(ctxt, checking_handler);
	mc = mcm_new(ctxt);
	CHECK(mc != NULL, "%s", "mcm_new");
	if (mc == NULL)
		return;

	recorder_reset();
	malloc_budget = 0;
	CHECK(mcm_new(ctxt) == NULL, "%s", "mcm_new with a failing malloc -> NULL");
	CHECK(mcm_req_new(ctxt) == NULL, "%s", "mcm_req_new with a failing malloc -> NULL");
	rc = mcm_server_add(ctxt, mc, host, port);
	CHECK(rc == -1, "server allocation failure -> %d, expected -1", rc);
	malloc_budget = -1;
	CHECK(recorder_count(MCM_ERR_MEM_MALLOC, 0) >= 1, "%s", "allocation failures reported as MEM_MALLOC");

	atomic_budget = 0;
	rc = mcm_server_add(ctxt, mc, host, port);
	CHECK(rc == -2, "hostname copy failure -> %d, expected -2", rc);
	atomic_budget = 1;
	rc = mcm_server_add(ctxt, mc, host, port);
	CHECK(rc == -3, "port copy failure -> %d, expected -3", rc);
	atomic_budget = -1;
	CHECK(mc->num_servers == 0, "%u servers after failed adds", (unsigned)mc->num_servers);

	CHECK(mcm_server_add(ctxt, mc, host, port) == 0, "%s", "add with working allocators");
	realloc_fails = 1;
	rc = mcm_server_add(ctxt, mc, host, port);
	realloc_fails = 0;
	CHECK(rc == -5 && mc->num_servers == 1, "array growth failure -> %d (%u servers), expected -5", rc,
	      (unsigned)mc->num_servers);

	CHECK(mcm_set(ctxt, mc, K("alloc:fail"), "value", 5, 0, 0) == 0, "%s", "set");
	recorder_reset();
	atomic_budget = 0;
	len = 99;
	CHECK(mcm_aget2(ctxt, mc, K("alloc:fail"), &len) == NULL && len == 0, "%s",
	      "aget2 when the value cannot be allocated -> NULL, retlen 0");
	CHECK(mcm_strdup(ctxt, "x") == NULL, "%s", "mcm_strdup with a failing allocator -> NULL");
	req = mcm_req_new(ctxt);
	CHECK(req != NULL && mcm_req_add(ctxt, req, K("alloc:fail")) == NULL && req->num_keys == 0, "%s",
	      "mcm_req_add when the key copy fails -> NULL");
	atomic_budget = -1;
	CHECK(recorder_count(MCM_ERR_MEM_MALLOC, 0) >= 1, "%s", "value allocation failure reported");
	malloc_budget = 0;
	CHECK(mcm_stats(ctxt, mc) == NULL, "%s", "mcm_stats when allocation fails -> NULL");
	malloc_budget = -1;
	/* Everything still works afterwards. */
	len = 0;
	{
		char *v = mcm_aget2(ctxt, mc, K("alloc:fail"), &len);
		CHECK(v != NULL && len == 5, "%s", "aget2 after the failures");
		free(v);
	}
	mcm_req_free(ctxt, req);
	mcm_free(ctxt, mc);
	mcMemFreeCtxt(ctxt);
	expect_clean_records("allocation failures");
}

/* ---- the default handler: stderr only (D10); the harness checks the lines ---- */

static void default_handler_output(struct memcache *mc)
{
	mcErrSetup(default_handler);
	/* NOTICE: "[NOTICE@...] ...: unable to store value..." */
	mc_add(mc, K("err:a"), "4", 1, 0, 0);
	/* WARN: "[WARN@...] ...: internal memcache(3) test message: per-error message ..." */
	mcm_err_test(mc_global_ctxt());
	/* ERROR with errno and a message, fixed function and line. */
	errno = EPIPE;
	mcm_err(mc_global_ctxt(), ERR_FLAG, "errors_probe", 4242, MCM_ERR_MC_STORE, "probe-msg", 9,
		MCM_ERR_LVL_ERR);
	/* FATAL without errno or message: printed, and the program continues (D1). */
	mcm_err(mc_global_ctxt(), ERR_FLAG | NO_ERRNO_FLAG, "errors_probe", 4243, MCM_ERR_TEST, NULL, 0,
		MCM_ERR_LVL_FATAL);
	/* INFO. */
	mcm_err(mc_global_ctxt(), NO_ERRNO_FLAG, "errors_probe", 4244, MCM_ERR_MC_RECONN, "info-msg", 8, 0);
	/* Filtered: not printed. */
	mc_err_filter_add(MCM_ERR_LVL_WARN);
	mcm_err(mc_global_ctxt(), NO_ERRNO_FLAG, "errors_probe", 4245, MCM_ERR_TEST, "filtered-msg", 12, 0);
	mc_err_filter_del(MCM_ERR_LVL_WARN);
}

int main(void)
{
	struct memcache *mc;
	mcErrFunc got = NULL;

	host = need_env("MC_HOST");
	port = need_env("MC_PORT");
	CHECK(mcErrGet(&default_handler) == 0 && default_handler != NULL, "%s", "mcErrGet: a default handler");
	CHECK(mc_global_ctxt()->mcErr == default_handler, "%s", "mcErrGet returns ctxt->mcErr");
	CHECK(mc_global_ctxt()->mcKeyValid != NULL, "%s", "the global context has a default key validator (§5.1)");
	CHECK(mcErrSetup(NULL) == 1, "%s", "mcErrSetup(NULL) -> 1");
	CHECK(mcErrSetup(checking_handler) == 0 && mcErrGet(&got) == 0 && got == checking_handler, "%s",
	      "mcErrSetup/mcErrGet");
	CHECK(mc_global_ctxt()->mcErr == checking_handler, "%s", "mcErrSetup writes ctxt->mcErr");

	mc = mc_new();
	CHECK(mc_server_add(mc, host, port) == 0, "%s", "mc_server_add");

	/* First: under valgrind a forked child inherits the error count, which would change its
	 * exit status. */
	check_cont_terminates();
	check_table();
	check_mcm_err();
	check_macros();
	check_retcode_and_cont(mc);
	check_filter(mc);
	check_memory_setup();
	check_allocation_failures();
	default_handler_output(mc);

	mc_free(mc);
	return CHECK_DONE();
}
