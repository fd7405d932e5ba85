//! Shared helpers of the behaviour tests: back-end harnesses and record builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::field_reassign_with_default)]

use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig as MegolmConfig};
use ferrolm::olm::{Account, OlmMessage, Session, SessionConfig};
use ferrolm::pk::PkDecryption;
use ferrolm_store::*;

/// A way to make back ends: `backend()` gives a new handle on the same data each time, as a
/// second process would have.
pub trait Harness {
    type B: Backend;
    fn new() -> Self;
    fn backend(&self) -> Self::B;
    /// Every raw row of a table, behind the store's back.
    fn rows(&self, table: Table) -> Vec<Row>;
    /// Writes or deletes a raw row behind the store's back.
    fn set(&self, table: Table, key: &[u8], value: Option<Vec<u8>>);
    /// Every byte the back end keeps (files for SQLite), to look for plaintext.
    fn raw_bytes(&self) -> Vec<u8>;
}

pub struct MemoryHarness(MemoryBackend);

impl Harness for MemoryHarness {
    type B = MemoryBackend;
    fn new() -> Self {
        Self(MemoryBackend::new())
    }
    fn backend(&self) -> MemoryBackend {
        self.0.clone()
    }
    fn rows(&self, table: Table) -> Vec<Row> {
        self.0.rows(table)
    }
    fn set(&self, table: Table, key: &[u8], value: Option<Vec<u8>>) {
        self.0.tamper(table, key, value)
    }
    fn raw_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for table in Table::ALL {
            for (k, v) in self.0.rows(table) {
                out.extend(k);
                out.extend(v);
            }
        }
        out
    }
}

#[cfg(feature = "sqlite")]
pub struct SqliteHarness {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

#[cfg(feature = "sqlite")]
impl Harness for SqliteHarness {
    type B = SqliteBackend;
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        Self { _dir: dir, path }
    }
    fn backend(&self) -> SqliteBackend {
        SqliteBackend::open(&self.path).unwrap()
    }
    fn rows(&self, table: Table) -> Vec<Row> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut stmt = conn.prepare(&format!("SELECT k, v FROM {} ORDER BY k", table.name())).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    }
    fn set(&self, table: Table, key: &[u8], value: Option<Vec<u8>>) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        match value {
            Some(v) => conn
                .execute(&format!("INSERT OR REPLACE INTO {} (k, v) VALUES (?1, ?2)", table.name()), (key, v))
                .unwrap(),
            None => conn.execute(&format!("DELETE FROM {} WHERE k = ?1", table.name()), [key]).unwrap(),
        };
    }
    fn raw_bytes(&self) -> Vec<u8> {
        let mut out = std::fs::read(&self.path).unwrap();
        if let Ok(wal) = std::fs::read(self.path.with_extension("sqlite3-wal")) {
            out.extend(wal);
        }
        out
    }
}

pub fn secret() -> StoreSecret {
    StoreSecret::key([0x11; 32])
}

pub fn fast_kdf() -> KdfParams {
    KdfParams::new(64, 1, 1).unwrap()
}

pub fn create<H: Harness>(h: &H) -> Store<H::B> {
    Store::create(h.backend(), &secret(), fast_kdf()).unwrap()
}

pub fn open<H: Harness>(h: &H) -> Store<H::B> {
    Store::open(h.backend(), &secret()).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::from(format!("@{name}:example.org"))
}

pub fn room(name: &str) -> RoomId {
    RoomId::from(format!("!{name}:example.org"))
}

/// Two accounts with an established pair of Olm sessions (Alice → Bob, Bob replied).
pub struct OlmPair {
    pub alice: Account,
    pub bob: Account,
    pub alice_session: Session,
    pub bob_session: Session,
}

pub fn olm_pair() -> OlmPair {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    bob.mark_keys_as_published();
    let mut alice_session =
        alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
    let OlmMessage::PreKey(first) = alice_session.encrypt(b"hello") else { panic!("pre-key expected") };
    let created = bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap();
    let mut bob_session = created.session;
    let reply = bob_session.encrypt(b"hi");
    alice_session.decrypt(&reply).unwrap();
    OlmPair { alice, bob, alice_session, bob_session }
}

pub fn olm_record(sender: &Account, session: Session, t: u64) -> OlmSessionRecord {
    OlmSessionRecord {
        sender_key: sender.curve25519_key(),
        session,
        created_ms: t,
        last_use_ms: t + 1,
        last_decrypt_ms: Some(t + 2),
    }
}

pub fn room_key(room_id: &RoomId, sender: &Account, backed_up: bool) -> (GroupSession, InboundGroupSessionRecord) {
    let outbound = GroupSession::new(MegolmConfig::version_1());
    let session = InboundGroupSession::new(&outbound.session_key(), MegolmConfig::version_1());
    let record = InboundGroupSessionRecord {
        room_id: room_id.clone(),
        session,
        sender_key: sender.curve25519_key(),
        claimed_signing_key: Some(sender.ed25519_key()),
        source: RoomKeySource::Forwarded,
        backed_up,
        shared_history: true,
    };
    (outbound, record)
}

