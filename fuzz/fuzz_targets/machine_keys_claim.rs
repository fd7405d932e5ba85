#![no_main]
//! Keys claim responses (JSON bodies) for Bob's claim of Carol's two devices.
use ferrolm_fuzz::machine::machine_fixture;
use ferrolm_machine::MachineError;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let fx = machine_fixture();
    let mut bob = fx.bob.open();
    let claim =
        bob.get_missing_sessions(&[fx.carol_user.clone()]).expect("claim").expect("Carol's sessions are missing");
    let generation = bob.store().generation();
    let sessions_before = bob.store().all_olm_sessions().expect("store").len();
    match bob.mark_request_as_sent_json(&claim.request_id, data) {
        Ok(outcome) => {
            assert!(bob.store().generation() <= generation + 1, "one change set per step");
            assert!(outcome.sessions_created + outcome.failed_claims.len() <= fx.carol_devices.len() + 1);
            let after = bob.store().all_olm_sessions().expect("store");
            assert_eq!(after.len(), sessions_before + outcome.sessions_created, "sessions created and stored differ");
            let response: Option<Value> = serde_json::from_slice(data).ok();
            for (device_id, curve, ed) in &fx.carol_devices {
                let sessions = bob.store().olm_sessions(curve).expect("store");
                assert!(sessions.len() <= 1, "two sessions from one claim");
                if sessions.is_empty() {
                    continue;
                }
                // A session only from a one-time key the device signed.
                let keys = response
                    .as_ref()
                    .and_then(|r| r.get("one_time_keys"))
                    .and_then(|k| k.get(fx.carol_user.as_str()))
                    .and_then(|k| k.get(device_id.as_str()))
                    .and_then(Value::as_object)
                    .expect("a session for a device the response has no key for");
                let signed = keys.values().filter_map(Value::as_object).any(|key| {
                    ferrolm_machine::signing::verify_json(
                        key,
                        fx.carol_user.as_str(),
                        &format!("ed25519:{device_id}"),
                        ed,
                    )
                    .is_ok()
                });
                assert!(signed, "a session from a key {device_id} did not sign");
            }
        }
        Err(MachineError::MalformedResponse(_)) => {
            assert_eq!(bob.store().generation(), generation, "a refused response changed the store");
            assert_eq!(bob.store().all_olm_sessions().expect("store").len(), sessions_before);
        }
        Err(e) => panic!("a keys claim response failed the step: {e}"),
    }
    bob.outgoing_requests().expect("the machine still works");
});
