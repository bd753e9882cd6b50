#!/usr/bin/env bash
# `make bench-libc-exports`: what forcing glibc's public functions into the link costs
# (ProgramSettings::libc_exports, on by default; `--no-libc-exports` turns it off).
# Builds the stdlib-only static interpreter both ways (CPython cached, so two links) and
# the libc_exports fixture's host, and compares file sizes, loadable segment sizes,
# main-table entries and `-c pass` start-up. Writes bench/libc-exports-results.md.
#
#   BENCH_RUNS=20   hyperfine runs per command (after 3 warm-ups)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-20}
WORK=${BENCH_WORK:-$PWD/target/tmp/bench-libc-exports}
DLSTATIC=$PWD/target/release/dlstatic
mkdir -p "$WORK"
cargo build --release --bin dlstatic >&2
"$DLSTATIC" build --out "$WORK/with" >&2
"$DLSTATIC" build --out "$WORK/without" --no-libc-exports >&2

# the fixture's host: a small C program and one plugin
fixture=$PWD/tests/fixtures/libc_exports
(
    cd "$WORK"
    rm -rf db p && cc -c "$fixture/host.c" -o host.o
    FIXTURE=$fixture "$DLSTATIC" capture --db db -- \
        sh -c 'mkdir -p p && $CC -fPIC -c $FIXTURE/plugin.c -o plugin.o && $CC -shared plugin.o -o p/plugin.so'
    "$DLSTATIC" link --db db -o host-with host.o
    "$DLSTATIC" link --db db -o host-without --no-libc-exports host.o
) >&2

hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$WORK/pass.json" \
    -n with "$WORK/with/bin/python3.11 -c pass" \
    -n without "$WORK/without/bin/python3.11 -c pass" >&2

python3 - "$WORK" <<'PY' | tee bench/libc-exports-results.md
import json, os, re, statistics, subprocess, sys
work = sys.argv[1]

def loaded(path):
    """Bytes of the PT_LOAD segments' memory images (what a process maps)."""
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[5], 16) for line in out.splitlines() if line.split()[:1] == ["LOAD"])

def table(km):
    text = open(os.path.join(km, "main.symbols.c")).read()
    return len(re.findall(r'^    \{"', text, re.M))

print("# libc exports: the cost of glibc's whole public function set\n")
print("`dlopen(NULL)`/`dlopen(\"libc.so.6\")` offer every default-version function of libc.so.6")
print("that libc.a defines (plan/libc_exports.rs). One run of bench/libc_exports.sh.\n")
print("| program | with | without | with / without |")
print("|---|---|---|---|")
rows = [
    ("stdlib python3.11: file", f"{work}/with/bin/python3.11", f"{work}/without/bin/python3.11", os.path.getsize),
    ("stdlib python3.11: loaded segments", f"{work}/with/bin/python3.11", f"{work}/without/bin/python3.11", loaded),
    ("fixture host: file", f"{work}/host-with", f"{work}/host-without", os.path.getsize),
    ("fixture host: loaded segments", f"{work}/host-with", f"{work}/host-without", loaded),
    ("stdlib python3.11: main-table symbols", f"{work}/with.km/link", f"{work}/without.km/link", table),
    ("fixture host: main-table symbols", f"{work}/host-with.km", f"{work}/host-without.km", table),
]
for label, a, b, measure in rows:
    x, y = measure(a), measure(b)
    unit = "" if measure is table else " B"
    print(f"| {label} | {x:,}{unit} | {y:,}{unit} | {x / y:.3f}x |")
results = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(f"{work}/pass.json"))["results"]}
w, wo = results["with"], results["without"]
print(f"| stdlib python3.11: `-c pass` median | {w:.1f} ms | {wo:.1f} ms | {w / wo:.3f}x |")
load = open("/proc/loadavg").read().split()[0]
print(f"\n(load average {load} at the end: 2 cores shared; wall times move run to run.)")
PY
