#![no_main]
use ferrolm::megolm::MegolmMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = ferrolm_fuzz::megolm_fixture();
    let [first, second, rest] = ferrolm_fuzz::split::<3>(data);
    let mut batch = fixture.messages.clone();
    for part in [first, second, rest, data] {
        if let Ok(message) = MegolmMessage::from_bytes(part) {
            let single = fixture.inbound.clone().decrypt(&message);
            batch.push(message);
            // Batch and single decryption agree on every message.
            let results = fixture.inbound.clone().decrypt_batch(&batch);
            assert_eq!(results.last(), Some(&single));
        }
    }
    let results = fixture.inbound.clone().decrypt_batch(&batch);
    for (result, genuine) in results.iter().zip(&fixture.messages) {
        assert_eq!(result.as_ref().map(|d| d.message_index).ok(), Some(genuine.message_index()));
    }
});
