//! The homeserver behaves like a real one where the machine's tests rely on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::forge::RawDevice;
use ruma::api::client::keys::{claim_keys, get_keys, upload_keys};
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::ToDeviceEventType;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedOneTimeKeyId, OwnedTransactionId, OwnedUserId, device_id};
use serde_json::{Value, json};

fn user(id: &str) -> OwnedUserId {
    OwnedUserId::try_from(id).unwrap()
}

fn claim(hs: &mut Homeserver, user: &OwnedUserId, device: &str) -> Option<(String, Value)> {
    let mut wanted = BTreeMap::new();
    wanted.insert(user.clone(), BTreeMap::from([(OwnedDeviceId::from(device), OneTimeKeyAlgorithm::SignedCurve25519)]));
    let response = hs.claim_keys(claim_keys::v3::Request::new(wanted)).unwrap();
    let keys = response.one_time_keys.get(user)?.get(device_id!(device).as_str())?;
    keys.iter().next().map(|(id, raw)| (id.to_string(), serde_json::from_str(raw.json().get()).unwrap()))
}

fn raw<T>(value: &Value) -> Raw<T> {
    Raw::from_json(serde_json::value::to_raw_value(value).unwrap())
}

#[test]
fn one_time_keys_are_removed_on_claim_then_the_fallback_key_is_served_again_and_again() {
    let mut hs = Homeserver::new();
    let bob = user("@bob:test.server");
    let mut device = RawDevice::new(&mut hs, &bob, "BOB", 1);
    device.upload(&mut hs, 2).unwrap();
    let mut request = upload_keys::v3::Request::new();
    let fallback = device.signed(json!({"key": "ZmFsbGJhY2s", "fallback": true}));
    request.fallback_keys.insert(OwnedOneTimeKeyId::try_from("signed_curve25519:AAAAZA").unwrap(), raw(&fallback));
    hs.upload_keys(&bob, device_id!("BOB"), request).unwrap();

    let first = claim(&mut hs, &bob, "BOB").unwrap();
    let second = claim(&mut hs, &bob, "BOB").unwrap();
    assert_ne!(first, second);
    assert_eq!(hs.one_time_key_count(&bob, device_id!("BOB")), 0);
    assert!(!hs.fallback_key(&bob, device_id!("BOB")).unwrap().2);
    for _ in 0..3 {
        assert_eq!(claim(&mut hs, &bob, "BOB").unwrap(), ("signed_curve25519:AAAAZA".to_owned(), fallback.clone()));
    }
    assert!(hs.fallback_key(&bob, device_id!("BOB")).unwrap().2, "reported used");
    let sync = hs.sync(&bob, device_id!("BOB"), None).unwrap();
    assert_eq!(sync.device_unused_fallback_key_types, Some(vec![]));
    assert_eq!(
        sync.device_one_time_keys_count.get(&OneTimeKeyAlgorithm::SignedCurve25519).map(|c| u64::from(*c)),
        Some(0)
    );
}

#[test]
fn a_one_time_key_id_uploaded_again_with_other_content_is_refused() {
    let mut hs = Homeserver::new();
    let bob = user("@bob:test.server");
    let _device = RawDevice::new(&mut hs, &bob, "BOB", 1);
    let id = OwnedOneTimeKeyId::try_from("signed_curve25519:AAAAAQ").unwrap();
    let mut request = upload_keys::v3::Request::new();
    request.one_time_keys.insert(id.clone(), raw(&json!({"key": "a", "signatures": {}})));
    hs.upload_keys(&bob, device_id!("BOB"), request.clone()).unwrap();
    // The same content again: accepted (a client retrying).
    hs.upload_keys(&bob, device_id!("BOB"), request).unwrap();
    let mut other = upload_keys::v3::Request::new();
    other.one_time_keys.insert(id, raw(&json!({"key": "b", "signatures": {}})));
    let error = hs.upload_keys(&bob, device_id!("BOB"), other).unwrap_err();
    assert_eq!((error.status, error.errcode.as_str()), (400, "M_INVALID_PARAM"));
    assert_eq!(hs.one_time_keys(&bob, device_id!("BOB")).values().next().unwrap()["key"], "a");
}

