//! Server-side key backup, `m.megolm_backup.v1.curve25519-aes-sha2` ("Server-side key
//! backups" in the client-server specification): the backup key and its signed `auth_data`,
//! when a backup version may be written to, the upload of room keys, and the restore of a
//! downloaded backup.
//!
//! The cryptography is the core's ([`ferrolm::pk`]): each room key is encrypted to the
//! backup's public key under its own ephemeral key. The scheme's MAC authenticates nothing
//! (libolm's defect, kept for compatibility), so anyone who knows the public key, the server
//! included, can write entries that decrypt: restored keys are unverified, and a restore
//! never tells one undecryptable entry from another (no padding oracle).
//!
//! Rules (each a named function with a test that breaks it):
//! - `check_backup_trust`: a backup version is written to only when its public key is that
//!   of a private key we hold, or its `auth_data` carries a valid signature by this device, by
//!   an own device the user verified, or by the own master key when that key is trusted.
//!   Otherwise the server could slip in a version of its own and collect every room key.
//! - `check_key_matches`: a decryption key is used only with the backup whose public key it
//!   derives (a wrong recovery key is refused before anything is decrypted).
//! - `check_restored_key`: a decrypted entry is imported only if it is Megolm, its session
//!   key decodes, and its session id and room are the ones the backup files it under. Every
//!   failure, from the decryption on, is the same reasonless count.
//! - `upload_acknowledged`: a key is marked backed up only when the server acknowledged the
//!   upload of that very key (the same version, the same first index): a better key that
//!   arrived during the upload is uploaded again.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ferrolm::megolm::{ExportedSessionKey, InboundGroupSession, SessionConfig};
use ferrolm::pk::{PkDecryption, PkEncryption, PkMessage};
use ferrolm::secret_storage::{RecoveryKeyError, SecretStorageKey};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey, base64_decode, base64_encode};
use ferrolm_store::{Backend, InboundGroupSessionRecord, LocalTrust, RoomId, Store};
use ruma::api::client::backup::{KeyBackupData, RoomKeyBackup, add_backup_keys};
use ruma::serde::Raw;
use ruma::{OwnedDeviceId, OwnedRoomId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::devices::Device;
use crate::env::MachineRng;
use crate::error::MachineError;
use crate::own_device::MEGOLM_ALGORITHM;
use crate::signing::{SignatureError, canonical_signed_bytes, verify_json};

/// The backup algorithm (`m.megolm_backup.v1.curve25519-aes-sha2`).
pub const BACKUP_ALGORITHM: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

/// Room keys per upload request ([`OlmMachine::backup`](crate::OlmMachine::backup)).
pub const BACKUP_BATCH_SIZE: usize = 200;

/// Room keys per change set when a restore or an import writes to the store: large commits
/// amortize the transaction, small enough that progress is reported often.
pub const IMPORT_COMMIT_SIZE: usize = 10_000;

/// Entries one restore worker takes at a time (see `decode_entries`).
pub(crate) const DECODE_BLOCK: usize = 256;

/// Why a backup operation failed. Nothing was imported or changed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The machine or the store failed.
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// The backup version's description (`GET /room_keys/version`) is not of the expected shape.
    #[error("malformed backup version: {0}")]
    MalformedBackupInfo(String),
    /// The backup uses another algorithm than `m.megolm_backup.v1.curve25519-aes-sha2`.
    #[error("unsupported backup algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The decryption key is not the backup's (a wrong recovery key).
    #[error("the decryption key does not belong to this backup (wrong recovery key?)")]
    WrongKey,
    /// The backup is signed by no key we trust and we hold no private key for it: writing to
    /// it could hand every room key to whoever made it.
    #[error("the backup version is not signed by any trusted key")]
    Untrusted,
    /// The downloaded keys (`GET /room_keys/keys`) are not JSON of the expected shape.
    #[error("malformed backup keys: {0}")]
    MalformedBackup(String),
    /// The backup held entries and none of them could be imported (all failed to decrypt or
    /// were malformed). `failed` entries, with no reason (see the module documentation).
    #[error("none of the {failed} backed-up room keys could be decrypted")]
    NothingDecrypted {
        /// How many entries failed.
        failed: usize,
    },
    /// A recovery key that does not decode.
    #[error("invalid recovery key: {0}")]
    InvalidRecoveryKey(#[from] RecoveryKeyError),
    /// A base64 backup key (the secret-storage copy) that is not 32 bytes of base64.
    #[error("the backup key is not 32 bytes of base64")]
    InvalidKey,
}

impl From<ferrolm_store::StoreError> for BackupError {
    fn from(e: ferrolm_store::StoreError) -> Self {
        Self::Machine(e.into())
    }
}

/// A backup's private key (the secret behind the recovery key). Zeroized on drop; `Debug`
/// shows only the public key.
///
/// ```
/// use ferrolm_machine::BackupDecryptionKey;
/// let key = BackupDecryptionKey::from_bytes(&[7; 32]);
/// let recovery_key = key.to_recovery_key();
/// let again = BackupDecryptionKey::from_recovery_key(&recovery_key)?;
/// assert_eq!(again.public_key(), key.public_key());
/// // The secret-storage copy (`m.megolm_backup.v1`) is the key in base64.
/// assert_eq!(BackupDecryptionKey::from_base64(&key.to_base64())?.public_key(), key.public_key());
/// # Ok::<(), ferrolm_machine::BackupError>(())
/// ```
#[derive(Clone)]
pub struct BackupDecryptionKey {
    key: PkDecryption,
}

impl BackupDecryptionKey {
    /// The key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self { key: PkDecryption::from_bytes(bytes) }
    }

    /// The key from a recovery key as the user typed it (`EsTc …`, spaces ignored).
    pub fn from_recovery_key(recovery_key: &str) -> Result<Self, BackupError> {
        let key = SecretStorageKey::from_recovery_key(recovery_key)?;
        Ok(Self::from_bytes(key.as_bytes()))
    }

    /// The recovery key to show the user (base58, in groups of four).
    pub fn to_recovery_key(&self) -> Zeroizing<String> {
        SecretStorageKey::from_bytes(*self.key.to_bytes()).to_recovery_key()
    }

    /// The key from its secret-storage form (`m.megolm_backup.v1`: base64 of the 32 bytes).
    pub fn from_base64(key: &str) -> Result<Self, BackupError> {
        let bytes = Zeroizing::new(base64_decode(key.trim()).map_err(|_| BackupError::InvalidKey)?);
        let bytes = <&[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| BackupError::InvalidKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The secret-storage form: the 32 bytes in unpadded base64.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64_encode(self.key.to_bytes().as_slice()))
    }

    /// The public key (the backup's `auth_data.public_key`).
    pub fn public_key(&self) -> Curve25519PublicKey {
        self.key.public_key()
    }

    pub(crate) fn generate(rng: &mut dyn MachineRng) -> Self {
        Self { key: PkDecryption::new_with_rng(&mut &mut *rng) }
    }

    pub(crate) fn pk(&self) -> &PkDecryption {
        &self.key
    }

    pub(crate) fn from_pk(key: PkDecryption) -> Self {
        Self { key }
    }
}

