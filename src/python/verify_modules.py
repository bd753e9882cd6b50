# Run by `dlstatic verify` with the static interpreter inside the payload root.
# stdin: OUT.km/manifest.json. stdout: one JSON object per module, then per smoke test:
# {"name": …, "ok": bool, "reason": …}. Every module is imported, then every export
# it registered is looked up through ctypes (dlopen of its stub + dlsym); then each
# package's smoke test runs.
import importlib
import json
import sys

manifest = json.load(sys.stdin)
try:
    import ctypes
except Exception as e:  # reported per module below
    ctypes = None
    ctypes_error = f"import ctypes: {e}"

for module in manifest["modules"]:
    reason = None
    note = ""
    # a shared library without PyInit_<name> is not imported but loaded with ctypes
    # (a package's bundled C library): only dlopen/dlsym are checked for it
    if "PyInit_" + module["name"].rpartition(".")[2] in module["exports"]:
        try:
            importlib.import_module(module["name"])
        except Exception as e:
            reason = f"import: {type(e).__name__}: {e}"
    else:
        note = "C library (no PyInit_): dlopen and dlsym checked"
    if reason is None and ctypes is None:
        reason = ctypes_error
    if reason is None:
        try:
            lib = ctypes.CDLL(module["stub"])
            missing = [name for name in module["exports"] if not hasattr(lib, name)]
            if missing:
                reason = f"dlsym failed for {len(missing)} exports: {', '.join(missing[:5])}"
        except OSError as e:
            reason = f"dlopen: {e}"
    print(json.dumps({"name": module["name"], "ok": reason is None, "reason": reason or note}), flush=True)

for package, code in sorted(manifest.get("smoke_tests", {}).items()):
    try:
        exec(compile(code, f"smoke/{package}.py", "exec"), {"__name__": "__smoke__"})
        reason = None
    except BaseException as e:
        reason = f"{type(e).__name__}: {e}"
    print(json.dumps({"name": f"smoke test {package}", "ok": reason is None, "reason": reason or ""}), flush=True)
