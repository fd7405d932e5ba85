//! Key requests and forwarded room keys between own devices, through the test homeserver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{id, meet, open_sessions, user};
use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedRoomId, device_id};
use ferrolm_machine::{
    EncryptionSettings, ForwardedKeyRejection, KeyRequestRefusal, LocalTrust, RoomKeyOutcome, RoomKeyRejection,
    TrustRequirement, UnableToDecrypt, VerificationState,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync};
use serde_json::json;

struct World {
    hs: Homeserver,
    room: OwnedRoomId,
    alice1: TestDevice,
    alice2: TestDevice,
    bob: TestDevice,
    /// Bob's message, sent before ALICE2 existed.
    message: Raw<AnySyncTimelineEvent>,
    session_id: String,
}

/// Bob writes to a room while Alice has one device; then Alice logs in a second one, and her
/// two devices open Olm sessions with each other.
fn world() -> World {
    let mut hs = Homeserver::new();
    let mut alice1 = TestDevice::new(&mut hs, "@alice:test.server", "ALICE1", 1, 1_000_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000_000).unwrap();
    let room = meet(&mut hs, &mut [&mut alice1, &mut bob]);
    let members = hs.members(&room);
    let claim = bob.machine.get_missing_sessions(&members).unwrap().unwrap();
    send(&mut hs, &mut bob.machine, &claim).unwrap();
    let shared = bob.machine.share_room_key(&room, &members, EncryptionSettings::default()).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    let content = bob.machine.encrypt_room_event(&room, "m.room.message", &json!({"body": "early"})).unwrap();
    hs.send_room_event(&room, bob.machine.user_id(), "m.room.encrypted", content).unwrap();
    sync(&mut hs, &mut alice1.machine).unwrap();

    let mut alice2 = TestDevice::new(&mut hs, "@alice:test.server", "ALICE2", 3, 1_000_000).unwrap();
    alice2.machine.update_tracked_users(&members).unwrap();
    alice2.settle(&mut hs, 1).unwrap();
    alice1.settle(&mut hs, 1).unwrap();
    sync(&mut hs, &mut alice2.machine).unwrap();
    open_sessions(&mut hs, &mut alice2, &[user(&alice1)]);
    // ALICE2 writes once so ALICE1 has the session too.
    alice2.machine.encrypt_to_device(&[id(&alice1)], "org.example.hello", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice2.machine).unwrap();
    sync(&mut hs, &mut alice1.machine).unwrap();
    // Bob's early message, as ALICE2 sees it in the room's history.
    let message = hs_room_history(&mut hs, &room);
    World { hs, room, alice1, alice2, bob, message, session_id: shared.session_id }
}

/// The room's first event, read by a fresh device's initial sync.
fn hs_room_history(hs: &mut Homeserver, room: &OwnedRoomId) -> Raw<AnySyncTimelineEvent> {
    let reader = ferrolm_machine::ruma::OwnedUserId::try_from("@alice:test.server").unwrap();
    hs.login(&reader, device_id!("READER"));
    let sync = hs.sync(&reader, device_id!("READER"), None).unwrap();
    sync.rooms.join[room].timeline.events[0].clone()
}

fn verify_each_other(w: &mut World) {
    w.alice1.machine.set_local_trust(&user(&w.alice2), device_id!("ALICE2"), LocalTrust::Verified).unwrap();
    w.alice2.machine.set_local_trust(&user(&w.alice1), device_id!("ALICE1"), LocalTrust::Verified).unwrap();
}

#[test]
fn a_verified_own_device_forwards_a_requested_key() {
    let mut w = world();
    verify_each_other(&mut w);
    let utd = w.alice2.machine.decrypt_room_event(&w.message, &w.room, TrustRequirement::Untrusted).unwrap();
    assert_eq!(utd.unwrap_err(), UnableToDecrypt::MissingSession { withheld: None });

    let request_id = w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().unwrap();
    assert!(w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().is_none(), "once");
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.key_requests.len(), 1);
    assert_eq!(outcome.key_requests[0].request_id, request_id);
    assert_eq!(outcome.key_requests[0].result, Ok(()));
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();

    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    let [RoomKeyOutcome::Accepted(info)] = outcome.room_keys.as_slice() else { panic!("{outcome:#?}") };
    assert_eq!(info.session_id, w.session_id);
    assert_eq!(info.sender_key, w.bob.machine.identity_keys().curve25519, "the original sender's key");
    let decrypted =
        w.alice2.machine.decrypt_room_event(&w.message, &w.room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(decrypted.content["body"], "early");
    assert!(decrypted.encryption.forwarded);
    assert_eq!(decrypted.encryption.verification, VerificationState::NotFromOriginalSender);
    // Answered: the request is gone (a new one may be made), and was cancelled at ALICE1.
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert!(outcome.key_requests.is_empty(), "a cancellation needs no answer");
    assert!(w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().is_some());
}

