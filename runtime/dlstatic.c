/* dlstatic runtime shim: dlopen and friends, answered from the modules that were
 * statically linked into this binary (see dlstatic.h for the registry layout and
 * docs/runtime.md for locking, fork, RTLD_NEXT and constructor order).
 *
 * How a path is matched to a module (dlopen):
 *   NULL                        -> the main program
 *   a soname linked in statically (libc.so.6, libz.so.1, ...), as given or as basename
 *                               -> the main program
 *   a path to a stub file       -> the module whose md5 id the stub holds
 *   a path to an ELF file       -> the module whose md5 equals the file's md5; never a
 *                                  different build that merely shares the basename
 *   a path to an empty or absent file, or a name without '/'
 *                               -> the one module with that soname or basename
 * Anything else fails with a glibc-style message, unless DLSTATIC_FALLBACK=1 hands it
 * to the real (static glibc) loader. DLSTATIC_DEBUG=1 logs every call, and each
 * module's constructors when they run, to stderr. Both are ignored in setuid programs.
 */
#define _GNU_SOURCE
#include "dlstatic.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addrmap.h"
#include "loader.h"
#include "md5.h"
#include "registry.h"

/* The real loader of static glibc, reachable under its internal names because the
 * public dl* names in libc.a are weak aliases that our definitions replace. */
extern void *__dlopen(const char *file, int mode);
extern void *__dlsym(void *handle, const char *name);
extern int __dlclose(void *handle);
extern char *__dlerror(void);

extern const char __ehdr_start[];

/* Thread-local, as glibc's: small, because static TLS comes out of every thread's stack. */
static __thread char error_text[512];
static __thread int error_pending; /* 1: ours, 2: the real loader's */

static int env_flag(const char *name, int *cache)
{
    int value = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (value < 0) {
        /* secure_getenv: a setuid program must not be steered by its caller's environment */
        const char *v = secure_getenv(name);
        value = v && *v && strcmp(v, "0") != 0;
        __atomic_store_n(cache, value, __ATOMIC_RELAXED);
    }
    return value;
}

static int debug_cache = -1, fallback_cache = -1;
#define DEBUG_ON() env_flag("DLSTATIC_DEBUG", &debug_cache)
#define FALLBACK_ON() env_flag("DLSTATIC_FALLBACK", &fallback_cache)

/* One write(2) per line: no stdio lock, little stack, lines of threads stay whole. */
static void debug(const char *fmt, ...)
{
    if (!DEBUG_ON())
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + 10, sizeof line - 11, fmt, ap);
    va_end(ap);
    memcpy(line, "dlstatic: ", 10);
    n = n < 0 ? 0 : n > (int)sizeof line - 12 ? (int)sizeof line - 12 : n;
    line[10 + n] = '\n';
    ssize_t ignored = write(2, line, (size_t)n + 11);
    (void)ignored;
}

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    error_pending = 1;
}

/* A successful dl* call clears the pending error, as glibc's do. */
static void clear_error(void) { error_pending = 0; }

static const char *main_name(void) { return program_invocation_name ? program_invocation_name : ""; }

