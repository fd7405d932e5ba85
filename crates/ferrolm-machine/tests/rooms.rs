//! Room keys out and in, and room events, through the test homeserver: sharing, rotation,
//! withheld codes, the acceptance rules of incoming keys, and every unable-to-decrypt reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{id, meet, user};
use ferrolm::megolm::{GroupSession, SessionConfig};
use ferrolm::types::{base64_decode, base64_encode};
use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, device_id};
use ferrolm_machine::{
    DecryptedRoomEvent, EncryptionSettings, LocalTrust, MachineError, RoomKeyOutcome, RoomKeyRejection, RoomKeyShare,
    SharingStrategy, SyncOutcome, ToDeviceOutcome, TrustRequirement, UnableToDecrypt, VerificationState,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync, sync_with_timelines};
use ferrolm_test_homeserver::forge::RawDevice;
use serde_json::{Value, json};

struct Room {
    hs: Homeserver,
    id: OwnedRoomId,
}

/// Alice, and Bob on two devices, in one room, knowing each other's devices.
fn setup() -> (Room, TestDevice, TestDevice, TestDevice) {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap();
    let mut bob1 = TestDevice::new(&mut hs, "@bob:test.server", "BOB1", 2, 1_000_000).unwrap();
    let mut bob2 = TestDevice::new(&mut hs, "@bob:test.server", "BOB2", 3, 1_000_000).unwrap();
    let id = meet(&mut hs, &mut [&mut alice, &mut bob1, &mut bob2]);
    for d in [&mut alice, &mut bob1, &mut bob2] {
        d.settle(&mut hs, 1).unwrap();
    }
    (Room { hs, id }, alice, bob1, bob2)
}

/// The sender opens missing sessions, shares the room key, sends the requests.
fn share(room: &mut Room, sender: &mut TestDevice, settings: EncryptionSettings) -> RoomKeyShare {
    let members = room.hs.members(&room.id);
    if let Some(claim) = sender.machine.get_missing_sessions(&members).unwrap() {
        send(&mut room.hs, &mut sender.machine, &claim).unwrap();
    }
    let shared = sender.machine.share_room_key(&room.id, &members, settings).unwrap();
    run_requests(&mut room.hs, &mut sender.machine).unwrap();
    shared
}

/// Encrypts and sends a message; returns the event id.
fn say(room: &mut Room, sender: &mut TestDevice, body: &str) -> OwnedEventId {
    let content = sender.machine.encrypt_room_event(&room.id, "m.room.message", &json!({"body": body})).unwrap();
    room.hs.send_room_event(&room.id, sender.machine.user_id(), "m.room.encrypted", content).unwrap()
}

/// Syncs; returns the outcome and the room's new events.
fn read(room: &mut Room, device: &mut TestDevice) -> (SyncOutcome, Vec<Raw<AnySyncTimelineEvent>>) {
    let (outcome, mut timelines) = sync_with_timelines(&mut room.hs, &mut device.machine).unwrap();
    (outcome, timelines.remove(&room.id).unwrap_or_default())
}

fn decrypt(
    device: &mut TestDevice,
    event: &Raw<AnySyncTimelineEvent>,
    room: &RoomId,
) -> Result<DecryptedRoomEvent, UnableToDecrypt> {
    device.machine.decrypt_room_event(event, room, TrustRequirement::Untrusted).unwrap()
}

fn body(event: &DecryptedRoomEvent) -> &str {
    event.content["body"].as_str().unwrap()
}

fn accepted(outcome: &SyncOutcome) -> Vec<String> {
    outcome
        .room_keys
        .iter()
        .filter_map(|k| match k {
            RoomKeyOutcome::Accepted(info) => Some(info.session_id.clone()),
            RoomKeyOutcome::Refused { .. } => None,
        })
        .collect()
}

