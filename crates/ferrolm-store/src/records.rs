//! The records the store keeps, one kind per table, and their encoding.
//!
//! Each record is encoded as `format version (1) ‖ fields` with [`crate::codec`], then sealed
//! by the store cipher. Core objects inside records are the core's own pickles
//! ([`crate::pickles`]). Identifiers are opaque strings: the store checks only that they are
//! not empty and at most [`MAX_ID_LEN`] bytes.

use core::fmt;

use ferrolm::megolm::{GroupSession, InboundGroupSession};
use ferrolm::olm::{Account, Session};
use ferrolm::pk::PkDecryption;
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use zeroize::{Zeroize, Zeroizing};

use crate::backend::Table;
use crate::cipher::{LookupHash, StoreCipher};
use crate::codec::{DecodeError, Reader, Writer};
use crate::error::{Result, StoreError};
use crate::pickles::{Form, StoredPickle};

/// The longest identifier (user, device, room, session, request id, secret name) a record may
/// hold, in bytes. Matrix identifiers are at most 255 bytes; this leaves room for others.
pub const MAX_ID_LEN: usize = 1024;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// An opaque string: the store does not parse it.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A Matrix user id (`@alice:example.org`).
    UserId
);
id_type!(
    /// A Matrix device id (`JLAFKJWSCS`).
    DeviceId
);
id_type!(
    /// A Matrix room id (`!abc:example.org`).
    RoomId
);

/// 32 secret bytes (a private cross-signing key seed). Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<[u8; 32]>);

impl SecretBytes {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// A secret string (a received secret). Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret string.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// The device's own account: identity keys, one-time and fallback keys (inside the account),
/// and who it belongs to.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// The account's user.
    pub user_id: UserId,
    /// The account's device.
    pub device_id: DeviceId,
    /// The Olm account (identity, one-time and fallback keys, their published state).
    pub account: Account,
    /// Whether the device keys have been uploaded (`false`: an upload is pending).
    pub device_keys_uploaded: bool,
    /// When the current fallback key reached the server while a previous fallback key is still
    /// kept (milliseconds, the machine's clock), so the machine can forget the previous one an
    /// hour later; `None` when there is no previous fallback key. (Since schema version 2.)
    pub fallback_key_published_ms: Option<u64>,
}

/// An Olm session with another device.
#[derive(Debug, Clone)]
pub struct OlmSessionRecord {
    /// The other device's Curve25519 identity key.
    pub sender_key: Curve25519PublicKey,
    /// The session.
    pub session: Session,
    /// When the session was created (milliseconds since the epoch, the machine's clock).
    pub created_ms: u64,
    /// When the session was last used to encrypt or decrypt.
    pub last_use_ms: u64,
    /// When a message last decrypted with it, if ever.
    pub last_decrypt_ms: Option<u64>,
}

impl OlmSessionRecord {
    /// The session's id.
    pub fn session_id(&self) -> String {
        self.session.session_id().to_base64()
    }
}

/// How a room key reached this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKeySource {
    /// An `m.room_key` from the session's creator.
    Direct,
    /// An `m.forwarded_room_key` from another device.
    Forwarded,
    /// Downloaded from the server-side key backup.
    Backup,
    /// Imported from a key export file.
    FileImport,
}

impl RoomKeySource {
    fn code(self) -> u8 {
        match self {
            Self::Direct => 0,
            Self::Forwarded => 1,
            Self::Backup => 2,
            Self::FileImport => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => Self::Direct,
            1 => Self::Forwarded,
            2 => Self::Backup,
            3 => Self::FileImport,
            _ => return Err(DecodeError("unknown room key source")),
        })
    }
}

/// A room key: an inbound Megolm session and what the machine knows about it.
#[derive(Debug, Clone)]
pub struct InboundGroupSessionRecord {
    /// The room the key is for.
    pub room_id: RoomId,
    /// The session (its id and first known index are the session's own).
    pub session: InboundGroupSession,
    /// The Curve25519 key of the device that sent it (over Olm).
    pub sender_key: Curve25519PublicKey,
    /// The Ed25519 key the sender claimed as the session creator's, if any.
    pub claimed_signing_key: Option<Ed25519PublicKey>,
    /// How the key arrived.
    pub source: RoomKeySource,
    /// Whether it is in the server-side backup.
    pub backed_up: bool,
    /// Whether it may be shared with users who join later (shared history).
    pub shared_history: bool,
}

impl InboundGroupSessionRecord {
    /// The session's id.
    pub fn session_id(&self) -> String {
        self.session.session_id().to_base64()
    }

    /// The first message index the session can decrypt.
    pub fn first_known_index(&self) -> u32 {
        self.session.first_known_index()
    }
}

/// The room's current outbound Megolm session.
#[derive(Debug, Clone)]
pub struct OutboundGroupSessionRecord {
    /// The room.
    pub room_id: RoomId,
    /// The session.
    pub session: GroupSession,
    /// When it was created (milliseconds since the epoch).
    pub created_ms: u64,
    /// How many messages it has encrypted.
    pub message_count: u64,
}

impl OutboundGroupSessionRecord {
    /// The session's id.
    pub fn session_id(&self) -> String {
        self.session.session_id().to_base64()
    }
}

/// What one device got of an outbound session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareState {
    /// The key, from this message index on.
    Shared {
        /// The first index the device can decrypt.
        message_index: u32,
    },
    /// A withheld notice with this code (`m.unverified`, `m.blacklisted`, …).
    Withheld {
        /// The withheld code.
        code: String,
    },
}

