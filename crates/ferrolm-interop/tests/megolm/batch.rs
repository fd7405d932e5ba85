//! ferrolm's `InboundGroupSession::decrypt_batch` on messages from vodozemac and libolm: a
//! shuffled batch of a peer session's messages, some repeated, with forgeries (messages of
//! another session of the same implementation), altered messages (one bit flipped in the last
//! ciphertext block, the MAC or the signature) and a version 2 message mixed in. For sessions
//! that know every message, that joined half-way, and that were imported from the peer's
//! export, the batch's results equal one-by-one decryption, message for message, and match
//! what each message is; the peer's own inbound session agrees on which decrypt. Random
//! sub-batches (empty, single, larger) give the same results too.

use ferrolm::megolm::{DecryptedMessage, DecryptionError, GroupSession, MegolmMessage};

use crate::common::*;

const MESSAGES: usize = 300;

/// What a batch entry is, and so what decrypting it must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The session's message with this number.
    Genuine(usize),
    Forged,
    Altered,
    Version2,
}

fn batch_against(test: &str, peer: Impl) {
    let seed = seed(test);
    let mut rng = TestRng::new(seed);
    let context = format!("{test} (seed {seed})");

    let mut sender = Sender::new(peer, Version::V1);
    let first_key = sender.session_key();
    let joins_at = 1 + rng.below(MESSAGES - 2);
    let mut late_key = String::new();
    let mut messages = Vec::new();
    for number in 0..MESSAGES {
        if number == joins_at {
            late_key = sender.session_key();
        }
        let plaintext = plaintext(&mut rng, number, 40);
        messages.push((sender.encrypt(&plaintext), plaintext));
    }

    let mut batch: Vec<(String, Origin)> =
        messages.iter().enumerate().map(|(n, (wire, _))| (wire.clone(), Origin::Genuine(n))).collect();
    for _ in 0..MESSAGES / 10 {
        let n = rng.below(MESSAGES);
        batch.push((messages[n].0.clone(), Origin::Genuine(n)));
    }
    let mut impostor = Sender::new(peer, Version::V1);
    for _ in 0..5 {
        batch.push((impostor.encrypt(b"forged"), Origin::Forged));
    }
    for _ in 0..6 {
        let wire = &messages[rng.below(MESSAGES)].0;
        let len = bytes(wire).len();
        // The last 16 + 8 + 64 bytes: the last ciphertext block, the MAC and the signature.
        let bit = (len - 88) * 8 + rng.below(88 * 8);
        batch.push((flip_bit(wire, bit), Origin::Altered));
    }
    batch.push((GroupSession::new(ferrolm_config(Version::V2)).encrypt(b"v2").to_base64(), Origin::Version2));
    rng.shuffle(&mut batch);
    let parsed: Vec<MegolmMessage> =
        batch.iter().map(|(wire, _)| MegolmMessage::from_base64(wire).expect("ferrolm decodes every entry")).collect();

    let mut peer_receiver = Receiver::new(peer, &first_key, Version::V1).unwrap();
    let export_at = rng.below(MESSAGES);
    let exported = peer_receiver.export_at(export_at as u32).unwrap();
    let sessions = [
        ("from the first session key", Receiver::new(Impl::Ferrolm, &first_key, Version::V1)),
        ("joined half-way", Receiver::new(Impl::Ferrolm, &late_key, Version::V1)),
        ("imported from the peer's export", Receiver::import(Impl::Ferrolm, &exported, Version::V1)),
    ];

    for (name, session) in sessions {
        let Receiver::Ferrolm(session) = session.unwrap() else { unreachable!() };
        let context = format!("{context}, session {name} (first known index {})", session.first_known_index());
        let first = session.first_known_index() as usize;
        let batched = session.clone().decrypt_batch(&parsed);
        let mut one = session.clone();
        let one_by_one: Vec<_> = parsed.iter().map(|m| one.decrypt(m)).collect();
        assert_eq!(batched.len(), batch.len(), "{context}");

        // The peer's own session with the same first known index.
        let mut peer_session = Receiver::import(peer, &peer_receiver.export_at(first as u32).unwrap(), Version::V1)
            .expect("the peer imports its own export");
        let mut decrypted = 0;
        for (i, (result, (wire, origin))) in batched.iter().zip(&batch).enumerate() {
            assert_eq!(result, &one_by_one[i], "{context}: entry {i} ({origin:?}): batch and one-by-one differ");
            let expected = match *origin {
                Origin::Genuine(n) if n >= first => {
                    Ok(DecryptedMessage { plaintext: messages[n].1.clone(), message_index: n as u32 })
                }
                Origin::Genuine(n) => {
                    Err(DecryptionError::UnknownMessageIndex { first_known: first as u32, requested: n as u32 })
                }
                Origin::Forged | Origin::Altered => Err(DecryptionError::InvalidSignature),
                Origin::Version2 => Err(DecryptionError::VersionMismatch { expected: 3, got: 4 }),
            };
            assert_eq!(result, &expected, "{context}: entry {i} ({origin:?})");
            decrypted += usize::from(result.is_ok());

            // The peer agrees on what decrypts (the version 2 message, another session's, fails
            // there on its signature).
            let theirs = peer_session.decrypt(wire);
            assert_eq!(theirs.is_ok(), result.is_ok(), "{context}: entry {i} ({origin:?}): {peer:?} says {theirs:?}");
            if let (Ok(theirs), Ok(ours)) = (&theirs, result) {
                assert_eq!((&theirs.0, theirs.1), (&ours.plaintext, ours.message_index), "{context}");
            }
        }
        assert_eq!(decrypted, batch.iter().filter(|(_, o)| matches!(o, Origin::Genuine(n) if *n >= first)).count());

        // Random sub-batches, one after another on one session, give the same results.
        let mut chunked = session.clone();
        let mut at = 0;
        while at < parsed.len() {
            let size = [0, 1, 2, 7, 40][rng.below(5)].min(parsed.len() - at);
            let results = chunked.decrypt_batch(&parsed[at..at + size]);
            assert_eq!(results, one_by_one[at..at + size], "{context}: sub-batch at {at}, size {size}");
            at += size;
        }
        // Batches leave what the session can decrypt unchanged.
        let earliest = MegolmMessage::from_base64(&messages[first].0).unwrap();
        assert_eq!(chunked.decrypt(&earliest).unwrap().plaintext, messages[first].1, "{context}");
        assert_eq!(chunked.first_known_index(), session.first_known_index());
    }
    eprintln!("{context}: {} entries, session joined at {joins_at}, export at {export_at}", batch.len());
}

#[test]
fn batch_decryption_of_vodozemac_messages_equals_one_by_one() {
    batch_against("decrypt_batch, vodozemac sender", Impl::Vodozemac);
}

#[test]
fn batch_decryption_of_libolm_messages_equals_one_by_one() {
    batch_against("decrypt_batch, libolm sender", Impl::Libolm);
}
