/*
 * pgmemcache_rs: memcached from SQL through libmemcache (memcache.h, -lmemcache).
 *
 * One library context and one handle per backend. The handle follows the shared domain named by
 * memcache.domain (mc_new2: the server list lives in shared memory and is edited with mcadmin),
 * or, when memcache.servers is set, owns a private list of those servers, placed by
 * memcache.distribution (crc32-modulo by default, as a 1.4 program adding the same servers places
 * them; a domain brings its own). It is created on first use and rebuilt when a setting changes.
 *
 * Errors: PostgreSQL reports errors with a longjmp, which must never cross the library's (Rust)
 * frames. So the library's error handler only copies each report into a static array; once the
 * library call has returned, the wrapper looks at the call's result and the recorded reports and
 * raises an ERROR (the call failed) or re-emits them as NOTICE/WARNING/DEBUG1 (it succeeded).
 *
 * Memory: the library allocates with PostgreSQL's allocator, from a memory context of its own
 * ("pgmemcache_rs", a child of TopMemoryContext: the handle and its connections outlive
 * transactions, so the context lives as long as the backend and is never reset). The wrappers
 * given to mcMemNewCtxt run inside library frames, so they never throw: an allocation that fails
 * returns NULL, which the library reports as MCM_ERR_MEM_MALLOC/REALLOC and turns into a failed
 * call, raised as an out-of-memory ERROR once the call has returned. free and realloc are pfree
 * and repalloc with no NULL check: the library never passes them NULL (spec 5.2), and were it to,
 * the backend would crash where the tests see it rather than hide the broken contract.
 * The library frees what it allocates; what it hands over (a fetched value, statistics) belongs
 * to the extension, which copies it into the caller's memory and releases it (lib_free,
 * mcm_server_stats_free) before any code that can throw runs: an ERROR does not reset this
 * context, so a buffer held across one would stay allocated until the backend exits.
 */
#include "postgres.h"

#include <limits.h>
#include <string.h>
#include <time.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include <memcache.h>

PG_MODULE_MAGIC;

/* memcached reads an expiry above 30 days as an absolute Unix time. */
#define RELATIVE_EXPIRY_LIMIT ((int64) 60 * 60 * 24 * 30)

/* Reports kept per library call; a call that reports more keeps the first ones and the last. */
#define MAX_REPORTS 8
#define REPORT_TEXT_LEN 384

/* Longest key shown in an error message before it is cut. */
#define KEY_SHOWN_LEN 64

/* ---------------------------------------------------------------------------------------------
 * Settings and per-backend state
 */

static char *domain_setting = NULL;  /* memcache.domain */
static char *servers_setting = NULL; /* memcache.servers */
static int	distribution_setting = MC_DIST_CRC32_MODULO;	/* memcache.distribution */
/* TLS and login (mc_tls(3)), applied when the handle is made. */
static bool tls_setting = false;	/* memcache.tls */
static char *tls_ca_setting = NULL; /* memcache.tls_ca */
static char *tls_cert_setting = NULL;	/* memcache.tls_cert */
static char *tls_key_setting = NULL;	/* memcache.tls_key */
static bool tls_insecure_setting = false;	/* memcache.tls_insecure */
static char *auth_file_setting = NULL;	/* memcache.auth_file */

/*
 * pgmemcache's settings, so a site moving from pgmemcache keeps its postgresql.conf:
 * pgmemcache.default_servers is a list like memcache.servers (both are used when both are set),
 * pgmemcache.default_behavior's placement flags choose the distribution (-1: not given, then
 * memcache.distribution decides).
 */
static char *pgmemcache_servers_setting = NULL;
static char *pgmemcache_behavior_setting = NULL;
static int	behavior_distribution = -1;

/* Servers added with memcache_server_add() in this backend (comma-separated, in lib_mcxt). */
static char *added_servers = NULL;

/*
 * memcache.distribution's values: the names every front end uses (mclient --distribution, the
 * Ruby and PHP distribution: option), for the MC_DIST_* constants of memcache.h.
 */
static const struct config_enum_entry distribution_options[] = {
	{"crc32-modulo", MC_DIST_CRC32_MODULO, false},
	{"ketama-md5", MC_DIST_KETAMA_MD5, false},
	{NULL, 0, false}
};

/* The memory context the library allocates from (see lib_malloc); created once per backend. */
static MemoryContext lib_mcxt = NULL;
static struct memcache_ctxt *lib_ctxt = NULL;
static struct memcache *handle = NULL;
/*
 * What the handle was built from, "domain:<name>" or "servers:<list> distribution:<name>"; in
 * lib_mcxt.
 */
static char *handle_source = NULL;
/* The TLS and login settings the handle was made with (fields split by US, 037). */
static char *handle_security = NULL;

/* One report of the library, copied out of its memcache_err_ctxt by the handler. */
typedef struct LibReport
{
	uint32		code;			/* MCM_ERR_* */
	int			severity;		/* MCM_ERR_LVL_* */
	char		text[REPORT_TEXT_LEN];	/* "errstr[: strerror][: message]" */
	char		message[REPORT_TEXT_LEN];	/* the message alone (may be empty) */
} LibReport;

static LibReport reports[MAX_REPORTS];
static int	report_count = 0;

/* ---------------------------------------------------------------------------------------------
 * The library's allocator: PostgreSQL's, over lib_mcxt. These run inside library frames, so
 * none of them may throw (no elog, no palloc that can fail with an ERROR).
 */

/*
 * mcMalloc (and mcMallocAtomic). MCXT_ALLOC_NO_OOM: out of memory gives NULL instead of an
 * ERROR, whose longjmp would cross the library's Rust frames; the library fails the call with
 * MCM_ERR_MEM_MALLOC and the wrapper raises the ERROR after it returned. MCXT_ALLOC_HUGE and the
 * size check: a size PostgreSQL cannot allocate (a server announcing a value above 1 GB) is an
 * elog(ERROR) even with NO_OOM; it must be a NULL too. fetch() refuses values above 1 GB later.
 */
