//! Dehydrated devices (MSC3814, `org.matrix.msc3814.v2`, as matrix-sdk-crypto 0.18 uses it):
//! a device whose account is stored on the server, encrypted under a 32-byte key the user
//! keeps (in secret storage, say), so that it receives room keys while no device is logged
//! in; a new device rehydrates it and imports those keys.
//!
//! - Creation: a new account, 50 one-time keys and a fallback key, all signed by the new
//!   device (the device keys also by the own self-signing key when held, as matrix-sdk-crypto
//!   senders require of a dehydrated device); its device id is its Curve25519 key in base64
//!   (as matrix-sdk-crypto does); its device keys carry `"dehydrated": true`; the account is encrypted in vodozemac's format
//!   ([`ferrolm::olm::Account::to_dehydrated_device`]). The upload is `PUT
//!   /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
//!   ([`DehydratedDeviceUpload::to_http_request`]); uploading another one replaces it.
//! - Rehydration: the body of `GET …/dehydrated_device` gives the device id and its data; the
//!   account is decrypted (authenticated first); the to-device events the device received
//!   (`POST …/dehydrated_device/{device_id}/events`) are decrypted with it, and the room keys
//!   in them imported into the machine's store. The rehydrated account is never stored: once
//!   its events are read, create a fresh dehydrated device.

use ferrolm::olm::{Account, DehydratedDeviceError, DehydratedDevicePickle};
use ferrolm::types::{Ed25519Keypair, base64_encode};
use ruma::OwnedDeviceId;
use serde_json::{Map, Value, json};

use crate::error::MachineError;
use crate::requests::RequestSerializationError;
use crate::signing::{sign_json, sign_json_with};

/// The dehydrated device algorithm.
pub const DEHYDRATION_ALGORITHM: &str = "org.matrix.msc3814.v2";
/// The endpoint (unstable prefix of MSC3814).
pub const DEHYDRATED_DEVICE_PATH: &str = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
/// How many one-time keys a dehydrated device publishes.
pub const DEHYDRATED_ONE_TIME_KEYS: usize = 50;

/// Why a dehydrated device could not be rehydrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DehydratedDeviceFailure {
    /// The server's answer is not of the expected shape.
    #[error("malformed dehydrated device: {0}")]
    Malformed(String),
    /// The device uses another algorithm (the libolm-pickle `org.matrix.msc3814.v1.olm` is
    /// not read).
    #[error("unsupported dehydrated device algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The account does not decrypt or decode (a wrong key, altered data).
    #[error(transparent)]
    Pickle(#[from] DehydratedDeviceError),
}

/// A new dehydrated device and its upload ([`crate::OlmMachine::create_dehydrated_device`]).
#[derive(Debug, Clone)]
pub struct DehydratedDeviceUpload {
    /// The new device's id.
    pub device_id: OwnedDeviceId,
    /// The body of `PUT …/dehydrated_device`: `device_id`, `device_data`,
    /// `initial_device_display_name`, `device_keys`, `one_time_keys`, `fallback_keys` (no
    /// secret in the clear: the account is encrypted).
    pub body: Value,
}

impl DehydratedDeviceUpload {
    /// The HTTP request against `base_url`, authenticated with `access_token`.
    pub fn to_http_request(
        &self,
        base_url: &str,
        access_token: &str,
    ) -> Result<http::Request<Vec<u8>>, RequestSerializationError> {
        let error = |e: &dyn std::fmt::Display| RequestSerializationError(e.to_string());
        let body = serde_json::to_vec(&self.body).map_err(|e| error(&e))?;
        http::Request::builder()
            .method(http::Method::PUT)
            .uri(format!("{}{DEHYDRATED_DEVICE_PATH}", base_url.trim_end_matches('/')))
            .header("authorization", format!("Bearer {access_token}"))
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| error(&e))
    }
}

/// The device id of a dehydrated account: its Curve25519 key in unpadded base64.
pub fn device_id(account: &Account) -> OwnedDeviceId {
    OwnedDeviceId::from(base64_encode(account.curve25519_key().as_bytes()))
}