#[test]
fn a_room_key_reaches_every_device_and_messages_decrypt() {
    let (mut room, mut alice, mut bob1, mut bob2) = setup();
    let shared = share(&mut room, &mut alice, EncryptionSettings::default());
    assert!(shared.rotated);
    assert_eq!(shared.shared_with, vec![id(&bob1), id(&bob2)]);
    let event = say(&mut room, &mut alice, "hello");
    for bob in [&mut bob1, &mut bob2] {
        let (outcome, events) = read(&mut room, bob);
        assert_eq!(accepted(&outcome), vec![shared.session_id.clone()]);
        // The app sees the m.room_key event, not the key in it.
        let ToDeviceOutcome::Decrypted(key_event) = &outcome.to_device[0] else { panic!() };
        assert_eq!(key_event.content["session_key"], "<redacted>");
        let raw_event: Value = serde_json::from_str(key_event.event.json().get()).unwrap();
        assert_eq!(raw_event["content"]["session_key"], "<redacted>");
        assert_eq!(raw_event["content"]["session_id"], shared.session_id.as_str());
        let last = events.last().unwrap();
        let decrypted = decrypt(bob, last, &room.id).unwrap();
        assert_eq!(body(&decrypted), "hello");
        let info = &decrypted.encryption;
        assert_eq!(info.sender, user(&alice));
        assert_eq!(info.sender_device.as_deref(), Some(device_id!("ALICE")));
        assert_eq!(info.sender_curve25519_key, alice.machine.identity_keys().curve25519);
        assert_eq!(info.claimed_ed25519_key, Some(alice.machine.identity_keys().ed25519));
        assert_eq!(info.verification, VerificationState::Unverified);
        assert!(!info.forwarded);
        assert_eq!(info.session_id, shared.session_id);
        assert_eq!(info.message_index, 0);
        assert!(last.json().get().contains(event.as_str()));
    }
    // Alice reads her own message with the inbound copy she kept.
    let (_, events) = read(&mut room, &mut alice);
    let own = decrypt(&mut alice, events.last().unwrap(), &room.id).unwrap();
    assert_eq!(own.encryption.verification, VerificationState::Verified);
    // Bob answers over his own session.
    share(&mut room, &mut bob1, EncryptionSettings::default());
    say(&mut room, &mut bob1, "hi alice");
    let (outcome, events) = read(&mut room, &mut alice);
    assert_eq!(accepted(&outcome).len(), 1);
    assert_eq!(body(&decrypt(&mut alice, events.last().unwrap(), &room.id).unwrap()), "hi alice");
}

#[test]
fn encrypting_without_a_shared_key_is_an_error_not_a_panic() {
    let (mut room, mut alice, _, _) = setup();
    let result = alice.machine.encrypt_room_event(&room.id, "m.room.message", &json!({}));
    assert!(matches!(result, Err(MachineError::NoRoomKeyShared(_))));
    share(&mut room, &mut alice, EncryptionSettings::default());
    assert!(alice.machine.encrypt_room_event(&room.id, "m.room.message", &json!({})).is_ok());
}

#[test]
fn rule_the_key_rotates_after_its_message_count_and_after_a_week() {
    let (mut room, mut alice, mut bob1, _) = setup();
    let settings = EncryptionSettings { rotation_period_messages: 3, ..EncryptionSettings::default() };
    let first = share(&mut room, &mut alice, settings);
    for n in 0..3 {
        say(&mut room, &mut alice, &format!("m{n}"));
    }
    let result = alice.machine.encrypt_room_event(&room.id, "m.room.message", &json!({}));
    assert!(matches!(result, Err(MachineError::RoomKeyRotationDue(_))));
    let second = share(&mut room, &mut alice, settings);
    assert!(second.rotated);
    assert_ne!(second.session_id, first.session_id);
    // Sharing again without a reason to rotate keeps the session and sends nothing.
    let again = share(&mut room, &mut alice, settings);
    assert!(!again.rotated && again.shared_with.is_empty() && again.request_ids.is_empty());
    say(&mut room, &mut alice, "after rotation");
    let (_, events) = read(&mut room, &mut bob1);
    assert_eq!(body(&decrypt(&mut bob1, events.last().unwrap(), &room.id).unwrap()), "after rotation");

    // A week later.
    alice.clock.advance_ms(ferrolm_machine::room_keys_out::DEFAULT_ROTATION_PERIOD_MS);
    assert!(matches!(
        alice.machine.encrypt_room_event(&room.id, "m.room.message", &json!({})),
        Err(MachineError::RoomKeyRotationDue(_))
    ));
    assert!(share(&mut room, &mut alice, settings).rotated);
}

