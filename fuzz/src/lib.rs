//! Shared pieces of the fuzz targets: a deterministic generator (so every crash reproduces),
//! fixed sessions built once, and a splitter that turns one input into several fields.

use std::sync::OnceLock;

pub mod machine;

use ferrolm::megolm::{GroupSession, InboundGroupSession, MegolmMessage, SessionConfig as MegolmConfig};
use ferrolm::olm::{Account, OlmMessage, PreKeyMessage, Session, SessionConfig};
use ferrolm::sas::{EstablishedSas, Sas};

/// splitmix64: deterministic, so that the fixed sessions are the same on every run. Not
/// cryptographic, and used only here.
pub struct FixedRng(u64);

impl FixedRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FixedRng {}

/// An established Olm conversation, built once: Bob's account (still holding a one-time key
/// and a fallback key), the two sessions, and a pre-key message that opens a session.
pub struct OlmFixture {
    pub alice: Account,
    pub bob: Account,
    pub alice_session: Session,
    pub bob_session: Session,
    pub pre_key: PreKeyMessage,
}

pub fn olm_fixture() -> &'static OlmFixture {
    static FIXTURE: OnceLock<OlmFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = FixedRng::new(1);
        let alice = Account::new_with_rng(&mut rng);
        let mut bob = Account::new_with_rng(&mut rng);
        bob.generate_one_time_keys_with_rng(2, &mut rng);
        bob.generate_fallback_key_with_rng(&mut rng);
        let otks: Vec<_> = bob.one_time_keys().into_values().collect();
        let mut alice_session = alice
            .create_outbound_session_with_rng(SessionConfig::version_1(), bob.curve25519_key(), otks[0], &mut rng)
            .expect("valid keys");
        let OlmMessage::PreKey(first) = alice_session.encrypt_with_rng(b"first", &mut rng) else {
            unreachable!("pre-key first")
        };
        let mut bob_session = bob
            .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first)
            .expect("decrypts")
            .session;
        let reply = bob_session.encrypt_with_rng(b"reply", &mut rng);
        alice_session.decrypt(&reply).expect("decrypts");
        let mut second = alice
            .create_outbound_session_with_rng(SessionConfig::version_1(), bob.curve25519_key(), otks[1], &mut rng)
            .expect("valid keys");
        let OlmMessage::PreKey(pre_key) = second.encrypt_with_rng(b"second", &mut rng) else {
            unreachable!("pre-key first")
        };
        OlmFixture { alice, bob, alice_session, bob_session, pre_key }
    })
}

/// A Megolm session and an inbound session for it at index 0, built once, with a few
/// messages as seeds.
pub struct MegolmFixture {
    pub outbound: GroupSession,
    pub inbound: InboundGroupSession,
    pub messages: Vec<MegolmMessage>,
}

pub fn megolm_fixture() -> &'static MegolmFixture {
    static FIXTURE: OnceLock<MegolmFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = FixedRng::new(2);
        let mut outbound = GroupSession::new_with_rng(MegolmConfig::version_1(), &mut rng);
        let inbound = InboundGroupSession::new(&outbound.session_key(), MegolmConfig::version_1());
        // Enough messages that every batch takes the batch verifier's table path.
        let messages = (0..8u8).map(|i| outbound.encrypt(&[i; 20])).collect();
        MegolmFixture { outbound, inbound, messages }
    })
}

/// Both sides of an established SAS exchange, built once.
pub fn sas_fixture() -> &'static (EstablishedSas, EstablishedSas) {
    static FIXTURE: OnceLock<(EstablishedSas, EstablishedSas)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = FixedRng::new(3);
        let (a, b) = (Sas::new_with_rng(&mut rng), Sas::new_with_rng(&mut rng));
        let (ak, bk) = (a.public_key(), b.public_key());
        (a.diffie_hellman(bk).expect("contributory"), b.diffie_hellman(ak).expect("contributory"))
    })
}

/// Splits an input into `N` fields: the first `N - 1` bytes give the lengths of the first
/// `N - 1` fields (modulo what is left); the last field takes the rest.
pub fn split<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let (lengths, mut rest) = data.split_at(data.len().min(N.saturating_sub(1)));
    let mut fields = [&[][..]; N];
    for (i, field) in fields.iter_mut().enumerate() {
        if i + 1 == N {
            *field = rest;
        } else {
            let len = usize::from(lengths.get(i).copied().unwrap_or(0)).min(rest.len());
            let (head, tail) = rest.split_at(len);
            *field = head;
            rest = tail;
        }
    }
    fields
}

/// The input as text (fuzzers produce bytes; the APIs take strings).
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
