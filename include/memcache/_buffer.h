/*
 * memcache/_buffer.h: struct memcache_buf. In this implementation the structure is declared in
 * memcache.h, generated from the library's Rust declarations; this header stays for programs
 * that include it by name.
 */
#ifndef MEMCACHE__BUFFER_H
#define MEMCACHE__BUFFER_H
#include <memcache.h>
#endif
