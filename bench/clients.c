/*
 * The C clients of `make bench` (bench/main.rs runs them): this library through its C API,
 * libmemcached, and a raw-socket floor, on the same workloads. One process runs one client on
 * one workload.
 *
 * Usage: clients CLIENT WORKLOAD RUN SERVER...
 *   CLIENT    mc            this library, one private handle (mc_new_private, mc_server_add4)
 *             mc-domain     this library, a handle following a domain: mc_new2(SERVER), where
 *                           the one SERVER argument is the domain's name
 *             libmemcached  Debian's libmemcached, text protocol, TCP_NODELAY
 *             floor         hand-written requests over one blocking socket per server; replies
 *                           are read until their last bytes end them, nothing else is parsed
 *             mc-shared8    8 threads on ONE handle of this library (its calls pipeline)
 *             mc-locked8    8 threads on one handle, each call under a mutex of the program's:
 *                           the serialised handle (one call at a time, each waiting for the
 *                           whole round trip of the one before), as before issue 16
 *             libmemcached8 8 threads, one libmemcached handle each (as its documentation
 *                           recommends)
 *             libmemcached-noreply  libmemcached with BUFFER_REQUESTS and NOREPLY: its fastest
 *                           way to write many keys, which cannot tell which writes failed
 *             mc-tls        this library over TLS: a private handle, each SERVER added as
 *                           tls://SERVER, the CA of $MC_BENCH_TLS_CA (mc_tls_ca)
 *             mc-tls-noresume  the same with session resumption off (mc_tls_resumption)
 *   WORKLOAD  get_hit get_miss set set_10k incr mget (100 keys over the servers given)
 *             bulkset (100 keys stored in one operation: mc_bulk; libmemcached's set loop)
 *             reconnect (mc_server_disconnect_all, then a get hit: a new connection per
 *             operation, over TLS a handshake)
 *   RUN       ops:N   times N operations and prints "OPS SECONDS" (for callgrind);
 *             (the 8-thread clients: N per thread; their slices print as MEDIAN-LATENCY the
 *             slice's time over its operations, so that operations over it is their rate)
 *             rss:N   the 8-thread clients only: N operations in all, in 10 equal steps (each
 *                     N/10 spread over the threads), reading the resident memory (VmRSS of
 *                     /proc/self/status, kB) after each step; prints "OPS SECONDS RSS-1 ...
 *                     RSS-10", so that growth after the first step shows a leak per operation
 *             slices  prints "ready", then for each line "S" read from stdin runs operations
 *                     for S seconds and prints "OPS SECONDS MEDIAN-LATENCY"; exits at end of
 *                     input. The harness hands slices to the clients of a workload in turn,
 *                     so that they are measured milliseconds apart and noise hits all alike.
 *   SERVER    HOST:PORT
 *
 * Before timing, each client stores its own data and runs 200 warm-up operations (20
 * reconnects), so the
 * difference of two callgrind runs with different N counts exactly the timed operations.
 */
#include <libmemcached/memcached.h>
#include <memcache.h>

#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VALUE_LEN 100
#define BIG_LEN 10240
#define MGET_KEYS 100
#define FLOOR_MAX_SERVERS 8
#define WARMUP 200
#define THREADS 8
#define RSS_STEPS 10

enum workload {
    W_GET_HIT,
    W_GET_MISS,
    W_SET,
    W_SET_10K,
    W_INCR,
    W_MGET,
    W_BULK_SET,
    W_RECONNECT,
    N_WORKLOADS
};
static const char *const workload_names[N_WORKLOADS] = {
    "get_hit", "get_miss", "set", "set_10k", "incr", "mget", "bulkset", "reconnect"};

/* The APIs under test take `char *` keys, so the keys are writable arrays. */
static char key_hit[] = "bench:hit";
static char key_miss[] = "bench:miss";
static char key_set[] = "bench:set";
static char key_big[] = "bench:set10k";
/* Per process ("bench:counter:PID", fixed width), as the clients of a workload run side by side. */
static char key_counter[32];
static size_t key_counter_len;
static char mget_keys[MGET_KEYS][16];
static size_t mget_lens[MGET_KEYS];
static const char *mget_ptrs[MGET_KEYS];
static char value[BIG_LEN];
/* What the next incr must return: every client resets the counter to 0 in its setup. */
static uint64_t counter;

