//! The machine targets' fixture: four devices (Alice, Bob, and Carol's two) that met through
//! the in-process test homeserver, from fixed seeds and a fixed clock, built once per process.
//!
//! Bob is the device under test. He has a real Olm session with Alice (both ways, so Alice
//! sends normal messages), Alice's room key for a room, and knows Carol's two devices without
//! a session with either. His store is kept as a snapshot of rows; each input reopens a fresh
//! machine on a copy of them (a few dozen rows, the store key unwrapped with HKDF: cheap), so
//! inputs never see each other's effects. The Alice side (her Olm session to Bob, her account,
//! her outbound Megolm session) is kept as core objects, so a target can encrypt fuzzed
//! plaintexts that Bob's machine really decrypts and must then validate.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ferrolm::megolm::GroupSession;
use ferrolm::olm::{Account, MessageType, OlmMessage, Session, SessionConfig};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey, base64_decode, base64_encode};
use ferrolm_machine::ruma::api::IncomingResponse as _;
use ferrolm_machine::ruma::api::client::sync::sync_events;
use ferrolm_machine::ruma::events::{AnySyncTimelineEvent, AnyToDeviceEvent};
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId};
use ferrolm_machine::{
    BackupDecryptionKey, BackupInfo, DecryptedToDeviceEvent, EncryptionSettings, ManualClock, OlmMachine, RequestKind,
    RoomKeyOutcome, SenderDeviceSource, SyncChanges, SyncOutcome, ToDeviceOutcome,
};
use ferrolm_store::{Backend, Batch, MemoryBackend, Op, Table};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{self, TestDevice};
use serde_json::{Value, json};

use crate::FixedRng;

/// The machine type of the targets.
pub type Machine = OlmMachine<MemoryBackend>;

/// A store's rows, to reopen a machine on a fresh copy.
pub struct Snapshot {
    rows: Vec<(Table, Vec<u8>, Vec<u8>)>,
    user: OwnedUserId,
    device: OwnedDeviceId,
    now_ms: u64,
}

impl Snapshot {
    fn take(machine: &Machine, now_ms: u64) -> Self {
        let backend = machine.store().backend();
        let rows = Table::ALL
            .iter()
            .flat_map(|table| backend.rows(*table).into_iter().map(move |(k, v)| (*table, k, v)))
            .collect();
        Self { rows, user: machine.user_id().to_owned(), device: machine.device_id().to_owned(), now_ms }
    }

    /// A machine on a fresh copy of the rows, with a fixed clock and seed.
    pub fn open(&self) -> Machine {
        let mut backend = MemoryBackend::new();
        let ops = self.rows.iter().map(|(table, key, value)| Op::Put {
            table: *table,
            key: key.clone(),
            value: value.clone(),
        });
        backend.commit(&Batch { conditions: Vec::new(), ops: ops.collect() }).expect("memory commit");
        let store = driver::memory_store(backend).expect("snapshot store opens");
        let clock = ManualClock::new(self.now_ms);
        OlmMachine::open(self.user.clone(), self.device.clone(), store, driver::test_env(99, &clock)).expect("machine")
    }
}

