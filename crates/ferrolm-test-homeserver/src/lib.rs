//! # ferrolm-test-homeserver
//!
//! An in-process, simulated Matrix homeserver for testing the ferrolm machine: no HTTP, no
//! threads, no clock, but the semantics of a real homeserver's end-to-end-encryption
//! endpoints, and scripting hooks to make it misbehave.
//!
//! - `/keys/upload`: device keys replace the stored ones **even when the identity keys
//!   change** (as real homeservers do: the client must refuse them); a one-time key id
//!   uploaded again with other content is refused (`400 M_INVALID_PARAM`); one fallback key per
//!   algorithm, the newest wins. Nothing is signature-checked (a real homeserver does not).
//! - `/keys/query`: every device's keys as uploaded (or as a hook says), with the signatures
//!   published since; the users' master and self-signing keys, and the requester's own
//!   user-signing key; `failures` for users on servers marked unreachable.
//! - `/keys/device_signing/upload`: the first upload of a user's cross-signing keys needs no
//!   user-interactive authentication (MSC3967), a replacement does (`401` with a
//!   `m.login.password` flow and a session; any auth naming that session passes); the keys must
//!   be the user's, with their usage, the subkeys signed by the master key.
//! - `/keys/signatures/upload`: a signature of an own device by the self-signing key, of the
//!   own master key by an own device, of another user's master key by the user-signing key is
//!   checked and merged into the served object; any other is a failure
//!   (`M_INVALID_SIGNATURE`).
//! - `/keys/claim`: a one-time key is removed when claimed; when none is left the fallback key
//!   is served, again and again, and reported used in sync.
//! - `/sendToDevice`: per-device queues; a transaction id seen before from the same device is
//!   accepted and ignored (idempotent).
//! - `/sync`: to-device messages are delivered until a later sync acknowledges them with its
//!   `since` token; `device_lists.changed` lists the users who changed their devices (or the
//!   user themself) and users who newly share a room; `left` those who no longer do; one-time
//!   key counts and unused fallback key types for the syncing device; joined rooms' timelines.
//! - `/keys/changes`: the users sharing a room now whose devices changed between two sync
//!   tokens (`left` is always empty here).
//! - `PUT`/`GET /user/{userId}/account_data/{type}`: global account data, the user's own only
//!   (`403` otherwise), `404 M_NOT_FOUND` when absent; [`Homeserver::global_account_data`] is what
//!   a client would have collected from its syncs (sync responses do not carry it here).
//! - MSC3814 dehydrated devices (`/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`):
//!   `PUT` replaces the user's dehydrated device (a device like the others, with the keys
//!   uploaded with it), `GET` serves it, `POST {device_id}/events` pages its to-device queue.
//! - Rooms with membership (create, join, leave) and room events.
//! - Server-side key backups (`/room_keys/version`, `/room_keys/keys`): versions per user,
//!   numbered from 1, only the newest one writable (`403 M_WRONG_ROOM_KEYS_VERSION`
//!   otherwise); an uploaded key replaces the stored one of its session only when its
//!   `first_message_index` is lower. Nothing is checked (the server cannot read the keys).
//!
//! Misbehaviour hooks: [`Homeserver::serve_device_keys`] serves forged or changed device
//! keys, [`Homeserver::serve_cross_signing_key`] forged cross-signing keys, [`Homeserver::serve_one_time_key`] forged claimed keys, [`Homeserver::to_device_queue`]
//! gives the queue of a device to drop, duplicate or reorder messages,
//! [`Homeserver::forge_to_device`] injects events, [`Homeserver::set_unreachable`] makes a
//! server fail in queries and claims, [`Homeserver::set_global_account_data`] forges account
//! data.
//!
//! Each endpoint exists typed (ruma's request and response types) and on the wire
//! ([`Homeserver::handle`]: an `http::Request` with the JSON body in, an `http::Response`
//! out). The [`driver`] runs a machine's request loop against it.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use ferrolm_machine::cross_signing::{KeyUsage, key_id, validate_master_key, validate_subkey};
use ferrolm_machine::signing::verify_json;
use ruma::api::client::backup::{
    RoomKeyBackup, add_backup_keys, create_backup_version, get_backup_keys, get_latest_backup_info,
};
use ruma::api::client::keys::{claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures};
use ruma::api::client::sync::sync_events;
use ruma::api::client::to_device::send_event_to_device;
use ruma::api::{IncomingRequest, OutgoingResponse};
use ruma::events::AnyToDeviceEvent;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, UInt, UserId};
use serde_json::{Value, json};

pub mod driver;
pub mod forge;

/// An error response: status, `errcode`, `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {errcode}: {error}")]
pub struct HsError {
    /// The HTTP status.
    pub status: u16,
    /// The Matrix error code (`M_INVALID_PARAM`, …).
    pub errcode: String,
    /// The message.
    pub error: String,
}

impl HsError {
    fn new(status: u16, errcode: &str, error: impl Into<String>) -> Self {
        Self { status, errcode: errcode.to_owned(), error: error.into() }
    }

    fn bad_json(error: impl std::fmt::Display) -> Self {
        Self::new(400, "M_BAD_JSON", error.to_string())
    }

    /// The error's JSON body.
    pub fn body(&self) -> Vec<u8> {
        json!({"errcode": self.errcode, "error": self.error}).to_string().into_bytes()
    }
}

/// Why a cross-signing keys upload was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum UiaError {
    /// User-interactive authentication is needed: the `401` body (flows, params, session).
    AuthRequired(Value),
    /// The upload is refused.
    Refused(HsError),
}

/// A queued to-device message.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedToDevice {
    /// The stream position it was queued at.
    pub position: u64,
    /// The event: `{"type", "sender", "content"}`.
    pub event: Value,
}

#[derive(Debug, Default)]
struct DeviceState {
    device_keys: Option<Value>,
    /// By key id (`signed_curve25519:AAAAAQ`).
    one_time_keys: BTreeMap<String, Value>,
    /// By algorithm: (key id, key, used).
    fallback_keys: BTreeMap<String, (String, Value, bool)>,
    to_device: Vec<QueuedToDevice>,
    /// Users sharing a room with this device's user, as of each sync token handed out.
    snapshots: BTreeMap<u64, BTreeSet<OwnedUserId>>,
    seen_transactions: BTreeSet<String>,
}

