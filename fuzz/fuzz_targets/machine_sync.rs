#![no_main]
//! Whole sync responses (as JSON, parsed by ruma like a client does) into
//! `OlmMachine::receive_sync_changes`: to-device events, device lists, key counts.
use ferrolm_fuzz::machine::{MachineFixture, machine_fixture};
use ferrolm_machine::ruma::api::IncomingResponse as _;
use ferrolm_machine::ruma::api::client::sync::sync_events;
use ferrolm_test_homeserver::driver::sync_changes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fx = machine_fixture();
    let Ok(response) = sync_events::v3::Response::try_from_http_response(http::Response::new(data.to_vec())) else {
        return;
    };
    let changes = sync_changes(response);
    let mut bob = fx.bob.open();
    let generation = bob.store().generation();
    let before = MachineFixture::tracked(&bob);
    let next_batch = changes.next_batch.clone();
    let events = changes.to_device_events.len();
    let changed = changes.changed_devices.clone();
    let left = changes.left_devices.clone();
    let outcome = bob.receive_sync_changes(changes).expect("a sync never fails the step");
    assert_eq!(outcome.to_device.len(), events, "one outcome per event");
    assert_eq!(bob.store().generation(), generation + 1, "one change set per step");
    assert_eq!(bob.sync_token().expect("store"), Some(next_batch));
    fx.check_sync_outcome(&bob, &outcome);

    let after = MachineFixture::tracked(&bob);
    let tracked = |set: &std::collections::BTreeSet<(String, bool)>, user: &str| {
        set.iter().find(|(u, _)| u == user).map(|(_, dirty)| *dirty)
    };
    assert!(tracked(&after, fx.bob_user.as_str()).is_some(), "the own user is always tracked");
    for user in &left {
        if *user != fx.bob_user {
            assert_eq!(tracked(&after, user.as_str()), None, "a user who left is still tracked");
        }
    }
    for user in &changed {
        if tracked(&before, user.as_str()).is_some() && (!left.contains(user) || *user == fx.bob_user) {
            assert_eq!(tracked(&after, user.as_str()), Some(true), "a changed user is not due for a query");
        }
    }
    for (user, _) in &after {
        assert!(tracked(&before, user).is_some(), "a sync started tracking {user}");
    }
    bob.outgoing_requests().expect("the machine still works");
});