#[test]
fn rule_the_key_rotates_when_a_device_or_a_user_leaves() {
    let (mut room, mut alice, mut bob1, bob2) = setup();
    let mut carol = TestDevice::new(&mut room.hs, "@carol:test.server", "CAROL", 4, 1_000_000).unwrap();
    room.hs.join(&room.id, carol.machine.user_id());
    carol.settle(&mut room.hs, 1).unwrap();
    carol.machine.update_tracked_users(&room.hs.members(&room.id)).unwrap();
    carol.settle(&mut room.hs, 1).unwrap();
    alice.machine.update_tracked_users(&room.hs.members(&room.id)).unwrap();
    alice.settle(&mut room.hs, 1).unwrap();
    let first = share(&mut room, &mut alice, EncryptionSettings::default());
    assert_eq!(first.shared_with.len(), 3);

    // BOB2 is deleted.
    room.hs.delete_device(&user(&bob2), device_id!("BOB2"));
    alice.settle(&mut room.hs, 1).unwrap();
    let second = share(&mut room, &mut alice, EncryptionSettings::default());
    assert!(second.rotated);
    assert_eq!(second.shared_with, vec![id(&bob1), id(&carol)]);

    // Carol leaves the room.
    room.hs.leave(&room.id, carol.machine.user_id());
    let third = share(&mut room, &mut alice, EncryptionSettings::default());
    assert!(third.rotated);
    assert_eq!(third.shared_with, vec![id(&bob1)]);
    say(&mut room, &mut alice, "without carol");
    let (_, events) = read(&mut room, &mut carol);
    assert!(events.is_empty(), "carol is no longer in the room");
    let (_, events) = read(&mut room, &mut bob1);
    assert_eq!(body(&decrypt(&mut bob1, events.last().unwrap(), &room.id).unwrap()), "without carol");
    // Carol's old key does not open the new session.
    let (_, _) = read(&mut room, &mut carol);
    let last = events.last().unwrap().clone();
    assert_eq!(decrypt(&mut carol, &last, &room.id).unwrap_err(), UnableToDecrypt::MissingSession { withheld: None });
}

#[test]
fn a_new_device_gets_the_key_at_the_current_index_without_rotation() {
    let (mut room, mut alice, mut bob1, _) = setup();
    let first = share(&mut room, &mut alice, EncryptionSettings::default());
    say(&mut room, &mut alice, "before 0");
    say(&mut room, &mut alice, "before 1");
    let mut bob3 = TestDevice::new(&mut room.hs, "@bob:test.server", "BOB3", 5, 1_000_000).unwrap();
    bob3.machine.update_tracked_users(&room.hs.members(&room.id)).unwrap();
    bob3.settle(&mut room.hs, 1).unwrap();
    alice.settle(&mut room.hs, 1).unwrap();
    let second = share(&mut room, &mut alice, EncryptionSettings::default());
    assert!(!second.rotated);
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.shared_with, vec![id(&bob3)]);
    say(&mut room, &mut alice, "after");
    let (outcome, events) = read(&mut room, &mut bob3);
    let RoomKeyOutcome::Accepted(info) = &outcome.room_keys[0] else { panic!() };
    assert_eq!(info.first_known_index, 2);
    let last = events.last().unwrap();
    assert_eq!(body(&decrypt(&mut bob3, last, &room.id).unwrap()), "after");
    let (_, bob1_events) = read(&mut room, &mut bob1);
    let early = &bob1_events[bob1_events.len() - 3];
    assert_eq!(body(&decrypt(&mut bob1, early, &room.id).unwrap()), "before 0");
    assert_eq!(
        decrypt(&mut bob3, early, &room.id).unwrap_err(),
        UnableToDecrypt::UnknownMessageIndex { first_known_index: 2, message_index: 0 }
    );
}

#[test]
fn rule_the_key_rotates_when_the_settings_or_the_history_visibility_change() {
    let (mut room, mut alice, _, _) = setup();
    let defaults = EncryptionSettings::default();
    share(&mut room, &mut alice, defaults);
    assert!(!share(&mut room, &mut alice, defaults).rotated);
    assert!(share(&mut room, &mut alice, EncryptionSettings { shared_history: true, ..defaults }).rotated);
    assert!(!share(&mut room, &mut alice, EncryptionSettings { shared_history: true, ..defaults }).rotated);
    assert!(share(&mut room, &mut alice, EncryptionSettings { rotation_period_messages: 50, ..defaults }).rotated);
}