impl core::fmt::Debug for BackupDecryptionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackupDecryptionKey").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

/// A backup version as the server describes it (`GET /room_keys/version`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackupInfo {
    /// The version.
    pub version: String,
    /// The backup's public key.
    pub public_key: Curve25519PublicKey,
    /// The signed `auth_data` as received.
    pub auth_data: Map<String, Value>,
    /// How many keys the server holds, if it said.
    pub count: Option<u64>,
    /// The backup's etag, if the server said.
    pub etag: Option<String>,
}

#[derive(Deserialize)]
struct BackupInfoJson {
    algorithm: String,
    auth_data: Map<String, Value>,
    version: String,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
}

impl BackupInfo {
    /// Reads the body of `GET /room_keys/version` (or `/room_keys/version/{version}`).
    pub fn from_json(body: &[u8]) -> Result<Self, BackupError> {
        let info: BackupInfoJson =
            serde_json::from_slice(body).map_err(|e| BackupError::MalformedBackupInfo(e.to_string()))?;
        let mut parsed = Self::from_parts(info.version, &info.algorithm, info.auth_data)?;
        parsed.count = info.count;
        parsed.etag = info.etag;
        Ok(parsed)
    }

    /// A backup version from its parts (version, algorithm, `auth_data`).
    pub fn from_parts(version: String, algorithm: &str, auth_data: Map<String, Value>) -> Result<Self, BackupError> {
        if algorithm != BACKUP_ALGORITHM {
            return Err(BackupError::UnsupportedAlgorithm(algorithm.to_owned()));
        }
        let public_key = auth_data
            .get("public_key")
            .and_then(Value::as_str)
            .ok_or_else(|| BackupError::MalformedBackupInfo("auth_data has no public_key".into()))?;
        let public_key = Curve25519PublicKey::from_base64(public_key)
            .map_err(|_| BackupError::MalformedBackupInfo("the public key is not a Curve25519 key".into()))?;
        Ok(Self { version, public_key, auth_data, count: None, etag: None })
    }
}

/// Why a backup version is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTrustSource {
    /// Its public key is that of a private key we hold.
    DecryptionKey,
    /// A valid signature by this device.
    ThisDevice,
    /// A valid signature by an own device the user verified.
    VerifiedOwnDevice(OwnedDeviceId),
    /// A valid signature by the own master key, which is trusted.
    OwnMasterKey,
}

