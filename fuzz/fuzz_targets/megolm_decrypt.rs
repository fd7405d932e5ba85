#![no_main]
use ferrolm::megolm::MegolmMessage;
use libfuzzer_sys::fuzz_target;

// Batch decryption gives exactly one-by-one decryption's result for every message, whatever
// else the batch holds and in any order, and leaves the session in the same state.
fuzz_target!(|data: &[u8]| {
    let fixture = ferrolm_fuzz::megolm_fixture();
    let [first, second, rest] = ferrolm_fuzz::split::<3>(data);
    let mut batch = fixture.messages.clone();
    for part in [first, second, rest, data] {
        if let Ok(message) = MegolmMessage::from_bytes(part) {
            batch.push(message);
        }
    }
    // Where the fuzzed messages sit in the batch changes the order of the ratchet walk.
    let shift = data.first().map_or(0, |b| usize::from(*b) % batch.len());
    batch.rotate_left(shift);

    let mut one_by_one = fixture.inbound.clone();
    let expected: Vec<_> = batch.iter().map(|m| one_by_one.decrypt(m)).collect();
    let mut batched = fixture.inbound.clone();
    assert_eq!(batched.decrypt_batch(&batch), expected);
    assert_eq!(fixture.inbound.decrypt_batch_readonly(&batch), expected);
    assert_eq!(
        batched.to_libolm_pickle(b"fuzz").expect("version 1"),
        one_by_one.to_libolm_pickle(b"fuzz").expect("version 1"),
        "the batch leaves the session as one by one does"
    );
    for genuine in &fixture.messages {
        let position = batch.iter().position(|m| m == genuine).expect("in the batch");
        assert!(expected[position].is_ok(), "a genuine message decrypts");
    }
});
