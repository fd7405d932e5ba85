//! The Olm channel through the test homeserver: sessions from checked claims, every plaintext
//! field sent and checked, Megolm and cleartext key events refused, session choice, pruning,
//! wedged-session recovery, and a homeserver that drops, duplicates, reorders and replays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{
    body, break_last_message, decrypted, id, meet, of_kind, open_sessions, send_olm, the_decrypted, the_refusal, user,
};
use ferrolm::olm::{MessageType, OlmMessage};
use ferrolm_machine::olm_channel::{CLAIM_BACKOFF_INITIAL_MS, KEPT_SESSIONS_PER_DEVICE, WEDGE_RECOVERY_INTERVAL_MS};
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId, device_id};
use ferrolm_machine::signing::{SignatureError, verify_json};
use ferrolm_machine::{
    ClaimFailure, PlaintextRejection, RequestKind, SenderDeviceSource, ToDeviceError, ToDeviceOutcome,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, fetch_sync, run_requests, send, sync};
use ferrolm_test_homeserver::forge::RawDevice;
use serde_json::{Value, json};

const HOUR: u64 = WEDGE_RECOVERY_INTERVAL_MS;

fn pair(hs: &mut Homeserver) -> (TestDevice, TestDevice) {
    let mut alice = TestDevice::new(hs, "@alice:test.server", "ALICE", 1, 10 * HOUR).unwrap();
    let mut bob = TestDevice::new(hs, "@bob:test.server", "BOB", 2, 10 * HOUR).unwrap();
    meet(hs, &mut [&mut alice, &mut bob]);
    (alice, bob)
}

/// Alice and Bob with a session each way established (Bob replied once).
fn talking(hs: &mut Homeserver) -> (TestDevice, TestDevice) {
    let (mut alice, mut bob) = pair(hs);
    assert_eq!(open_sessions(hs, &mut alice, &[user(&bob)]), 1);
    the_decrypted(&send_olm(hs, &mut alice, &mut bob, "org.example.ping", json!({"n": 0})));
    the_decrypted(&send_olm(hs, &mut bob, &mut alice, "org.example.pong", json!({"n": 0})));
    (alice, bob)
}

/// A forged device of `user_id` that `victim` has queried (a known device).
fn known_forger(hs: &mut Homeserver, victim: &mut TestDevice, user_id: &str, seed: u64) -> RawDevice {
    let user_id = OwnedUserId::try_from(user_id).unwrap();
    let mut forger = RawDevice::new(hs, &user_id, "FORGER", seed);
    forger.upload(hs, 5).unwrap();
    victim.machine.update_tracked_users(&[user_id]).unwrap();
    sync(hs, &mut victim.machine).unwrap();
    run_requests(hs, &mut victim.machine).unwrap();
    assert!(victim.machine.device(&forger.user_id, &forger.device_id).unwrap().is_some());
    forger
}

#[test]
fn messages_flow_both_ways_with_the_sender_identified() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    assert_eq!(open_sessions(&mut hs, &mut alice, &[user(&bob)]), 1);
    assert!(alice.machine.get_missing_sessions(&[user(&bob)]).unwrap().is_none(), "no second session");
    let got = send_olm(&mut hs, &mut alice, &mut bob, "org.example.hello", json!({"to": "bob"}));
    let event = the_decrypted(&got);
    assert_eq!(event.sender, user(&alice));
    assert_eq!(event.sender_device.as_deref(), Some(device_id!("ALICE")));
    assert_eq!(event.sender_curve25519_key, alice.machine.identity_keys().curve25519);
    assert_eq!(event.sender_ed25519_key, alice.machine.identity_keys().ed25519);
    assert_eq!(event.source, SenderDeviceSource::KnownDevice);
    assert_eq!(event.event_type, "org.example.hello");
    assert_eq!(event.content, json!({"to": "bob"}));
    let raw: Value = serde_json::from_str(event.event.json().get()).unwrap();
    assert_eq!(raw, json!({"sender": "@alice:test.server", "type": "org.example.hello", "content": {"to": "bob"}}));
    // Bob answers over the session Alice opened (no claim needed).
    assert!(bob.machine.get_missing_sessions(&[user(&alice)]).unwrap().is_none());
    let got = send_olm(&mut hs, &mut bob, &mut alice, "org.example.reply", json!({}));
    assert_eq!(the_decrypted(&got).sender, user(&bob));
}

