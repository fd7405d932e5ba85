//! A small safe wrapper over the system libolm's C API (`olm/olm.h`, libolm 3.2).
//!
//! Only what the interop tests need is wrapped: [`Account`], [`Session`] and [`Utility`]
//! (SHA-256, Ed25519 verification) for Olm, and [`OutboundGroupSession`] and
//! [`InboundGroupSession`] for Megolm. The plumbing is generic — every libolm object is a
//! [`Handle`] over caller-allocated memory described by an [`ObjectKind`] — so the SAS and PK
//! objects can be added later with a few lines each.
//!
//! Rules the wrapper enforces:
//!
//! - Every call's return value is checked against `olm_error()`; a failure becomes an
//!   [`Error`] carrying libolm's own error string (`olm_*_last_error`) and code.
//! - libolm decodes base64 *in place*: functions that take a message or a pickle destroy
//!   their input buffer. The wrapper always hands libolm a private copy.
//! - Randomness comes from the operating system by default. Each operation that consumes
//!   randomness also has a `*_with_random` variant that takes the bytes explicitly (libolm
//!   reports `NOT_ENOUGH_RANDOM` when they are too few), for reproducible test vectors.
//! - Objects are cleared with `olm_clear_*` and their memory zeroed before it is freed.
//!
//! Olm messages cross the boundary as a [`MessageType`] and an unpadded base64 body, as in
//! Matrix `m.room.encrypted` events; Megolm messages and session keys as unpadded base64.
//! Session keys are secret: they come back in buffers that zero themselves
//! ([`Zeroizing`]), and the wrapper zeroes its own copies.

use core::ffi::{c_char, c_int, c_void};
use core::marker::{PhantomData, PhantomPinned};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ffi::CStr;

use rand_core::RngCore;
use zeroize::{Zeroize, Zeroizing};

/// The raw C API, declared by hand from `olm/olm.h`, `olm/error.h`,
/// `olm/outbound_group_session.h` and `olm/inbound_group_session.h` (libolm 3.2.13).
#[allow(missing_docs)]
pub mod ffi {
    use core::ffi::{c_char, c_int, c_void};
    use core::marker::{PhantomData, PhantomPinned};

    /// `OlmAccount` (opaque).
    #[repr(C)]
    pub struct OlmAccount {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `OlmSession` (opaque).
    #[repr(C)]
    pub struct OlmSession {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `OlmUtility` (opaque).
    #[repr(C)]
    pub struct OlmUtility {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `OlmPkDecryption` (opaque).
    #[repr(C)]
    pub struct OlmPkDecryption {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `OlmOutboundGroupSession` (opaque).
    #[repr(C)]
    pub struct OlmOutboundGroupSession {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `OlmInboundGroupSession` (opaque).
    #[repr(C)]
    pub struct OlmInboundGroupSession {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    unsafe extern "C" {
        pub fn olm_get_library_version(major: *mut u8, minor: *mut u8, patch: *mut u8);
        pub fn olm_error() -> usize;

        pub fn olm_account_size() -> usize;
        pub fn olm_session_size() -> usize;
        pub fn olm_utility_size() -> usize;
        pub fn olm_account(memory: *mut c_void) -> *mut OlmAccount;
        pub fn olm_session(memory: *mut c_void) -> *mut OlmSession;
        pub fn olm_utility(memory: *mut c_void) -> *mut OlmUtility;

        pub fn olm_account_last_error(account: *const OlmAccount) -> *const c_char;
        pub fn olm_account_last_error_code(account: *const OlmAccount) -> c_int;
        pub fn olm_session_last_error(session: *const OlmSession) -> *const c_char;
        pub fn olm_session_last_error_code(session: *const OlmSession) -> c_int;
        pub fn olm_utility_last_error(utility: *const OlmUtility) -> *const c_char;
        pub fn olm_utility_last_error_code(utility: *const OlmUtility) -> c_int;

        pub fn olm_clear_account(account: *mut OlmAccount) -> usize;
        pub fn olm_clear_session(session: *mut OlmSession) -> usize;
        pub fn olm_clear_utility(utility: *mut OlmUtility) -> usize;

