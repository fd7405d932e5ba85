//! Backup decryption (`m.megolm_backup.v1.curve25519-aes-sha2`): ferrolm, vodozemac and libolm
//! in the same run, one session at a time and a whole backup of 100,000 sessions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrolm::pk as f;
use ferrolm_interop::libolm as l;
use vodozemac::pk_encryption as v;

/// A backed-up session as clients store it: a JSON object of a few hundred bytes.
fn session_json(i: usize) -> Vec<u8> {
    format!(
        r#"{{"algorithm":"m.megolm.v1.aes-sha2","forwarding_curve25519_key_chain":[],"sender_claimed_keys":{{"ed25519":"{0:0>43}"}},"sender_key":"{0:0>43}","session_key":"{1}"}}"#,
        i,
        "A".repeat(220)
    )
    .into_bytes()
}

/// The backup key in both implementations, and `count` messages encrypted by vodozemac,
/// readable by both.
fn backup(count: usize) -> (f::PkDecryption, v::PkDecryption, Vec<f::PkMessage>, Vec<v::Message>) {
    let secret = [0x42u8; 32];
    let f_key = f::PkDecryption::from_bytes(&secret);
    let v_key = v::PkDecryption::from_key(vodozemac::Curve25519SecretKey::from_slice(&secret));
    let encryption = v::PkEncryption::from_key(v_key.public_key());
    let v_messages: Vec<v::Message> = (0..count).map(|i| encryption.encrypt(&session_json(i)).unwrap()).collect();
    let f_messages = v_messages
        .iter()
        .map(|m| f::PkMessage {
            ciphertext: m.ciphertext.clone(),
            mac: m.mac.as_slice().try_into().unwrap(),
            ephemeral_key: ferrolm::types::Curve25519PublicKey::from_bytes(m.ephemeral_key.to_bytes()),
        })
        .collect();
    (f_key, v_key, f_messages, v_messages)
}

fn one_session(c: &mut Criterion) {
    let (f_key, v_key, f_messages, v_messages) = backup(1);
    let mut g = c.benchmark_group("pk/decrypt_one_session");
    g.bench_function("ferrolm", |b| b.iter(|| f_key.decrypt(&f_messages[0]).unwrap()));
    g.bench_function("vodozemac", |b| b.iter(|| v_key.decrypt(&v_messages[0]).unwrap()));
    let mut l_key = l::PkDecryption::from_private_key(&[0x42; 32]).unwrap();
    let (c, m, e) = f_messages[0].to_base64();
    g.bench_function("libolm", |b| b.iter(|| l_key.decrypt(&e, &m, &c).unwrap()));
    g.finish();
}

/// Restoring a backup of 100,000 sessions: one by one in both implementations, and with
/// ferrolm's `decrypt_many`, which spreads the work over every core.
fn whole_backup(c: &mut Criterion) {
    const SESSIONS: usize = 100_000;
    let (f_key, v_key, f_messages, v_messages) = backup(SESSIONS);
    for (group, parallel) in [("pk/restore_100000_sequential", false), ("pk/restore_100000_parallel", true)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(SESSIONS as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(20));
        g.bench_function("ferrolm", |b| {
            b.iter_batched(
                || (),
                |()| {
                    let results = if parallel {
                        f_key.decrypt_many(&f_messages)
                    } else {
                        f_messages.iter().map(|m| f_key.decrypt(m)).collect()
                    };
                    assert!(results.iter().all(Result::is_ok));
                },
                BatchSize::PerIteration,
            )
        });
        if !parallel {
            g.bench_function("vodozemac", |b| {
                b.iter(|| v_messages.iter().map(|m| v_key.decrypt(m).unwrap()).collect::<Vec<_>>())
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
