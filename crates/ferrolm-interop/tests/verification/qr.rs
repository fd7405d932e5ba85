//! QR code verification (`m.qr_code.show.v1`, `m.qr_code.scan.v1`, `m.reciprocate.v1`) with
//! matrix-sdk-crypto 0.18 built with its `qrcode` feature (matrix-sdk-qrcode): the bytes one
//! side shows are the bytes the other side scans, in every mode and both directions.
//!
//! - Another user (mode 0x00): msc shows and ferrolm scans, and the reverse; afterwards each
//!   side's identity of the other is verified, its user-signing signature served.
//! - Self-verification: a new msc device of ferrolm's user, which does not trust the master
//!   key yet, shows its code (mode 0x02) and ferrolm, holding the private keys, scans it; and
//!   ferrolm shows its code (mode 0x01, master key trusted) for the new msc device to scan.
//!   Either way ferrolm's self-signing key signs the msc device and msc trusts the master key.
//! - Refusals both sides understand: a code whose key was altered (`m.key_mismatch` from the
//!   scanner), a scan that sends back another secret (`m.key_mismatch` from the shower, reported
//!   as a possible attack), the user saying the other device did not scan (`m.user`); no trust
//!   changes on either side.
//! - In-room: ferrolm requests in the room, msc shows, ferrolm scans.

use ferrolm_machine::ruma::events::key::verification::VerificationMethod;
use matrix_sdk_crypto::QrVerification;
use matrix_sdk_crypto::matrix_sdk_qrcode::QrVerificationData;

use super::*;

/// The methods msc offers: its default (`m.sas.v1`, `m.qr_code.show.v1`, `m.reciprocate.v1`)
/// and `m.qr_code.scan.v1`, which an app adds when the device has a camera.
fn msc_methods() -> Vec<VerificationMethod> {
    vec![
        VerificationMethod::SasV1,
        VerificationMethod::QrCodeShowV1,
        VerificationMethod::QrCodeScanV1,
        VerificationMethod::ReciprocateV1,
    ]
}

/// A to-device request (ferrolm's or msc's) answered by the other side: both ready, with the
/// QR methods (show, scan, reciprocate) on both sides. Returns the flow id.
fn ready(w: &mut World, fe_requests: bool) -> String {
    let (fe_user, fe_device, msc_user, _) = ids(w);
    let flow = if fe_requests {
        let (flow, _) = w.fe.machine.request_verification(&msc_user).unwrap();
        pump(w);
        let request = w.msc.machine.get_verification_request(&fe_user, flow.as_str()).expect("msc got the request");
        let ready = request.accept_with_methods(msc_methods()).expect("msc answers ready");
        w.msc.send_verification(&mut w.hs, &ready);
        pump(w);
        assert!(request.is_ready());
        flow.as_str().to_owned()
    } else {
        let device = w.msc.device(&fe_user, &fe_device).expect("msc knows ferrolm's device");
        let (request, outgoing) = device.request_verification_with_methods(msc_methods());
        w.msc.send_verification(&mut w.hs, &outgoing);
        let flow = request.flow_id().as_str().to_owned();
        pump(w);
        assert_eq!(fe_state(w, &flow), VerificationState::RequestReceived);
        w.fe.machine.accept_verification(&msc_user, &flow).unwrap();
        pump(w);
        assert!(request.is_ready(), "msc reads ferrolm's ready");
        flow
    };
    assert_eq!(fe_state(w, &flow), VerificationState::Ready { showing_qr: false });
    let request = w.msc.machine.get_verification_request(&fe_user, &flow).unwrap();
    let theirs = request.their_supported_methods().expect("msc knows ferrolm's methods");
    let ours = request.our_supported_methods().expect("msc knows its methods");
    for method in ["m.qr_code.show.v1", "m.qr_code.scan.v1", "m.reciprocate.v1"] {
        assert!(theirs.iter().any(|m| m.as_str() == method), "ferrolm offers {method}: {theirs:?}");
        assert!(ours.iter().any(|m| m.as_str() == method), "msc offers {method}: {ours:?}");
    }
    flow
}