#[test]
fn rule_left_out_devices_get_withheld_codes() {
    let (mut room, mut alice, bob1, mut bob2) = setup();
    let first = share(&mut room, &mut alice, EncryptionSettings::default());
    read(&mut room, &mut bob2);

    // Blacklisting a device that holds the key rotates, and tells it why it is left out.
    alice.machine.set_local_trust(&user(&bob2), device_id!("BOB2"), LocalTrust::Blacklisted).unwrap();
    let second = share(&mut room, &mut alice, EncryptionSettings::default());
    assert!(second.rotated);
    assert_eq!(second.shared_with, vec![id(&bob1)]);
    assert_eq!(second.withheld, vec![(id(&bob2), "m.blacklisted".to_owned())]);
    say(&mut room, &mut alice, "not for bob2");
    let (outcome, events) = read(&mut room, &mut bob2);
    assert_eq!(outcome.withheld.len(), 1);
    assert_eq!(outcome.withheld[0].code, "m.blacklisted");
    assert_eq!(outcome.withheld[0].session_id.as_deref(), Some(second.session_id.as_str()));
    assert_eq!(
        decrypt(&mut bob2, events.last().unwrap(), &room.id).unwrap_err(),
        UnableToDecrypt::MissingSession { withheld: Some("m.blacklisted".into()) }
    );
    assert_ne!(first.session_id, second.session_id);

    // Only verified devices: BOB1 verified gets it, BOB2 (unverified) gets m.unverified.
    alice.machine.set_local_trust(&user(&bob2), device_id!("BOB2"), LocalTrust::Unset).unwrap();
    alice.machine.set_local_trust(&user(&bob1), device_id!("BOB1"), LocalTrust::Verified).unwrap();
    let settings =
        EncryptionSettings { strategy: SharingStrategy::OnlyVerifiedDevices, ..EncryptionSettings::default() };
    let third = share(&mut room, &mut alice, settings);
    assert!(third.rotated, "the settings changed");
    assert_eq!(third.shared_with, vec![id(&bob1)]);
    assert_eq!(third.withheld, vec![(id(&bob2), "m.unverified".to_owned())]);
    // Not told twice.
    let again = share(&mut room, &mut alice, settings);
    assert!(again.withheld.is_empty() && again.shared_with.is_empty());
    // BOB2 verified since: it gets the key of the same session, at the current index.
    say(&mut room, &mut alice, "one");
    alice.machine.set_local_trust(&user(&bob2), device_id!("BOB2"), LocalTrust::Verified).unwrap();
    let fourth = share(&mut room, &mut alice, settings);
    assert!(!fourth.rotated);
    assert_eq!(fourth.session_id, third.session_id);
    assert_eq!(fourth.shared_with, vec![id(&bob2)]);
    let (outcome, _) = read(&mut room, &mut bob2);
    let received: Vec<u32> = outcome
        .room_keys
        .iter()
        .filter_map(|k| match k {
            RoomKeyOutcome::Accepted(info) if info.session_id == third.session_id => Some(info.first_known_index),
            _ => None,
        })
        .collect();
    assert_eq!(received, vec![1]);
}

