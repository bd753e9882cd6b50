#!/usr/bin/env bash
# `make bench`: dlstatic measured against the alternatives, side by side, in one run.
# Writes bench/results.md (bench/report.py renders it from the hyperfine JSON exports
# and the facts gathered here, all under $WORK).
#
#   BENCH_RUNS=5     hyperfine runs per command (after warm-ups); medians are reported
#   BENCH_COLD=0     skip the cold build (it rebuilds CPython in an empty cache, ~8 min)
#   BENCH_NUMPY=0    skip numpy (its first build takes ~10 min; later ones are no-ops)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-5}
WORK=${BENCH_WORK:-$PWD/target/bench}
CACHE=${DLSTATIC_CACHE:-$HOME/.cache/dlstatic}
DLSTATIC=$PWD/target/release/dlstatic
RENAME_ARCHIVE=$PWD/target/release/examples/rename_archive
mkdir -p "$WORK/results"
R=$WORK/results
rm -f "$R"/*

say() { printf '\n== %s\n' "$*" >&2; }
fact() { printf '%s\t%s\n' "$1" "$2" >> "$R/facts.tsv"; }
hf() { # NAME RUNS hyperfine-args…: results to $R/NAME.json
    local name=$1 runs=$2
    shift 2
    hyperfine --style basic --runs "$runs" --export-json "$R/$name.json" "$@" >&2
}

say "building dlstatic and the bench helper"
cargo build --release --bin dlstatic --example rename_archive >&2

say "payloads: stdlib + extensions/modules.txt$([ "${BENCH_NUMPY:-1}" = 1 ] && echo ", numpy")"
"$DLSTATIC" build --modules extensions/modules.txt --out "$WORK/dist" >&2
if [ "${BENCH_NUMPY:-1}" = 1 ]; then
    "$DLSTATIC" build --modules tests/packages/numpy.txt --out "$WORK/numpy" >&2
fi
# the CPython build both payloads came from: its capture db and its dynamic install
python_tree=$(dirname "$(ls -t "$CACHE"/cpython/*/complete | head -1)")
dynamic=$python_tree/install/bin/python3.11
fact machine "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), $(uname -r)"
fact versions "$("$DLSTATIC" --version), $(cc --version | head -1), $(ld --version | head -1), $(hyperfine --version)"

# 1. rename + archive ---------------------------------------------------------------
rename_bench() { # NAME DB
    local name=$1 db=$2 export=$WORK/export-$1
    rm -rf "$export"
    "$RENAME_ARCHIVE" --export "$db" "$export"
    fact "$name-objects" "$(find "$export" -mindepth 2 -type f | wc -l)"
    fact "$name-bytes" "$(du -sb --exclude='*.symmap' "$export" | cut -f1)"
    hf "rename-$name" "$RUNS" --warmup 1 \
        --prepare "rm -rf $WORK/ra-out $WORK/oa-out $WORK/cp-out" \
        -n dlstatic "$RENAME_ARCHIVE $db $WORK/ra-out" \
        -n "objcopy + ar" "bench/objcopy_ar.sh $export $WORK/oa-out" \
        -n cp "cp -r $export $WORK/cp-out"
}
say "1. rename + archive"
rename_bench stdlib "$python_tree/db"
if [ -d "$WORK/numpy" ]; then # numpy's capture db, in the package cache
    numpy_db=$(python3 -c 'import json, sys; print(next(d for d in json.load(open(sys.argv[1]))["dbs"] if "/numpy-" in d))' \
        "$WORK/numpy.km/packages/packages.json")
    rename_bench numpy "$numpy_db"
fi

# 2. start-up and import ------------------------------------------------------------
say "2. start-up and import (static payload vs the dynamic build of the same source)"
stdlib_set="import _ssl, _sqlite3, _ctypes, _decimal, _lzma, _bz2, zlib, _uuid, _json, readline, _curses, _codecs_jp, _hashlib, _socket"
fact stdlib-set "$stdlib_set"
export PYTHONDONTWRITEBYTECODE=1 # both trees hold compiled .pyc; neither writes new ones
startup_bench() { # NAME PAYLOAD CODE: paired runs, alternating static and dynamic
    # both through env(1), which the dynamic one needs for PYTHONPATH
    local static=$2/bin/python3.11 site=$2.km/packages/site
    python3 bench/paired.py --runs $((RUNS * 10)) --warmup 3 --export-json "$R/$1.json" \
        static "env PYTHONNOUSERSITE=1 $static -c '$3'" \
        dynamic "env PYTHONNOUSERSITE=1 PYTHONPATH=$site $dynamic -c '$3'" >&2
}
startup_bench startup-pass "$WORK/dist" "pass"
startup_bench startup-stdlib "$WORK/dist" "$stdlib_set"
[ -d "$WORK/numpy" ] && startup_bench startup-numpy "$WORK/numpy" "import numpy"
# where the time goes: instructions executed (callgrind, repeatable) and page faults for
# `-c pass`; -X importtime of the stdlib set; both interpreters
for kind in static dynamic; do
    python=$([ $kind = static ] && echo "$WORK/dist/bin/python3.11" || echo "$dynamic")
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$python" -c pass 2>&1 |
        awk '/Collected/ {print $NF}' > "$R/instructions-pass-$kind.txt"
    perf stat -x, -r 20 -e page-faults "$python" -c pass 2>&1 | awk -F, '/page-faults/ {print $1}' > "$R/page-faults-pass-$kind.txt"
