#!/usr/bin/env bash
# JavaScript bindings for ferrolm (TypeScript over WebAssembly), end to end:
#   1. installs the toolchain if missing: Node >= 20 and Debian's chromium (apt); Debian's
#      rustc-web 1.96 with rust-web-src and lld-22, unpacked (not installed) under the cache,
#      because rustup offers no wasm32 target here; uniffi-bindgen-js 0.2.1 (cargo install,
#      under the cache); the dev tools of package.json (typescript, @types/node,
#      playwright-core) with `npm ci`;
#   2. builds crates/ferrolm-ffi for wasm32-unknown-unknown with the Debian rustc (rustup's
#      cargo, -Zbuild-std, in its own target directory $CACHE/wasm-target);
#   3. generates the TypeScript from the .wasm (uniffi-bindgen-js), gives the error classes
#      their human `message` (tools/patch-errors.mjs), and wires in ferrolm's randomness
#      import (tools/patch-runtime.mjs: crypto.getRandomValues, see src/random.ts);
#   4. compiles the package (build/package/dist: .js, .d.ts, ferrolm_ffi.wasm) and packs it with
#      `npm pack` (build/ferrolm-<version>.tgz);
#   5. installs the tarball into a scratch project (build/consumer) and compiles the tests there
#      against the installed package;
#   6. runs the tests with node:test: every check under Node, and the same checks in headless
#      Chromium (a page served by a local HTTP server). Last line: "js: N passed, M failed".
#
# Idempotent: a second run reuses the toolchain, cargo's incremental build and the compiled
# package when nothing changed, and re-runs the tests. Everything it makes goes to
# bindings/js/build/ (not committed), bindings/js/node_modules/ and
# ${FERROLM_CACHE:-$HOME/.cache/ferrolm} (wasm-toolchain/, wasm-target/, tools/).
#
# Usage: bindings/js/build.sh [--bench]
#   --bench   afterwards, measure the FFI overhead: 10,000 Megolm encrypt+decrypt from JavaScript
#             (Node, over WebAssembly) against the same loop in Rust
#             (crates/ferrolm-ffi/examples/megolm_loop.rs, native).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${FERROLM_CACHE:-$HOME/.cache/ferrolm}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
NATIVE_TARGET=${CARGO_TARGET_DIR:-$CACHE/target}   # shared with the other native builds
WASM_TARGET=${FERROLM_WASM_TARGET:-$CACHE/wasm-target}   # the Debian rustc's builds only
WASM_TOOLCHAIN=$CACHE/wasm-toolchain
WASM_ROOT=$WASM_TOOLCHAIN/root
# Debian bookworm's rustc-web (it can build wasm32-unknown-unknown, with -Zbuild-std).
WASM_DEBS=(rustc-web libstd-rust-web-1.96 libstd-rust-web-dev rust-web-src libllvm22 lld-22 liblld-22)
BINDGEN_JS_VERSION=0.2.1
BINDGEN_JS=$CACHE/tools/bin/uniffi-bindgen-js
CHROMIUM=${FERROLM_CHROMIUM:-/usr/bin/chromium}
BUILD=$HERE/build
unset LD_LIBRARY_PATH RUSTC RUSTDOC RUSTC_BOOTSTRAP   # only ever set for the wasm build below

# Whatever happens, the last line is the summary scripts/test.sh reads (a setup failure counts
# as one failed test).
SUMMARY=
trap 'rc=$?; if [ -z "$SUMMARY" ]; then echo "js: setup failed (exit status $rc)"; echo "js: 0 passed, 1 failed"; fi' EXIT

LANGUAGE=js
# shellcheck source=../common.sh
. "$HERE/../common.sh" "$@"
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- 1. toolchain ---------------------------------------------------------------------------
step "toolchain"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing Node.js and npm"
    apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "Node $(node --version) is too old: ferrolm's package needs Node >= 20 (globalThis.crypto, node:test)" >&2
    exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "installing Debian's chromium (for the browser test)"
    apt_install chromium
fi
"$CHROMIUM" --version >/dev/null 2>&1 || { echo "chromium at $CHROMIUM does not run" >&2; exit 1; }

if [ ! -x "$WASM_ROOT/usr/bin/rustc" ]; then
    echo "unpacking Debian's rustc-web into $WASM_TOOLCHAIN (apt-get download + dpkg-deb -x; not installed)"
    tmp=$WASM_TOOLCHAIN.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp/debs" "$tmp/root"
    (cd "$tmp/debs" && { apt-get download "${WASM_DEBS[@]}" || { as_root apt-get update -qq && apt-get download "${WASM_DEBS[@]}"; }; })
    for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
    rm -rf "$tmp/debs" "$WASM_TOOLCHAIN"
    mv "$tmp" "$WASM_TOOLCHAIN"
