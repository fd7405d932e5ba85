//! What the Olm interop tests share: one interface over the three implementations, a small
//! seeded generator, and message helpers.
//!
//! Messages cross between implementations only as they would in a Matrix event: a message
//! type (0 or 1) and an unpadded base64 body ([`Wire`]). Keys cross as unpadded base64.

use ferrolm::olm as fo;
use ferrolm::types::{base64_decode, base64_encode};
use ferrolm_interop::libolm;
use vodozemac::olm as vo;

/// One of the three Olm implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Ferrolm,
    Vodozemac,
    Libolm,
}

/// The implementations ferrolm is tested against.
pub const PEERS: [Impl; 2] = [Impl::Vodozemac, Impl::Libolm];

/// The session (message) format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// libolm's, 8-byte MAC.
    V1,
    /// Full MAC; ferrolm and vodozemac only.
    V2,
}

/// A message as it travels: type and base64 body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wire {
    pub message_type: usize,
    pub body: String,
}

impl Wire {
    pub fn from_ferrolm(message: &fo::OlmMessage) -> Self {
        let (message_type, body) = message.to_parts();
        Self { message_type: message_type as usize, body }
    }

    pub fn to_ferrolm(&self) -> Result<fo::OlmMessage, fo::DecodeError> {
        fo::OlmMessage::from_parts(fo::MessageType::try_from(self.message_type as u64)?, &self.body)
    }

    pub fn from_vodozemac(message: &vo::OlmMessage) -> Self {
        let (message_type, bytes) = message.to_parts();
        Self { message_type, body: base64_encode(bytes) }
    }

    pub fn to_vodozemac(&self) -> vo::OlmMessage {
        let bytes = base64_decode(&self.body).expect("bodies are base64");
        vo::OlmMessage::from_parts(self.message_type, &bytes).expect("vodozemac decodes the message")
    }

    pub fn libolm_type(&self) -> libolm::MessageType {
        libolm::MessageType::from_usize(self.message_type).expect("type 0 or 1")
    }

    pub fn is_pre_key(&self) -> bool {
        self.message_type == 0
    }

