//! Property tests: random delivery orders decrypt exactly as the ratchet allows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use std::collections::VecDeque;

use ferrolm::olm::{
    Account, DecryptionError, MAX_MESSAGE_GAP, MAX_SKIPPED_MESSAGE_KEYS, OlmMessage, Session, SessionConfig,
};
use proptest::prelude::*;

fn established() -> (Session, Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    let mut outbound = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
    let OlmMessage::PreKey(first) = outbound.encrypt(b"start") else { panic!("pre-key expected") };
    let inbound =
        bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap().session;
    (outbound, inbound)
}

/// The receiving side of one chain as the ratchet specifies it: the next index, and the
/// skipped keys kept (oldest first, at most 40, only for indices within 40 of the message
/// that skipped them).
struct ChainModel {
    next: u64,
    skipped: VecDeque<u64>,
}

impl ChainModel {
    fn deliver(&mut self, index: u64) -> Result<(), DecryptionError> {
        if index < self.next {
            let position =
                self.skipped.iter().position(|&i| i == index).ok_or(DecryptionError::MissingMessageKey(index))?;
            self.skipped.remove(position);
            return Ok(());
        }
        let gap = index - self.next;
        if gap > MAX_MESSAGE_GAP {
            return Err(DecryptionError::TooBigMessageGap { gap, max: MAX_MESSAGE_GAP });
        }
        for skipped in self.next.max(index.saturating_sub(MAX_SKIPPED_MESSAGE_KEYS as u64))..index {
            if self.skipped.len() == MAX_SKIPPED_MESSAGE_KEYS {
                self.skipped.pop_front();
            }
            self.skipped.push_back(skipped);
        }
        self.next = index + 1;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// One chain, any delivery sequence (with repeats and long jumps): each message decrypts
    /// or fails exactly as the model says, with the model's error.
    #[test]
    fn one_chain_matches_the_model(deliveries in prop::collection::vec(0usize..120, 1..80)) {
        let (mut alice, mut bob) = established();
        // Bob's chain is at index 1 after the pre-key message.
        let messages: Vec<OlmMessage> = (1..=120).map(|i| alice.encrypt(format!("m{i}").as_bytes())).collect();
        let mut model = ChainModel { next: 1, skipped: VecDeque::new() };
        for position in deliveries {
            let index = position as u64 + 1;
            let expected = model.deliver(index);
            let got = bob.decrypt(&messages[position]);
            match expected {
                Ok(()) => prop_assert_eq!(got.unwrap(), format!("m{index}").into_bytes()),
                Err(error) => prop_assert_eq!(got.unwrap_err(), error),
            }
        }
    }

    /// Many chains: turns alternate between the two sides; within a turn messages arrive in
    /// any order, some are dropped, and some arrive up to two turns late. Every delivered
    /// message decrypts once; a replay fails.
    #[test]
    fn conversations_with_reordering_delays_and_drops(
        turns in prop::collection::vec((1usize..=41, any::<u64>()), 2..10),
    ) {
        let (mut alice, mut bob) = established();
        let _ = alice.decrypt(&bob.encrypt(b"ack")).unwrap();
        // Messages waiting for each receiver: (turn delivered in, message, plaintext).
        let mut late: Vec<(usize, bool, OlmMessage, Vec<u8>)> = Vec::new();
        for (turn, (count, seed)) in turns.iter().enumerate() {
            let alice_sends = turn % 2 == 0;
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
            let (sender, receiver) = if alice_sends { (&mut alice, &mut bob) } else { (&mut bob, &mut alice) };
            let mut batch: Vec<(OlmMessage, Vec<u8>)> = (0..*count)
                .map(|i| {
                    let text = format!("turn {turn} message {i}").into_bytes();
                    (sender.encrypt(&text), text)
                })
                .collect();
            // Shuffle, then drop some and delay some (never the whole batch: the receiver
            // must see the new chain before it can answer on a newer one).
            for i in (1..batch.len()).rev() {
                batch.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            let mut delivered_now = Vec::new();
            for (i, (message, text)) in batch.into_iter().enumerate() {
                match next() % 8 {
                    0 if i > 0 => {} // dropped
                    1 if i > 0 => late.push((turn + 2 + (next() % 2) as usize * 2, alice_sends, message, text)),
                    _ => delivered_now.push((message, text)),
                }
            }
            for (message, text) in &delivered_now {
                prop_assert_eq!(&receiver.decrypt(message).unwrap(), text);
            }
            for (message, _) in &delivered_now {
                prop_assert!(matches!(receiver.decrypt(message), Err(DecryptionError::MissingMessageKey(_))));
            }
            // Late messages due now, for this turn's receiver.
            let due: Vec<_> = late.iter().filter(|(at, from_alice, _, _)| *at == turn && *from_alice == alice_sends).cloned().collect();
            late.retain(|(at, from_alice, _, _)| !(*at == turn && *from_alice == alice_sends));
            for (_, _, message, text) in due {
                prop_assert_eq!(receiver.decrypt(&message).unwrap(), text);
            }
        }
    }
}

#[test]
fn the_model_agrees_with_known_cases() {
    let mut model = ChainModel { next: 0, skipped: VecDeque::new() };
    assert!(model.deliver(45).is_ok());
    assert_eq!(model.skipped.len(), 40);
    assert_eq!(model.skipped.front(), Some(&5));
    assert_eq!(model.deliver(4), Err(DecryptionError::MissingMessageKey(4)));
    assert!(model.deliver(5).is_ok());
    assert_eq!(model.deliver(5), Err(DecryptionError::MissingMessageKey(5)));
}