#[test]
fn changed_device_keys_are_accepted_and_served_and_announced() {
    let mut hs = Homeserver::new();
    let (alice, bob) = (user("@alice:test.server"), user("@bob:test.server"));
    let _a = RawDevice::new(&mut hs, &alice, "ALICE", 1);
    let mut b = RawDevice::new(&mut hs, &bob, "BOB", 2);
    let room = hs.create_room(&alice).unwrap();
    hs.join(&room, &bob);
    b.upload(&mut hs, 0).unwrap();
    let since = hs.sync(&alice, device_id!("ALICE"), None).unwrap().next_batch;
    // Someone uploads other identity keys for BOB.
    let mut impostor = RawDevice::new(&mut hs, &bob, "BOB", 3);
    impostor.upload(&mut hs, 0).unwrap();
    let sync = hs.sync(&alice, device_id!("ALICE"), Some(&since)).unwrap();
    assert_eq!(sync.device_lists.changed, vec![bob.clone()]);
    let mut query = get_keys::v3::Request::new();
    query.device_keys.insert(bob.clone(), vec![]);
    let served = hs.query_keys(query).unwrap();
    let keys: Value = serde_json::from_str(served.device_keys[&bob][device_id!("BOB")].json().get()).unwrap();
    assert_eq!(keys, impostor.device_keys());
}

#[test]
fn device_list_changes_and_membership_appear_in_sync() {
    let mut hs = Homeserver::new();
    let (alice, bob, carol) = (user("@alice:test.server"), user("@bob:test.server"), user("@carol:test.server"));
    let _a = RawDevice::new(&mut hs, &alice, "ALICE", 1);
    let mut b = RawDevice::new(&mut hs, &bob, "BOB", 2);
    let mut c = RawDevice::new(&mut hs, &carol, "CAROL", 3);
    let room = hs.create_room(&alice).unwrap();
    let s0 = hs.sync(&alice, device_id!("ALICE"), None).unwrap().next_batch;
    hs.join(&room, &bob);
    let s1 = hs.sync(&alice, device_id!("ALICE"), Some(&s0)).unwrap();
    assert_eq!(s1.device_lists.changed, vec![bob.clone()], "a new room member is announced");
    // Carol (no shared room) changes her devices: not announced; Bob's are.
    c.upload(&mut hs, 0).unwrap();
    b.upload(&mut hs, 0).unwrap();
    let s2 = hs.sync(&alice, device_id!("ALICE"), Some(&s1.next_batch)).unwrap();
    assert_eq!(s2.device_lists.changed, vec![bob.clone()]);
    hs.leave(&room, &bob);
    let s3 = hs.sync(&alice, device_id!("ALICE"), Some(&s2.next_batch)).unwrap();
    assert_eq!(s3.device_lists.left, vec![bob]);
    assert!(s3.device_lists.changed.is_empty());
}

#[test]
fn to_device_messages_are_queued_per_device_with_idempotent_transactions() {
    let mut hs = Homeserver::new();
    let (alice, bob) = (user("@alice:test.server"), user("@bob:test.server"));
    let _a = RawDevice::new(&mut hs, &alice, "ALICE", 1);
    let _b1 = RawDevice::new(&mut hs, &bob, "BOB1", 2);
    let _b2 = RawDevice::new(&mut hs, &bob, "BOB2", 3);
    let send = |hs: &mut Homeserver, txn: &str, target: DeviceIdOrAllDevices| {
        let mut messages = BTreeMap::new();
        messages.insert(bob.clone(), BTreeMap::from([(target, raw(&json!({"n": txn})))]));
        let request = send_event_to_device::v3::Request::new_raw(
            ToDeviceEventType::from("org.example"),
            OwnedTransactionId::from(txn),
            messages,
        );
        hs.send_to_device(&alice, device_id!("ALICE"), request).unwrap();
    };
    send(&mut hs, "t1", DeviceIdOrAllDevices::DeviceId(OwnedDeviceId::from("BOB1")));
    send(&mut hs, "t1", DeviceIdOrAllDevices::DeviceId(OwnedDeviceId::from("BOB1")));
    send(&mut hs, "t2", DeviceIdOrAllDevices::AllDevices);
    let one = hs.sync(&bob, device_id!("BOB1"), None).unwrap();
    let two = hs.sync(&bob, device_id!("BOB2"), None).unwrap();
    assert_eq!(one.to_device.events.len(), 2, "t1 once, t2");
    assert_eq!(two.to_device.events.len(), 1);
    let event: Value = serde_json::from_str(one.to_device.events[0].json().get()).unwrap();
    assert_eq!(event, json!({"type": "org.example", "sender": "@alice:test.server", "content": {"n": "t1"}}));
    // Delivered again until a later sync acknowledges them.
    assert_eq!(hs.sync(&bob, device_id!("BOB1"), None).unwrap().to_device.events.len(), 2);
    let next = hs.sync(&bob, device_id!("BOB1"), Some(&one.next_batch)).unwrap();
    assert!(next.to_device.events.is_empty());
}

