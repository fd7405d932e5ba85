//! Set-up for the store benchmarks (`benches/store.rs`, and `ferrolm-ops` for callgrind): the
//! same room keys and Olm sessions for ferrolm-store and matrix-sdk-sqlite, and each store
//! driven the way its users drive it.
//!
//! The room keys are real Megolm sessions: ferrolm's outbound sessions create them, and each
//! store gets its own library's inbound session built from the same `m.room_key` session key
//! (229 bytes, signed), for the same room, sender and signing key.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferrolm::megolm as fm;
use ferrolm::olm as fo;
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store as fs;
use matrix_sdk_crypto::olm::{Account as SdkAccount, InboundGroupSession as SdkRoomKey, SenderData, Session};
use matrix_sdk_crypto::store::CryptoStore;
use matrix_sdk_crypto::store::types::{Changes, PendingChanges};
use matrix_sdk_crypto::types::EventEncryptionAlgorithm;
use matrix_sdk_crypto::vodozemac;
use matrix_sdk_sqlite::SqliteCryptoStore;
use ruma::{DeviceId, OwnedRoomId, RoomId, UserId};

/// Room keys in the stores that the lookup and open benchmarks read.
pub const STORE_SIZE: usize = 100_000;
/// Room keys saved in one change set.
pub const SAVE_BATCH: usize = 10_000;
/// The room keys are spread over this many rooms (100 keys per room in a full store).
pub const ROOMS: usize = 1_000;
/// ... and come from this many sending devices.
pub const SENDERS: usize = 100;

/// The 32-byte store key both stores are opened with, as a platform keystore would hand it
/// over. Both also accept a passphrase; a raw key keeps each one's key derivation function
/// (its cost is a parameter, not an implementation's speed) out of the open benchmark.
pub const STORE_KEY: [u8; 32] = [0x5a; 32];

/// The benchmark's own user and device.
pub const USER_ID: &str = "@bench:example.org";
/// See [`USER_ID`].
pub const DEVICE_ID: &str = "BENCHDEVICE";

/// One sending device: its identity keys.
#[derive(Clone)]
pub struct Sender {
    /// The device's Curve25519 identity key.
    pub curve25519: vodozemac::Curve25519PublicKey,
    /// The device's Ed25519 identity key (the `m.room_key`'s claimed signing key).
    pub ed25519: vodozemac::Ed25519PublicKey,
}

/// One room key as an `m.room_key` event brings it.
pub struct RoomKey {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The Megolm session id.
    pub session_id: String,
    /// The signed session key (229 bytes).
    pub session_key: Vec<u8>,
    /// Index into [`RoomKeys::senders`].
    pub sender: usize,
}

/// `count` room keys, generated once per process and shared by every benchmark that asks for
/// at most as many.
pub struct RoomKeys {
    /// The sending devices.
    pub senders: Vec<Sender>,
    /// The keys.
    pub keys: Vec<RoomKey>,
}

impl RoomKeys {
    /// `count` keys: the first `count` of the largest set this process made so far, or a new
    /// set (which then becomes the largest).
    pub fn generate(count: usize) -> Arc<RoomKeys> {
        static LARGEST: Mutex<Option<Arc<RoomKeys>>> = Mutex::new(None);
        let mut largest = LARGEST.lock().expect("not poisoned");
        let all = match largest.as_ref() {
            Some(all) if all.keys.len() >= count => all.clone(),
            _ => {
                let all = Arc::new(Self::make(count));
                *largest = Some(all.clone());
                all
            }
        };
        if count == all.keys.len() {
            return all;
        }
        Arc::new(RoomKeys {
            senders: all.senders.clone(),
            keys: all
                .keys
                .iter()
                .take(count)
                .map(|k| RoomKey {
                    room_id: k.room_id.clone(),
                    session_id: k.session_id.clone(),
                    session_key: k.session_key.clone(),
                    sender: k.sender,
                })
                .collect(),
        })
    }

