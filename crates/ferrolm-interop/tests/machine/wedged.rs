//! Wedged-session recovery between the two: ferrolm loses its Olm session with msc (a store
//! restored from before it), msc keeps writing over it; ferrolm reports the message it cannot
//! read, opens a new session from a claimed key and sends `m.dummy` over it; msc takes the new
//! session, and its next message decrypts.
//!
//! The other direction cannot be shown here: matrix-sdk-crypto 0.18 unwedges a device only
//! when its newest session with it is more than an hour old by the system clock
//! (`SessionManager::mark_device_as_wedged`, `UNWEDGING_INTERVAL`), and the scenarios do not
//! wait an hour nor control msc's clock.

use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::{RequestKind, ToDeviceError, ToDeviceOutcome};
use ferrolm_store::Table;
use ferrolm_test_homeserver::driver::{run_requests, sync};
use matrix_sdk_crypto::CollectStrategy;
use serde_json::json;

use crate::common::{FE_USER, World, fe_decrypted, fe_id};
use crate::msc::block_on;
use crate::olm::send_raw_to_device;

fn msc_says(world: &mut World, n: u64) {
    let (user, device) = fe_id(&world.fe);
    let fe_device = world.msc.device(&user, &device).unwrap();
    let encrypted =
        block_on(fe_device.encrypt_event_raw("org.example.ping", &json!({"n": n}), CollectStrategy::AllDevices))
            .unwrap();
    send_raw_to_device(&mut world.hs, &world.msc, (user.as_str(), device.as_str()), encrypted, &format!("w{n}"));
}

#[test]
fn ferrolm_recovers_a_wedged_session_with_msc_and_msc_follows() {
    let mut world = World::new();
    let fe_user = OwnedUserId::try_from(FE_USER).unwrap();
    assert!(world.msc.open_sessions(&mut world.hs, &[fe_user.clone()]));
    msc_says(&mut world, 1);
    let outcome = sync(&mut world.hs, &mut world.fe.machine).unwrap();
    assert_eq!(fe_decrypted(&outcome).len(), 1);
    // ferrolm answers, so msc's session leaves the pre-key stage: its next messages are normal ones.
    world.fe.machine.encrypt_to_device(&[world.msc.id()], "org.example.ping", &json!({"n": 2})).unwrap();
    run_requests(&mut world.hs, &mut world.fe.machine).unwrap();
    assert_eq!(world.msc.sync(&mut world.hs).decrypted().len(), 1);

    // ferrolm loses its Olm sessions (a store restored from before they existed).
    for (key, _) in world.fe.backend.rows(Table::OlmSessions) {
        world.fe.backend.tamper(Table::OlmSessions, &key, None);
    }
    let World { hs, room, fe, msc } = world;
    let mut world = World { hs, room, fe: fe.restart(7).unwrap(), msc };

    msc_says(&mut world, 3);
    let outcome = sync(&mut world.hs, &mut world.fe.machine).unwrap();
    let [ToDeviceOutcome::Refused { sender, error, .. }] = outcome.to_device.as_slice() else { panic!("{outcome:?}") };
    assert_eq!(sender.as_deref(), Some(world.msc.user_id().as_str()));
    assert!(matches!(error, ToDeviceError::NoSession | ToDeviceError::Undecryptable), "{error:?}");

    // The recovery: a claim of msc's device, then an m.dummy over the new session.
    let requests = world.fe.machine.outgoing_requests().unwrap();
    assert!(requests.iter().any(|r| r.kind() == RequestKind::KeysClaim), "{requests:?}");
    run_requests(&mut world.hs, &mut world.fe.machine).unwrap();
    let synced = world.msc.sync(&mut world.hs);
    let decrypted = synced.decrypted();
    assert_eq!(decrypted.len(), 1, "{:?}", synced.to_device);
    assert_eq!(decrypted[0].0["type"], "m.dummy");
    assert_eq!(decrypted[0].1.sender_device, Some(OwnedDeviceId::from(world.fe.machine.device_id())));

    // msc writes over the newest session, which ferrolm has.
    msc_says(&mut world, 4);
    let outcome = sync(&mut world.hs, &mut world.fe.machine).unwrap();
    let decrypted = fe_decrypted(&outcome);
    assert_eq!(decrypted.len(), 1, "{outcome:?}");
    assert_eq!(decrypted[0].content["n"], 4);
}
