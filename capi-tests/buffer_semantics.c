/*
 * The buffer API's semantics that 1.4 programs can observe (spec §4.4, "Semantics that 1.4
 * programs can observe"), one check group per rule:
 *
 *   compare      mcm_buf_cmp, cmp2, cmp_buf: 1 equal, 0 different; NULL, identity, lengths
 *   ends_with    mcm_buf_end, end2, end_buf: the same 1/0 convention
 *   new          len 0, size INIT_GET_BUF_SIZE, ptr[0] NUL, storage from mcMalloc
 *   new2_new3    mcm_buf_new then mcm_buf_append
 *   copy         mcm_buf_new2 of the source's bytes
 *   realloc      size 0 -> mcMalloc(n); grow to max(n, 2 * size); 0 and size are no-ops;
 *                shrink to exactly n with mcRealloc; 1 on success, 0 on failure
 *   compact      realloc(len + 1)
 *   resize       realloc(n + 1), then len = n
 *   reset        off 0, MCM_BUF_OFF_USED cleared, len 0, ptr[0] NUL; 0 for NULL
 *   replace      reset then append
 *   append_char  NUL-terminated after the new byte
 *
 * Every buffer runs on a context whose allocator counts its calls, records the sizes asked for,
 * and aborts on realloc(NULL) or free(NULL) as host allocators do (spec §5.2).
 * No environment needed; stdout stays empty.
 */
#include <stdlib.h>
#include <string.h>

#include <memcache.h>
#include <memcache/buffer.h>

#include "check.h"

static unsigned long n_malloc, n_atomic, n_realloc, n_free;
static size_t last_malloc, last_realloc;
static int fail_realloc;

static void *t_malloc(size_t n)
{
	n_malloc++;
	last_malloc = n;
	return malloc(n);
}

static void *t_atomic(size_t n)
{
	n_atomic++;
	return malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
	if (p == NULL) {
		fprintf(stderr, "realloc(NULL, %lu): the allocator contract is broken\n", (unsigned long)n);
		abort();
	}
	n_realloc++;
	last_realloc = n;
	if (fail_realloc)
		return NULL;
	return realloc(p, n);
}

static void t_free(void *p)
{
	if (p == NULL) {
		fprintf(stderr, "%s\n", "free(NULL): the allocator contract is broken");
		abort();
	}
	n_free++;
	free(p);
}

static struct memcache_ctxt *ctxt;

static void zero_counters(void)
{
	n_malloc = n_atomic = n_realloc = n_free = 0;
	last_malloc = last_realloc = 0;
}

/* len, size, the NUL at ptr[len], and the bytes. */
static int holds(const struct memcache_buf *b, const char *bytes, size_t len)
{
	return b != NULL && b->ptr != NULL && b->len == len && b->len < b->size && b->ptr[len] == '\0' &&
	       memcmp(b->ptr, bytes, len) == 0;
}

/* A structure zeroed by hand: no storage, size 0. */
static struct memcache_buf *bare_buffer(void)
{
	struct memcache_buf *b = t_malloc(sizeof(*b));

	if (b != NULL)
		memset(b, 0, sizeof(*b));
	return b;
}

