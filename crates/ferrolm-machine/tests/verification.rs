//! Verification between two machines through the test homeserver: SAS to completion, the
//! emoji equal on both sides, the devices marked verified; a swapped key cancelled with
//! `m.key_mismatch` and no trust change; forged and replayed events cancelled with the right
//! code; timeouts; in-room SAS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{id, meet};
use ferrolm_machine::ruma::{OwnedUserId, RoomId};
use ferrolm_machine::verification::{CancelCode, FlowId, VerificationState};
use ferrolm_machine::{
    Clock, LocalTrust, PlaintextRejection, RequestKind, RoomVerificationMessage, SyncOutcome, ToDeviceError,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, sync};
use serde_json::{Value, json};
use std::collections::VecDeque;

const NOW: u64 = 1_700_000_000_000;

fn pair(hs: &mut Homeserver) -> (TestDevice, TestDevice) {
    let mut alice = TestDevice::new(hs, "@alice:example.org", "ALICEPHONE", 1, NOW).unwrap();
    let mut bob = TestDevice::new(hs, "@bob:example.org", "BOBLAPTOP", 2, NOW).unwrap();
    meet(hs, &mut [&mut alice, &mut bob]);
    (alice, bob)
}

/// Sends `from`'s requests, then `to` syncs.
fn deliver(hs: &mut Homeserver, from: &mut TestDevice, to: &mut TestDevice) -> SyncOutcome {
    run_requests(hs, &mut from.machine).unwrap();
    sync(hs, &mut to.machine).unwrap()
}

fn state(device: &TestDevice, other: &TestDevice, flow: &str) -> VerificationState {
    device.machine.verification(other.machine.user_id(), flow).expect("flow").state
}

fn trust(device: &TestDevice, other: &TestDevice) -> LocalTrust {
    let (user, dev) = id(other);
    device.machine.device(&user, &dev).unwrap().unwrap().local_trust
}

fn cancelled(state: &VerificationState) -> Option<(CancelCode, bool)> {
    match state {
        VerificationState::Cancelled(c) => Some((c.code.clone(), c.by_us)),
        _ => None,
    }
}

/// Alice requests, Bob accepts, Bob starts SAS, Alice accepts: both see the SAS. Returns the flow id.
fn to_sas(hs: &mut Homeserver, alice: &mut TestDevice, bob: &mut TestDevice) -> String {
    let bob_id = bob.machine.user_id().to_owned();
    let alice_id = alice.machine.user_id().to_owned();
    let (flow, _) = alice.machine.request_verification(&bob_id).unwrap();
    let flow = flow.as_str().to_owned();
    let got = deliver(hs, alice, bob);
    assert_eq!(got.verifications.len(), 1);
    assert_eq!(got.verifications[0].state, VerificationState::RequestReceived);
    bob.machine.accept_verification(&alice_id, &flow).unwrap();
    deliver(hs, bob, alice);
    assert_eq!(state(alice, bob, &flow), VerificationState::Ready { showing_qr: false });
    bob.machine.start_sas(&alice_id, &flow).unwrap();
    deliver(hs, bob, alice);
    assert_eq!(state(alice, bob, &flow), VerificationState::SasStartReceived);
    alice.machine.accept_verification(&bob_id, &flow).unwrap(); // accept with commitment
    deliver(hs, alice, bob); // bob: accept → sends key
    deliver(hs, bob, alice); // alice: key → sends key, shows SAS
    deliver(hs, alice, bob); // bob: key → commitment checked, shows SAS
    flow
}

