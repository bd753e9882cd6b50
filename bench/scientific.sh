#!/usr/bin/env bash
# `make bench-scientific`: start-up of a payload with numpy, scipy and pandas (OpenBLAS,
# Fortran, C++) against the dynamic CPython of the same build over the same installed
# packages, in one run (hyperfine medians). Every module's constructors wait for its first
# dlopen, but system archives' constructors (OpenBLAS's gotoblas_init) run at every start
# of the static binary: `-c pass` shows what they cost. Writes bench/scientific-results.md.
#
#   BENCH_RUNS=20   hyperfine runs per command (after 3 warm-ups)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-20}
WORK=${BENCH_WORK:-$PWD/target/tmp/bench-scientific}
DLSTATIC=$PWD/target/release/dlstatic
mkdir -p "$WORK"
cargo build --release --bin dlstatic >&2
"$DLSTATIC" build --modules bench/scientific.txt --out "$WORK/dist" >&2
dynamic=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dynamic_python"])' "$WORK/dist.km/manifest.json")
site=$WORK/dist.km/packages/site
static=$(ls "$WORK"/dist/bin/python3.* | grep -v config | head -1)
sync
echo 1 2>/dev/null > /proc/sys/vm/drop_caches || echo "note: page cache not dropped (not root)" >&2

codes=(pass 'import numpy' 'import scipy.linalg, scipy.optimize' 'import pandas')
for code in "${codes[@]}"; do
    name=${code//[ ,.]/-}
    hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$WORK/$name.json" \
        -n static "$static -c '$code'" \
        -n dynamic "env PYTHONPATH=$site $dynamic -c '$code'" >&2
done
modules=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["modules"]))' "$WORK/dist.km/manifest.json")
python3 - "$WORK" "$modules" "${codes[@]}" <<'PY' | tee bench/scientific-results.md
import json, statistics, sys
work, modules, *codes = sys.argv[1:]
print("# Start-up with numpy, scipy and pandas: static payload vs dynamic CPython\n")
load = open("/proc/loadavg").read().split()[0]
print(f"One run of bench/scientific.sh (`make bench-scientific`): {modules} extension modules")
print(f"linked into one binary; hyperfine medians (load average {load} at the end: wall")
print("times on a shared machine move run to run; user CPU moves less).\n")
print("| command | static | dynamic | static / dynamic | user CPU static / dynamic |")
print("|---|---|---|---|---|")
for code in codes:
    name = code.replace(" ", "-").replace(",", "-").replace(".", "-")
    results = {r["command"]: r for r in json.load(open(f"{work}/{name}.json"))["results"]}
    s, d = (statistics.median(results[k]["times"]) * 1000 for k in ("static", "dynamic"))
    us, ud = (results[k]["user"] for k in ("static", "dynamic"))
    print(f"| `-c '{code}'` | {s:.1f} ms | {d:.1f} ms | {s / d:.2f}x | {us / ud:.2f}x |")
print("""
What `-c pass` shows: the dynamic interpreter loads no OpenBLAS for `pass`, while the
static binary runs `gotoblas_init` (OpenBLAS's constructor, from Debian's `libopenblas.a`,
a system archive linked into the main program) at every start; the modules' own
constructors wait for their first dlopen (README, Limits). Imports open, relocate and
search no `.so` files.""")
PY