/// One user's server-side key backups.
#[derive(Debug, Default)]
struct Backups {
    /// By version number: the `{algorithm, auth_data}` object and the keys, by room and
    /// session id.
    versions: BTreeMap<u64, BackupVersion>,
    etag: u64,
}

#[derive(Debug, Default)]
struct BackupVersion {
    algorithm: Value,
    keys: BTreeMap<OwnedRoomId, BTreeMap<String, Value>>,
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<OwnedUserId>,
    timeline: Vec<(u64, Value)>,
}

/// The simulated homeserver. One instance may host users of several server names; all of
/// them are "local".
///
/// ```
/// use ferrolm_test_homeserver::Homeserver;
/// use ruma::{device_id, user_id};
///
/// let mut hs = Homeserver::new();
/// hs.login(user_id!("@alice:test.server"), device_id!("ALICE"));
/// let room = hs.create_room(user_id!("@alice:test.server"))?;
/// hs.send_room_event(&room, user_id!("@alice:test.server"), "m.room.message", serde_json::json!({"body": "hi"}))?;
/// let sync = hs.sync(user_id!("@alice:test.server"), device_id!("ALICE"), None)?;
/// assert_eq!(sync.rooms.join[&room].timeline.events.len(), 1);
/// # Ok::<(), ferrolm_test_homeserver::HsError>(())
/// ```
#[derive(Debug, Default)]
pub struct Homeserver {
    devices: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, DeviceState>>,
    rooms: BTreeMap<OwnedRoomId, Room>,
    /// (position, user) for each device list change.
    device_list_changes: Vec<(u64, OwnedUserId)>,
    position: u64,
    next_id: u64,
    key_overrides: BTreeMap<(OwnedUserId, OwnedDeviceId), Value>,
    claim_overrides: BTreeMap<(OwnedUserId, OwnedDeviceId), (String, Value)>,
    unreachable: BTreeSet<String>,
    /// Cross-signing keys by user and usage.
    cross_signing: BTreeMap<OwnedUserId, BTreeMap<KeyUsage, Value>>,
    cross_signing_overrides: BTreeMap<(OwnedUserId, KeyUsage), Value>,
    /// Sessions of user-interactive authentication handed out.
    uia_sessions: BTreeSet<String>,
    last_uia_session: Option<String>,
    always_require_auth: bool,
    backups: BTreeMap<OwnedUserId, Backups>,
    /// Global account data by user, then event type.
    account_data: BTreeMap<OwnedUserId, BTreeMap<String, Value>>,
    /// Each user's dehydrated device (MSC3814): its id and `device_data`.
    dehydrated: BTreeMap<OwnedUserId, (OwnedDeviceId, Value)>,
}

fn parse_token(token: Option<&str>) -> Option<u64> {
    token.and_then(|t| t.strip_prefix('s')).and_then(|t| t.parse().ok())
}

fn uint(n: usize) -> UInt {
    UInt::try_from(n).unwrap_or(UInt::MAX)
}

fn raw<T>(value: &Value) -> Result<Raw<T>, HsError> {
    let raw = serde_json::value::to_raw_value(value).map_err(HsError::bad_json)?;
    Ok(Raw::from_json(raw))
}

impl Homeserver {
    /// An empty homeserver.
    pub fn new() -> Self {
        Self::default()
    }

    fn tick(&mut self) -> u64 {
        self.position += 1;
        self.position
    }

    fn device_mut(&mut self, user: &UserId, device: &ruma::DeviceId) -> Result<&mut DeviceState, HsError> {
        self.devices
            .get_mut(user)
            .and_then(|d| d.get_mut(device))
            .ok_or_else(|| HsError::new(401, "M_UNKNOWN_TOKEN", format!("no device {user} {device}")))
    }

    /// Logs a device in (creates it, without keys).
    pub fn login(&mut self, user: &UserId, device: &ruma::DeviceId) {
        self.devices.entry(user.to_owned()).or_default().entry(device.to_owned()).or_default();
    }

    /// Deletes a device: its keys and queues are gone, its user's device list changed.
    pub fn delete_device(&mut self, user: &UserId, device: &ruma::DeviceId) {
        if let Some(devices) = self.devices.get_mut(user) {
            devices.remove(device);
        }
        let position = self.tick();
        self.device_list_changes.push((position, user.to_owned()));
    }

    // -----------------------------------------------------------------------------------
    // Hooks.

    /// Serves `keys` as `user`'s device `device` in key queries from now on, whatever was
    /// uploaded (`Value::Null` serves nothing for it), and notes a device list change.
    pub fn serve_device_keys(&mut self, user: &UserId, device: &ruma::DeviceId, keys: Value) {
        self.key_overrides.insert((user.to_owned(), device.to_owned()), keys);
        let position = self.tick();
        self.device_list_changes.push((position, user.to_owned()));
    }

    /// Serves `key` as `user`'s cross-signing key of `usage` in key queries from now on,
    /// whatever was uploaded (`Value::Null` serves none), and notes a device list change.
    pub fn serve_cross_signing_key(&mut self, user: &UserId, usage: KeyUsage, key: Value) {
        self.cross_signing_overrides.insert((user.to_owned(), usage), key);
        let position = self.tick();
        self.device_list_changes.push((position, user.to_owned()));
    }

    /// Stops [`Homeserver::serve_cross_signing_key`] for `user`'s key of `usage`.
    pub fn stop_serving_cross_signing_key(&mut self, user: &UserId, usage: KeyUsage) {
        self.cross_signing_overrides.remove(&(user.to_owned(), usage));
        let position = self.tick();
        self.device_list_changes.push((position, user.to_owned()));
    }

    /// The cross-signing key of `usage` of `user` as stored (with its signatures).
    pub fn cross_signing_key(&self, user: &UserId, usage: KeyUsage) -> Option<Value> {
        self.cross_signing.get(user).and_then(|k| k.get(&usage)).cloned()
    }

    /// The session of the last user-interactive authentication challenge handed out.
    pub fn last_uia_session(&self) -> Option<String> {
        self.last_uia_session.clone()
    }

