//! Randomness on `wasm32-unknown-unknown`: the JavaScript host's `crypto.getRandomValues`.
//!
//! The core draws every random byte from `rand_core::OsRng`, which is `getrandom` 0.2. On
//! `wasm32-unknown-unknown` there is no operating system, and getrandom's own `js` backend
//! needs `wasm-bindgen`, which the JavaScript binding (uniffi-bindgen-js, plain
//! `WebAssembly.instantiate`) does not use. So this module registers getrandom's *custom*
//! backend, and that backend calls one function the JavaScript side passes in as a WebAssembly
//! import:
//!
//! ```text
//! (import "ferrolm" "fill_random" (func (param i32 i32) (result i32)))
//! ```
//!
//! `fill_random(ptr, len)` must fill `len` bytes of the module's linear memory at `ptr` from
//! `crypto.getRandomValues` and return 0, or return non-zero if it could not. The binding's
//! loader (`bindings/js/src/random.ts`) supplies it; a host that does not cannot even
//! instantiate the module (the import is unresolved), so there is no silent fallback and no
//! fixed seed anywhere. Requests are passed on in chunks of at most 65,536 bytes, the most
//! `getRandomValues` fills in one call.
//!
//! A failure comes back as a `getrandom::Error`; `OsRng` (rand_core 0.6) turns that into a
//! panic, which on this target (panic = abort) is a WebAssembly trap: the JavaScript caller gets
//! a `WebAssembly.RuntimeError`, the panic message holds only the error code, never key
//! material, and nothing is encrypted with bytes that are not random.
//!
//! Only compiled for `target_arch = "wasm32"` (see `lib.rs`); native builds use the OS.

// The only unsafe code in the crate: one foreign function and the call to it. The workspace
// denies `unsafe_code`; it is allowed for this module alone.
#![allow(unsafe_code)]

use core::num::NonZeroU32;

/// The most bytes one call asks the host for: `crypto.getRandomValues` refuses more than
/// 65,536 bytes at a time (a `QuotaExceededError`).
const MAX_CHUNK: usize = 65_536;

/// The error code for "the host reported a failure" (in getrandom's range for custom backends).
const HOST_FAILURE: u32 = getrandom::Error::CUSTOM_START + 1;

#[link(wasm_import_module = "ferrolm")]
unsafe extern "C" {
    /// Fills `len` bytes at `ptr` in this module's memory with random bytes; 0 on success.
    #[link_name = "fill_random"]
    fn ferrolm_host_fill_random(ptr: *mut u8, len: usize) -> u32;
}

/// getrandom's custom backend: the whole of `dest`, chunk by chunk, from the host.
fn fill_from_host(dest: &mut [u8]) -> Result<(), getrandom::Error> {
    for chunk in dest.chunks_mut(MAX_CHUNK) {
        // SAFETY: `chunk` is a live, exclusively borrowed region of this module's linear memory,
        // valid for writes of `chunk.len()` bytes for the duration of the call. The host writes
        // only inside [ptr, ptr + len) (bindings/js/src/random.ts builds a `Uint8Array` view of
        // exactly that range), keeps no reference to it after returning, and does not call back
        // into the module, so nothing else observes or aliases the buffer meanwhile. Any byte
        // value is a valid `u8`.
        let status = unsafe { ferrolm_host_fill_random(chunk.as_mut_ptr(), chunk.len()) };
        if status != 0 {
            return Err(NonZeroU32::new(HOST_FAILURE).map_or(getrandom::Error::UNEXPECTED, getrandom::Error::from));
        }
    }
    Ok(())
}

getrandom::register_custom_getrandom!(fill_from_host);
