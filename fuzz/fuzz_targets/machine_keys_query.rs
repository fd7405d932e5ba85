#![no_main]
//! Keys query responses (JSON bodies) for Bob's query of Alice and Carol.
use ferrolm_fuzz::machine::machine_fixture;
use ferrolm_machine::{DeviceEvent, MachineError, RequestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fx = machine_fixture();
    let mut bob = fx.bob_dirty.open();
    let requests = bob.outgoing_requests().expect("requests");
    let query = requests.iter().find(|r| r.kind() == RequestKind::KeysQuery).expect("a keys query is due");
    let generation = bob.store().generation();
    let users = [fx.alice_user.clone(), fx.bob_user.clone(), fx.carol_user.clone()];
    match bob.mark_request_as_sent_json(&query.request_id, data) {
        Ok(outcome) => {
            assert!(bob.store().generation() <= generation + 1, "one change set per step");
            for event in &outcome.device_events {
                if let DeviceEvent::Added { user_id, device_id } = event {
                    assert!(users.contains(user_id), "a device added for a user not queried");
                    let stored = bob.device(user_id, device_id).expect("store");
                    assert!(stored.is_some_and(|d| !d.deleted), "an added device is stored");
                }
            }
        }
        Err(MachineError::MalformedResponse(_)) => {
            assert_eq!(bob.store().generation(), generation, "a refused response changed the store");
        }
        Err(e) => panic!("a keys query response failed the step: {e}"),
    }
    fx.check_devices(&bob, &users);
    // Devices the server stops listing are marked deleted, never forgotten.
    let known = std::iter::once((&fx.alice_user, &fx.alice_device))
        .chain(fx.carol_devices.iter().map(|(id, _, _)| (&fx.carol_user, id)));
    for (user, device) in known {
        assert!(bob.device(user, device).expect("store").is_some(), "{user} {device} was forgotten");
    }
    bob.outgoing_requests().expect("the machine still works");
});