/// Everything the machine targets share.
pub struct MachineFixture {
    /// Bob, who has everything.
    pub bob: Snapshot,
    /// Bob with Alice and Carol due for a keys query.
    pub bob_dirty: Snapshot,
    pub alice_user: OwnedUserId,
    pub alice_device: OwnedDeviceId,
    pub alice_curve: Curve25519PublicKey,
    pub alice_ed: Ed25519PublicKey,
    pub bob_user: OwnedUserId,
    pub bob_device: OwnedDeviceId,
    pub bob_curve: Curve25519PublicKey,
    pub bob_ed: Ed25519PublicKey,
    pub carol_user: OwnedUserId,
    /// Carol's devices: id, Curve25519 key, Ed25519 key.
    pub carol_devices: Vec<(OwnedDeviceId, Curve25519PublicKey, Ed25519PublicKey)>,
    pub room_id: OwnedRoomId,
    /// Alice's Olm session with Bob, in the state Bob's snapshot expects next.
    pub alice_session: Session,
    /// Alice's account (to open new sessions with Bob).
    pub alice_account: Account,
    /// One of Bob's one-time keys nobody claimed yet.
    pub bob_one_time_key: Curve25519PublicKey,
    /// Alice's outbound Megolm session of the room, at the index Bob's snapshot has not seen.
    pub alice_megolm: GroupSession,
    /// The session id of `alice_megolm`.
    pub megolm_session_id: String,
    /// Two genuine to-device events from Alice to Bob, as synced: the first uses the index
    /// `alice_session` encrypts at next, the second the index after.
    pub genuine_to_device: [String; 2],
    /// The plaintext of the first genuine to-device event.
    pub genuine_plaintext: String,
    /// Genuine room events from Alice (indices 0, 1, 2 of `alice_megolm`).
    pub genuine_room_events: Vec<String>,
    /// A real sync response body for Bob holding the two genuine to-device events.
    pub sync_body: Vec<u8>,
    /// The homeserver's answer to Bob's keys query (from `bob_dirty`).
    pub query_body: Vec<u8>,
    /// The homeserver's answer to Bob's claim of Carol's devices.
    pub claim_body: Vec<u8>,
}

const NOW_MS: u64 = 1_700_000_000_000;

fn json_of(raw: &Raw<AnyToDeviceEvent>) -> String {
    raw.json().get().to_owned()
}