static void *
lib_malloc(size_t size)
{
	if (size > MaxAllocHugeSize)
		return NULL;
	return MemoryContextAllocExtended(lib_mcxt, size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/*
 * mcRealloc: the block stays in the context it came from (lib_mcxt). No NULL check: the library
 * grows only what lib_malloc or lib_realloc returned (spec 5.2); repalloc(NULL) crashes the
 * backend, which fails the tests instead of hiding a broken contract.
 */
static void *
lib_realloc(void *ptr, size_t size)
{
	if (size > MaxAllocHugeSize)
		return NULL;
#ifdef PGMC_HAVE_REPALLOC_EXTENDED
	return repalloc_extended(ptr, size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
#else
	{
		/*
		 * A server without repalloc_extended (before 16 and its back-branch releases):
		 * repalloc_huge throws on out of memory. The ERROR is caught here, in this frame, so
		 * its longjmp never reaches the library's; nothing but the allocation was under way, so
		 * undoing what the ERROR reset and flushing its state is all the cleanup there is.
		 */
		MemoryContext caller = CurrentMemoryContext;
		uint32		holdoff = InterruptHoldoffCount;
		uint32		cancel_holdoff = QueryCancelHoldoffCount;
		void	   *volatile grown = NULL;

		PG_TRY();
		{
			grown = repalloc_huge(ptr, size);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(caller);
			FlushErrorState();
			InterruptHoldoffCount = holdoff;
			QueryCancelHoldoffCount = cancel_holdoff;
			grown = NULL;
		}
		PG_END_TRY();
		return grown;
	}
#endif
}

/*
 * mcFree, and what the extension releases the library's values with. No NULL check, as for
 * lib_realloc: the library never frees NULL, and pfree(NULL) crashes the backend.
 */
static void
lib_free(void *ptr)
{
	pfree(ptr);
}

/* A copy of `s` in lib_mcxt, or NULL when out of memory (never throws). */
static char *
lib_strdup(const char *s)
{
	size_t		len = strlen(s) + 1;
	char	   *copy = MemoryContextAllocExtended(lib_mcxt, len, MCXT_ALLOC_NO_OOM);

	if (copy != NULL)
		memcpy(copy, s, len);
	return copy;
}

/* ---------------------------------------------------------------------------------------------
 * The error handler: runs inside library frames, so it only copies. No palloc, no elog.
 */

static void
copy_bounded(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t		n = srclen < dstlen - 1 ? srclen : dstlen - 1;
	size_t		i;

	for (i = 0; i < n; i++)
		dst[i] = (src[i] == '\0') ? ' ' : src[i];
	dst[n] = '\0';
}

static int32_t
record_report(const void *ctxt, void *ectxt_ptr)
{
	struct memcache_err_ctxt *e = (struct memcache_err_ctxt *) ectxt_ptr;
	LibReport  *r;
	size_t		used;

	(void) ctxt;
	if (e == NULL)
		return 0;
	/* Full: the last slot keeps the newest report, usually the one that sums the failure up. */
	r = &reports[report_count < MAX_REPORTS ? report_count++ : MAX_REPORTS - 1];
	r->code = e->errcode;
	r->severity = (unsigned char) e->severity;
	r->message[0] = '\0';
	if (e->errmsg != NULL && e->errlen > 0)
		copy_bounded(r->message, sizeof(r->message), e->errmsg, e->errlen);

	copy_bounded(r->text, sizeof(r->text), e->errstr ? e->errstr : "memcache error",
				 e->errstr ? strlen(e->errstr) : strlen("memcache error"));
	used = strlen(r->text);
	if (e->errnum != 0 && used < sizeof(r->text) - 1)
	{
		const char *sys = strerror((int) e->errnum);

		snprintf(r->text + used, sizeof(r->text) - used, ": %s", sys);
		used = strlen(r->text);
	}
	if (r->message[0] != '\0' && used < sizeof(r->text) - 1)
		snprintf(r->text + used, sizeof(r->text) - used, ": %s", r->message);

	/* Keep going whatever the severity: the wrapper decides once the call has returned. */
	e->cont = 'y';
	return 0;
}

static void
begin_call(void)
{
	report_count = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Turning recorded reports into PostgreSQL messages (after the library call returned)
 */

typedef enum CallOutcome
{
	OUTCOME_FAILED,				/* the call failed: raise an ERROR */
	OUTCOME_BAD_KEY,			/* the key was refused before any I/O */
	OUTCOME_REFUSED_BY_SERVER	/* SERVER_ERROR, e.g. the value is too large */
} CallOutcome;

/*
 * A key refused before any I/O: MCM_ERR_PROTO whose errstr (the start of text) says "invalid
 * key"; the message alone says why, with or without that lead depending on the library's
 * version, so the message is not what identifies it.
 */
static bool
is_key_report(const LibReport *r)
{
	return r->code == MCM_ERR_PROTO &&
		(strncmp(r->text, "invalid key", 11) == 0 || strncmp(r->message, "invalid key", 11) == 0);
}

/* The report that explains a failure: the most severe, the latest among equals. */
static int
primary_report(void)
{
	int			best = -1;
	int			i;

	for (i = 0; i < report_count; i++)
	{
		if (is_key_report(&reports[i]))
			return i;
		if (best < 0 || reports[i].severity >= reports[best].severity)
			best = i;
	}
	return best;
}

/* True when the library reported something beyond information (a reconnect, a trace). */
static bool
has_problem_report(void)
{
	int			i;

	for (i = 0; i < report_count; i++)
		if (reports[i].severity > MCM_ERR_LVL_INFO)
			return true;
	return false;
}

/* "text" of a key for messages: cut to KEY_SHOWN_LEN bytes (on a character boundary). */
static char *
shown_key(const char *key)
{
	size_t		len = strlen(key);

	if (len <= KEY_SHOWN_LEN)
		return pstrdup(key);
	len = pg_mbcliplen(key, (int) len, KEY_SHOWN_LEN);
	return psprintf("%.*s...", (int) len, key);
}

/*
 * Raises the ERROR for a failed call. `what` names the SQL function; `key` is NULL for calls
 * without one; `rc` is the library's return value (for the message when nothing was reported).
 */
static void raise_failure(const char *what, const char *key, CallOutcome outcome, int rc)
			pg_attribute_noreturn();

static void
raise_failure(const char *what, const char *key, CallOutcome outcome, int rc)
{
	int			primary = primary_report();
	StringInfoData detail;
	int			sqlstate;
	int			i;

	if (primary < 0)
	{
		/* Nothing reached the handler: ask the handle for its last error. */
		char		buf[REPORT_TEXT_LEN];
		int			code = handle ? mc_last_error(handle, buf, sizeof(buf)) : 0;

		if (code > 0)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("memcache: %s", buf),
					 errcontext("%s()", what)));
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("memcache: %s failed with code %d", what, rc)));
	}

	if (outcome == OUTCOME_BAD_KEY || is_key_report(&reports[primary]))
	{
		const LibReport *r = &reports[primary];
		const char *why = r->message[0] ? r->message : r->text;

		/* The library says "invalid key: <why>"; name the key in between. */
		if (strncmp(why, "invalid key: ", 13) == 0)
			why += 13;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("memcache: invalid key \"%s\": %s", key ? shown_key(key) : "", why),
				 errhint("Keys are 1 to 250 bytes without spaces or control characters.")));
	}

	switch (reports[primary].code)
	{
		case MCM_ERR_MEM_MALLOC:
		case MCM_ERR_MEM_REALLOC:
			sqlstate = ERRCODE_OUT_OF_MEMORY;
			break;
		default:
			sqlstate = outcome == OUTCOME_REFUSED_BY_SERVER
				? ERRCODE_PROGRAM_LIMIT_EXCEEDED
				: ERRCODE_SYSTEM_ERROR;
			break;
	}

	if (handle != NULL && handle->num_servers == 0 && handle_source != NULL)
	{
		/* The usual cause: a domain nobody has filled (or created) yet. */
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("memcache: %s", reports[primary].text),
				 strncmp(handle_source, "domain:", 7) == 0
				 ? errhint("The domain \"%s\" has no servers; add some with "
						   "\"mcadmin --domain %s add HOST:PORT\".",
						   handle_source + 7, handle_source + 7)
				 : errhint("memcache.servers lists no servers."),
				 errcontext("%s()", what)));
	}

	initStringInfo(&detail);
	for (i = 0; i < report_count; i++)
	{
		if (i == primary)
			continue;
		appendStringInfo(&detail, "%s%s", detail.len ? "; " : "", reports[i].text);
	}
	if (detail.len > 0)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("memcache: %s", reports[primary].text),
				 errdetail("Also reported: %s.", detail.data),
				 errcontext("%s()", what)));
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("memcache: %s", reports[primary].text),
			 errcontext("%s()", what)));
}

