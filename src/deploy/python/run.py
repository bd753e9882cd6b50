# dlstatic multi-call entry (module _dlstatic_run). The launcher runs
# `python -m _dlstatic_run NAME ARGS...` when the interpreter is started under a name
# other than python*: a console script's link (bin/gunicorn), `bootstrap` (an AWS
# Lambda custom runtime) or `init` (PID 1 of an initramfs).
import sys


def console_script(name):
    """Run the console_scripts entry point `name` of an installed distribution."""
    from importlib.metadata import entry_points

    found = entry_points(group="console_scripts", name=name)
    if not found:
        sys.exit(f"{name}: no console script of that name is installed, and the interpreter runs only as python*, bootstrap or init")
    return next(iter(found)).load()()


def main():
    name = sys.argv[1]
    sys.argv = [sys.orig_argv[0], *sys.argv[2:]]
    if name == "bootstrap":
        from _dlstatic_lambda import serve

        serve()
    elif name == "init":
        import runpy

        from _dlstatic_config import ENTRY

        sys.argv[0] = ENTRY
        runpy.run_module(ENTRY, run_name="__main__", alter_sys=True)
    else:
        sys.exit(console_script(name))


main()
