//! Shared set-up for the benchmarks: established sessions of both implementations, so that
//! each measured operation starts from the same state on both sides.
#![allow(clippy::expect_used)] // set-up code: a failure here is a broken benchmark, not input

use ferrolm::olm as f;
use ferrolm_interop::libolm as l;
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

/// Two libolm sessions in the same state as [`ferrolm_pair`].
pub fn libolm_pair() -> (l::Session, l::Session) {
    let alice = l::Account::new().expect("account");
    let mut bob = l::Account::new().expect("account");
    bob.generate_one_time_keys(1).expect("one-time key");
    let otk = bob.one_time_keys().expect("keys").into_values().next().expect("one key");
    let identity = bob.identity_keys().expect("identity keys").curve25519;
    let mut a = l::Session::create_outbound(&alice, &identity, &otk).expect("valid keys");
    let (t, first) = a.encrypt(b"hello").expect("encrypts");
    let mut b = l::Session::create_inbound(&bob, &first).expect("pre-key message");
    b.decrypt(t, &first).expect("decrypts");
    let (t, reply) = b.encrypt(b"reply").expect("encrypts");
    a.decrypt(t, &reply).expect("decrypts");
    (a, b)
}
