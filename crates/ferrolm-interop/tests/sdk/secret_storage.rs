//! Secret storage (`m.secret_storage.v1.aes-hmac-sha2`) across ferrolm and matrix-sdk-crypto.
//!
//! The SDK never hands out its raw key bytes: its keys come out only as recovery keys
//! (`to_base58`) and key descriptions (`event_content`, the account data JSON), and go in
//! only through `from_account_data(recovery key or passphrase, description)`, which checks
//! the description's key check. So "the same key on both sides" is always established the
//! way a user would: by typing one side's recovery key or passphrase into the other, against
//! the description one side published.

use ferrolm::secret_storage::{EncryptedSecret, KeyCheck, RecoveryKeyError, SecretStorageError, SecretStorageKey};
use matrix_sdk_crypto::secret_storage::{AesHmacSha2EncryptedData, DecodeError, SecretStorageKey as SdkKey};
use serde_json::{Value, json};

use crate::common::timed;

const AES_HMAC_SHA2: &str = "m.secret_storage.v1.aes-hmac-sha2";

/// Secret names as clients use them, a custom one, a non-ASCII one, and the empty name (the
/// one key checks use).
const NAMES: [&str; 7] = [
    "m.cross_signing.master",
    "m.cross_signing.self_signing",
    "m.cross_signing.user_signing",
    "m.megolm_backup.v1",
    "org.example.custom_secret",
    "org.example.ünïcödé",
    "",
];

/// Secrets of the lengths that exercise AES-CTR's partial blocks, and one like those stored:
/// the unpadded base64 of a 32-byte key.
fn secrets() -> Vec<Vec<u8>> {
    let mut secrets: Vec<Vec<u8>> = [0usize, 1, 15, 16, 17, 31, 32, 33, 100]
        .iter()
        .map(|&n| (0..n).map(|i| (i * 37 + n) as u8).collect())
        .collect();
    secrets.push(b"9TqLXmaltOdSFbQ0wK8qaZlVFX8nYpS8OhCbJIJe7ZM".to_vec());
    secrets
}

/// A key description as account data JSON: the SDK's serialization of its own description.
fn description_json(key: &SdkKey) -> Value {
    serde_json::to_value(key.event_content()).unwrap()
}

/// The key check a description carries, read by ferrolm.
fn key_check_of(description: &Value) -> KeyCheck {
    assert_eq!(description["algorithm"], AES_HMAC_SHA2);
    KeyCheck::from_base64(description["iv"].as_str().unwrap(), description["mac"].as_str().unwrap()).unwrap()
}

/// What the SDK does when a user types `input` (a recovery key or a passphrase) to unlock a
/// key whose description carries ferrolm's key check `check` and, for a passphrase key, its
/// `m.pbkdf2` salt and iterations. The description goes in through its JSON form, as the SDK
/// would receive it from the server.
fn sdk_restore(input: &str, check: &KeyCheck, passphrase: Option<(&str, u32)>) -> Result<SdkKey, DecodeError> {
    let (iv, mac) = check.to_base64();
    let mut description = SdkKey::new().event_content().clone();
    description.key_id = "ferrolmkey".to_owned();
    description.algorithm =
        serde_json::from_value(json!({ "algorithm": AES_HMAC_SHA2, "iv": iv, "mac": mac })).unwrap();
    description.passphrase = passphrase.map(|(salt, iterations)| {
        serde_json::from_value(json!({ "algorithm": "m.pbkdf2", "salt": salt, "iterations": iterations })).unwrap()
    });
    SdkKey::from_account_data(input, description)
}

