//! Interoperability of ferrolm-machine's key verification with matrix-sdk-crypto 0.18's
//! (`VerificationRequest`, `Sas`), each machine driven through the in-process test homeserver
//! over the client-server API's JSON (the `machine` tests' driver): SAS to completion in both
//! directions (who requests, who starts), the emoji and decimals equal on both sides, each side
//! marking the other's device verified; with cross-signing, the identities verified too and the
//! devices trusted through the chain; cancels (user, mismatched SAS) understood by the other
//! side with the same code; in-room SAS; QR codes in every mode and both directions (`qr`).
//!
//! Nothing crosses between the two machines except through the homeserver.

#![allow(clippy::cloned_ref_to_slice_refs)]

#[allow(dead_code)]
#[path = "../machine/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../machine/msc.rs"]
mod msc;
mod qr;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{FE_DEVICE, FE_USER, MSC_DEVICE, MSC_USER, World, fe_id, fe_read};
use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::events::key::verification::ShortAuthenticationString;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::verification::VerificationState;
use ferrolm_machine::{IdentityState, LocalTrust, RoomVerificationMessage, SyncOutcome};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, bootstrap_cross_signing, run_requests, send, sync};
use matrix_sdk_crypto::{AcceptSettings, Sas, Verification};
use msc::{MscDevice, block_on};
use serde_json::Value;

/// Wall-clock time: matrix-sdk-crypto checks a request's timestamp against its own clock
/// (at most 10 minutes old, 5 in the future), so ferrolm's clock is set to it.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The two devices, met in a room, with cross-signing bootstrapped on both if asked.
fn world(cross_signing: bool) -> World {
    let mut hs = Homeserver::new();
    let fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 7, now_ms()).unwrap();
    let msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    let room = hs.create_room(fe.machine.user_id()).unwrap();
    hs.join(&room, &msc.user_id());
    let mut w = World { hs, room, fe, msc };
    w.meet();
    if cross_signing {
        bootstrap_cross_signing(&mut w.hs, &mut w.fe.machine, false).unwrap();
        w.msc.bootstrap_cross_signing(&mut w.hs);
        w.settle();
    }
    w
}

/// Delivers both sides' messages, back and forth, until neither has more to send (ferrolm's
/// requests, msc syncs and sends, ferrolm syncs). Returns ferrolm's sync outcomes.
fn pump(w: &mut World) -> Vec<SyncOutcome> {
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        run_requests(&mut w.hs, &mut w.fe.machine).unwrap();
        w.msc.sync(&mut w.hs);
        w.msc.run_requests(&mut w.hs);
        outcomes.push(sync(&mut w.hs, &mut w.fe.machine).unwrap());
    }
    run_requests(&mut w.hs, &mut w.fe.machine).unwrap();
    outcomes
}

fn ids(w: &World) -> (OwnedUserId, OwnedDeviceId, OwnedUserId, OwnedDeviceId) {
    let (fe_user, fe_device) = fe_id(&w.fe);
    let (msc_user, msc_device) = w.msc.id();
    (fe_user, fe_device, msc_user, msc_device)
}

fn fe_state(w: &World, flow: &str) -> VerificationState {
    w.fe.machine.verification(&w.msc.user_id(), flow).expect("ferrolm knows the flow").state
}

fn fe_cancel(w: &World, flow: &str) -> (String, bool) {
    match fe_state(w, flow) {
        VerificationState::Cancelled(c) => (c.code.as_str().to_owned(), c.by_us),
        other => panic!("ferrolm's flow is not cancelled: {other:?}"),
    }
}

fn msc_sas(w: &World, flow: &str) -> Sas {
    match w.msc.machine.get_verification(&fe_id(&w.fe).0, flow) {
        Some(Verification::SasV1(sas)) => *sas,
        other => panic!("msc has no SAS for the flow: {other:?}"),
    }
}

fn msc_cancel(sas: &Sas) -> (String, bool) {
    let info = sas.cancel_info().expect("msc's SAS is cancelled");
    (info.cancel_code().as_str().to_owned(), info.cancelled_by_us())
}

