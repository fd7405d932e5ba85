//! Device tracking ("Tracking the device list for a user") and device validation.
//!
//! The machine tracks the users it shares encrypted rooms with. A tracked user whose device
//! list may have changed is *dirty* (persisted); dirty users are queried with `/keys/query`
//! in chunks of [`KEYS_QUERY_CHUNK`]. A user marked dirty again while a query for them is in
//! flight stays dirty when that query's answer arrives, and is queried again
//! (`DeviceTracker`; matrix-rust-sdk #1618).
//!
//! Every served device is validated before it is stored ([`validate_device_keys`]):
//! - [`check_user_id`]: the `user_id` inside equals the user the server listed it under;
//! - [`check_device_id`]: the `device_id` inside equals the device id it was listed under;
//! - [`check_algorithms`]: it supports Olm (`m.olm.v1.curve25519-aes-sha2`);
//! - [`identity_keys`]: it has exactly one valid Curve25519 and one valid Ed25519 key for its id;
//! - [`check_self_signature`]: it is signed by its own Ed25519 key over canonical JSON.
//!
//! A known device's keys never change: a device id served with other keys than the stored
//! ones is refused and reported ([`check_keys_unchanged`], [`DeviceEvent::KeyChangeRefused`]).
//! A homeserver accepts such an upload and serves the new keys. Devices the server no longer
//! lists are marked deleted, not forgotten.

use std::collections::{BTreeMap, BTreeSet};

use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store::{Backend, Changes, DeviceRecord, LocalTrust, TrackedUser};
use ruma::api::client::keys::get_keys;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Map, Value};

use crate::adapt::{device_from_store, device_to_store, user_from_store, user_to_store};
use crate::error::MachineError;
use crate::own_device::OLM_ALGORITHM;
use crate::signing::{SignatureError, verify_json};

/// How many users one `/keys/query` asks about.
pub const KEYS_QUERY_CHUNK: usize = 250;

/// A device of another user, or another device of the own user, as validated and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device's user.
    pub user_id: OwnedUserId,
    /// The device id.
    pub device_id: OwnedDeviceId,
    /// Its Curve25519 identity key.
    pub curve25519_key: Curve25519PublicKey,
    /// Its Ed25519 fingerprint key.
    pub ed25519_key: Ed25519PublicKey,
    /// The algorithms it supports.
    pub algorithms: Vec<String>,
    /// The display name the server gave (unsigned, not authenticated).
    pub display_name: Option<String>,
    /// The user's trust decision.
    pub local_trust: LocalTrust,
    /// Whether the server no longer lists it.
    pub deleted: bool,
    /// Whether it was told (`m.no_olm`) that it gets no room keys for want of an Olm session;
    /// sent once, until a session with it works.
    pub no_olm_sent: bool,
}

impl Device {
    /// Reads a stored device. A record the machine did not write (no keys) gives `None`.
    pub(crate) fn from_record(record: &DeviceRecord) -> Option<Self> {
        let object: Map<String, Value> = serde_json::from_slice(&record.device_keys).ok()?;
        let algorithms = object
            .get("algorithms")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let display_name = object
            .get("unsigned")
            .and_then(|u| u.get("device_display_name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Self {
            user_id: user_from_store(&record.user_id).ok()?,
            device_id: device_from_store(&record.device_id),
            curve25519_key: record.curve25519_key?,
            ed25519_key: record.ed25519_key?,
            algorithms,
            display_name,
            local_trust: record.local_trust,
            deleted: record.deleted,
            no_olm_sent: record.no_olm_sent,
        })
    }

    /// Whether it can receive Olm messages.
    pub fn supports_olm(&self) -> bool {
        self.algorithms.iter().any(|a| a == OLM_ALGORITHM)
    }
}