        pub fn olm_pickle_account_length(account: *const OlmAccount) -> usize;
        pub fn olm_pickle_session_length(session: *const OlmSession) -> usize;
        pub fn olm_pickle_account(
            account: *mut OlmAccount,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_pickle_session(
            session: *mut OlmSession,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_unpickle_account(
            account: *mut OlmAccount,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_unpickle_session(
            session: *mut OlmSession,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;

        pub fn olm_create_account_random_length(account: *const OlmAccount) -> usize;
        pub fn olm_create_account(account: *mut OlmAccount, random: *mut c_void, random_length: usize) -> usize;
        pub fn olm_account_identity_keys_length(account: *const OlmAccount) -> usize;
        pub fn olm_account_identity_keys(
            account: *mut OlmAccount,
            identity_keys: *mut c_void,
            identity_key_length: usize,
        ) -> usize;
        pub fn olm_account_signature_length(account: *const OlmAccount) -> usize;
        pub fn olm_account_sign(
            account: *mut OlmAccount,
            message: *const c_void,
            message_length: usize,
            signature: *mut c_void,
            signature_length: usize,
        ) -> usize;
        pub fn olm_account_one_time_keys_length(account: *const OlmAccount) -> usize;
        pub fn olm_account_one_time_keys(
            account: *mut OlmAccount,
            one_time_keys: *mut c_void,
            one_time_keys_length: usize,
        ) -> usize;
        pub fn olm_account_mark_keys_as_published(account: *mut OlmAccount) -> usize;
        pub fn olm_account_max_number_of_one_time_keys(account: *const OlmAccount) -> usize;
        pub fn olm_account_generate_one_time_keys_random_length(
            account: *const OlmAccount,
            number_of_keys: usize,
        ) -> usize;
        pub fn olm_account_generate_one_time_keys(
            account: *mut OlmAccount,
            number_of_keys: usize,
            random: *mut c_void,
            random_length: usize,
        ) -> usize;
        pub fn olm_account_generate_fallback_key_random_length(account: *const OlmAccount) -> usize;
        pub fn olm_account_generate_fallback_key(
            account: *mut OlmAccount,
            random: *mut c_void,
            random_length: usize,
        ) -> usize;
        pub fn olm_account_fallback_key_length(account: *const OlmAccount) -> usize;
        pub fn olm_account_fallback_key(
            account: *mut OlmAccount,
            fallback_key: *mut c_void,
            fallback_key_size: usize,
        ) -> usize;
        pub fn olm_account_unpublished_fallback_key_length(account: *const OlmAccount) -> usize;
        pub fn olm_account_unpublished_fallback_key(
            account: *mut OlmAccount,
            fallback_key: *mut c_void,
            fallback_key_size: usize,
        ) -> usize;
        pub fn olm_account_forget_old_fallback_key(account: *mut OlmAccount);

        pub fn olm_create_outbound_session_random_length(session: *const OlmSession) -> usize;
        pub fn olm_create_outbound_session(
            session: *mut OlmSession,
            account: *const OlmAccount,
            their_identity_key: *const c_void,
            their_identity_key_length: usize,
            their_one_time_key: *const c_void,
            their_one_time_key_length: usize,
            random: *mut c_void,
            random_length: usize,
        ) -> usize;
        pub fn olm_create_inbound_session(
            session: *mut OlmSession,
            account: *mut OlmAccount,
            one_time_key_message: *mut c_void,
            message_length: usize,
        ) -> usize;
        pub fn olm_create_inbound_session_from(
            session: *mut OlmSession,
            account: *mut OlmAccount,
            their_identity_key: *const c_void,
            their_identity_key_length: usize,
            one_time_key_message: *mut c_void,
            message_length: usize,
        ) -> usize;
        pub fn olm_session_id_length(session: *const OlmSession) -> usize;
        pub fn olm_session_id(session: *mut OlmSession, id: *mut c_void, id_length: usize) -> usize;
        pub fn olm_session_has_received_message(session: *const OlmSession) -> c_int;
        pub fn olm_session_describe(session: *mut OlmSession, buf: *mut c_char, buflen: usize);
        pub fn olm_matches_inbound_session(
            session: *mut OlmSession,
            one_time_key_message: *mut c_void,
            message_length: usize,
        ) -> usize;
        pub fn olm_matches_inbound_session_from(
            session: *mut OlmSession,
            their_identity_key: *const c_void,
            their_identity_key_length: usize,
            one_time_key_message: *mut c_void,
            message_length: usize,
        ) -> usize;
        pub fn olm_remove_one_time_keys(account: *mut OlmAccount, session: *mut OlmSession) -> usize;

        pub fn olm_encrypt_message_type(session: *const OlmSession) -> usize;
        pub fn olm_encrypt_random_length(session: *const OlmSession) -> usize;
        pub fn olm_encrypt_message_length(session: *const OlmSession, plaintext_length: usize) -> usize;
        pub fn olm_encrypt(
            session: *mut OlmSession,
            plaintext: *const c_void,
            plaintext_length: usize,
            random: *mut c_void,
            random_length: usize,
            message: *mut c_void,
            message_length: usize,
        ) -> usize;
        pub fn olm_decrypt_max_plaintext_length(
            session: *mut OlmSession,
            message_type: usize,
            message: *mut c_void,
            message_length: usize,
        ) -> usize;
        pub fn olm_decrypt(
            session: *mut OlmSession,
            message_type: usize,
            message: *mut c_void,
            message_length: usize,
            plaintext: *mut c_void,
            max_plaintext_length: usize,
        ) -> usize;

        pub fn olm_sha256_length(utility: *const OlmUtility) -> usize;
        pub fn olm_sha256(
            utility: *mut OlmUtility,
            input: *const c_void,
            input_length: usize,
            output: *mut c_void,
            output_length: usize,
        ) -> usize;
        pub fn olm_ed25519_verify(
            utility: *mut OlmUtility,
            key: *const c_void,
            key_length: usize,
            message: *const c_void,
            message_length: usize,
            signature: *mut c_void,
            signature_length: usize,
        ) -> usize;

        // Megolm: olm/outbound_group_session.h
        pub fn olm_outbound_group_session_size() -> usize;
        pub fn olm_outbound_group_session(memory: *mut c_void) -> *mut OlmOutboundGroupSession;
        pub fn olm_outbound_group_session_last_error(session: *const OlmOutboundGroupSession) -> *const c_char;
        pub fn olm_outbound_group_session_last_error_code(session: *const OlmOutboundGroupSession) -> c_int;
        pub fn olm_clear_outbound_group_session(session: *mut OlmOutboundGroupSession) -> usize;
        pub fn olm_pickle_outbound_group_session_length(session: *const OlmOutboundGroupSession) -> usize;
        pub fn olm_pickle_outbound_group_session(
            session: *mut OlmOutboundGroupSession,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_unpickle_outbound_group_session(
            session: *mut OlmOutboundGroupSession,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_init_outbound_group_session_random_length(session: *const OlmOutboundGroupSession) -> usize;
        pub fn olm_init_outbound_group_session(
            session: *mut OlmOutboundGroupSession,
            random: *mut u8,
            random_length: usize,
        ) -> usize;
        pub fn olm_group_encrypt_message_length(
            session: *mut OlmOutboundGroupSession,
            plaintext_length: usize,
        ) -> usize;
        pub fn olm_group_encrypt(
            session: *mut OlmOutboundGroupSession,
            plaintext: *const u8,
            plaintext_length: usize,
            message: *mut u8,
            message_length: usize,
        ) -> usize;
        pub fn olm_outbound_group_session_id_length(session: *const OlmOutboundGroupSession) -> usize;
        pub fn olm_outbound_group_session_id(
            session: *mut OlmOutboundGroupSession,
            id: *mut u8,
            id_length: usize,
        ) -> usize;
        pub fn olm_outbound_group_session_message_index(session: *mut OlmOutboundGroupSession) -> u32;
        pub fn olm_outbound_group_session_key_length(session: *const OlmOutboundGroupSession) -> usize;
        pub fn olm_outbound_group_session_key(
            session: *mut OlmOutboundGroupSession,
            key: *mut u8,
            key_length: usize,
        ) -> usize;

        // Megolm: olm/inbound_group_session.h
        pub fn olm_inbound_group_session_size() -> usize;
        pub fn olm_inbound_group_session(memory: *mut c_void) -> *mut OlmInboundGroupSession;
        pub fn olm_inbound_group_session_last_error(session: *const OlmInboundGroupSession) -> *const c_char;
        pub fn olm_inbound_group_session_last_error_code(session: *const OlmInboundGroupSession) -> c_int;
        pub fn olm_clear_inbound_group_session(session: *mut OlmInboundGroupSession) -> usize;

        // pk.h: backup decryption (m.megolm_backup.v1.curve25519-aes-sha2).
        pub fn olm_pk_decryption_size() -> usize;
        pub fn olm_pk_decryption(memory: *mut c_void) -> *mut OlmPkDecryption;
        pub fn olm_pk_decryption_last_error(decryption: *const OlmPkDecryption) -> *const c_char;
        pub fn olm_pk_decryption_last_error_code(decryption: *const OlmPkDecryption) -> c_int;
        pub fn olm_clear_pk_decryption(decryption: *mut OlmPkDecryption) -> usize;
        pub fn olm_pk_key_length() -> usize;
        pub fn olm_pk_key_from_private(
            decryption: *mut OlmPkDecryption,
            pubkey: *mut c_void,
            pubkey_length: usize,
            privkey: *const c_void,
            privkey_length: usize,
        ) -> usize;
        pub fn olm_pk_max_plaintext_length(decryption: *const OlmPkDecryption, ciphertext_length: usize) -> usize;
        pub fn olm_pk_decrypt(
            decryption: *mut OlmPkDecryption,
            ephemeral_key: *const c_void,
            ephemeral_key_length: usize,
            mac: *const c_void,
            mac_length: usize,
            ciphertext: *mut c_void,
            ciphertext_length: usize,
            plaintext: *mut c_void,
            max_plaintext_length: usize,
        ) -> usize;
        pub fn olm_pickle_inbound_group_session_length(session: *const OlmInboundGroupSession) -> usize;
        pub fn olm_pickle_inbound_group_session(
            session: *mut OlmInboundGroupSession,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_unpickle_inbound_group_session(
            session: *mut OlmInboundGroupSession,
            key: *const c_void,
            key_length: usize,
            pickled: *mut c_void,
            pickled_length: usize,
        ) -> usize;
        pub fn olm_init_inbound_group_session(
            session: *mut OlmInboundGroupSession,
            session_key: *const u8,
            session_key_length: usize,
        ) -> usize;
        pub fn olm_import_inbound_group_session(
            session: *mut OlmInboundGroupSession,
            session_key: *const u8,
            session_key_length: usize,
        ) -> usize;
        pub fn olm_group_decrypt_max_plaintext_length(
            session: *mut OlmInboundGroupSession,
            message: *mut u8,
            message_length: usize,
        ) -> usize;
        pub fn olm_group_decrypt(
            session: *mut OlmInboundGroupSession,
            message: *mut u8,
            message_length: usize,
            plaintext: *mut u8,
            max_plaintext_length: usize,
            message_index: *mut u32,
        ) -> usize;
        pub fn olm_inbound_group_session_id_length(session: *const OlmInboundGroupSession) -> usize;
        pub fn olm_inbound_group_session_id(
            session: *mut OlmInboundGroupSession,
            id: *mut u8,
            id_length: usize,
        ) -> usize;
        pub fn olm_inbound_group_session_first_known_index(session: *const OlmInboundGroupSession) -> u32;
        pub fn olm_inbound_group_session_is_verified(session: *const OlmInboundGroupSession) -> c_int;
        pub fn olm_export_inbound_group_session_length(session: *const OlmInboundGroupSession) -> usize;
        pub fn olm_export_inbound_group_session(
            session: *mut OlmInboundGroupSession,
            key: *mut u8,
            key_length: usize,
            message_index: u32,
        ) -> usize;
    }
}

/// libolm's version, as `(major, minor, patch)`.
pub fn library_version() -> (u8, u8, u8) {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: the three pointers are valid, writable `u8`s.
    unsafe { ffi::olm_get_library_version(&mut major, &mut minor, &mut patch) };
    (major, minor, patch)
}

/// libolm's error codes (`enum OlmErrorCode`), plus one for the wrapper's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `OLM_NOT_ENOUGH_RANDOM`
    NotEnoughRandom,
    /// `OLM_OUTPUT_BUFFER_TOO_SMALL`
    OutputBufferTooSmall,
    /// `OLM_BAD_MESSAGE_VERSION`
    BadMessageVersion,
    /// `OLM_BAD_MESSAGE_FORMAT`
    BadMessageFormat,
    /// `OLM_BAD_MESSAGE_MAC`
    BadMessageMac,
    /// `OLM_BAD_MESSAGE_KEY_ID`
    BadMessageKeyId,
    /// `OLM_INVALID_BASE64`
    InvalidBase64,
    /// `OLM_BAD_ACCOUNT_KEY`
    BadAccountKey,
    /// `OLM_UNKNOWN_PICKLE_VERSION`
    UnknownPickleVersion,
    /// `OLM_CORRUPTED_PICKLE`
    CorruptedPickle,
    /// `OLM_BAD_SESSION_KEY`
    BadSessionKey,
    /// `OLM_UNKNOWN_MESSAGE_INDEX`
    UnknownMessageIndex,
    /// `OLM_BAD_LEGACY_ACCOUNT_PICKLE`
    BadLegacyAccountPickle,
    /// `OLM_BAD_SIGNATURE`
    BadSignature,
    /// `OLM_INPUT_BUFFER_TOO_SMALL`
    InputBufferTooSmall,
    /// `OLM_SAS_THEIR_KEY_NOT_SET`
    SasTheirKeyNotSet,
    /// `OLM_PICKLE_EXTRA_DATA`
    PickleExtraData,
    /// A code this wrapper does not know (a newer libolm), or `OLM_SUCCESS` reported with a
    /// failing return value.
    Other(i32),
    /// libolm succeeded but its output was not what its documentation promises (e.g. JSON
    /// that does not parse); raised by the wrapper, not by libolm.
    UnexpectedOutput,
}

impl ErrorCode {
    fn from_raw(code: c_int) -> Self {
        match code {
            1 => Self::NotEnoughRandom,
            2 => Self::OutputBufferTooSmall,
            3 => Self::BadMessageVersion,
            4 => Self::BadMessageFormat,
            5 => Self::BadMessageMac,
            6 => Self::BadMessageKeyId,
            7 => Self::InvalidBase64,
            8 => Self::BadAccountKey,
            9 => Self::UnknownPickleVersion,
            10 => Self::CorruptedPickle,
            11 => Self::BadSessionKey,
            12 => Self::UnknownMessageIndex,
            13 => Self::BadLegacyAccountPickle,
            14 => Self::BadSignature,
            15 => Self::InputBufferTooSmall,
            16 => Self::SasTheirKeyNotSet,
            17 => Self::PickleExtraData,
            other => Self::Other(other),
        }
    }
}

/// A libolm call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function} failed: {message}")]
pub struct Error {
    /// The C function that failed (or the wrapper method, for [`ErrorCode::UnexpectedOutput`]).
    pub function: &'static str,
    /// The error code.
    pub code: ErrorCode,
    /// libolm's error string (`olm_*_last_error`), e.g. `"BAD_MESSAGE_MAC"`.
    pub message: String,
}

impl Error {
    fn unexpected(function: &'static str, message: impl Into<String>) -> Self {
        Self { function, code: ErrorCode::UnexpectedOutput, message: message.into() }
    }
}

/// The wrapper's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// The type of an Olm message (`OLM_MESSAGE_TYPE_PRE_KEY` / `OLM_MESSAGE_TYPE_MESSAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0: a pre-key message, sent until the session has received a reply.
    PreKey = 0,
    /// 1: a normal message.
    Normal = 1,
}

impl MessageType {
    /// The numeric type, as in Matrix events.
    pub const fn as_usize(self) -> usize {
        self as usize
    }

    /// The type for a numeric value, if it is 0 or 1.
    pub const fn from_usize(value: usize) -> Option<Self> {
        match value {
            0 => Some(Self::PreKey),
            1 => Some(Self::Normal),
            _ => None,
        }
    }
}

/// Fresh randomness from the operating system, zeroized when dropped.
fn os_random(length: usize) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; length]);
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A copy of caller-supplied randomness that libolm may scribble on (it takes `void *random`),
/// zeroized when dropped.
fn random_copy(random: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(random.to_vec())
}

fn utf8(function: &'static str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::unexpected(function, "output is not UTF-8"))
}

/// One kind of libolm object: how big it is, how to initialise and clear it, and where its
/// last error lives. Implementing this (three lines per function) is all a new object needs
/// to get a [`Handle`].
pub trait ObjectKind {
    /// The opaque C type.
    type Raw;
    /// A name for messages.
    const NAME: &'static str;
    /// `olm_*_size()`.
    fn size() -> usize;
    /// `olm_*(memory)`.
    ///
    /// # Safety
    /// `memory` must be valid for writes of [`ObjectKind::size`] bytes, aligned for any C object.
    unsafe fn init(memory: *mut c_void) -> *mut Self::Raw;
    /// `olm_clear_*(object)`.
    ///
    /// # Safety
    /// `object` must come from [`ObjectKind::init`] and still be live.
    unsafe fn clear(object: *mut Self::Raw);
    /// `olm_*_last_error(object)`.
    ///
    /// # Safety
    /// As for [`ObjectKind::clear`].
    unsafe fn last_error(object: *const Self::Raw) -> *const c_char;
    /// `olm_*_last_error_code(object)`.
    ///
    /// # Safety
    /// As for [`ObjectKind::clear`].
    unsafe fn last_error_code(object: *const Self::Raw) -> c_int;
}

/// Declares an [`ObjectKind`] from its five C functions.
macro_rules! object_kind {
    ($kind:ident, $raw:ty, $name:literal, $size:ident, $init:ident, $clear:ident, $error:ident, $code:ident) => {
        #[doc = concat!("The [`ObjectKind`] of `", stringify!($raw), "`.")]
        #[derive(Debug)]
        pub enum $kind {}

        impl ObjectKind for $kind {
            type Raw = $raw;
            const NAME: &'static str = $name;
            fn size() -> usize {
                // SAFETY: takes no arguments, returns a constant.
                unsafe { ffi::$size() }
            }
            unsafe fn init(memory: *mut c_void) -> *mut $raw {
                // SAFETY: forwarded from the caller.
                unsafe { ffi::$init(memory) }
            }
            unsafe fn clear(object: *mut $raw) {
                // SAFETY: forwarded from the caller.
                unsafe { ffi::$clear(object) };
            }
            unsafe fn last_error(object: *const $raw) -> *const c_char {
                // SAFETY: forwarded from the caller.
                unsafe { ffi::$error(object) }
            }
            unsafe fn last_error_code(object: *const $raw) -> c_int {
                // SAFETY: forwarded from the caller.
                unsafe { ffi::$code(object) }
            }
        }
    };
}

object_kind!(
    AccountKind,
    ffi::OlmAccount,
    "account",
    olm_account_size,
    olm_account,
    olm_clear_account,
    olm_account_last_error,
    olm_account_last_error_code
);
object_kind!(
    SessionKind,
    ffi::OlmSession,
    "session",
    olm_session_size,
    olm_session,
    olm_clear_session,
    olm_session_last_error,
    olm_session_last_error_code
);
object_kind!(
    UtilityKind,
    ffi::OlmUtility,
    "utility",
    olm_utility_size,
    olm_utility,
    olm_clear_utility,
    olm_utility_last_error,
    olm_utility_last_error_code
);
object_kind!(
    OutboundGroupSessionKind,
    ffi::OlmOutboundGroupSession,
    "outbound group session",
    olm_outbound_group_session_size,
    olm_outbound_group_session,
    olm_clear_outbound_group_session,
    olm_outbound_group_session_last_error,
    olm_outbound_group_session_last_error_code
);
object_kind!(
    PkDecryptionKind,
    ffi::OlmPkDecryption,
    "PK decryption",
    olm_pk_decryption_size,
    olm_pk_decryption,
    olm_clear_pk_decryption,
    olm_pk_decryption_last_error,
    olm_pk_decryption_last_error_code
);
object_kind!(
    InboundGroupSessionKind,
    ffi::OlmInboundGroupSession,
    "inbound group session",
    olm_inbound_group_session_size,
    olm_inbound_group_session,
    olm_clear_inbound_group_session,
    olm_inbound_group_session_last_error,
    olm_inbound_group_session_last_error_code
);

/// An initialised libolm object in memory this handle owns.
///
/// Dropping the handle calls `olm_clear_*`, zeroes the memory and frees it. A handle is
/// `Send` (libolm objects hold no thread-local state) but not `Sync`: libolm writes its last
/// error into the object even on logically read-only calls.
pub struct Handle<K: ObjectKind> {
    object: NonNull<K::Raw>,
    memory: NonNull<u8>,
    layout: Layout,
    _kind: PhantomData<(K, PhantomPinned)>,
}

// SAFETY: the handle exclusively owns its memory, and libolm objects have no thread affinity.
unsafe impl<K: ObjectKind> Send for Handle<K> {}

impl<K: ObjectKind> Handle<K> {
    /// Allocates and initialises a new object.
    pub fn new() -> Self {
        // 16 bytes is malloc's alignment on the platforms libolm supports.
        #[allow(clippy::expect_used)]
        let layout = Layout::from_size_align(K::size().max(1), 16).expect("libolm object sizes are small");
        // SAFETY: `layout` has a non-zero size.
        let memory = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(memory) = NonNull::new(memory) else { std::alloc::handle_alloc_error(layout) };
        // SAFETY: `memory` is writable for `K::size()` bytes and 16-byte aligned.
        let object = unsafe { K::init(memory.as_ptr().cast()) };
        // libolm constructs the object in place and returns `memory` itself.
        let object = NonNull::new(object).unwrap_or_else(|| memory.cast());
        Self { object, memory, layout, _kind: PhantomData }
    }

    /// The raw pointer, for FFI calls.
    pub fn as_ptr(&self) -> *mut K::Raw {
        self.object.as_ptr()
    }

    /// libolm's last error string for this object.
    pub fn last_error(&self) -> String {
        // SAFETY: the object is live; libolm returns a static NUL-terminated string.
        let message = unsafe { K::last_error(self.as_ptr()) };
        if message.is_null() {
            return String::from("(no error string)");
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
    }

    /// libolm's last error code for this object.
    pub fn last_error_code(&self) -> ErrorCode {
        // SAFETY: the object is live.
        ErrorCode::from_raw(unsafe { K::last_error_code(self.as_ptr()) })
    }

    /// Turns a libolm return value into a `Result`: `olm_error()` means failure.
    pub fn check(&self, function: &'static str, result: usize) -> Result<usize> {
        // SAFETY: takes no arguments, returns a constant.
        if result == unsafe { ffi::olm_error() } {
            Err(Error { function, code: self.last_error_code(), message: self.last_error() })
        } else {
            Ok(result)
        }
    }
}

impl<K: ObjectKind> Default for Handle<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: ObjectKind> Drop for Handle<K> {
    fn drop(&mut self) {
        // SAFETY: the object is live and is not used after this.
        unsafe { K::clear(self.as_ptr()) };
        // SAFETY: `memory` is valid for `layout.size()` bytes and exclusively ours.
        let bytes = unsafe { core::slice::from_raw_parts_mut(self.memory.as_ptr(), self.layout.size()) };
        bytes.zeroize();
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.memory.as_ptr(), self.layout) };
    }
}

impl<K: ObjectKind> core::fmt::Debug for Handle<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "libolm {}", K::NAME)
    }
}

/// Reads an output of unknown length: `length()` gives the buffer size, `call(ptr, len)`
/// fills it and returns the length written (or `olm_error()`).
fn read_output<K: ObjectKind>(
    handle: &Handle<K>,
    function: &'static str,
    length: usize,
    call: impl FnOnce(*mut c_void, usize) -> usize,
) -> Result<Vec<u8>> {
    let mut buffer = vec![0u8; length];
    let written = handle.check(function, call(buffer.as_mut_ptr().cast(), buffer.len()))?;
    buffer.truncate(written);
    Ok(buffer)
}

/// [`read_output`] for secrets (session keys): every copy is zeroed when dropped, on every path.
fn read_secret<K: ObjectKind>(
    handle: &Handle<K>,
    function: &'static str,
    length: usize,
    call: impl FnOnce(*mut c_void, usize) -> usize,
) -> Result<Zeroizing<String>> {
    let mut buffer = Zeroizing::new(vec![0u8; length]);
    let written = handle.check(function, call(buffer.as_mut_ptr().cast(), buffer.len()))?;
    buffer.truncate(written);
    // Moves the allocation out (no copy); `buffer` is left empty.
    match String::from_utf8(core::mem::take(&mut *buffer)) {
        Ok(string) => Ok(Zeroizing::new(string)),
        Err(error) => {
            error.into_bytes().zeroize();
            Err(Error::unexpected(function, "output is not UTF-8"))
        }
    }
}

fn parse_json_object(function: &'static str, json: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(Error::unexpected(function, format!("not a JSON object: {json}"))),
    }
}

/// Parses `{"curve25519": {"AAAAAQ": "key", …}}` into key id → key.
fn parse_key_map(function: &'static str, json: &str) -> Result<BTreeMap<String, String>> {
    let map = parse_json_object(function, json)?;
    let Some(serde_json::Value::Object(keys)) = map.get("curve25519") else {
        return Err(Error::unexpected(function, format!("no curve25519 object: {json}")));
    };
    keys.iter()
        .map(|(id, key)| match key {
            serde_json::Value::String(key) => Ok((id.clone(), key.clone())),
            _ => Err(Error::unexpected(function, format!("key {id} is not a string"))),
        })
        .collect()
}

fn pickle_with<K: ObjectKind>(
    handle: &Handle<K>,
    function: &'static str,
    length: usize,
    key: &[u8],
    pickle: unsafe extern "C" fn(*mut K::Raw, *const c_void, usize, *mut c_void, usize) -> usize,
) -> Result<String> {
    let bytes = read_output(handle, function, length, |out, len| {
        // SAFETY: the object is live; `key` is readable for its length; `out` is writable for `len`.
        unsafe { pickle(handle.as_ptr(), key.as_ptr().cast(), key.len(), out, len) }
    })?;
    utf8(function, bytes)
}

fn unpickle_with<K: ObjectKind>(
    function: &'static str,
    pickled: &str,
    key: &[u8],
    unpickle: unsafe extern "C" fn(*mut K::Raw, *const c_void, usize, *mut c_void, usize) -> usize,
) -> Result<Handle<K>> {
    let handle = Handle::<K>::new();
    // libolm decodes (and decrypts) the pickle in place.
    let mut buffer = Zeroizing::new(pickled.as_bytes().to_vec());
    // SAFETY: the object is live; `key` is readable; `buffer` is writable for its length.
    let result =
        unsafe { unpickle(handle.as_ptr(), key.as_ptr().cast(), key.len(), buffer.as_mut_ptr().cast(), buffer.len()) };
    handle.check(function, result)?;
    Ok(handle)
}

/// A libolm account's public identity keys, as its JSON gives them (unpadded base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityKeys {
    /// The Curve25519 identity key.
    pub curve25519: String,
    /// The Ed25519 fingerprint key.
    pub ed25519: String,
}

/// A libolm `OlmAccount`.
#[derive(Debug)]
pub struct Account {
    handle: Handle<AccountKind>,
}

impl Account {
    /// A new account with identity keys from the operating system's randomness.
    pub fn new() -> Result<Self> {
        Self::new_with_random(&os_random(Self::create_random_length()))
    }