static const char *display_name(const struct dlstatic_module *m)
{
    if (m->is_main)
        return main_name();
    const char *opened_as = __atomic_load_n(&m->state->opened_as, __ATOMIC_ACQUIRE);
    return opened_as ? opened_as : m->path;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ------------------------------------------------------------- finding modules */

enum file_kind { FILE_ABSENT, FILE_EMPTY, FILE_STUB, FILE_ELF, FILE_OTHER };

static int is_stub(const unsigned char *buf, ssize_t n)
{
    if (n < 32 || n > 64)
        return 0;
    int ok = 1; /* 32 hex digits, optionally followed by whitespace */
    for (int i = 0; i < 32; i++)
        ok &= (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
    for (ssize_t i = 32; i < n; i++)
        ok &= buf[i] == '\n' || buf[i] == ' ' || buf[i] == '\r' || buf[i] == '\t';
    return ok;
}

/* What is at `path`; for a stub the id it holds, for an ELF file its md5. The read
 * buffer is on the heap: dlopen must work on a thread with a 16 KiB stack. */
static enum file_kind inspect_file(const char *path, char id[33])
{
    enum { CHUNK = 65536 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FILE_ABSENT;
    unsigned char *buf = malloc(CHUNK);
    ssize_t n = buf ? read(fd, buf, CHUNK) : -1;
    enum file_kind kind = FILE_OTHER;
    if (n == 0) {
        kind = FILE_EMPTY;
    } else if (n >= 4 && memcmp(buf, "\177ELF", 4) == 0) {
        struct md5 s;
        md5_init(&s);
        while (n > 0) {
            md5_update(&s, buf, (size_t)n);
            n = read(fd, buf, CHUNK);
        }
        md5_hex(&s, id);
        kind = n < 0 ? FILE_OTHER : FILE_ELF;
    } else if (is_stub(buf, n)) {
        memcpy(id, buf, 32);
        id[32] = 0;
        kind = FILE_STUB;
    }
    free(buf);
    close(fd);
    return kind;
}

/* The module with md5 `id`, named by `file` of kind `what`; else sets the error. */
static const struct dlstatic_module *by_id_or_error(const char *file, const char *id, const char *what)
{
    const struct dlstatic_module *m = find_by_id(id);
    if (!m)
        set_error("%s: cannot open shared object file: %s %s, which is not linked into this binary", file, what, id);
    return m;
}

/* Resolve `file` to a module, or set the error text and return NULL. */
static const struct dlstatic_module *resolve(const char *file)
{
    if (file == NULL || is_alias_of_main(file) || is_alias_of_main(base_name(file)))
        return the_main();
    if (strchr(file, '/')) {
        char id[33] = "";
        switch (inspect_file(file, id)) {
        case FILE_STUB:
            return by_id_or_error(file, id, "stub names module");
        case FILE_ELF:
            return by_id_or_error(file, id, "no linked module has the md5 of");
        case FILE_OTHER:
            set_error("%s: invalid ELF header (neither a shared object nor a dlstatic stub)", file);
            return NULL;
        case FILE_ABSENT:
        case FILE_EMPTY:
            break;
        }
    }
    int count = 0;
    const struct dlstatic_module *m = find_by_name(base_name(file), &count);
    if (!m && count > 1)
        set_error("%s: cannot open shared object file: %d linked modules are named %s; open a stub or "
                  "the original file to choose",
                  file, count, base_name(file));
    else if (!m)
        set_error("%s: cannot open shared object file: not linked into this binary", file);
    return m;
}

const char *dlstatic_soname_for(const char *name)
{
    char prefix[256];
    int n = snprintf(prefix, sizeof prefix, "lib%s.so", name);
    if (n <= 0 || (size_t)n >= sizeof prefix)
        return NULL;
    return soname_with_prefix(prefix, (size_t)n);
}

/* ------------------------------------------------------------------ dl* family */

/* glibc's checks, in its order and with its words. */
static int valid_mode(const char *file, int mode)
{
    const int known = RTLD_BINDING_MASK | RTLD_NOLOAD | RTLD_DEEPBIND | RTLD_GLOBAL | RTLD_NODELETE;
    if (mode & ~known) {
        set_error("invalid mode parameter");
        return 0;
    }
    if ((mode & RTLD_BINDING_MASK) == 0) {
        set_error("%s%sinvalid mode for dlopen(): Invalid argument", file ? file : "", file ? ": " : "");
        return 0;
    }
    return 1;
}

void *dlopen(const char *file, int mode)
{
    if (!valid_mode(file, mode))
        return NULL;
    const struct dlstatic_module *m = resolve(file);
    void *handle = (void *)m;
    if (m && !m->is_main && !open_module(m, file, mode))
        handle = NULL; /* an RTLD_NOLOAD miss is no error in glibc either */
    if (m)
        clear_error();
    else if (FALLBACK_ON()) {
        handle = __dlopen(file, mode);
        error_pending = handle ? 0 : 2;
    }
    debug("dlopen(\"%s\", 0x%x) -> %p%s%s", file ? file : "NULL", mode, handle, m ? " " : "",
          m ? (m->is_main ? "[main program]" : m->id) : "");
    return handle;
}

void *dlmopen(Lmid_t lmid, const char *file, int mode)
{
    if (lmid != LM_ID_BASE) {
        set_error("dlmopen: only LM_ID_BASE exists in a dlstatic binary");
        return NULL;
    }
    return dlopen(file, mode);
}

int dlclose(void *handle)
{
    const struct dlstatic_module *m = table_of(handle);
    int rc = 0;
    if (!m && FALLBACK_ON()) {
        rc = __dlclose(handle);
        error_pending = rc == 0 ? 0 : 2;
        return rc;
    }
    if (!m)
        set_error("shared object not open"), rc = -1;
    else if (!m->is_main && close_module(m) != 0)
        set_error("%s: shared object not open", display_name(m)), rc = -1;
    else
        clear_error();
    debug("dlclose(%p) -> %d", handle, rc);
    return rc;
}

/* A lookup in the main program; `skip_own` leaves out what the program's own objects
 * define, keeping what its system libraries (libc, ...) define. */
static const struct dlstatic_symbol *lookup_main(const char *name, int skip_own)
{
    const struct dlstatic_symbol *s = lookup(the_main(), name);
    return s && skip_own && s->own ? NULL : s;
}

/* The global scope: the main program, then modules opened with RTLD_GLOBAL that are
 * still open, in open order. */
static const struct dlstatic_symbol *lookup_global(const char *name, int skip_own)
{
    const struct dlstatic_symbol *s = lookup_main(name, skip_own);
    for (const struct dlstatic_module *m = first_global(); !s && m; m = next_global(m))
        if (__atomic_load_n(&m->state->refcount, __ATOMIC_ACQUIRE) > 0)
            s = lookup(m, name);
    return s;
}

/* glibc searches the objects after the caller in the caller's scope. From the program:
 * its libraries, then RTLD_GLOBAL modules. From a module: its dependencies only, which
 * live in the main program now (glibc does not search the global scope from a module). */
static const struct dlstatic_symbol *lookup_next(const char *name, const void *caller, const char **scope)
{
    const struct dlstatic_module *from = owner_of(caller).module;
    if (!from || from->is_main) {
        *scope = main_name();
        return lookup_global(name, 1);
    }
    *scope = display_name(from);
    return lookup_main(name, 1);
}

/* A module's own symbols, then those of the modules it links against, then those of
 * its system libraries, which live in the main program now. */
static const struct dlstatic_symbol *lookup_module(const struct dlstatic_module *m, const char *name)
{
    const struct dlstatic_symbol *s = lookup(m, name);
    for (unsigned i = 0; !s && i < m->ndeps; i++)
        s = lookup(m->deps[i], name);
    return s ? s : lookup_main(name, 0);
}

static void *symbol_address(const struct dlstatic_symbol *s) { return s->tls_addr ? s->tls_addr() : s->addr; }

static void *find_symbol(void *handle, const char *name, const void *caller)
{
    const struct dlstatic_symbol *s = NULL;
    const char *scope = main_name();
    const struct dlstatic_module *m = NULL;
    if (handle == RTLD_NEXT)
        s = lookup_next(name, caller, &scope);
    else if (handle == RTLD_DEFAULT || handle == the_main())
        s = lookup_global(name, 0);
    else if ((m = table_of(handle)))
        s = lookup_module(m, name), scope = display_name(m);
    else if (FALLBACK_ON()) {
        void *addr = __dlsym(handle, name);
        error_pending = addr ? 0 : 2;
        return addr;
    } else {
        set_error("dlsym: invalid handle %p", handle);
        return NULL;
    }
    void *addr = s ? symbol_address(s) : NULL;
    if (s)
        clear_error();
    else
        set_error("%s: undefined symbol: %s", scope, name);
    debug("dlsym(%p, \"%s\") -> %p", handle, name, addr);
    return addr;
}

void *dlsym(void *handle, const char *name) { return find_symbol(handle, name, __builtin_return_address(0)); }

void *dlvsym(void *handle, const char *name, const char *version)
{
    (void)version; /* modules are linked without symbol versions */
    return find_symbol(handle, name, __builtin_return_address(0));
}

char *dlerror(void)
{
    int pending = error_pending;
    error_pending = 0;
    if (pending == 2)
        return __dlerror();
    return pending ? error_text : NULL;
}

int dladdr(const void *addr, Dl_info *info)
{
    struct owner o = owner_of(addr);
    if (!o.module) {
        debug("dladdr(%p) -> 0", addr);
        return 0;
    }
    const struct dlstatic_addr_index *index = address_index(o.module);
    info->dli_fname = display_name(o.module);
    info->dli_fbase = o.module->is_main ? (void *)__ehdr_start : index->sorted[0]->addr;
    info->dli_sname = o.contains && o.symbol->exported ? o.symbol->name : NULL;
    info->dli_saddr = info->dli_sname ? o.symbol->addr : NULL;
    debug("dladdr(%p) -> %s %s", addr, info->dli_fname, info->dli_sname ? info->dli_sname : "?");
    return 1;
}

int dlinfo(void *handle, int request, void *arg)
{
    const struct dlstatic_module *m = table_of(handle);
    if (!m) {
        set_error("dlinfo: invalid handle %p", handle);
        return -1;
    }
    const char *name = display_name(m);
    switch (request) {
    case RTLD_DI_LINKMAP:
        /* the main program's name is fixed; a module's is set when it is opened */
        if (m->is_main && !__atomic_load_n(&m->state->map.l_name, __ATOMIC_ACQUIRE))
            __atomic_store_n(&m->state->map.l_name, (char *)name, __ATOMIC_RELEASE);
        *(struct link_map **)arg = &m->state->map;
        break;
    case RTLD_DI_ORIGIN: {
        const char *slash = strrchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : 0;
        memcpy(arg, slash ? name : ".", slash ? n : 1);
        ((char *)arg)[slash ? n : 1] = 0;
        break;
    }
    default:
        set_error("dlinfo: request %d is not supported by dlstatic", request);
        return -1;
    }
    clear_error();
    return 0;
}
