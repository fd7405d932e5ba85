//! The machine: ferrolm-machine's `OlmMachine` on ferrolm-store's SQLite store and
//! matrix-sdk-crypto 0.18's `OlmMachine` on matrix-sdk-sqlite's, workload by workload, in the
//! same run and on the same fixture of real devices (see benches/README.md, "The machine
//! group").
//!
//! Every workload ends with the machine's change set committed to its store (each commit waits
//! for SQLite's `fsync` on both sides). Opening machines and stores, building the responses
//! and reporting to-device requests as sent are untimed.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ferrolm::megolm as fm;
use ferrolm_benches::machine::{self as m, Fixture, RoomEvent};
use ferrolm_benches::store::TempDir;
use ferrolm_machine::TrustRequirement;
use matrix_sdk_crypto::store::CryptoStore;

/// A store whose machine knows the devices of the first `users` users (keys queried), and
/// holds no Olm session: one per implementation, copied for each iteration that needs it.
struct Templates {
    ferrolm: TempDir,
    sdk: TempDir,
}

fn templates(fixture: &Fixture, users: usize, rt: &tokio::runtime::Runtime) -> Templates {
    let users = fixture.users(users);
    let ferrolm = TempDir::new("machine-ferrolm-template");
    {
        let mut machine = m::ferrolm_open(ferrolm.path());
        let answers = m::ferrolm_queries(&mut machine, fixture, &users);
        m::ferrolm_apply(&mut machine, answers);
    }
    let sdk = TempDir::new("machine-sdk-template");
    rt.block_on(async {
        let (machine, _store) = m::sdk_open(sdk.path()).await;
        let answers = m::sdk_queries(&machine, fixture, &users).await;
        m::sdk_apply(&machine, answers).await;
    });
    Templates { ferrolm, sdk }
}

fn copy(template: &Path, name: &str) -> TempDir {
    let dir = TempDir::new(name);
    m::copy_store(template, dir.path());
    dir
}

/// (a) A `/keys/query` answer of 2,000 users (20,000 devices, each validated and stored), in
/// chunks of 250 users as both machines ask, into a machine that knew none of them.
fn keys_query(c: &mut Criterion, fixture: &Fixture, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("machine/keys_query_2000_users");
    g.throughput(Throughput::Elements((m::USERS * m::DEVICES_PER_USER) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let users = fixture.users(m::USERS);
    g.bench_function("ferrolm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = TempDir::new("machine-ferrolm-query");
                let mut machine = m::ferrolm_open(dir.path());
                let answers = m::ferrolm_queries(&mut machine, fixture, &users);
                let start = Instant::now();
                m::ferrolm_apply(&mut machine, answers);
                total += start.elapsed();
                drop(machine);
            }
            total
        })
    });
    g.bench_function("matrix-sdk-crypto", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = TempDir::new("machine-sdk-query");
                rt.block_on(async {
                    let (machine, store) = m::sdk_open(dir.path()).await;
                    let answers = m::sdk_queries(&machine, fixture, &users).await;
                    let start = Instant::now();
                    m::sdk_apply(&machine, answers).await;
                    total += start.elapsed();
                    drop(machine);
                    store.close().await.expect("closed");
                });
            }
            total
        })
    });
    g.finish();
}

/// (b) A room key shared with 10,000 devices of 1,000 users, no Olm session yet: the claim
/// asked for and its answer processed (10,000 one-time key signatures checked, 10,000
/// outbound sessions), then `m.room_key` encrypted for each device, every change committed.
fn share_new_sessions(c: &mut Criterion, fixture: &Fixture, templates: &Templates, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("machine/share_10000_devices_new_sessions");
    g.throughput(Throughput::Elements((m::SHARE_USERS * m::DEVICES_PER_USER) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    let users = fixture.users(m::SHARE_USERS);
    let claim = fixture.claim_response(&users);
    let room = m::room(0);
    g.bench_function("ferrolm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = copy(templates.ferrolm.path(), "machine-ferrolm-share");
                let mut machine = m::ferrolm_open(dir.path());
                let start = Instant::now();
                m::ferrolm_claim(&mut machine, &users, &claim);
                black_box(m::ferrolm_share(&mut machine, &room, &users));
                total += start.elapsed();
                drop(machine);
            }
            total
        })
    });
    g.bench_function("matrix-sdk-crypto", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = copy(templates.sdk.path(), "machine-sdk-share");
                rt.block_on(async {
                    let (machine, store) = m::sdk_open(dir.path()).await;
                    let start = Instant::now();
                    m::sdk_claim(&machine, &users, &claim).await;
                    black_box(m::sdk_share(&machine, &room, &users).await);
                    total += start.elapsed();
                    drop(machine);
                    store.close().await.expect("closed");
                });
            }
            total
        })
    });
    g.finish();
}

