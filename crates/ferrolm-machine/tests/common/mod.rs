//! Helpers shared by the behaviour tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use ferrolm_machine::ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId};
use ferrolm_machine::{
    DecryptedToDeviceEvent, OutgoingRequest, RequestKind, SyncOutcome, ToDeviceError, ToDeviceOutcome,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync};
use serde_json::Value;

/// The JSON body of a request.
pub fn body(request: &OutgoingRequest) -> Value {
    serde_json::from_str(&request.body_json().unwrap()).unwrap()
}

/// The one request of `kind` in `requests`.
pub fn only(requests: &[OutgoingRequest], kind: RequestKind) -> &OutgoingRequest {
    let matching: Vec<_> = requests.iter().filter(|r| r.kind() == kind).collect();
    assert_eq!(matching.len(), 1, "expected one {kind:?} request in {requests:?}");
    matching[0]
}

pub fn of_kind(requests: &[OutgoingRequest], kind: RequestKind) -> Vec<&OutgoingRequest> {
    requests.iter().filter(|r| r.kind() == kind).collect()
}

pub fn user(device: &TestDevice) -> OwnedUserId {
    device.machine.user_id().to_owned()
}

pub fn id(device: &TestDevice) -> (OwnedUserId, OwnedDeviceId) {
    (device.machine.user_id().to_owned(), device.machine.device_id().to_owned())
}

/// Devices that have uploaded their keys, share one room, and track each other.
pub fn meet(hs: &mut Homeserver, devices: &mut [&mut TestDevice]) -> OwnedRoomId {
    let room = hs.create_room(devices[0].machine.user_id()).unwrap();
    for d in devices.iter() {
        hs.join(&room, d.machine.user_id());
    }
    for d in devices.iter_mut() {
        d.settle(hs, 1).unwrap();
    }
    let users: Vec<OwnedUserId> = devices.iter().map(|d| user(d)).collect();
    for d in devices.iter_mut() {
        d.machine.update_tracked_users(&users).unwrap();
        d.settle(hs, 1).unwrap();
    }
    room
}

/// `from` opens Olm sessions with every device of `to_users`; returns how many.
pub fn open_sessions(hs: &mut Homeserver, from: &mut TestDevice, to_users: &[OwnedUserId]) -> usize {
    let Some(claim) = from.machine.get_missing_sessions(to_users).unwrap() else { return 0 };
    let outcome = send(hs, &mut from.machine, &claim).unwrap();
    assert!(outcome.failed_claims.is_empty(), "{:?}", outcome.failed_claims);
    outcome.sessions_created
}

/// `from` sends `content` as `event_type` to `to`'s device over Olm; `to` syncs and returns
/// what it got.
pub fn send_olm(
    hs: &mut Homeserver,
    from: &mut TestDevice,
    to: &mut TestDevice,
    event_type: &str,
    content: Value,
) -> SyncOutcome {
    let encrypted = from.machine.encrypt_to_device(&[id(to)], event_type, &content).unwrap();
    assert!(encrypted.request_id.is_some(), "{encrypted:?}");
    run_requests(hs, &mut from.machine).unwrap();
    sync(hs, &mut to.machine).unwrap()
}

pub fn decrypted(outcome: &SyncOutcome) -> Vec<&DecryptedToDeviceEvent> {
    outcome
        .to_device
        .iter()
        .filter_map(|o| match o {
            ToDeviceOutcome::Decrypted(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn refusals(outcome: &SyncOutcome) -> Vec<&ToDeviceError> {
    outcome
        .to_device
        .iter()
        .filter_map(|o| match o {
            ToDeviceOutcome::Refused { error, .. } => Some(error),
            _ => None,
        })
        .collect()
}

/// The only decrypted event of an outcome.
pub fn the_decrypted(outcome: &SyncOutcome) -> &DecryptedToDeviceEvent {
    let all = decrypted(outcome);
    assert_eq!(all.len(), 1, "expected one decrypted event in {outcome:#?}");
    all[0]
}

/// The only refusal of an outcome.
pub fn the_refusal(outcome: &SyncOutcome) -> &ToDeviceError {
    let all = refusals(outcome);
    assert_eq!(all.len(), 1, "expected one refusal in {outcome:#?}");
    all[0]
}

/// Replaces the last message queued for `to` by a copy whose MAC is broken.
pub fn break_last_message(hs: &mut Homeserver, to: &TestDevice) {
    let to_key = to.machine.identity_keys().curve25519.to_base64();
    let queue = hs.to_device_queue(&user(to), to.machine.device_id()).unwrap();
    let last = queue.last_mut().unwrap();
    let body = last.event["content"]["ciphertext"][&to_key]["body"].as_str().unwrap().to_owned();
    let mut bytes = ferrolm::types::base64_decode(&body).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    last.event["content"]["ciphertext"][&to_key]["body"] = serde_json::json!(ferrolm::types::base64_encode(&bytes));
}
