//! Secret gossip ("Sharing", secrets module): `m.secret.request` and `m.secret.send` between
//! the own user's verified devices.
//!
//! Rules (each a named function with a test that breaks it):
//! - [`is_own_verified_device`]: the one check of "an own device the user trusts", used for
//!   whom requests go to, whom requests are answered for, and whose answers are taken (the
//!   cross-signing module will replace its body with chain-based trust);
//! - [`check_secret_request`]: a request is answered only for another own verified device,
//!   and only for a secret this device holds;
//! - [`check_secret_send`]: an answer is taken only over Olm (the machine refuses an
//!   `m.secret.send` in the clear before it gets here), from an own verified device, for a
//!   request we sent (its `request_id`);
//! - [`check_backup_key`] and [`check_cross_signing_key`]: a received key is used only if it
//!   is the private half of the public key we know (the backup's, the own identity's).
//!
//! Once a request is answered, the machine cancels it at the other devices.

use ferrolm::pk::PkDecryption;
use ferrolm::types::{Curve25519PublicKey, Ed25519Keypair, Ed25519PublicKey, base64_decode};
use ferrolm_store::{LocalTrust, OutgoingRequest, RequestKind};
use ruma::{OwnedDeviceId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::devices::Device;
use crate::olm_channel::{DecryptedToDeviceEvent, SenderDeviceSource};

/// Why an `m.secret.send` was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefusal {
    /// Sent in the clear (secrets are taken over Olm only).
    #[error("the secret was sent in the clear")]
    NotEncrypted,
    /// Not of the expected shape.
    #[error("malformed secret event: {0}")]
    Malformed(String),
    /// From another user.
    #[error("the secret comes from another user")]
    OtherUser,
    /// From an own device that is unknown, deleted, or not verified.
    #[error("the secret comes from a device that is not a verified own device")]
    UnverifiedDevice,
    /// Not the answer to a request we sent.
    #[error("the secret answers no request of ours")]
    NotRequested,
    /// The backup key is not the private key of the backup's public key.
    #[error("the backup key does not match the backup's public key")]
    BackupKeyMismatch,
    /// No backup is known to check a backup key against.
    #[error("no backup public key to check the backup key against")]
    NoBackupToCheck,
    /// The cross-signing key is not the private key of the own published key.
    #[error("the cross-signing key does not match the published public key")]
    CrossSigningKeyMismatch,
    /// The own cross-signing public key is not known, so the private key cannot be checked.
    #[error("no published cross-signing key to check the private key against")]
    NoPublicKeyToCheck,
    /// The key does not decode (not unpadded base64 of 32 bytes).
    #[error("the key is not 32 bytes of base64")]
    InvalidKey,
}

/// What became of one received secret (`m.secret.send`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretOutcome {
    /// The secret's name (from our request), when the request was found.
    pub name: Option<String>,
    /// The request it answers, as the event says.
    pub request_id: Option<String>,
    /// The sending user, as the event says.
    pub sender: Option<String>,
    /// The sending device, when the Olm channel identified it.
    pub sender_device: Option<OwnedDeviceId>,
    /// `Ok` when the secret was checked and stored (in the secrets inbox, and for the backup
    /// key and the cross-signing keys in their records); why not otherwise.
    pub result: Result<(), SecretRefusal>,
}

/// Why an `m.secret.request` was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRequestRefusal {
    /// Not of the expected shape.
    #[error("malformed secret request: {0}")]
    Malformed(String),
    /// From another user: secrets are shared with own devices only.
    #[error("the request comes from another user")]
    OtherUser,
    /// From an own device that is unknown, deleted, or not verified.
    #[error("the requesting device is not a verified own device")]
    UnverifiedDevice,
    /// This device does not hold the secret.
    #[error("the secret is not held here")]
    NotHeld,
    /// No Olm session with the requesting device.
    #[error("no Olm session with the requesting device")]
    NoOlmSession,
}

/// What became of one incoming `m.secret.request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequestOutcome {
    /// The request id.
    pub request_id: String,
    /// The secret asked for.
    pub name: Option<String>,
    /// The requesting device.
    pub requesting_device_id: Option<OwnedDeviceId>,
    /// `Ok` when the secret was queued for the device over Olm; why not otherwise.
    pub result: Result<(), SecretRequestRefusal>,
}

/// What [`OlmMachine::request_secret`](crate::OlmMachine::request_secret) did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretRequest {
    /// The request id, if a request was sent (none when no own device is verified, or a
    /// request for the secret is already pending).
    pub request_id: Option<String>,
    /// The devices asked.
    pub sent_to: Vec<OwnedDeviceId>,
}

/// Rule: the one definition of "an own device the user trusts with secrets": a device of the
/// own user, not this one, not deleted, verified. Swap the body for chain-based trust
/// (cross-signing) without touching its callers.
pub fn is_own_verified_device(own_user: &UserId, own_device: &ruma::DeviceId, device: &Device) -> bool {
    device.user_id == own_user
        && device.device_id != own_device
        && !device.deleted
        && device.local_trust == LocalTrust::Verified
}