/*
 * Re-emits the reports of a call that did not fail: informational ones at DEBUG1, notices as
 * NOTICE, anything more severe as WARNING. `expected` (or 0) is a code that only restates the
 * function's ordinary answer (MC_STORE for "not stored") and is not shown.
 */
static void
emit_reports(uint32 expected)
{
	int			count = report_count;
	int			i;

	/* ereport below may run code that reaches the library again; work from a snapshot. */
	report_count = 0;
	for (i = 0; i < count; i++)
	{
		const LibReport *r = &reports[i];
		int			level;

		if (expected != 0 && r->code == expected)
			continue;
		if (r->severity <= MCM_ERR_LVL_INFO)
			level = DEBUG1;
		else if (r->severity == MCM_ERR_LVL_NOTICE)
			level = NOTICE;
		else
			level = WARNING;
		ereport(level, (errmsg("memcache: %s", r->text)));
	}
}

/* ---------------------------------------------------------------------------------------------
 * The handle
 */

static void
ensure_context(void)
{
	if (lib_ctxt != NULL)
		return;
	if (lib_mcxt == NULL)
		lib_mcxt = AllocSetContextCreate(TopMemoryContext, "pgmemcache_rs",
										 ALLOCSET_DEFAULT_SIZES);
	/* NULL mallocAtomic: the library then uses lib_malloc for strings and values too. */
	lib_ctxt = mcMemNewCtxt(lib_free, lib_malloc, NULL, lib_realloc);
	if (lib_ctxt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("memcache: cannot create the library context")));
	mcErrSetupCtxt(lib_ctxt, record_report);
	/* A new context filters INFO and NOTICE out; see everything and decide here. */
	mcm_err_filter_del(lib_ctxt, MCM_ERR_LVL_INFO | MCM_ERR_LVL_NOTICE);
}

static void
drop_handle(void)
{
	if (handle != NULL)
	{
		mcm_free(lib_ctxt, handle);
		handle = NULL;
	}
	if (handle_source != NULL)
		pfree(handle_source);
	handle_source = NULL;
	if (handle_security != NULL)
		pfree(handle_security);
	handle_security = NULL;
}

/* Adds the comma-separated servers of `list` to a private handle; ERROR on failure. */
static void
add_listed_servers(struct memcache *mc, const char *list)
{
	char	   *copy = pstrdup(list);
	char	   *item = copy;

	while (item != NULL)
	{
		char	   *next = strchr(item, ',');
		char	   *end;
		int			rc;

		if (next != NULL)
			*next++ = '\0';
		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*item != '\0')
		{
			begin_call();
			rc = mcm_server_add4(lib_ctxt, mc, item);
			if (rc != 0)
			{
				int			primary = primary_report();

				mcm_free(lib_ctxt, mc);
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("memcache: cannot use server \"%s\": %s",
								item,
								primary >= 0 ? reports[primary].text : "not added"),
						 errdetail("mc_server_add4() returned %d.", rc)));
			}
			emit_reports(0);
		}
		item = next;
	}
	pfree(copy);
}

/* Appends the non-empty `item` to the comma-separated `buf`. */
static void
append_list(StringInfo buf, const char *item)
{
	if (item == NULL || item[0] == '\0')
		return;
	appendStringInfo(buf, "%s%s", buf->len ? "," : "", item);
}

/*
 * The servers of a private handle: memcache.servers, pgmemcache.default_servers and what
 * memcache_server_add() added, in that order. Empty: the handle follows memcache.domain.
 */
static char *
private_server_list(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_list(&buf, servers_setting);
	append_list(&buf, pgmemcache_servers_setting);
	append_list(&buf, added_servers);
	return buf.data;
}

/* "" for a NULL string setting. */
static const char *
setting(const char *value)
{
	return value ? value : "";
}

/*
 * Applies the TLS and login settings to the new handle `mc`; on a refusal (a CA file that holds
 * no certificate, a credentials file others can read) frees it and raises an ERROR naming the
 * setting, with the library's reason (never the secret).
 */
static void
apply_security(struct memcache *mc)
{
	const char *failed = NULL;
	char		why[REPORT_TEXT_LEN];

	if (tls_setting && mc_tls(mc, 1) != 0)
		failed = "memcache.tls";
	else if (setting(tls_ca_setting)[0] && mc_tls_ca(mc, tls_ca_setting) != 0)
		failed = "memcache.tls_ca";
	else if (setting(tls_cert_setting)[0] &&
			 mc_tls_cert(mc, tls_cert_setting,
						 setting(tls_key_setting)[0] ? tls_key_setting : NULL) != 0)
		failed = "memcache.tls_cert";
	else if (tls_insecure_setting && mc_tls_insecure(mc, 1) != 0)
		failed = "memcache.tls_insecure";
	else if (setting(auth_file_setting)[0] && mc_auth_file(mc, auth_file_setting) != 0)
		failed = "memcache.auth_file";
	if (failed == NULL)
		return;
	why[0] = '\0';
	(void) mc_last_error(mc, why, sizeof(why));
	mcm_free(lib_ctxt, mc);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("memcache: %s refused: %s", failed, why[0] ? why : "refused by the library")));
}