/// msc shows its code for `flow`: its bytes.
fn msc_shows(w: &mut World, flow: &str) -> (QrVerification, Vec<u8>) {
    let fe_user = fe_id(&w.fe).0;
    let request = w.msc.machine.get_verification_request(&fe_user, flow).unwrap();
    let qr = block_on(request.generate_qr_code()).unwrap().expect("msc shows a QR code");
    let bytes = qr.to_bytes().unwrap();
    (qr, bytes)
}

/// msc scans ferrolm's code `bytes` and sends the reciprocation (the secret back).
fn msc_scans(w: &mut World, flow: &str, bytes: &[u8]) -> QrVerification {
    let fe_user = fe_id(&w.fe).0;
    let request = w.msc.machine.get_verification_request(&fe_user, flow).unwrap();
    let data = QrVerificationData::from_bytes(bytes).expect("msc reads ferrolm's code");
    assert_eq!(data.flow_id(), flow);
    let qr = block_on(request.scan_qr_code(data)).expect("msc accepts ferrolm's code").expect("a QR flow");
    let start = qr.reciprocate().expect("msc sends the secret back");
    w.msc.send_verification(&mut w.hs, &start);
    pump(w);
    qr
}

/// ferrolm's QR code for `flow`, parsed back by msc: mode and keys as ferrolm means them.
fn fe_shows(w: &mut World, flow: &str) -> Vec<u8> {
    let msc_user = w.msc.user_id();
    let code = w.fe.machine.generate_qr_code(&msc_user, flow).unwrap();
    assert_eq!(fe_state(w, flow), VerificationState::Ready { showing_qr: true });
    code.to_bytes().unwrap()
}

/// ferrolm's cancel and msc's, each with the code and who cancelled.
fn both_cancelled(w: &World, flow: &str, qr: &QrVerification, code: &str, fe_cancelled: bool) {
    assert_eq!(fe_cancel(w, flow), (code.to_owned(), fe_cancelled));
    let info = qr.cancel_info().expect("msc's QR flow is cancelled");
    assert_eq!((info.cancel_code().as_str(), info.cancelled_by_us()), (code, !fe_cancelled));
    assert!(!qr.is_done());
}

/// Neither side trusts the other's identity (the cross-user flows).
fn no_identity_trust(w: &World) {
    let (fe_user, _, msc_user, _) = ids(w);
    assert_eq!(w.fe.machine.user_identity(&msc_user).unwrap().unwrap().state, IdentityState::Pinned);
    let identity = block_on(w.msc.machine.get_identity(&fe_user, None)).unwrap().unwrap();
    assert!(!identity.is_verified());
}

/// After a cross-user QR verification: the flows done, each side's identity of the other
/// verified and its user-signing signature on the homeserver, devices trusted through it.
fn identities_verified(w: &mut World, flow: &str, qr: &QrVerification) {
    let (fe_user, fe_device, msc_user, msc_device) = ids(w);
    assert!(qr.is_done(), "msc's QR flow is done: {:?}", qr.state());
    let msc_master = w.fe.machine.user_identity(&msc_user).unwrap().unwrap().master_key;
    match fe_state(w, flow) {
        VerificationState::Done(outcome) => {
            assert_eq!(outcome.user_id, msc_user);
            assert_eq!(outcome.verified_master_key, Some(msc_master), "the code covered msc's master key");
            assert!(outcome.verified_devices.is_empty(), "a cross-user code names no device");
        }
        other => panic!("ferrolm's flow is not done: {other:?}"),
    }
    // Both upload their signatures and learn the other's.
    w.settle();
    assert_eq!(w.fe.machine.user_identity(&msc_user).unwrap().unwrap().state, IdentityState::Verified);
    let trust = w.fe.machine.device_trust(&msc_user, &msc_device).unwrap().unwrap();
    assert!(trust.cross_signed && trust.is_verified(), "ferrolm trusts msc's device through the chain: {trust:?}");
    assert_eq!(trust.local_trust, LocalTrust::Unset, "a cross-user code verifies the identity, not the device");
    let identity = block_on(w.msc.machine.get_identity(&fe_user, None)).unwrap().unwrap();
    assert!(identity.is_verified(), "msc verified ferrolm's identity");
    let device = w.msc.device(&fe_user, &fe_device).unwrap();
    assert!(device.is_cross_signing_trusted(), "msc trusts ferrolm's device through the chain");
    // Nothing left to send on either side.
    assert!(w.fe.machine.outgoing_requests().unwrap().is_empty());
    assert!(w.msc.run_requests(&mut w.hs).is_empty());
}