/// Encrypts with one side and decrypts with the other, both ways, every name and secret;
/// a wrong name (or key) fails the MAC on both sides.
fn check_secrets_cross(sdk: &SdkKey, ours: &SecretStorageKey) {
    for name in NAMES {
        for secret in secrets() {
            // SDK → ferrolm, through the account data JSON.
            let encrypted = sdk.encrypt(secret.clone(), &name.into());
            let json = serde_json::to_value(&encrypted).unwrap();
            assert_eq!(json.as_object().unwrap().len(), 3, "{json}");
            let parsed = EncryptedSecret::from_base64(
                json["iv"].as_str().unwrap(),
                json["ciphertext"].as_str().unwrap(),
                json["mac"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(parsed.iv[8] & 0x80, 0, "the SDK clears bit 63 of the IV too");
            assert_eq!(ours.decrypt(name, &parsed).unwrap().as_slice(), secret.as_slice(), "{name:?}");
            let other = if name == NAMES[0] { NAMES[1] } else { NAMES[0] };
            assert_eq!(ours.decrypt(other, &parsed), Err(SecretStorageError::Mac));

            // ferrolm → SDK, through the same JSON.
            let encrypted = ours.encrypt(name, &secret);
            let (iv, ciphertext, mac) = encrypted.to_base64();
            let data: AesHmacSha2EncryptedData =
                serde_json::from_value(json!({ "iv": iv, "ciphertext": ciphertext, "mac": mac })).unwrap();
            assert_eq!(sdk.decrypt(&data, &name.into()).unwrap(), secret, "{name:?}");
            assert!(sdk.decrypt(&data, &other.into()).is_err());
        }
    }
}

#[test]
fn sdk_keys_open_in_ferrolm_through_their_recovery_keys() {
    let elsewhere = SecretStorageKey::new();
    for _ in 0..25 {
        let sdk = SdkKey::new();
        let recovery_key = sdk.to_base58();
        let ours = SecretStorageKey::from_recovery_key(&recovery_key).unwrap();
        // The same key: the very same recovery key, grouping included.
        assert_eq!(ours.to_recovery_key().as_str(), recovery_key);
        let compact: String = recovery_key.split_whitespace().collect();
        assert_eq!(SecretStorageKey::from_recovery_key(&compact).unwrap().as_bytes(), ours.as_bytes());

        // The SDK's key check verifies in ferrolm, and only for this key.
        let check = key_check_of(&description_json(&sdk));
        ours.verify_key_check(&check).unwrap();
        assert_eq!(elsewhere.verify_key_check(&check), Err(SecretStorageError::Mac));
    }
}

#[test]
fn ferrolm_keys_restore_in_the_sdk() {
    let mut keys: Vec<[u8; 32]> = vec![[0; 32], [0xff; 32], [1; 32], core::array::from_fn(|i| i as u8)];
    keys.extend((0..25).map(|_| *SecretStorageKey::new().as_bytes()));
    for bytes in keys {
        let ours = SecretStorageKey::from_bytes(bytes);
        let recovery_key = ours.to_recovery_key();
        let check = ours.key_check();

        let sdk = sdk_restore(&recovery_key, &check, None).unwrap();
        assert_eq!(sdk.to_base58(), recovery_key.as_str());
        // The description the SDK now holds carries ferrolm's check unchanged.
        assert_eq!(key_check_of(&description_json(&sdk)), check);
        // Whitespace is insignificant to both.
        let spaced = recovery_key.replace(' ', "  \t").to_string() + "\n";
        assert_eq!(sdk_restore(&spaced, &check, None).unwrap().to_base58(), recovery_key.as_str());

        // Another key's recovery key fails the check.
        let other = SecretStorageKey::new().to_recovery_key();
        assert!(matches!(sdk_restore(&other, &check, None), Err(DecodeError::Mac(_))));

        // A typo in the last character: both report the parity.
        let mut typo: Vec<char> = recovery_key.chars().collect();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(SecretStorageKey::from_recovery_key(&typo).err(), Some(RecoveryKeyError::InvalidParity));
        assert!(matches!(sdk_restore(&typo, &check, None), Err(DecodeError::Parity(..))), "{typo}");
    }
}

#[test]
fn secrets_cross_both_ways_under_the_same_key() {
    // A key made by the SDK, opened in ferrolm...
    let sdk = SdkKey::new();
    let ours = SecretStorageKey::from_recovery_key(&sdk.to_base58()).unwrap();
    check_secrets_cross(&sdk, &ours);

    // ...and a key made by ferrolm, restored in the SDK.
    let ours = SecretStorageKey::new();
    let sdk = sdk_restore(&ours.to_recovery_key(), &ours.key_check(), None).unwrap();
    check_secrets_cross(&sdk, &ours);

    // Under different keys nothing decrypts, on either side.
    let stranger = SdkKey::new();
    let encrypted = stranger.encrypt(b"secret".to_vec(), &NAMES[0].into());
    let json = serde_json::to_value(&encrypted).unwrap();
    let parsed = EncryptedSecret::from_base64(
        json["iv"].as_str().unwrap(),
        json["ciphertext"].as_str().unwrap(),
        json["mac"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(ours.decrypt(NAMES[0], &parsed), Err(SecretStorageError::Mac));
    let (iv, ciphertext, mac) = ours.encrypt(NAMES[0], b"secret").to_base64();
    let data: AesHmacSha2EncryptedData =
        serde_json::from_value(json!({ "iv": iv, "ciphertext": ciphertext, "mac": mac })).unwrap();
    assert!(stranger.decrypt(&data, &NAMES[0].into()).is_err());
}

#[test]
fn passphrase_keys_are_the_same_key_on_both_sides() {
    // The SDK's passphrase key (its own salt, and its default of 500,000 iterations),
    // re-derived by ferrolm from the description's `m.pbkdf2` parameters.
    let passphrase = "correct horse battery staple";
    let sdk = timed("SDK derives a passphrase key (500,000 iterations)", || SdkKey::new_from_passphrase(passphrase));
    let description = description_json(&sdk);
    let kdf = &description["passphrase"];
    assert_eq!(kdf["algorithm"], "m.pbkdf2");
    let salt = kdf["salt"].as_str().unwrap();
    let iterations = u32::try_from(kdf["iterations"].as_u64().unwrap()).unwrap();
    assert_eq!(iterations, 500_000);
    let ours =
        timed("ferrolm derives it again", || SecretStorageKey::from_passphrase(passphrase, salt, iterations).unwrap());
    assert_eq!(ours.to_recovery_key().as_str(), sdk.to_base58());
    ours.verify_key_check(&key_check_of(&description)).unwrap();
    check_secrets_cross(&sdk, &ours);

    // ferrolm's passphrase keys (a small iteration count), unlocked in the SDK by the
    // passphrase against ferrolm's description, and by the recovery key too.
    for (passphrase, salt) in
        [("correct horse battery staple", "ferrolm salt"), ("pässwörd 🔑", "sälz"), ("", "empty passphrase")]
    {
        let ours = SecretStorageKey::from_passphrase(passphrase, salt, 1_000).unwrap();
        let check = ours.key_check();
        let sdk = sdk_restore(passphrase, &check, Some((salt, 1_000))).unwrap();
        assert_eq!(sdk.to_base58(), ours.to_recovery_key().as_str());
        let by_recovery_key = sdk_restore(&ours.to_recovery_key(), &check, Some((salt, 1_000))).unwrap();
        assert_eq!(by_recovery_key.to_base58(), sdk.to_base58());
        check_secrets_cross(&sdk, &ours);

        // Another passphrase, salt or iteration count is another key.
        assert!(sdk_restore("wrong passphrase", &check, Some((salt, 1_000))).is_err());
        assert!(sdk_restore(passphrase, &check, Some(("other salt", 1_000))).is_err());
        assert!(sdk_restore(passphrase, &check, Some((salt, 1_001))).is_err());
    }
}
