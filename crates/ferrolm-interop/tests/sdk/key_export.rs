//! Key export files across ferrolm and matrix-sdk-crypto, with real room keys.
//!
//! matrix-sdk-crypto → ferrolm: the SDK's own inbound sessions (created from the `m.room_key`
//! of vodozemac and ferrolm senders) are exported by the SDK and written into a file by the
//! SDK; ferrolm decrypts the file to the JSON the SDK serialized, and the keys in it import
//! into ferrolm sessions that decrypt the senders' messages.
//!
//! ferrolm → matrix-sdk-crypto: a JSON array of keys in the specification's `ExportedRoomKey`
//! shape, with ferrolm's `export_at_first_known_index()` session keys, written into a file by
//! ferrolm; the SDK reads the file and imports each key into a session that decrypts
//! `m.room.encrypted` events from the sender.

use std::io::Cursor;

use ferrolm::key_export::{self, DEFAULT_ROUNDS, KeyExportError};
use ferrolm::megolm::{self as fm, DecryptionError, ExportedSessionKey, MegolmMessage};
use matrix_sdk_crypto::olm::{ExportedRoomKey, InboundGroupSession as SdkInboundGroupSession};
use matrix_sdk_crypto::types::events::room_key::MegolmV1AesSha2Content;
use matrix_sdk_crypto::{KeyExportError as SdkKeyExportError, decrypt_room_key_export, encrypt_room_key_export};
use serde_json::{Value, json};
use vodozemac::megolm as vm;
use vodozemac::olm::Account as VodozemacAccount;

use crate::common::{
    MEGOLM_V1, OTHER_ROOM_ID, ROOM_ID, block_on, encrypted_event, exported_room_key, room_event_plaintext, timed,
};

/// A small round count: these tests are about the format, not the work factor.
const ROUNDS: u32 = 1_000;
const PASSPHRASE: &str = "It's a secret to everybody";
const MESSAGES: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    Ferrolm,
    Vodozemac,
}

/// A room's sending session and what it sent: its `m.room_key` session key (taken before the
/// first message), and `MESSAGES` encrypted room events.
struct Sent {
    room_id: &'static str,
    sender_curve25519: String,
    sender_ed25519: String,
    session_id: String,
    session_key: String,
    plaintexts: Vec<String>,
    ciphertexts: Vec<String>,
}

fn send(implementation: Impl, room_id: &'static str) -> Sent {
    // The sending device's identity keys, as an `m.room_key`'s Olm envelope would carry them.
    let identity = VodozemacAccount::new().identity_keys();
    let plaintexts: Vec<String> =
        (0..MESSAGES).map(|i| room_event_plaintext(room_id, &format!("{implementation:?} says {i}"))).collect();
    let (session_id, session_key, ciphertexts) = match implementation {
        Impl::Ferrolm => {
            let mut session = fm::GroupSession::new(fm::SessionConfig::version_1());
            let key = session.session_key().to_base64().to_string();
            let sent = plaintexts.iter().map(|p| session.encrypt(p.as_bytes()).to_base64()).collect();
            (session.session_id().to_base64(), key, sent)
        }
        Impl::Vodozemac => {
            let mut session = vm::GroupSession::new(vm::SessionConfig::version_1());
            let key = session.session_key().to_base64();
            let sent = plaintexts.iter().map(|p| session.encrypt(p).to_base64()).collect();
            (session.session_id(), key, sent)
        }
    };
    Sent {
        room_id,
        sender_curve25519: identity.curve25519.to_base64(),
        sender_ed25519: identity.ed25519.to_base64(),
        session_id,
        session_key,
        plaintexts,
        ciphertexts,
    }
}

/// The SDK's inbound session for `sent`, created as the SDK creates it from an `m.room_key`.
fn sdk_session_from_room_key(sent: &Sent) -> SdkInboundGroupSession {
    let content: MegolmV1AesSha2Content = serde_json::from_value(json!({
        "room_id": sent.room_id,
        "session_id": sent.session_id,
        "session_key": sent.session_key,
    }))
    .unwrap();
    SdkInboundGroupSession::from_room_key_content(
        vodozemac::Curve25519PublicKey::from_base64(&sent.sender_curve25519).unwrap(),
        vodozemac::Ed25519PublicKey::from_base64(&sent.sender_ed25519).unwrap(),
        &content,
    )
    .unwrap()
}

