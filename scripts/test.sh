#!/usr/bin/env bash
# Runs every test ferrolm has: formatting, clippy under the workspace lints, unit,
# behaviour, property, doc and interop tests (against libolm, vodozemac and matrix-sdk-crypto),
# the language bindings' tests in their own runtimes, and a fuzz smoke run of every fuzz
# target (FUZZ_SECONDS each, default 10; 0 skips it).
# Installs what it needs first (idempotent). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# A shared target directory outside the clone keeps CI's fresh clones fast on a warm machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FERROLM_CACHE:-$HOME/.cache/ferrolm}/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy (workspace lints, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features --locked 2>&1 | tee "$log"

echo "== bindings"
for language in kotlin swift js python; do
    "bindings/$language/build.sh" 2>&1 | tee -a "$log"
done

fuzz_seconds=${FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" -gt 0 ]; then
    echo "== fuzz smoke (${fuzz_seconds}s per target)"
    fuzz/run.sh "$fuzz_seconds" | tee -a "$log"
fi

# One closing line for the whole run (cargo prints one per test binary, the last of which
# may be a crate with no doc tests; the fuzz smoke counts one per target).
awk '/^test result:/ { passed += $4; failed += $6 }
     /^(fuzz|kotlin|swift|js|python): [0-9]+ passed, [0-9]+ failed/ { passed += $2; failed += $4 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
