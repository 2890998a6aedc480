/*
 * The header as a compiler sees it: structure sizes and offsets (spec §3), macro values (§1.1,
 * §2.2, §2.3, §6.2), the TAILQ macros (§2.4), the function-pointer typedefs and callback macros
 * (§2.3, §2.5), mc_const and the u_int*_t names (§2.1).
 *
 * Built twice by the harness: with -std=gnu99 and with -std=c99 -pedantic (strict ISO C), so
 * only ISO C is used here.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>

#include "check.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define SIZE(type, expect)                                                                    \
	CHECK(sizeof(struct type) == (expect), "sizeof(struct %s) = %lu, expected %d", #type,    \
	      (unsigned long)sizeof(struct type), (expect))

#define OFF(type, field, expect)                                                              \
	CHECK(offsetof(struct type, field) == (expect), "offsetof(%s, %s) = %lu, expected %d",   \
	      #type, #field, (unsigned long)offsetof(struct type, field), (expect))

#define MSIZE(type, field, expect)                                                            \
	CHECK(sizeof(((struct type *)0)->field) == (expect), "sizeof(%s.%s) = %lu, expected %d", \
	      #type, #field, (unsigned long)sizeof(((struct type *)0)->field), (expect))

#define VAL(macro, expect)                                                                    \
	CHECK((long)(macro) == (long)(expect), "%s = %ld, expected %ld", #macro, (long)(macro),  \
	      (long)(expect))

#define NAME(macro, expect)                                                                   \
	CHECK(strcmp(STR(macro), (expect)) == 0, "%s expands to %s, expected %s", #macro,        \
	      STR(macro), (expect))

/* Unsigned integer types: (T)-1 is positive and has the expected width. */
#define UNSIGNED_OF_WIDTH(T, bytes)                                                           \
	CHECK(sizeof(T) == (bytes) && (T)-1 > 0, "%s: sizeof %lu, unsigned %d", #T,             \
	      (unsigned long)sizeof(T), (T)-1 > 0)