#[derive(Deserialize)]
struct RequestContent {
    action: String,
    request_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    requesting_device_id: Option<String>,
}

/// An `m.secret.request`, read.
#[derive(Debug, Clone)]
pub(crate) struct IncomingSecretRequest {
    pub request_id: String,
    pub requesting_device_id: Option<OwnedDeviceId>,
    /// `None` for a cancellation.
    pub name: Option<String>,
}

/// Reads an `m.secret.request` content.
pub(crate) fn read_request(content: &Value) -> Result<IncomingSecretRequest, SecretRequestRefusal> {
    let c = RequestContent::deserialize(content).map_err(|e| SecretRequestRefusal::Malformed(e.to_string()))?;
    let name = match c.action.as_str() {
        "request" => Some(c.name.ok_or_else(|| SecretRequestRefusal::Malformed("name".into()))?),
        "request_cancellation" => None,
        other => return Err(SecretRequestRefusal::Malformed(format!("action {other}"))),
    };
    Ok(IncomingSecretRequest {
        request_id: c.request_id,
        requesting_device_id: c.requesting_device_id.map(OwnedDeviceId::from),
        name,
    })
}

/// Rule: answer only another own verified device, and only with a secret held here.
pub fn check_secret_request(
    own_user: &UserId,
    own_device: &ruma::DeviceId,
    sender: &UserId,
    requester: Option<&Device>,
    held: bool,
) -> Result<(), SecretRequestRefusal> {
    if sender != own_user {
        return Err(SecretRequestRefusal::OtherUser);
    }
    match requester {
        Some(d) if is_own_verified_device(own_user, own_device, d) => {}
        _ => return Err(SecretRequestRefusal::UnverifiedDevice),
    }
    if held { Ok(()) } else { Err(SecretRequestRefusal::NotHeld) }
}

#[derive(Deserialize)]
struct SendContent {
    request_id: String,
    secret: String,
}

struct SendContentId {
    request_id: String,
}

/// A checked `m.secret.send`: the request it answers and the secret.
pub(crate) struct ReceivedSecret {
    pub request: OutgoingRequest,
    pub name: String,
    pub secret: Zeroizing<String>,
}

/// The request id of an `m.secret.send` content, if readable (for the outcome).
pub(crate) fn send_request_id(content: &Value) -> Option<String> {
    content.get("request_id").and_then(Value::as_str).map(str::to_owned)
}

/// Rule: take a secret only over Olm (the event was decrypted), from another own verified
/// device identified by the Olm channel, answering a secret request we sent.
pub(crate) fn check_secret_send(
    own_user: &UserId,
    own_device: &ruma::DeviceId,
    event: &DecryptedToDeviceEvent,
    sender_device: Option<&Device>,
    requests: &[OutgoingRequest],
) -> Result<ReceivedSecret, SecretRefusal> {
    let content = SendContent::deserialize(&event.content)
        .map_err(|e| SecretRefusal::Malformed(format!("m.secret.send: {e}")))?;
    // The secret is moved into a zeroizing buffer before any check can return.
    let secret = Zeroizing::new(content.secret);
    let content = SendContentId { request_id: content.request_id };
    if event.sender != own_user {
        return Err(SecretRefusal::OtherUser);
    }
    let verified = event.source == SenderDeviceSource::KnownDevice
        && sender_device.is_some_and(|d| {
            is_own_verified_device(own_user, own_device, d) && d.curve25519_key == event.sender_curve25519_key
        });
    if !verified {
        return Err(SecretRefusal::UnverifiedDevice);
    }
    let (request, name) = requests
        .iter()
        .find_map(|r| match &r.kind {
            RequestKind::Secret { name } if r.request_id == content.request_id => Some((r.clone(), name.clone())),
            _ => None,
        })
        .ok_or(SecretRefusal::NotRequested)?;
    Ok(ReceivedSecret { request, name, secret })
}

