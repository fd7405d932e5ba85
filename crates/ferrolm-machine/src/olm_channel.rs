//! The Olm channel: to-device messages encrypted with `m.olm.v1.curve25519-aes-sha2`
//! (spec: "m.olm.v1.curve25519-aes-sha2", "Validation of incoming decrypted events",
//! "Recovering from undecryptable messages").
//!
//! Opening sessions: `missing_sessions` lists the devices without a session, minus those
//! backing off after failed claims (`ClaimBackoff`; matrix-rust-sdk #1952); the claim
//! answer is checked by [`check_one_time_key_signature`] before a session is created.
//!
//! Sending: [`session_for_sending`] picks the session that most recently decrypted a
//! message (the most recently created if none has); `encrypt` puts every field the spec
//! and MSC4147 ask for into the plaintext.
//!
//! Receiving (`decrypt`): Megolm-encrypted to-device events are refused
//! ([`ToDeviceError::MegolmToDevice`]); sessions are tried most recently decrypted first
//! ([`decryption_order`]; matrix-rust-sdk #3356); a pre-key message goes to its matching
//! session or creates one, the one-time key removed in the same change set; every plaintext
//! field is checked (`check_plaintext`). At most [`KEPT_SESSIONS_PER_DEVICE`] sessions are
//! kept per device, the least recently active dropped first ([`sessions_to_prune`]).
//!
//! Wedged sessions: an Olm message no session decrypts marks the device for a new session
//! and an `m.dummy`, at most once per device per [`WEDGE_RECOVERY_INTERVAL_MS`]
//! ([`may_recover`]).

use std::collections::{BTreeMap, BTreeSet};

use ferrolm::olm::{Account, MessageType, OlmMessage, SessionConfig};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store::{Backend, Changes, OlmSessionRecord};
use ruma::api::client::keys::claim_keys;
use ruma::events::AnyToDeviceEvent;
use ruma::serde::Raw;
use ruma::{DeviceId, OneTimeKeyAlgorithm, OwnedDeviceId, OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::adapt::{device_to_store, olm_session_id, session_creation_failure, user_to_store};
use crate::cache::CachedStore;
use crate::devices::{Device, validate_device_keys};
use crate::env::MachineRng;
use crate::error::MachineError;
use crate::own_device::{MEGOLM_ALGORITHM, OLM_ALGORITHM, SIGNED_CURVE25519};
use crate::signing::{SignatureError, verify_json};

/// Sessions kept per device: at least this many; beyond it the least recently active go.
pub const KEPT_SESSIONS_PER_DEVICE: usize = 4;
/// At most one new session per device per this interval when recovering from a wedged one.
pub const WEDGE_RECOVERY_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// The first wait after a failed claim; it doubles with each failure.
pub const CLAIM_BACKOFF_INITIAL_MS: u64 = 15_000;
/// The longest wait after failed claims.
pub const CLAIM_BACKOFF_MAX_MS: u64 = 15 * 60 * 1000;

/// A (user, device) pair.
pub type DeviceKey = (OwnedUserId, OwnedDeviceId);

// ---------------------------------------------------------------------------------------
// Session bookkeeping for one step.

/// The sessions a step has read and changed, by the other device's Curve25519 key.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_key: BTreeMap<Curve25519PublicKey, Vec<OlmSessionRecord>>,
    changed: BTreeSet<(Curve25519PublicKey, String)>,
    deleted: BTreeSet<(Curve25519PublicKey, String)>,
}

impl Sessions {
    /// The sessions with the device whose identity key is `key`.
    pub(crate) fn with<B: Backend>(
        &mut self,
        store: &CachedStore<B>,
        key: Curve25519PublicKey,
    ) -> Result<&mut Vec<OlmSessionRecord>, MachineError> {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.by_key.entry(key) {
            entry.insert(store.olm_sessions(&key)?);
        }
        self.by_key.get_mut(&key).ok_or_else(|| MachineError::Internal("session cache".into()))
    }

    /// Notes that a session changed and must be saved.
    pub(crate) fn touch(&mut self, key: Curve25519PublicKey, session_id: String) {
        self.changed.insert((key, session_id));
    }

    /// Adds a new session, and drops the least recently active beyond
    /// [`KEPT_SESSIONS_PER_DEVICE`].
    pub(crate) fn add<B: Backend>(
        &mut self,
        store: &CachedStore<B>,
        record: OlmSessionRecord,
    ) -> Result<(), MachineError> {
        let key = record.sender_key;
        let id = olm_session_id(&record.session);
        let list = self.with(store, key)?;
        list.retain(|s| olm_session_id(&s.session) != id);
        list.push(record);
        let pruned = sessions_to_prune(list, &id);
        list.retain(|s| !pruned.contains(&olm_session_id(&s.session)));
        for old in pruned {
            self.changed.remove(&(key, old.clone()));
            self.deleted.insert((key, old));
        }
        self.deleted.remove(&(key, id.clone()));
        self.changed.insert((key, id));
        Ok(())
    }

    /// Puts every changed and dropped session into the change set.
    pub(crate) fn write(self, changes: &mut Changes) {
        for (key, id) in &self.deleted {
            changes.deletions.olm_sessions.push((*key, id.clone()));
        }
        for (key, list) in self.by_key {
            for record in list {
                if self.changed.contains(&(key, olm_session_id(&record.session))) {
                    changes.olm_sessions.push(record);
                }
            }
        }
    }
}

fn activity(record: &OlmSessionRecord) -> u64 {
    record.last_decrypt_ms.unwrap_or(0).max(record.created_ms)
}

