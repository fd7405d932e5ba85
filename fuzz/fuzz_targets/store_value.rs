#![no_main]
//! ferrolm-store's record decoders behind a valid seal (the fuzzer's bytes are sealed for a
//! row of each table under a fixed key, then opened and decoded), and the value opener fed the
//! bytes as a sealed value. Whatever decodes must encode back to the same bytes; no input may
//! pass as a sealed value.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = ferrolm_store::fuzzing::decode_values(data);
    assert_eq!(report.round_trip_mismatches, 0, "a record did not encode back to its bytes");
    assert_eq!(report.forgeries, 0, "arbitrary bytes opened as a sealed value");
});