/// One device's share of an outbound session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundShare {
    /// The room.
    pub room_id: RoomId,
    /// The outbound session's id.
    pub session_id: String,
    /// The device's user.
    pub user_id: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// What it got.
    pub state: ShareState,
}

/// The local trust the user gave a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LocalTrust {
    /// No decision.
    #[default]
    Unset,
    /// Verified by the user.
    Verified,
    /// Blacklisted: never send it keys.
    Blacklisted,
    /// Ignored: send it keys without warning.
    Ignored,
}

impl LocalTrust {
    fn code(self) -> u8 {
        match self {
            Self::Unset => 0,
            Self::Verified => 1,
            Self::Blacklisted => 2,
            Self::Ignored => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => Self::Unset,
            1 => Self::Verified,
            2 => Self::Blacklisted,
            3 => Self::Ignored,
            _ => return Err(DecodeError("unknown local trust")),
        })
    }
}

/// A device of some user (the own user's other devices too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device's user.
    pub user_id: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// The signed device keys as received (opaque bytes, canonical JSON in practice).
    pub device_keys: Vec<u8>,
    /// Its Curve25519 identity key, as the machine extracted it.
    pub curve25519_key: Option<Curve25519PublicKey>,
    /// Its Ed25519 fingerprint key, as the machine extracted it.
    pub ed25519_key: Option<Ed25519PublicKey>,
    /// The user's local trust decision.
    pub local_trust: LocalTrust,
    /// Whether the server no longer lists it.
    pub deleted: bool,
    /// Whether it was sent an `m.no_olm` withheld notice (at most once, until an Olm session
    /// with it works). Format 1 records (schema 2 and older) read as `false`.
    pub no_olm_sent: bool,
}

/// A user's cross-signing identity (public keys only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    /// The user.
    pub user_id: UserId,
    /// The master key as received (opaque signed JSON).
    pub master_key: Vec<u8>,
    /// The self-signing key as received.
    pub self_signing_key: Vec<u8>,
    /// The user-signing key (known for the own user only).
    pub user_signing_key: Option<Vec<u8>>,
    /// Whether the identity is verified.
    pub verified: bool,
    /// Whether it was verified at some point (to warn when it changes).
    pub previously_verified: bool,
    /// The master public key the user accepted: pinned when first seen, or acknowledged
    /// after a change (schema version 3). `None` in records written before: the machine
    /// treats the stored master key as the pinned one.
    pub pinned_master_key: Option<Ed25519PublicKey>,
}

/// The own private cross-signing keys (Ed25519 seeds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateCrossSigningKeys {
    /// The master key.
    pub master: Option<SecretBytes>,
    /// The self-signing key.
    pub self_signing: Option<SecretBytes>,
    /// The user-signing key.
    pub user_signing: Option<SecretBytes>,
}

/// A user whose devices are tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedUser {
    /// The user.
    pub user_id: UserId,
    /// Whether the device list must be fetched again.
    pub dirty: bool,
}

/// The server-side key backup the device uses.
#[derive(Debug, Clone, Default)]
pub struct BackupRecord {
    /// The backup version, if one is active.
    pub version: Option<String>,
    /// The backup's decryption key, if known.
    pub decryption_key: Option<PkDecryption>,
}

/// A secret received from another device and awaiting the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSecret {
    /// The secret's name (`m.cross_signing.master`, …).
    pub name: String,
    /// An id distinguishing secrets of the same name (the request id, say).
    pub id: String,
    /// Who sent it.
    pub sender_user: UserId,
    /// From which device.
    pub sender_device: DeviceId,
    /// The secret.
    pub secret: SecretString,
}

/// What an outgoing request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// A secret (`m.secret.request`).
    Secret {
        /// The secret's name.
        name: String,
    },
    /// A room key (`m.room_key_request`).
    RoomKey {
        /// The room.
        room_id: RoomId,
        /// The session.
        session_id: String,
        /// The session's sender key, when known.
        sender_key: Option<Curve25519PublicKey>,
        /// The algorithm (`m.megolm.v1.aes-sha2`).
        algorithm: String,
    },
}

/// An outgoing secret or room-key request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    /// The request id.
    pub request_id: String,
    /// Whom it is sent to.
    pub recipient: UserId,
    /// What it asks for.
    pub kind: RequestKind,
    /// Whether it has been sent.
    pub sent: bool,
}

/// A withheld notice received for a room key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldNotice {
    /// The room.
    pub room_id: RoomId,
    /// The session withheld.
    pub session_id: String,
    /// The sender's Curve25519 key, when given.
    pub sender_key: Option<Curve25519PublicKey>,
    /// The code (`m.unverified`, …).
    pub code: String,
    /// The human-readable reason, when given.
    pub reason: Option<String>,
}

/// A room's encryption settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSettings {
    /// The room.
    pub room_id: RoomId,
    /// The algorithm (`m.megolm.v1.aes-sha2`).
    pub algorithm: String,
    /// Rotate the outbound session after this long (milliseconds), if set.
    pub rotation_period_ms: Option<u64>,
    /// Rotate after this many messages, if set.
    pub rotation_period_messages: Option<u64>,
    /// Send keys only to trusted devices.
    pub only_trusted_devices: bool,
}

