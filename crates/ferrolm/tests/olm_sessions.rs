//! Behaviour of Olm accounts and sessions: establishment, the ratchet's limits, every
//! decryption failure, and pickles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use ferrolm::olm::{
    Account, ConsumedKey, DecryptionError, MAX_MESSAGE_GAP, MAX_SKIPPED_MESSAGE_KEYS, MAX_STORED_ONE_TIME_KEYS,
    Message, OlmMessage, PreKeyMessage, Session, SessionConfig, SessionCreationError, SessionId, SessionIdError,
};
use ferrolm::pickle::{PickleError, PickleKey};
use ferrolm::types::Curve25519PublicKey;

fn one_time_key(account: &mut Account) -> Curve25519PublicKey {
    account.generate_one_time_keys(1);
    let key = *account.one_time_keys().values().next_back().unwrap();
    account.mark_keys_as_published();
    key
}

fn pre_key(message: OlmMessage) -> PreKeyMessage {
    match message {
        OlmMessage::PreKey(m) => m,
        OlmMessage::Normal(_) => panic!("expected a pre-key message"),
    }
}

/// Alice and Bob with an established session (Bob has decrypted Alice's first message).
fn pair(config: SessionConfig) -> (Account, Account, Session, Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    let otk = one_time_key(&mut bob);
    let mut outbound = alice.create_outbound_session(config, bob.curve25519_key(), otk).unwrap();
    let first = pre_key(outbound.encrypt(b"first"));
    let created = bob.create_inbound_session(config, alice.curve25519_key(), &first).unwrap();
    assert_eq!(created.plaintext, b"first");
    (alice, bob, outbound, created.session)
}

#[test]
fn conversation_both_ways_in_both_configs() {
    for config in [SessionConfig::version_1(), SessionConfig::version_2()] {
        let (_, _, mut alice, mut bob) = pair(config);
        assert_eq!(alice.session_id(), bob.session_id());
        assert_eq!(bob.config(), config);
        for round in 0..20 {
            // Alice's messages stay pre-key messages until she hears from Bob.
            let expected_type = if round == 0 { "pre-key" } else { "normal" };
            for i in 0..(round % 4 + 1) {
                let text = format!("alice {round} {i}");
                let message = alice.encrypt(text.as_bytes());
                assert_eq!(matches!(message, OlmMessage::PreKey(_)), expected_type == "pre-key");
                assert_eq!(message.message().version(), if config == SessionConfig::version_2() { 4 } else { 3 });
                assert_eq!(bob.decrypt(&message).unwrap(), text.as_bytes());
            }
            for i in 0..(round % 3 + 1) {
                let text = format!("bob {round} {i}");
                let message = bob.encrypt(text.as_bytes());
                assert!(matches!(message, OlmMessage::Normal(_)));
                assert_eq!(alice.decrypt(&message).unwrap(), text.as_bytes());
            }
        }
        assert!(alice.has_received_message() && bob.has_received_message());
    }
}

#[test]
fn out_of_order_within_the_window_and_replays_refused() {
    let (_, _, mut alice, mut bob) = pair(SessionConfig::version_1());
    let messages: Vec<OlmMessage> =
        (0..=MAX_SKIPPED_MESSAGE_KEYS).map(|i| alice.encrypt(format!("{i}").as_bytes())).collect();
    // The last one first: every earlier key is kept.
    assert_eq!(bob.decrypt(messages.last().unwrap()).unwrap(), format!("{MAX_SKIPPED_MESSAGE_KEYS}").as_bytes());
    for (i, message) in messages.iter().enumerate().rev().skip(1) {
        assert_eq!(bob.decrypt(message).unwrap(), format!("{i}").as_bytes());
    }
    for message in &messages {
        assert!(matches!(bob.decrypt(message), Err(DecryptionError::MissingMessageKey(_))));
    }
}

#[test]
fn keys_beyond_the_skip_window_are_dropped() {
    let (_, _, mut alice, mut bob) = pair(SessionConfig::version_1());
    // bob has decrypted index 0; alice sends indices 1..=43, bob sees only the last.
    let messages: Vec<OlmMessage> = (0..43).map(|i| alice.encrypt(format!("{i}").as_bytes())).collect();
    bob.decrypt(messages.last().unwrap()).unwrap();
    // Indices 1 and 2 (messages 0, 1) fell out of the 40-key window.
    assert_eq!(bob.decrypt(&messages[0]), Err(DecryptionError::MissingMessageKey(1)));
    assert_eq!(bob.decrypt(&messages[1]), Err(DecryptionError::MissingMessageKey(2)));
    for message in &messages[2..42] {
        bob.decrypt(message).unwrap();
    }
}

