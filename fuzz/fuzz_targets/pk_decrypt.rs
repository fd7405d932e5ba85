#![no_main]
use ferrolm::pk::{PkDecryption, PkMessage};
use ferrolm::types::Curve25519PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = PkDecryption::from_bytes(&[7; 32]);
    let [ciphertext, mac, ephemeral] = ferrolm_fuzz::split::<3>(data);
    // As base64 fields…
    if let Ok(message) = PkMessage::from_base64(
        &ferrolm_fuzz::text(ciphertext),
        &ferrolm_fuzz::text(mac),
        &ferrolm_fuzz::text(ephemeral),
    ) {
        let _ = key.decrypt(&message);
    }
    // …and as raw fields, which reach the decryption more often.
    if let (Ok(mac), Ok(ephemeral)) = (<[u8; 8]>::try_from(mac), Curve25519PublicKey::from_slice(ephemeral)) {
        let message = PkMessage { ciphertext: ciphertext.to_vec(), mac, ephemeral_key: ephemeral };
        let single = key.decrypt(&message);
        assert_eq!(key.decrypt_many(std::slice::from_ref(&message)).pop(), Some(single));
    }
});
