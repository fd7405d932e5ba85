//! Fixtures: a store written by each schema version of this crate, committed under
//! `tests/fixtures/store-vN.sqlite3`, that every later version must open, migrate and read
//! back completely.
//!
//! When the schema version goes up, write the new version's fixture (old fixtures are never
//! overwritten; `store-v1.sqlite3` was written by commit 5501ce8 with schema version 1):
//!
//! ```sh
//! cargo test -p ferrolm-store --test fixture -- --ignored generate_current_fixture
//! ```
//!
//! Its contents are fixed: every core object comes from a seeded generator, every other field
//! is a constant, and the passphrase is [`PASSPHRASE`] with small Argon2id parameters (stored
//! in the file). The store key, salts and nonces are fresh randomness, so the file's bytes
//! differ between generations but its contents do not.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig as MegolmConfig};
use ferrolm::olm::{Account, OlmMessage, Session, SessionConfig};
use ferrolm::pk::PkDecryption;
use ferrolm_store::*;

const PASSPHRASE: &str = "ferrolm store fixture v1";

fn fixture_path(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/store-v{version}.sqlite3"))
}

/// splitmix64: deterministic, test only.
struct SeededRng(u64);

impl rand_core::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for SeededRng {}

/// Everything the fixture holds, and the peers' live state to talk to it afterwards.
struct Fixture {
    changes: Changes,
    alice_session: Session,
    outbound: GroupSession,
    backup_key: PkDecryption,
}

fn user(name: &str) -> UserId {
    UserId::from(format!("@{name}:fixture.example"))
}

fn room(name: &str) -> RoomId {
    RoomId::from(format!("!{name}:fixture.example"))
}

