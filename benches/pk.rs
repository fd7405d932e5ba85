//! Backup decryption (`m.megolm_backup.v1.curve25519-aes-sha2`): ferrolm, vodozemac and libolm
//! in the same run, one session at a time and a whole backup of 100,000 sessions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrolm_benches::Backup;

/// One session: a single X25519 exchange, key derivation, MAC and AES-CBC, some 70 µs. Short
/// operations on this VM need long measurements to steady their medians.
fn one_session(c: &mut Criterion) {
    let mut backup = Backup::new(1);
    let mut g = c.benchmark_group("pk/decrypt_one_session");
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("ferrolm", |b| b.iter(|| backup.ferrolm_key.decrypt(&backup.ferrolm[0]).unwrap()));
    g.bench_function("vodozemac", |b| b.iter(|| backup.vodozemac_key.decrypt(&backup.vodozemac[0]).unwrap()));
    let (c, m, e) = backup.libolm[0].clone();
    g.bench_function("libolm", |b| b.iter(|| backup.libolm_key.decrypt(&e, &m, &c).unwrap()));
    g.finish();
}

/// Restoring a backup of 100,000 sessions: one by one in each implementation, and with
/// ferrolm's `decrypt_many`, which spreads the work over every core.
fn whole_backup(c: &mut Criterion) {
    const SESSIONS: usize = 100_000;
    let mut backup = Backup::new(SESSIONS);
    for (group, parallel) in [("pk/restore_100000_sequential", false), ("pk/restore_100000_parallel", true)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(SESSIONS as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(20));
        let key = &backup.ferrolm_key;
        let messages = &backup.ferrolm;
        g.bench_function("ferrolm", |b| {
            b.iter_batched(
                || (),
                |()| {
                    let results = if parallel {
                        key.decrypt_many(messages)
                    } else {
                        messages.iter().map(|m| key.decrypt(m)).collect()
                    };
                    assert!(results.iter().all(Result::is_ok));
                },
                BatchSize::PerIteration,
            )
        });
        if !parallel {
            let (key, messages) = (&backup.vodozemac_key, &backup.vodozemac);
            g.bench_function("vodozemac", |b| {
                b.iter(|| messages.iter().map(|m| key.decrypt(m).unwrap()).collect::<Vec<_>>())
            });
            // About 25 s an iteration: libolm's ten samples take four minutes of the run.
            let (key, messages) = (&mut backup.libolm_key, &backup.libolm);
            g.bench_function("libolm", |b| {
                b.iter(|| messages.iter().map(|(c, m, e)| key.decrypt(e, m, c).unwrap()).collect::<Vec<_>>())
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(800)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = pk; config = config(); targets = one_session, whole_backup }
criterion_main!(pk);
