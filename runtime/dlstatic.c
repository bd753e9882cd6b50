/* dlstatic runtime shim: dlopen and friends, answered from the modules that were
 * statically linked into this binary (see dlstatic.h for the registry layout).
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
 * to the real (static glibc) loader. DLSTATIC_DEBUG=1 logs every call to stderr.
 */
#define _GNU_SOURCE
#include "dlstatic.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The real loader of static glibc, reachable under its internal names because the
 * public dl* names in libc.a are weak aliases that our definitions replace. */
extern void *__dlopen(const char *file, int mode);
extern void *__dlsym(void *handle, const char *name);
extern int __dlclose(void *handle);
extern char *__dlerror(void);

extern const char __ehdr_start[];

static struct dlstatic_module *modules_head, *modules_tail;
static struct dlstatic_module *main_module;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/* The main program has a table once `dlstatic link` generated one; until then (its
 * own first link pass) dlopen(NULL) still works and knows no symbols. */
static struct dlstatic_module empty_main = {.so_name = "", .path = "", .id = "", .is_main = 1};

static __thread char error_text[1024];
static __thread int error_pending;     /* 1: ours, 2: the real loader's */

static int env_flag(const char *name, int *cache)
{
    if (*cache < 0) {
        const char *v = getenv(name);
        *cache = v && *v && strcmp(v, "0") != 0;
    }
    return *cache;
}

static int debug_cache = -1, fallback_cache = -1;
#define DEBUG_ON() env_flag("DLSTATIC_DEBUG", &debug_cache)
#define FALLBACK_ON() env_flag("DLSTATIC_FALLBACK", &fallback_cache)

static void debug(const char *fmt, ...)
{
    if (!DEBUG_ON())
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("dlstatic: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    error_pending = 1;
}

void dlstatic_register(struct dlstatic_module *module)
{
    pthread_mutex_lock(&registry_lock);
    if (module->is_main) {
        main_module = module;
    } else {
        module->next = NULL;
        if (modules_tail)
            modules_tail->next = module;
        else
            modules_head = module;
        modules_tail = module;
    }
    pthread_mutex_unlock(&registry_lock);
}

static struct dlstatic_module *the_main(void)
{
    return main_module ? main_module : &empty_main;
}

static const char *main_name(void)
{
    return program_invocation_name ? program_invocation_name : "";
}

static const char *display_name(const struct dlstatic_module *m)
{
    if (m->is_main)
        return main_name();
    return m->opened_as ? m->opened_as : m->path;
}

/* ---------------------------------------------------------------- md5 (RFC 1321) */

struct md5 {
    uint32_t a, b, c, d;
    uint64_t length;
    unsigned char block[64];
    size_t used;
};

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
static const unsigned char md5_r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                        5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_block(struct md5 *s, const unsigned char *p)
{
    uint32_t w[16], a = s->a, b = s->b, c = s->c, d = s->d;
    for (int i = 0; i < 16; i++)
        w[i] = p[4 * i] | p[4 * i + 1] << 8 | p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) f = (b & c) | (~b & d), g = i;
        else if (i < 32) f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
        else if (i < 48) f = b ^ c ^ d, g = (3 * i + 5) % 16;
        else f = c ^ (b | ~d), g = (7 * i) % 16;
        uint32_t t = d;
        d = c;
        c = b;
        uint32_t x = a + f + md5_k[i] + w[g];
        b = b + (x << md5_r[i] | x >> (32 - md5_r[i]));
        a = t;
    }
    s->a += a, s->b += b, s->c += c, s->d += d;
}

static void md5_init(struct md5 *s)
{
    s->a = 0x67452301, s->b = 0xefcdab89, s->c = 0x98badcfe, s->d = 0x10325476;
    s->length = 0, s->used = 0;
}

static void md5_update(struct md5 *s, const unsigned char *p, size_t n)
{
    s->length += n;
    while (n) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, take);
        s->used += take, p += take, n -= take;
        if (s->used == 64) {
            md5_block(s, s->block);
            s->used = 0;
        }
    }
}

