//! Secret storage (`m.secret_storage.v1.aes-hmac-sha2`, "Secret storage"): the account data a
//! client writes to keep its secrets on the server, encrypted under a key the user holds (a
//! passphrase or a recovery key), and the checks made when reading it back.
//!
//! The cryptography is the core's ([`ferrolm::secret_storage`]); this module builds and reads
//! the account data:
//!
//! - `m.secret_storage.key.<key id>`: the key's description, `{algorithm, name?, passphrase?,
//!   iv, mac}`, where `iv` and `mac` are the *key check* (32 zero bytes encrypted under the
//!   name `""`), and `passphrase` is `{algorithm: "m.pbkdf2", salt, iterations, bits?}` for a
//!   key derived from a passphrase;
//! - `m.secret_storage.default_key`: `{key: <key id>}`;
//! - one event per secret, its type the secret's name, `{encrypted: {<key id>: {iv,
//!   ciphertext, mac}}}`, the plaintext being the secret as the spec encodes it (unpadded
//!   base64 of the key bytes for the cross-signing seeds and the backup key).
//!
//! The account data comes from the server: every field is checked, every failure is a typed
//! [`SecretStorageFailure`], never a panic. The machine returns the events to write as
//! [`AccountDataUpdate`]s: the client sends them (`PUT
//! /_matrix/client/v3/user/{userId}/account_data/{type}`, [`AccountDataUpdate::to_http_request`]);
//! they are not queued with the machine's other requests because nothing in the machine waits
//! for their answer, and a client usually has its own account-data writer.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ferrolm::CryptoRngCore;
use ferrolm::secret_storage::{EncryptedSecret, KeyCheck, RecoveryKeyError, SecretStorageError, SecretStorageKey};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::requests::RequestSerializationError;

/// The secret storage algorithm.
pub const SECRET_STORAGE_ALGORITHM: &str = "m.secret_storage.v1.aes-hmac-sha2";
/// The passphrase derivation of key descriptions.
pub const PBKDF2_ALGORITHM: &str = "m.pbkdf2";
/// The account data type naming the default key.
pub const DEFAULT_KEY_EVENT_TYPE: &str = "m.secret_storage.default_key";
/// The PBKDF2 iterations of a new passphrase key (what clients use today).
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 500_000;

/// The own master cross-signing key (its seed, unpadded base64).
pub const CROSS_SIGNING_MASTER: &str = "m.cross_signing.master";
/// The own self-signing key.
pub const CROSS_SIGNING_SELF_SIGNING: &str = "m.cross_signing.self_signing";
/// The own user-signing key.
pub const CROSS_SIGNING_USER_SIGNING: &str = "m.cross_signing.user_signing";
/// The backup's private key (`m.megolm_backup.v1.curve25519-aes-sha2`).
pub const MEGOLM_BACKUP_KEY: &str = "m.megolm_backup.v1";
/// The secrets the machine knows how to check and use.
pub const KNOWN_SECRETS: [&str; 4] =
    [CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY];

/// The account data type of a key description.
pub fn key_event_type(key_id: &str) -> String {
    format!("m.secret_storage.key.{key_id}")
}

/// The user's global account data as the client last synced it: event type → content.
pub type AccountData = BTreeMap<String, Value>;

/// One global account data event to write (`PUT /user/{userId}/account_data/{type}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDataUpdate {
    /// The event type.
    pub event_type: String,
    /// The content (no secret in the clear: secrets are encrypted).
    pub content: Value,
}

