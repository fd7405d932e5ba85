//! Set-up for the machine benchmarks (`benches/machine.rs`, and `ferrolm-ops` for callgrind):
//! ferrolm-machine's `OlmMachine` and matrix-sdk-crypto 0.18's, each on its own SQLite store
//! (ferrolm-store, matrix-sdk-sqlite), fed the **same** responses built from one fixture of
//! real devices.
//!
//! The fixture: [`USERS`] users with [`DEVICES_PER_USER`] devices each, every device a real
//! ferrolm account with its self-signed device keys and one signed one-time key. It is made
//! once and cached on disk beside criterion's results (`<target>/machine-fixture/`), so the
//! benchmark, `ferrolm-ops` and later runs read the same devices.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrolm::megolm as fm;
use ferrolm::olm as fo;
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_machine::ruma::api::IncomingResponse as _;
use ferrolm_machine::ruma::api::client::keys::{claim_keys, get_keys, upload_keys};
use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId};
use ferrolm_machine::{Env, IncomingResponse, OlmMachine, Request};
use ferrolm_store as fs;
use matrix_sdk_crypto::olm::{InboundGroupSession as SdkRoomKey, SenderData};
use matrix_sdk_crypto::store::CryptoStore;
use matrix_sdk_crypto::store::types::Changes as SdkChanges;
use matrix_sdk_crypto::types::EventEncryptionAlgorithm;
use matrix_sdk_crypto::types::requests::AnyOutgoingRequest;
use matrix_sdk_crypto::vodozemac;
use matrix_sdk_sqlite::SqliteCryptoStore;
use serde_json::{Map, Value, json};

use crate::store::{DEVICE_ID, STORE_KEY, USER_ID};

/// Users in the fixture (the keys query benchmark asks about all of them).
pub const USERS: usize = 2_000;
/// Devices per user.
pub const DEVICES_PER_USER: usize = 10;
/// Users a room key is shared with (the first ones of the fixture): 10,000 devices.
pub const SHARE_USERS: usize = 1_000;

/// One device of the fixture.
pub struct FixtureDevice {
    /// The device id.
    pub device_id: String,
    /// Its signed device keys, as `/keys/query` serves them.
    pub keys: Value,
    /// One signed `signed_curve25519` one-time key, as `/keys/claim` serves it.
    pub one_time_key: Value,
    /// The id of that key (`signed_curve25519:…`).
    pub one_time_key_id: String,
}

/// The fixture: users and their devices.
pub struct Fixture {
    /// The users, in order.
    pub users: Vec<OwnedUserId>,
    /// Each user's devices.
    pub devices: Vec<Vec<FixtureDevice>>,
}

/// `<target>` of the running benchmark (it runs as `<target>/release/deps/…` or
/// `<target>/release/ferrolm-ops`).
pub fn target_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    let release = exe.ancestors().find(|p| p.file_name().is_some_and(|n| n == "release"))?;
    Some(release.parent()?.to_path_buf())
}