#[test]
fn gaps_above_the_limit_are_refused_and_the_limit_itself_is_fine() {
    let (_, _, mut alice, mut bob) = pair(SessionConfig::version_1());
    let messages: Vec<OlmMessage> = (0..MAX_MESSAGE_GAP + 2).map(|_| alice.encrypt(b"x")).collect();
    // bob's chain is at index 1; the last message has index MAX_MESSAGE_GAP + 2.
    assert_eq!(
        bob.decrypt(messages.last().unwrap()),
        Err(DecryptionError::TooBigMessageGap { gap: MAX_MESSAGE_GAP + 1, max: MAX_MESSAGE_GAP })
    );
    assert_eq!(bob.decrypt(&messages[messages.len() - 2]).unwrap(), b"x");
}

#[test]
fn tampering_version_mismatch_and_foreign_ratchet_keys_are_typed_errors() {
    let (_, _, mut alice, mut bob) = pair(SessionConfig::version_1());
    // Alice has not heard from Bob yet, so this is a pre-key message; tamper with the inner one.
    let message = alice.encrypt(b"secret");
    let mut bytes = message.message().as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = OlmMessage::Normal(Message::from_bytes(&bytes).unwrap());
    assert_eq!(bob.decrypt(&tampered), Err(DecryptionError::InvalidMac));
    // A ciphertext byte flipped: the MAC catches it before decryption.
    let mut bytes = message.message().as_bytes().to_vec();
    bytes[40] ^= 0x80;
    if let Ok(m) = Message::from_bytes(&bytes) {
        assert_eq!(bob.decrypt(&OlmMessage::Normal(m)), Err(DecryptionError::InvalidMac));
    }
    // The untampered message still decrypts: failures changed nothing.
    assert_eq!(bob.decrypt(&message).unwrap(), b"secret");

    let (_, _, mut v2_alice, _) = pair(SessionConfig::version_2());
    let v2_message = v2_alice.encrypt(b"v2");
    assert_eq!(bob.decrypt(&v2_message), Err(DecryptionError::VersionMismatch { expected: 3, got: 4 }));

    // A message on a ratchet key this session never saw, while bob has not yet replied.
    let (_, _, mut carol, _) = pair(SessionConfig::version_1());
    let (_, _, _, mut fresh_bob) = pair(SessionConfig::version_1());
    assert_eq!(fresh_bob.decrypt(&carol.encrypt(b"?")), Err(DecryptionError::UnexpectedRatchetKey));
    // Once bob has sent, a foreign key is tried as a ratchet step and fails its MAC.
    let _ = bob.encrypt(b"reply");
    assert_eq!(bob.decrypt(&carol.encrypt(b"?")), Err(DecryptionError::InvalidMac));
}

#[test]
fn small_order_keys_are_refused() {
    let alice = Account::new();
    let mut bob = Account::new();
    let otk = one_time_key(&mut bob);
    let zero = Curve25519PublicKey::from_bytes([0; 32]);
    assert_eq!(
        alice.create_outbound_session(SessionConfig::version_1(), zero, otk).unwrap_err(),
        SessionCreationError::NonContributoryKey
    );
    assert_eq!(
        alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), zero).unwrap_err(),
        SessionCreationError::NonContributoryKey
    );
}

#[test]
fn inbound_creation_removes_the_one_time_key_only_on_success() {
    let alice = Account::new();
    let mallory = Account::new();
    let mut bob = Account::new();
    let otk = one_time_key(&mut bob);
    let mut outbound = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
    let first = pre_key(outbound.encrypt(b"hello"));

    // The claimed sender must be the identity key inside the message.
    assert!(matches!(
        bob.create_inbound_session(SessionConfig::version_1(), mallory.curve25519_key(), &first),
        Err(SessionCreationError::MismatchedIdentityKey { .. })
    ));
    // A tampered inner message fails to decrypt; the one-time key survives.
    let mut bytes = first.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = PreKeyMessage::from_bytes(&bytes).unwrap();
    assert_eq!(
        bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &tampered).unwrap_err(),
        SessionCreationError::Decryption(DecryptionError::InvalidMac)
    );
    assert_eq!(bob.stored_one_time_key_count(), 1);

    let created = bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap();
    assert_eq!(created.plaintext, b"hello");
    assert!(created.session.matches(&first));
    assert_eq!(bob.stored_one_time_key_count(), 0);
    // The key is gone: the same pre-key message cannot open a second session.
    assert_eq!(
        bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap_err(),
        SessionCreationError::MissingOneTimeKey(otk)
    );
    // …but the existing session recognises and decrypts the retransmission? No: its key is
    // used. It does recognise the message as its own.
    let mut session = created.session;
    assert!(session.matches(&first));
    assert!(matches!(session.decrypt(&OlmMessage::PreKey(first)), Err(DecryptionError::MissingMessageKey(0))));
}

