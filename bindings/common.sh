# Shared by bindings/{kotlin,swift,js}/build.sh (sourced, not run): the command line, step
# headers with elapsed time, and installing Debian packages as root.
#
# Set LANGUAGE before sourcing, and pass the script's arguments:
#   LANGUAGE=swift; . "$HERE/../common.sh" "$@"
# Afterwards BENCH is 1 if --bench was given, else 0.

BENCH=0
for arg in "$@"; do
    case $arg in
        --bench) BENCH=1 ;;
        *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
    esac
done

START=$SECONDS
# "== LANGUAGE: what (t=Ns)": where the time of a run goes.
step() { echo "== $LANGUAGE: $* (t=$((SECONDS - START))s)"; }
# Runs a command as root (directly, or through sudo).
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# Installs Debian packages, refreshing the package lists only if the first attempt fails.
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || {
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    }
}

# Builds the release library (crates/ferrolm-ffi) and the workspace's uniffi-bindgen, from
# the workspace root ($ROOT), and sets LIB and BINDGEN to them. Two invocations, so the
# generator's `cli` feature never leaks into the library's build.
build_native_library() {
    step "cargo build --release (ferrolm-ffi, uniffi-bindgen)"
    (cd "$ROOT" && cargo build --release --locked -p ferrolm-ffi --lib)
    (cd "$ROOT" && cargo build --release --locked -p ferrolm-uniffi-bindgen)
    LIB=$CARGO_TARGET_DIR/release/libferrolm_ffi.so
    BINDGEN=$CARGO_TARGET_DIR/release/uniffi-bindgen
}

# The Rust half of the FFI overhead measurement: the same 10,000 Megolm encrypt+decrypt loop
# (crates/ferrolm-ffi/examples/megolm_loop.rs), natively, best of 5. Prints its output lines
# ("rust-core ms=…", "rust-ffi-api ms=…").
rust_megolm_loop() {
    local target=${CARGO_TARGET_DIR:-$HOME/.cache/ferrolm/target}
    (cd "$ROOT" && CARGO_TARGET_DIR=$target cargo build --release --locked -p ferrolm-ffi --example megolm_loop >&2)
    "$target/release/examples/megolm_loop" 10000 5
}

# The FFI overhead table: rust_megolm_loop's output and the binding's ("KEY ms=…"), under a row
# label. Usage: ffi_overhead_table LABEL KEY RUST_OUTPUT BINDING_OUTPUT
ffi_overhead_table() {
    local label=$1 key=$2 rust_out=$3 binding_out=$4
    awk -v label="$label" -v key="$key" \
        -v c="$(sed -n 's/^rust-core ms=//p' <<<"$rust_out")" \
        -v a="$(sed -n 's/^rust-ffi-api ms=//p' <<<"$rust_out")" \
        -v b="$(sed -n "s/^$key ms=//p" <<<"$binding_out")" 'BEGIN {
        printf "FFI overhead, 10,000 Megolm encrypt+decrypt (best of 5):\n"
        printf "  %-24s %8.1f ms\n", "Rust (core)", c
        printf "  %-24s %8.1f ms\n", "Rust (ferrolm-ffi API)", a
        split(label, word, " ")
        printf "  %-24s %8.1f ms   ratio %s/Rust core = %.2f, %s/Rust FFI API = %.2f\n", label, b, word[1], b / c, word[1], b / a
    }'
}
