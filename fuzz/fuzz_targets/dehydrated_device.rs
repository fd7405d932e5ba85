#![no_main]
//! A dehydrated device as the server returns it (`GET …/dehydrated_device`). Mode byte even:
//! the rest is a plaintext account pickle, encrypted under the key first so that the decoder
//! behind chacha20poly1305 sees it (random ciphertexts would never authenticate); whatever
//! decodes dehydrates again to the same account. Odd: the rest is the HTTP body, read by the
//! machine (JSON, algorithm, base64, nonce, authentication, then the same decoder).
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ferrolm::olm::Account;
use ferrolm::types::base64_encode;
use ferrolm_fuzz::FixedRng;
// The pickle key and nonce of the seeds (`ferrolm_fuzz::machine::seeds`).
use ferrolm_fuzz::machine::{DEHYDRATION_KEY, DEHYDRATION_NONCE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let cipher = ChaCha20Poly1305::new((&DEHYDRATION_KEY).into());
        let Ok(ciphertext) = cipher.encrypt(Nonce::from_slice(&DEHYDRATION_NONCE), rest) else { return };
        let nonce = base64_encode(DEHYDRATION_NONCE);
        if let Ok(account) = Account::from_dehydrated_device(&base64_encode(ciphertext), &nonce, &DEHYDRATION_KEY) {
            let pickle = account
                .to_dehydrated_device_with_rng(&DEHYDRATION_KEY, &mut FixedRng::new(1))
                .expect("an account read from a dehydrated device dehydrates again");
            let again = Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &DEHYDRATION_KEY)
                .expect("and reads back");
            assert_eq!(again.identity_keys(), account.identity_keys());
            assert_eq!(again.stored_one_time_key_count(), account.stored_one_time_key_count());
        }
    } else {
        let bob = ferrolm_fuzz::machine::machine_fixture().bob.open();
        let _ = bob.rehydrate_device(rest, &DEHYDRATION_KEY);
    }
});