static void check_compare(void)
{
	struct memcache_buf *b = mcm_buf_new3(ctxt, "hello");
	struct memcache_buf *same = mcm_buf_new3(ctxt, "hello");
	struct memcache_buf *other = mcm_buf_new3(ctxt, "hellp");
	struct memcache_buf *shorter = mcm_buf_new3(ctxt, "hell");
	static const char with_nul[] = "ab\0cd";
	struct memcache_buf *binary = mcm_buf_new2(ctxt, with_nul, 5);

	CHECK(b && same && other && shorter && binary, "%s", "compare: buffers");
	if (!(b && same && other && shorter && binary))
		return;
	/* 1 for equal, 0 for different: not memcmp's sign. */
	CHECK(mcm_buf_cmp(ctxt, b, "hello", 5) == 1, "%d", mcm_buf_cmp(ctxt, b, "hello", 5));
	CHECK(mcm_buf_cmp(ctxt, b, "hellp", 5) == 0, "%d", mcm_buf_cmp(ctxt, b, "hellp", 5));
	CHECK(mcm_buf_cmp(ctxt, b, "hella", 5) == 0, "%d", mcm_buf_cmp(ctxt, b, "hella", 5));
	CHECK(mcm_buf_cmp2(ctxt, b, "hello") == 1, "%d", mcm_buf_cmp2(ctxt, b, "hello"));
	CHECK(mcm_buf_cmp2(ctxt, b, "jello") == 0, "%d", mcm_buf_cmp2(ctxt, b, "jello"));
	CHECK(mcm_buf_cmp_buf(ctxt, b, same) == 1, "%d", mcm_buf_cmp_buf(ctxt, b, same));
	CHECK(mcm_buf_cmp_buf(ctxt, b, other) == 0, "%d", mcm_buf_cmp_buf(ctxt, b, other));
	/* 0 if either argument is NULL. */
	CHECK(mcm_buf_cmp(ctxt, NULL, "hello", 5) == 0, "%s", "cmp: NULL buffer");
	CHECK(mcm_buf_cmp(ctxt, b, NULL, 0) == 0, "%s", "cmp: NULL bytes");
	CHECK(mcm_buf_cmp2(ctxt, NULL, "hello") == 0, "%s", "cmp2: NULL buffer");
	CHECK(mcm_buf_cmp2(ctxt, b, NULL) == 0, "%s", "cmp2: NULL string");
	CHECK(mcm_buf_cmp_buf(ctxt, NULL, b) == 0, "%s", "cmp_buf: NULL first");
	CHECK(mcm_buf_cmp_buf(ctxt, b, NULL) == 0, "%s", "cmp_buf: NULL second");
	CHECK(mcm_buf_cmp_buf(ctxt, NULL, NULL) == 0, "%s", "cmp_buf: both NULL");
	/* 1 if the bytes are the buffer's own storage, whatever the length says. */
	CHECK(mcm_buf_cmp(ctxt, b, b->ptr, 2) == 1, "%s", "cmp: b->ptr with a shorter length");
	CHECK(mcm_buf_cmp(ctxt, b, b->ptr, 5) == 1, "%s", "cmp: b->ptr");
	CHECK(mcm_buf_cmp2(ctxt, b, b->ptr) == 1, "%s", "cmp2: b->ptr");
	/* 1 for the same buffer object. */
	CHECK(mcm_buf_cmp_buf(ctxt, b, b) == 1, "%s", "cmp_buf: same object");
	/* 0 if the lengths differ, even when one is a prefix of the other. */
	CHECK(mcm_buf_cmp(ctxt, b, "hell", 4) == 0, "%s", "cmp: shorter bytes");
	CHECK(mcm_buf_cmp(ctxt, b, "hello!", 6) == 0, "%s", "cmp: longer bytes");
	CHECK(mcm_buf_cmp2(ctxt, b, "hello world") == 0, "%s", "cmp2: longer string");
	CHECK(mcm_buf_cmp_buf(ctxt, b, shorter) == 0 && mcm_buf_cmp_buf(ctxt, shorter, b) == 0, "%s",
	      "cmp_buf: lengths differ");
	/* Otherwise exactly when the bytes match, NULs included. */
	CHECK(mcm_buf_cmp(ctxt, binary, "ab\0cd", 5) == 1, "%s", "cmp: bytes past a NUL");
	CHECK(mcm_buf_cmp(ctxt, binary, "ab\0ce", 5) == 0, "%s", "cmp: difference past a NUL");
	CHECK(mcm_buf_cmp2(ctxt, binary, "ab") == 0, "%s", "cmp2 stops at the string's NUL");
	mcm_buf_free(ctxt, &b);
	mcm_buf_free(ctxt, &same);
	mcm_buf_free(ctxt, &other);
	mcm_buf_free(ctxt, &shorter);
	mcm_buf_free(ctxt, &binary);
}

