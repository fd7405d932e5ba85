//! Rotation seen, both ways: when a user leaves the room or a device is deleted, the sharer's
//! next message uses a new Megolm session, which the remaining members decrypt and the
//! departed cannot; and a session is rotated after the message count of the settings.

use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::{EncryptionSettings, MachineError, UnableToDecrypt};
use ferrolm_test_homeserver::driver::TestDevice;
use matrix_sdk_common::deserialized_responses::UnableToDecryptReason;
use matrix_sdk_crypto::EncryptionSettings as MscSettings;
use serde_json::Value;

use crate::common::{World, fe_decrypt, fe_read, fe_say, fe_share, msc_body};
use crate::msc::MscDevice;

fn session_id_of(event: &Raw<AnySyncTimelineEvent>) -> String {
    let value: Value = serde_json::from_str(event.json().get()).unwrap();
    value["content"]["session_id"].as_str().unwrap().to_owned()
}

/// Everyone sends requests and syncs twice, then tracks the room's members, twice more.
fn settle_all(world: &mut World, fes: &mut [&mut TestDevice], mscs: &mut [&mut MscDevice]) {
    let members = world.members();
    world.fe.machine.update_tracked_users(&members).unwrap();
    world.msc.track(&members);
    for fe in fes.iter_mut() {
        fe.machine.update_tracked_users(&members).unwrap();
    }
    for msc in mscs.iter() {
        msc.track(&members);
    }
    for _ in 0..2 {
        world.settle();
        for fe in fes.iter_mut() {
            fe.settle(&mut world.hs, 1).unwrap();
        }
        for msc in mscs.iter_mut() {
            msc.settle(&mut world.hs, 1);
        }
    }
}

/// The last event of the room, as the homeserver holds it (what anyone who had access sees).
fn last_event(world: &mut World) -> Raw<AnySyncTimelineEvent> {
    // The world's ferrolm machine is always a member: read it from its own sync.
    let (_, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    events.last().cloned().unwrap()
}

#[test]
fn ferrolm_rotates_when_an_msc_user_leaves_and_only_the_remaining_msc_decrypts() {
    let mut world = World::new();
    let mut gone = MscDevice::new(&mut world.hs, "@departed:test.server", "GONE");
    world.hs.join(&world.room, &gone.user_id());
    settle_all(&mut world, &mut [], &mut [&mut gone]);

    let members = world.members();
    let first = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    assert_eq!(first.shared_with.len(), 2, "{first:?}");
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "to both");
    for msc in [&mut world.msc, &mut gone] {
        let synced = msc.sync(&mut world.hs);
        let event = &synced.timelines[&world.room][0];
        assert_eq!(msc_body(&msc.decrypt(event, &world.room).unwrap()), "to both");
    }

    world.hs.leave(&world.room, &gone.user_id());
    settle_all(&mut world, &mut [], &mut [&mut gone]);
    let members = world.members();
    let second = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    assert!(second.rotated);
    assert_ne!(second.session_id, first.session_id);
    assert_eq!(second.shared_with, vec![world.msc.id()]);
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "after the departure");
    let event = last_event(&mut world);
    assert_eq!(session_id_of(&event), second.session_id);

    let synced = world.msc.sync(&mut world.hs);
    let mine = synced.timelines[&world.room].last().unwrap();
    assert_eq!(msc_body(&world.msc.decrypt(mine, &world.room).unwrap()), "after the departure");
    gone.sync(&mut world.hs);
    let utd = gone.decrypt(&event, &world.room).unwrap_err();
    assert_eq!(utd.reason, UnableToDecryptReason::MissingMegolmSession { withheld_code: None });
}

#[test]
fn msc_rotates_when_a_ferrolm_user_leaves_and_only_the_remaining_ferrolm_decrypts() {
    let mut world = World::new();
    let mut gone = TestDevice::new(&mut world.hs, "@departed:test.server", "GONE", 9, 1_000_000).unwrap();
    world.hs.join(&world.room, gone.machine.user_id());
    settle_all(&mut world, &mut [&mut gone], &mut []);

    let members = world.members();
    let first = world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    assert!(!first.is_empty());
    world.msc.say(&mut world.hs, &world.room, "to both");
    for fe in [&mut world.fe, &mut gone] {
        let (_, events) = fe_read(&mut world.hs, &mut fe.machine, &world.room);
        assert_eq!(fe_decrypt(&mut fe.machine, &events[0], &world.room).unwrap().content["body"], "to both");
    }
    let first_session = session_id_of(&last_event_of_msc(&mut world));

    world.hs.leave(&world.room, gone.machine.user_id());
    settle_all(&mut world, &mut [&mut gone], &mut []);
    let members = world.members();
    world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    world.msc.say(&mut world.hs, &world.room, "after the departure");
    let (_, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    let event = events.last().unwrap().clone();
    assert_ne!(session_id_of(&event), first_session, "msc rotated");
    assert_eq!(fe_decrypt(&mut world.fe.machine, &event, &world.room).unwrap().content["body"], "after the departure");
    gone.settle(&mut world.hs, 1).unwrap();
    let utd = fe_decrypt(&mut gone.machine, &event, &world.room).unwrap_err();
    assert_eq!(utd, UnableToDecrypt::MissingSession { withheld: None });
}

/// The session id of msc's first message in the room, read back by the world's msc device.
fn last_event_of_msc(world: &mut World) -> Raw<AnySyncTimelineEvent> {
    let synced = world.msc.sync(&mut world.hs);
    synced.timelines[&world.room].last().cloned().unwrap()
}

#[test]
fn ferrolm_rotates_when_an_msc_device_is_deleted() {
    let mut world = World::new();
    let msc_user = world.msc.user_id();
    let mut second = MscDevice::new(&mut world.hs, msc_user.as_str(), "MSCDEVICE2");
    settle_all(&mut world, &mut [], &mut [&mut second]);
    let members = world.members();
    let first = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    assert_eq!(first.shared_with.len(), 2, "{first:?}");

    world.hs.delete_device(&msc_user, &OwnedDeviceId::from("MSCDEVICE2"));
    settle_all(&mut world, &mut [], &mut []);
    let again = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, EncryptionSettings::default());
    assert!(again.rotated);
    assert_ne!(again.session_id, first.session_id);
    assert_eq!(again.shared_with, vec![world.msc.id()]);
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "after the deletion");
    let synced = world.msc.sync(&mut world.hs);
    let event = synced.timelines[&world.room].last().unwrap();
    assert_eq!(session_id_of(event), again.session_id);
    assert_eq!(msc_body(&world.msc.decrypt(event, &world.room).unwrap()), "after the deletion");
    // The deleted device's machine has the first key only.
    let utd = second.decrypt(event, &world.room).unwrap_err();
    assert_eq!(utd.reason, UnableToDecryptReason::MissingMegolmSession { withheld_code: None });
}

