//! Cross-signing keys ("Cross-signing", "Key and signature security"): the three Ed25519 keys
//! of a user, their validation when a homeserver serves them, and the own private keys.
//!
//! A user's **master key** signs their **self-signing key** (which signs their devices) and
//! their **user-signing key** (which signs other users' master keys). Each served key is a
//! `CrossSigningKey` JSON object `{user_id, usage, keys: {"ed25519:<key>": "<key>"},
//! signatures}`. Rules, each a named function with a test that breaks it:
//!
//! - [`check_user_id`]: the `user_id` inside is the user the server listed the key under;
//! - [`check_usage`]: `usage` is exactly the role the key is served for;
//! - [`single_ed25519_key`]: exactly one Ed25519 key, whose id is `ed25519:` + the key itself;
//! - [`check_signed_by_master`]: a self-signing or user-signing key carries a valid signature
//!   by the user's master key over canonical JSON.
//!
//! The own private keys ([`PrivateCrossSigningKeys`]) are 32-byte Ed25519 seeds drawn from
//! the machine's generator, kept in the store, zeroized on drop and never printed;
//! [`CrossSigningKeyExport`] carries them as unpadded base64 for secret storage or another
//! device, and an import is checked against the published public keys.

use ferrolm::types::{Ed25519Keypair, Ed25519PublicKey, base64_decode, base64_encode};
use ferrolm_store::SecretBytes;
use ruma::UserId;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::env::MachineRng;
use crate::signing::{SignatureError, sign_json_with, verify_json};

/// The role of a cross-signing key (its `usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyUsage {
    /// `master`: the user's identity; signs the two others.
    Master,
    /// `self_signing`: signs the user's own devices.
    SelfSigning,
    /// `user_signing`: signs other users' master keys.
    UserSigning,
}

impl KeyUsage {
    /// The spec's name of the usage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::SelfSigning => "self_signing",
            Self::UserSigning => "user_signing",
        }
    }
}

/// Why a served cross-signing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossSigningKeyRejection {
    /// Not a JSON object of the expected shape.
    #[error("malformed cross-signing key: {0}")]
    Malformed(String),
    /// The `user_id` inside is not the user the key was listed under.
    #[error("listed under {listed}, but the key says user {inside}")]
    UserIdMismatch {
        /// The user the server listed it under.
        listed: String,
        /// The user id inside.
        inside: String,
    },
    /// The `usage` is not exactly the role the key was served for.
    #[error("served as a {expected} key, but its usage is {found:?}")]
    WrongUsage {
        /// The role it was served for.
        expected: &'static str,
        /// The usage it carries.
        found: Vec<String>,
    },
    /// Not exactly one valid Ed25519 key named after itself.
    #[error("the key must hold exactly one valid Ed25519 key named ed25519:<key>")]
    InvalidKey,
    /// A self-signing or user-signing key without a valid signature by the master key.
    #[error("not signed by the master key: {0}")]
    NotSignedByMaster(SignatureError),
    /// A self-signing or user-signing key served without a (valid) master key.
    #[error("served without a valid master key")]
    NoMasterKey,
    /// A user-signing key served for another user than the own one.
    #[error("a user-signing key for another user")]
    ForeignUserSigningKey,
}

/// A validated cross-signing public key, with the JSON it was served as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSigningPublicKey {
    /// Its role.
    pub usage: KeyUsage,
    /// The key.
    pub key: Ed25519PublicKey,
    /// The served object (with its signatures).
    pub object: Map<String, Value>,
}

impl CrossSigningPublicKey {
    /// The key id, `ed25519:<unpadded base64 key>`.
    pub fn key_id(&self) -> String {
        key_id(&self.key)
    }
}

/// The key id of a cross-signing key: `ed25519:` + its unpadded base64.
pub fn key_id(key: &Ed25519PublicKey) -> String {
    format!("ed25519:{}", key.to_base64())
}

/// Rule: the `user_id` inside is the user the key was listed under.
pub fn check_user_id(listed: &UserId, object: &Map<String, Value>) -> Result<(), CrossSigningKeyRejection> {
    let inside = object
        .get("user_id")
        .and_then(Value::as_str)
        .ok_or_else(|| CrossSigningKeyRejection::Malformed("user_id".into()))?;
    if inside != listed.as_str() {
        return Err(CrossSigningKeyRejection::UserIdMismatch { listed: listed.to_string(), inside: inside.to_owned() });
    }
    Ok(())
}