#[test]
fn sas_between_two_machines_verifies_both_devices() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let flow = to_sas(&mut hs, &mut alice, &mut bob);

    let a = alice.machine.sas_display(&bob_id, &flow).expect("alice shows a SAS");
    let b = bob.machine.sas_display(&alice_id, &flow).expect("bob shows a SAS");
    assert_eq!(a, b, "both sides show the same emoji and numbers");
    let emoji = a.emoji.expect("both support emoji");
    assert!(emoji.iter().all(|e| !e.name.is_empty()));
    let (d1, d2, d3) = a.decimals;
    assert!((1000..=9191).contains(&d1) && (1000..=9191).contains(&d2) && (1000..=9191).contains(&d3));
    assert_eq!(trust(&alice, &bob), LocalTrust::Unset);

    alice.machine.confirm_verification(&bob_id, &flow).unwrap();
    let got = deliver(&mut hs, &mut alice, &mut bob); // bob has alice's MAC, not confirmed yet
    assert!(got.verified.is_empty());
    assert_eq!(trust(&bob, &alice), LocalTrust::Unset, "no trust before the user confirms");
    let step = bob.machine.confirm_verification(&alice_id, &flow).unwrap();
    assert_eq!(step.verified.len(), 1);
    assert_eq!(step.verified[0].verified_devices, vec![(id(&alice).1, alice.machine.identity_keys().ed25519)]);
    assert_eq!(step.verified[0].verified_master_key, None, "no cross-signing keys in this machine yet");
    assert_eq!(trust(&bob, &alice), LocalTrust::Verified);

    let got = deliver(&mut hs, &mut bob, &mut alice); // alice: bob's MAC and done
    assert_eq!(got.verified.len(), 1);
    assert_eq!(trust(&alice, &bob), LocalTrust::Verified);
    assert!(matches!(state(&alice, &bob, &flow), VerificationState::Done(_)));
    deliver(&mut hs, &mut alice, &mut bob); // bob: alice's done
    assert!(matches!(state(&bob, &alice, &flow), VerificationState::Done(_)));
    // Nothing more to send: no cancel after done.
    assert!(alice.machine.outgoing_requests().unwrap().is_empty());
    assert!(bob.machine.outgoing_requests().unwrap().is_empty());
}

#[test]
fn user_saying_no_cancels_with_mismatched_sas() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let flow = to_sas(&mut hs, &mut alice, &mut bob);
    alice.machine.sas_mismatch(&bob_id, &flow).unwrap();
    deliver(&mut hs, &mut alice, &mut bob);
    assert_eq!(cancelled(&state(&alice, &bob, &flow)), Some((CancelCode::MismatchedSas, true)));
    assert_eq!(cancelled(&state(&bob, &alice, &flow)), Some((CancelCode::MismatchedSas, false)));
    // Bob confirming now is refused; nothing is answered to the cancel.
    assert!(bob.machine.confirm_verification(&alice_id, &flow).is_err());
    assert!(bob.machine.outgoing_requests().unwrap().is_empty());
    assert_eq!(trust(&alice, &bob), LocalTrust::Unset);
    assert_eq!(trust(&bob, &alice), LocalTrust::Unset);
}

/// The homeserver swaps Bob's SAS key for another: the commitment check or the MACs fail, and
/// neither side trusts anything.
#[test]
fn swapped_sas_key_is_cancelled() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let (flow, _) = alice.machine.request_verification(&bob_id).unwrap();
    let flow = flow.as_str().to_owned();
    deliver(&mut hs, &mut alice, &mut bob);
    bob.machine.accept_verification(&alice_id, &flow).unwrap();
    deliver(&mut hs, &mut bob, &mut alice);
    // Alice starts this time; Bob accepts (commitment over his key).
    alice.machine.start_sas(&bob_id, &flow).unwrap();
    deliver(&mut hs, &mut alice, &mut bob);
    bob.machine.accept_verification(&alice_id, &flow).unwrap();
    deliver(&mut hs, &mut bob, &mut alice); // alice sends her key
    deliver(&mut hs, &mut alice, &mut bob); // bob sends his key
    run_requests(&mut hs, &mut bob.machine).unwrap();
    // The server replaces Bob's key in flight.
    let queue = hs.to_device_queue(&alice_id, alice.machine.device_id()).unwrap();
    let key_event = queue.iter_mut().find(|q| q.event["type"] == "m.key.verification.key").expect("bob's key");
    let other = ferrolm::sas::Sas::new().public_key().to_base64();
    key_event.event["content"]["key"] = Value::String(other);
    sync(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(cancelled(&state(&alice, &bob, &flow)), Some((CancelCode::MismatchedCommitment, true)));
    deliver(&mut hs, &mut alice, &mut bob);
    assert_eq!(cancelled(&state(&bob, &alice, &flow)), Some((CancelCode::MismatchedCommitment, false)));
    assert_eq!(trust(&alice, &bob), LocalTrust::Unset);
    assert_eq!(trust(&bob, &alice), LocalTrust::Unset);
}