#define KEY(k) (k), (sizeof(k) - 1)

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clients: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ---- this library, C API ---- */

static struct memcache *mc;

static void mc_store_data(void)
{
    if (mc_set(mc, KEY(key_hit), value, VALUE_LEN, 0, 0) != 0)
        die("mc: setup set failed");
    mc_delete(mc, KEY(key_miss), 0);
    if (mc_set(mc, key_counter, key_counter_len, "0", 1, 0, 0) != 0)
        die("mc: setup counter failed");
    for (int i = 0; i < MGET_KEYS; i++)
        if (mc_set(mc, mget_keys[i], mget_lens[i], value, VALUE_LEN, 0, 0) != 0)
            die("mc: setup of %s failed", mget_keys[i]);
}

static void mc_setup(char **servers, int n, enum workload w)
{
    (void)w;
    mc = mc_new_private();
    for (int i = 0; i < n; i++)
        if (mc == NULL || mc_server_add4(mc, servers[i]) != 0)
            die("mc: cannot add %s", servers[i]);
    mc_store_data();
}

static void mc_domain_setup(char **servers, int n, enum workload w)
{
    (void)w;
    if (n != 1)
        die("mc-domain takes one domain name");
    mc = mc_new2(servers[0]);
    if (mc == NULL || mc->num_servers != 1)
        die("mc-domain: domain %s must list exactly one server", servers[0]);
    mc_store_data();
}

static void mc_get_hit(void)
{
    size_t len = 0;
    char *v = mc_aget2(mc, KEY(key_hit), &len);
    if (v == NULL || len != VALUE_LEN)
        die("mc: get hit failed");
    free(v);
}

static void mc_get_miss(void)
{
    if (mc_aget(mc, KEY(key_miss)) != NULL)
        die("mc: get miss found a value");
}

static void mc_set_small(void)
{
    if (mc_set(mc, KEY(key_set), value, VALUE_LEN, 0, 0) != 0)
        die("mc: set failed");
}

static void mc_set_big(void)
{
    if (mc_set(mc, KEY(key_big), value, BIG_LEN, 0, 0) != 0)
        die("mc: set of 10 KiB failed");
}

static void mc_incr_op(void)
{
    if (mc_incr(mc, key_counter, key_counter_len, 1) != (uint32_t)++counter)
        die("mc: incr returned a wrong value");
}

/* A 1.4 program's multi-get: a fresh request, one mc_req_add per key, mc_get, read, free. */
static void mc_mget(void)
{
    struct memcache_res *res[MGET_KEYS];
    struct memcache_req *req = mc_req_new();
    for (int i = 0; i < MGET_KEYS; i++)
        if ((res[i] = mc_req_add(req, mget_keys[i], mget_lens[i])) == NULL)
            die("mc: mc_req_add failed");
    mc_get(mc, req);
    int found = 0;
    for (int i = 0; i < MGET_KEYS; i++)
        found += mc_res_found(res[i]) && res[i]->bytes == VALUE_LEN;
    mc_req_free(req);
    if (found != MGET_KEYS)
        die("mc: multi-get found %d of %d keys", found, MGET_KEYS);
}

/* 100 keys stored in one call, each item's result checked. */
static struct memcache_bulk bulk_items[MGET_KEYS];

static void mc_bulk_set(void)
{
    for (int i = 0; i < MGET_KEYS; i++) {
        bulk_items[i].key = mget_keys[i];
        bulk_items[i].key_len = mget_lens[i];
        bulk_items[i].val = value;
        bulk_items[i].val_len = VALUE_LEN;
    }
    int failed = mc_bulk(mc, MC_BULK_SET, bulk_items, MGET_KEYS);
    if (failed != 0)
        die("mc: bulk set: %d of %d items not stored", failed, MGET_KEYS);
}

static void mc_teardown(void)
{
    mc_free(mc);
}

/* Every operation on a new connection: what a reconnect after a failover or a fork costs. */
static void mc_reconnect_get(void)
{
    mc_server_disconnect_all(mc);
    mc_get_hit();
}