#[test]
fn rule_a_device_without_an_olm_session_gets_m_no_olm_once() {
    let (mut room, mut alice, bob1, mut bob2) = setup();
    let members = room.hs.members(&room.id);
    // Bob2's keys are all claimed, and no fallback key is left to claim either... simulate a
    // device whose claim fails: only Bob1 gets a session.
    let claim = alice.machine.get_missing_sessions(&[user(&bob1)]).unwrap().unwrap();
    room.hs.set_unreachable("test.server", true);
    let outcome = send(&mut room.hs, &mut alice.machine, &claim).unwrap();
    assert_eq!(outcome.failed_claims.len(), 2);
    room.hs.set_unreachable("test.server", false);
    let shared = alice.machine.share_room_key(&room.id, &members, EncryptionSettings::default()).unwrap();
    assert!(shared.shared_with.is_empty());
    assert_eq!(shared.withheld, vec![(id(&bob1), "m.no_olm".to_owned()), (id(&bob2), "m.no_olm".to_owned())]);
    run_requests(&mut room.hs, &mut alice.machine).unwrap();
    let (outcome, _) = read(&mut room, &mut bob2);
    assert_eq!(outcome.withheld[0].code, "m.no_olm");
    assert_eq!(outcome.withheld[0].room_id, None, "m.no_olm names no room or session");
    // Once per device, for every later session too, and after a restart from the store.
    let again = alice.machine.share_room_key(&room.id, &members, EncryptionSettings::default()).unwrap();
    assert!(again.withheld.is_empty());
    let bob2_record = |alice: &TestDevice| alice.machine.device(&user(&bob2), bob2.machine.device_id()).unwrap();
    assert!(bob2_record(&alice).unwrap().no_olm_sent, "remembered in the device's record");
    let mut alice = alice.restart(11).unwrap();
    let rotated = EncryptionSettings { rotation_period_messages: 1, ..EncryptionSettings::default() };
    let after_restart = alice.machine.share_room_key(&room.id, &members, rotated).unwrap();
    assert!(after_restart.withheld.is_empty(), "{after_restart:?}");
    // Once a session exists, the key follows, and the flag is cleared: a later loss of every
    // session is reported again.
    alice.clock.advance_ms(ferrolm_machine::olm_channel::CLAIM_BACKOFF_INITIAL_MS);
    let shared = share(&mut room, &mut alice, EncryptionSettings::default());
    assert_eq!(shared.shared_with, vec![id(&bob1), id(&bob2)]);
    assert!(!bob2_record(&alice).unwrap().no_olm_sent);
}

#[test]
fn rule_room_keys_only_improve_and_only_from_their_sender() {
    let (mut room, mut alice, mut bob1, _) = setup();
    let shared = share(&mut room, &mut alice, EncryptionSettings::default());
    let (outcome, _) = read(&mut room, &mut bob1);
    assert_eq!(accepted(&outcome), vec![shared.session_id.clone()]);

    // Eve (a known device of another user) re-sends Alice's session, from a later index.
    let mut eve = forger(&mut room, &mut bob1, "@eve:test.server", 21);
    let outbound = alice.machine.store().outbound_group_session(&room.id.as_str().into()).unwrap().unwrap();
    let key = outbound.session.session_key();
    let content = json!({"algorithm": "m.megolm.v1.aes-sha2", "room_id": room.id, "session_id": shared.session_id, "session_key": key.to_base64().as_str()});
    send_forged_room_key(&mut room, &mut eve, &bob1, content.clone());
    let (outcome, _) = read(&mut room, &mut bob1);
    assert!(matches!(&outcome.room_keys[..], [RoomKeyOutcome::Refused { reason: RoomKeyRejection::OtherSender, .. }]));

    // Alice's own device sending the same key again (as good, not better): nothing changes.
    alice.machine.encrypt_to_device(&[id(&bob1)], "m.room_key", &content).unwrap();
    run_requests(&mut room.hs, &mut alice.machine).unwrap();
    let (outcome, _) = read(&mut room, &mut bob1);
    assert!(matches!(&outcome.room_keys[..], [RoomKeyOutcome::Refused { reason: RoomKeyRejection::NotBetter, .. }]));
    assert_eq!(
        bob1.machine
            .store()
            .inbound_group_session(&room.id.as_str().into(), &shared.session_id)
            .unwrap()
            .unwrap()
            .sender_key,
        alice.machine.identity_keys().curve25519
    );
}

fn forger(room: &mut Room, victim: &mut TestDevice, user_id: &str, seed: u64) -> RawDevice {
    let user_id = OwnedUserId::try_from(user_id).unwrap();
    let mut forger = RawDevice::new(&mut room.hs, &user_id, "FORGER", seed);
    forger.upload(&mut room.hs, 5).unwrap();
    victim.machine.update_tracked_users(&[user_id]).unwrap();
    sync(&mut room.hs, &mut victim.machine).unwrap();
    run_requests(&mut room.hs, &mut victim.machine).unwrap();
    forger
}