/// ferrolm's inbound session from `sent`'s `m.room_key`, advanced to `first_index`, and the
/// key it exports there, in the specification's `ExportedRoomKey` shape.
fn ferrolm_exported_room_key(sent: &Sent, first_index: u32) -> Value {
    let mut session = fm::InboundGroupSession::new(
        &fm::SessionKey::from_base64(&sent.session_key).unwrap(),
        fm::SessionConfig::version_1(),
    );
    assert!(session.advance_to(first_index));
    let exported = session.export_at_first_known_index();
    assert_eq!(exported.index(), first_index);
    exported_room_key(
        sent.room_id,
        &sent.sender_curve25519,
        &sent.sender_ed25519,
        &session.session_id().to_base64(),
        &exported.to_base64(),
    )
}

/// Imports one key of a decrypted file into ferrolm and checks that the session decrypts
/// exactly the sender's messages from the key's index on.
fn check_ferrolm_import(key: &Value, sent: &Sent, first_index: u32) {
    let session_key = ExportedSessionKey::from_base64(key["session_key"].as_str().unwrap()).unwrap();
    assert_eq!(session_key.index(), first_index);
    let mut session = fm::InboundGroupSession::import(&session_key, fm::SessionConfig::version_1());
    assert_eq!(session.session_id().to_base64(), sent.session_id);
    assert_eq!(key["session_id"], sent.session_id.as_str());
    assert_eq!(session.first_known_index(), first_index);
    assert!(!session.is_verified(), "an exported key carries no signature");
    for (i, (ciphertext, plaintext)) in sent.ciphertexts.iter().zip(&sent.plaintexts).enumerate() {
        let message = MegolmMessage::from_base64(ciphertext).unwrap();
        let index = i as u32;
        if index < first_index {
            assert_eq!(
                session.decrypt(&message),
                Err(DecryptionError::UnknownMessageIndex { first_known: first_index, requested: index })
            );
        } else {
            let decrypted = session.decrypt(&message).unwrap();
            assert_eq!(decrypted.message_index, index);
            assert_eq!(decrypted.plaintext, plaintext.as_bytes());
        }
    }
}

/// Checks that the SDK session imported from `key` decrypts exactly the sender's events from
/// `first_index` on, as `m.room.encrypted` events.
fn check_sdk_import(key: &ExportedRoomKey, sent: &Sent, first_index: u32) {
    assert_eq!(key.room_id.as_str(), sent.room_id);
    assert_eq!(key.session_id, sent.session_id);
    assert_eq!(key.sender_key.to_base64(), sent.sender_curve25519);
    assert_eq!(key.algorithm.as_str(), MEGOLM_V1);
    assert!(key.forwarding_curve25519_key_chain.is_empty());
    let session = SdkInboundGroupSession::from_export(key).unwrap();
    assert_eq!(session.session_id(), sent.session_id);
    assert_eq!(session.first_known_index(), first_index);
    assert!(session.has_been_imported());
    for (i, (ciphertext, plaintext)) in sent.ciphertexts.iter().zip(&sent.plaintexts).enumerate() {
        let event =
            serde_json::from_value(encrypted_event(ciphertext, &sent.session_id, &sent.sender_curve25519, i)).unwrap();
        let result = block_on(session.decrypt(&event));
        if (i as u32) < first_index {
            let error = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("index"), "message {i} before the first known index: {error:?}");
        } else {
            let (decrypted, index) = result.unwrap();
            assert_eq!(index, i as u32);
            let expected: Value = serde_json::from_str(plaintext).unwrap();
            assert_eq!(decrypted["content"], expected["content"]);
            assert_eq!(decrypted["room_id"], sent.room_id);
            assert_eq!(decrypted["type"], "m.room.message");
        }
    }
}

/// The keys the SDK exports from its sessions of the given senders, at the given indices.
fn sdk_exports(senders: &[(&Sent, u32)]) -> Vec<ExportedRoomKey> {
    senders
        .iter()
        .map(|(sent, index)| {
            let session = sdk_session_from_room_key(sent);
            if *index == 0 { block_on(session.export()) } else { block_on(session.export_at_index(*index)) }
        })
        .collect()
}

