//! The ratchet's turnovers. Part 3 of the ratchet changes every step, part 2 every 2^8 steps,
//! part 1 every 2^16, part 0 every 2^24; when a part changes, every part below it is re-derived
//! from it. Jumping forward (`advance_to`) turns each part at most 255 times.
//!
//! - Exports at 2^8 - 1, 2^8, 2^8 + 1, 2^16 ± 1, 2^24 ± 1 and 2^32 - 1 from inbound sessions
//!   created at index 0 are byte-identical across the three implementations, and so are exports
//!   at later edges from sessions imported at earlier ones. Each single step across a turnover
//!   also matches a reference step written here from the specification's formulas.
//! - Messages sent across the 2^8 turnover (encrypted one by one from index 0) and across the
//!   2^16 turnover (by a sender moved just before it, see [`Sender::moved_to`]) by each
//!   implementation decrypt in the others, from index 0 (advancing across the turnover) and from
//!   a key shared after the move (stepping across it).
//! - Messages at 2^24 - 1, 2^24 and 2^24 + 1 from a sender moved there (vodozemac's through its
//!   serde pickle, as a vodozemac user could; ferrolm's and libolm's through their libolm pickles)
//!   decrypt in inbound sessions of every implementation created at index 0.
//! - The last index, 2^32 - 1, and libolm's window: libolm picks the ratchet for a decryption or
//!   an export by `(index - counter) mod 2^32 < 2^31`, against its cached later ratchet (which
//!   decryptions and exports move along), then its first known one. It refuses an index 2^31 or
//!   more past both, where ferrolm and vodozemac decrypt and export; libolm gets there in steps.

use ferrolm::megolm as fm;
use hmac::Mac;

use crate::common::*;

const EDGES: [u32; 10] = [255, 256, 257, 65_535, 65_536, 65_537, (1 << 24) - 1, 1 << 24, (1 << 24) + 1, u32::MAX];

