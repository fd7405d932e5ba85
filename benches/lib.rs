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
    let mut b = bob
        .create_inbound_session(f::SessionConfig::version_1(), alice.curve25519_key(), &first)
        .expect("decrypts")
        .session;
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

/// A backed-up Megolm session as clients store it: a JSON object of a few hundred bytes.
pub fn backed_up_session(i: usize) -> Vec<u8> {
    format!(
        r#"{{"algorithm":"m.megolm.v1.aes-sha2","forwarding_curve25519_key_chain":[],"sender_claimed_keys":{{"ed25519":"{0:0>43}"}},"sender_key":"{0:0>43}","session_key":"{1}"}}"#,
        i,
        "A".repeat(220)
    )
    .into_bytes()
}

/// The secret key of [`Backup`] in all three implementations.
pub const BACKUP_SECRET: [u8; 32] = [0x42; 32];

/// A key backup of `count` sessions, encrypted by vodozemac to [`BACKUP_SECRET`]'s public key,
/// with the decryption key and the messages in each implementation's own types.
pub struct Backup {
    /// ferrolm's decryption key.
    pub ferrolm_key: ferrolm::pk::PkDecryption,
    /// vodozemac's decryption key.
    pub vodozemac_key: vodozemac::pk_encryption::PkDecryption,
    /// libolm's decryption key.
    pub libolm_key: l::PkDecryption,
    /// The messages as ferrolm reads them.
    pub ferrolm: Vec<ferrolm::pk::PkMessage>,
    /// The same messages as vodozemac reads them.
    pub vodozemac: Vec<vodozemac::pk_encryption::Message>,
    /// The same messages as libolm reads them: (ciphertext, MAC, ephemeral key) in base64.
    pub libolm: Vec<(String, String, String)>,
}

impl Backup {
    /// Encrypts `count` sessions.
    pub fn new(count: usize) -> Self {
        use vodozemac::pk_encryption as vp;
        let vodozemac_key = vp::PkDecryption::from_key(vodozemac::Curve25519SecretKey::from_slice(&BACKUP_SECRET));
        let encryption = vp::PkEncryption::from_key(vodozemac_key.public_key());
        let vodozemac: Vec<vp::Message> =
            (0..count).map(|i| encryption.encrypt(&backed_up_session(i)).expect("encrypts")).collect();
        let ferrolm: Vec<ferrolm::pk::PkMessage> = vodozemac
            .iter()
            .map(|m| ferrolm::pk::PkMessage {
                ciphertext: m.ciphertext.clone(),
                mac: m.mac.as_slice().try_into().expect("an 8-byte MAC"),
                ephemeral_key: ferrolm::types::Curve25519PublicKey::from_bytes(m.ephemeral_key.to_bytes()),
            })
            .collect();
        let libolm = ferrolm.iter().map(ferrolm::pk::PkMessage::to_base64).collect();
        Backup {
            ferrolm_key: ferrolm::pk::PkDecryption::from_bytes(&BACKUP_SECRET),
            vodozemac_key,
            libolm_key: l::PkDecryption::from_private_key(&BACKUP_SECRET).expect("a valid key"),
            ferrolm,
            vodozemac,
            libolm,
        }
    }
}

/// Set-up for the store benchmarks: the same room keys and Olm sessions for ferrolm-store and
/// matrix-sdk-sqlite.
#[path = "store_setup.rs"]
#[allow(clippy::indexing_slicing)] // indices come from the set-up itself
pub mod store;

/// Set-up for the machine benchmarks: the same fixture of real devices for ferrolm-machine
/// and matrix-sdk-crypto.
#[path = "machine_setup.rs"]
#[allow(clippy::indexing_slicing)] // indices come from the set-up itself
pub mod machine;