#[test]
fn sdk_files_of_sdk_exports_decrypt_in_ferrolm_to_the_same_keys() {
    let sent = [send(Impl::Vodozemac, ROOM_ID), send(Impl::Ferrolm, ROOM_ID), send(Impl::Vodozemac, OTHER_ROOM_ID)];
    let first_indices = [0, 0, 3];
    let senders: Vec<(&Sent, u32)> = sent.iter().zip(first_indices).collect();
    let keys = sdk_exports(&senders);
    let file = encrypt_room_key_export(&keys, PASSPHRASE, ROUNDS).unwrap();

    assert!(file.starts_with("-----BEGIN MEGOLM SESSION DATA-----\n"));
    assert_eq!(key_export::rounds(&file), Ok(ROUNDS));
    let plaintext = key_export::decrypt(&file, PASSPHRASE).unwrap();
    let decrypted: Value = serde_json::from_slice(&plaintext).unwrap();
    // The very JSON the SDK serialized.
    assert_eq!(decrypted, serde_json::to_value(&keys).unwrap());

    let decrypted = decrypted.as_array().unwrap();
    assert_eq!(decrypted.len(), sent.len());
    for ((key, sent), first_index) in decrypted.iter().zip(&sent).zip(first_indices) {
        // The specification's `ExportedRoomKey` fields, as the SDK wrote them.
        assert_eq!(key["algorithm"], MEGOLM_V1);
        assert_eq!(key["room_id"], sent.room_id);
        assert_eq!(key["sender_key"], sent.sender_curve25519.as_str());
        assert_eq!(key["sender_claimed_keys"]["ed25519"], sent.sender_ed25519.as_str());
        assert_eq!(key["forwarding_curve25519_key_chain"], json!([]));
        check_ferrolm_import(key, sent, first_index);
    }

    assert_eq!(key_export::decrypt(&file, "It's a secret to nobody"), Err(KeyExportError::Mac));
    assert_eq!(key_export::decrypt(&file, ""), Err(KeyExportError::Mac));
}

#[test]
fn ferrolm_files_import_into_sdk_sessions_that_decrypt_events() {
    let sent = [send(Impl::Ferrolm, ROOM_ID), send(Impl::Ferrolm, OTHER_ROOM_ID), send(Impl::Vodozemac, ROOM_ID)];
    let first_indices = [0, 2, 5];
    let keys: Vec<Value> = sent.iter().zip(first_indices).map(|(s, i)| ferrolm_exported_room_key(s, i)).collect();
    let file = key_export::encrypt(Value::Array(keys).to_string().as_bytes(), PASSPHRASE, ROUNDS).unwrap();

    let imported = decrypt_room_key_export(Cursor::new(file.as_bytes()), PASSPHRASE).unwrap();
    assert_eq!(imported.len(), sent.len());
    for ((key, sent), first_index) in imported.iter().zip(&sent).zip(first_indices) {
        check_sdk_import(key, sent, first_index);
    }

    assert!(matches!(
        decrypt_room_key_export(Cursor::new(file.as_bytes()), "It's a secret to nobody"),
        Err(SdkKeyExportError::InvalidMac)
    ));
}

#[test]
fn files_relay_between_implementations_with_any_passphrase() {
    // Unicode passphrases are PBKDF2'd as their UTF-8 bytes by both (no normalization), the
    // empty passphrase is allowed by both, and an empty key list is a valid file.
    let sent = [send(Impl::Vodozemac, ROOM_ID), send(Impl::Ferrolm, OTHER_ROOM_ID)];
    for passphrase in ["pässwörd 🔑 with spaces", "", "x", &"long ".repeat(200)] {
        // SDK → ferrolm → (re-encrypted by ferrolm under another passphrase) → SDK.
        let keys = sdk_exports(&[(&sent[0], 1), (&sent[1], 0)]);
        let sdk_file = encrypt_room_key_export(&keys, passphrase, ROUNDS).unwrap();
        let json = key_export::decrypt(&sdk_file, passphrase).unwrap();
        let relayed = key_export::encrypt(&json, "relay", 2_000).unwrap();
        let back = decrypt_room_key_export(Cursor::new(relayed.as_bytes()), "relay").unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&keys).unwrap());
        check_sdk_import(&back[0], &sent[0], 1);
        check_sdk_import(&back[1], &sent[1], 0);

        // Empty lists, both ways.
        let empty = encrypt_room_key_export(&[], passphrase, ROUNDS).unwrap();
        assert_eq!(key_export::decrypt(&empty, passphrase).unwrap().as_slice(), b"[]");
        let empty = key_export::encrypt(b"[]", passphrase, ROUNDS).unwrap();
        assert!(decrypt_room_key_export(Cursor::new(empty.as_bytes()), passphrase).unwrap().is_empty());
    }
}