/* The backend's handle for the current settings, created or rebuilt as needed. */
static struct memcache *
get_handle(void)
{
	char	   *list = private_server_list();
	bool		private_list = list[0] != '\0';
	int			distribution = behavior_distribution >= 0 ? behavior_distribution
		: distribution_setting;
	char	   *wanted;
	char	   *security;
	struct memcache *mc;

	ensure_context();
	wanted = private_list
		? psprintf("servers:%s distribution:%s", list,
				   distribution_options[distribution == MC_DIST_KETAMA_MD5].name)
		: psprintf("domain:%s", domain_setting ? domain_setting : "default");
	/* A change of a TLS or login setting makes a new handle too. */
	security = psprintf("tls:%d\037ca:%s\037cert:%s\037key:%s\037insecure:%d\037auth:%s",
					  tls_setting, setting(tls_ca_setting), setting(tls_cert_setting),
					  setting(tls_key_setting), tls_insecure_setting, setting(auth_file_setting));
	if (handle != NULL && handle_source != NULL && strcmp(wanted, handle_source) == 0 &&
		handle_security != NULL && strcmp(security, handle_security) == 0)
	{
		pfree(security);
		pfree(wanted);
		return handle;
	}
	drop_handle();

	begin_call();
	mc = private_list
		? mcm_new_private(lib_ctxt)
		: mcm_new2(lib_ctxt, domain_setting ? domain_setting : "default");
	if (mc == NULL)
	{
		int			primary = primary_report();

		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("memcache: cannot create a handle for %s: %s", wanted,
						primary >= 0 ? reports[primary].text : "out of memory")));
	}
	emit_reports(0);
	apply_security(mc);
	if (private_list)
	{
		/*
		 * An explicit list is placed as every front end places it (crc32-modulo unless
		 * memcache.distribution says otherwise), so a 1.4 program, mclient or another binding
		 * given the same list finds the same keys. Chosen before the servers are added.
		 */
		mc_distribution(mc, distribution);
		add_listed_servers(mc, list);
	}

	handle_source = lib_strdup(wanted);
	handle_security = lib_strdup(security);
	if (handle_source == NULL || handle_security == NULL)
	{
		mcm_free(lib_ctxt, mc);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	handle = mc;
	pfree(security);
	pfree(wanted);
	return handle;
}

/* ---------------------------------------------------------------------------------------------
 * Settings
 */

static bool
check_domain(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	size_t		len = p ? strlen(p) : 0;

	(void) extra;
	(void) source;
	if (len < 1 || len > 64)
	{
		GUC_check_errdetail("A domain name is 1 to 64 characters.");
		return false;
	}
	for (; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  *p == '_' || *p == '.' || *p == '-'))
		{
			GUC_check_errdetail("A domain name is made of A-Z, a-z, 0-9, '_', '.' and '-'.");
			return false;
		}
	}
	return true;
}

static bool
check_servers(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	(void) extra;
	(void) source;
	if (p == NULL)
		return true;
	for (; *p; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("The list holds a control character.");
			return false;
		}
	}
	return true;
}

/*
 * pgmemcache.default_behavior: "FLAG:VALUE, ..." with libmemcached's behaviour names (the
 * MEMCACHED_BEHAVIOR_ and MEMCACHED_ prefixes may be left out, case does not matter). Only the
 * flags that decide where a key goes matter here: DISTRIBUTION:MODULA is crc32-modulo,
 * DISTRIBUTION:CONSISTENT (or CONSISTENT_KETAMA) is ketama-md5; HASH:CRC goes with the first,
 * HASH:MD5 with the second. A placement this library cannot reproduce (another hash, another
 * distribution) is refused here rather than put keys where the site's other clients do not look.
 * Flags about the connection (timeouts, NO_BLOCK, BINARY_PROTOCOL, ...) are accepted and have
 * no effect: the library has its own deadlines and speaks the text protocol.
 */
static const char *const ignored_behaviors[] = {
	"BINARY_PROTOCOL", "NO_BLOCK", "TCP_NODELAY", "TCP_KEEPALIVE", "CONNECT_TIMEOUT",
	"RCV_TIMEOUT", "SND_TIMEOUT", "POLL_TIMEOUT", "RETRY_TIMEOUT", "SERVER_FAILURE_LIMIT",
	"BUFFER_REQUESTS", "CACHE_LOOKUPS", "SUPPORT_CAS", "SOCKET_SEND_SIZE", "SOCKET_RECV_SIZE",
	NULL
};

static const char *
without_prefix(const char *s, const char *prefix)
{
	size_t		n = strlen(prefix);

	return pg_strncasecmp(s, prefix, n) == 0 ? s + n : s;
}