static void check_ends_with(void)
{
	struct memcache_buf *b = mcm_buf_new3(ctxt, "VALUE k 0 1\r\n");
	struct memcache_buf *crlf = mcm_buf_new3(ctxt, "\r\n");
	struct memcache_buf *lf = mcm_buf_new3(ctxt, "\n\n");

	CHECK(b && crlf && lf, "%s", "ends_with: buffers");
	if (!(b && crlf && lf))
		return;
	CHECK(mcm_buf_end(ctxt, b, "1\r\n", 3) == 1, "%s", "end: suffix");
	CHECK(mcm_buf_end(ctxt, b, "1\r", 2) == 0, "%s", "end: not a suffix");
	CHECK(mcm_buf_end(ctxt, b, "", 0) == 1, "%s", "end: empty suffix");
	CHECK(mcm_buf_end(ctxt, b, "VALUE k 0 1\r\n", 13) == 1, "%s", "end: the whole contents");
	CHECK(mcm_buf_end(ctxt, b, "xVALUE k 0 1\r\n", 14) == 0, "%s", "end: longer than the contents");
	CHECK(mcm_buf_end2(ctxt, b, "\r\n") == 1, "%s", "end2: suffix");
	CHECK(mcm_buf_end2(ctxt, b, "\n\n") == 0, "%s", "end2: not a suffix");
	CHECK(mcm_buf_end_buf(ctxt, b, crlf) == 1, "%s", "end_buf: suffix");
	CHECK(mcm_buf_end_buf(ctxt, b, lf) == 0, "%s", "end_buf: not a suffix");
	CHECK(mcm_buf_end_buf(ctxt, crlf, b) == 0, "%s", "end_buf: suffix longer than the buffer");
	CHECK(mcm_buf_end_buf(ctxt, b, b) == 1, "%s", "end_buf: itself");
	CHECK(mcm_buf_end(ctxt, NULL, "\r\n", 2) == 0 && mcm_buf_end(ctxt, b, NULL, 0) == 0, "%s",
	      "end: NULL");
	CHECK(mcm_buf_end2(ctxt, NULL, "\r\n") == 0 && mcm_buf_end2(ctxt, b, NULL) == 0, "%s", "end2: NULL");
	CHECK(mcm_buf_end_buf(ctxt, NULL, crlf) == 0 && mcm_buf_end_buf(ctxt, b, NULL) == 0, "%s",
	      "end_buf: NULL");
	mcm_buf_free(ctxt, &b);
	mcm_buf_free(ctxt, &crlf);
	mcm_buf_free(ctxt, &lf);
}

static void check_new(void)
{
	struct memcache_buf *b;

	zero_counters();
	b = mcm_buf_new(ctxt);
	CHECK(b != NULL, "%s", "mcm_buf_new");
	if (b == NULL)
		return;
	CHECK(b->len == 0 && mcm_buf_len(ctxt, b) == 0, "len %lu", (unsigned long)b->len);
	CHECK(b->size == INIT_GET_BUF_SIZE && b->size == 4096 && mcm_buf_size(ctxt, b) == 4096, "size %lu",
	      (unsigned long)b->size);
	CHECK(b->ptr != NULL && b->ptr[0] == '\0', "%s", "ptr[0] is NUL");
	CHECK(b->off == 0 && b->flags == 0, "off %lu flags %d", (unsigned long)b->off, b->flags);
	CHECK(mcm_buf_remain(ctxt, b) == 4096 && mcm_buf_remain_off(ctxt, b) == 0, "remain %lu",
	      (unsigned long)mcm_buf_remain(ctxt, b));
	/* The structure and its storage both from mcMalloc, the storage exactly 4096 bytes. */
	CHECK(n_malloc == 2 && n_atomic == 0 && n_realloc == 0, "malloc %lu atomic %lu realloc %lu", n_malloc,
	      n_atomic, n_realloc);
	CHECK(last_malloc == 4096, "storage of %lu bytes", (unsigned long)last_malloc);
	mcm_buf_free(ctxt, &b);
	CHECK(b == NULL && n_free == 2, "free sets NULL, %lu frees", n_free);
}

