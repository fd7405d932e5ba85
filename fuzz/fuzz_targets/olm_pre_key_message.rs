#![no_main]
use ferrolm::olm::PreKeyMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = PreKeyMessage::from_bytes(data) {
        assert_eq!(message.as_bytes(), data);
        let _ = (message.session_id(), message.message().ciphertext());
    }
});