static bool
check_behavior(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	char	   *item;
	int			distribution = -1;
	const char *hash = NULL;
	int		   *result;

	(void) source;
	copy = pstrdup(*newval ? *newval : "");
	for (item = strtok(copy, ","); item != NULL; item = strtok(NULL, ","))
	{
		char	   *colon;
		const char *flag;
		const char *value;
		int			i;

		while (*item == ' ' || *item == '\t')
			item++;
		colon = strchr(item, ':');
		if (colon == NULL)
		{
			GUC_check_errdetail("\"%s\" is not FLAG:VALUE.", item);
			return false;
		}
		*colon = '\0';
		flag = without_prefix(item, "MEMCACHED_BEHAVIOR_");
		value = without_prefix(colon + 1, "MEMCACHED_");
		{
			char	   *end = colon + 1 + strlen(colon + 1);

			while (end > colon + 1 && (end[-1] == ' ' || end[-1] == '\t'))
				*--end = '\0';
		}
		if (pg_strcasecmp(flag, "DISTRIBUTION") == 0)
		{
			value = without_prefix(value, "DISTRIBUTION_");
			if (pg_strcasecmp(value, "MODULA") == 0)
				distribution = MC_DIST_CRC32_MODULO;
			else if (pg_strcasecmp(value, "CONSISTENT") == 0 ||
					 pg_strcasecmp(value, "CONSISTENT_KETAMA") == 0)
				distribution = MC_DIST_KETAMA_MD5;
			else
			{
				GUC_check_errdetail("DISTRIBUTION:%s is not supported; MODULA and CONSISTENT "
									"(or CONSISTENT_KETAMA) are.", value);
				return false;
			}
		}
		else if (pg_strcasecmp(flag, "HASH") == 0)
		{
			value = without_prefix(value, "HASH_");
			if (pg_strcasecmp(value, "MD5") != 0 && pg_strcasecmp(value, "CRC") != 0)
			{
				GUC_check_errdetail("HASH:%s is not supported; MD5 (with CONSISTENT) and CRC "
									"(with MODULA) are.", value);
				return false;
			}
			hash = pg_strcasecmp(value, "MD5") == 0 ? "MD5" : "CRC";
		}
		else
		{
			for (i = 0; ignored_behaviors[i] != NULL; i++)
				if (pg_strcasecmp(flag, ignored_behaviors[i]) == 0)
					break;
			if (ignored_behaviors[i] == NULL)
			{
				GUC_check_errdetail("Behavior \"%s\" is not supported.", flag);
				return false;
			}
		}
	}
	if (hash != NULL)
	{
		/* The hash alone picks the distribution it belongs to; a mismatch is refused. */
		int			implied = strcmp(hash, "MD5") == 0 ? MC_DIST_KETAMA_MD5 : MC_DIST_CRC32_MODULO;

		if (distribution >= 0 && distribution != implied)
		{
			GUC_check_errdetail("HASH:%s cannot be combined with that DISTRIBUTION.", hash);
			return false;
		}
		distribution = implied;
	}
	/* GUC frees extra with free(): malloc, as guc_malloc (not exported before 16) does. */
	result = (int *) malloc(sizeof(int));
	if (result == NULL)
	{
		GUC_check_errdetail("out of memory");
		return false;
	}
	*result = distribution;
	*extra = result;
	return true;
}

static void
assign_behavior(const char *newval, void *extra)
{
	(void) newval;
	behavior_distribution = extra ? *(int *) extra : -1;
}

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomStringVariable("memcache.domain",
							   "Shared memcached server list (domain) used by the memcache_* functions.",
							   "Domains are edited with mcadmin(8); a change is seen by the next call, "
							   "without reconnecting. Ignored while memcache.servers is set.",
							   &domain_setting,
							   "default",
							   PGC_USERSET,
							   0,
							   check_domain, NULL, NULL);
	DefineCustomStringVariable("memcache.servers",
							   "Comma-separated memcached servers (host:port, [v6]:port or "
							   "/socket/path) used instead of memcache.domain.",
							   "Empty (the default) uses memcache.domain.",
							   &servers_setting,
							   "",
							   PGC_SUSET,
							   0,
							   check_servers, NULL, NULL);
	DefineCustomEnumVariable("memcache.distribution",
							 "How keys are placed on the servers of memcache.servers.",
							 "crc32-modulo (the default, libmemcache 1.4's rule) or ketama-md5 "
							 "(libmemcached's ketama). A domain brings its own.",
							 &distribution_setting,
							 MC_DIST_CRC32_MODULO,
							 distribution_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("pgmemcache.default_servers",
							   "pgmemcache's comma-separated memcached servers (host[:port]).",
							   "Used with memcache.servers and memcache_server_add(); any of them "
							   "makes a private list instead of memcache.domain.",
							   &pgmemcache_servers_setting,
							   "",
							   PGC_SUSET,
							   0,
							   check_servers, NULL, NULL);
	DefineCustomStringVariable("pgmemcache.default_behavior",
							   "pgmemcache's behavior flags (FLAG:VALUE, ...); DISTRIBUTION and "
							   "HASH choose where keys go.",
							   "DISTRIBUTION:CONSISTENT is ketama-md5, DISTRIBUTION:MODULA "
							   "crc32-modulo; overrides memcache.distribution when it names one.",
							   &pgmemcache_behavior_setting,
							   "",
							   PGC_USERSET,
							   0,
							   check_behavior, assign_behavior, NULL);
	DefineCustomBoolVariable("memcache.tls",
							 "Speak TLS to every server, not only those written tls://HOST:PORT.",
							 NULL,
							 &tls_setting,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	/* The settings that name files, or weaken checks, are the superuser's (PGC_SUSET). */
	DefineCustomStringVariable("memcache.tls_ca",
							   "PEM file of the CAs trusted for TLS servers.",
							   "Empty (the default) trusts the system's CAs.",
							   &tls_ca_setting,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("memcache.tls_cert",
							   "PEM client certificate chain for TLS servers that ask for one.",
							   NULL,
							   &tls_cert_setting,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("memcache.tls_key",
							   "PEM private key of memcache.tls_cert.",
							   "Empty (the default) reads it from memcache.tls_cert's file.",
							   &tls_key_setting,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("memcache.tls_insecure",
							 "Accept any TLS server certificate, for any name (tests only).",
							 NULL,
							 &tls_insecure_setting,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("memcache.auth_file",
							   "File of user:password to log in to memcached -Y servers with.",
							   "It must belong to the server's user and be closed to others.",
							   &auth_file_setting,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("memcache");
	MarkGUCPrefixReserved("pgmemcache");
#else
	EmitWarningsOnPlaceholders("memcache");
	EmitWarningsOnPlaceholders("pgmemcache");
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Argument helpers
 */

/* Seconds of an interval as memcached's exptime: relative up to 30 days, absolute beyond. */
static time_t
expiry_of(Interval *iv)
{
	int64		secs;
	int64		usecs = iv->time;

	secs = usecs / USECS_PER_SEC;
	if (usecs % USECS_PER_SEC > 0)
		secs++;					/* round up: 0 would mean "never expires" */
	secs += (int64) iv->day * SECS_PER_DAY;
	secs += (int64) iv->month * DAYS_PER_MONTH * SECS_PER_DAY;
	if (secs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("memcache: expire must not be negative")));
	if (secs <= RELATIVE_EXPIRY_LIMIT)
		return (time_t) secs;
	secs += (int64) time(NULL);
	if (secs > (int64) INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("memcache: expire is too far in the future")));
	return (time_t) secs;
}

/*
 * A timestamptz as memcached's exptime: the seconds left when they are 30 days or fewer (an
 * absolute time that small would be read as relative), the Unix time beyond. A time already
 * past is refused: memcached would read 0 as "never expires".
 */
static time_t
expiry_at(TimestampTz at)
{
	int64		unix_secs = at / USECS_PER_SEC +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	int64		left = unix_secs - (int64) time(NULL);

	if (TIMESTAMP_NOT_FINITE(at) || left <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("memcache: expire must be a finite time in the future")));
	if (left <= RELATIVE_EXPIRY_LIMIT)
		return (time_t) left;
	if (unix_secs > (int64) INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("memcache: expire is too far in the future")));
	return (time_t) unix_secs;
}

static uint64
delta_of(int64 delta)
{
	if (delta < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("memcache: delta must not be negative"),
				 errhint("Use memcache_decr() to subtract.")));
	return (uint64) delta;
}

/* ---------------------------------------------------------------------------------------------
 * Fetching
 */

/*
 * The value of `key` copied into a new bytea, or NULL on a miss. The library's buffer is ours
 * (in lib_mcxt, from lib_malloc): it is copied into the caller's memory and released with
 * lib_free before anything that can throw runs (palloc_extended with NO_OOM does not throw).
 */
static bytea *
fetch(const char *what, char *key)
{
	struct memcache *mc = get_handle();
	size_t		len = 0;
	char	   *val;
	bytea	   *result;

	begin_call();
	val = mcm_aget2(lib_ctxt, mc, key, strlen(key), &len);
	if (val == NULL)
	{
		/* NULL is a miss, unless the library reported a problem. */
		if (has_problem_report())
			raise_failure(what, key, OUTCOME_FAILED, 0);
		emit_reports(0);
		CHECK_FOR_INTERRUPTS();
		return NULL;
	}
	if (len > MaxAllocSize - VARHDRSZ)
	{
		lib_free(val);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("memcache: value of %zu bytes is too large", len)));
	}
	result = (bytea *) palloc_extended(len + VARHDRSZ, MCXT_ALLOC_NO_OOM);
	if (result != NULL)
	{
		SET_VARSIZE(result, len + VARHDRSZ);
		memcpy(VARDATA(result), val, len);
	}
	lib_free(val);
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on a request of size %zu.", len + VARHDRSZ)));
	emit_reports(0);
	CHECK_FOR_INTERRUPTS();
	return result;
}