static void check_new2_new3(void)
{
	static char big[10000];
	struct memcache_buf *b;

	memset(big, 'x', sizeof(big));
	/* Contents that fit with their NUL in 4096 bytes: new's block, no realloc. */
	zero_counters();
	b = mcm_buf_new2(ctxt, "abcXYZ", 3);
	CHECK(holds(b, "abc", 3) && b->size == 4096 && b->off == 0 && b->flags == 0, "new2: size %lu",
	      b ? (unsigned long)b->size : 0UL);
	CHECK(n_malloc == 2 && n_realloc == 0, "new2: malloc %lu realloc %lu", n_malloc, n_realloc);
	mcm_buf_free(ctxt, &b);
	b = mcm_buf_new2(ctxt, "", 0);
	CHECK(holds(b, "", 0) && b->size == 4096, "%s", "new2 of no bytes");
	mcm_buf_free(ctxt, &b);
	b = mcm_buf_new3(ctxt, "hello");
	CHECK(holds(b, "hello", 5) && b->size == 4096, "%s", "new3");
	mcm_buf_free(ctxt, &b);
	/* 4095 bytes and the NUL fill the block exactly. */
	b = mcm_buf_new2(ctxt, big, 4095);
	CHECK(holds(b, big, 4095) && b->size == 4096, "new2 of 4095: size %lu", b ? (unsigned long)b->size : 0UL);
	mcm_buf_free(ctxt, &b);
	/* One more and append grows: realloc(len + 1) = max(4097, 2 * 4096). */
	zero_counters();
	b = mcm_buf_new2(ctxt, big, 4096);
	CHECK(holds(b, big, 4096) && b->size == 8192, "new2 of 4096: size %lu", b ? (unsigned long)b->size : 0UL);
	CHECK(n_malloc == 2 && n_realloc == 1 && last_realloc == 8192, "new2 of 4096: realloc %lu to %lu",
	      n_realloc, (unsigned long)last_realloc);
	mcm_buf_free(ctxt, &b);
	/* More than doubling asks for: exactly len + 1. */
	b = mcm_buf_new2(ctxt, big, 10000);
	CHECK(holds(b, big, 10000) && b->size == 10001, "new2 of 10000: size %lu",
	      b ? (unsigned long)b->size : 0UL);
	mcm_buf_free(ctxt, &b);
	big[5000] = '\0';
	b = mcm_buf_new3(ctxt, big);
	CHECK(holds(b, big, 5000) && b->size == 8192, "new3 of 5000: size %lu", b ? (unsigned long)b->size : 0UL);
	mcm_buf_free(ctxt, &b);
	CHECK(mcm_buf_new2(ctxt, NULL, 3) == NULL && mcm_buf_new3(ctxt, NULL) == NULL, "%s", "NULL bytes");
}

static void check_copy(void)
{
	static char big[6000];
	struct memcache_buf *src = mcm_buf_new3(ctxt, "line\nrest"), *copy;

	CHECK(src != NULL, "%s", "copy: source");
	if (src == NULL)
		return;
	/* A source with a cursor, its flag, and storage fitted to it. */
	mcm_buf_eat_line(ctxt, src);
	CHECK(src->off == 5 && (src->flags & MCM_BUF_OFF_USED) != 0, "%s", "copy: source cursor");
	CHECK(mcm_buf_compact(ctxt, src) == 1 && src->size == 10, "source size %lu", (unsigned long)src->size);
	zero_counters();
	copy = mcm_buf_copy(ctxt, src);
	CHECK(holds(copy, "line\nrest", 9) && copy->ptr != src->ptr, "%s", "copy: the bytes");
	/* new2 of the bytes: its own size, cursor and flags. */
	CHECK(copy && copy->size == 4096 && copy->off == 0 && copy->flags == 0, "copy: size %lu off %lu flags %d",
	      copy ? (unsigned long)copy->size : 0UL, copy ? (unsigned long)copy->off : 0UL, copy ? copy->flags : 0);
	CHECK(n_malloc == 2 && n_realloc == 0, "copy: malloc %lu realloc %lu", n_malloc, n_realloc);
	mcm_buf_free(ctxt, &copy);
	/* A large source: new2's growth, not the source's size. */
	memset(big, 'y', sizeof(big));
	CHECK(mcm_buf_replace(ctxt, src, big, sizeof(big)) == 1 && mcm_buf_realloc(ctxt, src, 50000) == 1 &&
		      src->size == 50000,
	      "large source: size %lu", (unsigned long)src->size);
	copy = mcm_buf_copy(ctxt, src);
	CHECK(holds(copy, big, sizeof(big)) && copy->size == 8192, "large copy: size %lu",
	      copy ? (unsigned long)copy->size : 0UL);
	mcm_buf_free(ctxt, &copy);
	mcm_buf_free(ctxt, &src);
	CHECK(mcm_buf_copy(ctxt, NULL) == NULL, "%s", "copy of NULL");
}

