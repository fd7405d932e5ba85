#!/usr/bin/env bash
# Kotlin/JVM bindings for ferrolm, end to end:
#   1. installs the toolchain if missing: JNA 5.13 (Debian libjna-java) and the Kotlin
#      compiler 2.4.20 (the npm package kotlin-compiler, a full kotlinc-jvm) under the cache;
#   2. builds the release cdylib (crates/ferrolm-ffi) and uniffi-bindgen (same uniffi version);
#   3. generates the Kotlin code from the built library (uniffi library mode), and makes each
#      exception's `message` its Rust Display (tools/patch-messages.sh);
#   4. compiles the bindings and the tests with kotlinc-jvm (skipped when nothing changed);
#   5. packages build/ferrolm.jar: the bindings plus the native library as a JNA resource
#      (linux-x86-64/libferrolm_ffi.so), so `java -cp ferrolm.jar:jna.jar:…` needs no
#      -Djna.library.path;
#   6. runs the test suite on the JVM from the jars (last line: "kotlin: N passed, M failed").
#
# Idempotent: a second run reuses the installed toolchain, cargo's incremental build and the
# compiled classes, and only re-runs the tests. Everything it makes goes to
# bindings/kotlin/build/ (not committed) and ${FERROLM_CACHE:-$HOME/.cache/ferrolm}.
#
# Usage: bindings/kotlin/build.sh [--bench]
#   --bench   afterwards, measure the FFI overhead: 10,000 Megolm encrypt+decrypt from Kotlin
#             against the same loop in Rust (crates/ferrolm-ffi/examples/megolm_loop.rs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${FERROLM_CACHE:-$HOME/.cache/ferrolm}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
BUILD=$HERE/build
KOTLIN_VERSION=2.4.20
KOTLIN_PREFIX=$CACHE/tools/kotlin-compiler-$KOTLIN_VERSION
KOTLIN_HOME=$KOTLIN_PREFIX/node_modules/kotlin-compiler
JNA_JAR=/usr/share/java/jna.jar
LIB_NAME=libferrolm_ffi.so

LANGUAGE=kotlin
# shellcheck source=../common.sh
. "$HERE/../common.sh" "$@"

# ---- 1. toolchain ---------------------------------------------------------------------------
step "toolchain"
if ! command -v java >/dev/null; then
    echo "installing a Java runtime"
    apt_install openjdk-17-jre-headless
fi
if [ ! -f "$JNA_JAR" ]; then
    echo "installing JNA (libjna-java)"
    apt_install libjna-java