/// The fixture, built once.
pub fn machine_fixture() -> &'static MachineFixture {
    static FIXTURE: OnceLock<MachineFixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn build() -> MachineFixture {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:fuzz.test", "ALICEDEV", 1, NOW_MS).expect("alice");
    let mut bob = TestDevice::new(&mut hs, "@bob:fuzz.test", "BOBDEV", 2, NOW_MS).expect("bob");
    let mut carol1 = TestDevice::new(&mut hs, "@carol:fuzz.test", "CAROL1", 3, NOW_MS).expect("carol");
    let mut carol2 = TestDevice::new(&mut hs, "@carol:fuzz.test", "CAROL2", 4, NOW_MS).expect("carol");
    let room = hs.create_room(alice.machine.user_id()).expect("room");
    let users: Vec<OwnedUserId> = [&alice, &bob, &carol1].iter().map(|d| d.machine.user_id().to_owned()).collect();
    for user in &users {
        hs.join(&room, user);
    }
    for d in [&mut alice, &mut bob, &mut carol1, &mut carol2] {
        d.settle(&mut hs, 1).expect("settle");
    }
    for d in [&mut alice, &mut bob, &mut carol1, &mut carol2] {
        d.machine.update_tracked_users(&users).expect("track");
        d.settle(&mut hs, 2).expect("settle");
    }
    let (alice_user, alice_device) = (alice.machine.user_id().to_owned(), alice.machine.device_id().to_owned());
    let (bob_user, bob_device) = (bob.machine.user_id().to_owned(), bob.machine.device_id().to_owned());
    let carol_user = carol1.machine.user_id().to_owned();
    assert_eq!(bob.machine.devices(&carol_user).expect("devices").len(), 2, "Bob knows Carol's devices");

    // Alice opens a session with Bob; Bob answers, so Alice's next messages are normal ones.
    let claim = alice.machine.get_missing_sessions(&[bob_user.clone()]).expect("claim").expect("a session is missing");
    driver::send(&mut hs, &mut alice.machine, &claim).expect("claim sent");
    let to_bob = (bob_user.clone(), bob_device.clone());
    let to_alice = (alice_user.clone(), alice_device.clone());
    alice.machine.encrypt_to_device(&[to_bob.clone()], "m.fuzz.hello", &json!({"n": 0})).expect("encrypt");
    driver::run_requests(&mut hs, &mut alice.machine).expect("send");
    let got = driver::sync(&mut hs, &mut bob.machine).expect("sync");
    assert!(matches!(got.to_device.as_slice(), [ToDeviceOutcome::Decrypted(_)]), "{got:?}");
    bob.machine.encrypt_to_device(&[to_alice], "m.fuzz.reply", &json!({"n": 0})).expect("encrypt");
    driver::run_requests(&mut hs, &mut bob.machine).expect("send");
    driver::sync(&mut hs, &mut alice.machine).expect("sync");

    // Alice shares the room key; Bob stores it.
    alice.machine.share_room_key(&room, &hs.members(&room), EncryptionSettings::default()).expect("share");
    driver::run_requests(&mut hs, &mut alice.machine).expect("send");
    let got = driver::sync(&mut hs, &mut bob.machine).expect("sync");
    assert!(matches!(got.room_keys.as_slice(), [RoomKeyOutcome::Accepted(_)]), "{got:?}");
    driver::run_requests(&mut hs, &mut bob.machine).expect("quiet");

    let bob_snapshot = Snapshot::take(&bob.machine, NOW_MS);
    let alice_keys = alice.machine.identity_keys();
    let bob_keys = bob.machine.identity_keys();
    let carol_devices = [&carol1, &carol2]
        .iter()
        .map(|d| {
            let keys = d.machine.identity_keys();
            (d.machine.device_id().to_owned(), keys.curve25519, keys.ed25519)
        })
        .collect();

    // Alice's side, in the state Bob's snapshot expects next. Her session is mid-chain (the
    // room key went over it after Bob's answer), so encrypting with a copy draws no new ratchet
    // key: a fuzzed message takes the index of the first genuine event below, and the second
    // still decrypts after it.
    let alice_store = alice.machine.store();
    let sessions = alice_store.olm_sessions(&bob_keys.curve25519).expect("sessions");
    assert_eq!(sessions.len(), 1);
    let alice_session = sessions[0].session.clone();
    let alice_account = alice_store.account().expect("account").expect("an account").account;
    let store_room = ferrolm_store::RoomId::from(room.as_str());
    let outbound = alice_store.outbound_group_session(&store_room).expect("outbound").expect("shared");
    let alice_megolm = outbound.session.clone();
    let megolm_session_id = outbound.session_id();
    let (_, otk) = hs.one_time_keys(&bob_user, &bob_device).into_iter().next().expect("Bob has one-time keys left");
    let bob_one_time_key =
        Curve25519PublicKey::from_base64(otk.get("key").and_then(Value::as_str).expect("key")).expect("valid key");

    // Two genuine to-device events, and the sync that carries them.
    for n in 1..=2 {
        alice.machine.encrypt_to_device(&[to_bob.clone()], "m.fuzz.genuine", &json!({"n": n})).expect("encrypt");
        driver::run_requests(&mut hs, &mut alice.machine).expect("send");
    }
    let sync_body =
        hs.sync_json(&bob_user, &bob_device, bob.machine.sync_token().expect("token").as_deref()).expect("sync");
    let response =
        sync_events::v3::Response::try_from_http_response(http::Response::new(sync_body.clone())).expect("sync parses");
    let events: Vec<String> = response.to_device.events.iter().map(json_of).collect();
    let genuine_to_device: [String; 2] = events.try_into().expect("two genuine events");
    let genuine_plaintext = olm_plaintext(&bob.machine, &genuine_to_device[0], &alice_keys.curve25519, &bob_keys);

    // Genuine room events.
    let genuine_room_events = (0..3)
        .map(|i| {
            let content = alice
                .machine
                .encrypt_room_event(
                    &room,
                    "m.room.message",
                    &json!({"msgtype": "m.text", "body": format!("genuine {i}")}),
                )
                .expect("encrypt");
            room_event(&format!("$genuine{i}"), alice_user.as_str(), content)
        })
        .collect();

    // Bob with Alice and Carol due for a query, and the server's answer to it.
    let mut dirty = bob_snapshot.open();
    dirty
        .receive_sync_changes(SyncChanges {
            changed_devices: vec![alice_user.clone(), carol_user.clone()],
            next_batch: bob.machine.sync_token().expect("token").unwrap_or_default(),
            ..Default::default()
        })
        .expect("dirty");
    let bob_dirty = Snapshot::take(&dirty, NOW_MS);
    let mut again = bob_dirty.open();
    let requests = again.outgoing_requests().expect("requests");
    let query = requests.iter().find(|r| r.kind() == RequestKind::KeysQuery).expect("a keys query");
    let query_body = answer(&mut hs, &again, query);

    let mut again = bob_snapshot.open();
    let claim =
        again.get_missing_sessions(&[carol_user.clone()]).expect("claim").expect("Carol's sessions are missing");
    let claim_body = answer(&mut hs, &again, &claim);

    MachineFixture {
        bob: bob_snapshot,
        bob_dirty,
        alice_user,
        alice_device,
        alice_curve: alice_keys.curve25519,
        alice_ed: alice_keys.ed25519,
        bob_user,
        bob_device,
        bob_curve: bob_keys.curve25519,
        bob_ed: bob_keys.ed25519,
        carol_user,
        carol_devices,
        room_id: room,
        alice_session,
        alice_account,
        bob_one_time_key,
        alice_megolm,
        megolm_session_id,
        genuine_to_device,
        genuine_plaintext,
        genuine_room_events,
        sync_body,
        query_body,
        claim_body,
    }
}