PG_FUNCTION_INFO_V1(pgmc_get);
Datum
pgmc_get(PG_FUNCTION_ARGS)
{
	bytea	   *v = fetch("memcache_get", text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (v == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(v);
}

PG_FUNCTION_INFO_V1(pgmc_get_text);
Datum
pgmc_get_text(PG_FUNCTION_ARGS)
{
	bytea	   *v = fetch("memcache_get_text", text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (v == NULL)
		PG_RETURN_NULL();
	/* Text must be valid in the database encoding (and holds no NUL): refuse anything else. */
	pg_verifymbstr(VARDATA(v), VARSIZE(v) - VARHDRSZ, false);
	PG_RETURN_TEXT_P((text *) v);
}

/* ---------------------------------------------------------------------------------------------
 * Storing
 */

typedef int (*StoreFunc) (struct memcache_ctxt *, struct memcache *, char *, size_t,
						  const void *, size_t, time_t, uint16_t);

/* set/add/replace: true stored, false not stored (add: exists; replace: missing). */
static Datum
store(FunctionCallInfo fcinfo, const char *what, StoreFunc fn)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *value = PG_GETARG_BYTEA_PP(1);	/* text and bytea share the varlena layout */
	/* The third argument is an interval, or a timestamptz in pgmemcache's other form. */
	time_t		expire = get_fn_expr_argtype(fcinfo->flinfo, 2) == TIMESTAMPTZOID
		? expiry_at(PG_GETARG_TIMESTAMPTZ(2))
		: expiry_of(PG_GETARG_INTERVAL_P(2));
	struct memcache *mc = get_handle();
	int			rc;

	begin_call();
	rc = fn(lib_ctxt, mc, key, strlen(key), VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
			expire, 0);
	switch (rc)
	{
		case 0:
			emit_reports(0);
			PG_RETURN_BOOL(true);
		case 1:
			emit_reports(MCM_ERR_MC_STORE);
			PG_RETURN_BOOL(false);
		case -9:
			raise_failure(what, key, OUTCOME_BAD_KEY, rc);
			break;
		case 4:
			raise_failure(what, key, OUTCOME_REFUSED_BY_SERVER, rc);
			break;
		default:
			raise_failure(what, key, OUTCOME_FAILED, rc);
			break;
	}
	PG_RETURN_NULL();			/* not reached */
}

PG_FUNCTION_INFO_V1(pgmc_set);
Datum
pgmc_set(PG_FUNCTION_ARGS)
{
	return store(fcinfo, "memcache_set", mcm_set);
}

PG_FUNCTION_INFO_V1(pgmc_add);
Datum
pgmc_add(PG_FUNCTION_ARGS)
{
	return store(fcinfo, "memcache_add", mcm_add);
}

PG_FUNCTION_INFO_V1(pgmc_replace);
Datum
pgmc_replace(PG_FUNCTION_ARGS)
{
	return store(fcinfo, "memcache_replace", mcm_replace);
}

PG_FUNCTION_INFO_V1(pgmc_delete);
Datum
pgmc_delete(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	/* pgmemcache's hold time: servers since 1.4 have none; the library deletes at once (a NOTICE). */
	time_t		hold = PG_NARGS() > 1 ? expiry_of(PG_GETARG_INTERVAL_P(1)) : 0;
	struct memcache *mc = get_handle();
	int			rc;

	begin_call();
	rc = mcm_delete(lib_ctxt, mc, key, strlen(key), hold);
	if (rc == 0 || rc == 1)
	{
		emit_reports(0);
		PG_RETURN_BOOL(rc == 0);
	}
	raise_failure("memcache_delete", key, rc == -9 ? OUTCOME_BAD_KEY : OUTCOME_FAILED, rc);
	PG_RETURN_NULL();			/* not reached */
}

/* ---------------------------------------------------------------------------------------------
 * Counters
 */

typedef int (*ArithFunc) (struct memcache_ctxt *, struct memcache *, char *, size_t, uint64_t,
						  uint64_t *);

static Datum
arith(FunctionCallInfo fcinfo, const char *what, ArithFunc fn)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	uint64		delta = delta_of(PG_GETARG_INT64(1));
	struct memcache *mc = get_handle();
	uint64_t	value = 0;
	int			rc;

	begin_call();
	rc = fn(lib_ctxt, mc, key, strlen(key), delta, &value);
	if (rc == 0)
	{
		emit_reports(0);
		if (value > (uint64_t) PG_INT64_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("memcache: counter \"%s\" is %llu, out of range for bigint",
							shown_key(key), (unsigned long long) value)));
		PG_RETURN_INT64((int64) value);
	}
	if (rc == MC_NOT_FOUND)
	{
		emit_reports(0);
		PG_RETURN_NULL();
	}
	raise_failure(what, key, rc == -9 ? OUTCOME_BAD_KEY : OUTCOME_FAILED, rc);
	PG_RETURN_NULL();			/* not reached */
}