    /// The sender's ratchet key (which identifies the sending chain) and the chain index,
    /// read with ferrolm's decoder.
    pub fn chain_position(&self) -> ([u8; 32], u64) {
        let message = self.to_ferrolm().expect("ferrolm decodes every message");
        (message.message().ratchet_key().to_bytes(), message.message().chain_index())
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> Vec<u8> {
        base64_decode(&self.body).expect("bodies are base64")
    }

    /// The same message with one bit flipped at `offset_from_end` bytes before its end
    /// (1 = the last MAC byte).
    pub fn with_flipped_bit(&self, offset_from_end: usize) -> Self {
        let mut bytes = self.bytes();
        let at = bytes.len() - offset_from_end;
        bytes[at] ^= 0x01;
        Self { message_type: self.message_type, body: base64_encode(bytes) }
    }
}

/// One side of a session, whichever implementation holds it.
pub trait PeerSession {
    fn implementation(&self) -> Impl;
    fn encrypt(&mut self, plaintext: &[u8]) -> Wire;
    /// The error is the implementation's error, formatted with `{:?}`.
    fn decrypt(&mut self, message: &Wire) -> Result<Vec<u8>, String>;
    fn session_id(&self) -> String;
    fn has_received_message(&self) -> bool;
    /// An independent copy of the session's current state.
    fn fork(&self) -> Box<dyn PeerSession>;
    /// The session as a ferrolm session, when it is one.
    fn as_ferrolm(&self) -> Option<&fo::Session> {
        None
    }
    /// The session as a mutable ferrolm session, when it is one.
    fn as_ferrolm_mut(&mut self) -> Option<&mut fo::Session> {
        None
    }
    /// The session as a libolm session, when it is one.
    fn as_libolm(&self) -> Option<&libolm::Session> {
        None
    }
}

/// A session created from a pre-key message, with the message's plaintext.
pub type Inbound = (Box<dyn PeerSession>, Vec<u8>);

/// One device's account, whichever implementation holds it.
pub trait PeerAccount {
    fn implementation(&self) -> Impl;
    fn curve25519_key(&self) -> String;
    fn ed25519_key(&self) -> String;
    fn sign(&self, message: &[u8]) -> String;
    /// Generates one one-time key, marks it published and returns it.
    fn publish_one_time_key(&mut self) -> String;
    /// Generates a fallback key, marks it published and returns it.
    fn publish_fallback_key(&mut self) -> String;
    fn create_outbound(&self, version: Version, identity_key: &str, one_time_key: &str) -> Box<dyn PeerSession>;
    fn create_inbound(&mut self, version: Version, identity_key: &str, message: &Wire) -> Result<Inbound, String>;
}

pub fn new_account(implementation: Impl) -> Box<dyn PeerAccount> {
    match implementation {
        Impl::Ferrolm => Box::new(FerrolmAccount(fo::Account::new())),
        Impl::Vodozemac => Box::new(VodozemacAccount(vo::Account::new())),
        Impl::Libolm => Box::new(LibolmAccount(libolm::Account::new().expect("libolm creates an account"))),
    }
}

// ---------------------------------------------------------------------------------------------
// ferrolm

pub struct FerrolmAccount(pub fo::Account);
pub struct FerrolmSession(pub fo::Session);

fn ferrolm_config(version: Version) -> fo::SessionConfig {
    match version {
        Version::V1 => fo::SessionConfig::version_1(),
        Version::V2 => fo::SessionConfig::version_2(),
    }
}

pub fn ferrolm_key(key: &str) -> ferrolm::types::Curve25519PublicKey {
    ferrolm::types::Curve25519PublicKey::from_base64(key).expect("a valid Curve25519 key")
}

impl PeerAccount for FerrolmAccount {
    fn implementation(&self) -> Impl {
        Impl::Ferrolm
    }
    fn curve25519_key(&self) -> String {
        self.0.curve25519_key().to_base64()
    }
    fn ed25519_key(&self) -> String {
        self.0.ed25519_key().to_base64()
    }
    fn sign(&self, message: &[u8]) -> String {
        self.0.sign(message).to_base64()
    }
    fn publish_one_time_key(&mut self) -> String {
        let created = self.0.generate_one_time_keys(1).created;
        self.0.mark_keys_as_published();
        created[0].to_base64()
    }
    fn publish_fallback_key(&mut self) -> String {
        self.0.generate_fallback_key();
        let key = *self.0.fallback_key().values().next().expect("an unpublished fallback key");
        self.0.mark_keys_as_published();
        key.to_base64()
    }
    fn create_outbound(&self, version: Version, identity_key: &str, one_time_key: &str) -> Box<dyn PeerSession> {
        let session = self
            .0
            .create_outbound_session(ferrolm_config(version), ferrolm_key(identity_key), ferrolm_key(one_time_key))
            .expect("ferrolm creates an outbound session");
        Box::new(FerrolmSession(session))
    }
    fn create_inbound(&mut self, version: Version, identity_key: &str, message: &Wire) -> Result<Inbound, String> {
        let fo::OlmMessage::PreKey(message) = message.to_ferrolm().map_err(|e| format!("{e:?}"))? else {
            return Err("not a pre-key message".into());
        };
        let created = self
            .0
            .create_inbound_session(ferrolm_config(version), ferrolm_key(identity_key), &message)
            .map_err(|e| format!("{e:?}"))?;
        assert_eq!(created.session.config(), ferrolm_config(version), "ferrolm makes the session it expected");
        Ok((Box::new(FerrolmSession(created.session)), created.plaintext))
    }
}

impl PeerSession for FerrolmSession {
    fn implementation(&self) -> Impl {
        Impl::Ferrolm
    }
    fn encrypt(&mut self, plaintext: &[u8]) -> Wire {
        Wire::from_ferrolm(&self.0.encrypt(plaintext))
    }
    fn decrypt(&mut self, message: &Wire) -> Result<Vec<u8>, String> {
        let message = message.to_ferrolm().map_err(|e| format!("{e:?}"))?;
        self.0.decrypt(&message).map_err(|e| format!("{e:?}"))
    }
    fn session_id(&self) -> String {
        self.0.session_id().to_base64()
    }
    fn has_received_message(&self) -> bool {
        self.0.has_received_message()
    }
    fn fork(&self) -> Box<dyn PeerSession> {
        Box::new(FerrolmSession(self.0.clone()))
    }
    fn as_ferrolm(&self) -> Option<&fo::Session> {
        Some(&self.0)
    }
    fn as_ferrolm_mut(&mut self) -> Option<&mut fo::Session> {
        Some(&mut self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// vodozemac

pub struct VodozemacAccount(pub vo::Account);
pub struct VodozemacSession(pub vo::Session);

fn vodozemac_config(version: Version) -> vo::SessionConfig {
    match version {
        Version::V1 => vo::SessionConfig::version_1(),
        Version::V2 => vo::SessionConfig::version_2(),
    }
}

pub fn vodozemac_key(key: &str) -> vodozemac::Curve25519PublicKey {
    vodozemac::Curve25519PublicKey::from_base64(key).expect("a valid Curve25519 key")
}

impl PeerAccount for VodozemacAccount {
    fn implementation(&self) -> Impl {
        Impl::Vodozemac
    }
    fn curve25519_key(&self) -> String {
        self.0.curve25519_key().to_base64()
    }
    fn ed25519_key(&self) -> String {
        self.0.ed25519_key().to_base64()
    }
    fn sign(&self, message: &[u8]) -> String {
        self.0.sign(message).to_base64()
    }
    fn publish_one_time_key(&mut self) -> String {
        let created = self.0.generate_one_time_keys(1).created;
        self.0.mark_keys_as_published();
        created[0].to_base64()
    }
    fn publish_fallback_key(&mut self) -> String {
        self.0.generate_fallback_key();
        let key = *self.0.fallback_key().values().next().expect("an unpublished fallback key");
        self.0.mark_keys_as_published();
        key.to_base64()
    }
    fn create_outbound(&self, version: Version, identity_key: &str, one_time_key: &str) -> Box<dyn PeerSession> {
        let session = self
            .0
            .create_outbound_session(
                vodozemac_config(version),
                vodozemac_key(identity_key),
                vodozemac_key(one_time_key),
            )
            .expect("vodozemac creates an outbound session");
        Box::new(VodozemacSession(session))
    }
    fn create_inbound(&mut self, version: Version, identity_key: &str, message: &Wire) -> Result<Inbound, String> {
        let vo::OlmMessage::PreKey(message) = message.to_vodozemac() else {
            return Err("not a pre-key message".into());
        };
        let created = self
            .0
            .create_inbound_session(vodozemac_config(version), vodozemac_key(identity_key), &message)
            .map_err(|e| format!("{e:?}"))?;
        Ok((Box::new(VodozemacSession(created.session)), created.plaintext))
    }
}

impl PeerSession for VodozemacSession {
    fn implementation(&self) -> Impl {
        Impl::Vodozemac
    }
    fn encrypt(&mut self, plaintext: &[u8]) -> Wire {
        Wire::from_vodozemac(&self.0.encrypt(plaintext).expect("vodozemac encrypts"))
    }
    fn decrypt(&mut self, message: &Wire) -> Result<Vec<u8>, String> {
        self.0.decrypt(&message.to_vodozemac()).map_err(|e| format!("{e:?}"))
    }
    fn session_id(&self) -> String {
        self.0.session_id()
    }
    fn has_received_message(&self) -> bool {
        self.0.has_received_message()
    }
    fn fork(&self) -> Box<dyn PeerSession> {
        Box::new(VodozemacSession(vo::Session::from_pickle(self.0.pickle())))
    }
}

// ---------------------------------------------------------------------------------------------
// libolm

pub struct LibolmAccount(pub libolm::Account);
pub struct LibolmSession(pub libolm::Session);

impl PeerAccount for LibolmAccount {
    fn implementation(&self) -> Impl {
        Impl::Libolm
    }
    fn curve25519_key(&self) -> String {
        self.0.identity_keys().expect("libolm identity keys").curve25519
    }
    fn ed25519_key(&self) -> String {
        self.0.identity_keys().expect("libolm identity keys").ed25519
    }
    fn sign(&self, message: &[u8]) -> String {
        self.0.sign(message).expect("libolm signs")
    }
    fn publish_one_time_key(&mut self) -> String {
        self.0.generate_one_time_keys(1).expect("libolm generates a key");
        let keys = self.0.one_time_keys().expect("libolm lists its keys");
        assert_eq!(keys.len(), 1, "earlier keys were all published");
        self.0.mark_keys_as_published().expect("libolm marks keys published");
        keys.into_values().next().expect("one key")
    }
    fn publish_fallback_key(&mut self) -> String {
        self.0.generate_fallback_key().expect("libolm generates a fallback key");
        let keys = self.0.unpublished_fallback_key().expect("libolm lists its fallback key");
        self.0.mark_keys_as_published().expect("libolm marks keys published");
        keys.into_values().next().expect("one fallback key")
    }
    fn create_outbound(&self, version: Version, identity_key: &str, one_time_key: &str) -> Box<dyn PeerSession> {
        assert_eq!(version, Version::V1, "libolm has only version 1 sessions");
        let session =
            libolm::Session::create_outbound(&self.0, identity_key, one_time_key).expect("libolm creates a session");
        Box::new(LibolmSession(session))
    }
    fn create_inbound(&mut self, version: Version, identity_key: &str, message: &Wire) -> Result<Inbound, String> {
        assert_eq!(version, Version::V1, "libolm has only version 1 sessions");
        if !message.is_pre_key() {
            return Err("not a pre-key message".into());
        }
        let mut session =
            libolm::Session::create_inbound_from(&self.0, identity_key, &message.body).map_err(|e| format!("{e:?}"))?;
        let plaintext = session.decrypt(message.libolm_type(), &message.body).map_err(|e| format!("{e:?}"))?;
        self.0.remove_one_time_keys(&session).map_err(|e| format!("{e:?}"))?;
        Ok((Box::new(LibolmSession(session)), plaintext))
    }
}

impl PeerSession for LibolmSession {
    fn implementation(&self) -> Impl {
        Impl::Libolm
    }
    fn encrypt(&mut self, plaintext: &[u8]) -> Wire {
        let (message_type, body) = self.0.encrypt(plaintext).expect("libolm encrypts");
        Wire { message_type: message_type.as_usize(), body }
    }
    fn decrypt(&mut self, message: &Wire) -> Result<Vec<u8>, String> {
        self.0.decrypt(message.libolm_type(), &message.body).map_err(|e| format!("{e:?}"))
    }
    fn session_id(&self) -> String {
        self.0.session_id().expect("libolm session id")
    }
    fn has_received_message(&self) -> bool {
        self.0.has_received_message()
    }
    fn fork(&self) -> Box<dyn PeerSession> {
        let pickle = self.0.pickle(b"fork").expect("libolm pickles");
        Box::new(LibolmSession(libolm::Session::unpickle(&pickle, b"fork").expect("libolm unpickles")))
    }
    fn as_libolm(&self) -> Option<&libolm::Session> {
        Some(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions between two implementations

/// Which key of the receiver the initiator claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    OneTime,
    Fallback,
}

/// Two accounts and the session between them, after the initiator's first (pre-key) message
/// has created the receiver's session.
pub struct Pair {
    pub receiver_account: Box<dyn PeerAccount>,
    pub initiator: Box<dyn PeerSession>,
    pub receiver: Box<dyn PeerSession>,
    /// The receiver's key the initiator claimed.
    pub claimed_key: String,
}

pub fn establish(initiator: Impl, receiver: Impl, version: Version, key: KeyKind) -> Pair {
    let initiator_account = new_account(initiator);
    let mut receiver_account = new_account(receiver);
    let claimed_key = match key {
        KeyKind::OneTime => receiver_account.publish_one_time_key(),
        KeyKind::Fallback => receiver_account.publish_fallback_key(),
    };
    let mut outbound = initiator_account.create_outbound(version, &receiver_account.curve25519_key(), &claimed_key);
    assert!(!outbound.has_received_message());
    let first = outbound.encrypt(b"first message");
    assert!(first.is_pre_key(), "{initiator:?} starts with a pre-key message");
    let (inbound, plaintext) = receiver_account
        .create_inbound(version, &initiator_account.curve25519_key(), &first)
        .unwrap_or_else(|e| panic!("{receiver:?} creates a session from {initiator:?}'s pre-key message: {e}"));
    assert_eq!(plaintext, b"first message");
    assert_eq!(outbound.session_id(), inbound.session_id(), "both sides derive the same session id");
    Pair { receiver_account, initiator: outbound, receiver: inbound, claimed_key }
}

/// Sends `plaintext` from `from` to `to` and checks it arrives.
pub fn send(from: &mut dyn PeerSession, to: &mut dyn PeerSession, plaintext: &[u8]) -> Wire {
    let message = from.encrypt(plaintext);
    let decrypted = to
        .decrypt(&message)
        .unwrap_or_else(|e| panic!("{:?} decrypts {:?}'s message: {e}", to.implementation(), from.implementation()));
    assert_eq!(decrypted, plaintext);
    message
}

/// A few messages each way, alternating, ending with both sides having received.
pub fn ping_pong(a: &mut dyn PeerSession, b: &mut dyn PeerSession, rounds: usize) {
    for round in 0..rounds {
        send(a, b, format!("ping {round}").as_bytes());
        send(b, a, format!("pong {round}").as_bytes());
    }
}

/// Sends `count` messages from `from` and holds them all back.
pub fn held_batch(from: &mut dyn PeerSession, count: usize, tag: &str) -> Vec<(Wire, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let plaintext = format!("{tag} {i}").into_bytes();
            (from.encrypt(&plaintext), plaintext)
        })
        .collect()
}

/// Which of `messages` `session` can still decrypt (each tried on a fresh copy, so trying
/// one does not consume another's key).
pub fn decryptable(session: &dyn PeerSession, messages: &[(Wire, Vec<u8>)]) -> Vec<usize> {
    messages
        .iter()
        .enumerate()
        .filter(|(_, (wire, plaintext))| session.fork().decrypt(wire).as_ref() == Ok(plaintext))
        .map(|(i, _)| i)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Randomness for the tests: the generator and seed shared with the Megolm tests.

pub use crate::rng::{TestRng, seed};
