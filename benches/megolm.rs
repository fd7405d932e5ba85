//! Megolm: ferrolm, vodozemac and libolm, operation by operation, in the same run. libolm's
//! C API takes and returns base64, so its numbers include that encoding.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrolm::megolm as f;
use ferrolm_interop::libolm as l;
use vodozemac::megolm as v;

const V1F: f::SessionConfig = f::SessionConfig::version_1();

fn v1v() -> v::SessionConfig {
    v::SessionConfig::version_1()
}

fn creation_and_encryption(c: &mut Criterion) {
    let mut g = c.benchmark_group("megolm/create");
    g.bench_function("ferrolm", |b| b.iter(|| f::GroupSession::new(V1F)));
    g.bench_function("vodozemac", |b| b.iter(|| v::GroupSession::new(v1v())));
    g.bench_function("libolm", |b| b.iter(|| l::OutboundGroupSession::new().unwrap()));
    g.finish();

    for (name, len) in [("megolm/encrypt_26B", 26), ("megolm/encrypt_4KiB", 4096)] {
        let plaintext = vec![0x61u8; len];
        let mut g = c.benchmark_group(name);
        let mut fs = f::GroupSession::new(V1F);
        g.bench_function("ferrolm", |b| b.iter(|| fs.encrypt(black_box(&plaintext))));
        let mut vs = v::GroupSession::new(v1v());
        g.bench_function("vodozemac", |b| b.iter(|| vs.encrypt(black_box(&plaintext))));
        let mut ls = l::OutboundGroupSession::new().unwrap();
        g.bench_function("libolm", |b| b.iter(|| ls.encrypt(black_box(&plaintext)).unwrap()));
        g.finish();
    }
}

