//! The own device: signed device keys, one-time keys persisted before upload and topped up,
//! fallback key rotation by the injected clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{body, id, only};
use ferrolm_machine::own_device::PREVIOUS_FALLBACK_KEY_LIFETIME_MS;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::signing::verify_json;
use ferrolm_machine::{MachineError, OlmMachine, RequestKind, SessionCreationFailure, ToDeviceError};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, memory_store, run_requests, send, sync, test_env};
use ferrolm_test_homeserver::forge::RawDevice;
use serde_json::{Map, Value};

fn object(value: &Value) -> &Map<String, Value> {
    value.as_object().expect("an object")
}

fn alice(hs: &mut Homeserver) -> TestDevice {
    TestDevice::new(hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap()
}

#[test]
fn the_first_upload_has_signed_device_keys_one_time_keys_and_a_fallback_key() {
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    let requests = alice.machine.outgoing_requests().unwrap();
    let upload = body(only(&requests, RequestKind::KeysUpload));
    let ed = alice.machine.identity_keys().ed25519;
    let curve = alice.machine.identity_keys().curve25519;

    let keys = object(&upload["device_keys"]);
    assert_eq!(keys["user_id"], "@alice:test.server");
    assert_eq!(keys["device_id"], "ALICE");
    assert_eq!(keys["keys"]["ed25519:ALICE"], ed.to_base64());
    assert_eq!(keys["keys"]["curve25519:ALICE"], curve.to_base64());
    assert!(keys["algorithms"].as_array().unwrap().iter().any(|a| a == "m.olm.v1.curve25519-aes-sha2"));
    verify_json(keys, "@alice:test.server", "ed25519:ALICE", &ed).unwrap();

    let otks = object(&upload["one_time_keys"]);
    assert_eq!(otks.len(), 50);
    for (key_id, key) in otks {
        assert!(key_id.starts_with("signed_curve25519:"), "{key_id}");
        verify_json(object(key), "@alice:test.server", "ed25519:ALICE", &ed).unwrap();
        assert!(key.get("fallback").is_none());
    }
    let fallback = object(&upload["fallback_keys"]);
    assert_eq!(fallback.len(), 1);
    let (_, fallback) = fallback.iter().next().unwrap();
    assert_eq!(fallback["fallback"], true);
    verify_json(object(fallback), "@alice:test.server", "ed25519:ALICE", &ed).unwrap();

    // And the own user is queried.
    let query = body(only(&requests, RequestKind::KeysQuery));
    assert_eq!(query["device_keys"], serde_json::json!({"@alice:test.server": []}));

    // The homeserver takes it.
    run_requests(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(hs.one_time_key_count(&common::user(&alice), alice.machine.device_id()), 50);
    assert!(alice.machine.outgoing_requests().unwrap().is_empty());
}

#[test]
fn rule_keys_are_saved_before_upload_so_a_crash_reuploads_the_same_keys() {
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    let first = body(only(&alice.machine.outgoing_requests().unwrap(), RequestKind::KeysUpload));

    // The process dies before the upload; a new one (new randomness) opens the same store.
    let mut alice = alice.restart(99).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    let again = body(only(&requests, RequestKind::KeysUpload));
    assert_eq!(first, again, "the same keys, signed the same way");

    // The process dies after the upload reached the server but before its answer was
    // processed: the re-upload carries the same ids and content, which the server accepts.
    let upload = only(&requests, RequestKind::KeysUpload).clone();
    let http = upload.to_http_request("https://test.server", "t").unwrap();
    assert_eq!(hs.handle(&common::user(&alice), alice.machine.device_id(), http).status(), 200);
    let mut alice = alice.restart(100).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    assert_eq!(body(only(&requests, RequestKind::KeysUpload)), first);
    run_requests(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(hs.one_time_key_count(&common::user(&alice), alice.machine.device_id()), 50);
}

#[test]
fn a_changed_one_time_key_under_an_uploaded_id_is_refused_by_the_homeserver() {
    // What a machine that generated new keys after a crash (instead of re-uploading the saved
    // ones) would run into: the homeserver keeps the first content of a key id.
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    let requests = alice.machine.outgoing_requests().unwrap();
    let upload = only(&requests, RequestKind::KeysUpload).clone();
    send(&mut hs, &mut alice.machine, &upload).unwrap();
    let mut forged = body(&upload);
    let (key_id, _) = object(&forged["one_time_keys"]).iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
    forged["one_time_keys"] = serde_json::json!({ key_id: {"key": "AAAA", "signatures": {}} });
    let http = http::Request::builder()
        .method("POST")
        .uri("https://test.server/_matrix/client/v3/keys/upload")
        .body(forged.to_string().into_bytes())
        .unwrap();
    let response = hs.handle(&common::user(&alice), alice.machine.device_id(), http);
    assert_eq!(response.status(), 400);
    assert!(String::from_utf8_lossy(response.body()).contains("M_INVALID_PARAM"));
}

#[test]
fn one_time_keys_are_topped_up_from_the_sync_counts() {
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    alice.settle(&mut hs, 1).unwrap();
    let (user, device) = id(&alice);
    let before = hs.one_time_keys(&user, &device);
    let mut claimer = RawDevice::new(&mut hs, &OwnedUserId::try_from("@carol:test.server").unwrap(), "CAROL", 7);
    for _ in 0..5 {
        claimer.open_session(&mut hs, &user, &device, alice.machine.identity_keys().curve25519).unwrap();
    }
    assert_eq!(hs.one_time_key_count(&user, &device), 45);
    sync(&mut hs, &mut alice.machine).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    let upload = body(only(&requests, RequestKind::KeysUpload));
    let new_ids: Vec<&String> = object(&upload["one_time_keys"]).keys().collect();
    assert_eq!(new_ids.len(), 5);
    assert!(new_ids.iter().all(|id| !before.contains_key(*id)), "new keys get new ids");
    assert!(upload.get("device_keys").is_none(), "device keys are uploaded once");
    run_requests(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(hs.one_time_key_count(&user, &device), 50);
}

#[test]
fn nothing_new_is_generated_while_an_upload_is_in_flight() {
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    let first = alice.machine.outgoing_requests().unwrap();
    let upload = only(&first, RequestKind::KeysUpload).clone();
    // A sync reporting no keys on the server does not make more keys while the upload waits.
    let changes = ferrolm_test_homeserver::driver::fetch_sync(&mut hs, &alice.machine).unwrap();
    alice.machine.receive_sync_changes(changes).unwrap();
    let again = alice.machine.outgoing_requests().unwrap();
    let again = only(&again, RequestKind::KeysUpload);
    assert_eq!(again.request_id, upload.request_id);
    assert_eq!(body(again), body(&upload));
}

#[test]
fn rule_a_used_fallback_key_is_replaced_and_the_previous_one_dropped_an_hour_later() {
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    alice.settle(&mut hs, 1).unwrap();
    let (user, device) = id(&alice);
    let curve = alice.machine.identity_keys().curve25519;
    let ed = alice.machine.identity_keys().ed25519;
    let (old_fallback_id, old_fallback, _) = hs.fallback_key(&user, &device).unwrap();

    // Claimers exhaust the one-time keys; the next ones get the fallback key.
    let carol_id: OwnedUserId = "@carol:test.server".try_into().unwrap();
    let mut carol = RawDevice::new(&mut hs, &carol_id, "CAROL", 7);
    for _ in 0..50 {
        carol.open_session(&mut hs, &user, &device, curve).unwrap();
    }
    let mut early = RawDevice::new(&mut hs, &carol_id, "EARLY", 8);
    let mut late = RawDevice::new(&mut hs, &carol_id, "LATE", 9);
    let mut early_session = early.open_session(&mut hs, &user, &device, curve).unwrap();
    let mut late_session = late.open_session(&mut hs, &user, &device, curve).unwrap();
    assert_eq!(early_session.session_keys().one_time_key.to_base64(), old_fallback["key"].as_str().unwrap());
    assert!(hs.fallback_key(&user, &device).unwrap().2, "the server reports it used");

    // The sync reports no unused fallback key: a new one is uploaded.
    sync(&mut hs, &mut alice.machine).unwrap();
    let requests = alice.machine.outgoing_requests().unwrap();
    let upload = body(only(&requests, RequestKind::KeysUpload));
    let fallback = object(&upload["fallback_keys"]);
    assert_eq!(fallback.len(), 1);
    assert!(!fallback.contains_key(&old_fallback_id));
    run_requests(&mut hs, &mut alice.machine).unwrap();
    let (new_id, _, used) = hs.fallback_key(&user, &device).unwrap();
    assert_ne!(new_id, old_fallback_id);
    assert!(!used);

    // 59 minutes later the previous fallback key still opens sessions.
    alice.clock.advance_ms(PREVIOUS_FALLBACK_KEY_LIFETIME_MS - 60_000);
    let payload = early.payload(&user, &ed, "org.example.early", serde_json::json!({}));
    let event = early.encrypted_event(&mut early_session, &carol_id, &curve, &payload);
    hs.forge_to_device(&user, &device, event);
    let outcome = sync(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(common::the_decrypted(&outcome).event_type, "org.example.early");

    // An hour after the new key was published, the previous one is gone.
    alice.clock.advance_ms(60_000);
    sync(&mut hs, &mut alice.machine).unwrap();
    let payload = late.payload(&user, &ed, "org.example.late", serde_json::json!({}));
    let event = late.encrypted_event(&mut late_session, &carol_id, &curve, &payload);
    hs.forge_to_device(&user, &device, event);
    let outcome = sync(&mut hs, &mut alice.machine).unwrap();
    assert!(
        matches!(
            common::the_refusal(&outcome),
            ToDeviceError::SessionCreation(SessionCreationFailure::MissingOneTimeKey)
        ),
        "{outcome:?}"
    );
}

#[test]
fn the_previous_fallback_keys_hour_survives_a_restart() {
    let mut hs = Homeserver::new();
    let mut alice = alice(&mut hs);
    alice.settle(&mut hs, 1).unwrap();
    let (user, device) = id(&alice);
    let curve = alice.machine.identity_keys().curve25519;
    let ed = alice.machine.identity_keys().ed25519;
    let carol_id = OwnedUserId::try_from("@carol:test.server").unwrap();
    let mut carol = RawDevice::new(&mut hs, &carol_id, "CAROL", 7);
    for _ in 0..50 {
        carol.open_session(&mut hs, &user, &device, curve).unwrap();
    }
    let mut late = RawDevice::new(&mut hs, &carol_id, "LATE", 9);
    let mut late_session = late.open_session(&mut hs, &user, &device, curve).unwrap();
    sync(&mut hs, &mut alice.machine).unwrap();
    run_requests(&mut hs, &mut alice.machine).unwrap(); // the new fallback key is published
    // Half an hour later the device restarts; half an hour after that the previous key is gone.
    alice.clock.advance_ms(PREVIOUS_FALLBACK_KEY_LIFETIME_MS / 2);
    let mut alice = alice.restart(50).unwrap();
    alice.clock.advance_ms(PREVIOUS_FALLBACK_KEY_LIFETIME_MS / 2);
    sync(&mut hs, &mut alice.machine).unwrap();
    let payload = late.payload(&user, &ed, "org.example.late", serde_json::json!({}));
    let event = late.encrypted_event(&mut late_session, &carol_id, &curve, &payload);
    hs.forge_to_device(&user, &device, event);
    let outcome = sync(&mut hs, &mut alice.machine).unwrap();
    assert_eq!(
        common::the_refusal(&outcome),
        &ToDeviceError::SessionCreation(SessionCreationFailure::MissingOneTimeKey)
    );
}

#[test]
fn a_store_of_another_account_is_refused() {
    let mut hs = Homeserver::new();
    let alice = alice(&mut hs);
    let backend = alice.backend.clone();
    drop(alice);
    let clock = ferrolm_machine::ManualClock::new(0);
    let result = OlmMachine::open(
        OwnedUserId::try_from("@bob:test.server").unwrap(),
        OwnedDeviceId::from("BOB"),
        memory_store(backend.clone()).unwrap(),
        test_env(5, &clock),
    );
    assert!(matches!(result, Err(MachineError::AccountMismatch { .. })));
    let result = OlmMachine::open(
        OwnedUserId::try_from("@alice:test.server").unwrap(),
        OwnedDeviceId::from("OTHERDEVICE"),
        memory_store(backend).unwrap(),
        test_env(5, &clock),
    );
    assert!(matches!(result, Err(MachineError::AccountMismatch { .. })));
}

#[test]
fn the_same_seed_and_clock_give_the_same_outputs() {
    let mut hs = Homeserver::new();
    let mut one = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 42, 5).unwrap();
    let mut two = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 42, 5).unwrap();
    let mut other = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 43, 5).unwrap();
    let a = one.machine.outgoing_requests().unwrap();
    let b = two.machine.outgoing_requests().unwrap();
    let c = other.machine.outgoing_requests().unwrap();
    assert_eq!(
        a.iter().map(|r| (r.request_id.clone(), body(r))).collect::<Vec<_>>(),
        b.iter().map(|r| (r.request_id.clone(), body(r))).collect::<Vec<_>>()
    );
    assert_ne!(one.machine.identity_keys(), other.machine.identity_keys());
    assert_ne!(body(&a[0]), body(&c[0]));
}
