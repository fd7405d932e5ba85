#![no_main]
//! One arbitrary to-device event (`{"type", "sender", "content"}` JSON, or anything) against
//! ferrolm-machine's verification flows in every state: no panic, a cancel is never answered,
//! no single event verifies anything, at most one message per event (checked inside).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrolm_machine::verification::fuzz::fuzz_verification_event(data);
});
