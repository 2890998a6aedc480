/*
 * The exported interface (spec §1.3, §4): every one of the 152 functions is declared by the
 * headers with exactly the signature of §4 (a typed function pointer is initialised with each;
 * -Werror turns any mismatch, including a const qualifier, into a build failure), and is a real
 * dynamic symbol of libmemcache.so.0 (dlsym; mc_global_ctxt, mcm_buf_len, mcm_buf_remain and
 * mcm_buf_remain_off must not be inline-only). The declarations the original kept without
 * implementing (§1.3) must still be present.
 *
 * No environment needed.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <memcache.h>
#include <memcache/buffer.h>

#include "check.h"

static void *lib;
static int symbols;

static void check_symbol(const char *name)
{
	symbols++;
	CHECK(dlsym(lib, name) != NULL, "%s is not exported by libmemcache.so.0", name);
}

/* The initialisation is the signature check; the dlsym the export check. */
#define SIG(ret, name, args)                                                                      \
	do {                                                                                      \
		ret(*volatile fp_) args = name;                                                   \
		CHECK(fp_ != NULL, "%s", #name);                                                  \
		check_symbol(#name);                                                              \
	} while (0)

static void check_signatures(void)
{
	SIG(int, mc_add, (struct memcache *mc, char *key, const size_t key_len, const void *val, const size_t bytes, const time_t expire, const u_int16_t flags));
	SIG(void *, mc_aget, (struct memcache *mc, char *key, const size_t len));
	SIG(void *, mc_aget2, (struct memcache *mc, char *key, const size_t len, size_t *retlen));
	SIG(u_int32_t, mc_decr, (struct memcache *mc, char *key, const size_t key_len, const u_int32_t val));
	SIG(int, mc_delete, (struct memcache *mc, char *key, const size_t key_len, const time_t hold));
	SIG(int, mc_err_filter_add, (const u_int32_t err_mask));
	SIG(int, mc_err_filter_del, (const u_int32_t err_mask));
	SIG(u_int32_t, mc_err_filter_get, (void));
	SIG(int, mc_err_filter_test, (const u_int32_t err_lvl));
	SIG(void, mc_err_test, (void));
	SIG(int, mc_flush, (struct memcache *mc, struct memcache_server *ms));
	SIG(int, mc_flush_all, (struct memcache *mc));
	SIG(void, mc_free, (struct memcache *mc));
	SIG(void, mc_get, (struct memcache *mc, struct memcache_req *req));
	SIG(struct memcache_ctxt *, mc_global_ctxt, (void));
	SIG(u_int32_t, mc_hash, (const struct memcache *mc, const char *key, const size_t len));
	SIG(u_int32_t, mc_hash_key, (const char *key, const size_t len));
	SIG(u_int32_t, mc_incr, (struct memcache *mc, char *key, const size_t key_len, const u_int32_t val));
	SIG(struct memcache *, mc_new, (void));
	SIG(u_int32_t, mc_reldate, (void));
	SIG(int, mc_replace, (struct memcache *mc, char *key, const size_t key_len, const void *val, const size_t bytes, const time_t expire, const u_int16_t flags));
	SIG(struct memcache_res *, mc_req_add, (struct memcache_req *req, char *key, const size_t len));
	SIG(struct memcache_res *, mc_req_add_ref, (struct memcache_req *req, char *key, const size_t len));
	SIG(void, mc_req_free, (struct memcache_req *req));
	SIG(struct memcache_req *, mc_req_new, (void));
	SIG(int, mc_res_attempted, (const struct memcache_res *res));
	SIG(void, mc_res_free_on_delete, (struct memcache_res *res, const int free_on_delete));
	SIG(int, mc_res_found, (const struct memcache_res *res));
	SIG(void, mc_res_free, (struct memcache_req *req, struct memcache_res *res));
	SIG(int, mc_res_register_fetch_cb, (struct memcache_req *req, struct memcache_res *res, mcResCallback cb, void *misc));
	SIG(int, mc_server_activate, (struct memcache *mc, struct memcache_server *ms));
	SIG(int, mc_server_activate_all, (struct memcache *mc));
	SIG(void, mc_server_deactivate, (struct memcache *mc, struct memcache_server *ms));
	SIG(void, mc_server_disconnect, (struct memcache_server *ms));
	SIG(void, mc_server_disconnect_all, (const struct memcache *mc));
	SIG(struct memcache_server *, mc_server_find, (struct memcache *mc, const u_int32_t hash));
	SIG(int, mc_server_add, (struct memcache *mc, const char *hostname, const char *port));
	SIG(int, mc_server_add2, (struct memcache *mc, const char *hostname, const size_t hostname_len, const char *port, const size_t port_len));
	SIG(int, mc_server_add3, (struct memcache *mc, struct memcache_server *ms));
	SIG(int, mc_server_add4, (struct memcache *mc, mc_const char *hostport));
	SIG(int, mc_server_add5, (struct memcache *mc, mc_const char *hostport, const size_t hostlen));
	SIG(void, mc_server_free, (struct memcache_server *ms));
	SIG(struct memcache_server *, mc_server_new, (void));
	SIG(void, mc_server_stats_free, (struct memcache_server_stats *s));
	SIG(struct memcache_server_stats *, mc_server_stats, (struct memcache *mc, struct memcache_server *ms));
	SIG(int, mc_server_timeout, (struct memcache_server *ms, const int sec, const int usec));
	SIG(int, mc_set, (struct memcache *mc, char *key, const size_t key_len, const void *val, const size_t bytes, const time_t expire, const u_int16_t flags));
	SIG(struct memcache_server_stats *, mc_stats, (struct memcache *mc));
	SIG(char *, mc_strdup, (const char *str));
	SIG(char *, mc_strnchr, (mc_const char *str, const int c, const size_t len));
	SIG(char *, mc_strndup, (const char *str, const size_t len));
	SIG(void, mc_timeout, (struct memcache *mc, const int sec, const int usec));
	SIG(u_int32_t, mc_vernum, (void));
	SIG(const char *, mc_version, (void));
	SIG(int, mcMemSetup, (mcFreeFunc freeFunc, mcMallocFunc mallocFunc, mcMallocFunc mallocAtomicFunc, mcReallocFunc reallocFunc));
	SIG(int, mcMemGet, (mcFreeFunc *freeFunc, mcMallocFunc *mallocFunc, mcMallocFunc *mallocAtomicFunc, mcReallocFunc *reallocFunc));
	SIG(int, mcErrSetup, (mcErrFunc errFunc));
	SIG(int, mcErrSetupCtxt, (struct memcache_ctxt *ctxt, mcErrFunc errFunc));
	SIG(int, mcErrGet, (mcErrFunc *errFunc));
	SIG(struct memcache_ctxt *, mcMemNewCtxt, (mcFreeFunc freeFunc, mcMallocFunc mallocFunc, mcMallocFunc mallocAtomicFunc, mcReallocFunc reallocFunc));
	SIG(int, mcMemSetupCtxt, (struct memcache_ctxt *ctxt, mcFreeFunc freeFunc, mcMallocFunc mallocFunc, mcMallocFunc mallocAtomicFunc, mcReallocFunc reallocFunc));
	SIG(void, mcMemFreeCtxt, (struct memcache_ctxt *ctxt));
	SIG(int, mcm_add, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t key_len, const void *val, const size_t bytes, const time_t expire, const u_int16_t flags));
	SIG(void *, mcm_aget, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t len));
	SIG(void *, mcm_aget2, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t len, size_t *retlen));
	SIG(u_int32_t, mcm_decr, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t key_len, const u_int32_t val));
	SIG(int, mcm_delete, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t key_len, const time_t hold));
	SIG(void, mcm_err, (const struct memcache_ctxt *ctxt, const u_int32_t flags, const char *funcname, const u_int32_t lineno, const u_int32_t errcode, const char *msg, const u_int32_t msglen, const u_int32_t errlvl));
	SIG(int, mcm_err_filter_add, (struct memcache_ctxt *ctxt, const u_int32_t err_mask));
	SIG(int, mcm_err_filter_del, (struct memcache_ctxt *ctxt, const u_int32_t err_mask));
	SIG(u_int32_t, mcm_err_filter_get, (const struct memcache_ctxt *ctxt));
	SIG(int, mcm_err_filter_test, (const struct memcache_ctxt *ctxt, const u_int32_t err_lvl));
	SIG(void, mcm_err_test, (const struct memcache_ctxt *ctxt));
	SIG(int, mcm_flush, (struct memcache_ctxt *ctxt, struct memcache *mc, struct memcache_server *ms));
	SIG(int, mcm_flush_all, (struct memcache_ctxt *ctxt, struct memcache *mc));
	SIG(void, mcm_free, (struct memcache_ctxt *ctxt, struct memcache *mc));
	SIG(void, mcm_get, (struct memcache_ctxt *ctxt, struct memcache *mc, struct memcache_req *req));
	SIG(u_int32_t, mcm_hash, (const struct memcache_ctxt *ctxt, const struct memcache *mc, const char *key, const size_t len));
	SIG(u_int32_t, mcm_hash_key, (const struct memcache_ctxt *ctxt, const char *key, const size_t len));
	SIG(u_int32_t, mcm_incr, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t key_len, const u_int32_t val));
	SIG(struct memcache *, mcm_new, (struct memcache_ctxt *ctxt));
	SIG(u_int32_t, mcm_reldate, (const struct memcache_ctxt *ctxt));
	SIG(int, mcm_replace, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t key_len, const void *val, const size_t bytes, const time_t expire, const u_int16_t flags));
	SIG(struct memcache_res *, mcm_req_add, (const struct memcache_ctxt *ctxt, struct memcache_req *req, char *key, const size_t len));
	SIG(struct memcache_res *, mcm_req_add_ref, (const struct memcache_ctxt *ctxt, struct memcache_req *req, char *key, const size_t len));
	SIG(void, mcm_req_free, (const struct memcache_ctxt *ctxt, struct memcache_req *req));
	SIG(struct memcache_req *, mcm_req_new, (const struct memcache_ctxt *ctxt));
	SIG(int, mcm_res_attempted, (const struct memcache_ctxt *ctxt, const struct memcache_res *res));
	SIG(int, mcm_res_found, (const struct memcache_ctxt *ctxt, const struct memcache_res *res));
	SIG(void, mcm_res_free, (const struct memcache_ctxt *ctxt, struct memcache_req *req, struct memcache_res *res));
	SIG(void, mcm_res_free_on_delete, (const struct memcache_ctxt *ctxt, struct memcache_res *res, const int free_on_delete));
	SIG(int, mcm_res_register_fetch_cb, (struct memcache_ctxt *ctxt, struct memcache_req *req, struct memcache_res *res, mcResCallback callback, void *misc));
	SIG(int, mcm_server_activate, (const struct memcache_ctxt *ctxt, struct memcache *mc, struct memcache_server *ms));
	SIG(int, mcm_server_activate_all, (const struct memcache_ctxt *ctxt, struct memcache *mc));
	SIG(int, mcm_server_add, (struct memcache_ctxt *ctxt, struct memcache *mc, const char *hostname, const char *port));
	SIG(int, mcm_server_add2, (struct memcache_ctxt *ctxt, struct memcache *mc, const char *hostname, const size_t hostname_len, const char *port, const size_t port_len));
	SIG(int, mcm_server_add3, (struct memcache_ctxt *ctxt, struct memcache *mc, struct memcache_server *ms));
	SIG(int, mcm_server_add4, (struct memcache_ctxt *ctxt, struct memcache *mc, mc_const char *hostport));
	SIG(int, mcm_server_add5, (struct memcache_ctxt *ctxt, struct memcache *mc, mc_const char *hostport, const size_t hostlen));
	SIG(void, mcm_server_deactivate, (struct memcache_ctxt *ctxt, struct memcache *mc, struct memcache_server *ms));
	SIG(void, mcm_server_disconnect, (const struct memcache_ctxt *ctxt, struct memcache_server *ms));
	SIG(void, mcm_server_disconnect_all, (const struct memcache_ctxt *ctxt, const struct memcache *mc));
	SIG(struct memcache_server *, mcm_server_find, (const struct memcache_ctxt *ctxt, struct memcache *mc, const u_int32_t hash));
	SIG(void, mcm_server_free, (struct memcache_ctxt *ctxt, struct memcache_server *ms));
	SIG(struct memcache_server *, mcm_server_new, (struct memcache_ctxt *ctxt));
	SIG(void, mcm_server_stats_free, (const struct memcache_ctxt *ctxt, struct memcache_server_stats *s));
	SIG(struct memcache_server_stats *, mcm_server_stats, (struct memcache_ctxt *ctxt, struct memcache *mc, struct memcache_server *ms));
	SIG(int, mcm_server_timeout, (const struct memcache_ctxt *ctxt, struct memcache_server *ms, const int sec, const int usec));
	SIG(int, mcm_set, (struct memcache_ctxt *ctxt, struct memcache *mc, char *key, const size_t key_len, const void *val, const size_t bytes, const time_t expire, const u_int16_t flags));
	SIG(struct memcache_server_stats *, mcm_stats, (struct memcache_ctxt *ctxt, struct memcache *mc));
	SIG(char *, mcm_strdup, (const struct memcache_ctxt *ctxt, const char *str));
	SIG(char *, mcm_strnchr, (const struct memcache_ctxt *ctxt, mc_const char *str, const int c, const size_t len));
	SIG(char *, mcm_strndup, (const struct memcache_ctxt *ctxt, const char *str, const size_t len));
	SIG(char *, mcm_strnstr, (const struct memcache_ctxt *ctxt, mc_const char *s, const char *find, size_t slen));
	SIG(void, mcm_timeout, (const struct memcache_ctxt *ctxt, struct memcache *mc, const int sec, const int usec));
	SIG(u_int32_t, mcm_vernum, (const struct memcache_ctxt *ctxt));
	SIG(const char *, mcm_version, (const struct memcache_ctxt *ctxt));
	SIG(int, mcm_buf_append, (struct memcache_ctxt *, struct memcache_buf *, const char *, const u_int32_t));
	SIG(int, mcm_buf_append2, (struct memcache_ctxt *, struct memcache_buf *, const char *));
	SIG(int, mcm_buf_append_buf, (struct memcache_ctxt *, struct memcache_buf *, struct memcache_buf *));
	SIG(int, mcm_buf_append_char, (struct memcache_ctxt *, struct memcache_buf *, char));
	SIG(int, mcm_buf_cmp, (struct memcache_ctxt *, const struct memcache_buf *, const char *, const size_t));
	SIG(int, mcm_buf_cmp2, (struct memcache_ctxt *, const struct memcache_buf *, const char *));
	SIG(int, mcm_buf_cmp_buf, (struct memcache_ctxt *, const struct memcache_buf *, const struct memcache_buf *));
	SIG(int, mcm_buf_compact, (struct memcache_ctxt *, struct memcache_buf *));
	SIG(struct memcache_buf *, mcm_buf_copy, (struct memcache_ctxt *, struct memcache_buf *));
	SIG(void, mcm_buf_eat_line, (struct memcache_ctxt *, struct memcache_buf *));
	SIG(int, mcm_buf_end, (struct memcache_ctxt *, const struct memcache_buf *, const char *, const size_t));
	SIG(int, mcm_buf_end2, (struct memcache_ctxt *, const struct memcache_buf *, const char *));
	SIG(int, mcm_buf_end_buf, (struct memcache_ctxt *, const struct memcache_buf *, struct memcache_buf *));
	SIG(char *, mcm_buf_find_buf, (struct memcache_ctxt *, const struct memcache_buf *, const struct memcache_buf *));
	SIG(char *, mcm_buf_find, (struct memcache_ctxt *, const struct memcache_buf *, const char *));
	SIG(char *, mcm_buf_find2, (struct memcache_ctxt *, const struct memcache_buf *, const char *, const size_t));
	SIG(struct memcache_buf *, mcm_buf_find_replace, (struct memcache_ctxt *, struct memcache_buf *, struct memcache_buf *, struct memcache_buf *));
	SIG(struct memcache_buf *, mcm_buf_find_replace2, (struct memcache_ctxt *, struct memcache_buf *, const char *, struct memcache_buf *));
	SIG(int, mcm_buf_free, (struct memcache_ctxt *, struct memcache_buf **));
	SIG(u_int32_t, mcm_buf_len, (const struct memcache_ctxt *, const struct memcache_buf *));
	SIG(struct memcache_buf *, mcm_buf_new, (struct memcache_ctxt *));
	SIG(struct memcache_buf *, mcm_buf_new2, (struct memcache_ctxt *, const char *, const u_int32_t));
	SIG(struct memcache_buf *, mcm_buf_new3, (struct memcache_ctxt *, const char *));
	SIG(size_t, mcm_buf_read, (struct memcache_ctxt *, struct memcache_buf *, int));
	SIG(int, mcm_buf_realloc, (struct memcache_ctxt *, struct memcache_buf *, const u_int32_t));
	SIG(size_t, mcm_buf_remain, (const struct memcache_ctxt *, const struct memcache_buf *));
	SIG(size_t, mcm_buf_remain_off, (const struct memcache_ctxt *, const struct memcache_buf *));
	SIG(int, mcm_buf_replace, (struct memcache_ctxt *, struct memcache_buf *, const char *, const u_int32_t));
	SIG(int, mcm_buf_replace2, (struct memcache_ctxt *, struct memcache_buf *, const char *));
	SIG(int, mcm_buf_replace_buf, (struct memcache_ctxt *, struct memcache_buf *, struct memcache_buf *));
	SIG(int, mcm_buf_reset, (struct memcache_ctxt *, struct memcache_buf *));
	SIG(int, mcm_buf_resize, (struct memcache_ctxt *, struct memcache_buf *, const u_int32_t));
	SIG(char *, mcm_buf_tail, (struct memcache_ctxt *, struct memcache_buf *));
	SIG(char *, mcm_buf_to_cstr, (struct memcache_ctxt *, struct memcache_buf *));
	SIG(struct memcache_buf *, mcm_buf_to_upper, (struct memcache_ctxt *, struct memcache_buf *));
}

