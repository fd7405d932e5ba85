//! Restoring a server-side key backup of 100,000 room keys into a SQLite store, end to end:
//! ferrolm-machine's `OlmMachine::restore_backup` on ferrolm-store's `SqliteStore`, against
//! matrix-sdk-crypto 0.18's `OlmMachine` on matrix-sdk-sqlite's `SqliteCryptoStore`, doing
//! what matrix-sdk does with a downloaded backup (see benches/README.md, "The backup restore
//! group").
//!
//! Both restore the same backup: the body of `GET /room_keys/keys` for 100,000 real Megolm
//! sessions in 1,000 rooms, encrypted to one backup key. It is generated once and cached under
//! the target folder (`<target>/ferrolm-bench-cache/`), since making it takes longer than
//! restoring it. Timed: from the downloaded body (bytes) and the decryption key to the keys
//! committed in the store. Untimed: creating each empty store and machine, and closing them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolm_benches::store::{self as s, TempDir};
use ferrolm_machine::{BackupDecryptionKey, BackupInfo, Env, OlmMachine};
use ferrolm_store as fs;
use matrix_sdk_crypto::olm::ExportedRoomKey;
use matrix_sdk_crypto::store::CryptoStore as _;
use matrix_sdk_crypto::store::types::BackupDecryptionKey as SdkBackupKey;
use matrix_sdk_sqlite::SqliteCryptoStore;
use ruma::api::client::backup::{KeyBackupData, RoomKeyBackup};
use ruma::{OwnedRoomId, device_id, user_id};

const KEYS: usize = 100_000;
const ROOMS: usize = 1_000;
const BACKUP_SECRET: [u8; 32] = [0x42; 32];
const ALGORITHM: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

/// The cached backup body, generated on first use.
fn backup_body() -> Vec<u8> {
    // The bench runs as <target>/release/deps/backup_restore-<hash>.
    let target = std::env::current_exe().ok().and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()));
    let dir = target.unwrap_or_else(std::env::temp_dir).join("ferrolm-bench-cache");
    let path: PathBuf = dir.join(format!("backup_restore_{KEYS}_v1.json"));
    if let Ok(body) = std::fs::read(&path) {
        return body;
    }
    eprintln!("generating the {KEYS}-key backup once (cached in {})", path.display());
    let body = generate();
    std::fs::create_dir_all(&dir).expect("the cache folder");
    std::fs::write(&path, &body).expect("the cached backup");
    body
}

/// `GET /room_keys/keys` for [`KEYS`] Megolm sessions from 100 senders in [`ROOMS`] rooms,
/// encrypted (by ferrolm's `PkEncryption`) to [`BACKUP_SECRET`]'s public key.
fn generate() -> Vec<u8> {
    use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig};
    let encryption =
        ferrolm::pk::PkEncryption::from_key(ferrolm::pk::PkDecryption::from_bytes(&BACKUP_SECRET).public_key())
            .expect("a valid key");
    let senders: Vec<_> = (0..s::SENDERS).map(|_| ferrolm::olm::Account::new().identity_keys()).collect();
    let mut rooms: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for i in 0..KEYS {
        let outbound = GroupSession::new(SessionConfig::version_1());
        let inbound = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
        let sender = &senders[i % senders.len()];
        let plaintext = serde_json::json!({
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": sender.curve25519.to_base64(),
            "session_key": inbound.export_at_first_known_index().to_base64().as_str(),
            "sender_claimed_keys": {"ed25519": sender.ed25519.to_base64()},
            "forwarding_curve25519_key_chain": [],
        });
        let message = encryption.encrypt(plaintext.to_string().as_bytes());
        let (ciphertext, mac, ephemeral) = message.to_base64();
        let entry = serde_json::json!({
            "first_message_index": 0, "forwarded_count": 0, "is_verified": false,
            "session_data": {"ephemeral": ephemeral, "ciphertext": ciphertext, "mac": mac},
        });
        rooms.entry(s::room_id(i % ROOMS).to_string()).or_default().insert(inbound.session_id().to_base64(), entry);
    }
    let rooms: serde_json::Map<String, serde_json::Value> =
        rooms.into_iter().map(|(room, sessions)| (room, serde_json::json!({ "sessions": sessions }))).collect();
    serde_json::to_vec(&serde_json::json!({ "rooms": rooms })).expect("JSON")
}

/// The 1-minute load average (the machine is shared: the report prints the range seen).
fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next()?.parse().ok()).unwrap_or(f64::NAN)
}

/// The CPU time this process has used so far, every thread (user + system), in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms). Unlike wall-clock time it does not grow with the
/// load other processes put on the machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Writes the load averages and CPU times of `implementation`'s runs beside criterion's
/// results (`<target>/criterion/backup_load/<implementation>.json`) for `report.py`.
fn record_load(implementation: &str, seen: &[f64], cpu: &[f64]) {
    let target = std::env::current_exe().ok().and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()));
    let Some(target) = target else { return };
    let dir = target.join("criterion").join("backup_load");
    let list = |v: &[f64]| v.iter().map(|l| format!("{l:.2}")).collect::<Vec<_>>().join(",");
    let json = format!(r#"{{"load_1min":[{}],"cpu_s":[{}]}}"#, list(seen), list(cpu));
    if std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{implementation}.json")), json))
        .is_err()
    {
        eprintln!("could not record the load in {}", dir.display());
    }
}