/// Why a served device was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceRejection {
    /// Not a JSON object of the expected shape.
    #[error("malformed device keys: {0}")]
    Malformed(String),
    /// The `user_id` inside is not the user it was listed under.
    #[error("listed under {listed}, but the keys say user {inside}")]
    UserIdMismatch {
        /// The user id of the map key.
        listed: String,
        /// The user id inside the keys.
        inside: String,
    },
    /// The `device_id` inside is not the device id it was listed under.
    #[error("listed as device {listed}, but the keys say {inside}")]
    DeviceIdMismatch {
        /// The device id of the map key.
        listed: String,
        /// The device id inside the keys.
        inside: String,
    },
    /// It does not support Olm.
    #[error("the device does not support {OLM_ALGORITHM}")]
    UnsupportedAlgorithms,
    /// A key is missing or malformed.
    #[error("the {0} key is missing or malformed")]
    InvalidKey(&'static str),
    /// The self-signature does not check out.
    #[error("bad self-signature: {0}")]
    Signature(SignatureError),
}

/// Something the app should know about a device.
// Reports are rare and moved once; boxing the keys would only complicate the FFI mapping.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A new device was validated and stored.
    Added {
        /// The user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
    },
    /// The server no longer lists a device: it is marked deleted.
    Deleted {
        /// The user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
    },
    /// A device marked deleted is listed again, with its old keys.
    Restored {
        /// The user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
    },
    /// A served device was refused (nothing stored).
    Refused {
        /// The user it was listed under.
        user_id: OwnedUserId,
        /// The device id it was listed under.
        device_id: OwnedDeviceId,
        /// Why.
        reason: DeviceRejection,
    },
    /// The server served other identity keys for a known device id. Refused: the stored
    /// keys stay. This is what a compromised or malicious homeserver does.
    KeyChangeRefused {
        /// The user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
        /// The stored Ed25519 key.
        stored_ed25519: Ed25519PublicKey,
        /// The served Ed25519 key.
        served_ed25519: Ed25519PublicKey,
        /// The stored Curve25519 key.
        stored_curve25519: Curve25519PublicKey,
        /// The served Curve25519 key.
        served_curve25519: Curve25519PublicKey,
    },
    /// The server serves this device's own id with keys that are not ours.
    OwnDeviceMismatch {
        /// The served Ed25519 key.
        served_ed25519: Ed25519PublicKey,
        /// The served Curve25519 key.
        served_curve25519: Curve25519PublicKey,
    },
}

/// A device that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedDevice {
    /// Its Curve25519 key.
    pub curve25519: Curve25519PublicKey,
    /// Its Ed25519 key.
    pub ed25519: Ed25519PublicKey,
    /// The keys object as served.
    pub object: Map<String, Value>,
}

/// Rule: the `user_id` inside the keys is the user the server listed them under.
pub fn check_user_id(listed: &UserId, object: &Map<String, Value>) -> Result<(), DeviceRejection> {
    let inside = object.get("user_id").and_then(Value::as_str).ok_or(DeviceRejection::Malformed("user_id".into()))?;
    if inside != listed.as_str() {
        return Err(DeviceRejection::UserIdMismatch { listed: listed.to_string(), inside: inside.to_owned() });
    }
    Ok(())
}

/// Rule: the `device_id` inside the keys is the device id the server listed them under.
pub fn check_device_id(listed: &DeviceId, object: &Map<String, Value>) -> Result<(), DeviceRejection> {
    let inside =
        object.get("device_id").and_then(Value::as_str).ok_or(DeviceRejection::Malformed("device_id".into()))?;
    if inside != listed.as_str() {
        return Err(DeviceRejection::DeviceIdMismatch { listed: listed.to_string(), inside: inside.to_owned() });
    }
    Ok(())
}

/// Rule: the device supports Olm, the only way to send it keys.
pub fn check_algorithms(object: &Map<String, Value>) -> Result<(), DeviceRejection> {
    let algorithms =
        object.get("algorithms").and_then(Value::as_array).ok_or(DeviceRejection::Malformed("algorithms".into()))?;
    if algorithms.iter().any(|a| a.as_str() == Some(OLM_ALGORITHM)) {
        Ok(())
    } else {
        Err(DeviceRejection::UnsupportedAlgorithms)
    }
}

