#![no_main]
use ferrolm::olm::{Message, OlmMessage, PreKeyMessage, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = ferrolm_fuzz::olm_fixture();
    if let Ok(message) = Message::from_bytes(data) {
        let mut session = fixture.bob_session.clone();
        if session.decrypt(&OlmMessage::Normal(message.clone())).is_err() {
            // A failed decryption leaves the session able to read the genuine conversation.
            let mut alice = fixture.alice_session.clone();
            let genuine = alice.encrypt(b"still works");
            assert_eq!(session.decrypt(&genuine).ok().as_deref(), Some(&b"still works"[..]));
        }
        let mut alice = fixture.alice_session.clone();
        let _ = alice.decrypt(&OlmMessage::Normal(message));
    }
    if let Ok(pre_key) = PreKeyMessage::from_bytes(data) {
        for config in [SessionConfig::version_1(), SessionConfig::version_2()] {
            let mut bob = fixture.bob.clone();
            let _ = bob.create_inbound_session(config, pre_key.identity_key(), &pre_key);
        }
        let mut session = fixture.bob_session.clone();
        let _ = session.decrypt(&OlmMessage::PreKey(pre_key));
    }
});