    fn make(count: usize) -> RoomKeys {
        let senders = (0..SENDERS)
            .map(|_| {
                let keys = vodozemac::olm::Account::new().identity_keys();
                Sender { curve25519: keys.curve25519, ed25519: keys.ed25519 }
            })
            .collect();
        let keys = (0..count)
            .map(|i| {
                let session = fm::GroupSession::new(fm::SessionConfig::version_1());
                RoomKey {
                    room_id: room_id(i % ROOMS),
                    session_id: session.session_id().to_base64(),
                    session_key: session.session_key().to_bytes().to_vec(),
                    sender: i % SENDERS,
                }
            })
            .collect();
        RoomKeys { senders, keys }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The (room id, session id) of key `i`.
    pub fn id(&self, i: usize) -> (&RoomId, &str) {
        let key = &self.keys[i];
        (&key.room_id, &key.session_id)
    }

    /// matrix-sdk-crypto's inbound group sessions for these keys, as its `OlmMachine` makes
    /// them from an `m.room_key` (sender data not yet known, not shared history).
    pub fn sdk_sessions(&self) -> Vec<SdkRoomKey> {
        self.keys
            .iter()
            .map(|k| {
                let sender = &self.senders[k.sender];
                let key = vodozemac::megolm::SessionKey::from_bytes(&k.session_key).expect("a session key");
                SdkRoomKey::new(
                    sender.curve25519,
                    sender.ed25519,
                    &k.room_id,
                    &key,
                    SenderData::unknown(),
                    None,
                    EventEncryptionAlgorithm::MegolmV1AesSha2,
                    None,
                    false,
                )
                .expect("a Megolm v1 session")
            })
            .collect()
    }

    /// ferrolm-store's room-key records for these keys, as the machine makes them from an
    /// `m.room_key`.
    pub fn ferrolm_records(&self) -> Vec<fs::InboundGroupSessionRecord> {
        self.keys
            .iter()
            .map(|k| {
                let sender = &self.senders[k.sender];
                let key = fm::SessionKey::from_bytes(&k.session_key).expect("a session key");
                fs::InboundGroupSessionRecord {
                    room_id: fs::RoomId::new(k.room_id.as_str()),
                    session: fm::InboundGroupSession::new(&key, fm::SessionConfig::version_1()),
                    sender_key: Curve25519PublicKey::from_bytes(sender.curve25519.to_bytes()),
                    claimed_signing_key: Some(
                        Ed25519PublicKey::from_bytes(sender.ed25519.as_bytes()).expect("an Ed25519 key"),
                    ),
                    source: fs::RoomKeySource::Direct,
                    backed_up: false,
                    shared_history: false,
                }
            })
            .collect()
    }
}

/// The room id of room number `i`.
pub fn room_id(i: usize) -> OwnedRoomId {
    RoomId::parse(format!("!room{i:04}abcdefghijkl:example.org")).expect("a room id")
}

/// A permutation of `0..n` (a fixed stride coprime with n), so that consecutive lookups hit
/// rows far apart, as a timeline with many rooms does, and no two in a row repeat.
pub fn lookup_order(n: usize) -> Vec<usize> {
    let stride = (1..).map(|k| n / 2 + 7919 * k).find(|s| gcd(*s, n) == 1).unwrap_or(1);
    (0..n).map(|i| (i * stride) % n).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A folder removed on drop, on the disk the benchmarks measure (the system's temporary
/// folder, or `$FERROLM_BENCH_DIR`): a store's cost includes its `fsync`s, so a RAM disk would
/// flatter both.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::var_os("FERROLM_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let path = base.join(format!(
            "ferrolm-bench-{}-{name}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("a temporary folder");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bytes of every file in `dir` (the database and, if any, its WAL and shared memory).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("a folder")
        .map(|e| e.expect("an entry"))
        .filter(|e| e.metadata().expect("metadata").is_file())
        .map(|e| {
            let len = e.metadata().expect("metadata").len();
            eprintln!("  {}: {len} bytes", e.file_name().to_string_lossy());
            len
        })
        .sum()
}

/// Prints a store's size and writes it beside criterion's results
/// (`<target>/criterion/store_file_size/<implementation>.json`) for `report.py`.
pub fn record_size(implementation: &str, bytes: u64, keys: usize) {
    println!(
        "store/file_size_per_100000_room_keys/{implementation}: {bytes} bytes for {keys} room keys ({:.0} bytes per key)",
        bytes as f64 / keys as f64
    );
    // The bench runs as <target>/release/deps/store-<hash>.
    let target = std::env::current_exe().ok().and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()));
    if let Some(target) = target {
        let dir = target.join("criterion").join("store_file_size");
        let json = format!(r#"{{"bytes":{bytes},"room_keys":{keys}}}"#);
        if std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("{implementation}.json")), json))
            .is_err()
        {
            eprintln!("could not record the file size in {}", dir.display());
        }
    }
}

