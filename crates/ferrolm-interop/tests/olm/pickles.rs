//! libolm-format pickles written by each implementation and read by the others.
//!
//! - Accounts: ferrolm's `to_libolm_pickle` read by libolm and vodozemac; libolm's and
//!   vodozemac's read by ferrolm. The restored account keeps its identity keys, signs
//!   byte-identically (Ed25519 is deterministic), lists the same unpublished keys with the same
//!   ids, continues the key id sequence, and opens sessions from its unused one-time keys and
//!   both fallback keys.
//! - Sessions at every stage of a conversation (fresh, received-but-not-replied, with skipped
//!   message keys outstanding on one or two chains): the restored session carries on, in both
//!   directions, and decrypts the held-back messages.
//! - libolm and ferrolm write byte-identical pickles of the same state (the IV depends only on
//!   the key, so equal plaintexts give equal pickles).
//! - Pickle keys of 0, 5, 32 and 100 bytes.

use std::collections::BTreeMap;

use ferrolm::olm as fo;
use ferrolm_interop::libolm;
use vodozemac::olm as vo;

use crate::common::*;

/// Pickle keys of the lengths libolm users have been seen to use.
fn pickle_keys() -> [Vec<u8>; 4] {
    [Vec::new(), b"12345".to_vec(), (0..32).collect(), (0..100).map(|i| (i * 7) as u8).collect()]
}

// ---------------------------------------------------------------------------------------------
// Accounts

fn ferrolm_unpublished(account: &fo::Account) -> BTreeMap<String, String> {
    account.one_time_keys().into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect()
}

fn ferrolm_fallback(account: &fo::Account) -> BTreeMap<String, String> {
    account.fallback_key().into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect()
}

