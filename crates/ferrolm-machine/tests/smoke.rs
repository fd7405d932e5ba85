//! Smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::TestDevice;

#[test]
fn two_devices_meet() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000).unwrap();
    let room = hs.create_room(alice.machine.user_id()).unwrap();
    hs.join(&room, bob.machine.user_id());
    alice.settle(&mut hs, 1).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    alice.machine.update_tracked_users(&[bob.machine.user_id().to_owned()]).unwrap();
    bob.machine.update_tracked_users(&[alice.machine.user_id().to_owned()]).unwrap();
    alice.settle(&mut hs, 1).unwrap();
    bob.settle(&mut hs, 1).unwrap();
    let claim = alice.machine.get_missing_sessions(&[bob.machine.user_id().to_owned()]).unwrap().unwrap();
    let outcome = ferrolm_test_homeserver::driver::send(&mut hs, &mut alice.machine, &claim).unwrap();
    assert_eq!(outcome.sessions_created, 1, "{outcome:?}");
    let enc = alice
        .machine
        .encrypt_to_device(
            &[(bob.machine.user_id().to_owned(), bob.machine.device_id().to_owned())],
            "org.example.hello",
            &serde_json::json!({"hello": "bob"}),
        )
        .unwrap();
    assert!(enc.request_id.is_some(), "{enc:?}");
    alice.settle(&mut hs, 1).unwrap();
    let out = ferrolm_test_homeserver::driver::sync(&mut hs, &mut bob.machine).unwrap();
    println!("{out:#?}");
    assert!(matches!(out.to_device.first(), Some(ferrolm_machine::ToDeviceOutcome::Decrypted(_))));
}