/// msc shows (mode 0x00: its master key, then ferrolm's as msc sees it), ferrolm scans and
/// sends the secret back; msc's user confirms that ferrolm scanned; both verified.
#[test]
fn msc_shows_ferrolm_scans_both_identities_verified() {
    let mut w = world(true);
    let msc_user = w.msc.user_id();
    let flow = ready(&mut w, true);
    let (qr, bytes) = msc_shows(&mut w, &flow);
    let code = ferrolm_machine::verification::qr::QrCode::from_bytes(&bytes).expect("ferrolm reads msc's code");
    assert_eq!(code.mode, ferrolm_machine::verification::qr::QrMode::OtherUser);
    assert_eq!(code.flow_id, flow);
    let msc_master = w.fe.machine.user_identity(&msc_user).unwrap().unwrap().master_key;
    assert_eq!(&code.key_1, msc_master.as_bytes());

    let step = w.fe.machine.scan_qr_code(&msc_user, &flow, &bytes).unwrap();
    assert_eq!(step.request_ids.len(), 1, "the reciprocation goes out");
    assert_eq!(fe_state(&w, &flow), VerificationState::QrScanned);
    pump(&mut w);
    assert!(qr.has_been_scanned(), "msc saw the secret come back: {:?}", qr.state());
    no_identity_trust(&w);
    let done = qr.confirm_scanning().expect("msc's user confirms");
    w.msc.send_verification(&mut w.hs, &done);
    pump(&mut w);
    identities_verified(&mut w, &flow, &qr);
}

/// ferrolm shows (mode 0x00), msc scans and reciprocates; ferrolm's user confirms; both
/// verified.
#[test]
fn ferrolm_shows_msc_scans_both_identities_verified() {
    let mut w = world(true);
    let msc_user = w.msc.user_id();
    let flow = ready(&mut w, false);
    let bytes = fe_shows(&mut w, &flow);
    let data = QrVerificationData::from_bytes(&bytes).unwrap();
    assert!(matches!(data, QrVerificationData::Verification(_)), "mode 0x00 as msc reads it");
    let qr = msc_scans(&mut w, &flow, &bytes);
    assert!(qr.reciprocated());
    assert_eq!(fe_state(&w, &flow), VerificationState::QrReciprocated);
    no_identity_trust(&w);
    w.fe.machine.confirm_verification(&msc_user, &flow).unwrap();
    pump(&mut w);
    identities_verified(&mut w, &flow, &qr);
}

/// msc's code with one byte of msc's master key changed (a code shown by an impostor):
/// ferrolm cancels with `m.key_mismatch`, msc reads that code, nobody trusts anybody.
#[test]
fn an_altered_msc_code_is_cancelled_by_ferrolm_with_key_mismatch() {
    let mut w = world(true);
    let msc_user = w.msc.user_id();
    let flow = ready(&mut w, true);
    let (qr, mut bytes) = msc_shows(&mut w, &flow);
    // header (6), version, mode, length (2), flow id, then the first key.
    let first_key = 10 + flow.len();
    bytes[first_key] ^= 1;
    let step = w.fe.machine.scan_qr_code(&msc_user, &flow, &bytes).unwrap();
    assert_eq!(step.request_ids.len(), 1, "the cancel goes out");
    pump(&mut w);
    both_cancelled(&w, &flow, &qr, "m.key_mismatch", true);
    no_identity_trust(&w);
    assert!(w.fe.machine.outgoing_requests().unwrap().is_empty(), "no answer to a cancel");
    assert!(w.msc.run_requests(&mut w.hs).is_empty());
}

