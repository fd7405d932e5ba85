#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrolm::fuzzing::unpickle_libolm(data);
    let text = ferrolm_fuzz::text(data);
    let _ = ferrolm::olm::Session::from_libolm_pickle(&text, b"fuzz");
    let _ = ferrolm::pk::PkDecryption::from_libolm_pickle(&text, b"");
});