#[test]
fn fallback_keys_survive_use_and_rotate() {
    let mut bob = Account::new();
    assert!(bob.fallback_key().is_empty());
    assert_eq!(bob.generate_fallback_key(), None);
    let (_, first_fallback) = bob.fallback_key().into_iter().next().unwrap();
    bob.mark_keys_as_published();
    assert!(bob.fallback_key().is_empty());

    for _ in 0..2 {
        let alice = Account::new();
        let mut outbound =
            alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), first_fallback).unwrap();
        let m = pre_key(outbound.encrypt(b"via fallback"));
        assert_eq!(
            bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &m).unwrap().plaintext,
            b"via fallback"
        );
    }

    // Rotate: the old key stays usable until forgotten.
    assert_eq!(bob.generate_fallback_key(), None);
    let alice = Account::new();
    let mut outbound =
        alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), first_fallback).unwrap();
    let m = pre_key(outbound.encrypt(b"old fallback"));
    assert!(bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &m).is_ok());
    assert!(bob.forget_fallback_key());
    assert!(!bob.forget_fallback_key());
    assert_eq!(
        bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &m).unwrap_err(),
        SessionCreationError::MissingOneTimeKey(first_fallback)
    );
    // A third key evicts the previous one and reports it.
    let (_, second) = bob.fallback_key().into_iter().next().unwrap();
    bob.generate_fallback_key();
    assert_eq!(bob.generate_fallback_key(), Some(second));
}

#[test]
fn one_time_keys_are_bounded_oldest_evicted() {
    let mut account = Account::new();
    let first = account.generate_one_time_keys(10);
    assert_eq!(first.created.len(), 10);
    assert!(first.removed.is_empty());
    let ids: Vec<u32> = account.one_time_keys().keys().map(|id| id.value()).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    assert_eq!(account.one_time_keys().keys().next().unwrap().to_base64(), "AAAAAQ");
    let more = account.generate_one_time_keys(MAX_STORED_ONE_TIME_KEYS);
    assert_eq!(more.removed, first.created);
    assert_eq!(account.stored_one_time_key_count(), MAX_STORED_ONE_TIME_KEYS);
    assert_eq!(account.max_number_of_one_time_keys(), 50);
}

#[test]
fn pickles_round_trip_at_every_stage() {
    let key = PickleKey::new();
    let (alice_account, mut bob_account, mut alice, mut bob) = pair(SessionConfig::version_1());
    bob_account.generate_one_time_keys(3);
    bob_account.generate_fallback_key();
    bob_account.generate_fallback_key();

    // Accounts, both formats.
    let restored = Account::from_pickle(&bob_account.pickle(&key), &key).unwrap();
    assert_eq!(restored.identity_keys(), bob_account.identity_keys());
    assert_eq!(restored.one_time_keys(), bob_account.one_time_keys());
    assert_eq!(restored.fallback_key(), bob_account.fallback_key());
    assert_eq!(restored.sign(b"x"), bob_account.sign(b"x"));
    let restored = Account::from_libolm_pickle(&bob_account.to_libolm_pickle(b"any key").unwrap(), b"any key").unwrap();
    assert_eq!(restored.identity_keys(), bob_account.identity_keys());
    assert_eq!(restored.one_time_keys(), bob_account.one_time_keys());
    assert_eq!(restored.sign(b"x"), bob_account.sign(b"x"));
    // An account restored from libolm (an expanded Ed25519 key) pickles and restores again.
    let twice = Account::from_pickle(&restored.pickle(&key), &key).unwrap();
    assert_eq!(twice.sign(b"y"), bob_account.sign(b"y"));
    assert_eq!(
        alice_account.curve25519_key(),
        Account::from_pickle(&alice_account.pickle(&key), &key).unwrap().curve25519_key()
    );

    // Sessions in several states: bob pending (received, not replied), alice active,
    // skipped keys outstanding on both sides.
    let held: Vec<OlmMessage> = (0..3).map(|i| alice.encrypt(format!("held {i}").as_bytes())).collect();
    assert_eq!(bob.decrypt(&alice.encrypt(b"later")).unwrap(), b"later");
    for (name, session) in [("alice", &alice), ("bob", &bob)] {
        let mine = Session::from_pickle(&session.pickle(&key), &key).unwrap();
        let libolm = Session::from_libolm_pickle(&session.to_libolm_pickle(b"k").unwrap(), b"k").unwrap();
        for copy in [&mine, &libolm] {
            assert_eq!(copy.session_id(), session.session_id(), "{name}");
            assert_eq!(copy.has_received_message(), session.has_received_message());
        }
    }
    let mut bob_copy = Session::from_libolm_pickle(&bob.to_libolm_pickle(b"k").unwrap(), b"k").unwrap();
    let mut bob_mine = Session::from_pickle(&bob.pickle(&key), &key).unwrap();
    for (i, message) in held.iter().enumerate() {
        let expected = format!("held {i}");
        assert_eq!(bob_copy.decrypt(message).unwrap(), expected.as_bytes());
        assert_eq!(bob_mine.decrypt(message).unwrap(), expected.as_bytes());
        assert_eq!(bob.decrypt(message).unwrap(), expected.as_bytes());
    }
    for copy in [&mut bob_copy, &mut bob_mine] {
        let reply = copy.encrypt(b"from a restored session");
        let mut alice_copy = alice.clone();
        assert_eq!(alice_copy.decrypt(&reply).unwrap(), b"from a restored session");
    }
}

