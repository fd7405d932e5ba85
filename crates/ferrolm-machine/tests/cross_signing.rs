//! Cross-signing and trust through the test homeserver: bootstrap (with user-interactive
//! authentication), export and import of the private keys, the validation of served keys,
//! the trust chains, pinning and verification violations, the sharing strategies with their
//! withheld codes, the verification state of room events, and trust across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{meet, user};
use ferrolm::types::Ed25519Keypair;
use ferrolm_machine::cross_signing::key_id;
use ferrolm_machine::ruma::{OwnedRoomId, OwnedUserId, UserId};
use ferrolm_machine::signing::sign_json_with;
use ferrolm_machine::{
    CrossSigningImportError, CrossSigningKeyExport, CrossSigningKeyRejection, EncryptionSettings, IdentityEvent,
    IdentityState, KeyUsage, LocalTrust, MachineError, OwnSigner, RequestKind, RoomKeyShare, SharingStrategy,
    TrustRequirement, UnableToDecrypt, VerificationState,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, bootstrap_cross_signing, run_requests, send, sync};
use serde_json::{Map, Value, json};

fn device(hs: &mut Homeserver, user: &str, id: &str, seed: u64) -> TestDevice {
    let mut d = TestDevice::new(hs, user, id, seed, 1_000_000).unwrap();
    d.settle(hs, 1).unwrap();
    d
}

/// Syncs and sends what follows (keys queries included); returns the identity events.
fn refresh(hs: &mut Homeserver, d: &mut TestDevice) -> Vec<IdentityEvent> {
    let mut events = Vec::new();
    for _ in 0..2 {
        sync(hs, &mut d.machine).unwrap();
        for outcome in run_requests(hs, &mut d.machine).unwrap() {
            events.extend(outcome.identity_events);
        }
    }
    events
}

fn master_of(d: &TestDevice, of: &UserId) -> ferrolm::types::Ed25519PublicKey {
    d.machine.user_identity(of).unwrap().expect("an identity").master_key
}

fn state_of(d: &TestDevice, of: &UserId) -> Option<IdentityState> {
    d.machine.user_identity(of).unwrap().map(|i| i.state)
}

/// Alice (ALICE) and Bob (BOB1 cross-signed by his bootstrap, BOB2 not), both with
/// cross-signing, in one room, knowing each other.
struct World {
    hs: Homeserver,
    room: OwnedRoomId,
    alice: TestDevice,
    bob1: TestDevice,
    bob2: TestDevice,
}

fn world() -> World {
    let mut hs = Homeserver::new();
    let mut alice = device(&mut hs, "@alice:test.server", "ALICE", 1);
    let mut bob1 = device(&mut hs, "@bob:test.server", "BOB1", 2);
    let mut bob2 = device(&mut hs, "@bob:test.server", "BOB2", 3);
    bootstrap_cross_signing(&mut hs, &mut alice.machine, false).unwrap();
    bootstrap_cross_signing(&mut hs, &mut bob1.machine, false).unwrap();
    let room = meet(&mut hs, &mut [&mut alice, &mut bob1, &mut bob2]);
    for d in [&mut alice, &mut bob1, &mut bob2] {
        refresh(&mut hs, d);
    }
    World { hs, room, alice, bob1, bob2 }
}

fn share(w: &mut World, strategy: SharingStrategy) -> RoomKeyShare {
    let members = w.hs.members(&w.room);
    if let Some(claim) = w.alice.machine.get_missing_sessions(&members).unwrap() {
        send(&mut w.hs, &mut w.alice.machine, &claim).unwrap();
    }
    let settings = EncryptionSettings { strategy, ..EncryptionSettings::default() };
    let shared = w.alice.machine.share_room_key(&w.room, &members, settings).unwrap();
    run_requests(&mut w.hs, &mut w.alice.machine).unwrap();
    shared
}

fn ids(list: &[(OwnedUserId, ferrolm_machine::ruma::OwnedDeviceId)]) -> Vec<String> {
    list.iter().map(|(u, d)| format!("{u}|{d}")).collect()
}

fn withheld(share: &RoomKeyShare) -> Vec<String> {
    share.withheld.iter().map(|((u, d), code)| format!("{u}|{d}:{code}")).collect()
}

// ---------------------------------------------------------------------------------------
// Bootstrap, status, export and import.

#[test]
fn bootstrap_publishes_the_keys_and_signs_the_device_in_order() {
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", 1, 1_000_000).unwrap();
    assert_eq!(alice.machine.cross_signing_status().unwrap(), Default::default());
    let bootstrap = alice.machine.bootstrap_cross_signing(false).unwrap();
    // The device keys are not up yet: they go first.
    let order: Vec<RequestKind> = [bootstrap.keys_upload.as_ref().unwrap(), &bootstrap.signing_keys_upload]
        .into_iter()
        .chain([&bootstrap.signature_upload])
        .map(|r| r.kind())
        .collect();
    assert_eq!(order, [RequestKind::KeysUpload, RequestKind::SigningKeysUpload, RequestKind::SignatureUpload]);
    assert!(bootstrap.signing_keys_upload.may_need_interactive_auth());
    assert!(!bootstrap.signature_upload.may_need_interactive_auth());
    assert_eq!(bootstrap.signing_keys_upload.path().unwrap(), "/_matrix/client/v3/keys/device_signing/upload");
    // The private keys are saved before the upload.
    let status = alice.machine.cross_signing_status().unwrap();
    assert!(status.has_master && status.has_self_signing && status.has_user_signing);
    assert!(!status.published);

    send(&mut hs, &mut alice.machine, bootstrap.keys_upload.as_ref().unwrap()).unwrap();
    send(&mut hs, &mut alice.machine, &bootstrap.signing_keys_upload).unwrap();
    assert!(alice.machine.cross_signing_status().unwrap().is_complete());
    let outcome = send(&mut hs, &mut alice.machine, &bootstrap.signature_upload).unwrap();
    assert!(outcome.signature_failures.is_empty(), "{:?}", outcome.signature_failures);
    // The server now serves the device signed by the self-signing key.
    let served = hs.uploaded_device_keys(alice.machine.user_id(), alice.machine.device_id()).unwrap();
    let ssk = hs.cross_signing_key(alice.machine.user_id(), KeyUsage::SelfSigning).unwrap();
    let ssk_id = ssk["keys"].as_object().unwrap().keys().next().unwrap().clone();
    assert!(served["signatures"]["@alice:test.server"].get(&ssk_id).is_some(), "{served}");
    refresh(&mut hs, &mut alice);
    let own = alice.machine.user_identity(alice.machine.user_id()).unwrap().unwrap();
    assert_eq!(own.state, IdentityState::Verified, "the own identity: private master key held");
    assert!(alice.machine.cross_signing_status().unwrap().is_complete());
}

