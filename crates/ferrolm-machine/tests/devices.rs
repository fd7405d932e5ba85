//! Device tracking and validation through the test homeserver, including what a malicious
//! homeserver does: serve changed keys for a known device, forged devices, its own device's
//! id with other keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{meet, of_kind, only, user};
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId, device_id};
use ferrolm_machine::signing::SignatureError;
use ferrolm_machine::{DeviceEvent, DeviceRejection, RequestKind, ResponseOutcome};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync};
use ferrolm_test_homeserver::forge::RawDevice;
use serde_json::json;

fn pair(hs: &mut Homeserver) -> (TestDevice, TestDevice) {
    let mut alice = TestDevice::new(hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    let mut bob = TestDevice::new(hs, "@bob:test.server", "BOB", 2, 1_000).unwrap();
    meet(hs, &mut [&mut alice, &mut bob]);
    (alice, bob)
}

/// Syncs and answers the queries that follow; returns the device events.
fn refresh(hs: &mut Homeserver, device: &mut TestDevice) -> Vec<DeviceEvent> {
    sync(hs, &mut device.machine).unwrap();
    let outcomes: Vec<ResponseOutcome> = run_requests(hs, &mut device.machine).unwrap();
    outcomes.into_iter().flat_map(|o| o.device_events).collect()
}

#[test]
fn a_tracked_users_devices_are_queried_validated_and_stored() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    alice.machine.update_tracked_users(&[user(&bob)]).unwrap();
    let outcomes = run_requests(&mut hs, &mut alice.machine).unwrap();
    let events: Vec<DeviceEvent> = outcomes.into_iter().flat_map(|o| o.device_events).collect();
    assert!(events.contains(&DeviceEvent::Added { user_id: user(&bob), device_id: OwnedDeviceId::from("BOB") }));
    let device = alice.machine.device(&user(&bob), device_id!("BOB")).unwrap().unwrap();
    assert_eq!(device.ed25519_key, bob.machine.identity_keys().ed25519);
    assert_eq!(device.curve25519_key, bob.machine.identity_keys().curve25519);
    assert!(!device.deleted);
    assert!(alice.machine.tracked_users().unwrap().contains(&(user(&bob), false)));
    // The own device is not stored as a device of the own user.
    assert!(alice.machine.device(&user(&alice), device_id!("ALICE")).unwrap().is_none());
}

#[test]
fn rule_a_known_devices_changed_keys_are_refused_and_reported() {
    let mut hs = Homeserver::new();
    let (mut alice, bob) = pair(&mut hs);
    let real = bob.machine.identity_keys();
    // Someone with the access token uploads new identity keys for Bob's device id: the
    // homeserver accepts them and serves them.
    let mut impostor = RawDevice::new(&mut hs, &user(&bob), "BOB", 66);
    impostor.upload(&mut hs, 0).unwrap();
    let events = refresh(&mut hs, &mut alice);
    assert_eq!(
        events,
        vec![DeviceEvent::KeyChangeRefused {
            user_id: user(&bob),
            device_id: OwnedDeviceId::from("BOB"),
            stored_ed25519: real.ed25519,
            served_ed25519: impostor.account.ed25519_key(),
            stored_curve25519: real.curve25519,
            served_curve25519: impostor.account.curve25519_key(),
        }]
    );
    let stored = alice.machine.device(&user(&bob), device_id!("BOB")).unwrap().unwrap();
    assert_eq!((stored.ed25519_key, stored.curve25519_key), (real.ed25519, real.curve25519));
    // Refused again on every later query, never applied.
    hs.serve_device_keys(&user(&bob), device_id!("BOB"), impostor.device_keys());
    let events = refresh(&mut hs, &mut alice);
    assert!(matches!(events.as_slice(), [DeviceEvent::KeyChangeRefused { .. }]), "{events:?}");
    assert_eq!(alice.machine.device(&user(&bob), device_id!("BOB")).unwrap().unwrap().ed25519_key, real.ed25519);
}

