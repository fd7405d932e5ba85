//! `ferrolm store init|inspect|change-passphrase`, run as a program on stores made through
//! ferrolm-store: what `inspect` prints (and never prints), wrong passphrases, the lease.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::process::{Command, Output};

use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig};
use ferrolm::olm::{Account, OlmMessage};
use ferrolm::pk::PkDecryption;
use ferrolm_store::{
    AccountRecord, BackupRecord, Changes, DeviceId, DeviceRecord, InboundGroupSessionRecord, KdfParams, LeaseOutcome,
    LocalTrust, OlmSessionRecord, PrivateCrossSigningKeys, ReceivedSecret, RoomId, RoomKeySource, SecretBytes,
    SecretString, SqliteStore, StoreSecret, TrackedUser, UserId,
};

const PASSPHRASE: &str = "correct horse battery staple";
const NEW_PASSPHRASE: &str = "a much better passphrase";
const BACKUP_KEY: [u8; 32] = [0x42; 32];
const MASTER_KEY: [u8; 32] = [0x17; 32];
const INBOX_SECRET: &str = "the-secret-the-app-has-not-read-yet";

/// Small Argon2id parameters: these tests are about the tool, not the work factor.
fn kdf() -> KdfParams {
    KdfParams::new(256, 1, 1).unwrap()
}