static void check_realloc(void)
{
	struct memcache_buf *b = bare_buffer();

	CHECK(b != NULL, "%s", "realloc: bare buffer");
	if (b == NULL)
		return;
	/* size == 0: a first block from mcMalloc(n), never realloc(NULL). */
	zero_counters();
	CHECK(mcm_buf_realloc(ctxt, b, 100) == 1, "%s", "realloc of a bare buffer");
	CHECK(b->ptr != NULL && b->size == 100 && b->len == 0 && b->ptr[0] == '\0', "bare: size %lu",
	      (unsigned long)b->size);
	CHECK(n_malloc == 1 && last_malloc == 100 && n_atomic == 0 && n_realloc == 0,
	      "bare: malloc %lu of %lu, atomic %lu, realloc %lu", n_malloc, (unsigned long)last_malloc, n_atomic,
	      n_realloc);
	CHECK(mcm_buf_append2(ctxt, b, "abc") == 1 && holds(b, "abc", 3), "%s", "bare: usable");
	/* n > size: max(n, 2 * size) with mcRealloc. */
	zero_counters();
	CHECK(mcm_buf_realloc(ctxt, b, 101) == 1 && b->size == 200, "grow by 1: size %lu", (unsigned long)b->size);
	CHECK(n_realloc == 1 && last_realloc == 200 && n_malloc == 0, "grow: realloc %lu to %lu", n_realloc,
	      (unsigned long)last_realloc);
	CHECK(mcm_buf_realloc(ctxt, b, 1000) == 1 && b->size == 1000, "grow past double: size %lu",
	      (unsigned long)b->size);
	CHECK(holds(b, "abc", 3), "%s", "grow keeps the contents");
	/* n == 0 and n == size: nothing, and 1. */
	zero_counters();
	CHECK(mcm_buf_realloc(ctxt, b, 0) == 1 && b->size == 1000, "n == 0: size %lu", (unsigned long)b->size);
	CHECK(mcm_buf_realloc(ctxt, b, 1000) == 1 && b->size == 1000, "n == size: size %lu",
	      (unsigned long)b->size);
	CHECK(n_malloc == 0 && n_realloc == 0 && n_free == 0, "%s", "no-ops call no allocator");
	/* 0 < n < size: exactly n with mcRealloc. */
	CHECK(mcm_buf_realloc(ctxt, b, 10) == 1 && b->size == 10, "shrink: size %lu", (unsigned long)b->size);
	CHECK(n_realloc == 1 && last_realloc == 10, "shrink: realloc %lu to %lu", n_realloc,
	      (unsigned long)last_realloc);
	CHECK(holds(b, "abc", 3), "%s", "shrink keeps the contents");
	CHECK(mcm_buf_realloc(ctxt, b, 4) == 1 && b->size == 4 && holds(b, "abc", 3), "shrink to len + 1: size %lu",
	      (unsigned long)b->size);
	/* Failure: 0, the buffer unchanged. */
	fail_realloc = 1;
	CHECK(mcm_buf_realloc(ctxt, b, 5000) == 0, "%s", "failed growth returns 0");
	CHECK(mcm_buf_realloc(ctxt, b, 2) == 0, "%s", "failed shrink returns 0");
	fail_realloc = 0;
	CHECK(b->size == 4 && holds(b, "abc", 3), "after failures: size %lu", (unsigned long)b->size);
	CHECK(mcm_buf_realloc(ctxt, NULL, 10) == 0, "%s", "realloc of NULL");
	mcm_buf_free(ctxt, &b);
}