fi
WASM_LIBS=$WASM_ROOT/usr/lib/x86_64-linux-gnu:$WASM_ROOT/usr/lib
WASM_LD=$(ls "$WASM_ROOT"/usr/lib/llvm-*/bin/wasm-ld | head -1)
# The Debian compiler driven by rustup's cargo (RUSTC_BOOTSTRAP unlocks -Zbuild-std).
wasm_env=(env "LD_LIBRARY_PATH=$WASM_LIBS" "RUSTC=$WASM_ROOT/usr/bin/rustc" "RUSTDOC=$WASM_ROOT/usr/bin/rustdoc"
    RUSTC_BOOTSTRAP=1 "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=$WASM_LD" "CARGO_TARGET_DIR=$WASM_TARGET")
wasm_rustc_version=$("${wasm_env[@]}" "$WASM_ROOT/usr/bin/rustc" --version)

if [ ! -x "$BINDGEN_JS" ] || ! grep -q "\"uniffi-bindgen-js $BINDGEN_JS_VERSION " "$CACHE/tools/.crates.toml" 2>/dev/null; then
    echo "installing uniffi-bindgen-js $BINDGEN_JS_VERSION into $CACHE/tools (rustup's toolchain, a temporary target dir)"
    env -u CARGO_TARGET_DIR cargo install --quiet uniffi-bindgen-js --version "=$BINDGEN_JS_VERSION" --root "$CACHE/tools"
fi

cd "$HERE"
deps_stamp="$(node --version) $(hash_of package.json package-lock.json)"
if [ ! -f node_modules/.ferrolm-stamp ] || [ "$(cat node_modules/.ferrolm-stamp)" != "$deps_stamp" ]; then
    echo "installing the dev tools (npm ci: typescript, @types/node, playwright-core)"
    npm ci --no-fund --no-audit --loglevel=error
    echo "$deps_stamp" >node_modules/.ferrolm-stamp
fi
TSC=$HERE/node_modules/.bin/tsc
echo "node: $(node --version); chromium: $("$CHROMIUM" --version 2>/dev/null); wasm rustc: $wasm_rustc_version;" \
    "uniffi-bindgen-js: $BINDGEN_JS_VERSION; tsc: $("$TSC" --version)"