/// Rule: the device has one valid Curve25519 and one valid Ed25519 key, named after its id.
pub fn identity_keys(
    device_id: &DeviceId,
    object: &Map<String, Value>,
) -> Result<(Curve25519PublicKey, Ed25519PublicKey), DeviceRejection> {
    let keys = object.get("keys").and_then(Value::as_object).ok_or(DeviceRejection::Malformed("keys".into()))?;
    let key = |name: &str| keys.get(&format!("{name}:{device_id}")).and_then(Value::as_str);
    let curve = key("curve25519")
        .and_then(|k| Curve25519PublicKey::from_base64(k).ok())
        .ok_or(DeviceRejection::InvalidKey("curve25519"))?;
    let ed = key("ed25519")
        .and_then(|k| Ed25519PublicKey::from_base64(k).ok())
        .ok_or(DeviceRejection::InvalidKey("ed25519"))?;
    Ok((curve, ed))
}

/// Rule: the keys are signed by the device's own Ed25519 key over canonical JSON.
pub fn check_self_signature(
    user_id: &UserId,
    device_id: &DeviceId,
    ed25519: &Ed25519PublicKey,
    object: &Map<String, Value>,
) -> Result<(), DeviceRejection> {
    verify_json(object, user_id.as_str(), &format!("ed25519:{device_id}"), ed25519).map_err(DeviceRejection::Signature)
}

/// Every validation rule, in order: a served device keys JSON listed under `user_id` /
/// `device_id`.
pub fn validate_device_keys(
    user_id: &UserId,
    device_id: &DeviceId,
    json: &str,
) -> Result<ValidatedDevice, DeviceRejection> {
    let object: Map<String, Value> =
        serde_json::from_str(json).map_err(|e| DeviceRejection::Malformed(e.to_string()))?;
    check_user_id(user_id, &object)?;
    check_device_id(device_id, &object)?;
    check_algorithms(&object)?;
    let (curve25519, ed25519) = identity_keys(device_id, &object)?;
    check_self_signature(user_id, device_id, &ed25519, &object)?;
    Ok(ValidatedDevice { curve25519, ed25519, object })
}

/// Rule: a known device's identity keys never change. `Err` carries the report.
pub fn check_keys_unchanged(
    stored: &DeviceRecord,
    served: &ValidatedDevice,
) -> Result<(), Box<(Ed25519PublicKey, Curve25519PublicKey)>> {
    match (stored.ed25519_key, stored.curve25519_key) {
        (Some(ed), Some(curve)) if ed != served.ed25519 || curve != served.curve25519 => Err(Box::new((ed, curve))),
        _ => Ok(()),
    }
}

/// The tracker's in-memory half: which users are being queried, and a per-user counter
/// bumped whenever a user is marked dirty, so an answer to an older query does not clear a
/// newer dirty mark.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeviceTracker {
    marks: BTreeMap<OwnedUserId, u64>,
    in_flight: BTreeSet<OwnedUserId>,
}

/// The users one keys query asked about, with their dirty mark at the time.
#[derive(Debug, Clone)]
pub(crate) struct QueriedUsers(pub Vec<(OwnedUserId, u64)>);

impl DeviceTracker {
    /// Notes that `user` must be queried (again).
    pub(crate) fn mark_dirty(&mut self, user: &UserId) {
        *self.marks.entry(user.to_owned()).or_insert(0) += 1;
    }

    fn mark(&self, user: &UserId) -> u64 {
        self.marks.get(user).copied().unwrap_or(0)
    }