/// Rule: the key's `usage` is exactly `[expected]`. A key with two roles is refused: a
/// master key that is also a self-signing key would sign devices without the chain.
pub fn check_usage(object: &Map<String, Value>, expected: KeyUsage) -> Result<(), CrossSigningKeyRejection> {
    let usage = object
        .get("usage")
        .and_then(Value::as_array)
        .ok_or_else(|| CrossSigningKeyRejection::Malformed("usage".into()))?;
    let found: Vec<String> = usage.iter().map(|u| u.as_str().unwrap_or("<not a string>").to_owned()).collect();
    if found.len() == 1 && found.first().map(String::as_str) == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(CrossSigningKeyRejection::WrongUsage { expected: expected.as_str(), found })
    }
}

/// Rule: the key holds exactly one Ed25519 key, named `ed25519:<the key>`.
pub fn single_ed25519_key(object: &Map<String, Value>) -> Result<Ed25519PublicKey, CrossSigningKeyRejection> {
    let keys = object
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| CrossSigningKeyRejection::Malformed("keys".into()))?;
    let mut entries = keys.iter();
    let (Some((id, value)), None) = (entries.next(), entries.next()) else {
        return Err(CrossSigningKeyRejection::InvalidKey);
    };
    let value = value.as_str().ok_or(CrossSigningKeyRejection::InvalidKey)?;
    if id.strip_prefix("ed25519:") != Some(value) {
        return Err(CrossSigningKeyRejection::InvalidKey);
    }
    Ed25519PublicKey::from_base64(value).map_err(|_| CrossSigningKeyRejection::InvalidKey)
}

/// Rule: `object` carries `user_id`'s valid signature by the master key `master`.
pub fn check_signed_by_master(
    object: &Map<String, Value>,
    user_id: &UserId,
    master: &Ed25519PublicKey,
) -> Result<(), CrossSigningKeyRejection> {
    verify_json(object, user_id.as_str(), &key_id(master), master).map_err(CrossSigningKeyRejection::NotSignedByMaster)
}

fn parse(json: &str) -> Result<Map<String, Value>, CrossSigningKeyRejection> {
    serde_json::from_str(json).map_err(|e| CrossSigningKeyRejection::Malformed(e.to_string()))
}

/// Every rule for a master key served for `user_id`.
pub fn validate_master_key(user_id: &UserId, json: &str) -> Result<CrossSigningPublicKey, CrossSigningKeyRejection> {
    let object = parse(json)?;
    check_user_id(user_id, &object)?;
    check_usage(&object, KeyUsage::Master)?;
    let key = single_ed25519_key(&object)?;
    Ok(CrossSigningPublicKey { usage: KeyUsage::Master, key, object })
}

/// Every rule for a self-signing or user-signing key served for `user_id`, whose master key
/// is `master`.
pub fn validate_subkey(
    user_id: &UserId,
    usage: KeyUsage,
    json: &str,
    master: &Ed25519PublicKey,
) -> Result<CrossSigningPublicKey, CrossSigningKeyRejection> {
    let object = parse(json)?;
    check_user_id(user_id, &object)?;
    check_usage(&object, usage)?;
    let key = single_ed25519_key(&object)?;
    check_signed_by_master(&object, user_id, master)?;
    Ok(CrossSigningPublicKey { usage, key, object })
}

