#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <unistd.h>

/* ---- hand-written: preamble, constants and macros of libmemcache 1.4 (spec §2) ---- */

#ifdef __MEMCACHE__
# define mc_const
#else
# define mc_const const
#endif

/* glibc always defines u_int16_t/u_int32_t/u_int64_t in <sys/types.h>; elsewhere alias the
 * <stdint.h> types. */
#if !defined(__GLIBC__) && !defined(__u_int32_t_defined) && !defined(_U_INT32_T)
typedef uint16_t u_int16_t;
typedef uint32_t u_int32_t;
typedef uint64_t u_int64_t;
#endif

struct addrinfo;

#define MEMCACHE_VER "1.4.0.rc2"
#define MEMCACHE_VERNUM 10400
#define MEMCACHE_RELDATE 20060220

#ifndef INIT_GET_BUF_SIZE
#define INIT_GET_BUF_SIZE ((size_t)4096)
#endif

#define MC_ERR_LVL_INFO   MCM_ERR_LVL_INFO
#define MC_ERR_LVL_NOTICE MCM_ERR_LVL_NOTICE
#define MC_ERR_LVL_WARN   MCM_ERR_LVL_WARN
#define MC_ERR_LVL_ERR    MCM_ERR_LVL_ERR
#define MC_ERR_LVL_FATAL  MCM_ERR_LVL_FATAL

#define MC_RES_FREE_ON_DELETE    MCM_RES_FREE_ON_DELETE
#define MC_RES_NO_FREE_ON_DELETE MCM_RES_NO_FREE_ON_DELETE
#define MC_RES_FOUND             MCM_RES_FOUND
#define MC_RES_ATTEMPTED         MCM_RES_ATTEMPTED
#define MC_RES_NEED_FREE_KEY     MCM_RES_NEED_FREE_KEY

#define MCM_CSTRLEN(_str) (sizeof(_str) - 1)

/* The handler's retcode, when non-zero, replaces a failure value. */
#define MCM_RET_CODE(_v) (ctxt->ectxt->retcode != 0 ? ctxt->ectxt->retcode : _v)

/* Parameter names of callbacks (kept from 1.4; use the macro names, not the values). */
#define MCM_CALLBACK_CTXT     md597f78ab4a96c3e71c3bb9fe036f37367
#define MCM_CALLBACK_KEY      md5783365dee46035fa36d8d9e6fe15da0f
#define MCM_CALLBACK_LEN      md54c1f40392e708222b8a25a4337cd05fd
#define MCM_CALLBACK_MC       md5646277084faa5a0f511793a728521ef5
#define MCM_CALLBACK_PTR      md57f5686851aeded9e00761d4aaaac20ee
#define MCM_CALLBACK_RES      md52e8a13a74753effc0f149a3ce900dc28
#define MCM_ERR_MASK          md5fc9f4e2249ad88de0081136fef04defa
#define MCM_ERR_FUNC_ERR_CTXT md5096953205b8982964e25927bd8154148
#define MCM_ERR_FUNC_MC_CTXT  md521e67c8edeaac774b00d960e230c8686
#define MCM_KEY_VALID_KEY     md58926735b19e189407440aa1ba3ab1962
#define MCM_KEY_VALID_LEN     md5d6077405f1a7b35ddeac18ccc2a8f4c7

#define MCM_CALLBACK_FUNC const struct memcache_ctxt *MCM_CALLBACK_CTXT, struct memcache_res *MCM_CALLBACK_RES, void *MCM_CALLBACK_PTR
#define MCM_CALLBACK_SIG  const struct memcache_ctxt *, struct memcache_res *, void *
#define MCM_ERR_FUNC_ARGS const void *MCM_ERR_FUNC_MC_CTXT, void *MCM_ERR_FUNC_ERR_CTXT
#define MCM_ERR_FUNC_SIG  const void *, void *
#define MCM_ERR_INIT_CTXT(_ctxt, _ectxt) do { \
        _ctxt = (const struct memcache_ctxt *)MCM_ERR_FUNC_MC_CTXT; \
        _ectxt = (struct memcache_err_ctxt *)MCM_ERR_FUNC_ERR_CTXT; } while (0)
#define MCM_KEY_VALID_FUNC_ARGS const void *MCM_KEY_VALID_CTXT, char *MCM_KEY_VALID_KEY, size_t MCM_KEY_VALID_LEN
#define MCM_KEY_VALID_FUNC_SIG  const void *, char *, size_t
#define MCM_KEY_VALID_INIT(_ctxt, _key, _len) do { \
        _ctxt = (const struct memcache_ctxt *)MCM_KEY_VALID_CTXT; \
        _key = (char *)MCM_KEY_VALID_KEY; _len = MCM_KEY_VALID_LEN; } while (0)
