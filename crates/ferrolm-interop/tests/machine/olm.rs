//! The Olm channel, both ways: sessions opened from a claimed one-time key, and from the
//! fallback key once the one-time keys are gone; custom to-device events decrypted with the
//! right sender and keys; MSC4147 `sender_device_keys` from ferrolm accepted by
//! matrix-sdk-crypto.

use std::collections::BTreeMap;

use ferrolm_machine::ruma::api::client::keys::claim_keys;
use ferrolm_machine::ruma::api::client::to_device::send_event_to_device;
use ferrolm_machine::ruma::api::{OutgoingRequest as _, SupportedVersions, auth_scheme::SendAccessToken};
use ferrolm_machine::ruma::events::ToDeviceEventType;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::to_device::DeviceIdOrAllDevices;
use ferrolm_machine::ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedTransactionId, OwnedUserId, UserId};
use ferrolm_machine::{SenderDeviceSource, ToDeviceOutcome};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, sync};
use matrix_sdk_common::deserialized_responses::{AlgorithmInfo, VerificationLevel, VerificationState};
use matrix_sdk_crypto::CollectStrategy;
use matrix_sdk_crypto::types::events::room::encrypted::ToDeviceEncryptedEventContent;
use serde_json::json;

use crate::common::{FE_DEVICE, FE_USER, MSC_DEVICE, MSC_USER, World, fe_decrypted, fe_id, fe_open_sessions};
use crate::msc::{MscDevice, block_on};

/// matrix-sdk-crypto encrypts `content` for ferrolm's device over its Olm session and sends it.
fn msc_send_custom(
    hs: &mut Homeserver,
    msc: &MscDevice,
    to: &(OwnedUserId, OwnedDeviceId),
    content: serde_json::Value,
) {
    let device = msc.device(&to.0, &to.1).expect("msc knows the ferrolm device");
    let encrypted =
        block_on(device.encrypt_event_raw("org.example.ping", &content, CollectStrategy::AllDevices)).unwrap();
    send_raw_to_device(hs, msc, (to.0.as_str(), to.1.as_str()), encrypted, &format!("msc-custom-{}", content["n"]));
}

/// Sends an encrypted to-device content from msc's device to `to`, as msc's client would.
pub fn send_raw_to_device(
    hs: &mut Homeserver,
    msc: &MscDevice,
    to: (&str, &str),
    encrypted: Raw<ToDeviceEncryptedEventContent>,
    txn_id: &str,
) {
    let mut messages: send_event_to_device::v3::Messages = BTreeMap::new();
    messages
        .entry(OwnedUserId::try_from(to.0).unwrap())
        .or_default()
        .insert(DeviceIdOrAllDevices::DeviceId(OwnedDeviceId::from(to.1)), encrypted.cast());
    let request = send_event_to_device::v3::Request::new_raw(
        ToDeviceEventType::from("m.room.encrypted"),
        OwnedTransactionId::from(txn_id),
        messages,
    );
    let v = SupportedVersions::from_parts(&["v1.1".to_owned()], &BTreeMap::new());
    let http = request
        .try_into_http_request::<Vec<u8>>(
            "https://test.server",
            SendAccessToken::Always("t"),
            std::borrow::Cow::Borrowed(&v),
        )
        .unwrap();
    let (user, device_id) = msc.id();
    assert_eq!(hs.handle(&user, &device_id, http).status(), 200);
}

/// Claims every one-time key of a device, as other devices would, leaving the fallback key.
fn drain_one_time_keys(hs: &mut Homeserver, user: &UserId, device: &str) {
    let device = OwnedDeviceId::from(device);
    while hs.one_time_key_count(user, &device) > 0 {
        let mut wanted = BTreeMap::new();
        wanted.insert(device.clone(), OneTimeKeyAlgorithm::SignedCurve25519);
        let mut request = BTreeMap::new();
        request.insert(user.to_owned(), wanted);
        hs.claim_keys(claim_keys::v3::Request::new(request)).unwrap();
    }
    let (_, _, used) = hs.fallback_key(user, &device).expect("a fallback key is published");
    assert!(!used);
}

fn ferrolm_to_msc(world: &mut World, n: u64) {
    let msc_id = world.msc.id();
    let sent = world.fe.machine.encrypt_to_device(&[msc_id], "org.example.ping", &json!({"n": n})).unwrap();
    assert!(sent.request_id.is_some(), "{sent:?}");
    run_requests(&mut world.hs, &mut world.fe.machine).unwrap();
    let synced = world.msc.sync(&mut world.hs);
    let decrypted = synced.decrypted();
    assert_eq!(decrypted.len(), 1, "{:?}", synced.to_device);
    let (event, info) = &decrypted[0];
    assert_eq!(event["type"], "org.example.ping");
    assert_eq!(event["content"]["n"], n);
    assert_eq!(event["sender"], FE_USER);
    assert_eq!(info.sender.as_str(), FE_USER);
    assert_eq!(info.sender_device.as_deref().map(|d| d.as_str()), Some(FE_DEVICE));
    let AlgorithmInfo::OlmV1Curve25519AesSha2 { curve25519_public_key_base64 } = &info.algorithm_info else {
        panic!("{:?}", info.algorithm_info)
    };
    assert_eq!(*curve25519_public_key_base64, world.fe.machine.identity_keys().curve25519.to_base64());
}