/// Whether a backup version may be written to (the rule `check_backup_trust`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTrust {
    /// Trusted, and why.
    Trusted(BackupTrustSource),
    /// Signed by no key we trust, and no private key of ours matches it.
    Untrusted,
}

impl BackupTrust {
    /// Whether the backup is trusted.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted(_))
    }
}

/// What the trust rule knows about the own identity.
pub(crate) struct OwnKeys<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub ed25519: Ed25519PublicKey,
    /// The own master key, if the own identity is trusted (cross-signing's `Trust::own_trusted`).
    pub master_key: Option<Ed25519PublicKey>,
    /// The own other devices, as stored.
    pub devices: &'a [Device],
    /// The public keys of the backup private keys we hold.
    pub held_keys: &'a [Curve25519PublicKey],
}

/// Rule: a backup version is trusted when its public key derives from a private key we hold,
/// or when its `auth_data` carries a valid signature by this device, by the own master key
/// (when trusted), or by an own, verified, not deleted device. A signature that does not
/// verify counts for nothing.
pub(crate) fn check_backup_trust(info: &BackupInfo, own: &OwnKeys<'_>) -> BackupTrust {
    if own.held_keys.contains(&info.public_key) {
        return BackupTrust::Trusted(BackupTrustSource::DecryptionKey);
    }
    let signed_by =
        |key_id: &str, key: &Ed25519PublicKey| verify_json(&info.auth_data, own.user_id, key_id, key).is_ok();
    if signed_by(&format!("ed25519:{}", own.device_id), &own.ed25519) {
        return BackupTrust::Trusted(BackupTrustSource::ThisDevice);
    }
    if let Some(master) = &own.master_key
        && signed_by(&format!("ed25519:{}", master.to_base64()), master)
    {
        return BackupTrust::Trusted(BackupTrustSource::OwnMasterKey);
    }
    let signatures = info.auth_data.get("signatures").and_then(|s| s.get(own.user_id)).and_then(Value::as_object);
    for key_id in signatures.into_iter().flat_map(|s| s.keys()) {
        let Some(device_id) = key_id.strip_prefix("ed25519:") else { continue };
        let device = own
            .devices
            .iter()
            .find(|d| d.device_id.as_str() == device_id && d.device_id.as_str() != own.device_id && !d.deleted);
        if let Some(device) = device
            && device.local_trust == LocalTrust::Verified
            && signed_by(key_id, &device.ed25519_key)
        {
            return BackupTrust::Trusted(BackupTrustSource::VerifiedOwnDevice(device.device_id.clone()));
        }
    }
    BackupTrust::Untrusted
}

/// Rule: a decryption key is used only with the backup whose public key it derives.
pub(crate) fn check_key_matches(info: &BackupInfo, key: &BackupDecryptionKey) -> Result<(), BackupError> {
    if key.public_key() == info.public_key { Ok(()) } else { Err(BackupError::WrongKey) }
}

/// Signs `auth_data` with the own master key when we hold its private key (the stored private
/// cross-signing keys), under the key id `ed25519:<public key>`. Returns whether it signed.
pub(crate) fn sign_with_own_master_key<B: Backend>(
    store: &Store<B>,
    user_id: &str,
    auth_data: &mut Map<String, Value>,
) -> Result<bool, MachineError> {
    let Some(seed) = store.private_cross_signing_keys()?.and_then(|k| k.master) else { return Ok(false) };
    let signing = ferrolm::pk::PkSigning::from_seed(seed.as_bytes());
    let bytes = canonical_signed_bytes(auth_data).map_err(|e| MachineError::Internal(e.to_string()))?;
    let signature = signing.sign(&bytes).to_base64();
    insert_signature(auth_data, user_id, &format!("ed25519:{}", signing.public_key().to_base64()), signature)?;
    Ok(true)
}

fn insert_signature(
    object: &mut Map<String, Value>,
    user_id: &str,
    key_id: &str,
    signature: String,
) -> Result<(), MachineError> {
    let bad = || MachineError::Internal(SignatureError::NotAnObject.to_string());
    let signatures = object.entry("signatures").or_insert_with(|| Value::Object(Map::new()));
    let by_user = signatures.as_object_mut().ok_or_else(bad)?;
    let by_user = by_user.entry(user_id.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    by_user.as_object_mut().ok_or_else(bad)?.insert(key_id.to_owned(), Value::String(signature));
    Ok(())
}

/// The unsigned `auth_data` of a new backup: `{"public_key": …}`.
pub(crate) fn auth_data(public_key: &Curve25519PublicKey) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("public_key".into(), Value::String(public_key.to_base64()));
    object
}

/// The backup the machine writes to.
#[derive(Debug, Clone)]
pub(crate) struct ActiveBackup {
    pub version: String,
    pub encryption: PkEncryption,
}