#define MCM_HASH_FUNC const void *MCM_CALLBACK_CTXT, const void *MCM_CALLBACK_MC, const char *MCM_CALLBACK_KEY, const size_t MCM_CALLBACK_LEN
#define MCM_HASH_SIG  const void *, const void *, const char *, const size_t
#define MCM_HASH_INIT(_ctxt, _mc, _key, _len) do { \
        _ctxt = (const struct memcache_ctxt *)MCM_CALLBACK_CTXT; \
        _mc = (const struct memcache *)MCM_CALLBACK_MC; \
        _key = (const char *)MCM_CALLBACK_KEY; _len = MCM_CALLBACK_LEN; } while (0)

/* Error-reporting helpers; they expect a variable named ctxt in scope. */
#define MCM_ERR(_code) mcm_err(ctxt, ERR_FLAG, __FUNCTION__, __LINE__, _code, NULL, 0, 0)
#define MCM_ERR_MSG(_code, _msg) mcm_err(ctxt, ERR_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), 0)
#define MCM_ERR_MSG_LVL(_code, _msg, _lvl) mcm_err(ctxt, ERR_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), _lvl)
#define MCM_ERRX(_code) mcm_err(ctxt, ERR_FLAG | NO_ERRNO_FLAG, __FUNCTION__, __LINE__, _code, NULL, 0, 0)
#define MCM_ERRX_MSG(_code, _msg) mcm_err(ctxt, ERR_FLAG | NO_ERRNO_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), 0)
#define MCM_ERRX_MSG_LVL(_code, _msg, _lvl) mcm_err(ctxt, ERR_FLAG | NO_ERRNO_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), _lvl)
#define MCM_WARNX(_code) mcm_err(ctxt, WARN_FLAG | NO_ERRNO_FLAG, __FUNCTION__, __LINE__, _code, NULL, 0, 0)
#define MCM_WARN_MSG(_code, _msg) mcm_err(ctxt, WARN_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), 0)
#define MCM_WARN_MSGLEN(_code, _msg, _len) mcm_err(ctxt, WARN_FLAG, __FUNCTION__, __LINE__, _code, _msg, _len, 0)
#define MCM_WARN_MSG_LVL(_code, _msg, _lvl) mcm_err(ctxt, WARN_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), _lvl)
#define MCM_WARNX_MSG(_code, _msg) mcm_err(ctxt, WARN_FLAG | NO_ERRNO_FLAG, __FUNCTION__, __LINE__, _code, _msg, ((_msg) != NULL ? strlen(_msg) : 0), 0)
#define MCM_WARNX_MSGLEN(_code, _msg, _len) mcm_err(ctxt, WARN_FLAG | NO_ERRNO_FLAG, __FUNCTION__, __LINE__, _code, _msg, _len, 0)

/* BSD tail queues (layout-identical to glibc's <sys/queue.h>). */
#ifndef TRASHIT
#define TRASHIT(x)
#endif
#ifndef TAILQ_HEAD
#define TAILQ_HEAD(name, type) struct name { struct type *tqh_first; struct type **tqh_last; }
#endif
#ifndef TAILQ_HEAD_INITIALIZER
#define TAILQ_HEAD_INITIALIZER(head) { NULL, &(head).tqh_first }
#endif
#ifndef TAILQ_ENTRY
#define TAILQ_ENTRY(type) struct { struct type *tqe_next; struct type **tqe_prev; }
#endif
#ifndef TAILQ_FIRST
#define TAILQ_FIRST(head) ((head)->tqh_first)
#endif
#ifndef TAILQ_NEXT
#define TAILQ_NEXT(elm, field) ((elm)->field.tqe_next)
#endif
#ifndef TAILQ_FOREACH
#define TAILQ_FOREACH(var, head, field) \
        for ((var) = TAILQ_FIRST((head)); (var); (var) = TAILQ_NEXT((var), field))
#endif
#ifndef TAILQ_INIT
#define TAILQ_INIT(head) do { TAILQ_FIRST((head)) = NULL; (head)->tqh_last = &TAILQ_FIRST((head)); } while (0)
#endif
#ifndef TAILQ_INSERT_TAIL
#define TAILQ_INSERT_TAIL(head, elm, field) do { \
        TAILQ_NEXT((elm), field) = NULL; \
        (elm)->field.tqe_prev = (head)->tqh_last; \
        *(head)->tqh_last = (elm); \
        (head)->tqh_last = &TAILQ_NEXT((elm), field); } while (0)
#endif
#ifndef TAILQ_REMOVE
#define TAILQ_REMOVE(head, elm, field) do { \
        if ((TAILQ_NEXT((elm), field)) != NULL) \
                TAILQ_NEXT((elm), field)->field.tqe_prev = (elm)->field.tqe_prev; \
        else \
                (head)->tqh_last = (elm)->field.tqe_prev; \
        *(elm)->field.tqe_prev = TAILQ_NEXT((elm), field); \
        TRASHIT((elm)->field.tqe_next); \
        TRASHIT((elm)->field.tqe_prev); } while (0)
#endif

/* ---- generated from src/ffi ---- */