/* ---- this library over TLS: the same calls as "mc", to servers written tls://HOST:PORT ---- */

static void mc_tls_setup_with(char **servers, int n, int resume)
{
    const char *ca = getenv("MC_BENCH_TLS_CA");
    char url[300];

    if (ca == NULL)
        die("mc-tls: MC_BENCH_TLS_CA names no CA file");
    mc = mc_new_private();
    if (mc == NULL || mc_tls_ca(mc, ca) != 0)
        die("mc-tls: cannot use the CA %s", ca);
    if (!resume && mc_tls_resumption(mc, 0) != 0)
        die("mc-tls: cannot turn session resumption off");
    for (int i = 0; i < n; i++) {
        snprintf(url, sizeof(url), "tls://%s", servers[i]);
        if (mc_server_add4(mc, url) != 0)
            die("mc-tls: cannot add %s", url);
    }
    mc_store_data();
}

static void mc_tls_setup(char **servers, int n, enum workload w)
{
    (void)w;
    mc_tls_setup_with(servers, n, 1);
}

static void mc_tls_noresume_setup(char **servers, int n, enum workload w)
{
    (void)w;
    mc_tls_setup_with(servers, n, 0);
}

/* ---- libmemcached ---- */

/* One per thread: the 8-thread client gives each thread its own handle. */
static __thread memcached_st *lm;
static __thread memcached_result_st lm_result;

static void lm_check(memcached_return_t rc, const char *what)
{
    if (rc != MEMCACHED_SUCCESS)
        die("libmemcached: %s: %s", what, memcached_strerror(lm, rc));
}

/*
 * Its best settings: TCP_NODELAY (one small request per round trip); requests not buffered (the
 * default), since every operation waits for its reply. NO_BLOCK was tried for every workload:
 * no faster, the 4-server multi-get included, and 3-7% more instructions, so it stays off.
 */
/* The servers, kept for the threads of libmemcached8 to connect their own handles. */
static char **lm_servers;
static int lm_nservers;

static void lm_connect(void)
{
    char **servers = lm_servers;
    int n = lm_nservers;
    lm = memcached_create(NULL);
    if (lm == NULL)
        die("libmemcached: memcached_create failed");
    lm_check(memcached_behavior_set(lm, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1), "TCP_NODELAY");
    for (int i = 0; i < n; i++) {
        char host[256];
        const char *colon = strrchr(servers[i], ':');
        if (colon == NULL || (size_t)(colon - servers[i]) >= sizeof(host))
            die("libmemcached: bad server %s", servers[i]);
        memcpy(host, servers[i], colon - servers[i]);
        host[colon - servers[i]] = '\0';
        lm_check(memcached_server_add(lm, host, (in_port_t)atoi(colon + 1)), "server_add");
    }
    if (memcached_result_create(lm, &lm_result) == NULL)
        die("libmemcached: memcached_result_create failed");
}

static void lm_setup(char **servers, int n, enum workload w)
{
    (void)w;
    lm_servers = servers;
    lm_nservers = n;
    lm_connect();
    lm_check(memcached_set(lm, KEY(key_hit), value, VALUE_LEN, 0, 0), "setup set");
    memcached_delete(lm, KEY(key_miss), 0);
    lm_check(memcached_set(lm, key_counter, key_counter_len, "0", 1, 0, 0), "setup counter");
    for (int i = 0; i < MGET_KEYS; i++)
        lm_check(memcached_set(lm, mget_keys[i], mget_lens[i], value, VALUE_LEN, 0, 0),
                 "setup set");
}

static void lm_get_hit(void)
{
    size_t len = 0;
    uint32_t flags;
    memcached_return_t rc;
    char *v = memcached_get(lm, KEY(key_hit), &len, &flags, &rc);
    if (v == NULL || len != VALUE_LEN)
        die("libmemcached: get hit failed: %s", memcached_strerror(lm, rc));
    free(v);
}

static void lm_get_miss(void)
{
    size_t len;
    uint32_t flags;
    memcached_return_t rc;
    char *v = memcached_get(lm, KEY(key_miss), &len, &flags, &rc);
    if (v != NULL || rc != MEMCACHED_NOTFOUND)
        die("libmemcached: get miss: %s", memcached_strerror(lm, rc));
}

