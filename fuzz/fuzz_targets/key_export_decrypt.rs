#![no_main]
use ferrolm::key_export;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = ferrolm_fuzz::text(data);
    // Files are parsed whatever they ask for, but only decrypted when the round count is
    // small: PBKDF2's cost is by design, not a finding.
    if let Ok(rounds) = key_export::rounds(&file) {
        if rounds <= 64 {
            let _ = key_export::decrypt(&file, "fuzzing passphrase");
        }
    }
});