/// Rule: keep at least [`KEPT_SESSIONS_PER_DEVICE`] sessions per device; beyond that, the
/// least recently active are dropped, never `keep` (the session just added).
pub fn sessions_to_prune(sessions: &[OlmSessionRecord], keep: &str) -> Vec<String> {
    if sessions.len() <= KEPT_SESSIONS_PER_DEVICE {
        return Vec::new();
    }
    let mut candidates: Vec<(u64, String)> =
        sessions.iter().map(|s| (activity(s), olm_session_id(&s.session))).filter(|(_, id)| id != keep).collect();
    candidates.sort();
    candidates.into_iter().take(sessions.len() - KEPT_SESSIONS_PER_DEVICE).map(|(_, id)| id).collect()
}

/// Rule (spec, Olm): send with the session that most recently decrypted a message; if none
/// has, the most recently created. Returns its index.
pub fn session_for_sending(sessions: &[OlmSessionRecord]) -> Option<usize> {
    let rank = |s: &OlmSessionRecord| {
        (s.last_decrypt_ms.is_some(), s.last_decrypt_ms.unwrap_or(s.created_ms), olm_session_id(&s.session))
    };
    sessions.iter().enumerate().max_by(|(_, a), (_, b)| rank(a).cmp(&rank(b))).map(|(i, _)| i)
}

/// Rule (spec, Olm; matrix-rust-sdk #3356): try the session that last decrypted
/// successfully first, then the others by recency of decryption, then by creation.
pub fn decryption_order(sessions: &[OlmSessionRecord]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.sort_by_key(|&i| {
        let s = sessions.get(i);
        let decrypt = s.and_then(|s| s.last_decrypt_ms);
        let created = s.map(|s| s.created_ms).unwrap_or(0);
        (std::cmp::Reverse(decrypt.is_some()), std::cmp::Reverse(decrypt.unwrap_or(0)), std::cmp::Reverse(created))
    });
    order
}

// ---------------------------------------------------------------------------------------
// Claims and backoff.

/// Failed claims per device: when the device may be claimed again.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimBackoff {
    failures: BTreeMap<DeviceKey, (u32, u64)>,
}

impl ClaimBackoff {
    /// Whether `device` may be claimed at `now_ms`.
    pub(crate) fn may_claim(&self, device: &DeviceKey, now_ms: u64) -> bool {
        self.failures.get(device).is_none_or(|(_, retry_at)| now_ms >= *retry_at)
    }

    /// Notes a failed claim: the wait doubles, from [`CLAIM_BACKOFF_INITIAL_MS`] up to
    /// [`CLAIM_BACKOFF_MAX_MS`].
    pub(crate) fn failed(&mut self, device: DeviceKey, now_ms: u64) {
        let entry = self.failures.entry(device).or_insert((0, 0));
        entry.0 = entry.0.saturating_add(1);
        let wait = CLAIM_BACKOFF_INITIAL_MS
            .saturating_mul(1u64 << entry.0.saturating_sub(1).min(16))
            .min(CLAIM_BACKOFF_MAX_MS);
        entry.1 = now_ms.saturating_add(wait);
    }

    /// Notes a successful claim.
    pub(crate) fn succeeded(&mut self, device: &DeviceKey) {
        self.failures.remove(device);
    }
}

/// The channel's in-memory state between steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct OlmChannel {
    pub backoff: ClaimBackoff,
    pub claims_in_flight: BTreeSet<DeviceKey>,
    /// Devices whose session is wedged: a new session and an `m.dummy` are due.
    pub wedged: BTreeMap<DeviceKey, Curve25519PublicKey>,
    /// When a recovery was last started per device key (in memory; the sessions' creation
    /// times in the store bound it across restarts).
    pub recovery_started: BTreeMap<Curve25519PublicKey, u64>,
    /// Room keys to request again once the recovery of the sender's device has sent its
    /// `m.dummy` (so the answer comes over the new session): sender key → (room, session,
    /// sender).
    pub rerequests: BTreeMap<Curve25519PublicKey, Vec<(ruma::OwnedRoomId, String, ruma::OwnedUserId)>>,
}

/// Rule: a device whose claims fail is not claimed again before its backoff ends; a device
/// with a session is not claimed (unless wedged); own device never.
pub(crate) fn missing_sessions<B: Backend>(
    store: &CachedStore<B>,
    channel: &OlmChannel,
    own_user: &UserId,
    own_device: &DeviceId,
    users: &[OwnedUserId],
    now_ms: u64,
) -> Result<Vec<DeviceKey>, MachineError> {
    let mut out = Vec::new();
    for user in users {
        for device in store.known_devices(&user_to_store(user))? {
            if device.deleted || !device.supports_olm() || (user == own_user && device.device_id == own_device) {
                continue;
            }
            let key = (device.user_id.clone(), device.device_id.clone());
            if channel.claims_in_flight.contains(&key) || !channel.backoff.may_claim(&key, now_ms) {
                continue;
            }
            let wedged = channel.wedged.contains_key(&key);
            if wedged || !store.has_olm_session(&device.curve25519_key)? {
                out.push(key);
            }
        }
    }
    Ok(out)
}

/// The claim request for `devices`.
pub(crate) fn claim_request(devices: &[DeviceKey]) -> claim_keys::v3::Request {
    let mut map: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, OneTimeKeyAlgorithm>> = BTreeMap::new();
    for (user, device) in devices {
        map.entry(user.clone()).or_default().insert(device.clone(), OneTimeKeyAlgorithm::SignedCurve25519);
    }
    claim_keys::v3::Request::new(map)
}