    /// How many random bytes [`Account::new_with_random`] needs (64: the Ed25519 seed, then
    /// the Curve25519 key).
    pub fn create_random_length() -> usize {
        let handle = Handle::<AccountKind>::new();
        // SAFETY: the object is live.
        unsafe { ffi::olm_create_account_random_length(handle.as_ptr()) }
    }

    /// A new account from the given randomness.
    pub fn new_with_random(random: &[u8]) -> Result<Self> {
        let handle = Handle::<AccountKind>::new();
        let mut random = random_copy(random);
        // SAFETY: the object is live; `random` is readable and writable for its length.
        let result = unsafe { ffi::olm_create_account(handle.as_ptr(), random.as_mut_ptr().cast(), random.len()) };
        handle.check("olm_create_account", result)?;
        Ok(Self { handle })
    }

    /// The raw handle, for calls this wrapper does not cover.
    pub fn handle(&self) -> &Handle<AccountKind> {
        &self.handle
    }

    /// The identity keys JSON, `{"curve25519":"…","ed25519":"…"}`.
    pub fn identity_keys_json(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_account_identity_keys_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_account_identity_keys", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_account_identity_keys(self.handle.as_ptr(), out, len) }
        })?;
        utf8("olm_account_identity_keys", bytes)
    }

    /// The identity keys.
    pub fn identity_keys(&self) -> Result<IdentityKeys> {
        const FUNCTION: &str = "olm_account_identity_keys";
        let json = self.identity_keys_json()?;
        let map = parse_json_object(FUNCTION, &json)?;
        let get = |name: &str| match map.get(name) {
            Some(serde_json::Value::String(key)) => Ok(key.clone()),
            _ => Err(Error::unexpected(FUNCTION, format!("no {name} key in {json}"))),
        };
        Ok(IdentityKeys { curve25519: get("curve25519")?, ed25519: get("ed25519")? })
    }