/// A MAC that covers another key than the device's (a forged MAC event with a swapped key):
/// `m.key_mismatch`, no trust.
#[test]
fn mac_over_a_swapped_key_is_a_key_mismatch() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let flow = to_sas(&mut hs, &mut alice, &mut bob);
    alice.machine.confirm_verification(&bob_id, &flow).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    // The server rewrites the MAC of Alice's device key (as if it were over another key).
    let queue = hs.to_device_queue(&bob_id, bob.machine.device_id()).unwrap();
    let mac = queue.iter_mut().find(|q| q.event["type"] == "m.key.verification.mac").expect("alice's mac");
    let key_id = format!("ed25519:{}", alice.machine.device_id());
    mac.event["content"]["mac"][&key_id] = Value::String(ferrolm::types::base64_encode([7u8; 32]));
    sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(cancelled(&state(&bob, &alice, &flow)), Some((CancelCode::KeyMismatch, true)));
    assert!(bob.machine.confirm_verification(&alice_id, &flow).is_err());
    assert_eq!(trust(&bob, &alice), LocalTrust::Unset);
    deliver(&mut hs, &mut bob, &mut alice);
    assert_eq!(cancelled(&state(&alice, &bob, &flow)), Some((CancelCode::KeyMismatch, false)));
    assert_eq!(trust(&alice, &bob), LocalTrust::Unset);
}

/// Alice asks Bob, who has two devices (BOB1, BOB2): both received the request. Returns the
/// homeserver, the three devices and the flow id.
fn request_to_two_devices() -> (Homeserver, TestDevice, TestDevice, TestDevice, String) {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:example.org", "ALICEPHONE", 1, NOW).unwrap();
    let mut bob1 = TestDevice::new(&mut hs, "@bob:example.org", "BOB1", 2, NOW).unwrap();
    let mut bob2 = TestDevice::new(&mut hs, "@bob:example.org", "BOB2", 3, NOW).unwrap();
    meet(&mut hs, &mut [&mut alice, &mut bob1, &mut bob2]);
    let bob_id = bob1.machine.user_id().to_owned();
    let (flow, _) = alice.machine.request_verification(&bob_id).unwrap();
    let flow = flow.as_str().to_owned();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    sync(&mut hs, &mut bob1.machine).unwrap();
    sync(&mut hs, &mut bob2.machine).unwrap();
    (hs, alice, bob1, bob2, flow)
}

/// A to-device request goes to every device of the user; when one answers, the others get
/// `m.accepted`.
#[test]
fn other_devices_are_told_another_accepted() {
    let (mut hs, mut alice, mut bob1, mut bob2, flow) = request_to_two_devices();
    let alice_id = alice.machine.user_id().to_owned();
    assert_eq!(state(&bob2, &alice, &flow), VerificationState::RequestReceived);
    bob1.machine.accept_verification(&alice_id, &flow).unwrap();
    deliver(&mut hs, &mut bob1, &mut alice);
    let got = deliver(&mut hs, &mut alice, &mut bob2);
    assert_eq!(cancelled(&state(&bob2, &alice, &flow)), Some((CancelCode::Accepted, false)));
    assert_eq!(got.verifications.len(), 1);
    // bob1 got no cancel.
    sync(&mut hs, &mut bob1.machine).unwrap();
    assert_eq!(state(&bob1, &alice, &flow), VerificationState::Ready { showing_qr: false });
}