fn answer(hs: &mut Homeserver, machine: &Machine, request: &ferrolm_machine::OutgoingRequest) -> Vec<u8> {
    let http = request.to_http_request("https://fuzz.test", "token").expect("serializes");
    let response = hs.handle(machine.user_id(), machine.device_id(), http);
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    response.into_body()
}

/// The plaintext of a genuine Olm event, decrypted with a copy of Bob's session.
fn olm_plaintext(
    bob: &Machine,
    event: &str,
    alice_curve: &Curve25519PublicKey,
    bob_keys: &ferrolm::olm::IdentityKeys,
) -> String {
    let event: Value = serde_json::from_str(event).expect("json");
    let entry = &event["content"]["ciphertext"][bob_keys.curve25519.to_base64()];
    let kind = MessageType::try_from(entry["type"].as_u64().expect("type")).expect("type");
    let message = OlmMessage::from_parts(kind, entry["body"].as_str().expect("body")).expect("message");
    for record in bob.store().olm_sessions(alice_curve).expect("sessions") {
        let mut session = record.session.clone();
        if let Ok(plaintext) = session.decrypt(&message) {
            return String::from_utf8(plaintext).expect("utf-8");
        }
    }
    panic!("no session of Bob decrypts the genuine event");
}

/// An `m.room.encrypted` room event from its content.
pub fn room_event(event_id: &str, sender: &str, content: Value) -> String {
    json!({
        "type": "m.room.encrypted",
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000u64,
        "content": content,
    })
    .to_string()
}

impl MachineFixture {
    /// An Olm-encrypted to-device event from Alice to Bob carrying `message`.
    pub fn olm_event(&self, message: &OlmMessage) -> String {
        let (kind, body) = message.to_parts();
        json!({
            "type": "m.room.encrypted",
            "sender": self.alice_user,
            "content": {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": self.alice_curve.to_base64(),
                "ciphertext": { self.bob_curve.to_base64(): { "type": kind as u8, "body": body } },
            },
        })
        .to_string()
    }

    /// `plaintext` encrypted with Alice's established session (a normal message).
    pub fn encrypt_normal(&self, plaintext: &[u8]) -> String {
        let mut session = self.alice_session.clone();
        self.olm_event(&session.encrypt_with_rng(plaintext, &mut FixedRng::new(5)))
    }

