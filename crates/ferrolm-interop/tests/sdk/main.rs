//! Interoperability with matrix-sdk-crypto (the Matrix Rust SDK's crypto crate, from
//! crates.io): an implementation of the Matrix-level formats that nobody here wrote.
//!
//! - `key_export`: key export files (`-----BEGIN MEGOLM SESSION DATA-----`) written by one side
//!   and read by the other, with real room keys: matrix-sdk-crypto's exports of its own
//!   inbound sessions decrypt in ferrolm to the same JSON and import into working ferrolm
//!   sessions; ferrolm's files decrypt in matrix-sdk-crypto and import into sessions that
//!   decrypt `m.room.encrypted` events.
//! - `secret_storage`: `m.secret_storage.v1.aes-hmac-sha2` secrets, recovery keys, key checks
//!   and passphrase-derived keys (`m.pbkdf2`) across both implementations.
//!
//! Everything crosses between the two only as it would between Matrix clients: files as
//! text, account data and events as JSON.

mod common;
mod key_export;
mod secret_storage;
