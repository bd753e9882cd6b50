#!/usr/bin/env bash
# `make bench-deploy`: start-up and import of the single file, the directory payload
# and the dynamic CPython of the same build, in one run (hyperfine, medians); peak RSS
# of `-c pass`. Writes bench/deploy-results.md.
#
#   BENCH_RUNS=20   hyperfine runs per command (after 3 warm-ups)
# The payload is the one tests/deploy.rs builds (numpy, certifi, pyyaml, msgpack); its
# packages' .pyc exist in all three trees, so no run recompiles (PYTHONDONTWRITEBYTECODE).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-20}
# the OUT tests/deploy.rs builds: when it is current, the build below does nothing
WORK=${BENCH_WORK:-$PWD/target/tmp/deploy}
DLSTATIC=$PWD/target/release/dlstatic
mkdir -p "$WORK"
cargo build --release --bin dlstatic >&2
"$DLSTATIC" build --modules tests/packages/deploy.txt --out "$WORK/dist" >&2
"$DLSTATIC" package "$WORK/dist" --format single -o "$WORK/python3.11" >&2
dynamic=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dynamic_python"])' "$WORK/dist.km/manifest.json")
site=$WORK/dist.km/packages/site
# A file just written sits in the page cache in large folios, and mapping its text then
# counts whole folios: the fresh single file showed 24.5 MiB peak RSS for `-c pass`,
# 12 MiB once read back from disk. Start every variant from a clean cache (root only).
sync
echo 1 2>/dev/null > /proc/sys/vm/drop_caches || echo "note: page cache not dropped (not root)" >&2

declare -A RUN=(
    [single]="$WORK/python3.11"
    [directory]="$WORK/dist/bin/python3.11"
    [dynamic]="env PYTHONPATH=$site $dynamic"
)
for code in pass 'import numpy'; do
    name=${code// /-}
    hyperfine --style basic --warmup 3 --runs "$RUNS" --export-json "$WORK/$name.json" \
        -n single "${RUN[single]} -c '$code'" \
        -n directory "${RUN[directory]} -c '$code'" \
        -n dynamic "${RUN[dynamic]} -c '$code'" >&2
done
rss() { for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" -c pass 2>&1 >/dev/null; done | sort -n | sed -n 3p; }
python3 - "$WORK" "$(rss "${RUN[single]}")" "$(rss "${RUN[directory]}")" "$(rss env PYTHONPATH="$site" "$dynamic")" <<'PY' | tee bench/deploy-results.md
import json, statistics, sys
work, *rss = sys.argv[1:]
print("# Deploy bench: single file vs directory payload vs dynamic CPython\n")
load = open("/proc/loadavg").read().split()[0]
print(f"Median wall time of hyperfine runs, one run of bench/deploy.sh (load average {load} at the end:")
print("wall times on a shared machine move run to run; user CPU moves less). `-c pass` peak RSS: median of 5.\n")
print("| command | single | directory | dynamic | single / dynamic | directory / dynamic |")
print("|---|---|---|---|---|---|")
for name, label in [("pass", "-c pass"), ("import-numpy", "import numpy")]:
    results = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(f"{work}/{name}.json"))["results"]}
    s, d, y = results["single"], results["directory"], results["dynamic"]
    print(f"| `{label}` | {s:.1f} ms | {d:.1f} ms | {y:.1f} ms | {s / y:.2f}x | {d / y:.2f}x |")
for name, label in [("pass", "-c pass"), ("import-numpy", "import numpy")]:
    users = {r["command"]: r["user"] * 1000 for r in json.load(open(f"{work}/{name}.json"))["results"]}
    s, d, y = users["single"], users["directory"], users["dynamic"]
    print(f"| `{label}` user CPU (mean) | {s:.1f} ms | {d:.1f} ms | {y:.1f} ms | {s / y:.2f}x | {d / y:.2f}x |")
s, d, y = (int(k) / 1024 for k in rss)
print(f"| `-c pass` peak RSS | {s:.1f} MiB | {d:.1f} MiB | {y:.1f} MiB | {s / y:.2f}x | {d / y:.2f}x |")
PY
