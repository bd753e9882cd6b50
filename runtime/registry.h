/* The registry as the shim reads it: the table pointers every generated table put into
 * section `dlstatic_modules`, and the searches over them. Everything here reads only
 * constant data, so it needs no lock and works in a child right after fork(). Part of
 * the runtime's single translation unit (included by dlstatic.c only). */
#ifndef DLSTATIC_REGISTRY_H
#define DLSTATIC_REGISTRY_H

#include "dlstatic.h"

#include <string.h>

/* Weak: a program linked without any table (the sanitizer harness before it adds its
 * own, a link with no modules) still links and has an empty registry. */
extern const struct dlstatic_module *const __start_dlstatic_modules[] __attribute__((weak));
extern const struct dlstatic_module *const __stop_dlstatic_modules[] __attribute__((weak));

/* Every table, main program's included, in link order. */
#define FOR_EACH_TABLE(p) for (const struct dlstatic_module *const *p = __start_dlstatic_modules; p < __stop_dlstatic_modules; p++)

/* The main program has a table once `dlstatic link` generated one; until then (its own
 * first link pass) dlopen(NULL) still works and knows no symbols. */
static struct dlstatic_state empty_main_state;
static const struct dlstatic_module empty_main = {
    .so_name = "", .path = "", .id = "", .is_main = 1, .state = &empty_main_state};

static const struct dlstatic_module *the_main(void)
{
    static const struct dlstatic_module *cached; /* every thread computes the same value */
    const struct dlstatic_module *main = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (main)
        return main;
    main = &empty_main;
    FOR_EACH_TABLE(p)
        if ((*p)->is_main)
            main = *p;
    __atomic_store_n(&cached, main, __ATOMIC_RELAXED);
    return main;
}

/* The table `handle` points at, or NULL when it is not one of ours. */
static const struct dlstatic_module *table_of(const void *handle)
{
    if (handle == the_main())
        return the_main();
    FOR_EACH_TABLE(p)
        if (*p == handle && !(*p)->is_main)
            return *p;
    return NULL;
}

static int is_alias_of_main(const char *name)
{
    const struct dlstatic_module *m = the_main();
    for (unsigned i = 0; i < m->naliases; i++)
        if (strcmp(m->aliases[i], name) == 0)
            return 1;
    return 0;
}

static const struct dlstatic_module *find_by_id(const char *id)
{
    FOR_EACH_TABLE(p)
        if (!(*p)->is_main && strcmp((*p)->id, id) == 0)
            return *p;
    return NULL;
}

/* The one module whose soname, else whose basename, is `name`. Sets *count to the
 * number of candidates when there is not exactly one. */
static const struct dlstatic_module *find_by_name(const char *name, int *count)
{
    const struct dlstatic_module *found = NULL;
    *count = 0;
    FOR_EACH_TABLE(p)
        if (!(*p)->is_main && (*p)->soname && strcmp((*p)->soname, name) == 0)
            found = *p, ++*count;
    if (*count == 0)
        FOR_EACH_TABLE(p)
            if (!(*p)->is_main && strcmp((*p)->so_name, name) == 0)
                found = *p, ++*count;
    return *count == 1 ? found : NULL;
}

static const struct dlstatic_symbol *lookup(const struct dlstatic_module *m, const char *name)
{
    if (m->nbuckets == 0)
        return NULL;
    unsigned mask = m->nbuckets - 1;
    for (unsigned i = dlstatic_hash(name) & mask;; i = (i + 1) & mask) {
        unsigned slot = m->buckets[i];
        if (slot == 0)
            return NULL;
        const struct dlstatic_symbol *s = &m->symbols[slot - 1];
        if (strcmp(s->name, name) == 0)
            return s;
    }
}

/* For ctypes.util.find_library in a static interpreter, where no ldconfig cache or
 * compiler exists: the soname ("libc.so.6") of the library `name` ("c") if it is
 * linked in, as a system library or as a module; else NULL. */
static const char *soname_with_prefix(const char *prefix, size_t n)
{
    const struct dlstatic_module *main = the_main();
    for (unsigned i = 0; i < main->naliases; i++)
        if (strncmp(main->aliases[i], prefix, n) == 0 && (main->aliases[i][n] == '.' || !main->aliases[i][n]))
            return main->aliases[i];
    FOR_EACH_TABLE(p) {
        const char *candidate = (*p)->soname ? (*p)->soname : (*p)->so_name;
        if (!(*p)->is_main && strncmp(candidate, prefix, n) == 0 && (candidate[n] == '.' || !candidate[n]))
            return candidate;
    }
    return NULL;
}

#endif