/// Why no session could be opened with a claimed device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimFailure {
    /// The server returned no key for it (none left, device gone, or its server failed).
    #[error("no one-time key was returned")]
    NoKey,
    /// The key is not a `signed_curve25519` key object.
    #[error("the claimed key is malformed: {0}")]
    MalformedKey(String),
    /// The key is not signed by the device.
    #[error("the claimed key's signature: {0}")]
    Signature(SignatureError),
    /// The device is not (or no longer) known and valid.
    #[error("the device is unknown")]
    UnknownDevice,
    /// The key cannot open a session (of small order).
    #[error("the key cannot open a session: {0}")]
    Session(SessionCreationFailure),
}

/// A device a claim did not open a session with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedClaim {
    /// The user.
    pub user_id: OwnedUserId,
    /// The device.
    pub device_id: OwnedDeviceId,
    /// Why.
    pub reason: ClaimFailure,
}

/// Rule: a claimed one-time key must be a `signed_curve25519` key signed by the device's
/// Ed25519 key over canonical JSON. Returns the key.
pub fn check_one_time_key_signature(
    device: &Device,
    key_id: &str,
    json: &str,
) -> Result<Curve25519PublicKey, ClaimFailure> {
    if key_id.split_once(':').map(|(alg, _)| alg) != Some(SIGNED_CURVE25519) {
        return Err(ClaimFailure::MalformedKey(format!("key id {key_id}")));
    }
    let object: Map<String, Value> =
        serde_json::from_str(json).map_err(|e| ClaimFailure::MalformedKey(e.to_string()))?;
    let key = object
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| Curve25519PublicKey::from_base64(k).ok())
        .ok_or_else(|| ClaimFailure::MalformedKey("key".into()))?;
    verify_json(&object, device.user_id.as_str(), &format!("ed25519:{}", device.device_id), &device.ed25519_key)
        .map_err(ClaimFailure::Signature)?;
    Ok(key)
}

/// What a claim answer produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimResult {
    pub created: Vec<(DeviceKey, Curve25519PublicKey, String)>,
    pub failed: Vec<FailedClaim>,
}

/// Olm sessions one thread opens or encrypts over at a time (claims, key shares).
pub(crate) const SESSION_BLOCK: usize = 64;