    /// The queries due: dirty tracked users not already being queried, in chunks.
    pub(crate) fn queries_due(&mut self, tracked: &[TrackedUser]) -> Vec<(get_keys::v3::Request, QueriedUsers)> {
        let due: Vec<OwnedUserId> = tracked
            .iter()
            .filter(|t| t.dirty)
            .filter_map(|t| user_from_store(&t.user_id).ok())
            .filter(|u| !self.in_flight.contains(u))
            .collect();
        due.chunks(KEYS_QUERY_CHUNK)
            .map(|chunk| {
                let mut request = get_keys::v3::Request::new();
                let mut queried = Vec::with_capacity(chunk.len());
                for user in chunk {
                    request.device_keys.insert(user.clone(), Vec::new());
                    queried.push((user.clone(), self.mark(user)));
                    self.in_flight.insert(user.clone());
                }
                (request, QueriedUsers(queried))
            })
            .collect()
    }

    /// Forgets that a query is in flight (it was answered, or its request dropped).
    pub(crate) fn finish(&mut self, queried: &QueriedUsers) {
        for (user, _) in &queried.0 {
            self.in_flight.remove(user);
        }
    }
}

/// What the own device looks like, to recognise it in a query answer.
pub(crate) struct OwnIdentity<'a> {
    pub user_id: &'a UserId,
    pub device_id: &'a DeviceId,
    pub curve25519: Curve25519PublicKey,
    pub ed25519: Ed25519PublicKey,
}

/// Applies a `/keys/query` answer: validates and stores devices, reports refusals, marks
/// deleted devices, clears the dirty flag of users whose answer is complete and who were not
/// marked dirty again meanwhile.
pub(crate) fn process_keys_query<B: Backend>(
    store: &crate::cache::CachedStore<B>,
    own: &OwnIdentity<'_>,
    tracker: &mut DeviceTracker,
    queried: &QueriedUsers,
    response: &get_keys::v3::Response,
    changes: &mut Changes,
) -> Result<Vec<DeviceEvent>, MachineError> {
    tracker.finish(queried);
    let tracked: BTreeMap<String, bool> =
        store.tracked_users()?.into_iter().map(|t| (t.user_id.as_str().to_owned(), t.dirty)).collect();
    let mut events = Vec::new();
    for (user, mark) in &queried.0 {
        let failed = response.failures.contains_key(user.server_name().as_str());
        if let Some(served) = response.device_keys.get(user) {
            let served: Vec<(OwnedDeviceId, String)> =
                served.iter().map(|(d, raw)| (d.clone(), raw.json().get().to_owned())).collect();
            apply_user_devices(store, own, user, &served, changes, &mut events)?;
        }
        let still_tracked = tracked.contains_key(user.as_str());
        if !failed && still_tracked && tracker.mark(user) == *mark {
            changes.tracked_users.push(TrackedUser { user_id: user_to_store(user), dirty: false });
        }
    }
    Ok(events)
}