static void check_compact(void)
{
	struct memcache_buf *b = mcm_buf_new3(ctxt, "x");

	CHECK(b != NULL, "%s", "compact: buffer");
	if (b == NULL)
		return;
	/* A buffer of length 1 ends with size 2. */
	zero_counters();
	CHECK(mcm_buf_compact(ctxt, b) == 1, "%s", "compact returns 1");
	CHECK(b->size == 2 && holds(b, "x", 1), "compact of 1 byte: size %lu", (unsigned long)b->size);
	CHECK(n_realloc == 1 && last_realloc == 2, "compact: realloc %lu to %lu", n_realloc,
	      (unsigned long)last_realloc);
	/* Already compact: realloc(len + 1) with len + 1 == size does nothing. */
	CHECK(mcm_buf_compact(ctxt, b) == 1 && b->size == 2 && n_realloc == 1, "%s", "compact twice");
	/* The cursor stays: compact only fits the storage. */
	CHECK(mcm_buf_replace2(ctxt, b, "one\ntwo") == 1, "%s", "compact: new contents");
	mcm_buf_eat_line(ctxt, b);
	CHECK(mcm_buf_compact(ctxt, b) == 1 && b->size == 8 && holds(b, "one\ntwo", 7), "compact: size %lu",
	      (unsigned long)b->size);
	CHECK(b->off == 4 && (b->flags & MCM_BUF_OFF_USED) != 0, "compact keeps off %lu",
	      (unsigned long)b->off);
	/* The empty buffer compacts to the NUL alone. */
	mcm_buf_reset(ctxt, b);
	CHECK(mcm_buf_compact(ctxt, b) == 1 && b->size == 1 && holds(b, "", 0), "empty: size %lu",
	      (unsigned long)b->size);
	CHECK(mcm_buf_compact(ctxt, NULL) == 0, "%s", "compact of NULL");
	mcm_buf_free(ctxt, &b);
}

static void check_resize(void)
{
	struct memcache_buf *b = mcm_buf_new3(ctxt, "abcd");

	CHECK(b != NULL, "%s", "resize: buffer");
	if (b == NULL)
		return;
	/* A 4-byte buffer resized to 2: len 2, size 3. */
	zero_counters();
	CHECK(mcm_buf_resize(ctxt, b, 2) == 1, "%s", "resize returns 1");
	CHECK(b->len == 2 && b->size == 3 && holds(b, "ab", 2), "resize 4 -> 2: len %lu size %lu",
	      (unsigned long)b->len, (unsigned long)b->size);
	CHECK(n_realloc == 1 && last_realloc == 3, "resize: realloc %lu to %lu", n_realloc,
	      (unsigned long)last_realloc);
	/* The same from a compact 4-byte buffer (size 5). */
	CHECK(mcm_buf_replace2(ctxt, b, "wxyz") == 1 && mcm_buf_compact(ctxt, b) == 1 && b->size == 5, "size %lu",
	      (unsigned long)b->size);
	CHECK(mcm_buf_resize(ctxt, b, 2) == 1 && b->len == 2 && b->size == 3 && holds(b, "wx", 2),
	      "compact 4 -> 2: len %lu size %lu", (unsigned long)b->len, (unsigned long)b->size);
	/* Lengthening: realloc(n + 1) grows to max(n + 1, 2 * size), len = n, still terminated. */
	CHECK(mcm_buf_resize(ctxt, b, 10) == 1, "%s", "resize up");
	CHECK(b->len == 10 && b->size == 11 && b->ptr[10] == '\0' && memcmp(b->ptr, "wx", 2) == 0,
	      "resize 2 -> 10: len %lu size %lu", (unsigned long)b->len, (unsigned long)b->size);
	CHECK(mcm_buf_resize(ctxt, b, 11) == 1 && b->len == 11 && b->size == 22, "resize 10 -> 11: size %lu",
	      (unsigned long)b->size);
	/* Same length: nothing to allocate. */
	zero_counters();
	CHECK(mcm_buf_resize(ctxt, b, 21) == 1 && b->len == 21 && b->size == 22 && n_realloc == 0,
	      "resize to size - 1: len %lu size %lu", (unsigned long)b->len, (unsigned long)b->size);
	CHECK(mcm_buf_resize(ctxt, b, 0) == 1 && b->len == 0 && b->size == 1 && b->ptr[0] == '\0',
	      "resize to 0: size %lu", (unsigned long)b->size);
	CHECK(mcm_buf_resize(ctxt, NULL, 2) == 0, "%s", "resize of NULL");
	mcm_buf_free(ctxt, &b);
}

