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

/// An Olm session's id, as the store keys it.
pub(crate) fn olm_session_id(session: &Session) -> String {
    session.session_id()
}

/// The core's session creation error, as the machine reports it.
pub(crate) fn session_creation_failure(error: &SessionCreationError) -> SessionCreationFailure {
    match error {
        SessionCreationError::MismatchedIdentityKey { .. } => SessionCreationFailure::MismatchedIdentityKey,
        SessionCreationError::MissingOneTimeKey(_) => SessionCreationFailure::MissingOneTimeKey,
        SessionCreationError::NonContributoryKey => SessionCreationFailure::NonContributoryKey,
        SessionCreationError::Decryption(_) => SessionCreationFailure::Decryption,
    }
}