pub fn device(user_id: &UserId, device_id: &str, account: &Account) -> DeviceRecord {
    DeviceRecord {
        user_id: user_id.clone(),
        device_id: DeviceId::from(device_id),
        device_keys: format!("{{\"device_id\":\"{device_id}\"}}").into_bytes(),
        curve25519_key: Some(account.curve25519_key()),
        ed25519_key: Some(account.ed25519_key()),
        local_trust: LocalTrust::Verified,
        deleted: false,
        no_olm_sent: false,
    }
}

pub fn identity(user_id: &UserId) -> IdentityRecord {
    IdentityRecord {
        user_id: user_id.clone(),
        master_key: b"{\"usage\":[\"master\"]}".to_vec(),
        self_signing_key: b"{\"usage\":[\"self_signing\"]}".to_vec(),
        user_signing_key: Some(b"{\"usage\":[\"user_signing\"]}".to_vec()),
        verified: true,
        previously_verified: true,
        pinned_master_key: Some(ferrolm::olm::Account::new().ed25519_key()),
    }
}

pub fn backup() -> (PkDecryption, BackupRecord) {
    let key = PkDecryption::new();
    (key.clone(), BackupRecord { version: Some("7".into()), decryption_key: Some(key) })
}

/// Seals a realistic change set holding one record of every kind.
pub struct Everything {
    pub pair: OlmPair,
    pub changes: Changes,
    pub outbound: GroupSession,
    pub backup_key: PkDecryption,
}

pub fn everything() -> Everything {
    let pair = olm_pair();
    let alice_id = user("alice");
    let bob_id = user("bob");
    let (outbound, igs) = room_key(&room("cats"), &pair.alice, false);
    let (backup_key, backup) = backup();
    let group = GroupSession::new(MegolmConfig::version_1());
    let mut changes = Changes::default();
    changes.account = Some(AccountRecord {
        user_id: bob_id.clone(),
        device_id: DeviceId::from("BOBDEVICE"),
        account: pair.bob.clone(),
        device_keys_uploaded: true,
        fallback_key_published_ms: Some(1_234_567),
    });
    changes.olm_sessions.push(olm_record(&pair.alice, pair.bob_session.clone(), 1000));
    changes.inbound_group_sessions.push(igs);
    changes.outbound_shares.push(OutboundShare {
        room_id: room("cats"),
        session_id: group.session_id().to_base64(),
        user_id: alice_id.clone(),
        device_id: DeviceId::from("ALICEDEVICE"),
        state: ShareState::Shared { message_index: 3 },
    });
    changes.outbound_shares.push(OutboundShare {
        room_id: room("cats"),
        session_id: group.session_id().to_base64(),
        user_id: user("mallory"),
        device_id: DeviceId::from("EVIL"),
        state: ShareState::Withheld { code: "m.blacklisted".into() },
    });
    changes.outbound_group_sessions.push(OutboundGroupSessionRecord {
        room_id: room("cats"),
        session: group,
        created_ms: 5000,
        message_count: 4,
    });
    changes.devices.push(device(&alice_id, "ALICEDEVICE", &pair.alice));
    changes.identities.push(identity(&alice_id));
    changes.private_cross_signing_keys = Some(PrivateCrossSigningKeys {
        master: Some(SecretBytes::new([1; 32])),
        self_signing: Some(SecretBytes::new([2; 32])),
        user_signing: None,
    });
    changes.tracked_users.push(TrackedUser { user_id: alice_id.clone(), dirty: true });
    changes.sync_token = Some("s42_1".into());
    changes.backup = Some(backup);
    changes.secrets_inbox.push(ReceivedSecret {
        name: "m.megolm_backup.v1".into(),
        id: "req1".into(),
        sender_user: bob_id.clone(),
        sender_device: DeviceId::from("OTHERBOB"),
        secret: SecretString::new("c2VjcmV0"),
    });
    changes.outgoing_requests.push(OutgoingRequest {
        request_id: "req1".into(),
        recipient: bob_id.clone(),
        kind: RequestKind::Secret { name: "m.megolm_backup.v1".into() },
        sent: true,
    });
    changes.outgoing_requests.push(OutgoingRequest {
        request_id: "req2".into(),
        recipient: bob_id,
        kind: RequestKind::RoomKey {
            room_id: room("dogs"),
            session_id: "dogsession".into(),
            sender_key: Some(pair.alice.curve25519_key()),
            algorithm: "m.megolm.v1.aes-sha2".into(),
        },
        sent: false,
    });
    changes.withheld.push(WithheldNotice {
        room_id: room("dogs"),
        session_id: "withheldsession".into(),
        sender_key: Some(pair.alice.curve25519_key()),
        code: "m.unverified".into(),
        reason: Some("Device not verified".into()),
    });
    changes.room_settings.push(RoomSettings {
        room_id: room("cats"),
        algorithm: "m.megolm.v1.aes-sha2".into(),
        rotation_period_ms: Some(604_800_000),
        rotation_period_messages: Some(100),
        only_trusted_devices: true,
    });
    changes.seen_messages.push(SeenMessage {
        session_id: "seensession".into(),
        message_index: 12,
        event_id: "$event12".into(),
    });
    changes.outgoing_to_device.push(OutgoingToDevice {
        txn_id: "txn1".into(),
        event_type: "m.room.encrypted".into(),
        body: b"{\"messages\":{}}".to_vec(),
    });
    Everything { pair, changes, outbound, backup_key }
}