#[test]
fn rule_devices_failing_validation_are_refused_and_not_stored() {
    let mut hs = Homeserver::new();
    let (mut alice, bob) = pair(&mut hs);
    type Case = (&'static str, fn(&RawDevice) -> serde_json::Value, fn(&DeviceRejection) -> bool);
    let cases: [Case; 5] = [
        (
            "D1",
            |f| {
                let mut keys = strip(f.device_keys());
                keys["user_id"] = json!("@mallory:test.server");
                f.signed(keys)
            },
            |r| matches!(r, DeviceRejection::UserIdMismatch { .. }),
        ),
        (
            "D2",
            |f| {
                let mut keys = strip(f.device_keys());
                keys["device_id"] = json!("OTHER");
                f.signed(keys)
            },
            |r| matches!(r, DeviceRejection::DeviceIdMismatch { .. }),
        ),
        (
            "D3",
            |f| {
                let mut keys = strip(f.device_keys());
                keys["algorithms"] = json!(["m.megolm.v1.aes-sha2"]);
                f.signed(keys)
            },
            |r| *r == DeviceRejection::UnsupportedAlgorithms,
        ),
        (
            "D4",
            |f| {
                // Changed after signing.
                let mut keys = f.device_keys();
                keys["algorithms"] = json!(["m.olm.v1.curve25519-aes-sha2"]);
                keys
            },
            |r| *r == DeviceRejection::Signature(SignatureError::Invalid),
        ),
        ("D5", |f| strip(f.device_keys()), |r| matches!(r, DeviceRejection::Signature(SignatureError::Missing { .. }))),
    ];
    for (seed, (listed_as, forge, expected)) in (70..).zip(cases) {
        let forger = RawDevice::new(&mut hs, &user(&bob), listed_as, seed);
        hs.serve_device_keys(&user(&bob), &OwnedDeviceId::from(listed_as), forge(&forger));
        let events = refresh(&mut hs, &mut alice);
        match events.as_slice() {
            [DeviceEvent::Refused { device_id, reason, .. }] => {
                assert_eq!(device_id.as_str(), listed_as);
                assert!(expected(reason), "{listed_as}: {reason:?}");
            }
            other => panic!("{listed_as}: {other:?}"),
        }
        assert!(alice.machine.device(&user(&bob), &OwnedDeviceId::from(listed_as)).unwrap().is_none());
        hs.serve_device_keys(&user(&bob), &OwnedDeviceId::from(listed_as), serde_json::Value::Null);
        refresh(&mut hs, &mut alice);
    }
}

/// The keys without their signatures.
fn strip(mut keys: serde_json::Value) -> serde_json::Value {
    keys.as_object_mut().unwrap().remove("signatures");
    keys
}

#[test]
fn deleted_devices_are_marked_not_forgotten_and_may_come_back() {
    let mut hs = Homeserver::new();
    let (mut alice, mut bob) = pair(&mut hs);
    let mut bob2 = TestDevice::new(&mut hs, "@bob:test.server", "BOB2", 3, 1_000).unwrap();
    bob2.settle(&mut hs, 1).unwrap();
    let events = refresh(&mut hs, &mut alice);
    assert_eq!(events, vec![DeviceEvent::Added { user_id: user(&bob), device_id: OwnedDeviceId::from("BOB2") }]);
    let bob2_keys = hs.uploaded_device_keys(&user(&bob), device_id!("BOB2")).unwrap();

    hs.delete_device(&user(&bob), device_id!("BOB2"));
    let events = refresh(&mut hs, &mut alice);
    assert_eq!(events, vec![DeviceEvent::Deleted { user_id: user(&bob), device_id: OwnedDeviceId::from("BOB2") }]);
    let kept = alice.machine.device(&user(&bob), device_id!("BOB2")).unwrap().unwrap();
    assert!(kept.deleted);
    assert_eq!(kept.ed25519_key, bob2.machine.identity_keys().ed25519);
    // A deleted device gets no new sessions.
    assert!(
        alice
            .machine
            .get_missing_sessions(&[user(&bob)])
            .unwrap()
            .is_none_or(|claim| !common::body(&claim).to_string().contains("BOB2"))
    );

    // Served again with the same keys: restored.
    hs.serve_device_keys(&user(&bob), device_id!("BOB2"), bob2_keys);
    let events = refresh(&mut hs, &mut alice);
    assert_eq!(events, vec![DeviceEvent::Restored { user_id: user(&bob), device_id: OwnedDeviceId::from("BOB2") }]);
    assert!(!alice.machine.device(&user(&bob), device_id!("BOB2")).unwrap().unwrap().deleted);
    let _ = &mut bob;
}

#[test]
fn rule_a_user_marked_dirty_during_a_query_is_queried_again() {
    let mut hs = Homeserver::new();
    let (mut alice, bob) = pair(&mut hs);
    // Bob's device list changes; Alice's query goes out and the server answers it before
    // the next change...
    let mut bob2 = TestDevice::new(&mut hs, "@bob:test.server", "BOB2", 3, 1_000).unwrap();
    bob2.settle(&mut hs, 1).unwrap();
    sync(&mut hs, &mut alice.machine).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    let query = only(&requests, RequestKind::KeysQuery).clone();
    let answer = hs.handle(&user(&alice), alice.machine.device_id(), query.to_http_request("https://t", "t").unwrap());
    // ...then Bob adds another device, and Alice's sync says so while her query is in flight.
    let mut bob3 = TestDevice::new(&mut hs, "@bob:test.server", "BOB3", 4, 1_000).unwrap();
    bob3.settle(&mut hs, 1).unwrap();
    sync(&mut hs, &mut alice.machine).unwrap();
    // Not queried twice at once: the only query listed is the one in flight.
    let listed = alice.machine.outgoing_requests().unwrap();
    let queries = of_kind(&listed, RequestKind::KeysQuery);
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].request_id, query.request_id);
    // The old answer arrives: it knows BOB2, not BOB3. Bob stays dirty.
    alice.machine.mark_request_as_sent_json(&query.request_id, answer.body()).unwrap();
    assert!(alice.machine.device(&user(&bob), device_id!("BOB2")).unwrap().is_some());
    assert!(alice.machine.device(&user(&bob), device_id!("BOB3")).unwrap().is_none());
    assert!(alice.machine.tracked_users().unwrap().contains(&(user(&bob), true)));
    // So he is queried again, and BOB3 is found.
    let requests = alice.machine.outgoing_requests().unwrap();
    let again = only(&requests, RequestKind::KeysQuery).clone();
    assert_ne!(again.request_id, query.request_id);
    send(&mut hs, &mut alice.machine, &again).unwrap();
    assert!(alice.machine.device(&user(&bob), device_id!("BOB3")).unwrap().is_some());
    assert!(alice.machine.tracked_users().unwrap().contains(&(user(&bob), false)));
}

