//! Bad network input never panics and never fails a step: arbitrary and mutated to-device
//! events, keys query and claim answers, and room events. (Property tests; the fuzz targets of
//! the point 10 are still to come.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{id, meet, open_sessions, user};
use ferrolm::types::{base64_decode, base64_encode};
use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::{EncryptionSettings, RequestKind, SyncChanges, ToDeviceOutcome, TrustRequirement};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9+/:@!$._ -]{0,12}".prop_map(Value::String),
        Just(json!("m.olm.v1.curve25519-aes-sha2")),
        Just(json!("m.megolm.v1.aes-sha2")),
        Just(json!("m.room.encrypted")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("sender".to_owned()),
                    Just("content".to_owned()),
                    Just("algorithm".to_owned()),
                    Just("sender_key".to_owned()),
                    Just("ciphertext".to_owned()),
                    Just("body".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn raw<T>(value: &Value) -> Raw<T> {
    Raw::from_json(serde_json::value::to_raw_value(value).unwrap())
}

/// Alice and Bob with sessions both ways, a shared room key, and one room event.
struct Pair {
    hs: Homeserver,
    alice: TestDevice,
    bob: TestDevice,
    /// An Olm to-device event from Alice to Bob, not yet delivered.
    olm_event: Value,
    room: ferrolm_machine::ruma::OwnedRoomId,
    room_event: Value,
}

fn pair() -> Pair {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000).unwrap();
    let room = meet(&mut hs, &mut [&mut alice, &mut bob]);
    open_sessions(&mut hs, &mut alice, &[user(&bob)]);
    alice.machine.share_room_key(&room, &hs.members(&room), EncryptionSettings::default()).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    ferrolm_test_homeserver::driver::sync(&mut hs, &mut bob.machine).unwrap();
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example", &json!({"n": 1})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let olm_event = hs.to_device_queue(&user(&bob), bob.machine.device_id()).unwrap().pop().unwrap().event;
    let content = alice.machine.encrypt_room_event(&room, "m.room.message", &json!({"body": "x"})).unwrap();
    let room_event = json!({"type": "m.room.encrypted", "event_id": "$e", "sender": user(&alice), "origin_server_ts": 1, "content": content});
    Pair { hs, alice, bob, olm_event, room, room_event }
}

fn deliver(bob: &mut TestDevice, events: Vec<Value>, token: &str) -> Vec<ToDeviceOutcome> {
    let changes = SyncChanges {
        to_device_events: events.iter().map(raw).collect(),
        next_batch: token.to_owned(),
        ..Default::default()
    };
    let outcome = bob.machine.receive_sync_changes(changes).expect("bad input never fails the step");
    outcome.to_device
}

/// Flips bits in the base64 body at `path`, or replaces a field by `replacement`.
fn mutate(event: &Value, bob_key: &str, choice: u8, position: usize, replacement: &Value) -> Value {
    let mut event = event.clone();
    match choice % 5 {
        0 => {
            let body = &mut event["content"]["ciphertext"][bob_key]["body"];
            if let Some(text) = body.as_str() {
                let mut bytes = base64_decode(text).unwrap_or_default();
                if !bytes.is_empty() {
                    let at = position % bytes.len();
                    bytes[at] ^= 1 << (position % 8);
                }
                *body = json!(base64_encode(&bytes));
            }
        }
        1 => event["content"]["ciphertext"][bob_key]["type"] = replacement.clone(),
        2 => event["content"]["sender_key"] = replacement.clone(),
        3 => event["content"] = replacement.clone(),
        _ => event["content"]["ciphertext"][bob_key]["body"] = replacement.clone(),
    }
    event
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_to_device_events_are_refused_without_failing(events in prop::collection::vec(json_value(), 1..6)) {
        let mut p = pair();
        let outcomes = deliver(&mut p.bob, events.clone(), "s1");
        prop_assert_eq!(outcomes.len(), events.len());
        // The real message still decrypts afterwards.
        let outcomes = deliver(&mut p.bob, vec![p.olm_event.clone()], "s2");
        prop_assert!(matches!(outcomes.as_slice(), [ToDeviceOutcome::Decrypted(_)]), "{:?}", outcomes);
    }

    #[test]
    fn mutated_olm_messages_are_refused_and_the_original_still_decrypts(
        choice in any::<u8>(), position in any::<usize>(), replacement in json_value()
    ) {
        let mut p = pair();
        let bob_key = p.bob.machine.identity_keys().curve25519.to_base64();
        let mutated = mutate(&p.olm_event, &bob_key, choice, position, &replacement);
        let outcomes = deliver(&mut p.bob, vec![mutated.clone()], "s1");
        if mutated != p.olm_event {
            prop_assert!(matches!(outcomes.as_slice(), [ToDeviceOutcome::Refused { .. }]), "{:?}", outcomes);
            let outcomes = deliver(&mut p.bob, vec![p.olm_event.clone()], "s2");
            prop_assert!(matches!(outcomes.as_slice(), [ToDeviceOutcome::Decrypted(_)]), "{:?}", outcomes);
        }
    }

    #[test]
    fn arbitrary_and_mutated_room_events_are_typed_failures(
        value in json_value(), position in any::<usize>(), field in 0u8..4, replacement in json_value()
    ) {
        let mut p = pair();
        let event: Raw<AnySyncTimelineEvent> = raw(&value);
        let result = p.bob.machine.decrypt_room_event(&event, &p.room, TrustRequirement::Untrusted);
        prop_assert!(result.expect("never a step failure").is_err());
        let mut mutated = p.room_event.clone();
        match field {
            0 => {
                let text = mutated["content"]["ciphertext"].as_str().unwrap().to_owned();
                let mut bytes = base64_decode(&text).unwrap();
                let at = position % bytes.len();
                bytes[at] ^= 1 << (position % 8);
                mutated["content"]["ciphertext"] = json!(base64_encode(&bytes));
            }
            1 => mutated["content"]["session_id"] = replacement,
            2 => mutated["content"]["ciphertext"] = replacement,
            _ => mutated["content"] = replacement,
        }
        let result = p.bob.machine.decrypt_room_event(&raw(&mutated), &p.room, TrustRequirement::Untrusted);
        let result = result.expect("never a step failure");
        if mutated != p.room_event {
            prop_assert!(result.is_err(), "{:?}", result);
        }
        let original = p.bob.machine.decrypt_room_event(&raw(&p.room_event), &p.room, TrustRequirement::Untrusted);
        prop_assert!(original.unwrap().is_ok());
    }

    #[test]
    fn arbitrary_keys_query_and_claim_answers_never_fail_a_step(devices in json_value(), keys in json_value()) {
        let mut p = pair();
        p.alice.machine.update_tracked_users(&[user(&p.bob)]).unwrap();
        ferrolm_test_homeserver::driver::sync(&mut p.hs, &mut p.alice.machine).unwrap();
        p.hs.serve_device_keys(p.bob.machine.user_id(), p.bob.machine.device_id(), devices.clone());
        ferrolm_test_homeserver::driver::sync(&mut p.hs, &mut p.alice.machine).unwrap();
        let requests = p.alice.machine.outgoing_requests().unwrap();
        for request in requests.iter().filter(|r| r.kind() == RequestKind::KeysQuery) {
            // Served through the wire; a body the wire refuses is simply a failed request.
            let _ = send(&mut p.hs, &mut p.alice.machine, request);
        }
        // The stored device of Bob never changes, whatever was served.
        let stored = p.alice.machine.device(p.bob.machine.user_id(), p.bob.machine.device_id()).unwrap().unwrap();
        prop_assert_eq!(stored.ed25519_key, p.bob.machine.identity_keys().ed25519);

        // A claim answered with arbitrary keys opens no session and fails no step.
        let mut carol = TestDevice::new(&mut p.hs, "@carol:test.server", "CAROL", 9, 1_000).unwrap();
        carol.settle(&mut p.hs, 1).unwrap();
        p.alice.machine.update_tracked_users(&[user(&carol)]).unwrap();
        run_requests(&mut p.hs, &mut p.alice.machine).unwrap();
        p.hs.serve_one_time_key(carol.machine.user_id(), carol.machine.device_id(), "signed_curve25519:AAAAAQ", keys);
        if let Some(claim) = p.alice.machine.get_missing_sessions(&[user(&carol)]).unwrap() {
            if let Ok(outcome) = send(&mut p.hs, &mut p.alice.machine, &claim) {
                prop_assert_eq!(outcome.sessions_created, 0);
            }
        }
    }
}