#[test]
fn pickle_errors_are_typed() {
    let key = PickleKey::new();
    let (account, _, session, _) = pair(SessionConfig::version_1());
    let account_pickle = account.pickle(&key);
    assert!(matches!(Session::from_pickle(&account_pickle, &key), Err(PickleError::WrongKind { .. })));
    assert_eq!(Account::from_pickle(&account_pickle, &PickleKey::new()).unwrap_err(), PickleError::Mac);
    assert_eq!(Account::from_pickle("", &key).unwrap_err(), PickleError::TooShort);
    assert_eq!(Account::from_pickle("***", &key).unwrap_err(), PickleError::Base64);
    assert_eq!(
        Session::from_libolm_pickle(&session.to_libolm_pickle(b"a").unwrap(), b"b").unwrap_err(),
        PickleError::Mac
    );
    // A libolm account pickle is not a session pickle: its version differs.
    let as_session = Session::from_libolm_pickle(&account.to_libolm_pickle(b"a").unwrap(), b"a").unwrap_err();
    assert_eq!(as_session, PickleError::UnknownVersion(4));

    let (_, _, v2, _) = pair(SessionConfig::version_2());
    assert!(matches!(v2.to_libolm_pickle(b"k"), Err(PickleError::UnsupportedByLibolm(_))));
    let mut crowded = Account::new();
    crowded.generate_one_time_keys(101);
    assert!(matches!(crowded.to_libolm_pickle(b"k"), Err(PickleError::UnsupportedByLibolm(_))));
}

#[test]
fn debug_output_holds_no_secrets() {
    let key = PickleKey::from_bytes([7; 32]);
    let (account, _, session, _) = pair(SessionConfig::version_1());
    let printed = format!("{account:?} {session:?} {key:?}");
    assert!(printed.contains(&account.curve25519_key().to_base64()));
    assert!(printed.contains(&session.session_id().to_base64()));
    assert!(!printed.contains("secret:"), "{printed}");
    assert!(!printed.contains("chain_key"), "{printed}");
}

#[test]
fn one_call_creates_at_most_the_accounts_maximum() {
    // Through the FFI's u32 a caller can ask for billions of keys; the account creates as many
    // as it can hold (any more would evict keys of the same call), and says so.
    let mut account = Account::new();
    for huge in [usize::MAX, u32::MAX as usize] {
        let result = account.generate_one_time_keys(huge);
        assert_eq!(result.created.len(), MAX_STORED_ONE_TIME_KEYS);
        assert_eq!(account.stored_one_time_key_count(), MAX_STORED_ONE_TIME_KEYS);
        assert_eq!(account.one_time_keys().len(), MAX_STORED_ONE_TIME_KEYS);
    }
    // The second call evicted all of the first call's keys, and reported them.
    let last = account.generate_one_time_keys(3);
    assert_eq!(last.created.len(), 3);
    assert_eq!(last.removed.len(), 3);
    assert_eq!(account.generate_one_time_keys(0).created.len(), 0);
}