/// What the fixture of schema `version` holds (as read back by the current version).
fn fixture(version: u32) -> Fixture {
    let mut rng = SeededRng(0x5eed_0001);
    let alice = Account::new_with_rng(&mut rng);
    let mut bob = Account::new_with_rng(&mut rng);
    bob.generate_one_time_keys_with_rng(3, &mut rng);
    bob.generate_fallback_key_with_rng(&mut rng);
    let otk = *bob.one_time_keys().values().next().unwrap();
    bob.mark_keys_as_published();
    let mut alice_session = alice
        .create_outbound_session_with_rng(SessionConfig::version_1(), bob.curve25519_key(), otk, &mut rng)
        .unwrap();
    let OlmMessage::PreKey(first) = alice_session.encrypt_with_rng(b"fixture hello", &mut rng) else { panic!() };
    let created = bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap();
    let mut bob_session = created.session;
    let reply = bob_session.encrypt_with_rng(b"fixture reply", &mut rng);
    alice_session.decrypt(&reply).unwrap();

    let mut outbound = GroupSession::new_with_rng(MegolmConfig::version_1(), &mut rng);
    outbound.encrypt(b"before the share");
    let inbound = InboundGroupSession::new(&outbound.session_key(), MegolmConfig::version_1());
    let other_outbound = GroupSession::new_with_rng(MegolmConfig::version_1(), &mut rng);
    let other_inbound = InboundGroupSession::new(&other_outbound.session_key(), MegolmConfig::version_1());
    let own_outbound = GroupSession::new_with_rng(MegolmConfig::version_1(), &mut rng);
    let backup_key = PkDecryption::new_with_rng(&mut rng);

    let mut changes = Changes {
        account: Some(AccountRecord {
            user_id: user("bob"),
            device_id: DeviceId::from("BOBFIXTURE"),
            account: bob.clone(),
            device_keys_uploaded: true,
            // Since version 2.
            fallback_key_published_ms: (version >= 2).then_some(1_700_000_002_000),
        }),
        ..Changes::default()
    };
    changes.olm_sessions.push(OlmSessionRecord {
        sender_key: alice.curve25519_key(),
        session: bob_session,
        created_ms: 1_700_000_000_000,
        last_use_ms: 1_700_000_000_500,
        last_decrypt_ms: Some(1_700_000_000_400),
    });
    changes.inbound_group_sessions.push(InboundGroupSessionRecord {
        room_id: room("cats"),
        session: inbound,
        sender_key: alice.curve25519_key(),
        claimed_signing_key: Some(alice.ed25519_key()),
        source: RoomKeySource::Direct,
        backed_up: false,
        shared_history: true,
    });
    changes.inbound_group_sessions.push(InboundGroupSessionRecord {
        room_id: room("dogs"),
        session: other_inbound,
        sender_key: alice.curve25519_key(),
        claimed_signing_key: None,
        source: RoomKeySource::FileImport,
        backed_up: true,
        shared_history: false,
    });
    changes.outbound_group_sessions.push(OutboundGroupSessionRecord {
        room_id: room("cats"),
        session: own_outbound.clone(),
        created_ms: 1_700_000_001_000,
        message_count: 0,
    });
    changes.outbound_shares.push(OutboundShare {
        room_id: room("cats"),
        session_id: own_outbound.session_id().to_base64(),
        user_id: user("alice"),
        device_id: DeviceId::from("ALICEFIXTURE"),
        state: ShareState::Shared { message_index: 0 },
    });
    changes.outbound_shares.push(OutboundShare {
        room_id: room("cats"),
        session_id: own_outbound.session_id().to_base64(),
        user_id: user("mallory"),
        device_id: DeviceId::from("MALLORY"),
        state: ShareState::Withheld { code: "m.blacklisted".into() },
    });
    for (device_id, trust, deleted) in
        [("ALICEFIXTURE", LocalTrust::Verified, false), ("ALICEOLD", LocalTrust::Ignored, true)]
    {
        changes.devices.push(DeviceRecord {
            user_id: user("alice"),
            device_id: DeviceId::from(device_id),
            device_keys: format!("{{\"device_id\":\"{device_id}\",\"user_id\":\"@alice:fixture.example\"}}")
                .into_bytes(),
            curve25519_key: Some(alice.curve25519_key()),
            ed25519_key: Some(alice.ed25519_key()),
            local_trust: trust,
            deleted,
            no_olm_sent: false,
        });
    }
    changes.devices.push(DeviceRecord {
        user_id: user("mallory"),
        device_id: DeviceId::from("MALLORY"),
        device_keys: b"{}".to_vec(),
        curve25519_key: None,
        ed25519_key: None,
        local_trust: LocalTrust::Blacklisted,
        deleted: false,
        no_olm_sent: version >= 3,
    });
    changes.identities.push(IdentityRecord {
        user_id: user("alice"),
        master_key: b"{\"usage\":[\"master\"],\"user_id\":\"@alice:fixture.example\"}".to_vec(),
        self_signing_key: b"{\"usage\":[\"self_signing\"]}".to_vec(),
        user_signing_key: None,
        verified: false,
        previously_verified: true,
        // Since version 4.
        pinned_master_key: (version >= 4).then(|| alice.ed25519_key()),
    });
    changes.identities.push(IdentityRecord {
        user_id: user("bob"),
        master_key: b"{\"usage\":[\"master\"],\"user_id\":\"@bob:fixture.example\"}".to_vec(),
        self_signing_key: b"{\"usage\":[\"self_signing\"]}".to_vec(),
        user_signing_key: Some(b"{\"usage\":[\"user_signing\"]}".to_vec()),
        verified: true,
        previously_verified: true,
        pinned_master_key: None,
    });
    changes.private_cross_signing_keys = Some(PrivateCrossSigningKeys {
        master: Some(SecretBytes::new([0x4d; 32])),
        self_signing: Some(SecretBytes::new([0x53; 32])),
        user_signing: Some(SecretBytes::new([0x55; 32])),
    });
    changes.tracked_users.push(TrackedUser { user_id: user("alice"), dirty: false });
    changes.tracked_users.push(TrackedUser { user_id: user("mallory"), dirty: true });
    changes.sync_token = Some("s1234_5678_fixture".into());
    changes.backup = Some(BackupRecord { version: Some("3".into()), decryption_key: Some(backup_key.clone()) });
    changes.secrets_inbox.push(ReceivedSecret {
        name: "m.megolm_backup.v1".into(),
        id: "fixture-request".into(),
        sender_user: user("bob"),
        sender_device: DeviceId::from("BOBOTHER"),
        secret: SecretString::new("Zml4dHVyZSBzZWNyZXQ"),
    });
    changes.outgoing_requests.push(OutgoingRequest {
        request_id: "fixture-request".into(),
        recipient: user("bob"),
        kind: RequestKind::Secret { name: "m.megolm_backup.v1".into() },
        sent: true,
    });
    changes.outgoing_requests.push(OutgoingRequest {
        request_id: "fixture-key-request".into(),
        recipient: user("bob"),
        kind: RequestKind::RoomKey {
            room_id: room("birds"),
            session_id: "birdsession".into(),
            sender_key: Some(alice.curve25519_key()),
            algorithm: "m.megolm.v1.aes-sha2".into(),
        },
        sent: false,
    });
    changes.withheld.push(WithheldNotice {
        room_id: room("birds"),
        session_id: "birdsession".into(),
        sender_key: Some(alice.curve25519_key()),
        code: "m.unverified".into(),
        reason: Some("The sender disabled encrypting to unverified devices.".into()),
    });
    changes.room_settings.push(RoomSettings {
        room_id: room("cats"),
        algorithm: "m.megolm.v1.aes-sha2".into(),
        rotation_period_ms: Some(604_800_000),
        rotation_period_messages: Some(100),
        only_trusted_devices: false,
    });
    changes.room_settings.push(RoomSettings {
        room_id: room("dogs"),
        algorithm: "m.megolm.v1.aes-sha2".into(),
        rotation_period_ms: None,
        rotation_period_messages: None,
        only_trusted_devices: true,
    });
    for index in [0u32, 1, 7] {
        changes.seen_messages.push(SeenMessage {
            session_id: outbound.session_id().to_base64(),
            message_index: index,
            event_id: format!("$fixture-event-{index}"),
        });
    }
    if version >= 2 {
        changes.outgoing_to_device.push(OutgoingToDevice {
            txn_id: "fixture-txn".into(),
            event_type: "m.room.encrypted".into(),
            body: b"{\"messages\":{\"@alice:fixture.example\":{}}}".to_vec(),
        });
    }
    Fixture { changes, alice_session, outbound, backup_key }
}