/// Applies a claim answer: checks each key and opens a session with each device.
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_claim<B: Backend>(
    store: &CachedStore<B>,
    account: &Account,
    channel: &mut OlmChannel,
    sessions: &mut Sessions,
    claimed: &[DeviceKey],
    response: &claim_keys::v3::Response,
    rng: &mut dyn MachineRng,
    now_ms: u64,
) -> Result<ClaimResult, MachineError> {
    // 1. In order: the device and its claimed key. One seed from the machine's generator, and
    //    a stream of it for each session to open, by its place in the claim (so the outcome
    //    does not depend on how the work is split).
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    if !claimed.is_empty() {
        rng.fill_bytes(&mut *seed);
    }
    let mut jobs = Vec::with_capacity(claimed.len());
    for key in claimed {
        channel.claims_in_flight.remove(key);
        let (user, device_id) = key;
        let Some(device) = store.known_device(&user_to_store(user), &device_to_store(device_id))? else {
            jobs.push(Err(ClaimFailure::UnknownDevice));
            continue;
        };
        let Some((key_id, raw)) =
            response.one_time_keys.get(user).and_then(|d| d.get(device_id)).and_then(|k| k.iter().next())
        else {
            jobs.push(Err(ClaimFailure::NoKey));
            continue;
        };
        let stream = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
        jobs.push(Ok((device, key_id.as_str(), raw.json().get(), stream)));
    }
    // 2. On every core: the one-time key signatures checked, the sessions opened (3DH).
    let opened = ferrolm_store::parallel::map(&jobs, SESSION_BLOCK, |job| {
        let (device, key_id, json, stream) = job.as_ref().map_err(Clone::clone)?;
        let one_time_key = check_one_time_key_signature(device, key_id, json)?;
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(*seed);
        rng.set_stream(*stream);
        account
            .create_outbound_session_with_rng(SessionConfig::version_1(), device.curve25519_key, one_time_key, &mut rng)
            .map_err(|e| ClaimFailure::Session(session_creation_failure(&e)))
    });
    // 3. In order: the sessions kept, the failures backed off.
    let mut result = ClaimResult::default();
    for ((key, job), outcome) in claimed.iter().zip(&jobs).zip(opened) {
        let (user, device_id) = key;
        let outcome = outcome.and_then(|session| match job {
            Ok((device, ..)) => Ok((device.curve25519_key, session)),
            Err(e) => Err(e.clone()),
        });
        match outcome {
            Ok((curve, session)) => {
                channel.backoff.succeeded(key);
                let record = OlmSessionRecord {
                    sender_key: curve,
                    session,
                    created_ms: now_ms,
                    last_use_ms: now_ms,
                    last_decrypt_ms: None,
                };
                let id = olm_session_id(&record.session);
                sessions.add(store, record)?;
                result.created.push((key.clone(), curve, id));
            }
            Err(reason) => {
                channel.backoff.failed(key.clone(), now_ms);
                result.failed.push(FailedClaim { user_id: user.clone(), device_id: device_id.clone(), reason });
            }
        }
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// Encryption.

/// The own device, as the plaintext of every to-device message names it.
pub(crate) struct Sender<'a> {
    pub user_id: &'a UserId,
    pub device_id: &'a DeviceId,
    pub account: &'a Account,
    /// The own signed device keys (MSC4147 `sender_device_keys`).
    pub device_keys: &'a Map<String, Value>,
}

/// Encrypts one to-device event for `recipient` with `session`; returns the
/// `m.room.encrypted` content.
pub(crate) fn encrypt(
    sender: &Sender<'_>,
    session: &mut OlmSessionRecord,
    recipient: &Device,
    event_type: &str,
    content: &Value,
    rng: &mut dyn MachineRng,
    now_ms: u64,
) -> Result<Value, MachineError> {
    let template = PlaintextTemplate::new(sender, event_type, content)?;
    let raw = template.encrypt(session, recipient, rng, now_ms)?;
    serde_json::from_str(raw.json().get()).map_err(|e| MachineError::Internal(e.to_string()))
}

/// The plaintext of one to-device event sent to many devices: every field but the
/// recipient's (`recipient`, `recipient_keys`) serialized once, the payload zeroized on drop.
/// The fields are in sorted order, as a JSON object of them serializes.
pub(crate) struct PlaintextTemplate {
    head: zeroize::Zeroizing<Vec<u8>>,
    tail: zeroize::Zeroizing<Vec<u8>>,
    /// The own Curve25519 key (the content's `sender_key`).
    sender_key: String,
}

fn json_string(out: &mut Vec<u8>, s: &str) -> Result<(), MachineError> {
    serde_json::to_writer(out, s).map_err(|e| MachineError::Internal(e.to_string()))
}

impl PlaintextTemplate {
    /// The plaintext of `event_type` with `content` from `sender`.
    pub(crate) fn new(sender: &Sender<'_>, event_type: &str, content: &Value) -> Result<Self, MachineError> {
        let internal = |e: serde_json::Error| MachineError::Internal(e.to_string());
        // The payload may hold a secret (a room key): every buffer that holds it is zeroized,
        // and sized before it is written so that no reallocation leaves a copy behind.
        let content = crate::adapt::secret_json(content).map_err(internal)?;
        let ed25519 = sender.account.ed25519_key().to_base64();
        let mut head = zeroize::Zeroizing::new(Vec::with_capacity(content.len() + ed25519.len() + 48));
        head.extend_from_slice(b"{\"content\":");
        head.extend_from_slice(&content);
        head.extend_from_slice(b",\"keys\":{\"ed25519\":");
        json_string(&mut head, &ed25519)?;
        head.extend_from_slice(b"},\"recipient\":");
        let mut tail = zeroize::Zeroizing::new(Vec::new());
        tail.extend_from_slice(b"\"sender\":");
        json_string(&mut tail, sender.user_id.as_str())?;
        tail.extend_from_slice(b",\"sender_device\":");
        json_string(&mut tail, sender.device_id.as_str())?;
        tail.extend_from_slice(b",\"sender_device_keys\":");
        serde_json::to_writer(&mut *tail, sender.device_keys).map_err(internal)?;
        tail.extend_from_slice(b",\"type\":");
        json_string(&mut tail, event_type)?;
        tail.push(b'}');
        Ok(Self { head, tail, sender_key: sender.account.curve25519_key().to_base64() })
    }

    /// Encrypts the plaintext for `recipient` with `session`; returns the `m.room.encrypted`
    /// content.
    pub(crate) fn encrypt(
        &self,
        session: &mut OlmSessionRecord,
        recipient: &Device,
        rng: &mut dyn MachineRng,
        now_ms: u64,
    ) -> Result<Raw<ruma::events::AnyToDeviceEventContent>, MachineError> {
        let mut middle = Vec::with_capacity(recipient.user_id.as_str().len() + 96);
        json_string(&mut middle, recipient.user_id.as_str())?;
        middle.extend_from_slice(b",\"recipient_keys\":{\"ed25519\":");
        json_string(&mut middle, &recipient.ed25519_key.to_base64())?;
        middle.extend_from_slice(b"},");
        let mut plaintext =
            zeroize::Zeroizing::new(Vec::with_capacity(self.head.len() + middle.len() + self.tail.len()));
        plaintext.extend_from_slice(&self.head);
        plaintext.extend_from_slice(&middle);
        plaintext.extend_from_slice(&self.tail);
        let message = session.session.encrypt_with_rng(&plaintext, &mut &mut *rng);
        session.last_use_ms = now_ms;
        let (message_type, body) = message.to_parts();
        let recipient_key = recipient.curve25519_key.to_base64();
        let mut out = String::with_capacity(body.len() + recipient_key.len() + self.sender_key.len() + 112);
        out.push_str("{\"algorithm\":\"");
        out.push_str(OLM_ALGORITHM);
        out.push_str("\",\"ciphertext\":{\"");
        // Base64 (keys and bodies) needs no escaping in JSON.
        out.push_str(&recipient_key);
        out.push_str("\":{\"body\":\"");
        out.push_str(&body);
        out.push_str("\",\"type\":");
        out.push_str(&(message_type as u8).to_string());
        out.push_str("}},\"sender_key\":\"");
        out.push_str(&self.sender_key);
        out.push_str("\"}");
        let raw = serde_json::value::RawValue::from_string(out).map_err(|e| MachineError::Internal(e.to_string()))?;
        Ok(Raw::from_json(raw))
    }
}

// ---------------------------------------------------------------------------------------
// Decryption.

/// Why a to-device event was not accepted. Every variant is a refusal of network input,
/// never a failure of the machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToDeviceError {
    /// The event is not shaped like a to-device event.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A to-device event that carries keys or secrets (`m.room_key`, `m.forwarded_room_key`,
    /// `m.secret.send`, `m.dummy`) sent in the clear: only accepted over Olm.
    #[error("{0} is only accepted Olm-encrypted")]
    Unencrypted(String),
    /// A Megolm-encrypted to-device event: never accepted (room keys and secrets must come
    /// over Olm, from the device that claims to send them).
    #[error("Megolm-encrypted to-device events are refused")]
    MegolmToDevice,
    /// An encryption algorithm this machine does not speak.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The ciphertext has no entry for this device's Curve25519 key.
    #[error("no ciphertext for this device")]
    NotForThisDevice,
    /// A normal message, and no session with the sender key.
    #[error("no Olm session with this sender key")]
    NoSession,
    /// A message already decrypted (a duplicate or a replay).
    #[error("the message was already decrypted")]
    Duplicate,
    /// No session decrypts it (a wedged session: recovery is started).
    #[error("no session decrypts the message")]
    Undecryptable,
    /// A pre-key message that opens no session.
    #[error("the pre-key message opens no session: {0}")]
    SessionCreation(SessionCreationFailure),
    /// The decrypted payload failed a check.
    #[error("the decrypted payload was refused: {0}")]
    Plaintext(PlaintextRejection),
}