static void check_sizes_and_offsets(void)
{
	SIZE(memcache_buf, 56);
	OFF(memcache_buf, ptr, 0);
	OFF(memcache_buf, flags, 8);
	OFF(memcache_buf, len, 16);
	OFF(memcache_buf, size, 24);
	OFF(memcache_buf, off, 32);
	OFF(memcache_buf, next, 40);
	MSIZE(memcache_buf, flags, 1);

	SIZE(memcache_err_ctxt, 72);
	OFF(memcache_err_ctxt, misc, 0);
	OFF(memcache_err_ctxt, funcname, 8);
	OFF(memcache_err_ctxt, lineno, 16);
	OFF(memcache_err_ctxt, errnum, 20);
	OFF(memcache_err_ctxt, errcode, 24);
	OFF(memcache_err_ctxt, severity, 28);
	OFF(memcache_err_ctxt, cont, 29);
	OFF(memcache_err_ctxt, retcode, 32);
	OFF(memcache_err_ctxt, sysexit, 36);
	OFF(memcache_err_ctxt, errstr, 40);
	OFF(memcache_err_ctxt, errmsg, 48);
	OFF(memcache_err_ctxt, errlen, 56);
	OFF(memcache_err_ctxt, ctxt, 64);
	MSIZE(memcache_err_ctxt, severity, 1);
	MSIZE(memcache_err_ctxt, cont, 1);
	MSIZE(memcache_err_ctxt, retcode, 4);
	MSIZE(memcache_err_ctxt, errlen, 8);

	SIZE(memcache_ctxt, 112);
	OFF(memcache_ctxt, mcFree, 0);
	OFF(memcache_ctxt, mcMalloc, 8);
	OFF(memcache_ctxt, mcMallocAtomic, 16);
	OFF(memcache_ctxt, mcRealloc, 24);
	OFF(memcache_ctxt, mcErr, 32);
	OFF(memcache_ctxt, mcKeyValid, 40);
	OFF(memcache_ctxt, mcHashKey, 48);
	OFF(memcache_ctxt, mcServerFind, 56);
	OFF(memcache_ctxt, errnum, 64);
	OFF(memcache_ctxt, _rbuf, 72);
	OFF(memcache_ctxt, _wbuf, 80);
	OFF(memcache_ctxt, _last_hash, 88);
	OFF(memcache_ctxt, ectxt, 96);
	/* The filter mask member is named by the md5 macro (§2.3). */
	OFF(memcache_ctxt, MCM_ERR_MASK, 104);
	OFF(memcache_ctxt, md5fc9f4e2249ad88de0081136fef04defa, 104);
	MSIZE(memcache_ctxt, errnum, 4);
	MSIZE(memcache_ctxt, MCM_ERR_MASK, 4);

	SIZE(memcache_server, 256);
	OFF(memcache_server, misc, 0);
	OFF(memcache_server, hostname, 8);
	OFF(memcache_server, port, 16);
	OFF(memcache_server, fd, 24);
	OFF(memcache_server, tv, 32);
	OFF(memcache_server, active, 48);
	OFF(memcache_server, hostinfo, 56);
	OFF(memcache_server, num_addrs, 64);
	OFF(memcache_server, fds, 72);
	OFF(memcache_server, rbuf, 200);
	OFF(memcache_server, wbuf, 208);
	OFF(memcache_server, _last_hash, 216);
	OFF(memcache_server, soff, 224);
	OFF(memcache_server, startoff, 232);
	OFF(memcache_server, entries, 240);
	MSIZE(memcache_server, fd, 4);
	MSIZE(memcache_server, tv, 16);
	MSIZE(memcache_server, active, 1);
	MSIZE(memcache_server, fds, 128);
	MSIZE(memcache_server, entries, 16);

	SIZE(memcache_server_stats, 168);
	OFF(memcache_server_stats, pid, 0);
	OFF(memcache_server_stats, uptime, 8);
	OFF(memcache_server_stats, time, 16);
	OFF(memcache_server_stats, version, 24);
	OFF(memcache_server_stats, rusage_user, 32);
	OFF(memcache_server_stats, rusage_system, 48);
	OFF(memcache_server_stats, curr_items, 64);
	OFF(memcache_server_stats, total_items, 72);
	OFF(memcache_server_stats, bytes, 80);
	OFF(memcache_server_stats, curr_connections, 88);
	OFF(memcache_server_stats, total_connections, 96);
	OFF(memcache_server_stats, connection_structures, 104);
	OFF(memcache_server_stats, cmd_get, 112);
	OFF(memcache_server_stats, cmd_set, 120);
	OFF(memcache_server_stats, get_hits, 128);
	OFF(memcache_server_stats, get_misses, 136);
	OFF(memcache_server_stats, bytes_read, 144);
	OFF(memcache_server_stats, bytes_written, 152);
	OFF(memcache_server_stats, limit_maxbytes, 160);
	MSIZE(memcache_server_stats, pid, 4);
	MSIZE(memcache_server_stats, uptime, 8);
	MSIZE(memcache_server_stats, curr_items, 4);
	MSIZE(memcache_server_stats, total_items, 8);
	MSIZE(memcache_server_stats, curr_connections, 4);
	MSIZE(memcache_server_stats, connection_structures, 4);
	MSIZE(memcache_server_stats, limit_maxbytes, 8);

	SIZE(memcache, 56);
	OFF(memcache, misc, 0);
	OFF(memcache, tv, 8);
	OFF(memcache, num_servers, 24);
	OFF(memcache, servers, 32);
	OFF(memcache, server_list, 40);
	MSIZE(memcache, num_servers, 4);
	MSIZE(memcache, server_list, 16);

	SIZE(memcache_res, 80);
	OFF(memcache_res, misc, 0);
	OFF(memcache_res, key, 8);
	OFF(memcache_res, len, 16);
	OFF(memcache_res, hash, 24);
	OFF(memcache_res, bytes, 32);
	OFF(memcache_res, val, 40);
	OFF(memcache_res, size, 48);
	OFF(memcache_res, entries, 56);
	OFF(memcache_res, flags, 72);
	OFF(memcache_res, _flags, 74);
	MSIZE(memcache_res, hash, 4);
	MSIZE(memcache_res, flags, 2);
	MSIZE(memcache_res, _flags, 1);

	SIZE(memcache_req, 48);
	OFF(memcache_req, misc, 0);
	OFF(memcache_req, query, 8);
	OFF(memcache_req, cb, 24);
	OFF(memcache_req, num_keys, 40);
	MSIZE(memcache_req, num_keys, 2);

	SIZE(memcache_res_cb, 56);
	OFF(memcache_res_cb, misc, 0);
	OFF(memcache_res_cb, ctxt, 8);
	OFF(memcache_res_cb, req, 16);
	OFF(memcache_res_cb, res, 24);
	OFF(memcache_res_cb, cb, 32);
	OFF(memcache_res_cb, entries, 40);
}

