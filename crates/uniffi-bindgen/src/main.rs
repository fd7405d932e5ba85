//! `uniffi-bindgen`, built from the same uniffi version as `ferrolm-ffi`, so the generated
//! bindings always match the scaffolding compiled into the library.
//!
//! Library mode reads the interface from the built cdylib itself:
//!
//! ```text
//! cargo build --release -p ferrolm-ffi
//! cargo run --release -p ferrolm-uniffi-bindgen -- generate \
//!     target/release/libferrolm_ffi.so --language kotlin --out-dir OUT --no-format
//! ```
//!
//! Run it from inside the workspace: it calls `cargo metadata` to find the crate.

fn main() {
    uniffi::uniffi_bindgen_main()
}
