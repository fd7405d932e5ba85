//! Key requests and forwarded room keys between a user's own devices, one on each machine:
//! the msc device asks for a key it got too late (from a later index), ferrolm (a verified own
//! device) answers with `m.forwarded_room_key`, msc accepts it and reads the earlier messages.
//!
//! And the other way: ferrolm asks, msc answers (msc answers key requests only with its
//! `automatic-room-key-forwarding` feature, on here). The msc device created the session it
//! forwards, so ferrolm accepts it as from its sender (the Olm sender is the device the session
//! names), not as forwarded by another device.

use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::{EncryptionSettings, LocalTrust, RoomKeyOutcome, UnableToDecrypt, VerificationState};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, sync};
use matrix_sdk_common::deserialized_responses::UnableToDecryptReason;
use matrix_sdk_crypto::{EncryptionSettings as MscSettings, LocalTrust as MscTrust};

use crate::common::{FE_DEVICE, FE_USER, MSC_DEVICE, MSC_USER, fe_decrypt, fe_read, fe_say, fe_share, msc_body};
use crate::msc::{MscDevice, block_on};

#[test]
fn ferrolm_forwards_a_room_key_to_the_own_verified_msc_device_that_asks() {
    let mut hs = Homeserver::new();
    let user = OwnedUserId::try_from(FE_USER).unwrap();
    let mut fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
    let room = hs.create_room(&user).unwrap();
    fe.settle(&mut hs, 1).unwrap();
    let members = hs.members(&room);
    fe_share(&mut hs, &mut fe.machine, &room, &members, EncryptionSettings::default());
    fe_say(&mut hs, &mut fe.machine, &room, "m0");
    fe_say(&mut hs, &mut fe.machine, &room, "m1");

    // The same user logs in an msc device; each side verifies the other.
    let mut own = MscDevice::new(&mut hs, FE_USER, "MSCOWN");
    // Its first sync brings the room's history.
    let mut events: Vec<_> =
        own.settle(&mut hs, 1).into_iter().flat_map(|s| s.timelines.get(&room).cloned().unwrap_or_default()).collect();
    fe.settle(&mut hs, 1).unwrap();
    own.settle(&mut hs, 1);
    fe.machine.set_local_trust(&user, &OwnedDeviceId::from("MSCOWN"), LocalTrust::Verified).unwrap();
    let fe_device = own.device(&user, &OwnedDeviceId::from(FE_DEVICE)).expect("msc knows its own other device");
    block_on(fe_device.set_local_trust(MscTrust::Verified)).unwrap();

    // The msc device gets the key from now on (index 2).
    let shared = fe_share(&mut hs, &mut fe.machine, &room, &members, EncryptionSettings::default());
    assert_eq!(shared.shared_with, vec![own.id()]);
    fe_say(&mut hs, &mut fe.machine, &room, "m2");
    let synced = own.sync(&mut hs);
    assert_eq!(synced.room_keys.len(), 1);
    events.extend(synced.timelines[&room].iter().cloned());
    assert_eq!(events.len(), 3);
    assert_eq!(msc_body(&own.decrypt(&events[2], &room).unwrap()), "m2");
    let utd = own.decrypt(&events[0], &room).unwrap_err();
    assert_eq!(utd.reason, UnableToDecryptReason::UnknownMegolmMessageIndex);

    // msc asks its own devices; ferrolm answers over Olm.
    let (cancel, request) = block_on(own.machine.request_room_key(events[0].cast_ref_unchecked(), &room)).unwrap();
    assert!(cancel.is_none());
    own.send(&mut hs, &request);
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    assert_eq!(outcome.key_requests.len(), 1, "{outcome:?}");
    assert_eq!(outcome.key_requests[0].requesting_device_id, Some(OwnedDeviceId::from("MSCOWN")));
    assert_eq!(outcome.key_requests[0].result, Ok(()));
    run_requests(&mut hs, &mut fe.machine).unwrap();

    let synced = own.sync(&mut hs);
    let forwarded: Vec<_> =
        synced.decrypted().into_iter().filter(|(e, _)| e["type"] == "m.forwarded_room_key").collect();
    assert_eq!(forwarded.len(), 1, "{:?}", synced.to_device);
    assert_eq!(synced.room_keys.len(), 1, "msc accepted the forwarded key");
    assert_eq!(synced.room_keys[0].session_id, shared.session_id);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(msc_body(&own.decrypt(event, &room).unwrap()), format!("m{i}"));
    }
}