#[test]
fn sdk_files_survive_how_people_move_them() {
    // The SDK writes its body as one long line; files get re-wrapped, get CRLF line ends on
    // Windows, and get pasted with surrounding whitespace.
    let sent = send(Impl::Vodozemac, ROOM_ID);
    let keys = sdk_exports(&[(&sent, 0)]);
    let file = encrypt_room_key_export(&keys, PASSPHRASE, ROUNDS).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 3, "the SDK's body is a single line");
    let body = lines[1];
    let wrapped: Vec<String> = body.as_bytes().chunks(64).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
    let rewrapped = format!("\n  {}\r\n{}\r\n{}\r\n\n", lines[0], wrapped.join("\r\n"), lines[2]);
    for variant in [file.clone(), format!("{file}\n"), rewrapped] {
        let json: Value = serde_json::from_slice(&key_export::decrypt(&variant, PASSPHRASE).unwrap()).unwrap();
        check_ferrolm_import(&json[0], &sent, 0);
    }

    // A flipped bit anywhere in the payload is caught by the MAC before anything is
    // decrypted (or, in the version byte or round count, by their own checks).
    let payload = ferrolm::types::base64_decode(body).unwrap();
    for position in [0, 1, 17, 33, 36, 40, payload.len() / 2, payload.len() - 1] {
        let mut altered = payload.clone();
        altered[position] ^= 0x01;
        let armoured = format!("{}\n{}\n{}", lines[0], ferrolm::types::base64_encode(&altered), lines[2]);
        let expected = match position {
            0 => KeyExportError::UnknownVersion(0),
            // The round count's top byte: far above the most ferrolm will spend.
            33 => KeyExportError::InvalidRounds(ROUNDS + (1 << 24)),
            _ => KeyExportError::Mac,
        };
        assert_eq!(key_export::decrypt(&armoured, PASSPHRASE), Err(expected), "bit flipped at byte {position}");
    }
}

// The default work factor, once each way (two tests, so they run in parallel). ferrolm's
// PBKDF2 runs at the test profile's opt-level 0 (its generic HMAC code is instantiated in
// ferrolm), about ten times slower than the SDK's here: ~5 s each in a debug build.

#[test]
fn sdk_files_with_the_default_round_count_decrypt_in_ferrolm() {
    let sent = send(Impl::Ferrolm, ROOM_ID);
    let keys = sdk_exports(&[(&sent, 0)]);
    let file =
        timed("SDK encrypts, DEFAULT_ROUNDS", || encrypt_room_key_export(&keys, PASSPHRASE, DEFAULT_ROUNDS)).unwrap();
    assert_eq!(key_export::rounds(&file), Ok(DEFAULT_ROUNDS));
    let json = timed("ferrolm decrypts, DEFAULT_ROUNDS", || key_export::decrypt(&file, PASSPHRASE)).unwrap();
    let json: Value = serde_json::from_slice(&json).unwrap();
    check_ferrolm_import(&json[0], &sent, 0);
}

#[test]
fn ferrolm_files_with_the_default_round_count_decrypt_in_the_sdk() {
    let sent = send(Impl::Vodozemac, ROOM_ID);
    let ours = Value::Array(vec![ferrolm_exported_room_key(&sent, 0)]).to_string();
    let file =
        timed("ferrolm encrypts, DEFAULT_ROUNDS", || key_export::encrypt(ours.as_bytes(), PASSPHRASE, DEFAULT_ROUNDS))
            .unwrap();
    let imported =
        timed("SDK decrypts, DEFAULT_ROUNDS", || decrypt_room_key_export(Cursor::new(file.as_bytes()), PASSPHRASE))
            .unwrap();
    check_sdk_import(&imported[0], &sent, 0);
}