    /// Signs `message` with the Ed25519 key; the signature is unpadded base64.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_account_signature_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_account_sign", length, |out, len| {
            // SAFETY: the object is live; `message` is readable; `out` is writable for `len`.
            unsafe { ffi::olm_account_sign(self.handle.as_ptr(), message.as_ptr().cast(), message.len(), out, len) }
        })?;
        utf8("olm_account_sign", bytes)
    }

    /// How many one-time keys the account can hold (100 in libolm 3.2).
    pub fn max_number_of_one_time_keys(&self) -> usize {
        // SAFETY: the object is live.
        unsafe { ffi::olm_account_max_number_of_one_time_keys(self.handle.as_ptr()) }
    }

    /// How many random bytes generating `count` one-time keys needs (32 each).
    pub fn generate_one_time_keys_random_length(&self, count: usize) -> usize {
        // SAFETY: the object is live.
        unsafe { ffi::olm_account_generate_one_time_keys_random_length(self.handle.as_ptr(), count) }
    }

    /// Generates `count` one-time keys (libolm evicts the oldest past its maximum).
    pub fn generate_one_time_keys(&mut self, count: usize) -> Result<()> {
        let random = os_random(self.generate_one_time_keys_random_length(count));
        self.generate_one_time_keys_with_random(count, &random)
    }

    /// [`Account::generate_one_time_keys`] with the given randomness.
    pub fn generate_one_time_keys_with_random(&mut self, count: usize, random: &[u8]) -> Result<()> {
        let mut random = random_copy(random);
        // SAFETY: the object is live; `random` is readable and writable for its length.
        let result = unsafe {
            ffi::olm_account_generate_one_time_keys(
                self.handle.as_ptr(),
                count,
                random.as_mut_ptr().cast(),
                random.len(),
            )
        };
        self.handle.check("olm_account_generate_one_time_keys", result).map(drop)
    }

    /// The unpublished one-time keys JSON, `{"curve25519":{"AAAAAQ":"…",…}}`.
    pub fn one_time_keys_json(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_account_one_time_keys_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_account_one_time_keys", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_account_one_time_keys(self.handle.as_ptr(), out, len) }
        })?;
        utf8("olm_account_one_time_keys", bytes)
    }

    /// The unpublished one-time keys, key id (base64) → Curve25519 key (base64).
    pub fn one_time_keys(&self) -> Result<BTreeMap<String, String>> {
        parse_key_map("olm_account_one_time_keys", &self.one_time_keys_json()?)
    }

    /// Marks the one-time keys and the fallback key as published.
    pub fn mark_keys_as_published(&mut self) -> Result<()> {
        // SAFETY: the object is live.
        let result = unsafe { ffi::olm_account_mark_keys_as_published(self.handle.as_ptr()) };
        self.handle.check("olm_account_mark_keys_as_published", result).map(drop)
    }

    /// How many random bytes generating a fallback key needs (32).
    pub fn generate_fallback_key_random_length(&self) -> usize {
        // SAFETY: the object is live.
        unsafe { ffi::olm_account_generate_fallback_key_random_length(self.handle.as_ptr()) }
    }

    /// Generates a new fallback key; the current one becomes the previous one.
    pub fn generate_fallback_key(&mut self) -> Result<()> {
        let random = os_random(self.generate_fallback_key_random_length());
        self.generate_fallback_key_with_random(&random)
    }

    /// [`Account::generate_fallback_key`] with the given randomness.
    pub fn generate_fallback_key_with_random(&mut self, random: &[u8]) -> Result<()> {
        let mut random = random_copy(random);
        // SAFETY: the object is live; `random` is readable and writable for its length.
        let result = unsafe {
            ffi::olm_account_generate_fallback_key(self.handle.as_ptr(), random.as_mut_ptr().cast(), random.len())
        };
        self.handle.check("olm_account_generate_fallback_key", result).map(drop)
    }

    /// The current fallback key JSON, published or not (`olm_account_fallback_key`, deprecated
    /// in libolm in favour of the unpublished variant).
    pub fn fallback_key_json(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_account_fallback_key_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_account_fallback_key", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_account_fallback_key(self.handle.as_ptr(), out, len) }
        })?;
        utf8("olm_account_fallback_key", bytes)
    }

    /// The current fallback key if it is not yet published, JSON as for one-time keys.
    pub fn unpublished_fallback_key_json(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_account_unpublished_fallback_key_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_account_unpublished_fallback_key", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_account_unpublished_fallback_key(self.handle.as_ptr(), out, len) }
        })?;
        utf8("olm_account_unpublished_fallback_key", bytes)
    }

    /// The current fallback key if it is not yet published, key id → key.
    pub fn unpublished_fallback_key(&self) -> Result<BTreeMap<String, String>> {
        parse_key_map("olm_account_unpublished_fallback_key", &self.unpublished_fallback_key_json()?)
    }

    /// Forgets the previous fallback key.
    pub fn forget_old_fallback_key(&mut self) {
        // SAFETY: the object is live.
        unsafe { ffi::olm_account_forget_old_fallback_key(self.handle.as_ptr()) }
    }

    /// Removes the one-time key `session` was created from (`olm_remove_one_time_keys`).
    /// libolm succeeds without removing anything when the key was a fallback key, and fails
    /// with `BAD_MESSAGE_KEY_ID` when the account has no such key.
    pub fn remove_one_time_keys(&mut self, session: &Session) -> Result<()> {
        // SAFETY: both objects are live.
        let result = unsafe { ffi::olm_remove_one_time_keys(self.handle.as_ptr(), session.handle.as_ptr()) };
        self.handle.check("olm_remove_one_time_keys", result).map(drop)
    }

    /// Pickles the account under `key` (any length, empty included).
    pub fn pickle(&self, key: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_pickle_account_length(self.handle.as_ptr()) };
        pickle_with(&self.handle, "olm_pickle_account", length, key, ffi::olm_pickle_account)
    }

    /// Restores an account from a pickle.
    pub fn unpickle(pickle: &str, key: &[u8]) -> Result<Self> {
        unpickle_with("olm_unpickle_account", pickle, key, ffi::olm_unpickle_account).map(|handle| Self { handle })
    }
}

