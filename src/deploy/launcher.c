/* dlstatic launcher: wraps CPython's main() (the interpreter is linked with
 * -Wl,--wrap=main, see src/deploy/launcher.rs). It changes nothing for a plain
 * `python3.11` in a payload directory. Three cases take over:
 *
 * - single file: the executable carries its Python tree after the ELF image (a
 *   trailer at the very end says where, see src/deploy/single.rs). Python is
 *   initialised in two phases so the tree's importer (boot code stored in the tree)
 *   is on sys.meta_path before the main phase imports `encodings`.
 * - multi-call: run under a name that does not start with "python" (a console
 *   script's link, `bootstrap`, `init`), it runs `-m _dlstatic_run NAME ARGS...`.
 * - PID 1 (an initramfs's /init): /proc, /dev and /tmp are mounted before Python
 *   starts (hash randomisation needs /dev/urandom when the entropy pool is not ready),
 *   and the machine powers off when Python ends, since PID 1 must never exit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAILER_MAGIC "DLSTPY01"

/* The last 40 bytes of a single-file executable (little-endian offsets from the
 * start of the file). */
struct trailer {
    uint64_t index_offset, index_size, boot_offset, boot_size;
    char magic[8];
};

int __real_main(int argc, char **argv);

/* The path this program was started through, absolute (no /proc needed). */
static void executable_path(char out[PATH_MAX])
{
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    out[0] = 0;
    if (execfn && execfn[0] != '/' && getcwd(out, PATH_MAX - 2))
        strcat(out, "/");
    if (execfn)
        strncat(out, execfn, PATH_MAX - strlen(out) - 1);
}

static int read_trailer(const char *exe, struct trailer *t)
{
    int fd = open(exe, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    off_t end = lseek(fd, 0, SEEK_END);
    int ok = end >= (off_t)sizeof *t && pread(fd, t, sizeof *t, end - (off_t)sizeof *t) == (ssize_t)sizeof *t &&
             memcmp(t->magic, TRAILER_MAGIC, 8) == 0;
    close(fd);
    return ok;
}

/* Run the tree's boot code as module _dlstatic_boot, with EXE and the index location
 * in its globals; it installs the importer. */
static int run_boot_code(const char *exe, const struct trailer *t)
{
    char *source = malloc(t->boot_size + 1);
    int fd = open(exe, O_RDONLY | O_CLOEXEC);
    int ok = source && fd >= 0 &&
             pread(fd, source, t->boot_size, (off_t)t->boot_offset) == (ssize_t)t->boot_size;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        fprintf(stderr, "%s: cannot read the embedded Python tree\n", exe);
        free(source);
        return 0;
    }
    source[t->boot_size] = 0;
    PyObject *module = PyImport_AddModule("_dlstatic_boot");
    PyObject *globals = module ? PyModule_GetDict(module) : NULL;
    /* named as a file of the tree, so tracebacks through the importer say where */
    char filename[PATH_MAX + 32];
    snprintf(filename, sizeof filename, "%s/_dlstatic_boot.py", exe);
    PyObject *code = NULL, *result = NULL;
    if (globals && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0 &&
        PyDict_SetItemString(globals, "EXE", PyUnicode_DecodeFSDefault(exe)) == 0 &&
        PyDict_SetItemString(globals, "INDEX", Py_BuildValue("(KK)", t->index_offset, t->index_size)) == 0 &&
        (code = Py_CompileString(source, filename, Py_file_input)))
        result = PyEval_EvalCode(code, globals, globals);
    Py_XDECREF(code);
    free(source);
    if (!result)
        PyErr_Print();
    Py_XDECREF(result);
    return result != NULL;
}

static int run_python(int argc, char **argv, const char *exe, const struct trailer *single)
{
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    PyStatus status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status) && single) {
        char home[PATH_MAX];
        strcpy(home, exe);
        *strrchr(home, '/') = 0;
        config._init_main = 0;
        config.module_search_paths_set = 1;
        config.pathconfig_warnings = 0;
        status = PyConfig_SetBytesString(&config, &config.home, home[0] ? home : "/");
    }
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);
    if (single) {
        if (!run_boot_code(exe, single))
            return 1;
        status = _Py_InitializeMain();
        if (PyStatus_Exception(status))
            Py_ExitStatusException(status);
    }
    return Py_RunMain();
}

static void mount_early_filesystems(void)
{
    static const char *const table[][3] = {
        {"proc", "/proc", "proc"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"}};
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) {
        mkdir(table[i][1], 0755);
        if (mount(table[i][0], table[i][1], table[i][2], 0, NULL) != 0)
            fprintf(stderr, "dlstatic init: mounting %s: %m\n", table[i][1]);
    }
}

int __wrap_main(int argc, char **argv)
{
    char exe[PATH_MAX];
    struct trailer trailer;
    executable_path(exe);
    const char *slash = strrchr(argv[0], '/');
    const char *name = slash ? slash + 1 : argv[0];
    int single = read_trailer(exe, &trailer);
    int multicall = strncmp(name, "python", 6) != 0;
    /* only as /init: a container's entry point is PID 1 too */
    int init = getpid() == 1 && strcmp(name, "init") == 0;
    if (!single && !multicall && !init)
        return __real_main(argc, argv);
    if (init)
        mount_early_filesystems();

    char **args = argv;
    if (multicall) {
        args = calloc((size_t)argc + 4, sizeof *args);
        args[0] = argv[0];
        args[1] = "-m";
        args[2] = "_dlstatic_run";
        args[3] = (char *)name;
        memcpy(args + 4, argv + 1, (size_t)argc * sizeof *args);
        argc += 3;
    }
    int code = run_python(argc, args, exe, single ? &trailer : NULL);
    if (!init)
        return code;
    printf("dlstatic init: exit status %d; powering off\n", code);
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}