#[test]
fn users_on_unreachable_servers_stay_dirty_until_answered() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    let mut dan = TestDevice::new(&mut hs, "@dan:other.server", "DAN", 5, 1_000).unwrap();
    dan.settle(&mut hs, 1).unwrap();
    alice.settle(&mut hs, 1).unwrap();
    let dan_id = user(&dan);
    hs.set_unreachable("other.server", true);
    alice.machine.update_tracked_users(&[dan_id.clone()]).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    send(&mut hs, &mut alice.machine, only(&requests, RequestKind::KeysQuery)).unwrap();
    assert!(alice.machine.tracked_users().unwrap().contains(&(dan_id.clone(), true)));
    assert!(alice.machine.device(&dan_id, device_id!("DAN")).unwrap().is_none());
    hs.set_unreachable("other.server", false);
    run_requests(&mut hs, &mut alice.machine).unwrap();
    assert!(alice.machine.tracked_users().unwrap().contains(&(dan_id.clone(), false)));
    assert!(alice.machine.device(&dan_id, device_id!("DAN")).unwrap().is_some());
}

#[test]
fn the_own_device_id_served_with_other_keys_is_reported() {
    let mut hs = Homeserver::new();
    let (mut alice, _bob) = pair(&mut hs);
    let impostor = RawDevice::new(&mut hs, &user(&alice), "ALICE", 68);
    hs.serve_device_keys(&user(&alice), device_id!("ALICE"), impostor.device_keys());
    let events = refresh(&mut hs, &mut alice);
    assert_eq!(
        events,
        vec![DeviceEvent::OwnDeviceMismatch {
            served_ed25519: impostor.account.ed25519_key(),
            served_curve25519: impostor.account.curve25519_key(),
        }]
    );
}

