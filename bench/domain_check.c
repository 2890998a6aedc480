/*
 * What the per-operation domain check costs: single gets on a handle that follows a shared
 * domain against a private handle on the same server, in alternating rounds so machine noise
 * hits both alike. Prints one line per round and a summary with the ratio domain/private.
 * Usage: domain_check HOST:PORT DOMAIN [ROUNDS] [GETS_PER_ROUND] [private|domain]
 * With the last argument only that handle is measured (for instruction counts under callgrind).
 */
#include <memcache.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double run(struct memcache *mc, long gets)
{
    char key[] = "bench:domain_check";
    double start = now();
    for (long i = 0; i < gets; i++) {
        size_t len = 0;
        char *v = mc_aget2(mc, key, sizeof(key) - 1, &len);
        if (v == NULL || len != 100) {
            fprintf(stderr, "get failed\n");
            exit(2);
        }
        free(v);
    }
    return gets / (now() - start);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST:PORT DOMAIN [ROUNDS] [GETS]\n", argv[0]);
        return 1;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 15;
    long gets = argc > 4 ? atol(argv[4]) : 20000;
    struct memcache *priv = mc_new_private();
    mc_server_add4(priv, argv[1]);
    struct memcache *dom = mc_new2(argv[2]);
    char key[] = "bench:domain_check", val[100];
    memset(val, 'x', sizeof(val));
    if (mc_set(priv, key, sizeof(key) - 1, val, sizeof(val), 0, 0) != 0 || dom->num_servers != 1) {
        fprintf(stderr, "setup failed (domain %s must list exactly %s)\n", argv[2], argv[1]);
        return 2;
    }
    double ratios[256];
    if (rounds > 256)
        rounds = 256;
    run(priv, gets / 10); /* warm both connections */
    run(dom, gets / 10);
    if (argc > 5) {
        struct memcache *only = strcmp(argv[5], "domain") == 0 ? dom : priv;
        printf("%s: %.0f gets/s\n", argv[5], run(only, gets));
        mc_free(priv);
        mc_free(dom);
        return 0;
    }
    for (int r = 0; r < rounds; r++) {
        /* alternate which goes first so drift favours neither */
        double p, d;
        if (r % 2) {
            p = run(priv, gets);
            d = run(dom, gets);
        } else {
            d = run(dom, gets);
            p = run(priv, gets);
        }
        ratios[r] = d / p;
        printf("round %2d  private %9.0f gets/s  domain %9.0f gets/s  ratio %.4f\n", r, p, d, ratios[r]);
    }
    qsort(ratios, rounds, sizeof(double), cmp);
    printf("domain/private ratio: min %.4f  median %.4f  max %.4f  (%d rounds x %ld gets)\n",
           ratios[0], ratios[rounds / 2], ratios[rounds - 1], rounds, gets);
    mc_free(priv);
    mc_free(dom);
    return 0;
}