/// ALICE1 sets up cross-signing; ALICE2 gets the private keys (its own identity is trusted)
/// and is signed by ALICE1's self-signing key: each is verified for the other through the
/// chain, with no local trust set anywhere.
fn cross_sign_each_other(w: &mut World) {
    use ferrolm_test_homeserver::driver::bootstrap_cross_signing;
    bootstrap_cross_signing(&mut w.hs, &mut w.alice1.machine, false).unwrap();
    for _ in 0..2 {
        w.alice2.settle(&mut w.hs, 1).unwrap();
        w.alice1.settle(&mut w.hs, 1).unwrap();
    }
    let export = w.alice1.machine.export_cross_signing_keys().unwrap();
    w.alice2.machine.import_cross_signing_keys(&export).unwrap();
    let (alice, key) = (user(&w.alice2), w.alice2.machine.identity_keys().ed25519);
    let upload = w.alice1.machine.verify_device(&alice, device_id!("ALICE2"), &key).unwrap().unwrap();
    send(&mut w.hs, &mut w.alice1.machine, &upload).unwrap();
    w.alice1.machine.set_local_trust(&alice, device_id!("ALICE2"), LocalTrust::Unset).unwrap();
    for _ in 0..2 {
        w.alice1.settle(&mut w.hs, 1).unwrap();
        w.alice2.settle(&mut w.hs, 1).unwrap();
    }
    for (d, other) in [(&w.alice1, "ALICE2"), (&w.alice2, "ALICE1")] {
        let trust = d.machine.device_trust(&alice, other.into()).unwrap().unwrap();
        assert!(trust.cross_signed && trust.local_trust == LocalTrust::Unset && trust.is_verified(), "{trust:?}");
    }
}

#[test]
fn cross_signed_own_devices_forward_keys_without_local_trust() {
    let mut w = world();
    cross_sign_each_other(&mut w);
    w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.key_requests[0].result, Ok(()), "{outcome:#?}");
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert!(matches!(outcome.room_keys.as_slice(), [RoomKeyOutcome::Accepted(_)]), "{outcome:#?}");
    // Blacklisting overrides the chain.
    w.alice1.machine.set_local_trust(&user(&w.alice2), device_id!("ALICE2"), LocalTrust::Blacklisted).unwrap();
    w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.key_requests[0].result, Err(KeyRequestRefusal::UnverifiedDevice));
}

#[test]
fn rule_requests_are_answered_for_verified_own_devices_only() {
    let mut w = world();
    // Not verified yet.
    w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.key_requests[0].result, Err(KeyRequestRefusal::UnverifiedDevice));
    let nothing_forwarded = |d: &mut TestDevice| {
        let requests = d.machine.outgoing_requests().unwrap();
        assert!(common::of_kind(&requests, ferrolm_machine::RequestKind::ToDevice).is_empty(), "{requests:?}");
    };
    nothing_forwarded(&mut w.alice1);

    // Another user asking: refused even though Bob's device is known.
    let content = json!({
        "action": "request", "request_id": "bobs", "requesting_device_id": "BOB",
        "body": {"algorithm": "m.megolm.v1.aes-sha2", "room_id": w.room, "session_id": w.session_id},
    });
    w.hs.forge_to_device(
        &user(&w.alice1),
        device_id!("ALICE1"),
        json!({"type": "m.room_key_request", "sender": user(&w.bob), "content": content}),
    );
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.key_requests[0].result, Err(KeyRequestRefusal::OtherUser));
    nothing_forwarded(&mut w.alice1);
}

