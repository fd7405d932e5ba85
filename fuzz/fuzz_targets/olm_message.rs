#![no_main]
use ferrolm::olm::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::from_bytes(data) {
        // A decoded message keeps exactly the bytes it came from (the MAC covers them).
        assert_eq!(message.as_bytes(), data);
        let _ = (message.ciphertext(), message.mac(), message.ratchet_key(), message.chain_index());
    }
});
