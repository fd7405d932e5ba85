//! The key store: ferrolm-store's `SqliteStore` and matrix-sdk-sqlite 0.18's
//! `SqliteCryptoStore`, workload by workload, in the same run and on the same data (see
//! benches/README.md, "The store group").
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrolm_benches::store::{self as s, RoomKeys, Sdk, TempDir};

fn save_10000(c: &mut Criterion) {
    let keys = RoomKeys::generate(s::SAVE_BATCH);
    let sdk_sessions = keys.sdk_sessions();
    let mut g = c.benchmark_group("store/save_10000_room_keys");
    g.throughput(Throughput::Elements(s::SAVE_BATCH as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let rt = s::runtime();
    let _in_runtime = rt.enter(); // matrix-sdk-sqlite's stores close their connections on tokio
    g.bench_function("matrix-sdk-sqlite", |b| {
        b.iter_batched(
            || {
                let dir = TempDir::new("sdk-save");
                let store = rt.block_on(Sdk::create(dir.path()));
                (dir, store, sdk_sessions.clone())
            },
            |(dir, store, sessions)| {
                rt.block_on(store.save_room_keys(sessions));
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let keys = RoomKeys::generate(s::STORE_SIZE);
    let rt = s::runtime();
    let _in_runtime = rt.enter(); // matrix-sdk-sqlite's stores close their connections on tokio
    let sdk_dir = TempDir::new("sdk-lookup");
    let sdk = rt.block_on(Sdk::create_filled(sdk_dir.path(), &keys));
    let mut g = c.benchmark_group("store/lookup_1_of_100000");
    let order = s::lookup_order(keys.len());
    let mut next = 0;
    g.bench_function("matrix-sdk-sqlite", |b| {
        b.iter(|| {
            let (room, session) = keys.id(order[next % order.len()]);
            next += 1;
            black_box(rt.block_on(sdk.room_key(room, session)))
        })
    });
    g.finish();
    drop(sdk);
    drop(sdk_dir);
}

fn save_olm_session(c: &mut Criterion) {
    let rt = s::runtime();
    let _in_runtime = rt.enter(); // matrix-sdk-sqlite's stores close their connections on tokio
    let mut g = c.benchmark_group("store/save_changed_olm_session");
    let dir = TempDir::new("sdk-olm");
    let store = rt.block_on(Sdk::create(dir.path()));
    let mut session = rt.block_on(store.olm_session());
    g.bench_function("matrix-sdk-sqlite", |b| {
        b.iter_batched(
            || rt.block_on(s::sdk_advance(&mut session)),
            |changed| rt.block_on(store.save_olm_session(changed)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let keys = RoomKeys::generate(s::STORE_SIZE);
    let rt = s::runtime();
    let _in_runtime = rt.enter(); // matrix-sdk-sqlite's stores close their connections on tokio
    let sdk_dir = TempDir::new("sdk-open");
    rt.block_on(async { Sdk::create_filled(sdk_dir.path(), &keys).await.close().await });
    let sdk_size = s::dir_size(sdk_dir.path());
    s::record_size("matrix-sdk-sqlite", sdk_size, keys.len());
    let mut g = c.benchmark_group("store/open_100000_room_keys");
    g.bench_function("matrix-sdk-sqlite", |b| {
        b.iter_batched(|| (), |()| rt.block_on(Sdk::open(sdk_dir.path())), BatchSize::PerIteration)
    });
    g.finish();
}

criterion_group!(benches, save_olm_session, save_10000, lookup, open);
criterion_main!(benches);