/// (c) A room key shared with the same 10,000 devices, Olm sessions established: a running
/// machine starts a new room's session and encrypts it for each device, every change
/// committed. Each iteration shares in another room; its to-device requests are reported
/// sent afterwards, untimed. Then (c') the call a client makes before every message it sends:
/// the same room's key "shared" again, every device already holding it.
fn share_existing_sessions(c: &mut Criterion, fixture: &Fixture, templates: &Templates, rt: &tokio::runtime::Runtime) {
    let users = fixture.users(m::SHARE_USERS);
    let claim = fixture.claim_response(&users);
    let ferrolm_dir = copy(templates.ferrolm.path(), "machine-ferrolm-sessions");
    let mut ferrolm = m::ferrolm_open(ferrolm_dir.path());
    m::ferrolm_claim(&mut ferrolm, &users, &claim);
    let ids = m::ferrolm_share(&mut ferrolm, &m::room(0), &users);
    m::ferrolm_sent(&mut ferrolm, &ids);
    let sdk_dir = copy(templates.sdk.path(), "machine-sdk-sessions");
    let (sdk, sdk_store) = rt.block_on(m::sdk_open(sdk_dir.path()));
    rt.block_on(async {
        m::sdk_claim(&sdk, &users, &claim).await;
        let ids = m::sdk_share(&sdk, &m::room(0), &users).await;
        m::sdk_sent(&sdk, &ids).await;
    });

    let mut g = c.benchmark_group("machine/share_10000_devices_existing_sessions");
    g.throughput(Throughput::Elements((m::SHARE_USERS * m::DEVICES_PER_USER) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let mut next = 1;
    g.bench_function("ferrolm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let room = m::room(next);
                next += 1;
                let start = Instant::now();
                let ids = m::ferrolm_share(&mut ferrolm, &room, &users);
                total += start.elapsed();
                m::ferrolm_sent(&mut ferrolm, &ids);
            }
            total
        })
    });
    let mut next = 1;
    g.bench_function("matrix-sdk-crypto", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let room = m::room(next);
                next += 1;
                rt.block_on(async {
                    let start = Instant::now();
                    let ids = m::sdk_share(&sdk, &room, &users).await;
                    total += start.elapsed();
                    m::sdk_sent(&sdk, &ids).await;
                });
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("machine/share_10000_devices_already_shared");
    g.throughput(Throughput::Elements((m::SHARE_USERS * m::DEVICES_PER_USER) as u64));
    g.sample_size(10);
    let room = m::room(0);
    g.bench_function("ferrolm", |b| {
        b.iter(|| {
            let share = ferrolm.share_room_key(&room, &users, Default::default()).expect("shared");
            assert!(share.shared_with.is_empty() && !share.rotated);
            black_box(share)
        })
    });
    g.bench_function("matrix-sdk-crypto", |b| {
        b.iter(|| {
            let requests = rt
                .block_on(sdk.share_room_key(
                    &room,
                    users.iter().map(|u| &**u),
                    matrix_sdk_crypto::EncryptionSettings::default(),
                ))
                .expect("shared");
            assert!(requests.is_empty());
            black_box(requests)
        })
    });
    g.finish();
    drop(ferrolm);
    drop(sdk);
    rt.block_on(sdk_store.close()).expect("closed");
}