/// A to-device request (by ferrolm or by msc), accepted by the other; then SAS started (by
/// ferrolm or by msc) and accepted, keys exchanged. Returns the flow id and msc's SAS, both
/// sides showing the SAS.
fn to_device_sas(w: &mut World, fe_requests: bool, fe_starts: bool) -> (String, Sas) {
    let (fe_user, fe_device, msc_user, _) = ids(w);
    let flow = if fe_requests {
        let (flow, _) = w.fe.machine.request_verification(&msc_user).unwrap();
        pump(w);
        let request = w.msc.machine.get_verification_request(&fe_user, flow.as_str()).expect("msc got the request");
        assert!(!request.we_started());
        assert_eq!(request.other_device_id(), Some(fe_device.clone()));
        let ready = request.accept().expect("msc answers ready");
        w.msc.send_verification(&mut w.hs, &ready);
        pump(w);
        assert_eq!(fe_state(w, flow.as_str()), VerificationState::Ready { showing_qr: false });
        assert!(request.is_ready());
        flow.as_str().to_owned()
    } else {
        let device = w.msc.device(&fe_user, &fe_device).unwrap();
        let (request, outgoing) = device.request_verification();
        w.msc.send_verification(&mut w.hs, &outgoing);
        let flow = request.flow_id().as_str().to_owned();
        let outcomes = pump(w);
        let seen: Vec<_> = outcomes.iter().flat_map(|o| o.verifications.iter()).collect();
        assert!(seen.iter().any(|v| v.flow_id.as_str() == flow && v.state == VerificationState::RequestReceived));
        assert_eq!(fe_state(w, &flow), VerificationState::RequestReceived);
        w.fe.machine.accept_verification(&msc_user, &flow).unwrap();
        pump(w);
        assert!(request.is_ready(), "msc reads ferrolm's ready");
        assert_eq!(fe_state(w, &flow), VerificationState::Ready { showing_qr: false });
        flow
    };
    let sas = if fe_starts {
        w.fe.machine.start_sas(&msc_user, &flow).unwrap();
        pump(w);
        let sas = msc_sas(w, &flow);
        // msc's `Sas::we_started` says who sent the request, not who sent the start.
        assert_eq!(sas.we_started(), !fe_requests);
        assert!(sas.supports_emoji());
        let accept = sas.accept().expect("msc accepts the start");
        w.msc.send_verification(&mut w.hs, &accept);
        pump(w);
        sas
    } else {
        let request = w.msc.machine.get_verification_request(&fe_user, &flow).unwrap();
        let (sas, start) = block_on(request.start_sas()).unwrap().expect("msc starts SAS");
        w.msc.send_verification(&mut w.hs, &start);
        pump(w);
        assert_eq!(fe_state(w, &flow), VerificationState::SasStartReceived);
        w.fe.machine.accept_verification(&msc_user, &flow).unwrap();
        pump(w);
        sas
    };
    assert!(sas.can_be_presented(), "msc shows the SAS: {:?}", sas.state());
    assert!(matches!(fe_state(w, &flow), VerificationState::SasKeysExchanged { confirmed: false, .. }));
    (flow, sas)
}

/// Both sides show the same seven emoji (symbols and the spec's names) and the same numbers.
fn assert_same_sas(w: &World, flow: &str, sas: &Sas) {
    let fe = w.fe.machine.sas_display(&w.msc.user_id(), flow).expect("ferrolm shows a SAS");
    let fe_emoji = fe.emoji.expect("both sides support emoji");
    let msc_emoji = sas.emoji().expect("msc shows emoji");
    let fe_emoji: Vec<(&str, &str)> = fe_emoji.iter().map(|e| (e.symbol, e.name)).collect();
    let msc_emoji: Vec<(&str, &str)> = msc_emoji.iter().map(|e| (e.symbol, e.description)).collect();
    assert_eq!(fe_emoji, msc_emoji);
    assert_eq!(Some(fe.decimals), sas.decimals());
    let (a, b, c) = fe.decimals;
    assert!([a, b, c].iter().all(|d| (1000..=9191).contains(d)));
}