static void check_integer_types(void)
{
	u_int16_t a = 65535;
	u_int32_t b = 4294967295U;
	u_int64_t c = 0;
	int32_t d = -1;

	c = c - 1;
	UNSIGNED_OF_WIDTH(u_int16_t, 2);
	UNSIGNED_OF_WIDTH(u_int32_t, 4);
	UNSIGNED_OF_WIDTH(u_int64_t, 8);
	CHECK(a == 65535 && b == 4294967295U && c == 18446744073709551615ULL && d < 0,
	      "u_int values %u %lu", (unsigned)a, (unsigned long)b);
	/* Unsigned struct members: the fields clients compare against large values. */
	{
		struct memcache_res res;
		memset(&res, 0, sizeof(res));
		res.flags = (u_int16_t)-1;
		res.hash = (u_int32_t)-1;
		CHECK(res.flags == 65535 && res.hash == 4294967295U, "res.flags %u", (unsigned)res.flags);
	}
}

static void check_version_and_limits(void)
{
	VAL(MEMCACHE_VERNUM, 10400);
	CHECK(strcmp(MEMCACHE_VER, "1.4.0.rc2") == 0, "MEMCACHE_VER = %s", MEMCACHE_VER);
	VAL(MEMCACHE_RELDATE, 20060220);
#if MEMCACHE_VERNUM != 10400
	CHECK(0, "%s", "MEMCACHE_VERNUM is not usable in #if, or is not 10400");
#endif
	VAL(MAX_KEY_LEN, 250);
	VAL(INIT_GET_BUF_SIZE, 4096);
	CHECK(sizeof(INIT_GET_BUF_SIZE) == sizeof(size_t), "INIT_GET_BUF_SIZE has size %lu",
	      (unsigned long)sizeof(INIT_GET_BUF_SIZE));
}