#[test]
fn a_reset_needs_interactive_auth_and_replaces_the_identity() {
    let mut hs = Homeserver::new();
    let mut alice = device(&mut hs, "@alice:test.server", "ALICE", 1);
    bootstrap_cross_signing(&mut hs, &mut alice.machine, false).unwrap();
    refresh(&mut hs, &mut alice);
    let before = master_of(&alice, &user(&alice));

    // Without reset, the held keys are uploaded again (same master key).
    let again = alice.machine.bootstrap_cross_signing(false).unwrap();
    assert!(again.keys_upload.is_none(), "the device keys are up");
    // A replacement needs user-interactive authentication: 401, then the same request with auth.
    let http = again.signing_keys_upload.to_http_request("https://test.server", "t").unwrap();
    let response = hs.handle(alice.machine.user_id(), alice.machine.device_id(), http);
    assert_eq!(response.status(), 401);
    let challenge: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(challenge["flows"][0]["stages"][0], "m.login.password");

    bootstrap_cross_signing(&mut hs, &mut alice.machine, true).unwrap();
    // The unanswered bootstrap was replaced by the new one: its requests are gone.
    for stale in [&again.signing_keys_upload, &again.signature_upload] {
        let answer = alice.machine.mark_request_as_sent_json(&stale.request_id, b"{}");
        assert!(matches!(answer, Err(MachineError::UnknownRequest(_))), "{answer:?}");
    }
    let events = refresh(&mut hs, &mut alice);
    let after = master_of(&alice, &user(&alice));
    assert_ne!(before, after);
    assert!(alice.machine.cross_signing_status().unwrap().is_complete());
    assert_eq!(state_of(&alice, &user(&alice)), Some(IdentityState::Verified));
    assert!(events.iter().all(|e| !matches!(e, IdentityEvent::Refused { .. })), "{events:?}");
}

#[test]
fn a_bootstrap_never_silently_replaces_another_devices_identity() {
    let mut hs = Homeserver::new();
    let mut alice1 = device(&mut hs, "@alice:test.server", "ALICE1", 1);
    let mut alice2 = device(&mut hs, "@alice:test.server", "ALICE2", 2);
    bootstrap_cross_signing(&mut hs, &mut alice1.machine, false).unwrap();
    refresh(&mut hs, &mut alice2);
    assert!(matches!(alice2.machine.bootstrap_cross_signing(false), Err(MachineError::CrossSigningIdentityExists)));
    assert!(!alice2.machine.cross_signing_status().unwrap().has_master, "nothing was created");
}

#[test]
fn private_keys_are_exported_and_imported_against_the_published_keys() {
    let mut hs = Homeserver::new();
    let mut alice1 = device(&mut hs, "@alice:test.server", "ALICE1", 1);
    let mut alice2 = device(&mut hs, "@alice:test.server", "ALICE2", 2);
    bootstrap_cross_signing(&mut hs, &mut alice1.machine, false).unwrap();
    let export = alice1.machine.export_cross_signing_keys().unwrap();
    assert!(export.master_key.is_some() && export.self_signing_key.is_some() && export.user_signing_key.is_some());
    assert!(!format!("{export:?}").contains(export.master_key.as_ref().unwrap().as_str()), "Debug is redacted");

    // Before the own identity is known: nothing to check against.
    let err = alice2.machine.import_cross_signing_keys(&export).unwrap_err();
    assert!(matches!(err, MachineError::CrossSigningImport(CrossSigningImportError::NoPublishedIdentity)));
    refresh(&mut hs, &mut alice2);
    assert_eq!(state_of(&alice2, &user(&alice2)), Some(IdentityState::Pinned), "not trusted yet");

    // Keys of another identity are refused, key by key.
    let mut other_hs = Homeserver::new();
    let mut mallory = device(&mut other_hs, "@alice:test.server", "MALLORY", 9);
    bootstrap_cross_signing(&mut other_hs, &mut mallory.machine, false).unwrap();
    let forged = mallory.machine.export_cross_signing_keys().unwrap();
    for (usage, export) in [
        (KeyUsage::Master, CrossSigningKeyExport { master_key: forged.master_key.clone(), ..Default::default() }),
        (
            KeyUsage::SelfSigning,
            CrossSigningKeyExport { self_signing_key: forged.self_signing_key.clone(), ..Default::default() },
        ),
        (
            KeyUsage::UserSigning,
            CrossSigningKeyExport { user_signing_key: forged.user_signing_key.clone(), ..Default::default() },
        ),
    ] {
        let err = alice2.machine.import_cross_signing_keys(&export).unwrap_err();
        assert!(
            matches!(err, MachineError::CrossSigningImport(CrossSigningImportError::MismatchedPublicKey(u)) if u == usage),
            "{err:?}"
        );
    }
    let malformed = CrossSigningKeyExport { master_key: Some("AAAA".to_owned().into()), ..Default::default() };
    assert!(matches!(
        alice2.machine.import_cross_signing_keys(&malformed),
        Err(MachineError::CrossSigningImport(CrossSigningImportError::Malformed(KeyUsage::Master)))
    ));
    assert!(matches!(
        alice2.machine.import_cross_signing_keys(&CrossSigningKeyExport::default()),
        Err(MachineError::CrossSigningImport(CrossSigningImportError::Empty))
    ));
    assert!(!alice2.machine.cross_signing_status().unwrap().has_master, "nothing stored by the refusals");

    let status = alice2.machine.import_cross_signing_keys(&export).unwrap();
    assert!(status.is_complete(), "{status:?}");
    assert_eq!(state_of(&alice2, &user(&alice2)), Some(IdentityState::Verified));
    // And it survives a restart.
    let alice2 = alice2.restart(22).unwrap();
    assert!(alice2.machine.cross_signing_status().unwrap().is_complete());
    let again = alice2.machine.export_cross_signing_keys().unwrap();
    for (a, b) in [
        (&again.master_key, &export.master_key),
        (&again.self_signing_key, &export.self_signing_key),
        (&again.user_signing_key, &export.user_signing_key),
    ] {
        assert_eq!(a.as_deref().map(String::as_str), b.as_deref().map(String::as_str));
    }
}