fn msc_to_ferrolm(world: &mut World, n: u64) {
    let to = fe_id(&world.fe);
    msc_send_custom(&mut world.hs, &world.msc, &to, json!({"n": n}));
    let outcome = sync(&mut world.hs, &mut world.fe.machine).unwrap();
    let decrypted = fe_decrypted(&outcome);
    assert_eq!(decrypted.len(), 1, "{outcome:?}");
    let event = decrypted[0];
    assert_eq!(event.event_type, "org.example.ping");
    assert_eq!(event.content["n"], n);
    assert_eq!(event.sender.as_str(), MSC_USER);
    assert_eq!(event.sender_device.as_deref().map(|d| d.as_str()), Some(MSC_DEVICE));
    assert_eq!(event.source, SenderDeviceSource::KnownDevice);
    let keys = world.msc.machine.identity_keys();
    assert_eq!(event.sender_curve25519_key.to_base64(), keys.curve25519.to_base64());
    assert_eq!(event.sender_ed25519_key.to_base64(), keys.ed25519.to_base64());
}

#[test]
fn ferrolm_opens_a_session_from_an_msc_one_time_key_and_msc_decrypts() {
    let mut world = World::new();
    let msc_user = world.msc.user_id();
    let before = world.hs.one_time_key_count(&msc_user, &OwnedDeviceId::from(MSC_DEVICE));
    assert!(before > 0);
    assert_eq!(fe_open_sessions(&mut world.hs, &mut world.fe.machine, &[msc_user.clone()]), 1);
    assert_eq!(world.hs.one_time_key_count(&msc_user, &OwnedDeviceId::from(MSC_DEVICE)), before - 1);
    ferrolm_to_msc(&mut world, 1);
    // The session carries on (normal messages now), and answers flow back over msc's side.
    ferrolm_to_msc(&mut world, 2);
    msc_to_ferrolm(&mut world, 3);
    ferrolm_to_msc(&mut world, 4);
}

#[test]
fn msc_opens_a_session_from_a_ferrolm_one_time_key_and_ferrolm_decrypts() {
    let mut world = World::new();
    let fe_user = world.fe.machine.user_id().to_owned();
    let before = world.hs.one_time_key_count(&fe_user, &OwnedDeviceId::from(FE_DEVICE));
    assert!(before > 0);
    assert!(world.msc.open_sessions(&mut world.hs, &[fe_user.clone()]));
    assert_eq!(world.hs.one_time_key_count(&fe_user, &OwnedDeviceId::from(FE_DEVICE)), before - 1);
    msc_to_ferrolm(&mut world, 1);
    msc_to_ferrolm(&mut world, 2);
    ferrolm_to_msc(&mut world, 3);
    msc_to_ferrolm(&mut world, 4);
}

#[test]
fn ferrolm_opens_a_session_from_the_msc_fallback_key_once_one_time_keys_are_gone() {
    let mut world = World::new();
    let msc_user = world.msc.user_id();
    drain_one_time_keys(&mut world.hs, &msc_user, MSC_DEVICE);
    assert_eq!(fe_open_sessions(&mut world.hs, &mut world.fe.machine, &[msc_user.clone()]), 1);
    let (_, _, used) = world.hs.fallback_key(&msc_user, &OwnedDeviceId::from(MSC_DEVICE)).unwrap();
    assert!(used, "the claim was answered with the fallback key");
    ferrolm_to_msc(&mut world, 1);
    msc_to_ferrolm(&mut world, 2);
}

#[test]
fn msc_opens_a_session_from_the_ferrolm_fallback_key_once_one_time_keys_are_gone() {
    let mut world = World::new();
    let fe_user = world.fe.machine.user_id().to_owned();
    drain_one_time_keys(&mut world.hs, &fe_user, FE_DEVICE);
    assert!(world.msc.open_sessions(&mut world.hs, &[fe_user.clone()]));
    let (_, _, used) = world.hs.fallback_key(&fe_user, &OwnedDeviceId::from(FE_DEVICE)).unwrap();
    assert!(used, "the claim was answered with the fallback key");
    msc_to_ferrolm(&mut world, 1);
    ferrolm_to_msc(&mut world, 2);
}

