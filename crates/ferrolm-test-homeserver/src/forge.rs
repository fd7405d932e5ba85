//! A device without a machine: a bare Olm account that uploads what it likes, claims keys
//! without checking them and sends Olm messages with any payload. For the tests in which a
//! malicious device (or a malicious homeserver holding one) talks to a machine.

use ferrolm::olm::{Account, Session, SessionConfig};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_machine::signing::sign_json;
use rand_core::SeedableRng;
use ruma::api::client::keys::{claim_keys, upload_keys};
use ruma::serde::Raw;
use ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedOneTimeKeyId, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use crate::{Homeserver, HsError};

/// A bare device: an account, its ids, and a seeded generator.
#[derive(Debug)]
pub struct RawDevice {
    /// The user.
    pub user_id: OwnedUserId,
    /// The device id.
    pub device_id: OwnedDeviceId,
    /// The account.
    pub account: Account,
    rng: rand_chacha::ChaCha20Rng,
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn raw<T>(value: &Value) -> Result<Raw<T>, HsError> {
    let raw = serde_json::value::to_raw_value(value).map_err(HsError::bad_json)?;
    Ok(Raw::from_json(raw))
}

impl RawDevice {
    /// Logs the device in on `hs` (nothing uploaded).
    pub fn new(hs: &mut Homeserver, user: &UserId, device: &str, seed: u64) -> Self {
        let device_id = OwnedDeviceId::from(device);
        hs.login(user, &device_id);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let account = Account::new_with_rng(&mut rng);
        Self { user_id: user.to_owned(), device_id, account, rng }
    }

    /// Its device keys, self-signed (any field may be altered before signing with
    /// [`RawDevice::signed`]).
    pub fn device_keys(&self) -> Value {
        self.signed(json!({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{}", self.device_id): self.account.curve25519_key().to_base64(),
                format!("ed25519:{}", self.device_id): self.account.ed25519_key().to_base64(),
            },
        }))
    }

    /// `value` (an object) signed by this device.
    pub fn signed(&self, value: Value) -> Value {
        let mut map = object(value);
        // An object is always signable unless it holds floats; tests do not pass any.
        let _ = sign_json(&self.account, self.user_id.as_str(), self.device_id.as_str(), &mut map);
        Value::Object(map)
    }

    /// Uploads its device keys and `count` signed one-time keys.
    pub fn upload(&mut self, hs: &mut Homeserver, count: usize) -> Result<(), HsError> {
        self.account.generate_one_time_keys_with_rng(count, &mut self.rng);
        let mut request = upload_keys::v3::Request::new();
        request.device_keys = Some(raw(&self.device_keys())?);
        for (id, key) in self.account.one_time_keys() {
            let key_id = OwnedOneTimeKeyId::try_from(format!("signed_curve25519:{}", id.to_base64()))
                .map_err(HsError::bad_json)?;
            request.one_time_keys.insert(key_id, raw(&self.signed(json!({"key": key.to_base64()})))?);
        }
        self.account.mark_keys_as_published();
        let user = self.user_id.clone();
        let device = self.device_id.clone();
        hs.upload_keys(&user, &device, request)?;
        Ok(())
    }

    /// Claims a one-time key of `user`'s `device` (without checking it) and opens a session
    /// to `identity_key`.
    pub fn open_session(
        &mut self,
        hs: &mut Homeserver,
        user: &UserId,
        device: &ruma::DeviceId,
        identity_key: Curve25519PublicKey,
    ) -> Result<Session, HsError> {
        self.open_session_with(hs, user, device, identity_key, SessionConfig::version_1())
    }

    /// [`RawDevice::open_session`] in the session format `config`.
    pub fn open_session_with(
        &mut self,
        hs: &mut Homeserver,
        user: &UserId,
        device: &ruma::DeviceId,
        identity_key: Curve25519PublicKey,
        config: SessionConfig,
    ) -> Result<Session, HsError> {
        let mut wanted = std::collections::BTreeMap::new();
        wanted
            .entry(user.to_owned())
            .or_insert_with(std::collections::BTreeMap::new)
            .insert(device.to_owned(), OneTimeKeyAlgorithm::SignedCurve25519);
        let response = hs.claim_keys(claim_keys::v3::Request::new(wanted))?;
        let key = response
            .one_time_keys
            .get(user)
            .and_then(|d| d.get(device))
            .and_then(|k| k.values().next())
            .and_then(|raw| serde_json::from_str::<Value>(raw.json().get()).ok())
            .and_then(|v| v.get("key").and_then(Value::as_str).map(str::to_owned))
            .and_then(|k| Curve25519PublicKey::from_base64(&k).ok())
            .ok_or_else(|| HsError::new(404, "M_NOT_FOUND", "no one-time key"))?;
        self.account
            .create_outbound_session_with_rng(config, identity_key, key, &mut self.rng)
            .map_err(|e| HsError::new(400, "M_UNKNOWN", e.to_string()))
    }

    /// The payload a correct sender would encrypt to `recipient` (whose Ed25519 key is
    /// `recipient_ed25519`): tamper with it before [`RawDevice::encrypted_event`].
    pub fn payload(
        &self,
        recipient: &UserId,
        recipient_ed25519: &Ed25519PublicKey,
        event_type: &str,
        content: Value,
    ) -> Value {
        json!({
            "type": event_type,
            "content": content,
            "sender": self.user_id,
            "sender_device": self.device_id,
            "keys": {"ed25519": self.account.ed25519_key().to_base64()},
            "recipient": recipient,
            "recipient_keys": {"ed25519": recipient_ed25519.to_base64()},
        })
    }

    /// The `m.room.encrypted` event carrying `payload` over `session` to the device with
    /// `recipient_key`, from `sender` (usually this device's user).
    pub fn encrypted_event(
        &mut self,
        session: &mut Session,
        sender: &UserId,
        recipient_key: &Curve25519PublicKey,
        payload: &Value,
    ) -> Value {
        let message = session.encrypt_with_rng(payload.to_string().as_bytes(), &mut self.rng);
        let (message_type, body) = message.to_parts();
        json!({
            "type": "m.room.encrypted",
            "sender": sender,
            "content": {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": self.account.curve25519_key().to_base64(),
                "ciphertext": { recipient_key.to_base64(): {"type": message_type as u8, "body": body} },
            }
        })
    }
}