/// The machine's backup state between steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct BackupState {
    pub active: Option<ActiveBackup>,
    /// The id of the upload in flight, if any (one at a time).
    pub upload_in_flight: Option<String>,
}

impl BackupState {
    /// The state a store holds: a backup is active after a restart when the store holds its
    /// version and its private key (the public key is derived from it).
    pub(crate) fn load<B: Backend>(store: &Store<B>) -> Result<Self, MachineError> {
        let active = store.backup()?.and_then(|record| {
            let key = record.decryption_key?;
            let encryption = PkEncryption::from_key(key.public_key()).ok()?;
            Some(ActiveBackup { version: record.version?, encryption })
        });
        Ok(Self { active, upload_in_flight: None })
    }
}

/// What a backup request is waiting for.
#[derive(Debug, Clone)]
pub(crate) enum BackupPurpose {
    /// A new version with this key and `auth_data`.
    CreateVersion(BackupDecryptionKey),
    /// Uploaded keys: (room, session id, first index uploaded), into `version`.
    Upload { version: String, keys: Vec<(RoomId, String, u32)> },
}

#[derive(Serialize)]
struct BackedUpRoomKey<'a> {
    algorithm: &'a str,
    sender_key: String,
    session_key: &'a str,
    sender_claimed_keys: BTreeMap<&'a str, String>,
    forwarding_curve25519_key_chain: [&'a str; 0],
    #[serde(rename = "m.shared_history")]
    shared_history: bool,
}

/// The backup's plaintext for one room key (the spec's `BackedUpSessionData`), in a buffer that
/// zeroizes itself.
pub(crate) fn backed_up_plaintext(record: &InboundGroupSessionRecord) -> Result<Zeroizing<Vec<u8>>, MachineError> {
    let session_key = record.session.export_at_first_known_index().to_base64();
    let mut claimed = BTreeMap::new();
    if let Some(key) = &record.claimed_signing_key {
        claimed.insert("ed25519", key.to_base64());
    }
    let key = BackedUpRoomKey {
        algorithm: MEGOLM_ALGORITHM,
        sender_key: record.sender_key.to_base64(),
        session_key: session_key.as_str(),
        sender_claimed_keys: claimed,
        forwarding_curve25519_key_chain: [],
        shared_history: record.shared_history,
    };
    serde_json::to_vec(&key).map(Zeroizing::new).map_err(|e| MachineError::Internal(e.to_string()))
}

/// One room key encrypted for the backup (the spec's `KeyBackupData`).
pub(crate) fn encrypt_for_backup(
    record: &InboundGroupSessionRecord,
    encryption: &PkEncryption,
    rng: &mut dyn MachineRng,
) -> Result<Raw<KeyBackupData>, MachineError> {
    let plaintext = backed_up_plaintext(record)?;
    let message = encryption.encrypt_with_rng(&plaintext, &mut &mut *rng);
    let (ciphertext, mac, ephemeral) = message.to_base64();
    let data = serde_json::json!({
        "first_message_index": record.first_known_index(),
        "forwarded_count": u8::from(record.source != ferrolm_store::RoomKeySource::Direct),
        "is_verified": false,
        "session_data": {"ephemeral": ephemeral, "ciphertext": ciphertext, "mac": mac},
    });
    let raw = serde_json::value::to_raw_value(&data).map_err(|e| MachineError::Internal(e.to_string()))?;
    Ok(Raw::from_json(raw))
}

/// The upload request for `sessions` into the active backup, and what it uploads.
pub(crate) fn upload_request(
    active: &ActiveBackup,
    sessions: &[InboundGroupSessionRecord],
    rng: &mut dyn MachineRng,
) -> Result<(add_backup_keys::v3::Request, BackupPurpose), MachineError> {
    let mut rooms: BTreeMap<OwnedRoomId, RoomKeyBackup> = BTreeMap::new();
    let mut keys = Vec::with_capacity(sessions.len());
    for record in sessions {
        // A stored room id that does not parse cannot be filed in the backup.
        let Ok(room_id) = OwnedRoomId::try_from(record.room_id.as_str()) else { continue };
        let data = encrypt_for_backup(record, &active.encryption, rng)?;
        let session_id = record.session_id();
        keys.push((record.room_id.clone(), session_id.clone(), record.first_known_index()));
        rooms.entry(room_id).or_insert_with(|| RoomKeyBackup::new(BTreeMap::new())).sessions.insert(session_id, data);
    }
    let request = add_backup_keys::v3::Request::new(active.version.clone(), rooms);
    Ok((request, BackupPurpose::Upload { version: active.version.clone(), keys }))
}

