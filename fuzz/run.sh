#!/bin/bash
# `make fuzz`: each fast target for FUZZ_SECONDS (default 60) in one libFuzzer process,
# then the slow checks replayed over what the fast ones grew: rename_objcopy over the
# rename corpus, codegen_cc over a sample of FUZZ_CC_SAMPLE (default 300) codegen inputs
# that mention "defined" (a Module's field).
# Prints executions and crashes per target; exits 1 when any target crashed. Needs
# nightly Rust and cargo-fuzz.
# FUZZ_SANITIZER (default none): the code under test is safe Rust, and without
# AddressSanitizer a target runs about twice as many inputs; `address` turns it back on.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
sample=${FUZZ_CC_SAMPLE:-300}
# target:seed directory
fast="elf_summary:elf rename:elf archive:archive compiler_args:compiler_args modules_txt:modules_txt codegen:codegen"

command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz missing: cargo install cargo-fuzz"; exit 1; }
sanitizer=${FUZZ_SANITIZER:-none}
cargo +nightly fuzz build -s "$sanitizer" || exit 1

crashes() { ls "artifacts/$1" 2>/dev/null | grep -cE '^(crash|oom|timeout|leak)-'; }
crashed=0

# run TARGET CORPUS... -- LIBFUZZER_OPTIONS: one line "TARGET  N execs  N/s  N crashes"
run() {
    local target=$1; shift
    local log="artifacts/$target.log"
    rm -rf "artifacts/$target" && mkdir -p "artifacts/$target"   # this run's findings only
    cargo +nightly fuzz run -s "$sanitizer" "$target" "$@" >"$log" 2>&1
    local done_line execs secs
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1)
    execs=$(grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#')
    [[ $done_line =~ ^Done\ ([0-9]+)\ runs\ in\ ([0-9]+) ]] && execs=${BASH_REMATCH[1]} secs=${BASH_REMATCH[2]}
    printf '%-15s %10s execs %8s/s %3s crashes  (log: fuzz/%s)\n' "$target" "${execs:-?}" \
        "$(( ${execs:-0} / (${secs:-$seconds} > 0 ? ${secs:-$seconds} : 1) ))" "$(crashes "$target")" "$log"
    crashed=$(( crashed + $(crashes "$target") ))
}

for pair in $fast; do
    target=${pair%%:*}
    # FUZZ_TARGETS="archive compiler_args" runs only those (the replays always run)
    [[ -z ${FUZZ_TARGETS:-} || " $FUZZ_TARGETS " == *" $target "* ]] || continue
    mkdir -p "corpus/$target"
    run "$target" "corpus/$target" "seeds/${pair##*:}" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
done

# replays: each input once (-runs=0)
run rename_objcopy corpus/rename seeds/elf -- -runs=0 -timeout=30
rm -rf corpus/codegen_cc_sample && mkdir -p corpus/codegen_cc_sample
# most of the corpus is not Module JSON and never reaches cc: sample the ones that may be
grep -l '"defined"' corpus/codegen/* | shuf -n "$sample" --random-source=<(yes) | xargs -r cp -t corpus/codegen_cc_sample/
run codegen_cc corpus/codegen_cc_sample seeds/codegen -- -runs=0 -timeout=30
exit $(( crashed > 0 ))