# ---- 2. wasm32 library -----------------------------------------------------------------------
step "cargo build --release --target wasm32-unknown-unknown (ferrolm-ffi, Debian rustc-web)"
cd "$ROOT"
# No debug info in the shipped module (the workspace's release profile keeps line tables).
"${wasm_env[@]}" CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --release --locked -p ferrolm-ffi --lib \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --features uniffi/wasm-unstable-single-threaded,uniffi/scaffolding-ffi-buffer-fns
WASM=$WASM_TARGET/wasm32-unknown-unknown/release/ferrolm_ffi.wasm
ls -l "$WASM" | awk '{print $5 " bytes: " $NF}'
# The module must import exactly one function, ferrolm's randomness, and nothing else.
imports=$(node -e '
    const m = new WebAssembly.Module(require("fs").readFileSync(process.argv[1]));
    console.log(WebAssembly.Module.imports(m).map((i) => `${i.module}.${i.name}:${i.kind}`).join(" "));' "$WASM")
if [ "$imports" != "ferrolm.fill_random:function" ]; then
    echo "unexpected imports of $WASM: '$imports' (expected only ferrolm.fill_random)" >&2
    exit 1
fi
echo "wasm imports: $imports"

# ---- 3. generate -----------------------------------------------------------------------------
step "generate TypeScript (uniffi-bindgen-js $BINDGEN_JS_VERSION), patch the error messages, wire in the randomness import"
rm -rf "$BUILD/gen"
mkdir -p "$BUILD/gen"
# The crate's uniffi.toml holds each language's settings (a [bindings.js] section, if any, is
# this generator's); uniffi-bindgen-js would otherwise look for one next to the .wasm.
"$BINDGEN_JS" generate "$WASM" --config "$ROOT/crates/ferrolm-ffi/uniffi.toml" --out-dir "$BUILD/gen" >/dev/null
for f in ferrolm_ffi.ts uniffi_runtime.ts ferrolm_ffi.wasm; do
    [ -f "$BUILD/gen/$f" ] || { echo "uniffi-bindgen-js did not write $f (wrote: $(ls "$BUILD/gen"))" >&2; exit 1; }
done
mkdir -p "$BUILD/src.new"
rm -rf "$BUILD/src.new"/*
cp "$HERE"/src/*.ts "$BUILD/src.new/"
node "$HERE/tools/patch-errors.mjs" "$BUILD/gen/ferrolm_ffi.ts" "$BUILD/src.new/ferrolm_ffi.ts"
node "$HERE/tools/patch-runtime.mjs" "$BUILD/gen/uniffi_runtime.ts" "$BUILD/src.new/uniffi_runtime.ts"
echo "$(wc -l <"$BUILD/gen/ferrolm_ffi.ts") lines in build/gen/ferrolm_ffi.ts"

# ---- 4. package ------------------------------------------------------------------------------
VERSION=$(node -p 'require(process.argv[1]).version' "$HERE/package.json")
TARBALL=$BUILD/ferrolm-$VERSION.tgz
package_stamp="$(hash_of "$BUILD"/src.new/*.ts "$BUILD/gen/ferrolm_ffi.wasm" "$HERE/package.json" "$HERE/tsconfig.json" "$HERE/README.md") $("$TSC" --version)"
if [ -f "$TARBALL" ] && [ "$(cat "$BUILD/package.stamp" 2>/dev/null)" = "$package_stamp" ]; then
    rm -rf "$BUILD/src.new"
    step "package unchanged, reusing ${TARBALL#"$ROOT"/}"
else
    step "tsc (package) and npm pack"
    rm -f "$BUILD/package.stamp" "$TARBALL"
    rm -rf "$BUILD/src" "$BUILD/package"
    mv "$BUILD/src.new" "$BUILD/src"
    "$TSC" -p "$HERE/tsconfig.json"
    cp "$BUILD/gen/ferrolm_ffi.wasm" "$BUILD/package/dist/ferrolm_ffi.wasm"
    cp "$HERE/package.json" "$HERE/README.md" "$BUILD/package/"
    (cd "$BUILD/package" && npm pack --silent --pack-destination "$BUILD" >/dev/null)
    [ -f "$TARBALL" ] || { echo "npm pack did not write $TARBALL" >&2; exit 1; }
    echo "$package_stamp" >"$BUILD/package.stamp"
fi
contents=$(tar -tzf "$TARBALL" | sort)
for f in package/package.json package/README.md package/dist/index.js package/dist/index.d.ts \
    package/dist/ferrolm_ffi.js package/dist/ferrolm_ffi.d.ts package/dist/uniffi_runtime.js \
    package/dist/random.js package/dist/ferrolm_ffi.wasm; do
    grep -qx "$f" <<<"$contents" || { echo "$f is missing from $TARBALL" >&2; exit 1; }
done
echo "$(ls -l "$TARBALL" | awk '{print $5}') bytes: ${TARBALL#"$ROOT"/} ($(wc -l <<<"$contents") files)"

# ---- 5. install the tarball and compile the tests against it ---------------------------------
step "install the tarball into build/consumer, compile the tests"
CONSUMER=$BUILD/consumer
rm -rf "$CONSUMER"
mkdir -p "$CONSUMER/src"
printf '{ "name": "ferrolm-consumer", "private": true, "type": "module" }\n' >"$CONSUMER/package.json"
(cd "$CONSUMER" && npm install --no-fund --no-audit --loglevel=error --prefer-offline "$TARBALL")
cp -r "$HERE/test" "$HERE/bench" "$CONSUMER/src/"
"$TSC" -p "$HERE/test/tsconfig.json"
cp "$HERE/test/browser/index.html" "$CONSUMER/test/browser/index.html"

# ---- 6. test ---------------------------------------------------------------------------------
step "test (node:test: Node, then headless Chromium)"
TAP=$BUILD/results.tap
rm -f "$TAP"
status=0
(cd "$CONSUMER" && FERROLM_CHROMIUM="$CHROMIUM" node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$TAP" \
    test/node.test.js test/random.test.js test/browser.test.js) || status=$?
# The TAP summary counts every test (suites apart): "# pass N", "# fail M", …
summary() { local n; n=$(sed -n "s/^# $1 \\([0-9]*\\)\$/\\1/p" "$TAP" 2>/dev/null | tail -1); echo "${n:-0}"; }
passed=$(summary pass)
failed=$(( $(summary fail) + $(summary cancelled) + $(summary skipped) + $(summary todo) ))
if ! grep -q '^# pass ' "$TAP" 2>/dev/null; then failed=$((failed + 1)); fi   # no summary at all
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi   # node:test failed outside a test

if [ "$BENCH" = 1 ] && [ "$failed" -eq 0 ]; then
    step "bench: FFI overhead"
    cd "$ROOT"
    rust_out=$(CARGO_TARGET_DIR=$NATIVE_TARGET rust_megolm_loop)
    echo "$rust_out"
    js_out=$(cd "$CONSUMER" && node bench/bench.js 10000 5)
    echo "$js_out"
    ffi_overhead_table "JS (Node, WASM)" js "$rust_out" "$js_out"
    echo "  (the Rust rows are native code; the JS row runs the same Rust compiled to wasm32, so its"
    echo "   ratio is WebAssembly-vs-native plus the JS<->wasm crossing, not the crossing alone)"
fi
step "done"
SUMMARY="js: $passed passed, $failed failed"
echo "$SUMMARY"
[ "$failed" -eq 0 ]