fn ferrolm(args: &[&str], passphrase: Option<&str>, new_passphrase: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrolm"));
    command.args(args).env_remove("FERROLM_PASSPHRASE").env_remove("FERROLM_NEW_PASSPHRASE");
    if let Some(p) = passphrase {
        command.env("FERROLM_PASSPHRASE", p);
    }
    if let Some(p) = new_passphrase {
        command.env("FERROLM_NEW_PASSPHRASE", p);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// What a store holds, as the test knows it.
struct Made {
    curve25519: String,
    ed25519: String,
    bob_devices: Vec<(String, String)>,
    /// (room, session id, first known index, backed up)
    room_keys: Vec<(String, String, u32, bool)>,
    /// Every secret written, in the encodings a careless printer would use.
    secrets: Vec<String>,
}

fn encodings(bytes: &[u8]) -> Vec<String> {
    use base64ct::Encoding;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![base64ct::Base64Unpadded::encode_string(bytes), base64ct::Base64::encode_string(bytes), hex]
}

fn room_key(room: &'static str, sender: &Account, first_index: u32, backed_up: bool) -> InboundGroupSessionRecord {
    let mut outbound = GroupSession::new(SessionConfig::version_1());
    for _ in 0..first_index {
        outbound.encrypt(b"earlier message");
    }
    // The key as shared after `first_index` messages: it decrypts from there on.
    let session = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
    assert_eq!(session.first_known_index(), first_index);
    InboundGroupSessionRecord {
        room_id: RoomId::new(room),
        session,
        sender_key: sender.curve25519_key(),
        claimed_signing_key: Some(sender.ed25519_key()),
        source: if backed_up { RoomKeySource::Backup } else { RoomKeySource::Direct },
        backed_up,
        shared_history: false,
    }
}

/// A store with an account, an Olm session, devices of a tracked user, room keys in three
/// rooms (one room's keys all backed up), a backup key, private cross-signing keys, a secret
/// in the inbox, and an expired lease of "main-app".
fn make_store(path: &Path) -> Made {
    let mut store = SqliteStore::create_file(path, &StoreSecret::passphrase(PASSPHRASE), kdf()).unwrap();
    let mut account = Account::new();
    account.generate_one_time_keys(5);
    let identity = account.identity_keys();

    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    let mut session =
        account.create_outbound_session(ferrolm::olm::SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
    let OlmMessage::PreKey(_) = session.encrypt(b"hello") else { panic!("a pre-key message") };

    let bob_device_2 = Account::new();
    let devices = [("BOBPHONE", &bob), ("BOBLAPTOP", &bob_device_2)];
    let sender = Account::new();
    let keys = vec![
        room_key("!alpha:example.org", &sender, 0, false),
        room_key("!alpha:example.org", &sender, 3, true),
        room_key("!alpha:example.org", &sender, 7, false),
        room_key("!beta:example.org", &sender, 2, false),
        room_key("!gamma:example.org", &sender, 0, true),
    ];
    let mut secrets: Vec<String> = Vec::new();
    for key in &keys {
        let export = key.session.export_at_first_known_index();
        secrets.push(export.to_base64().to_string());
    }
    secrets.extend(encodings(&BACKUP_KEY));
    secrets.extend(encodings(&MASTER_KEY));
    secrets.push(INBOX_SECRET.to_owned());
    secrets.push(PASSPHRASE.to_owned());
    secrets.push(NEW_PASSPHRASE.to_owned());

    let changes = Changes {
        account: Some(AccountRecord {
            user_id: UserId::new("@alice:example.org"),
            device_id: DeviceId::new("ALICEDEVICE"),
            account,
            device_keys_uploaded: true,
            fallback_key_published_ms: None,
        }),
        olm_sessions: vec![OlmSessionRecord {
            sender_key: bob.curve25519_key(),
            session,
            created_ms: 1_000,
            last_use_ms: 2_000,
            last_decrypt_ms: None,
        }],
        inbound_group_sessions: keys.clone(),
        devices: devices
            .iter()
            .map(|(id, device)| DeviceRecord {
                user_id: UserId::new("@bob:example.org"),
                device_id: DeviceId::new(*id),
                device_keys: b"{\"signed\":\"device keys\"}".to_vec(),
                curve25519_key: Some(device.curve25519_key()),
                ed25519_key: Some(device.ed25519_key()),
                local_trust: LocalTrust::Verified,
                deleted: false,
                no_olm_sent: false,
            })
            // A device of a user no longer tracked, deleted from the server's list.
            .chain(std::iter::once(DeviceRecord {
                user_id: UserId::new("@carol:example.org"),
                device_id: DeviceId::new("CAROLOLD"),
                device_keys: b"{}".to_vec(),
                curve25519_key: None,
                ed25519_key: None,
                local_trust: LocalTrust::Blacklisted,
                deleted: true,
                no_olm_sent: false,
            }))
            .collect(),
        tracked_users: vec![TrackedUser { user_id: UserId::new("@bob:example.org"), dirty: false }],
        backup: Some(BackupRecord {
            version: Some("7".into()),
            decryption_key: Some(PkDecryption::from_bytes(&BACKUP_KEY)),
        }),
        private_cross_signing_keys: Some(PrivateCrossSigningKeys {
            master: Some(SecretBytes::new(MASTER_KEY)),
            self_signing: None,
            user_signing: None,
        }),
        secrets_inbox: vec![ReceivedSecret {
            name: "m.megolm_backup.v1".into(),
            id: "request-1".into(),
            sender_user: UserId::new("@alice:example.org"),
            sender_device: DeviceId::new("ALICEOTHER"),
            secret: SecretString::new(INBOX_SECRET),
        }],
        ..Changes::default()
    };
    store.save_changes(&changes).unwrap();
    // A lease that expired long ago (the holders' clock said 1970).
    assert!(matches!(store.acquire_lease("main-app", 1_000, 1_000).unwrap(), LeaseOutcome::Acquired { .. }));
    drop(store);

    Made {
        curve25519: identity.curve25519.to_base64(),
        ed25519: identity.ed25519.to_base64(),
        bob_devices: devices.iter().map(|(id, d)| (id.to_string(), d.curve25519_key().to_base64())).collect(),
        room_keys: keys
            .iter()
            .map(|k| (k.room_id.as_str().to_owned(), k.session_id(), k.first_known_index(), k.backed_up))
            .collect(),
        secrets,
    }
}

fn assert_no_secret(made: &Made, output: &Output) {
    let all = format!("{}{}", stdout(output), stderr(output));
    for secret in &made.secrets {
        assert!(!all.contains(secret.as_str()), "a secret was printed: {secret}");
    }
}

#[test]
fn inspect_prints_the_public_contents_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let made = make_store(&path);
    let output = ferrolm(&["store", "inspect", path.to_str().unwrap()], Some(PASSPHRASE), None);
    let out = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));

    assert!(out.contains(&format!("schema version: {}\n", ferrolm_store::SCHEMA_VERSION)), "{out}");
    assert!(out.contains("generation: 1\n"), "{out}");
    assert!(out.contains("store key wrapped by: passphrase (Argon2id, 256 KiB, 1 passes, 1 lanes)"), "{out}");
    assert!(out.contains("lease: expired by `main-app` until 2000 ms"), "{out}");
    assert!(out.contains("account: @alice:example.org device ALICEDEVICE"), "{out}");
    assert!(out.contains(&format!("  curve25519: {}\n", made.curve25519)), "{out}");
    assert!(out.contains(&format!("  ed25519:    {}\n", made.ed25519)), "{out}");
    assert!(out.contains("one-time keys held: 5"), "{out}");
    for (table, count) in [
        ("singletons", 3), // account, backup, cross-signing keys
        ("olm_sessions", 1),
        ("inbound_group_sessions", 5),
        ("backup_queue", 3),
        ("devices", 3),
        ("tracked_users", 1),
        ("secrets_inbox", 1),
        ("outbound_group_sessions", 0),
    ] {
        assert!(out.contains(&format!("\n  {table}: {count}\n")), "{table}: {count} in {out}");
    }
    assert!(!out.contains("  meta:"), "{out}");
    assert!(out.contains("devices: 2 users\n  @bob:example.org: 2 devices\n"), "{out}");
    assert!(
        out.contains(
            "  @carol:example.org: 1 devices\n    CAROLOLD  curve25519 -  ed25519 -  trust blacklisted  (deleted)\n"
        ),
        "{out}"
    );
    for (id, curve) in &made.bob_devices {
        assert!(out.contains(&format!("    {id}  curve25519 {curve}  ed25519 ")), "{id} in {out}");
    }
    assert!(out.contains("trust verified"), "{out}");
    assert!(out.contains("room keys: 5 (2 backed up)\n"), "{out}");
    assert!(out.contains("  !alpha:example.org: 3 keys\n"), "{out}");
    assert!(out.contains("  !beta:example.org: 1 keys\n"), "{out}");
    assert!(out.contains("  !gamma:example.org: 1 keys\n"), "{out}");
    for (_, session_id, index, backed_up) in &made.room_keys {
        let line =
            out.lines().find(|l| l.contains(session_id.as_str())).unwrap_or_else(|| panic!("{session_id} in {out}"));
        assert!(line.contains(&format!("first known index {index} ")), "{line}");
        assert_eq!(line.contains("backed up"), *backed_up, "{line}");
    }
    // Keys are listed under their own room.
    let room_of = |session_id: &str| {
        let at = out.find(session_id).unwrap();
        out[..at].lines().rfind(|l| l.starts_with("  !")).unwrap().to_owned()
    };
    for (room, session_id, _, _) in &made.room_keys {
        assert!(room_of(session_id).starts_with(&format!("  {room}: ")), "{session_id} under {room} in {out}");
    }
    assert_no_secret(&made, &output);
}