/// Both users confirm (ferrolm first, or msc first); msc's signature upload (if any) is sent.
fn confirm_both(w: &mut World, flow: &str, sas: &Sas, fe_first: bool) {
    let (fe_user, fe_device, msc_user, msc_device) = ids(w);
    let msc_confirm = |w: &mut World| {
        let (requests, signatures) = block_on(sas.confirm()).unwrap();
        assert!(!requests.is_empty(), "msc sends its MAC");
        for request in &requests {
            w.msc.send_verification(&mut w.hs, request);
        }
        if let Some(signatures) = signatures {
            w.msc.send_signature_upload(&mut w.hs, &signatures);
        }
    };
    if fe_first {
        w.fe.machine.confirm_verification(&msc_user, flow).unwrap();
        pump(w);
        // ferrolm has no MAC from msc yet, msc has not confirmed: nobody trusts anybody yet.
        assert!(!sas.is_done());
        assert!(!w.msc.device(&fe_user, &fe_device).unwrap().is_verified());
        let trust = w.fe.machine.device(&msc_user, &msc_device).unwrap().unwrap().local_trust;
        assert_eq!(trust, LocalTrust::Unset);
        msc_confirm(w);
    } else {
        msc_confirm(w);
        pump(w);
        assert!(!sas.is_done());
        let trust = w.fe.machine.device(&msc_user, &msc_device).unwrap().unwrap().local_trust;
        assert_eq!(trust, LocalTrust::Unset, "no trust before ferrolm's user confirms");
        w.fe.machine.confirm_verification(&msc_user, flow).unwrap();
    }
    pump(w);
}

/// After a completed SAS: both flows done, each side's device verified by the other.
fn assert_devices_verified(w: &World, flow: &str, sas: &Sas) {
    let (fe_user, fe_device, msc_user, msc_device) = ids(w);
    assert!(sas.is_done(), "msc's SAS is done: {:?}", sas.state());
    assert!(!sas.is_cancelled());
    match fe_state(w, flow) {
        VerificationState::Done(outcome) => {
            assert_eq!(outcome.user_id, msc_user);
            assert_eq!(outcome.verified_devices, vec![(msc_device.clone(), fe_ed25519(w))]);
        }
        other => panic!("ferrolm's flow is not done: {other:?}"),
    }
    let msc_sees = w.msc.device(&fe_user, &fe_device).unwrap();
    assert!(msc_sees.is_locally_trusted(), "msc marked ferrolm's device verified");
    assert!(msc_sees.is_verified());
    let fe_sees = w.fe.machine.device(&msc_user, &msc_device).unwrap().unwrap();
    assert_eq!(fe_sees.local_trust, LocalTrust::Verified, "ferrolm marked msc's device verified");
    let trust = w.fe.machine.device_trust(&msc_user, &msc_device).unwrap().unwrap();
    assert!(trust.is_verified());
}

/// msc's device key, as ferrolm stored it.
fn fe_ed25519(w: &World) -> ferrolm::types::Ed25519PublicKey {
    let (msc_user, msc_device) = w.msc.id();
    let key = w.fe.machine.device(&msc_user, &msc_device).unwrap().unwrap().ed25519_key;
    assert_eq!(key.to_base64(), w.msc.machine.identity_keys().ed25519.to_base64());
    key
}

fn sas_to_completion(fe_requests: bool, fe_starts: bool, fe_confirms_first: bool) {
    let mut w = world(false);
    let (flow, sas) = to_device_sas(&mut w, fe_requests, fe_starts);
    assert_same_sas(&w, &flow, &sas);
    confirm_both(&mut w, &flow, &sas, fe_confirms_first);
    assert_devices_verified(&w, &flow, &sas);
    // Nothing left to send on either side: no cancel after done.
    assert!(w.fe.machine.outgoing_requests().unwrap().is_empty());
    assert!(w.msc.run_requests(&mut w.hs).is_empty());
}