/// matrix-sdk's handling of a downloaded backup: every entry decrypted with the backup key
/// into a `BackedUpRoomKey`, then all imported through the store as from this backup version.
async fn sdk_restore(machine: &matrix_sdk_crypto::OlmMachine, key: &SdkBackupKey, body: &[u8]) -> usize {
    #[derive(serde::Deserialize)]
    struct Keys {
        rooms: BTreeMap<OwnedRoomId, RoomKeyBackup>,
    }
    let keys: Keys = serde_json::from_slice(body).expect("a backup");
    let mut exported = Vec::with_capacity(KEYS);
    for (room_id, room) in keys.rooms {
        for (session_id, data) in room.sessions {
            let Ok(data) = data.deserialize() else { continue };
            let data: KeyBackupData = data;
            let Ok(room_key) = key.decrypt_session_data(data.session_data) else { continue };
            exported.push(ExportedRoomKey::from_backed_up_room_key(room_id.clone(), session_id, room_key));
        }
    }
    let result = machine.store().import_room_keys(exported, Some("1"), |_, _| {}).await.expect("imported");
    result.imported_count
}

fn backup_restore(c: &mut Criterion) {
    let body = backup_body();
    let key = BackupDecryptionKey::from_bytes(&BACKUP_SECRET);
    let mut auth_data = serde_json::Map::new();
    auth_data.insert("public_key".into(), key.public_key().to_base64().into());
    let info = BackupInfo::from_parts("1".into(), ALGORITHM, auth_data).expect("backup info");

    let mut g = c.benchmark_group("backup/restore_100000_into_sqlite");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(30));
    let (mut ferrolm_load, mut ferrolm_cpu) = (Vec::new(), Vec::new());
    g.bench_function("ferrolm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = TempDir::new("ferrolm-restore");
                let store = fs::SqliteStore::create_file(
                    dir.path().join(s::FERROLM_FILE),
                    &fs::StoreSecret::key(s::STORE_KEY),
                    fs::KdfParams::default(),
                )
                .expect("a store");
                let mut machine =
                    OlmMachine::open(s::USER_ID.try_into().unwrap(), s::DEVICE_ID.into(), store, Env::system())
                        .expect("a machine");
                let before = load();
                let cpu = cpu_seconds();
                let start = Instant::now();
                let report = machine.restore_backup(&info, &key, &body, |_, _| {}).expect("restored");
                let elapsed = start.elapsed();
                let cpu = cpu_seconds() - cpu;
                total += elapsed;
                assert_eq!(report.imported, KEYS);
                let after = load();
                eprintln!(
                    "ferrolm restore: {:.2} s, {cpu:.2} CPU s (load {before:.2} before, {after:.2} after)",
                    elapsed.as_secs_f64()
                );
                ferrolm_load.extend([before, after]);
                ferrolm_cpu.push(cpu);
                drop(machine);
            }
            total
        })
    });
    let rt = s::runtime();
    let sdk_key = SdkBackupKey::from_bytes(&BACKUP_SECRET);
    let (mut sdk_load, mut sdk_cpu) = (Vec::new(), Vec::new());
    g.bench_function("matrix-sdk-crypto", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = TempDir::new("sdk-restore");
                let elapsed = rt.block_on(async {
                    let store =
                        SqliteCryptoStore::open_with_key(dir.path(), Some(&s::STORE_KEY)).await.expect("a store");
                    let machine = matrix_sdk_crypto::OlmMachine::with_store(
                        user_id!("@bench:example.org"),
                        device_id!("BENCHDEVICE"),
                        store.clone(),
                        None,
                    )
                    .await
                    .expect("a machine");
                    let before = load();
                    let cpu = cpu_seconds();
                    let start = Instant::now();
                    let imported = sdk_restore(&machine, &sdk_key, &body).await;
                    let elapsed = start.elapsed();
                    let cpu = cpu_seconds() - cpu;
                    assert_eq!(imported, KEYS);
                    let after = load();
                    eprintln!(
                        "matrix-sdk-crypto restore: {:.2} s, {cpu:.2} CPU s (load {before:.2} before, {after:.2} after)",
                        elapsed.as_secs_f64()
                    );
                    sdk_load.extend([before, after]);
                    sdk_cpu.push(cpu);
                    drop(machine);
                    store.close().await.expect("closed");
                    elapsed
                });
                total += elapsed;
            }
            total
        })
    });
    g.finish();
    record_load("ferrolm", &ferrolm_load, &ferrolm_cpu);
    record_load("matrix-sdk-crypto", &sdk_load, &sdk_cpu);
}

criterion_group!(benches, backup_restore);
criterion_main!(benches);