impl AccountDataUpdate {
    /// The request, with ruma's `set_global_account_data`, for `user_id` against `base_url`.
    pub fn to_http_request(
        &self,
        base_url: &str,
        access_token: &str,
        user_id: &ruma::UserId,
    ) -> Result<http::Request<Vec<u8>>, RequestSerializationError> {
        use ruma::api::OutgoingRequest as _;
        use ruma::api::auth_scheme::SendAccessToken;
        use ruma::api::client::config::set_global_account_data;
        let error = |e: &dyn std::fmt::Display| RequestSerializationError(e.to_string());
        let raw = serde_json::value::to_raw_value(&self.content).map_err(|e| error(&e))?;
        let request = set_global_account_data::v3::Request::new_raw(
            user_id.to_owned(),
            self.event_type.as_str().into(),
            ruma::serde::Raw::from_json(raw),
        );
        let versions = ruma::api::SupportedVersions::from_parts(&["v1.1".to_owned()], &BTreeMap::new());
        request
            .try_into_http_request(base_url, SendAccessToken::Always(access_token), Cow::Borrowed(&versions))
            .map_err(|e| error(&e))
    }
}

/// Why secret storage could not be read (or a key not opened). Nothing here carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretStorageFailure {
    /// No `m.secret_storage.default_key`, or one without a key id.
    #[error("no default secret storage key")]
    NoDefaultKey,
    /// No description of the key in account data.
    #[error("no description of the secret storage key {0}")]
    MissingKeyDescription(String),
    /// The key description names an algorithm this library does not implement.
    #[error("unknown secret storage algorithm {0}")]
    UnknownAlgorithm(String),
    /// The key description is not of the expected shape.
    #[error("malformed key description: {0}")]
    MalformedKeyDescription(String),
    /// A passphrase was given for a key that is not derived from one.
    #[error("the key is not derived from a passphrase")]
    NotAPassphraseKey,
    /// The passphrase parameters are refused (iterations, key length) or unknown.
    #[error("unusable passphrase parameters: {0}")]
    PassphraseParameters(String),
    /// The recovery key as typed is not a recovery key.
    #[error("invalid recovery key: {0}")]
    InvalidRecoveryKey(RecoveryKeyError),
    /// The key description has no key check: the key cannot be verified, so it is not used.
    #[error("the key description has no key check")]
    NoKeyCheck,
    /// The key check fails: a wrong passphrase or recovery key.
    #[error("wrong passphrase or recovery key (the key check fails)")]
    WrongKey,
    /// The secret is not in account data.
    #[error("the secret {0} is not stored")]
    MissingSecret(String),
    /// The secret is stored, but not encrypted under this key.
    #[error("the secret {name} is not encrypted under the key {key_id}")]
    NotEncryptedForKey {
        /// The secret's name.
        name: String,
        /// The key.
        key_id: String,
    },
    /// The encrypted secret is not of the expected shape.
    #[error("malformed encrypted secret {name}: {reason}")]
    MalformedSecret {
        /// The secret's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The secret's MAC does not match: altered, or encrypted under another key.
    #[error("the MAC of the secret {0} does not match")]
    MacMismatch(String),
}

/// A key description's passphrase parameters (`m.pbkdf2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassphraseInfo {
    /// The PBKDF2 salt.
    pub salt: String,
    /// The PBKDF2 iterations.
    pub iterations: u32,
    /// The key length in bits, when given (only 256 is usable).
    pub bits: Option<u32>,
}

/// A secret storage key's description (`m.secret_storage.key.<id>`), as read or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// The key id.
    pub key_id: String,
    /// The key's display name, if any.
    pub name: Option<String>,
    /// The passphrase parameters, for a key derived from a passphrase.
    pub passphrase: Option<PassphraseInfo>,
    /// The key check (`iv`, `mac`); `None` in old descriptions without one.
    pub check: Option<KeyCheck>,
}