/// Applies one user's served device list.
fn apply_user_devices<B: Backend>(
    store: &crate::cache::CachedStore<B>,
    own: &OwnIdentity<'_>,
    user: &UserId,
    served: &[(OwnedDeviceId, String)],
    changes: &mut Changes,
    events: &mut Vec<DeviceEvent>,
) -> Result<(), MachineError> {
    let stored: BTreeMap<String, DeviceRecord> =
        store.devices(&user_to_store(user))?.into_iter().map(|d| (d.device_id.as_str().to_owned(), d)).collect();
    let mut listed = BTreeSet::new();
    for (device_id, json) in served {
        listed.insert(device_id.as_str().to_owned());
        let device = match validate_device_keys(user, device_id, json) {
            Ok(device) => device,
            Err(reason) => {
                events.push(DeviceEvent::Refused { user_id: user.to_owned(), device_id: device_id.clone(), reason });
                continue;
            }
        };
        if user == own.user_id && device_id == own.device_id {
            if device.ed25519 != own.ed25519 || device.curve25519 != own.curve25519 {
                events.push(DeviceEvent::OwnDeviceMismatch {
                    served_ed25519: device.ed25519,
                    served_curve25519: device.curve25519,
                });
            }
            continue;
        }
        let existing = stored.get(device_id.as_str());
        if let Some(existing) = existing {
            if let Err(stored) = check_keys_unchanged(existing, &device) {
                let (stored_ed25519, stored_curve25519) = *stored;
                events.push(DeviceEvent::KeyChangeRefused {
                    user_id: user.to_owned(),
                    device_id: device_id.clone(),
                    stored_ed25519,
                    served_ed25519: device.ed25519,
                    stored_curve25519,
                    served_curve25519: device.curve25519,
                });
                continue;
            }
        }
        let record = DeviceRecord {
            user_id: user_to_store(user),
            device_id: device_to_store(device_id),
            device_keys: json.as_bytes().to_vec(),
            curve25519_key: Some(device.curve25519),
            ed25519_key: Some(device.ed25519),
            local_trust: existing.map(|e| e.local_trust).unwrap_or_default(),
            deleted: false,
            no_olm_sent: existing.is_some_and(|e| e.no_olm_sent),
        };
        match existing {
            None => events.push(DeviceEvent::Added { user_id: user.to_owned(), device_id: device_id.clone() }),
            Some(e) if e.deleted => {
                events.push(DeviceEvent::Restored { user_id: user.to_owned(), device_id: device_id.clone() })
            }
            Some(e) if *e == record => continue,
            Some(_) => {}
        }
        changes.devices.push(record);
    }
    for (device_id, record) in stored {
        if !listed.contains(&device_id) && !record.deleted {
            events.push(DeviceEvent::Deleted {
                user_id: user.to_owned(),
                device_id: device_from_store(&record.device_id),
            });
            changes.devices.push(DeviceRecord { deleted: true, ..record });
        }
    }
    Ok(())
}