#[test]
fn msc_accepts_the_sender_device_keys_of_a_ferrolm_device_it_never_queried() {
    // matrix-sdk-crypto refuses a custom to-device event from a device it does not know
    // unless the plaintext carries valid MSC4147 `sender_device_keys`.
    let mut hs = Homeserver::new();
    let mut fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
    let mut msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    msc.settle(&mut hs, 1);
    fe.settle(&mut hs, 1).unwrap();
    let msc_user = msc.user_id();
    fe.machine.update_tracked_users(&[msc_user.clone()]).unwrap();
    fe.settle(&mut hs, 1).unwrap();
    assert_eq!(fe_open_sessions(&mut hs, &mut fe.machine, &[msc_user.clone()]), 1);
    let fe_user = OwnedUserId::try_from(FE_USER).unwrap();
    assert!(msc.device(&fe_user, &OwnedDeviceId::from(FE_DEVICE)).is_none());

    fe.machine.encrypt_to_device(&[msc.id()], "org.example.ping", &json!({"n": 1})).unwrap();
    run_requests(&mut hs, &mut fe.machine).unwrap();
    let synced = msc.sync(&mut hs);
    let decrypted = synced.decrypted();
    assert_eq!(decrypted.len(), 1, "{:?}", synced.to_device);
    let (event, info) = &decrypted[0];
    assert_eq!(event["content"]["n"], 1);
    // The device came from the event's own `sender_device_keys`, checked by msc.
    assert_eq!(info.sender_device.as_deref().map(|d| d.as_str()), Some(FE_DEVICE));
    assert_eq!(info.verification_state, VerificationState::Unverified(VerificationLevel::UnsignedDevice));
}

#[test]
fn ferrolm_refuses_nothing_msc_sends_and_reports_each_outcome() {
    // Several messages in one sync, from an msc session ferrolm replies over: every one decrypts,
    // in order.
    let mut world = World::new();
    let fe_user = world.fe.machine.user_id().to_owned();
    assert!(world.msc.open_sessions(&mut world.hs, &[fe_user]));
    let to = fe_id(&world.fe);
    for n in 1..=5 {
        msc_send_custom(&mut world.hs, &world.msc, &to, json!({"n": n}));
    }
    let outcome = sync(&mut world.hs, &mut world.fe.machine).unwrap();
    let ns: Vec<u64> = outcome
        .to_device
        .iter()
        .map(|o| match o {
            ToDeviceOutcome::Decrypted(e) => e.content["n"].as_u64().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ns, [1, 2, 3, 4, 5]);
}

#[test]
fn ferrolm_identifies_an_msc_device_it_never_queried_from_its_sender_device_keys() {
    // The other way round: ferrolm does not track msc's user, msc shares a room key with it.
    let mut hs = Homeserver::new();
    let mut fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
    let mut msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    fe.settle(&mut hs, 1).unwrap();
    msc.settle(&mut hs, 1);
    let fe_user = OwnedUserId::try_from(FE_USER).unwrap();
    let room = hs.create_room(&fe_user).unwrap();
    hs.join(&room, &msc.user_id());
    msc.track(&hs.members(&room));
    msc.settle(&mut hs, 1);
    assert!(fe.machine.device(&msc.user_id(), &msc.device_id()).unwrap().is_none());

    let members = hs.members(&room);
    msc.share(&mut hs, &room, &members, matrix_sdk_crypto::EncryptionSettings::default());
    msc.say(&mut hs, &room, "from a device ferrolm never queried");
    let (outcome, events) = crate::common::fe_read(&mut hs, &mut fe.machine, &room);
    let decrypted = fe_decrypted(&outcome);
    assert_eq!(decrypted.len(), 1, "{outcome:?}");
    assert_eq!(decrypted[0].event_type, "m.room_key");
    assert_eq!(decrypted[0].source, SenderDeviceSource::SenderDeviceKeys);
    assert_eq!(decrypted[0].sender_device.as_deref().map(|d| d.as_str()), Some(MSC_DEVICE));
    let keys = msc.machine.identity_keys();
    assert_eq!(decrypted[0].sender_ed25519_key.to_base64(), keys.ed25519.to_base64());
    assert!(matches!(outcome.room_keys.as_slice(), [ferrolm_machine::RoomKeyOutcome::Accepted(_)]), "{outcome:?}");

    let event = crate::common::fe_decrypt(&mut fe.machine, &events[0], &room).unwrap();
    assert_eq!(event.content["body"], "from a device ferrolm never queried");
    assert_eq!(event.encryption.sender_curve25519_key.to_base64(), keys.curve25519.to_base64());
    assert_eq!(event.encryption.claimed_ed25519_key.map(|k| k.to_base64()), Some(keys.ed25519.to_base64()));
    // ferrolm names the sending device of a room event from its device store, filled by key
    // queries only: the device the `m.room_key` proved through MSC4147 is not kept, so until
    // ferrolm queries msc's user the event is from an unknown device (msc, in the same place,
    // keeps the sender data of the room key and names the device at once).
    assert_eq!(
        (event.encryption.sender_device.clone(), event.encryption.verification),
        (None, ferrolm_machine::VerificationState::UnknownDevice),
        "{:?}",
        event.encryption
    );
    fe.machine.update_tracked_users(&members).unwrap();
    run_requests(&mut hs, &mut fe.machine).unwrap();
    let event = crate::common::fe_decrypt(&mut fe.machine, &events[0], &room).unwrap();
    assert_eq!(event.encryption.sender_device, Some(msc.device_id()));
    assert_eq!(event.encryption.verification, ferrolm_machine::VerificationState::Unverified);
}