PG_FUNCTION_INFO_V1(pgmc_incr);
Datum
pgmc_incr(PG_FUNCTION_ARGS)
{
	return arith(fcinfo, "memcache_incr", mcm_incr64);
}

PG_FUNCTION_INFO_V1(pgmc_decr);
Datum
pgmc_decr(PG_FUNCTION_ARGS)
{
	return arith(fcinfo, "memcache_decr", mcm_decr64);
}

/* ---------------------------------------------------------------------------------------------
 * Servers: statistics and flush
 */

/* Where the statistics walk puts each (server, name, value). */
typedef void (*StatRow) (void *sink, const char *server, const char *name, const char *value);

static void
put_u64(StatRow row, void *sink, const char *server, const char *name, uint64 v)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), UINT64_FORMAT, v);
	row(sink, server, name, buf);
}

static void
put_tv(StatRow row, void *sink, const char *server, const char *name, struct timeval tv)
{
	char		buf[48];

	snprintf(buf, sizeof(buf), "%lld.%06ld", (long long) tv.tv_sec, (long) tv.tv_usec);
	row(sink, server, name, buf);
}

/*
 * Makes the handle pick up the current list of its domain. Stats walk mc->servers, which only
 * changes when a call looks at the domain; mcm_server_find() does that without any I/O.
 */
static void
refresh_server_list(struct memcache *mc)
{
	begin_call();
	(void) mcm_server_find(lib_ctxt, mc, 0);
	emit_reports(0);
}

/*
 * The statistics of every server of the handle, one row() per statistic. A server that does not
 * answer is a WARNING; none answering is an ERROR.
 */
static void
walk_stats(StatRow row, void *sink)
{
	struct memcache *mc = get_handle();
	uint32		i;
	uint32		count;
	int			answered = 0;

	refresh_server_list(mc);
	count = mc->num_servers;
	for (i = 0; i < count; i++)
	{
		struct memcache_server *ms = mc->servers[i];
		struct memcache_server_stats *s;
		struct memcache_server_stats copy;
		char		version[128];
		char	   *server;

		server = psprintf("%s:%s", ms->hostname ? ms->hostname : "",
						  ms->port ? ms->port : "");
		begin_call();
		s = mcm_server_stats(lib_ctxt, mc, ms);
		if (s == NULL)
		{
			int			primary = primary_report();

			ereport(WARNING,
					(errmsg("memcache: no statistics from %s: %s", server,
							primary >= 0 ? reports[primary].text : "no reply")));
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		/* Copy, then release them (mcm_server_stats_free: lib_free) before anything can throw. */
		copy = *s;
		copy_bounded(version, sizeof(version), s->version ? s->version : "",
					 s->version ? strlen(s->version) : 0);
		mcm_server_stats_free(lib_ctxt, s);
		emit_reports(0);
		answered++;

		put_u64(row, sink, server, "pid", (uint64) copy.pid);
		put_u64(row, sink, server, "uptime", (uint64) copy.uptime);
		put_u64(row, sink, server, "time", (uint64) copy.time);
		row(sink, server, "version", version);
		put_tv(row, sink, server, "rusage_user", copy.rusage_user);
		put_tv(row, sink, server, "rusage_system", copy.rusage_system);
		put_u64(row, sink, server, "curr_items", copy.curr_items);
		put_u64(row, sink, server, "total_items", copy.total_items);
		put_u64(row, sink, server, "bytes", copy.bytes);
		put_u64(row, sink, server, "curr_connections", copy.curr_connections);
		put_u64(row, sink, server, "total_connections", copy.total_connections);
		put_u64(row, sink, server, "connection_structures", copy.connection_structures);
		put_u64(row, sink, server, "cmd_get", copy.cmd_get);
		put_u64(row, sink, server, "cmd_set", copy.cmd_set);
		put_u64(row, sink, server, "get_hits", copy.get_hits);
		put_u64(row, sink, server, "get_misses", copy.get_misses);
		put_u64(row, sink, server, "bytes_read", copy.bytes_read);
		put_u64(row, sink, server, "bytes_written", copy.bytes_written);
		put_u64(row, sink, server, "limit_maxbytes", copy.limit_maxbytes);
		CHECK_FOR_INTERRUPTS();
	}
	if (answered == 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("memcache: no server answered"),
				 errdetail("The handle (%s) has %u server(s).", handle_source, count)));
}

/* A set-returning function's tuplestore, set up for materialize mode. */
typedef struct TableSink
{
	Tuplestorestate *ts;
	TupleDesc	desc;
} TableSink;

static TableSink
begin_table(FunctionCallInfo fcinfo, const char *what)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TableSink	t;
	MemoryContext old;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s() must be called where a set is accepted", what)));
	if (get_call_result_type(fcinfo, NULL, &t.desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "%s(): return type must be a row type", what);
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	t.desc = CreateTupleDescCopy(t.desc);
	t.ts = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = t.ts;
	rsinfo->setDesc = t.desc;
	return t;
}

static void
table_row(void *sink, const char *server, const char *name, const char *value)
{
	TableSink  *t = (TableSink *) sink;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(server);
	values[1] = CStringGetTextDatum(name);
	values[2] = CStringGetTextDatum(value);
	tuplestore_putvalues(t->ts, t->desc, values, nulls);
}

/* memcache_stats_rows() (memcache_stats() of 1.0): one row per statistic per server. */
PG_FUNCTION_INFO_V1(pgmc_stats);
Datum
pgmc_stats(PG_FUNCTION_ARGS)
{
	TableSink	t = begin_table(fcinfo, "memcache_stats");

	walk_stats(table_row, &t);
	return (Datum) 0;
}

/* pgmemcache's memcache_stats() text: "Server: HOST (PORT)" then "name: value" lines. */
typedef struct TextSink
{
	StringInfoData buf;
	char	   *server;			/* the server whose header was written last */
} TextSink;

static void
text_row(void *sink, const char *server, const char *name, const char *value)
{
	TextSink   *t = (TextSink *) sink;

	if (t->server == NULL || strcmp(t->server, server) != 0)
	{
		const char *colon = strrchr(server, ':');
		int			hostlen = colon ? (int) (colon - server) : (int) strlen(server);

		appendStringInfo(&t->buf, "%sServer: %.*s (%s)\n", t->buf.len ? "\n" : "",
						 hostlen, server, colon ? colon + 1 : "");
		t->server = pstrdup(server);
	}
	appendStringInfo(&t->buf, "%s: %s\n", name, value);
}

