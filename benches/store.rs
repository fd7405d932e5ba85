//! The key store: ferrolm-store's `SqliteStore` and matrix-sdk-sqlite 0.18's
//! `SqliteCryptoStore`, workload by workload, in the same run and on the same data (see
//! benches/README.md, "The store group").
//!
//! Every set-up (making the keys, filling the stores) happens the first time a benchmark that
//! needs it runs, so a filtered run (`cargo bench --bench store -- olm_session`) makes only
//! what it measures. Stores are closed outside the timing and before the next iteration
//! starts, so neither store's closing checkpoint overlaps the other's measurement.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use ferrolm_benches::store::{self as s, Ferrolm, RoomKeys, Sdk, TempDir};
use ferrolm_store as fs;

/// Two stores (one per implementation) holding the same [`s::STORE_SIZE`] room keys, closed,
/// shared by the lookup and open benchmarks.
struct Filled {
    keys: Arc<RoomKeys>,
    /// ferrolm's room ids, in `keys`' order.
    ferrolm_rooms: Vec<fs::RoomId>,
    ferrolm_dir: TempDir,
    sdk_dir: TempDir,
}

fn filled<'a>(slot: &'a mut Option<Filled>, rt: &tokio::runtime::Runtime) -> &'a Filled {
    slot.get_or_insert_with(|| {
        let keys = RoomKeys::generate(s::STORE_SIZE);
        let ferrolm_dir = TempDir::new("ferrolm-filled");
        drop(Ferrolm::create_filled(ferrolm_dir.path(), &keys));
        let sdk_dir = TempDir::new("sdk-filled");
        rt.block_on(async { Sdk::create_filled(sdk_dir.path(), &keys).await.close().await });
        s::record_size("ferrolm", s::dir_size(ferrolm_dir.path()), keys.len());
        s::record_size("matrix-sdk-sqlite", s::dir_size(sdk_dir.path()), keys.len());
        let ferrolm_rooms = keys.keys.iter().map(|k| fs::RoomId::new(k.room_id.as_str())).collect();
        Filled { keys, ferrolm_rooms, ferrolm_dir, sdk_dir }
    })
}

/// (a) 10,000 room keys saved in one change set into a store that holds the account: what
/// a backup restore or a key import does.
fn save_10000(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("store/save_10000_room_keys");
    g.throughput(Throughput::Elements(s::SAVE_BATCH as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let mut ferrolm_changes = None;
    g.bench_function("ferrolm", |b| {
        let changes = ferrolm_changes
            .get_or_insert_with(|| s::room_key_changes(RoomKeys::generate(s::SAVE_BATCH).ferrolm_records()));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = TempDir::new("ferrolm-save");
                let mut store = Ferrolm::create(dir.path());
                let start = Instant::now();
                store.save_room_keys(changes);
                total += start.elapsed();
                drop(store);
            }
            total
        })
    });
    let mut sdk_sessions = None;
    g.bench_function("matrix-sdk-sqlite", |b| {
        let sessions = sdk_sessions.get_or_insert_with(|| RoomKeys::generate(s::SAVE_BATCH).sdk_sessions());
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = TempDir::new("sdk-save");
                let store = rt.block_on(Sdk::create(dir.path()));
                let sessions = sessions.clone();
                let start = Instant::now();
                rt.block_on(store.save_room_keys(sessions));
                total += start.elapsed();
                rt.block_on(store.close());
            }
            total
        })
    });
    g.finish();
}