impl Fixture {
    /// The fixture of `users` × `devices` devices: read from the cache, or made and cached.
    pub fn load(users: usize, devices: usize) -> Fixture {
        let cache = target_dir().map(|t| t.join("machine-fixture").join(format!("v1-{users}x{devices}.json")));
        if let Some(fixture) = cache.as_deref().and_then(|c| std::fs::read(c).ok()).and_then(|b| Self::parse(&b)) {
            return fixture;
        }
        let start = std::time::Instant::now();
        let fixture = Self::generate(users, devices);
        eprintln!("machine fixture: {users} users × {devices} devices made in {:.1?}", start.elapsed());
        if let Some(cache) = cache {
            let written = cache
                .parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|()| std::fs::write(&cache, fixture.to_json()));
            if written.is_err() {
                eprintln!("could not cache the machine fixture in {}", cache.display());
            }
        }
        fixture
    }

    fn generate(users: usize, devices: usize) -> Fixture {
        let user_ids: Vec<OwnedUserId> = (0..users).map(user).collect();
        let devices = user_ids
            .iter()
            .map(|user| {
                (0..devices)
                    .map(|d| {
                        let device_id = format!("DEVICE{d:02}");
                        let mut account = fo::Account::new();
                        let keys = ferrolm_machine::own_device::device_keys(&account, user.as_str(), &device_id)
                            .expect("signed device keys");
                        account.generate_one_time_keys(1);
                        let (key_id, key) = account.one_time_keys().into_iter().next().expect("one key");
                        let mut otk = Map::new();
                        otk.insert("key".into(), Value::from(key.to_base64()));
                        ferrolm_machine::signing::sign_json(&account, user.as_str(), &device_id, &mut otk)
                            .expect("signed");
                        FixtureDevice {
                            device_id,
                            keys: Value::Object(keys),
                            one_time_key: Value::Object(otk),
                            one_time_key_id: format!("signed_curve25519:{}", key_id.to_base64()),
                        }
                    })
                    .collect()
            })
            .collect();
        Fixture { users: user_ids, devices }
    }

    fn to_json(&self) -> Vec<u8> {
        let users: Vec<Value> = self
            .users
            .iter()
            .zip(&self.devices)
            .map(|(user, devices)| {
                let devices: Vec<Value> = devices
                    .iter()
                    .map(|d| json!({"device_id": d.device_id, "keys": d.keys, "otk": d.one_time_key, "otk_id": d.one_time_key_id}))
                    .collect();
                json!({"user_id": user, "devices": devices})
            })
            .collect();
        serde_json::to_vec(&users).expect("JSON")
    }

    fn parse(bytes: &[u8]) -> Option<Fixture> {
        let users: Vec<Value> = serde_json::from_slice(bytes).ok()?;
        let mut fixture = Fixture { users: Vec::new(), devices: Vec::new() };
        for u in users {
            fixture.users.push(OwnedUserId::try_from(u.get("user_id")?.as_str()?).ok()?);
            let devices = u
                .get("devices")?
                .as_array()?
                .iter()
                .map(|d| {
                    Some(FixtureDevice {
                        device_id: d.get("device_id")?.as_str()?.to_owned(),
                        keys: d.get("keys")?.clone(),
                        one_time_key: d.get("otk")?.clone(),
                        one_time_key_id: d.get("otk_id")?.as_str()?.to_owned(),
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            fixture.devices.push(devices);
        }
        Some(fixture)
    }

    /// The first `n` users.
    pub fn users(&self, n: usize) -> Vec<OwnedUserId> {
        self.users.iter().take(n).cloned().collect()
    }

    fn index(&self, user: &UserId) -> Option<usize> {
        self.users.iter().position(|u| u == user)
    }

    /// The `/keys/query` answer for `users` (users not in the fixture, like our own, get no
    /// devices).
    pub fn keys_query_response<'a>(&self, users: impl Iterator<Item = &'a UserId>) -> get_keys::v3::Response {
        let mut device_keys = Map::new();
        for user in users {
            let Some(i) = self.index(user) else { continue };
            let devices: Map<String, Value> =
                self.devices[i].iter().map(|d| (d.device_id.clone(), d.keys.clone())).collect();
            device_keys.insert(user.to_string(), Value::Object(devices));
        }
        let body = serde_json::to_vec(&json!({"device_keys": device_keys, "failures": {}})).expect("JSON");
        get_keys::v3::Response::try_from_http_response(http::Response::new(body)).expect("a keys query response")
    }

    /// The `/keys/claim` answer for every device of `users`: one signed one-time key each.
    pub fn claim_response(&self, users: &[OwnedUserId]) -> claim_keys::v3::Response {
        let mut one_time_keys = Map::new();
        for user in users {
            let Some(i) = self.index(user) else { continue };
            let devices: Map<String, Value> = self.devices[i]
                .iter()
                .map(|d| (d.device_id.clone(), json!({ d.one_time_key_id.clone(): d.one_time_key })))
                .collect();
            one_time_keys.insert(user.to_string(), Value::Object(devices));
        }
        let body = serde_json::to_vec(&json!({"one_time_keys": one_time_keys, "failures": {}})).expect("JSON");
        claim_keys::v3::Response::try_from_http_response(http::Response::new(body)).expect("a keys claim response")
    }

    /// The identity keys of user `u`'s device `d`.
    pub fn identity_keys(&self, u: usize, d: usize) -> (Curve25519PublicKey, Ed25519PublicKey) {
        let device = &self.devices[u][d];
        let key = |name: &str| {
            device.keys["keys"][format!("{name}:{}", device.device_id)].as_str().expect("a key").to_owned()
        };
        (
            Curve25519PublicKey::from_base64(&key("curve25519")).expect("a Curve25519 key"),
            Ed25519PublicKey::from_base64(&key("ed25519")).expect("an Ed25519 key"),
        )
    }
}

/// The fixture's user `i`.
pub fn user(i: usize) -> OwnedUserId {
    OwnedUserId::try_from(format!("@user{i:04}:example.org")).expect("a user id")
}

/// The benchmark's own user.
pub fn own_user() -> OwnedUserId {
    OwnedUserId::try_from(USER_ID).expect("a user id")
}

/// The benchmark's own device.
pub fn own_device() -> OwnedDeviceId {
    OwnedDeviceId::from(DEVICE_ID)
}

/// The room of share `i`.
pub fn room(i: usize) -> OwnedRoomId {
    OwnedRoomId::try_from(format!("!room{i}:example.org")).expect("a room id")
}

/// Copies the database files of a closed store (not SQLite's shared-memory index, which the
/// next opening rebuilds) from `from` to `to`.
pub fn copy_store(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("a folder") {
        let entry = entry.expect("an entry");
        let name = entry.file_name();
        if entry.metadata().expect("metadata").is_file() && !name.to_string_lossy().ends_with("-shm") {
            std::fs::copy(entry.path(), to.join(&name)).expect("copied");
        }
    }
}

/// An upload answer: the server holds `count` one-time keys.
fn upload_response(count: u32) -> upload_keys::v3::Response {
    upload_keys::v3::Response::new(BTreeMap::from([(OneTimeKeyAlgorithm::SignedCurve25519, UInt::from(count))]))
}

// ---------------------------------------------------------------------------------------
// ferrolm

/// ferrolm's machine on an SQLite store.
pub type FerrolmMachine = OlmMachine<fs::SqliteBackend>;

/// The file name of the ferrolm store in its folder.
pub const FERROLM_FILE: &str = crate::store::FERROLM_FILE;

/// Opens (or creates) ferrolm's machine on the store in `dir`.
pub fn ferrolm_open(dir: &Path) -> FerrolmMachine {
    let path = dir.join(FERROLM_FILE);
    let secret = fs::StoreSecret::key(STORE_KEY);
    let store = if path.exists() {
        fs::SqliteStore::open_file(&path, &secret)
    } else {
        fs::SqliteStore::create_file(&path, &secret, fs::KdfParams::default())
    };
    OlmMachine::open(own_user(), own_device(), store.expect("the store opens"), Env::system()).expect("the machine")
}

/// Tracks `users` and returns the keys queries due with their answers, not yet applied (the
/// own keys upload is answered here).
pub fn ferrolm_queries(
    machine: &mut FerrolmMachine,
    fixture: &Fixture,
    users: &[OwnedUserId],
) -> Vec<(String, IncomingResponse)> {
    machine.update_tracked_users(users).expect("tracked");
    let mut answers = Vec::new();
    for request in machine.outgoing_requests().expect("requests") {
        match &request.request {
            Request::KeysUpload(_) => {
                machine
                    .mark_request_as_sent(&request.request_id, IncomingResponse::KeysUpload(upload_response(50)))
                    .expect("applied");
            }
            Request::KeysQuery(query) => {
                let response = fixture.keys_query_response(query.device_keys.keys().map(|u| &**u));
                answers.push((request.request_id.clone(), IncomingResponse::KeysQuery(response)));
            }
            _ => {}
        }
    }
    answers
}

/// Applies the answers of [`ferrolm_queries`].
pub fn ferrolm_apply(machine: &mut FerrolmMachine, answers: Vec<(String, IncomingResponse)>) {
    for (id, response) in answers {
        machine.mark_request_as_sent(&id, response).expect("applied");
    }
}

/// Opens sessions with every device of `users` (claim answered from the fixture).
pub fn ferrolm_claim(machine: &mut FerrolmMachine, users: &[OwnedUserId], claim: &claim_keys::v3::Response) {
    let request = machine.get_missing_sessions(users).expect("claim").expect("sessions are missing");
    let outcome =
        machine.mark_request_as_sent(&request.request_id, IncomingResponse::KeysClaim(claim.clone())).expect("applied");
    assert_eq!(outcome.sessions_created, users.len() * DEVICES_PER_USER, "{:?}", outcome.failed_claims.first());
}

/// Shares a room key with every device of `users`; returns the to-device request ids.
pub fn ferrolm_share(machine: &mut FerrolmMachine, room: &RoomId, users: &[OwnedUserId]) -> Vec<String> {
    let share = machine.share_room_key(room, users, Default::default()).expect("shared");
    assert_eq!(share.shared_with.len(), users.len() * DEVICES_PER_USER);
    share.request_ids
}

/// Reports the to-device requests `ids` sent.
pub fn ferrolm_sent(machine: &mut FerrolmMachine, ids: &[String]) {
    use ferrolm_machine::ruma::api::client::to_device::send_event_to_device;
    for id in ids {
        machine
            .mark_request_as_sent(id, IncomingResponse::ToDevice(send_event_to_device::v3::Response::new()))
            .expect("applied");
    }
}

// ---------------------------------------------------------------------------------------
// matrix-sdk-crypto

/// matrix-sdk-crypto's machine.
pub type SdkMachine = matrix_sdk_crypto::OlmMachine;

/// Opens (or creates) matrix-sdk-crypto's machine on the matrix-sdk-sqlite store in `dir`;
/// returns the store too (a clone of the same pool).
pub async fn sdk_open(dir: &Path) -> (SdkMachine, SqliteCryptoStore) {
    let store = SqliteCryptoStore::open_with_key(dir, Some(&STORE_KEY)).await.expect("the store opens");
    let machine =
        SdkMachine::with_store(&own_user(), &own_device(), store.clone(), None).await.expect("the machine opens");
    (machine, store)
}

/// Tracks `users` and returns the keys queries due with their answers, not yet applied (the
/// own keys upload is answered here).
pub async fn sdk_queries(
    machine: &SdkMachine,
    fixture: &Fixture,
    users: &[OwnedUserId],
) -> Vec<(ferrolm_machine::ruma::OwnedTransactionId, get_keys::v3::Response)> {
    machine.update_tracked_users(users.iter().map(|u| &**u)).await.expect("tracked");
    let mut answers = Vec::new();
    for request in machine.outgoing_requests().await.expect("requests") {
        match request.request() {
            AnyOutgoingRequest::KeysUpload(_) => {
                machine.mark_request_as_sent(request.request_id(), &upload_response(50)).await.expect("applied");
            }
            AnyOutgoingRequest::KeysQuery(query) => {
                let response = fixture.keys_query_response(query.device_keys.keys().map(|u| &**u));
                answers.push((request.request_id().to_owned(), response));
            }
            _ => {}
        }
    }
    answers
}

/// Applies the answers of [`sdk_queries`].
pub async fn sdk_apply(
    machine: &SdkMachine,
    answers: Vec<(ferrolm_machine::ruma::OwnedTransactionId, get_keys::v3::Response)>,
) {
    for (id, response) in answers {
        machine.mark_request_as_sent(&id, &response).await.expect("applied");
    }
}

/// Opens sessions with every device of `users` (claim answered from the fixture).
pub async fn sdk_claim(machine: &SdkMachine, users: &[OwnedUserId], claim: &claim_keys::v3::Response) {
    let (id, _) =
        machine.get_missing_sessions(users.iter().map(|u| &**u)).await.expect("claim").expect("sessions are missing");
    machine.mark_request_as_sent(&id, claim).await.expect("applied");
}

/// Shares a room key with every device of `users`; returns the to-device request ids.
pub async fn sdk_share(
    machine: &SdkMachine,
    room: &RoomId,
    users: &[OwnedUserId],
) -> Vec<ferrolm_machine::ruma::OwnedTransactionId> {
    let requests = machine
        .share_room_key(room, users.iter().map(|u| &**u), matrix_sdk_crypto::EncryptionSettings::default())
        .await
        .expect("shared");
    let messages: usize = requests.iter().map(|r| r.message_count()).sum();
    assert_eq!(messages, users.len() * DEVICES_PER_USER);
    requests.iter().map(|r| r.txn_id.clone()).collect()
}

/// Reports the to-device requests `ids` sent.
pub async fn sdk_sent(machine: &SdkMachine, ids: &[ferrolm_machine::ruma::OwnedTransactionId]) {
    let response = ferrolm_machine::ruma::api::client::to_device::send_event_to_device::v3::Response::new();
    for id in ids {
        machine.mark_request_as_sent(id, &response).await.expect("applied");
    }
}

// ---------------------------------------------------------------------------------------
// Room events

/// One Megolm-encrypted room event of the fixture's user 0, device 0, and its room key.
pub struct RoomEvent {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The `m.room.encrypted` event as a client receives it in a sync.
    pub event: String,
    /// The Megolm message inside (base64).
    pub ciphertext: String,
    /// The signed session key.
    pub session_key: Vec<u8>,
    /// The sender's Curve25519 key.
    pub sender_key: Curve25519PublicKey,
    /// The sender's Ed25519 key.
    pub signing_key: Ed25519PublicKey,
}

impl RoomEvent {
    /// A text message of user 0's device 0 in a room of its own.
    pub fn new(fixture: &Fixture) -> RoomEvent {
        let room_id = OwnedRoomId::try_from("!decrypt:example.org").expect("a room id");
        let (sender_key, signing_key) = fixture.identity_keys(0, 0);
        let mut session = fm::GroupSession::new(fm::SessionConfig::version_1());
        let session_key = session.session_key().to_bytes().to_vec();
        let plaintext = json!({
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "A message of a typical length, about sixty bytes long."},
            "room_id": room_id,
        });
        let ciphertext = session.encrypt(&serde_json::to_vec(&plaintext).expect("JSON")).to_base64();
        let event = json!({
            "type": "m.room.encrypted",
            "event_id": "$decrypt:example.org",
            "sender": fixture.users[0],
            "origin_server_ts": 1_700_000_000_000u64,
            "room_id": room_id,
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "sender_key": sender_key.to_base64(),
                "ciphertext": ciphertext,
                "session_id": session.session_id().to_base64(),
                "device_id": fixture.devices[0][0].device_id,
            },
        });
        RoomEvent { room_id, event: event.to_string(), ciphertext, session_key, sender_key, signing_key }
    }

    /// The core's inbound session for the key, as ferrolm-store keeps it.
    pub fn ferrolm_session(&self) -> fm::InboundGroupSession {
        let key = fm::SessionKey::from_bytes(&self.session_key).expect("a session key");
        fm::InboundGroupSession::new(&key, fm::SessionConfig::version_1())
    }

    /// The event as ferrolm's machine takes it.
    pub fn ferrolm_event(&self) -> Raw<AnySyncTimelineEvent> {
        Raw::from_json_string(self.event.clone()).expect("JSON")
    }

    /// The event as matrix-sdk-crypto's machine takes it.
    pub fn sdk_event(&self) -> Raw<matrix_sdk_crypto::types::events::room::encrypted::EncryptedEvent> {
        Raw::from_json_string(self.event.clone()).expect("JSON")
    }

    /// Saves the room key into ferrolm's store in `dir` (the machine closed).
    pub fn ferrolm_save(&self, dir: &Path) {
        let mut store =
            fs::SqliteStore::open_file(dir.join(FERROLM_FILE), &fs::StoreSecret::key(STORE_KEY)).expect("opens");
        let record = fs::InboundGroupSessionRecord {
            room_id: fs::RoomId::new(self.room_id.as_str()),
            session: self.ferrolm_session(),
            sender_key: self.sender_key,
            claimed_signing_key: Some(self.signing_key),
            source: fs::RoomKeySource::Direct,
            backed_up: false,
            shared_history: false,
        };
        store.save_changes(&fs::Changes { inbound_group_sessions: vec![record], ..Default::default() }).expect("saved");
    }

    /// Saves the room key into matrix-sdk-sqlite's store, as matrix-sdk-crypto makes it from
    /// an `m.room_key`.
    pub async fn sdk_save(&self, store: &SqliteCryptoStore) {
        let key = vodozemac::megolm::SessionKey::from_bytes(&self.session_key).expect("a session key");
        let session = SdkRoomKey::new(
            vodozemac::Curve25519PublicKey::from_bytes(self.sender_key.to_bytes()),
            vodozemac::Ed25519PublicKey::from_slice(self.signing_key.as_bytes()).expect("an Ed25519 key"),
            &self.room_id,
            &key,
            SenderData::unknown(),
            None,
            EventEncryptionAlgorithm::MegolmV1AesSha2,
            None,
            false,
        )
        .expect("a Megolm v1 session");
        store
            .save_changes(SdkChanges { inbound_group_sessions: vec![session], ..SdkChanges::default() })
            .await
            .expect("saved");
    }
}