    /// Requires user-interactive authentication for every cross-signing keys upload, the
    /// first one included (`true`), or only for replacements (`false`, the default).
    pub fn require_interactive_auth(&mut self, always: bool) {
        self.always_require_auth = always;
    }

    /// Serves `key` (with id `key_id`) for the next claims of `user`'s `device`.
    pub fn serve_one_time_key(&mut self, user: &UserId, device: &ruma::DeviceId, key_id: &str, key: Value) {
        self.claim_overrides.insert((user.to_owned(), device.to_owned()), (key_id.to_owned(), key));
    }

    /// Stops [`Homeserver::serve_one_time_key`] for `user`'s `device`.
    pub fn stop_serving_one_time_key(&mut self, user: &UserId, device: &ruma::DeviceId) {
        self.claim_overrides.remove(&(user.to_owned(), device.to_owned()));
    }

    /// Marks a server name unreachable (`true`) or reachable again: its users appear in the
    /// `failures` of queries and claims.
    pub fn set_unreachable(&mut self, server_name: &str, unreachable: bool) {
        if unreachable {
            self.unreachable.insert(server_name.to_owned());
        } else {
            self.unreachable.remove(server_name);
        }
    }

    /// The to-device queue of a device: drop, duplicate, reorder at will.
    pub fn to_device_queue(&mut self, user: &UserId, device: &ruma::DeviceId) -> Option<&mut Vec<QueuedToDevice>> {
        self.devices.get_mut(user).and_then(|d| d.get_mut(device)).map(|d| &mut d.to_device)
    }

    /// Queues an arbitrary event for a device, as if someone had sent it.
    pub fn forge_to_device(&mut self, user: &UserId, device: &ruma::DeviceId, event: Value) {
        let position = self.tick();
        if let Some(state) = self.devices.get_mut(user).and_then(|d| d.get_mut(device)) {
            state.to_device.push(QueuedToDevice { position, event });
        }
    }

    /// The number of unclaimed one-time keys of a device.
    pub fn one_time_key_count(&self, user: &UserId, device: &ruma::DeviceId) -> usize {
        self.devices.get(user).and_then(|d| d.get(device)).map_or(0, |d| d.one_time_keys.len())
    }

    /// The unclaimed one-time keys of a device, by key id.
    pub fn one_time_keys(&self, user: &UserId, device: &ruma::DeviceId) -> BTreeMap<String, Value> {
        self.devices.get(user).and_then(|d| d.get(device)).map(|d| d.one_time_keys.clone()).unwrap_or_default()
    }

    /// The stored device keys of a device, as uploaded.
    pub fn uploaded_device_keys(&self, user: &UserId, device: &ruma::DeviceId) -> Option<Value> {
        self.devices.get(user).and_then(|d| d.get(device)).and_then(|d| d.device_keys.clone())
    }

    /// The fallback key of a device (key id, key, used).
    pub fn fallback_key(&self, user: &UserId, device: &ruma::DeviceId) -> Option<(String, Value, bool)> {
        self.devices
            .get(user)
            .and_then(|d| d.get(device))
            .and_then(|d| d.fallback_keys.get("signed_curve25519").cloned())
    }

    // -----------------------------------------------------------------------------------
    // Rooms.

    /// Creates a room with `creator` as its only member.
    pub fn create_room(&mut self, creator: &UserId) -> Result<OwnedRoomId, HsError> {
        self.next_id += 1;
        let id = OwnedRoomId::try_from(format!("!room{}:test.server", self.next_id)).map_err(HsError::bad_json)?;
        let mut room = Room::default();
        room.members.insert(creator.to_owned());
        self.rooms.insert(id.clone(), room);
        self.tick();
        Ok(id)
    }

