//! The machine's errors: what makes a whole step fail (nothing is committed). Bad items from
//! the network are not errors: they are reported, typed, in the step's outcome.

use ferrolm_store::StoreError;

use crate::cross_signing::CrossSigningImportError;
use crate::requests::{RequestKind, ResponseParseError};

/// Why a machine call failed. After any of these, nothing was committed and the machine's
/// state is what it was before the call.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The store failed (or refused the change set).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store holds the account of another user or device.
    #[error("the store belongs to {stored_user} / {stored_device}, not {user} / {device}")]
    AccountMismatch {
        /// The user the machine was opened for.
        user: String,
        /// The device the machine was opened for.
        device: String,
        /// The store's user.
        stored_user: String,
        /// The store's device.
        stored_device: String,
    },
    /// No request with this id is waiting for a response (already answered, or from before a
    /// restart: the machine will produce a new one if still needed).
    #[error("no request {0} is waiting for a response")]
    UnknownRequest(String),
    /// The response is for another kind of request than the one with this id.
    #[error("request {request_id} is a {expected:?} request, the response is for {got:?}")]
    ResponseKindMismatch {
        /// The request id.
        request_id: String,
        /// The request's kind.
        expected: RequestKind,
        /// The response's kind.
        got: RequestKind,
    },
    /// A response body did not parse.
    #[error(transparent)]
    MalformedResponse(#[from] ResponseParseError),
    /// `encrypt_room_event` before `share_room_key`: no room key was shared in this room.
    #[error("no room key was shared in {0}: call share_room_key first")]
    NoRoomKeyShared(String),
    /// The room's key is due for rotation: call `share_room_key` before encrypting again.
    #[error("the room key of {0} is due for rotation: call share_room_key first")]
    RoomKeyRotationDue(String),
    /// `bootstrap_cross_signing(false)` while another own identity is published: import its
    /// private keys, or bootstrap with `reset`.
    #[error("another cross-signing identity is published: import its keys or reset")]
    CrossSigningIdentityExists,
    /// Private cross-signing keys were refused (nothing was stored).
    #[error("cross-signing key import: {0}")]
    CrossSigningImport(CrossSigningImportError),
    /// `verify_identity` with a master key that is not (any more) the user's.
    #[error("the master key of {user} is not the one verified")]
    MasterKeyMismatch {
        /// The user.
        user: String,
    },
    /// `verify_device` with an Ed25519 key that is not the device's.
    #[error("the Ed25519 key of {user} {device} is not the one verified")]
    DeviceKeyMismatch {
        /// The user.
        user: String,
        /// The device.
        device: String,
    },
    /// Verification refused: the user has a device whose id is one of their cross-signing
    /// public keys.
    #[error("{user} has a device whose id {device} is one of their cross-signing keys")]
    DeviceIdCollidesWithCrossSigningKey {
        /// The user.
        user: String,
        /// The device id.
        device: String,
    },
    /// An argument is not valid (an identifier that does not parse, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A verification call was refused (nothing changed, nothing was sent).
    #[error("verification: {0}")]
    Verification(#[from] crate::verification::VerificationError),
    /// An internal invariant failed (a bug; reported instead of a panic).
    #[error("internal error: {0}")]
    Internal(String),
}
