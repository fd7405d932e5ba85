#![no_main]
use ferrolm::pickle::PickleKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The decoders behind the MAC, fed the input as decrypted contents…
    ferrolm::fuzzing::unpickle_ferrolm(data);
    // …and the envelope itself, fed the input as a pickle string.
    let text = ferrolm_fuzz::text(data);
    let key = PickleKey::from_bytes([0x5a; 32]);
    let _ = ferrolm::olm::Account::from_pickle(&text, &key);
    let _ = ferrolm::megolm::InboundGroupSession::from_pickle(&text, &key);
});