/// Rule: the upload of `(version, first_index)` marks `stored` backed up only if it still is
/// the key that was uploaded, into the backup still active.
pub(crate) fn upload_acknowledged(
    stored: &InboundGroupSessionRecord,
    uploaded_version: &str,
    uploaded_first_index: u32,
    active: Option<&ActiveBackup>,
) -> bool {
    active.is_some_and(|a| a.version == uploaded_version)
        && stored.first_known_index() == uploaded_first_index
        && !stored.backed_up
}

// ---------------------------------------------------------------------------------------
// Restore.

/// A room key read from a backup or a key export file, checked, ready to merge.
pub(crate) struct DecodedKey {
    pub room_id: RoomId,
    pub session: InboundGroupSession,
    pub sender_key: Curve25519PublicKey,
    pub claimed_signing_key: Option<Ed25519PublicKey>,
    pub shared_history: bool,
}

/// One entry of a downloaded backup, not yet decrypted.
pub(crate) struct BackupEntry<'a> {
    room_id: Cow<'a, str>,
    session_id: Cow<'a, str>,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct Downloaded<'a> {
    #[serde(borrow)]
    rooms: BTreeMap<Cow<'a, str>, DownloadedRoom<'a>>,
}

#[derive(Deserialize)]
struct DownloadedRoom<'a> {
    #[serde(borrow)]
    sessions: BTreeMap<Cow<'a, str>, &'a RawValue>,
}

#[derive(Deserialize)]
struct EntryJson<'a> {
    #[serde(borrow)]
    session_data: SessionDataJson<'a>,
}

#[derive(Deserialize)]
struct SessionDataJson<'a> {
    #[serde(borrow)]
    ephemeral: Cow<'a, str>,
    #[serde(borrow)]
    ciphertext: Cow<'a, str>,
    #[serde(borrow)]
    mac: Cow<'a, str>,
}

/// The backed-up room key inside an entry, and the exported room key of a key export file
/// (which also names its room and session).
#[derive(Deserialize)]
pub(crate) struct RoomKeyJson<'a> {
    #[serde(borrow)]
    pub algorithm: Cow<'a, str>,
    #[serde(borrow, default)]
    pub room_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub sender_key: Cow<'a, str>,
    #[serde(borrow)]
    pub session_key: Cow<'a, str>,
    #[serde(borrow, default)]
    pub sender_claimed_keys: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default, rename = "m.shared_history", alias = "org.matrix.msc3061.shared_history")]
    pub shared_history: bool,
}

/// Reads a downloaded backup (`GET /room_keys/keys`: `{"rooms": {room: {"sessions": {id: …}}}}`).
/// Only the outer shape is checked here; each entry is read when it is decrypted, so one bad
/// entry fails alone.
pub(crate) fn parse_backup(body: &[u8]) -> Result<Vec<BackupEntry<'_>>, BackupError> {
    let downloaded: Downloaded<'_> =
        serde_json::from_slice(body).map_err(|e| BackupError::MalformedBackup(e.to_string()))?;
    let mut entries = Vec::new();
    for (room_id, room) in downloaded.rooms {
        for (session_id, data) in room.sessions {
            entries.push(BackupEntry { room_id: room_id.clone(), session_id, data });
        }
    }
    Ok(entries)
}

/// Rule: an exported or backed-up room key is Megolm, its session key decodes, and its
/// session id (and room, when it names one) are the ones it is filed under. `None` on any
/// failure, without a reason.
pub(crate) fn check_restored_key(
    key: &RoomKeyJson<'_>,
    room_id: &str,
    session_id: &str,
    signing_keys: &SigningKeyCache,
) -> Option<DecodedKey> {
    if key.algorithm != MEGOLM_ALGORITHM
        || key.room_id.as_deref().is_some_and(|r| r != room_id)
        || key.session_id.as_deref().is_some_and(|s| s != session_id)
    {
        return None;
    }
    ruma::RoomId::parse(room_id).ok()?;
    let exported = ExportedSessionKey::from_base64(&key.session_key).ok()?;
    if exported.session_id().to_base64() != session_id {
        return None;
    }
    let sender_key = Curve25519PublicKey::from_base64(&key.sender_key).ok()?;
    let claimed_signing_key = match key.sender_claimed_keys.get("ed25519") {
        Some(k) => Some(signing_keys.parse(k)?),
        None => None,
    };
    Some(DecodedKey {
        room_id: RoomId::new(room_id),
        session: InboundGroupSession::import(&exported, SessionConfig::version_1()),
        sender_key,
        claimed_signing_key,
        shared_history: key.shared_history,
    })
}

/// The senders' Ed25519 keys already decoded in one import: a backup holds many keys from few
/// senders, and decoding an Ed25519 key (a point decompression) costs a tenth of decrypting an
/// entry. Bounded, so that a hostile file cannot grow it without limit.
#[derive(Default)]
pub(crate) struct SigningKeyCache(std::sync::Mutex<std::collections::HashMap<String, Ed25519PublicKey>>);