static void check_error_macros(void)
{
	VAL(MCM_ERR_LVL_NONE, 0x00);
	VAL(MCM_ERR_LVL_INFO, 0x01);
	VAL(MCM_ERR_LVL_NOTICE, 0x02);
	VAL(MCM_ERR_LVL_WARN, 0x04);
	VAL(MCM_ERR_LVL_ERR, 0x08);
	VAL(MCM_ERR_LVL_FATAL, 0x10);
	VAL(MC_ERR_LVL_INFO, 0x01);
	VAL(MC_ERR_LVL_NOTICE, 0x02);
	VAL(MC_ERR_LVL_WARN, 0x04);
	VAL(MC_ERR_LVL_ERR, 0x08);
	VAL(MC_ERR_LVL_FATAL, 0x10);

	VAL(MCM_ERR_NONE, 0);
	VAL(MCM_ERR_ASSERT, 1);
	VAL(MCM_ERR_LIB_SNPRINTF, 2);
	VAL(MCM_ERR_LIB_STRTOL, 3);
	VAL(MCM_ERR_LIB_STRTOLL, 4);
	VAL(MCM_ERR_MC_RECONN, 5);
	VAL(MCM_ERR_MC_SEND_CMD, 6);
	VAL(MCM_ERR_MC_SERV_LIST, 7);
	VAL(MCM_ERR_MC_STORE, 8);
	VAL(MCM_ERR_MC_VALID_SERVER, 9);
	VAL(MCM_ERR_MEM_MALLOC, 10);
	VAL(MCM_ERR_MEM_REALLOC, 11);
	VAL(MCM_ERR_NET_CONNECT, 12);
	VAL(MCM_ERR_NET_HOST, 13);
	VAL(MCM_ERR_PROTO, 14);
	VAL(MCM_ERR_SYS_CLOSE, 16);
	VAL(MCM_ERR_SYS_CONNECT, 17);
	VAL(MCM_ERR_SYS_FCNTL, 18);
	VAL(MCM_ERR_SYS_READ, 19);
	VAL(MCM_ERR_SYS_SELECT, 20);
	VAL(MCM_ERR_SYS_SETSOCKOPT, 21);
	VAL(MCM_ERR_SYS_SOCKET, 22);
	VAL(MCM_ERR_SYS_WRITEV, 23);
	VAL(MCM_ERR_TEST, 24);
	VAL(MCM_ERR_TIMEOUT, 25);
	VAL(MCM_ERR_TRACE, 26);
	VAL(MCM_ERR_UNKNOWN_STAT, 27);

	VAL(ERR_FLAG, 0x1);
	VAL(WARN_FLAG, 0x2);
	VAL(NO_ERRNO_FLAG, 0x4);

	VAL(MCM_RES_FREE_ON_DELETE, 0x01);
	VAL(MCM_RES_NO_FREE_ON_DELETE, 0x02);
	VAL(MCM_RES_FOUND, 0x04);
	VAL(MCM_RES_ATTEMPTED, 0x08);
	VAL(MCM_RES_NEED_FREE_KEY, 0x10);
	VAL(MC_RES_FREE_ON_DELETE, 0x01);
	VAL(MC_RES_NO_FREE_ON_DELETE, 0x02);
	VAL(MC_RES_FOUND, 0x04);
	VAL(MC_RES_ATTEMPTED, 0x08);
	VAL(MC_RES_NEED_FREE_KEY, 0x10);

	VAL(MCM_CSTRLEN("abc"), 3);
	VAL(MCM_CSTRLEN(""), 0);

	/* The reporting helper macros must at least be defined (§2.2). */
#if !defined(MCM_ERR) || !defined(MCM_ERR_MSG) || !defined(MCM_ERR_MSG_LVL) ||                   \
	!defined(MCM_ERRX) || !defined(MCM_ERRX_MSG) || !defined(MCM_ERRX_MSG_LVL) ||            \
	!defined(MCM_WARNX) || !defined(MCM_WARN_MSG) || !defined(MCM_WARN_MSGLEN) ||            \
	!defined(MCM_WARN_MSG_LVL) || !defined(MCM_WARNX_MSG) || !defined(MCM_WARNX_MSGLEN)
	CHECK(0, "%s", "one of the MCM_ERR*/MCM_WARN* reporting macros is not defined");
#endif
#ifndef MCM_RET_CODE
	CHECK(0, "%s", "MCM_RET_CODE is not defined");
#else
	{
		/* MCM_RET_CODE reads ctxt->ectxt->retcode of a variable named ctxt. */
		struct memcache_ctxt *ctxt = mc_global_ctxt();
		int32_t saved = ctxt->ectxt->retcode;

		ctxt->ectxt->retcode = 0;
		VAL(MCM_RET_CODE(-5), -5);
		ctxt->ectxt->retcode = 42;
		VAL(MCM_RET_CODE(-5), 42);
		ctxt->ectxt->retcode = saved;
	}
#endif
}