#[test]
fn rule_forwarded_keys_only_from_verified_own_devices_and_only_when_requested() {
    let mut w = world();
    verify_each_other(&mut w);
    let stored =
        w.alice1.machine.store().inbound_group_session(&w.room.as_str().into(), &w.session_id).unwrap().unwrap();
    let exported = stored.session.export_at_first_known_index().to_base64();
    let forwarded = json!({
        "algorithm": "m.megolm.v1.aes-sha2", "room_id": w.room, "session_id": w.session_id,
        "sender_key": w.bob.machine.identity_keys().curve25519.to_base64(),
        "session_key": exported.as_str(),
        "sender_claimed_ed25519_key": w.bob.machine.identity_keys().ed25519.to_base64(),
        "forwarding_curve25519_key_chain": [],
    });
    let refused = |outcome: &ferrolm_machine::SyncOutcome| match outcome.room_keys.as_slice() {
        [RoomKeyOutcome::Refused { reason: RoomKeyRejection::Forwarded(reason), .. }] => reason.clone(),
        _ => panic!("{outcome:#?}"),
    };

    // Not requested.
    w.alice1.machine.encrypt_to_device(&[id(&w.alice2)], "m.forwarded_room_key", &forwarded).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(refused(&sync(&mut w.hs, &mut w.alice2.machine).unwrap()), ForwardedKeyRejection::NotRequested);

    // Requested, but forwarded by another user (Bob, who has a session with ALICE2) who claims
    // the session is someone else's (ALICE1's): only a session's creator may re-send it.
    w.alice2.machine.request_room_key(&w.room, &w.session_id).unwrap().unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    w.bob.settle(&mut w.hs, 1).unwrap(); // Bob learns of ALICE2
    open_sessions(&mut w.hs, &mut w.bob, &[user(&w.alice2)]);
    let mut not_his = forwarded.clone();
    not_his["sender_key"] = json!(w.alice1.machine.identity_keys().curve25519.to_base64());
    not_his["sender_claimed_ed25519_key"] = json!(w.alice1.machine.identity_keys().ed25519.to_base64());
    w.bob.machine.encrypt_to_device(&[id(&w.alice2)], "m.forwarded_room_key", &not_his).unwrap();
    run_requests(&mut w.hs, &mut w.bob.machine).unwrap();
    assert_eq!(refused(&sync(&mut w.hs, &mut w.alice2.machine).unwrap()), ForwardedKeyRejection::OtherUser);

    // Requested, from an own device ALICE2 has not verified.
    w.alice2.machine.set_local_trust(&user(&w.alice1), device_id!("ALICE1"), LocalTrust::Unset).unwrap();
    w.alice1.machine.encrypt_to_device(&[id(&w.alice2)], "m.forwarded_room_key", &forwarded).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(refused(&sync(&mut w.hs, &mut w.alice2.machine).unwrap()), ForwardedKeyRejection::UnverifiedDevice);
    let utd = w.alice2.machine.decrypt_room_event(&w.message, &w.room, TrustRequirement::Untrusted).unwrap();
    assert!(matches!(utd, Err(UnableToDecrypt::MissingSession { .. })));

    // Verified and requested: accepted.
    w.alice2.machine.set_local_trust(&user(&w.alice1), device_id!("ALICE1"), LocalTrust::Verified).unwrap();
    w.alice1.machine.encrypt_to_device(&[id(&w.alice2)], "m.forwarded_room_key", &forwarded).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert!(matches!(outcome.room_keys.as_slice(), [RoomKeyOutcome::Accepted(_)]), "{outcome:#?}");
}