/// msc scans a code whose secret was altered on the way (the code ferrolm rendered is not
/// the one scanned): msc sends back a secret ferrolm never showed; ferrolm cancels with
/// `m.key_mismatch` (its reason: possibly an attack), msc reads it, nobody trusts anybody.
#[test]
fn a_wrong_secret_sent_back_by_msc_is_cancelled_by_ferrolm() {
    let mut w = world(true);
    let msc_user = w.msc.user_id();
    let flow = ready(&mut w, false);
    let mut bytes = fe_shows(&mut w, &flow);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    let qr = msc_scans(&mut w, &flow, &bytes);
    match fe_state(&w, &flow) {
        VerificationState::Cancelled(c) => {
            assert!(c.by_us);
            assert!(c.possible_attack, "reported as a possible attack: {c:?}");
        }
        other => panic!("ferrolm did not cancel: {other:?}"),
    }
    both_cancelled(&w, &flow, &qr, "m.key_mismatch", true);
    no_identity_trust(&w);
    assert!(w.fe.machine.confirm_verification(&msc_user, &flow).is_err(), "nothing left to confirm");
}

/// ferrolm shows, msc scans, and ferrolm's user says msc's device shows no success: `m.user`,
/// understood by msc, no trust.
#[test]
fn ferrolm_user_saying_the_code_was_not_scanned_cancels_msc() {
    let mut w = world(true);
    let msc_user = w.msc.user_id();
    let flow = ready(&mut w, true);
    let bytes = fe_shows(&mut w, &flow);
    let qr = msc_scans(&mut w, &flow, &bytes);
    assert_eq!(fe_state(&w, &flow), VerificationState::QrReciprocated);
    w.fe.machine.sas_mismatch(&msc_user, &flow).unwrap();
    pump(&mut w);
    both_cancelled(&w, &flow, &qr, "m.user", true);
    no_identity_trust(&w);
}

/// ferrolm (holding its user's private cross-signing keys) and a new msc device of the same
/// user, which knows the master key but does not trust it yet.
fn own_world() -> World {
    let mut hs = Homeserver::new();
    let mut fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 9, now_ms()).unwrap();
    let room = hs.create_room(fe.machine.user_id()).unwrap();
    fe.settle(&mut hs, 1).unwrap();
    bootstrap_cross_signing(&mut hs, &mut fe.machine, false).unwrap();
    let msc = MscDevice::new(&mut hs, FE_USER, "MSCOWN");
    let mut w = World { hs, room, fe, msc };
    w.meet();
    w.settle();
    let (user, device) = w.msc.id();
    assert!(w.fe.machine.device(&user, &device).unwrap().is_some(), "ferrolm knows the new device");
    let own = block_on(w.msc.machine.get_identity(&user, None)).unwrap().expect("msc knows its user's identity");
    assert!(!own.is_verified(), "the new msc device does not trust the master key yet");
    assert!(!w.fe.machine.device_trust(&user, &device).unwrap().unwrap().is_verified());
    w
}

/// After a self-verification: ferrolm signed the msc device with the self-signing key
/// (served), msc trusts the master key and, through it, ferrolm's device.
fn self_verified(w: &mut World, flow: &str, qr: &QrVerification) {
    let (user, fe_device, _, msc_device) = ids(w);
    assert!(qr.is_done(), "msc's QR flow is done: {:?}", qr.state());
    assert!(matches!(fe_state(w, flow), VerificationState::Done(_)), "{:?}", fe_state(w, flow));
    w.settle();
    let trust = w.fe.machine.device_trust(&user, &msc_device).unwrap().unwrap();
    assert!(trust.cross_signed, "ferrolm's self-signing key signed the msc device: {trust:?}");
    assert!(trust.is_verified());
    let own = block_on(w.msc.machine.get_identity(&user, None)).unwrap().unwrap();
    assert!(own.is_verified(), "msc trusts its user's master key");
    let device = w.msc.device(&user, &fe_device).unwrap();
    assert!(device.is_cross_signing_trusted(), "msc trusts ferrolm's device through the chain");
    let status = block_on(w.msc.machine.cross_signing_status());
    assert!(!status.has_master, "no private key crossed: QR moves trust, not secrets");
    assert!(w.fe.machine.outgoing_requests().unwrap().is_empty());
    assert!(w.msc.run_requests(&mut w.hs).is_empty());
}