#[test]
fn a_wrong_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let made = make_store(&path);
    let output = ferrolm(&["store", "inspect", path.to_str().unwrap()], Some("not the passphrase"), None);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("wrong passphrase"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert_no_secret(&made, &output);
    let output = ferrolm(
        &["store", "change-passphrase", path.to_str().unwrap()],
        Some("not the passphrase"),
        Some(NEW_PASSPHRASE),
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("wrong passphrase"), "{}", stderr(&output));
    // Nothing changed: the right passphrase still opens it.
    assert!(SqliteStore::open_file(&path, &StoreSecret::passphrase(PASSPHRASE)).is_ok());
}

#[test]
fn change_passphrase_rewraps_the_key_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let path_str = path.to_str().unwrap();
    let made = make_store(&path);
    let before = stdout(&ferrolm(&["store", "inspect", path_str], Some(PASSPHRASE), None));

    let output = ferrolm(&["store", "change-passphrase", path_str], Some(PASSPHRASE), Some(NEW_PASSPHRASE));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("passphrase of"), "{}", stdout(&output));
    assert_no_secret(&made, &output);

    let old = ferrolm(&["store", "inspect", path_str], Some(PASSPHRASE), None);
    assert!(!old.status.success());
    assert!(stderr(&old).contains("wrong passphrase"), "{}", stderr(&old));

    let new = ferrolm(&["store", "inspect", path_str], Some(NEW_PASSPHRASE), None);
    assert!(new.status.success(), "{}", stderr(&new));
    // The same contents (the lease line now names the tool, which released it).
    let without_lease = |s: &str| s.lines().filter(|l| !l.starts_with("lease:")).collect::<Vec<_>>().join("\n");
    assert_eq!(without_lease(&stdout(&new)), without_lease(&before));
    // The same Argon2id parameters as before.
    assert!(stdout(&new).contains("passphrase (Argon2id, 256 KiB, 1 passes, 1 lanes)"));
    let store = SqliteStore::open_file(&path, &StoreSecret::passphrase(NEW_PASSPHRASE)).unwrap();
    assert_eq!(store.room_key_counts().unwrap().total, 5);
    assert_eq!(store.current_lease().unwrap(), None, "the tool released its lease");
    assert!(SqliteStore::open_file(&path, &StoreSecret::passphrase(PASSPHRASE)).is_err());
}