/// (d) One room event decrypted by a running machine (its stores open, the event's session
/// read before), by a machine just opened on its store (nothing cached), and by the core
/// alone (the Megolm message decoded and decrypted: signature, MAC, AES).
fn decrypt(c: &mut Criterion, fixture: &Fixture, rt: &tokio::runtime::Runtime) {
    let event = RoomEvent::new(fixture);
    let templates = templates(fixture, 1, rt);
    event.ferrolm_save(templates.ferrolm.path());
    rt.block_on(async {
        let store = matrix_sdk_sqlite::SqliteCryptoStore::open_with_key(
            templates.sdk.path(),
            Some(&ferrolm_benches::store::STORE_KEY),
        )
        .await
        .expect("opens");
        event.sdk_save(&store).await;
        store.close().await.expect("closed");
    });
    let ferrolm_event = event.ferrolm_event();
    let sdk_event = event.sdk_event();
    let settings = matrix_sdk_crypto::DecryptionSettings {
        sender_device_trust_requirement: matrix_sdk_crypto::TrustRequirement::Untrusted,
    };
    let ferrolm_decrypt = |machine: &mut m::FerrolmMachine| {
        let decrypted = machine.decrypt_room_event(&ferrolm_event, &event.room_id, TrustRequirement::Untrusted);
        let decrypted = decrypted.expect("no store error").expect("decrypts");
        assert!(decrypted.encryption.sender_device.is_some(), "the sender's device is known");
        decrypted
    };

    let mut g = c.benchmark_group("machine/decrypt_room_event_warm");
    {
        let mut machine = m::ferrolm_open(templates.ferrolm.path());
        ferrolm_decrypt(&mut machine);
        g.bench_function("ferrolm", |b| b.iter(|| black_box(ferrolm_decrypt(&mut machine))));
    }
    {
        let (machine, store) = rt.block_on(m::sdk_open(templates.sdk.path()));
        rt.block_on(machine.decrypt_room_event(&sdk_event, &event.room_id, &settings)).expect("decrypts");
        g.bench_function("matrix-sdk-crypto", |b| {
            b.iter(|| black_box(rt.block_on(machine.decrypt_room_event(&sdk_event, &event.room_id, &settings))))
        });
        drop(machine);
        rt.block_on(store.close()).expect("closed");
    }
    g.finish();

    let mut g = c.benchmark_group("machine/decrypt_room_event_cold");
    g.bench_function("ferrolm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut machine = m::ferrolm_open(templates.ferrolm.path());
                let start = Instant::now();
                black_box(ferrolm_decrypt(&mut machine));
                total += start.elapsed();
                drop(machine);
            }
            total
        })
    });
    g.bench_function("matrix-sdk-crypto", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(async {
                    let (machine, store) = m::sdk_open(templates.sdk.path()).await;
                    let start = Instant::now();
                    black_box(
                        machine.decrypt_room_event(&sdk_event, &event.room_id, &settings).await.expect("decrypts"),
                    );
                    total += start.elapsed();
                    drop(machine);
                    store.close().await.expect("closed");
                });
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("machine/megolm_decrypt_bare");
    let mut session = event.ferrolm_session();
    g.bench_function("ferrolm", |b| {
        b.iter(|| {
            let message = fm::MegolmMessage::from_base64(&event.ciphertext).expect("a message");
            black_box(session.decrypt(&message).expect("decrypts"))
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // matrix-sdk-sqlite's futures and its connection pool's destructors need a tokio runtime.
    let rt = ferrolm_benches::store::runtime();
    let _in_runtime = rt.enter();
    let fixture = Fixture::load(m::USERS, m::DEVICES_PER_USER);
    decrypt(&mut c, &fixture, &rt);
    keys_query(&mut c, &fixture, &rt);
    let templates = templates(&fixture, m::SHARE_USERS, &rt);
    share_existing_sessions(&mut c, &fixture, &templates, &rt);
    share_new_sessions(&mut c, &fixture, &templates, &rt);
    c.final_summary();
}
