/*
 * String helpers (spec §9.9) and the buffer API (§4.4: a growable, NUL-terminated byte buffer;
 * only the content semantics are checked, not exact return values, which no client relies on).
 *
 * No environment needed.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>
#include <memcache/buffer.h>

#include "check.h"

static void check_string_helpers(void)
{
	struct memcache_ctxt *g = mc_global_ctxt();
	static char hello[] = "hello world";
	static char with_nul[] = "ab\0cd";
	char *s;

	s = mc_strdup("abc");
	CHECK(s != NULL && strcmp(s, "abc") == 0, "%s", "mc_strdup");
	free(s);
	s = mc_strndup("abcdef", 3);
	CHECK(s != NULL && strcmp(s, "abc") == 0, "%s", "mc_strndup copies len bytes and terminates");
	free(s);
	s = mcm_strndup(g, "xyz", 0);
	CHECK(s != NULL && s[0] == '\0', "%s", "mcm_strndup of 0 bytes");
	free(s);
	s = mcm_strdup(g, "");
	CHECK(s != NULL && s[0] == '\0', "%s", "mcm_strdup(\"\")");
	free(s);

	CHECK(mc_strnchr(hello, 'o', 11) == hello + 4, "%s", "mc_strnchr finds the first match");
	CHECK(mc_strnchr(hello, 'w', 6) == NULL, "%s", "mc_strnchr respects len");
	CHECK(mc_strnchr(hello, 'w', 7) == hello + 6, "%s", "mc_strnchr at the last allowed byte");
	CHECK(mcm_strnchr(g, with_nul, 'c', 5) == NULL, "%s", "mcm_strnchr stops at NUL");
	CHECK(mcm_strnchr(g, hello, 'z', 11) == NULL, "%s", "mcm_strnchr miss");

	CHECK(mcm_strnstr(g, hello, "wor", 11) == hello + 6, "%s", "mcm_strnstr finds");
	CHECK(mcm_strnstr(g, hello, "wor", 9) == hello + 6, "%s", "mcm_strnstr match ending at slen");
	CHECK(mcm_strnstr(g, hello, "wor", 8) == NULL, "%s", "mcm_strnstr match beyond slen");
	CHECK(mcm_strnstr(g, hello, "", 11) == hello, "%s", "mcm_strnstr empty needle -> s");
	CHECK(mcm_strnstr(g, with_nul, "cd", 5) == NULL, "%s", "mcm_strnstr stops at NUL");
	CHECK(mcm_strnstr(g, hello, "xyz", 11) == NULL, "%s", "mcm_strnstr miss");
}

static int content_is(struct memcache_ctxt *ctxt, struct memcache_buf *b, const char *expect)
{
	size_t n = strlen(expect);

	return b != NULL && mcm_buf_len(ctxt, b) == n && b->len == n && b->ptr != NULL &&
	       memcmp(b->ptr, expect, n) == 0 && b->ptr[n] == '\0' && b->size >= n &&
	       strcmp(mcm_buf_to_cstr(ctxt, b), expect) == 0;
}

static void check_buffers(void)
{
	struct memcache_ctxt *ctxt = mcMemNewCtxt(free, malloc, malloc, realloc);
	struct memcache_buf *b, *c, *d;
	char *p;
	int fds[2];

	CHECK(ctxt != NULL, "%s", "mcMemNewCtxt");
	if (ctxt == NULL)
		return;
	b = mcm_buf_new(ctxt);
	CHECK(b != NULL && mcm_buf_len(ctxt, b) == 0, "%s", "mcm_buf_new: empty");
	mcm_buf_append(ctxt, b, "hello", 5);
	CHECK(content_is(ctxt, b, "hello"), "%s", "mcm_buf_append");
	mcm_buf_append2(ctxt, b, " world");
	mcm_buf_append_char(ctxt, b, '!');
	CHECK(content_is(ctxt, b, "hello world!"), "after append2/append_char: %s", b->ptr);
	CHECK(mcm_buf_val(ctxt, b) == b->ptr && mcm_buf_size(ctxt, b) == b->size, "%s", "mcm_buf_val/size macros");
	/* Exact values are not part of the contract; the calls must exist and not crash. */
	(void)mcm_buf_remain(ctxt, b);
	(void)mcm_buf_remain_off(ctxt, b);
	p = mcm_buf_find(ctxt, b, "world");
	CHECK(p != NULL && strncmp(p, "world", 5) == 0, "%s", "mcm_buf_find");
	p = mcm_buf_find2(ctxt, b, "wor", 3);
	CHECK(p != NULL && strncmp(p, "world", 5) == 0, "%s", "mcm_buf_find2");
	CHECK(mcm_buf_find(ctxt, b, "absent") == NULL, "%s", "mcm_buf_find miss");

	/* Growth well past the initial size keeps the content. */
	{
		int i;
		for (i = 0; i < 1000; i++)
			mcm_buf_append(ctxt, b, "0123456789", 10);
		CHECK(b->len == 12 + 10000 && b->size >= b->len && b->ptr[b->len] == '\0' &&
			      memcmp(b->ptr, "hello world!0123", 16) == 0 &&
			      memcmp(b->ptr + b->len - 10, "0123456789", 10) == 0,
		      "grown buffer: len %lu", (unsigned long)b->len);
	}

	c = mcm_buf_new2(ctxt, "abcXYZ", 3);
	CHECK(content_is(ctxt, c, "abc"), "%s", "mcm_buf_new2 copies len bytes");
	d = mcm_buf_new3(ctxt, "xyz");
	CHECK(content_is(ctxt, d, "xyz"), "%s", "mcm_buf_new3");
	mcm_buf_append_buf(ctxt, c, d);
	CHECK(content_is(ctxt, c, "abcxyz") && content_is(ctxt, d, "xyz"), "%s", "mcm_buf_append_buf");
	mcm_buf_free(ctxt, &d);

	d = mcm_buf_copy(ctxt, c);
	CHECK(content_is(ctxt, d, "abcxyz") && d != c && d->ptr != c->ptr, "%s", "mcm_buf_copy");
	mcm_buf_replace2(ctxt, d, "new");
	CHECK(content_is(ctxt, d, "new") && content_is(ctxt, c, "abcxyz"), "%s", "mcm_buf_replace2");
	mcm_buf_replace(ctxt, d, "lower-caseJUNK", 10);
	CHECK(content_is(ctxt, d, "lower-case"), "%s", "mcm_buf_replace");
	mcm_buf_to_upper(ctxt, d);
	CHECK(content_is(ctxt, d, "LOWER-CASE"), "to_upper: %s", d->ptr);
	mcm_buf_reset(ctxt, d);
	CHECK(content_is(ctxt, d, ""), "%s", "mcm_buf_reset empties");
	mcm_buf_resize(ctxt, d, 5000);
	/* spec §4.4: resize is realloc(n + 1), then len = n. */
	CHECK(d->size >= 5001 && d->len == 5000 && d->ptr[5000] == '\0', "resize: size %lu len %lu",
	      (unsigned long)d->size, (unsigned long)d->len);
	mcm_buf_free(ctxt, &d);

	/* mcm_buf_read appends what a descriptor has to offer. */
	if (pipe(fds) == 0) {
		CHECK(write(fds[1], "pipe-data", 9) == 9, "%s", "write to pipe");
		mcm_buf_reset(ctxt, c);
		mcm_buf_read(ctxt, c, fds[0]);
		CHECK(content_is(ctxt, c, "pipe-data"), "after mcm_buf_read: %s", c->ptr);
		close(fds[0]);
		close(fds[1]);
	}
	mcm_buf_free(ctxt, &c);
	mcm_buf_free(ctxt, &b);
	CHECK(MCM_BUF_OFF_USED == (char)0x1, "%s", "MCM_BUF_OFF_USED");
	mcMemFreeCtxt(ctxt);
}

int main(void)
{
	check_string_helpers();
	check_buffers();
	return CHECK_DONE();
}