/// One ratchet step from `counter` to `counter + 1`, from the specification: the highest part
/// `h` whose period divides the new counter changes, `R_j = H_j(R_h)` for `j = 3, 2, …, h` with
/// the old `R_h`, where `H_x(A) = HMAC-SHA-256(key = A, data = [x])`.
fn reference_step(ratchet: &[u8; 128], counter: u32) -> [u8; 128] {
    let next = counter.wrapping_add(1);
    let h = (0..4).find(|&h| next & (0x00FF_FFFF >> (8 * h)) == 0).expect("part 3 always changes");
    let mut out = *ratchet;
    let source = ratchet[32 * h..32 * h + 32].to_vec();
    for j in h..4 {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&source).unwrap();
        mac.update(&[j as u8]);
        out[32 * j..32 * j + 32].copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

#[test]
fn exports_around_the_turnovers_are_identical() {
    for sender_impl in ALL {
        let sender = Sender::new(sender_impl, Version::V1);
        let key = sender.session_key();
        let mut receivers: Vec<Receiver> = ALL.iter().map(|&i| Receiver::new(i, &key, Version::V1).unwrap()).collect();
        let mut exports = Vec::new();
        for edge in EDGES {
            let context = format!("{sender_impl:?} sender, export at {edge:#x}");
            let all: Vec<String> = receivers
                .iter_mut()
                .map(|r| {
                    let implementation = r.implementation();
                    export_stepping(r, edge).unwrap_or_else(|| panic!("{context}: {implementation:?} does not export"))
                })
                .collect();
            assert!(all.iter().all(|e| *e == all[0]), "{context}: the implementations differ: {all:#?}");
            let (index, ratchet) = export_parts(&all[0]);
            assert_eq!(index, edge, "{context}");
            // The step onto a turnover matches the reference.
            if let Some(before) = edge.checked_sub(1).and_then(|i| receivers[0].export_at(i)) {
                let (_, previous) = export_parts(&before);
                assert_eq!(reference_step(&previous, edge - 1), ratchet, "{context}: the step from the index before");
                // Part 3 always changes; part 2 too at multiples of 2^8, part 1 of 2^16, part 0 of 2^24.
                let changed = 1 + (edge.trailing_zeros().min(24) / 8) as usize;
                assert_eq!(
                    (0..4).filter(|&p| previous[32 * p..32 * p + 32] != ratchet[32 * p..32 * p + 32]).count(),
                    changed,
                    "{context}: parts changed"
                );
            }
            exports.push(all[0].clone());
        }
        // From an import at each edge, every later edge: advancing from a non-zero index.
        for (i, export) in exports.iter().enumerate() {
            for importer in ALL {
                let context = format!("{sender_impl:?} sender, {importer:?} imports at {:#x}", EDGES[i]);
                let mut imported = Receiver::import(importer, export, Version::V1).unwrap();
                assert_eq!(imported.export_at(EDGES[i] - 1), None, "{context}");
                for (later, edge) in exports.iter().zip(EDGES).skip(i) {
                    assert_eq!(
                        export_stepping(&mut imported, edge).as_ref(),
                        Some(later),
                        "{context}, export at {edge:#x}"
                    );
                }
            }
        }
    }
}

/// The export at `index`. libolm reaches an index 2^31 or more past its first known one only
/// through its cached ratchet, so it is stepped there first, 2^30 at a time.
fn export_stepping(receiver: &mut Receiver, index: u32) -> Option<String> {
    if receiver.implementation() == Impl::Libolm {
        let mut at = receiver.first_known_index();
        while index - at > 1 << 30 {
            at += 1 << 30;
            receiver.export_at(at).expect("libolm exports less than 2^31 past its cached ratchet");
        }
    }
    receiver.export_at(index)
}

/// Decrypts `message` (number `index`) with `receiver` and checks the result.
fn expect_decrypts(receiver: &mut Receiver, message: &(String, Vec<u8>), index: u32, context: &str) {
    let implementation = receiver.implementation();
    let decrypted = receiver.decrypt(&message.0).unwrap_or_else(|e| {
        panic!(
            "{context}: {implementation:?} (first known index {}) refused message {index:#x}: {}",
            receiver.first_known_index(),
            e.detail
        )
    });
    assert_eq!(decrypted, (message.1.clone(), index), "{context}: {implementation:?}, message {index:#x}");
}

#[test]
fn messages_across_the_2_8_and_2_16_turnovers() {
    let seed = seed("messages across the 2^8 and 2^16 turnovers");
    let mut rng = TestRng::new(seed);
    for sender_impl in ALL {
        let context = format!("{sender_impl:?} sender (seed {seed})");
        let mut sender = Sender::new(sender_impl, Version::V1);
        let first_key = sender.session_key();
        let mut from_zero: Vec<Receiver> =
            ALL.iter().map(|&i| Receiver::new(i, &first_key, Version::V1).unwrap()).collect();

        // Across 2^8, one message at a time from index 0.
        let mut messages: Vec<(u32, (String, Vec<u8>))> = Vec::new();
        for index in 0..300u32 {
            let plaintext = plaintext(&mut rng, index as usize, 30);
            messages.push((index, (sender.encrypt(&plaintext), plaintext)));
        }
        // Across 2^16: the sender moves to 2^16 - 150, to the ratchet another implementation's
        // session exports there, and sends 300 more.
        let exporter = ALL.iter().position(|&i| i != sender_impl).unwrap();
        let export = from_zero[exporter].export_at(65_536 - 150).unwrap();
        sender = sender.moved_to(&export);
        let moved_key = sender.session_key();
        let mut from_moved: Vec<Receiver> =
            ALL.iter().map(|&i| Receiver::new(i, &moved_key, Version::V1).unwrap()).collect();
        for index in 65_536 - 150..65_536 + 150 {
            let plaintext = plaintext(&mut rng, index as usize, 30);
            messages.push((index, (sender.encrypt(&plaintext), plaintext)));
        }

        for receiver in &mut from_zero {
            // Everything near a turnover, and a random sample, in a random order.
            let mut chosen: Vec<&(u32, (String, Vec<u8>))> = messages
                .iter()
                .filter(|(i, _)| (250..262).contains(i) || (65_530..65_542).contains(i) || rng.percent(10))
                .collect();
            rng.shuffle(&mut chosen);
            for (index, message) in chosen {
                expect_decrypts(receiver, message, *index, &format!("{context}, receiver from index 0"));
            }
        }
        for receiver in &mut from_moved {
            // In order (stepping across 2^16), then one before the move.
            for (index, message) in messages.iter().skip(300) {
                expect_decrypts(receiver, message, *index, &format!("{context}, receiver from the moved key"));
            }
            let refused = receiver.decrypt(&messages[299].1.0).unwrap_err();
            assert_eq!(refused.failure, Failure::UnknownIndex, "{context}: {}", refused.detail);
        }

        // ferrolm's batch, over both turnovers at once.
        let batch: Vec<fm::MegolmMessage> =
            messages.iter().map(|(_, (wire, _))| fm::MegolmMessage::from_base64(wire).unwrap()).collect();
        let results = from_zero[0].ferrolm().decrypt_batch(&batch);
        for ((index, (_, plaintext)), result) in messages.iter().zip(results) {
            let result = result.unwrap_or_else(|e| panic!("{context}: ferrolm's batch refused {index:#x}: {e}"));
            assert_eq!((result.plaintext, result.message_index), (plaintext.clone(), *index), "{context}");
        }
    }
}

#[test]
fn messages_across_the_2_24_turnover_from_a_moved_sender() {
    const START: u32 = (1 << 24) - 1;
    for sender_impl in ALL {
        let context = format!("{sender_impl:?} sender moved to 2^24 - 1");
        let sender = Sender::new(sender_impl, Version::V1);
        let first_key = sender.session_key();
        // The ratchet at 2^24 - 1 from libolm's inbound session (bytes 5..133 of the export).
        let mut libolm_session = Receiver::new(Impl::Libolm, &first_key, Version::V1).unwrap();
        let export = libolm_session.export_at(START).unwrap();
        let mut ferrolm_session = Receiver::new(Impl::Ferrolm, &first_key, Version::V1).unwrap();
        assert_eq!(ferrolm_session.export_at(START).unwrap(), export, "{context}");
        let mut sender = sender.moved_to(&export);
        let moved_key = sender.session_key();

        let messages: Vec<(String, Vec<u8>)> = (0..3)
            .map(|n| {
                let plaintext = format!("message {:#x}", START + n).into_bytes();
                (sender.encrypt(&plaintext), plaintext)
            })
            .collect();
        assert_eq!(sender.message_index(), START + 3, "{context}");

        for receiver_impl in ALL {
            // A fresh session from index 0 for each message: each jumps across the turnover.
            for (n, message) in messages.iter().enumerate() {
                let mut fresh = Receiver::new(receiver_impl, &first_key, Version::V1).unwrap();
                expect_decrypts(&mut fresh, message, START + n as u32, &format!("{context}, fresh session from 0"));
            }
            // One session, in order, then in reverse (from its cached ratchet, then the first).
            let mut one = Receiver::new(receiver_impl, &first_key, Version::V1).unwrap();
            for (n, message) in messages.iter().enumerate().chain(messages.iter().enumerate().rev()) {
                expect_decrypts(&mut one, message, START + n as u32, &format!("{context}, one session from 0"));
            }
            // From the key the moved sender shares, stepping across.
            let mut late = Receiver::new(receiver_impl, &moved_key, Version::V1).unwrap();
            assert_eq!(late.first_known_index(), START, "{context}");
            for (n, message) in messages.iter().enumerate() {
                expect_decrypts(
                    &mut late,
                    message,
                    START + n as u32,
                    &format!("{context}, session from the moved key"),
                );
            }
        }
        let batch: Vec<fm::MegolmMessage> =
            messages.iter().rev().map(|(wire, _)| fm::MegolmMessage::from_base64(wire).unwrap()).collect();
        let mut fresh = Receiver::new(Impl::Ferrolm, &first_key, Version::V1).unwrap();
        for (n, result) in fresh.ferrolm().decrypt_batch(&batch).into_iter().rev().enumerate() {
            assert_eq!(result.unwrap().message_index, START + n as u32, "{context}: ferrolm's batch");
        }
    }
}

#[test]
fn the_last_index_and_libolms_window_of_2_31() {
    const HALF: u32 = 1 << 31;
    for sender_impl in ALL {
        let sender = Sender::new(sender_impl, Version::V1);
        let first_key = sender.session_key();
        let mut reference = Receiver::new(Impl::Ferrolm, &first_key, Version::V1).unwrap();

        // Straight from index 0, libolm exports up to 2^31 - 1 and no further.
        let mut fresh = Receiver::new(Impl::Libolm, &first_key, Version::V1).unwrap();
        assert_eq!(fresh.export_at(HALF), None);
        assert_eq!(fresh.export_at(u32::MAX), None);
        assert_eq!(fresh.export_at(HALF - 1), reference.export_at(HALF - 1));
        let mut vodozemac = Receiver::new(Impl::Vodozemac, &first_key, Version::V1).unwrap();
        assert_eq!(vodozemac.export_at(u32::MAX), reference.export_at(u32::MAX));

        // Messages at 2^31 - 1 and 2^31.
        let mut sender = sender.moved_to(&reference.export_at(HALF - 1).unwrap());
        let below = (sender.encrypt(b"2^31 - 1"), b"2^31 - 1".to_vec());
        let at = (sender.encrypt(b"2^31"), b"2^31".to_vec());
        // A message at 2^32 - 1, the last index. vodozemac's sender increments its counter
        // with `+=` after encrypting, which overflows (a panic in debug builds) at the last index.
        let mut sender = sender.moved_to(&reference.export_at(u32::MAX).unwrap());
        let encrypted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sender.encrypt(b"the last index")));
        let last = match encrypted {
            Ok(wire) => Some((wire, b"the last index".to_vec())),
            Err(_) => {
                assert_eq!(sender_impl, Impl::Vodozemac, "only vodozemac's sender panics at the last index");
                eprintln!("vodozemac's sender panicked encrypting at index 2^32 - 1 (counter overflow)");
                None
            }
        };

        for receiver_impl in ALL {
            let context = format!("{sender_impl:?} sender, {receiver_impl:?} receiver from index 0");
            let mut receiver = Receiver::new(receiver_impl, &first_key, Version::V1).unwrap();
            expect_decrypts(&mut receiver, &below, HALF - 1, &context);
            if receiver_impl == Impl::Libolm {
                // From a fresh session (its cached ratchet at 0), 2^31 or more past is "before".
                for message in [Some(&at), last.as_ref()].into_iter().flatten() {
                    let mut fresh = Receiver::new(receiver_impl, &first_key, Version::V1).unwrap();
                    let refused = fresh.decrypt(&message.0).unwrap_err();
                    assert_eq!(refused.failure, Failure::UnknownIndex, "{context}: {}", refused.detail);
                }
                // Through its cached ratchet (just moved to 2^31 - 1), or from an import less
                // than 2^31 below, libolm decrypts them.
                expect_decrypts(&mut receiver, &at, HALF, &context);
                let mut imported =
                    Receiver::import(receiver_impl, &reference.export_at(1).unwrap(), Version::V1).unwrap();
                expect_decrypts(&mut imported, &at, HALF, &context);
                if let Some(last) = &last {
                    expect_decrypts(&mut receiver, last, u32::MAX, &context);
                    let export = reference.export_at(HALF + 1).unwrap();
                    let mut imported = Receiver::import(receiver_impl, &export, Version::V1).unwrap();
                    expect_decrypts(&mut imported, last, u32::MAX, &context);
                }
            } else {
                expect_decrypts(&mut receiver, &at, HALF, &context);
                if let Some(last) = &last {
                    expect_decrypts(&mut receiver, last, u32::MAX, &context);
                    let mut fresh = Receiver::new(receiver_impl, &first_key, Version::V1).unwrap();
                    expect_decrypts(&mut fresh, last, u32::MAX, &context);
                }
            }
        }
    }
}
