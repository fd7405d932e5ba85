//! Where randomness comes from.
//!
//! Every public operation that needs randomness draws it from the operating system
//! ([`rand_core::OsRng`]). With the `caller-supplied-randomness` feature the same operations
//! also exist as `*_with_rng` methods, which consume the caller's generator in the same order
//! and layout as libolm's C API consumes its `random` buffers (32 bytes per Curve25519 or
//! Ed25519 key, in the order libolm generates them). That is what lets the test vectors
//! replay libolm's outputs byte for byte.

/// A cryptographically secure random number generator (re-exported from `rand_core`).
pub use rand_core::CryptoRngCore;

/// The operating system's generator.
pub(crate) fn os_rng() -> rand_core::OsRng {
    rand_core::OsRng
}