done
"$WORK/dist/bin/python3.11" -X importtime -c "$stdlib_set" 2> "$R/importtime-static.txt"
env PYTHONPATH="$WORK/dist.km/packages/site" "$dynamic" -X importtime -c "$stdlib_set" 2> "$R/importtime-dynamic.txt"

# 3. dlstatic build wall time ---------------------------------------------------------
say "3. dlstatic build: warm no-op, one module changed$([ "${BENCH_COLD:-1}" = 1 ] && echo ", cold")"
build="$DLSTATIC build --modules extensions/modules.txt --out $WORK/dist"
hf build-noop "$RUNS" --warmup 1 -n "warm no-op" "$build"
# one module changed: _json's converted files and OUT's build key are gone, as after
# its capture changed; dlstatic re-converts it and relinks, reusing the 77 others
invalidate="rm -f $WORK/dist.km/build-key $WORK/dist.km/link/_json.*.km.json"
hf build-one-changed "$RUNS" --prepare "$invalidate" -n "one module changed" "$build"
eval "$invalidate"
$build --timings 2> "$R/timings-one-changed.txt"
if [ "${BENCH_COLD:-1}" = 1 ]; then
    rm -rf "$WORK/cold" "$WORK/cold.km" "$WORK/cold-cache"
    start=$(date +%s.%N)
    tarball=$(ls "$CACHE"/src/python3.11_*.orig.tar.* | tail -1)
    DLSTATIC_CACHE=$WORK/cold-cache "$DLSTATIC" build --modules extensions/modules.txt --out "$WORK/cold" \
        --python-src "$tarball" --timings 2> "$R/timings-cold.txt"
    fact cold-seconds "$(echo "$(date +%s.%N) - $start" | bc)"
    rm -rf "$WORK/cold-cache"
fi
for linker in bfd gold lld mold; do
    if command -v "ld.$linker" >/dev/null; then
        hf "linker-$linker" "$RUNS" --prepare "$invalidate" -n "linker $linker" "$build --linker $linker"
    fi
done
$build >&2 # back to the default linker

# 4. dlsym ------------------------------------------------------------------------------
say "4. dlsym: 1e6 lookups, the shim vs glibc"
d=$WORK/dlsym
rm -rf "$d" && mkdir -p "$d"
for i in $(seq 0 999); do echo "int f$i(void) { return $i; }"; done > "$d/plugin.c"
cc -O2 -c bench/dlsym/host.c -o "$d/host.o"
cc "$d/host.o" -o "$d/host-dynamic"
(cd "$d" && "$DLSTATIC" capture --db db -- sh -c '$CC -O2 -fPIC -c plugin.c && $CC -shared plugin.o -o plugin.so')
"$DLSTATIC" link --db "$d/db" -o "$d/host-static" "$d/host.o" >&2
"$d/host-dynamic" "$d/plugin.so" 1000000 1000 > "$R/dlsym-dynamic.txt"
"$d/host-static" "$d/plugin.so" 1000000 1000 > "$R/dlsym-static.txt"
hf dlsym "$RUNS" --warmup 2 -N \
    -n "dlstatic shim" "$d/host-static $d/plugin.so 1000000 1000" \
    -n "glibc dlsym" "$d/host-dynamic $d/plugin.so 1000000 1000"

# 5. sizes ------------------------------------------------------------------------------
say "5. sizes"
bytes() { stat -c %s "$1"; }
strip -o "$d/python-static-stripped" "$WORK/dist/bin/python3.11"
fact size-static "$(bytes "$WORK/dist/bin/python3.11")"
fact size-static-stripped "$(bytes "$d/python-static-stripped")"
dynamic_files=("$dynamic" "$python_tree"/install/lib/python3.11/lib-dynload/*.so)
mapfile -t -O ${#dynamic_files[@]} dynamic_files < <(find "$WORK/dist.km/packages/site" -name '*.so')
fact size-dynamic "$(cat "${dynamic_files[@]}" | wc -c)"
for f in "${dynamic_files[@]}"; do strip -o "$d/stripped" "$f" && bytes "$d/stripped"; done | paste -sd+ | bc > "$d/sum"
fact size-dynamic-stripped "$(cat "$d/sum")"
fact size-dynamic-files "${#dynamic_files[@]}"
# what the dynamic build also needs at run time, and a FROM scratch image would have to ship
ldd "${dynamic_files[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' |
    xargs -r readlink -f | sort -u > "$d/system-libs"
fact size-system-libs "$(xargs cat < "$d/system-libs" | wc -c)"
fact system-libs-count "$(wc -l < "$d/system-libs")"
$build --link-arg=-Wl,--gc-sections >&2
fact size-static-gc "$(bytes "$WORK/dist/bin/python3.11")"
strip -o "$d/python-gc-stripped" "$WORK/dist/bin/python3.11"
fact size-static-gc-stripped "$(bytes "$d/python-gc-stripped")"
$build >&2 # OUT as the default build makes it

say "report"
python3 bench/report.py "$R" > bench/results.md
echo "wrote bench/results.md" >&2