/// A device with fresh keys, for unit tests of the modules that decide about devices.
#[cfg(test)]
pub(crate) fn test_device(user: &str, id: &str, local_trust: LocalTrust, deleted: bool) -> Device {
    let account = ferrolm::olm::Account::new();
    Device {
        user_id: ruma::OwnedUserId::try_from(user).unwrap(),
        device_id: ruma::OwnedDeviceId::from(id),
        curve25519_key: account.curve25519_key(),
        ed25519_key: account.ed25519_key(),
        algorithms: vec![crate::own_device::OLM_ALGORITHM.into()],
        display_name: None,
        local_trust,
        deleted,
        no_olm_sent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::own_device::device_keys;
    use ferrolm::olm::Account;
    use ruma::{device_id, user_id};

    fn served(account: &Account, user: &str, device: &str) -> Map<String, Value> {
        device_keys(account, user, device).unwrap()
    }

    fn json(object: &Map<String, Value>) -> String {
        serde_json::to_string(object).unwrap()
    }

    #[test]
    fn a_valid_device_passes() {
        let account = Account::new();
        let object = served(&account, "@bob:x", "BOBDEV");
        let device = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap();
        assert_eq!(device.ed25519, account.ed25519_key());
        assert_eq!(device.curve25519, account.curve25519_key());
    }

    #[test]
    fn rule_user_id_must_equal_the_map_key() {
        let account = Account::new();
        let object = served(&account, "@mallory:x", "BOBDEV");
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert!(matches!(err, DeviceRejection::UserIdMismatch { .. }));
    }

    #[test]
    fn rule_device_id_must_equal_the_map_key() {
        let account = Account::new();
        let object = served(&account, "@bob:x", "OTHER");
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert!(matches!(err, DeviceRejection::DeviceIdMismatch { .. }));
    }

    #[test]
    fn rule_olm_must_be_supported() {
        let account = Account::new();
        let mut object = served(&account, "@bob:x", "BOBDEV");
        object.insert("algorithms".into(), serde_json::json!(["m.megolm.v1.aes-sha2"]));
        object.remove("signatures");
        crate::signing::sign_json(&account, "@bob:x", "BOBDEV", &mut object).unwrap();
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert_eq!(err, DeviceRejection::UnsupportedAlgorithms);
    }

    #[test]
    fn rule_self_signature_must_verify() {
        let account = Account::new();
        let mut object = served(&account, "@bob:x", "BOBDEV");
        // Signed by another key.
        object.remove("signatures");
        crate::signing::sign_json(&Account::new(), "@bob:x", "BOBDEV", &mut object).unwrap();
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert_eq!(err, DeviceRejection::Signature(SignatureError::Invalid));
        // Not signed at all.
        object.remove("signatures");
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert!(matches!(err, DeviceRejection::Signature(SignatureError::Missing { .. })));
        // A signed field changed after signing.
        let mut object = served(&account, "@bob:x", "BOBDEV");
        object.insert("extra".into(), Value::from("x"));
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert_eq!(err, DeviceRejection::Signature(SignatureError::Invalid));
    }

    #[test]
    fn rule_identity_keys_must_be_valid() {
        let account = Account::new();
        let mut object = served(&account, "@bob:x", "BOBDEV");
        object.insert("keys".into(), serde_json::json!({"ed25519:BOBDEV": account.ed25519_key().to_base64()}));
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert_eq!(err, DeviceRejection::InvalidKey("curve25519"));
        object.insert(
            "keys".into(),
            serde_json::json!({"curve25519:BOBDEV": account.curve25519_key().to_base64(), "ed25519:BOBDEV": "AAAA"}),
        );
        let err = validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&object)).unwrap_err();
        assert_eq!(err, DeviceRejection::InvalidKey("ed25519"));
    }

    #[test]
    fn malformed_json_is_refused() {
        for bad in ["", "[]", "{", "{\"user_id\": 5}", "null"] {
            assert!(validate_device_keys(user_id!("@bob:x"), device_id!("B"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_known_keys_never_change() {
        let old = Account::new();
        let new = Account::new();
        let stored = DeviceRecord {
            user_id: "@bob:x".into(),
            device_id: "BOBDEV".into(),
            device_keys: vec![],
            curve25519_key: Some(old.curve25519_key()),
            ed25519_key: Some(old.ed25519_key()),
            local_trust: LocalTrust::Unset,
            deleted: false,
            no_olm_sent: false,
        };
        let same =
            validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&served(&old, "@bob:x", "BOBDEV")))
                .unwrap();
        assert!(check_keys_unchanged(&stored, &same).is_ok());
        let changed =
            validate_device_keys(user_id!("@bob:x"), device_id!("BOBDEV"), &json(&served(&new, "@bob:x", "BOBDEV")))
                .unwrap();
        assert_eq!(check_keys_unchanged(&stored, &changed), Err(Box::new((old.ed25519_key(), old.curve25519_key()))));
    }

    #[test]
    fn a_user_marked_dirty_during_a_query_stays_due() {
        let mut tracker = DeviceTracker::default();
        let bob = user_id!("@bob:x");
        let tracked = vec![TrackedUser { user_id: "@bob:x".into(), dirty: true }];
        let first = tracker.queries_due(&tracked);
        assert_eq!(first.len(), 1);
        // In flight: not queried twice.
        assert!(tracker.queries_due(&tracked).is_empty());
        let (_, queried) = &first[0];
        tracker.mark_dirty(bob);
        assert_ne!(tracker.mark(bob), queried.0[0].1);
        tracker.finish(queried);
        assert_eq!(tracker.queries_due(&tracked).len(), 1);
    }

    #[test]
    fn queries_come_in_chunks() {
        let mut tracker = DeviceTracker::default();
        let tracked: Vec<TrackedUser> = (0..KEYS_QUERY_CHUNK * 2 + 1)
            .map(|i| TrackedUser { user_id: format!("@u{i}:x").into(), dirty: true })
            .collect();
        let queries = tracker.queries_due(&tracked);
        assert_eq!(queries.iter().map(|(r, _)| r.device_keys.len()).collect::<Vec<_>>(), vec![250, 250, 1]);
    }
}