/// The upload body for `account` (its one-time and fallback keys generated), with its
/// encrypted `pickle`; its device keys signed by the device and, when given, by the user's
/// self-signing key (senders such as matrix-sdk-crypto withhold room keys from a dehydrated
/// device its owner has not cross-signed).
pub(crate) fn upload_body(
    account: &Account,
    user_id: &str,
    display_name: &str,
    pickle: &DehydratedDevicePickle,
    self_signing: Option<&Ed25519Keypair>,
) -> Result<DehydratedDeviceUpload, MachineError> {
    let device_id = device_id(account);
    let id = device_id.as_str();
    let keys = account.identity_keys();
    let mut device_keys = match json!({
        "user_id": user_id,
        "device_id": id,
        "algorithms": [crate::own_device::OLM_ALGORITHM, crate::own_device::MEGOLM_ALGORITHM],
        "keys": {format!("curve25519:{id}"): keys.curve25519.to_base64(), format!("ed25519:{id}"): keys.ed25519.to_base64()},
        "dehydrated": true,
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let sign = |object: &mut Map<String, Value>| {
        sign_json(account, user_id, id, object).map_err(|e| MachineError::Internal(e.to_string()))
    };
    sign(&mut device_keys)?;
    if let Some(ssk) = self_signing {
        sign_json_with(ssk, user_id, &crate::cross_signing::key_id(&ssk.public_key()), &mut device_keys)
            .map_err(|e| MachineError::Internal(e.to_string()))?;
    }
    let mut one_time_keys = Map::new();
    for (key_id, key) in account.one_time_keys() {
        let mut object = Map::new();
        object.insert("key".into(), json!(key.to_base64()));
        sign(&mut object)?;
        one_time_keys.insert(format!("signed_curve25519:{}", key_id.to_base64()), Value::Object(object));
    }
    let mut fallback_keys = Map::new();
    for (key_id, key) in account.fallback_key() {
        let mut object = Map::new();
        object.insert("key".into(), json!(key.to_base64()));
        object.insert("fallback".into(), json!(true));
        sign(&mut object)?;
        fallback_keys.insert(format!("signed_curve25519:{}", key_id.to_base64()), Value::Object(object));
    }
    let body = json!({
        "device_id": id,
        "initial_device_display_name": display_name,
        "device_data": {"algorithm": DEHYDRATION_ALGORITHM, "device_pickle": pickle.ciphertext, "nonce": pickle.nonce},
        "device_keys": device_keys,
        "one_time_keys": one_time_keys,
        "fallback_keys": fallback_keys,
    });
    Ok(DehydratedDeviceUpload { device_id, body })
}

/// Reads the body of `GET …/dehydrated_device` and decrypts the account with `pickle_key`.
pub(crate) fn read_device(
    body: &[u8],
    pickle_key: &[u8; 32],
) -> Result<(OwnedDeviceId, Account), DehydratedDeviceFailure> {
    let malformed = |what: &str| DehydratedDeviceFailure::Malformed(what.to_owned());
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(&e.to_string()))?;
    let device_id = value.get("device_id").and_then(Value::as_str).ok_or_else(|| malformed("device_id"))?;
    let data = value.get("device_data").ok_or_else(|| malformed("device_data"))?;
    let algorithm = data.get("algorithm").and_then(Value::as_str).ok_or_else(|| malformed("algorithm"))?;
    if algorithm != DEHYDRATION_ALGORITHM {
        return Err(DehydratedDeviceFailure::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    let pickle = data.get("device_pickle").and_then(Value::as_str).ok_or_else(|| malformed("device_pickle"))?;
    let nonce = data.get("nonce").and_then(Value::as_str).ok_or_else(|| malformed("nonce"))?;
    let account = Account::from_dehydrated_device(pickle, nonce, pickle_key)?;
    Ok((OwnedDeviceId::from(device_id), account))
}

/// What [`crate::OlmMachine::receive_rehydrated_events`] did with a page of events.
#[derive(Debug, Clone, Default)]
pub struct RehydratedEvents {
    /// The room keys found, accepted or refused.
    pub room_keys: Vec<crate::room_keys_in::RoomKeyOutcome>,
    /// The encrypted events that did not decrypt (or failed a check), and why.
    pub refused: Vec<crate::olm_channel::ToDeviceError>,
}

/// A rehydrated device: its id and account, held in memory only. `Debug` shows the id.
pub struct RehydratedDevice {
    /// The device id.
    pub device_id: OwnedDeviceId,
    pub(crate) account: Account,
}

impl core::fmt::Debug for RehydratedDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RehydratedDevice").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_read_back_and_bad_answers_are_typed() {
        let mut account = Account::new();
        account.generate_one_time_keys(2);
        account.generate_fallback_key();
        let pickle = account.to_dehydrated_device(&[3; 32]).unwrap();
        let upload = upload_body(&account, "@a:x", "Backup device", &pickle, None).unwrap();
        assert_eq!(upload.body["device_keys"]["dehydrated"], true);
        assert_eq!(upload.body["one_time_keys"].as_object().unwrap().len(), 2);
        let answer =
            serde_json::to_vec(&json!({"device_id": upload.device_id, "device_data": upload.body["device_data"]}))
                .unwrap();
        let (id, back) = read_device(&answer, &[3; 32]).unwrap();
        assert_eq!((id, back.identity_keys()), (upload.device_id.clone(), account.identity_keys()));
        assert!(matches!(read_device(&answer, &[4; 32]), Err(DehydratedDeviceFailure::Pickle(_))));
        let v1 =
            json!({"device_id": "X", "device_data": {"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "x"}});
        assert_eq!(
            read_device(&serde_json::to_vec(&v1).unwrap(), &[3; 32]).err(),
            Some(DehydratedDeviceFailure::UnsupportedAlgorithm("org.matrix.msc3814.v1.olm".into()))
        );
        assert!(matches!(read_device(b"{}", &[3; 32]), Err(DehydratedDeviceFailure::Malformed(_))));
        let http = upload.to_http_request("https://hs/", "t").unwrap();
        assert_eq!(http.uri().path(), DEHYDRATED_DEVICE_PATH);
        assert_eq!(http.method(), "PUT");
    }

    /// Regression (interop with matrix-sdk-crypto 0.18): the device keys of a dehydrated device
    /// are cross-signed by the user's self-signing key when the machine holds it, otherwise msc
    /// withholds room keys from it (`m.unverified`).
    #[test]
    fn the_device_keys_are_signed_by_the_self_signing_key_when_held() {
        let account = Account::new();
        let pickle = account.to_dehydrated_device(&[3; 32]).unwrap();
        let ssk = Ed25519Keypair::from_seed(&[9; 32]);
        let upload = upload_body(&account, "@a:x", "Backup device", &pickle, Some(&ssk)).unwrap();
        let keys = upload.body["device_keys"].as_object().unwrap();
        let ssk_id = crate::cross_signing::key_id(&ssk.public_key());
        crate::signing::verify_json(keys, "@a:x", &ssk_id, &ssk.public_key()).unwrap();
        let device_key_id = format!("ed25519:{}", upload.device_id);
        crate::signing::verify_json(keys, "@a:x", &device_key_id, &account.identity_keys().ed25519).unwrap();

        let unsigned = upload_body(&account, "@a:x", "Backup device", &pickle, None).unwrap();
        assert!(unsigned.body["device_keys"]["signatures"]["@a:x"].get(&ssk_id).is_none());
    }
}
