#!/usr/bin/env bash
#! `make fuzz`: builds the libFuzzer harness with the stable toolchain and runs every target
#! (or those in FUZZ_TARGETS) for FUZZ_SECONDS each, then prints one line per target: time,
#! executions, coverage at start and end, new corpus entries and crashes.
#!
#! It must never write into fuzz/corpus/ (the committed seeds): new inputs go to
#! fuzz/target/work/<target>/, crashes to fuzz/artifacts/<target>/. Exits non-zero on a crash,
#! hang or OOM so a finding cannot scroll by unnoticed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
secs=${FUZZ_SECONDS:-60}
jobs=${JOBS:-2}
cargo=${CARGO:-cargo}
all=$(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^callrec-fuzz$')
targets=${FUZZ_TARGETS:-$all}
triple=$(rustc -vV | sed -n 's/^host: //p')

# Coverage instrumentation through LLVM's SanitizerCoverage pass: stable `-C` flags, no nightly
# and no RUSTC_BOOTSTRAP. An explicit --target keeps the flags off build scripts and proc macros
# (they would otherwise reference libFuzzer's hooks without linking libFuzzer).
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cforce-frame-pointers=yes"
export CARGO_TARGET_DIR="$here/target"
start=$(date +%s)
$cargo build --release --locked -j"$jobs" --target "$triple" --bins
echo "harness built in $(( $(date +%s) - start )) s"
bin="$here/target/$triple/release"

printf '%-18s %6s %10s %8s %8s %8s %8s %7s\n' target seconds execs cov0 cov1 ft1 new_units crashes >"$here/target/summary.txt"
failed=0
for t in $targets; do
    work="$here/target/work/$t"
    art="$here/artifacts/$t"
    log="$here/target/logs/$t.log"
    mkdir -p "$work" "$art" "$(dirname "$log")"
    before=$(find "$art" -type f | wc -l)
    t0=$(date +%s)
    set +e
    "$bin/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/" "$work" "$here/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - t0 ))
    cov0=$(grep -m1 -o 'INITED cov: [0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov1=$(grep -o ' cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
    ft1=$(grep -o ' ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    crashes=$(( $(find "$art" -type f | wc -l) - before ))
    printf '%-18s %6s %10s %8s %8s %8s %8s %7s\n' "$t" "$took" "${execs:-?}" "$cov0" "$cov1" \
        "$ft1" "${new:-?}" "$crashes" | tee -a "$here/target/summary.txt"
    if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
        failed=1
        echo "  FINDING in $t (exit $rc): see $log and $art/" >&2
        grep -m5 -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" >&2 || true
    fi
done
echo
cat "$here/target/summary.txt"
echo "(cov0/cov1: edges covered after loading the corpus / at the end; new_units: inputs that found new coverage)"
exit $failed