impl SigningKeyCache {
    const MAX_ENTRIES: usize = 4_096;

    /// `base64` decoded as an Ed25519 key, or `None`.
    pub(crate) fn parse(&self, base64: &str) -> Option<Ed25519PublicKey> {
        if let Some(key) = self.0.lock().ok().and_then(|c| c.get(base64).copied()) {
            return Some(key);
        }
        let key = Ed25519PublicKey::from_base64(base64).ok()?;
        if let Ok(mut cache) = self.0.lock()
            && cache.len() < Self::MAX_ENTRIES
        {
            cache.insert(base64.to_owned(), key);
        }
        Some(key)
    }
}

/// Decrypts and checks one entry. Every failure is the same `None`: the entry's JSON, its
/// base64, the decryption (which does the same work whatever fails, see
/// [`PkDecryption::decrypt_backup`]), the plaintext's JSON and the key's checks.
fn decode_entry(key: &PkDecryption, entry: &BackupEntry<'_>, signing_keys: &SigningKeyCache) -> Option<DecodedKey> {
    let json: EntryJson<'_> = serde_json::from_str(entry.data.get()).ok()?;
    let data = json.session_data;
    let message = PkMessage::from_base64(&data.ciphertext, &data.mac, &data.ephemeral).ok()?;
    let plaintext = key.decrypt_backup(&message).ok()?;
    let room_key: RoomKeyJson<'_> = serde_json::from_slice(&plaintext).ok()?;
    let decoded = check_restored_key(&room_key, &entry.room_id, &entry.session_id, signing_keys);
    if let Cow::Owned(mut s) = room_key.session_key {
        zeroize::Zeroize::zeroize(&mut s);
    }
    decoded
}

