#!/usr/bin/env bash
# `make bench-packages`: the packages step of `dlstatic build` over bench/packages.txt
# (ten small sdists), timed by `build --timings`:
#   1. sequential (--jobs 1) vs parallel (--jobs 2), each with an empty package cache,
#      alternated for BENCH_ROUNDS (2) rounds: the machine's load drifts between runs;
#   2. a clean-tree rebuild (empty package cache, new OUT) with ccache cold vs warm
#      (--cc-launcher ccache, --jobs 2).
# Every build gets a fresh package cache: a temporary DLSTATIC_CACHE whose cpython/ and
# src/ are the real cache's, so CPython is reused and every package is built.
# Writes bench/packages-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DLSTATIC=$PWD/target/release/dlstatic
CACHE=${DLSTATIC_CACHE:-$HOME/.cache/dlstatic}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dlstatic-bench-packages.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RESULTS=bench/packages-results.md
cargo build --release --bin dlstatic >&2

ROUNDS=${BENCH_ROUNDS:-2}
ROWS=$WORK/rows.md

# build NAME ARGS…: one build into a new OUT with an empty package cache; prints the
# seconds its packages stage took and adds a row (with the load it started under)
build() {
    local name=$1
    shift
    rm -rf "$WORK/cache" "$WORK/out" "$WORK/out.km"
    mkdir -p "$WORK/cache"
    ln -s "$CACHE/cpython" "$WORK/cache/cpython"
    ln -s "$CACHE/src" "$WORK/cache/src"
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== $name: load before $load" >&2
    DLSTATIC_CACHE=$WORK/cache "$DLSTATIC" build --modules bench/packages.txt \
        --out "$WORK/out" --no-verify --keep-going --timings "$@" 2> "$WORK/$name.log" \
        || [ $? = 3 ] || { tail -20 "$WORK/$name.log" >&2; exit 1; }
    if grep -q 'failed to build' "$WORK/$name.log"; then
        grep -A20 'failed to build' "$WORK/$name.log" >&2
    fi
    local seconds
    seconds=$(awk '$1 == "packages" { sub("s$", "", $2); print $2 }' "$WORK/$name.log")
    echo "| $name | $load | $seconds |" >> "$ROWS"
    echo "$seconds"
}
ratio() { echo "scale=2; $1 / $2" | bc; }

sequential=0 parallel=0
for round in $(seq "$ROUNDS"); do
    sequential=$(echo "$sequential + $(build "sequential, --jobs 1 (round $round)" --jobs 1)" | bc)
    parallel=$(echo "$parallel + $(build "parallel, --jobs 2 (round $round)" --jobs 2)" | bc)
done
export CCACHE_DIR=$WORK/ccache
cold=$(build "--jobs 2 --cc-launcher ccache, cache cold" --jobs 2 --cc-launcher ccache)
warm=$(build "same, clean tree, cache warm" --jobs 2 --cc-launcher ccache)
hits=$(ccache --print-stats | awk '$1 == "direct_cache_hit" || $1 == "preprocessed_cache_hit" { n += $2 } END { print n }')
misses=$(ccache --print-stats | awk '$1 == "cache_miss" { print $2 }')

cat > "$RESULTS" <<MD
# Package builds: parallel, and with a compiler cache

\`bench/packages.sh\` ($(date -u +%Y-%m-%d)): the packages stage (\`build --timings\`) of
\`dlstatic build --modules bench/packages.txt\` (ten small sdists with C extensions), each
run with an empty package cache and CPython reused. Machine: $(nproc) cores shared with
other work: the 1-minute load average each run started under is in the table (2 means
both cores busy), and the wall times follow it more than anything dlstatic does. pip's
own work (isolated build environments, setuptools installs, PyPI downloads) is most of
each package's time and is not what a compiler cache saves.

| run | load at start | packages stage (s) |
|---|---|---|
$(cat "$ROWS")

| ratio | value |
|---|---|
| parallel / sequential ($ROUNDS rounds summed) | $(ratio "$parallel" "$sequential") |
| warm / cold ccache | $(ratio "$warm" "$cold") |

ccache over both ccache runs: $hits hits, $misses misses.
MD
cat "$RESULTS"