#[test]
fn ferrolm_requests_ferrolm_starts_sas_to_completion() {
    sas_to_completion(true, true, true);
}

#[test]
fn ferrolm_requests_msc_starts_sas_to_completion() {
    sas_to_completion(true, false, false);
}

#[test]
fn msc_requests_ferrolm_starts_sas_to_completion() {
    sas_to_completion(false, true, false);
}

#[test]
fn msc_requests_msc_starts_sas_to_completion() {
    sas_to_completion(false, false, true);
}

/// With cross-signing on both sides, the SAS covers the master keys too: each side's identity
/// of the other is verified (ferrolm signs msc's master key with its user-signing key and msc
/// signs ferrolm's), and the other's device is trusted both locally and through the chain
/// (their master key, verified, signed their self-signing key, which signed the device).
fn sas_with_cross_signing(fe_requests: bool, fe_starts: bool) -> World {
    let mut w = world(true);
    let (fe_user, fe_device, msc_user, msc_device) = ids(&w);
    // Before: each knows the other's identity, pinned, not verified.
    assert_eq!(w.fe.machine.user_identity(&msc_user).unwrap().expect("msc's identity").state, IdentityState::Pinned);
    let msc_identity = block_on(w.msc.machine.get_identity(&fe_user, None)).unwrap().expect("ferrolm's identity");
    assert!(!msc_identity.is_verified());
    assert!(block_on(w.msc.machine.cross_signing_status()).is_complete());
    assert!(!w.fe.machine.device_trust(&msc_user, &msc_device).unwrap().unwrap().is_verified());

    let (flow, sas) = to_device_sas(&mut w, fe_requests, fe_starts);
    assert_same_sas(&w, &flow, &sas);
    confirm_both(&mut w, &flow, &sas, fe_starts);
    assert!(sas.is_done(), "msc's SAS is done: {:?}", sas.state());
    let outcome = match fe_state(&w, &flow) {
        VerificationState::Done(outcome) => outcome,
        other => panic!("ferrolm's flow is not done: {other:?}"),
    };
    let msc_master = w.fe.machine.user_identity(&msc_user).unwrap().unwrap().master_key;
    assert_eq!(outcome.verified_master_key, Some(msc_master), "the SAS covered msc's master key");
    // Let both upload their signatures and learn the other's.
    w.settle();

    // ferrolm: msc's identity verified, msc's device trusted through it as well as locally.
    let identity = w.fe.machine.user_identity(&msc_user).unwrap().unwrap();
    assert_eq!(identity.state, IdentityState::Verified);
    let trust = w.fe.machine.device_trust(&msc_user, &msc_device).unwrap().unwrap();
    assert!(trust.cross_signed, "msc's self-signing key signed its device");
    assert_eq!(trust.owner_identity, Some(IdentityState::Verified));
    assert_eq!(trust.local_trust, LocalTrust::Verified);
    assert!(trust.is_verified());

    // msc: ferrolm's identity verified (signed by msc's user-signing key), ferrolm's device
    // trusted through the chain as well as locally.
    let identity = block_on(w.msc.machine.get_identity(&fe_user, None)).unwrap().unwrap();
    assert!(identity.is_verified(), "msc verified ferrolm's identity");
    let device = w.msc.device(&fe_user, &fe_device).unwrap();
    assert!(device.is_cross_signed_by_owner(), "ferrolm's self-signing key signed its device");
    assert!(device.is_cross_signing_trusted(), "msc trusts ferrolm's device through the chain");
    assert!(device.is_locally_trusted());

    // The homeserver holds each side's user-signing signature over the other's master key.
    let served = |hs: &mut Homeserver, asker: (&OwnedUserId, &OwnedDeviceId), of: &OwnedUserId| -> serde_json::Value {
        let body = serde_json::json!({"device_keys": {of.as_str(): []}});
        let request = http::Request::post("https://test.server/_matrix/client/v3/keys/query")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let response = hs.handle(asker.0, asker.1, request);
        assert_eq!(response.status(), 200);
        let value: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        value["master_keys"][of.as_str()]["signatures"].clone()
    };
    let on_msc_master = served(&mut w.hs, (&fe_user, &fe_device), &msc_user);
    let on_fe_master = served(&mut w.hs, (&msc_user, &msc_device), &fe_user);
    assert_eq!(on_msc_master[fe_user.as_str()].as_object().map(|o| o.len()), Some(1), "{on_msc_master}");
    assert_eq!(on_fe_master[msc_user.as_str()].as_object().map(|o| o.len()), Some(1), "{on_fe_master}");
    w
}