fn decryption(c: &mut Criterion) {
    // The next message of a session, in order (the common case: a live timeline).
    let mut g = c.benchmark_group("megolm/decrypt_26B");
    let mut fo = f::GroupSession::new(V1F);
    let mut fi = f::InboundGroupSession::new(&fo.session_key(), V1F);
    g.bench_function("ferrolm", |b| {
        b.iter_batched(|| fo.encrypt(&[0x61; 26]), |m| fi.decrypt(&m).unwrap(), BatchSize::SmallInput)
    });
    let mut vo = v::GroupSession::new(v1v());
    let mut vi = v::InboundGroupSession::new(&vo.session_key(), v1v());
    g.bench_function("vodozemac", |b| {
        b.iter_batched(|| vo.encrypt([0x61; 26]), |m| vi.decrypt(&m).unwrap(), BatchSize::SmallInput)
    });
    let mut lo = l::OutboundGroupSession::new().unwrap();
    let mut li = l::InboundGroupSession::new(&lo.session_key().unwrap()).unwrap();
    g.bench_function("libolm", |b| {
        b.iter_batched(|| lo.encrypt(&[0x61; 26]).unwrap(), |m| li.decrypt(&m).unwrap(), BatchSize::SmallInput)
    });
    g.finish();

    // A message at index 2^20, decrypted by a fresh session that starts at index 0. One sender
    // produces it (moved to 2^20 by patching its pickle with the ratchet exported at 2^20), and
    // both implementations decrypt the same bytes.
    let mut g = c.benchmark_group("megolm/decrypt_at_2^20_fresh");
    let sender = v::GroupSession::new(v1v());
    let key_b64 = sender.session_key().to_base64();
    let f_key = f::SessionKey::from_base64(&key_b64).unwrap();
    let f_fresh = f::InboundGroupSession::new(&f_key, V1F);
    let exported = f_fresh.export_at(1 << 20).unwrap().to_bytes();
    let mut pickle = serde_json::to_value(sender.pickle()).unwrap();
    pickle["ratchet"]["counter"] = serde_json::json!(1u32 << 20);
    pickle["ratchet"]["inner"] = serde_json::json!(exported[5..133].to_vec());
    let mut far_sender = v::GroupSession::from_pickle(serde_json::from_value(pickle).unwrap());
    let far_message = far_sender.encrypt(b"far ahead");
    let f_message = f::MegolmMessage::from_bytes(&far_message.to_bytes()).unwrap();
    assert_eq!(f_fresh.clone().decrypt(&f_message).unwrap().message_index, 1 << 20);
    g.bench_function("ferrolm", |b| {
        b.iter_batched(|| f_fresh.clone(), |mut s| s.decrypt(&f_message).unwrap(), BatchSize::SmallInput)
    });
    let v_key = v::SessionKey::from_base64(&key_b64).unwrap();
    g.bench_function("vodozemac", |b| {
        b.iter_batched(
            || v::InboundGroupSession::new(&v_key, v1v()),
            |mut s| s.decrypt(&far_message).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let far_base64 = far_message.to_base64();
    g.bench_function("libolm", |b| {
        b.iter_batched(
            || l::InboundGroupSession::new(&key_b64).unwrap(),
            |mut s| s.decrypt(&far_base64).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// 1,000 messages of one session, in index order (the best case for one-by-one decryption,
/// whose cached ratchet then only moves forward): ferrolm's batch API against vodozemac
/// decrypting them one by one, each on a fresh inbound session.
fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("megolm/bulk_decrypt_1000");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    let mut sender = v::GroupSession::new(v1v());
    let key_b64 = sender.session_key().to_base64();
    let v_messages: Vec<v::MegolmMessage> =
        (0..1000).map(|i| sender.encrypt(format!("timeline message {i}: some text"))).collect();
    let f_messages: Vec<f::MegolmMessage> =
        v_messages.iter().map(|m| f::MegolmMessage::from_bytes(&m.to_bytes()).unwrap()).collect();
    let f_fresh = f::InboundGroupSession::new(&f::SessionKey::from_base64(&key_b64).unwrap(), V1F);
    g.bench_function("ferrolm", |b| {
        b.iter_batched(
            || f_fresh.clone(),
            |mut s| {
                let results = s.decrypt_batch(&f_messages);
                assert!(results.iter().all(Result::is_ok));
                results
            },
            BatchSize::LargeInput,
        )
    });
    let v_key = v::SessionKey::from_base64(&key_b64).unwrap();
    g.bench_function("vodozemac", |b| {
        b.iter_batched(
            || v::InboundGroupSession::new(&v_key, v1v()),
            |mut s| v_messages.iter().map(|m| s.decrypt(m).unwrap()).collect::<Vec<_>>(),
            BatchSize::LargeInput,
        )
    });
    let l_messages: Vec<String> = v_messages.iter().map(|m| m.to_base64()).collect();
    g.bench_function("libolm", |b| {
        b.iter_batched(
            || l::InboundGroupSession::new(&key_b64).unwrap(),
            |mut s| l_messages.iter().map(|m| s.decrypt(m).unwrap()).collect::<Vec<_>>(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn pickles(c: &mut Criterion) {
    let mut g = c.benchmark_group("megolm/inbound_pickle_roundtrip");
    let fo = f::GroupSession::new(V1F);
    let fi = f::InboundGroupSession::new(&fo.session_key(), V1F);
    let key = ferrolm::pickle::PickleKey::from_bytes([7; 32]);
    g.bench_function("ferrolm", |b| b.iter(|| f::InboundGroupSession::from_pickle(&fi.pickle(&key), &key).unwrap()));
    let vo = v::GroupSession::new(v1v());
    let vi = v::InboundGroupSession::new(&vo.session_key(), v1v());
    g.bench_function("vodozemac", |b| {
        b.iter(|| {
            let pickle = vi.pickle().encrypt(&[7; 32]);
            v::InboundGroupSession::from_pickle(
                v::InboundGroupSessionPickle::from_encrypted(&pickle, &[7; 32]).unwrap(),
            )
        })
    });
    let lo = l::OutboundGroupSession::new().unwrap();
    let li = l::InboundGroupSession::new(&lo.session_key().unwrap()).unwrap();
    g.bench_function("libolm", |b| {
        b.iter(|| l::InboundGroupSession::unpickle(&li.pickle(&[7; 32]).unwrap(), &[7; 32]).unwrap())
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = megolm; config = config(); targets = creation_and_encryption, decryption, bulk, pickles }
criterion_main!(megolm);