/// The forger sends `content` as an Olm-encrypted `m.room_key` to `to` (a new session each time).
fn send_forged_room_key(room: &mut Room, forger: &mut RawDevice, to: &TestDevice, content: Value) {
    let keys = to.machine.identity_keys();
    let (to_user, to_device) = id(to);
    let mut session = forger.open_session(&mut room.hs, &to_user, &to_device, keys.curve25519).unwrap();
    let payload = forger.payload(&to_user, &keys.ed25519, "m.room_key", content);
    let sender = forger.user_id.clone();
    let event = forger.encrypted_event(&mut session, &sender, &keys.curve25519, &payload);
    room.hs.forge_to_device(&to_user, &to_device, event);
}

#[test]
fn every_unable_to_decrypt_reason() {
    let (mut room, mut alice, mut bob1, _) = setup();
    // Before the key arrives: missing session; once it arrives, room_keys says which to retry.
    let shared = share(&mut room, &mut alice, EncryptionSettings::default());
    say(&mut room, &mut alice, "first");
    let (_, events) = sync_without_keys(&mut room, &mut bob1);
    let first = events.last().unwrap().clone();
    assert_eq!(decrypt(&mut bob1, &first, &room.id).unwrap_err(), UnableToDecrypt::MissingSession { withheld: None });
    let (outcome, _) = read(&mut room, &mut bob1);
    assert_eq!(accepted(&outcome), vec![shared.session_id.clone()]);
    assert_eq!(body(&decrypt(&mut bob1, &first, &room.id).unwrap()), "first");

    // The same event twice is not a replay; the same index under another event id is.
    assert!(decrypt(&mut bob1, &first, &room.id).is_ok());
    let replayed = with_event_id(&first, "$replayed");
    assert!(matches!(decrypt(&mut bob1, &replayed, &room.id), Err(UnableToDecrypt::Replay { message_index: 0, .. })));

    // Altered ciphertext: forged.
    let mut value: Value = serde_json::from_str(first.json().get()).unwrap();
    let mut bytes = base64_decode(value["content"]["ciphertext"].as_str().unwrap()).unwrap();
    let at = bytes.len() - 70;
    bytes[at] ^= 1;
    value["content"]["ciphertext"] = json!(base64_encode(&bytes));
    value["event_id"] = json!("$altered");
    assert_eq!(decrypt(&mut bob1, &raw(&value), &room.id).unwrap_err(), UnableToDecrypt::Forged);

    // Malformed, unsupported.
    for (content, expected) in [
        (
            json!({"algorithm": "m.megolm.v1.aes-sha2", "session_id": shared.session_id, "ciphertext": "!!"}),
            "malformed",
        ),
        (json!({"algorithm": "m.megolm.v1.aes-sha2"}), "malformed"),
        (json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": {}}), "unsupported"),
    ] {
        let event = json!({"type": "m.room.encrypted", "event_id": "$x", "sender": user(&alice), "origin_server_ts": 1, "content": content});
        let error = decrypt(&mut bob1, &raw(&event), &room.id).unwrap_err();
        match expected {
            "malformed" => assert!(matches!(error, UnableToDecrypt::Malformed(_)), "{error:?}"),
            _ => assert!(matches!(error, UnableToDecrypt::UnsupportedAlgorithm(_)), "{error:?}"),
        }
    }
    let not_encrypted =
        json!({"type": "m.room.message", "event_id": "$y", "sender": user(&alice), "content": {"body": "x"}});
    assert!(matches!(decrypt(&mut bob1, &raw(&not_encrypted), &room.id), Err(UnableToDecrypt::Malformed(_))));

    // A strict requirement hides unverified senders until the user verifies the device.
    let strict = bob1.machine.decrypt_room_event(&first, &room.id, TrustRequirement::VerifiedDevice).unwrap();
    assert_eq!(strict.unwrap_err(), UnableToDecrypt::UntrustedSender);
    bob1.machine.set_local_trust(&user(&alice), device_id!("ALICE"), LocalTrust::Verified).unwrap();
    let strict = bob1.machine.decrypt_room_event(&first, &room.id, TrustRequirement::VerifiedDevice).unwrap();
    assert_eq!(strict.unwrap().encryption.verification, VerificationState::Verified);
}

#[test]
fn rule_the_plaintext_room_must_be_the_events_room() {
    let (mut room, _alice, mut bob1, _) = setup();
    let other_room = room.hs.create_room(bob1.machine.user_id()).unwrap();
    let mut eve = forger(&mut room, &mut bob1, "@eve:test.server", 22);
    // Eve shares one session as a key of both rooms, then posts a message of the first room
    // into the second.
    let mut session = GroupSession::new(SessionConfig::version_1());
    let first_room = room.id.clone();
    for r in [&first_room, &other_room] {
        let content = json!({"algorithm": "m.megolm.v1.aes-sha2", "room_id": r, "session_id": session.session_id().to_base64(), "session_key": session.session_key().to_base64().as_str()});
        send_forged_room_key(&mut room, &mut eve, &bob1, content);
    }
    let (outcome, _) = read(&mut room, &mut bob1);
    assert_eq!(accepted(&outcome).len(), 2);
    let plaintext = json!({"type": "m.room.message", "content": {"body": "moved"}, "room_id": room.id});
    let message = session.encrypt(plaintext.to_string().as_bytes());
    let event = json!({
        "type": "m.room.encrypted", "event_id": "$moved", "sender": eve.user_id, "origin_server_ts": 1,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": message.to_base64(), "session_id": session.session_id().to_base64()},
    });
    assert_eq!(decrypt(&mut bob1, &raw(&event), &other_room).unwrap_err(), UnableToDecrypt::MismatchedRoomId);
    assert_eq!(body(&decrypt(&mut bob1, &raw(&event), &room.id).unwrap()), "moved");
}

fn raw(value: &Value) -> Raw<AnySyncTimelineEvent> {
    Raw::from_json(serde_json::value::to_raw_value(value).unwrap())
}

fn with_event_id(event: &Raw<AnySyncTimelineEvent>, event_id: &str) -> Raw<AnySyncTimelineEvent> {
    let mut value: Value = serde_json::from_str(event.json().get()).unwrap();
    value["event_id"] = json!(event_id);
    raw(&value)
}

/// Syncs with the to-device messages held back (as if they were slower than the timeline).
fn sync_without_keys(room: &mut Room, device: &mut TestDevice) -> (SyncOutcome, Vec<Raw<AnySyncTimelineEvent>>) {
    let (user, dev) = id(device);
    let held: Vec<_> = room.hs.to_device_queue(&user, &dev).unwrap().drain(..).collect();
    let result = read(room, device);
    for message in held {
        room.hs.forge_to_device(&user, &dev, message.event);
    }
    result
}

/// The Olm ciphertexts of each to-device request: (request id, every `ciphertext` body).
fn ciphertexts(requests: &[ferrolm_machine::OutgoingRequest]) -> Vec<(String, Vec<String>)> {
    requests
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body_json().unwrap()).unwrap();
            let mut texts = Vec::new();
            for devices in body["messages"].as_object().unwrap().values() {
                for content in devices.as_object().unwrap().values() {
                    for message in content["ciphertext"].as_object().unwrap().values() {
                        texts.push(message["body"].as_str().unwrap().to_owned());
                    }
                }
            }
            (r.request_id.clone(), texts)
        })
        .collect()
}

