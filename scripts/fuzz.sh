#!/usr/bin/env bash
# Run every cargo-fuzz target for FUZZ_SECS seconds each (default 60).
#
#   scripts/fuzz.sh                      # all targets, 60 s each
#   FUZZ_SECS=300 scripts/fuzz.sh        # longer
#   scripts/fuzz.sh key_encoding         # only the named targets
#
# Works on a stable toolchain: cargo-fuzz needs nightly-only rustc flags
# (-Zsanitizer, -Cpasses=sancov-module), which RUSTC_BOOTSTRAP=1 unlocks.
# Set FUZZ_NIGHTLY=1 to use `cargo +nightly fuzz` instead.
# New corpus entries go to fuzz/target/corpus/<target> (not committed);
# the committed seeds in fuzz/corpus/<target> are only read.
# Exits non-zero on the first crash; the reproducer is in fuzz/artifacts/.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECS:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [[ "${FUZZ_NIGHTLY:-0}" == 1 ]]; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

"${fuzz[@]}" build -O

for target in "${targets[@]}"; do
    work="target/corpus/$target"
    mkdir -p "$work" "corpus/$target"
    echo "== $target: ${secs}s" >&2
    log="target/fuzz-$target.log"
    # The first corpus directory receives new inputs; the seeds stay as committed.
    status=0
    "${fuzz[@]}" run -O "$target" "$work" "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb' "$log" >&2 || true
    if [[ $status -ne 0 ]]; then
        tail -n 40 "$log" >&2
        echo "== $target FAILED (exit $status); full log: fuzz/$log" >&2
        exit "$status"
    fi
done
echo "all targets ran ${secs}s each without a crash" >&2