static void check_md5_names(void)
{
	NAME(MCM_CALLBACK_CTXT, "md597f78ab4a96c3e71c3bb9fe036f37367");
	NAME(MCM_CALLBACK_KEY, "md5783365dee46035fa36d8d9e6fe15da0f");
	NAME(MCM_CALLBACK_LEN, "md54c1f40392e708222b8a25a4337cd05fd");
	NAME(MCM_CALLBACK_MC, "md5646277084faa5a0f511793a728521ef5");
	NAME(MCM_CALLBACK_PTR, "md57f5686851aeded9e00761d4aaaac20ee");
	NAME(MCM_CALLBACK_RES, "md52e8a13a74753effc0f149a3ce900dc28");
	NAME(MCM_ERR_MASK, "md5fc9f4e2249ad88de0081136fef04defa");
	NAME(MCM_ERR_FUNC_ERR_CTXT, "md5096953205b8982964e25927bd8154148");
	NAME(MCM_ERR_FUNC_MC_CTXT, "md521e67c8edeaac774b00d960e230c8686");
	NAME(MCM_KEY_VALID_KEY, "md58926735b19e189407440aa1ba3ab1962");
	NAME(MCM_KEY_VALID_LEN, "md5d6077405f1a7b35ddeac18ccc2a8f4c7");
}

/* Callbacks written with the header's parameter macros, as clients write them. */
static int callback_calls;

static void res_callback(MCM_CALLBACK_FUNC)
{
	callback_calls++;
	(void)MCM_CALLBACK_CTXT;
	(void)MCM_CALLBACK_RES;
	(void)MCM_CALLBACK_PTR;
}

static int32_t err_handler(MCM_ERR_FUNC_ARGS)
{
	const struct memcache_ctxt *c;
	struct memcache_err_ctxt *e;

	MCM_ERR_INIT_CTXT(c, e);
	CHECK((const void *)c == MCM_ERR_FUNC_MC_CTXT && (void *)e == MCM_ERR_FUNC_ERR_CTXT, "%s",
	      "MCM_ERR_INIT_CTXT");
	return 0;
}

static int32_t key_valid(MCM_KEY_VALID_FUNC_ARGS)
{
	const struct memcache_ctxt *c;
	char *k;
	size_t l;

	MCM_KEY_VALID_INIT(c, k, l);
	(void)c;
	return (k != NULL && l == 3 && memcmp(k, "abc", 3) == 0) ? 0 : 7;
}

static u_int32_t hash_func(MCM_HASH_FUNC)
{
	const struct memcache_ctxt *c;
	const struct memcache *m;
	const char *k;
	size_t l;

	MCM_HASH_INIT(c, m, k, l);
	(void)c;
	(void)m;
	return (u_int32_t)l + (k != NULL ? (unsigned char)k[0] : 0);
}

static void *find_func(const void *ctxt, void *mc, const u_int32_t hash)
{
	(void)ctxt;
	(void)mc;
	(void)hash;
	return NULL;
}

static void *alloc_func(const size_t n)
{
	return malloc(n);
}