#[test]
fn a_room_key_lost_to_a_wedged_session_is_requested_again_from_its_sender() {
    const HOUR: u64 = ferrolm_machine::olm_channel::WEDGE_RECOVERY_INTERVAL_MS;
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000_000).unwrap();
    let room = meet(&mut hs, &mut [&mut alice, &mut bob]);
    let members = hs.members(&room);
    open_sessions(&mut hs, &mut alice, &[user(&bob)]);
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example.hello", &json!({})).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap();
    sync(&mut hs, &mut bob.machine).unwrap();
    // Bob answers, so Alice's next messages are normal (not pre-key) Olm messages.
    bob.machine.encrypt_to_device(&[id(&alice)], "org.example.hello", &json!({})).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    sync(&mut hs, &mut alice.machine).unwrap();

    // An hour later the Olm message carrying Alice's room key is lost to a broken session.
    alice.clock.advance_ms(HOUR);
    bob.clock.advance_ms(HOUR);
    let shared = alice.machine.share_room_key(&room, &members, EncryptionSettings::default()).unwrap();
    assert_eq!(shared.shared_with, vec![id(&bob)]);
    run_requests(&mut hs, &mut alice.machine).unwrap();
    common::break_last_message(&mut hs, &bob);
    let content = alice.machine.encrypt_room_event(&room, "m.room.message", &json!({"body": "lost"})).unwrap();
    hs.send_room_event(&room, alice.machine.user_id(), "m.room.encrypted", content).unwrap();
    let (outcome, timeline) = ferrolm_test_homeserver::driver::sync_with_timelines(&mut hs, &mut bob.machine).unwrap();
    assert!(outcome.room_keys.is_empty());
    let event = timeline[&room].last().unwrap().clone();
    let utd = bob.machine.decrypt_room_event(&event, &room, TrustRequirement::Untrusted).unwrap();
    assert_eq!(utd.unwrap_err(), UnableToDecrypt::MissingSession { withheld: None });

    // The key is requested once the recovery's m.dummy is queued, not before: the answer must
    // come over the new session.
    let requests = bob.machine.outgoing_requests().unwrap();
    assert!(common::of_kind(&requests, ferrolm_machine::RequestKind::ToDevice).is_empty(), "{requests:?}");
    let claim = common::only(&requests, ferrolm_machine::RequestKind::KeysClaim).clone();
    send(&mut hs, &mut bob.machine, &claim).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    // (The queue still holds what Alice's last sync delivered: the server drops it on her next.)
    let queued: Vec<(String, Option<u64>)> = hs
        .to_device_queue(&user(&alice), alice.machine.device_id())
        .unwrap()
        .iter()
        .map(|q| {
            let own_key = alice.machine.identity_keys().curve25519.to_base64();
            (q.event["type"].as_str().unwrap().to_owned(), q.event["content"]["ciphertext"][&own_key]["type"].as_u64())
        })
        .collect();
    let new = &queued[queued.len() - 2..];
    assert_eq!(
        new,
        [("m.room.encrypted".to_owned(), Some(0)), ("m.room_key_request".to_owned(), None)],
        "the m.dummy (a pre-key message of the new session) first, then the request"
    );

    // Alice, the session's creator, answers Bob's device (another user's) from the index it
    // got, over the new session; Bob stores it as from its sender and reads the message.
    let outcome = sync(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(outcome.key_requests.len(), 1, "{outcome:#?}");
    assert_eq!(outcome.key_requests[0].result, Ok(()));
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    let [RoomKeyOutcome::Accepted(info)] = outcome.room_keys.as_slice() else { panic!("{outcome:#?}") };
    assert_eq!((info.session_id.as_str(), info.first_known_index), (shared.session_id.as_str(), 0));
    let decrypted = bob.machine.decrypt_room_event(&event, &room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(decrypted.content["body"], "lost");
    assert!(!decrypted.encryption.forwarded, "re-sent by its creator, over Olm from the device it names");

    // A device the session was never shared with (Mallory's) asks Alice: refused.
    let mut mallory = TestDevice::new(&mut hs, "@mallory:test.server", "MALLORY", 3, 1_000_000 + HOUR).unwrap();
    hs.join(&room, mallory.machine.user_id());
    mallory.settle(&mut hs, 1).unwrap();
    alice.machine.update_tracked_users(&hs.members(&room)).unwrap();
    alice.settle(&mut hs, 1).unwrap();
    let content = json!({
        "action": "request", "request_id": "mallorys", "requesting_device_id": "MALLORY",
        "body": {"algorithm": "m.megolm.v1.aes-sha2", "room_id": room, "session_id": shared.session_id},
    });
    hs.forge_to_device(
        &user(&alice),
        alice.machine.device_id(),
        json!({"type": "m.room_key_request", "sender": user(&mallory), "content": content}),
    );
    let outcome = sync(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(outcome.key_requests[0].result, Err(KeyRequestRefusal::OtherUser));
}
