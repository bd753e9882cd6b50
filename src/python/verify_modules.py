# Run by `dlstatic verify` with the static interpreter inside the payload root.
# stdin: OUT.km/manifest.json. stdout: one JSON object per module, then per smoke test:
# {"name": …, "ok": bool, "warning": bool, "reason": …}. Every module is imported,
# then every export it registered is looked up through ctypes (dlopen of its stub +
# dlsym); then each package's smoke test runs.
import importlib
import importlib.metadata
import json
import sys


def missing_dependency(error):
    """The top-level name an import failed to find, when no installed distribution and
    no stdlib module provides it: a package's optional or test-only dependency that was
    not asked for (greenlet's tests import psutil), not a failure of the static link."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.partition(".")[0]
    if top in sys.stdlib_module_names or top in importlib.metadata.packages_distributions():
        return None
    return top

def has_symbol(lib, name):
    # lib[name], not hasattr: ctypes refuses attribute names that start and end with
    # `__` without asking dlsym (Cython exports `__pyx_…___init__`)
    try:
        lib[name]
        return True
    except AttributeError:
        return False


manifest = json.load(sys.stdin)
try:
    import ctypes
except Exception as e:  # reported per module below
    ctypes = None
    ctypes_error = f"import ctypes: {e}"

for module in manifest["modules"]:
    reason = None
    note = ""
    warning = False
    # a shared library without PyInit_<name> is not imported but loaded with ctypes
    # (a package's bundled C library): only dlopen/dlsym are checked for it
    if "PyInit_" + module["name"].rpartition(".")[2] in module["exports"]:
        try:
            importlib.import_module(module["name"])
        except Exception as e:
            missing = missing_dependency(e)
            if missing:
                warning, note = True, f"imports {missing}, which no installed package provides"
            else:
                reason = f"import: {type(e).__name__}: {e}"
    else:
        note = "C library (no PyInit_): dlopen and dlsym checked"
    if warning:
        pass
    elif reason is None and ctypes is None:
        reason = ctypes_error
    if reason is None and ctypes is not None:
        try:
            lib = ctypes.CDLL(module["stub"])
            missing = [name for name in module["exports"] if not has_symbol(lib, name)]
            if missing:
                reason = f"dlsym failed for {len(missing)} exports: {', '.join(missing[:5])}"
        except OSError as e:
            reason = f"dlopen: {e}"
    print(json.dumps({"name": module["name"], "ok": reason is None, "warning": warning, "reason": reason or note}), flush=True)

for package, code in sorted(manifest.get("smoke_tests", {}).items()):
    try:
        exec(compile(code, f"smoke/{package}.py", "exec"), {"__name__": "__smoke__"})
        reason = None
    except BaseException as e:
        reason = f"{type(e).__name__}: {e}"
    print(json.dumps({"name": f"smoke test {package}", "ok": reason is None, "reason": reason or ""}), flush=True)