static void lm_set_small(void)
{
    lm_check(memcached_set(lm, KEY(key_set), value, VALUE_LEN, 0, 0), "set");
}

static void lm_set_big(void)
{
    lm_check(memcached_set(lm, KEY(key_big), value, BIG_LEN, 0, 0), "set of 10 KiB");
}

static void lm_incr(void)
{
    uint64_t v = 0;
    lm_check(memcached_increment(lm, key_counter, key_counter_len, 1, &v), "incr");
    if (v != ++counter)
        die("libmemcached: incr returned a wrong value");
}

static void lm_mget(void)
{
    memcached_return_t rc;
    lm_check(memcached_mget(lm, mget_ptrs, mget_lens, MGET_KEYS), "mget");
    int found = 0;
    while (memcached_fetch_result(lm, &lm_result, &rc) != NULL)
        found += memcached_result_length(&lm_result) == VALUE_LEN;
    if (found != MGET_KEYS)
        die("libmemcached: multi-get found %d of %d keys: %s", found, MGET_KEYS,
            memcached_strerror(lm, rc));
}

/* libmemcached's way without buffering: a set per key, each waiting for its reply. */
static void lm_bulk_set(void)
{
    for (int i = 0; i < MGET_KEYS; i++)
        lm_check(memcached_set(lm, mget_keys[i], mget_lens[i], value, VALUE_LEN, 0, 0), "set");
}

/* One of the bulk keys per server, for the round trip that ends a buffered bulk set. */
static const char *sync_ptrs[FLOOR_MAX_SERVERS];
static size_t sync_lens[FLOOR_MAX_SERVERS];
static int sync_n;

static void lm_noreply_setup(char **servers, int n, enum workload w)
{
    lm_setup(servers, n, w);
    for (uint32_t server = 0; server < (uint32_t)n; server++)
        for (int i = 0; i < MGET_KEYS; i++)
            if (memcached_generate_hash(lm, mget_keys[i], mget_lens[i]) == server) {
                sync_ptrs[sync_n] = mget_keys[i];
                sync_lens[sync_n++] = mget_lens[i];
                break;
            }
    if (sync_n != n)
        die("libmemcached: no bulk key on %d of %d servers", n - sync_n, n);
    lm_check(memcached_behavior_set(lm, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1), "BUFFER_REQUESTS");
    lm_check(memcached_behavior_set(lm, MEMCACHED_BEHAVIOR_NOREPLY, 1), "NOREPLY");
}

/*
 * Buffered and without replies: the sets go out at the flush, and a failure is never heard of.
 * Then one round trip per server (a get of a key it holds), which the server answers only
 * after the sets before it: without it the loop would time only the copy into the socket buffers, not the
 * writes (mc_bulk's answers say every key was written, so it has waited for as much).
 */
static void lm_noreply_bulk_set(void)
{
    for (int i = 0; i < MGET_KEYS; i++) {
        memcached_return_t rc =
            memcached_set(lm, mget_keys[i], mget_lens[i], value, VALUE_LEN, 0, 0);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED)
            die("libmemcached: buffered set: %s", memcached_strerror(lm, rc));
    }
    lm_check(memcached_flush_buffers(lm), "flush_buffers");
    /* `version` returns at once under NOREPLY, so the round trip is a get of one key per server. */
    memcached_return_t rc;
    lm_check(memcached_mget(lm, sync_ptrs, sync_lens, sync_n), "sync mget");
    int found = 0;
    while (memcached_fetch_result(lm, &lm_result, &rc) != NULL)
        found++;
    if (found != sync_n)
        die("libmemcached: sync read %d of %d keys", found, sync_n);
}

static void lm_teardown(void)
{
    memcached_result_free(&lm_result);
    memcached_free(lm);
}

/* ---- the raw-socket floor ---- */

/*
 * One prepared request per server and the length its reply must have (known from the setup,
 * checked after each operation at the cost of one comparison).
 */
struct prepared {
    char *bytes;
    size_t len;
    size_t reply_len;
};

