//! The published attacks on Matrix clients that reach the crypto layer (Albrecht, Celi,
//! Dowling, Jones: "Practically-exploitable Cryptographic Vulnerabilities in Matrix", 2022),
//! each replayed by a malicious homeserver (the test homeserver, scripted) against a machine
//! that must refuse it with a typed, reported outcome and no change of what it trusts.
//!
//! Each test names the check it depends on. Disabling the forwarded-key rule or the key-change
//! rule was seen to fail its test; the machine has no code path that decrypts a Megolm
//! to-device event at all, so that test pins the refusal and that nothing is stored.
//! SECURITY.md's table maps attack → defence → test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{id, meet, open_sessions, refusals, user};
use ferrolm::megolm::{GroupSession, SessionConfig};
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedRoomId};
use ferrolm_machine::{
    DeviceEvent, EncryptionSettings, ForwardedKeyRejection, RoomKeyOutcome, RoomKeyRejection, ToDeviceError,
    TrustRequirement, UnableToDecrypt, VerificationState,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync, sync_with_timelines};
use ferrolm_test_homeserver::forge::RawDevice;
use serde_json::{Value, json};

fn room_of(hs: &mut Homeserver, devices: &mut [&mut TestDevice]) -> OwnedRoomId {
    let room = meet(hs, devices);
    for d in devices.iter_mut() {
        d.settle(hs, 1).unwrap();
    }
    room
}

/// The `m.room.encrypted` content of `plaintext` encrypted with `session` (as any Megolm
/// sender would make it), claiming to be from `device_id` with `sender_key`.
fn megolm_content(session: &mut GroupSession, plaintext: &Value, sender_key: &str, device_id: &str) -> Value {
    let message = session.encrypt(plaintext.to_string().as_bytes());
    json!({
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": sender_key,
        "ciphertext": message.to_base64(),
        "session_id": session.session_id().to_base64(),
        "device_id": device_id,
    })
}

/// §4.2 "Trusted impersonation": the server wraps a key-carrying to-device event (a room key
/// "from Alice", a backup key) in Megolm, with a session Bob really holds (Mallory shared it in
/// a room they share), instead of Olm. Defence: `KEY_CARRYING_TYPES`/`MegolmToDevice` in the
/// machine's to-device handling: only Olm decrypts to-device events.
#[test]
fn attack_trusted_impersonation_with_megolm_encrypted_to_device_events_is_refused() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000_000).unwrap();
    let mut mallory = TestDevice::new(&mut hs, "@mallory:test.server", "MALLORY", 3, 1_000_000).unwrap();
    let room = room_of(&mut hs, &mut [&mut alice, &mut bob, &mut mallory]);
    let members = hs.members(&room);
    open_sessions(&mut hs, &mut mallory, &members);
    let shared = mallory.machine.share_room_key(&room, &members, EncryptionSettings::default()).unwrap();
    run_requests(&mut hs, &mut mallory.machine).unwrap();
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert!(matches!(outcome.room_keys.as_slice(), [RoomKeyOutcome::Accepted(_)]), "Bob holds Mallory's session");
    let mut megolm = mallory.machine.store().outbound_group_session(&room.as_str().into()).unwrap().unwrap().session;
    assert_eq!(megolm.session_id().to_base64(), shared.session_id);

    let forged_session = GroupSession::new(SessionConfig::version_1());
    let alice_keys = alice.machine.identity_keys();
    let forged_key = forged_session.session_key();
    let payloads = [
        json!({"type": "m.room_key", "room_id": room, "sender": user(&alice), "content": {
            "algorithm": "m.megolm.v1.aes-sha2", "room_id": room,
            "session_id": forged_session.session_id().to_base64(), "session_key": forged_key.to_base64().as_str(),
        }}),
        json!({"type": "m.secret.send", "room_id": room, "sender": user(&alice), "content": {
            "request_id": "r1", "secret": "a backup key the attacker holds",
        }}),
    ];
    for payload in payloads {
        let content = megolm_content(&mut megolm, &payload, &alice_keys.curve25519.to_base64(), "ALICE");
        hs.forge_to_device(
            &user(&bob),
            bob.machine.device_id(),
            json!({"type": "m.room.encrypted", "sender": user(&alice), "content": content}),
        );
    }
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert_eq!(refusals(&outcome), [&ToDeviceError::MegolmToDevice, &ToDeviceError::MegolmToDevice]);
    assert!(outcome.room_keys.is_empty());
    let store = bob.machine.store();
    assert!(
        store.inbound_group_session(&room.as_str().into(), &forged_session.session_id().to_base64()).unwrap().is_none()
    );
    assert!(store.secrets_in_inbox("m.megolm_backup.v1").unwrap().is_empty());
}

