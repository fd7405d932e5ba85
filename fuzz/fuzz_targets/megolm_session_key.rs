#![no_main]
use ferrolm::megolm::{ExportedSessionKey, SessionKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Both versions: signed (229 bytes, version 2) and exported (165 bytes, version 1).
    if let Ok(key) = SessionKey::from_bytes(data) {
        assert_eq!(key.to_bytes().as_slice(), data);
    }
    if let Ok(key) = ExportedSessionKey::from_bytes(data) {
        assert_eq!(key.to_bytes().as_slice(), data);
    }
    let text = ferrolm_fuzz::text(data);
    let _ = SessionKey::from_base64(&text);
    let _ = ExportedSessionKey::from_base64(&text);
});