static int floor_fd[FLOOR_MAX_SERVERS];
static int floor_n;
static struct prepared floor_req[FLOOR_MAX_SERVERS];
static const char *floor_end; /* what the reply ends with: "END\r\n" or "\r\n" */
static size_t floor_end_len;
static char floor_buf[1 << 17];

static void floor_send(int fd, const char *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL);
        if (n <= 0)
            die("floor: send failed");
        bytes += n;
        len -= (size_t)n;
    }
}

/* Reads until the reply ends with `end`; returns its length. */
static size_t floor_recv(int fd, const char *end, size_t end_len)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, floor_buf + got, sizeof(floor_buf) - got, 0);
        if (n <= 0)
            die("floor: recv failed or reply too long");
        got += (size_t)n;
        if (got >= end_len && memcmp(floor_buf + got - end_len, end, end_len) == 0)
            return got;
    }
}

static size_t floor_exchange(int fd, const char *bytes, size_t len, const char *end)
{
    floor_send(fd, bytes, len);
    return floor_recv(fd, end, strlen(end));
}

static int floor_connect(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
        die("floor: bad server %s", hostport);
    memcpy(host, hostport, colon - hostport);
    host[colon - hostport] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        die("floor: cannot resolve %s", hostport);
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        die("floor: cannot connect to %s", hostport);
    freeaddrinfo(ai);
    return fd;
}

/* A storage command: header, value and the closing CRLF in one buffer. */
static void floor_prepare_set(struct prepared *p, const char *key, size_t bytes)
{
    char head[128];
    int h = snprintf(head, sizeof(head), "set %s 0 0 %zu\r\n", key, bytes);
    p->len = (size_t)h + bytes + 2;
    p->bytes = malloc(p->len);
    if (p->bytes == NULL)
        die("floor: out of memory");
    memcpy(p->bytes, head, (size_t)h);
    memcpy(p->bytes + h, value, bytes);
    memcpy(p->bytes + h + bytes, "\r\n", 2);
}

static void floor_prepare_text(struct prepared *p, const char *text)
{
    p->bytes = strdup(text);
    p->len = strlen(text);
}

static void floor_setup(char **servers, int n, enum workload w)
{
    if (n > FLOOR_MAX_SERVERS)
        die("floor: at most %d servers", FLOOR_MAX_SERVERS);
    floor_n = n;
    for (int i = 0; i < n; i++)
        floor_fd[i] = floor_connect(servers[i]);
    /* The data: keys of the multi-get go to server i % n (the floor's own placement). */
    struct prepared p;
    floor_prepare_set(&p, key_hit, VALUE_LEN);
    if (floor_exchange(floor_fd[0], p.bytes, p.len, "\r\n") != 8)
        die("floor: setup set failed");
    free(p.bytes);
    floor_exchange(floor_fd[0], "delete bench:miss\r\n", 19, "\r\n");
    char text[128];
    int len = snprintf(text, sizeof(text), "set %s 0 0 1\r\n0\r\n", key_counter);
    if (floor_exchange(floor_fd[0], text, (size_t)len, "\r\n") != 8)
        die("floor: setup counter failed");
    for (int i = 0; i < MGET_KEYS; i++) {
        floor_prepare_set(&p, mget_keys[i], VALUE_LEN);
        if (floor_exchange(floor_fd[i % n], p.bytes, p.len, "\r\n") != 8)
            die("floor: setup set failed");
        free(p.bytes);
    }
    floor_end = "\r\n";
    switch (w) {
    case W_GET_HIT:
        floor_prepare_text(&floor_req[0], "get bench:hit\r\n");
        floor_end = "END\r\n";
        break;
    case W_GET_MISS:
        floor_prepare_text(&floor_req[0], "get bench:miss\r\n");
        floor_end = "END\r\n";
        break;
    case W_SET:
        floor_prepare_set(&floor_req[0], key_set, VALUE_LEN);
        break;
    case W_SET_10K:
        floor_prepare_set(&floor_req[0], key_big, BIG_LEN);
        break;
    case W_INCR:
        snprintf(text, sizeof(text), "incr %s 1\r\n", key_counter);
        floor_prepare_text(&floor_req[0], text);
        break;
    case W_MGET:
        for (int s = 0; s < n; s++) {
            struct prepared *r = &floor_req[s];
            r->bytes = malloc(4 + MGET_KEYS * 16 + 2);
            if (r->bytes == NULL)
                die("floor: out of memory");
            memcpy(r->bytes, "get", 3);
            r->len = 3;
            for (int i = s; i < MGET_KEYS; i += n) {
                r->bytes[r->len++] = ' ';
                memcpy(r->bytes + r->len, mget_keys[i], mget_lens[i]);
                r->len += mget_lens[i];
            }
            memcpy(r->bytes + r->len, "\r\n", 2);
            r->len += 2;
        }
        floor_end = "END\r\n";
        break;
    default:
        break;
    }
    floor_end_len = strlen(floor_end);
    /* The expected reply lengths; the incr reply grows with the counter and is not checked. */
    int servers_used = w == W_MGET ? n : 1;
    for (int s = 0; s < servers_used; s++) {
        floor_send(floor_fd[s], floor_req[s].bytes, floor_req[s].len);
        floor_req[s].reply_len = floor_recv(floor_fd[s], floor_end, floor_end_len);
    }
    if (w == W_GET_HIT && floor_req[0].reply_len != strlen("VALUE bench:hit 0 100\r\n") + 107)
        die("floor: unexpected get reply");
    if (w == W_INCR)
        counter = 1;
}

