/* A libmemcache 1.4 program: nothing here is specific to this implementation. */
#include <memcache.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *server = argc > 1 ? argv[1] : "127.0.0.1:11211";
    struct memcache *mc = mc_new();
    if (mc == NULL || mc_server_add4(mc, server) != 0) {
        fprintf(stderr, "cannot add server %s\n", server);
        return 1;
    }

    char key[] = "greeting";
    const char *value = "hello from libmemcache " MEMCACHE_VER;
    if (mc_set(mc, key, strlen(key), value, strlen(value), 0, 0) != 0) {
        fprintf(stderr, "set failed\n");
        return 1;
    }
    char *got = mc_aget(mc, key, strlen(key));
    printf("get %s -> %s\n", key, got ? got : "(miss)");
    free(got);

    char counter[] = "visits";
    mc_set(mc, counter, strlen(counter), "41", 2, 0, 0);
    printf("incr %s -> %u\n", counter, mc_incr(mc, counter, strlen(counter), 1));

    char bad[] = "two words";   /* refused before anything reaches the wire */
    printf("set with a space in the key -> %d\n", mc_set(mc, bad, strlen(bad), "x", 1, 0, 0));

    struct memcache_server_stats *s = mc_stats(mc);
    printf("server version %s, %llu gets\n", s->version ? s->version : "?",
           (unsigned long long)s->cmd_get);
    mc_server_stats_free(s);
    mc_free(mc);
    return 0;
}
