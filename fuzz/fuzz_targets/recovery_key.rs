#![no_main]
use ferrolm::secret_storage::SecretStorageKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = SecretStorageKey::from_recovery_key(&ferrolm_fuzz::text(data)) {
        // Whatever is accepted round-trips.
        let again = SecretStorageKey::from_recovery_key(&key.to_recovery_key()).expect("round trip");
        assert_eq!(again.as_bytes(), key.as_bytes());
    }
});
