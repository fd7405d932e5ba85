//! # ferrolm
//!
//! End-to-end encryption for [Matrix](https://spec.matrix.org): the Olm double ratchet for
//! device-to-device channels, wire-compatible with libolm and vodozemac.
//!
//! The crate does no I/O. Stateful types ([`olm::Account`], [`olm::Session`]) are plain values;
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
//! - [`types`]: Curve25519 and Ed25519 keys, signatures, key ids, base64.
//! - [`olm`]: accounts, sessions and Olm messages.
//! - [`pickle`]: the pickle key and pickle errors shared by every stateful type.
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
