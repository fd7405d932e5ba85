#![no_main]
//! Room events into `OlmMachine::decrypt_room_event`, with Alice's real room key in Bob's
//! store: raw events (mode 0), fuzzed plaintexts encrypted with Alice's Megolm session (mode
//! 1), fuzzed Megolm message bytes in a genuine envelope (mode 2). The first byte's top bit
//! asks for verified senders only.
use ferrolm::types::base64_encode;
use ferrolm_fuzz::machine::{machine_fixture, raw_room_event};
use ferrolm_machine::{TrustRequirement, UnableToDecrypt, VerificationState};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The plaintext fields the machine must check or pass on.
#[derive(serde::Deserialize)]
struct Checked {
    #[serde(rename = "type")]
    event_type: String,
    content: Value,
    #[serde(default)]
    room_id: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let fx = machine_fixture();
    let Some((&first, rest)) = data.split_first() else { return };
    let requirement = if first & 0x80 != 0 { TrustRequirement::VerifiedDevice } else { TrustRequirement::Untrusted };
    let mode = (first & 0x7f) % 3;
    let event = match mode {
        0 => ferrolm_fuzz::text(rest).into_owned(),
        1 => fx.encrypt_room_plaintext("$fuzz", rest),
        _ => fx.room_event_with_ciphertext("$fuzz", &base64_encode(rest)),
    };
    let Some(raw) = raw_room_event(&event) else { return };
    let mut bob = fx.bob.open();
    let generation = bob.store().generation();
    let result = bob.decrypt_room_event(&raw, &fx.room_id, requirement).expect("a room event never fails the step");
    match &result {
        // Refused for its sender only: the authentic ciphertext's index is recorded as seen,
        // in one change set, so a copy under another event id stays a replay.
        Err(UnableToDecrypt::UntrustedSender) => {
            assert!(bob.store().generation() <= generation + 1, "one change set");
            let again = bob.decrypt_room_event(&raw, &fx.room_id, TrustRequirement::Untrusted).expect("no failed step");
            assert!(again.is_ok(), "the refused event decrypts when its sender is not required to be verified");
        }
        Err(_) => assert_eq!(bob.store().generation(), generation, "an undecryptable event changed the store"),
        Ok(decrypted) => {
            assert_eq!(bob.store().generation(), generation + 1, "a first decryption is saved once");
            let info = &decrypted.encryption;
            assert_eq!(info.sender_curve25519_key, fx.alice_curve, "only Alice's session is stored");
            assert_eq!(info.session_id, fx.megolm_session_id);
            assert!(!info.forwarded);
            if requirement == TrustRequirement::VerifiedDevice {
                assert_eq!(info.verification, VerificationState::Verified);
            }
            // A known device's state only for the device that owns the session's key.
            if matches!(
                info.verification,
                VerificationState::Verified | VerificationState::Unverified | VerificationState::Blacklisted
            ) {
                let device_id = info.sender_device.as_ref().expect("a known device has an id");
                let device = bob.device(&info.sender, device_id).expect("store").expect("the device is stored");
                assert_eq!(device.curve25519_key, info.sender_curve25519_key, "an impostor shown as a known device");
            } else {
                assert_eq!(info.sender_device, None);
            }
            if mode == 1 {
                // Read with serde's struct rules, as the machine does (unknown fields are
                // skipped unread, their UTF-8 unchecked).
                let plaintext: Checked =
                    serde_json::from_slice(rest).expect("an accepted plaintext has the checked fields");
                assert_eq!(plaintext.room_id.as_deref(), Some(fx.room_id.as_str()), "a plaintext for another room");
                assert_eq!(plaintext.event_type, decrypted.event_type);
                assert_eq!(plaintext.content, decrypted.content);
            }
            // The same event again decrypts; the same index in another event is a replay.
            let again = bob.decrypt_room_event(&raw, &fx.room_id, requirement).expect("step");
            assert!(again.is_ok(), "the same event twice: {again:?}");
            let mut other: Value = serde_json::from_str(&event).expect("json");
            let event_id = other["event_id"].as_str().unwrap_or_default().to_owned();
            other["event_id"] = Value::String(format!("{event_id}-other"));
            let other = raw_room_event(&other.to_string()).expect("json");
            match bob.decrypt_room_event(&other, &fx.room_id, requirement).expect("step") {
                Err(UnableToDecrypt::Replay { message_index, .. }) => assert_eq!(message_index, info.message_index),
                other => panic!("a replay was not refused: {other:?}"),
            }
        }
    }
});