/// 32 bytes from a secret's unpadded base64.
fn key_bytes(secret: &str) -> Result<Zeroizing<[u8; 32]>, SecretRefusal> {
    let bytes = Zeroizing::new(base64_decode(secret.trim()).map_err(|_| SecretRefusal::InvalidKey)?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(SecretRefusal::InvalidKey);
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Rule: a backup key is used only if its public key is the backup's.
pub fn check_backup_key(
    secret: &str,
    backup_public_key: Option<&Curve25519PublicKey>,
) -> Result<PkDecryption, SecretRefusal> {
    let key = PkDecryption::from_bytes(&*key_bytes(secret)?);
    match backup_public_key {
        None => Err(SecretRefusal::NoBackupToCheck),
        Some(expected) if key.public_key() == *expected => Ok(key),
        Some(_) => Err(SecretRefusal::BackupKeyMismatch),
    }
}

/// Rule: a cross-signing private key (a seed) is used only if its public key is the published
/// one of its role.
pub fn check_cross_signing_key(
    secret: &str,
    published: Option<&Ed25519PublicKey>,
) -> Result<Zeroizing<[u8; 32]>, SecretRefusal> {
    let seed = key_bytes(secret)?;
    let public = Ed25519Keypair::from_seed(&seed).public_key();
    match published {
        None => Err(SecretRefusal::NoPublicKeyToCheck),
        Some(expected) if public == *expected => Ok(seed),
        Some(_) => Err(SecretRefusal::CrossSigningKeyMismatch),
    }
}

/// The `m.secret.request` content asking for `name`.
pub(crate) fn request_content(request_id: &str, own_device: &ruma::DeviceId, name: &str) -> Value {
    json!({"action": "request", "name": name, "request_id": request_id, "requesting_device_id": own_device})
}

/// The `m.secret.request` content cancelling a request.
pub(crate) fn cancellation_content(request_id: &str, own_device: &ruma::DeviceId) -> Value {
    json!({"action": "request_cancellation", "request_id": request_id, "requesting_device_id": own_device})
}

/// The `m.secret.send` content answering `request_id`.
pub(crate) fn send_content(request_id: &str, secret: &str) -> Value {
    json!({"request_id": request_id, "secret": secret})
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::types::base64_encode;
    use ruma::{device_id, user_id};

    fn device(user: &str, id: &str, trust: LocalTrust, deleted: bool) -> Device {
        crate::devices::test_device(user, id, trust, deleted)
    }

    #[test]
    fn rule_only_other_verified_own_devices_count() {
        let me = user_id!("@a:x");
        assert!(is_own_verified_device(me, device_id!("A1"), &device("@a:x", "A2", LocalTrust::Verified, false)));
        for d in [
            device("@a:x", "A2", LocalTrust::Unset, false),
            device("@a:x", "A2", LocalTrust::Blacklisted, false),
            device("@a:x", "A2", LocalTrust::Verified, true),
            device("@a:x", "A1", LocalTrust::Verified, false),
            device("@b:x", "A2", LocalTrust::Verified, false),
        ] {
            assert!(!is_own_verified_device(me, device_id!("A1"), &d), "{d:?}");
        }
    }

    #[test]
    fn rule_requests_are_answered_for_verified_own_devices_with_held_secrets() {
        let me = user_id!("@a:x");
        let mine = device("@a:x", "A2", LocalTrust::Verified, false);
        assert_eq!(check_secret_request(me, device_id!("A1"), me, Some(&mine), true), Ok(()));
        assert_eq!(
            check_secret_request(me, device_id!("A1"), me, Some(&mine), false),
            Err(SecretRequestRefusal::NotHeld)
        );
        assert_eq!(
            check_secret_request(me, device_id!("A1"), user_id!("@b:x"), Some(&mine), true),
            Err(SecretRequestRefusal::OtherUser)
        );
        let unverified = device("@a:x", "A2", LocalTrust::Unset, false);
        assert_eq!(
            check_secret_request(me, device_id!("A1"), me, Some(&unverified), true),
            Err(SecretRequestRefusal::UnverifiedDevice)
        );
        assert_eq!(
            check_secret_request(me, device_id!("A1"), me, None, true),
            Err(SecretRequestRefusal::UnverifiedDevice)
        );
    }

    #[test]
    fn rule_a_backup_key_must_match_the_backup() {
        let key = PkDecryption::from_bytes(&[3; 32]);
        let secret = base64_encode([3; 32]);
        assert!(check_backup_key(&secret, Some(&key.public_key())).is_ok());
        let other = PkDecryption::from_bytes(&[4; 32]).public_key();
        assert_eq!(check_backup_key(&secret, Some(&other)).err(), Some(SecretRefusal::BackupKeyMismatch));
        assert_eq!(check_backup_key(&secret, None).err(), Some(SecretRefusal::NoBackupToCheck));
        assert_eq!(check_backup_key("AAAA", Some(&other)).err(), Some(SecretRefusal::InvalidKey));
        assert_eq!(check_backup_key("not base64!", Some(&other)).err(), Some(SecretRefusal::InvalidKey));
    }

    #[test]
    fn rule_a_cross_signing_key_must_match_the_published_key() {
        let public = Ed25519Keypair::from_seed(&[5; 32]).public_key();
        let secret = base64_encode([5; 32]);
        assert!(check_cross_signing_key(&secret, Some(&public)).is_ok());
        let other = Ed25519Keypair::from_seed(&[6; 32]).public_key();
        assert_eq!(check_cross_signing_key(&secret, Some(&other)).err(), Some(SecretRefusal::CrossSigningKeyMismatch));
        assert_eq!(check_cross_signing_key(&secret, None).err(), Some(SecretRefusal::NoPublicKeyToCheck));
    }

    #[test]
    fn requests_and_cancellations_are_read() {
        let r = read_request(&request_content("r1", device_id!("A2"), "m.megolm_backup.v1")).unwrap();
        assert_eq!((r.request_id.as_str(), r.name.as_deref()), ("r1", Some("m.megolm_backup.v1")));
        assert!(read_request(&cancellation_content("r1", device_id!("A2"))).unwrap().name.is_none());
        assert!(read_request(&json!({"action": "request", "request_id": "r"})).is_err());
        assert!(read_request(&json!({"action": "steal", "request_id": "r", "name": "x"})).is_err());
        assert!(read_request(&json!([])).is_err());
    }
}