static void md5_hex(struct md5 *s, char out[33])
{
    uint64_t bits = s->length * 8;
    unsigned char pad = 0x80, zero = 0, len[8];
    md5_update(s, &pad, 1);
    while (s->used != 56)
        md5_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (8 * i));
    md5_update(s, len, 8);
    uint32_t words[4] = {s->a, s->b, s->c, s->d};
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", (words[i / 4] >> (8 * (i % 4))) & 0xff);
}

/* ------------------------------------------------------------- finding modules */

static int is_alias_of_main(const char *name)
{
    const struct dlstatic_module *m = the_main();
    for (unsigned i = 0; i < m->naliases; i++)
        if (strcmp(m->aliases[i], name) == 0)
            return 1;
    return 0;
}

static struct dlstatic_module *find_by_id(const char *id)
{
    for (struct dlstatic_module *m = modules_head; m; m = m->next)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

/* The one module whose soname, else whose basename, is `name`. Sets *count to the
 * number of candidates when there is not exactly one. */
static struct dlstatic_module *find_by_name(const char *name, int *count)
{
    struct dlstatic_module *found = NULL;
    *count = 0;
    for (struct dlstatic_module *m = modules_head; m; m = m->next)
        if (m->soname && strcmp(m->soname, name) == 0)
            found = m, ++*count;
    if (*count == 0)
        for (struct dlstatic_module *m = modules_head; m; m = m->next)
            if (strcmp(m->so_name, name) == 0)
                found = m, ++*count;
    return *count == 1 ? found : NULL;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

enum file_kind { FILE_ABSENT, FILE_EMPTY, FILE_STUB, FILE_ELF, FILE_OTHER };

/* What is at `path`; for a stub the id it holds, for an ELF file its md5. */
static enum file_kind inspect_file(const char *path, char id[33])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FILE_ABSENT;
    unsigned char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    enum file_kind kind = FILE_OTHER;
    if (n == 0) {
        kind = FILE_EMPTY;
    } else if (n >= 4 && memcmp(buf, "\177ELF", 4) == 0) {
        struct md5 s;
        md5_init(&s);
        while (n > 0) {
            md5_update(&s, buf, (size_t)n);
            n = read(fd, buf, sizeof buf);
        }
        md5_hex(&s, id);
        kind = n < 0 ? FILE_OTHER : FILE_ELF;
    } else if (n >= 32 && n <= 64) {
        /* stub: 32 hex digits, optionally followed by whitespace */
        int ok = 1;
        for (int i = 0; i < 32; i++)
            ok &= (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
        for (ssize_t i = 32; i < n; i++)
            ok &= buf[i] == '\n' || buf[i] == ' ' || buf[i] == '\r' || buf[i] == '\t';
        if (ok) {
            memcpy(id, buf, 32);
            id[32] = 0;
            kind = FILE_STUB;
        }
    }
    close(fd);
    return kind;
}

/* Resolve `file` to a module, or set the error text and return NULL. */
static struct dlstatic_module *resolve(const char *file)
{
    if (file == NULL || is_alias_of_main(file) || is_alias_of_main(base_name(file)))
        return the_main();

