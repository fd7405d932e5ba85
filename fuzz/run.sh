#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after another, and prints
# a table of executions, coverage and findings. Installs cargo-fuzz if it is missing.
#
#   fuzz/run.sh 10                 # the CI smoke run
#   fuzz/run.sh 600                # ten minutes per target
#   fuzz/run.sh 3600 olm_decrypt   # a long campaign on one target
#   JOBS=2 fuzz/run.sh 600         # two targets at a time
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-10}
shift || true

cache="${FERROLM_CACHE:-$HOME/.cache/ferrolm}"
export PATH="$cache/tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $cache/tools"
    cargo install cargo-fuzz --locked --root "$cache/tools"
fi
export CARGO_TARGET_DIR="$cache/fuzz-target"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Seed corpora: valid inputs for each target, written by examples/make_seeds.rs.
if [ ! -d seeds ] || [ "${REFRESH_SEEDS:-0}" = 1 ]; then
    RUSTFLAGS="--cfg fuzzing" cargo +nightly run --quiet --release --example make_seeds
fi

cargo +nightly fuzz build -O
mkdir -p logs corpus artifacts

run_one() {
    local target=$1
    mkdir -p "corpus/$target" "artifacts/$target"
    [ -d "seeds/$target" ] || mkdir -p "seeds/$target"
    # -rss_limit_mb guards against memory blow-ups; -timeout flags any input taking > 10 s.
    if cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"logs/$target.log" 2>&1; then
        echo "$target ok"
    else
        echo "$target FAILED"
    fi
}

failed=0
jobs=${JOBS:-1}
for target in "${targets[@]}"; do
    run_one "$target" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait

printf '\n%-26s %14s %8s %10s %s\n' target executions "cov" corpus result
for target in "${targets[@]}"; do
    log="logs/$target.log"
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(find "corpus/$target" -type f | wc -l)
    if grep -qE 'ERROR: libFuzzer|deadly signal|panicked|Test unit written' "$log"; then
        result="CRASH (see $log and artifacts/$target/)"
        failed=$((failed + 1))
    else
        result="no findings"
    fi
    printf '%-26s %14s %8s %10s %s\n' "$target" "${execs:-?}" "${cov:-?}" "$corpus" "$result"
done
echo
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