#[test]
fn a_room_key_encrypted_before_a_crash_is_encrypted_again_and_sent_after_the_restart() {
    let (mut room, alice, mut bob1, mut bob2) = setup();
    let mut alice = alice;
    let members = room.hs.members(&room.id);
    let claim = alice.machine.get_missing_sessions(&members).unwrap().unwrap();
    send(&mut room.hs, &mut alice.machine, &claim).unwrap();
    let shared = alice.machine.share_room_key(&room.id, &members, EncryptionSettings::default()).unwrap();
    let before = ciphertexts(&alice.machine.outgoing_requests().unwrap());
    // The process dies before the to-device request is sent. What was saved is the room key
    // and its recipients, with the Olm sessions as they were after encrypting it: the
    // restarted machine encrypts it again, under the same transaction id, with the next
    // message keys (no ciphertext, so no message key, is used twice).
    let mut alice = alice.restart(77).unwrap();
    let after = ciphertexts(&alice.machine.outgoing_requests().unwrap());
    assert_eq!(after.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![&shared.request_ids[0]]);
    assert_eq!(after[0].1.len(), 2);
    assert!(after[0].1.iter().all(|c| !before[0].1.contains(c)));
    // A second crash before sending: encrypted once more.
    let mut alice = alice.restart(78).unwrap();
    let again = ciphertexts(&alice.machine.outgoing_requests().unwrap());
    assert_eq!(again[0].0, shared.request_ids[0]);
    assert!(again[0].1.iter().all(|c| !after[0].1.contains(c)));
    run_requests(&mut room.hs, &mut alice.machine).unwrap();
    for bob in [&mut bob1, &mut bob2] {
        let (outcome, _) = read(&mut room, bob);
        assert_eq!(accepted(&outcome), vec![shared.session_id.clone()]);
    }
    // Sent: not listed again, not even after another restart.
    let mut alice = alice.restart(79).unwrap();
    assert!(alice.machine.outgoing_requests().unwrap().is_empty());
    let event = say(&mut room, &mut alice, "after three restarts");
    let (_, events) = read(&mut room, &mut bob1);
    let event = events.iter().find(|e| e.get_field::<OwnedEventId>("event_id").unwrap().as_ref() == Some(&event));
    assert_eq!(body(&decrypt(&mut bob1, event.unwrap(), &room.id).unwrap()), "after three restarts");
}