#[test]
fn change_passphrase_waits_for_the_lease_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let path_str = path.to_str().unwrap();
    make_store(&path);
    let mut store = SqliteStore::open_file(&path, &StoreSecret::passphrase(PASSPHRASE)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(matches!(store.acquire_lease("main-app", now, 3_600_000).unwrap(), LeaseOutcome::Acquired { .. }));

    let inspect = ferrolm(&["store", "inspect", path_str], Some(PASSPHRASE), None);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    assert!(stdout(&inspect).contains("lease: held by `main-app` until"), "{}", stdout(&inspect));

    let output = ferrolm(&["store", "change-passphrase", path_str], Some(PASSPHRASE), Some(NEW_PASSPHRASE));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is in use: `main-app` holds its lease"), "{}", stderr(&output));
    assert!(SqliteStore::open_file(&path, &StoreSecret::passphrase(PASSPHRASE)).is_ok());
    store.release_lease().unwrap();
}

#[test]
fn init_creates_an_empty_store_or_one_with_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.sqlite3");
    let output = ferrolm(&["store", "init", empty.to_str().unwrap(), "--kdf", "256,1,1"], Some(PASSPHRASE), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let store = SqliteStore::open_file(&empty, &StoreSecret::passphrase(PASSPHRASE)).unwrap();
    assert!(store.account().unwrap().is_none());
    assert_eq!(store.room_key_counts().unwrap().total, 0);
    let inspect = stdout(&ferrolm(&["store", "inspect", empty.to_str().unwrap()], Some(PASSPHRASE), None));
    assert!(inspect.contains("account: none\n") && inspect.contains("room keys: 0 (0 backed up)\n"), "{inspect}");
    assert!(inspect.contains("lease: none\n") && inspect.contains("generation: 0\n"), "{inspect}");

    let with_account = dir.path().join("carol.sqlite3");
    let args = [
        "store",
        "init",
        with_account.to_str().unwrap(),
        "--user",
        "@carol:example.org",
        "--device",
        "CAROLDEV",
        "--kdf",
        "256,1,1",
    ];
    let output = ferrolm(&args, Some(PASSPHRASE), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let store = SqliteStore::open_file(&with_account, &StoreSecret::passphrase(PASSPHRASE)).unwrap();
    let account = store.account().unwrap().unwrap();
    assert_eq!(account.user_id.as_str(), "@carol:example.org");
    assert_eq!(account.device_id.as_str(), "CAROLDEV");
    let keys = account.account.identity_keys();
    let out = stdout(&output);
    assert!(out.contains(&keys.curve25519.to_base64()) && out.contains(&keys.ed25519.to_base64()), "{out}");

    // An existing file is never overwritten, and a store file is left as it was.
    let again = ferrolm(&args, Some(PASSPHRASE), None);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    let store = SqliteStore::open_file(&with_account, &StoreSecret::passphrase(PASSPHRASE)).unwrap();
    assert_eq!(store.account().unwrap().unwrap().account.identity_keys(), keys);

    let bad =
        ferrolm(&["store", "init", dir.path().join("x").to_str().unwrap(), "--kdf", "1,2"], Some(PASSPHRASE), None);
    assert!(!bad.status.success() && stderr(&bad).contains("--kdf"), "{}", stderr(&bad));
}

#[test]
fn files_that_are_not_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    let output = ferrolm(&["store", "inspect", text.to_str().unwrap()], Some(PASSPHRASE), None);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not a database"), "{}", stderr(&output));
    let missing = ferrolm(&["store", "inspect", dir.path().join("none").to_str().unwrap()], Some(PASSPHRASE), None);
    assert!(!missing.status.success() && stderr(&missing).contains("no such file"), "{}", stderr(&missing));
}
