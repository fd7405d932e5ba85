//! The verification state machines, driven directly: every state × every incoming event
//! (table-driven), complete SAS and QR flows between two [`Verifications`], and the rules one
//! by one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use ferrolm::types::{Ed25519Keypair, Ed25519PublicKey, base64_encode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_700_000_000_000;

#[derive(Default, Clone)]
struct FakeKeys {
    devices: BTreeMap<(String, String), Ed25519PublicKey>,
    masters: BTreeMap<String, Ed25519PublicKey>,
    trusted: bool,
}

impl KeySource for FakeKeys {
    fn device_key(&self, user_id: &UserId, device_id: &DeviceId) -> Option<Ed25519PublicKey> {
        self.devices.get(&(user_id.to_string(), device_id.to_string())).copied()
    }
    fn master_key(&self, user_id: &UserId) -> Option<Ed25519PublicKey> {
        self.masters.get(user_id.as_str()).copied()
    }
    fn own_master_trusted(&self) -> bool {
        self.trusted
    }
}

struct Party {
    user: OwnedUserId,
    device: OwnedDeviceId,
    ed25519: Ed25519PublicKey,
    keys: FakeKeys,
    rng: ChaCha20Rng,
    v: Verifications,
    now: u64,
    /// Messages it sent, not yet delivered.
    outbox: Vec<OutgoingMessage>,
    verified: Vec<VerificationOutcome>,
}