/// Why a pre-key message opened no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionCreationFailure {
    /// The identity key inside the message is not the event's sender key.
    #[error("the message's identity key is not the sender key")]
    MismatchedIdentityKey,
    /// It used a one-time or fallback key this device no longer has (used, or expired).
    #[error("the one-time key it used is gone")]
    MissingOneTimeKey,
    /// The message is in a session format this device does not accept.
    #[error("the message uses a session format this device does not accept")]
    UnsupportedSessionVersion,
    /// A key of the sender is of small order.
    #[error("a key of the sender is not contributory")]
    NonContributoryKey,
    /// The message inside did not decrypt (the one-time key was kept).
    #[error("the first message did not decrypt")]
    Decryption,
}

/// Which check a decrypted payload failed (spec: "Validation of incoming decrypted events").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaintextRejection {
    /// Not a JSON object with `type`, `content`, `sender`, `recipient`, `recipient_keys`, `keys`.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// `sender` is not the event's sender.
    #[error("the payload's sender is not the event's sender")]
    SenderMismatch,
    /// `recipient` is not our user id.
    #[error("the payload is for another user")]
    RecipientMismatch,
    /// `recipient_keys.ed25519` is not our Ed25519 key.
    #[error("the payload is for another device key")]
    RecipientKeyMismatch,
    /// `keys.ed25519` is not the Ed25519 key of the device that owns the sender key.
    #[error("the payload's signing key is not the sending device's")]
    SenderKeyMismatch,
    /// `sender_device` names another device than the one owning the sender key.
    #[error("the payload's sender device is not the sending device")]
    SenderDeviceMismatch,
    /// `sender_device_keys` (MSC4147) do not match the event or are not validly self-signed.
    #[error("the payload's sender_device_keys are invalid: {0}")]
    SenderDeviceKeys(String),
    /// An encrypted event inside an encrypted event.
    #[error("the payload is itself encrypted")]
    NestedEncryption,
}

/// How the sending device was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderDeviceSource {
    /// A device of the sender, known from `/keys/query`, owns the Olm sender key.
    KnownDevice,
    /// The device is not known yet; its validly self-signed keys came in the payload
    /// (MSC4147 `sender_device_keys`), and match the Olm sender key.
    SenderDeviceKeys,
    /// The device is not known and the payload carried no device keys: the Ed25519 key is
    /// only claimed.
    Unknown,
}

/// A decrypted to-device event, with who sent it.
#[derive(Debug, Clone)]
pub struct DecryptedToDeviceEvent {
    /// The sender (checked against the payload).
    pub sender: OwnedUserId,
    /// The sending device, when identified.
    pub sender_device: Option<OwnedDeviceId>,
    /// The Curve25519 key that authenticated the Olm message.
    pub sender_curve25519_key: Curve25519PublicKey,
    /// The sending device's Ed25519 key (checked unless `source` is `Unknown`).
    pub sender_ed25519_key: Ed25519PublicKey,
    /// How the sending device was identified.
    pub source: SenderDeviceSource,
    /// The decrypted event: `{"sender", "type", "content"}`.
    pub event: Raw<AnyToDeviceEvent>,
    /// The event type.
    pub event_type: String,
    /// The event content.
    pub content: Value,
}

#[derive(Deserialize)]
pub(crate) struct ToDeviceEnvelope {
    #[serde(rename = "type")]
    pub event_type: String,
    pub sender: String,
    pub content: Value,
}

#[derive(Deserialize)]
struct EncryptedContent {
    #[serde(default)]
    sender_key: Option<String>,
    #[serde(default)]
    ciphertext: Option<BTreeMap<String, Ciphertext>>,
}

#[derive(Deserialize)]
struct Ciphertext {
    #[serde(rename = "type")]
    message_type: u64,
    body: String,
}

#[derive(Deserialize)]
struct KeysEd25519 {
    ed25519: String,
}

#[derive(Deserialize)]
struct Plaintext {
    #[serde(rename = "type")]
    event_type: String,
    content: Value,
    sender: String,
    recipient: String,
    recipient_keys: KeysEd25519,
    keys: KeysEd25519,
    #[serde(default)]
    sender_device: Option<String>,
    #[serde(default)]
    sender_device_keys: Option<Map<String, Value>>,
}

/// The receiving device, for checks and session creation.
pub(crate) struct Receiver<'a> {
    pub user_id: &'a UserId,
    pub account: &'a mut Account,
}

/// What decrypting one event did besides its result.
#[derive(Debug, Default)]
pub(crate) struct DecryptEffects {
    /// The account changed (a one-time key was used).
    pub account_changed: bool,
    /// The sender's device must be recovered (a new session and an `m.dummy`).
    pub wedged: Option<Curve25519PublicKey>,
}

