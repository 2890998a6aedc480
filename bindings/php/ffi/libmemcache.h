#define FFI_SCOPE "libmemcache"
#define FFI_LIB "libmemcache.so.0"
/*
 * The part of memcache.h that the PHP package calls, in the form PHP's FFI parses (no
 * preprocessor beyond the two FFI_ defines, x86-64 LP64 layouts of memcache.h).
 *
 * Production (php-fpm, ffi.enable=preload): ffi.preload names this file, so PHP registers
 * the scope "libmemcache" at start with the library named by FFI_LIB (found by the dynamic
 * loader; write a full path here if it is not in ld.so.conf); preload.php's FFI::load() does
 * the same where opcache.preload runs without a preload_user. Libmemcache\Library then takes
 * it with FFI::scope(). Without preloading the same
 * declarations are given to FFI::cdef() (ffi.enable=true, or the CLI). The two defines must
 * open the file: FFI::load() looks for them there only.
 */

typedef long time_t;
struct timeval { long tv_sec; long tv_usec; };
struct memcache_server {
    void *misc; char *hostname; char *port; int fd; struct timeval tv; char active;
    void *hostinfo; uint32_t num_addrs; uint8_t fds[128]; void *rbuf; void *wbuf;
    uint32_t _last_hash; size_t soff; size_t startoff; void *tqe_next; void *tqe_prev;
};
struct memcache {
    void *misc; struct timeval tv; uint32_t num_servers; struct memcache_server **servers;
    void *tqh_first; void *tqh_last;
};
struct memcache_res {
    void *misc; char *key; size_t len; uint32_t hash; size_t bytes; void *val; size_t size;
    void *tqe_next; void *tqe_prev; uint16_t flags; char _flags;
};
struct memcache_req;
struct memcache_server_stats {
    int pid; time_t uptime; time_t time; char *version;
    struct timeval rusage_user; struct timeval rusage_system;
    uint32_t curr_items; uint64_t total_items; uint64_t bytes; uint32_t curr_connections;
    uint64_t total_connections; uint32_t connection_structures; uint64_t cmd_get;
    uint64_t cmd_set; uint64_t get_hits; uint64_t get_misses; uint64_t bytes_read;
    uint64_t bytes_written; uint64_t limit_maxbytes;
};
struct memcache_ctxt {
    void *mcFree; void *mcMalloc; void *mcMallocAtomic; void *mcRealloc; void *mcErr;
    int32_t (*mcKeyValid)(const void *ctxt, const char *key, size_t len);
};

/* The library's buffers come from the global context's allocator, libc's by default; dlsym
   finds free() through the library's own dependency on libc. */
void free(void *ptr);

struct memcache_ctxt *mc_global_ctxt(void);
int32_t mc_err_filter_add(uint32_t mask);
int32_t mc_err_filter_del(uint32_t mask);
int mc_last_error(const struct memcache *mc, char *buf, size_t buflen);
const char *mc_strerror(uint32_t errcode);

struct memcache *mc_new(void);
struct memcache *mc_new2(const char *domain);
struct memcache *mc_new_private(void);
void mc_free(struct memcache *mc);
int mc_server_add_weighted(struct memcache *mc, const char *hostport, uint32_t weight);
int mc_distribution(struct memcache *mc, int distribution);
int mc_distribution_get(const struct memcache *mc);
struct memcache_server *mc_server_find(struct memcache *mc, uint32_t hash);
void mc_server_disconnect_all(const struct memcache *mc);

void *mc_agets(struct memcache *mc, const char *key, size_t len, size_t *retlen,
               uint16_t *flags, uint64_t *cas);
int mc_set(struct memcache *mc, const char *key, size_t key_len, const char *val,
           size_t bytes, time_t expire, uint16_t flags);
int mc_add(struct memcache *mc, const char *key, size_t key_len, const char *val,
           size_t bytes, time_t expire, uint16_t flags);
int mc_replace(struct memcache *mc, const char *key, size_t key_len, const char *val,
               size_t bytes, time_t expire, uint16_t flags);
int mc_append(struct memcache *mc, const char *key, size_t key_len, const char *val,
              size_t bytes, time_t expire, uint16_t flags);
int mc_prepend(struct memcache *mc, const char *key, size_t key_len, const char *val,
               size_t bytes, time_t expire, uint16_t flags);
int mc_cas(struct memcache *mc, const char *key, size_t key_len, const char *val,
           size_t bytes, time_t expire, uint16_t flags, uint64_t cas);
int mc_delete(struct memcache *mc, const char *key, size_t key_len, time_t hold);
int mc_touch(struct memcache *mc, const char *key, size_t key_len, time_t expire);
int mc_incr64(struct memcache *mc, const char *key, size_t key_len, uint64_t delta,
              uint64_t *value);
int mc_decr64(struct memcache *mc, const char *key, size_t key_len, uint64_t delta,
              uint64_t *value);
int mc_flush_all(struct memcache *mc);

struct memcache_req *mc_req_new(void);
struct memcache_res *mc_req_add(struct memcache_req *req, const char *key, size_t len);
void mc_req_free(struct memcache_req *req);
int mc_res_found(const struct memcache_res *res);
void mc_get(struct memcache *mc, struct memcache_req *req);

/* Beyond 1.4: many writes in one call (mc_bulk(3)), TLS and login (mc_tls(3)). */
struct memcache_bulk {
    const char *key; size_t key_len; const void *val; size_t val_len; uint32_t flags;
    time_t exptime; int result;
};
int mc_bulk(struct memcache *mc, int op, struct memcache_bulk *items, size_t n);
int mc_tls(struct memcache *mc, int on);
int mc_tls_ca(struct memcache *mc, const char *path);
int mc_tls_cert(struct memcache *mc, const char *cert, const char *key);
int mc_tls_insecure(struct memcache *mc, int on);
int mc_auth(struct memcache *mc, const char *user, const char *password);
int mc_auth_file(struct memcache *mc, const char *path);

char *mc_server_version(struct memcache *mc, struct memcache_server *ms);
struct memcache_server_stats *mc_server_stats(struct memcache *mc, struct memcache_server *ms);
void mc_server_stats_free(struct memcache_server_stats *s);