#[test]
fn cross_signed_sas_ferrolm_requesting_verifies_both_identities() {
    sas_with_cross_signing(true, true);
}

#[test]
fn cross_signed_sas_msc_requesting_verifies_both_identities() {
    sas_with_cross_signing(false, false);
}

/// After a cross-signed SAS, each user adds a device and signs it with their self-signing
/// key: the other side trusts it through the chain alone (never verified locally), and not
/// before it is signed.
#[test]
fn after_a_cross_signed_sas_new_signed_devices_are_trusted_through_the_chain() {
    let mut w = sas_with_cross_signing(true, false);
    let (fe_user, _, msc_user, _) = ids(&w);
    let (fe2_device, msc2_device) = (OwnedDeviceId::from("FERROLM2"), OwnedDeviceId::from("MSCDEVICE2"));
    let mut fe2 = TestDevice::new(&mut w.hs, FE_USER, fe2_device.as_str(), 8, now_ms()).unwrap();
    let mut msc2 = MscDevice::new(&mut w.hs, MSC_USER, msc2_device.as_str());
    fe2.settle(&mut w.hs, 1).unwrap();
    msc2.settle(&mut w.hs, 1);
    w.settle();
    assert!(!w.fe.machine.device_trust(&msc_user, &msc2_device).unwrap().expect("msc's new device").is_verified());
    assert!(!w.msc.device(&fe_user, &fe2_device).expect("ferrolm's new device").is_verified());

    let key = w.fe.machine.device(&fe_user, &fe2_device).unwrap().unwrap().ed25519_key;
    let upload = w.fe.machine.verify_device(&fe_user, &fe2_device, &key).unwrap().expect("a signature upload");
    send(&mut w.hs, &mut w.fe.machine, &upload).unwrap();
    let own = w.msc.device(&msc_user, &msc2_device).unwrap();
    let upload = block_on(own.verify()).unwrap();
    w.msc.send_signature_upload(&mut w.hs, &upload);
    w.settle();

    let trust = w.fe.machine.device_trust(&msc_user, &msc2_device).unwrap().unwrap();
    assert!(trust.cross_signed, "msc's self-signing key signed its new device");
    assert_eq!(trust.owner_identity, Some(IdentityState::Verified));
    assert_eq!(trust.local_trust, LocalTrust::Unset);
    assert!(trust.is_verified(), "ferrolm trusts msc's new device through the chain");
    let device = w.msc.device(&fe_user, &fe2_device).unwrap();
    assert!(device.is_cross_signed_by_owner(), "ferrolm's self-signing key signed its new device");
    assert!(!device.is_locally_trusted());
    assert!(device.is_cross_signing_trusted(), "msc trusts ferrolm's new device through the chain");
}

