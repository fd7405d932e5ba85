//! Megolm interoperability: ferrolm against vodozemac 0.10 and libolm 3.2, in both directions.
//!
//! - `stream`: 10,000 messages of one session decrypted out of order, repeatedly, by
//!   receivers of both implementations that joined at random indices.
//! - `batch`: ferrolm's `decrypt_batch` on peers' messages (shuffled, forged, altered) equals
//!   one-by-one decryption.
//! - `keys`: signed session keys and exported keys across implementations: byte-identical
//!   exports, imports, refused altered keys; compare and merge.
//! - `turnovers`: the ratchet's turnovers at 2^8, 2^16 and 2^24 (and the last index, 2^32 - 1).
//! - `pickles`: libolm-format outbound and inbound pickles across implementations, and
//!   byte-identical pickles of identical states.
//! - `versions`: version 2 (full MAC) sessions with vodozemac; version mismatches.
//!
//! One test binary (faster to build than one per file). Randomized tests print their seed;
//! set `FERROLM_INTEROP_SEED` to replay one.

mod batch;
mod common;
mod envelope;
mod keys;
mod pickles;
#[path = "../shared/rng.rs"]
mod rng;
mod stream;
mod turnovers;
mod versions;
