//! The Rust half of the FFI overhead measurement (see `bindings/README.md`, "FFI overhead").
//!
//! Encrypts and decrypts N Megolm messages (default 10,000) in one loop, three ways:
//!
//! - `core`: the ferrolm core directly (typed messages, no base64 at the edge);
//! - `ffi-api`: this crate's Rust API, exactly the calls a binding makes (base64 messages,
//!   the mutex), but without crossing the FFI;
//!
//! and prints the best of R repetitions (default 5) in milliseconds, one line each, so that a
//! binding's own loop over the real FFI can be compared with them. Not a test: run it with
//! `cargo run --release -p ferrolm-ffi --example megolm_loop -- [N] [R]`.

use std::time::{Duration, Instant};

use ferrolm::megolm as core;
use ferrolm_ffi::SessionVersion;
use ferrolm_ffi::megolm::{FerrolmMegolmError, GroupSession, InboundGroupSession};

/// The plaintext every binding's loop uses: 160 bytes, about the size of a short
/// `m.room.message` event.
fn plaintext() -> Vec<u8> {
    (0..160u8).map(|i| b'a' + i % 26).collect()
}

fn core_loop(n: u32, plaintext: &[u8]) -> Result<Duration, core::DecryptionError> {
    let start = Instant::now();
    let mut outbound = core::GroupSession::new(core::SessionConfig::version_1());
    let mut inbound = core::InboundGroupSession::new(&outbound.session_key(), core::SessionConfig::version_1());
    for i in 0..n {
        let message = outbound.encrypt(plaintext);
        let decrypted = inbound.decrypt(&message)?;
        assert_eq!(decrypted.message_index, i);
    }
    Ok(start.elapsed())
}

fn ffi_api_loop(n: u32, plaintext: &[u8]) -> Result<Duration, FerrolmMegolmError> {
    let start = Instant::now();
    let outbound = GroupSession::new(Some(SessionVersion::V1));
    let inbound = InboundGroupSession::new(outbound.session_key(), Some(SessionVersion::V1))?;
    for i in 0..n {
        let message = outbound.encrypt(plaintext.to_vec());
        let decrypted = inbound.decrypt(message)?;
        assert_eq!(decrypted.message_index, i);
    }
    Ok(start.elapsed())
}

fn best<E>(reps: u32, mut run: impl FnMut() -> Result<Duration, E>) -> Result<Duration, E> {
    let mut best = Duration::MAX;
    for _ in 0..reps {
        best = best.min(run()?);
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let reps: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let plaintext = plaintext();

    // Warm up caches and the allocator, as the JVM side warms up its JIT.
    core_loop(1_000, &plaintext)?;
    ffi_api_loop(1_000, &plaintext)?;

    let core = best(reps, || core_loop(n, &plaintext))?;
    let ffi_api = best(reps, || ffi_api_loop(n, &plaintext))?;
    println!("megolm_loop messages={n} reps={reps}");
    println!("rust-core ms={:.1}", core.as_secs_f64() * 1e3);
    println!("rust-ffi-api ms={:.1}", ffi_api.as_secs_f64() * 1e3);
    Ok(())
}
