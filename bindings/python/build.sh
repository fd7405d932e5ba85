#!/usr/bin/env bash
# Python bindings for ferrolm, as a smoke test of a fourth uniffi language (not a shipped
# package): the issue 10 review found the FFI's rough edges through uniffi's Python output.
#   1. needs only python3 (the system's; installs Debian's python3 if it is missing);
#   2. builds the release cdylib (crates/ferrolm-ffi) and uniffi-bindgen (same uniffi version);
#   3. generates build/ferrolm_ffi.py from the built library (uniffi library mode), makes each
#      error's str() its Rust Display (uniffi makes it a dump of the fields, '' for a variant
#      without fields; every ferrolm error exports its Display as describe()), and copies the
#      library beside it;
#   4. runs test_ferrolm.py with unittest (last line: "python: N passed, M failed").
# A warm run takes a few seconds. Everything it makes goes to bindings/python/build/.
#
# Usage: bindings/python/build.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${FERROLM_CACHE:-$HOME/.cache/ferrolm}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
BUILD=$HERE/build

LANGUAGE=python
# shellcheck source=../common.sh
. "$HERE/../common.sh" "$@"

RESULT=""
trap 'rc=$?; if [ -z "$RESULT" ]; then echo "python: stopped before the tests ran (exit status $rc)"; echo "python: 0 passed, 1 failed"; fi' EXIT

step "toolchain"
command -v python3 >/dev/null || apt_install python3
echo "$(python3 --version)"

build_native_library
cd "$ROOT"

step "generate Python (uniffi library mode)"
rm -rf "$BUILD"
mkdir -p "$BUILD"
"$BINDGEN" generate "$LIB" --language python --out-dir "$BUILD" --no-format >/dev/null
GENERATED=$BUILD/ferrolm_ffi.py
mapfile -t ERRORS < <(sed -n 's/^class \(Ferrolm[A-Za-z]*Error\)(Exception):$/\1/p' "$GENERATED")
if [ "${#ERRORS[@]}" -ne 8 ]; then
    echo "expected 8 error classes in $GENERATED, found ${#ERRORS[@]}: ${ERRORS[*]}" >&2
    exit 1
fi
{
    echo
    echo "# ferrolm: every error's str() is its human message, the Rust Display (bindings/python/build.sh)."
    echo "for _error in (${ERRORS[*]/%/,}):"
    echo "    _error.__str__ = lambda self: self.describe()"
    echo "del _error"
} >>"$GENERATED"
cp "$LIB" "$BUILD/"
echo "$(wc -l <"$GENERATED") lines in ${GENERATED#"$ROOT"/}; str() from describe() for ${ERRORS[*]}"

step "test (unittest)"
LOG=$BUILD/test.log
set +e
(cd "$HERE" && PYTHONPATH=$BUILD python3 -B -m unittest -v test_ferrolm) 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -cE ' \.\.\. ok$' "$LOG" || true)
failed=$(grep -cE ' \.\.\. (FAIL|ERROR)$' "$LOG" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
step "done"
RESULT="python: $passed passed, $failed failed"
echo "$RESULT"
[ "$failed" -eq 0 ]
