/*
 * memcache/buffer.h: the buffer API of libmemcache 1.4. The mcm_buf_* prototypes are declared
 * in memcache.h (generated); these are the 1.4 convenience macros.
 */
#ifndef MEMCACHE_BUFFER_H
#define MEMCACHE_BUFFER_H
#include <memcache.h>

#define MCM_BUF_OFF_USED ((char)0x1)
#define mcm_buf_len_add(c, s, n) do { s->len += n; } while (0)
#define mcm_buf_len_set(c, s, n) do { s->len = n; } while (0)
#define mcm_buf_size(c, s) (s->size)
#define mcm_buf_val(c, s) (s->ptr)
#define mcm_buf_off_ptr(c, b) (&(mcm_buf_to_cstr(c, b))[b->off])

#endif