    /// `user` joins `room`.
    pub fn join(&mut self, room: &ruma::RoomId, user: &UserId) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.insert(user.to_owned());
        }
        self.tick();
    }

    /// `user` leaves `room`.
    pub fn leave(&mut self, room: &ruma::RoomId, user: &UserId) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.remove(user);
        }
        self.tick();
    }

    /// The members of `room`.
    pub fn members(&self, room: &ruma::RoomId) -> Vec<OwnedUserId> {
        self.rooms.get(room).map(|r| r.members.iter().cloned().collect()).unwrap_or_default()
    }

    /// Sends a room event; returns its id.
    pub fn send_room_event(
        &mut self,
        room: &ruma::RoomId,
        sender: &UserId,
        event_type: &str,
        content: Value,
    ) -> Result<OwnedEventId, HsError> {
        let position = self.tick();
        let event_id = OwnedEventId::try_from(format!("$event{position}")).map_err(HsError::bad_json)?;
        let r = self.rooms.get_mut(room).ok_or_else(|| HsError::new(404, "M_NOT_FOUND", "no such room"))?;
        if !r.members.contains(sender) {
            return Err(HsError::new(403, "M_FORBIDDEN", "not a member"));
        }
        let event = json!({
            "type": event_type,
            "event_id": event_id,
            "sender": sender,
            "origin_server_ts": position,
            "room_id": room,
            "content": content,
        });
        r.timeline.push((position, event));
        Ok(event_id)
    }

    fn shared_users(&self, user: &UserId) -> BTreeSet<OwnedUserId> {
        let mut out: BTreeSet<OwnedUserId> =
            self.rooms.values().filter(|r| r.members.contains(user)).flat_map(|r| r.members.iter().cloned()).collect();
        out.insert(user.to_owned());
        out
    }

    // -----------------------------------------------------------------------------------
    // Endpoints, typed.

    /// `POST /keys/upload` by `user`'s `device`.
    pub fn upload_keys(
        &mut self,
        user: &UserId,
        device: &ruma::DeviceId,
        request: upload_keys::v3::Request,
    ) -> Result<upload_keys::v3::Response, HsError> {
        let mut device_keys_changed = false;
        {
            let state = self.device_mut(user, device)?;
            if let Some(keys) = &request.device_keys {
                let keys: Value = serde_json::from_str(keys.json().get()).map_err(HsError::bad_json)?;
                if keys.get("user_id").and_then(Value::as_str) != Some(user.as_str())
                    || keys.get("device_id").and_then(Value::as_str) != Some(device.as_str())
                {
                    return Err(HsError::new(400, "M_INVALID_PARAM", "user_id or device_id mismatch"));
                }
                // Accepted even when the identity keys differ from the stored ones.
                if state.device_keys.as_ref() != Some(&keys) {
                    state.device_keys = Some(keys);
                    device_keys_changed = true;
                }
            }
            // Check every one-time key before storing any.
            let mut new_keys = Vec::new();
            for (id, key) in &request.one_time_keys {
                let key: Value = serde_json::from_str(key.json().get()).map_err(HsError::bad_json)?;
                match state.one_time_keys.get(id.as_str()) {
                    Some(existing) if *existing != key => {
                        return Err(HsError::new(
                            400,
                            "M_INVALID_PARAM",
                            format!("One time key {id} already exists with other content"),
                        ));
                    }
                    _ => new_keys.push((id.to_string(), key)),
                }
            }
            state.one_time_keys.extend(new_keys);
            for (id, key) in &request.fallback_keys {
                let key: Value = serde_json::from_str(key.json().get()).map_err(HsError::bad_json)?;
                let algorithm = id.algorithm().to_string();
                let same = state.fallback_keys.get(&algorithm).is_some_and(|(i, k, _)| i == id.as_str() && *k == key);
                if !same {
                    state.fallback_keys.insert(algorithm, (id.to_string(), key, false));
                }
            }
        }
        if device_keys_changed {
            let position = self.tick();
            self.device_list_changes.push((position, user.to_owned()));
        }
        let state = self.device_mut(user, device)?;
        let mut counts = BTreeMap::new();
        counts.insert(OneTimeKeyAlgorithm::SignedCurve25519, uint(state.one_time_keys.len()));
        Ok(upload_keys::v3::Response::new(counts))
    }

    /// `POST /keys/query` (by nobody in particular: no user-signing key is served).
    pub fn query_keys(&mut self, request: get_keys::v3::Request) -> Result<get_keys::v3::Response, HsError> {
        self.query_keys_as(None, request)
    }

    fn served_cross_signing_key(&self, user: &UserId, usage: KeyUsage) -> Option<Value> {
        match self.cross_signing_overrides.get(&(user.to_owned(), usage)) {
            Some(Value::Null) => None,
            Some(forged) => Some(forged.clone()),
            None => self.cross_signing_key(user, usage),
        }
    }

    /// `POST /keys/query` by `requester`, who also gets their own user-signing key.
    pub fn query_keys_as(
        &mut self,
        requester: Option<&UserId>,
        request: get_keys::v3::Request,
    ) -> Result<get_keys::v3::Response, HsError> {
        let mut response = get_keys::v3::Response::new();
        for (user, wanted) in &request.device_keys {
            if self.unreachable.contains(user.server_name().as_str()) {
                response.failures.insert(user.server_name().to_string(), json!({"status": 503}));
                continue;
            }
            let mut served = BTreeMap::new();
            let devices = self.devices.get(user);
            let ids: BTreeSet<OwnedDeviceId> = devices
                .map(|d| d.keys().cloned().collect::<BTreeSet<_>>())
                .unwrap_or_default()
                .into_iter()
                .chain(self.key_overrides.keys().filter(|(u, _)| u == user).map(|(_, d)| d.clone()))
                .collect();
            for device in ids {
                if !wanted.is_empty() && !wanted.contains(&device) {
                    continue;
                }
                let keys = match self.key_overrides.get(&(user.clone(), device.clone())) {
                    Some(Value::Null) => None,
                    Some(forged) => Some(forged.clone()),
                    None => devices.and_then(|d| d.get(&device)).and_then(|d| d.device_keys.clone()),
                };
                if let Some(keys) = keys {
                    served.insert(device, raw(&keys)?);
                }
            }
            response.device_keys.insert(user.clone(), served);
            if let Some(key) = self.served_cross_signing_key(user, KeyUsage::Master) {
                response.master_keys.insert(user.clone(), raw(&key)?);
            }
            if let Some(key) = self.served_cross_signing_key(user, KeyUsage::SelfSigning) {
                response.self_signing_keys.insert(user.clone(), raw(&key)?);
            }
            if requester == Some(user.as_ref()) {
                if let Some(key) = self.served_cross_signing_key(user, KeyUsage::UserSigning) {
                    response.user_signing_keys.insert(user.clone(), raw(&key)?);
                }
            }
        }
        Ok(response)
    }

    /// `POST /keys/device_signing/upload` by `user`, as its JSON body: `Err` with status 401 and
    /// a user-interactive authentication body when authentication is needed.
    pub fn upload_signing_keys(&mut self, user: &UserId, body: &Value) -> Result<(), UiaError> {
        let has_master = self.cross_signing.get(user).is_some_and(|k| k.contains_key(&KeyUsage::Master));
        if has_master || self.always_require_auth {
            let session = body.get("auth").and_then(|a| a.get("session")).and_then(Value::as_str);
            if !session.is_some_and(|s| self.uia_sessions.contains(s)) {
                self.next_id += 1;
                let session = format!("uia{}", self.next_id);
                self.uia_sessions.insert(session.clone());
                self.last_uia_session = Some(session.clone());
                return Err(UiaError::AuthRequired(json!({
                    "flows": [{"stages": ["m.login.password"]}],
                    "params": {},
                    "session": session,
                })));
            }
        }
        let invalid =
            |e: &dyn std::fmt::Display| UiaError::Refused(HsError::new(400, "M_INVALID_PARAM", e.to_string()));
        let text = |v: &Value| serde_json::to_string(v).unwrap_or_default();
        let master = match body.get("master_key") {
            Some(m) => validate_master_key(user, &text(m)).map_err(|e| invalid(&e))?.key,
            None => {
                let stored = self.cross_signing_key(user, KeyUsage::Master).ok_or_else(|| invalid(&"no master key"))?;
                validate_master_key(user, &text(&stored)).map_err(|e| invalid(&e))?.key
            }
        };
        for (field, usage) in [("self_signing_key", KeyUsage::SelfSigning), ("user_signing_key", KeyUsage::UserSigning)]
        {
            if let Some(key) = body.get(field) {
                validate_subkey(user, usage, &text(key), &master).map_err(|e| invalid(&e))?;
            }
        }
        let keys = self.cross_signing.entry(user.to_owned()).or_default();
        for (field, usage) in [
            ("master_key", KeyUsage::Master),
            ("self_signing_key", KeyUsage::SelfSigning),
            ("user_signing_key", KeyUsage::UserSigning),
        ] {
            if let Some(key) = body.get(field) {
                keys.insert(usage, key.clone());
            }
        }
        let position = self.tick();
        self.device_list_changes.push((position, user.to_owned()));
        Ok(())
    }

    /// `POST /keys/claim`.
    pub fn claim_keys(&mut self, request: claim_keys::v3::Request) -> Result<claim_keys::v3::Response, HsError> {
        let mut response = claim_keys::v3::Response::new(BTreeMap::new());
        for (user, devices) in &request.one_time_keys {
            if self.unreachable.contains(user.server_name().as_str()) {
                response.failures.insert(user.server_name().to_string(), json!({"status": 503}));
                continue;
            }
            for (device, algorithm) in devices {
                let claimed = if let Some((id, key)) = self.claim_overrides.get(&(user.clone(), device.clone())) {
                    Some((id.clone(), key.clone()))
                } else {
                    let Some(state) = self.devices.get_mut(user).and_then(|d| d.get_mut(device)) else { continue };
                    let prefix = format!("{algorithm}:");
                    let id = state.one_time_keys.keys().find(|k| k.starts_with(&prefix)).cloned();
                    match id.and_then(|id| state.one_time_keys.remove(&id).map(|k| (id, k))) {
                        Some(pair) => Some(pair),
                        None => state.fallback_keys.get_mut(algorithm.as_str()).map(|(id, key, used)| {
                            *used = true;
                            (id.clone(), key.clone())
                        }),
                    }
                };
                if let Some((id, key)) = claimed {
                    let id = ruma::OwnedOneTimeKeyId::try_from(id).map_err(HsError::bad_json)?;
                    response
                        .one_time_keys
                        .entry(user.clone())
                        .or_default()
                        .entry(device.clone())
                        .or_default()
                        .insert(id, raw(&key)?);
                }
            }
        }
        Ok(response)
    }

    /// `PUT /sendToDevice/{type}/{txnId}` by `user`'s `device`.
    pub fn send_to_device(
        &mut self,
        user: &UserId,
        device: &ruma::DeviceId,
        request: send_event_to_device::v3::Request,
    ) -> Result<send_event_to_device::v3::Response, HsError> {
        let txn = request.txn_id.to_string();
        if !self.device_mut(user, device)?.seen_transactions.insert(txn) {
            return Ok(send_event_to_device::v3::Response::new());
        }
        for (recipient, targets) in &request.messages {
            for (target, content) in targets {
                let content: Value = serde_json::from_str(content.json().get()).map_err(HsError::bad_json)?;
                let event = json!({"type": request.event_type.to_string(), "sender": user, "content": content});
                let devices: Vec<OwnedDeviceId> = match target {
                    DeviceIdOrAllDevices::DeviceId(d) => vec![d.clone()],
                    DeviceIdOrAllDevices::AllDevices => {
                        self.devices.get(recipient).map(|d| d.keys().cloned().collect()).unwrap_or_default()
                    }
                };
                for d in devices {
                    let position = self.tick();
                    if let Some(state) = self.devices.get_mut(recipient).and_then(|s| s.get_mut(&d)) {
                        state.to_device.push(QueuedToDevice { position, event: event.clone() });
                    }
                }
            }
        }
        Ok(send_event_to_device::v3::Response::new())
    }

    /// `POST /keys/signatures/upload` by `user`: each signature checked (see the crate
    /// documentation) and merged into the served object, or reported as a failure.
    pub fn upload_signatures(
        &mut self,
        user: &UserId,
        request: upload_signatures::v3::Request,
    ) -> Result<upload_signatures::v3::Response, HsError> {
        let mut failures: BTreeMap<OwnedUserId, BTreeMap<String, Value>> = BTreeMap::new();
        for (target, keys) in &request.signed_keys {
            for (id, object) in keys.iter() {
                let object: Value = serde_json::from_str(object.get()).map_err(HsError::bad_json)?;
                if self.merge_signature(user, target, id, &object).is_none() {
                    failures.entry(target.clone()).or_default().insert(
                        id.to_owned(),
                        json!({"status": 400, "errcode": "M_INVALID_SIGNATURE", "error": "Invalid signature"}),
                    );
                } else {
                    let position = self.tick();
                    self.device_list_changes.push((position, target.clone()));
                }
            }
        }
        let body = json!({ "failures": failures }).to_string().into_bytes();
        <upload_signatures::v3::Response as ruma::api::IncomingResponse>::try_from_http_response(http::Response::new(
            body,
        ))
        .map_err(HsError::bad_json)
    }

    /// Checks `signer`'s signature on `target`'s key `id` and merges it; `None` if refused.
    fn merge_signature(&mut self, signer: &UserId, target: &UserId, id: &str, object: &Value) -> Option<()> {
        let Value::Object(map) = object else { return None };
        let key_of = |v: &Value| -> Option<ferrolm::types::Ed25519PublicKey> {
            let keys = v.get("keys")?.as_object()?;
            let (_, key) = keys.iter().find(|(k, _)| k.starts_with("ed25519:"))?;
            ferrolm::types::Ed25519PublicKey::from_base64(key.as_str()?).ok()
        };
        let master = self.cross_signing_key(target, KeyUsage::Master);
        let is_master = master.as_ref().and_then(key_of).is_some_and(|k| k.to_base64() == id);
        // The signing key: which one may sign what.
        let (signing_key_id, signing_key) = if is_master && signer == target {
            // The own master key, by an own device.
            let devices = self.devices.get(signer)?;
            let signatures = map.get("signatures")?.get(signer.as_str())?.as_object()?;
            signatures.keys().find_map(|key_id| {
                let device = devices.get(<&ruma::DeviceId>::from(key_id.strip_prefix("ed25519:")?))?;
                let key = device.device_keys.as_ref()?.get("keys")?.get(key_id)?.as_str()?;
                Some((key_id.clone(), ferrolm::types::Ed25519PublicKey::from_base64(key).ok()?))
            })?
        } else if is_master {
            let usk = key_of(&self.cross_signing_key(signer, KeyUsage::UserSigning)?)?;
            (key_id(&usk), usk)
        } else if signer == target {
            let ssk = key_of(&self.cross_signing_key(signer, KeyUsage::SelfSigning)?)?;
            (key_id(&ssk), ssk)
        } else {
            return None;
        };
        verify_json(map, signer.as_str(), &signing_key_id, &signing_key).ok()?;
        let signature = map.get("signatures")?.get(signer.as_str())?.get(&signing_key_id)?.clone();
        let stored: &mut Value = if is_master {
            self.cross_signing.get_mut(target)?.get_mut(&KeyUsage::Master)?
        } else {
            self.devices.get_mut(target)?.get_mut(<&ruma::DeviceId>::from(id))?.device_keys.as_mut()?
        };
        // The signed content must be the stored one.
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Value::Object(m) = &mut v {
                m.remove("signatures");
                m.remove("unsigned");
            }
            v
        };
        if strip(stored) != strip(object) {
            return None;
        }
        let signatures = stored.as_object_mut()?.entry("signatures").or_insert_with(|| json!({}));
        let by_signer = signatures.as_object_mut()?.entry(signer.as_str()).or_insert_with(|| json!({}));
        by_signer.as_object_mut()?.insert(signing_key_id, signature);
        Some(())
    }

    /// `GET /keys/changes` for `user`: who, sharing a room with `user` now, changed their
    /// devices after `from` and up to `to`.
    pub fn key_changes(
        &mut self,
        user: &UserId,
        request: get_key_changes::v3::Request,
    ) -> Result<get_key_changes::v3::Response, HsError> {
        let bad = || HsError::new(400, "M_INVALID_PARAM", "malformed token");
        let from = parse_token(Some(&request.from)).ok_or_else(bad)?;
        let to = parse_token(Some(&request.to)).ok_or_else(bad)?;
        let shared_now = self.shared_users(user);
        let changed: BTreeSet<OwnedUserId> = self
            .device_list_changes
            .iter()
            .filter(|(p, u)| *p > from && *p <= to && shared_now.contains(u))
            .map(|(_, u)| u.clone())
            .collect();
        Ok(get_key_changes::v3::Response::new(changed.into_iter().collect(), Vec::new()))
    }

    /// `GET /sync` for `user`'s `device` since `since`.
    pub fn sync(
        &mut self,
        user: &UserId,
        device: &ruma::DeviceId,
        since: Option<&str>,
    ) -> Result<sync_events::v3::Response, HsError> {
        let since = parse_token(since);
        let now = self.tick();
        let shared_now = self.shared_users(user);
        let changes: BTreeSet<OwnedUserId> = self
            .device_list_changes
            .iter()
            .filter(|(p, u)| since.is_some_and(|s| *p > s) && shared_now.contains(u))
            .map(|(_, u)| u.clone())
            .collect();
        let mut rooms = sync_events::v3::Rooms::new();
        for (id, room) in &self.rooms {
            if !room.members.contains(user) {
                continue;
            }
            let events: Vec<Raw<ruma::events::AnySyncTimelineEvent>> = room
                .timeline
                .iter()
                .filter(|(p, _)| since.is_none_or(|s| *p > s))
                .map(|(_, e)| raw(e))
                .collect::<Result<_, _>>()?;
            if !events.is_empty() || since.is_none() {
                let mut joined = sync_events::v3::JoinedRoom::new();
                joined.timeline.events = events;
                rooms.join.insert(id.clone(), joined);
            }
        }
        let state = self.device_mut(user, device)?;
        // Messages up to `since` were delivered and acknowledged by this sync.
        if let Some(s) = since {
            state.to_device.retain(|m| m.position > s);
        }
        let events: Vec<Raw<AnyToDeviceEvent>> =
            state.to_device.iter().map(|m| raw(&m.event)).collect::<Result<_, _>>()?;
        let previous = since.and_then(|s| state.snapshots.get(&s).cloned());
        let mut changed = changes;
        let mut left = Vec::new();
        if let Some(previous) = &previous {
            changed.extend(shared_now.difference(previous).cloned());
            left.extend(previous.difference(&shared_now).cloned());
        }
        state.snapshots.insert(now, shared_now);
        if let Some(s) = since {
            state.snapshots.retain(|p, _| *p >= s);
        }
        let mut response = sync_events::v3::Response::new(format!("s{now}"));
        response.to_device.events = events;
        response.device_lists.changed = changed.into_iter().collect();
        response.device_lists.left = left;
        response
            .device_one_time_keys_count
            .insert(OneTimeKeyAlgorithm::SignedCurve25519, uint(state.one_time_keys.len()));
        response.device_unused_fallback_key_types = Some(
            state.fallback_keys.iter().filter(|(_, (_, _, used))| !used).map(|(a, _)| a.as_str().into()).collect(),
        );
        response.rooms = rooms;
        Ok(response)
    }

    // -----------------------------------------------------------------------------------
    // Server-side key backups.

    /// `POST /room_keys/version`: a new backup version for `user` (also what a malicious
    /// server does to slip in a version of its own: `algorithm` is stored unchecked).
    pub fn create_backup_version(&mut self, user: &UserId, algorithm: Value) -> String {
        let backups = self.backups.entry(user.to_owned()).or_default();
        let version = backups.versions.keys().next_back().map_or(1, |v| v + 1);
        backups.versions.insert(version, BackupVersion { algorithm, keys: BTreeMap::new() });
        backups.etag += 1;
        version.to_string()
    }

    fn latest_backup(&self, user: &UserId) -> Option<(u64, &BackupVersion)> {
        self.backups.get(user).and_then(|b| b.versions.iter().next_back()).map(|(v, b)| (*v, b))
    }

    /// `GET /room_keys/version`: the newest backup version of `user`, as JSON
    /// (`{algorithm, auth_data, count, etag, version}`).
    pub fn latest_backup_version(&self, user: &UserId) -> Result<Value, HsError> {
        let (version, backup) =
            self.latest_backup(user).ok_or_else(|| HsError::new(404, "M_NOT_FOUND", "no backup"))?;
        let count: usize = backup.keys.values().map(BTreeMap::len).sum();
        let etag = self.backups.get(user).map_or(0, |b| b.etag);
        let mut body = backup.algorithm.clone();
        if let Value::Object(map) = &mut body {
            map.insert("count".into(), json!(count));
            map.insert("etag".into(), json!(etag.to_string()));
            map.insert("version".into(), json!(version.to_string()));
        }
        Ok(body)
    }

    /// `PUT /room_keys/keys?version=`: only into the newest version; a key replaces the stored
    /// one of its session only when it starts earlier.
    pub fn add_backup_keys(
        &mut self,
        user: &UserId,
        version: &str,
        rooms: BTreeMap<OwnedRoomId, RoomKeyBackup>,
    ) -> Result<(String, usize), HsError> {
        let latest = self.latest_backup(user).map(|(v, _)| v);
        if latest.is_none() || latest.map(|v| v.to_string()).as_deref() != Some(version) {
            return Err(HsError::new(
                403,
                "M_WRONG_ROOM_KEYS_VERSION",
                format!("version {version} is not the current one"),
            ));
        }
        let backups = self.backups.entry(user.to_owned()).or_default();
        let latest = latest.unwrap_or_default();
        let backup = backups.versions.entry(latest).or_default();
        let index = |v: &Value| v.get("first_message_index").and_then(Value::as_u64).unwrap_or(u64::MAX);
        for (room, sessions) in rooms {
            let stored = backup.keys.entry(room).or_default();
            for (session_id, data) in sessions.sessions {
                let data: Value = serde_json::from_str(data.json().get()).map_err(HsError::bad_json)?;
                if stored.get(&session_id).is_none_or(|old| index(&data) < index(old)) {
                    stored.insert(session_id, data);
                }
            }
        }
        backups.etag += 1;
        let count = backup.keys.values().map(BTreeMap::len).sum();
        Ok((backups.etag.to_string(), count))
    }

    /// `GET /room_keys/keys?version=`: every key of a version, as JSON (`{"rooms": …}`).
    pub fn backup_keys(&self, user: &UserId, version: &str) -> Result<Value, HsError> {
        let backup = self
            .backups
            .get(user)
            .and_then(|b| b.versions.iter().find(|(v, _)| v.to_string() == version))
            .map(|(_, b)| b)
            .ok_or_else(|| HsError::new(404, "M_NOT_FOUND", "no such backup version"))?;
        let rooms: serde_json::Map<String, Value> =
            backup.keys.iter().map(|(room, sessions)| (room.to_string(), json!({ "sessions": sessions }))).collect();
        Ok(json!({ "rooms": rooms }))
    }

    /// The stored keys of `user`'s backup `version`, to tamper with (a malicious server).
    pub fn backup_keys_mut(
        &mut self,
        user: &UserId,
        version: &str,
    ) -> Option<&mut BTreeMap<OwnedRoomId, BTreeMap<String, Value>>> {
        let backups = self.backups.get_mut(user)?;
        backups.versions.iter_mut().find(|(v, _)| v.to_string() == version).map(|(_, b)| &mut b.keys)
    }

    // -----------------------------------------------------------------------------------
    // The wire.

    /// Handles one HTTP request from `user`'s `device` (the access token is not checked: the
    /// caller says who it is). Unknown paths are `404 M_UNRECOGNIZED`.
    pub fn handle(
        &mut self,
        user: &UserId,
        device: &ruma::DeviceId,
        request: http::Request<Vec<u8>>,
    ) -> http::Response<Vec<u8>> {
        match self.dispatch(user, device, request) {
            Ok(response) => response,
            Err(error) => http::Response::builder()
                .status(error.status)
                .body(error.body())
                .unwrap_or_else(|_| http::Response::new(Vec::new())),
        }
    }

    fn dispatch(
        &mut self,
        user: &UserId,
        device: &ruma::DeviceId,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HsError> {
        let path = request.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix("/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device") {
            return self.dehydrated_device(user, rest, request);
        }
        let segments: Vec<String> =
            path.trim_start_matches("/_matrix/client/v3/").split('/').map(percent_decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let none: [&str; 0] = [];
        match segments.as_slice() {
            ["keys", "upload"] => {
                let r = upload_keys::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let response = self.upload_keys(user, device, r)?;
                to_http(response)
            }
            ["keys", "query"] => {
                let r = get_keys::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let response = self.query_keys_as(Some(user), r)?;
                to_http(response)
            }
            ["keys", "device_signing", "upload"] => {
                let body: Value = serde_json::from_slice(request.body()).map_err(HsError::bad_json)?;
                match self.upload_signing_keys(user, &body) {
                    Ok(()) => Ok(http::Response::new(b"{}".to_vec())),
                    Err(UiaError::AuthRequired(body)) => http::Response::builder()
                        .status(401)
                        .body(body.to_string().into_bytes())
                        .map_err(|e| HsError::new(500, "M_UNKNOWN", e.to_string())),
                    Err(UiaError::Refused(error)) => Err(error),
                }
            }
            ["keys", "claim"] => {
                let r = claim_keys::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let response = self.claim_keys(r)?;
                to_http(response)
            }
            ["keys", "changes"] => {
                let r =
                    get_key_changes::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let response = self.key_changes(user, r)?;
                to_http(response)
            }
            ["keys", "signatures", "upload"] => {
                let r =
                    upload_signatures::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let response = self.upload_signatures(user, r)?;
                to_http(response)
            }
            ["sendToDevice", event_type, txn_id] => {
                let args = [event_type.to_string(), txn_id.to_string()];
                let r = send_event_to_device::v3::Request::try_from_http_request(request, &args)
                    .map_err(HsError::bad_json)?;
                let response = self.send_to_device(user, device, r)?;
                to_http(response)
            }
            ["room_keys", "version"] if request.method() == http::Method::POST => {
                let r = create_backup_version::v3::Request::try_from_http_request(request, &none)
                    .map_err(HsError::bad_json)?;
                let algorithm: Value = serde_json::from_str(r.algorithm.json().get()).map_err(HsError::bad_json)?;
                let version = self.create_backup_version(user, algorithm);
                to_http(create_backup_version::v3::Response::new(version))
            }
            ["room_keys", "version"] => {
                get_latest_backup_info::v3::Request::try_from_http_request(request, &none)
                    .map_err(HsError::bad_json)?;
                let body = self.latest_backup_version(user)?;
                json_response(&body)
            }
            ["room_keys", "keys"] if request.method() == http::Method::PUT => {
                let r =
                    add_backup_keys::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let (etag, count) = self.add_backup_keys(user, &r.version, r.rooms)?;
                to_http(add_backup_keys::v3::Response::new(etag, uint(count)))
            }
            ["room_keys", "keys"] => {
                let r =
                    get_backup_keys::v3::Request::try_from_http_request(request, &none).map_err(HsError::bad_json)?;
                let body = self.backup_keys(user, &r.version)?;
                json_response(&body)
            }
            ["user", owner, "account_data", event_type] => {
                if *owner != user.as_str() {
                    return Err(HsError::new(403, "M_FORBIDDEN", "cannot access another user's account data"));
                }
                if request.method() == http::Method::PUT {
                    let content: Value = serde_json::from_slice(request.body()).map_err(HsError::bad_json)?;
                    if !content.is_object() {
                        return Err(HsError::new(400, "M_BAD_JSON", "account data content must be an object"));
                    }
                    self.set_global_account_data(user, event_type, content);
                    json_response(&serde_json::json!({}))
                } else {
                    match self.account_data.get(user).and_then(|d| d.get(*event_type)) {
                        Some(content) => json_response(content),
                        None => Err(HsError::new(404, "M_NOT_FOUND", "no account data of this type")),
                    }
                }
            }
            _ => Err(HsError::new(404, "M_UNRECOGNIZED", format!("unknown endpoint {path}"))),
        }
    }

    /// MSC3814: `PUT` (replaces the user's dehydrated device: the old one is deleted, the new
    /// one gets the keys uploaded with it), `GET`, and `POST {device_id}/events` (the device's
    /// to-device queue; a `next_batch` from an earlier answer drops what it delivered).
    fn dehydrated_device(
        &mut self,
        user: &UserId,
        rest: &str,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HsError> {
        let not_found = || HsError::new(404, "M_NOT_FOUND", "no dehydrated device");
        let body = || -> Result<Value, HsError> {
            if request.body().is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_slice(request.body()).map_err(HsError::bad_json)
            }
        };
        match (request.method().clone(), rest.trim_matches('/')) {
            (http::Method::PUT, "") => {
                let body = body()?;
                let field =
                    |name: &str| body.get(name).cloned().ok_or_else(|| HsError::bad_json(format!("missing {name}")));
                let device_id =
                    OwnedDeviceId::from(field("device_id")?.as_str().ok_or_else(|| HsError::bad_json("device_id"))?);
                let device_data = field("device_data")?;
                let device_keys = field("device_keys")?;
                if let Some((old, _)) = self.dehydrated.remove(user) {
                    if let Some(devices) = self.devices.get_mut(user) {
                        devices.remove(&old);
                    }
                }
                self.login(user, &device_id);
                let state = self.device_mut(user, &device_id)?;
                state.device_keys = Some(device_keys);
                for (id, key) in body.get("one_time_keys").and_then(Value::as_object).into_iter().flatten() {
                    state.one_time_keys.insert(id.clone(), key.clone());
                }
                for (id, key) in body.get("fallback_keys").and_then(Value::as_object).into_iter().flatten() {
                    let algorithm = id.split(':').next().unwrap_or_default().to_owned();
                    state.fallback_keys.insert(algorithm, (id.clone(), key.clone(), false));
                }
                self.dehydrated.insert(user.to_owned(), (device_id.clone(), device_data));
                let position = self.tick();
                self.device_list_changes.push((position, user.to_owned()));
                json_response(&serde_json::json!({"device_id": device_id}))
            }
            (http::Method::GET, "") => {
                let (device_id, device_data) = self.dehydrated.get(user).ok_or_else(not_found)?;
                json_response(&serde_json::json!({"device_id": device_id, "device_data": device_data}))
            }
            (http::Method::POST, path) => {
                let device_id = path.strip_suffix("/events").map(percent_decode).ok_or_else(not_found)?;
                if self.dehydrated.get(user).map(|(id, _)| id.as_str()) != Some(device_id.as_str()) {
                    return Err(not_found());
                }
                let since = body()?.get("next_batch").and_then(Value::as_str).and_then(|t| t.parse::<u64>().ok());
                let queue = self.to_device_queue(user, device_id.as_str().into()).ok_or_else(not_found)?;
                if let Some(since) = since {
                    queue.retain(|q| q.position > since);
                }
                let events: Vec<Value> = queue.iter().map(|q| q.event.clone()).collect();
                let next = queue.iter().map(|q| q.position).max().or(since).unwrap_or(0);
                json_response(&serde_json::json!({"events": events, "next_batch": next.to_string()}))
            }
            _ => Err(HsError::new(404, "M_UNRECOGNIZED", "unknown dehydrated device endpoint")),
        }
    }

    /// Sets (or, as a misbehaving server, forges) one of `user`'s global account data events.
    pub fn set_global_account_data(&mut self, user: &UserId, event_type: &str, content: Value) {
        self.account_data.entry(user.to_owned()).or_default().insert(event_type.to_owned(), content);
    }

    /// `user`'s global account data: event type → content (what a client keeps from the
    /// `account_data` of its syncs).
    pub fn global_account_data(&self, user: &UserId) -> BTreeMap<String, Value> {
        self.account_data.get(user).cloned().unwrap_or_default()
    }

    /// `GET /sync` on the wire: the JSON body a real homeserver returns.
    pub fn sync_json(
        &mut self,
        user: &UserId,
        device: &ruma::DeviceId,
        since: Option<&str>,
    ) -> Result<Vec<u8>, HsError> {
        let response = self.sync(user, device, since)?;
        Ok(to_http(response)?.into_body())
    }
}

fn json_response(body: &Value) -> Result<http::Response<Vec<u8>>, HsError> {
    let bytes = serde_json::to_vec(body).map_err(|e| HsError::new(500, "M_UNKNOWN", e.to_string()))?;
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(bytes)
        .map_err(|e| HsError::new(500, "M_UNKNOWN", e.to_string()))
}

fn to_http(response: impl OutgoingResponse) -> Result<http::Response<Vec<u8>>, HsError> {
    response.try_into_http_response::<Vec<u8>>().map_err(|e| HsError::new(500, "M_UNKNOWN", e.to_string()))
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(*h), hex(*l)) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            (Some(b), _, _) => {
                out.push(*b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
