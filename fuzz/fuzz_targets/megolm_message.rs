#![no_main]
use ferrolm::megolm::MegolmMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = MegolmMessage::from_bytes(data) {
        assert_eq!(message.as_bytes(), data);
        let _ = (message.ciphertext(), message.mac(), message.message_index(), message.signature());
    }
});