static void floor_single(void)
{
    floor_send(floor_fd[0], floor_req[0].bytes, floor_req[0].len);
    if (floor_recv(floor_fd[0], floor_end, floor_end_len) != floor_req[0].reply_len)
        die("floor: unexpected reply");
}

static void floor_incr(void)
{
    floor_send(floor_fd[0], floor_req[0].bytes, floor_req[0].len);
    floor_recv(floor_fd[0], floor_end, floor_end_len);
    counter++;
}

/* Every server's request is written before any reply is read. */
static void floor_mget(void)
{
    for (int s = 0; s < floor_n; s++)
        floor_send(floor_fd[s], floor_req[s].bytes, floor_req[s].len);
    for (int s = 0; s < floor_n; s++)
        if (floor_recv(floor_fd[s], floor_end, floor_end_len) != floor_req[s].reply_len)
            die("floor: unexpected multi-get reply");
}

static void floor_teardown(void)
{
    for (int s = 0; s < floor_n; s++)
        close(floor_fd[s]);
}

/* ---- the run ---- */

struct client {
    const char *name;
    void (*setup)(char **servers, int n, enum workload w);
    void (*op[N_WORKLOADS])(void);
    void (*teardown)(void);
    /* 8-thread clients: THREADS threads run the operations; each first runs thread_setup
     * (if any); with `locked`, every operation runs under one mutex of the program's. */
    int threads;
    void (*thread_setup)(void);
    int locked;
};