/// A to-device request the server has not accepted yet, kept so that a restarted machine
/// sends it (with the same transaction id, which the server deduplicates) instead of losing
/// what it carried while the Olm sessions that encrypted it moved on.
///
/// The body is the machine's: the request as sent, or what the machine needs to encrypt it
/// again (a room key and its recipients, which is far smaller than their ciphertexts). It
/// may hold a secret, so it is zeroized on drop and left out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingToDevice {
    /// The request's transaction id.
    pub txn_id: String,
    /// The event type (`m.room.encrypted`), or the machine's name for what the body holds.
    pub event_type: String,
    /// The body (opaque bytes).
    pub body: Vec<u8>,
}

impl Drop for OutgoingToDevice {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

impl fmt::Debug for OutgoingToDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OutgoingToDevice")
            .field("txn_id", &self.txn_id)
            .field("event_type", &self.event_type)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// A Megolm message index seen in an event (replay detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMessage {
    /// The Megolm session.
    pub session_id: String,
    /// The message index.
    pub message_index: u32,
    /// The event that carried it.
    pub event_id: String,
}

// ---------------------------------------------------------------------------------------
// Row keys.

/// The domains of keyed hashes, so equal strings of different kinds hash differently.
pub(crate) mod domain {
    pub(crate) const USER: u8 = 1;
    pub(crate) const DEVICE: u8 = 2;
    pub(crate) const ROOM: u8 = 3;
    pub(crate) const MEGOLM_SESSION: u8 = 4;
    pub(crate) const OLM_SESSION: u8 = 5;
    pub(crate) const SENDER_KEY: u8 = 6;
    pub(crate) const SECRET_NAME: u8 = 7;
    pub(crate) const SECRET_ID: u8 = 8;
    pub(crate) const REQUEST: u8 = 9;
    pub(crate) const TXN: u8 = 10;
}

/// The fixed keys of the singleton rows.
pub(crate) mod singleton {
    pub(crate) const ACCOUNT: &[u8] = b"account";
    pub(crate) const CROSS_SIGNING: &[u8] = b"private_cross_signing_keys";
    pub(crate) const SYNC_TOKEN: &[u8] = b"sync_token";
    pub(crate) const BACKUP: &[u8] = b"backup";
}

pub(crate) struct Keys<'a>(pub(crate) &'a StoreCipher);

impl Keys<'_> {
    pub(crate) fn user(&self, id: &UserId) -> LookupHash {
        self.0.hash(domain::USER, id.as_str().as_bytes())
    }
    pub(crate) fn device(&self, id: &DeviceId) -> LookupHash {
        self.0.hash(domain::DEVICE, id.as_str().as_bytes())
    }
    pub(crate) fn room(&self, id: &RoomId) -> LookupHash {
        self.0.hash(domain::ROOM, id.as_str().as_bytes())
    }
    pub(crate) fn megolm(&self, session_id: &str) -> LookupHash {
        self.0.hash(domain::MEGOLM_SESSION, session_id.as_bytes())
    }
    pub(crate) fn sender(&self, key: &Curve25519PublicKey) -> LookupHash {
        self.0.hash(domain::SENDER_KEY, key.as_bytes())
    }

    pub(crate) fn olm_session(&self, sender_key: &Curve25519PublicKey, session_id: &str) -> Vec<u8> {
        cat(&[&self.sender(sender_key), &self.0.hash(domain::OLM_SESSION, session_id.as_bytes())])
    }
    pub(crate) fn room_session(&self, room: &RoomId, session_id: &str) -> Vec<u8> {
        cat(&[&self.room(room), &self.megolm(session_id)])
    }
    pub(crate) fn share(&self, room: &RoomId, session_id: &str, user: &UserId, device: &DeviceId) -> Vec<u8> {
        cat(&[&self.room(room), &self.megolm(session_id), &self.user(user), &self.device(device)])
    }
    pub(crate) fn user_device(&self, user: &UserId, device: &DeviceId) -> Vec<u8> {
        cat(&[&self.user(user), &self.device(device)])
    }
    pub(crate) fn secret_name(&self, name: &str) -> LookupHash {
        self.0.hash(domain::SECRET_NAME, name.as_bytes())
    }
    pub(crate) fn secret(&self, name: &str, id: &str) -> Vec<u8> {
        cat(&[&self.secret_name(name), &self.0.hash(domain::SECRET_ID, id.as_bytes())])
    }
    pub(crate) fn request(&self, id: &str) -> Vec<u8> {
        self.0.hash(domain::REQUEST, id.as_bytes()).to_vec()
    }
    pub(crate) fn txn(&self, txn_id: &str) -> Vec<u8> {
        self.0.hash(domain::TXN, txn_id.as_bytes()).to_vec()
    }
    pub(crate) fn seen(&self, session_id: &str, index: u32) -> Vec<u8> {
        cat(&[&self.megolm(session_id), &index.to_be_bytes()])
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Encoding.

const FORMAT_V1: u8 = 1;
/// Account records since schema version 2 (adds the fallback key's publication time); Olm
/// session, group session and backup records holding the core object's unencrypted state
/// instead of its pickle.
const FORMAT_V2: u8 = 2;
/// Account records holding the account's unencrypted state (with the fallback key's time).
const FORMAT_V3: u8 = 3;

/// Context for encoding one record: the cipher (for pickles) and the row's associated data.
pub(crate) struct Ctx<'a> {
    pub(crate) cipher: &'a StoreCipher,
    pub(crate) table: Table,
    pub(crate) associated_data: &'a [u8],
}

/// Why a record did not decode: a malformation, or a pickle that did not authenticate.
pub(crate) enum RecordError {
    Decode(DecodeError),
    PickleRejected,
    PickleMalformed,
}