/// Decrypts an `m.room.encrypted` to-device event `envelope`.
pub(crate) fn decrypt<B: Backend>(
    store: &CachedStore<B>,
    receiver: &mut Receiver<'_>,
    sessions: &mut Sessions,
    envelope: &ToDeviceEnvelope,
    now_ms: u64,
    effects: &mut DecryptEffects,
) -> Result<Result<DecryptedToDeviceEvent, ToDeviceError>, MachineError> {
    match envelope.content.get("algorithm").and_then(Value::as_str) {
        Some(OLM_ALGORITHM) => {}
        Some(MEGOLM_ALGORITHM) => return Ok(Err(ToDeviceError::MegolmToDevice)),
        Some(other) => return Ok(Err(ToDeviceError::UnsupportedAlgorithm(other.to_owned()))),
        None => return Ok(Err(ToDeviceError::Malformed("algorithm".into()))),
    }
    let content: EncryptedContent = match serde_json::from_value(envelope.content.clone()) {
        Ok(c) => c,
        Err(e) => return Ok(Err(ToDeviceError::Malformed(e.to_string()))),
    };
    let Some(sender_key) = content.sender_key.as_deref().and_then(|k| Curve25519PublicKey::from_base64(k).ok()) else {
        return Ok(Err(ToDeviceError::Malformed("sender_key".into())));
    };
    let Ok(sender) = OwnedUserId::try_from(envelope.sender.as_str()) else {
        return Ok(Err(ToDeviceError::Malformed("sender".into())));
    };
    let own_key = receiver.account.curve25519_key().to_base64();
    let Some(ciphertext) = content.ciphertext.as_ref().and_then(|c| c.get(&own_key)) else {
        return Ok(Err(ToDeviceError::NotForThisDevice));
    };
    let message = match MessageType::try_from(ciphertext.message_type)
        .and_then(|t| OlmMessage::from_parts(t, &ciphertext.body))
    {
        Ok(m) => m,
        Err(e) => return Ok(Err(ToDeviceError::Malformed(e.to_string()))),
    };

    // The plaintext may carry a room key or a secret: zeroized once parsed.
    let plaintext = match decrypt_message(store, receiver, sessions, sender_key, &message, now_ms, effects)? {
        Ok(p) => zeroize::Zeroizing::new(p),
        Err(e) => return Ok(Err(e)),
    };
    let device = find_device(store, &sender, &sender_key)?;
    Ok(check_plaintext(receiver, &sender, sender_key, device.as_ref(), &plaintext).map_err(ToDeviceError::Plaintext))
}

/// The device of `sender` that owns `sender_key`, if known.
pub(crate) fn find_device<B: Backend>(
    store: &CachedStore<B>,
    sender: &UserId,
    sender_key: &Curve25519PublicKey,
) -> Result<Option<Device>, MachineError> {
    Ok(store.known_device_by_curve25519_key(&user_to_store(sender), sender_key)?)
}

fn decrypt_message<B: Backend>(
    store: &CachedStore<B>,
    receiver: &mut Receiver<'_>,
    sessions: &mut Sessions,
    sender_key: Curve25519PublicKey,
    message: &OlmMessage,
    now_ms: u64,
    effects: &mut DecryptEffects,
) -> Result<Result<Vec<u8>, ToDeviceError>, MachineError> {
    let list = sessions.with(store, sender_key)?;
    if let OlmMessage::PreKey(pre_key) = message {
        if let Some(record) = list.iter_mut().find(|s| s.session.matches(pre_key)) {
            return Ok(match record.session.decrypt(message) {
                Ok(plaintext) => {
                    record.last_decrypt_ms = Some(now_ms);
                    record.last_use_ms = now_ms;
                    let id = olm_session_id(&record.session);
                    sessions.touch(sender_key, id);
                    Ok(plaintext)
                }
                Err(ferrolm::olm::DecryptionError::MissingMessageKey(_)) => Err(ToDeviceError::Duplicate),
                Err(_) => Err(ToDeviceError::Undecryptable),
            });
        }
        // A new session: the one-time key is removed from the account, and the account and
        // the session are saved in the same change set.
        // Sessions in the format the device keys offer (libolm's): the receiver decides, not the sender.
        return Ok(match receiver.account.create_inbound_session(SessionConfig::version_1(), sender_key, pre_key) {
            Ok(created) => {
                effects.account_changed = true;
                sessions.add(
                    store,
                    OlmSessionRecord {
                        sender_key,
                        session: created.session,
                        created_ms: now_ms,
                        last_use_ms: now_ms,
                        last_decrypt_ms: Some(now_ms),
                    },
                )?;
                Ok(created.plaintext)
            }
            Err(e) => {
                let failure = session_creation_failure(&e);
                if failure == SessionCreationFailure::MissingOneTimeKey {
                    effects.wedged = Some(sender_key);
                }
                Err(ToDeviceError::SessionCreation(failure))
            }
        });
    }
    if list.is_empty() {
        effects.wedged = Some(sender_key);
        return Ok(Err(ToDeviceError::NoSession));
    }
    let mut duplicate = false;
    for index in decryption_order(list) {
        let Some(record) = list.get_mut(index) else { continue };
        match record.session.decrypt(message) {
            Ok(plaintext) => {
                record.last_decrypt_ms = Some(now_ms);
                record.last_use_ms = now_ms;
                let id = olm_session_id(&record.session);
                sessions.touch(sender_key, id);
                return Ok(Ok(plaintext));
            }
            Err(ferrolm::olm::DecryptionError::MissingMessageKey(_)) => duplicate = true,
            Err(_) => {}
        }
    }
    if duplicate {
        return Ok(Err(ToDeviceError::Duplicate));
    }
    effects.wedged = Some(sender_key);
    Ok(Err(ToDeviceError::Undecryptable))
}