static const struct client clients[] = {
    {"mc", mc_setup,
     {mc_get_hit, mc_get_miss, mc_set_small, mc_set_big, mc_incr_op, mc_mget, mc_bulk_set,
      mc_reconnect_get},
     mc_teardown, 0, NULL, 0},
    {"mc-tls", mc_tls_setup,
     {mc_get_hit, mc_get_miss, mc_set_small, mc_set_big, mc_incr_op, mc_mget, mc_bulk_set,
      mc_reconnect_get},
     mc_teardown, 0, NULL, 0},
    {"mc-tls-noresume", mc_tls_noresume_setup,
     {NULL, NULL, NULL, NULL, NULL, NULL, NULL, mc_reconnect_get}, mc_teardown, 0, NULL, 0},
    {"mc-domain", mc_domain_setup,
     {mc_get_hit, mc_get_miss, mc_set_small, mc_set_big, mc_incr_op, mc_mget}, mc_teardown, 0, NULL, 0},
    {"libmemcached", lm_setup,
     {lm_get_hit, lm_get_miss, lm_set_small, lm_set_big, lm_incr, lm_mget, lm_bulk_set},
     lm_teardown, 0, NULL, 0},
    {"libmemcached-noreply", lm_noreply_setup,
     {NULL, NULL, NULL, NULL, NULL, NULL, lm_noreply_bulk_set}, lm_teardown, 0, NULL, 0},
    {"floor", floor_setup,
     {floor_single, floor_single, floor_single, floor_single, floor_incr, floor_mget},
     floor_teardown, 0, NULL, 0},
    {"mc-shared8", mc_setup,
     {mc_get_hit, mc_get_miss, mc_set_small, mc_set_big, NULL, mc_mget}, mc_teardown, THREADS,
     NULL, 0},
    {"mc-locked8", mc_setup,
     {mc_get_hit, mc_get_miss, mc_set_small, mc_set_big, NULL, mc_mget}, mc_teardown, THREADS,
     NULL, 1},
    {"libmemcached8", lm_setup,
     {lm_get_hit, lm_get_miss, lm_set_small, lm_set_big, NULL, lm_mget}, lm_teardown, THREADS,
     lm_connect, 0},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each operation's latency in the current slice (beyond the capacity, latencies are dropped). */
static double latency[1 << 18];

/*
 * Runs operations for `secs` seconds and prints "OPS SECONDS MEDIAN": their number, the time
 * they took and the median latency of one operation, which stays put when other work on the
 * machine delays some of them.
 */
static void slice(void (*op)(void), double secs)
{
    long done = 0;
    double start = now(), t = start;
    do {
        op();
        double t1 = now();
        if (done < (long)(sizeof(latency) / sizeof(latency[0])))
            latency[done] = t1 - t;
        t = t1;
        done++;
    } while (t - start < secs);
    long kept = done < (long)(sizeof(latency) / sizeof(latency[0]))
                    ? done
                    : (long)(sizeof(latency) / sizeof(latency[0]));
    qsort(latency, (size_t)kept, sizeof(latency[0]), cmp_double);
    printf("%ld %.9f %.9f\n", done, t - start, latency[kept / 2]);
    fflush(stdout);
}

/* ---- 8 threads ---- */

static const struct client *threaded;
static void (*thread_op)(void);
static pthread_mutex_t serial = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t warm, go, done;
/* What the next run is: `run_ops` operations per thread, else until `run_until`; -1: quit. */
static long run_ops;
static double run_until;
static long thread_count[THREADS];

static void one_op(void)
{
    if (threaded->locked) {
        pthread_mutex_lock(&serial);
        thread_op();
        pthread_mutex_unlock(&serial);
    } else {
        thread_op();
    }
}

static void *worker(void *arg)
{
    long id = (long)arg;
    if (threaded->thread_setup != NULL)
        threaded->thread_setup();
    for (int i = 0; i < WARMUP; i++)
        one_op();
    pthread_barrier_wait(&warm);
    for (;;) {
        pthread_barrier_wait(&go);
        if (run_ops < 0)
            break;
        long n = 0;
        if (run_ops > 0)
            for (; n < run_ops; n++)
                one_op();
        else
            do {
                one_op();
                n++;
            } while (now() < run_until);
        thread_count[id] = n;
        pthread_barrier_wait(&done);
    }
    if (threaded->thread_setup == lm_connect)
        lm_teardown();
    return NULL;
}

/* One run of every thread (see run_ops); returns the operations of all and their seconds. */
static long run_threads(long ops, double secs, double *took)
{
    double start = now();
    run_ops = ops;
    run_until = start + secs;
    pthread_barrier_wait(&go);
    pthread_barrier_wait(&done);
    *took = now() - start;
    long total = 0;
    for (int i = 0; i < THREADS; i++)
        total += thread_count[i];
    return total;
}

/*
 * This process's resident memory in kB. Read with open/read into the stack, not stdio, so the
 * measurement allocates nothing of its own.
 */
static long rss_kb(void)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        die("cannot read /proc/self/status");
    buf[n] = '\0';
    const char *line = strstr(buf, "\nVmRSS:");
    long kb;
    if (line == NULL || sscanf(line, "\nVmRSS: %ld", &kb) != 1)
        die("no VmRSS in /proc/self/status");
    return kb;
}

/* RUN rss:N (see the top of this file). */
static void rss_steps(long ops)
{
    long per_thread = ops / RSS_STEPS / THREADS, total = 0, kb[RSS_STEPS];
    double took, secs = 0;
    for (int i = 0; i < RSS_STEPS; i++) {
        total += run_threads(per_thread, 0, &took);
        secs += took;
        kb[i] = rss_kb();
    }
    printf("%ld %.9f", total, secs);
    for (int i = 0; i < RSS_STEPS; i++)
        printf(" %ld", kb[i]);
    printf("\n");
}