impl From<DecodeError> for RecordError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl RecordError {
    pub(crate) fn into_store_error(self, table: Table) -> StoreError {
        match self {
            Self::Decode(DecodeError(reason)) => StoreError::MalformedValue { table, reason },
            Self::PickleRejected => StoreError::ValueRejected { table },
            Self::PickleMalformed => StoreError::MalformedValue { table, reason: "malformed pickle" },
        }
    }
}

type RecordResult<T> = core::result::Result<T, RecordError>;

/// A record of a table: its row key, its encoding and decoding.
pub(crate) trait Record: Sized {
    const TABLE: Table;
    /// Whether the record holds a core pickle (whose encoding draws a fresh nonce).
    const HOLDS_PICKLE: bool = false;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8>;
    fn validate(&self) -> Result<()>;
    fn encode(&self, w: &mut Writer, ctx: &Ctx<'_>);
    fn decode(r: &mut Reader<'_>, ctx: &Ctx<'_>) -> RecordResult<Self>;
}

fn check_id(id: &str, what: &'static str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN { Err(StoreError::InvalidRecord(what)) } else { Ok(()) }
}

/// Writes a core object's unencrypted state (the record's format version says so); the
/// record's seal is its one encryption. The object is the record's last field, so the buffer
/// does not grow (and leave a copy of the state behind) once it is written.
fn write_pickle<P: StoredPickle>(w: &mut Writer, object: &P) {
    w.bytes(&object.to_stored());
}

fn read_pickle<P: StoredPickle>(r: &mut Reader<'_>, ctx: &Ctx<'_>, form: Form) -> RecordResult<P> {
    let bytes = r.bytes()?;
    P::from_stored(form, bytes, ctx.cipher.pickle_key(), ctx.associated_data).map_err(|e| match e {
        ferrolm::pickle::PickleError::Mac => RecordError::PickleRejected,
        _ => RecordError::PickleMalformed,
    })
}

/// The format version of a record holding one core object (other than the account): 1 holds
/// the core's pickle, 2 its unencrypted state.
fn read_pickle_version(r: &mut Reader<'_>) -> RecordResult<Form> {
    match r.u8()? {
        FORMAT_V1 => Ok(Form::Pickle),
        FORMAT_V2 => Ok(Form::State),
        _ => Err(DecodeError("unknown record format version").into()),
    }
}

fn read_version(r: &mut Reader<'_>) -> RecordResult<()> {
    match r.u8()? {
        FORMAT_V1 => Ok(()),
        _ => Err(DecodeError("unknown record format version").into()),
    }
}

fn write_curve(w: &mut Writer, key: &Curve25519PublicKey) {
    w.array(key.as_bytes());
}

fn read_curve(r: &mut Reader<'_>) -> RecordResult<Curve25519PublicKey> {
    Ok(Curve25519PublicKey::from(r.array::<32>()?))
}

fn write_ed(w: &mut Writer, key: &Ed25519PublicKey) {
    w.array(key.as_bytes());
}

fn read_ed(r: &mut Reader<'_>) -> RecordResult<Ed25519PublicKey> {
    Ed25519PublicKey::from_bytes(&r.array::<32>()?).map_err(|_| DecodeError("invalid Ed25519 key").into())
}

fn read_secret_bytes(r: &mut Reader<'_>) -> RecordResult<SecretBytes> {
    let bytes = Zeroizing::new(r.array::<32>()?);
    Ok(SecretBytes::new(*bytes))
}

impl Record for AccountRecord {
    const TABLE: Table = Table::Singletons;
    const HOLDS_PICKLE: bool = true;
    fn key(&self, _: &Keys<'_>) -> Vec<u8> {
        singleton::ACCOUNT.to_vec()
    }
    fn validate(&self) -> Result<()> {
        check_id(self.user_id.as_str(), "empty or oversized user id")?;
        check_id(self.device_id.as_str(), "empty or oversized device id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V3);
        w.str(self.user_id.as_str());
        w.str(self.device_id.as_str());
        w.bool(self.device_keys_uploaded);
        w.opt_varint(self.fallback_key_published_ms);
        write_pickle(w, &self.account);
    }
    fn decode(r: &mut Reader<'_>, ctx: &Ctx<'_>) -> RecordResult<Self> {
        // Format 1 (schema version 1) has no fallback-key time; formats 1 and 2 hold the
        // account's pickle, format 3 its unencrypted state.
        let format = r.u8()?;
        let form = match format {
            FORMAT_V1 | FORMAT_V2 => Form::Pickle,
            FORMAT_V3 => Form::State,
            _ => return Err(DecodeError("unknown record format version").into()),
        };
        let user_id = UserId(r.string()?);
        let device_id = DeviceId(r.string()?);
        let device_keys_uploaded = r.bool()?;
        let fallback_key_published_ms = if format == FORMAT_V1 { None } else { r.opt_varint()? };
        let account = read_pickle(r, ctx, form)?;
        Ok(Self { user_id, device_id, account, device_keys_uploaded, fallback_key_published_ms })
    }
}

impl Record for OlmSessionRecord {
    const TABLE: Table = Table::OlmSessions;
    const HOLDS_PICKLE: bool = true;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.olm_session(&self.sender_key, &self.session_id())
    }
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V2);
        write_curve(w, &self.sender_key);
        w.varint(self.created_ms);
        w.varint(self.last_use_ms);
        w.opt_varint(self.last_decrypt_ms);
        write_pickle(w, &self.session);
    }
    fn decode(r: &mut Reader<'_>, ctx: &Ctx<'_>) -> RecordResult<Self> {
        let form = read_pickle_version(r)?;
        let sender_key = read_curve(r)?;
        let created_ms = r.varint()?;
        let last_use_ms = r.varint()?;
        let last_decrypt_ms = r.opt_varint()?;
        let session = read_pickle(r, ctx, form)?;
        Ok(Self { sender_key, session, created_ms, last_use_ms, last_decrypt_ms })
    }
}

