//! # ferrolm
//!
//! End-to-end encryption for [Matrix](https://spec.matrix.org): the Olm double ratchet for
//! device-to-device channels and the Megolm ratchet for rooms, wire-compatible with libolm and
//! vodozemac, and the rest of the cryptography a client needs (SAS verification, key backups,
//! key export files, secret storage).
//!
//! The crate does no I/O. Stateful types ([`olm::Account`], [`olm::Session`],
//! [`megolm::GroupSession`], [`megolm::InboundGroupSession`], [`pk::PkDecryption`]) are plain values;
//! persist them with their encrypted pickles ([`pickle`]) and restore them later. Every
//! decoder, decryptor and unpickler returns a typed error on bad input and never panics.
//!
//! ```
//! use ferrolm::olm::{Account, OlmMessage, SessionConfig};
//!
//! let alice = Account::new();
//! let mut bob = Account::new();
//!
//! // Bob publishes a one-time key; Alice claims it and opens a session.
//! bob.generate_one_time_keys(1);
//! let (_, bob_otk) = bob.one_time_keys().into_iter().next().expect("one key");
//! bob.mark_keys_as_published();
//! let mut alice_session = alice
//!     .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), bob_otk)
//!     .expect("valid keys");
//!
//! // Alice's first messages are pre-key messages; Bob creates his session from one.
//! let OlmMessage::PreKey(first) = alice_session.encrypt(b"Hello, Bob") else { unreachable!() };
//! let created = bob
//!     .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first)
//!     .expect("decrypts");
//! assert_eq!(created.plaintext, b"Hello, Bob");
//! let mut bob_session = created.session;
//!
//! // From then on both sides ratchet forward.
//! let reply = bob_session.encrypt(b"Hi, Alice");
//! assert_eq!(alice_session.decrypt(&reply).expect("decrypts"), b"Hi, Alice");
//! ```
//!
//! ## Modules
//! - [`types`]: Curve25519 and Ed25519 keys, signatures, key ids, constant-time base64.
//! - [`olm`]: accounts (identity, one-time and fallback keys), sessions and Olm messages
//!   (`m.olm.v1.curve25519-aes-sha2`).
//! - [`megolm`]: outbound and inbound group sessions, session keys (shared and exported),
//!   Megolm messages and batch decryption (`m.megolm.v1.aes-sha2`).
//! - [`sas`]: the short authentication string's key agreement, emoji and decimals, and the
//!   verification MACs (`m.sas.v1`).
//! - [`pk`]: the public-key encryption of server-side key backups
//!   (`m.megolm_backup.v1.curve25519-aes-sha2`) and PK signing keys.
//! - [`key_export`]: the passphrase-encrypted room key export file.
//! - [`secret_storage`]: secret storage keys from a passphrase or a recovery key, and the
//!   encryption of secrets in account data (`m.secret_storage.v1.aes-hmac-sha2`).
//! - [`pickle`]: the pickle key and pickle errors shared by every stateful type, ferrolm's own
//!   authenticated envelope (with associated data) and libolm's.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
mod crypto;
mod rng;
mod secret_list;

#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod key_export;
pub mod megolm;
pub mod olm;
pub mod pickle;
pub mod pk;
pub mod sas;
pub mod secret_storage;
pub mod types;

pub use rng::CryptoRngCore;
/// Re-exported: secret outputs (session keys, pickled bytes) come in `zeroize::Zeroizing` buffers.
pub use zeroize;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