/// Rule (spec, "Validation of incoming decrypted events"): `sender` is the event's sender,
/// `recipient` our user id, `recipient_keys.ed25519` our Ed25519 key, `keys.ed25519` the
/// Ed25519 key of the device owning the Olm sender key, `sender_device` that device's id;
/// MSC4147 `sender_device_keys`, when present, belong to the sender, carry the Olm sender key
/// and `keys.ed25519`, and are validly self-signed. The payload is not itself encrypted.
pub(crate) fn check_plaintext(
    receiver: &Receiver<'_>,
    sender: &UserId,
    sender_key: Curve25519PublicKey,
    device: Option<&Device>,
    plaintext: &[u8],
) -> Result<DecryptedToDeviceEvent, PlaintextRejection> {
    let payload: Plaintext =
        serde_json::from_slice(plaintext).map_err(|e| PlaintextRejection::Malformed(e.to_string()))?;
    if payload.sender != sender.as_str() {
        return Err(PlaintextRejection::SenderMismatch);
    }
    if payload.recipient != receiver.user_id.as_str() {
        return Err(PlaintextRejection::RecipientMismatch);
    }
    let own_ed = receiver.account.ed25519_key();
    if Ed25519PublicKey::from_base64(&payload.recipient_keys.ed25519).ok() != Some(own_ed) {
        return Err(PlaintextRejection::RecipientKeyMismatch);
    }
    let claimed_ed = Ed25519PublicKey::from_base64(&payload.keys.ed25519)
        .map_err(|_| PlaintextRejection::Malformed("keys.ed25519".into()))?;
    if payload.event_type == "m.room.encrypted" {
        return Err(PlaintextRejection::NestedEncryption);
    }
    let from_keys = match &payload.sender_device_keys {
        Some(keys) => Some(check_sender_device_keys(sender, sender_key, &claimed_ed, keys)?),
        None => None,
    };
    let (sender_device, source) = match (device, from_keys) {
        (Some(device), from_keys) => {
            if device.ed25519_key != claimed_ed {
                return Err(PlaintextRejection::SenderKeyMismatch);
            }
            if from_keys.as_ref().is_some_and(|id| *id != device.device_id) {
                return Err(PlaintextRejection::SenderDeviceKeys("another device id than the known device".into()));
            }
            (Some(device.device_id.clone()), SenderDeviceSource::KnownDevice)
        }
        (None, Some(id)) => (Some(id), SenderDeviceSource::SenderDeviceKeys),
        (None, None) => (None, SenderDeviceSource::Unknown),
    };
    if let (Some(named), Some(actual)) = (&payload.sender_device, &sender_device) {
        if named != actual.as_str() {
            return Err(PlaintextRejection::SenderDeviceMismatch);
        }
    }
    let sender_device = sender_device.or_else(|| {
        // Unknown device: report the device it names, unauthenticated.
        payload.sender_device.as_deref().map(OwnedDeviceId::from)
    });
    let event = json!({ "sender": sender, "type": payload.event_type, "content": payload.content });
    let event = serde_json::value::to_raw_value(&event).map_err(|e| PlaintextRejection::Malformed(e.to_string()))?;
    Ok(DecryptedToDeviceEvent {
        sender: sender.to_owned(),
        sender_device,
        sender_curve25519_key: sender_key,
        sender_ed25519_key: claimed_ed,
        source,
        event: Raw::from_json(event),
        event_type: payload.event_type,
        content: payload.content,
    })
}

/// Rule (MSC4147): `sender_device_keys` name the sender, carry the Olm sender key and the
/// payload's `keys.ed25519`, and are validly self-signed. Returns their device id.
pub fn check_sender_device_keys(
    sender: &UserId,
    sender_key: Curve25519PublicKey,
    claimed_ed25519: &Ed25519PublicKey,
    keys: &Map<String, Value>,
) -> Result<OwnedDeviceId, PlaintextRejection> {
    let bad = |why: &str| PlaintextRejection::SenderDeviceKeys(why.to_owned());
    let device_id = keys.get("device_id").and_then(Value::as_str).ok_or_else(|| bad("device_id"))?;
    let device_id = OwnedDeviceId::from(device_id);
    let json = serde_json::to_string(keys).map_err(|e| bad(&e.to_string()))?;
    let device = validate_device_keys(sender, &device_id, &json).map_err(|e| bad(&e.to_string()))?;
    if device.curve25519 != sender_key {
        return Err(bad("curve25519 key is not the Olm sender key"));
    }
    if device.ed25519 != *claimed_ed25519 {
        return Err(bad("ed25519 key is not keys.ed25519"));
    }
    Ok(device_id)
}