#[test]
fn msc_rotates_when_a_ferrolm_device_is_deleted() {
    let mut world = World::new();
    let fe_user = world.fe.machine.user_id().to_owned();
    let mut second = TestDevice::new(&mut world.hs, fe_user.as_str(), "FERROLM2", 5, 1_000_000).unwrap();
    settle_all(&mut world, &mut [&mut second], &mut []);
    let members = world.members();
    world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    world.msc.say(&mut world.hs, &world.room, "to both devices");
    let (_, events) = fe_read(&mut world.hs, &mut second.machine, &world.room);
    let first_session = session_id_of(&events[0]);
    assert_eq!(fe_decrypt(&mut second.machine, &events[0], &world.room).unwrap().content["body"], "to both devices");

    world.hs.delete_device(&fe_user, &OwnedDeviceId::from("FERROLM2"));
    settle_all(&mut world, &mut [], &mut []);
    world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    world.msc.say(&mut world.hs, &world.room, "after the deletion");
    let (_, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    let event = events.last().unwrap().clone();
    assert_ne!(session_id_of(&event), first_session, "msc rotated");
    assert_eq!(fe_decrypt(&mut world.fe.machine, &event, &world.room).unwrap().content["body"], "after the deletion");
    let utd = fe_decrypt(&mut second.machine, &event, &world.room).unwrap_err();
    assert_eq!(utd, UnableToDecrypt::MissingSession { withheld: None });
}

#[test]
fn ferrolm_rotates_after_the_settings_message_count_and_msc_follows() {
    let mut world = World::new();
    let members = world.members();
    let settings = EncryptionSettings { rotation_period_messages: 3, ..Default::default() };
    let first = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, settings);
    for i in 0..3 {
        fe_say(&mut world.hs, &mut world.fe.machine, &world.room, &format!("m{i}"));
    }
    let refused = world.fe.machine.encrypt_room_event(&world.room, "m.room.message", &serde_json::json!({"body": "x"}));
    assert!(matches!(refused, Err(MachineError::RoomKeyRotationDue(_))), "{refused:?}");
    let second = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, settings);
    assert!(second.rotated);
    assert_ne!(second.session_id, first.session_id);
    for i in 3..6 {
        fe_say(&mut world.hs, &mut world.fe.machine, &world.room, &format!("m{i}"));
    }
    let synced = world.msc.sync(&mut world.hs);
    assert_eq!(synced.room_keys.len(), 2);
    let events = &synced.timelines[&world.room];
    let sessions: Vec<String> = events.iter().map(session_id_of).collect();
    assert_eq!(sessions[..3], [first.session_id.clone(), first.session_id.clone(), first.session_id.clone()]);
    assert_eq!(sessions[3..], [second.session_id.clone(), second.session_id.clone(), second.session_id.clone()]);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(msc_body(&world.msc.decrypt(event, &world.room).unwrap()), format!("m{i}"));
    }
}

#[test]
fn msc_rotates_after_the_settings_message_count_and_ferrolm_follows() {
    let mut world = World::new();
    let members: Vec<OwnedUserId> = world.members();
    let settings = || MscSettings { rotation_period_msgs: 3, ..Default::default() };
    for i in 0..6 {
        // A client shares before each message; matrix-sdk-crypto rotates when the count is reached.
        world.msc.share(&mut world.hs, &world.room, &members, settings());
        world.msc.say(&mut world.hs, &world.room, &format!("m{i}"));
    }
    let (outcome, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    assert_eq!(outcome.room_keys.len(), 2, "{outcome:?}");
    let sessions: Vec<String> = events.iter().map(session_id_of).collect();
    assert_eq!(sessions.len(), 6);
    assert!(sessions[..3].iter().all(|s| *s == sessions[0]));
    assert!(sessions[3..].iter().all(|s| *s == sessions[3]));
    assert_ne!(sessions[0], sessions[3]);
    for (i, event) in events.iter().enumerate() {
        let decrypted = fe_decrypt(&mut world.fe.machine, event, &world.room).unwrap();
        assert_eq!(decrypted.content["body"], format!("m{i}"));
        assert_eq!(decrypted.encryption.message_index, (i % 3) as u32);
    }
}