#[test]
fn the_encrypted_payload_carries_every_field() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, HOUR).unwrap();
    alice.settle(&mut hs, 1).unwrap();
    let carol_id = OwnedUserId::try_from("@carol:test.server").unwrap();
    let mut carol = RawDevice::new(&mut hs, &carol_id, "CAROL", 9);
    carol.upload(&mut hs, 3).unwrap();
    alice.machine.update_tracked_users(&[carol_id.clone()]).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(open_sessions(&mut hs, &mut alice, &[carol_id.clone()]), 1);
    alice
        .machine
        .encrypt_to_device(&[(carol_id.clone(), carol.device_id.clone())], "m.example", &json!({"a": 1}))
        .unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();

    // Carol decrypts it by hand.
    let queued = hs.to_device_queue(&carol_id, &carol.device_id).unwrap().clone();
    let [message] = queued.as_slice() else { panic!("{queued:?}") };
    let content = &message.event["content"];
    assert_eq!(message.event["type"], "m.room.encrypted");
    assert_eq!(content["algorithm"], "m.olm.v1.curve25519-aes-sha2");
    assert_eq!(content["sender_key"], alice.machine.identity_keys().curve25519.to_base64());
    let ciphertext = &content["ciphertext"][carol.account.curve25519_key().to_base64()];
    assert_eq!(ciphertext["type"], 0);
    let OlmMessage::PreKey(pre_key) =
        OlmMessage::from_parts(MessageType::PreKey, ciphertext["body"].as_str().unwrap()).unwrap()
    else {
        panic!()
    };
    let created = carol
        .account
        .create_inbound_session(
            ferrolm::olm::SessionConfig::version_1(),
            alice.machine.identity_keys().curve25519,
            &pre_key,
        )
        .unwrap();
    let payload: Value = serde_json::from_slice(&created.plaintext).unwrap();
    assert_eq!(payload["type"], "m.example");
    assert_eq!(payload["content"], json!({"a": 1}));
    assert_eq!(payload["sender"], "@alice:test.server");
    assert_eq!(payload["sender_device"], "ALICE");
    assert_eq!(payload["keys"], json!({"ed25519": alice.machine.identity_keys().ed25519.to_base64()}));
    assert_eq!(payload["recipient"], "@carol:test.server");
    assert_eq!(payload["recipient_keys"], json!({"ed25519": carol.account.ed25519_key().to_base64()}));
    // MSC4147: the sender's own signed device keys.
    let keys = payload["sender_device_keys"].as_object().unwrap();
    assert_eq!(Value::Object(keys.clone()), Value::Object(alice.machine.device_keys().unwrap()));
    verify_json(keys, "@alice:test.server", "ed25519:ALICE", &alice.machine.identity_keys().ed25519).unwrap();
}

#[test]
fn rule_a_pre_key_message_creates_a_session_and_uses_its_one_time_key_in_one_change_set() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    open_sessions(&mut hs, &mut alice, &[user(&bob)]);
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.hi", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let alice_key = alice.machine.identity_keys().curve25519;
    let store = bob.machine.store();
    let keys_before = store.account().unwrap().unwrap().account.stored_one_time_key_count();
    let generation = store.generation();
    assert!(store.olm_sessions(&alice_key).unwrap().is_empty());

    the_decrypted(&sync(&mut hs, &mut bob.machine).unwrap());
    let store = bob.machine.store();
    assert_eq!(store.generation(), generation + 1, "one commit: session, account and token together");
    assert_eq!(store.account().unwrap().unwrap().account.stored_one_time_key_count(), keys_before - 1);
    let sessions = store.olm_sessions(&alice_key).unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].last_decrypt_ms.is_some());

    // Replayed by the homeserver: the same pre-key message again opens nothing new.
    let mut bob = bob.restart(20).unwrap();
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.second", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let queue = hs.to_device_queue(&user(&bob), bob.machine.device_id()).unwrap();
    let copy = queue.last().unwrap().clone();
    queue.push(copy);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(decrypted(&outcome).len(), 1);
    assert_eq!(the_refusal(&outcome), &ToDeviceError::Duplicate);
    assert_eq!(bob.machine.store().olm_sessions(&alice_key).unwrap().len(), 1);
}

