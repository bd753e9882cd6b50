# dlstatic single-file importer. Run by the launcher (src/deploy/launcher.c) between
# CPython's core and main init phases, as module _dlstatic_boot, with EXE (this
# executable) and INDEX (offset, size of the marshalled start-up index) in its globals.
#
# The Python tree (stdlib, site-packages, the app: one root) is stored after the ELF
# image (layout: src/deploy/single.rs). MODULES maps each module to (is_package, source
# offset, size, bytecode offset, size), EXTENSIONS each extension module to its path in
# the tree, whose basename the dlopen shim finds in its registry; files() (every file's
# offset and size) is loaded on first use. Paths look like EXE/numpy/__init__.py, so
# __file__ and tracebacks name the executable and the file. An in-memory index
# replaced zipimport: reading a 12,000-entry zip directory costs zipimport ~120 ms at
# every start (docs/deploy.md).
import _imp
import marshal
import posix
import sys

_fd = posix.open(EXE, posix.O_RDONLY | posix.O_CLOEXEC)
_index = marshal.loads(posix.pread(_fd, INDEX[1], INDEX[0]))
MODULES, EXTENSIONS, _FILES_AT = _index["modules"], _index["extensions"], _index["files"]
ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec
_PREFIX = EXE + "/"
_files = None


def files():
    """Path relative to the root -> (offset, size), for every file of the tree."""
    global _files
    if _files is None:
        _files = marshal.loads(posix.pread(_fd, _FILES_AT[1], _FILES_AT[0]))
    return _files


def read(rel):
    """The bytes of the tree file at `rel` (KeyError if absent)."""
    offset, size = files()[rel]
    return posix.pread(_fd, size, offset)


def relative(path):
    """`rel` for a path inside the executable (EXE/a/b), else None."""
    return path[len(_PREFIX) :] if path.startswith(_PREFIX) else None


def source_path(fullname, is_package):
    path = fullname.replace(".", "/")
    return path + "/__init__.py" if is_package else path + ".py"


class TreeLoader:
    """Loads modules, extension modules and package data from the tree."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        entry = MODULES.get(fullname)
        if entry is not None:
            is_package = entry[0]
            origin = _PREFIX + source_path(fullname, is_package)
            spec = ModuleSpec(fullname, cls, origin=origin, is_package=is_package)
            if is_package:
                spec.submodule_search_locations = [origin.rpartition("/")[0]]
            spec.has_location = True
            return spec
        if fullname in EXTENSIONS:
            spec = ModuleSpec(fullname, cls, origin=_PREFIX + EXTENSIONS[fullname])
            spec.has_location = True
            return spec
        return None

    @classmethod
    def create_module(cls, spec):
        if spec.name not in EXTENSIONS:
            return None
        # EXE/…/x.so cannot be opened (EXE is a file): the shim then finds the module by
        # its basename in the registry
        return _imp.create_dynamic(spec)

    @classmethod
    def exec_module(cls, module):
        if module.__spec__.name in EXTENSIONS:
            _imp.exec_dynamic(module)
        else:
            exec(cls.get_code(module.__spec__.name), module.__dict__)

    @classmethod
    def get_code(cls, fullname):
        is_package, source_offset, source_size, offset, size = MODULES[fullname]
        filename = _PREFIX + source_path(fullname, is_package)
        if not size:
            source = posix.pread(_fd, source_size, source_offset)
            return compile(source, filename, "exec", dont_inherit=True)
        code = marshal.loads(posix.pread(_fd, size - 16, offset + 16))
        # the .pyc names the build's path; tracebacks should name EXE/<path>
        _imp._fix_co_filename(code, filename)
        return code

    @classmethod
    def get_source(cls, fullname):
        entry = MODULES.get(fullname)
        if entry is None:
            return None
        return posix.pread(_fd, entry[2], entry[1]).decode("utf-8", "replace")

    @classmethod
    def is_package(cls, fullname):
        return bool(MODULES[fullname][0])

    @classmethod
    def get_filename(cls, fullname):
        return cls.find_spec(fullname).origin

    @classmethod
    def get_data(cls, path):
        rel = relative(path)
        if rel not in files():
            raise FileNotFoundError(path)
        return read(rel)

    @classmethod
    def get_resource_reader(cls, fullname):
        return _Resources(fullname.replace(".", "/"))

    @classmethod
    def find_distributions(cls, context=None):
        from _dlstatic_tree import distributions

        return distributions(context)


class _Resources:
    def __init__(self, directory):
        self.directory = directory

    def files(self):
        from _dlstatic_tree import Node

        return Node(self.directory)


def _excepthook(kind, value, traceback):
    """CPython's own hook reads source lines from files by name; the traceback module
    asks the loader (linecache), which finds them in the tree."""
    from traceback import print_exception

    print_exception(kind, value, traceback)


sys.meta_path.insert(0, TreeLoader)
sys.excepthook = _excepthook
