#!/usr/bin/env bash
# Swift bindings for ferrolm, end to end, on Linux:
#   1. installs the toolchain if missing: a Debian trixie chroot (debootstrap --variant=minbase)
#      at ${FERROLM_CACHE:-$HOME/.cache/ferrolm}/swift-trixie with Swift 6 (Debian's `swiftlang`,
#      6.0.3) and what it compiles against. Swift needs glibc 2.38, newer than a bookworm host
#      has; the library built on the host runs inside trixie unchanged;
#   2. builds the release cdylib (crates/ferrolm-ffi) and uniffi-bindgen (same uniffi version);
#   3. generates the Swift code, C header and module map from the built library (library mode):
#      Ferrolm.swift, ferrolmFFI.h, ferrolmFFI.modulemap (names set in crates/ferrolm-ffi/uniffi.toml);
#   4. stages the SwiftPM package in build/package: this folder's Package.swift, Tests/,
#      Sources/FerrolmBench/ and Sources/Ferrolm/ (hand-written additions to the module), plus
#      the generated files and lib/libferrolm_ffi.so; and copies it
#      into the chroot (/ferrolm/package), changed files only, so SwiftPM's incremental build holds;
#   5. `swift build --build-tests`, then `swift test` (XCTest) inside the chroot, with /proc
#      mounted only for that and always unmounted afterwards;
#   6. counts the XCTest cases; the last line is "swift: N passed, M failed" (a build that fails
#      before any test ran counts as one failure). Exits non-zero if anything failed.
#
# Idempotent: a second run reuses the chroot, cargo's build and SwiftPM's, and only re-runs the
# tests. Everything it makes goes to bindings/swift/build/ (not committed) and the cache.
# Needs root (debootstrap, chroot, mount) or sudo. Runs are serialised by a lock in the cache.
#
# Usage: bindings/swift/build.sh [--bench]
#   --bench   afterwards, measure the FFI overhead: 10,000 Megolm encrypt+decrypt from Swift
#             (a -c release executable) against the same loop in Rust
#             (crates/ferrolm-ffi/examples/megolm_loop.rs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${FERROLM_CACHE:-$HOME/.cache/ferrolm}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
BUILD=$HERE/build
CHROOT=$CACHE/swift-trixie
CHROOT_REAL=$(readlink -m "$CHROOT")   # as /proc/mounts spells it
MIRROR=${FERROLM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the chroot needs: the Swift toolchain (with XCTest and SwiftPM), and the C and C++
# headers and start files that swiftc links against. Add a package here and the next run
# installs it into an existing chroot.
SWIFT_PACKAGES=(swiftlang libc6-dev libstdc++-14-dev)
PKG_IN_CHROOT=/ferrolm/package
LIB_NAME=libferrolm_ffi.so

LANGUAGE=swift
# shellcheck source=../common.sh
. "$HERE/../common.sh" "$@"

# ---- the chroot's /proc: mounted only while a command runs in it, always unmounted ----------
# Unmounts whatever is mounted inside the chroot (or a half-made one): our /proc, or what an
# interrupted debootstrap left behind.
unmount_chroot() {
    local mount_point
    while read -r mount_point; do
        as_root umount "$mount_point" 2>/dev/null || as_root umount -l "$mount_point"
    done < <(awk -v a="$CHROOT_REAL/" -v b="$CHROOT_REAL.tmp/" \
        'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts | sort -r)
}
proc_up() {
    mountpoint -q "$CHROOT/proc" || as_root mount -t proc proc "$CHROOT/proc"
}
# Runs a command in the chroot with a clean environment (nothing of the host's leaks in).
in_chroot() {
    local rc=0
    proc_up
    as_root chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" || rc=$?
    unmount_chroot
    return "$rc"
}

# The closing line comes last, whatever happens: the tests' count once they have run, or one
# failure if the run stopped before (the toolchain, cargo or the Swift build failed).
RESULT=""
LOCKED=0
on_exit() {
    local rc=$?
    [ "$LOCKED" = 0 ] || unmount_chroot || true
    if [ -z "$RESULT" ]; then
        echo "swift: stopped before the tests ran (exit status $rc)"
        RESULT="swift: 0 passed, 1 failed"
        [ "$rc" -ne 0 ] || rc=1
    fi
    echo "$RESULT"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One run at a time: two runs would share the chroot and its /proc mount.
mkdir -p "$CACHE" "$BUILD"
exec 9>"$CACHE/swift-trixie.lock"
if ! flock -n 9; then
    echo "waiting for another bindings/swift/build.sh to finish"
    flock 9
fi
LOCKED=1
# A previous run that was killed may have left /proc mounted: nothing else uses it now.
unmount_chroot

# ---- 1. toolchain: the trixie chroot with Swift ---------------------------------------------
step "toolchain (trixie chroot at $CHROOT)"
if [ ! -f "$CHROOT/.ferrolm-debootstrap-done" ]; then
    command -v debootstrap >/dev/null || { echo "installing debootstrap"; apt_install debootstrap; }
    echo "debootstrap --variant=minbase trixie $CHROOT (from $MIRROR)"
    # Into a temporary folder first, so that an interrupted debootstrap never looks finished.
    as_root rm -rf --one-file-system "$CHROOT.tmp"
    as_root debootstrap --variant=minbase trixie "$CHROOT.tmp" "$MIRROR" >"$BUILD/debootstrap.log" 2>&1 || {
        tail -n 30 "$BUILD/debootstrap.log"
        exit 1
    }
    as_root touch "$CHROOT.tmp/.ferrolm-debootstrap-done"
    as_root rm -rf --one-file-system "$CHROOT"
    as_root mv "$CHROOT.tmp" "$CHROOT"
fi
if [ "$(cat "$CHROOT/.ferrolm-swift-packages" 2>/dev/null)" != "${SWIFT_PACKAGES[*]}" ] \
    || [ ! -x "$CHROOT/usr/bin/swift" ]; then
    echo "installing into the chroot: ${SWIFT_PACKAGES[*]}"
    [ -f /etc/resolv.conf ] && as_root cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
    # apt's and dpkg's chatter goes to a log, shown only if the install fails.
    APT_LOG=$BUILD/chroot-apt.log
    : >"$APT_LOG"
    chroot_apt() { in_chroot env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$APT_LOG" 2>&1; }
    if ! chroot_apt install -y --no-install-recommends "${SWIFT_PACKAGES[@]}"; then
        chroot_apt update || true
        chroot_apt install -y --no-install-recommends "${SWIFT_PACKAGES[@]}" || {
            tail -n 30 "$APT_LOG"
            exit 1
        }
    fi
    chroot_apt clean
    echo "${SWIFT_PACKAGES[*]}" | as_root tee "$CHROOT/.ferrolm-swift-packages" >/dev/null
fi
SWIFT_VERSION=$(in_chroot swift --version 2>/dev/null | sed -n 1p)
echo "swift: $SWIFT_VERSION"

# ---- 2. native library and generator ---------------------------------------------------------
build_native_library
cd "$ROOT"

# ---- 3. generate -----------------------------------------------------------------------------
step "generate Swift (uniffi library mode)"
rm -rf "$BUILD/generated"
# From inside the workspace: the generator runs `cargo metadata` to find the crate's uniffi.toml.
"$BINDGEN" generate "$LIB" --language swift --out-dir "$BUILD/generated" --no-format >/dev/null
for file in Ferrolm.swift ferrolmFFI.h ferrolmFFI.modulemap; do
    [ -f "$BUILD/generated/$file" ] || { echo "uniffi-bindgen did not write $file" >&2; exit 1; }
done
echo "$(wc -l <"$BUILD/generated/Ferrolm.swift") lines in ${BUILD#"$ROOT"/}/generated/Ferrolm.swift"

# ---- 4. stage the package --------------------------------------------------------------------
step "stage the SwiftPM package (build/package, chroot:$PKG_IN_CHROOT)"
# mirror SRC DST: makes DST's files equal to SRC's, copying only the files that differ (the
# others keep their timestamps, so SwiftPM rebuilds nothing for them) and deleting the files
# SRC no longer has. SwiftPM's own .build/ folder in DST is left alone.
mirror() {
    local src=$1 dst=$2 file
    as_root mkdir -p "$dst"
    while IFS= read -r -d '' file; do
        if ! cmp -s "$src/$file" "$dst/$file"; then
            as_root mkdir -p "$(dirname "$dst/$file")"
            as_root cp "$src/$file" "$dst/$file"
        fi
    done < <(cd "$src" && find . -type f ! -path './.build/*' -print0)
    while IFS= read -r -d '' file; do
        [ -e "$src/$file" ] || as_root rm -f "$dst/$file"
    done < <(cd "$dst" && find . -type f ! -path './.build/*' -print0)
}
NEXT=$BUILD/package.next
rm -rf "$NEXT"
mkdir -p "$NEXT/Sources/Ferrolm" "$NEXT/Sources/ferrolmFFI" "$NEXT/lib"
cp "$HERE/Package.swift" "$NEXT/"
cp -r "$HERE/Tests" "$NEXT/Tests"
cp -r "$HERE/Sources/FerrolmBench" "$NEXT/Sources/FerrolmBench"
cp "$BUILD/generated/Ferrolm.swift" "$NEXT/Sources/Ferrolm/"
# Hand-written additions to the module (the errors' human descriptions).
cp "$HERE"/Sources/Ferrolm/*.swift "$NEXT/Sources/Ferrolm/"
cp "$BUILD/generated/ferrolmFFI.h" "$NEXT/Sources/ferrolmFFI/"
# A system-library target's module map must be called module.modulemap.
cp "$BUILD/generated/ferrolmFFI.modulemap" "$NEXT/Sources/ferrolmFFI/module.modulemap"
# The release profile keeps line tables for profiling; the package's copy does not need them.
strip --strip-debug -o "$NEXT/lib/$LIB_NAME" "$LIB" 2>/dev/null || cp "$LIB" "$NEXT/lib/$LIB_NAME"
mirror "$NEXT" "$BUILD/package"
rm -rf "$NEXT"
mirror "$BUILD/package" "$CHROOT$PKG_IN_CHROOT"

# ---- 5. build and test in the chroot ---------------------------------------------------------
step "swift build --build-tests (in the chroot)"
in_chroot sh -c "cd $PKG_IN_CHROOT && swift build --build-tests"

step "swift test (XCTest, in the chroot)"
LOG=$BUILD/swift-test.log
set +e
in_chroot sh -c "cd $PKG_IN_CHROOT && swift test --skip-build --disable-swift-testing" 2>&1 | tee "$LOG"
test_rc=${PIPESTATUS[0]}
set -e
# XCTest prints one "Test Case '…' started" and one "… passed"/"… failed" line per test
# method; a test that started and never finished (a crash) counts as failed.
started=$(grep -cE "^Test Case '.+' started" "$LOG" || true)
passed=$(grep -cE "^Test Case '.+' passed" "$LOG" || true)
failed=$(grep -cE "^Test Case '.+' failed" "$LOG" || true)
unfinished=$((started - passed - failed))
[ "$unfinished" -gt 0 ] && failed=$((failed + unfinished))
if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "swift test exited with status $test_rc"
    failed=1
fi
RESULT="swift: $passed passed, $failed failed"

if [ "$BENCH" = 1 ] && [ "$failed" -eq 0 ]; then
    step "bench: FFI overhead"
    rust_out=$(rust_megolm_loop)
    echo "$rust_out"
    in_chroot sh -c "cd $PKG_IN_CHROOT && swift build -c release --product FerrolmBench"
    swift_out=$(in_chroot "$PKG_IN_CHROOT/.build/release/FerrolmBench" 10000 5)
    echo "$swift_out"
    ffi_overhead_table "Swift (6.0, -c release)" swift "$rust_out" "$swift_out"
fi

step "done"
# The EXIT trap prints the closing line.
[ "$failed" -eq 0 ]
