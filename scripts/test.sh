#!/usr/bin/env bash
# Runs every test ferrolm has: formatting, clippy under the workspace lints, unit,
# behaviour, property, doc and interop tests (against libolm and vodozemac).
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

# One closing line for the whole run (cargo prints one per test binary, the last of which
# may be a crate with no doc tests).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