// ---------------------------------------------------------------------------------------
// Validation of served keys.

fn served_key(hs: &Homeserver, user: &UserId, usage: KeyUsage) -> Map<String, Value> {
    match hs.cross_signing_key(user, usage).unwrap() {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Alice knows Bob's identity; the server then serves `forged` as Bob's key of `usage`.
fn serve_forged(usage: KeyUsage, forge: impl FnOnce(&mut Map<String, Value>, &Homeserver)) -> (IdentityEvent, World) {
    let mut w = world();
    let bob = user(&w.bob1);
    let known = w.alice.machine.user_identity(&bob).unwrap().unwrap();
    let mut key = served_key(&w.hs, &bob, usage);
    forge(&mut key, &w.hs);
    w.hs.serve_cross_signing_key(&bob, usage, Value::Object(key));
    let events = refresh(&mut w.hs, &mut w.alice);
    let [event] = events.as_slice() else { panic!("one event expected: {events:?}") };
    assert_eq!(w.alice.machine.user_identity(&bob).unwrap().unwrap(), known, "the stored identity stays");
    (event.clone(), w)
}

fn refusal(event: &IdentityEvent) -> (KeyUsage, CrossSigningKeyRejection) {
    match event {
        IdentityEvent::Refused { usage, reason, .. } => (*usage, reason.clone()),
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn rule_a_master_key_with_a_wrong_usage_is_refused() {
    let (event, _) = serve_forged(KeyUsage::Master, |key, _| {
        key.insert("usage".into(), json!(["self_signing"]));
    });
    assert!(matches!(refusal(&event), (KeyUsage::Master, CrossSigningKeyRejection::WrongUsage { .. })));
}

#[test]
fn rule_a_key_for_another_user_is_refused() {
    let (event, _) = serve_forged(KeyUsage::Master, |key, _| {
        key.insert("user_id".into(), json!("@mallory:test.server"));
    });
    assert!(matches!(refusal(&event), (KeyUsage::Master, CrossSigningKeyRejection::UserIdMismatch { .. })));
}

#[test]
fn rule_a_self_signing_key_not_signed_by_the_master_key_is_refused() {
    let (event, _) = serve_forged(KeyUsage::SelfSigning, |key, _| {
        // Another self-signing key, signed by a key that is not Bob's master key.
        let forged = Ed25519Keypair::from_seed(&[0x66; 32]);
        let public = forged.public_key();
        key.insert("keys".into(), json!({key_id(&public): public.to_base64()}));
        key.remove("signatures");
        sign_json_with(&forged, "@bob:test.server", &key_id(&public), key).unwrap();
    });
    assert!(matches!(
        refusal(&event),
        (
            KeyUsage::SelfSigning,
            CrossSigningKeyRejection::NotSignedByMaster(ferrolm_machine::signing::SignatureError::Missing { .. })
        )
    ));
}

#[test]
fn rule_a_bad_signature_on_a_cross_signing_key_is_refused() {
    let (event, _) = serve_forged(KeyUsage::SelfSigning, |key, hs| {
        // The master key's signature, over other content.
        let master = served_key(hs, ferrolm_machine::ruma::user_id!("@bob:test.server"), KeyUsage::Master);
        let master_id = master["keys"].as_object().unwrap().keys().next().unwrap().clone();
        let other = Ed25519Keypair::from_seed(&[0x67; 32]).public_key();
        key.insert("keys".into(), json!({key_id(&other): other.to_base64()}));
        assert!(key["signatures"]["@bob:test.server"].get(&master_id).is_some());
    });
    assert!(matches!(
        refusal(&event),
        (
            KeyUsage::SelfSigning,
            CrossSigningKeyRejection::NotSignedByMaster(ferrolm_machine::signing::SignatureError::Invalid)
        )
    ));
}

#[test]
fn the_user_signing_key_is_known_for_the_own_user_only() {
    let w = world();
    let bob = user(&w.bob1);
    let known = w.alice.machine.user_identity(&bob).unwrap().unwrap();
    assert_eq!(known.user_signing_key, None, "the server serves a user's user-signing key to that user only");
    let own = w.alice.machine.user_identity(&user(&w.alice)).unwrap().unwrap();
    assert!(own.user_signing_key.is_some());
}

// ---------------------------------------------------------------------------------------
// The trust chains.

#[test]
fn the_chain_own_master_user_signing_their_master_self_signing_their_device() {
    let mut w = world();
    let (alice, bob) = (user(&w.alice), user(&w.bob1));
    let trust = w.alice.machine.device_trust(&bob, w.bob1.machine.device_id()).unwrap().unwrap();
    assert!(trust.cross_signed, "BOB1 is signed by Bob's self-signing key");
    assert_eq!(trust.owner_identity, Some(IdentityState::Pinned), "first seen: pinned, not verified");
    assert!(!trust.is_verified());
    let bob2 = w.alice.machine.device_trust(&bob, w.bob2.machine.device_id()).unwrap().unwrap();
    assert!(!bob2.cross_signed);

    // Alice verifies Bob (after SAS): her user-signing key signs his master key.
    let master = master_of(&w.alice, &bob);
    let upload = w.alice.machine.verify_identity(&bob, &master).unwrap().expect("a signature upload");
    assert_eq!(upload.kind(), RequestKind::SignatureUpload);
    assert!(w.alice.machine.outgoing_requests().unwrap().iter().any(|r| r.request_id == upload.request_id));
    let outcome = send(&mut w.hs, &mut w.alice.machine, &upload).unwrap();
    assert!(outcome.signature_failures.is_empty());
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Verified));
    assert!(w.alice.machine.is_device_verified(&bob, w.bob1.machine.device_id()).unwrap());
    assert!(!w.alice.machine.is_device_verified(&bob, w.bob2.machine.device_id()).unwrap(), "not cross-signed");
    let served = served_key(&w.hs, &bob, KeyUsage::Master);
    assert!(served["signatures"].get(alice.as_str()).is_some(), "the server merged Alice's signature");

    // A second device of Alice, without the private keys, sees the signature but does not
    // trust its own identity yet: the chain does not hold.
    let mut alice2 = device(&mut w.hs, "@alice:test.server", "ALICE2", 4);
    alice2.machine.update_tracked_users(std::slice::from_ref(&bob)).unwrap();
    refresh(&mut w.hs, &mut alice2);
    assert_eq!(state_of(&alice2, &alice), Some(IdentityState::Pinned));
    assert_eq!(state_of(&alice2, &bob), Some(IdentityState::Pinned));
    assert!(!alice2.machine.is_device_verified(&bob, w.bob1.machine.device_id()).unwrap());
    // Once it verifies its own master key (self-verification), the whole chain holds.
    let own_master = master_of(&alice2, &alice);
    alice2.machine.verify_identity(&alice, &own_master).unwrap().expect("this device signs the master key");
    run_requests(&mut w.hs, &mut alice2.machine).unwrap();
    assert_eq!(state_of(&alice2, &alice), Some(IdentityState::Verified));
    assert_eq!(state_of(&alice2, &bob), Some(IdentityState::Verified), "through Alice's user-signing key");
    assert!(alice2.machine.is_device_verified(&bob, w.bob1.machine.device_id()).unwrap());
    // ALICE1 is an own device signed by the own self-signing key: verified for ALICE2 too.
    assert!(alice2.machine.is_device_verified(&alice, w.alice.machine.device_id()).unwrap());

    // Trust survives reopening the store.
    let alice = w.alice.restart(11).unwrap();
    assert_eq!(state_of(&alice, &bob), Some(IdentityState::Verified));
    assert!(alice.machine.is_device_verified(&bob, w.bob1.machine.device_id()).unwrap());
    let alice2 = alice2.restart(12).unwrap();
    assert_eq!(state_of(&alice2, &bob), Some(IdentityState::Verified));
}

/// The signature uploads of two verifications lost to a crash (the trust committed, the
/// uploads never sent) are queued again when the machine reopens: the user-signing key over
/// Bob's master key, the self-signing key over the own new device. Once the homeserver
/// serves both signatures, reopening queues nothing.
#[test]
fn signature_uploads_lost_to_a_restart_are_queued_again() {
    let mut hs = Homeserver::new();
    let mut alice1 = device(&mut hs, "@alice:test.server", "ALICE1", 1);
    let mut bob = device(&mut hs, "@bob:test.server", "BOB", 2);
    bootstrap_cross_signing(&mut hs, &mut alice1.machine, false).unwrap();
    bootstrap_cross_signing(&mut hs, &mut bob.machine, false).unwrap();
    let alice2 = device(&mut hs, "@alice:test.server", "ALICE2", 3);
    meet(&mut hs, &mut [&mut alice1, &mut bob]);
    refresh(&mut hs, &mut alice1);
    let (alice, bob_id) = (user(&alice1), user(&bob));
    let id2 = alice2.machine.device_id().to_owned();
    let master = master_of(&alice1, &bob_id);
    alice1.machine.verify_identity(&bob_id, &master).unwrap().expect("an upload");
    alice1.machine.verify_device(&alice, &id2, &alice2.machine.identity_keys().ed25519).unwrap().expect("an upload");

    let signature_uploads = |d: &mut TestDevice| {
        d.machine.outgoing_requests().unwrap().iter().filter(|r| r.kind() == RequestKind::SignatureUpload).count()
    };
    let mut alice1 = alice1.restart(21).unwrap();
    assert_eq!(signature_uploads(&mut alice1), 2, "both uploads are queued again");
    assert_eq!(state_of(&alice1, &bob_id), Some(IdentityState::Verified), "the trust was committed");
    for outcome in run_requests(&mut hs, &mut alice1.machine).unwrap() {
        assert!(outcome.signature_failures.is_empty(), "{:?}", outcome.signature_failures);
    }
    let served = served_key(&hs, &bob_id, KeyUsage::Master);
    assert!(served["signatures"].get(alice.as_str()).is_some(), "the server has Alice's signature on Bob");
    refresh(&mut hs, &mut alice1);
    let trust = alice1.machine.device_trust(&alice, &id2).unwrap().unwrap();
    assert!(trust.cross_signed, "the server serves ALICE2 signed by the self-signing key");

    let mut alice1 = alice1.restart(22).unwrap();
    assert_eq!(signature_uploads(&mut alice1), 0, "nothing is missing any more");
}

#[test]
fn own_devices_are_verified_through_the_self_signing_key() {
    let mut hs = Homeserver::new();
    let mut alice1 = device(&mut hs, "@alice:test.server", "ALICE1", 1);
    bootstrap_cross_signing(&mut hs, &mut alice1.machine, false).unwrap();
    let alice2 = device(&mut hs, "@alice:test.server", "ALICE2", 2);
    refresh(&mut hs, &mut alice1);
    let alice = user(&alice1);
    let id2 = alice2.machine.device_id().to_owned();
    assert!(!alice1.machine.is_device_verified(&alice, &id2).unwrap());
    // After SAS between the two: ALICE1 signs ALICE2 with the self-signing key.
    let key = alice2.machine.identity_keys().ed25519;
    let wrong = Ed25519Keypair::from_seed(&[3; 32]).public_key();
    assert!(matches!(alice1.machine.verify_device(&alice, &id2, &wrong), Err(MachineError::DeviceKeyMismatch { .. })));
    let upload = alice1.machine.verify_device(&alice, &id2, &key).unwrap().expect("an own device is signed");
    send(&mut hs, &mut alice1.machine, &upload).unwrap();
    refresh(&mut hs, &mut alice1);
    let trust = alice1.machine.device_trust(&alice, &id2).unwrap().unwrap();
    assert!(trust.cross_signed && trust.is_verified(), "{trust:?}");
    // Without the local trust, the signature alone still verifies it.
    alice1.machine.set_local_trust(&alice, &id2, LocalTrust::Unset).unwrap();
    assert!(alice1.machine.is_device_verified(&alice, &id2).unwrap());
    // Local trust overrides: blacklisted is never verified.
    alice1.machine.set_local_trust(&alice, &id2, LocalTrust::Blacklisted).unwrap();
    assert!(!alice1.machine.is_device_verified(&alice, &id2).unwrap());
}

#[test]
fn local_trust_overrides_the_chain_both_ways() {
    let mut w = world();
    let bob = user(&w.bob1);
    let (b1, b2) = (w.bob1.machine.device_id().to_owned(), w.bob2.machine.device_id().to_owned());
    // BOB2 is not cross-signed; the user verified it by hand.
    w.alice.machine.set_local_trust(&bob, &b2, LocalTrust::Verified).unwrap();
    assert!(w.alice.machine.is_device_verified(&bob, &b2).unwrap());
    // BOB1 is in a verified chain, but blacklisted.
    let master = master_of(&w.alice, &bob);
    w.alice.machine.verify_identity(&bob, &master).unwrap();
    assert!(w.alice.machine.is_device_verified(&bob, &b1).unwrap());
    w.alice.machine.set_local_trust(&bob, &b1, LocalTrust::Blacklisted).unwrap();
    assert!(!w.alice.machine.is_device_verified(&bob, &b1).unwrap());
    for trust in [LocalTrust::Ignored, LocalTrust::Unset] {
        w.alice.machine.set_local_trust(&bob, &b1, trust).unwrap();
        assert!(w.alice.machine.is_device_verified(&bob, &b1).unwrap(), "{trust:?}: the chain holds");
    }
}

#[test]
fn verification_refuses_a_changed_key_and_a_device_named_like_a_cross_signing_key() {
    let mut w = world();
    let bob = user(&w.bob1);
    let other = Ed25519Keypair::from_seed(&[5; 32]).public_key();
    assert!(matches!(w.alice.machine.verify_identity(&bob, &other), Err(MachineError::MasterKeyMismatch { .. })));
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Pinned));
    // A device of Bob whose id is his master key.
    let master = master_of(&w.alice, &bob);
    let mut evil = device(&mut w.hs, "@bob:test.server", &master.to_base64(), 8);
    run_requests(&mut w.hs, &mut evil.machine).unwrap();
    refresh(&mut w.hs, &mut w.alice);
    assert!(w.alice.machine.device(&bob, master.to_base64().as_str().into()).unwrap().is_some());
    assert!(matches!(
        w.alice.machine.verify_identity(&bob, &master),
        Err(MachineError::DeviceIdCollidesWithCrossSigningKey { .. })
    ));
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Pinned));
}