#[test]
fn a_room_key_the_server_took_just_before_a_crash_arrives_once() {
    let (mut room, alice, mut bob1, _) = setup();
    let mut alice = alice;
    let members = room.hs.members(&room.id);
    let claim = alice.machine.get_missing_sessions(&members).unwrap().unwrap();
    send(&mut room.hs, &mut alice.machine, &claim).unwrap();
    let shared = alice.machine.share_room_key(&room.id, &members, EncryptionSettings::default()).unwrap();
    // The homeserver accepts the request, and the process dies before the machine hears it.
    let request = alice.machine.outgoing_requests().unwrap().remove(0);
    let http = request.to_http_request("https://test.server", "token").unwrap();
    let (user, device) = id(&alice);
    assert_eq!(room.hs.handle(&user, &device, http).status(), 200);
    let mut alice = alice.restart(80).unwrap();
    // The second body goes under the same transaction id, which the server has seen.
    run_requests(&mut room.hs, &mut alice.machine).unwrap();
    let (user, dev) = id(&bob1);
    assert_eq!(room.hs.to_device_queue(&user, &dev).unwrap().len(), 1);
    let (outcome, _) = read(&mut room, &mut bob1);
    assert_eq!(accepted(&outcome), vec![shared.session_id]);
    // Bob's Olm session follows Alice's: her next message to him decrypts.
    let claim = alice.machine.get_missing_sessions(&members).unwrap();
    assert!(claim.is_none());
    let rotated = alice
        .machine
        .share_room_key(&room.id, &members, EncryptionSettings { rotation_period_messages: 1, ..Default::default() })
        .unwrap();
    run_requests(&mut room.hs, &mut alice.machine).unwrap();
    let (outcome, _) = read(&mut room, &mut bob1);
    assert_eq!(accepted(&outcome), vec![rotated.session_id]);
}

#[test]
fn the_room_key_shares_of_two_rooms_are_both_encrypted_again_after_a_restart() {
    let (mut room, alice, mut bob1, _) = setup();
    let mut alice = alice;
    let second = room.hs.create_room(alice.machine.user_id()).unwrap();
    room.hs.join(&second, bob1.machine.user_id());
    let members = room.hs.members(&room.id);
    let claim = alice.machine.get_missing_sessions(&members).unwrap().unwrap();
    send(&mut room.hs, &mut alice.machine, &claim).unwrap();
    let first = alice.machine.share_room_key(&room.id, &members, EncryptionSettings::default()).unwrap();
    let members_of_second = room.hs.members(&second);
    let other = alice.machine.share_room_key(&second, &members_of_second, EncryptionSettings::default()).unwrap();
    let mut alice = alice.restart(81).unwrap();
    let mut ids: Vec<String> = alice.machine.outgoing_requests().unwrap().into_iter().map(|r| r.request_id).collect();
    ids.sort();
    let mut expected = vec![first.request_ids[0].clone(), other.request_ids[0].clone()];
    expected.sort();
    assert_eq!(ids, expected);
    run_requests(&mut room.hs, &mut alice.machine).unwrap();
    let (outcome, _) = read(&mut room, &mut bob1);
    let mut got = accepted(&outcome);
    got.sort();
    let mut want = vec![first.session_id, other.session_id];
    want.sort();
    assert_eq!(got, want);
}