impl Record for InboundGroupSessionRecord {
    const TABLE: Table = Table::InboundGroupSessions;
    const HOLDS_PICKLE: bool = true;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.room_session(&self.room_id, &self.session_id())
    }
    fn validate(&self) -> Result<()> {
        check_id(self.room_id.as_str(), "empty or oversized room id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V2);
        w.str(self.room_id.as_str());
        write_curve(w, &self.sender_key);
        w.opt(self.claimed_signing_key.as_ref(), write_ed);
        w.u8(self.source.code());
        w.bool(self.backed_up);
        w.bool(self.shared_history);
        write_pickle(w, &self.session);
    }
    fn decode(r: &mut Reader<'_>, ctx: &Ctx<'_>) -> RecordResult<Self> {
        let form = read_pickle_version(r)?;
        let room_id = RoomId(r.string()?);
        let sender_key = read_curve(r)?;
        let claimed_signing_key = match r.u8()? {
            0 => None,
            1 => Some(read_ed(r)?),
            _ => return Err(DecodeError("invalid option tag").into()),
        };
        let source = RoomKeySource::from_code(r.u8()?)?;
        let backed_up = r.bool()?;
        let shared_history = r.bool()?;
        let session = read_pickle(r, ctx, form)?;
        Ok(Self { room_id, session, sender_key, claimed_signing_key, source, backed_up, shared_history })
    }
}

impl Record for OutboundGroupSessionRecord {
    const TABLE: Table = Table::OutboundGroupSessions;
    const HOLDS_PICKLE: bool = true;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.room(&self.room_id).to_vec()
    }
    fn validate(&self) -> Result<()> {
        check_id(self.room_id.as_str(), "empty or oversized room id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V2);
        w.str(self.room_id.as_str());
        w.varint(self.created_ms);
        w.varint(self.message_count);
        write_pickle(w, &self.session);
    }
    fn decode(r: &mut Reader<'_>, ctx: &Ctx<'_>) -> RecordResult<Self> {
        let form = read_pickle_version(r)?;
        let room_id = RoomId(r.string()?);
        let created_ms = r.varint()?;
        let message_count = r.varint()?;
        let session = read_pickle(r, ctx, form)?;
        Ok(Self { room_id, session, created_ms, message_count })
    }
}

impl Record for OutboundShare {
    const TABLE: Table = Table::OutboundShares;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.share(&self.room_id, &self.session_id, &self.user_id, &self.device_id)
    }
    fn validate(&self) -> Result<()> {
        check_id(self.room_id.as_str(), "empty or oversized room id")?;
        check_id(&self.session_id, "empty or oversized session id")?;
        check_id(self.user_id.as_str(), "empty or oversized user id")?;
        check_id(self.device_id.as_str(), "empty or oversized device id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(self.room_id.as_str());
        w.str(&self.session_id);
        w.str(self.user_id.as_str());
        w.str(self.device_id.as_str());
        match &self.state {
            ShareState::Shared { message_index } => {
                w.u8(0);
                w.u32(*message_index);
            }
            ShareState::Withheld { code } => {
                w.u8(1);
                w.str(code);
            }
        }
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        let room_id = RoomId(r.string()?);
        let session_id = r.string()?;
        let user_id = UserId(r.string()?);
        let device_id = DeviceId(r.string()?);
        let state = match r.u8()? {
            0 => ShareState::Shared { message_index: r.u32()? },
            1 => ShareState::Withheld { code: r.string()? },
            _ => return Err(DecodeError("unknown share state").into()),
        };
        Ok(Self { room_id, session_id, user_id, device_id, state })
    }
}

impl Record for DeviceRecord {
    const TABLE: Table = Table::Devices;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.user_device(&self.user_id, &self.device_id)
    }
    fn validate(&self) -> Result<()> {
        check_id(self.user_id.as_str(), "empty or oversized user id")?;
        check_id(self.device_id.as_str(), "empty or oversized device id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V2);
        w.str(self.user_id.as_str());
        w.str(self.device_id.as_str());
        w.bytes(&self.device_keys);
        w.opt(self.curve25519_key.as_ref(), write_curve);
        w.opt(self.ed25519_key.as_ref(), write_ed);
        w.u8(self.local_trust.code());
        w.bool(self.deleted);
        w.bool(self.no_olm_sent);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        // Format 2 (schema 3) adds the `m.no_olm` flag.
        let format = r.u8()?;
        if format != FORMAT_V1 && format != FORMAT_V2 {
            return Err(DecodeError("unknown record format version").into());
        }
        let user_id = UserId(r.string()?);
        let device_id = DeviceId(r.string()?);
        let device_keys = r.bytes()?.to_vec();
        let curve25519_key = r.opt(|r| r.array::<32>())?.map(Curve25519PublicKey::from);
        let ed25519_key = match r.u8()? {
            0 => None,
            1 => Some(read_ed(r)?),
            _ => return Err(DecodeError("invalid option tag").into()),
        };
        let local_trust = LocalTrust::from_code(r.u8()?)?;
        let deleted = r.bool()?;
        let no_olm_sent = if format == FORMAT_V1 { false } else { r.bool()? };
        Ok(Self { user_id, device_id, device_keys, curve25519_key, ed25519_key, local_trust, deleted, no_olm_sent })
    }
}