// ---------------------------------------------------------------------------------------
// Master key changes.

#[test]
fn a_master_key_change_after_verification_is_a_violation_the_strategies_refuse() {
    let mut w = world();
    let bob = user(&w.bob1);
    let master = master_of(&w.alice, &bob);
    let upload = w.alice.machine.verify_identity(&bob, &master).unwrap().unwrap();
    send(&mut w.hs, &mut w.alice.machine, &upload).unwrap();
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Verified));
    let first = share(&mut w, SharingStrategy::IdentityBased);
    assert!(ids(&first.shared_with).contains(&format!("{bob}|BOB1")));

    // Bob resets cross-signing (or the server lies about his keys).
    bootstrap_cross_signing(&mut w.hs, &mut w.bob1.machine, true).unwrap();
    let events = refresh(&mut w.hs, &mut w.alice);
    let new = master_of(&w.alice, &bob);
    assert!(
        events.contains(&IdentityEvent::MasterKeyChanged {
            user_id: bob.clone(),
            previous: master,
            new,
            state: IdentityState::VerificationViolation,
        }),
        "{events:?}"
    );
    let identity = w.alice.machine.user_identity(&bob).unwrap().unwrap();
    assert_eq!(identity.state, IdentityState::VerificationViolation);
    assert_eq!(identity.pinned_master_key, master, "the pin stays on the key the user accepted");
    assert!(!w.alice.machine.is_device_verified(&bob, w.bob1.machine.device_id()).unwrap());

    // Identity-based sharing sends Bob nothing and says so; the key rotates (BOB1 held it).
    let refused = share(&mut w, SharingStrategy::IdentityBased);
    assert_eq!(refused.identity_violations, vec![bob.clone()]);
    assert!(refused.rotated);
    assert!(refused.shared_with.iter().chain(refused.withheld.iter().map(|(k, _)| k)).all(|(u, _)| *u != bob));
    let device_based = share(&mut w, SharingStrategy::CrossSignedDevices);
    assert_eq!(device_based.identity_violations, vec![bob.clone()]);
    // "Only verified devices": Bob's devices are no longer verified.
    let verified_only = share(&mut w, SharingStrategy::OnlyVerifiedDevices);
    assert!(verified_only.identity_violations.is_empty());
    assert!(withheld(&verified_only).contains(&format!("{bob}|BOB1:m.unverified")), "{verified_only:?}");

    // The violation survives a restart.
    w.alice = w.alice.restart(31).unwrap();
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::VerificationViolation));

    // The user acknowledges: withdraw the verification requirement; Bob gets keys again.
    w.alice.machine.withdraw_verification(&bob).unwrap();
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Pinned));
    let again = share(&mut w, SharingStrategy::IdentityBased);
    assert!(again.identity_violations.is_empty());
    assert!(ids(&again.shared_with).contains(&format!("{bob}|BOB1")), "{again:?}");
}