fn raw_versions(path: &std::path::Path) -> (u32, u32, bool) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version: Vec<u8> =
        conn.query_row("SELECT v FROM meta WHERE k = CAST('schema_version' AS BLOB)", [], |r| r.get(0)).unwrap();
    let layout: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let outgoing: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'outgoing_to_device'", [], |r| r.get(0))
        .unwrap();
    (u32::from_le_bytes(version.try_into().unwrap()), layout, outgoing == 1)
}

#[test]
#[ignore = "writes the committed fixture of the current version; run by hand when the schema version goes up"]
fn generate_current_fixture() {
    let path = fixture_path(SCHEMA_VERSION);
    assert!(!path.exists(), "{} exists: fixtures are never overwritten", path.display());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let kdf = KdfParams::new(64, 1, 1).unwrap();
    let mut store = SqliteStore::create_file(&path, &StoreSecret::passphrase(PASSPHRASE), kdf).unwrap();
    store.save_changes(&fixture(SCHEMA_VERSION).changes).unwrap();
    drop(store);
    // Fold the WAL into the file: the fixture is one self-contained file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE; VACUUM;").unwrap();
}

#[test]
fn the_v1_fixture_opens_migrates_and_reads_back_completely() {
    check_fixture(1);
}

#[test]
fn the_v2_fixture_opens_migrates_and_reads_back_completely() {
    check_fixture(2);
}

#[test]
fn the_v3_fixture_opens_migrates_and_reads_back_completely() {
    check_fixture(3);
}

#[test]
fn the_v4_fixture_opens_and_reads_back_completely() {
    check_fixture(4);
}