impl Record for IdentityRecord {
    const TABLE: Table = Table::Identities;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.user(&self.user_id).to_vec()
    }
    fn validate(&self) -> Result<()> {
        check_id(self.user_id.as_str(), "empty or oversized user id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V2);
        w.str(self.user_id.as_str());
        w.bytes(&self.master_key);
        w.bytes(&self.self_signing_key);
        w.opt(self.user_signing_key.as_deref(), Writer::bytes);
        w.bool(self.verified);
        w.bool(self.previously_verified);
        w.opt(self.pinned_master_key.as_ref(), write_ed);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        // Format 1 (schema versions 1 and 2) has no pinned master key.
        let format = r.u8()?;
        if format != FORMAT_V1 && format != FORMAT_V2 {
            return Err(DecodeError("unknown record format version").into());
        }
        let user_id = UserId(r.string()?);
        let master_key = r.bytes()?.to_vec();
        let self_signing_key = r.bytes()?.to_vec();
        let user_signing_key = r.opt(|r| r.bytes().map(<[u8]>::to_vec))?;
        let verified = r.bool()?;
        let previously_verified = r.bool()?;
        let pinned_master_key = if format == FORMAT_V1 {
            None
        } else {
            match r.u8()? {
                0 => None,
                1 => Some(read_ed(r)?),
                _ => return Err(DecodeError("invalid option tag").into()),
            }
        };
        Ok(Self {
            user_id,
            master_key,
            self_signing_key,
            user_signing_key,
            verified,
            previously_verified,
            pinned_master_key,
        })
    }
}

impl Record for PrivateCrossSigningKeys {
    const TABLE: Table = Table::Singletons;
    fn key(&self, _: &Keys<'_>) -> Vec<u8> {
        singleton::CROSS_SIGNING.to_vec()
    }
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        for key in [&self.master, &self.self_signing, &self.user_signing] {
            w.opt(key.as_ref(), |w, k| w.array(k.as_bytes()));
        }
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        let master = r.opt(|r| read_secret_bytes(r).map_err(|_| DecodeError("truncated")))?;
        let self_signing = r.opt(|r| read_secret_bytes(r).map_err(|_| DecodeError("truncated")))?;
        let user_signing = r.opt(|r| read_secret_bytes(r).map_err(|_| DecodeError("truncated")))?;
        Ok(Self { master, self_signing, user_signing })
    }
}

impl Record for TrackedUser {
    const TABLE: Table = Table::TrackedUsers;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.user(&self.user_id).to_vec()
    }
    fn validate(&self) -> Result<()> {
        check_id(self.user_id.as_str(), "empty or oversized user id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(self.user_id.as_str());
        w.bool(self.dirty);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        Ok(Self { user_id: UserId(r.string()?), dirty: r.bool()? })
    }
}

/// The sync token, as a record of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncToken(pub(crate) String);

impl Record for SyncToken {
    const TABLE: Table = Table::Singletons;
    fn key(&self, _: &Keys<'_>) -> Vec<u8> {
        singleton::SYNC_TOKEN.to_vec()
    }
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(&self.0);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        Ok(Self(r.string()?))
    }
}

impl Record for BackupRecord {
    const TABLE: Table = Table::Singletons;
    const HOLDS_PICKLE: bool = true;
    fn key(&self, _: &Keys<'_>) -> Vec<u8> {
        singleton::BACKUP.to_vec()
    }
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V2);
        w.opt_str(self.version.as_deref());
        w.opt(self.decryption_key.as_ref(), write_pickle);
    }
    fn decode(r: &mut Reader<'_>, ctx: &Ctx<'_>) -> RecordResult<Self> {
        let form = read_pickle_version(r)?;
        let version = r.opt_string()?;
        let decryption_key = match r.u8()? {
            0 => None,
            1 => Some(read_pickle(r, ctx, form)?),
            _ => return Err(DecodeError("invalid option tag").into()),
        };
        Ok(Self { version, decryption_key })
    }
}

impl Record for ReceivedSecret {
    const TABLE: Table = Table::SecretsInbox;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.secret(&self.name, &self.id)
    }
    fn validate(&self) -> Result<()> {
        check_id(&self.name, "empty or oversized secret name")?;
        check_id(&self.id, "empty or oversized secret id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(&self.name);
        w.str(&self.id);
        w.str(self.sender_user.as_str());
        w.str(self.sender_device.as_str());
        w.str(self.secret.expose());
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        let name = r.string()?;
        let id = r.string()?;
        let sender_user = UserId(r.string()?);
        let sender_device = DeviceId(r.string()?);
        let secret = SecretString(Zeroizing::new(r.string()?));
        Ok(Self { name, id, sender_user, sender_device, secret })
    }
}

