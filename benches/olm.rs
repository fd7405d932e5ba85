//! Olm: ferrolm, vodozemac and libolm, operation by operation, in the same run.
//!
//! Each group holds one operation with a `ferrolm`, a `vodozemac` and a `libolm` function;
//! `benches/report.py` turns the medians into the table in `benches/README.md`. libolm's C
//! API takes and returns base64, so its numbers include that encoding (as they do for every
//! application that uses libolm).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferrolm::olm as f;
use ferrolm_benches::{ferrolm_pair, libolm_pair, vodozemac_pair};
use ferrolm_interop::libolm as l;
use std::hint::black_box;
use vodozemac::olm as v;

fn accounts(c: &mut Criterion) {
    let mut g = c.benchmark_group("olm/account_new");
    g.bench_function("ferrolm", |b| b.iter(f::Account::new));
    g.bench_function("vodozemac", |b| b.iter(v::Account::new));
    g.bench_function("libolm", |b| b.iter(|| l::Account::new().unwrap()));
    g.finish();

    let mut g = c.benchmark_group("olm/one_time_keys_50");
    g.bench_function("ferrolm", |b| {
        b.iter_batched_ref(f::Account::new, |a| black_box(a.generate_one_time_keys(50)), BatchSize::SmallInput)
    });
    g.bench_function("vodozemac", |b| {
        b.iter_batched_ref(v::Account::new, |a| black_box(a.generate_one_time_keys(50)), BatchSize::SmallInput)
    });
    g.bench_function("libolm", |b| {
        b.iter_batched_ref(
            || l::Account::new().unwrap(),
            |a| a.generate_one_time_keys(50).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn session_creation(c: &mut Criterion) {
    let mut g = c.benchmark_group("olm/outbound_session");
    let (fa, mut fb) = (f::Account::new(), f::Account::new());
    fb.generate_one_time_keys(1);
    let f_otk = *fb.one_time_keys().values().next().unwrap();
    g.bench_function("ferrolm", |b| {
        b.iter(|| fa.create_outbound_session(f::SessionConfig::version_1(), fb.curve25519_key(), f_otk).unwrap())
    });
    let (va, mut vb) = (v::Account::new(), v::Account::new());
    vb.generate_one_time_keys(1);
    let v_otk = *vb.one_time_keys().values().next().unwrap();
    g.bench_function("vodozemac", |b| {
        b.iter(|| va.create_outbound_session(v::SessionConfig::version_1(), vb.curve25519_key(), v_otk).unwrap())
    });
    let (la, mut lb) = (l::Account::new().unwrap(), l::Account::new().unwrap());
    lb.generate_one_time_keys(1).unwrap();
    let l_otk = lb.one_time_keys().unwrap().into_values().next().unwrap();
    let l_identity = lb.identity_keys().unwrap().curve25519;
    g.bench_function("libolm", |b| b.iter(|| l::Session::create_outbound(&la, &l_identity, &l_otk).unwrap()));
    g.finish();

    // Inbound: each iteration gets a fresh copy of Bob's account (which the creation changes:
    // it removes the one-time key) and the same pre-key message; copying is not timed.
    let mut g = c.benchmark_group("olm/inbound_session");
    let mut f_out = fa.create_outbound_session(f::SessionConfig::version_1(), fb.curve25519_key(), f_otk).unwrap();
    let f::OlmMessage::PreKey(f_msg) = f_out.encrypt(b"first message") else { unreachable!() };
    g.bench_function("ferrolm", |b| {
        b.iter_batched(
            || fb.clone(),
            |mut bob| bob.create_inbound_session(f::SessionConfig::version_1(), fa.curve25519_key(), &f_msg).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut v_out = va.create_outbound_session(v::SessionConfig::version_1(), vb.curve25519_key(), v_otk).unwrap();
    let v::OlmMessage::PreKey(v_msg) = v_out.encrypt(b"first message").unwrap() else { unreachable!() };
    let v_pickle = vb.pickle().encrypt(&[0; 32]);
    g.bench_function("vodozemac", |b| {
        b.iter_batched(
            || v::Account::from_pickle(v::AccountPickle::from_encrypted(&v_pickle, &[0; 32]).unwrap()),
            |mut bob| bob.create_inbound_session(v::SessionConfig::version_1(), va.curve25519_key(), &v_msg).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // libolm creates the session and decrypts in two calls, then removes the one-time key.
    let mut l_out = l::Session::create_outbound(&la, &l_identity, &l_otk).unwrap();
    let (l_type, l_msg) = l_out.encrypt(b"first message").unwrap();
    let l_alice = la.identity_keys().unwrap().curve25519;
    let l_pickle = lb.pickle(b"bench").unwrap();
    g.bench_function("libolm", |b| {
        b.iter_batched(
            || l::Account::unpickle(&l_pickle, b"bench").unwrap(),
            |mut bob| {
                let mut session = l::Session::create_inbound_from(&bob, &l_alice, &l_msg).unwrap();
                let plaintext = session.decrypt(l_type, &l_msg).unwrap();
                bob.remove_one_time_keys(&session).unwrap();
                (session, plaintext)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn encryption(c: &mut Criterion) {
    for (name, len) in [("olm/encrypt_26B", 26), ("olm/encrypt_4KiB", 4096)] {
        let plaintext = vec![0x61u8; len];
        let mut g = c.benchmark_group(name);
        let (mut fa, _) = ferrolm_pair();
        g.bench_function("ferrolm", |b| b.iter(|| fa.encrypt(black_box(&plaintext))));
        let (mut va, _) = vodozemac_pair();
        g.bench_function("vodozemac", |b| b.iter(|| va.encrypt(black_box(&plaintext)).unwrap()));
        let (mut la, _) = libolm_pair();
        g.bench_function("libolm", |b| b.iter(|| la.encrypt(black_box(&plaintext)).unwrap()));
        g.finish();
    }

    // Decrypt: the sender produces each message in the (untimed) set-up, in order; the
    // receiver's decryption is timed.
    let mut g = c.benchmark_group("olm/decrypt_26B");
    let (mut fa, mut fb) = ferrolm_pair();
    g.bench_function("ferrolm", |b| {
        b.iter_batched(|| fa.encrypt(&[0x61; 26]), |m| fb.decrypt(&m).unwrap(), BatchSize::SmallInput)
    });
    let (mut va, mut vb) = vodozemac_pair();
    g.bench_function("vodozemac", |b| {
        b.iter_batched(|| va.encrypt([0x61; 26]).unwrap(), |m| vb.decrypt(&m).unwrap(), BatchSize::SmallInput)
    });
    let (mut la, mut lb) = libolm_pair();
    g.bench_function("libolm", |b| {
        b.iter_batched(|| la.encrypt(&[0x61; 26]).unwrap(), |(t, m)| lb.decrypt(t, &m).unwrap(), BatchSize::SmallInput)
    });
    g.finish();
}

fn pickles(c: &mut Criterion) {
    let mut g = c.benchmark_group("olm/session_pickle_roundtrip");
    let (fa, _) = ferrolm_pair();
    let key = ferrolm::pickle::PickleKey::from_bytes([7; 32]);
    g.bench_function("ferrolm", |b| b.iter(|| f::Session::from_pickle(&fa.pickle(&key), &key).unwrap()));
    let (va, _) = vodozemac_pair();
    g.bench_function("vodozemac", |b| {
        b.iter(|| {
            let pickle = va.pickle().encrypt(&[7; 32]);
            v::Session::from_pickle(v::SessionPickle::from_encrypted(&pickle, &[7; 32]).unwrap())
        })
    });
    let (la, _) = libolm_pair();
    g.bench_function("libolm", |b| b.iter(|| l::Session::unpickle(&la.pickle(&[7; 32]).unwrap(), &[7; 32]).unwrap()));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60)
}

criterion_group! { name = olm; config = config(); targets = accounts, session_creation, encryption, pickles }
criterion_main!(olm);