fi
if [ ! -x "$KOTLIN_HOME/bin/kotlinc-jvm" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    echo "installing kotlin-compiler@$KOTLIN_VERSION into $KOTLIN_PREFIX"
    tmp="$KOTLIN_PREFIX.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    npm install --no-save --no-fund --no-audit --loglevel=error --prefix "$tmp" "kotlin-compiler@$KOTLIN_VERSION"
    rm -rf "$KOTLIN_PREFIX"
    mv "$tmp" "$KOTLIN_PREFIX"
fi
KOTLINC=$KOTLIN_HOME/bin/kotlinc-jvm
STDLIB=$KOTLIN_HOME/lib/kotlin-stdlib.jar
echo "java: $(java -version 2>&1 | head -1); kotlinc: $KOTLIN_VERSION; jna: $JNA_JAR"

# ---- 2. native library and generator ---------------------------------------------------------
build_native_library
cd "$ROOT"

# ---- 3. generate -----------------------------------------------------------------------------
step "generate Kotlin (uniffi library mode)"
mkdir -p "$BUILD"
rm -rf "$BUILD/generated.new"
# From inside the workspace: the generator runs `cargo metadata` to find the crate's uniffi.toml.
"$BINDGEN" generate "$LIB" --language kotlin --out-dir "$BUILD/generated.new" --no-format >/dev/null
# Each exception's `message` becomes its Rust Display (uniffi would dump the fields).
"$HERE/tools/patch-messages.sh" "$BUILD/generated.new/ferrolm/ferrolm_ffi.kt"
GENERATED=$BUILD/generated/ferrolm/ferrolm_ffi.kt
if [ -f "$GENERATED" ] && cmp -s "$BUILD/generated.new/ferrolm/ferrolm_ffi.kt" "$GENERATED"; then
    rm -rf "$BUILD/generated.new"   # unchanged: keep the old file (and its timestamp)
else
    rm -rf "$BUILD/generated"
    mv "$BUILD/generated.new" "$BUILD/generated"
fi
echo "$(wc -l <"$GENERATED") lines in ${GENERATED#"$ROOT"/}"

# ---- 4. compile (only what changed) ----------------------------------------------------------
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
mapfile -t TEST_SOURCES < <(find "$HERE/src" -name '*.kt' | sort)
BINDINGS_JAR=$BUILD/classes/ferrolm-bindings.jar
TESTS_JAR=$BUILD/ferrolm-tests.jar
bindings_stamp="$KOTLIN_VERSION $(hash_of "$GENERATED")"
if [ ! -f "$BINDINGS_JAR" ] || [ "$(cat "$BUILD/classes/bindings.stamp" 2>/dev/null)" != "$bindings_stamp" ]; then
    step "kotlinc: bindings"
    mkdir -p "$BUILD/classes"
    rm -f "$BINDINGS_JAR" "$BUILD/classes/bindings.stamp"
    # The generated code compiles with unchecked-cast style warnings; they are uniffi's, not ours.
    "$KOTLINC" -nowarn -cp "$JNA_JAR" "$GENERATED" -d "$BINDINGS_JAR"
    echo "$bindings_stamp" >"$BUILD/classes/bindings.stamp"
else
    step "kotlinc: bindings unchanged, reusing ${BINDINGS_JAR#"$ROOT"/}"
fi
tests_stamp="$bindings_stamp $(hash_of "${TEST_SOURCES[@]}")"
if [ ! -f "$TESTS_JAR" ] || [ "$(cat "$BUILD/classes/tests.stamp" 2>/dev/null)" != "$tests_stamp" ]; then
    step "kotlinc: tests and bench"
    rm -f "$TESTS_JAR" "$BUILD/classes/tests.stamp"
    "$KOTLINC" -Werror -cp "$BINDINGS_JAR:$JNA_JAR" "${TEST_SOURCES[@]}" -d "$TESTS_JAR"
    echo "$tests_stamp" >"$BUILD/classes/tests.stamp"
else
    step "kotlinc: tests unchanged, reusing ${TESTS_JAR#"$ROOT"/}"
fi

# ---- 5. package ferrolm.jar ------------------------------------------------------------------
step "package ferrolm.jar (bindings + linux-x86-64/$LIB_NAME)"
NATIVE=$BUILD/native/linux-x86-64
mkdir -p "$NATIVE"
# The release profile keeps line tables for profiling; the shipped copy does not need them.
strip --strip-debug -o "$NATIVE/$LIB_NAME" "$LIB" 2>/dev/null || cp "$LIB" "$NATIVE/$LIB_NAME"
cp "$BINDINGS_JAR" "$BUILD/ferrolm.jar.tmp"
if command -v jar >/dev/null; then
    jar uf "$BUILD/ferrolm.jar.tmp" -C "$BUILD/native" "linux-x86-64/$LIB_NAME"
else
    python3 - "$BUILD/ferrolm.jar.tmp" "$BUILD/native" "linux-x86-64/$LIB_NAME" <<'PY'
import sys, zipfile
jar, base, name = sys.argv[1:]
with zipfile.ZipFile(jar, "a", zipfile.ZIP_DEFLATED) as z:
    z.write(f"{base}/{name}", name)
PY
fi
mv "$BUILD/ferrolm.jar.tmp" "$BUILD/ferrolm.jar"
ls -l "$BUILD/ferrolm.jar" | awk '{print $5 " bytes: " $NF}'

# ---- 6. test ---------------------------------------------------------------------------------
# From the jars only, with no library path: JNA must find the library inside ferrolm.jar.
CLASSPATH_RUN="$BUILD/ferrolm.jar:$TESTS_JAR:$JNA_JAR:$STDLIB"
step "test (JVM)"
env -u LD_LIBRARY_PATH java -cp "$CLASSPATH_RUN" ferrolm.test.MainKt

if [ "$BENCH" = 1 ]; then
    step "bench: FFI overhead"
    rust_out=$(rust_megolm_loop)
    echo "$rust_out"
    kotlin_out=$(env -u LD_LIBRARY_PATH java -cp "$CLASSPATH_RUN" ferrolm.bench.BenchKt 10000 5)
    echo "$kotlin_out"
    ffi_overhead_table "Kotlin (JVM, JNA)" kotlin "$rust_out" "$kotlin_out"
fi
step "done"