fn forge(hs: &mut Homeserver, from: &OwnedUserId, to: &TestDevice, event_type: &str, content: Value) {
    let (user, device) = id(to);
    hs.forge_to_device(&user, &device, json!({"type": event_type, "sender": from, "content": content}));
}

fn sent_cancels(hs: &mut Homeserver, to: &TestDevice) -> Vec<String> {
    let (user, device) = id(to);
    hs.to_device_queue(&user, &device)
        .map(|q| {
            q.iter()
                .filter(|e| e.event["type"] == "m.key.verification.cancel")
                .map(|e| e.event["content"]["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unknown_transactions_are_cancelled_but_cancels_never_answered() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let alice_id = alice.machine.user_id().to_owned();
    forge(&mut hs, &alice_id, &bob, "m.key.verification.key", json!({"transaction_id": "nope", "key": "AAAA"}));
    forge(&mut hs, &alice_id, &bob, "m.key.verification.done", json!({"transaction_id": "nope2"}));
    forge(
        &mut hs,
        &alice_id,
        &bob,
        "m.key.verification.cancel",
        json!({"transaction_id": "nope3", "code": "m.user", "reason": ""}),
    );
    sync(&mut hs, &mut bob.machine).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    // The malformed key of an unknown flow is ignored; the done is answered; the cancel is not.
    assert_eq!(sent_cancels(&mut hs, &alice), vec!["m.unknown_transaction".to_owned()]);
    let _ = &mut alice;
}

#[test]
fn out_of_order_and_replayed_events_cancel_with_unexpected_message() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let (flow, _) = alice.machine.request_verification(&bob_id).unwrap();
    let flow = flow.as_str().to_owned();
    deliver(&mut hs, &mut alice, &mut bob);
    // A MAC before anything: wrong order.
    forge(&mut hs, &alice_id, &bob, "m.key.verification.mac", json!({"transaction_id": flow, "mac": {}, "keys": "x"}));
    sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(cancelled(&state(&bob, &alice, &flow)), Some((CancelCode::UnexpectedMessage, true)));
    assert_eq!(trust(&bob, &alice), LocalTrust::Unset);
    // A replayed request for the cancelled flow is ignored (no second cancel).
    run_requests(&mut hs, &mut bob.machine).unwrap();
    let before = sent_cancels(&mut hs, &alice).len();
    forge(
        &mut hs,
        &alice_id,
        &bob,
        "m.key.verification.request",
        json!({"transaction_id": flow, "from_device": "ALICEPHONE", "methods": ["m.sas.v1"], "timestamp": NOW}),
    );
    sync(&mut hs, &mut bob.machine).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(sent_cancels(&mut hs, &alice).len(), before);
}

#[test]
fn requests_expire_as_the_spec_says() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let alice_id = alice.machine.user_id().to_owned();
    let now = bob.clock.now_ms();
    let request = |txn: &str, ts: u64| json!({"transaction_id": txn, "from_device": "ALICEPHONE", "methods": ["m.sas.v1"], "timestamp": ts});
    forge(&mut hs, &alice_id, &bob, "m.key.verification.request", request("old", now - 10 * 60 * 1000));
    forge(&mut hs, &alice_id, &bob, "m.key.verification.request", request("future", now + 5 * 60 * 1000 + 1));
    forge(&mut hs, &alice_id, &bob, "m.key.verification.request", request("fresh", now - 60 * 1000));
    let got = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(got.verifications.len(), 1, "only the fresh request is shown: {:?}", got.verifications);
    assert!(bob.machine.verification(&alice_id, "old").is_none());
    assert!(bob.machine.verification(&alice_id, "future").is_none());
    // Shown 2 minutes after receipt at most.
    bob.clock.advance_ms(2 * 60 * 1000);
    let list = bob.machine.verifications().unwrap();
    assert_eq!(cancelled(&list[0].state), Some((CancelCode::Timeout, true)));
    // Expiring an unanswered request sends nothing.
    assert!(bob.machine.outgoing_requests().unwrap().is_empty());
    let _ = &mut alice;
}

#[test]
fn an_engaged_flow_times_out_with_m_timeout() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let (flow, _) = alice.machine.request_verification(&bob_id).unwrap();
    let flow = flow.as_str().to_owned();
    deliver(&mut hs, &mut alice, &mut bob);
    bob.machine.accept_verification(&alice_id, &flow).unwrap();
    deliver(&mut hs, &mut bob, &mut alice);
    alice.clock.advance_ms(10 * 60 * 1000);
    alice.machine.verifications().unwrap();
    assert_eq!(cancelled(&state(&alice, &bob, &flow)), Some((CancelCode::Timeout, true)));
    deliver(&mut hs, &mut alice, &mut bob);
    assert_eq!(cancelled(&state(&bob, &alice, &flow)), Some((CancelCode::Timeout, false)));
}

/// In-room: the app passes room events in and sends the room messages it gets back.
#[test]
fn in_room_sas_verifies_both_devices() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let room: &RoomId = <&RoomId>::try_from("!dm:example.org").unwrap();
    let mut counter = 0u64;
    let mut event = |sender: &OwnedUserId, event_type: &str, content: &Value| {
        counter += 1;
        let json = json!({
            "type": event_type, "sender": sender, "content": content,
            "event_id": format!("$e{counter}:example.org"), "origin_server_ts": NOW + counter,
        });
        (format!("$e{counter}:example.org"), serde_json::from_value(json).unwrap())
    };
    let request = alice.machine.verification_request_content(&bob_id);
    let (flow, raw) = event(&alice_id, "m.room.message", &request);
    // Both see the request event (Alice its echo).
    alice.machine.receive_room_verification_event(room, &raw).unwrap();
    let got = bob.machine.receive_room_verification_event(room, &raw).unwrap();
    assert_eq!(got.updates[0].state, VerificationState::RequestReceived);
    assert!(matches!(got.updates[0].flow_id, FlowId::InRoom { .. }));
    let mut messages = bob.machine.accept_verification(&alice_id, &flow).unwrap().room_messages;
    messages.extend(bob.machine.start_sas(&alice_id, &flow).unwrap().room_messages);
    let mut pending: VecDeque<(OwnedUserId, Vec<RoomVerificationMessage>)> =
        VecDeque::from([(bob_id.clone(), messages)]);
    // Deliver room messages back and forth until quiet.
    let mut rounds = 0;
    let mut alice_accepted = false;
    while let Some((sender, messages)) = pending.pop_front() {
        rounds += 1;
        assert!(rounds < 40);
        for m in messages {
            let (_, raw) = event(&sender, &m.event_type, &m.content);
            let (to, other) = if sender == alice_id { (&mut bob, &alice_id) } else { (&mut alice, &bob_id) };
            let step = to.machine.receive_room_verification_event(room, &raw).unwrap();
            pending.push_back((to.machine.user_id().to_owned(), step.room_messages));
            let _ = other;
        }
        if !alice_accepted && state(&alice, &bob, &flow) == VerificationState::SasStartReceived {
            alice_accepted = true;
            pending.push_back((
                alice_id.clone(),
                alice.machine.accept_verification(&bob_id, &flow).unwrap().room_messages,
            ));
        }
    }
    let a = alice.machine.sas_display(&bob_id, &flow).expect("alice shows a SAS");
    assert_eq!(Some(a), bob.machine.sas_display(&alice_id, &flow));
    pending.push_back((alice_id.clone(), alice.machine.confirm_verification(&bob_id, &flow).unwrap().room_messages));
    pending.push_back((bob_id.clone(), bob.machine.confirm_verification(&alice_id, &flow).unwrap().room_messages));
    while let Some((sender, messages)) = pending.pop_front() {
        for m in messages {
            let (_, raw) = event(&sender, &m.event_type, &m.content);
            let to = if sender == alice_id { &mut bob } else { &mut alice };
            let step = to.machine.receive_room_verification_event(room, &raw).unwrap();
            pending.push_back((to.machine.user_id().to_owned(), step.room_messages));
        }
    }
    assert!(matches!(state(&alice, &bob, &flow), VerificationState::Done(_)));
    assert!(matches!(state(&bob, &alice, &flow), VerificationState::Done(_)));
    assert_eq!(trust(&alice, &bob), LocalTrust::Verified);
    assert_eq!(trust(&bob, &alice), LocalTrust::Verified);
}

