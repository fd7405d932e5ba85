//! The limits every implementation shares, checked at their edges across implementations:
//! a message may be at most 2,000 chain steps ahead, and a session keeps its 5 newest
//! receiver chains.

use ferrolm::olm as fo;

use crate::common::*;

/// Sends `count` messages and returns the last `keep` of them (with plaintexts).
fn burst(from: &mut dyn PeerSession, count: usize, keep: usize, tag: &str) -> Vec<(Wire, Vec<u8>)> {
    let mut kept = Vec::new();
    for i in 0..count {
        let plaintext = format!("{tag} {i}").into_bytes();
        let wire = from.encrypt(&plaintext);
        if i + keep >= count {
            kept.push((wire, plaintext));
        }
    }
    kept
}

fn assert_gap_refused(receiver: &mut dyn PeerSession, message: &Wire, context: &str) {
    let error = receiver.decrypt(message).err().unwrap_or_else(|| panic!("{context}: a gap of 2001 was accepted"));
    if receiver.implementation() == Impl::Ferrolm {
        let expected = fo::DecryptionError::TooBigMessageGap { gap: 2001, max: fo::MAX_MESSAGE_GAP };
        assert_eq!(error, format!("{expected:?}"), "{context}");
    }
}

#[test]
fn gaps_of_2000_are_bridged_and_2001_refused_everywhere() {
    for peer in PEERS {
        for (sender, receiver) in [(Impl::Ferrolm, peer), (peer, Impl::Ferrolm)] {
            let context = format!("{sender:?} → {receiver:?}");
            let mut pair = establish(sender, receiver, Version::V1, KeyKind::OneTime);
            let (from, to) = (pair.initiator.as_mut(), pair.receiver.as_mut());
            ping_pong(from, to, 1);

            // A new chain whose first delivered message has index 2000: accepted.
            let last = burst(from, 2001, 1, "first chain");
            assert_eq!(to.decrypt(&last[0].0).unwrap(), last[0].1, "{context}: a new chain at index 2000");
            // The same chain, next expected index 2001: index 4002 is refused, 4001 accepted.
            let last = burst(from, 2002, 2, "same chain");
            assert_gap_refused(to, &last[1].0, &format!("{context}, existing chain"));
            assert_eq!(to.decrypt(&last[0].0).unwrap(), last[0].1, "{context}: 2000 ahead in the chain");

            // A new chain whose first delivered message has index 2001: refused; 2000 accepted.
            send(to, from, b"turn");
            let last = burst(from, 2002, 2, "second chain");
            assert_gap_refused(to, &last[1].0, &format!("{context}, new chain"));
            assert_eq!(to.decrypt(&last[0].0).unwrap(), last[0].1, "{context}: a new chain at index 2000");
            ping_pong(from, to, 1);
        }
    }
}

#[test]
fn only_the_five_newest_receiver_chains_are_kept_everywhere() {
    for peer in PEERS {
        for (sender, receiver) in [(Impl::Ferrolm, peer), (peer, Impl::Ferrolm)] {
            let mut pair = establish(sender, receiver, Version::V1, KeyKind::OneTime);
            let (from, to) = (pair.initiator.as_mut(), pair.receiver.as_mut());
            ping_pong(from, to, 1);
            // Seven new chains, each with its first message held back.
            let mut held = Vec::new();
            for chain in 0..7 {
                held.extend(held_batch(from, 1, &format!("held from chain {chain}")));
                send(from, to, b"delivered");
                send(to, from, b"turn");
            }
            assert_eq!(decryptable(to, &held), vec![2, 3, 4, 5, 6], "{sender:?} → {receiver:?}");
        }
    }
}