fn check_fixture(version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    std::fs::copy(fixture_path(version), &path).expect("the committed fixture");
    let (schema, layout, has_outgoing) = raw_versions(&path);
    // The SQLite layout moved with the schema up to version 2; schemas 3 and 4 changed records only.
    assert_eq!((schema, layout), (version, version.min(2)), "the fixture is of schema version {version}");
    assert_eq!(has_outgoing, version >= 2);
    // A wrong passphrase changes nothing, not even the layout.
    assert_eq!(SqliteStore::open_file(&path, &StoreSecret::passphrase("wrong")).unwrap_err(), StoreError::WrongSecret);
    assert_eq!(raw_versions(&path), (schema, layout, has_outgoing));
    let generation_before = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let g: Vec<u8> =
            conn.query_row("SELECT v FROM meta WHERE k = CAST('generation' AS BLOB)", [], |r| r.get(0)).unwrap();
        u64::from_le_bytes(g.try_into().unwrap())
    };

    let store = SqliteStore::open_file(&path, &StoreSecret::passphrase(PASSPHRASE)).unwrap();
    let info = store.info().unwrap();
    assert_eq!(info.schema_version, SCHEMA_VERSION, "migrated to the current version");
    let steps = u64::from(SCHEMA_VERSION - version);
    assert_eq!(info.generation, generation_before + steps, "one committed step per version");
    assert_eq!(raw_versions(&path), (SCHEMA_VERSION, LAYOUT_VERSION, true));
    assert_eq!(info.key_wrapping, WrapKind::Passphrase(KdfParams::new(64, 1, 1).unwrap()));
    store.check_integrity().unwrap();

    let Fixture { changes: expected, mut alice_session, mut outbound, backup_key } = fixture(version);

    // Counts: nothing more, nothing less.
    let counts: std::collections::BTreeMap<&str, u64> =
        store.row_counts().unwrap().into_iter().map(|(t, n)| (t.name(), n)).collect();
    assert_eq!(counts["olm_sessions"], 1);
    assert_eq!(counts["inbound_group_sessions"], 2);
    assert_eq!(counts["backup_queue"], 1);
    assert_eq!(counts["outbound_group_sessions"], 1);
    assert_eq!(counts["outbound_shares"], 2);
    assert_eq!(counts["devices"], 3);
    assert_eq!(counts["identities"], 2);
    assert_eq!(counts["tracked_users"], 2);
    assert_eq!(counts["singletons"], 4);
    assert_eq!(counts["secrets_inbox"], 1);
    assert_eq!(counts["outgoing_requests"], 2);
    assert_eq!(counts["withheld"], 1);
    assert_eq!(counts["room_settings"], 2);
    assert_eq!(counts["seen_messages"], 3);
    assert_eq!(counts["outgoing_to_device"], u64::from(version >= 2));

    let want = expected.account.as_ref().unwrap();
    let account = store.account().unwrap().unwrap();
    assert_eq!(
        (&account.user_id, &account.device_id, account.device_keys_uploaded),
        (&want.user_id, &want.device_id, true)
    );
    assert_eq!(account.account.identity_keys(), want.account.identity_keys());
    assert_eq!(account.account.one_time_keys(), want.account.one_time_keys());
    assert_eq!(account.account.fallback_key(), want.account.fallback_key());

    let want = &expected.olm_sessions[0];
    let mut olm = store.olm_session(&want.sender_key, &want.session_id()).unwrap().unwrap();
    assert_eq!(
        (olm.created_ms, olm.last_use_ms, olm.last_decrypt_ms),
        (want.created_ms, want.last_use_ms, want.last_decrypt_ms)
    );
    let next = alice_session.encrypt(b"after the upgrade");
    assert_eq!(olm.session.decrypt(&next).unwrap(), b"after the upgrade", "the stored Olm session still works");

    for want in &expected.inbound_group_sessions {
        let got = store.inbound_group_session(&want.room_id, &want.session_id()).unwrap().unwrap();
        assert_eq!(got.sender_key, want.sender_key);
        assert_eq!(got.claimed_signing_key, want.claimed_signing_key);
        assert_eq!((got.source, got.backed_up, got.shared_history), (want.source, want.backed_up, want.shared_history));
        assert_eq!(got.first_known_index(), want.first_known_index());
        assert_eq!(
            got.session.export_at_first_known_index().to_bytes(),
            want.session.export_at_first_known_index().to_bytes()
        );
    }
    let mut cats = store.inbound_group_session(&room("cats"), &outbound.session_id().to_base64()).unwrap().unwrap();
    assert_eq!(cats.first_known_index(), 1);
    assert_eq!(cats.session.decrypt(&outbound.encrypt(b"room message")).unwrap().plaintext, b"room message");
    let queue = store.inbound_group_sessions_to_back_up(10).unwrap();
    assert_eq!(queue.iter().map(|r| r.room_id.clone()).collect::<Vec<_>>(), vec![room("cats")]);

    let want = &expected.outbound_group_sessions[0];
    let ogs = store.outbound_group_session(&room("cats")).unwrap().unwrap();
    assert_eq!((ogs.session_id(), ogs.created_ms, ogs.message_count), (want.session_id(), want.created_ms, 0));
    let mut shares = store.outbound_shares(&room("cats"), &want.session_id()).unwrap();
    shares.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(shares, expected.outbound_shares);

    let mut devices = store.devices(&user("alice")).unwrap();
    devices.extend(store.devices(&user("mallory")).unwrap());
    devices.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));
    let mut want_devices = expected.devices.clone();
    want_devices.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));
    assert_eq!(devices, want_devices);
    for want in &expected.identities {
        assert_eq!(store.identity(&want.user_id).unwrap().as_ref(), Some(want));
    }
    assert_eq!(store.private_cross_signing_keys().unwrap(), expected.private_cross_signing_keys);
    let mut tracked = store.tracked_users().unwrap();
    tracked.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(tracked, expected.tracked_users);
    assert_eq!(store.sync_token().unwrap(), expected.sync_token);
    let backup = store.backup().unwrap().unwrap();
    assert_eq!(backup.version.as_deref(), Some("3"));
    assert_eq!(backup.decryption_key.unwrap().to_bytes(), backup_key.to_bytes());
    assert_eq!(store.secrets_in_inbox("m.megolm_backup.v1").unwrap(), expected.secrets_inbox);
    for want in &expected.outgoing_requests {
        assert_eq!(store.outgoing_request(&want.request_id).unwrap().as_ref(), Some(want));
    }
    assert_eq!(store.withheld_notice(&room("birds"), "birdsession").unwrap().as_ref(), expected.withheld.first());
    for want in &expected.room_settings {
        assert_eq!(store.room_settings(&want.room_id).unwrap().as_ref(), Some(want));
    }
    for want in &expected.seen_messages {
        assert_eq!(store.seen_message(&want.session_id, want.message_index).unwrap(), Some(want.event_id.clone()));
    }
    assert_eq!(store.outgoing_to_device().unwrap(), expected.outgoing_to_device);
}