/// Decrypts and checks `entries` on every core, in order; `None` for each entry that failed.
/// Workers take blocks of [`DECODE_BLOCK`] entries from a shared counter, so a core slowed by
/// another process does fewer blocks instead of holding up the others.
pub(crate) fn decode_entries(key: &PkDecryption, entries: &[BackupEntry<'_>]) -> Vec<Option<DecodedKey>> {
    let signing_keys = SigningKeyCache::default();
    ferrolm_store::parallel::map(entries, DECODE_BLOCK, |entry| decode_entry(key, entry, &signing_keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_device;
    use ferrolm::megolm::GroupSession;
    use ferrolm::olm::Account;
    use ferrolm_store::RoomKeySource;

    fn record(outbound: &GroupSession, room: &str) -> InboundGroupSessionRecord {
        let sender = Account::new();
        InboundGroupSessionRecord {
            room_id: RoomId::new(room),
            session: InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1()),
            sender_key: sender.curve25519_key(),
            claimed_signing_key: Some(sender.ed25519_key()),
            source: RoomKeySource::Direct,
            backed_up: false,
            shared_history: true,
        }
    }

    fn info(public_key: Curve25519PublicKey) -> BackupInfo {
        BackupInfo::from_parts("1".into(), BACKUP_ALGORITHM, auth_data(&public_key)).unwrap()
    }

    #[test]
    fn backup_info_is_read_and_checked() {
        let key = BackupDecryptionKey::from_bytes(&[3; 32]);
        let body = serde_json::json!({
            "algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": key.public_key().to_base64()},
            "count": 4, "etag": "e", "version": "7",
        });
        let info = BackupInfo::from_json(body.to_string().as_bytes()).unwrap();
        assert_eq!((info.version.as_str(), info.public_key, info.count), ("7", key.public_key(), Some(4)));
        let mut other = body.clone();
        other["algorithm"] = "org.example.other".into();
        assert!(matches!(
            BackupInfo::from_json(other.to_string().as_bytes()),
            Err(BackupError::UnsupportedAlgorithm(_))
        ));
        let mut bad = body.clone();
        bad["auth_data"]["public_key"] = "AAAA".into();
        assert!(matches!(BackupInfo::from_json(bad.to_string().as_bytes()), Err(BackupError::MalformedBackupInfo(_))));
        assert!(matches!(BackupInfo::from_json(b"[]"), Err(BackupError::MalformedBackupInfo(_))));
    }

    #[test]
    fn rule_a_backup_is_trusted_only_by_a_held_key_or_a_trusted_signature() {
        let me = Account::new();
        let key = BackupDecryptionKey::from_bytes(&[9; 32]);
        let mut info = info(key.public_key());
        let verified_other = Account::new();
        let mut other = test_device("@me:x", "OTHER", LocalTrust::Verified, false);
        other.ed25519_key = verified_other.ed25519_key();
        let unverified = Account::new();
        let mut unverified_device = test_device("@me:x", "UNVERIFIED", LocalTrust::Unset, false);
        unverified_device.ed25519_key = unverified.ed25519_key();
        let devices = [other.clone(), unverified_device];
        let own = |held: &'static [Curve25519PublicKey], devices: &'static [Device]| OwnKeys {
            user_id: "@me:x",
            device_id: "ME",
            ed25519: me.ed25519_key(),
            master_key: None,
            devices,
            held_keys: held,
        };
        let devices: &'static [Device] = Box::leak(Box::new(devices));

        // No signature, no key: untrusted.
        assert_eq!(check_backup_trust(&info, &own(&[], devices)), BackupTrust::Untrusted);
        // The private key we hold: trusted.
        let held: &'static [Curve25519PublicKey] = Box::leak(Box::new([key.public_key()]));
        assert_eq!(
            check_backup_trust(&info, &own(held, devices)),
            BackupTrust::Trusted(BackupTrustSource::DecryptionKey)
        );
        // Signed by an unverified own device: untrusted.
        crate::signing::sign_json(&unverified, "@me:x", "UNVERIFIED", &mut info.auth_data).unwrap();
        assert_eq!(check_backup_trust(&info, &own(&[], devices)), BackupTrust::Untrusted);
        // A "signature" by the verified device that is someone else's: untrusted.
        let mut forged = info.clone();
        crate::signing::sign_json(&Account::new(), "@me:x", "OTHER", &mut forged.auth_data).unwrap();
        assert_eq!(check_backup_trust(&forged, &own(&[], devices)), BackupTrust::Untrusted);
        // Signed by the verified device: trusted.
        crate::signing::sign_json(&verified_other, "@me:x", "OTHER", &mut info.auth_data).unwrap();
        assert_eq!(
            check_backup_trust(&info, &own(&[], devices)),
            BackupTrust::Trusted(BackupTrustSource::VerifiedOwnDevice("OTHER".into()))
        );
        // ... unless it was deleted.
        let mut deleted = other;
        deleted.deleted = true;
        let gone: &'static [Device] = Box::leak(Box::new([deleted]));
        assert_eq!(check_backup_trust(&info, &own(&[], gone)), BackupTrust::Untrusted);
        // Signed by this device: trusted. Any change to the signed data breaks it.
        let mut mine = self::info(key.public_key());
        crate::signing::sign_json(&me, "@me:x", "ME", &mut mine.auth_data).unwrap();
        assert_eq!(check_backup_trust(&mine, &own(&[], &[])), BackupTrust::Trusted(BackupTrustSource::ThisDevice));
        mine.auth_data
            .insert("public_key".into(), BackupDecryptionKey::from_bytes(&[1; 32]).public_key().to_base64().into());
        assert_eq!(check_backup_trust(&mine, &own(&[], &[])), BackupTrust::Untrusted);
    }

    #[test]
    fn rule_a_master_key_signature_counts_only_when_the_master_key_is_trusted() {
        let master = ferrolm::pk::PkSigning::from_seed(&[5; 32]);
        let key = BackupDecryptionKey::from_bytes(&[9; 32]);
        let mut info = info(key.public_key());
        let bytes = canonical_signed_bytes(&info.auth_data).unwrap();
        let key_id = format!("ed25519:{}", master.public_key().to_base64());
        insert_signature(&mut info.auth_data, "@me:x", &key_id, master.sign(&bytes).to_base64()).unwrap();
        let me = Account::new();
        let mut own = OwnKeys {
            user_id: "@me:x",
            device_id: "ME",
            ed25519: me.ed25519_key(),
            master_key: None,
            devices: &[],
            held_keys: &[],
        };
        assert_eq!(check_backup_trust(&info, &own), BackupTrust::Untrusted);
        own.master_key = Some(master.public_key());
        assert_eq!(check_backup_trust(&info, &own), BackupTrust::Trusted(BackupTrustSource::OwnMasterKey));
    }

    #[test]
    fn rule_a_key_is_used_only_with_its_own_backup() {
        let key = BackupDecryptionKey::from_bytes(&[9; 32]);
        assert!(check_key_matches(&info(key.public_key()), &key).is_ok());
        let other = BackupDecryptionKey::from_bytes(&[8; 32]);
        assert!(matches!(check_key_matches(&info(key.public_key()), &other), Err(BackupError::WrongKey)));
    }

    fn entry_json(record: &InboundGroupSessionRecord, key: &BackupDecryptionKey) -> String {
        let encryption = PkEncryption::from_key(key.public_key()).unwrap();
        let mut rng = rand_core::OsRng;
        encrypt_for_backup(record, &encryption, &mut rng).unwrap().json().get().to_owned()
    }

    fn backup_body(entries: &[(&str, String, String)]) -> String {
        let mut rooms = Map::new();
        for (room, session, data) in entries {
            let room = rooms.entry(room.to_string()).or_insert_with(|| serde_json::json!({"sessions": {}}));
            room["sessions"][session] = serde_json::from_str(data).unwrap();
        }
        serde_json::json!({ "rooms": rooms }).to_string()
    }

    #[test]
    fn an_uploaded_key_decrypts_back_to_the_same_session() {
        let outbound = GroupSession::new(SessionConfig::version_1());
        let record = record(&outbound, "!r:x");
        let key = BackupDecryptionKey::from_bytes(&[9; 32]);
        let body = backup_body(&[("!r:x", record.session_id(), entry_json(&record, &key))]);
        let entries = parse_backup(body.as_bytes()).unwrap();
        let decoded = decode_entries(key.pk(), &entries);
        let [Some(d)] = decoded.as_slice() else { panic!("one key") };
        assert_eq!(d.session.session_id(), record.session.session_id());
        assert_eq!(d.session.first_known_index(), 0);
        assert!(!d.session.is_verified(), "a restored key is not verified");
        assert_eq!(
            (d.sender_key, d.claimed_signing_key, d.shared_history),
            (record.sender_key, record.claimed_signing_key, true)
        );
    }

    #[test]
    fn rule_restored_keys_must_be_filed_under_their_own_session_and_room() {
        let key = BackupDecryptionKey::from_bytes(&[9; 32]);
        let a = record(&GroupSession::new(SessionConfig::version_1()), "!r:x");
        let b = record(&GroupSession::new(SessionConfig::version_1()), "!r:x");
        // a's key filed under b's id; a malformed entry; an entry for another backup key; a
        // room id that is not one; and one good entry.
        let other_key = BackupDecryptionKey::from_bytes(&[8; 32]);
        let body = backup_body(&[
            ("!r:x", b.session_id(), entry_json(&a, &key)),
            ("!r:x", "bogus".into(), r#"{"session_data": 5}"#.into()),
            ("!r:x", a.session_id(), entry_json(&a, &other_key)),
            ("not a room", b.session_id(), entry_json(&b, &key)),
            ("!s:x", b.session_id(), entry_json(&b, &key)),
        ]);
        let entries = parse_backup(body.as_bytes()).unwrap();
        let decoded = decode_entries(key.pk(), &entries);
        let good: Vec<_> =
            decoded.iter().flatten().map(|d| (d.room_id.as_str().to_owned(), d.session.session_id())).collect();
        assert_eq!(good, [("!s:x".to_owned(), b.session.session_id())]);
        assert_eq!(decoded.len(), 5);
        assert!(matches!(parse_backup(b"{\"rooms\": 3}"), Err(BackupError::MalformedBackup(_))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Untrusted input: a downloaded body never panics, whatever its bytes; each entry
        /// that parses decodes to a key or to the one failure.
        #[test]
        fn downloaded_backups_of_any_shape_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            field in "[a-zA-Z0-9+/=]{0,80}",
        ) {
            let _ = parse_backup(&bytes);
            let key = BackupDecryptionKey::from_bytes(&[9; 32]);
            let body = serde_json::json!({"rooms": {"!r:x": {"sessions": {
                "s": {"session_data": {"ephemeral": field, "ciphertext": field, "mac": field}},
                "t": {"session_data": field},
                "u": field,
            }}}}).to_string();
            let entries = parse_backup(body.as_bytes()).unwrap();
            let decoded = decode_entries(key.pk(), &entries);
            proptest::prop_assert_eq!(decoded.len(), 3);
            proptest::prop_assert!(decoded.iter().all(Option::is_none));
        }
    }

    #[test]
    fn rule_only_an_acknowledged_upload_of_the_same_key_marks_it_backed_up() {
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        outbound.encrypt(b"x");
        let record = record(&outbound, "!r:x");
        let active = ActiveBackup {
            version: "2".into(),
            encryption: PkEncryption::from_key(BackupDecryptionKey::from_bytes(&[1; 32]).public_key()).unwrap(),
        };
        assert!(upload_acknowledged(&record, "2", 1, Some(&active)));
        // Another version became active meanwhile.
        assert!(!upload_acknowledged(&record, "1", 1, Some(&active)));
        assert!(!upload_acknowledged(&record, "2", 1, None));
        // A better key replaced the uploaded one meanwhile.
        assert!(!upload_acknowledged(&record, "2", 5, Some(&active)));
    }

    #[test]
    fn backup_keys_convert_and_redact() {
        let key = BackupDecryptionKey::from_bytes(&[7; 32]);
        assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
        assert!(matches!(BackupDecryptionKey::from_base64("AAAA"), Err(BackupError::InvalidKey)));
        assert!(matches!(BackupDecryptionKey::from_recovery_key("nope"), Err(BackupError::InvalidRecoveryKey(_))));
        let generated = BackupDecryptionKey::generate(&mut rand_core::OsRng);
        assert_ne!(generated.public_key(), key.public_key());
    }
}
