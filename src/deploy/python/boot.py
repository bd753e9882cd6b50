# dlstatic single-file importer. Run by the launcher (src/deploy/launcher.c) between
# CPython's core and main init phases, as module _dlstatic_boot, with EXE (this
# executable) and INDEX (offset, size of the marshalled index) in its globals.
#
# The Python tree (stdlib, site-packages, the app: one root) is stored after the ELF
# image. The index maps each file (path relative to the root) to (offset, size), each
# module to (is_package, source path, bytecode path), and each extension module to its
# path in the tree, whose basename the dlopen shim finds in its registry. Paths look like
# EXE/numpy/__init__.py, so __file__ and tracebacks name the executable and the file.
# An in-memory index replaced zipimport: reading a 12,000-entry zip directory costs
# zipimport ~120 ms at every start (DESIGN notes).
import _imp
import marshal
import posix
import sys

_fd = posix.open(EXE, posix.O_RDONLY | posix.O_CLOEXEC)
_index = marshal.loads(posix.pread(_fd, INDEX[1], INDEX[0]))
FILES, MODULES, EXTENSIONS = _index["files"], _index["modules"], _index["extensions"]
ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec
_PREFIX = EXE + "/"


def read(rel):
    """The bytes of the tree file at `rel` (KeyError if absent)."""
    offset, size = FILES[rel]
    return posix.pread(_fd, size, offset)


def relative(path):
    """`rel` for a path inside the executable (EXE/a/b), else None."""
    return path[len(_PREFIX) :] if path.startswith(_PREFIX) else None


class TreeLoader:
    """Loads modules, extension modules and package data from the tree."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        entry = MODULES.get(fullname)
        if entry is not None:
            is_package, source, _ = entry
            spec = ModuleSpec(fullname, cls, origin=_PREFIX + source, is_package=is_package)
            if is_package:
                spec.submodule_search_locations = [_PREFIX + source.rpartition("/")[0]]
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
        _, source, bytecode = MODULES[fullname]
        if not bytecode:
            return compile(read(source), _PREFIX + source, "exec", dont_inherit=True)
        code = marshal.loads(read(bytecode)[16:])
        # the .pyc names the build's path; tracebacks should name EXE/<path>
        _imp._fix_co_filename(code, _PREFIX + source)
        return code

    @classmethod
    def get_source(cls, fullname):
        entry = MODULES.get(fullname)
        if entry is None or entry[1] not in FILES:
            return None
        return read(entry[1]).decode("utf-8", "replace")

    @classmethod
    def is_package(cls, fullname):
        return MODULES[fullname][0]

    @classmethod
    def get_filename(cls, fullname):
        return cls.find_spec(fullname).origin

    @classmethod
    def get_data(cls, path):
        rel = relative(path)
        if rel not in FILES:
            raise FileNotFoundError(path)
        return read(rel)

    @classmethod
    def get_resource_reader(cls, fullname):
        source = MODULES[fullname][1]
        return _Resources(source.rpartition("/")[0])

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
