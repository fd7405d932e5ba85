//! Key requests and forwarded room keys between a user's own devices, one on each machine:
//! the msc device asks for a key it got too late (from a later index), ferrolm (a verified own
//! device) answers with `m.forwarded_room_key`, msc accepts it and reads the earlier messages.
//!
//! The other way (ferrolm asking msc) needs matrix-sdk-crypto's `automatic-room-key-forwarding`
//! feature, which gates answering key requests; without it msc ignores them. These tests build
//! msc without it (as the other interop tests do), so that direction is not run.

use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::{EncryptionSettings, LocalTrust};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, sync};
use matrix_sdk_common::deserialized_responses::UnableToDecryptReason;
use matrix_sdk_crypto::LocalTrust as MscTrust;

use crate::common::{FE_DEVICE, FE_USER, fe_say, fe_share, msc_body};
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
