//! The own device: its signed device keys, its one-time keys kept topped up on the server,
//! and its fallback key rotation.
//!
//! Rules (each a named function, each with a test that breaks it):
//! - [`device_keys`]: the device keys are signed by the device's Ed25519 key over canonical JSON.
//! - `one_time_keys_to_generate`: keep [`Account::max_number_of_one_time_keys`] on the server,
//!   counting keys generated but not yet uploaded; new keys are saved in the same step that
//!   builds their upload, so a crash before the upload re-uploads the same keys.
//! - `needs_new_fallback_key`: a new fallback key once the server reports the current one used.
//! - `previous_fallback_key_expired`: the previous fallback key is forgotten
//!   [`PREVIOUS_FALLBACK_KEY_LIFETIME_MS`] after its successor was published.

use std::collections::BTreeMap;

use ferrolm::olm::Account;
use ferrolm::types::{Curve25519PublicKey, KeyId};
use ruma::api::client::keys::upload_keys;
use ruma::serde::Raw;
use ruma::{OneTimeKeyAlgorithm, OwnedOneTimeKeyId};
use serde_json::{Map, Value, json};

use crate::env::MachineRng;
use crate::error::MachineError;
use crate::signing::sign_json;

/// The Olm algorithm (`m.olm.v1.curve25519-aes-sha2`).
pub const OLM_ALGORITHM: &str = "m.olm.v1.curve25519-aes-sha2";
/// The Megolm algorithm (`m.megolm.v1.aes-sha2`).
pub const MEGOLM_ALGORITHM: &str = "m.megolm.v1.aes-sha2";
/// The one-time key algorithm (`signed_curve25519`).
pub const SIGNED_CURVE25519: &str = "signed_curve25519";
/// How long the previous fallback key stays usable after a new one is published: one hour.
pub const PREVIOUS_FALLBACK_KEY_LIFETIME_MS: u64 = 60 * 60 * 1000;

/// The own device's state between steps. The account itself is persisted in every step that
/// changes it; `fallback_published_ms` is kept in memory (see REQUESTS-from-machine.md).
#[derive(Debug, Clone)]
pub(crate) struct OwnDevice {
    /// The Olm account.
    pub account: Account,
    /// Whether the device keys reached the server.
    pub device_keys_uploaded: bool,
    /// The server's last reported count of our unclaimed one-time keys, if known.
    pub server_one_time_key_count: Option<u64>,
    /// When the current fallback key was published while a previous one is still kept.
    pub previous_fallback_since_ms: Option<u64>,
}

