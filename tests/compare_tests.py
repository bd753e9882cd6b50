#!/usr/bin/env python3
"""Run a test suite with the static interpreter and with a dynamic interpreter of the same
sources, and compare the outcomes test case by test case.

usage: compare_tests.py cpython STATIC_PYTHON DYNAMIC_PYTHON [TEST ...]
       compare_tests.py pytest  STATIC_PYTHON DYNAMIC_PYTHON [PYTEST ARGS ...]

`cpython` runs CPython's regrtest (`-m test -j2`; default: the tests below), `pytest` runs
pytest (for numpy: `--pyargs numpy.linalg …`). Set PYTHONPATH for the interpreters that
need it (`DYNAMIC_PYTHONPATH` is added for the dynamic one only; `COMPARE_SUMMARY=FILE`
also writes both interpreters' counts and the unexpected differences there as JSON). Every test case's
outcome (passed, failed, error, skipped) is compared; both summaries and every
difference are printed. Exit 1 if a difference is not listed in EXPECTED (with its
reason), or if a run produced no results.
"""
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

DEFAULT_CPYTHON_TESTS = [
    "test_ctypes", "test_importlib", "test_sqlite3", "test_ssl", "test_json", "test_decimal",
    "test_zlib", "test_hashlib", "test_struct", "test_datetime", "test_unicodedata",
    "test_codecs", "test_capi",
]

# Differences that follow from what a static interpreter is, each with its reason.
EXPECTED = {
    "*.ctypes.test.test_find.Test_OpenGL_libs.*":
        "libGL/libGLU are system libraries that are not linked into the static interpreter, "
        "which by design loads no shared object (the tests skip, as on a machine without GL)",
}


def expected_reason(name):
    return next((why for pattern, why in EXPECTED.items() if fnmatch.fnmatch(name, pattern)), None)


def command(kind, python, args, xml):
    if kind == "cpython":
        return [python, "-m", "test", "-j2", "--junit-xml", xml, *(args or DEFAULT_CPYTHON_TESTS)]
    return [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *args]


def outcomes(kind, python, args, workdir, extra_path):
    xml = os.path.join(workdir, "results.xml")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra_path, env.get("PYTHONPATH")]))
    run = subprocess.run(command(kind, python, args, xml), cwd=workdir, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    summary = [line for line in run.stdout.splitlines()
               if line.startswith(("== Tests result", "Total tests", "Total test files")) or " passed" in line[-60:]]
    if not os.path.exists(xml):
        print(run.stdout[-3000:])
        raise SystemExit(f"{python}: produced no results (exit {run.returncode})")
    result = {}
    for case in ET.parse(xml).iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        status = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                status = tag
        result[name] = status
    return result, summary[-3:]


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("cpython", "pytest"):
        raise SystemExit(__doc__)
    kind, static, dynamic, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    results, counts_of = {}, {}
    for label, python, extra in (("static", static, None), ("dynamic", dynamic, os.environ.get("DYNAMIC_PYTHONPATH"))):
        with tempfile.TemporaryDirectory() as workdir:
            results[label], summary = outcomes(kind, python, args, workdir, extra)
        counts = {}
        for status in results[label].values():
            counts[status] = counts.get(status, 0) + 1
        counts_of[label] = dict(sorted(counts.items()))
        print(f"{label:8} {python}: {len(results[label])} cases {counts_of[label]}")
        for line in summary:
            print(f"         {line}")
    differences = sorted(
        (name, results["static"].get(name, "absent"), results["dynamic"].get(name, "absent"))
        for name in set(results["static"]) | set(results["dynamic"])
        if results["static"].get(name) != results["dynamic"].get(name)
    )
    unexpected = []
    for name, s, d in differences:
        why = expected_reason(name)
        if why:
            print(f"expected  {name}: static {s}, dynamic {d} ({why})")
        else:
            unexpected.append(f"{name}: static {s}, dynamic {d}")
            print(f"DIFFERENT {unexpected[-1]}")
    print(f"{len(unexpected)} unexpected differences, {len(differences) - len(unexpected)} expected, "
          f"in {len(results['dynamic'])} test cases")
    if os.environ.get("COMPARE_SUMMARY"):
        with open(os.environ["COMPARE_SUMMARY"], "w") as f:
            json.dump({**counts_of, "unexpected": unexpected}, f, indent=1)
    raise SystemExit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