#[test]
fn room_events_reach_joined_members_only() {
    let mut hs = Homeserver::new();
    let (alice, bob, carol) = (user("@alice:test.server"), user("@bob:test.server"), user("@carol:test.server"));
    for (u, d) in [(&alice, "A"), (&bob, "B"), (&carol, "C")] {
        hs.login(u, device_id!(d));
    }
    let room = hs.create_room(&alice).unwrap();
    hs.join(&room, &bob);
    let event_id = hs.send_room_event(&room, &alice, "m.room.message", json!({"body": "hi"})).unwrap();
    assert!(hs.send_room_event(&room, &carol, "m.room.message", json!({})).is_err());
    let sync = hs.sync(&bob, device_id!("B"), None).unwrap();
    let events = &sync.rooms.join[&room].timeline.events;
    let event: Value = serde_json::from_str(events[0].json().get()).unwrap();
    assert_eq!(event["event_id"], event_id.as_str());
    assert!(hs.sync(&carol, device_id!("C"), None).unwrap().rooms.join.is_empty());
    assert_eq!(hs.members(&room), vec![alice, bob]);
}

#[test]
fn unknown_endpoints_and_bad_bodies_are_errors() {
    let mut hs = Homeserver::new();
    let alice = user("@alice:test.server");
    hs.login(&alice, device_id!("A"));
    let request = |path: &str, body: &str| {
        http::Request::builder()
            .method("POST")
            .uri(format!("https://test.server/_matrix/client/v3/{path}"))
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    assert_eq!(hs.handle(&alice, device_id!("A"), request("nope", "{}")).status(), 404);
    assert_eq!(hs.handle(&alice, device_id!("A"), request("keys/upload", "{")).status(), 400);
    assert_eq!(hs.handle(&alice, device_id!("A"), request("keys/upload", "{}")).status(), 200);
}

fn cross_signing_key(user: &str, usage: &str, pair: &ferrolm::types::Ed25519Keypair) -> serde_json::Map<String, Value> {
    let public = pair.public_key();
    let Value::Object(map) =
        json!({"user_id": user, "usage": [usage], "keys": {format!("ed25519:{public}"): public.to_base64()}})
    else {
        unreachable!()
    };
    map
}

fn signed_by(
    mut object: serde_json::Map<String, Value>,
    user: &str,
    pair: &ferrolm::types::Ed25519Keypair,
) -> serde_json::Map<String, Value> {
    let id = format!("ed25519:{}", pair.public_key());
    ferrolm_machine::signing::sign_json_with(pair, user, &id, &mut object).unwrap();
    object
}

#[test]
fn cross_signing_keys_need_interactive_auth_to_be_replaced_and_must_be_signed() {
    use ferrolm::types::Ed25519Keypair;
    use ferrolm_machine::cross_signing::KeyUsage;
    use ferrolm_test_homeserver::UiaError;
    let mut hs = Homeserver::new();
    let bob = user("@bob:test.server");
    hs.login(&bob, device_id!("BOB"));
    let (master, ssk) = (Ed25519Keypair::from_seed(&[1; 32]), Ed25519Keypair::from_seed(&[2; 32]));
    let body = |master: &Ed25519Keypair, ssk_signer: &Ed25519Keypair| {
        json!({
            "master_key": cross_signing_key("@bob:test.server", "master", master),
            "self_signing_key": signed_by(cross_signing_key("@bob:test.server", "self_signing", &ssk), "@bob:test.server", ssk_signer),
        })
    };
    // A self-signing key not signed by the master key is refused.
    assert!(matches!(hs.upload_signing_keys(&bob, &body(&master, &ssk)), Err(UiaError::Refused(e)) if e.status == 400));
    // The first upload needs no authentication.
    hs.upload_signing_keys(&bob, &body(&master, &master)).unwrap();
    let served = hs.query_keys(get_keys::v3::Request::new()).unwrap();
    assert!(served.master_keys.is_empty(), "nobody was asked about");
    let mut request = get_keys::v3::Request::new();
    request.device_keys.insert(bob.clone(), vec![]);
    let served = hs.query_keys(request).unwrap();
    assert!(served.master_keys.contains_key(&bob) && served.self_signing_keys.contains_key(&bob));
    // A replacement needs it: a challenge, then the session passes.
    let other = Ed25519Keypair::from_seed(&[3; 32]);
    let Err(UiaError::AuthRequired(challenge)) = hs.upload_signing_keys(&bob, &body(&other, &other)) else {
        panic!("a challenge expected")
    };
    let mut with_auth = body(&other, &other);
    with_auth["auth"] = json!({"type": "m.login.password", "session": challenge["session"]});
    let mut wrong_session = with_auth.clone();
    wrong_session["auth"]["session"] = json!("made-up");
    assert!(matches!(hs.upload_signing_keys(&bob, &wrong_session), Err(UiaError::AuthRequired(_))));
    hs.upload_signing_keys(&bob, &with_auth).unwrap();
    assert_eq!(
        hs.cross_signing_key(&bob, KeyUsage::Master).unwrap()["keys"],
        json!({format!("ed25519:{}", other.public_key()): other.public_key().to_base64()})
    );
}

#[test]
fn signatures_are_checked_before_they_are_merged() {
    use ferrolm::types::Ed25519Keypair;
    use ruma::api::client::keys::upload_signatures;
    let mut hs = Homeserver::new();
    let bob = user("@bob:test.server");
    let mut device = RawDevice::new(&mut hs, &bob, "BOB", 1);
    device.upload(&mut hs, 0).unwrap();
    let (master, ssk) = (Ed25519Keypair::from_seed(&[1; 32]), Ed25519Keypair::from_seed(&[2; 32]));
    let keys = json!({
        "master_key": cross_signing_key("@bob:test.server", "master", &master),
        "self_signing_key": signed_by(cross_signing_key("@bob:test.server", "self_signing", &ssk), "@bob:test.server", &master),
    });
    hs.upload_signing_keys(&bob, &keys).unwrap();
    let Value::Object(mut device_keys) = hs.uploaded_device_keys(&bob, device_id!("BOB")).unwrap() else { panic!() };
    device_keys.remove("signatures");
    let upload = |hs: &mut Homeserver, object: serde_json::Map<String, Value>| {
        let mut signed = upload_signatures::v3::SignedKeys::new();
        signed.add_device_keys(OwnedDeviceId::from("BOB"), raw(&Value::Object(object)));
        hs.upload_signatures(&bob, upload_signatures::v3::Request::new(BTreeMap::from([(bob.clone(), signed)])))
            .unwrap()
    };
    // Signed by a key that is not Bob's self-signing key: refused, nothing merged.
    let forged = signed_by(device_keys.clone(), "@bob:test.server", &Ed25519Keypair::from_seed(&[9; 32]));
    assert!(upload(&mut hs, forged).failures.contains_key(&bob));
    let ssk_id = format!("ed25519:{}", ssk.public_key());
    assert!(
        hs.uploaded_device_keys(&bob, device_id!("BOB")).unwrap()["signatures"]["@bob:test.server"]
            .get(&ssk_id)
            .is_none()
    );
    // Signed by it: merged, next to the device's own signature.
    assert!(upload(&mut hs, signed_by(device_keys, "@bob:test.server", &ssk)).failures.is_empty());
    let served = hs.uploaded_device_keys(&bob, device_id!("BOB")).unwrap();
    assert!(served["signatures"]["@bob:test.server"].get(&ssk_id).is_some());
    assert!(served["signatures"]["@bob:test.server"].get("ed25519:BOB").is_some());
}
