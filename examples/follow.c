/* A long-running libmemcache 1.4 program that never names a server: mc_new() follows the
 * domain in $MEMCACHE_DOMAIN, so an operator can move it to other servers with mcadmin while
 * it runs. Each tick it reads "motd", writes "follow:last" and prints which server it used.
 * It stops two ticks after the motd it reads changes (exit 0), or after MAX_TICKS (exit 2). */
#include <memcache.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TICKS 120           /* 30 s at 4 ticks a second */
#define TICK_USEC 250000

int main(void)
{
    struct memcache *mc = mc_new();
    if (mc == NULL) {
        fprintf(stderr, "follow: mc_new failed\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char motd_key[] = "motd", last_key[] = "follow:last";
    char *first = NULL;
    int changed_at = 0, tick;
    for (tick = 1; tick <= MAX_TICKS; tick++) {
        /* Walking mc->servers is safe right after the handle caught up with its domain. */
        unsigned long long version = (unsigned long long)mc_domain_version(mc);
        char server[300] = "(no server)";
        if (mc->num_servers > 0)
            snprintf(server, sizeof server, "%s:%s", mc->servers[0]->hostname,
                     mc->servers[0]->port);

        char *motd = mc_aget(mc, motd_key, strlen(motd_key));
        char value[64];
        snprintf(value, sizeof value, "written by follow.c at tick %d", tick);
        int rc = mc_set(mc, last_key, strlen(last_key), value, strlen(value), 0, 0);
        printf("follow: tick %3d  list %llu  server %s  motd \"%s\"  set %s\n", tick, version,
               server, motd ? motd : "(miss)", rc == 0 ? "ok" : "failed");

        if (motd != NULL && first == NULL)
            first = strdup(motd);
        else if (motd != NULL && changed_at == 0 && strcmp(motd, first) != 0)
            changed_at = tick;
        free(motd);
        if (changed_at != 0 && tick >= changed_at + 2)
            break;
        usleep(TICK_USEC);
    }
    free(first);
    mc_free(mc);
    if (changed_at == 0) {
        fprintf(stderr, "follow: the motd never changed in %d ticks\n", MAX_TICKS);
        return 2;
    }
    printf("follow: switched servers at tick %d without a restart\n", changed_at);
    return 0;
}
