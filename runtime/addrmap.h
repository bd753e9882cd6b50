/* Address → module and symbol, for dladdr and for finding the caller of
 * dlsym(RTLD_NEXT). Each module's symbols are sorted by address on first use; the
 * sorted index is published with one atomic compare-and-swap and never changes after,
 * so readers take no lock (and a child after fork() sees either none or a whole one).
 * Part of the runtime's single translation unit (included by dlstatic.c only). */
#ifndef DLSTATIC_ADDRMAP_H
#define DLSTATIC_ADDRMAP_H

#include "registry.h"

#include <stdint.h>
#include <stdlib.h>

struct dlstatic_addr_index {
    unsigned n;
    const struct dlstatic_symbol *sorted[];
};

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(const struct dlstatic_symbol *const *)a)->addr;
    uintptr_t y = (uintptr_t)(*(const struct dlstatic_symbol *const *)b)->addr;
    return x < y ? -1 : x > y;
}

/* The module's non-TLS symbols sorted by address, or NULL when it has none (or memory
 * ran out: dladdr then does not know the module, as before its first use). */
static const struct dlstatic_addr_index *address_index(const struct dlstatic_module *m)
{
    struct dlstatic_addr_index *index = __atomic_load_n(&m->state->by_addr, __ATOMIC_ACQUIRE);
    if (index || m->nsymbols == 0)
        return index;
    index = malloc(sizeof *index + m->nsymbols * sizeof index->sorted[0]);
    if (!index)
        return NULL;
    unsigned n = 0;
    for (unsigned i = 0; i < m->nsymbols; i++)
        if (!m->symbols[i].tls_addr)
            index->sorted[n++] = &m->symbols[i];
    qsort(index->sorted, n, sizeof index->sorted[0], by_address);
    index->n = n;
    struct dlstatic_addr_index *expected = NULL;
    if (!__atomic_compare_exchange_n(&m->state->by_addr, &expected, index, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        free(index); /* another thread published the same index first */
        index = expected;
    }
    return index;
}

/* The symbol of `index` at or nearest below `addr`, or NULL. */
static const struct dlstatic_symbol *nearest_below(const struct dlstatic_addr_index *index, uintptr_t addr)
{
    unsigned lo = 0, hi = index->n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if ((uintptr_t)index->sorted[mid]->addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? index->sorted[lo - 1] : NULL;
}

struct owner {
    const struct dlstatic_module *module;
    const struct dlstatic_symbol *symbol;
    int contains; /* the symbol's extent covers the address */
};

/* Let `m` compete for `addr`: a symbol that contains the address wins, otherwise the
 * nearest one below it. */
static void consider(struct owner *best, const struct dlstatic_module *m, uintptr_t addr)
{
    const struct dlstatic_addr_index *index = address_index(m);
    const struct dlstatic_symbol *s = index ? nearest_below(index, addr) : NULL;
    if (!s)
        return;
    int contains = addr < (uintptr_t)s->addr + (s->size ? s->size : 1);
    if (!best->symbol || contains > best->contains ||
        (contains == best->contains && (uintptr_t)s->addr > (uintptr_t)best->symbol->addr))
        *best = (struct owner){m, s, contains};
}

/* The module and symbol `addr` belongs to, over all tables; module is NULL when no
 * symbol lies at or below it. */
static struct owner owner_of(const void *addr)
{
    struct owner best = {0};
    consider(&best, the_main(), (uintptr_t)addr);
    FOR_EACH_TABLE(p)
        if (!(*p)->is_main)
            consider(&best, *p, (uintptr_t)addr);
    return best;
}

#endif