static void check_callback_types(void)
{
	/* The typedefs of §2.5 accept the functions clients write; -Werror catches mismatches. */
	mcFreeFunc f = free;
	mcMallocFunc m = alloc_func;
	mcReallocFunc r = (mcReallocFunc)0;
	mcErrFunc e = err_handler;
	mcKeyValidFunc kv = key_valid;
	mcHashKeyFunc h = hash_func;
	mcServerFindFunc sf = find_func;
	mcResCallback cb = res_callback;
	char key[] = "abc";
	struct memcache_err_ctxt ectxt;
	void (*cb_by_sig)(MCM_CALLBACK_SIG) = res_callback;
	int32_t (*err_by_sig)(MCM_ERR_FUNC_SIG) = err_handler;
	int32_t (*kv_by_sig)(MCM_KEY_VALID_FUNC_SIG) = key_valid;
	u_int32_t (*hash_by_sig)(MCM_HASH_SIG) = hash_func;

	(void)r;
	memset(&ectxt, 0, sizeof(ectxt));
	f(m(16));
	CHECK(e(NULL, &ectxt) == 0 && err_by_sig(NULL, &ectxt) == 0, "%s", "mcErrFunc call");
	CHECK(kv(NULL, key, 3) == 0 && kv_by_sig(NULL, key, 2) == 7, "%s", "mcKeyValidFunc call");
	CHECK(h(NULL, NULL, "abc", 3) == 'a' + 3 && hash_by_sig(NULL, NULL, "b", 1) == 'b' + 1, "%s",
	      "mcHashKeyFunc call");
	CHECK(sf(NULL, NULL, 1) == NULL, "%s", "mcServerFindFunc call");
	cb(NULL, NULL, NULL);
	cb_by_sig(NULL, NULL, NULL);
	CHECK(callback_calls == 2, "callback_calls = %d", callback_calls);
}

static void check_mc_const(void)
{
	/* mc_const is const outside the library; clients cast with it. */
	static const char hostport[] = "127.0.0.1:11211";
	mc_const char *p = (mc_const char *)hostport;
	const char **pp = &p; /* compiles only if mc_const is const */

	CHECK(*pp == hostport, "%s", "mc_const");
}

/* The BSD tail queue of §2.4, on a local list. */
struct item {
	int value;
	TAILQ_ENTRY(item) link;
};
TAILQ_HEAD(item_list, item);

static void check_tailq(void)
{
	struct item_list head = TAILQ_HEAD_INITIALIZER(head);
	struct item items[4];
	struct item *it;
	int i, sum = 0, count = 0, order_ok = 1, expect;

	CHECK(TAILQ_FIRST(&head) == NULL, "%s", "empty after TAILQ_HEAD_INITIALIZER");
	TAILQ_INIT(&head);
	CHECK(TAILQ_FIRST(&head) == NULL && head.tqh_first == NULL && head.tqh_last == &head.tqh_first,
	      "%s", "TAILQ_INIT layout");
	for (i = 0; i < 4; i++) {
		items[i].value = i + 1;
		TAILQ_INSERT_TAIL(&head, &items[i], link);
	}
	expect = 1;
	TAILQ_FOREACH(it, &head, link) {
		order_ok &= it->value == expect++;
		sum += it->value;
		count++;
	}
	CHECK(count == 4 && sum == 10 && order_ok, "count %d sum %d", count, sum);
	TAILQ_REMOVE(&head, &items[1], link);
	TAILQ_REMOVE(&head, &items[3], link);
	CHECK(TAILQ_FIRST(&head) == &items[0] && TAILQ_NEXT(&items[0], link) == &items[2] &&
		      TAILQ_NEXT(&items[2], link) == NULL,
	      "%s", "list after TAILQ_REMOVE");
	/* Direct field access as clients do it. */
	CHECK(head.tqh_first == &items[0] && items[0].link.tqe_next == &items[2] &&
		      head.tqh_last == &items[2].link.tqe_next,
	      "%s", "tqh_first/tqe_next/tqh_last");
	TAILQ_INSERT_TAIL(&head, &items[3], link);
	CHECK(TAILQ_NEXT(&items[2], link) == &items[3], "%s", "append after remove");
#ifndef TRASHIT
	CHECK(0, "%s", "TRASHIT is not defined");
#endif
}

int main(void)
{
	check_sizes_and_offsets();
	check_integer_types();
	check_version_and_limits();
	check_error_macros();
	check_md5_names();
	check_callback_types();
	check_mc_const();
	check_tailq();
	return CHECK_DONE();
}