/// A libolm `OlmSession`.
#[derive(Debug)]
pub struct Session {
    handle: Handle<SessionKind>,
}

impl Session {
    /// How many random bytes creating an outbound session needs (64: base key, ratchet key).
    pub fn create_outbound_random_length() -> usize {
        let handle = Handle::<SessionKind>::new();
        // SAFETY: the object is live.
        unsafe { ffi::olm_create_outbound_session_random_length(handle.as_ptr()) }
    }

    /// Creates a session to the device with `their_identity_key` from one of its one-time
    /// (or fallback) keys; both keys unpadded base64.
    pub fn create_outbound(account: &Account, their_identity_key: &str, their_one_time_key: &str) -> Result<Self> {
        let random = os_random(Self::create_outbound_random_length());
        Self::create_outbound_with_random(account, their_identity_key, their_one_time_key, &random)
    }

    /// [`Session::create_outbound`] with the given randomness.
    pub fn create_outbound_with_random(
        account: &Account,
        their_identity_key: &str,
        their_one_time_key: &str,
        random: &[u8],
    ) -> Result<Self> {
        let handle = Handle::<SessionKind>::new();
        let mut random = random_copy(random);
        // SAFETY: both objects are live; the key strings are readable; `random` is readable
        // and writable for its length.
        let result = unsafe {
            ffi::olm_create_outbound_session(
                handle.as_ptr(),
                account.handle.as_ptr(),
                their_identity_key.as_ptr().cast(),
                their_identity_key.len(),
                their_one_time_key.as_ptr().cast(),
                their_one_time_key.len(),
                random.as_mut_ptr().cast(),
                random.len(),
            )
        };
        handle.check("olm_create_outbound_session", result)?;
        Ok(Self { handle })
    }

