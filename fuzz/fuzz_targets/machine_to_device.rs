#![no_main]
//! To-device events into `OlmMachine::receive_sync_changes`: raw events (mode 0), fuzzed
//! plaintexts Olm-encrypted with Alice's real session to Bob (mode 1) or in a pre-key message
//! of a new session (mode 2), and fuzzed Olm message bodies in a genuine envelope (mode 3).
use ferrolm_fuzz::machine::{machine_fixture, raw_to_device};
use ferrolm_machine::{SyncChanges, ToDeviceOutcome};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(serde::Deserialize)]
struct Ed25519 {
    ed25519: String,
}

/// The plaintext fields the machine must check.
#[derive(serde::Deserialize)]
struct Checked {
    #[serde(rename = "type")]
    event_type: String,
    content: Value,
    sender: String,
    recipient: String,
    recipient_keys: Ed25519,
    keys: Ed25519,
}

fuzz_target!(|data: &[u8]| {
    let fx = machine_fixture();
    let Some((&mode, rest)) = data.split_first() else { return };
    let mode = mode % 4;
    let event = match mode {
        0 => ferrolm_fuzz::text(rest).into_owned(),
        1 => fx.encrypt_normal(rest),
        2 => fx.encrypt_pre_key(rest),
        _ => {
            let Some((&kind, body)) = rest.split_first() else { return };
            fx.olm_event_with_body(kind, body)
        }
    };
    let Some(raw) = raw_to_device(&event) else { return };
    let mut bob = fx.bob.open();
    let generation = bob.store().generation();
    let token = bob.sync_token().expect("store");
    let changes = SyncChanges { to_device_events: vec![raw], next_batch: "fuzz-1".into(), ..Default::default() };
    // Bad events are typed outcomes; a machine error would mean the step failed as a whole.
    let outcome = bob.receive_sync_changes(changes).expect("a to-device event never fails the step");
    assert_eq!(outcome.to_device.len(), 1, "one outcome per event");
    assert_eq!(bob.store().generation(), generation + 1, "one change set per step");
    assert_eq!(bob.sync_token().expect("store").as_deref(), Some("fuzz-1"));
    assert_ne!(token.as_deref(), Some("fuzz-1"));
    fx.check_sync_outcome(&bob, &outcome);

    if let (1 | 2, ToDeviceOutcome::Decrypted(event)) = (mode, &outcome.to_device[0]) {
        // Accepted only if every field of the fuzzed plaintext is right. Read with serde's
        // rules for a struct, as the machine does: unknown fields are skipped unread (serde_json
        // does not check the UTF-8 of a skipped string, so the whole plaintext need not be a
        // valid JSON document).
        let plaintext: Checked = serde_json::from_slice(rest).expect("an accepted plaintext has the checked fields");
        assert_eq!(plaintext.sender, fx.alice_user.as_str());
        assert_eq!(plaintext.recipient, fx.bob_user.as_str());
        assert_eq!(plaintext.recipient_keys.ed25519, fx.bob_ed.to_base64());
        assert_eq!(plaintext.keys.ed25519, fx.alice_ed.to_base64());
        assert_eq!(plaintext.event_type, event.event_type);
        if !["m.room_key", "m.forwarded_room_key", "m.secret.send"].contains(&event.event_type.as_str()) {
            assert_eq!(plaintext.content, event.content, "the content is not the plaintext's"); // (secrets are redacted)
        }
    }

    // Whatever the event did, the genuine conversation goes on: Alice's next message decrypts
    // (the input used the index before it, or none), unless the input was that very message.
    let genuine = &fx.genuine_to_device[1];
    if !event.contains(fx.olm_body(genuine).as_str()) {
        let raw = raw_to_device(genuine).expect("json");
        let changes = SyncChanges { to_device_events: vec![raw], next_batch: "fuzz-2".into(), ..Default::default() };
        let outcome = bob.receive_sync_changes(changes).expect("step");
        match outcome.to_device.as_slice() {
            [ToDeviceOutcome::Decrypted(event)] => {
                fx.check_decrypted(event);
                assert_eq!(event.content["n"], 2);
            }
            other => panic!("the genuine message after the input did not decrypt: {other:?}"),
        }
    }
    bob.outgoing_requests().expect("the machine still works");
});
