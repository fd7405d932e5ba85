//! Room keys shared and room events decrypted, both ways: the key reaches the other machine
//! over Olm, several messages decrypt with their content, sender, device and keys, and a
//! conversation goes back and forth in one room.

use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{DeviceKeyAlgorithm, OwnedDeviceId};
use ferrolm_machine::{EncryptionSettings, RoomKeyOutcome, VerificationState};
use matrix_sdk_common::deserialized_responses::AlgorithmInfo;
use matrix_sdk_crypto::EncryptionSettings as MscSettings;
use serde_json::Value;

use crate::common::{
    FE_DEVICE, FE_USER, MSC_DEVICE, MSC_USER, World, event_id, fe_decrypt, fe_read, fe_say, fe_share, msc_body,
};

fn session_id_of(event: &Raw<AnySyncTimelineEvent>) -> String {
    let value: Value = serde_json::from_str(event.json().get()).unwrap();
    value["content"]["session_id"].as_str().unwrap().to_owned()
}

#[test]
fn msc_receives_a_ferrolm_room_key_and_decrypts_several_messages() {
    let mut world = World::new();
    let members = world.members();
    let shared = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    assert_eq!(shared.shared_with, vec![world.msc.id()]);
    let sent: Vec<_> =
        (0..4).map(|i| fe_say(&mut world.hs, &mut world.fe.machine, &world.room, &format!("hello {i}"))).collect();

    let synced = world.msc.sync(&mut world.hs);
    assert_eq!(synced.room_keys.len(), 1, "{:?}", synced.to_device);
    let key = &synced.room_keys[0];
    assert_eq!(key.session_id, shared.session_id);
    assert_eq!(key.room_id, world.room);
    assert_eq!(key.sender_key.to_base64(), world.fe.machine.identity_keys().curve25519.to_base64());
    let events = &synced.timelines[&world.room];
    assert_eq!(events.len(), 4);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event_id(event), sent[i].as_str());
        let decrypted = world.msc.decrypt(event, &world.room).unwrap();
        assert_eq!(msc_body(&decrypted), format!("hello {i}"));
        let info = &decrypted.encryption_info;
        assert_eq!(info.sender.as_str(), FE_USER);
        assert_eq!(info.sender_device.as_deref().map(|d| d.as_str()), Some(FE_DEVICE));
        let AlgorithmInfo::MegolmV1AesSha2 { curve25519_key, sender_claimed_keys, session_id } = &info.algorithm_info
        else {
            panic!("{:?}", info.algorithm_info)
        };
        let keys = world.fe.machine.identity_keys();
        assert_eq!(*curve25519_key, keys.curve25519.to_base64());
        assert_eq!(sender_claimed_keys[&DeviceKeyAlgorithm::Ed25519], keys.ed25519.to_base64());
        assert_eq!(session_id.as_deref(), Some(shared.session_id.as_str()));
    }
}

#[test]
fn ferrolm_receives_an_msc_room_key_and_decrypts_several_messages() {
    let mut world = World::new();
    let members = world.members();
    let requests = world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    assert_eq!(requests.len(), 1);
    let sent: Vec<_> = (0..4).map(|i| world.msc.say(&mut world.hs, &world.room, &format!("hi {i}"))).collect();

    let (outcome, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    let accepted: Vec<_> = outcome
        .room_keys
        .iter()
        .map(|k| match k {
            RoomKeyOutcome::Accepted(info) => info.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].room_id, world.room);
    assert_eq!(accepted[0].sender.as_str(), MSC_USER);
    assert_eq!(accepted[0].first_known_index, 0);
    let msc_keys = world.msc.machine.identity_keys();
    assert_eq!(accepted[0].sender_key.to_base64(), msc_keys.curve25519.to_base64());
    assert_eq!(events.len(), 4);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event_id(event), sent[i].as_str());
        assert_eq!(session_id_of(event), accepted[0].session_id);
        let decrypted = fe_decrypt(&mut world.fe.machine, event, &world.room).unwrap();
        assert_eq!(decrypted.event_type, "m.room.message");
        assert_eq!(decrypted.content["body"], format!("hi {i}"));
        let info = &decrypted.encryption;
        assert_eq!(info.sender.as_str(), MSC_USER);
        assert_eq!(info.sender_device, Some(OwnedDeviceId::from(MSC_DEVICE)));
        assert_eq!(info.sender_curve25519_key.to_base64(), msc_keys.curve25519.to_base64());
        assert_eq!(info.claimed_ed25519_key.map(|k| k.to_base64()), Some(msc_keys.ed25519.to_base64()));
        assert_eq!(info.verification, VerificationState::Unverified);
        assert!(!info.forwarded);
        assert_eq!(info.message_index, i as u32);
        assert_eq!(info.session_id, accepted[0].session_id);
    }
}