impl Record for OutgoingRequest {
    const TABLE: Table = Table::OutgoingRequests;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.request(&self.request_id)
    }
    fn validate(&self) -> Result<()> {
        check_id(&self.request_id, "empty or oversized request id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(&self.request_id);
        w.str(self.recipient.as_str());
        w.bool(self.sent);
        match &self.kind {
            RequestKind::Secret { name } => {
                w.u8(0);
                w.str(name);
            }
            RequestKind::RoomKey { room_id, session_id, sender_key, algorithm } => {
                w.u8(1);
                w.str(room_id.as_str());
                w.str(session_id);
                w.opt(sender_key.as_ref(), write_curve);
                w.str(algorithm);
            }
        }
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        let request_id = r.string()?;
        let recipient = UserId(r.string()?);
        let sent = r.bool()?;
        let kind = match r.u8()? {
            0 => RequestKind::Secret { name: r.string()? },
            1 => RequestKind::RoomKey {
                room_id: RoomId(r.string()?),
                session_id: r.string()?,
                sender_key: r.opt(|r| r.array::<32>())?.map(Curve25519PublicKey::from),
                algorithm: r.string()?,
            },
            _ => return Err(DecodeError("unknown request kind").into()),
        };
        Ok(Self { request_id, recipient, kind, sent })
    }
}

impl Record for WithheldNotice {
    const TABLE: Table = Table::Withheld;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.room_session(&self.room_id, &self.session_id)
    }
    fn validate(&self) -> Result<()> {
        check_id(self.room_id.as_str(), "empty or oversized room id")?;
        check_id(&self.session_id, "empty or oversized session id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(self.room_id.as_str());
        w.str(&self.session_id);
        w.opt(self.sender_key.as_ref(), write_curve);
        w.str(&self.code);
        w.opt_str(self.reason.as_deref());
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        Ok(Self {
            room_id: RoomId(r.string()?),
            session_id: r.string()?,
            sender_key: r.opt(|r| r.array::<32>())?.map(Curve25519PublicKey::from),
            code: r.string()?,
            reason: r.opt_string()?,
        })
    }
}

impl Record for RoomSettings {
    const TABLE: Table = Table::RoomSettings;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.room(&self.room_id).to_vec()
    }
    fn validate(&self) -> Result<()> {
        check_id(self.room_id.as_str(), "empty or oversized room id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(self.room_id.as_str());
        w.str(&self.algorithm);
        w.opt_varint(self.rotation_period_ms);
        w.opt_varint(self.rotation_period_messages);
        w.bool(self.only_trusted_devices);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        Ok(Self {
            room_id: RoomId(r.string()?),
            algorithm: r.string()?,
            rotation_period_ms: r.opt_varint()?,
            rotation_period_messages: r.opt_varint()?,
            only_trusted_devices: r.bool()?,
        })
    }
}

impl Record for OutgoingToDevice {
    const TABLE: Table = Table::OutgoingToDevice;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.txn(&self.txn_id)
    }
    fn validate(&self) -> Result<()> {
        check_id(&self.txn_id, "empty or oversized transaction id")?;
        check_id(&self.event_type, "empty or oversized event type")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(&self.txn_id);
        w.str(&self.event_type);
        w.bytes(&self.body);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        Ok(Self { txn_id: r.string()?, event_type: r.string()?, body: r.bytes()?.to_vec() })
    }
}

impl Record for SeenMessage {
    const TABLE: Table = Table::SeenMessages;
    fn key(&self, keys: &Keys<'_>) -> Vec<u8> {
        keys.seen(&self.session_id, self.message_index)
    }
    fn validate(&self) -> Result<()> {
        check_id(&self.session_id, "empty or oversized session id")?;
        check_id(&self.event_id, "empty or oversized event id")
    }
    fn encode(&self, w: &mut Writer, _: &Ctx<'_>) {
        w.u8(FORMAT_V1);
        w.str(&self.session_id);
        w.u32(self.message_index);
        w.str(&self.event_id);
    }
    fn decode(r: &mut Reader<'_>, _: &Ctx<'_>) -> RecordResult<Self> {
        read_version(r)?;
        Ok(Self { session_id: r.string()?, message_index: r.u32()?, event_id: r.string()? })
    }
}

/// Encodes and seals one record for its row.
pub(crate) fn seal_record<R: Record>(cipher: &StoreCipher, key: &[u8], record: &R) -> Result<Vec<u8>> {
    let ad = crate::cipher::associated_data(R::TABLE, key);
    let ctx = Ctx { cipher, table: R::TABLE, associated_data: &ad };
    let mut w = Writer::with_capacity(512);
    record.encode(&mut w, &ctx);
    cipher.seal(R::TABLE, key, &w.into_inner())
}

/// Opens and decodes one record from its row, and checks it belongs to that row.
pub(crate) fn open_record<R: Record>(cipher: &StoreCipher, key: &[u8], sealed: &[u8]) -> Result<R> {
    open_record_if(cipher, key, sealed, |record: &R| record.key(&Keys(cipher)) == key)
}

/// Opens and decodes one record, and checks it belongs to its row with `belongs` (on the hot
/// paths a comparison of the identifiers that were asked for, cheaper than hashing them again;
/// the seal already binds the value to the row key).
pub(crate) fn open_record_if<R: Record>(
    cipher: &StoreCipher,
    key: &[u8],
    sealed: &[u8],
    belongs: impl Fn(&R) -> bool,
) -> Result<R> {
    let plaintext = cipher.open(R::TABLE, key, sealed)?;
    let record = decode_plaintext::<R>(cipher, key, &plaintext)?;
    if !belongs(&record) {
        return Err(StoreError::MalformedValue { table: R::TABLE, reason: "the record does not belong to its row" });
    }
    Ok(record)
}