impl Party {
    fn new(user: &str, device: &str, seed: u64) -> Self {
        Self {
            user: OwnedUserId::try_from(user).unwrap(),
            device: OwnedDeviceId::from(device),
            ed25519: Ed25519Keypair::new().public_key(),
            keys: FakeKeys::default(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            v: Verifications::new(),
            now: NOW,
            outbox: Vec::new(),
            verified: Vec::new(),
        }
    }

    fn run<T>(&mut self, f: impl FnOnce(&mut Verifications, &mut Context<'_>) -> T) -> T {
        let mut ctx = Context {
            user_id: &self.user,
            device_id: &self.device,
            ed25519: self.ed25519,
            keys: &self.keys,
            rng: &mut self.rng,
            now_ms: self.now,
        };
        f(&mut self.v, &mut ctx)
    }

    fn take(&mut self, output: Output) -> Output {
        self.outbox.extend(output.messages.iter().cloned());
        self.verified.extend(output.verified.iter().cloned());
        output
    }

    fn act(
        &mut self,
        flow: &str,
        other: &UserId,
        f: impl FnOnce(&mut Verifications, &mut Context<'_>, &UserId, &str) -> Result<Output, VerificationError>,
    ) -> Result<Output, VerificationError> {
        let result = self.run(|v, ctx| f(v, ctx, other, flow));
        result.map(|o| self.take(o))
    }

    fn receive_json(&mut self, sender: &UserId, event_type: &str, content: &Value) -> Output {
        let output = self.run(|v, ctx| match parse_event(event_type, sender.as_str(), content, Transport::ToDevice) {
            Ok(event) => v.receive(ctx, event),
            Err(e) => v.receive_malformed(ctx, &e),
        });
        self.take(output)
    }

    fn state(&self, other: &UserId, flow: &str) -> VerificationState {
        self.v.get(other, flow).expect("flow").state
    }
}

fn know_each_other(a: &mut Party, b: &mut Party) {
    a.keys.devices.insert((b.user.to_string(), b.device.to_string()), b.ed25519);
    b.keys.devices.insert((a.user.to_string(), a.device.to_string()), a.ed25519);
}

/// Two parties that know each other's device keys (and, with `masters`, master keys).
fn pair(masters: bool) -> (Party, Party) {
    let mut a = Party::new("@alice:example.org", "ALICE", 1);
    let mut b = Party::new("@bob:example.org", "BOB", 2);
    know_each_other(&mut a, &mut b);
    if masters {
        let (ma, mb) = (Ed25519Keypair::new().public_key(), Ed25519Keypair::new().public_key());
        for p in [&mut a, &mut b] {
            p.keys.masters.insert("@alice:example.org".into(), ma);
            p.keys.masters.insert("@bob:example.org".into(), mb);
        }
    }
    (a, b)
}

/// Delivers everything `from` sent to `to` (messages for `to`'s user only).
fn deliver(from: &mut Party, to: &mut Party) {
    let messages = std::mem::take(&mut from.outbox);
    for m in messages {
        let for_to = match &m.recipient {
            Recipient::Devices { user_id, device_ids } => *user_id == to.user && device_ids.contains(&to.device),
            Recipient::AllDevices { user_id } => *user_id == to.user,
            Recipient::Room(_) => true,
        };
        if for_to {
            to.receive_json(&from.user.clone(), &m.event_type, &m.content);
        }
    }
}

fn pump(a: &mut Party, b: &mut Party) {
    for _ in 0..20 {
        if a.outbox.is_empty() && b.outbox.is_empty() {
            return;
        }
        deliver(a, b);
        deliver(b, a);
    }
    panic!("no quiet after 20 rounds");
}

/// Alice requests, Bob accepts: the flow id.
fn ready(a: &mut Party, b: &mut Party) -> String {
    let bob = b.user.clone();
    let dev = b.device.clone();
    let (flow, out) = a.run(|v, ctx| v.request_to_device(ctx, &bob, vec![dev])).unwrap();
    a.take(out);
    deliver(a, b);
    let alice = a.user.clone();
    b.act(flow.as_str(), &alice, |v, c, u, f| v.accept(c, u, f)).unwrap();
    deliver(b, a);
    flow.as_str().to_owned()
}

fn cancel_code(state: &VerificationState) -> Option<CancelCode> {
    match state {
        VerificationState::Cancelled(c) => Some(c.code.clone()),
        _ => None,
    }
}

#[test]
fn full_sas_between_two_state_machines() {
    let (mut a, mut b) = pair(true);
    let flow = ready(&mut a, &mut b);
    let (alice, bob) = (a.user.clone(), b.user.clone());
    a.act(&flow, &bob, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    deliver(&mut a, &mut b);
    assert_eq!(b.state(&alice, &flow), VerificationState::SasStartReceived);
    b.act(&flow, &alice, |v, c, u, f| v.accept(c, u, f)).unwrap();
    pump(&mut a, &mut b);
    let (da, db) = (a.v.sas_display(&bob, &flow).unwrap(), b.v.sas_display(&alice, &flow).unwrap());
    assert_eq!(da, db);
    assert!(da.emoji.is_some());
    a.act(&flow, &bob, |v, c, u, f| v.confirm(c, u, f)).unwrap();
    b.act(&flow, &alice, |v, c, u, f| v.confirm(c, u, f)).unwrap();
    pump(&mut a, &mut b);
    assert!(matches!(a.state(&bob, &flow), VerificationState::Done(_)));
    assert!(matches!(b.state(&alice, &flow), VerificationState::Done(_)));
    // Each side verified the other's device and master key, exactly the fixed ones.
    assert_eq!(a.verified.len(), 1);
    assert_eq!(a.verified[0].verified_devices, vec![(b.device.clone(), b.ed25519)]);
    assert_eq!(a.verified[0].verified_master_key, Some(a.keys.masters["@bob:example.org"]));
    assert_eq!(b.verified[0].verified_devices, vec![(a.device.clone(), a.ed25519)]);
    assert_eq!(b.verified[0].verified_master_key, Some(b.keys.masters["@alice:example.org"]));
}

/// A start offering only the legacy MAC gets it; one offering both gets v2.
#[test]
fn mac_method_choice_and_legacy_sas_completes() {
    let all = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let kap = all(&[KEY_AGREEMENT_PROTOCOL]);
    let hash = all(&[HASH]);
    let sas = all(&["decimal", "emoji"]);
    let (agreed, _) = flow::choose(&kap, &hash, &all(&[MAC_LEGACY, MAC_V2]), &sas).unwrap();
    assert_eq!(agreed.mac, flow::MacMethod::V2, "never legacy when both support v2");
    let (agreed, _) = flow::choose(&kap, &hash, &all(&[MAC_LEGACY]), &sas).unwrap();
    assert_eq!(agreed.mac, flow::MacMethod::Legacy);
    assert!(flow::choose(&kap, &hash, &all(&["hmac-sha256"]), &sas).is_none());
    assert!(flow::choose(&all(&["curve25519"]), &hash, &all(&[MAC_V2]), &sas).is_none());
    assert!(flow::choose(&kap, &all(&["sha512"]), &all(&[MAC_V2]), &sas).is_none());
    let (agreed, methods) = flow::choose(&kap, &hash, &all(&[MAC_V2]), &all(&["decimal"])).unwrap();
    assert!(!agreed.emoji);
    assert_eq!(methods, ["decimal"]);

    // A legacy-only starter (forged start content) and our accepter complete with legacy MACs.
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let (alice, bob) = (a.user.clone(), b.user.clone());
    b.act(&flow, &alice, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    let mut start = b.outbox.pop().unwrap();
    start.content["message_authentication_codes"] = json!([MAC_LEGACY]);
    // Bob's own copy of his start must match what Alice hashes into the commitment.
    if let Some(State::SasStarted { start: s, .. }) =
        b.v.flows.get_mut(&(alice.clone(), flow.clone())).map(|f| &mut f.state)
    {
        s.insert("message_authentication_codes".into(), json!([MAC_LEGACY]));
    }
    a.receive_json(&bob, &start.event_type, &start.content);
    a.act(&flow, &bob, |v, c, u, f| v.accept(c, u, f)).unwrap();
    assert_eq!(a.outbox[0].content["message_authentication_code"], MAC_LEGACY);
    pump(&mut a, &mut b);
    a.act(&flow, &bob, |v, c, u, f| v.confirm(c, u, f)).unwrap();
    b.act(&flow, &alice, |v, c, u, f| v.confirm(c, u, f)).unwrap();
    pump(&mut a, &mut b);
    assert!(matches!(a.state(&bob, &flow), VerificationState::Done(_)));
    assert!(matches!(b.state(&alice, &flow), VerificationState::Done(_)));
}

#[test]
fn simultaneous_starts_resolve_by_user_id() {
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let (alice, bob) = (a.user.clone(), b.user.clone());
    a.act(&flow, &bob, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    b.act(&flow, &alice, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    // Alice (@alice < @bob) ignores Bob's start; Bob drops his and accepts Alice's.
    pump(&mut a, &mut b);
    let shown = |s: VerificationState| matches!(s, VerificationState::SasKeysExchanged { .. });
    assert!(shown(a.state(&bob, &flow)), "{:?}", a.state(&bob, &flow));
    assert!(shown(b.state(&alice, &flow)));
    assert_eq!(a.v.sas_display(&bob, &flow), b.v.sas_display(&alice, &flow));
}

#[test]
fn simultaneous_starts_of_one_user_resolve_by_device_id() {
    let mut a = Party::new("@alice:example.org", "AAAA", 1);
    let mut b = Party::new("@alice:example.org", "BBBB", 2);
    know_each_other(&mut a, &mut b);
    let flow = ready(&mut a, &mut b);
    let user = a.user.clone();
    a.act(&flow, &user, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    b.act(&flow, &user, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    deliver(&mut a, &mut b);
    // BBBB yields to AAAA's start and accepts it; AAAA ignores BBBB's start.
    assert_eq!(b.state(&user, &flow), VerificationState::SasAccepted);
    deliver(&mut b, &mut a);
    assert_eq!(a.state(&user, &flow), VerificationState::SasAccepted);
    pump(&mut a, &mut b);
    let (da, db) = (a.v.sas_display(&user, &flow), b.v.sas_display(&user, &flow));
    assert!(da.is_some());
    assert_eq!(da, db);
}

#[test]
fn different_methods_started_at_once_cancel() {
    let (mut a, mut b) = pair(true);
    let flow = ready(&mut a, &mut b);
    let (alice, bob) = (a.user.clone(), b.user.clone());
    a.act(&flow, &bob, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    let reciprocate = json!({"transaction_id": flow, "from_device": "BOB", "method": RECIPROCATE_METHOD, "secret": base64_encode([1u8; 16])});
    a.receive_json(&bob, "m.key.verification.start", &reciprocate);
    assert_eq!(cancel_code(&a.state(&bob, &flow)), Some(CancelCode::UnexpectedMessage));
    let _ = alice;
}

fn qr_flow(trusted_a: bool, trusted_b: bool, same_user: bool) -> (Party, Party, String) {
    let (mut a, mut b) = if same_user {
        let mut a = Party::new("@alice:example.org", "AAAA", 1);
        let mut b = Party::new("@alice:example.org", "BBBB", 2);
        let master = Ed25519Keypair::new().public_key();
        know_each_other(&mut a, &mut b);
        a.keys.masters.insert("@alice:example.org".into(), master);
        b.keys.masters.insert("@alice:example.org".into(), master);
        (a, b)
    } else {
        pair(true)
    };
    a.keys.trusted = trusted_a;
    b.keys.trusted = trusted_b;
    let flow = ready(&mut a, &mut b);
    (a, b, flow)
}

fn run_qr(a: &mut Party, b: &mut Party, flow: &str) -> Result<(), VerificationError> {
    let (ua, ub) = (a.user.clone(), b.user.clone());
    let (code, out) = a.run(|v, c| v.show_qr(c, &ub, flow))?;
    a.take(out);
    b.act(flow, &ua, |v, c, u, f| v.scan_qr(c, u, f, &code.to_bytes().unwrap()))?;
    deliver(b, a);
    assert_eq!(a.state(&ub, flow), VerificationState::QrReciprocated);
    a.act(flow, &ub, |v, c, u, f| v.confirm(c, u, f))?;
    pump(a, b);
    Ok(())
}

#[test]
fn qr_verification_in_all_three_modes() {
    // Mode 0: two users who know each other's master keys.
    let (mut a, mut b, flow) = qr_flow(true, true, false);
    run_qr(&mut a, &mut b, &flow).unwrap();
    assert!(matches!(a.state(&b.user, &flow), VerificationState::Done(_)));
    assert!(matches!(b.state(&a.user, &flow), VerificationState::Done(_)));
    assert_eq!(a.verified[0].verified_master_key, Some(a.keys.masters["@bob:example.org"]));
    assert_eq!(b.verified[0].verified_master_key, Some(b.keys.masters["@alice:example.org"]));

    // Mode 1: the showing device trusts the master key; the scanner learns it, the shower
    // verifies the scanner's device.
    let (mut a, mut b, flow) = qr_flow(true, false, true);
    let (code, _) = a.run(|v, c| v.show_qr(c, &b.user.clone(), &flow)).unwrap();
    assert_eq!(code.mode, qr::QrMode::SelfTrusted);
    run_qr(&mut a, &mut b, &flow).unwrap();
    assert_eq!(a.verified[0].verified_devices, vec![(b.device.clone(), b.ed25519)]);
    assert_eq!(b.verified[0].verified_master_key, Some(b.keys.masters["@alice:example.org"]));

    // Mode 2: the showing device does not trust it; the scanner (who does) verifies the shower.
    let (mut a, mut b, flow) = qr_flow(false, true, true);
    let (code, _) = a.run(|v, c| v.show_qr(c, &b.user.clone(), &flow)).unwrap();
    assert_eq!(code.mode, qr::QrMode::SelfUntrusted);
    run_qr(&mut a, &mut b, &flow).unwrap();
    assert_eq!(b.verified[0].verified_devices, vec![(a.device.clone(), a.ed25519)]);
    assert_eq!(a.verified[0].verified_master_key, Some(a.keys.masters["@alice:example.org"]));
}

#[test]
fn qr_with_a_wrong_secret_is_refused_as_a_possible_attack() {
    let (mut a, mut b, flow) = qr_flow(true, true, false);
    let (ua, ub) = (a.user.clone(), b.user.clone());
    let (code, _) = a.run(|v, c| v.show_qr(c, &ub, &flow)).unwrap();
    let mut forged = code.clone();
    forged.secret = zeroize::Zeroizing::new(vec![0u8; code.secret.len()]);
    b.act(&flow, &ua, |v, c, u, f| v.scan_qr(c, u, f, &forged.to_bytes().unwrap())).unwrap();
    deliver(&mut b, &mut a);
    let VerificationState::Cancelled(c) = a.state(&ub, &flow) else { panic!() };
    assert_eq!(c.code, CancelCode::KeyMismatch);
    assert!(c.possible_attack);
    assert!(a.verified.is_empty());
    deliver(&mut a, &mut b);
    assert_eq!(cancel_code(&b.state(&ua, &flow)), Some(CancelCode::KeyMismatch));
    assert!(b.verified.is_empty(), "the scanner trusts nothing without the shower's done");
}

#[test]
fn qr_with_other_keys_or_bad_bytes_is_refused() {
    let (mut a, mut b, flow) = qr_flow(true, true, false);
    let (ua, ub) = (a.user.clone(), b.user.clone());
    let (code, _) = a.run(|v, c| v.show_qr(c, &ub, &flow)).unwrap();
    // Bad bytes: a typed error, the flow goes on.
    let err = b.act(&flow, &ua, |v, c, u, f| v.scan_qr(c, u, f, b"MATRIX\x01")).unwrap_err();
    assert_eq!(err, VerificationError::Qr(qr::QrError::UnsupportedVersion(1)));
    let mut other_flow = code.clone();
    other_flow.flow_id = "another".into();
    let err = b.act(&flow, &ua, |v, c, u, f| v.scan_qr(c, u, f, &other_flow.to_bytes().unwrap())).unwrap_err();
    assert_eq!(err, VerificationError::QrOfAnotherFlow);
    assert_eq!(b.state(&ua, &flow), VerificationState::Ready { showing_qr: false });
    // Other keys: m.key_mismatch.
    let mut swapped = code.clone();
    swapped.key_1 = [9; 32];
    b.act(&flow, &ua, |v, c, u, f| v.scan_qr(c, u, f, &swapped.to_bytes().unwrap())).unwrap();
    assert_eq!(cancel_code(&b.state(&ua, &flow)), Some(CancelCode::KeyMismatch));
    assert!(b.verified.is_empty());
}

#[test]
fn qr_needs_cross_signing_keys() {
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let ub = b.user.clone();
    assert_eq!(a.run(|v, c| v.show_qr(c, &ub, &flow)).unwrap_err(), VerificationError::NoCrossSigningKeys);
}

/// Device ids and master keys share the `ed25519:` namespace: a device whose id is its
/// user's master key is refused before any MAC.
#[test]
fn device_id_equal_to_a_master_key_is_refused() {
    let mut a = Party::new("@alice:example.org", "ALICE", 1);
    let master = Ed25519Keypair::new().public_key();
    let mut b = Party::new("@bob:example.org", &master.to_base64(), 2);
    a.keys.devices.insert((b.user.to_string(), b.device.to_string()), b.ed25519);
    b.keys.devices.insert((a.user.to_string(), a.device.to_string()), a.ed25519);
    a.keys.masters.insert(b.user.to_string(), master);
    let flow = ready(&mut a, &mut b);
    let ub = b.user.clone();
    a.act(&flow, &ub, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
    assert_eq!(cancel_code(&a.state(&ub, &flow)), Some(CancelCode::KeyMismatch));
}

#[test]
fn malformed_events_of_a_flow_cancel_with_invalid_message() {
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let bob = b.user.clone();
    a.receive_json(&bob, "m.key.verification.start", &json!({"transaction_id": flow, "from_device": "BOB"}));
    assert_eq!(cancel_code(&a.state(&bob, &flow)), Some(CancelCode::InvalidMessage));
    // A malformed cancel is never answered.
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    a.outbox.clear();
    let out = a.receive_json(&bob, "m.key.verification.cancel", &json!({"transaction_id": flow}));
    assert!(out.messages.is_empty());
    assert_eq!(a.state(&bob, &flow), VerificationState::Ready { showing_qr: false });
}

#[test]
fn a_start_from_another_device_is_a_user_mismatch() {
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let bob = b.user.clone();
    let start = json!({
        "transaction_id": flow, "from_device": "BOBOTHER", "method": SAS_METHOD,
        "key_agreement_protocols": [KEY_AGREEMENT_PROTOCOL], "hashes": [HASH],
        "message_authentication_codes": [MAC_V2], "short_authentication_string": ["decimal"],
    });
    a.receive_json(&bob, "m.key.verification.start", &start);
    assert_eq!(cancel_code(&a.state(&bob, &flow)), Some(CancelCode::UserMismatch));
}

#[test]
fn no_common_sas_parameters_is_unknown_method() {
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let bob = b.user.clone();
    let start = json!({
        "transaction_id": flow, "from_device": "BOB", "method": SAS_METHOD,
        "key_agreement_protocols": ["curve25519"], "hashes": [HASH],
        "message_authentication_codes": [MAC_V2], "short_authentication_string": ["decimal"],
    });
    a.receive_json(&bob, "m.key.verification.start", &start);
    a.act(&flow, &bob, |v, c, u, f| v.accept(c, u, f)).unwrap();
    assert_eq!(cancel_code(&a.state(&bob, &flow)), Some(CancelCode::UnknownMethod));
}

/// The commitment is SHA-256 over the key's base64 and the canonical JSON of the start.
#[test]
fn commitment_is_over_the_key_and_canonical_start() {
    let key = ferrolm::types::Curve25519PublicKey::from_bytes([5; 32]);
    let start = json!({"b": 1, "a": "x"});
    let Value::Object(start) = start else { panic!() };
    let got = flow::commitment_of(&key, &start).unwrap();
    use sha2::Digest;
    let expected: [u8; 32] = sha2::Sha256::digest(format!("{}{}", key.to_base64(), r#"{"a":"x","b":1}"#)).into();
    assert_eq!(got, expected);
}

// ---- Every state × every incoming event ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum S {
    Requested,
    Received,
    Ready,
    ReadyShowingQr,
    SasStarted,
    SasStartReceived,
    SasAccepted,
    SasKeySent,
    SasShown,
    SasShownConfirmed,
    QrScanned,
    QrReciprocated,
    WaitingForDone,
    Done,
    Cancelled,
}

const STATES: [S; 15] = [
    S::Requested,
    S::Received,
    S::Ready,
    S::ReadyShowingQr,
    S::SasStarted,
    S::SasStartReceived,
    S::SasAccepted,
    S::SasKeySent,
    S::SasShown,
    S::SasShownConfirmed,
    S::QrScanned,
    S::QrReciprocated,
    S::WaitingForDone,
    S::Done,
    S::Cancelled,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum E {
    Request,
    Ready,
    StartSas,
    StartReciprocate,
    StartOther,
    Accept,
    Key,
    Mac,
    Done,
    Cancel,
}

const EVENTS: [E; 10] = [
    E::Request,
    E::Ready,
    E::StartSas,
    E::StartReciprocate,
    E::StartOther,
    E::Accept,
    E::Key,
    E::Mac,
    E::Done,
    E::Cancel,
];

/// The party in state `s`, the other party, and the flow id. Alice requested.
fn in_state(s: S) -> (Party, Party, String) {
    let (mut a, mut b) = pair(true);
    let (ua, ub) = (a.user.clone(), b.user.clone());
    if s == S::Requested {
        let dev = b.device.clone();
        let (flow, out) = a.run(|v, ctx| v.request_to_device(ctx, &ub, vec![dev])).unwrap();
        a.take(out);
        return (a, b, flow.as_str().to_owned());
    }
    if s == S::Received {
        let dev = b.device.clone();
        let (flow, out) = a.run(|v, ctx| v.request_to_device(ctx, &ub, vec![dev])).unwrap();
        a.take(out);
        deliver(&mut a, &mut b);
        return (b, a, flow.as_str().to_owned());
    }
    let flow = ready(&mut a, &mut b);
    let f = flow.clone();
    match s {
        S::Ready => (b, a, flow),
        S::ReadyShowingQr => {
            a.run(|v, c| v.show_qr(c, &ub, &f)).unwrap();
            (a, b, flow)
        }
        S::SasStarted | S::SasStartReceived | S::SasAccepted | S::SasKeySent | S::SasShown | S::SasShownConfirmed => {
            a.act(&flow, &ub, |v, c, u, f| v.start_sas(c, u, f)).unwrap();
            if s == S::SasStarted {
                return (a, b, flow);
            }
            deliver(&mut a, &mut b);
            if s == S::SasStartReceived {
                return (b, a, flow);
            }
            b.act(&flow, &ua, |v, c, u, f| v.accept(c, u, f)).unwrap();
            if s == S::SasAccepted {
                return (b, a, flow);
            }
            deliver(&mut b, &mut a);
            if s == S::SasKeySent {
                return (a, b, flow);
            }
            deliver(&mut a, &mut b);
            if s == S::SasShownConfirmed {
                b.act(&flow, &ua, |v, c, u, f| v.confirm(c, u, f)).unwrap();
            }
            (b, a, flow)
        }
        S::QrScanned | S::QrReciprocated | S::WaitingForDone | S::Done => {
            let (code, _) = a.run(|v, c| v.show_qr(c, &ub, &f)).unwrap();
            b.act(&flow, &ua, |v, c, u, f| v.scan_qr(c, u, f, &code.to_bytes().unwrap())).unwrap();
            if s == S::QrScanned {
                return (b, a, flow);
            }
            deliver(&mut b, &mut a);
            if s == S::QrReciprocated {
                return (a, b, flow);
            }
            a.act(&flow, &ub, |v, c, u, f| v.confirm(c, u, f)).unwrap();
            if s == S::WaitingForDone {
                return (a, b, flow);
            }
            deliver(&mut a, &mut b);
            (b, a, flow)
        }
        S::Cancelled => {
            a.act(&flow, &ub, |v, c, u, f| v.cancel(c, u, f)).unwrap();
            (a, b, flow)
        }
        S::Requested | S::Received => unreachable!(),
    }
}

fn event(e: E, flow: &str, from_device: &str) -> (&'static str, Value) {
    let sas_start = json!({
        "transaction_id": flow, "from_device": from_device, "method": SAS_METHOD,
        "key_agreement_protocols": [KEY_AGREEMENT_PROTOCOL], "hashes": [HASH],
        "message_authentication_codes": [MAC_V2], "short_authentication_string": ["decimal", "emoji"],
    });
    match e {
        E::Request => (
            "m.key.verification.request",
            json!({"transaction_id": flow, "from_device": from_device, "methods": [SAS_METHOD], "timestamp": NOW}),
        ),
        E::Ready => (
            "m.key.verification.ready",
            json!({"transaction_id": flow, "from_device": from_device, "methods": [SAS_METHOD]}),
        ),
        E::StartSas => ("m.key.verification.start", sas_start),
        E::StartReciprocate => (
            "m.key.verification.start",
            json!({"transaction_id": flow, "from_device": from_device, "method": RECIPROCATE_METHOD, "secret": base64_encode([0u8; 16])}),
        ),
        E::StartOther => (
            "m.key.verification.start",
            json!({"transaction_id": flow, "from_device": from_device, "method": "org.example.v1"}),
        ),
        E::Accept => (
            "m.key.verification.accept",
            json!({"transaction_id": flow, "method": SAS_METHOD, "key_agreement_protocol": KEY_AGREEMENT_PROTOCOL,
                   "hash": HASH, "message_authentication_code": MAC_V2, "short_authentication_string": ["decimal"],
                   "commitment": base64_encode([3u8; 32])}),
        ),
        E::Key => ("m.key.verification.key", json!({"transaction_id": flow, "key": base64_encode([9u8; 32])})),
        E::Mac => (
            "m.key.verification.mac",
            json!({"transaction_id": flow, "mac": {format!("ed25519:{from_device}"): base64_encode([1u8; 32])},
                   "keys": base64_encode([2u8; 32])}),
        ),
        E::Done => ("m.key.verification.done", json!({"transaction_id": flow})),
        E::Cancel => ("m.key.verification.cancel", json!({"transaction_id": flow, "code": "m.user", "reason": "no"})),
    }
}

/// What should happen.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// We cancel with this code (and send the cancel).
    CancelWith(CancelCode),
    /// They cancelled: nothing is sent.
    CancelledByThem,
    /// The flow moves to a state (by its name) and nothing verifies unless `verified`.
    Moves(&'static str),
    /// Nothing changes, nothing is sent.
    Ignored,
}

fn want(s: S, e: E) -> Want {
    use CancelCode::*;
    let um = Want::CancelWith(UnexpectedMessage);
    match (s, e) {
        (S::Done | S::Cancelled, _) => Want::Ignored,
        (_, E::Cancel) => Want::CancelledByThem,
        (S::Requested, E::Ready) => Want::Moves("ready"),
        (S::Ready, E::StartSas) | (S::ReadyShowingQr, E::StartSas) => Want::Moves("sas_start_received"),
        (S::Ready | S::ReadyShowingQr, E::StartOther) => Want::CancelWith(UnknownMethod),
        (S::ReadyShowingQr, E::StartReciprocate) => Want::CancelWith(KeyMismatch), // wrong secret
        (S::SasStarted, E::StartSas) => Want::Ignored, // @bob > @alice: their start is ignored
        (S::SasStarted, E::Accept) => Want::Moves("sas_accepted"),
        (S::SasAccepted, E::Key) => Want::Moves("sas_keys_exchanged"),
        (S::SasKeySent, E::Key) => Want::CancelWith(MismatchedCommitment),
        (S::SasShown | S::SasShownConfirmed, E::Mac) => Want::CancelWith(KeyMismatch),
        (S::QrScanned, E::Done) => Want::Moves("done"),
        (S::WaitingForDone, E::Done) => Want::Moves("done"),
        _ => um,
    }
}

fn state_tag(s: &VerificationState) -> &'static str {
    match s {
        VerificationState::Requested => "requested",
        VerificationState::RequestReceived => "request_received",
        VerificationState::Ready { .. } => "ready",
        VerificationState::SasStarted => "sas_started",
        VerificationState::SasStartReceived => "sas_start_received",
        VerificationState::SasAccepted => "sas_accepted",
        VerificationState::SasKeysExchanged { .. } => "sas_keys_exchanged",
        VerificationState::QrScanned => "qr_scanned",
        VerificationState::QrReciprocated => "qr_reciprocated",
        VerificationState::WaitingForDone(_) => "waiting_for_done",
        VerificationState::Done(_) => "done",
        VerificationState::Cancelled(_) => "cancelled",
    }
}

#[test]
fn every_state_times_every_event() {
    let mut checked = 0;
    for s in STATES {
        for e in EVENTS {
            let (mut us, them, flow) = in_state(s);
            us.outbox.clear();
            let verified_before = us.verified.len();
            let before = us.state(&them.user, &flow);
            let (event_type, content) = event(e, &flow, them.device.as_str());
            let out = us.receive_json(&them.user, event_type, &content);
            let after = us.state(&them.user, &flow);
            let ctx = format!("state {s:?} × event {e:?}: {before:?} → {after:?}, sent {:?}", out.messages);
            match want(s, e) {
                Want::CancelWith(code) => {
                    assert_eq!(cancel_code(&after), Some(code.clone()), "{ctx}");
                    let VerificationState::Cancelled(c) = &after else { unreachable!() };
                    assert!(c.by_us, "{ctx}");
                    assert_eq!(out.messages.len(), 1, "{ctx}");
                    assert_eq!(out.messages[0].event_type, "m.key.verification.cancel", "{ctx}");
                    assert_eq!(out.messages[0].content["code"], code.as_str(), "{ctx}");
                    assert_eq!(us.verified.len(), verified_before, "no trust change: {ctx}");
                }
                Want::CancelledByThem => {
                    assert_eq!(cancel_code(&after), Some(CancelCode::User), "{ctx}");
                    assert!(out.messages.is_empty(), "a cancel is never answered: {ctx}");
                    assert_eq!(us.verified.len(), verified_before, "{ctx}");
                }
                Want::Moves(tag) => {
                    assert_eq!(state_tag(&after), tag, "{ctx}");
                    let verifies = tag == "done" && s == S::QrScanned;
                    assert_eq!(us.verified.len(), verified_before + usize::from(verifies), "{ctx}");
                }
                Want::Ignored => {
                    assert_eq!(before, after, "{ctx}");
                    assert!(out.messages.is_empty(), "{ctx}");
                    assert_eq!(us.verified.len(), verified_before, "{ctx}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, STATES.len() * EVENTS.len());
}

/// Every state × every app action: a refused action changes nothing and sends nothing.
#[test]
fn every_state_times_every_action() {
    #[derive(Debug, Clone, Copy)]
    enum A {
        Accept,
        StartSas,
        Confirm,
        Mismatch,
        Cancel,
        ShowQr,
    }
    let allowed = |s: S, a: A| -> bool {
        matches!(
            (s, a),
            (S::Received | S::SasStartReceived, A::Accept)
                | (S::Ready | S::ReadyShowingQr, A::StartSas | A::ShowQr)
                | (S::SasShown, A::Confirm | A::Mismatch)
                | (S::QrReciprocated, A::Confirm | A::Mismatch)
        ) || (!matches!(s, S::Done | S::Cancelled) && matches!(a, A::Cancel))
    };
    for s in STATES {
        for a in [A::Accept, A::StartSas, A::Confirm, A::Mismatch, A::Cancel, A::ShowQr] {
            let (mut us, them, flow) = in_state(s);
            us.outbox.clear();
            let before = us.state(&them.user, &flow);
            let other = them.user.clone();
            let result = us.run(|v, c| match a {
                A::Accept => v.accept(c, &other, &flow),
                A::StartSas => v.start_sas(c, &other, &flow),
                A::Confirm => v.confirm(c, &other, &flow),
                A::Mismatch => v.mismatch(c, &other, &flow),
                A::Cancel => v.cancel(c, &other, &flow),
                A::ShowQr => v.show_qr(c, &other, &flow).map(|(_, o)| o),
            });
            let after = us.state(&them.user, &flow);
            let ctx = format!("state {s:?} × action {a:?}: {before:?} → {after:?} ({result:?})");
            // Showing the code again in a flow that shows one is allowed and changes nothing;
            // confirming twice is refused.
            if allowed(s, a) {
                assert!(result.is_ok(), "{ctx}");
            } else {
                assert!(matches!(result, Err(VerificationError::WrongState { .. })), "{ctx}");
                assert_eq!(before, after, "{ctx}");
            }
            if let (A::Mismatch, S::SasShown) = (a, s) {
                assert_eq!(cancel_code(&after), Some(CancelCode::MismatchedSas), "{ctx}");
            }
            if let (A::Cancel, true) = (a, allowed(s, a)) {
                assert_eq!(cancel_code(&after), Some(CancelCode::User), "{ctx}");
            }
        }
    }
}

#[test]
fn every_cancel_code_round_trips() {
    use CancelCode::*;
    let all = [
        User,
        Timeout,
        UnknownTransaction,
        UnknownMethod,
        UnexpectedMessage,
        KeyMismatch,
        UserMismatch,
        InvalidMessage,
        Accepted,
        MismatchedCommitment,
        MismatchedSas,
    ];
    for code in all {
        assert_eq!(CancelCode::from_code(code.as_str()), code);
    }
    assert_eq!(CancelCode::from_code("org.example"), Other("org.example".into()));
}

#[test]
fn a_second_answering_device_gets_m_accepted() {
    let (mut a, mut b) = pair(false);
    let flow = ready(&mut a, &mut b);
    let bob = b.user.clone();
    a.outbox.clear();
    let (t, c) = event(E::Ready, &flow, "BOBOTHER");
    let out = a.receive_json(&bob, t, &c);
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].content["code"], "m.accepted");
    assert_eq!(
        out.messages[0].recipient,
        Recipient::Devices { user_id: bob.clone(), device_ids: vec!["BOBOTHER".into()] }
    );
    assert_eq!(a.state(&bob, &flow), VerificationState::Ready { showing_qr: false });
}

fn room_event(p: &mut Party, room: &str, event_id: &str, sender: &UserId, event_type: &str, content: Value) -> Output {
    let room_id = ruma::OwnedRoomId::try_from(room).unwrap();
    let event_id = ruma::OwnedEventId::try_from(event_id).unwrap();
    let transport = Transport::Room { room_id: &room_id, event_id: &event_id, origin_server_ts: NOW };
    let output = p.run(|v, ctx| match parse_event(event_type, sender.as_str(), &content, transport) {
        Ok(event) => v.receive(ctx, event),
        Err(e) => v.receive_malformed(ctx, &e),
    });
    p.take(output)
}

/// In-room: another of our devices answering closes the request here, silently; an event of
/// the flow sent in another room is not part of it; a request to someone else is ignored.
#[test]
fn in_room_requests_answered_elsewhere_and_events_from_other_rooms() {
    let (mut a, _) = pair(false);
    let mut b2 = Party::new("@bob:example.org", "BOB2", 3);
    let alice = a.user.clone();
    let bob = b2.user.clone();
    let request = json!({"msgtype": "m.key.verification.request", "body": "", "from_device": "ALICE",
                         "methods": [SAS_METHOD], "to": bob});
    let out = room_event(&mut b2, "!dm:x", "$req:x", &alice, "m.room.message", request.clone());
    assert_eq!(out.updates[0].state, VerificationState::RequestReceived);
    // Alice's side: her own echo starts the flow.
    room_event(&mut a, "!dm:x", "$req:x", &alice, "m.room.message", request);
    assert_eq!(a.state(&bob, "$req:x"), VerificationState::Requested);
    // A ready naming the request, but in another room: ignored.
    let ready = json!({"from_device": "BOB1", "methods": [SAS_METHOD],
                       "m.relates_to": {"rel_type": "m.reference", "event_id": "$req:x"}});
    let out = room_event(&mut a, "!other:x", "$r0:x", &bob, "m.key.verification.ready", ready.clone());
    assert!(out.messages.is_empty() && out.updates.is_empty());
    assert_eq!(a.state(&bob, "$req:x"), VerificationState::Requested);
    // Bob's first device answers in the room: Bob's second device stops showing the request.
    let out = room_event(&mut b2, "!dm:x", "$r1:x", &bob, "m.key.verification.ready", ready.clone());
    assert!(out.messages.is_empty());
    assert_eq!(cancel_code(&b2.state(&alice, "$req:x")), Some(CancelCode::Accepted));
    // Alice gets the ready in the right room: ready, and no m.accepted in a room.
    let out = room_event(&mut a, "!dm:x", "$r1:x", &bob, "m.key.verification.ready", ready);
    assert!(out.messages.is_empty());
    assert_eq!(a.state(&bob, "$req:x"), VerificationState::Ready { showing_qr: false });
    // A second device of Bob answering too: ignored in a room (it sees the first answer).
    let ready2 = json!({"from_device": "BOB2", "methods": [SAS_METHOD],
                        "m.relates_to": {"rel_type": "m.reference", "event_id": "$req:x"}});
    let out = room_event(&mut a, "!dm:x", "$r2:x", &bob, "m.key.verification.ready", ready2);
    assert!(out.messages.is_empty() && out.updates.is_empty());
    assert_eq!(a.state(&bob, "$req:x"), VerificationState::Ready { showing_qr: false });
    // A request to someone else in a shared room is none of our business.
    let other = json!({"msgtype": "m.key.verification.request", "body": "", "from_device": "ALICE",
                       "methods": [SAS_METHOD], "to": "@carol:x"});
    let out = room_event(&mut b2, "!dm:x", "$req2:x", &alice, "m.room.message", other);
    assert!(out.updates.is_empty() && out.messages.is_empty());
}

/// Timeouts per state: an engaged flow cancels with `m.timeout` at 10 minutes; a verified flow
/// waiting for the other side's `done` just completes; a finished one stays as it is.
#[test]
fn every_state_times_out_as_it_should() {
    for s in STATES {
        let (mut us, them, flow) = in_state(s);
        us.outbox.clear();
        let before = us.state(&them.user, &flow);
        us.now = NOW + TIMESTAMP_TIMEOUT_MS;
        let out = us.run(|v, c| v.expire(c));
        let after = us.state(&them.user, &flow);
        let ctx = format!("{s:?}: {before:?} → {after:?}");
        match s {
            S::Done | S::Cancelled => {
                assert_eq!(before, after, "{ctx}");
                assert!(out.messages.is_empty(), "{ctx}");
            }
            S::WaitingForDone => {
                assert!(matches!(after, VerificationState::Done(_)), "{ctx}");
                assert!(out.messages.is_empty(), "{ctx}");
            }
            S::Received => {
                // Never answered: no longer shown, nothing sent.
                assert_eq!(cancel_code(&after), Some(CancelCode::Timeout), "{ctx}");
                assert!(out.messages.is_empty(), "{ctx}");
            }
            _ => {
                assert_eq!(cancel_code(&after), Some(CancelCode::Timeout), "{ctx}");
                assert_eq!(out.messages.len(), 1, "{ctx}");
                assert_eq!(out.messages[0].content["code"], "m.timeout", "{ctx}");
            }
        }
        // One millisecond earlier nothing would have happened.
        let (mut us, them, flow) = in_state(s);
        let before = us.state(&them.user, &flow);
        us.now = NOW + TIMESTAMP_TIMEOUT_MS - 1;
        if s == S::Received {
            us.now = NOW + RECEIVED_TIMEOUT_MS - 1;
        }
        us.run(|v, c| v.expire(c));
        assert_eq!(us.state(&them.user, &flow), before, "{s:?} just before its deadline");
    }
}

/// The spec's `m.key.verification.accept` has no `method` field (matrix-sdk-crypto sends
/// none): an accept without one is a SAS accept; one naming another method is refused.
#[test]
fn an_accept_without_method_is_a_sas_accept() {
    let accept = |method: Option<&str>| {
        let mut content = json!({"transaction_id": "txn", "key_agreement_protocol": KEY_AGREEMENT_PROTOCOL,
            "hash": HASH, "message_authentication_code": MAC_V2, "short_authentication_string": ["decimal", "emoji"],
            "commitment": base64_encode([3u8; 32])});
        if let Some(method) = method {
            content["method"] = json!(method);
        }
        parse_event("m.key.verification.accept", "@bob:example.org", &content, Transport::ToDevice)
    };
    for method in [None, Some(SAS_METHOD)] {
        let event = accept(method).expect("a SAS accept");
        match event.kind {
            EventKind::Accept(a) => {
                assert_eq!(a.commitment, [3u8; 32]);
                assert_eq!(a.message_authentication_code, MAC_V2);
            }
            other => panic!("not an accept: {other:?}"),
        }
    }
    let error = accept(Some("org.example.v1")).unwrap_err();
    assert!(error.reason.contains("another method"), "{error:?}");
}