/// The device keys object, signed (the spec's `DeviceKeys`).
pub fn device_keys(account: &Account, user_id: &str, device_id: &str) -> Result<Map<String, Value>, MachineError> {
    let keys = account.identity_keys();
    let mut object = match json!({
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
        "keys": {
            format!("curve25519:{device_id}"): keys.curve25519.to_base64(),
            format!("ed25519:{device_id}"): keys.ed25519.to_base64(),
        },
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    sign_json(account, user_id, device_id, &mut object).map_err(|e| MachineError::Internal(e.to_string()))?;
    Ok(object)
}

/// A signed one-time or fallback key object (`{"key", "fallback"?, "signatures"}`).
fn signed_key(
    account: &Account,
    user_id: &str,
    device_id: &str,
    key: &Curve25519PublicKey,
    fallback: bool,
) -> Result<Map<String, Value>, MachineError> {
    let mut object = Map::new();
    object.insert("key".into(), Value::String(key.to_base64()));
    if fallback {
        object.insert("fallback".into(), Value::Bool(true));
    }
    sign_json(account, user_id, device_id, &mut object).map_err(|e| MachineError::Internal(e.to_string()))?;
    Ok(object)
}

/// How many one-time keys to generate now: enough that the server's count plus the keys not
/// yet uploaded reaches the account's target. `None` (count unknown) generates nothing,
/// except before the first upload, when the server holds none.
pub(crate) fn one_time_keys_to_generate(own: &OwnDevice) -> usize {
    let on_server = match (own.server_one_time_key_count, own.device_keys_uploaded) {
        (Some(count), _) => usize::try_from(count).unwrap_or(usize::MAX),
        (None, false) => 0,
        (None, true) => return 0,
    };
    let unpublished = own.account.one_time_keys().len();
    own.account.max_number_of_one_time_keys().saturating_sub(on_server).saturating_sub(unpublished)
}

/// Whether a new fallback key is due: the server says no unused `signed_curve25519`
/// fallback key is left, and no new one is waiting to be uploaded.
pub(crate) fn needs_new_fallback_key(
    own: &OwnDevice,
    unused_fallback_key_types: Option<&[OneTimeKeyAlgorithm]>,
) -> bool {
    let Some(types) = unused_fallback_key_types else {
        // The server does not support fallback keys (or did not say).
        return false;
    };
    let unused = types.iter().any(|t| t.as_str() == SIGNED_CURVE25519);
    !unused && own.device_keys_uploaded && own.account.fallback_key().is_empty()
}

/// Whether the previous fallback key has outlived its grace period.
pub(crate) fn previous_fallback_key_expired(own: &OwnDevice, now_ms: u64) -> bool {
    own.previous_fallback_since_ms
        .is_some_and(|since| now_ms.saturating_sub(since) >= PREVIOUS_FALLBACK_KEY_LIFETIME_MS)
}

/// Tops up one-time keys as due; returns whether the account changed (and must be saved
/// before anything is uploaded). The fallback key exists from the account's creation
/// ([`new_account`]) and is rotated by [`rotate_fallback_key`].
pub(crate) fn prepare_keys(own: &mut OwnDevice, rng: &mut dyn MachineRng) -> bool {
    let count = one_time_keys_to_generate(own);
    if count == 0 {
        return false;
    }
    own.account.generate_one_time_keys_with_rng(count, &mut &mut *rng);
    true
}

/// A new account, with its first fallback key.
pub(crate) fn new_account(rng: &mut dyn MachineRng) -> Account {
    let mut account = Account::new_with_rng(&mut &mut *rng);
    account.generate_fallback_key_with_rng(&mut &mut *rng);
    account
}

/// Generates a new fallback key (the current one becomes the previous one).
pub(crate) fn rotate_fallback_key(own: &mut OwnDevice, rng: &mut dyn MachineRng) {
    own.account.generate_fallback_key_with_rng(&mut &mut *rng);
}

/// Forgets the previous fallback key; returns whether the account changed.
pub(crate) fn forget_previous_fallback_key(own: &mut OwnDevice) -> bool {
    own.previous_fallback_since_ms = None;
    own.account.forget_fallback_key()
}

/// What an upload carried, so the response can mark exactly that as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadContents {
    pub device_keys: bool,
    pub one_time_keys: Vec<KeyId>,
    pub fallback_key: Option<KeyId>,
}

/// The `/keys/upload` request for what is not yet on the server, or `None`.
pub(crate) fn upload_request(
    own: &OwnDevice,
    user_id: &str,
    device_id: &str,
) -> Result<Option<(upload_keys::v3::Request, UploadContents)>, MachineError> {
    let one_time_keys = own.account.one_time_keys();
    let fallback = own.account.fallback_key();
    if own.device_keys_uploaded && one_time_keys.is_empty() && fallback.is_empty() {
        return Ok(None);
    }
    let mut request = upload_keys::v3::Request::new();
    if !own.device_keys_uploaded {
        request.device_keys = Some(raw(device_keys(&own.account, user_id, device_id)?)?);
    }
    request.one_time_keys = signed_keys(own, user_id, device_id, &one_time_keys, false)?;
    request.fallback_keys = signed_keys(own, user_id, device_id, &fallback, true)?;
    let contents = UploadContents {
        device_keys: !own.device_keys_uploaded,
        one_time_keys: one_time_keys.keys().copied().collect(),
        fallback_key: fallback.keys().next().copied(),
    };
    Ok(Some((request, contents)))
}

fn signed_keys<T>(
    own: &OwnDevice,
    user_id: &str,
    device_id: &str,
    keys: &BTreeMap<KeyId, Curve25519PublicKey>,
    fallback: bool,
) -> Result<BTreeMap<OwnedOneTimeKeyId, Raw<T>>, MachineError> {
    let mut out = BTreeMap::new();
    for (id, key) in keys {
        let key_id = OwnedOneTimeKeyId::try_from(format!("{SIGNED_CURVE25519}:{}", id.to_base64()))
            .map_err(|e| MachineError::Internal(e.to_string()))?;
        out.insert(key_id, raw(signed_key(&own.account, user_id, device_id, key, fallback)?)?);
    }
    Ok(out)
}

pub(crate) fn raw<T>(object: Map<String, Value>) -> Result<Raw<T>, MachineError> {
    let value =
        serde_json::value::to_raw_value(&Value::Object(object)).map_err(|e| MachineError::Internal(e.to_string()))?;
    Ok(Raw::from_json(value))
}

/// Applies a successful upload: what it carried is now published.
pub(crate) fn mark_uploaded(own: &mut OwnDevice, contents: &UploadContents, server_count: Option<u64>, now_ms: u64) {
    // Nothing new is generated while an upload is in flight, so "every unpublished key" is
    // exactly what the upload carried.
    own.account.mark_keys_as_published();
    if contents.device_keys {
        own.device_keys_uploaded = true;
    }
    if server_count.is_some() {
        own.server_one_time_key_count = server_count;
    }
    if contents.fallback_key.is_some() && has_previous_fallback_key(&own.account) {
        own.previous_fallback_since_ms = Some(now_ms);
    }
}

/// Whether the account still keeps a previous fallback key.
pub(crate) fn has_previous_fallback_key(account: &Account) -> bool {
    account.clone().forget_fallback_key()
}