/// A verification event sent encrypted over Olm reaches the verification layer too.
#[test]
fn olm_encrypted_verification_events_are_routed() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let bob_id = bob.machine.user_id().to_owned();
    assert_eq!(common::open_sessions(&mut hs, &mut alice, &[bob_id]), 1);
    let now = alice.clock.now_ms();
    let content = json!({"transaction_id": "olm-txn", "from_device": "ALICEPHONE",
                         "methods": ["m.sas.v1"], "timestamp": now});
    let got = common::send_olm(&mut hs, &mut alice, &mut bob, "m.key.verification.request", content);
    assert_eq!(common::decrypted(&got).len(), 1);
    assert_eq!(got.verifications.len(), 1);
    assert_eq!(got.verifications[0].state, VerificationState::RequestReceived);
    assert_eq!(got.verifications[0].flow_id, FlowId::ToDevice("olm-txn".into()));
}

/// A verification event over Olm whose `from_device` is not the device the Olm session
/// authenticated (Alice's phone speaking for a tablet she may not even have) is refused,
/// typed, and reaches no flow.
#[test]
fn an_olm_verification_event_speaking_for_another_device_is_refused() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    assert_eq!(common::open_sessions(&mut hs, &mut alice, &[bob_id]), 1);
    let now = alice.clock.now_ms();
    let content = json!({"transaction_id": "forged-txn", "from_device": "ALICETABLET",
                         "methods": ["m.sas.v1"], "timestamp": now});
    let got = common::send_olm(&mut hs, &mut alice, &mut bob, "m.key.verification.request", content);
    assert!(common::decrypted(&got).is_empty());
    assert_eq!(common::refusals(&got), [&ToDeviceError::Plaintext(PlaintextRejection::SenderDeviceMismatch)]);
    assert!(got.verifications.is_empty());
    assert!(bob.machine.verification(&alice_id, "forged-txn").is_none());
    let kinds: Vec<RequestKind> = bob.machine.outgoing_requests().unwrap().iter().map(|r| r.kind()).collect();
    assert!(!kinds.contains(&RequestKind::ToDevice), "nothing answered: {kinds:?}");
}