#[test]
fn a_master_key_change_is_never_silent_even_unverified() {
    let mut w = world();
    let bob = user(&w.bob1);
    let first = master_of(&w.alice, &bob);
    bootstrap_cross_signing(&mut w.hs, &mut w.bob1.machine, true).unwrap();
    let events = refresh(&mut w.hs, &mut w.alice);
    let second = master_of(&w.alice, &bob);
    assert!(events.contains(&IdentityEvent::MasterKeyChanged {
        user_id: bob.clone(),
        previous: first,
        new: second,
        state: IdentityState::PinViolation,
    }));
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::PinViolation));
    // A pin violation is not a verification violation: identity-based sharing goes on.
    let shared = share(&mut w, SharingStrategy::IdentityBased);
    assert!(shared.identity_violations.is_empty());
    // Every change is reported, not just the first.
    bootstrap_cross_signing(&mut w.hs, &mut w.bob1.machine, true).unwrap();
    let events = refresh(&mut w.hs, &mut w.alice);
    let third = master_of(&w.alice, &bob);
    assert!(events.iter().any(
        |e| matches!(e, IdentityEvent::MasterKeyChanged { previous, new, .. } if *previous == second && *new == third)
    ));
    assert_eq!(w.alice.machine.user_identity(&bob).unwrap().unwrap().pinned_master_key, first);
    w.alice.machine.pin_current_master_key(&bob).unwrap();
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Pinned));
    assert_eq!(w.alice.machine.user_identity(&bob).unwrap().unwrap().pinned_master_key, third);
}

