/*
 * A length claim is not allocated up front (issue 12, fault 6): a VALUE line claiming 1 GiB
 * whose bytes never come must not make the library allocate 1 GiB (or anything near it) before
 * they arrive; memory grows with the bytes received. A real big value still comes back whole.
 *
 * The fake server (tests/engine_faults.rs) answers a get whose first key starts with "claim" with
 * "VALUE <key> 0 1073741824\r\n", eight bytes, then silence for 2 s and the connection closed; a
 * get of "big..." keys with a 3 MiB value for each (byte i = (i * 31 + (i >> 12)) & 0xff) and END;
 * anything else with a miss.
 *
 * BIGCLAIM_ALLOC=tracking installs allocators with mcMemSetup() that count the bytes outstanding
 * and their peak, and the largest single request; a request above 256 MB is recorded and refused
 * (NULL), so the test never uses that memory even when the library asks for it. After each case
 * the peak of the bytes outstanding, and the largest request, must stay under 64 MB.
 * BIGCLAIM_ALLOC=libc keeps the library's default allocator: a thread samples malloc's own count
 * of the bytes it holds (mallinfo2: mmapped blocks and the heap in use) every 5 ms while a case
 * runs (a claim's call waits 2 s for bytes that never come), and the peak must stay under 64 MB.
 * An untouched 1 GiB malloc does not raise the RSS, but it shows there. The process's peak RSS
 * (getrusage ru_maxrss) is checked too, in both modes, against the same 64 MB.
 *
 * Cases: mc_aget2 of a claimed key; a multi-key mc_get of two claimed keys with no caller buffer;
 * mc_aget2 of a 3 MiB key and a multi-key mc_get of two 3 MiB keys, checked byte for byte.
 *
 * Environment: MC_HOST, MC_FAKE_PORT, BIGCLAIM_ALLOC (tracking or libc).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"

#define K(s) (char *)(s), strlen(s)

/* The limit of the issue: peak memory under 64 MB until the bytes arrive. */
#define LIMIT ((size_t)64 << 20)
/* Requests above this are recorded and refused by the tracking allocator. */
#define REFUSE_ABOVE ((size_t)256 << 20)
/* The honest big value. */
#define BIG ((size_t)3 << 20)
/* A hard cap on the whole program, in seconds. */
#define PROGRAM_CAP 40

/* ---- the tracking allocator: a 16-byte header holds each block's size ---- */

#define HEADER 16

static size_t outstanding, peak, largest;
static unsigned long refused;

static void note_request(size_t size)
{
	if (size > largest)
		largest = size;
}

static void *t_malloc(size_t size)
{
	unsigned char *p;

	note_request(size);
	if (size > REFUSE_ABOVE) {
		refused++;
		return NULL;
	}
	p = malloc(size + HEADER);
	if (p == NULL)
		return NULL;
	memcpy(p, &size, sizeof(size));
	outstanding += size;
	if (outstanding > peak)
		peak = outstanding;
	return p + HEADER;
}

static void t_free(void *mem)
{
	unsigned char *p;
	size_t size;

	if (mem == NULL)
		return;
	p = (unsigned char *)mem - HEADER;
	memcpy(&size, p, sizeof(size));
	outstanding -= size;
	free(p);
}

static void *t_realloc(void *mem, size_t size)
{
	unsigned char *p, *grown;
	size_t old;

	if (mem == NULL)
		return t_malloc(size);
	note_request(size);
	if (size > REFUSE_ABOVE) {
		refused++;
		return NULL;
	}
	p = (unsigned char *)mem - HEADER;
	memcpy(&old, p, sizeof(old));
	grown = realloc(p, size + HEADER);
	if (grown == NULL)
		return NULL;
	memcpy(grown, &size, sizeof(size));
	outstanding = outstanding - old + size;
	if (outstanding > peak)
		peak = outstanding;
	return grown + HEADER;
}

static int tracking;
static void (*release)(void *) = free;

/* ---- the default allocator: malloc's own count, sampled while a case runs ---- */

static volatile int sampling;
static volatile size_t held_peak;
static pthread_t sampler_tid;

static size_t malloc_holds(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.hblkhd + m.uordblks;
}

static void *sampler(void *arg)
{
	(void)arg;
	while (sampling) {
		size_t held = malloc_holds();

		if (held > held_peak)
			held_peak = held;
		usleep(5000);
	}
	return NULL;
}

/* Starts a case: the peak restarts from what is outstanding now. */
static void begin(void)
{
	peak = outstanding;
	largest = 0;
	refused = 0;
	if (!tracking) {
		held_peak = malloc_holds();
		sampling = 1;
		CHECK(pthread_create(&sampler_tid, NULL, sampler, NULL) == 0, "%s", "pthread_create (sampler)");
	}
}

