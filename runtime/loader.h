/* What dlopen changes: reference counts, the global scope, interned names, and running
 * a module's constructors at its first dlopen and its destructors at exit. All of it
 * under one recursive loader lock, as glibc's dl_load_lock: a constructor may dlopen
 * another module from the same thread, while other threads wait. fork() takes the lock
 * first (pthread_atfork), so a child never inherits it held by a thread it does not
 * have. Part of the runtime's single translation unit (included by dlstatic.c only). */
#ifndef DLSTATIC_LOADER_H
#define DLSTATIC_LOADER_H

#include "registry.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static pthread_mutex_t loader_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void lock_before_fork(void) { pthread_mutex_lock(&loader_lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&loader_lock); }

/* The child has only the forking thread, whose id changed: a fresh, unlocked mutex. */
static void reset_in_child(void)
{
    pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    memcpy(&loader_lock, &fresh, sizeof fresh);
}

static void register_atfork(void) { pthread_atfork(lock_before_fork, unlock_after_fork, reset_in_child); }

static void lock_loader(void)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&loader_lock);
}

static void unlock_loader(void) { pthread_mutex_unlock(&loader_lock); }

/* Names handed out by dladdr and dlinfo stay valid for the life of the process: each
 * distinct path is copied once and never freed. Caller holds the loader lock. */
struct interned {
    struct interned *next;
    char text[];
};
static struct interned *interned_names;

static const char *intern(const char *text)
{
    for (struct interned *i = interned_names; i; i = i->next)
        if (strcmp(i->text, text) == 0)
            return i->text;
    size_t n = strlen(text) + 1;
    struct interned *i = malloc(sizeof *i + n);
    if (!i)
        return NULL;
    memcpy(i->text, text, n);
    i->next = interned_names;
    interned_names = i;
    return i->text;
}

/* glibc's global scope after the main program: modules opened with RTLD_GLOBAL, in
 * open order. Appended under the lock; read without it (acquire loads). */
static const struct dlstatic_module *global_head;
static const struct dlstatic_module **global_tail = &global_head;

static void make_global(const struct dlstatic_module *m)
{
    if (m->state->global)
        return;
    m->state->global = 1;
    __atomic_store_n(global_tail, m, __ATOMIC_RELEASE);
    global_tail = (const struct dlstatic_module **)&m->state->next_global;
}

static const struct dlstatic_module *first_global(void)
{
    return __atomic_load_n(&global_head, __ATOMIC_ACQUIRE);
}

static const struct dlstatic_module *next_global(const struct dlstatic_module *m)
{
    return __atomic_load_n(&m->state->next_global, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------ constructors and destructors */

/* Modules whose constructors ran, most recent first: the order their destructors run. */
static const struct dlstatic_module *fini_head;

static void run_initfini(const struct dlstatic_initfini *r, int backward)
{
    size_t n = (size_t)(r->stop - r->start);
    for (size_t i = 0; i < n; i++) {
        void (*f)(void) = r->start[backward != r->reversed ? n - 1 - i : i];
        /* ld leaves 0 and -1 in .ctors/.dtors as end markers of old crt files */
        if (f && f != (void (*)(void))-1)
            f();
    }
}

/* At exit: destructors of every initialised module, the last initialised first, each
 * module's array backward, as glibc's _dl_fini does. */
static void run_destructors(void)
{
    lock_loader();
    for (const struct dlstatic_module *m = fini_head; m; m = m->state->next_fini) {
        if (m->nfinis)
            debug("running destructors of %s", m->so_name);
        for (unsigned i = m->nfinis; i-- > 0;)
            run_initfini(&m->finis[i], 1);
    }
    fini_head = NULL;
    unlock_loader();
}

/* Run the constructors of `m`, its dependencies' first, once. Marked running before they
 * run, so a constructor that dlopens its own module gets the handle without recursion
 * (glibc's l_init_called). Caller holds the loader lock. */
static void initialize(const struct dlstatic_module *m)
{
    static int exit_hook;
    struct dlstatic_state *s = m->state;
    if (__atomic_load_n(&s->init, __ATOMIC_ACQUIRE) != 0)
        return;
    __atomic_store_n(&s->init, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < m->ndeps; i++)
        initialize(m->deps[i]);
    if (!exit_hook && (m->ninits || m->nfinis))
        exit_hook = atexit(run_destructors) == 0;
    if (m->ninits)
        debug("running constructors of %s", m->so_name);
    for (unsigned i = 0; i < m->ninits; i++)
        run_initfini(&m->inits[i], 0);
    s->next_fini = fini_head;
    fini_head = m;
    __atomic_store_n(&s->init, 2, __ATOMIC_RELEASE);
}

/* `dlstatic link --eager-constructors`: every module's constructors at program start, in
 * link order, as a plain static link runs them. Does nothing otherwise. */
__attribute__((constructor)) static void run_constructors_eagerly(void)
{
    if (!the_main()->eager)
        return;
    lock_loader();
    FOR_EACH_TABLE(p)
        if (!(*p)->is_main)
            initialize(*p);
    unlock_loader();
}

/* A dlopen of module `m` as `file`: 0 for an RTLD_NOLOAD miss, else 1. */
static int open_module(const struct dlstatic_module *m, const char *file, int mode)
{
    struct dlstatic_state *s = m->state;
    lock_loader();
    unsigned count = __atomic_load_n(&s->refcount, __ATOMIC_RELAXED);
    int opened = count > 0 || !(mode & RTLD_NOLOAD);
    if (opened) {
        if (count == 0) {
            const char *name = intern(file);
            if (name && name != s->opened_as) {
                __atomic_store_n(&s->opened_as, name, __ATOMIC_RELEASE);
                __atomic_store_n(&s->map.l_name, (char *)name, __ATOMIC_RELEASE);
            }
        }
        if (count < UINT_MAX)
            __atomic_store_n(&s->refcount, count + 1, __ATOMIC_RELEASE);
        if (mode & RTLD_GLOBAL)
            make_global(m);
        initialize(m);
    }
    unlock_loader();
    return opened;
}

/* A dlclose of module `m`: 0, or -1 when it is not open. */
static int close_module(const struct dlstatic_module *m)
{
    struct dlstatic_state *s = m->state;
    lock_loader();
    unsigned count = __atomic_load_n(&s->refcount, __ATOMIC_RELAXED);
    if (count > 0 && count < UINT_MAX)
        __atomic_store_n(&s->refcount, count - 1, __ATOMIC_RELEASE);
    unlock_loader();
    return count > 0 ? 0 : -1;
}

#endif