#[test]
fn inbound_sessions_refuse_a_session_format_the_receiver_did_not_expect() {
    for (sent, expected) in [
        (SessionConfig::version_2(), SessionConfig::version_1()),
        (SessionConfig::version_1(), SessionConfig::version_2()),
    ] {
        let alice = Account::new();
        let mut bob = Account::new();
        let otk = one_time_key(&mut bob);
        let mut outbound = alice.create_outbound_session(sent, bob.curve25519_key(), otk).unwrap();
        let first = pre_key(outbound.encrypt(b"hello"));
        assert_eq!(
            bob.create_inbound_session(expected, alice.curve25519_key(), &first).unwrap_err(),
            SessionCreationError::MismatchedSessionConfig { expected, got: sent }
        );
        // Refused before anything changed: the one-time key is still there.
        assert_eq!(bob.stored_one_time_key_count(), 1);
        let created = bob.create_inbound_session(sent, alice.curve25519_key(), &first).unwrap();
        assert_eq!(created.session.config(), sent);
        assert_eq!(bob.stored_one_time_key_count(), 0);
    }
}

#[test]
fn inbound_creation_reports_the_key_it_used() {
    let mut bob = Account::new();
    bob.generate_one_time_keys(2);
    bob.generate_fallback_key();
    let (otk_id, otk) = bob.one_time_keys().into_iter().nth(1).unwrap();
    let (fallback_id, fallback) = bob.fallback_key().into_iter().next().unwrap();
    bob.mark_keys_as_published();
    let open = |bob: &mut Account, key| {
        let alice = Account::new();
        let mut outbound =
            alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), key).unwrap();
        let first = pre_key(outbound.encrypt(b"hi"));
        bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap().consumed_key
    };
    assert_eq!(open(&mut bob, otk), ConsumedKey::OneTime(otk_id));
    assert_eq!(bob.stored_one_time_key_count(), 1);
    assert_eq!(open(&mut bob, fallback), ConsumedKey::Fallback(fallback_id));
    bob.generate_fallback_key();
    let used = open(&mut bob, fallback);
    assert_eq!(used, ConsumedKey::PreviousFallback(fallback_id));
    assert_eq!(used.key_id(), fallback_id);
    let (new_id, new_fallback) = bob.fallback_key().into_iter().next().unwrap();
    assert_eq!(open(&mut bob, new_fallback), ConsumedKey::Fallback(new_id));
    assert_ne!(new_id, fallback_id);
}

#[test]
fn debug_of_an_inbound_creation_result_hides_the_plaintext() {
    let alice = Account::new();
    let mut bob = Account::new();
    let otk = one_time_key(&mut bob);
    let mut outbound = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
    let secret = b"{\"type\":\"m.room_key\",\"session_key\":\"AgAAAAB\"}";
    let first = pre_key(outbound.encrypt(secret));
    let created = bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap();
    let printed = format!("{created:?} {created:#?}");
    assert!(!printed.contains("m.room_key"), "{printed}");
    assert!(!printed.contains(&format!("{:?}", &secret[..8])), "{printed}");
    assert!(printed.contains(&format!("<{} bytes, redacted>", secret.len())), "{printed}");
    assert!(printed.contains("OneTime"), "{printed}");
}

#[test]
fn session_ids_are_typed_and_match_libolms_derivation() {
    let (_, _, alice, bob) = pair(SessionConfig::version_1());
    let id: SessionId = alice.session_id();
    assert_eq!(id, bob.session_id());
    let keys = alice.session_keys();
    let digest = {
        use sha2::Digest;
        let mut sha = sha2::Sha256::new();
        sha.update(keys.identity_key.as_bytes());
        sha.update(keys.base_key.as_bytes());
        sha.update(keys.one_time_key.as_bytes());
        <[u8; 32]>::from(sha.finalize())
    };
    assert_eq!(id.as_bytes(), &digest);
    assert_eq!(SessionId::from_base64(&id.to_base64()), Ok(id));
    assert_eq!(id.to_base64().parse::<SessionId>(), Ok(id));
    assert_eq!(id.to_string(), id.to_base64());
    assert_eq!(id.to_base64().len(), 43);
    assert_eq!(format!("{id:?}"), format!("SessionId({})", id.to_base64()));
    assert_eq!(SessionId::from_bytes(digest), id);
    assert_eq!(SessionId::from_base64("AAAA"), Err(SessionIdError::InvalidLength(3)));
    assert_eq!(SessionId::from_base64("not base64!"), Err(SessionIdError::Base64));
    // Ordered and hashable, for maps keyed by session.
    let ids: std::collections::BTreeSet<SessionId> = [id, id].into_iter().collect();
    assert_eq!(ids.len(), 1);
    let _: std::collections::HashSet<SessionId> = ids.into_iter().collect();
}