static long max_rss_kb(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss;
}

/* The checks after a case. */
static void end(const char *what)
{
	long rss = max_rss_kb();

	if (tracking) {
		CHECK(largest < LIMIT, "%s: the library asked its allocator for %zu bytes at once (%lu refused)", what,
		      largest, refused);
		CHECK(peak < LIMIT, "%s: %zu bytes were outstanding at the peak", what, peak);
	} else {
		sampling = 0;
		pthread_join(sampler_tid, NULL);
		CHECK(held_peak < LIMIT, "%s: malloc held %zu bytes at the peak", what, (size_t)held_peak);
	}
	CHECK(rss >= 0 && (size_t)rss * 1024 < LIMIT, "%s: peak RSS %ld kB", what, rss);
}

static unsigned char big_byte(size_t i)
{
	return (unsigned char)((i * 31 + (i >> 12)) & 0xff);
}

/* Whether `v` is the 3 MiB value; the first wrong offset in `*bad`. */
static int is_big(const unsigned char *v, size_t len, size_t *bad)
{
	size_t i;

	*bad = 0;
	if (v == NULL || len != BIG)
		return 0;
	for (i = 0; i < len; i++) {
		if (v[i] != big_byte(i)) {
			*bad = i;
			return 0;
		}
	}
	return 1;
}

static struct memcache *handle(const char *host, const char *port)
{
	struct memcache *mc = mc_new();

	if (mc == NULL) {
		CHECK(0, "%s", "mc_new");
		exit(1);
	}
	CHECK(mc_server_add(mc, host, port) == 0, "%s", "add the fake server");
	return mc;
}

int main(void)
{
	const char *host = need_env("MC_HOST"), *port = need_env("MC_FAKE_PORT");
	const char *mode = need_env("BIGCLAIM_ALLOC");
	struct memcache *mc;
	struct memcache_req *req;
	struct memcache_res *r1, *r2;
	size_t len, bad = 0;
	void *v;

	alarm(PROGRAM_CAP);
	tracking = strcmp(mode, "tracking") == 0;
	if (tracking) {
		CHECK(mcMemSetup(t_free, t_malloc, t_malloc, t_realloc) == 0, "%s", "mcMemSetup");
		release = t_free;
	} else if (strcmp(mode, "libc") != 0) {
		fprintf(stderr, "BIGCLAIM_ALLOC must be tracking or libc, not %s\n", mode);
		return 2;
	}
	mc = handle(host, port);

	/* A 1 GiB claim through mc_aget2. */
	begin();
	len = 7;
	v = mc_aget2(mc, K("claim1"), &len);
	CHECK(v == NULL && len == 0, "mc_aget2 of a 1 GiB claim cut short returned %p, %zu bytes", v, len);
	release(v);
	end("mc_aget2 of a 1 GiB claim");

	/* Two claimed keys in one request, no caller buffer. */
	begin();
	req = mc_req_new();
	r1 = mc_req_add(req, K("claim2"));
	r2 = mc_req_add(req, K("claim3"));
	mc_get(mc, req);
	CHECK(r1 != NULL && r2 != NULL && !mc_res_found(r1) && !mc_res_found(r2), "%s",
	      "mc_get: a claim cut short is not found");
	mc_req_free(req);
	end("mc_get of two 1 GiB claims");

	/* An honest 3 MiB value, whole. */
	begin();
	len = 0;
	v = mc_aget2(mc, K("big1"), &len);
	CHECK(is_big(v, len, &bad), "mc_aget2 of a 3 MiB value: %p, %zu bytes, first difference at %zu", v, len,
	      bad);
	release(v);
	end("mc_aget2 of a 3 MiB value");

	begin();
	req = mc_req_new();
	r1 = mc_req_add(req, K("big2"));
	r2 = mc_req_add(req, K("big3"));
	mc_get(mc, req);
	CHECK(r1 != NULL && mc_res_found(r1) && is_big(r1->val, r1->bytes, &bad),
	      "mc_get of 3 MiB big2: %zu bytes, first difference at %zu", r1 ? r1->bytes : 0, bad);
	CHECK(r2 != NULL && mc_res_found(r2) && is_big(r2->val, r2->bytes, &bad),
	      "mc_get of 3 MiB big3: %zu bytes, first difference at %zu", r2 ? r2->bytes : 0, bad);
	mc_req_free(req);
	end("mc_get of two 3 MiB values");

	mc_free(mc);
	return CHECK_DONE();
}
