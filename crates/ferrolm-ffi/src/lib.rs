//! # ferrolm-ffi
//!
//! The [uniffi](https://mozilla.github.io/uniffi-rs/) surface of [`ferrolm`], from which the
//! Kotlin, Swift and JavaScript bindings under `bindings/` are generated (library mode: the
//! interface is read from the built library itself).
//!
//! This crate is deliberately boring. It holds no protocol logic: every function converts its
//! arguments, calls the core, and converts the result or maps the error. Conventions:
//!
//! - **Objects** ([`olm::Account`], [`olm::Session`], [`megolm::GroupSession`],
//!   [`megolm::InboundGroupSession`], [`sas::Sas`], [`sas::EstablishedSas`], [`pk::PkEncryption`],
//!   [`pk::PkDecryption`], [`pk::PkSigning`], [`secret_storage::SecretStorageKey`]) are shared
//!   with the foreign side behind an `Arc`. Those with state that changes keep it in a `Mutex`,
//!   so every object may be used from any thread.
//! - **Bytes** (plaintexts, signed payloads, raw key material) are `Vec<u8>` (`ByteArray` in
//!   Kotlin, `Data` in Swift, `Uint8Array` in JavaScript).
//! - **Keys, messages, signatures and pickles** are unpadded base64 `String`s, exactly as they
//!   appear in Matrix JSON. Inputs may be padded or not.
//! - **Pickle keys** are bytes: 32 for ferrolm's own pickle format, any length for libolm's.
//! - **Errors**: one error enum per module, each named `Ferrolm` + the module + `Error` so that
//!   no name collides with a built-in or standard-library type of Kotlin (where `…Error`
//!   becomes `…Exception`), Swift, JavaScript or Python: [`olm::FerrolmOlmError`],
//!   [`megolm::FerrolmMegolmError`], [`sas::FerrolmSasError`], [`pk::FerrolmPkError`],
//!   [`key_export::FerrolmKeyExportError`], [`secret_storage::FerrolmSecretStorageError`],
//!   [`pickle::FerrolmPickleError`], [`utility::FerrolmUtilityError`]. They keep the core's
//!   distinctions (a bad MAC is not a replay is not a malformed message), carry no secret
//!   material, and become exception subclasses in Kotlin and Swift. Each has a human message,
//!   its `Display`, exported as the method `describe()`; the bindings make it the language's
//!   own message (`message` in Kotlin and JavaScript, `description`/`localizedDescription` in
//!   Swift), so the text is the same everywhere.
//! - **Session versions** ([`SessionVersion`]) are optional arguments that default to v1,
//!   libolm's format, and errors name them `v1`/`v2`, never by their wire bytes.
//! - Nothing here panics on any input: malformed base64, keys of the wrong length, truncated
//!   messages and corrupted pickles all come back as typed errors.
//!
//! From Rust the same API reads like this (a binding's calls look alike):
//!
//! ```
//! use ferrolm_ffi::megolm::{FerrolmMegolmError, GroupSession, InboundGroupSession};
//!
//! let outbound = GroupSession::new(None); // v1, as every Matrix client
//! let inbound = InboundGroupSession::new(outbound.session_key(), None)?;
//! let message: String = outbound.encrypt(b"Hello, room".to_vec());
//! assert_eq!(inbound.decrypt(message)?.plaintext, b"Hello, room");
//! let error = inbound.decrypt("AwoA".to_owned()).unwrap_err();
//! assert!(matches!(error, FerrolmMegolmError::Malformed { .. }));
//! assert_eq!(error.describe(), "the message or key is malformed: the input is too short (3 bytes)");
//! # Ok::<(), FerrolmMegolmError>(())
//! ```
//!
//! uniffi generates the `extern "C"` scaffolding (exported symbols, raw pointers, `unsafe`
//! blocks) inside its own macros; the workspace's `unsafe_code = "deny"` lint does not fire on
//! that expansion, so it stays in force here. The one hand-written exception is compiled only
//! for `wasm32-unknown-unknown`: the module that asks the JavaScript host for random bytes
//! (`crypto.getRandomValues`) through one WebAssembly import, for the core's `OsRng` (see
//! `src/wasm_random.rs`). Native builds contain no hand-written `unsafe`.

uniffi::setup_scaffolding!();

mod convert;
pub mod key_export;
pub mod megolm;
pub mod olm;
pub mod pickle;
pub mod pk;
pub mod sas;
pub mod secret_storage;
pub mod utility;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod wasm_random;

/// The message format of an Olm or Megolm session (the core's `SessionConfig`).
///
/// Every function that takes one takes it as an optional argument: left out (or `null`/`nil`),
/// it is [`SessionVersion::V1`], the format libolm reads and every Matrix client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, uniffi::Enum)]
pub enum SessionVersion {
    /// libolm's format, with an 8-byte truncated MAC. Every Matrix client speaks it: use it.
    #[default]
    V1,
    /// The full 32-byte MAC, as vodozemac's experimental configuration. libolm cannot read it.
    V2,
}

impl std::fmt::Display for SessionVersion {
    /// `v1` or `v2`, as error messages name versions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

impl From<SessionVersion> for ferrolm::olm::SessionConfig {
    fn from(version: SessionVersion) -> Self {
        match version {
            SessionVersion::V1 => Self::version_1(),
            SessionVersion::V2 => Self::version_2(),
        }
    }
}

impl From<SessionVersion> for ferrolm::megolm::SessionConfig {
    fn from(version: SessionVersion) -> Self {
        match version {
            SessionVersion::V1 => Self::version_1(),
            SessionVersion::V2 => Self::version_2(),
        }
    }
}

impl SessionVersion {
    /// The version an optional argument stands for: [`SessionVersion::V1`] when left out.
    pub(crate) fn or_default(version: Option<Self>) -> Self {
        version.unwrap_or_default()
    }

    /// The version of a core configuration (1 or 2; anything else cannot be constructed).
    fn from_number(version: u8) -> Self {
        if version == 2 { Self::V2 } else { Self::V1 }
    }

    /// The version of an Olm or Megolm message from its version byte: 3 is v1 (8-byte MAC),
    /// 4 is v2 (32-byte MAC), in both protocols. The decoders refuse every other byte, so a
    /// version mismatch the core reports only ever carries these two.
    pub(crate) fn from_message_version(byte: u8) -> Self {
        if byte == 4 { Self::V2 } else { Self::V1 }
    }
}

impl From<ferrolm::olm::SessionConfig> for SessionVersion {
    fn from(config: ferrolm::olm::SessionConfig) -> Self {
        Self::from_number(config.version())
    }
}

impl From<ferrolm::megolm::SessionConfig> for SessionVersion {
    fn from(config: ferrolm::megolm::SessionConfig) -> Self {
        Self::from_number(config.version())
    }
}