/// Cancels, either side, either reason: the other side's flow cancelled with the same code.
fn cancel(fe_cancels: bool, mismatch: bool) {
    let mut w = world(false);
    let (fe_user, fe_device, msc_user, msc_device) = ids(&w);
    let (flow, sas) = to_device_sas(&mut w, !fe_cancels, true);
    let code = if mismatch { "m.mismatched_sas" } else { "m.user" };
    if fe_cancels {
        if mismatch {
            w.fe.machine.sas_mismatch(&msc_user, &flow).unwrap();
        } else {
            w.fe.machine.cancel_verification(&msc_user, &flow).unwrap();
        }
    } else {
        let request = if mismatch {
            sas.cancel_with_code(ferrolm_machine::ruma::events::key::verification::cancel::CancelCode::MismatchedSas)
        } else {
            sas.cancel()
        };
        w.msc.send_verification(&mut w.hs, &request.expect("msc cancels"));
    }
    pump(&mut w);
    assert!(sas.is_cancelled());
    assert_eq!(fe_cancel(&w, &flow), (code.to_owned(), fe_cancels));
    assert_eq!(msc_cancel(&sas), (code.to_owned(), !fe_cancels));
    // Nobody trusts anybody; nobody answers a cancel (no cancel loop).
    assert!(!w.msc.device(&fe_user, &fe_device).unwrap().is_verified());
    assert_eq!(w.fe.machine.device(&msc_user, &msc_device).unwrap().unwrap().local_trust, LocalTrust::Unset);
    assert!(w.fe.machine.outgoing_requests().unwrap().is_empty());
    assert!(w.msc.run_requests(&mut w.hs).is_empty());
    // Confirming a cancelled flow does nothing on either side.
    assert!(w.fe.machine.confirm_verification(&msc_user, &flow).is_err());
    let (requests, signatures) = block_on(sas.confirm()).unwrap();
    assert!(requests.is_empty() && signatures.is_none());
}

#[test]
fn ferrolm_user_cancel_is_understood_by_msc() {
    cancel(true, false);
}

#[test]
fn msc_user_cancel_is_understood_by_ferrolm() {
    cancel(false, false);
}

#[test]
fn ferrolm_mismatched_sas_is_understood_by_msc() {
    cancel(true, true);
}

#[test]
fn msc_mismatched_sas_is_understood_by_ferrolm() {
    cancel(false, true);
}

/// A room event of a sync, stamped with wall-clock time: the test homeserver stamps events
/// with their timeline position (it has no clock), and matrix-sdk-crypto ignores an in-room
/// request more than 10 minutes old, as a real server's timestamp would not be.
fn stamped(event: &Raw<AnySyncTimelineEvent>) -> Value {
    let mut value: Value = serde_json::from_str(event.json().get()).unwrap();
    value["origin_server_ts"] = now_ms().into();
    value
}

/// In-room: ferrolm's room messages sent as room events, msc's sent by its driver; each side
/// reads the other's from its sync's timeline (ferrolm its own too: the request's echo names
/// the flow), back and forth until quiet.
fn room_pump(w: &mut World, mut fe_out: Vec<RoomVerificationMessage>) {
    let (fe_user, _, msc_user, _) = ids(w);
    let room = w.room.clone();
    for _ in 0..5 {
        for m in fe_out.drain(..) {
            assert_eq!(m.room_id, room);
            w.hs.send_room_event(&room, &fe_user, &m.event_type, m.content).unwrap();
        }
        run_requests(&mut w.hs, &mut w.fe.machine).unwrap();
        let synced = w.msc.sync(&mut w.hs);
        for event in synced.timelines.get(&room).into_iter().flatten() {
            let value = stamped(event);
            if value["sender"] != msc_user.as_str() {
                w.msc.receive_room_verification_event(&room, &value);
            }
        }
        w.msc.run_requests(&mut w.hs);
        let (_, events) = fe_read(&mut w.hs, &mut w.fe.machine, &room);
        for event in &events {
            let raw = Raw::from_json_string(stamped(event).to_string()).unwrap();
            fe_out.extend(w.fe.machine.receive_room_verification_event(&room, &raw).unwrap().room_messages);
        }
    }
    assert!(fe_out.is_empty(), "ferrolm still has room messages: {fe_out:?}");
}

