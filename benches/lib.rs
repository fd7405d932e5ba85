//! Shared set-up for the benchmarks: established sessions of both implementations, so that
//! each measured operation starts from the same state on both sides.
#![allow(clippy::expect_used)] // set-up code: a failure here is a broken benchmark, not input

use ferrolm::olm as f;
use vodozemac::olm as v;

/// Two ferrolm sessions that have each sent and received (normal messages from here on).
pub fn ferrolm_pair() -> (f::Session, f::Session) {
    let alice = f::Account::new();
    let mut bob = f::Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().expect("one key");
    let mut a =
        alice.create_outbound_session(f::SessionConfig::version_1(), bob.curve25519_key(), otk).expect("valid keys");
    let f::OlmMessage::PreKey(first) = a.encrypt(b"hello") else { unreachable!("pre-key first") };
    let mut b = bob.create_inbound_session(alice.curve25519_key(), &first).expect("decrypts").session;
    a.decrypt(&b.encrypt(b"reply")).expect("decrypts");
    (a, b)
}

/// Two vodozemac sessions in the same state as [`ferrolm_pair`].
pub fn vodozemac_pair() -> (v::Session, v::Session) {
    let alice = v::Account::new();
    let mut bob = v::Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().expect("one key");
    let mut a =
        alice.create_outbound_session(v::SessionConfig::version_1(), bob.curve25519_key(), otk).expect("valid keys");
    let v::OlmMessage::PreKey(first) = a.encrypt(b"hello").expect("encrypts") else { unreachable!("pre-key first") };
    let mut b = bob
        .create_inbound_session(v::SessionConfig::version_1(), alice.curve25519_key(), &first)
        .expect("decrypts")
        .session;
    a.decrypt(&b.encrypt(b"reply").expect("encrypts")).expect("decrypts");
    (a, b)
}
