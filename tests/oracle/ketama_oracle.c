/* Test oracle for tests/distribution_oracle.rs: asks Debian's libmemcached (1.1.x) where it places
 * keys and what its hash functions return. No network I/O happens: memcached_generate_hash() only
 * consults the continuum built when servers are added.
 *
 * Input on stdin, one command per line (keys are hex-encoded so any byte can be passed):
 *   C <mode>                    start a new configuration (mode: see configure())
 *   T <host> <port> <weight>    add a TCP server
 *   U <path> <weight>           add a unix socket server
 *   K <hexkey>                  print "<server index> <one_at_a_time> <md5> <crc>"
 * Output lines follow input order. Exit status 0 unless a libmemcached call fails (then 2, with a
 * message on stderr).
 */
#include <libmemcached/memcached.h>
#include <libhashkit-1.0/hashkit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static memcached_st *memc;

static void die(const char *what, memcached_return_t rc) {
  fprintf(stderr, "oracle: %s failed: %s\n", what,
          memc ? memcached_strerror(memc, rc) : "(no handle)");
  exit(2);
}

static void set(memcached_behavior_t b, uint64_t v, const char *name) {
  memcached_return_t rc = memcached_behavior_set(memc, b, v);
  if (rc != MEMCACHED_SUCCESS) die(name, rc);
}

/* mode 0: DISTRIBUTION=CONSISTENT_KETAMA, KETAMA_HASH=MD5, HASH=MD5, KETAMA_WEIGHTED=1
 * mode 1: KETAMA_WEIGHTED=1 alone
 * mode 2: DISTRIBUTION=CONSISTENT_KETAMA alone
 * mode 3: DISTRIBUTION=CONSISTENT_KETAMA, HASH=MD5
 * mode 4: DISTRIBUTION=CONSISTENT_WEIGHTED, HASH=MD5
 * mode 5: DISTRIBUTION=CONSISTENT_KETAMA, KETAMA_HASH=MD5, HASH=MD5 (no KETAMA_WEIGHTED) */
static void configure(int mode) {
  if (memc) memcached_free(memc);
  memc = memcached_create(NULL);
  if (!memc) {
    fprintf(stderr, "oracle: memcached_create failed\n");
    exit(2);
  }
  switch (mode) {
  case 0:
    set(MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, "DISTRIBUTION");
    set(MEMCACHED_BEHAVIOR_KETAMA_HASH, MEMCACHED_HASH_MD5, "KETAMA_HASH");
    set(MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5, "HASH");
    set(MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1, "KETAMA_WEIGHTED");
    break;
  case 1:
    set(MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1, "KETAMA_WEIGHTED");
    break;
  case 2:
    set(MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, "DISTRIBUTION");
    break;
  case 3:
    set(MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, "DISTRIBUTION");
    set(MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5, "HASH");
    break;
  case 4:
    set(MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED, "DISTRIBUTION");
    set(MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5, "HASH");
    break;
  case 5:
    set(MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, "DISTRIBUTION");
    set(MEMCACHED_BEHAVIOR_KETAMA_HASH, MEMCACHED_HASH_MD5, "KETAMA_HASH");
    set(MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5, "HASH");
    break;
  default:
    fprintf(stderr, "oracle: unknown mode %d\n", mode);
    exit(2);
  }
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int main(void) {
  static char line[8192];
  static char key[4096];
  while (fgets(line, sizeof line, stdin)) {
    size_t ll = strlen(line);
    while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = '\0';
    if (ll == 0) continue;
    char *arg = line + 1;
    while (*arg == ' ') arg++;
    switch (line[0]) {
    case 'C':
      configure(atoi(arg));
      break;
    case 'T': {
      char host[4096];
      unsigned port, weight;
      if (sscanf(arg, "%4095s %u %u", host, &port, &weight) != 3) {
        fprintf(stderr, "oracle: bad T line: %s\n", line);
        return 2;
      }
      memcached_return_t rc =
          memcached_server_add_with_weight(memc, host, (in_port_t) port, (uint32_t) weight);
      if (rc != MEMCACHED_SUCCESS) die("memcached_server_add_with_weight", rc);
      break;
    }
    case 'U': {
      char path[4096];
      unsigned weight;
      if (sscanf(arg, "%4095s %u", path, &weight) != 2) {
        fprintf(stderr, "oracle: bad U line: %s\n", line);
        return 2;
      }
      memcached_return_t rc = memcached_server_add_unix_socket_with_weight(memc, path, weight);
      if (rc != MEMCACHED_SUCCESS) die("memcached_server_add_unix_socket_with_weight", rc);
      break;
    }
    case 'K': {
      size_t n = strlen(arg);
      if (n % 2 != 0 || n / 2 > sizeof key) {
        fprintf(stderr, "oracle: bad K line: %s\n", line);
        return 2;
      }
      size_t len = n / 2;
      for (size_t i = 0; i < len; i++) {
        int hi = hexval(arg[2 * i]), lo = hexval(arg[2 * i + 1]);
        if (hi < 0 || lo < 0) {
          fprintf(stderr, "oracle: bad hex: %s\n", line);
          return 2;
        }
        key[i] = (char) (hi * 16 + lo);
      }
      uint32_t idx = memc ? memcached_generate_hash(memc, key, len) : 0;
      printf("%u %u %u %u\n", idx, libhashkit_digest(key, len, HASHKIT_HASH_DEFAULT),
             libhashkit_digest(key, len, HASHKIT_HASH_MD5),
             libhashkit_digest(key, len, HASHKIT_HASH_CRC));
      break;
    }
    default:
      fprintf(stderr, "oracle: unknown command: %s\n", line);
      return 2;
    }
  }
  if (memc) memcached_free(memc);
  return fflush(stdout) == 0 ? 0 : 2;
}