static void check_reset(void)
{
	struct memcache_buf *b = mcm_buf_new3(ctxt, "first\nsecond"), *bare;
	char *storage;

	CHECK(b != NULL, "%s", "reset: buffer");
	if (b == NULL)
		return;
	mcm_buf_eat_line(ctxt, b);
	CHECK(b->off == 6 && (b->flags & MCM_BUF_OFF_USED) != 0, "%s", "reset: cursor in use");
	b->flags |= 0x2; /* a bit that is not MCM_BUF_OFF_USED */
	storage = b->ptr;
	zero_counters();
	CHECK(mcm_buf_reset(ctxt, b) == 1, "%s", "reset returns 1");
	CHECK(b->off == 0 && b->len == 0 && b->ptr[0] == '\0', "reset: off %lu len %lu", (unsigned long)b->off,
	      (unsigned long)b->len);
	CHECK(b->flags == 0x2, "reset clears only MCM_BUF_OFF_USED: flags %d", b->flags);
	CHECK(b->ptr == storage && b->size == 4096 && n_malloc + n_realloc + n_free == 0, "%s",
	      "reset keeps the storage");
	CHECK(mcm_buf_reset(ctxt, NULL) == 0, "%s", "reset of NULL");
	/* A buffer without storage: 1, and still none. */
	bare = bare_buffer();
	CHECK(bare != NULL && mcm_buf_reset(ctxt, bare) == 1 && bare->ptr == NULL, "%s", "reset of a bare buffer");
	mcm_buf_free(ctxt, &bare);
	mcm_buf_free(ctxt, &b);
}

static void check_replace(void)
{
	static char big[5000];
	struct memcache_buf *b = mcm_buf_new3(ctxt, "old\nline"), *src = mcm_buf_new3(ctxt, "from a buffer");

	CHECK(b != NULL && src != NULL, "%s", "replace: buffers");
	if (b == NULL || src == NULL)
		return;
	/* reset (cursor and flag) then append. */
	mcm_buf_eat_line(ctxt, b);
	CHECK(mcm_buf_replace(ctxt, b, "newXX", 3) == 1 && holds(b, "new", 3), "%s", "replace");
	CHECK(b->off == 0 && (b->flags & MCM_BUF_OFF_USED) == 0 && b->size == 4096, "replace: off %lu flags %d",
	      (unsigned long)b->off, b->flags);
	CHECK(mcm_buf_append2(ctxt, b, "\nmore") == 1, "%s", "replace: append");
	mcm_buf_eat_line(ctxt, b);
	CHECK(mcm_buf_replace2(ctxt, b, "two") == 1 && holds(b, "two", 3) && b->off == 0 &&
		      (b->flags & MCM_BUF_OFF_USED) == 0,
	      "%s", "replace2");
	CHECK(mcm_buf_append2(ctxt, b, "\nmore") == 1, "%s", "replace: append");
	mcm_buf_eat_line(ctxt, b);
	CHECK(mcm_buf_replace_buf(ctxt, b, src) == 1 && holds(b, "from a buffer", 13) && b->off == 0 &&
		      (b->flags & MCM_BUF_OFF_USED) == 0,
	      "%s", "replace_buf");
	/* Replacing with nothing is a reset. */
	CHECK(mcm_buf_replace(ctxt, b, "", 0) == 1 && holds(b, "", 0) && b->size == 4096, "%s", "replace by nothing");
	/* Growth is the append's on the emptied buffer: max(n + 1, 2 * size). */
	memset(big, 'z', sizeof(big));
	CHECK(mcm_buf_replace(ctxt, b, big, sizeof(big)) == 1 && holds(b, big, sizeof(big)) && b->size == 8192,
	      "replace of 5000: size %lu", (unsigned long)b->size);
	/* A compact buffer: its contents do not count, only size. */
	CHECK(mcm_buf_replace2(ctxt, b, "abcdef") == 1 && mcm_buf_compact(ctxt, b) == 1 && b->size == 7, "size %lu",
	      (unsigned long)b->size);
	CHECK(mcm_buf_replace2(ctxt, b, "abcdefg") == 1 && b->size == 14 && holds(b, "abcdefg", 7),
	      "replace past a compact block: size %lu", (unsigned long)b->size);
	/* Storage is never shrunk. */
	CHECK(mcm_buf_replace2(ctxt, b, "a") == 1 && b->size == 14, "replace shorter: size %lu",
	      (unsigned long)b->size);
	CHECK(mcm_buf_replace(ctxt, NULL, "a", 1) == 0 && mcm_buf_replace2(ctxt, NULL, "a") == 0 &&
		      mcm_buf_replace_buf(ctxt, NULL, src) == 0 && mcm_buf_replace_buf(ctxt, b, NULL) == 0,
	      "%s", "replace with NULL");
	mcm_buf_free(ctxt, &src);
	mcm_buf_free(ctxt, &b);
}