// ---------------------------------------------------------------------------------------
// Sharing strategies.

#[test]
fn strategies_leave_out_devices_with_the_right_codes() {
    let mut w = world();
    let bob = user(&w.bob1);
    let mut carol = device(&mut w.hs, "@carol:test.server", "CAROL", 5);
    w.hs.join(&w.room, carol.machine.user_id());
    let members = w.hs.members(&w.room);
    w.alice.machine.update_tracked_users(&members).unwrap();
    carol.machine.update_tracked_users(&members).unwrap();
    refresh(&mut w.hs, &mut w.alice);
    let carol_id = format!("{}|CAROL", user(&carol));

    let all = share(&mut w, SharingStrategy::AllDevices);
    assert_eq!(ids(&all.shared_with).len(), 3, "{all:?}");

    // Cross-signed devices: BOB2 is not signed by Bob, Carol has no identity.
    let cross = share(&mut w, SharingStrategy::CrossSignedDevices);
    assert!(cross.rotated, "devices that held the key are left out");
    assert_eq!(ids(&cross.shared_with), vec![format!("{bob}|BOB1")]);
    let mut codes = withheld(&cross);
    codes.sort();
    assert_eq!(codes, vec![format!("{bob}|BOB2:m.unverified"), format!("{carol_id}:m.unverified")]);

    // Identity-based: the same devices (no identity is in violation).
    let identity = share(&mut w, SharingStrategy::IdentityBased);
    assert!(identity.identity_violations.is_empty());
    assert!(identity.shared_with.is_empty() && identity.withheld.is_empty(), "BOB1 has it, the others were told");

    // Only verified devices: nobody is verified yet.
    let verified = share(&mut w, SharingStrategy::OnlyVerifiedDevices);
    assert!(verified.rotated);
    assert!(verified.shared_with.is_empty(), "{verified:?}");
    assert_eq!(verified.withheld.len(), 3);
    // Alice verifies Bob: BOB1 (cross-signed) gets the key now, BOB2 still not.
    let master = master_of(&w.alice, &bob);
    let upload = w.alice.machine.verify_identity(&bob, &master).unwrap().unwrap();
    send(&mut w.hs, &mut w.alice.machine, &upload).unwrap();
    let after = share(&mut w, SharingStrategy::OnlyVerifiedDevices);
    assert_eq!(ids(&after.shared_with), vec![format!("{bob}|BOB1")]);
    // Local trust: BOB2 verified by hand gets it; BOB1 blacklisted gets m.blacklisted.
    w.alice.machine.set_local_trust(&bob, w.bob2.machine.device_id(), LocalTrust::Verified).unwrap();
    w.alice.machine.set_local_trust(&bob, w.bob1.machine.device_id(), LocalTrust::Blacklisted).unwrap();
    let overridden = share(&mut w, SharingStrategy::OnlyVerifiedDevices);
    assert!(overridden.rotated, "BOB1 is no longer a recipient");
    assert_eq!(ids(&overridden.shared_with), vec![format!("{bob}|BOB2")]);
    assert!(withheld(&overridden).contains(&format!("{bob}|BOB1:m.blacklisted")), "{overridden:?}");
    // Under identity-based sharing, a device verified by hand but not cross-signed is left out.
    let msc4153 = share(&mut w, SharingStrategy::IdentityBased);
    assert!(withheld(&msc4153).contains(&format!("{bob}|BOB2:m.unverified")), "{msc4153:?}");

    // Bob's devices receive the withheld notices and report them.
    let outcome = sync(&mut w.hs, &mut w.bob2.machine).unwrap();
    assert!(outcome.withheld.iter().any(|n| n.code == "m.unverified"), "{:?}", outcome.withheld);
}