#[test]
fn a_conversation_goes_both_ways_in_one_room() {
    let mut world = World::new();
    let members = world.members();
    fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    for round in 0..3 {
        let from_fe = format!("ferrolm says {round}");
        let from_msc = format!("msc says {round}");
        fe_say(&mut world.hs, &mut world.fe.machine, &world.room, &from_fe);
        world.msc.say(&mut world.hs, &world.room, &from_msc);

        // Each reads both messages of the round: the other's and its own.
        let (_, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
        let bodies: Vec<String> = events
            .iter()
            .map(|e| {
                fe_decrypt(&mut world.fe.machine, e, &world.room).unwrap().content["body"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(bodies, [from_fe.clone(), from_msc.clone()]);
        let synced = world.msc.sync(&mut world.hs);
        let bodies: Vec<String> = synced.timelines[&world.room]
            .iter()
            .map(|e| msc_body(&world.msc.decrypt(e, &world.room).unwrap()))
            .collect();
        assert_eq!(bodies, [from_fe, from_msc]);
    }
}

#[test]
fn a_new_msc_device_gets_the_ferrolm_key_at_the_current_index() {
    let mut world = World::new();
    let members = world.members();
    let first = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "before the new device");
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "still before");
    let early = world.msc.sync(&mut world.hs).timelines[&world.room].clone();

    let mut late = crate::msc::MscDevice::new(&mut world.hs, MSC_USER, "MSCLATE");
    late.track(&members);
    late.settle(&mut world.hs, 1);
    world.settle();
    let again = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    assert!(!again.rotated, "a new device does not rotate the session");
    assert_eq!(again.session_id, first.session_id);
    assert_eq!(again.shared_with, vec![late.id()]);
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "after the new device");

    let synced = late.sync(&mut world.hs);
    assert_eq!(synced.room_keys.len(), 1);
    let event = synced.timelines[&world.room].last().unwrap();
    assert_eq!(msc_body(&late.decrypt(event, &world.room).unwrap()), "after the new device");
    // The key starts at index 2: the two earlier messages stay unreadable to the new device.
    for event in &early {
        let utd = late.decrypt(event, &world.room).unwrap_err();
        assert_eq!(
            utd.reason,
            matrix_sdk_common::deserialized_responses::UnableToDecryptReason::UnknownMegolmMessageIndex
        );
    }
    // The old device reads everything.
    let event = world.msc.sync(&mut world.hs).timelines[&world.room].last().unwrap().clone();
    assert_eq!(msc_body(&world.msc.decrypt(&event, &world.room).unwrap()), "after the new device");
}

#[test]
fn a_new_ferrolm_device_gets_the_msc_key_at_the_current_index() {
    let mut world = World::new();
    let members = world.members();
    world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    world.msc.say(&mut world.hs, &world.room, "before the new device");
    world.msc.say(&mut world.hs, &world.room, "still before");
    let (_, early) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    assert_eq!(early.len(), 2);

    let mut late =
        ferrolm_test_homeserver::driver::TestDevice::new(&mut world.hs, FE_USER, "FERROLMLATE", 3, 1_000_000).unwrap();
    late.machine.update_tracked_users(&members).unwrap();
    late.settle(&mut world.hs, 1).unwrap();
    world.settle();
    world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    world.msc.say(&mut world.hs, &world.room, "after the new device");

    let (outcome, events) = fe_read(&mut world.hs, &mut late.machine, &world.room);
    let [RoomKeyOutcome::Accepted(info)] = outcome.room_keys.as_slice() else { panic!("{outcome:?}") };
    assert_eq!(info.first_known_index, 2);
    assert_eq!(info.session_id, session_id_of(&early[0]), "msc did not rotate for a new device");
    let last = events.last().unwrap();
    let decrypted = fe_decrypt(&mut late.machine, last, &world.room).unwrap();
    assert_eq!(decrypted.content["body"], "after the new device");
    assert_eq!(decrypted.encryption.message_index, 2);
    for (i, event) in early.iter().enumerate() {
        let utd = fe_decrypt(&mut late.machine, event, &world.room).unwrap_err();
        assert_eq!(
            utd,
            ferrolm_machine::UnableToDecrypt::UnknownMessageIndex { first_known_index: 2, message_index: i as u32 }
        );
    }
}