static void check_append_char(void)
{
	static char big[4095];
	struct memcache_buf *b = mcm_buf_new3(ctxt, "ab"), *bare;

	CHECK(b != NULL, "%s", "append_char: buffer");
	if (b == NULL)
		return;
	/* Garbage after the contents: the new byte must be followed by a written NUL. */
	memset(b->ptr + 3, 'Q', 16);
	CHECK(mcm_buf_append_char(ctxt, b, 'c') == 1 && holds(b, "abc", 3), "append_char: ptr[3] = %d",
	      b->ptr[3]);
	CHECK(strcmp(mcm_buf_to_cstr(ctxt, b), "abc") == 0, "%s", "append_char: a C string");
	/* A NUL byte is contents like any other, and another NUL follows it. */
	b->ptr[4] = 'Q';
	CHECK(mcm_buf_append_char(ctxt, b, '\0') == 1 && holds(b, "abc\0", 4), "%s", "append_char of NUL");
	/* At the block's end: 4095 bytes fill 4096 with the NUL, the next byte grows to 8192. */
	memset(big, 'w', sizeof(big));
	CHECK(mcm_buf_replace(ctxt, b, big, sizeof(big)) == 1 && b->size == 4096, "size %lu",
	      (unsigned long)b->size);
	zero_counters();
	CHECK(mcm_buf_append_char(ctxt, b, '!') == 1, "%s", "append_char at the end");
	CHECK(b->len == 4096 && b->size == 8192 && b->ptr[4095] == '!' && b->ptr[4096] == '\0',
	      "append_char at the end: len %lu size %lu", (unsigned long)b->len, (unsigned long)b->size);
	CHECK(n_realloc == 1 && last_realloc == 8192, "append_char: realloc %lu to %lu", n_realloc,
	      (unsigned long)last_realloc);
	/* A compact buffer (no free byte besides the NUL's) grows too. */
	CHECK(mcm_buf_replace2(ctxt, b, "x") == 1 && mcm_buf_compact(ctxt, b) == 1 && b->size == 2, "%s",
	      "compact x");
	CHECK(mcm_buf_append_char(ctxt, b, 'y') == 1 && holds(b, "xy", 2) && b->size == 4, "compact: size %lu",
	      (unsigned long)b->size);
	/* A buffer without storage gets it from mcMalloc. */
	bare = bare_buffer();
	zero_counters();
	CHECK(bare != NULL && mcm_buf_append_char(ctxt, bare, 'z') == 1 && holds(bare, "z", 1), "%s",
	      "append_char to a bare buffer");
	CHECK(n_malloc == 1 && n_realloc == 0, "bare: malloc %lu realloc %lu", n_malloc, n_realloc);
	CHECK(mcm_buf_append_char(ctxt, NULL, 'z') == 0, "%s", "append_char to NULL");
	mcm_buf_free(ctxt, &bare);
	mcm_buf_free(ctxt, &b);
}

int main(void)
{
	ctxt = mcMemNewCtxt(t_free, t_malloc, t_atomic, t_realloc);
	CHECK(ctxt != NULL, "%s", "mcMemNewCtxt");
	if (ctxt == NULL)
		return CHECK_DONE();
	check_compare();
	check_ends_with();
	check_new();
	check_new2_new3();
	check_copy();
	check_realloc();
	check_compact();
	check_resize();
	check_reset();
	check_replace();
	check_append_char();
	mcMemFreeCtxt(ctxt);
	return CHECK_DONE();
}