// ---------------------------------------------------------------------------------------
// Room events.

#[test]
fn room_events_report_the_senders_cross_signing_trust() {
    let mut w = world();
    let bob = user(&w.bob1);
    // Bob shares and sends; Alice decrypts.
    let members = w.hs.members(&w.room);
    if let Some(claim) = w.bob1.machine.get_missing_sessions(&members).unwrap() {
        send(&mut w.hs, &mut w.bob1.machine, &claim).unwrap();
    }
    w.bob1.machine.share_room_key(&w.room, &members, EncryptionSettings::default()).unwrap();
    run_requests(&mut w.hs, &mut w.bob1.machine).unwrap();
    let content = w.bob1.machine.encrypt_room_event(&w.room, "m.room.message", &json!({"body": "hi"})).unwrap();
    let event_id = w.hs.send_room_event(&w.room, &bob, "m.room.encrypted", content.clone()).unwrap();
    sync(&mut w.hs, &mut w.alice.machine).unwrap();
    let event = json!({"type": "m.room.encrypted", "event_id": event_id, "sender": bob, "origin_server_ts": 1,
                       "room_id": w.room, "content": content});
    let raw = ferrolm_machine::ruma::serde::Raw::from_json(serde_json::value::to_raw_value(&event).unwrap());
    let decrypt = |d: &mut TestDevice, requirement| d.machine.decrypt_room_event(&raw, &w.room, requirement).unwrap();

    let got = decrypt(&mut w.alice, TrustRequirement::Untrusted).unwrap();
    assert_eq!(got.encryption.verification, VerificationState::Unverified);
    assert_eq!(decrypt(&mut w.alice, TrustRequirement::VerifiedDevice).unwrap_err(), UnableToDecrypt::UntrustedSender);

    // Verified through cross-signing: the next decryption says so (no stale verdict).
    let master = master_of(&w.alice, &bob);
    w.alice.machine.verify_identity(&bob, &master).unwrap();
    let got = decrypt(&mut w.alice, TrustRequirement::VerifiedDevice).unwrap();
    assert_eq!(got.encryption.verification, VerificationState::Verified);

    // Bob's identity changes: a verification violation, not shown under the strict setting.
    bootstrap_cross_signing(&mut w.hs, &mut w.bob1.machine, true).unwrap();
    refresh(&mut w.hs, &mut w.alice);
    let got = decrypt(&mut w.alice, TrustRequirement::Untrusted).unwrap();
    assert_eq!(got.encryption.verification, VerificationState::VerificationViolation);
    assert_eq!(decrypt(&mut w.alice, TrustRequirement::VerifiedDevice).unwrap_err(), UnableToDecrypt::UntrustedSender);
}

// ---------------------------------------------------------------------------------------
// For the backup: who of the own user signed an object.