/// In-room SAS, ferrolm requesting (in the room both are in), msc starting SAS: the same
/// emoji, both confirm, each marks the other's device verified.
#[test]
fn in_room_sas_ferrolm_requesting_to_completion() {
    let mut w = world(false);
    let (fe_user, _, msc_user, _) = ids(&w);
    let room = w.room.clone();
    let content = w.fe.machine.verification_request_content(&msc_user);
    let flow = w.hs.send_room_event(&room, &fe_user, "m.room.message", content).unwrap();
    room_pump(&mut w, Vec::new());
    assert_eq!(fe_state(&w, flow.as_str()), VerificationState::Requested);
    let request = w.msc.machine.get_verification_request(&fe_user, flow.as_str()).expect("msc got the request");
    assert_eq!(request.room_id(), Some(&*room));
    w.msc.send_verification(&mut w.hs, &request.accept().expect("msc answers ready"));
    room_pump(&mut w, Vec::new());
    assert_eq!(fe_state(&w, flow.as_str()), VerificationState::Ready { showing_qr: false });
    let (sas, start) = block_on(request.start_sas()).unwrap().expect("msc starts SAS");
    w.msc.send_verification(&mut w.hs, &start);
    room_pump(&mut w, Vec::new());
    assert_eq!(fe_state(&w, flow.as_str()), VerificationState::SasStartReceived);
    let accept = w.fe.machine.accept_verification(&msc_user, flow.as_str()).unwrap();
    assert!(accept.request_ids.is_empty(), "in-room: nothing goes to-device");
    room_pump(&mut w, accept.room_messages);
    assert!(sas.can_be_presented(), "msc shows the SAS: {:?}", sas.state());
    assert_same_sas(&w, flow.as_str(), &sas);

    let confirm = w.fe.machine.confirm_verification(&msc_user, flow.as_str()).unwrap();
    room_pump(&mut w, confirm.room_messages);
    let (requests, signatures) = block_on(sas.confirm()).unwrap();
    assert!(signatures.is_none(), "no cross-signing here");
    for request in &requests {
        w.msc.send_verification(&mut w.hs, request);
    }
    room_pump(&mut w, Vec::new());
    assert_devices_verified(&w, flow.as_str(), &sas);
}

/// In-room SAS, msc requesting (through ferrolm's identity: msc asks in a room only a user
/// with a cross-signing identity), ferrolm starting SAS.
#[test]
fn in_room_sas_msc_requesting_to_completion() {
    let mut w = world(true);
    let (fe_user, _, msc_user, _) = ids(&w);
    let room = w.room.clone();
    let identity = block_on(w.msc.machine.get_identity(&fe_user, None)).unwrap().expect("ferrolm's identity");
    let identity = identity.other().expect("another user's identity");
    let content = identity.verification_request_content(None);
    let content = serde_json::to_value(&content).unwrap();
    let flow = w.hs.send_room_event(&room, &msc_user, "m.room.message", content).unwrap();
    let request = identity.request_verification(&room, &flow, None);
    room_pump(&mut w, Vec::new());
    assert_eq!(fe_state(&w, flow.as_str()), VerificationState::RequestReceived);
    let ready = w.fe.machine.accept_verification(&msc_user, flow.as_str()).unwrap();
    room_pump(&mut w, ready.room_messages);
    assert!(request.is_ready(), "msc reads ferrolm's ready");
    let start = w.fe.machine.start_sas(&msc_user, flow.as_str()).unwrap();
    room_pump(&mut w, start.room_messages);
    let sas = msc_sas(&w, flow.as_str());
    w.msc.send_verification(&mut w.hs, &sas.accept().expect("msc accepts"));
    room_pump(&mut w, Vec::new());
    assert!(sas.can_be_presented(), "msc shows the SAS: {:?}", sas.state());
    assert_same_sas(&w, flow.as_str(), &sas);

    let (requests, signatures) = block_on(sas.confirm()).unwrap();
    for request in &requests {
        w.msc.send_verification(&mut w.hs, request);
    }
    if let Some(signatures) = signatures {
        w.msc.send_signature_upload(&mut w.hs, &signatures);
    }
    room_pump(&mut w, Vec::new());
    let confirm = w.fe.machine.confirm_verification(&msc_user, flow.as_str()).unwrap();
    room_pump(&mut w, confirm.room_messages);
    assert_devices_verified(&w, flow.as_str(), &sas);
    w.settle();
    assert_eq!(w.fe.machine.user_identity(&msc_user).unwrap().unwrap().state, IdentityState::Verified);
    let identity = block_on(w.msc.machine.get_identity(&fe_user, None)).unwrap().unwrap();
    assert!(identity.is_verified(), "msc verified ferrolm's identity in-room");
}