impl KeyDescription {
    /// Reads the description of `key_id` from its account data content.
    pub fn from_json(key_id: &str, content: &Value) -> Result<Self, SecretStorageFailure> {
        let malformed = |what: &str| SecretStorageFailure::MalformedKeyDescription(what.to_owned());
        let object = content.as_object().ok_or_else(|| malformed("not an object"))?;
        let algorithm = object.get("algorithm").and_then(Value::as_str).ok_or_else(|| malformed("algorithm"))?;
        if algorithm != SECRET_STORAGE_ALGORITHM {
            return Err(SecretStorageFailure::UnknownAlgorithm(algorithm.to_owned()));
        }
        let name = object.get("name").and_then(Value::as_str).map(str::to_owned);
        let passphrase = match object.get("passphrase") {
            None | Some(Value::Null) => None,
            Some(p) => {
                let algorithm = p.get("algorithm").and_then(Value::as_str).ok_or_else(|| malformed("passphrase"))?;
                if algorithm != PBKDF2_ALGORITHM {
                    return Err(SecretStorageFailure::PassphraseParameters(format!("algorithm {algorithm}")));
                }
                let salt = p.get("salt").and_then(Value::as_str).ok_or_else(|| malformed("passphrase salt"))?;
                let iterations = p
                    .get("iterations")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| malformed("passphrase iterations"))?;
                let bits = match p.get("bits") {
                    None | Some(Value::Null) => None,
                    Some(b) => Some(
                        b.as_u64().and_then(|b| u32::try_from(b).ok()).ok_or_else(|| malformed("passphrase bits"))?,
                    ),
                };
                Some(PassphraseInfo { salt: salt.to_owned(), iterations, bits })
            }
        };
        let check = match (object.get("iv").and_then(Value::as_str), object.get("mac").and_then(Value::as_str)) {
            (Some(iv), Some(mac)) => Some(KeyCheck::from_base64(iv, mac).map_err(|e| malformed(&e.to_string()))?),
            _ => None,
        };
        Ok(Self { key_id: key_id.to_owned(), name, passphrase, check })
    }

    /// The account data content.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("algorithm".into(), json!(SECRET_STORAGE_ALGORITHM));
        if let Some(name) = &self.name {
            object.insert("name".into(), json!(name));
        }
        if let Some(p) = &self.passphrase {
            let mut passphrase = json!({"algorithm": PBKDF2_ALGORITHM, "salt": p.salt, "iterations": p.iterations});
            if let (Some(bits), Some(map)) = (p.bits, passphrase.as_object_mut()) {
                map.insert("bits".into(), json!(bits));
            }
            object.insert("passphrase".into(), passphrase);
        }
        if let Some(check) = &self.check {
            let (iv, mac) = check.to_base64();
            object.insert("iv".into(), json!(iv));
            object.insert("mac".into(), json!(mac));
        }
        Value::Object(object)
    }

    /// The account data event.
    pub fn to_update(&self) -> AccountDataUpdate {
        AccountDataUpdate { event_type: key_event_type(&self.key_id), content: self.to_json() }
    }
}

/// What the user gives to open secret storage.
#[derive(Clone, Copy)]
pub enum KeyInput<'a> {
    /// The passphrase (for a key whose description has passphrase parameters).
    Passphrase(&'a str),
    /// The recovery key as typed (spaces ignored). Works for passphrase keys too.
    RecoveryKey(&'a str),
}

impl core::fmt::Debug for KeyInput<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            Self::RecoveryKey(_) => f.write_str("RecoveryKey(<redacted>)"),
        }
    }
}

/// A new key description with a key check made with `rng`.
pub fn new_key_description(
    key_id: &str,
    key: &SecretStorageKey,
    name: Option<String>,
    passphrase: Option<PassphraseInfo>,
    rng: &mut impl CryptoRngCore,
) -> KeyDescription {
    // The key check is 32 zero bytes encrypted under the name "" (random IV, bit 63 cleared).
    let encrypted = key.encrypt_with_rng("", &[0; 32], rng);
    let check = KeyCheck { iv: encrypted.iv, mac: encrypted.mac };
    KeyDescription { key_id: key_id.to_owned(), name, passphrase, check: Some(check) }
}