#[test]
fn trusted_own_signer_accepts_the_master_key_and_verified_own_devices_only() {
    let mut hs = Homeserver::new();
    let mut alice1 = device(&mut hs, "@alice:test.server", "ALICE1", 1);
    bootstrap_cross_signing(&mut hs, &mut alice1.machine, false).unwrap();
    let alice2 = device(&mut hs, "@alice:test.server", "ALICE2", 2);
    refresh(&mut hs, &mut alice1);
    let alice = user(&alice1);
    let auth_data = || match json!({"public_key": "abc"}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };

    // Signed by the own master key (its private key held here).
    let export = alice1.machine.export_cross_signing_keys().unwrap();
    let master_seed = ferrolm::types::base64_decode(export.master_key.as_ref().unwrap().as_str()).unwrap();
    let master = Ed25519Keypair::from_seed(&master_seed.try_into().unwrap());
    let mut signed = auth_data();
    sign_json_with(&master, alice.as_str(), &key_id(&master.public_key()), &mut signed).unwrap();
    assert_eq!(alice1.machine.trusted_own_signer(&signed).unwrap(), Some(OwnSigner::MasterKey(master.public_key())));

    // This device's signature, moved onto other content, does not verify.
    let mut moved = auth_data();
    moved.insert("signatures".into(), alice1.machine.device_keys().unwrap()["signatures"].clone());
    assert_eq!(alice1.machine.trusted_own_signer(&moved).unwrap(), None);
    // Signed by this device.
    let device_keys = alice1.machine.device_keys().unwrap();
    assert_eq!(
        alice1.machine.trusted_own_signer(&device_keys).unwrap(),
        Some(OwnSigner::Device(alice1.machine.device_id().to_owned()))
    );

    // ALICE2's signature: not trusted until ALICE2 is verified.
    let alice2_keys = alice2.machine.device_keys().unwrap();
    assert_eq!(alice1.machine.trusted_own_signer(&alice2_keys).unwrap(), None);
    let key = alice2.machine.identity_keys().ed25519;
    let id2 = alice2.machine.device_id().to_owned();
    let upload = alice1.machine.verify_device(&alice, &id2, &key).unwrap().unwrap();
    send(&mut hs, &mut alice1.machine, &upload).unwrap();
    assert_eq!(alice1.machine.trusted_own_signer(&alice2_keys).unwrap(), Some(OwnSigner::Device(id2)));
    // Another user's signature is never an own signer.
    let bob = device(&mut hs, "@bob:test.server", "BOB", 3);
    assert_eq!(alice1.machine.trusted_own_signer(&bob.machine.device_keys().unwrap()).unwrap(), None);
}

#[test]
fn an_own_master_key_change_by_another_device_is_reported_and_breaks_the_chain() {
    let mut w = world();
    let (alice, bob) = (user(&w.alice), user(&w.bob1));
    let master = master_of(&w.alice, &bob);
    let upload = w.alice.machine.verify_identity(&bob, &master).unwrap().unwrap();
    send(&mut w.hs, &mut w.alice.machine, &upload).unwrap();
    let own_before = master_of(&w.alice, &alice);

    // Another device of Alice (or a malicious server with Alice's password) resets her identity.
    let mut other = device(&mut w.hs, "@alice:test.server", "ALICEOTHER", 7);
    refresh(&mut w.hs, &mut other);
    bootstrap_cross_signing(&mut w.hs, &mut other.machine, true).unwrap();
    let events = refresh(&mut w.hs, &mut w.alice);
    let own_after = master_of(&w.alice, &alice);
    assert!(
        events.contains(&IdentityEvent::MasterKeyChanged {
            user_id: alice.clone(),
            previous: own_before,
            new: own_after,
            state: IdentityState::VerificationViolation,
        }),
        "{events:?}"
    );
    let status = w.alice.machine.cross_signing_status().unwrap();
    assert!(status.has_master && !status.master_matches && !status.is_complete(), "{status:?}");
    // Bob's master key was verified on this device (SAS): that still holds, his key did not
    // change. But the signature by the old user-signing key proves nothing to the new identity:
    // for ALICEOTHER, which holds the new keys, Bob is only pinned.
    assert_eq!(state_of(&w.alice, &bob), Some(IdentityState::Verified));
    other.machine.update_tracked_users(std::slice::from_ref(&bob)).unwrap();
    refresh(&mut w.hs, &mut other);
    assert_eq!(state_of(&other, &alice), Some(IdentityState::Verified));
    let served = served_key(&w.hs, &bob, KeyUsage::Master);
    assert!(served["signatures"].get(alice.as_str()).is_some(), "the old signature is still served");
    assert_eq!(state_of(&other, &bob), Some(IdentityState::Pinned));
    assert!(!other.machine.is_device_verified(&bob, w.bob1.machine.device_id()).unwrap());
    // The own device is still the own device.
    assert!(w.alice.machine.is_device_verified(&alice, w.alice.machine.device_id()).unwrap());
}

#[test]
fn a_change_of_an_identity_verified_only_through_the_chain_is_a_violation() {
    let mut w = world();
    let (alice, bob) = (user(&w.alice), user(&w.bob1));
    let master = master_of(&w.alice, &bob);
    let upload = w.alice.machine.verify_identity(&bob, &master).unwrap().unwrap();
    send(&mut w.hs, &mut w.alice.machine, &upload).unwrap();
    // ALICE2 learns Bob's identity (signed by Alice's user-signing key) before it trusts its own.
    let mut alice2 = device(&mut w.hs, "@alice:test.server", "ALICE2", 4);
    alice2.machine.update_tracked_users(std::slice::from_ref(&bob)).unwrap();
    refresh(&mut w.hs, &mut alice2);
    assert!(!alice2.machine.user_identity(&bob).unwrap().unwrap().previously_verified);
    // Then gets the private keys: Bob is verified through the chain, with no new query of Bob.
    alice2.machine.import_cross_signing_keys(&w.alice.machine.export_cross_signing_keys().unwrap()).unwrap();
    assert_eq!(state_of(&alice2, &bob), Some(IdentityState::Verified));
    assert_eq!(state_of(&alice2, &alice), Some(IdentityState::Verified));
    // Bob's identity changes: a verification violation, not a mere pin violation.
    bootstrap_cross_signing(&mut w.hs, &mut w.bob1.machine, true).unwrap();
    let events = refresh(&mut w.hs, &mut alice2);
    assert!(
        events.iter().any(|e| matches!(e, IdentityEvent::MasterKeyChanged { user_id, state: IdentityState::VerificationViolation, .. } if *user_id == bob)),
        "{events:?}"
    );
    assert_eq!(state_of(&alice2, &bob), Some(IdentityState::VerificationViolation));
}