/// The async runtime matrix-sdk-sqlite runs on: tokio's current-thread runtime, the smallest
/// it accepts (it moves every SQLite call to tokio's blocking pool, so it needs one). Built once
/// per benchmark, outside the timing.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime")
}

/// ferrolm-store's SQLite store, with the calls ferrolm's machine makes.
pub struct Ferrolm {
    /// The store.
    pub store: fs::SqliteStore,
}

/// The file name of the ferrolm store in its folder.
pub const FERROLM_FILE: &str = "ferrolm.sqlite3";

impl Ferrolm {
    /// Opens the store in `dir` with [`STORE_KEY`].
    pub fn open(dir: &Path) -> Ferrolm {
        let store = fs::SqliteStore::open_file(dir.join(FERROLM_FILE), &fs::StoreSecret::key(STORE_KEY));
        Ferrolm { store: store.expect("the store opens") }
    }

    /// A new store holding our account.
    pub fn create(dir: &Path) -> Ferrolm {
        let secret = fs::StoreSecret::key(STORE_KEY);
        let mut store =
            fs::SqliteStore::create_file(dir.join(FERROLM_FILE), &secret, fs::KdfParams::default()).expect("created");
        let changes = fs::Changes {
            account: Some(fs::AccountRecord {
                user_id: fs::UserId::new(USER_ID),
                device_id: fs::DeviceId::new(DEVICE_ID),
                account: fo::Account::new(),
                device_keys_uploaded: true,
                fallback_key_published_ms: None,
            }),
            ..fs::Changes::default()
        };
        store.save_changes(&changes).expect("saved");
        Ferrolm { store }
    }

    /// A new store holding our account and `keys`, saved [`SAVE_BATCH`] at a time.
    pub fn create_filled(dir: &Path, keys: &RoomKeys) -> Ferrolm {
        let mut ours = Self::create(dir);
        let mut records = keys.ferrolm_records();
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(SAVE_BATCH));
            ours.save_room_keys(&room_key_changes(records));
            records = rest;
        }
        ours
    }

    /// Saves a change set (of room keys).
    pub fn save_room_keys(&mut self, changes: &fs::Changes) {
        self.store.save_changes(changes).expect("saved");
    }

    /// Reads one room key, as decrypting a room event does.
    pub fn room_key(&self, room_id: &fs::RoomId, session_id: &str) -> fs::InboundGroupSessionRecord {
        self.store.inbound_group_session(room_id, session_id).expect("read").expect("the key is there")
    }

    /// Loads our account, as a client does right after opening.
    pub fn account(&self) -> fs::AccountRecord {
        self.store.account().expect("read").expect("the account is there")
    }

    /// An established Olm session of our account with a peer (it has sent and received), the
    /// session saved.
    pub fn olm_session(&mut self) -> fs::OlmSessionRecord {
        let ours = self.account().account;
        let mut peer = fo::Account::new();
        peer.generate_one_time_keys(1);
        let otk = *peer.one_time_keys().values().next().expect("one key");
        let mut session = ours
            .create_outbound_session(fo::SessionConfig::version_1(), peer.curve25519_key(), otk)
            .expect("a session");
        let fo::OlmMessage::PreKey(first) = session.encrypt(b"hello") else {
            unreachable!("the first message is a pre-key message")
        };
        let mut theirs = peer
            .create_inbound_session(fo::SessionConfig::version_1(), ours.curve25519_key(), &first)
            .expect("decrypts")
            .session;
        session.decrypt(&theirs.encrypt(b"reply")).expect("decrypts");
        let record = fs::OlmSessionRecord {
            sender_key: peer.curve25519_key(),
            session,
            created_ms: 1_700_000_000_000,
            last_use_ms: 1_700_000_000_000,
            last_decrypt_ms: Some(1_700_000_000_000),
        };
        self.save_olm_session(&olm_session_changes(record.clone()));
        record
    }

    /// Saves one change set (holding one Olm session).
    pub fn save_olm_session(&mut self, changes: &fs::Changes) {
        self.store.save_changes(changes).expect("saved");
    }
}

/// A change set of room keys.
pub fn room_key_changes(records: Vec<fs::InboundGroupSessionRecord>) -> fs::Changes {
    fs::Changes { inbound_group_sessions: records, ..fs::Changes::default() }
}