    const char *cannot = "cannot open shared object file";
    int count = 0;
    if (strchr(file, '/')) {
        char id[33] = "";
        switch (inspect_file(file, id)) {
        case FILE_STUB: {
            struct dlstatic_module *m = find_by_id(id);
            if (!m)
                set_error("%s: %s: stub names module %s, which is not linked into this binary", file, cannot, id);
            return m;
        }
        case FILE_ELF: {
            struct dlstatic_module *m = find_by_id(id);
            if (!m)
                set_error("%s: %s: not linked into this binary (no linked module has md5 %s)", file, cannot, id);
            return m;
        }
        case FILE_OTHER:
            set_error("%s: invalid ELF header (neither a shared object nor a dlstatic stub)", file);
            return NULL;
        case FILE_ABSENT:
        case FILE_EMPTY:
            break;
        }
    }
    struct dlstatic_module *m = find_by_name(base_name(file), &count);
    if (!m && count > 1)
        set_error("%s: %s: %d linked modules are named %s; open a stub or the original file to choose",
                  file, cannot, count, base_name(file));
    else if (!m)
        set_error("%s: %s: not linked into this binary", file, cannot);
    return m;
}

static int is_registered(const void *handle)
{
    if (handle == the_main())
        return 1;
    for (struct dlstatic_module *m = modules_head; m; m = m->next)
        if (m == handle)
            return 1;
    return 0;
}

/* For ctypes.util.find_library in a static interpreter, where no ldconfig cache or
 * compiler exists: the soname ("libc.so.6") of the library `name` ("c") if it is
 * linked in, as a system library or as a module; else NULL. */
const char *dlstatic_soname_for(const char *name)
{
    char prefix[256];
    int n = snprintf(prefix, sizeof prefix, "lib%s.so", name);
    if (n <= 0 || (size_t)n >= sizeof prefix)
        return NULL;
    const struct dlstatic_module *m = the_main();
    for (unsigned i = 0; i < m->naliases; i++)
        if (strncmp(m->aliases[i], prefix, (size_t)n) == 0 && (m->aliases[i][n] == '.' || !m->aliases[i][n]))
            return m->aliases[i];
    for (struct dlstatic_module *mod = modules_head; mod; mod = mod->next) {
        const char *candidate = mod->soname ? mod->soname : mod->so_name;
        if (strncmp(candidate, prefix, (size_t)n) == 0 && (candidate[n] == '.' || !candidate[n]))
            return candidate;
    }
    return NULL;
}

/* ------------------------------------------------------------------ dl* family */

void *dlopen(const char *file, int mode)
{
    struct dlstatic_module *m = resolve(file);
    void *handle = m;
    if (m && !m->is_main) {
        pthread_mutex_lock(&registry_lock);
        if (m->refcount == 0 && (mode & RTLD_NOLOAD)) {
            handle = NULL; /* glibc sets no error for a NOLOAD miss */
        } else {
            if (m->refcount++ == 0) {
                free(m->opened_as);
                m->opened_as = strdup(file);
            }
            if (mode & RTLD_GLOBAL)
                m->global = 1;
        }
        pthread_mutex_unlock(&registry_lock);
    } else if (!m && FALLBACK_ON()) {
        handle = __dlopen(file, mode);
        if (!handle)
            error_pending = 2;
    }
    debug("dlopen(\"%s\", 0x%x) -> %p%s%s", file ? file : "NULL", mode, handle,
          m ? " " : "", m ? (m->is_main ? "[main program]" : m->id) : "");
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
    int rc = 0;
    if (!is_registered(handle)) {
        if (FALLBACK_ON() && handle)
            return __dlclose(handle);
        set_error("shared object not open");
        rc = -1;
    } else {
        struct dlstatic_module *m = handle;
        pthread_mutex_lock(&registry_lock);
        if (!m->is_main) {
            if (m->refcount > 0)
                m->refcount--;
            else
                set_error("%s: shared object not open", display_name(m)), rc = -1;
        }
        pthread_mutex_unlock(&registry_lock);
    }
    debug("dlclose(%p) -> %d", handle, rc);
    return rc;
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

/* glibc's global scope: the main program, then modules opened with RTLD_GLOBAL. */
static const struct dlstatic_symbol *lookup_global(const char *name)
{
    const struct dlstatic_symbol *s = lookup(the_main(), name);
    for (struct dlstatic_module *m = modules_head; !s && m; m = m->next)
        if (m->global && m->refcount > 0)
            s = lookup(m, name);
    return s;
}

static void *symbol_address(const struct dlstatic_symbol *s)
{
    return s->tls_addr ? s->tls_addr() : s->addr;
}

void *dlsym(void *handle, const char *name)
{
    const struct dlstatic_symbol *s = NULL;
    const char *scope;
    if (handle == RTLD_DEFAULT || handle == RTLD_NEXT || handle == the_main()) {
        s = lookup_global(name);
        scope = main_name();
    } else if (is_registered(handle)) {
        const struct dlstatic_module *m = handle;
        /* a module's own symbols, then those of its dependencies, which live in the
         * main program now */
        s = lookup(m, name);
        if (!s)
            s = lookup(the_main(), name);
        scope = display_name(m);
    } else if (FALLBACK_ON()) {
        void *addr = __dlsym(handle, name);
        if (!addr)
            error_pending = 2;
        return addr;
    } else {
        set_error("dlsym: invalid handle %p", handle);
        return NULL;
    }
    void *addr = s ? symbol_address(s) : NULL;
    if (!s)
        set_error("%s: undefined symbol: %s", scope, name);
    debug("dlsym(%p, \"%s\") -> %p", handle, name, addr);
    return addr;
}

void *dlvsym(void *handle, const char *name, const char *version)
{
    (void)version; /* modules are linked without symbol versions */
    return dlsym(handle, name);
}

char *dlerror(void)
{
    int pending = error_pending;
    error_pending = 0;
    if (pending == 2)
        return __dlerror();
    return pending ? error_text : NULL;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(const struct dlstatic_symbol *const *)a)->addr;
    uintptr_t y = (uintptr_t)(*(const struct dlstatic_symbol *const *)b)->addr;
    return x < y ? -1 : x > y;
}

/* The module's non-TLS symbols sorted by address, built on first use. Caller holds
 * registry_lock. */
static void sort_by_address(struct dlstatic_module *m)
{
    if (m->by_addr || m->nsymbols == 0)
        return;
    const struct dlstatic_symbol **v = malloc(m->nsymbols * sizeof *v);
    if (!v)
        return;
    unsigned n = 0;
    for (unsigned i = 0; i < m->nsymbols; i++)
        if (!m->symbols[i].tls_addr)
            v[n++] = &m->symbols[i];
    qsort(v, n, sizeof *v, by_address);
    m->nby_addr = n;
    m->by_addr = v;
}

/* The symbol of `m` at or nearest below `addr`, or NULL. */
static const struct dlstatic_symbol *nearest_below(const struct dlstatic_module *m, uintptr_t addr)
{
    unsigned lo = 0, hi = m->nby_addr;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if ((uintptr_t)m->by_addr[mid]->addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? m->by_addr[lo - 1] : NULL;
}

int dladdr(const void *addr, Dl_info *info)
{
    uintptr_t a = (uintptr_t)addr;
    const struct dlstatic_symbol *best = NULL;
    struct dlstatic_module *owner = NULL;
    int best_contains = 0;
    pthread_mutex_lock(&registry_lock);
    for (struct dlstatic_module *m = the_main(); m; m = m == the_main() ? modules_head : m->next) {
        sort_by_address(m);
        const struct dlstatic_symbol *s = nearest_below(m, a);
        if (!s)
            continue;
        int contains = a < (uintptr_t)s->addr + (s->size ? s->size : 1);
        /* a symbol that contains the address wins; otherwise the nearest one below */
        if (!best || contains > best_contains ||
            (contains == best_contains && (uintptr_t)s->addr > (uintptr_t)best->addr))
            best = s, owner = m, best_contains = contains;
    }
    pthread_mutex_unlock(&registry_lock);
    if (!best) {
        debug("dladdr(%p) -> 0", addr);
        return 0;
    }
    info->dli_fname = display_name(owner);
    info->dli_fbase = owner->is_main || owner->nby_addr == 0 ? (void *)__ehdr_start : owner->by_addr[0]->addr;
    info->dli_sname = best_contains && best->exported ? best->name : NULL;
    info->dli_saddr = info->dli_sname ? best->addr : NULL;
    debug("dladdr(%p) -> %s %s", addr, info->dli_fname, info->dli_sname ? info->dli_sname : "?");
    return 1;
}

int dlinfo(void *handle, int request, void *arg)
{
    if (!is_registered(handle)) {
        set_error("dlinfo: invalid handle %p", handle);
        return -1;
    }
    struct dlstatic_module *m = handle;
    const char *name = display_name(m);
    switch (request) {
    case RTLD_DI_LINKMAP:
        m->map.l_addr = 0;
        m->map.l_name = (char *)name;
        *(struct link_map **)arg = &m->map;
        return 0;
    case RTLD_DI_ORIGIN: {
        const char *slash = strrchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : 0;
        memcpy(arg, name, n);
        ((char *)arg)[n] = 0;
        if (!slash)
            strcpy(arg, ".");
        return 0;
    }
    default:
        set_error("dlinfo: request %d is not supported by dlstatic", request);
        return -1;
    }
}