/// Decodes an opened value (the fuzz target's entry point behind the seal).
pub(crate) fn decode_plaintext<R: Record>(cipher: &StoreCipher, key: &[u8], plaintext: &[u8]) -> Result<R> {
    let ad = crate::cipher::associated_data(R::TABLE, key);
    let ctx = Ctx { cipher, table: R::TABLE, associated_data: &ad };
    let mut r = Reader::new(plaintext);
    let record = R::decode(&mut r, &ctx).map_err(|e| e.into_store_error(ctx.table))?;
    r.finish().map_err(|DecodeError(reason)| StoreError::MalformedValue { table: R::TABLE, reason })?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::olm::SessionConfig;

    fn session_record() -> OlmSessionRecord {
        let alice = Account::new();
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        let session = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
        OlmSessionRecord {
            sender_key: bob.curve25519_key(),
            session,
            created_ms: 7,
            last_use_ms: 8,
            last_decrypt_ms: None,
        }
    }

    /// A record sealed for its row in the given format, with the session as the core's pickle
    /// (the format the first store versions wrote).
    fn old_session_row(cipher: &StoreCipher, record: &OlmSessionRecord) -> (Vec<u8>, Vec<u8>) {
        let key = record.key(&Keys(cipher));
        let ad = crate::cipher::associated_data(Table::OlmSessions, &key);
        let mut w = Writer::with_capacity(512);
        w.u8(FORMAT_V1);
        write_curve(&mut w, &record.sender_key);
        w.varint(record.created_ms);
        w.varint(record.last_use_ms);
        w.opt_varint(record.last_decrypt_ms);
        w.bytes(&record.session.pickle_bytes(cipher.pickle_key(), &ad));
        let sealed = cipher.seal(Table::OlmSessions, &key, &w.into_inner()).unwrap();
        (key, sealed)
    }

    #[test]
    fn olm_sessions_are_written_once_encrypted_and_old_pickled_rows_still_read() {
        let cipher = StoreCipher::new(&[3; 32]);
        let record = session_record();
        let key = record.key(&Keys(&cipher));

        // New rows: format 2, the session's unencrypted state inside the one seal.
        let sealed = seal_record(&cipher, &key, &record).unwrap();
        let plaintext = cipher.open(Table::OlmSessions, &key, &sealed).unwrap();
        assert_eq!(plaintext.first(), Some(&FORMAT_V2));
        let state = record.session.to_unencrypted_state();
        assert!(plaintext.ends_with(&state), "the record ends with the session's state");
        let back: OlmSessionRecord = open_record(&cipher, &key, &sealed).unwrap();
        assert_eq!(back.session.session_id(), record.session.session_id());
        assert_eq!((back.created_ms, back.last_use_ms), (7, 8));

        // Old rows: format 1, the core's pickle under the store's pickle key.
        let (old_key, old_sealed) = old_session_row(&cipher, &record);
        assert_eq!(old_key, key);
        let old: OlmSessionRecord = open_record(&cipher, &key, &old_sealed).unwrap();
        assert_eq!(old.session.session_id(), record.session.session_id());
        assert_eq!(old.sender_key, record.sender_key);
        // Rewriting an old row writes the new format.
        let rewritten = seal_record(&cipher, &key, &old).unwrap();
        assert_eq!(cipher.open(Table::OlmSessions, &key, &rewritten).unwrap().first(), Some(&FORMAT_V2));
    }

    #[test]
    fn a_state_row_relabelled_as_a_pickle_row_is_refused() {
        let cipher = StoreCipher::new(&[3; 32]);
        let record = session_record();
        let key = record.key(&Keys(&cipher));
        let sealed = seal_record(&cipher, &key, &record).unwrap();
        let mut plaintext = cipher.open(Table::OlmSessions, &key, &sealed).unwrap();
        for (format, accepted) in [(FORMAT_V1, false), (FORMAT_V3, false), (9, false), (FORMAT_V2, true)] {
            plaintext[0] = format;
            let decoded = decode_plaintext::<OlmSessionRecord>(&cipher, &key, &plaintext);
            assert_eq!(decoded.is_ok(), accepted, "format {format}");
        }
    }

    #[test]
    fn accounts_and_backup_keys_are_written_as_state_and_read_in_every_format() {
        let cipher = StoreCipher::new(&[4; 32]);
        let account = AccountRecord {
            user_id: UserId::from("@bob:example.org".to_owned()),
            device_id: DeviceId::from("BOB"),
            account: Account::new(),
            device_keys_uploaded: true,
            fallback_key_published_ms: Some(5),
        };
        let key = account.key(&Keys(&cipher));
        let sealed = seal_record(&cipher, &key, &account).unwrap();
        assert_eq!(cipher.open(Table::Singletons, &key, &sealed).unwrap().first(), Some(&FORMAT_V3));
        let back: AccountRecord = open_record(&cipher, &key, &sealed).unwrap();
        assert_eq!(back.account.identity_keys(), account.account.identity_keys());
        assert_eq!(back.fallback_key_published_ms, Some(5));

        let backup = BackupRecord { version: Some("1".to_owned()), decryption_key: Some(PkDecryption::new()) };
        let key = backup.key(&Keys(&cipher));
        let sealed = seal_record(&cipher, &key, &backup).unwrap();
        assert_eq!(cipher.open(Table::Singletons, &key, &sealed).unwrap().first(), Some(&FORMAT_V2));
        let back: BackupRecord = open_record(&cipher, &key, &sealed).unwrap();
        assert_eq!(
            back.decryption_key.map(|k| k.public_key()),
            backup.decryption_key.as_ref().map(PkDecryption::public_key)
        );
    }
}