    /// `plaintext` in a pre-key message of a new session from Alice's account to Bob's unused
    /// one-time key.
    pub fn encrypt_pre_key(&self, plaintext: &[u8]) -> String {
        let mut rng = FixedRng::new(6);
        let mut session = self
            .alice_account
            .create_outbound_session_with_rng(
                SessionConfig::version_1(),
                self.bob_curve,
                self.bob_one_time_key,
                &mut rng,
            )
            .expect("valid keys");
        self.olm_event(&session.encrypt_with_rng(plaintext, &mut rng))
    }

    /// A to-device event from Alice whose Olm body is `body`'s bytes (base64-encoded).
    pub fn olm_event_with_body(&self, kind: u8, body: &[u8]) -> String {
        json!({
            "type": "m.room.encrypted",
            "sender": self.alice_user,
            "content": {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": self.alice_curve.to_base64(),
                "ciphertext": { self.bob_curve.to_base64(): { "type": kind, "body": base64_encode(body) } },
            },
        })
        .to_string()
    }

    /// The Olm body (base64) of a genuine to-device event.
    pub fn olm_body(&self, event: &str) -> String {
        let event: Value = serde_json::from_str(event).expect("json");
        event["content"]["ciphertext"][self.bob_curve.to_base64()]["body"].as_str().expect("body").to_owned()
    }

    /// The Olm body bytes of a genuine to-device event.
    pub fn olm_body_bytes(&self, event: &str) -> Vec<u8> {
        base64_decode(&self.olm_body(event)).expect("base64")
    }

    /// A room event from Alice with `plaintext` encrypted by her Megolm session (index 0).
    pub fn encrypt_room_plaintext(&self, event_id: &str, plaintext: &[u8]) -> String {
        let mut session = self.alice_megolm.clone();
        let message = session.encrypt(plaintext);
        self.room_event_with_ciphertext(event_id, &message.to_base64())
    }

    /// A room event from Alice with this ciphertext and the real session id.
    pub fn room_event_with_ciphertext(&self, event_id: &str, ciphertext: &str) -> String {
        room_event(
            event_id,
            self.alice_user.as_str(),
            json!({
                "algorithm": "m.megolm.v1.aes-sha2",
                "sender_key": self.alice_curve.to_base64(),
                "ciphertext": ciphertext,
                "session_id": self.megolm_session_id,
                "device_id": self.alice_device,
            }),
        )
    }

    /// Every decrypted to-device event came over Alice's Olm key (Bob's only peer) and names
    /// Alice's known device and keys; every accepted room key came from her.
    pub fn check_sync_outcome(&self, machine: &Machine, outcome: &SyncOutcome) {
        for result in &outcome.to_device {
            if let ToDeviceOutcome::Decrypted(event) = result {
                self.check_decrypted(event);
            }
        }
        for key in &outcome.room_keys {
            if let RoomKeyOutcome::Accepted(info) = key {
                assert_eq!(info.sender, self.alice_user, "a room key accepted from someone else");
                assert_eq!(info.sender_key, self.alice_curve, "a room key accepted over another key");
                let stored = machine
                    .store()
                    .inbound_group_session(&ferrolm_store::RoomId::from(info.room_id.as_str()), &info.session_id)
                    .expect("store")
                    .expect("an accepted room key is stored");
                assert_eq!(stored.sender_key, self.alice_curve);
                assert_eq!(stored.claimed_signing_key, Some(self.alice_ed));
            }
        }
    }

    /// A decrypted event is Alice's, from her known device, with her keys.
    pub fn check_decrypted(&self, event: &DecryptedToDeviceEvent) {
        assert_eq!(event.sender, self.alice_user, "decrypted from an impostor sender");
        assert_eq!(event.sender_curve25519_key, self.alice_curve);
        assert_eq!(event.sender_ed25519_key, self.alice_ed, "a claimed Ed25519 key that is not the device's");
        assert_eq!(event.source, SenderDeviceSource::KnownDevice);
        assert_eq!(event.sender_device.as_ref(), Some(&self.alice_device));
    }