/// The new msc device shows mode 0x02 (its own device key, the master key it was served);
/// ferrolm, trusting the master key, scans it, sends the secret back, and once msc's user
/// confirms, signs the msc device with its self-signing key.
#[test]
fn self_verification_new_msc_device_shows_ferrolm_scans() {
    let mut w = own_world();
    let user = w.msc.user_id();
    let flow = ready(&mut w, true);
    let (qr, bytes) = msc_shows(&mut w, &flow);
    let code = ferrolm_machine::verification::qr::QrCode::from_bytes(&bytes).unwrap();
    assert_eq!(code.mode, ferrolm_machine::verification::qr::QrMode::SelfUntrusted);
    assert_eq!(code.key_1, *w.fe.machine.device(&user, &w.msc.device_id()).unwrap().unwrap().ed25519_key.as_bytes());
    w.fe.machine.scan_qr_code(&user, &flow, &bytes).unwrap();
    assert_eq!(fe_state(&w, &flow), VerificationState::QrScanned);
    pump(&mut w);
    assert!(qr.has_been_scanned());
    let done = qr.confirm_scanning().expect("msc's user confirms");
    w.msc.send_verification(&mut w.hs, &done);
    pump(&mut w);
    match fe_state(&w, &flow) {
        VerificationState::Done(outcome) => {
            assert_eq!(outcome.verified_devices.len(), 1, "ferrolm vouches for the msc device");
            assert_eq!(outcome.verified_master_key, None);
        }
        other => panic!("ferrolm's flow is not done: {other:?}"),
    }
    self_verified(&mut w, &flow, &qr);
}

/// ferrolm shows mode 0x01 (the master key it trusts, then the msc device's key as ferrolm
/// knows it); the new msc device scans, checks both keys and sends the secret back; ferrolm's
/// user confirms.
#[test]
fn self_verification_ferrolm_shows_new_msc_device_scans() {
    let mut w = own_world();
    let user = w.msc.user_id();
    let flow = ready(&mut w, false);
    let bytes = fe_shows(&mut w, &flow);
    let data = QrVerificationData::from_bytes(&bytes).unwrap();
    assert!(matches!(data, QrVerificationData::SelfVerification(_)), "mode 0x01 as msc reads it");
    let qr = msc_scans(&mut w, &flow, &bytes);
    assert_eq!(fe_state(&w, &flow), VerificationState::QrReciprocated);
    w.fe.machine.confirm_verification(&user, &flow).unwrap();
    pump(&mut w);
    self_verified(&mut w, &flow, &qr);
}

/// In-room: ferrolm asks in the room, msc shows its code, ferrolm scans it; the reciprocation
/// and both `done`s go through the room.
#[test]
fn in_room_msc_shows_ferrolm_scans() {
    let mut w = world(true);
    let (fe_user, _, msc_user, _) = ids(&w);
    let room = w.room.clone();
    let content = w.fe.machine.verification_request_content(&msc_user);
    let flow = w.hs.send_room_event(&room, &fe_user, "m.room.message", content).unwrap();
    room_pump(&mut w, Vec::new());
    let request = w.msc.machine.get_verification_request(&fe_user, flow.as_str()).expect("msc got the request");
    w.msc.send_verification(&mut w.hs, &request.accept_with_methods(msc_methods()).expect("msc answers ready"));
    room_pump(&mut w, Vec::new());
    assert_eq!(fe_state(&w, flow.as_str()), VerificationState::Ready { showing_qr: false });
    let (qr, bytes) = msc_shows(&mut w, flow.as_str());
    let step = w.fe.machine.scan_qr_code(&msc_user, flow.as_str(), &bytes).unwrap();
    assert!(step.request_ids.is_empty(), "in-room: nothing goes to-device");
    room_pump(&mut w, step.room_messages);
    assert!(qr.has_been_scanned(), "msc saw the secret come back: {:?}", qr.state());
    w.msc.send_verification(&mut w.hs, &qr.confirm_scanning().expect("msc's user confirms"));
    room_pump(&mut w, Vec::new());
    identities_verified(&mut w, flow.as_str(), &qr);
}