PG_FUNCTION_INFO_V1(pgmc_stats_text);
Datum
pgmc_stats_text(PG_FUNCTION_ARGS)
{
	TextSink	t;

	initStringInfo(&t.buf);
	t.server = NULL;
	walk_stats(text_row, &t);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(t.buf.data, t.buf.len));
}

/* ---------------------------------------------------------------------------------------------
 * pgmemcache's server list and multi-get
 */

/*
 * memcache_server_add('host[:port]' or a comma-separated list): adds to this backend's private
 * list (see private_server_list). The handle is rebuilt at once, so a server the library
 * refuses is an ERROR here and leaves the list as it was.
 */
PG_FUNCTION_INFO_V1(pgmc_server_add);
Datum
pgmc_server_add(PG_FUNCTION_ARGS)
{
	char	   *servers = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *before;
	StringInfoData joined;
	const char *p;

	for (p = servers; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("memcache: the server list holds a control character")));
	ensure_context();
	initStringInfo(&joined);
	append_list(&joined, added_servers);
	append_list(&joined, servers);
	before = added_servers;
	added_servers = MemoryContextStrdup(lib_mcxt, joined.data);
	PG_TRY();
	{
		(void) get_handle();
	}
	PG_CATCH();
	{
		pfree(added_servers);
		added_servers = before;
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (before != NULL)
		pfree(before);
	PG_RETURN_BOOL(true);
}

/*
 * memcache_get_multi(text[]) -> (key text, value text) and (bytea[]) -> (key text, value bytea):
 * one row per key found, in the order asked; NULL keys are skipped, a miss gives no row. One
 * library request (mcm_get: every server's keys written before any reply is read), as
 * pgmemcache's one multi-get. The request and the values it holds are the library's: every
 * value is copied and the request freed before anything that can throw runs.
 */
static Datum
get_multi(FunctionCallInfo fcinfo, bool as_text)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	TableSink	t = begin_table(fcinfo, "memcache_get_multi");
	Datum	   *items;
	bool	   *nulls;
	int			count;
	int			n = 0;
	char	  **keys;
	bytea	  **values;
	struct memcache_res **res;
	struct memcache_req *req;
	struct memcache *mc;
	size_t		too_large = 0;
	size_t		failed_size = 0;
	int			i;

	deconstruct_array(array, ARR_ELEMTYPE(array), -1, false, TYPALIGN_INT, &items, &nulls,
					  &count);
	keys = palloc0(sizeof(char *) * (count + 1));
	for (i = 0; i < count; i++)
	{
		bytea	   *key = nulls[i] ? NULL : DatumGetByteaPP(items[i]);

		if (key == NULL)
			continue;
		if (memchr(VARDATA_ANY(key), '\0', VARSIZE_ANY_EXHDR(key)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("memcache: invalid key: it holds a NUL byte")));
		keys[n] = pnstrdup(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
		/* The key comes back as a text column: it must be valid in the database encoding. */
		pg_verifymbstr(keys[n], strlen(keys[n]), false);
		n++;
	}
	res = palloc0(sizeof(struct memcache_res *) * (n + 1));
	values = palloc0(sizeof(bytea *) * (n + 1));
	mc = get_handle();

	begin_call();
	req = mcm_req_new(lib_ctxt);
	if (req == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	for (i = 0; i < n; i++)
	{
		res[i] = mcm_req_add(lib_ctxt, req, keys[i], strlen(keys[i]));
		if (res[i] == NULL)
		{
			mcm_req_free(lib_ctxt, req);
			raise_failure("memcache_get_multi", keys[i], OUTCOME_FAILED, 0);
		}
	}
	if (n > 0)
		mcm_get(lib_ctxt, mc, req);
	if (has_problem_report())
	{
		mcm_req_free(lib_ctxt, req);
		raise_failure("memcache_get_multi", NULL, OUTCOME_FAILED, 0);
	}
	/* Copies of the values found (palloc_extended with NO_OOM does not throw). */
	for (i = 0; i < n; i++)
	{
		size_t		len;

		if (!mcm_res_found(lib_ctxt, res[i]))
			continue;
		len = res[i]->bytes;
		if (len > MaxAllocSize - VARHDRSZ)
		{
			too_large = len;
			break;
		}
		values[i] = (bytea *) palloc_extended(len + VARHDRSZ, MCXT_ALLOC_NO_OOM);
		if (values[i] == NULL)
		{
			failed_size = len + VARHDRSZ;
			break;
		}
		SET_VARSIZE(values[i], len + VARHDRSZ);
		if (len > 0)
			memcpy(VARDATA(values[i]), res[i]->val, len);
	}
	mcm_req_free(lib_ctxt, req);
	if (too_large > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("memcache: value of %zu bytes is too large", too_large)));
	if (failed_size > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on a request of size %zu.", failed_size)));
	emit_reports(0);

	for (i = 0; i < n; i++)
	{
		Datum		row[2];
		bool		row_nulls[2] = {false, false};

		if (values[i] == NULL)
			continue;
		if (as_text)
			pg_verifymbstr(VARDATA(values[i]), VARSIZE(values[i]) - VARHDRSZ, false);
		row[0] = CStringGetTextDatum(keys[i]);
		row[1] = PointerGetDatum(values[i]);
		tuplestore_putvalues(t.ts, t.desc, row, row_nulls);
	}
	CHECK_FOR_INTERRUPTS();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(pgmc_get_multi_text);
Datum
pgmc_get_multi_text(PG_FUNCTION_ARGS)
{
	return get_multi(fcinfo, true);
}

PG_FUNCTION_INFO_V1(pgmc_get_multi_bytea);
Datum
pgmc_get_multi_bytea(PG_FUNCTION_ARGS)
{
	return get_multi(fcinfo, false);
}

PG_FUNCTION_INFO_V1(pgmc_flush_all);
Datum
pgmc_flush_all(PG_FUNCTION_ARGS)
{
	struct memcache *mc = get_handle();
	int			rc;

	refresh_server_list(mc);
	if (mc->num_servers == 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("memcache: no servers to flush"),
				 errdetail("The handle (%s) has no servers.", handle_source)));
	begin_call();
	rc = mcm_flush_all(lib_ctxt, mc);
	if (rc != 0)
		raise_failure("memcache_flush_all", NULL, OUTCOME_FAILED, rc);
	emit_reports(0);
	PG_RETURN_BOOL(true);
}