    /// Creates the session a pre-key message (base64 body) opens. Like libolm, this does
    /// not decrypt the message: call [`Session::decrypt`] with it next, then
    /// [`Account::remove_one_time_keys`].
    pub fn create_inbound(account: &Account, pre_key_message: &str) -> Result<Self> {
        let handle = Handle::<SessionKind>::new();
        let mut message = pre_key_message.as_bytes().to_vec();
        // SAFETY: both objects are live; `message` is a private, writable copy.
        let result = unsafe {
            ffi::olm_create_inbound_session(
                handle.as_ptr(),
                account.handle.as_ptr(),
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        handle.check("olm_create_inbound_session", result)?;
        Ok(Self { handle })
    }

    /// [`Session::create_inbound`], also checking that the message comes from
    /// `their_identity_key`.
    pub fn create_inbound_from(account: &Account, their_identity_key: &str, pre_key_message: &str) -> Result<Self> {
        let handle = Handle::<SessionKind>::new();
        let mut message = pre_key_message.as_bytes().to_vec();
        // SAFETY: both objects are live; the key is readable; `message` is a private,
        // writable copy.
        let result = unsafe {
            ffi::olm_create_inbound_session_from(
                handle.as_ptr(),
                account.handle.as_ptr(),
                their_identity_key.as_ptr().cast(),
                their_identity_key.len(),
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        handle.check("olm_create_inbound_session_from", result)?;
        Ok(Self { handle })
    }

    /// The raw handle, for calls this wrapper does not cover.
    pub fn handle(&self) -> &Handle<SessionKind> {
        &self.handle
    }

    /// The session id (unpadded base64 of a SHA-256).
    pub fn session_id(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_session_id_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_session_id", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_session_id(self.handle.as_ptr(), out, len) }
        })?;
        utf8("olm_session_id", bytes)
    }

    /// Whether the session has decrypted a message from the other side.
    pub fn has_received_message(&self) -> bool {
        // SAFETY: the object is live.
        unsafe { ffi::olm_session_has_received_message(self.handle.as_ptr()) != 0 }
    }

    /// libolm's debugging description of the ratchet state (chain indices), e.g.
    /// `sender chain index: 3 receiver chain indices: 2 skipped message keys: 0 1`.
    pub fn describe(&self) -> String {
        let mut buffer = vec![0u8; 4096];
        // SAFETY: the object is live; `buffer` is writable for its length; libolm
        // NUL-terminates within it.
        unsafe { ffi::olm_session_describe(self.handle.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
        let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
        buffer.truncate(end);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Whether a pre-key message (base64 body) was created for this session.
    pub fn matches_inbound_session(&self, pre_key_message: &str) -> Result<bool> {
        let mut message = pre_key_message.as_bytes().to_vec();
        // SAFETY: the object is live; `message` is a private, writable copy.
        let result = unsafe {
            ffi::olm_matches_inbound_session(self.handle.as_ptr(), message.as_mut_ptr().cast(), message.len())
        };
        self.handle.check("olm_matches_inbound_session", result).map(|r| r == 1)
    }

    /// [`Session::matches_inbound_session`], also checking the sender's identity key.
    pub fn matches_inbound_session_from(&self, their_identity_key: &str, pre_key_message: &str) -> Result<bool> {
        let mut message = pre_key_message.as_bytes().to_vec();
        // SAFETY: the object is live; the key is readable; `message` is a private, writable copy.
        let result = unsafe {
            ffi::olm_matches_inbound_session_from(
                self.handle.as_ptr(),
                their_identity_key.as_ptr().cast(),
                their_identity_key.len(),
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        self.handle.check("olm_matches_inbound_session_from", result).map(|r| r == 1)
    }

    /// The type of the next message [`Session::encrypt`] produces.
    pub fn encrypt_message_type(&self) -> Result<MessageType> {
        // SAFETY: the object is live.
        let result = unsafe { ffi::olm_encrypt_message_type(self.handle.as_ptr()) };
        let value = self.handle.check("olm_encrypt_message_type", result)?;
        MessageType::from_usize(value)
            .ok_or_else(|| Error::unexpected("olm_encrypt_message_type", format!("unknown message type {value}")))
    }

    /// How many random bytes the next encryption needs: 32 when it starts a new sending
    /// chain, otherwise 0.
    pub fn encrypt_random_length(&self) -> usize {
        // SAFETY: the object is live.
        unsafe { ffi::olm_encrypt_random_length(self.handle.as_ptr()) }
    }

    /// Encrypts `plaintext`; returns the message type and the base64 body.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<(MessageType, String)> {
        let random = os_random(self.encrypt_random_length());
        self.encrypt_with_random(plaintext, &random)
    }

    /// [`Session::encrypt`] with the given randomness ([`Session::encrypt_random_length`]
    /// bytes; extra bytes are ignored).
    pub fn encrypt_with_random(&mut self, plaintext: &[u8], random: &[u8]) -> Result<(MessageType, String)> {
        let message_type = self.encrypt_message_type()?;
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_encrypt_message_length(self.handle.as_ptr(), plaintext.len()) };
        let length = self.handle.check("olm_encrypt_message_length", length)?;
        let mut random = random_copy(random);
        let bytes = read_output(&self.handle, "olm_encrypt", length, |out, len| {
            // SAFETY: the object is live; `plaintext` is readable; `random` is readable and
            // writable for its length; `out` is writable for `len` bytes.
            unsafe {
                ffi::olm_encrypt(
                    self.handle.as_ptr(),
                    plaintext.as_ptr().cast(),
                    plaintext.len(),
                    random.as_mut_ptr().cast(),
                    random.len(),
                    out,
                    len,
                )
            }
        })?;
        Ok((message_type, utf8("olm_encrypt", bytes)?))
    }

    /// Decrypts a message (type and base64 body). On failure the session is unchanged.
    pub fn decrypt(&mut self, message_type: MessageType, message: &str) -> Result<Vec<u8>> {
        // Both calls decode the base64 in place, so each gets its own copy.
        let mut copy = message.as_bytes().to_vec();
        // SAFETY: the object is live; `copy` is a private, writable copy.
        let max = unsafe {
            ffi::olm_decrypt_max_plaintext_length(
                self.handle.as_ptr(),
                message_type.as_usize(),
                copy.as_mut_ptr().cast(),
                copy.len(),
            )
        };
        let max = self.handle.check("olm_decrypt_max_plaintext_length", max)?;
        let mut copy = message.as_bytes().to_vec();
        let mut plaintext = vec![0u8; max];
        // SAFETY: the object is live; `copy` is a private, writable copy; `plaintext` is
        // writable for `max` bytes.
        let written = unsafe {
            ffi::olm_decrypt(
                self.handle.as_ptr(),
                message_type.as_usize(),
                copy.as_mut_ptr().cast(),
                copy.len(),
                plaintext.as_mut_ptr().cast(),
                plaintext.len(),
            )
        };
        match self.handle.check("olm_decrypt", written) {
            Ok(written) => {
                plaintext.truncate(written);
                Ok(plaintext)
            }
            Err(error) => {
                plaintext.zeroize();
                Err(error)
            }
        }
    }

    /// Pickles the session under `key` (any length, empty included).
    pub fn pickle(&self, key: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_pickle_session_length(self.handle.as_ptr()) };
        pickle_with(&self.handle, "olm_pickle_session", length, key, ffi::olm_pickle_session)
    }

    /// Restores a session from a pickle.
    pub fn unpickle(pickle: &str, key: &[u8]) -> Result<Self> {
        unpickle_with("olm_unpickle_session", pickle, key, ffi::olm_unpickle_session).map(|handle| Self { handle })
    }
}

/// libolm's `OlmUtility`: SHA-256 and Ed25519 signature verification.
#[derive(Debug, Default)]
pub struct Utility {
    handle: Handle<UtilityKind>,
}

impl Utility {
    /// A new utility object.
    pub fn new() -> Self {
        Self::default()
    }

    /// SHA-256 of `input`, unpadded base64.
    pub fn sha256(&self, input: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_sha256_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_sha256", length, |out, len| {
            // SAFETY: the object is live; `input` is readable; `out` is writable for `len`.
            unsafe { ffi::olm_sha256(self.handle.as_ptr(), input.as_ptr().cast(), input.len(), out, len) }
        })?;
        utf8("olm_sha256", bytes)
    }

    /// Verifies an Ed25519 signature (key and signature unpadded base64). A bad signature is
    /// an error with code [`ErrorCode::BadMessageMac`], as libolm reports it.
    pub fn ed25519_verify(&self, key: &str, message: &[u8], signature: &str) -> Result<()> {
        let mut signature = signature.as_bytes().to_vec();
        // SAFETY: the object is live; `key` and `message` are readable; `signature` is a
        // private, writable copy (libolm decodes it in place).
        let result = unsafe {
            ffi::olm_ed25519_verify(
                self.handle.as_ptr(),
                key.as_ptr().cast(),
                key.len(),
                message.as_ptr().cast(),
                message.len(),
                signature.as_mut_ptr().cast(),
                signature.len(),
            )
        };
        self.handle.check("olm_ed25519_verify", result).map(drop)
    }
}

/// A libolm `OlmOutboundGroupSession`: the sender's side of a Megolm session.
#[derive(Debug)]
pub struct OutboundGroupSession {
    handle: Handle<OutboundGroupSessionKind>,
}

impl OutboundGroupSession {
    /// How many random bytes creating a session needs (160: the 128-byte ratchet, then the
    /// 32-byte Ed25519 seed).
    pub fn create_random_length() -> usize {
        let handle = Handle::<OutboundGroupSessionKind>::new();
        // SAFETY: the object is live.
        unsafe { ffi::olm_init_outbound_group_session_random_length(handle.as_ptr()) }
    }

    /// A new session (message index 0) from the operating system's randomness.
    pub fn new() -> Result<Self> {
        Self::new_with_random(&os_random(Self::create_random_length()))
    }

    /// A new session from the given randomness ([`OutboundGroupSession::create_random_length`]
    /// bytes: ratchet, then Ed25519 seed).
    pub fn new_with_random(random: &[u8]) -> Result<Self> {
        let handle = Handle::<OutboundGroupSessionKind>::new();
        let mut random = random_copy(random);
        // SAFETY: the object is live; `random` is readable and writable for its length.
        let result =
            unsafe { ffi::olm_init_outbound_group_session(handle.as_ptr(), random.as_mut_ptr(), random.len()) };
        handle.check("olm_init_outbound_group_session", result)?;
        Ok(Self { handle })
    }

    /// The raw handle, for calls this wrapper does not cover.
    pub fn handle(&self) -> &Handle<OutboundGroupSessionKind> {
        &self.handle
    }

    /// The session id: the Ed25519 signing key, unpadded base64.
    pub fn session_id(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_outbound_group_session_id_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_outbound_group_session_id", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_outbound_group_session_id(self.handle.as_ptr(), out.cast(), len) }
        })?;
        utf8("olm_outbound_group_session_id", bytes)
    }

    /// The index the next message will have.
    pub fn message_index(&self) -> u32 {
        // SAFETY: the object is live.
        unsafe { ffi::olm_outbound_group_session_message_index(self.handle.as_ptr()) }
    }

    /// The signed session key at the current index (229 bytes, unpadded base64), as shared in
    /// `m.room_key`. Secret.
    pub fn session_key(&self) -> Result<Zeroizing<String>> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_outbound_group_session_key_length(self.handle.as_ptr()) };
        read_secret(&self.handle, "olm_outbound_group_session_key", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_outbound_group_session_key(self.handle.as_ptr(), out.cast(), len) }
        })
    }

    /// Encrypts `plaintext`, advances the ratchet, and returns the message as unpadded base64.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_group_encrypt_message_length(self.handle.as_ptr(), plaintext.len()) };
        let length = self.handle.check("olm_group_encrypt_message_length", length)?;
        let bytes = read_output(&self.handle, "olm_group_encrypt", length, |out, len| {
            // SAFETY: the object is live; `plaintext` is readable; `out` is writable for `len`.
            unsafe {
                ffi::olm_group_encrypt(self.handle.as_ptr(), plaintext.as_ptr(), plaintext.len(), out.cast(), len)
            }
        })?;
        utf8("olm_group_encrypt", bytes)
    }

    /// Pickles the session under `key` (any length, empty included).
    pub fn pickle(&self, key: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_pickle_outbound_group_session_length(self.handle.as_ptr()) };
        pickle_with(
            &self.handle,
            "olm_pickle_outbound_group_session",
            length,
            key,
            ffi::olm_pickle_outbound_group_session,
        )
    }

    /// Restores a session from a pickle.
    pub fn unpickle(pickle: &str, key: &[u8]) -> Result<Self> {
        unpickle_with("olm_unpickle_outbound_group_session", pickle, key, ffi::olm_unpickle_outbound_group_session)
            .map(|handle| Self { handle })
    }
}

/// A message an [`InboundGroupSession`] decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDecrypted {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The message's index in the ratchet.
    pub message_index: u32,
}

/// A libolm `OlmInboundGroupSession`: a recipient's side of a Megolm session.
#[derive(Debug)]
pub struct InboundGroupSession {
    handle: Handle<InboundGroupSessionKind>,
}

impl InboundGroupSession {
    /// A session from a signed session key (`m.room_key`, unpadded base64); libolm checks the
    /// signature (`BAD_SIGNATURE`) and marks the session verified.
    pub fn new(session_key: &str) -> Result<Self> {
        Self::init("olm_init_inbound_group_session", session_key, ffi::olm_init_inbound_group_session)
    }

    /// A session from an exported key (165 bytes, unpadded base64); unverified.
    pub fn import(exported_key: &str) -> Result<Self> {
        Self::init("olm_import_inbound_group_session", exported_key, ffi::olm_import_inbound_group_session)
    }

    fn init(
        function: &'static str,
        key: &str,
        init: unsafe extern "C" fn(*mut ffi::OlmInboundGroupSession, *const u8, usize) -> usize,
    ) -> Result<Self> {
        let handle = Handle::<InboundGroupSessionKind>::new();
        // The key is secret, and `olm_import_inbound_group_session` decodes it in place
        // despite its `const` parameter: hand libolm a private copy that zeroes itself.
        let copy = Zeroizing::new(key.as_bytes().to_vec());
        // SAFETY: the object is live; `copy` is a private buffer readable (and writable)
        // for its length.
        let result = unsafe { init(handle.as_ptr(), copy.as_ptr(), copy.len()) };
        handle.check(function, result)?;
        Ok(Self { handle })
    }

    /// The raw handle, for calls this wrapper does not cover.
    pub fn handle(&self) -> &Handle<InboundGroupSessionKind> {
        &self.handle
    }

