# dlstatic multi-call entry (module _dlstatic_run). The launcher runs
# `python -m _dlstatic_run NAME ARGS...` when the interpreter is started under a name
# other than python*: `bootstrap` (an AWS Lambda custom runtime), a console script's
# name (bin/gunicorn), or any other name when the artefact has an entry module
# (`dlstatic package --entry`; `init`, PID 1 of an initramfs, always has one).
import sys

from _dlstatic_config import ENTRY


def console_script(name):
    """The console_scripts entry point `name` of an installed distribution, or None."""
    from importlib.metadata import entry_points

    found = entry_points(group="console_scripts", name=name)
    return next(iter(found)).load() if found else None


def main():
    name = sys.argv[1]
    sys.argv = [sys.orig_argv[0], *sys.argv[2:]]
    if name == "bootstrap":
        from _dlstatic_lambda import serve

        return serve()
    script = None if name == "init" else console_script(name)
    if script is not None:
        return script()
    if not ENTRY:
        sys.exit(
            f"{name}: no console script of that name is installed; name this file python* "
            "to use it as the interpreter, or package it with --entry MODULE"
        )
    import runpy

    runpy.run_module(ENTRY, run_name="__main__", alter_sys=True)


sys.exit(main())
