/* dlsym benchmark host: dlopen PLUGIN, then N lookups cycling over its K exported
 * names f0..f{K-1}. Linked dynamically (glibc's dlsym) and with `dlstatic link` (the
 * shim's), the same source. Prints its own timing of the lookup loop. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PLUGIN N K\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    int k = atoi(argv[3]);
    void *handle = dlopen(argv[1], RTLD_NOW);
    if (!handle) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    char (*names)[16] = malloc(sizeof *names * k);
    for (int i = 0; i < k; i++)
        snprintf(names[i], sizeof names[i], "f%d", i);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long found = 0;
    for (long i = 0; i < n; i++)
        found += dlsym(handle, names[i % k]) != NULL;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    printf("%ld of %ld lookups found, %.1f ns each\n", found, n, ns / n);
    return found == n ? 0 : 1;
}