    /// The session id: the sender's Ed25519 signing key, unpadded base64.
    pub fn session_id(&self) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_inbound_group_session_id_length(self.handle.as_ptr()) };
        let bytes = read_output(&self.handle, "olm_inbound_group_session_id", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_inbound_group_session_id(self.handle.as_ptr(), out.cast(), len) }
        })?;
        utf8("olm_inbound_group_session_id", bytes)
    }

    /// The first message index the session can decrypt.
    pub fn first_known_index(&self) -> u32 {
        // SAFETY: the object is live.
        unsafe { ffi::olm_inbound_group_session_first_known_index(self.handle.as_ptr()) }
    }

    /// Whether libolm considers the signing key verified: the session came from a signed
    /// session key, or (libolm only) has since decrypted a message.
    pub fn is_verified(&self) -> bool {
        // SAFETY: the object is live.
        unsafe { ffi::olm_inbound_group_session_is_verified(self.handle.as_ptr()) != 0 }
    }

    /// Decrypts a message (unpadded base64): the plaintext and the message's index.
    ///
    /// libolm picks the ratchet by `(index - counter) mod 2^32 < 2^31`: its cached later
    /// ratchet if the message is at or past it (moving the cache there), else its first known
    /// ratchet if the message is at or past that, else `UNKNOWN_MESSAGE_INDEX`. So an index
    /// 2^31 or more past both counts as before the session, and what decrypts depends on what
    /// was decrypted (or exported) before.
    pub fn decrypt(&mut self, message: &str) -> Result<GroupDecrypted> {
        // Both calls decode the base64 in place, so each gets its own copy.
        let mut copy = message.as_bytes().to_vec();
        // SAFETY: the object is live; `copy` is a private, writable copy.
        let max =
            unsafe { ffi::olm_group_decrypt_max_plaintext_length(self.handle.as_ptr(), copy.as_mut_ptr(), copy.len()) };
        let max = self.handle.check("olm_group_decrypt_max_plaintext_length", max)?;
        let mut copy = message.as_bytes().to_vec();
        let mut plaintext = vec![0u8; max];
        let mut message_index = 0u32;
        // SAFETY: the object is live; `copy` is a private, writable copy; `plaintext` is
        // writable for `max` bytes; `message_index` is a valid, writable `u32`.
        let written = unsafe {
            ffi::olm_group_decrypt(
                self.handle.as_ptr(),
                copy.as_mut_ptr(),
                copy.len(),
                plaintext.as_mut_ptr(),
                plaintext.len(),
                &mut message_index,
            )
        };
        match self.handle.check("olm_group_decrypt", written) {
            Ok(written) => {
                plaintext.truncate(written);
                Ok(GroupDecrypted { plaintext, message_index })
            }
            Err(error) => {
                plaintext.zeroize();
                Err(error)
            }
        }
    }

    /// The session key at `message_index` (exported form, 165 bytes, unpadded base64); fails
    /// with `UNKNOWN_MESSAGE_INDEX` before the first known index. Secret.
    ///
    /// libolm chooses the ratchet as [`InboundGroupSession::decrypt`] does, and moves its cached
    /// ratchet too: an export is not free of side effects, and reaches an index 2^31 or more past
    /// the first known one only in steps.
    pub fn export_at(&self, message_index: u32) -> Result<Zeroizing<String>> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_export_inbound_group_session_length(self.handle.as_ptr()) };
        read_secret(&self.handle, "olm_export_inbound_group_session", length, |out, len| {
            // SAFETY: the object is live; `out` is writable for `len` bytes.
            unsafe { ffi::olm_export_inbound_group_session(self.handle.as_ptr(), out.cast(), len, message_index) }
        })
    }

    /// Pickles the session under `key` (any length, empty included).
    pub fn pickle(&self, key: &[u8]) -> Result<String> {
        // SAFETY: the object is live.
        let length = unsafe { ffi::olm_pickle_inbound_group_session_length(self.handle.as_ptr()) };
        pickle_with(
            &self.handle,
            "olm_pickle_inbound_group_session",
            length,
            key,
            ffi::olm_pickle_inbound_group_session,
        )
    }

    /// Restores a session from a pickle.
    pub fn unpickle(pickle: &str, key: &[u8]) -> Result<Self> {
        unpickle_with("olm_unpickle_inbound_group_session", pickle, key, ffi::olm_unpickle_inbound_group_session)
            .map(|handle| Self { handle })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Account, Account, Session, Session) {
        let alice = Account::new().unwrap();
        let mut bob = Account::new().unwrap();
        bob.generate_one_time_keys(1).unwrap();
        let otk = bob.one_time_keys().unwrap().into_values().next().unwrap();
        bob.mark_keys_as_published().unwrap();
        let bob_key = bob.identity_keys().unwrap().curve25519;
        let mut outbound = Session::create_outbound(&alice, &bob_key, &otk).unwrap();
        let (kind, body) = outbound.encrypt(b"hello").unwrap();
        assert_eq!(kind, MessageType::PreKey);
        let alice_key = alice.identity_keys().unwrap().curve25519;
        let mut inbound = Session::create_inbound_from(&bob, &alice_key, &body).unwrap();
        assert!(inbound.matches_inbound_session(&body).unwrap());
        assert!(inbound.matches_inbound_session_from(&alice_key, &body).unwrap());
        assert_eq!(inbound.decrypt(kind, &body).unwrap(), b"hello");
        bob.remove_one_time_keys(&inbound).unwrap();
        (alice, bob, outbound, inbound)
    }

    #[test]
    fn version_is_3_2() {
        let (major, minor, _) = library_version();
        assert_eq!((major, minor), (3, 2));
    }

    #[test]
    fn libolm_talks_to_itself() {
        let (_alice, bob, mut outbound, mut inbound) = pair();
        assert_eq!(outbound.session_id().unwrap(), inbound.session_id().unwrap());
        assert!(bob.one_time_keys().unwrap().is_empty());
        assert_eq!(inbound.encrypt_random_length(), 32);
        let (kind, reply) = inbound.encrypt(b"hi").unwrap();
        assert_eq!(kind, MessageType::Normal);
        assert_eq!(inbound.encrypt_random_length(), 0);
        assert_eq!(outbound.decrypt(kind, &reply).unwrap(), b"hi");
        assert!(outbound.has_received_message());
        // A replay fails and reports libolm's error string.
        let error = outbound.decrypt(kind, &reply).unwrap_err();
        assert_eq!(error.code, ErrorCode::BadMessageMac);
        assert_eq!(error.message, "BAD_MESSAGE_MAC");
        assert!(!outbound.describe().is_empty());
    }

    #[test]
    fn errors_carry_libolm_strings() {
        let mut bob = Account::new().unwrap();
        let error = Session::create_outbound(&bob, "not base64!", "AAAA").unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidBase64);
        assert_eq!(error.message, "INVALID_BASE64");
        let error = bob.generate_one_time_keys_with_random(2, &[0; 10]).unwrap_err();
        assert_eq!(error.code, ErrorCode::NotEnoughRandom);
        let error = Account::new_with_random(&[1; 63]).unwrap_err();
        assert_eq!(error.code, ErrorCode::NotEnoughRandom);
        let pickle = bob.pickle(b"key").unwrap();
        let error = Account::unpickle(&pickle, b"other key").unwrap_err();
        assert_eq!(error.code, ErrorCode::BadAccountKey);
        let error = Session::unpickle("A", b"").unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidBase64);
    }

    #[test]
    fn explicit_randomness_is_deterministic() {
        let random: Vec<u8> = (0..64).collect();
        let a = Account::new_with_random(&random).unwrap();
        let b = Account::new_with_random(&random).unwrap();
        assert_eq!(a.identity_keys().unwrap(), b.identity_keys().unwrap());
        assert_eq!(a.sign(b"m").unwrap(), b.sign(b"m").unwrap());
        assert_eq!(Account::create_random_length(), 64);
        assert_eq!(Session::create_outbound_random_length(), 64);
    }

    #[test]
    fn accounts_and_sessions_pickle_with_keys_of_any_length() {
        let (_alice, bob, outbound, _inbound) = pair();
        for key in [&b""[..], b"12345", &[7; 32], &[9; 100]] {
            let restored = Account::unpickle(&bob.pickle(key).unwrap(), key).unwrap();
            assert_eq!(restored.identity_keys().unwrap(), bob.identity_keys().unwrap());
            let restored = Session::unpickle(&outbound.pickle(key).unwrap(), key).unwrap();
            assert_eq!(restored.session_id().unwrap(), outbound.session_id().unwrap());
        }
    }

    #[test]
    fn fallback_keys() {
        let mut account = Account::new().unwrap();
        assert!(account.unpublished_fallback_key().unwrap().is_empty());
        account.generate_fallback_key().unwrap();
        let keys = account.unpublished_fallback_key().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(account.fallback_key_json().unwrap().contains(keys.values().next().unwrap()));
        account.mark_keys_as_published().unwrap();
        assert!(account.unpublished_fallback_key().unwrap().is_empty());
        account.forget_old_fallback_key();
        assert_eq!(account.max_number_of_one_time_keys(), 100);
    }

    #[test]
    fn utility_verifies_signatures() {
        let account = Account::new().unwrap();
        let signature = account.sign(b"message").unwrap();
        let key = account.identity_keys().unwrap().ed25519;
        let utility = Utility::new();
        utility.ed25519_verify(&key, b"message", &signature).unwrap();
        let error = utility.ed25519_verify(&key, b"other", &signature).unwrap_err();
        assert_eq!(error.code, ErrorCode::BadMessageMac);
        assert_eq!(utility.sha256(b"").unwrap(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    fn group_pair() -> (OutboundGroupSession, InboundGroupSession, Vec<String>) {
        let mut outbound = OutboundGroupSession::new().unwrap();
        assert_eq!(outbound.message_index(), 0);
        let inbound = InboundGroupSession::new(&outbound.session_key().unwrap()).unwrap();
        let messages = (0..5).map(|i| outbound.encrypt(format!("m{i}").as_bytes()).unwrap()).collect();
        assert_eq!(outbound.message_index(), 5);
        (outbound, inbound, messages)
    }

    #[test]
    fn megolm_talks_to_itself() {
        let (outbound, mut inbound, messages) = group_pair();
        assert!(inbound.is_verified());
        assert_eq!(inbound.first_known_index(), 0);
        assert_eq!(inbound.session_id().unwrap(), outbound.session_id().unwrap());
        // Out of order, and more than once.
        for i in [4, 0, 2, 2, 4] {
            let decrypted = inbound.decrypt(&messages[i]).unwrap();
            assert_eq!(decrypted, GroupDecrypted { plaintext: format!("m{i}").into_bytes(), message_index: i as u32 });
        }
        // A late joiner cannot read what came before its key.
        let mut late = InboundGroupSession::new(&outbound.session_key().unwrap()).unwrap();
        assert_eq!(late.first_known_index(), 5);
        let error = late.decrypt(&messages[1]).unwrap_err();
        assert_eq!(error.code, ErrorCode::UnknownMessageIndex);
        assert_eq!(error.message, "UNKNOWN_MESSAGE_INDEX");
    }

    #[test]
    fn megolm_exports_and_imports() {
        let (_outbound, inbound, messages) = group_pair();
        let exported = inbound.export_at(3).unwrap();
        assert_eq!(exported.len(), 220, "165 bytes in unpadded base64");
        let mut imported = InboundGroupSession::import(&exported).unwrap();
        assert!(!imported.is_verified());
        assert_eq!(imported.first_known_index(), 3);
        assert_eq!(imported.session_id().unwrap(), inbound.session_id().unwrap());
        assert_eq!(*imported.export_at(3).unwrap(), *exported);
        assert_eq!(*imported.export_at(4).unwrap(), *inbound.export_at(4).unwrap());
        assert_eq!(imported.export_at(2).unwrap_err().code, ErrorCode::UnknownMessageIndex);
        assert_eq!(imported.decrypt(&messages[2]).unwrap_err().code, ErrorCode::UnknownMessageIndex);
        assert_eq!(imported.decrypt(&messages[4]).unwrap().plaintext, b"m4");
        // libolm (unlike vodozemac and ferrolm) counts a session as verified once a message
        // signed by its key has decrypted.
        assert!(imported.is_verified());
        // The input survives the call (the wrapper hands libolm a copy).
        assert!(InboundGroupSession::import(&exported).is_ok());
    }

    #[test]
    fn megolm_errors_carry_libolm_strings() {
        let (outbound, mut inbound, messages) = group_pair();
        // libolm checks the length first: 305 characters cannot be base64.
        let error = InboundGroupSession::new(&"A".repeat(305)).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidBase64);
        assert_eq!(InboundGroupSession::new("AAAA").unwrap_err().code, ErrorCode::BadSessionKey);
        // An exported key is not a signed session key, and vice versa.
        let exported = inbound.export_at(0).unwrap();
        assert_eq!(InboundGroupSession::new(&exported).unwrap_err().code, ErrorCode::BadSessionKey);
        let session_key = outbound.session_key().unwrap();
        assert_eq!(InboundGroupSession::import(&session_key).unwrap_err().code, ErrorCode::BadSessionKey);
        // A session key whose signature does not verify.
        let mut altered = session_key.as_bytes().to_vec();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        let error = InboundGroupSession::new(core::str::from_utf8(&altered).unwrap()).unwrap_err();
        assert_eq!(error.code, ErrorCode::BadSignature);
        // A message from another session.
        let mut other = OutboundGroupSession::new().unwrap();
        let error = inbound.decrypt(&other.encrypt(b"forged").unwrap()).unwrap_err();
        assert_eq!(error.code, ErrorCode::BadSignature);
        assert_eq!(inbound.decrypt("AAAA").unwrap_err().code, ErrorCode::BadMessageVersion);
        assert_eq!(inbound.decrypt(&messages[0]).unwrap().plaintext, b"m0");
        let error = OutboundGroupSession::new_with_random(&[0; 159]).unwrap_err();
        assert_eq!(error.code, ErrorCode::NotEnoughRandom);
    }

    #[test]
    fn megolm_explicit_randomness_is_deterministic() {
        assert_eq!(OutboundGroupSession::create_random_length(), 160);
        let random: Vec<u8> = (0..160).map(|i| (i * 3) as u8).collect();
        let mut a = OutboundGroupSession::new_with_random(&random).unwrap();
        let mut b = OutboundGroupSession::new_with_random(&random).unwrap();
        assert_eq!(a.session_id().unwrap(), b.session_id().unwrap());
        assert_eq!(*a.session_key().unwrap(), *b.session_key().unwrap());
        // Megolm encryption uses no randomness, and Ed25519 signatures are deterministic.
        assert_eq!(a.encrypt(b"same").unwrap(), b.encrypt(b"same").unwrap());
    }

    #[test]
    fn megolm_sessions_pickle_with_keys_of_any_length() {
        let (outbound, inbound, messages) = group_pair();
        let imported = InboundGroupSession::import(&inbound.export_at(2).unwrap()).unwrap();
        for key in [&b""[..], b"12345", &[7; 32], &[9; 100]] {
            let mut restored = OutboundGroupSession::unpickle(&outbound.pickle(key).unwrap(), key).unwrap();
            assert_eq!(restored.message_index(), outbound.message_index());
            assert_eq!(*restored.session_key().unwrap(), *outbound.session_key().unwrap());
            let next = restored.encrypt(b"next").unwrap();
            let decrypted = InboundGroupSession::new(&outbound.session_key().unwrap()).unwrap().decrypt(&next).unwrap();
            assert_eq!(decrypted, GroupDecrypted { plaintext: b"next".to_vec(), message_index: 5 });
            for session in [&inbound, &imported] {
                let mut restored = InboundGroupSession::unpickle(&session.pickle(key).unwrap(), key).unwrap();
                assert_eq!(restored.first_known_index(), session.first_known_index());
                assert_eq!(restored.is_verified(), session.is_verified());
                assert_eq!(restored.decrypt(&messages[4]).unwrap().plaintext, b"m4");
            }
        }
        let pickle = outbound.pickle(b"key").unwrap();
        assert_eq!(OutboundGroupSession::unpickle(&pickle, b"other").unwrap_err().code, ErrorCode::BadAccountKey);
        let pickle = inbound.pickle(b"key").unwrap();
        assert_eq!(InboundGroupSession::unpickle(&pickle, b"other").unwrap_err().code, ErrorCode::BadAccountKey);
    }
}

/// A libolm `OlmPkDecryption`: a backup's private key (`m.megolm_backup.v1`).
#[derive(Debug)]
pub struct PkDecryption {
    handle: Handle<PkDecryptionKind>,
    public_key: String,
}

impl PkDecryption {
    /// The key of 32 secret bytes (`olm_pk_key_from_private`).
    pub fn from_private_key(secret: &[u8; 32]) -> Result<Self> {
        let handle = Handle::<PkDecryptionKind>::new();
        // SAFETY: takes no arguments, returns a constant.
        let length = unsafe { ffi::olm_pk_key_length() };
        let mut public = vec![0u8; length];
        // SAFETY: the object is live; `public` is writable for its length; `secret` is 32
        // readable bytes.
        let result = unsafe {
            ffi::olm_pk_key_from_private(
                handle.as_ptr(),
                public.as_mut_ptr().cast(),
                public.len(),
                secret.as_ptr().cast(),
                secret.len(),
            )
        };
        // On success libolm returns 0, not the length: the whole buffer holds the key.
        handle.check("olm_pk_key_from_private", result)?;
        let public_key = utf8("olm_pk_key_from_private", public)?;
        Ok(Self { handle, public_key })
    }

    /// The public key, unpadded base64.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Decrypts a backup message from its three unpadded base64 fields.
    pub fn decrypt(&mut self, ephemeral_key: &str, mac: &str, ciphertext: &str) -> Result<Vec<u8>> {
        // libolm decodes the ciphertext in place: hand it a private copy.
        let mut ciphertext = ciphertext.as_bytes().to_vec();
        // SAFETY: the object is live.
        let max = unsafe { ffi::olm_pk_max_plaintext_length(self.handle.as_ptr(), ciphertext.len()) };
        let mut plaintext = Zeroizing::new(vec![0u8; max]);
        // SAFETY: the object is live; every pointer is valid for the length passed with it.
        let result = unsafe {
            ffi::olm_pk_decrypt(
                self.handle.as_ptr(),
                ephemeral_key.as_ptr().cast(),
                ephemeral_key.len(),
                mac.as_ptr().cast(),
                mac.len(),
                ciphertext.as_mut_ptr().cast(),
                ciphertext.len(),
                plaintext.as_mut_ptr().cast(),
                plaintext.len(),
            )
        };
        let written = self.handle.check("olm_pk_decrypt", result)?;
        Ok(plaintext.get(..written).unwrap_or_default().to_vec())
    }
}