    /// Every stored device of `users` has keys signed by itself, listed under its own user and
    /// device id; Alice's and Carol's devices kept the keys they had; Bob's own keys are his.
    pub fn check_devices(&self, machine: &Machine, users: &[OwnedUserId]) {
        for user in users {
            for record in machine.store().devices(&ferrolm_store::UserId::new(user.as_str())).expect("store") {
                let Ok(object) = serde_json::from_slice::<serde_json::Map<String, Value>>(&record.device_keys) else {
                    continue; // not written by the machine's validation (no keys): not served
                };
                let device_id = record.device_id.as_str();
                assert_eq!(
                    object.get("user_id").and_then(Value::as_str),
                    Some(user.as_str()),
                    "listed under another user"
                );
                assert_eq!(object.get("device_id").and_then(Value::as_str), Some(device_id), "listed under another id");
                let ed = record.ed25519_key.expect("a stored device has an Ed25519 key");
                let curve = record.curve25519_key.expect("a stored device has a Curve25519 key");
                let key = |name: &str| {
                    object.get("keys").and_then(|k| k.get(format!("{name}:{device_id}"))).and_then(Value::as_str)
                };
                assert_eq!(key("ed25519"), Some(ed.to_base64().as_str()));
                assert_eq!(key("curve25519"), Some(curve.to_base64().as_str()));
                ferrolm_machine::signing::verify_json(&object, user.as_str(), &format!("ed25519:{device_id}"), &ed)
                    .expect("an accepted device's keys verify");
                let known = if *user == self.alice_user && device_id == self.alice_device.as_str() {
                    Some((self.alice_curve, self.alice_ed))
                } else if *user == self.bob_user && device_id == self.bob_device.as_str() {
                    Some((self.bob_curve, self.bob_ed))
                } else if *user == self.carol_user {
                    self.carol_devices.iter().find(|(id, _, _)| id.as_str() == device_id).map(|(_, c, e)| (*c, *e))
                } else {
                    None
                };
                if let Some(known) = known {
                    assert_eq!((curve, ed), known, "a known device's keys changed");
                }
            }
        }
    }

    /// The users Bob tracks, with their dirty flags.
    pub fn tracked(machine: &Machine) -> BTreeSet<(String, bool)> {
        machine.tracked_users().expect("store").into_iter().map(|(u, d)| (u.to_string(), d)).collect()
    }
}

/// A room event from JSON, if it is JSON.
pub fn raw_room_event(json: &str) -> Option<Raw<AnySyncTimelineEvent>> {
    serde_json::value::RawValue::from_string(json.to_owned()).ok().map(Raw::from_json)
}

/// A to-device event from JSON, if it is JSON.
pub fn raw_to_device(json: &str) -> Option<Raw<AnyToDeviceEvent>> {
    serde_json::value::RawValue::from_string(json.to_owned()).ok().map(Raw::from_json)
}

/// Seeds for the machine targets: (target, name, bytes).
/// The pickle key of the `dehydrated_device` target.
pub const DEHYDRATION_KEY: [u8; 32] = [0x42; 32];
/// The nonce the `dehydrated_device` target encrypts its plaintexts with.
pub const DEHYDRATION_NONCE: [u8; 12] = [7; 12];
/// The backup key of the `backup_restore` target.
pub const BACKUP_KEY: [u8; 32] = [0x5b; 32];

/// The backup version the `backup_restore` target restores: `key`'s public key, unsigned.
pub fn backup_info(key: &BackupDecryptionKey) -> BackupInfo {
    let mut auth_data = serde_json::Map::new();
    auth_data.insert("public_key".into(), json!(key.public_key().to_base64()));
    BackupInfo::from_parts("1".into(), "m.megolm_backup.v1.curve25519-aes-sha2", auth_data).expect("a valid version")
}