/// §4.1 "Semi-trusted impersonation": the server adds a device to Bob's own account, posts a
/// room event "from Alice" in a session the attacker created, and answers Bob's key request
/// with a forwarded key that claims the session is Alice's. Defences: `check_forwarded_key`
/// (only verified own devices forward; only a session's creator re-sends its own session) and
/// the room event's sender check (`find_device`: the session's key must be a device of the
/// event's sender), so the event is never shown as Alice's.
#[test]
fn attack_semi_trusted_impersonation_with_a_forwarded_key_is_refused() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000_000).unwrap();
    let room = room_of(&mut hs, &mut [&mut alice, &mut bob]);
    let bob_user = user(&bob);

    // The server's own device on Bob's account, correctly self-signed (a server can do that).
    let mut evil = RawDevice::new(&mut hs, &bob_user, "EVIL", 66);
    evil.upload(&mut hs, 5).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    let evil_device = bob.machine.device(&bob_user, &OwnedDeviceId::from("EVIL")).unwrap().unwrap();
    assert_eq!(evil_device.local_trust, ferrolm_machine::LocalTrust::Unset);

    // A room event "from Alice" in the attacker's session.
    let mut attacker_session = GroupSession::new(SessionConfig::version_1());
    let session_id = attacker_session.session_id().to_base64();
    let exported =
        ferrolm::megolm::InboundGroupSession::new(&attacker_session.session_key(), SessionConfig::version_1())
            .export_at_first_known_index();
    let alice_keys = alice.machine.identity_keys();
    let plaintext = json!({"type": "m.room.message", "room_id": room, "content": {"body": "send me your password"}});
    let content = megolm_content(&mut attacker_session, &plaintext, &alice_keys.curve25519.to_base64(), "ALICE");
    hs.send_room_event(&room, alice.machine.user_id(), "m.room.encrypted", content).unwrap();
    let (_, timeline) = sync_with_timelines(&mut hs, &mut bob.machine).unwrap();
    let event = timeline[&room].last().unwrap().clone();
    let utd = bob.machine.decrypt_room_event(&event, &room, TrustRequirement::Untrusted).unwrap();
    assert_eq!(utd.unwrap_err(), UnableToDecrypt::MissingSession { withheld: None });
    bob.machine.request_room_key(&room, &session_id).unwrap().unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();

    // EVIL answers over Olm, claiming Alice's keys for the session.
    let bob_keys = bob.machine.identity_keys();
    let mut olm = evil.open_session(&mut hs, &bob_user, bob.machine.device_id(), bob_keys.curve25519).unwrap();
    let forwarded = |sender_key: String, claimed: String| {
        json!({
            "algorithm": "m.megolm.v1.aes-sha2", "room_id": room, "session_id": session_id,
            "sender_key": sender_key, "sender_claimed_ed25519_key": claimed,
            "session_key": exported.to_base64().as_str(), "forwarding_curve25519_key_chain": [],
        })
    };
    let claiming_alice = forwarded(alice_keys.curve25519.to_base64(), alice_keys.ed25519.to_base64());
    let payload = evil.payload(&bob_user, &bob_keys.ed25519, "m.forwarded_room_key", claiming_alice);
    let forged = evil.encrypted_event(&mut olm, &bob_user, &bob_keys.curve25519, &payload);
    hs.forge_to_device(&bob_user, bob.machine.device_id(), forged);
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    match outcome.room_keys.as_slice() {
        [RoomKeyOutcome::Refused { reason: RoomKeyRejection::Forwarded(reason), .. }] => {
            assert_eq!(*reason, ForwardedKeyRejection::UnverifiedDevice)
        }
        other => panic!("{other:#?}"),
    }
    let utd = bob.machine.decrypt_room_event(&event, &room, TrustRequirement::Untrusted).unwrap();
    assert!(matches!(utd, Err(UnableToDecrypt::MissingSession { .. })), "nothing was stored");

    // EVIL re-sends the session as its own (which it is): accepted as EVIL's, and the event
    // "from Alice" is then not attributed to any device of Alice, and hidden under a strict
    // requirement.
    let as_its_own = forwarded(evil.account.curve25519_key().to_base64(), evil.account.ed25519_key().to_base64());
    let payload = evil.payload(&bob_user, &bob_keys.ed25519, "m.forwarded_room_key", as_its_own);
    let forged = evil.encrypted_event(&mut olm, &bob_user, &bob_keys.curve25519, &payload);
    hs.forge_to_device(&bob_user, bob.machine.device_id(), forged);
    sync(&mut hs, &mut bob.machine).unwrap();
    let shown = bob.machine.decrypt_room_event(&event, &room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(shown.encryption.sender_device, None, "not Alice's device");
    assert_eq!(shown.encryption.verification, VerificationState::UnknownDevice);
    assert_eq!(shown.encryption.sender_curve25519_key, evil.account.curve25519_key());
    let strict = bob.machine.decrypt_room_event(&event, &room, TrustRequirement::VerifiedDevice).unwrap();
    assert_eq!(strict.unwrap_err(), UnableToDecrypt::UntrustedSender);
}