#[test]
fn rule_claimed_keys_must_be_signed_by_the_device_and_failing_devices_back_off() {
    let mut hs = Homeserver::new();
    let (mut alice, bob) = pair(&mut hs);
    let (bob_user, bob_device) = id(&bob);
    // The homeserver serves a one-time key signed by someone else.
    let mallory = RawDevice::new(&mut hs, &OwnedUserId::try_from("@mallory:test.server").unwrap(), "M", 5);
    let forged = mallory.signed(json!({"key": mallory.account.curve25519_key().to_base64()}));
    hs.serve_one_time_key(&bob_user, &bob_device, "signed_curve25519:AAAAAQ", forged);
    let claim = alice.machine.get_missing_sessions(&[bob_user.clone()]).unwrap().unwrap();
    let outcome = send(&mut hs, &mut alice.machine, &claim).unwrap();
    assert_eq!(outcome.sessions_created, 0);
    assert_eq!(outcome.failed_claims.len(), 1);
    assert!(matches!(outcome.failed_claims[0].reason, ClaimFailure::Signature(SignatureError::Missing { .. })));
    assert!(alice.machine.store().olm_sessions(&bob.machine.identity_keys().curve25519).unwrap().is_empty());

    // Backing off: not claimed again before the wait is over.
    assert!(alice.machine.get_missing_sessions(&[bob_user.clone()]).unwrap().is_none());
    alice.clock.advance_ms(CLAIM_BACKOFF_INITIAL_MS - 1);
    assert!(alice.machine.get_missing_sessions(&[bob_user.clone()]).unwrap().is_none());
    alice.clock.advance_ms(1);
    // A key signed with a valid signature of another key under Bob's key id: still refused.
    let mut resigned = forged_with_bob_key_id(&mallory, &bob_user, &bob_device);
    resigned["key"] = json!(mallory.account.curve25519_key().to_base64());
    hs.serve_one_time_key(&bob_user, &bob_device, "signed_curve25519:AAAAAQ", resigned);
    let claim = alice.machine.get_missing_sessions(&[bob_user.clone()]).unwrap().unwrap();
    let outcome = send(&mut hs, &mut alice.machine, &claim).unwrap();
    assert!(matches!(outcome.failed_claims[0].reason, ClaimFailure::Signature(SignatureError::Invalid)));
    // The second failure doubles the wait.
    alice.clock.advance_ms(2 * CLAIM_BACKOFF_INITIAL_MS - 1);
    assert!(alice.machine.get_missing_sessions(&[bob_user.clone()]).unwrap().is_none());
    alice.clock.advance_ms(1);
    // The homeserver behaves again: a real, signed key opens the session.
    hs.stop_serving_one_time_key(&bob_user, &bob_device);
    assert_eq!(open_sessions(&mut hs, &mut alice, &[bob_user]), 1);
}

/// Mallory's signature, filed under Bob's user and key id.
fn forged_with_bob_key_id(mallory: &RawDevice, bob: &OwnedUserId, bob_device: &OwnedDeviceId) -> Value {
    let signed = mallory.signed(json!({"key": mallory.account.curve25519_key().to_base64()}));
    let signature = signed["signatures"][mallory.user_id.as_str()][format!("ed25519:{}", mallory.device_id)].clone();
    json!({"key": signed["key"], "signatures": {bob.as_str(): {format!("ed25519:{bob_device}"): signature}}})
}