/// vodozemac's key ids are 64-bit and its `KeyId::to_base64` encodes all eight bytes, where
/// libolm and ferrolm encode four; compare ids by number.
fn key_id_number(id: &str) -> u64 {
    ferrolm::types::base64_decode(id).unwrap().iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

fn by_number(keys: BTreeMap<String, String>) -> BTreeMap<u64, String> {
    keys.into_iter().map(|(id, key)| (key_id_number(&id), key)).collect()
}

fn vodozemac_unpublished(account: &vo::Account) -> BTreeMap<String, String> {
    account.one_time_keys().into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect()
}

fn vodozemac_fallback(account: &vo::Account) -> BTreeMap<String, String> {
    account.fallback_key().into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect()
}

const SIGNED: [&[u8]; 3] = [b"", b"{\"device_id\":\"ABCDEF\"}", &[0xff; 300]];

/// Builds a ferrolm account with published and unpublished one-time keys, a published
/// previous fallback key and an unpublished current one. Returns the account and its keys:
/// (published one-time key, unpublished one-time key, previous fallback, current fallback).
fn ferrolm_account_with_keys() -> (fo::Account, [String; 4]) {
    let mut account = fo::Account::new();
    let published = account.generate_one_time_keys(5).created;
    account.generate_fallback_key();
    let previous_fallback = *account.fallback_key().values().next().unwrap();
    account.mark_keys_as_published();
    let unpublished = account.generate_one_time_keys(3).created;
    account.generate_fallback_key();
    let current_fallback = *account.fallback_key().values().next().unwrap();
    let keys = [published[2], unpublished[1], previous_fallback, current_fallback].map(|k| k.to_base64());
    (account, keys)
}

/// Opens a session from a fresh `initiator` account to the restored account through `key`,
/// with the restored account's `inbound` doing the receiving, and checks it works.
fn open_session_to(restored: &mut dyn PeerAccount, initiator: Impl, key: &str, context: &str) {
    let alice = new_account(initiator);
    let mut outbound = alice.create_outbound(Version::V1, &restored.curve25519_key(), key);
    let first = outbound.encrypt(b"to the restored account");
    let (mut inbound, plaintext) = restored
        .create_inbound(Version::V1, &alice.curve25519_key(), &first)
        .unwrap_or_else(|e| panic!("{context}: {:?} opens a session from key {key}: {e}", restored.implementation()));
    assert_eq!(plaintext, b"to the restored account");
    ping_pong(outbound.as_mut(), inbound.as_mut(), 2);
}

#[test]
fn ferrolm_account_pickles_are_read_by_libolm_and_vodozemac() {
    for key in pickle_keys() {
        let context = format!("{}-byte pickle key", key.len());
        let (account, [published, unpublished, previous_fallback, current_fallback]) = ferrolm_account_with_keys();
        let pickle = account.to_libolm_pickle(&key).unwrap();

        // libolm.
        let restored = libolm::Account::unpickle(&pickle, &key).unwrap_or_else(|e| panic!("{context}: {e}"));
        let identity = restored.identity_keys().unwrap();
        assert_eq!(identity.curve25519, account.curve25519_key().to_base64(), "{context}");
        assert_eq!(identity.ed25519, account.ed25519_key().to_base64(), "{context}");
        for message in SIGNED {
            assert_eq!(
                restored.sign(message).unwrap(),
                account.sign(message).to_base64(),
                "{context}: identical signatures"
            );
        }
        assert_eq!(
            restored.one_time_keys().unwrap(),
            ferrolm_unpublished(&account),
            "{context}: unpublished keys and ids"
        );
        assert_eq!(restored.unpublished_fallback_key().unwrap(), ferrolm_fallback(&account), "{context}");
        assert_eq!(restored.pickle(&key).unwrap(), pickle, "{context}: libolm writes back exactly what ferrolm wrote");

        // The key id sequence continues where ferrolm left it.
        let mut continued = libolm::Account::unpickle(&pickle, &key).unwrap();
        let mut ferrolm_continued = account.clone();
        ferrolm_continued.mark_keys_as_published();
        continued.mark_keys_as_published().unwrap();
        continued.generate_one_time_keys(1).unwrap();
        ferrolm_continued.generate_one_time_keys(1);
        assert_eq!(
            continued.one_time_keys().unwrap().into_keys().collect::<Vec<_>>(),
            ferrolm_unpublished(&ferrolm_continued).into_keys().collect::<Vec<_>>(),
            "{context}: the next key id"
        );

        let mut libolm_account = LibolmAccount(restored);
        for claimed in [&published, &unpublished, &previous_fallback, &current_fallback] {
            open_session_to(&mut libolm_account, Impl::Ferrolm, claimed, &context);
        }
        // The used one-time key is gone from libolm too; the fallback keys stay.
        let alice = new_account(Impl::Ferrolm);
        let mut again = alice.create_outbound(Version::V1, &libolm_account.curve25519_key(), &published);
        assert!(libolm_account.create_inbound(Version::V1, &alice.curve25519_key(), &again.encrypt(b"x")).is_err());
        open_session_to(&mut libolm_account, Impl::Libolm, &current_fallback, &context);

        // vodozemac.
        let restored = vo::Account::from_libolm_pickle(&pickle, &key).unwrap_or_else(|e| panic!("{context}: {e:?}"));
        assert_eq!(restored.curve25519_key().to_base64(), account.curve25519_key().to_base64(), "{context}");
        assert_eq!(restored.ed25519_key().to_base64(), account.ed25519_key().to_base64(), "{context}");
        for message in SIGNED {
            assert_eq!(restored.sign(message).to_base64(), account.sign(message).to_base64(), "{context}");
        }
        assert_eq!(by_number(vodozemac_unpublished(&restored)), by_number(ferrolm_unpublished(&account)), "{context}");
        assert_eq!(by_number(vodozemac_fallback(&restored)), by_number(ferrolm_fallback(&account)), "{context}");
        let mut vodozemac_account = VodozemacAccount(restored);
        for claimed in [&published, &unpublished, &previous_fallback, &current_fallback] {
            open_session_to(&mut vodozemac_account, Impl::Ferrolm, claimed, &context);
        }
    }
}

#[test]
fn peer_account_pickles_are_read_by_ferrolm() {
    for key in pickle_keys() {
        let context = format!("libolm account, {}-byte pickle key", key.len());
        let mut account = libolm::Account::new().unwrap();
        account.generate_one_time_keys(5).unwrap();
        let published = account.one_time_keys().unwrap().into_values().nth(2).unwrap();
        account.generate_fallback_key().unwrap();
        let previous_fallback = account.unpublished_fallback_key().unwrap().into_values().next().unwrap();
        account.mark_keys_as_published().unwrap();
        account.generate_one_time_keys(3).unwrap();
        let unpublished = account.one_time_keys().unwrap().into_values().nth(1).unwrap();
        account.generate_fallback_key().unwrap();
        let current_fallback = account.unpublished_fallback_key().unwrap().into_values().next().unwrap();
        let pickle = account.pickle(&key).unwrap();

        let restored = fo::Account::from_libolm_pickle(&pickle, &key).unwrap_or_else(|e| panic!("{context}: {e}"));
        let identity = account.identity_keys().unwrap();
        assert_eq!(restored.curve25519_key().to_base64(), identity.curve25519, "{context}");
        assert_eq!(restored.ed25519_key().to_base64(), identity.ed25519, "{context}");
        for message in SIGNED {
            assert_eq!(
                restored.sign(message).to_base64(),
                account.sign(message).unwrap(),
                "{context}: identical signatures"
            );
        }
        assert_eq!(ferrolm_unpublished(&restored), account.one_time_keys().unwrap(), "{context}");
        assert_eq!(ferrolm_fallback(&restored), account.unpublished_fallback_key().unwrap(), "{context}");
        assert_eq!(restored.stored_one_time_key_count(), 8, "{context}");
        assert_eq!(
            restored.to_libolm_pickle(&key).unwrap(),
            pickle,
            "{context}: ferrolm writes back exactly what libolm wrote"
        );

        // The key id sequence continues where libolm left it.
        let mut ferrolm_continued = restored.clone();
        ferrolm_continued.mark_keys_as_published();
        account.mark_keys_as_published().unwrap();
        ferrolm_continued.generate_one_time_keys(1);
        account.generate_one_time_keys(1).unwrap();
        assert_eq!(
            ferrolm_unpublished(&ferrolm_continued).into_keys().collect::<Vec<_>>(),
            account.one_time_keys().unwrap().into_keys().collect::<Vec<_>>(),
            "{context}: the next key id"
        );

        let mut ferrolm_account = FerrolmAccount(restored);
        for claimed in [&published, &unpublished, &previous_fallback, &current_fallback] {
            open_session_to(&mut ferrolm_account, Impl::Libolm, claimed, &context);
        }
        let alice = new_account(Impl::Libolm);
        let mut again = alice.create_outbound(Version::V1, &ferrolm_account.curve25519_key(), &published);
        let refused = ferrolm_account.create_inbound(Version::V1, &alice.curve25519_key(), &again.encrypt(b"x"));
        assert!(matches!(refused, Err(e) if e.starts_with("MissingOneTimeKey")), "{context}");

        // vodozemac's libolm pickles.
        let context = format!("vodozemac account, {}-byte pickle key", key.len());
        let mut account = vo::Account::new();
        let published = account.generate_one_time_keys(5).created[2].to_base64();
        account.generate_fallback_key();
        let previous_fallback = vodozemac_fallback(&account).into_values().next().unwrap();
        account.mark_keys_as_published();
        let unpublished = account.generate_one_time_keys(3).created[1].to_base64();
        account.generate_fallback_key();
        let current_fallback = vodozemac_fallback(&account).into_values().next().unwrap();
        let pickle = account.to_libolm_pickle(&key).unwrap();

        let restored = fo::Account::from_libolm_pickle(&pickle, &key).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(restored.curve25519_key().to_base64(), account.curve25519_key().to_base64(), "{context}");
        assert_eq!(restored.ed25519_key().to_base64(), account.ed25519_key().to_base64(), "{context}");
        for message in SIGNED {
            assert_eq!(restored.sign(message).to_base64(), account.sign(message).to_base64(), "{context}");
        }
        assert_eq!(by_number(ferrolm_unpublished(&restored)), by_number(vodozemac_unpublished(&account)), "{context}");
        assert_eq!(by_number(ferrolm_fallback(&restored)), by_number(vodozemac_fallback(&account)), "{context}");
        let mut ferrolm_account = FerrolmAccount(restored);
        for claimed in [&published, &unpublished, &previous_fallback, &current_fallback] {
            open_session_to(&mut ferrolm_account, Impl::Vodozemac, claimed, &context);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// Two sessions in conversation, with the messages each side has held back from the other.
struct Duo {
    /// `sides[0]` initiated the session.
    sides: [Box<dyn PeerSession>; 2],
    /// `held[d]`: messages from side `d` not yet delivered, with their plaintexts.
    held: [Vec<(Wire, Vec<u8>)>; 2],
    counter: usize,
}

#[derive(Clone, Copy)]
enum Fate {
    Deliver,
    Hold,
}

impl Duo {
    fn send(&mut self, from: usize, fates: &[Fate]) {
        for fate in fates {
            self.counter += 1;
            let plaintext = format!("message {} from side {from}", self.counter).into_bytes();
            let wire = self.sides[from].encrypt(&plaintext);
            match fate {
                Fate::Deliver => assert_eq!(self.sides[1 - from].decrypt(&wire).unwrap(), plaintext),
                Fate::Hold => self.held[from].push((wire, plaintext)),
            }
        }
    }

    /// An independent copy with side `which` replaced.
    fn fork_with(&self, which: usize, replacement: Box<dyn PeerSession>) -> Self {
        let other = self.sides[1 - which].fork();
        let sides = if which == 0 { [replacement, other] } else { [other, replacement] };
        Self { sides, held: self.held.clone(), counter: self.counter }
    }

    fn ferrolm_side(&self) -> usize {
        if self.sides[0].implementation() == Impl::Ferrolm { 0 } else { 1 }
    }

    /// Carries the conversation on: the held-back messages arrive (newest first), then three
    /// rounds of three messages each way, delivered out of order, then a replay.
    fn carry_on(mut self, context: &str) {
        for from in 0..2 {
            while let Some((wire, plaintext)) = self.held[from].pop() {
                let to = &mut self.sides[1 - from];
                let decrypted = to.decrypt(&wire).unwrap_or_else(|e| {
                    panic!(
                        "{context}: {:?} cannot decrypt a held-back message after the transfer: {e}",
                        to.implementation()
                    )
                });
                assert_eq!(decrypted, plaintext, "{context}");
            }
        }
        for round in 0..3 {
            for (from, order) in [(0, [2, 0, 1]), (1, [1, 2, 0])] {
                let batch: Vec<(Wire, Vec<u8>)> = (0..3)
                    .map(|i| {
                        let plaintext = format!("{context}: round {round}, side {from}, #{i}").into_bytes();
                        (self.sides[from].encrypt(&plaintext), plaintext)
                    })
                    .collect();
                for i in order {
                    let (wire, plaintext) = &batch[i];
                    let to = &mut self.sides[1 - from];
                    let decrypted = to.decrypt(wire).unwrap_or_else(|e| panic!("{context}: round {round}: {e}"));
                    assert_eq!(&decrypted, plaintext, "{context}");
                }
                assert!(self.sides[1 - from].decrypt(&batch[0].0).is_err(), "{context}: replay refused");
            }
        }
    }
}

/// Moves the sessions at this stage across implementations through libolm pickles and checks
/// the conversation carries on, each way the formats allow.
fn transfer_and_carry_on(duo: &Duo, stage: &str, key: &[u8]) {
    let f = duo.ferrolm_side();
    let ferrolm = duo.sides[f].as_ferrolm().unwrap();
    let other = duo.sides[1 - f].implementation();
    let context = format!("ferrolm ↔ {other:?}, {stage}, {}-byte key", key.len());
    let pickle = ferrolm.to_libolm_pickle(key).unwrap();

    // ferrolm → libolm.
    let restored = libolm::Session::unpickle(&pickle, key).unwrap_or_else(|e| panic!("{context}: libolm: {e}"));
    assert_eq!(restored.session_id().unwrap(), ferrolm.session_id().to_base64(), "{context}");
    assert_eq!(restored.has_received_message(), ferrolm.has_received_message(), "{context}");
    duo.fork_with(f, Box::new(LibolmSession(restored)))
        .carry_on(&format!("{context}, ferrolm's session now in libolm"));

    // ferrolm → vodozemac.
    let restored =
        vo::Session::from_libolm_pickle(&pickle, key).unwrap_or_else(|e| panic!("{context}: vodozemac: {e:?}"));
    assert_eq!(restored.session_id(), ferrolm.session_id().to_base64(), "{context}");
    assert_eq!(restored.has_received_message(), ferrolm.has_received_message(), "{context}");
    duo.fork_with(f, Box::new(VodozemacSession(restored)))
        .carry_on(&format!("{context}, ferrolm's session now in vodozemac"));

    // ferrolm → libolm → ferrolm.
    let through_libolm = libolm::Session::unpickle(&pickle, key).unwrap().pickle(key).unwrap();
    let restored =
        fo::Session::from_libolm_pickle(&through_libolm, key).unwrap_or_else(|e| panic!("{context}: back: {e}"));
    assert_eq!(restored.has_received_message(), ferrolm.has_received_message(), "{context}");
    duo.fork_with(f, Box::new(FerrolmSession(restored))).carry_on(&format!("{context}, ferrolm → libolm → ferrolm"));

    // The other side, if libolm, into ferrolm.
    if let Some(session) = duo.sides[1 - f].as_libolm() {
        let pickle = session.pickle(key).unwrap();
        let restored = fo::Session::from_libolm_pickle(&pickle, key)
            .unwrap_or_else(|e| panic!("{context}: ferrolm reads libolm: {e}"));
        assert_eq!(restored.session_id().to_base64(), session.session_id().unwrap(), "{context}");
        assert_eq!(restored.has_received_message(), session.has_received_message(), "{context}");
        duo.fork_with(1 - f, Box::new(FerrolmSession(restored)))
            .carry_on(&format!("{context}, libolm's session now in ferrolm"));
    }
}

#[test]
fn session_pickles_at_every_stage_carry_on_in_the_other_implementation() {
    use Fate::{Deliver as D, Hold as H};
    let keys = pickle_keys();
    for peer in PEERS {
        for (initiator, receiver) in [(Impl::Ferrolm, peer), (peer, Impl::Ferrolm)] {
            let pair = establish(initiator, receiver, Version::V1, KeyKind::OneTime);
            let mut duo = Duo { sides: [pair.initiator, pair.receiver], held: [Vec::new(), Vec::new()], counter: 0 };
            let mut key = keys.iter().cycle();

            // The initiator has sent one message; the receiver has received, not replied.
            transfer_and_carry_on(&duo, "after the first message", key.next().unwrap());
            duo.send(0, &[D, H, D]);
            transfer_and_carry_on(&duo, "receiver has not replied, one skipped key", key.next().unwrap());
            duo.send(1, &[D, H, H, D]);
            transfer_and_carry_on(&duo, "initiator received a new chain and has not replied", key.next().unwrap());
            duo.send(0, &[H, D, H, D]);
            transfer_and_carry_on(&duo, "skipped keys on two chains", key.next().unwrap());
            duo.send(1, &[D, D]);
            duo.send(0, &[D]);
            transfer_and_carry_on(&duo, "established, skipped keys outstanding", key.next().unwrap());
            for from in 0..2 {
                while let Some((wire, plaintext)) = duo.held[from].pop() {
                    assert_eq!(duo.sides[1 - from].decrypt(&wire).unwrap(), plaintext);
                }
            }
            duo.send(1, &[D]);
            transfer_and_carry_on(&duo, "no skipped keys", key.next().unwrap());
        }
    }
}

#[test]
fn ferrolm_outbound_session_before_the_first_message_moves_to_libolm_and_vodozemac() {
    // The initiator's session straight after creation: a sender chain, no receiver chain.
    let mut bob = libolm::Account::new().unwrap();
    bob.generate_one_time_keys(1).unwrap();
    let otk = bob.one_time_keys().unwrap().into_values().next().unwrap();
    let alice = fo::Account::new();
    let session = alice
        .create_outbound_session(
            fo::SessionConfig::version_1(),
            ferrolm_key(&bob.identity_keys().unwrap().curve25519),
            ferrolm_key(&otk),
        )
        .unwrap();
    for key in pickle_keys() {
        let pickle = session.to_libolm_pickle(&key).unwrap();
        let mut restored = libolm::Session::unpickle(&pickle, &key).unwrap();
        assert_eq!(restored.pickle(&key).unwrap(), pickle, "identical pickles");
        assert!(!restored.has_received_message());
        let (message_type, body) = restored.encrypt(b"first").unwrap();
        assert_eq!(message_type, libolm::MessageType::PreKey);
        let mut inbound = libolm::Session::create_inbound(&bob, &body).unwrap();
        assert_eq!(inbound.decrypt(message_type, &body).unwrap(), b"first");
        let mut inbound = LibolmSession(inbound);
        ping_pong(&mut LibolmSession(restored), &mut inbound, 2);

        let mut restored = VodozemacSession(vo::Session::from_libolm_pickle(&pickle, &key).unwrap());
        let first = restored.encrypt(b"first from vodozemac");
        let mut inbound = libolm::Session::create_inbound(&bob, &first.body).unwrap();
        assert_eq!(inbound.decrypt(first.libolm_type(), &first.body).unwrap(), b"first from vodozemac");
        ping_pong(&mut restored, &mut LibolmSession(inbound), 2);
    }
}

/// ferrolm and libolm lay out sessions identically: for states whose skipped keys lie on at
/// most one chain (where libolm's single list and ferrolm's per-chain lists hold the same
/// order), each writes back exactly the pickle the other wrote.
#[test]
fn ferrolm_and_libolm_write_identical_session_pickles() {
    use Fate::{Deliver as D, Hold as H};
    for (initiator, receiver) in [(Impl::Ferrolm, Impl::Libolm), (Impl::Libolm, Impl::Ferrolm)] {
        let pair = establish(initiator, receiver, Version::V1, KeyKind::OneTime);
        let mut duo = Duo { sides: [pair.initiator, pair.receiver], held: [Vec::new(), Vec::new()], counter: 0 };
        let check = |duo: &Duo, stage: &str| {
            let f = duo.ferrolm_side();
            let ferrolm = duo.sides[f].as_ferrolm().unwrap();
            let libolm = duo.sides[1 - f].as_libolm().unwrap();
            for key in pickle_keys() {
                let context = format!("{initiator:?} → {receiver:?}, {stage}, {}-byte key", key.len());
                let ours = ferrolm.to_libolm_pickle(&key).unwrap();
                assert_eq!(
                    libolm::Session::unpickle(&ours, &key).unwrap().pickle(&key).unwrap(),
                    ours,
                    "{context}: ferrolm's"
                );
                let theirs = libolm.pickle(&key).unwrap();
                assert_eq!(
                    fo::Session::from_libolm_pickle(&theirs, &key).unwrap().to_libolm_pickle(&key).unwrap(),
                    theirs,
                    "{context}: libolm's"
                );
            }
        };
        check(&duo, "after the first message");
        duo.send(0, &[D, D]);
        check(&duo, "pre-key phase");
        duo.send(1, &[D]);
        check(&duo, "first reply received");
        duo.send(0, &[D, H, H, H, D]);
        check(&duo, "three skipped keys on one chain");
        duo.send(1, &[D, D, D]);
        duo.send(0, &[D]);
        check(&duo, "several chains");
    }
}

/// Skips 30 messages of a new chain at `receiver`, moves the receiver's session to the other
/// implementation, skips 14 more (44 in all, four more than libolm's 40), and returns which of
/// the 44 the original session and the moved one can still decrypt.
fn skip_move_skip(receiver: Impl) -> (Vec<usize>, Vec<usize>) {
    let key = b"pickle key";
    let sender = if receiver == Impl::Libolm { Impl::Ferrolm } else { Impl::Libolm };
    let mut pair = establish(sender, receiver, Version::V1, KeyKind::OneTime);
    ping_pong(pair.initiator.as_mut(), pair.receiver.as_mut(), 1);

    // Chain indices 0..30 of the sender's new chain are skipped, index 30 arrives.
    let mut skipped = held_batch(pair.initiator.as_mut(), 30, "first batch");
    send(pair.initiator.as_mut(), pair.receiver.as_mut(), b"after the first batch");

    let mut moved: Box<dyn PeerSession> = match (pair.receiver.as_libolm(), pair.receiver.as_ferrolm()) {
        (Some(libolm), _) => {
            Box::new(FerrolmSession(fo::Session::from_libolm_pickle(&libolm.pickle(key).unwrap(), key).unwrap()))
        }
        (_, Some(ferrolm)) => {
            Box::new(LibolmSession(libolm::Session::unpickle(&ferrolm.to_libolm_pickle(key).unwrap(), key).unwrap()))
        }
        _ => unreachable!(),
    };
    let mut original = pair.receiver;

    // Indices 31..45 are skipped, index 45 arrives: 44 skipped keys, four too many.
    skipped.extend(held_batch(pair.initiator.as_mut(), 14, "second batch"));
    let last = pair.initiator.encrypt(b"after the second batch");
    assert_eq!(original.decrypt(&last).unwrap(), b"after the second batch");
    assert_eq!(moved.decrypt(&last).unwrap(), b"after the second batch");
    (decryptable(original.as_ref(), &skipped), decryptable(moved.as_ref(), &skipped))
}

/// libolm keeps its skipped message keys in one list, newest first, and when a 41st arrives it
/// forgets the oldest (the list's last entry). A libolm session restored in ferrolm must forget
/// the same keys libolm would have: the oldest, chain indices 0..4.
#[test]
fn skipped_keys_restored_from_libolm_are_forgotten_oldest_first() {
    let (libolm_itself, in_ferrolm) = skip_move_skip(Impl::Libolm);
    let newest_40: Vec<usize> = (4..44).collect();
    assert_eq!(libolm_itself, newest_40, "libolm keeps the 40 newest skipped keys");
    assert_eq!(in_ferrolm, newest_40, "the session restored in ferrolm keeps the same 40 keys as libolm");
}

/// The reverse: a ferrolm session exported to libolm must keep forgetting its oldest skipped
/// keys first, as ferrolm itself does.
#[test]
fn skipped_keys_exported_to_libolm_are_forgotten_oldest_first() {
    let (ferrolm_itself, in_libolm) = skip_move_skip(Impl::Ferrolm);
    let newest_40: Vec<usize> = (4..44).collect();
    assert_eq!(ferrolm_itself, newest_40, "ferrolm keeps the 40 newest skipped keys");
    assert_eq!(in_libolm, newest_40, "the session exported to libolm keeps the same 40 keys as ferrolm");
}

/// ferrolm keeps 40 skipped keys per chain, libolm 40 per session: the export keeps the 40
/// newest, and libolm can use every one of them.
#[test]
fn ferrolm_sessions_with_more_skipped_keys_than_libolm_holds_export_the_newest() {
    let key = b"k";
    let mut pair = establish(Impl::Libolm, Impl::Ferrolm, Version::V1, KeyKind::OneTime);
    ping_pong(pair.initiator.as_mut(), pair.receiver.as_mut(), 1);
    let older = held_batch(pair.initiator.as_mut(), 30, "older chain");
    send(pair.initiator.as_mut(), pair.receiver.as_mut(), b"end of the older chain");
    send(pair.receiver.as_mut(), pair.initiator.as_mut(), b"ratchet");
    let newer = held_batch(pair.initiator.as_mut(), 30, "newer chain");
    send(pair.initiator.as_mut(), pair.receiver.as_mut(), b"end of the newer chain");

    let ferrolm = pair.receiver.as_ferrolm().unwrap();
    assert_eq!(decryptable(pair.receiver.as_ref(), &older).len(), 30, "ferrolm keeps 40 per chain");
    let exported = LibolmSession(libolm::Session::unpickle(&ferrolm.to_libolm_pickle(key).unwrap(), key).unwrap());
    assert_eq!(decryptable(&exported, &newer), (0..30).collect::<Vec<_>>(), "the newer chain's keys all survive");
    assert_eq!(decryptable(&exported, &older), (20..30).collect::<Vec<_>>(), "the older chain's ten newest survive");
}