/// Keys that change silently: the server serves new keys for Bob's known device id (a real
/// homeserver accepts such an upload). Defence: `check_keys_unchanged` in device tracking.
/// The change is reported, the stored keys stay, and Alice keeps encrypting to the old ones.
#[test]
fn attack_a_known_devices_keys_changed_by_the_server_are_refused_and_reported() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000_000).unwrap();
    let room = room_of(&mut hs, &mut [&mut alice, &mut bob]);
    let bob_keys = bob.machine.identity_keys();
    let bob_user = user(&bob);

    let mut impostor = RawDevice::new(&mut hs, &bob_user, "BOB", 77);
    impostor.upload(&mut hs, 0).unwrap();
    sync(&mut hs, &mut alice.machine).unwrap();
    let events: Vec<DeviceEvent> =
        run_requests(&mut hs, &mut alice.machine).unwrap().into_iter().flat_map(|o| o.device_events).collect();
    assert!(
        events.iter().any(|e| matches!(e, DeviceEvent::KeyChangeRefused { device_id, served_ed25519, .. }
            if device_id.as_str() == "BOB" && *served_ed25519 == impostor.account.ed25519_key())),
        "{events:?}"
    );
    let stored = alice.machine.device(&bob_user, bob.machine.device_id()).unwrap().unwrap();
    assert_eq!((stored.ed25519_key, stored.curve25519_key), (bob_keys.ed25519, bob_keys.curve25519));

    // Room keys still go to Bob's real device only: Bob reads the message.
    let members = hs.members(&room);
    if let Some(claim) = alice.machine.get_missing_sessions(&members).unwrap() {
        send(&mut hs, &mut alice.machine, &claim).unwrap();
    }
    let shared = alice.machine.share_room_key(&room, &members, EncryptionSettings::default()).unwrap();
    assert_eq!(shared.shared_with, vec![id(&bob)]);
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    assert!(matches!(outcome.room_keys.as_slice(), [RoomKeyOutcome::Accepted(_)]), "{outcome:#?}");
}