#[test]
fn a_device_without_keys_to_claim_backs_off() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, HOUR).unwrap();
    alice.settle(&mut hs, 1).unwrap();
    let carol_id = OwnedUserId::try_from("@carol:test.server").unwrap();
    let mut carol = RawDevice::new(&mut hs, &carol_id, "CAROL", 9);
    carol.upload(&mut hs, 0).unwrap(); // device keys, no one-time key, no fallback key
    alice.machine.update_tracked_users(&[carol_id.clone()]).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let claim = alice.machine.get_missing_sessions(&[carol_id.clone()]).unwrap().unwrap();
    let outcome = send(&mut hs, &mut alice.machine, &claim).unwrap();
    assert_eq!(outcome.failed_claims[0].reason, ClaimFailure::NoKey);
    assert!(alice.machine.get_missing_sessions(&[carol_id.clone()]).unwrap().is_none());
    alice.clock.advance_ms(CLAIM_BACKOFF_INITIAL_MS);
    assert!(alice.machine.get_missing_sessions(&[carol_id]).unwrap().is_some());
}

#[test]
fn rule_megolm_encrypted_to_device_events_are_refused() {
    let mut hs = Homeserver::new();
    let (alice, mut bob) = pair(&mut hs);
    hs.forge_to_device(
        &user(&bob),
        device_id!("BOB"),
        json!({
            "type": "m.room.encrypted",
            "sender": user(&alice),
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "sender_key": alice.machine.identity_keys().curve25519.to_base64(),
                "session_id": "abc",
                "ciphertext": "AwgA",
                "device_id": "ALICE",
            }
        }),
    );
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(the_refusal(&outcome), &ToDeviceError::MegolmToDevice);
}

#[test]
fn rule_key_carrying_events_in_the_clear_are_refused() {
    let mut hs = Homeserver::new();
    let (alice, mut bob) = pair(&mut hs);
    for event_type in ["m.room_key", "m.forwarded_room_key", "m.secret.send", "m.dummy"] {
        hs.forge_to_device(
            &user(&bob),
            device_id!("BOB"),
            json!({"type": event_type, "sender": user(&alice), "content": {"room_id": "!r:x", "session_key": "AAAA"}}),
        );
        let outcome = sync(&mut hs, &mut bob.machine).unwrap();
        assert_eq!(the_refusal(&outcome), &ToDeviceError::Unencrypted(event_type.into()));
    }
    // Other events in the clear (a verification request) are handed over, marked as such.
    hs.forge_to_device(
        &user(&bob),
        device_id!("BOB"),
        json!({"type": "m.key.verification.request", "sender": user(&alice), "content": {}}),
    );
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert!(matches!(outcome.to_device.as_slice(), [ToDeviceOutcome::Plaintext(_)]));
}