/// Rule (spec, "Recovering from undecryptable messages"): at most one new session per
/// device per [`WEDGE_RECOVERY_INTERVAL_MS`], counting sessions created for any reason
/// (their creation times are in the store) and recoveries started.
pub fn may_recover(sessions: &[OlmSessionRecord], recovery_started_ms: Option<u64>, now_ms: u64) -> bool {
    let recent = |t: u64| now_ms.saturating_sub(t) < WEDGE_RECOVERY_INTERVAL_MS;
    !sessions.iter().any(|s| recent(s.created_ms)) && !recovery_started_ms.is_some_and(recent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session of a fresh pair of accounts, with the given times.
    fn record(created_ms: u64, last_decrypt_ms: Option<u64>) -> OlmSessionRecord {
        let alice = Account::new();
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let (_, otk) = bob.one_time_keys().into_iter().next().unwrap();
        let session = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
        OlmSessionRecord {
            sender_key: bob.curve25519_key(),
            session,
            created_ms,
            last_use_ms: created_ms,
            last_decrypt_ms,
        }
    }

    #[test]
    fn rule_send_with_the_session_that_last_decrypted() {
        let sessions = vec![record(10, Some(50)), record(40, None), record(30, Some(60)), record(20, Some(55))];
        assert_eq!(session_for_sending(&sessions), Some(2));
        // Not the most recently used or created: a newer session that never decrypted loses.
        let sessions = vec![record(10, Some(50)), record(90, None)];
        assert_eq!(session_for_sending(&sessions), Some(0));
        // None decrypted: the newest.
        let sessions = vec![record(10, None), record(90, None), record(50, None)];
        assert_eq!(session_for_sending(&sessions), Some(1));
        assert_eq!(session_for_sending(&[]), None);
    }

    #[test]
    fn rule_decrypt_with_the_session_that_last_decrypted_first() {
        let sessions = vec![record(10, Some(50)), record(40, None), record(30, Some(60)), record(90, None)];
        assert_eq!(decryption_order(&sessions), vec![2, 0, 3, 1]);
    }

    #[test]
    fn rule_at_least_four_sessions_are_kept_the_least_active_dropped() {
        let sessions =
            vec![record(10, None), record(20, Some(100)), record(30, None), record(40, None), record(5, None)];
        let keep = olm_session_id(&sessions[4].session);
        let pruned = sessions_to_prune(&sessions, &keep);
        // One too many: the least recently active other than the new one goes.
        assert_eq!(pruned, vec![olm_session_id(&sessions[0].session)]);
        assert!(sessions_to_prune(&sessions[..4], &keep).is_empty());
    }

    #[test]
    fn rule_at_most_one_new_session_per_device_per_hour() {
        let now = 10 * WEDGE_RECOVERY_INTERVAL_MS;
        let old = vec![record(now - WEDGE_RECOVERY_INTERVAL_MS, Some(now - 1))];
        assert!(may_recover(&old, None, now));
        let recent = vec![record(now - WEDGE_RECOVERY_INTERVAL_MS + 1, None)];
        assert!(!may_recover(&recent, None, now));
        assert!(!may_recover(&old, Some(now - 1000), now));
        assert!(may_recover(&old, Some(now - WEDGE_RECOVERY_INTERVAL_MS), now));
        assert!(may_recover(&[], None, now));
    }

    #[test]
    fn rule_failed_claims_back_off_doubling_up_to_the_maximum() {
        let mut backoff = ClaimBackoff::default();
        let device = (OwnedUserId::try_from("@bob:x").unwrap(), OwnedDeviceId::from("B"));
        assert!(backoff.may_claim(&device, 0));
        backoff.failed(device.clone(), 0);
        assert!(!backoff.may_claim(&device, CLAIM_BACKOFF_INITIAL_MS - 1));
        assert!(backoff.may_claim(&device, CLAIM_BACKOFF_INITIAL_MS));
        backoff.failed(device.clone(), 1000);
        assert!(!backoff.may_claim(&device, 1000 + 2 * CLAIM_BACKOFF_INITIAL_MS - 1));
        assert!(backoff.may_claim(&device, 1000 + 2 * CLAIM_BACKOFF_INITIAL_MS));
        for _ in 0..40 {
            backoff.failed(device.clone(), 0);
        }
        assert!(backoff.may_claim(&device, CLAIM_BACKOFF_MAX_MS));
        backoff.succeeded(&device);
        assert!(backoff.may_claim(&device, 0));
    }

    #[test]
    fn rule_a_claimed_key_must_be_signed_by_the_device() {
        let account = Account::new();
        let device = Device {
            user_id: OwnedUserId::try_from("@bob:x").unwrap(),
            device_id: OwnedDeviceId::from("B"),
            curve25519_key: account.curve25519_key(),
            ed25519_key: account.ed25519_key(),
            algorithms: vec![OLM_ALGORITHM.into()],
            display_name: None,
            local_trust: Default::default(),
            deleted: false,
            no_olm_sent: false,
        };
        let key = Account::new().curve25519_key();
        let mut object = Map::new();
        object.insert("key".into(), Value::from(key.to_base64()));
        let mut signed = object.clone();
        crate::signing::sign_json(&account, "@bob:x", "B", &mut signed).unwrap();
        let json = Value::Object(signed.clone()).to_string();
        assert_eq!(check_one_time_key_signature(&device, "signed_curve25519:AAAAAQ", &json), Ok(key));
        // Signed by someone else.
        let mut forged = object.clone();
        crate::signing::sign_json(&Account::new(), "@bob:x", "B", &mut forged).unwrap();
        let forged = Value::Object(forged).to_string();
        assert_eq!(
            check_one_time_key_signature(&device, "signed_curve25519:AAAAAQ", &forged),
            Err(ClaimFailure::Signature(SignatureError::Invalid))
        );
        // Unsigned, or an unsigned-algorithm key id.
        let unsigned = Value::Object(object).to_string();
        assert!(matches!(
            check_one_time_key_signature(&device, "signed_curve25519:AAAAAQ", &unsigned),
            Err(ClaimFailure::Signature(SignatureError::Missing { .. }))
        ));
        assert!(matches!(
            check_one_time_key_signature(&device, "curve25519:AAAAAQ", &json),
            Err(ClaimFailure::MalformedKey(_))
        ));
        assert!(matches!(
            check_one_time_key_signature(&device, "signed_curve25519:A", "[]"),
            Err(ClaimFailure::MalformedKey(_))
        ));
    }
}