/// A request cancelled before it is answered: ferrolm cancels its own, msc cancels its own.
#[test]
fn a_request_cancelled_before_ready_is_cancelled_on_both_sides() {
    let mut w = world(false);
    let (fe_user, fe_device, msc_user, _) = ids(&w);
    let (flow, _) = w.fe.machine.request_verification(&msc_user).unwrap();
    pump(&mut w);
    let request = w.msc.machine.get_verification_request(&fe_user, flow.as_str()).unwrap();
    w.fe.machine.cancel_verification(&msc_user, flow.as_str()).unwrap();
    pump(&mut w);
    assert!(request.is_cancelled());
    let info = request.cancel_info().unwrap();
    assert_eq!((info.cancel_code().as_str(), info.cancelled_by_us()), ("m.user", false));
    assert_eq!(fe_cancel(&w, flow.as_str()), ("m.user".to_owned(), true));

    let device = w.msc.device(&fe_user, &fe_device).unwrap();
    let (request, outgoing) = device.request_verification();
    w.msc.send_verification(&mut w.hs, &outgoing);
    let flow = request.flow_id().as_str().to_owned();
    pump(&mut w);
    assert_eq!(fe_state(&w, &flow), VerificationState::RequestReceived);
    w.msc.send_verification(&mut w.hs, &request.cancel().expect("msc cancels its request"));
    pump(&mut w);
    assert_eq!(fe_cancel(&w, &flow), ("m.user".to_owned(), false));
    assert!(w.fe.machine.accept_verification(&msc_user, &flow).is_err());
}

/// msc accepts ferrolm's start with decimals only: neither side shows emoji, both show the
/// same numbers, and the SAS still completes.
#[test]
fn msc_accepting_decimals_only_gives_equal_decimals_and_no_emoji() {
    let mut w = world(false);
    let (fe_user, _, msc_user, _) = ids(&w);
    let (flow, _) = w.fe.machine.request_verification(&msc_user).unwrap();
    let flow = flow.as_str().to_owned();
    pump(&mut w);
    let request = w.msc.machine.get_verification_request(&fe_user, &flow).unwrap();
    w.msc.send_verification(&mut w.hs, &request.accept().unwrap());
    pump(&mut w);
    w.fe.machine.start_sas(&msc_user, &flow).unwrap();
    pump(&mut w);
    let sas = msc_sas(&w, &flow);
    let settings = AcceptSettings::with_allowed_methods(vec![ShortAuthenticationString::Decimal]);
    w.msc.send_verification(&mut w.hs, &sas.accept_with_settings(settings).expect("msc accepts"));
    pump(&mut w);
    assert!(sas.can_be_presented(), "msc shows the SAS: {:?}", sas.state());
    assert!(!sas.supports_emoji(), "msc knows emoji were not agreed");
    // msc's `Sas::emoji` still returns seven emoji (it does not look at the agreement; an app
    // asks `supports_emoji` first), ferrolm shows none.
    assert!(sas.emoji().is_some());
    let fe = w.fe.machine.sas_display(&msc_user, &flow).expect("ferrolm shows a SAS");
    assert_eq!(fe.emoji, None, "emoji were not agreed");
    assert_eq!(Some(fe.decimals), sas.decimals());
    confirm_both(&mut w, &flow, &sas, true);
    assert_devices_verified(&w, &flow, &sas);
}