#[test]
fn rule_every_field_of_a_decrypted_payload_is_checked() {
    let mut hs = Homeserver::new();
    let (alice, mut bob) = pair(&mut hs);
    let mut forger = known_forger(&mut hs, &mut bob, "@eve:test.server", 11);
    let (bob_user, bob_device) = id(&bob);
    let bob_keys = bob.machine.identity_keys();
    let mut session = forger.open_session(&mut hs, &bob_user, &bob_device, bob_keys.curve25519).unwrap();
    let other = RawDevice::new(&mut hs, &forger.user_id.clone(), "OTHERDEV", 12);
    let good = forger.payload(&bob_user, &bob_keys.ed25519, "org.example.x", json!({}));

    let mut cases: Vec<(Value, Option<OwnedUserId>, PlaintextRejection)> = Vec::new();
    let mut p = good.clone();
    p["sender"] = json!(user(&alice));
    cases.push((p, None, PlaintextRejection::SenderMismatch));
    let mut p = good.clone();
    p["recipient"] = json!("@someone:test.server");
    cases.push((p, None, PlaintextRejection::RecipientMismatch));
    let mut p = good.clone();
    p["recipient_keys"]["ed25519"] = json!(alice.machine.identity_keys().ed25519.to_base64());
    cases.push((p, None, PlaintextRejection::RecipientKeyMismatch));
    let mut p = good.clone();
    p["keys"]["ed25519"] = json!(other.account.ed25519_key().to_base64());
    cases.push((p, None, PlaintextRejection::SenderKeyMismatch));
    let mut p = good.clone();
    p["sender_device"] = json!("OTHERDEV");
    cases.push((p, None, PlaintextRejection::SenderDeviceMismatch));
    let mut p = good.clone();
    p["sender_device_keys"] = other.device_keys();
    let expected = PlaintextRejection::SenderDeviceKeys("curve25519 key is not the Olm sender key".into());
    cases.push((p, None, expected));
    let mut p = good.clone();
    p["type"] = json!("m.room.encrypted");
    cases.push((p, None, PlaintextRejection::NestedEncryption));
    let mut p = good.clone();
    p.as_object_mut().unwrap().remove("recipient_keys");
    cases.push((p, None, PlaintextRejection::Malformed(String::new())));

    for (payload, event_sender, expected) in cases {
        let sender: OwnedUserId = event_sender.unwrap_or_else(|| forger.user_id.clone());
        let event = forger.encrypted_event(&mut session, &sender, &bob_keys.curve25519, &payload);
        hs.forge_to_device(&bob_user, &bob_device, event);
        let outcome = sync(&mut hs, &mut bob.machine).unwrap();
        match (the_refusal(&outcome), &expected) {
            (ToDeviceError::Plaintext(PlaintextRejection::Malformed(_)), PlaintextRejection::Malformed(_)) => {}
            (ToDeviceError::Plaintext(got), expected) => assert_eq!(got, expected, "{payload}"),
            (other, _) => panic!("{payload}: {other:?}"),
        }
    }
    // The event and the payload claim Alice as the sender, with Alice's Ed25519 key, but the
    // Olm sender key is Eve's: no device of Alice owns it, so the sender device is reported
    // unknown (never Alice's device), and Alice's device list is queried again.
    let mut p = good.clone();
    p["sender"] = json!(user(&alice));
    p["keys"]["ed25519"] = json!(alice.machine.identity_keys().ed25519.to_base64());
    p.as_object_mut().unwrap().remove("sender_device");
    let event = forger.encrypted_event(&mut session, &user(&alice), &bob_keys.curve25519, &p);
    hs.forge_to_device(&bob_user, &bob_device, event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    let event = the_decrypted(&outcome);
    assert_eq!(event.source, SenderDeviceSource::Unknown);
    assert_eq!(event.sender_device, None);
    assert!(bob.machine.tracked_users().unwrap().contains(&(user(&alice), true)));
    run_requests(&mut hs, &mut bob.machine).unwrap();

    // The untampered payload passes (the same session, still working).
    let event = forger.encrypted_event(&mut session, &forger.user_id.clone(), &bob_keys.curve25519, &good);
    hs.forge_to_device(&bob_user, &bob_device, event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(the_decrypted(&outcome).source, SenderDeviceSource::KnownDevice);
}

#[test]
fn an_unknown_device_is_identified_by_its_signed_keys_in_the_payload() {
    let mut hs = Homeserver::new();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, HOUR).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    let (bob_user, bob_device) = id(&bob);
    let bob_keys = bob.machine.identity_keys();
    let frank_id = OwnedUserId::try_from("@frank:test.server").unwrap();
    let mut frank = RawDevice::new(&mut hs, &frank_id, "FRANK", 13);
    let mut session = frank.open_session(&mut hs, &bob_user, &bob_device, bob_keys.curve25519).unwrap();

    let mut payload = frank.payload(&bob_user, &bob_keys.ed25519, "org.example.x", json!({}));
    payload["sender_device_keys"] = frank.device_keys();
    let event = frank.encrypted_event(&mut session, &frank_id, &bob_keys.curve25519, &payload);
    hs.forge_to_device(&bob_user, &bob_device, event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    let event = the_decrypted(&outcome);
    assert_eq!(event.source, SenderDeviceSource::SenderDeviceKeys);
    assert_eq!(event.sender_device.as_deref(), Some(device_id!("FRANK")));

    // Keys signed by another key are refused.
    let mut tampered = frank.device_keys();
    tampered["algorithms"] = json!(["m.olm.v1.curve25519-aes-sha2"]);
    payload["sender_device_keys"] = tampered;
    let event = frank.encrypted_event(&mut session, &frank_id, &bob_keys.curve25519, &payload);
    hs.forge_to_device(&bob_user, &bob_device, event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert!(matches!(the_refusal(&outcome), ToDeviceError::Plaintext(PlaintextRejection::SenderDeviceKeys(_))));

    // Without device keys the device is reported unknown.
    payload.as_object_mut().unwrap().remove("sender_device_keys");
    let event = frank.encrypted_event(&mut session, &frank_id, &bob_keys.curve25519, &payload);
    hs.forge_to_device(&bob_user, &bob_device, event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(the_decrypted(&outcome).source, SenderDeviceSource::Unknown);
}

#[test]
fn rule_a_normal_message_without_a_session_is_refused() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = talking(&mut hs);
    // A normal message from a key Bob has no session with.
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.x", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let queue = hs.to_device_queue(&user(&bob), device_id!("BOB")).unwrap();
    let mut event = queue.pop().unwrap().event;
    let stranger = ferrolm::olm::Account::new();
    event["content"]["sender_key"] = json!(stranger.curve25519_key().to_base64());
    hs.forge_to_device(&user(&bob), device_id!("BOB"), event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(the_refusal(&outcome), &ToDeviceError::NoSession);
}

#[test]
fn rule_the_session_that_last_decrypted_is_the_one_used_to_send() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    // Both open a session at the same time: each ends up with two.
    open_sessions(&mut hs, &mut alice, &[user(&bob)]);
    open_sessions(&mut hs, &mut bob, &[user(&alice)]);
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.a", &json!({})).unwrap();
    bob.machine.encrypt_to_device(&[id(&alice)], "org.example.b", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    the_decrypted(&sync(&mut hs, &mut alice.machine).unwrap());
    the_decrypted(&sync(&mut hs, &mut bob.machine).unwrap());
    let bob_key = bob.machine.identity_keys().curve25519;
    assert_eq!(alice.machine.store().olm_sessions(&bob_key).unwrap().len(), 2);

    // Alice's next message goes over the session Bob opened (the one that decrypted), as a
    // normal message, not over her own (still pre-key) session.
    alice.clock.advance_ms(1000);
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.c", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let queue = hs.to_device_queue(&user(&bob), device_id!("BOB")).unwrap();
    let event = &queue.last().unwrap().event;
    let ciphertext = &event["content"]["ciphertext"][bob.machine.identity_keys().curve25519.to_base64()];
    assert_eq!(ciphertext["type"], 1);
    assert_eq!(the_decrypted(&sync(&mut hs, &mut bob.machine).unwrap()).event_type, "org.example.c");
}

#[test]
fn rule_at_most_four_sessions_are_kept_per_device() {
    let mut hs = Homeserver::new();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, HOUR).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    let (bob_user, bob_device) = id(&bob);
    let bob_keys = bob.machine.identity_keys();
    let mut gina = known_forger(&mut hs, &mut bob, "@gina:test.server", 14);
    let mut ids = Vec::new();
    for n in 0..KEPT_SESSIONS_PER_DEVICE + 2 {
        bob.clock.advance_ms(1000);
        let mut session = gina.open_session(&mut hs, &bob_user, &bob_device, bob_keys.curve25519).unwrap();
        ids.push(session.session_id());
        let payload = gina.payload(&bob_user, &bob_keys.ed25519, "org.example.n", json!({"n": n}));
        let sender = gina.user_id.clone();
        let event = gina.encrypted_event(&mut session, &sender, &bob_keys.curve25519, &payload);
        hs.forge_to_device(&bob_user, &bob_device, event);
        the_decrypted(&sync(&mut hs, &mut bob.machine).unwrap());
    }
    let kept: Vec<ferrolm::olm::SessionId> = bob
        .machine
        .store()
        .olm_sessions(&gina.account.curve25519_key())
        .unwrap()
        .iter()
        .map(|s| s.session.session_id())
        .collect();
    assert_eq!(kept.len(), KEPT_SESSIONS_PER_DEVICE);
    for newest in &ids[2..] {
        assert!(kept.contains(newest));
    }
}

#[test]
fn a_wedged_session_is_replaced_with_an_m_dummy_at_most_once_an_hour() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = talking(&mut hs);
    let alice_key = alice.machine.identity_keys().curve25519;

    // Within the hour of the session's creation: refused, no new session.
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.lost", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    break_last_message(&mut hs, &bob);
    assert_eq!(the_refusal(&sync(&mut hs, &mut bob.machine).unwrap()), &ToDeviceError::Undecryptable);
    assert!(of_kind(&bob.machine.outgoing_requests().unwrap(), RequestKind::KeysClaim).is_empty());

    // An hour later: a new session and an m.dummy.
    bob.clock.advance_ms(HOUR);
    alice.clock.advance_ms(HOUR);
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.lost", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    break_last_message(&mut hs, &bob);
    assert_eq!(the_refusal(&sync(&mut hs, &mut bob.machine).unwrap()), &ToDeviceError::Undecryptable);
    let requests = bob.machine.outgoing_requests().unwrap();
    let claim = common::only(&requests, RequestKind::KeysClaim).clone();
    assert!(body(&claim)["one_time_keys"]["@alice:test.server"].get("ALICE").is_some());
    let outcome = send(&mut hs, &mut bob.machine, &claim).unwrap();
    assert_eq!(outcome.sessions_created, 1);
    assert_eq!(bob.machine.store().olm_sessions(&alice_key).unwrap().len(), 2);
    let requests = bob.machine.outgoing_requests().unwrap();
    assert_eq!(of_kind(&requests, RequestKind::ToDevice).len(), 1);
    run_requests(&mut hs, &mut bob.machine).unwrap();
    let got = sync(&mut hs, &mut alice.machine).unwrap();
    let dummy = the_decrypted(&got);
    assert_eq!(dummy.event_type, "m.dummy");
    assert_eq!(dummy.sender, user(&bob));
    // Alice now talks over the new session, and Bob reads it.
    alice.clock.advance_ms(1);
    let got = send_olm(&mut hs, &mut alice, &mut bob, "org.example.after", json!({}));
    assert_eq!(the_decrypted(&got).event_type, "org.example.after");

    // Another undecryptable message within the hour: no further session.
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.lost", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    break_last_message(&mut hs, &bob);
    assert_eq!(the_refusal(&sync(&mut hs, &mut bob.machine).unwrap()), &ToDeviceError::Undecryptable);
    assert!(of_kind(&bob.machine.outgoing_requests().unwrap(), RequestKind::KeysClaim).is_empty());
}

#[test]
fn duplicated_reordered_and_dropped_messages() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = talking(&mut hs);
    for n in 1..=4 {
        alice.machine.encrypt_to_device(&[id(&bob)], "org.example.n", &json!({"n": n})).unwrap();
        run_requests(&mut hs, &mut alice.machine).unwrap();
    }
    let delivered = bob.machine.sync_token().unwrap().unwrap()[1..].parse::<u64>().unwrap();
    let queue = hs.to_device_queue(&user(&bob), device_id!("BOB")).unwrap();
    // What the last sync delivered goes with the next one anyway.
    queue.retain(|m| m.position > delivered);
    assert_eq!(queue.len(), 4);
    // Drop n=2, swap n=3 and n=4, duplicate n=1 at the end.
    queue.remove(1);
    queue.swap(1, 2);
    let copy = queue[0].clone();
    queue.push(copy);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    let got: Vec<i64> = decrypted(&outcome).iter().map(|e| e.content["n"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![1, 4, 3]);
    assert_eq!(common::refusals(&outcome), vec![&ToDeviceError::Duplicate]);
    // A duplicate does not start a recovery.
    assert!(of_kind(&bob.machine.outgoing_requests().unwrap(), RequestKind::KeysClaim).is_empty());
}

#[test]
fn to_device_events_are_committed_before_the_sync_token_moves_on() {
    let mut hs = Homeserver::new();
    let (mut alice, bob) = talking(&mut hs);
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.important", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let token = bob.machine.sync_token().unwrap();
    // Bob's client fetches the sync, then dies before the machine has processed it.
    let fetched = fetch_sync(&mut hs, &bob.machine).unwrap();
    assert_eq!(fetched.to_device_events.len(), 1);
    let mut bob = bob.restart(30).unwrap();
    assert_eq!(bob.machine.sync_token().unwrap(), token, "the token did not move");
    // The server sends the event again, and it decrypts now.
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(the_decrypted(&outcome).event_type, "org.example.important");
    // Processed and committed with the new token: not delivered again, even after a restart.
    let mut bob = bob.restart(31).unwrap();
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert!(outcome.to_device.is_empty());
}

#[test]
fn malformed_to_device_events_are_refused_not_fatal() {
    let mut hs = Homeserver::new();
    let (alice, mut bob) = talking(&mut hs);
    let alice_key = alice.machine.identity_keys().curve25519.to_base64();
    let bob_key = bob.machine.identity_keys().curve25519.to_base64();
    let contents = [
        json!({}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2"}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": "!!", "ciphertext": {}}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice_key, "ciphertext": {}}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice_key, "ciphertext": {bob_key.clone(): {"type": 7, "body": "AAAA"}}}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice_key, "ciphertext": {bob_key.clone(): {"type": 0, "body": "AwoA"}}}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice_key, "ciphertext": {bob_key.clone(): {"type": 1, "body": "not base64"}}}),
        json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice_key, "ciphertext": {bob_key.clone(): {"type": 1}}}),
        json!({"algorithm": "org.example.unknown"}),
        json!([1, 2, 3]),
    ];
    let count = contents.len();
    for content in contents {
        hs.forge_to_device(
            &user(&bob),
            device_id!("BOB"),
            json!({"type": "m.room.encrypted", "sender": user(&alice), "content": content}),
        );
    }
    hs.forge_to_device(&user(&bob), device_id!("BOB"), json!({"type": "m.room.encrypted", "content": {}}));
    hs.forge_to_device(&user(&bob), device_id!("BOB"), json!({"type": "m.room.encrypted", "sender": "not a user id", "content": {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice_key, "ciphertext": {bob_key: {"type": 1, "body": "AwoA"}}}}));
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(common::refusals(&outcome).len(), count + 2, "{outcome:#?}");
    assert!(matches!(common::refusals(&outcome)[3], ToDeviceError::NotForThisDevice));
    assert!(matches!(common::refusals(&outcome)[8], ToDeviceError::UnsupportedAlgorithm(_)));
    // The channel still works.
    let mut alice = alice;
    let got = send_olm(&mut hs, &mut alice, &mut bob, "org.example.still", json!({}));
    assert_eq!(the_decrypted(&got).event_type, "org.example.still");
}

#[test]
fn rule_a_pre_key_message_in_a_format_this_device_does_not_offer_is_refused() {
    let mut hs = Homeserver::new();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, HOUR).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    let (bob_user, bob_device) = id(&bob);
    let bob_keys = bob.machine.identity_keys();
    let mut hana = known_forger(&mut hs, &mut bob, "@hana:test.server", 15);
    let mut session = hana
        .open_session_with(
            &mut hs,
            &bob_user,
            &bob_device,
            bob_keys.curve25519,
            ferrolm::olm::SessionConfig::version_2(),
        )
        .unwrap();
    let payload = hana.payload(&bob_user, &bob_keys.ed25519, "org.example.v2", json!({}));
    let sender = hana.user_id.clone();
    let event = hana.encrypted_event(&mut session, &sender, &bob_keys.curve25519, &payload);
    hs.forge_to_device(&bob_user, &bob_device, event);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(
        the_refusal(&outcome),
        &ToDeviceError::SessionCreation(ferrolm_machine::SessionCreationFailure::UnsupportedSessionVersion)
    );
    assert!(bob.machine.store().olm_sessions(&hana.account.curve25519_key()).unwrap().is_empty());
}