/// Rule: a key is used only if the key check of its description verifies.
pub fn open_key(description: &KeyDescription, input: KeyInput<'_>) -> Result<SecretStorageKey, SecretStorageFailure> {
    let check = description.check.as_ref().ok_or(SecretStorageFailure::NoKeyCheck)?;
    let key = match input {
        KeyInput::Passphrase(passphrase) => {
            let p = description.passphrase.as_ref().ok_or(SecretStorageFailure::NotAPassphraseKey)?;
            SecretStorageKey::from_passphrase_description(passphrase, &p.salt, p.iterations, p.bits).map_err(|e| {
                match e {
                    SecretStorageError::InvalidIterations(_) | SecretStorageError::UnsupportedKeyBits(_) => {
                        SecretStorageFailure::PassphraseParameters(e.to_string())
                    }
                    other => SecretStorageFailure::MalformedKeyDescription(other.to_string()),
                }
            })?
        }
        KeyInput::RecoveryKey(recovery_key) => {
            SecretStorageKey::from_recovery_key(recovery_key).map_err(SecretStorageFailure::InvalidRecoveryKey)?
        }
    };
    key.verify_key_check(check).map_err(|_| SecretStorageFailure::WrongKey)?;
    Ok(key)
}

/// The default key's id.
pub fn default_key_id(account_data: &AccountData) -> Result<String, SecretStorageFailure> {
    account_data
        .get(DEFAULT_KEY_EVENT_TYPE)
        .and_then(|c| c.get("key"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .ok_or(SecretStorageFailure::NoDefaultKey)
}

/// The description of `key_id` in account data.
pub fn key_description(account_data: &AccountData, key_id: &str) -> Result<KeyDescription, SecretStorageFailure> {
    let content = account_data
        .get(&key_event_type(key_id))
        .ok_or_else(|| SecretStorageFailure::MissingKeyDescription(key_id.to_owned()))?;
    KeyDescription::from_json(key_id, content)
}

/// The `m.secret_storage.default_key` event naming `key_id`.
pub fn default_key_update(key_id: &str) -> AccountDataUpdate {
    AccountDataUpdate { event_type: DEFAULT_KEY_EVENT_TYPE.to_owned(), content: json!({"key": key_id}) }
}

/// The account data event of secret `name`, encrypted under `key_id`'s key only.
pub fn encrypt_secret(
    key_id: &str,
    key: &SecretStorageKey,
    name: &str,
    secret: &str,
    rng: &mut impl CryptoRngCore,
) -> AccountDataUpdate {
    let (iv, ciphertext, mac) = key.encrypt_with_rng(name, secret.as_bytes(), rng).to_base64();
    AccountDataUpdate {
        event_type: name.to_owned(),
        content: json!({"encrypted": {key_id: {"iv": iv, "ciphertext": ciphertext, "mac": mac}}}),
    }
}

/// Reads the secret `name` from account data, encrypted under `key_id`'s `key`; the MAC is
/// checked before anything is decrypted.
pub fn decrypt_secret(
    account_data: &AccountData,
    key_id: &str,
    key: &SecretStorageKey,
    name: &str,
) -> Result<Zeroizing<String>, SecretStorageFailure> {
    let malformed =
        |reason: &str| SecretStorageFailure::MalformedSecret { name: name.to_owned(), reason: reason.into() };
    let content = account_data.get(name).ok_or_else(|| SecretStorageFailure::MissingSecret(name.to_owned()))?;
    let encrypted = content.get("encrypted").and_then(Value::as_object).ok_or_else(|| malformed("no encrypted map"))?;
    let entry = encrypted
        .get(key_id)
        .ok_or_else(|| SecretStorageFailure::NotEncryptedForKey { name: name.to_owned(), key_id: key_id.to_owned() })?;
    let field = |f: &str| entry.get(f).and_then(Value::as_str).ok_or_else(|| malformed(f));
    let encrypted =
        EncryptedSecret::from_base64(field("iv")?, field("ciphertext")?, field("mac")?).map_err(|e| match e {
            SecretStorageError::Mac => SecretStorageFailure::MacMismatch(name.to_owned()),
            other => malformed(&other.to_string()),
        })?;
    let plaintext = key.decrypt(name, &encrypted).map_err(|e| match e {
        SecretStorageError::Mac => SecretStorageFailure::MacMismatch(name.to_owned()),
        other => malformed(&other.to_string()),
    })?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| malformed("not UTF-8"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The names of the secrets in account data that are encrypted under `key_id`.
pub fn secrets_encrypted_for(account_data: &AccountData, key_id: &str) -> Vec<String> {
    account_data
        .iter()
        .filter(|(_, content)| content.get("encrypted").and_then(|e| e.get(key_id)).is_some())
        .map(|(name, _)| name.clone())
        .collect()
}

/// Secret storage opened with the user's key: its key id and key. `Debug` is redacted.
#[derive(Debug, Clone)]
pub struct OpenedSecretStorage {
    /// The key id.
    pub key_id: String,
    /// The key (zeroized on drop).
    pub key: SecretStorageKey,
}

impl OpenedSecretStorage {
    /// Opens the default key of `account_data` with `input` (key check verified).
    pub fn open(account_data: &AccountData, input: KeyInput<'_>) -> Result<Self, SecretStorageFailure> {
        let key_id = default_key_id(account_data)?;
        Self::open_key(account_data, &key_id, input)
    }

    /// Opens the key `key_id` of `account_data` with `input` (key check verified).
    pub fn open_key(
        account_data: &AccountData,
        key_id: &str,
        input: KeyInput<'_>,
    ) -> Result<Self, SecretStorageFailure> {
        let description = key_description(account_data, key_id)?;
        Ok(Self { key_id: key_id.to_owned(), key: open_key(&description, input)? })
    }

    /// The secret `name`, decrypted and MAC-checked.
    pub fn read_secret(
        &self,
        account_data: &AccountData,
        name: &str,
    ) -> Result<Zeroizing<String>, SecretStorageFailure> {
        decrypt_secret(account_data, &self.key_id, &self.key, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{CryptoRng, RngCore};

    /// A deterministic generator for the tests (not for keys).
    struct Counter(u8);
    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            u64::from_le_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for Counter {}

    fn storage(passphrase: Option<&str>) -> (AccountData, SecretStorageKey) {
        let mut rng = Counter(0);
        let (key, info) = match passphrase {
            Some(p) => {
                let info = PassphraseInfo { salt: "salty".into(), iterations: 10, bits: None };
                (SecretStorageKey::from_passphrase(p, &info.salt, info.iterations).unwrap(), Some(info))
            }
            None => (SecretStorageKey::from_bytes([9; 32]), None),
        };
        let description = new_key_description("KEY1", &key, None, info, &mut rng);
        let mut data = AccountData::new();
        for update in [
            description.to_update(),
            default_key_update("KEY1"),
            encrypt_secret("KEY1", &key, MEGOLM_BACKUP_KEY, "c2VjcmV0", &mut rng),
        ] {
            data.insert(update.event_type, update.content);
        }
        (data, key)
    }

    #[test]
    fn a_passphrase_key_is_read_back_and_a_wrong_one_fails_the_key_check() {
        let (data, _) = storage(Some("correct horse"));
        let opened = OpenedSecretStorage::open(&data, KeyInput::Passphrase("correct horse")).unwrap();
        assert_eq!(opened.read_secret(&data, MEGOLM_BACKUP_KEY).unwrap().as_str(), "c2VjcmV0");
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::Passphrase("wrong horse")).unwrap_err(),
            SecretStorageFailure::WrongKey
        );
        // The recovery key of a passphrase key opens it too.
        let recovery = opened.key.to_recovery_key();
        OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap();
    }

    #[test]
    fn a_recovery_key_is_checked_and_a_passphrase_is_refused_for_it() {
        let (data, key) = storage(None);
        let recovery = key.to_recovery_key();
        OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap();
        let other = SecretStorageKey::from_bytes([8; 32]).to_recovery_key();
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&other)).unwrap_err(),
            SecretStorageFailure::WrongKey
        );
        assert!(matches!(
            OpenedSecretStorage::open(&data, KeyInput::RecoveryKey("EsT0 not a key")).unwrap_err(),
            SecretStorageFailure::InvalidRecoveryKey(_)
        ));
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::Passphrase("x")).unwrap_err(),
            SecretStorageFailure::NotAPassphraseKey
        );
    }

    #[test]
    fn bad_account_data_gives_typed_failures() {
        let (mut data, key) = storage(None);
        let recovery = key.to_recovery_key();
        let opened = OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap();
        // An altered ciphertext: MAC mismatch.
        let mut altered = data.clone();
        altered.get_mut(MEGOLM_BACKUP_KEY).unwrap()["encrypted"]["KEY1"]["ciphertext"] = json!("AAAAAAAA");
        assert_eq!(
            opened.read_secret(&altered, MEGOLM_BACKUP_KEY).unwrap_err(),
            SecretStorageFailure::MacMismatch(MEGOLM_BACKUP_KEY.into())
        );
        assert_eq!(
            opened.read_secret(&data, CROSS_SIGNING_MASTER).unwrap_err(),
            SecretStorageFailure::MissingSecret(CROSS_SIGNING_MASTER.into())
        );
        let mut other_key = data.clone();
        other_key.insert(CROSS_SIGNING_MASTER.into(), json!({"encrypted": {"KEY2": {}}}));
        assert!(matches!(
            opened.read_secret(&other_key, CROSS_SIGNING_MASTER).unwrap_err(),
            SecretStorageFailure::NotEncryptedForKey { .. }
        ));
        other_key.insert(CROSS_SIGNING_MASTER.into(), json!({"encrypted": {"KEY1": {"iv": 5}}}));
        assert!(matches!(
            opened.read_secret(&other_key, CROSS_SIGNING_MASTER).unwrap_err(),
            SecretStorageFailure::MalformedSecret { .. }
        ));
        // Unknown algorithm, missing check, missing description, no default key.
        let description = data.get_mut(&key_event_type("KEY1")).unwrap();
        description["algorithm"] = json!("m.secret_storage.v2.fancy");
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap_err(),
            SecretStorageFailure::UnknownAlgorithm("m.secret_storage.v2.fancy".into())
        );
        let description = data.get_mut(&key_event_type("KEY1")).unwrap();
        description["algorithm"] = json!(SECRET_STORAGE_ALGORITHM);
        description.as_object_mut().unwrap().remove("mac");
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap_err(),
            SecretStorageFailure::NoKeyCheck
        );
        data.remove(&key_event_type("KEY1"));
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap_err(),
            SecretStorageFailure::MissingKeyDescription("KEY1".into())
        );
        data.remove(DEFAULT_KEY_EVENT_TYPE);
        assert_eq!(
            OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery)).unwrap_err(),
            SecretStorageFailure::NoDefaultKey
        );
    }

    #[test]
    fn passphrase_parameters_from_the_server_are_bounded() {
        let (mut data, _) = storage(Some("p"));
        data.get_mut(&key_event_type("KEY1")).unwrap()["passphrase"]["iterations"] = json!(0);
        assert!(matches!(
            OpenedSecretStorage::open(&data, KeyInput::Passphrase("p")).unwrap_err(),
            SecretStorageFailure::PassphraseParameters(_)
        ));
        data.get_mut(&key_event_type("KEY1")).unwrap()["passphrase"]["iterations"] = json!(u64::MAX);
        assert!(matches!(
            OpenedSecretStorage::open(&data, KeyInput::Passphrase("p")).unwrap_err(),
            SecretStorageFailure::MalformedKeyDescription(_)
        ));
    }

    #[test]
    fn descriptions_round_trip_and_the_request_is_a_global_account_data_put() {
        let (data, _) = storage(Some("p"));
        let description = key_description(&data, "KEY1").unwrap();
        assert_eq!(KeyDescription::from_json("KEY1", &description.to_json()).unwrap(), description);
        assert_eq!(description.passphrase.as_ref().unwrap().iterations, 10);
        let user = ruma::user_id!("@a:x");
        let http = description.to_update().to_http_request("https://hs", "t", user).unwrap();
        assert_eq!(http.method(), "PUT");
        assert_eq!(http.uri().path(), "/_matrix/client/v3/user/@a:x/account_data/m.secret_storage.key.KEY1");
        let body: Value = serde_json::from_slice(http.body()).unwrap();
        assert_eq!(body, description.to_json());
    }
}