#[test]
fn users_who_no_longer_share_a_room_are_no_longer_tracked() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000).unwrap();
    let room = meet(&mut hs, &mut [&mut alice, &mut bob]);
    assert!(alice.machine.tracked_users().unwrap().iter().any(|(u, _)| *u == user(&bob)));
    hs.leave(&room, bob.machine.user_id());
    sync(&mut hs, &mut alice.machine).unwrap();
    assert!(!alice.machine.tracked_users().unwrap().iter().any(|(u, _)| *u == user(&bob)));
    // Own user stays tracked.
    assert!(alice.machine.tracked_users().unwrap().iter().any(|(u, _)| *u == user(&alice)));
}

#[test]
fn many_users_are_queried_in_chunks() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    alice.settle(&mut hs, 1).unwrap();
    let users: Vec<OwnedUserId> =
        (0..600).map(|i| OwnedUserId::try_from(format!("@user{i}:test.server")).unwrap()).collect();
    alice.machine.update_tracked_users(&users).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    let sizes: Vec<usize> = of_kind(&requests, RequestKind::KeysQuery)
        .iter()
        .map(|r| common::body(r)["device_keys"].as_object().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![250, 250, 100]);
    run_requests(&mut hs, &mut alice.machine).unwrap();
    assert!(alice.machine.tracked_users().unwrap().iter().all(|(_, dirty)| !dirty));
}

#[test]
fn a_sync_that_ran_ahead_of_the_machine_is_caught_up_with_keys_changes() {
    let mut hs = Homeserver::new();
    let (mut alice, _bob) = pair(&mut hs);
    // Bob logs in a second device; the app syncs without handing the device lists to the
    // machine (its token runs ahead of the machine's).
    let mut bob2 = TestDevice::new(&mut hs, "@bob:test.server", "BOB2", 3, 1_000).unwrap();
    bob2.settle(&mut hs, 1).unwrap();
    let saved = alice.machine.sync_token().unwrap();
    let ahead = hs.sync(alice.machine.user_id(), alice.machine.device_id(), saved.as_deref()).unwrap().next_batch;
    let bob_dirty = |alice: &TestDevice| alice.machine.tracked_users().unwrap().contains(&(user(&bob2), true));
    assert!(!bob_dirty(&alice));

    let request = alice.machine.request_key_changes(&ahead).unwrap().unwrap();
    assert_eq!(request.kind(), RequestKind::KeysChanges);
    assert_eq!(request.path().unwrap(), format!("/_matrix/client/v3/keys/changes?from={}&to={ahead}", saved.unwrap()));
    assert!(of_kind(&alice.machine.outgoing_requests().unwrap(), RequestKind::KeysChanges).is_empty(), "not listed");
    send(&mut hs, &mut alice.machine, &request).unwrap();
    assert!(bob_dirty(&alice), "Bob's devices are outdated");
    let events: Vec<DeviceEvent> =
        run_requests(&mut hs, &mut alice.machine).unwrap().into_iter().flat_map(|o| o.device_events).collect();
    assert!(events.contains(&DeviceEvent::Added { user_id: user(&bob2), device_id: OwnedDeviceId::from("BOB2") }));
    // Nothing to catch up with at the machine's own token.
    let now = alice.machine.sync_token().unwrap().unwrap();
    assert!(alice.machine.request_key_changes(&now).unwrap().is_none());
}