#[test]
fn msc_forwards_a_room_key_to_the_own_verified_ferrolm_device_that_asks() {
    let mut hs = Homeserver::new();
    let user = OwnedUserId::try_from(MSC_USER).unwrap();
    let mut own_msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    let room = hs.create_room(&user).unwrap();
    own_msc.settle(&mut hs, 1);
    let members = hs.members(&room);
    own_msc.share(&mut hs, &room, &members, MscSettings::default());
    own_msc.say(&mut hs, &room, "m0");
    own_msc.say(&mut hs, &room, "m1");

    // The same user logs in a ferrolm device; each side verifies the other.
    let mut fe = TestDevice::new(&mut hs, MSC_USER, "FERROLMOWN", 4, 1_000_000).unwrap();
    let mut events = Vec::new();
    for _ in 0..2 {
        let (_, new) = fe_read(&mut hs, &mut fe.machine, &room);
        events.extend(new);
        run_requests(&mut hs, &mut fe.machine).unwrap();
        own_msc.settle(&mut hs, 1);
    }
    assert_eq!(events.len(), 2);
    fe.machine.set_local_trust(&user, &OwnedDeviceId::from(MSC_DEVICE), LocalTrust::Verified).unwrap();
    let fe_device = own_msc.device(&user, &OwnedDeviceId::from("FERROLMOWN")).expect("msc knows the new device");
    block_on(fe_device.set_local_trust(MscTrust::Verified)).unwrap();

    // The ferrolm device gets the key from now on (index 2).
    own_msc.share(&mut hs, &room, &members, MscSettings::default());
    own_msc.say(&mut hs, &room, "m2");
    let (outcome, new) = fe_read(&mut hs, &mut fe.machine, &room);
    let [RoomKeyOutcome::Accepted(info)] = outcome.room_keys.as_slice() else { panic!("{outcome:?}") };
    assert_eq!(info.first_known_index, 2);
    let session_id = info.session_id.clone();
    events.extend(new);
    assert_eq!(fe_decrypt(&mut fe.machine, &events[2], &room).unwrap().content["body"], "m2");
    let utd = fe_decrypt(&mut fe.machine, &events[0], &room).unwrap_err();
    assert_eq!(utd, UnableToDecrypt::UnknownMessageIndex { first_known_index: 2, message_index: 0 });

    // ferrolm asks its own devices; msc answers over Olm.
    assert!(fe.machine.request_room_key(&room, &session_id).unwrap().is_some());
    run_requests(&mut hs, &mut fe.machine).unwrap();
    own_msc.sync(&mut hs);
    let sent = own_msc.run_requests(&mut hs);
    assert!(sent.contains(&"to_device"), "msc answered: {sent:?}");
    let (outcome, _) = fe_read(&mut hs, &mut fe.machine, &room);
    let [RoomKeyOutcome::Accepted(info)] = outcome.room_keys.as_slice() else { panic!("{outcome:?}") };
    assert_eq!(info.session_id, session_id);
    assert_eq!(info.first_known_index, 0);
    for (i, event) in events.iter().enumerate() {
        let decrypted = fe_decrypt(&mut fe.machine, event, &room).unwrap();
        assert_eq!(decrypted.content["body"], format!("m{i}"));
        // msc forwarded its own session: over Olm from the device the session names, which
        // is as good as its m.room_key (and here the device is verified).
        assert!(!decrypted.encryption.forwarded);
        assert_eq!(decrypted.encryption.verification, VerificationState::Verified);
    }
}
