//! Small adapters between the store's opaque identifiers, ruma's typed ones and the core's
//! types. The core and the store change on their own branches; when they do, this is the
//! file that follows.

use ferrolm::olm::{Session, SessionCreationError};
use ferrolm_store::{DeviceId, UserId};
use ruma::{OwnedDeviceId, OwnedUserId};

use crate::error::MachineError;
use crate::olm_channel::SessionCreationFailure;

/// A ruma user id as the store keeps it.
pub(crate) fn user_to_store(user: &ruma::UserId) -> UserId {
    UserId::new(user.as_str())
}

/// A stored user id, parsed.
pub(crate) fn user_from_store(user: &UserId) -> Result<OwnedUserId, MachineError> {
    OwnedUserId::try_from(user.as_str()).map_err(|e| MachineError::Internal(format!("stored user id: {e}")))
}

/// A ruma device id as the store keeps it.
pub(crate) fn device_to_store(device: &ruma::DeviceId) -> DeviceId {
    DeviceId::new(device.as_str())
}

/// A stored device id (device ids are opaque: every string is one).
pub(crate) fn device_from_store(device: &DeviceId) -> OwnedDeviceId {
    OwnedDeviceId::from(device.as_str())
}

/// An Olm session's id, as the store keys it (unpadded base64).
pub(crate) fn olm_session_id(session: &Session) -> String {
    session.session_id().to_base64()
}

/// The core's session creation error, as the machine reports it.
pub(crate) fn session_creation_failure(error: &SessionCreationError) -> SessionCreationFailure {
    match error {
        SessionCreationError::MismatchedIdentityKey { .. } => SessionCreationFailure::MismatchedIdentityKey,
        SessionCreationError::MissingOneTimeKey(_) => SessionCreationFailure::MissingOneTimeKey,
        SessionCreationError::MismatchedSessionConfig { .. } => SessionCreationFailure::UnsupportedSessionVersion,
        SessionCreationError::NonContributoryKey => SessionCreationFailure::NonContributoryKey,
        SessionCreationError::Decryption(_) => SessionCreationFailure::Decryption,
    }
}

/// Overwrites every string in `value` (a JSON payload that held a secret) before it is dropped.
pub(crate) fn zeroize_strings(value: &mut serde_json::Value) {
    use zeroize::Zeroize;
    match value {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(zeroize_strings),
        serde_json::Value::Object(map) => map.values_mut().for_each(zeroize_strings),
        _ => {}
    }
}

/// `value` serialized into a zeroizing buffer of exactly its size (measured by a first pass),
/// so that no reallocation leaves a copy of a secret in freed memory.
pub(crate) fn secret_json<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<zeroize::Zeroizing<Vec<u8>>, serde_json::Error> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(count.0));
    serde_json::to_writer(&mut *out, value)?;
    Ok(out)
}

/// Replaces the secret fields of key-carrying events (`session_key`, `secret`) by
/// `"<redacted>"`, zeroizing them; returns whether anything was redacted.
pub(crate) fn redact_secrets(event_type: &str, content: &mut serde_json::Value) -> bool {
    let field = match event_type {
        "m.room_key" | "m.forwarded_room_key" => "session_key",
        "m.secret.send" => "secret",
        _ => return false,
    };
    match content.get_mut(field) {
        Some(value) => {
            zeroize_strings(value);
            *value = serde_json::Value::String("<redacted>".into());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_json_is_serde_jsons_output_in_a_buffer_of_its_size() {
        let value = serde_json::json!({"session_key": "k".repeat(1_000), "devices": [["@a:x", "D"], ["@b:x", "É\n"]]});
        let out = super::secret_json(&value).unwrap();
        assert_eq!(&*out, &serde_json::to_vec(&value).unwrap()[..]);
        assert_eq!(out.capacity(), out.len());
    }
}