/// The public object of a cross-signing key (unsigned).
pub(crate) fn public_key_object(user_id: &UserId, usage: KeyUsage, key: &Ed25519PublicKey) -> Map<String, Value> {
    match json!({
        "user_id": user_id,
        "usage": [usage.as_str()],
        "keys": { key_id(key): key.to_base64() },
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Signs `object` with a cross-signing key pair, as `user_id`'s `ed25519:<key>`.
pub(crate) fn sign_with(
    pair: &Ed25519Keypair,
    user_id: &UserId,
    object: &mut Map<String, Value>,
) -> Result<(), SignatureError> {
    sign_json_with(pair, user_id.as_str(), &key_id(&pair.public_key()), object)
}

/// The own private cross-signing keys. Zeroized on drop (the core's key pairs are);
/// `Debug` shows the public keys only.
#[derive(Clone, Default)]
pub struct PrivateCrossSigningKeys {
    /// The master key.
    pub(crate) master: Option<Ed25519Keypair>,
    /// The self-signing key.
    pub(crate) self_signing: Option<Ed25519Keypair>,
    /// The user-signing key.
    pub(crate) user_signing: Option<Ed25519Keypair>,
}

impl core::fmt::Debug for PrivateCrossSigningKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let public = |k: &Option<Ed25519Keypair>| k.as_ref().map(Ed25519Keypair::public_key);
        f.debug_struct("PrivateCrossSigningKeys")
            .field("master", &public(&self.master))
            .field("self_signing", &public(&self.self_signing))
            .field("user_signing", &public(&self.user_signing))
            .finish_non_exhaustive()
    }
}

fn seed_pair(rng: &mut dyn MachineRng) -> Ed25519Keypair {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    Ed25519Keypair::from_seed(&seed)
}

fn pair_from_store(bytes: Option<&SecretBytes>) -> Option<Ed25519Keypair> {
    bytes.map(|b| Ed25519Keypair::from_seed(b.as_bytes()))
}

fn pair_to_store(pair: Option<&Ed25519Keypair>) -> Option<SecretBytes> {
    pair.and_then(|p| p.secret_key().seed()).map(|seed| SecretBytes::new(*seed))
}

impl PrivateCrossSigningKeys {
    /// Three new keys from `rng`.
    pub(crate) fn generate(rng: &mut dyn MachineRng) -> Self {
        Self { master: Some(seed_pair(rng)), self_signing: Some(seed_pair(rng)), user_signing: Some(seed_pair(rng)) }
    }

    /// The keys as the store keeps them.
    pub(crate) fn from_record(record: &ferrolm_store::PrivateCrossSigningKeys) -> Self {
        Self {
            master: pair_from_store(record.master.as_ref()),
            self_signing: pair_from_store(record.self_signing.as_ref()),
            user_signing: pair_from_store(record.user_signing.as_ref()),
        }
    }

    /// The record for the store.
    pub(crate) fn to_record(&self) -> ferrolm_store::PrivateCrossSigningKeys {
        ferrolm_store::PrivateCrossSigningKeys {
            master: pair_to_store(self.master.as_ref()),
            self_signing: pair_to_store(self.self_signing.as_ref()),
            user_signing: pair_to_store(self.user_signing.as_ref()),
        }
    }

    /// The key pair of a role.
    pub(crate) fn get(&self, usage: KeyUsage) -> Option<&Ed25519Keypair> {
        match usage {
            KeyUsage::Master => self.master.as_ref(),
            KeyUsage::SelfSigning => self.self_signing.as_ref(),
            KeyUsage::UserSigning => self.user_signing.as_ref(),
        }
    }

    /// The public key of a role, if its private key is held.
    pub fn public_key(&self, usage: KeyUsage) -> Option<Ed25519PublicKey> {
        self.get(usage).map(Ed25519Keypair::public_key)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.master.is_none() && self.self_signing.is_none() && self.user_signing.is_none()
    }

    /// The signed public objects to upload (`/keys/device_signing/upload`): the master key
    /// (signed by itself and, by the caller, the device), the self-signing and user-signing
    /// keys signed by the master key.
    pub(crate) fn public_objects(&self, user_id: &UserId) -> Result<[Option<Map<String, Value>>; 3], SignatureError> {
        let master = self.master.as_ref().ok_or(SignatureError::NotAnObject)?;
        let mut out = [None, None, None];
        for (slot, usage) in out.iter_mut().zip([KeyUsage::Master, KeyUsage::SelfSigning, KeyUsage::UserSigning]) {
            if let Some(pair) = self.get(usage) {
                let mut object = public_key_object(user_id, usage, &pair.public_key());
                sign_with(master, user_id, &mut object)?;
                *slot = Some(object);
            }
        }
        Ok(out)
    }

    /// The keys as unpadded base64 seeds.
    pub fn export(&self) -> CrossSigningKeyExport {
        let b64 = |pair: Option<&Ed25519Keypair>| {
            pair.and_then(|p| p.secret_key().seed()).map(|seed| Zeroizing::new(base64_encode(seed.as_ref())))
        };
        CrossSigningKeyExport {
            master_key: b64(self.master.as_ref()),
            self_signing_key: b64(self.self_signing.as_ref()),
            user_signing_key: b64(self.user_signing.as_ref()),
        }
    }
}

/// The private cross-signing keys as unpadded base64 32-byte seeds (the form secret storage
/// keeps under `m.cross_signing.master`, `…self_signing`, `…user_signing`). Zeroized on drop;
/// `Debug` is redacted; no `PartialEq` (secrets are not compared in variable time).
#[derive(Clone, Default)]
pub struct CrossSigningKeyExport {
    /// The master key's seed.
    pub master_key: Option<Zeroizing<String>>,
    /// The self-signing key's seed.
    pub self_signing_key: Option<Zeroizing<String>>,
    /// The user-signing key's seed.
    pub user_signing_key: Option<Zeroizing<String>>,
}

impl core::fmt::Debug for CrossSigningKeyExport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let held = |k: &Option<Zeroizing<String>>| if k.is_some() { "<redacted>" } else { "none" };
        f.debug_struct("CrossSigningKeyExport")
            .field("master_key", &held(&self.master_key))
            .field("self_signing_key", &held(&self.self_signing_key))
            .field("user_signing_key", &held(&self.user_signing_key))
            .finish()
    }
}

