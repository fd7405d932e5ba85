#![no_main]
use ferrolm::secret_storage::{EncryptedSecret, KeyCheck, SecretStorageKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SecretStorageKey::from_bytes([9; 32]);
    let [iv, ciphertext, mac, name] = ferrolm_fuzz::split::<4>(data);
    let (iv, ciphertext, mac) = (ferrolm_fuzz::text(iv), ferrolm_fuzz::text(ciphertext), ferrolm_fuzz::text(mac));
    if let Ok(secret) = EncryptedSecret::from_base64(&iv, &ciphertext, &mac) {
        let _ = key.decrypt(&ferrolm_fuzz::text(name), &secret);
    }
    if let Ok(check) = KeyCheck::from_base64(&iv, &mac) {
        let _ = key.verify_key_check(&check);
    }
});
