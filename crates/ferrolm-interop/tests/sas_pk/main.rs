//! SAS and PK (backup encryption, cross-signing keys) interoperability: ferrolm against
//! vodozemac 0.10, in both directions.
//!
//! - `sas`: `m.sas.v1` exchanges between a ferrolm side and a vodozemac side: the same SAS
//!   bytes, emoji and decimals for any info string and length, `hkdf-hmac-sha256.v2` MACs that
//!   verify across, libolm's malformed legacy MAC byte-identical, small-order keys refused.
//! - `pk`: `m.megolm_backup.v1.curve25519-aes-sha2` messages across implementations, the
//!   8-byte MAC over the empty input on both sides, libolm pickles of backup keys read across
//!   (and byte-identical), and Ed25519 signing keys from the same seed signing identically.
//!
//! Keys, MACs and messages cross between the implementations only as unpadded base64, as
//! they travel between Matrix clients.

mod pk;
mod sas;