/// Why an import of private cross-signing keys was refused. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossSigningImportError {
    /// A key is not 32 bytes of base64.
    #[error("the {} key is not 32 bytes of base64", .0.as_str())]
    Malformed(KeyUsage),
    /// No published identity is known to check the keys against (query the own user first).
    #[error("no published cross-signing identity to check the keys against")]
    NoPublishedIdentity,
    /// A key is not the published key of its role.
    #[error("the {} key does not match the published one", .0.as_str())]
    MismatchedPublicKey(KeyUsage),
    /// Nothing to import.
    #[error("no key to import")]
    Empty,
}

/// Decodes one exported seed.
pub(crate) fn decode_seed(usage: KeyUsage, b64: &str) -> Result<Ed25519Keypair, CrossSigningImportError> {
    let bytes = Zeroizing::new(base64_decode(b64.trim()).map_err(|_| CrossSigningImportError::Malformed(usage))?);
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(bytes.as_slice().try_into().map_err(|_| CrossSigningImportError::Malformed(usage))?);
    Ok(Ed25519Keypair::from_seed(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::user_id;

    fn pair(n: u8) -> Ed25519Keypair {
        Ed25519Keypair::from_seed(&[n; 32])
    }

    fn served(user: &str, usage: &[&str], key: &Ed25519PublicKey) -> Map<String, Value> {
        let Value::Object(map) = json!({"user_id": user, "usage": usage, "keys": {key_id(key): key.to_base64()}})
        else {
            unreachable!()
        };
        map
    }

    fn json_of(object: &Map<String, Value>) -> String {
        serde_json::to_string(object).unwrap()
    }

    #[test]
    fn a_valid_chain_passes() {
        let (master, ssk) = (pair(1), pair(2));
        let bob = user_id!("@bob:x");
        let m = validate_master_key(bob, &json_of(&served("@bob:x", &["master"], &master.public_key()))).unwrap();
        assert_eq!(m.key, master.public_key());
        let mut object = served("@bob:x", &["self_signing"], &ssk.public_key());
        sign_with(&master, bob, &mut object).unwrap();
        let s = validate_subkey(bob, KeyUsage::SelfSigning, &json_of(&object), &master.public_key()).unwrap();
        assert_eq!(s.key, ssk.public_key());
    }

    #[test]
    fn rule_the_user_id_must_be_the_listed_one() {
        let key = pair(1).public_key();
        let err = validate_master_key(user_id!("@bob:x"), &json_of(&served("@eve:x", &["master"], &key))).unwrap_err();
        assert!(matches!(err, CrossSigningKeyRejection::UserIdMismatch { .. }));
    }

    #[test]
    fn rule_the_usage_must_be_exactly_the_role() {
        let key = pair(1).public_key();
        let bob = user_id!("@bob:x");
        for usage in [&["self_signing"][..], &["master", "self_signing"], &[], &["Master"]] {
            let err = validate_master_key(bob, &json_of(&served("@bob:x", usage, &key))).unwrap_err();
            assert!(matches!(err, CrossSigningKeyRejection::WrongUsage { expected: "master", .. }), "{usage:?}");
        }
        // A master key served as a self-signing key, even signed by itself.
        let master = pair(1);
        let mut object = served("@bob:x", &["master"], &master.public_key());
        sign_with(&master, bob, &mut object).unwrap();
        let err = validate_subkey(bob, KeyUsage::SelfSigning, &json_of(&object), &master.public_key()).unwrap_err();
        assert!(matches!(err, CrossSigningKeyRejection::WrongUsage { .. }));
    }

    #[test]
    fn rule_exactly_one_key_named_after_itself() {
        let (a, b) = (pair(1).public_key(), pair(2).public_key());
        let bob = user_id!("@bob:x");
        let mut object = served("@bob:x", &["master"], &a);
        object.insert("keys".into(), json!({key_id(&a): b.to_base64()}));
        assert_eq!(validate_master_key(bob, &json_of(&object)), Err(CrossSigningKeyRejection::InvalidKey));
        object.insert("keys".into(), json!({key_id(&a): a.to_base64(), key_id(&b): b.to_base64()}));
        assert_eq!(validate_master_key(bob, &json_of(&object)), Err(CrossSigningKeyRejection::InvalidKey));
        object.insert("keys".into(), json!({}));
        assert_eq!(validate_master_key(bob, &json_of(&object)), Err(CrossSigningKeyRejection::InvalidKey));
        object.insert("keys".into(), json!({"ed25519:AAAA": "AAAA"}));
        assert_eq!(validate_master_key(bob, &json_of(&object)), Err(CrossSigningKeyRejection::InvalidKey));
        object.insert("keys".into(), json!({format!("curve25519:{a}"): a.to_base64()}));
        assert_eq!(validate_master_key(bob, &json_of(&object)), Err(CrossSigningKeyRejection::InvalidKey));
    }

    #[test]
    fn rule_subkeys_must_be_signed_by_the_master_key() {
        let (master, ssk, other) = (pair(1), pair(2), pair(3));
        let bob = user_id!("@bob:x");
        // Unsigned.
        let object = served("@bob:x", &["self_signing"], &ssk.public_key());
        let err = validate_subkey(bob, KeyUsage::SelfSigning, &json_of(&object), &master.public_key()).unwrap_err();
        assert!(matches!(err, CrossSigningKeyRejection::NotSignedByMaster(SignatureError::Missing { .. })));
        // Signed by another key under the master's key id.
        let mut object = served("@bob:x", &["self_signing"], &ssk.public_key());
        let signature = other.sign(&crate::signing::canonical_signed_bytes(&object).unwrap()).to_base64();
        object.insert("signatures".into(), json!({"@bob:x": {key_id(&master.public_key()): signature}}));
        let err = validate_subkey(bob, KeyUsage::SelfSigning, &json_of(&object), &master.public_key()).unwrap_err();
        assert_eq!(err, CrossSigningKeyRejection::NotSignedByMaster(SignatureError::Invalid));
        // Signed, then changed.
        let mut object = served("@bob:x", &["user_signing"], &ssk.public_key());
        sign_with(&master, bob, &mut object).unwrap();
        object.insert("keys".into(), json!({key_id(&other.public_key()): other.public_key().to_base64()}));
        let err = validate_subkey(bob, KeyUsage::UserSigning, &json_of(&object), &master.public_key()).unwrap_err();
        assert_eq!(err, CrossSigningKeyRejection::NotSignedByMaster(SignatureError::Invalid));
        // Signed by the master key of another user.
        let mut object = served("@bob:x", &["self_signing"], &ssk.public_key());
        sign_with(&master, user_id!("@eve:x"), &mut object).unwrap();
        let err = validate_subkey(bob, KeyUsage::SelfSigning, &json_of(&object), &master.public_key()).unwrap_err();
        assert!(matches!(err, CrossSigningKeyRejection::NotSignedByMaster(SignatureError::Missing { .. })));
    }

    #[test]
    fn malformed_keys_are_typed_errors() {
        let bob = user_id!("@bob:x");
        for bad in ["", "[]", "{", "null", "{\"user_id\": 3}", "{\"user_id\": \"@bob:x\", \"usage\": \"master\"}"] {
            assert!(validate_master_key(bob, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_keys_round_trip_and_never_print() {
        let mut rng = rand_core::OsRng;
        let keys = PrivateCrossSigningKeys::generate(&mut rng);
        let again = PrivateCrossSigningKeys::from_record(&keys.to_record());
        for usage in [KeyUsage::Master, KeyUsage::SelfSigning, KeyUsage::UserSigning] {
            assert_eq!(again.public_key(usage), keys.public_key(usage));
        }
        let export = keys.export();
        let seed = export.master_key.clone().unwrap();
        assert!(!format!("{keys:?}").contains(seed.as_str()));
        assert!(!format!("{export:?}").contains(seed.as_str()));
        assert_eq!(
            decode_seed(KeyUsage::Master, &seed).unwrap().public_key(),
            keys.public_key(KeyUsage::Master).unwrap()
        );
        assert_eq!(
            decode_seed(KeyUsage::Master, "AAAA").unwrap_err(),
            CrossSigningImportError::Malformed(KeyUsage::Master)
        );
        assert!(decode_seed(KeyUsage::Master, "not base64!").is_err());
    }
}