/// Seeds of `dehydrated_device`: a real account's plaintext (mode 0) and a real body (mode 1).
fn dehydrated_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    use chacha20poly1305::aead::{Aead, KeyInit};
    use chacha20poly1305::{ChaCha20Poly1305, Nonce};
    let mut account = Account::new_with_rng(&mut FixedRng::new(11));
    account.generate_one_time_keys_with_rng(3, &mut FixedRng::new(12));
    account.generate_fallback_key_with_rng(&mut FixedRng::new(13));
    let pickle = account.to_dehydrated_device_with_rng(&DEHYDRATION_KEY, &mut FixedRng::new(14)).expect("dehydrates");
    let nonce = base64_decode(&pickle.nonce).expect("base64");
    let ciphertext = base64_decode(&pickle.ciphertext).expect("base64");
    let plaintext = ChaCha20Poly1305::new((&DEHYDRATION_KEY).into())
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .expect("decrypts");
    add("dehydrated_device", "plaintext", [&[0u8][..], &plaintext].concat());
    let body = json!({"device_id": "DEHYDRATED", "device_data": {"algorithm": ferrolm_machine::dehydrated::DEHYDRATION_ALGORITHM,
                      "device_pickle": pickle.ciphertext, "nonce": pickle.nonce}});
    add("dehydrated_device", "body", [&[1u8][..], body.to_string().as_bytes()].concat());
}

/// A seed of `backup_restore`: a real backup of two keys of the fixture's room, one from the
/// start of its session and one from index 2.
fn backup_seed(fx: &MachineFixture) -> Vec<u8> {
    let key = BackupDecryptionKey::from_bytes(&BACKUP_KEY);
    let encryption = ferrolm::pk::PkEncryption::from_key(key.public_key()).expect("a valid key");
    let mut sessions = serde_json::Map::new();
    for (seed, index) in [(21u64, 0u32), (22, 2)] {
        let mut outbound =
            GroupSession::new_with_rng(ferrolm::megolm::SessionConfig::version_1(), &mut FixedRng::new(seed));
        for _ in 0..index {
            outbound.encrypt(b"advance");
        }
        let inbound = ferrolm::megolm::InboundGroupSession::new(
            &outbound.session_key(),
            ferrolm::megolm::SessionConfig::version_1(),
        );
        let exported = inbound.export_at(index).expect("exportable");
        let plaintext = json!({
            "algorithm": "m.megolm.v1.aes-sha2", "sender_key": fx.alice_curve.to_base64(),
            "session_key": exported.to_base64().as_str(), "sender_claimed_keys": {"ed25519": fx.alice_ed.to_base64()},
            "forwarding_curve25519_key_chain": [],
        });
        let message = encryption.encrypt_with_rng(plaintext.to_string().as_bytes(), &mut FixedRng::new(seed));
        let (ciphertext, mac, ephemeral) = message.to_base64();
        sessions.insert(
            outbound.session_id().to_base64(),
            json!({"first_message_index": index, "forwarded_count": 0, "is_verified": false,
                   "session_data": {"ephemeral": ephemeral, "ciphertext": ciphertext, "mac": mac}}),
        );
    }
    json!({"rooms": {fx.room_id.as_str(): {"sessions": sessions}}}).to_string().into_bytes()
}

pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let fx = machine_fixture();
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| out.push((target, name.to_owned(), bytes));
    dehydrated_seeds(&mut add);
    add("backup_restore", "two-keys", backup_seed(fx));
    let with_mode = |mode: u8, bytes: &[u8]| [&[mode][..], bytes].concat();

    // to-device: mode 0 raw events, 1 plaintext over the session, 2 plaintext in a pre-key
    // message, 3 Olm body bytes.
    for (i, event) in fx.genuine_to_device.iter().enumerate() {
        add("machine_to_device", &format!("raw-genuine-{i}"), with_mode(0, event.as_bytes()));
        add("machine_to_device", &format!("body-{i}"), [&[3u8, 1][..], &fx.olm_body_bytes(event)].concat());
    }
    let plain = |t: &str, c: Value| json!({"type": t, "sender": fx.alice_user, "content": c}).to_string().into_bytes();
    add("machine_to_device", "raw-verification", with_mode(0, &plain("m.key.verification.request", json!({}))));
    add("machine_to_device", "raw-clear-room-key", with_mode(0, &plain("m.room_key", json!({"room_id": fx.room_id}))));
    add(
        "machine_to_device",
        "raw-withheld",
        with_mode(
            0,
            &plain(
                "m.room_key.withheld",
                json!({"algorithm": "m.megolm.v1.aes-sha2", "code": "m.unverified", "room_id": fx.room_id,
                       "session_id": fx.megolm_session_id, "sender_key": fx.alice_curve.to_base64()}),
            ),
        ),
    );
    let plaintext: Value = serde_json::from_str(&fx.genuine_plaintext).expect("json");
    let mut room_key = plaintext.clone();
    let new_session = GroupSession::new_with_rng(ferrolm::megolm::SessionConfig::version_1(), &mut FixedRng::new(7));
    room_key["type"] = json!("m.room_key");
    room_key["content"] = json!({
        "algorithm": "m.megolm.v1.aes-sha2", "room_id": fx.room_id,
        "session_id": new_session.session_id().to_base64(), "session_key": new_session.session_key().to_base64().as_str(),
    });
    let mut forwarded = room_key.clone();
    forwarded["type"] = json!("m.forwarded_room_key");
    for mode in [1u8, 2] {
        add("machine_to_device", &format!("plaintext-{mode}"), with_mode(mode, fx.genuine_plaintext.as_bytes()));
        add("machine_to_device", &format!("room-key-{mode}"), with_mode(mode, room_key.to_string().as_bytes()));
        add("machine_to_device", &format!("forwarded-{mode}"), with_mode(mode, forwarded.to_string().as_bytes()));
    }

    add("machine_sync", "genuine", fx.sync_body.clone());
    let mut sync: Value = serde_json::from_slice(&fx.sync_body).expect("json");
    sync["device_lists"] = json!({"changed": [fx.alice_user, fx.carol_user], "left": [fx.carol_user]});
    sync["device_one_time_keys_count"] = json!({"signed_curve25519": 0});
    sync["device_unused_fallback_key_types"] = json!([]);
    add("machine_sync", "lists-and-counts", sync.to_string().into_bytes());

    add("machine_keys_query", "genuine", fx.query_body.clone());
    let mut changed: Value = serde_json::from_slice(&fx.query_body).expect("json");
    if let Some(keys) = changed["device_keys"][fx.alice_user.as_str()][fx.alice_device.as_str()]["keys"].as_object_mut()
    {
        let id = format!("curve25519:{}", fx.alice_device);
        keys.insert(id, json!(fx.bob_curve.to_base64()));
    }
    add("machine_keys_query", "changed-key", changed.to_string().into_bytes());

    add("machine_keys_claim", "genuine", fx.claim_body.clone());

    // Room events: mode 0 raw, 1 plaintext under the real session, 2 ciphertext bytes.
    for (i, event) in fx.genuine_room_events.iter().enumerate() {
        add("machine_room_event", &format!("raw-genuine-{i}"), with_mode(0, event.as_bytes()));
        let value: Value = serde_json::from_str(event).expect("json");
        let ciphertext = value["content"]["ciphertext"].as_str().expect("ciphertext");
        add("machine_room_event", &format!("ciphertext-{i}"), with_mode(2, &base64_decode(ciphertext).expect("b64")));
    }
    let megolm_plaintext = json!({"type": "m.room.message", "room_id": fx.room_id, "content": {"body": "x"}});
    add("machine_room_event", "plaintext", with_mode(1, megolm_plaintext.to_string().as_bytes()));
    let other_room = json!({"type": "m.room.message", "room_id": "!other:fuzz.test", "content": {}});
    add("machine_room_event", "plaintext-other-room", with_mode(1, other_room.to_string().as_bytes()));
    out
}