/// (b) One room key read among 100,000 (by room and session id, decrypted and decoded into
/// a session ready to decrypt): what every room event needs. Consecutive reads hit keys far
/// apart ([`s::lookup_order`]).
fn lookup(c: &mut Criterion, rt: &tokio::runtime::Runtime, slot: &mut Option<Filled>) {
    let mut g = c.benchmark_group("store/lookup_1_of_100000");
    let mut ferrolm = None;
    g.bench_function("ferrolm", |b| {
        let f = filled(slot, rt);
        let store = ferrolm.get_or_insert_with(|| Ferrolm::open(f.ferrolm_dir.path()));
        let order = s::lookup_order(f.keys.len());
        let mut next = 0;
        b.iter(|| {
            let i = order[next % order.len()];
            next += 1;
            black_box(store.room_key(&f.ferrolm_rooms[i], &f.keys.keys[i].session_id))
        })
    });
    drop(ferrolm);
    let mut sdk = None;
    g.bench_function("matrix-sdk-sqlite", |b| {
        let f = filled(slot, rt);
        let store = sdk.get_or_insert_with(|| rt.block_on(Sdk::open(f.sdk_dir.path())));
        let order = s::lookup_order(f.keys.len());
        let mut next = 0;
        b.iter(|| {
            let (room, session) = f.keys.id(order[next % order.len()]);
            next += 1;
            black_box(rt.block_on(store.room_key(room, session)))
        })
    });
    if let Some(sdk) = sdk {
        rt.block_on(sdk.close());
    }
    g.finish();
}

/// (c) One changed Olm session saved in its own change set: what the machine commits after
/// every to-device message. The message is encrypted in the untimed set-up.
fn save_olm_session(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("store/save_changed_olm_session");
    let mut ferrolm = None;
    g.bench_function("ferrolm", |b| {
        let (_, store, session) = ferrolm.get_or_insert_with(|| {
            let dir = TempDir::new("ferrolm-olm");
            let mut store = Ferrolm::create(dir.path());
            let session = store.olm_session();
            (dir, store, session)
        });
        b.iter_batched(
            || s::ferrolm_advance(session),
            |changes| store.save_olm_session(&changes),
            BatchSize::SmallInput,
        )
    });
    drop(ferrolm);
    let mut sdk = None;
    g.bench_function("matrix-sdk-sqlite", |b| {
        let (_, store, session) = sdk.get_or_insert_with(|| {
            let dir = TempDir::new("sdk-olm");
            let store = rt.block_on(Sdk::create(dir.path()));
            let session = rt.block_on(store.olm_session());
            (dir, store, session)
        });
        b.iter_batched(
            || rt.block_on(s::sdk_advance(session)),
            |changed| rt.block_on(store.save_olm_session(changed)),
            BatchSize::SmallInput,
        )
    });
    if let Some((dir, store, _)) = sdk {
        rt.block_on(store.close());
        drop(dir);
    }
    g.finish();
}

/// (d) Opening a store that holds 100,000 room keys, with the raw store key, and loading the
/// account: what a client does when it starts (or a notification extension wakes up).
fn open(c: &mut Criterion, rt: &tokio::runtime::Runtime, slot: &mut Option<Filled>) {
    let mut g = c.benchmark_group("store/open_100000_room_keys");
    g.bench_function("ferrolm", |b| {
        let f = filled(slot, rt);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let store = Ferrolm::open(f.ferrolm_dir.path());
                black_box(store.account());
                total += start.elapsed();
                drop(store);
            }
            total
        })
    });
    g.bench_function("matrix-sdk-sqlite", |b| {
        let f = filled(slot, rt);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let store = rt.block_on(Sdk::open(f.sdk_dir.path()));
                black_box(rt.block_on(store.account()));
                total += start.elapsed();
                rt.block_on(store.close());
            }
            total
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // matrix-sdk-sqlite's futures and its connection pool's destructors need a tokio runtime;
    // the runtime lives for the whole run and is entered once (see `s::runtime`).
    let rt = s::runtime();
    let _in_runtime = rt.enter();
    let mut slot = None;
    save_olm_session(&mut c, &rt);
    save_10000(&mut c, &rt);
    lookup(&mut c, &rt, &mut slot);
    open(&mut c, &rt, &mut slot);
    drop(slot);
    c.final_summary();
}