/* `ops` > 0: RUN ops:N; `rss` > 0: RUN rss:N; neither: slices. */
static void threaded_main(const struct client *c, void (*op)(void), long ops, long rss)
{
    threaded = c;
    thread_op = op;
    pthread_t tids[THREADS];
    if (pthread_barrier_init(&warm, NULL, THREADS + 1) != 0 ||
        pthread_barrier_init(&go, NULL, THREADS + 1) != 0 ||
        pthread_barrier_init(&done, NULL, THREADS + 1) != 0)
        die("cannot make barriers");
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0)
            die("cannot start thread %ld", i);
    /* Timed runs start once every thread is connected and warmed up. */
    pthread_barrier_wait(&warm);
    double took;
    if (rss > 0) {
        rss_steps(rss);
    } else if (ops > 0) {
        long total = run_threads(ops, 0, &took);
        printf("%ld %.9f\n", total, took);
    } else {
        printf("ready\n");
        fflush(stdout);
        double secs;
        while (scanf("%lf", &secs) == 1) {
            long total = run_threads(0, secs, &took);
            printf("%ld %.9f %.9f\n", total, took, took / (double)(total > 0 ? total : 1));
            fflush(stdout);
        }
    }
    run_ops = -1;
    pthread_barrier_wait(&go);
    for (int i = 0; i < THREADS; i++)
        pthread_join(tids[i], NULL);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s CLIENT WORKLOAD ops:N|rss:N|slices SERVER...\n", argv[0]);
        return 1;
    }
    const struct client *c = NULL;
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
        if (strcmp(argv[1], clients[i].name) == 0)
            c = &clients[i];
    int w = 0;
    while (w < N_WORKLOADS && strcmp(argv[2], workload_names[w]) != 0)
        w++;
    long ops = 0, rss = 0;
    if (c == NULL || w == N_WORKLOADS ||
        !(sscanf(argv[3], "ops:%ld", &ops) == 1 || sscanf(argv[3], "rss:%ld", &rss) == 1 ||
          strcmp(argv[3], "slices") == 0))
        die("unknown client, workload or run \"%s %s %s\"", argv[1], argv[2], argv[3]);
    /* Fewer would leave a step with no operations, which run_threads takes as a timed run. */
    if (rss != 0 && (c->threads == 0 || rss < RSS_STEPS * THREADS))
        die("rss:N takes an 8-thread client and N >= %d", RSS_STEPS * THREADS);
    if (argc - 4 > FLOOR_MAX_SERVERS)
        die("at most %d servers", FLOOR_MAX_SERVERS);

    memset(value, 'x', sizeof(value));
    for (int i = 0; i < MGET_KEYS; i++) {
        mget_lens[i] = (size_t)snprintf(mget_keys[i], sizeof(mget_keys[i]), "bench:mget:%03d", i);
        mget_ptrs[i] = mget_keys[i];
    }
    key_counter_len = (size_t)snprintf(key_counter, sizeof(key_counter), "bench:counter:%010ld",
                                       (long)getpid());
    c->setup(argv + 4, argc - 4, (enum workload)w);
    void (*op)(void) = c->op[w];
    if (op == NULL)
        die("%s does not run %s", c->name, workload_names[w]);
    if (c->threads > 0) {
        threaded_main(c, op, ops, rss);
        c->teardown();
        return 0;
    }
    /* A reconnect is a handshake: fewer suffice, and callgrind runs them all. */
    long warmup = w == W_RECONNECT ? WARMUP / 10 : WARMUP;
    for (long i = 0; i < warmup; i++)
        op();

    if (ops > 0) {
        double start = now();
        for (long i = 0; i < ops; i++)
            op();
        printf("%ld %.9f\n", ops, now() - start);
    } else {
        memset(latency, 0, sizeof(latency)); /* no page faults inside the first slice */
        printf("ready\n");
        fflush(stdout);
        double secs;
        while (scanf("%lf", &secs) == 1)
            slice(op, secs);
    }
    c->teardown();
    return 0;
}
