//! Signed JSON (the spec's "Signing JSON"): Ed25519 signatures over the canonical JSON of an
//! object without its `signatures` and `unsigned` members.

use ferrolm::olm::Account;
use ferrolm::types::{Ed25519Keypair, Ed25519PublicKey, Ed25519Signature};
use ruma::canonical_json::CanonicalJsonValue;
use serde_json::{Map, Value};

/// Why a signature over JSON did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The value is not a JSON object.
    #[error("the signed value is not a JSON object")]
    NotAnObject,
    /// The object cannot be put in canonical JSON (a float, an integer out of range, …).
    #[error("the object is not representable as canonical JSON")]
    NotCanonical,
    /// No signature by this user and key id.
    #[error("no signature by {user_id} with {key_id}")]
    Missing {
        /// The signer's user id.
        user_id: String,
        /// The key id (`ed25519:DEVICEID`).
        key_id: String,
    },
    /// The signature is not 64 bytes of base64.
    #[error("the signature is malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Invalid,
}

/// The canonical JSON of `object` without `signatures` and `unsigned`: the bytes that are signed.
pub fn canonical_signed_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, SignatureError> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    let canonical = CanonicalJsonValue::try_from(Value::Object(stripped)).map_err(|_| SignatureError::NotCanonical)?;
    Ok(canonical.to_string().into_bytes())
}

/// Signs `object` with the account's Ed25519 key as `user_id`'s `ed25519:device_id`, adding
/// the signature to its `signatures` member (and keeping any others).
pub fn sign_json(
    account: &Account,
    user_id: &str,
    device_id: &str,
    object: &mut Map<String, Value>,
) -> Result<(), SignatureError> {
    let bytes = canonical_signed_bytes(object)?;
    let signature = account.sign(&bytes).to_base64();
    insert_signature(object, user_id, &format!("ed25519:{device_id}"), signature)
}

/// Signs `object` with an Ed25519 key pair as `user_id`'s `key_id` (cross-signing keys sign
/// as `ed25519:<their public key>`), keeping any other signatures.
pub fn sign_json_with(
    pair: &Ed25519Keypair,
    user_id: &str,
    key_id: &str,
    object: &mut Map<String, Value>,
) -> Result<(), SignatureError> {
    let bytes = canonical_signed_bytes(object)?;
    let signature = pair.sign(&bytes).to_base64();
    insert_signature(object, user_id, key_id, signature)
}

fn insert_signature(
    object: &mut Map<String, Value>,
    user_id: &str,
    key_id: &str,
    signature: String,
) -> Result<(), SignatureError> {
    let signatures = object.entry("signatures").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(signatures) = signatures else { return Err(SignatureError::NotAnObject) };
    let by_user = signatures.entry(user_id.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(by_user) = by_user else { return Err(SignatureError::NotAnObject) };
    by_user.insert(key_id.to_owned(), Value::String(signature));
    Ok(())
}

/// Checks `user_id`'s signature with `key_id` (`ed25519:…`) over `object` against `key`.
pub fn verify_json(
    object: &Map<String, Value>,
    user_id: &str,
    key_id: &str,
    key: &Ed25519PublicKey,
) -> Result<(), SignatureError> {
    let missing = || SignatureError::Missing { user_id: user_id.to_owned(), key_id: key_id.to_owned() };
    let signature =
        object.get("signatures").and_then(|s| s.get(user_id)).and_then(|s| s.get(key_id)).ok_or_else(missing)?;
    let Value::String(signature) = signature else { return Err(SignatureError::Malformed) };
    let signature = Ed25519Signature::from_base64(signature).map_err(|_| SignatureError::Malformed)?;
    let bytes = canonical_signed_bytes(object)?;
    key.verify(&bytes, &signature).map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_signatures_and_unsigned() {
        let o = object(json!({"b": 1, "a": {"d": "x", "c": true}, "signatures": {}, "unsigned": {"n": 1}}));
        assert_eq!(canonical_signed_bytes(&o).unwrap(), br#"{"a":{"c":true,"d":"x"},"b":1}"#);
    }

    #[test]
    fn floats_are_not_canonical() {
        let o = object(json!({"a": 1.5}));
        assert_eq!(canonical_signed_bytes(&o), Err(SignatureError::NotCanonical));
    }

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let account = Account::new();
        let mut o = object(json!({"user_id": "@a:x", "device_id": "D", "keys": {"k": "v"}}));
        sign_json(&account, "@a:x", "D", &mut o).unwrap();
        verify_json(&o, "@a:x", "ed25519:D", &account.ed25519_key()).unwrap();
        // Unsigned data may change.
        o.insert("unsigned".into(), json!({"device_display_name": "phone"}));
        verify_json(&o, "@a:x", "ed25519:D", &account.ed25519_key()).unwrap();
        // Signed data may not.
        o.insert("device_id".into(), json!("E"));
        assert_eq!(verify_json(&o, "@a:x", "ed25519:D", &account.ed25519_key()), Err(SignatureError::Invalid));
        assert!(matches!(
            verify_json(&o, "@a:x", "ed25519:E", &account.ed25519_key()),
            Err(SignatureError::Missing { .. })
        ));
        assert_eq!(verify_json(&o, "@a:x", "ed25519:D", &Account::new().ed25519_key()), Err(SignatureError::Invalid));
    }

    #[test]
    fn malformed_signatures_are_typed_errors() {
        let key = Account::new().ed25519_key();
        let o = object(json!({"signatures": {"@a:x": {"ed25519:D": "not base64!"}}}));
        assert_eq!(verify_json(&o, "@a:x", "ed25519:D", &key), Err(SignatureError::Malformed));
        let o = object(json!({"signatures": {"@a:x": {"ed25519:D": 5}}}));
        assert_eq!(verify_json(&o, "@a:x", "ed25519:D", &key), Err(SignatureError::Malformed));
        let o = object(json!({"signatures": 3}));
        assert!(matches!(verify_json(&o, "@a:x", "ed25519:D", &key), Err(SignatureError::Missing { .. })));
    }
}
