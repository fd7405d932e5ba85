#![no_main]
use ferrolm::olm::{MessageType, OlmMessage};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature, base64_decode, base64_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = ferrolm_fuzz::text(data);
    if let Ok(bytes) = base64_decode(text.as_bytes()) {
        // Whatever decodes re-encodes to an equivalent string.
        assert_eq!(base64_decode(base64_encode(&bytes)).ok(), Some(bytes));
    }
    if let Ok(key) = Curve25519PublicKey::from_base64(&text) {
        assert_eq!(Curve25519PublicKey::from_base64(&key.to_base64()).ok(), Some(key));
    }
    let _ = Ed25519PublicKey::from_base64(&text);
    let _ = Ed25519Signature::from_base64(&text);
    let _ = OlmMessage::from_parts(MessageType::Normal, &text);
    let _ = OlmMessage::from_parts(MessageType::PreKey, &text);
});
