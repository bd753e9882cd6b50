/* Sanitizer harness for the runtime shim: runtime/dlstatic.c compiled into this
 * dynamically linked program with its public names prefixed (ds_dlopen, ...; see run.sh),
 * so the real glibc loader stays out of the way and ASan/UBSan/TSan can instrument it.
 * Three modules and a main program are registered the way generated tables do it (a
 * pointer in section dlstatic_modules); THREADS threads then open, look up, call,
 * inspect and close them for ITERATIONS rounds each, checking every answer. A
 * constructor of module "alpha.so" opens "beta.so", so constructors run under the
 * loader lock with recursion. Exit status 0 only if every check held. */
#define _GNU_SOURCE
#include "../../runtime/dlstatic.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *ds_dlopen(const char *, int);
void *ds_dlsym(void *, const char *);
int ds_dlclose(void *);
char *ds_dlerror(void);
int ds_dladdr(const void *, Dl_info *);
int ds_dlinfo(void *, int, void *);

/* The real loader is what the fallback would call; this harness never enables it. */
void *__dlopen(const char *file, int mode) { (void)file, (void)mode; abort(); }
void *__dlsym(void *handle, const char *name) { (void)handle, (void)name; abort(); }
int __dlclose(void *handle) { (void)handle; abort(); }
char *__dlerror(void) { abort(); }

static int failures;
#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond);                         \
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                                        \
        }                                                                                              \
    } while (0)

static int alpha_fn(void) { return 1; }
static int beta_fn(void) { return 2; }
static int gamma_fn(void) { return 3; }
static int main_fn(void) { return 4; }
static __thread int gamma_tls;
static void *gamma_tls_addr(void) { return &gamma_tls; }

static int alpha_inits_run, beta_inits_run;
static void alpha_ctor(void)
{
    alpha_inits_run++;
    CHECK(ds_dlopen("beta.so", RTLD_NOW) != NULL); /* recursion into the loader */
    CHECK(ds_dlopen("alpha.so", RTLD_NOW | RTLD_NOLOAD) != NULL);
}
static void beta_ctor(void) { beta_inits_run++; }
static void (*const alpha_init_array[])(void) = {alpha_ctor};
static void (*const beta_init_array[])(void) = {beta_ctor};
static const struct dlstatic_initfini alpha_inits[] = {{alpha_init_array, alpha_init_array + 1, 0}};
static const struct dlstatic_initfini beta_inits[] = {{beta_init_array, beta_init_array + 1, 0}};

#define SYMBOLS(prefix, fn)                                                                            \
    static const struct dlstatic_symbol prefix##_symbols[] = {{"fn", (void *)fn, 0, 16, 1, 0},          \
                                                              {#fn, (void *)fn, 0, 16, 1, 1}};          \
    static unsigned prefix##_buckets[4];
SYMBOLS(alpha, alpha_fn)
SYMBOLS(beta, beta_fn)
SYMBOLS(main, main_fn)
static const struct dlstatic_symbol gamma_symbols[] = {
    {"fn", (void *)gamma_fn, 0, 16, 1, 0}, {"gamma_fn", (void *)gamma_fn, 0, 16, 1, 0}, {"tls", 0, gamma_tls_addr, 4, 1, 0}};
static unsigned gamma_buckets[8];
static const char *const main_aliases[] = {"libc.so.6"};

static struct dlstatic_state states[4];
static const struct dlstatic_module modules[4] = {
    {.so_name = "main", .path = "", .id = "", .symbols = main_symbols, .nsymbols = 2, .buckets = main_buckets,
     .nbuckets = 4, .aliases = main_aliases, .naliases = 1, .is_main = 1, .state = &states[0]},
    {.so_name = "alpha.so", .path = "/build/alpha.so", .id = "a", .symbols = alpha_symbols, .nsymbols = 2,
     .buckets = alpha_buckets, .nbuckets = 4, .inits = alpha_inits, .ninits = 1, .state = &states[1]},
    {.so_name = "beta.so", .path = "/build/beta.so", .id = "b", .symbols = beta_symbols, .nsymbols = 2,
     .buckets = beta_buckets, .nbuckets = 4, .inits = beta_inits, .ninits = 1, .state = &states[2]},
    {.so_name = "gamma.so", .path = "/build/gamma.so", .id = "c", .symbols = gamma_symbols, .nsymbols = 3,
     .buckets = gamma_buckets, .nbuckets = 8, .state = &states[3]},
};
__attribute__((used, section("dlstatic_modules"))) static const struct dlstatic_module *const entries[] = {
    &modules[0], &modules[1], &modules[2], &modules[3]};

/* The hash layout src/codegen.rs writes at link time, done here before any thread starts. */
static void lay_out_buckets(void)
{
    for (int m = 0; m < 4; m++) {
        unsigned *buckets = (unsigned *)modules[m].buckets, mask = modules[m].nbuckets - 1;
        for (unsigned i = 0; i < modules[m].nsymbols; i++) {
            unsigned slot = dlstatic_hash(modules[m].symbols[i].name) & mask;
            while (buckets[slot])
                slot = (slot + 1) & mask;
            buckets[slot] = i + 1;
        }
    }
}

static long iterations;
static const char *const names[] = {"alpha.so", "beta.so", "gamma.so"};
static int (*const fns[])(void) = {alpha_fn, beta_fn, gamma_fn};

static void one_round(long i, int which)
{
    void *h = ds_dlopen(names[which], RTLD_NOW | (i & 1 ? RTLD_GLOBAL : RTLD_LOCAL));
    CHECK(h != NULL);
    int (*fn)(void) = (int (*)(void))ds_dlsym(h, "fn");
    CHECK(fn && fn() == which + 1);
    CHECK(ds_dlerror() == NULL);
    CHECK(ds_dlsym(h, "nosuch") == NULL);
    const char *error = ds_dlerror();
    CHECK(error && strstr(error, "undefined symbol: nosuch"));
    CHECK(ds_dlsym(RTLD_DEFAULT, "main_fn") == (void *)main_fn);
    CHECK(ds_dlsym(RTLD_NEXT, "main_fn") == NULL); /* the program's own: skipped */
    ds_dlerror();
    Dl_info info;
    CHECK(ds_dladdr((void *)fns[which], &info) && strcmp(info.dli_fname, names[which]) == 0);
    struct link_map *map = NULL;
    CHECK(ds_dlinfo(h, RTLD_DI_LINKMAP, &map) == 0 && map && strcmp(map->l_name, names[which]) == 0);
    if (which == 2) {
        int *tls = ds_dlsym(h, "tls");
        CHECK(tls == &gamma_tls);
    }
    CHECK(ds_dlclose(h) == 0);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    for (long i = 0; i < iterations; i++)
        one_round(i, (int)((i + id) % 3));
    return NULL;
}

int main(int argc, char **argv)
{
    enum { THREADS = 8 };
    iterations = argc > 1 ? atol(argv[1]) : 1000;
    lay_out_buckets();
    pthread_t threads[THREADS];
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, worker, (void *)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    CHECK(alpha_inits_run == 1 && beta_inits_run == 1);
    CHECK(ds_dlopen("alpha.so", 0) == NULL && strstr(ds_dlerror(), "invalid mode"));
    printf("%d threads x %ld rounds: %d failed checks\n", THREADS, iterations, failures);
    return failures != 0;
}