/// One of Bob's devices declines Alice's request before any accepted it: Alice's flow is
/// cancelled with Bob's code and Bob's other device is told the same, so it stops showing
/// the request; the device that declined hears the cancel and does not answer it.
#[test]
fn a_request_declined_by_one_device_is_withdrawn_from_the_others() {
    let (mut hs, mut alice, mut bob1, mut bob2, flow) = request_to_two_devices();
    let alice_id = alice.machine.user_id().to_owned();
    bob1.machine.cancel_verification(&alice_id, &flow).unwrap();
    let got = deliver(&mut hs, &mut bob1, &mut alice);
    assert_eq!(got.verifications.len(), 1);
    assert_eq!(cancelled(&state(&alice, &bob1, &flow)), Some((CancelCode::User, false)));
    let got = deliver(&mut hs, &mut alice, &mut bob2);
    assert_eq!(cancelled(&state(&bob2, &alice, &flow)), Some((CancelCode::User, false)));
    assert_eq!(got.verifications.len(), 1);
    // bob1 hears it too, and nobody answers a cancel.
    let got = sync(&mut hs, &mut bob1.machine).unwrap();
    assert!(got.verifications.is_empty(), "bob1's flow was already cancelled");
    assert_eq!(cancelled(&state(&bob1, &alice, &flow)), Some((CancelCode::User, true)));
    for device in [&mut bob1, &mut bob2] {
        let kinds: Vec<RequestKind> = device.machine.outgoing_requests().unwrap().iter().map(|r| r.kind()).collect();
        assert!(!kinds.contains(&RequestKind::ToDevice), "a cancel is never answered: {kinds:?}");
    }
}