/// A change set of one Olm session.
pub fn olm_session_changes(record: fs::OlmSessionRecord) -> fs::Changes {
    fs::Changes { olm_sessions: vec![record], ..fs::Changes::default() }
}

/// Moves a ferrolm Olm session forward by one encrypted message (untimed set-up of the
/// save-session benchmark) and returns the change set that saves it.
pub fn ferrolm_advance(record: &mut fs::OlmSessionRecord) -> fs::Changes {
    drop(record.session.encrypt(b"a to-device message"));
    olm_session_changes(record.clone())
}

/// matrix-sdk-sqlite's crypto store, with the calls its `OlmMachine` makes.
pub struct Sdk {
    /// The store.
    pub store: SqliteCryptoStore,
}

impl Sdk {
    /// Opens (or creates) the store in `dir` with [`STORE_KEY`].
    pub async fn open(dir: &Path) -> Sdk {
        Sdk { store: SqliteCryptoStore::open_with_key(dir, Some(&STORE_KEY)).await.expect("the store opens") }
    }

    /// A new store holding our account.
    pub async fn create(dir: &Path) -> Sdk {
        let sdk = Self::open(dir).await;
        let account = SdkAccount::with_device_id(user_id(), device_id());
        sdk.store.save_pending_changes(PendingChanges { account: Some(account) }).await.expect("saved");
        sdk
    }

    /// A new store holding our account and `keys`, saved [`SAVE_BATCH`] at a time.
    pub async fn create_filled(dir: &Path, keys: &RoomKeys) -> Sdk {
        let sdk = Self::create(dir).await;
        let sessions = keys.sdk_sessions();
        for chunk in sessions.chunks(SAVE_BATCH) {
            sdk.save_room_keys(chunk.to_vec()).await;
        }
        sdk
    }

    /// Saves room keys in one change set.
    pub async fn save_room_keys(&self, sessions: Vec<SdkRoomKey>) {
        self.store
            .save_changes(Changes { inbound_group_sessions: sessions, ..Changes::default() })
            .await
            .expect("saved");
    }

    /// Reads one room key, as decrypting a room event does.
    pub async fn room_key(&self, room_id: &RoomId, session_id: &str) -> SdkRoomKey {
        self.store.get_inbound_group_session(room_id, session_id).await.expect("read").expect("the key is there")
    }

    /// Loads our account, as a client does right after opening.
    pub async fn account(&self) -> SdkAccount {
        self.store.load_account().await.expect("read").expect("the account is there")
    }

    /// An established Olm session of our account with a peer (it has sent and received), the
    /// session saved.
    pub async fn olm_session(&self) -> Session {
        let ours = self.account().await;
        let mut peer = vodozemac::olm::Account::new();
        peer.generate_one_time_keys(1);
        let otk = *peer.one_time_keys().values().next().expect("one key");
        let mut session = ours
            .create_outbound_session_helper(
                vodozemac::olm::SessionConfig::version_1(),
                peer.curve25519_key(),
                otk,
                false,
                ours.device_keys(),
            )
            .expect("a session");
        let vodozemac::olm::OlmMessage::PreKey(first) = session.inner.lock().await.encrypt("hello").expect("encrypts")
        else {
            unreachable!("the first message is a pre-key message")
        };
        let mut theirs = peer
            .create_inbound_session(vodozemac::olm::SessionConfig::version_1(), ours.identity_keys().curve25519, &first)
            .expect("decrypts")
            .session;
        session.decrypt(&theirs.encrypt("reply").expect("encrypts")).await.expect("decrypts");
        self.save_olm_session(session.clone()).await;
        session
    }

    /// Saves one Olm session in one change set: what the machine does after every to-device
    /// message it encrypts or decrypts.
    pub async fn save_olm_session(&self, session: Session) {
        self.store.save_changes(Changes { sessions: vec![session], ..Changes::default() }).await.expect("saved");
    }

    /// Closes the store (checkpoints the WAL into the database file).
    pub async fn close(self) {
        self.store.close().await.expect("closed");
    }
}

/// Moves an SDK Olm session forward by one encrypted message (untimed set-up of the
/// save-session benchmark) and returns it.
pub async fn sdk_advance(session: &mut Session) -> Session {
    drop(session.inner.lock().await.encrypt("a to-device message").expect("encrypts"));
    session.clone()
}

fn user_id() -> &'static UserId {
    <&UserId>::try_from(USER_ID).expect("a user id")
}

fn device_id() -> &'static DeviceId {
    DEVICE_ID.into()
}
