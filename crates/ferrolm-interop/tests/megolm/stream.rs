//! One session's 10,000 messages, as a room's timeline: receivers of two implementations join
//! at random indices (each from the signed session key the sender shares at that point) and
//! decrypt messages in a random order, some more than once. Every message before a receiver's
//! first known index is refused by it, whichever implementation it is (ferrolm: with
//! `DecryptionError::UnknownMessageIndex` carrying both indices).
//!
//! Each stream has a sender of one implementation and receivers of two: the implementation
//! under test on the receiving side (the peer when ferrolm sends, ferrolm when the peer sends)
//! decrypts every one of the 10,000 messages, each with one of its receivers that can, chosen
//! at random; receivers of the sender's own implementation decrypt a random 6% as a
//! reference. On top come occasional extra receivers of either implementation (which may have
//! joined too late), the edges of every late joiner's range, and repeats.
//!
//! Decrypting everything with every receiver would take minutes in a debug build: ferrolm (a
//! workspace member, built at opt-level 0) spends about 1 ms on a message far from its cached
//! ratchet, ten times vodozemac.

use std::collections::BTreeMap;

use ferrolm::megolm::DecryptionError;

use crate::common::*;

const MESSAGES: usize = 10_000;
/// Receivers per implementation besides the one that joins at index 0.
const LATE_JOINERS: usize = 3;
/// The share of messages the sender's own implementation decrypts, as a reference.
const REFERENCE_PERCENT: usize = 6;

#[derive(Clone, Copy)]
struct Task {
    receiver: usize,
    message: usize,
}

fn stream(test: &str, sender_impl: Impl, peer: Impl) {
    let seed = seed(test);
    let mut rng = TestRng::new(seed);
    let context = format!("{test} (seed {seed})");
    let receiving = [Impl::Ferrolm, peer];

    // Who joins when: every implementation at index 0, and LATE_JOINERS more at random points.
    let mut joins: Vec<(usize, Impl)> = Vec::new();
    for implementation in receiving {
        joins.push((0, implementation));
        joins.extend((0..LATE_JOINERS).map(|_| (1 + rng.below(MESSAGES - 1), implementation)));
    }
    joins.sort_by_key(|&(at, _)| at);

    let mut sender = Sender::new(sender_impl, Version::V1);
    let mut receivers: Vec<Receiver> = Vec::new();
    let mut messages: Vec<(String, Vec<u8>)> = Vec::with_capacity(MESSAGES);
    let mut next_join = joins.iter().peekable();
    for number in 0..MESSAGES {
        while let Some((_, implementation)) = next_join.next_if(|&&(at, _)| at == number) {
            let key = sender.session_key();
            let receiver = Receiver::new(*implementation, &key, Version::V1)
                .unwrap_or_else(|e| panic!("{context}: {implementation:?} takes {sender_impl:?}'s session key: {e}"));
            assert_eq!(receiver.first_known_index() as usize, number, "{context}");
            assert_eq!(receiver.session_id(), sender.session_id(), "{context}");
            receivers.push(receiver);
        }
        assert_eq!(sender.message_index() as usize, number, "{context}");
        let plaintext = plaintext(&mut rng, number, 48);
        messages.push((sender.encrypt(&plaintext), plaintext));
    }

    // The plan.
    let under_test = if sender_impl == Impl::Ferrolm { peer } else { Impl::Ferrolm };
    let first: Vec<usize> = receivers.iter().map(|r| r.first_known_index() as usize).collect();
    let able = |implementation: Impl, message: usize| -> Vec<usize> {
        (0..receivers.len())
            .filter(|&r| receivers[r].implementation() == implementation && first[r] <= message)
            .collect()
    };
    let mut tasks = Vec::new();
    for message in 0..MESSAGES {
        for implementation in receiving {
            if implementation == under_test || rng.percent(REFERENCE_PERCENT) {
                tasks.push(Task { receiver: *rng.choose(&able(implementation, message)), message });
            }
        }
        if rng.percent(3) {
            tasks.push(Task { receiver: rng.below(receivers.len()), message });
        }
    }
    for (receiver, &first) in first.iter().enumerate().filter(|(_, f)| **f > 0) {
        tasks.push(Task { receiver, message: first - 1 });
        tasks.push(Task { receiver, message: first });
        tasks.extend((0..5).map(|_| Task { receiver, message: rng.below(first) }));
    }
    for _ in 0..tasks.len() / 30 {
        let repeat = *rng.choose(&tasks);
        tasks.push(repeat);
    }
    rng.shuffle(&mut tasks);

    let mut decrypted_by: Vec<[bool; 2]> = vec![[false; 2]; MESSAGES];
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for task in &tasks {
        let receiver = &mut receivers[task.receiver];
        let implementation = receiver.implementation();
        let first_known = first[task.receiver];
        let (wire, plaintext) = &messages[task.message];
        match receiver.decrypt(wire) {
            Ok((decrypted, index)) => {
                assert!(
                    task.message >= first_known,
                    "{context}: {implementation:?} decrypted message {} before its first known index {first_known}",
                    task.message
                );
                assert!(decrypted == *plaintext, "{context}: message {} decrypted wrongly", task.message);
                assert_eq!(index as usize, task.message, "{context}: message index");
                decrypted_by[task.message][receiving.iter().position(|&i| i == implementation).unwrap()] = true;
            }
            Err(error) => {
                assert!(
                    task.message < first_known,
                    "{context}: {implementation:?} (first known index {first_known}) refused message {}: {}",
                    task.message,
                    error.detail
                );
                assert_eq!(error.failure, Failure::UnknownIndex, "{context}: {}", error.detail);
                if implementation == Impl::Ferrolm {
                    assert_eq!(
                        error.ferrolm,
                        Some(DecryptionError::UnknownMessageIndex {
                            first_known: first_known as u32,
                            requested: task.message as u32
                        }),
                        "{context}"
                    );
                }
                *refused.entry(if implementation == Impl::Ferrolm { "ferrolm" } else { "peer" }).or_default() += 1;
            }
        }
    }
    let column = |implementation: Impl| receiving.iter().position(|&i| i == implementation).unwrap();
    let missing: Vec<usize> = (0..MESSAGES).filter(|&m| !decrypted_by[m][column(under_test)]).collect();
    assert!(missing.is_empty(), "{context}: messages {under_test:?} did not decrypt: {missing:?}");
    let reference = decrypted_by.iter().filter(|d| d[column(sender_impl)]).count();
    assert!(
        reference > MESSAGES * REFERENCE_PERCENT / 200,
        "{context}: the reference decrypted only {reference} messages"
    );
    assert!(refused.len() == 2, "{context}: both implementations were asked for messages before their keys");
    eprintln!(
        "{context}: {} receivers (first known indices {first:?}), {} decryptions ({reference} messages by the \
         reference), refusals {refused:?}",
        receivers.len(),
        tasks.len()
    );
}

#[test]
fn ten_thousand_messages_from_ferrolm_to_vodozemac() {
    stream("ferrolm → vodozemac", Impl::Ferrolm, Impl::Vodozemac);
}

#[test]
fn ten_thousand_messages_from_vodozemac_to_ferrolm() {
    stream("vodozemac → ferrolm", Impl::Vodozemac, Impl::Vodozemac);
}

#[test]
fn ten_thousand_messages_from_ferrolm_to_libolm() {
    stream("ferrolm → libolm", Impl::Ferrolm, Impl::Libolm);
}

#[test]
fn ten_thousand_messages_from_libolm_to_ferrolm() {
    stream("libolm → ferrolm", Impl::Libolm, Impl::Libolm);
}