#[test]
fn sas_between_cross_signed_users_verifies_their_identities_and_uploads_the_signatures() {
    use ferrolm_machine::IdentityState;
    use ferrolm_test_homeserver::driver::bootstrap_cross_signing;
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    for d in [&mut alice, &mut bob] {
        bootstrap_cross_signing(&mut hs, &mut d.machine, false).unwrap();
    }
    for d in [&mut alice, &mut bob] {
        d.settle(&mut hs, 2).unwrap();
    }
    let (alice_id, bob_id) = (alice.machine.user_id().to_owned(), bob.machine.user_id().to_owned());
    let master = |d: &TestDevice, of: &OwnedUserId| d.machine.user_identity(of).unwrap().expect("identity").master_key;
    let (alice_master, bob_master) = (master(&bob, &alice_id), master(&alice, &bob_id));
    assert_eq!(alice.machine.user_identity(&bob_id).unwrap().unwrap().state, IdentityState::Pinned);
    assert!(!alice.machine.is_device_verified(&bob_id, bob.machine.device_id()).unwrap());

    let flow = to_sas(&mut hs, &mut alice, &mut bob);
    alice.machine.confirm_verification(&bob_id, &flow).unwrap();
    deliver(&mut hs, &mut alice, &mut bob);
    let step = bob.machine.confirm_verification(&alice_id, &flow).unwrap();
    assert_eq!(step.verified[0].verified_master_key, Some(alice_master), "the MACs covered Alice's master key");
    let got = deliver(&mut hs, &mut bob, &mut alice);
    assert_eq!(got.verified[0].verified_master_key, Some(bob_master));
    deliver(&mut hs, &mut alice, &mut bob);

    // Each identity is verified, and each side's signature of the other's master key (its
    // user-signing key) was uploaded and accepted, so the other's devices are verified
    // through the chain, not only locally.
    assert_eq!(alice.machine.user_identity(&bob_id).unwrap().unwrap().state, IdentityState::Verified);
    assert_eq!(bob.machine.user_identity(&alice_id).unwrap().unwrap().state, IdentityState::Verified);
    for d in [&mut alice, &mut bob] {
        let outcomes = run_requests(&mut hs, &mut d.machine).unwrap();
        assert!(outcomes.iter().all(|o| o.signature_failures.is_empty()), "{outcomes:?}");
    }
    let trust = alice.machine.device_trust(&bob_id, bob.machine.device_id()).unwrap().unwrap();
    assert!(trust.cross_signed && trust.is_verified(), "{trust:?}");
    let served = hs.query_keys({
        let mut request = ferrolm_machine::ruma::api::client::keys::get_keys::v3::Request::new();
        request.device_keys.insert(bob_id.clone(), vec![]);
        request
    });
    let served = serde_json::to_value(&served.unwrap().master_keys[&bob_id]).unwrap();
    assert!(!served["signatures"][alice_id.as_str()].as_object().unwrap().is_empty(), "Alice's signature is served");
}
