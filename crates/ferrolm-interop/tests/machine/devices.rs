//! Devices queried and validated, both ways: each machine stores the other's device with the
//! identity keys the other holds.

use ferrolm_machine::DeviceEvent;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests};

use crate::common::{FE_DEVICE, FE_USER, MSC_DEVICE, MSC_USER, World};
use crate::msc::MscDevice;

#[test]
fn ferrolm_validates_and_stores_the_msc_device_with_its_identity_keys() {
    let mut hs = Homeserver::new();
    let mut fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
    let mut msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    // matrix-sdk-crypto's first requests: its keys, then a query of its own user.
    assert_eq!(msc.run_requests(&mut hs), ["keys_upload", "keys_query"]);
    msc.sync(&mut hs);
    fe.settle(&mut hs, 1).unwrap();

    let msc_user = OwnedUserId::try_from(MSC_USER).unwrap();
    fe.machine.update_tracked_users(&[msc_user.clone()]).unwrap();
    let events: Vec<DeviceEvent> =
        run_requests(&mut hs, &mut fe.machine).unwrap().into_iter().flat_map(|o| o.device_events).collect();
    assert_eq!(
        events,
        vec![DeviceEvent::Added { user_id: msc_user.clone(), device_id: OwnedDeviceId::from(MSC_DEVICE) }]
    );

    let device = fe.machine.device(&msc_user, &OwnedDeviceId::from(MSC_DEVICE)).unwrap().unwrap();
    let keys = msc.machine.identity_keys();
    assert_eq!(device.curve25519_key.to_base64(), keys.curve25519.to_base64());
    assert_eq!(device.ed25519_key.to_base64(), keys.ed25519.to_base64());
    assert!(device.supports_olm());
    assert!(device.algorithms.iter().any(|a| a == "m.megolm.v1.aes-sha2"), "{:?}", device.algorithms);
    assert!(!device.deleted);
}

#[test]
fn msc_validates_and_stores_the_ferrolm_device_with_its_identity_keys() {
    let mut hs = Homeserver::new();
    let mut fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
    let mut msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    fe.settle(&mut hs, 1).unwrap();
    msc.settle(&mut hs, 1);

    let fe_user = OwnedUserId::try_from(FE_USER).unwrap();
    assert!(msc.device(&fe_user, &OwnedDeviceId::from(FE_DEVICE)).is_none());
    msc.track(&[fe_user.clone()]);
    assert_eq!(msc.run_requests(&mut hs), ["keys_query"]);

    let device = msc.device(&fe_user, &OwnedDeviceId::from(FE_DEVICE)).expect("msc stored the ferrolm device");
    let keys = fe.machine.identity_keys();
    assert_eq!(device.curve25519_key().unwrap().to_base64(), keys.curve25519.to_base64());
    assert_eq!(device.ed25519_key().unwrap().to_base64(), keys.ed25519.to_base64());
    assert!(!device.is_deleted());
    // The device keys ferrolm signed check out under matrix-sdk-crypto's own verification.
    let served = hs.uploaded_device_keys(&fe_user, &OwnedDeviceId::from(FE_DEVICE)).unwrap();
    assert_eq!(served["keys"][format!("ed25519:{FE_DEVICE}")], keys.ed25519.to_base64());
}

#[test]
fn both_know_each_other_after_meeting_in_a_room() {
    let world = World::new();
    let (msc_user, msc_device) = world.msc.id();
    let fe_user = world.fe.machine.user_id().to_owned();
    let fe_device = world.fe.machine.device_id().to_owned();
    let seen_by_fe = world.fe.machine.devices(&msc_user).unwrap();
    assert_eq!(seen_by_fe.len(), 1);
    assert_eq!(seen_by_fe[0].device_id, msc_device);
    assert_eq!(seen_by_fe[0].ed25519_key.to_base64(), world.msc.machine.identity_keys().ed25519.to_base64());
    let seen_by_msc = world.msc.device(&fe_user, &fe_device).unwrap();
    assert_eq!(seen_by_msc.ed25519_key().unwrap().to_base64(), world.fe.machine.identity_keys().ed25519.to_base64());
}

#[test]
fn a_deleted_device_is_seen_deleted_on_both_sides() {
    let mut world = World::new();
    let mut fe2 = TestDevice::new(&mut world.hs, FE_USER, "FERROLM2", 2, 1_000_000).unwrap();
    let mut msc2 = MscDevice::new(&mut world.hs, MSC_USER, "MSCDEVICE2");
    fe2.settle(&mut world.hs, 1).unwrap();
    msc2.settle(&mut world.hs, 1);
    world.settle();
    let (fe_user, msc_user) = (world.fe.machine.user_id().to_owned(), world.msc.user_id());
    assert!(world.msc.device(&fe_user, &OwnedDeviceId::from("FERROLM2")).is_some());
    assert!(world.fe.machine.device(&msc_user, &OwnedDeviceId::from("MSCDEVICE2")).unwrap().is_some());

    world.hs.delete_device(&fe_user, &OwnedDeviceId::from("FERROLM2"));
    world.hs.delete_device(&msc_user, &OwnedDeviceId::from("MSCDEVICE2"));
    world.settle();
    let gone = world.fe.machine.device(&msc_user, &OwnedDeviceId::from("MSCDEVICE2")).unwrap().unwrap();
    assert!(gone.deleted, "ferrolm marks msc's deleted device");
    assert!(!world.fe.machine.device(&msc_user, &OwnedDeviceId::from(MSC_DEVICE)).unwrap().unwrap().deleted);
    // matrix-sdk-crypto marks a device deleted and then drops it from its store (its
    // `Changes::deleted`); ferrolm keeps it, marked. Either way it is no longer a recipient.
    assert!(world.msc.device(&fe_user, &OwnedDeviceId::from("FERROLM2")).is_none(), "msc forgot it");
    assert!(world.msc.device(&fe_user, &OwnedDeviceId::from(FE_DEVICE)).is_some());
}