static void check_unimplemented_declarations(void)
{
	/* Declared, never implemented: checked without referencing the symbols. */
	void (*reset_all)(struct memcache *) = (__typeof__(&mc_server_reset_all_dns))0;
	void (*reset_one)(struct memcache *, const char *, const int) = (__typeof__(&mc_server_reset_dns))0;

	CHECK(reset_all == NULL && reset_one == NULL, "%s", "mc_server_reset_*_dns declared");
}

int main(void)
{
	lib = dlopen("libmemcache.so.0", RTLD_NOW | RTLD_NOLOAD);
	if (lib == NULL)
		lib = dlopen("libmemcache.so.0", RTLD_NOW);
	CHECK(lib != NULL, "dlopen(libmemcache.so.0): %s", dlerror());
	if (lib == NULL)
		return CHECK_DONE();
	check_signatures();
	CHECK(symbols == 152, "%d functions checked, expected 152", symbols);
	check_unimplemented_declarations();
	/* mc_global_ctxt through the dynamic symbol returns the same context. */
	{
		struct memcache_ctxt *(*global)(void) = (struct memcache_ctxt * (*)(void)) dlsym(lib, "mc_global_ctxt");
		CHECK(global != NULL && global() == mc_global_ctxt(), "%s", "dlsym(mc_global_ctxt)() == mc_global_ctxt()");
	}
	dlclose(lib);
	return CHECK_DONE();
}
